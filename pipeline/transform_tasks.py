"""The transform tasks as Airflow calls them: settings from the environment, JSON out (no Airflow imports here).

The DAG files import this module while the dag-processor parses them, so the transform stage (clustering,
the encoder) and the settings are imported inside the functions.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

log = logging.getLogger(__name__)


def transform_pending(max_batches: int | None = None) -> dict[str, Any]:
    """Re-publish what the topic lost (reconcile), drain the articles topic into the warehouse and publish
    changed events; return the batch stats."""
    from newswire.broker import bootstrap_servers
    from newswire.settings import load_settings
    from transform.stage import run_transform

    settings = load_settings()
    with bootstrap_servers(settings) as bootstrap:
        summary = run_transform(settings, bootstrap, max_batches=max_batches)
    s = summary.stats
    return {
        "batches": summary.batches,
        "messages": s.messages,
        "new_articles": s.new_articles,
        "updated_articles": s.updated_articles,
        "duplicates": s.duplicates,
        "replays": s.replays,
        "dead_letters": s.dead_letters,
        "events_changed": s.events_changed,
        "events_published": s.events_published,
        "features_carried": s.features_carried,  # new articles clustered with the features their message carried
        "republished": summary.reconciled.republished,
        "seconds": round(summary.seconds, 1),
        "summary": summary.line(),
    }


def rebuild_window(interval_start: datetime | str | None, interval_end: datetime | str | None) -> dict[str, Any]:
    """Rebuild the events of the run's day (its data interval) and publish the changed versions."""
    from newswire.broker import bootstrap_servers
    from newswire.messaging import open_publisher
    from newswire.settings import load_settings
    from newswire.warehouse import Warehouse
    from transform.clustering import ClusteringConfig
    from transform.rebuild import rebuild_events, window_of

    settings = load_settings()
    start, end = window_of(interval_start, interval_end)
    warehouse = Warehouse(settings.resolved_warehouse_url)
    warehouse.migrate()
    with bootstrap_servers(settings) as bootstrap:
        publisher = open_publisher(bootstrap, settings, client_id="newswire-rebuild")
        try:
            config = ClusteringConfig(embedding_model=settings.embedding_model)
            stats = rebuild_events(warehouse, publisher, start, end, config=config)
        finally:
            publisher.close()
    return stats.as_dict()
