"""Cheap restarts: state rebuilt from stored features/signatures equals state rebuilt from full text.

Uses the labelled corpus so that the features carry real entities, numbers, dates, accents and
several languages; only JSON round-tripped payloads are restored, as they would be from storage.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from test_clustering import _state  # the white-box state that decides future assignments

from bench.quality import load_corpus
from transform.clustering import ClusteringConfig, ClusteringError, StaleFeatures, StoryClusterer
from transform.documents import ArticleDoc
from transform.neardup import NearDuplicateError, NearDuplicateIndex, StaleSignature
from transform.stories import stored_json

CORPUS = [item.doc for item in load_corpus()]
HEAD, TAIL = CORPUS[:200], CORPUS[200:]


def _roundtrip(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload as a restore reads it back: the text ``article_features`` stores, parsed."""
    return json.loads(stored_json(payload))


# Rows stored before the features were written by msgspec: compact, non-ASCII characters escaped.
_ESCAPED = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


@pytest.fixture(scope="module")
def original() -> tuple[StoryClusterer, dict[str, dict[str, Any]]]:
    clusterer = StoryClusterer()
    exported: dict[str, dict[str, Any]] = {}
    for doc in HEAD:
        clusterer.assign(doc)
        exported[doc.article_id] = _roundtrip(clusterer.export_features(doc))
    return clusterer, exported


def test_restore_from_features_equals_restore_from_text_and_later_assignments_match(
    original: tuple[StoryClusterer, dict[str, dict[str, Any]]],
) -> None:
    source, exported = original
    from_text, from_features = StoryClusterer(), StoryClusterer()
    shuffled = list(HEAD)
    random.Random(3).shuffle(shuffled)
    for doc in shuffled:
        event_id = source.event_of(doc.article_id)
        assert event_id is not None
        from_text.restore(doc, event_id)
        from_features.restore_features(exported[doc.article_id], event_id)
    assert _state(from_features) == _state(from_text) == _state(source)
    for doc in TAIL[:60]:
        assert from_features.assign(doc) == from_text.assign(doc)
    assert [from_features.profile(e) for e in from_features.event_ids()] == [
        from_text.profile(e) for e in from_text.event_ids()
    ]


def test_stored_text_holds_the_value_of_the_escaped_form_in_its_order_and_both_restore_one_state(
    original: tuple[StoryClusterer, dict[str, dict[str, Any]]],
) -> None:
    """Rows written before (non-ASCII escaped) and now (UTF-8) are read alike: no FEATURES_VERSION bump, so a
    restore after the upgrade reuses every stored row instead of computing the features from the text again."""
    source, _ = original
    from_escaped, from_stored = StoryClusterer(), StoryClusterer()
    unescaped = 0
    for doc in HEAD:
        payload = source.export_features(doc)
        text, escaped = stored_json(payload), _ESCAPED(payload)
        unescaped += text != escaped
        # the same value, every mapping in the same order (terms and surfaces: their order is part of the features)
        assert _ESCAPED(json.loads(text)) == escaped
        assert list(json.loads(text)["terms"].items()) == list(payload["terms"].items())
        event_id = source.event_of(doc.article_id)
        assert event_id is not None
        from_escaped.restore_features(json.loads(escaped), event_id)
        from_stored.restore_features(json.loads(text), event_id)
    assert unescaped > 20  # the corpus's accents and scripts really are written unescaped
    assert _state(from_stored) == _state(from_escaped) == _state(source)


def test_a_string_utf8_cannot_hold_is_stored_escaped_as_before() -> None:
    payload = {"v": 3, "source": "Outlet \ud800", "terms": {"t\udfff": 1000, "été": 1693}}
    text = stored_json(payload)
    assert text == _ESCAPED(payload) and text.isascii()
    assert list(json.loads(text)["terms"].items()) == list(payload["terms"].items())  # type: ignore[union-attr]


def test_restoring_features_twice_is_a_no_op_but_into_another_event_is_an_error(
    original: tuple[StoryClusterer, dict[str, dict[str, Any]]],
) -> None:
    _, exported = original
    payload = exported[HEAD[0].article_id]
    clusterer = StoryClusterer()
    clusterer.restore_features(payload, "evt_a")
    clusterer.restore_features(payload, "evt_a")
    assert clusterer.article_count == 1
    with pytest.raises(ClusteringError):
        clusterer.restore_features(payload, "evt_b")


def test_stale_or_malformed_features_are_rejected(original: tuple[StoryClusterer, dict[str, dict[str, Any]]]) -> None:
    _, exported = original
    payload = exported[HEAD[0].article_id]
    with pytest.raises(StaleFeatures):
        StoryClusterer().restore_features({**payload, "v": 0}, "evt_a")
    with pytest.raises(StaleFeatures):
        StoryClusterer(ClusteringConfig(title_weight=3)).restore_features(payload, "evt_a")
    with pytest.raises(ClusteringError):
        StoryClusterer().restore_features({**payload, "terms": ["not", "a", "mapping"]}, "evt_a")
    with pytest.raises(ClusteringError):
        StoryClusterer().restore_features({**payload, "published_at": "2026-05-04T06:00:00"}, "evt_a")


def _index_state(index: NearDuplicateIndex) -> dict[str, Any]:
    return {
        "entries": {key: (e.source, e.published_at, e.shingles.tolist(), e.edges) for key, e in index._entries.items()},
        "edges": {source: dict(counts) for source, counts in index._edge_counts.items()},
        "boilerplate": index._boilerplate,
        "lsh": sorted(key for key in index._entries if key in index._lsh),
    }


def _find_all(index: NearDuplicateIndex, docs: list[ArticleDoc]) -> list[Any]:
    found = []
    for doc in docs:
        found.append(index.find(doc))
        index.add(doc)
    return found


def test_index_restored_from_signatures_equals_index_built_from_text() -> None:
    built, restored = NearDuplicateIndex(), NearDuplicateIndex()
    signatures = []
    for doc in HEAD:
        built.find(doc)
        built.add(doc)
        signatures.append(_roundtrip(built.export_signature(doc)))
    for signature in signatures:
        restored.add_signature(signature)
    restored.add_signature(signatures[0])  # replays are no-ops, as for add()
    assert _index_state(restored) == _index_state(built)
    found = _find_all(restored, TAIL)
    assert found == _find_all(built, TAIL)
    assert any(item is not None for item in found)  # the corpus tail does contain copies
    moment = TAIL[-1].published_at
    assert restored.evict_before(moment) == built.evict_before(moment)
    assert _index_state(restored) == _index_state(built)


def test_stale_or_malformed_signatures_are_rejected() -> None:
    index = NearDuplicateIndex()
    signature = _roundtrip(index.export_signature(HEAD[0]))
    with pytest.raises(StaleSignature):
        index.add_signature({**signature, "v": 0})
    with pytest.raises(StaleSignature):
        NearDuplicateIndex(num_perm=256).add_signature(signature)
    with pytest.raises(NearDuplicateError):
        index.add_signature({**signature, "shingles": "not base64!"})
    with pytest.raises(NearDuplicateError):
        index.add_signature({key: value for key, value in signature.items() if key != "minhash"})
    assert len(index) == 0
