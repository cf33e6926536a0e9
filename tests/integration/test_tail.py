"""`newswire tail`, the documented example consumer, reads a topic through the Kafka protocol."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from newswire import contracts
from newswire.messaging import Publisher, ensure_topics, make_producer

pytestmark = pytest.mark.integration


def event(i: int, version: int) -> dict:
    return {
        "schema_version": 1,
        "event_id": f"evt_{i}",
        "version": version,
        "title": f"Event {i}",
        "summary": "s",
        "first_seen_at": "2026-11-20T10:00:00Z",
        "last_seen_at": "2026-11-20T11:00:00Z",
        "article_count": 1,
        "source_count": 1,
        "sources": ["Wire"],
        "languages": ["en"],
        "articles": [],
        "updated_at": "2026-11-20T11:00:00Z",
    }


def tail(broker: str, *args: str) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWIRE_")}
    env["NEWSWIRE_KAFKA_BOOTSTRAP"] = broker
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "tail", "newswire.events", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def test_tail_prints_every_event_from_the_beginning_and_groups_resume(broker: str, make_settings) -> None:
    settings = make_settings(kafka_bootstrap=broker)
    ensure_topics(broker, settings)
    publisher = Publisher(make_producer(broker, settings, client_id="t"))
    for i, version in [(1, 1), (2, 1), (1, 2)]:
        publisher.send(contracts.EVENTS, f"evt_{i}", event(i, version))
    publisher.confirm()

    lines = tail(broker, "--from-beginning", "--max", "3", "--timeout", "60")
    assert sorted((x["key"], x["value"]["version"]) for x in lines) == [("evt_1", 1), ("evt_1", 2), ("evt_2", 1)]
    for line in lines:
        contracts.validate(contracts.EVENTS, line["value"])

    # A consumer group commits what it has read: the next tail of the group sees only newer messages.
    assert len(tail(broker, "--from-beginning", "--group", "svc", "--max", "3", "--timeout", "60")) == 3
    publisher.send(contracts.EVENTS, "evt_3", event(3, 1))
    publisher.confirm()
    publisher.close()
    later = tail(broker, "--from-beginning", "--group", "svc", "--max", "1", "--timeout", "60")
    assert [x["key"] for x in later] == ["evt_3"]
