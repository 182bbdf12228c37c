"""arb_core.freshness: monotonic clock, book freshness, clock offset vs tests/reference/freshness.py."""

import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arb_core.book import ASK, BID, DeltaBatch, OrderBook
from arb_core.freshness import ClockOffset, age_ns, is_fresh, monotonic_ns, wall_ns
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


def test_wall_ns_is_the_wall_clock() -> None:
    before = time.time_ns()
    now = wall_ns()
    after = time.time_ns()
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
        (lambda b: ClockOffset(7), "window_ns"),
        (lambda b: ClockOffset(8_000).observe(-1, 0), "local_wall_ns"),
        (lambda b: ClockOffset(8_000).observe(0, -1), "venue_event_ms"),
        (lambda b: ClockOffset(8_000).observe(0, 2**62), "venue_event_ms"),
        (lambda b: ClockOffset(8_000).observe_round_trip(-1, 0, 0), "local_send_ns"),
        (lambda b: ClockOffset(8_000).observe_round_trip(10, 9, 0), "local_recv_ns"),
        (lambda b: ClockOffset(8_000).observe_round_trip(0, 1, -3), "venue_time_ms"),
        (lambda b: ClockOffset(8_000).venue_to_local_ns(-3), "venue_event_ms"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(
    call: Callable[[OrderBook], object], argument: str
) -> None:
    with pytest.raises(ValueError, match=argument):
        call(synced_book(1))


def test_clock_offset_min_delay_without_round_trip() -> None:
    # Venue clock 2 ms behind local; pushes take 0.3 ms, 1.1 ms and 0.5 ms.
    clock = ClockOffset(window_ns=8_000_000_000)
    base = 1_700_000_000_000_000_000
    assert clock.offset_ns is None and clock.latency_ns is None and clock.min_delay_ns is None
    assert clock.observe(base + 2_300_000, base // 1_000_000) == 0
    assert clock.observe(base + 3_100_000, base // 1_000_000) == 800_000
    assert clock.observe(base + 2_500_000, base // 1_000_000) == 200_000
    assert clock.min_delay_ns == 2_300_000
    assert clock.offset_ns == 2_300_000  # offset + fastest latency, no way to split them
    assert clock.latency_ns == 0
    assert clock.venue_to_local_ns(base // 1_000_000 + 7) == base + 7_000_000 + 2_300_000


def test_clock_offset_round_trip_splits_offset_and_latency() -> None:
    clock = ClockOffset(window_ns=8_000_000_000)
    base = 1_700_000_000_000_000_000
    venue_ms = base // 1_000_000
    # A 1 ms round trip whose server time reads at local midpoint - 2 ms: offset 2 ms.
    assert clock.observe_round_trip(base + 1_500_000, base + 2_500_000, venue_ms) == 2_000_000
    # A slower round trip does not replace the tighter one.
    clock.observe_round_trip(base + 10_000_000, base + 14_000_000, venue_ms + 9)
    assert clock.offset_ns == 2_000_000
    assert clock.observe(base + 2_300_000, venue_ms) == 300_000
    assert clock.min_delay_ns == 2_300_000
    assert clock.latency_ns == 300_000


def test_clock_offset_forgets_samples_older_than_the_window() -> None:
    clock = ClockOffset(window_ns=8_000)  # 1 µs buckets
    clock.observe(1_000_000, 0)  # delay 1 ms
    clock.observe(1_007_500, 0)  # same window (bucket 1000 still inside up to bucket 1007)
    assert clock.min_delay_ns == 1_000_000
    clock.observe(1_008_100, 0)  # bucket 1008: bucket 1000 expires
    assert clock.min_delay_ns == 1_007_500
    clock.observe(999_000, 0)  # older than the window: ignored
    assert clock.min_delay_ns == 1_007_500


# venue times to map: near the pushed ones, anywhere, and just outside the accepted range
venue_times = st.one_of(st.integers(0, 150), st.integers(0, ref.MAX_MS), st.integers(-3, 2),
                        st.integers(ref.MAX_MS - 2, ref.MAX_MS + 3))
operations = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.integers(0, 200_000), st.integers(0, 150)),
        st.tuples(st.just("trip"), st.integers(0, 200_000), st.integers(0, 30_000), st.integers(0, 150)),
        st.tuples(st.just("map"), venue_times),
    ),
    max_size=60,
)


def _mapped(clock: ClockOffset | ref.ClockOffset, venue_ms: int) -> int | None | str:
    try:
        return clock.venue_to_local_ns(venue_ms)
    except ValueError as exc:
        return f"ValueError: {exc}"


@settings(max_examples=300, deadline=None)
@given(window_ns=st.integers(8, 120_000), ops=operations)
def test_clock_offset_matches_reference(window_ns: int, ops: list[tuple[int, ...]]) -> None:
    """Every estimate, and venue times mapped onto the local clock (None before any sample,
    ValueError outside [0, MAX_MS]), agree with the reference after each sample."""
    compiled, reference = ClockOffset(window_ns), ref.ClockOffset(window_ns)
    for op in ops:
        if op[0] == "push":
            _, local_ns, venue_ms = op
            assert compiled.observe(local_ns, venue_ms) == reference.observe(local_ns, venue_ms)
        elif op[0] == "map":
            _, venue_ms = op
            assert _mapped(compiled, venue_ms) == _mapped(reference, venue_ms)
        else:
            _, send_ns, rtt_ns, venue_ms = op
            got = compiled.observe_round_trip(send_ns, send_ns + rtt_ns, venue_ms)
            assert got == reference.observe_round_trip(send_ns, send_ns + rtt_ns, venue_ms)
        assert compiled.min_delay_ns == reference.min_delay_ns
        assert compiled.offset_ns == reference.offset_ns
        assert compiled.latency_ns == reference.latency_ns


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


def test_clock_offset_at_the_end_of_int64_ends_and_never_wraps() -> None:
    # A 1 ns bucket puts the epoch at INT64_MAX: the window scan used to count up to it forever.
    offset = ClockOffset(8)
    assert offset.observe(2**63 - 1, 0) == 0
    assert offset.offset_ns is None
    # A latency past int64 raises instead of wrapping to a plausible number.
    offset = ClockOffset(1000)
    offset.observe(9_223_372_036_854_775_000, 0)
    with pytest.raises(OverflowError):
        offset.observe(1, 9_223_372_036_854)
