"""arb.funding: settlement counts, the sign of funding for each hedge direction, freshness, and the venues' rates."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from decimal import Decimal as D
from pathlib import Path

import pytest
from simvenues import PERP, simulated_venues
from wire_data import http_bodies

from arb_core.book import ASK, BID, DeltaBatch, OrderBook
from arb_core.wire.common import WireScale

from arb.errors import ExchangeError
from arb.exchanges.gateio.instruments import parse_funding_rates
from arb.exchanges.mexc.instruments import parse_contract_funding_rate
from arb.funding import FundingBook, FundingRate, funding_income
from arb.instruments import Instrument
from arb.pipeline import ScannerPipeline
from arb.sim.cluster import default_instruments
from arb.types import ExchangeName, OpportunityType, OrderSide

HOUR_MS = 3_600_000
NEXT_MS = 1_700_000_000_000  # a settlement time; 8 h interval


def rate(value: str = "0.0001", *, next_ms: int = NEXT_MS, interval_s: int = 28_800,
         exchange: ExchangeName = ExchangeName.GATEIO_FUTURES) -> FundingRate:
    return FundingRate(exchange=exchange, symbol=PERP, rate=D(value), interval_s=interval_s, next_settle_ms=next_ms)


@pytest.mark.parametrize(
    ("now_ms", "horizon_ms", "expected"),
    [
        (NEXT_MS - HOUR_MS, 0, 0),  # no horizon, no funding
        (NEXT_MS - HOUR_MS, HOUR_MS - 1, 0),  # the next settlement is just beyond the horizon
        (NEXT_MS - HOUR_MS, HOUR_MS, 1),  # ... and exactly at its end counts
        (NEXT_MS - HOUR_MS, 8 * HOUR_MS, 1),
        (NEXT_MS - HOUR_MS, 9 * HOUR_MS, 2),
        (NEXT_MS - HOUR_MS, 72 * HOUR_MS, 9),  # 1 h, 9 h, ..., 65 h
        (NEXT_MS, 8 * HOUR_MS, 1),  # the settlement at "now" has happened: the next is 8 h on
        (NEXT_MS + 20 * HOUR_MS, 5 * HOUR_MS, 1),  # an announced time long past rolls forward (to +24 h)
        (NEXT_MS + 20 * HOUR_MS, 3 * HOUR_MS, 0),
    ],
)
def test_settlements_within_the_horizon(now_ms: int, horizon_ms: int, expected: int) -> None:
    assert rate().settlements_within(now_ms, horizon_ms) == expected


def test_a_short_perpetual_receives_a_positive_rate_and_a_long_pays_it_exactly() -> None:
    notional = D("6030.01")
    assert funding_income(D("0.0001"), OrderSide.SELL, notional, 3) == D("1.809003")
    assert funding_income(D("0.0001"), OrderSide.BUY, notional, 3) == D("-1.809003")
    assert funding_income(D("-0.000025"), OrderSide.SELL, notional, 1) == D("-0.150750250")
    assert funding_income(D("-0.000025"), OrderSide.BUY, notional, 1) == D("0.150750250")
    assert funding_income(D("0.0001"), OrderSide.SELL, notional, 0) == 0


def test_invalid_rates_are_refused() -> None:
    with pytest.raises(ValueError, match="interval 0 s"):
        rate(interval_s=0)
    with pytest.raises(ValueError, match="not finite"):
        rate("NaN")


class Clock:
    def __init__(self) -> None:
        self.ns = 10**12

    def __call__(self) -> int:
        return self.ns


def test_a_stale_or_missing_rate_gives_no_estimate_and_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    book = FundingBook(horizon_s=8 * 3600, max_age_ms=180_000, clock=clock, wall_clock_ms=lambda: NEXT_MS - HOUR_MS)
    market = ExchangeName.GATEIO_FUTURES
    with caplog.at_level(logging.WARNING, logger="arb.funding"):
        assert book.expected(market, PERP, OrderSide.SELL, D(1000)) is None
        assert book.expected(market, PERP, OrderSide.SELL, D(1000)) is None
    assert caplog.text.count("no funding rate read yet") == 1 and "hedges on it are refused" in caplog.text
    book.update([rate()])
    assert book.expected(market, PERP, OrderSide.SELL, D(1000)) == D("0.1")  # one settlement within 8 h
    assert book.expected(market, PERP, OrderSide.BUY, D(1000)) == D("-0.1")
    clock.ns += 180_000 * 1_000_000  # exactly the limit: still fresh
    assert book.rate(market, PERP) is not None
    clock.ns += 1
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="arb.funding"):
        assert book.expected(market, PERP, OrderSide.SELL, D(1000)) is None
    assert "funding rate stale (read 180000 ms ago, limit 180000 ms)" in caplog.text
    assert book.refused == 3


def test_a_held_position_expects_the_same_funding_and_nothing_without_a_rate(caplog: pytest.LogCaptureFixture) -> None:
    """What an open hedge expects by holding (weighed against its close): as ``expected``, but a
    missing or stale rate gives 0 without a warning or a refusal counted (a close never waits
    for a rate)."""
    clock = Clock()
    book = FundingBook(horizon_s=8 * 3600, max_age_ms=180_000, clock=clock, wall_clock_ms=lambda: NEXT_MS - HOUR_MS)
    market = ExchangeName.GATEIO_FUTURES
    with caplog.at_level(logging.WARNING, logger="arb.funding"):
        assert book.held(market, PERP, OrderSide.SELL, D(1000)) == 0
    assert caplog.text == "" and book.refused == 0
    book.update([rate()])
    assert book.held(market, PERP, OrderSide.SELL, D(1000)) == D("0.1") == book.expected(market, PERP, OrderSide.SELL, D(1000))
    assert book.held(market, PERP, OrderSide.BUY, D(1000)) == D("-0.1")


class Source:
    def __init__(self, rates: list[FundingRate] | None) -> None:
        self.rates = rates

    async def funding_rates(self, symbols: Sequence[str]) -> list[FundingRate]:
        if self.rates is None:
            raise ExchangeError("gateio_futures", "HTTP 503")
        return [r for r in self.rates if r.symbol in symbols]


def test_refresh_skips_a_failing_source_and_names_missing_symbols(caplog: pytest.LogCaptureFixture) -> None:
    book = FundingBook(horizon_s=3600, max_age_ms=1000)
    sources = {ExchangeName.GATEIO_FUTURES: Source(None), ExchangeName.MEXC_FUTURES: Source([])}
    symbols = {ExchangeName.GATEIO_FUTURES: [PERP], ExchangeName.MEXC_FUTURES: [PERP]}
    with caplog.at_level(logging.WARNING, logger="arb.funding"):
        assert asyncio.run(book.refresh(sources, symbols)) == 0
    assert "gateio_futures: reading funding rates failed" in caplog.text
    assert f"mexc_futures: no funding rate reported for {PERP}" in caplog.text
    sources[ExchangeName.GATEIO_FUTURES] = Source([rate()])
    assert asyncio.run(book.refresh(sources, symbols)) == 1
    assert book.rates() == [rate()]


def test_gate_rates_from_the_recorded_contracts(shared_data: Path) -> None:
    (_, body), = http_bodies(shared_data / "cryptofeed" / "GATEIO_FUTURES.0")
    rates = {r.symbol: r for r in parse_funding_rates(body)}
    assert len(rates) == len(json.loads(body)) == 302
    lit = rates["LIT/USDT:USDT"]
    recorded = next(c for c in json.loads(body) if c["name"] == "LIT_USDT")
    assert lit.rate == D(recorded["funding_rate"]) and lit.interval_s == 28_800
    assert lit.next_settle_ms == 1_684_944_000_000 and lit.exchange is ExchangeName.GATEIO_FUTURES
    assert {r.rate for r in rates.values()} >= {D("0.0001"), D("0.000025")}
    # One contract listed wrongly: the catalog leaves it out, and so do the rates, not all of them.
    contracts = json.loads(body)
    contracts[5]["funding_interval"] = "eight hours"
    damaged = {r.symbol for r in parse_funding_rates(json.dumps(contracts))}
    assert len(damaged) == 301 and damaged < set(rates)


@pytest.mark.parametrize("change", [{"funding_rate": "NaN"}, {"funding_rate": "Infinity"}, {"funding_interval": -28800}])
def test_a_gate_contract_with_an_unusable_rate_leaves_out_only_itself(change: dict[str, object]) -> None:
    """It decodes, but no rate can be made of it: it raised out of the parser, and every contract's
    rate was lost with it (all of Gate.io's hedges refused as if their rates were stale)."""
    good = {"name": "BTC_USDT", "quanto_multiplier": "0.0001", "order_price_round": "0.1", "order_size_min": 1,
            "order_size_max": 1000000, "maker_fee_rate": "-0.0001", "taker_fee_rate": "0.00075",
            "funding_rate": "0.0001", "funding_interval": 28800, "funding_next_apply": 1684944000}
    bad = {**good, "name": "XYZ_USDT", **change}
    (btc,) = parse_funding_rates(json.dumps([bad, good]))
    assert btc.symbol == "BTC/USDT:USDT" and btc.rate == D("0.0001") and btc.interval_s == 28_800


def test_mexc_rate_of_the_contract_endpoint() -> None:
    body = (b'{"success":true,"code":0,"data":{"symbol":"BTC_USDT","fundingRate":-0.000035,"maxFundingRate":0.003,'
            b'"minFundingRate":-0.003,"collectCycle":8,"nextSettleTime":1700006400000,"timestamp":1700000000000}}')
    (r,) = parse_contract_funding_rate(body)
    assert r == FundingRate(exchange=ExchangeName.MEXC_FUTURES, symbol="BTC/USDT:USDT", rate=D("-0.000035"),
                            interval_s=28_800, next_settle_ms=1_700_006_400_000)
    with pytest.raises(ValueError, match="success=False code=1001"):
        parse_contract_funding_rate(b'{"success":false,"code":1001,"message":"contract BTC_X does not exist"}')


@pytest.mark.parametrize("market", [ExchangeName.GATEIO_FUTURES, ExchangeName.MEXC_FUTURES])
def test_connectors_read_the_simulated_venues_rates(market: ExchangeName) -> None:
    async def scenario() -> list[FundingRate]:
        async with simulated_venues(moving=False) as sim:
            connector = sim.connector(market)
            try:
                wall_ms = await connector.server_time()
                rates = await connector.funding_rates([PERP])
            finally:
                await connector.close()
            (r,) = rates
            assert wall_ms < r.next_settle_ms <= wall_ms + r.interval_s * 1000
            return rates

    (r,) = asyncio.run(scenario())
    assert (r.exchange, r.symbol, r.rate, r.interval_s) == (market, PERP, D("0.0001"), 28_800)


def test_a_spot_market_has_no_funding_rates() -> None:
    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            connector = sim.connector(ExchangeName.GATEIO)
            try:
                with pytest.raises(ExchangeError, match="no funding rates"):
                    await connector.funding_rates(["BTC/USDT"])
            finally:
                await connector.close()

    asyncio.run(scenario())


# --- the hedge decision (arb.pipeline) ------------------------------------------------------

GATE_SPOT, GATE_PERP = (
    next(i for i in default_instruments(("BTC",)) if i.exchange is market)
    for market in (ExchangeName.GATEIO, ExchangeName.GATEIO_FUTURES)
)


def book(name: str, instrument: Instrument, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> OrderBook:
    """An in-sync book on ``instrument``'s order grid holding the given (price, base size) levels."""
    batch = DeltaBatch(16)
    for side, levels in ((BID, bids), (ASK, asks)):
        for price, size in levels:
            batch.add(side, instrument.price_to_ticks(D(price)), instrument.size_to_lots(D(size) / instrument.contract_size))
    batch.first_update_id = batch.last_update_id = 1
    result = OrderBook(name)
    result.apply_snapshot(batch, 1)
    return result


def hedge_pipeline(funding: FundingBook | None) -> ScannerPipeline:
    """Gate spot asks 60000, the perpetual bids 60300: buy spot, sell the perpetual (~25 bps fees)."""
    p = ScannerPipeline(max_data_age_ms=100, opportunity_types=(OpportunityType.SPOT_FUTURES_HEDGE,),
                        min_profit_bps=D(10), clock=lambda: 2, id_prefix="t")
    p.funding = funding
    legs = [
        (GATE_SPOT, book("spot", GATE_SPOT, [("59990", "1")], [("60000", "0.05")]), WireScale(*GATE_SPOT.wire_scale())),
        (GATE_PERP, book("perp", GATE_PERP, [("60300", "0.05")], [("60310", "1")]), WireScale(*GATE_PERP.wire_scale())),
    ]
    (plan,) = p.register_symbol("BTC/USDT", legs)
    for leg in plan.legs:
        p.set_leg_limits(plan.symbol_id, leg.leg_id, D(100), D(100))
    return p


def test_expected_funding_is_added_to_the_hedge_profit_before_the_margin_check() -> None:
    (base,) = [hedge_pipeline(None).scan(0)]
    assert base is not None and base.expected_funding == 0
    assert (base.buy_exchange, base.sell_exchange, base.max_quantity) == (
        ExchangeName.GATEIO, ExchangeName.GATEIO_FUTURES, D("0.05"))
    fees_only = base.total_profit_estimate

    # Long spot / short perpetual with a positive rate: 3 settlements within 24 h are received.
    funding = FundingBook(horizon_s=24 * 3600, max_age_ms=60_000, wall_clock_ms=lambda: NEXT_MS - HOUR_MS)
    funding.update([rate("0.0001")])
    opp = hedge_pipeline(funding).scan(0)
    assert opp is not None
    received = D("0.0001") * D("0.05") * opp.sell_price * 3
    assert opp.expected_funding == received == D("0.904500")
    assert opp.total_profit_estimate == fees_only + received
    assert opp.profit_margin_bps > base.profit_margin_bps

    # A negative rate is paid by the short: 3 x 30 bps of the notional sinks it below the 10 bps floor.
    funding.update([rate("-0.003")])
    paying = hedge_pipeline(funding)
    assert paying.scan(0) is None and paying.found == 1


TIGHT = (("60000", "60001"), ("60700", "60701"))  # (bid, ask) of spot and perpetual: ~117 bps of basis
WIDE = (("59700", "60001"), ("60900", "61200"))  # the same basis to buy into, 50 bps spreads to cross out


@pytest.mark.parametrize(
    ("books", "hourly", "refused"),
    [
        (TIGHT, "0.0001", False), (TIGHT, "0", False), (TIGHT, "-0.00002", False), (TIGHT, "-0.0001", False),
        (TIGHT, "-0.0003", False), (TIGHT, "-0.0008", True),
        # Crossing both spreads out costs more than the funding saves: the rule would hold it.
        (WIDE, "-0.0008", False), (WIDE, "-0.0012", False),
    ],
)
def test_a_hedge_is_opened_only_where_the_closing_rule_would_not_close_it_on_the_same_books(
    books: tuple[tuple[str, str], tuple[str, str]], hourly: str, refused: bool
) -> None:
    """The closing rule credits a close with the funding holding would pay; an opening priced with
    the same funding assumed the basis converges. With funding that costs more than the round
    trip's fees and spreads (here -0.08 %/h on a perpetual settling hourly), a hedge was opened
    and closed at once on the same books, losing its fees and spread, and opened again on the next
    scan. Where the spreads outweigh the funding, the rule would not close it, and it opens."""
    from arb.hedges import HedgeBook
    from arb.instruments import InstrumentCatalog
    from arb.types import ArbitrageState, ExecutionLeg, ExecutionResult

    funding = FundingBook(horizon_s=8 * 3600, max_age_ms=60_000, wall_clock_ms=lambda: NEXT_MS - HOUR_MS // 2)
    funding.update([rate(hourly, interval_s=3600)])
    p = ScannerPipeline(max_data_age_ms=100, opportunity_types=(OpportunityType.SPOT_FUTURES_HEDGE,),
                        min_profit_bps=D(10), clock=lambda: 2, id_prefix="t")
    p.funding = funding
    (spot_bid, spot_ask), (perp_bid, perp_ask) = books
    legs = [
        (GATE_SPOT, book("spot", GATE_SPOT, [(spot_bid, "1")], [(spot_ask, "1")]), WireScale(*GATE_SPOT.wire_scale())),
        (GATE_PERP, book("perp", GATE_PERP, [(perp_bid, "1")], [(perp_ask, "1")]), WireScale(*GATE_PERP.wire_scale())),
    ]
    (plan,) = p.register_symbol("BTC/USDT", legs)
    for leg in plan.legs:
        p.set_leg_limits(plan.symbol_id, leg.leg_id, D("0.01"), D("0.01"))
    opening = p.scan(0)
    if refused:
        assert opening is None and p.found == 1 and p.dropped_paying_funding == 1
        return
    assert opening is not None and p.dropped_paying_funding == 0

    def filled(instrument: Instrument, side: OrderSide, price: D) -> ExecutionLeg:
        quantity = opening.max_quantity / instrument.contract_size
        return ExecutionLeg(
            exchange=instrument.exchange, symbol=instrument.symbol, side=side, client_order_id="x",
            requested_quantity=quantity, limit_price=price, filled_quantity=quantity, average_price=price,
            fee=opening.max_quantity * price * instrument.taker_fee, fee_asset="USDT",
        )

    hedges = HedgeBook({i.exchange: InstrumentCatalog(i.exchange, [i]) for i in (GATE_SPOT, GATE_PERP)},
                       min_profit_bps=D(10))
    position = hedges.record(opening, ExecutionResult(
        opportunity_id=opening.opportunity_id, final_state=ArbitrageState.COMPLETED, total_execution_time_ms=D(1),
        realized_profit=D(0), legs=(filled(GATE_SPOT, OrderSide.BUY, opening.buy_price),
                                    filled(GATE_PERP, OrderSide.SELL, opening.sell_price)),
    ))
    assert position is not None
    held = funding.held(position.futures, GATE_PERP.symbol, OrderSide.SELL, position.futures_price)
    assert hedges.close_opportunity(
        position, *plan.legs, id_prefix="t", detected_ns=2, max_age_ns=p.max_age_ns, held_funding_per_base=held
    ) is None


def test_a_hedge_without_a_fresh_funding_rate_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    """Rehearsals (hundreds a second) counted the book's refusals and could warn of a stale rate."""
    clock = Clock()
    funding = FundingBook(horizon_s=8 * 3600, max_age_ms=1000, clock=clock, wall_clock_ms=lambda: NEXT_MS)
    p = hedge_pipeline(funding)
    assert p.scan(0) is None and p.dropped_for_funding == 1 and funding.refused == 1
    funding.update([rate()])
    assert p.scan(0) is not None
    clock.ns += 1001 * 1_000_000
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="arb.funding"):
        assert p.rehearse(0) is None  # a rehearsal counts nothing and warns of nothing
        assert p.dropped_for_funding == 1 and funding.refused == 1 and caplog.text == ""
        assert p.scan(0) is None and p.dropped_for_funding == 2 and funding.refused == 2
    assert "funding rate stale" in caplog.text


def test_spot_spot_opportunities_never_consult_the_funding_book() -> None:
    mexc = next(i for i in default_instruments(("BTC",)) if i.exchange is ExchangeName.MEXC)
    p = ScannerPipeline(max_data_age_ms=100, clock=lambda: 2, id_prefix="t")
    p.funding = FundingBook(horizon_s=8 * 3600, max_age_ms=1000)  # empty: a hedge would be refused
    legs = [
        (GATE_SPOT, book("gate", GATE_SPOT, [("59990", "1")], [("60000", "0.05")]), WireScale(*GATE_SPOT.wire_scale())),
        (mexc, book("mexc", mexc, [("60400", "0.05")], [("60410", "1")]), WireScale(*mexc.wire_scale())),
    ]
    (plan,) = p.register_symbol("BTC/USDT", legs)
    for leg in plan.legs:
        p.set_leg_limits(plan.symbol_id, leg.leg_id, D(100), D(100))
    opp = p.scan(0)
    assert opp is not None and opp.opportunity_type is OpportunityType.SPOT_SPOT and opp.expected_funding == 0
    assert p.funding.refused == 0
