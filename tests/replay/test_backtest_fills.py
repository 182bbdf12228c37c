"""arb.replay.player BacktestConnector: orders fill against the replayed book as if the whole book
were mirrored into the matching engine; order states and balances are the engine's, exactly."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable
from decimal import Decimal as D
from types import SimpleNamespace
from typing import TypeVar

import pytest

import arb.replay.player as player
from arb.exchanges.models import Balance, OrderRequest, OrderState, OrderType, TimeInForce
from arb.instruments import Instrument, InstrumentCatalog
from arb.replay.player import USER, BacktestConnector, VirtualClock, connector_class
from arb.sim import matching
from arb.sim.cluster import default_instruments
from arb.sim.matching import Fill, Liquidity, OrderEvent, OrderRejected, SimExchange, from_atoms
from arb.types import ExchangeName, OrderSide
from arb_core.book import ASK, BID, DeltaBatch, OrderBook

T = TypeVar("T")
DEPOSITS = {"USDT": D("50000000"), "BTC": D("500")}


def _instrument(market: ExchangeName) -> Instrument:
    return next(i for i in default_instruments(("BTC",)) if i.exchange is market)


def _replayed_book(rng: random.Random, mid: int, step: int) -> OrderBook:
    """A replayed book in book ticks around ``mid``: gaps of up to three ``step``s, some tiny sizes."""
    batch = DeltaBatch(64)
    batch.is_snapshot = True
    for side, sign in ((BID, -1), (ASK, 1)):
        offset = 0
        for _ in range(rng.randrange(0, 25)):
            offset += rng.randrange(1, 4) * step
            batch.add(side, mid + sign * offset, rng.choice((rng.randrange(1, 5_000), rng.randrange(1, 10**9))))
    book = OrderBook("replayed")
    book.apply_snapshot(batch, 0)
    return book


def _expected_state(instrument: Instrument, event: OrderEvent) -> OrderState:
    """The connector's OrderState of ``event`` (with the fees its fills paid so far), from the
    instrument's own conversions."""
    quantity = instrument.lots_to_size(event.size_lots)
    filled = instrument.lots_to_size(event.filled_lots)
    average = None
    if event.filled_lots:
        average = from_atoms(event.filled_quote_atoms) / (filled * instrument.contract_size)
    return OrderState(
        symbol=event.symbol, order_id=str(event.order_id), client_order_id=event.client_id, side=event.side,
        type=event.order_type, status=event.status, quantity=quantity,
        price=instrument.ticks_to_price(event.price_ticks) if event.price_ticks else None,
        filled_quantity=filled, average_price=average,
        fee=from_atoms(event.fee_atoms) if event.fee_asset else D(0), fee_asset=event.fee_asset or None,
        updated_at_ms=event.time_ns // 1_000_000,
    )


@pytest.mark.parametrize("forgetful", [False, True], ids=["caches", "tiny-caches"])
@pytest.mark.parametrize("market", [ExchangeName.GATEIO, ExchangeName.MEXC, ExchangeName.GATEIO_FUTURES])
def test_orders_fill_as_with_the_whole_book_mirrored(
    market: ExchangeName, forgetful: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if forgetful:  # every conversion cache starts over all the time
        monkeypatch.setattr(BacktestConnector, "_KNOWN_DECIMALS", 2)
        monkeypatch.setattr(matching, "_KNOWN_STEPS", 2)
    rng = random.Random(market.value)
    instrument = _instrument(market)
    symbol = instrument.symbol
    clock = VirtualClock(0, 0)
    # No order budget: its waits would sleep on a clock only this test moves.
    connector = connector_class(market)(
        InstrumentCatalog(market, [instrument]), clock, 0, DEPOSITS, [], order_budgets=False
    )
    scale = connector.dialect.book_scale(instrument)
    ratios = player._grid_ratios(scale, instrument.wire_scale())
    books: dict[str, OrderBook] = {}
    connector._sync = SimpleNamespace(books=books)  # type: ignore[assignment]
    connector._scales[symbol] = scale
    # The reference: every order placed on the whole replayed book, mirrored into the engine.
    reference = SimExchange(market, [instrument])
    for asset, amount in DEPOSITS.items():
        reference.deposit(USER, asset, amount)
    loop = asyncio.new_event_loop()

    def run(awaitable: Awaitable[T]) -> T:
        return loop.run_until_complete(awaitable)

    mid_ticks = instrument.price_to_ticks(D("65000"))
    filled = rested = unsynced = made = reduced_filled = reduced_refused = 0
    try:
        for step in range(400):
            clock.advance_to(step * 3_000_000)
            now = clock.now_ns
            mid_ticks += rng.randrange(-3, 4)
            book = _replayed_book(rng, mid_ticks * ratios[1] // ratios[0], max(1, ratios[1] // rng.choice((1, 3))))
            if rng.random() < 0.05:
                book.mark_out_of_sync()
                unsynced += 1
            books[symbol] = book
            resting = [o for o in reference.open_orders(USER) if o.symbol == symbol]
            if resting and rng.random() < 0.3:
                order_id = rng.choice(resting).order_id
                state = run(connector.cancel_order(symbol, order_id=str(order_id)))
                event, _ = reference.cancel_order(USER, symbol, now, order_id=order_id)
                assert state == _expected_state(instrument, event)
                continue
            side = rng.choice((OrderSide.BUY, OrderSide.SELL))
            tif = rng.choice((TimeInForce.IOC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.GTC))
            # Some limits rest away from the market, for the mirror (and its moves) to cross later.
            away = -rng.randrange(1, 12) if tif is TimeInForce.GTC and rng.random() < 0.6 else rng.randrange(-3, 6)
            limit = mid_ticks + away if side is OrderSide.BUY else mid_ticks - away
            lots = rng.randrange(1, 3_000) * max(1, instrument.size_to_lots(instrument.min_size))
            reduce_only = instrument.is_futures and rng.random() < 0.2  # capped to the position, or refused
            request = OrderRequest(
                symbol=symbol, side=side, type=OrderType.LIMIT, quantity=instrument.lots_to_size(lots),
                client_order_id=f"o{step}", price=instrument.ticks_to_price(limit), time_in_force=tif,
                reduce_only=reduce_only,
            )
            expected: OrderState | str
            try:
                engine = reference.engine(symbol)
                if book.in_sync:
                    engine.set_market_levels(
                        player._order_levels(book.top(BID, book.bid_count), BID, ratios),
                        player._order_levels(book.top(ASK, book.ask_count), ASK, ratios),
                        now,
                    )
                else:
                    engine.set_market_levels({}, {}, now)
                result = reference.place_order(
                    USER, symbol, side, OrderType.LIMIT, lots, now, price_ticks=limit, time_in_force=tif,
                    client_id=request.client_order_id, reduce_only=reduce_only,
                )
            except OrderRejected as exc:
                expected = exc.category.value
                reduced_refused += reduce_only
            else:
                expected = _expected_state(instrument, result.order)
                filled += bool(result.fills)
                rested += result.order.status.value in ("new", "partially_filled")
                reduced_filled += reduce_only and bool(result.fills)
            try:
                got: OrderState | str = run(connector.place_order(request))
            except player.OrderRejectedError as exc:
                got = exc.category.value
            assert got == expected
            made += sum(isinstance(e, Fill) and e.liquidity is Liquidity.MAKER for e in reference.drain_events())
            assert run(connector.balances()) == {
                asset: Balance(asset=asset, free=free, locked=locked)
                for asset, (free, locked) in reference.balances(USER).items()
            }
    finally:
        loop.close()
    assert filled > 80 and rested > 10 and made > 5 and unsynced > 5
    if instrument.is_futures:
        assert reduced_filled >= 3 and reduced_refused > 20  # the seed gives 5 and 57
