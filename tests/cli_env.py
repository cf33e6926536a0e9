"""The environment the CLI tests run ``newswire`` commands in: loopback sites, the test broker and warehouse."""

from __future__ import annotations

from pathlib import Path

import pytest


def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, broker: str, warehouse_url: str, **extra: str) -> None:
    """Set ``NEWSWIRE_*`` for a CLI run against ``broker`` and ``warehouse_url``; ``extra`` adds or overrides
    settings by their name without the prefix (e.g. ``MAX_MESSAGE_BYTES="1048576"``)."""
    for key, value in {
        "HOME": str(tmp_path / "home"),
        "ALLOW_PRIVATE_NETWORKS": "true",
        "HOST_INTERVAL": "0",
        "EXTRACT_WORKERS": "1",
        "RESPECT_ROBOTS": "false",
        "POLL_TIMEOUT": "1",
        "WAREHOUSE_URL": warehouse_url,
        "KAFKA_BOOTSTRAP": broker,
        **extra,
    }.items():
        monkeypatch.setenv(f"NEWSWIRE_{key}", value)
