"""Hostile and broken input through the real pipeline: every case ends in a recorded reason, the run goes on.

One ingest run (real embedded broker, real DuckDB warehouse, real HTTP client) polls ~25 feeds served by
a loopback server that misbehaves on purpose, plus a TLS server with an untrusted certificate, a closed
port and unresolvable ``.invalid`` hosts. Each test below then checks what one input left in the
warehouse: a failed feed with a dead letter and a reason, an entry outcome with a reason, or parse
warnings stored with the run. The accounting invariant is checked by tests/integration/conftest.py.

The HTTP client's own mechanics (caps, budgets, redirect rules, SSRF guard details) have unit tests in
tests/unit/test_http.py and the parser's in tests/unit/test_feeds.py; this module proves the pipeline
turns each failure into the right record without stopping.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest
from hostile_server import (
    BILLION_LAUGHS,
    BROKEN_XML,
    EMPTY_FEED,
    HOPELESS_XML,
    HTML_AS_FEED,
    XXE,
    HostileServer,
    article_page,
    drip,
    empty_article_page,
    endless,
    gzip_bomb,
    huge,
    many_items,
    ok,
    redirect,
    rss,
    rss_item,
    status,
    truncated,
)

from ingest.feedlist import FeedSpec
from ingest.http import Fetcher
from ingest.netguard import AddressGuard, IPAddress, is_public_address
from ingest.stage import IngestSummary, ingest_feeds
from newswire.broker import EmbeddedBroker
from newswire.settings import load_settings
from newswire.warehouse import Warehouse

pytestmark = pytest.mark.integration

TOTAL_TIMEOUT = 2.5
MAX_ENTRIES = 40
RSS_TYPE = "application/rss+xml; charset=utf-8"


def loopback_is_public(address: IPAddress) -> bool:
    """127.0.0.1 plays the public internet; every other private address stays forbidden."""
    return address == ip_address("127.0.0.1") or is_public_address(address)


@dataclass
class HostileRun:
    summary: IngestSummary
    warehouse: Warehouse
    server: HostileServer
    feeds: dict[str, str]  # name -> feed URL
    pages: dict[str, str]  # name -> page URL

    def entry(self, page: str) -> dict[str, Any]:
        rows = self.warehouse.query(
            "SELECT e.outcome, e.reason, e.title, e.published_at, e.entry_url, d.stage, d.retryable, d.message "
            "FROM feed_entries e LEFT JOIN dead_letters d ON d.dead_letter_id = e.dead_letter_id "
            "WHERE e.entry_url = ?",
            (self.pages[page],),
        )
        assert len(rows) == 1, f"{page}: expected one ledger row, got {rows}"
        return rows[0]

    def feed_failure(self, feed: str) -> dict[str, Any]:
        url = self.feeds[feed]
        assert url in self.summary.failures, f"{feed} did not fail: {self.summary.failures}"
        rows = self.warehouse.query(
            "SELECT stage, reason, retryable, message FROM dead_letters WHERE url = ? AND feed_url = ?", (url, url)
        )
        assert len(rows) == 1, rows
        run = self.run(feed)
        assert run["status"] == "failed" and rows[0]["reason"] in run["error"]
        assert self.warehouse.scalar("SELECT COUNT(*) FROM feed_entries WHERE feed_url = ?", (url,)) == 0
        return rows[0]

    def run(self, feed: str) -> dict[str, Any]:
        rows = self.warehouse.query("SELECT * FROM ingest_runs WHERE feed_url = ?", (self.feeds[feed],))
        assert len(rows) == 1
        return rows[0]


# -- the hostile world -------------------------------------------------------------------------------------


def _self_signed_https_server(tmp: Path) -> tuple[ThreadingHTTPServer, int]:
    """An HTTPS server whose certificate no public CA signed: every verified handshake must fail."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    path = tmp / "self-signed.pem"
    path.write_bytes(
        cert.public_bytes(pem) + key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(path)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = article_page("Served over untrusted TLS")
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return httpd, int(httpd.server_address[1])


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_world(server: HostileServer, tls_port: int) -> tuple[dict[str, str], dict[str, str]]:
    """Register every hostile feed and page; return (feeds by name, pages by name)."""
    pages: dict[str, str] = {}

    def page(name: str, route: Any) -> str:
        pages[name] = server.route(f"/pages/{name}", route)
        return pages[name]

    page("good", ok(article_page("A perfectly normal article", "good")))
    page("pdf", ok(b"%PDF-1.7\n%binary", content_type="application/pdf"))
    page("image", ok(b"\x89PNG\r\n\x1a\n....", content_type="image/png"))
    page("huge", huge(50 * 1024 * 1024))
    page("endless", endless())
    page("gzip-bomb", gzip_bomb())
    page("slow-drip", drip(interval=0.1))
    page("no-text", ok(empty_article_page()))
    page("redirect-loop", redirect("/pages/redirect-loop-2"))
    server.route("/pages/redirect-loop-2", redirect("/pages/redirect-loop"))
    page("redirect-metadata", redirect("http://169.254.169.254/latest/meta-data/iam/security-credentials/"))
    page("redirect-ipv6-loopback", redirect(f"http://[::1]:{server.port}/pages/good"))
    page("gone-404", status(404))
    page("error-500", status(500))
    page("throttled-429", status(429, Retry_After="120"))
    page("unavailable-503", status(503, Retry_After="Wed, 21 Oct 2099 07:28:00 GMT"))
    page("truncated", truncated())
    pages["tls"] = f"https://127.0.0.1:{tls_port}/pages/tls"
    pages["dns"] = "http://article.newswire-hostile.invalid/pages/dns"
    pages["refused"] = f"http://127.0.0.1:{_closed_port()}/pages/refused"

    feeds: dict[str, str] = {}

    def feed(name: str, route: Any) -> None:
        feeds[name] = server.route(f"/feeds/{name}", route)

    # -- pages: one feed whose entries each point at one misbehaving page --------------------------------
    # (Served with ignore_robots: robots.txt of an unreachable host fails first, which has its own feed.)
    feed("pages", ok(rss(rss_item(title=name, link=url) for name, url in pages.items()).encode(), RSS_TYPE))
    pages["robots-unreachable"] = f"https://127.0.0.1:{tls_port}/pages/robots-unreachable"
    robots_items = [rss_item(title="robots.txt unreachable", link=pages["robots-unreachable"])]
    feed("robots-unreachable", ok(rss(robots_items).encode(), RSS_TYPE))

    # -- feed documents ----------------------------------------------------------------------------------
    feed("invalid-xml", ok(HOPELESS_XML, RSS_TYPE))
    feed("broken-xml", ok(BROKEN_XML, RSS_TYPE))
    cut = rss(rss_item(title=f"Cut {i}", link=server.url(f"/big/cut-{i}.pdf")) for i in range(3))
    feed("truncated-feed", ok(cut[: cut.index("Cut 2") + 3].encode(), RSS_TYPE))
    feed("html-as-feed", ok(HTML_AS_FEED, RSS_TYPE))
    feed("empty-body", ok(b"", RSS_TYPE))
    feed("empty-feed", ok(EMPTY_FEED.encode(), RSS_TYPE))
    feed("billion-laughs", ok(BILLION_LAUGHS, RSS_TYPE))
    feed("xxe", ok(XXE, RSS_TYPE))
    feed("gzip-bomb", gzip_bomb(content_type=RSS_TYPE))
    feed("slow-drip", drip(content_type=RSS_TYPE, interval=0.1))
    feed("endless", endless(content_type=RSS_TYPE))
    feed("pdf", ok(b"%PDF-1.7\n%binary", content_type="application/pdf"))
    feed("image", ok(b"\x89PNG\r\n\x1a\n....", content_type="image/png"))
    feed("gone-404", status(404))
    feed("unavailable-503", status(503, Retry_After="30"))
    feed("redirect-loop", redirect("/feeds/redirect-loop"))
    feed("redirect-private", redirect("http://10.20.30.40/feed.xml"))
    feeds["dns"] = "http://feeds.newswire-hostile.invalid/rss.xml"

    # Real feeds under the types servers really send: accepted by what the body is, with a warning.
    for name in ("text-rss", "xml-dtd", "json-feed"):
        server.route(f"/pages/{name}", ok(article_page(f"Served as {name}", name)))
        pages[name] = server.url(f"/pages/{name}")
    feed("text-rss", ok(rss([rss_item(title="Under text/rss+xml", link=pages["text-rss"])]).encode(), "text/rss+xml"))
    feed("xml-dtd", ok(rss([rss_item(title="Under xml-dtd", link=pages["xml-dtd"])]).encode(), "application/xml-dtd"))
    json_feed = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "Hostile JSON",
        "items": [
            {
                "id": "j1",
                "url": pages["json-feed"],
                "title": "A JSON Feed item",
                "date_published": "2026-01-15T09:30:00Z",
            },
            {"id": "j2", "content_text": "An item with only an id and text: nothing to fetch."},
            {"content_html": "<p>No id, no link, no title.</p>"},
        ],
    }
    feed("json-feed", ok(json.dumps(json_feed).encode(), "application/feed+json"))

    # Latin-1 bytes under a UTF-8 declaration; and windows-1252 bytes with no declaration at all.
    server.route("/pages/charset-lied", ok(article_page("Café société", "charset-lied")))
    lied = rss([rss_item(title="Café société à Noël", link=server.url("/pages/charset-lied"))], encoding="utf-8")
    feed("charset-lied", ok(lied.encode("latin-1"), RSS_TYPE))
    server.route("/pages/charset-missing", ok(article_page("Déjà vu", "charset-missing")))
    missing = rss([rss_item(title="Déjà vu – “quoted”", link=server.url("/pages/charset-missing"))], encoding=None)
    feed("charset-missing", ok(missing.encode("cp1252"), "application/rss+xml"))

    # 50,000 entries: parsed, truncated to max_entries_per_feed, the rest reported. Entries lead to PDFs,
    # so the test measures the feed's cost, not 40 extractions.
    server.prefix("/big/", lambda rest: ok(b"%PDF-1.4", content_type="application/pdf"))
    big = rss(many_items(50_000, lambda i: server.url(f"/big/{i}.pdf")))
    feed("fifty-thousand", ok(big.encode(), RSS_TYPE))

    # Entries with something missing or odd.
    odd: dict[str, str] = {}
    for name in ("no-date", "no-title", "relative", "same-guid-1", "same-guid-2", "future", "epoch", "sql"):
        odd[name] = server.route(f"/odd/{name}", ok(article_page(f"Odd entry {name}", name)))
    pages.update({f"odd-{k}": v for k, v in odd.items()})
    items = [
        rss_item(title="Has no link at all", guid="urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66"),
        rss_item(description="Neither link, nor guid, nor title: only this description."),
        rss_item(title="No date", link=odd["no-date"]),
        rss_item(link=odd["no-title"], pub_date="Mon, 12 Jan 2026 08:00:00 GMT"),
        rss_item(title="Relative link", link="/odd/relative"),
        rss_item(title="Same GUID one", link=odd["same-guid-1"], guid="reused-guid"),
        rss_item(title="Same GUID two", link=odd["same-guid-2"], guid="reused-guid"),
        rss_item(title="Same link again", link=odd["same-guid-1"], guid="another-guid"),
        rss_item(title="From the future", link=odd["future"], pub_date="Fri, 01 Jan 3000 00:00:00 GMT"),
        rss_item(title="From 1970", link=odd["epoch"], pub_date="Thu, 01 Jan 1970 00:00:00 GMT"),
        rss_item(title="Robert'); DROP TABLE feed_entries;--", link=odd["sql"] + "?q=';--"),
    ]
    feed("odd-entries", ok(rss(items).encode(), RSS_TYPE))
    pages["odd-sql"] = odd["sql"] + "?q=';--"
    return feeds, pages


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileRun]:
    tmp = tmp_path_factory.mktemp("hostile")
    https, tls_port = _self_signed_https_server(tmp)
    with pytest.MonkeyPatch.context() as mp, HostileServer() as server, EmbeddedBroker() as broker:
        for key in [k for k in os.environ if k.startswith("NEWSWIRE_")]:
            mp.delenv(key)
        mp.chdir(tmp)
        # The real guard with a simulated internet: 127.0.0.1 is "public", every other private range is not.
        mp.setattr("ingest.stage.Fetcher", partial(Fetcher, guard=AddressGuard(is_public=loopback_is_public)))
        feeds, pages = build_world(server, tls_port)
        settings = load_settings(
            home=tmp / "home",
            warehouse_url=f"duckdb:///{tmp / 'warehouse.duckdb'}",
            host_interval=0.0,
            extract_workers=1,
            total_timeout=TOTAL_TIMEOUT,
            read_timeout=1.0,
            connect_timeout=2.0,
            max_page_bytes=1024 * 1024,
            max_feed_bytes=8 * 1024 * 1024,
            max_entries_per_feed=MAX_ENTRIES,
            fetch_concurrency=4,
        )
        specs = [
            FeedSpec(url=url, name=f"hostile {name}", ignore_robots=name == "pages") for name, url in feeds.items()
        ]
        summary = ingest_feeds(settings, broker.bootstrap, specs, run_id="hostile-1")
        yield HostileRun(summary, Warehouse(settings.resolved_warehouse_url), server, feeds, pages)
    https.shutdown()
    https.server_close()


# -- the run as a whole ------------------------------------------------------------------------------------


def test_the_run_completes_and_every_feed_has_a_run_record(hostile: HostileRun) -> None:
    runs = hostile.warehouse.query("SELECT feed_url, status, error FROM ingest_runs WHERE run_id = 'hostile-1'")
    assert {r["feed_url"] for r in runs} == set(hostile.feeds.values())
    failed = {r["feed_url"] for r in runs if r["status"] == "failed"}
    assert failed == set(hostile.summary.failures)
    assert all(r["error"] for r in runs if r["status"] == "failed")
    assert hostile.summary.totals()["new"] >= 8  # the good articles went through beside all of this


def test_every_entry_outcome_carries_a_reason(hostile: HostileRun) -> None:
    rows = hostile.warehouse.query("SELECT entry_url, outcome, reason FROM feed_entries")
    assert rows
    assert [r for r in rows if r["outcome"] != "new" and not r["reason"]] == []
    dangling = hostile.warehouse.scalar(
        "SELECT COUNT(*) FROM feed_entries e LEFT JOIN dead_letters d ON d.dead_letter_id = e.dead_letter_id "
        "WHERE e.outcome = 'dead_letter' AND d.dead_letter_id IS NULL"
    )
    assert dangling == 0


# -- feeds that cannot be used at all ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("feed", "stage", "reason", "retryable"),
    [
        ("invalid-xml", "feed_parse", "invalid_xml", False),
        ("html-as-feed", "feed_parse", "not_a_feed", False),
        ("empty-body", "feed_parse", "empty_feed", False),
        ("billion-laughs", "feed_parse", "entity_declaration", False),
        ("xxe", "feed_parse", "entity_declaration", False),
        ("gzip-bomb", "feed_fetch", "too_large", False),
        ("endless", "feed_fetch", "too_large", False),
        ("slow-drip", "feed_fetch", "timeout", True),
        ("pdf", "feed_fetch", "content_type", False),
        ("image", "feed_fetch", "content_type", False),
        ("gone-404", "feed_fetch", "http_status", False),
        ("unavailable-503", "feed_fetch", "http_status", True),
        ("redirect-loop", "feed_fetch", "redirect_loop", False),
        ("redirect-private", "feed_fetch", "blocked_address", False),
        ("dns", "feed_fetch", "dns", False),
    ],
)
def test_unusable_feed_fails_alone_with_a_dead_letter(
    hostile: HostileRun, feed: str, stage: str, reason: str, retryable: bool
) -> None:
    dead = hostile.feed_failure(feed)
    assert (dead["stage"], dead["reason"], bool(dead["retryable"])) == (stage, reason, retryable)
    state = hostile.warehouse.query("SELECT etag, last_error FROM feeds WHERE feed_url = ?", (hostile.feeds[feed],))
    assert state[0]["last_error"].startswith(reason)


def test_entity_payloads_are_refused_before_any_expansion(hostile: HostileRun) -> None:
    for feed in ("billion-laughs", "xxe"):
        dead = hostile.feed_failure(feed)
        assert "lol" not in dead["message"] and "root:" not in dead["message"]
    assert hostile.warehouse.scalar("SELECT COUNT(*) FROM feed_entries WHERE title LIKE '%lol%'") == 0


def test_slow_drip_feed_is_cut_by_the_total_time_limit(hostile: HostileRun) -> None:
    run = hostile.run("slow-drip")
    # Each byte arrives well within the 1 s read timeout: only the total budget can stop it.
    assert TOTAL_TIMEOUT <= run["duration"] < TOTAL_TIMEOUT + 2.0


# -- feeds that parse, with something wrong inside ---------------------------------------------------------


def test_empty_feed_is_a_successful_poll_with_nothing_in_it(hostile: HostileRun) -> None:
    run = hostile.run("empty-feed")
    assert (run["status"], run["entries_in_feed"], run["entries_seen"]) == ("ok", 0, 0)


def test_broken_but_recognisable_xml_is_used_and_the_breakage_recorded(hostile: HostileRun) -> None:
    run = hostile.run("broken-xml")
    assert run["status"] == "ok"
    assert any(w.startswith("bozo: ") and "not well-formed" in w for w in json.loads(run["warnings"]))


def test_feed_cut_off_mid_document_keeps_its_complete_entries(hostile: HostileRun) -> None:
    run = hostile.run("truncated-feed")
    assert run["status"] == "ok" and run["entries_seen"] >= 2
    assert json.loads(run["warnings"])


def test_fifty_thousand_entries_are_truncated_and_the_truncation_is_recorded(hostile: HostileRun) -> None:
    run = hostile.run("fifty-thousand")
    assert run["status"] == "ok"
    assert run["entries_in_feed"] == MAX_ENTRIES == run["entries_seen"] == run["skipped"]
    assert f"truncated to the first {MAX_ENTRIES} of 50000 entries" in json.loads(run["warnings"])
    reasons = hostile.warehouse.query(
        "SELECT DISTINCT reason FROM feed_entries WHERE feed_url = ?", (hostile.feeds["fifty-thousand"],)
    )
    assert reasons == [{"reason": "content_type:application/pdf"}]


def test_wrong_and_missing_charsets_still_give_correct_text(hostile: HostileRun) -> None:
    titles = {r["title"] for r in hostile.warehouse.query("SELECT title FROM feed_entries")}
    assert "Café société à Noël" in titles  # Latin-1 bytes declared as UTF-8
    assert "Déjà vu – “quoted”" in titles  # windows-1252, declared nowhere
    for feed in ("charset-lied", "charset-missing"):
        run = hostile.run(feed)
        assert (run["status"], run["new_articles"]) == ("ok", 1)


def test_entry_without_link_is_dead_lettered_and_one_without_anything_is_skipped(hostile: HostileRun) -> None:
    url = hostile.feeds["odd-entries"]
    no_link = hostile.warehouse.query(
        "SELECT outcome, reason FROM feed_entries WHERE feed_url = ? AND title = 'Has no link at all'", (url,)
    )
    assert no_link == [{"outcome": "dead_letter", "reason": "no_link"}]
    # Only a description: counted in the feed and in the run, recorded as skipped, keyed by its text.
    nothing = hostile.warehouse.query(
        "SELECT outcome, reason, entry_key FROM feed_entries WHERE feed_url = ? AND reason = 'no_identity'", (url,)
    )
    assert [(r["outcome"], r["entry_key"][:5]) for r in nothing] == [("skipped", "hash:")]
    run = hostile.run("odd-entries")
    assert run["entries_in_feed"] == run["entries_seen"] + 1  # the two same-link items are one entry
    assert not any("no link, guid or title" in w for w in json.loads(run["warnings"] or "[]"))


def test_feeds_under_odd_declared_types_are_parsed_and_the_type_recorded(hostile: HostileRun) -> None:
    for feed, declared in (("text-rss", "text/rss+xml"), ("xml-dtd", "application/xml-dtd")):
        run = hostile.run(feed)
        assert (run["status"], run["entries_in_feed"], run["new_articles"]) == ("ok", 1, 1)
        assert json.loads(run["warnings"]) == [
            f"declared Content-Type '{declared}' is not a feed type; parsed as rss20 by its content"
        ]
        assert hostile.entry(feed)["outcome"] == "new"


def test_json_feed_items_end_in_their_outcomes(hostile: HostileRun) -> None:
    run = hostile.run("json-feed")
    assert (run["status"], run["entries_in_feed"], run["entries_seen"], run["warnings"]) == ("ok", 3, 3, None)
    assert (run["new_articles"], run["dead_letters"], run["skipped"]) == (1, 1, 1)
    item = hostile.entry("json-feed")
    assert (item["outcome"], item["title"]) == ("new", "A JSON Feed item")
    assert item["published_at"] == dt.datetime(2026, 1, 15, 9, 30, tzinfo=dt.UTC)
    rows = hostile.warehouse.query(
        "SELECT guid, outcome, reason FROM feed_entries WHERE feed_url = ? AND entry_url IS NULL ORDER BY guid",
        (hostile.feeds["json-feed"],),
    )
    assert rows == [
        {"guid": "j2", "outcome": "dead_letter", "reason": "no_link"},
        {"guid": None, "outcome": "skipped", "reason": "no_identity"},
    ]


def test_entries_without_date_or_title_are_still_articles(hostile: HostileRun) -> None:
    no_date = hostile.entry("odd-no-date")
    assert (no_date["outcome"], no_date["published_at"]) == ("new", None)
    no_title = hostile.entry("odd-no-title")
    assert (no_title["outcome"], no_title["title"]) == ("new", None)


def test_relative_link_is_resolved_against_the_feed(hostile: HostileRun) -> None:
    assert hostile.entry("odd-relative")["outcome"] == "new"


def test_duplicate_guids_and_repeated_links(hostile: HostileRun) -> None:
    # A reused GUID on two different links: two articles (the link is the identity, GUIDs are unreliable).
    assert hostile.entry("odd-same-guid-1")["outcome"] == "new"
    assert hostile.entry("odd-same-guid-2")["outcome"] == "new"
    # The same link twice in one document is one entry, not a duplicate of itself.
    assert hostile.entry("odd-same-guid-1")["title"] == "Same GUID one"


def test_future_and_epoch_dates_are_not_trusted(hostile: HostileRun) -> None:
    future, epoch = hostile.entry("odd-future"), hostile.entry("odd-epoch")
    assert (future["outcome"], future["published_at"]) == ("new", None)
    assert (epoch["outcome"], epoch["published_at"]) == ("new", None)
    warnings = json.loads(hostile.run("odd-entries")["warnings"])
    assert any("in the future" in w for w in warnings)
    assert any("1970" in w for w in warnings)


def test_feed_text_that_looks_like_sql_is_stored_verbatim(hostile: HostileRun) -> None:
    row = hostile.entry("odd-sql")
    assert row["title"] == "Robert'); DROP TABLE feed_entries;--"
    assert hostile.warehouse.scalar("SELECT COUNT(*) FROM feed_entries") > 0


# -- pages -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("page", "outcome", "reason"),
    [
        ("good", "new", None),
        ("pdf", "skipped", "content_type:application/pdf"),
        ("image", "skipped", "content_type:image/png"),
        ("huge", "skipped", "too_large"),
        ("endless", "skipped", "too_large"),
        ("gzip-bomb", "skipped", "too_large"),
        ("slow-drip", "dead_letter", "timeout"),
        ("no-text", "dead_letter", "no_body"),
        ("redirect-loop", "dead_letter", "redirect_loop"),
        ("redirect-metadata", "dead_letter", "blocked_address"),
        ("redirect-ipv6-loopback", "dead_letter", "blocked_address"),
        ("gone-404", "dead_letter", "http_status"),
        ("error-500", "dead_letter", "http_status"),
        ("throttled-429", "dead_letter", "http_status"),
        ("unavailable-503", "dead_letter", "http_status"),
        ("truncated", "dead_letter", "protocol"),
        ("tls", "dead_letter", "tls"),
        ("dns", "dead_letter", "dns"),
        ("refused", "dead_letter", "connect"),
    ],
)
def test_each_hostile_page_ends_in_one_recorded_outcome(
    hostile: HostileRun, page: str, outcome: str, reason: str | None
) -> None:
    row = hostile.entry(page)
    assert (row["outcome"], row["reason"]) == (outcome, reason)


def test_unreachable_robots_txt_defers_the_page_with_the_cause_recorded(hostile: HostileRun) -> None:
    row = hostile.entry("robots-unreachable")
    assert (row["outcome"], row["reason"], bool(row["retryable"])) == ("dead_letter", "robots_unavailable", True)
    assert "[tls]" in row["message"] or "certificate" in row["message"].lower()


@pytest.mark.parametrize(
    ("page", "retryable"),
    [("slow-drip", True), ("error-500", True), ("throttled-429", True), ("gone-404", False), ("no-text", False)],
)
def test_dead_letters_say_whether_a_retry_can_help(hostile: HostileRun, page: str, retryable: bool) -> None:
    assert bool(hostile.entry(page)["retryable"]) is retryable


def test_retry_after_is_recorded_with_the_dead_letter(hostile: HostileRun) -> None:
    assert "retry after 120 s" in hostile.entry("throttled-429")["message"]
    assert "HTTP status 503" in hostile.entry("unavailable-503")["message"]


def test_redirect_to_a_private_address_never_reaches_it(hostile: HostileRun) -> None:
    # The guard refuses the hop before connecting: the IPv6-loopback target page was never requested
    # through [::1] (the only /pages/good request is the feed's own entry).
    assert hostile.server.hits("/pages/good") == 1
    assert "169.254.169.254" in hostile.entry("redirect-metadata")["message"]


def test_crawl_delay_spaces_a_sites_pages_up_to_the_cap(broker: str, make_settings, tmp_path: Path) -> None:
    """A robots.txt asking for 30 s between requests gets them spaced by the cap (NEWSWIRE_MAX_CRAWL_DELAY)."""
    cap = 0.4
    with HostileServer() as site:  # a host of its own: the delay applies per host
        stamps: list[float] = []

        def page(i: int) -> Any:
            serve = ok(article_page(f"Polite story {i}", f"polite-{i}"))

            def handler(h: BaseHTTPRequestHandler) -> None:
                stamps.append(time.monotonic())
                serve(h)

            return handler

        site.route("/robots.txt", ok(b"User-agent: *\nCrawl-delay: 30\n", "text/plain"))
        for i in range(3):
            site.route(f"/polite/{i}", page(i))
        items = [rss_item(title=f"Polite {i}", link=site.url(f"/polite/{i}")) for i in range(3)]
        feed = site.route("/feed.xml", ok(rss(items).encode(), RSS_TYPE))
        settings = make_settings(warehouse_url=f"duckdb:///{tmp_path / 'w.duckdb'}", max_crawl_delay=cap)
        summary = ingest_feeds(settings, broker, [FeedSpec(url=feed, name="polite")], run_id="polite-1")
    assert summary.totals()["new"] == 3 and site.hits("/robots.txt") == 1
    gaps = [b - a for a, b in zip(sorted(stamps), sorted(stamps)[1:], strict=False)]
    assert len(gaps) == 2 and min(gaps) >= cap - 0.05 and max(gaps) < cap + 1.0
