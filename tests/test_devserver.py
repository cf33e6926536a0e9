"""The corpus server's HTTP behaviour, and the bundled corpus's promises (EXPECTED.toml) checked against the feeds."""

from __future__ import annotations

import gzip
import http.client
import importlib.util
import json
import re
import signal
import subprocess
import sys
import threading
import time
import tomllib
import urllib.robotparser
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from email.message import Message
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import feedparser
import lxml.html
import pytest

from devtools.devserver import (
    CorpusError,
    CorpusServer,
    ServerNotRunning,
    TemplateError,
    TemplateRenderer,
)
from newswire.errors import NewswireError

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "devtools" / "corpus"
SAMPLE = REPO.parent / "shared" / "samples" / "khan-al-assal.fr.txt"
EXPECTED: dict[str, Any] = tomllib.loads((CORPUS / "EXPECTED.toml").read_text(encoding="utf-8"))
TODAY = date(2024, 11, 28)
FEED_VERSIONS = {"rss2": "rss20", "atom": "atom10", "rss1": "rss10"}
WIRE_TOP = "/feeds/top.rss"
APPLE = "/environment/lost-apple-variety-sheppey-pearmain-rediscovered-kent.html"


class Reply:
    def __init__(self, status: int, headers: Message, body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


def fetch(
    server: CorpusServer, outlet: str, target: str, *, method: str = "GET", headers: Mapping[str, str] | None = None
) -> Reply:
    """One raw request: no client-side decompression, redirects or header rewriting to hide what was sent."""
    netloc = urlsplit(server.base_url(outlet)).netloc
    connection = http.client.HTTPConnection(netloc, timeout=10)
    try:
        connection.request(method, target, headers=dict(headers or {}))
        response = connection.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        connection.close()


def get_url(server: CorpusServer, url: str, headers: Mapping[str, str] | None = None) -> Reply:
    parts = urlsplit(url)
    outlet = next(o for o in server.outlets if server.base_url(o) == f"{parts.scheme}://{parts.netloc}")
    return fetch(server, outlet, parts.path + (f"?{parts.query}" if parts.query else ""), headers=headers)


@pytest.fixture(scope="module")
def server() -> Iterator[CorpusServer]:
    with CorpusServer(CORPUS, today=TODAY) as running:
        yield running


@pytest.fixture(scope="module")
def feed_list(server: CorpusServer, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    path = server.render_feed_list(tmp_path_factory.mktemp("feeds") / "feeds.toml")
    return tomllib.loads(path.read_text(encoding="utf-8"))["feeds"]


@pytest.fixture(scope="module")
def parsed_feeds(server: CorpusServer, feed_list: list[dict[str, Any]]) -> dict[str, Any]:
    parsed = {}
    for feed in feed_list:
        reply = get_url(server, feed["url"])
        assert reply.status == 200, feed["url"]
        parsed[feed["url"]] = feedparser.parse(
            reply.body, response_headers={"content-type": reply.headers["Content-Type"]}
        )
    return parsed


def page_tree(server: CorpusServer, outlet: str, path: str) -> Any:
    reply = fetch(server, outlet, path)
    assert reply.status == 200, (outlet, path)
    return lxml.html.fromstring(reply.body)


# -- templates -------------------------------------------------------------------------------------------


def test_renderer_fills_dates_relative_to_today_in_utc() -> None:
    renderer = TemplateRenderer({"wire": "http://127.0.0.1:5000"}, TODAY)
    rendered = renderer.render(
        "{{site:wire}}/a | {{rfc822:-3:14:20}} | {{iso:-1}} | {{iso:+2:08:05}} | {{date:0}} | {{dmy:-28}}"
        " | {{rfc822:-90}}"
    )
    assert rendered.split(" | ") == [
        "http://127.0.0.1:5000/a",
        "Mon, 25 Nov 2024 14:20:00 GMT",
        "2024-11-27T00:00:00Z",
        "2024-11-30T08:05:00Z",
        "2024-11-28",
        "31/10/2024",
        "Fri, 30 Aug 2024 00:00:00 GMT",
    ]


def test_renderer_leaves_text_that_is_not_a_placeholder() -> None:
    text = 'var cfg = {"a": {"b": 1}}; {{ not a placeholder }} {{UPPER:1}} {x}'
    assert TemplateRenderer({}, TODAY).render(text) == text


@pytest.mark.parametrize(
    "template",
    ["{{site:nowhere}}", "{{when:-1}}", "{{iso:yesterday}}", "{{iso:-1:25:00}}", "{{rfc822:-1:10:61}}", "{{iso:-1:9}}"],
)
def test_renderer_refuses_what_it_cannot_fill(template: str) -> None:
    with pytest.raises(TemplateError) as info:
        TemplateRenderer({"wire": "http://x"}, TODAY).render(template)
    assert isinstance(info.value, NewswireError)


def test_dates_move_with_the_servers_today() -> None:
    later = TODAY + timedelta(days=95)
    published = []
    for today in (TODAY, later):
        with CorpusServer(CORPUS, today=today) as running:
            body = fetch(running, "meridian-wire", WIRE_TOP).body
            feed = feedparser.parse(body)
            published.append({entry.title: datetime(*entry.published_parsed[:6], tzinfo=UTC) for entry in feed.entries})
    assert published[0].keys() == published[1].keys()
    for title, moment in published[0].items():
        assert published[1][title] - moment == timedelta(days=95), title
        assert TODAY - timedelta(days=10) <= moment.date() < TODAY, title


# -- serving ---------------------------------------------------------------------------------------------


def test_each_outlet_is_its_own_loopback_host(server: CorpusServer) -> None:
    assert len(server.outlets) >= 6
    netlocs = {urlsplit(server.base_url(outlet)).netloc for outlet in server.outlets}
    assert len(netlocs) == len(server.outlets)
    assert all(netloc.startswith("127.0.0.1:") for netloc in netlocs)
    assert server.url("valley-herald", "index.rdf") == server.base_url("valley-herald") + "/index.rdf"
    assert server.url("valley-herald", "/index.rdf") == server.base_url("valley-herald") + "/index.rdf"


def test_feed_is_served_rendered(server: CorpusServer) -> None:
    reply = fetch(server, "meridian-wire", WIRE_TOP)
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/rss+xml; charset=utf-8"
    assert int(reply.headers["Content-Length"]) == len(reply.body)
    assert "{{" not in reply.text
    assert (
        f"<link>{server.base_url('meridian-wire')}/article/copper-record-high-chile-mine-strike/</link>" in reply.text
    )
    assert "<pubDate>Wed, 27 Nov 2024 09:00:00 GMT</pubDate>" in reply.text


@pytest.mark.parametrize(
    ("outlet", "path", "content_type"),
    [
        ("daily-ledger", "/feeds/news.atom", "application/atom+xml; charset=utf-8"),
        ("national-chronicle", "/rss/world.xml", "application/xml; charset=utf-8"),
        ("valley-herald", "/index.rdf", "application/rdf+xml; charset=utf-8"),
        ("echo-republicain", "/monde/turquie-seisme-simav-kutahya-104698.html", "text/html; charset=utf-8"),
        ("journal-du-soir", "/robots.txt", "text/plain; charset=utf-8"),
        ("daily-ledger", "/media/aurora-1.svg", "image/svg+xml"),
    ],
)
def test_content_type_follows_the_extension(server: CorpusServer, outlet: str, path: str, content_type: str) -> None:
    reply = fetch(server, outlet, path)
    assert reply.status == 200
    assert reply.headers["Content-Type"] == content_type


def test_etag_revalidation_answers_304(server: CorpusServer) -> None:
    first = fetch(server, "daily-ledger", "/feeds/news.atom")
    etag = first.headers["ETag"]
    assert re.fullmatch(r'"[0-9a-f]{20}"', etag)
    assert fetch(server, "daily-ledger", "/feeds/news.atom").headers["ETag"] == etag  # stable
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = fetch(server, "daily-ledger", "/feeds/news.atom", headers={"If-None-Match": header})
        assert again.status == 304, header
        assert again.body == b""
        assert again.headers["ETag"] == etag
    changed = fetch(server, "daily-ledger", "/feeds/news.atom", headers={"If-None-Match": '"0000"'})
    assert changed.status == 200
    assert changed.body == first.body
    other = fetch(server, "daily-ledger", "/feeds/latest.rss")
    assert other.headers["ETag"] != etag


def test_if_modified_since_and_precedence_of_if_none_match(server: CorpusServer) -> None:
    first = fetch(server, "valley-herald", "/index.rdf")
    last_modified = first.headers["Last-Modified"]
    assert parsedate_to_datetime(last_modified) == datetime(2024, 11, 28, tzinfo=UTC)

    def status(headers: dict[str, str]) -> int:
        return fetch(server, "valley-herald", "/index.rdf", headers=headers).status

    assert status({"If-Modified-Since": last_modified}) == 304
    assert status({"If-Modified-Since": "Fri, 29 Nov 2024 10:00:00 GMT"}) == 304
    assert status({"If-Modified-Since": "Wed, 27 Nov 2024 23:59:59 GMT"}) == 200
    assert status({"If-Modified-Since": "not a date"}) == 200
    # RFC 9110: when If-None-Match is present, If-Modified-Since is ignored.
    assert status({"If-None-Match": '"stale"', "If-Modified-Since": last_modified}) == 200


def test_gzip_only_when_the_client_accepts_it(server: CorpusServer) -> None:
    path = "/world/turkey-earthquake-simav-kutahya.html"
    plain = fetch(server, "national-chronicle", path)
    assert plain.headers["Content-Encoding"] is None
    assert plain.headers["Vary"] == "Accept-Encoding"
    for accept in ("gzip", "br, gzip;q=0.8", "*", "GZIP"):
        packed = fetch(server, "national-chronicle", path, headers={"Accept-Encoding": accept})
        assert packed.headers["Content-Encoding"] == "gzip", accept
        assert int(packed.headers["Content-Length"]) == len(packed.body) < len(plain.body)
        assert gzip.decompress(packed.body) == plain.body
        assert packed.headers["ETag"] != plain.headers["ETag"]
    for accept in ("identity", "br", "gzip;q=0", "*, gzip;q=0"):
        reply = fetch(server, "national-chronicle", path, headers={"Accept-Encoding": accept})
        assert reply.headers["Content-Encoding"] is None, accept
        assert reply.body == plain.body
    # Either representation's validator revalidates (weak comparison, as caches do across encodings).
    packed_etag = fetch(server, "national-chronicle", path, headers={"Accept-Encoding": "gzip"}).headers["ETag"]
    assert fetch(server, "national-chronicle", path, headers={"If-None-Match": packed_etag}).status == 304


def test_a_preloaded_server_answers_as_one_that_renders_on_demand() -> None:
    pages = [("national-chronicle", "world/turkey-earthquake-simav-kutahya.html"), ("echo-republicain", "atom.xml")]
    with pytest.raises(ServerNotRunning):
        CorpusServer(CORPUS, today=TODAY).preload()
    with CorpusServer(CORPUS, today=TODAY) as preloaded:
        assert preloaded.preload() > len(pages)
        for outlet, path in pages:
            expected = preloaded.render((CORPUS / "sites" / outlet / path).read_text("utf-8")).encode("utf-8")
            plain = fetch(preloaded, outlet, f"/{path}")
            packed = fetch(preloaded, outlet, f"/{path}", headers={"Accept-Encoding": "gzip"})
            assert plain.body == expected and plain.headers["Content-Encoding"] is None
            assert packed.headers["Content-Encoding"] == "gzip" and gzip.decompress(packed.body) == expected
            assert int(packed.headers["Content-Length"]) == len(packed.body) < len(expected)
            assert packed.headers["ETag"] == plain.headers["ETag"][:-1] + '-gzip"'


def test_head_has_the_get_headers_and_no_body(server: CorpusServer) -> None:
    got = fetch(server, "echo-republicain", "/atom.xml")
    head = fetch(server, "echo-republicain", "/atom.xml", method="HEAD")
    assert head.status == 200
    assert head.body == b""
    for name in ("Content-Type", "Content-Length", "ETag", "Last-Modified"):
        assert head.headers[name] == got.headers[name], name


@pytest.mark.parametrize(
    "target",
    [
        "/no-such-page.html",
        "/news/calderdale-bin-collection-changes.html",
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/news/..%2f..%2f..%2fbuild.py",
        "/.git/config",
        "/robots.txt/",
        "/news\\..\\index.html",
    ],
)
def test_missing_or_outside_the_site_is_404(server: CorpusServer, target: str) -> None:
    reply = fetch(server, "valley-herald", target)
    assert reply.status == 404
    assert reply.headers["Content-Type"] == "text/html; charset=utf-8"
    assert b"root:" not in reply.body


def test_query_string_does_not_change_the_file(server: CorpusServer) -> None:
    clean = fetch(server, "daily-ledger", APPLE)
    tracked = fetch(server, "daily-ledger", f"{APPLE}?utm_source=rss&utm_medium=feed")
    assert clean.status == tracked.status == 200
    assert tracked.body == clean.body
    assert tracked.headers["ETag"] == clean.headers["ETag"]


def test_directory_serves_index_and_slashless_directory_redirects(server: CorpusServer) -> None:
    home = fetch(server, "meridian-wire", "/")
    assert home.status == 200
    assert b'class="home home--meridian-wire"' in home.body
    article = "/article/peru-earthquake-arequipa-chala"
    moved = fetch(server, "meridian-wire", f"{article}?ref=home")
    assert moved.status == 301
    assert moved.headers["Location"] == f"{article}/?ref=home"
    page = fetch(server, "meridian-wire", f"{article}/")
    assert page.status == 200
    assert b"Magnitude 6.0 earthquake kills four in southern Peru" in page.body


@pytest.mark.parametrize("length", ["0", "5", "not-a-number"])
def test_other_methods_are_refused(server: CorpusServer, length: str) -> None:
    reply = fetch(server, "daily-ledger", "/feeds/news.atom", method="POST", headers={"Content-Length": length})
    assert reply.status == 405
    assert reply.headers["Allow"] == "GET, HEAD"
    assert fetch(server, "daily-ledger", "/robots.txt").status == 200  # the server carries on


def test_request_log_records_what_the_client_sent(server: CorpusServer) -> None:
    fetch(
        server,
        "journal-du-soir",
        "/rss/une.xml?x=1",
        headers={"User-Agent": "Newswire-test/1", "If-None-Match": '"abc"'},
    )
    record = [r for r in server.request_log if r.outlet == "journal-du-soir" and r.path == "/rss/une.xml?x=1"][-1]
    outlet, method, path, headers = record
    assert (outlet, method, path) == ("journal-du-soir", "GET", "/rss/une.xml?x=1")
    assert headers["user-agent"] == "Newswire-test/1"
    assert headers["if-none-match"] == '"abc"'


def test_keep_alive_serves_several_requests_on_one_connection(server: CorpusServer) -> None:
    connection = http.client.HTTPConnection(urlsplit(server.base_url("valley-herald")).netloc, timeout=10)
    try:
        for path in ("/robots.txt", "/index.rdf", "/missing.html", "/"):
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            assert response.status in (200, 404)
            assert not response.will_close, path
    finally:
        connection.close()


def test_latency_delays_every_response() -> None:
    with CorpusServer(CORPUS, today=TODAY, latency=0.2) as slow:
        started = time.monotonic()
        assert fetch(slow, "valley-herald", "/robots.txt").status == 200
        assert time.monotonic() - started >= 0.2


def test_stop_ends_idle_keep_alive_connections_and_joins_every_thread() -> None:
    before = set(threading.enumerate())
    corpus = CorpusServer(CORPUS, today=TODAY).start()
    assert corpus.start() is corpus  # idempotent
    idle = http.client.HTTPConnection(urlsplit(corpus.base_url("daily-ledger")).netloc, timeout=10)
    idle.request("GET", "/robots.txt")
    idle.getresponse().read()  # the connection stays open: its handler thread waits for a next request
    started = time.monotonic()
    corpus.stop()
    assert time.monotonic() - started < 5
    assert set(threading.enumerate()) - before == set()
    idle.close()
    with pytest.raises(ServerNotRunning):
        corpus.base_url("daily-ledger")
    corpus.stop()  # idempotent
    with corpus:  # and it can serve again
        assert fetch(corpus, "daily-ledger", "/robots.txt").status == 200
    assert set(threading.enumerate()) - before == set()


def test_base_port_pins_ports_in_outlet_order() -> None:
    for _attempt in range(5):
        probe = CorpusServer(CORPUS).start()
        base = int(urlsplit(probe.base_url(probe.outlets[0])).port or 0)
        probe.stop()
        try:
            pinned = CorpusServer(CORPUS, base_port=base).start()
        except CorpusError:
            continue  # some port of the range was taken meanwhile; try another range
        try:
            ports = [urlsplit(pinned.base_url(outlet)).port for outlet in pinned.outlets]
            assert ports == list(range(base, base + len(pinned.outlets)))
            assert fetch(pinned, pinned.outlets[-1], "/robots.txt").status == 200
        finally:
            pinned.stop()
        return
    pytest.skip("no free range of consecutive loopback ports")


def test_misuse_raises_corpus_errors(tmp_path: Path) -> None:
    with pytest.raises(CorpusError):
        CorpusServer(tmp_path)  # no sites/
    (tmp_path / "sites").mkdir()
    with pytest.raises(CorpusError):
        CorpusServer(tmp_path)  # no outlets
    with pytest.raises(CorpusError):
        CorpusServer(CORPUS, latency=-1)
    with pytest.raises(CorpusError):
        CorpusServer(CORPUS, base_port=65535)
    idle = CorpusServer(CORPUS)
    with pytest.raises(ServerNotRunning):
        idle.base_url("daily-ledger")
    with pytest.raises(ServerNotRunning):
        idle.render_feed_list(tmp_path / "feeds.toml")
    with pytest.raises(CorpusError, match="unknown outlet"):
        idle.base_url("the-times")
    assert issubclass(CorpusError, NewswireError)


def test_broken_template_is_a_500_and_binary_files_are_not_templated(tmp_path: Path) -> None:
    site = tmp_path / "sites" / "solo"
    site.mkdir(parents=True)
    (site / "bad.html").write_text("<a href='{{site:elsewhere}}'>x</a>", encoding="utf-8")
    (site / "raw.bin").write_bytes(b"{{site:solo}}\x00\xff")
    (site / "good.txt").write_text("{{site:solo}}/x", encoding="utf-8")
    with CorpusServer(tmp_path) as solo:
        assert fetch(solo, "solo", "/bad.html").status == 500
        raw = fetch(solo, "solo", "/raw.bin")
        assert (raw.status, raw.body) == (200, b"{{site:solo}}\x00\xff")
        assert raw.headers["Content-Type"] == "application/octet-stream"
        assert fetch(solo, "solo", "/good.txt").text == solo.base_url("solo") + "/x"


def test_command_line_serves_until_interrupted(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devtools.devserver",
            str(CORPUS),
            "--today",
            "2024-11-28",
            "--feed-list",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(8)]
        urls = dict(line.split() for line in lines[:6])
        assert "meridian-wire" in urls
        assert lines[6].startswith("feed list: ")
        assert lines[7].startswith("serving")
        connection = http.client.HTTPConnection(urlsplit(urls["meridian-wire"]).netloc, timeout=10)
        try:
            connection.request("GET", WIRE_TOP)
            assert b"Wed, 27 Nov 2024 09:00:00 GMT" in connection.getresponse().read()
        finally:
            connection.close()
        assert "{{" not in (tmp_path / "feeds.toml").read_text(encoding="utf-8")
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0


# -- the corpus ------------------------------------------------------------------------------------------


def test_feed_list_and_opml_render_to_concrete_urls(server: CorpusServer, tmp_path: Path) -> None:
    toml_path = server.render_feed_list(tmp_path / "out")
    assert toml_path == tmp_path / "out" / "feeds.toml"
    feeds = tomllib.loads(toml_path.read_text(encoding="utf-8"))["feeds"]
    bases = {server.base_url(outlet) for outlet in server.outlets}
    assert len(feeds) == EXPECTED["counts"]["feeds"]
    assert all(f"{urlsplit(feed['url']).scheme}://{urlsplit(feed['url']).netloc}" in bases for feed in feeds)
    opml = ET.parse(server.render_opml(tmp_path / "export.opml"))
    opml_urls = [node.get("xmlUrl") for node in opml.iter("outline") if node.get("xmlUrl")]
    assert opml_urls == [feed["url"] for feed in feeds]


def test_every_feed_parses_with_its_expected_format_and_size(
    server: CorpusServer, feed_list: list[dict[str, Any]], parsed_feeds: dict[str, Any]
) -> None:
    expected = {server.url(feed["outlet"], feed["path"]): feed for feed in EXPECTED["feeds"]}
    assert set(parsed_feeds) == set(expected)
    formats = set()
    for url, parsed in parsed_feeds.items():
        assert not parsed.bozo, (url, parsed.get("bozo_exception"))
        assert parsed.version == FEED_VERSIONS[expected[url]["format"]], url
        assert len(parsed.entries) == expected[url]["entries"], url
        for entry in parsed.entries:
            assert entry.get("title") and entry.get("link"), url
            assert entry.get("published_parsed") or entry.get("updated_parsed"), url
        formats.add(parsed.version)
    assert formats == {"rss20", "atom10", "rss10"}
    assert sum(len(parsed.entries) for parsed in parsed_feeds.values()) == EXPECTED["counts"]["entries"]


def test_every_entry_link_is_served_except_the_deliberate_404(
    server: CorpusServer, parsed_feeds: dict[str, Any]
) -> None:
    gone = {
        server.url(item["outlet"], item["path"]) for item in EXPECTED["dead_letters"] if item["reason"] == "http_status"
    }
    assert len(gone) == EXPECTED["dead_letter_reasons"]["http_status"]
    for parsed in parsed_feeds.values():
        for entry in parsed.entries:
            reply = get_url(server, entry.link)
            assert reply.status == (404 if entry.link in gone else 200), entry.link


def test_expected_counts_add_up() -> None:
    counts = EXPECTED["counts"]
    assert counts["entries"] == sum(
        counts[key]
        for key in ("distinct_articles", "url_duplicates", "verbatim_copies", "robots_skips", "dead_letters")
    )
    assert counts["feeds"] == len(EXPECTED["feeds"])
    assert counts["entries"] == sum(feed["entries"] for feed in EXPECTED["feeds"])
    assert counts["robots_skips"] == len(EXPECTED["robots_skips"]) == 1
    assert counts["dead_letters"] == len(EXPECTED["dead_letters"]) == sum(EXPECTED["dead_letter_reasons"].values())
    assert EXPECTED["dead_letter_reasons"] == {"http_status": 1, "no_body": 1}
    assert counts["url_duplicates"] == sum(len(dup["links"]) - 1 for dup in EXPECTED["url_duplicates"])
    assert counts["verbatim_copies"] == sum(len(group["copies"]) for group in EXPECTED["verbatim_groups"])
    assert counts["distinct_articles"] == len(EXPECTED["articles"])
    assert 30 <= counts["distinct_articles"] <= 40
    assert {a["language"] for a in EXPECTED["articles"]} == {"en", "fr"}
    assert all(250 <= a["words"] <= 700 for a in EXPECTED["articles"])


def test_expected_cases_match_the_feeds(server: CorpusServer, parsed_feeds: dict[str, Any]) -> None:
    """Each named case (robots skip, dead letter, duplicate, rewrite) is really in the feeds as described."""
    links = [entry.link for parsed in parsed_feeds.values() for entry in parsed.entries]
    for item in EXPECTED["robots_skips"] + EXPECTED["dead_letters"] + EXPECTED["canonical_rewrites"]:
        key = "link" if "link" in item else "path"
        assert links.count(server.url(item["outlet"], item[key])) == 1, item
    for duplicate in EXPECTED["url_duplicates"]:
        for link in duplicate["links"]:
            assert server.url(duplicate["outlet"], link) in links
        assert {urlsplit(link).path for link in duplicate["links"]} == {duplicate["canonical"]}
    assert any("utm_source=rss&utm_medium=feed" in link for dup in EXPECTED["url_duplicates"] for link in dup["links"])


def test_robots_skip_is_the_only_disallowed_entry(server: CorpusServer, parsed_feeds: dict[str, Any]) -> None:
    agent = "Newswire/0.1 (+https://github.com/newswire/newswire; news ingestion bot)"
    parsers = {}
    for outlet in server.outlets:
        parser = urllib.robotparser.RobotFileParser()
        parser.parse(fetch(server, outlet, "/robots.txt").text.splitlines())
        parsers[server.base_url(outlet)] = parser
    blocked = []
    for parsed in parsed_feeds.values():
        for entry in parsed.entries:
            parts = urlsplit(entry.link)
            if not parsers[f"{parts.scheme}://{parts.netloc}"].can_fetch(agent, entry.link):
                blocked.append(entry.link)
    assert blocked == [server.url(item["outlet"], item["path"]) for item in EXPECTED["robots_skips"]]
    assert get_url(server, blocked[0]).status == 200  # the page exists: skipping it is robots' doing alone


def test_article_pages_carry_canonical_and_metadata(server: CorpusServer) -> None:
    pages = {(a["outlet"], a["path"]): a for a in EXPECTED["articles"]}
    for group in EXPECTED["verbatim_groups"]:
        for copy in group["copies"]:
            pages.setdefault((copy["outlet"], copy["path"]), {})
    for (outlet, path), expected in pages.items():
        tree = page_tree(server, outlet, path)
        url = server.url(outlet, path)
        assert tree.xpath("string(//link[@rel='canonical']/@href)") == url, url
        assert tree.xpath("string(//meta[@property='og:url']/@content)") == url, url
        assert tree.xpath("string(//meta[@property='og:title']/@content)"), url
        assert tree.xpath("string(//meta[@property='og:locale']/@content)")[:2] in ("en", "fr"), url
        assert tree.xpath("string(/html/@lang)")[:2] in ("en", "fr"), url
        published = tree.xpath("string(//meta[@property='article:published_time']/@content)")
        ld = json.loads(tree.xpath("string(//script[@type='application/ld+json'])"))
        assert ld["@type"] == "NewsArticle"
        assert ld["datePublished"] == published
        assert ld["author"][0]["name"] and ld["publisher"]["name"], url
        assert ld["mainEntityOfPage"]["@id"] == url
        if expected:
            assert tree.xpath("string(/html/@lang)")[:2] == expected["language"], url
            day, clock = expected["published"].split()
            moment = datetime.combine(TODAY + timedelta(days=int(day)), datetime.strptime(clock, "%H:%M").time())
            assert published == moment.strftime("%Y-%m-%dT%H:%M:%SZ"), url
            assert ld["headline"] == expected["title"]
            assert ld["author"][0]["name"] == expected["author"]


def test_feed_link_to_amp_page_names_the_article_as_canonical(server: CorpusServer) -> None:
    (rewrite,) = EXPECTED["canonical_rewrites"]
    tree = page_tree(server, rewrite["outlet"], rewrite["link"])
    assert tree.xpath("string(//link[@rel='canonical']/@href)") == server.url(rewrite["outlet"], rewrite["canonical"])
    canonical = page_tree(server, rewrite["outlet"], rewrite["canonical"])
    assert canonical.xpath("string(//link[@rel='amphtml']/@href)") == server.url(rewrite["outlet"], rewrite["link"])


def test_stories_and_hard_negatives_name_served_pages(server: CorpusServer) -> None:
    stories = EXPECTED["stories"]
    assert len(stories) >= 6
    story_of = {}
    for story in stories:
        assert 2 <= len({a["outlet"] for a in story["articles"]}) <= 4, story["id"]
        for article in story["articles"]:
            assert fetch(server, article["outlet"], article["path"]).status == 200
            story_of[(article["outlet"], article["path"])] = story["id"]
    assert {"en", "fr"} <= {lang for story in stories for lang in story["languages"]}
    assert len(EXPECTED["hard_negatives"]) >= 3
    for pair in EXPECTED["hard_negatives"]:
        a, b = (pair["a"]["outlet"], pair["a"]["path"]), (pair["b"]["outlet"], pair["b"]["path"])
        assert fetch(server, *a).status == fetch(server, *b).status == 200
        assert story_of.get(a) is None or story_of.get(a) != story_of.get(b), pair


def test_syndicated_copies_extract_to_identical_text_and_gallery_to_almost_nothing(server: CorpusServer) -> None:
    trafilatura = pytest.importorskip("trafilatura")
    (group,) = EXPECTED["verbatim_groups"]
    texts = set()
    for page in (group["original"], *group["copies"]):
        html = fetch(server, page["outlet"], page["path"]).text
        texts.add(trafilatura.extract(html))
    (text,) = texts
    assert len(text.split()) >= 250
    (gallery,) = [item for item in EXPECTED["dead_letters"] if item["reason"] == "no_body"]
    extracted = trafilatura.extract(fetch(server, gallery["outlet"], gallery["path"]).text) or ""
    assert len(extracted.split()) < 30


def test_khan_al_assal_sample_is_kept_verbatim(server: CorpusServer) -> None:
    if not SAMPLE.is_file():
        pytest.skip(f"{SAMPLE} not present")
    (story,) = [story for story in EXPECTED["stories"] if story["id"] == "khan-al-assal"]
    page = next(a for a in story["articles"] if a["outlet"] == "echo-republicain")
    text = re.sub(r"\s+", " ", page_tree(server, page["outlet"], page["path"]).text_content())
    for line in SAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip():
            assert re.sub(r"\s+", " ", line.strip()) in text, line


def test_committed_output_matches_the_sources(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("corpus_build", CORPUS / "build.py")
    assert spec is not None and spec.loader is not None
    build = importlib.util.module_from_spec(spec)
    sys.modules["corpus_build"] = build
    try:
        spec.loader.exec_module(build)
        build.build(tmp_path)
    finally:
        del sys.modules["corpus_build"]

    def tree(root: Path) -> dict[str, bytes]:
        files = [
            *sorted((root / "sites").rglob("*")),
            *(root / name for name in ("feeds.toml", "feeds.opml", "EXPECTED.toml")),
        ]
        return {str(path.relative_to(root)): path.read_bytes() for path in files if path.is_file()}

    fresh, committed = tree(tmp_path), tree(CORPUS)
    assert sorted(fresh) == sorted(committed), "run: python devtools/corpus/build.py"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"stale generated files {stale}; run: python devtools/corpus/build.py"
