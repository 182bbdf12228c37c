"""Prometheus metrics and the health endpoints, read from the engine's parts at scrape time.

Nothing here runs per event: ``EngineCollector`` reads the counters the parts already keep
(``PerformanceMonitor``, ``RiskManager``, ``RecoveryManager``, ``BalanceMonitor``, each
connector's ``health()``, ``private_stats()`` and ``BookSync.stats()``) when Prometheus scrapes.
The compiled ``arb_core.latency`` histograms are converted into Prometheus histograms on the
same scrape; their ``le`` bounds are upper edges of compiled buckets, so the conversion
loses no count.

Money is exact everywhere else; Prometheus samples are binary floats, so PnL, exposure
and balances here are for display only (the journal and the run report keep the exact
``Decimal``).

``MetricsServer`` serves ``/metrics`` (text exposition), ``/healthz`` (liveness: the event
loop answers and its heartbeat is recent), ``/startedz`` (the start-up, journal replay
included, is done) and ``/readyz`` (readiness: every market connected, every book in sync, no
kill switch, not shutting down), the last three as JSON. It is off unless
``[metrics] enabled = true`` (or ``ARB_METRICS_ENABLED=true``); see ``serve_metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

import msgspec
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from arb_core.freshness import monotonic_ns
from arb_core.latency import LatencyHistogram

from .balances import BalanceMonitor
from .errors import ConfigurationError
from .exchanges.book_sync import BookSync
from .exchanges.models import ConnectionHealth
from .exchanges.private_stream import PrivateStreamStats
from .monitor import PerformanceMonitor, Stage
from .orders import market_symbol
from .pipeline import ScannerPipeline
from .recovery import RecoveryManager
from .risk import Breaker, RiskManager
from .types import ArbitrageState, ExchangeName, MetricsConfig, OrderSide

log = logging.getLogger(__name__)

NS_PER_S: Final = 1e9
# Nominal latency bounds (ns), 1 us to 30 s; each becomes the upper edge of the compiled bucket holding it.
LATENCY_BOUNDS_NS: Final = (
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000, 25_000_000, 50_000_000, 100_000_000, 250_000_000, 500_000_000,
    1_000_000_000, 2_500_000_000, 5_000_000_000, 10_000_000_000, 30_000_000_000,
)
EXECUTION_OUTCOMES: Final = {
    ArbitrageState.COMPLETED: "completed",
    ArbitrageState.FAILED: "failed",
    ArbitrageState.RECOVERING: "recovering",  # a residual left open for an operator
}


class MarketDataSource(Protocol):
    """What the collector reads from a connector."""

    def health(self) -> ConnectionHealth:
        """The market-data connection's health."""

    def book_sync(self) -> BookSync | None:
        """The running book synchroniser, None when stopped."""

    def private_subscribed(self) -> bool | None:
        """Whether the private (account) stream is subscribed now; None where none runs."""

    def private_stats(self) -> PrivateStreamStats | None:
        """The private (account) stream's counters; None where none runs."""

    @property
    def clock_skew(self) -> float | None:
        """How far the local clock was behind the venue's at the last read, ms (negative: ahead); None: not read."""


class MetricsSource(Protocol):
    """The engine parts metrics are read from; ``ArbitrageController`` is one."""

    @property
    def monitor(self) -> PerformanceMonitor: ...
    @property
    def risk(self) -> RiskManager | None: ...
    @property
    def recovery(self) -> RecoveryManager | None: ...
    @property
    def balances(self) -> BalanceMonitor | None: ...
    @property
    def connectors(self) -> Mapping[ExchangeName, MarketDataSource]: ...
    @property
    def pipeline(self) -> ScannerPipeline | None: ...
    @property
    def started(self) -> bool:
        """Whether the engine's start-up (connecting, reconciling and replaying its journal) is done."""
        ...
    @property
    def shutting_down(self) -> bool:
        """Whether the engine's shutdown has begun."""
        ...


@dataclass
class EngineParts:
    """A ``MetricsSource`` assembled by hand, for running the exporter without a controller."""

    monitor: PerformanceMonitor
    risk: RiskManager | None = None
    recovery: RecoveryManager | None = None
    balances: BalanceMonitor | None = None
    connectors: Mapping[ExchangeName, MarketDataSource] = field(default_factory=dict)
    pipeline: ScannerPipeline | None = None
    started: bool = True
    shutting_down: bool = False


# --- latency histograms -------------------------------------------------------------------


def bucket_edges_ns(config: tuple[int, int, int], nominal_ns: Iterable[int] = LATENCY_BOUNDS_NS) -> tuple[int, ...]:
    """For a histogram configuration (``LatencyHistogram.config()``), the upper edge (ns) of the
    bucket holding each nominal bound: ascending, distinct, below ``highest_ns``.

    A compiled bucket lies wholly at or below such an edge or wholly above it, so cumulative
    counts at these edges are exact.
    """
    lowest, highest, bits = config
    probe = LatencyHistogram(lowest, highest, bits)
    edges: list[int] = []
    for value in sorted(nominal_ns):
        probe.reset()
        probe.record(value)
        ((edge, _),) = probe.buckets()
        if edge < highest and (not edges or edge > edges[-1]):
            edges.append(edge)
    return tuple(edges)


def cumulative_counts(buckets: Sequence[tuple[int, int]], edges_ns: Sequence[int]) -> list[int]:
    """Counts at or below each edge, from ``LatencyHistogram.buckets()`` (ascending upper edges)."""
    out: list[int] = []
    total = 0
    i = 0
    n = len(buckets)
    for edge in edges_ns:
        while i < n and buckets[i][0] <= edge:
            total += buckets[i][1]
            i += 1
        out.append(total)
    return out


# --- the collector ----------------------------------------------------------------------


class EngineCollector(Collector):
    """Reads every engine metric from a ``MetricsSource`` on each scrape."""

    def __init__(
        self,
        source: MetricsSource,
        *,
        max_data_age_ns: int,
        clock: Callable[[], int] = monotonic_ns,
        latency_bounds_ns: Sequence[int] = LATENCY_BOUNDS_NS,
    ) -> None:
        if max_data_age_ns < 1:
            raise ValueError(f"max_data_age_ns={max_data_age_ns}: must be at least 1")
        self.source = source
        self.max_data_age_ns = max_data_age_ns
        self._clock = clock
        self._latency_bounds_ns = tuple(latency_bounds_ns)
        self._edges: dict[tuple[int, int, int], tuple[int, ...]] = {}

    def now_ns(self) -> int:
        """The clock books' ages are read on (monotonic ns)."""
        return self._clock()

    def collect(self) -> Iterator[Metric]:
        """All families, built fresh from the parts' current state."""
        source = self.source
        yield from self._engine(source.monitor)
        yield from self._books(source.connectors)
        yield from self._connections(source.connectors)
        if source.risk is not None:
            yield from self._risk(source.risk)
        if source.recovery is not None:
            yield from self._recovery(source.recovery)
        if source.balances is not None:
            yield from self._balances(source.balances)
        if source.pipeline is not None:
            yield from self._markets(source.pipeline)

    def _engine(self, monitor: PerformanceMonitor) -> Iterator[Metric]:
        stats = monitor.get_statistics()
        yield GaugeMetricFamily("arb_uptime_seconds", "Seconds since the monitor started.", value=float(stats.uptime_s))
        yield CounterMetricFamily(
            "arb_opportunities_detected", "Opportunities the scanner handed to the engine.",
            value=stats.opportunities_detected,
        )
        yield CounterMetricFamily(
            "arb_opportunities_executed", "Opportunities that passed risk and were executed.",
            value=stats.opportunities_executed,
        )
        outcomes = monitor.execution_outcomes()
        executions = CounterMetricFamily(
            "arb_executions", "Executions by outcome (recovering: a residual awaits an operator).", labels=["outcome"]
        )
        for state, outcome in EXECUTION_OUTCOMES.items():
            executions.add_metric([outcome], outcomes.get(state, 0))
        yield executions
        # Display only: the exact Decimal is in the journal and the run report.
        yield GaugeMetricFamily(
            "arb_realized_pnl_usd", "Realized profit since start, USD (float, display only).",
            value=float(stats.total_realized_profit),
        )
        yield CounterMetricFamily(
            "arb_slow_cycles", "Cycles over target_execution_time_ms.", value=monitor.slow_cycles
        )
        latency = HistogramMetricFamily(
            "arb_stage_latency_seconds", "Latency per stage (detect, risk, place, fill, transition, cycle).", labels=["stage"]
        )
        for stage in Stage:
            histogram = monitor.histogram(stage)
            config = histogram.config()
            edges = self._edges.get(config)
            if edges is None:
                edges = self._edges[config] = bucket_edges_ns(config, self._latency_bounds_ns)
            counts = cumulative_counts(histogram.buckets(), edges)
            buckets: list[tuple[str, float]] = [(repr(e / NS_PER_S), c) for e, c in zip(edges, counts)]
            buckets.append(("+Inf", histogram.count))
            latency.add_metric([stage.value], buckets, sum_value=histogram.mean * histogram.count / NS_PER_S)
        yield latency

    def _markets(self, pipeline: ScannerPipeline) -> Iterator[Metric]:
        halted = GaugeMetricFamily(
            "arb_market_halted", "1 when a traded market is halted: it stopped trading or changed its rules.",
            labels=["market", "symbol"],
        )
        fee = GaugeMetricFamily(
            "arb_taker_fee_rate", "The taker fee rate a traded market is priced with (a fraction; the account's "
            "tier where the venue gives it).", labels=["market", "symbol"],
        )
        fees = pipeline.taker_fees()
        for key in pipeline.markets():
            halted.add_metric([key.exchange.value, key.symbol], int(key in pipeline.halted))
            fee.add_metric([key.exchange.value, key.symbol], float(fees[key]))
        yield halted
        yield fee

    def _books(self, connectors: Mapping[ExchangeName, MarketDataSource]) -> Iterator[Metric]:
        book_labels = ["market", "symbol"]
        updates = CounterMetricFamily("arb_book_updates", "Book diffs applied.", labels=book_labels)
        ignored = CounterMetricFamily(
            "arb_book_ignored_updates", "Book diffs ignored because the book already had them.", labels=book_labels
        )
        snapshots = CounterMetricFamily("arb_book_snapshots", "Book snapshots applied.", labels=book_labels)
        malformed = CounterMetricFamily("arb_book_malformed_frames", "Frames that could not be decoded.",
                                        labels=book_labels)
        failures = CounterMetricFamily("arb_book_snapshot_failures", "REST snapshot fetches that failed.",
                                       labels=book_labels)
        resyncs = CounterMetricFamily(
            "arb_book_resyncs", "Book resyncs by reason (gap, crossed, malformed, reconnect...).",
            labels=[*book_labels, "reason"],
        )
        buffered = GaugeMetricFamily("arb_book_buffered_updates", "Diffs waiting for a snapshot.", labels=book_labels)
        in_sync = GaugeMetricFamily("arb_book_in_sync", "1 when the book is in sync.", labels=book_labels)
        age = GaugeMetricFamily(
            "arb_book_age_seconds", "Seconds since the book last received an update.", labels=book_labels
        )
        stale = GaugeMetricFamily(
            "arb_books_stale", "Books out of sync or older than max_data_age_ms.", labels=["market"]
        )
        unhandled = CounterMetricFamily(
            "arb_stream_frames_unhandled",
            "Market-data frames that reached no book: unroutable (not decodable, or without a symbol), "
            "unknown_symbol (an update for a symbol not subscribed), venue_error (an error frame of the venue), "
            "other (a frame of no kind the stream reads).",
            labels=["market", "kind"],
        )
        now = self._clock()
        for market, connector in connectors.items():
            sync = connector.book_sync()
            if sync is None:
                continue
            name = market.value
            stale_books = 0
            for symbol, s in sync.stats().items():
                labels = [name, symbol]
                updates.add_metric(labels, s.applied)
                ignored.add_metric(labels, s.stale)
                snapshots.add_metric(labels, s.snapshots)
                malformed.add_metric(labels, s.malformed)
                failures.add_metric(labels, s.snapshot_failures)
                for reason, count in sorted(s.resyncs.items()):
                    resyncs.add_metric([*labels, reason], count)
                buffered.add_metric(labels, s.buffered)
                in_sync.add_metric(labels, int(s.in_sync))
                book = sync.books[symbol]
                received = book.last_recv_ns
                if received:
                    age.add_metric(labels, max(0, now - received) / NS_PER_S)
                if not s.in_sync or not received or now - received > self.max_data_age_ns:
                    stale_books += 1
            stale.add_metric([name], stale_books)
            for kind, count in (
                ("unroutable", sync.unroutable), ("unknown_symbol", sync.unknown_symbol),
                ("venue_error", sync.venue_errors), ("other", sync.other_frames),
            ):
                unhandled.add_metric([name, kind], count)
        yield from (updates, ignored, snapshots, malformed, failures, resyncs, buffered, in_sync, age, stale, unhandled)

    def _connections(self, connectors: Mapping[ExchangeName, MarketDataSource]) -> Iterator[Metric]:
        up = GaugeMetricFamily("arb_connection_up", "1 when the market-data websocket is connected.",
                               labels=["market"])
        connects = CounterMetricFamily("arb_connection_connects", "Successful websocket handshakes.",
                                       labels=["market"])
        reconnects = CounterMetricFamily("arb_connection_reconnects", "Connection attempts after the first.",
                                         labels=["market"])
        messages = CounterMetricFamily("arb_connection_messages", "Websocket data messages received.",
                                       labels=["market"])
        age = GaugeMetricFamily(
            "arb_connection_last_message_age_seconds", "Seconds since the last websocket message.", labels=["market"]
        )
        errors = CounterMetricFamily("arb_connection_errors", "Websocket errors by kind.", labels=["market", "kind"])
        skew = GaugeMetricFamily(
            "arb_clock_skew_ms", "How far the local clock was behind the venue's at the last read, ms (negative: ahead).",
            labels=["market"],
        )
        private = GaugeMetricFamily(
            "arb_private_stream_subscribed", "1 while the market's private (account) stream is subscribed.",
            labels=["market"],
        )
        private_malformed = CounterMetricFamily(
            "arb_private_stream_malformed_frames", "Private (account) stream frames that could not be decoded.",
            labels=["market"],
        )
        private_unlisted = CounterMetricFamily(
            "arb_private_stream_unlisted_items",
            "Orders and trades the private stream left out: on pairs the engine does not list (made outside it).",
            labels=["market"],
        )
        private_refusals = CounterMetricFamily(
            "arb_private_stream_refusals", "Private stream requests (subscriptions) the venue refused.",
            labels=["market"],
        )
        private_reconnects = CounterMetricFamily(
            "arb_private_stream_reconnects", "Private stream connection attempts after the first.", labels=["market"]
        )
        for market, connector in connectors.items():
            if connector.clock_skew is not None:
                skew.add_metric([market.value], connector.clock_skew)
            subscribed = connector.private_subscribed()
            if subscribed is not None:
                private.add_metric([market.value], int(subscribed))
            stats = connector.private_stats()
            if stats is not None:
                private_malformed.add_metric([market.value], stats.malformed)
                private_unlisted.add_metric([market.value], stats.unlisted)
                private_refusals.add_metric([market.value], stats.refusals)
                private_reconnects.add_metric([market.value], stats.reconnects)
            health = connector.health()
            name = [market.value]
            up.add_metric(name, int(health.connected))
            connects.add_metric(name, health.connects)
            reconnects.add_metric(name, health.reconnects)
            messages.add_metric(name, health.messages)
            if health.last_message_age_ns is not None:
                age.add_metric(name, health.last_message_age_ns / NS_PER_S)
            for kind, count in sorted(health.errors.items()):
                errors.add_metric([*name, kind], count)
        yield from (up, connects, reconnects, messages, age, errors, skew, private)
        yield from (private_malformed, private_unlisted, private_refusals, private_reconnects)

    def _risk(self, risk: RiskManager) -> Iterator[Metric]:
        tripped = GaugeMetricFamily("arb_circuit_breaker_tripped", "1 while the breaker blocks new entries.",
                                    labels=["breaker"])
        trips = CounterMetricFamily("arb_circuit_breaker_trips", "Times the breaker tripped.", labels=["breaker"])
        for breaker, status in risk.get_circuit_breaker_status().items():
            tripped.add_metric([breaker.value], int(status.tripped))
            trips.add_metric([breaker.value], status.trips)
        yield from (tripped, trips)
        metrics = risk.get_current_risk_metrics()
        yield GaugeMetricFamily("arb_exposure_total_usd", "Open position exposure plus in-flight reservations, USD.",
                                value=float(metrics.total_exposure_usd))
        yield GaugeMetricFamily("arb_exposure_in_flight_usd", "Worst-case notional of executions in flight, USD.",
                                value=float(metrics.in_flight_usd))
        yield GaugeMetricFamily("arb_exposure_limit_usd", "max_total_exposure_usd.",
                                value=float(metrics.max_total_exposure_usd))
        symbol = GaugeMetricFamily("arb_exposure_usd", "Net position exposure per symbol, USD.", labels=["symbol"])
        for name, exposure in sorted(metrics.symbol_exposure_usd.items()):
            symbol.add_metric([name], float(exposure))
        yield symbol
        position = GaugeMetricFamily("arb_position_base", "Signed open position in base units.",
                                     labels=["market", "symbol"])
        for entry in metrics.positions:
            signed = entry.quantity if entry.side is OrderSide.BUY else -entry.quantity
            position.add_metric([entry.exchange.value, market_symbol(entry.symbol, entry.exchange)], float(signed))
        yield position
        yield GaugeMetricFamily("arb_daily_realized_pnl_usd", "Realized PnL of the current UTC day, USD.",
                                value=float(metrics.daily_realized_pnl_usd))
        yield GaugeMetricFamily("arb_daily_funding_usd", "Funding settled on the current UTC day, USD (in the daily PnL).",
                                value=float(metrics.daily_funding_usd))
        yield GaugeMetricFamily("arb_daily_loss_limit_usd", "max_daily_loss_usd.",
                                value=float(metrics.max_daily_loss_usd))
        yield GaugeMetricFamily("arb_executions_in_flight", "Executions started and not yet finished.",
                                value=metrics.executions_in_flight)
        distance = GaugeMetricFamily(
            "arb_liquidation_distance_bps", "How far a futures position's mark is from its liquidation price, bps.",
            labels=["market", "symbol"],
        )
        near = GaugeMetricFamily(
            "arb_near_liquidation", "1 while a futures position is nearer its liquidation than "
            "min_liquidation_distance_bps: entries that grow it are refused.", labels=["market", "symbol"],
        )
        for (market, pair), (bps, under) in risk.liquidation_distances().items():
            distance.add_metric([market.value, market_symbol(pair, market)], float(bps))
            near.add_metric([market.value, market_symbol(pair, market)], int(under))
        yield from (distance, near)
        rejections = CounterMetricFamily("arb_risk_rejections", "Refusals by risk check.", labels=["check"])
        for check, count in sorted(risk.get_risk_statistics().rejections.items()):
            rejections.add_metric([check], count)
        yield rejections

    def _recovery(self, recovery: RecoveryManager) -> Iterator[Metric]:
        stats = recovery.get_recovery_statistics()
        finished = CounterMetricFamily("arb_recoveries", "Recoveries by outcome.", labels=["outcome"])
        finished.add_metric(["recovered"], stats.recovered)
        finished.add_metric(["flagged"], stats.flagged)
        yield finished
        active = GaugeMetricFamily("arb_recoveries_active", "Open recoveries by status.", labels=["status"])
        active.add_metric(["recovering"], stats.active)
        active.add_metric(["awaiting_approval"], stats.awaiting_approval)
        yield active
        yield GaugeMetricFamily("arb_recovery_cost_usd", "Cost of every recovery so far, USD (float, display only).",
                                value=float(stats.total_recovery_cost))

    def _balances(self, balances: BalanceMonitor) -> Iterator[Metric]:
        family = GaugeMetricFamily("arb_balance", "Balance per market and asset (float, display only).",
                                   labels=["market", "asset", "state"])
        for market, assets in sorted(balances.snapshot().items()):
            for asset, balance in sorted(assets.items()):
                family.add_metric([market.value, asset, "free"], float(balance.free))
                family.add_metric([market.value, asset, "locked"], float(balance.locked))
        yield family


# --- health -----------------------------------------------------------------------------


class MarketReadiness(msgspec.Struct, frozen=True, kw_only=True):
    """Readiness of one market."""

    connected: bool
    books: int
    books_in_sync: int


class Readiness(msgspec.Struct, frozen=True, kw_only=True):
    """Whether the engine can trade now, and why not."""

    ready: bool
    reasons: list[str]
    markets: dict[str, MarketReadiness]
    kill_switch: bool
    breakers_tripped: list[str]


# A book unchanged this long is not ready: its connection is up and answers pings, but its feed
# stalled (a live pair changes far more often; max_data_age_ms keeps it from trading long before).
READY_BOOK_AGE_S: Final = 30


def readiness(source: MetricsSource, now_ns: int | None = None) -> Readiness:
    """Ready when at least one market runs, every market is connected with every book in sync (and,
    given the monotonic ``now_ns``, changed within ``READY_BOOK_AGE_S``), the kill switch is off
    (other breakers are reported, not counted: they reset themselves only by an operator, and the
    process is still serving) and the shutdown has not begun (no execution starts then: the drain
    of those in flight may take a minute)."""
    reasons: list[str] = ["shutting down"] if source.shutting_down else []
    markets: dict[str, MarketReadiness] = {}
    for market, connector in source.connectors.items():
        sync = connector.book_sync()
        books = list(sync.books.values()) if sync is not None else []
        connected = connector.health().connected
        synced = sum(1 for b in books if b.in_sync)
        markets[market.value] = MarketReadiness(connected=connected, books=len(books), books_in_sync=synced)
        if not connected:
            reasons.append(f"{market.value}: market data not connected")
        if not books:
            reasons.append(f"{market.value}: no books started")
        elif synced < len(books):
            reasons.append(f"{market.value}: {len(books) - synced} of {len(books)} books out of sync")
        if now_ns is not None:
            quiet = sum(1 for b in books if b.in_sync and now_ns - b.last_recv_ns > READY_BOOK_AGE_S * NS_PER_S)
            if quiet:
                reasons.append(f"{market.value}: {quiet} of {len(books)} books unchanged for over {READY_BOOK_AGE_S} s")
        if connector.private_subscribed() is False:
            reasons.append(f"{market.value}: private stream not subscribed (balances by REST only)")
    if not markets:
        reasons.append("no markets started")
    kill = False
    tripped: list[str] = []
    if source.risk is not None:
        for breaker, status in source.risk.get_circuit_breaker_status().items():
            if status.tripped:
                tripped.append(breaker.value)
        kill = Breaker.KILL_SWITCH.value in tripped
        if kill:
            reasons.append("kill switch engaged")
    return Readiness(ready=not reasons, reasons=reasons, markets=markets, kill_switch=kill, breakers_tripped=tripped)


# --- the exporter and its server ----------------------------------------------------------


class MetricsExporter:
    """The engine's metrics in a registry of their own (never the process-wide default)."""

    def __init__(
        self,
        source: MetricsSource,
        *,
        max_data_age_ms: int = 100,
        clock: Callable[[], int] = monotonic_ns,
        latency_bounds_ns: Sequence[int] = LATENCY_BOUNDS_NS,
    ) -> None:
        self.source = source
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = EngineCollector(
            source, max_data_age_ns=max_data_age_ms * 1_000_000, clock=clock, latency_bounds_ns=latency_bounds_ns
        )
        self.registry.register(self.collector)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric now."""
        return generate_latest(self.registry)

    def readiness(self) -> Readiness:
        """See ``readiness`` (books' ages by this exporter's clock)."""
        return readiness(self.source, self.collector.now_ns())


class MetricsServer:
    """aiohttp server of ``/metrics``, ``/healthz`` and ``/readyz``.

    Liveness: a heartbeat task on the engine's loop ticks every ``heartbeat_interval_s``;
    ``/healthz`` answers 503 when its last tick is older than ``liveness_timeout_s`` (the loop
    was blocked, or the heartbeat died). A loop that is blocked right now does not answer
    at all, which the probe's timeout catches.
    """

    def __init__(
        self,
        exporter: MetricsExporter,
        host: str = "127.0.0.1",
        port: int = 9464,
        *,
        heartbeat_interval_s: float = 1.0,
        liveness_timeout_s: float = 30.0,
        clock: Callable[[], int] = monotonic_ns,
    ) -> None:
        if not 0 <= port <= 65_535:
            raise ValueError(f"port={port}: must be from 0 (any free port) to 65535")
        if heartbeat_interval_s <= 0 or liveness_timeout_s <= heartbeat_interval_s:
            raise ValueError(
                f"heartbeat_interval_s={heartbeat_interval_s}, liveness_timeout_s={liveness_timeout_s}: "
                "need 0 < heartbeat_interval_s < liveness_timeout_s"
            )
        self.exporter = exporter
        self.host = host
        self._port = port
        self.heartbeat_interval_s = heartbeat_interval_s
        self._liveness_timeout_ns = int(liveness_timeout_s * NS_PER_S)
        self._clock = clock
        self._started_ns = 0
        self._beat_ns = 0
        self._heartbeat: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self.app = web.Application()
        self.app.router.add_get("/metrics", self._metrics)
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/startedz", self._startedz)
        self.app.router.add_get("/readyz", self._readyz)

    @property
    def port(self) -> int:
        """The port listened on (the one bound when started with port 0)."""
        return self._port

    @property
    def url(self) -> str:
        """Base URL of the server (an IPv6 host in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}"

    async def start(self) -> None:
        """Listen and start the heartbeat; raises ``OSError`` when the address is taken."""
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        if self._port == 0:
            self._port = int(runner.addresses[0][1])
        self._started_ns = self._beat_ns = self._clock()
        self._heartbeat = asyncio.get_running_loop().create_task(self._beat(), name="arb metrics heartbeat")
        log.info("metrics on %s/metrics (health: /healthz, /readyz)", self.url)

    async def stop(self) -> None:
        """Stop serving and the heartbeat."""
        heartbeat, self._heartbeat = self._heartbeat, None
        if heartbeat is not None:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> MetricsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _beat(self) -> None:
        while True:
            self._beat_ns = self._clock()
            await asyncio.sleep(self.heartbeat_interval_s)

    async def _metrics(self, request: web.Request) -> web.Response:
        response = web.Response(body=self.exporter.render())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def _healthz(self, request: web.Request) -> web.Response:
        now = self._clock()
        age_ns = now - self._beat_ns
        running = self._heartbeat is not None and not self._heartbeat.done()
        alive = running and age_ns <= self._liveness_timeout_ns
        body = {
            "status": "ok" if alive else "stalled",
            "uptime_s": round((now - self._started_ns) / NS_PER_S, 3),
            "heartbeat_age_s": round(age_ns / NS_PER_S, 3),
        }
        return web.json_response(body, status=200 if alive else 503)

    async def _startedz(self, request: web.Request) -> web.Response:
        started = self.exporter.source.started
        return web.json_response({"status": "ok" if started else "starting"}, status=200 if started else 503)

    async def _readyz(self, request: web.Request) -> web.Response:
        state = self.exporter.readiness()
        return web.Response(
            body=msgspec.json.encode(state), status=200 if state.ready else 503, content_type="application/json"
        )


@contextlib.asynccontextmanager
async def serve_metrics(
    config: MetricsConfig, source: MetricsSource, *, max_data_age_ms: int = 100
) -> AsyncIterator[MetricsServer | None]:
    """Serve metrics and health while the body runs when ``config.enabled``; yields None otherwise."""
    if not config.enabled:
        yield None
        return
    server = MetricsServer(MetricsExporter(source, max_data_age_ms=max_data_age_ms), config.host, config.port)
    try:
        await server.start()
    except (OSError, ValueError) as exc:  # ValueError: a host name IDNA cannot encode (UnicodeError)
        where = f"metrics.host/metrics.port {config.host}:{config.port}"
        raise ConfigurationError([f"{where}: cannot listen: {exc}"]) from exc
    try:
        yield server
    finally:
        await server.stop()

