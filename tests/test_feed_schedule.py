"""Scheduled polling on both warehouses with the real broker: claims, shards, per-feed next polls, failing and
disabled feeds, expired claims, feeds added to and removed from the list, ``newswire feeds``, a shard killed
between its batched writes."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ingest import ledger as ledger_module
from ingest.ledger import IngestLedger
from ingest.politeness import host_key
from ingest.schedule_store import plan_shards
from ingest.shards import claim_due, poll_shard, schedule_store
from newswire.errors import WarehouseUnavailable
from newswire.warehouse import utcnow
from pipeline.cli import main as cli


class _Gone(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(410)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def gone_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Gone)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/feed.rss"
    server.shutdown()
    server.server_close()


def _feed_list(corpus: Any, tmp_path: Path, extra: str) -> Path:
    path = corpus.render_feed_list(tmp_path / "feeds.toml")
    path.write_text(path.read_text() + f'\n[[feeds]]\nname = "Gone"\nurl = "{extra}"\n')
    return path


def _rows(settings: Any) -> dict[str, dict[str, Any]]:
    return {r["feed_url"]: r for r in schedule_store(settings).listing()}


def test_shards_keep_a_hosts_feeds_together_and_stay_within_the_limit() -> None:
    urls = [f"http://h{h}.example:80/f{i}.rss" for h in range(30) for i in range(h % 4 + 1)]
    groups = plan_shards(urls, 8)
    assert len(groups) == 8 and sorted(u for g in groups for u in g) == sorted(urls)
    owner = {host_key(u): i for i, g in enumerate(groups) for u in g}
    assert all(owner[host_key(u)] == i for i, g in enumerate(groups) for u in g)
    assert max(map(len, groups)) - min(map(len, groups)) <= 4  # balanced to within one host's feeds
    assert plan_shards(urls, 8) == plan_shards(list(reversed(urls)), 8)  # deterministic
    assert len(plan_shards(urls[:3], 8)) == 2  # never more shards than hosts
    assert plan_shards([], 8) == []


def test_scheduled_polling_claims_records_and_disables(
    corpus: Any, gone_url: str, tmp_path: Path, make_settings: Any, warehouse_url: str, broker: str
) -> None:
    feeds = _feed_list(corpus, tmp_path, gone_url)
    settings = make_settings(warehouse_url=warehouse_url, feeds=feeds, ingest_shards=3, feed_disable_after=2)
    claim = claim_due(settings, "run-1")
    listed = len(_rows(settings))
    assert claim.feeds == listed and 1 < len(claim.shards) <= 3
    # A second run overlapping the first claims nothing: every due feed is held.
    assert claim_due(settings, "run-overlap").feeds == 0

    reports = [poll_shard(settings, broker, token="run-1", shard=s, run_id="run-1") for s in sorted(claim.shards)]
    assert sum(r["feeds"] + r["failed_feeds"] for r in reports) == listed
    failing = [r for r in reports if r["failed_feeds"]]
    assert len(failing) == 1 and failing[0]["failing"] == [gone_url] and gone_url in failing[0]["summary"]
    rows = _rows(settings)
    now = utcnow()
    assert all(r["claimed_until"] is None and r["next_poll_at"] > now for r in rows.values())
    assert rows[gone_url]["consecutive_failures"] == 1 and rows[gone_url]["last_outcome"] == "failed"
    ok = [r for u, r in rows.items() if u != gone_url]
    assert all(r["last_outcome"] == "ok" and r["last_new_entries_at"] is not None for r in ok)
    # A retried shard finds nothing left to poll: everything it held was recorded.
    assert poll_shard(settings, broker, token="run-1", shard=0, run_id="run-1")["claimed"] == 0
    assert claim_due(settings, "run-2").feeds == 0  # nothing is due yet
    # poll_all (a manual "poll everything now") claims every listed feed, for the usual claim lifetime only.
    everything = claim_due(settings, "run-all", every_feed=True)
    assert everything.feeds == listed
    held = [r["claimed_until"] for r in _rows(settings).values()]
    assert all(until is not None and until <= utcnow() + timedelta(minutes=31) for until in held)

    # Two days on every feed is due; the gone feed fails permanently a second time and is disabled.
    later = claim_due(settings, "run-3", now=now + timedelta(days=2))
    assert later.feeds == listed
    for s in sorted(later.shards):
        poll_shard(settings, broker, token="run-3", shard=s, run_id="run-3")
    gone = _rows(settings)[gone_url]
    assert gone["disabled_reason"] is not None and "410" in gone["disabled_reason"] and gone["next_poll_at"] is None
    assert claim_due(settings, "run-4", now=now + timedelta(days=9)).feeds == listed - 1

    # The CLI lists it as disabled, and enables it again: due at once.
    args = ["--warehouse", warehouse_url]
    assert cli(["feeds", "--disabled", "--json", *args]) == 0
    assert cli(["feeds", "enable", gone_url, *args]) == 0
    back = _rows(settings)[gone_url]
    assert back["disabled_reason"] is None and back["next_poll_at"] <= utcnow()
    assert cli(["feeds", "enable", "http://nowhere.example/rss", *args]) != 0


def test_expired_claims_are_claimed_again_and_removed_feeds_keep_their_history(
    corpus: Any, gone_url: str, tmp_path: Path, make_settings: Any, warehouse_url: str
) -> None:
    feeds = _feed_list(corpus, tmp_path, gone_url)
    settings = make_settings(warehouse_url=warehouse_url, feeds=feeds, claim_ttl_minutes=10)
    now = utcnow()
    first = claim_due(settings, "killed", now=now)
    assert claim_due(settings, "too-soon", now=now + timedelta(minutes=9)).feeds == 0
    again = claim_due(settings, "after-ttl", now=now + timedelta(minutes=11))
    assert again.feeds == first.feeds
    store = schedule_store(settings)
    assert store.claimed("killed", 0, now, timedelta(minutes=10)) == []  # the killed run lost them

    shorter = make_settings(warehouse_url=warehouse_url, feeds=corpus.render_feed_list(tmp_path / "short.toml"))
    assert claim_due(shorter, "without-gone", now=now + timedelta(days=1)).feeds == first.feeds - 1
    row = _rows(shorter)[gone_url]
    assert row["in_list"] is False or row["in_list"] == 0
    assert row["removed_at"] is not None and row["claimed_until"] is None


def test_newswire_feeds_lists_state_interval_and_next_poll(
    corpus: Any, gone_url: str, tmp_path: Path, make_settings: Any, warehouse_url: str, broker: str, capsys: Any
) -> None:
    settings = make_settings(warehouse_url=warehouse_url, feeds=_feed_list(corpus, tmp_path, gone_url))
    claim = claim_due(settings, "run-1")
    for s in sorted(claim.shards):
        poll_shard(settings, broker, token="run-1", shard=s, run_id="run-1")
    capsys.readouterr()
    assert cli(["feeds", "--json", "--warehouse", warehouse_url]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {f["feed_url"] for f in listed} == set(_rows(settings))
    gone = next(f for f in listed if f["feed_url"] == gone_url)
    assert gone["state"] == "failing" and gone["consecutive_failures"] == 1
    assert all(f["state"] == "ok" and f["interval_minutes"] >= 5 for f in listed if f is not gone)
    assert cli(["feeds", "--failing", "--warehouse", warehouse_url]) == 0
    text = capsys.readouterr().out
    assert gone_url in text and text.count("\n") == 2  # header and the one failing feed
    assert cli(["status", "--warehouse", warehouse_url]) == 0
    assert "feeds overdue" in capsys.readouterr().out


def test_a_shard_killed_between_its_batched_writes_is_completed_by_its_retry_without_doubling(
    corpus: Any,
    gone_url: str,
    tmp_path: Path,
    make_settings: Any,
    warehouse_url: str,
    broker: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = make_settings(warehouse_url=warehouse_url, feeds=_feed_list(corpus, tmp_path, gone_url), ingest_shards=1)
    listed = claim_due(settings, "run-k").feeds
    monkeypatch.setattr(ledger_module, "BATCH_FEEDS", 2)  # several writes in one shard of 10 feeds
    writes: list[int] = []
    original = IngestLedger.__dict__["_write_runs"]  # the staticmethod itself, to put back
    write_runs = IngestLedger._write_runs

    def dies_at_the_second_write(cur: Any, rows: Any) -> None:
        writes.append(len(rows))
        if len(writes) == 2:
            raise RuntimeError("killed between two writes")
        write_runs(cur, rows)

    monkeypatch.setattr(IngestLedger, "_write_runs", staticmethod(dies_at_the_second_write))
    with pytest.raises((RuntimeError, WarehouseUnavailable)):
        poll_shard(settings, broker, token="run-k", shard=0, run_id="run-k")
    monkeypatch.setattr(IngestLedger, "_write_runs", original)

    warehouse = schedule_store(settings).warehouse
    recorded = {r["feed_url"] for r in warehouse.query("SELECT feed_url FROM ingest_runs WHERE run_id = 'run-k'")}
    assert len(recorded) == writes[0] and 0 < len(recorded) < listed  # the first write only
    released = {u for u, r in _rows(settings).items() if r["claimed_until"] is None}
    assert released <= recorded  # a feed's claim is released with its ledger rows or after them, never before

    retry = poll_shard(settings, broker, token="run-k", shard=0, run_id="run-k")
    assert retry["claimed"] == listed - len(released)  # the retry polls only what the killed try had not released
    runs = warehouse.query("SELECT feed_url, entries_seen FROM ingest_runs WHERE run_id = 'run-k'")
    assert sorted(r["feed_url"] for r in runs) == sorted(_rows(settings))  # every feed once
    entries = warehouse.scalar("SELECT COUNT(*) FROM feed_entries")
    assert sum(int(r["entries_seen"]) for r in runs) == entries  # each entry counted once, in one feed's run
    assert all(r["claimed_until"] is None for r in _rows(settings).values())
