"""The C kernel of candidate scoring (transform/_scoring.c) gives the floats of the pure-Python path it replaces.

Its ports of ``math.fsum`` and of NumPy's ``np.add.reduce`` are compared with the originals over many lengths and
values; its IDF table with the NumPy computation per key; and a clusterer scoring with the kernel with one scoring in
pure Python, article by article (candidates, scores, assignments). Also: a stale or mismatched build is refused.
"""

from __future__ import annotations

import logging
import math
from array import array
from datetime import timedelta

import numpy as np
import pytest

from bench.quality import load_corpus, synthetic_stream
from transform import scoring
from transform.clustering import ClusteringConfig, StoryClusterer
from transform.errors import ClusteringError

kernel = scoring.load_kernel()
needs_kernel = pytest.mark.skipif(kernel is None, reason="the C kernel of scoring is not built")


@needs_kernel
def test_fsum_is_math_fsum() -> None:
    rng = np.random.default_rng(1)
    for length in range(300):
        # wide exponents and signs: cancellations and half-way cases of the final correction
        values = rng.standard_normal(length) * 10.0 ** rng.integers(-20, 20, length).astype(np.float64)
        assert kernel.fsum(values) == math.fsum(values.tolist())
        ties = np.array([1.0, 1e100, 1.0, -1e100, 1e-16] * (length % 7))
        assert kernel.fsum(ties) == math.fsum(ties.tolist())
    for special in ([math.inf, 1.0], [-math.inf, 2.0, -math.inf], [math.nan, 1.0], [0.5, -0.0], [-0.0]):
        result, expected = kernel.fsum(np.array(special)), math.fsum(special)
        assert result == expected or (math.isnan(result) and math.isnan(expected))
        assert math.copysign(1.0, result) == math.copysign(1.0, expected)
    with pytest.raises(ValueError):
        kernel.fsum(np.array([math.inf, -math.inf]))
    with pytest.raises(OverflowError):
        kernel.fsum(np.array([1.7e308, 1.7e308]))


@needs_kernel
def test_add_reduce_is_numpy_add_reduce_for_every_length() -> None:
    rng = np.random.default_rng(2)
    for length in [*range(1001), 4095, 8192, 8193, 20000, 100001]:
        for values in (rng.random(length), rng.random(length) * 10.0 ** rng.integers(-8, 8, length)):
            assert kernel.add_reduce(values) == float(np.add.reduce(values))
        signed = rng.standard_normal(length)
        assert kernel.add_reduce(signed) == float(np.add.reduce(signed))
    for values in ([-0.0], [-0.0] * 9, [], [-0.0] * 200):
        result = kernel.add_reduce(np.array(values, dtype=np.float64))
        expected = float(np.add.reduce(np.array(values, dtype=np.float64)))
        assert result == expected
        assert math.copysign(1.0, result) == math.copysign(1.0, expected)


@needs_kernel
def test_idf_of_the_needed_frequencies_equals_the_per_key_numpy_idf() -> None:
    """The IDF the kernel reads (by the position of a key's frequency among the needed ones) holds the floats NumPy
    computes for the keys' frequencies, wherever they stand in an array and whatever its length; and only the
    frequencies of the events with a non-zero dot are needed."""
    rng = np.random.default_rng(4)
    clusterer = StoryClusterer(ClusteringConfig(embedding_model="none"))
    for total in (0, 1, 7, 100, 2500):
        clusterer._article_event = {str(n): "e" for n in range(total)}
        by_id = rng.integers(0, total + 1, 3000)
        for length in (1, 3, 8, 17, 64, 129, 1000):
            event_ids = [np.sort(rng.choice(3000, length, replace=False)) for _ in range(3)]
            dots = [1.5, 0.0, -2.0]
            needed, idf = clusterer._needed_idf(by_id, event_ids, dots)
            held = np.concatenate([event_ids[0], event_ids[2]])
            assert needed.tolist() == sorted(set(by_id[held].tolist()))
            frequencies = by_id[held]
            expected = np.log((1.0 + total) / (1.0 + frequencies)) + 1.0
            assert idf[np.searchsorted(needed, frequencies)].tolist() == expected.tolist()


@needs_kernel
def test_frequencies_are_the_distinct_frequencies_of_the_events_with_a_dot() -> None:
    """Sorted and distinct, only events whose dot is not 0, the same on every call (its marks left clear, also after
    an error half-way)."""
    rng = np.random.default_rng(6)
    for _ in range(200):
        by_id = rng.integers(0, int(rng.integers(1, 5000)), 400)
        event_ids = [rng.integers(0, 400, int(rng.integers(0, 50))) for _ in range(int(rng.integers(0, 8)))]
        dots = rng.choice([0.0, 0.5, -1.0], len(event_ids)).tolist()
        held = [ids for ids, dot in zip(event_ids, dots, strict=True) if dot]
        expected = np.unique(np.concatenate([by_id[ids] for ids in held])).tolist() if held else []
        assert kernel.frequencies(event_ids, dots, by_id) == expected
        with pytest.raises(IndexError):  # an id beyond the table after some marks were made
            kernel.frequencies([*event_ids, np.array([400])], [*dots, 1.0], by_id)
        assert kernel.frequencies(event_ids, dots, by_id) == expected


@needs_kernel
def test_hits_equal_numpy_add_at_with_ties_and_the_cut() -> None:
    rng = np.random.default_rng(5)
    for _ in range(200):
        slots = int(rng.integers(1, 60))
        postings = [array("q", rng.choice(slots, int(rng.integers(0, slots + 1)), replace=False).tolist())]
        postings += [
            array("q", rng.choice(slots, int(rng.integers(0, min(8, slots) + 1)), replace=False).tolist())
            for _ in range(30)
        ]
        weights = [float(rng.choice([1.0, 1.5, 2.25, 1.0 + rng.random()])) for _ in postings]
        max_posting, max_candidates = int(rng.integers(1, slots + 1)), int(rng.integers(1, 25))
        kept = [1 <= len(posting) <= max_posting for posting in postings]
        totals = np.zeros(slots)
        used = [posting for posting, keep in zip(postings, kept, strict=True) if keep]
        if used:
            index = np.frombuffer(b"".join(used), dtype=np.int64)
            lengths = [len(posting) for posting in used]
            np.add.at(totals, index, np.repeat([w for w, k in zip(weights, kept, strict=True) if k], lengths))
        hit = totals.nonzero()[0]
        if len(hit) > max_candidates:
            cut = np.partition(totals[hit], len(hit) - max_candidates)[len(hit) - max_candidates]
            hit = hit[totals[hit] >= cut]
        scratch = np.zeros(slots + 3)
        got_slots, negated = kernel.hits(postings, weights, scratch, max_posting, max_candidates)
        assert sorted(zip(got_slots, negated, strict=True)) == sorted(
            zip(hit.tolist(), (-totals[hit]).tolist(), strict=True)
        )
        assert not scratch.any()


@needs_kernel
def test_kernel_rejects_bad_input_and_leaves_scratch_zero() -> None:
    weights, squares = np.zeros(4), np.zeros(4)
    with pytest.raises(IndexError):
        kernel.dots([np.array([9], dtype=np.int64)], [np.ones(1)], [1], None, [2.0], weights, squares, False)
    assert not weights.any() and not squares.any()
    with pytest.raises(TypeError):
        kernel.dots([np.array([1], dtype=np.int32)], [np.ones(1)], [1], None, [2.0], weights, squares, False)
    with pytest.raises(IndexError):  # frequency 5 is not among the needed ones
        kernel.norms(
            [np.array([1], dtype=np.int64)], [np.ones(1)], [1.0], np.array([0, 5]), np.array([0, 4]), np.ones(2)
        )
    with pytest.raises(ValueError):
        kernel.norms([np.array([1], dtype=np.int64)], [np.ones(1)], [1.0], np.array([0, 5]), np.array([5]), np.ones(2))
    with pytest.raises(IndexError):
        kernel.frequencies([np.array([2], dtype=np.int64)], [1.0], np.array([0, 5]))
    totals = np.zeros(2)
    with pytest.raises(IndexError):
        kernel.hits([array("q", [0, 7])], [1.0], totals, 10, 5)
    assert not totals.any()


class _Shrinking:
    """An int (or float) whose conversion empties the list it stands in, as a Python ``__index__``/``__float__`` can."""

    def __init__(self, victim: list, value: float) -> None:
        self.victim, self.value = victim, value

    def __index__(self) -> int:
        self.victim.clear()
        return int(self.value)

    def __float__(self) -> float:
        self.victim.clear()
        return float(self.value)


@needs_kernel
def test_lists_emptied_during_a_call_are_not_read_past_their_end() -> None:
    """Reading an item may run Python code that shrinks a list the kernel is reading: it reads what it was given."""
    weights, squares = np.zeros(4), np.zeros(4)
    article_ids: list = [0, 1, 2]
    article_ids[0] = _Shrinking(article_ids, 0)
    dots = kernel.dots(
        [np.array([0, 2], dtype=np.int64)], [np.ones(2)], article_ids, None, [2.0, 2.0, 2.0], weights, squares, False
    )
    assert dots == [4.0] and article_ids == []
    assert not weights.any() and not squares.any()
    weights_list: list = [1.0, 2.0, 3.0]
    weights_list[0] = _Shrinking(weights_list, 1.0)
    totals = np.zeros(3)
    postings = [array("q", [0]), array("q", [1]), array("q", [2])]
    slots, negated = kernel.hits(postings, weights_list, totals, 10, 5)
    assert sorted(zip(slots, negated, strict=True)) == [(0, -1.0), (1, -2.0), (2, -3.0)]
    assert not totals.any()
    dot_list: list = [1.0, 1.0]
    dot_list[0] = _Shrinking(dot_list, 1.0)
    ids = [np.array([0], dtype=np.int64), np.array([1], dtype=np.int64)]
    assert kernel.frequencies(ids, dot_list, np.array([3, 7])) == [3, 7]


def test_max_candidates_below_one_is_refused_by_the_config() -> None:
    """The kernel keeps every hit for max_candidates < 1 where the Python path fails: the config never allows it."""
    for value in (0, -1):
        with pytest.raises(ClusteringError, match="max_candidates"):
            ClusteringConfig(embedding_model="none", max_candidates=value)


@needs_kernel
def test_the_idf_work_per_article_does_not_grow_with_the_live_articles(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel's norms get the IDF of just the distinct frequencies of the scored events' keys, not a table by
    every frequency up to the live article count: with a large live count the tables stay that small."""
    clusterer = StoryClusterer(ClusteringConfig(embedding_model="none", max_candidates=6, max_posting=40))
    docs = synthetic_stream(load_corpus(), 300, seed=29)
    for doc in docs[:200]:
        clusterer.assign(doc)
    # a live count far beyond any frequency: the old table had this many entries for every article scored
    clusterer._article_event.update({f"padding-{n}": "none" for n in range(200_000)})
    lengths: list[tuple[int, int]] = []
    real = clusterer._kernel

    class Recording:
        def __getattr__(self, name: str):
            return getattr(real, name)

        def norms(self, event_ids, event_values, dots, frequencies, needed, idf):
            held = [ids for ids, dot in zip(event_ids, dots, strict=True) if dot]
            lengths.append((len(idf), len(set(frequencies[np.concatenate(held)].tolist()))))
            return real.norms(event_ids, event_values, dots, frequencies, needed, idf)

    monkeypatch.setattr(clusterer, "_kernel", Recording())
    for doc in docs[200:]:
        clusterer.assign(doc)
    assert len(lengths) > 100
    assert all(length == distinct for length, distinct in lengths)
    assert max(length for length, _ in lengths) < 2_000


@needs_kernel
def test_a_kernel_that_sums_otherwise_is_refused(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A NumPy (or Python) summing differently from the kernel's ports: the kernel is refused at load, logged."""
    assert scoring._self_check(kernel) == ""

    class Summing:
        def __init__(self, add_reduce, fsum) -> None:
            self.add_reduce, self.fsum = add_reduce, fsum

    def off_by_one_bit(values: np.ndarray) -> float:
        total = kernel.add_reduce(values)
        return math.nextafter(total, math.inf) if len(values) > 128 else total

    assert "add_reduce of 129" in scoring._self_check(Summing(off_by_one_bit, kernel.fsum))
    assert "fsum of 0" in scoring._self_check(Summing(kernel.add_reduce, lambda values: 1.0))
    monkeypatch.setattr(scoring, "_self_check", lambda module: "add_reduce of 129 values")
    module, reason = scoring._load()
    assert module is None and "not bit-identical" in reason
    monkeypatch.setattr(scoring, "_loaded", None)
    with caplog.at_level(logging.WARNING, logger="transform.scoring"):
        assert scoring.load_kernel() is None
    assert [record.levelno for record in caplog.records] == [logging.WARNING]
    assert "add_reduce of 129" in caplog.records[0].getMessage()


def _score_all(clusterer: StoryClusterer, docs: list, reference: StoryClusterer) -> int:
    compared = 0
    for number, doc in enumerate(docs):
        features = clusterer._features_of(doc)
        scored = [(score, event.event_id) for score, event in clusterer._score_candidates(features)]
        expected = [(score, event.event_id) for score, event in reference._score_candidates(features)]
        assert scored == expected
        compared += len(scored)
        assert clusterer.assign(doc) == reference.assign(doc)
        if number % 97 == 96:  # eviction and drops change postings, frequencies and slots
            moment = doc.published_at - timedelta(days=5)
            assert clusterer.evict_before(moment) == reference.evict_before(moment)
            victim = clusterer.event_ids()[len(clusterer) // 2]
            assert clusterer.drop(victim) == reference.drop(victim)
    return compared


@needs_kernel
def test_kernel_and_python_paths_score_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    config = ClusteringConfig(embedding_model="none", max_candidates=6, max_posting=40)
    with_kernel = StoryClusterer(config)
    monkeypatch.setattr("transform.clustering.load_kernel", lambda: None)
    in_python = StoryClusterer(config)
    assert with_kernel._kernel is not None and in_python._kernel is None
    docs = synthetic_stream(load_corpus(), 700, seed=23)
    assert _score_all(with_kernel, docs, in_python) > 500
    assert with_kernel.event_ids() == in_python.event_ids()
    for event_id in with_kernel.event_ids()[::25]:
        assert with_kernel.profile(event_id) == in_python.profile(event_id)


def test_stale_or_foreign_builds_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NEWSWIRE_SCORING_KERNEL", "0")
    assert scoring._load()[0] is None
    monkeypatch.delenv("NEWSWIRE_SCORING_KERNEL")
    if kernel is None:
        return
    assert scoring._load()[0] is kernel
    edited = tmp_path / "_scoring.c"
    edited.write_bytes(scoring._SOURCE.read_bytes() + b"\n/* edited */\n")
    monkeypatch.setattr(scoring, "_SOURCE", edited)
    module, reason = scoring._load()
    assert module is None and "stale" in reason
    monkeypatch.setattr(scoring, "ABI", scoring.ABI + 1)
    module, reason = scoring._load()
    assert module is None and "ABI" in reason
    monkeypatch.setattr(scoring, "_loaded", None)
    with caplog.at_level(logging.WARNING, logger="transform.scoring"):
        assert scoring.load_kernel() is None
        assert scoring.load_kernel() is None
    assert [record.levelno for record in caplog.records] == [logging.WARNING]  # logged once


def test_an_install_with_a_compiler_built_the_kernel() -> None:
    """The kernel tests above skip where the kernel is not built (an install without a compiler runs the Python
    path, by design); on a machine with a C compiler, such as CI's, a missing or refused build is a failed install,
    not a reason to skip."""
    import shutil
    import sysconfig

    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        pytest.skip(f"no C compiler ({compiler}): the pure-Python path is the expected one")
    module, reason = scoring._load()
    assert module is not None, reason
