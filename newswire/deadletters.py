"""Dead letters: the shared record of items either side could not process, with what a retry needs.

Both ingest and transform write them, to the ``newswire.dead-letters`` topic (for operators' tooling) and
to the ``dead_letters`` table (the system of record, which ``newswire dead-letters`` reads). Ids are stable
per item, so a repeated failure updates one record instead of piling up new ones.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from newswire.contracts import SCHEMA_VERSION, iso
from newswire.warehouse import Cursor


def dead_letter_id(*parts: str) -> str:
    return "dl_" + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:29]


def dead_letter_message(
    *,
    dead_letter_id: str,
    stage: str,
    reason: str,
    message: str,
    retryable: bool,
    url: str | None,
    feed_url: str | None,
    payload: dict[str, Any] | None,
    created_at: datetime,
    attempts: int = 1,
) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "dead_letter_id": dead_letter_id,
        "stage": stage,
        "reason": reason,
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
