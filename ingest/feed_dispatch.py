"""The feed pool's dispatcher: which feed a free feed thread polls next, with a bound per host.

A host admits one request per ``NEWSWIRE_HOST_INTERVAL`` however many of its feeds are polled at once, so a
feed thread given a feed of a host already being polled mostly sleeps in that host's throttle. Feed lists are
exported by outlet (dozens of section feeds of one host together); polled in list order, the pool's threads
all sat on one or two hosts' documents while every other host idled. So :func:`map_per_host`:

* starts at most ``per_host`` feeds of one host at once (``NEWSWIRE_FEEDS_PER_HOST``), counted from the start of
  a feed's poll to its end; feeds of a host at its bound wait in the dispatcher (the calling thread), not in a
  pool thread nor the pool's queue, and feeds of other hosts are started past them;
* gives a free thread to the host with the fewest feeds in progress, then the fewest started so far, then the
  earliest listed: a round-robin over hosts computed as feeds finish, so an outlet-grouped list is spread over
  its hosts as an interleaved one is (and a host with many feeds gets a second thread only when every other
  host with feeds left has one).

With ``per_host`` 0 every feed is in one unbounded group polled in list order: ``pool.map``'s order, the
behaviour before this bound.
"""

from __future__ import annotations

import heapq
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass
class _Host:
    """One host's feeds not started yet (positions in the list, in order) and its counts."""

    pending: deque[int] = field(default_factory=deque)
    running: int = 0
    started: int = 0


def map_per_host(
    pool: ThreadPoolExecutor,
    workers: int,
    fn: Callable[[_T], _R],
    items: Sequence[_T],
    *,
    per_host: int,
    host_of: Callable[[_T], str],
) -> list[_R]:
    """``fn`` over ``items`` in ``pool`` (of ``workers`` threads), at most ``per_host`` items of one host running
    at once (``per_host`` 0: no bound and list order). Results come back in item order.

    An item is submitted only when one of ``workers`` threads is free, so "submitted" means "running": the host
    count covers the poll, not a wait in the pool's queue. On a failure no further item is started, the running
    ones are waited for (as ``pool.map`` inside its ``with`` block did), and the exception of the first failed
    item in list order is raised. An exception in the calling thread (an interrupt) leaves the items not started
    unstarted and propagates."""
    limit = per_host if per_host > 0 else len(items) + 1
    hosts: dict[str | None, _Host] = {}
    order: list[str | None] = []  # hosts by first listed item
    for i, item in enumerate(items):
        key = host_of(item) if per_host > 0 else None
        if key not in hosts:
            hosts[key] = _Host()
            order.append(key)
        hosts[key].pending.append(i)
    rank = {key: n for n, key in enumerate(order)}

    # Candidate hosts, best first; an entry is stale once its host's counts moved on (lazy deletion).
    ready: list[tuple[int, int, int, str | None]] = []

    def offer(key: str | None) -> None:  # under the lock
        host = hosts[key]
        if host.pending and host.running < limit:
            # None (the unbounded group) keeps list order: rank by its next item, never by its counts.
            if key is None:
                heapq.heappush(ready, (0, 0, host.pending[0], key))
            else:
                heapq.heappush(ready, (host.running, host.started, rank[key], key))

    def current(entry: tuple[int, int, int, str | None]) -> bool:
        running, started, first, key = entry
        host = hosts[key]
        if not host.pending or host.running >= limit:
            return False
        if key is None:
            return first == host.pending[0]
        return (running, started) == (host.running, host.started)

    lock = threading.Condition()
    running_total = 0
    failed: dict[int, BaseException] = {}
    results: dict[int, _R] = {}
    for key in order:
        offer(key)

    def run(i: int, key: str | None) -> None:
        nonlocal running_total
        try:
            value = fn(items[i])
        except BaseException as exc:
            with lock:
                failed[i] = exc
        else:
            with lock:
                results[i] = value
        finally:
            with lock:
                hosts[key].running -= 1
                running_total -= 1
                offer(key)
                lock.notify_all()

    with lock:
        while True:
            while ready and not current(ready[0]):
                heapq.heappop(ready)
            if failed or not ready:
                if running_total == 0:
                    break
                lock.wait()
                continue
            if running_total >= workers:
                lock.wait()
                continue
            key = heapq.heappop(ready)[3]
            host = hosts[key]
            i = host.pending.popleft()
            host.running += 1
            host.started += 1
            running_total += 1
            offer(key)
            try:
                pool.submit(run, i, key)
            except BaseException:
                host.running -= 1
                running_total -= 1
                raise
    if failed:
        raise failed[min(failed)]
    return [results[i] for i in range(len(items))]
