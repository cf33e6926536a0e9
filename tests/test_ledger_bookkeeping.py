"""Deferred feed bookkeeping: polls that recorded no entry are written in batches, on both warehouses."""

from __future__ import annotations

from datetime import UTC, datetime

from ingest.ledger import FLUSH_ROWS, IngestLedger, RunCounts
from newswire.warehouse import Warehouse


def _save(ledger: IngestLedger, url: str, *, defer: bool, etag: str = "e1") -> None:
    ledger.save_feed(
        url, name=None, language=None, tags=(), status=304, etag=etag, last_modified=None, error=None, defer=defer
    )


def _run(ledger: IngestLedger, url: str, counts: RunCounts, *, defer: bool, run_id: str = "r1") -> None:
    ledger.record_run(
        run_id=run_id,
        feed_url=url,
        started_at=datetime.now(UTC),
        status="not_modified" if counts.entries_seen == 0 else "ok",
        http_status=304,
        error=None,
        counts=counts,
        duration=0.1,
        defer=defer,
    )


def test_deferred_rows_appear_only_at_flush(warehouse_url: str) -> None:
    warehouse = Warehouse(warehouse_url)
    ledger = IngestLedger(warehouse)
    for i in range(3):
        _save(ledger, f"https://a.example/{i}.xml", defer=True)
        _run(ledger, f"https://a.example/{i}.xml", RunCounts(bytes=10), defer=True)
    assert warehouse.scalar("SELECT COUNT(*) FROM feeds") == 0
    assert warehouse.scalar("SELECT COUNT(*) FROM ingest_runs") == 0

    ledger.flush()
    assert warehouse.scalar("SELECT COUNT(*) FROM feeds") == 3
    assert warehouse.scalar("SELECT COUNT(*) FROM ingest_runs WHERE status = 'not_modified'") == 3
    ledger.flush()  # nothing left: a no-op
    assert warehouse.scalar("SELECT COUNT(*) FROM ingest_runs") == 3


def test_runs_that_saw_entries_are_written_at_once(warehouse_url: str) -> None:
    warehouse = Warehouse(warehouse_url)
    ledger = IngestLedger(warehouse)
    _run(ledger, "https://b.example/feed.xml", RunCounts(entries_seen=2, new_articles=2), defer=True)
    row = warehouse.query("SELECT entries_seen, new_articles FROM ingest_runs")
    assert row == [{"entries_seen": 2, "new_articles": 2}]


def test_one_feed_twice_in_a_run_adds_its_bytes_and_keeps_the_latest_state(warehouse_url: str) -> None:
    warehouse = Warehouse(warehouse_url)
    ledger = IngestLedger(warehouse)
    url = "https://c.example/feed.xml"
    _run(ledger, url, RunCounts(bytes=100), defer=True)
    _run(ledger, url, RunCounts(bytes=50), defer=True)
    _save(ledger, url, defer=True, etag="old")
    _save(ledger, url, defer=True, etag="new")
    ledger.flush()
    assert warehouse.scalar("SELECT bytes FROM ingest_runs WHERE feed_url = ?", (url,)) == 150
    assert warehouse.scalar("SELECT etag FROM feeds WHERE feed_url = ?", (url,)) == "new"


def test_a_full_buffer_is_written_without_waiting_for_the_end(warehouse_url: str) -> None:
    warehouse = Warehouse(warehouse_url)
    ledger = IngestLedger(warehouse)
    for i in range(FLUSH_ROWS):
        _save(ledger, f"https://d.example/{i}.xml", defer=True)
    assert warehouse.scalar("SELECT COUNT(*) FROM feeds") == FLUSH_ROWS
