"""A polling cycle of the REAL local stack (``newswire up``) against thousands of loopback feeds.

``python -m bench.stack_cycle --feeds 10000 --hosts 100`` serves a :class:`~bench.feedfarm.FeedFarm`, polls it
once in-process the way ``newswire run`` does (the reference rate), starts the stack with the farm's OPML as
its feed list, and then measures, with default settings:

* a full cycle: every feed polled by one ``newswire_ingest`` run (90 % answer 304, 10 % carry one or two new
  entries), while a ``newswire_archive`` daily run is active; its time, feeds/s, and the ratio to the
  in-process rate on the same list;
* the peak summed RSS of the stack's processes (task processes included) during that cycle;
* freshness: entries published on the active feeds at known times, for ``--freshness-minutes``, with the
  stack on its own schedule; the delay until each reaches ``newswire.events`` (p50, p95).

The stack helpers (:func:`start_stack`, :class:`Stack`) are what the stack tests drive too: ``up_args`` and
``env`` choose the executor and its settings, so the same cycle runs on another executor.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.feedfarm import FeedFarm
from devtools import stack

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"
PAUSED_AT_START = ("--paused", "newswire_ingest", "--paused", "newswire_archive")


# -- driving a stack -----------------------------------------------------------------------------------------


@dataclass
class Stack:
    """A running stack started by :func:`start_stack`: its API, and what to stop."""

    home: Path
    url: str
    token: str
    env: dict[str, str]

    def api(self, method: str, path: str, body: Any = None) -> Any:
        return stack.api(self.url, self.token, method, path, body, timeout=30)

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None, logical_date: datetime | None = None) -> str:
        body = {"conf": dict(conf or {}), "logical_date": logical_date.isoformat() if logical_date else None}
        return str(self.api("POST", f"dags/{dag_id}/dagRuns", body)["dag_run_id"])

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.api("GET", f"dags/{dag_id}/dagRuns/{run_id}")["state"])

    def wait(self, dag_id: str, run_id: str, timeout: float, poll: float = 2.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            state = self.run_state(dag_id, run_id)
            if state in ("success", "failed") or time.monotonic() > deadline:
                return state
            time.sleep(poll)

    def first_run(self, dag_id: str, timeout: float, poll: float = 2.0) -> str:
        """The id of the DAG's first run, once the scheduler has created it (e.g. on unpausing the DAG)."""
        deadline = time.monotonic() + timeout
        while True:
            runs = self.api("GET", f"dags/{dag_id}/dagRuns?order_by=id&limit=1")["dag_runs"]
            if runs:
                return str(runs[0]["dag_run_id"])
            if time.monotonic() > deadline:
                raise TimeoutError(f"the scheduler created no {dag_id} run within {timeout:.0f} s")
            time.sleep(poll)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return list(self.api("GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=1000")["task_instances"])

    def pause(self, dag_id: str, *, paused: bool = True) -> None:
        stack.set_paused(self.url, self.token, dag_id, paused=paused)

    def rss_mib(self) -> float:
        return stack.status(self.home).rss_mib

    def stop(self) -> None:
        stop_stack(self.home, self.env)


def stack_env(home: Path, feeds: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment ``newswire up`` runs in: a private home, the feed list, loopback allowed, and this
    checkout first on ``PYTHONPATH``.

    Why the path: ``newswire up`` is the virtualenv's console script, whose ``sys.path`` does not hold the
    working directory, so without it the stack (its DAG folder, every task) imports the checkout the virtualenv
    was installed from (an editable install), not the one the bench runs from: a "before" run from a
    ``git archive`` with another worktree's virtualenv would measure that worktree's code."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSWIRE_", "AIRFLOW"))}
    env.update(
        {
            "NEWSWIRE_HOME": str(home),
            "NEWSWIRE_FEEDS": str(feeds),
            "NEWSWIRE_ALLOW_PRIVATE_NETWORKS": "true",
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
        }
    )
    env.update(extra or {})
    return env


def start_stack(home: Path, port: int, env: Mapping[str, str], up_args: Sequence[str] = ()) -> Stack:
    """``newswire up --port PORT *up_args`` (``make up``'s command) in ``env``; raises with its output on failure."""
    cmd = [str(Path(sys.executable).parent / "newswire"), "up", "--port", str(port), *up_args]
    proc = subprocess.run(cmd, env=dict(env), cwd=REPO, capture_output=True, text=True, timeout=400)
    if proc.returncode != 0:
        with contextlib.suppress(Exception):
            stop_stack(home, env)
        raise RuntimeError(f"newswire up failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    state = json.loads((home / stack.STATE_FILE).read_text())
    try:
        password = stack.admin_password(home / "airflow", "admin")
        for attempt in range(6):  # a busy api-server may not answer the first login in time
            try:
                token = stack.api_token(state["url"], "admin", password)
                break
            except OSError:
                if attempt == 5:
                    raise
                time.sleep(5)
    except BaseException:
        stop_stack(home, env)
        raise
    return Stack(home=home, url=state["url"], token=token, env=dict(env))


def stop_stack(home: Path, env: Mapping[str, str]) -> None:
    cmd = [str(Path(sys.executable).parent / "newswire"), "down"]
    subprocess.run(cmd, env=dict(env), cwd=REPO, capture_output=True, text=True, timeout=120)


class RssSampler:
    """Samples the stack's summed RSS every ``interval`` seconds in a thread; keeps the peak."""

    def __init__(self, home: Path, interval: float = 2.0) -> None:
        self.home, self.interval = home, interval
        self.peak = 0.0
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                value = stack.status(self.home).rss_mib
                self.samples.append(value)
                self.peak = max(self.peak, value)
            self._stop.wait(self.interval)


# -- the measurement -----------------------------------------------------------------------------------------


def in_process_rate(farm: FeedFarm, feeds_file: Path, work: Path, active: Sequence[int]) -> dict[str, Any]:
    """``newswire run``'s ingest path on the same list: a first pass (stores ETags), then the timed pass with
    the same 90 % / 10 % mix the stack cycle sees."""
    from ingest.feedlist import load_feed_list
    from ingest.stage import ingest_feeds
    from newswire.broker import EmbeddedBroker
    from newswire.settings import load_settings

    settings = load_settings(home=work / "inproc", allow_private_networks=True, feeds=feeds_file)
    feeds = load_feed_list(feeds_file)
    with EmbeddedBroker() as broker:
        t0 = time.monotonic()
        ingest_feeds(settings, broker.bootstrap, feeds, run_id="inproc-first")
        first = time.monotonic() - t0
        for index in active:
            farm.publish(index)
        t0 = time.monotonic()
        summary = ingest_feeds(settings, broker.bootstrap, feeds, run_id="inproc-timed")
        seconds = time.monotonic() - t0
    return {
        "first_pass_seconds": round(first, 1),
        "seconds": round(seconds, 1),
        "feeds": len(summary.reports),
        "failed": len(summary.failures),
        "feeds_per_s": round(len(feeds) / seconds, 1),
        "new": summary.totals()["new"],
    }


def first_scheduled_cycle(st: Stack, *, timeout: float, poll: float = 2.0) -> dict[str, Any]:
    """Unpause ``newswire_ingest`` (created paused) and measure the run the scheduler starts for it.

    The warm-up is the stack's own first run, not a manual one: an unpaused DAG gets a scheduled run at once
    (``catchup=False``: one, for the latest interval), and a manual run triggered beside it queued behind it
    (``max_active_runs=1``), found every feed already polled, claimed none and mapped no shard (Airflow marks
    the unmapped task ``skipped``): the report then showed the wrong run, "shards 1, skipped, polled 0".
    """
    t0 = time.monotonic()
    st.pause("newswire_ingest", paused=False)
    return measure_run(st, st.first_run("newswire_ingest", timeout=120, poll=poll), t0, timeout, poll=poll)


def measure_run(st: Stack, run_id: str, t0: float, timeout: float, poll: float = 2.0) -> dict[str, Any]:
    """Wait for ``run_id`` of ``newswire_ingest`` to end; its duration, its shard tasks' durations, states and
    tries (``t0``: when it was asked for, for the time from the request)."""
    state = st.wait("newswire_ingest", run_id, timeout, poll)
    seconds = time.monotonic() - t0
    tis = st.task_instances("newswire_ingest", run_id)
    # map_index -1: the unmapped task of a claim that mapped no shard (Airflow marks it skipped), not a shard.
    shards = [t for t in tis if t["task_id"] == "ingest_shard" and int(t.get("map_index", 0)) >= 0]
    run = st.api("GET", f"dags/newswire_ingest/dagRuns/{run_id}")
    began, ended = (datetime.fromisoformat(str(run[k]).replace("Z", "+00:00")) for k in ("start_date", "end_date"))
    return {
        "run_id": run_id,
        "state": state,
        # The run's own duration (a scheduled run may have made this one queue); and trigger to end.
        "seconds": round((ended - began).total_seconds(), 1),
        "seconds_from_trigger": round(seconds, 1),
        "shard_seconds": sorted(round(float(t["duration"]), 1) for t in shards if t.get("duration") is not None),
        "shards": len(shards),
        "shard_states": sorted({str(t["state"]) for t in shards}),
        # More than one try: a shard failed and Airflow retried it (its retry delay is in the run's time).
        "shard_tries": sorted(int(t.get("try_number") or 0) for t in shards),
    }


ARCHIVE_NOT_STARTED = "not started"


def archive_run_beside(st: Stack, timeout: float = 120, poll: float = 2.0) -> str | None:
    """The daily archive run the scheduler starts on unpausing ``newswire_archive``, or None if it made none
    within ``timeout``: the measured ingest run is already triggered then, and a missing archive run only makes
    the cycle lighter, so losing the whole (long) measurement to it would be the worse outcome."""
    try:
        return st.first_run("newswire_archive", timeout=timeout, poll=poll)
    except TimeoutError as exc:
        print(f"  warning: {exc}; measuring the cycle without it", flush=True)
        return None


def archive_state(st: Stack, run_id: str | None) -> str:
    """The archive run's state, or ARCHIVE_NOT_STARTED when archive_run_beside found none."""
    return ARCHIVE_NOT_STARTED if run_id is None else st.run_state("newswire_archive", run_id)


def warehouse_counts(home: Path, run_id: str, url: str | None = None) -> dict[str, Any]:
    from newswire.report import accounting_violations
    from newswire.settings import load_settings
    from newswire.warehouse import Warehouse

    warehouse = Warehouse(url or load_settings(home=home).resolved_warehouse_url)
    rows = warehouse.query(
        "SELECT status, COUNT(*) AS n FROM ingest_runs WHERE run_id = ? GROUP BY status ORDER BY status", (run_id,)
    )
    return {
        "statuses": {r["status"]: int(r["n"]) for r in rows},
        "polled": sum(int(r["n"]) for r in rows),
        "accounting_violations": len(accounting_violations(warehouse)),
    }


def freshness(st: Stack, farm: FeedFarm, active: Sequence[int], minutes: float, grace: float) -> dict[str, Any]:
    """Publish entries on active feeds at random moments for ``minutes``; time their arrival on newswire.events."""
    from newswire.broker import running_embedded_broker
    from newswire.messaging import make_consumer
    from newswire.settings import load_settings

    settings = load_settings(home=st.home)
    bootstrap = running_embedded_broker(st.home)
    consumer = make_consumer(
        bootstrap,
        settings,
        group_id=None,
        topics=["newswire.events"],
        auto_offset_reset="latest",
        enable_auto_commit=False,
    )
    consumer.poll(timeout_ms=2000)  # assignment: only events from now on
    rng = random.Random(5)
    end = time.time() + minutes * 60
    schedule = sorted(time.time() + rng.uniform(0, minutes * 60) for _ in range(max(1, len(active) // 4)))
    published: dict[str, float] = {}
    arrived: dict[str, float] = {}
    stop = threading.Event()

    def consume() -> None:
        while not stop.is_set():
            for records in consumer.poll(timeout_ms=500).values():
                for message in records:
                    text = message.value.decode("utf-8", "replace") if message.value else ""
                    now = time.time()
                    for path in [p for p in list(published) if p not in arrived and p in text]:
                        arrived[path] = now

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    for moment in schedule:
        time.sleep(max(0.0, moment - time.time()))
        url = farm.publish(rng.choice(active))
        published["/" + url.split("/", 3)[3]] = time.time()
    deadline = end + grace * 60
    while time.time() < deadline and len(arrived) < len(published):
        time.sleep(5)
    stop.set()
    reader.join(5)
    consumer.close()
    delays = sorted(arrived[p] - published[p] for p in arrived)

    def pct(q: float) -> float | None:
        return round(delays[min(len(delays) - 1, int(q * len(delays)))] / 60, 2) if delays else None

    missing = len(published) - len(arrived)
    # An entry that never arrived counts as later than every arrival for the percentiles.
    return {
        "published": len(published),
        "arrived": len(arrived),
        "missing": missing,
        "p50_minutes": pct(0.5),
        "p95_minutes": pct(0.95) if missing <= 0.05 * len(published) else None,
        "max_minutes": round(delays[-1] / 60, 2) if delays else None,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"feeds": args.feeds, "hosts": args.hosts, "started_at": datetime.now(UTC).isoformat()}
    report["load_before"] = os.getloadavg()
    rng = random.Random(3)
    work = Path(tempfile.mkdtemp(prefix="stack-cycle-"))
    with FeedFarm(args.feeds, args.hosts, network=args.network, with_entry=0) as farm:
        feeds_file = farm.write_opml(work / "feeds.opml")
        active = sorted(rng.sample(range(args.feeds), args.feeds // 10))
        if not args.skip_in_process:
            print("in-process reference pass (newswire run's ingest path) ...", flush=True)
            report["in_process"] = in_process_rate(farm, feeds_file, work, active)
            print(f"  {report['in_process']}", flush=True)
        home = work / "home"
        env = stack_env(home, feeds_file, dict(kv.split("=", 1) for kv in args.env))
        print("starting the stack ...", flush=True)
        # Both created paused, so that nothing polls before the warm-up and no daily archive run competes with
        # it (pausing the archive after `up` left a window in which its scheduled run fetched the feeds).
        st = start_stack(home, args.port, env, [*args.up_arg, *PAUSED_AT_START])
        try:
            print("warm-up cycle: every feed is new (the stack's first scheduled run) ...", flush=True)
            report["warm_up"] = first_scheduled_cycle(st, timeout=args.timeout)
            url = env.get("NEWSWIRE_WAREHOUSE_URL")
            report["warm_up"].update(warehouse_counts(home, report["warm_up"]["run_id"], url))
            print(f"  {report['warm_up']}", flush=True)
            for index in active:
                for _ in range(rng.randint(1, 2)):
                    farm.publish(index)
            with RssSampler(home) as rss:
                # Unpaused, the archive gets its scheduled run for the previous day at once: the daily run.
                st.pause("newswire_archive", paused=False)
                print("measured cycle: every feed, 10 % with new entries, daily archive run active ...", flush=True)
                t0 = time.monotonic()
                run_id = st.trigger("newswire_ingest", {"poll_all": True})
                archive_run = archive_run_beside(st)
                cycle = measure_run(st, run_id, t0, args.timeout)
                cycle.update(warehouse_counts(home, cycle["run_id"], url))
                cycle["archive_state_at_end"] = archive_state(st, archive_run)
                cycle["feeds_per_s"] = round(cycle["polled"] / cycle["seconds"], 1)
            cycle["peak_rss_mib"] = round(rss.peak, 0)
            report["cycle"] = cycle
            if "in_process" in report:
                report["ratio_to_in_process"] = round(cycle["feeds_per_s"] / report["in_process"]["feeds_per_s"], 3)
            print(f"  {cycle}", flush=True)
            if args.freshness_minutes > 0:
                print(f"freshness: publishing for {args.freshness_minutes} min on the stack's schedule ...", flush=True)
                report["freshness"] = freshness(st, farm, active, args.freshness_minutes, args.grace_minutes)
                print(f"  {report['freshness']}", flush=True)
            report["archive_final_state"] = archive_state(st, archive_run)
        finally:
            st.stop()
    report["load_after"] = os.getloadavg()
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stack_cycle", description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=10_000)
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--network", default="127.0.12", help="first three octets of the loopback hosts")
    parser.add_argument("--port", type=int, default=8120, help="Airflow UI/API port of the stack")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds one cycle may take")
    parser.add_argument("--freshness-minutes", type=float, default=12)
    parser.add_argument("--grace-minutes", type=float, default=10)
    parser.add_argument("--skip-in-process", action="store_true")
    parser.add_argument("--up-arg", action="append", default=[], help="extra `newswire up` argument (repeatable)")
    parser.add_argument("--env", action="append", default=[], help="extra KEY=VALUE for the stack (repeatable)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    report = run(args)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"stack-cycle-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps(report, indent=2, default=str))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
