"""The transform task as Airflow calls it (no Airflow imports here)."""

from __future__ import annotations

import logging
from typing import Any

from newswire.broker import bootstrap_servers
from newswire.settings import load_settings
from transform.run import run_transform

log = logging.getLogger(__name__)


def transform_pending(max_batches: int | None = None) -> dict[str, Any]:
    """Re-publish what the topic lost (reconcile), drain the articles topic into the warehouse and publish
    changed events; return the batch stats."""
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
        "republished": summary.reconciled.republished,
        "seconds": round(summary.seconds, 1),
        "summary": summary.line(),
    }
