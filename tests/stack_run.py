"""One ``newswire_ingest`` cycle through the real local stack, on any executor and feed list (stack tests, and
measurements by hand).

:func:`run_ingest_cycle` starts the stack (as ``newswire up`` does, with every DAG paused so the stack can be
measured idle), unpauses ``newswire_ingest`` so the scheduler starts its run, waits for that run to finish and
returns what a test asserts on: the run, every task instance (with the host that ran it), the warehouse and
timings. The caller stops the stack with ``make down`` (:func:`make_down`) and checks nothing is left.

By hand, e.g. the LocalExecutor against the CeleryExecutor on the sample sites::

    .venv/bin/python tests/stack_run.py --executor local
    .venv/bin/python tests/stack_run.py --executor celery --workers 2 --feeds my-feeds.opml
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

from devtools import stack
from devtools.stack_executor import ExecutorConfig
from newswire.report import INVARIANT_SQL
from newswire.settings import load_settings
from newswire.warehouse import Warehouse

REPO = Path(__file__).resolve().parent.parent
INGEST = "newswire_ingest"
TEST_BROKER = os.environ.get("NEWSWIRE_TEST_CELERY_BROKER", "redis://127.0.0.1:6379/5")
TEST_POSTGRES = os.environ.get("NEWSWIRE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@dataclass
class IngestCycle:
    """What one stack run of ``newswire_ingest`` left behind."""

    state: Mapping[str, Any]  # the stack record (stack.json) at start
    run: dict[str, Any]  # the DAG run as the REST API returns it
    task_instances: list[dict[str, Any]]
    healthy_after: float  # seconds from `up` until every component (and worker) was healthy
    idle_rss_mib: float  # summed RSS of the stack before any DAG ran
    idle_pss_mib: float  # the same, shared pages (forked workers) counted once
    idle_processes: int
    warehouse_url: str

    @property
    def run_seconds(self) -> float:
        """From the run's start to its end, by the scheduler's clock."""
        start, end = (datetime.fromisoformat(self.run[k].replace("Z", "+00:00")) for k in ("start_date", "end_date"))
        return (end - start).total_seconds()

    @property
    def hosts(self) -> set[str]:
        return {ti["hostname"] for ti in self.task_instances if ti["hostname"]}

    def accounting_violations(self) -> list[dict[str, Any]]:
        return Warehouse(self.warehouse_url).query(INVARIANT_SQL)

    def summary(self) -> str:
        idle = f"{self.idle_processes} processes, {self.idle_rss_mib:.0f} MiB RSS ({self.idle_pss_mib:.0f} MiB PSS)"
        return (
            f"{self.state['executor']['kind']}: healthy after {self.healthy_after:.1f} s; idle {idle}; "
            f"{INGEST} {self.run['state']} in {self.run_seconds:.1f} s, "
            f"{len(self.task_instances)} task instances on {sorted(self.hosts)}"
        )


def run_ingest_cycle(
    home: Path,
    *,
    port: int,
    executor: ExecutorConfig,
    feeds: Path | None = None,
    sample_port: int = 18700,
    fetch_pool_slots: int = 3,
    timeout: float = 300.0,
) -> IngestCycle:
    """Start the stack on ``executor``, run one ``newswire_ingest`` cycle over ``feeds`` (``None``: the bundled
    sample sites, served on ``sample_port`` and up), and return it. The stack stays up: call :func:`make_down`."""
    # The stack creates DAGs unpaused; here they start paused, so that nothing runs while the idle stack is
    # measured and only newswire_ingest runs after (no archive or transform run competing for the cores).
    extra_env = {"AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True"}
    if feeds is not None:  # loopback feeds: the tasks must be allowed to fetch private addresses
        extra_env |= {"NEWSWIRE_FEEDS": str(feeds.resolve()), "NEWSWIRE_ALLOW_PRIVATE_NETWORKS": "true"}
    config = stack.StackConfig(
        home=home,
        port=port,
        sample=feeds is None,
        sample_base_port=sample_port,
        host_interval=0.2,
        fetch_pool_slots=fetch_pool_slots,
        timeout=timeout,
        extra_env=extra_env,
        executor=executor,
        unpause=(),
    )
    state = stack.up(config, log=lambda *_: None)
    idle = stack.status(home)
    token = stack.api_token(state["url"], state["username"], stack.admin_password(home / "airflow", "admin"))
    stack.set_paused(state["url"], token, INGEST, paused=False)  # catchup=False: one run, for the latest interval
    run = wait_for_run(state["url"], token, INGEST, timeout=timeout)
    tis = task_instances(state["url"], token, INGEST, run["dag_run_id"])
    return IngestCycle(
        state=state,
        run=run,
        task_instances=tis,
        healthy_after=float(state["healthy_after_seconds"]),
        idle_rss_mib=idle.rss_mib,
        idle_pss_mib=sum(pss_kib(pid) for pid in stack.stack_processes(state)) / 1024,
        idle_processes=idle.processes,
        warehouse_url=load_settings(home=home).resolved_warehouse_url,
    )


def pss_kib(pid: int) -> int:
    """Proportional set size of one process: its private memory plus its share of pages it shares."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def wait_for_run(url: str, token: str, dag_id: str, *, timeout: float) -> dict[str, Any]:
    """The DAG's first run, once it has finished (success or failure)."""
    deadline = time.monotonic() + timeout
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        runs = stack.api(url, token, "GET", f"dags/{dag_id}/dagRuns?order_by=start_date&limit=1")["dag_runs"]
        if runs and runs[0]["state"] in ("success", "failed"):
            return runs[0]
        time.sleep(2.0)
    raise TimeoutError(f"{dag_id} did not finish a run within {timeout:.0f} s (last: {runs})")


def task_instances(url: str, token: str, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """Every task instance of one run (mapped ones included), page by page."""
    found: list[dict[str, Any]] = []
    while True:
        page = stack.api(
            url, token, "GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100&offset={len(found)}"
        )
        found += page["task_instances"]
        if not page["task_instances"] or len(found) >= page["total_entries"]:
            return found


def make_down(home: Path) -> subprocess.CompletedProcess[str]:
    """``make down`` for the stack recorded in ``home`` (never reinstalling from inside a test)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSWIRE_", "AIRFLOW"))}
    env["NEWSWIRE_HOME"] = str(home)
    cmd = ["make", "--no-print-directory", "-o", ".venv/.installed-stamp", "down"]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


@contextmanager
def celery_resources(broker_url: str = TEST_BROKER, server_url: str = TEST_POSTGRES) -> Iterator[ExecutorConfig]:
    """A CeleryExecutor config on a private, throwaway Airflow metadata DB (dropped afterwards) and an emptied
    broker DB (tasks left queued by an earlier, killed stack must not reach these workers)."""
    from kombu import Connection

    def flush() -> None:
        with Connection(broker_url) as conn:
            conn.default_channel.client.flushdb()

    name = f"newswire_airflow_test_{uuid.uuid4().hex[:10]}"
    flush()
    try:
        yield ExecutorConfig(
            "celery",
            workers=2,
            worker_concurrency=2,
            broker_url=broker_url,
            database_url=urlunsplit(urlsplit(server_url)._replace(path=f"/{name}")),
        )
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executor", choices=("local", "celery"), default="celery")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--feeds", type=Path, help="feed list (default: the bundled sample sites)")
    parser.add_argument("--port", type=int, default=8140)
    parser.add_argument("--sample-port", type=int, default=18740)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="newswire-stack-run-") as tmp:
        home = Path(tmp) / "home"
        with celery_resources() as celery:
            executor = ExecutorConfig() if args.executor == "local" else replace(celery, workers=args.workers)
            try:
                cycle = run_ingest_cycle(
                    home, port=args.port, executor=executor, feeds=args.feeds, sample_port=args.sample_port
                )
                print(cycle.summary())
                print(json.dumps({"accounting_violations": cycle.accounting_violations()}, default=str))
            finally:
                print(make_down(home).stdout.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
