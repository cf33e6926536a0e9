"""Keeps one local-stack component running: restarts it when it exits, as production's ``restart: unless-stopped``.

``newswire up`` runs each Airflow component as ``python -m devtools.keepalive -- <command>``. Without it a
component that dies stays dead until ``make down && make up``: the scheduler on the local stack's SQLite metadata
database does die, in a race with the api-server creating a backfill (the api-server commits each run it creates,
gets "database is locked" on the next one and deletes the runs it made while the scheduler is creating their task
instances; the scheduler's error handler then reads the deleted run and its loop exits). Every later run of every
DAG then stays queued, with nothing in any log but the scheduler's last traceback. Restarted, the scheduler adopts
what its predecessor left and schedules the runs the api-server created on the retry.

Rules: the wrapper and the component share one process group, so ``make down`` (SIGTERM to the group) stops both
and the wrapper does not restart what was stopped. A component that exits before it has run ``STARTUP_SECONDS``
the first time is not restarted (a configuration error: ``newswire up`` reports it as "exited at start"); after
that, each exit is restarted after a delay that doubles from ``MIN_DELAY`` up to ``MAX_DELAY`` while the component
keeps dying within ``STABLE_SECONDS``, and starts again from ``MIN_DELAY`` once it ran that long.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from types import FrameType

STARTUP_SECONDS = 10.0
STABLE_SECONDS = 60.0
MIN_DELAY, MAX_DELAY = 1.0, 30.0
# How long a stop signal may take to reach the component by its process group before the wrapper sends it on
# (the wrapper alone was signalled, e.g. ``kill <pid>``).
FORWARD_AFTER = 2.0


def next_delay(previous: float | None, ran_seconds: float) -> float:
    """The wait before the next start: ``MIN_DELAY`` after a stable run, else twice the last wait (capped)."""
    if previous is None or ran_seconds >= STABLE_SECONDS:
        return MIN_DELAY
    return min(previous * 2, MAX_DELAY)


def keep_running(
    command: Sequence[str],
    *,
    stopping: Callable[[], float | None],
    log: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Run ``command`` until it is stopped (``stopping()`` returns when the stop was asked, else None); its last
    exit code. Polls the child once a second so that a stop is noticed while it runs."""
    delay: float | None = None
    first = True
    while True:
        started = clock()
        child = subprocess.Popen(list(command))
        code = _wait(child, stopping, clock)
        ran = clock() - started
        if stopping() is not None:
            return code
        if first and ran < STARTUP_SECONDS:
            log(f"exited with code {code} {ran:.1f} s after its first start: not restarted")
            return code
        first = False
        delay = next_delay(delay, ran)
        log(f"exited with code {code} after {ran:.0f} s; restarting in {delay:.0f} s")
        until = clock() + delay
        while clock() < until:
            if stopping() is not None:
                return code
            time.sleep(0.1)


def _wait(child: subprocess.Popen[bytes], stopping: Callable[[], float | None], clock: Callable[[], float]) -> int:
    forwarded = False
    while True:
        try:
            return child.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            asked = stopping()
            if asked is not None and not forwarded and clock() - asked >= FORWARD_AFTER:
                child.send_signal(signal.SIGTERM)
                forwarded = True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", required=True, help="the component's name, in the lines the wrapper logs")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the component's command line")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command")
    stop_asked: list[float] = []

    def on_stop(signum: int, frame: FrameType | None) -> None:
        if not stop_asked:
            stop_asked.append(time.monotonic())

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)

    def log(message: str) -> None:
        print(f"[keepalive] {args.name} {message}", flush=True)

    return keep_running(command, stopping=lambda: stop_asked[0] if stop_asked else None, log=log)


if __name__ == "__main__":
    sys.exit(main())
