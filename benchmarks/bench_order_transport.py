"""Gate.io spot ``place_order`` round trip over loopback: REST (``POST /spot/orders``) vs the WS API
(``spot.order_place``), through the same connector against the same simulated venue, in one run.

Each round places one IOC buy far below the market: it expires unfilled, so the venue does the
same work every round and no resting orders pile up. The client-side order budget (Gate: 10
per second) is refilled outside the timed body, so the round trip is what is measured. The
median is pytest-benchmark's; the p99 of the same rounds is stored in ``extra_info["p99_us"]``
and printed.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from decimal import Decimal as D
from typing import Any

import msgspec
import pytest
from simvenues import SYMBOL, SimVenuesOnLoop

from arb.exchanges.models import OrderRequest, OrderState, OrderStatus, OrderType, TimeInForce
from arb.types import ExchangeName, OrderSide

ROUNDS = 500
WARMUP = 20
TRANSPORTS = ("rest", "ws")


class Harness(SimVenuesOnLoop):
    """One event loop running the simulated venues and one Gate spot connector per transport."""

    def __init__(self) -> None:
        super().__init__()
        for transport in TRANSPORTS:
            connector = self.sim.connector(ExchangeName.GATEIO)
            connector.settings = msgspec.structs.replace(connector.settings, order_transport=transport)
            self.connectors[transport] = connector
        self.ids = itertools.count()

    def order(self, transport: str) -> OrderRequest:
        """A fresh IOC buy that expires unfilled, with the connector's order budget refilled."""
        self.refill_order_budget(self.connectors[transport])
        return OrderRequest(
            symbol=SYMBOL[ExchangeName.GATEIO],
            side=OrderSide.BUY,
            type=OrderType.LIMIT,
            time_in_force=TimeInForce.IOC,
            quantity=D("0.0001"),
            price=D("30000"),
            client_order_id=f"bt-{transport}-{next(self.ids)}",
        )


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    h = Harness()
    yield h
    h.close()


def _p99_us(benchmark: Any) -> float:
    data = sorted(benchmark.stats.stats.data)
    return data[min(len(data) - 1, int(len(data) * 0.99))] * 1e6


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_gateio_spot_place_order_round_trip(benchmark: Any, harness: Harness, transport: str) -> None:
    benchmark.group = "gateio spot place_order: rest vs ws"
    connector, run = harness.connectors[transport], harness.loop.run_until_complete
    place = connector.place_order
    result: list[OrderState] = []

    def setup() -> tuple[tuple[OrderRequest], dict[str, Any]]:
        return (harness.order(transport),), {}

    def once(order: OrderRequest) -> None:
        result.append(run(place(order)))

    benchmark.pedantic(once, setup=setup, rounds=ROUNDS, iterations=1, warmup_rounds=WARMUP)
    p99 = _p99_us(benchmark)
    benchmark.extra_info["p99_us"] = round(p99, 1)
    print(f"\n{transport}: median {benchmark.stats.stats.median * 1e6:.1f} us, p99 {p99:.1f} us")
    assert len(result) == ROUNDS + WARMUP and all(s.status is OrderStatus.EXPIRED for s in result)
    assert all(s.client_order_id is not None and s.client_order_id.startswith(f"bt-{transport}-") for s in result)
