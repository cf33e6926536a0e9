"""The local stack on the CeleryExecutor: two ``airflow celery worker`` processes (Redis broker, PostgreSQL
metadata DB) run one ``newswire_ingest`` cycle over more feeds than Airflow can map tasks (1,500 tiny feeds on
40 loopback hosts) between them, and ``make down`` stops everything."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from ports import free_block
from stack_run import celery_resources, make_down, run_ingest_cycle
from test_stack import leftovers

from bench.feedfarm import FeedFarm
from devtools import stack

FEEDS, HOSTS = 1500, 40

pytestmark = [pytest.mark.airflow, pytest.mark.postgres]


def test_celery_stack_spreads_an_ingest_cycle_over_two_workers(tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_block(1)
    # Two feeds per host list one shared article page; the other feeds are empty. Another network than
    # test_stack_scale's farm, should the two ever run side by side.
    with celery_resources() as executor, FeedFarm(FEEDS, HOSTS, network="127.0.13", with_entry=2 * HOSTS) as farm:
        feeds = farm.write_opml(tmp_path / "feeds.opml")
        try:
            cycle = run_ingest_cycle(home, port=port, executor=executor, feeds=feeds)
            state = cycle.state
            print(f"\n{cycle.summary()}")
            names = {p["name"] for p in state["processes"]}
            assert names == {"broker", *stack.COMPONENTS, "worker-1", "worker-2"}
            polls = farm.feed_polls()
            assert set(polls) == set(range(FEEDS)), f"{FEEDS - len(polls)} feeds never polled"
            assert max(polls.values()) == 1, "a feed was polled twice in one cycle"
            report = stack.status(home)
            assert report.health is not None and report.health["celery_workers"]["status"] == "healthy", report
            assert cycle.run["state"] == "success", cycle.run
            assert cycle.task_instances and {ti["state"] for ti in cycle.task_instances} == {"success"}
            # Each worker records its name as the host of the task instances it ran: both took a share. (With the
            # pool's 3 slots, 3 tasks are queued at once, and a worker reserves at most its 2 slots' worth.)
            assert cycle.hosts == {"worker-1", "worker-2"}, cycle.hosts
            assert cycle.accounting_violations() == []
        finally:
            stopped = make_down(home)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    time.sleep(0.5)
    assert stack.stack_processes(state) == set()
    assert leftovers(home, port) == []
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open"
    assert not (home / "stack.json").exists()
