"""arb.pipeline: common scales over venue book scales, opportunity conversion to the order grid, freshness."""

from __future__ import annotations

from decimal import ROUND_FLOOR
from decimal import Decimal as D

import msgspec
import pytest

from arb_core.book import ASK, BID, DeltaBatch, OrderBook
from arb_core.wire.common import WireScale

from arb.exchanges.base import BookKey
from arb.funding import FundingBook, FundingRate
from arb.hedges import HedgeBook, HedgePosition
from arb.instruments import Instrument, InstrumentCatalog, InstrumentError
from arb.pipeline import Leg, ScannerPipeline, walk_price
from arb.risk import RiskManager
from arb.sim.cluster import default_instruments
from arb.types import (
    ArbitrageOpportunity,
    ArbitrageState,
    ExchangeName,
    ExecutionLeg,
    ExecutionResult,
    OpportunityType,
    OrderSide,
    RiskLimits,
)

INSTRUMENTS = {(i.exchange, i.base): i for i in default_instruments(("BTC",))}
GATE = INSTRUMENTS[(ExchangeName.GATEIO, "BTC")]
MEXC = INSTRUMENTS[(ExchangeName.MEXC, "BTC")]
GATE_PERP = INSTRUMENTS[(ExchangeName.GATEIO_FUTURES, "BTC")]
GATE_BOOK = WireScale(8, 1, 10, 1)  # Gate spot books: finer than the 0.1 / 0.000001 order grid
GATE_BTC_BOOK = WireScale(3, 1, 10, 1)  # Gate's BTC_USDT book: coarse enough for a 1 BTC notional in int64
MEXC_BOOK = WireScale(*MEXC.wire_scale())
GATE_PERP_BOOK = WireScale(*GATE_PERP.wire_scale())
MAX_AGE_MS = 100


def book(
    name: str, scale: WireScale, bids: list[tuple[str, str]], asks: list[tuple[str, str]], recv_ns: int = 1
) -> OrderBook:
    """An in-sync book holding the given (price, size) levels, converted exactly into ``scale``."""
    result = OrderBook(name)
    result.apply_snapshot(snapshot(scale, bids, asks), recv_ns)
    return result


def snapshot(scale: WireScale, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> DeltaBatch:
    """A snapshot (update id 1) of the given (price, size) levels, converted exactly into ``scale``."""
    tick = D(scale.tick_units).scaleb(-scale.price_decimals)
    lot = D(scale.lot_units).scaleb(-scale.size_decimals)
    batch = DeltaBatch(64)
    for side, levels in ((BID, bids), (ASK, asks)):
        for price, size in levels:
            ticks, lots = D(price) / tick, D(size) / lot
            assert ticks == int(ticks) and lots == int(lots)
            batch.add(side, int(ticks), int(lots))
    batch.first_update_id = batch.last_update_id = 1
    return batch


def pipeline(
    *legs: tuple[Instrument, OrderBook, WireScale], now_ns: int = 2, **kwargs: object
) -> tuple[ScannerPipeline, list[ArbitrageOpportunity]]:
    found: list[ArbitrageOpportunity] = []
    p = ScannerPipeline(
        max_data_age_ms=MAX_AGE_MS, on_opportunity=lambda opp, plan: found.append(opp), clock=lambda: now_ns,
        id_prefix="t", **kwargs,  # type: ignore[arg-type]
    )
    (plan,) = p.register_symbol("BTC/USDT", legs)
    for leg in plan.legs:
        p.set_leg_limits(plan.symbol_id, leg.leg_id, D(100), D(100))
    return p, found


def test_common_scale_is_the_finest_of_gate_and_mexc_books() -> None:
    gate = book("gate", GATE_BOOK, [("59999.9", "1")], [("60000", "1")])
    mexc = book("mexc", MEXC_BOOK, [("59999.99", "1")], [("60000.01", "1")])
    perp = book("perp", GATE_PERP_BOOK, [("59999.9", "10")], [("60000", "10")])
    p, _ = pipeline((GATE, gate, GATE_BOOK), (MEXC, mexc, MEXC_BOOK), (GATE_PERP, perp, GATE_PERP_BOOK),
                    opportunity_types=(OpportunityType.SPOT_SPOT, OpportunityType.SPOT_FUTURES_HEDGE))
    (plan,) = p.plans.values()
    assert (plan.price_decimals, plan.size_decimals) == (8, 10)
    gate_leg, mexc_leg, perp_leg = plan.legs
    # common units per book tick / lot: 1e-8 quote and 1e-10 base
    assert (gate_leg.price_mult, gate_leg.size_mult) == (1, 1)
    assert (mexc_leg.price_mult, mexc_leg.size_mult) == (10**6, 10**4)  # tick 0.01, lot 0.000001 BTC
    assert (perp_leg.price_mult, perp_leg.size_mult) == (10**7, 10**6)  # tick 0.1, one contract of 0.0001 BTC
    assert (gate_leg.fee_ppm, mexc_leg.fee_ppm, perp_leg.fee_ppm) == (2000, 500, 500)
    assert gate_leg.min_notional_common == 3 * 10**18 and mexc_leg.min_notional_common == 10**18
    assert gate_leg.order_lot_common == 10**4 and perp_leg.order_lot_common == 10**6


def test_markets_whose_grids_cannot_share_a_fixed_point_are_refused_naming_the_symbol_and_grids() -> None:
    """A tick ratio past the scanner's range raised the scanner's bare ValueError at start-up."""
    coarse = msgspec.structs.replace(MEXC, tick_size=D(100000), price_decimals=0)
    coarse_book = WireScale(*coarse.wire_scale())
    gate = book("gate", GATE_BOOK, [("59999.9", "1")], [("60000", "1")])
    mexc = book("mexc", coarse_book, [("100000", "1")], [("200000", "1")])
    p = ScannerPipeline(max_data_age_ms=MAX_AGE_MS)
    with pytest.raises(InstrumentError, match=r"^symbol BTC/USDT: its markets cannot be scanned together \(gateio tick 0\.1 "
                       r"lot 0\.000001 \(book 1E-8 / 1E-10\); mexc tick 100000 .*\): price_mult must be in"):
        p.register_symbol("BTC/USDT", [(GATE, gate, GATE_BOOK), (coarse, mexc, coarse_book)])


def test_spot_spot_only_leaves_futures_out_and_hedge_only_pairs_each_spot_with_futures() -> None:
    legs = [
        (GATE, book("gate", GATE_BOOK, [("1", "1")], [("2", "1")]), GATE_BOOK),
        (MEXC, book("mexc", MEXC_BOOK, [("1", "1")], [("2", "1")]), MEXC_BOOK),
        (GATE_PERP, book("perp", GATE_PERP_BOOK, [("1", "1")], [("2", "1")]), GATE_PERP_BOOK),
    ]
    spot = ScannerPipeline(max_data_age_ms=MAX_AGE_MS)
    (plan,) = spot.register_symbol("BTC/USDT", legs)
    assert [leg.exchange for leg in plan.legs] == [ExchangeName.GATEIO, ExchangeName.MEXC]
    hedge = ScannerPipeline(max_data_age_ms=MAX_AGE_MS, opportunity_types=(OpportunityType.SPOT_FUTURES_HEDGE,))
    plans = hedge.register_symbol("BTC/USDT", legs)
    assert [[leg.exchange for leg in p.legs] for p in plans] == [
        [ExchangeName.GATEIO, ExchangeName.GATEIO_FUTURES],
        [ExchangeName.MEXC, ExchangeName.GATEIO_FUTURES],
    ]
    hedge.on_book_update(BookKey(ExchangeName.GATEIO_FUTURES, "BTC/USDT:USDT"))
    assert hedge.marked == {0, 1}


def test_buy_limit_rounds_up_and_sell_limit_down_to_the_order_grid() -> None:
    # Buy on Gate, whose book prices (8 decimals) are finer than its 0.1 order tick; sell on MEXC.
    gate = book("gate", GATE_BOOK, [("59000", "1")], [("60000.01234567", "0.0001234567")])
    mexc = book("mexc", MEXC_BOOK, [("60400.01", "5")], [("60500", "5")])
    p, found = pipeline((GATE, gate, GATE_BOOK), (MEXC, mexc, MEXC_BOOK))
    p.on_book_update(BookKey(ExchangeName.GATEIO, "BTC/USDT"))
    p.on_batch_end()
    (opp,) = found
    assert (opp.buy_exchange, opp.sell_exchange) == (ExchangeName.GATEIO, ExchangeName.MEXC)
    assert opp.buy_price == D("60000.1")  # never below the book's worst ask
    assert opp.sell_price == D("60400.01")
    assert opp.max_quantity == D("0.000123")  # 0.0001234567 down to both 0.000001 lots
    cost, proceeds = opp.max_quantity * opp.buy_price, opp.max_quantity * opp.sell_price
    assert opp.total_profit_estimate == proceeds - cost - cost * GATE.taker_fee - proceeds * MEXC.taker_fee
    assert opp.opportunity_id == "t1_btc" and opp.opportunity_type is OpportunityType.SPOT_SPOT

    # The other way round: Gate's bid rounds down.
    gate = book("gate", GATE_BOOK, [("60400.16789", "1")], [("60500", "1")])
    mexc = book("mexc", MEXC_BOOK, [("59000", "5")], [("60000.01", "0.0001")])
    p, found = pipeline((GATE, gate, GATE_BOOK), (MEXC, mexc, MEXC_BOOK))
    opp2 = p.scan(0)
    assert opp2 is not None and found == [opp2]
    assert opp2.sell_price == D("60400.1") and opp2.buy_price == D("60000.01")
    assert opp2.max_quantity == D("0.0001")


def test_a_margin_floor_finer_than_the_stated_margin_is_not_undercut_by_its_rounding() -> None:
    """Buy on Gate (0.2 % taker) at 59999.95, on the 0.1 order tick 60000, and sell on MEXC (0.05 %)
    at 60300.13: 25.005 bps on the books, 24.9967 at the limits. With a floor of 24.994 bps the
    opening was stated at 24.99, rounded down to 0.01, and the risk manager, which holds the stated
    margin to the exact floor, refused it on every scan."""
    gate = book("gate", GATE_BOOK, [("59000", "1")], [("59999.95", "0.01")])
    mexc = book("mexc", MEXC_BOOK, [("60300.13", "5")], [("60500", "5")])
    floor = D("24.994")
    opp = pipeline((GATE, gate, GATE_BOOK), (MEXC, mexc, MEXC_BOOK), min_profit_bps=floor)[0].scan(0)
    assert opp is not None and opp.buy_price == D(60000)
    exact = opp.total_profit_estimate * 10_000 / (opp.max_quantity * opp.buy_price)
    assert floor <= opp.profit_margin_bps <= exact < D(25)
    limits = RiskLimits(max_position_size_usd=D(1000), max_total_exposure_usd=D(1000), max_daily_loss_usd=D(50),
                        min_profit_margin_bps=floor, max_consecutive_failures=3, max_execution_latency_ms=500)
    RiskManager(limits).validate_opportunity_risk(opp)  # raises when refused


def test_a_fractional_margin_floor_is_not_rounded_up_to_a_whole_bp() -> None:
    """Buy 0.01 BTC on MEXC at 60000 (0.05 % taker) and sell it on Gate at 60167.2 (0.2 %): 2.81 bps
    after the fees. The scanner was handed a floor of 2.5 bps rounded up to 3, and never found it."""
    gate = book("gate", GATE_BTC_BOOK, [("60167.2", "1")], [("60500", "1")])
    mexc = book("mexc", MEXC_BOOK, [("59000", "5")], [("60000", "0.01")])
    opp = pipeline((GATE, gate, GATE_BTC_BOOK), (MEXC, mexc, MEXC_BOOK), min_profit_bps=D("2.5"))[0].scan(0)
    assert opp is not None and (opp.max_quantity, opp.buy_price, opp.sell_price) == (D("0.01"), D(60000), D("60167.2"))
    assert opp.profit_margin_bps == D("2.81")
    assert pipeline((GATE, gate, GATE_BTC_BOOK), (MEXC, mexc, MEXC_BOOK), min_profit_bps=D("2.82"))[0].scan(0) is None


def test_new_terms_price_the_next_scan_and_withdraw_what_stood_with_the_old_ones() -> None:
    # Buy on Gate at 60000 (0.2 % taker), sell on MEXC at 60300 (0.05 %): 50 bps, 25 of them fees.
    gate = book("gate", GATE_BOOK, [("59000", "1")], [("60000", "0.01")])
    mexc = book("mexc", MEXC_BOOK, [("60300", "0.01")], [("61000", "1")])
    p, found = pipeline((GATE, gate, GATE_BOOK), (MEXC, mexc, MEXC_BOOK))
    gate_key = BookKey(ExchangeName.GATEIO, "BTC/USDT")
    p.on_book_update(gate_key)
    p.on_batch_end()
    (first,) = found
    assert (first.buy_fee, p.stands(0, first)) == (GATE.taker_fee, True)
    dearer = msgspec.structs.replace(GATE, taker_fee=D("0.0045"), maker_fee=D("0.003"))
    assert p.update_terms(dearer)
    (plan,) = p.plans.values()
    assert plan.legs[0].instrument is dearer and plan.legs[0].fee_ppm == 4500
    assert not p.stands(0, first) and p.marked == {0}
    p.scan_pending()  # 45 + 5 bps of fees take the whole 50
    assert found == [first]
    cheaper = msgspec.structs.replace(GATE, taker_fee=D("0.001"))
    assert p.update_terms(cheaper)
    p.scan_pending()
    assert len(found) == 2 and found[1].buy_fee == D("0.001")
    cost, proceeds = found[1].max_quantity * found[1].buy_price, found[1].max_quantity * found[1].sell_price
    assert found[1].total_profit_estimate == proceeds - cost - cost * D("0.001") - proceeds * MEXC.taker_fee
    assert not p.update_terms(GATE_PERP)  # not scanned here
    with pytest.raises(ValueError, match=r"^gateio BTC/USDT: trading rules changed \(tick_size 0.1 -> 1\)"):
        p.update_terms(msgspec.structs.replace(cheaper, tick_size=D(1)))
    assert plan.legs[0].instrument is cheaper
    # A minimum above the 600 USDT the trade buys (past int64 in this grid's 1e-18 USDT units):
    # nothing is found until it comes down again.
    assert found[1].max_quantity * found[1].buy_price == D(600)
    p.update_terms(msgspec.structs.replace(cheaper, min_notional=D("600.000001")))
    p.scan_pending()
    assert len(found) == 2 and plan.legs[0].min_notional_common == 600_000_001 * 10**12
    p.update_terms(msgspec.structs.replace(cheaper, min_notional=D(600)))
    p.scan_pending()
    assert len(found) == 3


def found_buy_gate_sell_mexc() -> tuple[ScannerPipeline, list[ArbitrageOpportunity], OrderBook]:
    """A pipeline whose scan of Gate.io's update found (and still stands by) buy-Gate/sell-MEXC:
    the pipeline, what it found, and MEXC's book."""
    gate = book("gate", GATE_BOOK, [("59000", "1")], [("60000", "0.01")])
    mexc = book("mexc", MEXC_BOOK, [("60300", "0.01")], [("61000", "1")])
    p, found = pipeline((GATE, gate, GATE_BOOK), (MEXC, mexc, MEXC_BOOK))
    p.on_book_update(BookKey(ExchangeName.GATEIO, "BTC/USDT"))
    p.on_batch_end()
    (opp,) = found
    assert p.stands(0, opp)
    return p, found, mexc


def test_positions_are_marked_at_the_highest_ask_of_the_books_in_sync() -> None:
    p, _, mexc = found_buy_gate_sell_mexc()
    assert p.mark_prices() == {"BTC/USDT": D("61000")}  # MEXC's ask above Gate's 60000
    mexc.mark_out_of_sync()
    assert p.mark_prices() == {"BTC/USDT": D("60000")}


def test_a_book_going_out_of_sync_withdraws_what_was_found_on_it() -> None:
    """A gap on MEXC's book right after a scan found buy-Gate/sell-MEXC: the opportunity no longer
    stands (a queued one is not sent), and the symbol is scanned again, without that book."""
    p, found, mexc = found_buy_gate_sell_mexc()
    (opp,) = found
    mexc.mark_out_of_sync()
    p.on_book_state(BookKey(ExchangeName.MEXC, "BTC/USDT"), False, "gap")
    assert not p.stands(0, opp) and p.marked == {0} and p.desyncs == 1
    p.scan_pending()
    assert found == [opp] and p.standing_opportunities() == []


def test_a_rehearsal_converts_the_last_hit_again_without_using_an_id_or_counting() -> None:
    gate = book("gate", GATE_BOOK, [("59000", "1")], [("60000.01234567", "0.0001234567")])
    mexc = book("mexc", MEXC_BOOK, [("60400.01", "5")], [("60500", "5")])
    p, found = pipeline((GATE, gate, GATE_BOOK), (MEXC, mexc, MEXC_BOOK))
    assert p.rehearse(5) is None  # no hit yet
    first = p.scan(0)
    assert first is not None and first.opportunity_id == "t1_btc"
    counts = (p.scans, p.found, p.dropped_after_rounding, p.dropped_for_funding)
    rehearsed = p.rehearse(7)
    assert rehearsed is not None and rehearsed.opportunity_id == "trehearsal" and rehearsed.detected_at == 7
    assert msgspec.structs.replace(rehearsed, opportunity_id=first.opportunity_id, detected_at=first.detected_at) == first
    assert (p.scans, p.found, p.dropped_after_rounding, p.dropped_for_funding) == counts
    assert found == [first] and p.standing_opportunities() == [first]
    second = p.scan(0)
    assert second is not None and second.opportunity_id == "t2_btc"


def test_a_thin_deeper_level_that_would_pull_the_trade_under_the_floor_is_left_untaken() -> None:
    # Buy on MEXC: 1 BTC at 60000, then 0.05 at 60200; sell on Gate at 60400. The 60200 unit pays both
    # fees (60200 * 1.0005 < 60400 * 0.998) but earns 8 bps: all 1.05 BTC priced at those limits would
    # miss the 10 bps floor and be dropped, while the first level alone earns 41.5 bps.
    gate = book("gate", GATE_BTC_BOOK, [("60400", "2")], [("60500", "1")])
    mexc = book("mexc", MEXC_BOOK, [("59000", "5")], [("60000", "1"), ("60200", "0.05")])
    p, found = pipeline((GATE, gate, GATE_BTC_BOOK), (MEXC, mexc, MEXC_BOOK), min_profit_bps=D(10))
    opp = p.scan(0)
    assert opp is not None and found == [opp] and p.dropped_after_rounding == 0
    assert (opp.buy_exchange, opp.sell_exchange) == (ExchangeName.MEXC, ExchangeName.GATEIO)
    assert (opp.max_quantity, opp.buy_price, opp.sell_price) == (D(1), D(60000), D(60400))
    assert (opp.total_profit_estimate, opp.profit_margin_bps) == (D("249.2"), D("41.53"))


def test_a_deeper_level_the_order_tick_takes_under_the_floor_is_walked_back_not_the_whole_pair() -> None:
    """Gate's spot book is finer than its 0.1 order tick. Buying there, 0.01 BTC at 60000 then 0.01
    at 60100.01, and selling on MEXC at 60250.34: the second level still pays both fees on the book
    (by 0.005 USDT a BTC), so the scanner walks both; at its limit rounded up to 60100.1 it does
    not, and the whole pair was dropped on every scan while the first level alone earns 16.7 bps."""
    gate = book("gate", GATE_BOOK, [("59000", "1")], [("60000", "0.01"), ("60100.01", "0.01")])
    mexc = book("mexc", MEXC_BOOK, [("60250.34", "1")], [("60500", "1")])
    p, found = pipeline((GATE, gate, GATE_BOOK), (MEXC, mexc, MEXC_BOOK))
    assert p.scanner.scan_symbol(0, 2, p.max_age_ns).size_common == 2 * 10**8  # 0.02 BTC in 1e-10 units
    opp = p.scan(0)
    assert opp is not None and found == [opp] and p.stands(0, opp)
    assert (opp.buy_exchange, opp.max_quantity, opp.buy_price, opp.sell_price) == (
        ExchangeName.GATEIO, D("0.01"), D(60000), D("60250.34")
    )
    assert opp.profit_margin_bps == D("16.70")
    assert (p.found, p.dropped_after_rounding) == (1, 0)
    assert p.rehearse(3) == msgspec.structs.replace(opp, opportunity_id="trehearsal", detected_at=3)


def test_a_hedge_whose_funding_takes_its_deeper_level_under_the_floor_opens_on_the_better_one() -> None:
    """Buying 0.001 BTC on Gate spot at 60000, then 0.001 at 60100, and shorting the perpetual at 60400
    earns 41.6 and 24.9 bps after fees: the funding-blind scanner walks both. Short, the hedge pays
    0.025 %/h, 20 bps over its 8 h: both units at the 60100 limit then earn 4.8 bps, under the 10 bps
    floor, and the whole hedge was dropped, while the first unit alone earns 21.5."""
    wall_ms = 1_700_000_000_000
    funding = FundingBook(horizon_s=8 * 3600, max_age_ms=60_000, wall_clock_ms=lambda: wall_ms)
    funding.update([FundingRate(exchange=ExchangeName.GATEIO_FUTURES, symbol=GATE_PERP.symbol, rate=D("-0.00025"),
                                interval_s=3600, next_settle_ms=wall_ms + 3_600_000)])
    spot = book("spot", GATE_BTC_BOOK, [("59990", "10")], [("60000", "0.001"), ("60100", "0.001")])
    perp = book("perp", GATE_PERP_BOOK, [("60400", "20")], [("60910", "100000")])
    p, found = pipeline((GATE, spot, GATE_BTC_BOOK), (GATE_PERP, perp, GATE_PERP_BOOK),
                        opportunity_types=(OpportunityType.SPOT_FUTURES_HEDGE,), min_profit_bps=D(10))
    p.funding = funding
    opp = p.scan(0)
    assert opp is not None and found == [opp]
    assert (opp.max_quantity, opp.buy_price, opp.sell_price) == (D("0.001"), D(60000), D(60400))
    assert opp.expected_funding == D("-0.1208")  # 8 x 0.025 % of 60.4 USDT
    assert opp.profit_margin_bps == D("21.50")
    assert (p.found, p.dropped_after_rounding, p.dropped_paying_funding) == (1, 0, 0)


def test_a_dropped_best_pair_gives_way_to_the_next_best_pair_of_the_same_books() -> None:
    # Buying on MEXC pays most hedged on Gate's perpetual (439.75 USDT) but, with no funding rate
    # read yet, that hedge is refused; selling on Gate spot instead still earns 249.2 USDT.
    gate = book("gate", GATE_BTC_BOOK, [("60400", "1")], [("60500", "1")])
    mexc = book("mexc", MEXC_BOOK, [("59900", "1")], [("60000", "1")])
    perp = book("perp", GATE_PERP_BOOK, [("60500", "10000")], [("60600", "10000")])
    p, found = pipeline(
        (GATE, gate, GATE_BTC_BOOK), (MEXC, mexc, MEXC_BOOK), (GATE_PERP, perp, GATE_PERP_BOOK),
        opportunity_types=(OpportunityType.SPOT_SPOT, OpportunityType.SPOT_FUTURES_HEDGE), min_profit_bps=D(10),
    )
    assert p.scan(0).sell_exchange is ExchangeName.GATEIO_FUTURES
    p.funding = FundingBook(horizon_s=3600, max_age_ms=1000)
    opp = p.scan(0)
    assert opp is not None and found[-1] is opp and p.stands(0, opp)
    assert (opp.opportunity_type, opp.buy_exchange, opp.sell_exchange) == (
        OpportunityType.SPOT_SPOT, ExchangeName.MEXC, ExchangeName.GATEIO
    )
    assert (opp.max_quantity, opp.total_profit_estimate) == (D(1), D("249.2"))
    assert (p.found, p.dropped_after_rounding, p.dropped_for_funding) == (3, 1, 1)


def test_an_opportunity_that_stops_paying_after_rounding_is_dropped() -> None:
    # 60150.35 * (1 - 0.2 %) beats 60000 * (1 + 0.05 %) on the book; at the 0.1 order tick (60150.3) it does not.
    gate = book("gate", GATE_BOOK, [("60150.35", "1")], [("60200", "1")])
    mexc = book("mexc", MEXC_BOOK, [("59000", "5")], [("60000", "0.01")])
    p, found = pipeline((GATE, gate, GATE_BOOK), (MEXC, mexc, MEXC_BOOK))
    assert p.scan(0) is None
    assert p.found == 1 and p.dropped_after_rounding == 1 and found == []


def test_a_stale_book_gives_no_opportunity() -> None:
    gate = book("gate", GATE_BOOK, [("59000", "1")], [("60000", "1")], recv_ns=1_000)
    mexc = book("mexc", MEXC_BOOK, [("60400", "5")], [("60500", "5")], recv_ns=1_000)
    max_age_ns = MAX_AGE_MS * 1_000_000
    fresh, _ = pipeline((GATE, gate, GATE_BOOK), (MEXC, mexc, MEXC_BOOK), now_ns=1_000 + max_age_ns)
    assert fresh.scan(0) is not None
    stale, found = pipeline((GATE, gate, GATE_BOOK), (MEXC, mexc, MEXC_BOOK), now_ns=1_001 + max_age_ns)
    assert stale.scan(0) is None and found == []
    gate.mark_out_of_sync()
    assert fresh.scan(0) is None


def test_an_opportunity_priced_above_the_asks_the_cap_was_set_at_is_cut_to_max_position_usd() -> None:
    """The size cap (6 USD at the 60500 ask) was set before both books moved up 10 %: the hit's
    0.000099 BTC at a 66440 limit would be 6.58 USD, over the limit the risk check applies to each
    leg. It is cut to what 6 USD buys at its higher limit instead of being traded too big (or refused)."""
    gate = book("gate", GATE_BOOK, [("59000", "1")], [("60000", "1")])
    mexc = book("mexc", MEXC_BOOK, [("60400", "5")], [("60500", "5")])
    p, _ = pipeline((GATE, gate, GATE_BOOK), (MEXC, mexc, MEXC_BOOK), max_position_usd=D("6"))
    gate.apply_snapshot(snapshot(GATE_BOOK, [("64900", "1")], [("66000", "1")]), 2)
    mexc.apply_snapshot(snapshot(MEXC_BOOK, [("66440", "5")], [("66550", "5")]), 2)
    opp = p.scan(0)
    assert opp is not None and opp.sell_price == D("66440")
    assert opp.max_quantity == D("0.000090")  # 6 / 66440 rounded down to the lot
    assert opp.max_quantity * opp.sell_price <= D("6")


def test_a_book_coming_in_sync_after_registration_sets_the_position_cap() -> None:
    """Registered while both books are empty (start-up), the symbol's size cap is zero; their
    snapshots set it before the scan that follows, and the owner hears of each."""
    gate, mexc = OrderBook("gate"), OrderBook("mexc")
    p, found = pipeline((GATE, gate, GATE_BOOK), (MEXC, mexc, MEXC_BOOK), max_position_usd=D("6"))
    synced: list[BookKey] = []
    p.on_sync = synced.append
    assert p.scan(0) is None
    keys = [BookKey(GATE.exchange, "BTC/USDT"), BookKey(MEXC.exchange, "BTC/USDT")]
    gate.apply_snapshot(snapshot(GATE_BOOK, [("59000", "1")], [("60000", "1")]), 2)
    p.on_book_state(keys[0], True, "snapshot")
    mexc.apply_snapshot(snapshot(MEXC_BOOK, [("60400", "5")], [("60500", "5")]), 2)
    p.on_book_state(keys[1], True, "snapshot")
    p.on_batch_end()
    assert synced == keys
    assert [o.max_quantity for o in found] == [D("0.000099")]  # 6 / 60500 rounded down to the lot


def test_position_cap_follows_max_position_usd_and_the_fixed_point() -> None:
    gate = book("gate", GATE_BOOK, [("59000", "1")], [("60000", "1")])
    mexc = book("mexc", MEXC_BOOK, [("60400", "5")], [("60500", "5")])
    capped, _ = pipeline((GATE, gate, GATE_BOOK), (MEXC, mexc, MEXC_BOOK), max_position_usd=D("6"))
    opp = capped.scan(0)
    assert opp is not None and opp.max_quantity == D("0.000099")  # 6 / 60500 rounded down to the lot
    # Without a USD cap the book holds it: notionals at 1e-18 USDT units pass int64 (9.2 USDT) by far.
    uncapped, _ = pipeline((GATE, gate, GATE_BOOK), (MEXC, mexc, MEXC_BOOK))
    opp = uncapped.scan(0)
    assert opp is not None and opp.max_quantity == D(1)
    assert uncapped.overflows == 0


def test_a_halted_market_gets_no_opportunity_until_resumed_and_its_limits_set_again() -> None:
    gate = book("gate", GATE_BOOK, [("59000", "1")], [("60000.1", "0.01")])
    mexc = book("mexc", MEXC_BOOK, [("60400.01", "5")], [("60500", "5")])
    p, found = pipeline((GATE, gate, GATE_BOOK), (MEXC, mexc, MEXC_BOOK))
    assert p.scan(0) is not None
    assert p.halt_market(ExchangeName.GATEIO, "BTC/USDT", "untradable")
    assert not p.halt_market(ExchangeName.GATEIO, "BTC/USDT", "again")  # the first reason stays
    assert p.halted == {BookKey(ExchangeName.GATEIO, "BTC/USDT"): "untradable"}
    assert p.scan(0) is None
    p.set_leg_limits(0, 0, D(100), D(100))  # the balance monitor's next caps do not lift a halt
    assert p.scan(0) is None
    assert p.resume_market(ExchangeName.GATEIO, "BTC/USDT") and not p.resume_market(ExchangeName.GATEIO, "BTC/USDT")
    assert p.scan(0) is None  # still zero until the caps are set again
    p.set_leg_limits(0, 0, D(100), D(100))
    assert p.scan(0) is not None and len(found) == 2


def test_a_scan_that_overflows_withdraws_what_the_previous_scan_found() -> None:
    """A scan found buy-Gate/sell-MEXC; the next scan of the symbol overflows the fixed point. What
    the first scan found is not confirmed by the latest one: it no longer stands, so a queued copy
    is not traded."""
    p, found, _ = found_buy_gate_sell_mexc()
    (opp,) = found

    class Overflowing:  # what the compiled scanner raises when a traded notional passes int64
        def scan_symbol(self, symbol_id: int, now_ns: int, max_age_ns: int) -> None:
            raise OverflowError("4611686018427387904 * 4")

    p.scanner = Overflowing()  # type: ignore[assignment]
    assert p.scan(0) is None and p.overflows == 1
    assert not p.stands(0, opp)



def test_a_symbol_overflowing_on_every_scan_is_warned_about_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    """Books that overflow the fixed point do so on every update: one warning a minute per symbol,
    with how many scans overflowed since, instead of one per scan."""
    p, _, _ = found_buy_gate_sell_mexc()
    now = [0]
    p.clock = lambda: now[0]

    class Overflowing:
        def scan_symbol(self, symbol_id: int, now_ns: int, max_age_ns: int) -> None:
            raise OverflowError("4611686018427387904 * 4")

    p.scanner = Overflowing()  # type: ignore[assignment]
    with caplog.at_level("WARNING", logger="arb.pipeline"):
        for _ in range(1_000):
            now[0] += 10_000_000  # 10 s of scans, every 10 ms
            p.scan(0)
        now[0] += 60_000_000_000
        p.scan(0)
    warnings = [r.getMessage() for r in caplog.records if "scanner: symbol BTC/USDT" in r.getMessage()]
    assert len(warnings) == 2 and p.overflows == 1_001
    assert warnings[1].endswith("(999 more scans overflowed since the last warning)")


def test_a_walk_past_the_fixed_point_is_not_priced_and_raises_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """Only extreme books reach 2**112 - 1: 2**62 ticks x 2**50 lots."""
    from arb.sim.cluster import _instrument

    whole = _instrument(ExchangeName.GATEIO, "X", "1", "1", taker="0.001", maker="0.001")
    scale = WireScale(0, 1, 0, 1)
    leg = Leg(0, whole, book("x", scale, [], [(str(2**62), str(2**62))]), scale, 0, 0)
    assert walk_price(leg, ASK, D(2**49)) == D(2**62)
    with caplog.at_level("WARNING", logger="arb.pipeline"):
        assert walk_price(leg, ASK, D(2**50)) is None
    assert f"gateio X/USDT: cannot walk {2**50} base: fixed-point overflow" in caplog.text


@pytest.mark.parametrize(("hourly", "refused"), [("-0.000975", True), ("-0.0008", False)])
def test_a_hedge_walking_two_levels_is_refused_exactly_where_the_closing_rule_would_close_its_fills(
    hourly: str, refused: bool
) -> None:
    """Buying 0.002 BTC over the asks 60000 and 60100 fills at 60050 on average, below its 60100
    limit. The guard priced the opening at its limits (entry basis, fees, funding and floor) while
    the closing rule sees the position at its fills' averages: at -0.0975 %/h of funding the
    opening passed, and the rule closed it at once on the same books, a round trip lost (-0.74
    USDT on 120 USDT) on every scan while the dislocation stood."""
    wall_ms = 1_700_000_000_000
    funding = FundingBook(horizon_s=8 * 3600, max_age_ms=60_000, wall_clock_ms=lambda: wall_ms)
    funding.update([FundingRate(exchange=ExchangeName.GATEIO_FUTURES, symbol=GATE_PERP.symbol, rate=D(hourly),
                                interval_s=3600, next_settle_ms=wall_ms + 3_600_000)])
    spot = book("spot", GATE_BTC_BOOK, [("59990", "10")], [("60000", "0.001"), ("60100", "0.001")])
    perp = book("perp", GATE_PERP_BOOK, [("60900", "20")], [("60910", "100000")])
    p, _ = pipeline((GATE, spot, GATE_BTC_BOOK), (GATE_PERP, perp, GATE_PERP_BOOK),
                    opportunity_types=(OpportunityType.SPOT_FUTURES_HEDGE,), min_profit_bps=D(10))
    p.funding = funding
    opening = p.scan(0)
    assert (opening is None, p.dropped_paying_funding) == (refused, int(refused))
    if opening is not None:
        assert (opening.max_quantity, opening.buy_price, opening.sell_price) == (D("0.002"), D(60100), D(60900))

    # The position its fills would leave, and the closing rule on the same books.
    quantity, spot_average, perp_average = D("0.002"), D(60050), D(60900)
    position = HedgePosition(
        symbol="BTC/USDT", spot=ExchangeName.GATEIO, futures=ExchangeName.GATEIO_FUTURES, base=quantity,
        spot_price=spot_average, futures_price=perp_average,
        entry_fees=quantity * (spot_average * GATE.taker_fee + perp_average * GATE_PERP.taker_fee),
    )
    held = funding.held(ExchangeName.GATEIO_FUTURES, GATE_PERP.symbol, OrderSide.SELL, perp_average)
    closing = HedgeBook({}, min_profit_bps=D(10)).close_opportunity(
        position, *p.plans[0].legs, id_prefix="t", detected_ns=2, max_age_ns=p.max_age_ns,
        held_funding_per_base=held,
    )
    assert (closing is not None) == refused


def _hedge_opened(hedges: HedgeBook, spot_average: D, perp_average: D, perp_rate: D) -> HedgePosition:
    """Record in ``hedges`` an opening that bought 0.002 BTC on Gate.io spot at ``spot_average`` (its fee
    at the taker rate, in BTC) and sold it on the perpetual at ``perp_average``, charged ``perp_rate``."""
    base = D("0.002")
    contracts = base / GATE_PERP.contract_size
    opening = ArbitrageOpportunity(
        opportunity_id="o", opportunity_type=OpportunityType.SPOT_FUTURES_HEDGE, symbol="BTC/USDT",
        buy_exchange=ExchangeName.GATEIO, sell_exchange=ExchangeName.GATEIO_FUTURES, buy_price=spot_average,
        sell_price=perp_average, max_quantity=base, profit_per_unit=D(1), total_profit_estimate=D(1),
        profit_margin_bps=D(1), detected_at=0,
    )
    legs = (
        ExecutionLeg(exchange=ExchangeName.GATEIO, symbol=GATE.symbol, side=OrderSide.BUY, client_order_id="b",
                     requested_quantity=base, limit_price=spot_average, filled_quantity=base,
                     average_price=spot_average, fee=base * GATE.taker_fee, fee_asset="BTC"),
        ExecutionLeg(exchange=ExchangeName.GATEIO_FUTURES, symbol=GATE_PERP.symbol, side=OrderSide.SELL,
                     client_order_id="s", requested_quantity=contracts, limit_price=perp_average,
                     filled_quantity=contracts, average_price=perp_average, fee=base * perp_average * perp_rate,
                     fee_asset="USDT", contract_size=GATE_PERP.contract_size),
    )
    result = ExecutionResult(opportunity_id="o", final_state=ArbitrageState.COMPLETED,
                             total_execution_time_ms=D(1), realized_profit=D(0), legs=legs)
    position = hedges.record(opening, result)
    assert position is not None
    return position


@pytest.mark.parametrize(("charged", "refused"), [("0.0002", True), ("0.0005", False)])
def test_a_hedge_is_refused_where_the_closing_rule_would_close_it_at_the_futures_rate_the_venue_charges(
    charged: str, refused: bool
) -> None:
    """Gate.io charges a futures order the rate its answer reports (``tkfr``), which a promotion can set
    under the tier's 0.05 %. The closing rule counts an opening's fees as they were charged, while
    the guard priced them at the tier: with the perpetual's last order charged 0.02 %, at -0.0848 %/h
    of funding the opening passed and the rule closed it at once on the same books, a round trip
    lost on every scan while the dislocation stood. At the tier's rate nothing changes."""
    wall_ms = 1_700_000_000_000
    funding = FundingBook(horizon_s=8 * 3600, max_age_ms=60_000, wall_clock_ms=lambda: wall_ms)
    funding.update([FundingRate(exchange=ExchangeName.GATEIO_FUTURES, symbol=GATE_PERP.symbol,
                                rate=D("-0.000848"), interval_s=3600, next_settle_ms=wall_ms + 3_600_000)])
    spot = book("spot", GATE_BTC_BOOK, [("59990", "10")], [("60000", "0.001"), ("60100", "0.001")])
    perp = book("perp", GATE_PERP_BOOK, [("60900", "20")], [("60910", "100000")])
    p, _ = pipeline((GATE, spot, GATE_BTC_BOOK), (GATE_PERP, perp, GATE_PERP_BOOK),
                    opportunity_types=(OpportunityType.SPOT_FUTURES_HEDGE,), min_profit_bps=D(10))
    p.funding = funding
    catalogs = {i.exchange: InstrumentCatalog(i.exchange, [i]) for i in (GATE, GATE_PERP)}
    hedges = HedgeBook(catalogs, min_profit_bps=D(10))
    _hedge_opened(hedges, D(60000), D(61000), D(charged))  # an earlier hedge: the perpetual charged this
    p.charged_rates = hedges
    opening = p.scan(0)
    assert (opening is None, p.dropped_paying_funding) == (refused, int(refused))

    # The position its fills would leave, charged the same, and the closing rule on the same books.
    opened = HedgeBook(catalogs, min_profit_bps=D(10))
    position = _hedge_opened(opened, D(60050), D(60900), D(charged))
    held = funding.held(ExchangeName.GATEIO_FUTURES, GATE_PERP.symbol, OrderSide.SELL, position.futures_price)
    closing = opened.close_opportunity(
        position, *p.plans[0].legs, id_prefix="t", detected_ns=2, max_age_ns=p.max_age_ns,
        held_funding_per_base=held,
    )
    assert (closing is not None) == refused


def _cheap_coin(tick: str, price: str, size: str, gate_size_decimals: int | None = None) -> tuple[ScannerPipeline, D]:
    """X/USDT bought on MEXC at ``price`` and sold on Gate.io 1 % higher, ``size`` X deep, with
    Gate.io's spot book grid (two price decimals finer than the tick; its sizes' decimals, or
    ``gate_size_decimals``); a 1000 USDT position limit. Returns the pipeline, its caps
    refreshed, and the buy price."""
    from arb.exchanges.gateio.market_data import GateioSpotMarketData
    from arb.sim.cluster import _instrument

    gate = _instrument(ExchangeName.GATEIO, "X", tick, "1", taker="0.001", maker="0.001", min_notional="3")
    mexc = _instrument(ExchangeName.MEXC, "X", tick, "1", taker="0.0005", maker="0", min_notional="1",
                       fees_in_quote=True)
    gate_scale = GateioSpotMarketData.book_scale(GateioSpotMarketData.__new__(GateioSpotMarketData), gate)
    if gate_size_decimals is not None:
        gate_scale = WireScale(gate_scale.price_decimals, 1, gate_size_decimals, 1, floor_sizes=True)
    mexc_scale = WireScale(*mexc.wire_scale())
    ask = D(price)
    gate_book = book("g", gate_scale, [(str(ask * D("1.01")), size)], [(str(ask * D("1.02")), size)])
    mexc_book = book("m", mexc_scale, [(str(ask * D("0.99")), size)], [(str(ask), size)])
    pipeline = ScannerPipeline(max_data_age_ms=100, max_position_usd=D(1000), clock=lambda: 2)
    pipeline.register_symbol("X/USDT", [(gate, gate_book, gate_scale), (mexc, mexc_book, mexc_scale)])
    for leg in pipeline.plans[0].legs:
        pipeline.set_leg_limits(0, leg.leg_id, D(10**12), D(10**12))
    pipeline.refresh_position_caps()
    return pipeline, ask


def test_a_coin_priced_under_a_cent_trades_to_the_position_limit() -> None:
    """On 10^-11 quote x 10^-10 base an int64 notional held a trade to about 0.009 USDT: such a coin
    could not trade at all. Notionals are 128-bit now; the 1000 USDT position limit is what holds it."""
    pipeline, ask = _cheap_coin("0.000000001", "0.000012", "500000000")
    opp = pipeline.scan(0)
    assert opp is not None and opp.buy_exchange is ExchangeName.MEXC and opp.buy_price == ask
    # Capped at the position limit valued at the highest ask of the symbol's books (Gate.io's, 2 % up).
    assert opp.max_quantity == (D(1000) / (ask * D("1.02"))).to_integral_value(ROUND_FLOOR) == 81_699_346
    assert opp.total_profit_estimate > D(5)  # 1 % less both taker fees, on about 980 USDT


@pytest.mark.parametrize(("tick", "price", "expected"), [
    # Priced at a billionth of a USDT, on a book grid of 10 size decimals: an int64 size holds 0.92e9 X.
    ("0.00000000001", "0.000000003", "under its markets' minimum order value 3: it cannot trade"),
    ("0.000000001", "0.0000008", "under max_position_size_usd 1000"),
])
def test_a_grid_whose_fixed_point_holds_trades_small_is_warned_about_once(
    tick: str, price: str, expected: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The scanner's sizes are int64 on the symbol's finest grid: on a coin priced far under a cent
    that bound holds every trade under a minimum (or the position limit), and the warning says so."""
    with caplog.at_level("WARNING", logger="arb.pipeline"):
        _cheap_coin(tick, price, "1000", gate_size_decimals=10)
    (warning,) = [r.getMessage() for r in caplog.records if "the scanner's fixed point" in r.getMessage()]
    assert warning.startswith("X/USDT: the scanner's fixed point (10^-") and warning.endswith(expected)
