"""Transform's reads and writes: articles, duplicates, events and their members, batch records.

All writes of one batch go through one cursor inside one transaction, and every write is an upsert keyed by a
natural id, so replaying a batch (after a crash between warehouse commit and offset commit) changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from newswire.contracts import parse_iso
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


_ARTICLE_COLUMNS = (
    "a.article_id, a.url, a.canonical_url, a.title, a.text, a.description, a.language, a.source, "
    "a.published_at, a.fetched_at, a.content_hash, ea.event_id"
)
_ARTICLE_JOIN = "FROM articles a LEFT JOIN event_articles ea ON ea.article_id = a.article_id"


def _article(row: tuple[Any, ...]) -> StoredArticle:
    return StoredArticle(*row)


class TransformStore:
    """Queries over one open transaction."""

    def __init__(self, cur: Cursor) -> None:
        self.cur = cur

    def article(self, article_id: str) -> StoredArticle | None:
        row = self.cur.execute(
            f"SELECT {_ARTICLE_COLUMNS} {_ARTICLE_JOIN} WHERE a.article_id = ?", (article_id,)
        ).fetchone()
        return _article(row) if row else None

    def article_by_hash(self, content_hash: str) -> StoredArticle | None:
        row = self.cur.execute(
            f"SELECT {_ARTICLE_COLUMNS} {_ARTICLE_JOIN} WHERE a.content_hash = ? ORDER BY a.load_order LIMIT 1",
            (content_hash,),
        ).fetchone()
        return _article(row) if row else None

    def is_recorded_duplicate(self, url: str, article_id: str | None = None) -> str | None:
        """The original ``url`` was recorded as duplicating (for ``article_id``, when given), if any."""
        if article_id is None:
            return self.cur.execute("SELECT duplicate_of FROM article_duplicates WHERE url = ?", (url,)).scalar()
        return self.cur.execute(
            "SELECT duplicate_of FROM article_duplicates WHERE url = ? AND article_id = ?", (url, article_id)
        ).scalar()

    def articles_for_restore(self, since: datetime) -> Iterator[StoredArticle]:
        """Articles the in-memory story state must know about, in the order they were first loaded."""
        rows = self.cur.execute(
            f"SELECT {_ARTICLE_COLUMNS} {_ARTICLE_JOIN} "
            "WHERE a.published_at >= ? OR a.loaded_at >= ? ORDER BY a.load_order",
            (since, since),
        ).fetchall()
        for row in rows:
            yield _article(row)

    def next_load_order(self) -> int:
        return int(self.cur.execute("SELECT COALESCE(MAX(load_order), 0) + 1 FROM articles").scalar())

    def upsert_article(self, m: dict[str, Any], *, load_order: int, now: datetime) -> None:
        self.cur.execute(
            "INSERT INTO articles (article_id, url, canonical_url, title, text, description, author, "
            "published_at, language, source, site_name, feed_url, feed_name, categories, tags, image, "
            "fetched_at, content_hash, loaded_at, load_order, version) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1) "
            "ON CONFLICT (article_id) DO UPDATE SET title = excluded.title, text = excluded.text, "
            "description = excluded.description, author = excluded.author, "
            "published_at = excluded.published_at, language = excluded.language, source = excluded.source, "
            "site_name = excluded.site_name, categories = excluded.categories, tags = excluded.tags, "
            "image = excluded.image, fetched_at = excluded.fetched_at, content_hash = excluded.content_hash, "
            "version = articles.version + 1",
            (
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
                json.dumps(m.get("categories") or [], ensure_ascii=False),
                json.dumps(m.get("tags") or [], ensure_ascii=False),
                m.get("image"),
                parse_iso(m["fetched_at"]),
                m["content_hash"],
                now,
                load_order,
            ),
        )

    def record_duplicate(
        self,
        *,
        url: str,
        article_id: str,
        duplicate_of: str,
        method: str,
        score: float,
        feed_url: str | None,
        now: datetime,
    ) -> bool:
        """Record that ``url`` duplicates ``duplicate_of``; False when already recorded (a replay)."""
        existing = self.is_recorded_duplicate(url)
        if existing is not None:
            return False
        self.cur.execute(
            "INSERT INTO article_duplicates (url, article_id, duplicate_of, method, score, feed_url, detected_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (url) DO NOTHING",
            (url, article_id, duplicate_of, method, round(float(score), 4), feed_url, now),
        )
        return True

    def link_article(self, event_id: str, article_id: str, now: datetime) -> None:
        self.cur.execute(
            "INSERT INTO event_articles (event_id, article_id, added_at) VALUES (?, ?, ?) "
            "ON CONFLICT (event_id, article_id) DO NOTHING",
            (event_id, article_id, now),
        )

    def move_members(self, from_event: str, to_event: str) -> None:
        """Re-home the members of a merged event (insert then delete: both engines, no key clash)."""
        self.cur.execute(
            "INSERT INTO event_articles (event_id, article_id, added_at) "
            "SELECT ?, article_id, added_at FROM event_articles WHERE event_id = ? "
            "ON CONFLICT (event_id, article_id) DO NOTHING",
            (to_event, from_event),
        )
        self.cur.execute("DELETE FROM event_articles WHERE event_id = ?", (from_event,))

    def members(self, event_id: str) -> list[dict[str, Any]]:
        return self.cur.execute(
            "SELECT a.article_id, a.url, a.canonical_url, a.title, a.description, a.text, a.language, "
            "a.source, a.published_at, a.fetched_at FROM event_articles ea "
            "JOIN articles a ON a.article_id = ea.article_id WHERE ea.event_id = ? ORDER BY a.load_order",
            (event_id,),
        ).dicts()

    def event(self, event_id: str) -> dict[str, Any] | None:
        rows = self.cur.execute("SELECT * FROM events WHERE event_id = ?", (event_id,)).dicts()
        return rows[0] if rows else None

    def save_event(self, record: dict[str, Any], *, digest: str, now: datetime) -> bool:
        """Insert or update an event; bump its version only when its content changed. True if changed."""
        current = self.event(record["event_id"])
        if current is not None and current["content_digest"] == digest:
            return False
        version = 1 if current is None else int(current["version"]) + 1
        values = (
            record["event_id"],
            version,
            record["title"],
            record["summary"],
            record["first_seen_at"],
            record["last_seen_at"],
            record["earliest_published_at"],
            record["article_count"],
            record["source_count"],
            json.dumps(record["sources"], ensure_ascii=False),
            json.dumps(record["languages"]),
            json.dumps(record["keywords"], ensure_ascii=False),
            json.dumps(record["entities"], ensure_ascii=False),
            record["merged_into"],
            digest,
            now,
        )
        self.cur.execute(
            "INSERT INTO events (event_id, version, title, summary, first_seen_at, last_seen_at, "
            "earliest_published_at, article_count, source_count, sources, languages, keywords, entities, "
            "merged_into, content_digest, published_version, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?) "
            "ON CONFLICT (event_id) DO UPDATE SET version = excluded.version, title = excluded.title, "
            "summary = excluded.summary, first_seen_at = excluded.first_seen_at, "
            "last_seen_at = excluded.last_seen_at, earliest_published_at = excluded.earliest_published_at, "
            "article_count = excluded.article_count, source_count = excluded.source_count, "
            "sources = excluded.sources, languages = excluded.languages, keywords = excluded.keywords, "
            "entities = excluded.entities, merged_into = excluded.merged_into, "
            "content_digest = excluded.content_digest, updated_at = excluded.updated_at",
            values,
        )
        return True

    def unpublished_events(self, limit: int = 1000) -> list[dict[str, Any]]:
        """The outbox: event versions committed to the warehouse but not yet acknowledged by Kafka."""
        return self.cur.execute(
            "SELECT * FROM events WHERE version > published_version ORDER BY updated_at, event_id LIMIT ?",
            (limit,),
        ).dicts()

    def mark_published(self, versions: dict[str, int]) -> None:
        for event_id, version in versions.items():
            self.cur.execute(
                "UPDATE events SET published_version = ? WHERE event_id = ? AND published_version < ?",
                (version, event_id, version),
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
