"""The host window on the real ``FeedPoller`` path: many feeds of one host beside one feed of another.

An outlet's section feeds share one host; the feed pool polls them concurrently, and each feed's own window
(``entries_per_feed``) lets a few of its entries sleep in the host throttle. ``entries_per_host``
(``ingest.admission.HostWindow``, one per process) bounds those sleepers across the feeds, so the entry pool
keeps threads for other hosts. These tests poll loopback servers (one port, one host) with a host interval, and
check the bound, that the other host's pages are not queued behind the big host's spacing, the accounting,
and that a re-run stores nothing twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from hostile_server import HostileServer, article_page, logged, ok, rss, rss_item
from throttle_gauge import SleeperGauge

from ingest.feedlist import FeedSpec
from ingest.politeness import host_key

pytestmark = pytest.mark.integration

FEEDS_OF_BIG = 6
ENTRIES = 5


def delayed(route: Callable[[BaseHTTPRequestHandler], None], seconds: float) -> Any:
    def handler(h: BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        route(h)

    return handler


def test_many_feeds_of_one_host_leave_threads_for_another_host(
    poll: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[tuple[float, str]] = []
    with HostileServer() as big, HostileServer() as other:
        feeds = []
        for f in range(FEEDS_OF_BIG):
            links = [
                big.route(f"/p/{f}-{i}", logged(ok(article_page(f"Big {f} {i}", f"big-{f}-{i}")), "big", served))
                for i in range(ENTRIES)
            ]
            items = [rss_item(title=f"Big {f} {i}", link=link) for i, link in enumerate(links)]
            feeds.append(FeedSpec(url=big.route(f"/section-{f}.xml", ok(rss(items).encode())), name=f"Big {f}"))
        links = [
            other.route(f"/p/o-{i}", logged(ok(article_page(f"Other {i}", f"other-{i}")), "other", served))
            for i in range(3)
        ]
        # Its document answers late, as the big host's entries already fill the pool's threads.
        document = delayed(ok(rss(rss_item(title=f"Other {i}", link=u) for i, u in enumerate(links)).encode()), 0.8)
        feeds.append(FeedSpec(url=other.route("/feed.xml", document), name="Other"))
        gauge = SleeperGauge(monkeypatch, lambda url: "/p/" in url)
        options = {
            "host_interval": 0.1,
            "fetch_concurrency": 8,  # every feed at once, as the feed pool polls an outlet's section feeds
            "entry_concurrency": 4,
            "entries_per_feed": 3,
            "entries_per_host": 2,
        }

        summary, warehouse = poll(feeds, "h-1", **options)
        totals = summary.totals()
        pages = FEEDS_OF_BIG * ENTRIES + 3
        assert not summary.failures
        assert totals["entries_seen"] == totals["new"] == pages
        assert totals["duplicates"] == totals["dead_letters"] == totals["skipped"] == 0
        # Six feeds of one host with windows of 3 each: never more than the host's 2 asleep in the throttle.
        assert gauge.waits == pages
        assert gauge.peak_by_host[host_key(big.url("/"))] == 2
        # The other host's pages went as soon as its late document was read, between the big host's pages
        # (one per 0.1 s), not after them.
        order = [label for _, label in sorted(served)]
        assert len(order) == pages
        assert max(i for i, label in enumerate(order) if label == "other") < 15

        rows = warehouse.query("SELECT COUNT(*) AS n FROM feed_entries")[0]["n"]
        rerun, _ = poll(feeds, "h-2", **options)
        assert not rerun.failures
        assert rerun.totals()["new"] == 0 and rerun.totals()["entries_seen"] == 0
        assert warehouse.query("SELECT COUNT(*) AS n FROM feed_entries")[0]["n"] == rows == pages
        assert len(served) == pages  # no page fetched twice
