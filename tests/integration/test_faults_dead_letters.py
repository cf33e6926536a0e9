"""``newswire dead-letters list|retry``: failures are shown, re-driven, and leave the table once they succeed."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cli_env import cli_env
from hostile_server import HostileServer, article_page, empty_article_page, ok, rss, rss_item, status
from kafka import KafkaProducer

from ingest.feedlist import FeedSpec
from ingest.stage import ingest_feeds
from newswire import contracts
from newswire.deadletters import dead_letter_id, dead_letter_message, upsert_dead_letter
from newswire.warehouse import Warehouse, utcnow
from pipeline.cli import main
from transform.stage import run_transform

pytestmark = pytest.mark.integration


class FixableSite:
    """A site whose pages and feed are broken until ``fix()``; one page stays broken for good."""

    def __init__(self, server: HostileServer) -> None:
        self.fixed = False
        self.server = server
        broken = {
            "unavailable": status(503, Retry_After="60"),
            "missing": status(404),
            "no-text": ok(empty_article_page()),
        }
        self.pages = {name: server.url(f"/p/{name}") for name in [*broken, "always-gone"]}
        for name, route in broken.items():
            good = ok(article_page(f"Fixed page {name}", name))
            server.route(f"/p/{name}", self._switch(route, good))
        server.route("/p/always-gone", status(410))
        items = [rss_item(title=name, link=url) for name, url in self.pages.items()]
        self.feed = server.route("/feed.xml", ok(rss(items).encode(), "application/rss+xml"))
        late = [rss_item(title="Behind a broken feed", link=server.url("/p/late"))]
        server.route("/p/late", ok(article_page("Behind a broken feed", "late")))
        self.broken_feed = server.route(
            "/broken-feed.xml", self._switch(status(500), ok(rss(late).encode(), "application/rss+xml"))
        )

    def _switch(self, before: Any, after: Any) -> Any:
        return lambda handler: (after if self.fixed else before)(handler)

    def fix(self) -> None:
        self.fixed = True


def dead_letters(warehouse: Warehouse) -> dict[str, dict[str, Any]]:
    rows = warehouse.query("SELECT dead_letter_id, stage, reason, url, attempts FROM dead_letters")
    return {r["url"]: r for r in rows}


def test_retry_re_drives_entries_and_feeds_and_fixed_ones_leave_the_table(
    broker: str, make_settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with HostileServer() as server:
        site = FixableSite(server)
        settings = make_settings(warehouse_url=f"duckdb:///{tmp_path / 'w.duckdb'}", respect_robots=False)
        feeds = [FeedSpec(url=site.feed, name="Fixable"), FeedSpec(url=site.broken_feed, name="Broken feed")]
        summary = ingest_feeds(settings, broker, feeds, run_id="dl-1")
        assert summary.totals()["dead_letters"] == 4 and site.broken_feed in summary.failures
        warehouse = Warehouse(settings.resolved_warehouse_url)
        before = dead_letters(warehouse)
        assert {before[u]["reason"] for u in site.pages.values()} == {"http_status", "no_body"}
        assert before[site.broken_feed]["stage"] == "feed_fetch"

        cli_env(monkeypatch, tmp_path, broker, settings.resolved_warehouse_url)
        assert main(["dead-letters", "list"]) == 0
        listed = capsys.readouterr()
        assert len(listed.out.splitlines()) == 5 and "5 dead letter(s)" in listed.err

        site.fix()
        assert main(["dead-letters", "retry"]) == 0
        out = capsys.readouterr().out
        assert "dead letters retried=5 resolved=4 still_failing=1" in out

    after = dead_letters(warehouse)
    assert list(after) == [site.pages["always-gone"]]
    assert after[site.pages["always-gone"]]["attempts"] == 2  # tried again, failed again, counted
    outcomes = {r["entry_url"]: r["outcome"] for r in warehouse.query("SELECT entry_url, outcome FROM feed_entries")}
    assert outcomes == {
        site.pages["unavailable"]: "new",
        site.pages["missing"]: "new",
        site.pages["no-text"]: "new",
        site.pages["always-gone"]: "dead_letter",
        server.url("/p/late"): "new",  # the feed polled again, its entry processed
    }
    retry_run = warehouse.query("SELECT SUM(entries_seen) AS seen FROM ingest_runs WHERE run_id LIKE 'retry__%'")
    assert retry_run[0]["seen"] == 5  # the retry is a recorded run: the accounting invariant covers it


def _article(text: str) -> dict[str, Any]:
    url = "http://127.0.0.1:9/redriven"
    return {
        "schema_version": 1,
        "article_id": hashlib.sha256(url.encode()).hexdigest()[:32],
        "url": url,
        "canonical_url": url,
        "feed_url": "http://127.0.0.1:9/feed.xml",
        "source": "Redriven",
        "title": "A message an older consumer refused",
        "text": text,
        "content_hash": hashlib.sha256(text.encode()).hexdigest()[:32],
        "fetched_at": "2026-01-15T10:00:00Z",
        "published_at": None,
        "language": "en",
    }


def test_retry_re_validates_undecodable_messages(
    broker: str, make_settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(warehouse_url=f"duckdb:///{tmp_path / 'w.duckdb'}")
    producer = KafkaProducer(bootstrap_servers=broker)
    producer.send(contracts.ARTICLES.name, key=b"junk", value=b"{truncated json")
    producer.flush(10)
    producer.close()
    assert run_transform(settings, broker).stats.dead_letters == 1

    # A valid message that an earlier consumer version dead-lettered (say, before a schema fix).
    valid = _article("Body text of a message that deserves a second chance. " * 8)
    raw = contracts.encode(contracts.ARTICLES, valid)
    warehouse = Warehouse(settings.resolved_warehouse_url)
    with warehouse.transaction() as cur:
        upsert_dead_letter(
            cur,
            dead_letter_message(
                dead_letter_id=dead_letter_id("newswire.articles", "0", "9999"),
                stage="decode",
                reason="schema_violation",
                message="refused by consumer 0.0.9",
                retryable=False,
                url=None,
                feed_url=None,
                payload={
                    "topic": "newswire.articles",
                    "partition": 0,
                    "offset": 9999,
                    "key": valid["article_id"],
                    "value_base64": base64.b64encode(raw).decode(),
                },
                created_at=utcnow(),
            ),
            utcnow(),
        )

    cli_env(monkeypatch, tmp_path, broker, settings.resolved_warehouse_url)
    assert main(["dead-letters", "retry", "--stage", "decode"]) == 0
    assert "dead letters retried=2 resolved=1 still_failing=1" in capsys.readouterr().out
    remaining = warehouse.query("SELECT reason, attempts, payload FROM dead_letters")
    assert len(remaining) == 1 and remaining[0]["attempts"] == 2 and remaining[0]["reason"] == "invalid_json"
    assert base64.b64decode(json.loads(remaining[0]["payload"])["value_base64"]) == b"{truncated json"

    summary = run_transform(settings, broker)  # the re-published message is consumed like any other
    assert summary.stats.new_articles == 1
    assert warehouse.scalar("SELECT title FROM articles") == valid["title"]
