"""Re-drive ingest dead letters on an operator's request (``newswire dead-letters retry``).

Automatic retries already happen on later polls, with backoff and an attempt limit, for failures marked
retryable. An operator retries when they know something changed (the site fixed its pages, a TLS
certificate was renewed, a robots.txt is back), so this path ignores backoff, limits and the retryable
flag: each entry goes through exactly the code a poll uses (:meth:`FeedPoller.redrive`), and each failed
feed is simply polled again. Success removes the dead letter in the same ledger transaction that records
the entry's new outcome; failure leaves it with one more attempt.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from ingest.extract_workers import Enricher
from ingest.feedlist import FeedSpec
from ingest.messages import entry_from_payload
from ingest.poll import FeedFailed
from ingest.stage import ingest_session
from newswire.redrive import RedriveResult, remaining
from newswire.settings import Settings
from newswire.warehouse import Warehouse

log = logging.getLogger(__name__)


def feed_spec_for(
    warehouse: Warehouse, feed_url: str, configured: Sequence[FeedSpec], payload: dict[str, Any]
) -> FeedSpec:
    """The feed as configured when it still is (robots policy, language); else as the warehouse knows it."""
    for spec in configured:
        if spec.url == feed_url:
            return spec
    rows = warehouse.query("SELECT name, language, tags FROM feeds WHERE feed_url = ?", (feed_url,))
    stored = rows[0] if rows else {}
    name = stored.get("name") or (payload.get("feed") or {}).get("name") or feed_url
    try:
        tags = tuple(json.loads(stored.get("tags") or "[]"))
    except ValueError:
        tags = ()
    return FeedSpec(url=feed_url, name=name, language=stored.get("language"), tags=tags)


def redrive_ingest(
    settings: Settings,
    bootstrap: str,
    rows: Sequence[dict[str, Any]],
    *,
    run_id: str,
    feeds: Sequence[FeedSpec] = (),
    enrich: Enricher | None = None,
) -> RedriveResult:
    """Retry the ingest dead letters in ``rows`` (as returned by ``select_dead_letters``)."""
    result = RedriveResult()
    by_feed: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        payload = row.get("payload") or {}
        if not row.get("feed_url") or not ({"entry", "feed"} & payload.keys()):
            result.not_retryable.append(row["dead_letter_id"])
            continue
        by_feed.setdefault(row["feed_url"], []).append(row)
    if not by_feed:
        return result
    ids = [row["dead_letter_id"] for group in by_feed.values() for row in group]
    with ingest_session(settings, bootstrap, run_id=run_id, enrich=enrich) as poller:
        warehouse = poller.ledger.warehouse
        for feed_url, group in by_feed.items():
            spec = feed_spec_for(warehouse, feed_url, feeds, group[0]["payload"])
            entries = [entry_from_payload(r["payload"]["entry"]) for r in group if "entry" in r["payload"]]
            if len(entries) < len(group):  # the feed itself had failed: poll it again
                try:
                    poller.poll(spec)
                except FeedFailed as exc:
                    log.warning("retry: %s", exc)
            if entries:
                poller.redrive(spec, entries)
            result.retried += len(group)
        still = remaining(warehouse, ids)
    result.resolved += len(ids) - len(still)
    result.still_failing.extend(sorted(still))
    return result
