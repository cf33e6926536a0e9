"""The entry pool lets a few entries of each feed wait for their host's slot at a time (``ingest.poll.map_bounded``).

A feed's entries share one host, which the host throttle serves one request per interval; the entry threads
that take them sleep in the throttle. These tests pin the window's contract (order, bound, errors) and show
the reason for it: with a window, another host's entries run while a long feed's are still being spaced out.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError, ThreadPoolExecutor
from types import SimpleNamespace

import pytest

from ingest.politeness import HostThrottle, on_admission
from ingest.poll import FeedPoller, map_bounded
from newswire.settings import Settings


def test_results_come_back_in_item_order_whatever_finishes_first() -> None:
    delays = [0.05, 0.0, 0.03, 0.0, 0.01, 0.02]

    def slow(i: int) -> int:
        time.sleep(delays[i])
        return i * 10

    with ThreadPoolExecutor(4) as pool:
        assert map_bounded(pool, slow, list(range(len(delays))), 2) == [i * 10 for i in range(len(delays))]


@pytest.mark.parametrize("bound", [1, 2, 3])
def test_never_more_than_bound_items_are_in_the_pool(bound: int) -> None:
    lock = threading.Lock()
    running = peak = 0

    def work(_: int) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.01)
        with lock:
            running -= 1

    with ThreadPoolExecutor(8) as pool:
        map_bounded(pool, work, list(range(12)), bound)
    assert peak == bound


def test_a_bound_of_zero_still_makes_progress() -> None:
    with ThreadPoolExecutor(2) as pool:
        assert map_bounded(pool, lambda x: x + 1, [1, 2, 3], 0) == [2, 3, 4]


def test_the_first_error_is_raised_and_items_not_started_are_not_run() -> None:
    started: list[int] = []

    def work(i: int) -> int:
        started.append(i)
        if i == 1:
            raise ValueError("entry 1")
        return i

    with ThreadPoolExecutor(1) as pool, pytest.raises(ValueError, match="entry 1"):
        map_bounded(pool, work, list(range(6)), 1)
    assert started == [0, 1]


def _feed_seconds(bound: int) -> tuple[float, float]:
    """Seconds until a long feed (host a, 12 entries) and a short one (host b, 2 entries, queued just after)
    are done, sharing 4 entry threads and a 0.3 s host spacing."""
    throttle = HostThrottle(0.3)
    t0 = time.monotonic()
    done: dict[str, float] = {}

    def feed(host: str, entries: int) -> None:
        map_bounded(pool, lambda _: throttle.wait(f"http://{host}/x"), list(range(entries)), bound)
        done[host] = time.monotonic() - t0

    with ThreadPoolExecutor(4) as pool:
        long = threading.Thread(target=feed, args=("a.example", 12))
        long.start()
        time.sleep(0.05)
        short = threading.Thread(target=feed, args=("b.example", 2))
        short.start()
        long.join()
        short.join()
    return done["a.example"], done["b.example"]


def test_a_short_feed_is_not_queued_behind_a_long_feeds_spacing() -> None:
    long_done, short_done = _feed_seconds(bound=2)
    assert short_done < 1.2  # its two slots (0 and 0.3 s) on its own host, with threads left for it
    assert long_done >= 3.0  # the long feed still gets one request per 0.3 s, no faster

    # The whole chunk at once (``entries_per_feed`` 0): the short feed's entries wait behind the long one's.
    _, short_unbounded = _feed_seconds(bound=12)
    assert short_unbounded > 2.0


def test_entries_per_feed_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().entries_per_feed == 3
    monkeypatch.setenv("NEWSWIRE_ENTRIES_PER_FEED", "0")
    assert Settings().entries_per_feed == 0


@pytest.mark.parametrize(
    ("host_interval", "entries_per_feed", "window"),
    [(1.0, 3, 3), (1.0, 0, 25), (0.0, 3, 3)],
)
def test_the_window_applies_with_or_without_a_global_host_interval(
    host_interval: float, entries_per_feed: int, window: int
) -> None:
    settings = Settings(host_interval=host_interval, entries_per_feed=entries_per_feed)
    assert FeedPoller._entry_window(SimpleNamespace(settings=settings), 25) == window  # type: ignore[arg-type]


def test_the_throttle_reports_each_admission_to_the_current_context_only() -> None:
    clock = [0.0]
    slept: list[float] = []
    events: list[str] = []
    throttle = HostThrottle(1.0, clock=lambda: clock[0], sleep=lambda s: (slept.append(s), events.append("slept")))
    throttle.wait("http://a.example/1")  # no callback set: nothing to call
    with on_admission(lambda: events.append("admitted")):
        throttle.wait("http://a.example/2")  # spaced: sleeps first, then admitted
        throttle.wait("http://b.example/1")  # a free host: admitted without sleeping
    throttle.wait("http://c.example/1")
    assert slept == [1.0]
    assert events == ["slept", "admitted", "admitted"]

    seen: list[str] = []
    with on_admission(lambda: seen.append("main")):
        other = threading.Thread(target=throttle.wait, args=("http://d.example/",))
        other.start()
        other.join()
    assert seen == []  # another thread's wait is not this context's admission


def test_an_entry_leaves_the_window_when_the_throttle_admits_it() -> None:
    """Window of 1, four entries on four free hosts, each downloading for 0.3 s after admission: they overlap.
    A window over whole entries would run them one after another (1.2 s)."""
    throttle = HostThrottle(1.0)

    def entry(i: int) -> int:
        throttle.wait(f"http://host-{i}.example/page")
        time.sleep(0.3)
        return i

    with ThreadPoolExecutor(8) as pool:
        started = time.monotonic()
        assert map_bounded(pool, entry, [0, 1, 2, 3], 1) == [0, 1, 2, 3]
        assert time.monotonic() - started < 0.75


def test_only_the_first_admission_of_an_entry_frees_its_place() -> None:
    """Each entry waits twice (robots.txt, then the page: two admissions). Were the second one to free a place
    as well, more than ``bound`` entries would be asleep in the throttle at once."""
    lock = threading.Lock()
    asleep = peak = 0

    def counted_sleep(seconds: float) -> None:
        nonlocal asleep, peak
        with lock:
            asleep += 1
            peak = max(peak, asleep)
        time.sleep(seconds)
        with lock:  # before the throttle reports the admission
            asleep -= 1

    robots = HostThrottle(0.05, sleep=counted_sleep)  # every entry's first request: one host, spaced
    pages = HostThrottle(0.0)  # the second: admitted at once, and reported again

    def entry(i: int) -> int:
        robots.wait("http://one.example/robots.txt")
        pages.wait(f"http://one.example/{i}")
        return i

    with ThreadPoolExecutor(12) as pool:
        assert map_bounded(pool, entry, list(range(10)), 2) == list(range(10))
    assert peak == 2


def test_an_entry_that_fails_before_the_throttle_frees_its_place_and_the_failure_is_raised() -> None:
    ran: list[int] = []

    def entry(i: int) -> int:
        ran.append(i)
        if i == 0:
            raise RuntimeError("no throttle reached")
        return i

    with ThreadPoolExecutor(2) as pool, pytest.raises(RuntimeError, match="no throttle reached"):
        map_bounded(pool, entry, list(range(5)), 1)
    assert ran == [0]  # nothing submitted after the failure


def test_an_entry_cancelled_by_a_pool_shutdown_does_not_hang_the_window() -> None:
    """An entry cancelled before it ran never reaches the throttle nor finishes: its place must not be kept."""
    gate = threading.Event()
    pool = ThreadPoolExecutor(1)
    blocker = pool.submit(gate.wait, 5)  # the only thread is busy: the window's entries queue behind it
    outcome: list[BaseException] = []

    def run_window() -> None:
        try:
            map_bounded(pool, lambda i: i, [0, 1, 2], 1)
        except BaseException as exc:  # the test inspects what the window raised
            outcome.append(exc)

    caller = threading.Thread(target=run_window)
    caller.start()
    time.sleep(0.1)
    pool.shutdown(wait=False, cancel_futures=True)
    gate.set()
    caller.join(5)
    assert not caller.is_alive()
    assert blocker.result() is True
    assert len(outcome) == 1 and isinstance(outcome[0], CancelledError)
