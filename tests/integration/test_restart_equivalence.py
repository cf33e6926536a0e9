"""A transform restarted mid-stream (state restored from the warehouse) matches an uninterrupted one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_transform_batches import message, publish

from newswire.embedding import DEFAULT_MODEL, embed_articles, encoder_for, to_message
from newswire.messaging import ensure_topics
from newswire.warehouse import Warehouse
from transform.stage import run_transform

STORIES = Path(__file__).parents[1] / "fixtures" / "stories"
pytestmark = pytest.mark.integration


def stream() -> list[dict[str, Any]]:
    """The first 90 articles of the corpus and every article of the multilingual part (zh/ru/ar beside en/fr),
    in publication order. Every other article carries its embedding, as ingest's workers send it; for the
    rest (older messages, replays) the transform computes it: both paths must give the same events."""
    docs = [json.loads(line) for p in sorted(STORIES.glob("*.jsonl")) for line in p.read_text().splitlines() if line]
    docs.sort(key=lambda d: (d["published_at"], d["doc_id"]))
    chosen = docs[:90] + [d for d in docs[90:] if d["doc_id"].startswith("p3-")]
    embeddings = embed_articles(encoder_for(DEFAULT_MODEL), [(d["title"], d["text"]) for d in chosen])
    out = []
    for index, (d, embedding) in enumerate(zip(chosen, embeddings, strict=True)):
        m = message(d)
        if index % 2 == 0:
            m["embedding"] = to_message(embedding)
        out.append(m)
    return out


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
    # The restarted process restored embeddings from the stored features, and they joined scripts.
    stored = Warehouse(split_url).query("SELECT features FROM article_features")
    assert all(json.loads(r["features"])["embedding"]["model"].startswith(DEFAULT_MODEL) for r in stored)
    languages = Warehouse(whole_url).query(
        "SELECT ea.event_id, a.language FROM event_articles ea JOIN articles a ON a.article_id = ea.article_id"
    )
    by_event: dict[str, set[str]] = {}
    for r in languages:
        by_event.setdefault(r["event_id"], set()).add(r["language"])
    assert sum(1 for langs in by_event.values() if "zh" in langs and "en" in langs) >= 3
