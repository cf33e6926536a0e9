"""A transform restarted mid-stream (state restored from the warehouse) matches an uninterrupted one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_transform_batches import message, publish

from newswire.messaging import ensure_topics
from newswire.warehouse import Warehouse
from transform.run import run_transform

STORIES = Path(__file__).parents[1] / "fixtures" / "stories"
pytestmark = pytest.mark.integration


def stream() -> list[dict[str, Any]]:
    docs = [json.loads(line) for p in sorted(STORIES.glob("*.jsonl")) for line in p.read_text().splitlines() if line]
    docs.sort(key=lambda d: (d["published_at"], d["doc_id"]))
    return [message(d) for d in docs[:120]]


def events(warehouse_url: str) -> set[tuple[str, frozenset[str]]]:
    rows = Warehouse(warehouse_url).query("SELECT event_id, article_id FROM event_articles")
    grouped: dict[str, set[str]] = {}
    for r in rows:
        grouped.setdefault(r["event_id"], set()).add(r["article_id"])
    return {(event_id, frozenset(members)) for event_id, members in grouped.items()}


def test_restart_mid_stream_gives_the_same_events(broker: str, tmp_path: Path, make_settings) -> None:
    messages = stream()
    half = len(messages) // 2
    whole_url = f"duckdb:///{tmp_path / 'whole.duckdb'}"
    split_url = f"duckdb:///{tmp_path / 'split.duckdb'}"
    # Online clustering depends on arrival order; one partition gives both runs the same order (with several,
    # a consumer interleaves partitions differently when it reads the stream in one go or in two halves).
    common = {"batch_max_messages": 25, "topic_partitions": 1}
    whole = make_settings(warehouse_url=whole_url, consumer_group="whole", **common)
    split = make_settings(warehouse_url=split_url, consumer_group="split", **common)
    ensure_topics(broker, whole)

    publish(broker, whole, messages[:half])
    run_transform(split, broker)  # the "split" process stops here ...
    publish(broker, whole, messages[half:])
    restarted = run_transform(split, broker)  # ... and a new one restores its state from the warehouse
    uninterrupted = run_transform(whole, broker)

    assert restarted.stats.new_articles + restarted.stats.duplicates == len(messages) - half
    assert uninterrupted.stats.new_articles + uninterrupted.stats.duplicates == len(messages)
    assert Warehouse(split_url).scalar("SELECT COUNT(*) FROM article_features") == Warehouse(split_url).scalar(
        "SELECT COUNT(*) FROM articles"
    )
    assert events(split_url) == events(whole_url)
    assert len({members for _, members in events(whole_url) if len(members) > 1}) > 5  # real multi-article stories
