"""The article value type shared by near-duplicate detection, story clustering and the quality harness.

It holds only what the quality core needs, so the pipeline can build it from a Kafka message or from a
warehouse row alike, and state can be rebuilt from stored articles after a restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from newswire.embedding import Embedding
from transform.errors import InvalidArticleDoc


@dataclass(frozen=True)
class ArticleDoc:
    """One fetched article as seen by the dedup/clustering stage.

    ``published_at`` must be timezone-aware: every time window (near-dup horizon, story horizon, eviction)
    compares instants, and mixing naive and aware datetimes would either raise deep inside the index or,
    worse, silently shift windows by the server's offset. Aware non-UTC values are normalised to UTC.
    """

    article_id: str
    title: str
    text: str
    language: str | None
    published_at: datetime
    source: str
    url: str
    # Made by ingest's extraction workers (or None: the clusterer then computes it). Not part of equality:
    # the same article is the same article whichever process embedded it.
    embedding: Embedding | None = field(default=None, compare=False)
    # The message's carried features string (:mod:`transform.carried`), or None: near-duplicate lookup then takes
    # the body's shingles from it instead of hashing the text again. Not part of equality, like the embedding.
    carried: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.article_id:
            raise InvalidArticleDoc("article_id must be a non-empty string")
        if self.published_at.tzinfo is None or self.published_at.utcoffset() is None:
            raise InvalidArticleDoc(f"published_at of {self.article_id!r} must be timezone-aware")
        if self.published_at.utcoffset():
            object.__setattr__(self, "published_at", self.published_at.astimezone(UTC))
        object.__setattr__(self, "language", base_language(self.language))
        object.__setattr__(self, "title", self.title or "")
        object.__setattr__(self, "text", self.text or "")


def base_language(language: str | None) -> str | None:
    """The base language ("fr-FR", "en_GB" -> "fr", "en"): the language-specific rules only know those."""
    lowered = (language or "").strip().lower()
    base = lowered.replace("_", "-").split("-", 1)[0] if lowered else ""
    return base or None
