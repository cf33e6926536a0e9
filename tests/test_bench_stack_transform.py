"""``bench.stack_transform``'s bookkeeping without a stack: when the transform has caught up with an ingest run,
and which task a process was."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bench import stack_cycle
from bench.stack_cycle import REPO, stack_env
from bench.stack_transform import ProcessPeaks, wait_transform

SHARDS_DONE = datetime(2026, 12, 7, 8, 0, 0, tzinfo=UTC)


class ScriptedStack:
    """Answers each listing of the transform's runs with the next state of a script (the last one repeats)."""

    def __init__(self, script: list[list[dict[str, Any]]]) -> None:
        self.script = script
        self.calls = 0

    def api(self, method: str, path: str, body: Any = None) -> Any:
        runs = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        return {"dag_runs": runs}


def run(start: str, state: str) -> dict[str, Any]:
    return {"dag_run_id": f"r-{start}", "start_date": f"2026-12-07T{start}Z", "state": state}


def test_the_transform_has_caught_up_only_after_a_run_that_started_after_the_last_shard_finished() -> None:
    early = run("07:59:00", "success")  # started before the last shard ended: may have missed its articles
    script = [
        [early],
        [early, run("08:00:05", "queued")],
        [early, run("08:00:05", "running")],
        [early, run("08:00:05", "success")],
    ]
    stack = ScriptedStack(script)
    runs = wait_transform(stack, SHARDS_DONE, timeout=5, settle=0, poll=0)  # type: ignore[arg-type]
    assert [r["state"] for r in runs] == ["success", "success"] and stack.calls == 5  # then one settling look


def test_a_run_queued_while_settling_is_waited_for() -> None:
    done = [run("07:59:00", "success"), run("08:00:05", "success")]
    script = [done, [*done, run("08:00:30", "queued")], [*done, run("08:00:30", "success")]]
    runs = wait_transform(ScriptedStack(script), SHARDS_DONE, timeout=5, settle=0, poll=0)  # type: ignore[arg-type]
    assert len(runs) == 3 and all(r["state"] == "success" for r in runs)


def test_a_transform_that_never_catches_up_times_out() -> None:
    with pytest.raises(TimeoutError):
        wait_transform(ScriptedStack([[run("07:59:00", "success")]]), SHARDS_DONE, timeout=0.05, poll=0)  # type: ignore[arg-type]


def test_task_processes_are_named_by_their_task_instance() -> None:
    peaks = ProcessPeaks(Path("/nonexistent"))
    peaks.baseline = {1}
    peaks.peaks = {1: (900.0, "airflow scheduler"), 2: (500.0, "airflow worker -- ti-a  "), 3: (700.0, "python x")}
    peaks.cpu = {2: 12.34}
    found = peaks.new_processes({"ti-a": "ingest_shard[0]"})
    assert found == [
        {"pid": 3, "task": None, "peak_rss_mib": 700.0, "cpu_seconds": None, "cmd": "python x"},
        {
            "pid": 2,
            "task": "ingest_shard[0]",
            "peak_rss_mib": 500.0,
            "cpu_seconds": 12.3,
            "cmd": "airflow worker -- ti-a",
        },
    ]


def test_the_stack_imports_the_checkout_the_bench_runs_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``newswire up`` is a console script, whose sys.path lacks the working directory: only PYTHONPATH makes
    it (and its tasks) import the bench's checkout rather than the one the virtualenv's editable install names.

    The bench's checkout is played by a stand-in directory whose ``devtools`` names a DAG folder of its own: from
    this worktree the editable install and the bench's checkout are the same directory, and an import of either
    would look right."""
    checkout = tmp_path / "archive"
    (checkout / "devtools").mkdir(parents=True)
    (checkout / "devtools" / "__init__.py").write_text(f"DAGS_FOLDER = {str(checkout / 'dags')!r}\n")
    monkeypatch.setattr(stack_cycle, "REPO", checkout)
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    env = stack_env(tmp_path / "home", tmp_path / "feeds.toml")
    assert env["PYTHONPATH"].split(os.pathsep) == [str(checkout), "/elsewhere"]
    # As a console script runs: sys.path[0] is the interpreter's bin directory, not the working directory.
    code = (
        f"import sys; sys.path[0] = {str(Path(sys.executable).parent)!r}; import devtools; print(devtools.DAGS_FOLDER)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert out.stdout.strip() == str(checkout / "dags"), out.stderr
    # Without the path the same command imports the editable install's checkout: the check above can fail.
    env.pop("PYTHONPATH")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert out.stdout.strip() == str(REPO / "dags"), out.stderr
