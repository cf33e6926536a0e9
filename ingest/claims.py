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


@dataclass
class _Slot:
    done: threading.Event = field(default_factory=threading.Event)
    article_id: str | None = None


class UrlClaims:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[str, _Slot] = {}

    def claim(self, url: str) -> tuple[bool, _Slot]:
        """Return (True, slot) to the first caller for ``url``; (False, slot) to everyone else."""
        with self._lock:
            slot = self._slots.get(url)
            if slot is not None:
                return False, slot
            slot = self._slots[url] = _Slot()
            return True, slot

    def wait(self, slot: _Slot, timeout: float) -> str | None:
        """The article id the owner reached, or None if it failed or did not finish in time."""
        slot.done.wait(timeout)
        return slot.article_id

    def resolve(self, slot: _Slot, article_id: str | None, also: Iterable[str] = ()) -> None:
        """Publish the owner's result; ``also`` are further URLs (final, canonical) now known to map to it."""
        with self._lock:
            slot.article_id = article_id
            if article_id is not None:
                for url in also:
                    other = self._slots.setdefault(url, _Slot())
                    if other.article_id is None:
                        other.article_id = article_id
                        other.done.set()
        slot.done.set()

    def known(self, url: str) -> str | None:
        with self._lock:
            slot = self._slots.get(url)
            return slot.article_id if slot is not None else None
