"""Tick to order over loopback: the simulator's push of a dislocating frame to its receipt of both orders.

The whole engine runs (``ArbitrageController`` in a dry run): picows connectors and
``BookSync`` on the simulated venues' websockets, the scanner pipeline, the risk manager,
the two-leg executor with its SQLite journal, Gate.io orders over its websocket trading
API and MEXC orders over REST (``Http1Pool``). Each simulated venue runs in its own forked
child process with its own event loop (the engine attaches by URL, as ``arb run --sim-urls``
does); every child runs the same seeded ``SimCluster`` whose synthetic feed, started at one
shared instant, moves every book 100 times a second (so books stay fresh and consumed
liquidity is re-quoted) in step across the processes. The simulator's work never shares the
engine's loop, and one venue's matching does not delay the other's receipt of an order (see
the hold below).

One event: a market maker on the simulator rests a small ask on one venue below the other
venue's best bid (or a bid above its best ask), alternating direction. That order's public
book update is the frame that creates the opportunity; its ``(market, symbol,
last_update_id)`` names it in ``LatencyStamps``. The engine buys the cheap side and sells
the rich one with two IOC orders; their client ids name the simulator's receive stamps.
Tick to order is ``max(both receive stamps) - push stamp``, every stamp on the one
monotonic clock. The engine's own ``PerformanceMonitor`` gives the stage breakdown.

A second figure, tick to both written, ends at the later of the engine's two order writes
(``_WriteStamps``: the call that wrote the order's bytes to its socket has returned), in the
engine's process. It leaves out the venues' wake-up and their scheduling on the core they
share. The floor reports both figures as well.

Each venue holds an order ``MATCHING_DELAY_MS`` (1 ms) between reading it and handling it
(``SimConfig.matching_delay_ms``, as a real venue's gateway does before its matching engine;
``ARB_TICK_MATCHING_DELAY_MS=0`` to compare); the receive stamp is taken on the read, before
the hold. Without it, the venue that read its order first went on to match it (~0.8 ms of
the simulator's Python, MEXC's REST dispatch included) on the core both venues share, and the
other venue's order waited to be read: in ~2% of events Gate.io's venue, busy with its feed
when its order came, was preempted by MEXC's venue for all of that, and the later receipt
came ~0.8 ms after the engine's second write (1,000 events with ``ARB_BUSY_POLL=1``: the later
receipt p99 729 us after the second write without the hold, 85 us with it). Venues on
separate machines cannot delay each other's reads; the hold keeps them from it here.

What the stamps mark (``arb.sim.server``): the push stamp is taken just before the
simulator's first socket write of the frame. A receive stamp is the moment the simulator
has the complete order bytes, before routing and matching: Gate.io orders (websocket
trading API) in ``on_ws_frame``, called by picows from the socket read that completed the
frame; MEXC orders (REST) at the time of the connection's last socket read before the
handler runs, taken after the body has been read (``_StampingProtocol``), so never before
the request was complete. The venues' matching, answers and pushes come after the stamps.

Processes and cores (``CORES``, ``PRIORITIES``; when two or more cores are usable): the engine
is pinned alone to one core, both venues to the other, as real-time (FIFO) processes where
the OS allows it, MEXC above Gate.io. Unpinned, the scheduler woke the receiving process on
the sender's core and let it preempt the sender inside its ``send()``: the simulator's push
then "took" the engine's whole reaction time, and an order reached the simulator only after
the engine's next wait (about 0.5 ms per hop on a 2-core machine). Two venues at normal
priority on one core do not preempt each other: the order that arrived second waited for
the other venue's matching (about 0.4 ms). Gate.io's order is the first sent in this
benchmark, so MEXC's real-time priority lets the second order be read at once; a Gate.io
order arriving while MEXC's simulator runs waits for it (seen only in the tail). With the
hold in place, Gate.io above MEXC was tried as well: the later receipt came p90 106 us after
the engine's second write, against 38 us this way round.

The venues' core is kept from going idle by a process spinning there at idle priority
(``SCHED_IDLE``: it runs only when neither venue wants the core), as a venue's gateway would
be; ``ARB_TICK_VENUE_SPIN=0`` leaves the core to halt between events, to compare. On a virtual
machine, waking a halted core takes long enough (~100 us here) that both orders are often
waiting by the time it runs; the higher-priority venue then reads its order first, and the
other venue reads its own only after that venue's whole matching (~0.8 ms). Measured that
way, the last receipt of an event came p90 ~830 us after the engine's second write, against
~60 us with the core kept awake. The floor runs under the same conditions.

Every event is a full execution (fills, journal, balance refresh), so events are paced:
the next is injected once the previous result is in, the engine is idle again and both
venues' order budgets admit what an execution needs (``ENTRY_ORDER_BUDGET``: its leg and a
recovery order in reserve; Gate.io allows 10 spot orders in any second, and the engine
passes up an opportunity rather than queue one leg behind its budget), at least
``EVENT_INTERVAL_S`` after the previous event (so that each finds the engine's caches as
cold as a rare opportunity would), and then after a random 0-10 ms (see ``_event``). An
event whose book the feed moves while a venue holds its order before matching gets a leg
unfilled and recovered (5-7 % of events in 300- and 500-event runs); the report counts them.
``ARB_TICK_EVENTS`` sets the count (default 500, about a minute; ``ARB_TICK_EVENTS=10000`` for
the issue's event count). ``ARB_BUSY_POLL=1`` runs the engine with ``engine.busy_poll`` (and
the floor's engine side polls the same way);
``ARB_REHEARSAL_INTERVAL_MS`` sets ``engine.rehearsal_interval_ms`` (``0``: no rehearsals, to compare).

``ARB_TICK_BREAKDOWN=1`` also stamps points along the engine's path of each event and prints
the p50/p90/p99 of the steps between them (``_Breakdown``); its wrappers add a little to every
stamped call, so use a separate run for the tick-to-order figure itself.

Baseline (``test_tick_to_order_floor``, same group): the transport alone, on the same cores
and priorities. A venue process writes a small frame on a loopback TCP connection and the
engine's process, on the engine's event loop, answers it at once from the protocol's
``data_received``; the venue takes its receive stamp in its own ``data_received``. What
that round trip takes (one hop each way, two process wake-ups) is what tick to order
would be if the engine did nothing at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import random
import statistics
import time
from collections.abc import Iterator
from decimal import ROUND_CEILING, ROUND_FLOOR
from decimal import Decimal as D
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

import msgspec
import pytest

from arb_core.book import ASK, BID

from arb.config import ENGINE_FIELDS, ConfigurationManager
from arb.cli import new_event_loop
from arb.controller import ENTRY_ORDER_BUDGET, ArbitrageController, _busy_poll, dry_run_cluster
from arb.exchanges.factory import market_symbols
from arb.exchanges.models import OrderType, TimeInForce
from arb.sim.cluster import SimCluster, SimConfig, SimEndpoints
from arb.sim.market import SyntheticMarket
from arb.sim.matching import SimExchange
from arb.sim.server import LatencyStamps, SyntheticFeed
from arb.types import ArbitrageConfig, ExchangeName, OrderSide

EVENTS = int(os.environ.get("ARB_TICK_EVENTS", "500"))
EVENT_INTERVAL_S = 0.1
MATCHING_DELAY_MS = float(os.environ.get("ARB_TICK_MATCHING_DELAY_MS", "1"))
# The floor's engine side polls like ``engine.busy_poll`` when the engine run does (read as the config reads it).
BUSY_POLL: bool = ENGINE_FIELDS["busy_poll"](os.environ.get("ARB_BUSY_POLL", "false"))
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


def _cluster(config: ArbitrageConfig, start_ns: int | None = None) -> SimCluster:
    """The dry-run venues with Gate.io's book shifted down and every spread widened (see ``GATE_BASIS_BPS``);
    ``start_ns`` pins the feed's simulated time 0 (copies in several processes move in step)."""
    sim_config = SimConfig(seed=1, symbols=config.symbols, matching_delay_ms=MATCHING_DELAY_MS)
    cluster = dry_run_cluster(config, random_per_minute=0, sim_config=sim_config)
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
    cluster.feed = SyntheticFeed(markets, cluster.venues.values(), start_ns=start_ns)
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
    """One simulated venue in a child process, driven over a pipe.

    The engine under test gets the parent's event loop to itself, and each venue gets its
    own loop: a venue's matching, pushes and stamps never delay the other venue's receipt
    of an order (real venues are separate machines). Every child runs the same seeded
    cluster with one feed start, so both venues' books move in step; each serves only its
    own venue to the engine. Commands (one small message each): ``("event", n)`` rests the
    maker's dislocating order and answers ``(market, last_update_id)``;
    ``("finish", n, market, update_id, client_ids)`` answers ``(push ns or None, {client id:
    receive ns})`` for what this venue saw, and withdraws what the engine left of the maker's
    order; ``("stop",)`` ends the child. Every process stamps with the one system-wide
    monotonic clock.
    """

    def __init__(self, config: ArbitrageConfig, venue: str, start_ns: int) -> None:
        context = multiprocessing.get_context("fork")
        self.venue = venue
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_sim_child, args=(config, venue, start_ns, child), daemon=True)
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


class _Simulator:
    """The simulated venues, one child process each (Gate.io, MEXC); the engine attaches by URL."""

    def __init__(self, config: ArbitrageConfig) -> None:
        start_ns = time.monotonic_ns() + 200_000_000  # after both children are up
        self.venues: dict[str, _SimProcess] = {}
        try:
            for venue in ("gateio", "mexc"):
                self.venues[venue] = _SimProcess(config, venue, start_ns)
        except BaseException:
            self.close()
            raise
        first = self.venues["gateio"].endpoints
        self.endpoints = SimEndpoints(
            venues={venue: sim.endpoints.venues[venue] for venue, sim in self.venues.items()},
            api_key=first.api_key, api_secret=first.api_secret,
        )

    def close(self) -> None:
        for sim in self.venues.values():
            sim.close()


# Which of the first two usable cores each process gets (see the module docstring).
CORES = {"engine": 0, "gateio": 1, "mexc": 1}
# Real-time priorities of the venues sharing the simulator core: the higher one preempts the other.
PRIORITIES = {"gateio": 1, "mexc": 2}


VENUE_SPIN = os.environ.get("ARB_TICK_VENUE_SPIN", "1") != "0"


@contextlib.contextmanager
def _venue_core_awake() -> Iterator[bool]:
    """An idle-priority process spinning on the venues' core while the block runs (see the module
    docstring); yields whether one runs."""
    core = _core("gateio")
    if core is None or not VENUE_SPIN or not hasattr(os, "SCHED_IDLE"):
        yield False
        return
    spinner = multiprocessing.get_context("fork").Process(target=_spin, args=(core,), daemon=True)
    spinner.start()
    try:
        yield True
    finally:
        spinner.kill()
        spinner.join()


@contextlib.contextmanager
def _cores_arranged() -> Iterator[bool]:
    """This process pinned to the engine's core (its affinity put back after) and the venues' core
    kept awake while the block runs; yields whether that core is kept awake."""
    core = _core("engine")
    affinity = os.sched_getaffinity(0) if core is not None else None
    try:
        with _venue_core_awake() as awake:
            if core is not None:
                os.sched_setaffinity(0, core)
            yield awake
    finally:
        if affinity is not None:
            os.sched_setaffinity(0, affinity)


def _spin(core: set[int]) -> None:
    os.sched_setaffinity(0, core)
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except OSError:
        return  # at normal priority it would take the venues' time rather than only their idle time
    while True:
        pass


def _core(process: str) -> set[int] | None:
    """The core ``process`` is pinned to; None when fewer than two cores are usable (nothing is pinned)."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    cores = sorted(os.sched_getaffinity(0))
    return {cores[CORES[process]]} if len(cores) >= 2 else None


def _sim_child(config: ArbitrageConfig, venue: str, start_ns: int, conn: Connection) -> None:
    core = _core(venue)
    if core is not None:
        os.sched_setaffinity(0, core)
        # A venue runs when its bytes arrive, whatever the engine is doing on the core (where allowed).
        with contextlib.suppress(AttributeError, PermissionError, OSError):
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(PRIORITIES[venue]))
    loop = new_event_loop()
    try:
        loop.run_until_complete(_serve_sim(config, venue, start_ns, conn))
    finally:
        loop.close()
        conn.close()


async def _serve_sim(config: ArbitrageConfig, venue: str, start_ns: int, conn: Connection) -> None:
    cluster = _cluster(config, start_ns)
    async with cluster:
        exchanges: dict[ExchangeName, SimExchange] = {}
        for sim_venue in cluster.venues.values():
            for name, exchange in sim_venue.exchanges.items():
                if not name.is_futures:
                    exchanges[name] = exchange
                    exchange.deposit(MAKER, "USDT", "10000000")
                    exchange.deposit(MAKER, "BTC", "1000")
        stamps = cluster.venues[venue].stamps
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
                    conn.send(_rest_maker_order(exchanges, venue, message[1]))
                else:
                    _, n, where, update_id, client_ids = message
                    conn.send(_finish(exchanges[where], venue, stamps, n, where, update_id, client_ids))
            except Exception as exc:  # reported to the parent, which raises it
                conn.send(exc)

        loop = asyncio.get_running_loop()
        loop.add_reader(conn.fileno(), command)
        conn.send(cluster.endpoints())
        try:
            await stopped
        finally:
            loop.remove_reader(conn.fileno())


def _maker_market(n: int) -> ExchangeName:
    """Where event ``n``'s maker order rests: Gate.io on even events, MEXC on odd ones."""
    return ExchangeName.GATEIO if n % 2 == 0 else ExchangeName.MEXC


def _rest_maker_order(exchanges: dict[ExchangeName, SimExchange], venue: str, n: int) -> tuple[ExchangeName, int]:
    """Rest the maker order of event ``n`` (alternating venue and side); its market and book update id."""
    symbol = "BTC/USDT"
    gate, mexc = exchanges[ExchangeName.GATEIO].engines[symbol], exchanges[ExchangeName.MEXC].engines[symbol]
    where = _maker_market(n)
    if where.venue != venue:
        raise RuntimeError(f"event {n}: the maker order belongs to {where.value}, not to {venue}")
    # Gate.io quotes below MEXC, by less than the fees; the maker's order closes the rest of the gap.
    # The other venue's book is this process's copy, moved by the same feed in step with the real one.
    if where is ExchangeName.GATEIO:
        side = OrderSide.SELL
        price = mexc.instrument.ticks_to_price(mexc.book.best_bid_price()) * (1 - EDGE)
    else:
        side = OrderSide.BUY
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
    exchange: SimExchange, venue: str, stamps: LatencyStamps, n: int, where: ExchangeName, update_id: int,
    client_ids: list[tuple[ExchangeName, str]],
) -> tuple[int | None, dict[str, int | None]]:
    """What this venue saw of event ``n``: the push stamp (None: not its push) and the receive stamps of
    its legs; withdraws what is left of the maker order."""
    symbol = "BTC/USDT"
    pushed = None
    if where.venue == venue:
        pushed = stamps.push_ns(where, symbol, update_id)
        if any(o.client_id == f"mm{n}" for o in exchange.engines[symbol].open_orders(MAKER)):
            exchange.cancel_order(MAKER, symbol, time.monotonic_ns(), client_id=f"mm{n}")
    received = {cid: _received(stamps, cid) for market, cid in client_ids if market.venue == venue}
    return pushed, received


class _Breakdown:
    """Stamps, on the shared monotonic clock, where each event is along the engine's path.

    Each point is the first time its call runs in the event: the socket read that brought the
    frame (``BookSync.on_message``'s ``recv_ns``), the scan that found the opportunity, the trade
    loop taking it, the risk check done, planning, the intents journaled, and each venue's
    order written (``_WriteStamps``). With the simulator's push and receipt stamps they give the
    steps from push to the later order's receipt.
    """

    STEPS = (
        "push", "receive", "found", "trade loop", "risk checked", "plan start", "planned", "intents start",
        "intents recorded", "first send", "second send", "last receipt",
    )

    def __init__(self) -> None:
        self.stamps: dict[str, int] = {}
        self.events: list[dict[str, int]] = []
        self._recv_ns = 0
        self._rehearsing = False  # a rehearsal between events plans too: its calls are not the event's

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from arb.exchanges.book_sync import BookSync
        from arb.execution import TwoLegExecutor
        from arb.journal import Journal
        from arb.pipeline import ScannerPipeline
        from arb.risk import RiskManager

        on_message, handle_scan = BookSync.on_message, ScannerPipeline.handle_scan

        def receiving(sync: Any, payload: Any, is_binary: bool, last_in_buffer: bool, recv_ns: int) -> None:
            self._recv_ns = recv_ns
            on_message(sync, payload, is_binary, last_in_buffer, recv_ns)

        def scanning(pipeline: Any, *args: Any) -> Any:
            found = handle_scan(pipeline, *args)
            if found is not None and "found" not in self.stamps:
                self.stamps["receive"] = self._recv_ns
                self._mark("found")
            return found

        rehearse = TwoLegExecutor.rehearse

        def rehearsing(executor: Any, *args: Any) -> bool:
            self._rehearsing = True
            try:
                return rehearse(executor, *args)
            finally:
                self._rehearsing = False

        monkeypatch.setattr(BookSync, "on_message", receiving)
        monkeypatch.setattr(ScannerPipeline, "handle_scan", scanning)
        monkeypatch.setattr(TwoLegExecutor, "rehearse", rehearsing)
        self._around(monkeypatch, ArbitrageController, "_process_locked", "trade loop", None, awaited=True)
        self._around(monkeypatch, RiskManager, "validate_opportunity_risk", None, "risk checked")
        self._around(monkeypatch, TwoLegExecutor, "plan", "plan start", "planned")
        self._around(monkeypatch, Journal, "record_intents", "intents start", "intents recorded")

    def _mark(self, point: str) -> None:
        if point not in self.stamps and not self._rehearsing:
            self.stamps[point] = time.monotonic_ns()

    def _around(
        self, monkeypatch: pytest.MonkeyPatch, owner: type, name: str, before: str | None, after: str | None,
        awaited: bool = False,
    ) -> None:
        function, mark = getattr(owner, name), self._mark

        if awaited:
            async def stamped_async(*args: Any, **kwargs: Any) -> Any:
                if before is not None:
                    mark(before)
                return await function(*args, **kwargs)

            monkeypatch.setattr(owner, name, stamped_async)
            return

        def stamped(*args: Any, **kwargs: Any) -> Any:
            if before is not None:
                mark(before)
            result = function(*args, **kwargs)
            if after is not None:
                mark(after)
            return result

        monkeypatch.setattr(owner, name, stamped)

    def start(self) -> None:
        self.stamps = {}

    def finish(self, pushed: int, sends: list[int], receipts: list[int]) -> None:
        stamps = self.stamps
        sends = sorted(sends)
        if len(sends) == 2 and all(step in stamps for step in self.STEPS[1:9]):
            self.events.append({**stamps, "push": pushed, "first send": sends[0], "second send": sends[1],
                                "last receipt": max(receipts)})

    def report(self) -> str:
        lines = [f"  breakdown over {len(self.events)} events (p50 / p90 / p99 of each step):"]
        if not self.events:
            return lines[0] + " none had every point stamped"
        for start, end in zip(self.STEPS, self.STEPS[1:]):
            steps = [event[end] - event[start] for event in self.events]
            lines.append(f"    {start:>17} -> {end:<17} " + " ".join(_us(_percentile(steps, p)) for p in (50, 90, 99)))
        return "\n".join(lines)


class _WriteStamps:
    """When the engine wrote each venue's order of an event: the first Gate.io websocket
    ``send_text`` and the first MEXC request written on an HTTP/1.1 connection of the event,
    each stamped when the call returns (the socket write done)."""

    def __init__(self) -> None:
        self.stamps: dict[str, int] = {}

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from arb.exchanges.http1 import _Connection
        from arb.exchanges.ws import WsSession

        stamps = self.stamps
        send_text, send = WsSession.send_text, _Connection.send

        def sending_text(session: Any, *args: Any) -> Any:
            result = send_text(session, *args)
            stamps.setdefault("gateio", time.monotonic_ns())
            return result

        def sending(connection: Any, *args: Any) -> Any:
            result = send(connection, *args)
            stamps.setdefault("mexc", time.monotonic_ns())
            return result

        monkeypatch.setattr(WsSession, "send_text", sending_text)
        monkeypatch.setattr(_Connection, "send", sending)


class TickToOrder:
    """Runs ``events`` dislocations through a dry-run controller; collects per-event latencies."""

    def __init__(self, tmp: Path, events: int) -> None:
        path = tmp / "arb.toml"
        path.write_text(CONFIG)
        environ = {"ARB_JOURNAL_PATH": str(tmp / "journal.sqlite3")}
        for variable in ("ARB_BUSY_POLL", "ARB_REHEARSAL_INTERVAL_MS"):  # engine settings, to compare
            if variable in os.environ:
                environ[variable] = os.environ[variable]
        self.manager = ConfigurationManager(path, environ=environ)
        self.manager.load_configuration(dry_run=True)
        self.events = events
        self.tick_to_order_ns: list[int] = []
        self.tick_to_written_ns: list[int] = []
        self.stages: dict[str, tuple[int, int, int]] = {}
        self.completed = 0
        self.recovered = 0  # measured executions with a recovery order (a leg that did not fill in full)
        self.writes = _WriteStamps()
        self._phase = random.Random(1)
        self._next_event = 0.0  # time.monotonic() before which the next event is not injected
        self.breakdown: _Breakdown | None = None

    async def run(self, sim: _Simulator) -> None:
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
            self.tick_to_written_ns.clear()
            self.recovered = 0
            if self.breakdown is not None:
                self.breakdown.events.clear()
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

    async def _event(self, controller: ArbitrageController, sim: _Simulator, n: int) -> None:
        for market, connector in controller.connectors.items():
            while (wait_s := connector.order_wait_s(market_symbols(market, ["BTC/USDT"])[0], ENTRY_ORDER_BUDGET)) > 0:
                await asyncio.sleep(wait_s)
        if (wait_s := self._next_event - time.monotonic()) > 0:
            await asyncio.sleep(wait_s)
        # Then a random point of the feed's update cycle: events paced by a fixed period (or by the
        # budget's window) come back at the same point of it, and one that met a feed update
        # inside the venues' matching hold would meet it again and again (or never).
        await asyncio.sleep(self._phase.uniform(0.0, 0.01))
        self._next_event = time.monotonic() + EVENT_INTERVAL_S
        before = controller.result_count
        # Not waited for: the engine's loop stays free for the frame the maker order pushes.
        maker = sim.venues[_maker_market(n).venue]
        self.writes.stamps.clear()
        if self.breakdown is not None:
            self.breakdown.start()
        maker.send("event", n)
        deadline = time.monotonic() + 1.0  # by the clock: uvloop rounds sub-ms sleeps down to 0
        while controller.result_count <= before:
            if time.monotonic() > deadline:
                pipeline = controller.pipeline
                raise RuntimeError(
                    f"event {n}: no execution within 1 s (scans {pipeline and pipeline.scans}, found "
                    f"{pipeline and pipeline.found}, dropped {pipeline and pipeline.dropped_after_rounding}, "
                    f"risk {controller.risk and controller.risk.get_risk_statistics().rejections})"
                )
            await asyncio.sleep(0.0005)
        where, update_id = maker.recv()
        execution = controller.results[-1]
        if len(execution.legs) > 2:
            self.recovered += 1
        # Idle again (balance refresh done) before the next event; the child withdraws what the engine left.
        await asyncio.sleep(0.002)
        legs = [(leg.exchange, leg.client_order_id) for leg in execution.legs[:2]]
        pushed: int | None = None
        received: dict[str, int | None] = {}
        for venue in sim.venues.values():
            venue.send("finish", n, where, update_id, legs)
        for venue in sim.venues.values():
            push, seen = venue.recv()
            pushed = push if push is not None else pushed
            received.update(seen)
        stamps = [r for r in (received.get(cid) for _, cid in legs) if r is not None]
        writes = list(self.writes.stamps.values())
        if pushed is not None and len(stamps) == 2 and len(writes) == 2:
            self.tick_to_order_ns.append(max(stamps) - pushed)
            self.tick_to_written_ns.append(max(writes) - pushed)
            if self.breakdown is not None:
                self.breakdown.finish(pushed, writes, stamps)


def _report(run: TickToOrder) -> str:
    lines = [f"tick to order over loopback, {len(run.tick_to_order_ns)} events ({run.completed} completed, "
             f"{run.recovered} with a leg recovered):"]
    for what, values in (("both received", run.tick_to_order_ns), ("both written", run.tick_to_written_ns)):
        lines.append(f"  {what:<13}  p50 {_us(_percentile(values, 50))}  p99 {_us(_percentile(values, 99))}  "
                     f"mean {_us(statistics.fmean(values))}")
    for stage, (count, p50, p99) in run.stages.items():
        lines.append(f"  stage {stage:<10} n={count:<6} p50 {_us(p50)}  p99 {_us(p99)}")
    if run.breakdown is not None:
        lines.append(run.breakdown.report())
    return "\n".join(lines)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = new_event_loop()
    yield loop
    loop.close()


@pytest.mark.benchmark(group="tick-to-order")
def test_tick_to_order_engine(
    benchmark: Any, tmp_path: Path, loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Engine: frame -> book -> scan -> risk -> journal -> both IOC orders received by the simulator."""
    run = TickToOrder(tmp_path, EVENTS)
    run.writes.install(monkeypatch)
    if os.environ.get("ARB_TICK_BREAKDOWN") == "1":
        run.breakdown = _Breakdown()
        run.breakdown.install(monkeypatch)
    sim = _Simulator(run.manager.config)  # forked before the engine's loop runs
    try:
        with _cores_arranged() as awake:
            benchmark.pedantic(lambda: loop.run_until_complete(run.run(sim)), rounds=1, iterations=1)
    finally:
        sim.close()
    print("\n" + _report(run) + f"\n  venues' core kept awake: {'yes' if awake else 'no'}; "
          f"engine busy poll: {'yes' if run.manager.config.busy_poll else 'no'}")
    benchmark.extra_info.update(
        events=len(run.tick_to_order_ns),
        recovered=run.recovered,
        p50_us=_percentile(run.tick_to_order_ns, 50) / 1000,
        p99_us=_percentile(run.tick_to_order_ns, 99) / 1000,
        written_p50_us=_percentile(run.tick_to_written_ns, 50) / 1000,
        written_p99_us=_percentile(run.tick_to_written_ns, 99) / 1000,
        stages_us={k: (v[1] / 1000, v[2] / 1000) for k, v in run.stages.items()},
    )
    assert len(run.tick_to_order_ns) >= EVENTS * 0.99
    assert run.completed >= EVENTS * 0.99
    if run.breakdown is not None:
        assert len(run.breakdown.events) >= EVENTS * 0.9


# --- the transport floor ----------------------------------------------------------------------

FLOOR_ROUNDS = 20_000
FRAME = b'{"channel":"spot.order_book_update","result":{"s":"BTC_USDT","U":1,"u":1,"b":[["1","1"]]}}'
ORDER = b'{"channel":"spot.order_place","payload":{"text":"t-1","side":"buy","amount":"0.0002"}}'


class _FloorVenue(asyncio.Protocol):
    """The venue side: writes ``FRAME`` on demand, stamps the answer when its bytes arrive."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.answered: asyncio.Future[int] | None = None
        self.connected = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio.Transport subclasses
        self.connected.set_result(None)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        if self.answered is not None and not self.answered.done():
            self.answered.set_result(now)

    async def round_trip(self) -> tuple[int, int]:
        """``(push stamp, receipt stamp)`` of one frame and its answer."""
        if self.transport is None:
            raise RuntimeError("the engine side never connected")
        self.answered = asyncio.get_running_loop().create_future()
        pushed = time.monotonic_ns()
        self.transport.write(FRAME)
        return pushed, await self.answered


class _Reflex(asyncio.Protocol):
    """The engine side: answers every frame at once, and stamps each answer written."""

    def __init__(self) -> None:
        self.written: list[int] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.transport.write(ORDER)
        self.written.append(time.monotonic_ns())


def _floor_venue(port_conn: Connection, rounds: int) -> None:
    core = _core("mexc")
    if core is not None:
        os.sched_setaffinity(0, core)
        with contextlib.suppress(AttributeError, PermissionError, OSError):
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(PRIORITIES["mexc"]))
    loop = new_event_loop()

    async def serve() -> list[tuple[int, int]]:
        venue = _FloorVenue()
        server = await asyncio.get_running_loop().create_server(lambda: venue, "127.0.0.1", 0)
        port_conn.send(server.sockets[0].getsockname()[1])
        await venue.connected
        samples = []
        for n in range(WARMUP * 10 + rounds):
            sample = await venue.round_trip()
            if n >= WARMUP * 10:
                samples.append(sample)
            await asyncio.sleep(0.001)  # paced like the engine run's events: each frame finds both sides idle
        server.close()
        return samples

    try:
        port_conn.send(loop.run_until_complete(serve()))
    finally:
        loop.close()
        port_conn.close()


@pytest.mark.benchmark(group="tick-to-order")
def test_tick_to_order_floor(benchmark: Any, loop: asyncio.AbstractEventLoop) -> None:
    """Baseline: a frame and its immediate answer over loopback TCP, on the engine's and a venue's cores."""
    context = multiprocessing.get_context("fork")
    conn, child = context.Pipe()
    process = context.Process(target=_floor_venue, args=(child, FLOOR_ROUNDS), daemon=True)
    process.start()
    child.close()
    stamps: list[tuple[int, int]] = []  # (pushed, received) of each counted round trip
    written: list[int] = []  # the engine side's write stamp of every answer, warm-up included

    async def reflex() -> None:
        polling = asyncio.ensure_future(_busy_poll()) if BUSY_POLL else None
        port = conn.recv()
        transport, reflex = await asyncio.get_running_loop().create_connection(_Reflex, "127.0.0.1", port)
        while not conn.poll():
            await asyncio.sleep(0.01)
        stamps.extend(conn.recv())
        written.extend(reflex.written)
        transport.close()
        if polling is not None:
            polling.cancel()

    try:
        with _cores_arranged() as awake:
            benchmark.pedantic(lambda: loop.run_until_complete(reflex()), rounds=1, iterations=1)
    finally:
        process.join(10)
        conn.close()
    assert len(stamps) == FLOOR_ROUNDS and len(written) == WARMUP * 10 + FLOOR_ROUNDS
    samples = [received - pushed for pushed, received in stamps]
    to_written = [w - pushed for (pushed, _), w in zip(stamps, written[WARMUP * 10:])]
    p50, p99 = _percentile(samples, 50), _percentile(samples, 99)
    w50, w99 = _percentile(to_written, 50), _percentile(to_written, 99)
    print(f"\ntransport floor over loopback, {len(samples)} round trips:\n"
          f"  answer received  p50 {_us(p50)}  p99 {_us(p99)}\n  answer written   p50 {_us(w50)}  p99 {_us(w99)}\n"
          f"  venue's core kept awake: {'yes' if awake else 'no'}; engine busy poll: {'yes' if BUSY_POLL else 'no'}")
    benchmark.extra_info.update(
        events=len(samples), p50_us=p50 / 1000, p99_us=p99 / 1000, written_p50_us=w50 / 1000,
        written_p99_us=w99 / 1000,
    )
    # One clock across the processes (the write stamp, taken when the write returns, may follow the receipt).
    assert all(pushed < w and pushed < received for (pushed, received), w in zip(stamps, written[WARMUP * 10:]))
