"""The transform freezes its long-lived objects after each batch and thaws and collects them every few batches; the
clusterer's per-article IDF tables are freed by reference counting (no cycle left for the collector)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from transform.clustering import _IdfTable
from transform.gcfreeze import StateFreezer


class _Node:
    """An object that can sit in a reference cycle and be watched by a weak reference."""

    def __init__(self) -> None:
        self.other: _Node | None = None


@pytest.fixture(autouse=True)
def _thawed() -> Iterator[None]:
    gc.collect()
    yield
    gc.unfreeze()
    gc.collect()


def _cycle() -> tuple[_Node, weakref.ref[_Node]]:
    first, second = _Node(), _Node()
    first.other, second.other = second, first
    return first, weakref.ref(first)


def test_a_batch_collects_the_cycles_it_left_and_freezes_the_rest() -> None:
    freezer = StateFreezer(collect_every=100)
    kept = [_Node() for _ in range(10)]
    gc.collect()
    garbage = _cycle()[1]  # dropped at once: young garbage of this batch
    assert garbage() is not None
    freezer.after_batch()
    assert garbage() is None
    assert gc.get_freeze_count() >= len(kept)


def test_a_cycle_dropped_after_it_was_frozen_waits_for_every_nth_batch() -> None:
    freezer = StateFreezer(collect_every=3)
    held, garbage = _cycle()
    freezer.after_batch()  # frozen while alive (part of the state)
    del held  # garbage now, but frozen: neither the next batch's collection nor an explicit one looks at it
    freezer.after_batch()
    gc.collect()
    assert garbage() is not None
    freezer.after_batch()  # the third batch: everything thawed and collected, then the survivors frozen again
    assert garbage() is None
    assert gc.get_freeze_count() > 0


def test_thaw_collects_a_cycle_of_a_dropped_state_at_once() -> None:
    freezer = StateFreezer(collect_every=100)
    held, garbage = _cycle()
    freezer.after_batch()
    del held
    gc.collect()
    assert garbage() is not None
    freezer.thaw()
    assert garbage() is None and gc.get_freeze_count() == 0


def test_collect_every_must_be_positive() -> None:
    with pytest.raises(ValueError):
        StateFreezer(collect_every=0)


def test_an_idf_table_and_its_squares_are_freed_without_the_collector() -> None:
    gc.disable()
    try:
        table = _IdfTable(101)
        assert table.squares[4] == table[4] ** 2  # the same float as squaring the table's own value
        watched = weakref.ref(table.squares)
        del table
        assert watched() is None
    finally:
        gc.enable()
