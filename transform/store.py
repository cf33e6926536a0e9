"""Transform's reads and writes: articles, duplicates, events and their members, batch records.

A batch reads what it needs up front (one IN query per kind, not one query per message) and writes in bulk
(each kind of row as one table: NumPy columns into DuckDB, ``COPY`` into PostgreSQL, then one upsert), all
through one cursor inside one transaction. Every write is an upsert keyed by a
natural id, so replaying a batch (after a crash between warehouse commit and offset commit) changes nothing.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from newswire.contracts import parse_iso
from newswire.contracts.messages import ArticleMessage
from newswire.warehouse import Cursor


@dataclass(frozen=True)
class StoredArticle:
    article_id: str
    url: str
    canonical_url: str
    title: str
    text: str
    description: str | None
    language: str | None
    source: str
    published_at: datetime | None
    fetched_at: datetime | None
    content_hash: str
    event_id: str | None
    loaded_at: datetime | None = None


@dataclass(frozen=True)
class KnownArticle:
    """The little a batch needs to know about an already stored article."""

    article_id: str
    url: str
    canonical_url: str
    content_hash: str
    event_id: str | None


_ARTICLE_COLUMNS = (
    "a.article_id, a.url, a.canonical_url, a.title, a.text, a.description, a.language, a.source, "
    "a.published_at, a.fetched_at, a.content_hash, ea.event_id, a.loaded_at"
)
_ARTICLE_JOIN = "FROM articles a LEFT JOIN event_articles ea ON ea.article_id = a.article_id"
ARTICLE_INSERT = (
    "INSERT INTO articles (article_id, url, canonical_url, title, text, description, author, published_at, "
    "language, source, site_name, feed_url, feed_name, categories, tags, image, fetched_at, content_hash, "
    "loaded_at, load_order, version)"
)
_ARTICLE_FIELDS = tuple(ARTICLE_INSERT[ARTICLE_INSERT.index("(") + 1 : -1].split(", "))
_ARTICLE_UPDATE = (
    "ON CONFLICT (article_id) DO UPDATE SET title = excluded.title, text = excluded.text, "
    "description = excluded.description, author = excluded.author, published_at = excluded.published_at, "
    "language = excluded.language, source = excluded.source, site_name = excluded.site_name, "
    "categories = excluded.categories, tags = excluded.tags, image = excluded.image, "
    "fetched_at = excluded.fetched_at, content_hash = excluded.content_hash, version = articles.version + 1"
)
_EVENT_COLUMNS = (
    "event_id", "version", "title", "summary", "first_seen_at", "last_seen_at", "earliest_published_at",
    "article_count", "source_count", "sources", "languages", "keywords", "entities", "merged_into",
    "content_digest", "published_version", "updated_at",
)  # fmt: skip


# One encoder of each kind for every row, instead of the new encoder ``json.dumps`` builds for each call with
# options: the same text (``json.dumps(value, ensure_ascii=False)`` and ``json.dumps(value)``).
_json_text = json.JSONEncoder(ensure_ascii=False).encode
_json_ascii = json.JSONEncoder().encode


def _json_list(values: list[Any] | None) -> str:
    """``json.dumps(values or [], ensure_ascii=False)``; most articles have no categories or tags: no encoder."""
    return _json_text(values) if values else "[]"


def article_row(m: ArticleMessage, *, load_order: int, now: datetime) -> tuple[Any, ...]:
    """An ``articles`` row from an article message, in ``ARTICLE_INSERT`` column order."""
    return (
        m["article_id"],
        m["url"],
        m["canonical_url"],
        m["title"],
        m["text"],
        m.get("description"),
        m.get("author"),
        parse_iso(m.get("published_at")),
        m.get("language"),
        m["source"],
        m.get("site_name"),
        m["feed_url"],
        m.get("feed_name"),
        _json_list(m.get("categories")),
        _json_list(m.get("tags")),
        m.get("image"),
        parse_iso(m["fetched_at"]),
        m["content_hash"],
        now,
        load_order,
        1,
    )


class TransformStore:
    """Queries over one open transaction."""

    def __init__(self, cur: Cursor) -> None:
        self.cur = cur

    # --- reads for a batch -------------------------------------------------------------------------------

    def known_by_id(self, article_ids: Sequence[str]) -> dict[str, KnownArticle]:
        rows = self.cur.select_in(
            "SELECT a.article_id, a.url, a.canonical_url, a.content_hash, ea.event_id "
            "FROM articles a LEFT JOIN event_articles ea ON ea.article_id = a.article_id "
            "WHERE a.article_id IN {in}",
            article_ids,
        )
        return {r["article_id"]: KnownArticle(**r) for r in rows}

    def first_by_hash(self, hashes: Sequence[str]) -> dict[str, str]:
        """For each content hash, the earliest-loaded article carrying it."""
        rows = self.cur.select_in(
            "SELECT content_hash, article_id, load_order FROM articles WHERE content_hash IN {in}", hashes
        )
        first: dict[str, tuple[int, str]] = {}
        for r in rows:
            current = first.get(r["content_hash"])
            if current is None or r["load_order"] < current[0]:
                first[r["content_hash"]] = (r["load_order"], r["article_id"])
        return {h: aid for h, (_, aid) in first.items()}

    def recorded_duplicates(self, urls: Sequence[str]) -> set[tuple[str, str]]:
        """(url, article_id) pairs already recorded as duplicates."""
        rows = self.cur.select_in("SELECT url, article_id FROM article_duplicates WHERE url IN {in}", urls)
        return {(r["url"], r["article_id"]) for r in rows}

    def next_load_order(self) -> int:
        return int(self.cur.execute("SELECT COALESCE(MAX(load_order), 0) + 1 FROM articles").scalar())

    def articles_for_restore(self, since: datetime, limit: int | None = None) -> Iterator[StoredArticle]:
        """Articles the in-memory story state must know about (those in an event), in the order they were first
        loaded; with ``limit``, only the last ``limit`` of them (the state keeps no more)."""
        newest = f"LIMIT {int(limit)}" if limit is not None else ""
        sql = (
            f"SELECT * FROM (SELECT {_ARTICLE_COLUMNS}, a.load_order {_ARTICLE_JOIN} "
            "WHERE (a.published_at >= ? OR a.loaded_at >= ?) AND ea.event_id IS NOT NULL "
            f"ORDER BY a.load_order DESC {newest}) restored ORDER BY load_order"
        )
        for row in self.cur.execute(sql, (since, since)).fetchall():
            yield StoredArticle(*row[:13])

    def articles_where(self, where: str, params: Any) -> list[tuple[int, StoredArticle, int]]:
        """``(load_order, article, version)`` of the articles matching ``where`` (over ``a`` and ``ea``), in load
        order."""
        sql = f"SELECT {_ARTICLE_COLUMNS}, a.load_order, a.version {_ARTICLE_JOIN} {where} ORDER BY a.load_order"
        rows = self.cur.execute(sql, params).fetchall()
        return [(int(row[-2]), StoredArticle(*row[:-2]), int(row[-1])) for row in rows]

    def features_of(self, article_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """Stored (features, signature) JSON of these articles (those a restore reads)."""
        rows = self.cur.select_in(
            "SELECT article_id, features, signature FROM article_features WHERE article_id IN {in}", article_ids
        )
        return {r["article_id"]: (r["features"], r["signature"]) for r in rows}

    def stored_features(self, article_ids: Sequence[str]) -> dict[str, str]:
        """Stored features JSON of these articles, without their near-duplicate signatures (a rebuild's reads)."""
        rows = self.cur.select_in(
            "SELECT article_id, features FROM article_features WHERE article_id IN {in}", article_ids
        )
        return {r["article_id"]: r["features"] for r in rows}

    def insert_features(self, rows: Sequence[tuple[str, str, str]]) -> None:
        """Rows of (article_id, features JSON, signature JSON)."""
        self.cur.bulk_insert(
            "article_features",
            ("article_id", "features", "signature"),
            rows,
            "ON CONFLICT (article_id) DO UPDATE SET features = excluded.features, signature = excluded.signature",
        )

    def members_of(self, event_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
        """Member articles of each event, in load order (text truncated: only summaries need it)."""
        rows = self.cur.select_in(
            "SELECT ea.event_id, a.article_id, a.url, a.canonical_url, a.title, a.description, "
            "SUBSTR(a.text, 1, 1200) AS text, a.language, a.source, a.published_at, a.fetched_at, a.load_order "
            "FROM event_articles ea JOIN articles a ON a.article_id = ea.article_id WHERE ea.event_id IN {in}",
            sorted(set(event_ids)),
        )
        grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in sorted(rows, key=lambda r: r["load_order"]):
            grouped[r.pop("event_id")].append(r)
        return dict(grouped)

    def events(self, event_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        rows = self.cur.select_in("SELECT * FROM events WHERE event_id IN {in}", sorted(set(event_ids)))
        return {r["event_id"]: r for r in rows}

    # --- writes for a batch ------------------------------------------------------------------------------

    def insert_articles(self, rows: Sequence[tuple[Any, ...]]) -> None:
        self.cur.bulk_insert("articles", _ARTICLE_FIELDS, rows, "ON CONFLICT (article_id) DO NOTHING")

    def update_article(self, row: tuple[Any, ...]) -> None:
        """A new version of a stored article (same URL, changed text)."""
        self.cur.insert_rows(ARTICLE_INSERT, [row], _ARTICLE_UPDATE)

    def insert_duplicates(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Rows of (url, article_id, duplicate_of, method, score, feed_url, detected_at)."""
        self.cur.bulk_insert(
            "article_duplicates",
            ("url", "article_id", "duplicate_of", "method", "score", "feed_url", "detected_at"),
            rows,
            "ON CONFLICT (url) DO NOTHING",
        )

    def link_articles(self, rows: Sequence[tuple[str, str, datetime]]) -> None:
        """Rows of (event_id, article_id, added_at)."""
        columns = ("event_id", "article_id", "added_at")
        self.cur.bulk_insert("event_articles", columns, rows, "ON CONFLICT (event_id, article_id) DO NOTHING")

    def move_members(self, from_event: str, to_event: str) -> None:
        """Re-home the members of a merged event (insert then delete: both engines, no key clash)."""
        self.cur.execute(
            "INSERT INTO event_articles (event_id, article_id, added_at) "
            "SELECT ?, article_id, added_at FROM event_articles WHERE event_id = ? "
            "ON CONFLICT (event_id, article_id) DO NOTHING",
            (to_event, from_event),
        )
        self.cur.execute("DELETE FROM event_articles WHERE event_id = ?", (from_event,))

    def save_events(
        self, records: Sequence[tuple[dict[str, Any], str]], current: dict[str, dict[str, Any]], now: datetime
    ) -> dict[str, int]:
        """Upsert (record, digest) pairs whose digest changed, bumping their version; return the versions saved."""
        rows = []
        for record, digest in records:
            existing = current.get(record["event_id"])
            if existing is not None and existing["content_digest"] == digest:
                continue
            version = 1 if existing is None else int(existing["version"]) + 1
            published = 0 if existing is None else int(existing["published_version"])
            rows.append(
                (
                    record["event_id"],
                    version,
                    record["title"],
                    record["summary"],
                    record["first_seen_at"],
                    record["last_seen_at"],
                    record["earliest_published_at"],
                    record["article_count"],
                    record["source_count"],
                    _json_text(record["sources"]),
                    _json_ascii(record["languages"]),
                    _json_text(record["keywords"]),
                    _json_text(record["entities"]),
                    record["merged_into"],
                    digest,
                    published,
                    now,
                )
            )
        self.cur.bulk_insert(
            "events",
            _EVENT_COLUMNS,
            rows,
            "ON CONFLICT (event_id) DO UPDATE SET version = excluded.version, title = excluded.title, "
            "summary = excluded.summary, first_seen_at = excluded.first_seen_at, "
            "last_seen_at = excluded.last_seen_at, earliest_published_at = excluded.earliest_published_at, "
            "article_count = excluded.article_count, source_count = excluded.source_count, "
            "sources = excluded.sources, languages = excluded.languages, keywords = excluded.keywords, "
            "entities = excluded.entities, merged_into = excluded.merged_into, "
            "content_digest = excluded.content_digest, updated_at = excluded.updated_at",
        )
        return {row[0]: row[1] for row in rows}

    # --- the event outbox --------------------------------------------------------------------------------

    def unpublished_events(self, limit: int = 1000) -> list[dict[str, Any]]:
        """Event versions committed to the warehouse but not yet acknowledged by Kafka."""
        return self.cur.execute(
            "SELECT * FROM events WHERE version > published_version ORDER BY updated_at, event_id LIMIT ?",
            (limit,),
        ).dicts()

    def mark_published(self, versions: dict[str, int]) -> None:
        """Record these event versions as acknowledged by Kafka (a version never goes back).

        The pairs go as two list parameters, zipped by the two ``UNNEST`` of one select (both engines): binding
        two parameters per event in a ``VALUES`` list cost several times the update itself on DuckDB.
        """
        if not versions:
            return
        items = sorted(versions.items())
        self.cur.execute(
            "UPDATE events SET published_version = v.version FROM (SELECT UNNEST(CAST(? AS TEXT[])) AS event_id, "
            "UNNEST(CAST(? AS INTEGER[])) AS version) AS v "
            "WHERE events.event_id = v.event_id AND events.published_version < v.version",
            ([event_id for event_id, _ in items], [version for _, version in items]),
        )

    def record_batch(self, batch_id: str, stats: dict[str, Any]) -> None:
        self.cur.execute(
            "INSERT INTO transform_batches (batch_id, started_at, finished_at, messages, new_articles, "
            "duplicates, events_changed, dead_letters) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (batch_id) DO NOTHING",
            (
                batch_id,
                stats["started_at"],
                stats["finished_at"],
                stats["messages"],
                stats["new_articles"],
                stats["duplicates"],
                stats["events_changed"],
                stats["dead_letters"],
            ),
        )
