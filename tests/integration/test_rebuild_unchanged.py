"""``rebuild_events`` over a warehouse nothing changed since the transform built it changes nothing.

An event's record carries a profile (representative article, keyword order) that depends on the document
frequencies of every article the story state held when the record was saved, not only on the event's members.
The transform saves a record at the end of each batch that touches the event; the rebuild must therefore
profile each event as of the end of the last load batch that touched it, or most events get a new version (and
a new message) although no article moved. Both backends, several batches, a stream whose stories span batches.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest

from bench.transform import records, run_batches, stream_messages
from newswire.warehouse import Warehouse
from transform.clustering import ClusteringConfig
from transform.rebuild import rebuild_events

pytestmark = pytest.mark.integration

ALL_TIME = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
CONFIG = ClusteringConfig(embedding_model="none")


def events(warehouse: Warehouse) -> list[dict[str, Any]]:
    return warehouse.query("SELECT * FROM events ORDER BY event_id")


def memberships(warehouse: Warehouse) -> list[dict[str, Any]]:
    return warehouse.query("SELECT event_id, article_id FROM event_articles ORDER BY article_id")


def test_rebuilding_an_unchanged_warehouse_creates_no_event_version(warehouse_url: str) -> None:
    warehouse = Warehouse(warehouse_url)
    warehouse.migrate()
    run_batches(warehouse, records(stream_messages(600, embeddings=False)), batch_size=100, config=CONFIG)
    built, members = events(warehouse), memberships(warehouse)
    # the stream really spans batches: events whose members came in different batches exist
    loaded = warehouse.query(
        "SELECT ea.event_id, COUNT(DISTINCT a.loaded_at) AS batches FROM event_articles ea "
        "JOIN articles a ON a.article_id = ea.article_id GROUP BY ea.event_id"
    )
    assert sum(1 for row in loaded if row["batches"] > 1) >= 5
    assert len({row["loaded_at"] for row in warehouse.query("SELECT DISTINCT loaded_at FROM articles")}) >= 5

    stats = rebuild_events(warehouse, None, *ALL_TIME, config=CONFIG)

    assert stats.articles == len(members) and stats.moved == 0
    assert stats.events_changed == 0
    assert events(warehouse) == built  # same versions, digests, keywords, representative titles, timestamps
    assert memberships(warehouse) == members


def test_new_versions_of_articles_change_no_event_record_on_a_rebuild(warehouse_url: str) -> None:
    """The transform keeps clustering an article with its first text's features after a new version arrives (and
    a restart restores those): the rebuild must hold the same, or the new texts' words shift the document
    frequencies, and so the keywords and representatives, of events the updated articles are not even in."""
    messages = stream_messages(400, embeddings=False)
    # a new version of every 9th article, right after it, whose text borrows another story's words
    stream = []
    for number, m in enumerate(messages):
        stream.append(m)
        if number % 9 == 4:
            text = f"{m['text']} Updated: {messages[(number + 200) % len(messages)]['text']}"
            stream.append({**m, "text": text, "content_hash": hashlib.sha256(text.encode()).hexdigest()[:32]})
    warehouse = Warehouse(warehouse_url)
    warehouse.migrate()
    run_batches(warehouse, records(stream), batch_size=80, config=CONFIG)
    built, members = events(warehouse), memberships(warehouse)
    assert warehouse.query("SELECT COUNT(*) AS n FROM articles WHERE version > 1")[0]["n"] >= 40

    stats = rebuild_events(warehouse, None, *ALL_TIME, config=CONFIG)

    assert stats.moved == 0 and stats.events_changed == 0
    assert events(warehouse) == built
    assert memberships(warehouse) == members


def test_a_rebuild_after_a_real_change_records_what_a_transform_with_that_change_records(
    warehouse_url: str, tmp_path: Any
) -> None:
    """The per-batch profiles are not an artefact of reusing the old records: with another configuration, the
    rebuilt events are exactly those a transform run with that configuration saves (content digests)."""
    messages = records(stream_messages(400, embeddings=False))
    eager = ClusteringConfig(embedding_model="none", threshold=0.12, merge_threshold=0.3)
    warehouse = Warehouse(warehouse_url)
    warehouse.migrate()
    run_batches(warehouse, messages, batch_size=80, config=CONFIG)
    reference = Warehouse(f"duckdb:///{tmp_path / 'eager.duckdb'}")
    reference.migrate()
    run_batches(reference, messages, batch_size=80, config=eager)

    stats = rebuild_events(warehouse, None, *ALL_TIME, config=eager)

    assert stats.moved > 0 and stats.events_changed > 0
    live = "SELECT event_id, content_digest, article_count FROM events WHERE article_count > 0 ORDER BY event_id"
    assert warehouse.query(live) == reference.query(live)
    assert memberships(warehouse) == memberships(reference)


def test_after_an_upgrade_from_legacy_digests_replays_and_rebuilds_create_no_event_version(
    warehouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events saved by a transform of the earlier digest form keep their versions when the current code replays
    their articles or rebuilds them, and get a digest of the current form at their next real change."""
    import transform.batch
    from transform.eventrecords import DIGEST_PREFIX, legacy_digest

    topic = records(stream_messages(400, embeddings=False))
    warehouse = Warehouse(warehouse_url)
    warehouse.migrate()
    with monkeypatch.context() as patch:  # the earlier code: every record saved under its legacy digest
        patch.setattr(transform.batch, "digests", lambda rs, stored: [(r, legacy_digest(r)) for r in rs])
        run_batches(warehouse, topic[:300], batch_size=100, config=CONFIG)
    built = events(warehouse)
    assert built and not any(row["content_digest"].startswith(DIGEST_PREFIX) for row in built)

    run_batches(warehouse, topic[:300], batch_size=100, config=CONFIG)  # a replay: nothing new
    assert events(warehouse) == built
    stats = rebuild_events(warehouse, None, *ALL_TIME, config=CONFIG)
    assert stats.events_changed == 0 and events(warehouse) == built

    run_batches(warehouse, topic[300:], batch_size=100, config=CONFIG)
    before = {row["event_id"]: row for row in built}
    changed = [
        row for row in events(warehouse) if row["version"] > before.get(row["event_id"], {"version": 0})["version"]
    ]
    assert changed and all(row["content_digest"].startswith(DIGEST_PREFIX) for row in changed)
    assert all(row == before[row["event_id"]] for row in events(warehouse) if row not in changed)
