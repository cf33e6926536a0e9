"""newswire_ingest: poll the feeds that are due and publish new articles to ``newswire.articles``.

Runs often (``NEWSWIRE_INGEST_SCHEDULE``, every 5 minutes by default) and polls only the feeds whose next poll
has come (per-feed adaptive intervals, ``feed_schedule`` table). ``claim_feeds`` claims them and splits them
into at most ``NEWSWIRE_INGEST_SHARDS`` shards, every host's feeds in one shard; ``ingest_shard`` (one mapped
task per shard) polls its feeds concurrently in one process, with the code of ``newswire run``. A failing
feed is recorded with its next attempt and never fails its shard; a broker or warehouse failure does, and
Airflow retries the shard, which polls only the feeds it has not recorded yet.

Param ``poll_all`` (manual runs): claim every listed, enabled feed, due or not.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import CronDataIntervalTimetable, Param, dag, get_current_context, task

from pipeline import ingest_tasks as jobs
from pipeline.assets import ARTICLES_TOPIC
from pipeline.pools import FETCH_POOL
from pipeline.retry_policy import RetryAfterPolicy, backoff_args

RETRY_DELAY = timedelta(seconds=30)
MAX_RETRY_DELAY = timedelta(minutes=15)


@dag(
    dag_id="newswire_ingest",
    # Data intervals, so each run records the period it covers (ingest_runs.interval_start/end).
    schedule=CronDataIntervalTimetable(jobs.schedule(), timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["newswire"],
    params={"poll_all": Param(False, type="boolean", description="Poll every enabled feed, due or not")},
    default_args=backoff_args(RETRY_DELAY, MAX_RETRY_DELAY),
    doc_md=__doc__,
)
def newswire_ingest() -> None:
    @task
    def claim_feeds() -> list[dict]:
        ctx = get_current_context()
        return jobs.claim_shards(run_id=ctx["run_id"], poll_all=bool(ctx["params"].get("poll_all")))

    @task(
        pool=FETCH_POOL,
        outlets=[ARTICLES_TOPIC],
        map_index_template="shard {{ task.op_kwargs['shard']['shard'] }}",
        # Ahead of archive tasks in the shared fetch pool: a daily archive run must not delay polling.
        priority_weight=10,
        weight_rule="absolute",
        retry_policy=RetryAfterPolicy(RETRY_DELAY, MAX_RETRY_DELAY),
    )
    def ingest_shard(shard: dict) -> dict:
        ctx = get_current_context()
        return jobs.ingest_shard(
            shard,
            run_id=ctx["run_id"],
            interval_start=ctx.get("data_interval_start"),
            interval_end=ctx.get("data_interval_end"),
        )

    @task(trigger_rule="all_done")
    def summarize(reports: list[dict | None], shards: list[dict]) -> dict:
        # Index by length: iterating the lazy XCom sequence probes one past its end and logs an error.
        done = [reports[i] for i in range(len(reports))]
        return jobs.summarize(done, run_id=get_current_context()["run_id"], expected=len(shards))

    shards = claim_feeds()
    summarize(ingest_shard.expand(shard=shards), shards)


newswire_ingest()
