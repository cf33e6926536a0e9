"""newswire_transform: turn newly published articles into deduplicated event records.

Scheduled on the articles-topic asset that ``newswire_ingest`` updates; drains the topic into the warehouse
and publishes new and changed events to ``newswire.events``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import dag, task

from newswire.assets import ARTICLES_TOPIC, EVENTS_TOPIC


@dag(
    dag_id="newswire_transform",
    schedule=[ARTICLES_TOPIC],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["newswire"],
    default_args={
        "retries": 3,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
    },
    doc_md=__doc__,
)
def newswire_transform() -> None:
    @task(outlets=[EVENTS_TOPIC])
    def transform_articles() -> dict:
        from transform import jobs  # imported by the task, not each time the dag-processor parses this file

        return jobs.transform_pending()

    transform_articles()


newswire_transform()
