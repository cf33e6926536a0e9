"""Integration-test configuration (the accounting-invariant check itself is in tests/accounting_invariant.py)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "soak: long-running load test (runs in the normal suite, within ~1 min)")
