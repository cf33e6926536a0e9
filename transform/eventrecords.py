"""Build an event record from its member articles and the clusterer's profile of it.

The record is a pure function of the members (and the profile, itself a function of the members), so
rebuilding it after a replay yields the same digest and therefore no new version and no new message:
versions count real changes only.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec

from newswire import contracts
from newswire.contracts import SCHEMA_VERSION, iso
from newswire.contracts.messages import EventMessage
from newswire.errors import MessageTooLarge
from transform.errors import EventRecordError

if TYPE_CHECKING:
    from newswire.messaging import Publisher
    from transform.clustering import EventProfile

log = logging.getLogger(__name__)

SUMMARY_CHARS = 400


def final_survivors(merges: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Each merged-away event -> the event that holds its members in the end, following chains (a→b then b→c)."""
    merged = dict(merges)
    while any(target in merged for target in merged.values()):
        merged = {gone: merged.get(survivor, survivor) for gone, survivor in merged.items()}
    return merged


def profiled_event_record(event_id: str, members: Sequence[dict[str, Any]], profile: EventProfile) -> dict[str, Any]:
    """:func:`build_event_record` with what the clusterer's profile of the event says (representative, keywords,
    entities): the record of a live event, wherever it is rebuilt."""
    return build_event_record(
        event_id,
        members,
        representative_id=profile.representative_article_id,
        keywords=profile.keywords,
        entities={"places": profile.places, "people": profile.people, "organisations": profile.organisations},
    )


def _summary(article: dict[str, Any]) -> str:
    text = (article.get("description") or "").strip()
    if len(text) < 40:
        body = " ".join((article.get("text") or "").split())
        text = body[:SUMMARY_CHARS].rsplit(" ", 1)[0] + "…" if len(body) > SUMMARY_CHARS else body
    return text


def build_event_record(
    event_id: str,
    members: Sequence[dict[str, Any]],
    *,
    representative_id: str | None = None,
    keywords: Sequence[str] = (),
    entities: dict[str, Sequence[str]] | None = None,
    merged_into: str | None = None,
) -> dict[str, Any]:
    """The warehouse form of an event (timestamps as datetimes); see :func:`event_message` for Kafka."""
    if not members:
        raise EventRecordError(f"event {event_id} has no member articles")
    rep = next((m for m in members if m["article_id"] == representative_id), members[0])
    published = [m["published_at"] for m in members if m.get("published_at")]
    fetched = [m["fetched_at"] for m in members if m.get("fetched_at")] or published
    sources = sorted({m["source"] for m in members if m.get("source")})
    return {
        "event_id": event_id,
        "title": rep.get("title") or "",
        "summary": _summary(rep),
        "first_seen_at": min(fetched) if fetched else None,
        "last_seen_at": max(fetched) if fetched else None,
        "earliest_published_at": min(published) if published else None,
        "article_count": len(members),
        "source_count": len(sources),
        "sources": sources,
        "languages": sorted({m["language"] for m in members if m.get("language")}),
        "keywords": list(keywords),
        "entities": {k: list(v) for k, v in (entities or {}).items()},
        "articles": [
            {
                "article_id": m["article_id"],
                "url": m.get("canonical_url") or m["url"],
                "source": m.get("source") or "",
                "title": m.get("title"),
                "language": m.get("language"),
                "published_at": iso(m.get("published_at")),
            }
            for m in members
        ],
        "merged_into": merged_into,
    }


def merged_event_record(row: dict[str, Any], survivor: str | None) -> dict[str, Any]:
    """The record of an event left without members (merged into ``survivor``, or emptied by a rebuild).

    Kept rather than deleted so that consumers holding the old event learn where its articles went.
    """
    return {
        "event_id": row["event_id"],
        "title": row["title"],
        "summary": row["summary"],
        "first_seen_at": row["first_seen_at"],
        "last_seen_at": row["last_seen_at"],
        "earliest_published_at": row["earliest_published_at"],
        "article_count": 0,
        "source_count": 0,
        "sources": [],
        "languages": [],
        "keywords": [],
        "entities": {},
        "articles": [],
        "merged_into": survivor,
    }


# What a digest covers: everything but the version and the time of the save, which are not content.
_NOT_CONTENT = frozenset({"version", "updated_at"})
# The canonical text a digest hashes: compact UTF-8 JSON, keys sorted at every depth (msgspec, several times faster
# than ``json.dumps(sort_keys=True)`` for the same record). Its digests open with DIGEST_PREFIX, which no digest of
# the earlier form (:func:`legacy_digest`, 32 hex digits) has: see :func:`digests`.
_CANONICAL = msgspec.json.Encoder(order="sorted")
DIGEST_PREFIX = "c2:"


def digest(record: dict[str, Any]) -> str:
    """Content fingerprint of a record: equal records (after a replay) get equal digests.

    A record's datetimes are its top-level timestamps (members' times are already text); each is written in UTC
    (naive ones are UTC, as :func:`iso` takes them), so an instant read back from the warehouse in another time
    zone hashes alike.
    """
    material = {k: _utc(v) if isinstance(v, datetime) else v for k, v in record.items() if k not in _NOT_CONTENT}
    return DIGEST_PREFIX + hashlib.sha256(_CANONICAL.encode(material)).hexdigest()[:32]


def _utc(moment: datetime) -> datetime:
    """The same instant in UTC, which msgspec writes as RFC 3339 text ending in ``Z``; cheaper than :func:`iso`
    for the common case, a datetime already in UTC."""
    offset = moment.utcoffset()
    if offset is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC) if offset else moment


def legacy_digest(record: dict[str, Any]) -> str:
    """The digest of the form every event saved before :data:`DIGEST_PREFIX` holds (``json.dumps`` with sorted
    keys and spaces): kept to recognise an unchanged record of an event last saved by an earlier version."""
    material = {k: v for k, v in record.items() if k not in _NOT_CONTENT}
    text = json.dumps(material, sort_keys=True, default=_jsonable, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def digests(
    records: Iterable[dict[str, Any]], stored: Mapping[str, Mapping[str, Any]]
) -> list[tuple[dict[str, Any], str]]:
    """Each record with the digest to save it under, given the events' stored rows (``stored``, by event id).

    The digest decides whether a record is a new version (``TransformStore.save_events`` skips a record whose
    digest equals the stored one). An event last saved before this digest form holds a legacy digest, which no
    digest of this form can equal: its unchanged record would become a new version, and a new event message,
    once (a rebuild of an unchanged day after an upgrade would republish every event of it). So when the stored
    digest is of the legacy form, the record's legacy digest is computed too, and when it matches, the record
    keeps the stored digest: unchanged, no version. Only an event's first save after the upgrade pays for it.
    """
    out = []
    for record in records:
        new = digest(record)
        row = stored.get(record["event_id"])
        old = None if row is None else row.get("content_digest")
        if old is not None and old != new and not old.startswith(DIGEST_PREFIX) and legacy_digest(record) == old:
            new = old
        out.append((record, new))
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    raise TypeError(type(value))


def encode_event(publisher: Publisher, message: EventMessage) -> bytes:
    """The event message's bytes for ``publisher``, its ``articles`` list cut to fit the size limit
    (``Publisher.limit``: the setting, or the events topic's own where lower).

    An event's message lists every member article, so a long-running story (thousands of reports over the
    clustering horizon) can outgrow the limit; sent whole, the producer would refuse it, the outbox would
    never be marked published, and every later transform run would fail on the same version. Cut, it keeps
    the most recent members (the last in load order: what a consumer following the story has not seen yet),
    in load order, as many as fit, with ``articles_truncated`` true; ``article_count`` still counts them all,
    and the warehouse keeps every member.

    Each member is encoded once on its own to size it; the count that fits follows from those sizes and one
    encode confirms it (a JSON array's bytes are its items', their commas and two brackets). Raises
    :class:`MessageTooLarge` when the event does not fit even with no members (the caller records that).
    """
    key = message["event_id"]
    try:
        return publisher.encode(contracts.EVENTS, key, message)
    except MessageTooLarge:
        articles = message["articles"]

    def cut(count: int) -> EventMessage:
        return {**message, "articles": articles[len(articles) - count :], "articles_truncated": True}

    room = publisher.limit(contracts.EVENTS) - publisher.record_size(
        key, publisher.encode(contracts.EVENTS, key, cut(0))
    )
    count, used = 0, -1  # k members add their bytes and k - 1 commas to the empty list
    for article in reversed(articles):
        used += len(contracts.encoded_part(article)) + 1
        if used > room:
            break
        count += 1
    while True:
        try:
            return publisher.encode(contracts.EVENTS, key, cut(count))
        except MessageTooLarge:
            # The record's length prefix can grow by a byte or two past the estimate: one member fewer.
            if count == 0:
                raise
            count -= 1


def event_message(row: dict[str, Any], articles: Sequence[dict[str, Any]]) -> EventMessage:
    """The ``newswire.events`` message for a stored event row (JSON text columns decoded)."""

    def load(value: Any, default: Any) -> Any:
        if value is None:
            return default
        return json.loads(value) if isinstance(value, str) else value

    return {
        "schema_version": SCHEMA_VERSION,
        "event_id": row["event_id"],
        "version": int(row["version"]),
        "title": row["title"] or "",
        "summary": row["summary"] or "",
        "first_seen_at": iso(row["first_seen_at"]),
        "last_seen_at": iso(row["last_seen_at"]),
        "earliest_published_at": iso(row["earliest_published_at"]),
        "article_count": int(row["article_count"]),
        "source_count": int(row["source_count"]),
        "sources": load(row["sources"], []),
        "languages": load(row["languages"], []),
        "keywords": load(row["keywords"], []),
        "entities": load(row["entities"], {}),
        "articles": list(articles),
        "merged_into": row["merged_into"],
        "updated_at": iso(row["updated_at"]),
    }
