"""Versioned warehouse schema, written once for DuckDB and PostgreSQL.

Migrations only ever append: a deployed warehouse is upgraded by running the versions it lacks, in order,
each in its own transaction together with its row in ``schema_migrations``. The DDL sticks to the
subset both engines accept (TEXT, BIGINT, DOUBLE PRECISION, BOOLEAN, TIMESTAMPTZ, JSON kept as TEXT,
BYTEA, which DuckDB knows as an alias of BLOB).

Table ownership: ``feeds``, ``feed_entries``, ``article_urls``, ``ingest_runs`` and ``raw_articles`` are
written by ingest; ``articles``, ``article_duplicates``, ``events``, ``event_articles`` and
``transform_batches`` by transform; ``dead_letters`` by both. Column names of the public tables are a
contract for SQL users: add columns freely, never rename or drop.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]
    # Storage tuning that only DuckDB has (and PostgreSQL would refuse): run after ``statements``, on DuckDB only.
    duckdb_statements: tuple[str, ...] = ()
    # Indexes only PostgreSQL's planner uses (DuckDB joins and range-scans by hashing and zone maps, and pays for
    # every ART index on each write): run after ``statements``, on PostgreSQL only.
    postgres_statements: tuple[str, ...] = ()

    def statements_for(self, dialect: str) -> tuple[str, ...]:
        extra = {"duckdb": self.duckdb_statements, "postgres": self.postgres_statements}.get(dialect, ())
        return self.statements + extra


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "initial schema",
        (
            """CREATE TABLE IF NOT EXISTS feeds (
                feed_url TEXT PRIMARY KEY,
                name TEXT,
                language TEXT,
                tags TEXT,
                etag TEXT,
                last_modified TEXT,
                last_status INTEGER,
                last_polled_at TIMESTAMPTZ,
                last_success_at TIMESTAMPTZ,
                last_error TEXT,
                consecutive_failures INTEGER NOT NULL DEFAULT 0
            )""",
            """CREATE TABLE IF NOT EXISTS feed_entries (
                feed_url TEXT NOT NULL,
                entry_key TEXT NOT NULL,
                entry_url TEXT,
                guid TEXT,
                title TEXT,
                published_at TIMESTAMPTZ,
                article_id TEXT,
                outcome TEXT NOT NULL,
                reason TEXT,
                dead_letter_id TEXT,
                attempts INTEGER NOT NULL DEFAULT 1,
                first_seen_at TIMESTAMPTZ NOT NULL,
                last_attempt_at TIMESTAMPTZ NOT NULL,
                run_id TEXT,
                PRIMARY KEY (feed_url, entry_key)
            )""",
            """CREATE TABLE IF NOT EXISTS article_urls (
                url TEXT PRIMARY KEY,
                article_id TEXT NOT NULL,
                first_seen_at TIMESTAMPTZ NOT NULL
            )""",
            """CREATE TABLE IF NOT EXISTS ingest_runs (
                run_id TEXT NOT NULL,
                feed_url TEXT NOT NULL,
                interval_start TIMESTAMPTZ,
                interval_end TIMESTAMPTZ,
                started_at TIMESTAMPTZ NOT NULL,
                finished_at TIMESTAMPTZ,
                status TEXT NOT NULL,
                http_status INTEGER,
                error TEXT,
                entries_in_feed INTEGER NOT NULL DEFAULT 0,
                entries_seen INTEGER NOT NULL DEFAULT 0,
                new_articles INTEGER NOT NULL DEFAULT 0,
                duplicates INTEGER NOT NULL DEFAULT 0,
                dead_letters INTEGER NOT NULL DEFAULT 0,
                skipped INTEGER NOT NULL DEFAULT 0,
                bytes BIGINT NOT NULL DEFAULT 0,
                duration DOUBLE PRECISION,
                PRIMARY KEY (run_id, feed_url)
            )""",
            """CREATE TABLE IF NOT EXISTS articles (
                article_id TEXT PRIMARY KEY,
                url TEXT NOT NULL,
                canonical_url TEXT NOT NULL,
                title TEXT,
                text TEXT,
                description TEXT,
                author TEXT,
                published_at TIMESTAMPTZ,
                language TEXT,
                source TEXT,
                site_name TEXT,
                feed_url TEXT,
                feed_name TEXT,
                categories TEXT,
                tags TEXT,
                image TEXT,
                fetched_at TIMESTAMPTZ,
                content_hash TEXT,
                loaded_at TIMESTAMPTZ NOT NULL,
                load_order BIGINT NOT NULL,
                version INTEGER NOT NULL DEFAULT 1
            )""",
            "CREATE INDEX IF NOT EXISTS articles_load_order ON articles (load_order)",
            "CREATE INDEX IF NOT EXISTS articles_content_hash ON articles (content_hash)",
            "CREATE INDEX IF NOT EXISTS articles_published_at ON articles (published_at)",
            """CREATE TABLE IF NOT EXISTS article_duplicates (
                url TEXT PRIMARY KEY,
                article_id TEXT NOT NULL,
                duplicate_of TEXT NOT NULL,
                method TEXT NOT NULL,
                score DOUBLE PRECISION NOT NULL,
                feed_url TEXT,
                detected_at TIMESTAMPTZ NOT NULL
            )""",
            """CREATE TABLE IF NOT EXISTS events (
                event_id TEXT PRIMARY KEY,
                version INTEGER NOT NULL,
                title TEXT,
                summary TEXT,
                first_seen_at TIMESTAMPTZ,
                last_seen_at TIMESTAMPTZ,
                earliest_published_at TIMESTAMPTZ,
                article_count INTEGER NOT NULL DEFAULT 0,
                source_count INTEGER NOT NULL DEFAULT 0,
                sources TEXT,
                languages TEXT,
                keywords TEXT,
                entities TEXT,
                merged_into TEXT,
                content_digest TEXT NOT NULL,
                published_version INTEGER NOT NULL DEFAULT 0,
                updated_at TIMESTAMPTZ NOT NULL
            )""",
            """CREATE TABLE IF NOT EXISTS event_articles (
                event_id TEXT NOT NULL,
                article_id TEXT NOT NULL,
                added_at TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (event_id, article_id)
            )""",
            "CREATE INDEX IF NOT EXISTS event_articles_article ON event_articles (article_id)",
            """CREATE TABLE IF NOT EXISTS dead_letters (
                dead_letter_id TEXT PRIMARY KEY,
                stage TEXT NOT NULL,
                reason TEXT NOT NULL,
                message TEXT,
                retryable BOOLEAN NOT NULL DEFAULT FALSE,
                url TEXT,
                feed_url TEXT,
                attempts INTEGER NOT NULL DEFAULT 1,
                payload TEXT,
                created_at TIMESTAMPTZ NOT NULL,
                last_attempt_at TIMESTAMPTZ NOT NULL
            )""",
            """CREATE TABLE IF NOT EXISTS transform_batches (
                batch_id TEXT PRIMARY KEY,
                started_at TIMESTAMPTZ NOT NULL,
                finished_at TIMESTAMPTZ NOT NULL,
                messages INTEGER NOT NULL,
                new_articles INTEGER NOT NULL,
                duplicates INTEGER NOT NULL,
                events_changed INTEGER NOT NULL,
                dead_letters INTEGER NOT NULL
            )""",
        ),
    ),
    Migration(
        2,
        "raw article store, feed parse warnings per run",
        (
            # The durable raw record of every published article: the article message (extracted fields) and
            # the page as fetched, compressed. Written by ingest in the ledger transaction of the entry's
            # outcome; read by `newswire replay`; pruned after `raw_retention_days`.
            """CREATE TABLE IF NOT EXISTS raw_articles (
                article_id TEXT PRIMARY KEY,
                url TEXT NOT NULL,
                final_url TEXT NOT NULL,
                feed_url TEXT,
                http_status INTEGER,
                content_type TEXT,
                message TEXT NOT NULL,
                html BYTEA,
                html_encoding TEXT,
                html_bytes BIGINT,
                fetched_at TIMESTAMPTZ NOT NULL,
                stored_at TIMESTAMPTZ NOT NULL
            )""",
            "CREATE INDEX IF NOT EXISTS raw_articles_fetched_at ON raw_articles (fetched_at)",
            # What a feed document had wrong but could be worked around (truncated, bad dates, encoding).
            "ALTER TABLE ingest_runs ADD COLUMN warnings TEXT",
        ),
    ),
    Migration(
        3,
        "stored clustering features",
        (
            # What the story state needs of an article, computed once: a restart restores from these instead
            # of re-extracting features from the full text (several times cheaper). Versioned inside the JSON; a stale
            # version falls back to the text.
            """CREATE TABLE IF NOT EXISTS article_features (
                article_id TEXT PRIMARY KEY,
                features TEXT NOT NULL,
                signature TEXT NOT NULL
            )""",
        ),
    ),
    Migration(
        4,
        "uncompressed feature columns on DuckDB",
        (),
        # Signatures are base64 of random 64-bit hashes and features short JSON: DuckDB's string compression
        # gains little on them, yet at every checkpoint it re-analyses the table's partly filled row group, so
        # the cost of a checkpoint grew with the rows appended since the last full one: closing the file after
        # a transform batch grew slower as the warehouse grew, and without compression it stays an order of
        # magnitude cheaper. DuckDB cannot change a column's compression in place, hence the copy.
        duckdb_statements=(
            """CREATE TABLE article_features_v4 (
                article_id TEXT PRIMARY KEY,
                features TEXT USING COMPRESSION uncompressed NOT NULL,
                signature TEXT USING COMPRESSION uncompressed NOT NULL
            )""",
            "INSERT INTO article_features_v4 (article_id, features, signature) "
            "SELECT article_id, features, signature FROM article_features",
            "DROP TABLE article_features",
            "ALTER TABLE article_features_v4 RENAME TO article_features",
        ),
    ),
    Migration(
        5,
        "per-feed poll schedule",
        (
            # When each feed is polled next and why (ingest/schedule_policy.py decides, ingest/schedule_store.py
            # stores).
            # A row per feed ever configured: a feed removed from the list keeps its row (in_list FALSE) and its
            # history. claim_token/claim_shard/claimed_until: the newswire_ingest run and shard polling it now;
            # a claim past claimed_until is void, so a killed shard's feeds become due again. No secondary
            # index: the claim query reads every listed feed anyway, and DuckDB rewrites indexed rows on update.
            """CREATE TABLE IF NOT EXISTS feed_schedule (
                feed_url TEXT PRIMARY KEY,
                host TEXT NOT NULL,
                in_list BOOLEAN NOT NULL DEFAULT TRUE,
                min_interval_seconds DOUBLE PRECISION,
                interval_seconds DOUBLE PRECISION,
                next_poll_at TIMESTAMPTZ,
                last_polled_at TIMESTAMPTZ,
                last_outcome TEXT,
                last_reason TEXT,
                consecutive_failures INTEGER NOT NULL DEFAULT 0,
                permanent_failures INTEGER NOT NULL DEFAULT 0,
                last_new_entries_at TIMESTAMPTZ,
                hints TEXT,
                disabled_at TIMESTAMPTZ,
                disabled_reason TEXT,
                claim_token TEXT,
                claim_shard INTEGER,
                claimed_until TIMESTAMPTZ,
                added_at TIMESTAMPTZ NOT NULL,
                removed_at TIMESTAMPTZ
            )""",
        ),
    ),
    Migration(
        7,
        "indexes for reconciling the raw store with the warehouse",
        (),
        # newswire/reconcile.py pages through raw_articles by (stored_at, article_id) and probes articles and
        # article_duplicates by article_id for each candidate: with these, a reconcile pass is an ordered index
        # walk with index probes that stops when a page is full, not a sort of the whole raw store.
        postgres_statements=(
            "CREATE INDEX IF NOT EXISTS raw_articles_stored_at ON raw_articles (stored_at, article_id)",
            "CREATE INDEX IF NOT EXISTS article_duplicates_article ON article_duplicates (article_id)",
        ),
    ),
    Migration(
        8,
        "uncompressed feature columns on PostgreSQL",
        (),
        # The PostgreSQL side of version 4: a row of article_features is a few kilobytes of base64 of random
        # hashes and short JSON, long enough for TOAST to try pglz on every value of every insert, for little
        # or no gain. EXTERNAL keeps long values out of line without compressing them; rows stored before
        # keep their form (both read the same).
        postgres_statements=(
            "ALTER TABLE article_features ALTER COLUMN features SET STORAGE EXTERNAL, "
            "ALTER COLUMN signature SET STORAGE EXTERNAL",
        ),
    ),
)
