"""The ingest tasks as Airflow calls them: JSON in, JSON out, settings from the environment.

Kept free of Airflow imports so they can be tested and run without a scheduler; the DAG file only maps
its tasks onto these functions. The DAG files import this module while the dag-processor parses them, so
it imports the ingest stage (trafilatura, the HTTP client) and the settings only inside the functions.

The unit of work of a task is a shard of feeds polled in one process (an archive day: all its feeds), never
one feed: a task process is slow to start, and Airflow maps at most ``max_map_length`` tasks.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

log = logging.getLogger(__name__)


def schedule() -> str:
    """The cron of ``newswire_ingest`` (``NEWSWIRE_INGEST_SCHEDULE``), read while the DAG file is parsed."""
    from newswire.settings import load_ingest_schedule

    return load_ingest_schedule()


def list_feeds(selection: list[str] | None = None) -> list[dict[str, Any]]:
    """The configured feeds, optionally narrowed to URLs or names in ``selection``."""
    from ingest.feedlist import feed_to_dict
    from ingest.stage import configured_feeds
    from newswire.settings import load_settings

    feeds = configured_feeds(load_settings())
    if selection:
        wanted = set(selection)
        feeds = [f for f in feeds if f.url in wanted or f.name in wanted]
    return [feed_to_dict(f) for f in feeds]


def claim_shards(*, run_id: str, poll_all: bool = False) -> list[dict[str, Any]]:
    """The ingest run's first task: claim the due feeds under the run's id, split into shards.

    Returns one small item per shard (``{"token", "shard", "feeds"}``); the shard task reads its feed URLs
    from the schedule table, so XCom stays a few bytes per shard whatever the feed count. ``poll_all``
    claims every listed, enabled feed, due or not (a manual "poll everything now").
    """
    from ingest.shards import claim_due
    from newswire.settings import load_settings

    claim = claim_due(load_settings(), run_id, every_feed=poll_all)
    return [{"token": claim.token, "shard": s, "feeds": n} for s, n in sorted(claim.shards.items())]


def ingest_shard(
    shard: dict[str, Any],
    *,
    run_id: str,
    interval_start: datetime | None = None,
    interval_end: datetime | None = None,
) -> dict[str, Any]:
    """Poll one shard's claimed feeds in this process; failing feeds are recorded, never raised."""
    from ingest.shards import poll_shard
    from newswire.broker import bootstrap_servers
    from newswire.settings import load_settings
    from pipeline.enrich import enricher_for

    settings = load_settings()
    with bootstrap_servers(settings) as bootstrap:
        return poll_shard(
            settings,
            bootstrap,
            token=str(shard["token"]),
            shard=int(shard["shard"]),
            run_id=run_id,
            interval=(interval_start, interval_end),
            enrich=enricher_for(settings),
        )


def archive_day(
    *,
    selection: list[str] | None,
    run_id: str,
    interval_start: datetime | str | None,
    interval_end: datetime | str | None,
    refetch: bool = False,
) -> dict[str, Any]:
    """Archive the run's day for every selected feed in this one process; failing feeds are named, never raised.

    One task per day, not shards: archive tasks run one at a time across all runs (the DAG's
    ``max_active_tis_per_dag=1``, so the archive holds one fetch slot), hence a day split into shards would
    walk them one after another, paying a task start-up per shard and leaving each shard's hosts idle while
    the others are walked. In one process ``archive_feeds`` walks every host concurrently instead.
    """
    from ingest import archive
    from ingest.shards import shard_totals
    from newswire.settings import load_settings
    from pipeline.enrich import enricher_for

    settings = load_settings()
    planned = archive.plan_feeds(list_feeds(selection))  # sitemaps once per site, decided over the whole list
    t0 = time.monotonic()
    reports, failures = archive.archive_feeds(
        planned,
        run_id=run_id,
        interval_start=interval_start,
        interval_end=interval_end,
        refetch=refetch,
        extract_workers=settings.shard_extract_workers,
        enrich=enricher_for(settings),
    )
    return shard_totals(reports, failures, shard=0, kind="archive", run_id=run_id, seconds=time.monotonic() - t0)


def summarize(reports: list[dict[str, Any] | None], *, run_id: str, expected: int | None = None) -> dict[str, Any]:
    """Sum the shard reports into the run's one-line summary; a shard that failed has no report, and its
    claimed feeds (``expected`` counts shards) are due again once its claims expire."""
    done = [r for r in reports if r]
    keys = ("feeds", "failed_feeds", "entries_seen", "new", "duplicates", "dead_letters", "skipped", "bytes")
    totals: dict[str, Any] = {k: sum(int(r.get(k, 0)) for r in done) for k in keys}
    totals["shards"] = len(done)
    totals["failed_shards"] = (expected - len(done)) if expected is not None else 0
    totals["failing"] = sorted(u for r in done for u in r.get("failing", []))[:50]
    totals["seconds"] = round(sum(float(r["seconds"]) for r in done), 1)
    line = (
        f"run {run_id}: shards={totals['shards']} failed_shards={totals['failed_shards']} "
        f"feeds={totals['feeds']} failed={totals['failed_feeds']} "
        f"entries={totals['entries_seen']} new={totals['new']} duplicates={totals['duplicates']} "
        f"dead_letters={totals['dead_letters']} skipped={totals['skipped']} bytes={totals['bytes']} "
        f"seconds={totals['seconds']}"
    )
    if totals["failing"]:
        line += "; failing feeds: " + ", ".join(totals["failing"][:20])
    log.info("%s", line)
    totals["summary"] = line
    return totals
