"""MinHash signatures and their LSH band index, for near-duplicate candidates (:mod:`transform.neardup`).

The signatures are datasketch's ``MinHash`` of scheme ``affine64`` over shingle hashes taken as they are
(identity hash function, ``seed=1``): each value is ``min(a * fmix64(h) + b)`` over the shingles ``h``, modulo
2**64, with datasketch's permutations ``(a, b)``. They are stored with every article, so these are the very
values datasketch computes (``tests/unit/test_minhash.py`` checks it), here in one NumPy expression per
article: a ``MinHash`` object and ``MinHashLSH`` spend most of their time in per-call Python (argument checks,
one hash-function call per shingle, a byte swap per band) at the ~150 shingles of a news article, and importing
datasketch imports SciPy, which made every transform process start slower than any batch it then ran.

The band index is the structure ``MinHashLSH(params=(bands, rows))`` keeps: one table per band, keyed by the
band's values, so a query finds exactly the articles that agree with it on every value of at least one band.

Attribution: the values follow datasketch's (MIT licence, https://github.com/ekzhu/datasketch) ``affine64``
``MinHash`` and its ``MinHashLSH``, because signatures already stored must stay what they are: the permutation
draws are datasketch's for seed 1, and ``fmix64`` is the finaliser of MurmurHash3 (public domain), which
datasketch applies to each input. ``tests/unit/test_minhash.py`` is the guard: it compares signatures and LSH
candidates with datasketch itself, which is therefore a test dependency only.
"""

from __future__ import annotations

import operator
from collections import deque
from itertools import repeat

import numpy as np

__all__ = ["BandIndex", "MinHasher"]

# The MurmurHash3 64-bit finaliser datasketch applies to every input before its affine permutations.
_FMIX_SHIFT = np.uint64(33)
_FMIX_MULTIPLIERS = (np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53))


def _fmix64(values: np.ndarray) -> np.ndarray:
    """MurmurHash3's ``fmix64`` of each ``uint64`` (multiplications wrap modulo 2**64, as intended)."""
    values = values ^ (values >> _FMIX_SHIFT)
    values = values * _FMIX_MULTIPLIERS[0]
    values = values ^ (values >> _FMIX_SHIFT)
    values = values * _FMIX_MULTIPLIERS[1]
    return values ^ (values >> _FMIX_SHIFT)


class MinHasher:
    """``num_perm`` MinHash values of a set of 64-bit shingle hashes: datasketch's ``affine64`` scheme, seed 1."""

    def __init__(self, num_perm: int) -> None:
        self.num_perm = num_perm
        # datasketch's affine64 permutations for seed 1: odd multipliers a, offsets b, from one RandomState
        generator = np.random.RandomState(1)
        self._a = generator.randint(0, 1 << 63, num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        self._b = generator.randint(0, 1 << 64, num_perm, dtype=np.uint64)

    def signature(self, shingles: np.ndarray) -> np.ndarray:
        """The MinHash values of the non-empty ``uint64`` array ``shingles`` (one per permutation)."""
        if shingles.size == 0:
            raise ValueError("a MinHash of no shingles has no values")
        mixed = _fmix64(np.asarray(shingles, dtype=np.uint64)).reshape(-1, 1)
        values = mixed * self._a
        values += self._b  # in place: one shingles-by-permutations array, not two
        return values.min(axis=0)


class BandIndex:
    """LSH over MinHash signatures: ``bands`` bands of ``rows`` consecutive values, one hash table per band."""

    def __init__(self, bands: int, rows: int) -> None:
        width = rows * 8  # bytes of one band's values
        self._span = bands * rows
        self._slices = [slice(start, start + width) for start in range(0, bands * width, width)]
        # Holders of a band are a tuple, not a set: almost every band has one holder, and ~42 sets per article were
        # most of the objects the garbage collector walks (a tuple of strings is soon no longer tracked by it).
        self._tables: list[dict[bytes, tuple[str, ...]]] = [{} for _ in range(bands)]
        self._keys: dict[str, tuple[bytes, ...]] = {}

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def _bands(self, signature: np.ndarray) -> tuple[bytes, ...]:
        if len(signature) < self._span:
            # Sliced short, its bands would be short or empty keys shared by every such signature.
            raise ValueError(f"a signature of {len(signature)} values has fewer than bands * rows = {self._span}")
        raw = np.ascontiguousarray(signature[: self._span], dtype="<u8").tobytes()
        return tuple(map(raw.__getitem__, self._slices))

    def insert(self, key: str, signature: np.ndarray) -> None:
        """Index ``key`` under each band of ``signature``; a key already held is left as it is."""
        if key in self._keys:
            return
        bands = self._bands(signature)
        self._keys[key] = bands
        # table[band] = table.get(band, ()) + (key,) for every band, with C-level iterators
        held = map(dict.get, self._tables, bands, repeat(()))
        deque(map(dict.__setitem__, self._tables, bands, map(operator.add, held, repeat((key,)))), maxlen=0)

    def remove(self, key: str) -> None:
        """Forget ``key``; a key not held is ignored."""
        bands = self._keys.pop(key, None)
        if bands is None:
            return
        for table, band in zip(self._tables, bands, strict=True):
            holders = tuple(holder for holder in table[band] if holder != key)
            if holders:
                table[band] = holders
            else:
                del table[band]

    def query(self, signature: np.ndarray) -> set[str]:
        """Every key that agrees with ``signature`` on all the values of at least one band."""
        return set().union(*filter(None, map(dict.get, self._tables, self._bands(signature))))
