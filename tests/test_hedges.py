"""arb.hedges: positions from execution results, and the same positions rebuilt from the journal after a restart."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal as D
from pathlib import Path

import msgspec
import pytest
from fakevenue import FakeExchange, FakeTime, Step, catalogs, perp, spot
from test_pipeline import GATE as GATE_SPOT
from test_pipeline import GATE_BOOK, GATE_PERP, GATE_PERP_BOOK, book
from test_pipeline import MEXC as MEXC_SPOT

from arb.exchanges.errors import ErrorCategory
from arb.exchanges.models import Position
from arb.execution import TwoLegExecutor
from arb.hedges import HedgeBook, HedgePosition
from arb.instruments import InstrumentCatalog
from arb.journal import Journal
from arb.orders import OrderSettings
from arb.pipeline import ScannerPipeline
from arb.recovery import RecoveryManager
from arb.risk import RiskManager, futures_holdings
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
from arb_core.wire.common import WireScale

GATE, MEXC, PERP = ExchangeName.GATEIO, ExchangeName.MEXC, ExchangeName.GATEIO_FUTURES
HEDGE, SPOT_SPOT = OpportunityType.SPOT_FUTURES_HEDGE, OpportunityType.SPOT_SPOT


def opportunity(
    opportunity_id: str, buy: ExchangeName, sell: ExchangeName, buy_price: str, sell_price: str, quantity: str,
    kind: OpportunityType = HEDGE,
) -> ArbitrageOpportunity:
    spread = D(sell_price) - D(buy_price)
    return ArbitrageOpportunity(
        opportunity_id=opportunity_id, opportunity_type=kind, symbol="BTC/USDT", buy_exchange=buy,
        sell_exchange=sell, buy_price=D(buy_price), sell_price=D(sell_price), max_quantity=D(quantity),
        profit_per_unit=spread, total_profit_estimate=spread * D(quantity), profit_margin_bps=D(1), detected_at=0,
    )


class Venues:
    """Gate.io spot, MEXC spot and the Gate.io perpetual as scripted venues, with a journal and an executor."""

    def __init__(self, journal_path: Path) -> None:
        self.venues = {
            GATE: FakeExchange(spot(GATE)),
            MEXC: FakeExchange(spot(MEXC, venue_symbol="BTCUSDT")),
            PERP: FakeExchange(perp(PERP)),
        }
        self.catalogs = catalogs(*self.venues.values())
        self.journal = Journal(journal_path, wall_clock_ms=lambda: 1_700_000_000_000)
        time = FakeTime()
        settings = OrderSettings(query_attempts=3)
        recovery = RecoveryManager(
            self.venues, max_loss_quote=D(1000), clock=time.clock, sleep=time.sleep, journal=self.journal,
            order_settings=settings,
        )
        self.executor = TwoLegExecutor(
            self.venues, self.catalogs, recovery=recovery, journal=self.journal, clock=time.clock, sleep=time.sleep,
            order_settings=settings,
        )

    def run(self, opp: ArbitrageOpportunity, *scripts: tuple[ExchangeName, list[Step]]) -> ExecutionResult:
        for market, script in scripts:
            self.venues[market].script = script
        return asyncio.run(self.executor.execute(opp))


def test_journaled_hedges_rebuild_the_exact_positions_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    venues = Venues(path)
    book = HedgeBook(venues.catalogs, min_profit_bps=D(10))
    executions = [
        # Two openings at different prices (the averages do not terminate), one half-filled
        # futures leg completed by recovery, a spot-spot trade that is no hedge, a partial
        # close, and a short-spot opening on the other pair of markets.
        (opportunity("o1", GATE, PERP, "60000.13", "60300.1", "0.5"), ()),
        (opportunity("o2", GATE, PERP, "60123.37", "60555.5", "0.3"), ()),
        (opportunity("o3", GATE, PERP, "60211.11", "60620.3", "0.7"), ((PERP, [Step(fraction=D("0.5"))]),)),
        (opportunity("s1", GATE, MEXC, "60000.00", "60400.00", "0.2", SPOT_SPOT), ()),
        (opportunity("c1", PERP, GATE, "60050.7", "60049.99", "0.4"), ()),
        (opportunity("o4", PERP, MEXC, "59900.3", "60333.33", "0.1234"), ()),
    ]
    for opp, scripts in executions:
        result = venues.run(opp, *scripts)
        assert result.error is None or "recovered" not in result.error
        book.record(opp, result)
    before = book.positions()
    by_market = {(p.spot, p.futures): p for p in before}
    assert set(by_market) == {(GATE, PERP), (MEXC, PERP)}
    assert by_market[(GATE, PERP)].base == D("0.5") + D("0.3") + D("0.7") - D("0.4")
    assert by_market[(MEXC, PERP)].base == D("-0.1234")
    # The venues agree: the perpetual's contracts are the negative of the hedged base.
    assert venues.venues[PERP].net_base() == -sum((p.base for p in before), D(0))
    venues.journal.close()
    del venues, book

    with Journal(path) as journal:
        rebuilt = HedgeBook(catalogs(FakeExchange(spot(GATE)), FakeExchange(spot(MEXC, venue_symbol="BTCUSDT")),
                                     FakeExchange(perp(PERP))), min_profit_bps=D(10))
        restored = rebuilt.restore(journal)
    assert restored == before  # every field exactly, average entry prices to the last digit
    assert rebuilt.positions() == before


def test_the_rate_each_market_charged_a_hedge_order_is_kept_and_rebuilt_after_a_restart(tmp_path: Path) -> None:
    """What the scanner's guard against an opening closed at once prices entry fees by: the perpetual
    charged 6.03 USDT on 30150 (0.02 %, under its 0.05 % taker rate), the spot buy its rate in BTC."""
    venues = Venues(tmp_path / "journal.sqlite3")
    book = HedgeBook(venues.catalogs, min_profit_bps=D(10))
    assert book.charged_rate(PERP, "BTC/USDT:USDT") is None
    venues.venues[PERP].fee_in = (D("6.03"), "USDT")
    opening = opportunity("o1", GATE, PERP, "60000", "60300", "0.5")
    book.record(opening, venues.run(opening))
    markets = ((GATE, "BTC/USDT"), (PERP, "BTC/USDT:USDT"), (MEXC, "BTC/USDT"))
    charged = {market: book.charged_rate(market, symbol) for market, symbol in markets}
    assert charged == {GATE: D("0.001"), PERP: D("0.0002"), MEXC: None}
    rebuilt = HedgeBook(venues.catalogs, min_profit_bps=D(10))
    rebuilt.restore(venues.journal)
    assert {market: rebuilt.charged_rate(market, symbol) for market, symbol in markets} == charged


def test_a_restore_reads_the_futures_fills_at_the_contract_size_they_were_traded_at(tmp_path: Path) -> None:
    """The venue made its contracts ten times larger since (converting positions: 5000 contracts of
    0.0001 BTC became 500 of 0.001). Read at the new size, the journal's 5000 contracts were 5 BTC:
    the rebuilt hedge was ten times its size, and the venue's 0.5 BTC no longer covered it."""
    path = tmp_path / "journal.sqlite3"
    venues = Venues(path)
    book = HedgeBook(venues.catalogs, min_profit_bps=D(10))
    opp = opportunity("o1", GATE, PERP, "60000.1", "60300.1", "0.5")
    book.record(opp, venues.run(opp))
    before = book.positions()
    venues.journal.close()
    resized = catalogs(FakeExchange(spot(GATE)), FakeExchange(spot(MEXC, venue_symbol="BTCUSDT")),
                       FakeExchange(perp(PERP, contract_size=D("0.001"))))
    with Journal(path) as journal:
        rebuilt = HedgeBook(resized, min_profit_bps=D(10))
        assert rebuilt.restore(journal) == before
    held = Position(symbol="BTC/USDT:USDT", size=D(-500), entry_price=D("60300.1"))
    assert rebuilt.check_venue(PERP, futures_holdings(PERP, [held], resized[PERP])) == []
    assert rebuilt.positions() == before


def test_restore_replaces_the_book_and_ignores_spot_spot_and_empty_executions(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    venues = Venues(tmp_path / "journal.sqlite3")
    venues.run(opportunity("s1", GATE, MEXC, "60000.00", "60400.00", "0.2", SPOT_SPOT))
    venues.run(opportunity("o1", GATE, PERP, "60000.13", "60300.1", "0.5"), (GATE, [Step(kind="reject")]))
    book = HedgeBook(venues.catalogs, min_profit_bps=D(10))
    book._positions[("BTC/USDT", GATE, PERP)] = HedgePosition(
        symbol="BTC/USDT", spot=GATE, futures=PERP, base=D(1), spot_price=D(1), futures_price=D(2)
    )
    with caplog.at_level(logging.INFO, logger="arb.hedges"):
        assert book.restore(venues.journal) == []
    assert book.positions() == []
    assert "0 open positions rebuilt" in caplog.text


def test_a_restore_leaves_out_hedges_of_a_market_not_traded_this_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A venue disabled since (its catalog absent): the restore died with a bare KeyError, and the
    engine could not start until the venue was enabled again."""
    venues = Venues(tmp_path / "journal.sqlite3")
    venues.run(opportunity("o1", GATE, PERP, "60000.13", "60300.1", "0.5"))
    venues.run(opportunity("o2", MEXC, PERP, "60000.13", "60300.1", "0.2"))
    without_mexc = {market: catalog for market, catalog in venues.catalogs.items() if market is not MEXC}
    with caplog.at_level(logging.ERROR, logger="arb.hedges"):
        (position,) = HedgeBook(without_mexc, min_profit_bps=D(10)).restore(venues.journal)
    assert (position.spot, position.base) == (GATE, D("0.5"))
    assert "opportunity o2 left out of the rebuilt hedge book: market mexc has no instrument catalog" in caplog.text


def test_a_hedge_cut_short_by_a_crash_counts_with_its_matched_part(tmp_path: Path) -> None:
    """Fills the running book never recorded (the engine died before ``record``) still rebuild the position."""
    venues = Venues(tmp_path / "journal.sqlite3")
    venues.run(opportunity("o1", GATE, PERP, "60000.13", "60300.1", "0.5"))  # never recorded in a book
    book = HedgeBook(venues.catalogs, min_profit_bps=D(10))
    (position,) = book.restore(venues.journal)
    assert (position.base, position.spot_price, position.futures_price) == (D("0.5"), D("60000.13"), D("60300.1"))
    assert position.entry_basis == D("299.97")


@pytest.mark.parametrize(("filled", "fraction"), [(PERP, "1"), (GATE, "1"), (PERP, "0.6")])
def test_a_close_that_took_one_side_off_past_the_other_leaves_only_the_matched_rest_booked(
    tmp_path: Path, filled: ExchangeName, fraction: str
) -> None:
    """A close of 0.5 whose one leg filled (``fraction`` of it) and whose other leg and recovery were refused
    everywhere: a residual flagged for an operator. The side it took off is gone at the venue, yet the
    book kept the whole hedge, and where hedges the other way kept the close plain and the venue position
    check quiet, the engine sent the same close again and again, each time moving that side once more.
    Only what both sides still hold stays a hedge; a restore rebuilds the same."""
    venues = Venues(tmp_path / "journal.sqlite3")
    book = HedgeBook(venues.catalogs, min_profit_bps=D(10))
    opening = opportunity("o1", GATE, PERP, "60000.13", "60300.1", "0.5")
    book.record(opening, venues.run(opening))
    locked = book.held_basis()
    refused = [Step(kind="reject", category=ErrorCategory.INVALID_REQUEST)] * 5
    close = opportunity("c1", PERP, GATE, "60100", "60150", "0.5")
    other = GATE if filled is PERP else PERP
    result = venues.run(close, (filled, [Step(fraction=D(fraction))] + refused), (other, refused))
    assert result.final_state is ArbitrageState.RECOVERING  # flagged for an operator
    book.record(close, result)
    held = D("0.5") * (1 - D(fraction))
    assert [p.base for p in book.positions()] == ([held] if held else [])
    assert book.held_basis() == locked * held / D("0.5")
    rebuilt = HedgeBook(venues.catalogs, min_profit_bps=D(10))
    assert [p.base for p in rebuilt.restore(venues.journal)] == [p.base for p in book.positions()]


@pytest.mark.parametrize("short_market", [PERP, GATE])
def test_a_leg_unwound_by_recovery_keeps_the_entry_prices_of_what_is_held(tmp_path: Path, short_market: ExchangeName) -> None:
    """One leg fills 60 %, its completion is refused, and recovery unwinds the other leg's excess: the
    position is the matched 60 % at the prices it was opened at, live and after a restart. (Before, the
    unwinding sale counted as more cost, so the entry price and basis of the rest were wrong.)"""
    venues = Venues(tmp_path / "journal.sqlite3")
    book = HedgeBook(venues.catalogs, min_profit_bps=D(10))
    opp = opportunity("h1", GATE, PERP, "60000", "60300", "0.5")
    result = venues.run(opp, (short_market, [Step(fraction=D("0.6")), Step(kind="reject")]))
    unwound = [leg for leg in result.legs[2:] if leg.filled_quantity]
    assert unwound and unwound[0].exchange is not short_market  # the other leg's excess went back
    live = book.record(opp, result)
    assert live is not None and live.base == D("0.3")
    assert (live.spot_price, live.futures_price) == (D("60000"), D("60300"))
    # The openings' fees of the 0.3 held: 0.1 % of its spot and 0.05 % of its futures notional; the
    # excess's share of its leg's fee, and the unwind's own, opened nothing that is held.
    assert live.entry_fees == D("0.3") * D(60000) * D("0.001") + D("0.3") * D(60300) * D("0.0005") == D("27.045")
    restored = HedgeBook(venues.catalogs, min_profit_bps=D(10)).restore(venues.journal)
    assert restored == [live]


def book_hedge(hedges: HedgeBook, spot_market: ExchangeName, base: str) -> HedgePosition:
    """Record in ``hedges`` an execution that opened ``base`` (> 0: long spot) of hedge between
    ``spot_market`` and the perpetual, spot at 60000 and futures at 60600, as the controller does."""
    quantity, long_spot = abs(D(base)), D(base) > 0
    contracts = quantity / GATE_PERP.contract_size
    spot_side, futures_side = (OrderSide.BUY, OrderSide.SELL) if long_spot else (OrderSide.SELL, OrderSide.BUY)
    # The venues' taker fees: a spot buy's in the base it bought, the rest in quote.
    spot_fee, spot_fee_asset = (
        (quantity * GATE_SPOT.taker_fee, "BTC") if long_spot else (quantity * D(60000) * GATE_SPOT.taker_fee, "USDT")
    )
    legs = (
        ExecutionLeg(exchange=spot_market, symbol="BTC/USDT", side=spot_side, client_order_id="s",
                     requested_quantity=quantity, limit_price=D(60000), filled_quantity=quantity, average_price=D(60000),
                     fee=spot_fee, fee_asset=spot_fee_asset),
        ExecutionLeg(exchange=PERP, symbol=GATE_PERP.symbol, side=futures_side, client_order_id="f",
                     requested_quantity=contracts, limit_price=D(60600), filled_quantity=contracts,
                     average_price=D(60600), fee=quantity * D(60600) * GATE_PERP.taker_fee, fee_asset="USDT"),
    )
    buy, sell = (spot_market, PERP) if long_spot else (PERP, spot_market)
    result = ExecutionResult(
        opportunity_id="o", final_state=ArbitrageState.COMPLETED, total_execution_time_ms=D(1), realized_profit=D(0),
        legs=legs,
    )
    position = hedges.record(opportunity("o", buy, sell, "60000", "60600", str(quantity)), result)
    assert position is not None
    return position


def close_of(
    base: str, books_at_ns: int, now_ns: int, spot_book: WireScale = WireScale(3, 1, 10, 1),
    offset_by: str | None = None, spot_held: D | None = None, min_profit_bps: D = D(10),
    held_funding_per_base: D = D(0), spot_taker_now: D | None = None, quote_free: D | None = None,
    perp_at: D = D(60000), futures_held: D | None = None,
) -> ArbitrageOpportunity | None:
    """The close of a long-spot hedge (entry basis 600; ``base`` < 0: short spot) on books where the
    basis has reverted to 0.1 (Gate.io's BTC_USDT book grid by default: prices to 0.001, sizes to
    1e-10); ``perp_at``: the perpetual's mid instead; ``offset_by``: the book also holds that much
    hedge between MEXC spot and the same perpetual (< 0: short spot)."""
    markets = {GATE: GATE_SPOT, MEXC: MEXC_SPOT, PERP: GATE_PERP}
    hedges = HedgeBook({m: InstrumentCatalog(m, [i]) for m, i in markets.items()}, min_profit_bps=min_profit_bps)
    if offset_by is not None:
        book_hedge(hedges, MEXC, offset_by)
    scans = ScannerPipeline(max_data_age_ms=100, opportunity_types=(HEDGE,), clock=lambda: now_ns)
    # The spot market as it trades now: its taker fee may have changed since the hedge opened.
    spot_now = GATE_SPOT if spot_taker_now is None else msgspec.structs.replace(GATE_SPOT, taker_fee=spot_taker_now)
    (plan,) = scans.register_symbol("BTC/USDT", [
        (spot_now, book("spot", spot_book, [("60000", "10")], [("60000.1", "10")], books_at_ns), spot_book),
        (GATE_PERP, book("perp", GATE_PERP_BOOK, [(str(perp_at - D("0.1")), "10000000")],
                         [(str(perp_at + D("0.1")), "10000000")], books_at_ns), GATE_PERP_BOOK),
    ])
    position = book_hedge(hedges, GATE, base)
    return hedges.close_opportunity(
        position, *plan.legs, id_prefix="t", detected_ns=now_ns, max_age_ns=scans.max_age_ns, spot_held=spot_held,
        quote_free=quote_free, held_funding_per_base=held_funding_per_base, futures_held=futures_held,
    )


def test_a_hedge_is_not_closed_on_books_older_than_the_data_age_limit() -> None:
    closing = close_of("0.0015", books_at_ns=10**9, now_ns=10**9 + 50_000_000)
    assert closing is not None and closing.max_quantity == D("0.0015")
    assert close_of("0.0015", books_at_ns=10**9, now_ns=10**9 + 150_000_000) is None  # 150 ms old


def test_a_close_is_priced_on_each_markets_tick_grid_toward_the_market() -> None:
    """The walked prices widened by the profit room (a quotient) are rounded as the executor sends
    them, so the opportunity's limits, and the notional the risk manager reserves, are exact."""
    closing = close_of("0.0015", books_at_ns=10**9, now_ns=10**9)
    assert closing is not None
    # Long spot: the spot leg sells into the 60000 bid, the perpetual buys from the 60000.1 ask.
    spot_limit, futures_limit = closing.sell_price, closing.buy_price
    assert spot_limit % GATE_SPOT.tick_size == 0 and futures_limit % GATE_PERP.tick_size == 0
    assert spot_limit < D("60000") and futures_limit > D("60000.1")
    assert (closing.max_quantity * futures_limit).as_tuple().exponent >= -12


def round_trip_bps(quantity: D, spot_exit: D, futures_exit: D) -> D:
    """The margin of ``book_hedge``'s long-spot hedge (spot 60000, futures 60600) closed at these prices."""
    gain = (D(60600) - D(60000)) - (futures_exit - spot_exit)
    fees = (D(60000) + spot_exit) * GATE_SPOT.taker_fee + (D(60600) + futures_exit) * GATE_PERP.taker_fee
    return (gain - fees) * 10_000 / D(60000)


def test_a_close_whose_room_is_less_than_a_tick_keeps_the_floor_at_its_limits() -> None:
    """0.01 bps above the floor buys 0.015 of room per leg, less than either tick: rounding the
    widened limits toward the market would give away more than that, so the close goes at the
    walked prices; with no room at all it is not proposed."""
    walked = round_trip_bps(D("0.0015"), D("60000"), D("60000.1"))
    closing = close_of("0.0015", books_at_ns=10**9, now_ns=10**9, min_profit_bps=walked - D("0.01"))
    assert closing is not None and (closing.sell_price, closing.buy_price) == (D("60000"), D("60000.1"))
    assert round_trip_bps(closing.max_quantity, closing.sell_price, closing.buy_price) >= walked - D("0.01")
    assert close_of("0.0015", books_at_ns=10**9, now_ns=10**9, min_profit_bps=walked + D("0.01")) is None
    wide = close_of("0.0015", books_at_ns=10**9, now_ns=10**9, min_profit_bps=walked - 1)  # room enough: widened
    assert wide is not None and wide.sell_price < D("60000") and wide.buy_price > D("60000.1")
    assert round_trip_bps(wide.max_quantity, wide.sell_price, wide.buy_price) >= walked - 1


def test_a_close_states_a_margin_that_clears_a_floor_finer_than_its_resolution() -> None:
    """Clearing a floor of 49.932325 bps by 0.001 bps, a close was stated at 49.93 bps (rounded to
    0.01) and refused by the risk manager, which holds the stated margin to the exact floor, on
    every scan: the hedge stayed open while the rule meant to close it."""
    walked = round_trip_bps(D("0.0015"), D("60000"), D("60000.1"))
    floor = walked - D("0.001")
    closing = close_of("0.0015", books_at_ns=10**9, now_ns=10**9, min_profit_bps=floor)
    assert closing is not None and floor <= closing.profit_margin_bps <= walked
    limits = RiskLimits(max_position_size_usd=D(1000), max_total_exposure_usd=D(1000), max_daily_loss_usd=D(50),
                        min_profit_margin_bps=floor, max_consecutive_failures=3, max_execution_latency_ms=500)
    RiskManager(limits).validate_opportunity_risk(closing, closes_hedge=True)  # raises when refused


def test_a_close_counts_the_entry_fees_as_paid_when_the_fee_tier_has_changed_since() -> None:
    """Opened at 0.2 % spot taker, the tier now 0.05 %: the entry cost 90 USDT per BTC more than
    today's rate says (15 bps of the entry), so a close that clears the floor only at today's rate
    for both entries would round-trip below it."""
    walked = round_trip_bps(D("0.0015"), D("60000"), D("60000.1"))  # entry and exit at 0.2 %
    exit_saving = D(60000) * (D("0.002") - D("0.0005")) * 10_000 / D(60000)  # 15 bps saved at the exit
    paid = walked + exit_saving  # entry fees as paid, exit at the new rate
    assert close_of("0.0015", books_at_ns=10**9, now_ns=10**9, min_profit_bps=paid + 5,
                    spot_taker_now=D("0.0005")) is None  # it clears paid + 5 only with the entry repriced
    closing = close_of("0.0015", books_at_ns=10**9, now_ns=10**9, min_profit_bps=paid - D("0.5"),
                       spot_taker_now=D("0.0005"))
    assert closing is not None and closing.profit_margin_bps >= paid - D("0.5")


def test_funding_the_position_would_earn_counts_against_its_close_and_funding_it_pays_for_it() -> None:
    """Closing forgoes the funding holding the hedge expects over the horizon: income it would earn
    holds the close back, funding it would pay brings it forward, as expected funding counts for
    an opening. The close's ``expected_funding`` is what it forgoes (< 0) or saves (> 0)."""
    walked = round_trip_bps(D("0.0015"), D("60000"), D("60000.1"))  # ~69.9 bps
    floor = walked - D("0.5")  # a close at the walked prices clears the floor by 0.5 bps (3 USDT per BTC)
    plain = close_of("0.0015", books_at_ns=10**9, now_ns=10**9, min_profit_bps=floor)
    assert plain is not None and plain.expected_funding == 0
    # Holding earns 4 USDT per BTC over the horizon: the close would forgo more than its margin.
    assert close_of("0.0015", books_at_ns=10**9, now_ns=10**9, min_profit_bps=floor,
                    held_funding_per_base=D(4)) is None
    earning = close_of("0.0015", books_at_ns=10**9, now_ns=10**9, min_profit_bps=floor, held_funding_per_base=D(2))
    assert earning is not None and earning.expected_funding == D(-2) * D("0.0015")
    assert earning.total_profit_estimate < plain.total_profit_estimate
    # A floor the basis alone misses by 0.5 bps: paying 4 USDT per BTC by holding makes closing worth it.
    assert close_of("0.0015", books_at_ns=10**9, now_ns=10**9, min_profit_bps=walked + D("0.5")) is None
    paying = close_of("0.0015", books_at_ns=10**9, now_ns=10**9, min_profit_bps=walked + D("0.5"),
                      held_funding_per_base=D(-4))
    assert paying is not None and paying.expected_funding == D(4) * D("0.0015")


def test_a_close_trades_whole_common_lots_and_leaves_a_smaller_remainder_alone() -> None:
    # Gate.io's perpetual trades whole contracts of 0.0001 BTC: 0.00015 closes 0.0001, 0.00005 nothing.
    closing = close_of("0.00015", books_at_ns=10**9, now_ns=10**9)
    assert closing is not None and closing.max_quantity == D("0.0001")
    assert close_of("0.00005", books_at_ns=10**9, now_ns=10**9) is None


def test_a_long_spot_close_sells_no_more_spot_than_the_venue_holds() -> None:
    """The opening bought 0.0015 BTC and the venue took its 0.1 % fee in BTC: 0.0014985 is there.
    Selling 0.0015 would be refused for the balance, at every check; the close takes 0.0014 (whole
    contracts of the perpetual), and the rest stays open until the venue holds it."""
    closing = close_of("0.0015", books_at_ns=10**9, now_ns=10**9, spot_held=D("0.0014985"))
    assert closing is not None and closing.max_quantity == D("0.0014")
    assert close_of("0.0015", books_at_ns=10**9, now_ns=10**9, spot_held=D("0.00005")) is None


def test_a_short_spot_close_buys_back_no_more_spot_than_the_quote_free_there_pays_for() -> None:
    """A short-spot hedge closes by buying spot: with the venue's quote spent meanwhile (spot-spot
    trades), the buy was refused for the balance while its futures leg filled, and recovery unwound
    that at a cost, at every check. The close takes what the quote pays for, fee included."""
    wide = D(62000)  # the basis widened to 2000 from the 600 the short-spot hedge opened at
    whole = close_of("-0.0015", books_at_ns=10**9, now_ns=10**9, quote_free=D(1000), perp_at=wide)
    assert whole is not None and whole.max_quantity == D("0.0015") and whole.buy_exchange is GATE
    closing = close_of("-0.0015", books_at_ns=10**9, now_ns=10**9, quote_free=D(60), perp_at=wide)
    assert closing is not None and closing.max_quantity == D("0.0009")
    assert closing.max_quantity * closing.buy_price * (1 + GATE_SPOT.taker_fee) <= D(60)
    assert close_of("-0.0015", books_at_ns=10**9, now_ns=10**9, quote_free=D(5), perp_at=wide) is None
    long_spot = close_of("0.0015", books_at_ns=10**9, now_ns=10**9, quote_free=D(0))  # sells spot: no quote needed
    assert long_spot is not None and long_spot.max_quantity == D("0.0015")


def test_a_close_goes_reduce_only_when_it_shrinks_the_perpetual_the_book_holds() -> None:
    """Reduce-only keeps a close from opening a position where the venue's is gone; where another
    spot venue's hedge offsets this one on the perpetual, the close would grow what the venue
    holds, and a reduce-only order would be refused there."""
    alone = close_of("0.0015", books_at_ns=10**9, now_ns=10**9)  # buys back all the venue holds
    assert alone is not None and alone.max_quantity == D("0.0015") and alone.futures_reduce_only
    same_way = close_of("0.0015", books_at_ns=10**9, now_ns=10**9, offset_by="0.001")
    assert same_way is not None and same_way.futures_reduce_only
    # Short 0.0015 against Gate.io spot, long 0.001 against MEXC's: the venue is short 0.0005 and
    # the close buys 0.0015, so it flips it; with -0.0015 the venue is flat.
    for offset in ("-0.001", "-0.0015"):
        offset_close = close_of("0.0015", books_at_ns=10**9, now_ns=10**9, offset_by=offset)
        assert offset_close is not None and not offset_close.futures_reduce_only


def test_the_book_says_what_its_hedges_hold_long_and_short_on_each_perpetual() -> None:
    """The risk manager bounds openings by these (``RiskManager.hedged_futures``): the venue sees only
    their net."""
    markets = {GATE: GATE_SPOT, MEXC: MEXC_SPOT, PERP: GATE_PERP}
    hedges = HedgeBook({m: InstrumentCatalog(m, [i]) for m, i in markets.items()}, min_profit_bps=D(10))
    assert hedges.futures_hedged(PERP, "BTC/USDT") == (0, 0)
    book_hedge(hedges, GATE, "0.003")  # long spot: short 0.003 of the perpetual
    book_hedge(hedges, MEXC, "-0.001")  # short spot: long 0.001
    assert hedges.futures_hedged(PERP, "BTC/USDT") == (D("0.001"), D("0.003"))
    book_hedge(hedges, MEXC, "0.001")  # MEXC's hedge closed
    assert hedges.futures_hedged(PERP, "BTC/USDT") == (0, D("0.003"))
    assert hedges.futures_hedged(PERP, "ETH/USDT") == hedges.futures_hedged(ExchangeName.MEXC_FUTURES, "BTC/USDT") == (0, 0)


def test_a_close_goes_reduce_only_by_the_position_the_risk_manager_counts_where_it_is_given() -> None:
    """The book's hedge alone holds the perpetual short 0.0015, but the venue's position, as the risk
    manager counts it, is flat: a flagged residual or a position not the engine's offsets it. Sent
    reduce-only, the close was clipped to nothing every time and its spot leg unwound at a cost, scan
    after scan; sent plain it closes the hedge."""
    offset = close_of("0.0015", books_at_ns=10**9, now_ns=10**9, futures_held=D(0))
    assert offset is not None and not offset.futures_reduce_only
    held = close_of("0.0015", books_at_ns=10**9, now_ns=10**9, futures_held=D("-0.002"))
    assert held is not None and held.futures_reduce_only


def test_a_close_on_a_book_grid_whose_notional_passes_int64_is_priced_exactly() -> None:
    # 0.0015 BTC at 60000 on a book grid of 1e-8 quote x 1e-10 base: about 9e24 units, past int64.
    closing = close_of("0.0015", books_at_ns=10**9, now_ns=10**9, spot_book=GATE_BOOK)
    assert closing is not None and closing.max_quantity == D("0.0015")


def test_held_basis_is_the_locked_basis_of_what_is_open_and_a_restore_dates_its_changes(tmp_path: Path) -> None:
    """Opening 0.5 at basis 299.97 holds 149.985 of quote; closing 0.4 gives back 0.4 of it at that
    basis; a restart rebuilds the same changes, dated by the journal's (fixed) clock."""
    venues = Venues(tmp_path / "journal.sqlite3")
    book = HedgeBook(venues.catalogs, min_profit_bps=D(10))
    held = [book.held_basis()]
    for opp in (opportunity("o1", GATE, PERP, "60000.13", "60300.1", "0.5"),
                opportunity("c1", PERP, GATE, "60050.7", "60049.99", "0.4"),
                opportunity("o2", PERP, MEXC, "59900.3", "60333.33", "0.1")):  # short spot: basis -433.03
        book.record(opp, venues.run(opp))
        held.append(book.held_basis())
    assert held == [D(0), D("149.985"), D("29.997"), D("29.997") + D("-433.03") * D("-0.1")]
    rebuilt = HedgeBook(venues.catalogs, min_profit_bps=D(10))
    rebuilt.restore(venues.journal)
    assert rebuilt.restored_basis_by_day == {1_700_000_000_000 // 86_400_000: held[-1]}
    assert rebuilt.held_basis() == held[-1]


def test_the_locked_basis_is_exact_and_a_partial_close_releases_a_rounded_share_the_last_close_settles(
    tmp_path: Path,
) -> None:
    """Three openings of 0.1 lock 29.997 + 43.213 + 40.929 = 114.139 of quote, taken from the fills'
    exact notionals (the average prices do not terminate, and ``entry_basis * base`` through them
    would leave 28th-digit dust in the daily PnL). Closing a third releases a third rounded to
    1e-12; closing the rest releases what is left: the book holds exactly zero once flat."""
    venues = Venues(tmp_path / "journal.sqlite3")
    book = HedgeBook(venues.catalogs, min_profit_bps=D(10))
    held = []
    for opp in (opportunity("o1", GATE, PERP, "60000.13", "60300.1", "0.1"),
                opportunity("o2", GATE, PERP, "60123.37", "60555.5", "0.1"),
                opportunity("o3", GATE, PERP, "60211.11", "60620.4", "0.1"),
                opportunity("c1", PERP, GATE, "60050.7", "60049.99", "0.1"),
                opportunity("c2", PERP, GATE, "60050.7", "60049.99", "0.2")):
        book.record(opp, venues.run(opp))
        held.append(book.held_basis())
    assert held == [D("29.997"), D("73.210"), D("114.139"), D("76.092666666667"), D(0)]
    (position,) = [p for p in book._positions.values()]
    assert position.base == 0 and position.locked_basis == 0
    rebuilt = HedgeBook(venues.catalogs, min_profit_bps=D(10))
    rebuilt.restore(venues.journal)
    assert sum(rebuilt.restored_basis_by_day.values(), D(0)) == 0 and rebuilt.held_basis() == 0


@pytest.mark.parametrize("contracts", [None, 0, -2000])
def test_hedges_that_net_to_nothing_on_the_perpetual_are_covered_by_any_venue_position(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, contracts: int | None
) -> None:
    """One hedge sold 0.5 of the perpetual against Gate.io spot, the other bought 0.5 against MEXC
    spot: the venue holds nothing, rightly. Neither hedge is taken out of the book, whatever the
    venue holds besides (other trading on the account, said once)."""
    venues = Venues(tmp_path / "journal.sqlite3")
    book = HedgeBook(venues.catalogs, min_profit_bps=D(10))
    for opp in (opportunity("o1", GATE, PERP, "60000.13", "60300.1", "0.5"),
                opportunity("o4", PERP, MEXC, "59900.3", "60333.33", "0.5")):
        book.record(opp, venues.run(opp))
    held = book.positions()
    assert len(held) == 2 and venues.venues[PERP].net_base() == 0
    symbol = venues.venues[PERP].instrument.symbol
    positions = [] if contracts is None else [Position(symbol=symbol, size=D(contracts), entry_price=D("60000"))]
    with caplog.at_level(logging.WARNING, logger="arb.hedges"):
        assert book.check_venue(PERP, futures_holdings(PERP, positions, venues.catalogs[PERP])) == []
    assert book.positions() == held
    assert ("closes only its own part" in caplog.text) == (contracts == -2000)


def test_a_venue_that_holds_what_the_engines_own_fills_hold_keeps_the_hedges_a_residual_offsets() -> None:
    """A short-spot hedge holds the perpetual long 0.001; a flagged residual (an opening whose spot leg
    failed) left it short 0.001 beside it: the venue holds nothing, as the engine's fills do. Compared
    with the book's hedges alone, the hedge was taken out as if closed by hand (the engine would never
    close it, and it stopped counting against the futures limit)."""
    markets = {GATE: GATE_SPOT, MEXC: MEXC_SPOT, PERP: GATE_PERP}
    hedges = HedgeBook({m: InstrumentCatalog(m, [i]) for m, i in markets.items()}, min_profit_bps=D(10))
    held = [book_hedge(hedges, GATE, "-0.001")]
    flat = futures_holdings(PERP, [], hedges.catalogs[PERP])
    assert hedges.check_venue(PERP, flat, {"BTC/USDT": D(0)}) == [] and hedges.positions() == held
    # The venue no longer holds what the engine's fills do (its part closed outside the engine): compared as before.
    (mismatch,) = hedges.check_venue(PERP, flat, {"BTC/USDT": D("0.001")})
    assert mismatch.booked == D("0.001") and hedges.positions() == []


@pytest.mark.parametrize("contracts", [None, 1])
def test_a_hedge_within_one_contract_of_a_venue_that_holds_none_is_kept(tmp_path: Path, contracts: int | None) -> None:
    """A close whose spot leg partly filled, unwound on the futures side by whole contracts, can leave
    the book a fraction of a contract off the venue. Within one contract it is no mismatch, whether
    the venue lists the opposite contract or, flat, lists nothing (it was dropped then, the book and
    the summary calling a hedge the engine had closed itself "closed outside the engine")."""
    venues = Venues(tmp_path / "journal.sqlite3")
    lot = GATE_PERP.lot_size * GATE_PERP.contract_size
    positions = [] if contracts is None else [Position(symbol=GATE_PERP.symbol, size=D(contracts), entry_price=D(60000))]
    book = HedgeBook(venues.catalogs, min_profit_bps=D(10))
    book_hedge(book, GATE, str(lot / 2))  # half a contract of hedge: long spot, short perpetual
    assert book.check_venue(PERP, futures_holdings(PERP, positions, venues.catalogs[PERP])) == []
    assert [p.base for p in book.positions()] == [lot / 2]
    book_hedge(book, GATE, str(lot))  # one and a half contracts: past the tolerance of a flat venue
    if contracts is None:
        (mismatch,) = book.check_venue(PERP, futures_holdings(PERP, positions, venues.catalogs[PERP]))
        assert mismatch.booked == -lot * D("1.5") and book.positions() == []


def test_a_restore_leaves_out_what_was_dropped_and_keeps_a_later_hedge_of_the_same_pair(tmp_path: Path) -> None:
    """A hedge of 0.5 is liquidated at the venue and dropped (the controller journals the drop); a
    new one of 0.3 opens on the same markets. A restart rebuilds the 0.3 alone, which the venue
    covers, rather than 0.8, which it does not (and which would have taken the 0.3 out too)."""
    venues = Venues(tmp_path / "journal.sqlite3")
    symbol = venues.venues[PERP].instrument.symbol
    book = HedgeBook(venues.catalogs, min_profit_bps=D(10))
    first = opportunity("o1", GATE, PERP, "60000.13", "60300.1", "0.5")
    book.record(first, venues.run(first))
    (mismatch,) = book.check_venue(PERP, futures_holdings(PERP, [], venues.catalogs[PERP]))
    for position in mismatch.dropped:
        venues.journal.record_hedge_drop(position.symbol, position.spot, position.futures, str(mismatch))
    second = opportunity("o2", GATE, PERP, "60000.13", "60300.1", "0.3")
    book.record(second, venues.run(second))
    live = book.positions()
    assert [p.base for p in live] == [D("0.3")]
    rebuilt = HedgeBook(venues.catalogs, min_profit_bps=D(10))
    assert rebuilt.restore(venues.journal) == live
    venue = [Position(symbol=symbol, size=D(-3000), entry_price=D("60300"))]
    assert rebuilt.check_venue(PERP, futures_holdings(PERP, venue, venues.catalogs[PERP])) == []
    (drop,) = venues.journal.hedge_drops()
    assert (drop.symbol, drop.spot, drop.futures, drop.reason) == ("BTC/USDT", GATE, PERP, str(mismatch))
    assert drop.after_intent_id == 2  # o1's two orders; o2's came after


def test_a_position_listed_before_a_drop_is_no_longer_held(tmp_path: Path) -> None:
    """The controller closes hedges from a list taken before a position check may drop one: it asks
    ``holds`` before each close, since a dropped hedge's closing pair would open a position."""
    venues = Venues(tmp_path / "journal.sqlite3")
    book = HedgeBook(venues.catalogs, min_profit_bps=D(10))
    first = opportunity("o1", GATE, PERP, "60000.13", "60300.1", "0.5")
    book.record(first, venues.run(first))
    (listed,) = book.positions()
    assert book.holds(listed)
    book.check_venue(PERP, futures_holdings(PERP, [], venues.catalogs[PERP]))  # the venue holds none of it
    assert not book.holds(listed) and book.positions() == []
    again = opportunity("o2", GATE, PERP, "60000.13", "60300.1", "0.3")
    book.record(again, venues.run(again))
    assert not book.holds(listed)  # the same pair again, another size: not the position listed
    (current,) = book.positions()
    assert book.holds(current)


@pytest.mark.parametrize(("contracts", "kept"), [
    (-3766, True),  # what the hedges hold: 0.5 short and 0.1234 long, in contracts of 0.0001 BTC
    (-3765, True),  # one lot less: a rounding of the venue's, not a closed position
    (-5000, True),  # more: other trading on the account, not the engine's to close
    (-3000, False),  # partly closed at the venue
    (None, False),  # closed, or liquidated
    (3766, False),  # the other way round
])
def test_a_venue_that_does_not_hold_the_restored_hedges_futures_takes_them_out_of_the_book(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, contracts: int | None, kept: bool
) -> None:
    venues = Venues(tmp_path / "journal.sqlite3")
    for opp in (opportunity("o1", GATE, PERP, "60000.13", "60300.1", "0.5"),
                opportunity("o4", PERP, MEXC, "59900.3", "60333.33", "0.1234")):
        venues.run(opp)
    book = HedgeBook(venues.catalogs, min_profit_bps=D(10))
    restored = book.restore(venues.journal)
    assert len(restored) == 2 and venues.venues[PERP].net_base() == D("-0.3766")
    symbol = venues.venues[PERP].instrument.symbol
    positions = [] if contracts is None else [Position(symbol=symbol, size=D(contracts), entry_price=D("60000"))]
    positions.append(Position(symbol="ETH/USDT:USDT", size=D(5), entry_price=D("3000")))  # not listed here: ignored

    with caplog.at_level(logging.WARNING, logger="arb.hedges"):
        mismatches = book.check_venue(PERP, futures_holdings(PERP, positions, venues.catalogs[PERP]))
    assert "ETH/USDT:USDT, which is not listed" in caplog.text
    if kept:
        assert mismatches == [] and book.positions() == restored
        assert ("closes only its own part" in caplog.text) == (contracts == -5000)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="arb.hedges"):
            assert book.check_venue(PERP, futures_holdings(PERP, positions, venues.catalogs[PERP])) == []
        assert "closes only its own part" not in caplog.text  # said once, not at every read
        return
    (mismatch,) = mismatches
    at_venue = D(0) if contracts is None else D(contracts) * D("0.0001")
    assert (mismatch.futures, mismatch.symbol, mismatch.booked, mismatch.at_venue) == (
        PERP, "BTC/USDT", D("-0.3766"), at_venue
    )
    assert list(mismatch.dropped) == restored and book.positions() == [] and book.held_basis() == 0
    assert f"the venue {at_venue}; 2 hedge position(s) taken out of the book" in caplog.text
