"""The in-memory story state (near-duplicate index + story clusterer) and how it survives restarts.

The state is never the system of record: the warehouse is. At start, and after any failed batch, it is
rebuilt from the stored articles inside the clustering horizon, in their original load order, so that a
process that crashed mid-stream and one that never stopped reach the same events.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from transform.clustering import Assignment, ClusteringConfig, EventProfile, StoryClusterer
from transform.documents import ArticleDoc
from transform.neardup import NearDuplicate, NearDuplicateIndex
from transform.store import StoredArticle, TransformStore

log = logging.getLogger(__name__)


def doc_from_stored(a: StoredArticle) -> ArticleDoc:
    return ArticleDoc(
        article_id=a.article_id,
        title=a.title or "",
        text=a.text or "",
        language=a.language,
        published_at=_utc(a.published_at or a.fetched_at or datetime.now(UTC)),
        source=a.source,
        url=a.canonical_url,
    )


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class StoryState:
    """Near-duplicate detection and story clustering over the articles inside the horizon."""

    def __init__(self, config: ClusteringConfig | None = None) -> None:
        self.config = config or ClusteringConfig()
        self.horizon: timedelta = self.config.horizon
        self.neardup = NearDuplicateIndex(horizon=self.horizon)
        self.clusterer = StoryClusterer(self.config)
        self.restored = 0

    @classmethod
    def restore(cls, store: TransformStore, config: ClusteringConfig | None = None) -> StoryState:
        state = cls(config)
        since = datetime.now(UTC) - state.horizon
        for article in store.articles_for_restore(since):
            if article.event_id is None:
                continue
            doc = doc_from_stored(article)
            state.neardup.add(doc)
            state.clusterer.restore(doc, article.event_id)
            state.restored += 1
        log.info("story state restored from %d stored articles", state.restored)
        return state

    def near_duplicate(self, doc: ArticleDoc) -> NearDuplicate | None:
        return self.neardup.find(doc)

    def assign(self, doc: ArticleDoc) -> Assignment:
        self.neardup.add(doc)
        return self.clusterer.assign(doc)

    def profile(self, event_id: str) -> EventProfile:
        return self.clusterer.profile(event_id)
