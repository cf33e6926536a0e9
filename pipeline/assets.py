"""Airflow assets that connect the DAGs: ingest updates the articles topic, transform is scheduled on it."""

from __future__ import annotations

from airflow.sdk import Asset

from newswire import contracts

ARTICLES_TOPIC = Asset(name="newswire_articles", uri=f"kafka://newswire/{contracts.ARTICLES.name}")
EVENTS_TOPIC = Asset(name="newswire_events", uri=f"kafka://newswire/{contracts.EVENTS.name}")
