"""Simulator throughput: synthetic book updates per venue market and the matching cost of an IOC order."""

from decimal import Decimal as D
from typing import Any

from sim.simdata import spot

from arb.sim.market import MarketSpec, SyntheticConfig, SyntheticMarket
from arb.sim.matching import OrderType, SimExchange, TimeInForce
from arb.types import ExchangeName, OrderSide
from arb_core.book import ASK

UPDATES = 5_000
RATE = 100_000  # updates per second of simulated time, above the 50k/s the server must push


def test_synthetic_updates_per_venue(benchmark: Any) -> None:
    """One venue market at 100k updates/s, 200 levels per side; median ns per update = median / UPDATES."""
    benchmark.group = "sim generator"
    state: dict[str, Any] = {}

    def setup() -> tuple[tuple[int], dict[str, Any]]:
        venue = SimExchange(ExchangeName.GATEIO, [spot()])
        cfg = SyntheticConfig(
            seed=1, start_price=D("60000"),
            markets=(MarketSpec(exchange=ExchangeName.GATEIO, symbol="BTC/USDT", depth_levels=200, noise_ticks=1, updates_per_second=RATE),),
        )
        state["market"] = SyntheticMarket(cfg, list(venue.engines.values()), 0)
        state["venue"] = venue
        return (UPDATES * 1_000_000_000 // RATE,), {}

    def run(now_ns: int) -> None:
        state["updates"] = state["market"].step(now_ns)

    benchmark.pedantic(run, setup=setup, rounds=15, iterations=1)
    benchmark.extra_info["updates_per_s"] = round(UPDATES / benchmark.stats.stats.median)
    updates = state["updates"]
    assert len(updates) == UPDATES
    assert [u.first_update_id for u in updates] == list(range(2, UPDATES + 2))
    book = state["venue"].engine("BTC/USDT").book
    assert 0 < book.best_bid_price() < book.best_ask_price()


ORDERS = 500


def test_ioc_order_matching(benchmark: Any) -> None:
    """IOC buys that each take two levels of a deep book; median ns per order = median / ORDERS."""
    benchmark.group = "sim matching"
    state: dict[str, Any] = {}

    def setup() -> tuple[tuple[()], dict[str, Any]]:
        venue = SimExchange(ExchangeName.GATEIO, [spot()])
        engine = venue.engine("BTC/USDT")
        engine.apply_market_levels([(ASK, 10_000 + i, 100) for i in range(2 * ORDERS + 10)], 1)
        venue.deposit("u", "USDT", "100000000")
        state["venue"] = venue
        return (), {}

    def run() -> None:
        place = state["venue"].place_order
        buy, ioc, limit = OrderSide.BUY, TimeInForce.IOC, OrderType.LIMIT
        results = []
        for i in range(ORDERS):
            results.append(place("u", "BTC/USDT", buy, limit, 200, i, price_ticks=10_000 + 2 * i + 1, time_in_force=ioc))
        state["results"] = results

    benchmark.pedantic(run, setup=setup, rounds=15, iterations=1)
    results = state["results"]
    assert all(r.order.filled_lots == 200 and len(r.fills) == 2 for r in results)
    assert state["venue"].engine("BTC/USDT").book.best_ask_price() == 10_000 + 2 * ORDERS
