"""The speed targets the benchmarks print beside their measurements (issue 15); never asserted by timed tests.

One place for both harnesses: ``bench.pipeline`` (through Kafka, DuckDB) and ``bench.transform`` (in-process, either
backend) judge the same transform rate against the same numbers.
"""

from __future__ import annotations

from typing import Any

E2E_OVER_BARE = 1.3  # end to end, over bare single-process trafilatura.extract, on 2 cores
POLL_304_SECONDS = 10.0
TRANSFORM_RATE = {"duckdb": 1000.0, "postgres": 600.0}  # transform + load alone, articles/s, by warehouse
RSS_GROWTH = 0.20


def target(name: str, measured: float | None, goal: float, unit: str, higher_is_better: bool) -> dict[str, Any]:
    """One target line: the measurement, the goal, and whether it passed (None when not measured)."""
    passed: bool | None = None
    if measured is not None:
        passed = measured >= goal if higher_is_better else measured < goal
    op = ">=" if higher_is_better else "<"
    return {"name": name, "measured": measured, "target": f"{op} {goal:g}", "unit": unit, "passed": passed}
