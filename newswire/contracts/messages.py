"""The three messages as Python types: one ``TypedDict`` per topic schema (``schemas/*.v1.json``).

The messages stay plain dicts on the wire and in the code (JSON in, JSON out, validated against the schema at
both ends); these types name their keys and value types for readers and type checkers. Required keys are
the schema's ``required``; the others are ``NotRequired``. ``tests/test_contracts.py`` keeps each type's keys
equal to its schema's properties. (No postponed annotations here: ``TypedDict`` must see ``NotRequired``.)
"""

from typing import Any, NotRequired, TypedDict


class EmbeddingPayload(TypedDict):
    """A story embedding computed at ingest: the model's id and its vector (base64 of little-endian float16)."""

    model: str
    dtype: str
    dim: int
    vector: str


class ArticleMessage(TypedDict):
    """``newswire.articles``: one fetched article, keyed by ``article_id``."""

    schema_version: int
    article_id: str
    url: str
    canonical_url: str
    feed_url: str
    feed_name: NotRequired[str | None]
    source: str
    entry_guid: NotRequired[str | None]
    title: str
    text: str
    description: NotRequired[str | None]
    author: NotRequired[str | None]
    published_at: str | None  # ISO 8601
    fetched_at: str  # ISO 8601
    language: str | None
    site_name: NotRequired[str | None]
    categories: NotRequired[list[str]]
    tags: NotRequired[list[str]]
    image: NotRequired[str | None]
    content_hash: str
    ingest_run_id: NotRequired[str | None]
    embedding: NotRequired[EmbeddingPayload]
    # The transform's own clustering features, computed by ingest's extraction workers (revision 1.2): an
    # opaque string (compact JSON) whose layout belongs to ``transform.carried``; other consumers may ignore it.
    features: NotRequired[str]


class EventMessage(TypedDict):
    """``newswire.events``: the latest version of one event, keyed by ``event_id`` (compacted topic)."""

    schema_version: int
    event_id: str
    version: int
    title: str
    summary: str
    first_seen_at: str
    last_seen_at: str
    earliest_published_at: NotRequired[str | None]
    article_count: int
    source_count: int
    sources: list[str]
    languages: list[str]
    keywords: NotRequired[list[str]]
    entities: NotRequired[dict[str, list[str]]]
    articles: list[dict[str, Any]]
    articles_truncated: NotRequired[bool]  # revision 1.1
    merged_into: NotRequired[str | None]
    updated_at: str


class DeadLetterMessage(TypedDict):
    """``newswire.dead-letters``: an item that could not be processed, keyed by ``dead_letter_id``."""

    schema_version: int
    dead_letter_id: str
    stage: str  # a newswire.deadletters.DeadLetterStage value
    reason: str  # a newswire.deadletters.DeadLetterReason value
    message: str
    retryable: NotRequired[bool]
    url: NotRequired[str | None]
    feed_url: NotRequired[str | None]
    attempts: int
    payload: NotRequired[Any]
    created_at: str
