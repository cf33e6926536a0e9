"""robots.txt: RFC 9309 matching, and the per-origin cache against a real loopback server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ingest.errors import RobotsUnavailable
from ingest.http import Fetcher, HttpPolicy
from ingest.robots import RobotsCache, parse_robots, product_token, robots_url_for

UA = "Newswire/0.1 (+https://github.com/newswire/newswire)"


def rules(text: str, user_agent: str = UA):  # type: ignore[no-untyped-def]
    return parse_robots(text, user_agent, base_url="https://news.example/robots.txt")


# --- parsing and matching ----------------------------------------------------------------------------


def test_product_token_comes_from_the_user_agent():
    assert product_token(UA) == "newswire"
    assert product_token("  Mozilla/5.0 (X11)") == "mozilla"


def test_longest_match_wins_and_allow_wins_ties():
    parsed = rules(
        """
        User-agent: *
        Disallow: /news/
        Allow: /news/public/
        Disallow: /page
        Allow: /page
        """
    )
    assert parsed.allowed("https://news.example/news/public/story") is True
    assert parsed.allowed("https://news.example/news/private") is False
    assert parsed.allowed("https://news.example/page") is True
    assert parsed.allowed("https://news.example/other") is True


def test_wildcards_and_end_anchor():
    parsed = rules(
        """
        User-agent: *
        Disallow: /*?print=
        Disallow: /*.pdf$
        Disallow: /amp/*/raw
        """
    )
    assert parsed.allowed("https://news.example/world/story?print=1") is False
    assert parsed.allowed("https://news.example/world/story?page=2") is True
    assert parsed.allowed("https://news.example/report.pdf") is False
    assert parsed.allowed("https://news.example/report.pdf?download=1") is True
    assert parsed.allowed("https://news.example/amp/2024/x/raw") is False
    assert parsed.allowed("https://news.example/amp/raw") is True


def test_own_group_beats_star_group_and_groups_for_us_are_merged():
    parsed = rules(
        """
        User-agent: *
        Disallow: /

        User-agent: NEWSWIRE
        Disallow: /private

        User-agent: otherbot
        Disallow: /news

        User-agent: newswire/2.0
        Disallow: /drafts
        """
    )
    assert parsed.allowed("https://news.example/news/story") is True
    assert parsed.allowed("https://news.example/private/x") is False
    assert parsed.allowed("https://news.example/drafts/x") is False


def test_agent_names_are_matched_as_tokens_not_substrings():
    parsed = rules("User-agent: news\nDisallow: /\n\nUser-agent: *\nDisallow: /star-only\n")
    assert parsed.allowed("https://news.example/story") is True
    assert parsed.allowed("https://news.example/star-only") is False


def test_consecutive_user_agents_share_a_group_and_orphan_rules_are_ignored():
    parsed = rules(
        """
        Disallow: /orphan
        User-agent: somebot
        User-agent: newswire
        Crawl-delay: 5
        Disallow: /shared
        """
    )
    assert parsed.allowed("https://news.example/shared/1") is False
    assert parsed.allowed("https://news.example/orphan") is True


def test_empty_disallow_allows_everything_and_robots_txt_is_always_allowed():
    assert rules("User-agent: *\nDisallow:\n").allowed("https://news.example/anything") is True
    assert rules("User-agent: *\nDisallow: /\n").allowed("https://news.example/robots.txt") is True
    assert rules("User-agent: *\nDisallow: /\n").allowed("https://news.example/") is False


def test_percent_encoding_is_normalized_on_both_sides():
    parsed = rules("User-agent: *\nDisallow: /caf%C3%A9\nDisallow: /%7Euser\nDisallow: /ñews\n")
    assert parsed.allowed("https://news.example/café/menu") is False
    assert parsed.allowed("https://news.example/caf%c3%a9/menu") is False
    assert parsed.allowed("https://news.example/~user/home") is False
    assert parsed.allowed("https://news.example/%C3%B1ews") is False


def test_sitemaps_are_collected_resolved_and_deduplicated():
    parsed = rules(
        "Sitemap: https://news.example/sitemap.xml\nUser-agent: *\nDisallow: /x\n"
        "sitemap: /news-sitemap.xml\nSitemap: https://news.example/sitemap.xml\nSitemap: ftp://nope/\n"
    )
    assert parsed.sitemaps == ("https://news.example/sitemap.xml", "https://news.example/news-sitemap.xml")


def test_pathological_wildcards_do_not_backtrack():
    parsed = rules("User-agent: *\nDisallow: /" + "*a" * 40 + "b\n")
    started = time.monotonic()
    assert parsed.allowed("https://news.example/" + "a" * 5000) is True
    assert time.monotonic() - started < 0.5


def test_robots_url_for_origin():
    assert robots_url_for("https://User:pw@News.Example:443/a/b?c") == "https://news.example/robots.txt"
    assert robots_url_for("http://news.example:8080/a") == "http://news.example:8080/robots.txt"
    assert robots_url_for("http://[2001:db8::1]/a") == "http://[2001:db8::1]/robots.txt"


# --- the cache against a loopback server --------------------------------------------------------------


class RobotsServer:
    """Serves /robots.txt from a swappable handler and counts how often it was asked."""

    def __init__(self) -> None:
        self.handler: Callable[[BaseHTTPRequestHandler], None] = lambda h: reply(h, 404, b"")
        self.hits = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if self.path == "/robots.txt":
                    owner.hits += 1
                    owner.handler(self)
                else:
                    reply(self, 200, b"page")

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False
            request_queue_size = 64

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def reply(handler: BaseHTTPRequestHandler, status: int, body: bytes, **headers: str) -> None:
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def robots_body(text: str) -> Callable[[BaseHTTPRequestHandler], None]:
    return lambda h: reply(h, 200, text.encode(), Content_Type="text/plain")


@pytest.fixture
def server() -> Iterator[RobotsServer]:
    instance = RobotsServer()
    yield instance
    instance.httpd.shutdown()
    instance.httpd.server_close()


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    with Fetcher(HttpPolicy(allow_private_networks=True, total_timeout=5)) as instance:
        yield instance


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_allow_and_deny_from_a_served_robots_txt(server, fetcher):
    server.handler = robots_body(
        "User-agent: *\nDisallow: /\n\nUser-agent: newswire\nDisallow: /admin\nSitemap: /sitemap_index.xml\n"
    )
    cache = RobotsCache(fetcher, UA)
    assert cache.allowed(server.url("/2024/05/story.html")) is True
    assert cache.allowed(server.url("/admin/login")) is False
    assert cache.sitemaps(server.url("/anything")) == [server.url("/sitemap_index.xml")]
    assert server.hits == 1  # one fetch serves every question about the origin


def test_4xx_robots_means_everything_is_allowed(server, fetcher):
    server.handler = lambda h: reply(h, 403, b"forbidden")
    cache = RobotsCache(fetcher, UA)
    assert cache.allowed(server.url("/private/anything")) is True
    assert cache.sitemaps(server.url("/")) == []


def test_5xx_robots_raises_and_is_cached_only_briefly(server, fetcher):
    clock = FakeClock()
    server.handler = lambda h: reply(h, 503, b"down")
    cache = RobotsCache(fetcher, UA, ttl=3600, failure_ttl=30, clock=clock)
    with pytest.raises(RobotsUnavailable) as caught:
        cache.allowed(server.url("/story"))
    assert caught.value.retryable is True
    assert caught.value.reason == "robots_unavailable"
    with pytest.raises(RobotsUnavailable):
        cache.allowed(server.url("/story"))
    assert server.hits == 1  # the failure is remembered for a moment instead of hammering a sick server
    clock.now += 31
    server.handler = robots_body("User-agent: *\nDisallow: /story\n")
    assert cache.allowed(server.url("/story")) is False
    assert server.hits == 2


def test_429_retry_after_extends_the_failure_hold(server, fetcher):
    clock = FakeClock()
    server.handler = lambda h: reply(h, 429, b"slow down", Retry_After="300")
    cache = RobotsCache(fetcher, UA, failure_ttl=30, clock=clock)
    with pytest.raises(RobotsUnavailable) as caught:
        cache.allowed(server.url("/"))
    assert caught.value.retry_after == 300.0
    clock.now += 100
    with pytest.raises(RobotsUnavailable):
        cache.allowed(server.url("/"))
    assert server.hits == 1


def test_network_failure_is_robots_unavailable(fetcher):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(RobotsUnavailable) as caught:
        RobotsCache(fetcher, UA).allowed(f"http://127.0.0.1:{port}/story")
    assert "connect" in str(caught.value)


def test_success_is_cached_for_ttl_then_refetched(server, fetcher):
    clock = FakeClock()
    server.handler = robots_body("User-agent: *\nDisallow: /old\n")
    cache = RobotsCache(fetcher, UA, ttl=60, clock=clock)
    assert cache.allowed(server.url("/old")) is False
    server.handler = robots_body("User-agent: *\nDisallow: /new\n")
    clock.now += 59
    assert cache.allowed(server.url("/old")) is False
    clock.now += 2
    assert cache.allowed(server.url("/old")) is True
    assert cache.allowed(server.url("/new")) is False
    assert server.hits == 2


def test_concurrent_lookups_fetch_robots_once(server, fetcher):
    def slow(handler: BaseHTTPRequestHandler) -> None:
        time.sleep(0.2)
        robots_body("User-agent: *\nDisallow: /x\n")(handler)

    server.handler = slow
    cache = RobotsCache(fetcher, UA)
    answers: list[bool] = []
    threads = [threading.Thread(target=lambda: answers.append(cache.allowed(server.url("/x/1")))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert answers == [False] * 8
    assert server.hits == 1


def test_blocked_origin_is_reported_as_blocked_not_as_robots_failure(server):
    from ingest.errors import BlockedAddressError

    with Fetcher(HttpPolicy()) as guarded, pytest.raises(BlockedAddressError):
        RobotsCache(guarded, UA).allowed(server.url("/story"))
    assert server.hits == 0


# --- Crawl-delay ---------------------------------------------------------------------------------------


def test_crawl_delay_of_the_group_that_applies():
    text = "User-agent: *\nCrawl-delay: 5\nDisallow: /x\n\nUser-agent: newswire\nCrawl-delay: 2.5\nDisallow: /y\n"
    assert rules(text).crawl_delay == 2.5
    assert rules(text, "OtherBot/1.0").crawl_delay == 5
    assert rules("User-agent: *\nDisallow: /\n").crawl_delay is None
    # Unusable values are ignored, and a delay before any User-agent line belongs to no group.
    assert rules("Crawl-delay: 9\nUser-agent: *\nCrawl-delay: soon\nCrawl-delay: -1\n").crawl_delay is None
    # Groups naming the same agent merge: the longest delay asked for wins.
    assert rules("User-agent: newswire\nCrawl-delay: 1\n\nUser-agent: newswire\nCrawl-delay: 3\n").crawl_delay == 3


@pytest.mark.parametrize(("asked", "cap", "spacing"), [("0.3", 10.0, 0.3), ("600", 0.25, 0.25), ("0.3", 0.0, 0.0)])
def test_crawl_delay_spaces_the_hosts_requests_up_to_the_cap(server, asked: str, cap: float, spacing: float):
    from ingest.politeness import HostThrottle

    server.handler = robots_body(f"User-agent: *\nCrawl-delay: {asked}\n")
    throttle = HostThrottle(0.0)
    with Fetcher(HttpPolicy(allow_private_networks=True, total_timeout=5), throttle=throttle) as fetcher:
        cache = RobotsCache(fetcher, UA, max_crawl_delay=cap)
        assert cache.allowed(server.url("/story")) is True
        waits = [throttle.wait(server.url(f"/story/{i}")) for i in range(3)]
    assert waits[0] <= spacing + 0.01  # the robots.txt request itself took the first slot
    assert waits[1] == pytest.approx(spacing, abs=0.05) and waits[2] == pytest.approx(spacing, abs=0.05)
    assert throttle.wait("http://elsewhere.example/") == 0.0  # other hosts keep the throttle's own interval
