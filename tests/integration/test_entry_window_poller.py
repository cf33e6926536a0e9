"""The entry window on the real ``FeedPoller`` path: spaced hosts, loopback servers, every outcome kind.

``ingest.poll.map_bounded`` lets at most ``entries_per_feed`` entries of one feed wait for their host's request
slot; an entry leaves the window as soon as the host throttle admits it. These tests run whole polls with a
host interval (the other ingest tests set it to 0 and so never wait in the throttle) and check the accounting,
the bound on sleepers, and that the window neither caps a slow host's requests in flight nor holds back the
entries of a feed whose pages live on several hosts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from hostile_server import HostileServer, article_page, ok, rss, rss_item, status
from throttle_gauge import SleeperGauge

from ingest.feedlist import FeedSpec

pytestmark = pytest.mark.integration


def slow(route: Callable[[BaseHTTPRequestHandler], None], seconds: float, log: list[tuple[float, float]]) -> Any:
    """``route`` answered after ``seconds``; each request's (start, end) monotonic times go to ``log``."""

    def handler(h: BaseHTTPRequestHandler) -> None:
        started = time.monotonic()
        time.sleep(seconds)
        route(h)
        log.append((started, time.monotonic()))

    return handler


def most_at_once(spans: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_every_outcome_adds_up_and_no_more_than_the_window_sleeps_in_the_throttle(
    poll: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    with HostileServer() as server:
        links = [server.route(f"/p/new-{i}", ok(article_page(f"Story {i}", f"story-{i}"))) for i in range(8)]
        links.append(server.route("/p/gone", status(404)))  # dead letter
        links.append(server.route("/p/image", ok(b"\x89PNG....", "image/png")))  # skipped: content type
        items = [rss_item(title=f"Entry {i}", link=link) for i, link in enumerate(links)]
        mixed = server.route("/feed.xml", ok(rss(items).encode(), "application/rss+xml"))
        # A second feed, polled after the first, with two of its URLs: duplicates decided before any fetch, so
        # these entries leave the window when they finish, never having reached the throttle.
        again = [rss_item(title="Again 0", link=links[0]), rss_item(title="Again 1", link=links[1])]
        other = server.route("/other.xml", ok(rss(again).encode(), "application/rss+xml"))
        feeds = [FeedSpec(url=mixed, name="Mixed"), FeedSpec(url=other, name="Other")]
        gauge = SleeperGauge(monkeypatch, lambda url: "/p/" in url)
        options = {"host_interval": 0.05, "entries_per_feed": 2, "fetch_concurrency": 1}

        summary, warehouse = poll(feeds, "w-1", **options)
        totals = summary.totals()
        assert totals["entries_seen"] == len(items) + len(again) == 12
        assert (totals["new"], totals["duplicates"], totals["dead_letters"], totals["skipped"]) == (8, 2, 1, 1)
        assert totals["new"] + totals["duplicates"] + totals["dead_letters"] + totals["skipped"] == 12
        # One host spaced 0.05 s apart and ten pages: they did queue in the throttle, never more than two.
        assert gauge.waits == 10
        assert gauge.peak == 2
        assert server.hits("/p/new-0") == 1

        rows = warehouse.query("SELECT COUNT(*) AS n FROM feed_entries")[0]["n"]
        rerun, _ = poll(feeds, "w-2", **options)
        assert rerun.totals()["new"] == 0 and rerun.totals()["entries_seen"] == 0
        assert warehouse.query("SELECT COUNT(*) AS n FROM feed_entries")[0]["n"] == rows == 12
        assert server.hits("/p/new-0") == 1


def test_a_slow_host_keeps_more_requests_in_flight_than_the_window(poll: Callable[..., Any]) -> None:
    """Responses (0.6 s) slower than the spacing (0.1 s): admitted entries download while the next ones are
    admitted, so more than ``entries_per_feed`` requests overlap; a window over whole entries would allow 2."""
    spans: list[tuple[float, float]] = []
    with HostileServer() as server:
        links = [
            server.route(f"/p/slow-{i}", slow(ok(article_page(f"Slow {i}", f"slow-{i}")), 0.6, spans)) for i in range(8)
        ]
        feed = server.route("/feed.xml", ok(rss(rss_item(title=f"S{i}", link=u) for i, u in enumerate(links)).encode()))
        started = time.monotonic()
        summary, _ = poll([FeedSpec(url=feed, name="Slow")], "slow-1", host_interval=0.1, entries_per_feed=2)
        seconds = time.monotonic() - started
    assert summary.totals()["new"] == 8 and len(spans) == 8
    assert most_at_once(spans) >= 4
    assert seconds < 8 * 0.6 / 2  # what two entries in flight at a time would take, fetches alone


def test_a_multi_host_feed_s_entries_are_not_held_back(poll: Callable[..., Any]) -> None:
    """Six pages on six hosts (ports), a 1 s spacing and a window of 1: every host has a free slot, so all six
    are admitted at once and their 0.5 s responses overlap instead of following one another."""
    spans: list[tuple[float, float]] = []
    with ExitStack() as stack:
        servers = [stack.enter_context(HostileServer()) for _ in range(6)]
        links = [
            s.route(f"/p/{i}", slow(ok(article_page(f"Host {i}", f"host-{i}")), 0.5, spans))
            for i, s in enumerate(servers)
        ]
        feed = servers[0].route(
            "/feed.xml", ok(rss(rss_item(title=f"H{i}", link=u) for i, u in enumerate(links)).encode())
        )
        summary, _ = poll([FeedSpec(url=feed, name="Aggregator")], "multi-1", host_interval=1.0, entries_per_feed=1)
    assert summary.totals()["new"] == 6 and len(spans) == 6
    # Page 0 shares the feed's host and waits out its spacing (1 s); the five others start together.
    others = sorted(s for s, _ in spans)[:5]
    assert others[-1] - others[0] < 0.4
    assert most_at_once(spans) >= 5
