"""Order round trip over loopback: ``place_order`` against the simulated venues, median per order.

The baseline in each group sends the same signed request straight through ``RestClient``
and the venue parser, so the difference is what the connector layer costs. Orders go over
REST on every market here, Gate's included (its connectors default to the websocket API,
compared with REST in ``bench_order_transport.py``). The client-side rate limiter is refilled
outside the timed body (Gate allows 10 spot orders per second, so otherwise the budget, not
the round trip, would be measured).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from decimal import Decimal as D
from typing import Any

import msgspec
import pytest
from simvenues import SYMBOL, SimVenuesOnLoop

from arb.exchanges.models import OrderRequest, OrderState, OrderStatus, OrderType
from arb.types import ExchangeName, OrderSide

MARKETS = [ExchangeName.GATEIO, ExchangeName.GATEIO_FUTURES, ExchangeName.MEXC]
ROUNDS = 200


class Harness(SimVenuesOnLoop):
    """An event loop running both simulated venues and one connector per traded market."""

    def __init__(self) -> None:
        super().__init__()
        for market in MARKETS:
            connector = self.sim.connector(market)
            connector.settings = msgspec.structs.replace(connector.settings, order_transport="rest")
            self.loop.run_until_complete(connector.instruments())
            self.connectors[market] = connector
        self.ids = itertools.count()

    def order(self, market: ExchangeName) -> OrderRequest:
        """A fresh resting buy below the market (never fills, so every round does the same work),
        with the market's order budget refilled."""
        self.refill_order_budget(self.connectors[market])
        return OrderRequest(
            symbol=SYMBOL[market],
            side=OrderSide.BUY,
            type=OrderType.LIMIT,
            quantity=D(1) if market.is_futures else D("0.0001"),
            price=D("30000"),
            client_order_id=f"bench-{next(self.ids)}",
        )


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    h = Harness()
    yield h
    h.close()


@pytest.mark.parametrize("market", MARKETS, ids=lambda m: m.value)
def test_place_order_through_the_connector(benchmark: Any, harness: Harness, market: ExchangeName) -> None:
    benchmark.group = f"place_order round trip {market.value}"
    connector, run = harness.connectors[market], harness.loop.run_until_complete
    place = connector.place_order
    result: list[OrderState] = []

    def setup() -> tuple[tuple[OrderRequest], dict[str, Any]]:
        return (harness.order(market),), {}

    def once(order: OrderRequest) -> None:
        result.append(run(place(order)))

    benchmark.pedantic(once, setup=setup, rounds=ROUNDS, iterations=1, warmup_rounds=5)
    assert len(result) == ROUNDS + 5 and all(s.status is OrderStatus.NEW for s in result)
    assert connector._orders_ws is None  # sent over REST, as the baseline's


@pytest.mark.parametrize("market", MARKETS, ids=lambda m: m.value)
def test_place_order_baseline_rest_client(benchmark: Any, harness: Harness, market: ExchangeName) -> None:
    benchmark.group = f"place_order round trip {market.value}"
    connector, run = harness.connectors[market], harness.loop.run_until_complete
    trading = run(connector._trader("place_order"))
    fetch, expiry_ms = connector.rest.fetch, connector._order_expiry_ms
    result: list[OrderState] = []

    def setup() -> tuple[tuple[OrderRequest], dict[str, Any]]:
        return (harness.order(market),), {}

    def once(order: OrderRequest) -> None:
        result.append(trading.parse_placed(run(fetch(trading.place_order(order, expiry_ms()))), order))

    benchmark.pedantic(once, setup=setup, rounds=ROUNDS, iterations=1, warmup_rounds=5)
    assert len(result) == ROUNDS + 5 and all(s.status is OrderStatus.NEW for s in result)
