"""Ingest's memory in the warehouse: feed poll state, the per-entry ledger, known article URLs, run records.

Every feed entry ingest looks at ends with exactly one outcome row in ``feed_entries`` (``new``,
``duplicate``, ``dead_letter`` or ``skipped``, with its reason), written only after the broker acknowledged
the article: that ledger is what makes re-runs publish nothing twice and what the accounting invariant
(entries seen = new + duplicates + dead letters + skipped) is checked against.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ingest.canonical import article_id_for
from ingest.rawstore import RawArticle, store_raw
from newswire.deadletters import dead_letter_id as shared_dead_letter_id
from newswire.deadletters import upsert_dead_letter
from newswire.errors import WarehouseUnavailable
from newswire.warehouse import Cursor, Warehouse, utcnow

NEW = "new"
DUPLICATE = "duplicate"
DEAD_LETTER = "dead_letter"
SKIPPED = "skipped"
#: Deferred feed-state and run rows written together (see ``IngestLedger.flush``).
FLUSH_ROWS = 200
#: A batched session (:class:`LedgerBuffer`) also writes once this many feeds' rows are waiting, once the
#: buffered pages reach this many bytes, or once its oldest row has waited this many seconds.
BATCH_FEEDS = 250
BATCH_BYTES = 32 * 1024 * 1024
BATCH_SECONDS = 20.0


@dataclass(frozen=True)
class FeedState:
    etag: str | None
    last_modified: str | None


@dataclass(frozen=True)
class KnownEntry:
    outcome: str
    attempts: int
    retryable: bool
    last_attempt_at: datetime | None


@dataclass(frozen=True)
class EntryOutcome:
    """The decision ingest reached for one entry in this run."""

    feed_url: str
    entry_key: str
    entry_url: str | None
    guid: str | None
    title: str | None
    published_at: datetime | None
    outcome: str
    reason: str | None = None
    article_id: str | None = None
    duplicate_of: str | None = None
    method: str | None = None
    urls: tuple[str, ...] = ()
    dead_letter: dict[str, Any] | None = None
    raw: RawArticle | None = None  # the page and message of a NEW article, stored with the outcome
    #: The article message's bytes, encoded and size-checked where the outcome was decided (not stored).
    encoded: bytes | None = field(default=None, repr=False)


@dataclass
class RunCounts:
    entries_in_feed: int = 0
    entries_seen: int = 0
    new_articles: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    skipped: int = 0
    bytes: int = 0

    def count(self, outcome: str) -> None:
        self.entries_seen += 1
        if outcome == NEW:
            self.new_articles += 1
        elif outcome == DUPLICATE:
            self.duplicates += 1
        elif outcome == DEAD_LETTER:
            self.dead_letters += 1
        elif outcome == SKIPPED:
            self.skipped += 1
        else:  # pragma: no cover - programming error
            raise ValueError(outcome)


#: Run-row columns that add up when one feed is recorded twice under one run (as the upsert adds them).
_RUN_SUMS = range(10, 16)  # entries_seen, new_articles, duplicates, dead_letters, skipped, bytes


@dataclass
class LedgerBuffer:
    """Ledger rows waiting for a shared transaction.

    Unbatched (the default), only the feed-state and run rows of polls that recorded no entry wait here.
    ``batched``: every write of the session waits (entry outcomes, URL aliases, duplicates, dead letters, raw
    pages, feed states, runs) and is written in one transaction per :data:`BATCH_FEEDS` feeds: a shard task
    sharing a DuckDB file with other processes then opens it for writing a few times per cycle instead of at
    every feed with new entries. Rows are buffered only after the broker confirmed their chunk, so the order
    "Kafka first, then the ledger" holds; a crash loses buffered rows, and the re-poll publishes those
    articles again under the same ids (at-least-once, deduplicated downstream), never records one twice.
    ``hooks`` add rows of other tables (the feed schedule) to the same transaction.
    """

    batched: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    flushing: threading.RLock = field(default_factory=threading.RLock)  # held by a flush from start to end
    feeds: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    runs: dict[tuple[str, str], tuple[Any, ...]] = field(default_factory=dict)
    entries: dict[tuple[str, str], tuple[Any, ...]] = field(default_factory=dict)
    urls: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    duplicates: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    dead_letters: list[tuple[dict[str, Any], datetime]] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)
    raws: list[tuple[RawArticle, datetime]] = field(default_factory=list)
    raw_bytes: int = 0
    since: float | None = None  # monotonic time of the oldest waiting row
    broken: BaseException | None = None  # why a flush failed (no later flush writes)
    hooks: list[Callable[[], Callable[[Cursor], None] | None]] = field(default_factory=list)

    def rows(self) -> int:
        return len(self.feeds) + len(self.runs)

    def take(self) -> LedgerBuffer:
        """Move the waiting rows into a new buffer (call with ``lock`` held) and leave this one empty."""
        taken = LedgerBuffer(
            feeds=self.feeds,
            runs=self.runs,
            entries=self.entries,
            urls=self.urls,
            duplicates=self.duplicates,
            dead_letters=self.dead_letters,
            cleared=self.cleared,
            raws=self.raws,
        )
        self.feeds, self.runs, self.entries, self.urls, self.duplicates = {}, {}, {}, {}, {}
        self.dead_letters, self.cleared, self.raws = [], [], []
        self.raw_bytes, self.since = 0, None
        return taken

    def empty(self) -> bool:
        return not (self.feeds or self.runs or self.entries or self.dead_letters or self.cleared or self.raws)


class IngestLedger:
    """Reads and writes the ingest-owned tables."""

    def __init__(self, warehouse: Warehouse, *, buffer: LedgerBuffer | None = None) -> None:
        self.warehouse = warehouse
        self.buffer = buffer if buffer is not None else LedgerBuffer()

    @property
    def batched(self) -> bool:
        return self.buffer.batched

    @property
    def _columnar(self) -> bool:
        """Entry rows and raw pages go in as scanned columns (:meth:`~newswire.warehouse.Cursor.bulk_insert`)
        on DuckDB: binding a chunk's few hundred parameters, page blobs and messages included, took more CPU of
        the feed thread, which holds the process's DuckDB writer lock (the transform's batches wait for it)
        meanwhile. On PostgreSQL a staging table costs more round trips than one multi-row statement for a
        chunk of 25, so it keeps ``VALUES``."""
        return self.warehouse.dialect == "duckdb"

    def feed_state(self, feed_url: str) -> FeedState:
        with self.warehouse.read() as cur:
            row = cur.execute("SELECT etag, last_modified FROM feeds WHERE feed_url = ?", (feed_url,)).fetchone()
        return FeedState(*row) if row else FeedState(None, None)

    def feed_states(self, feed_urls: Iterable[str]) -> dict[str, FeedState]:
        with self.warehouse.read() as cur:
            rows = cur.select_in(
                "SELECT feed_url, etag, last_modified FROM feeds WHERE feed_url IN {in}", list(feed_urls)
            )
        return {r["feed_url"]: FeedState(r["etag"], r["last_modified"]) for r in rows}

    def known_entries(self, feed_url: str, keys: Iterable[str]) -> dict[str, KnownEntry]:
        wanted = set(keys)
        if not wanted:
            return {}
        ordered = sorted(wanted)
        known: dict[str, KnownEntry] = {}
        with self.warehouse.read() as cur:
            for start in range(0, len(ordered), 500):
                chunk = ordered[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = cur.execute(
                    "SELECT e.entry_key, e.outcome, e.attempts, COALESCE(d.retryable, FALSE), e.last_attempt_at "
                    "FROM feed_entries e LEFT JOIN dead_letters d ON d.dead_letter_id = e.dead_letter_id "
                    f"WHERE e.feed_url = ? AND e.entry_key IN ({marks})",
                    (feed_url, *chunk),
                ).fetchall()
                for key, outcome, attempts, retryable, last in rows:
                    known[key] = KnownEntry(outcome, attempts, bool(retryable), last)
        return known

    def known_urls(self, urls: Iterable[str]) -> dict[str, str]:
        """Map each URL already tied to a published article to that article's id."""
        wanted = sorted(set(urls))
        if not wanted:
            return {}
        found: dict[str, str] = {}
        with self.warehouse.read() as cur:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for url, article_id in cur.execute(
                    f"SELECT url, article_id FROM article_urls WHERE url IN ({marks})", chunk
                ).fetchall():
                    found[url] = article_id
        return found

    def feeds_with_retries(self, max_attempts: int) -> list[str]:
        """Feeds with dead-lettered entries that may still be retried: the only ones worth asking
        :meth:`retry_candidates` about (a run over 1,000 feeds asks once instead of 1,000 times)."""
        with self.warehouse.read() as cur:
            rows = cur.execute(
                "SELECT DISTINCT e.feed_url FROM feed_entries e "
                "JOIN dead_letters d ON d.dead_letter_id = e.dead_letter_id "
                "WHERE e.outcome = ? AND d.retryable AND e.attempts < ?",
                (DEAD_LETTER, max_attempts),
            ).fetchall()
        return [row[0] for row in rows]

    def retry_candidates(self, feed_url: str, max_attempts: int) -> list[dict[str, Any]]:
        """Dead-lettered entries of this feed that may be tried again now (exponential backoff)."""
        with self.warehouse.read() as cur:
            rows = cur.execute(
                "SELECT d.payload, e.attempts, e.last_attempt_at FROM feed_entries e "
                "JOIN dead_letters d ON d.dead_letter_id = e.dead_letter_id "
                "WHERE e.feed_url = ? AND e.outcome = ? AND d.retryable AND e.attempts < ?",
                (feed_url, DEAD_LETTER, max_attempts),
            ).fetchall()
        now = utcnow()
        due = []
        for payload, attempts, last in rows:
            if last is None or now - last >= timedelta(minutes=2**attempts):
                entry = json.loads(payload or "{}").get("entry")
                if entry:
                    due.append(entry)
        return due

    def record(self, outcomes: Iterable[EntryOutcome], run_id: str) -> None:
        """Write outcomes, URL aliases, duplicates and dead letters in one transaction (idempotent).

        A handful of multi-row statements per chunk, not several per entry: on DuckDB every statement costs
        about a millisecond under the process's writer lock, which all feed threads share. Batched: the rows
        wait for the session's next :meth:`flush`.
        """
        outcomes = list(outcomes)
        if not outcomes:
            return
        now = utcnow()
        part = LedgerBuffer()
        for o in outcomes:
            dl_id = None
            if o.outcome == DEAD_LETTER and o.dead_letter is not None:
                dl_id = o.dead_letter["dead_letter_id"]
                part.dead_letters.append((o.dead_letter, now))
            elif o.outcome in (NEW, DUPLICATE):
                # The entry was retried successfully (or never failed): it leaves the dead-letter table.
                part.cleared.append(dead_letter_id(o.feed_url, o.entry_key))
            target = o.article_id or o.duplicate_of
            part.entries[(o.feed_url, o.entry_key)] = (
                o.feed_url,
                o.entry_key,
                o.entry_url,
                o.guid,
                o.title,
                o.published_at,
                target,
                o.outcome,
                o.reason,
                dl_id,
                1,
                now,
                now,
                run_id,
            )
            if target and o.outcome in (NEW, DUPLICATE):
                for url in o.urls:
                    part.urls.setdefault(url, (url, target, now))
            # A row per duplicate URL: the same URL listed by two feeds is one article, not a duplicate URL.
            if o.outcome == DUPLICATE and o.entry_url and target and article_id_for(o.entry_url) != target:
                part.duplicates.setdefault(
                    o.entry_url, (o.entry_url, target, target, o.method or "url", 1.0, o.feed_url, now)
                )
            if o.outcome == NEW and o.raw is not None:
                part.raws.append((o.raw, now))
                part.raw_bytes += o.raw.html_bytes
        if not self.batched:
            with self.warehouse.transaction() as cur:
                _write_entries(cur, part, columnar=self._columnar)
            return
        buffer = self.buffer
        with buffer.lock:
            # An entry decided twice before a flush (a redrive, a feed listed twice): the first decision is
            # written first, so the upsert counts both attempts.
            collides = any(key in buffer.entries for key in part.entries)
        if collides:
            self.flush()
        with buffer.lock:
            buffer.entries.update(part.entries)
            for url, row in part.urls.items():
                buffer.urls.setdefault(url, row)
            for url, row in part.duplicates.items():
                buffer.duplicates.setdefault(url, row)
            buffer.dead_letters.extend(part.dead_letters)
            buffer.cleared.extend(part.cleared)
            buffer.raws.extend(part.raws)
            buffer.raw_bytes += part.raw_bytes
            buffer.since = buffer.since or time.monotonic()
        self._flush_if_full()

    def save_feed(
        self,
        feed_url: str,
        *,
        name: str | None,
        language: str | None,
        tags: Iterable[str],
        status: int | None,
        etag: str | None,
        last_modified: str | None,
        error: str | None,
        defer: bool = False,
    ) -> None:
        """Store conditional-GET validators only after every entry of that response was recorded.

        ``defer``: buffer the row and write it with others (see :meth:`flush`); for polls that recorded no
        entry, where losing the row in a crash only means the next poll fetches the feed in full again. A
        batched ledger buffers every row, after the entry rows it follows (one transaction writes both).
        """
        ok = error is None
        now = utcnow()
        row = (
            feed_url,
            name,
            language,
            json.dumps(list(tags)),
            etag if ok else None,
            last_modified if ok else None,
            status,
            now,
            now if ok else None,
            error,
            0 if ok else 1,
        )
        if defer or self.batched:
            with self.buffer.lock:
                earlier = self.buffer.feeds.get(feed_url)
            if earlier is not None and (earlier[9] is not None or error is not None):
                self.flush()  # a failure counts once per poll: write the earlier row before this one
            with self.buffer.lock:
                self.buffer.feeds[feed_url] = row
                self.buffer.since = self.buffer.since or time.monotonic()
            self._flush_if_full()
            return
        with self.warehouse.transaction() as cur:
            self._write_feeds(cur, [row])

    def record_run(
        self,
        *,
        run_id: str,
        feed_url: str,
        started_at: datetime,
        status: str,
        http_status: int | None,
        error: str | None,
        counts: RunCounts,
        duration: float,
        interval: tuple[datetime | None, datetime | None] = (None, None),
        warnings: Sequence[str] = (),
        defer: bool = False,
    ) -> None:
        """One row per feed per run; re-running the same run replaces it, so a retry is not counted twice.

        ``defer`` (runs that saw no entry and have no warnings): buffered like :meth:`save_feed`, so a poll of
        1,000 unchanged feeds writes a few multi-row statements instead of 1,000 transactions. A batched
        ledger buffers every run row.
        """
        row = (
            run_id,
            feed_url,
            interval[0],
            interval[1],
            started_at,
            utcnow(),
            status,
            http_status,
            error,
            counts.entries_in_feed,
            counts.entries_seen,
            counts.new_articles,
            counts.duplicates,
            counts.dead_letters,
            counts.skipped,
            counts.bytes,
            duration,
            json.dumps(summarize_warnings(warnings), ensure_ascii=False) if warnings else None,
        )
        if self.batched or (defer and counts.entries_seen == 0 and not warnings):
            with self.buffer.lock:
                earlier = self.buffer.runs.get((run_id, feed_url))
                if earlier is not None:  # the same feed twice in one run: counts add up, as in the upsert
                    sums = {i: row[i] + earlier[i] for i in _RUN_SUMS}
                    row = tuple(sums.get(i, value) for i, value in enumerate(row))
                    if row[17] is None:
                        row = (*row[:17], earlier[17])
                self.buffer.runs[(run_id, feed_url)] = row
                self.buffer.since = self.buffer.since or time.monotonic()
            self._flush_if_full()
            return
        with self.warehouse.transaction() as cur:
            self._write_runs(cur, [row])

    def flush(self) -> None:
        """Write the buffered rows in one transaction, with the rows the buffer's hooks add. Called by the
        ingest session's end, and whenever the buffer is full (:meth:`_flush_if_full`).

        Hooks are asked first: a hook's rows (a feed's next poll, releasing its claim) are only added after
        that feed's ledger rows, so every hook row taken here has its ledger rows in this transaction or an
        earlier one, never a later one.
        """
        with self.buffer.flushing:  # one flush at a time: a flush starts only once the previous one is settled
            if self.buffer.broken is not None:
                # The rows of a failed flush are gone: writing later hook rows could release claims of feeds
                # whose outcomes were among them. The session fails instead, and its retry polls those feeds.
                raise WarehouseUnavailable(f"an earlier ledger flush failed: {self.buffer.broken}")
            writers = [w for w in (hook() for hook in list(self.buffer.hooks)) if w is not None]
            with self.buffer.lock:
                taken = self.buffer.take()
            if taken.empty() and not writers:
                return
            try:
                with self.warehouse.transaction() as cur:
                    _write_entries(cur, taken, columnar=self._columnar)
                    if taken.feeds:
                        self._write_feeds(cur, list(taken.feeds.values()))
                    if taken.runs:
                        self._write_runs(cur, list(taken.runs.values()))
                    for write in writers:
                        write(cur)
            except BaseException as exc:
                if self.batched:  # unbatched, the lost rows are 304 bookkeeping only: later flushes may go on
                    self.buffer.broken = exc
                raise

    def _flush_if_full(self) -> None:
        buffer = self.buffer
        with buffer.lock:
            if buffer.batched:
                waited = time.monotonic() - buffer.since if buffer.since is not None else 0.0
                full = len(buffer.runs) >= BATCH_FEEDS or buffer.raw_bytes >= BATCH_BYTES or waited >= BATCH_SECONDS
            else:
                full = buffer.rows() >= FLUSH_ROWS
        if full:
            self.flush()

    @staticmethod
    def _write_feeds(cur: Cursor, rows: Sequence[tuple[Any, ...]]) -> None:
        succeeded = [dead_letter_id(row[0], "(feed)") for row in rows if row[9] is None]
        if succeeded:  # a successful poll ends the feed's own dead letter, in the same transaction
            cur.execute_in("DELETE FROM dead_letters WHERE dead_letter_id IN {in}", succeeded)
        cur.insert_rows(
            "INSERT INTO feeds (feed_url, name, language, tags, etag, last_modified, last_status, "
            "last_polled_at, last_success_at, last_error, consecutive_failures)",
            rows,
            "ON CONFLICT (feed_url) DO UPDATE SET name = excluded.name, language = excluded.language, "
            "tags = excluded.tags, etag = COALESCE(excluded.etag, feeds.etag), "
            "last_modified = COALESCE(excluded.last_modified, feeds.last_modified), "
            "last_status = excluded.last_status, last_polled_at = excluded.last_polled_at, "
            "last_success_at = COALESCE(excluded.last_success_at, feeds.last_success_at), "
            "last_error = excluded.last_error, "
            "consecutive_failures = CASE WHEN excluded.last_error IS NULL THEN 0 "
            "ELSE feeds.consecutive_failures + 1 END",
        )

    @staticmethod
    def _write_runs(cur: Cursor, rows: Sequence[tuple[Any, ...]]) -> None:
        cur.insert_rows(
            "INSERT INTO ingest_runs (run_id, feed_url, interval_start, interval_end, started_at, "
            "finished_at, status, http_status, error, entries_in_feed, entries_seen, new_articles, "
            "duplicates, dead_letters, skipped, bytes, duration, warnings)",
            rows,
            "ON CONFLICT (run_id, feed_url) DO UPDATE SET finished_at = excluded.finished_at, "
            "status = excluded.status, http_status = excluded.http_status, error = excluded.error, "
            "entries_in_feed = excluded.entries_in_feed, "
            "entries_seen = ingest_runs.entries_seen + excluded.entries_seen, "
            "new_articles = ingest_runs.new_articles + excluded.new_articles, "
            "duplicates = ingest_runs.duplicates + excluded.duplicates, "
            "dead_letters = ingest_runs.dead_letters + excluded.dead_letters, "
            "skipped = ingest_runs.skipped + excluded.skipped, "
            "bytes = ingest_runs.bytes + excluded.bytes, duration = excluded.duration, "
            "warnings = COALESCE(excluded.warnings, ingest_runs.warnings)",
        )

    def record_feed_failure(self, dead_letter: dict[str, Any]) -> None:
        if self.batched:  # written before the feed's row, which :meth:`save_feed` buffers next
            with self.buffer.lock:
                self.buffer.dead_letters.append((dead_letter, utcnow()))
                self.buffer.since = self.buffer.since or time.monotonic()
            return
        with self.warehouse.transaction() as cur:
            upsert_dead_letter(cur, dead_letter, utcnow())

    def clear_feed_failure(self, feed_url: str) -> None:
        with self.warehouse.transaction() as cur:
            cur.execute("DELETE FROM dead_letters WHERE dead_letter_id = ?", (dead_letter_id(feed_url, "(feed)"),))


def _write_entries(cur: Cursor, rows: LedgerBuffer, *, columnar: bool = False) -> None:
    """The entry rows of :meth:`IngestLedger.record` (one chunk's, or a batched session's), a few statements.

    ``columnar``: insert as scanned columns instead of multi-row ``VALUES`` (same rows, same conflict rules;
    see :attr:`IngestLedger._columnar`)."""
    for dl, at in rows.dead_letters:
        upsert_dead_letter(cur, dl, at)
    if rows.cleared:
        cur.execute_in("DELETE FROM dead_letters WHERE dead_letter_id IN {in}", rows.cleared)
    _insert(
        cur,
        "feed_entries",
        _ENTRY_COLUMNS,
        list(rows.entries.values()),
        "ON CONFLICT (feed_url, entry_key) DO UPDATE SET outcome = excluded.outcome, "
        "reason = excluded.reason, dead_letter_id = excluded.dead_letter_id, "
        "article_id = excluded.article_id, entry_url = excluded.entry_url, "
        "attempts = feed_entries.attempts + 1, last_attempt_at = excluded.last_attempt_at, "
        "run_id = excluded.run_id",
        columnar,
    )
    _insert(cur, "article_urls", ("url", "article_id", "first_seen_at"), list(rows.urls.values()), _NOTHING, columnar)
    _insert(
        cur,
        "article_duplicates",
        ("url", "article_id", "duplicate_of", "method", "score", "feed_url", "detected_at"),
        list(rows.duplicates.values()),
        _NOTHING,
        columnar,
    )
    if rows.raws:
        store_raw(cur, (raw for raw, _ in rows.raws), max(at for _, at in rows.raws), columnar=columnar)


_ENTRY_COLUMNS = (
    "feed_url",
    "entry_key",
    "entry_url",
    "guid",
    "title",
    "published_at",
    "article_id",
    "outcome",
    "reason",
    "dead_letter_id",
    "attempts",
    "first_seen_at",
    "last_attempt_at",
    "run_id",
)
_NOTHING = "ON CONFLICT (url) DO NOTHING"


def _insert(
    cur: Cursor, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]], tail: str, columnar: bool
) -> None:
    if not rows:
        return
    if columnar:
        cur.bulk_insert(table, columns, rows, tail)
    else:
        cur.insert_rows(f"INSERT INTO {table} ({', '.join(columns)})", rows, tail)


def summarize_warnings(warnings: Sequence[str], limit: int = 20) -> list[str]:
    """The first ``limit`` parse warnings of a run, then a count: a feed with 500 undated entries must not
    turn one ``ingest_runs`` row into a megabyte."""
    kept = [w[:500] for w in warnings[:limit]]
    if len(warnings) > limit:
        kept.append(f"... and {len(warnings) - limit} more warning(s)")
    return kept


def dead_letter_id(feed_url: str, entry_key: str) -> str:
    """One dead-letter record per feed entry (or per feed, with entry_key ``(feed)``)."""
    return shared_dead_letter_id(feed_url, entry_key)
