"""Read ``newswire.articles`` in bounded batches, committing the offsets of a consumer group only on request.

Offsets are committed by the caller after the warehouse transaction for the batch has committed, so a crash
anywhere before that replays the batch, and replays are harmless because every write is idempotent.

The consumer does not join its group: it assigns itself every partition of the topic and starts from the
group's committed offsets, and commits under the group as a standalone member. Joining costs every one-shot
run a wait of seconds (the broker holds a new member's join: about half the session timeout on the embedded
broker, ``group.initial.rebalance.delay.ms`` on Kafka), and the group's partition split bought nothing: the
story state is one per warehouse, so two transforms must never share the topic anyway. What keeps them apart
is the run lock (:meth:`newswire.warehouse.Warehouse.exclusive`, taken by :func:`transform.stage.run_transform`
before this consumer is made), one per warehouse and not per group, since two groups on one warehouse would
still share its story state; and a member that did join the group (an older transform) makes Kafka refuse
these commits, so the two never both advance it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from kafka import KafkaConsumer, TopicPartition
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
    """A standalone consumer of every partition of the articles topic, committing under a consumer group.

    Create it only while holding the transform's run lock, one per warehouse whatever the group (see the
    module docstring)."""

    def __init__(self, settings: Settings, bootstrap: str, *, group_id: str | None = None) -> None:
        self.settings = settings
        self._consumer: KafkaConsumer = make_consumer(
            bootstrap, settings, group_id=group_id or settings.consumer_group, topics=[]
        )
        try:
            partitions = self._consumer.partitions_for_topic(contracts.ARTICLES.name)
            if not partitions:  # ensure_topics creates it first; absent only if the broker lost it meanwhile
                raise BrokerUnavailable(f"topic {contracts.ARTICLES.name} has no partitions")
            # Positions start at the group's committed offsets (auto_offset_reset where it has none).
            self._consumer.assign([TopicPartition(contracts.ARTICLES.name, p) for p in sorted(partitions)])
        except KafkaError as exc:
            self.close()
            raise BrokerUnavailable(f"cannot assign {contracts.ARTICLES.name}: {exc!r}") from exc
        except BaseException:
            self.close()
            raise
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
