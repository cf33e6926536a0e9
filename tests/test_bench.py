"""The speed benchmark harness: its corpus generator, its samplers, and one small end-to-end run.

No speed assertions: timings depend on the machine. What is checked is that the harness measures the right
things (every report field present, the pipeline saw every article) so ``make bench`` cannot silently
report numbers about a run that did not happen.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import statistics
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import lxml.html
import pytest

from bench.pipeline import (
    REPORT_FIELDS,
    BenchConfig,
    ProcessSampler,
    StackSampler,
    ThreadCpuSampler,
    compare_memory,
    format_table,
    run_bench,
    write_results,
)
from bench.synthetic import (
    CorpusSpec,
    PollCorpusSpec,
    SyntheticCorpusError,
    generate_corpus,
    generate_poll_corpus,
)
from devtools.devserver import CorpusServer
from ingest.feedlist import load_feed_list


def _lookup(report: dict[str, Any], dotted: str) -> Any:
    value: Any = report
    for part in dotted.split("."):
        assert isinstance(value, dict) and part in value, f"report has no {dotted!r}"
        value = value[part]
    return value


# -- corpus ----------------------------------------------------------------------------------------------


def test_corpus_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    spec = CorpusSpec(articles=40, feeds=4, seed=7)
    a = generate_corpus(tmp_path / "a", spec)
    b = generate_corpus(tmp_path / "b", spec)
    assert [p.path for p in a.pages] == [p.path for p in b.pages]
    for page in a.pages[:10]:
        assert page.file(a.root).read_bytes() == page.file(b.root).read_bytes()
    assert (a.root / "feeds.toml").read_text() == (b.root / "feeds.toml").read_text()
    other = generate_corpus(tmp_path / "c", CorpusSpec(articles=40, feeds=4, seed=8))
    assert other.pages[0].file(other.root).read_bytes() != a.pages[0].file(a.root).read_bytes()


def test_corpus_has_the_requested_shape(tmp_path: Path) -> None:
    spec = CorpusSpec(articles=200, feeds=8, min_page_bytes=50_000, max_page_bytes=200_000)
    corpus = generate_corpus(tmp_path / "corpus", spec)
    assert len(corpus.pages) == 200
    assert corpus.feed_count == 8 and len(corpus.outlets) == 4
    assert corpus.near_duplicates == 20
    assert corpus.multi_outlet_stories > 0
    copies = [p for p in corpus.pages if p.copy_of is not None]
    assert len(copies) == 20
    for copy in copies[:5]:
        original = corpus.pages[copy.copy_of]
        assert copy.outlet != original.outlet and copy.story == original.story
    sizes = [page.file(corpus.root).stat().st_size for page in corpus.pages]
    # Placeholders ({{site:…}}) are rendered by the server, so the served size differs by a few hundred bytes.
    assert min(sizes) >= 49_000 and max(sizes) <= 202_000
    html = corpus.pages[0].file(corpus.root).read_text()
    for marker in ('rel="canonical"', 'property="og:url"', '"@type":"NewsArticle"', 'id="comments"', "cookie"):
        assert marker in html
    assert len(corpus.pages) + corpus.cross_listed == corpus.feed_entries


def _body_words(path: Path) -> set[str]:
    tree = lxml.html.fromstring(path.read_bytes())
    (body,) = tree.xpath("//div[@class='article-body']")
    return {w.strip(".,;:\"'") for w in body.text_content().lower().split()}


def test_stories_are_lexically_distinct(tmp_path: Path) -> None:
    """Same-story coverage shares names and topic words; other stories do not (else the clusterer sees one story)."""
    corpus = generate_corpus(tmp_path / "corpus", CorpusSpec(articles=120, feeds=6, near_duplicate_share=0.0))
    words = {page: _body_words(page.file(corpus.root)) for page in corpus.pages}
    frequency = Counter(w for vocabulary in words.values() for w in vocabulary)
    rare = {page: {w for w in vocabulary if frequency[w] <= 5} for page, vocabulary in words.items()}
    by_story: dict[int, list[Any]] = {}
    for page in corpus.pages:
        by_story.setdefault(page.story, []).append(page)
    pairs = [pages[:2] for pages in by_story.values() if len(pages) >= 2][:8]
    singles = [pages[0] for pages in by_story.values() if len(pages) == 1][:8]
    assert pairs and len(singles) >= 2

    def overlap(a: Any, b: Any) -> float:
        return len(rare[a] & rare[b]) / max(1, len(rare[a] | rare[b]))

    same = statistics.mean(overlap(a, b) for a, b in pairs)
    different = statistics.mean(overlap(a, b) for a, b in itertools.pairwise(singles))
    assert same > 0.08 and different < 0.03


def test_corpus_is_served_and_parsed_as_feeds(tmp_path: Path) -> None:
    corpus = generate_corpus(tmp_path / "corpus", CorpusSpec(articles=30, feeds=3, min_page_bytes=5_000))
    with CorpusServer(corpus.root) as server:
        feeds = load_feed_list(server.render_feed_list(tmp_path / "feeds.toml"))
        assert len(feeds) == 3
        page = corpus.pages[0]
        text = server.render(page.file(corpus.root).read_text())
        assert f'rel="canonical" href="{server.url(page.outlet, page.path)}"' in text


def test_corpus_spec_refuses_feeds_longer_than_the_pipeline_reads(tmp_path: Path) -> None:
    with pytest.raises(SyntheticCorpusError, match="items per feed"):
        generate_corpus(tmp_path / "x", CorpusSpec(articles=20_000, feeds=4))
    with pytest.raises(SyntheticCorpusError, match="at least 2 outlets"):
        generate_corpus(tmp_path / "y", CorpusSpec(articles=10, feeds=1))


def test_refuses_to_overwrite_a_directory_that_is_not_a_corpus(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(SyntheticCorpusError, match="refusing"):
        generate_corpus(tmp_path, CorpusSpec(articles=10, feeds=4))
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_poll_corpus_spreads_tiny_feeds_over_hosts(tmp_path: Path) -> None:
    corpus = generate_poll_corpus(tmp_path / "poll", PollCorpusSpec(feeds=30, hosts=5, pages_per_host=2))
    assert corpus.feed_count == 30 and len(corpus.outlets) == 5 and len(corpus.pages) == 10
    feeds = sorted((corpus.root / "sites").glob("*/feeds/*.rss"))
    assert len(feeds) == 30
    assert max(f.stat().st_size for f in feeds) < 5_000


# -- samplers --------------------------------------------------------------------------------------------


def _hold_memory(megabytes: int, seconds: float) -> None:
    block = bytearray(megabytes * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_process_sampler_sees_peak_memory_and_cpu_of_a_child() -> None:
    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(target=_hold_memory, args=(150, 0.8))
    sampler = ProcessSampler(interval=0.05)
    child.start()
    sampler.watch("pipeline", child.pid, tree=True, since_start=True)
    sampler.start()
    child.join()
    usage, machine = sampler.stop()
    (mine,) = [u for u in usage if u.pid == child.pid]
    assert mine.role == "pipeline"
    assert mine.peak_rss_mb >= 150
    assert mine.cpu_seconds >= 0.3
    assert 0.0 <= machine <= 1.0


def test_stack_sampler_groups_threads_and_names_functions() -> None:
    stop = threading.Event()

    def busy_probe() -> None:
        while not stop.is_set():
            sum(range(1000))

    sampler = StackSampler(interval=0.005).start()
    sampler.stage = "probe"
    thread = threading.Thread(target=busy_probe, name="probe_1")
    thread.start()
    time.sleep(0.4)
    stop.set()
    thread.join()
    sampler.stop()
    report = sampler.report(min_samples=5)
    group = report["probe"]["probe"]
    assert group["samples"] >= 5
    top, share = group["project_leaf"][0]
    assert top.startswith("(outside project code) > ") and "busy_probe" in top
    assert share > 50


def test_thread_cpu_sampler_charges_cpu_to_the_thread_group_that_spent_it() -> None:
    """Each group gets the CPU its threads spent, as the threads themselves measure it (``time.thread_time``).

    The threads stay alive until the sampler's last sample, so however late the loaded machine lets the sampler
    run, no CPU falls between a thread's last sample and its end: the two measures differ only by /proc's clock
    ticks (utime and stime are each whole ticks), so the comparison holds on a busy machine too."""
    stop, release = threading.Event(), threading.Event()
    parked = threading.Barrier(3)  # the two probes, done spending, and the test
    spent: dict[str, float] = {}

    def busy() -> None:
        while not stop.is_set():
            sum(range(1000))
            spent[threading.current_thread().name] = time.thread_time()
        spent[threading.current_thread().name] = time.thread_time()  # all it spent: it only waits from here
        parked.wait()
        release.wait()

    sampler = ThreadCpuSampler(interval=0.02).start()
    threads = [threading.Thread(target=busy, name=f"probe_{i}") for i in range(2)]
    idle = threading.Thread(target=release.wait, name="sleeper_1")
    for thread in [*threads, idle]:
        thread.start()
    seen = sampler.samples
    deadline = time.monotonic() + 60
    # However busy the machine is: enough CPU spent, and two samples taken while the probes ran.
    while (sum(spent.values()) < 0.4 or sampler.samples < seen + 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    parked.wait(timeout=60)
    groups = sampler.stop()
    release.set()
    for thread in [*threads, idle]:
        thread.join()
    measured = sum(spent.values())
    assert measured >= 0.4
    ticks = 1 / os.sysconf("SC_CLK_TCK")
    assert measured - 2 * len(threads) * ticks - 0.01 <= groups["probe"] <= measured + 0.01
    assert groups.get("sleeper", 0.0) <= 2 * ticks


def test_memory_comparison_judges_pipeline_processes_not_the_broker() -> None:
    def run(articles: int, pipeline: float, broker: float) -> dict[str, Any]:
        rss = {
            "pipeline": pipeline,
            "extract_worker_max": 100.0,
            "pipeline_processes_total": pipeline + 200,
            "broker": broker,
        }
        return {"config": {"articles": articles}, "pipeline": {"peak_rss_mb": rss}}

    ok = compare_memory(run(2000, 300.0, 50.0), run(20000, 330.0, 500.0))
    assert ok["target"]["passed"] is True
    assert ok["peak_rss"]["broker"]["growth"] == 9.0
    grown = compare_memory(run(2000, 300.0, 50.0), run(20000, 600.0, 50.0))
    assert grown["target"]["passed"] is False and grown["max_growth"] == 1.0


# -- one small run ---------------------------------------------------------------------------------------


@pytest.mark.integration
def test_small_benchmark_run_reports_every_field(tmp_path: Path) -> None:
    config = BenchConfig(
        articles=100,
        feeds=5,
        latency=0.0,
        host_interval=0.0,
        extract_sample=10,
        poll_feeds=8,
        poll_hosts=2,
        settings={"poll_timeout": 1.0},
        workdir=tmp_path / "work",
    )
    report = run_bench(config)
    for dotted in REPORT_FIELDS:
        _lookup(report, dotted)
    # The numbers describe a run that happened: every article went through both stages.
    assert report["corpus"]["articles"] == 100
    assert report["pipeline"]["articles"] == 100
    assert report["pipeline"]["ingest"]["failures"] == {}
    alone = report["transform_alone"]
    assert alone["messages"] == 100
    # The run's wall time splits into waiting for the first batch, the batches, and the closing poll.
    assert 0 < alone["before_first_batch_seconds"] < alone["seconds"]
    assert 0 < alone["after_last_batch_seconds"] < alone["seconds"]
    parts = alone["before_first_batch_seconds"] + alone["batch_seconds"] + alone["after_last_batch_seconds"]
    assert parts <= alone["seconds"] + 0.05
    assert report["baselines"]["kafka_produce"]["messages"] == 100
    assert report["baselines"]["warehouse_insert"]["rows"] == 100
    assert report["baselines"]["extraction"]["pages_measured"] == 10 and report["baselines"]["extraction"]["sampled"]
    assert report["poll_304"]["not_modified"] == 8
    # The same feeds through the sharded task functions, one process per shard: every feed polled, all 304.
    sharded = report["poll_304"]["sharded"]
    assert sharded["feeds"] == 8 and sharded["not_modified"] == 8 and 1 <= sharded["shards"] <= 2
    # CPU per article by process role and by the pipeline process's thread groups; the transform thread
    # worked, and its batches account for every message.
    per_article = report["pipeline"]["cpu_ms_per_article"]
    assert per_article["pipeline"] > 0 and per_article["extract_worker"] > 0
    assert per_article["pipeline/transform"] > 0
    threads = sum(v for k, v in per_article.items() if k.startswith("pipeline/"))
    assert threads <= per_article["pipeline"] + 0.5  # threads of the process, counted from the run's start
    # The exact CPU total (kernel accounting of the whole process tree, plus the broker) is there and agrees
    # with what was sampled: never below the sampled workers' and pipeline process's CPU (sampling can only
    # miss time), and not far above the sampled total (else it counted something that is not the run).
    total = report["pipeline"]["cpu_total"]
    sampled_tree = sum(
        p["cpu_seconds"] for p in report["pipeline"]["processes"] if p["role"] not in ("harness", "broker")
    )
    assert total["process_tree_seconds"] >= 0.95 * sampled_tree - 0.1
    assert total["seconds"] <= 1.5 * report["pipeline"]["cpu"]["seconds"] + 2.0
    assert total["broker_seconds"] >= 0
    assert total["seconds"] == pytest.approx(total["process_tree_seconds"] + total["broker_seconds"], abs=0.02)
    assert total["ms_per_article"] == pytest.approx(1000 * total["seconds"] / 100, rel=0.01)
    assert total["cores"] >= 1
    assert total["implied_articles_per_s"] == pytest.approx(100 / (total["seconds"] / total["cores"]), rel=0.02)
    timeline = report["pipeline"]["transform_timeline"]
    assert sum(b[2] for b in timeline["batches"]) == report["pipeline"]["transform"]["stats"]["messages"]
    assert all(0 <= start <= end for start, end, _ in timeline["batches"])
    roles = {p["role"] for p in report["pipeline"]["processes"]}
    assert {"pipeline", "broker", "extract_worker"} <= roles
    assert report["pipeline"]["peak_rss_mb"]["pipeline"] > 0
    assert [t["name"] for t in report["targets"]] == [
        "end-to-end / bare extraction",
        "304 poll of all feeds",
        "transform + load alone",
        "peak RSS growth 2k -> 20k",
    ]
    table = format_table(report)
    assert "pipeline end to end" in table
    assert "PASS" in table or "FAIL" in table

    path = write_results(report, tmp_path / "results")
    assert json.loads(path.read_text())["pipeline"]["articles"] == 100
    assert json.loads((tmp_path / "results" / "latest.json").read_text()) == json.loads(path.read_text())
