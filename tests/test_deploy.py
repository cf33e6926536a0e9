"""docker-compose.yml cannot run here (no Docker engine): check that it parses and agrees with the code."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import yaml

from ingest.feedlist import load_feed_list
from newswire.settings import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
AIRFLOW_SERVICES = ["airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"]


def newswire_env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in SERVICES[service]["environment"].items()}


def test_production_stack_has_kafka_kraft_postgres_and_airflow_components() -> None:
    assert {"kafka", "postgres", "airflow-init", *AIRFLOW_SERVICES} <= set(SERVICES)
    assert "broker,controller" in SERVICES["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    for name in ["kafka", "postgres", *AIRFLOW_SERVICES]:
        assert "healthcheck" in SERVICES[name], name
    for name in AIRFLOW_SERVICES:
        assert SERVICES[name]["build"] == "."
        assert SERVICES[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"


def test_named_volumes_are_declared_and_used() -> None:
    declared = set(COMPOSE["volumes"])
    used = set()
    for service in SERVICES.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                used.add(source)
    assert used and used <= declared


def test_newswire_environment_is_valid_settings(monkeypatch) -> None:
    env = newswire_env("airflow-scheduler")
    for key, value in env.items():
        if key.startswith("NEWSWIRE_"):
            assert key.removeprefix("NEWSWIRE_").lower() in Settings.model_fields, key
            monkeypatch.setenv(key, value)
    # The feed list is mounted from ./feeds; validate it from the repository side.
    mounts = dict(v.split(":")[1::-1] for v in SERVICES["airflow-scheduler"]["volumes"] if v.startswith("./"))
    container_dir = str(Path(env["NEWSWIRE_FEEDS"]).parent)
    local_feeds = REPO / mounts[container_dir] / Path(env["NEWSWIRE_FEEDS"]).name
    monkeypatch.setenv("NEWSWIRE_FEEDS", str(local_feeds))
    settings = load_settings()
    assert settings.allow_private_networks is False
    assert load_feed_list(local_feeds)


def test_bootstrap_and_warehouse_point_at_the_compose_services() -> None:
    env = newswire_env("airflow-scheduler")
    kafka = SERVICES["kafka"]["environment"]
    assert f"PLAINTEXT://{env['NEWSWIRE_KAFKA_BOOTSTRAP']}" in kafka["KAFKA_ADVERTISED_LISTENERS"]
    assert kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"  # topics come from ensure_topics()
    warehouse = urlsplit(env["NEWSWIRE_WAREHOUSE_URL"])
    assert warehouse.hostname == "postgres" and warehouse.port == 5432
    init_sql = (REPO / "deploy" / "postgres-init.sql").read_text()
    assert f"CREATE DATABASE {warehouse.path.lstrip('/')}" in init_sql
    assert f"CREATE ROLE {warehouse.username} LOGIN" in init_sql
    assert "newswire_fetch" in SERVICES["airflow-init"]["command"]  # the pool the ingest DAG uses


def test_image_serves_this_repositorys_dags() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "AIRFLOW__CORE__DAGS_FOLDER=/opt/newswire/dags" in dockerfile
    for package in ("newswire", "ingest", "transform", "dags"):
        assert f"COPY {package} ./{package}" in dockerfile
