"""arb_core.scanner: hand-computed cases and a differential test vs tests/reference/scanner.py."""

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arb_core.book import ASK, BID, DeltaBatch, OrderBook
from arb_core.scanner import Opportunity, OpportunityKind, SpreadScanner
from reference import scanner as ref
from reference.scanner import OPPORTUNITY_FIELDS

Levels = Sequence[tuple[int, int]]
NOW = 1_000_000
MAX_AGE = 500_000
BIG = 10**15


def book(name: str, bids: Levels, asks: Levels, recv_ns: int = NOW) -> OrderBook:
    """A synced book holding ``bids`` and ``asks`` (price_ticks, size_lots), received at ``recv_ns``."""
    result = OrderBook(name)
    requote(result, bids, asks, recv_ns)
    return result


def requote(bk: OrderBook, bids: Levels, asks: Levels, recv_ns: int = NOW) -> None:
    """Replace every level of ``bk`` with ``bids`` and ``asks`` by a snapshot received at ``recv_ns``."""
    batch = DeltaBatch()
    batch.is_snapshot = True
    batch.first_update_id = batch.last_update_id = 1
    for price, size in bids:
        batch.add(BID, price, size)
    for price, size in asks:
        batch.add(ASK, price, size)
    bk.apply_snapshot(batch, recv_ns)


def fields(opp: object) -> tuple[int, ...]:
    return tuple(int(getattr(opp, name)) for name in OPPORTUNITY_FIELDS)


def two_venues(
    a: OrderBook, b: OrderBook, fee_a: int = 1_000, fee_b: int = 2_000, caps: int = BIG, price_mult: int = 1,
    scanner_class: Any = SpreadScanner,
) -> Any:
    """Symbol 7 on books ``a`` (leg 0) and ``b`` (leg 1), by ``scanner_class`` (the reference's too)."""
    scanner = scanner_class()
    scanner.add_symbol(7, BIG)
    scanner.add_leg(7, a, 0, False, fee_a, price_mult, 1, 0)
    scanner.add_leg(7, b, 1, False, fee_b, price_mult, 1, 0)
    scanner.set_limits(7, 0, caps, caps)
    scanner.set_limits(7, 1, caps, caps)
    return scanner


def test_spot_spot_buy_100_sell_101() -> None:
    # Tick 0.01 USDT, lot 0.001 BTC on both venues: one common quote unit is 1e-5 USDT.
    # Buy 0.3 BTC at 100.00 on A (0.1 % taker), sell at 101.00 on B (0.2 % taker).
    a = book("A", bids=[(9_990, 100)], asks=[(10_000, 500)])
    b = book("B", bids=[(10_100, 300)], asks=[(10_110, 100)])
    opp = two_venues(a, b).scan_symbol(7, NOW, MAX_AGE)
    assert isinstance(opp, Opportunity)
    assert (opp.symbol_id, opp.buy_leg, opp.sell_leg) == (7, 0, 1)
    assert opp.kind == OpportunityKind.SPOT_SPOT
    assert (opp.size_common, opp.buy_size_lots, opp.sell_size_lots) == (300, 300, 300)
    assert (opp.buy_limit_ticks, opp.sell_limit_ticks) == (10_000, 10_100)
    assert opp.buy_notional == 3_000_000  # 30.00 USDT
    assert opp.sell_notional == 3_030_000  # 30.30 USDT
    assert opp.fees == 3_000 + 6_060
    assert opp.profit == 20_940  # 0.2094 USDT
    assert opp.profit_bps == 69  # 69.8 rounded down


def test_changed_costs_price_the_next_scan() -> None:
    # The 100.00 -> 101.00 trade above: 1 % apart, so it pays until the fees take that.
    a = book("A", bids=[(9_990, 100)], asks=[(10_000, 500)])
    b = book("B", bids=[(10_100, 300)], asks=[(10_110, 100)])
    scanner = two_venues(a, b)
    scanner.set_leg_costs(7, 1, 8_000, 0)  # B's taker fee 0.8 %: 30.00 * 1.001 < 30.30 * 0.992 still pays
    opp = scanner.scan_symbol(7, NOW, MAX_AGE)
    assert opp is not None and opp.fees == 3_000 + 24_240 and opp.profit == 2_760
    scanner.set_leg_costs(7, 1, 9_000, 0)  # 30.03 against 30.0273: no longer pays
    assert scanner.scan_symbol(7, NOW, MAX_AGE) is None
    scanner.set_leg_costs(7, 1, 2_000, 3_030_001)  # back, but B now needs more than the 30.30 sold
    assert scanner.scan_symbol(7, NOW, MAX_AGE) is None
    scanner.set_leg_costs(7, 1, 2_000, 3_030_000)
    back = scanner.scan_symbol(7, NOW, MAX_AGE)
    assert back is not None and back.profit == 20_940


def test_walk_stops_where_the_marginal_level_no_longer_pays_fees() -> None:
    a = book("A", bids=[(9_990, 5)], asks=[(10_000, 3), (10_010, 4), (10_060, 50)])
    b = book("B", bids=[(10_100, 2), (10_090, 10)], asks=[(10_110, 5)])
    opp = two_venues(a, b).scan_symbol(7, NOW, MAX_AGE)
    # 10_060 * 1.001 = 10_070.06 > 10_090 * 0.998 = 10_069.82: the third ask level is not taken.
    assert opp is not None
    assert (opp.size_common, opp.buy_limit_ticks, opp.sell_limit_ticks) == (7, 10_010, 10_090)
    assert opp.buy_notional == 3 * 10_000 + 4 * 10_010
    assert opp.sell_notional == 2 * 10_100 + 5 * 10_090
    assert opp.fees == 71 + 142  # ceil(70.04) + ceil(141.3): rounded up against us
    assert (opp.profit, opp.profit_bps) == (397, 56)


def two_ask_levels_against_one_bid() -> Any:
    """Venue A's asks 3 @ 10_000 and 4 @ 10_010 against venue B's bid 10 @ 10_100, default fees."""
    a = book("A", bids=[(9_990, 5)], asks=[(10_000, 3), (10_010, 4)])
    b = book("B", bids=[(10_100, 10)], asks=[(10_110, 5)])
    return two_venues(a, b)


def test_walk_stops_where_the_marginal_level_no_longer_earns_the_profit_floor() -> None:
    scanner = two_ask_levels_against_one_bid()
    # 10_010 * 1.001 = 10_020.01 against 10_100 * 0.998 = 10_079.8: the second ask level pays the
    # fees but earns 59.7 bps of its price. All 7 at the limits 10_010 / 10_100 would earn that too,
    # under a 60 bps floor, though their average (63 bps) clears it: only the first level is taken.
    scanner.set_symbol_limits(7, BIG, 5_900)
    assert scanner.scan_symbol(7, NOW, MAX_AGE).size_common == 7
    scanner.set_symbol_limits(7, BIG, 6_000)
    opp = scanner.scan_symbol(7, NOW, MAX_AGE)
    assert opp is not None
    assert (opp.size_common, opp.buy_limit_ticks, opp.sell_limit_ticks) == (3, 10_000, 10_100)
    assert (opp.fees, opp.profit, opp.profit_bps) == (30 + 61, 209, 69)


def test_a_level_earning_exactly_the_profit_floor_is_taken() -> None:
    # No fees: the first ask level earns 100 bps of its price exactly, the second 49.7.
    a = book("A", bids=[(9_990, 5)], asks=[(10_000, 3), (10_050, 4)])
    b = book("B", bids=[(10_100, 10)], asks=[(10_110, 5)])
    scanner = two_venues(a, b, fee_a=0, fee_b=0)
    scanner.set_symbol_limits(7, BIG, 10_000)
    opp = scanner.scan_symbol(7, NOW, MAX_AGE)
    assert opp is not None and (opp.size_common, opp.profit, opp.profit_bps) == (3, 300, 100)
    scanner.set_symbol_limits(7, BIG, 10_001)
    assert scanner.scan_symbol(7, NOW, MAX_AGE) is None


def test_a_fractional_profit_floor_is_held_to_the_hundredth_of_a_bp() -> None:
    # The walk above: the second ask level earns 59.73 bps of its price (5_973 ppm), the 3 lots of the
    # first alone 69.66 bps on average (6_966 ppm) and all 7 lots 63.38.
    scanner = two_ask_levels_against_one_bid()
    scanner.set_symbol_limits(7, BIG, 5_973)
    assert scanner.scan_symbol(7, NOW, MAX_AGE).size_common == 7
    scanner.set_symbol_limits(7, BIG, 5_974)
    opp = scanner.scan_symbol(7, NOW, MAX_AGE)
    assert opp is not None and (opp.size_common, opp.profit, opp.profit_bps) == (3, 209, 69)
    scanner.set_symbol_limits(7, BIG, 6_966)
    assert scanner.scan_symbol(7, NOW, MAX_AGE).size_common == 3
    scanner.set_symbol_limits(7, BIG, 6_967)
    assert scanner.scan_symbol(7, NOW, MAX_AGE) is None


def test_spot_futures_hedge_with_different_grids_rounds_to_both_lots() -> None:
    # Common units: price 0.001 USDT, size 1e-6 BTC. Spot: tick 0.01 (x10), lot 1e-6 (x1).
    # Futures: tick 0.1 (x100), contract 0.0001 BTC (x100). Lot grid = lcm(1, 100) = 100.
    spot = book("mexc:BTCUSDT", bids=[(9_990, 1_000)], asks=[(10_000, 250)])
    perp = book("gateio:BTC_USDT", bids=[(1_010, 3)], asks=[(1_011, 3)])
    scanner = SpreadScanner()
    scanner.add_symbol(1, BIG)
    scanner.add_leg(1, spot, 11, False, 500, 10, 1, 0)
    scanner.add_leg(1, perp, 22, True, 750, 100, 100, 0)
    scanner.set_limits(1, 11, BIG, BIG)
    scanner.set_limits(1, 22, BIG, BIG)
    opp = scanner.scan_symbol(1, NOW, MAX_AGE)
    assert opp is not None
    assert opp.kind == OpportunityKind.SPOT_FUTURES_HEDGE
    assert (opp.buy_leg, opp.sell_leg) == (11, 22)
    assert (opp.size_common, opp.buy_size_lots, opp.sell_size_lots) == (200, 200, 2)
    assert opp.buy_notional == 10_000 * 200 * 10  # 0.02 USDT in 1e-9 USDT units
    assert opp.sell_notional == 1_010 * 2 * 100 * 100
    assert opp.fees == 10_000 + 15_150
    assert (opp.profit, opp.profit_bps) == (174_850, 87)
    assert scanner.best(1) is opp


def test_caps_limit_the_size() -> None:
    a = book("A", bids=[(9_990, 100)], asks=[(10_000, 500)])
    b = book("B", bids=[(10_100, 300)], asks=[(10_110, 100)])
    scanner = two_venues(a, b)
    scanner.set_limits(7, 0, 120, BIG)  # A can afford 120 lots
    assert scanner.scan_symbol(7, NOW, MAX_AGE).size_common == 120
    scanner.set_limits(7, 1, BIG, 80)  # B holds 80 lots to sell
    assert scanner.scan_symbol(7, NOW, MAX_AGE).size_common == 80
    scanner.set_symbol_limits(7, 50, 0)  # position cap
    assert scanner.scan_symbol(7, NOW, MAX_AGE).size_common == 50
    scanner.set_limits(7, 1, BIG, 0)
    assert scanner.scan_symbol(7, NOW, MAX_AGE) is None


def test_new_legs_trade_nothing_until_limits_are_set() -> None:
    scanner = SpreadScanner()
    scanner.add_symbol(7, BIG)
    scanner.add_leg(7, book("A", [(9_990, 1)], [(10_000, 5)]), 0, False, 0, 1, 1, 0)
    scanner.add_leg(7, book("B", [(10_100, 5)], [(10_110, 1)]), 1, False, 0, 1, 1, 0)
    assert scanner.scan_symbol(7, NOW, MAX_AGE) is None
    scanner.set_limits(7, 0, 5, 0)
    scanner.set_limits(7, 1, 0, 5)
    assert scanner.scan_symbol(7, NOW, MAX_AGE).size_common == 5


def test_min_notional_rejects_small_trades() -> None:
    a = book("A", bids=[(9_990, 100)], asks=[(10_000, 500)])
    b = book("B", bids=[(10_100, 300)], asks=[(10_110, 100)])
    cases = [(3_000_000, 3_030_000, True), (3_000_001, 0, False), (0, 3_030_001, False)]
    for buy_min, sell_min, found in cases:
        scanner = SpreadScanner()
        scanner.add_symbol(7, BIG)
        scanner.add_leg(7, a, 0, False, 1_000, 1, 1, buy_min)
        scanner.add_leg(7, b, 1, False, 2_000, 1, 1, sell_min)
        scanner.set_limits(7, 0, BIG, BIG)
        scanner.set_limits(7, 1, BIG, BIG)
        assert (scanner.scan_symbol(7, NOW, MAX_AGE) is not None) is found


def lot_grid_scanner(spot_asks: Levels, perp_bids: Levels) -> SpreadScanner:
    # Spot lot = 40 common units, futures contract = 150: tradable sizes are multiples of 600.
    scanner = SpreadScanner()
    scanner.add_symbol(3, BIG)
    scanner.add_leg(3, book("spot", [(99, 10)], spot_asks), 0, False, 0, 1, 40, 0)
    scanner.add_leg(3, book("perp", perp_bids, [(111, 5)]), 1, True, 0, 1, 150, 0)
    scanner.set_limits(3, 0, BIG, BIG)
    scanner.set_limits(3, 1, BIG, BIG)
    return scanner


def test_lot_rounding_down_to_both_grids() -> None:
    # 1_200 common units offered, 750 bid: 750 rounds down to 600 = 15 spot lots = 4 contracts.
    opp = lot_grid_scanner([(100, 30)], [(110, 5)]).scan_symbol(3, NOW, MAX_AGE)
    assert opp is not None
    assert (opp.size_common, opp.buy_size_lots, opp.sell_size_lots) == (600, 15, 4)
    assert (opp.buy_notional, opp.sell_notional, opp.profit, opp.profit_bps) == (60_000, 66_000, 6_000, 1_000)


def test_lot_rounding_can_leave_nothing() -> None:
    # 400 common units offered (10 spot lots) and the grid is 600.
    assert lot_grid_scanner([(100, 10)], [(110, 5)]).scan_symbol(3, NOW, MAX_AGE) is None


def test_fee_rounding_can_turn_a_one_unit_edge_into_no_trade() -> None:
    # 1 unit bought at 100, sold at 101 with 0.5 % fees: ceil(0.5) + ceil(0.505) = 2 > 1.
    a = book("A", bids=[(90, 1)], asks=[(100, 1)])
    b = book("B", bids=[(101, 1)], asks=[(120, 1)])
    assert two_venues(a, b, fee_a=5_000, fee_b=5_000).scan_symbol(7, NOW, MAX_AGE) is None
    # Without fees the same unit earns 1.
    assert two_venues(a, b, fee_a=0, fee_b=0).scan_symbol(7, NOW, MAX_AGE).profit == 1


@pytest.mark.parametrize("scanner_class", [SpreadScanner, ref.SpreadScanner], ids=["compiled", "reference"])
def test_a_pair_earning_exactly_nothing_is_not_traded(scanner_class: type) -> None:
    # 1 unit bought at 100 with a 0.5 % fee, ceil(0.5) = 1, and sold at 101 without one: profit 0.
    # The marginal price (100.5 against 101) pays; only the rounded fee takes the edge.
    a = book("A", bids=[(90, 1)], asks=[(100, 1)])
    b = book("B", bids=[(101, 1)], asks=[(120, 1)])
    scanner = two_venues(a, b, fee_a=5_000, fee_b=0, scanner_class=scanner_class)
    assert scanner.scan_symbol(7, NOW, MAX_AGE) is None
    assert scanner.best(7) is None
    scanner.set_leg_costs(7, 0, 4_999, 0)  # ceil(0.4999) is still 1
    assert scanner.scan_symbol(7, NOW, MAX_AGE) is None
    scanner.set_leg_costs(7, 0, 0, 0)  # the same unit without the fee earns 1
    found = scanner.scan_symbol(7, NOW, MAX_AGE)
    assert found is not None and (found.profit, found.fees) == (1, 0)


def test_min_profit_bps_filters() -> None:
    a = book("A", bids=[(9_990, 100)], asks=[(10_000, 500)])
    b = book("B", bids=[(10_100, 300)], asks=[(10_110, 100)])
    scanner = two_venues(a, b)
    scanner.set_symbol_limits(7, BIG, 6_900)
    assert scanner.scan_symbol(7, NOW, MAX_AGE).profit_bps == 69
    scanner.set_symbol_limits(7, BIG, 7_000)
    assert scanner.scan_symbol(7, NOW, MAX_AGE) is None
    assert scanner.best(7) is None
    assert scanner.scan_all(NOW, MAX_AGE) == []


def test_stale_and_out_of_sync_legs_are_skipped() -> None:
    a = book("A", bids=[(9_990, 100)], asks=[(10_000, 500)], recv_ns=NOW - MAX_AGE)
    b = book("B", bids=[(10_100, 300)], asks=[(10_110, 100)])
    c = book("C", bids=[(10_050, 300)], asks=[(10_200, 100)])
    scanner = two_venues(a, b)
    scanner.add_leg(7, c, 2, False, 0, 1, 1, 0)
    scanner.set_limits(7, 2, BIG, BIG)
    assert scanner.scan_symbol(7, NOW, MAX_AGE).sell_leg == 1  # A -> B is the best
    assert scanner.scan_symbol(7, NOW + 1, MAX_AGE) is None  # A is now 1 ns too old
    b.mark_out_of_sync()
    assert scanner.scan_symbol(7, NOW, MAX_AGE).sell_leg == 2  # only A -> C remains
    assert scanner.scan_symbol(7, NOW, 0) is None


def three_legs(c_bid: int) -> SpreadScanner:
    """Symbol 7 on legs 5 (A: ask 10,000), 6 (B: bid 10,100) and 4 (C: bid ``c_bid``), registered in that order."""
    a = book("A", bids=[(9_990, 100)], asks=[(10_000, 100)])
    b = book("B", bids=[(10_100, 100)], asks=[(10_110, 100)])
    c = book("C", bids=[(c_bid, 100)], asks=[(10_120, 100)])
    scanner = SpreadScanner()
    scanner.add_symbol(7, BIG)
    for leg_id, bk in [(5, a), (6, b), (4, c)]:
        scanner.add_leg(7, bk, leg_id, False, 0, 1, 1, 0)
        scanner.set_limits(7, leg_id, BIG, BIG)
    return scanner


def test_best_pair_wins_and_ties_keep_registration_order() -> None:
    scanner = three_legs(10_100)
    opp = scanner.scan_symbol(7, NOW, MAX_AGE)
    assert (opp.buy_leg, opp.sell_leg) == (5, 6)  # A->B and A->C tie: B registered first
    assert scanner.leg_ids(7) == [5, 6, 4]


def test_a_scan_except_some_pairs_finds_the_best_of_the_others() -> None:
    scanner = three_legs(10_050)
    assert (scanner.scan_symbol(7, NOW, MAX_AGE).sell_leg, scanner.best(7).sell_leg) == (6, 6)
    opp = scanner.scan_symbol_except(7, NOW, MAX_AGE, [(5, 6)])
    assert opp is not None and (opp.buy_leg, opp.sell_leg, opp.profit) == (5, 4, 5_000)
    assert scanner.best(7) is opp
    assert scanner.scan_symbol_except(7, NOW, MAX_AGE, [(5, 6), (5, 4)]) is None
    assert scanner.scan_symbol_except(7, NOW, MAX_AGE, []).sell_leg == 6


@pytest.mark.parametrize("scanner_class", [SpreadScanner, ref.SpreadScanner], ids=["compiled", "reference"])
def test_a_scan_of_one_pair_walks_no_further_than_its_size_cap(scanner_class: type) -> None:
    # The walk above (asks 3 at 10_000 and 4 at 10_010 against bids 2 at 10_100 and 10 at 10_090)
    # takes 7; capped at 6 or 3 it stops short of the 10_010 asks (3) or of the 10_090 bids (2).
    a = book("A", bids=[(9_990, 5)], asks=[(10_000, 3), (10_010, 4), (10_060, 50)])
    b = book("B", bids=[(10_100, 2), (10_090, 10)], asks=[(10_110, 5)])
    scanner = two_venues(a, b, scanner_class=scanner_class)
    walks = [scanner.scan_pair(7, 0, 1, NOW, MAX_AGE, cap) for cap in (BIG, 6, 3, 2, 0)]
    assert [(o.size_common, o.buy_limit_ticks, o.sell_limit_ticks) for o in walks[:4]] == [
        (7, 10_010, 10_090), (6, 10_010, 10_090), (3, 10_000, 10_090), (2, 10_000, 10_100)
    ]
    assert walks[4] is None and scanner.best(7) is None
    assert scanner.scan_pair(7, 1, 0, NOW, MAX_AGE, BIG) is None  # the other way round does not pay
    assert scanner.scan_pair(7, 0, 1, NOW + MAX_AGE + 1, MAX_AGE, BIG) is None  # stale books


def test_two_futures_legs_are_not_paired() -> None:
    scanner = SpreadScanner()
    scanner.add_symbol(7, BIG)
    scanner.add_leg(7, book("F1", [(99, 5)], [(100, 5)]), 0, True, 0, 1, 1, 0)
    scanner.add_leg(7, book("F2", [(110, 5)], [(111, 5)]), 1, True, 0, 1, 1, 0)
    scanner.set_limits(7, 0, BIG, BIG)
    scanner.set_limits(7, 1, BIG, BIG)
    assert scanner.scan_symbol(7, NOW, MAX_AGE) is None


def test_scan_all_scans_every_symbol_in_order() -> None:
    scanner = SpreadScanner()
    for symbol_id, edge in [(30, 100), (10, 0), (20, 50)]:
        scanner.add_symbol(symbol_id, BIG)
        scanner.add_leg(symbol_id, book("A", [(9_990, 9)], [(10_000, 9)]), 0, False, 0, 1, 1, 0)
        scanner.add_leg(symbol_id, book("B", [(10_000 + edge, 9)], [(10_200, 9)]), 1, False, 0, 1, 1, 0)
        scanner.set_limits(symbol_id, 0, BIG, BIG)
        scanner.set_limits(symbol_id, 1, BIG, BIG)
    found = scanner.scan_all(NOW, MAX_AGE)
    assert [(o.symbol_id, o.profit) for o in found] == [(30, 900), (20, 450)]
    assert scanner.best(10) is None and scanner.best(20) is found[1]
    assert scanner.symbol_ids() == [30, 10, 20] and len(scanner) == 3


def test_empty_books_give_nothing() -> None:
    scanner = two_venues(book("A", [], []), book("B", [(10_100, 5)], []))
    assert scanner.scan_symbol(7, NOW, MAX_AGE) is None


def _pair_of(ask: tuple[int, int], bid: tuple[int, int], price_mult: int, fee_ppm: int = 0) -> SpreadScanner:
    a, b = book("A", bids=[(1, 1)], asks=[ask]), book("B", bids=[bid], asks=[(bid[0] * 2, 1)])
    return two_venues(a, b, fee_ppm, fee_ppm, price_mult=price_mult)


def test_notionals_past_int64_are_exact() -> None:
    """A sub-cent coin on fine grids: 2**60 ticks x 2**20 lots x 1e6 is about 1.2e30 common units."""
    found = _pair_of((2**40, 2**20), (2**40 + 2**30, 2**20), 10**6, fee_ppm=1).scan_symbol(7, NOW, MAX_AGE)
    assert found is not None
    buy, sell = 2**60 * 10**6, (2**40 + 2**30) * 2**20 * 10**6
    fees = -(-buy // 10**6) - (-sell // 10**6)
    assert (found.buy_notional, found.sell_notional, found.fees) == (buy, sell, fees)
    assert found.profit == sell - buy - fees > 2**63 and found.profit_bps == found.profit * 10_000 // buy


def test_notional_overflow_raises_instead_of_wrapping() -> None:
    scanner = _pair_of((2**61, 2**40), (2**61 + 2**50, 2**40), 10**12)  # 2**141 common units
    with pytest.raises(OverflowError):
        scanner.scan_symbol(7, NOW, MAX_AGE)


@pytest.mark.parametrize("scanner_class", [SpreadScanner, ref.SpreadScanner], ids=["compiled", "reference"])
def test_a_scan_that_raises_leaves_no_earlier_result_standing(scanner_class: type) -> None:
    a = book("A", bids=[(1, 1)], asks=[(1_000, 10)])
    b = book("B", bids=[(1_100, 10)], asks=[(5_000, 1)])
    scanner = two_venues(a, b, fee_a=0, fee_b=0, price_mult=10**12, scanner_class=scanner_class)
    first = scanner.scan_symbol(7, NOW, MAX_AGE)
    assert first is not None and scanner.best(7) is first
    # The same pair, now worth trading on notionals of about 2**141 common units.
    requote(a, bids=[(1, 1)], asks=[(2**61, 2**40)])
    requote(b, bids=[(2**61 + 2**50, 2**40)], asks=[(2**62, 1)])
    with pytest.raises(OverflowError):
        scanner.scan_symbol(7, NOW, MAX_AGE)
    assert scanner.best(7) is None


def test_a_minimum_order_value_past_int64_is_kept_exactly() -> None:
    scanner = _pair_of((2**40, 2**20), (2**40 + 1, 2**20), 10**6)
    notional = 2**60 * 10**6
    scanner.set_leg_costs(7, 0, 0, notional + 1)
    assert scanner.scan_symbol(7, NOW, MAX_AGE) is None
    scanner.set_leg_costs(7, 0, 0, notional)
    assert scanner.scan_symbol(7, NOW, MAX_AGE) is not None
    with pytest.raises(ValueError, match=r"min_notional_common must be in \[0, 2\*\*112 - 1\]"):
        scanner.set_leg_costs(7, 0, 0, 2**112)
    with pytest.raises(TypeError):
        scanner.set_leg_costs(7, 0, 0, 1.5)


@pytest.mark.parametrize(
    ("asks", "bids", "size_mults", "fee_ppm", "cap"),
    [
        ([(100, 2**62)], [(200, 10)], (4, 1), 0, 8),  # the best ask alone: 2**62 lots x 4 passes int64
        ([(100, 5), (10_000, 10**16)], [(200, 100)], (1000, 1000), 1000, 10**6),  # a deep level never taken
    ],
    ids=["best-level", "untraded-level"],
)
def test_a_level_too_large_for_int64_in_common_units_is_walked_like_the_reference(
    asks: list[tuple[int, int]], bids: list[tuple[int, int]], size_mults: tuple[int, int], fee_ppm: int, cap: int
) -> None:
    """Only what is traded must fit: a level's size counts up to the cap being filled, so a huge
    level (a coin priced far below a cent) neither stops the scan nor changes what it finds."""
    found = []
    for scanner_class in (SpreadScanner, ref.SpreadScanner):
        a, b = OrderBook("A"), OrderBook("B")
        batch = DeltaBatch()
        for price, size in asks:
            batch.add(ASK, price, size)
        batch.add(BID, 50, 1)
        a.apply_snapshot(batch, NOW)
        batch = DeltaBatch()
        for price, size in bids:
            batch.add(BID, price, size)
        batch.add(ASK, 300, 1)
        b.apply_snapshot(batch, NOW)
        scanner = scanner_class()
        scanner.add_symbol(1, cap)
        scanner.add_leg(1, a, 0, False, fee_ppm, 1, size_mults[0], 0)
        scanner.add_leg(1, b, 1, False, fee_ppm, 1, size_mults[1], 0)
        scanner.set_limits(1, 0, cap, cap)
        scanner.set_limits(1, 1, cap, cap)
        found.append(scanner.scan_symbol(1, NOW, MAX_AGE))
    compiled, reference = found
    assert compiled is not None and reference is not None
    assert (compiled.size_common, compiled.profit, compiled.buy_limit_ticks) == (
        reference.size_common, reference.profit, reference.buy_limit_ticks
    )


def test_opportunity_is_not_built_by_hand() -> None:
    with pytest.raises(TypeError):
        Opportunity()


def _registered() -> SpreadScanner:
    scanner = SpreadScanner()
    scanner.add_symbol(7, BIG)
    scanner.add_leg(7, book("A", [(9_990, 1)], [(10_000, 1)]), 0, False, 0, 1, 1, 0)
    return scanner


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda s: s.add_symbol(-1, 1), "symbol_id"),
        (lambda s: s.add_symbol(7, 1), "symbol_id"),
        (lambda s: s.add_symbol(8, -1), "max_position_common"),
        (lambda s: s.add_symbol(8, 1, -1), "min_profit_ppm"),
        (lambda s: s.set_symbol_limits(99, 1, 0), "symbol_id"),
        (lambda s: s.set_symbol_limits(7, -1, 0), "max_position_common"),
        (lambda s: s.set_symbol_limits(7, 1, -5), "min_profit_ppm"),
        (lambda s: s.add_leg(99, OrderBook("x"), 1, False, 0, 1, 1, 0), "symbol_id"),
        (lambda s: s.add_leg(7, None, 1, False, 0, 1, 1, 0), "book"),
        (lambda s: s.add_leg(7, OrderBook("x"), -1, False, 0, 1, 1, 0), "leg_id"),
        (lambda s: s.add_leg(7, OrderBook("x"), 0, False, 0, 1, 1, 0), "leg_id"),
        (lambda s: s.add_leg(7, OrderBook("x"), 1, False, -1, 1, 1, 0), "taker_fee_ppm"),
        (lambda s: s.add_leg(7, OrderBook("x"), 1, False, 1_000_000, 1, 1, 0), "taker_fee_ppm"),
        (lambda s: s.add_leg(7, OrderBook("x"), 1, False, 0, 0, 1, 0), "price_mult"),
        (lambda s: s.add_leg(7, OrderBook("x"), 1, False, 0, 10**12 + 1, 1, 0), "price_mult"),
        (lambda s: s.add_leg(7, OrderBook("x"), 1, False, 0, 1, 0, 0), "size_mult"),
        (lambda s: s.add_leg(7, OrderBook("x"), 1, False, 0, 1, -3, 0), "size_mult"),
        (
            lambda s: (
                s.add_leg(7, OrderBook("y"), 2, False, 0, 1, 3, 0),
                s.add_leg(7, OrderBook("x"), 1, False, 0, 1, 2**62 + 1, 0),  # lcm with 3 overflows
            ),
            "size_mult",
        ),
        (lambda s: s.add_leg(7, OrderBook("x"), 1, False, 0, 1, 1, -1), "min_notional_common"),
        (lambda s: s.set_limits(99, 0, 1, 1), "symbol_id"),
        (lambda s: s.set_limits(7, 5, 1, 1), "leg_id"),
        (lambda s: s.set_limits(7, 0, -1, 1), "max_buy_common"),
        (lambda s: s.set_limits(7, 0, 1, -1), "max_sell_common"),
        (lambda s: s.set_leg_costs(99, 0, 1, 0), "symbol_id"),
        (lambda s: s.set_leg_costs(7, 5, 1, 0), "leg_id"),
        (lambda s: s.set_leg_costs(7, 0, -1, 0), "taker_fee_ppm"),
        (lambda s: s.set_leg_costs(7, 0, 1_000_000, 0), "taker_fee_ppm"),
        (lambda s: s.set_leg_costs(7, 0, 1, -1), "min_notional_common"),
        (lambda s: s.scan_symbol(99, 0, 0), "symbol_id"),
        (lambda s: s.scan_symbol(7, -1, 0), "now_ns"),
        (lambda s: s.scan_symbol(7, 0, -1), "max_age_ns"),
        (lambda s: s.scan_symbol_except(99, 0, 0, []), "symbol_id"),
        (lambda s: s.scan_symbol_except(7, -1, 0, []), "now_ns"),
        (lambda s: s.scan_symbol_except(7, 0, 0, [(0, 1)]), "no pair buying on leg 0 and selling on leg 1"),
        (lambda s: s.scan_pair(99, 0, 1, 0, 0, 1), "symbol_id"),
        (lambda s: s.scan_pair(7, 0, 1, 0, 0, 1), "no pair buying on leg 0 and selling on leg 1"),
        (lambda s: s.scan_pair(7, 0, 0, 0, 0, 1), "no pair buying on leg 0 and selling on leg 0"),
        (lambda s: s.scan_pair(7, 0, 1, 0, -1, 1), "max_age_ns"),
        (lambda s: (s.add_leg(7, OrderBook("x"), 1, False, 0, 1, 1, 0), s.scan_pair(7, 0, 1, 0, 0, -1)),
         "max_size_common"),
        (lambda s: s.scan_all(-1, 0), "now_ns"),
        (lambda s: s.scan_all(0, -1), "max_age_ns"),
        (lambda s: s.best(99), "symbol_id"),
        (lambda s: s.leg_ids(99), "symbol_id"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(
    call: Callable[[SpreadScanner], object], argument: str
) -> None:
    with pytest.raises(ValueError, match=argument):
        call(_registered())


def test_too_many_legs() -> None:
    scanner = _registered()
    for leg_id in range(1, 8):
        scanner.add_leg(7, OrderBook("x"), leg_id, False, 0, 1, 1, 0)
    with pytest.raises(ValueError, match="legs"):
        scanner.add_leg(7, OrderBook("x"), 8, False, 0, 1, 1, 0)
    assert len(scanner.leg_ids(7)) == 8


# ---- differential: compiled vs reference on random books -------------------------------


RECV_TIMES = [NOW, NOW - 5, NOW - MAX_AGE, NOW - MAX_AGE - 1, 0]  # 0: never updated
FEES_PPM = [0, 200, 500, 750, 1_000, 2_000, 7_777]


@st.composite
def leg_specs(draw: st.DrawFn, is_futures: bool, tradable: bool) -> dict[str, object]:
    price_mult = draw(st.sampled_from([1, 2, 5, 10, 100]))
    size_mult = draw(st.sampled_from([1, 2, 3, 10, 100, 250]))
    # Quote around a common mid of 100_000 price units, shifted per leg so books cross across venues.
    mid = (100_000 + draw(st.integers(-3_000, 3_000))) // price_mult
    half_spread = draw(st.integers(1, 3))
    # Steep books (up to 30 bps a level) let the profit floor fall inside a walk, not only before it.
    max_gap = draw(st.sampled_from([4, 4, 300]))

    def side(direction: int) -> list[tuple[int, int]]:
        gaps = draw(st.lists(st.integers(1, max_gap), min_size=draw(st.sampled_from([1, 1, 1, 0])), max_size=8))
        prices, price = [], mid + direction * half_spread
        for gap in gaps:
            prices.append(price)
            price += direction * gap
        return [(p, draw(st.integers(1, 60))) for p in prices if p > 0]

    return {
        "is_futures": is_futures,
        "fee_ppm": draw(st.sampled_from(FEES_PPM)),
        "price_mult": price_mult,
        "size_mult": size_mult,
        "min_notional": draw(st.sampled_from([0, 10**6, 3 * 10**7])),
        "bids": side(-1),
        "asks": side(+1),
        "recv_ns": NOW if tradable else draw(st.sampled_from(RECV_TIMES)),
        "in_sync": tradable or draw(st.integers(0, 4)) > 0,
        "max_buy": draw(st.sampled_from([BIG, 2_000, 500, 37] + ([] if tradable else [0]))),
        "max_sell": draw(st.sampled_from([BIG, 2_000, 500, 53] + ([] if tradable else [0]))),
    }


@st.composite
def symbols(draw: st.DrawFn, tradable: bool = False) -> dict[str, object]:
    """A symbol of 2-3 legs, at most one futures; ``tradable`` keeps every leg fresh with funds."""
    n_legs = draw(st.integers(2, 3))
    futures_at = draw(st.integers(-1, n_legs - 1))
    return {
        "max_position": draw(st.sampled_from([BIG, 10_000, 1_000, 100] + ([] if tradable else [0]))),
        "min_profit_ppm": draw(st.sampled_from([0, 1, 100, 250, 1_000, 5_000])),
        "legs": [draw(leg_specs(k == futures_at, tradable)) for k in range(n_legs)],
    }


@st.composite
def rounding_symbols(draw: st.DrawFn) -> dict[str, object]:
    """Two legs on a grid of one common unit, a lot or two crossing by a tick or two near 100:
    notionals so small that the fees, each rounded up to a whole unit, take part, all (profit
    exactly 0) or more of the edge."""
    ask = draw(st.integers(50, 150))
    bid = ask + draw(st.integers(1, 3))
    lots = st.integers(1, 2)
    books = [
        ([(ask - 2, 1)], [(ask, draw(lots)), (ask + draw(st.integers(1, 2)), draw(lots))]),
        ([(bid, draw(lots)), (bid - draw(st.integers(1, 2)), draw(lots))], [(bid + 2, 1)]),
    ]
    futures_at = draw(st.integers(-1, 1))
    legs = [
        {
            "is_futures": k == futures_at, "fee_ppm": draw(st.sampled_from(FEES_PPM)), "price_mult": 1,
            "size_mult": 1, "min_notional": 0, "bids": bids, "asks": asks, "recv_ns": NOW, "in_sync": True,
            "max_buy": BIG, "max_sell": BIG,
        }
        for k, (bids, asks) in enumerate(books)
    ]
    return {
        "max_position": BIG,
        "min_profit_ppm": draw(st.sampled_from([0, 0, 1, 37, 100])),
        "legs": draw(st.permutations(legs)),
    }


def build(specs: list[dict[str, object]]) -> tuple[SpreadScanner, ref.SpreadScanner]:
    compiled, reference = SpreadScanner(), ref.SpreadScanner()
    for symbol_id, spec in enumerate(specs):
        for scanner in (compiled, reference):
            scanner.add_symbol(symbol_id, spec["max_position"], spec["min_profit_ppm"])
        for leg_id, leg in enumerate(spec["legs"]):
            bk = OrderBook(f"leg{leg_id}")
            if leg["recv_ns"]:
                bk = book(f"leg{leg_id}", leg["bids"], leg["asks"], recv_ns=leg["recv_ns"])
                if not leg["in_sync"]:
                    bk.mark_out_of_sync()
            args = (
                leg["is_futures"], leg["fee_ppm"], leg["price_mult"], leg["size_mult"], leg["min_notional"]
            )
            for scanner in (compiled, reference):
                scanner.add_leg(symbol_id, bk, leg_id * 3 + 1, *args)
                scanner.set_limits(symbol_id, leg_id * 3 + 1, leg["max_buy"], leg["max_sell"])
    return compiled, reference


@settings(max_examples=500, deadline=None)
@given(spec=st.one_of(symbols(tradable=True), symbols(), rounding_symbols()))
def test_scan_symbol_matches_reference(spec: dict[str, object]) -> None:
    compiled, reference = build([spec])
    got = compiled.scan_symbol(0, NOW, MAX_AGE)
    want = reference.scan_symbol(0, NOW, MAX_AGE)
    assert (got is None) == (want is None)
    if want is not None:
        assert fields(got) == fields(want)
        assert fields(compiled.best(0)) == fields(want)


@settings(max_examples=300, deadline=None)
@given(spec=st.one_of(symbols(tradable=True), symbols(), rounding_symbols()), data=st.data())
def test_scan_after_cost_and_limit_changes_matches_reference(spec: dict[str, object], data: st.DataObject) -> None:
    """Replacing leg costs (set_leg_costs) and, at random, the symbol's position cap and profit
    floor (set_symbol_limits) after a first scan prices the next scan like the reference."""
    compiled, reference = build([spec])
    for scanner in (compiled, reference):
        scanner.scan_symbol(0, NOW, MAX_AGE)  # priced with the registered fees and limits first
    for leg_id in range(len(spec["legs"])):
        fee = data.draw(st.one_of(st.sampled_from([0, 500, 2_000, 999_999]), st.integers(0, 20_000)))
        minimum = data.draw(st.sampled_from([0, 10**6, 3 * 10**7, 10**9]))
        for scanner in (compiled, reference):
            scanner.set_leg_costs(0, leg_id * 3 + 1, fee, minimum)
    if data.draw(st.booleans(), label="new symbol limits"):
        cap = data.draw(st.one_of(st.sampled_from([BIG, 10_000, 1_000, 100, 1, 0]), st.integers(0, 5_000)))
        floor = data.draw(st.one_of(st.sampled_from([0, 1, 100, 1_000, 5_000, 1_000_000]), st.integers(0, 20_000)))
        for scanner in (compiled, reference):
            scanner.set_symbol_limits(0, cap, floor)
    got = compiled.scan_symbol(0, NOW, MAX_AGE)
    want = reference.scan_symbol(0, NOW, MAX_AGE)
    assert (got is None) == (want is None)
    if want is not None:
        assert fields(got) == fields(want)


@settings(max_examples=200, deadline=None)
@given(spec=st.one_of(symbols(tradable=True), symbols(), rounding_symbols()), data=st.data())
def test_scan_except_some_pairs_matches_reference(spec: dict[str, object], data: st.DataObject) -> None:
    compiled, reference = build([spec])
    legs = [leg_id * 3 + 1 for leg_id in range(len(spec["legs"]))]
    pairs = [
        (legs[i], legs[j]) for i in range(len(legs)) for j in range(len(legs))
        if i != j and not (spec["legs"][i]["is_futures"] and spec["legs"][j]["is_futures"])
    ]
    excluded = data.draw(st.lists(st.sampled_from(pairs), max_size=len(pairs)))
    got = compiled.scan_symbol_except(0, NOW, MAX_AGE, excluded)
    want = reference.scan_symbol_except(0, NOW, MAX_AGE, excluded)
    assert (got is None) == (want is None)
    if want is not None:
        assert fields(got) == fields(want) and (want.buy_leg, want.sell_leg) not in excluded


@settings(max_examples=200, deadline=None)
@given(spec=st.one_of(symbols(tradable=True), symbols(), rounding_symbols()), data=st.data())
def test_scan_of_one_pair_under_a_size_cap_matches_reference(spec: dict[str, object], data: st.DataObject) -> None:
    compiled, reference = build([spec])
    legs = [leg_id * 3 + 1 for leg_id in range(len(spec["legs"]))]
    buy, sell = data.draw(st.permutations(range(len(legs))))[:2]
    if spec["legs"][buy]["is_futures"] and spec["legs"][sell]["is_futures"]:
        return
    cap = data.draw(st.one_of(st.sampled_from([BIG, 2**63 - 1, 0, 1]), st.integers(0, 3_000)))
    got = compiled.scan_pair(0, legs[buy], legs[sell], NOW, MAX_AGE, cap)
    want = reference.scan_pair(0, legs[buy], legs[sell], NOW, MAX_AGE, cap)
    assert (got is None) == (want is None)
    if want is not None:
        assert fields(got) == fields(want) and (want.buy_leg, want.sell_leg) == (legs[buy], legs[sell])
        assert want.size_common <= cap


@settings(max_examples=100, deadline=None)
@given(specs=st.lists(symbols(), min_size=1, max_size=5), max_age_ns=st.sampled_from([0, 5, MAX_AGE]))
def test_scan_all_matches_reference(specs: list[dict[str, object]], max_age_ns: int) -> None:
    compiled, reference = build(specs)
    got = compiled.scan_all(NOW, max_age_ns)
    want = reference.scan_all(NOW, max_age_ns)
    assert [fields(o) for o in got] == [fields(o) for o in want]


def _outcome(scanner: object, symbol_id: int) -> tuple[str, object]:
    try:
        found = scanner.scan_symbol(symbol_id, NOW, MAX_AGE)  # type: ignore[attr-defined]
    except OverflowError:
        return "raise", None
    return "ok", None if found is None else fields(found)


@st.composite
def huge_legs(draw: st.DrawFn) -> dict[str, object]:
    """A leg whose common-unit notionals may pass NOTIONAL_MAX: large multipliers, prices and sizes."""
    levels = st.lists(
        st.tuples(st.integers(1, 10**18), st.integers(1, 10**18)), max_size=4, unique_by=lambda x: x[0]
    )
    asks = sorted(draw(levels))
    bids = sorted(draw(levels), reverse=True)
    if asks and bids and bids[0][0] >= asks[0][0]:  # keep each book uncrossed
        bids = [(p, s) for p, s in bids if p < asks[0][0]]
    return {
        "is_futures": False,
        "fee_ppm": draw(st.sampled_from([0, 2_000, 999_999])),
        "price_mult": draw(st.sampled_from([1, 10**3, 10**6, 10**12])),
        "size_mult": draw(st.sampled_from([1, 10**3, 10**6])),
        "min_notional": draw(st.sampled_from([0, 10**12, 10**18, 2**63 - 1, 10**30, 2**112 - 1])),
        "bids": bids, "asks": asks, "recv_ns": NOW, "in_sync": True,
        "max_buy": BIG, "max_sell": BIG,
    }


@settings(max_examples=400, deadline=None)
@given(legs=st.lists(huge_legs(), min_size=2, max_size=3), min_profit_ppm=st.sampled_from([0, 250, 1_000]))
def test_scans_near_the_notional_bound_match_the_reference(legs: list[dict[str, object]], min_profit_ppm: int) -> None:
    """A pair exact arithmetic rules out (below a minimum, unprofitable) is not traded even when
    the fixed point cannot hold its notionals; only a pair worth trading raises, as the reference does."""
    compiled, reference = build([{"max_position": BIG, "min_profit_ppm": min_profit_ppm, "legs": legs}])
    assert _outcome(compiled, 0) == _outcome(reference, 0)
    assert (compiled.best(0) is None) == (reference.best(0) is None)


def test_an_unusable_pair_that_overflows_does_not_hide_a_good_one() -> None:
    """Selling one lot into D fills a buy on A below A's minimum; D's notional would pass NOTIONAL_MAX."""
    scanner = SpreadScanner()
    a = book("A", [], [(1000, 10)])
    b = book("B", [(1100, 10)], [])
    d = book("D", [(2**62, 1)], [])
    scanner.add_symbol(1, 10**8)
    scanner.add_leg(1, a, 0, False, 0, 1, 10**6, 5 * 10**9)
    scanner.add_leg(1, b, 1, False, 0, 1, 10**6, 0)
    scanner.add_leg(1, d, 2, False, 0, 10**12, 10**6, 0)
    for leg in range(3):
        scanner.set_limits(1, leg, 10**8, 10**8)
    found = scanner.scan_symbol(1, NOW, MAX_AGE)
    assert found is not None and (found.buy_leg, found.sell_leg, found.profit) == (0, 1, 10**9)
