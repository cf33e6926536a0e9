"""Scheduled polling: claim the due feeds, poll one shard of them, record when each is due next.

What ``newswire_ingest``'s tasks (through :mod:`pipeline.ingest_tasks`) and ``newswire run --due`` call. A shard
polls its feeds with :func:`ingest.stage.ingest_feeds`, the code of a one-shot ``newswire run`` (fetch concurrency,
per-host spacing, extraction), and records each feed's outcome and next poll as it finishes. A failing feed
is recorded (``ingest_runs``, ``feed_schedule``) and named in the shard's summary; it never fails the shard.
Broker or warehouse failures propagate, so the orchestrator retries the shard, which then polls only the
feeds it has not recorded yet.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ingest.extract_workers import Enricher
from ingest.feedlist import FeedSpec
from ingest.poll import FeedFailed, FeedReport
from ingest.schedule_policy import FeedSchedule, Limits, PollOutcome, ServerHints, plan_next, retry_after_delay
from ingest.schedule_store import Claim, ScheduleStore, interleave_hosts
from ingest.stage import IngestSummary, configured_feeds, ingest_feeds
from newswire.settings import Settings
from newswire.warehouse import Cursor, Warehouse, utcnow

log = logging.getLogger(__name__)

#: Schedule rows written together (each batch releases its feeds' claims).
RECORD_BATCH = 200
#: Failing feeds named in a shard's summary line (all of them are in ``feed_schedule``).
NAMED_FAILURES = 20


def limits_of(settings: Settings) -> Limits:
    return Limits(
        min_interval=timedelta(minutes=settings.feed_min_interval_minutes),
        max_interval=timedelta(minutes=settings.feed_max_interval_minutes),
        disable_after=settings.feed_disable_after,
    )


def schedule_store(settings: Settings) -> ScheduleStore:
    warehouse = Warehouse(settings.resolved_warehouse_url)
    warehouse.migrate()
    return ScheduleStore(warehouse)


def claim_due(
    settings: Settings,
    token: str,
    *,
    shards: int | None = None,
    now: datetime | None = None,
    every_feed: bool = False,
) -> Claim:
    """Sync the schedule with the feed list, then claim every due feed (``every_feed``: due or not) under
    ``token``, split into shards."""
    now = now or utcnow()
    store = schedule_store(settings)
    synced = store.sync(configured_feeds(settings), now)
    claim = store.claim(
        token,
        now,
        timedelta(minutes=settings.claim_ttl_minutes),
        shards or settings.ingest_shards,
        every_feed=every_feed,
    )
    log.info(
        "claimed %d due feeds of %d listed in %d shard(s) (%d added, %d removed since last run)",
        claim.feeds,
        synced["listed"],
        len(claim.shards),
        synced["added"],
        synced["removed"],
    )
    return claim


@dataclass
class ScheduleRecorder:
    """Turns each finished poll into the feed's next schedule; writes them in batches from any thread.

    ``batched``: the rows are written only by the ledger's flush (:meth:`take` is its hook), in the
    transaction that writes the feed's ledger rows or after it, so a retried shard never skips a feed whose
    outcomes were not stored.
    """

    store: ScheduleStore
    limits: Limits
    token: str
    states: dict[str, FeedSchedule]
    rng: random.Random = field(default_factory=random.Random)
    batched: bool = False
    #: When the pass began: intervals count from it (see :func:`ingest.schedule_policy.plan_next`'s ``anchor``).
    started: datetime = field(default_factory=utcnow)
    _pending: list[tuple[str, str, str | None, FeedSchedule]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    disabled: list[str] = field(default_factory=list)

    def __call__(self, feed: FeedSpec, report: FeedReport | None, failure: FeedFailed | None) -> None:
        now = utcnow()
        if failure is not None:
            outcome = PollOutcome(
                status="failed",
                hints=ServerHints(retry_after=retry_after_delay(failure.retry_after, now)),
                reason=failure.reason,
                http_status=failure.http_status,
            )
            status, reason = "failed", str(failure)
        else:
            assert report is not None
            outcome = PollOutcome(
                status=report.status,
                new_entries=report.counts.new_articles,
                published=report.published,
                hints=report.hints or ServerHints(),
                http_status=report.http_status,
            )
            status, reason = report.status, None
        with self._lock:
            prior = self.states.get(feed.url, FeedSchedule())
            decided = plan_next(
                prior,
                outcome,
                now,
                self.limits.for_feed(feed.poll_interval_minutes),
                self.rng,
                anchor=self.started,
            )
            if decided.disabled_reason and not prior.disabled_reason:
                self.disabled.append(feed.url)
                log.warning("feed %s disabled: %s", feed.url, decided.disabled_reason)
            self._pending.append((feed.url, status, reason, decided))
            full = len(self._pending) >= RECORD_BATCH and not self.batched
        if full:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        self.store.record(batch, self.token, utcnow())

    def take(self) -> Callable[[Cursor], None] | None:
        """The ledger flush hook: the waiting rows, as a writer for the flush's transaction."""
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return None
        now = utcnow()
        return lambda cur: self.store.write(cur, batch, self.token, now)


def poll_scheduled(
    settings: Settings,
    bootstrap: str,
    feeds: Sequence[FeedSpec],
    *,
    run_id: str,
    token: str,
    interval: tuple[datetime | None, datetime | None] = (None, None),
    extract_workers: int | None = None,
    enrich: Enricher | None = None,
) -> tuple[IngestSummary, list[str]]:
    """Poll ``feeds`` (claimed under ``token``) and record each one's next poll; returns the summary and the
    feeds disabled by this pass. ``enrich``: see :func:`ingest.stage.ingest_session`; an inline extractor runs it
    only with ``NEWSWIRE_SHARD_ENRICH``."""
    store = schedule_store(settings)
    recorder = ScheduleRecorder(store, limits_of(settings), token, store.states([f.url for f in feeds]), batched=True)
    # Every row of the pass is written by the ledger's flushes, the schedule rows in the same transactions
    # (a few per pass): shard processes share a DuckDB file, and a failed flush writes nothing later.
    summary = ingest_feeds(
        settings,
        bootstrap,
        interleave_hosts(feeds),
        run_id=run_id,
        interval=interval,
        extract_workers=extract_workers,
        on_done=recorder,
        batched=True,
        flush_hooks=[recorder.take],
        enrich_inline=settings.shard_enrich,  # language, embedding, features here, in parallel, or in the transform
        enrich=enrich,
    )
    return summary, recorder.disabled


def poll_shard(
    settings: Settings,
    bootstrap: str,
    *,
    token: str,
    shard: int,
    run_id: str,
    interval: tuple[datetime | None, datetime | None] = (None, None),
    enrich: Enricher | None = None,
) -> dict[str, Any]:
    """Poll the feeds ``token`` still holds for ``shard``; a JSON summary whose ``summary`` line names the
    failing feeds. ``enrich``: see :func:`poll_scheduled`."""
    store = schedule_store(settings)
    urls = set(store.claimed(token, shard, utcnow(), timedelta(minutes=settings.claim_ttl_minutes)))
    feeds = [f for f in configured_feeds(settings) if f.url in urls]
    summary, disabled = poll_scheduled(
        settings,
        bootstrap,
        feeds,
        run_id=run_id,
        token=token,
        interval=interval,
        extract_workers=settings.shard_extract_workers,
        enrich=enrich,
    )
    statuses = Counter(r.status for r in summary.reports)
    return shard_totals(
        [r.as_dict() for r in summary.reports],
        summary.failures,
        shard=shard,
        kind="ingest",
        run_id=run_id,
        seconds=summary.seconds,
        extra={"claimed": len(urls), "not_modified": statuses["not_modified"], "disabled": len(disabled)},
    )


def shard_totals(
    reports: Sequence[Mapping[str, Any]],
    failures: Mapping[str, str],
    *,
    shard: int,
    kind: str,
    run_id: str,
    seconds: float,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One shard's per-feed reports summed, with the log line that ends the shard: it names the failing feeds."""
    keys = ("entries_seen", "new", "duplicates", "dead_letters", "skipped", "bytes")
    totals: dict[str, Any] = {k: sum(int(r[k]) for r in reports) for k in keys}
    failing = sorted(failures)
    totals.update(shard=shard, feeds=len(reports), failed_feeds=len(failing), failing=failing[:NAMED_FAILURES])
    totals["seconds"] = round(seconds, 1)
    totals.update(extra or {})
    named = ", ".join(f"{u} ({failures[u][:120]})" for u in failing[:NAMED_FAILURES])
    more = f" and {len(failing) - NAMED_FAILURES} more" if len(failing) > NAMED_FAILURES else ""
    totals["summary"] = (
        f"{kind} run {run_id} shard={shard}: feeds={len(reports)} failed={len(failing)} "
        + " ".join(f"{k}={totals[k]}" for k in (*keys, *(extra or {})))
        + f" seconds={totals['seconds']}"
        + (f"; failing feeds: {named}{more}" if failing else "; no failing feed")
    )
    log.info("%s", totals["summary"])
    return totals
