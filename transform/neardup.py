"""Near-duplicate detection: syndicated copies of the same article, verbatim or lightly edited.

Candidates come from MinHash LSH over word 5-shingles of the body, so the cost of one lookup does not
grow with the number of indexed articles; the decision is then made on the *exact* shingle sets of each
candidate pair, so an LSH false positive can never become a duplicate.

The score of a pair is the larger of

* Jaccard similarity ``|A∩B| / |A∪B|``: verbatim copies score ~1, a copy with one sentence rewritten
  ~0.8, two independently written reports of the same story < 0.1 (they share facts, not 5-word runs);
* containment ``|A∩B| / min(|A|, |B|)``, for the copies Jaccard undervalues: a trimmed copy (last
  paragraphs cut) or one with an outlet's boilerplate added is still almost entirely inside the other.
  Containment only counts when the smaller side has at least ``min_containment_shingles`` shingles,
  since a short text is "contained" in a long one by chance far more easily.

Outlet boilerplate (a subscription footer, a "Follow us on ..." line) would otherwise make two
*different* articles of one outlet look alike, so shingles that recur at the head or tail of several
live articles of the same source are ignored when comparing that source's articles.
"""

from __future__ import annotations

import base64
import heapq
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from transform.documents import ArticleDoc
from transform.errors import NearDuplicateError, StaleSignature
from transform.minhash import BandIndex, MinHasher
from transform.text import shingle_hashes, shingle_tokens

__all__ = [
    "DEFAULT_NUM_PERM",
    "DEFAULT_THRESHOLD",
    "SIGNATURE_VERSION",
    "NearDuplicate",
    "NearDuplicateError",
    "NearDuplicateIndex",
    "StaleSignature",
    "shingle_list",
]

# Measured on the labelled corpus (bench/quality.py): copies score >= 0.6, independent reports of the
# same story <= 0.15 (see bench/results/quality.json); 0.5 sits in the gap with margin on both sides.
DEFAULT_THRESHOLD = 0.5
# MinHash values per signature: what the transform's index uses, and what extraction workers carry for it.
DEFAULT_NUM_PERM = 128
_SHINGLE_SIZE = 5
# LSH banding: 42 bands of 3 rows (126 of 128 permutations). The chance that a pair becomes a candidate
# is 1-(1-J^3)^42: 0.68 at J=0.3, 0.94 at J=0.4, >0.99 at J>=0.5, ~0 at J<0.05, so every pair that can
# reach the threshold by Jaccard is verified, and a trimmed copy (J~0.4-0.5, containment ~1) almost always.
_LSH_BANDS = 42
_LSH_ROWS = 3
_EDGE_SHINGLES = 40  # head/tail shingles watched for per-source boilerplate
_BOILERPLATE_MIN_DOCS = 3
# Hostile or broken extraction can yield megabytes of "text": the head is plenty to recognise a copy
# and bounds the cost of one article.
_MAX_TEXT_CHARS = 100_000


# Bumped whenever shingling or hashing changes: signatures stored by an older version then no longer
# describe what this code would compute, and must be rebuilt from the text.
SIGNATURE_VERSION = 1


def shingle_list(text: str) -> np.ndarray:
    """The shingle hashes of an article body in text order (repeats kept): what the index compares, and what
    the extraction workers carry in the article message (:mod:`transform.carried`), so that both are one
    computation by construction."""
    return shingle_hashes(shingle_tokens(text[:_MAX_TEXT_CHARS]), _SHINGLE_SIZE)


@dataclass(frozen=True)
class NearDuplicate:
    """The indexed article ``duplicate_of`` is a copy of (or copied by) the queried one."""

    duplicate_of: str
    score: float
    method: str  # "minhash": LSH candidate verified on exact shingle sets


@dataclass(frozen=True)
class _Entry:
    article_id: str
    source: str
    published_at: datetime
    shingles: np.ndarray  # sorted unique uint64
    edges: frozenset[int]  # head/tail shingles (for the per-source boilerplate counter)


class NearDuplicateIndex:
    """Online index of recent articles for near-duplicate lookup.

    ``find`` then ``add`` per article, in arrival order; ``evict_before`` bounds memory (the caller runs
    it periodically, e.g. with ``now - horizon``). Only articles published within ``horizon`` of each
    other are compared: a text republished months later is a new publication, not a syndicated copy.
    """

    def __init__(
        self,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        num_perm: int = DEFAULT_NUM_PERM,
        horizon: timedelta = timedelta(days=30),
        min_shingles: int = 8,
        min_containment_shingles: int = 40,
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise NearDuplicateError(f"threshold must be in (0, 1], got {threshold}")
        if num_perm < _LSH_BANDS * _LSH_ROWS:
            raise NearDuplicateError(f"num_perm must be >= {_LSH_BANDS * _LSH_ROWS}, got {num_perm}")
        if horizon <= timedelta(0):
            raise NearDuplicateError("horizon must be positive")
        self.threshold = threshold
        self.num_perm = num_perm
        self.horizon = horizon
        self.min_shingles = min_shingles
        self.min_containment_shingles = min_containment_shingles
        self._minhasher = MinHasher(num_perm)
        self._lsh = BandIndex(_LSH_BANDS, _LSH_ROWS)
        self._entries: dict[str, _Entry] = {}
        self._by_time: list[tuple[datetime, str]] = []  # min-heap for eviction
        self._edge_counts: dict[str, Counter[int]] = {}
        self._boilerplate: dict[str, set[int]] = {}  # per source: edge shingles seen in enough docs
        self._last: tuple[str, str, np.ndarray] | None = None  # find() then add() share one shingling
        self._last_minhash: tuple[str, np.ndarray, np.ndarray] | None = None
        self._last_unique: tuple[str, str, np.ndarray] | None = None
        self._last_entry: tuple[np.ndarray, _Entry] | None = None  # add() then export_signature() share one

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, article_id: object) -> bool:
        return article_id in self._entries

    # --- public API -------------------------------------------------------------------------------

    def find(self, doc: ArticleDoc) -> NearDuplicate | None:
        """The indexed article ``doc`` most resembles, if the resemblance reaches the threshold.

        Ties go to the earliest-published article, so a chain of copies points at the original.
        """
        shingles = self._shingles(doc)
        if shingles.size < self.min_shingles or not self._entries:
            return None
        best: tuple[float, datetime, str] | None = None
        for key in self._lsh.query(self._minhash(doc.article_id, shingles)):
            entry = self._entries.get(key)
            if entry is None or entry.article_id == doc.article_id:
                continue
            if abs(entry.published_at - doc.published_at) > self.horizon:
                continue
            score = self._score(shingles, doc.source, entry)
            if score < self.threshold:
                continue
            candidate = (score, entry.published_at, entry.article_id)
            if best is None or (-score, entry.published_at, entry.article_id) < (-best[0], best[1], best[2]):
                best = candidate
        if best is None:
            return None
        return NearDuplicate(duplicate_of=best[2], score=round(best[0], 4), method="minhash")

    def prime_shingles(self, doc: ArticleDoc, shingles: np.ndarray) -> None:
        """Let the next :meth:`find`/:meth:`add`/:meth:`export_signature` of ``doc`` use ``shingles``, its
        :func:`shingle_list` computed elsewhere (an extraction worker, see :mod:`transform.carried`) for the very
        text of ``doc``, instead of tokenising and hashing the text again here: the same lookups and signature."""
        if shingles.dtype != np.uint64 or shingles.ndim != 1:
            raise NearDuplicateError("primed shingles must be a 1-D uint64 array")
        shingles.setflags(write=False)  # shared with the index entry, as a computed list is
        self._last = (doc.article_id, doc.text, shingles)
        self._last_unique = None  # derived from the list primed before, if any, for this very doc
        self._last_minhash = None  # likewise (a MinHash primed for the shingles before is not one of these)

    def prime_minhash(self, doc: ArticleDoc, minhash: np.ndarray) -> None:
        """Let the next :meth:`find`/:meth:`add`/:meth:`export_signature` of ``doc`` use ``minhash``, the MinHash of
        the shingles primed for it (:meth:`prime_shingles`), computed elsewhere (an extraction worker, see
        :mod:`transform.carried`), instead of computing it here: the same lookups and signature. Shingles primed
        again for ``doc`` afterwards (different ones) make it compute theirs."""
        if minhash.dtype != np.uint64 or minhash.shape != (self.num_perm,):
            raise NearDuplicateError(f"a primed MinHash must be {self.num_perm} uint64 values")
        last = self._last
        if last is None or last[0] != doc.article_id or last[1] != doc.text:
            raise NearDuplicateError("a MinHash is primed after the shingles it was computed from")
        minhash.setflags(write=False)
        self._last_minhash = (doc.article_id, self._shingles(doc), minhash)

    def add(self, doc: ArticleDoc) -> None:
        """Index ``doc``. Adding an article id twice is a no-op (at-least-once delivery replays)."""
        if doc.article_id in self._entries:
            return
        entry = self._entry(doc)
        minhash = self._minhash(doc.article_id, entry.shingles) if entry.shingles.size >= self.min_shingles else None
        self._index(entry, minhash)

    def export_signature(self, doc: ArticleDoc) -> dict[str, Any]:
        """What :meth:`add_signature` needs to index ``doc`` again without its text, as a JSON-able dict.

        Restarting from stored signatures skips tokenising and hashing every article of the horizon.
        Call it right after :meth:`find`/:meth:`add` for the same ``doc``: the shingles are reused.
        """
        entry = self._entry(doc)
        payload: dict[str, Any] = {
            "v": SIGNATURE_VERSION,
            "article_id": entry.article_id,
            "source": entry.source,
            "published_at": entry.published_at.isoformat(),
            "shingles": _pack(entry.shingles),
            "edges": _pack(np.array(sorted(entry.edges), dtype=np.uint64)),
            "num_perm": self.num_perm,
        }
        if entry.shingles.size >= self.min_shingles:
            payload["minhash"] = _pack(self._minhash(doc.article_id, entry.shingles))
        return payload

    def add_signature(self, signature: Mapping[str, Any]) -> None:
        """Index an article from :meth:`export_signature` output: the same state as ``add(doc)``.

        Raises :class:`StaleSignature` when the signature was made by another version or ``num_perm``
        (the caller then falls back to ``add(doc)``), :class:`NearDuplicateError` when it is malformed.
        """
        if signature.get("v") != SIGNATURE_VERSION or signature.get("num_perm") != self.num_perm:
            raise StaleSignature(
                f"signature version {signature.get('v')!r}/num_perm {signature.get('num_perm')!r}, "
                f"expected {SIGNATURE_VERSION}/{self.num_perm}"
            )
        try:
            article_id = str(signature["article_id"])
            published_at = datetime.fromisoformat(signature["published_at"])
            shingles = _unpack(signature["shingles"])
            edges = frozenset(int(value) for value in _unpack(signature["edges"]).tolist())
            packed_minhash = signature.get("minhash")
            hashvalues = None if packed_minhash is None else _unpack(packed_minhash)
            source = str(signature["source"])
        except (KeyError, TypeError, ValueError) as exc:
            raise NearDuplicateError(f"malformed near-duplicate signature: {exc}") from exc
        if published_at.tzinfo is None:
            raise NearDuplicateError("malformed near-duplicate signature: naive published_at")
        if article_id in self._entries:
            return
        minhash = None
        if shingles.size >= self.min_shingles:
            if hashvalues is None or hashvalues.size != self.num_perm:
                raise NearDuplicateError(f"signature of {article_id!r} lacks a {self.num_perm}-value MinHash")
            minhash = hashvalues
        self._index(_Entry(article_id, source, published_at, shingles, edges), minhash)

    def remove(self, article_id: str) -> bool:
        """Forget one article now (for eviction policies decided by the caller); False if it is not held."""
        entry = self._entries.pop(article_id, None)
        if entry is None:
            return False
        if article_id in self._lsh:
            self._lsh.remove(article_id)
        self._forget_edges(entry)  # its entry in the time heap goes stale and is skipped later
        return True

    def evict_before(self, moment: datetime) -> int:
        """Forget articles published before ``moment``; returns how many were dropped."""
        dropped = 0
        while self._by_time and self._by_time[0][0] < moment:
            _, article_id = heapq.heappop(self._by_time)
            entry = self._entries.pop(article_id, None)
            if entry is None:
                continue
            if article_id in self._lsh:
                self._lsh.remove(article_id)
            self._forget_edges(entry)
            dropped += 1
        return dropped

    def score(self, first: ArticleDoc, second: ArticleDoc) -> float:
        """The pair score used by :meth:`find`, for two articles (indexed or not); for calibration."""
        other = _Entry(
            second.article_id,
            second.source,
            second.published_at,
            self._shingles(second),
            frozenset(),
        )
        return self._score(self._shingles(first), first.source, other)

    # --- internals --------------------------------------------------------------------------------

    def _entry(self, doc: ArticleDoc) -> _Entry:
        """The index entry of ``doc``; :meth:`add` then :meth:`export_signature` of one article share one."""
        ordered = self._shingle_list(doc)
        shingles = self._shingles(doc)
        last = self._last_entry
        if (
            last is not None
            and last[0] is ordered
            and last[1].shingles is shingles
            and last[1].article_id == doc.article_id
            and last[1].source == doc.source
            and last[1].published_at == doc.published_at
        ):
            return last[1]
        edges = frozenset(ordered[:_EDGE_SHINGLES].tolist() + ordered[-_EDGE_SHINGLES:].tolist())
        entry = _Entry(doc.article_id, doc.source, doc.published_at, shingles, edges)
        self._last_entry = (ordered, entry)
        return entry

    def _index(self, entry: _Entry, minhash: np.ndarray | None) -> None:
        self._entries[entry.article_id] = entry
        heapq.heappush(self._by_time, (entry.published_at, entry.article_id))
        counts = self._edge_counts.setdefault(entry.source, Counter())
        counts.update(entry.edges)
        for shingle in entry.edges:
            if counts[shingle] == _BOILERPLATE_MIN_DOCS:
                self._boilerplate.setdefault(entry.source, set()).add(shingle)
        if minhash is not None:
            self._lsh.insert(entry.article_id, minhash)

    def _forget_edges(self, entry: _Entry) -> None:
        counts = self._edge_counts.get(entry.source)
        if counts is None:
            return
        boilerplate = self._boilerplate.get(entry.source, set())
        for shingle in entry.edges:
            counts[shingle] -= 1
            if counts[shingle] < _BOILERPLATE_MIN_DOCS:
                boilerplate.discard(shingle)
            if counts[shingle] <= 0:
                del counts[shingle]
        if not counts:
            del self._edge_counts[entry.source]
        if not boilerplate:
            self._boilerplate.pop(entry.source, None)

    def _shingle_list(self, doc: ArticleDoc) -> np.ndarray:
        """The article's shingle hashes in text order (repeats kept)."""
        if self._last is not None and self._last[0] == doc.article_id and self._last[1] == doc.text:
            return self._last[2]
        shingles = shingle_list(doc.text)
        self._last = (doc.article_id, doc.text, shingles)
        return shingles

    def _shingles(self, doc: ArticleDoc) -> np.ndarray:
        last = self._last_unique
        if last is not None and last[0] == doc.article_id and last[1] == doc.text:
            return last[2]
        shingles = _sorted_unique(self._shingle_list(doc))
        shingles.setflags(write=False)  # shared by find(), add() and the index entry
        self._last_unique = (doc.article_id, doc.text, shingles)
        return shingles

    def _minhash(self, article_id: str, shingles: np.ndarray) -> np.ndarray:
        """The MinHash values of ``shingles`` (:mod:`transform.minhash`), kept for the next call of the same article."""
        last = self._last_minhash
        if last is not None and last[0] == article_id and (last[1] is shingles or np.array_equal(last[1], shingles)):
            return last[2]
        minhash = self._minhasher.signature(shingles)
        minhash.setflags(write=False)
        self._last_minhash = (article_id, shingles, minhash)
        return minhash

    def _score(self, shingles: np.ndarray, source: str, entry: _Entry) -> float:
        mine, theirs = shingles, entry.shingles
        # Boilerplate only matters between articles of one source: strip that source's recurring
        # head/tail shingles from both sides before comparing.
        if source == entry.source:
            common = self._boilerplate.get(source)
            if common:
                boilerplate = np.fromiter(common, dtype=np.uint64, count=len(common))
                mine = np.setdiff1d(mine, boilerplate, assume_unique=True)
                theirs = np.setdiff1d(theirs, boilerplate, assume_unique=True)
        if mine.size == 0 or theirs.size == 0:
            return 0.0
        shared = np.intersect1d(mine, theirs, assume_unique=True).size
        union = mine.size + theirs.size - shared
        jaccard = shared / union
        smaller = min(mine.size, theirs.size)
        if smaller >= self.min_containment_shingles:
            return max(jaccard, shared / smaller)
        return jaccard


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique(values)`` of a 1-D array (sorted, each value once), without its Python-level option handling."""
    ordered = np.sort(values)
    if len(ordered) < 2:
        return ordered
    keep = np.empty(len(ordered), dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def _pack(values: np.ndarray) -> str:
    """uint64 values as base64 of little-endian bytes: ~11 characters each instead of ~20 in JSON."""
    return base64.b64encode(np.ascontiguousarray(values, dtype="<u8").tobytes()).decode("ascii")


def _unpack(packed: str) -> np.ndarray:
    raw = base64.b64decode(packed.encode("ascii"), validate=True)
    if len(raw) % 8:
        raise ValueError("packed uint64 array has a partial value")
    return np.frombuffer(raw, dtype="<u8").astype(np.uint64)
