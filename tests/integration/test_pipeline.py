"""The whole pipeline over the sample corpus, against the real embedded broker and both warehouses."""

from __future__ import annotations

import tomllib
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from topics import read_topic

from devtools import CORPUS
from ingest.stage import configured_feeds
from newswire import contracts
from newswire.report import accounting_violations
from newswire.warehouse import Warehouse
from pipeline.passes import run_passes

EXPECTED = tomllib.loads((CORPUS / "EXPECTED.toml").read_text())
TABLES = ("articles", "article_duplicates", "events", "event_articles", "dead_letters", "feed_entries", "article_urls")

pytestmark = pytest.mark.integration


def counts(warehouse: Warehouse) -> dict[str, int]:
    return {t: int(warehouse.scalar(f"SELECT COUNT(*) FROM {t}")) for t in TABLES}


@pytest.fixture
def pipeline(corpus: Any, broker: str, warehouse_url: str, make_settings, tmp_path: Path) -> dict[str, Any]:
    feeds_file = corpus.render_feed_list(tmp_path / "feeds.toml")
    settings = make_settings(warehouse_url=warehouse_url, feeds=feeds_file)

    state: dict[str, Any] = {"settings": settings}

    def run(run_id: str, *, overlap: bool = True) -> tuple[Any, Any]:
        """What ``newswire run`` does: by default the transform consumes while ingest publishes."""
        current = state["settings"]
        passes = run_passes(current, broker, configured_feeds(current), run_id=run_id, overlap=overlap)
        return passes.ingest, passes.transform

    state.update({"run": run, "warehouse": Warehouse(warehouse_url), "broker": broker, "corpus": corpus})
    return state


def path_of(url: str) -> str:
    return urlsplit(url).path


@pytest.mark.parametrize("overlap", [True, False], ids=["overlapped", "sequential"])
def test_one_pass_stores_what_the_corpus_expects(pipeline: dict[str, Any], overlap: bool) -> None:
    pipeline["settings"] = pipeline["settings"].model_copy(update={"extract_workers": 2})  # the process pool
    ingest, transform = pipeline["run"]("run-1", overlap=overlap)
    expected = EXPECTED["counts"]
    totals = ingest.totals()
    assert ingest.failures == {}
    assert len(ingest.reports) == expected["feeds"]
    assert totals["entries_seen"] == expected["entries"]
    assert totals["duplicates"] == expected["url_duplicates"]
    assert totals["skipped"] == expected["robots_skips"]
    assert totals["dead_letters"] == expected["dead_letters"]
    assert transform.stats.new_articles == expected["distinct_articles"]
    assert transform.stats.duplicates == expected["verbatim_copies"]
    assert transform.stats.duplicate_methods == {"content_hash": expected["verbatim_copies"]}

    warehouse: Warehouse = pipeline["warehouse"]
    assert warehouse.scalar("SELECT COUNT(*) FROM articles") == expected["distinct_articles"]
    reasons = Counter(r["reason"] for r in warehouse.query("SELECT reason FROM dead_letters"))
    assert reasons == Counter(EXPECTED["dead_letter_reasons"])
    skipped = warehouse.query("SELECT entry_url, reason FROM feed_entries WHERE outcome = 'skipped'")
    assert [(path_of(r["entry_url"]), r["reason"]) for r in skipped] == [
        (s["path"], "robots") for s in EXPECTED["robots_skips"]
    ]
    assert accounting_violations(warehouse) == []
    # Feed-supplied AMP link stored under the page's rel=canonical.
    for rewrite in EXPECTED.get("canonical_rewrites", []):
        stored = {path_of(r["canonical_url"]) for r in warehouse.query("SELECT canonical_url FROM articles")}
        assert rewrite["canonical"] in stored and rewrite["link"] not in stored


def test_stories_become_one_event_each_and_hard_negatives_stay_apart(pipeline: dict[str, Any]) -> None:
    pipeline["run"]("run-1")
    warehouse: Warehouse = pipeline["warehouse"]
    rows = warehouse.query(
        "SELECT a.canonical_url, ea.event_id FROM articles a JOIN event_articles ea ON ea.article_id = a.article_id"
    )
    event_of = {path_of(r["canonical_url"]): r["event_id"] for r in rows}
    assert len(event_of) == EXPECTED["counts"]["distinct_articles"]  # every article is in exactly one event
    story_events = {}
    for story in EXPECTED["stories"]:
        events = {event_of[a["path"]] for a in story["articles"] if a["path"] in event_of}
        assert len(events) == 1, f"story {story['id']} split over {len(events)} events"
        story_events[story["id"]] = events.pop()
    assert len(set(story_events.values())) == len(story_events), "two stories share an event"
    assert EXPECTED["hard_negatives"]
    for pair in EXPECTED["hard_negatives"]:
        a, b = pair["a"]["path"], pair["b"]["path"]
        assert event_of[a] != event_of[b], pair["why"]
    live = warehouse.query("SELECT event_id, article_count, source_count FROM events WHERE merged_into IS NULL")
    member_counts = Counter(event_of.values())
    for event in live:
        assert event["article_count"] == member_counts[event["event_id"]]


def test_messages_validate_against_their_schemas(pipeline: dict[str, Any]) -> None:
    ingest, transform = pipeline["run"]("run-1")
    settings, broker = pipeline["settings"], pipeline["broker"]
    articles = read_topic(broker, settings, contracts.ARTICLES)
    events = read_topic(broker, settings, contracts.EVENTS)
    dead = read_topic(broker, settings, contracts.DEAD_LETTERS)
    assert len(articles) == ingest.totals()["new"]
    assert len({a["article_id"] for a in articles}) == len(articles)
    assert len(events) == transform.stats.events_published > 0
    assert {d["reason"] for d in dead} == set(EXPECTED["dead_letter_reasons"])
    khan = [a for a in articles if "khan-al-assal" in a["canonical_url"] and a["language"] == "fr"]
    assert khan and all(a["published_at"] for a in khan)


def test_second_run_adds_no_rows_and_no_messages(pipeline: dict[str, Any]) -> None:
    pipeline["run"]("run-1")
    warehouse: Warehouse = pipeline["warehouse"]
    settings, broker = pipeline["settings"], pipeline["broker"]
    before = counts(warehouse)
    versions = warehouse.query("SELECT event_id, version FROM events ORDER BY event_id")
    messages = {t.name: len(read_topic(broker, settings, t)) for t in contracts.ALL_TOPICS}

    ingest, transform = pipeline["run"]("run-2")
    assert ingest.totals()["new"] == 0 and ingest.totals()["entries_seen"] == 0
    assert {r.status for r in ingest.reports} == {"not_modified"}
    assert transform.stats.messages == 0
    assert counts(warehouse) == before
    assert warehouse.query("SELECT event_id, version FROM events ORDER BY event_id") == versions
    assert {t.name: len(read_topic(broker, settings, t)) for t in contracts.ALL_TOPICS} == messages
    assert accounting_violations(warehouse) == []
    # The not-modified polls' bookkeeping is written in one deferred batch: still a row per feed, and every
    # feed's poll time moved on.
    runs = warehouse.query("SELECT status, http_status FROM ingest_runs WHERE run_id = 'run-2'")
    assert len(runs) == len(ingest.reports)
    assert {(r["status"], r["http_status"]) for r in runs} == {("not_modified", 304)}
    polled = warehouse.query("SELECT last_polled_at, last_status FROM feeds")
    assert {r["last_status"] for r in polled} == {304}
    run2_start = warehouse.scalar("SELECT MIN(started_at) FROM ingest_runs WHERE run_id = 'run-2'")
    assert all(r["last_polled_at"] >= run2_start for r in polled)
