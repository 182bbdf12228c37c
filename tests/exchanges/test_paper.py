"""arb.exchanges.paper: fills walk the live book exactly; fees, balances, positions, refusals, the overlay."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from decimal import Decimal as D

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arb_core.book import ASK, BID, DeltaBatch, OrderBook
from arb_core.wire.common import WireScale

from arb.errors import ArbitrageEngineError, ExchangeError, OrderRejectedError
from arb.exchanges.errors import ErrorCategory
from arb.exchanges.models import Balance, Fill, OrderRequest, OrderState, OrderStatus, OrderType, TimeInForce
from arb.exchanges import paper as paper_module
from arb.exchanges.paper import PaperExchange
from arb.funding import FundingRate
from arb.instruments import Instrument, InstrumentCatalog, SkippedPair
from arb.types import ExchangeName, OrderSide

SPOT = Instrument(
    exchange=ExchangeName.GATEIO, symbol="BTC/USDT", venue_symbol="BTC_USDT", base="BTC", quote="USDT",
    tick_size=D("0.1"), lot_size=D("0.0001"), min_size=D("0.0001"), min_notional=D("1"),
    taker_fee=D("0.002"), maker_fee=D("0.002"), price_decimals=1, size_decimals=4,
)
PERP = Instrument(
    exchange=ExchangeName.GATEIO_FUTURES, symbol="BTC/USDT:USDT", venue_symbol="BTC_USDT", base="BTC",
    quote="USDT", tick_size=D("0.1"), lot_size=D("1"), min_size=D("1"), min_notional=D("0"),
    contract_size=D("0.0001"), taker_fee=D("0.0005"), maker_fee=D("0.0002"), price_decimals=1, size_decimals=0,
)
# Book scales finer than the order grids, as Gate.io spot books are: cents and 6 size decimals.
SPOT_SCALE = WireScale(2, 1, 6, 1)
PERP_SCALE = WireScale(2, 1, 0, 1)


class Source:
    """A public side with one hand-built book per instrument (what ``ExchangeConnector`` offers)."""

    def __init__(self, instrument: Instrument, scale: WireScale, levels: list[tuple[int, str, str]]) -> None:
        self.instrument_ = instrument
        self.scale = scale
        self.book = OrderBook("paper test")
        batch = DeltaBatch(len(levels) + 1)
        for side, price, size in levels:
            batch.add(side, self.ticks(price), self.lots(size))
        batch.is_snapshot = True
        self.book.apply_snapshot(batch, 0)
        self.budget_spent: list[str] = []
        self.heard_ns: int | None = None  # when its stream last received a frame; None: just now (a busy stream)
        self.pings = 0
        self.answers_pings = True
        self.closing_only = False  # the market takes only reduce-only orders (a contract in delisting)

    def ticks(self, price: str) -> int:
        return int(D(price).scaleb(self.scale.price_decimals)) // self.scale.tick_units

    def lots(self, size: str) -> int:
        return int(D(size).scaleb(self.scale.size_decimals)) // self.scale.lot_units

    @property
    def exchange(self) -> ExchangeName:
        return self.instrument_.exchange

    async def instruments(self) -> InstrumentCatalog:
        if self.closing_only:
            kept = SkippedPair(self.instrument_.venue_symbol, self.instrument_.symbol, "in delisting", True, self.instrument_)
            return InstrumentCatalog(self.exchange, [], [kept]).with_closing_only([self.instrument_.symbol])
        return InstrumentCatalog(self.exchange, [self.instrument_])

    def books(self) -> Mapping[str, OrderBook]:
        return {self.instrument_.symbol: self.book}

    def book_scale(self, symbol: str) -> WireScale:
        return self.scale

    async def spend_order_budget(self, symbol: str) -> None:
        self.budget_spent.append(symbol)

    def stream_heard_ns(self, symbol: str) -> int:
        return time.monotonic_ns() if self.heard_ns is None else self.heard_ns

    def ping_stream(self, symbol: str) -> None:
        self.pings += 1
        if self.answers_pings:
            asyncio.get_running_loop().call_later(0.005, lambda: setattr(self, "heard_ns", time.monotonic_ns()))


def spot_source() -> Source:
    return Source(SPOT, SPOT_SCALE, [
        (ASK, "60000.05", "0.015050"),  # a price between ticks, and 0.5 lot beyond 0.0150
        (ASK, "60000.10", "0.020000"),
        (ASK, "60001.00", "0.500000"),
        (BID, "59999.90", "0.010000"),
        (BID, "59999.00", "1.000000"),
    ])


def order(
    cid: str, side: OrderSide, quantity: str, price: str | None, tif: TimeInForce = TimeInForce.IOC,
    symbol: str = "BTC/USDT",
) -> OrderRequest:
    return OrderRequest(
        symbol=symbol, side=side, type=OrderType.MARKET if price is None else OrderType.LIMIT,
        quantity=D(quantity), price=None if price is None else D(price), time_in_force=tif, client_order_id=cid,
    )


class Stream:
    def __init__(self) -> None:
        self.events: list[OrderState | Fill | Balance] = []


def paper(source: Source, balances: dict[str, str]) -> tuple[PaperExchange, Stream]:
    exchange = PaperExchange(source, {k: D(v) for k, v in balances.items()}, clock_ms=1_700_000_000_000)
    stream = Stream()
    asyncio.run(exchange.start_private_stream(stream.events.append, stream.events.append, stream.events.append))
    return exchange, stream


def free(exchange: PaperExchange) -> dict[str, D]:
    return {asset: b.free for asset, b in asyncio.run(exchange.balances()).items()}


def test_an_ioc_buy_walks_the_asks_at_the_book_prices_with_the_fee_in_base() -> None:
    exchange, stream = paper(spot_source(), {"USDT": "10000", "BTC": "0.1"})
    state = asyncio.run(exchange.place_order(order("b1", OrderSide.BUY, "0.03", "60001")))
    # The whole first level (its size finer than the lot, taken as the venue matches it), then the
    # rest of the 0.03 from the second.
    fills = exchange.fills()
    assert [(f.price, f.quantity, f.fee, f.fee_asset) for f in fills] == [
        (D("60000.05"), D("0.01505"), D("0.0000301"), "BTC"),
        (D("60000.10"), D("0.01495"), D("0.0000299"), "BTC"),
    ]
    assert state.status is OrderStatus.FILLED and state.filled_quantity == D("0.03")
    assert state.average_price * D("0.03") == D("1800.0022475")  # 903.0007525 + 897.001495
    assert (state.fee, state.fee_asset) == (D("0.00006"), "BTC")
    assert free(exchange) == {"BTC": D("0.12994"), "USDT": D("8199.9977525")}
    # The stream: each fill, then the order, then each changed balance, synchronously.
    assert stream.events[:2] == fills and stream.events[2] == state
    assert stream.events[3:] == [Balance(asset="BTC", free=D("0.12994")), Balance(asset="USDT", free=D("8199.9977525"))]
    assert asyncio.run(exchange.query_order("BTC/USDT", client_order_id="b1")) == state
    assert asyncio.run(exchange.query_order("BTC/USDT", order_id=state.order_id)) == state


def test_levels_finer_than_the_lot_are_taken_as_they_are_and_only_the_total_fill_is_on_the_lot() -> None:
    """Gate.io spot books carry sizes finer than the lot and the venue matches against them as they
    are: a walk takes each level whole, as the scanner sums them, and rounds only the order's total
    down to the lot, trimming its last levels."""
    def source() -> Source:
        return Source(SPOT, SPOT_SCALE, [
            (ASK, "60000.0", "0.001050"), (ASK, "60000.1", "0.001050"), (ASK, "60000.2", "0.001050"),
            (ASK, "60000.3", "0.000030"),  # less than a lot
        ])

    # 0.0031 fills from three levels of 0.00105 (a walk of whole lots per level found only 0.003).
    exchange, _ = paper(source(), {"USDT": "10000"})
    state = asyncio.run(exchange.place_order(order("b1", OrderSide.BUY, "0.0031", "60000.2")))
    assert (state.status, state.filled_quantity) == (OrderStatus.FILLED, D("0.0031"))
    assert [f.quantity for f in exchange.fills()] == [D("0.00105"), D("0.00105"), D("0.001")]
    # 0.00318 is offered within the limit: 0.0031 fills, the 0.00008 over the lot trimmed off the last
    # two levels (all of the 0.00003 one, 0.00005 of the one before).
    exchange, _ = paper(source(), {"USDT": "10000"})
    state = asyncio.run(exchange.place_order(order("b2", OrderSide.BUY, "0.01", "60000.3")))
    assert (state.status, state.filled_quantity) == (OrderStatus.EXPIRED, D("0.0031"))
    assert [(f.price, f.quantity) for f in exchange.fills()] == [
        (D("60000.0"), D("0.00105")), (D("60000.1"), D("0.00105")), (D("60000.2"), D("0.001")),
    ]
    assert sum(f.quantity for f in exchange.fills()) == state.filled_quantity


def test_a_buy_on_a_market_charging_fees_in_quote_pays_them_in_quote_and_keeps_the_whole_base() -> None:
    """MEXC spot charges fees in quote on both sides: the buy above pays its fee on top of the
    notional and receives all it bought; its funds check counts that fee too."""
    mexc = msgspec.structs.replace(SPOT, exchange=ExchangeName.MEXC, venue_symbol="BTCUSDT", fees_in_quote=True)

    def mexc_source() -> Source:
        return Source(mexc, SPOT_SCALE, [(ASK, "60000.05", "0.015050"), (ASK, "60000.10", "0.020000")])

    exchange, stream = paper(mexc_source(), {"USDT": "10000", "BTC": "0.1"})
    state = asyncio.run(exchange.place_order(order("b1", OrderSide.BUY, "0.03", "60001")))
    assert [(f.price, f.quantity, f.fee, f.fee_asset) for f in exchange.fills()] == [
        (D("60000.05"), D("0.01505"), D("1.806001505"), "USDT"),  # 0.2 % of 903.0007525
        (D("60000.10"), D("0.01495"), D("1.79400299"), "USDT"),
    ]
    assert (state.fee, state.fee_asset) == (D("3.600004495"), "USDT")
    assert free(exchange) == {"BTC": D("0.13"), "USDT": D("10000") - D("1800.0022475") - D("3.600004495")}
    assert stream.events[-2:] == [Balance(asset="BTC", free=D("0.13")), Balance(asset="USDT", free=D("8196.397748005"))]
    # 0.03 at the 60001 limit: 1800.03 with 3.60006 of fee.
    short, _ = paper(mexc_source(), {"USDT": "1803.63005"})
    with pytest.raises(OrderRejectedError) as refused:
        asyncio.run(short.place_order(order("b2", OrderSide.BUY, "0.03", "60001")))
    assert refused.value.category is ErrorCategory.INSUFFICIENT_BALANCE
    enough, _ = paper(mexc_source(), {"USDT": "1803.63006"})
    assert asyncio.run(enough.place_order(order("b3", OrderSide.BUY, "0.03", "60001"))).filled_quantity == D("0.03")


def test_taken_liquidity_is_not_offered_again_while_its_level_stays_in_the_book() -> None:
    source = spot_source()
    exchange, _ = paper(source, {"USDT": "10000", "BTC": "0"})

    def buy(cid: str, quantity: str) -> tuple[OrderStatus, D]:
        state = asyncio.run(exchange.place_order(order(cid, OrderSide.BUY, quantity, "60000.1")))
        return state.status, state.filled_quantity

    def level(price: str, size: str) -> None:
        source.book.apply_delta(ASK, source.ticks(price), source.lots(size))

    asyncio.run(exchange.place_order(order("b1", OrderSide.BUY, "0.03", "60001")))
    # The book did not change: 0.0050 is left at 60000.10 and nothing usable at 60000.05.
    assert buy("b2", "0.01") == (OrderStatus.EXPIRED, D("0.0050"))
    # A level nudged by someone else's order still holds what was taken from it.
    level("60000.05", "0.015051")
    assert buy("b3", "0.01") == (OrderStatus.EXPIRED, D(0))
    # Size added to it is offered: 0.01 more at 60000.05.
    level("60000.05", "0.025050")
    assert buy("b4", "0.02") == (OrderStatus.EXPIRED, D("0.0100"))
    # 60000.10 shrinks below what was taken (others took it): only size added after that is offered.
    level("60000.10", "0.004")
    assert buy("b5", "0.01") == (OrderStatus.EXPIRED, D(0))
    level("60000.10", "0.007")
    assert buy("b6", "0.01") == (OrderStatus.EXPIRED, D("0.0030"))
    # A level that left the book and came back is new liquidity.
    level("60000.05", "0")
    assert buy("b7", "0.01") == (OrderStatus.EXPIRED, D(0))
    level("60000.05", "0.01")
    assert buy("b8", "0.02") == (OrderStatus.EXPIRED, D("0.0100"))
    assert set(exchange._taken["BTC/USDT"]) == {(ASK, source.ticks("60000.05")), (ASK, source.ticks("60000.10"))}


def test_holds_back_says_whether_a_plan_on_the_public_book_counts_liquidity_paper_took() -> None:
    """The public book still shows what paper orders took: a plan that needs it within its limit
    would fill less than it counted on; one the rest of the book fills within its limit would not."""
    source = spot_source()
    exchange, _ = paper(source, {"USDT": "10000"})
    asyncio.run(exchange.place_order(order("b1", OrderSide.BUY, "0.01", "60000.1")))  # 0.00505 left at 60000.05

    def holds_back(side: OrderSide, quantity: str, limit: str) -> bool:
        return exchange.holds_back("BTC/USDT", side, D(quantity), D(limit))

    assert not holds_back(OrderSide.BUY, "0.005", "60000.05")
    assert holds_back(OrderSide.BUY, "0.01", "60000.05")
    assert not holds_back(OrderSide.BUY, "0.01", "60000.1")  # the next level makes up for it
    assert holds_back(OrderSide.BUY, "0.03", "60000.1")  # 0.03505 shown, 0.02505 offered
    assert holds_back(OrderSide.BUY, "1", "60000.1")  # more than the book shows: still less than it shows
    assert not holds_back(OrderSide.SELL, "0.01", "59999.9")
    source.book.apply_delta(ASK, source.ticks("60000.05"), 0)  # the level left the book
    assert not holds_back(OrderSide.BUY, "0.02", "60000.1")


def test_the_taken_overlay_forgets_levels_that_left_the_book() -> None:
    """A market moving away leaves the levels taken from behind: the overlay does not keep them."""
    source = spot_source()
    exchange, _ = paper(source, {"USDT": "100000", "BTC": "0"})
    for step in range(50):  # the asks fall a dollar after every buy
        price = D(60000) - step
        source.book.apply_delta(ASK, source.ticks(str(price)), source.lots("0.01"))
        state = asyncio.run(exchange.place_order(order(f"b{step}", OrderSide.BUY, "0.01", str(price))))
        assert state.filled_quantity == D("0.01")
        source.book.apply_delta(ASK, source.ticks(str(price)), 0)
    assert len(exchange._taken["BTC/USDT"]) == 1  # the last level taken, until a buy sees it gone
    source.book.apply_delta(ASK, source.ticks("60000"), source.lots("0.5"))  # a maker is back at 60000
    back = asyncio.run(exchange.place_order(order("back", OrderSide.BUY, "0.5", "60000")))
    assert back.filled_quantity == D("0.5") and len(exchange._taken["BTC/USDT"]) == 1


def test_an_order_with_latency_fills_against_the_book_as_it_is_when_it_arrives() -> None:
    source = spot_source()
    exchange = PaperExchange(source, {"USDT": D("10000")}, clock_ms=1_700_000_000_000, latency_ms=20)

    async def scenario() -> OrderState:
        loop = asyncio.get_running_loop()
        # While the order travels, the best ask is taken by someone else.
        loop.call_later(0.005, source.book.apply_delta, ASK, source.ticks("60000.05"), 0)
        state = await exchange.place_order(order("l1", OrderSide.BUY, "0.01", "60000.1"))
        assert source.book.size_at(ASK, source.ticks("60000.05")) == 0
        lost = asyncio.ensure_future(exchange.place_order(order("l2", OrderSide.BUY, "0.01", "60001")))
        await asyncio.sleep(0.005)
        lost.cancel()  # cancelled on the way: it never arrives
        with pytest.raises(asyncio.CancelledError):
            await lost
        with pytest.raises(ArbitrageEngineError):
            await exchange.query_order("BTC/USDT", client_order_id="l2")
        return state

    state = asyncio.run(scenario())
    assert (state.filled_quantity, state.average_price) == (D("0.01"), D("60000.10"))  # not 60000.05
    assert free(exchange)["USDT"] == D("10000") - D("600.001") and len(exchange.fills()) == 1
    with pytest.raises(ValueError, match="latency_ms=-1 must be >= 0"):
        PaperExchange(source, {}, latency_ms=-1)


def test_a_sell_fills_into_the_bids_with_the_fee_in_quote() -> None:
    exchange, _ = paper(spot_source(), {"USDT": "0", "BTC": "0.05"})
    state = asyncio.run(exchange.place_order(order("s1", OrderSide.SELL, "0.02", "59999")))
    assert [(f.price, f.quantity) for f in exchange.fills()] == [(D("59999.90"), D("0.0100")), (D("59999.00"), D("0.0100"))]
    notional = D("599.999") + D("599.99")
    assert (state.fee, state.fee_asset) == (notional * D("0.002"), "USDT")
    assert free(exchange) == {"BTC": D("0.03"), "USDT": notional - notional * D("0.002")}


def test_a_long_paper_run_keeps_only_the_newest_orders_and_fills(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paper_module, "ORDERS_KEPT", 2)
    exchange, _ = paper(spot_source(), {"USDT": "0", "BTC": "0.05"})
    for n in range(3):
        asyncio.run(exchange.place_order(order(f"s{n}", OrderSide.SELL, "0.001", "59999")))
    with pytest.raises(ExchangeError) as forgotten:
        asyncio.run(exchange.query_order("BTC/USDT", client_order_id="s0"))
    assert forgotten.value.category == ErrorCategory.UNKNOWN_ORDER
    assert asyncio.run(exchange.query_order("BTC/USDT", client_order_id="s2")).filled_quantity == D("0.001")
    assert len(exchange.fills()) == 2 and repr(exchange).endswith("2 orders)")


def test_market_and_fok_orders() -> None:
    exchange, _ = paper(spot_source(), {"USDT": "100000", "BTC": "0"})
    market = asyncio.run(exchange.place_order(order("m1", OrderSide.BUY, "0.04", None)))
    assert market.status is OrderStatus.FILLED
    assert [(f.price, f.quantity) for f in exchange.fills()] == [
        (D("60000.05"), D("0.01505")), (D("60000.10"), D("0.0200")), (D("60001.00"), D("0.00495"))
    ]
    before = free(exchange)
    # Only 0.49505 is left within 60001: a FOK for 0.4951 fills nothing.
    fok = asyncio.run(exchange.place_order(order("f1", OrderSide.BUY, "0.4951", "60001", TimeInForce.FOK)))
    assert (fok.status, fok.filled_quantity, fok.fee_asset) == (OrderStatus.EXPIRED, 0, None)
    assert free(exchange) == before and len(exchange.fills()) == 3
    whole = asyncio.run(exchange.place_order(order("f2", OrderSide.BUY, "0.495", "60001", TimeInForce.FOK)))
    assert (whole.status, whole.filled_quantity, whole.average_price) == (OrderStatus.FILLED, D("0.495"), D("60001"))


@pytest.mark.parametrize(
    ("request_", "category"),
    [
        (order("x", OrderSide.BUY, "0.2", "60001"), ErrorCategory.INSUFFICIENT_BALANCE),  # 12000.2 USDT > 10000
        (order("x", OrderSide.SELL, "0.1001", "59999"), ErrorCategory.INSUFFICIENT_BALANCE),  # holds 0.1 BTC
        (order("x", OrderSide.BUY, "0.01", "60000.05"), ErrorCategory.PRECISION),  # between ticks of the order grid
        (order("x", OrderSide.BUY, "0.00005", "60001"), ErrorCategory.PRECISION),
        (order("x", OrderSide.BUY, "0.0001", "5000"), ErrorCategory.MIN_NOTIONAL),  # 0.5 USDT < 1
    ],
)
def test_refusals_name_their_category_and_record_nothing(request_: OrderRequest, category: ErrorCategory) -> None:
    exchange, stream = paper(spot_source(), {"USDT": "10000", "BTC": "0.1"})
    with pytest.raises(OrderRejectedError) as refused:
        asyncio.run(exchange.place_order(request_))
    assert refused.value.category == category
    assert "paper gateio" in str(refused.value)
    assert exchange.fills() == [] and stream.events == []
    assert free(exchange) == {"USDT": D("10000"), "BTC": D("0.1")}
    with pytest.raises(OrderRejectedError) as unknown:
        asyncio.run(exchange.query_order("BTC/USDT", client_order_id="x"))
    assert unknown.value.category == ErrorCategory.UNKNOWN_ORDER


def test_resting_orders_are_refused_and_orders_are_final() -> None:
    exchange, _ = paper(spot_source(), {"USDT": "10000"})
    for tif in (TimeInForce.GTC, TimeInForce.POST_ONLY):
        with pytest.raises(ExchangeError) as refused:
            asyncio.run(exchange.place_order(order("g", OrderSide.BUY, "0.01", "59000", tif)))
        assert refused.value.category == ErrorCategory.INVALID_REQUEST and "not simulated" in str(refused.value)
    state = asyncio.run(exchange.place_order(order("i", OrderSide.BUY, "0.01", "59000")))
    assert (state.status, state.filled_quantity) == (OrderStatus.EXPIRED, 0)  # nothing at or below 59000
    with pytest.raises(OrderRejectedError) as duplicate:
        asyncio.run(exchange.place_order(order("i", OrderSide.BUY, "0.01", "60001")))
    assert duplicate.value.category == ErrorCategory.ORDER_REJECTED
    with pytest.raises(OrderRejectedError) as cancel:
        asyncio.run(exchange.cancel_order("BTC/USDT", client_order_id="i"))
    assert cancel.value.category == ErrorCategory.UNKNOWN_ORDER
    assert asyncio.run(exchange.open_orders()) == []


def resync(source: Source) -> None:
    """The book of ``source`` in sync again, from a snapshot of the levels it holds."""
    levels = [(side, price, size) for side in (ASK, BID) for price, size in source.book.top(side, 100)]
    batch = DeltaBatch(len(levels) + 1)
    for side, price, size in levels:
        batch.add(side, price, size)
    batch.is_snapshot = True
    source.book.apply_snapshot(batch, 1)


def test_an_order_arriving_while_its_book_resyncs_waits_for_it_and_fills() -> None:
    """A gap or a reconnect while the order travels: live, the venue's book was there all along and
    the order fills, so the paper order waits for the book to be back rather than being refused."""
    source = spot_source()
    exchange = PaperExchange(source, {"USDT": D("10000")}, clock_ms=1_700_000_000_000, latency_ms=20)

    async def scenario() -> OrderState:
        loop = asyncio.get_running_loop()
        loop.call_later(0.005, source.book.mark_out_of_sync)  # while the order travels
        loop.call_later(0.05, resync, source)
        return await exchange.place_order(order("o", OrderSide.BUY, "0.01", "60001"))

    state = asyncio.run(scenario())
    assert (state.status, state.filled_quantity, state.average_price) == (OrderStatus.FILLED, D("0.01"), D("60000.05"))


def test_an_order_whose_book_stays_out_of_sync_is_refused_as_not_sent() -> None:
    """Not as the venue refusing it (ORDER_REJECTED reads as changed rules and is never retried):
    nothing was filled, and the order may be sent again."""
    source = spot_source()
    source.book.mark_out_of_sync()
    exchange = PaperExchange(source, {"USDT": D("10000")}, clock_ms=1_700_000_000_000, book_wait_s=0.02)
    with pytest.raises(ExchangeError, match="no live book in sync") as refused:
        asyncio.run(exchange.place_order(order("o", OrderSide.BUY, "0.01", "60001")))
    assert refused.value.category == ErrorCategory.NOT_SENT
    assert exchange.fills() == [] and free(exchange) == {"USDT": D("10000")}
    resync(source)
    assert asyncio.run(exchange.place_order(order("o", OrderSide.BUY, "0.01", "60001"))).filled_quantity == D("0.01")


def test_an_order_whose_stream_went_silent_is_refused_as_not_sent_not_filled_at_frozen_prices() -> None:
    """A stream that stalled, or whose connection died silently, keeps its books in sync until its
    heartbeat gives up (seconds): a live order would meet the venue's book, not the frozen one."""
    source = spot_source()
    source.heard_ns = time.monotonic_ns() - 20_000_000_000  # nothing received for 20 s
    source.answers_pings = False
    exchange = PaperExchange(source, {"USDT": D("10000")}, clock_ms=1_700_000_000_000, latency_ms=20, book_wait_s=0.05)
    with pytest.raises(ExchangeError, match="its stream received nothing since the order arrived") as refused:
        asyncio.run(exchange.place_order(order("o", OrderSide.BUY, "0.01", "60001")))
    assert refused.value.category == ErrorCategory.NOT_SENT and source.pings == 1
    assert exchange.fills() == [] and free(exchange) == {"USDT": D("10000")}
    source.heard_ns = None  # the stream is back
    assert asyncio.run(exchange.place_order(order("o", OrderSide.BUY, "0.01", "60001"))).filled_quantity == D("0.01")


def test_an_order_on_a_quiet_stream_fills_once_the_stream_answers_its_ping() -> None:
    """Quiet pairs are not refused: the stream is judged, by any frame or the pong of a ping."""
    source = spot_source()
    source.heard_ns = time.monotonic_ns() - 20_000_000_000
    exchange = PaperExchange(source, {"USDT": D("10000")}, clock_ms=1_700_000_000_000, book_wait_s=5)
    state = asyncio.run(exchange.place_order(order("o", OrderSide.BUY, "0.01", "60001")))
    assert (state.status, state.filled_quantity, source.pings) == (OrderStatus.FILLED, D("0.01"), 1)


def test_an_order_invalid_in_itself_is_refused_at_once_whatever_its_book() -> None:
    """A good-till-cancelled order waited for a resyncing book, then came back 'not sent' (which
    may be retried) rather than refused as what it is."""
    source = spot_source()
    source.book.mark_out_of_sync()
    exchange = PaperExchange(source, {"USDT": D("10000")}, clock_ms=1_700_000_000_000, book_wait_s=5)
    gtc = msgspec.structs.replace(order("o", OrderSide.BUY, "0.01", "60001"), time_in_force=TimeInForce.GTC)

    async def placed() -> ExchangeError:
        with pytest.raises(ExchangeError) as refused:
            await asyncio.wait_for(exchange.place_order(gtc), 1)
        return refused.value

    assert asyncio.run(placed()).category != ErrorCategory.NOT_SENT


def test_futures_positions_margin_fees_and_realized_pnl() -> None:
    source = Source(PERP, PERP_SCALE, [(ASK, "60000.00", "100"), (BID, "59990.00", "100")])
    exchange, _ = paper(source, {"USDT": "100"})
    perp = "BTC/USDT:USDT"
    # Buy 10 contracts (0.001 BTC) at 60000: 60 USDT margin, fee 0.03 USDT.
    asyncio.run(exchange.place_order(order("p1", OrderSide.BUY, "10", "60000", symbol=perp)))
    balances = asyncio.run(exchange.balances())
    assert (balances["USDT"].free, balances["USDT"].locked) == (D("39.97"), D("60"))
    (position,) = asyncio.run(exchange.positions())
    assert (position.size, position.entry_price) == (D("10"), D("60000"))
    # The market rises 100.
    source.book.apply_delta(ASK, source.ticks("60000"), 0)
    source.book.apply_delta(ASK, source.ticks("60200"), 100)
    source.book.apply_delta(BID, source.ticks("59990"), 0)
    source.book.apply_delta(BID, source.ticks("60100"), 100)
    # Sell 15 at 60100: closes 10 (PnL +0.1 USDT, 60 released), opens 5 short (30.05 margin); fee 0.045075.
    state = asyncio.run(exchange.place_order(order("p2", OrderSide.SELL, "15", "60100", symbol=perp)))
    assert (state.fee, state.fee_asset) == (D("0.045075"), "USDT")
    balances = asyncio.run(exchange.balances())
    assert balances["USDT"].free == D("39.97") + 60 + D("0.1") - D("30.05") - D("0.045075") == D("69.974925")
    assert balances["USDT"].locked == D("30.05")
    (position,) = asyncio.run(exchange.positions())
    assert (position.size, position.entry_price) == (D("-5"), D("60100"))
    # Opening 200 more short needs 120.2 margin: refused.
    with pytest.raises(OrderRejectedError) as refused:
        asyncio.run(exchange.place_order(order("p3", OrderSide.SELL, "200", "60100", symbol=perp)))
    assert refused.value.category == ErrorCategory.INSUFFICIENT_BALANCE


def test_a_futures_sell_is_checked_for_the_margin_its_fills_lock_not_its_limit() -> None:
    """Selling 10 contracts with a limit of 50000 fills at the 59990 bid: the margin locked is
    59.99 USDT, not the 50 at the limit. With 50.03 USDT free it is refused, not let through to
    leave the paper margin below zero; with enough it fills at the bid and locks that."""
    perp = "BTC/USDT:USDT"
    _, short_of_margin, _ = perp_paper(usdt="50.03")
    with pytest.raises(OrderRejectedError, match="needs 60.01999") as refused:
        asyncio.run(short_of_margin.place_order(order("s1", OrderSide.SELL, "10", "50000", symbol=perp)))
    assert refused.value.category == ErrorCategory.INSUFFICIENT_BALANCE and free(short_of_margin)["USDT"] == D("50.03")
    _, exchange, _ = perp_paper(usdt="61")
    state = asyncio.run(exchange.place_order(order("s2", OrderSide.SELL, "10", "50000", symbol=perp)))
    assert (state.filled_quantity, state.average_price) == (D(10), D("59990"))
    balances = asyncio.run(exchange.balances())
    assert balances["USDT"].locked == D("59.99") and balances["USDT"].free == D(61) - D("59.99") - D("0.029995")


def test_a_futures_flip_is_checked_for_the_margin_of_the_levels_its_opening_part_fills_at() -> None:
    """A buy of 20 against a short of 10 closes at the cheap first ask and opens at the dear one
    after it: the opening's margin is that level's, not the walk's average, or the paper free
    balance would go below zero."""
    perp = "BTC/USDT:USDT"

    def flip(usdt: str) -> tuple[PaperExchange, Source]:
        source = Source(PERP, PERP_SCALE, [(BID, "60000.00", "10"), (ASK, "60010.00", "10"), (ASK, "200000.00", "100")])
        exchange, _ = paper(source, {"USDT": usdt})
        asyncio.run(exchange.place_order(order("open", OrderSide.SELL, "10", None, symbol=perp)))  # 60 margin, 0.03 fee
        return exchange, source

    # The 10 opened at 200000 lock 200 USDT and pay 0.1 of fee; the average, 130005, would ask 130.07.
    exchange, _ = flip("191.12")
    with pytest.raises(OrderRejectedError, match="needs 200.1") as refused:
        asyncio.run(exchange.place_order(order("flip", OrderSide.BUY, "20", None, symbol=perp)))
    assert refused.value.category == ErrorCategory.INSUFFICIENT_BALANCE and free(exchange)["USDT"] == D("131.09")
    exchange, _ = flip("260.13")
    state = asyncio.run(exchange.place_order(order("flip", OrderSide.BUY, "20", None, symbol=perp)))
    assert state.filled_quantity == 20 and free(exchange)["USDT"] >= 0
    (position,) = asyncio.run(exchange.positions())
    assert (position.size, position.entry_price) == (D(10), D(200000))


def test_a_reduce_only_order_is_clipped_to_the_position_and_refused_without_one() -> None:
    _, exchange, _ = perp_paper()
    perp = "BTC/USDT:USDT"

    def reduce_only(cid: str, side: OrderSide, quantity: str, price: str, tif: TimeInForce = TimeInForce.IOC) -> OrderState:
        request = msgspec.structs.replace(order(cid, side, quantity, price, tif, symbol=perp), reduce_only=True)
        return asyncio.run(exchange.place_order(request))

    with pytest.raises(OrderRejectedError, match="reduce-only sell with position 0") as flat:
        reduce_only("r0", OrderSide.SELL, "1", "59990")
    assert flat.value.category == ErrorCategory.ORDER_REJECTED
    asyncio.run(exchange.place_order(order("p1", OrderSide.BUY, "10", "60000", symbol=perp)))  # long 10
    with pytest.raises(OrderRejectedError, match="reduce-only buy with position 10"):
        reduce_only("r1", OrderSide.BUY, "1", "60000")  # would grow it
    clipped = reduce_only("r2", OrderSide.SELL, "25", "59990")
    assert (clipped.status, clipped.quantity, clipped.filled_quantity) == (OrderStatus.EXPIRED, D("25"), D("10"))
    assert asyncio.run(exchange.positions()) == []  # flat, not short 15
    balances = asyncio.run(exchange.balances())
    # 100 - two fees (0.03 on the buy, 0.029995 on the sell) - the 0.01 USDT lost on 10 contracts.
    assert (balances["USDT"].free, balances["USDT"].locked) == (D("100") - D("0.03") - D("0.029995") - D("0.01"), 0)
    asyncio.run(exchange.place_order(order("p2", OrderSide.SELL, "4", "59990", symbol=perp)))  # short 4
    fok = reduce_only("r3", OrderSide.BUY, "6", "60000", TimeInForce.FOK)  # judged on its clipped size: 4
    assert (fok.status, fok.filled_quantity) == (OrderStatus.EXPIRED, D("4"))
    assert asyncio.run(exchange.positions()) == []


def test_a_market_in_delisting_takes_only_reduce_only_orders_as_the_venue_does() -> None:
    """Gate.io refuses an order that is not reduce-only on a contract in delisting (CONTRACT_IN_DELISTING)."""
    source, exchange, _ = perp_paper()
    perp = "BTC/USDT:USDT"
    asyncio.run(exchange.place_order(order("p1", OrderSide.BUY, "10", "60000", symbol=perp)))  # long 10
    source.closing_only = True
    for cid, side in (("o1", OrderSide.BUY), ("o2", OrderSide.SELL)):  # growing it, or closing it not reduce-only
        with pytest.raises(OrderRejectedError, match="takes only reduce-only orders") as refused:
            asyncio.run(exchange.place_order(order(cid, side, "1", "59990" if side is OrderSide.SELL else "60000", symbol=perp)))
        assert refused.value.category == ErrorCategory.ORDER_REJECTED
    close = msgspec.structs.replace(order("r1", OrderSide.SELL, "10", "59990", symbol=perp), reduce_only=True)
    assert asyncio.run(exchange.place_order(close)).filled_quantity == D("10")
    assert asyncio.run(exchange.positions()) == []


def perp_paper(usdt: str = "100") -> tuple[Source, PaperExchange, Stream]:
    """A perpetual book at 59990.00 / 60000.00 (mid 59995.00)."""
    source = Source(PERP, PERP_SCALE, [(ASK, "60000.00", "100"), (BID, "59990.00", "100")])
    exchange, stream = paper(source, {"USDT": usdt})
    return source, exchange, stream


def rate(value: str, at_ms: int, exchange: ExchangeName = ExchangeName.GATEIO_FUTURES) -> FundingRate:
    return FundingRate(exchange=exchange, symbol="BTC/USDT:USDT", rate=D(value), interval_s=28_800, next_settle_ms=at_ms)


T = 1_700_006_400_000  # a settlement time
EIGHT_HOURS_MS = 28_800_000


def test_funding_settles_the_announced_rate_on_the_open_position_once_at_its_time() -> None:
    _, exchange, stream = perp_paper()
    perp = "BTC/USDT:USDT"
    asyncio.run(exchange.place_order(order("p1", OrderSide.BUY, "10", "60000", symbol=perp)))  # long 0.001 BTC
    before = free(exchange)["USDT"]
    announced = rate("0.0001", T)
    assert exchange.settle_due_funding([announced], T - 1) == []  # not yet
    assert exchange.settle_due_funding([rate("0.0001", T, ExchangeName.MEXC_FUTURES)], T) == []  # not this market
    stream.events.clear()
    (paid,) = exchange.settle_due_funding([announced], T)
    # A long pays a positive rate: 10 contracts x 0.0001 BTC x mid 59995 x 0.0001.
    assert (paid.symbol, paid.amount, paid.time_ms) == (perp, D("-0.0059995"), T)
    assert free(exchange)["USDT"] == before - D("0.0059995")
    assert stream.events == [Balance(asset="USDT", free=before - D("0.0059995"), locked=D("60"))]
    assert exchange.settle_due_funding([announced], T + 60_000) == []  # once per settlement
    # Turned short 5, then a negative rate: shorts pay it.
    asyncio.run(exchange.place_order(order("p2", OrderSide.SELL, "15", "59990", symbol=perp)))
    (second,) = exchange.settle_due_funding([rate("-0.0002", T + EIGHT_HOURS_MS)], T + EIGHT_HOURS_MS + 10)
    assert (second.amount, second.time_ms) == (-5 * D("0.0001") * D("59995") * D("0.0002"), T + EIGHT_HOURS_MS)
    assert second.payment_id != paid.payment_id
    assert asyncio.run(exchange.funding_payments(0)) == [paid, second]
    assert asyncio.run(exchange.funding_payments(T + 1)) == [second]


def test_a_rate_rolled_forward_settles_the_settlement_it_replaced_at_its_own_rate() -> None:
    _, exchange, _ = perp_paper()
    asyncio.run(exchange.place_order(order("s1", OrderSide.SELL, "10", "59990", symbol="BTC/USDT:USDT")))
    assert exchange.settle_due_funding([rate("0.0003", T)], T - 5_000) == []
    # The next look comes after the venue announced the following settlement: T happened at 0.0003.
    (received,) = exchange.settle_due_funding([rate("0.0001", T + EIGHT_HOURS_MS)], T + 2_000)
    assert (received.amount, received.time_ms) == (10 * D("0.0001") * D("59995") * D("0.0003"), T)
    assert exchange.settle_due_funding([rate("0.0001", T + EIGHT_HOURS_MS)], T + 4_000) == []


def test_a_rate_rolled_forward_settles_the_replaced_settlement_on_a_clock_behind_the_venue() -> None:
    """The venue announces the next settlement by its own clock: seen while the local clock still
    reads before the settlement, the one it replaced has happened all the same."""
    _, exchange, _ = perp_paper()
    asyncio.run(exchange.place_order(order("s1", OrderSide.SELL, "10", "59990", symbol="BTC/USDT:USDT")))
    assert exchange.settle_due_funding([rate("0.0003", T)], T - 5_000) == []
    (received,) = exchange.settle_due_funding([rate("0.0001", T + EIGHT_HOURS_MS)], T - 300)
    assert (received.amount, received.time_ms) == (10 * D("0.0001") * D("59995") * D("0.0003"), T)
    assert asyncio.run(exchange.funding_payments(T - 1_000)) == [received]


def test_settlements_no_rate_was_read_for_are_settled_at_the_last_rate_read(caplog: pytest.LogCaptureFixture) -> None:
    """The rate reads failing for a whole interval: the settlements they never announced happened at
    the venue all the same (only the last one announced was settled, the ones between skipped)."""
    _, exchange, _ = perp_paper()
    perp = "BTC/USDT:USDT"
    asyncio.run(exchange.place_order(order("s1", OrderSide.SELL, "10", "59990", symbol=perp)))
    last = rate("0.0003", T)
    (first,) = exchange.settle_due_funding([last], T + 1)
    with caplog.at_level(logging.WARNING, logger="arb.exchanges.paper"):
        (missed,) = exchange.settle_due_funding([last], T + EIGHT_HOURS_MS + 1)  # no read since: T + 8 h passed
    assert (missed.amount, missed.time_ms) == (first.amount, T + EIGHT_HOURS_MS)
    assert "no rate read for it: at the last rate read, 0.0003" in caplog.text
    # The reads come back once T + 16 h has passed too, announcing T + 24 h.
    (between,) = exchange.settle_due_funding([rate("0.0001", T + 3 * EIGHT_HOURS_MS)], T + 2 * EIGHT_HOURS_MS + 5)
    assert (between.amount, between.time_ms) == (first.amount, T + 2 * EIGHT_HOURS_MS)
    (announced,) = exchange.settle_due_funding([rate("0.0001", T + 3 * EIGHT_HOURS_MS)], T + 3 * EIGHT_HOURS_MS)
    assert announced.amount == first.amount / 3
    paid = asyncio.run(exchange.funding_payments(0))
    assert [p.time_ms for p in paid] == [T + k * EIGHT_HOURS_MS for k in range(4)]


def test_a_settlement_made_late_for_its_book_is_listed_when_it_was_made() -> None:
    """A reader asks for what was settled since its last read (an hour back): a settlement that
    waited hours for its book must be among it, not dated out of it by its settlement time."""
    source, exchange, _ = perp_paper()
    asyncio.run(exchange.place_order(order("p1", OrderSide.BUY, "10", "60000", symbol="BTC/USDT:USDT")))
    source.book.mark_out_of_sync()
    assert exchange.settle_due_funding([rate("0.0001", T)], T + 1_000) == []
    two_hours = 2 * 3_600_000
    batch = DeltaBatch(2)
    batch.add(ASK, source.ticks("60000.00"), 100)
    batch.add(BID, source.ticks("59990.00"), 100)
    batch.is_snapshot = True
    source.book.apply_snapshot(batch, 1)
    (paid,) = exchange.settle_due_funding([rate("0.0001", T)], T + two_hours)
    assert paid.time_ms == T  # the day it counts on is the settlement's
    assert asyncio.run(exchange.funding_payments(T + two_hours - 3_600_000)) == [paid]
    assert asyncio.run(exchange.funding_payments(T + two_hours + 1)) == []


def test_funding_waits_for_a_live_book_and_skips_positions_opened_after_the_settlement() -> None:
    source, exchange, _ = perp_paper()
    perp = "BTC/USDT:USDT"
    # Flat at T: nothing to settle, and a position opened after it does not pay for it.
    assert exchange.settle_due_funding([rate("0.0001", T)], T) == []
    asyncio.run(exchange.place_order(order("p1", OrderSide.BUY, "10", "60000", symbol=perp)))
    assert exchange.settle_due_funding([rate("0.0001", T)], T + 1_000) == []
    later = T + EIGHT_HOURS_MS
    source.book.mark_out_of_sync()
    assert exchange.settle_due_funding([rate("0.0001", later)], later) == []
    assert exchange.settle_due_funding([rate("0.0001", later + EIGHT_HOURS_MS)], later + 1_000) == []
    batch = DeltaBatch(2)
    batch.add(ASK, source.ticks("60010.00"), 100)
    batch.add(BID, source.ticks("60000.00"), 100)
    batch.is_snapshot = True
    source.book.apply_snapshot(batch, 1)
    # Back in sync: the settlement that waited is valued now (mid 60005), at its own rate and time.
    (paid,) = exchange.settle_due_funding([rate("0.0001", later + EIGHT_HOURS_MS)], later + 2_000)
    assert (paid.amount, paid.time_ms) == (-10 * D("0.0001") * D("60005") * D("0.0001"), later)


def test_a_funding_payment_is_charged_in_full_beyond_the_free_balance(caplog: pytest.LogCaptureFixture) -> None:
    """The scanner sizes futures legs up to the free margin, so funding owed usually exceeds what is
    free: charging only that would leave paper results better than the venue's."""
    _, exchange, _ = perp_paper(usdt="60.05")
    asyncio.run(exchange.place_order(order("p1", OrderSide.BUY, "10", "60000", symbol="BTC/USDT:USDT")))
    assert free(exchange)["USDT"] == D("0.02")  # 60 margin and 0.03 fee
    with caplog.at_level(logging.WARNING, logger="arb.exchanges.paper"):
        (paid,) = exchange.settle_due_funding([rate("0.01", T)], T)
    owed = D(10) * D("0.0001") * D("59995.00") * D("0.01")  # contracts x contract size x mid x rate
    assert paid.amount == -owed == D("-0.59995") and free(exchange)["USDT"] == D("0.02") - owed
    assert "leaves the paper USDT balance at -0.57995" in caplog.text


@settings(max_examples=150, deadline=None)
@given(
    held=st.integers(-25, 25),  # opened by a market order against 25 a side
    buy=st.booleans(),
    quantity=st.integers(1, 40),
    fok=st.booleans(),
)
def test_a_reduce_only_order_never_grows_or_turns_the_position(held: int, buy: bool, quantity: int, fok: bool) -> None:
    """Whatever the position and the order: refused with nothing to reduce in its direction, else
    filled up to the smaller of its size and the position, and the position ends between zero and
    where it was."""
    source = Source(PERP, PERP_SCALE, [(ASK, "60000.00", "25"), (BID, "59990.00", "25")])
    exchange, _ = paper(source, {"USDT": "1000"})
    perp = "BTC/USDT:USDT"
    if held:
        side = OrderSide.BUY if held > 0 else OrderSide.SELL
        asyncio.run(exchange.place_order(order("open", side, str(abs(held)), None, symbol=perp)))
        source.book.apply_delta(ASK, source.ticks("60000"), 25)  # the venue refills the level taken
        source.book.apply_delta(BID, source.ticks("59990"), 25)
    side = OrderSide.BUY if buy else OrderSide.SELL
    request = msgspec.structs.replace(
        order("r", side, str(quantity), "60000" if buy else "59990", TimeInForce.FOK if fok else TimeInForce.IOC,
              symbol=perp),
        reduce_only=True,
    )
    reducible = -held if buy else held
    if reducible <= 0:
        with pytest.raises(OrderRejectedError, match="reduce-only"):
            asyncio.run(exchange.place_order(request))
        return
    state = asyncio.run(exchange.place_order(request))
    # The position (at most 25) fits the book: every order fills its clipped size, a FOK of more than
    # the book holds included, as it is judged on that size.
    expected = min(quantity, reducible)
    assert state.filled_quantity == expected
    after = held + (expected if buy else -expected)
    positions = asyncio.run(exchange.positions())
    assert [p.size for p in positions] == ([D(after)] if after else [])
    assert abs(after) <= abs(held) and after * held >= 0


def test_every_paper_order_spends_the_venues_order_budget_as_a_live_one_would() -> None:
    """The engine passes up an opportunity its venues' order budgets cannot take at once: paper
    orders spend them, or a paper run would trade more often than any venue allows."""
    source = spot_source()
    exchange, _ = paper(source, {"USDT": "10000", "BTC": "0.1"})
    asyncio.run(exchange.place_order(order("b1", OrderSide.BUY, "0.001", "60001")))
    with pytest.raises(OrderRejectedError):  # refused by the venue: it was sent, its budget spent
        asyncio.run(exchange.place_order(order("b2", OrderSide.BUY, "1", "60001")))
    assert source.budget_spent == ["BTC/USDT", "BTC/USDT"]


@pytest.mark.parametrize("close_quantity", ["100", "101"], ids=["the position", "above the position"])
def test_a_futures_close_needs_no_free_margin_not_even_for_its_fee(close_quantity: str) -> None:
    """A hedge's opening may use every free USDT of the futures account; its close pays its fee
    out of the margin it releases, as Gate.io closes without margin, rather than being refused
    (the close's spot leg would then be unwound at a cost, every time the rule fired). The hedge
    book may hold more contracts than the position (a partial fill): such a close is clipped to
    the position and opens nothing, so no opening fee is asked of the spent balance either."""
    perp = "BTC/USDT:USDT"
    source = Source(PERP, PERP_SCALE, [(BID, "60000.00", "1000"), (ASK, "60000.10", "1000")])
    exchange, _ = paper(source, {"USDT": "600.3"})  # 100 contracts: 600 USDT margin and a 0.3 USDT fee
    asyncio.run(exchange.place_order(order("open", OrderSide.SELL, "100", "60000", symbol=perp)))
    assert free(exchange)["USDT"] == 0
    close = OrderRequest(symbol=perp, side=OrderSide.BUY, type=OrderType.LIMIT, quantity=D(close_quantity),
                         price=D("60000.1"), time_in_force=TimeInForce.IOC, client_order_id="close", reduce_only=True)
    state = asyncio.run(exchange.place_order(close))
    assert state.filled_quantity == 100 and asyncio.run(exchange.positions()) == []
    # Released 600, lost 100 x 0.0001 x 0.1 = 0.001 on the price, paid 0.3000005 of fee.
    assert free(exchange)["USDT"] == D("600") - D("0.001") - D("0.3000005")
    # Opening anything more still needs its margin and fee free.
    with pytest.raises(OrderRejectedError) as refused:
        asyncio.run(exchange.place_order(order("again", OrderSide.SELL, "200", "60000", symbol=perp)))
    assert refused.value.category == ErrorCategory.INSUFFICIENT_BALANCE


@settings(max_examples=150, deadline=None)
@given(
    long=st.booleans(),
    levels=st.lists(st.tuples(st.integers(1, 998), st.integers(1, 9)), min_size=1, max_size=3,
                    unique_by=lambda level: level[0]),
    cuts=st.lists(st.integers(1, 27), max_size=6),
)
def test_a_position_opened_and_closed_in_parts_leaves_exact_balances(
    long: bool, levels: list[tuple[int, int]], cuts: list[int]
) -> None:
    """Opened across levels (a non-terminating average entry) and closed in parts: nothing stays
    locked and the free balance is the start plus the fills' cash flows, to the last unit."""
    perp = "BTC/USDT:USDT"
    near, far = (ASK, BID) if long else (BID, ASK)
    sign = 1 if long else -1
    book = [(near, f"{60000 + sign * cents / 100:.2f}", str(size)) for cents, size in levels]
    book.append((far, f"{60000 - sign * 1000:.2f}", "1000"))  # what the closes fill against
    exchange, _ = paper(Source(PERP, PERP_SCALE, book), {"USDT": "100000"})
    opening, closing = (OrderSide.BUY, OrderSide.SELL) if long else (OrderSide.SELL, OrderSide.BUY)
    total = sum(size for _, size in levels)
    asyncio.run(exchange.place_order(order("open", opening, str(total), str(60000 + sign * 1000), symbol=perp)))
    left, parts = total, []
    for cut in cuts:
        if left > 1:
            parts.append(min(cut, left - 1))
            left -= parts[-1]
    for n, part in enumerate([*parts, left]):
        asyncio.run(exchange.place_order(order(f"close{n}", closing, str(part), str(60000 - sign * 1000), symbol=perp)))
    assert asyncio.run(exchange.positions()) == []
    flows = sum(
        (f.price * f.quantity * PERP.contract_size * (1 if f.side is OrderSide.SELL else -1) - f.fee
         for f in exchange.fills()),
        D(0),
    )
    balance = asyncio.run(exchange.balances())["USDT"]
    assert balance.locked == 0 and balance.free == D(100000) + flows
