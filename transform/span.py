"""How long a transform run keeps the warehouse open across its batches: a bounded span while there is backlog.

Each batch holds the warehouse (:meth:`newswire.warehouse.Warehouse.hold`) for its transactions. Released at
the end of every batch, a DuckDB file is closed and checkpointed each time, and the checkpoint grows with the
tables; the next batch then opens the file again. During a backlog (a backfill, a replay, a run after an
outage) batches follow each other at once, so that work is repeated for nothing. A span keeps the hold over
consecutive batches, but only

* while the previous batch came back full (there is more waiting on the topic) and the poll for the next one
  returns as soon as the topic is read to its end (a one-shot run), so the file is never held through a poll
  that waits for messages still being produced;
* and only starting a batch within ``seconds`` of the span's first batch: other processes (ingest shards,
  ``newswire status``) need a DuckDB file between batches and wait for it up to the warehouse's
  ``lock_timeout``. ``seconds`` bounds when a new batch may start inside a span, not how long they wait: the
  batch running when it is reached finishes held, and the next span may follow within milliseconds, so under
  a continuous backlog a DuckDB file leaves other writers little room either way (PostgreSQL is the backend
  for concurrent writers).

Nothing about durability changes: each batch still commits its own transaction (DuckDB writes it to its WAL
before the commit returns), the caller still commits the consumer offsets after it, and a process that dies
mid-span leaves committed batches that the next open replays from the WAL. ``seconds`` 0 releases after every
batch. On PostgreSQL the span keeps the pooled connections instead of reconnecting for each batch.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from types import TracebackType

from newswire.warehouse import Warehouse


class WarehouseSpan:
    """Holds ``warehouse`` from a batch to the next while :meth:`after_batch` says there is backlog, at most
    ``seconds`` (measured from the span's first batch; the batch running when it ends finishes first)."""

    def __init__(self, warehouse: Warehouse, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if seconds < 0:
            raise ValueError(f"a hold span cannot be negative, got {seconds!r}")
        self._warehouse = warehouse
        self._seconds = seconds
        self._clock = clock
        self._hold: contextlib.ExitStack | None = None
        self._started = 0.0
        self.spans = 0  # how many holds were taken (one per span): what the tests and the bench look at

    @property
    def held(self) -> bool:
        return self._hold is not None

    def before_batch(self) -> None:
        """Start a span unless one is open: the file is opened at the batch's first transaction."""
        if self._hold is not None:
            return
        stack = contextlib.ExitStack()
        stack.enter_context(self._warehouse.hold())
        self._hold, self._started = stack, self._clock()
        self.spans += 1

    def after_batch(self, *, backlog: bool) -> None:
        """End the span unless ``backlog`` (the next batch is waiting and its poll will not wait for more) and
        time is left. Call it as soon as the batch's warehouse transaction is committed, before committing the
        consumer offsets (a broker round trip the file should not be held through when the span ends)."""
        if not backlog or self._clock() - self._started >= self._seconds:
            self.release()

    def release(self) -> None:
        """Close the span (on DuckDB: the file, once no batch holds it any more); idempotent."""
        hold, self._hold = self._hold, None
        if hold is not None:
            hold.close()

    def __enter__(self) -> WarehouseSpan:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
