"""The event outbox after a batch: the versions the batch saved are published with the members its own
transaction read, without reading them again, and those are the members a fresh read of the committed
warehouse finds."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench.transform import NullPublisher, incoming, records, stream_messages
from newswire import contracts
from newswire.warehouse import Warehouse
from transform.batch import BatchProcessor, SavedEvent
from transform.clustering import ClusteringConfig
from transform.store import TransformStore

pytestmark = pytest.mark.integration

CONFIG = ClusteringConfig(embedding_model="none")  # words and cues only: the encoder would dominate the test
BATCH = 20


class CapturingPublisher(NullPublisher):
    """Keeps every event message sent."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []

    def send_encoded(self, topic: contracts.Topic, key: str, value: bytes) -> None:
        super().send_encoded(topic, key, value)
        if topic.name == contracts.EVENTS.name:
            self.events.append(json.loads(value))


class CheckingProcessor(BatchProcessor):
    """Before each outbox, reads the saved events' members again from the committed warehouse."""

    fresh: dict[str, list[dict[str, Any]]]
    saved: dict[str, SavedEvent]

    def publish_outbox(self, saved: dict[str, SavedEvent] | None = None) -> int:
        if saved is not None:
            with self.warehouse.transaction() as cur:
                self.fresh = TransformStore(cur).members_of(saved)
            self.saved = saved
        return super().publish_outbox(saved)


def test_outbox_publishes_the_batch_members_without_reading_them_again(
    warehouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = records(stream_messages(3 * BATCH, embeddings=False))
    warehouse = Warehouse(warehouse_url)
    warehouse.migrate()
    publisher = CapturingPublisher()
    processor = CheckingProcessor(warehouse, publisher, config=CONFIG)  # type: ignore[arg-type]
    asked: list[list[str]] = []
    members_of = TransformStore.members_of

    def spy(self: TransformStore, event_ids: Any) -> dict[str, list[dict[str, Any]]]:
        ids = list(event_ids)
        asked.append(ids)
        return members_of(self, ids)

    monkeypatch.setattr(TransformStore, "members_of", spy)
    for start in range(0, len(topic), BATCH):
        sent = len(publisher.events)
        asked.clear()
        processor.process(incoming(topic[start : start + BATCH], start), f"batch-{start}")
        batch_events = publisher.events[sent:]

        # Every version the batch saved is published, with the members the committed warehouse holds.
        assert {e["event_id"]: e["version"] for e in batch_events} == {
            event_id: saved.version for event_id, saved in processor.saved.items()
        }
        for event in batch_events:
            members = processor.fresh.get(event["event_id"], [])
            assert processor.saved[event["event_id"]].members == members
            assert [a["article_id"] for a in event["articles"]] == [m["article_id"] for m in members]
        # Reads of members: the batch's live events, the check's, and an empty one by the outbox.
        assert len(asked) == 3 and asked[2] == []
    assert len(publisher.events) > BATCH
