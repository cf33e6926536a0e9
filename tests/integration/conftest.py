"""Integration-test configuration (the accounting-invariant check itself is in tests/accounting_invariant.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ingest.feedlist import FeedSpec
from ingest.stage import ingest_feeds
from newswire.warehouse import Warehouse


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "soak: long-running load test (runs in the normal suite, within ~1 min)")


@pytest.fixture
def poll(broker: str, make_settings: Any, tmp_path: Path) -> Callable[..., Any]:
    """``poll(feeds, run_id, **settings)``: one ingest run over ``feeds`` into this test's DuckDB ledger (robots.txt
    not asked for); returns the run's summary and the warehouse."""

    def run(feeds: list[FeedSpec], run_id: str, **overrides: Any) -> Any:
        settings = make_settings(warehouse_url=f"duckdb:///{tmp_path / 'w.duckdb'}", respect_robots=False, **overrides)
        return ingest_feeds(settings, broker, feeds, run_id=run_id), Warehouse(settings.resolved_warehouse_url)

    return run
