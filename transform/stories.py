"""The in-memory story state (near-duplicate index + story clusterer) and how it survives restarts.

The state is never the system of record: the warehouse is. At start, and after any failed batch, it is
rebuilt from the stored articles inside the clustering horizon, in their original load order, so that a
process that crashed mid-stream and one that never stopped reach the same events.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import numpy as np

from newswire.embedding import Embedding, embed_articles, encoder_for
from transform.carried import Carried
from transform.clustering import Assignment, ClusteringConfig, EventProfile, StaleFeatures, StoryClusterer
from transform.documents import ArticleDoc
from transform.neardup import NearDuplicate, NearDuplicateError, NearDuplicateIndex, StaleSignature, shingle_list
from transform.store import StoredArticle, TransformStore

log = logging.getLogger(__name__)


def doc_from_stored(a: StoredArticle, embedding: Embedding | None = None) -> ArticleDoc:
    return ArticleDoc(
        article_id=a.article_id,
        title=a.title or "",
        text=a.text or "",
        language=a.language,
        published_at=_utc(a.published_at or a.fetched_at or datetime.now(UTC)),
        source=a.source,
        url=a.canonical_url,
        embedding=embedding,
    )


def stored_embedding(features: str | Mapping[str, Any] | None) -> Embedding | None:
    """The embedding kept in an article's stored features (``article_features``, as text or already parsed), if
    any: a rebuild reuses it instead of running the encoder again (the clusterer still ignores one of another
    model)."""
    if features is None:
        return None
    try:
        value = (json.loads(features) if isinstance(features, str) else features).get("embedding")
        return None if value is None else Embedding(str(value["model"]), base64.b64decode(value["vector"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def parsed_features(features: str | Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """Stored features as a mapping: JSON text is parsed here, an already parsed mapping (a rebuild parses each
    article's features once, for its embedding and its assignment) is passed through."""
    return json.loads(features) if isinstance(features, str) else features


# Stored features and signatures are compact JSON in the exported dicts' own order, written by msgspec (a few times
# faster than the json module, which made this the transform's largest JSON cost). msgspec writes non-ASCII
# characters as UTF-8 where rows written before used ``\uXXXX`` escapes: both texts parse to the same value (the
# features hold no floats: weights are integers, times ISO text, the embedding base64), so rows of either form are
# read alike and FEATURES_VERSION stays. A string msgspec cannot write (a lone surrogate, which UTF-8 has no bytes
# for) is written by the json module with escapes, as every row was before.
_STORED_JSON = msgspec.json.Encoder()
_ESCAPED_JSON = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


def stored_json(value: Any) -> str:
    """The text of exported features or a signature as ``article_features`` stores it."""
    try:
        return _STORED_JSON.encode(value).decode("utf-8")
    except UnicodeEncodeError:
        return _ESCAPED_JSON(value)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class StoryState:
    """Near-duplicate detection and story clustering over the articles inside the horizon."""

    def __init__(
        self, config: ClusteringConfig | None = None, *, max_articles: int | None = None, near_duplicates: bool = True
    ) -> None:
        self.config = config or ClusteringConfig()
        # A rebuild re-assigns stored articles and never asks for near-duplicates: it leaves the index empty
        # rather than filling it with signatures nothing reads.
        self.near_duplicates = near_duplicates
        self.horizon: timedelta = self.config.horizon
        # Memory bound: at most this many articles (the latest arrivals) are held, whatever the horizon's
        # traffic. A busy deployment reaching it shortens the effective horizon instead of running out of RAM.
        self.max_articles = max_articles
        self.neardup = NearDuplicateIndex(horizon=self.horizon)
        self.clusterer = StoryClusterer(self.config)
        self.restored = 0
        # Eviction is by arrival, not publication: memory holds what arrived within the horizon (bounded by
        # the ingest rate), and a late or backfilled article can still join its story's event. Similarity
        # itself decays with the publication-time gap, so old stories never merge with new ones.
        self._arrivals: OrderedDict[str, datetime] = OrderedDict()  # article id -> arrival, oldest first
        self._event_arrival: dict[str, datetime] = {}
        # Features and signatures of newly assigned articles, for the batch to store with them.
        self.exported: dict[str, tuple[str, str]] = {}

    @classmethod
    def restore(
        cls, store: TransformStore, config: ClusteringConfig | None = None, *, max_articles: int | None = None
    ) -> StoryState:
        state = cls(config, max_articles=max_articles)
        since = datetime.now(UTC) - state.horizon
        articles = list(store.articles_for_restore(since, limit=max_articles))
        stored = store.features_of([a.article_id for a in articles])
        vectors = state._embeddings(articles, stored)
        for article in articles:  # every one is in an event (articles_for_restore selects only those)
            assert article.event_id is not None
            doc = doc_from_stored(article, vectors.get(article.article_id))
            state.restore_stored(doc, article.event_id, *stored.get(article.article_id, (None, None)))
            state._arrived(doc.article_id, article.event_id, _utc(article.loaded_at or datetime.now(UTC)))
            state.restored += 1
        state.evict()  # the original run evicted as it went: the rebuilt state must match it
        log.info("story state restored from %d stored articles", state.restored)
        return state

    def _embeddings(self, articles: list[StoredArticle], stored: dict[str, tuple[str, str]]) -> dict[str, Embedding]:
        """Each stored article's vector of the configured model: the one kept in its features, else computed
        (stored before embeddings, or under another model) in one batch, not one by one by the clusterer."""
        model_id = self.clusterer.model_id
        if model_id is None:
            return {}
        out: dict[str, Embedding] = {}
        missing = []
        for article in articles:
            kept = stored_embedding(stored.get(article.article_id, (None, None))[0])
            if kept is not None and kept.model == model_id:
                out[article.article_id] = kept
            else:
                missing.append(article)
        if not missing:
            return out
        encoder = encoder_for(self.config.embedding_model)
        assert encoder is not None
        vectors = embed_articles(encoder, [(a.title or "", a.text or "") for a in missing])
        out.update({a.article_id: vector for a, vector in zip(missing, vectors, strict=True)})
        return out

    def near_duplicate(self, doc: ArticleDoc, carried: Carried | None) -> NearDuplicate | None:
        """The indexed article ``doc`` copies, if any; the shingles its message carries (computed by an extraction
        worker for exactly this text) are used when current, so that the body is neither tokenised nor hashed here.

        ``carried`` is the message's carried string already read (:func:`transform.carried.read_carried`: a batch
        reads it once for this lookup and for the clustering), or None when it carries nothing usable.

        The carried shingles are tied to the text by their keyed digest (``shd``), but that is a checksum anyone
        who can write the topic can recompute, and a match sends the article down the duplicate path, so a
        match found with them is confirmed from the text: the shingles are computed and, when they differ,
        looked up again and used for this article from then on (its signature too).
        """
        shingles = carried.shingles() if carried is not None else None
        if shingles is not None:
            assert carried is not None
            self.neardup.prime_shingles(doc, shingles)
            minhash = carried.minhash(self.neardup.num_perm)
            if minhash is not None:  # their MinHash, computed by the worker too: not computed again here
                self.neardup.prime_minhash(doc, minhash)
            found = self.neardup.find(doc)
            if found is None:
                return None
            computed = shingle_list(doc.text)
            if np.array_equal(computed, shingles):
                return found
            self.neardup.prime_shingles(doc, computed)
        return self.neardup.find(doc)

    def assign(self, doc: ArticleDoc) -> Assignment:
        self.neardup.add(doc)
        assignment = self.clusterer.assign(doc)
        self.exported[doc.article_id] = (
            stored_json(self.clusterer.export_features(doc)),
            stored_json(self.neardup.export_signature(doc)),
        )
        self._assigned(doc, assignment)
        return assignment

    def assign_stored(
        self, doc: ArticleDoc, features: str | Mapping[str, Any] | None, signature: str | None
    ) -> Assignment:
        """:meth:`assign` for an article whose features and signature the warehouse holds (a rebuild): the
        same assignment, without tokenising, shingling or exporting again; what is missing or stale is
        computed from the text as :meth:`assign` does."""
        self._add_signature(doc, signature)
        stored = parsed_features(features)
        if stored is not None:
            with contextlib.suppress(StaleFeatures):  # stale: assign() extracts them from the text
                self.clusterer.prime_features(doc, stored)
        assignment = self.clusterer.assign(doc)
        self._assigned(doc, assignment)
        return assignment

    def restore_stored(
        self, doc: ArticleDoc, event_id: str, features: str | Mapping[str, Any] | None, signature: str | None
    ) -> None:
        """Put a stored article back in ``event_id`` from its stored features and signature when they are
        current (else from its text), as :meth:`restore` does for each article."""
        self._add_signature(doc, signature)
        stored = parsed_features(features)
        if stored is not None:
            try:
                self.clusterer.restore_features(stored, event_id)
                return
            except StaleFeatures:
                pass
        self.clusterer.restore(doc, event_id)

    def _add_signature(self, doc: ArticleDoc, signature: str | None) -> None:
        """Index ``doc`` from its stored near-duplicate signature when current, else from its text."""
        if not self.near_duplicates:
            return
        try:
            if signature is None:
                raise StaleSignature("no stored signature")
            self.neardup.add_signature(json.loads(signature))
        except NearDuplicateError:
            self.neardup.add(doc)

    def _assigned(self, doc: ArticleDoc, assignment: Assignment) -> None:
        """An article just assigned arrives now; the events it merged away have no arrival any more."""
        self._arrived(doc.article_id, assignment.event_id, datetime.now(UTC))
        for gone in assignment.merged:
            self._event_arrival.pop(gone, None)

    def _arrived(self, article_id: str, event_id: str, moment: datetime) -> None:
        self._arrivals[article_id] = moment
        self._arrivals.move_to_end(article_id)
        if moment > self._event_arrival.get(event_id, moment - self.horizon):
            self._event_arrival[event_id] = moment

    def evict(self, now: datetime | None = None) -> int:
        """Forget articles and events that arrived before ``now - horizon``, and beyond ``max_articles`` the
        oldest arrivals and the events with nothing newer; returns how many events left."""
        cutoff = (now or datetime.now(UTC)) - self.horizon
        while self._arrivals:
            article_id, arrived = next(iter(self._arrivals.items()))
            if arrived >= cutoff and (self.max_articles is None or len(self._arrivals) <= self.max_articles):
                break
            self._arrivals.popitem(last=False)
            self.neardup.remove(article_id)
        if self._arrivals:
            # An event whose latest article is older than every article still held goes too.
            cutoff = max(cutoff, next(iter(self._arrivals.values())))
        stale = [event_id for event_id, arrived in self._event_arrival.items() if arrived < cutoff]
        for event_id in stale:
            del self._event_arrival[event_id]
            self.clusterer.drop(event_id)
        return len(stale)

    def profile(self, event_id: str) -> EventProfile:
        return self.clusterer.profile(event_id)
