"""Backtest: a recording replayed through the live engine, on virtual time, with simulated fills.

Nothing about detection, risk or execution is written twice: ``backtest`` runs the real
``ArbitrageController`` (scanner pipeline, risk manager, two-leg executor, recovery,
balance monitor, journal) over ``BacktestConnector``\\s. Each connector is the venue's own
``ExchangeConnector`` (same dialect, same compiled decoders, same ``BookSync``) whose
websocket is the recording: every recorded message goes to ``BookSync.on_message`` with its
recorded receive time, and every recorded REST snapshot answers the book's snapshot fetch,
in recording order. Orders never leave the process: a connector fills them with
``arb.sim.matching`` against the replayed book as it stands when the order arrives
(decision time + the ``LatencyModel``'s delay for that market).

Time is virtual. The controller runs on a ``VirtualTimeLoop``: an asyncio loop whose
clock is the recording's receive clock and which, instead of sleeping, jumps to its next
timer. Trade loop timeouts, balance refreshes, order latency and shutdown timeouts all run
on recording time, and every component that takes a clock gets the same virtual one, so a
backtest of the same files with the same configuration gives the same result. A stretch with
no record longer than ``GAP_WALK_NS`` (recordings of different days, merged) is walked timer
by timer for its first ``GAP_WALK_NS`` only, then crossed in one step: the engine's periodic
work (status, balance reads, hedge checks) runs once at its end rather than once per tick of
the gap, which over days of it would take hours.

Speed: a recording of the recorder's own format replays on a compiled record loop
(``arb_core.replay.RecordLoop``): it walks the decompressed blocks, routes each websocket
message straight into its book (``BookRouter.route_c``) and scans in C, and hands back to
Python exactly where the per-record Python feed (``_feed``, still used for cryptofeed
files and merged recordings, and with ``BacktestSettings(compiled=False)``) would do
something else: a REST record, a frame the router leaves to ``BookSync``, an opportunity,
a wait on the event loop. Both take the same decisions.

Decisions taken: each recorded message counts as the last of its socket read (the recorder
does not keep read boundaries), so the scanner runs after every message; an order fills
against the replayed book as it is at the order's arrival (an immediate-or-cancel order
takes the levels of its side up to its limit directly; any other order, or any order while
one of ours rests, has the whole book mirrored into the matching engine first), so our own
earlier fills are forgotten unless the recording shows them (it does for recordings of the simulator, which
publishes them); books finer than the order grid (Gate spot) are rounded against us (asks
up, bids down). A damaged recording is replayed up to the damage, which the result reports.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import random
import selectors
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import msgspec

from arb_core import replay as compiled
from arb_core.book import ASK, BID, BookError, OrderBook
from arb_core.replay import BlockSurvey, RecordLoop
from arb_core.router import DIALECT_NONE
from arb_core.wire.common import WireError, WireScale

from ..balances import BalanceMonitor
from ..config import ConfigurationManager
from ..controller import RECOVERY_LOSS_FRACTION, ArbitrageController, RunSummary
from ..errors import ArbitrageEngineError, ExchangeError, OrderRejectedError
from ..exchanges.base import BookKey, BookSink, MarketDataTap
from ..exchanges.book_sync import BookSpec, BookSync, BookSyncStats
from ..exchanges.connector import ExchangeConnector
from ..exchanges.errors import ErrorCategory
from ..exchanges.factory import ExchangeFactory, registered
from ..exchanges.models import (
    Balance,
    ConnectionHealth,
    FundingPayment,
    OrderRequest,
    OrderState,
    OrderType,
    Position,
    TimeInForce,
)
from ..exchanges.rest import RateLimiter
from ..execution import TwoLegExecutor
from ..instruments import Instrument, InstrumentCatalog, split_symbol, unified_symbol
from ..journal import Journal
from ..pipeline import ScannerPipeline
from ..recovery import RecoveryManager
from ..risk import RiskManager
from ..secrets import ApiCredentials, Secret
from ..shutdown import stop_signals_cancel
from ..sim.cluster import SimConfig, default_instruments
from ..sim.matching import MatchingEngine, OrderEvent, OrderRejected, SimExchange, from_atoms
from ..types import ArbitrageConfig, ArbitrageOpportunity, ExchangeName, ExecutionResult, OpportunityType, OrderSide
from .reader import Record, RecordingDamaged, RecordingReader, read_records
from .recorder import MARKET_CODES, RecordKind
from .report import LoggingMonitor, ReportData, TradeLog, report_data

log = logging.getLogger(__name__)

USER = "backtest"
_IDLE_MARGIN_S = 1e-6
_POLL_INTERVAL_NS = 1_000_000
# Loop times (s since the start) below this have float steps of at most 1 ns (2**23 s, ~97 days).
_NS_EXACT_S = float(2**23)
GAP_WALK_NS = 60 * 1_000_000_000  # the part of a gap between records the loop walks timer by timer
PROGRESS_MIN_RECORDS = 20_000  # a progress bar only for files that take a moment
_PROGRESS_RECORDS = 10_000  # the compiled loop's records between progress bar updates
_MARKETS = {code: market for market, code in MARKET_CODES.items()}
_ROUTE_ERRORS = (BookError, WireError, ValueError, OverflowError)
_IMMEDIATE = (TimeInForce.IOC, TimeInForce.FOK)  # orders that never rest: they meet only their reach
_ZERO = Decimal(0)
_REACH_LEVELS = 2  # book levels first read for an order's reach (then 4x more while all are within)


# --- virtual time ------------------------------------------------------------------------


class VirtualClock:
    """Monotonic ns of the recording; the loop advances it, the player sets it per record."""

    __slots__ = ("now_ns", "wall_offset_ns")

    def __init__(self, now_ns: int = 0, wall_offset_ns: int = 0) -> None:
        self.now_ns = now_ns
        self.wall_offset_ns = wall_offset_ns  # wall - monotonic, from the recording

    def __call__(self) -> int:
        return self.now_ns

    def wall_ns(self) -> int:
        """The recording's wall clock at the current virtual time."""
        return self.now_ns + self.wall_offset_ns

    def advance_to(self, ns: int) -> None:
        """Move forward to ``ns`` (never backward)."""
        if ns > self.now_ns:
            self.now_ns = ns


class _VirtualSelector(selectors.BaseSelector):
    """Polls the real selector without blocking; where the loop would wait for its next
    timer, the virtual clock jumps there instead."""

    def __init__(self, clock: VirtualClock) -> None:
        self._real = selectors.DefaultSelector()
        self._clock = clock
        self._polled_ns = 0

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        # Only other threads and signals reach the real selector in a backtest: poll it at
        # most once per real millisecond, not on each of the loop's many virtual steps.
        now = time.monotonic_ns()
        if timeout is None or now - self._polled_ns >= _POLL_INTERVAL_NS:
            self._polled_ns = now
            events = self._real.select(0)
            if events:
                return events
        if timeout is not None and timeout <= 0:
            return []
        if timeout is None:
            # Nothing scheduled: only a real event (another thread) can wake the loop.
            return self._real.select(None)
        self._clock.advance_to(self._clock.now_ns + max(1, math.ceil(timeout * 1e9)))
        return []

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio loop on ``clock``: ``time()`` is virtual and idle waits take no real time."""

    _clock_resolution: float  # asyncio's, set by its __init__ (see ``time``)

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        # Seconds since the start: small floats keep ns resolution (a recording's wall-clock
        # ns as float seconds would be coarser than the timers scheduled on them).
        self._origin_ns = clock.now_ns
        super().__init__(_VirtualSelector(clock))

    def time(self) -> float:
        now = (self.clock.now_ns - self._origin_ns) / 1e9
        if now > _NS_EXACT_S:
            # asyncio runs a timer once its time < time() + _clock_resolution (1 ns). Past ~97
            # days from the start a float's step is wider than 1 ns; soon the sum rounds back to
            # time(), and a timer due now would never run: the loop would spin on it.
            self._clock_resolution = max(self._clock_resolution, 2 * math.ulp(now))
        return now

    @property
    def origin_ns(self) -> int:
        """Clock ns of loop time 0."""
        return self._origin_ns

    def exposes_queues(self) -> bool:
        """Whether asyncio's ready queue and timer heap are readable (``queues``)."""
        return getattr(self, "_ready", None) is not None and getattr(self, "_scheduled", None) is not None

    def queues(self) -> tuple[Sized, list[asyncio.TimerHandle]]:
        """asyncio's ready callbacks and timer heap (the objects ``idle_until`` reads)."""
        ready: Sized = getattr(self, "_ready")
        timers: list[asyncio.TimerHandle] = getattr(self, "_scheduled")
        return ready, timers

    def idle_until(self, ns: int) -> bool:
        """Whether nothing is ready to run and no timer falls due up to ``ns`` (clock ns): the
        loop would then only move its clock there."""
        # asyncio's own queues (BaseEventLoop); without them, never idle: the loop decides.
        ready = getattr(self, "_ready", None)
        timers = getattr(self, "_scheduled", None)
        if ready is None or timers is None or ready:
            return False
        # The margin keeps timers due at (about) ``ns`` on the loop, where their order is the heap's.
        return not timers or timers[0].when() > (ns - self._origin_ns) / 1e9 + _IDLE_MARGIN_S


# --- configuration and results ------------------------------------------------------------


class LatencyModel(msgspec.Struct, frozen=True, kw_only=True):
    """Delay from an order decision to its arrival at the venue, per market (ns)."""

    default_ns: int = 0
    per_market: dict[ExchangeName, int] = {}

    def __post_init__(self) -> None:
        if self.default_ns < 0 or any(v < 0 for v in self.per_market.values()):
            raise ValueError(f"LatencyModel: delays must be >= 0 ns, got {self.default_ns} and {self.per_market}")

    def delay_ns(self, market: ExchangeName) -> int:
        """The delay of an order sent to ``market``."""
        return self.per_market.get(market, self.default_ns)

    @classmethod
    def fixed_ms(cls, ms: Decimal | float | int) -> LatencyModel:
        """The same delay on every market."""
        return cls(default_ns=int(Decimal(str(ms)) * 1_000_000))


class BacktestSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How to replay: latency, starting balances per asset on every market, read batching, progress bar.

    ``batch_window_ns``: the recorder keeps no socket-read boundaries, so a market's messages
    received within this of the first count as one read: handled back to back (the engine's
    other tasks run only after the batch), each market's book scanned once at the batch's end.

    ``compiled``: replay one recording of the recorder's format with the compiled record
    loop (``arb_core.replay``); False feeds every record through Python, the reference path
    (always used for cryptofeed files and several recordings merged by time). Both take the
    same decisions.

    ``order_budgets``: each market's client-side order budget, on the recording's clock, as
    a live run applies it: an opportunity is passed up while either venue's budget could not
    take its leg and a recovery order, and a recovery order waits for its budget (Gate.io
    spot takes 10 orders in any second). False trades every opportunity the books show, an
    upper bound that no venue's rate limits would allow.
    """

    latency: LatencyModel = LatencyModel()
    batch_window_ns: int = 200_000
    deposits: dict[str, Decimal] = msgspec.field(default_factory=lambda: dict(SimConfig().deposits))
    progress: bool = False
    compiled: bool = True
    order_budgets: bool = True


class ExecutedOrder(msgspec.Struct, frozen=True, kw_only=True):
    """One order the backtest sent, as the venue saw it."""

    market: ExchangeName
    symbol: str
    side: str
    price: Decimal | None
    quantity: Decimal
    filled: Decimal
    time_ns: int


class BacktestResult(msgspec.Struct, kw_only=True):
    """What a backtest replayed and what the engine did."""

    files: list[str]
    records: int
    markets: list[ExchangeName]
    symbols: list[str]  # traded (scanned) symbols; empty when the books were only replayed
    instruments: dict[ExchangeName, str]  # where each market's instruments came from
    start_ns: int
    end_ns: int
    wall_s: float
    damages: list[RecordingDamaged]  # every damaged recording, each replayed up to its damage
    # Every recorded instrument list that does not parse, with its market, of the markets left on the
    # simulator's terms for it (one that another recorded list of the market stands in for is a note).
    instrument_errors: list[str]
    books: dict[str, BookSyncStats]  # "market symbol" -> counters
    orders: list[ExecutedOrder]
    opportunities: list[ArbitrageOpportunity]  # every one the scanner handed to the engine
    results: list[ExecutionResult]
    summary: RunSummary | None
    report: ReportData | None
    notes: list[str]

    @property
    def damage(self) -> RecordingDamaged | None:
        """The first damage found (None: every recording was replayed to its end)."""
        return self.damages[0] if self.damages else None

    @property
    def executed_opportunities(self) -> list[ArbitrageOpportunity]:
        """The opportunity of each execution, in execution order."""
        by_id = {o.opportunity_id: o for o in self.opportunities}
        return [by_id[r.opportunity_id] for r in self.results if r.opportunity_id in by_id]

    @property
    def records_per_s(self) -> float:
        """Replay speed (records per real second)."""
        return self.records / self.wall_s if self.wall_s > 0 else 0.0

    def lines(self) -> list[str]:
        """The result as printable lines."""
        out = [
            f"arb backtest: {self.records} records from {len(self.files)} file(s) in {self.wall_s:.2f} s "
            f"({self.records_per_s:,.0f} records/s), {(self.end_ns - self.start_ns) / 1e9:.3f} s of market time",
            f"  markets {', '.join(m.value for m in self.markets) or '-'}; traded symbols {', '.join(self.symbols) or 'none'}",
        ]
        out += [f"  instruments of {m.value}: {source}" for m, source in self.instruments.items()]
        in_sync = sum(1 for s in self.books.values() if s.snapshots)
        out.append(f"  books {len(self.books)}, synchronised {in_sync}, orders sent {len(self.orders)}")
        if self.summary is not None:
            out += self.summary.lines()
        out += [f"  note: {note}" for note in self.notes]
        out += [f"  RECORDING DAMAGED, replayed up to the damage: {damage}" for damage in self.damages]
        out += [f"  RECORDED INSTRUMENT LIST UNREADABLE: {error}" for error in self.instrument_errors]
        return out


# --- the venue side -------------------------------------------------------------------------


class _RecordedSnapshots:
    """REST snapshots in recording order: a fetch takes the next recorded one of its symbol,
    waiting for the replay to reach it when none is pending."""

    def __init__(self) -> None:
        self._ready: dict[str, deque[bytes]] = {}
        self._waiting: dict[str, asyncio.Future[bytes]] = {}

    async def fetch(self, venue_symbol: str) -> bytes:
        ready = self._ready.get(venue_symbol)
        if ready:
            return ready.popleft()
        waiter: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[venue_symbol] = waiter
        return await waiter

    def offer(self, venue_symbol: str, body: bytes) -> None:
        waiter = self._waiting.pop(venue_symbol, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(body)
        else:
            self._ready.setdefault(venue_symbol, deque()).append(body)


class BacktestConnector(ExchangeConnector):
    """A market replayed from a recording: the venue's dialect and ``BookSync`` for books, the
    simulator's matching engine for orders (use ``connector_class`` for a market's subclass)."""

    binding: ClassVar[Any]
    _KNOWN_DECIMALS: ClassVar[int] = 4096  # Decimals kept per kind (and symbol) before starting over

    def __init__(
        self, catalog: InstrumentCatalog, clock: VirtualClock, latency_ns: int, deposits: Mapping[str, Decimal],
        orders: list[ExecutedOrder], order_budgets: bool = True,
    ) -> None:
        super().__init__(credentials=ApiCredentials(Secret(USER), Secret(USER)))
        self.catalog = catalog
        self._clock = clock
        self._order_budgets = order_budgets
        venue = self.rest.venue
        self.rest.limiter = RateLimiter(venue.name, venue.rate_limits, clock=lambda: clock.now_ns / 1e9)
        self._latency_s = latency_ns / 1e9
        self._snapshots = _RecordedSnapshots()
        self._orders_log = orders
        self.messages = 0
        self.sink: BookSink | None = None  # what the running books report to
        self._last_stats: dict[str, BookSyncStats] = {}
        self._ratios: dict[str, tuple[WireScale, tuple[int, int, int, int]]] = {}  # grid ratios per book scale
        # Decimals already worked out, per symbol with the instrument they are of: sizes by lots,
        # prices by ticks, average prices by (quote atoms, lots) filled. Orders repeat them.
        self._decimals: dict[
            str, tuple[Instrument, dict[int, Decimal], dict[int, Decimal], dict[tuple[int, int], Decimal]]
        ] = {}
        self._fee_decimals: dict[int, Decimal] = {}  # fees by atoms
        self._balances: dict[str, tuple[tuple[int, int], Balance]] = {}  # the last Balance per asset, by its atoms
        self.venue_sim = SimExchange(self.exchange, list(catalog), events=False)
        for asset, amount in deposits.items():
            self.venue_sim.deposit(USER, asset, amount)

    # --- market data -------------------------------------------------------------------

    async def instruments(self) -> InstrumentCatalog:
        """The recording's (or the simulator's) instruments."""
        return self.catalog

    async def reload_instruments(self) -> InstrumentCatalog:
        return self.catalog

    async def load_account_fees(self, symbols: Sequence[str] | None = None) -> InstrumentCatalog:
        return self.catalog

    async def start_books(
        self, symbols: Sequence[str], sink: BookSink | None = None, *, tap: MarketDataTap | None = None
    ) -> None:
        """Keep the books of ``symbols`` from the replayed messages (``tap`` is not supported)."""
        if self._sync is not None:
            raise ExchangeError(self.venue, "books already started; call stop_books() first")
        specs = []
        for symbol in symbols:
            instrument = self.catalog.get(symbol)
            scale = self.dialect.book_scale(instrument)
            self._scales[symbol] = scale
            specs.append(BookSpec(symbol, instrument.venue_symbol, scale))
        self.sink = sink or _NullSink()
        self._sync = BookSync(
            self.exchange, self.dialect, specs, self.sink, fetch_snapshot=self._snapshots.fetch,
            settings=self.settings.book_sync, clock=self._clock,
            # Seeded: a retried snapshot's jittered wait picks the recorded snapshot the book comes
            # in sync from, and one recording gives one result.
            rng=random.Random(self.exchange.value),
        )

    async def stop_books(self) -> None:
        sync, self._sync = self._sync, None
        if sync is not None:
            self._last_stats = sync.stats()
            await sync.close()

    def book_stats(self) -> dict[str, BookSyncStats]:
        """Per-book counters of the running books, or of the last ones stopped."""
        return self._sync.stats() if self._sync is not None else dict(self._last_stats)

    def feed(self, record: Record, last_in_buffer: bool = True) -> None:
        """Replay one record (a websocket message, a REST snapshot, a stream drop) at the current virtual time."""
        sync = self._sync
        if sync is None:
            return
        kind = record.kind
        if kind is RecordKind.WS_TEXT or kind is RecordKind.WS_BINARY:
            self.messages += 1
            sync.on_message(memoryview(record.payload), kind is RecordKind.WS_BINARY, last_in_buffer, record.recv_ns)
        elif kind is RecordKind.REST_SNAPSHOT:
            self._snapshots.offer(record.venue_symbol, record.payload)
        elif kind is RecordKind.DISCONNECT:
            sync.on_disconnected()

    def health(self) -> ConnectionHealth:
        return ConnectionHealth(
            venue=self.venue, url="recording", connected=self._sync is not None, connects=1, reconnects=0,
            messages=self.messages, last_message_age_ns=None, errors={},
        )

    def order_wait_s(self, symbol: str, orders: int = 1) -> float:
        """The live budget's wait on the recording's clock (0 without ``order_budgets``)."""
        return super().order_wait_s(symbol, orders) if self._order_budgets else 0.0

    # --- trading on the matching engine ---------------------------------------------------

    async def balances(self) -> Mapping[str, Balance]:
        # Balances are read after every execution, which moves one or two assets: the others keep
        # their last Balance, and a changed one the Decimal of an unchanged half (mostly locked).
        known = self._balances
        balances: dict[str, Balance] = {}
        for asset, atoms in self.venue_sim.balance_atoms(USER).items():
            last = known.get(asset)
            if last is None:
                balance = Balance(asset=asset, free=from_atoms(atoms[0]), locked=from_atoms(atoms[1]))
                known[asset] = (atoms, balance)
            elif last[0] != atoms:
                had, was = last
                balance = Balance(
                    asset=asset, free=was.free if had[0] == atoms[0] else from_atoms(atoms[0]),
                    locked=was.locked if had[1] == atoms[1] else from_atoms(atoms[1]),
                )
                known[asset] = (atoms, balance)
            else:
                balance = last[1]
            balances[asset] = balance
        return balances

    def write_order(self, request: OrderRequest) -> None:
        """None: a replayed order reaches its venue after the modelled latency (``place_order``)."""
        return None

    @property
    def order_acceptance_s(self) -> float:
        """0: a replayed order is taken when it reaches its venue, or never."""
        return 0.0

    async def clock_skew_ms(self) -> float:
        """0 (nothing is asked): the replay runs on the recording's clock, which stands for the venue's."""
        self.clock_skew = 0.0
        return 0.0

    def rehearse_order(self, request: OrderRequest) -> None:
        """Nothing to encode: a replayed order is never written."""

    async def place_order(self, request: OrderRequest) -> OrderState:
        """Fill ``request`` against the replayed book as it is when the order arrives."""
        if self._order_budgets:
            await self.spend_order_budget(request.symbol)  # spent on sending, as live
        await asyncio.sleep(self._latency_s)
        now = self._clock.now_ns
        engine = self._engine(request.symbol)
        try:
            size_lots = engine.size_lots(request.quantity)
            price_ticks = 0 if request.price is None else engine.price_ticks(request.price)
            if (
                request.type is OrderType.LIMIT and request.time_in_force in _IMMEDIATE and not request.reduce_only
                and not engine.has_resting_orders
            ):
                # An immediate limit meets only its side of the book up to its limit (nothing when
                # the book is out of sync): it takes that, without mirroring the book into the engine.
                replayed = self._replayed(engine)
                reach = {} if replayed is None else _reachable_levels(
                    replayed[0], ASK if request.side is OrderSide.BUY else BID, replayed[1], price_ticks
                )
                result = engine.take(
                    USER, request.side, size_lots, price_ticks, reach, now,
                    time_in_force=request.time_in_force, client_id=request.client_order_id,
                )
            else:
                self._mirror(engine, now)
                result = self.venue_sim.place_order(
                    USER, request.symbol, request.side, request.type, size_lots, now, price_ticks=price_ticks,
                    time_in_force=request.time_in_force, client_id=request.client_order_id,
                    reduce_only=request.reduce_only,
                )
        except OrderRejected as exc:
            raise OrderRejectedError(self.venue, str(exc), category=exc.category) from None
        state = self._state(result.order, engine.instrument)
        self._orders_log.append(
            ExecutedOrder(
                market=self.venue_sim.exchange, symbol=request.symbol, side=request.side._value_,
                price=request.price, quantity=request.quantity, filled=state.filled_quantity, time_ns=now,
            )
        )
        return state

    async def cancel_order(
        self, symbol: str, *, order_id: str | None = None, client_order_id: str | None = None
    ) -> OrderState:
        try:
            event, _ = self.venue_sim.cancel_order(
                USER, symbol, self._clock(), order_id=None if order_id is None else int(order_id),
                client_id=client_order_id,
            )
        except OrderRejected as exc:
            raise OrderRejectedError(self.venue, str(exc), category=exc.category) from None
        return self._state(event)

    async def query_order(
        self, symbol: str, *, order_id: str | None = None, client_order_id: str | None = None,
        sent_at_ms: int | None = None,
    ) -> OrderState:
        engine = self._engine(symbol)
        event = (
            engine.order(int(order_id)) if order_id is not None
            else engine.order_by_client_id(USER, client_order_id or "")
        )
        if event is None:
            raise ExchangeError(self.venue, f"order {order_id or client_order_id!r} not found",
                                category=ErrorCategory.UNKNOWN_ORDER)
        return self._state(event)

    async def open_orders(self, symbol: str | None = None) -> Sequence[OrderState]:
        return [self._state(event) for event in self.venue_sim.open_orders(USER, symbol)]

    async def funding_payments(self, since_ms: int) -> Sequence[FundingPayment]:
        """None: a recording has no funding history, so a backtest settles none."""
        return []

    async def positions(self) -> Sequence[Position]:
        if not self.exchange.is_futures:
            return []
        out = []
        for symbol in self.venue_sim.engines:
            contracts, entry, _, _ = self.venue_sim.position(USER, symbol)
            if contracts:
                out.append(Position(symbol=symbol, size=Decimal(contracts) * self.catalog.get(symbol).lot_size,
                                    entry_price=entry or Decimal(0)))
        return out

    async def close(self) -> None:
        await self.stop_books()

    def _engine(self, symbol: str) -> MatchingEngine:
        engine = self.venue_sim.engines.get(symbol)
        if engine is None:
            raise ExchangeError(self.venue, f"no instrument {symbol!r} in this backtest",
                                category=ErrorCategory.INVALID_REQUEST)
        return engine

    def _mirror(self, engine: MatchingEngine, now_ns: int) -> None:
        """Make the engine's market liquidity the replayed book, converted to the order grid."""
        replayed = self._replayed(engine)
        if replayed is None:
            engine.set_market_levels({}, {}, now_ns)
            return
        book, ratios = replayed
        engine.set_market_levels(
            _order_levels(book.top(BID, book.bid_count), BID, ratios),
            _order_levels(book.top(ASK, book.ask_count), ASK, ratios),
            now_ns,
        )

    def _replayed(self, engine: MatchingEngine) -> tuple[OrderBook, tuple[int, int, int, int]] | None:
        """The in-sync replayed book of ``engine``'s symbol and its grid ratios (``_grid_ratios``)."""
        symbol = engine.symbol
        sync = self._sync  # (books(), without the call)
        book = None if sync is None else sync.books.get(symbol)
        scale = self._scales.get(symbol)
        if book is None or scale is None or not book.in_sync:
            return None
        cached = self._ratios.get(symbol)
        if cached is None or cached[0] is not scale:
            cached = self._ratios[symbol] = (scale, _grid_ratios(scale, engine.instrument.wire_scale()))
        return book, cached[1]

    def _state(self, event: OrderEvent, instrument: Instrument | None = None) -> OrderState:
        """``event`` as an OrderState; ``instrument`` is the symbol's, when the caller has it at hand."""
        if instrument is None:
            instrument = self.catalog.get(event.symbol)
        known = self._decimals.get(event.symbol)
        if known is None or known[0] is not instrument:
            known = self._decimals[event.symbol] = (instrument, {}, {}, {})
        _, sizes, prices, averages = known
        quantity = sizes.get(event.size_lots)
        if quantity is None:
            quantity = self._remember(sizes, event.size_lots, instrument.lots_to_size(event.size_lots))
        filled = quantity if event.filled_lots == event.size_lots else sizes.get(event.filled_lots)
        if filled is None:
            filled = self._remember(sizes, event.filled_lots, instrument.lots_to_size(event.filled_lots))
        average = None
        if event.filled_lots:
            fill_key = (event.filled_quote_atoms, event.filled_lots)
            average = averages.get(fill_key)
            if average is None:
                average = from_atoms(event.filled_quote_atoms) / (filled * instrument.contract_size)
                self._remember(averages, fill_key, average)
        price = None
        if event.price_ticks:
            price = prices.get(event.price_ticks)
            if price is None:
                price = self._remember(prices, event.price_ticks, instrument.ticks_to_price(event.price_ticks))
        fee, asset = _ZERO, None
        if event.fee_asset:  # the order has fills: the fees they paid so far
            asset = event.fee_asset
            known_fee = self._fee_decimals.get(event.fee_atoms)
            fee = known_fee if known_fee is not None else self._remember(
                self._fee_decimals, event.fee_atoms, from_atoms(event.fee_atoms)
            )
        return OrderState(
            symbol=event.symbol, order_id=str(event.order_id), client_order_id=event.client_id, side=event.side,
            type=event.order_type, status=event.status,
            quantity=quantity,
            price=price,
            filled_quantity=filled, average_price=average, fee=fee, fee_asset=asset,
            updated_at_ms=(event.time_ns + self._clock.wall_offset_ns) // 1_000_000,
        )

    def _remember(self, known: dict[Any, Decimal], key: Any, value: Decimal) -> Decimal:
        """``value``, kept in ``known`` under ``key`` (which starts over when full)."""
        if len(known) >= self._KNOWN_DECIMALS:
            known.clear()
        known[key] = value
        return value


class _NullSink:
    def on_book_update(self, key: Any) -> None:
        pass

    def on_batch_end(self) -> None:
        pass

    def on_book_state(self, key: Any, in_sync: bool, reason: str) -> None:
        pass


def _grid_ratios(book: WireScale, order: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """``(price_num, price_den, size_num, size_den)``: order ticks = book ticks * num / den, likewise lots."""
    price_decimals, tick_units, size_decimals, lot_units = order
    p = max(book.price_decimals, price_decimals)
    s = max(book.size_decimals, size_decimals)
    price_num, price_den = book.tick_units * 10 ** (p - book.price_decimals), tick_units * 10 ** (p - price_decimals)
    size_num, size_den = book.lot_units * 10 ** (s - book.size_decimals), lot_units * 10 ** (s - size_decimals)
    price_gcd, size_gcd = math.gcd(price_num, price_den), math.gcd(size_num, size_den)
    return price_num // price_gcd, price_den // price_gcd, size_num // size_gcd, size_den // size_gcd


def _reachable_levels(
    book: OrderBook, side: int, ratios: tuple[int, int, int, int], through_ticks: int
) -> dict[int, int]:
    """The levels of ``side`` up to ``through_ticks`` (order grid), as ``_order_levels`` gives them
    for the whole side: the book's best levels are read until one lies beyond the limit."""
    price_num, price_den = ratios[0], ratios[1]
    # The limit in book ticks: an ask converts (rounded up) to at most ``through_ticks`` exactly
    # when its book price is at most this, a bid (rounded down) to at least it when at least this.
    # Prices only worsen away from the best, so the levels within are a prefix of the side.
    n = _REACH_LEVELS
    if side == ASK:
        limit = through_ticks * price_den // price_num
        levels = book.top(ASK, n)
        while len(levels) == n and levels[-1][0] <= limit:
            n *= 4
            levels = book.top(ASK, n)
        within = len(levels)
        while within and levels[within - 1][0] > limit:
            within -= 1
    else:
        limit = -(-through_ticks * price_den // price_num)
        levels = book.top(BID, n)
        while len(levels) == n and levels[-1][0] >= limit:
            n *= 4
            levels = book.top(BID, n)
        within = len(levels)
        while within and levels[within - 1][0] < limit:
            within -= 1
    return _order_levels(levels if within == len(levels) else levels[:within], side, ratios)


def _order_levels(levels: list[tuple[int, int]], side: int, ratios: tuple[int, int, int, int]) -> dict[int, int]:
    """Book levels (best first) as ``{order ticks: order lots}``, best first: asks rounded up,
    bids down (against us), levels merged where they round to one tick, less than a lot dropped."""
    if not levels:
        return {}
    price_num, price_den, size_num, size_den = ratios
    # Best first: the lowest price is the last bid or the first ask.
    if price_num == price_den and (levels[-1] if side == BID else levels[0])[0] > 0:
        if size_num == size_den:
            return dict(levels)  # book ticks and lots are order ticks and lots
        return {price: size * size_num // size_den for price, size in levels if size * size_num >= size_den}
    units: dict[int, int] = {}
    get = units.get
    if side == ASK:
        for price, size in levels:
            ticks = -(-price * price_num // price_den)
            if ticks > 0:
                units[ticks] = get(ticks, 0) + size * size_num
    else:
        for price, size in levels:
            ticks = price * price_num // price_den
            if ticks > 0:
                units[ticks] = get(ticks, 0) + size * size_num
    return {ticks: size // size_den for ticks, size in units.items() if size >= size_den}


_CLASSES: dict[ExchangeName, type[BacktestConnector]] = {}


def connector_class(market: ExchangeName) -> type[BacktestConnector]:
    """The backtest connector of ``market``: ``BacktestConnector`` with the venue's binding."""
    cls = _CLASSES.get(market)
    if cls is None:
        live = registered().get(market)
        if live is None:
            raise ExchangeError(market.value, "no connector is registered for this market")
        # No private stream: orders fill in process and balances are read from the matching engine.
        binding = msgspec.structs.replace(live.binding, private_stream=None)
        cls = _CLASSES[market] = type(f"Backtest{live.__name__}", (BacktestConnector,), {"binding": binding})
    return cls


class BacktestFactory(ExchangeFactory):
    """Hands the controller the backtest connectors of the markets the recording holds."""

    def __init__(self, manager: ConfigurationManager, connectors: Mapping[ExchangeName, BacktestConnector]) -> None:
        super().__init__(manager)
        self.connectors = dict(connectors)

    async def create_exchanges(
        self, names: Iterable[ExchangeName | str] | None = None, dry_run: bool | None = None, *, paper: bool = False
    ) -> dict[ExchangeName, ExchangeConnector]:
        wanted = None if names is None else {ExchangeName(n) for n in names}
        return {m: c for m, c in self.connectors.items() if wanted is None or m in wanted}

    async def close_all(self) -> None:
        for connector in self.connectors.values():
            await connector.close()


# --- the recording --------------------------------------------------------------------------


class _Survey(msgspec.Struct, kw_only=True):
    """A first pass over the files: markets, symbols, instrument lists, first record, count."""

    records: int = 0
    first: Record | None = None
    last_ns: int = 0
    venue_symbols: dict[ExchangeName, set[str]] = {}
    instrument_bodies: dict[ExchangeName, list[bytes]] = {}


def _survey(files: Sequence[str | Path], compiled: bool = True) -> _Survey:
    reader = read_records(*files, engine_frames_only=True)
    if compiled and reader.single_native():
        return _survey_blocks(reader)
    survey = _Survey()
    for record in reader:
        survey.records += 1
        if survey.first is None:
            survey.first = record
        survey.last_ns = record.recv_ns
        if record.kind is RecordKind.REST_RESPONSE:
            survey.instrument_bodies.setdefault(record.market, []).append(record.payload)
        elif record.venue_symbol:
            survey.venue_symbols.setdefault(record.market, set()).add(record.venue_symbol)
    return survey


def _survey_blocks(reader: RecordingReader) -> _Survey:
    """The survey of a native recording from its block summaries; only the first block and
    blocks holding REST responses are decompressed (and walked in C). A version 1 recording
    has no summaries: every block is decompressed and walked."""
    blocks = BlockSurvey()
    records = last_ns = 0
    symbols: set[tuple[int, bytes]] = set()
    for block in reader.surveyed_blocks(lambda summary: blocks.first is None or summary.responses > 0):
        records += block.records
        if block.raw is not None:
            blocks.add(block.raw, block.records)
            last_ns = blocks.last_ns
        elif block.summary is not None:
            last_ns = block.summary.last_ns
            symbols.update(block.summary.symbols)
    survey = _Survey(records=records, last_ns=last_ns)
    if blocks.first is not None:
        survey.first = _record(blocks.first)
    for code, payload in blocks.responses:
        survey.instrument_bodies.setdefault(_MARKETS[code], []).append(payload)
    for code, venue_symbol in symbols | blocks.symbols:
        survey.venue_symbols.setdefault(_MARKETS[code], set()).add(venue_symbol.decode("ascii"))
    return survey


def _record(fields: tuple[int, int, int, int, bytes, bytes]) -> Record:
    recv_ns, wall_ns, code, kind, venue_symbol, payload = fields
    return Record(recv_ns, wall_ns, _MARKETS[code], RecordKind(kind), venue_symbol.decode("ascii"), payload)




def _catalog(market: ExchangeName, bodies: Sequence[bytes]) -> tuple[InstrumentCatalog, str, list[str], bool]:
    """``market``'s instruments as recorded, where they came from, why each recorded list that
    does not parse (a venue's error body, a cut list) does not, and whether no recorded list gave
    them (the simulator's defaults). Merged recordings may each list other pairs (a session of
    other symbols, a pair listed since): every pair listed in any of them is known, by its
    earliest listing."""
    parse = connector_class(market).binding.endpoints.parse_instruments
    catalogs = []
    errors = []
    for body in bodies:
        try:
            catalog = parse(body)
        except (ValueError, TypeError, msgspec.DecodeError, ArbitrageEngineError) as exc:
            errors.append(f"{market.value}: {exc}")
            continue
        if catalog.exchange is market:
            catalogs.append(catalog)
    if len(catalogs) == 1:
        return catalogs[0], "recorded instrument list", errors, False
    if catalogs:
        chosen: dict[str, Instrument] = {}
        names: set[str] = set()
        for catalog in catalogs:
            for instrument in catalog:
                if instrument.venue_symbol not in chosen and instrument.symbol not in names:
                    chosen[instrument.venue_symbol] = instrument
                    names.add(instrument.symbol)
        skipped = {pair.venue_symbol: pair for c in catalogs for pair in c.skipped if pair.venue_symbol not in chosen}
        source = f"{len(catalogs)} recorded instrument lists (each pair by its earliest listing)"
        return InstrumentCatalog(market, chosen.values(), skipped.values()), source, errors, False
    instruments = [i for i in default_instruments() if i.exchange is market]
    why = "the recorded instrument list does not parse" if errors else "the files given list none"
    return InstrumentCatalog(market, instruments, ()), f"simulator defaults ({why})", errors, True


def _chosen_symbols(manager: ConfigurationManager) -> list[str] | None:
    """The configured symbols when chosen, by a config file or ``ARB_SYMBOLS``; None when they are
    the shipped defaults (a backtest then trades every recorded symbol)."""
    return list(manager.config.symbols) if manager.chosen("engine.symbols") else None


def _tradable(symbols: Mapping[ExchangeName, set[str]], types: frozenset[OpportunityType]) -> list[str]:
    """Spot-form symbols recorded on markets the scanner can pair."""
    markets_of: dict[str, list[ExchangeName]] = {}
    for market, names in symbols.items():
        for name in names:
            base, quote, _ = split_symbol(name)
            markets_of.setdefault(unified_symbol(base, quote, None), []).append(market)
    out = []
    for symbol, markets in sorted(markets_of.items()):
        spot = sum(1 for m in markets if not m.is_futures)
        futures = len(markets) - spot
        pairs = (OpportunityType.SPOT_SPOT in types and spot >= 2) or (
            OpportunityType.SPOT_FUTURES_HEDGE in types and spot >= 1 and futures >= 1
        )
        if pairs:
            out.append(symbol)
    return out


# --- the driver -----------------------------------------------------------------------------


def backtest(
    files: Sequence[str | Path], manager: ConfigurationManager, settings: BacktestSettings | None = None
) -> BacktestResult:
    """Replay ``files`` through the engine configured by ``manager`` (loaded); deterministic.

    SIGINT or SIGTERM interrupts it: no result, ``KeyboardInterrupt`` or ``shutdown.Terminated``
    raised (``stop_signals_cancel``); the engine takes no signal of its own (no kill switch)."""
    settings = settings or BacktestSettings()
    survey = _survey(files, settings.compiled)
    start_ns = survey.first.recv_ns if survey.first is not None else 0
    clock = VirtualClock(start_ns, survey.first.wall_ns - start_ns if survey.first is not None else 0)
    loop = VirtualTimeLoop(clock)
    started = time.perf_counter()
    # The replay keeps many of the objects it makes (results, orders, report samples), which
    # sets off full collections that would walk the whole heap the caller built before it,
    # again and again on long files. Frozen, that heap is left out (unless the caller froze
    # objects of its own: freezing is process-wide, so it is then left as it is).
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    replay = loop.create_task(_replay(files, manager, settings, survey, clock))
    try:
        with stop_signals_cancel(replay):
            result = loop.run_until_complete(replay)
    except BaseException:  # stopped by a signal, or failed: the engine's tasks end rather than linger
        _end_tasks(loop)
        raise
    finally:
        loop.close()
        if freeze:
            gc.unfreeze()
    result.wall_s = time.perf_counter() - started
    return result


def _end_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the tasks left on ``loop`` and wait for them to end (their outcomes taken)."""
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:  # gather() of nothing would make its future on another loop
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


async def _replay(
    files: Sequence[str | Path], manager: ConfigurationManager, settings: BacktestSettings, survey: _Survey,
    clock: VirtualClock,
) -> BacktestResult:
    config = manager.config
    notes: list[str] = []
    catalogs: dict[ExchangeName, InstrumentCatalog] = {}
    sources: dict[ExchangeName, str] = {}
    symbols: dict[ExchangeName, set[str]] = {}
    instrument_errors: list[str] = []
    for market in sorted(survey.venue_symbols, key=lambda m: m.value):
        catalog, sources[market], errors, defaulted = _catalog(market, survey.instrument_bodies.get(market, ()))
        known = set()
        unknown = False
        for venue_symbol in sorted(survey.venue_symbols[market]):
            try:
                known.add(catalog.by_venue_symbol(venue_symbol).symbol)
            except ArbitrageEngineError:
                unknown = True
                notes.append(f"{market.value} {venue_symbol}: no instrument known, its messages are skipped")
        if unknown or defaulted:
            # Traded by no recorded terms, or the unreadable list may have named the pairs left out: fails.
            instrument_errors += errors
        else:  # merged recordings: another of the market's lists parsed and names every pair recorded
            notes += [f"recorded instrument list unreadable, another list of the market used: {e}" for e in errors]
        if known:
            catalogs[market], symbols[market] = catalog, known
    orders: list[ExecutedOrder] = []
    connectors = {
        market: connector_class(market)(
            catalogs[market], clock, settings.latency.delay_ns(market), settings.deposits, orders,
            settings.order_budgets,
        )
        for market in catalogs
    }
    # Only the markets a run of this configuration connects and can send orders to make a pair
    # (MEXC futures are market data only); the others' books still replay.
    configured = set(config.traded_markets)
    trading = {m: names for m, names in symbols.items() if m in configured and connectors[m].can_trade}
    idle = [
        f"{m.value}: {'market data only' if m in configured else 'not traded by the configuration'}"
        for m in sorted(set(symbols) - set(trading), key=lambda m: m.value)
    ]
    wanted = _chosen_symbols(manager)
    pairable = _tradable(trading, frozenset(config.opportunity_types))
    traded = pairable if wanted is None else [symbol for symbol in pairable if symbol in wanted]
    log_ = TradeLog()
    controller = None
    if traded:
        funded = {a for a, v in settings.deposits.items() if v}
        unfunded = sorted({symbol.split("/")[0] for symbol in traded} - funded)
        if unfunded:
            notes.append(
                f"the account holds no {', '.join(unfunded)}: no sell of it on spot finds inventory "
                "(give it with `backtest --deposit ASSET=AMOUNT`)"
            )
        unpaid = sorted({symbol.split("/")[1] for symbol in traded} - funded)
        if unpaid:
            notes.append(
                f"the account holds no {', '.join(unpaid)}: no buy finds it to pay with, nor a futures leg its margin "
                "(give it with `backtest --deposit ASSET=AMOUNT`)"
            )
        if OpportunityType.SPOT_FUTURES_HEDGE in config.opportunity_types and config.hedge_holding_horizon_s:
            notes.append("expected funding is not modelled: hedges are decided on the basis net of fees alone")
        controller = _controller(manager, config, traded, connectors, catalogs, clock, log_)
        await controller.initialize(dry_run=True)
        controller.mode = "backtest"
        log_.attach(controller)
    # Books of markets or symbols the engine does not trade still replay (and are reported).
    for market, connector in connectors.items():
        if connector.book_sync() is None:
            await connector.start_books(sorted(symbols[market]))
    runner = None
    sampler = None
    if controller is not None:
        runner = asyncio.get_running_loop().create_task(controller.run())
        if controller.pipeline is not None:
            sampler = asyncio.get_running_loop().create_task(log_.sample_spreads_every(controller.pipeline))
    elif wanted is not None and pairable:
        notes.append(
            f"the configured symbols ({', '.join(wanted)}) are not among the recorded ones the scanner "
            f"can pair ({', '.join(pairable)}): books replayed only"
        )
    else:
        why = f" ({'; '.join(idle)})" if idle else ""
        notes.append(f"no symbol is recorded on two markets the scanner can pair{why}: books replayed only")
    reader = read_records(*files, engine_frames_only=True)
    progress = settings.progress and survey.records >= PROGRESS_MIN_RECORDS
    with _progress(progress, survey.records) as advance:
        pipeline = controller.pipeline if controller is not None else None
        loop = _record_loop(connectors, clock, settings.batch_window_ns, pipeline) if settings.compiled else None
        if loop is not None and reader.single_native():
            count = await _feed_blocks(reader.blocks(), loop, connectors, clock, advance, pipeline, progress)
        else:
            count = await _feed(reader, connectors, clock, advance, settings.batch_window_ns)
    damages = list(reader.damages)
    summary = None
    if runner is not None and controller is not None:
        if sampler is not None:
            sampler.cancel()
        controller.shutdown_manager.request_shutdown("recording ended")
        summary = await runner
    for connector in connectors.values():
        await connector.stop_books()
    books = {
        f"{market.value} {symbol}": stats
        for market, connector in connectors.items()
        for symbol, stats in connector.book_stats().items()
    }
    notes += reader.later_starts
    notes += [f"recording damaged, replayed up to the damage: {damage}" for damage in damages]
    notes += [f"recorded instrument list unreadable, not traded by it: {error}" for error in instrument_errors]
    report = None
    if controller is not None and summary is not None:
        report = report_data(
            "arb backtest: " + ", ".join(Path(f).name for f in files), summary, log_, controller.monitor,
            start_ns=survey.first.recv_ns if survey.first is not None else 0, notes=notes,
        )
    return BacktestResult(
        files=[str(f) for f in files], records=count, markets=sorted(connectors, key=lambda m: m.value),
        symbols=traded, instruments=sources, start_ns=survey.first.recv_ns if survey.first is not None else 0,
        end_ns=clock.now_ns, wall_s=0.0, damages=damages, instrument_errors=instrument_errors, books=books,
        orders=orders,
        opportunities=log_.opportunities, results=controller.results if controller is not None else [], summary=summary,
        report=report, notes=notes,
    )


def _controller(
    manager: ConfigurationManager, config: ArbitrageConfig, traded: list[str],
    connectors: Mapping[ExchangeName, BacktestConnector], catalogs: Mapping[ExchangeName, InstrumentCatalog],
    clock: VirtualClock, log_: TradeLog,
) -> ArbitrageController:
    """The live controller, its clocked parts given explicitly (it builds the rest itself)."""
    # Recordings carry no funding-rate history, so the backtest decides hedges without funding.
    # Busy polling would keep virtual time from ever advancing: the loop moves its clock only
    # when it has nothing to run. Rehearsals only warm the CPU's caches: in virtual time they are work
    # with no effect.
    config = msgspec.structs.replace(
        config, symbols=tuple(traded), hedge_holding_horizon_s=0, busy_poll=False, rehearsal_interval_ms=0
    )
    limits = config.risk_limits
    journal = Journal(":memory:", synchronous="NORMAL", wall_clock_ms=lambda: clock.wall_ns() // 1_000_000)
    monitor = LoggingMonitor(config.target_execution_time_ms, log_, clock=clock)
    recovery = RecoveryManager(
        connectors, max_loss_quote=limits.max_position_size_usd * RECOVERY_LOSS_FRACTION, journal=journal, clock=clock,
        automatic=config.enable_recovery_mode,
    )
    controller = ArbitrageController(
        manager,
        factory=BacktestFactory(manager, connectors),
        risk=RiskManager(
            limits, enable_risk_checks=config.enable_risk_checks, enable_circuit_breakers=config.enable_circuit_breakers,
            clock=clock, wall_clock=clock.wall_ns,
        ),
        executor=TwoLegExecutor(connectors, catalogs, recovery=recovery, journal=journal, monitor=monitor, clock=clock),
        recovery=recovery,
        monitor=monitor,
        journal=journal,
        balances=BalanceMonitor(
            {m: c for m, c in connectors.items() if c.can_trade}, refresh_interval_ms=config.balance_refresh_interval_ms
        ),
        pipeline=ScannerPipeline(
            max_data_age_ms=config.max_data_age_ms, opportunity_types=config.opportunity_types,
            min_profit_bps=limits.min_profit_margin_bps, max_position_usd=limits.max_position_size_usd,
            id_prefix="bt", clock=clock,
        ),
        results_kept=None,  # the report shows every execution
        watch_accounts=False,  # the in-process venues hold what the books record
        operator_signals=False,  # a stop interrupts the backtest (its caller's), not a run's end to report
        clock=clock,
        wall_clock=clock.wall_ns,
    )
    controller.config = config
    return controller


async def _feed(
    reader: Iterable[Record], connectors: Mapping[ExchangeName, BacktestConnector], clock: VirtualClock,
    advance: Callable[[int], None], window_ns: int,
) -> int:
    """Deliver every record at its receive time; between batches the loop runs everything due.

    A batch (one socket read) is a market's run of records within ``window_ns`` of its first.
    The loop gets a turn at a record more than ``window_ns`` after the clock, and at the
    first record of a batch more than ``window_ns`` after its last turn, so a stream that
    never pauses still lets timers and tasks run. Where nothing is ready to run and no timer
    falls due before the record, waiting for it would only move the clock: the records are
    then fed on without a trip through the loop.
    """
    loop = asyncio.get_running_loop()
    idle_until = loop.idle_until if isinstance(loop, VirtualTimeLoop) else None
    feeds = {market: connector.feed for market, connector in connectors.items()}
    count = 0
    records = iter(reader)
    record = next(records, None)
    batch_open, batch_start, turn_at = False, 0, clock.now_ns
    while record is not None:
        following = next(records, None)
        recv_ns = record.recv_ns
        if not batch_open:
            batch_start = recv_ns
        if recv_ns - clock.now_ns > window_ns or (not batch_open and recv_ns - turn_at > window_ns):
            turn_at = recv_ns
            if idle_until is None or not idle_until(recv_ns):
                await _wait_until(clock, recv_ns)
        if recv_ns > clock.now_ns:
            clock.now_ns = recv_ns
        last = (
            following is None or following.market is not record.market or following.recv_ns - batch_start > window_ns
        )
        feed = feeds.get(record.market)
        if feed is not None:
            feed(record, last)
        batch_open = not last
        count += 1
        if not count % 1000:
            advance(1000)
        record = following
    advance(count % 1000)
    # Let an execution that started on the last message finish before shutdown.
    await asyncio.sleep(0)
    return count


async def _wait_until(clock: VirtualClock, ns: int) -> None:
    """Let the loop run everything that falls due until ``ns``: timer by timer for at most
    ``GAP_WALK_NS``, then one step to ``ns``, where every timer passed runs once."""
    if ns - clock.now_ns <= GAP_WALK_NS:
        await asyncio.sleep((ns - clock.now_ns) / 1e9)
        return
    await asyncio.sleep(GAP_WALK_NS / 1e9)
    clock.advance_to(ns)
    await asyncio.sleep(0)


def _record_loop(
    connectors: Mapping[ExchangeName, BacktestConnector], clock: VirtualClock, window_ns: int,
    pipeline: ScannerPipeline | None,
) -> RecordLoop | None:
    """The compiled loop over the running books, or None where it cannot mirror the Python feed
    (not on a ``VirtualTimeLoop``, or a pipeline on another clock)."""
    loop = asyncio.get_running_loop()
    if not isinstance(loop, VirtualTimeLoop) or not loop.exposes_queues():
        return None
    if pipeline is not None and (type(pipeline) is not ScannerPipeline or pipeline.clock is not clock):
        return None
    symbols = max(pipeline.plans, default=-1) + 1 if pipeline is not None else 0
    record_loop = RecordLoop(
        clock, window_ns, loop.origin_ns, _IDLE_MARGIN_S, pipeline, pipeline.scanner if pipeline else None,
        pipeline.max_age_ns if pipeline else 0, symbols,
    )
    for market, code in MARKET_CODES.items():
        connector = connectors.get(market)
        sync = connector.book_sync() if connector is not None else None
        if connector is None or sync is None:
            continue  # the record is only counted
        sink = connector.sink
        if sync.router.dialect == DIALECT_NONE:
            record_loop.add_market(code, compiled.MODE_PYTHON)
        elif type(sink) is _NullSink:
            record_loop.add_market(code, compiled.MODE_BOOKS, sync.router, sync, connector)
        elif pipeline is not None and sink is pipeline:
            slots: list[list[int]] = [[] for _ in sync.books]
            for symbol in sync.books:
                slots[sync.slot_of(symbol)] = list(pipeline._by_key.get(BookKey(market, symbol), ()))
            record_loop.add_market(code, compiled.MODE_SCAN, sync.router, sync, connector, slots)
        else:
            record_loop.add_market(code, compiled.MODE_PYTHON)
    return record_loop


async def _feed_blocks(
    blocks: Iterator[tuple[bytes, int]], record_loop: RecordLoop, connectors: Mapping[ExchangeName, BacktestConnector],
    clock: VirtualClock, advance: Callable[[int], None], pipeline: ScannerPipeline | None, progress: bool,
) -> int:
    """``_feed`` over a native recording's blocks, the records replayed by ``record_loop``.

    Python takes over exactly where the per-record feed would run Python the compiled loop
    cannot mirror: a REST record, a frame the router leaves to ``BookSync``, a router
    exception, an opportunity found, a wait on the event loop.
    """
    loop = asyncio.get_running_loop()
    if not isinstance(loop, VirtualTimeLoop):
        raise TypeError("the compiled record loop runs on a VirtualTimeLoop")
    ready, timers = loop.queues()
    feeds = {market: connector.feed for market, connector in connectors.items()}
    run = record_loop.run
    budget = _PROGRESS_RECORDS if progress else 0
    inf = math.inf
    waited = False
    reported = 0
    while True:
        status = run(bool(ready), timers[0].when() if timers else inf, waited, budget)
        waited = False
        if status == compiled.STOP_NEED_BLOCK:
            block = next(blocks, None)
            if block is None:
                record_loop.push(None, 0)
            else:
                record_loop.push(*block)
        elif status == compiled.STOP_RECORD:
            record = _record(record_loop.record())
            if record.recv_ns > clock.now_ns:
                clock.now_ns = record.recv_ns
            feed = feeds.get(record.market)
            if feed is not None:
                feed(record, record_loop.last_in_buffer)
            record_loop.advance()
        elif status == compiled.STOP_WAIT:
            await _wait_until(clock, record_loop.recv_ns)
            waited = True
            # Where cancelled timers pile up, asyncio replaces its heap with a new list while we
            # wait: a stale one would show a long-gone first timer and stop the loop at every record.
            ready, timers = loop.queues()
        elif status == compiled.STOP_FOUND or status == compiled.STOP_SCAN:
            if pipeline is None:
                raise RuntimeError("the compiled record loop scanned without a pipeline")
            try:
                if status == compiled.STOP_FOUND:
                    pipeline.handle_scan(record_loop.symbol_id, record_loop.found, clock.now_ns)
                else:
                    pipeline.scan(record_loop.symbol_id)
            except Exception:
                # As BookSync does with a batch end that raises: the rest of the batch is not scanned.
                log.exception("%s: batch-end consumer raised", _MARKETS[record_loop.record()[2]].value)
                record_loop.drop_scans()
        elif status == compiled.STOP_ROUTE_ERROR:
            error = record_loop.error
            if error is None:
                raise RuntimeError("the compiled record loop stopped on a router error without one")
            if not isinstance(error, _ROUTE_ERRORS):
                raise error
            _, _, code, _, _, payload = record_loop.record()
            sync = connectors[_MARKETS[code]].book_sync()
            if sync is None:
                raise RuntimeError("the compiled record loop routed a market without books")
            sync.on_route_error(error, memoryview(payload), record_loop.recv_ns)
        elif status == compiled.STOP_END:
            break
        if record_loop.count - reported >= 1000:
            advance(record_loop.count - reported)
            reported = record_loop.count
    advance(record_loop.count - reported)
    # Let an execution that started on the last message finish before shutdown.
    await asyncio.sleep(0)
    return record_loop.count


class _progress:
    """A rich progress bar over the records (or nothing); yields ``advance(n)``."""

    def __init__(self, enabled: bool, total: int) -> None:
        self._enabled = enabled
        self._total = total
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Callable[[int], None]:
        if not self._enabled:
            return _ignore
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(
            TextColumn("backtest"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True
        )
        self._bar.start()
        self._task = self._bar.add_task("records", total=self._total)
        bar, task = self._bar, self._task
        return lambda n: bar.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def _ignore(n: int) -> None:
    pass


__all__ = [
    "BacktestConnector",
    "BacktestResult",
    "BacktestSettings",
    "ExecutedOrder",
    "LatencyModel",
    "VirtualClock",
    "VirtualTimeLoop",
    "backtest",
    "connector_class",
]
