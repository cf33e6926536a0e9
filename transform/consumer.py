"""Read ``newswire.articles`` in bounded batches with a consumer group, committing only on request.

Offsets are committed by the caller after the warehouse transaction for the batch has committed, so a crash
anywhere before that replays the batch, and replays are harmless because every write is idempotent.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from kafka import KafkaConsumer
from kafka.errors import KafkaError

from newswire import contracts
from newswire.contracts.messages import ArticleMessage
from newswire.errors import BrokerUnavailable, ContractError
from newswire.messaging import make_consumer, poll_batch
from newswire.settings import Settings


@dataclass(frozen=True)
class Incoming:
    """One consumed record: the decoded message, or the contract error that makes it a dead letter."""

    topic: str
    partition: int
    offset: int
    key: str | None
    raw: bytes | None
    message: ArticleMessage | None
    error: ContractError | None


class ArticleConsumer:
    """A consumer-group member on the articles topic."""

    def __init__(self, settings: Settings, bootstrap: str, *, group_id: str | None = None) -> None:
        self.settings = settings
        # The embedded broker (no ``kafka_bootstrap`` configured) holds a new member's join for about half its
        # session timeout; Kafka itself refuses sessions under 6 s (group.min.session.timeout.ms), so only the
        # embedded broker gets a shorter one, and the transform's one-shot runs start a second sooner.
        embedded = {} if settings.kafka_bootstrap else {"session_timeout_ms": 3000, "heartbeat_interval_ms": 1000}
        self._consumer: KafkaConsumer = make_consumer(
            bootstrap,
            settings,
            group_id=group_id or settings.consumer_group,
            topics=[contracts.ARTICLES.name],
            **embedded,
        )
        self.drained = False

    def next_batch(
        self,
        *,
        stop_when_caught_up: bool = False,
        end_offsets: Callable[[], Mapping[int, int] | None] | None = None,
    ) -> list[Incoming]:
        """The next bounded batch; ``drained`` then tells whether it ended on an empty poll (or, with
        ``stop_when_caught_up``, read every partition to its high watermark). ``end_offsets``: a followed
        producer's end (:func:`newswire.messaging.poll_batch`)."""
        started = time.monotonic()
        try:
            records = poll_batch(
                self._consumer,
                max_messages=self.settings.batch_max_messages,
                idle_timeout=self.settings.poll_timeout,
                deadline=self.settings.batch_deadline,
                stop_when_caught_up=stop_when_caught_up,
                end_offsets=end_offsets,
            )
        except KafkaError as exc:
            raise BrokerUnavailable(f"cannot consume {contracts.ARTICLES.name}: {exc!r}") from exc
        # Short of a full batch and before the deadline: the poll that ended it was empty (or found every
        # partition at its high watermark), so there was nothing more to read. The caller can stop without
        # another ``poll_timeout`` of waiting for an empty batch.
        self.drained = (
            len(records) < self.settings.batch_max_messages
            and time.monotonic() - started < self.settings.batch_deadline
        )
        batch = []
        for r in records:
            message, error = None, None
            try:
                message = contracts.decode(contracts.ARTICLES, r.value)
            except ContractError as exc:
                error = exc
            key = r.key.decode("utf-8", "replace") if r.key is not None else None
            batch.append(Incoming(r.topic, r.partition, r.offset, key, r.value, message, error))
        return batch

    def commit(self) -> None:
        """Commit the positions of everything returned so far (after the warehouse commit)."""
        try:
            self._consumer.commit()
        except KafkaError as exc:
            raise BrokerUnavailable(f"offset commit failed: {exc!r}") from exc

    def rewind(self) -> None:
        """Go back to the last committed offsets, so an unprocessed batch is read again (e.g. warehouse down)."""
        for tp in self._consumer.assignment():
            committed = self._consumer.committed(tp)
            if committed is None:
                self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, committed)

    def close(self) -> None:
        with contextlib.suppress(KafkaError):
            self._consumer.close(autocommit=False)
