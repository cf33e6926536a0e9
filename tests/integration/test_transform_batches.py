"""Transform batches against the real broker: replays change nothing, versions count real changes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from story_messages import story_article_message
from topics import read_topic

from newswire import contracts
from newswire.messaging import Publisher, ensure_topics, make_producer
from newswire.warehouse import Warehouse
from transform.stage import run_transform

STORIES = Path(__file__).parents[1] / "fixtures" / "stories"
pytestmark = pytest.mark.integration


def corpus_messages() -> list[dict[str, Any]]:
    docs = [json.loads(line) for line in (STORIES / "part1.jsonl").read_text().splitlines() if line.strip()]
    by_story: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        if d["kind"] in ("original", "followup"):
            by_story.setdefault(d["story_id"], []).append(d)
    picked = [d for story in sorted(by_story)[:4] for d in by_story[story][:3]]
    return [message(d) for d in picked]


message = story_article_message


def publish(bootstrap: str, settings: Any, messages: list[dict[str, Any]]) -> None:
    publisher = Publisher(make_producer(bootstrap, settings, client_id="test"))
    for m in messages:
        publisher.send(contracts.ARTICLES, m["article_id"], m)
    publisher.confirm()
    publisher.close()


def snapshot(warehouse: Warehouse) -> dict[str, list[dict[str, Any]]]:
    return {
        "articles": warehouse.query("SELECT article_id, content_hash, version FROM articles ORDER BY article_id"),
        "events": warehouse.query("SELECT event_id, version, content_digest FROM events ORDER BY event_id"),
        "members": warehouse.query("SELECT event_id, article_id FROM event_articles ORDER BY event_id, article_id"),
        "duplicates": warehouse.query("SELECT url, duplicate_of FROM article_duplicates ORDER BY url"),
    }


def test_replayed_batch_changes_nothing_and_new_member_bumps_the_version(
    broker: str, warehouse_url: str, make_settings
) -> None:
    settings = make_settings(warehouse_url=warehouse_url)
    ensure_topics(broker, settings)
    messages = corpus_messages()
    first, later = messages[:-1], messages[-1]
    publish(broker, settings, first)
    summary = run_transform(settings, broker)
    assert summary.stats.new_articles == len(first)
    warehouse = Warehouse(warehouse_url)
    before = snapshot(warehouse)
    published = read_topic(broker, settings, contracts.EVENTS)
    assert published and {e["version"] for e in published} == {1}

    # A new consumer group re-reads every message: the batch is replayed in full.
    replay = run_transform(settings, broker, group_id="replay-group")
    assert replay.stats.messages == len(first)
    assert replay.stats.replays == len(first) and replay.stats.new_articles == 0
    assert replay.stats.events_changed == 0 and replay.stats.events_published == 0
    assert snapshot(warehouse) == before
    assert len(read_topic(broker, settings, contracts.EVENTS)) == len(published)

    # One more article of an already seen story: exactly its event gets version 2.
    publish(broker, settings, [later])
    grown = run_transform(settings, broker)
    assert grown.stats.new_articles == 1
    after = {e["event_id"]: e["version"] for e in snapshot(warehouse)["events"]}
    changed = {k: v for k, v in after.items() if v != {e["event_id"]: e["version"] for e in before["events"]}.get(k)}
    assert list(changed.values()) == [2]  # the story's event grew: version 2, no new event
    seen = {(e["event_id"], e["version"]) for e in published}
    newest = {(e["event_id"], e["version"]) for e in read_topic(broker, settings, contracts.EVENTS)} - seen
    assert newest == set(changed.items())  # partitions are not globally ordered: compare as sets


def test_updated_article_is_a_new_version_not_a_new_article(broker: str, warehouse_url: str, make_settings) -> None:
    settings = make_settings(warehouse_url=warehouse_url)
    ensure_topics(broker, settings)
    original = corpus_messages()[0]
    publish(broker, settings, [original])
    run_transform(settings, broker)
    warehouse = Warehouse(warehouse_url)
    event_id, version = warehouse.query("SELECT event_id, version FROM events")[0].values()

    corrected_text = original["text"] + " Correction: an earlier version of this article misstated a figure."
    corrected = {
        **original,
        "text": corrected_text,
        "content_hash": hashlib.sha256(corrected_text.encode()).hexdigest()[:32],
        "fetched_at": "2026-10-31T12:00:00Z",
    }
    publish(broker, settings, [corrected])
    summary = run_transform(settings, broker)
    assert summary.stats.updated_articles == 1 and summary.stats.new_articles == 0
    rows = warehouse.query("SELECT article_id, version, content_hash FROM articles")
    assert rows == [{"article_id": original["article_id"], "version": 2, "content_hash": corrected["content_hash"]}]
    assert warehouse.query("SELECT event_id, version FROM events") == [{"event_id": event_id, "version": version + 1}]
    assert warehouse.scalar("SELECT COUNT(*) FROM article_duplicates") == 0
