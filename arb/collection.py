"""Python's cyclic garbage collection, moved off the order path to the engine's idle moments.

Left automatic, the collector runs whenever enough container objects have been allocated,
which is mostly while an execution builds its orders, results and journal rows: a young
collection measured ~80 µs at the median in the engine's process and a middle one ~0.7 ms,
each landing between a market-data frame and the orders it causes. Refcounting frees almost
everything the engine allocates; the collector is only needed for reference cycles, and they
can wait a few milliseconds.

``IdleCollection`` freezes what start-up built (catalogs, books, connectors: kept for the whole
run, so no collection needs to walk them again), turns automatic collection off, and collects
when told the engine is idle, by the per-generation counts and thresholds CPython applies.
CPython also puts off a full collection until the objects that survived into the oldest
generation since the last one number a quarter of it, so that a heap that keeps growing is
not walked again and again; that count is not exposed, so a full collection here waits
instead until the time since the last one is ``FULL_COLLECTION_SPACING`` times what that one
took (at most ~4 % of the time in full collections). ``stop`` puts back what it found; with
automatic collection off before ``start``, it stays off and nothing is collected.

``collection_paused`` turns automatic collection off around a bulk build of objects that all
stay alive, such as the start-up restore from the journal: there every young collection
promotes what it walked, and the older generations' collections walk the growing heap again
and again (a third of a restore's time, ``benchmarks/bench_restore.py``).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import Callable, Iterator

log = logging.getLogger(__name__)

FULL_COLLECTION_SPACING = 25


class IdleCollection:
    """Automatic garbage collection off for a run; ``collect_if_due`` runs what it would have run."""

    def __init__(self, clock: Callable[[], int] = time.perf_counter_ns) -> None:
        self.active = False
        self.collections = [0, 0, 0]  # per generation, since ``start``
        self.longest_ns = 0
        self._clock = clock
        self._was_enabled = False
        self._froze = False
        self._full_not_before_ns = 0

    def start(self) -> None:
        """Collect once, freeze the survivors and turn automatic collection off (no-op when active)."""
        if self.active:
            return
        self.active = True
        self.collections = [0, 0, 0]
        self.longest_ns = 0
        self._full_not_before_ns = 0
        self._was_enabled = gc.isenabled()
        gc.collect()
        # Freezing is process-wide: objects frozen by someone else stay as they are.
        self._froze = gc.get_freeze_count() == 0
        if self._froze:
            gc.freeze()
        gc.disable()

    def collect_if_due(self) -> int | None:
        """Collect the oldest generation whose count passed its threshold; the generation, or None."""
        if not (self.active and self._was_enabled):
            return None
        counts, thresholds = gc.get_count(), gc.get_threshold()
        if thresholds[0] == 0:  # CPython's switch for "never collect automatically"
            return None
        started = self._clock()
        due = None
        for generation in (2, 1, 0):
            if counts[generation] > thresholds[generation]:
                if generation == 2 and started < self._full_not_before_ns:
                    continue
                due = generation
                break
        if due is None:
            return None
        gc.collect(due)
        elapsed = self._clock() - started
        self.collections[due] += 1
        if due == 2:
            self._full_not_before_ns = started + elapsed * FULL_COLLECTION_SPACING
        if elapsed > self.longest_ns:
            self.longest_ns = elapsed
        return due

    def stop(self) -> None:
        """Put automatic collection (and the frozen objects) back as ``start`` found them."""
        if not self.active:
            return
        self.active = False
        if self._froze:
            gc.unfreeze()
            self._froze = False
        if self._was_enabled:
            gc.enable()
        log.debug(
            "idle garbage collections: %d young, %d middle, %d full; longest %.3f ms",
            *self.collections, self.longest_ns / 1e6,
        )


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """Automatic garbage collection off inside the block, then back as it was (nothing is collected here)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
