"""devtools.keepalive: a stack component that dies after its start is started again; one that dies at its first
start is not (``newswire up`` reports it); a stop signal to the process group, or to the wrapper alone, stops
both without a restart."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from devtools import keepalive

REPO = Path(__file__).resolve().parent.parent


def test_the_delay_doubles_while_the_component_keeps_dying_and_resets_after_a_stable_run() -> None:
    quick = keepalive.STABLE_SECONDS / 2
    delays = [keepalive.next_delay(None, quick)]
    for _ in range(8):
        delays.append(keepalive.next_delay(delays[-1], quick))
    assert delays[:3] == [keepalive.MIN_DELAY, 2 * keepalive.MIN_DELAY, 4 * keepalive.MIN_DELAY]
    assert delays[-1] == keepalive.MAX_DELAY and max(delays) == keepalive.MAX_DELAY
    assert keepalive.next_delay(keepalive.MAX_DELAY, keepalive.STABLE_SECONDS) == keepalive.MIN_DELAY


def test_a_component_that_exits_after_its_start_is_started_again_until_stopped(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    command = [sys.executable, "-c", f"open({str(starts)!r}, 'a').write('x'); raise SystemExit(3)"]
    ticks = itertools.count(step=keepalive.STARTUP_SECONDS + 1)  # every run looks long enough to be restarted
    lines: list[str] = []

    def stopping() -> float | None:
        return 0.0 if starts.exists() and len(starts.read_text()) >= 3 else None

    code = keepalive.keep_running(command, stopping=stopping, log=lines.append, clock=lambda: float(next(ticks)))
    assert code == 3 and starts.read_text() == "xxx"
    assert len(lines) == 2 and all(line.startswith("exited with code 3 after") for line in lines)


def test_a_component_that_exits_at_its_first_start_is_not_restarted(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    command = [sys.executable, "-c", f"open({str(starts)!r}, 'a').write('x'); raise SystemExit(2)"]
    lines: list[str] = []
    assert keepalive.keep_running(command, stopping=lambda: None, log=lines.append) == 2
    assert starts.read_text() == "x" and "not restarted" in lines[0]


def _start(tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """The wrapper over a component that records its pid and sleeps, in a session of its own (as ``up`` runs it)."""
    pids = tmp_path / "pids"
    child = f"import os, time; open({str(pids)!r}, 'a').write(f'{{os.getpid()}}\\n'); time.sleep(120)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    wrapper = subprocess.Popen(
        [sys.executable, "-m", "devtools.keepalive", "--name", "test", "--", sys.executable, "-c", child],
        env=env,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while not (pids.exists() and pids.read_text().endswith("\n")):
        assert time.monotonic() < deadline and wrapper.poll() is None, "the component never started"
        time.sleep(0.05)
    return wrapper, pids


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _assert_stopped_without_restart(wrapper: subprocess.Popen[bytes], pids: Path) -> None:
    """The wrapper exits, its component is gone soon after, and only one component was ever started."""
    wrapper.wait(timeout=30)
    child = int(pids.read_text().split()[0])
    deadline = time.monotonic() + 10
    while not _gone(child):
        assert time.monotonic() < deadline, "the component outlived its wrapper"
        time.sleep(0.05)
    assert len(pids.read_text().split()) == 1  # never started again


def test_a_stop_signal_to_the_group_stops_both_without_a_restart(tmp_path: Path) -> None:
    wrapper, pids = _start(tmp_path)
    os.killpg(wrapper.pid, signal.SIGTERM)
    _assert_stopped_without_restart(wrapper, pids)


def test_a_stop_signal_to_the_wrapper_alone_reaches_the_component(tmp_path: Path) -> None:
    wrapper, pids = _start(tmp_path)
    wrapper.send_signal(signal.SIGTERM)
    _assert_stopped_without_restart(wrapper, pids)
