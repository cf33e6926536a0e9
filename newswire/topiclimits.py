"""How large a record each topic takes: the smaller of ``NEWSWIRE_MAX_MESSAGE_BYTES`` and the topic's own limit.

Why it is read at start-up: topics Newswire creates get ``max.message.bytes`` from the setting, but a topic that
already exists keeps its own. A record within the setting and over the topic's limit would be refused by a
Kafka broker, and kafka-python's idempotent producer treats that refusal as fatal: every later batch fails with
it, so one long article would stop the whole publisher. Knowing each topic's limit before sending lets the
publisher refuse such a record itself, alone (an article becomes a dead letter, an event is cut), exactly like a
record over the setting.

Kafka compares ``max.message.bytes`` with a whole record batch, its header included, and the publisher sizes a
record as the batch holding it alone (``Publisher.record_size``: batch header, record overhead, key and value),
so the two compare directly and the topic's value is used as it is: subtracting the batch header again would
count it twice. The size is counted before compression, which for JSON is an upper bound of what the broker
sees. The producer's ``batch_size`` stays within the smallest limit, so no batch of small records outgrows it.

Where a topic reports no ``max.message.bytes``, the broker's ``message.max.bytes`` (the default of topics that
set none) stands in; where neither is reported (a broker without DescribeConfigs, or the embedded broker, which
reports the configs a topic was created with and no broker configs), the setting is used, and said once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import KafkaError

from newswire.errors import TopicLimitTooLow
from newswire.settings import MIN_MESSAGE_BYTES

log = logging.getLogger(__name__)

#: A topic's own limit (Kafka's topic config), and the broker's default for topics without one.
TOPIC_CONFIG = "max.message.bytes"
BROKER_CONFIG = "message.max.bytes"


@dataclass(frozen=True)
class TopicLimits:
    """The largest record the producer may send to each topic: ``setting`` unless ``topics`` has a lower one."""

    setting: int
    topics: Mapping[str, int] = field(default_factory=dict)

    def of(self, topic: str) -> int:
        return min(self.setting, self.topics.get(topic, self.setting))

    @property
    def smallest(self) -> int:
        """The lowest limit of any topic: the producer's ``batch_size`` must stay within it (a batch holds
        records of one partition, but the producer has one ``batch_size`` for all)."""
        return min([self.setting, *self.topics.values()])


def configured_bytes(configs: Mapping[str, Any] | None, name: str) -> int | None:
    """The value of config ``name`` in one resource's part of a ``describe_configs`` answer (kafka-python 3:
    ``{name: {"value": "1048588", "config_source": ..., ...}}``), or None when absent, hidden or not a size."""
    entry = (configs or {}).get(name)
    value = entry.get("value") if isinstance(entry, Mapping) else None
    try:
        size = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return size if size > 0 else None


def broker_default(described: Mapping[str, Any]) -> int | None:
    """The lowest ``message.max.bytes`` of the brokers in a ``describe_configs`` answer for BROKER resources
    (``{"broker": {"1": {...}}}``): a topic without a limit of its own takes its leader's, whichever it is."""
    sizes = [configured_bytes(configs, BROKER_CONFIG) for configs in described.get("broker", {}).values()]
    known = [size for size in sizes if size is not None]
    return min(known) if known else None


def resolve(
    setting: int, names: Iterable[str], described: Mapping[str, Any], default: int | None = None
) -> TopicLimits:
    """Each topic's limit from a ``describe_configs`` answer for TOPIC resources (``{"topic": {name: {...}}}``):
    its ``max.message.bytes``, else the brokers' ``default``, else the setting (one warning lists those).

    A topic whose limit is below the setting gets a warning naming both: its records over that limit are
    refused before sending (raise the topic's limit with Kafka's tools, or lower the setting, to silence it).
    One below :data:`~newswire.settings.MIN_MESSAGE_BYTES` raises :class:`~newswire.errors.TopicLimitTooLow`
    (not retryable): a dead letter or an empty event might not fit there, and a dead letter failing after its
    chunk's articles were confirmed would leave the chunk unrecorded, republished by every re-run.
    """
    topics = described.get("topic", {})
    limits: dict[str, int] = {}
    unknown: list[str] = []
    for name in names:
        own = configured_bytes(topics.get(name), TOPIC_CONFIG)
        limit = own if own is not None else default
        if limit is None:
            unknown.append(name)
            continue
        source = TOPIC_CONFIG if own is not None else f"the broker's {BROKER_CONFIG}"
        if limit < MIN_MESSAGE_BYTES:
            raise TopicLimitTooLow(name, limit, MIN_MESSAGE_BYTES, source=source)
        if limit < setting:
            log.warning(
                "topic %s takes records up to %d bytes (%s), below NEWSWIRE_MAX_MESSAGE_BYTES (%d): larger ones"
                " are refused before sending (dead-lettered, events cut); raise the topic's max.message.bytes"
                " or lower the setting",
                name,
                limit,
                source,
                setting,
            )
            limits[name] = limit
    if unknown:
        log.warning(
            "the broker reported no %s for %s (nor a %s): assuming NEWSWIRE_MAX_MESSAGE_BYTES (%d)",
            TOPIC_CONFIG,
            ", ".join(unknown),
            BROKER_CONFIG,
            setting,
        )
    return TopicLimits(setting, limits)


def read_limits(admin: KafkaAdminClient, setting: int, names: Iterable[str]) -> TopicLimits:
    """Describe ``names`` (existing topics) and resolve their limits; a broker that does not answer
    DescribeConfigs leaves every topic at the setting, said once.

    Every config of a topic is asked for (``configs=None``), not just the one needed: the embedded broker drops
    the connection when a DescribeConfigs request names its keys. ``config_filter='all'``: Kafka reports a topic
    without an override of its own with the broker's value as its ``max.message.bytes`` (source
    ``DEFAULT_CONFIG`` or ``STATIC_BROKER_CONFIG``), which kafka-python's default filter ('modified') hides.
    The brokers are asked only when some topic reported no limit.
    """
    names = list(names)
    if not names:
        return TopicLimits(setting)
    try:
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names], config_filter="all"
        )
    except (KafkaError, OSError) as exc:
        log.warning(
            "the broker did not describe the configs of %s (%r): assuming NEWSWIRE_MAX_MESSAGE_BYTES (%d) for them",
            ", ".join(names),
            exc,
            setting,
        )
        return TopicLimits(setting)
    default = None
    if any(configured_bytes(described.get("topic", {}).get(name), TOPIC_CONFIG) is None for name in names):
        try:
            brokers = [str(broker["broker_id"]) for broker in admin.describe_cluster()["brokers"]]
            default = broker_default(
                admin.describe_configs(
                    [ConfigResource(ConfigResourceType.BROKER, broker) for broker in brokers], config_filter="all"
                )
            )
        except (KafkaError, OSError) as exc:  # resolve() says which topics this leaves at the setting
            log.info("the broker did not describe its own configs (%r)", exc)
    return resolve(setting, names, described, default)
