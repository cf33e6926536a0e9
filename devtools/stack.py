"""``make up`` / ``make down``: the embedded broker and the Airflow components as one local stack.

``up`` starts, on the embedded defaults (Tansu broker, DuckDB warehouse, SQLite Airflow metadata DB with the
LocalExecutor, all under ``NEWSWIRE_HOME``):

* the embedded broker (recorded in ``NEWSWIRE_HOME/broker.json`` like ``newswire broker`` does, so the CLI and
  the tasks share it), unless a live one is already recorded there;
* with ``sample``, the bundled sample sites on loopback and a feed list covering them (polling and archive);
* ``airflow db migrate`` and the pools the DAGs use, in one short process;
* the api-server, scheduler, dag-processor and triggerer, each in its own session (process group), sized for
  a 2-core machine (``parallelism`` 4, one api-server worker), each restarted if it dies after its start
  (:mod:`devtools.keepalive`, as production's ``restart: unless-stopped``);
* with the CeleryExecutor (``executor=ExecutorConfig("celery")``, see :mod:`devtools.stack_executor`): a
  PostgreSQL metadata DB instead of SQLite, and N ``airflow celery worker`` processes taking tasks from Redis;

waits until the health endpoint reports every component healthy (and every Celery worker answers a ping) and
the project's DAGs are parsed, unpauses them, and records every process in ``NEWSWIRE_HOME/stack.json``.

``down`` sends SIGTERM to each recorded process group, waits, SIGKILLs what is left, and then sweeps any
process still carrying this stack's marker variable (``NEWSWIRE_STACK_ID``, inherited by everything the stack
spawns: task processes that start their own sessions included), so nothing it started keeps running. State
(warehouse, Airflow DB, logs, the admin password) stays in ``NEWSWIRE_HOME`` across ``down``/``up``; the
embedded broker keeps its messages in memory only, so topics start empty after an ``up`` (the warehouse, not
the broker, is the system of record).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from devtools import CORPUS, DAGS_FOLDER, stack_executor
from devtools.errors import StackError
from devtools.stack_executor import ExecutorConfig
from newswire.broker import (
    EmbeddedBroker,
    port_accepts,
    record_embedded_broker,
    running_embedded_broker,
)
from newswire.settings import redact_url
from pipeline.pools import FETCH_POOL

__all__ = [
    "COMPONENTS",
    "DAG_IDS",
    "StackConfig",
    "StackError",
    "StackStatus",
    "down",
    "status",
    "up",
]

STATE_FILE = "stack.json"
SECRETS_FILE = "stack-secrets.json"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
DAG_IDS = ("newswire_ingest", "newswire_transform", "newswire_archive")
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"


@dataclass(frozen=True)
class StackConfig:
    """How to run the stack; the defaults are the ``make up`` ones."""

    home: Path
    port: int = 8080
    host: str = "127.0.0.1"
    sample: bool = False
    sample_base_port: int = 18700
    parallelism: int = 4
    fetch_pool_slots: int = 3
    username: str = "admin"
    timeout: float = 180.0
    host_interval: float | None = None  # NEWSWIRE_HOST_INTERVAL for the tasks; None = the settings default
    extra_env: Mapping[str, str] = field(default_factory=dict)
    unpause: tuple[str, ...] = DAG_IDS  # the DAGs `up` unpauses (all of the project's by default)
    # DAGs created paused and kept paused (``newswire up --paused``): none by default. Paused at creation, not
    # after start, so a scheduled run (the daily archive) cannot begin in between.
    paused: tuple[str, ...] = ()
    sample_lists: tuple[str, ...] = ("feeds.toml", "feeds-archive.toml")  # corpus feed lists served with sample
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)  # LocalExecutor unless kind="celery"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"


@dataclass
class StackStatus:
    url: str | None
    running: dict[str, bool]
    health: dict[str, Any] | None
    rss_mib: float
    processes: int

    def lines(self) -> list[str]:
        out = [f"url: {self.url or '-'}"]
        out += [f"{name}: {'running' if alive else 'stopped'}" for name, alive in self.running.items()]
        if self.health:
            out += [f"health {k}: {v.get('status') if isinstance(v, dict) else v}" for k, v in self.health.items()]
        out.append(f"processes: {self.processes}, summed RSS: {self.rss_mib:.0f} MiB")
        return out


# -- up ----------------------------------------------------------------------------------------------------


def up(config: StackConfig, *, log: Any = print) -> dict[str, Any]:
    """Start the stack and return its record (also written to ``home/stack.json``); idempotent when running."""
    home = config.home.resolve()
    config = _replace_home(config, home)
    config = _resolve_executor(config)
    existing = _read_state(home)
    if existing and stack_processes(existing):
        raise StackError(f"a stack is already running from {home} ({existing.get('url')}); run `make down` first")
    if port_accepts(config.host, config.port, 0.3):
        raise StackError(f"port {config.port} on {config.host} is in use; pick another with PORT=...")
    t0 = time.monotonic()
    stack_id = uuid.uuid4().hex
    (home / "logs" / "stack").mkdir(parents=True, exist_ok=True)
    config.airflow_home.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = {
        "stack_id": stack_id,
        "home": str(home),
        "url": config.url,
        "username": config.username,
        "started_at": datetime.now(UTC).isoformat(),
        "processes": [],
        "executor": stack_executor.describe(config.executor),
    }
    try:
        _migrate_warehouse(config)
        bootstrap = _start_broker(config, state)
        healed = _reconcile(config, fresh=bool(state["broker"].get("owned")), bootstrap=bootstrap)
        feeds = _start_sample(config, state) if config.sample else os.environ.get("NEWSWIRE_FEEDS")
        env = component_env(config, stack_id=stack_id, bootstrap=bootstrap, feeds=feeds)
        _write_state(home, state)
        _bootstrap_airflow(config, env)
        for name in COMPONENTS:
            # Task logs are local files the api-server reads itself: no serve-logs processes (each a full Airflow
            # process).
            extra = ["--skip-serve-logs"] if name in ("scheduler", "triggerer") else []
            # Restarted when it dies, as production's `restart: unless-stopped` (devtools/keepalive.py says why).
            keepalive = [sys.executable, "-m", "devtools.keepalive", "--name", name, "--"]
            state["processes"].append(_spawn(name, [*keepalive, _airflow_bin(), name, *extra], env, home))
            _write_state(home, state)
        for name, cmd, worker_env in stack_executor.worker_commands(
            config.executor, _airflow_bin(), config.airflow_home
        ):
            state["processes"].append(_spawn(name, cmd, {**env, **worker_env}, home))
            _write_state(home, state)
        health = wait_healthy(config, state, timeout=config.timeout)
        password = admin_password(config.airflow_home, config.username)
        token = api_token(config.url, config.username, password)
        wait_for_dags(config.url, token, DAG_IDS, timeout=config.timeout)
        for dag_id in config.unpause:
            if dag_id not in config.paused:
                set_paused(config.url, token, dag_id, paused=False)
        for dag_id in config.paused:  # also on a re-up over a metadata database where it was unpaused
            set_paused(config.url, token, dag_id, paused=True)
    except BaseException:
        _write_state(home, state)
        with contextlib.suppress(Exception):
            down(home, log=lambda *_: None)
        raise
    state["healthy_after_seconds"] = round(time.monotonic() - t0, 1)
    state["health"] = health
    _write_state(home, state)
    log(f"Newswire stack is up in {state['healthy_after_seconds']} s: Airflow UI at {config.url}")
    log(f"  log in as {config.username!r} with password {password!r}")
    log(f"  (the password is kept in {config.airflow_home / PASSWORDS_FILE})")
    log(f"  broker {bootstrap}; warehouse under {home}; logs in {home / 'logs' / 'stack'}")
    log(f"  {healed.line()} (articles the warehouse lacked, for the next transform run)")
    if config.executor.celery:
        described = state["executor"]
        log(
            f"  CeleryExecutor: {len(described['workers'])} workers x {described['worker_concurrency']} tasks, "
            f"broker {redact_url(described['broker_url'])}, metadata DB {described['database_url']}"
        )
    if feeds:
        log(f"  feed list: {feeds}")
    else:
        log("  no feed list: set NEWSWIRE_FEEDS before `make up` (or `make up SAMPLE=1` for the sample sites)")
    log("  stop everything with `make down`")
    return state


def component_env(config: StackConfig, *, stack_id: str, bootstrap: str, feeds: str | None) -> dict[str, str]:
    """The environment of every Airflow component (and so of every task they run)."""
    airflow_home = config.airflow_home
    secrets_ = _secrets(config.home)
    bin_dir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": str(bool(config.paused)),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{config.username}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(airflow_home / PASSWORDS_FILE),
            "AIRFLOW__CORE__FERNET_KEY": secrets_["fernet_key"],
            # Where task processes (on Celery workers too) reach the api-server's task execution API.
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{config.url}/execution/",
            "AIRFLOW__API__HOST": config.host,
            "AIRFLOW__API__PORT": str(config.port),
            "AIRFLOW__API__BASE_URL": config.url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": secrets_["secret_key"],
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets_["jwt_secret"],
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            # New DAG files are picked up within a minute instead of five.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "60",
            # One parsing process, every 2 minutes: each is a fork of the dag-processor (its RSS, CPU
            # for imports) and three DAG files need no parallel parsing.
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "120",
            "NEWSWIRE_HOME": str(config.home),
            "NEWSWIRE_KAFKA_BOOTSTRAP": bootstrap,
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(stack_executor.airflow_env(config.executor, airflow_home, config.parallelism))
    if feeds:
        env["NEWSWIRE_FEEDS"] = str(feeds)
    if config.sample:
        env["NEWSWIRE_ALLOW_PRIVATE_NETWORKS"] = "true"
    if config.host_interval is not None:
        env["NEWSWIRE_HOST_INTERVAL"] = str(config.host_interval)
    env.update(config.extra_env)
    return env


def _replace_home(config: StackConfig, home: Path) -> StackConfig:
    values = {name: getattr(config, name) for name in StackConfig.__dataclass_fields__}
    values["home"] = home
    return StackConfig(**values)


def _resolve_executor(config: StackConfig) -> StackConfig:
    """Fill the executor's URLs from the settings and check, before anything starts, that the Celery broker
    answers and the PostgreSQL metadata DB exists (created if missing)."""
    from newswire.settings import load_settings

    try:
        executor = config.executor.resolved(load_settings(home=config.home))
    except ValueError as exc:
        raise StackError(str(exc)) from None
    if executor.celery:
        assert executor.broker_url and executor.database_url
        try:
            stack_executor.check_broker(executor.broker_url)
        except Exception as exc:
            raise StackError(f"Celery broker {redact_url(executor.broker_url)} unreachable: {exc}") from None
        try:
            stack_executor.ensure_database(executor.database_url)
        except Exception as exc:
            raise StackError(f"Airflow metadata DB {redact_url(executor.database_url)} unusable: {exc}") from None
    return dataclasses.replace(config, executor=executor)


def _secrets(home: Path) -> dict[str, str]:
    """Keys every component must share (JWTs, sessions, connection encryption), made once per home."""
    path = home / SECRETS_FILE
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_text())
        if {"fernet_key", "secret_key", "jwt_secret"} <= data.keys():
            return data
    import base64

    data = {
        "fernet_key": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "secret_key": secrets.token_urlsafe(32),
        "jwt_secret": secrets.token_urlsafe(48),
    }
    home.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle)
    return data


def _airflow_bin() -> str:
    candidate = Path(sys.executable).parent / "airflow"
    if not candidate.exists():
        raise StackError(f"no airflow executable next to {sys.executable}; run `make install`")
    return str(candidate)


def _spawn(name: str, cmd: list[str], env: Mapping[str, str], home: Path) -> dict[str, Any]:
    log_path = home / "logs" / "stack" / f"{name}.log"
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env),
            cwd=str(home),
            start_new_session=True,  # its own process group: down() signals the group
        )
    return {"name": name, "pid": proc.pid, "start": _starttime(proc.pid), "log": str(log_path), "cmd": cmd}


def _start_broker(config: StackConfig, state: dict[str, Any]) -> str:
    """The configured Kafka (``NEWSWIRE_KAFKA_BOOTSTRAP``), else a live embedded broker, else a new one."""
    from newswire.settings import load_settings

    configured = load_settings(home=config.home).kafka_bootstrap
    if configured:
        state["broker"] = {"bootstrap": configured, "owned": False}
        return configured
    shared = running_embedded_broker(config.home)
    if shared:
        state["broker"] = {"bootstrap": shared, "owned": False}
        return shared
    broker = EmbeddedBroker(log_path=config.home / "logs" / "stack" / "broker.log", die_with_parent=False).start()
    record_embedded_broker(config.home, broker)
    state["broker"] = {"bootstrap": broker.bootstrap, "owned": True, "pid": broker.pid}
    assert broker.pid is not None
    state["processes"].append(
        {"name": "broker", "pid": broker.pid, "start": _starttime(broker.pid), "log": str(broker.log_path)}
    )
    from newswire.messaging import ensure_topics

    ensure_topics(broker.bootstrap, load_settings(home=config.home))
    return broker.bootstrap


def _reconcile(config: StackConfig, *, fresh: bool, bootstrap: str) -> Any:
    """Re-publish what the warehouse holds but the topic lost (an embedded broker starts empty every time)."""
    from newswire.reconcile import reconcile_after_broker_start
    from newswire.settings import load_settings

    return reconcile_after_broker_start(load_settings(home=config.home), bootstrap, fresh=fresh)


def _migrate_warehouse(config: StackConfig) -> None:
    """Create or upgrade the warehouse now, so `newswire status` and SQL work before the first task runs."""
    from newswire.settings import load_settings
    from newswire.warehouse import Warehouse

    Warehouse(load_settings(home=config.home).resolved_warehouse_url).migrate()


def sample_sites(base_port: int) -> dict[str, str]:
    """Outlet -> base URL of the sample sites served from ``base_port`` (outlet i, sorted, on base + i)."""
    outlets = sorted(p.name for p in (CORPUS / "sites").iterdir() if p.is_dir() and not p.name.startswith("."))
    return {outlet: f"http://127.0.0.1:{base_port + i}" for i, outlet in enumerate(outlets)}


def _start_sample(config: StackConfig, state: dict[str, Any]) -> str:
    """Serve the sample corpus and write a feed list of its polled and archived feeds; returns its path."""
    from devtools.devserver import TemplateRenderer

    today = datetime.now(UTC).date()
    sites = sample_sites(config.sample_base_port)
    busy = [url for url in sites.values() if port_accepts("127.0.0.1", int(url.rsplit(":", 1)[1]), 0.2)]
    if busy:
        raise StackError(f"sample ports in use ({', '.join(busy)}); pick another base with SAMPLE_PORT=...")
    cmd = [
        sys.executable,
        "-m",
        "devtools.devserver",
        str(CORPUS),
        "--base-port",
        str(config.sample_base_port),
        "--today",
        today.isoformat(),
    ]
    state["processes"].append(_spawn("sample-sites", cmd, dict(os.environ), config.home))
    renderer = TemplateRenderer(sites, today)
    feeds = config.home / "sample" / "feeds.toml"
    feeds.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(renderer.render((CORPUS / name).read_text(encoding="utf-8")) for name in config.sample_lists)
    feeds.write_text(text, encoding="utf-8")
    deadline = time.monotonic() + 20
    while not all(port_accepts("127.0.0.1", int(u.rsplit(":", 1)[1]), 0.2) for u in sites.values()):
        if time.monotonic() > deadline:
            raise StackError("the sample sites did not start; see logs/stack/sample-sites.log")
        time.sleep(0.1)
    state["sample"] = {"today": today.isoformat(), "sites": sites, "feeds": str(feeds)}
    return str(feeds)


_BOOTSTRAP = """
from airflow.utils.db import initdb
from airflow.models.pool import Pool
initdb()
Pool.create_or_update_pool({pool!r}, {slots}, "Newswire fetching tasks (bounds concurrent feed fetches)", False)
"""
_SQLITE_WAL = """
import sqlite3
with sqlite3.connect({db!r}) as conn:
    conn.execute("PRAGMA journal_mode=WAL")  # persistent: readers no longer block the scheduler's writes
"""


def _bootstrap_airflow(config: StackConfig, env: Mapping[str, str]) -> None:
    """Create or upgrade the metadata DB and the pools, before any component can schedule a task."""
    log_path = config.home / "logs" / "stack" / "bootstrap.log"
    with open(log_path, "ab") as out:
        code = subprocess.run(
            [
                sys.executable,
                "-c",
                _BOOTSTRAP.format(pool=FETCH_POOL, slots=config.fetch_pool_slots)
                + ("" if config.executor.celery else _SQLITE_WAL.format(db=str(config.airflow_home / "airflow.db"))),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=str(config.home),
            timeout=config.timeout,
            check=False,
        ).returncode
    if code != 0:
        raise StackError(f"airflow db migrate failed (exit {code}); see {log_path}")


# -- waiting for health ------------------------------------------------------------------------------------


def health(url: str, timeout: float = 3.0) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=timeout) as response:
            return dict(json.loads(response.read()))
    except (OSError, ValueError):
        return None


def _healthy(report: dict[str, Any] | None) -> bool:
    if not report:
        return False
    wanted = ("metadatabase", "scheduler", "triggerer", "dag_processor")
    return all(isinstance(report.get(k), dict) and report[k].get("status") == "healthy" for k in wanted)


def wait_healthy(config: StackConfig, state: Mapping[str, Any], *, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    report = None
    while time.monotonic() < deadline:
        dead = [p["name"] for p in state["processes"] if not _alive(p["pid"])]
        if dead:
            raise StackError(f"{', '.join(dead)} exited at start; see {config.home / 'logs' / 'stack'}")
        report = health(config.url)
        if _healthy(report):
            assert report is not None
            if config.executor.celery:
                report["celery_workers"] = _wait_workers(config, state, deadline)
            return report
        time.sleep(0.5)
    raise StackError(f"Airflow did not become healthy within {timeout:.0f} s (last health: {report})")


def _wait_workers(config: StackConfig, state: Mapping[str, Any], deadline: float) -> dict[str, Any]:
    """Wait until every Celery worker answers a ping through the broker (a started process is not yet one that
    takes tasks); its entry in the health report."""
    assert config.executor.broker_url
    try:
        answering = stack_executor.wait_workers(
            config.executor.broker_url,
            config.executor.worker_names,
            lambda: [p["name"] for p in state["processes"] if not _alive(p["pid"])],
            timeout=max(1.0, deadline - time.monotonic()),
        )
    except (StackError, TimeoutError) as exc:
        raise StackError(f"{exc}; see {config.home / 'logs' / 'stack'}") from None
    return {"status": "healthy", "answering": sorted(answering)}


def admin_password(airflow_home: Path, username: str, timeout: float = 30.0) -> str:
    """The simple auth manager's generated password for ``username`` (written when the api-server starts)."""
    path = airflow_home / PASSWORDS_FILE
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError, ValueError, KeyError):
            return str(json.loads(path.read_text())[username])
        if time.monotonic() > deadline:
            raise StackError(f"no password for {username!r} in {path}")
        time.sleep(0.2)


def api_token(url: str, username: str, password: str, attempts: int = 3) -> str:
    """A bearer token for the REST API. A timeout is retried: on a loaded machine the api-server's first
    requests after start-up (seen with a load average of 18 on 2 cores) can take longer than one wait."""
    body = json.dumps({"username": username, "password": password}).encode()
    for attempt in range(attempts):
        request = urllib.request.Request(
            f"{url}/auth/token", data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return str(json.loads(response.read())["access_token"])
        except urllib.error.HTTPError:
            raise
        except OSError:
            if attempt + 1 == attempts:
                raise
    raise AssertionError("unreachable")


def api(
    url: str, token: str, method: str, path: str, body: Any = None, timeout: float = 10.0, attempts: int = 4
) -> Any:
    """One call to Airflow's REST API (``/api/v2/...``) with a bearer token; returns the decoded JSON.

    A 5xx or a refused connection is retried a few times: on SQLite, a busy scheduler can hold the database
    longer than one request waits.
    """
    data = json.dumps(body).encode() if body is not None else None
    for attempt in range(attempts):
        request = urllib.request.Request(
            f"{url}/api/v2/{path.lstrip('/')}",
            data=data,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            method=method,
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read()
            return json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            if exc.code < 500 or attempt + 1 == attempts:
                raise
        except OSError:
            if attempt + 1 == attempts:
                raise
        time.sleep(1.0 + attempt)
    raise AssertionError("unreachable")


def wait_for_dags(url: str, token: str, dag_ids: Iterable[str], *, timeout: float) -> None:
    wanted = set(dag_ids)
    deadline = time.monotonic() + timeout
    found: set[str] = set()
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            found = {d["dag_id"] for d in api(url, token, "GET", "dags?limit=100")["dags"]}
            if wanted <= found:
                return
        time.sleep(1.0)
    raise StackError(f"DAGs not parsed within {timeout:.0f} s: missing {sorted(wanted - found)} (import errors?)")


def set_paused(url: str, token: str, dag_id: str, *, paused: bool) -> None:
    api(url, token, "PATCH", f"dags/{dag_id}?update_mask=is_paused", {"is_paused": paused})


# -- down --------------------------------------------------------------------------------------------------


def down(home: Path, *, timeout: float = 15.0, log: Any = print) -> dict[str, Any]:
    """Stop every process the stack started, so nothing is left running; a no-op when nothing is recorded.

    SIGTERM to each recorded process group (Airflow first, then the sample sites and the broker), up to
    ``timeout`` seconds of grace (the scheduler waits for running tasks; a task cut short is retried when
    the stack is back), then SIGKILL for whatever remains: see :func:`stack_processes` for what counts.
    """
    home = home.resolve()
    state = _read_state(home)
    if state is None:
        log(f"no stack recorded in {home}")
        return {"stopped": [], "killed": 0, "left": []}
    processes = list(state.get("processes", []))
    known: dict[int, int] = {}
    ours = stack_processes(state, known)  # also verifies the recorded pids are still ours (start times)
    roots = [int(p["pid"]) for p in processes if int(p["pid"]) in known]
    for proc in sorted(processes, key=lambda p: p["name"] in ("broker", "sample-sites")):
        if int(proc["pid"]) in roots:
            _signal_group(int(proc["pid"]), signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while ours and time.monotonic() < deadline:
        time.sleep(0.2)
        ours = stack_processes(state, known)
    killed = 0
    for _ in range(3):
        if not ours:
            break
        killed += len(ours)
        log(f"  still running after {timeout:.0f} s, killing: {', '.join(_describe(pid) for pid in sorted(ours))}")
        for pid in roots:
            _signal_group(pid, signal.SIGKILL)
        for pid in ours:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        settle = time.monotonic() + 5.0
        while ours and time.monotonic() < settle:
            time.sleep(0.1)
            ours = stack_processes(state, known)
    left = sorted(ours)
    broker = state.get("broker") or {}
    if broker.get("owned"):
        with contextlib.suppress(OSError, ValueError):
            path = home / "broker.json"
            if json.loads(path.read_text()).get("pid") == broker.get("pid"):
                path.unlink()
    if not left:
        with contextlib.suppress(FileNotFoundError):
            (home / STATE_FILE).unlink()
    names = [p["name"] for p in processes]
    note = f" ({killed} killed after {timeout:.0f} s)" if killed else ""
    log(f"Newswire stack stopped: {', '.join(names) or 'nothing was running'}{note}")
    if left:
        log(f"  could not stop pids {left}")
    return {"stopped": names, "killed": killed, "left": left}


def stack_processes(state: Mapping[str, Any], known: dict[int, int] | None = None) -> set[int]:
    """The live processes of a stack: every recorded process, and everything in its session, its process
    group or its descendants.

    A recorded pid counts only while its start time matches the recorded one (after a reboot the pid may be
    anybody's). ``known`` (pid -> start time) accumulates what was found, so that a process orphaned after
    its parent was killed, and started in a session of its own, is still recognised on the next call.
    (Environment markers are no proof: Airflow's processes rewrite their environ area with setproctitle.)
    """
    known = {} if known is None else known
    table = _process_table()
    roots = {
        int(p["pid"])
        for p in state.get("processes", [])
        if int(p["pid"]) in table and table[int(p["pid"])].start == p.get("start")
    }
    for pid in roots:
        known[pid] = table[pid].start
    found: set[int] = set()
    for pid, info in table.items():
        if info.state == "Z" or pid == os.getpid():
            continue
        if known.get(pid) == info.start or info.sid in roots or info.pgrp in roots or _descends(pid, roots, table):
            found.add(pid)
            known[pid] = info.start
    return found


def _descends(pid: int, roots: set[int], table: Mapping[int, _Proc]) -> bool:
    ancestor, hops = table[pid].ppid, 0
    while ancestor > 1 and hops < 64:
        if ancestor in roots:
            return True
        parent = table.get(ancestor)
        if parent is None:
            return False
        ancestor, hops = parent.ppid, hops + 1
    return False


@dataclass(frozen=True)
class _Proc:
    state: str  # "Z" for a zombie
    ppid: int
    pgrp: int
    sid: int
    start: float  # psutil's creation time: with the pid, identifies a process for good


_GONE = (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError, PermissionError)


def _process_table() -> dict[int, _Proc]:
    table = {}
    for process in psutil.process_iter(["ppid", "status", "create_time"]):
        info = _proc(process)
        if info is not None:
            table[process.pid] = info
    return table


def _proc(process: psutil.Process) -> _Proc | None:
    try:
        attrs = process.info if hasattr(process, "info") else process.as_dict(["ppid", "status", "create_time"])
        if attrs.get("create_time") is None or attrs.get("ppid") is None:
            return None  # not ours to read
        state = "Z" if attrs["status"] == psutil.STATUS_ZOMBIE else "R"
        pid = process.pid
        return _Proc(state, int(attrs["ppid"]), os.getpgid(pid), os.getsid(pid), _start_of(attrs["create_time"]))
    except _GONE:
        return None


def _start_of(create_time: float) -> float:
    return round(create_time, 3)  # what the state file records; rounding keeps JSON and psutil equal


def _read_stat(pid: int) -> _Proc | None:
    try:
        return _proc(psutil.Process(pid))
    except _GONE:
        return None


def _starttime(pid: int) -> float | None:
    info = _read_stat(pid)
    return info.start if info else None


def _describe(pid: int) -> str:
    with contextlib.suppress(*_GONE):
        command = " ".join(psutil.Process(pid).cmdline())
        return f"{pid} ({command[:60].strip()})"
    return str(pid)


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


# -- status ------------------------------------------------------------------------------------------------


def status(home: Path) -> StackStatus:
    state = _read_state(home.resolve())
    if state is None:
        return StackStatus(url=None, running={}, health=None, rss_mib=0.0, processes=0)
    table = _process_table()
    running = {
        p["name"]: int(p["pid"]) in table
        and table[int(p["pid"])].start == p.get("start")
        and table[int(p["pid"])].state != "Z"
        for p in state.get("processes", [])
    }
    pids = stack_processes(state)
    # `make status` is interactive: a busy API server gets longer than a health poll inside `make up` does.
    report = health(state["url"], timeout=10.0) if any(running.values()) else None
    if report is not None:
        report |= _workers_health(state)
    return StackStatus(
        url=state.get("url"),
        running=running,
        health=report,
        rss_mib=sum(_rss_kib(pid) for pid in pids) / 1024,
        processes=len(pids),
    )


def _workers_health(state: Mapping[str, Any]) -> dict[str, Any]:
    """``{"celery_workers": ...}``: which of the stack's Celery workers answer a ping ({} for the LocalExecutor)."""
    executor = state.get("executor") or {}
    if executor.get("kind") != "celery":
        return {}
    wanted = set(executor.get("workers", []))
    answering = stack_executor.celery_workers_answering(executor["broker_url"]) & wanted
    return {
        "celery_workers": {
            "status": "healthy" if answering == wanted else "unhealthy",
            "answering": sorted(answering),
            "missing": sorted(wanted - answering),
        }
    }


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, exited but not yet reaped by its parent, does not)."""
    info = _read_stat(pid)
    return info is not None and info.state != "Z"


def _rss_kib(pid: int) -> int:
    with contextlib.suppress(*_GONE):
        return psutil.Process(pid).memory_info().rss // 1024
    return 0


def _read_state(home: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads((home / STATE_FILE).read_text()))
    except (OSError, ValueError):
        return None


def _write_state(home: Path, state: Mapping[str, Any]) -> None:
    tmp = home / f".{STATE_FILE}.tmp"
    tmp.write_text(json.dumps(state, indent=2, default=str))
    tmp.replace(home / STATE_FILE)


def default_home() -> Path:
    from newswire.settings import load_settings

    return load_settings().home.resolve()
