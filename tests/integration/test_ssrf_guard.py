"""The private-network guard, end to end: a feed on a private address is refused before any request."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ingest.feedlist import FeedSpec
from ingest.stage import ingest_feeds
from newswire.warehouse import Warehouse

RSS = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><link>http://x/</link>
<item><title>a</title><link>http://127.0.0.1/a</link></item></channel></rss>"""


@pytest.fixture
def loopback_feed() -> Iterator[tuple[str, list[str]]]:
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.end_headers()
            self.wfile.write(RSS)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/feed.xml", requests
    server.shutdown()
    server.server_close()


def test_feed_on_private_address_is_refused_when_setting_is_off(
    loopback_feed: tuple[str, list[str]], broker: str, make_settings, tmp_path: Path
) -> None:
    url, requests = loopback_feed
    settings = make_settings(allow_private_networks=False)
    summary = ingest_feeds(settings, broker, [FeedSpec(url=url, name="internal")], run_id="r1")
    assert requests == []  # nothing left the guard
    assert url in summary.failures and "blocked_address" in summary.failures[url]
    warehouse = Warehouse(settings.resolved_warehouse_url)
    rows = warehouse.query("SELECT stage, reason, url FROM dead_letters")
    assert rows == [{"stage": "feed_fetch", "reason": "blocked_address", "url": url}]
    run = warehouse.query("SELECT status, error FROM ingest_runs WHERE run_id = 'r1'")[0]
    assert run["status"] == "failed" and "blocked_address" in run["error"]


def test_same_feed_is_fetched_when_private_networks_are_allowed(
    loopback_feed: tuple[str, list[str]], broker: str, make_settings
) -> None:
    url, requests = loopback_feed
    settings = make_settings(allow_private_networks=True, respect_robots=False)
    summary = ingest_feeds(settings, broker, [FeedSpec(url=url, name="internal")], run_id="r1")
    assert summary.failures == {}
    assert "/feed.xml" in requests
