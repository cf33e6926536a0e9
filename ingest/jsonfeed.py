"""JSON Feed 1.0 and 1.1 (jsonfeed.org), read into the same entries as RSS and Atom.

feedparser 6 reads XML feeds only (a JSON Feed comes back as "not a feed"), so this module maps the format
itself: ``id`` -> guid, ``url`` (else ``external_url``, the page a link-blog item points at) -> link,
``title``, ``summary`` (else ``content_text``, else the text of ``content_html``), ``date_published`` /
``date_modified`` (RFC 3339), ``authors`` (1.1) or ``author`` (1.0), ``tags``, and ``language`` (1.1, item or
feed). Dates go through the same checks as XML feeds (future dates and zero timestamps are distrusted and
reported), and the feed's ``next_url`` is its next page, as RFC 5005's ``rel="next"`` is for XML feeds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ingest.feeds import (
    FeedEntry,
    FeedParseError,
    ParsedFeed,
    html_to_text,
    normalize_language,
    trusted_date,
    web_url,
)

VERSION_PREFIX = "https://jsonfeed.org/version/"
_FORMATS = {"1": "jsonfeed10", "1.1": "jsonfeed11"}
_WHITESPACE = b" \t\r\n\xef\xbb\xbf"


def looks_like_json(content: bytes) -> bool:
    """Whether the document starts like a JSON object (an XML or HTML document never does)."""
    return content.lstrip(_WHITESPACE)[:1] == b"{"


def parse_json_feed(content: bytes, *, url: str, max_entries: int, now: datetime) -> ParsedFeed:
    """Parse a JSON Feed document; raises :class:`FeedParseError` (``invalid_json`` or ``not_a_feed``)."""
    try:
        document = json.loads(content.lstrip(b"\xef\xbb\xbf"))
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise FeedParseError(f"unparsable JSON document from {url}: {exc}", reason="invalid_json") from exc
    version = document.get("version") if isinstance(document, dict) else None
    if not (isinstance(version, str) and version.startswith(VERSION_PREFIX)):
        raise FeedParseError(
            f"JSON document from {url} is not a JSON Feed (no jsonfeed.org version)", reason="not_a_feed"
        )
    warnings: list[str] = []
    number = version.removeprefix(VERSION_PREFIX).strip("/")
    if number not in _FORMATS:
        warnings.append(f"unknown JSON Feed version {version[:80]!r}; read as 1.1")
    items = document.get("items")
    if not isinstance(items, list):
        warnings.append("JSON Feed without an items list")
        items = []
    if len(items) > max_entries:
        warnings.append(f"truncated to the first {max_entries} of {len(items)} entries")
        items = items[:max_entries]
    feed_language = normalize_language(document.get("language"))
    entries = []
    for position, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            warnings.append(f"entry {position}: not a JSON object; ignored")
            continue
        entries.append(_entry(item, position, url=url, feed_language=feed_language, now=now, warnings=warnings))
    return ParsedFeed(
        title=_text(document.get("title")),
        link=web_url(document.get("home_page_url"), url),
        language=feed_language,
        format=_FORMATS.get(number, "jsonfeed11"),
        entries=tuple(entries),
        warnings=tuple(warnings),
        next_url=web_url(document.get("next_url"), url),
        prev_archive_url=None,
    )


def _entry(
    item: Mapping[str, Any], position: int, *, url: str, feed_language: str | None, now: datetime, warnings: list[str]
) -> FeedEntry:
    label = f"entry {position}"
    raw_id = item.get("id")
    guid = None
    # 1.0 feeds in the wild use numbers; the spec says string. Either way it is the item's identity.
    if isinstance(raw_id, str | int) and not isinstance(raw_id, bool):
        guid = str(raw_id).strip() or None
    link = None
    for field in ("url", "external_url"):
        raw = item.get(field)
        link = web_url(raw, url)
        if link:
            break
        if isinstance(raw, str) and raw.strip():
            warnings.append(f"{label}: ignored non-web {field} {raw[:200]!r}")
    summary = _text(item.get("summary")) or _text(item.get("content_text"))
    if summary is None and isinstance(item.get("content_html"), str):
        summary = html_to_text(item["content_html"]) or None
    published = _date(item, "date_published", now, label, warnings)
    updated = _date(item, "date_modified", now, label, warnings)
    return FeedEntry(
        guid=guid,
        link=link,
        title=_text(item.get("title")),
        summary=summary,
        published=published or updated,
        updated=updated,
        author=_author(item),
        tags=_tags(item.get("tags")),
        language=normalize_language(item.get("language")) or feed_language,
    )


def _text(value: Any) -> str | None:
    """Plain text of a JSON Feed text field (titles may carry entities or stray markup)."""
    if not isinstance(value, str):
        return None
    return html_to_text(value) or None


def _date(item: Mapping[str, Any], field: str, now: datetime, label: str, warnings: list[str]) -> datetime | None:
    value = item.get(field)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value).strip().replace("z", "Z"))
    except ValueError:
        warnings.append(f"{label}: unusable {field} {str(value)[:80]!r}")
        return None
    if moment.tzinfo is None:
        warnings.append(f"{label}: {field} {value!r} has no time zone; read as UTC")
        moment = moment.replace(tzinfo=UTC)
    return trusted_date(moment.astimezone(UTC), field, now, label, warnings)


def _author(item: Mapping[str, Any]) -> str | None:
    authors = item.get("authors")
    candidates = authors if isinstance(authors, list) else [item.get("author")]
    for author in candidates:
        if isinstance(author, Mapping) and isinstance(author.get("name"), str):
            name = html_to_text(author["name"])
            if name:
                return name
    return None


def _tags(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    by_folded: dict[str, str] = {}
    for tag in value:
        if isinstance(tag, str) and (term := " ".join(tag.split())):
            by_folded.setdefault(term.casefold(), term)
    return tuple(by_folded.values())
