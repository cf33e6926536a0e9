"""The scheduled DAGs run in-process (dag.test, in a subprocess: Airflow reads its configuration at import time):
a run of newswire_ingest on its timetable with a failing feed beside healthy ones, and a day of newswire_archive.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
ARCHIVE: dict[str, Any] = tomllib.loads((REPO / "devtools" / "corpus" / "EXPECTED-archive.toml").read_text())
pytestmark = pytest.mark.airflow

SCRIPT = r"""
import json, os, sys, threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

home = Path(sys.argv[1])
from devtools import local_airflow
local_airflow.configure(home)
from newswire.broker import bootstrap_servers
from devtools.devserver import CorpusServer
from newswire.settings import load_settings
from newswire.warehouse import Warehouse

CORPUS = Path(sys.argv[2])
hits = []

class Unavailable(BaseHTTPRequestHandler):
    def do_GET(self):
        hits.append(self.path)
        self.send_response(503)
        self.send_header("Retry-After", "90")
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass

down = ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
threading.Thread(target=down.serve_forever, args=(0.05,), daemon=True).start()
out = {}
with CorpusServer(CORPUS) as corpus:
    feeds = home / "feeds.toml"
    text = corpus.render((CORPUS / "feeds-archive.toml").read_text())
    text += f'\n[[feeds]]\nname = "Down for maintenance"\nurl = "http://127.0.0.1:{down.server_address[1]}/rss"\n'
    feeds.write_text(text)
    os.environ["NEWSWIRE_FEEDS"] = str(feeds)
    with bootstrap_servers(load_settings()) as bootstrap:
        os.environ["NEWSWIRE_KAFKA_BOOTSTRAP"] = bootstrap
        local_airflow.init_metadata_db()

        ingest = local_airflow.load_dag("newswire_ingest")
        task = ingest.get_task("ingest_shard")
        policy = task.retry_policy
        from ingest.poll import FeedFailed
        decision = policy.evaluate(FeedFailed("u", "http_status", "503", True, 90.0), try_number=1, max_tries=4)
        plain = policy.evaluate(FeedFailed("u", "timeout", "slow", True), try_number=1, max_tries=4)
        out["policy"] = {
            "retry_after": [decision.action.value, decision.retry_delay.total_seconds()],
            "plain": plain.action.value,
            "retries": task.retries,
            "exponential": bool(task.retry_exponential_backoff),
        }
        task.retries = 0  # dag.test waits out retry delays; the retry policy is checked above
        tick = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
        run = ingest.test(logical_date=tick)
        out["ingest"] = {
            "state": str(run.state),
            "interval": [run.data_interval_start.isoformat(), run.data_interval_end.isoformat()],
            "tis": sorted([ti.task_id, ti.map_index, str(ti.state)] for ti in run.get_task_instances()),
        }

        archive = local_airflow.load_dag("newswire_archive")
        day = datetime.combine(corpus.today - timedelta(days=18), datetime.min.time(), UTC)
        archive.get_task("archive_day").retries = 0
        run = archive.test(logical_date=day + timedelta(days=1))
        out["archive"] = {
            "state": str(run.state),
            "interval": [run.data_interval_start.isoformat(), run.data_interval_end.isoformat()],
            "tis": sorted([ti.task_id, ti.map_index, str(ti.state)] for ti in run.get_task_instances()),
            "params": {k: v for k, v in archive.params.dump().items()},
            "schedule": archive.timetable.expression,
            "pool": archive.get_task("archive_day").pool,
            "tasks": sorted(archive.task_ids),
            "archive_limits": {
                t.task_id: [t.pool, t.max_active_tis_per_dag] for t in archive.tasks if t.pool == "newswire_fetch"
            },
            "ingest_limits": {
                t.task_id: [t.max_active_tis_per_dag, t.priority_weight]
                for t in ingest.tasks
                if t.pool == "newswire_fetch"
            },
        }
        warehouse = Warehouse(load_settings().resolved_warehouse_url)
        out["runs"] = warehouse.query(
            "SELECT run_id, feed_url, status, error, interval_start, interval_end, entries_seen, new_articles "
            "FROM ingest_runs ORDER BY run_id, feed_url"
        )
        out["entries"] = warehouse.query("SELECT entry_url, outcome, run_id FROM feed_entries")
        out["schedule"] = warehouse.query(
            "SELECT feed_url, last_outcome, last_polled_at, next_poll_at, consecutive_failures FROM feed_schedule"
        )
        out["today"] = corpus.today.isoformat()
        out["down_url"] = f"http://127.0.0.1:{down.server_address[1]}/rss"
        out["hits"] = hits
print("RESULT " + json.dumps(out, default=str))
"""


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("dagtest") / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSWIRE_", "AIRFLOW"))}
    env.update({"NEWSWIRE_HOME": str(home), "NEWSWIRE_ALLOW_PRIVATE_NETWORKS": "true", "NEWSWIRE_HOST_INTERVAL": "0"})
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(home), str(REPO / "devtools" / "corpus")],
        capture_output=True,
        text=True,
        env=env,
        cwd=home,
        timeout=300,
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert proc.returncode == 0 and line, proc.stdout[-3000:] + proc.stderr[-5000:]
    return dict(json.loads(line.removeprefix("RESULT ")))


def test_a_failing_feed_is_recorded_and_never_fails_its_shard(result: dict[str, Any]) -> None:
    ingest = result["ingest"]
    states = {(task, index): state for task, index, state in ingest["tis"]}
    assert states[("claim_feeds", -1)] == "success" and states[("summarize", -1)] == "success"
    mapped = [state for (task, _), state in states.items() if task == "ingest_shard"]
    # Three feeds on three hosts: up to three shards, all successful although one feed answers 503.
    assert mapped and all(state == "success" for state in mapped)
    assert "success" in ingest["state"]
    by_feed = {r["feed_url"]: r for r in result["runs"] if r["interval_end"].startswith("2026-11-24 12:00")}
    failed = by_feed[result["down_url"]]
    assert failed["status"] == "failed" and "503" in failed["error"] and result["down_url"] in failed["error"]
    healthy = [r for url, r in by_feed.items() if url != result["down_url"]]
    assert len(healthy) == 2 and all(r["status"] == "ok" and r["new_articles"] > 0 for r in healthy)
    # Its next attempt is in the feed schedule, no sooner than the server's Retry-After (90 s).
    schedule = {r["feed_url"]: r for r in result["schedule"]}
    down = schedule[result["down_url"]]
    assert down["last_outcome"] == "failed" and down["consecutive_failures"] == 1
    polled, due = (datetime.fromisoformat(str(down[k])) for k in ("last_polled_at", "next_poll_at"))
    assert due - polled >= timedelta(seconds=89)
    assert all(r["last_outcome"] == "ok" for url, r in schedule.items() if url != result["down_url"])


def test_a_run_records_the_data_interval_of_its_timetable(result: dict[str, Any]) -> None:
    start, end = result["ingest"]["interval"]
    assert datetime.fromisoformat(end) - datetime.fromisoformat(start) == timedelta(minutes=5)
    rows = [r for r in result["runs"] if r["interval_end"].startswith("2026-11-24 12:00")]
    assert len(rows) == 3
    assert all(r["interval_start"].startswith("2026-11-24 11:55") for r in rows)


def test_the_retry_policy_honours_retry_after_and_otherwise_backs_off_exponentially(result: dict[str, Any]) -> None:
    policy = result["policy"]
    assert policy["retry_after"] == ["retry", 90.0]
    assert policy["plain"] == "default"  # Airflow's own exponential backoff
    assert policy["retries"] == 3 and policy["exponential"]


def test_an_archive_run_ingests_the_articles_published_on_its_day(result: dict[str, Any]) -> None:
    archive = result["archive"]
    assert "success" in archive["state"]
    today = date.fromisoformat(result["today"])
    start, end = (datetime.fromisoformat(v) for v in archive["interval"])
    assert end - start == timedelta(days=1) and start.date() == today - timedelta(days=18)
    assert archive["params"] == {"feeds": [], "refetch": False, "rebuild_events": False}
    assert archive["schedule"] == "0 0 * * *" and archive["pool"] == "newswire_fetch"
    # One task walks the whole day (the feed that is down fails alone, inside it), unmapped.
    assert [[task, index, state] for task, index, state in archive["tis"] if task == "archive_day"] == [
        ["archive_day", -1, "success"]
    ]
    wanted = set()
    for article in ARCHIVE["articles"]:
        offset, clock = article["published"].split()
        moment = datetime.combine(today + timedelta(days=int(offset)), datetime.min.time(), UTC)
        moment += timedelta(hours=int(clock[:2]), minutes=int(clock[3:]))
        if start <= moment < end:
            wanted.add(article["path"])
    archive_runs = {r["run_id"] for r in result["runs"] if r["interval_start"].startswith(start.strftime("%Y-%m-%d"))}
    got = {
        "/" + e["entry_url"].split("/", 3)[3]
        for e in result["entries"]
        if e["run_id"] in archive_runs and e["outcome"] == "new"
    }
    assert got == wanted and len(wanted) == 2


def test_the_archive_holds_one_fetch_slot_across_all_runs_and_ingest_goes_first(result: dict[str, Any]) -> None:
    """Issue 12's slot rule: of the pool's slots, archive runs (scheduled, manual, a backfill's days) take one
    at a time, and ingest shards are queued ahead of it, so polling never waits for the archive."""
    archive = result["archive"]
    assert archive["tasks"] == ["archive_day", "rebuild_events", "summarize"]
    assert archive["archive_limits"] == {"archive_day": ["newswire_fetch", 1]}
    (limit, weight), *_ = archive["ingest_limits"].values()
    assert list(archive["ingest_limits"]) == ["ingest_shard"] and limit is None and weight == 10
