"""The near-duplicate index's own MinHash, LSH bands and shingle hashes give exactly the stored definitions:
datasketch's ``affine64`` MinHash over identity-hashed shingles, ``MinHashLSH`` candidates, one ``blake2b`` per
space-joined shingle. Stored signatures depend on those values, so they must not drift."""

from __future__ import annotations

import numpy as np
import pytest
from datasketch import MinHash, MinHashLSH

from transform.minhash import BandIndex, MinHasher
from transform.text import hashed_shingles, shingle_hashes, shingle_tokens, stable_hash64


def _identity(value: int) -> int:
    return value


def _datasketch(values: np.ndarray, num_perm: int = 128) -> MinHash:
    minhash = MinHash(num_perm=num_perm, seed=1, hashfunc=_identity, scheme="affine64")
    minhash.update_batch(values.tolist())
    return minhash


def test_signatures_are_datasketch_affine64_minhashes() -> None:
    rng = np.random.default_rng(3)
    hasher = MinHasher(128)
    template = MinHash(num_perm=128, seed=1, scheme="affine64").permutations
    assert np.array_equal(hasher._a, template[0]) and np.array_equal(hasher._b, template[1])
    for size in (1, 2, 8, 150, 3000):
        values = np.unique(rng.integers(0, 2**64, size=size, dtype=np.uint64))
        expected = _datasketch(values).hashvalues
        got = hasher.signature(values)
        assert got.dtype == np.uint64
        assert np.array_equal(got, expected)
    extremes = np.array([0, 1, 2**63, 2**64 - 1], dtype=np.uint64)
    assert np.array_equal(hasher.signature(extremes), _datasketch(extremes).hashvalues)
    with pytest.raises(ValueError):
        hasher.signature(np.zeros(0, dtype=np.uint64))


def test_band_index_finds_what_minhash_lsh_finds() -> None:
    rng = np.random.default_rng(11)
    hasher = MinHasher(128)
    base = rng.integers(0, 2**64, size=200, dtype=np.uint64)
    sets = {}
    for i in range(60):
        # overlapping sets of every degree, so that some pairs share bands and most do not
        keep = rng.random(base.size) < rng.uniform(0.2, 1.0)
        extra = rng.integers(0, 2**64, size=int(rng.integers(0, 60)), dtype=np.uint64)
        sets[f"a{i}"] = np.unique(np.concatenate([base[keep], extra]))
    lsh, bands = MinHashLSH(num_perm=128, params=(42, 3)), BandIndex(42, 3)
    for key, values in sets.items():
        lsh.insert(key, _datasketch(values), check_duplication=False)
        bands.insert(key, hasher.signature(values))
    for key in ("a3", "a17", "a40"):  # removal forgets a key in every band
        lsh.remove(key)
        bands.remove(key)
        assert key not in bands
    bands.remove("a3")  # twice: ignored
    found_any = False
    for values in sets.values():
        expected = set(lsh.query(_datasketch(values)))
        got = bands.query(hasher.signature(values))
        assert got == expected
        found_any |= len(got) > 1
    assert found_any
    assert len(bands) == 57


def test_band_index_refuses_a_signature_shorter_than_its_bands() -> None:
    # Sliced short, a signature's bands would be empty keys that every such signature shares.
    bands = BandIndex(42, 3)
    short = MinHasher(125).signature(np.arange(1, 20, dtype=np.uint64))
    with pytest.raises(ValueError, match="bands \\* rows = 126"):
        bands.insert("a", short)
    with pytest.raises(ValueError, match="fewer than"):
        bands.query(short)
    assert len(bands) == 0
    longer = MinHasher(128).signature(np.arange(1, 20, dtype=np.uint64))
    bands.insert("b", longer)  # longer is fine: its first 126 values are banded
    assert bands.query(longer[:126]) == {"b"}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "one",
        "exactly five words in it",
        "Genève, le 3 mars : le parlement a voté la loi à 118 voix contre 104, après un débat houleux.",
        "東京で6.1級の地震が発生し、多くの建物が揺れた。",
        "a b a b a b a b a b a b",
    ],
)
def test_shingle_hashes_are_one_blake2b_per_space_joined_shingle(text: str) -> None:
    tokens = shingle_tokens(text)
    if not tokens:
        expected: list[int] = []
    elif len(tokens) <= 5:
        expected = [stable_hash64(" ".join(tokens))]
    else:
        expected = [stable_hash64(" ".join(tokens[i : i + 5])) for i in range(len(tokens) - 4)]
    got = shingle_hashes(tokens, 5)
    assert got.dtype == np.uint64
    assert got.tolist() == expected
    assert list(hashed_shingles(tokens, 5)) == expected
