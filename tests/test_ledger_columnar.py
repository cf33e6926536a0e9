"""The ledger's columnar writes (DuckDB) store exactly what the multi-row ``VALUES`` writes store: every
outcome kind, absent values in whole columns, page blobs, re-recorded entries (attempts add up), URLs listed
twice (kept once), and a batched session's flush."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingest.ledger import DEAD_LETTER, DUPLICATE, NEW, SKIPPED, EntryOutcome, IngestLedger
from ingest.rawstore import RawArticle, raw_page
from newswire.warehouse import Warehouse

FEED = "https://a.example/feed.xml"
AT = datetime(2020, 1, 2, 10, 0, tzinfo=UTC)  # long before any recording time
TABLES = {
    "feed_entries": "feed_url, entry_key",
    "article_urls": "url",
    "article_duplicates": "url",
    "raw_articles": "article_id",
    "dead_letters": "dead_letter_id",
}


def _new(n: int, *, title: str | None = "A title", published: datetime | None = AT) -> EntryOutcome:
    url = f"https://a.example/news/{n}.html"
    article_id = f"{n:032x}"
    page = f"<html><body><p>page {n} \u00e9t\u00e9</p></body></html>".encode()
    message = {"article_id": article_id, "feed_url": FEED, "title": title, "text": f"text {n} \u2014 \u4e2d\u6587"}
    raw = RawArticle.of(
        message=message,
        url=url,
        final_url=url,
        http_status=200 if n % 2 else None,
        content_type="text/html" if n % 3 else None,
        html=page,
        fetched_at=AT + timedelta(seconds=n),
        html_gz=gzip.compress(page, mtime=0) if n % 2 else None,
    )
    return EntryOutcome(
        feed_url=FEED,
        entry_key=url,
        entry_url=url,
        guid=None,
        title=title,
        published_at=published,
        outcome=NEW,
        article_id=article_id,
        urls=(url, f"{url}?amp"),
        raw=raw,
    )


def _others() -> list[EntryOutcome]:
    dead = {
        "dead_letter_id": "d" * 32,
        "stage": "page_fetch",
        "reason": "http_503",
        "message": "server said 503",
        "retryable": True,
        "url": "https://a.example/news/dead.html",
        "feed_url": FEED,
        "payload": {"entry": {"link": "https://a.example/news/dead.html"}},
        "created_at": AT.isoformat(),
        "schema_version": 1,
    }
    base = {"feed_url": FEED, "guid": "g", "title": None, "published_at": None}
    return [
        EntryOutcome(
            **base,
            entry_key="dup",
            entry_url="https://b.example/copy.html",
            outcome=DUPLICATE,
            reason="same_canonical_url",
            duplicate_of=f"{1:032x}",
            method="canonical_url",
            urls=("https://b.example/copy.html",),
        ),
        EntryOutcome(
            **base,
            entry_key="dead",
            entry_url="https://a.example/news/dead.html",
            outcome=DEAD_LETTER,
            reason="http_503",
            dead_letter=dead,
        ),
        EntryOutcome(**base, entry_key="skip", entry_url=None, outcome=SKIPPED, reason="robots"),
    ]


def _write(warehouse: Warehouse, *, batched: bool) -> None:
    ledger = IngestLedger(warehouse)
    ledger.buffer.batched = batched
    # All titles and dates absent in one chunk (a whole column of NULLs), present in the next.
    ledger.record([_new(n, title=None, published=None) for n in range(1, 4)], "run-1")
    ledger.record([_new(n) for n in range(4, 30)] + _others(), "run-1")
    ledger.record([_new(2), _new(5)], "run-2")  # re-recorded: attempts add up, pages refreshed
    ledger.flush()


def _dump(warehouse: Warehouse) -> dict[str, list[tuple[object, ...]]]:
    dump = {}
    with warehouse.read() as cur:
        for table, order in TABLES.items():
            rows = cur.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()
            # Recording times are now(): compare everything else.
            dump[table] = [tuple(v for v in row if not _recorded_now(v)) for row in rows]
    return dump


def _recorded_now(value: object) -> bool:
    return isinstance(value, datetime) and value > AT + timedelta(days=1)


@pytest.mark.parametrize("batched", [False, True])
def test_columnar_writes_store_what_values_store(
    tmp_path: Path, batched: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = {}
    for columnar in (False, True):
        monkeypatch.setattr(IngestLedger, "_columnar", property(lambda self, c=columnar: c))
        warehouse = Warehouse(f"duckdb://{tmp_path}/{columnar}-{batched}.duckdb")
        warehouse.migrate()
        _write(warehouse, batched=batched)
        rows[columnar] = _dump(warehouse)
        assert raw_page(warehouse, f"{3:032x}") == b"<html><body><p>page 3 \xc3\xa9t\xc3\xa9</p></body></html>"
    assert rows[True] == rows[False]
    entries = rows[True]["feed_entries"]
    assert len(entries) == 32
    assert len(rows[True]["raw_articles"]) == 29
    assert len(rows[True]["article_urls"]) == 59  # two per article, one for the duplicate
    assert len(rows[True]["article_duplicates"]) == 1
    assert len(rows[True]["dead_letters"]) == 1


def test_columnar_is_duckdb_only(warehouse_url: str) -> None:
    assert IngestLedger(Warehouse(warehouse_url))._columnar == warehouse_url.startswith("duckdb")
