"""Messages over the producer's size limit (``NEWSWIRE_MAX_MESSAGE_BYTES``) fail alone, with an accounted outcome.

Each test runs on a real embedded broker with a small limit: an article over it becomes a ``message_too_large``
dead letter while the rest of its chunk is published and stored; an event with too many members to list goes
out with a cut ``articles`` list; a decode dead letter too large for the topic goes there without its payload.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hostile_server import HostileServer, article_page, ok, rss, rss_item
from kafka import KafkaProducer
from kafka.errors import MessageSizeTooLargeError
from topics import read_topic

from ingest.feedlist import FeedSpec
from ingest.stage import ingest_feeds
from newswire import contracts
from newswire.errors import MessageTooLarge
from newswire.messaging import Publisher, ensure_topics, make_producer
from newswire.warehouse import Warehouse
from pipeline.cli import main
from transform.eventrecords import encode_event
from transform.stage import run_transform

pytestmark = pytest.mark.integration

LIMIT = 64 * 1024


def _long_page(title: str, paragraphs: int) -> bytes:
    """An article page whose text alone is far over ``LIMIT`` (distinct paragraphs, so nothing folds them)."""
    body = "".join(
        f"<p>Paragraph {i} of the long report: the council met again on day {i} and heard witness {i * 7} "
        f"describe the flooding of district {i % 40} in detail, street by street, for the record.</p>"
        for i in range(paragraphs)
    )
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title></head><body>"
        f"<article><h1>{title}</h1><time datetime='2026-01-15T09:30:00Z'>15 Jan</time>{body}</article>"
        "</body></html>"
    ).encode()


def test_an_article_over_the_limit_is_dead_lettered_and_the_rest_of_its_chunk_is_stored(
    broker: str, make_settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with HostileServer() as server:
        pages = {f"/p/{i}": ok(article_page(f"Ordinary report {i}", f"seed-{i}")) for i in range(3)}
        pages["/p/long"] = ok(_long_page("The longest report", 800))
        for path, route in pages.items():
            server.route(path, route)
        items = [rss_item(title=path, link=server.url(path)) for path in pages]
        feed = server.route("/feed.xml", ok(rss(items).encode(), "application/rss+xml"))
        warehouse_url = f"duckdb:///{tmp_path / 'w.duckdb'}"
        settings = make_settings(warehouse_url=warehouse_url, respect_robots=False, max_message_bytes=LIMIT)

        summary = ingest_feeds(settings, broker, [FeedSpec(url=feed, name="Long reads")], run_id="oversize-1")

        assert summary.failures == {}
        totals = summary.totals()
        assert (totals["entries_seen"], totals["new"], totals["dead_letters"]) == (4, 3, 1)
        (report,) = summary.reports
        assert report.reasons == {"dead_letter:message_too_large": 1}
        warehouse = Warehouse(settings.resolved_warehouse_url)
        (dl,) = warehouse.query("SELECT stage, reason, retryable, url, message, payload FROM dead_letters")
        assert (dl["stage"], dl["reason"], dl["retryable"]) == ("publish", "message_too_large", False)
        assert dl["url"] == server.url("/p/long") and f"{LIMIT:,} bytes" in dl["message"]
        payload = dl["payload"] if isinstance(dl["payload"], dict) else json.loads(dl["payload"])
        assert payload["entry"]["link"] == server.url("/p/long")  # what a retry needs
        outcomes = {
            r["entry_url"]: r["outcome"] for r in warehouse.query("SELECT entry_url, outcome FROM feed_entries")
        }
        assert outcomes[server.url("/p/long")] == "dead_letter"

        # The topic holds the three others, and the dead letter's copy; the transform stores all three.
        published = read_topic(broker, settings, contracts.ARTICLES)
        assert sorted(m["title"] for m in published) == [f"Ordinary report {i}" for i in range(3)]
        (letter,) = read_topic(broker, settings, contracts.DEAD_LETTERS)
        assert letter["reason"] == "message_too_large" and letter["stage"] == "publish"
        assert run_transform(settings, broker).stats.new_articles == 3
        assert warehouse.scalar("SELECT COUNT(*) FROM articles") == 3

        # With the limit raised (producer and broker alike), an operator's retry stores it and clears the record.
        for key, value in {
            "HOME": str(tmp_path / "home"),
            "ALLOW_PRIVATE_NETWORKS": "true",
            "HOST_INTERVAL": "0",
            "EXTRACT_WORKERS": "1",
            "RESPECT_ROBOTS": "false",
            "POLL_TIMEOUT": "1",
            "WAREHOUSE_URL": warehouse_url,
            "KAFKA_BOOTSTRAP": broker,
            "MAX_MESSAGE_BYTES": str(1024 * 1024),
        }.items():
            monkeypatch.setenv(f"NEWSWIRE_{key}", value)
        assert main(["dead-letters", "retry", "--stage", "publish"]) == 0
    assert warehouse.scalar("SELECT COUNT(*) FROM dead_letters") == 0
    assert run_transform(make_settings(warehouse_url=warehouse_url), broker).stats.new_articles == 1
    assert warehouse.scalar("SELECT COUNT(*) FROM articles") == 4


def _publisher(broker: str, settings: Any) -> Publisher:
    ensure_topics(broker, settings)
    return Publisher(make_producer(broker, settings, client_id="test-oversize"))


def test_the_publishers_size_check_is_the_producers_own_limit(broker: str, make_settings: Any) -> None:
    """What ``encode`` lets through the producer sends; one byte more, ``encode`` refuses, as the producer would."""
    settings = make_settings(max_message_bytes=4096)
    publisher = _publisher(broker, settings)
    try:
        base = {
            "schema_version": 1,
            "dead_letter_id": "dl_size",
            "stage": "publish",
            "reason": "message_too_large",
            "message": "",
            "attempts": 1,
            "created_at": "2026-01-15T10:00:00Z",
        }
        empty = len(publisher.encode(contracts.DEAD_LETTERS, "dl_size", base))
        overhead = 4096 - empty  # the record's bytes beyond the value at the limit, found by search below
        fits = None
        for extra in range(overhead, 0, -1):
            try:
                value = publisher.encode(contracts.DEAD_LETTERS, "dl_size", {**base, "payload": "x" * extra})
            except MessageTooLarge as exc:
                assert exc.reason == "message_too_large" and exc.limit == 4096 and exc.size > 4096
                continue
            fits = extra
            break
        assert fits is not None and fits < overhead
        publisher.send_encoded(contracts.DEAD_LETTERS, "dl_size", value)
        assert publisher.confirm() == 1  # the largest accepted message really goes through
        too_big = json.dumps({**base, "payload": "x" * (fits + 1)}, separators=(",", ":")).encode()
        with pytest.raises(MessageSizeTooLargeError):  # and one byte more is what the producer itself refuses
            publisher.producer.send(contracts.DEAD_LETTERS.name, key=b"dl_size", value=too_big).get(timeout=10)
    finally:
        publisher.close()


def _event(articles: int) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "event_id": "ev_long_story",
        "version": 7,
        "title": "A story that runs for weeks",
        "summary": "Reports keep coming.",
        "first_seen_at": "2026-01-01T10:00:00Z",
        "last_seen_at": "2026-01-20T10:00:00Z",
        "earliest_published_at": None,
        "article_count": articles,
        "source_count": 3,
        "sources": ["A", "B", "C"],
        "languages": ["en"],
        "keywords": ["flood"],
        "entities": {"places": [], "people": [], "organisations": []},
        "articles": [
            {
                "article_id": f"{i:032x}",
                "url": f"https://news.example.org/2026/01/flood-report-{i}",
                "source": "ABC"[i % 3],
                "title": f"Flood report number {i}, with its long headline",
                "language": "en",
                "published_at": "2026-01-10T10:00:00Z",
            }
            for i in range(articles)
        ],
        "merged_into": None,
        "updated_at": "2026-01-20T10:00:00Z",
    }


def test_an_event_with_too_many_members_goes_out_with_as_many_as_fit(broker: str, make_settings: Any) -> None:
    settings = make_settings(max_message_bytes=16 * 1024)
    publisher = _publisher(broker, settings)
    try:
        small = _event(3)
        assert json.loads(encode_event(publisher, small)) == small  # within the limit: unchanged

        large = _event(400)
        value = encode_event(publisher, large)
        publisher.send_encoded(contracts.EVENTS, large["event_id"], value)
        assert publisher.confirm() == 1
        (sent,) = read_topic(broker, settings, contracts.EVENTS)
        kept = len(sent["articles"])
        assert 0 < kept < 400 and sent["articles_truncated"] is True
        assert sent["articles"] == large["articles"][:kept]  # the first members, in order
        assert sent["article_count"] == 400  # the count is still the whole event's
        # As many as fit: one more would not.
        with pytest.raises(MessageTooLarge):
            publisher.encode(
                contracts.EVENTS,
                large["event_id"],
                {**large, "articles": large["articles"][: kept + 1], "articles_truncated": True},
            )
    finally:
        publisher.close()


def test_a_decode_dead_letter_too_large_for_the_topic_goes_there_without_its_payload(
    broker: str, make_settings: Any, tmp_path: Path
) -> None:
    """The refused message's bytes (base64: a third larger) stay in the table; the topic copy says their size."""
    settings = make_settings(warehouse_url=f"duckdb:///{tmp_path / 'w.duckdb'}", max_message_bytes=LIMIT)
    raw = b'{"schema_version": 1, "text": "' + b"y" * (LIMIT - 1000) + b'"'  # under the limit, not JSON
    producer = KafkaProducer(bootstrap_servers=broker)
    producer.send(contracts.ARTICLES.name, key=b"junk", value=raw)
    producer.flush(10)
    producer.close()

    assert run_transform(settings, broker).stats.dead_letters == 1

    (row,) = Warehouse(settings.resolved_warehouse_url).query("SELECT reason, payload FROM dead_letters")
    payload = row["payload"] if isinstance(row["payload"], dict) else json.loads(row["payload"])
    assert row["reason"] == "invalid_json" and base64.b64decode(payload["value_base64"]) == raw
    (letter,) = read_topic(broker, settings, contracts.DEAD_LETTERS)
    assert letter["reason"] == "invalid_json"
    assert letter["payload"]["omitted"] == "message_too_large" and letter["payload"]["record_bytes"] > LIMIT
