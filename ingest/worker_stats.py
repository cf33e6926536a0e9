"""Where the extraction workers' CPU goes, measured inside them, per stage and per page.

Why: the process tree's CPU tells how much more the workers spend with the encoder than without it, not
where that difference goes; subtracting two runs' totals mixes the encoder with run-to-run noise. So a worker
times each stage of every batch with :func:`time.thread_time` (its own thread's CPU: work of other processes
on the same core never counts) and reads the encoder's counters (tokens, token ids computed, passes) and
the minor page faults around the encoder's pass. Each reply carries the page's share of its batch
(:func:`page_shares`); the pool adds the shares to one tally per process (:func:`record`), which
``bench.pipeline`` reads after a run (:func:`totals`). The cost is a few system calls per batch.

Keys (seconds unless named otherwise): ``extract`` (trafilatura and language identification), ``embed`` (the
encoder's pass over the batch, loading it included when a worker had to), ``enrich`` (clustering features),
``batch`` (the whole batch: the stages plus unpickling requests and pickling replies), ``startup`` (a
worker's process CPU before its first page), ``embed_first``/``embed_first_pages`` (each worker's first
encoder pass alone), counts ``pages``, ``embedded`` (articles encoded), ``embed_passes``, ``embed_tokens``,
``embed_new_ids`` (token ids whose first stage was computed rather than found in the cache),
``embed_minor_faults``.
"""

from __future__ import annotations

import resource
import threading
from collections import Counter
from collections.abc import Mapping

__all__ = ["minor_faults", "page_shares", "record", "reset", "totals"]

_lock = threading.Lock()
_totals: Counter[str] = Counter()


def minor_faults() -> int:
    """Minor page faults of this process so far (pages mapped or copied on first touch)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def page_shares(batch: Mapping[str, float], pages: int) -> dict[str, float]:
    """One page's share of a batch's measurements: every figure divided by the pages of the batch, so the
    shares of a batch's replies add up to the batch (``pages`` counts 1 per reply)."""
    shares = {key: value / pages for key, value in batch.items() if value}
    shares["pages"] = 1.0
    return shares


def record(shares: Mapping[str, float]) -> None:
    """Adds one reply's shares to this process's tally (any pool, any thread)."""
    with _lock:
        _totals.update(shares)


def totals() -> dict[str, float]:
    """The tally so far: sums over every reply any extraction pool of this process received."""
    with _lock:
        return dict(_totals)


def reset() -> None:
    with _lock:
        _totals.clear()
