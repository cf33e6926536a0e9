"""The raw record store: every published article's page and message kept in the warehouse, replayable.

The embedded broker keeps topics in memory. These tests lose the broker outright (stop it, start an empty
one) and rebuild the same articles from the warehouse alone with ``newswire replay``.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from hostile_server import HostileServer, article_page, ok, rss, rss_item, status

from ingest.feedlist import FeedSpec
from ingest.rawstore import raw_page
from ingest.stage import ingest_feeds
from newswire import contracts
from newswire.broker import EmbeddedBroker
from newswire.messaging import make_consumer, poll_batch
from newswire.warehouse import Warehouse
from pipeline.cli import main
from transform.stage import run_transform

pytestmark = pytest.mark.integration

ARTICLES = 6


def topic_messages(bootstrap: str, settings: Any) -> dict[str, dict[str, Any]]:
    consumer = make_consumer(bootstrap, settings, group_id=None, topics=[contracts.ARTICLES.name])
    try:
        records = poll_batch(consumer, max_messages=10_000, idle_timeout=1.0, deadline=20)
    finally:
        consumer.close()
    messages = [contracts.decode(contracts.ARTICLES, r.value) for r in records]
    return {m["article_id"]: m for m in messages}


def execute(warehouse: Warehouse, sql: str) -> None:
    with warehouse.transaction() as cur:
        cur.execute(sql)


def stored_articles(warehouse: Warehouse) -> list[dict[str, Any]]:
    return warehouse.query("SELECT article_id, canonical_url, title, text, content_hash FROM articles ORDER BY 1")


@pytest.fixture
def news_site() -> Any:
    with HostileServer() as server:
        pages = {i: article_page(f"Stored story {i}", f"raw-{i}") for i in range(ARTICLES)}
        for i, body in pages.items():
            server.route(f"/story/{i}", ok(body))
        server.route("/story/gone", status(410))
        items = [rss_item(title=f"Story {i}", link=server.url(f"/story/{i}")) for i in pages]
        items.append(rss_item(title="Gone", link=server.url("/story/gone")))
        feed = server.route("/feed.xml", ok(rss(items).encode(), "application/rss+xml"))
        yield server, FeedSpec(url=feed, name="Raw Times", ignore_robots=True), pages


def test_every_published_article_is_kept_with_its_page_and_message(
    news_site: Any, broker: str, make_settings, tmp_path: Path
) -> None:
    server, feed, pages = news_site
    settings = make_settings(warehouse_url=f"duckdb:///{tmp_path / 'w.duckdb'}")
    summary = ingest_feeds(settings, broker, [feed], run_id="raw-1")
    assert summary.totals()["new"] == ARTICLES and summary.totals()["dead_letters"] == 1

    warehouse = Warehouse(settings.resolved_warehouse_url)
    rows = warehouse.query("SELECT * FROM raw_articles")
    ledger = {r["article_id"] for r in warehouse.query("SELECT article_id FROM feed_entries WHERE outcome = 'new'")}
    assert {r["article_id"] for r in rows} == ledger  # exactly the articles the ledger says were published
    on_topic = topic_messages(broker, settings)
    served = {server.url(f"/story/{i}"): body for i, body in pages.items()}
    for row in rows:
        assert json.loads(row["message"]) == on_topic[row["article_id"]]  # the extracted fields, as published
        assert row["html_encoding"] == "gzip" and len(row["html"]) < row["html_bytes"]
        assert gzip.decompress(bytes(row["html"])) == served[row["url"]]
        assert raw_page(warehouse, row["article_id"]) == served[row["url"]]
        assert (row["http_status"], row["feed_url"]) == (200, feed.url)


def test_replay_rebuilds_the_articles_after_the_broker_is_lost(
    news_site: Any, make_settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, feed, _ = news_site
    ledger_url = f"duckdb:///{tmp_path / 'ledger.duckdb'}"
    settings = make_settings(warehouse_url=ledger_url)
    with EmbeddedBroker() as lost:
        ingest_feeds(settings, lost.bootstrap, [feed], run_id="raw-1")
        run_transform(settings, lost.bootstrap)
    original = stored_articles(Warehouse(ledger_url))
    assert len(original) == ARTICLES
    # Articles fetched before --since stay out of the replay.
    execute(
        Warehouse(ledger_url),
        "UPDATE raw_articles SET fetched_at = TIMESTAMPTZ '2020-01-01 00:00:00+00' "
        "WHERE article_id = (SELECT MIN(article_id) FROM raw_articles)",
    )

    with EmbeddedBroker() as empty:  # the broker's history is gone; only the warehouse remains
        assert main(["replay", "--since", "2021-01-01", "--warehouse", ledger_url, "--bootstrap", empty.bootstrap]) == 0
        assert "replay: published=5 invalid=0" in capsys.readouterr().out
        assert main(["replay", "--since", "2019-12-31", "--warehouse", ledger_url, "--bootstrap", empty.bootstrap]) == 0
        assert "replay: published=6 invalid=0" in capsys.readouterr().out
        rebuilt_url = f"duckdb:///{tmp_path / 'rebuilt.duckdb'}"
        summary = run_transform(make_settings(warehouse_url=rebuilt_url), empty.bootstrap)
    assert summary.stats.new_articles == ARTICLES and summary.stats.replays == ARTICLES - 1  # 5 sent twice
    assert stored_articles(Warehouse(rebuilt_url)) == original


def test_records_older_than_the_retention_are_purged_by_the_next_run(
    news_site: Any, broker: str, make_settings, tmp_path: Path
) -> None:
    _, feed, _ = news_site
    settings = make_settings(warehouse_url=f"duckdb:///{tmp_path / 'w.duckdb'}", raw_retention_days=30)
    ingest_feeds(settings, broker, [feed], run_id="raw-1")
    warehouse = Warehouse(settings.resolved_warehouse_url)
    aged = "WHERE article_id IN (SELECT article_id FROM raw_articles ORDER BY article_id LIMIT 3)"
    execute(warehouse, f"UPDATE raw_articles SET fetched_at = fetched_at - INTERVAL '31 days' {aged}")
    # Not transformed yet: expired or not, a record is the only copy reconcile could re-publish from.
    ingest_feeds(settings, broker, [feed], run_id="raw-2")
    assert warehouse.scalar("SELECT COUNT(*) FROM raw_articles") == ARTICLES
    run_transform(settings, broker)
    execute(
        warehouse,
        "DELETE FROM articles WHERE article_id = (SELECT MIN(article_id) FROM raw_articles WHERE fetched_at < "
        "CURRENT_TIMESTAMP - INTERVAL '30 days')",
    )  # one expired article still missing from the warehouse: its record stays
    ingest_feeds(settings, broker, [feed], run_id="raw-3")
    assert warehouse.scalar("SELECT COUNT(*) FROM raw_articles") == ARTICLES - 2
    run_transform(settings.model_copy(update={"reconcile_grace": 0.0}), broker)  # heals the deleted article
    forever = settings.model_copy(update={"raw_retention_days": 0})
    execute(warehouse, "UPDATE raw_articles SET fetched_at = fetched_at - INTERVAL '3650 days'")
    ingest_feeds(forever, broker, [feed], run_id="raw-4")
    assert warehouse.scalar("SELECT COUNT(*) FROM raw_articles") == ARTICLES - 2
