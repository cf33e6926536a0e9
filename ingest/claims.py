"""Which thread of this process handles a URL, so one article reached through two feeds is fetched once.

Feeds are polled concurrently; without coordination two threads would both fetch and publish the same
article before either recorded it. The first thread to claim a URL processes it; later claimants wait for
its result and record a duplicate (or, if it failed, process the entry themselves). Across processes the
ledger and the transform's id check catch the rarer race.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Slot:
    url: str
    done: threading.Event = field(default_factory=threading.Event)
    article_id: str | None = None


# A finished claim needs no event of its own: a run resolves tens of thousands of URLs, and an Event (a
# condition and a lock) per URL kept for the whole run made the claims grow with the run's size.
_DONE = threading.Event()
_DONE.set()


class UrlClaims:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, _Slot] = {}  # claimed, owner still working
        self._resolved: dict[str, str | None] = {}  # finished: the article id, or None when the owner failed

    def claim(self, url: str) -> tuple[bool, _Slot]:
        """Return (True, slot) to the first caller for ``url``; (False, slot) to everyone else."""
        with self._lock:
            slot = self._pending.get(url)
            if slot is not None:
                return False, slot
            if url in self._resolved:
                return False, _Slot(url, _DONE, self._resolved[url])
            slot = self._pending[url] = _Slot(url)
            return True, slot

    def wait(self, slot: _Slot, timeout: float) -> str | None:
        """The article id the owner reached, or None if it failed or did not finish in time."""
        slot.done.wait(timeout)
        return slot.article_id

    def resolve(self, slot: _Slot, article_id: str | None, also: Iterable[str] = ()) -> None:
        """Publish the owner's result; ``also`` are further URLs (final, canonical) now known to map to it."""
        with self._lock:
            slot.article_id = article_id
            if self._pending.get(slot.url) is slot:
                del self._pending[slot.url]
                self._resolved[slot.url] = article_id
            if article_id is not None:
                for url in also:
                    other = self._pending.get(url)
                    if other is not None:  # another owner is still at work on it: release its waiters
                        if other.article_id is None:
                            other.article_id = article_id
                            other.done.set()
                    elif self._resolved.get(url) is None:
                        self._resolved[url] = article_id
        slot.done.set()

    def known(self, url: str) -> str | None:
        with self._lock:
            slot = self._pending.get(url)
            return slot.article_id if slot is not None else self._resolved.get(url)
