"""The clusterer's vectorised arithmetic gives the very floats of the per-event computations it replaced.

Scores decide thresholds and tie-breaks, and a restored state must score exactly as an uninterrupted one, so the
faster paths (integer dot products of embeddings, dot products and norms of all candidates in one NumPy pass, IDF
memoised by frequency) are compared bit for bit with straightforward reference computations written here.

Every test runs twice: with the C kernel of scoring (transform/_scoring.c) and with the pure-Python path.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from itertools import islice

import numpy as np
import pytest

from bench.quality import load_corpus, synthetic_stream
from transform.clustering import (
    ClusteringConfig,
    StoryClusterer,
    _Event,
    _features,
    _fixed,
    _unit_norm,
    _Vocabulary,
)
from transform.documents import ArticleDoc
from transform.scoring import load_kernel


@pytest.fixture(autouse=True, params=["kernel", "python"])
def scoring_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The clusterers made in a test score with the C kernel, or with the pure-Python path."""
    if request.param == "kernel":
        if load_kernel() is None:
            pytest.skip("the C kernel of scoring is not built")
    else:
        monkeypatch.setattr("transform.clustering.load_kernel", lambda: None)
    return request.param


def _reference_norm(vector: np.ndarray) -> float:
    return math.sqrt(math.fsum((vector * vector).tolist()))


def _float16_vectors(rng: np.random.Generator, count: int, dim: int = 384) -> list[np.ndarray]:
    """Unit vectors rounded to float16, as the encoder's messages carry them, back in float64."""
    out = []
    for _ in range(count):
        raw = rng.standard_normal(dim)
        out.append((raw / np.linalg.norm(raw)).astype("<f2").astype(np.float64))
    return out


def test_integer_norms_equal_fsum_norms_for_vectors_and_their_sums() -> None:
    rng = np.random.default_rng(3)
    vectors = _float16_vectors(rng, 60)
    total = np.zeros(384)
    for vector in vectors:
        total = total + vector
        for value in (vector, total):
            fixed = _fixed(value)
            assert fixed is not None
            assert _unit_norm(value, fixed) == _reference_norm(value)


def test_values_beyond_the_exact_range_fall_back_to_fsum() -> None:
    big = np.full(384, 65504.0) * 3000  # exact sums of float16 values, squares beyond 2**53
    assert _unit_norm(big, _fixed(big)) == _reference_norm(big)
    assert _fixed(np.array([0.1, 0.2])) is None  # not multiples of 2**-24
    assert _fixed(np.array([1.0, np.inf])) is None
    assert _fixed(np.array([np.nan, 1.0])) is None
    assert _fixed(np.zeros(0)) is None


@pytest.mark.parametrize("members", [1, 3, 40, 300])
def test_integer_cosines_equal_fsum_cosines(members: int) -> None:
    rng = np.random.default_rng(members)
    article = _float16_vectors(rng, 1)[0]
    events = []
    for number in range(12):
        event = _Event(f"evt_{number}")
        for vector in _float16_vectors(rng, members):
            event._add_vector(vector)
        events.append(event)
    fast: dict[str, float] = {}
    StoryClusterer._cosines(article, _fixed(article), _unit_norm(article), events, fast)
    slow: dict[str, float] = {}
    StoryClusterer._cosines(article, None, _unit_norm(article), events, slow)
    for event in events:
        assert event.vec_sum is not None
        reference = math.fsum((event.vec_sum * article).tolist()) / (
            _reference_norm(article) * _reference_norm(event.vec_sum)
        )
        assert fast[event.event_id] == slow[event.event_id] == reference


def _docs(count: int) -> list[ArticleDoc]:
    return synthetic_stream(load_corpus(), count, seed=11)


def test_dot_products_and_norms_equal_the_per_event_computation() -> None:
    """Every candidate's text and cue dot product and norm, as the set-intersection loop and per-event arrays gave."""
    config = ClusteringConfig(embedding_model="none")
    clusterer = StoryClusterer(config)
    docs = _docs(500)
    for doc in docs[:420]:
        clusterer.assign(doc)
    compared = 0
    for doc in docs[420:]:
        features = _features(doc, config, None)
        term_keys, cue_keys = list(features.terms), list(features.cues)
        term_ids, term_frequencies = clusterer._terms.lookup(term_keys)
        cue_ids, cue_frequencies = clusterer._cues.lookup(cue_keys)
        assert term_frequencies == [clusterer._terms.df(key) for key in term_keys]
        assert cue_frequencies == [clusterer._cues.df(key) for key in cue_keys]
        total = 1 + clusterer.article_count
        term_idf = {key: math.log(total / (1 + clusterer._terms.df(key))) + 1.0 for key in term_keys}
        cue_idf = {key: math.log(total / (1 + clusterer._cues.df(key))) + 1.0 for key in cue_keys}
        assert clusterer._idfs(term_keys, clusterer._terms) == term_idf
        events = list(islice(clusterer._events.values(), 0, None, 7))
        arrays = [event.arrays(clusterer._terms, clusterer._cues) for event in events]
        text_dots, text_norms = clusterer._dots_and_norms(
            clusterer._terms,
            [a.term_ids for a in arrays],
            [a.term_sums for a in arrays],
            term_ids,
            np.array(list(features.terms.values()), dtype=np.float64),
            [term_idf[key] ** 2 for key in term_keys],
            scaled=True,
            wanted=True,
        )
        cue_dots, cue_norms = clusterer._dots_and_norms(
            clusterer._cues,
            [a.cue_ids for a in arrays],
            [a.cue_counts for a in arrays],
            cue_ids,
            None,
            [cue_idf[key] ** 2 for key in cue_keys],
            scaled=False,
            wanted=True,
        )
        for position, event in enumerate(events):
            shared = features.terms.keys() & event.term_sum.keys()
            text_dot = math.fsum([features.terms[t] * event.term_sum[t] * term_idf[t] ** 2 for t in shared])
            shared_cues = features.cues & event.cue_counts.keys()
            cue_dot = math.fsum([event.cue_counts[k] * cue_idf[k] ** 2 for k in shared_cues])
            assert text_dots[position] == text_dot
            assert cue_dots[position] == cue_dot
            assert text_norms[position] == (_norm(clusterer, event, terms=True) if text_dot else 0.0)
            assert cue_norms[position] == (_norm(clusterer, event, terms=False) if cue_dot else 0.0)
            compared += bool(text_dot) + bool(cue_dot)
    assert compared > 100  # the stream shares terms and cues with many events: the comparison is not vacuous


def _norm(clusterer: StoryClusterer, event: _Event, *, terms: bool) -> float:
    """The event's TF-IDF (or cue) norm over its own key-sorted array, as computed one event at a time."""
    counts = event.term_sum if terms else event.cue_counts
    vocabulary = clusterer._terms if terms else clusterer._cues
    keys = sorted(counts)
    frequencies = np.array([vocabulary.df(key) for key in keys], dtype=np.float64)
    idf = np.log((1.0 + clusterer.article_count) / (1.0 + frequencies)) + 1.0
    weighted = np.array([counts[key] for key in keys], dtype=np.float64) * idf
    return math.sqrt(float(np.sum(weighted * weighted))) if keys else 0.0


def test_the_scratch_arrays_are_left_zero() -> None:
    config = ClusteringConfig(embedding_model="none")
    clusterer = StoryClusterer(config)
    for doc in _docs(120):
        clusterer.assign(doc)
    for vocabulary in (clusterer._terms, clusterer._cues):
        for array in vocabulary.scratch():
            assert not array.any()


def test_vocabulary_frequencies_by_key_follow_adds_and_subtractions() -> None:
    vocabulary = _Vocabulary()
    rng = random.Random(5)
    live: list[list[str]] = []
    for _ in range(400):
        if live and rng.random() < 0.3:
            gone = live.pop(rng.randrange(len(live)))
            vocabulary.subtract(Counter(gone))
        else:
            keys = list({f"k{rng.randrange(2000)}" for _ in range(rng.randint(1, 30))})
            vocabulary.add(keys)
            live.append(keys)
        probe = [f"k{number}" for number in range(0, 2000, 37)]
        ids, frequencies = vocabulary.lookup(probe)
        assert frequencies == [vocabulary.df(key) for key in probe] == vocabulary.frequencies_of(probe)
        assert all((index >= 0) == (frequency > 0) for index, frequency in zip(ids, frequencies, strict=True))
