"""Dead letters: the shared record of items either side could not process, with what a retry needs.

Both ingest and transform write them, to the ``newswire.dead-letters`` topic (for operators' tooling) and
to the ``dead_letters`` table (the system of record, which ``newswire dead-letters`` reads). Ids are stable
per item, so a repeated failure updates one record instead of piling up new ones.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from enum import StrEnum
from typing import Any

from newswire import contracts
from newswire.contracts import SCHEMA_VERSION, iso
from newswire.contracts.messages import DeadLetterMessage
from newswire.errors import MessageTooLarge
from newswire.messaging import Publisher
from newswire.warehouse import Cursor


class DeadLetterStage(StrEnum):
    """Where an item failed: the ``stage`` enum of the ``dead_letter`` schema (a test keeps the two equal)."""

    FEED_FETCH = "feed_fetch"  # the feed document could not be fetched
    FEED_PARSE = "feed_parse"  # the feed could not be parsed, or one of its entries has no usable link
    PAGE_FETCH = "page_fetch"  # an entry's article page could not be fetched
    EXTRACT = "extract"  # the page holds no usable article
    PUBLISH = "publish"  # the article's message could not be published (over the producer's size limit)
    DECODE = "decode"  # the transform could not decode a message of the articles topic
    TRANSFORM = "transform"  # reserved by the contract; nothing writes it today


class DeadLetterReason(StrEnum):
    """Why: the ``reason`` enum of the ``dead_letter`` schema, the ``reason`` codes of the errors that become
    dead letters (a test checks every code those errors and their raise sites use is here)."""

    # page_fetch, feed_fetch: ingest.errors.FetchError and its subclasses
    FETCH = "fetch"
    INVALID_URL = "invalid_url"
    BLOCKED_ADDRESS = "blocked_address"
    DNS = "dns"
    CONNECT = "connect"
    TLS = "tls"
    TIMEOUT = "timeout"
    TOO_LARGE = "too_large"
    REDIRECT = "redirect"
    REDIRECT_LOOP = "redirect_loop"
    TOO_MANY_REDIRECTS = "too_many_redirects"
    HTTP_STATUS = "http_status"
    CONTENT_TYPE = "content_type"
    PROTOCOL = "protocol"
    ROBOTS_UNAVAILABLE = "robots_unavailable"
    # feed_parse: ingest.errors.FeedParseError, and entries without a usable link
    EMPTY_FEED = "empty_feed"
    NOT_A_FEED = "not_a_feed"
    INVALID_XML = "invalid_xml"
    INVALID_JSON = "invalid_json"
    ENTITY_DECLARATION = "entity_declaration"
    NO_LINK = "no_link"
    # extract: ingest.errors.ExtractionError
    NO_BODY = "no_body"
    NOT_HTML = "not_html"
    WORKER_CRASHED = "worker_crashed"
    # decode: newswire.errors.ContractError (invalid_json above too)
    SCHEMA_VIOLATION = "schema_violation"
    EMPTY_MESSAGE = "empty_message"
    UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
    INVALID_MESSAGE = "invalid_message"
    # publish: newswire.errors.MessageTooLarge (schema revision 1.1)
    MESSAGE_TOO_LARGE = "message_too_large"


def dead_letter_id(*parts: str) -> str:
    return "dl_" + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:29]


def dead_letter_message(
    *,
    dead_letter_id: str,
    stage: DeadLetterStage | str,
    reason: DeadLetterReason | str,
    message: str,
    retryable: bool,
    url: str | None,
    feed_url: str | None,
    payload: dict[str, Any] | None,
    created_at: datetime,
    attempts: int = 1,
) -> DeadLetterMessage:
    return {
        "schema_version": SCHEMA_VERSION,
        "dead_letter_id": dead_letter_id,
        # Plain strings in the message (and the table): the enum's values, checked here rather than by the
        # topic's schema after the fact.
        "stage": DeadLetterStage(stage).value,
        "reason": DeadLetterReason(reason).value,
        "message": message[:2000],
        "retryable": retryable,
        "url": url,
        "feed_url": feed_url,
        "attempts": attempts,
        "payload": payload,
        "created_at": iso(created_at),
    }


def upsert_dead_letter(cur: Cursor, dl: dict[str, Any], now: datetime) -> None:
    """Insert the record, or count one more attempt on it."""
    cur.execute(
        "INSERT INTO dead_letters (dead_letter_id, stage, reason, message, retryable, url, feed_url, attempts, "
        "payload, created_at, last_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?) "
        "ON CONFLICT (dead_letter_id) DO UPDATE SET stage = excluded.stage, reason = excluded.reason, "
        "message = excluded.message, retryable = excluded.retryable, payload = excluded.payload, "
        "attempts = dead_letters.attempts + 1, last_attempt_at = excluded.last_attempt_at",
        (
            dl["dead_letter_id"],
            dl["stage"],
            dl["reason"],
            dl["message"],
            bool(dl.get("retryable")),
            dl.get("url"),
            dl.get("feed_url"),
            json.dumps(dl.get("payload"), ensure_ascii=False, default=str),
            now,
            now,
        ),
    )


def send_dead_letter(publisher: Publisher, dl: dict[str, Any]) -> None:
    """Send ``dl`` to the dead-letters topic; the caller confirms. Never refused for its size.

    A record whose payload makes it larger than the producer may send (a decode dead letter carries the
    refused message's bytes in base64, a third larger than the message; an ingest one the feed entry, whose
    summary the feed sets) goes without its payload, which is replaced by a note of its size: the
    ``dead_letters`` table keeps the whole record (it is the system of record, and what a retry reads), and the
    topic copy, for operators' tooling, still says what failed and why. Sent whole, it would fail the confirm of
    every other message sent with it, and the caller, retrying, would fail again (ingest would publish the
    chunk's articles a second time). Should even that not fit, the copy keeps only the contract's fields with
    ``message``, ``url`` and ``feed_url`` cut shorter, down to none of them: that always fits the smallest
    limit the settings allow.
    """
    key = str(dl["dead_letter_id"])
    try:
        publisher.send(contracts.DEAD_LETTERS, key, dl)
        return
    except MessageTooLarge as exc:
        note = {"omitted": DeadLetterReason.MESSAGE_TOO_LARGE.value, "record_bytes": exc.size}
    fields = {k: dl[k] for k in _CONTRACT_FIELDS if k in dl}
    copies = [{**dl, "payload": note}] + [
        {
            **fields,
            "message": str(dl.get("message") or "")[:chars],
            "url": _cut(dl.get("url"), chars),
            "feed_url": _cut(dl.get("feed_url"), chars),
            "payload": note,
        }
        for chars in _CUTS
    ]
    for number, copy in enumerate(copies, 1):
        try:
            publisher.send(contracts.DEAD_LETTERS, key, copy)
            return
        except MessageTooLarge:
            if number == len(copies):
                raise  # a limit below the settings' minimum (a test's producer override): nothing fits


#: The dead-letter contract's own fields: what a cut topic copy keeps (unknown extras are dropped first).
_CONTRACT_FIELDS = (
    "schema_version",
    "dead_letter_id",
    "stage",
    "reason",
    "message",
    "retryable",
    "url",
    "feed_url",
    "attempts",
    "created_at",
)
#: Characters kept of ``message``, ``url`` and ``feed_url``, tried in turn once the payload is gone.
_CUTS = (2000, 500, 0)


def _cut(text: str | None, chars: int) -> str | None:
    """``text`` cut to ``chars`` characters; None when nothing is left (a URL's empty prefix says nothing)."""
    return text[:chars] or None if text else text
