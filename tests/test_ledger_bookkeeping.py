"""Deferred feed bookkeeping: polls that recorded no entry are written in batches, on both warehouses; a batched
ledger (scheduled shards) writes every row of many feeds in one transaction."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ingest.ledger import DUPLICATE, FLUSH_ROWS, NEW, EntryOutcome, IngestLedger, LedgerBuffer, RunCounts
from ingest.rawstore import RawArticle
from newswire.errors import WarehouseUnavailable
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


def test_a_batched_ledger_writes_every_row_at_its_flush_with_its_hooks(warehouse_url: str) -> None:
    warehouse = Warehouse(warehouse_url)
    ledger = IngestLedger(warehouse, buffer=LedgerBuffer(batched=True))
    written: list[int] = []
    ledger.buffer.hooks.append(lambda: lambda cur: written.append(cur.execute("SELECT COUNT(*) FROM feeds").scalar()))
    url = "https://e.example/feed.xml"
    outcomes = [_outcome(url, f"k{i}", NEW, article=f"a{i}") for i in range(3)]
    ledger.record(outcomes, "r1")
    ledger.record([_outcome(url, "k3", DUPLICATE, duplicate_of="a0")], "r1")
    _save(ledger, url, defer=False)  # batched: deferred whatever the caller asks
    _run(ledger, url, RunCounts(entries_seen=3, new_articles=3), defer=False)
    _run(ledger, url, RunCounts(entries_seen=1, duplicates=1), defer=False)  # same feed again: counts add up
    for table in ("feed_entries", "feeds", "ingest_runs", "article_urls"):
        assert warehouse.scalar(f"SELECT COUNT(*) FROM {table}") == 0

    ledger.flush()
    assert written == [1]  # the hook's rows were written in the same transaction, after the feed's row
    assert warehouse.scalar("SELECT COUNT(*) FROM feed_entries") == 4
    assert warehouse.scalar("SELECT COUNT(*) FROM article_urls") == 4  # the duplicate's URL is an alias
    run = warehouse.query("SELECT entries_seen, new_articles, duplicates FROM ingest_runs")
    assert run == [{"entries_seen": 4, "new_articles": 3, "duplicates": 1}]


def test_a_batched_ledger_counts_an_entry_decided_twice_before_a_flush_as_two_attempts(warehouse_url: str) -> None:
    warehouse = Warehouse(warehouse_url)
    ledger = IngestLedger(warehouse, buffer=LedgerBuffer(batched=True))
    url = "https://f.example/feed.xml"
    ledger.record([_outcome(url, "k", DUPLICATE, duplicate_of="a")], "r1")
    ledger.record([_outcome(url, "k", DUPLICATE, duplicate_of="a")], "r2")  # the first is written first
    ledger.flush()
    assert warehouse.scalar("SELECT attempts FROM feed_entries") == 2


def test_after_a_failed_flush_a_batched_ledger_writes_nothing_more(warehouse_url: str) -> None:
    warehouse = Warehouse(warehouse_url)
    ledger = IngestLedger(warehouse, buffer=LedgerBuffer(batched=True))
    ledger.buffer.hooks.append(lambda: _fail)
    _run(ledger, "https://g.example/1.xml", RunCounts(bytes=1), defer=True)
    with pytest.raises(RuntimeError):
        ledger.flush()
    ledger.buffer.hooks.clear()
    _run(ledger, "https://g.example/2.xml", RunCounts(bytes=1), defer=True)
    with pytest.raises(WarehouseUnavailable):
        ledger.flush()
    assert warehouse.scalar("SELECT COUNT(*) FROM ingest_runs") == 0  # the failed transaction left nothing


def _fail(cur: object) -> None:
    raise RuntimeError("killed mid-flush")


def _outcome(
    feed_url: str, key: str, outcome: str, *, article: str | None = None, duplicate_of: str | None = None
) -> EntryOutcome:
    link = f"https://e.example/{key}"
    return EntryOutcome(
        feed_url=feed_url,
        entry_key=key,
        entry_url=link,
        guid=key,
        title=key,
        published_at=None,
        outcome=outcome,
        article_id=article,
        duplicate_of=duplicate_of,
        method="url" if duplicate_of else None,
        urls=(link,),
        raw=None
        if article is None
        else RawArticle.of(
            message={"article_id": article, "feed_url": feed_url},
            url=link,
            final_url=link,
            http_status=200,
            content_type="text/html",
            html=b"<html></html>",
            fetched_at=datetime.now(UTC),
        ),
    )
