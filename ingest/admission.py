"""Admission windows: how many entries may wait for their host's request slot at once, per feed and per host.

An entry thread reserves its host's next slot in :meth:`ingest.politeness.HostThrottle.wait` and sleeps until it.
Sleepers only hold entry threads: a host admits one request per spacing interval however many of its entries
wait. So the entry pool is fed through two windows, both counting an entry from its submission until the host
throttle admits its first request (:func:`ingest.politeness.on_admission`), or until it finishes without one:

* per feed (:func:`map_bounded`'s ``bound``, ``NEWSWIRE_ENTRIES_PER_FEED``): a feed's chunk mostly shares one
  host, and sent whole it would fill the pool with that host's sleepers;
* per host (:class:`HostWindow`, ``NEWSWIRE_ENTRIES_PER_HOST``), shared by every feed a process polls at once: an
  outlet lists dozens of section feeds on one host, the feed pool polls several of them concurrently, and each
  one's own window would let ``bound`` more of that host's entries into the pool. Entries over the host's bound
  wait in their feed's thread (outside the entry pool) while entries of other hosts are submitted.

An entry about to block on another entry's work instead of the throttle (the owner of the same URL downloading it,
another entry's robots.txt fetch of its origin) gives both places back first
(:func:`ingest.politeness.release_admission`): it is not waiting for its host's slot, and holding the host's
places while it waits would stall every feed of that host.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from functools import partial
from typing import TypeVar

from ingest.politeness import host_key, on_admission

_T = TypeVar("_T")
_R = TypeVar("_R")


class HostWindow:
    """At most ``per_host`` items of one host waiting for their first admission at once, across every
    :func:`map_bounded` call given this window (one per process: all the feeds it polls concurrently). An item
    blocked on another item's work gives its place back (:func:`ingest.politeness.release_admission`), so it
    does not count as waiting for admission.

    The window's lock is also the lock of every call's condition, so a call can wait for "my feed's window or
    one of my hosts has room" without a lost wake-up; it is held for bookkeeping only, never across a request.
    ``per_host`` < 1 counts as 1.
    """

    def __init__(self, per_host: int) -> None:
        self.limit = max(1, per_host)
        self.lock = threading.RLock()  # re-entrant: a done-callback may run in the thread that registers it
        self._taken: dict[str, int] = {}
        self._watchers: dict[str, set[threading.Condition]] = {}

    def has_room(self, host: str | None) -> bool:
        """Whether an item of ``host`` may be submitted now (an item without a host always may). Hold ``lock``."""
        return host is None or self._taken.get(host, 0) < self.limit

    def take(self, host: str | None) -> None:
        """One place of ``host`` for an item about to be submitted. Hold ``lock``."""
        if host is not None:
            self._taken[host] = self._taken.get(host, 0) + 1

    def release(self, host: str | None) -> None:
        """Give a place of ``host`` back and wake the calls waiting for one. Hold ``lock``."""
        if host is None:
            return
        left = self._taken.get(host, 0) - 1
        if left > 0:
            self._taken[host] = left
        else:
            self._taken.pop(host, None)  # forgotten when idle: memory stays flat over thousands of hosts
        for watcher in self._watchers.pop(host, ()):
            watcher.notify_all()

    def watch(self, host: str | None, condition: threading.Condition) -> None:
        """Notify ``condition`` (built on ``lock``) when a place of ``host`` is given back. Hold ``lock``."""
        if host is not None:
            self._watchers.setdefault(host, set()).add(condition)

    def waiting(self, host: str) -> int:
        """Items of ``host`` submitted and not yet admitted (nor finished)."""
        with self.lock:
            return self._taken.get(host, 0)


def url_host(url: str | None) -> str | None:
    """The host window's key of a URL (``host:port``, as the throttle spaces it); ``None`` if it has none."""
    if not url:
        return None
    try:
        return host_key(url)
    except ValueError:  # an unparseable URL: its entry is dead-lettered without a request
        return None


def map_bounded(
    pool: ThreadPoolExecutor,
    fn: Callable[[_T], _R],
    items: Sequence[_T],
    bound: int,
    *,
    hosts: HostWindow | None = None,
    host_of: Callable[[_T], str | None] | None = None,
) -> list[_R]:
    """``fn`` over ``items`` in ``pool``, with at most ``bound`` items *waiting for admission* at once, and (with
    ``hosts``) at most ``hosts.limit`` items of one host (``host_of(item)``) waiting across all calls sharing it.

    Why not ``pool.map``: it queues a whole chunk of one feed at once, and a feed's entries mostly share one
    host. Each entry thread reserves that host's next slot in :meth:`HostThrottle.wait` and sleeps until it, so
    a few feeds' chunks fill every thread with sleepers while the entries of idle hosts, queued behind them,
    wait: the pool serves about as many hosts per spacing interval as it has chunks in its threads.

    The bound: an item holds one of the ``bound`` window places (and one of its host's) from its submission until
    the host throttle has admitted its first request (:func:`ingest.politeness.on_admission`), or until it is about
    to wait for another item's work (:func:`ingest.politeness.release_admission`: a duplicate URL another feed is
    fetching, a robots.txt another entry is fetching), or until it finishes if it never reaches the throttle (a
    duplicate decided before fetching, an error), or is cancelled or fails before it ran. So at most ``bound`` items
    of this call wait for their *first* admission (asleep in the throttle, or in the pool's queue) at a time; later
    waits of an admitted item (its page after its robots.txt, a redirect hop) are not counted, nor are items
    downloading or extracting, so a slow host still has many requests in flight, and items on hosts with a free slot
    are admitted at once (a multi-host feed runs in parallel). ``bound`` < 1 counts as 1. Items are submitted in
    order, except that an item whose host is full is passed over for a later item of a host with room; the call
    waits, in its own thread and holding no pool thread, while neither window has room.

    Results come back in item order. On failure the exception of the first item *to fail* (in time, not in item
    order) is raised, no further item is submitted, and submitted items not started yet are cancelled; items already
    running are not waited for."""
    limit = max(1, bound)
    window = hosts if hosts is not None else HostWindow(len(items) or 1)
    keys: list[str | None] = [host_of(item) for item in items] if hosts is not None and host_of else [None] * len(items)
    changed = threading.Condition(window.lock)
    held = [False] * len(items)  # item i holds a place in this call's window and in its host's
    waiting = 0  # items holding a place
    failure: list[BaseException] = []  # the first failure to complete

    def release(i: int) -> None:  # under the lock
        nonlocal waiting
        if held[i]:
            held[i] = False
            waiting -= 1
            window.release(keys[i])
            changed.notify_all()

    def run(i: int) -> _R:
        def admitted() -> None:
            with changed:
                release(i)

        try:
            with on_admission(admitted):
                return fn(items[i])
        except BaseException as exc:
            with changed:  # before the place is freed: no item is submitted after a failure
                if not failure:
                    failure.append(exc)
            raise
        finally:
            admitted()

    def finished(i: int, future: Future[_R]) -> None:
        with changed:
            # Whatever ended it: a future cancelled, or failed without running (a broken pool fails its queued
            # work), never calls ``run``'s release, and its host's place would be kept from the other feeds
            # forever. Idempotent: an item that ran has given its place back already.
            release(i)
            if future.cancelled():
                if not failure:  # cancelled by someone else (a pool shut down)
                    failure.append(CancelledError())
            elif (error := future.exception()) is not None and not failure:
                failure.append(error)  # failed without running: no further item is submitted either
            changed.notify_all()

    def next_item(pending: list[int]) -> int | None:
        """The position in ``pending`` of the first item whose host has room; watches the hosts if none has."""
        for position, i in enumerate(pending):
            if window.has_room(keys[i]):
                return position
        for key in {keys[i] for i in pending}:
            window.watch(key, changed)
        return None

    futures: list[Future[_R] | None] = [None] * len(items)
    pending = list(range(len(items)))
    try:
        while pending:
            with changed:
                position = None
                while not failure:
                    if waiting < limit and (position := next_item(pending)) is not None:
                        break
                    changed.wait()
                if failure or position is None:
                    break
                i = pending.pop(position)
                held[i] = True
                waiting += 1
                window.take(keys[i])
            # Submitted without the lock: a pool shutting down cancels queued futures (whose callbacks take the
            # lock) while holding its own lock, which ``submit`` needs.
            try:
                future = pool.submit(run, i)
            except BaseException:
                with changed:
                    release(i)
                raise
            futures[i] = future
            future.add_done_callback(partial(finished, i))
        submitted = [f for f in futures if f is not None]
        with changed:
            while not failure and not all(f.done() for f in submitted):
                changed.wait()
            if failure:
                raise failure[0]
        return [f.result() for f in submitted]
    finally:
        for future in futures:
            if future is not None:
                future.cancel()
