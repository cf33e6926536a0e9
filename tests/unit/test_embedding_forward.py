"""The encoder's cached forward pass (``newswire.embedding_forward``) against the package's own forward pass."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from newswire.embedding import UseMultilingualEncoder, embedding_input
from newswire.embedding_forward import CachedUseForward

STORIES = Path(__file__).parents[1] / "fixtures" / "stories"


def _inputs() -> list[str]:
    """Title and lead of every third labelled article (seven languages, four scripts), as the pipeline embeds
    them."""
    lines = [line for path in sorted(STORIES.glob("*.jsonl")) for line in path.read_text("utf-8").splitlines()]
    docs = [json.loads(line) for line in lines if line.strip()][::3]
    return [embedding_input(d["title"], d["text"]) for d in docs]


@pytest.fixture(scope="module")
def package() -> UseMultilingualEncoder:
    return UseMultilingualEncoder(cached_forward=False)


@pytest.fixture(scope="module")
def reference(package: UseMultilingualEncoder) -> np.ndarray:
    """The package's vectors, one article at a time."""
    return np.concatenate([package.encode([text]) for text in _inputs()])


def _assert_same(vectors: np.ndarray, reference: np.ndarray) -> None:
    cosines = np.sum(vectors * reference, axis=1) / np.linalg.norm(vectors, axis=1) / np.linalg.norm(reference, axis=1)
    assert np.min(cosines) >= 0.999999
    assert np.max(np.abs(vectors - reference)) < 1e-5  # float32 rounding of sums taken in another order


def test_cached_forward_gives_the_packages_vectors(package: UseMultilingualEncoder, reference: np.ndarray) -> None:
    """Cold cache, warm cache, one by one and in passes of several articles: always the package's vectors."""
    encoder = UseMultilingualEncoder()
    texts = _inputs()
    assert encoder.tokenizer_name == "sentencepiece"
    _assert_same(np.concatenate([encoder.encode(texts[s : s + 6]) for s in range(0, len(texts), 6)]), reference)
    forward = encoder._forward
    assert forward is not None and forward.cache.used > 0 and forward.cache.resets == 0
    _assert_same(np.concatenate([encoder.encode([text]) for text in texts]), reference)  # every id cached now
    _assert_same(encoder.encode(texts), reference)  # one call: several passes of TOKEN_BUDGET tokens


def test_a_full_cache_is_emptied_and_a_pass_larger_than_the_cache_gets_its_own(
    package: UseMultilingualEncoder, reference: np.ndarray
) -> None:
    texts = _inputs()
    with threadpool_limits(1, user_api="blas"):  # as the encoder runs it
        small = CachedUseForward(package._backend, capacity=300)  # a few articles' distinct ids
        _assert_same(np.concatenate([small.encode([text]) for text in texts]), reference)
        assert small.cache.resets > 0 and small.cache.used <= 300
        tiny = CachedUseForward(package._backend, capacity=8)  # fewer than one article's distinct ids
        _assert_same(tiny.encode(texts[:5]), reference[:5])
        assert tiny.cache.used == 0  # those passes used caches of their own


def test_vectors_of_an_empty_text_and_of_a_long_one_match(package: UseMultilingualEncoder) -> None:
    texts = ["", "x", " ".join(["Hualien earthquake 花莲地震 землетрясение"] * 200)]  # the last: > TOKEN_BUDGET tokens
    _assert_same(UseMultilingualEncoder().encode(texts), package.encode(texts))
