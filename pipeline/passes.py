"""One ingest pass and one transform pass in one process, the transform consuming while ingest publishes.

This is what ``newswire run`` (and the benchmark) does. The Airflow deployment runs the two stages as
separate DAGs; here they overlap so the transform's CPU work fills the time ingest spends waiting on the
network and on extraction workers, instead of starting only when the last feed is done. Both stages still
talk only through the articles topic, and each keeps its own guarantees (ledger after broker ack; offsets
after warehouse commit), so the result is the same as running them one after the other.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ingest.feedlist import FeedSpec
from ingest.stage import IngestSummary, ingest_feeds
from newswire.messaging import FollowedProducer
from newswire.settings import Settings
from pipeline.enrich import enricher_for
from transform.stage import TransformSummary, run_transform


@dataclass(frozen=True)
class PassSummary:
    ingest: IngestSummary
    transform: TransformSummary
    ingest_seconds: float
    seconds: float  # until the transform drained what ingest published


def run_passes(
    settings: Settings, bootstrap: str, feeds: Sequence[FeedSpec], *, run_id: str, overlap: bool = True
) -> PassSummary:
    """Ingest ``feeds`` and transform what they published; ``overlap=False`` runs the stages in turn."""
    t0 = time.monotonic()
    enrich = enricher_for(settings)
    if not overlap:
        ingest = ingest_feeds(settings, bootstrap, feeds, run_id=run_id, enrich=enrich)
        ingest_seconds = time.monotonic() - t0
        transform = run_transform(settings, bootstrap)
        return PassSummary(ingest, transform, ingest_seconds, time.monotonic() - t0)

    ingesting = FollowedProducer()
    outcome: dict[str, TransformSummary | BaseException] = {}

    def consume() -> None:
        try:
            outcome["summary"] = run_transform(settings, bootstrap, follow=ingesting)
        except BaseException as exc:  # re-raised in the caller's thread below
            outcome["error"] = exc

    consumer = threading.Thread(target=consume, name="transform", daemon=True)
    consumer.start()
    published: dict[int, int] | None = None
    try:
        ingest = ingest_feeds(settings, bootstrap, feeds, run_id=run_id, enrich=enrich)
        published = ingest.published
    finally:
        # Finished only after ingest returned: every message it published has been acknowledged by then, and
        # the transform stops once it has read up to the last of them (or, if ingest failed, at an empty poll).
        ingesting.finish(published)
        ingest_seconds = time.monotonic() - t0
        consumer.join()
    error = outcome.get("error")
    if isinstance(error, BaseException):
        raise error
    summary = outcome["summary"]
    assert isinstance(summary, TransformSummary)
    return PassSummary(ingest, summary, ingest_seconds, time.monotonic() - t0)
