"""The broker restarts between ingest and transform: the warehouse notices what the topic lost and heals it.

Ingest publishes to an embedded broker (a real Tansu process), which is then killed and started again on the
same port, empty, as ``make down``/``make up``, a crash or a reboot leave it. ``newswire status`` (a real
process) must flag the articles ingest stored but the warehouse lacks; the next transform task (a real
process, the function the DAG calls) must re-publish and store them, leaving the warehouse equal to one a
never-interrupted transform filled from the original topic; then ``newswire status`` is clean.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hostile_server import HostileServer, article_page, ok, rss, rss_item, status
from test_faults import _normal

from ingest.feedlist import FeedSpec
from ingest.stage import ingest_feeds
from newswire.broker import EmbeddedBroker
from newswire.messaging import Publisher, make_producer
from newswire.reconcile import pending, reconcile
from newswire.warehouse import Warehouse
from pipeline.cli import main
from transform.stage import run_transform

pytestmark = pytest.mark.integration

STORIES = 6
RSS = "application/rss+xml"
PG_DSN = os.environ.get("NEWSWIRE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
TRANSFORM_TASK = (
    "import json\nfrom pipeline.transform_tasks import transform_pending\nprint(json.dumps(transform_pending()))\n"
)
#: Wall-clock columns, and the arrival sequence: reconcile re-publishes in store order, not in the order ingest
#: first published (the same articles and events, numbered differently).
IGNORED = {"loaded_at", "detected_at", "updated_at", "added_at", "created_at", "last_attempt_at", "load_order"}


def dump(warehouse: Warehouse) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {}
    for table in ("articles", "article_duplicates", "events", "event_articles"):  # dead_letters: ingest's too
        rows = warehouse.query(f"SELECT * FROM {table}")
        out[table] = sorted(tuple((k, _normal(v)) for k, v in sorted(r.items()) if k not in IGNORED) for r in rows)
    return out


@pytest.fixture
def site() -> Iterator[tuple[HostileServer, list[FeedSpec]]]:
    with HostileServer() as server:
        for i in range(STORIES):
            # A year apart: online clustering depends on arrival order, and reconcile re-publishes in store
            # order, so stories that could join one event would make the comparison about ordering instead.
            page = article_page(f"Restart story {i}", f"restart-{i}", published=f"{2015 + i}-01-15T09:30:00Z")
            server.route(f"/story/{i}", ok(page))
        server.route("/story/gone", status(410))
        items = [rss_item(title=f"Story {i}", link=server.url(f"/story/{i}")) for i in range(STORIES)]
        first = server.route(
            "/a.xml", ok(rss([*items[:4], rss_item(title="Gone", link=server.url("/story/gone"))]).encode(), RSS)
        )
        # Story 3 is in both feeds and the second lists story 0 again: two same-URL duplicates at ingest.
        second = server.route(
            "/b.xml", ok(rss([*items[3:], rss_item(title="Again", link=server.url("/story/0"))]).encode(), RSS)
        )
        yield (
            server,
            [FeedSpec(url=first, name="A", ignore_robots=True), FeedSpec(url=second, name="B", ignore_robots=True)],
        )


def _process(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=180)


def test_broker_restart_between_ingest_and_transform_heals_on_the_next_transform(
    site: Any, warehouse_url: str, make_settings, tmp_path: Path
) -> None:
    _, feeds = site
    settings = make_settings(warehouse_url=warehouse_url)
    reference_url = f"duckdb:///{tmp_path / 'uninterrupted.duckdb'}"
    broker = EmbeddedBroker().start()
    try:
        summary = ingest_feeds(settings, broker.bootstrap, feeds, run_id="before-restart")
        new = summary.totals()["new"]
        assert (new, summary.totals()["duplicates"], summary.totals()["dead_letters"]) == (STORIES, 2, 1)
        # The uninterrupted run: a transform that read the topic before the broker went away.
        run_transform(make_settings(warehouse_url=reference_url), broker.bootstrap)
        os.killpg(broker.pid, signal.SIGKILL)  # a crash: nothing is flushed anywhere
        broker.stop()
        broker = EmbeddedBroker(port=broker.port).start()  # same address, empty topics

        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWIRE_")}
        env |= {
            "NEWSWIRE_HOME": str(settings.home),
            "NEWSWIRE_WAREHOUSE_URL": warehouse_url,
            "NEWSWIRE_KAFKA_BOOTSTRAP": broker.bootstrap,
            "NEWSWIRE_POLL_TIMEOUT": "1",
            "NEWSWIRE_RECONCILE_GRACE": "0.5",
            "NEWSWIRE_PENDING_MAX_AGE": "1",
        }
        time.sleep(1.1)  # the last ingested entry is now older than the pending limit
        newswire = str(Path(sys.executable).parent / "newswire")
        before = _process([newswire, "status"], env)
        assert before.returncode == 1, before.stdout + before.stderr
        assert f"pending articles: {STORIES}" in before.stdout and "ACCOUNTING VIOLATIONS" in before.stderr
        assert f"{STORIES} older than 1 s" in before.stderr

        task = _process([sys.executable, "-c", TRANSFORM_TASK], env)
        assert task.returncode == 0, task.stderr[-3000:]
        result = json.loads(task.stdout.strip().splitlines()[-1])
        print(f"\nrestart test ({warehouse_url.split(':')[0]}): {result['summary']}")
        assert (result["republished"], result["new_articles"]) == (STORIES, STORIES)

        after = _process([newswire, "status"], env)
        assert after.returncode == 0, after.stdout + after.stderr
        assert "pending articles: 0" in after.stdout and "accounting invariant holds" in after.stdout
    finally:
        broker.stop()
    assert dump(Warehouse(warehouse_url)) == dump(Warehouse(reference_url))
    assert Warehouse(warehouse_url).scalar("SELECT COUNT(*) FROM articles") == STORIES


def test_reconcile_leaves_young_and_stored_articles_alone(
    site: Any, broker: str, make_settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, feeds = site
    settings = make_settings(warehouse_url=f"duckdb:///{tmp_path / 'w.duckdb'}")
    ingest_feeds(settings, broker, feeds, run_id="young")
    warehouse = Warehouse(settings.resolved_warehouse_url)
    publisher = Publisher(make_producer(broker, settings, client_id="test"))
    try:
        assert reconcile(warehouse, publisher, grace=600).found == 0  # still within the grace period
        report = pending(warehouse, 3600)
        assert (report.pending, report.stale, report.unrecoverable, report.ok) == (STORIES, 0, 0, True)
        # By hand, without grace: everything pending goes out again, though the topic still has it ...
        args = ["--warehouse", settings.resolved_warehouse_url, "--bootstrap", broker]
        assert main(["reconcile", "--grace", "0", *args]) == 0
        assert f"reconcile: found={STORIES} republished={STORIES} invalid=0" in capsys.readouterr().out
        # ... and the transform applies each article once: the second copy is a redelivery.
        summary = run_transform(settings, broker)
        assert (summary.stats.new_articles, summary.stats.replays) == (STORIES, STORIES)
        assert reconcile(warehouse, publisher, grace=0).found == 0  # everything is stored now
        assert pending(warehouse, 3600).pending == 0
    finally:
        publisher.close()
