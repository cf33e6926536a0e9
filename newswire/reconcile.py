"""Self-healing between the warehouse and the articles topic: what ingest stored, the transform must store too.

Ingest records an entry as ``new`` only after the broker acknowledged its article, and keeps the exact message
in ``raw_articles`` in the same transaction. The topic can still lose it afterwards: the embedded broker keeps
topics in memory (``make down``/``make up``, a crash, a reboot), and Apache Kafka deletes segments older than
the topic's retention. The warehouse is the system of record, so it decides what is missing: a raw article
with neither an ``articles`` row nor an ``article_duplicates`` row (the two things the transform writes for
every article message it consumes) is *pending*. Once older than the grace period it is re-published from its
stored message; the transform treats a message it has already applied as a redelivery, so re-publishing
something that was merely late is harmless.

The same definition feeds the accounting invariant: every ``new`` entry is an article (or a duplicate), or is
pending with an age. A pending entry older than ``pending_max_age``, or one whose raw record is gone (nothing
can re-publish it), is a failure that ``newswire status`` reports and exits non-zero on.

This module reads ingest's and transform's tables with SQL only and publishes through the core's
:class:`~newswire.messaging.Publisher`: it imports neither stage.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from newswire import contracts
from newswire.errors import ContractError, MessageTooLarge
from newswire.messaging import Publisher, open_publisher
from newswire.settings import Settings
from newswire.warehouse import Cursor, Warehouse, utcnow

log = logging.getLogger(__name__)

#: Articles read, published and confirmed together: bounds memory and the work lost to a crash.
BATCH = 500

#: The article has reached the warehouse: the transform stored it, or recorded it as a duplicate.
STORED_CONDITION = (
    "EXISTS (SELECT 1 FROM articles a WHERE a.article_id = {id}) "
    "OR EXISTS (SELECT 1 FROM article_duplicates d WHERE d.article_id = {id})"
)

# One page of raw articles not in the warehouse, oldest first. Keyset pagination on (stored_at, article_id),
# which an index serves in order; each candidate costs two primary-key/index probes (an anti-join), and the
# LIMIT stops the scan as soon as a page is full. Only ids are read here: the messages of one page are then
# fetched by primary key, so a columnar engine never drags message text through the join.
_PAGE_SQL = (
    "SELECT r.article_id, r.stored_at FROM raw_articles r "
    "WHERE r.stored_at <= ? AND r.stored_at >= ? AND (r.stored_at > ? OR (r.stored_at = ? AND r.article_id > ?)) "
    f"AND NOT ({STORED_CONDITION.format(id='r.article_id')}) "
    "ORDER BY r.stored_at, r.article_id LIMIT {limit}"
)

#: ``new`` ledger entries whose article is not in the warehouse, with their age and whether a raw record exists.
PENDING_SQL = (
    "SELECT COUNT(*) AS pending, MIN(e.last_attempt_at) AS oldest, "
    "COALESCE(SUM(CASE WHEN e.last_attempt_at < ? THEN 1 ELSE 0 END), 0) AS stale, "
    "COALESCE(SUM(CASE WHEN r.article_id IS NULL THEN 1 ELSE 0 END), 0) AS unrecoverable "
    "FROM feed_entries e LEFT JOIN raw_articles r ON r.article_id = e.article_id "
    f"WHERE e.outcome = 'new' AND NOT ({STORED_CONDITION.format(id='e.article_id')})"
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class PendingReport:
    """The ``new`` entries still waiting for their warehouse row."""

    pending: int
    oldest_age: float | None  # seconds since the oldest pending entry was recorded
    stale: int  # pending longer than the allowed age
    unrecoverable: int  # pending, and no raw record left to re-publish it from
    max_age: float

    @property
    def ok(self) -> bool:
        return self.stale == 0 and self.unrecoverable == 0

    def line(self) -> str:
        if not self.pending:
            return "pending articles: 0 (every new entry is in the warehouse)"
        text = f"pending articles: {self.pending}, oldest {_age(self.oldest_age)} old"
        if self.stale:
            text += f"; {self.stale} older than {_age(self.max_age)}"
        if self.unrecoverable:
            text += f"; {self.unrecoverable} without a raw record (cannot be re-published)"
        return text


@dataclass
class ReconcileSummary:
    found: int = 0
    republished: int = 0
    # Stored messages that cannot be re-published: they no longer pass the topic's contract, or are over the
    # producer's size limit (it was lowered since). Left in place, logged, and still pending.
    invalid: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        return (
            f"reconcile: found={self.found} republished={self.republished} invalid={self.invalid} "
            f"seconds={self.seconds:.2f}"
        )


def pending_report(cur: Cursor, max_age: float, *, now: datetime | None = None) -> PendingReport:
    """Count pending entries through ``cur`` (any transaction: the accounting check uses a raw one)."""
    now = now or utcnow()
    row = cur.execute(PENDING_SQL, (now - timedelta(seconds=max_age),)).dicts()[0]
    oldest = row["oldest"]
    return PendingReport(
        pending=int(row["pending"]),
        oldest_age=(now - oldest).total_seconds() if oldest is not None else None,
        stale=int(row["stale"]),
        unrecoverable=int(row["unrecoverable"]),
        max_age=max_age,
    )


def pending(warehouse: Warehouse, max_age: float, *, now: datetime | None = None) -> PendingReport:
    with warehouse.read() as cur:
        return pending_report(cur, max_age, now=now)


def unstored_articles(
    warehouse: Warehouse, stored_before: datetime, *, after: tuple[datetime, str] | None = None, limit: int = BATCH
) -> list[tuple[datetime, str]]:
    """(stored_at, article_id) of up to ``limit`` raw articles stored before ``stored_before`` and not in the
    warehouse, oldest first, strictly after the ``after`` key."""
    start, last_id = after if after is not None else (_EPOCH, "")
    with warehouse.read() as cur:
        rows = cur.execute(_PAGE_SQL.format(limit=int(limit)), (stored_before, start, start, start, last_id)).fetchall()
    return [(stored_at, article_id) for article_id, stored_at in rows]


def stored_messages_by_id(warehouse: Warehouse, article_ids: list[str]) -> list[dict[str, Any]]:
    """The stored article messages of ``article_ids``, in that order (ids without a record are left out)."""
    with warehouse.read() as cur:
        rows = cur.select_in("SELECT article_id, message FROM raw_articles WHERE article_id IN {in}", article_ids)
    by_id = {row["article_id"]: row["message"] for row in rows}
    return [json.loads(by_id[i]) for i in article_ids if i in by_id]


def republish(
    publisher: Publisher, messages: Iterable[dict[str, Any]], *, confirm_every: int = BATCH
) -> tuple[int, int]:
    """Send stored article messages to ``newswire.articles``, confirmed by the broker every ``confirm_every``.

    Returns (published, invalid): a stored message that no longer passes the topic's contract, or is now over
    the producer's size limit (it was lowered since), is logged and skipped, never sent: it stays pending,
    which ``newswire status`` reports, rather than failing the confirm of every message sent with it.
    """
    published = invalid = waiting = 0
    for message in messages:
        try:
            publisher.send(contracts.ARTICLES, str(message["article_id"]), message)
        except (ContractError, MessageTooLarge) as exc:
            invalid += 1
            log.warning("raw store: article %s cannot be re-published: %s", message.get("article_id"), exc)
            continue
        waiting += 1
        if waiting >= confirm_every:
            published += publisher.confirm()
            waiting = 0
    published += publisher.confirm()
    return published, invalid


def reconcile(
    warehouse: Warehouse, publisher: Publisher, *, grace: float, now: datetime | None = None
) -> ReconcileSummary:
    """Re-publish every raw article stored more than ``grace`` seconds ago that the warehouse does not hold.

    Batch by batch (:data:`BATCH` articles: one id query, one message query, one broker confirmation), so
    memory stays flat and a crash loses at most one batch's work, which the next run redoes.
    """
    t0 = time.monotonic()
    summary = ReconcileSummary()
    cutoff = (now or utcnow()) - timedelta(seconds=grace)
    after: tuple[datetime, str] | None = None
    while True:
        page = unstored_articles(warehouse, cutoff, after=after)
        if not page:
            break
        summary.found += len(page)
        published, invalid = republish(publisher, stored_messages_by_id(warehouse, [i for _, i in page]))
        summary.republished += published
        summary.invalid += invalid
        if len(page) < BATCH:
            break
        after = page[-1]
    summary.seconds = time.monotonic() - t0
    if summary.found:
        log.warning("%s (articles stored before %s were missing from the warehouse)", summary.line(), cutoff)
    return summary


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def reconcile_after_broker_start(settings: Settings, bootstrap: str, *, fresh: bool) -> ReconcileSummary:
    """What ``make up`` runs once its broker accepts connections and the warehouse is migrated.

    ``fresh``: the broker was just started and holds nothing (the embedded one keeps topics in memory), so
    every pending article is lost whatever its age and the grace period does not apply. The re-published
    articles wait on the topic for the next transform run.
    """
    warehouse = Warehouse(settings.resolved_warehouse_url)
    publisher = open_publisher(bootstrap, settings, client_id="newswire-reconcile")
    try:
        return reconcile(warehouse, publisher, grace=0.0 if fresh else settings.reconcile_grace)
    finally:
        publisher.close()
