"""Private order and fill streams end to end: each venue's connector against its simulated venue on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal as D

import pytest
from loopback import eventually, run
from simvenues import API_KEY, SYMBOL, simulated_venues

from arb.errors import ArbitrageEngineError
from arb.exchanges.models import Balance, Fill, OrderRequest, OrderState, OrderStatus, OrderType, TimeInForce
from arb.secrets import ApiCredentials, Secret
from arb.sim.matching import Fill as SimFill
from arb.types import ExchangeName, OrderSide

SPOT_STREAMED = [ExchangeName.GATEIO, ExchangeName.MEXC]
STREAMED = [*SPOT_STREAMED, ExchangeName.GATEIO_FUTURES]
QUANTITY = {ExchangeName.GATEIO: D("0.01"), ExchangeName.MEXC: D("0.01"), ExchangeName.GATEIO_FUTURES: D("3")}  # contracts
CONTRACT_SIZE = D("0.0001")  # BTC per Gate perpetual contract in the simulated venues
PERP_TAKER_FEE = D("0.0005")


def ioc_buy(market: ExchangeName, client_order_id: str) -> OrderRequest:
    """An IOC buy priced far above the synthetic market (around 60000): it fills at once."""
    return OrderRequest(
        symbol=SYMBOL[market],
        side=OrderSide.BUY,
        type=OrderType.LIMIT,
        quantity=QUANTITY[market],
        price=D("90000"),
        time_in_force=TimeInForce.IOC,
        client_order_id=client_order_id,
    )


@pytest.mark.parametrize("market", SPOT_STREAMED, ids=lambda m: m.value)
def test_ioc_order_streams_its_states_and_fills(market: ExchangeName) -> None:
    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            connector = sim.connector(market)
            orders: list[OrderState] = []
            fills: list[Fill] = []
            try:
                await connector.start_private_stream(orders.append, fills.append)
                placed = await connector.place_order(ioc_buy(market, "pstream1"))
                await eventually(lambda: any(o.is_final for o in orders), what=f"{market.value} final order push")
                mine = [o for o in orders if o.order_id == placed.order_id]
                assert mine[0].status is OrderStatus.NEW and mine[0].client_order_id == "pstream1"
                final = mine[-1]
                assert final.status is OrderStatus.FILLED and final.filled_quantity == D("0.01")
                await eventually(lambda: sum((f.quantity for f in fills), D(0)) == final.filled_quantity,
                                 what="fills sum to the filled quantity")
                assert all(f.order_id == placed.order_id and f.client_order_id == "pstream1" for f in fills)
                assert all(not f.is_maker and f.side is OrderSide.BUY and f.fee_asset == "BTC" for f in fills)
                assert sum((f.fee for f in fills), D(0)) == final.fee > 0
                assert final.fee_asset == "BTC"
                notional = sum((f.price * f.quantity for f in fills), D(0))
                assert final.average_price == notional / final.filled_quantity
                assert len({f.trade_id for f in fills}) == len(fills)
                # The simulator's record of the same executions, to the last digit.
                recorded = [e for _, e in sim.venues[market.venue].private_events if isinstance(e, SimFill)]
                assert len(recorded) == len(fills)
            finally:
                await connector.close()

    run(scenario())


@pytest.mark.parametrize("market", STREAMED, ids=lambda m: m.value)
def test_bad_credentials_are_refused_at_start(market: ExchangeName) -> None:
    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            wrong = ApiCredentials(Secret(API_KEY), Secret("not-the-secret"))
            connector = sim.connector(market, credentials=wrong)
            try:
                with pytest.raises(ArbitrageEngineError) as caught:
                    await connector.start_private_stream(lambda o: None, lambda f: None)
                assert "auth" in str(caught.value).lower() or "signature" in str(caught.value).lower()
                assert connector.private_stream is None
            finally:
                await connector.close()

    run(scenario())


@pytest.mark.parametrize("market", STREAMED, ids=lambda m: m.value)
def test_reconnect_resubscribes(market: ExchangeName) -> None:
    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            connector = sim.connector(market)
            fills: list[Fill] = []
            try:
                await connector.start_private_stream(lambda o: None, fills.append)
                stream = connector.private_stream
                assert stream is not None
                stream.session.drop()
                await eventually(lambda: stream.session.connects == 2 and stream.session.connected, what="reconnected")
                if market is ExchangeName.MEXC:
                    assert len(stream.urls) == 2 and stream.urls[0] != stream.urls[1]  # a new listenKey
                    assert len(sim.venues["mexc"].context.user_streams) == 1  # the old key was closed
                await eventually(lambda: stream._pending_acks == 0, what="resubscribed")
                await connector.place_order(ioc_buy(market, "pstream2"))
                await eventually(
                    lambda: sum((f.quantity for f in fills), D(0)) == QUANTITY[market], what="fills after reconnect"
                )
            finally:
                await connector.close()
            if market is ExchangeName.MEXC:
                assert not sim.venues["mexc"].context.user_streams  # released on close

    run(scenario())


def test_futures_ioc_order_streams_contract_states_and_exact_fills() -> None:
    market = ExchangeName.GATEIO_FUTURES

    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            connector = sim.connector(market)
            orders: list[OrderState] = []
            fills: list[Fill] = []
            try:
                await connector.start_private_stream(orders.append, fills.append)
                stream = connector.private_stream
                assert stream is not None and stream.dialect.venue == "gateio"  # websocket, not polling
                placed = await connector.place_order(ioc_buy(market, "pfut1"))
                await eventually(lambda: any(o.is_final for o in orders), what="final futures order push")
                mine = [o for o in orders if o.order_id == placed.order_id]
                assert mine and all(o.client_order_id == "pfut1" and o.quantity == D(3) for o in mine)
                final = mine[-1]
                assert final.status is OrderStatus.FILLED and final.filled_quantity == D(3)  # contracts, unsigned
                await eventually(lambda: sum((f.quantity for f in fills), D(0)) == final.filled_quantity,
                                 what="fills sum to the filled contracts")
                assert all(f.order_id == placed.order_id and f.side is OrderSide.BUY and not f.is_maker for f in fills)
                assert all(f.fee_asset == "USDT" for f in fills) and final.fee_asset == "USDT"
                # taker fee on the base notional: contracts x contract size x price x rate, to the last digit
                assert all(f.fee == f.quantity * CONTRACT_SIZE * f.price * PERP_TAKER_FEE for f in fills)
                assert sum((f.fee for f in fills), D(0)) == final.fee > 0
                notional = sum((f.price * f.quantity for f in fills), D(0))
                assert final.average_price == notional / final.filled_quantity
                (position,) = await connector.positions()
                assert position.size == final.filled_quantity
            finally:
                await connector.close()

    run(scenario())


@pytest.mark.parametrize("market", STREAMED, ids=lambda m: m.value)
def test_balance_pushes_after_a_fill_equal_the_venue_balances(market: ExchangeName) -> None:
    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            connector = sim.connector(market)
            balances: list[Balance] = []
            fills: list[Fill] = []
            assets = ("USDT",) if market.is_futures else ("BTC", "USDT")
            try:
                await connector.start_private_stream(lambda o: None, fills.append, balances.append)
                before = await connector.balances()
                await connector.place_order(ioc_buy(market, "pbal1"))
                await eventually(lambda: sum((f.quantity for f in fills), D(0)) == QUANTITY[market], what="fills")
                expected = await connector.balances()
                assert all(expected[a] != before[a] for a in assets)

                def latest_match() -> bool:
                    latest = {b.asset: b for b in balances}
                    return all(latest.get(a) == expected[a] for a in assets)

                await eventually(latest_match, what=f"{market.value} balance pushes equal balances()")
            finally:
                await connector.close()

    run(scenario())


def test_gate_futures_balances_read_after_a_push_go_to_the_read_handler_whole() -> None:
    """Gate.io's futures.balances push tells no free/locked split: the stream reads the account by
    REST and hands the whole read to ``on_balances_read``; ``on_balance`` gets nothing."""
    market = ExchangeName.GATEIO_FUTURES

    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            connector = sim.connector(market)
            pushed: list[Balance] = []
            reads: list[Mapping[str, Balance]] = []
            fills: list[Fill] = []
            try:
                await connector.start_private_stream(
                    lambda o: None, fills.append, pushed.append, on_balances_read=reads.append
                )
                await connector.place_order(ioc_buy(market, "pbal2"))
                await eventually(lambda: sum((f.quantity for f in fills), D(0)) == QUANTITY[market], what="fills")
                expected = await connector.balances()
                await eventually(lambda: bool(reads) and reads[-1] == expected, what="a read equal to balances()")
                assert pushed == []
            finally:
                await connector.close()

    run(scenario())
