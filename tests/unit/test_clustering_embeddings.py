"""The meaning term of story clustering: model bookkeeping, exact restore, cross-script joins."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bench.quality import load_corpus
from newswire.embedding import Embedding
from transform.clustering import FEATURES_VERSION, ClusteringConfig, StaleFeatures, StoryClusterer
from transform.documents import ArticleDoc

STORIES = Path(__file__).parents[1] / "fixtures" / "stories"


@pytest.fixture(scope="module")
def multilingual() -> list[ArticleDoc]:
    return [item.doc for item in load_corpus() if item.doc.article_id.startswith("p3-")]


def test_a_vector_of_another_model_is_recomputed_not_mixed(multilingual: list[ArticleDoc]) -> None:
    clusterer = StoryClusterer()
    assert clusterer.model_id is not None
    foreign = replace(multilingual[0], embedding=Embedding.of("some-other-model", np.ones(512)))
    clusterer.assign(foreign)
    exported = clusterer.export_features(foreign)
    assert exported["embedding"]["model"] == clusterer.model_id
    assert exported["v"] == FEATURES_VERSION


def test_stored_features_of_another_model_are_stale(multilingual: list[ArticleDoc]) -> None:
    original = StoryClusterer()
    original.assign(multilingual[0])
    features = original.export_features(multilingual[0])
    features["embedding"] = {**features["embedding"], "model": "some-other-model"}
    with pytest.raises(StaleFeatures):
        StoryClusterer().restore_features(features, "evt_x")
    without = StoryClusterer(ClusteringConfig(embedding_model="none"))  # no meaning term: vectors are ignored
    without.restore_features(json.loads(json.dumps(features)), "evt_x")
    assert without.event_of(multilingual[0].article_id) == "evt_x"


def test_restored_state_scores_exactly_like_the_original(multilingual: list[ArticleDoc]) -> None:
    docs = sorted(multilingual, key=lambda d: (d.published_at, d.article_id))
    half = len(docs) // 2
    original = StoryClusterer()
    exported = []
    for doc in docs[:half]:
        original.assign(doc)
        exported.append((original.export_features(doc), original.event_of(doc.article_id)))
    restored = StoryClusterer()
    for features, event_id in reversed(exported):  # any order gives the same state
        assert event_id is not None
        restored.restore_features(json.loads(json.dumps(features)), event_id)
    for doc in docs[half:]:
        a, b = original.assign(doc), restored.assign(doc)
        assert (a.event_id, a.merged, a.score) == (b.event_id, b.merged, b.score)


def test_arabic_and_english_reports_of_one_fire_join_and_another_fire_does_not(
    multilingual: list[ArticleDoc],
) -> None:
    by_id = {d.article_id: d for d in multilingual}
    clusterer = StoryClusterer()
    english = clusterer.assign(by_id["p3-s03-01"])  # Cairo market fire
    arabic = clusterer.assign(by_id["p3-s03-02"])
    alexandria = clusterer.assign(by_id["p3-s04-02"])  # another fire in Egypt, 18 days later, in Arabic
    assert not arabic.created and arabic.event_id == english.event_id
    assert alexandria.created
    # Since the tenth pass the two fire reports also join on their figures alone ("مصرع 9 أشخاص", "وأصيب 31",
    # "100 ألف جنيه": 9 dead, 31 injured, 100,000), without the meaning term.
    words_only = StoryClusterer(ClusteringConfig(embedding_model="none"))
    words_only.assign(by_id["p3-s03-01"])
    assert not words_only.assign(by_id["p3-s03-02"]).created


def test_the_meaning_term_joins_reports_that_share_too_few_cues(multilingual: list[ArticleDoc]) -> None:
    by_id = {d.article_id: d for d in multilingual}
    english, russian = by_id["p3-s07-01"], by_id["p3-s07-04"]  # a Shenzhou crew launch
    with_meaning = StoryClusterer()
    with_meaning.assign(english)
    assert not with_meaning.assign(russian).created
    words_only = StoryClusterer(ClusteringConfig(embedding_model="none"))
    words_only.assign(english)
    assert words_only.assign(russian).created  # what the meaning term adds
