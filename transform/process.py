"""One transform batch: decode, drop duplicates, cluster, load — all in one warehouse transaction.

Order of effects, chosen so that a crash at any point loses nothing and doubles nothing:
1. warehouse transaction (articles, duplicates, events with bumped versions, dead letters) commits;
2. the event outbox (versions committed but not yet acknowledged by Kafka) is published and marked;
3. only then the caller commits the consumer offsets.
A replay of the batch finds every article already stored with the same content hash and changes nothing.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from newswire import contracts
from newswire.contracts import iso, parse_iso
from newswire.deadletters import dead_letter_id, dead_letter_message, upsert_dead_letter
from newswire.messaging import Publisher
from newswire.warehouse import Warehouse, utcnow
from transform.consume import Incoming
from transform.documents import ArticleDoc
from transform.eventrecords import build_event_record, digest, event_message
from transform.store import TransformStore
from transform.stories import StoryState

log = logging.getLogger(__name__)


@dataclass
class BatchStats:
    messages: int = 0
    new_articles: int = 0
    updated_articles: int = 0
    replays: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    events_changed: int = 0
    events_published: int = 0
    duplicate_methods: dict[str, int] = field(default_factory=dict)

    def add(self, other: BatchStats) -> None:
        for name in (
            "messages",
            "new_articles",
            "updated_articles",
            "replays",
            "duplicates",
            "dead_letters",
            "events_changed",
            "events_published",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for k, v in other.duplicate_methods.items():
            self.duplicate_methods[k] = self.duplicate_methods.get(k, 0) + v


def _doc(m: dict[str, Any]) -> ArticleDoc:
    published = parse_iso(m.get("published_at")) or parse_iso(m["fetched_at"]) or datetime.now(UTC)
    return ArticleDoc(
        article_id=m["article_id"],
        title=m.get("title") or "",
        text=m["text"],
        language=m.get("language"),
        published_at=published,
        source=m["source"],
        url=m["canonical_url"],
    )


class BatchProcessor:
    """Applies batches to the warehouse; keeps the story state between batches of one process."""

    def __init__(self, warehouse: Warehouse, publisher: Publisher) -> None:
        self.warehouse = warehouse
        self.publisher = publisher
        self._state: StoryState | None = None

    def process(self, batch: list[Incoming], batch_id: str) -> BatchStats:
        stats = BatchStats(messages=len(batch))
        started = utcnow()
        dead_letters: list[dict[str, Any]] = []
        try:
            with self.warehouse.transaction() as cur:
                store = TransformStore(cur)
                if self._state is None:
                    self._state = StoryState.restore(store)
                state = self._state
                now = utcnow()
                touched: set[str] = set()
                merged: dict[str, str] = {}
                for item in batch:
                    if item.error is not None or item.message is None:
                        dl = self._dead_letter(item)
                        upsert_dead_letter(cur, dl, now)
                        dead_letters.append(dl)
                        stats.dead_letters += 1
                        continue
                    self._apply(store, state, item.message, now, stats, touched, merged)
                stats.events_changed = self._save_events(store, state, touched, merged, now)
                store.record_batch(
                    batch_id,
                    {
                        "started_at": started,
                        "finished_at": utcnow(),
                        "messages": stats.messages,
                        "new_articles": stats.new_articles,
                        "duplicates": stats.duplicates,
                        "events_changed": stats.events_changed,
                        "dead_letters": stats.dead_letters,
                    },
                )
        except BaseException:
            # The in-memory state may hold articles the rolled-back transaction never stored.
            self._state = None
            raise
        for dl in dead_letters:
            self.publisher.send(contracts.DEAD_LETTERS, dl["dead_letter_id"], dl)
        self.publisher.confirm()
        stats.events_published = self.publish_outbox()
        return stats

    def _apply(
        self,
        store: TransformStore,
        state: StoryState,
        m: dict[str, Any],
        now: datetime,
        stats: BatchStats,
        touched: set[str],
        merged: dict[str, str],
    ) -> None:
        article_id = m["article_id"]
        existing = store.article(article_id)
        if existing is not None:
            if existing.content_hash == m["content_hash"]:
                if m["url"] not in (existing.url, existing.canonical_url):
                    # Two ingest processes raced on one article reached through different URLs.
                    self._duplicate(store, {**m, "canonical_url": m["url"]}, article_id, "article_id", 1.0, now, stats)
                    return
                stats.replays += 1  # redelivery: at-least-once from ingest, or a replayed batch
                return
            # Same URL, new text: a new version of the same article, same event.
            store.upsert_article(m, load_order=store.next_load_order(), now=now)
            stats.updated_articles += 1
            if existing.event_id:
                touched.add(existing.event_id)
            return
        if store.is_recorded_duplicate(m["canonical_url"], article_id):
            stats.replays += 1
            return
        same_text = store.article_by_hash(m["content_hash"])
        if same_text is not None:
            self._duplicate(store, m, same_text.article_id, "content_hash", 1.0, now, stats)
            return
        doc = _doc(m)
        near = state.near_duplicate(doc)
        if near is not None:
            self._duplicate(store, m, near.duplicate_of, near.method, near.score, now, stats)
            return
        store.upsert_article(m, load_order=store.next_load_order(), now=now)
        stats.new_articles += 1
        assignment = state.assign(doc)
        store.link_article(assignment.event_id, article_id, now)
        touched.add(assignment.event_id)
        for gone in assignment.merged:
            store.move_members(gone, assignment.event_id)
            merged[gone] = assignment.event_id
            touched.discard(gone)

    def _duplicate(
        self,
        store: TransformStore,
        m: dict[str, Any],
        original: str,
        method: str,
        score: float,
        now: datetime,
        stats: BatchStats,
    ) -> None:
        if store.record_duplicate(
            url=m["canonical_url"],
            article_id=m["article_id"],
            duplicate_of=original,
            method=method,
            score=score,
            feed_url=m.get("feed_url"),
            now=now,
        ):
            stats.duplicates += 1
            stats.duplicate_methods[method] = stats.duplicate_methods.get(method, 0) + 1

    def _save_events(
        self, store: TransformStore, state: StoryState, touched: set[str], merged: dict[str, str], now: datetime
    ) -> int:
        changed = 0
        for gone, survivor in sorted(merged.items()):
            row = store.event(gone)
            if row is None:
                continue
            record = {
                **{k: row[k] for k in ("event_id", "title", "summary", "first_seen_at", "last_seen_at")},
                "earliest_published_at": row["earliest_published_at"],
                "article_count": 0,
                "source_count": 0,
                "sources": [],
                "languages": [],
                "keywords": [],
                "entities": {},
                "articles": [],
                "merged_into": survivor,
            }
            changed += store.save_event(record, digest=digest(record), now=now)
        for event_id in sorted(touched - merged.keys()):
            members = store.members(event_id)
            if not members:
                continue
            profile = state.profile(event_id)
            record = build_event_record(
                event_id,
                members,
                representative_id=profile.representative_article_id,
                keywords=profile.keywords,
                entities={
                    "places": profile.places,
                    "people": profile.people,
                    "organisations": profile.organisations,
                },
            )
            changed += store.save_event(record, digest=digest(record), now=now)
        return changed

    def publish_outbox(self) -> int:
        """Publish every committed-but-unpublished event version; safe to call any time, from any process."""
        total = 0
        while True:
            with self.warehouse.transaction() as cur:
                store = TransformStore(cur)
                rows = store.unpublished_events(limit=500)
                messages = [event_message(row, _articles(store, row)) for row in rows]
            if not messages:
                return total
            for message in messages:
                self.publisher.send(contracts.EVENTS, message["event_id"], message)
            self.publisher.confirm()
            with self.warehouse.transaction() as cur:
                TransformStore(cur).mark_published({m["event_id"]: m["version"] for m in messages})
            total += len(messages)

    def _dead_letter(self, item: Incoming) -> dict[str, Any]:
        reason = item.error.reason if item.error else "invalid_message"
        details = item.error.details if item.error else "no message"
        return dead_letter_message(
            dead_letter_id=dead_letter_id(item.topic, str(item.partition), str(item.offset)),
            stage="decode",
            reason=reason,
            message=details,
            retryable=False,
            url=None,
            feed_url=None,
            payload={
                "topic": item.topic,
                "partition": item.partition,
                "offset": item.offset,
                "key": item.key,
                "value_base64": base64.b64encode(item.raw or b"").decode("ascii"),
            },
            created_at=utcnow(),
        )


def _articles(store: TransformStore, row: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "article_id": m["article_id"],
            "url": m["canonical_url"] or m["url"],
            "source": m["source"] or "",
            "title": m["title"],
            "language": m["language"],
            "published_at": iso(m["published_at"]),
        }
        for m in store.members(row["event_id"])
    ]
