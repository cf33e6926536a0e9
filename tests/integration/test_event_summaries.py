"""An event's summary is its representative's text (the stream's articles have no description): never an empty
text or another member's, whatever the batch reads of the members."""

from __future__ import annotations

import pytest

from bench.transform import NullPublisher, incoming, records, stream_messages
from newswire.warehouse import Warehouse
from transform.batch import BatchProcessor
from transform.clustering import ClusteringConfig
from transform.eventrecords import SUMMARY_CHARS

pytestmark = pytest.mark.integration

CONFIG = ClusteringConfig(embedding_model="none")  # words and cues only: the encoder would dominate the test
BATCH = 30


def _summary_of(text: str) -> str:
    """What a summary of ``text`` is, for an article without a description (the synthetic stream has none)."""
    body = " ".join(text.split())
    return body[:SUMMARY_CHARS].rsplit(" ", 1)[0] + "…" if len(body) > SUMMARY_CHARS else body


def test_event_summaries_are_their_representatives_text(warehouse_url: str) -> None:
    messages = stream_messages(3 * BATCH, embeddings=False)
    topic = records(messages)
    warehouse = Warehouse(warehouse_url)
    warehouse.migrate()
    processor = BatchProcessor(warehouse, NullPublisher(), config=CONFIG)  # type: ignore[arg-type]
    for start in range(0, len(topic), BATCH):
        processor.process(incoming(topic[start : start + BATCH], start), f"batch-{start}")
    events = warehouse.query("SELECT event_id, title, summary FROM events WHERE article_count > 0")
    members = warehouse.query(
        "SELECT ea.event_id, a.title, a.text FROM event_articles ea JOIN articles a ON a.article_id = ea.article_id"
    )
    assert len(events) > 10
    for event in events:
        # the representative is the member whose title the event shows (titles may repeat: any of those)
        texts = [m["text"] for m in members if m["event_id"] == event["event_id"] and m["title"] == event["title"]]
        assert texts, event
        assert event["summary"] and event["summary"] in {_summary_of(text) for text in texts}
