"""The raw record of every published article, kept in the warehouse so recovery never needs Kafka's history.

The embedded broker keeps topics in memory, and even Apache Kafka deletes old segments: a warehouse lost,
rebuilt or re-modelled must be refillable from something we own. For each article ingest publishes, the
``raw_articles`` table keeps the exact ``newswire.articles`` message (the extracted fields) and the page bytes
as fetched, gzip-compressed (a news page shrinks 4-8x). The row is written in the same ledger transaction as
the entry's ``new`` outcome, so an article is in the raw store exactly when the ledger says it was published.

``newswire replay --since DATE`` re-publishes stored messages to ``newswire.articles``; the transform treats
them like any redelivery (same article id and content hash: nothing changes), so a replay is always safe.
Records older than ``raw_retention_days`` are deleted at the start of each ingest run (0 keeps them forever).
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ingest.errors import RawStoreError
from newswire.messaging import Publisher
from newswire.reconcile import STORED_CONDITION, republish
from newswire.warehouse import Cursor, Warehouse, utcnow

log = logging.getLogger(__name__)

HTML_ENCODING = "gzip"
#: Rows read per query while replaying: bounds memory whatever the size of the store.
PAGE_ROWS = 200


@dataclass(frozen=True)
class RawArticle:
    """One fetched page and the article message made from it; ``html_gz`` is compressed at construction.

    Compressing early keeps a chunk of outcomes waiting for the broker small in memory (25 pages of up to
    ``max_page_bytes`` each would otherwise be held uncompressed). A page the server sent as one plain gzip
    member at most half the page's size (:attr:`ingest.http.FetchResult.gzipped`) is kept as the server
    compressed it: it decompresses to the same bytes, and compressing it again took CPU from the ingest
    process. Any other page is compressed here.
    """

    article_id: str
    url: str
    final_url: str
    feed_url: str | None
    http_status: int | None
    content_type: str | None
    message: dict[str, Any]
    html_gz: bytes
    html_bytes: int
    fetched_at: datetime

    @classmethod
    def of(
        cls,
        *,
        message: dict[str, Any],
        url: str,
        final_url: str,
        http_status: int | None,
        content_type: str | None,
        html: bytes,
        fetched_at: datetime,
        html_gz: bytes | None = None,
    ) -> RawArticle:
        """``html_gz``: ``html`` already gzip-compressed (as the server sent it; see
        :attr:`ingest.http.FetchResult.gzipped`), kept instead of compressing the page again."""
        return cls(
            article_id=str(message["article_id"]),
            url=url,
            final_url=final_url,
            feed_url=message.get("feed_url"),
            http_status=http_status,
            content_type=content_type,
            message=message,
            html_gz=compress(html) if html_gz is None else html_gz,
            html_bytes=len(html),
            fetched_at=fetched_at,
        )


@dataclass(frozen=True)
class ReplaySummary:
    published: int
    invalid: int  # stored messages that no longer pass the topic's contract (left in place, logged)

    def line(self) -> str:
        return f"replay: published={self.published} invalid={self.invalid}"


def compress(html: bytes) -> bytes:
    # mtime=0: the same page always compresses to the same bytes, so re-storing a record is a no-op (a kept
    # server member carries the server's header and level instead; it decompresses to the same page).
    # Level 1: less than half the CPU of level 6 for a slightly larger blob; this runs once per published
    # article on the ingest process's CPU, which the extraction workers need.
    return gzip.compress(html, compresslevel=1, mtime=0)


def decompress(blob: bytes | memoryview, encoding: str | None) -> bytes:
    data = bytes(blob)
    if encoding in (None, ""):
        return data
    if encoding != HTML_ENCODING:
        raise RawStoreError(f"unknown raw page encoding {encoding!r}")
    return gzip.decompress(data)


_COLUMNS = (
    "article_id, url, final_url, feed_url, http_status, content_type, message, html, html_encoding, html_bytes, "
    "fetched_at, stored_at"
)
_COLUMN_NAMES = tuple(name.strip() for name in _COLUMNS.split(","))
_UPSERT = (
    "ON CONFLICT (article_id) DO UPDATE SET url = excluded.url, final_url = excluded.final_url, "
    "feed_url = excluded.feed_url, http_status = excluded.http_status, content_type = excluded.content_type, "
    "message = excluded.message, html = excluded.html, html_encoding = excluded.html_encoding, "
    "html_bytes = excluded.html_bytes, fetched_at = excluded.fetched_at, stored_at = excluded.stored_at"
)


def store_raw(cur: Cursor, raws: Iterable[RawArticle], now: datetime, *, columnar: bool = False) -> None:
    """Insert or refresh records (a re-fetched article keeps its latest page and message).

    One statement per call: on DuckDB a statement costs milliseconds whatever its size, and this runs inside
    the ledger transaction of every chunk of entries. ``columnar``: the rows go in as scanned columns
    (:meth:`~newswire.warehouse.Cursor.bulk_insert`) instead of as parameters of a multi-row ``VALUES``: on
    DuckDB, binding every page blob and message as a parameter took the feed thread more CPU.
    """
    latest = {raw.article_id: raw for raw in raws}  # one row per conflict key and statement
    rows = [
        (
            raw.article_id,
            raw.url,
            raw.final_url,
            raw.feed_url,
            raw.http_status,
            raw.content_type,
            json.dumps(raw.message, ensure_ascii=False, sort_keys=True),
            raw.html_gz,
            HTML_ENCODING,
            raw.html_bytes,
            raw.fetched_at,
            now,
        )
        for raw in latest.values()
    ]
    if columnar:
        cur.bulk_insert("raw_articles", _COLUMN_NAMES, rows, _UPSERT, chunk=50)
    else:
        cur.insert_rows(f"INSERT INTO raw_articles ({_COLUMNS})", rows, _UPSERT, chunk=50)


def purge_expired(warehouse: Warehouse, retention_days: int, *, now: datetime | None = None) -> int:
    """Delete records fetched more than ``retention_days`` ago; return how many. 0 days keeps everything.

    A record whose article never reached the warehouse is kept whatever its age: it is the only copy
    reconcile can re-publish from (``newswire status`` reports it as pending).
    """
    if retention_days <= 0:
        return 0
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    expired = f"fetched_at < ? AND ({STORED_CONDITION.format(id='raw_articles.article_id')})"
    with warehouse.transaction() as cur:
        count = int(cur.execute(f"SELECT COUNT(*) FROM raw_articles WHERE {expired}", (cutoff,)).scalar() or 0)
        if count:
            cur.execute(f"DELETE FROM raw_articles WHERE {expired}", (cutoff,))
    if count:
        log.info("raw store: deleted %d record(s) fetched before %s", count, cutoff.isoformat())
    return count


def stored_messages(warehouse: Warehouse, since: datetime, until: datetime | None = None) -> Iterator[dict[str, Any]]:
    """Stored article messages fetched in [since, until), oldest first, read page by page."""
    after: tuple[datetime, str] | None = None
    while True:
        sql = "SELECT article_id, fetched_at, message FROM raw_articles WHERE fetched_at >= ?"
        params: list[Any] = [since]
        if until is not None:
            sql += " AND fetched_at < ?"
            params.append(until)
        if after is not None:  # keyset pagination: stable and index-friendly, unlike OFFSET
            sql += " AND (fetched_at > ? OR (fetched_at = ? AND article_id > ?))"
            params.extend([after[0], after[0], after[1]])
        sql += f" ORDER BY fetched_at, article_id LIMIT {PAGE_ROWS}"
        rows = warehouse.query(sql, params)
        for row in rows:
            yield json.loads(row["message"])
        if len(rows) < PAGE_ROWS:
            return
        after = (rows[-1]["fetched_at"], rows[-1]["article_id"])


def raw_page(warehouse: Warehouse, article_id: str) -> bytes | None:
    """The page bytes stored for an article (decompressed), or None when absent or expired."""
    rows = warehouse.query(
        "SELECT html, html_encoding FROM raw_articles WHERE article_id = ?",
        (article_id,),
    )
    if not rows or rows[0]["html"] is None:
        return None
    return decompress(rows[0]["html"], rows[0]["html_encoding"])


def replay(warehouse: Warehouse, publisher: Publisher, since: datetime, until: datetime | None = None) -> ReplaySummary:
    """Re-publish stored messages to ``newswire.articles``, confirmed by the broker in batches."""
    published, invalid = republish(publisher, stored_messages(warehouse, since, until))
    return ReplaySummary(published=published, invalid=invalid)
