"""Entries blocked on another entry's work give their admission places back (``ingest.politeness.release_admission``).

A place in the feed's and the host's windows (``ingest.admission``) stands for "waiting for the host's request
slot". An entry waiting for another feed's entry of the same URL (``FeedPoller._decide``, up to three total
timeouts) or for another entry's robots.txt fetch of its origin (``RobotsCache.rules``) is not: holding the
host's places while it waits would stall every feed of that host (three such waiters fill a host's window).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

from ingest.admission import HostWindow, map_bounded, url_host
from ingest.claims import UrlClaims
from ingest.feedlist import FeedSpec
from ingest.feeds import FeedEntry
from ingest.ledger import DUPLICATE
from ingest.politeness import on_admission, release_admission
from ingest.poll import FeedPoller, _KnownUrls
from ingest.robots import RobotsCache

URL = "https://x.example/shared"


def test_release_admission_calls_the_current_callback_and_nothing_outside_a_block() -> None:
    calls: list[int] = []
    release_admission()  # outside any on_admission block: nothing to give back
    with on_admission(lambda: calls.append(1)):
        release_admission()
    release_admission()
    assert calls == [1]


class _Ledger:
    def known_urls(self, urls: list[str]) -> dict[str, str]:
        return {}


def _poller() -> FeedPoller:
    """A poller with only what ``_decide`` uses before fetching: the URL claims and the timeout."""
    poller = FeedPoller.__new__(FeedPoller)
    poller.claims = UrlClaims()
    poller.settings = SimpleNamespace(total_timeout=10.0)  # type: ignore[assignment]
    return poller


def _entry(link: str) -> FeedEntry:
    return FeedEntry(
        guid=link, link=link, title="t", summary=None, published=None, updated=None, author=None, tags=(), language=None
    )


def test_an_entry_waiting_for_another_feeds_claim_of_its_url_gives_its_places_back_first() -> None:
    poller = _poller()
    owner, slot = poller.claims.claim(URL)  # another feed's entry is fetching the same page
    assert owner
    released = threading.Event()
    outcome: list[Any] = []

    def waiter() -> None:
        known = _KnownUrls(ledger=_Ledger(), found={}, checked=frozenset())  # type: ignore[arg-type]
        with on_admission(released.set):
            outcome.append(poller._decide(FeedSpec(url="https://x.example/feed", name="f"), _entry(URL), known))

    thread = threading.Thread(target=waiter)
    thread.start()
    try:
        # Given back while the owner still holds the URL, not only once the waiter finishes.
        assert released.wait(10)
        assert not outcome
    finally:
        poller.claims.resolve(slot, "art-1")
        thread.join(10)
    assert outcome and outcome[0].outcome == DUPLICATE and outcome[0].duplicate_of == "art-1"


def test_waiters_for_one_slow_urls_owner_do_not_stall_their_hosts_other_entries() -> None:
    """The reviewer's scenario through the real window: a host bound of 3, three section feeds listing the page
    another feed is fetching (slowly) and then one of their own. Their own pages are admitted while the owner is
    still busy: the waiters gave the host's places back."""
    window = HostWindow(3)
    claims = UrlClaims()
    owner_busy, own_pages = threading.Event(), threading.Barrier(4, timeout=10)
    owner_admitted = threading.Event()
    admitted: list[str] = []

    def decide(url: str) -> str:
        owner, slot = claims.claim(url)
        if not owner:
            release_admission()
            claims.wait(slot, timeout=30)
            return "dup"
        release_admission()  # stands for the throttle letting its first request through
        admitted.append(url)
        if url.endswith("/shared"):
            owner_admitted.set()
            owner_busy.wait(10)  # downloading and extracting a slow page
        else:
            own_pages.wait()  # the three own pages and the test meet: all were admitted meanwhile
        claims.resolve(slot, "id-" + url)
        return "new"

    with ThreadPoolExecutor(16) as pool:
        first = pool.submit(map_bounded, pool, decide, [URL], 3, hosts=window, host_of=url_host)
        # the first feed owns the shared page before the others list it (on a loaded host a later feed's thread
        # could otherwise claim it first, and the first feed would be the one that waits)
        assert owner_admitted.wait(10)
        feeds = [
            threading.Thread(
                target=map_bounded,
                args=(pool, decide, [URL, f"https://x.example/own{s}"], 3),
                kwargs={"hosts": window, "host_of": url_host},
            )
            for s in range(3)
        ]
        for feed in feeds:
            feed.start()
        own_pages.wait()  # raises BrokenBarrierError if the own pages were held back behind the waiters
        assert sorted(admitted[1:]) == [f"https://x.example/own{s}" for s in range(3)]
        owner_busy.set()
        for feed in feeds:
            feed.join(10)
        assert first.result(10) == ["new"]
    assert window.waiting("x.example:443") == 0


class _BlockingFetcher:
    """A fetcher whose robots.txt request stays asleep (in its host's Crawl-delay, say) until ``go`` is set."""

    def __init__(self) -> None:
        self.started, self.go = threading.Event(), threading.Event()
        self.fetches = 0

    def get(self, url: str, **options: Any) -> Any:
        self.fetches += 1
        self.started.set()
        assert self.go.wait(10)
        return SimpleNamespace(content=b"User-agent: *\nDisallow: /private\n", final_url=url)


def test_an_entry_waiting_behind_another_entrys_robots_fetch_gives_its_places_back_first() -> None:
    fetcher = _BlockingFetcher()
    cache = RobotsCache(fetcher, "newswire-test/1.0")  # type: ignore[arg-type]
    first = threading.Thread(target=cache.allowed, args=("https://x.example/a",))
    first.start()
    assert fetcher.started.wait(10)
    released = threading.Event()
    answers: list[bool] = []

    def waiter() -> None:
        with on_admission(released.set):
            answers.append(cache.allowed("https://x.example/private/b"))

    second = threading.Thread(target=waiter)
    second.start()
    try:
        assert released.wait(10)  # while the first entry's fetch is still asleep
        assert not answers
    finally:
        fetcher.go.set()
        first.join(10)
        second.join(10)
    assert answers == [False] and fetcher.fetches == 1


def test_an_entry_fetching_robots_itself_keeps_its_places_until_the_throttle_admits_it() -> None:
    """Uncontended, the lookup is the entry's own first request: its place is its to keep."""
    fetcher = _BlockingFetcher()
    fetcher.go.set()
    cache = RobotsCache(fetcher, "newswire-test/1.0")  # type: ignore[arg-type]
    calls: list[int] = []
    with on_admission(lambda: calls.append(1)):
        assert cache.allowed("https://x.example/a")
    assert calls == [] and fetcher.fetches == 1
