"""Tests of arb/orders.py: the exact arithmetic (notional, realized PnL, client ids) against plain Decimal code,
and the order runner's waits."""

from __future__ import annotations

import asyncio
from decimal import ROUND_HALF_EVEN, localcontext
from decimal import Decimal as D

import pytest
from fakevenue import FakeExchange, FakeTime, HeldBudget, Step, perp, spot
from hypothesis import given, settings
from hypothesis import strategies as st

from arb.exchanges.errors import ErrorCategory
from arb.exchanges.models import OrderRequest, OrderState, OrderStatus, OrderType, TimeInForce
from arb.instruments import Instrument
from arb.orders import OrderOutcome, OrderRunner, OrderSettings, RealizedPnl, client_order_id, exact_notional, ioc_order
from arb.types import ExecutionLeg, ExchangeName, OrderSide

amounts = st.builds(lambda units, exp: D(units).scaleb(exp), st.integers(0, 10**30), st.integers(-20, 6))


def reference_notional(tick: D, lot: D, contract: D, base: D, average: D) -> D:
    quantum = tick * lot * contract
    with localcontext() as ctx:
        ctx.prec = 60
        return (base * average / quantum).to_integral_value(rounding=ROUND_HALF_EVEN) * quantum


def reference_pnl(orders: list[tuple[OrderSide, D, D, D]]) -> D:
    bought = sold = buy_notional = sell_notional = fees = D(0)
    with localcontext() as ctx:
        ctx.prec = 60
        for side, base, notional, fee in orders:
            fees += fee
            if side is OrderSide.BUY:
                bought, buy_notional = bought + base, buy_notional + notional
            else:
                sold, sell_notional = sold + base, sell_notional + notional
        if bought == sold:
            return sell_notional - buy_notional - fees
        matched = min(bought, sold)
        if not matched:
            return -fees
        # At the averages, which need not end: to 1e-12 (within the 60-digit context), no trailing zeros.
        rounded = (matched * (sell_notional / sold - buy_notional / bought) - fees).quantize(D("1e-12"), ROUND_HALF_EVEN)
        return D(format(rounded.normalize(), "f"))


@settings(max_examples=300, deadline=None)
@given(
    tick=st.sampled_from([D("0.1"), D("0.01"), D("0.5"), D("0.00001")]),
    contract=st.sampled_from([D(1), D("0.0001"), D("10"), D("0.3")]),
    base=amounts,
    average=amounts,
)
def test_exact_notional_matches_plain_decimal(tick: D, contract: D, base: D, average: D) -> None:
    instrument = perp(ExchangeName.MEXC_FUTURES, tick_size=tick, price_decimals=5, contract_size=contract)
    expected = reference_notional(tick, instrument.lot_size, contract, base, average)
    got = exact_notional(instrument, base, average)
    assert (got, str(got)) == (expected, str(expected))


orders = st.lists(st.tuples(st.sampled_from(list(OrderSide)), amounts, amounts, amounts), max_size=5)


@settings(max_examples=300, deadline=None)
@given(orders=orders, matched=st.booleans())
def test_realized_pnl_matches_plain_decimal(orders: list[tuple[OrderSide, D, D, D]], matched: bool) -> None:
    if matched and orders:  # an opposite order that leaves no residual
        net = sum((o[1] if o[0] is OrderSide.BUY else -o[1] for o in orders), D(0))
        if net:
            orders.append((OrderSide.SELL if net > 0 else OrderSide.BUY, abs(net), orders[0][2], orders[0][3]))
    pnl = RealizedPnl()
    for order in orders:
        pnl.add(*order)
    expected, got = reference_pnl(orders), pnl.value()
    assert (got, str(got)) == (expected, str(expected))


def test_realized_pnl_at_averages_that_do_not_end_is_rounded_to_the_quote_quantum() -> None:
    """A flagged execution's PnL at its averages was a 60-digit quotient (-0.30817418999...9941)
    in logs, events and reports; it is rounded to 1e-12, also for amounts past 28 digits."""
    pnl = RealizedPnl()
    pnl.add(OrderSide.BUY, D(3), D(10), D(0))
    pnl.add(OrderSide.SELL, D(1), D(4), D(0))
    assert pnl.value() == D("0.666666666667") and str(pnl.value()) == "0.666666666667"
    big = RealizedPnl()
    big.add(OrderSide.BUY, D(3), D("1e20"), D(0))
    big.add(OrderSide.SELL, D(1), D("4e19"), D(0))
    assert big.value() == D("6666666666666666666.666666666667")
    exact = RealizedPnl()
    exact.add(OrderSide.BUY, D(2), D(200), D(0))
    exact.add(OrderSide.SELL, D(1), D("101.5"), D(0))
    exact_round = RealizedPnl()
    exact_round.add(OrderSide.BUY, D(2), D(200), D(0))
    exact_round.add(OrderSide.SELL, D(1), D(1600), D(0))
    assert (str(exact.value()), str(exact_round.value())) == ("1.5", "1500")  # not 1.500000000000 or 1.5E+3


def test_client_order_ids_of_one_opportunity_share_their_base() -> None:
    long_id = "spot_futures_hedge:ETH/USDT:gateio->mexc_futures:1732560000123456789"
    legs = [client_order_id(long_id, tag) for tag in ("b", "s", "h1", "b")]
    bases = {cid.rsplit("-", 1)[0] for cid in legs}
    assert len(bases) == 1 and legs[0] == legs[3] and len(set(legs)) == 3
    assert all(len(cid) <= 28 for cid in legs)
    assert client_order_id("opp-7", "s") == "opp-7-s"


def test_a_fill_reported_with_a_zero_average_is_valued_at_its_limit() -> None:
    """Gate.io's futures schema reads a missing ``fill_price`` as 0: a fill at 0 would book the
    leg's whole notional as profit or loss, so it is valued at the order's limit instead."""
    instrument = perp(ExchangeName.GATEIO_FUTURES)
    request = OrderRequest(
        symbol=instrument.symbol, side=OrderSide.BUY, type=OrderType.LIMIT, quantity=D(100), price=D("60000.5"),
        time_in_force=TimeInForce.IOC, client_order_id="z-b",
    )

    def outcome(average: D | None) -> OrderOutcome:
        state = OrderState(
            symbol=instrument.symbol, order_id="1", client_order_id="z-b", side=OrderSide.BUY, type=OrderType.LIMIT,
            status=OrderStatus.FILLED, quantity=D(100), price=D("60000.5"), filled_quantity=D(100),
            average_price=average,
        )
        return OrderOutcome(exchange=instrument.exchange, instrument=instrument, request=request, leg="buy", state=state)

    assert outcome(D(0)).average_price == outcome(None).average_price == D("60000.5")
    assert outcome(D("59999.9")).average_price == D("59999.9")
    assert outcome(D(0)).notional == exact_notional(instrument, D(100) * instrument.contract_size, D("60000.5"))


def test_an_execution_leg_says_which_asset_its_fee_is_in() -> None:
    """A Gate.io spot buy's fee is taken in the base it bought, a sell's in quote: summing leg fees
    without the asset would add BTC to USDT."""
    instrument = spot(ExchangeName.GATEIO)

    def leg(side: OrderSide, filled: str) -> ExecutionLeg:
        request = OrderRequest(
            symbol=instrument.symbol, side=side, type=OrderType.LIMIT, quantity=D("0.01"), price=D("60000"),
            time_in_force=TimeInForce.IOC, client_order_id=f"f-{side.value}",
        )
        state = OrderState(
            symbol=instrument.symbol, order_id="1", client_order_id=request.client_order_id, side=side,
            type=OrderType.LIMIT, status=OrderStatus.FILLED, quantity=D("0.01"), price=D("60000"),
            filled_quantity=D(filled), average_price=D("60000"),
        )
        outcome = OrderOutcome(exchange=instrument.exchange, instrument=instrument, request=request, leg="x", state=state)
        return outcome.to_leg()

    bought, sold = leg(OrderSide.BUY, "0.01"), leg(OrderSide.SELL, "0.01")
    assert (bought.fee, bought.fee_asset) == (D("0.01") * instrument.taker_fee, instrument.base)
    assert (sold.fee, sold.fee_asset) == (D("600") * instrument.taker_fee, instrument.quote)
    assert leg(OrderSide.SELL, "0").fee_asset == ""  # nothing filled, no fee


@pytest.mark.parametrize(
    ("instrument", "asset", "fee", "base_fee"),
    [
        # MEXC charges fees in quote on both sides: 0.1 % of the 600 USDT paid, none of the BTC bought.
        (spot(ExchangeName.MEXC, venue_symbol="BTCUSDT", fees_in_quote=True), "USDT", D("0.6"), D(0)),
        # Gate.io charges a buy's fee in the base it receives.
        (spot(ExchangeName.GATEIO), "BTC", D("0.00001"), D("0.00001")),
    ],
)
def test_a_spot_buys_unreported_fee_is_estimated_in_the_asset_its_market_charges(
    instrument: Instrument, asset: str, fee: D, base_fee: D
) -> None:
    """MEXC's order query carries no fee: the buy's estimate was in base there too, so recovery and
    hedges took a fee out of base that the venue had charged in quote."""
    request = OrderRequest(
        symbol=instrument.symbol, side=OrderSide.BUY, type=OrderType.LIMIT, quantity=D("0.01"), price=D("60000"),
        time_in_force=TimeInForce.IOC, client_order_id="b",
    )
    state = OrderState(
        symbol=instrument.symbol, order_id="1", client_order_id="b", side=OrderSide.BUY, type=OrderType.LIMIT,
        status=OrderStatus.FILLED, quantity=D("0.01"), price=D("60000"), filled_quantity=D("0.01"),
        average_price=D("60000"),
    )
    outcome = OrderOutcome(exchange=instrument.exchange, instrument=instrument, request=request, leg="x", state=state)
    assert outcome.fee == (fee, asset)
    assert outcome.base_fee == base_fee
    assert outcome.fee_quote == D("0.6")  # in PnL the same either way: a base fee is valued at the fill price


@pytest.mark.parametrize("held_s", [3600.0, 0.5])
def test_an_order_its_budget_admits_only_past_its_deadline_is_refused_unsent(held_s: float) -> None:
    """A 429's Retry-After (up to an hour) holds the venue's order budget: an order sent meanwhile
    slept in the connector's rate limiter and went out long after its deadline, if at all."""
    time = FakeTime()
    venue = HeldBudget(spot(ExchangeName.MEXC))
    venue.hold(time, held_s)
    runner = OrderRunner({venue.exchange: venue}, settings=OrderSettings(rate_limit_deadline_s=1.0),
                         clock=time.clock, sleep=time.sleep)
    request = ioc_order(venue.instrument, OrderSide.BUY, D("0.01"), D("60000"), "opp1-b")
    outcome = asyncio.run(runner.run(venue.exchange, venue.instrument, request, "buy"))
    if held_s > 1.0:
        assert outcome.category == ErrorCategory.RATE_LIMITED and outcome.resolved and outcome.state is None
        assert "not sent" in (outcome.error or "") and not venue.placed and time.sleeps == []
    else:  # within the deadline: waited for, then sent
        assert outcome.filled == D("0.01") and time.sleeps == [0.5]


def limited_runner(
    step: Step, *retry_after_s: float, attempts: int = 3
) -> tuple[FakeExchange, OrderRunner, FakeTime, OrderRequest]:
    """A venue that takes one order as ``step`` says and refuses its first queries with a 429 each
    (one per wait given)."""
    venue = FakeExchange(spot(ExchangeName.MEXC), [step])
    venue.limited_queries.extend(retry_after_s)
    time = FakeTime()
    runner = OrderRunner({venue.exchange: venue}, settings=OrderSettings(query_attempts=attempts),
                         clock=time.clock, sleep=time.sleep)
    return venue, runner, time, ioc_order(venue.instrument, OrderSide.BUY, D("0.01"), D("60000"), "opp1-b")


def test_a_query_refused_with_a_long_retry_after_leaves_the_outcome_unknown_at_once() -> None:
    """A 429 on a query asking an hour's wait (the most a Retry-After is taken for) was slept out,
    holding the order's outcome, the trade loop and a shutdown's drain."""
    venue, runner, time, request = limited_runner(Step(kind="lost"), 3600.0)
    outcome = asyncio.run(runner.run(venue.exchange, venue.instrument, request, "buy"))
    assert not outcome.resolved and outcome.category == ErrorCategory.OUTCOME_UNKNOWN
    assert "holds queries for 3600 s" in (outcome.error or "") and max(time.sleeps) <= 1.0
    assert venue.queries == ["opp1-b"]
    # Asked again while the hold lasts (by recovery, first thing, with a runner of its own), it is not
    # queried: the query would sleep out the hold in the connector's rate limiter.
    recovery = OrderRunner({venue.exchange: venue}, clock=time.clock, sleep=time.sleep)
    again = asyncio.run(recovery.resolve(outcome))
    assert not again.resolved and venue.queries == ["opp1-b"] and max(time.sleeps) <= 1.0
    time.now_ns += 3600 * 10**9
    assert asyncio.run(recovery.resolve(again)).filled == D("0.01")


def test_an_acknowledged_order_whose_queries_are_held_is_left_unknown_without_a_cancel() -> None:
    venue, runner, time, request = limited_runner(Step(kind="ack"), 3600.0)
    outcome = asyncio.run(runner.run(venue.exchange, venue.instrument, request, "buy"))
    assert not outcome.resolved and outcome.state is not None and outcome.state.status is OrderStatus.NEW
    assert venue.cancels == [] and max(time.sleeps, default=0.0) <= 1.0


class Forgetting(FakeExchange):
    """Acknowledges each order and forgets it at once, as a venue whose order history moved on."""

    async def place_order(self, request: OrderRequest) -> OrderState:
        state = await super().place_order(request)
        self.orders.clear()
        return state


def test_an_acknowledged_order_the_venue_no_longer_finds_is_left_unknown_saying_so() -> None:
    """Every query of an order the venue had acknowledged was answered "no such order": the outcome
    stays unknown (the order exists and may have filled), as a restart's reconciliation leaves it,
    but its reason called those answers unanswered queries."""
    venue = Forgetting(spot(ExchangeName.MEXC), [Step(kind="ack")])
    time = FakeTime()
    runner = OrderRunner({venue.exchange: venue}, settings=OrderSettings(query_attempts=3),
                         clock=time.clock, sleep=time.sleep)
    request = ioc_order(venue.instrument, OrderSide.BUY, D("0.01"), D("60000"), "opp1-b")
    outcome = asyncio.run(runner.run(venue.exchange, venue.instrument, request, "buy"))
    assert not outcome.resolved and outcome.category == ErrorCategory.OUTCOME_UNKNOWN
    assert outcome.error == ("outcome unknown: new when acknowledged, then no longer found by the venue (mexc: order "
                             "not found); cancel failed: mexc: order not found")
    assert venue.queries == ["order id mexc-1"] * 3 and venue.cancels == ["opp1-b"]


def test_a_venue_answering_429_to_every_query_holds_an_outcome_at_most_the_query_hold_in_all() -> None:
    """Each 429 was waited out on its own, up to 10 s, and used one of six query attempts: a venue
    that kept refusing held a leg's outcome for a minute, past the shutdown's drain."""
    venue, runner, time, request = limited_runner(Step(kind="lost"), *[9.5] * 6, attempts=6)
    outcome = asyncio.run(runner.run(venue.exchange, venue.instrument, request, "buy"))
    assert not outcome.resolved and outcome.category == ErrorCategory.OUTCOME_UNKNOWN
    assert sum(wait for wait in time.sleeps if wait >= 9.5) == 9.5  # one hold waited out, not six


@pytest.mark.parametrize("wait_s", [0.75, 3.0, 10.0])
def test_a_query_refused_with_a_short_retry_after_is_waited_and_asked_again(wait_s: float) -> None:
    """Up to Gate.io's 10 s windows: a reset within one is waited for, not left to an operator."""
    venue, runner, time, request = limited_runner(Step(kind="lost"), wait_s)
    outcome = asyncio.run(runner.run(venue.exchange, venue.instrument, request, "buy"))
    assert outcome.resolved and outcome.filled == D("0.01") and wait_s in time.sleeps
    assert venue.queries == ["opp1-b", "opp1-b"]
