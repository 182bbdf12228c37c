"""arb_core.book: unit tests per rule, then differential tests against reference.book."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reference.book as ref
from arb_core.book import (
    APPLIED,
    ASK,
    BID,
    NOTIONAL_MAX,
    STALE,
    STALE_STREAM_NS,
    BookError,
    BookOutOfSyncError,
    CrossedBookError,
    DeltaBatch,
    OrderBook,
    SequenceGapError,
    StaleStreamError,
)

INT64_MAX = 2**63 - 1
Level = tuple[int, int, int]


def make_batch(
    levels: Iterable[Level], first: int = 0, last: int = 0, event_ms: int = 0
) -> DeltaBatch:
    batch = DeltaBatch()
    for side, price, size in levels:
        batch.add(side, price, size)
    batch.first_update_id = first
    batch.last_update_id = last
    batch.event_time_ms = event_ms
    return batch


def snapshot_book(bids: Iterable[tuple[int, int]], asks: Iterable[tuple[int, int]],
                  last: int = 10, name: str = "BTC_USDT") -> OrderBook:
    book = OrderBook(name)
    levels = [(BID, p, s) for p, s in bids] + [(ASK, p, s) for p, s in asks]
    book.apply_snapshot(make_batch(levels, 0, last), 1)
    return book


@pytest.fixture
def book() -> OrderBook:
    return snapshot_book([(100, 5), (99, 3), (98, 1)], [(101, 4), (102, 2), (104, 7)])


def levels_of(book: Any) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    return book.top(BID, 1 << 30), book.top(ASK, 1 << 30)


def test_constants_match_reference() -> None:
    assert (BID, ASK, APPLIED, STALE) == (ref.BID, ref.ASK, ref.APPLIED, ref.STALE) == (0, 1, 0, 1)


def test_delta_batch_validates_grows_and_clears() -> None:
    batch = DeltaBatch(1)
    with pytest.raises(ValueError, match="side must be 0 \\(bid\\) or 1 \\(ask\\), got 3"):
        batch.add(3, 1, 1)
    with pytest.raises(ValueError, match="price_ticks must be > 0, got 0"):
        batch.add(BID, 0, 1)
    with pytest.raises(ValueError, match="size_lots must be >= 0, got -1"):
        batch.add(ASK, 1, -1)
    with pytest.raises(ValueError, match="capacity must be >= 1, got 0"):
        DeltaBatch(0)
    levels = [(i % 2, 100 + i, i) for i in range(100)]
    batch = make_batch(levels, 3, 4, 5)
    assert batch.levels() == levels and len(batch) == 100
    assert repr(batch) == (
        "DeltaBatch(levels=100, first_update_id=3, last_update_id=4, snapshot=False)")
    batch.clear()
    assert (len(batch), batch.first_update_id, batch.last_update_id, batch.event_time_ms) == (
        0, 0, 0, 0)


# ---- bad inputs -------------------------------------------------------------------------

@pytest.mark.parametrize("side", [-1, 2, 255])
@pytest.mark.parametrize(
    "call",
    [
        lambda b, s: b.apply_delta(s, 100, 1),
        lambda b, s: b.top(s, 1),
        lambda b, s: b.walk(s, 1),
        lambda b, s: b.size_up_to(s, 100),
        lambda b, s: b.size_at(s, 100),
        lambda b, s: b.depth(s),
    ],
)
def test_invalid_side_raises_value_error_naming_it(
    book: OrderBook, side: int, call: Callable[[OrderBook, int], object]
) -> None:
    with pytest.raises(ValueError, match=f"side must be 0 \\(bid\\) or 1 \\(ask\\), got {side}"):
        call(book, side)


def test_apply_delta_rejects_bad_price_and_size(book: OrderBook) -> None:
    with pytest.raises(ValueError, match="price_ticks must be > 0, got 0"):
        book.apply_delta(BID, 0, 1)
    with pytest.raises(ValueError, match="price_ticks must be > 0, got -5"):
        book.apply_delta(ASK, -5, 1)
    with pytest.raises(ValueError, match="size_lots must be >= 0, got -1"):
        book.apply_delta(BID, 100, -1)
    assert levels_of(book) == ([(100, 5), (99, 3), (98, 1)], [(101, 4), (102, 2), (104, 7)])


def test_query_arguments_are_validated(book: OrderBook) -> None:
    with pytest.raises(ValueError, match="n must be >= 0, got -1"):
        book.top(BID, -1)
    with pytest.raises(ValueError, match="size_lots must be >= 0, got -3"):
        book.walk(ASK, -3)
    with pytest.raises(ValueError, match="limit_price_ticks must be > 0, got 0"):
        book.size_up_to(ASK, 0)
    with pytest.raises(ValueError, match="price_ticks must be > 0, got -1"):
        book.size_at(BID, -1)


def test_out_of_int64_range_arguments_raise_overflow_error(book: OrderBook) -> None:
    with pytest.raises(OverflowError):
        book.apply_delta(BID, 2**63, 1)
    with pytest.raises(OverflowError):
        book.walk(ASK, -(2**64))
    with pytest.raises(TypeError):
        book.walk(ASK, "10")  # type: ignore[arg-type]


def test_constructor_validates_arguments() -> None:
    with pytest.raises(ValueError, match="capacity must be in \\[1, 2\\*\\*32\\], got 0"):
        OrderBook("x", 0)
    with pytest.raises(ValueError, match="name must be a str, got None"):
        OrderBook(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        OrderBook(5)  # type: ignore[arg-type]


def test_none_batch_is_rejected(book: OrderBook) -> None:
    with pytest.raises(ValueError, match="batch must be a DeltaBatch, got None"):
        book.apply_batch(None, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch must be a DeltaBatch, got None"):
        book.apply_snapshot(None, 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        book.apply_batch([(BID, 1, 1)], 0)  # type: ignore[arg-type]


def test_uninitialised_book_never_crashes() -> None:
    raw = OrderBook.__new__(OrderBook)
    assert raw.best_bid() is None and raw.walk(ASK, 10) == (0, 0, 0, 0)
    raw.apply_delta(BID, 10, 1)
    raw.apply_snapshot(make_batch([(ASK, 12, 2)], 0, 3), 0)
    assert (raw.best_bid(), raw.best_ask(), raw.in_sync) == (None, (12, 2), True)


# ---- sequence rule ----------------------------------------------------------------------

def test_fresh_book_is_out_of_sync() -> None:
    book = OrderBook("ETH_USDT")
    with pytest.raises(BookOutOfSyncError, match="'ETH_USDT'"):
        book.apply_batch(make_batch([(BID, 1, 1)], 1, 1), 0)
    assert book.best_bid() is None


def test_mark_out_of_sync_blocks_batches(book: OrderBook) -> None:
    book.mark_out_of_sync()
    with pytest.raises(BookOutOfSyncError):
        book.apply_batch(make_batch([(BID, 97, 1)], 11, 11), 0)
    assert book.depth(BID) == 3 and not book.in_sync


def test_stale_batch_is_ignored(book: OrderBook) -> None:
    assert book.apply_batch(make_batch([(BID, 100, 9)], 5, 10, 77), 999) == STALE
    assert book.best_bid() == (100, 5)
    assert (book.last_update_id, book.last_recv_ns, book.last_event_ms, book.in_sync) == (
        10, 1, 0, True)


def test_stale_batches_long_after_the_last_change_take_the_book_out_of_sync(book: OrderBook) -> None:
    # the fixture's book last changed at recv 1: up to STALE_STREAM_NS later a stale batch is ignored
    assert book.apply_batch(make_batch([(BID, 100, 9)], 5, 10), 1 + STALE_STREAM_NS) == STALE
    assert book.in_sync
    with pytest.raises(StaleStreamError, match=r"'BTC_USDT': batch 3\.\.9 is at or before update 10.*5000 ms"):
        book.apply_batch(make_batch([(BID, 100, 9)], 3, 9), 2 + STALE_STREAM_NS)
    assert not book.in_sync and book.best_bid() == (100, 5) and book.last_update_id == 10
    assert issubclass(StaleStreamError, BookError)


def test_stale_batch_from_far_before_the_last_change_is_ignored(book: OrderBook) -> None:
    # a batch received before the book's last change (buffered ahead of its snapshot) is never "long after"
    assert book.apply_batch(make_batch([(BID, 100, 9)], 5, 10), -(2**63)) == STALE
    assert book.in_sync


def test_gap_marks_out_of_sync_and_leaves_levels(book: OrderBook) -> None:
    with pytest.raises(SequenceGapError, match="starts at update 12 but the book is at 10"):
        book.apply_batch(make_batch([(BID, 100, 9)], 12, 13), 5)
    assert not book.in_sync and book.best_bid() == (100, 5) and book.last_update_id == 10
    with pytest.raises(BookOutOfSyncError):
        book.apply_batch(make_batch([(BID, 100, 9)], 11, 13), 5)


def test_overlapping_batch_is_applied(book: OrderBook) -> None:
    batch = make_batch([(BID, 100, 0), (BID, 97, 2), (ASK, 101, 1), (ASK, 103, 6)], 8, 15, 1234)
    assert book.apply_batch(batch, 42) == APPLIED
    assert levels_of(book) == (
        [(99, 3), (98, 1), (97, 2)], [(101, 1), (102, 2), (103, 6), (104, 7)])
    assert (book.last_update_id, book.last_recv_ns, book.last_event_ms, book.in_sync) == (
        15, 42, 1234, True)


def test_delete_of_missing_level_is_noop(book: OrderBook) -> None:
    assert book.apply_batch(make_batch([(BID, 50, 0), (ASK, 500, 0)], 11, 11), 0) == APPLIED
    book.apply_delta(ASK, 103, 0)
    assert levels_of(book) == ([(100, 5), (99, 3), (98, 1)], [(101, 4), (102, 2), (104, 7)])


def test_crossed_after_update_raises_and_marks_out_of_sync(book: OrderBook) -> None:
    with pytest.raises(CrossedBookError, match="best bid 101 >= best ask 101"):
        book.apply_batch(make_batch([(BID, 101, 1)], 11, 11), 3)
    assert not book.in_sync and book.last_update_id == 11
    with pytest.raises(BookOutOfSyncError):
        book.apply_batch(make_batch([], 12, 12), 3)


def test_crossed_snapshot_raises() -> None:
    book = OrderBook("x")
    with pytest.raises(CrossedBookError, match="'x': crossed at update 7"):
        book.apply_snapshot(make_batch([(BID, 105, 1), (ASK, 104, 1)], 0, 7), 0)
    assert not book.in_sync


def test_errors_share_a_base() -> None:
    for exc in (SequenceGapError, CrossedBookError, BookOutOfSyncError):
        assert issubclass(exc, BookError) and not issubclass(exc, ValueError)


# ---- snapshots --------------------------------------------------------------------------

def test_duplicate_snapshot_price_is_rejected_and_book_untouched(book: OrderBook) -> None:
    batch = make_batch([(ASK, 120, 1), (ASK, 110, 1), (ASK, 120, 2)], 0, 50)
    with pytest.raises(ValueError, match="duplicate ask price_ticks 120"):
        book.apply_snapshot(batch, 0)
    assert book.last_update_id == 10 and book.in_sync and book.depth(ASK) == 3


def test_same_price_on_both_sides_is_not_a_duplicate_but_crosses() -> None:
    with pytest.raises(CrossedBookError):
        snapshot_book([(100, 1)], [(100, 1)])


@pytest.mark.parametrize("order", ["best_first", "best_last", "shuffled"])
def test_snapshot_sorts_any_input_order_and_skips_zero_sizes(order: str) -> None:
    import random

    bids = [(1000 - i, i + 1) for i in range(300)]
    asks = [(1001 + i, i + 1) for i in range(300)]
    if order == "best_last":
        bids, asks = bids[::-1], asks[::-1]
    elif order == "shuffled":
        random.Random(7).shuffle(bids)
        random.Random(8).shuffle(asks)
    book = snapshot_book(bids + [(5, 0)], asks + [(5000, 0)])
    assert book.top(BID, 1000) == sorted(bids, reverse=True)
    assert book.top(ASK, 1000) == sorted(asks)
    assert (book.bid_count, book.ask_count) == (300, 300)


def test_snapshot_replaces_previous_state(book: OrderBook) -> None:
    book.apply_snapshot(make_batch([(BID, 7, 1), (ASK, 9, 2)], 0, 3, 55), 66)
    assert levels_of(book) == ([(7, 1)], [(9, 2)])
    assert (book.last_update_id, book.last_recv_ns, book.last_event_ms) == (3, 66, 55)


def test_empty_snapshot_is_in_sync() -> None:
    book = OrderBook()
    assert book.apply_snapshot(make_batch([], 0, 1), 0) == APPLIED
    assert book.in_sync and book.best_bid() is None and book.best_ask_price() == 0


# ---- level edits deep in the book (binary-search path) and growth ------------------------

def test_deep_book_edits_at_every_position() -> None:
    book = OrderBook("deep", capacity=1)
    for i in range(1, 401):
        book.apply_delta(BID, 2 * i, i)
        book.apply_delta(ASK, 10_000 + 2 * i, i)
    book.apply_delta(BID, 3, 9)        # far end: insert
    book.apply_delta(BID, 401, 9)      # middle: insert
    book.apply_delta(BID, 200, 0)      # middle: delete
    book.apply_delta(BID, 2, 0)        # far end: delete
    book.apply_delta(ASK, 10_002, 77)  # best ask: update
    book.apply_delta(ASK, 10_801, 1)   # far end: insert
    bids = dict(book.top(BID, 1000))
    asks = book.top(ASK, 1000)
    assert book.depth(BID) == 400 and bids[3] == 9 and bids[401] == 9
    assert 200 not in bids and 2 not in bids
    assert asks[0] == (10_002, 77) and asks[-1] == (10_801, 1)


# ---- queries ----------------------------------------------------------------------------

def test_best_and_top(book: OrderBook) -> None:
    assert book.best_bid() == (100, 5) and book.best_ask() == (101, 4)
    assert book.best_bid_price() == 100 and book.best_ask_price() == 101
    assert book.top(BID, 2) == [(100, 5), (99, 3)] and book.top(ASK, 0) == []


def test_walk_buys_asks_and_sells_bids(book: OrderBook) -> None:
    assert book.walk(ASK, 5) == (5, 4 * 101 + 102, 102, 2)
    assert book.walk(BID, 8) == (8, 500 + 297, 99, 2)
    assert book.walk(BID, 100) == (9, 500 + 297 + 98, 98, 3)
    assert book.walk(ASK, 0) == (0, 0, 0, 0)


def test_walk_notionals_past_int64_are_exact() -> None:
    book = OrderBook()
    book.apply_delta(ASK, 2**62, 2**40)
    book.apply_delta(ASK, 2**62 + 1, 2**40)
    assert book.walk(ASK, 2**41) == (2**41, 2**102 + (2**62 + 1) * 2**40, 2**62 + 1, 2)


def test_walk_overflow_raises() -> None:
    assert NOTIONAL_MAX == 2**112 - 1
    book = OrderBook()
    book.apply_delta(ASK, 2**62, 2**62)
    with pytest.raises(OverflowError, match="fixed-point overflow"):
        book.walk(ASK, 2**50)  # one level: price * take passes NOTIONAL_MAX
    book = OrderBook()
    book.apply_delta(ASK, 2**62, 2**49)
    book.apply_delta(ASK, 2**62 + 1, 2**49)
    assert book.walk(ASK, 2**49)[1] == 2**111
    with pytest.raises(OverflowError, match="fixed-point overflow"):
        book.walk(ASK, 2**50)  # each product fits, their sum does not


def test_size_at(book: OrderBook) -> None:
    assert [book.size_at(ASK, p) for p in (100, 101, 102, 103, 104, 105)] == [0, 4, 2, 0, 7, 0]
    assert [book.size_at(BID, p) for p in (101, 100, 99, 98, 97)] == [0, 5, 3, 1, 0]
    assert book.size_at(BID, 101) == 0 and book.size_at(ASK, 98) == 0  # the other side's prices


def test_size_up_to(book: OrderBook) -> None:
    assert book.size_up_to(ASK, 102) == 6 and book.size_up_to(ASK, 100) == 0
    assert book.size_up_to(BID, 99) == 8 and book.size_up_to(BID, 1) == 9


def test_size_up_to_saturates() -> None:
    book = OrderBook()
    book.apply_delta(BID, 10, INT64_MAX)
    book.apply_delta(BID, 11, INT64_MAX)
    assert book.size_up_to(BID, 1) == INT64_MAX


def test_clear_and_repr(book: OrderBook) -> None:
    assert repr(book) == (
        "OrderBook(name='BTC_USDT', bid=(100, 5), ask=(101, 4), depth=(3, 3), "
        "last_update_id=10, in_sync=True)")
    book.clear()
    assert repr(book) == (
        "OrderBook(name='BTC_USDT', bid=None, ask=None, depth=(0, 0), "
        "last_update_id=0, in_sync=False)")


def test_readonly_fields(book: OrderBook) -> None:
    with pytest.raises(AttributeError):
        book.in_sync = True  # type: ignore[misc]
    with pytest.raises(AttributeError):
        book.last_update_id = 0  # type: ignore[misc]


# ---- differential: compiled vs reference ------------------------------------------------

prices = st.one_of(st.integers(1, 120), st.integers(1, 120), st.sampled_from([2**40, 2**62]))
sizes = st.one_of(st.integers(0, 50), st.integers(0, 50), st.sampled_from([2**31, 2**62]))
levels_st = st.lists(st.tuples(st.sampled_from([BID, ASK]), prices, sizes), max_size=60)
ids = st.integers(0, 40)

recv_st = st.one_of(st.integers(0, 2**40), st.sampled_from([-(2**63), INT64_MAX, STALE_STREAM_NS, STALE_STREAM_NS + 1]))
snapshot_op = st.tuples(st.just("snapshot"), levels_st, ids, ids, recv_st)
batch_op = st.tuples(st.just("batch"), levels_st, ids, ids, recv_st)
delta_op = st.tuples(
    st.just("delta"), st.integers(-1, 2), st.integers(-2, 130), st.integers(-2, 60))
query_op = st.tuples(
    st.sampled_from(["walk", "size_up_to", "size_at", "top"]),
    st.integers(-1, 2),
    st.one_of(st.integers(-2, 200), st.sampled_from([2**62, INT64_MAX])),
)
depth_op = st.tuples(st.just("depth"), st.integers(-1, 2))
misc_op = st.tuples(st.sampled_from(["mark_out_of_sync", "clear"]))
ops_st = st.lists(
    st.one_of(snapshot_op, batch_op, batch_op, delta_op, query_op, depth_op, misc_op), max_size=25)


def run(book: Any, op: tuple[Any, ...]) -> tuple[str, Any]:
    """Apply one op; the outcome is ('ok', result) or ('raise', exception type name)."""
    kind = op[0]
    try:
        if kind in ("snapshot", "batch"):
            _, levels, first, last, recv_ns = op
            batch = make_batch(levels, first, last, recv_ns // 7)
            apply = book.apply_snapshot if kind == "snapshot" else book.apply_batch
            return "ok", apply(batch, recv_ns)
        if kind == "delta":
            return "ok", book.apply_delta(*op[1:])
        if kind in ("walk", "size_up_to", "size_at", "top", "depth"):
            return "ok", getattr(book, kind)(*op[1:])
        return "ok", getattr(book, kind)()
    except (BookError, ref.BookError, ValueError, OverflowError) as exc:
        return "raise", type(exc).__name__


def state(book: Any) -> tuple[Any, ...]:
    return (
        levels_of(book), book.best_bid(), book.best_ask(), book.best_bid_price(),
        book.best_ask_price(), book.bid_count, book.ask_count, book.last_update_id,
        bool(book.in_sync), book.last_recv_ns, book.last_event_ms,
    )


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=snapshot_op, ops=ops_st)
def test_differential_against_reference(first: tuple[Any, ...], ops: list[tuple[Any, ...]]) -> None:
    compiled, reference = OrderBook("d", capacity=1), ref.OrderBook("d", capacity=1)
    for op in [first, *ops]:
        assert run(compiled, op) == run(reference, op), op
        assert state(compiled) == state(reference), op


# min_size > 16 so edits below the linearly scanned top reach the binary search
deep_side = st.lists(st.tuples(st.integers(1, 5000), st.integers(1, 10**6)),
                     min_size=20, max_size=300, unique_by=lambda level: level[0])


@settings(max_examples=150, deadline=None)
@given(
    bids=deep_side, asks=deep_side,
    deltas=st.lists(st.tuples(st.sampled_from([BID, ASK]), st.integers(1, 5000),
                              st.integers(0, 10**6)), max_size=200),
    queries=st.lists(st.tuples(st.sampled_from([BID, ASK]), st.integers(1, 10**8)), max_size=10),
)
def test_differential_deep_books(
    bids: list[tuple[int, int]], asks: list[tuple[int, int]],
    deltas: list[Level], queries: list[tuple[int, int]],
) -> None:
    asks = [(p + 5000, s) for p, s in asks]  # keep the sides apart so deltas mostly apply
    snap = [(BID, p, s) for p, s in bids] + [(ASK, p, s) for p, s in asks]
    compiled, reference = OrderBook("deep"), ref.OrderBook("deep")
    ops: list[tuple[Any, ...]] = [("snapshot", snap, 0, 1, 5)]
    ops += [("batch", deltas[i:i + 20], 2 + i, 2 + i, i) for i in range(0, len(deltas), 20)]
    for side, amount in queries:
        ops += [("walk", side, amount), ("size_up_to", side, amount % 10_000 + 1)]
        ops += [("size_at", side, amount % 10_000 + 1)]
    ops += [("size_at", BID, p) for p, _ in bids[::7]] + [("size_at", ASK, p) for p, _ in asks[::7]]
    for op in ops:
        assert run(compiled, op) == run(reference, op), op
        assert state(compiled) == state(reference), op


# ---- DeltaBatch.extend ------------------------------------------------------------------

def test_a_batch_changed_while_extend_reads_its_levels_is_emptied_not_half_rolled_back() -> None:
    """Rolling back to the length before the call would keep a level the batch was refused and drop
    one it held, when the levels' iterator changed the batch meanwhile."""
    batch = make_batch([(BID, 5, 5), (BID, 6, 6)])

    def clearing() -> Iterator[tuple[int, int, int]]:
        yield (BID, 1, 1)
        batch.clear()
        yield (BID, 2, 2)
        raise KeyError("failed after clearing")

    with pytest.raises(RuntimeError, match="changed while extend read its levels; it was emptied"):
        batch.extend(clearing())
    assert batch.levels() == []

    def adding() -> Iterator[tuple[int, int, int]]:
        yield (BID, 1, 1)
        batch.add(ASK, 9, 9)

    with pytest.raises(RuntimeError, match="changed while extend"):
        batch.extend(adding())
    assert batch.levels() == []
    batch.add(BID, 5, 5)
    with pytest.raises(ValueError):  # an ordinary failure still rolls back to what the batch held
        batch.extend(iter([(BID, 1, 1), (BID, 0, 1)]))
    assert batch.levels() == [(BID, 5, 5)]


def test_extend_merges_repeats_and_keeps_nothing_on_error() -> None:
    batch = make_batch([(BID, 5, 1)])
    assert batch.extend(((ASK, 5, 2), (BID, 5, 3), (BID, 6, 0))) == 1
    assert batch.levels() == [(BID, 5, 3), (ASK, 5, 2), (BID, 6, 0)]
    with pytest.raises(ValueError, match="price_ticks must be > 0, got 0"):
        batch.extend([(BID, 7, 1), (BID, 0, 1)])
    with pytest.raises(ValueError, match=r"levels\[1\] must be a \(side, price_ticks, size_lots\) tuple, got \[0, 1, 1\]"):
        batch.extend([(BID, 7, 1), [0, 1, 1]])
    with pytest.raises(ValueError, match="levels must be an iterable"):
        batch.extend(None)  # type: ignore[arg-type]
    with pytest.raises(OverflowError):
        batch.extend([(BID, 7, 1), (BID, 7, 2**63)])
    assert batch.levels() == [(BID, 5, 3), (ASK, 5, 2), (BID, 6, 0)]


def run_extend(batch: Any, new: list[Any]) -> tuple[str, Any]:
    try:
        return "ok", batch.extend(new) if isinstance(batch, DeltaBatch) else ref.extend_batch(batch, new)
    except (ValueError, OverflowError) as exc:
        return "raise", type(exc).__name__


# Few distinct prices so repeats are common; long lists reach the hashed merge (> 16 entries).
extend_level = st.one_of(
    st.tuples(st.sampled_from([BID, ASK]), st.integers(1, 12), st.integers(0, 50)),
    st.tuples(st.sampled_from([BID, ASK]), st.integers(1, 400), st.integers(0, 2**62)),
)
bad_level = st.one_of(
    st.tuples(st.sampled_from([-1, 2]), st.integers(1, 5), st.integers(0, 5)),
    st.tuples(st.just(BID), st.sampled_from([0, -3, 2**63]), st.integers(0, 5)),
    st.tuples(st.just(ASK), st.integers(1, 5), st.sampled_from([-1, 2**63])),
    st.tuples(st.just(BID), st.integers(1, 5)),
)


@settings(max_examples=800, deadline=None)
@given(
    first=st.lists(extend_level, max_size=20),
    calls=st.lists(st.lists(st.one_of(extend_level, extend_level, extend_level, bad_level), max_size=80), max_size=4),
)
def test_extend_differential(first: list[Level], calls: list[list[Any]]) -> None:
    compiled = make_batch(first)
    reference = list(first)
    for new in calls:
        assert run_extend(compiled, new) == run_extend(reference, new), new
        assert compiled.levels() == reference, new


def test_extend_large_batch_matches_reference() -> None:
    levels = [((i // 3) % 2, (i * 7919) % 1000 + 1, i) for i in range(20_000)]
    compiled, reference = DeltaBatch(), []
    assert compiled.extend(levels) == ref.extend_batch(reference, levels) == 18_000
    assert compiled.levels() == reference
