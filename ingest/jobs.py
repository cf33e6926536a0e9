"""The ingest tasks as Airflow calls them: JSON in, JSON out, settings from the environment.

Kept free of Airflow imports so they can be tested and run without a scheduler; the DAG file only maps
its tasks onto these functions.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from ingest.feedlist import FeedSpec
from ingest.run import configured_feeds, ingest_session
from newswire.broker import bootstrap_servers
from newswire.settings import load_settings

log = logging.getLogger(__name__)


def feed_to_dict(feed: FeedSpec) -> dict[str, Any]:
    return {
        "url": feed.url,
        "name": feed.name,
        "language": feed.language,
        "tags": list(feed.tags),
        "poll_interval_minutes": feed.poll_interval_minutes,
        "ignore_robots": feed.ignore_robots,
    }


def feed_from_dict(data: dict[str, Any]) -> FeedSpec:
    return FeedSpec(
        url=data["url"],
        name=data["name"],
        language=data.get("language"),
        tags=tuple(data.get("tags") or ()),
        poll_interval_minutes=data.get("poll_interval_minutes"),
        ignore_robots=bool(data.get("ignore_robots")),
    )


def list_feeds(selection: list[str] | None = None) -> list[dict[str, Any]]:
    """The configured feeds, optionally narrowed to URLs or names in ``selection``."""
    feeds = configured_feeds(load_settings())
    if selection:
        wanted = set(selection)
        feeds = [f for f in feeds if f.url in wanted or f.name in wanted]
    return [feed_to_dict(f) for f in feeds]


def ingest_feed(
    feed: dict[str, Any],
    *,
    run_id: str,
    interval_start: datetime | None = None,
    interval_end: datetime | None = None,
) -> dict[str, Any]:
    """Poll one feed; raises ``FeedFailed`` (so the task fails and retries) when the feed is unusable."""
    settings = load_settings()
    # One feed per Airflow task: Airflow provides the parallelism, so extraction stays inline.
    with (
        bootstrap_servers(settings) as bootstrap,
        ingest_session(
            settings, bootstrap, run_id=run_id, interval=(interval_start, interval_end), extract_workers=1
        ) as poller,
    ):
        report = poller.poll(feed_from_dict(feed))
    return report.as_dict()


def summarize(reports: list[dict[str, Any] | None], *, run_id: str, expected: int | None = None) -> dict[str, Any]:
    """Sum the per-feed reports into the run's one-line summary (failed feeds have no report)."""
    done = [r for r in reports if r]
    keys = ("entries_seen", "new", "duplicates", "dead_letters", "skipped", "bytes")
    totals: dict[str, Any] = {k: sum(int(r[k]) for r in done) for k in keys}
    totals["feeds"] = len(done)
    totals["failed_feeds"] = (expected - len(done)) if expected is not None else 0
    totals["seconds"] = round(sum(float(r["seconds"]) for r in done), 1)
    line = (
        f"ingest run {run_id}: feeds={totals['feeds']} failed={totals['failed_feeds']} "
        f"entries={totals['entries_seen']} new={totals['new']} duplicates={totals['duplicates']} "
        f"dead_letters={totals['dead_letters']} skipped={totals['skipped']} bytes={totals['bytes']} "
        f"seconds={totals['seconds']}"
    )
    log.info("%s", line)
    totals["summary"] = line
    return totals
