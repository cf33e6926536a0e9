"""A Kafka broker's size refusal, seen by ``Publisher.confirm``.

The embedded broker has no size limit, so the broker's side is played by a stand-in producer whose futures
fail as kafka-python's do when a topic's ``max.message.bytes`` is below the producer's limit. What is tested is
the publisher's own handling: the refusal is reported plainly, the acknowledgements before it still count, and
the publisher sends nothing more (kafka-python's idempotent producer fails every later batch after it).
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import pytest
from kafka.errors import MessageSizeTooLargeError

from newswire import contracts
from newswire.errors import MessageTooLarge
from newswire.messaging import Publisher

Metadata = namedtuple("Metadata", "topic partition offset")


class _Future:
    def __init__(self, result: Any = None, error: BaseException | None = None) -> None:
        self._result, self._error = result, error

    def get(self, timeout: float | None = None) -> Any:
        if self._error is not None:
            raise self._error
        return self._result


class _BrokerWithLowTopicLimit:
    """Acknowledges records up to ``topic_limit`` bytes of value, refuses larger ones as a broker does."""

    def __init__(self, producer_limit: int, topic_limit: int) -> None:
        self.config = {"max_request_size": producer_limit}
        self.topic_limit = topic_limit
        self.offset = 0
        self.sent: list[bytes] = []

    def send(self, topic: str, key: bytes, value: bytes) -> _Future:
        self.sent.append(value)
        if len(value) > self.topic_limit:
            return _Future(error=MessageSizeTooLargeError("refused by the broker"))
        self.offset += 1
        return _Future(Metadata(topic, 0, self.offset - 1))

    def flush(self, timeout: float | None = None) -> None:
        return None


def test_a_broker_size_refusal_is_reported_once_plainly_and_stops_the_publisher() -> None:
    producer = _BrokerWithLowTopicLimit(producer_limit=1 << 20, topic_limit=1000)
    publisher = Publisher(producer)  # type: ignore[arg-type]
    publisher.send_encoded(contracts.ARTICLES, "a", b"x" * 100)
    publisher.send_encoded(contracts.ARTICLES, "b", b"y" * 5000)  # within the producer's limit, over the topic's
    with pytest.raises(MessageTooLarge) as caught:
        publisher.confirm()
    error = caught.value
    assert error.broker_refused and not error.retryable and error.reason == "message_too_large"
    assert "max.message.bytes" in str(error)
    # The record acknowledged before the refusal still counts (consumers may wait for it).
    assert publisher.acknowledged(contracts.ARTICLES) == {0: 1}
    # Nothing more is handed to a producer that would fail it anyway.
    with pytest.raises(MessageTooLarge) as again:
        publisher.send_encoded(contracts.ARTICLES, "c", b"z" * 10)
    assert again.value.broker_refused
    assert len(producer.sent) == 2


def test_bytes_over_the_producer_limit_are_refused_before_sending() -> None:
    producer = _BrokerWithLowTopicLimit(producer_limit=65536, topic_limit=1 << 30)
    publisher = Publisher(producer)  # type: ignore[arg-type]
    with pytest.raises(MessageTooLarge) as caught:
        publisher.send_encoded(contracts.ARTICLES, "k", b"v" * 70000)
    assert not caught.value.broker_refused and caught.value.size is not None and caught.value.size > 65536
    assert producer.sent == []
    publisher.send_encoded(contracts.ARTICLES, "k", b"v" * 100)  # the publisher is still usable
    assert publisher.confirm() == 1
