"""Re-drive dead letters: the selection shared by every stage, and the retry of undecodable messages.

A dead letter is resolved by deleting its row: ingest deletes an entry's dead letter when the entry later
succeeds (``ingest/ledger.py``), a feed's when the feed polls cleanly, and this module deletes a message's
dead letter once the stored raw message validates and was re-published to its topic. Ingest entries and
feeds are re-driven by ``ingest/redrive.py`` (it needs the fetcher); ``newswire dead-letters retry``
orchestrates both.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from newswire import contracts
from newswire.errors import ContractError, MessageTooLarge
from newswire.messaging import Publisher
from newswire.warehouse import Warehouse, utcnow

log = logging.getLogger(__name__)


@dataclass
class RedriveResult:
    """What a retry did; ``still_failing`` lists the ids that remain dead letters (with attempts + 1)."""

    retried: int = 0
    resolved: int = 0
    still_failing: list[str] = field(default_factory=list)
    not_retryable: list[str] = field(default_factory=list)  # no payload a retry could use

    def add(self, other: RedriveResult) -> None:
        self.retried += other.retried
        self.resolved += other.resolved
        self.still_failing.extend(other.still_failing)
        self.not_retryable.extend(other.not_retryable)

    def line(self) -> str:
        return (
            f"dead letters retried={self.retried} resolved={self.resolved} "
            f"still_failing={len(self.still_failing)} not_retryable={len(self.not_retryable)}"
        )


def select_dead_letters(
    warehouse: Warehouse, *, ids: Sequence[str] = (), stage: str | None = None
) -> list[dict[str, Any]]:
    """Dead letters to retry, oldest attempt first; every one when no filter is given."""
    sql = "SELECT dead_letter_id, stage, reason, url, feed_url, attempts, payload FROM dead_letters WHERE 1 = 1"
    params: list[Any] = []
    if ids:
        sql += f" AND dead_letter_id IN ({','.join('?' * len(ids))})"
        params.extend(ids)
    if stage:
        sql += " AND stage = ?"
        params.append(stage)
    rows = warehouse.query(sql + " ORDER BY last_attempt_at, dead_letter_id", params)
    for row in rows:
        row["payload"] = json.loads(row["payload"]) if row["payload"] else None
    return rows


def remaining(warehouse: Warehouse, ids: Sequence[str]) -> set[str]:
    """Which of ``ids`` are still dead letters."""
    if not ids:
        return set()
    marks = ",".join("?" * len(ids))
    rows = warehouse.query(f"SELECT dead_letter_id FROM dead_letters WHERE dead_letter_id IN ({marks})", list(ids))
    return {r["dead_letter_id"] for r in rows}


def redrive_messages(warehouse: Warehouse, publisher: Publisher, rows: Sequence[dict[str, Any]]) -> RedriveResult:
    """Re-validate each stored raw message; re-publish the ones that now pass and resolve their dead letters.

    A message fails again when it is still malformed: its dead letter stays, with one more attempt and the
    current validation error. One that passes (the contract or the consumer was fixed since) goes back to
    its topic, keyed as the contract says, and the transform stores it like any other message. One that
    passes but is over the producer's size limit stays too, with reason ``message_too_large``, and the others
    carry on: they are sent, confirmed and resolved in this call, so a later retry never sends them again.
    """
    result = RedriveResult()
    passed: list[str] = []
    for row in rows:
        payload = row.get("payload") or {}
        try:
            raw = base64.b64decode(payload["value_base64"], validate=True)
            topic = contracts.topic_by_name(payload["topic"])
        except (KeyError, TypeError, ValueError, binascii.Error):
            result.not_retryable.append(row["dead_letter_id"])
            continue
        result.retried += 1
        try:
            message = contracts.decode(topic, raw)
        except ContractError as exc:
            _count_failed_attempt(warehouse, row["dead_letter_id"], exc.reason, exc.details)
            result.still_failing.append(row["dead_letter_id"])
            continue
        try:
            publisher.send(topic, str(message.get(topic.key) or payload.get("key") or ""), message)
        except MessageTooLarge as exc:
            _count_failed_attempt(warehouse, row["dead_letter_id"], exc.reason, str(exc))
            result.still_failing.append(row["dead_letter_id"])
            continue
        passed.append(row["dead_letter_id"])
    if passed:
        publisher.confirm()  # resolved only once the broker has the message again
        marks = ",".join("?" * len(passed))
        with warehouse.transaction() as cur:
            cur.execute(f"DELETE FROM dead_letters WHERE dead_letter_id IN ({marks})", passed)
        result.resolved += len(passed)
    return result


def _count_failed_attempt(warehouse: Warehouse, dead_letter_id: str, reason: str, details: str) -> None:
    with warehouse.transaction() as cur:
        cur.execute(
            "UPDATE dead_letters SET attempts = attempts + 1, last_attempt_at = ?, reason = ?, message = ? "
            "WHERE dead_letter_id = ?",
            (utcnow(), reason, details[:2000], dead_letter_id),
        )
    log.info("dead letter %s still fails: %s", dead_letter_id, details)
