"""Per-host request spacing, so concurrent workers never hammer one publisher.

News sites rate-limit (and ban) crawlers that burst; many feeds and articles live on the same few hosts.
The throttle hands out time slots per ``host:port``: concurrent callers for one host queue one
``min_interval`` apart, while callers for other hosts never wait on them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
_PRUNE_THRESHOLD = 4096

#: Called by :meth:`HostThrottle.wait` once a request of the current context has been let through. The entry
#: window (``ingest.poll.map_bounded``) sets it per entry to learn when that entry stops sleeping in the throttle.
_ADMITTED: ContextVar[Callable[[], None] | None] = ContextVar("newswire_throttle_admitted", default=None)


@contextmanager
def on_admission(callback: Callable[[], None]) -> Iterator[None]:
    """Call ``callback`` after each :meth:`HostThrottle.wait` of this thread (context) inside the block.

    Why: a caller bounding how many of its tasks are *asleep in the throttle* needs to know when one of them is
    let through; what the task does afterwards (download, extraction) no longer holds a host slot. The callback
    may be called more than once (robots.txt fetches and redirect hops wait too), so it must be idempotent.
    Waits in other threads do not call it (a context variable does not follow work handed to another thread).
    """
    token = _ADMITTED.set(callback)
    try:
        yield
    finally:
        _ADMITTED.reset(token)


def release_admission() -> None:
    """Call the current context's admission callback (:func:`on_admission`) now, without a request.

    Why: a caller about to block on *another* task's work (the owner of the same URL downloading it, another
    entry's robots.txt fetch of the same origin) would otherwise keep its admission places (its feed's and its
    host's, shared by every feed of the host) while it never sleeps in the throttle, and a few such waiters stall
    every feed of that host. Giving the places back first lets other entries of the host be admitted meanwhile;
    the waiter's later requests, if any, are not counted (as those of an admitted entry are not). Idempotent as
    the callback is; does nothing outside an :func:`on_admission` block.
    """
    admitted = _ADMITTED.get()
    if admitted is not None:
        admitted()


class HostThrottle:
    """Spaces requests to the same host (``host:port``) at least ``min_interval`` seconds apart.

    Slots are reserved under a lock and slept outside it, so the lock is held for microseconds and the
    order of reservation is the order of requests. ``clock``/``sleep`` are injectable for tests.
    """

    def __init__(
        self,
        min_interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not min_interval >= 0:
            raise ValueError(f"min_interval must be >= 0 seconds, got {min_interval!r}")
        self._min_interval = float(min_interval)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_slot: dict[str, float] = {}
        self._host_interval: dict[str, float] = {}  # hosts that asked for more spacing (robots Crawl-delay)

    @property
    def min_interval(self) -> float:
        return self._min_interval

    def set_host_interval(self, url: str, seconds: float) -> None:
        """Space requests to ``url``'s host at least ``seconds`` apart (the larger of this and ``min_interval``
        applies). Called when a site's robots.txt asks for a Crawl-delay; lasts for the throttle's lifetime."""
        with self._lock:
            self._host_interval[host_key(url)] = max(0.0, float(seconds))

    def wait(self, url: str) -> float:
        """Block until a request to ``url``'s host may be sent; returns the seconds spent waiting.

        Afterwards the current context's admission callback (:func:`on_admission`) is called, also when there was
        nothing to wait for: the request is admitted either way."""
        key = host_key(url)
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_slot.get(key, now))
            self._next_slot[key] = slot + max(self._min_interval, self._host_interval.get(key, 0.0))
            if len(self._next_slot) > _PRUNE_THRESHOLD:
                self._prune(now)
        delay = slot - now
        try:
            if delay > 0:
                self._sleep(delay)
        finally:
            admitted = _ADMITTED.get()
            if admitted is not None:
                admitted()
        return max(0.0, delay)

    def _prune(self, now: float) -> None:
        """Forget hosts whose next slot is already free; keeps memory flat across a long run."""
        for key in [k for k, free_at in self._next_slot.items() if free_at <= now]:
            del self._next_slot[key]


def host_key(url: str) -> str:
    """``host:port`` of a URL with the scheme's default port filled in, host lower-cased."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = _DEFAULT_PORTS.get(parts.scheme.lower(), 0)
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}"
