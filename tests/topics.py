"""Reading a whole topic back in tests: what downstream consumers would see."""

from __future__ import annotations

from typing import Any

from newswire import contracts
from newswire.messaging import make_consumer, poll_batch


def read_topic(bootstrap: str, settings: Any, topic: contracts.Topic) -> list[dict[str, Any]]:
    """Every message on a topic, each decoded and validated against the topic's schema."""
    consumer = make_consumer(bootstrap, settings, group_id=None, topics=[topic.name])
    try:
        records = poll_batch(consumer, max_messages=100_000, idle_timeout=1.0, deadline=30)
    finally:
        consumer.close()
    return [contracts.decode(topic, r.value) for r in records]
