"""The feed pool's dispatcher (``ingest.feed_dispatch.map_per_host``): a bound on feeds of one host in progress.

The items here are ``(host, n)`` pairs and ``fn`` records when each starts and ends, so the tests see what ran
concurrently without timing anything: a feed either blocks on an event the test releases, or returns at once.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from ingest.feed_dispatch import map_per_host
from newswire.settings import Settings

Item = tuple[str, int]


class Recorder:
    """``fn`` for the dispatcher: logs starts, tracks the peak of running items per host."""

    def __init__(self, gate: threading.Event | None = None, fail: set[Item] | None = None) -> None:
        self.lock = threading.Lock()
        self.running: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.started: list[Item] = []
        self.calls: Counter[Item] = Counter()
        self.gate = gate
        self.fail = fail or set()

    def __call__(self, item: Item) -> str:
        host, _ = item
        with self.lock:
            self.started.append(item)
            self.calls[item] += 1
            self.running[host] += 1
            self.peak[host] = max(self.peak[host], self.running[host])
        try:
            if self.gate is not None:
                assert self.gate.wait(10)
            if item in self.fail:
                raise RuntimeError(f"boom {item}")
            return f"{host}/{item[1]}"
        finally:
            with self.lock:
                self.running[host] -= 1


def outlets(*groups: tuple[str, int]) -> list[Item]:
    """Items listed by outlet: every feed of a host together."""
    return [(host, n) for host, count in groups for n in range(count)]


def run(items: list[Item], fn: Recorder, *, workers: int, per_host: int) -> list[str]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return map_per_host(pool, workers, fn, items, per_host=per_host, host_of=lambda item: item[0])


@pytest.mark.parametrize("per_host", [1, 2, 3])
def test_a_host_never_has_more_than_its_bound_in_progress(per_host: int) -> None:
    items = outlets(("big", 12), ("mid", 5), ("one", 1), ("two", 2))
    fn = Recorder()
    results = run(items, fn, workers=8, per_host=per_host)
    assert results == [f"{h}/{n}" for h, n in items]  # list order
    assert max(fn.peak.values()) <= per_host
    assert fn.calls == Counter(items)  # every feed polled exactly once


def test_the_bound_holds_while_feeds_are_blocked_and_other_hosts_start_at_once() -> None:
    """20 feeds of one host listed first, then 5 one-feed hosts, 8 threads, bound 2: while the big host's two
    feeds block, every small host's feed starts (they do not wait behind the big host's list)."""
    gate = threading.Event()
    items = outlets(("big", 20)) + [(f"small{i}", 0) for i in range(5)]
    fn = Recorder(gate=gate)
    done: list[list[str]] = []
    worker = threading.Thread(target=lambda: done.append(run(items, fn, workers=8, per_host=2)))
    worker.start()
    try:
        for _ in range(1000):
            with fn.lock:
                if len(fn.started) >= 7:
                    break
            threading.Event().wait(0.01)
        with fn.lock:
            started = list(fn.started)
            peak_big = fn.peak["big"]
        assert sorted(started) == sorted([("big", 0), ("big", 1)] + [(f"small{i}", 0) for i in range(5)])
        assert peak_big == 2
    finally:
        gate.set()
        worker.join(10)
    assert done and len(done[0]) == len(items)
    assert fn.peak["big"] == 2
    assert fn.calls == Counter(items)


def test_without_a_bound_the_list_order_fills_the_pool() -> None:
    """``per_host`` 0 is the old ``pool.map``: the first 8 listed (all the big host's) take the 8 threads."""
    gate = threading.Event()
    items = outlets(("big", 20)) + [(f"small{i}", 0) for i in range(5)]
    fn = Recorder(gate=gate)
    worker = threading.Thread(target=lambda: run(items, fn, workers=8, per_host=0))
    worker.start()
    try:
        for _ in range(1000):
            with fn.lock:
                if len(fn.started) >= 8:
                    break
            threading.Event().wait(0.01)
        with fn.lock:
            assert fn.started[:8] == [("big", n) for n in range(8)]
    finally:
        gate.set()
        worker.join(10)
    assert fn.calls == Counter(items)


def test_an_outlet_grouped_list_is_spread_over_its_hosts() -> None:
    """With one thread the start order shows the dispatcher's choice: round-robin over hosts, in list order."""
    items = outlets(("a", 3), ("b", 2), ("c", 1))
    fn = Recorder()
    results = run(items, fn, workers=1, per_host=2)
    assert fn.started == [("a", 0), ("b", 0), ("c", 0), ("a", 1), ("b", 1), ("a", 2)]
    assert results == [f"{h}/{n}" for h, n in items]


def test_a_failure_stops_new_starts_waits_for_running_and_raises_the_first_listed() -> None:
    items = outlets(("a", 4), ("b", 4))
    fn = Recorder(fail={("a", 0), ("b", 0)})
    with pytest.raises(RuntimeError, match=r"boom \('a', 0\)"):
        run(items, fn, workers=2, per_host=1)
    assert fn.calls == Counter({("a", 0): 1, ("b", 0): 1})  # nothing started after the failures
    assert sum(fn.running.values()) == 0  # none left running when it raised


def test_a_failure_with_others_running_waits_for_them() -> None:
    gate = threading.Event()

    class SlowB(Recorder):
        def __call__(self, item: Item) -> str:
            if item[0] == "a":
                threading.Timer(0.05, gate.set).start()
                raise ValueError("a failed")
            return super().__call__(item)

    fn = SlowB(gate=gate)
    with pytest.raises(ValueError, match="a failed"):
        run([("b", 0), ("a", 0), ("b", 1)], fn, workers=2, per_host=1)
    assert fn.calls == Counter({("b", 0): 1})  # b/1 not started after a's failure
    assert fn.running["b"] == 0  # b/0 finished before the call returned


def test_empty_list() -> None:
    assert run([], Recorder(), workers=4, per_host=2) == []


def test_feeds_per_host_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().feeds_per_host == 2
    monkeypatch.setenv("NEWSWIRE_FEEDS_PER_HOST", "0")
    assert Settings().feeds_per_host == 0
    with pytest.raises(ValueError):
        Settings(feeds_per_host=-1)
