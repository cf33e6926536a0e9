from __future__ import annotations

from pathlib import Path

import pytest

from newswire import messaging
from newswire.errors import SettingsError
from newswire.settings import load_settings, redact_url
from newswire.topiclimits import TopicLimits


def test_defaults_use_embedded_broker_and_duckdb_under_home(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "state")
    assert settings.kafka_bootstrap is None
    assert settings.allow_private_networks is False
    expected = f"duckdb:///{(tmp_path / 'state' / 'warehouse.duckdb').resolve()}?memory_limit=256MB"
    assert settings.resolved_warehouse_url == expected


def test_duckdb_memory_limit_is_added_unless_the_url_sets_one(tmp_path: Path) -> None:
    given = load_settings(warehouse_url=f"duckdb:///{tmp_path}/w.duckdb?threads=1", duckdb_memory_limit="1GB")
    assert given.resolved_warehouse_url == f"duckdb:///{tmp_path}/w.duckdb?threads=1&memory_limit=1GB"
    own = load_settings(warehouse_url=f"duckdb:///{tmp_path}/w.duckdb?memory_limit=64MB")
    assert own.resolved_warehouse_url == f"duckdb:///{tmp_path}/w.duckdb?memory_limit=64MB"
    with pytest.raises(SettingsError, match="NEWSWIRE_DUCKDB_MEMORY_LIMIT"):
        load_settings(duckdb_memory_limit="1GB'; DROP TABLE articles; --")


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSWIRE_KAFKA_BOOTSTRAP", "kafka-1:9092, kafka-2:9092")
    monkeypatch.setenv("NEWSWIRE_ALLOW_PRIVATE_NETWORKS", "true")
    monkeypatch.setenv("NEWSWIRE_WAREHOUSE_URL", "postgresql://nw@db:5432/newswire")
    settings = load_settings()
    assert settings.kafka_bootstrap == "kafka-1:9092,kafka-2:9092"
    assert settings.allow_private_networks is True
    assert settings.resolved_warehouse_url == "postgresql://nw@db:5432/newswire"


def test_every_invalid_value_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSWIRE_KAFKA_BOOTSTRAP", "no-port")
    monkeypatch.setenv("NEWSWIRE_WAREHOUSE_URL", "mysql://x")
    monkeypatch.setenv("NEWSWIRE_TOPIC_PARTITIONS", "0")
    with pytest.raises(SettingsError) as err:
        load_settings()
    text = str(err.value)
    for name in ("NEWSWIRE_KAFKA_BOOTSTRAP", "NEWSWIRE_WAREHOUSE_URL", "NEWSWIRE_TOPIC_PARTITIONS"):
        assert name in text


def test_unknown_setting_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "nw.toml"
    config.write_text('kafka_bootstrapp = "typo:9092"\n')
    monkeypatch.setenv("NEWSWIRE_CONFIG", str(config))
    with pytest.raises(SettingsError, match="kafka_bootstrapp"):
        load_settings()


def test_toml_file_is_read_and_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "nw.toml"
    config.write_text('kafka_bootstrap = "from-file:9092"\nhost_interval = 2.5\n')
    monkeypatch.setenv("NEWSWIRE_CONFIG", str(config))
    assert load_settings().host_interval == 2.5
    monkeypatch.setenv("NEWSWIRE_KAFKA_BOOTSTRAP", "from-env:9092")
    assert load_settings().kafka_bootstrap == "from-env:9092"


def test_missing_config_file_and_feed_list_are_clear_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSWIRE_CONFIG", str(tmp_path / "absent.toml"))
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings()
    monkeypatch.delenv("NEWSWIRE_CONFIG")
    with pytest.raises(SettingsError, match="NEWSWIRE_FEEDS"):
        load_settings(feeds=tmp_path / "feeds.opml")


def test_passwords_are_redacted_for_logs() -> None:
    assert redact_url("postgresql://nw:s3cret@db:5432/x") == "postgresql://nw:***@db:5432/x"
    settings = load_settings(warehouse_url="postgresql://nw:s3cret@db:5432/x")
    assert "s3cret" not in str(settings.redacted())


def test_max_message_bytes_is_bounded_and_reaches_the_producer(monkeypatch: pytest.MonkeyPatch) -> None:
    """The producer's size limit: below 64 KiB an event without its member list or a dead letter without its
    payload might not fit (and would then block the outbox or an ingest chunk on every run); 16 MiB is the cap
    chosen here (kafka-python 3.0.12 itself only compares a record with ``max_request_size``). A valid value
    from the environment is what ``make_producer`` passes on, and its batches never outgrow it."""
    for bad in ("1024", str(64 * 1024 - 1), "0", str(16 * 1024 * 1024 + 1), "lots"):
        with pytest.raises(SettingsError, match="NEWSWIRE_MAX_MESSAGE_BYTES"):
            load_settings(max_message_bytes=bad)
    monkeypatch.setenv("NEWSWIRE_MAX_MESSAGE_BYTES", "65536")
    assert load_settings().max_message_bytes == 65536
    assert load_settings(max_message_bytes=16 * 1024 * 1024).max_message_bytes == 16 * 1024 * 1024

    configs: list[dict[str, object]] = []
    monkeypatch.setattr(messaging, "check_reachable", lambda bootstrap: None)
    monkeypatch.setattr(messaging, "KafkaProducer", lambda **config: configs.append(config))
    messaging.make_producer("kafka:9092", load_settings(), client_id="t")
    messaging.make_producer("kafka:9092", load_settings(max_message_bytes=4 << 20), client_id="t")
    messaging.make_producer("kafka:9092", load_settings(), client_id="t", max_request_size=4096)
    lower = TopicLimits(4 << 20, {"newswire.events": 100_000})  # an existing topic's lower max.message.bytes
    messaging.make_producer("kafka:9092", load_settings(max_message_bytes=4 << 20), client_id="t", limits=lower)
    assert [(c["max_request_size"], c["batch_size"]) for c in configs] == [
        (65536, 65536),  # a batch of small records never outgrows the topics' max.message.bytes
        (4 << 20, 262_144),
        (4096, 65536),  # a test's override
        (4 << 20, 100_000),  # nor the lowest topic's
    ]


def test_transform_hold_seconds_stays_below_the_warehouse_lock_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """Other processes wait for a held DuckDB file up to the warehouse's lock timeout (120 s), and the batch running
    when a span's seconds are up still finishes held: more than 30 s, or a negative span, is refused at start."""
    assert load_settings().transform_hold_seconds == 5.0
    assert load_settings(transform_hold_seconds="30").transform_hold_seconds == 30.0
    for bad in ("-1", "31", "60", "soon"):
        with pytest.raises(SettingsError, match="NEWSWIRE_TRANSFORM_HOLD_SECONDS"):
            load_settings(transform_hold_seconds=bad)
    monkeypatch.setenv("NEWSWIRE_TRANSFORM_HOLD_SECONDS", "0")
    assert load_settings().transform_hold_seconds == 0.0
