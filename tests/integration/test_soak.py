"""Soak: 200 feeds x 20 entries from loopback, 10% of pages failing (seeded), ingest run twice.

The first run must account for every entry (new + dead letters = 4,000, the invariant per run and feed),
publish and keep every good article exactly once and dead-letter every failure with its reason. The second
run must add nothing: no entry outcome, URL, raw record, dead letter or message. The figures (entries,
stored, dead letters, time, peak memory) are printed and attached to the report as user properties.

It runs on PostgreSQL, the production warehouse: the DuckDB ledger costs about three times the CPU per
entry, and the soak is about correctness under load, not about the embedded engine. Transform at this
scale belongs to the benchmarks (bench/); here the articles topic is counted instead.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hostile_server import HostileServer, article_page, empty_article_page, ok, rss, rss_item, status, truncated

from ingest.feedlist import FeedSpec
from ingest.stage import ingest_feeds
from newswire import contracts
from newswire.messaging import make_consumer, poll_batch
from newswire.report import accounting_violations
from newswire.warehouse import Warehouse

pytestmark = [pytest.mark.integration, pytest.mark.soak, pytest.mark.postgres]

PG_DSN = os.environ.get("NEWSWIRE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
FEEDS, ENTRIES, FAILING = 200, 20, 0.10
SEED = 20_261_124
TABLES = ("feed_entries", "article_urls", "dead_letters", "raw_articles")
# Each failure, and the dead-letter reason it must produce.
FAILURES: dict[str, tuple[Any, str]] = {
    "unavailable": (status(503, Retry_After="120"), "http_status"),
    "missing": (status(404), "http_status"),
    "broken": (status(500), "http_status"),
    "throttled": (status(429, Retry_After="30"), "http_status"),
    "no-text": (ok(empty_article_page()), "no_body"),
    "cut-off": (truncated(), "protocol"),
}


def _peak_rss_reset() -> None:
    """Reset this process's peak RSS (VmHWM) so the soak measures its own peak (Linux; best effort)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_rss_mib() -> float:
    match = re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text())
    return int(match.group(1)) / 1024 if match else float("nan")


def _world(server: HostileServer) -> tuple[list[FeedSpec], dict[tuple[int, int], str]]:
    rng = random.Random(SEED)
    pairs = [(i, j) for i in range(FEEDS) for j in range(ENTRIES)]
    failing = {pair: rng.choice(sorted(FAILURES)) for pair in rng.sample(pairs, int(len(pairs) * FAILING))}

    def page(rest: str) -> Any:
        i, j = (int(x) for x in rest.removesuffix(".html").split("/"))
        if (i, j) in failing:
            return FAILURES[failing[(i, j)]][0]
        return ok(article_page(f"Soak story {i}-{j}", f"soak-{i}-{j}"))

    def feed(rest: str) -> Any:
        i = int(rest.removesuffix(".xml"))
        items = [rss_item(title=f"Story {i}-{j}", link=server.url(f"/soak/{i}/{j}.html")) for j in range(ENTRIES)]
        return ok(rss(items, title=f"Soak feed {i}").encode(), "application/rss+xml")

    server.prefix("/soak/feed-", feed)
    server.prefix("/soak/", page)
    specs = [FeedSpec(url=server.url(f"/soak/feed-{i}.xml"), name=f"Soak {i}") for i in range(FEEDS)]
    return specs, failing


def _expected_reason(url: str, failing: dict[tuple[int, int], str]) -> str | None:
    """The reason a dead letter for ``url`` must carry (None: the page is good and must not have one)."""
    i, j = (int(x) for x in url.rsplit("/soak/", 1)[1].removesuffix(".html").split("/"))
    kind = failing.get((i, j))
    return None if kind is None else FAILURES[kind][1]


def _counts(warehouse: Warehouse) -> dict[str, int]:
    return {t: int(warehouse.scalar(f"SELECT COUNT(*) FROM {t}")) for t in TABLES}


def _messages_on(bootstrap: str, settings: Any, topic: contracts.Topic) -> int:
    consumer = make_consumer(bootstrap, settings, group_id=None, topics=[topic.name])
    try:
        return len(poll_batch(consumer, max_messages=100_000, idle_timeout=1.0, deadline=60))
    finally:
        consumer.close()


@pytest.fixture
def pg_warehouse() -> Iterator[str]:
    schema = f"nwsoak_{uuid.uuid4().hex[:10]}"
    yield f"{PG_DSN}?schema={schema}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_soak_two_runs_account_for_everything_and_the_second_adds_nothing(
    broker: str, pg_warehouse: str, make_settings, record_property: Any
) -> None:
    with HostileServer() as server:
        feeds, failing = _world(server)
        settings = make_settings(warehouse_url=pg_warehouse)
        warehouse = Warehouse(settings.resolved_warehouse_url)
        figures: dict[int, dict[str, Any]] = {}
        _peak_rss_reset()
        for run in (1, 2):
            t0 = time.monotonic()
            ingest = ingest_feeds(settings, broker, feeds, run_id=f"soak-{run}")
            figures[run] = {
                "totals": ingest.totals(),
                "failed_feeds": len(ingest.failures),
                "seconds": round(time.monotonic() - t0, 1),
                "counts": _counts(warehouse),
                "articles_on_topic": _messages_on(broker, settings, contracts.ARTICLES),
            }
        peak = _peak_rss_mib()
    print("soak runs:", figures, f"peak RSS {peak:.0f} MiB")

    first, second = figures[1], figures[2]
    good = FEEDS * ENTRIES - len(failing)
    assert first["failed_feeds"] == 0
    assert first["totals"]["entries_seen"] == FEEDS * ENTRIES
    assert (first["totals"]["new"], first["totals"]["dead_letters"]) == (good, len(failing))
    assert first["counts"]["raw_articles"] == first["articles_on_topic"] == good
    letters = warehouse.query("SELECT reason, url, message FROM dead_letters")
    unexpected = [r for r in letters if r["reason"] != _expected_reason(r["url"], failing)]
    assert unexpected == []
    assert Counter(r["reason"] for r in letters) == Counter(FAILURES[kind][1] for kind in failing.values())
    assert accounting_violations(warehouse) == []

    # Known entries are not looked at again, and failed ones wait out their backoff (2 minutes after the first
    # attempt): a second run sees nothing, unless the first took that long, and then retries fail again.
    assert second["failed_feeds"] == 0
    assert second["totals"]["new"] == 0
    assert second["totals"]["entries_seen"] == second["totals"]["dead_letters"]
    assert second["counts"] == first["counts"]
    assert second["articles_on_topic"] == first["articles_on_topic"]

    report = {
        "entries": first["totals"]["entries_seen"],
        "stored_articles": first["counts"]["raw_articles"],
        "dead_letters": first["counts"]["dead_letters"],
        "run1_seconds": first["seconds"],
        "run2_seconds": second["seconds"],
        "run2_retried_failed_again": second["totals"]["dead_letters"],
        "peak_rss_mib": round(peak, 1),
    }
    for key, value in report.items():
        record_property(key, value)
    print("soak figures:", report)
