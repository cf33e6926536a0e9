"""newswire_ingest: poll every configured feed and publish new articles to ``newswire.articles``.

One mapped task per feed, so a broken feed fails (and retries, with exponential backoff) alone.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import CronDataIntervalTimetable, dag, get_current_context, task

from ingest import jobs
from newswire.airflow_retry import RetryAfterPolicy
from newswire.assets import ARTICLES_TOPIC
from newswire.settings import load_settings

FETCH_POOL = "newswire_fetch"
RETRY_DELAY = timedelta(seconds=30)
MAX_RETRY_DELAY = timedelta(minutes=15)


@dag(
    dag_id="newswire_ingest",
    # Data intervals, so each run records the quarter hour it covers (ingest_runs.interval_start/end).
    schedule=CronDataIntervalTimetable(load_settings().ingest_schedule, timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["newswire"],
    default_args={
        "retries": 3,
        "retry_delay": RETRY_DELAY,
        "retry_exponential_backoff": True,
        "max_retry_delay": MAX_RETRY_DELAY,
    },
    doc_md=__doc__,
)
def newswire_ingest() -> None:
    @task
    def list_feeds() -> list[dict]:
        return jobs.list_feeds()

    @task(
        pool=FETCH_POOL,
        outlets=[ARTICLES_TOPIC],
        map_index_template="{{ task.op_kwargs['feed']['name'] }}",
        retry_policy=RetryAfterPolicy(RETRY_DELAY, MAX_RETRY_DELAY),  # honours Retry-After on 429/503
    )
    def ingest_feed(feed: dict) -> dict:
        ctx = get_current_context()
        return jobs.ingest_feed(
            feed,
            run_id=ctx["run_id"],
            interval_start=ctx.get("data_interval_start"),
            interval_end=ctx.get("data_interval_end"),
        )

    @task(trigger_rule="all_done")
    def summarize(reports: list[dict | None], feeds: list[dict]) -> dict:
        # Index by length: iterating the lazy XCom sequence probes one past its end and logs an error.
        done = [reports[i] for i in range(len(reports))]
        return jobs.summarize(done, run_id=get_current_context()["run_id"], expected=len(feeds))

    feeds = list_feeds()
    summarize(ingest_feed.expand(feed=feeds), feeds)


newswire_ingest()
