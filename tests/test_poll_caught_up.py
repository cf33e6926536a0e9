"""A one-shot consumer stops at the high watermark instead of waiting for an empty poll."""

from __future__ import annotations

from typing import Any

from newswire import contracts
from newswire.messaging import Publisher, caught_up, ensure_topics, make_consumer, make_producer, poll_batch


def _dead_letter(i: int) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "dead_letter_id": f"dl{i}",
        "stage": "decode",
        "reason": "invalid_json",
        "message": "m",
        "created_at": "2026-11-24T10:00:00Z",
        "attempts": 1,
    }


def test_batches_end_at_the_high_watermark_without_an_idle_poll(broker: str, make_settings) -> None:
    settings = make_settings()
    ensure_topics(broker, settings)
    publisher = Publisher(make_producer(broker, settings, client_id="t"))
    for i in range(45):
        publisher.send(contracts.DEAD_LETTERS, f"k{i}", _dead_letter(i))
    publisher.confirm()
    publisher.close()
    consumer = make_consumer(broker, settings, group_id="caught-up", topics=[contracts.DEAD_LETTERS.name])
    polls = 0
    original = consumer.poll

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal polls
        polls += 1
        return original(*args, **kwargs)

    consumer.poll = counted  # type: ignore[method-assign]
    try:
        got: list[Any] = []
        while len(got) < 45:
            batch = poll_batch(consumer, max_messages=15, idle_timeout=30, deadline=60, stop_when_caught_up=True)
            assert batch, "stopped before reading everything"
            got.extend(batch)
        assert caught_up(consumer)
        before = polls
        # Everything is read: the next batch is empty and costs no poll at all (not a 30 s idle one).
        assert poll_batch(consumer, max_messages=15, idle_timeout=30, deadline=60, stop_when_caught_up=True) == []
        assert polls == before
    finally:
        consumer.close()
    assert sorted(r.value for r in got) == sorted({r.value for r in got})  # each record once
