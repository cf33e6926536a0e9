"""Content fingerprints that survive cosmetic differences between copies of the same text.

Syndicated stories (agency wires, republished articles) reach us from several sites with different
typographic quotes, apostrophes, dashes, non-breaking spaces, soft hyphens and letter case. The transform
stage drops exact duplicates by :func:`content_hash`, so everything that does not change the words must
normalise away, and nothing that changes the words may.
"""

from __future__ import annotations

import hashlib
import unicodedata

__all__ = ["content_hash", "normalize_text"]

# Punctuation (P*) and modifier/other symbols (Sk: ^ ` ´, So: emoji, ©, arrows) separate words like spaces;
# format characters (Cf: soft hyphen, zero-width space/joiner, BOM) sit inside words and vanish.
_SEPARATOR_CATEGORIES = frozenset({"Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sk", "So"})
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Cc"})


class _CharacterMap(dict[int, str | None]):
    """``str.translate`` table filled on first sight of each character: separators become a space, invisible
    characters vanish, everything else maps to itself.

    A per-character Python loop over every article body showed up in ingest profiles; ``translate`` runs in C
    and asks this table only for characters it has not met before.
    """

    _LIMIT = 65_536  # a text of a million distinct code points must not grow the table without bound

    def __missing__(self, code: int) -> str | None:
        char = chr(code)
        category = unicodedata.category(char)
        value: str | None
        if category in _SEPARATOR_CATEGORIES:
            value = " "
        elif category in _INVISIBLE_CATEGORIES and not char.isspace():
            value = None
        else:
            value = char
        if len(self) < self._LIMIT:
            self[code] = value
        return value


_CHARACTERS = _CharacterMap()


def normalize_text(text: str) -> str:
    """NFKC, case-folded words separated by single spaces, with punctuation and symbols removed.

    Accents and other combining marks are kept (French ``pêche`` and ``pèche`` are different words); NFKC
    already makes precomposed and decomposed spellings of a letter identical.
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(folded.translate(_CHARACTERS).split())


def content_hash(text: str) -> str:
    """32 hex chars of SHA-256 over :func:`normalize_text`; equal for copies that differ only cosmetically."""
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()[:32]
