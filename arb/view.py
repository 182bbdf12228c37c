"""What a run shows: a rich live terminal view, JSON event lines, or the plain status line.

``LiveView`` reads the engine's parts and never changes them: the ``PerformanceMonitor``
(counters, stage latencies), the ``RiskManager`` (breakers, exposure, daily PnL), the
``BalanceMonitor``, each connector's health and book counters, the scanner's standing
opportunities and the execution results. ``poll()`` copies what it needs into an immutable
``ViewSnapshot`` on the event loop; rendering works from that snapshot only, in rich's
refresh thread, so the terminal never holds up the trading loop and never reads a live
object from another thread.

Outputs (``choose_output``):

* ``LIVE``, stdout is a terminal: a dashboard refreshed 4 times a second (connections,
  top opportunities, recent executions, PnL and exposure by market, latency p50/p99 per
  stage, circuit breakers, halted markets, positions near their liquidation and residuals
  awaiting an operator's approval). Log lines bound for the terminal print above it.
* ``HEADLESS`` (``run --headless``): one JSON object per line on stdout through the
  ``arb.events`` logger and ``JsonLogFormatter``: ``status`` every second, ``execution``
  for each execution, ``breaker_trip``, ``resync``, ``market_halted``, ``market_resumed``,
  ``near_liquidation``, ``liquidation_cleared``, ``awaiting_approval``, ``approval_cleared``
  and a final ``summary``. Other log
  records stay plain text on stderr.
* ``PLAIN``, stdout is not a terminal: the controller's one-line status every second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Protocol, TextIO

import msgspec
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, JustifyMethod, RenderableType, RenderResult
from rich.live import Live
from rich.logging import RichHandler
from rich.measure import Measurement
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from arb_core.freshness import monotonic_ns

from .errors import ArbitrageEngineError
from .exchanges.base import BookKey
from .exchanges.book_sync import BookSyncStats
from .exchanges.models import Balance, ConnectionHealth
from .monitor import PerformanceMonitor
from .recovery import ActiveRecovery, RecoveryStatus
from .risk import RiskManager
from .throttled_log import ThrottledWarnings
from .types import ArbitrageOpportunity, ArbitrageState, ExchangeName, ExecutionResult, OrderSide

if TYPE_CHECKING:
    from .controller import ArbitrageController, RunSummary

EVENTS_LOGGER = "arb.events"
REFRESH_PER_SECOND = 4.0
TOP_OPPORTUNITIES = 8
RECENT_EXECUTIONS = 10
MILLI = Decimal("0.001")
_events = logging.getLogger(EVENTS_LOGGER)
log = logging.getLogger(__name__)
_CLOSED_OUTPUT = (OSError, ValueError)  # a reader gone (BrokenPipeError), a closed descriptor or file


class Output(str, Enum):
    """Where a run's progress goes."""

    LIVE = "live"
    HEADLESS = "headless"
    PLAIN = "plain"


def choose_output(headless: bool, stream: TextIO | None) -> Output:
    """``HEADLESS`` when asked, else ``LIVE`` on a terminal and ``PLAIN`` otherwise (also when the
    process has no stdout: ``None``)."""
    if headless:
        return Output.HEADLESS
    return Output.LIVE if stream is not None and stream.isatty() else Output.PLAIN


class StatusLines:
    """Writes a run's status lines to a stream; a stream that stops taking them (its reader went
    away, as with ``| head``, or it was closed) silences the output, not the run: the failure is
    logged once and later lines are dropped."""

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream
        self.closed = stream is None

    def __call__(self, line: str) -> None:
        self.write(line)

    def write(self, line: str) -> bool:
        """Write ``line``; whether it was written."""
        if self.closed:
            return False
        try:
            print(line, file=self.stream, flush=True)
        except _CLOSED_OUTPUT as exc:
            self.closed = True
            log.warning("status output closed (%s); the run goes on without showing its status", exc)
            return False
        return True


class _EventsHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """JSON event lines on a stream that, once it fails, stays silent (one warning) rather than
    printing a logging error for every event."""

    failed = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.failed:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        self.failed = True
        log.warning("event output closed (%s); the run goes on without writing events", sys.exc_info()[1])


# --- sources ------------------------------------------------------------------------------


class BookStatsSource(Protocol):
    """A market's book synchroniser (``arb.exchanges.book_sync.BookSync``)."""

    def stats(self) -> Mapping[str, BookSyncStats]:
        """Per-book counters by unified symbol."""


class ConnectionSource(Protocol):
    """One market's connector, as far as the view reads it (``ExchangeConnector``)."""

    def health(self) -> ConnectionHealth:
        """The market-data connection's health."""

    def book_sync(self) -> BookStatsSource | None:
        """The running books' synchroniser, None when stopped."""


class BalanceSource(Protocol):
    """The latest balances (``arb.balances.BalanceMonitor``)."""

    def snapshot(self) -> Mapping[ExchangeName, Mapping[str, Balance]]:
        """Balances by market and asset."""


# --- the snapshot -------------------------------------------------------------------------


class ConnectionRow(msgspec.Struct, frozen=True, kw_only=True):
    """One market's market-data connection and books."""

    market: str
    connected: bool
    message_age_ms: int | None  # None before the first message
    messages: int
    reconnects: int
    resyncs: int
    books_in_sync: int
    books: int


class OpportunityRow(msgspec.Struct, frozen=True, kw_only=True):
    """An opportunity the scanner found on its latest scan of a symbol."""

    symbol: str
    buy: str
    sell: str
    bps: Decimal
    quantity: Decimal
    profit: Decimal
    age_ms: int


class ExecutionRow(msgspec.Struct, frozen=True, kw_only=True):
    """One finished execution."""

    opportunity_id: str
    symbol: str
    state: str
    realized_profit: Decimal
    execution_ms: Decimal
    error: str | None = None


class VenueRow(msgspec.Struct, frozen=True, kw_only=True):
    """Open positions and free quote balance of one market."""

    market: str
    positions: int
    position_usd: Decimal  # signed quantity x entry price, summed: long > 0, short < 0
    free_quote: Decimal | None  # None: balance unknown


class LatencyRow(msgspec.Struct, frozen=True, kw_only=True):
    """One stage's latency percentiles."""

    stage: str
    count: int
    p50_ms: Decimal
    p99_ms: Decimal


class BreakerRow(msgspec.Struct, frozen=True, kw_only=True):
    """One circuit breaker."""

    breaker: str
    tripped: bool
    count: int
    threshold: int
    trips: int
    reason: str | None = None


class HaltRow(msgspec.Struct, frozen=True, kw_only=True):
    """A market not traded: it stopped trading at the venue or changed its rules."""

    market: str
    symbol: str
    reason: str


class LiquidationRow(msgspec.Struct, frozen=True, kw_only=True):
    """A futures position nearer its liquidation than ``min_liquidation_distance_bps``: not grown."""

    market: str
    symbol: str
    distance_bps: Decimal


class ApprovalRow(msgspec.Struct, frozen=True, kw_only=True):
    """An opportunity flagged for manual approval (``RecoveryManager``): an operator must decide."""

    opportunity_id: str
    symbol: str
    residual: Decimal
    reason: str


class ViewSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the view shows, copied at one moment."""

    mode: str
    stopping: str | None  # why shutdown was requested, once it was
    uptime_s: Decimal
    opportunities_detected: int
    opportunities_executed: int
    executions_succeeded: int
    executions_failed: int
    realized_pnl: Decimal
    daily_pnl: Decimal
    daily_funding: Decimal  # settled today, part of ``daily_pnl``
    max_daily_loss: Decimal
    exposure_usd: Decimal
    max_exposure_usd: Decimal
    in_flight_usd: Decimal
    quote_asset: str
    connections: tuple[ConnectionRow, ...]
    opportunities: tuple[OpportunityRow, ...]
    executions: tuple[ExecutionRow, ...]  # newest first
    venues: tuple[VenueRow, ...]
    latencies: tuple[LatencyRow, ...]
    breakers: tuple[BreakerRow, ...]
    halted: tuple[HaltRow, ...] = ()
    near_liquidation: tuple[LiquidationRow, ...] = ()
    awaiting_approval: tuple[ApprovalRow, ...] = ()


class ViewEvent(msgspec.Struct, frozen=True, kw_only=True):
    """Something that happened between two polls: an execution, a breaker trip, a resync."""

    event: str
    message: str
    data: dict[str, object]
    level: int = logging.INFO  # WARNING for what needs a look: a log alert keyed on the level sees it


# --- the view -----------------------------------------------------------------------------


class LiveView:
    """A read-only view over the engine's parts; ``poll()`` snapshots them, ``render()`` draws a snapshot.

    ``opportunities`` returns the scanner's standing opportunities; ``executions(start)``
    returns the execution results from position ``start`` on that are still kept (results are
    only appended; the oldest may be dropped) and the position after the newest;
    ``stopping`` returns why shutdown was requested, None while running.
    """

    def __init__(
        self,
        *,
        monitor: PerformanceMonitor,
        risk: RiskManager,
        connectors: Mapping[ExchangeName, ConnectionSource],
        opportunities: Callable[[], Sequence[ArbitrageOpportunity]],
        executions: Callable[[int], tuple[Sequence[ExecutionResult], int]],
        balances: BalanceSource | None = None,
        halted: Mapping[BookKey, str] | None = None,
        recoveries: Callable[[], Sequence[ActiveRecovery]] | None = None,
        stopping: Callable[[], str | None] | None = None,
        mode: str = "",
        quote_asset: str = "USDT",
        top: int = TOP_OPPORTUNITIES,
        recent: int = RECENT_EXECUTIONS,
        clock: Callable[[], int] = monotonic_ns,
    ) -> None:
        if top < 1 or recent < 1:
            raise ValueError(f"top={top}, recent={recent}: both must be at least 1")
        self.monitor = monitor
        self.risk = risk
        self.connectors = dict(connectors)
        self.balances = balances
        self.halted: Mapping[BookKey, str] = halted if halted is not None else {}
        self._recoveries = recoveries
        self.mode = mode
        self.quote_asset = quote_asset
        self.top = top
        self._opportunities = opportunities
        self._executions = executions
        self._stopping = stopping
        self._clock = clock
        self._view_failures = ThrottledWarnings(log, "live view failures")
        self._seen = 0
        self._recent: deque[ExecutionResult] = deque(maxlen=recent)
        self._trips: dict[str, int] = {}
        self._resyncs: dict[tuple[str, str, str], int] = {}
        self._halts: dict[BookKey, str] = {}
        self._near: set[tuple[ExchangeName, str]] = set()
        self._awaiting: set[str] = set()
        self._latest: ViewSnapshot | None = None

    @classmethod
    def of(cls, controller: ArbitrageController) -> LiveView:
        """The view of an initialized controller."""
        if controller.risk is None or controller.pipeline is None:
            raise ArbitrageEngineError("live view: the controller is not initialized; call initialize() first")
        return cls(
            monitor=controller.monitor,
            risk=controller.risk,
            connectors=controller.connectors,
            opportunities=controller.pipeline.standing_opportunities,
            executions=controller.results_since,
            balances=controller.balances,
            halted=controller.pipeline.halted,
            recoveries=controller.recovery.get_active_recoveries if controller.recovery is not None else None,
            stopping=lambda: controller.shutdown_manager.reason,
            mode=controller.mode,
        )

    @property
    def latest(self) -> ViewSnapshot | None:
        """The snapshot of the last ``poll()``."""
        return self._latest

    def poll(self) -> tuple[ViewSnapshot, list[ViewEvent]]:
        """Snapshot the parts now, with the events since the previous poll.

        What has been reported is moved on only once the whole poll succeeded: a poll that raises
        partway leaves its events to the next one, rather than dropping those it had gathered."""
        now = self._clock()
        events: list[ViewEvent] = []
        new, seen = self._executions(self._seen)
        recent = self._recent.copy()
        recent.extend(new)
        events.extend(_execution_event(result) for result in new)
        trips, resync_totals = dict(self._trips), dict(self._resyncs)

        breakers = []
        for breaker, status in self.risk.get_circuit_breaker_status().items():
            reason = status.trip.reason if status.trip is not None else None
            breakers.append(
                BreakerRow(
                    breaker=breaker.value, tripped=status.tripped, count=status.count, threshold=status.threshold,
                    trips=status.trips, reason=reason,
                )
            )
            if status.trips > trips.get(breaker.value, 0):
                events.append(
                    ViewEvent(
                        event="breaker_trip",
                        message=f"circuit breaker {breaker.value} tripped: {reason or '(already reset)'}",
                        data={"breaker": breaker.value, "reason": reason, "trips": status.trips,
                              "tripped": status.tripped,
                              "tripped_at_ms": status.trip.tripped_at_ms if status.trip is not None else None},
                        level=logging.WARNING,
                    )
                )
            trips[breaker.value] = status.trips

        halts = dict(self.halted)
        for halted, reason in halts.items():
            if self._halts.get(halted) != reason:
                events.append(
                    ViewEvent(
                        event="market_halted",
                        message=f"{halted.exchange.value} {halted.symbol}: not traded any more: {reason}",
                        data={"market": halted.exchange.value, "symbol": halted.symbol, "reason": reason},
                        level=logging.WARNING,
                    )
                )
        for resumed in self._halts.keys() - halts.keys():
            events.append(
                ViewEvent(
                    event="market_resumed", message=f"{resumed.exchange.value} {resumed.symbol}: traded again",
                    data={"market": resumed.exchange.value, "symbol": resumed.symbol},
                )
            )

        # In the risk manager's order (by market, then pair), as the rows show them.
        near = {key: bps for key, (bps, under) in self.risk.liquidation_distances().items() if under}
        for market, symbol in near.keys() - self._near:
            events.append(
                ViewEvent(
                    event="near_liquidation",
                    message=f"{market.value} {symbol}: {near[(market, symbol)]} bps from its liquidation: not grown",
                    data={"market": market.value, "symbol": symbol, "distance_bps": near[(market, symbol)]},
                    level=logging.WARNING,
                )
            )
        for market, symbol in self._near - near.keys():
            events.append(
                ViewEvent(
                    event="liquidation_cleared", message=f"{market.value} {symbol}: far enough from its liquidation",
                    data={"market": market.value, "symbol": symbol},
                )
            )

        awaiting = [
            a for a in (self._recoveries() if self._recoveries is not None else ())
            if a.status is RecoveryStatus.AWAITING_APPROVAL
        ]
        for a in awaiting:
            if a.opportunity_id not in self._awaiting:
                events.append(
                    ViewEvent(
                        event="awaiting_approval",
                        message=f"{a.opportunity_id} {a.symbol}: residual {a.residual_quantity} awaits an operator: "
                        f"{a.reason}",
                        data={"opportunity_id": a.opportunity_id, "symbol": a.symbol, "residual": a.residual_quantity,
                              "reason": a.reason},
                        level=logging.WARNING,
                    )
                )
        for gone in self._awaiting - {a.opportunity_id for a in awaiting}:
            events.append(ViewEvent(event="approval_cleared", message=f"{gone}: acknowledged",
                                    data={"opportunity_id": gone}))

        connections = []
        for market, source in self.connectors.items():
            health = source.health()
            sync = source.book_sync()
            books = sync.stats() if sync is not None else {}
            resyncs = 0
            for symbol, book in books.items():
                for reason, total in book.resyncs.items():
                    resyncs += total
                    key = (market.value, symbol, reason)
                    if total > resync_totals.get(key, 0):
                        events.append(
                            ViewEvent(
                                event="resync",
                                message=f"{market.value} {symbol}: book resynced ({reason})",
                                data={"market": market.value, "symbol": symbol, "reason": reason,
                                      "count": total - resync_totals.get(key, 0), "total": total},
                            )
                        )
                    resync_totals[key] = total
            age = health.last_message_age_ns
            connections.append(
                ConnectionRow(
                    market=market.value, connected=health.connected,
                    message_age_ms=None if age is None else age // 1_000_000, messages=health.messages,
                    reconnects=health.reconnects, resyncs=resyncs,
                    books_in_sync=sum(1 for b in books.values() if b.in_sync), books=len(books),
                )
            )

        standing = sorted(self._opportunities(), key=lambda o: o.profit_margin_bps, reverse=True)[: self.top]
        opportunities = tuple(
            OpportunityRow(
                symbol=o.symbol, buy=o.buy_exchange.value, sell=o.sell_exchange.value, bps=o.profit_margin_bps,
                quantity=o.max_quantity, profit=o.total_profit_estimate,
                age_ms=max(0, now - o.detected_at) // 1_000_000,
            )
            for o in standing
        )

        metrics = self.risk.get_current_risk_metrics()
        balances = self.balances.snapshot() if self.balances is not None else {}
        markets = list(dict.fromkeys([*self.connectors, *balances, *(p.exchange for p in metrics.positions)]))
        venues = []
        for market in markets:
            held = [p for p in metrics.positions if p.exchange is market]
            quote = balances.get(market, {}).get(self.quote_asset)
            venues.append(
                VenueRow(
                    market=market.value, positions=len(held),
                    position_usd=sum(
                        (p.quantity * p.entry_price * (1 if p.side is OrderSide.BUY else -1) for p in held), Decimal(0)
                    ),
                    free_quote=quote.free if quote is not None else None,
                )
            )

        stats = self.monitor.get_statistics()
        snapshot = ViewSnapshot(
            mode=self.mode,
            stopping=self._stopping() if self._stopping is not None else None,
            uptime_s=stats.uptime_s,
            opportunities_detected=stats.opportunities_detected,
            opportunities_executed=stats.opportunities_executed,
            executions_succeeded=stats.executions_succeeded,
            executions_failed=stats.executions_failed,
            realized_pnl=stats.total_realized_profit,
            daily_pnl=metrics.daily_realized_pnl_usd,
            daily_funding=metrics.daily_funding_usd,
            max_daily_loss=metrics.max_daily_loss_usd,
            exposure_usd=metrics.total_exposure_usd,
            max_exposure_usd=metrics.max_total_exposure_usd,
            in_flight_usd=metrics.in_flight_usd,
            quote_asset=self.quote_asset,
            connections=tuple(connections),
            opportunities=opportunities,
            executions=tuple(_execution_row(r) for r in reversed(recent)),
            venues=tuple(venues),
            latencies=tuple(
                LatencyRow(stage=lat.stage.value, count=lat.count, p50_ms=_ms(lat.p50_ns), p99_ms=_ms(lat.p99_ns))
                for lat in self.monitor.stage_latencies()
            ),
            breakers=tuple(breakers),
            halted=tuple(
                HaltRow(market=key.exchange.value, symbol=key.symbol, reason=reason)
                for key, reason in sorted(halts.items())
            ),
            near_liquidation=tuple(
                LiquidationRow(market=market.value, symbol=symbol, distance_bps=bps)
                for (market, symbol), bps in near.items()
            ),
            awaiting_approval=tuple(
                ApprovalRow(opportunity_id=a.opportunity_id, symbol=a.symbol, residual=a.residual_quantity,
                            reason=a.reason)
                for a in awaiting
            ),
        )
        self._seen, self._recent, self._trips, self._resyncs = seen, recent, trips, resync_totals
        self._halts, self._near, self._awaiting = halts, set(near), {a.opportunity_id for a in awaiting}
        self._latest = snapshot
        return snapshot, events

    # --- terminal ---------------------------------------------------------------------

    def render(self, snapshot: ViewSnapshot) -> RenderableType:
        """The dashboard of ``snapshot`` (reads nothing else)."""
        return render_snapshot(snapshot)

    @contextlib.asynccontextmanager
    async def live(
        self, console: Console | None = None, refresh_per_second: float = REFRESH_PER_SECOND
    ) -> AsyncIterator[None]:
        """Show the dashboard on ``console`` while the body runs.

        A loop task polls ``refresh_per_second`` times a second; rich's refresh thread
        draws the latest snapshot. Log records bound for a terminal print above the view.
        """
        console = console if console is not None else Console()
        snapshot, _ = self.poll()
        interval = 1 / refresh_per_second

        async def refresh() -> None:
            while True:
                await asyncio.sleep(interval)
                self._poll_for_view()

        def current() -> RenderableType:
            latest = self._latest
            try:
                return render_snapshot(latest if latest is not None else snapshot)
            except Exception:  # rich's refresh thread: a failure there would freeze the view unsaid
                self._view_failures.warn("render", monotonic_ns(), "live view: drawing failed", exc_info=True)
                return Text("live view: drawing failed (see the log); the engine runs on")

        live = Live(
            console=console, get_renderable=current, refresh_per_second=refresh_per_second,
            redirect_stdout=False, redirect_stderr=False,
        )
        with _terminal_logs_through(console), live:
            task = asyncio.get_running_loop().create_task(refresh(), name="arb live view")
            try:
                yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                self._poll_for_view()
                live.refresh()

    def _poll_for_view(self) -> tuple[ViewSnapshot, list[ViewEvent]] | None:
        """``poll`` for the live view and the headless events: a failure is logged (about once a
        minute) and None returned, rather than the view freezing unsaid, the run's summary lost
        or (headless: the controller's housekeeping asks for the status) the engine stopped."""
        try:
            return self.poll()
        except Exception:
            self._view_failures.warn("poll", monotonic_ns(), "live view: reading the engine's state failed",
                                     exc_info=True)
            return None

    # --- headless ---------------------------------------------------------------------

    def report(self, status_line: str = "") -> None:
        """Log the events since the last poll, then a ``status`` event, on the ``arb.events`` logger
        (neither when the poll fails: ``_poll_for_view``)."""
        polled = self._poll_for_view()
        if polled is None:
            return
        snapshot, events = polled
        for event in events:
            _events.log(event.level, event.message, extra={"event": event.event, "data": event.data})
        data = msgspec.to_builtins(snapshot)
        del data["executions"]  # each one has its own event
        _events.info(status_line or "status", extra={"event": "status", "data": data})

    def report_summary(self, summary: RunSummary) -> None:
        """Log the events since the last poll (none when the poll fails) and the run's ``summary`` event."""
        polled = self._poll_for_view()
        for event in polled[1] if polled is not None else []:
            _events.log(event.level, event.message, extra={"event": event.event, "data": event.data})
        data = msgspec.to_builtins(summary)
        data["ok"] = summary.ok
        _events.info("run finished", extra={"event": "summary", "data": data})


class JsonLogFormatter(logging.Formatter):
    """One JSON object per record: ``ts``, ``level``, ``logger``, ``event``, ``message`` and the record's ``data``.

    ``event`` is ``log`` for records without one; keys of ``data`` never replace those five.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON (Decimals as strings)."""
        payload: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "event": getattr(record, "event", "log"),
            "message": record.getMessage(),
        }
        data = getattr(record, "data", None)
        if isinstance(data, dict):
            for key, value in data.items():
                payload.setdefault(str(key), value)
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return msgspec.json.encode(payload).decode()


def install_json_events(stream: TextIO) -> logging.Handler:
    """Send ``arb.events`` records to ``stream`` as JSON lines (and only there); returns the handler."""
    handler = _EventsHandler(stream)
    handler.setFormatter(JsonLogFormatter())
    _events.addHandler(handler)
    _events.setLevel(logging.INFO)
    _events.propagate = False
    return handler


def uninstall_json_events(handler: logging.Handler) -> None:
    """Undo ``install_json_events``: ``arb.events`` records go where other records go again."""
    _events.removeHandler(handler)
    _events.propagate = True


# --- a run with its output ----------------------------------------------------------------


async def watch_run(
    controller: ArbitrageController,
    output: Output,
    duration_s: float | None = None,
    *,
    console: Console | None = None,
    lines: StatusLines | None = None,
) -> RunSummary:
    """Run an initialized ``controller`` with ``output`` showing its progress; returns its summary.

    ``HEADLESS`` also logs the ``summary`` event (``install_json_events`` first);
    ``PLAIN`` prints the status line through ``lines`` (default: to stdout).
    """
    if output is Output.PLAIN:
        controller.status = lines if lines is not None else StatusLines(sys.stdout)
        return await controller.run(duration_s)
    view = LiveView.of(controller)
    if output is Output.HEADLESS:
        controller.status = view.report
        summary = await controller.run(duration_s)
        view.report_summary(summary)
        return summary
    controller.status = None
    async with view.live(console):
        return await controller.run(duration_s)


# --- rendering ----------------------------------------------------------------------------


def render_snapshot(s: ViewSnapshot) -> RenderableType:
    """The dashboard: a header line over three rows of two panels (one under the other where two do not fit)."""
    header = Text.assemble(
        ("arb ", "bold"), (s.mode or "-", "bold cyan"),
        f"  up {s.uptime_s:.1f} s  opportunities {s.opportunities_detected} seen, {s.opportunities_executed} taken"
        f" ({s.executions_succeeded} ok, {s.executions_failed} failed)  PnL ",
        _signed(s.realized_pnl, f" {s.quote_asset}"),
        ("" if s.stopping is None else f"  stopping: {s.stopping}", "bold yellow"),
    )
    return Group(header, _PanelRows((
        (_panel("Connections", _connections(s)), _panel("Circuit breakers", _breakers(s))),
        (_panel("Top opportunities now", _opportunities(s)), _panel("Recent executions", _executions(s))),
        (_panel("PnL and exposure", _pnl(s)), _panel("Latency (ms)", _latencies(s))),
    )))


_GUTTER = 1  # columns between two panels side by side
_PANEL_FRAME = 4  # a panel's borders and padding


class _PanelRows:
    """Rows of two panels side by side where both bodies fit at their narrowest in half the width,
    else one under the other: a status word or a number is never cut to make two fit."""

    def __init__(self, rows: Sequence[tuple[Panel, Panel]]) -> None:
        self._rows = rows

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        half = (options.max_width - _GUTTER) // 2

        def fits(panel: Panel) -> bool:
            return Measurement.get(console, options, panel.renderable).minimum + _PANEL_FRAME <= half

        for left, right in self._rows:
            if fits(left) and fits(right):
                grid = Table.grid(expand=True, padding=(0, _GUTTER))
                grid.add_column(ratio=1)
                grid.add_column(ratio=1)
                grid.add_row(left, right)
                yield grid
            else:
                yield left
                yield right


def _panel(title: str, body: RenderableType) -> Panel:
    return Panel(body, title=title, title_align="left", border_style="blue")


_Cell = str | Text


def _table(columns: Sequence[str], rows: Sequence[Sequence[_Cell]], wrapping: Sequence[str] = ()) -> Table:
    """A borderless table of ``rows``. The first column and the ``wrapping`` ones hold names and
    free text that wrap to fit; the others hold statuses and numbers, never wrapped nor cut: each is
    at least as wide as its widest cell, which ``_PanelRows`` measures."""
    table = Table(box=None, expand=True, pad_edge=False, header_style="bold")
    for index, name in enumerate(columns):
        justify: JustifyMethod = "left" if index == 0 else "right"
        if index == 0 or name in wrapping:
            table.add_column(name, justify=justify, overflow="fold")
        else:
            widest = max([cell_len(name), *(_width(row[index]) for row in rows)])
            table.add_column(name, justify=justify, no_wrap=True, min_width=widest)
    for row in rows:
        table.add_row(*row)
    return table


def _width(cell: _Cell) -> int:
    return cell.cell_len if isinstance(cell, Text) else cell_len(cell)


def _connections(s: ViewSnapshot) -> Table:
    # Shutdown closes the connections on purpose: not an alarm then.
    down = Text("DOWN", "bold red") if s.stopping is None else Text("closed", "dim")
    return _table(
        ("market", "link", "msg age", "msgs", "reconnects", "resyncs", "books"),
        [(c.market, Text("up", "green") if c.connected else down,
          "-" if c.message_age_ms is None else f"{c.message_age_ms} ms", str(c.messages),
          str(c.reconnects), str(c.resyncs),
          Text(f"{c.books_in_sync}/{c.books}", "green" if c.books_in_sync == c.books else "yellow"))
         for c in s.connections],
    )


def _breakers(s: ViewSnapshot) -> Table:
    rows: list[tuple[_Cell, ...]] = [
        (b.breaker, Text("TRIPPED", "bold red") if b.tripped else Text("ok", "green"),
         f"{b.count}/{b.threshold}", str(b.trips), b.reason or "")
        for b in s.breakers
    ]
    rows += [(f"market {h.market} {h.symbol}", Text("HALTED", "bold red"), "", "", h.reason) for h in s.halted]
    rows += [(f"{n.market} {n.symbol}", Text("NEAR LIQ", "bold red"), "", "",
              f"{n.distance_bps} bps from liquidation: not grown; add margin") for n in s.near_liquidation]
    rows += [(f"{a.opportunity_id} {a.symbol}", Text("APPROVAL", "bold red"), "", "",
              f"residual {a.residual}: {a.reason}") for a in s.awaiting_approval]
    return _table(("breaker", "state", "count", "trips", "reason"), rows, wrapping=("reason",))


def _opportunities(s: ViewSnapshot) -> RenderableType:
    if not s.opportunities:
        return Text("none standing", "dim")
    return _table(
        ("symbol", "buy -> sell", "bps", "size", "est. PnL", "age"),
        [(o.symbol, f"{o.buy} -> {o.sell}", f"{o.bps:.2f}", str(o.quantity), f"{o.profit:.4f}", f"{o.age_ms} ms")
         for o in s.opportunities],
        wrapping=("buy -> sell",),
    )


_STATE_STYLE = {ArbitrageState.COMPLETED.name: "green", ArbitrageState.FAILED.name: "red"}


def _executions(s: ViewSnapshot) -> RenderableType:
    if not s.executions:
        return Text("none yet", "dim")
    return _table(
        ("id", "symbol", "state", "PnL", "ms"),
        [(e.opportunity_id, e.symbol, Text(e.state, _STATE_STYLE.get(e.state, "yellow")),
          _signed(e.realized_profit), f"{e.execution_ms:.1f}") for e in s.executions],
    )


def _pnl(s: ViewSnapshot) -> RenderableType:
    totals = Table.grid(padding=(0, 2))
    totals.add_column()
    totals.add_column(justify="right")
    totals.add_row("realized PnL", _signed(s.realized_pnl, f" {s.quote_asset}"))
    totals.add_row("today", Text.assemble(_signed(s.daily_pnl), f" (max loss {s.max_daily_loss})"))
    if s.daily_funding:
        totals.add_row("  of it funding", _signed(s.daily_funding))
    totals.add_row("exposure", f"{s.exposure_usd:.2f} / {s.max_exposure_usd} USD")
    totals.add_row("in flight", f"{s.in_flight_usd:.2f} USD")
    venues = _table(
        ("market", "positions", "net USD", f"free {s.quote_asset}"),
        [(v.market, str(v.positions), f"{v.position_usd:.2f}", "-" if v.free_quote is None else f"{v.free_quote:.2f}")
         for v in s.venues],
    )
    return Group(totals, Text(""), venues)


def _latencies(s: ViewSnapshot) -> Table:
    return _table(
        ("stage", "count", "p50", "p99"),
        [(lat.stage, str(lat.count), f"{lat.p50_ms:.3f}", f"{lat.p99_ms:.3f}") for lat in s.latencies],
    )


def _signed(value: Decimal, suffix: str = "") -> Text:
    style = "red" if value < 0 else "green" if value > 0 else ""
    return Text(f"{value:.4f}{suffix}", style)


# --- helpers ------------------------------------------------------------------------------


def _execution_row(result: ExecutionResult) -> ExecutionRow:
    return ExecutionRow(
        opportunity_id=result.opportunity_id,
        symbol=result.legs[0].symbol if result.legs else "",
        state=result.final_state.name,
        realized_profit=result.realized_profit,
        execution_ms=result.total_execution_time_ms,
        error=result.error,
    )


def _execution_event(result: ExecutionResult) -> ViewEvent:
    row = _execution_row(result)
    return ViewEvent(
        event="execution",
        message=f"{row.opportunity_id} {row.symbol} {row.state}, realized {row.realized_profit}",
        data={
            **msgspec.structs.asdict(row),
            "legs": [
                {"market": leg.exchange.value, "symbol": leg.symbol, "side": leg.side.value,
                 "requested": leg.requested_quantity, "filled": leg.filled_quantity, "contract_size": leg.contract_size,
                 "limit_price": leg.limit_price,
                 "average_price": leg.average_price, "fee": leg.fee, "fee_asset": leg.fee_asset, "error": leg.error}
                for leg in result.legs
            ],
        },
    )


@contextlib.contextmanager
def _terminal_logs_through(console: Console) -> Iterator[None]:
    """Route the root logger's terminal handlers through ``console`` (printed above the live view)."""
    root = logging.getLogger()
    moved = [
        h for h in root.handlers
        if isinstance(h, logging.StreamHandler) and _is_tty(h.stream)
    ]
    if not moved:
        yield
        return
    replacement = RichHandler(console=console, show_path=False, level=min(h.level for h in moved))
    for handler in moved:
        root.removeHandler(handler)
    root.addHandler(replacement)
    try:
        yield
    finally:
        root.removeHandler(replacement)
        for handler in moved:
            root.addHandler(handler)


def _is_tty(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty()) if callable(isatty) else False


def _ms(ns: int) -> Decimal:
    return (Decimal(ns) / 1_000_000).quantize(MILLI)


__all__ = [
    "EVENTS_LOGGER", "JsonLogFormatter", "LiveView", "Output", "ViewEvent", "ViewSnapshot", "choose_output",
    "install_json_events", "render_snapshot", "uninstall_json_events", "watch_run",
]
