"""Rebuild the events of the articles published in a window from what the warehouse holds; nothing is refetched.

After a change of the clustering code or its configuration, the events of past days can be recomputed:

1. the window's articles are taken out of their events;
2. a story state is restored from the articles that stay put: those published within the clustering horizon
   around the window, plus every remaining member of the events the window's articles leave (so each of
   those events is known to the clusterer with all its members);
3. the window's articles are assigned again, in their original load order, exactly as the transform stage
   assigns new articles (which may also merge events);
4. every event that gained, lost or merged members is saved with its profile as of the end of the last load
   batch (articles sharing ``loaded_at``) that touched it, which is when the transform saved it: a profile
   (representative, keyword order) depends on the document frequencies of every article held at that moment.
   A changed record gets a new version (the content digest decides, so an unchanged event keeps its version
   and publishes nothing), an event left without members is marked ``merged_into`` the event that took its
   first article, and the versions go out through the event outbox like any other change.

Articles stay as they are (no article is turned into a duplicate, no row is deleted): "rebuild" means
events. Rebuilding a window twice with the same code changes nothing the second time. Rebuilding every stored
article replays the transform: on a warehouse nothing changed since, it saves no new version, provided the
transform's story state held every earlier article when it clustered each one (no eviction, no restart that
restored less). An article at a later version is held, as the transform holds it (live or restored), with the
features of the text it was first clustered with (stored in ``article_features``).
A narrower window cannot promise that: its state is the horizon around the window, including articles loaded
after the window's, not what the transform held then, so articles can move and events be re-versioned even
without a code change. A transform run that is in progress meanwhile keeps the story state it restored at its
start until it ends (its next run restores from the warehouse again), so rebuild while ``newswire_transform``
is idle to have new articles cluster against the rebuilt events at once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from newswire.messaging import Publisher
from newswire.timestamps import as_utc
from newswire.warehouse import Cursor, Warehouse, utcnow
from transform.batch import BatchProcessor
from transform.clustering import ClusteringConfig, EventProfile
from transform.errors import RebuildError
from transform.eventrecords import digests, final_survivors, merged_event_record, profiled_event_record
from transform.store import TransformStore
from transform.stories import StoryState, doc_from_stored, parsed_features, stored_embedding

__all__ = ["RebuildError", "RebuildStats", "rebuild_events", "window_of"]

log = logging.getLogger(__name__)


@dataclass
class RebuildStats:
    window: str = ""
    articles: int = 0  # the window's articles, re-assigned
    context: int = 0  # stored articles restored around them
    events_before: int = 0  # distinct events the window's articles were in
    events_after: int = 0  # distinct events they are in now
    moved: int = 0  # articles whose event changed
    events_changed: int = 0  # event records saved with a new version
    events_published: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "summary": self.line()}

    def line(self) -> str:
        return (
            f"rebuild {self.window}: articles={self.articles} context={self.context} "
            f"events_before={self.events_before} events_after={self.events_after} moved={self.moved} "
            f"events_changed={self.events_changed} events_published={self.events_published} "
            f"seconds={self.seconds:.1f}"
        )


def rebuild_events(
    warehouse: Warehouse,
    publisher: Publisher | None,
    start: datetime,
    end: datetime,
    *,
    config: ClusteringConfig | None = None,
) -> RebuildStats:
    """Re-cluster the articles published in ``[start, end)``; ``publisher`` None leaves versions in the outbox."""
    if start.tzinfo is None or end.tzinfo is None or end <= start:
        raise RebuildError(f"expected a non-empty UTC window, got {start} .. {end}")
    t0 = time.monotonic()
    stats = RebuildStats(window=_label(start, end))
    with warehouse.hold():
        with warehouse.transaction() as cur:
            _rebuild(cur, start, end, config, stats)
        if publisher is not None:
            stats.events_published = BatchProcessor(warehouse, publisher, config=config).publish_outbox()
    stats.seconds = time.monotonic() - t0
    log.info("%s", stats.line())
    return stats


def _rebuild(cur: Cursor, start: datetime, end: datetime, config: ClusteringConfig | None, stats: RebuildStats) -> None:
    store = TransformStore(cur)
    rows = store.articles_where("WHERE a.published_at >= ? AND a.published_at < ?", (start, end))
    window = [a for _, a, _ in rows]
    if not window:
        return
    ids = [a.article_id for a in window]
    before = {a.article_id: a.event_id for a in window}
    former_events = sorted({e for e in before.values() if e})
    stats.articles, stats.events_before = len(window), len(former_events)

    # No near-duplicate index: a rebuild re-assigns stored articles and never looks for copies among them.
    state = StoryState(config, near_duplicates=False)
    horizon = state.horizon
    context = store.articles_where(
        "WHERE a.published_at >= ? AND a.published_at < ? AND ea.event_id IS NOT NULL",
        (start - horizon, end + horizon),
    )
    if former_events:
        context += store.articles_where(
            "WHERE ea.event_id IN ({})".format(",".join("?" * len(former_events))), former_events
        )
    window_ids = set(ids)
    restored: set[str] = set()
    # Each article's stored features, parsed once: they carry its embedding (the encoder runs only for articles
    # stored before embeddings existed) and everything its assignment needs. They describe the text the article
    # was first clustered with, and are used for an article at a later version too: the transform keeps holding
    # that text's features after a new version (it never re-clusters one, and a restart restores the stored
    # features), and every event's keywords depend on them through the document frequencies.
    needed = sorted({a.article_id for _, a, _ in context} | window_ids)
    stored = {article_id: parsed_features(text) for article_id, text in store.stored_features(needed).items()}
    for _, article, _ in sorted(context, key=lambda triple: triple[0]):
        if article.article_id in window_ids or article.article_id in restored or article.event_id is None:
            continue
        restored.add(article.article_id)
        features = stored.get(article.article_id)
        doc = doc_from_stored(article, stored_embedding(features))
        state.restore_stored(doc, article.event_id, features, None)
    stats.context = len(restored)

    _detach(cur, start, end)
    now = utcnow()
    after: dict[str, str] = {}
    merges: list[tuple[str, str]] = []
    profiles = _LoadBatches(state)
    for article in window:  # already in load order
        profiles.arrive(article.loaded_at)
        features = stored.get(article.article_id)
        doc = doc_from_stored(article, stored_embedding(features))
        assignment = state.assign_stored(doc, features, None)
        after[article.article_id] = assignment.event_id
        profiles.touch(assignment.event_id, assignment.merged)
        for gone in assignment.merged:
            merges.append((gone, assignment.event_id))
    profiles.close()
    store.link_articles([(event_id, article_id, now) for article_id, event_id in after.items()])
    for gone, survivor in merges:
        store.move_members(gone, survivor)
    # Merges re-home members: follow them to the surviving event.
    merged = final_survivors(merges)
    final = {a: merged.get(e, e) for a, e in after.items()}
    stats.events_after = len(set(final.values()))
    stats.moved = sum(1 for a in ids if before.get(a) != final[a])

    touched = set(former_events) | set(final.values()) | set(merged) | set(merged.values())
    current = store.events(touched)
    members = store.members_of(touched)
    records: list[dict[str, Any]] = []
    for event_id in sorted(touched):
        if members.get(event_id):
            record = profiled_event_record(event_id, members[event_id], profiles.of(event_id))
        else:
            row = current.get(event_id)
            if row is None:
                continue
            survivor = merged.get(event_id) or _heir(event_id, before, final)
            record = merged_event_record(row, survivor)
        records.append(record)
    stats.events_changed = len(store.save_events(digests(records, current), current, now))


class _LoadBatches:
    """Each event's profile as of the end of the last load batch that changed it, as the transform saved it.

    A profile (representative article, keyword order) depends on the document frequencies of every article the
    story state holds when it is taken, not only on the event's own members. The transform stage saves an
    event's record at the end of each batch that touches it; later batches change the frequencies but not that
    record. Profiling every event once at the end of a rebuild would therefore differ, for most events, from what
    the transform saved, and re-version them although nothing changed. The articles of one transform batch share
    their ``loaded_at``, so the rebuild, going through them in load order, profiles the events an arrival group
    touched when that group ends: a rebuild of an unchanged warehouse saves the records the transform saved.
    """

    def __init__(self, state: StoryState) -> None:
        self._state = state
        self._group: object = _NO_GROUP
        self._touched: set[str] = set()
        self._profiles: dict[str, EventProfile] = {}

    def arrive(self, loaded_at: datetime | None) -> None:
        """The next article of the window was loaded at ``loaded_at``: a new value closes the previous group."""
        if loaded_at != self._group:
            self.close()
            self._group = loaded_at

    def touch(self, event_id: str, merged: tuple[str, ...]) -> None:
        self._touched.add(event_id)
        for gone in merged:
            self._touched.discard(gone)
            self._profiles.pop(gone, None)

    def close(self) -> None:
        for event_id in self._touched:
            self._profiles[event_id] = self._state.profile(event_id)
        self._touched.clear()

    def of(self, event_id: str) -> EventProfile:
        """The profile saved for ``event_id``; an event no group touched (it only lost articles) is profiled now."""
        profile = self._profiles.get(event_id)
        return profile if profile is not None else self._state.profile(event_id)


_NO_GROUP = object()


def _detach(cur: Cursor, start: datetime, end: datetime) -> None:
    """Take the window's articles (the rows ``articles_where`` selected, by the same condition) out of their
    events: one statement, not one per chunk of ids."""
    cur.execute(
        "DELETE FROM event_articles WHERE article_id IN "
        "(SELECT article_id FROM articles WHERE published_at >= ? AND published_at < ?)",
        (start, end),
    )


def _heir(event_id: str, before: dict[str, str | None], final: dict[str, str]) -> str | None:
    """The event that took the first (in load order) of the articles ``event_id`` lost."""
    for article_id, former in before.items():
        if former == event_id:
            return final[article_id]
    return None


def _label(start: datetime, end: datetime) -> str:
    if end - start == timedelta(days=1) and start.time() == datetime.min.time():
        return start.date().isoformat()
    return f"{start.isoformat()}..{end.isoformat()}"


def window_of(start: datetime | str | None, end: datetime | str | None) -> tuple[datetime, datetime]:
    """A run's data interval; an empty or missing one (a manual run) means the UTC day before it."""
    start_at, end_at = as_utc(start), as_utc(end)
    if start_at is not None and end_at is not None and end_at > start_at:
        return start_at, end_at
    anchor = (start_at or end_at or datetime.now(UTC)) - timedelta(days=1)
    day = datetime(anchor.year, anchor.month, anchor.day, tzinfo=UTC)
    return day, day + timedelta(days=1)
