"""The local stack's executor configuration: LocalExecutor unchanged by default, CeleryExecutor workers that
can be told apart, a metadata DB created when missing, broker and DB URLs checked as settings."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from devtools import stack, stack_executor
from devtools.stack_executor import ExecutorConfig, airflow_env, worker_commands
from newswire.errors import SettingsError
from newswire.settings import load_settings

PG = "postgresql://postgres@127.0.0.1:5432/test"


def celery(**overrides: object) -> ExecutorConfig:
    values = {"broker_url": "redis://127.0.0.1:6379/5", "database_url": "postgresql://u:pw@db:5432/af"}
    return ExecutorConfig("celery", **(values | overrides))  # type: ignore[arg-type]


def test_default_stack_is_the_local_executor_on_sqlite_with_no_workers(tmp_path: Path) -> None:
    config = stack.StackConfig(home=tmp_path)
    env = stack.component_env(config, stack_id="x", bootstrap="127.0.0.1:9092", feeds=None)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__CORE__PARALLELISM"] == "4"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{tmp_path / 'airflow' / 'airflow.db'}?timeout=30"
    assert not any(k.startswith("AIRFLOW__CELERY__") for k in env)
    assert worker_commands(config.executor, "airflow", tmp_path) == []


def test_dags_named_paused_are_created_paused_and_others_as_before(tmp_path: Path) -> None:
    default = stack.component_env(stack.StackConfig(home=tmp_path), stack_id="x", bootstrap="b:1", feeds=None)
    assert default["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "False"
    config = stack.StackConfig(home=tmp_path, paused=("newswire_archive",))
    env = stack.component_env(config, stack_id="x", bootstrap="b:1", feeds=None)
    # Created paused, so no scheduled run can start before `up` unpauses the others.
    assert env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "True"


def test_celery_env_uses_postgres_for_metadata_and_results_and_covers_every_worker_slot() -> None:
    env = airflow_env(celery(workers=3, worker_concurrency=2), Path("/h"), parallelism=4)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "postgresql+psycopg://u:pw@db:5432/af"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] == env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+postgresql+psycopg://u:pw@db:5432/af"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://127.0.0.1:6379/5"
    assert env["AIRFLOW__CORE__PARALLELISM"] == "6"  # 3 workers x 2 slots > the stack's 4
    assert airflow_env(celery(workers=1, worker_concurrency=1), Path("/h"), 4)["AIRFLOW__CORE__PARALLELISM"] == "4"


def test_each_worker_has_its_own_celery_hostname_pid_file_and_task_hostname(monkeypatch, tmp_path: Path) -> None:
    workers = worker_commands(celery(workers=2, worker_concurrency=3), "/venv/bin/airflow", tmp_path)
    assert [name for name, _, _ in workers] == ["worker-1", "worker-2"]
    for name, cmd, env in workers:
        assert cmd[:3] == ["/venv/bin/airflow", "celery", "worker"]
        assert cmd[cmd.index("--celery-hostname") + 1] == name
        assert cmd[cmd.index("--concurrency") + 1] == "3"
        assert cmd[cmd.index("--pid") + 1] == str(tmp_path / f"airflow-{name}.pid")
        monkeypatch.setenv(stack_executor.WORKER_NAME_ENV, env[stack_executor.WORKER_NAME_ENV])
        module, _, attr = env["AIRFLOW__CORE__HOSTNAME_CALLABLE"].rpartition(".")
        assert getattr(__import__(module, fromlist=[attr]), attr)() == name
    monkeypatch.delenv(stack_executor.WORKER_NAME_ENV)
    assert stack_executor.worker_hostname() not in ("", "worker-1", "worker-2")


def test_urls_default_from_settings_and_bad_ones_are_refused(monkeypatch) -> None:
    monkeypatch.setenv("NEWSWIRE_CELERY_BROKER_URL", "redis://broker:6379/3")
    resolved = ExecutorConfig("celery").resolved(load_settings())
    assert resolved.broker_url == "redis://broker:6379/3"
    assert resolved.database_url == "postgresql://postgres@127.0.0.1:5432/newswire_airflow"
    assert ExecutorConfig("celery", broker_url="amqp://x@y//").resolved(load_settings()).broker_url == "amqp://x@y//"
    with pytest.raises(ValueError, match="workers"):
        ExecutorConfig("celery", workers=0).resolved(load_settings())
    monkeypatch.setenv("NEWSWIRE_AIRFLOW_DATABASE_URL", "sqlite:///airflow.db")
    monkeypatch.setenv("NEWSWIRE_CELERY_BROKER_URL", "http://broker")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert "airflow_database_url" in str(err.value) and "celery_broker_url" in str(err.value)


def test_stack_record_masks_the_database_password() -> None:
    record = stack_executor.describe(celery())
    assert record["workers"] == ["worker-1", "worker-2"]
    assert "pw" not in record["database_url"] and record["broker_url"] == "redis://127.0.0.1:6379/5"
    assert stack_executor.describe(ExecutorConfig()) == {"kind": "local"}


@pytest.mark.postgres
def test_metadata_database_is_created_once() -> None:
    name = f"newswire_airflow_unit_{uuid.uuid4().hex[:8]}"
    url = urlunsplit(urlsplit(PG)._replace(path=f"/{name}"))
    try:
        assert stack_executor.ensure_database(url) is True
        assert stack_executor.ensure_database(url) is False
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == (name,)
    finally:
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_up_refuses_an_unreachable_broker_before_starting_anything(tmp_path: Path) -> None:
    config = stack.StackConfig(home=tmp_path, port=1, executor=celery(broker_url="redis://127.0.0.1:1/0"))
    with pytest.raises(stack.StackError, match=r"Celery broker .* unreachable"):
        stack.up(config, log=lambda *_: None)
    assert not (tmp_path / "stack.json").exists()


def test_no_worker_answers_through_a_broker_that_is_down() -> None:
    assert stack_executor.celery_workers_answering("redis://127.0.0.1:1/0") == set()
