"""Reading a whole topic back in tests: what downstream consumers would see."""

from __future__ import annotations

from typing import Any

from newswire import contracts
from newswire.messaging import make_consumer, poll_batch


def read_topic(bootstrap: str, settings: Any, topic: contracts.Topic) -> list[dict[str, Any]]:
    """Every message on a topic, each decoded and validated against the topic's schema."""
    consumer = make_consumer(bootstrap, settings, group_id=None, topics=[topic.name])
    try:
        records = poll_batch(consumer, max_messages=100_000, idle_timeout=1.0, deadline=30)
    finally:
        consumer.close()
    return [contracts.decode(topic, r.value) for r in records]


def long_event(articles: int) -> dict[str, Any]:
    """An ``event.v1`` message of one story with ``articles`` members (~200 bytes each), for size limits."""
    return {
        "schema_version": 1,
        "event_id": "ev_long_story",
        "version": 7,
        "title": "A story that runs for weeks",
        "summary": "Reports keep coming.",
        "first_seen_at": "2026-01-01T10:00:00Z",
        "last_seen_at": "2026-01-20T10:00:00Z",
        "earliest_published_at": None,
        "article_count": articles,
        "source_count": 3,
        "sources": ["A", "B", "C"],
        "languages": ["en"],
        "keywords": ["flood"],
        "entities": {"places": [], "people": [], "organisations": []},
        "articles": [
            {
                "article_id": f"{i:032x}",
                "url": f"https://news.example.org/2026/01/flood-report-{i}",
                "source": "ABC"[i % 3],
                "title": f"Flood report number {i}, with its long headline",
                "language": "en",
                "published_at": "2026-01-10T10:00:00Z",
            }
            for i in range(articles)
        ],
        "merged_into": None,
        "updated_at": "2026-01-20T10:00:00Z",
    }
