"""Article messages made from the labelled story corpus's lines, for tests that feed the transform directly."""

from __future__ import annotations

import hashlib
from typing import Any


def story_article_message(d: dict[str, Any]) -> dict[str, Any]:
    """The ``newswire.articles`` message of one corpus line (ids and hashes derived as ingest derives them)."""
    return {
        "schema_version": 1,
        "article_id": hashlib.sha256(d["url"].encode()).hexdigest()[:32],
        "url": d["url"],
        "canonical_url": d["url"],
        "feed_url": "https://feeds.example/all.xml",
        "feed_name": "All",
        "source": d["outlet"],
        "title": d["title"],
        "text": d["text"],
        "content_hash": hashlib.sha256(d["text"].encode()).hexdigest()[:32],
        "fetched_at": d["published_at"],
        "published_at": d["published_at"],
        "language": d["language"],
        "categories": [],
        "tags": [],
    }
