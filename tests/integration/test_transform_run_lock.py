"""One transform run at a time per warehouse (whatever the consumer group), reading without joining the group.

The transform's consumer assigns itself every partition and commits under the group as a standalone member
(no group join to wait for); the run lock (:meth:`Warehouse.exclusive`) is then what keeps two runs from
processing the same messages. Against the real embedded broker, on both backends.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid
from typing import Any

import psycopg
import pytest
from kafka import TopicPartition
from test_transform_batches import corpus_messages, publish, snapshot

from newswire import contracts
from newswire.errors import BrokerUnavailable, WarehouseUnavailable
from newswire.messaging import ensure_topics, make_consumer
from newswire.warehouse import Warehouse
from transform.consumer import ArticleConsumer
from transform.stage import RUN_LOCK, run_transform

pytestmark = pytest.mark.integration
PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def committed(bootstrap: str, settings: Any, group: str) -> int:
    consumer = make_consumer(bootstrap, settings, group_id=group, topics=[])
    try:
        partitions = consumer.partitions_for_topic(contracts.ARTICLES.name) or set()
        return sum(consumer.committed(TopicPartition(contracts.ARTICLES.name, p)) or 0 for p in partitions)
    finally:
        consumer.close()


def published(broker: str, settings: Any) -> tuple[list[dict[str, Any]], Warehouse]:
    """The labelled corpus on the articles topic, and the settings' warehouse migrated (empty)."""
    ensure_topics(broker, settings)
    messages = corpus_messages()
    publish(broker, settings, messages)
    warehouse = Warehouse(settings.resolved_warehouse_url)
    warehouse.migrate()
    return messages, warehouse


def test_runs_resume_from_the_groups_committed_offsets(broker: str, warehouse_url: str, make_settings) -> None:
    settings = make_settings(warehouse_url=warehouse_url)
    ensure_topics(broker, settings)
    messages = corpus_messages()
    first, second = messages[:6], messages[6:]
    publish(broker, settings, first)
    assert run_transform(settings, broker).stats.messages == len(first)
    assert committed(broker, settings, settings.consumer_group) == len(first)
    publish(broker, settings, second)
    later = run_transform(settings, broker)
    assert later.stats.messages == len(second) and later.stats.new_articles + later.stats.duplicates == len(second)
    assert committed(broker, settings, settings.consumer_group) == len(messages)
    assert run_transform(settings, broker).stats.messages == 0  # nothing left, nothing read twice


def test_a_second_run_waits_for_the_first_and_doubles_nothing(broker: str, warehouse_url: str, make_settings) -> None:
    settings = make_settings(warehouse_url=warehouse_url)
    messages, warehouse = published(broker, settings)
    results: list[Any] = []
    # A first run, still going; the second is another deployment's (another consumer group): the story state
    # is the warehouse's, so it waits all the same.
    other = "another-deployment"
    with warehouse.exclusive(RUN_LOCK):
        waiting = threading.Thread(target=lambda: results.append(run_transform(settings, broker, group_id=other)))
        waiting.start()
        time.sleep(1.5)
        assert waiting.is_alive() and not results
        assert warehouse.scalar("SELECT COUNT(*) FROM articles") == 0  # it has read nothing yet
    waiting.join(timeout=60)
    assert results and results[0].stats.messages == len(messages)
    before = snapshot(warehouse)
    assert run_transform(settings, broker, group_id=other).stats.messages == 0
    assert snapshot(warehouse) == before


def _hold_and_wait(url: str, name: str, held: Any) -> None:
    with Warehouse(url).exclusive(name):
        held.set()
        time.sleep(60)


def test_the_run_lock_times_out_and_dies_with_its_holder(warehouse_url: str) -> None:
    warehouse = Warehouse(warehouse_url)
    warehouse.migrate()
    context = multiprocessing.get_context("spawn")
    held = context.Event()
    holder = context.Process(target=_hold_and_wait, args=(warehouse_url, "transform-x", held))
    holder.start()
    try:
        assert held.wait(30)
        with (
            pytest.raises(WarehouseUnavailable, match="held by another"),
            warehouse.exclusive("transform-x", timeout=0.3),
        ):
            pass
        with warehouse.exclusive("transform-y", timeout=0.3):  # another name is another lock
            pass
        holder.kill()  # a holder that dies releases the lock
        holder.join(10)
        with warehouse.exclusive("transform-x", timeout=10):
            pass
    finally:
        holder.kill()
        holder.join(10)


def _terminate_lock_session(warehouse: Warehouse, name: str) -> None:
    """End the session holding ``name`` from an admin connection, as pg_terminate_backend or a failover would."""
    key = warehouse.advisory_key(name) & (2**64 - 1)  # as pg_locks splits it
    with psycopg.connect(PG_DSN, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
            "AND classid::bigint = %s AND objid::bigint = %s AND objsubid = 1",
            (key >> 32, key & (2**32 - 1)),
        ).fetchall()
    assert killed == [(True,)]


@pytest.mark.postgres
def test_a_lost_postgresql_lock_session_stops_the_holder(make_settings) -> None:
    url = f"{PG_DSN}?schema=nwlock_{uuid.uuid4().hex[:10]}"
    warehouse = Warehouse(url)
    warehouse.migrate()
    try:
        with warehouse.exclusive("transform-lost") as still_held:
            still_held()
            _terminate_lock_session(warehouse, "transform-lost")  # the session ends under the holder
            with pytest.raises(WarehouseUnavailable, match="lost lock"):
                still_held()
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA IF EXISTS "{url.rpartition("=")[2]}" CASCADE')


@pytest.mark.postgres
def test_a_batch_whose_lock_session_dies_mid_batch_rolls_back(broker: str, make_settings) -> None:
    """The pre-batch check passed; the lock session dies while the batch's transaction is open. The fence in
    that transaction must roll it back: nothing of the batch stored, no offsets committed, a retryable error."""
    url = f"{PG_DSN}?schema=nwlock_{uuid.uuid4().hex[:10]}"
    settings = make_settings(warehouse_url=url)
    messages, warehouse = published(broker, settings)
    terminated: list[str] = []

    def lose_the_lock(point: str) -> None:
        if point == "mid_batch" and not terminated:  # writes done, the batch's transaction still open
            _terminate_lock_session(warehouse, RUN_LOCK)
            terminated.append(point)

    try:
        with pytest.MonkeyPatch.context() as patch, pytest.raises(WarehouseUnavailable, match="no longer held"):
            patch.setattr("transform.batch.fault_point", lose_the_lock)
            run_transform(settings, broker)
        assert terminated
        assert committed(broker, settings, settings.consumer_group) == 0
        for table in ("articles", "events", "transform_batches", "dead_letters"):
            assert warehouse.scalar(f"SELECT COUNT(*) FROM {table}") == 0, table
        # The next run, with its lock, stores the batch once.
        assert run_transform(settings, broker).stats.messages == len(messages)
        assert warehouse.scalar("SELECT COUNT(*) FROM transform_batches") >= 1
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA IF EXISTS "{url.rpartition("=")[2]}" CASCADE')


@pytest.mark.postgres
def test_the_fence_checks_this_sessions_lock_only() -> None:
    """The fence passes while the lock session holds the lock and fails once another session holds it."""
    url = f"{PG_DSN}?schema=nwlock_{uuid.uuid4().hex[:10]}"
    warehouse = Warehouse(url)
    warehouse.migrate()
    try:
        with warehouse.exclusive("transform-fence") as held:
            with warehouse.transaction() as cur:
                held.fence(cur)
            _terminate_lock_session(warehouse, "transform-fence")
            with (
                warehouse.exclusive("transform-fence", timeout=10),
                warehouse.transaction() as cur,
                pytest.raises(WarehouseUnavailable, match="no longer held"),
            ):
                held.fence(cur)  # granted, but to the new holder's session
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA IF EXISTS "{url.rpartition("=")[2]}" CASCADE')


def test_a_member_that_joined_the_group_makes_the_standalone_commit_fail(broker: str, make_settings) -> None:
    """An older transform that joined the group (an upgrade in progress) and this one never both advance it."""
    settings = make_settings()
    ensure_topics(broker, settings)
    publish(broker, settings, corpus_messages()[:2])
    member = make_consumer(broker, settings, group_id="shared", topics=[contracts.ARTICLES.name])
    try:
        deadline = time.monotonic() + 30
        while not member.assignment() and time.monotonic() < deadline:
            member.poll(timeout_ms=200)
        assert member.assignment()
        standalone = ArticleConsumer(settings, broker, group_id="shared")
        try:
            assert len(standalone.next_batch(stop_when_caught_up=True)) == 2
            with pytest.raises(BrokerUnavailable):
                standalone.commit()
        finally:
            standalone.close()
    finally:
        member.close(autocommit=False)
