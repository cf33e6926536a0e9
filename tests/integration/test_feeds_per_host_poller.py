"""The feed pool's bound per host on the real ``FeedPoller`` path (``ingest_feeds``, loopback servers).

An outlet-grouped list: 8 section feeds of one host listed before 4 feeds of 4 other hosts, polled by 4 feed
threads with a host interval. ``feeds_per_host`` (``ingest.feed_dispatch``) keeps at most 2 of the big host's
feeds in progress and starts the other hosts' feeds past them; the tests check that bound on whole polls, that
the other hosts' documents are among the first requested, the accounting, and that a re-run stores nothing twice.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hostile_server import HostileServer, article_page, logged, ok, rss, rss_item

from ingest.feedlist import FeedSpec
from ingest.politeness import host_key
from ingest.poll import FeedPoller

pytestmark = pytest.mark.integration

BIG_FEEDS = 8
SMALL_HOSTS = 4
PAGES = 2
OPTIONS = {"host_interval": 0.1, "fetch_concurrency": 4, "entry_concurrency": 8}


class PollGauge:
    """Feeds in progress at once per host, around the real ``FeedPoller.poll``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.lock = threading.Lock()
        self.running: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.polls: Counter[str] = Counter()
        original = FeedPoller.poll
        gauge = self

        def poll(poller: FeedPoller, feed: FeedSpec) -> Any:
            host = host_key(feed.url)
            with gauge.lock:
                gauge.polls[feed.url] += 1
                gauge.running[host] += 1
                gauge.peak[host] = max(gauge.peak[host], gauge.running[host])
            try:
                return original(poller, feed)
            finally:
                with gauge.lock:
                    gauge.running[host] -= 1

        monkeypatch.setattr(FeedPoller, "poll", poll)


def section(server: HostileServer, name: str, documents: list[tuple[float, str]], label: str) -> FeedSpec:
    links = [server.route(f"/p/{name}-{i}", ok(article_page(f"{name} {i}", f"{name}-{i}"))) for i in range(PAGES)]
    items = [rss_item(title=f"{name} {i}", link=link) for i, link in enumerate(links)]
    return FeedSpec(url=server.route(f"/{name}.xml", logged(ok(rss(items).encode()), label, documents)), name=name)


@pytest.fixture
def outlet_list() -> Iterator[tuple[list[FeedSpec], list[tuple[float, str]], str]]:
    """(feeds listed by outlet, the log of document requests by label, the big host's key)."""
    documents: list[tuple[float, str]] = []
    servers = [HostileServer() for _ in range(1 + SMALL_HOSTS)]
    for server in servers:
        server.__enter__()
    try:
        big, small = servers[0], servers[1:]
        feeds = [section(big, f"big-{f}", documents, "big") for f in range(BIG_FEEDS)]
        feeds += [section(s, f"small-{n}", documents, "small") for n, s in enumerate(small)]
        yield feeds, documents, host_key(big.url("/"))
    finally:
        for server in servers:
            server.__exit__(None, None, None)


def test_an_outlets_feeds_leave_the_pool_to_other_hosts(
    poll: Callable[..., Any], outlet_list: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    feeds, documents, big = outlet_list
    gauge = PollGauge(monkeypatch)
    summary, warehouse = poll(feeds, "fh-1", feeds_per_host=2, **OPTIONS)

    pages = len(feeds) * PAGES
    totals = summary.totals()
    assert not summary.failures
    assert [r.feed_url for r in summary.reports] == [f.url for f in feeds]  # reports in list order
    assert totals["entries_seen"] == totals["new"] == pages
    assert totals["duplicates"] == totals["dead_letters"] == totals["skipped"] == 0
    assert set(gauge.polls.values()) == {1} and len(gauge.polls) == len(feeds)
    assert gauge.peak[big] == 2
    # Listed after the big host's 8 feeds, the 4 other hosts' documents were among the first 5 requested.
    order = [label for _, label in sorted(documents)]
    assert order[:5].count("small") == SMALL_HOSTS

    rows = warehouse.query("SELECT COUNT(*) AS n FROM feed_entries")[0]["n"]
    served = len(documents)
    rerun, _ = poll(feeds, "fh-2", feeds_per_host=2, **OPTIONS)
    assert not rerun.failures
    assert rerun.totals()["new"] == 0
    assert warehouse.query("SELECT COUNT(*) AS n FROM feed_entries")[0]["n"] == rows == pages
    assert len(documents) == served + len(feeds)  # each feed's document once more, nothing else re-stored


def test_without_the_bound_the_list_order_fills_the_pool(
    poll: Callable[..., Any], outlet_list: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    feeds, documents, big = outlet_list
    gauge = PollGauge(monkeypatch)
    summary, _ = poll(feeds, "fh-0", feeds_per_host=0, **OPTIONS)
    assert not summary.failures and summary.totals()["new"] == len(feeds) * PAGES
    assert gauge.peak[big] == OPTIONS["fetch_concurrency"]
    order = [label for _, label in sorted(documents)]
    assert order[:4] == ["big"] * 4
