"""arb.collection: automatic collection off for a run, the same thresholds applied at idle moments."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from arb.collection import FULL_COLLECTION_SPACING, IdleCollection, collection_paused


class Node:
    """A container that can be part of a reference cycle."""

    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def gc_state() -> Iterator[None]:
    """Restore the collector's switch, thresholds and frozen objects, whatever a test did."""
    enabled, thresholds, frozen = gc.isenabled(), gc.get_threshold(), gc.get_freeze_count()
    yield
    if gc.get_freeze_count() and not frozen:
        gc.unfreeze()
    gc.set_threshold(*thresholds)
    if enabled:
        gc.enable()
    else:
        gc.disable()


def dropped_cycle() -> weakref.ref[Node]:
    """A two-node cycle nothing else references: only the cyclic collector can free it."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


@pytest.mark.usefixtures("gc_state")
def test_start_freezes_and_disables_and_stop_puts_both_back() -> None:
    gc.enable()
    assert gc.get_freeze_count() == 0
    collection = IdleCollection()
    collection.start()
    assert collection.active and not gc.isenabled()
    assert gc.get_freeze_count() > 0
    collection.start()  # a second start changes nothing
    collection.stop()
    assert not collection.active and gc.isenabled()
    assert gc.get_freeze_count() == 0
    collection.stop()  # neither does a second stop
    assert gc.isenabled()


@pytest.mark.usefixtures("gc_state")
def test_stop_leaves_a_collector_that_was_off_off_and_foreign_frozen_objects_frozen() -> None:
    gc.disable()
    gc.freeze()
    frozen = gc.get_freeze_count()
    collection = IdleCollection()
    collection.start()
    assert gc.get_freeze_count() == frozen
    collection.stop()
    assert not gc.isenabled()
    assert gc.get_freeze_count() == frozen


@pytest.mark.usefixtures("gc_state")
def test_cycles_wait_for_collect_if_due_which_follows_the_thresholds() -> None:
    collection = IdleCollection()
    assert collection.collect_if_due() is None  # not started: never collects
    collection.start()
    try:
        gc.set_threshold(50, 2, 2)
        cycle = dropped_cycle()
        keep = [[] for _ in range(60)]  # 60 live containers: generation 0 passes its threshold
        assert cycle() is not None, "automatic collection is off"
        assert collection.collect_if_due() == 0
        assert cycle() is None
        assert collection.collect_if_due() is None  # the count starts again
        generations = []
        for _ in range(12):
            keep.extend([] for _ in range(60))
            generations.append(collection.collect_if_due())
        # As CPython counts: each young collection adds one to the middle generation's count, each
        # middle one to the oldest's, and a generation is due once its count passes its threshold.
        assert generations == [0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 2]
        assert collection.collections == [9, 3, 1]
        assert collection.longest_ns > 0
    finally:
        collection.stop()


@pytest.mark.usefixtures("gc_state")
def test_nothing_is_collected_when_automatic_collection_was_off_or_its_young_threshold_is_zero() -> None:
    gc.enable()
    collection = IdleCollection()
    collection.start()
    try:
        gc.set_threshold(0)
        _ = [[] for _ in range(100)]
        assert collection.collect_if_due() is None
        gc.set_threshold(50, 0, 0)  # zero for an older generation: due once counted at all, as in CPython
        assert [collection.collect_if_due() for _ in range(3)] == [0, 1, 2]
    finally:
        collection.stop()
    gc.disable()
    collection.start()
    try:
        gc.set_threshold(50)
        _ = [[] for _ in range(100)]
        assert collection.collect_if_due() is None
    finally:
        collection.stop()
    assert not gc.isenabled()


@pytest.mark.usefixtures("gc_state")
def test_a_full_collection_waits_for_spacing_times_what_the_last_one_took() -> None:
    now = [0]

    def clock() -> int:
        now[0] += 1_000  # each reading 1 us later: a collection "takes" 1 us
        return now[0]

    gc.enable()
    collection = IdleCollection(clock=clock)
    collection.start()
    try:
        gc.set_threshold(50, 0, 0)
        keep = [[] for _ in range(60)]
        assert [collection.collect_if_due() for _ in range(3)] == [0, 1, 2]  # the full one "took" 1 us
        keep.extend([] for _ in range(60))
        # The oldest generation is due again after a young and a middle collection, but too soon.
        assert [collection.collect_if_due() for _ in range(3)] == [0, 1, None]
        now[0] += FULL_COLLECTION_SPACING * 1_000
        assert collection.collect_if_due() == 2
    finally:
        collection.stop()


def test_collection_paused_turns_automatic_collection_off_inside_and_puts_it_back(gc_state: None) -> None:
    gc.enable()
    with collection_paused():
        assert not gc.isenabled()
        ring = Node()
        ring.other = ring
        alive = weakref.ref(ring)
        del ring
        kept = [Node() for _ in range(10 * gc.get_threshold()[0])]  # far past the young threshold
        assert alive() is not None and kept  # the cycle was not collected
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collection_paused():
        raise RuntimeError("a failed restore")
    assert gc.isenabled()  # back on after an error too
    gc.disable()
    with collection_paused():
        pass
    assert not gc.isenabled()  # off before, off after
