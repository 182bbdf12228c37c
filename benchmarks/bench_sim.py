"""Simulator throughput: synthetic book updates per venue market and the matching cost of an IOC order.

Each group has a same-run baseline doing the same job the most direct way:

* ``sim generator``: the same 5,000 updates (their levels and times recorded from one run of
  the generator beforehand) applied with ``MatchingEngine.apply_market_levels``, the call
  every generated update ends in; the ratio is what the generator itself (walk, draws, level
  shifts) costs over sequencing and applying its output to the venue book.
* ``sim matching``: the same IOC buys matched by a bare taker loop over a ``SortedDict`` of
  the asks with the spot balance arithmetic (quote paid, base received less the taker fee,
  rounded up), checked to leave the same book and the same balances; the ratio is what the
  simulated venue (validation, order records, fills, public book update) costs over the match.
"""

from decimal import Decimal as D
from typing import Any

from sim.simdata import spot
from sortedcontainers import SortedDict

from arb.sim.market import MarketSpec, SyntheticConfig, SyntheticMarket
from arb.sim.matching import OrderType, SimExchange, TimeInForce
from arb.types import ExchangeName, OrderSide
from arb_core.book import ASK, BID

UPDATES = 5_000
RATE = 100_000  # updates per second of simulated time, above the 50k/s the server must push
STEP_NS = UPDATES * 1_000_000_000 // RATE  # simulated time that holds UPDATES updates
DEPTH = 200


def synthetic_venue() -> tuple[SimExchange, SyntheticMarket]:
    """One Gate.io venue and its seeded synthetic market at RATE updates/s, DEPTH levels per side."""
    venue = SimExchange(ExchangeName.GATEIO, [spot()])
    cfg = SyntheticConfig(
        seed=1, start_price=D("60000"),
        markets=(MarketSpec(exchange=ExchangeName.GATEIO, symbol="BTC/USDT", depth_levels=DEPTH, noise_ticks=1, updates_per_second=RATE),),
    )
    return venue, SyntheticMarket(cfg, list(venue.engines.values()), 0)


def test_synthetic_updates_per_venue(benchmark: Any) -> None:
    """One venue market at 100k updates/s, 200 levels per side; median ns per update = median / UPDATES."""
    benchmark.group = "sim generator"
    state: dict[str, Any] = {}

    def setup() -> tuple[tuple[int], dict[str, Any]]:
        state["venue"], state["market"] = synthetic_venue()
        return (STEP_NS,), {}

    def run(now_ns: int) -> None:
        state["updates"] = state["market"].step(now_ns)

    benchmark.pedantic(run, setup=setup, rounds=15, iterations=1)
    benchmark.extra_info["updates_per_s"] = round(UPDATES / benchmark.stats.stats.median)
    updates = state["updates"]
    assert len(updates) == UPDATES
    assert [u.first_update_id for u in updates] == list(range(2, UPDATES + 2))
    book = state["venue"].engine("BTC/USDT").book
    assert 0 < book.best_bid_price() < book.best_ask_price()


def test_synthetic_updates_applied_baseline(benchmark: Any) -> None:
    """Baseline: the generator's 5,000 updates, recorded beforehand, applied with apply_market_levels."""
    benchmark.group = "sim generator"
    generated_venue, market = synthetic_venue()
    generated = market.step(STEP_NS)
    recorded = [(update.levels, update.time_ns) for update in generated]
    state: dict[str, Any] = {}

    def setup() -> tuple[tuple[()], dict[str, Any]]:
        state["venue"], _ = synthetic_venue()  # the same opening book, built outside the timing
        return (), {}

    def run() -> None:
        apply = state["venue"].engine("BTC/USDT").apply_market_levels
        state["updates"] = [apply(levels, time_ns) for levels, time_ns in recorded]

    benchmark.pedantic(run, setup=setup, rounds=15, iterations=1)
    benchmark.extra_info["updates_per_s"] = round(UPDATES / benchmark.stats.stats.median)
    assert state["updates"] == generated
    book, expected = state["venue"].engine("BTC/USDT").book, generated_venue.engine("BTC/USDT").book
    assert (book.top(BID, DEPTH), book.top(ASK, DEPTH)) == (expected.top(BID, DEPTH), expected.top(ASK, DEPTH))


ORDERS = 500
ORDER_LOTS = 200
ASK_LEVELS = [(ASK, 10_000 + i, 100) for i in range(2 * ORDERS + 10)]


def ioc_venue() -> SimExchange:
    """A venue whose BTC/USDT book holds ASK_LEVELS and a user funded for every order."""
    venue = SimExchange(ExchangeName.GATEIO, [spot()])
    venue.engine("BTC/USDT").apply_market_levels(ASK_LEVELS, 1)
    venue.deposit("u", "USDT", "100000000")
    return venue


def test_ioc_order_matching(benchmark: Any) -> None:
    """IOC buys that each take two levels of a deep book; median ns per order = median / ORDERS."""
    benchmark.group = "sim matching"
    state: dict[str, Any] = {}

    def setup() -> tuple[tuple[()], dict[str, Any]]:
        state["venue"] = ioc_venue()
        return (), {}

    def run() -> None:
        place = state["venue"].place_order
        buy, ioc, limit = OrderSide.BUY, TimeInForce.IOC, OrderType.LIMIT
        results = []
        for i in range(ORDERS):
            results.append(place("u", "BTC/USDT", buy, limit, ORDER_LOTS, i, price_ticks=10_000 + 2 * i + 1, time_in_force=ioc))
        state["results"] = results

    benchmark.pedantic(run, setup=setup, rounds=15, iterations=1)
    results = state["results"]
    assert all(r.order.filled_lots == ORDER_LOTS and len(r.fills) == 2 for r in results)
    assert state["venue"].engine("BTC/USDT").book.best_ask_price() == 10_000 + 2 * ORDERS


def test_ioc_order_matching_sorteddict_baseline(benchmark: Any) -> None:
    """Baseline: the same IOC buys as a bare taker loop over a SortedDict of asks plus the balance arithmetic."""
    benchmark.group = "sim matching"
    reference = ioc_venue()
    engine = reference.engine("BTC/USDT")
    per_tick_lot, per_lot = engine.quote_atoms_per_tick_lot, engine.base_atoms_per_lot
    fee_num, fee_den = engine.taker_fee
    opening_usdt = reference.balance_atoms("u")["USDT"][0]
    state: dict[str, Any] = {}

    def setup() -> tuple[tuple[()], dict[str, Any]]:
        state["asks"] = SortedDict((price, lots) for _, price, lots in ASK_LEVELS)
        state["balance"] = {"USDT": opening_usdt, "BTC": 0}
        return (), {}

    def run() -> None:
        asks, balance = state["asks"], state["balance"]
        best = asks.peekitem
        results = []
        for i in range(ORDERS):
            limit, want, fills = 10_000 + 2 * i + 1, ORDER_LOTS, []
            while want and asks:
                price, lots = best(0)
                if price > limit:
                    break
                take = lots if lots < want else want
                if take == lots:
                    del asks[price]
                else:
                    asks[price] = lots - take
                want -= take
                qty = take * per_lot
                fee = -(-qty * fee_num // fee_den)  # charged in the base received, rounded up
                balance["USDT"] -= price * take * per_tick_lot
                balance["BTC"] += qty - fee
                fills.append((price, take, fee))
            results.append(fills)
        state["results"] = results

    benchmark.pedantic(run, setup=setup, rounds=15, iterations=1)
    results = state["results"]
    assert all(len(fills) == 2 and sum(lots for _, lots, _ in fills) == ORDER_LOTS for fills in results)
    assert state["asks"].peekitem(0)[0] == 10_000 + 2 * ORDERS
    simulated = [  # the simulated venue, once, untimed: the same fills and balances
        reference.place_order("u", "BTC/USDT", OrderSide.BUY, OrderType.LIMIT, ORDER_LOTS, i,
                              price_ticks=10_000 + 2 * i + 1, time_in_force=TimeInForce.IOC)
        for i in range(ORDERS)
    ]
    assert results == [[(f.price_ticks, f.size_lots, f.fee_atoms) for f in r.fills] for r in simulated]
    assert reference.balance_atoms("u") == {asset: (atoms, 0) for asset, atoms in sorted(state["balance"].items())}
