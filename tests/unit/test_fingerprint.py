"""Content fingerprints: cosmetic differences vanish, different words stay different."""

from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.fingerprint import content_hash, normalize_text


@pytest.mark.parametrize(
    ("a", "b"),
    [
        # typographic vs ASCII apostrophes and quotes, French guillemets with non-breaking spaces
        (
            "L’armée a déclaré avoir infligé de lourdes pertes aux « groupes terroristes ».",
            'L\'armée a déclaré avoir infligé de lourdes pertes aux "groupes terroristes".',
        ),
        # case, runs of whitespace, line breaks, tabs
        ("Talks resume on  Monday.\n\nThe union said", "talks resume on monday the union said"),
        # soft hyphen and zero-width space inside words
        ("auto\u00admation and ship\u200bping", "automation and shipping"),
        # full-width and compatibility characters (NFKC)
        ("ＡＢＣ news ﬁnal", "abc news final"),
        # en/em dashes vs hyphen
        ("Halle–Damas — Halle-Idlib", "Halle Damas Halle Idlib"),
        # decomposed vs precomposed accents
        ("Contro\u0302le", "Contrôle"),
        # emoji decorations
        ("🛑 Capture de 8 chars", "Capture de 8 chars"),
    ],
)
def test_cosmetic_variants_hash_equal(a: str, b: str) -> None:
    assert normalize_text(a) == normalize_text(b)
    assert content_hash(a) == content_hash(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("12 civils ont été tués", "13 civils ont été tués"),
        ("pêche", "pèche"),
        ("Khan al-Assal", "Khan al-Asal"),
        ("", "a"),
    ],
)
def test_different_words_hash_differently(a: str, b: str) -> None:
    assert content_hash(a) != content_hash(b)


def test_normalize_text_output() -> None:
    assert normalize_text("  L’Opposition  Syrienne, « jeudi » !\n") == "l opposition syrienne jeudi"
    assert normalize_text("Straße") == "strasse"  # casefold, not lower
    assert normalize_text("") == ""
    assert normalize_text(" \u00a0\t\n") == ""


def test_content_hash_is_32_hex_sha256_of_normalized_text() -> None:
    digest = content_hash("Hello, World!")
    assert re.fullmatch(r"[0-9a-f]{32}", digest)
    assert digest == hashlib.sha256(b"hello world").hexdigest()[:32]


def _normalize_by_definition(text: str) -> str:
    """The rule spelled out character by character (what the translate table must reproduce)."""
    import unicodedata

    out = []
    for char in unicodedata.normalize("NFKC", text).casefold():
        category = unicodedata.category(char)
        if category[0] == "P" or category in ("Sk", "So"):
            out.append(" ")
        elif category in ("Cf", "Cc") and not char.isspace():
            continue
        else:
            out.append(char)
    return " ".join("".join(out).split())


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=300))
def test_normalize_text_matches_its_definition_on_any_text(text: str) -> None:
    assert normalize_text(text) == _normalize_by_definition(text)
