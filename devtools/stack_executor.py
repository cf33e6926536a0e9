"""The executor side of the local stack (``make up``): LocalExecutor on SQLite, or CeleryExecutor with workers.

The LocalExecutor (the default) runs every task as a child of the scheduler, on one machine, with a SQLite
metadata DB under ``NEWSWIRE_HOME``. The CeleryExecutor queues tasks on a Celery broker (Redis) and N
``airflow celery worker`` processes take them, so shard tasks can spread over several machines; SQLite cannot
be shared by processes on other machines, so its metadata DB (and the Celery result backend) is PostgreSQL.

Everything executor-specific lives here, so :mod:`devtools.stack` only asks for the Airflow environment, the
extra processes and their health. Kept free of heavy imports at module level: :func:`worker_hostname` is
imported by every task process a Celery worker runs.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from devtools.errors import StackError

__all__ = [
    "EXECUTORS",
    "ExecutorConfig",
    "airflow_env",
    "celery_workers_answering",
    "ensure_database",
    "worker_commands",
    "worker_hostname",
]

EXECUTORS = ("local", "celery")
#: Environment variable naming a worker of the local stack; see :func:`worker_hostname`.
WORKER_NAME_ENV = "NEWSWIRE_WORKER_NAME"


@dataclass(frozen=True)
class ExecutorConfig:
    """Which executor the stack runs; URLs left ``None`` come from the settings (``NEWSWIRE_CELERY_BROKER_URL``,
    ``NEWSWIRE_AIRFLOW_DATABASE_URL``)."""

    kind: Literal["local", "celery"] = "local"
    workers: int = 2
    # Task processes one worker runs at once. Each is a full Airflow task process (hundreds of MB of RSS);
    # 2 workers x 2 keeps a 2-core machine busy without swapping it.
    worker_concurrency: int = 2
    broker_url: str | None = None
    database_url: str | None = None

    @property
    def celery(self) -> bool:
        return self.kind == "celery"

    @property
    def worker_names(self) -> tuple[str, ...]:
        return tuple(f"worker-{i}" for i in range(1, self.workers + 1)) if self.celery else ()

    def resolved(self, settings: Any) -> ExecutorConfig:
        """This config with the URLs filled in from ``settings``; checks the numbers."""
        if self.kind not in EXECUTORS:
            raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {self.kind!r}")
        if self.celery and not (1 <= self.workers <= 32 and 1 <= self.worker_concurrency <= 64):
            raise ValueError("workers must be 1-32 and worker concurrency 1-64")
        return replace(
            self,
            broker_url=self.broker_url or settings.celery_broker_url,
            database_url=self.database_url or settings.airflow_database_url,
        )


def sqlalchemy_url(url: str) -> str:
    """``postgresql://…`` as SQLAlchemy's psycopg (v3) URL, the driver the project already ships.

    The same URL serves Airflow's async engine: SQLAlchemy's psycopg dialect has an async mode, whereas
    Airflow would otherwise derive ``postgresql+asyncpg://``, a driver that is not installed.
    """
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgresql+psycopg"))


def airflow_env(executor: ExecutorConfig, airflow_home: Path, parallelism: int) -> dict[str, str]:
    """The ``AIRFLOW__*`` variables that depend on the executor (for every component and worker)."""
    if not executor.celery:
        return {
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            # Several processes write the SQLite DB: wait up to 30 s for a lock instead of failing (WAL mode,
            # set at bootstrap, lets readers proceed meanwhile).
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}?timeout=30",
        }
    assert executor.broker_url and executor.database_url, "resolve the config first"
    database = sqlalchemy_url(executor.database_url)
    slots = executor.workers * executor.worker_concurrency
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        # The scheduler hands the workers no more than this at once: at least every worker slot.
        "AIRFLOW__CORE__PARALLELISM": str(max(parallelism, slots)),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": database,
        "AIRFLOW__CELERY__BROKER_URL": executor.broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{database}",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(executor.worker_concurrency),
        # One task reserved per free slot: a worker never sits on queued tasks another worker could run.
        "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
        "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
    }


def worker_commands(
    executor: ExecutorConfig, airflow_bin: str, airflow_home: Path
) -> list[tuple[str, list[str], dict[str, str]]]:
    """``(name, command, extra environment)`` of each Celery worker of the local stack ([] for local)."""
    workers = []
    for name in executor.worker_names:
        cmd = [
            airflow_bin,
            "celery",
            "worker",
            "--celery-hostname",
            name,
            "--concurrency",
            str(executor.worker_concurrency),
            "--pid",
            str(airflow_home / f"airflow-{name}.pid"),  # the default pid file would be shared by all workers
            # Task logs are files under AIRFLOW_HOME, which the api-server reads itself on this machine.
            "--skip-serve-logs",
            "--without-mingle",
            "--without-gossip",
        ]
        env = {
            WORKER_NAME_ENV: name,
            # The stale-bundle cleanup runs as one more process per worker; the dags-folder bundle is not
            # versioned, so it would never find anything to clean.
            "AIRFLOW__DAG_PROCESSOR__STALE_BUNDLE_CLEANUP_INTERVAL": "0",
            # Task instances record which worker ran them (all local workers share one machine's name).
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{__name__}.worker_hostname",
        }
        workers.append((name, cmd, env))
    return workers


def worker_hostname() -> str:
    """The host name a task instance records: the local stack's worker name, else the machine's FQDN."""
    return os.environ.get(WORKER_NAME_ENV) or socket.getfqdn()


def check_broker(url: str, timeout: float = 3.0) -> None:
    """Raise ``ConnectionError`` unless the Celery broker at ``url`` answers (before anything is started)."""
    from kombu import Connection

    with Connection(url, connect_timeout=timeout) as conn:
        conn.ensure_connection(max_retries=1, timeout=timeout)


def ensure_database(url: str) -> bool:
    """Create the PostgreSQL database named in ``url`` unless it exists; returns whether it was created."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name:
        raise StackError(f"no database name in {url!r}")
    server = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(server, autocommit=True, connect_timeout=5) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True


def celery_workers_answering(broker_url: str, timeout: float = 1.0) -> set[str]:
    """Names of the Celery workers that answer a ping on ``broker_url`` (``worker-1`` for ``celery@worker-1``)."""
    from celery import Celery
    from kombu.exceptions import OperationalError

    app = Celery(broker=broker_url, set_as_current=False)
    try:
        replies = app.control.ping(timeout=timeout) or []
    except (OSError, OperationalError):  # the broker is down: no worker answers
        return set()
    finally:
        app.close()
    return {node.split("@", 1)[-1] for reply in replies for node in reply}


def wait_workers(broker_url: str, names: tuple[str, ...], alive: Any, *, timeout: float) -> set[str]:
    """Wait until every worker in ``names`` answers; ``alive()`` returns the dead processes' names to fail fast."""
    deadline = time.monotonic() + timeout
    answering: set[str] = set()
    while time.monotonic() < deadline:
        dead = alive()
        if dead:
            raise StackError(f"{', '.join(dead)} exited at start")
        answering = celery_workers_answering(broker_url)
        if set(names) <= answering:
            return answering
        time.sleep(0.5)
    raise TimeoutError(f"Celery workers not answering within {timeout:.0f} s: {sorted(set(names) - answering)}")


def describe(executor: ExecutorConfig) -> dict[str, Any]:
    """What the stack record (``stack.json``) keeps about the executor: the broker URL as is (``newswire
    stack-status`` pings the workers through it), the database URL with its password masked."""
    from newswire.settings import redact_url

    record: dict[str, Any] = {"kind": executor.kind}
    if executor.celery:
        record |= {
            "workers": list(executor.worker_names),
            "worker_concurrency": executor.worker_concurrency,
            "broker_url": executor.broker_url,
            "database_url": redact_url(executor.database_url or ""),
        }
    return record
