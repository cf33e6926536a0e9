"""Keeping the cyclic garbage collector off the transform's long-lived story state.

A transform process holds its story state for its whole life: the near-duplicate index and the clusterer's
events, postings and vocabularies of every article inside the horizon, tens of thousands of container objects
after a few batches. CPython's collector walks every tracked object of the oldest generation at each full
collection, and a batch allocates enough for several of them: the walks found nothing to free in that state,
and they were the largest single cost of a batch outside the clustering itself (``gc.callbacks`` timing of
``bench.transform``: about 8 % of its time, two thirds of it full collections).

So after each batch the objects alive at that point (the state, mostly) are moved to the collector's permanent
generation (:func:`gc.freeze`): later collections walk only what later batches allocate. Freezing never frees
or keeps anything by itself: an object still dies as soon as its last reference goes (reference counting), and
only garbage held in a reference cycle waits for a collection. Each freeze follows a collection of the young
generations (cheap: the objects made since the last automatic collection), so the cycles a batch just dropped
are not frozen; a full collection there would walk every object made since the previous freeze, which cost
about what the freeze saves. What is cyclic garbage in the older generation, or becomes garbage after it was
frozen, waits for :meth:`StateFreezer.thaw`: every ``collect_every`` batches of the process (and whenever a
caller drops its state) everything is thawed and collected once, which bounds that memory whatever a future
change leaves in cycles (the story state holds none). The freeze is the process's, so the count of batches is too.
"""

from __future__ import annotations

import gc

__all__ = ["FREEZER", "StateFreezer"]


class StateFreezer:
    """Freezes the process's objects after each batch; thaws and collects them every ``collect_every`` batches."""

    def __init__(self, *, collect_every: int = 10) -> None:
        if collect_every < 1:
            raise ValueError(f"collect_every must be at least 1, got {collect_every!r}")
        self.collect_every = collect_every
        self._batches = 0

    def after_batch(self) -> None:
        """Call once a batch is done and its own objects are released: collect the young generations (the cycles
        the batch just dropped), then freeze what is left (the state); every ``collect_every`` calls, thaw and
        collect everything first."""
        self._batches += 1
        if self._batches % self.collect_every == 0:
            self.thaw()
        else:
            gc.collect(1)
        gc.freeze()

    def thaw(self) -> None:
        """Thaw everything frozen and collect it once (cyclic garbage among frozen objects is freed here)."""
        gc.unfreeze()
        gc.collect()


#: The one freezer of the process: :func:`gc.freeze` acts on the whole process, whichever batch processor calls it.
FREEZER = StateFreezer()
