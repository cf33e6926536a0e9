"""Transform entry point: drain the articles topic batch by batch, committing offsets after the warehouse.

Used by the ``newswire_transform`` DAG and by ``newswire run``. A run ends when the topic is drained for this
consumer group (a batch comes back empty, or ends on an empty poll short of full) or after ``max_batches``;
it never waits for "the end" of the topic via ``end_offsets()`` (wrong on the embedded broker).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass, field

from newswire.errors import WarehouseUnavailable
from newswire.faults import fault_point
from newswire.messaging import FollowedProducer, Publisher, ensure_topics, make_producer
from newswire.reconcile import ReconcileSummary, reconcile
from newswire.settings import Settings
from newswire.warehouse import Warehouse
from transform.batch import BatchProcessor, BatchStats
from transform.clustering import ClusteringConfig
from transform.consumer import ArticleConsumer, Incoming
from transform.span import WarehouseSpan

log = logging.getLogger(__name__)


@dataclass
class TransformSummary:
    batches: int = 0
    stats: BatchStats = field(default_factory=BatchStats)
    seconds: float = 0.0
    reconciled: ReconcileSummary = field(default_factory=ReconcileSummary)

    def line(self) -> str:
        s = self.stats
        return (
            f"transform: batches={self.batches} messages={s.messages} new_articles={s.new_articles} "
            f"updated={s.updated_articles} duplicates={s.duplicates} replays={s.replays} "
            f"dead_letters={s.dead_letters} events_changed={s.events_changed} "
            f"events_published={s.events_published} republished={self.reconciled.republished} "
            f"seconds={self.seconds:.1f}"
        )


def batch_id(group: str, batch: list[Incoming]) -> str:
    """Deterministic per (group, records): a replayed batch gets the same id and is recorded once."""
    material = (
        group
        + "|"
        + ",".join(
            f"{r.topic}:{r.partition}:{r.offset}" for r in sorted(batch, key=lambda r: (r.topic, r.partition, r.offset))
        )
    )
    return hashlib.sha256(material.encode()).hexdigest()[:32]


# The name of the transform's run lock (Warehouse.exclusive): one per warehouse, whatever the consumer group.
RUN_LOCK = "transform"


def run_transform(
    settings: Settings,
    bootstrap: str,
    *,
    max_batches: int | None = None,
    group_id: str | None = None,
    follow: FollowedProducer | None = None,
) -> TransformSummary:
    """Drain the articles topic batch by batch; stop at the first empty batch, or after a batch that ended on
    an empty poll (nothing more to read: waiting for one more empty batch would only cost ``poll_timeout``).

    Once the topic is drained it reconciles (:mod:`newswire.reconcile`): raw articles ingest stored more than
    ``reconcile_grace`` ago that the warehouse still lacks were lost by the topic (anything still on it has
    just been consumed), so they are re-published and the run goes on to consume them. Reconciling after the
    drain, not before, keeps an article that was merely waiting on the topic from being sent twice. A run cut
    short by ``max_batches`` leaves reconciling to the next one.

    With ``follow``, a producer running in this process (``newswire run``), an empty batch ends the run only
    once the producer had finished *before* that batch was polled: it finishes after its last message was
    acknowledged, so the final poll sees every message and the run ends drained. When it finished with known
    end offsets, the run ends as soon as it has read that far, without an idle poll.

    The warehouse stays open from one batch to the next while batches come back full, for at most
    ``transform_hold_seconds`` (:mod:`transform.span`); offsets are still committed after each batch's commit.
    """
    t0 = time.monotonic()
    group = group_id or settings.consumer_group
    warehouse = Warehouse(settings.resolved_warehouse_url)
    warehouse.migrate()
    limits = ensure_topics(bootstrap, settings)
    # One transform per warehouse at a time (an Airflow run and `newswire run`, two manual runs, two deployments
    # with different consumer groups: the story state is one per warehouse): the consumer reads every partition
    # without joining the group (transform.consumer), so this lock is what keeps two runs from both processing
    # the same messages. A second run waits for the first (up to the warehouse's lock_timeout) and then starts
    # from the offsets it committed. Each batch's transaction is fenced by the lock (HeldLock.fence): a run
    # that lost it mid-batch rolls the batch back rather than committing beside the next holder.
    run_lock = contextlib.ExitStack()
    still_locked = run_lock.enter_context(warehouse.exclusive(RUN_LOCK))
    try:
        publisher = Publisher(make_producer(bootstrap, settings, client_id="newswire-transform", limits=limits), limits)
    except BaseException:
        run_lock.close()
        raise
    try:
        consumer = ArticleConsumer(settings, bootstrap, group_id=group)
    except BaseException:
        publisher.close()
        run_lock.close()
        raise
    processor = BatchProcessor(
        warehouse,
        publisher,
        state_max_articles=settings.story_state_max_articles,
        config=ClusteringConfig(embedding_model=settings.embedding_model),
    )
    summary = TransformSummary()
    span = WarehouseSpan(warehouse, settings.transform_hold_seconds)
    reconciled = False
    republished = False  # messages this process just put on the topic, past the last fetch's high watermark
    was_following = False

    def lost_articles_republished() -> bool:
        """Reconcile once per run, when the topic is drained; true if there is something more to consume."""
        nonlocal reconciled, republished
        if reconciled:
            return False
        reconciled = True
        summary.reconciled = reconcile(warehouse, publisher, grace=settings.reconcile_grace)
        republished = summary.reconciled.republished > 0
        return republished

    try:
        # Versions a previous process committed but could not publish go out first.
        summary.stats.events_published += processor.publish_outbox()
        while max_batches is None or summary.batches < max_batches:
            following = follow is not None and follow.running()
            # A run not following a producer ends as soon as it has read everything: no idle poll to wait for.
            # Not right after messages it could not have fetched yet were produced (its own re-publishing, or a
            # followed producer that just finished without known end offsets): the last fetch's high watermark
            # predates them. A followed producer's end offsets say how far to read, whatever that watermark.
            ended_at = None if follow is None or republished else follow.end_offsets
            stale = republished or (was_following and (follow is None or follow.end_offsets() is None))
            stop_when_caught_up = not following and not stale
            if not stop_when_caught_up:
                span.release()  # this poll may wait for messages still being produced: not with the file held
            batch = consumer.next_batch(stop_when_caught_up=stop_when_caught_up, end_offsets=ended_at)
            republished, was_following = False, following
            if not batch:
                # Drained: reconciling (publisher confirms) and what follows it go without the file held.
                span.release()
                if following or lost_articles_republished():
                    continue
                break
            still_locked()
            span.before_batch()
            try:
                stats = processor.process(batch, batch_id(group, batch), fence=still_locked.fence)
            except WarehouseUnavailable:
                # Stop consuming without committing: the batch is read again when the warehouse is back.
                log.error("warehouse unavailable; stopping without committing offsets")
                raise
            # Decided as soon as the batch's transaction is committed, before the offsets' broker round trip: a
            # span that ends here (drained, partial batch, time up, no span) lets the file go first. Held into the
            # next poll only when that poll returns once the topic is read to its end (no followed producer) and
            # this batch came back full: the next one is waiting.
            span.after_batch(backlog=not following and len(batch) >= settings.batch_max_messages)
            fault_point("after_warehouse_commit")  # test-only crash point (newswire/faults.py)
            # Committed, and idempotent if replayed: a run that lost the lock meanwhile leaves the offsets to
            # the run that holds it now, which reads the batch again and finds it stored.
            still_locked()
            consumer.commit()
            summary.batches += 1
            summary.stats.add(stats)
            drained = consumer.drained and not following
            log.info(
                "batch %d: %d messages, %d new, %d duplicates, %d events changed",
                summary.batches,
                stats.messages,
                stats.new_articles,
                stats.duplicates,
                stats.events_changed,
            )
            if drained and not lost_articles_republished():
                break
    finally:
        try:
            span.release()  # on DuckDB closing the file checkpoints it, which can fail: the rest still closes
        finally:
            consumer.close()
            publisher.close()
            run_lock.close()
    summary.seconds = time.monotonic() - t0
    log.info("%s", summary.line())
    return summary
