"""Turn what ingest learned about an entry into contract messages (articles and dead letters).

Page metadata wins over feed metadata because the page is the publisher's own, fuller statement; the feed's
fields fill the gaps a page leaves (many sites omit dates or authors from the HTML).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from ingest.extract import ExtractedArticle
from ingest.feedlist import FeedSpec
from ingest.feeds import FeedEntry
from ingest.fingerprint import content_hash
from newswire.contracts import SCHEMA_VERSION, iso, parse_iso
from newswire.contracts.messages import ArticleMessage
from newswire.embedding import to_message


def article_message(
    *,
    article_id: str,
    canonical_url: str,
    entry: FeedEntry,
    feed: FeedSpec,
    page: ExtractedArticle,
    fetched_at: datetime,
    run_id: str,
) -> ArticleMessage:
    published = page.published_at or entry.published or entry.updated
    source = page.site_name or feed.name or urlsplit(canonical_url).hostname or "unknown"
    message: ArticleMessage = {
        "schema_version": SCHEMA_VERSION,
        "article_id": article_id,
        "url": entry.link or canonical_url,
        "canonical_url": canonical_url,
        "feed_url": feed.url,
        "feed_name": feed.name,
        "source": source,
        "entry_guid": entry.guid,
        "title": page.title or entry.title or "",
        "text": page.text,
        "description": page.description or entry.summary,
        "author": page.author or entry.author,
        "published_at": iso(published),
        "fetched_at": iso(fetched_at),
        "language": page.language or entry.language or feed.language or page.detected_language,
        "site_name": page.site_name,
        "categories": list(page.categories),
        "tags": sorted(set(page.tags) | set(entry.tags)),
        "image": page.image,
        "content_hash": content_hash(page.text),
        "ingest_run_id": run_id,
    }
    if page.embedding is not None:
        message["embedding"] = to_message(page.embedding)
    if page.features is not None:
        message["features"] = page.features
    return message


def entry_to_payload(entry: FeedEntry) -> dict[str, Any]:
    """A JSON-safe copy of a feed entry: what a dead-letter retry needs to process it again."""
    data = asdict(entry)
    for key in ("published", "updated"):
        data[key] = iso(data[key])
    data["tags"] = list(data["tags"])
    return data


def entry_from_payload(data: dict[str, Any]) -> FeedEntry:
    return FeedEntry(
        guid=data.get("guid"),
        link=data.get("link"),
        title=data.get("title"),
        summary=data.get("summary"),
        published=parse_iso(data.get("published")),
        updated=parse_iso(data.get("updated")),
        author=data.get("author"),
        tags=tuple(data.get("tags") or ()),
        language=data.get("language"),
    )
