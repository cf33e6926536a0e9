"""docker-compose.yml cannot run here (no Docker engine): check that it parses and agrees with the code."""

from __future__ import annotations

import os
import shlex
import subprocess
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from setuptools import find_packages

from devtools.stack_executor import ExecutorConfig, airflow_env
from ingest.feedlist import load_feed_list
from newswire.settings import Settings, load_settings
from pipeline.cli import build_parser

REPO = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
AIRFLOW_SERVICES = [
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
]


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
    for package in ("newswire", "ingest", "transform", "pipeline", "dags"):
        assert f"COPY {package} ./{package}" in dockerfile


def image_packages() -> list[str]:
    """The packages ``pip install .`` puts in the image: pyproject's package search over what the Dockerfile copies."""
    copied = {
        shlex.split(line)[1].rstrip("/")
        for line in (REPO / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ") and "--from" not in line
    }
    found = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    return sorted(p for p in find_packages(str(REPO), include=found["include"]) if p.split(".")[0] in copied)


def test_image_installs_no_development_tooling() -> None:
    packages = image_packages()
    assert {"newswire", "ingest", "transform", "pipeline"} <= set(packages)
    assert not [p for p in packages if p.split(".")[0] == "devtools"]
    modules = {m.stem for p in packages for m in (REPO / p.replace(".", "/")).glob("*.py")}
    assert modules.isdisjoint({"stack", "stack_executor", "devserver", "demo", "local_airflow"})
    # The dev tools' corpus and the tests' fixtures stay out too.
    assert not any(line.split()[1].startswith(("tests", "devtools")) for line in _copy_lines())


def test_the_installed_packages_carry_their_data_files() -> None:
    """Data the code loads at import (schemas, migrations, the gazetteer) must be package data, or an installed
    wheel (the image) would not have it."""
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = {path for package, globs in declared.items() for g in globs for path in (REPO / package).glob(g)}
    needed = [
        *(REPO / "newswire" / "contracts" / "schemas").glob("*.json"),
        *(REPO / "newswire" / "warehouse" / "migrations").glob("*.sql"),
        *(REPO / "transform" / "data").glob("*"),
    ]
    assert len(needed) >= 4 and REPO / "transform" / "data" / "gazetteer.json" in needed
    assert set(needed) <= shipped


def _copy_lines() -> list[str]:
    return [line for line in (REPO / "Dockerfile").read_text().splitlines() if line.startswith("COPY ")]


# -- CeleryExecutor: the same shape as `make up EXECUTOR=celery` -------------------------------------------------


def test_celery_workers_are_a_scalable_service_with_a_health_check() -> None:
    worker = SERVICES["airflow-worker"]
    assert worker["command"] == "airflow celery worker"
    assert worker["image"] == SERVICES["airflow-scheduler"]["image"]
    # `docker compose up --scale airflow-worker=N` refuses services with a fixed name or published port.
    assert "container_name" not in worker and "ports" not in worker
    assert (
        "inspect ping" in worker["healthcheck"]["test"][-1]
        and "celery@$${HOSTNAME}" in worker["healthcheck"]["test"][-1]
    )


def test_redis_is_the_celery_broker_and_every_airflow_service_waits_for_it() -> None:
    assert "healthcheck" in SERVICES["redis"]
    broker = urlsplit(newswire_env("airflow-worker")["AIRFLOW__CELERY__BROKER_URL"])
    assert broker.scheme == "redis" and broker.hostname == "redis"
    for name in AIRFLOW_SERVICES:
        assert SERVICES[name]["depends_on"]["redis"]["condition"] == "service_healthy", name
        assert newswire_env(name)["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name


def test_celery_configuration_matches_the_local_stacks() -> None:
    """Every executor key `make up EXECUTOR=celery` sets has the same value here, for compose's URLs."""
    env = newswire_env("airflow-worker")
    metadata = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("postgresql+psycopg://", "postgresql://")
    executor = ExecutorConfig(
        "celery",
        workers=1,
        worker_concurrency=int(env["AIRFLOW__CELERY__WORKER_CONCURRENCY"]),
        broker_url=env["AIRFLOW__CELERY__BROKER_URL"],
        database_url=metadata,
    )
    expected = airflow_env(executor, Path("/opt/airflow"), parallelism=int(env["AIRFLOW__CORE__PARALLELISM"]))
    assert {k: env.get(k) for k in expected} == expected
    # The metadata DB (also the result backend) is created by the postgres service's init script.
    database = urlsplit(metadata)
    init_sql = (REPO / "deploy" / "postgres-init.sql").read_text()
    assert database.hostname == "postgres" and f"CREATE DATABASE {database.path.lstrip('/')}" in init_sql
    # Task processes on the workers authenticate to the api-server with tokens signed by the shared secret.
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] and env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith(
        "http://airflow-apiserver:8080/"
    )


def test_image_installs_the_celery_provider() -> None:
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.startswith("apache-airflow-providers-celery") for d in dependencies)
    # the project's wheel (built in the builder stage, with its C extension) installed with its dependencies
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "pip wheel --no-cache-dir --no-deps -w /wheels ." in dockerfile
    assert "pip install --no-cache-dir /tmp/wheels/*.whl" in dockerfile


def _dry_make(*args: str) -> str:
    """The commands `make -n` would run, as a top-level make: under `make test` the inherited MAKEFLAGS and
    MAKELEVEL would make it a sub-make, which prints "make[1]: Entering directory" before them."""
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES"}}
    return subprocess.run(
        ["make", "--no-print-directory", "-n", "-o", ".venv/.installed-stamp", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_make_up_passes_the_executor_to_newswire_up() -> None:
    dry = _dry_make("up", "EXECUTOR=celery", "WORKERS=3", "CONCURRENCY=1")
    argv = shlex.split(dry.replace("\\\n", " "))
    assert argv[0].endswith("newswire") and argv[1] == "up"
    args = build_parser().parse_args(argv[1:])
    assert (args.executor, args.workers, args.worker_concurrency) == ("celery", 3, 1)
    local = _dry_make("up")
    assert build_parser().parse_args(shlex.split(local.replace("\\\n", " "))[1:]).executor == "local"
