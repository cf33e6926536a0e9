"""Faults on our side during transform: a real process killed at the worst moments, the warehouse going away.

The corpus is ingested once into a single-partition topic (so every consumer sees one total order), a few
undecodable records are appended, and a never-killed transform fills a reference warehouse. Each fault
run then consumes the same topic under its own consumer group into its own warehouse, is killed or cut
off mid-run, is restarted, and must end with exactly the reference's rows: nothing lost, nothing doubled,
no extra event versions. Wall-clock columns (load and detection times) are the only ones not compared.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from kafka import KafkaProducer, TopicPartition

from ingest.stage import configured_feeds, ingest_feeds
from newswire import contracts
from newswire.broker import EmbeddedBroker
from newswire.errors import WarehouseUnavailable
from newswire.messaging import make_consumer
from newswire.settings import Settings, load_settings
from newswire.warehouse import Warehouse
from transform.stage import run_transform

pytestmark = pytest.mark.integration

PG_DSN = os.environ.get("NEWSWIRE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
BATCH = 8
TRANSFORM_TABLES = ("articles", "article_duplicates", "events", "event_articles", "dead_letters")
WALL_CLOCK = {"loaded_at", "detected_at", "updated_at", "added_at", "created_at", "last_attempt_at"}
JUNK = [b"not json at all", b'{"schema_version": 1, "article_id": "nope"}', b"\xff\xfe\x00binary"]
TRANSFORM_SCRIPT = (
    "from newswire.settings import load_settings\n"
    "from transform.stage import run_transform\n"
    "settings = load_settings()\n"
    "print(run_transform(settings, settings.kafka_bootstrap).line())\n"
)


# -- comparing warehouses ----------------------------------------------------------------------------------


def _normal(value: Any) -> Any:
    """One representation per value on both engines (timestamps as UTC text, numbers rounded)."""
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone(dt.UTC).isoformat()
    if isinstance(value, float | Decimal):
        return round(float(value), 6)
    return value


def dump(warehouse: Warehouse) -> dict[str, list[tuple[Any, ...]]]:
    """Every transform-owned row, sorted, without the wall-clock columns."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    for table in TRANSFORM_TABLES:
        rows = warehouse.query(f"SELECT * FROM {table}")
        out[table] = sorted(
            tuple((k, _normal(v)) for k, v in sorted(row.items()) if k not in WALL_CLOCK) for row in rows
        )
    return out


def committed_offset(bootstrap: str, settings: Settings, group: str) -> int | None:
    consumer = make_consumer(bootstrap, settings, group_id=group, topics=[])
    try:
        return consumer.committed(TopicPartition(contracts.ARTICLES.name, 0))
    finally:
        consumer.close()


# -- the shared topic ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def topic(corpus: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The corpus on a one-partition articles topic, junk appended, and a never-killed reference run."""
    tmp = tmp_path_factory.mktemp("faults")
    with pytest.MonkeyPatch.context() as mp, EmbeddedBroker() as broker:
        for key in [k for k in os.environ if k.startswith("NEWSWIRE_")]:
            mp.delenv(key)
        mp.chdir(tmp)
        base: dict[str, Any] = {
            "home": tmp / "home",
            "allow_private_networks": True,
            "host_interval": 0.0,
            "extract_workers": 1,
            "topic_partitions": 1,
            "batch_max_messages": BATCH,
            "poll_timeout": 1.0,
            "batch_deadline": 20.0,
            "kafka_bootstrap": broker.bootstrap,
        }
        ledger = load_settings(
            **base, warehouse_url=f"duckdb:///{tmp / 'ledger.duckdb'}", feeds=corpus.render_feed_list(tmp)
        )
        feeds = configured_feeds(ledger)
        ingest = ingest_feeds(ledger, broker.bootstrap, feeds, run_id="faults-ingest")
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap)  # a raw client: no contract check
        for i, junk in enumerate(JUNK):
            producer.send(contracts.ARTICLES.name, key=f"junk-{i}".encode(), value=junk)
        producer.send(contracts.ARTICLES.name, key=b"tombstone", value=None)
        producer.flush(10)
        producer.close()

        state: dict[str, Any] = {
            "broker": broker.bootstrap,
            "base": base,
            "tmp": tmp,
            "messages": ingest.totals()["new"] + len(JUNK) + 1,
        }
        # The processes to be killed start now and run beside the reference (each its own group and warehouse).
        state["killed"] = {fault: _start_killed_run(state, fault) for fault in FAULTS}
        reference = load_settings(**base, warehouse_url=f"duckdb:///{tmp / 'reference.duckdb'}")
        state["reference_summary"] = run_transform(reference, broker.bootstrap, group_id="reference")
        state["reference"] = dump(Warehouse(reference.resolved_warehouse_url))
        yield state
        for run in state["killed"].values():
            if run["proc"].poll() is None:
                run["proc"].kill()
                run["proc"].wait()


def test_reference_run_stored_the_corpus_and_dead_lettered_the_junk(topic: dict[str, Any]) -> None:
    reference, summary = topic["reference"], topic["reference_summary"]
    assert summary.stats.messages == topic["messages"]
    assert summary.stats.dead_letters == len(JUNK) + 1
    assert len(reference["articles"]) == summary.stats.new_articles > 20
    assert summary.batches > 3  # enough batches for a kill in the middle to leave work on both sides


# -- transform killed ------------------------------------------------------------------------------------


def _transform_process(topic: dict[str, Any], warehouse_url: str, group: str, fault: str | None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWIRE_")}
    env.update({f"NEWSWIRE_{k.upper()}": str(v) for k, v in topic["base"].items()})
    env.update({"NEWSWIRE_WAREHOUSE_URL": warehouse_url, "NEWSWIRE_CONSUMER_GROUP": group})
    if fault:
        env["NEWSWIRE_FAULT"] = fault
    return subprocess.Popen(
        [sys.executable, "-c", TRANSFORM_SCRIPT],
        env=env,
        cwd=topic["tmp"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _start_killed_run(topic: dict[str, Any], fault: str) -> dict[str, Any]:
    group = f"killed-{fault.partition('@')[0]}"
    url = f"duckdb:///{topic['tmp'] / (group + '.duckdb')}"
    return {"group": group, "url": url, "proc": _transform_process(topic, url, group, fault)}


FAULTS = {
    # Batch 2 is in the warehouse (and its events published) but its offsets are not committed.
    "after_warehouse_commit@2": 2,
    # Batch 2's rows were written inside the open transaction when the process died.
    "mid_batch@2": 1,
}


@pytest.fixture(scope="module")
def killed(topic: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each fault in its own real process, killed by SIGKILL at its point, then restarted once.

    The faults run side by side, each in its own warehouse and group. The transform's consumer never joins
    its group, so a restart does not wait for the broker to expire the killed member's session; the killed
    process's run lock went with it.
    """
    runs: dict[str, dict[str, Any]] = topic["killed"]
    for run in runs.values():
        run["proc"].communicate(timeout=120)
        run["returncode"] = run["proc"].returncode
        warehouse = Warehouse(run["url"])
        run["batches_after_kill"] = warehouse.scalar("SELECT COUNT(*) FROM transform_batches")
        run["first_batch"] = warehouse.query("SELECT messages FROM transform_batches")[0]["messages"]
        settings = load_settings(**topic["base"], warehouse_url=run["url"])
        run["offset_after_kill"] = committed_offset(topic["broker"], settings, run["group"])
    for run in runs.values():  # the restart, as Airflow's retry would do it
        run["proc"] = _transform_process(topic, run["url"], run["group"], fault=None)
    for run in runs.values():
        _, err = run["proc"].communicate(timeout=120)
        assert run["proc"].returncode == 0, err.decode()[-3000:]
        settings = load_settings(**topic["base"], warehouse_url=run["url"])
        run["offset_after_rerun"] = committed_offset(topic["broker"], settings, run["group"])
    return runs


@pytest.mark.parametrize("fault", list(FAULTS))
def test_transform_killed_then_rerun_gives_exactly_the_reference_state(
    topic: dict[str, Any], killed: dict[str, dict[str, Any]], fault: str
) -> None:
    run = killed[fault]
    assert run["returncode"] == -signal.SIGKILL  # a real SIGKILL, mid-run
    assert run["batches_after_kill"] == FAULTS[fault]
    assert run["offset_after_kill"] == run["first_batch"]  # only batch 1's offsets were committed
    warehouse = Warehouse(run["url"])
    assert dump(warehouse) == topic["reference"]  # nothing lost, nothing doubled, no extra versions
    assert run["offset_after_rerun"] == topic["messages"]
    assert warehouse.scalar("SELECT COUNT(*) FROM events WHERE published_version <> version") == 0


# -- warehouse unavailable --------------------------------------------------------------------------------


class TcpProxy:
    """Forwards loopback connections to a target until ``cut()``: then the port refuses, like a dead server."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        # shutdown() first: close() alone leaves a thread blocked in accept() holding the port open.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            for s in self._open:
                # shutdown() too: a socket another thread is blocked reading from stays connected after
                # close() alone, and the server would keep the session (and its locks) of a dead warehouse.
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()


@pytest.mark.postgres
def test_warehouse_outage_stops_transform_uncommitted_and_a_later_run_loses_nothing(
    topic: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = f"nwfault_{uuid.uuid4().hex[:10]}"
    pg = psycopg.conninfo.conninfo_to_dict(PG_DSN)
    proxy = TcpProxy((str(pg.get("host", "127.0.0.1")), int(pg.get("port", 5432))))
    user, dbname = pg.get("user", "postgres"), pg.get("dbname", "test")
    through_proxy = f"postgresql://{user}@127.0.0.1:{proxy.port}/{dbname}?schema={schema}"
    direct = f"{PG_DSN}?schema={schema}"
    group = "warehouse-outage"
    try:
        from transform.batch import BatchProcessor

        original = BatchProcessor.process

        def process_then_lose_the_warehouse(self: BatchProcessor, batch: list[Any], batch_id: str, **kw: Any) -> Any:
            stats = original(self, batch, batch_id, **kw)
            proxy.cut()  # after batch 1 committed: every later connection attempt is refused
            return stats

        monkeypatch.setattr(BatchProcessor, "process", process_then_lose_the_warehouse)
        outage = load_settings(**topic["base"], warehouse_url=through_proxy)
        # The run lock's session went with the cut: the check before the offset commit finds it gone.
        with pytest.raises(WarehouseUnavailable, match=r"lost lock"):
            run_transform(outage, topic["broker"], group_id=group)
        monkeypatch.setattr(BatchProcessor, "process", original)

        settings = load_settings(**topic["base"], warehouse_url=direct)
        warehouse = Warehouse(direct)
        first_batch = warehouse.scalar("SELECT messages FROM transform_batches")
        assert warehouse.scalar("SELECT COUNT(*) FROM transform_batches") == 1
        # Batch 1 is stored but its offsets were not committed: the lock was gone by then, and the run that
        # holds it next owns them (it replays batch 1 and finds it stored).
        assert not committed_offset(topic["broker"], settings, group)
        assert first_batch > 0

        summary = run_transform(settings, topic["broker"], group_id=group)  # the warehouse is back
        assert summary.stats.messages == topic["messages"]
        assert dump(warehouse) == topic["reference"]
        assert committed_offset(topic["broker"], settings, group) == topic["messages"]
    finally:
        proxy.cut()
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
