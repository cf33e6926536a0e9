"""A one-shot consumer stops at the high watermark instead of waiting for an empty poll."""

from __future__ import annotations

import time
from typing import Any

from newswire import contracts
from newswire.messaging import (
    FollowedProducer,
    Publisher,
    caught_up,
    ensure_topics,
    make_consumer,
    make_producer,
    poll_batch,
)


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


def test_publisher_reports_the_offsets_past_what_the_broker_acknowledged(broker: str, make_settings) -> None:
    settings = make_settings()
    ensure_topics(broker, settings)
    publisher = Publisher(make_producer(broker, settings, client_id="t"))
    assert publisher.acknowledged(contracts.DEAD_LETTERS) == {}
    for i in range(40):
        publisher.send(contracts.DEAD_LETTERS, f"k{i}", _dead_letter(i))
    publisher.confirm()
    publisher.close()
    acknowledged = publisher.acknowledged(contracts.DEAD_LETTERS)
    assert publisher.acknowledged(contracts.ARTICLES) == {}
    consumer = make_consumer(broker, settings, group_id="acked", topics=[contracts.DEAD_LETTERS.name])
    try:
        records = poll_batch(consumer, max_messages=1000, idle_timeout=2, deadline=30)
        # The broker's own view: the end of each partition is where the publisher says its messages end.
        ends: dict[int, int] = {}
        for r in records:
            ends[r.partition] = max(ends.get(r.partition, 0), r.offset + 1)
        assert len(records) == 40
        assert acknowledged == ends
        assert all(consumer.highwater(tp) == ends.get(tp.partition, 0) for tp in consumer.assignment())
    finally:
        consumer.close()


def test_a_followed_producer_s_end_offsets_stop_a_batch_past_a_stale_high_watermark(broker: str, make_settings) -> None:
    """The consumer has read everything its last fetch reported; the producer then publishes more and finishes.
    Its acknowledged end offsets make the batch read those messages too (the stale high watermark alone would
    call the consumer caught up) and end without an idle poll."""
    settings = make_settings()
    ensure_topics(broker, settings)
    publisher = Publisher(make_producer(broker, settings, client_id="t"))
    consumer = make_consumer(broker, settings, group_id="follow", topics=[contracts.DEAD_LETTERS.name])
    followed = FollowedProducer()
    try:
        for i in range(10):
            publisher.send(contracts.DEAD_LETTERS, f"k{i}", _dead_letter(i))
        publisher.confirm()
        first: list[Any] = []
        deadline = time.monotonic() + 30
        while not caught_up(consumer) and time.monotonic() < deadline:  # every partition fetched at least once
            first.extend(poll_batch(consumer, max_messages=100, idle_timeout=0.5, deadline=5, stop_when_caught_up=True))
        assert len(first) == 10 and caught_up(consumer)
        for i in range(10, 30):
            publisher.send(contracts.DEAD_LETTERS, f"k{i}", _dead_letter(i))
        publisher.confirm()
        assert caught_up(consumer), "the high watermark of the last fetch predates the new messages"
        assert not caught_up(consumer, publisher.acknowledged(contracts.DEAD_LETTERS))
        assert followed.end_offsets() is None and followed.running()
        followed.finish(publisher.acknowledged(contracts.DEAD_LETTERS))
        assert not followed.running()
        started = time.monotonic()
        rest: list[Any] = []
        while len(rest) < 20:
            batch = poll_batch(
                consumer, max_messages=1000, idle_timeout=30, deadline=60, end_offsets=followed.end_offsets
            )
            assert batch, "stopped before reading what the producer acknowledged"
            rest.extend(batch)
        # Read to the producer's end: the next batch is empty at once, not after a 30 s idle poll.
        assert (
            poll_batch(consumer, max_messages=1000, idle_timeout=30, deadline=60, end_offsets=followed.end_offsets)
            == []
        )
        assert time.monotonic() - started < 15
        assert sorted(r.value for r in [*first, *rest]) == sorted({r.value for r in [*first, *rest]})
        assert len(rest) == 20
    finally:
        consumer.close()
        publisher.close()


def test_a_finished_producer_without_known_offsets_falls_back_to_the_idle_poll() -> None:
    followed = FollowedProducer()
    followed.finish(None)
    assert not followed.running() and followed.end_offsets() is None
