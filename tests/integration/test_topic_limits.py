"""Topics that already exist with a ``max.message.bytes`` below ``NEWSWIRE_MAX_MESSAGE_BYTES``, on a real broker.

The embedded broker reports the configs a topic was created with (DescribeConfigs) but enforces none of them,
so what these tests see is Newswire's own doing: the limit read at start-up makes an article over the topic's
limit a dead letter before it is sent, and cuts an event to fit, while the rest publish. On Apache Kafka the
same record, sent, would be refused by the broker and stop the idempotent producer.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from hostile_server import HostileServer, article_page, long_page, ok, rss, rss_item
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from topics import long_event, read_topic

from ingest.feedlist import FeedSpec
from ingest.stage import ingest_feeds
from newswire import contracts
from newswire.messaging import Publisher, ensure_topics, open_publisher
from newswire.warehouse import Warehouse
from transform.eventrecords import encode_event
from transform.stage import run_transform

pytestmark = pytest.mark.integration

TOPIC_LIMIT = 100_000  # far below the setting's default (1 MiB), far above an ordinary article's message


def _create(broker: str, settings: Any, topic: contracts.Topic, configs: dict[str, str]) -> None:
    """Create ``topic`` as an operator (or another deployment) would have, before Newswire starts."""
    admin = KafkaAdminClient(bootstrap_servers=[broker], client_id="test-operator")
    try:
        admin.create_topics(
            [NewTopic(topic.name, settings.topic_partitions, 1, topic_configs=configs)], timeout_ms=15_000
        )
    finally:
        admin.close()


def test_an_article_over_an_existing_topics_lower_limit_is_dead_lettered_and_the_rest_publish(
    broker: str, make_settings: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(warehouse_url=f"duckdb:///{tmp_path / 'w.duckdb'}", respect_robots=False)
    assert settings.max_message_bytes > 5 * TOPIC_LIMIT
    _create(broker, settings, contracts.ARTICLES, {"max.message.bytes": str(TOPIC_LIMIT)})
    with HostileServer() as server:
        pages = {f"/p/{i}": ok(article_page(f"Ordinary report {i}", f"seed-{i}")) for i in range(3)}
        pages["/p/long"] = ok(long_page("The longest report", 800))  # ~140 KB of text: within the setting
        for path, route in pages.items():
            server.route(path, route)
        feed = server.route(
            "/feed.xml", ok(rss([rss_item(title=p, link=server.url(p)) for p in pages]).encode(), "application/rss+xml")
        )
        with caplog.at_level(logging.WARNING, logger="newswire.topiclimits"):
            summary = ingest_feeds(settings, broker, [FeedSpec(url=feed, name="Long reads")], run_id="low-topic")

    warnings = [r.getMessage() for r in caplog.records if r.name == "newswire.topiclimits"]
    assert len(warnings) == 1
    assert contracts.ARTICLES.name in warnings[0]
    assert str(TOPIC_LIMIT) in warnings[0] and str(settings.max_message_bytes) in warnings[0]
    assert summary.failures == {}  # the publisher was never stopped
    totals = summary.totals()
    assert (totals["entries_seen"], totals["new"], totals["dead_letters"]) == (4, 3, 1)
    warehouse = Warehouse(settings.resolved_warehouse_url)
    (dl,) = warehouse.query("SELECT stage, reason, retryable, url, message, payload FROM dead_letters")
    assert (dl["stage"], dl["reason"], dl["retryable"]) == ("publish", "message_too_large", False)
    assert dl["url"].endswith("/p/long")
    assert f"{TOPIC_LIMIT:,} bytes" in dl["message"] and "max.message.bytes" in dl["message"]
    payload = dl["payload"] if isinstance(dl["payload"], dict) else json.loads(dl["payload"])
    assert payload["entry"]["link"].endswith("/p/long")

    published = read_topic(broker, settings, contracts.ARTICLES)
    assert sorted(m["title"] for m in published) == [f"Ordinary report {i}" for i in range(3)]
    (letter,) = read_topic(broker, settings, contracts.DEAD_LETTERS)
    assert (letter["stage"], letter["reason"]) == ("publish", "message_too_large")
    assert run_transform(settings, broker).stats.new_articles == 3


def test_an_event_is_cut_to_the_events_topics_own_lower_limit(broker: str, make_settings: Any) -> None:
    """Only the events topic is low: an event within the setting but over it goes out with the most recent
    members that fit that topic, while an article of the same size still goes to its own topic whole."""
    settings = make_settings()
    limit = 80 * 1024  # above the 64 KiB floor below which start-up refuses a topic (TopicLimitTooLow)
    _create(broker, settings, contracts.EVENTS, {"max.message.bytes": str(limit), "cleanup.policy": "compact"})
    publisher = open_publisher(broker, settings, client_id="test-topic-limits")
    try:
        assert publisher.limit(contracts.EVENTS) == limit
        assert publisher.limit(contracts.ARTICLES) == settings.max_message_bytes
        event = long_event(2400)
        whole = contracts.encode(contracts.EVENTS, event)
        assert limit < Publisher.record_size(event["event_id"], whole) < settings.max_message_bytes
        value = encode_event(publisher, event)
        assert limit - 512 < Publisher.record_size(event["event_id"], value) <= limit  # as many as fit
        publisher.send_encoded(contracts.EVENTS, event["event_id"], value)
        assert publisher.confirm() == 1
    finally:
        publisher.close()
    (sent,) = read_topic(broker, settings, contracts.EVENTS)
    kept = len(sent["articles"])
    assert 0 < kept < 2400 and sent["articles_truncated"] is True and sent["article_count"] == 2400
    assert sent["articles"] == event["articles"][-kept:]


def test_topics_that_report_no_limit_keep_the_setting_said_once(
    broker: str, make_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The embedded broker reports no ``max.message.bytes`` for a topic created without one, and no broker
    configs: every such topic keeps the setting, and one warning names them all."""
    settings = make_settings()
    for topic in (contracts.ARTICLES, contracts.DEAD_LETTERS):
        _create(broker, settings, topic, {})
    with caplog.at_level(logging.WARNING, logger="newswire.topiclimits"):
        limits = ensure_topics(broker, settings)
    assert {t.name: limits.of(t.name) for t in contracts.ALL_TOPICS} == dict.fromkeys(
        (t.name for t in contracts.ALL_TOPICS), settings.max_message_bytes
    )
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "newswire.topiclimits"]
    assert contracts.ARTICLES.name in warning and contracts.DEAD_LETTERS.name in warning
    assert contracts.EVENTS.name not in warning  # created by ensure_topics with the setting: not described
    # Topics ensure_topics created earlier report the setting: the next start-up warns about nothing new.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="newswire.topiclimits"):
        ensure_topics(broker, settings)
    (again,) = [r.getMessage() for r in caplog.records if r.name == "newswire.topiclimits"]
    assert contracts.EVENTS.name not in again
