"""The test-only fault hook: inert unless armed, dies by SIGKILL exactly at the chosen hit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from newswire.errors import SettingsError
from newswire.faults import fault_point

SCRIPT = (
    "from newswire.faults import fault_point\n"
    "for hit in (1, 2, 3):\n"
    "    fault_point('mid_batch')\n"
    "    print('survived', hit, flush=True)\n"
)


def test_unarmed_points_do_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEWSWIRE_FAULT", raising=False)
    fault_point("mid_batch")
    monkeypatch.setenv("NEWSWIRE_FAULT", "after_warehouse_commit")
    fault_point("mid_batch")  # another point is armed: this one stays inert


def test_unknown_point_is_refused_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSWIRE_FAULT", "after_lunch")
    with pytest.raises(SettingsError, match="unknown fault point"):
        fault_point("mid_batch")


def test_armed_point_kills_the_process_at_the_nth_hit() -> None:
    env = {**os.environ, "NEWSWIRE_FAULT": "mid_batch@2"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert proc.stdout.split("\n")[:-1] == ["survived 1"]
