"""newswire_archive: each run collects the entries published on its day from the feeds' history; new ones are ingested.

An RSS feed lists its latest entries only, and backfilling the 15-minute ``newswire_ingest`` would mean one
run per quarter hour; this DAG has one run per day. Its run for a day walks each feed's paged or archived
documents (RFC 5005, or WordPress ``?paged=N``) and its site's sitemaps back to that day, and ingests the
entries published that day that are not stored yet. Scheduled, it is the daily catch-up for whatever polling
missed; for the past, it is the DAG to backfill from the UI (Trigger -> Backfill), one run per day.

A run is one ``archive_day`` task that walks every feed of its day concurrently in one process (hosts
interleaved, each host's requests spaced); a failing feed is named in its summary and does not fail the task.
Archive tasks hold one ``newswire_fetch`` slot across all runs (the scheduled day, a manual run, a backfill's
days run their ``archive_day`` one after another), so the others stay with ``newswire_ingest``; sharding a day
like ``newswire_ingest`` would therefore only walk its shards in series, one task start-up each.

Params (defaults are right for a backfill: the UI sends edited Params to backfill runs only when "Override
parameters on existing runs" is ticked):

* ``feeds``: feed names or URLs to walk; empty = every configured feed.
* ``refetch``: fetch and publish again the pages of the day's entries already stored (picks up edits).
* ``rebuild_events``: after ingesting, recompute the events of the day's articles from the warehouse.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import CronDataIntervalTimetable, Param, dag, get_current_context, task

from pipeline import ingest_tasks as jobs
from pipeline import transform_tasks
from pipeline.assets import ARTICLES_TOPIC
from pipeline.pools import FETCH_POOL
from pipeline.retry_policy import RetryAfterPolicy, backoff_args

RETRY_DELAY = timedelta(minutes=1)
MAX_RETRY_DELAY = timedelta(minutes=30)


@dag(
    dag_id="newswire_archive",
    # Data intervals, not trigger times: the run for a day covers [day 00:00, next day 00:00) UTC.
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2020, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=4,
    tags=["newswire"],
    params={
        "feeds": Param([], type="array", items={"type": "string"}, description="Feed names or URLs; empty = all"),
        "refetch": Param(False, type="boolean", description="Fetch again the pages of entries already stored"),
        "rebuild_events": Param(False, type="boolean", description="Recompute the events of the day's articles"),
    },
    default_args=backoff_args(RETRY_DELAY, MAX_RETRY_DELAY),
    doc_md=__doc__,
)
def newswire_archive() -> None:
    @task(
        pool=FETCH_POOL,
        outlets=[ARTICLES_TOPIC],
        # One archive task at a time across all runs (the scheduled day, a manual run, a backfill's days): the
        # catch-up takes one fetch slot and leaves the others to newswire_ingest's shards, and a site sees one
        # archive walker at a time, which also reuses the archive cache of the day walked before.
        max_active_tis_per_dag=1,
        retry_policy=RetryAfterPolicy(RETRY_DELAY, MAX_RETRY_DELAY),
    )
    def archive_day() -> dict:
        ctx = get_current_context()
        return jobs.archive_day(
            selection=ctx["params"].get("feeds") or None,
            run_id=ctx["run_id"],
            interval_start=ctx.get("data_interval_start"),
            interval_end=ctx.get("data_interval_end"),
            refetch=bool(ctx["params"].get("refetch")),
        )

    @task(trigger_rule="all_done")
    def summarize(report: dict | None) -> dict:
        # None when archive_day failed for good: the summary then counts it as a failed shard.
        return jobs.summarize([report], run_id=get_current_context()["run_id"], expected=1)

    @task
    def rebuild_events(summary: dict) -> dict:
        ctx = get_current_context()
        if not ctx["params"].get("rebuild_events"):
            return {"skipped": True, "summary": "rebuild_events not requested"}
        return transform_tasks.rebuild_window(ctx.get("data_interval_start"), ctx.get("data_interval_end"))

    rebuild_events(summarize(archive_day()))


newswire_archive()
