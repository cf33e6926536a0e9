"""The accounting invariant, checked after every test on every warehouse the test used (a pytest plugin).

"Entries seen = new + duplicates + dead letters + skipped" must hold for every ingest run and feed, and every
``new`` entry must be in the warehouse or pending: pending no longer than the default ``pending_max_age``,
and with its raw record (so reconcile can re-publish it). The age rule is production's own threshold, not a
test-friendly one: a test that ingests without transforming leaves entries seconds old, which production
accepts too; the raw-record rule holds at any age, so a test that loses a pending article's only copy fails
at once. Rather
than trusting each test to remember an assertion, every ``Warehouse`` constructed while a test is set up
or runs is recorded, and after the test body returns (before fixtures tear their schemas down) each one
that holds an ``ingest_runs`` table is checked with the same query ``newswire status`` uses. A violation
fails the test that produced it.

Hooked in by tests/conftest.py, so pipeline runs anywhere in the suite (DAG and demo tests included) are
covered, not only tests/integration.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from newswire.errors import WarehouseUnavailable
from newswire.reconcile import pending_report
from newswire.report import INVARIANT_SQL
from newswire.settings import Settings
from newswire.warehouse import Warehouse

PENDING_MAX_AGE = float(Settings.model_fields["pending_max_age"].default)

_used: dict[str, None] = {}  # warehouse URLs of the current test, in order
_original_init = Warehouse.__init__


def _recording_init(self: Warehouse, url: str, *args: Any, **kwargs: Any) -> None:
    _original_init(self, url, *args, **kwargs)
    _used[url] = None


Warehouse.__init__ = _recording_init  # type: ignore[method-assign]


def accounting_violations_if_any(url: str) -> list[dict[str, Any]]:
    """Violations in the warehouse at ``url``; [] when it has no ingest tables or cannot be opened.

    Read-only and never migrating: a test may have pointed a warehouse at a closed port on purpose, or left
    a warehouse with no schema at all; neither is an accounting problem.
    """
    warehouse = Warehouse(url)
    if warehouse.dialect == "duckdb" and not warehouse.path.exists():
        return []
    try:
        with warehouse._raw_transaction() as cur:
            try:
                violations = cur.execute(INVARIANT_SQL).dicts()
                waiting = pending_report(cur, PENDING_MAX_AGE)
            except Exception:  # no ingest tables: nothing was ingested there
                return []
    except WarehouseUnavailable:
        return []
    if not waiting.ok:
        violations.append({"pending": waiting.line()})
    return violations


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _used.clear()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    result = yield  # a failing test raises here and is reported as it is
    urls = list(_used)
    problems = {url: bad for url in urls if (bad := accounting_violations_if_any(url))}
    _used.clear()
    if problems:
        lines = [f"{url}: {rows}" for url, rows in problems.items()]
        pytest.fail(
            "accounting invariant violated (entries seen != new + duplicates + dead letters + skipped, or new "
            "entries pending too long / without their raw record):\n" + "\n".join(lines),
            pytrace=False,
        )
    return result
