"""Test-only fault injection: die with SIGKILL at a named point, to prove crash safety on real processes.

Crash-safety claims ("a kill between the warehouse commit and the offset commit loses nothing") are only
worth something when a real process dies at exactly that point; racing an external ``kill`` against a
batch cannot hit a window a few microseconds wide. Set ``NEWSWIRE_FAULT`` to ``<point>`` (die the first
time the point is reached) or ``<point>@<n>`` (die the n-th time) and the process kills itself with
SIGKILL there: no ``finally`` blocks, no ``atexit``, no flushed buffers, exactly like the OOM killer.

Points: ``mid_batch`` (inside the transform's warehouse transaction, after the first message of a batch
was applied) and ``after_warehouse_commit`` (the batch is committed, its offsets are not).

Never set ``NEWSWIRE_FAULT`` in production. Unset, :func:`fault_point` costs one dictionary lookup.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

from newswire.errors import SettingsError

log = logging.getLogger(__name__)

ENV = "NEWSWIRE_FAULT"
POINTS = frozenset({"mid_batch", "after_warehouse_commit"})

_hits: dict[str, int] = {}
_lock = threading.Lock()


def _armed() -> tuple[str, int] | None:
    spec = os.environ.get(ENV, "").strip()
    if not spec:
        return None
    point, _, nth = spec.partition("@")
    if point not in POINTS:
        raise SettingsError(f"{ENV}={spec!r}: unknown fault point (known: {', '.join(sorted(POINTS))})")
    return point, int(nth) if nth else 1


def fault_point(name: str) -> None:
    """Kill this process with SIGKILL if ``NEWSWIRE_FAULT`` arms ``name`` and this is the chosen hit."""
    armed = _armed()
    if armed is None or armed[0] != name:
        return
    with _lock:
        _hits[name] = _hits.get(name, 0) + 1
        hit = _hits[name]
    if hit == armed[1]:
        log.critical("fault injection: SIGKILL at %s (hit %d)", name, hit)
        os.kill(os.getpid(), signal.SIGKILL)
