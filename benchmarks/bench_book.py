"""arb_core.book against a SortedDict book (the usual pure-Python design) on the same data.

Operations of ~10-100 ns are timed as a loop of many calls inside one benchmarked call,
because pytest-benchmark's own per-call overhead is of the same order; the per-operation
figure is recorded in ``extra_info``.

Memory (2,000 books of 1,000 levels a side, the SortedDict books as the baseline): the
timed part is building the books; the memory figure, peak RSS of the same build in a fresh
interpreter less that interpreter's own, is in ``extra_info`` (``books_mb``), with the
compiled books' ratio to the SortedDict ones.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import textwrap
from collections.abc import Callable
from itertools import islice
from pathlib import Path
from typing import Any

import pytest
from sortedcontainers import SortedDict

from arb_core.book import APPLIED, ASK, BID, DeltaBatch, OrderBook

DEPTH = 1_000
MID = 1_000_000
BATCH_CALLS = 20
BEST_CALLS = 1_000
WALK_CALLS = 100


def deep_levels() -> list[tuple[int, int, int]]:
    """1,000 levels per side, one tick apart, sizes 10..1009 lots."""
    bids = [(BID, MID - 1 - i, 10 + i) for i in range(DEPTH)]
    asks = [(ASK, MID + 1 + i, 10 + i) for i in range(DEPTH)]
    return bids + asks


def top_deltas() -> list[tuple[int, int, int]]:
    """100 deltas within the top 10 levels: delete a level then put it back resized.

    Every pair opens and closes a slot a few places below the best level, as most real
    updates do, and leaves the book's shape unchanged so rounds can repeat.
    """
    deltas = []
    for k in range(50):
        side = BID if k % 2 else ASK
        depth = k % 10
        price = MID - 1 - depth if side == BID else MID + 1 + depth
        deltas += [(side, price, 0), (side, price, 10 + depth + k % 3)]
    return deltas


def expected_top(n: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Best ``n`` levels per side after ``top_deltas`` were applied (any number of times)."""
    sides: tuple[dict[int, int], dict[int, int]] = ({}, {})
    for side, price, size in deep_levels() + top_deltas():
        if size:
            sides[side][price] = size
        else:
            del sides[side][price]
    return sorted(sides[BID].items(), reverse=True)[:n], sorted(sides[ASK].items())[:n]


def compiled_book() -> OrderBook:
    batch = DeltaBatch()
    for level in deep_levels():
        batch.add(*level)
    batch.last_update_id = 1
    book = OrderBook("BTC_USDT")
    book.apply_snapshot(batch, 0)
    return book


class SortedDictBook:
    """Baseline: one SortedDict per side, same sequence and crossing rules."""

    def __init__(self, levels: list[tuple[int, int, int]]) -> None:
        self.sides = (SortedDict(), SortedDict())
        for side, price, size in levels:
            self.sides[side][price] = size
        self.last_update_id = 1

    def apply_batch(self, first: int, last: int, deltas: list[tuple[int, int, int]]) -> int:
        if last <= self.last_update_id:
            return 1
        if first > self.last_update_id + 1:
            raise RuntimeError("gap")
        sides = self.sides
        for side, price, size in deltas:
            if size:
                sides[side][price] = size
            else:
                sides[side].pop(price, None)
        self.last_update_id = last
        if sides[BID] and sides[ASK] and sides[BID].peekitem(-1)[0] >= sides[ASK].peekitem(0)[0]:
            raise RuntimeError("crossed")
        return 0

    def walk_asks(self, size_lots: int) -> tuple[int, int, int, int]:
        left, notional, worst, levels = size_lots, 0, 0, 0
        for price, size in self.sides[ASK].items():
            if left == 0:
                break
            take = min(size, left)
            notional += price * take
            left -= take
            worst = price
            levels += 1
        return size_lots - left, notional, worst, levels


def per_op_ns(benchmark: Any, ops: int) -> float:
    """Median time of one operation in ns, from a benchmarked loop of ``ops`` operations."""
    median_s: float = benchmark.stats.stats.median
    return round(median_s * 1e9 / ops, 2)


# ---- (1) apply a 100-delta batch near the top of a 1,000-level book ---------------------

@pytest.mark.benchmark(group="apply_batch 100 deltas, 1000 levels")
def test_apply_batch_compiled(benchmark: Any) -> None:
    book = compiled_book()
    deltas = top_deltas()
    batch = DeltaBatch(len(deltas))
    for level in deltas:
        batch.add(*level)
    apply = book.apply_batch

    def run() -> int:
        result = 0
        for _ in range(BATCH_CALLS):
            batch.first_update_id = batch.last_update_id = book.last_update_id + 1
            result |= apply(batch, 0)
        return result

    assert benchmark(run) == APPLIED
    benchmark.extra_info["ns_per_delta"] = per_op_ns(benchmark, BATCH_CALLS * len(deltas))
    assert book.in_sync and (book.bid_count, book.ask_count) == (DEPTH, DEPTH)
    assert (book.top(BID, 20), book.top(ASK, 20)) == expected_top(20)


@pytest.mark.benchmark(group="apply_batch 100 deltas, 1000 levels")
def test_apply_batch_sorteddict(benchmark: Any) -> None:
    book = SortedDictBook(deep_levels())
    deltas = top_deltas()
    apply = book.apply_batch

    def run() -> int:
        result = 0
        for _ in range(BATCH_CALLS):
            next_id = book.last_update_id + 1
            result |= apply(next_id, next_id, deltas)
        return result

    assert benchmark(run) == 0
    benchmark.extra_info["ns_per_delta"] = per_op_ns(benchmark, BATCH_CALLS * len(deltas))
    assert len(book.sides[BID]) == len(book.sides[ASK]) == DEPTH
    bids = list(islice(reversed(book.sides[BID].items()), 20))
    assert (bids, list(islice(book.sides[ASK].items(), 20))) == expected_top(20)


# ---- (2) best bid from Python -----------------------------------------------------------

@pytest.mark.benchmark(group="best_bid from Python")
def test_best_bid_compiled(benchmark: Any) -> None:
    best_bid = compiled_book().best_bid
    calls = range(BEST_CALLS)

    def run() -> tuple[int, int] | None:
        result = None
        for _ in calls:
            result = best_bid()
        return result

    assert benchmark(run) == (MID - 1, 10)
    benchmark.extra_info["ns_per_call"] = per_op_ns(benchmark, BEST_CALLS)


@pytest.mark.benchmark(group="best_bid from Python")
def test_best_bid_sorteddict(benchmark: Any) -> None:
    peekitem = SortedDictBook(deep_levels()).sides[BID].peekitem
    calls = range(BEST_CALLS)

    def run() -> tuple[int, int] | None:
        result = None
        for _ in calls:
            result = peekitem(-1)
        return result

    assert benchmark(run) == (MID - 1, 10)
    benchmark.extra_info["ns_per_call"] = per_op_ns(benchmark, BEST_CALLS)


@pytest.mark.benchmark(group="best_bid from Python")
def test_empty_loop_overhead(benchmark: Any) -> None:
    """The bare ``for`` loop both rows above include, for reading their per-call figures."""
    calls = range(BEST_CALLS)

    def run() -> int:
        n = 0
        for _ in calls:
            pass
        return n

    assert benchmark(run) == 0
    benchmark.extra_info["ns_per_call"] = per_op_ns(benchmark, BEST_CALLS)


# ---- (3) walk 20 ask levels (buy) --------------------------------------------------------

WALK_LOTS = sum(10 + i for i in range(20))  # exactly the first 20 ask levels
WALK_EXPECTED = (WALK_LOTS, sum((MID + 1 + i) * (10 + i) for i in range(20)), MID + 20, 20)


@pytest.mark.benchmark(group="walk 20 levels")
def test_walk_compiled(benchmark: Any) -> None:
    walk = compiled_book().walk
    calls = range(WALK_CALLS)

    def run() -> tuple[int, int, int, int]:
        result = (0, 0, 0, 0)
        for _ in calls:
            result = walk(ASK, WALK_LOTS)
        return result

    assert benchmark(run) == WALK_EXPECTED
    benchmark.extra_info["ns_per_call"] = per_op_ns(benchmark, WALK_CALLS)


@pytest.mark.benchmark(group="walk 20 levels")
def test_walk_sorteddict(benchmark: Any) -> None:
    walk = SortedDictBook(deep_levels()).walk_asks
    calls = range(WALK_CALLS)

    def run() -> tuple[int, int, int, int]:
        result = (0, 0, 0, 0)
        for _ in calls:
            result = walk(WALK_LOTS)
        return result

    assert benchmark(run) == WALK_EXPECTED
    benchmark.extra_info["ns_per_call"] = per_op_ns(benchmark, WALK_CALLS)


# ---- (4) memory: 2,000 books x 1,000 levels per side ------------------------------------
# The build runs twice per kind: timed here (benchmark.pedantic), and alone in a fresh
# interpreter whose peak RSS (VmHWM) is the memory figure; the same interpreter with no
# books gives the floor that ``books_mb`` excludes. The SortedDict books are the baseline:
# their prices and sizes are made per book, as a live book's would be (no int objects shared
# between books), and ``books_mb_ratio_to_sorteddict`` compares the two memory figures.

BOOKS = 2_000
BUILD_SOURCE = textwrap.dedent(
    """
    from arb_core.book import ASK, BID, DeltaBatch, OrderBook


    def build_compiled(books_wanted, depth):
        batch = DeltaBatch(2 * depth)
        for i in range(depth):
            batch.add(BID, 1_000_000 - 1 - i, 10 + i)
            batch.add(ASK, 1_000_000 + 1 + i, 10 + i)
        batch.last_update_id = 1
        books = []
        for k in range(books_wanted):
            book = OrderBook(f"SYM{k}")
            book.apply_snapshot(batch, 0)
            books.append(book)
        assert sum(b.bid_count + b.ask_count for b in books) == 2 * depth * books_wanted
        return books


    def build_sorteddict(books_wanted, depth):
        from sortedcontainers import SortedDict  # imported here: the compiled run never loads it

        books = []
        for k in range(books_wanted):
            bids = SortedDict((1_000_000 - 1 - i, 10 + i) for i in range(depth))
            asks = SortedDict((1_000_000 + 1 + i, 10 + i) for i in range(depth))
            books.append((bids, asks))
        assert sum(len(bids) + len(asks) for bids, asks in books) == 2 * depth * books_wanted
        return books


    BUILDERS = {"compiled": build_compiled, "sorteddict": build_sorteddict}
    """
)
RSS_SCRIPT = BUILD_SOURCE + textwrap.dedent(
    """
    import sys
    kind, books_wanted, depth = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    books = BUILDERS[kind](books_wanted, depth)
    # VmHWM, not ru_maxrss: after fork+exec ru_maxrss still carries the parent's peak
    with open("/proc/self/status") as status:
        print(next(line.split()[1] for line in status if line.startswith("VmHWM:")))  # KiB
    """
)


def _builders() -> dict[str, Callable[[int, int], list[Any]]]:
    """The build functions of BUILD_SOURCE: the code the subprocess runs, for timing here."""
    namespace: dict[str, Any] = {}
    exec(compile(BUILD_SOURCE, "<bench_book builders>", "exec"), namespace)
    builders: dict[str, Callable[[int, int], list[Any]]] = namespace["BUILDERS"]
    return builders


BUILDERS = _builders()


def peak_rss_mb(kind: str, books: int, depth: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", RSS_SCRIPT, kind, str(books), str(depth)],
        cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, check=True,
    )
    return int(out.stdout.strip()) / 1024


@functools.cache
def memory(kind: str) -> tuple[float, float]:
    """(peak RSS with BOOKS books, peak RSS of the same interpreter with none) in MB, once per run."""
    return peak_rss_mb(kind, BOOKS, DEPTH), peak_rss_mb(kind, 0, DEPTH)


def _memory_bench(benchmark: Any, kind: str) -> float:
    """Times building the books in process, records the subprocess memory figures; returns the peak."""
    benchmark.pedantic(BUILDERS[kind], args=(BOOKS, DEPTH), rounds=3, iterations=1, warmup_rounds=1)
    peak_mb, interpreter_mb = memory(kind)
    benchmark.extra_info["peak_rss_mb"] = round(peak_mb, 1)
    benchmark.extra_info["interpreter_rss_mb"] = round(interpreter_mb, 1)
    benchmark.extra_info["books_mb"] = round(peak_mb - interpreter_mb, 1)
    benchmark.extra_info["bytes_per_level"] = round((peak_mb - interpreter_mb) * 2**20 / (2 * DEPTH * BOOKS), 1)
    return peak_mb


@pytest.mark.benchmark(group="memory 2000 books x 1000 levels/side")
def test_memory_2000_books(benchmark: Any) -> None:
    """Compiled books from one snapshot batch; the target is a peak RSS <= 100 MB."""
    peak_mb = _memory_bench(benchmark, "compiled")
    baseline_mb = memory("sorteddict")[0] - memory("sorteddict")[1]
    benchmark.extra_info["books_mb_ratio_to_sorteddict"] = round(benchmark.extra_info["books_mb"] / baseline_mb, 3)
    assert peak_mb <= 100, f"peak RSS {peak_mb:.1f} MB for {BOOKS} books"


@pytest.mark.benchmark(group="memory 2000 books x 1000 levels/side")
def test_memory_2000_books_sorteddict_baseline(benchmark: Any) -> None:
    """Baseline: the same books as two SortedDicts each."""
    _memory_bench(benchmark, "sorteddict")
