"""One transform batch: decode, drop duplicates, cluster, load — all in one warehouse transaction.

Order of effects, chosen so that a crash at any point loses nothing and doubles nothing:
1. warehouse transaction (articles, duplicates, events with bumped versions, dead letters) commits;
2. the event outbox (versions committed but not yet acknowledged by Kafka) is published and marked;
3. only then the caller commits the consumer offsets.
A replay of the batch finds every article already stored with the same content hash and changes nothing.

The batch reads what it needs up front and decides in memory, so its cost is a handful of statements, not
several per message.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from newswire import contracts
from newswire.contracts import iso, parse_iso
from newswire.contracts.messages import ArticleMessage
from newswire.deadletters import (
    DeadLetterReason,
    DeadLetterStage,
    dead_letter_id,
    dead_letter_message,
    send_dead_letter,
    upsert_dead_letter,
)
from newswire.embedding import Embedding, embed_articles, encoder_for, from_message
from newswire.errors import MessageTooLarge
from newswire.faults import fault_point
from newswire.langid import detect_language
from newswire.messaging import Publisher
from newswire.warehouse import Cursor, Warehouse, utcnow
from transform.carried import FIELD as CARRIED_FIELD
from transform.carried import Carried, read_carried
from transform.clustering import ClusteringConfig
from transform.consumer import Incoming
from transform.documents import ArticleDoc
from transform.eventrecords import (
    digests,
    encode_event,
    event_message,
    final_survivors,
    merged_event_record,
    profiled_event_record,
)
from transform.gcfreeze import FREEZER
from transform.store import KnownArticle, TransformStore, article_row
from transform.stories import StoryState

log = logging.getLogger(__name__)

_OUTBOX_PAGE = 1000  # event versions published per read of the outbox


@dataclass(frozen=True)
class SavedEvent:
    """An event version a batch saved, and its member articles in that version (rows of ``members_of``)."""

    version: int
    members: list[dict[str, Any]]


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
    features_carried: int = 0  # new articles clustered with the features their message carried
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
            "features_carried",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for k, v in other.duplicate_methods.items():
            self.duplicate_methods[k] = self.duplicate_methods.get(k, 0) + v


def _doc(m: ArticleMessage, embedding: Embedding | None = None) -> ArticleDoc:
    published = parse_iso(m.get("published_at")) or parse_iso(m["fetched_at"]) or datetime.now(UTC)
    return ArticleDoc(
        article_id=m["article_id"],
        title=m.get("title") or "",
        text=m["text"],
        language=m.get("language"),
        published_at=published,
        source=m["source"],
        url=m["canonical_url"],
        embedding=embedding or from_message(m.get("embedding")),
        carried=m.get(CARRIED_FIELD),
    )


def canonical_order(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages by publication time (else fetch time), then id: the order arrivals are clustered in.

    Online clustering depends on order; partitions interleave differently from one run to the next, so a
    batch sorted this way gives the same events whichever order its messages arrived in.
    """
    return sorted(messages, key=lambda m: (parse_iso(m.get("published_at") or m["fetched_at"]), m["article_id"]))


def with_language(m: ArticleMessage) -> ArticleMessage:
    """The message with a detected language when it declares none (older messages, feeds without one)."""
    if m.get("language"):
        return m
    return {**m, "language": detect_language(m.get("title"), m.get("text"))}


@dataclass
class _BatchView:
    """What the batch knows, prefetched from the warehouse and updated as it decides."""

    by_id: dict[str, KnownArticle]
    by_hash: dict[str, str]
    duplicates: set[tuple[str, str]]
    next_order: int
    now: datetime
    new_rows: list[tuple[Any, ...]] = field(default_factory=list)
    updated_rows: list[tuple[Any, ...]] = field(default_factory=list)
    duplicate_rows: list[tuple[Any, ...]] = field(default_factory=list)
    links: list[tuple[str, str, datetime]] = field(default_factory=list)
    merges: list[tuple[str, str]] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)
    features: dict[str, tuple[str, str]] = field(default_factory=dict)

    def order(self) -> int:
        self.next_order += 1
        return self.next_order - 1


class BatchProcessor:
    """Applies batches to the warehouse; keeps the story state between batches of one process."""

    def __init__(
        self,
        warehouse: Warehouse,
        publisher: Publisher,
        *,
        state_max_articles: int | None = None,
        config: ClusteringConfig | None = None,
    ) -> None:
        self.warehouse = warehouse
        self.publisher = publisher
        self.state_max_articles = state_max_articles
        self.config = config or ClusteringConfig()
        self._state: StoryState | None = None

    def process(
        self, batch: list[Incoming], batch_id: str, *, fence: Callable[[Cursor], None] | None = None
    ) -> BatchStats:
        """Apply one batch in one warehouse transaction. ``fence`` (the run lock's) runs inside it just before
        it commits: a run that lost its lock during the batch rolls the batch back instead of committing it
        beside the run that took the lock over.
        """
        with self.warehouse.hold():
            stats = self._process(batch, batch_id, fence)
        FREEZER.after_batch()
        return stats

    def _process(self, batch: list[Incoming], batch_id: str, fence: Callable[[Cursor], None] | None) -> BatchStats:
        stats = BatchStats(messages=len(batch))
        started = utcnow()
        dead_letters: list[dict[str, Any]] = []
        try:
            with self.warehouse.transaction() as cur:
                store = TransformStore(cur)
                if self._state is None:
                    self._state = StoryState.restore(store, self.config, max_articles=self.state_max_articles)
                now = utcnow()
                messages = canonical_order(
                    [with_language(item.message) for item in batch if item.error is None and item.message is not None]
                )
                view = _BatchView(
                    by_id=store.known_by_id([m["article_id"] for m in messages]),
                    by_hash=store.first_by_hash([m["content_hash"] for m in messages]),
                    duplicates=store.recorded_duplicates([u for m in messages for u in (m["canonical_url"], m["url"])]),
                    next_order=store.next_load_order(),
                    now=now,
                )
                for item in batch:
                    if item.error is not None or item.message is None:
                        dl = self._dead_letter(item)
                        upsert_dead_letter(cur, dl, now)
                        dead_letters.append(dl)
                        stats.dead_letters += 1
                embeddings = self._missing_embeddings(messages, view)
                for message in messages:
                    self._apply(self._state, view, message, stats, embeddings.get(message["article_id"]))
                self._write(store, view)
                fault_point("mid_batch")  # test-only: writes done, transaction not committed
                saved = self._save_events(store, self._state, view)
                stats.events_changed = len(saved)
                self._state.evict()
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
                if fence is not None:
                    fence(cur)
        except BaseException:
            # The in-memory state may hold articles the rolled-back transaction never stored.
            self._state = None
            FREEZER.thaw()  # the dropped state was frozen: let any cycle in it be collected now
            raise
        for dl in dead_letters:
            send_dead_letter(self.publisher, dl)
        self.publisher.confirm()
        stats.events_published = self.publish_outbox(saved)
        return stats

    def _missing_embeddings(self, messages: list[dict[str, Any]], view: _BatchView) -> dict[str, Embedding]:
        """The configured model's embedding of each of the batch's new articles: the one its message carries,
        decoded here once (the article's document takes it from here instead of decoding it again), else
        computed, for all the messages that have none of that model (messages from before embeddings, another
        model) in one batch: several times faster than the clusterer embedding them one by one."""
        model_id = self._state.clusterer.model_id if self._state is not None else None
        if model_id is None:
            return {}
        found: dict[str, Embedding] = {}
        missing = []
        for m in messages:
            if m["article_id"] in view.by_id:
                continue
            carried = from_message(m.get("embedding"))
            if carried is not None and carried.model == model_id:
                found[m["article_id"]] = carried
            else:
                missing.append(m)
        if not missing:  # the usual case: ingest sent them; the encoder is not even loaded in this process
            return found
        encoder = encoder_for(self.config.embedding_model)
        assert encoder is not None
        vectors = embed_articles(encoder, [(m.get("title") or "", m["text"]) for m in missing])
        found.update({m["article_id"]: vector for m, vector in zip(missing, vectors, strict=True)})
        return found

    def _apply(
        self,
        state: StoryState,
        view: _BatchView,
        m: dict[str, Any],
        stats: BatchStats,
        embedding: Embedding | None = None,
    ) -> None:
        article_id = m["article_id"]
        existing = view.by_id.get(article_id)
        if existing is not None:
            if existing.content_hash == m["content_hash"]:
                if m["url"] not in (existing.url, existing.canonical_url):
                    # Two ingest processes raced on one article reached through different URLs.
                    self._duplicate(view, m, m["url"], article_id, "article_id", 1.0, stats)
                else:
                    stats.replays += 1  # redelivery: at-least-once from ingest, or a replayed batch
                return
            # Same URL, new text: a new version of the same article, in the same event.
            view.updated_rows.append(article_row(m, load_order=view.order(), now=view.now))
            view.by_id[article_id] = KnownArticle(
                article_id, existing.url, existing.canonical_url, m["content_hash"], existing.event_id
            )
            stats.updated_articles += 1
            if existing.event_id:
                view.touched.add(existing.event_id)
            return
        if (m["canonical_url"], article_id) in view.duplicates:
            stats.replays += 1  # this message was already recorded as a duplicate
            return
        original = view.by_hash.get(m["content_hash"])
        if original is not None:
            self._duplicate(view, m, m["canonical_url"], original, "content_hash", 1.0, stats)
            return
        doc = _doc(m, embedding)
        # The carried string is decoded, and its input digest checked, once for both of its readers.
        carried = read_carried(doc.carried, title=doc.title, text=doc.text, language=doc.language)
        near = state.near_duplicate(doc, carried)
        if near is not None:
            self._duplicate(view, m, m["canonical_url"], near.duplicate_of, near.method, near.score, stats)
            return
        view.new_rows.append(article_row(m, load_order=view.order(), now=view.now))
        view.by_hash[m["content_hash"]] = article_id
        stats.new_articles += 1
        if self._prime_carried(state, doc, carried):
            stats.features_carried += 1
        assignment = state.assign(doc)
        view.features[article_id] = state.exported.pop(article_id)
        view.by_id[article_id] = KnownArticle(
            article_id, m["url"], m["canonical_url"], m["content_hash"], assignment.event_id
        )
        view.links.append((assignment.event_id, article_id, view.now))
        view.touched.add(assignment.event_id)
        for gone in assignment.merged:
            view.merges.append((gone, assignment.event_id))
            view.touched.discard(gone)

    def _prime_carried(self, state: StoryState, doc: ArticleDoc, carried: Carried | None) -> bool:
        """Hand the clusterer the features the message carries when they are of this configuration and of
        exactly this title, text and language (:mod:`transform.carried`); else it computes them."""
        features = None if carried is None else carried.features(self.config.title_weight)
        if features is None:
            return False
        state.clusterer.prime_text_features(doc, features)
        return True

    def _duplicate(
        self,
        view: _BatchView,
        m: dict[str, Any],
        url: str,
        original: str,
        method: str,
        score: float,
        stats: BatchStats,
    ) -> None:
        key = (url, m["article_id"])
        if key in view.duplicates:
            stats.replays += 1
            return
        view.duplicates.add(key)
        view.duplicate_rows.append(
            (url, m["article_id"], original, method, round(float(score), 4), m.get("feed_url"), view.now)
        )
        stats.duplicates += 1
        stats.duplicate_methods[method] = stats.duplicate_methods.get(method, 0) + 1

    @staticmethod
    def _write(store: TransformStore, view: _BatchView) -> None:
        store.insert_articles(view.new_rows)
        for row in view.updated_rows:
            store.update_article(row)
        store.insert_duplicates(view.duplicate_rows)
        store.link_articles(view.links)
        store.insert_features([(aid, *exported) for aid, exported in view.features.items()])
        for gone, survivor in view.merges:
            store.move_members(gone, survivor)

    @staticmethod
    def _save_events(store: TransformStore, state: StoryState, view: _BatchView) -> dict[str, SavedEvent]:
        """Save the versions of the events the batch changed; return each one's version and members (those of
        an event merged away: none), as the batch's transaction leaves them, for :meth:`publish_outbox`."""
        merged = final_survivors(view.merges)
        live = sorted(view.touched - merged.keys())
        current = store.events([*live, *merged])
        members = store.members_of(live)
        records: list[dict[str, Any]] = []
        for gone, survivor in sorted(merged.items()):
            row = current.get(gone)
            if row is None:
                continue
            records.append(merged_event_record(row, survivor))
        for event_id in live:
            if not members.get(event_id):
                continue
            records.append(profiled_event_record(event_id, members[event_id], state.profile(event_id)))
        saved = store.save_events(digests(records, current), current, view.now)
        return {event_id: SavedEvent(version, members.get(event_id, [])) for event_id, version in saved.items()}

    def publish_outbox(self, saved: dict[str, SavedEvent] | None = None) -> int:
        """Publish every committed-but-unpublished event version; safe to call any time, from any process.

        Pages of ``_OUTBOX_PAGE`` versions; a page shorter than that was the last one, so no further read is
        made for nothing (a version another process commits meanwhile is left to its own publish, or the next).
        ``saved``: the versions the caller's batch just committed, with their members as its transaction left
        them; those are not read again (a version found in the outbox with another number is).
        """
        total = 0
        saved = saved or {}
        while True:
            with self.warehouse.transaction() as cur:
                store = TransformStore(cur)
                rows = store.unpublished_events(limit=_OUTBOX_PAGE)
                known = {
                    r["event_id"]: saved[r["event_id"]].members
                    for r in rows
                    if r["event_id"] in saved and saved[r["event_id"]].version == r["version"]
                }
                members = {**store.members_of(r["event_id"] for r in rows if r["event_id"] not in known), **known}
                messages = [event_message(row, _articles(members.get(row["event_id"], []))) for row in rows]
            if not messages:
                return total
            unsendable: list[dict[str, Any]] = []
            for message in messages:
                try:
                    value = encode_event(self.publisher, message)
                except MessageTooLarge as exc:
                    unsendable.append(self._unsendable_event(message, exc))
                    continue
                self.publisher.send_encoded(contracts.EVENTS, message["event_id"], value)
            for dl in unsendable:
                send_dead_letter(self.publisher, dl)
            self.publisher.confirm()
            with self.warehouse.transaction() as cur:
                store = TransformStore(cur)
                store.mark_published({m["event_id"]: m["version"] for m in messages})
                now = utcnow()
                for dl in unsendable:
                    upsert_dead_letter(cur, dl, now)
            total += len(messages) - len(unsendable)  # dead-lettered versions were not published
            if len(rows) < _OUTBOX_PAGE:
                return total

    def _unsendable_event(self, message: dict[str, Any], exc: MessageTooLarge) -> dict[str, Any]:
        """The dead letter of an event version too large to send even without its member list.

        Its outbox row is marked published with the rest of its page (the next version is sent as usual): left
        unpublished, it would fail every later run's outbox. The warehouse keeps the event whole.
        """
        event_id, version = str(message["event_id"]), int(message["version"])
        log.error("event %s version %s cannot be published: %s", event_id, version, exc)
        return dead_letter_message(
            dead_letter_id=dead_letter_id(contracts.EVENTS.name, event_id, str(version)),
            stage=DeadLetterStage.PUBLISH,
            reason=DeadLetterReason.MESSAGE_TOO_LARGE,
            message=str(exc),
            retryable=False,
            url=None,
            feed_url=None,
            payload={"event_id": event_id, "version": version},
            created_at=utcnow(),
        )

    def _dead_letter(self, item: Incoming) -> dict[str, Any]:
        reason = item.error.reason if item.error else DeadLetterReason.INVALID_MESSAGE
        details = item.error.details if item.error else "no message"
        return dead_letter_message(
            dead_letter_id=dead_letter_id(item.topic, str(item.partition), str(item.offset)),
            stage=DeadLetterStage.DECODE,
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


def _articles(members: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "article_id": m["article_id"],
            "url": m["canonical_url"] or m["url"],
            "source": m["source"] or "",
            "title": m["title"],
            "language": m["language"],
            "published_at": iso(m["published_at"]),
        }
        for m in members
    ]
