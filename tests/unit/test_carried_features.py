"""Features carried in the article message (computed by the extraction workers) cluster exactly as features the
transform computes itself; stale, foreign or malformed ones are refused, never used.

Uses the labelled corpus (entities, numbers, dates, accents, several languages, scripts without spaces) and
passes every carried payload through the topic's own encoding, as the transform receives it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_clustering import _state  # the white-box state that decides future assignments

from bench.quality import load_corpus
from bench.transform import article_message
from newswire import contracts
from newswire.errors import ContractError
from transform.carried import carried_features, input_digest, read_carried
from transform.clustering import FEATURES_VERSION, ClusteringConfig, StoryClusterer
from transform.documents import ArticleDoc

CORPUS = [item.doc for item in load_corpus()]
CONFIG = ClusteringConfig(embedding_model="none")


def _carried(doc: ArticleDoc, *, language: str | None = None, title_weight: int = 2) -> str:
    """The features as the transform receives them: inside an article message encoded for the topic and
    decoded (validated) again; the field stays one string."""
    payload = carried_features(doc.title, doc.text, language or doc.language, title_weight=title_weight)
    encoded = contracts.encode(contracts.ARTICLES, {**article_message(doc), "features": payload})
    decoded = contracts.decode(contracts.ARTICLES, encoded)["features"]
    assert isinstance(decoded, str) and decoded == payload
    return decoded


def _fields(payload: str) -> dict[str, Any]:
    fields = json.loads(payload)
    assert isinstance(fields, dict)
    return fields


def _changed(payload: str, **change: Any) -> str:
    """``payload`` re-encoded with some of its fields replaced (a well-formed string of other content)."""
    return json.dumps({**_fields(payload), **change}, separators=(",", ":"))


def _without(payload: str, key: str) -> str:
    return json.dumps({k: v for k, v in _fields(payload).items() if k != key})


def _parse(payload: Any, doc: ArticleDoc, title_weight: int = 2) -> Any:
    """The features a batch uses (:func:`read_carried`, as ``transform.batch`` reads the message), or None."""
    carried = read_carried(payload, title=doc.title, text=doc.text, language=doc.language)
    return None if carried is None else carried.features(title_weight)


def test_carried_features_give_the_same_assignments_exports_and_state_as_computed_ones() -> None:
    computed, carried = StoryClusterer(CONFIG), StoryClusterer(CONFIG)
    for doc in CORPUS:
        text = _parse(_carried(doc), doc)
        assert text is not None
        carried.prime_text_features(doc, text)
        assert carried.assign(doc) == computed.assign(doc)
        # byte-identical stored features: same terms and surfaces in the same order
        assert json.dumps(carried.export_features(doc)) == json.dumps(computed.export_features(doc))
    assert _state(carried) == _state(computed)
    assert [carried.profile(e) for e in carried.event_ids()] == [computed.profile(e) for e in computed.event_ids()]
    assert len(computed) > 50  # the corpus really forms events


def test_the_outlets_own_names_are_removed_by_the_transform_whatever_the_worker_saw() -> None:
    # An outlet that names itself in its text ("(AHP) -"): the worker does not know which source the message
    # will name, so it keeps every name, and the transform drops the outlet's own.
    doc = next(d for d in CORPUS if d.article_id == "p2-s25-01" and d.source == "Agence Hexa Presse")
    exported = []
    for source in (doc.source, "Some Other Outlet"):
        renamed = ArticleDoc(**{**doc.__dict__, "source": source})
        computed, carried = StoryClusterer(CONFIG), StoryClusterer(CONFIG)
        computed.assign(renamed)
        text = _parse(_carried(renamed), renamed)
        assert text is not None and "e:ahp" in text.cues
        carried.prime_text_features(renamed, text)
        carried.assign(renamed)
        assert carried.export_features(renamed) == computed.export_features(renamed)
        exported.append(set(computed.export_features(renamed)["cues"]))
    assert exported[1] - exported[0] == {"e:ahp"}  # the removal really happened for the outlet itself


def test_features_of_another_version_title_weight_or_input_are_refused() -> None:
    doc = CORPUS[0]
    payload = _carried(doc)
    assert _parse(payload, doc) is not None
    assert _parse(_changed(payload, v=FEATURES_VERSION - 1), doc) is None
    assert _parse(payload, doc, title_weight=3) is None  # made for another title weight
    assert _parse(_carried(doc, title_weight=3), doc) is None
    other_title = ArticleDoc(**{**doc.__dict__, "title": doc.title + " (updated)"})
    other_text = ArticleDoc(**{**doc.__dict__, "text": doc.text + " Correction appended."})
    other_language = ArticleDoc(**{**doc.__dict__, "language": "de" if doc.language != "de" else "fr"})
    for other in (other_title, other_text, other_language):
        assert _parse(payload, other) is None
    # the language is compared in its base form, as the transform normalises it
    assert _parse(_carried(doc, language=f"{doc.language}-XX"), doc) is not None


@pytest.mark.parametrize(
    "change",
    [
        {"terms": "not a list"},
        {"tf": [1]},  # fewer counts than terms
        {"tf": None},
        {"cues": [1, 2]},
        {"cues": "e:paris"},
        {"entities": [["place", "paris"]]},
        {"entities": [["place", "paris", 3]]},
        {"entities": [["place", "paris", "Paris", "Paris"]]},
        {"entities": [["place", "paris", "Paris"], "place"]},
        {"surfaces": [["a", ["b"]]]},
        {"surfaces": [["a", "b"], ["c"]]},
        {"surfaces": {"a": "b"}},
        {"surfaces": [["a"]]},
        {"novelty": 0},
        {"in": None},
    ],
)
def test_malformed_features_are_refused(change: dict[str, Any]) -> None:
    doc = next(d for d in CORPUS if len(d.text) > 500)
    payload = _carried(doc)
    assert _parse(payload, doc) is not None  # the change alone makes it unusable
    assert _parse(_changed(payload, **change), doc) is None


def test_malformed_structure_is_refused() -> None:
    doc = CORPUS[1]
    payload = _carried(doc)
    fields = _fields(payload)
    assert _parse(_changed(payload), doc) is not None  # re-encoding alone keeps it usable
    for key in ("terms", "tf", "cues", "entities", "surfaces", "novelty", "v", "tw", "in"):
        assert _parse(_without(payload, key), doc) is None
    assert _parse(_changed(payload, tf=[0] * len(fields["tf"])), doc) is None  # counts are positive
    assert _parse(_changed(payload, tf=[True] * len(fields["tf"])), doc) is None  # not booleans
    twice = [fields["terms"][0]] * len(fields["terms"])
    assert _parse(_changed(payload, terms=twice), doc) is None
    # values that are not the string, or strings that are not the JSON object
    for value in (None, [], 3, fields, payload.encode("utf-8")):
        assert _parse(value, doc) is None
    for text in ("", "x", "null", "[]", '"' + payload + '"', json.dumps(json.dumps(fields)), payload[:-1],
                 payload + "x", "[" * 100_000 + "]" * 100_000):  # fmt: skip
        assert _parse(text, doc) is None


def test_the_field_is_one_compact_json_string_decoded_only_by_read_carried() -> None:
    doc = CORPUS[2]
    payload = carried_features(doc.title, doc.text, doc.language, title_weight=2)
    assert isinstance(payload, str) and ", " not in payload[:20] and ": " not in payload[:20]
    assert json.dumps(_fields(payload), ensure_ascii=False, separators=(",", ":")) == payload
    assert _fields(payload)["v"] == FEATURES_VERSION and _fields(payload)["tw"] == 2
    # the message keeps the string as it is: the transform decodes nothing before it clusters
    encoded = contracts.encode(contracts.ARTICLES, {**article_message(doc), "features": payload})
    assert contracts.decode(contracts.ARTICLES, encoded)["features"] == payload
    # the schema requires a string: the JSON object itself is not the field
    with pytest.raises(ContractError):
        contracts.encode(contracts.ARTICLES, {**article_message(doc), "features": _fields(payload)})


def test_the_input_digest_tells_apart_inputs_that_concatenate_alike() -> None:
    assert input_digest("ab", "c", None) != input_digest("a", "bc", None)
    assert input_digest("a", "b", None) == input_digest("a", "b", "")
    assert input_digest("\ud800", "text", "en")  # a lone surrogate (valid in JSON) does not break it
