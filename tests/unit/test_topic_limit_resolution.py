"""Each topic's size limit, resolved from kafka-python's ``describe_configs`` answers (newswire.topiclimits).

The answers below have the shape kafka-python 3 returns with ``config_filter='all'``: Apache Kafka reports every
topic's effective ``max.message.bytes`` (an override, or the broker's value as ``DEFAULT_CONFIG`` /
``STATIC_BROKER_CONFIG``); the embedded broker reports only the configs a topic was created with, and no broker
configs at all.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from kafka.errors import KafkaConnectionError, UnknownBrokerIdError

from newswire.errors import NewswireError, TopicLimitTooLow
from newswire.settings import MIN_MESSAGE_BYTES
from newswire.topiclimits import TopicLimits, broker_default, configured_bytes, read_limits, resolve

MIB = 1 << 20


def _config(value: str | None, source: str = "DYNAMIC_TOPIC_CONFIG") -> dict[str, Any]:
    return {"value": value, "read_only": False, "config_source": source, "is_sensitive": False, "synonyms": []}


def _kafka_topic(limit: str, source: str = "DYNAMIC_TOPIC_CONFIG") -> dict[str, Any]:
    return {
        "cleanup.policy": _config("delete", "DEFAULT_CONFIG"),
        "max.message.bytes": _config(limit, source),
        "retention.ms": _config("604800000", "DEFAULT_CONFIG"),
    }


def test_a_topic_below_the_setting_gets_its_own_limit_and_a_warning_naming_both(
    caplog: pytest.LogCaptureFixture,
) -> None:
    described = {
        "topic": {
            "newswire.articles": _kafka_topic("500000"),
            "newswire.events": _kafka_topic("1048588", "STATIC_BROKER_CONFIG"),  # the broker's, above the setting
        }
    }
    with caplog.at_level(logging.WARNING, logger="newswire.topiclimits"):
        limits = resolve(MIB, ["newswire.articles", "newswire.events"], described)
    assert limits.of("newswire.articles") == 500_000
    assert limits.of("newswire.events") == MIB  # never above the setting
    assert limits.of("newswire.dead-letters") == MIB  # a topic not described: the setting
    assert limits.smallest == 500_000
    (record,) = caplog.records
    assert "newswire.articles" in record.getMessage()
    assert "500000" in record.getMessage() and str(MIB) in record.getMessage()


def test_a_topic_without_a_limit_of_its_own_takes_the_brokers_default() -> None:
    described = {"topic": {"newswire.articles": {"cleanup.policy": _config("delete")}, "newswire.events": {}}}
    brokers = {"broker": {"1": {"message.max.bytes": _config("800000")}, "2": {"message.max.bytes": _config("900000")}}}
    default = broker_default(brokers)
    assert default == 800_000  # the lowest: a topic's partitions may lead on either broker
    limits = resolve(MIB, ["newswire.articles", "newswire.events"], described, default)
    assert (limits.of("newswire.articles"), limits.of("newswire.events")) == (800_000, 800_000)


def test_nothing_reported_leaves_the_setting_and_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    """The embedded broker: topics created without the config report none, the broker reports nothing."""
    described = {"topic": {"newswire.articles": {}, "newswire.events": {"cleanup.policy": _config("compact")}}}
    with caplog.at_level(logging.WARNING, logger="newswire.topiclimits"):
        limits = resolve(MIB, ["newswire.articles", "newswire.events"], described, broker_default({"broker": {}}))
    assert limits == TopicLimits(MIB)
    (record,) = caplog.records
    assert "newswire.articles, newswire.events" in record.getMessage() and str(MIB) in record.getMessage()


@pytest.mark.parametrize("value", [None, "", "lots", "0", "-1"])
def test_a_value_that_is_not_a_size_counts_as_not_reported(value: str | None) -> None:
    assert configured_bytes({"max.message.bytes": _config(value)}, "max.message.bytes") is None
    limits = resolve(MIB, ["t"], {"topic": {"t": {"max.message.bytes": _config(value)}}}, 700_000)
    assert limits.of("t") == 700_000


def test_the_embedded_brokers_answer_for_a_topic_created_with_a_lower_limit() -> None:
    """What Tansu 0.6 answers (measured): the creation config, with source DEFAULT_CONFIG (which kafka-python's
    default 'modified' filter would hide: read_limits asks for 'all')."""
    described = {
        "topic": {
            "low": {
                "max.message.bytes": _config("70000", "DEFAULT_CONFIG"),
                "cleanup.policy": _config("compact", "DEFAULT_CONFIG"),
            }
        }
    }
    assert resolve(MIB, ["low"], described).of("low") == 70_000


class _Admin:
    """What read_limits asks of a KafkaAdminClient, answering from fixed data or failing like a broker that
    does not serve DescribeConfigs."""

    def __init__(self, topics: dict[str, Any] | Exception, brokers: dict[str, Any] | Exception) -> None:
        self.topics, self.brokers = topics, brokers
        self.asked: list[tuple[str, list[str], Any, str]] = []

    def describe_configs(self, resources: list[Any], config_filter: str) -> dict[str, Any]:
        kind = resources[0].resource_type.name
        self.asked.append((kind, [r.name for r in resources], resources[0].configs, config_filter))
        answer = self.topics if kind == "TOPIC" else self.brokers
        if isinstance(answer, Exception):
            raise answer
        return answer

    def describe_cluster(self) -> dict[str, Any]:
        return {"brokers": [{"broker_id": 7}]}


def test_read_limits_asks_for_every_config_and_the_brokers_only_when_needed() -> None:
    admin = _Admin({"topic": {"a": _kafka_topic("300000"), "b": _kafka_topic("2000000")}}, UnknownBrokerIdError())
    limits = read_limits(admin, MIB, ["a", "b"])  # type: ignore[arg-type]
    assert (limits.of("a"), limits.of("b")) == (300_000, MIB)
    # All keys (the embedded broker drops a request naming keys), all sources (defaults hold Kafka's limit).
    assert admin.asked == [("TOPIC", ["a", "b"], None, "all")]

    admin = _Admin({"topic": {"a": {}, "b": _kafka_topic("300000")}}, {"broker": {"7": _broker(600_000)}})
    limits = read_limits(admin, MIB, ["a", "b"])  # type: ignore[arg-type]
    assert (limits.of("a"), limits.of("b")) == (600_000, 300_000)
    assert [(kind, names) for kind, names, _, _ in admin.asked] == [("TOPIC", ["a", "b"]), ("BROKER", ["7"])]


def _broker(limit: int) -> dict[str, Any]:
    return {"message.max.bytes": _config(str(limit), "STATIC_BROKER_CONFIG")}


def test_a_broker_that_does_not_describe_configs_leaves_the_setting(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="newswire.topiclimits"):
        limits = read_limits(_Admin(KafkaConnectionError("dropped"), {}), MIB, ["a", "b"])  # type: ignore[arg-type]
        unanswered_brokers = read_limits(
            _Admin({"topic": {"a": {}, "b": {}}}, UnknownBrokerIdError()),  # type: ignore[arg-type]
            MIB,
            ["a", "b"],
        )
    assert limits == unanswered_brokers == TopicLimits(MIB)
    assert len(caplog.records) == 2  # once per call, naming the topics, never once per topic
    assert all("a, b" in r.getMessage() for r in caplog.records)
    assert read_limits(_Admin(AssertionError("not asked"), {}), MIB, []) == TopicLimits(MIB)  # type: ignore[arg-type]


def test_a_topic_below_the_minimum_is_refused_at_start_up_naming_it_and_both_limits() -> None:
    """Below 64 KiB a dead letter without its payload (or an event without its members) may not fit: a dead letter
    failing after its chunk's articles were confirmed would leave the chunk unrecorded, republished on re-runs."""
    described = {"topic": {"ok": _kafka_topic(str(MIN_MESSAGE_BYTES)), "tiny": _kafka_topic("2000")}}
    with pytest.raises(TopicLimitTooLow) as caught:
        resolve(MIB, ["ok", "tiny"], described)
    error = caught.value
    assert isinstance(error, NewswireError) and not error.retryable and error.reason == "topic_limit_too_low"
    assert (error.topic, error.limit, error.minimum) == ("tiny", 2000, MIN_MESSAGE_BYTES)
    assert "tiny" in str(error) and "2,000" in str(error) and f"{MIN_MESSAGE_BYTES:,}" in str(error)
    # The minimum itself is accepted, and a topic taking the brokers' default is held to it as well.
    assert resolve(MIB, ["ok"], described).of("ok") == MIN_MESSAGE_BYTES
    admin = _Admin({"topic": {"a": {}}}, {"broker": {"7": _broker(MIN_MESSAGE_BYTES - 1)}})
    with pytest.raises(TopicLimitTooLow, match=r"message\.max\.bytes"):
        read_limits(admin, MIB, ["a"])  # type: ignore[arg-type]
