"""An event's summary comes from its representative's text, now that members are read without their text.

The batch reads every member's row for the records but only the representative's text (``summary_texts``): a
record built from members without text must still summarise the representative, never an empty text or another
member's.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench.transform import NullPublisher, incoming, records, stream_messages
from newswire.warehouse import Warehouse
from transform.batch import BatchProcessor
from transform.clustering import ClusteringConfig
from transform.eventrecords import SUMMARY_CHARS, build_event_record

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


def test_a_record_from_members_without_text_equals_one_from_members_with_it() -> None:
    members: list[dict[str, Any]] = [
        {"article_id": f"a{i}", "url": f"https://x.example/{i}", "canonical_url": None, "title": f"Title {i}",
         "description": None, "text": f"Body {i} " + "word " * (50 + i), "language": "en", "source": "X",
         "published_at": None, "fetched_at": None}
        for i in range(3)
    ]  # fmt: skip
    without = [{k: v for k, v in m.items() if k != "text"} for m in members]
    texts = {m["article_id"]: m["text"] for m in members}
    for representative in ("a0", "a2", "missing"):
        expected = build_event_record("e", members, representative_id=representative)
        assert build_event_record("e", without, representative_id=representative, texts=texts) == expected
        # only the representative's text is needed (the first member's when the representative is not a member)
        own = "a0" if representative == "missing" else representative
        only = {own: texts[own]}
        assert build_event_record("e", without, representative_id=representative, texts=only) == expected
