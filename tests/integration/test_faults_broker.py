"""Broker faults during ingest: nothing is marked stored that the broker did not acknowledge.

Two cases: the broker is unreachable when the run starts (the run fails at once with a clear message and
touches no feed), and the broker stops answering in the middle of a feed (a real process frozen with
SIGSTOP after the first chunk was acknowledged: that chunk is recorded, the rest is not, the feed's
conditional-GET validators are not saved, and the next run finishes the job).
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from hostile_server import HostileServer, article_page, ok, rss, rss_item

from ingest.feedlist import FeedSpec
from ingest.poll import CHUNK
from ingest.stage import ingest_feeds
from newswire import contracts, messaging
from newswire.broker import EmbeddedBroker
from newswire.errors import BrokerUnavailable
from newswire.messaging import make_consumer, poll_batch
from newswire.warehouse import Warehouse
from pipeline.cli import main

pytestmark = pytest.mark.integration

ENTRIES = 60
FREEZE_AT = CHUNK + 5  # a page of the second chunk


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def article_ids_on_topic(bootstrap: str, settings: Any) -> set[str]:
    consumer = make_consumer(bootstrap, settings, group_id=None, topics=[contracts.ARTICLES.name])
    try:
        records = poll_batch(consumer, max_messages=10_000, idle_timeout=1.0, deadline=20)
    finally:
        consumer.close()
    return {contracts.decode(contracts.ARTICLES, r.value)["article_id"] for r in records}


def serve_feed(server: HostileServer, on_page: Any = None) -> str:
    def page(rest: str) -> Any:
        number = int(rest.removesuffix(".html"))
        body = article_page(f"Chunked story {number}", f"broker-{number}")

        def route(handler: Any) -> None:
            if on_page is not None:
                on_page(number)
            ok(body)(handler)

        return route

    server.prefix("/p/", page)
    items = [rss_item(title=f"Story {i}", link=server.url(f"/p/{i}.html")) for i in range(ENTRIES)]
    return server.route("/feed.xml", ok(rss(items).encode(), "application/rss+xml", ETag='"v1"'))


def test_broker_down_at_start_fails_the_run_clearly_and_polls_nothing(
    make_settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with HostileServer() as server:
        url = serve_feed(server)
        settings = make_settings(warehouse_url=f"duckdb:///{tmp_path / 'w.duckdb'}")
        down = f"127.0.0.1:{_closed_port()}"
        with pytest.raises(BrokerUnavailable, match="Kafka is not reachable"):
            ingest_feeds(settings, down, [FeedSpec(url=url, name="feed")], run_id="down-1")
        assert server.requests == []  # no feed was fetched, so no entry can be half-done

        feeds_file = tmp_path / "feeds.toml"
        feeds_file.write_text(f'[[feeds]]\nurl = "{url}"\nname = "feed"\n')
        monkeypatch.setenv("NEWSWIRE_ALLOW_PRIVATE_NETWORKS", "true")
        monkeypatch.setenv("NEWSWIRE_WAREHOUSE_URL", settings.resolved_warehouse_url)
        assert main(["run", "--feeds", str(feeds_file), "--bootstrap", down]) == 1
        err = capsys.readouterr().err
        assert err.startswith("newswire run: error: Kafka is not reachable") and "Traceback" not in err
    warehouse = Warehouse(settings.resolved_warehouse_url)
    for table in ("feed_entries", "feeds", "raw_articles", "article_urls"):
        assert warehouse.scalar(f"SELECT COUNT(*) FROM {table}") == 0, table


def test_broker_frozen_mid_feed_records_only_acknowledged_articles(
    make_settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with EmbeddedBroker() as broker, HostileServer() as server:
        frozen = threading.Event()

        def freeze_broker(number: int) -> None:
            if number == FREEZE_AT and not frozen.is_set():
                frozen.set()
                monkeypatch.setattr(messaging, "ACK_TIMEOUT", 3.0)  # give up on acks after 3 s, not 60
                os.kill(broker.pid, signal.SIGSTOP)
                threading.Timer(5.0, os.kill, (broker.pid, signal.SIGCONT)).start()

        url = serve_feed(server, freeze_broker)
        settings = make_settings(warehouse_url=f"duckdb:///{tmp_path / 'w.duckdb'}")
        feed = FeedSpec(url=url, name="chunked", ignore_robots=True)
        with pytest.raises(BrokerUnavailable, match="did not acknowledge"):
            ingest_feeds(settings, broker.bootstrap, [feed], run_id="frozen-1")
        assert frozen.is_set()

        warehouse = Warehouse(settings.resolved_warehouse_url)
        recorded = warehouse.query("SELECT outcome, entry_url, article_id FROM feed_entries")
        assert len(recorded) == CHUNK and {r["outcome"] for r in recorded} == {"new"}
        assert all(int(r["entry_url"].rsplit("/", 1)[1].removesuffix(".html")) < CHUNK for r in recorded)
        assert warehouse.scalar("SELECT COUNT(*) FROM raw_articles") == CHUNK
        assert warehouse.query("SELECT etag FROM feeds") == []  # validators not saved: the feed is re-read
        run = warehouse.query("SELECT status, error, entries_seen, new_articles FROM ingest_runs")[0]
        assert run["status"] == "failed" and "BrokerUnavailable" in run["error"]
        assert run["entries_seen"] == run["new_articles"] == CHUNK
        # Everything recorded as stored really is on the topic.
        assert {r["article_id"] for r in recorded} <= article_ids_on_topic(broker.bootstrap, settings)

        monkeypatch.setattr(messaging, "ACK_TIMEOUT", 60.0)
        summary = ingest_feeds(settings, broker.bootstrap, [feed], run_id="frozen-2")
        assert summary.totals()["new"] == ENTRIES - CHUNK
        ledger = warehouse.query("SELECT article_id FROM feed_entries WHERE outcome = 'new'")
        assert len(ledger) == ENTRIES
        assert {r["article_id"] for r in ledger} <= article_ids_on_topic(broker.bootstrap, settings)
        assert warehouse.query("SELECT etag FROM feeds") == [{"etag": '"v1"'}]
