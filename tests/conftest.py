"""Shared fixtures: a real embedded broker, both warehouse backends, the sample corpus on loopback."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from accounting_invariant import pytest_runtest_call, pytest_runtest_setup  # noqa: F401  (hooks)

from newswire.broker import EmbeddedBroker
from newswire.settings import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "devtools" / "corpus"
PG_DSN = os.environ.get("NEWSWIRE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``make test`` runs two workers), every test that runs Airflow goes to one worker.

    Most of the suite's wall time is waiting (stacks starting, runs being scheduled, servers answering), so two
    workers halve it on two cores; but two Airflow stacks, or a stack beside in-process DAG runs, would compete
    for the same cores and for the executor's time-outs. Grouping them keeps those tests one after another,
    while the other worker runs everything else.
    """
    for item in items:
        if item.get_closest_marker("airflow"):
            item.add_marker(pytest.mark.xdist_group("airflow"))


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's NEWSWIRE_* variables or ./newswire.toml."""
    for key in list(os.environ):
        if key.startswith("NEWSWIRE_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def broker() -> Iterator[str]:
    """A fresh Tansu broker per test (starts in ~20 ms), so topics never leak between tests."""
    with EmbeddedBroker() as running:
        yield running.bootstrap


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test runs once per backend: a DuckDB file, and a private schema in the local PostgreSQL."""
    if request.param == "duckdb":
        yield f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
        return
    schema = f"nwtest_{uuid.uuid4().hex[:12]}"
    yield f"{PG_DSN}?schema={schema}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def make_settings(tmp_path: Path) -> Any:
    """Settings for a test: private home, loopback allowed, no politeness delay."""

    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "home": tmp_path / "home",
            "allow_private_networks": True,
            "host_interval": 0.0,
            "poll_timeout": 1.0,
            "batch_deadline": 20.0,
            "extract_workers": 1,  # inline: worker start-up costs seconds per test; one test covers the pool
        }
        values.update(overrides)
        return load_settings(**values)

    return factory


@pytest.fixture(scope="session")
def corpus() -> Iterator[Any]:
    from devtools.devserver import CorpusServer

    with CorpusServer(CORPUS) as server:
        yield server
