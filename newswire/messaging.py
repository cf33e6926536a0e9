"""Kafka clients configured once for the whole project (kafka-python).

The settings here are the ones measured to work on both the embedded broker (Tansu) and Apache Kafka:
idempotent producer with ``acks='all'`` (never ``acks=0``, which Tansu silently drops), no transactions,
consumer sessions short enough that group joins on Tansu take seconds rather than tens of seconds, manual offset
commits so offsets move only after the warehouse has committed.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import (
    InvalidConfigurationError,
    KafkaError,
    MessageSizeTooLargeError,
    PolicyViolationError,
    RecordListTooLargeError,
    TopicAlreadyExistsError,
)
from kafka.record.default_records import DefaultRecordBatchBuilder

from newswire import contracts
from newswire.contracts import Topic
from newswire.errors import BrokerUnavailable, MessageTooLarge
from newswire.settings import Settings
from newswire.topiclimits import TopicLimits, read_limits

log = logging.getLogger(__name__)

#: Seconds to wait for the broker to acknowledge a batch before the caller treats it as down.
ACK_TIMEOUT = 60.0

#: What a producer or broker answers when a record (or a batch of them) is over its size limit.
_SIZE_REFUSALS = (MessageSizeTooLargeError, RecordListTooLargeError)


def _compression(settings: Settings) -> str | None:
    return None if settings.compression == "none" else settings.compression


def check_reachable(bootstrap: str, timeout: float = 5.0) -> None:
    """Fail in seconds, not after kafka-python's 30 s bootstrap timeout, when no bootstrap server answers."""
    errors = []
    for server in bootstrap.split(","):
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
                return
        except OSError as exc:
            errors.append(f"{server}: {exc.strerror or exc}")
    raise BrokerUnavailable(f"Kafka is not reachable ({'; '.join(errors)})")


def make_producer(
    bootstrap: str, settings: Settings, *, client_id: str, limits: TopicLimits | None = None, **overrides: Any
) -> KafkaProducer:
    """The project's producer; ``limits`` (from :func:`ensure_topics`) keep its batches within the lowest topic
    limit; ``overrides`` replace its configs (tests use a ``max_request_size`` below the setting's minimum to
    reach the size limit with small messages)."""
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap.split(","),
        "client_id": client_id,
        "acks": "all",
        "enable_idempotence": True,
        "retries": 5,
        "compression_type": _compression(settings),
        "linger_ms": 10,
        # A batch never outgrows the topics' max.message.bytes (the setting, or an existing topic's lower one):
        # Kafka checks that limit per batch, so many small records batched together must not be refused as one.
        "batch_size": min(262_144, limits.smallest if limits is not None else settings.max_message_bytes),
        "max_block_ms": 15_000,
        "max_request_size": settings.max_message_bytes,
        "request_timeout_ms": 30_000,
        "delivery_timeout_ms": int(ACK_TIMEOUT * 1000),
    }
    config.update(overrides)
    check_reachable(bootstrap)
    try:
        return KafkaProducer(**config)
    except (KafkaError, OSError) as exc:
        raise BrokerUnavailable(f"Kafka at {bootstrap} is not reachable: {exc!r}") from exc


def make_consumer(
    bootstrap: str, settings: Settings, *, group_id: str | None, topics: Iterable[str], **overrides: Any
) -> KafkaConsumer:
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap.split(","),
        "group_id": group_id,
        "client_id": f"newswire-{group_id or 'reader'}",
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": 6000,
        "heartbeat_interval_ms": 2000,
        "max_poll_records": settings.batch_max_messages,
        "max_poll_interval_ms": 300_000,
    }
    config.update(overrides)
    check_reachable(bootstrap)
    try:
        return KafkaConsumer(*topics, **config)
    except (KafkaError, OSError) as exc:
        raise BrokerUnavailable(f"Kafka at {bootstrap} is not reachable: {exc!r}") from exc


def ensure_topics(bootstrap: str, settings: Settings, topics: Iterable[Topic] = contracts.ALL_TOPICS) -> TopicLimits:
    """Create the project's topics with explicit partition counts and their configs (``newswire.events`` is
    compacted; every topic's ``max.message.bytes`` is ``NEWSWIRE_MAX_MESSAGE_BYTES``, so that what the producer
    may send, Kafka accepts); existing topics are left as they are (raise their limit with Kafka's own tools).

    Returns each topic's size limit for the producer (:mod:`newswire.topiclimits`): the setting for the topics
    created with it, and for the others (existing ones, and ones created without the size config) the smaller of
    the setting and what the broker describes, with a warning naming any topic whose limit is lower.

    A broker that refuses a topic's configs (a policy, or no support for them) gets the topic without them and
    a warning: the consumers' guarantees never depend on compaction (they keep the highest version per key).
    """
    topics = list(topics)
    check_reachable(bootstrap)
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), client_id="newswire-admin")
    except (KafkaError, OSError) as exc:
        raise BrokerUnavailable(f"Kafka at {bootstrap} is not reachable: {exc!r}") from exc
    try:
        existing = set(admin.list_topics())
        # Topics whose limit is not known to be the setting: they are described once all exist.
        to_describe = [t.name for t in topics if t.name in existing]
        for topic in (t for t in topics if t.name not in existing):
            configs = {**dict(topic.configs), "max.message.bytes": str(settings.max_message_bytes)}
            try:
                created = _create_topic(admin, topic, settings, configs)
            except (InvalidConfigurationError, PolicyViolationError) as exc:
                # A policy that caps the size must not also cost the events topic its compaction: try the
                # topic's own configs alone before none at all.
                log.warning("broker refused configs %s for %s (%r); trying its own configs", configs, topic.name, exc)
                created = False  # without the size config: it has the broker's default
                try:
                    _create_topic(admin, topic, settings, dict(topic.configs))
                except (InvalidConfigurationError, PolicyViolationError) as again:
                    log.warning("broker refused configs of %s (%r); creating it without", topic.name, again)
                    _create_topic(admin, topic, settings, {})
            if not created:
                to_describe.append(topic.name)
            log.info("created topic %s", topic.name)
        return read_limits(admin, settings.max_message_bytes, to_describe)
    except KafkaError as exc:
        raise BrokerUnavailable(f"cannot create topics on {bootstrap}: {exc!r}") from exc
    finally:
        admin.close()


def _create_topic(admin: KafkaAdminClient, topic: Topic, settings: Settings, configs: dict[str, str]) -> bool:
    """Create ``topic`` with ``configs``; False if another process created it first (with its own configs)."""
    new = NewTopic(
        topic.name,
        num_partitions=settings.topic_partitions,
        replication_factor=settings.topic_replication,
        topic_configs=configs,
    )
    # Another process may create the topic between list and create.
    try:
        admin.create_topics([new], timeout_ms=15_000)
    except TopicAlreadyExistsError:
        return False
    return True


def open_publisher(bootstrap: str, settings: Settings, *, client_id: str, **overrides: Any) -> Publisher:
    """Ensure the topics exist (:func:`ensure_topics`) and return a :class:`Publisher` that keeps each record
    within its topic's limit; ``overrides`` as for :func:`make_producer`."""
    limits = ensure_topics(bootstrap, settings)
    return Publisher(make_producer(bootstrap, settings, client_id=client_id, limits=limits, **overrides), limits)


@dataclass
class Publisher:
    """Sends contract-checked messages and confirms them all at once.

    ``confirm()`` blocks until the broker acknowledged every message this thread sent since its last call and
    raises :class:`BrokerUnavailable` if any was not: callers mark work done only after it returns. Pending
    sends are tracked per thread so that one thread never confirms (or misses the failure of) another's.
    """

    producer: KafkaProducer
    #: Per topic limits from :func:`ensure_topics`; None: the producer's own limit for every topic.
    limits: TopicLimits | None = None
    _local: threading.local = field(default_factory=threading.local)
    _acknowledged: dict[tuple[str, int], int] = field(default_factory=dict)
    _acknowledged_lock: threading.Lock = field(default_factory=threading.Lock)
    _size_refusal: MessageTooLarge | None = None  # a broker refused a record for its size: see confirm

    @property
    def _pending(self) -> list[Any]:
        if not hasattr(self._local, "pending"):
            self._local.pending = []
        return self._local.pending

    @property
    def max_message_bytes(self) -> int:
        """The producer's own limit (``max_request_size``, from ``NEWSWIRE_MAX_MESSAGE_BYTES``)."""
        return int(self.producer.config["max_request_size"])

    def limit(self, topic: Topic) -> int:
        """The largest record sent to ``topic``: the producer's own limit, or the topic's where that is lower
        (a Kafka topic that existed with a lower ``max.message.bytes``, see :mod:`newswire.topiclimits`)."""
        if self.limits is None:
            return self.max_message_bytes
        return min(self.max_message_bytes, self.limits.of(topic.name))

    def _check_size(self, topic: Topic, key: str, value: bytes) -> None:
        size = self.record_size(key, value)
        limit = self.limit(topic)
        if size > limit:
            raise MessageTooLarge(topic.name, size, limit, topic_limit=limit < self.max_message_bytes)

    def encode(self, topic: Topic, key: str, message: dict[str, Any]) -> bytes:
        """The message's bytes, checked against its contract and against the size limit (:meth:`limit`).

        Raises :class:`ContractError` or :class:`MessageTooLarge`, before anything is sent. The size is the
        producer's own upper bound for one record (batch header and record overhead included), so what passes
        here is never refused by the producer for its size. Callers that decide an item's outcome before it
        is sent (ingest's entry threads) encode there and hand the bytes to :meth:`send_encoded`.
        """
        value = contracts.encode(topic, message)
        self._check_size(topic, key, value)
        return value

    @staticmethod
    def record_size(key: str, value: bytes) -> int:
        """What the producer counts against ``max_request_size`` for one record of ``key`` and ``value``: its
        upper bound for a batch holding only that record (the v2 record format, which every broker Newswire
        supports speaks; kafka-python's own per-producer estimate is a private method)."""
        return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(key.encode("utf-8"), value, []))

    def send(self, topic: Topic, key: str, message: dict[str, Any]) -> None:
        """Encode (see :meth:`encode`: may raise before sending) and send; :meth:`confirm` waits for the ack."""
        self._send(topic, key, self.encode(topic, key, message))

    def send_encoded(self, topic: Topic, key: str, value: bytes) -> None:
        """Send bytes :meth:`encode` returned for ``topic`` and ``key`` (:class:`MessageTooLarge` if they are over the
        limit after all, or once a broker has refused a record for its size, see :meth:`confirm`)."""
        # Bytes that bypassed encode are checked here too, so that a size refusal confirm() sees can only be
        # the broker's (or a batch's), never the producer's own check on one record.
        self._check_size(topic, key, value)
        self._send(topic, key, value)

    def _send(self, topic: Topic, key: str, value: bytes) -> None:
        """Hand bytes already checked against the size limit to the producer."""
        if self._size_refusal is not None:
            raise MessageTooLarge(topic.name, None, self.max_message_bytes, broker_refused=True) from self._size_refusal
        try:
            self._pending.append((topic.name, self.producer.send(topic.name, key=key.encode("utf-8"), value=value)))
        except _SIZE_REFUSALS as exc:
            raise MessageTooLarge(topic.name, len(value), self.max_message_bytes) from exc
        except KafkaError as exc:
            raise BrokerUnavailable(f"cannot send to {topic.name}: {exc!r}") from exc

    def confirm(self) -> int:
        """Wait for the broker's acknowledgement of everything this thread sent since its last call.

        Raises :class:`MessageTooLarge` (``broker_refused``, not retryable) when a Kafka broker refused a record
        for its size (its topic's ``max.message.bytes`` is below this producer's limit; records over the
        producer's own limit never get this far, see :meth:`send_encoded`), and :class:`BrokerUnavailable` for
        any other failure. The messages acknowledged before a failure still count in :meth:`acknowledged`.

        Why a broker's size refusal disables this publisher: kafka-python's idempotent producer treats a
        non-retriable broker error as fatal and fails every later batch with it, so each later confirm would
        report messages of any size as too large. The publisher says so once, plainly (a topic's
        ``max.message.bytes`` below ``NEWSWIRE_MAX_MESSAGE_BYTES`` is a configuration error), and refuses to
        send again; the task fails without retries and the operator raises the topic's limit.
        """
        pending, self._local.pending = self._pending, []
        acked = []
        try:
            self.producer.flush(timeout=ACK_TIMEOUT)
            for name, future in pending:
                try:
                    acked.append(future.get(timeout=ACK_TIMEOUT))
                except _SIZE_REFUSALS as exc:
                    self._size_refusal = MessageTooLarge(name, None, self.max_message_bytes, broker_refused=True)
                    raise self._size_refusal from exc
        except KafkaError as exc:
            raise BrokerUnavailable(f"broker did not acknowledge {len(pending)} message(s): {exc!r}") from exc
        finally:
            with self._acknowledged_lock:
                for meta in acked:
                    key = (meta.topic, meta.partition)
                    if meta.offset >= 0 and meta.offset + 1 > self._acknowledged.get(key, 0):
                        self._acknowledged[key] = meta.offset + 1
        return len(pending)

    def acknowledged(self, topic: Topic) -> dict[int, int]:
        """Per partition of ``topic``, the offset just past the last message the broker acknowledged from this
        publisher: a consumer that has read up to these offsets has seen everything confirmed so far."""
        with self._acknowledged_lock:
            return {partition: end for (name, partition), end in self._acknowledged.items() if name == topic.name}

    def close(self) -> None:
        try:
            self.producer.close(timeout=10)
        except KafkaError:  # closing must never mask the caller's own error
            log.warning("producer close failed", exc_info=True)


class FollowedProducer:
    """A producer of this process that a consumer of the same topic follows (``newswire run``: the transform
    consumes while ingest publishes), and where it ended.

    The consumer keeps waiting for messages while :meth:`running`; once :meth:`finish` recorded the producer's
    acknowledged end offsets, it stops as soon as it has read that far instead of waiting for an empty poll.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = True
        self._end: dict[int, int] | None = None

    def running(self) -> bool:
        with self._lock:
            return self._running

    def finish(self, end_offsets: Mapping[int, int] | None) -> None:
        """The producer is done; ``end_offsets`` as :meth:`Publisher.acknowledged`, or None when unknown (it
        failed): the consumer then falls back to waiting for an empty poll."""
        with self._lock:
            self._running = False
            self._end = dict(end_offsets) if end_offsets is not None else None

    def end_offsets(self) -> Mapping[int, int] | None:
        """None while the producer runs (or when its end is unknown), then its end offsets per partition."""
        with self._lock:
            return None if self._running or self._end is None else dict(self._end)


#: Longest single poll while a followed producer is still running: how soon its end is noticed.
FOLLOW_POLL_SLICE = 0.2


def poll_batch(
    consumer: KafkaConsumer,
    *,
    max_messages: int,
    idle_timeout: float,
    deadline: float,
    stop_when_caught_up: bool = False,
    end_offsets: Callable[[], Mapping[int, int] | None] | None = None,
) -> list[ConsumerRecord]:
    """Poll one bounded batch: until an empty poll, ``max_messages`` records, or ``deadline`` seconds; with
    ``stop_when_caught_up``, also as soon as every partition is read to its high watermark (a one-shot run
    then ends without waiting ``idle_timeout`` for the empty poll that would tell the same).

    ``end_offsets`` follows a producer of this process: it returns None while the producer runs, then the
    offsets past its last acknowledged message per partition (:meth:`Publisher.acknowledged`). From then on
    the batch ends as soon as every partition is read that far (and to its high watermark), without an idle
    poll; meanwhile polls last at most ``FOLLOW_POLL_SLICE`` so that moment is noticed at once.

    A batch is never bounded by ``end_offsets()``: Tansu answers it wrongly. Empty polls count only once the
    group has assigned partitions, because the first polls of a joining consumer are empty by design.
    """
    records: list[ConsumerRecord] = []
    stop_at = time.monotonic() + deadline
    while not consumer.assignment() and time.monotonic() < stop_at:
        for batch in consumer.poll(timeout_ms=500, max_records=max_messages).values():
            records.extend(batch)
    idle_until = time.monotonic() + idle_timeout
    while len(records) < max_messages and time.monotonic() < stop_at:
        produced = end_offsets() if end_offsets is not None else None
        if (stop_when_caught_up or produced is not None) and caught_up(consumer, produced):
            break  # what an empty poll would show, without waiting ``idle_timeout`` for it
        wait = min(idle_until, stop_at) - time.monotonic()
        if end_offsets is not None and produced is None:
            wait = min(wait, FOLLOW_POLL_SLICE)
        polled = consumer.poll(timeout_ms=max(1, int(wait * 1000)), max_records=max_messages - len(records))
        if polled:
            for batch in polled.values():
                records.extend(batch)
            idle_until = time.monotonic() + idle_timeout
        elif time.monotonic() >= idle_until:
            break
    return records


def caught_up(consumer: KafkaConsumer, at_least: Mapping[int, int] | None = None) -> bool:
    """Whether every assigned partition was read up to the high watermark its last fetch reported, and up to
    ``at_least`` (per partition number: offsets known to exist, such as a followed producer's acknowledged
    ones, which a high watermark fetched earlier may predate).

    The high watermark comes with each fetch response (unlike ``end_offsets()``, it is right on the embedded
    broker too); a partition not fetched yet has none, and then the answer is no.
    """
    assignment = consumer.assignment()
    if not assignment:
        return False
    for tp in assignment:
        highwater = consumer.highwater(tp)
        if highwater is None:
            return False
        if at_least:
            highwater = max(highwater, at_least.get(tp.partition, 0))
        if consumer.position(tp) < highwater:
            return False
    return True
