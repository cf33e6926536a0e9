"""One window per host, shared by every feed a process polls at once (``ingest.admission.HostWindow``).

An outlet lists many feeds on one host. Each concurrent feed's own window (``map_bounded``'s ``bound``) lets a few
of its entries sleep in the host throttle, so F feeds of one host put F times that many sleepers in the entry
pool while entries of other hosts queue behind them. The host window bounds the sleepers of a host across all
feeds; entries over it wait in their feed's thread, outside the pool. These tests pin that bound, that another
host's entries go first, and that the window's places come back however an entry ends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from concurrent.futures.thread import BrokenThreadPool
from typing import Any

import pytest

from ingest.admission import HostWindow, map_bounded, url_host
from ingest.politeness import HostThrottle
from newswire.settings import Settings

BIG, OTHER = "big.example", "other.example"
BIG_KEY, OTHER_KEY = "big.example:80", "other.example:80"


class FrozenClock:
    """The throttle's clock and sleep: time stands still (every sleeper in the throttle waits) until ``thaw``;
    then a sleep returns at once, moving the clock to its end. Why: which entries are admitted while the big host
    is throttled is then decided by the window alone, not by how fast a loaded machine schedules threads."""

    def __init__(self) -> None:
        self.now = 0.0
        self.thawed = threading.Event()
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            until = self.now + seconds
        assert self.thawed.wait(30), "the test never thawed the clock"
        with self.lock:
            self.now = max(self.now, until)

    def thaw(self) -> None:
        self.thawed.set()


class Entries:
    """Entries that wait in a throttle on a :class:`FrozenClock`: records the order of admissions by host, and
    the most entries of each host asleep in an entry thread at once (started, not yet admitted)."""

    def __init__(self, spacing: float) -> None:
        self.clock = FrozenClock()
        self.throttle = HostThrottle(spacing, clock=self.clock, sleep=self.clock.sleep)
        self.lock = threading.Lock()
        self.order: list[str] = []
        self.asleep: dict[str, int] = {}
        self.peak: dict[str, int] = {}

    def __call__(self, url: str) -> str:
        host = url_host(url) or ""
        with self.lock:
            self.asleep[host] = self.asleep.get(host, 0) + 1
            self.peak[host] = max(self.peak.get(host, 0), self.asleep[host])
        self.throttle.wait(url)
        with self.lock:
            self.asleep[host] -= 1
            self.order.append(host)
        return url

    def state(self) -> tuple[int, list[str]]:
        with self.lock:
            return self.asleep.get(BIG_KEY, 0), list(self.order)


class CountingPool(ThreadPoolExecutor):
    """Counts submissions, so a test knows when every feed has queued what its window lets it."""

    def __init__(self, workers: int) -> None:
        super().__init__(workers)
        self.submitted = 0
        self.count_lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self.count_lock:
            self.submitted += 1
        return super().submit(fn, *args, **kwargs)


def _until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.005)


def _many_feeds_of_one_host(window: HostWindow | None, *, feeds: int = 6, entries: int = 4) -> Entries:
    """``feeds`` feeds of BIG (``entries`` each, a feed window of 3) polled at once, as the feed pool does, and
    then one feed of OTHER with 3 entries, sharing 8 entry threads.

    The throttle's clock stands still while BIG's entries fill what the windows let them: BIG's first entry is
    admitted at once, the next ones sleep (0.1 s apart, in frozen time). Then OTHER's feed arrives. With the host
    window, OTHER's first entry must be admitted while BIG stays throttled; without it, OTHER's entries are
    queued behind BIG's sleepers and none can be. Then the clock is thawed to let everything finish."""
    spaced = Entries(0.1)
    results: dict[str, list[str]] = {}

    def feed(name: str, host: str, count: int) -> None:
        urls = [f"http://{host}/{name}/{i}" for i in range(count)]
        results[name] = map_bounded(pool, spaced, urls, 3, hosts=window, host_of=url_host)
        assert results[name] == urls  # in item order, whatever finished first

    with CountingPool(8) as pool:
        pollers = [threading.Thread(target=feed, args=(f"f{n}", BIG, entries)) for n in range(feeds)]
        for poller in pollers:
            poller.start()
        if window is not None:
            # BIG's first entry admitted; the host's places all taken by sleepers; the other feeds wait outside.
            _until(lambda: spaced.state() == (window.limit, [BIG_KEY]), "the big host's window is full")
            other = threading.Thread(target=feed, args=("other", OTHER, 3))
            other.start()
            # Its first entry admitted (its next ones are spaced too), and none of BIG's: the clock stands still.
            _until(lambda: spaced.state()[1] == [BIG_KEY, OTHER_KEY], "the other host's first entry is admitted")
        else:
            # Every feed's window in the pool (3 each, and the admitted entry's successor), 8 threads asleep.
            _until(
                lambda: spaced.state() == (8, [BIG_KEY]) and pool.submitted == feeds * 3 + 1,
                "the pool is full of the big host's sleepers",
            )
            other = threading.Thread(target=feed, args=("other", OTHER, 3))
            other.start()
            _until(lambda: pool.submitted == feeds * 3 + 1 + 3, "the other host's entries are queued")
            assert OTHER_KEY not in spaced.state()[1]  # frozen: no thread frees up for them
        spaced.clock.thaw()
        for thread in (*pollers, other):
            thread.join(30)
    assert len(results) == feeds + 1
    return spaced


def test_other_hosts_entries_are_admitted_at_once_beside_many_feeds_of_one_host() -> None:
    window = HostWindow(2)
    spaced = _many_feeds_of_one_host(window)
    assert spaced.order.count(BIG_KEY) == 24 and spaced.order.count(OTHER_KEY) == 3
    # The other host's entries get threads at once: its first is admitted right after BIG's first, while BIG's
    # next ones sleep in the throttle, not after BIG's queue.
    assert spaced.order[:2] == [BIG_KEY, OTHER_KEY]
    assert spaced.peak[BIG_KEY] <= 2  # never more than the host's bound asleep, whatever the feeds' windows
    assert window.waiting(BIG_KEY) == window.waiting(OTHER_KEY) == 0


def test_without_a_host_window_the_feeds_of_one_host_fill_the_pool() -> None:
    """Why the window: six feeds with three entries each in the pool are 18 sleepers for 8 threads, and the
    other host's entries queue behind them until most of them have been admitted."""
    spaced = _many_feeds_of_one_host(None)
    assert spaced.peak[BIG_KEY] == 8
    assert spaced.order.index(OTHER_KEY) >= 8


@pytest.mark.parametrize("per_host", [1, 2, 3])
def test_never_more_than_the_bound_of_one_host_wait_across_calls(per_host: int) -> None:
    window = HostWindow(per_host)
    lock = threading.Lock()
    waiting = peak = 0
    observed: list[int] = []

    full = threading.Event()  # the bound was reached once: entries need not hold on any more

    def entry(i: int) -> int:
        nonlocal waiting, peak
        with lock:
            waiting += 1
            peak = max(peak, waiting)
            observed.append(window.waiting(BIG_KEY))
            if waiting == per_host:
                full.set()
        # Hold on until as many entries as the bound run at once (not a sleep: on a loaded machine entries can
        # finish before the next starts), then briefly, so the calls keep competing for the host's places.
        full.wait(10)
        time.sleep(0.001)
        with lock:
            waiting -= 1
        return i

    with ThreadPoolExecutor(16) as pool:
        calls = [
            threading.Thread(
                target=map_bounded,
                args=(pool, entry, list(range(6)), 3),
                kwargs={"hosts": window, "host_of": lambda _: BIG_KEY},
            )
            for _ in range(5)
        ]
        for call in calls:
            call.start()
        for call in calls:
            call.join(10)
    assert peak == per_host
    assert max(observed) <= per_host
    assert window.waiting(BIG_KEY) == 0


def test_a_multi_host_feed_passes_over_a_full_host_and_keeps_its_order() -> None:
    """Host a's only place is taken by another feed's entry: this feed's items of host b are submitted meanwhile,
    its item of host a waits, and the results still come back in item order."""
    window = HostWindow(1)
    release_a = threading.Event()
    started: list[str] = []

    def entry(item: str) -> str:
        started.append(item)
        if item == "a-held":
            release_a.wait(5)
        return item.upper()

    host_of: Callable[[str], str] = lambda item: item[0]  # noqa: E731
    with ThreadPoolExecutor(4) as pool:
        holder = pool.submit(map_bounded, pool, entry, ["a-held"], 1, hosts=window, host_of=host_of)
        while "a-held" not in started:
            time.sleep(0.01)
        result: list[list[str]] = []
        caller = threading.Thread(
            target=lambda: result.append(map_bounded(pool, entry, ["a1", "b1", "b2"], 3, hosts=window, host_of=host_of))
        )
        caller.start()
        deadline = time.monotonic() + 5
        while len(started) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert started == ["a-held", "b1", "b2"]  # a1 waits for host a's place, outside the pool
        release_a.set()
        caller.join(5)
        assert holder.result(5) == ["A-HELD"]
    assert result == [["A1", "B1", "B2"]]
    assert started[-1] == "a1"


def test_a_failure_gives_its_hosts_places_back() -> None:
    window = HostWindow(1)

    def entry(i: int) -> int:
        if i == 0:
            raise RuntimeError("entry 0")
        return i

    with ThreadPoolExecutor(2) as pool:
        with pytest.raises(RuntimeError, match="entry 0"):
            map_bounded(pool, entry, [0, 1, 2], 3, hosts=window, host_of=lambda _: BIG_KEY)
        assert window.waiting(BIG_KEY) == 0
        # The host is free for the next feed.
        assert map_bounded(pool, lambda i: i, [5, 6], 3, hosts=window, host_of=lambda _: BIG_KEY) == [5, 6]


def test_entries_cancelled_by_a_pool_shutdown_give_their_places_back() -> None:
    """Cancelled before they ran, they never reach the throttle nor finish: the host's other feeds must not wait
    for their places forever."""
    window = HostWindow(3)
    gate = threading.Event()
    pool = ThreadPoolExecutor(1)
    blocker = pool.submit(gate.wait, 5)  # the only thread is busy: the entries queue behind it
    outcome: list[BaseException] = []

    def run_window() -> None:
        try:
            map_bounded(pool, lambda i: i, [0, 1, 2], 3, hosts=window, host_of=lambda _: BIG_KEY)
        except BaseException as exc:  # the test inspects what the window raised
            outcome.append(exc)

    caller = threading.Thread(target=run_window)
    caller.start()
    deadline = time.monotonic() + 5
    while window.waiting(BIG_KEY) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert window.waiting(BIG_KEY) == 3
    pool.shutdown(wait=False, cancel_futures=True)
    gate.set()
    caller.join(5)
    assert not caller.is_alive()
    assert blocker.result() is True
    assert len(outcome) == 1 and isinstance(outcome[0], CancelledError)
    assert window.waiting(BIG_KEY) == 0


def test_entries_of_a_broken_pool_give_their_places_back() -> None:
    """A broken pool fails queued entries without running them: neither the throttle nor the entry's own end
    gives their places back, so the completion must, or the host stays full for every other feed."""
    window = HostWindow(3)
    pool = ThreadPoolExecutor(1, initializer=_fail)
    try:
        with pytest.raises(BrokenThreadPool):
            map_bounded(pool, lambda i: i, [0, 1], 3, hosts=window, host_of=lambda _: BIG_KEY)
    finally:
        pool.shutdown()
    assert window.waiting(BIG_KEY) == 0


def _fail() -> None:
    raise RuntimeError("the pool's initializer fails: the pool is broken")


def test_entries_without_a_host_are_not_bounded_by_one() -> None:
    """Entries with no link (or an unparseable one) are decided without a request: no host's place is taken."""
    window = HostWindow(1)
    assert url_host(None) is None and url_host("") is None and url_host("http://[::1/") is None
    assert url_host("https://News.Example/a") == "news.example:443"
    together = threading.Barrier(3, timeout=10)  # broken (and raising) unless all three run at once

    def entry(item: None) -> None:
        together.wait()
        return item

    with ThreadPoolExecutor(4) as pool:
        assert map_bounded(pool, entry, [None, None, None], 3, hosts=window, host_of=url_host) == [None] * 3


def test_entries_per_host_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().entries_per_host == 3
    monkeypatch.setenv("NEWSWIRE_ENTRIES_PER_HOST", "0")
    assert Settings().entries_per_host == 0
    with pytest.raises(ValueError):
        Settings(entries_per_host=-1)
