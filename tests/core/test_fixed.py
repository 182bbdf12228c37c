"""``arb_core/fixed.pxd`` at the compiled boundary: integer arguments and checked arithmetic.

A float or ``Decimal`` handed to a compiled routine where an integer (ticks, lots, ns, a side
or a state) is expected is refused with TypeError rather than truncated; ints and numpy
integers are taken. ``checked_notional`` (128-bit, bounded by ``NOTIONAL_MAX``) is compared with
exact integer arithmetic through the order book's walk (its notional is a sum of products);
``saturating_sub`` and ``difference_as_double`` through the record loop's stops at the int64
edges of time (tests/core/test_replay.py).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from arb_core import freshness, fsm
from arb_core.book import ASK, BID, NOTIONAL_MAX, DeltaBatch, OrderBook
from arb_core.fsm import StateMachine
from arb_core.latency import LatencyHistogram
from arb_core.router import DIALECT_GATEIO_SPOT, BookRouter
from arb_core.scanner import SpreadScanner
from arb_core.wire.common import WireScale
from reference import book as ref_book

INT64_MAX = 2**63 - 1


def _book() -> OrderBook:
    book = OrderBook("b")
    snapshot = DeltaBatch(2)
    snapshot.add(BID, 99, 5)
    snapshot.add(ASK, 101, 5)
    snapshot.last_update_id = 1
    book.apply_snapshot(snapshot, 1)
    return book


def _scanner() -> SpreadScanner:
    scanner = SpreadScanner()
    scanner.add_symbol(0, 1_000)
    return scanner


# (what, call with one integer argument replaced by ``value``)
CALLS: list[tuple[str, Callable[[Any], object]]] = [
    ("DeltaBatch.add price", lambda v: DeltaBatch(2).add(BID, v, 1)),
    ("DeltaBatch.add size", lambda v: DeltaBatch(2).add(BID, 100, v)),
    ("DeltaBatch.add side", lambda v: DeltaBatch(2).add(v, 100, 1)),
    ("DeltaBatch.extend price", lambda v: DeltaBatch(2).extend([(ASK, v, 1)])),
    ("OrderBook.apply_delta price", lambda v: _book().apply_delta(BID, v, 1)),
    ("OrderBook.apply_delta size", lambda v: _book().apply_delta(BID, 98, v)),
    ("OrderBook.apply_batch recv_ns", lambda v: _book().apply_batch(DeltaBatch(1), v)),
    ("OrderBook.walk size", lambda v: _book().walk(ASK, v)),
    ("OrderBook.size_up_to price", lambda v: _book().size_up_to(ASK, v)),
    ("OrderBook.top side", lambda v: _book().top(v, 1)),
    ("is_fresh now_ns", lambda v: freshness.is_fresh(_book(), v, 10)),
    ("age_ns now_ns", lambda v: freshness.age_ns(_book(), v)),
    ("StateMachine.transition state", lambda v: StateMachine().transition(v, 1)),
    ("StateMachine.transition now_ns", lambda v: StateMachine().transition(fsm.DETECTING, v)),
    ("state_name", lambda v: fsm.state_name(v)),
    ("LatencyHistogram.record", lambda v: LatencyHistogram().record(v)),
    ("LatencyHistogram lowest_ns", lambda v: LatencyHistogram(lowest_ns=v)),
    ("SpreadScanner.add_symbol cap", lambda v: SpreadScanner().add_symbol(0, v)),
    ("SpreadScanner.scan_symbol now_ns", lambda v: _scanner().scan_symbol(0, v, 10)),
    ("WireScale tick_units", lambda v: WireScale(2, v, 4, 1)),
    ("BookRouter dialect", lambda v: BookRouter(v)),
    ("DeltaBatch.first_update_id", lambda v: setattr(DeltaBatch(1), "first_update_id", v)),
    ("DeltaBatch.last_update_id", lambda v: setattr(DeltaBatch(1), "last_update_id", v)),
    ("DeltaBatch.event_time_ms", lambda v: setattr(DeltaBatch(1), "event_time_ms", v)),
]


@pytest.mark.parametrize("value", [2.0, 2.5, Decimal(2), Decimal("2.5")], ids=repr)
@pytest.mark.parametrize(("what", "call"), CALLS, ids=[what for what, _ in CALLS])
def test_a_float_or_decimal_integer_argument_is_refused_not_truncated(
    what: str, call: Callable[[Any], object], value: object
) -> None:
    with pytest.raises(TypeError, match="cannot be interpreted as an integer"):
        call(value)


def test_ints_and_numpy_integers_are_taken() -> None:
    book = _book()
    book.apply_delta(np.int64(BID), np.int64(98), np.int32(3))
    book.apply_delta(True, 102, 1)  # a bool is an int: ASK
    assert book.top(BID, 2) == [(99, 5), (98, 3)]
    assert book.top(ASK, 2) == [(101, 5), (102, 1)]
    assert StateMachine().transition(np.int8(fsm.DETECTING), np.uint16(5)) == fsm.IDLE
    assert WireScale(2, np.int64(1), 4, 1).tick_units == 1
    assert BookRouter(np.int64(DIALECT_GATEIO_SPOT)).dialect == DIALECT_GATEIO_SPOT
    batch = DeltaBatch(1)
    batch.first_update_id, batch.last_update_id, batch.event_time_ms = np.int64(7), 2**63 - 1, np.uint32(5)
    assert (batch.first_update_id, batch.last_update_id, batch.event_time_ms) == (7, 2**63 - 1, 5)


def test_a_wide_integer_is_checked_at_its_width_not_narrowed_first() -> None:
    with pytest.raises(ValueError, match="side must be 0"):
        _book().apply_delta((1 << 32) + BID, 98, 1)  # would read as BID once narrowed to a C int
    with pytest.raises(ValueError, match="must be a state"):
        fsm.legal_targets((1 << 32) + fsm.IDLE)
    with pytest.raises(OverflowError):
        _book().walk(ASK, 1 << 63)


# NOTIONAL_MAX = 2**112 - 1 = 3 * 5 * 17 * 29 * 43 * 113 * 127 * 257 * 5153 * 15790321 * 54410972897:
# prices that divide it (from 2**49 to 2**62, so the lots stay in int64) give products landing on it.
_FACTORS = (3, 5, 17, 29, 43, 113, 127, 257, 5153, 15790321, 54410972897)
_DIVISORS = sorted(
    d for r in range(1, len(_FACTORS) + 1) for d in map(math.prod, itertools.combinations(_FACTORS, r))
    if 2**49 <= d <= 2**62
)


@st.composite
def _asks_near_the_notional_bound(draw: st.DrawFn) -> list[tuple[int, int]]:
    """Ask levels whose notional (sum of price * lots) lands on or just past NOTIONAL_MAX."""
    levels: dict[int, int] = {}
    room = NOTIONAL_MAX
    for _ in range(draw(st.integers(1, 3))):
        price = draw(st.one_of(st.sampled_from(_DIVISORS), st.integers(2**49, 2**62), st.sampled_from([2**49, 2**62])))
        lots = min(max(room // price + draw(st.integers(-1, 1)), 1), INT64_MAX)
        levels[price] = lots
        room = max(room - price * lots, 1)
    return sorted(levels.items())


@settings(max_examples=400)
@example([(2**49, 2**63 - 1)], INT64_MAX)  # one product just under the bound: 2**112 - 2**49
@example([(2**62, 2**50)], INT64_MAX)  # one product one past it
@example([(_DIVISORS[0], NOTIONAL_MAX // _DIVISORS[0])], INT64_MAX)  # one product exactly at the bound
@example([(1, 7), (_DIVISORS[0], NOTIONAL_MAX // _DIVISORS[0] - 1)], INT64_MAX)  # a sum under it
@example([(1, 7), (_DIVISORS[0], NOTIONAL_MAX // _DIVISORS[0])], INT64_MAX)  # a sum past it
@given(asks=_asks_near_the_notional_bound(), take=st.one_of(st.just(INT64_MAX), st.integers(0, INT64_MAX)))
def test_the_walks_checked_notional_is_the_exact_one_or_overflow(asks: list[tuple[int, int]], take: int) -> None:
    compiled, reference = OrderBook("c"), ref_book.OrderBook("r")
    exact, left = 0, take
    for price, lots in asks:
        compiled.apply_delta(ASK, price, lots)
        reference.apply_delta(ASK, price, lots)
        exact += price * min(lots, left)
        left -= min(lots, left)
    outcomes: list[tuple[int, int, int, int] | None] = []
    for book in (compiled, reference):
        try:
            outcomes.append(book.walk(ASK, take))
        except OverflowError as exc:
            assert "fixed-point overflow" in str(exc)
            outcomes.append(None)
    assert outcomes[0] == outcomes[1]
    assert (outcomes[0] is None) == (exact > NOTIONAL_MAX)
    if outcomes[0] is not None:
        assert outcomes[0][:2] == (take - left, exact)
