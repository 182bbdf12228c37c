"""Tick to order over loopback: the simulator's push of a dislocating frame to its receipt of both orders.

The whole engine runs (``ArbitrageController`` in a dry run): picows connectors and
``BookSync`` on the simulated venues' websockets, the scanner pipeline, the risk manager,
the two-leg executor with its SQLite journal, aiohttp REST orders. The simulated venues
(``SimCluster``) run in a forked child process with their own event loop (the engine attaches
by URL, as ``arb run --sim-urls`` does), their synthetic feed moving every book 100 times a
second (so books stay fresh and consumed liquidity is re-quoted). The simulator's work never
shares the engine's loop, so the stamps measure the engine's own path.

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
import contextlib
import multiprocessing
import os
import statistics
import time
from collections.abc import Iterator
from decimal import ROUND_CEILING, ROUND_FLOOR
from decimal import Decimal as D
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import msgspec
import pytest

from arb_core.book import ASK, BID

from arb.config import ConfigurationManager
from arb.cli import new_event_loop
from arb.controller import ArbitrageController, dry_run_cluster
from arb.exchanges.models import OrderType, TimeInForce
from arb.sim.cluster import SimCluster, SimEndpoints
from arb.sim.market import SyntheticMarket
from arb.sim.matching import SimExchange
from arb.sim.server import LatencyStamps, SyntheticFeed
from arb.types import ArbitrageConfig, ExchangeName, OrderSide

EVENTS = int(os.environ.get("ARB_TICK_EVENTS", "500"))
WARMUP = 10
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


class _SimProcess:
    """The simulated venues in a child process, driven over a pipe.

    The engine under test gets the parent's event loop to itself: the simulator's matching,
    pushes and stamps run on the child's loop, so a receive stamp is the moment the order
    reached the venue, not the moment the engine's loop let the simulator look. Commands
    (one small message each): ``("event", n)`` rests the maker's dislocating order and
    answers ``(market, last_update_id)``; ``("finish", n, market, update_id, client_ids)``
    answers the tick-to-order ns (or None) and withdraws what the engine left of the order;
    ``("stop",)`` ends the child. Both processes stamp with the one system-wide monotonic clock.
    """

    def __init__(self, config: ArbitrageConfig) -> None:
        context = multiprocessing.get_context("fork")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_sim_child, args=(config, child), daemon=True)
        self._process.start()
        child.close()
        self.endpoints: SimEndpoints = self._conn.recv()

    def send(self, *command: object) -> None:
        self._conn.send(command)

    def recv(self) -> Any:
        answer = self._conn.recv()
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send(("stop",))
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._conn.close()


def _sim_child(config: ArbitrageConfig, conn: Connection) -> None:
    loop = new_event_loop()
    try:
        loop.run_until_complete(_serve_sim(config, conn))
    finally:
        loop.close()
        conn.close()


async def _serve_sim(config: ArbitrageConfig, conn: Connection) -> None:
    cluster = _cluster(config)
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
        stopped = asyncio.get_running_loop().create_future()

        def command() -> None:
            try:
                message = conn.recv()
            except EOFError:
                message = ("stop",)
            try:
                if message[0] == "stop":
                    if not stopped.done():
                        stopped.set_result(None)
                elif message[0] == "event":
                    conn.send(_rest_maker_order(exchanges, message[1]))
                else:
                    _, n, where, update_id, client_ids = message
                    conn.send(_finish(exchanges[where], stamps, n, where, update_id, client_ids))
            except Exception as exc:  # reported to the parent, which raises it
                conn.send(exc)

        loop = asyncio.get_running_loop()
        loop.add_reader(conn.fileno(), command)
        conn.send(cluster.endpoints())
        try:
            await stopped
        finally:
            loop.remove_reader(conn.fileno())


def _rest_maker_order(exchanges: dict[ExchangeName, SimExchange], n: int) -> tuple[ExchangeName, int]:
    """Rest the maker order of event ``n`` (alternating venue and side); its market and book update id."""
    symbol = "BTC/USDT"
    gate, mexc = exchanges[ExchangeName.GATEIO].engines[symbol], exchanges[ExchangeName.MEXC].engines[symbol]
    # Gate.io quotes below MEXC, by less than the fees; the maker's order closes the rest of the gap.
    if n % 2 == 0:
        where, side = ExchangeName.GATEIO, OrderSide.SELL
        price = mexc.instrument.ticks_to_price(mexc.book.best_bid_price()) * (1 - EDGE)
    else:
        where, side = ExchangeName.MEXC, OrderSide.BUY
        price = gate.instrument.ticks_to_price(gate.book.best_ask_price()) * (1 + EDGE)
    instrument = exchanges[where].engines[symbol].instrument
    result = exchanges[where].place_order(
        MAKER, symbol, side, OrderType.LIMIT, instrument.size_to_lots(SIZE_BTC), time.monotonic_ns(),
        price_ticks=int((price / instrument.tick_size).to_integral_value(ROUND_FLOOR if side is OrderSide.SELL
                                                                         else ROUND_CEILING)),
        time_in_force=TimeInForce.GTC, client_id=f"mm{n}",
    )
    if result.book_update is None:
        raise RuntimeError(f"event {n}: the maker order crossed its own book")
    return where, result.book_update.last_update_id


def _finish(
    exchange: SimExchange, stamps: dict[ExchangeName, LatencyStamps], n: int, where: ExchangeName, update_id: int,
    client_ids: list[tuple[ExchangeName, str]],
) -> int | None:
    """Event ``n``'s tick to order (None when a stamp is gone); withdraws what is left of the maker order."""
    symbol = "BTC/USDT"
    pushed = stamps[where].push_ns(where, symbol, update_id)
    received = [_received(stamps[market], cid) for market, cid in client_ids]
    if any(o.client_id == f"mm{n}" for o in exchange.engines[symbol].open_orders(MAKER)):
        exchange.cancel_order(MAKER, symbol, time.monotonic_ns(), client_id=f"mm{n}")
    if pushed is None or any(r is None for r in received):
        return None
    return max(r for r in received if r is not None) - pushed


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

    async def run(self, sim: _SimProcess) -> None:
        controller = ArbitrageController(self.manager, sim_endpoints=sim.endpoints)
        await controller.initialize(dry_run=True)
        runner = asyncio.get_running_loop().create_task(controller.run())
        try:
            await self._wait_books(controller)
            await asyncio.sleep(0.3)
            # Warm-up, not counted: the first orders open Gate.io's websocket trading session and
            # MEXC's REST connection.
            for n in range(WARMUP):
                await self._event(controller, sim, n)
            self.tick_to_order_ns.clear()
            controller.monitor.reset()
            for n in range(WARMUP, WARMUP + self.events):
                await self._event(controller, sim, n)
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

    async def _event(self, controller: ArbitrageController, sim: _SimProcess, n: int) -> None:
        for connector in controller.connectors.values():
            while (wait_s := connector.order_wait_s()) > 0:
                await asyncio.sleep(wait_s)
        before = len(controller.results)
        # Not waited for: the engine's loop stays free for the frame the maker order pushes.
        sim.send("event", n)
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
        where, update_id = sim.recv()
        execution = controller.results[-1]
        # Idle again (balance refresh done) before the next event; the child withdraws what the engine left.
        await asyncio.sleep(0.002)
        sim.send("finish", n, where, update_id, [(leg.exchange, leg.client_order_id) for leg in execution.legs[:2]])
        latency = sim.recv()
        if latency is not None:
            self.tick_to_order_ns.append(latency)


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
    sim = _SimProcess(run.manager.config)  # forked before the engine's loop runs
    try:
        benchmark.pedantic(lambda: loop.run_until_complete(run.run(sim)), rounds=1, iterations=1)
    finally:
        sim.close()
    print("\n" + _report(run))
    benchmark.extra_info.update(
        events=len(run.tick_to_order_ns),
        p50_us=_percentile(run.tick_to_order_ns, 50) / 1000,
        p99_us=_percentile(run.tick_to_order_ns, 99) / 1000,
        stages_us={k: (v[1] / 1000, v[2] / 1000) for k, v in run.stages.items()},
    )
    assert len(run.tick_to_order_ns) >= EVENTS * 0.99
    assert run.completed >= EVENTS * 0.99
