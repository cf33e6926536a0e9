"""Near-duplicate shingles carried in the article message (hashed by the extraction workers) find, index and export
exactly what shingles the transform hashes itself; stale, foreign or malformed ones are refused, never used.

Uses the labelled corpus (copies, accents, several languages, scripts without spaces); every payload goes through
the topic's own encoding, as the transform receives it.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest

import transform.neardup
from bench.quality import load_corpus
from bench.transform import article_message
from newswire import contracts
from transform.carried import (
    MAX_CARRIED_SHINGLES,
    carried_features,
    read_carried,
    shingles_digest,
)
from transform.clustering import ClusteringConfig, text_features
from transform.documents import ArticleDoc
from transform.neardup import SIGNATURE_VERSION, NearDuplicateError, NearDuplicateIndex, shingle_list
from transform.stories import StoryState

CORPUS = [item.doc for item in load_corpus()]


def _carried(doc: ArticleDoc) -> str:
    payload = carried_features(doc.title, doc.text, doc.language, title_weight=2)
    encoded = contracts.encode(contracts.ARTICLES, {**article_message(doc), "features": payload})
    decoded = contracts.decode(contracts.ARTICLES, encoded)["features"]
    assert isinstance(decoded, str)
    return decoded


def _shingles(payload: Any, doc: ArticleDoc) -> np.ndarray | None:
    carried = read_carried(payload, title=doc.title, text=doc.text, language=doc.language)
    return None if carried is None else carried.shingles()


def _changed(payload: str, **change: Any) -> str:
    return json.dumps({**json.loads(payload), **change}, ensure_ascii=False, separators=(",", ":"))


def test_carried_shingles_are_the_ones_the_index_hashes() -> None:
    for doc in CORPUS:
        carried = _shingles(_carried(doc), doc)
        assert carried is not None and carried.dtype == np.uint64
        assert np.array_equal(carried, shingle_list(doc.text))


def test_an_index_primed_with_carried_shingles_finds_indexes_and_exports_what_a_computing_one_does() -> None:
    computed, primed = NearDuplicateIndex(), NearDuplicateIndex()
    found = 0
    for doc in CORPUS:
        shingles = _shingles(_carried(doc), doc)
        assert shingles is not None
        primed.prime_shingles(doc, shingles)
        expected = computed.find(doc)
        assert primed.find(doc) == expected
        found += expected is not None
        computed.add(doc)
        primed.add(doc)
        assert primed.export_signature(doc) == computed.export_signature(doc)
    assert found > 5  # the corpus really holds copies


def test_story_state_uses_the_shingles_the_message_carries_tokenising_only_to_confirm_a_match(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    docs = [ArticleDoc(**{**doc.__dict__, "carried": _carried(doc)}) for doc in CORPUS[:60]]
    reference = StoryState(ClusteringConfig(embedding_model="none"))
    expected = [_lookup_then_assign(reference, doc) for doc in CORPUS[:60]]
    assert any(near is not None for near, _ in expected)  # some matches to confirm

    tokenised: list[str] = []
    tokens = transform.neardup.shingle_tokens

    def record(text: str) -> list[str]:
        tokenised.append(text)
        return tokens(text)

    monkeypatch.setattr(transform.neardup, "shingle_tokens", record)
    state = StoryState(ClusteringConfig(embedding_model="none"))
    assert [_lookup_then_assign(state, doc) for doc in docs] == expected
    # Tokenised once for each article the carried shingles match (to confirm it from the text), never otherwise.
    assert tokenised == [doc.text for doc, (near, _) in zip(docs, expected, strict=True) if near is not None]
    assert [state.exported[d.article_id][1] for d in docs] == [reference.exported[d.article_id][1] for d in docs]


def _lookup_then_assign(state: StoryState, doc: ArticleDoc) -> Any:
    """What a batch does with a new article: near-duplicate lookup, then assignment (every article here)."""
    near = state.near_duplicate(doc, read_carried(doc.carried, title=doc.title, text=doc.text, language=doc.language))
    return near, state.assign(doc).event_id


def test_shingles_of_another_version_or_input_are_refused() -> None:
    doc = next(d for d in CORPUS if len(d.text) > 500)
    payload = _carried(doc)
    assert _shingles(payload, doc) is not None
    assert _shingles(_changed(payload, sv=SIGNATURE_VERSION + 1), doc) is None
    other_text = ArticleDoc(**{**doc.__dict__, "text": doc.text + " Correction appended."})
    other_title = ArticleDoc(**{**doc.__dict__, "title": doc.title + " (updated)"})
    for other in (other_text, other_title):
        assert _shingles(payload, other) is None


@pytest.mark.parametrize(
    "change",
    [
        {"sh": None},
        {"sh": "not base64!"},
        {"sh": base64.b64encode(b"1234567").decode("ascii")},  # a partial value
        {"sh": 12},
        {"sv": None},
        {"sv": True},
        {"in": None},
    ],
)
def test_malformed_shingles_are_refused(change: dict[str, Any]) -> None:
    doc = CORPUS[1]
    payload = _carried(doc)
    assert _shingles(_changed(payload), doc) is not None  # re-encoding alone keeps them usable
    assert _shingles(_changed(payload, **change), doc) is None


def test_values_that_are_not_the_features_string_are_refused() -> None:
    doc = CORPUS[2]
    payload = _carried(doc)
    without = json.dumps({k: v for k, v in json.loads(payload).items() if k not in ("sh", "sv")})
    for value in (None, 3, [], payload.encode("utf-8"), "", "null", payload[:-1], without):
        assert _shingles(value, doc) is None


def test_priming_refuses_arrays_that_are_not_shingle_hashes() -> None:
    index, doc = NearDuplicateIndex(), CORPUS[0]
    with pytest.raises(NearDuplicateError):
        index.prime_shingles(doc, np.zeros(3, dtype=np.int64))


def _with_shingles_of(doc: ArticleDoc, other: ArticleDoc) -> ArticleDoc:
    """``doc`` carrying its own features and input digest, but ``other``'s shingles with their digest recomputed
    for ``doc``'s input: a deliberate forgery (the digests are checksums, anyone can compute them)."""
    payload = json.loads(_carried(doc))
    sh = json.loads(_carried(other))["sh"]
    forged = _changed(_carried(doc), sh=sh, shd=shingles_digest(payload["in"], base64.b64decode(sh)))
    assert _shingles(forged, doc) is not None  # both digests are right: the shingles pass as carried ones
    return ArticleDoc(**{**doc.__dict__, "carried": forged})


def test_shingles_spliced_from_another_message_or_garbled_are_refused_by_their_digest() -> None:
    """``shd`` ties the shingles to the input the ``in`` digest describes: another message's ``sh`` (with or without
    its ``shd``), one value changed, one dropped, or no ``shd`` at all, and the transform computes them instead."""
    doc, other = CORPUS[0], CORPUS[1]
    payload, theirs = json.loads(_carried(doc)), json.loads(_carried(other))
    raw = base64.b64decode(payload["sh"])
    flipped = bytes([raw[0] ^ 1]) + raw[1:]
    for change in (
        {"sh": theirs["sh"]},
        {"sh": theirs["sh"], "shd": theirs["shd"]},
        {"sh": base64.b64encode(flipped).decode("ascii")},
        {"sh": base64.b64encode(raw[:-8]).decode("ascii")},
        {"shd": None},
        {"shd": payload["shd"][:-1] + ("0" if payload["shd"][-1] != "0" else "1")},
    ):
        spoiled = _changed(_carried(doc), **change)
        assert _shingles(spoiled, doc) is None, change
        # The features of the same string are untouched by a spoiled ``sh``.
        features = read_carried(spoiled, title=doc.title, text=doc.text, language=doc.language)
        assert features is not None and features.features(2)
    withheld = {k: v for k, v in payload.items() if k != "shd"}
    assert _shingles(json.dumps(withheld, ensure_ascii=False), doc) is None


def test_one_read_of_the_carried_string_serves_the_lookup_and_the_clustering() -> None:
    """:func:`read_carried` decodes once and checks the input digest once; its shingles and features are those
    the two single-purpose readers give, and a string of another input gives neither."""
    for doc in CORPUS[:40]:
        payload = _carried(doc)
        carried = read_carried(payload, title=doc.title, text=doc.text, language=doc.language)
        assert carried is not None
        shingles = carried.shingles()
        assert shingles is not None and np.array_equal(shingles, shingle_list(doc.text))
        expected = text_features(doc.title, doc.text, doc.language, 2)  # what the transform would compute
        assert carried.features(2) == expected
        assert carried.features(3) is None  # another title weight
        stale = read_carried(payload, title=doc.title + "!", text=doc.text, language=doc.language)
        assert stale is not None and stale.shingles() is None and stale.features(2) is None
    assert read_carried("not json", title="", text="", language=None) is None
    assert read_carried(None, title="", text="", language=None) is None


def test_shingles_of_another_article_never_make_a_duplicate() -> None:
    """A match found with carried shingles is confirmed from the text: an article carrying the shingles of an
    indexed one it does not copy is looked up, assigned and exported as if it carried none."""
    original = CORPUS[0]
    alone = NearDuplicateIndex()
    alone.add(original)
    # Published with the original (within the near-duplicate horizon), and no copy of it.
    docs = [ArticleDoc(**{**d.__dict__, "published_at": original.published_at}) for d in CORPUS[1:60]]
    docs = [d for d in docs if alone.find(d) is None]
    forged = [_with_shingles_of(doc, original) for doc in docs]
    assert len(forged) > 40 and all(alone.find(_primed(alone, d)) is not None for d in forged)  # the forgery bites

    config = ClusteringConfig(embedding_model="none")
    reference, state = StoryState(config), StoryState(config)
    for target in (reference, state):
        _lookup_then_assign(target, original)
    expected = [_lookup_then_assign(reference, doc) for doc in docs]
    got = [_lookup_then_assign(state, doc) for doc in forged]
    assert got == expected
    assert all(near is None or near.duplicate_of != original.article_id for near, _ in got)
    assert [state.exported[d.article_id] for d in docs] == [reference.exported[d.article_id] for d in docs]


def _primed(index: NearDuplicateIndex, doc: ArticleDoc) -> ArticleDoc:
    shingles = _shingles(doc.carried, doc)
    assert shingles is not None
    index.prime_shingles(doc, shingles)
    return doc


def test_a_text_of_too_many_shingles_carries_none_and_finds_the_same_duplicates() -> None:
    normal = next(d for d in CORPUS if 100 < shingle_list(d.text).size <= MAX_CARRIED_SHINGLES)
    # A long text in a script without spaces: about one shingle per character.
    long_text = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(MAX_CARRIED_SHINGLES + 500))
    long = ArticleDoc(**{**normal.__dict__, "article_id": "f" * 32, "text": long_text})
    copy = ArticleDoc(**{**long.__dict__, "article_id": "e" * 32, "source": "another", "text": long_text + "。"})
    assert shingle_list(long.text).size > MAX_CARRIED_SHINGLES
    assert "sh" not in json.loads(_carried(long)) and _shingles(_carried(long), long) is None
    assert "sh" in json.loads(_carried(normal)) and _shingles(_carried(normal), normal) is not None

    reference, state = (
        StoryState(ClusteringConfig(embedding_model="none")),
        StoryState(ClusteringConfig(embedding_model="none")),
    )
    sequence = [normal, long, copy]
    expected = [_lookup_then_assign(reference, doc) for doc in sequence]
    got = [_lookup_then_assign(state, ArticleDoc(**{**d.__dict__, "carried": _carried(d)})) for d in sequence]
    assert got == expected
    assert expected[2][0] is not None and expected[2][0].duplicate_of == long.article_id
    assert [state.exported[d.article_id] for d in sequence] == [reference.exported[d.article_id] for d in sequence]
