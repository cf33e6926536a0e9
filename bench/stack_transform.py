"""The transform's throughput on the REAL local stack (``newswire up``), over ~2,000 articles from loopback sites.

``python -m bench.stack_transform --articles 2000`` generates a synthetic corpus (:mod:`bench.synthetic`: real
page weights, syndicated copies, stories covered by several outlets), serves it from loopback with per-response
latency (:class:`~devtools.devserver.CorpusServer`), starts the stack on its feed list (the archive paused, an
ingest schedule with no interval due), triggers one ``newswire_ingest`` run over every feed and lets the stack do
the rest as it does for users: each finished shard updates the articles asset, on which ``newswire_transform``
runs. It reports:

* the shard tasks' durations and the ingest run's;
* every transform run: its task's duration and the messages it consumed, and the transform's articles/s (per
  task, and per second inside the warehouse batches, read from ``transform_batches`` once the stack is down);
* end to end: from the ingest run's start to the end of the transform run that stored its last article;
* each task process's peak RSS and CPU seconds, and the stack's peak summed RSS (sampled every second);
* what loading the language identifier and the sentence encoder costs one process (time, RSS), measured in a
  fresh interpreter with the stack's environment.

``--sequential`` keeps ``newswire_transform`` paused until the ingest run has finished, so that it runs alone (its
own rate, without shards sharing the cores; the shards without a transform beside them). ``--env KEY=VALUE``
passes settings to the stack (e.g. ``NEWSWIRE_SHARD_ENRICH=false``). Every number comes from one run; the VM's
speed drifts between runs, so compare before/after runs made back to back.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from bench.report import emit
from bench.stack_cycle import Stack, stack_env, start_stack
from bench.synthetic import CorpusSpec, generate_corpus
from devtools import stack
from devtools.devserver import CorpusServer

INGEST = "newswire_ingest"
TRANSFORM = "newswire_transform"

# What one task process pays for the models, measured in a fresh interpreter: the imports a shard task has
# anyway first (extraction, the clustering features), then each model loaded and used once.
_MODEL_COST = """
import json, time, psutil
me = psutil.Process()
import ingest.extract_workers, pipeline.enrich
rss0 = me.memory_info().rss
text = "The harbour council approved the budget for the new bridge after a long debate on Tuesday. " * 8
from newswire.langid import detect_language
t0 = time.perf_counter(); detect_language("Budget approved", text); t1 = time.perf_counter()
rss1 = me.memory_info().rss
from newswire.embedding import DEFAULT_MODEL, embed_articles, encoder_for
embed_articles(encoder_for(DEFAULT_MODEL), [("Budget approved", text)]); t2 = time.perf_counter()
rss2 = me.memory_info().rss
t3 = time.perf_counter()
for _ in range(20):
    embed_articles(encoder_for(DEFAULT_MODEL), [("Budget approved", text)])
t4 = time.perf_counter()
mib = 1 << 20
print(json.dumps({
    "imports_rss_mib": round(rss0 / mib, 1),
    "langid_load_seconds": round(t1 - t0, 3), "langid_rss_mib": round((rss1 - rss0) / mib, 1),
    "encoder_load_seconds": round(t2 - t1, 3), "encoder_rss_mib": round((rss2 - rss1) / mib, 1),
    "models_rss_mib": round((rss2 - rss0) / mib, 1), "embed_ms_per_article": round((t4 - t3) / 20 * 1000, 2),
}))
"""


def model_cost(env: Mapping[str, str], cwd: Path) -> dict[str, Any]:
    """Load time and resident memory of the language identifier and the encoder in a fresh process."""
    proc = subprocess.run(
        [sys.executable, "-c", _MODEL_COST], env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=300
    )
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:]}
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


class ProcessPeaks:
    """Every second, the RSS of each of the stack's processes (task processes included): each one's peak, with
    its command line, and the peak of their sum."""

    def __init__(self, home: Path, interval: float = 1.0) -> None:
        self.home, self.interval = home, interval
        self.peaks: dict[int, tuple[float, str]] = {}
        self.cpu: dict[int, float] = {}  # CPU seconds (user + system) at the last sample
        self.summed_peak = 0.0
        self.baseline: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ProcessPeaks:
        self.baseline = set(self._pids())
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _pids(self) -> set[int]:
        state = json.loads((self.home / stack.STATE_FILE).read_text())
        return stack.stack_processes(state)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                total = 0.0
                for pid in self._pids():
                    with contextlib.suppress(psutil.Error):
                        process = psutil.Process(pid)
                        rss = process.memory_info().rss / (1 << 20)
                        times = process.cpu_times()
                        self.cpu[pid] = times.user + times.system
                        total += rss
                        if rss > self.peaks.get(pid, (0.0, ""))[0]:
                            self.peaks[pid] = (rss, " ".join(process.cmdline())[:160])
                self.summed_peak = max(self.summed_peak, total)
            self._stop.wait(self.interval)

    def new_processes(self, labels: Mapping[str, str], top: int = 12) -> list[dict[str, Any]]:
        """The processes that appeared after the idle stack, largest first; a task process (``airflow worker --
        <task instance id>``) named by its task from ``labels`` (task instance id to name)."""
        found = [(rss, cmd, pid) for pid, (rss, cmd) in self.peaks.items() if pid not in self.baseline]
        out = []
        for rss, cmd, pid in sorted(found, reverse=True)[:top]:
            task = next((name for ti, name in labels.items() if ti in cmd), None)
            cpu = self.cpu.get(pid)
            out.append(
                {
                    "pid": pid,
                    "task": task,
                    "peak_rss_mib": round(rss, 1),
                    "cpu_seconds": round(cpu, 1) if cpu is not None else None,
                    "cmd": cmd.strip(),
                }
            )
        return out


def _when(value: Any) -> datetime | None:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None


def _xcom(st: Stack, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any] | None:
    """A task's return value (None when the API does not give it)."""
    with contextlib.suppress(Exception):
        path = f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value?map_index={map_index}"
        value = st.api("GET", path)["value"]
        return dict(json.loads(value) if isinstance(value, str) else value)
    return None


def transform_runs(st: Stack) -> list[dict[str, Any]]:
    return list(st.api("GET", f"dags/{TRANSFORM}/dagRuns?order_by=start_date&limit=100")["dag_runs"])


def wait_transform(
    st: Stack, after: datetime, timeout: float, settle: float = 20.0, poll: float = 2.0
) -> list[dict[str, Any]]:
    """The transform runs, once one that started after ``after`` (the last shard's end, whose asset event it
    consumed) has finished and, ``settle`` seconds later, no run is queued or running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = transform_runs(st)
        active = [r for r in runs if r["state"] not in ("success", "failed")]
        caught_up = any((_when(r["start_date"]) or after) > after and r["state"] in ("success", "failed") for r in runs)
        if caught_up and not active:
            time.sleep(settle)
            again = transform_runs(st)
            if len(again) == len(runs) and not [r for r in again if r["state"] not in ("success", "failed")]:
                return again
        time.sleep(poll)
    raise TimeoutError(f"the transform did not catch up within {timeout:.0f} s")


def warehouse_report(home: Path, env: Mapping[str, str], cwd: Path) -> dict[str, Any]:
    """Counts, the transform's batches and a fingerprint of the events (by URL path: ports differ per run), read in
    a fresh process with the stack's code once the stack is down (DuckDB admits one process at a time)."""
    code = """
import hashlib, json, sys
from urllib.parse import urlsplit
from newswire.report import accounting_violations, totals
from newswire.settings import load_settings
from newswire.warehouse import Warehouse
w = Warehouse(load_settings().resolved_warehouse_url)
batches = w.query("SELECT started_at, finished_at, messages FROM transform_batches ORDER BY started_at")
rows = w.query("SELECT e.event_id, a.url FROM event_articles e JOIN articles a USING (article_id)")
groups = {}
for r in rows:
    groups.setdefault(r["event_id"], []).append(urlsplit(r["url"]).path)
partition = sorted(sorted(g) for g in groups.values())
langs = w.query("SELECT COUNT(*) AS n FROM articles WHERE language IS NOT NULL")[0]["n"]
print(json.dumps({
    "totals": totals(w),
    "articles_with_language": int(langs),
    "accounting_violations": len(accounting_violations(w)),
    "batches": len(batches),
    "batch_messages": sum(int(b["messages"]) for b in batches),
    "batch_seconds": round(sum((b["finished_at"] - b["started_at"]).total_seconds() for b in batches), 2),
    "events_fingerprint": hashlib.sha256(json.dumps(partition).encode()).hexdigest()[:16],
}))
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=300
    )
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:]}
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def measure(st: Stack, timeout: float, *, sequential: bool = False) -> dict[str, Any]:
    """One ingest run over every feed, then the transform runs its shards' asset events start (``sequential``:
    the transform DAG, paused until the ingest run has finished, is unpaused then: it runs alone)."""
    t0 = time.monotonic()
    run_id = st.trigger(INGEST, {"poll_all": True})
    state = st.wait(INGEST, run_id, timeout)
    run = st.api("GET", f"dags/{INGEST}/dagRuns/{run_id}")
    tis = st.task_instances(INGEST, run_id)
    shards = sorted((t for t in tis if t["task_id"] == "ingest_shard"), key=lambda t: int(t["map_index"]))
    shard_reports = [_xcom(st, INGEST, run_id, "ingest_shard", int(t["map_index"])) or {} for t in shards]
    last_shard_end = max((_when(t["end_date"]) for t in shards if t.get("end_date")), default=_when(run["end_date"]))
    assert last_shard_end is not None
    if sequential:
        st.pause(TRANSFORM, paused=False)
        last_shard_end = datetime.now(UTC)
        time.sleep(20)  # the asset events queued while it was paused start a run; else one is triggered
        if not transform_runs(st):
            st.trigger(TRANSFORM)
    runs = wait_transform(st, last_shard_end, timeout)
    observed = time.monotonic() - t0
    labels = {str(t.get("id")): f"{t['task_id']}[{t.get('map_index')}]" for t in tis}
    transforms = []
    for r in runs:
        ti = st.task_instances(TRANSFORM, r["dag_run_id"])[0]
        labels[str(ti.get("id"))] = f"transform {r['dag_run_id'][:40]}"
        value = _xcom(st, TRANSFORM, r["dag_run_id"], "transform_articles") or {}
        transforms.append(
            {
                "run_id": r["dag_run_id"],
                "state": r["state"],
                "start": ti.get("start_date"),
                "end": ti.get("end_date"),
                "task_seconds": round(float(ti.get("duration") or 0.0), 1),
                "messages": value.get("messages"),
                "new_articles": value.get("new_articles"),
                "features_carried": value.get("features_carried"),
                "seconds": value.get("seconds"),
                "overlapped_shards": (_when(ti.get("start_date")) or last_shard_end) < last_shard_end,
            }
        )
    began = _when(run["start_date"])
    ended = max(_when(t["end"]) for t in transforms if t["end"])
    messages = sum(int(t["messages"] or 0) for t in transforms)
    task_seconds = sum(t["task_seconds"] for t in transforms)
    alone = [t for t in transforms if not t["overlapped_shards"]]
    working = [t for t in transforms if t["messages"]]
    working_seconds = sum(t["task_seconds"] for t in working)
    return {
        "ingest": {
            "run_id": run_id,
            "state": state,
            "seconds": round((_when(run["end_date"]) - began).total_seconds(), 1),  # type: ignore[operator]
            "shard_seconds": [round(float(t.get("duration") or 0.0), 1) for t in shards],
            "shard_states": [t["state"] for t in shards],
            "new": sum(int(r.get("new", 0)) for r in shard_reports),
            "duplicates": sum(int(r.get("duplicates", 0)) for r in shard_reports),
            "dead_letters": sum(int(r.get("dead_letters", 0)) for r in shard_reports),
        },
        "sequential": sequential,
        "transform_runs": transforms,
        "transform": {
            "runs": len(transforms),
            "messages": messages,
            "task_seconds": round(task_seconds, 1),
            "articles_per_s": round(messages / task_seconds, 1) if task_seconds else None,
            # only the runs that consumed messages (a run triggered by the last shard may find the topic drained)
            "articles_per_working_task_s": round(messages / working_seconds, 1) if working_seconds else None,
            "alone_messages": sum(int(t["messages"] or 0) for t in alone),
            "alone_task_seconds": round(sum(t["task_seconds"] for t in alone), 1),
        },
        "end_to_end_seconds": round((ended - began).total_seconds(), 1),  # type: ignore[operator]
        "observed_seconds": round(observed, 1),
        "task_labels": labels,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    repo = Path.cwd()
    report: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "code": str(repo),
        "label": args.label,
        "commit": _commit(repo),
        "articles": args.articles,
        "feeds": args.feeds,
        "outlets": args.outlets,
        "latency": args.latency,
        "env": args.env,
        "load_before": [round(x, 2) for x in os.getloadavg()],
    }
    work = Path(tempfile.mkdtemp(prefix="stack-transform-"))
    spec = CorpusSpec(articles=args.articles, feeds=args.feeds, outlets=args.outlets, seed=args.seed)
    corpus = generate_corpus(work / "corpus", spec)
    home = work / "home"
    with CorpusServer(corpus.root, latency=args.latency) as server:
        feeds = server.render_feed_list(work / "feeds.toml")
        # A schedule that has no interval to run yet: the one ingest run is the one triggered here, and no
        # scheduled run polls again while the transform works.
        extra = {"NEWSWIRE_INGEST_SCHEDULE": "0 0 1 1 *", **dict(kv.split("=", 1) for kv in args.env)}
        env = stack_env(home, feeds, extra)
        report["model_cost"] = model_cost(env, repo)
        print(f"models in one process: {report['model_cost']}", flush=True)
        print("starting the stack ...", flush=True)
        paused = ["--paused", "newswire_archive"] + (["--paused", TRANSFORM] if args.sequential else [])
        st = start_stack(home, args.port, env, paused)
        try:
            with ProcessPeaks(home) as peaks:
                print(f"ingest run over {args.feeds} feeds, then the transform runs it triggers ...", flush=True)
                report.update(measure(st, args.timeout, sequential=args.sequential))
            report["peak_summed_rss_mib"] = round(peaks.summed_peak, 0)
            report["task_processes"] = peaks.new_processes(report.pop("task_labels"))
        finally:
            st.stop()
    report["warehouse"] = warehouse_report(home, env, repo)
    batch_seconds = report["warehouse"].get("batch_seconds")
    if batch_seconds:
        report["transform"]["articles_per_batch_s"] = round(report["warehouse"]["batch_messages"] / batch_seconds, 1)
    report["load_after"] = [round(x, 2) for x in os.getloadavg()]
    report["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        report["work"] = str(work)
    return report


def _commit(repo: Path) -> str | None:
    with contextlib.suppress(Exception):
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stack_transform", description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--feeds", type=int, default=100)
    parser.add_argument("--outlets", type=int, default=50, help="hosts (one loopback port each)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds each response waits")
    parser.add_argument("--port", type=int, default=8150, help="Airflow UI/API port of the stack")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds for ingest, then transform")
    parser.add_argument("--env", action="append", default=[], help="extra KEY=VALUE for the stack (repeatable)")
    parser.add_argument(
        "--sequential", action="store_true", help="keep the transform paused until ingest is done: it runs alone"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (corpus, stack home, logs)")
    parser.add_argument("--label", default="", help="what is measured (e.g. before / after), kept in the report")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    emit(run(args), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
