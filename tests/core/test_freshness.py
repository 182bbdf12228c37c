"""arb_core.freshness: the local clocks, and book freshness vs tests/reference/freshness.py."""

import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arb_core.book import ASK, BID, DeltaBatch, OrderBook
from arb_core.freshness import age_ns, is_fresh, monotonic_ns
from reference import freshness as ref


def synced_book(recv_ns: int, name: str = "gateio:BTC_USDT") -> OrderBook:
    book = OrderBook(name)
    batch = DeltaBatch()
    batch.is_snapshot = True
    batch.first_update_id = batch.last_update_id = 10
    batch.add(BID, 9_990, 5)
    batch.add(ASK, 10_000, 5)
    book.apply_snapshot(batch, recv_ns)
    return book


def test_monotonic_ns_is_the_monotonic_clock() -> None:
    before = time.monotonic_ns()
    now = monotonic_ns()
    after = time.monotonic_ns()
    assert before <= now <= after


def test_never_updated_book_is_stale_and_has_no_age() -> None:
    book = OrderBook("mexc:BTCUSDT")
    assert not is_fresh(book, 1_000, 10**12)
    assert age_ns(book, 1_000) is None


def test_fresh_up_to_max_age_inclusive() -> None:
    book = synced_book(recv_ns=5_000)
    assert is_fresh(book, 5_000, 0)
    assert is_fresh(book, 5_500, 500)
    assert not is_fresh(book, 5_501, 500)
    assert age_ns(book, 5_501) == 501
    assert age_ns(book, 4_000) == -1_000  # an update stamped after `now` was sampled


def test_out_of_sync_book_is_never_fresh() -> None:
    book = synced_book(recv_ns=5_000)
    book.mark_out_of_sync()
    assert not is_fresh(book, 5_000, 10**9)
    assert age_ns(book, 5_000) == 0  # age still reports the last update


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda b: is_fresh(b, -1, 0), "now_ns"),
        (lambda b: is_fresh(b, 0, -1), "max_age_ns"),
        (lambda b: is_fresh(None, 0, 0), "book"),
        (lambda b: age_ns(b, -5), "now_ns"),
        (lambda b: age_ns(None, 0), "book"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(
    call: Callable[[OrderBook], object], argument: str
) -> None:
    with pytest.raises(ValueError, match=argument):
        call(synced_book(1))


@settings(max_examples=300, deadline=None)
@given(
    recv_ns=st.integers(0, 10**6),
    in_sync=st.booleans(),
    now_ns=st.integers(0, 2 * 10**6),
    max_age_ns=st.integers(0, 10**6),
)
def test_is_fresh_and_age_match_reference(recv_ns: int, in_sync: bool, now_ns: int, max_age_ns: int) -> None:
    book = synced_book(recv_ns) if recv_ns else OrderBook("never-updated")
    if not in_sync:
        book.mark_out_of_sync()
    assert is_fresh(book, now_ns, max_age_ns) == ref.is_fresh(book, now_ns, max_age_ns)
    assert age_ns(book, now_ns) == ref.age_ns(book, now_ns)
