"""RiskManager: every limit and breaker trips exactly at its boundary, recoveries pass while tripped."""

from __future__ import annotations

import logging
from decimal import Decimal

import msgspec
import pytest

from arb.errors import RiskManagementError
from arb.exchanges.models import Fill, Position
from arb.instruments import Instrument, InstrumentCatalog
from arb.risk import (
    Breaker,
    BreakerTrip,
    CircuitBreakerOpen,
    FuturesHolding,
    RiskCheck,
    RiskManager,
    RiskRejection,
    futures_holdings,
)
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

D = Decimal
MEXC, GATE = ExchangeName.MEXC, ExchangeName.GATEIO
DAY_NS = 86_400_000_000_000
LIMITS = RiskLimits(
    max_position_size_usd=D("1000"),
    max_total_exposure_usd=D("2500"),
    max_daily_loss_usd=D("50"),
    min_profit_margin_bps=D("10"),
    max_consecutive_failures=3,
    max_execution_latency_ms=500,
    max_symbol_exposure_usd=D("1500"),
)


class FakeClock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def make(**kwargs: object) -> tuple[RiskManager, FakeClock, FakeClock, list[BreakerTrip]]:
    clock, wall = FakeClock(1_000_000_000), FakeClock(20_000 * DAY_NS + 1)
    alerts: list[BreakerTrip] = []
    limits = kwargs.pop("limits", LIMITS)
    assert isinstance(limits, RiskLimits)
    manager = RiskManager(
        limits, clock=clock, wall_clock=wall, on_alert=alerts.append, **kwargs  # type: ignore[arg-type]
    )
    return manager, clock, wall, alerts


def opportunity(
    quantity: str = "1",
    buy: str = "100",
    sell: str = "101",
    margin: str = "20",
    symbol: str = "BTC/USDT",
    oid: str = "o1",
) -> ArbitrageOpportunity:
    return ArbitrageOpportunity(
        opportunity_id=oid,
        opportunity_type=OpportunityType.SPOT_SPOT,
        symbol=symbol,
        buy_exchange=MEXC,
        sell_exchange=GATE,
        buy_price=D(buy),
        sell_price=D(sell),
        max_quantity=D(quantity),
        profit_per_unit=D(sell) - D(buy),
        total_profit_estimate=(D(sell) - D(buy)) * D(quantity),
        profit_margin_bps=D(margin),
        detected_at=0,
    )


def fill(side: OrderSide, quantity: str, price: str, symbol: str = "ETH/USDT", trade_id: str = "t1") -> Fill:
    return Fill(
        symbol=symbol,
        order_id="x",
        client_order_id=None,
        trade_id=trade_id,
        side=side,
        price=D(price),
        quantity=D(quantity),
        fee=D(0),
        fee_asset="USDT",
        is_maker=False,
        timestamp_ms=1,
    )


def result(state: ArbitrageState = ArbitrageState.COMPLETED, ms: str = "10", oid: str = "o1") -> ExecutionResult:
    """An execution ending in ``state``; one that did not complete had its buy refused by the venue."""
    legs = () if state is ArbitrageState.COMPLETED else (ExecutionLeg(
        exchange=ExchangeName.MEXC, symbol="BTC/USDT", side=OrderSide.BUY, client_order_id=f"{oid}-b",
        requested_quantity=D(1), limit_price=D(100), error="insufficient balance", status="rejected",
    ),)
    return ExecutionResult(
        opportunity_id=oid, final_state=state, total_execution_time_ms=D(ms), realized_profit=D(0), legs=legs
    )


def outcome(manager: RiskManager, opp: ArbitrageOpportunity) -> RiskCheck | None:
    try:
        manager.validate_opportunity_risk(opp)
    except RiskRejection as exc:
        return exc.check
    return None


def unknown_leg(exchange: ExchangeName, symbol: str, side: OrderSide, client_order_id: str, quantity: str) -> ExecutionLeg:
    """A leg whose order's outcome is unknown (nothing known filled)."""
    return ExecutionLeg(
        exchange=exchange, symbol=symbol, side=side, client_order_id=client_order_id, requested_quantity=D(quantity),
        limit_price=D(100), error="outcome unknown: gateway timeout", error_category="outcome_unknown",
    )


def ended_with(
    manager: RiskManager, opportunity_id: str, *legs: ExecutionLeg,
    contract_sizes: dict[ExchangeName, D] | None = None,
) -> None:
    """Record a FAILED execution of ``legs``."""
    manager.record_execution(ExecutionResult(
        opportunity_id=opportunity_id, final_state=ArbitrageState.FAILED, total_execution_time_ms=D(10),
        realized_profit=D(0), legs=legs,
    ), contract_sizes=contract_sizes)


# -- limits -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [("9.9999", None), ("10", None), ("10.0001", RiskCheck.MAX_POSITION_SIZE)],
    ids=["below", "at", "above"],
)
def test_position_size_boundary(quantity: str, expected: RiskCheck | None) -> None:
    manager, *_ = make()
    # notional uses the higher leg price: 10 * 100 = 1000 USD at the limit
    assert outcome(manager, opportunity(quantity, buy="99", sell="100")) is expected


@pytest.mark.parametrize(
    ("margin", "expected"),
    [("9.99", RiskCheck.MIN_PROFIT_MARGIN), ("10", None), ("10.01", None)],
    ids=["below", "at", "above"],
)
def test_min_margin_boundary(margin: str, expected: RiskCheck | None) -> None:
    manager, *_ = make()
    assert outcome(manager, opportunity(margin=margin)) is expected


@pytest.mark.parametrize(
    ("margin", "expected"),
    [("499.99", None), ("500", None), ("500.01", RiskCheck.MAX_PROFIT_MARGIN)],
    ids=["below", "at", "above"],
)
def test_max_margin_boundary(margin: str, expected: RiskCheck | None) -> None:
    manager, *_ = make()
    assert outcome(manager, opportunity(margin=margin)) is expected


@pytest.mark.parametrize(
    ("funding", "expected"),
    [("-0.15", RiskCheck.MAX_PROFIT_MARGIN), ("0.15", None), ("0", RiskCheck.MAX_PROFIT_MARGIN)],
    ids=["paid", "received", "none"],
)
def test_the_margin_ceiling_judges_the_prices_before_expected_funding(funding: str, expected: RiskCheck | None) -> None:
    """The prices of a hedge give 520 bps, over the 500 bps ceiling. Funding expected against it
    pulls the stated margin under (470 bps): still refused as implausible, since funding does not
    make the prices real. Funding expected for it pushes a 480 bps price margin over: not refused."""
    manager, *_ = make()
    paid = D(funding) < 0
    price_profit = D("1.04") if paid or funding == "0" else D("0.96")  # 520 or 480 bps of a 20 USD cost
    total = price_profit + D(funding)
    hedge = msgspec.structs.replace(
        opportunity(quantity="0.2", buy="100", sell="105.2"), opportunity_type=OpportunityType.SPOT_FUTURES_HEDGE,
        sell_exchange=ExchangeName.GATEIO_FUTURES, total_profit_estimate=total, profit_per_unit=total / D("0.2"),
        profit_margin_bps=total * 10_000 / 20, expected_funding=D(funding),
    )
    assert outcome(manager, hedge) is expected


@pytest.mark.parametrize(
    ("funding", "expected"), [("-0.5", RiskCheck.MAX_PROFIT_MARGIN), ("0.5", None)], ids=["paid", "received"]
)
def test_a_profit_tiny_beside_its_funding_is_judged_not_raised(funding: str, expected: RiskCheck | None) -> None:
    """The price margin is the stated one scaled by (profit - funding) / profit: with a profit of
    1e-25 that is some 10**26 bps, too large to floor to 0.01 bps in 28 digits; it is judged
    as it is (over the ceiling when funding is paid, far under it when received)."""
    manager, *_ = make()
    hedge = msgspec.structs.replace(
        opportunity(quantity="0.2", buy="100", sell="100.1"), opportunity_type=OpportunityType.SPOT_FUTURES_HEDGE,
        sell_exchange=ExchangeName.GATEIO_FUTURES, total_profit_estimate=D("1E-25"), profit_per_unit=D("5E-25"),
        profit_margin_bps=D(20), expected_funding=D(funding),
    )
    assert outcome(manager, hedge) is expected
    assert manager.rehearse(hedge) is (expected is None)


def test_an_implausible_margin_is_warned_once_a_minute_per_symbol_and_never_blocks_a_hedge_close(
    caplog: pytest.LogCaptureFixture,
) -> None:
    manager, clock, *_ = make()
    implausible = opportunity(margin="2400", buy="100", sell="124")
    with caplog.at_level("WARNING", logger="arb.risk"):
        assert not manager.rehearse(implausible)  # a rehearsal neither counts nor warns
        assert caplog.records == []
        for _ in range(3):
            assert outcome(manager, implausible) is RiskCheck.MAX_PROFIT_MARGIN
        assert outcome(manager, opportunity(margin="2400", symbol="ETH/USDT")) is RiskCheck.MAX_PROFIT_MARGIN
        clock.now += 59_999_999_999
        assert outcome(manager, implausible) is RiskCheck.MAX_PROFIT_MARGIN
        clock.now += 1
        assert outcome(manager, implausible) is RiskCheck.MAX_PROFIT_MARGIN
    warned = [r.getMessage() for r in caplog.records]
    assert [m.split(":")[1].strip() for m in warned] == ["BTC/USDT", "ETH/USDT", "BTC/USDT"]
    assert "buy on mexc at 100, sell on gateio at 124 is 2400 bps, over max_profit_margin_bps 500" in warned[0]
    assert manager.get_risk_statistics().rejections["max_profit_margin_bps"] == 6
    manager.validate_opportunity_risk(implausible, closes_hedge=True)  # closing takes risk off: never refused


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [("4.9999", None), ("5", None), ("5.0001", RiskCheck.MAX_TOTAL_EXPOSURE)],
    ids=["below", "at", "above"],
)
def test_total_exposure_boundary(quantity: str, expected: RiskCheck | None) -> None:
    manager, *_ = make()
    manager.record_fill(MEXC, fill(OrderSide.BUY, "1", "1000", symbol="ETH/USDT"))
    manager.record_fill(MEXC, fill(OrderSide.BUY, "1", "1000", symbol="SOL/USDT", trade_id="t2"))
    assert manager.get_current_risk_metrics().total_exposure_usd == D("2000")
    assert outcome(manager, opportunity(quantity, buy="99", sell="100")) is expected


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [("0.4999", None), ("0.5", None), ("0.5001", RiskCheck.MAX_SYMBOL_EXPOSURE)],
    ids=["below", "at", "above"],
)
def test_symbol_exposure_boundary(quantity: str, expected: RiskCheck | None) -> None:
    manager, *_ = make()
    manager.record_fill(GATE, fill(OrderSide.SELL, "0.5", "2000"))  # short 1000 USD of ETH
    opp = opportunity(quantity, buy="999", sell="1000", symbol="ETH/USDT")  # the higher leg price counts
    assert outcome(manager, opp) is expected


def test_exposure_follows_the_market_between_fills() -> None:
    """A residual filled at 100 and counted as 500 is worth 1,500 once the price triples: the
    symbol cap (1,500) must see that, not the last fill's price."""
    manager, *_ = make()
    manager.record_fill(MEXC, fill(OrderSide.BUY, "5", "100", symbol="BTC/USDT"))
    assert manager.get_current_risk_metrics().symbol_exposure_usd == {"BTC/USDT": D("500")}
    entry = opportunity("3.3", buy="300", sell="300.5")  # 991.65 USD
    assert outcome(manager, entry) is None
    manager.mark_to_market({"BTC/USDT": D("300"), "ETH/USDT": D("2000")})  # ETH: nothing held, nothing marked
    metrics = manager.get_current_risk_metrics()
    assert metrics.symbol_exposure_usd == {"BTC/USDT": D("1500")} and metrics.total_exposure_usd == D("1500")
    assert outcome(manager, entry) is RiskCheck.MAX_SYMBOL_EXPOSURE
    assert manager.futures_room(ExchangeName.GATEIO_FUTURES, "ETH/USDT") is None  # no mark without a position
    manager.mark_to_market({"BTC/USDT": D("50")})  # and down again: the exposure is what it is now
    assert manager.get_current_risk_metrics().symbol_exposure_usd == {"BTC/USDT": D("250")}


def test_an_execution_with_an_order_of_unknown_outcome_stays_counted() -> None:
    manager, *_ = make()
    opp = opportunity("9", buy="100", sell="101")  # 909 USD reserved
    manager.record_execution_started(opp)
    unknown = unknown_leg(MEXC, "BTC/USDT", OrderSide.BUY, "o1-b", "9")
    ended_with(manager, "o1", unknown)
    metrics = manager.get_current_risk_metrics()
    assert metrics.total_exposure_usd == D("909") and metrics.in_flight_usd == D("909")
    assert metrics.executions_in_flight == 0
    assert outcome(manager, opportunity("6", buy="100", sell="101", oid="o2")) is RiskCheck.MAX_SYMBOL_EXPOSURE
    refused = msgspec.structs.replace(unknown, error="refused", error_category="insufficient_balance")
    manager.record_execution_started(opportunity("1", oid="o3"))
    ended_with(manager, "o3", refused)
    assert manager.get_current_risk_metrics().total_exposure_usd == D("909")  # a refused leg is released


def test_symbol_cap_counts_only_its_symbol() -> None:
    manager, *_ = make()
    manager.record_fill(GATE, fill(OrderSide.SELL, "0.5", "2000"))
    assert outcome(manager, opportunity("1", buy="1000", sell="1000", symbol="BTC/USDT")) is None


def test_hedged_positions_carry_no_exposure() -> None:
    manager, *_ = make()
    manager.record_fill(MEXC, fill(OrderSide.BUY, "1", "2000", trade_id="a"))
    manager.record_fill(GATE, fill(OrderSide.SELL, "1", "2001", trade_id="b"))
    metrics = manager.get_current_risk_metrics()
    assert metrics.total_exposure_usd == 0
    assert {(p.exchange, p.side, p.quantity) for p in metrics.positions} == {
        (MEXC, OrderSide.BUY, D(1)),
        (GATE, OrderSide.SELL, D(1)),
    }


def hedge_opening(quantity: str, *, closes: bool = False) -> ArbitrageOpportunity:
    """Buy ETH spot on Gate.io and sell its perpetual at 100 (or the reverse pair: a close)."""
    spot, perp = GATE, ExchangeName.GATEIO_FUTURES
    return msgspec.structs.replace(
        opportunity(quantity, buy="100", sell="100", symbol="ETH/USDT"),
        opportunity_type=OpportunityType.SPOT_FUTURES_HEDGE,
        buy_exchange=perp if closes else spot, sell_exchange=spot if closes else perp,
    )


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [("3.9999", None), ("4", None), ("4.0001", RiskCheck.MAX_FUTURES_POSITION)],
    ids=["below", "at", "above"],
)
def test_futures_position_boundary(quantity: str, expected: RiskCheck | None) -> None:
    """A hedge of 6 ETH nets to no exposure, but its short perpetual is a position: openings may grow
    it to 1000 USD (10 ETH at 100) and no further, however small each one is."""
    manager, *_ = make()
    manager.record_fill(GATE, fill(OrderSide.BUY, "6", "100", trade_id="s"))
    short = fill(OrderSide.SELL, "600", "100", trade_id="f")  # contracts of 0.01 ETH
    manager.record_fill(ExchangeName.GATEIO_FUTURES, short, contract_size=D("0.01"))
    assert manager.get_current_risk_metrics().total_exposure_usd == 0
    assert outcome(manager, hedge_opening(quantity)) is expected


def test_executions_in_flight_count_against_the_futures_position_limit() -> None:
    """Short 4 ETH of perpetual at 100 against a 1000 USD limit; two openings of 5 ETH started
    concurrently through the API: each alone would make 9 ETH, both together 14. The second is
    refused while the first is in flight, and passes once the first ended without a fill."""
    manager, *_ = make()
    manager.record_fill(GATE, fill(OrderSide.BUY, "4", "100", trade_id="s"))
    manager.record_fill(ExchangeName.GATEIO_FUTURES, fill(OrderSide.SELL, "4", "100", trade_id="f"))
    first = msgspec.structs.replace(hedge_opening("5"), opportunity_id="first")
    second = msgspec.structs.replace(hedge_opening("5"), opportunity_id="second")
    assert outcome(manager, first) is None
    manager.record_execution_started(first)
    assert outcome(manager, second) is RiskCheck.MAX_FUTURES_POSITION
    assert outcome(manager, hedge_opening("1")) is None  # 10 ETH with the first: at the limit
    closing = msgspec.structs.replace(hedge_opening("2", closes=True), opportunity_id="closing")
    manager.record_execution_started(closing)  # a close in flight does not make room before it fills
    assert outcome(manager, hedge_opening("1.5")) is RiskCheck.MAX_FUTURES_POSITION
    for opp in (first, closing):
        manager.record_execution(result(ArbitrageState.FAILED, oid=opp.opportunity_id))
    assert outcome(manager, second) is None


def test_an_execution_ended_with_a_futures_order_of_unknown_outcome_counts_against_the_futures_limit() -> None:
    """Its order may have filled: the exposure kept it reserved, but the futures position check counted
    only executions in flight, so the next openings could grow the perpetual past the limit."""
    manager, *_ = make()
    manager.record_fill(GATE, fill(OrderSide.BUY, "4", "100", trade_id="s"))
    manager.record_fill(ExchangeName.GATEIO_FUTURES, fill(OrderSide.SELL, "4", "100", trade_id="f"))
    first = msgspec.structs.replace(hedge_opening("5"), opportunity_id="first")
    manager.record_execution_started(first)
    unknown = unknown_leg(ExchangeName.GATEIO_FUTURES, "ETH/USDT:USDT", OrderSide.SELL, "first-s", "500")
    ended_with(manager, "first", unknown, contract_sizes={ExchangeName.GATEIO_FUTURES: D("0.01")})
    assert outcome(manager, hedge_opening("1")) is None  # 10 ETH if it filled: at the limit
    assert outcome(manager, hedge_opening("1.5")) is RiskCheck.MAX_FUTURES_POSITION
    manager.mark_to_market({"ETH/USDT": D(100)})
    assert manager.futures_room(ExchangeName.GATEIO_FUTURES, "ETH/USDT") == (D(10), D(1))  # as the check sizes it
    # The venue's position, read since, says it filled: it counts once, as the venue holds it.
    holding = FuturesHolding(base=D(-9), lot=D("0.01"), entry_price=D(100))
    manager.align_futures_positions(ExchangeName.GATEIO_FUTURES, {"ETH/USDT": holding}, ["ETH/USDT"])
    assert outcome(manager, hedge_opening("1")) is None
    assert outcome(manager, hedge_opening("1.5")) is RiskCheck.MAX_FUTURES_POSITION


def test_a_recovery_order_of_unknown_outcome_counts_the_way_it_would_move_the_position() -> None:
    """Short 10 ETH of perpetual (the limit). A close bought 5 back on it and its spot leg failed; the
    recovery sold 5 again on the perpetual, outcome unknown. It was counted as the opening's side (a
    buy), which made room for a new 5 ETH short: 15 ETH if the recovery filled."""
    manager, *_ = make()
    manager.record_fill(ExchangeName.GATEIO_FUTURES, fill(OrderSide.SELL, "10", "100", trade_id="f"))
    close = msgspec.structs.replace(hedge_opening("5", closes=True), opportunity_id="close")
    manager.record_execution_started(close)
    manager.record_fill(ExchangeName.GATEIO_FUTURES, fill(OrderSide.BUY, "5", "100", trade_id="c"))  # short 5 now
    recovery = unknown_leg(ExchangeName.GATEIO_FUTURES, "ETH/USDT:USDT", OrderSide.SELL, "close-r1", "5")
    ended_with(manager, "close", recovery, contract_sizes={ExchangeName.GATEIO_FUTURES: D(1)})
    assert outcome(manager, hedge_opening("5")) is RiskCheck.MAX_FUTURES_POSITION  # 15 ETH if it filled
    assert outcome(manager, hedge_opening("0.5")) is RiskCheck.MAX_FUTURES_POSITION  # 10.5 if it filled
    manager.mark_to_market({"ETH/USDT": D(100)})
    assert manager.futures_room(ExchangeName.GATEIO_FUTURES, "ETH/USDT") == (D(10), D(0))


def test_a_futures_leg_that_filled_beside_a_spot_leg_of_unknown_outcome_counts_once() -> None:
    manager, *_ = make()
    manager.record_fill(GATE, fill(OrderSide.BUY, "4", "100", trade_id="s"))
    manager.record_fill(ExchangeName.GATEIO_FUTURES, fill(OrderSide.SELL, "4", "100", trade_id="f"))
    first = msgspec.structs.replace(hedge_opening("5"), opportunity_id="first")
    manager.record_execution_started(first)
    manager.record_fill(ExchangeName.GATEIO_FUTURES, fill(OrderSide.SELL, "5", "100", trade_id="f2"))  # filled: short 9
    ended_with(manager, "first", unknown_leg(GATE, "ETH/USDT", OrderSide.BUY, "first-b", "5"))
    assert outcome(manager, hedge_opening("1")) is None  # 9 + 1: at the limit
    assert outcome(manager, hedge_opening("1.5")) is RiskCheck.MAX_FUTURES_POSITION


def test_a_futures_position_is_valued_at_the_current_price_when_its_last_fill_is_older_and_lower() -> None:
    """Short 6 ETH of perpetual filled at 100; ETH is at 160 now (the last fill on ETH is that old
    one). Growing it by 0.5 makes 6.5 ETH: 650 USD at the old fill, 1040 USD at today's price,
    past the 1000 USD limit. A lower current price does not shrink the valuation below the mark."""
    manager, *_ = make()
    manager.record_fill(GATE, fill(OrderSide.BUY, "6", "100", trade_id="s"))
    manager.record_fill(ExchangeName.GATEIO_FUTURES, fill(OrderSide.SELL, "6", "100", trade_id="f"))
    now = msgspec.structs.replace(hedge_opening("0.5"), buy_price=D(160), sell_price=D(160))
    assert outcome(manager, now) is RiskCheck.MAX_FUTURES_POSITION
    lower = msgspec.structs.replace(hedge_opening("4.0001"), buy_price=D(60), sell_price=D(60))
    assert outcome(manager, lower) is RiskCheck.MAX_FUTURES_POSITION  # 10.0001 ETH at the 100 mark
    # The scanner's room agrees: at 160 the short may grow to 6.25 ETH, by 0.25.
    perp = ExchangeName.GATEIO_FUTURES
    assert manager.futures_room(perp, "ETH/USDT", D(160)) == (D("6.25"), D("0.25"))
    assert manager.futures_room(perp, "ETH/USDT", D(60)) == manager.futures_room(perp, "ETH/USDT") == (D(10), D(4))
    grown = msgspec.structs.replace(hedge_opening("0.25"), buy_price=D(160), sell_price=D(160))
    assert outcome(manager, grown) is None


def test_a_trade_that_shrinks_a_futures_position_passes_whatever_its_size() -> None:
    manager, *_ = make()
    manager.record_fill(GATE, fill(OrderSide.BUY, "12", "100", trade_id="s"))
    manager.record_fill(ExchangeName.GATEIO_FUTURES, fill(OrderSide.SELL, "12", "100", trade_id="f"))  # 1200 USD
    assert outcome(manager, hedge_opening("0.01")) is RiskCheck.MAX_FUTURES_POSITION
    assert outcome(manager, hedge_opening("2", closes=True)) is None
    assert outcome(manager, hedge_opening("9", closes=True)) is None


def test_a_hedge_close_passes_even_where_it_leaves_the_perpetual_past_the_limit() -> None:
    """The perpetual is long 6 ETH and a close buys 6 more: 12 ETH (1200 USD), past the limit, yet
    both legs of a hedge come off (what a close can leave was bounded when the hedges opened, at
    their prices; here no hedge book says so). As an opening it is refused."""
    manager, *_ = make()
    perp = ExchangeName.GATEIO_FUTURES
    manager.record_fill(perp, fill(OrderSide.BUY, "6", "100"))
    close = hedge_opening("6", closes=True)
    assert outcome(manager, close) is RiskCheck.MAX_FUTURES_POSITION
    manager.validate_opportunity_risk(close, closes_hedge=True)


def opposing_hedges(short: str, long: str) -> tuple[RiskManager, ExchangeName]:
    """A long-spot hedge on MEXC spot and Gate.io's perpetual (short ``short`` ETH of it) and a short-spot
    one on Gate.io spot and the same perpetual (long ``long``), at 100, against a 1000 USD limit."""
    manager, *_ = make()
    perp = ExchangeName.GATEIO_FUTURES
    manager.record_fill(ExchangeName.MEXC, fill(OrderSide.BUY, short, "100", trade_id="a-s"))
    manager.record_fill(perp, fill(OrderSide.SELL, short, "100", trade_id="a-f"))
    manager.record_fill(GATE, fill(OrderSide.SELL, long, "100", trade_id="b-s"))
    manager.record_fill(perp, fill(OrderSide.BUY, long, "100", trade_id="b-f"))
    manager.hedged_futures = lambda market, symbol: (
        (D(long), D(short)) if (market, symbol) == (perp, "ETH/USDT") else (D(0), D(0))
    )
    return manager, perp


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [("4", None), ("4.0001", RiskCheck.MAX_FUTURES_POSITION)],
    ids=["at", "above"],
)
def test_hedges_that_offset_each_other_on_a_perpetual_are_bounded_as_if_the_other_side_closed(
    quantity: str, expected: RiskCheck | None
) -> None:
    """Short 6 ETH of perpetual against MEXC spot, long 6 against Gate.io spot: the venue holds nothing,
    but closing the long-spot hedge would leave it long 6. Each opening was checked on the net alone,
    so the two directions grew past each other without bound and a close left the rest past the limit.
    A new long one may grow the long side to 10 ETH (1000 USD), as if the short side were closed."""
    manager, perp = opposing_hedges(short="6", long="6")
    assert manager.net_position("ETH/USDT") == 0
    assert outcome(manager, hedge_opening(quantity, closes=True)) is expected  # buys the perpetual
    assert manager.futures_room(perp, "ETH/USDT") == (D(4), D(4))  # the scanner sizes both sides so
    assert outcome(manager, hedge_opening(quantity)) is expected  # sells it: the short side alike
    # Closes take both legs of a hedge off: not bounded by the limit.
    manager.validate_opportunity_risk(hedge_opening("6", closes=True), closes_hedge=True)


def test_an_opening_against_hedges_the_other_way_may_still_take_the_venues_position_to_the_limit() -> None:
    """Short 9 ETH of perpetual against spot, long 2 the other way: the venue holds short 7. Selling
    more grows the short side, 9 with the long side closed: up to 1 ETH more. Buying shrinks the venue's
    short and grows the long side, 2 with the short side closed: up to 8 more (long 10 if all the shorts closed)."""
    manager, perp = opposing_hedges(short="9", long="2")
    assert outcome(manager, hedge_opening("1")) is None
    assert outcome(manager, hedge_opening("1.0001")) is RiskCheck.MAX_FUTURES_POSITION
    assert outcome(manager, hedge_opening("8", closes=True)) is None
    assert outcome(manager, hedge_opening("8.0001", closes=True)) is RiskCheck.MAX_FUTURES_POSITION
    assert manager.futures_room(perp, "ETH/USDT") == (D(8), D(1))


def test_a_position_no_hedge_explains_is_no_offset_to_count_on() -> None:
    """A flagged residual left the perpetual short 2 ETH; hedges hold it long 6. Counted as an offset,
    the short let the long side grow to 12 ETH (1200 USD) once an operator closed the residual. Only
    what holds the position the way a trade grows it counts: the short side's 2 ETH when selling."""
    manager, perp = opposing_hedges(short="2", long="6")
    manager.hedged_futures = lambda market, symbol: (D(6), D(0))  # the short's spot leg failed: no hedge
    assert outcome(manager, hedge_opening("4", closes=True)) is None  # buys: long 10
    assert outcome(manager, hedge_opening("4.0001", closes=True)) is RiskCheck.MAX_FUTURES_POSITION
    assert outcome(manager, hedge_opening("8")) is None  # sells: short 2 + 8
    assert outcome(manager, hedge_opening("8.0001")) is RiskCheck.MAX_FUTURES_POSITION
    assert manager.futures_room(perp, "ETH/USDT") == (D(4), D(8))


def test_a_close_that_turns_a_perpetual_near_its_liquidation_around_passes() -> None:
    """Short 9 against spot, long 5 the other way: the venue is short 4, 499 bps from its liquidation.
    Closing the short side buys 9 and leaves the venue long 5: it takes off the side near liquidation.
    Closing the long side would grow the short to 9: refused."""
    manager, perp = opposing_hedges(short="9", long="5")
    manager.align_futures_positions(perp, venue_position("100", "104.99", size="-400"), ["ETH/USDT"])
    manager.validate_opportunity_risk(hedge_opening("9", closes=True), closes_hedge=True)
    with pytest.raises(RiskRejection) as refused:
        manager.validate_opportunity_risk(hedge_opening("5"), closes_hedge=True)
    assert refused.value.check is RiskCheck.LIQUIDATION_DISTANCE


def test_a_close_that_grows_a_perpetual_near_its_liquidation_is_refused() -> None:
    """The venue holds the perpetual short 6 (short 9 against spot, long 3 the other way), 499 bps from
    its liquidation. Closing the long side sells 3 more, nearer liquidation: refused; closing the short
    side buys back, further from it: passes."""
    manager, perp = opposing_hedges(short="9", long="3")
    manager.align_futures_positions(perp, venue_position("100", "104.99"), ["ETH/USDT"])
    with pytest.raises(RiskRejection) as refused:
        manager.validate_opportunity_risk(hedge_opening("3"), closes_hedge=True)
    assert refused.value.check is RiskCheck.LIQUIDATION_DISTANCE
    manager.validate_opportunity_risk(hedge_opening("3", closes=True), closes_hedge=True)


def test_futures_room_is_what_entries_may_buy_and_sell_before_the_limit_at_the_mark() -> None:
    manager, *_ = make()
    perp = ExchangeName.GATEIO_FUTURES
    assert manager.futures_room(perp, "ETH/USDT") is None  # no mark yet: each entry's leg limit bounds it
    manager.record_fill(perp, fill(OrderSide.SELL, "6", "100"))  # short 6 ETH; 1000 USD is 10 ETH at 100
    # Buying may take the long side to 10 ETH: the short, no hedge's, is no offset to count on (an
    # operator may close it).
    assert manager.futures_room(perp, "ETH/USDT") == (D(10), D(4))
    assert outcome(manager, hedge_opening("4")) is None and outcome(manager, hedge_opening("4.0001")) is not None


def venue_position(mark: str | None, liquidation: str | None, size: str = "-600") -> dict[str, FuturesHolding]:
    """Gate.io's perpetual short 6 ETH (contracts of 0.01), as a position read reports it."""
    position = Position(
        symbol="ETH/USDT:USDT", size=D(size), entry_price=D(100), mark_price=None if mark is None else D(mark),
        liquidation_price=None if liquidation is None else D(liquidation),
    )
    perp = Instrument(
        exchange=ExchangeName.GATEIO_FUTURES, symbol="ETH/USDT:USDT", venue_symbol="ETH_USDT", base="ETH",
        quote="USDT", tick_size=D("0.01"), lot_size=D(1), min_size=D(1), min_notional=D(0),
        contract_size=D("0.01"), taker_fee=D("0.0005"), maker_fee=D("0.0002"), price_decimals=2, size_decimals=0,
    )
    return futures_holdings(ExchangeName.GATEIO_FUTURES, [position], InstrumentCatalog(perp.exchange, [perp]))


def test_the_distance_from_liquidation_is_read_from_the_venues_mark_and_liquidation_prices() -> None:
    assert venue_position("100", "104.5")["ETH/USDT"].liquidation_distance_bps == D("450.00")
    assert venue_position("100", "95.5", size="600")["ETH/USDT"].liquidation_distance_bps == D("450.00")
    assert venue_position("100", None)["ETH/USDT"].liquidation_distance_bps is None  # cross margin, far from it
    assert venue_position("100", "100")["ETH/USDT"].liquidation_distance_bps == 0  # at it: the nearest there is
    assert venue_position(None, "104.5")["ETH/USDT"].liquidation_distance_bps is None
    # A mark already past the liquidation price (a short marked above it, a long below it) is at it.
    assert venue_position("105", "104.5")["ETH/USDT"].liquidation_distance_bps == 0
    assert venue_position("95", "95.5", size="600")["ETH/USDT"].liquidation_distance_bps == 0


@pytest.mark.parametrize(
    ("liquidation", "refused"), [("104.99", True), ("105", False), ("105.01", False)], ids=["below", "at", "above"]
)
def test_a_futures_position_near_its_liquidation_is_not_grown(
    liquidation: str, refused: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Short 6 ETH of perpetual marked at 100: liquidated at 105 it is 500 bps away, the default minimum.
    Nearer, openings that grow it are refused and the scanner is offered only what shrinks it; a close,
    which shrinks it, passes. A read that finds it far enough again lifts that."""
    manager, *_ = make()
    perp = ExchangeName.GATEIO_FUTURES
    manager.record_fill(GATE, fill(OrderSide.BUY, "6", "100", trade_id="s"))
    manager.record_fill(perp, fill(OrderSide.SELL, "600", "100", trade_id="f"), contract_size=D("0.01"))
    with caplog.at_level("WARNING", logger="arb.risk"):
        manager.align_futures_positions(perp, venue_position("100", liquidation), ["ETH/USDT"])
        manager.align_futures_positions(perp, venue_position("100", liquidation), ["ETH/USDT"])  # warned once
    if refused:
        assert outcome(manager, hedge_opening("0.01")) is RiskCheck.LIQUIDATION_DISTANCE
        assert manager.futures_room(perp, "ETH/USDT") == (D(6), D(0))  # buy back up to the short, sell nothing
        assert [r.getMessage() for r in caplog.records] == [
            "risk: gateio_futures ETH/USDT: the position is 499.00 bps from its liquidation, under "
            "min_liquidation_distance_bps 500: entries that grow it are refused; add margin or lower the leverage"
        ]
        manager.align_futures_positions(perp, venue_position("100", "110"), ["ETH/USDT"])
        assert "the position is 1000.00 bps from its liquidation again; entries may grow it" in caplog.text
    assert outcome(manager, hedge_opening("0.01")) is None
    assert outcome(manager, hedge_opening("2", closes=True)) is None
    assert manager.futures_room(perp, "ETH/USDT") == (D(10), D(4))


def test_the_liquidation_distance_is_not_checked_when_its_minimum_is_zero() -> None:
    manager, *_ = make(limits=msgspec.structs.replace(LIMITS, min_liquidation_distance_bps=D(0)))
    perp = ExchangeName.GATEIO_FUTURES
    manager.record_fill(perp, fill(OrderSide.SELL, "600", "100", trade_id="f"), contract_size=D("0.01"))
    manager.align_futures_positions(perp, venue_position("100", "100.01"), ["ETH/USDT"])
    assert outcome(manager, hedge_opening("0.01")) is None


def test_contract_size_converts_futures_fills_to_base() -> None:
    manager, *_ = make()
    manager.record_fill(ExchangeName.GATEIO_FUTURES, fill(OrderSide.SELL, "10", "2000"), contract_size=D("0.01"))
    assert manager.net_position("ETH/USDT") == D("-0.1")
    assert manager.get_current_risk_metrics().symbol_exposure_usd == {"ETH/USDT": D("200.00")}


@pytest.mark.parametrize(
    ("loss", "expected"),
    [("49.99", None), ("50", RiskCheck.MAX_DAILY_LOSS), ("50.01", RiskCheck.MAX_DAILY_LOSS)],
    ids=["below", "at", "above"],
)
def test_daily_loss_boundary(loss: str, expected: RiskCheck | None) -> None:
    manager, *_ = make()
    manager.record_realized_pnl(D("10"))
    manager.record_realized_pnl(-D(loss) - D("10"))
    assert outcome(manager, opportunity()) is expected
    assert manager.daily_loss_reached is (expected is not None)


def test_in_flight_execution_reserves_exposure_until_recorded() -> None:
    manager, *_ = make()
    for oid, symbol in (("a", "ETH/USDT"), ("b", "SOL/USDT")):
        manager.record_execution_started(opportunity("10", buy="99", sell="100", symbol=symbol, oid=oid))  # 1000 USD
    assert manager.get_current_risk_metrics().in_flight_usd == D("2000") and manager.executions_in_flight == 2
    assert outcome(manager, opportunity("5.0001", buy="99", sell="100")) is RiskCheck.MAX_TOTAL_EXPOSURE
    manager.record_execution(result(oid="a"))
    assert outcome(manager, opportunity("5.0001", buy="99", sell="100")) is None
    assert manager.get_current_risk_metrics().executions_in_flight == manager.executions_in_flight == 1


def test_daily_loss_resets_at_utc_midnight() -> None:
    manager, _, wall, _ = make()
    wall.now = 20_001 * DAY_NS - 1  # last ns of the day
    manager.record_realized_pnl(D("-50"))
    assert outcome(manager, opportunity()) is RiskCheck.MAX_DAILY_LOSS
    wall.now += 1
    assert not manager.daily_loss_reached
    assert outcome(manager, opportunity()) is None
    metrics = manager.get_current_risk_metrics()
    assert (metrics.trading_day, metrics.daily_realized_pnl_usd) == (20_001, 0)


def test_reaching_the_daily_loss_limit_is_warned_about_once_a_day(caplog: pytest.LogCaptureFixture) -> None:
    """Reaching it stops every entry and hedge close for the rest of the UTC day, and each refusal
    was logged at debug only: nothing told the operator why the engine had stopped trading."""
    manager, _, wall, _ = make()
    with caplog.at_level(logging.WARNING, logger="arb.risk"):
        manager.record_realized_pnl(D("-49.99"))
        assert not caplog.records
        manager.record_realized_pnl(D("-0.01"))
        manager.record_realized_pnl(D("-5"))
        assert outcome(manager, opportunity()) is RiskCheck.MAX_DAILY_LOSS
        wall.now += DAY_NS
        manager.record_realized_pnl(D("-60"))
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "risk: the day's realized loss 50.00 USD reached max_daily_loss_usd 50: no entry or hedge close "
        "until the UTC day rolls over",
        "risk: the day's realized loss 60 USD reached max_daily_loss_usd 50: no entry or hedge close "
        "until the UTC day rolls over",
    ]


def test_a_hedges_held_basis_is_left_out_of_the_day_in_the_same_step() -> None:
    """An opening's realized PnL is its locked basis, held until the close gives it back: netted in
    the one call, at the day's last nanosecond, nothing of it lands on either day."""
    manager, _, wall, _ = make()
    wall.now = 20_001 * DAY_NS - 1
    opening = msgspec.structs.replace(result(), realized_profit=D("3"))
    manager.record_execution(opening, held_basis=D("3"))
    assert manager.get_current_risk_metrics().daily_realized_pnl_usd == 0
    wall.now += 1
    closing = msgspec.structs.replace(result(oid="o2"), realized_profit=D("-1"))
    manager.record_execution(closing, held_basis=D("-3"))  # the close realizes the basis: +2 in all
    metrics = manager.get_current_risk_metrics()
    assert (metrics.trading_day, metrics.daily_realized_pnl_usd) == (20_001, 2)


def test_rejection_message_names_limit_and_values() -> None:
    manager, *_ = make()
    expected = r"o1 BTC/USDT: leg notional \(USD\) 1010 over max_position_size_usd 1000"
    with pytest.raises(RiskManagementError, match=expected):
        manager.validate_opportunity_risk(opportunity("10", buy="100", sell="101"))


@pytest.mark.parametrize(("quantity", "buy"), [("0", "100"), ("-1", "100"), ("1", "0")])
def test_invalid_opportunity_is_rejected(quantity: str, buy: str) -> None:
    manager, *_ = make()
    assert outcome(manager, opportunity(quantity, buy=buy)) is RiskCheck.INVALID_OPPORTUNITY


def test_disabled_risk_checks_skip_limits_but_not_breakers() -> None:
    manager, *_ = make(enable_risk_checks=False)
    assert outcome(manager, opportunity("1000", margin="0")) is None
    manager.kill()
    assert outcome(manager, opportunity()) is RiskCheck.CIRCUIT_BREAKER


# -- breakers -----------------------------------------------------------------------------


@pytest.mark.parametrize(("failures", "tripped"), [(2, False), (3, True), (4, True)], ids=["below", "at", "above"])
def test_consecutive_failures_boundary(failures: int, tripped: bool) -> None:
    manager, _, _, alerts = make()
    for _ in range(failures):
        manager.record_execution(result(ArbitrageState.FAILED))
    assert manager.is_tripped is tripped
    assert len(alerts) == int(tripped)  # once per trip, not per failure after it
    status = manager.get_circuit_breaker_status()[Breaker.CONSECUTIVE_FAILURES]
    assert (status.tripped, status.count, status.threshold) == (tripped, failures, 3)


def test_success_resets_consecutive_failures() -> None:
    manager, *_ = make()
    for state in (ArbitrageState.FAILED, ArbitrageState.RECOVERING, ArbitrageState.COMPLETED):
        manager.record_execution(result(state))
    manager.record_execution(result(ArbitrageState.FAILED))
    manager.record_execution(result(ArbitrageState.FAILED))
    assert not manager.is_tripped


def missed_leg(side: OrderSide, error: str | None = None, status: str = "expired") -> ExecutionLeg:
    return ExecutionLeg(
        exchange=ExchangeName.MEXC, symbol="BTC/USDT", side=side, client_order_id=f"o1-{side.value[0]}",
        requested_quantity=D(1), limit_price=D(100), error=error, status=status,
    )


def test_both_legs_missing_is_neither_a_failure_nor_a_success() -> None:
    """Both IOC orders expired unfilled: no failure counts (a fast market would latch the breaker on
    harmless misses), and the streak of real failures around the misses is not reset either."""
    manager, *_ = make()
    missed = msgspec.structs.replace(
        result(ArbitrageState.FAILED), legs=(missed_leg(OrderSide.BUY), missed_leg(OrderSide.SELL))
    )
    for _ in range(5):
        manager.record_execution(missed)
    assert not manager.is_tripped
    refused = msgspec.structs.replace(missed, legs=(missed_leg(OrderSide.BUY), missed_leg(OrderSide.SELL, "refused")))
    manager.record_execution(result(ArbitrageState.FAILED))
    manager.record_execution(missed)
    manager.record_execution(refused)  # one leg refused by the venue: a failure
    assert not manager.is_tripped
    manager.record_execution(result(ArbitrageState.FAILED))
    assert manager.get_circuit_breaker_status()[Breaker.CONSECUTIVE_FAILURES].tripped


def test_an_execution_that_sent_nothing_is_a_failure() -> None:
    """Refused before any order went out (its plan, or a journal that no longer records intents):
    a fault that would refuse every execution, which the breaker must stop."""
    manager, *_ = make()
    unsent = msgspec.structs.replace(result(ArbitrageState.FAILED), legs=(), error="not executed: journal lost")
    for _ in range(3):
        manager.record_execution(unsent)
    assert manager.get_circuit_breaker_status()[Breaker.CONSECUTIVE_FAILURES].tripped


def test_orders_the_venue_rejected_after_taking_them_are_failures_not_misses() -> None:
    """A final REJECTED carries no error of ours, and nothing filled: still a refusal by the venue."""
    manager, *_ = make()
    canceled = msgspec.structs.replace(
        result(ArbitrageState.FAILED),
        legs=(missed_leg(OrderSide.BUY, status="canceled"), missed_leg(OrderSide.SELL, status="expired")),
    )
    for _ in range(5):
        manager.record_execution(canceled)  # an IOC cancelled unfilled: a miss as well
    assert not manager.is_tripped
    rejected = msgspec.structs.replace(
        canceled, legs=(missed_leg(OrderSide.BUY, status="rejected"), missed_leg(OrderSide.SELL, status="rejected"))
    )
    for _ in range(3):
        manager.record_execution(rejected)
    assert manager.get_circuit_breaker_status()[Breaker.CONSECUTIVE_FAILURES].tripped


@pytest.mark.parametrize(("ms", "tripped"), [("499.999", False), ("500", False), ("500.001", True)])
def test_single_slow_execution_boundary(ms: str, tripped: bool) -> None:
    manager, *_ = make()
    manager.record_execution(result(ms=ms))
    assert manager.is_tripped is tripped


@pytest.mark.parametrize(("slow", "tripped"), [(2, False), (3, True)])
def test_latency_streak_boundary(slow: int, tripped: bool) -> None:
    manager, *_ = make(latency_trips_after=3)
    manager.record_execution(result(ms="900"))
    manager.record_execution(result(ms="10"))  # a fast one resets the streak
    for _ in range(slow):
        manager.record_execution(result(ms="900"))
    assert manager.is_tripped is tripped


@pytest.mark.parametrize(("reports", "tripped"), [(2, False), (3, True), (4, True)])
def test_stale_data_boundary(reports: int, tripped: bool) -> None:
    manager, clock, _, alerts = make(stale_data_trips_at=3, stale_data_window_ns=1_000)
    for _ in range(reports):
        clock.now += 10
        manager.record_stale_data(MEXC, "BTC/USDT", desynced=True)
    assert manager.is_tripped is tripped
    assert len(alerts) == int(tripped)
    if tripped:
        assert "desynced" in alerts[0].reason


def test_stale_reports_outside_the_window_expire() -> None:
    manager, clock, _, _ = make(stale_data_trips_at=3, stale_data_window_ns=1_000)
    for _ in range(10):
        manager.record_stale_data(GATE, "BTC/USDT")
        clock.now += 500  # at most 2 reports in any 1000 ns window
    assert not manager.is_tripped
    assert manager.get_circuit_breaker_status()[Breaker.STALE_DATA].count == 1


@pytest.mark.parametrize(("errors", "tripped"), [(4, False), (5, True)])
def test_venue_errors_boundary_per_venue(errors: int, tripped: bool) -> None:
    manager, clock, _, alerts = make(venue_errors_trip_at=5, venue_errors_window_ns=10_000)
    for _ in range(4):
        manager.record_venue_error(GATE, "timeout")  # another venue does not add up
    for _ in range(errors):
        clock.now += 1
        manager.record_venue_error(ExchangeName.MEXC_FUTURES if _ % 2 else MEXC, "HTTP 503")
    assert manager.is_tripped is tripped
    if tripped:
        assert alerts[0].breaker is Breaker.VENUE_ERRORS and "mexc" in alerts[0].reason


def test_kill_switch_and_resume() -> None:
    manager, _, _, alerts = make(enable_circuit_breakers=False)
    manager.kill("operator: venue maintenance")
    with pytest.raises(CircuitBreakerOpen, match="kill_switch tripped: operator: venue maintenance") as info:
        manager.validate_opportunity_risk(opportunity())
    assert info.value.breaker is Breaker.KILL_SWITCH
    assert [a.breaker for a in alerts] == [Breaker.KILL_SWITCH]
    manager.resume()
    assert outcome(manager, opportunity()) is None


def test_a_failed_journal_write_stops_new_entries_until_the_breaker_is_reset() -> None:
    manager, _, _, alerts = make(enable_circuit_breakers=False)  # tripped even with breakers off
    assert outcome(manager, opportunity()) is None
    manager.record_journal_failure("journal j.sqlite3: disk I/O error")
    manager.record_journal_failure("journal j.sqlite3: disk I/O error")
    with pytest.raises(CircuitBreakerOpen, match="journal_writes tripped: journal j.sqlite3: disk I/O error") as info:
        manager.validate_opportunity_risk(opportunity())
    assert info.value.breaker is Breaker.JOURNAL_WRITES and [a.breaker for a in alerts] == [Breaker.JOURNAL_WRITES]
    status = manager.get_circuit_breaker_status()[Breaker.JOURNAL_WRITES]
    assert (status.tripped, status.count, status.threshold, status.trips) == (True, 2, 1, 1)
    manager.resume()  # the kill switch's release is not this breaker's
    assert manager.is_tripped
    manager.reset_circuit_breaker(Breaker.JOURNAL_WRITES)
    assert outcome(manager, opportunity()) is None
    assert manager.get_circuit_breaker_status()[Breaker.JOURNAL_WRITES].count == 0


@pytest.mark.parametrize(
    "opp",
    [opportunity(), opportunity("10.0001", buy="99", sell="100"), opportunity(margin="9.99"), opportunity("0")],
    ids=["accepted", "position", "margin", "invalid"],
)
def test_a_rehearsal_gives_the_checks_verdict_and_counts_nothing(opp: ArbitrageOpportunity) -> None:
    manager, *_ = make()
    before = manager.get_risk_statistics()
    verdict = manager.rehearse(opp)
    assert manager.get_risk_statistics() == before
    assert verdict is (outcome(manager, opp) is None)
    assert manager.get_risk_statistics() != before  # the check itself counts


def test_a_rehearsal_while_a_breaker_is_tripped_is_refused_and_counts_nothing() -> None:
    manager, *_ = make(enable_circuit_breakers=False)
    manager.kill("operator")
    before = manager.get_risk_statistics()
    assert manager.rehearse(opportunity()) is False
    assert manager.get_risk_statistics() == before


def test_disabled_breakers_never_trip_automatically() -> None:
    manager, _, _, alerts = make(enable_circuit_breakers=False)
    for _ in range(10):
        manager.record_execution(result(ArbitrageState.FAILED, ms="10000"))
        manager.record_venue_error(MEXC, "x")
        manager.record_stale_data(MEXC, "BTC/USDT")
    assert not manager.is_tripped and alerts == []


def test_breakers_latch_until_reset_and_alert_again_on_the_next_trip() -> None:
    manager, _, _, alerts = make()
    for _ in range(3):
        manager.record_execution(result(ArbitrageState.FAILED))
    manager.record_execution(result(ArbitrageState.COMPLETED))
    assert manager.is_tripped  # a success resets the count, not the trip
    manager.reset_circuit_breaker(Breaker.CONSECUTIVE_FAILURES)
    assert outcome(manager, opportunity()) is None
    for _ in range(3):
        manager.record_execution(result(ArbitrageState.FAILED))
    assert len(alerts) == 2
    status = manager.get_circuit_breaker_status()[Breaker.CONSECUTIVE_FAILURES]
    assert status.trips == 2 and status.trip is not None and status.trip.tripped_at_ns == 1_000_000_000


def test_failing_alert_callback_does_not_undo_the_trip(caplog: pytest.LogCaptureFixture) -> None:
    def broken(trip: BreakerTrip) -> None:
        raise OSError("pager unreachable")

    manager = RiskManager(LIMITS, on_alert=broken)
    manager.kill()
    assert manager.is_tripped
    assert "alert callback failed" in caplog.text


# -- recoveries ---------------------------------------------------------------------------


def test_recoveries_pass_while_tripped() -> None:
    manager, *_ = make()
    manager.record_fill(MEXC, fill(OrderSide.BUY, "0.5", "2000"))  # residual long from a failed leg
    manager.kill()
    assert outcome(manager, opportunity()) is RiskCheck.CIRCUIT_BREAKER
    manager.validate_recovery(GATE, "ETH/USDT", OrderSide.SELL, D("0.5"))  # hedge on the other venue
    manager.validate_recovery(MEXC, "ETH/USDT", OrderSide.SELL, D("0.2"))  # partial unwind
    assert manager.get_risk_statistics().recoveries_allowed == 2


@pytest.mark.parametrize(
    ("side", "quantity"),
    [(OrderSide.BUY, "0.1"), (OrderSide.SELL, "0.5001"), (OrderSide.SELL, "0")],
    ids=["grows", "flips", "empty"],
)
def test_recovery_must_reduce_without_flipping(side: OrderSide, quantity: str) -> None:
    manager, *_ = make()
    manager.record_fill(MEXC, fill(OrderSide.BUY, "0.5", "2000"))
    with pytest.raises(RiskRejection, match="net position is 0.5") as info:
        manager.validate_recovery(GATE, "ETH/USDT", side, D(quantity))
    assert info.value.check is RiskCheck.RECOVERY_NOT_REDUCING


def test_recovery_without_position_is_refused() -> None:
    manager, *_ = make()
    with pytest.raises(RiskRejection):
        manager.validate_recovery(GATE, "ETH/USDT", OrderSide.SELL, D("1"))


# -- reports ------------------------------------------------------------------------------


def test_statistics_and_metrics() -> None:
    manager, *_ = make()
    manager.validate_opportunity_risk(opportunity())
    outcome(manager, opportunity(margin="1"))
    outcome(manager, opportunity("100"))
    manager.record_fill(MEXC, fill(OrderSide.BUY, "0.25", "2000"))
    manager.record_fill(MEXC, fill(OrderSide.BUY, "0.25", "2100", trade_id="t2"))
    manager.record_realized_pnl(D("-12.5"))
    manager.kill()
    outcome(manager, opportunity())
    stats = manager.get_risk_statistics()
    assert (stats.validations, stats.accepted) == (4, 1)
    assert stats.rejections == {"circuit_breaker": 1, "min_profit_margin_bps": 1, "max_position_size_usd": 1}
    assert stats.breaker_trips == {"kill_switch": 1}
    metrics = manager.get_current_risk_metrics()
    assert metrics.total_exposure_usd == D("1050.00")  # 0.5 at the last fill price
    assert metrics.exposure_utilisation_pct == D("42")
    assert metrics.daily_loss_utilisation_pct == D("25")
    (position,) = metrics.positions
    assert (position.quantity, position.entry_price) == (D("0.50"), D("2050"))


def test_constructor_validates_thresholds() -> None:
    with pytest.raises(ValueError, match="stale_data_trips_at=0"):
        RiskManager(LIMITS, stale_data_trips_at=0)


def test_execution_results_feed_the_daily_loss() -> None:
    manager, *_ = make()
    for pnl in ("-30", "-19.99"):
        manager.record_execution(
            ExecutionResult(
                opportunity_id="o", final_state=ArbitrageState.COMPLETED,
                total_execution_time_ms=D(1), realized_profit=D(pnl),
            )
        )
    assert outcome(manager, opportunity()) is None
    manager.record_realized_pnl(D("-0.01"))  # a recovery's loss
    assert outcome(manager, opportunity()) is RiskCheck.MAX_DAILY_LOSS


@pytest.mark.parametrize(
    "field", ["profit_margin_bps", "buy_price", "sell_price", "max_quantity", "total_profit_estimate", "expected_funding"]
)
def test_a_not_a_number_anywhere_is_refused_as_invalid_not_raised(field: str) -> None:
    """A NaN compares false where it is read (``Decimal`` raises on it): a clear refusal, not an
    ``InvalidOperation`` escaping into the trade loop or an API caller."""
    manager, *_ = make()
    assert outcome(manager, msgspec.structs.replace(opportunity(), **{field: D("NaN")})) is RiskCheck.INVALID_OPPORTUNITY


def test_a_positive_margin_over_a_loss_is_refused_as_inconsistent() -> None:
    """Selling at 100 what is bought at 101 loses, whatever margin the opportunity claims: every
    margin check (the implausibly-high ceiling included) would judge the claim, not the prices."""
    manager, *_ = make()
    losing = msgspec.structs.replace(opportunity(buy="101", sell="100"), total_profit_estimate=D("-1"))
    with pytest.raises(RiskRejection, match="a positive margin with a loss as its profit estimate"):
        manager.validate_opportunity_risk(losing)
    manager.validate_opportunity_risk(losing, closes_hedge=True)  # a close's own spread may be one
