"""newswire_transform: turn newly published articles into deduplicated event records.

Scheduled on the articles-topic asset that ``newswire_ingest`` updates; drains the topic into the warehouse
and publishes new and changed events to ``newswire.events``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import dag, task

from pipeline import transform_tasks as jobs
from pipeline.assets import ARTICLES_TOPIC, EVENTS_TOPIC
from pipeline.retry_policy import backoff_args


@dag(
    dag_id="newswire_transform",
    schedule=[ARTICLES_TOPIC],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["newswire"],
    default_args=backoff_args(timedelta(seconds=30), timedelta(minutes=10)),
    doc_md=__doc__,
)
def newswire_transform() -> None:
    @task(outlets=[EVENTS_TOPIC])
    def transform_articles() -> dict:
        return jobs.transform_pending()

    transform_articles()


newswire_transform()
