from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import pytest

from newswire import contracts
from newswire.broker import EmbeddedBroker, bootstrap_servers, port_accepts, running_embedded_broker
from newswire.errors import BrokerUnavailable
from newswire.messaging import Publisher, ensure_topics, make_consumer, make_producer, poll_batch


def _dead_letter(i: int) -> dict:
    return {
        "schema_version": 1,
        "dead_letter_id": f"dl{i}",
        "stage": "extract",
        "reason": "no_body",
        "message": "m",
        "created_at": "2026-01-01T00:00:00Z",
        "attempts": 1,
    }


def test_embedded_broker_starts_and_stops_without_leftovers() -> None:
    broker = EmbeddedBroker().start()
    pid, port = broker.pid, broker.port
    assert port_accepts("127.0.0.1", port)
    broker.stop()
    assert not port_accepts("127.0.0.1", port)
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()


def test_bootstrap_servers_shares_one_embedded_broker_through_home(make_settings) -> None:
    settings = make_settings()
    with bootstrap_servers(settings) as first:
        assert running_embedded_broker(settings.home) == first
        with bootstrap_servers(settings) as second:
            assert second == first
    assert running_embedded_broker(settings.home) is None


def test_configured_bootstrap_is_used_as_is(make_settings) -> None:
    with bootstrap_servers(make_settings(kafka_bootstrap="kafka.internal:9092")) as bootstrap:
        assert bootstrap == "kafka.internal:9092"


def test_unreachable_broker_fails_fast_with_a_clear_error(make_settings) -> None:
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="not reachable"):
        make_producer("127.0.0.1:1", make_settings(), client_id="t")
    assert time.monotonic() - started < 10


def test_publish_confirm_consume_and_commit(broker: str, make_settings) -> None:
    settings = make_settings(batch_max_messages=30)
    ensure_topics(broker, settings)
    ensure_topics(broker, settings)  # idempotent
    publisher = Publisher(make_producer(broker, settings, client_id="t"))
    for i in range(50):
        publisher.send(contracts.DEAD_LETTERS, f"k{i}", _dead_letter(i))
    assert publisher.confirm() == 50
    publisher.close()

    consumer = make_consumer(broker, settings, group_id="g", topics=[contracts.DEAD_LETTERS.name])
    first = poll_batch(consumer, max_messages=30, idle_timeout=1.0, deadline=20)
    assert len(first) == 30
    consumer.commit()
    consumer.close()
    # A restarted member of the group resumes after the committed offsets.
    consumer = make_consumer(broker, settings, group_id="g", topics=[contracts.DEAD_LETTERS.name])
    rest = poll_batch(consumer, max_messages=100, idle_timeout=1.0, deadline=20)
    consumer.close()
    assert len(rest) == 20
    ids = {json.loads(r.value)["dead_letter_id"] for r in first + rest}
    assert ids == {f"dl{i}" for i in range(50)}


def test_broker_dies_with_the_process_that_started_it() -> None:
    """A task or test killed with SIGKILL must not leave its embedded broker running."""
    import os
    import signal
    import subprocess
    import sys

    code = (
        "from newswire.broker import EmbeddedBroker; import time, sys; "
        "b = EmbeddedBroker().start(); print(b.pid, b.port, flush=True); time.sleep(60)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    pid, port = (int(x) for x in parent.stdout.readline().split())
    assert port_accepts("127.0.0.1", port)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and port_accepts("127.0.0.1", port, 0.2):
        time.sleep(0.1)
    assert not port_accepts("127.0.0.1", port)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def test_created_topics_get_the_message_size_limit_and_a_refusal_drops_the_configs(
    make_settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kafka checks each batch against the topic's ``max.message.bytes``: topics Newswire creates get the
    producer's limit, beside their own configs, and are not described (their limit is the setting); a broker
    refusing configs gets each topic without them, which then have the broker's default limit."""
    from kafka.errors import InvalidConfigurationError

    from newswire import messaging

    created: list[tuple[str, dict[str, str]]] = []

    class Admin:
        refuse = False

        def __init__(self, **_: object) -> None:
            pass

        def list_topics(self) -> list[str]:
            return []

        def create_topics(self, topics: list, timeout_ms: int) -> None:
            (topic,) = topics
            if Admin.refuse and topic.topic_configs:
                raise InvalidConfigurationError("no configs here")
            created.append((topic.name, dict(topic.topic_configs)))

        def describe_configs(self, resources: list, config_filter: str) -> dict:
            described.append([r.name for r in resources])
            if resources[0].resource_type.name == "BROKER":
                return {"broker": {"1": {"message.max.bytes": {"value": "1048588"}}}}
            return {"topic": {r.name: {} for r in resources}}  # as if not known yet: no configs

        def describe_cluster(self) -> dict:
            return {"brokers": [{"broker_id": 1}]}

        def close(self) -> None:
            pass

    described: list[list[str]] = []
    monkeypatch.setattr(messaging, "check_reachable", lambda bootstrap: None)
    monkeypatch.setattr(messaging, "KafkaAdminClient", Admin)
    limits = ensure_topics("kafka:9092", make_settings(max_message_bytes=2 << 20))
    assert described == [] and limits.smallest == 2 << 20
    by_name = dict(created)
    assert set(by_name) == {t.name for t in contracts.ALL_TOPICS}
    for topic in contracts.ALL_TOPICS:
        assert by_name[topic.name] == {**dict(topic.configs), "max.message.bytes": str(2 << 20)}
    created.clear()
    Admin.refuse = True
    limits = ensure_topics("kafka:9092", make_settings(max_message_bytes=2 << 20))
    assert created == [(t.name, {}) for t in contracts.ALL_TOPICS]
    names = [t.name for t in contracts.ALL_TOPICS]
    assert described == [names, ["1"]]  # the topics, then (none reported a limit) the broker's default
    assert {name: limits.of(name) for name in names} == dict.fromkeys(names, 1048588)
