"""Tick to order over loopback: the simulator's push of a dislocating frame to its receipt of both orders.

The whole engine runs (``ArbitrageController`` in a dry run): picows connectors and
``BookSync`` on the simulated venues' websockets, the scanner pipeline, the risk manager,
the two-leg executor with its SQLite journal, aiohttp REST orders. The simulated venues
(``SimCluster``) run in the same process and event loop, with their synthetic feed moving
every book 100 times a second (so books stay fresh and consumed liquidity is re-quoted).

One event: a market maker on the simulator rests a small ask on one venue below the other
venue's best bid (or a bid above its best ask), alternating direction. That order's public
book update is the frame that creates the opportunity; its ``(market, symbol,
last_update_id)`` names it in ``LatencyStamps``. The engine buys the cheap side and sells
the rich one with two IOC orders; their client ids name the simulator's receive stamps.
Tick to order is ``max(both receive stamps) - push stamp``, every stamp on the one
monotonic clock. The engine's own ``PerformanceMonitor`` gives the stage breakdown.

Every event is a full execution (fills, journal, balance refresh), so events are paced:
the next is injected once the previous result is in, the engine is idle again and both
venues' order budgets admit an order (Gate.io allows 10 spot orders a second; the engine
passes up an opportunity rather than queue one leg behind its budget).
``ARB_TICK_EVENTS`` sets the count (default 500, about a minute; ``ARB_TICK_EVENTS=10000`` for
the issue's event count).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Iterator
from decimal import ROUND_CEILING, ROUND_FLOOR
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import msgspec
import pytest

from arb_core.book import ASK, BID

from arb.config import ConfigurationManager
from arb.cli import new_event_loop
from arb.controller import ArbitrageController, dry_run_cluster
from arb.exchanges.models import OrderType, TimeInForce
from arb.sim.cluster import SimCluster
from arb.sim.market import SyntheticMarket
from arb.sim.matching import SimExchange
from arb.sim.server import LatencyStamps, SyntheticFeed
from arb.types import ArbitrageConfig, ExchangeName, OrderSide

EVENTS = int(os.environ.get("ARB_TICK_EVENTS", "500"))
MAKER = "bench-maker"
# Gate.io's BTC/USDT sits 50 bps under MEXC's, spreads are 120 bps wide: no opportunity until the
# maker's order, 40 bps through the other venue's best, pays both taker fees (25 bps) and the 10 bps floor.
GATE_BASIS_BPS = -50
SPREAD = D("0.012")
EDGE = D("0.004")
SIZE_BTC = D("0.0002")  # ~12 USDT: above both venues' minimums, tiny against the synthetic depth
CONFIG = """
[engine]
symbols = ["BTC/USDT"]
opportunity_types = ["spot_spot"]
max_data_age_ms = 500
balance_refresh_interval_ms = 60000

[risk]
max_position_size_usd = "1000"
max_total_exposure_usd = "1000000"
max_daily_loss_usd = "1000"
max_consecutive_failures = 1000

[exchanges.gateio]
markets = ["spot"]
"""


def _cluster(config: ArbitrageConfig) -> SimCluster:
    """The dry-run venues with Gate.io's book shifted down and every spread widened (see ``GATE_BASIS_BPS``)."""
    cluster = dry_run_cluster(config, random_per_minute=0)
    if not isinstance(cluster.feed, SyntheticFeed):
        raise RuntimeError("the dry-run cluster has no synthetic feed")
    engines = {
        (name, symbol): engine
        for venue in cluster.venues.values()
        for name, exchange in venue.exchanges.items()
        for symbol, engine in exchange.engines.items()
    }
    for engine in engines.values():  # the default quotes go; the shifted, wider ones replace them
        engine.apply_market_levels(
            [(side, price, 0) for side in (BID, ASK) for price, _ in engine.book.top(side, 1_000_000)], 0
        )
    markets = []
    for market in cluster.feed.markets:
        specs = []
        for spec in market.config.markets:
            tick = engines[(spec.exchange, spec.symbol)].instrument.tick_size
            specs.append(msgspec.structs.replace(
                spec, spread_ticks=int(SPREAD * market.config.start_price / tick),
                basis_bps=GATE_BASIS_BPS if spec.exchange.venue == "gateio" else 0,
            ))
        synthetic = msgspec.structs.replace(market.config, markets=tuple(specs))
        markets.append(SyntheticMarket(synthetic, [engines[(s.exchange, s.symbol)] for s in specs], 0))
    cluster.feed = SyntheticFeed(markets, cluster.venues.values())
    return cluster


def _received(stamps: LatencyStamps, client_order_id: str) -> int | None:
    """The simulator's receive stamp of an order (Gate.io carries the client id as ``text``: ``t-<id>``)."""
    stamp = stamps.request_ns(client_order_id)
    return stamp if stamp is not None else stamps.request_ns(f"t-{client_order_id}")


def _percentile(values: list[int], p: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def _us(ns: float) -> str:
    return f"{ns / 1000:9.1f} µs"


class TickToOrder:
    """Runs ``events`` dislocations through a dry-run controller; collects per-event latencies."""

    def __init__(self, tmp: Path, events: int) -> None:
        path = tmp / "arb.toml"
        path.write_text(CONFIG)
        self.manager = ConfigurationManager(path, environ={"ARB_JOURNAL_PATH": str(tmp / "journal.sqlite3")})
        self.manager.load_configuration(dry_run=True)
        self.events = events
        self.tick_to_order_ns: list[int] = []
        self.stages: dict[str, tuple[int, int, int]] = {}
        self.completed = 0

    async def run(self) -> None:
        cluster = _cluster(self.manager.config)
        async with cluster:
            exchanges: dict[ExchangeName, SimExchange] = {}
            stamps: dict[ExchangeName, LatencyStamps] = {}
            for venue in cluster.venues.values():
                for name, exchange in venue.exchanges.items():
                    if not name.is_futures:
                        exchanges[name] = exchange
                        stamps[name] = venue.stamps
                        exchange.deposit(MAKER, "USDT", "10000000")
                        exchange.deposit(MAKER, "BTC", "1000")
            controller = ArbitrageController(self.manager, sim_cluster=cluster)
            await controller.initialize(dry_run=True)
            runner = asyncio.get_running_loop().create_task(controller.run())
            try:
                await self._wait_books(controller)
                await asyncio.sleep(0.3)
                controller.monitor.reset()
                for n in range(self.events):
                    await self._event(controller, exchanges, stamps, n)
                for latency in controller.monitor.stage_latencies():
                    self.stages[latency.stage.value] = (latency.count, latency.p50_ns, latency.p99_ns)
                self.completed = controller.statistics().executions_succeeded
            finally:
                controller.shutdown_manager.request_shutdown("benchmark done")
                await runner

    async def _wait_books(self, controller: ArbitrageController) -> None:
        for _ in range(500):
            in_sync, books = controller.books_in_sync()
            if books and in_sync == books:
                return
            await asyncio.sleep(0.01)
        raise RuntimeError("books never came in sync")

    async def _event(
        self, controller: ArbitrageController, exchanges: dict[ExchangeName, SimExchange],
        stamps: dict[ExchangeName, LatencyStamps], n: int,
    ) -> None:
        symbol = "BTC/USDT"
        gate, mexc = exchanges[ExchangeName.GATEIO].engines[symbol], exchanges[ExchangeName.MEXC].engines[symbol]
        # Gate.io quotes below MEXC, by less than the fees; the maker's order closes the rest of the gap.
        if n % 2 == 0:
            where, side = ExchangeName.GATEIO, OrderSide.SELL
            price = mexc.instrument.ticks_to_price(mexc.book.best_bid_price()) * (1 - EDGE)
        else:
            where, side = ExchangeName.MEXC, OrderSide.BUY
            price = gate.instrument.ticks_to_price(gate.book.best_ask_price()) * (1 + EDGE)
        engine = exchanges[where].engines[symbol]
        instrument = engine.instrument
        for connector in controller.connectors.values():
            while (wait_s := connector.order_wait_s()) > 0:
                await asyncio.sleep(wait_s)
        before = len(controller.results)
        result = exchanges[where].place_order(
            MAKER, symbol, side, OrderType.LIMIT, instrument.size_to_lots(SIZE_BTC), time.monotonic_ns(),
            price_ticks=int((price / instrument.tick_size).to_integral_value(ROUND_FLOOR if side is OrderSide.SELL
                                                                             else ROUND_CEILING)),
            time_in_force=TimeInForce.GTC, client_id=f"mm{n}",
        )
        update = result.book_update
        if update is None:
            raise RuntimeError(f"event {n}: the maker order crossed its own book")
        deadline = time.monotonic() + 1.0  # by the clock: uvloop rounds sub-ms sleeps down to 0
        while len(controller.results) <= before:
            if time.monotonic() > deadline:
                pipeline = controller.pipeline
                raise RuntimeError(
                    f"event {n}: no execution within 1 s (scans {pipeline and pipeline.scans}, found "
                    f"{pipeline and pipeline.found}, dropped {pipeline and pipeline.dropped_after_rounding}, "
                    f"risk {controller.risk and controller.risk.get_risk_statistics().rejections})"
                )
            await asyncio.sleep(0.0005)
        execution = controller.results[-1]
        pushed = stamps[where].push_ns(where, symbol, update.last_update_id)
        received = [_received(stamps[leg.exchange], leg.client_order_id) for leg in execution.legs[:2]]
        if pushed is not None and all(r is not None for r in received):
            self.tick_to_order_ns.append(max(r for r in received if r is not None) - pushed)
        # Idle again (balance refresh done) before the next event; withdraw what the engine left.
        await asyncio.sleep(0.002)
        if any(o.client_id == f"mm{n}" for o in engine.open_orders(MAKER)):
            exchanges[where].cancel_order(MAKER, symbol, time.monotonic_ns(), client_id=f"mm{n}")


def _report(run: TickToOrder) -> str:
    lines = [f"tick to order over loopback, {len(run.tick_to_order_ns)} events ({run.completed} completed):"]
    values = run.tick_to_order_ns
    lines.append(f"  p50 {_us(_percentile(values, 50))}  p99 {_us(_percentile(values, 99))}  "
                 f"mean {_us(statistics.fmean(values))}")
    for stage, (count, p50, p99) in run.stages.items():
        lines.append(f"  stage {stage:<10} n={count:<6} p50 {_us(p50)}  p99 {_us(p99)}")
    return "\n".join(lines)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = new_event_loop()
    yield loop
    loop.close()


@pytest.mark.benchmark(group="tick-to-order")
def test_tick_to_order_engine(benchmark: Any, tmp_path: Path, loop: asyncio.AbstractEventLoop) -> None:
    """Engine: frame -> book -> scan -> risk -> journal -> both IOC orders received by the simulator."""
    run = TickToOrder(tmp_path, EVENTS)
    benchmark.pedantic(lambda: loop.run_until_complete(run.run()), rounds=1, iterations=1)
    print("\n" + _report(run))
    benchmark.extra_info.update(
        events=len(run.tick_to_order_ns),
        p50_us=_percentile(run.tick_to_order_ns, 50) / 1000,
        p99_us=_percentile(run.tick_to_order_ns, 99) / 1000,
        stages_us={k: (v[1] / 1000, v[2] / 1000) for k, v in run.stages.items()},
    )
    assert len(run.tick_to_order_ns) >= EVENTS * 0.99
    assert run.completed >= EVENTS * 0.99
