"""The transform's warehouse hold span (:mod:`transform.span`): the warehouse stays open across full batches, and
is let go when the topic is drained, when the span's time is up, or when the process dies, without losing or
doubling a row.

On DuckDB "open" is observable from outside: while a process holds the file, another process cannot open it.
The checks below ask a separate Python process, since connections within one process share the database.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.transform import NullPublisher, incoming, records, stream_messages
from newswire import contracts
from newswire.messaging import Publisher, ensure_topics, make_producer
from newswire.reconcile import ReconcileSummary
from newswire.warehouse import Warehouse
from transform import stage
from transform.batch import BatchProcessor
from transform.clustering import ClusteringConfig
from transform.consumer import ArticleConsumer
from transform.span import WarehouseSpan
from transform.stage import run_transform

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CONFIG = ClusteringConfig(embedding_model="none")  # words and cues only: the encoder would dominate the test
BATCH = 20
# Every table a batch writes, without the columns holding the wall-clock time of the run.
TABLES = {
    "articles": ("article_id", "content_hash", "load_order", "version"),
    "article_duplicates": ("url", "article_id", "duplicate_of", "method"),
    "events": ("event_id", "version", "content_digest", "published_version", "merged_into"),
    "event_articles": ("event_id", "article_id"),
    "article_features": ("article_id", "features", "signature"),
    "transform_batches": ("batch_id", "messages", "new_articles", "duplicates", "events_changed"),
}


@pytest.fixture(scope="module")
def topic() -> list[tuple[str, bytes]]:
    """Three batches of the synthetic stream as they sit on the topic."""
    return records(stream_messages(3 * BATCH, embeddings=False))


def batches(topic: list[tuple[str, bytes]]) -> Iterator[tuple[str, list[Any]]]:
    for start in range(0, len(topic), BATCH):
        yield f"batch-{start}", incoming(topic[start : start + BATCH], start)


def snapshot(warehouse: Warehouse) -> dict[str, list[dict[str, Any]]]:
    return {
        table: warehouse.query(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {', '.join(columns)}")
        for table, columns in TABLES.items()
    }


def duckdb_warehouse(path: Path) -> Warehouse:
    warehouse = Warehouse(f"duckdb:///{path}")
    warehouse.migrate()
    return warehouse


def batches_seen_by_another_process(path: Path) -> int | None:
    """How many batches another process finds in the DuckDB file; None when it cannot open the file."""
    script = textwrap.dedent(
        f"""
        import duckdb, sys
        try:
            conn = duckdb.connect({str(path)!r})
        except duckdb.IOException:
            sys.exit(3)
        print(conn.execute("SELECT COUNT(*) FROM transform_batches").fetchone()[0])
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    if done.returncode == 3:
        return None
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def test_the_file_stays_open_across_full_batches_and_is_let_go_once_drained(
    topic: list[tuple[str, bytes]], tmp_path: Path
) -> None:
    path = tmp_path / "span.duckdb"
    warehouse = duckdb_warehouse(path)
    processor = BatchProcessor(warehouse, NullPublisher(), config=CONFIG)  # type: ignore[arg-type]
    (first_id, first), (second_id, second), (third_id, third) = batches(topic)
    with WarehouseSpan(warehouse, 60.0) as span:
        span.before_batch()
        processor.process(first, first_id)
        span.after_batch(backlog=True)
        assert span.held
        assert batches_seen_by_another_process(path) is None  # between two batches of a backlog: still open

        span.before_batch()
        processor.process(second, second_id)
        span.after_batch(backlog=False)  # the topic is drained: others may have the file until the next batch
        assert not span.held
        assert batches_seen_by_another_process(path) == 2

        span.before_batch()
        processor.process(third, third_id)
        span.after_batch(backlog=True)
        assert span.held
    # Leaving the span (the end of a run, or an exception) lets the file go too.
    assert batches_seen_by_another_process(path) == 3
    assert span.spans == 2


def test_the_span_ends_after_its_seconds_even_with_backlog(topic: list[tuple[str, bytes]], tmp_path: Path) -> None:
    path = tmp_path / "span.duckdb"
    warehouse = duckdb_warehouse(path)
    processor = BatchProcessor(warehouse, NullPublisher(), config=CONFIG)  # type: ignore[arg-type]
    now = [100.0]
    span = WarehouseSpan(warehouse, 5.0, clock=lambda: now[0])
    held_after = []
    for (batch_id, batch), elapsed in zip(batches(topic), (3.0, 6.0, 1.0), strict=True):
        span.before_batch()
        processor.process(batch, batch_id)
        now[0] += elapsed
        span.after_batch(backlog=True)
        held_after.append(span.held)
    # 3 s into the span: held; 9 s: released although batches were waiting; the next batch starts a new span.
    assert held_after == [True, False, True]
    span.release()
    assert span.spans == 2
    assert batches_seen_by_another_process(path) == 3


def test_no_span_lets_the_file_go_after_every_batch(topic: list[tuple[str, bytes]], tmp_path: Path) -> None:
    warehouse = duckdb_warehouse(tmp_path / "span.duckdb")
    processor = BatchProcessor(warehouse, NullPublisher(), config=CONFIG)  # type: ignore[arg-type]
    with WarehouseSpan(warehouse, 0.0) as span:
        for batch_id, batch in batches(topic):
            span.before_batch()
            processor.process(batch, batch_id)
            span.after_batch(backlog=True)
            assert not span.held
    assert span.spans == 3
    with pytest.raises(ValueError, match="negative"):
        WarehouseSpan(warehouse, -1.0)


KILLED_MID_SPAN = """
import os, signal, sys
from bench.transform import NullPublisher, incoming, records, stream_messages
from newswire.warehouse import Warehouse
from transform.batch import BatchProcessor
from transform.clustering import ClusteringConfig
from transform.span import WarehouseSpan

path, batch = sys.argv[1], int(sys.argv[2])
topic = records(stream_messages(3 * batch, embeddings=False))
warehouse = Warehouse(f"duckdb:///{path}")
processor = BatchProcessor(warehouse, NullPublisher(), config=ClusteringConfig(embedding_model="none"))
span = WarehouseSpan(warehouse, 60.0)
for start in (0, batch):  # two of the three batches, committed inside one span
    span.before_batch()
    processor.process(incoming(topic[start : start + batch], start), f"batch-{start}")
    span.after_batch(backlog=True)
assert span.held
os.kill(os.getpid(), signal.SIGKILL)  # the file is still open: no close, no checkpoint
"""


def test_a_process_killed_mid_span_loses_nothing_and_a_rerun_doubles_nothing(
    topic: list[tuple[str, bytes]], tmp_path: Path
) -> None:
    reference = duckdb_warehouse(tmp_path / "reference.duckdb")
    processor = BatchProcessor(reference, NullPublisher(), config=CONFIG)  # type: ignore[arg-type]
    for batch_id, batch in batches(topic):
        processor.process(batch, batch_id)

    path = tmp_path / "killed.duckdb"
    duckdb_warehouse(path)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_MID_SPAN, str(path), str(BATCH)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    # Both batches committed before the kill are in the file (its write-ahead log is replayed on opening).
    assert batches_seen_by_another_process(path) == 2

    # The run is retried from the first batch (its offsets were never committed): the first two are replays.
    warehouse = Warehouse(f"duckdb:///{path}")
    rerun = BatchProcessor(warehouse, NullPublisher(), config=CONFIG)  # type: ignore[arg-type]
    replays = 0
    with WarehouseSpan(warehouse, 60.0) as span:
        for batch_id, batch in batches(topic):
            span.before_batch()
            stats = rerun.process(batch, batch_id)
            span.after_batch(backlog=True)
            replays += stats.replays
    stored_by_kill = warehouse.scalar("SELECT SUM(new_articles) FROM transform_batches WHERE batch_id <> 'batch-40'")
    assert replays >= stored_by_kill > 0
    assert snapshot(warehouse) == snapshot(reference)


def test_run_transform_opens_the_warehouse_once_per_span_and_replays_change_nothing(
    broker: str, warehouse_url: str, make_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = {"warehouse_url": warehouse_url, "embedding_model": "none", "batch_max_messages": 4}
    ensure_topics(broker, make_settings(**base))
    publisher = Publisher(make_producer(broker, make_settings(**base), client_id="test"))
    for key, value in records(stream_messages(10, embeddings=False)):
        publisher.send(contracts.ARTICLES, key, json.loads(value))
    publisher.confirm()
    publisher.close()
    Warehouse(warehouse_url).migrate()  # both runs then find it migrated: they differ in their batches only

    opened: list[str] = []
    connect_once = Warehouse._connect_once

    def counted(self: Warehouse, **pg_options: Any) -> Any:
        if not pg_options:  # the run lock's own PostgreSQL session is not a warehouse connection
            opened.append(self.url)
        return connect_once(self, **pg_options)

    monkeypatch.setattr(Warehouse, "_connect_once", counted)
    first = run_transform(make_settings(**base, transform_hold_seconds=0), broker, group_id="no-span")
    assert first.batches == 3 and first.stats.new_articles + first.stats.duplicates == 10
    without_span = len(opened)
    before = snapshot(Warehouse(warehouse_url))
    opened.clear()

    # A second group reads the same three batches (4, 4 and 2 messages) with a span: the two full batches and
    # the last one share one opening of the warehouse instead of one each; as replays, they change nothing.
    replay = run_transform(make_settings(**base, transform_hold_seconds=30), broker, group_id="span")
    assert replay.batches == 3
    assert replay.stats.replays == 10 and replay.stats.new_articles == 0 and replay.stats.events_changed == 0
    assert len(opened) == without_span - 2
    monkeypatch.setattr(Warehouse, "_connect_once", connect_once)
    after = snapshot(Warehouse(warehouse_url))
    assert len(after.pop("transform_batches")) == 2 * len(before.pop("transform_batches"))  # one row per group
    assert after == before


def publish(broker: str, settings: Any, messages: list[tuple[str, bytes]]) -> None:
    ensure_topics(broker, settings)
    publisher = Publisher(make_producer(broker, settings, client_id="test"))
    for key, value in messages:
        publisher.send(contracts.ARTICLES, key, json.loads(value))
    publisher.confirm()
    publisher.close()


@pytest.mark.parametrize(
    ("hold_seconds", "seen_during_commits"),
    [
        # No span: the file is let go after every batch, before its offsets are committed.
        (0.0, [1, 2, 3]),
        # A span: held through the commits of the two full batches; the partial last one ends it before its commit.
        (30.0, [None, None, 3]),
    ],
)
def test_the_file_is_let_go_before_the_offsets_commit_when_the_span_ends(
    broker: str,
    make_settings: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    hold_seconds: float,
    seen_during_commits: list[int | None],
) -> None:
    """Committing the offsets is a broker round trip (seconds when the broker is slow or down): a span that ends
    with a batch lets the file go before it, as the transform did before spans existed."""
    path = tmp_path / "commit.duckdb"
    settings = make_settings(
        warehouse_url=f"duckdb:///{path}",
        embedding_model="none",
        batch_max_messages=4,
        transform_hold_seconds=hold_seconds,
    )
    publish(broker, settings, records(stream_messages(10, embeddings=False)))
    seen: list[int | None] = []
    commit = ArticleConsumer.commit

    def observed(self: ArticleConsumer) -> None:
        seen.append(batches_seen_by_another_process(path))
        commit(self)

    monkeypatch.setattr(ArticleConsumer, "commit", observed)
    summary = run_transform(settings, broker)
    assert summary.batches == 3
    assert seen == seen_during_commits


def test_a_span_ending_exactly_at_the_topics_end_is_let_go_before_reconciling_and_waiting_polls(
    broker: str, make_settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two full batches read the topic exactly to its end: the span is still open when the next poll comes back
    empty. Reconciling (publisher confirms) and a poll that may wait for messages run without the file held."""
    path = tmp_path / "reconcile.duckdb"
    settings = make_settings(
        warehouse_url=f"duckdb:///{path}", embedding_model="none", batch_max_messages=4, transform_hold_seconds=30
    )
    messages = records(stream_messages(9, embeddings=False))
    publish(broker, settings, messages[:8])
    events: list[tuple[str, int | None]] = []

    def lost_one(warehouse: Warehouse, publisher: Publisher, **_: Any) -> ReconcileSummary:
        """Stands in for a raw article the topic lost: reconcile re-publishes it, so the next poll cannot stop
        at the last fetch's high watermark and may wait."""
        events.append(("reconcile", batches_seen_by_another_process(path)))
        key, value = messages[8]
        publisher.send(contracts.ARTICLES, key, json.loads(value))
        publisher.confirm()
        return ReconcileSummary(found=1, republished=1)

    next_batch = ArticleConsumer.next_batch

    def observed(self: ArticleConsumer, **options: Any) -> list[Any]:
        if not options.get("stop_when_caught_up"):
            events.append(("waiting poll", batches_seen_by_another_process(path)))
        return next_batch(self, **options)

    monkeypatch.setattr(stage, "reconcile", lost_one)
    monkeypatch.setattr(ArticleConsumer, "next_batch", observed)
    summary = run_transform(settings, broker)
    assert summary.batches == 3 and summary.stats.new_articles + summary.stats.duplicates == 9
    assert events == [("reconcile", 2), ("waiting poll", 2)]


def test_a_pooled_postgresql_connection_dropped_between_batches_is_replaced(
    warehouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A span keeps PostgreSQL connections across batches; one the server dropped meanwhile (restart, idle
    timeout) is replaced instead of failing the next batch. (Connections idle less than ``PROBE_IDLE_SECONDS``
    are reused unprobed; the test makes every pooled connection count as idle long enough.)"""
    if not warehouse_url.startswith("postgresql"):
        pytest.skip("the span pools connections on PostgreSQL only")
    import psycopg

    import newswire.warehouse as warehouse_module

    monkeypatch.setattr(warehouse_module, "PROBE_IDLE_SECONDS", 0.0)

    warehouse = Warehouse(warehouse_url)
    warehouse.migrate()
    with warehouse.hold():
        assert warehouse.scalar("SELECT COUNT(*) FROM transform_batches") == 0
        pooled = [conn.info.backend_pid for conn in warehouse._idle]
        assert pooled  # kept for the next batch
        with psycopg.connect(warehouse_url.split("?")[0], autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (pooled,))
        assert warehouse.scalar("SELECT COUNT(*) FROM transform_batches") == 0
