"""The warehouse: DuckDB (default, a file) or PostgreSQL, behind one small interface.

Both sides of the pipeline write SQL once, with ``?`` placeholders and ``INSERT … ON CONFLICT`` upserts that
both engines accept. Connections are opened per transaction: a DuckDB file admits one writing process at a
time, and Airflow runs tasks in separate processes, so holding a connection would lock every other task out.
A locked file is retried until ``lock_timeout`` instead of failing the task.

A DuckDB URL may carry engine options as query parameters, applied to every connection
(``duckdb:///path?memory_limit=256MB&threads=2``; also ``allocator_flush_threshold`` and
``allocator_background_threads``). DuckDB's own default lets its buffer pool take 80 % of RAM, so a long
ingest run that writes raw pages would otherwise grow with the amount written, not with the work at hand.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import threading
import time
import weakref
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from newswire.errors import WarehouseUnavailable
from newswire.settings import MEMORY_SIZE, redact_url
from newswire.warehouse.migrations import MIGRATIONS

Dialect = Literal["duckdb", "postgres"]
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# DuckDB settings a URL may set, each with the form its value must have (they are interpolated into SET).
_DUCKDB_OPTIONS = {
    "memory_limit": MEMORY_SIZE,
    "threads": re.compile(r"^[1-9]\d{0,3}$"),
    "allocator_flush_threshold": MEMORY_SIZE,
    "allocator_background_threads": re.compile(r"^(true|false)$"),
}
# Applied unless the URL says otherwise. DuckDB's allocator keeps up to 128 MiB of freed memory per task for
# reuse; in a process that also fetches and clusters, that cache showed up as RSS spikes that grew with the
# run (the README's Configuration table has the peak RSS with and without these two settings).
_DUCKDB_DEFAULTS = {"allocator_flush_threshold": "16MB", "allocator_background_threads": "true"}

# DuckDB has one writer per file and detects write-write conflicts between concurrent transactions of one
# process only at commit time (even for ON CONFLICT DO NOTHING): serialise them per file instead.
_DUCKDB_LOCKS: dict[str, threading.RLock] = {}
_DUCKDB_LOCKS_GUARD = threading.Lock()


# Threads of one process that open the same DuckDB file at the same moment could fail a later bulk insert with
# "Table Function with name pandas_scan does not exist" (it failed a shard on the 10,000-feed stack, whose feed
# threads open and close the file concurrently). Serialising the opens of a file made it go away in a
# reproduction; the likely cause, inferred from that and not confirmed in DuckDB's source, is a connection that
# gets the file's database instance before DuckDB's Python client has registered its Python scans on it
# (``register`` of NumPy columns reads through ``pandas_scan``). So opens are one at a time per file: an open
# can wait behind another thread's open of the same file, which may be slow when it creates the instance or
# replays a WAL; opens of different files do not wait for each other. Separate from _DUCKDB_LOCKS so that an
# open never waits for another thread's whole transaction; nothing else is taken while one is held (a leaf
# lock), so the two kinds cannot deadlock.
_DUCKDB_CONNECT_LOCKS: dict[str, threading.Lock] = {}


def _duckdb_lock(path: Path) -> threading.RLock:
    with _DUCKDB_LOCKS_GUARD:
        return _DUCKDB_LOCKS.setdefault(str(path.resolve()), threading.RLock())


def _duckdb_connect_lock(path: Path) -> threading.Lock:
    """The lock a thread holds while it opens ``path`` (keyed like _duckdb_lock: two spellings of one file share it)."""
    with _DUCKDB_LOCKS_GUARD:
        return _DUCKDB_CONNECT_LOCKS.setdefault(str(path.resolve()), threading.Lock())


# PostgreSQL connections whose role may not create temporary tables (see Cursor.bulk_insert).
_NO_TEMP_TABLES: weakref.WeakSet[Any] = weakref.WeakSet()
# PostgreSQL: per (table, staged columns), the staging table's columns stored compressible by default
# (see Cursor._stage_uncompressed); the same for every schema, since every schema is made by MIGRATIONS.
_STAGE_LONG_COLUMNS: dict[tuple[str, tuple[str, ...]], tuple[str, ...]] = {}
# PostgreSQL: the staging tables each connection has made (see Cursor._pg_stage).
_PG_STAGES: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()
# The conflict target of a one-column ``ON CONFLICT (key) DO …`` tail, and whether it does nothing.
_CONFLICT_KEY = re.compile(r"^\s*ON CONFLICT \(\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s+DO\b", re.IGNORECASE)
_DO_NOTHING = re.compile(r"^\s*ON CONFLICT \([^)]*\)\s+DO NOTHING\s*$", re.IGNORECASE)


def _conflict_key(tail: str, columns: Sequence[str]) -> int | None:
    """The position in ``columns`` of ``tail``'s one-column conflict target; None for another tail."""
    match = _CONFLICT_KEY.match(tail)
    if match is None or match.group(1) not in columns:
        return None
    return list(columns).index(match.group(1))


# ``column IN {in}`` of a select_in statement whose key is one (optionally qualified) column: the form DuckDB
# receives as ``list_contains(?, column)``. The expression holds no placeholder, so parameters keep their order.
# ``NOT IN`` and a cast (``x::text IN``) are not that form: they keep the list of parameters.
_KEY_IN = re.compile(r"(?<![\w.:])(?!(?i:not)\b)([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?) IN \{in\}")


class Cursor:
    """A thin cursor wrapper so callers never see which engine or placeholder style is underneath."""

    def __init__(self, raw: Any, dialect: Dialect) -> None:
        self._raw = raw
        self._dialect = dialect
        self._filled: set[str] = set()  # PostgreSQL staging tables holding rows in this transaction

    def _sql(self, sql: str) -> str:
        if self._dialect == "postgres":
            return sql.replace("%", "%%").replace("?", "%s")
        return sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        self._raw.execute(self._sql(sql), tuple(params))
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Cursor:
        if rows:
            self._raw.executemany(self._sql(sql), [tuple(r) for r in rows])
        return self

    def insert_rows(self, head: str, rows: Sequence[Sequence[Any]], tail: str = "", *, chunk: int = 200) -> Cursor:
        """``head VALUES (…), (…) tail`` in chunks: one statement per chunk instead of one per row.

        DuckDB's executemany runs a statement per row; a multi-row VALUES list is several times faster on
        DuckDB and no slower on PostgreSQL (``bench.pipeline``'s insert baseline measures both). ``tail`` is
        typically an ON CONFLICT clause; rows of one call must not repeat a conflict key (both engines refuse
        to upsert one row twice per statement).
        """
        if not rows:
            return self
        width = len(rows[0])
        group = "(" + ", ".join("?" * width) + ")"
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            params = [value for row in part for value in row]
            self.execute(f"{head} VALUES {', '.join([group] * len(part))} {tail}", params)
        return self

    def bulk_insert(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], tail: str = "", *, chunk: int = 1000
    ) -> Cursor:
        """``INSERT INTO table (columns) … tail`` of many rows as a table, not as statement parameters.

        Binding thousands of parameters per statement is most of what a multi-row ``VALUES`` insert costs:
        DuckDB scans the rows as NumPy columns instead, PostgreSQL receives them by ``COPY`` into a temporary
        staging table; either way one ``INSERT … SELECT`` then applies ``tail`` (an ``ON CONFLICT`` clause)
        as the row-wise statement did. Same rule as :meth:`insert_rows`: rows of one call must not repeat a
        conflict key. ``table`` and ``columns`` are identifiers from code, never from data.
        """
        if not rows:
            return self
        names = ", ".join(columns)
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            if self._dialect == "duckdb":
                self._duckdb_bulk(table, columns, part, tail)
                continue
            # A role without TEMPORARY on the database (deploy/warehouse-roles.sql's newswire_app) cannot stage:
            # it gets the multi-row VALUES insert instead. The refusal is remembered per connection, so later
            # batches don't ask again.
            stage = self._pg_stage(table, columns)
            if stage is None:
                return self.insert_rows(f"INSERT INTO {table} ({names})", rows[start:], tail)
            if stage in self._filled:
                self._raw.execute(f"DELETE FROM {stage}")  # filled earlier in this transaction
            self._filled.add(stage)
            with self._raw.copy(f"COPY {stage} ({names}) FROM STDIN") as copy:
                for row in part:
                    copy.write_row(row)
            self._raw.execute(self._sql(f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage} {tail}"))
        return self

    def _pg_stage(self, table: str, columns: Sequence[str]) -> str | None:
        """The connection's temporary staging table for ``columns`` of ``table``; None if it may not have one.

        Made once per connection (``ON COMMIT DELETE ROWS``: empty at every transaction's end) and kept, not
        made and dropped by every call: creating, altering and dropping a table writes the system catalogs
        each time, several round trips and catalog rows per table a batch writes. A rolled-back transaction
        takes a stage it created with it, so the connection's list of stages is forgotten on rollback
        (:meth:`Warehouse._open_transaction`) and the next call makes it again (``IF NOT EXISTS``: one that
        survived from an earlier transaction is kept).
        """
        import psycopg

        connection = self._raw.connection
        if connection in _NO_TEMP_TABLES:
            return None
        key = ",".join(columns)
        stage = f"_stage_{table}_{zlib.crc32(key.encode()):08x}"
        made = _PG_STAGES.setdefault(connection, set())
        if stage in made:
            return stage
        self._raw.execute("SAVEPOINT newswire_bulk")  # a refusal must not abort the transaction
        try:
            self._raw.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS "
                f"SELECT {', '.join(columns)} FROM {table} WITH NO DATA"
            )
        except psycopg.errors.InsufficientPrivilege:
            self._raw.execute("ROLLBACK TO SAVEPOINT newswire_bulk")
            _NO_TEMP_TABLES.add(connection)
            return None
        self._raw.execute("RELEASE SAVEPOINT newswire_bulk")
        self._stage_uncompressed(table, stage, columns)
        made.add(stage)
        return stage

    def _stage_uncompressed(self, table: str, stage: str, columns: Sequence[str]) -> None:
        """Store the staging table's long values as they are (``STORAGE EXTERNAL``), not compressed.

        ``CREATE TABLE … AS`` gives the stage the default storage of each type, so a long text value was
        compressed once into the stage, read back and decompressed by the ``INSERT … SELECT``, then handled
        by the target's own storage rule: the stage's compression is pure waste for a table read once and
        dropped at commit, and on incompressible values (near-duplicate signatures) it is a failed attempt per
        value. Which columns can be stored so is read once per table from the catalog.
        """
        key = (table, tuple(columns))
        long_columns = _STAGE_LONG_COLUMNS.get(key)
        if long_columns is None:
            self._raw.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                "AND NOT attisdropped AND attstorage IN ('x', 'm')",
                (stage,),
            )
            long_columns = _STAGE_LONG_COLUMNS[key] = tuple(sorted(row[0] for row in self._raw.fetchall()))
        if long_columns:
            changes = ", ".join(f"ALTER COLUMN {name} SET STORAGE EXTERNAL" for name in long_columns)
            self._raw.execute(f"ALTER TABLE {stage} {changes}")

    def _duckdb_bulk(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], tail: str) -> None:
        """Rows whose conflict key is not stored yet go in by a plain ``INSERT``, the others with ``tail``.

        DuckDB's ``ON CONFLICT`` costs about as much again as the insert itself, conflict or not (it checks and
        handles every row), while a batch's rows are mostly new: the stored keys are found first, by one index
        probe, and only their rows take the upsert (with ``DO NOTHING``, they are simply left out). A plain
        insert of a key stored meanwhile still fails on the primary key, never doubles a row; and the probe
        runs in the transaction of the insert, which on DuckDB no other writer shares.
        """
        index = _conflict_key(tail, columns)
        keys = [row[index] for row in rows] if index is not None else []
        if index is None or not all(type(k) is str for k in keys) or len(set(keys)) != len(keys):
            self._duckdb_insert(table, columns, rows, tail)
            return
        name = columns[index]
        stored = {
            row[0]
            for row in self._raw.execute(
                f"SELECT {name} FROM {table} WHERE list_contains(CAST(? AS VARCHAR[]), {name})", (keys,)
            ).fetchall()
        }
        fresh = [row for row in rows if row[index] not in stored] if stored else rows
        if fresh:
            self._duckdb_insert(table, columns, fresh, "")
        if stored and not _DO_NOTHING.search(tail):
            self._duckdb_insert(table, columns, [row for row in rows if row[index] in stored], tail)

    def _duckdb_insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], tail: str) -> None:
        import numpy as np

        data: dict[str, Any] = {}
        for index, name in enumerate(columns):
            values = [row[index] for row in rows]
            column = np.empty(len(values), dtype=object)  # object: DuckDB infers the type from the values
            column[:] = values
            data[name] = column
        # Chunks of at most 1,000 rows: DuckDB infers an object column's type from (up to) its first 1,000.
        view = f"_stage_{table}"
        # DuckDB 2 refuses to register while the previous statement's result is pending: finish it first.
        complete = getattr(self._raw, "complete", lambda: None)
        complete()
        self._raw.register(view, data)
        try:
            names = ", ".join(columns)
            self._raw.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {view} {tail}")
        finally:
            complete()
            self._raw.unregister(view)

    def select_in(
        self, sql: str, values: Sequence[Any], params: Sequence[Any] = (), *, chunk: int = 1000
    ) -> list[dict[str, Any]]:
        """Run ``sql`` whose ``{in}`` marks an IN list, over ``values`` in chunks; rows as dicts."""
        unique = list(dict.fromkeys(values))
        rows: list[dict[str, Any]] = []
        # Text keys (ids, hashes, URLs: every batch read) go as one list parameter, not one parameter per key:
        # binding hundreds of parameters is most of what such a read costs. On PostgreSQL the statement text then
        # stays the same whatever the number of keys (psycopg's query cache reuses it) and the planner still
        # probes the key's index. DuckDB plans `IN (SELECT UNNEST(?))` and `= ANY(?)` as a semi-join over a scan
        # of the whole table (a cost that grows with the warehouse, not with the batch), but `list_contains(?,
        # column)` as the same index scan as a literal list of parameters.
        as_array = self._dialect == "postgres" and all(type(v) is str for v in unique)
        as_list = self._dialect == "duckdb" and all(type(v) is str for v in unique)
        as_list = as_list and sql.count("{in}") == 1 and _KEY_IN.search(sql) is not None
        for start in range(0, len(unique), chunk):
            part = unique[start : start + chunk]
            if as_array:
                query = sql.replace("{in}", "(SELECT UNNEST(CAST(? AS TEXT[])))")
                rows.extend(self.execute(query, [*params, part]).dicts())
                continue
            if as_list:
                query = _KEY_IN.sub(r"list_contains(CAST(? AS VARCHAR[]), \1)", sql)
                rows.extend(self.execute(query, [*params, part]).dicts())
                continue
            marks = ", ".join("?" * len(part))
            rows.extend(self.execute(sql.replace("{in}", f"({marks})"), [*params, *part]).dicts())
        return rows

    def execute_in(self, sql: str, values: Sequence[Any], params: Sequence[Any] = (), *, chunk: int = 1000) -> Cursor:
        """Run a statement whose ``{in}`` marks an IN list (``DELETE … WHERE id IN {in}``) over ``values``."""
        unique = list(dict.fromkeys(values))
        for start in range(0, len(unique), chunk):
            part = unique[start : start + chunk]
            self.execute(sql.replace("{in}", f"({', '.join('?' * len(part))})"), [*params, *part])
        return self

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._raw.fetchall()]

    def fetchone(self) -> tuple[Any, ...] | None:
        row = self._raw.fetchone()
        return tuple(row) if row is not None else None

    def scalar(self) -> Any:
        row = self.fetchone()
        return row[0] if row else None

    def dicts(self) -> list[dict[str, Any]]:
        names = [d[0] for d in self._raw.description]
        return [dict(zip(names, row, strict=True)) for row in self._raw.fetchall()]


class HeldLock:
    """A lock held through :meth:`Warehouse.exclusive`: a check for between units of work, a fence for inside them.

    The check alone cannot stop work that started under the lock from committing after the lock was lost
    (a long batch outlives its lock session): the fence, run inside the work's own transaction just before
    it commits, makes that transaction fail and roll back instead.
    """

    def __init__(self, check: Callable[[], None], fence: Callable[[Cursor], None]) -> None:
        self._check = check
        self._fence = fence

    def __call__(self) -> None:
        """Raise :class:`WarehouseUnavailable` if the lock was lost."""
        self._check()

    def fence(self, cur: Cursor) -> None:
        """Raise :class:`WarehouseUnavailable` (rolling ``cur``'s transaction back) unless the lock is still held."""
        self._fence(cur)


#: A pooled PostgreSQL connection idle at least this long is probed before reuse (see _still_connected).
PROBE_IDLE_SECONDS = 1.0


def _still_connected(conn: Any) -> bool:
    """Whether a pooled PostgreSQL connection still works. One kept across batches may have been dropped by the
    server meanwhile (restart, idle timeout, failover); psycopg only notices on its next round trip, so
    ``closed``/``broken`` alone would hand the batch a dead connection. One empty round trip is far cheaper
    than a batch failing, and than reconnecting for every batch."""
    import psycopg

    if conn.closed or conn.broken:
        return False
    try:
        conn.execute("")
        conn.rollback()  # the probe leaves no transaction open: the batch's starts at its own first statement
    except psycopg.OperationalError:
        return False
    return True


class Warehouse:
    """Connection factory and migrator for one warehouse URL."""

    def __init__(self, url: str, *, lock_timeout: float = 120.0) -> None:
        self.url = url
        self.lock_timeout = lock_timeout
        parts = urlsplit(url)
        if parts.scheme == "duckdb":
            self.dialect: Dialect = "duckdb"
            self.path = Path(parts.path)
            self._duckdb_options = _duckdb_options(parts.query, url)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._pg_conninfo = ""
            self.schema: str | None = None
        elif parts.scheme in {"postgresql", "postgres"}:
            self.dialect = "postgres"
            query = dict(parse_qsl(parts.query))
            self.schema = query.pop("schema", None)
            if self.schema is not None and not _SCHEMA_NAME.match(self.schema):
                raise WarehouseUnavailable(f"invalid schema name {self.schema!r} in warehouse URL")
            self._pg_conninfo = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(query), parts.fragment))
            self._duckdb_options = {}
        else:
            raise WarehouseUnavailable(f"unsupported warehouse URL {redact_url(url)!r}")
        self._migrated = False
        self._hold_lock = threading.Lock()
        self._holders = 0
        self._held: Any = None  # DuckDB: the connection keeping the database open
        self._idle: list[Any] = []  # PostgreSQL: idle connections kept while held
        self._idle_since: dict[int, float] = {}  # id(connection) -> when it went back to _idle

    def __repr__(self) -> str:
        return f"Warehouse({redact_url(self.url)!r})"

    @contextmanager
    def hold(self) -> Iterator[Warehouse]:
        """Keep the warehouse open across the transactions of a span of work (re-entrant, thread-safe).

        Opening a DuckDB file costs far more than a cursor of an open one, and a PostgreSQL connection costs
        a round of authentication: a batch of hundreds of small transactions pays that once.
        Hold only for bounded spans (a feed poll, a transform batch): a held DuckDB file is locked against
        other processes until the span ends. The file is opened at the first transaction inside the span, not
        at its start: a poll answered 304 (its rows deferred) never opens it, so shard processes polling
        mostly unchanged feeds do not lock each other out of the file.
        """
        with self._hold_lock:
            self._holders += 1
        try:
            yield self
        finally:
            with self._hold_lock:
                self._holders -= 1
                if self._holders == 0:
                    held, self._held = self._held, None
                    idle, self._idle = self._idle, []
                    self._idle_since.clear()
                    for conn in [held, *idle]:
                        if conn is not None:
                            conn.close()

    @contextmanager
    def exclusive(self, name: str, *, timeout: float | None = None) -> Iterator[HeldLock]:
        """Hold the lock ``name`` of this warehouse for the block: one holder at a time, across processes and
        hosts that share the warehouse; a holder that dies releases it.

        PostgreSQL: a session advisory lock (no privilege needed) on a connection of its own, keyed by schema
        and name. DuckDB: an exclusive ``flock`` on a file beside the database file (the file is local, so
        are its users). Waits up to ``timeout`` (default ``lock_timeout``) for another holder, then raises
        :class:`WarehouseUnavailable` (retryable: the other holder finishes its work).

        Yields a :class:`HeldLock`: call it before each unit of work, and again before acknowledging the work
        elsewhere (consumer offsets); it raises :class:`WarehouseUnavailable` if the lock was lost meanwhile
        (PostgreSQL: its session's connection broke, and with it the lock). Call its ``fence`` inside each
        transaction the lock protects, just before it commits: a lock lost during the work then rolls the
        work back instead of committing it beside a second holder.
        """
        deadline = time.monotonic() + (self.lock_timeout if timeout is None else timeout)
        delay = 0.05
        if self.dialect == "duckdb":
            slug = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:80]
            # Resolved (as _duckdb_lock does): two spellings of one file (relative, symlinked) share one lock.
            resolved = self.path.resolve()
            path = resolved.with_name(f"{resolved.name}.{slug}.lock")
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            raise WarehouseUnavailable(f"{self!r}: lock {name!r} is held by another process") from None
                        time.sleep(delay)
                        delay = min(delay * 2, 1.0)
                # A flock lasts as long as this process keeps the file open: nothing to check, nothing to fence.
                yield HeldLock(lambda: None, lambda cur: None)
            finally:
                os.close(fd)  # releases the flock
            return
        key = self.advisory_key(name)
        # Client-side keepalives and a TCP user timeout: a check on a half-open connection (the server gone
        # without a word) fails within about a minute instead of waiting out the system's retransmissions.
        conn = self._connect(
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
            tcp_user_timeout=60_000,
        )
        try:
            conn.autocommit = True  # the session holds the lock; no transaction stays open meanwhile
            # The server ends a session whose client vanished (a host lost, a network cut) only when TCP says
            # so: probe the client within about a minute instead of the system's two hours, so a lock of a
            # dead run does not outlive it by long (ignored over a Unix socket, where there is nothing to probe).
            conn.execute("SET tcp_keepalives_idle = 30")
            conn.execute("SET tcp_keepalives_interval = 10")
            conn.execute("SET tcp_keepalives_count = 3")
            # Every statement of this session is a lock call or a liveness probe: none may wait long.
            conn.execute("SET statement_timeout = '10s'")
            while not conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
                if time.monotonic() >= deadline:
                    raise WarehouseUnavailable(f"{self!r}: lock {name!r} is held by another session")
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

            def still_held() -> None:
                try:
                    conn.execute("SELECT 1")
                except Exception as exc:
                    raise WarehouseUnavailable(f"{self!r}: lost lock {name!r} with its session: {exc}") from exc

            # pg_locks shows a bigint advisory key split in two oids: classid the high half, objid the low
            # half, objsubid 1 (2 is the two-int4 key space).
            pid = conn.info.backend_pid
            unsigned = key & (2**64 - 1)
            classid, objid = unsigned >> 32, unsigned & (2**32 - 1)

            def fence(cur: Cursor) -> None:
                # Asked on the protected transaction's own connection, not the lock session's: a broken lock
                # session cannot answer, and the answer must come from the server the transaction commits on.
                row = cur.execute(
                    "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND mode = 'ExclusiveLock' "
                    "AND pid = ? AND classid::bigint = ? AND objid::bigint = ? AND objsubid = 1 "
                    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                    (pid, classid, objid),
                ).fetchone()
                if row is None:
                    raise WarehouseUnavailable(f"{self!r}: lock {name!r} is no longer held by this run's session")

            yield HeldLock(still_held, fence)
        finally:
            conn.close()  # ends the session, and so the lock

    def advisory_key(self, name: str) -> int:
        """The PostgreSQL advisory lock key of :meth:`exclusive`'s ``name`` in this schema (signed 64-bit)."""
        digest = hashlib.blake2b(f"{self.schema or ''}|{name}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") - (1 << 63)

    def _acquire(self) -> Any:
        while True:
            with self._hold_lock:
                if self._held is not None:
                    return self._held.cursor()  # a new connection to the already-open database
                pooled = self._idle.pop() if self._holders and self._idle else None
                idle_for = 0.0 if pooled is None else time.monotonic() - self._idle_since.pop(id(pooled), 0.0)
                keep = self._holders > 0 and self.dialect == "duckdb"
            if pooled is None:
                break
            # Back-to-back transactions of one span reuse a connection without a probe: only one that sat idle
            # (between batches, while the broker was polled) can have been dropped unnoticed meanwhile.
            if idle_for < PROBE_IDLE_SECONDS or _still_connected(pooled):
                return pooled
            pooled.close()  # dropped by the server since its last batch: try the next one, or connect anew
        conn = self._connect()  # outside the lock: waiting for another process's file lock can take seconds
        if keep:
            with self._hold_lock:
                if self._holders > 0:
                    if self._held is None:
                        self._held = conn  # kept open until the last holder leaves
                        return conn.cursor()
                    cursor = self._held.cursor()  # another thread opened it meanwhile
                    conn.close()
                    return cursor
        return conn

    def _release(self, conn: Any) -> None:
        with self._hold_lock:
            if self.dialect == "postgres" and self._holders and not conn.closed and len(self._idle) < 8:
                self._idle.append(conn)
                self._idle_since[id(conn)] = time.monotonic()
                return
        conn.close()

    def _connect(self, **pg_options: Any) -> Any:
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.05
        while True:
            try:
                return self._connect_once(**pg_options)
            except Exception as exc:
                if not self._is_lock_error(exc) or time.monotonic() >= deadline:
                    raise WarehouseUnavailable(f"cannot open warehouse {self!r}: {exc}") from exc
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _connect_once(self, **pg_options: Any) -> Any:
        if self.dialect == "duckdb":
            import duckdb

            with _duckdb_connect_lock(self.path):
                conn = duckdb.connect(str(self.path))
            for name, value in self._duckdb_options.items():
                conn.execute(f"SET {name} = '{value}'")  # checked against _DUCKDB_OPTIONS
            return conn
        import psycopg

        conn = psycopg.connect(self._pg_conninfo, connect_timeout=10, **pg_options)
        if self.schema:
            with conn.cursor() as cur:
                # Only when missing: even CREATE SCHEMA IF NOT EXISTS needs CREATE on the database, which the
                # pipeline's least-privilege role does not have (deploy/warehouse-roles.sql).
                cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,))
                if cur.fetchone() is None:
                    try:
                        cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                        conn.commit()
                    except psycopg.errors.UniqueViolation:
                        # Two first connections raced (IF NOT EXISTS does not cover that): it exists now.
                        conn.rollback()
                cur.execute(f'SET search_path TO "{self.schema}"')
            conn.commit()
        return conn

    @staticmethod
    def _is_lock_error(exc: Exception) -> bool:
        text = str(exc).lower()
        return "could not set lock" in text or "conflicting lock" in text

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        """One transaction: committed when the block exits normally, rolled back on any exception."""
        if not self._migrated:
            self.migrate()
        with self._raw_transaction() as cur:
            yield cur

    @contextmanager
    def read(self) -> Iterator[Cursor]:
        """A transaction for reads only: on DuckDB it skips this process's writer lock.

        DuckDB readers see a snapshot and never conflict, so a thread checking the ledger need not queue
        behind another thread's chunk being written (that queue serialised the feed threads of a run).
        Writing through this cursor is a bug; DuckDB may then raise a write-write conflict.
        """
        if not self._migrated:
            self.migrate()
        with self._open_transaction() as cur:
            yield cur

    @contextmanager
    def _raw_transaction(self) -> Iterator[Cursor]:
        if self.dialect == "duckdb":
            with _duckdb_lock(self.path), self._open_transaction() as cur:
                yield cur
        else:
            with self._open_transaction() as cur:
                yield cur

    @contextmanager
    def _open_transaction(self) -> Iterator[Cursor]:
        conn = self._acquire()
        try:
            if self.dialect == "duckdb":
                # A DuckDB cursor() is a separate connection: run the transaction on the connection itself.
                conn.begin()
                raw = conn
            else:
                raw = conn.cursor()
            cursor = Cursor(raw, self.dialect)
            try:
                yield cursor
            except BaseException:
                conn.rollback()
                self._forget_stages(conn)
                raise
            try:
                conn.commit()
            except BaseException:
                self._forget_stages(conn)
                raise
        finally:
            self._release(conn)

    def _forget_stages(self, conn: Any) -> None:
        """A transaction that did not commit took the staging tables it made with it (see Cursor._pg_stage)."""
        if self.dialect == "postgres":
            _PG_STAGES.pop(conn, None)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run one read query in its own transaction and return rows as dicts."""
        with self.transaction() as cur:
            return cur.execute(sql, params).dicts()

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self.transaction() as cur:
            return cur.execute(sql, params).scalar()

    def migrate(self) -> list[int]:
        """Apply the migrations this warehouse lacks; return the versions applied (idempotent)."""
        if self._schema_is_current():
            self._migrated = True
            return []
        if self.dialect == "postgres" and not self._may_create_tables():
            raise WarehouseUnavailable(
                f"{self!r} needs migrations, but this role may not create tables in its schema: run "
                "`newswire migrate` as the schema owner (see deploy/warehouse-roles.sql)"
            )
        applied: list[int] = []
        with self._raw_transaction() as cur:
            if self.dialect == "postgres":
                # Serialise concurrent migrators (several Airflow tasks starting at once).
                cur.execute("SELECT pg_advisory_xact_lock(7355608)")
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
            )
            done = {row[0] for row in cur.execute("SELECT version FROM schema_migrations").fetchall()}
            for migration in MIGRATIONS:
                if migration.version in done:
                    continue
                for statement in migration.statements_for(self.dialect):
                    cur.execute(statement)
                cur.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, utcnow()),
                )
                applied.append(migration.version)
        self._migrated = True
        return applied

    def _schema_is_current(self) -> bool:
        """Whether every migration is recorded, checked with a read only.

        The pipeline may run as a role without DDL rights (deploy/warehouse-roles.sql), for which even
        ``CREATE TABLE IF NOT EXISTS`` on an existing table is "permission denied": an up-to-date schema must
        be recognised without issuing any DDL.
        """
        try:
            with self._raw_transaction() as cur:
                done = {row[0] for row in cur.execute("SELECT version FROM schema_migrations").fetchall()}
        except WarehouseUnavailable:
            raise
        except Exception:  # no schema_migrations table yet (engine-specific "undefined table" errors)
            return False
        return all(migration.version in done for migration in MIGRATIONS)

    def _may_create_tables(self) -> bool:
        with self._raw_transaction() as cur:
            may = cur.execute("SELECT COALESCE(has_schema_privilege(current_schema(), 'CREATE'), FALSE)").scalar()
        return bool(may)

    def schema_version(self) -> int:
        return int(self.scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations") or 0)


def _duckdb_options(query: str, url: str) -> dict[str, str]:
    given = dict(parse_qsl(query))
    for name, value in given.items():
        pattern = _DUCKDB_OPTIONS.get(name)
        if pattern is None:
            known = ", ".join(sorted(_DUCKDB_OPTIONS))
            raise WarehouseUnavailable(f"unknown DuckDB option {name!r} in warehouse URL {url!r} (known: {known})")
        if not pattern.match(value):
            raise WarehouseUnavailable(f"invalid DuckDB {name} {value!r} in warehouse URL {url!r}")
    return {**_DUCKDB_DEFAULTS, **given}


def utcnow() -> datetime:
    """Timezone-aware now, the only kind of timestamp written to the warehouse."""
    return datetime.now(UTC)


def open_warehouse(url: str) -> Warehouse:
    """Open (and migrate) the warehouse at ``url``; raise :class:`WarehouseUnavailable` if unreachable."""
    warehouse = Warehouse(url)
    warehouse.migrate()
    return warehouse
