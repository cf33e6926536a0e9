"""``bench.stack_cycle``'s warm-up without a stack: it measures the run the stack itself starts, and counts only
mapped shard tasks as shards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.stack_cycle import ARCHIVE_NOT_STARTED, Stack, archive_run_beside, archive_state, first_scheduled_cycle

RUN = "scheduled__2026-12-07T22:25:00+00:00"


class FakeStack(Stack):
    """Answers the Airflow API as a stack whose scheduler creates one ingest run once the DAG is unpaused."""

    def __init__(self, task_instances: list[dict[str, Any]]) -> None:
        super().__init__(home=Path("/nonexistent"), url="http://fake", token="t", env={})
        self.paused = True
        self.listings = 0
        self.tis = task_instances
        self.calls: list[str] = []

    def pause(self, dag_id: str, *, paused: bool = True) -> None:
        self.calls.append(f"pause {dag_id} {paused}")
        self.paused = paused

    def api(self, method: str, path: str, body: Any = None) -> Any:
        self.calls.append(f"{method} {path}")
        if path.startswith("dags/newswire_ingest/dagRuns?"):
            self.listings += 1
            # The scheduler needs a moment after the unpause: the first listing is still empty.
            created = not self.paused and self.listings > 1
            return {"dag_runs": [{"dag_run_id": RUN}] if created else []}
        if path == f"dags/newswire_ingest/dagRuns/{RUN}":
            return {"state": "success", "start_date": "2026-12-07T22:27:16Z", "end_date": "2026-12-07T22:30:20Z"}
        if path.endswith("/taskInstances?limit=1000"):
            return {"task_instances": self.tis}
        raise AssertionError(f"unexpected call {method} {path}")


def shard(index: int, tries: int = 1, duration: float = 100.0) -> dict[str, Any]:
    return {
        "task_id": "ingest_shard",
        "map_index": index,
        "state": "success",
        "duration": duration,
        "try_number": tries,
    }


def test_the_warm_up_is_the_run_the_scheduler_starts_once_ingest_is_unpaused() -> None:
    claim = {"task_id": "claim_feeds", "map_index": -1, "state": "success", "duration": 6.5, "try_number": 1}
    st = FakeStack([claim, shard(0, tries=2, duration=72.4), shard(1, duration=118.8)])
    report = first_scheduled_cycle(st, timeout=5, poll=0)
    assert st.calls[0] == "pause newswire_ingest False"  # nothing is listed (or triggered) before the unpause
    assert not any(c.startswith("POST") for c in st.calls)  # no manual run queued behind the scheduled one
    assert report["run_id"] == RUN and report["state"] == "success"
    assert report["seconds"] == 184.0
    assert report["shards"] == 2 and report["shard_seconds"] == [72.4, 118.8]
    assert report["shard_tries"] == [1, 2]  # the retried shard shows


def test_a_run_that_mapped_no_shard_reports_none() -> None:
    # Airflow's placeholder for a mapped task over an empty list: one unmapped instance, skipped.
    skipped = {"task_id": "ingest_shard", "map_index": -1, "state": "skipped", "duration": None, "try_number": 0}
    report = first_scheduled_cycle(FakeStack([skipped]), timeout=5, poll=0)
    assert report["shards"] == 0 and report["shard_states"] == [] and report["shard_tries"] == []


class ArchiveStack(Stack):
    """Answers the archive DAG's listing: with its one run, or (``runs=False``) a scheduler that made none."""

    def __init__(self, *, runs: bool) -> None:
        super().__init__(home=Path("/nonexistent"), url="http://fake", token="t", env={})
        self.runs = runs

    def api(self, method: str, path: str, body: Any = None) -> Any:
        if path.startswith("dags/newswire_archive/dagRuns?"):
            return {"dag_runs": [{"dag_run_id": "scheduled__2026-12-07T00:00:00+00:00"}] if self.runs else []}
        if path == "dags/newswire_archive/dagRuns/scheduled__2026-12-07T00:00:00+00:00":
            return {"state": "running"}
        raise AssertionError(f"unexpected call {method} {path}")


def test_an_archive_run_that_never_starts_does_not_end_the_measurement() -> None:
    # The measured ingest run is already triggered when the bench looks for the archive run: no TimeoutError.
    st = ArchiveStack(runs=False)
    run = archive_run_beside(st, timeout=0, poll=0)
    assert run is None
    assert archive_state(st, run) == ARCHIVE_NOT_STARTED


def test_the_archive_run_beside_the_cycle_is_reported_when_it_starts() -> None:
    st = ArchiveStack(runs=True)
    run = archive_run_beside(st, timeout=0, poll=0)
    assert run == "scheduled__2026-12-07T00:00:00+00:00"
    assert archive_state(st, run) == "running"
