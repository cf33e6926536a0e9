from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from newswire.errors import WarehouseUnavailable
from newswire.warehouse import Warehouse, open_warehouse, utcnow
from newswire.warehouse.migrations import MIGRATIONS


def test_migrations_apply_once_and_are_recorded(warehouse_url: str) -> None:
    warehouse = Warehouse(warehouse_url)
    assert warehouse.migrate() == [m.version for m in MIGRATIONS]
    assert warehouse.migrate() == []
    assert Warehouse(warehouse_url).migrate() == []
    assert warehouse.schema_version() == MIGRATIONS[-1].version


def test_contract_tables_and_columns_exist(warehouse_url: str) -> None:
    warehouse = open_warehouse(warehouse_url)
    contract = {
        "articles": {
            "article_id",
            "url",
            "canonical_url",
            "title",
            "text",
            "published_at",
            "language",
            "source",
            "feed_url",
            "fetched_at",
            "content_hash",
        },
        "events": {
            "event_id",
            "version",
            "title",
            "summary",
            "first_seen_at",
            "last_seen_at",
            "article_count",
            "source_count",
        },
        "event_articles": {"event_id", "article_id"},
        "article_duplicates": {"article_id", "url", "duplicate_of", "method", "score"},
        "dead_letters": {"stage", "reason", "url", "created_at"},
        "feeds": {"feed_url", "etag", "last_modified"},
        "ingest_runs": {
            "run_id",
            "feed_url",
            "entries_seen",
            "new_articles",
            "duplicates",
            "dead_letters",
            "bytes",
            "duration",
            "http_status",
        },
    }
    for table, columns in contract.items():
        with warehouse.transaction() as cur:
            cur.execute(f"SELECT * FROM {table} WHERE 1 = 0")
            present = {d[0] for d in cur._raw.description}
        assert columns <= present, (table, columns - present)


def test_transaction_rolls_back_on_error(warehouse_url: str) -> None:
    warehouse = open_warehouse(warehouse_url)
    with pytest.raises(RuntimeError), warehouse.transaction() as cur:
        cur.execute("INSERT INTO article_urls (url, article_id, first_seen_at) VALUES (?, ?, ?)", ("u", "a", utcnow()))
        raise RuntimeError("boom")
    assert warehouse.scalar("SELECT COUNT(*) FROM article_urls") == 0


def test_upsert_is_idempotent(warehouse_url: str) -> None:
    warehouse = open_warehouse(warehouse_url)
    for _ in range(3):
        with warehouse.transaction() as cur:
            cur.execute(
                "INSERT INTO article_urls (url, article_id, first_seen_at) VALUES (?, ?, ?) "
                "ON CONFLICT (url) DO NOTHING",
                ("https://x.example/a", "a1", utcnow()),
            )
    assert warehouse.scalar("SELECT COUNT(*) FROM article_urls") == 1


def test_text_with_placeholder_characters_is_a_parameter_not_sql(warehouse_url: str) -> None:
    warehouse = open_warehouse(warehouse_url)
    hostile = "x'); DROP TABLE articles; -- ? %s %(x)s"
    with warehouse.transaction() as cur:
        cur.execute(
            "INSERT INTO article_urls (url, article_id, first_seen_at) VALUES (?, ?, ?)", (hostile, "a", utcnow())
        )
    assert warehouse.query("SELECT url FROM article_urls") == [{"url": hostile}]
    assert warehouse.scalar("SELECT COUNT(*) FROM articles") == 0


def test_hold_reuses_the_open_warehouse_and_releases_it(warehouse_url: str) -> None:
    warehouse = open_warehouse(warehouse_url)
    with warehouse.hold(), warehouse.hold():  # re-entrant
        for i in range(20):
            with warehouse.transaction() as cur:
                cur.execute(
                    "INSERT INTO article_urls (url, article_id, first_seen_at) VALUES (?, ?, ?)",
                    (f"u{i}", "a", utcnow()),
                )
            if warehouse.dialect == "duckdb":
                assert warehouse._held is not None  # the database stays open between transactions
            else:
                assert len(warehouse._idle) == 1  # one pooled connection, reused by every transaction
    assert warehouse._held is None and warehouse._idle == []
    assert warehouse.scalar("SELECT COUNT(*) FROM article_urls") == 20
    if warehouse.dialect == "duckdb":
        import duckdb

        duckdb.connect(str(warehouse.path)).close()  # released: another process could open the file again


def test_threads_open_a_duckdb_file_one_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Threads opening one file at the same moment could fail a later bulk insert (``pandas_scan`` missing);
    opens are serialised per file (readers included: a reader's open can be the one that creates the instance),
    and the whole path counts, two spellings of one file included."""
    import duckdb

    warehouse = Warehouse(f"duckdb:///{tmp_path}/w.duckdb")
    warehouse.migrate()
    (tmp_path / "link").symlink_to(tmp_path)
    other_spelling = Warehouse(f"duckdb:///{tmp_path}/link/w.duckdb")
    real_connect = duckdb.connect
    guard = threading.Lock()
    opening, most = 0, 0

    def slow_connect(*args: Any, **kwargs: Any) -> Any:
        nonlocal opening, most
        with guard:
            opening += 1
            most = max(most, opening)
        time.sleep(0.02)  # widens the window in which another thread could be opening too
        try:
            return real_connect(*args, **kwargs)
        finally:
            with guard:
                opening -= 1

    monkeypatch.setattr(duckdb, "connect", slow_connect)
    start = threading.Barrier(6)
    errors: list[BaseException] = []

    def reader(index: int) -> None:
        start.wait()
        try:
            for _ in range(3):
                with (warehouse if index % 2 else other_spelling).read() as cur:
                    cur.execute("SELECT COUNT(*) FROM article_urls").fetchone()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert most == 1


def test_two_duckdb_files_open_at_the_same_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The open lock is per file: a thread opening one file (possibly slowly, creating its instance or replaying
    a WAL) does not hold up a thread opening another."""
    import duckdb

    first, second = Warehouse(f"duckdb:///{tmp_path}/a.duckdb"), Warehouse(f"duckdb:///{tmp_path}/b.duckdb")
    real_connect = duckdb.connect
    first_opening, second_opening = threading.Event(), threading.Event()
    seen: list[bool] = []

    def connect(database: str, *args: Any, **kwargs: Any) -> Any:
        if database.endswith("a.duckdb"):
            first_opening.set()
            # Still inside the open of a.duckdb: b.duckdb's open must be able to start meanwhile. The timeout
            # only bounds a failing run (one lock for every file would keep it out until this returns).
            seen.append(second_opening.wait(timeout=10))
        else:
            second_opening.set()
        return real_connect(database, *args, **kwargs)

    monkeypatch.setattr(duckdb, "connect", connect)

    def open_first() -> None:
        with first.read() as cur:
            cur.execute("SELECT 1").fetchone()

    thread = threading.Thread(target=open_first)
    thread.start()
    assert first_opening.wait(timeout=10)
    with second.read() as cur:
        cur.execute("SELECT 1").fetchone()
    thread.join()
    assert seen and all(seen)


def test_duckdb_url_options_apply_to_every_connection(tmp_path: Path) -> None:
    warehouse = Warehouse(f"duckdb:///{tmp_path}/w.duckdb?memory_limit=100MB&threads=1")
    for _ in range(2):  # a fresh open, then a cursor of the held database
        with warehouse.hold():
            limit = warehouse.scalar("SELECT current_setting('memory_limit')")
            assert warehouse.scalar("SELECT current_setting('threads')") == 1
            # not in the URL: the defaults that keep DuckDB's allocator from hoarding freed memory
            assert warehouse.scalar("SELECT current_setting('allocator_background_threads')") is True
            flush = warehouse.scalar("SELECT current_setting('allocator_flush_threshold')")
    assert limit.endswith("MiB") and 90 < float(limit.split()[0]) <= 100
    assert flush == "16MB"
    assert (tmp_path / "w.duckdb").is_file()  # the query string is not part of the file name


@pytest.mark.parametrize(
    ("query", "problem"),
    [("memory_limit=lots", "invalid DuckDB memory_limit"), ("cache=1", "unknown DuckDB option 'cache'")],
)
def test_bad_duckdb_url_options_are_refused_before_connecting(tmp_path: Path, query: str, problem: str) -> None:
    with pytest.raises(WarehouseUnavailable, match=problem):
        Warehouse(f"duckdb:///{tmp_path}/w.duckdb?{query}")


def _feature_row(i: int) -> tuple[str, str, str]:
    return (f"a{i}", '{"v":1,"terms":{"quake":1693}}', "QUFBQUFBQUE=" * 600)


def test_duckdb_keeps_feature_columns_uncompressed(tmp_path: Path) -> None:
    # Compressing them cost DuckDB more at each checkpoint than everything else a transform batch writes.
    warehouse = open_warehouse(f"duckdb:///{tmp_path}/w.duckdb")
    with warehouse.transaction() as cur:
        cur.executemany("INSERT INTO article_features VALUES (?, ?, ?)", [_feature_row(i) for i in range(300)])
    with warehouse.transaction() as cur:
        cur.execute("CHECKPOINT")
    rows = warehouse.query(
        "SELECT DISTINCT column_name, compression FROM pragma_storage_info('article_features') "
        "WHERE segment_type = 'VARCHAR'"
    )
    kinds = {r["column_name"]: r["compression"] for r in rows}
    assert kinds["features"] == kinds["signature"] == "Uncompressed"


def test_upgrading_a_duckdb_warehouse_keeps_its_stored_features(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import newswire.warehouse as warehouse_module

    url = f"duckdb:///{tmp_path}/w.duckdb"
    monkeypatch.setattr(warehouse_module, "MIGRATIONS", MIGRATIONS[:3])  # a warehouse made before version 4
    assert Warehouse(url).migrate() == [1, 2, 3]
    with Warehouse(url).transaction() as cur:
        cur.executemany("INSERT INTO article_features VALUES (?, ?, ?)", [_feature_row(i) for i in range(5)])
    monkeypatch.setattr(warehouse_module, "MIGRATIONS", MIGRATIONS)
    upgraded = Warehouse(url)
    assert upgraded.migrate() == [m.version for m in MIGRATIONS[3:]]  # 4, and any later ones
    stored = upgraded.query("SELECT article_id, features, signature FROM article_features ORDER BY article_id")
    assert [tuple(r.values()) for r in stored] == [_feature_row(i) for i in range(5)]
    with upgraded.transaction() as cur:  # the primary key survived the copy: upserts still find the row
        cur.execute(
            "INSERT INTO article_features VALUES ('a1', 'new', 'sig') "
            "ON CONFLICT (article_id) DO UPDATE SET features = excluded.features"
        )
    assert upgraded.scalar("SELECT COUNT(*) FROM article_features") == 5
    assert upgraded.scalar("SELECT features FROM article_features WHERE article_id = 'a1'") == "new"


def test_duckdb_run_lock_is_one_per_file_however_it_is_spelled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A symlink and a relative path to one DuckDB file take the same lock as its absolute path."""
    (tmp_path / "data").mkdir()
    real = tmp_path / "data" / "warehouse.duckdb"
    link = tmp_path / "link.duckdb"
    link.symlink_to(real)
    monkeypatch.chdir(tmp_path)
    spellings = [f"duckdb:///{link}", "duckdb:data/warehouse.duckdb"]
    with Warehouse(f"duckdb:///{real}").exclusive("transform"):
        for url in spellings:
            with (
                pytest.raises(WarehouseUnavailable, match="held by another"),
                Warehouse(url).exclusive("transform", timeout=0.2),
            ):
                pass
    for url in spellings:  # released: each spelling takes it
        with Warehouse(url).exclusive("transform", timeout=0.2):
            pass


def test_postgres_feature_columns_are_stored_uncompressed(warehouse_url: str) -> None:
    if not warehouse_url.startswith("postgres"):
        pytest.skip("PostgreSQL storage settings")
    warehouse = open_warehouse(warehouse_url)
    rows = warehouse.query(
        "SELECT attname, attstorage FROM pg_attribute WHERE attrelid = 'article_features'::regclass AND attnum > 0"
    )
    storage = {r["attname"]: r["attstorage"] for r in rows}
    assert storage["features"] == storage["signature"] == "e"  # EXTERNAL: out of line, never compressed


def test_bulk_insert_stages_long_values_uncompressed_and_loads_them_whole(
    warehouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from newswire.warehouse import Cursor

    staged: list[dict[str, str]] = []
    original = Cursor._stage_uncompressed

    def spy(self: Cursor, table: str, stage: str, columns: Any) -> None:
        original(self, table, stage, columns)
        rows = self.execute(
            f"SELECT attname, attstorage FROM pg_attribute WHERE attrelid = '{stage}'::regclass AND attnum > 0"
        ).fetchall()
        staged.append(dict(rows))

    monkeypatch.setattr(Cursor, "_stage_uncompressed", spy)
    warehouse = open_warehouse(warehouse_url)
    rows = [_feature_row(i) for i in range(50)]
    with warehouse.transaction() as cur:
        cur.bulk_insert("article_features", ("article_id", "features", "signature"), rows)
    if warehouse.dialect == "postgres":
        assert staged == [{"article_id": "e", "features": "e", "signature": "e"}]
    stored = warehouse.query("SELECT article_id, features, signature FROM article_features ORDER BY article_id")
    assert sorted(rows) == [(r["article_id"], r["features"], r["signature"]) for r in stored]


def test_select_in_matches_text_keys_and_other_values_in_chunks(warehouse_url: str) -> None:
    warehouse = open_warehouse(warehouse_url)
    now = utcnow()
    urls = [f"https://example.org/{i}?q='{i}'" for i in range(30)] + ["é", "?", "%s"]
    with warehouse.transaction() as cur:
        cur.bulk_insert(
            "article_urls", ("url", "article_id", "first_seen_at"), [(u, f"a{i}", now) for i, u in enumerate(urls)]
        )
        cur.execute(
            "INSERT INTO transform_batches (batch_id, started_at, finished_at, messages, new_articles, "
            "duplicates, events_changed, dead_letters) VALUES ('b', ?, ?, 7, 0, 0, 0, 0)",
            (now, now),
        )
        wanted = [*urls[::3], "missing", urls[0]]  # a repeat and a miss
        rows = cur.select_in("SELECT url FROM article_urls WHERE url IN {in}", wanted, chunk=4)  # several chunks
        assert sorted(r["url"] for r in rows) == sorted(set(urls[::3]))
        rows = cur.select_in("SELECT url FROM article_urls WHERE article_id <> ? AND url IN {in}", urls[:3], ["a1"])
        assert sorted(r["url"] for r in rows) == sorted([urls[0], urls[2]])
        rows = cur.select_in("SELECT batch_id FROM transform_batches WHERE messages IN {in}", [7, 8])  # not text
        assert rows == [{"batch_id": "b"}]
        # forms that are not "one key column IN the keys" keep the parameter list (and their meaning)
        rows = cur.select_in("SELECT url FROM article_urls WHERE url NOT IN {in}", urls[1:])
        assert [r["url"] for r in rows] == [urls[0]]
        rows = cur.select_in("SELECT url FROM article_urls WHERE url::text IN {in}", urls[:2])
        assert sorted(r["url"] for r in rows) == sorted(urls[:2])


def test_bulk_insert_updates_stored_keys_inserts_new_ones_and_leaves_out_what_does_nothing(
    warehouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from newswire.warehouse import Cursor

    tails: list[str] = []
    insert = Cursor._duckdb_insert

    def spy(self: Cursor, table: str, columns: Any, rows: Any, tail: str) -> None:
        tails.append(tail)
        insert(self, table, columns, rows, tail)

    monkeypatch.setattr(Cursor, "_duckdb_insert", spy)
    warehouse = open_warehouse(warehouse_url)
    now = utcnow()
    update = "ON CONFLICT (article_id) DO UPDATE SET features = excluded.features, signature = excluded.signature"
    columns = ("article_id", "features", "signature")
    with warehouse.transaction() as cur:
        cur.bulk_insert("article_features", columns, [("a1", "f1", "s1"), ("a2", "f2", "s2")], update)
        cur.bulk_insert("article_urls", ("url", "article_id", "first_seen_at"), [("u1", "a1", now)], "")
    if warehouse.dialect == "duckdb":
        assert tails == ["", ""]  # nothing stored yet: plain inserts, no ON CONFLICT to pay for
    tails.clear()
    with warehouse.transaction() as cur:
        changed = [("a3", "f3", "s3"), ("a2", "f2b", "s2b"), ("a4", "f4", "s4")]
        cur.bulk_insert("article_features", columns, changed, update)
        urls = [("u2", "a2", now), ("u1", "a9", now)]
        cur.bulk_insert("article_urls", ("url", "article_id", "first_seen_at"), urls, "ON CONFLICT (url) DO NOTHING")
    if warehouse.dialect == "duckdb":
        assert tails == ["", update, ""]  # the new keys plainly, the stored one upserted, the ignored one left out
    stored = warehouse.query("SELECT article_id, features, signature FROM article_features ORDER BY article_id")
    assert [tuple(r.values()) for r in stored] == [
        ("a1", "f1", "s1"),
        ("a2", "f2b", "s2b"),
        ("a3", "f3", "s3"),
        ("a4", "f4", "s4"),
    ]
    urls_stored = warehouse.query("SELECT url, article_id FROM article_urls ORDER BY url")
    assert urls_stored == [{"url": "u1", "article_id": "a1"}, {"url": "u2", "article_id": "a2"}]


def test_postgres_staging_table_is_made_once_per_connection_and_remade_after_a_rollback(
    warehouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not warehouse_url.startswith("postgres"):
        pytest.skip("PostgreSQL staging tables")
    from newswire.warehouse import Cursor

    made: list[str] = []
    original = Cursor._stage_uncompressed

    def spy(self: Cursor, table: str, stage: str, columns: Any) -> None:
        made.append(stage)
        original(self, table, stage, columns)

    monkeypatch.setattr(Cursor, "_stage_uncompressed", spy)
    warehouse = open_warehouse(warehouse_url)
    columns = ("article_id", "features", "signature")
    with warehouse.hold():
        for batch in range(3):  # one held connection: the stage outlives each transaction, empty
            with warehouse.transaction() as cur:
                cur.bulk_insert("article_features", columns, [_feature_row(10 * batch + i) for i in range(5)])
                # Twice in one transaction: the second call does not load the first call's rows again.
                cur.bulk_insert("article_features", columns, [_feature_row(10 * batch + i) for i in range(5, 8)])
        assert len(made) == 1
    with warehouse.hold():  # a new connection: its first transaction makes the stage, and rolls back
        with pytest.raises(RuntimeError), warehouse.transaction() as cur:
            cur.bulk_insert("article_features", columns, [_feature_row(i) for i in range(40, 42)])
            raise RuntimeError("roll back")
        with warehouse.transaction() as cur:  # the stage went with that transaction: made again
            cur.bulk_insert("article_features", columns, [_feature_row(i) for i in range(30, 32)])
    assert len(made) == 3
    assert warehouse.scalar("SELECT COUNT(*) FROM article_features") == 3 * 8 + 2
