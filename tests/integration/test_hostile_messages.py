"""Malformed and schema-invalid records on ``newswire.articles``: dead-lettered, and the consumer carries on.

The records are written with a raw kafka-python producer, bypassing the contract check our own producers
do, exactly as a buggy or foreign producer would.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hostile_server import article_text
from kafka import KafkaProducer

from newswire import contracts
from newswire.messaging import make_consumer, poll_batch
from newswire.warehouse import Warehouse
from transform.stage import run_transform

pytestmark = pytest.mark.integration


def article(n: int) -> dict[str, Any]:
    url = f"http://news.example/story/{n}"
    text = "\n\n".join(article_text(f"message-{n}"))  # distinct prose: no near-duplicates among the good ones
    return {
        "schema_version": 1,
        "article_id": hashlib.sha256(url.encode()).hexdigest()[:32],
        "url": url,
        "canonical_url": url,
        "feed_url": "http://news.example/feed.xml",
        "source": "Example News",
        "title": f"Story {n}: {['harbour', 'glacier', 'orchestra'][n]} news",
        "text": text,
        "content_hash": hashlib.sha256(text.encode()).hexdigest()[:32],
        "fetched_at": "2026-01-15T10:00:00Z",
        "published_at": "2026-01-15T09:00:00Z",
        "language": "en",
    }


HOSTILE_RECORDS: list[tuple[bytes | None, str]] = [
    (b"definitely not json", "invalid_json"),
    (b"\xff\xfe\xfd invalid utf-8", "invalid_json"),
    (b"[1, 2, 3]", "schema_violation"),
    (json.dumps({**article(0), "schema_version": 2}).encode(), "unsupported_schema_version"),
    (json.dumps({k: v for k, v in article(0).items() if k != "text"}).encode(), "schema_violation"),
    (json.dumps({**article(0), "article_id": "'; DROP TABLE articles;--"}).encode(), "schema_violation"),
    (b'{"schema_version": 1, "nested": ' + b"[" * 5000 + b"]" * 5000 + b"}", "invalid_json"),
    (None, "empty_message"),  # a tombstone
]


def test_bad_records_become_dead_letters_and_good_ones_around_them_are_stored(
    broker: str, make_settings, tmp_path: Path
) -> None:
    settings = make_settings(warehouse_url=f"duckdb:///{tmp_path / 'w.duckdb'}", topic_partitions=1)
    producer = KafkaProducer(bootstrap_servers=broker)
    for n in range(3):  # good, bad, bad, good, bad... on one partition, in this order
        producer.send(contracts.ARTICLES.name, key=b"good", value=contracts.encode(contracts.ARTICLES, article(n)))
        for value, _ in HOSTILE_RECORDS[n::3]:
            producer.send(contracts.ARTICLES.name, key=b"bad", value=value)
    producer.flush(10)
    producer.close()

    summary = run_transform(settings, broker)
    assert summary.stats.messages == 3 + len(HOSTILE_RECORDS)
    assert (summary.stats.new_articles, summary.stats.dead_letters) == (3, len(HOSTILE_RECORDS))

    warehouse = Warehouse(settings.resolved_warehouse_url)
    rows = warehouse.query("SELECT stage, reason, payload FROM dead_letters")
    assert Counter(r["reason"] for r in rows) == Counter(reason for _, reason in HOSTILE_RECORDS)
    assert {r["stage"] for r in rows} == {"decode"}
    kept = {base64.b64decode(json.loads(r["payload"])["value_base64"]) for r in rows}
    assert kept == {value or b"" for value, _ in HOSTILE_RECORDS}  # the exact bytes, for a later retry
    assert warehouse.scalar("SELECT COUNT(*) FROM articles") == 3

    consumer = make_consumer(broker, settings, group_id=None, topics=[contracts.DEAD_LETTERS.name])
    try:
        published = poll_batch(consumer, max_messages=1000, idle_timeout=1.0, deadline=20)
    finally:
        consumer.close()
    messages = [contracts.decode(contracts.DEAD_LETTERS, r.value) for r in published]
    assert sorted(m["reason"] for m in messages) == sorted(reason for _, reason in HOSTILE_RECORDS)

    again = run_transform(settings, broker)  # offsets moved past the bad records: nothing is stuck
    assert again.stats.messages == 0
