"""The engine's top level: builds the parts, runs market data -> scan -> risk -> execute, shuts down.

``ArbitrageController`` composes, by dependency injection (every part can be replaced in
tests): the ``ExchangeFactory`` and its connectors, the ``ScannerPipeline`` sink over the
books, ``BalanceMonitor``, ``RiskManager``, the executor, ``RecoveryManager``,
``PerformanceMonitor``, the ``Journal`` and the ``ShutdownManager``.

Modes. A dry run (the default) starts the simulated venues in-process and points the
factory at them (or attaches to venues another process serves, ``sim_endpoints``);
nothing reaches a real host. Live trading refuses to start unless API
keys are present for every trading venue, a signed balance call succeeds on each, and the
``--config`` file itself states the symbols and limits (not the shipped defaults, nor
``ARB_*`` variables alone). Paper trading (``initialize(paper=True)``) reads
the real venues' public market data (or the simulated venues' public endpoints,
``sim_endpoints``) with connectors that hold no keys, and trades through
``arb.exchanges.paper.PaperExchange``: fills simulated against the live books, balances
from the ``[paper]`` inventory, funding settled on paper perpetual positions at the rates the
venues announce (``_settle_paper_funding``); no order leaves the process.

``ArbitrageEngine`` wraps a controller for programmatic use: ``session()`` starts and
stops it, ``execute_opportunity`` runs one opportunity through risk and execution.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import os
import signal
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import msgspec

from arb_core.book import ASK, BID, OrderBook
from arb_core.freshness import monotonic_ns

from .balances import BalanceMonitor, SkewAlert
from .collection import IdleCollection, collection_paused
from .config import ConfigurationManager, simulated_journal_path
from .errors import ArbitrageEngineError, ConfigurationError, ExchangeError, SessionStopped, StartupInterrupted
from .exchanges.base import BalancesReadHandler, BookKey, MarketDataTap
from .exchanges.book_sync import STREAM_RESYNC_REASONS, BookSyncStats
from .exchanges.connector import ExchangeConnector, clock_distance
from .exchanges.errors import ErrorCategory
from .exchanges.factory import ExchangeFactory, market_symbols
from .exchanges.models import Balance, Fill, OrderRequest, OrderState
from .exchanges.paper import PaperExchange
from .execution import StartedExecution, TwoLegExecutor, finish_despite_cancellation
from .funding import FundingBook
from .hedges import HedgeBook, HedgeMismatch, HedgePosition
from .instruments import (
    FEE_FIELDS, MINIMUM_FIELDS, Instrument, InstrumentCatalog, InstrumentError, pair_symbol, trading_rules_changed,
)
from .journal import (
    INTENT_LOG_SUFFIX, IntentRecord, Journal, JournalError, JournalMode, OrderResolver, base_per_unit,
    intent_log_in_use,
)
from .orders import OrderOutcome, market_symbol, round_price
from .output import write_without_blocking
from .monitor import PerformanceMonitor, Stage
from .pipeline import BPS, Leg, ScannerPipeline, SymbolPlan, walk_price
from .recovery import RecoveryManager, RecoveryStatus
from .risk import MS_PER_DAY, RiskManager, RiskRejection, amounts_valid, futures_holdings
from .secrets import VENUE_ENV_PREFIX, ApiCredentials, Secret
from .shutdown import (
    KILL_SWITCH_ENGAGE,
    KILL_SWITCH_RELEASE,
    ShutdownManager,
    StepOutcome,
    StopDelivery,
    StopSignals,
    exit_at_once,
    note_repeated_stop,
    take_held_kill_switch_signal,
    take_held_stop_signal,
)
from .sim.cluster import DISLOCATIONS_PER_MINUTE, SimCluster, SimConfig, SimEndpoints
from .sim.market import Dislocation
from .throttled_log import ThrottledWarnings
from .types import (
    ArbitrageConfig,
    ArbitrageOpportunity,
    ArbitrageState,
    EngineStatistics,
    ExchangeName,
    ExecutionResult,
    OpportunityType,
    OrderSide,
    amount_text,
)

log = logging.getLogger(__name__)

ZERO = Decimal(0)
# Commits after which the idle trade loop starts a background journal checkpoint (about 128
# trades; SQLite's own, at ``journal.AUTOCHECKPOINT_PAGES``, comes later). Each one syncs
# files, which slows the commits running beside it: fewer, larger checkpoints stall fewer intents.
JOURNAL_CHECKPOINT_COMMITS = 1024
# Execution results a controller keeps in memory for its reports and the live view, newest last.
RESULTS_KEPT = 10_000
# A journal's files: the database, SQLite's beside it, and the intent log.
_JOURNAL_FILE_SUFFIXES = ("", "-wal", "-shm", INTENT_LOG_SUFFIX)
# A residual may cost at most this fraction of max_position_size_usd to close before it is flagged.
RECOVERY_LOSS_FRACTION = Decimal("0.01")
# Orders each venue's budget must admit before an execution starts: its leg, and one recovery
# order kept in reserve, so that a leg that fails is hedged or unwound at once rather than once
# the budget's window has passed (a second on Gate.io spot, after a burst of trades).
ENTRY_ORDER_BUDGET = 2
# Status ticks in a row that may put off a collection because an opportunity was waiting (``_housekeeping``).
COLLECTION_SKIPS_MAX = 5
# How long a shutdown waits for the executions in flight to end (both legs' outcomes learned, any
# residual recovered or flagged) before it closes the connections and the journal under them. A
# recovery held by a venue's rate limit alone gives up after ``recovery.RATE_LIMITED_FOR_S``.
EXECUTIONS_DRAIN_S = 60.0
# The shutdown's whole budget: the drain and the other steps' 5 s each.
SHUTDOWN_TIMEOUT_S = EXECUTIONS_DRAIN_S + 25.0
# Operator signals of a running engine: engage and release the risk manager's kill switch.
FORCED_EXIT_CODE = 1  # a second SIGINT/SIGTERM while the start-up stops, as while a run shuts down
_STARTUP_KILL_REASONS = {True: "the operator (SIGUSR1, during start-up)", False: "the operator (SIGUSR2, during start-up)"}
# Modes whose fills carry the venue's own time (live venues, and the simulated ones of a dry run).
_VENUE_STAMPED_MODES = frozenset({"LIVE", "dry run"})
# Order failures that are the venue's state, not the order's: they feed the venue-errors breaker.
# Refusals of the order itself (balance, precision, size, unknown order) are left to the
# consecutive-failures breaker.
VENUE_FAULTS = frozenset(category.value for category in (
    ErrorCategory.OUTCOME_UNKNOWN, ErrorCategory.MAINTENANCE, ErrorCategory.RATE_LIMITED, ErrorCategory.AUTH_FAILED,
    ErrorCategory.TIMESTAMP, ErrorCategory.NOT_SENT,
))
# Refusals a change of the market's listing or rules can cause (halted, delisting, new tick or
# minimum): the trading rules are read again at once rather than at the next interval.
RULES_SUSPECT = frozenset(category.value for category in (
    ErrorCategory.ORDER_REJECTED, ErrorCategory.INVALID_REQUEST, ErrorCategory.PRECISION, ErrorCategory.MIN_NOTIONAL,
))
# Least time between two reads of the trading rules brought forward by such refusals.
EARLY_RULES_READ_SPACING_S = 1.0
# How often, at least, the venues' clocks are read (with the trading rules where those are read more often).
CLOCK_READ_INTERVAL_S = 300.0
_OUTCOME_UNKNOWN = ErrorCategory.OUTCOME_UNKNOWN.value  # an ``ExecutionLeg.error_category``
# A funding rate not refreshed for this many refresh intervals counts as missing (hedges refused).
FUNDING_STALE_REFRESHES = 3
# Least time between two futures position checks brought forward by balance changes: a burst of
# executions moves the balances many times a second, and each check is a signed REST read.
EARLY_POSITION_CHECK_SPACING_S = 0.5
# Each read of settled funding starts this long before the previous read began: a venue may list
# a settlement in its account book a little after the settlement's time.
FUNDING_READ_OVERLAP_MS = 3_600_000
STREAM_DESYNC_COUNTED_ONCE_NS = 1_000_000_000  # a market's stream-wide desyncs (a reconnect) within this count once
FUNDING_CATCH_UP_MS = 30 * 86_400_000  # how far back a first read looks for funding settled while stopped
# Paper runs look this often for a funding settlement time that has passed: the most a paper
# settlement is valued after its time.
PAPER_FUNDING_CHECK_S = 0.25


class Executor(Protocol):
    """Executes one opportunity to a final result (``arb.execution.TwoLegExecutor``)."""

    def start(self, opportunity: ArbitrageOpportunity) -> StartedExecution:
        """Journal and write both legs' orders now, awaiting nothing."""

    async def finish(self, started: StartedExecution) -> ExecutionResult:
        """Wait for both legs and settle any residual; never raises for a venue failure (it is in the result)."""

    def rehearse(self, opportunity: ArbitrageOpportunity) -> bool:
        """Encode ``opportunity``'s orders and drop them, to keep the order path warm; False when it
        cannot be planned."""

    def refusal(self, opportunity: ArbitrageOpportunity) -> str | None:
        """Why nothing of ``opportunity`` would be sent (its orders cannot be planned, or its id
        traded before), or None; nothing is journaled, reserved or sent."""


class SymbolSummary(msgspec.Struct, kw_only=True):
    """One pair's executions in a run (openings and hedge closes alike)."""

    executed: int = 0
    succeeded: int = 0
    realized_profit: Decimal = Decimal(0)


class RunSummary(msgspec.Struct, kw_only=True):
    """What one run did, for the final report."""

    mode: str
    duration_s: Decimal
    statistics: EngineStatistics
    fills: int
    rejected_by_risk: dict[str, int]
    latency_ms: dict[str, tuple[Decimal, Decimal]]  # stage -> (p50, p99)
    breakers_tripped: list[str]  # still tripped at the end, each with its reason
    resyncs: dict[str, int]
    skew_alerts: list[str]
    shutdown: list[StepOutcome]
    stop_reason: str | None = None
    error: str | None = None  # an engine task failed
    skipped_for_order_budget: int = 0  # opportunities passed up: a venue's order rate budget was spent
    skipped_as_outdated: int = 0  # queued behind an execution past the data age limit (scanned again instead)
    skipped_for_unseen_fills: int = 0  # a market's book had not been updated since our last fill there
    skipped_as_withdrawn: int = 0  # queued, then a later scan of the symbol found it gone before its turn
    resized_after_trade: int = 0  # queued before a trade on one of its markets spent balance there: scanned again
    skipped_for_halted_market: int = 0  # a leg's market stopped trading or changed its rules (``_check_trading_rules``)
    halted_markets: list[str] = []  # markets not traded at the end, each with why
    balance_drifts: int = 0  # REST reads that disagreed with the pushed balances
    open_hedges: int = 0  # spot-futures hedge positions still open at the end
    # The basis this run's executions locked in net of what they gave back by closing (hedges of an
    # earlier run included): the part of this run's realized PnL that a close may still give back.
    held_hedge_basis: Decimal = Decimal(0)
    breaker_trips: dict[str, int] = {}  # every trip of the run by breaker, those reset since included
    hedges_dropped: list[str] = []  # hedges taken out of the book: the venue no longer held their futures
    hedges_untraded: list[str] = []  # open hedges this run never closes (their pair or a market not traded), with why
    # The positions those drops took out and the basis they had locked in (part of ``held_hedge_basis``
    # when this run opened them): closed outside the engine, whatever that gave back is not in the PnL.
    dropped_positions: int = 0
    dropped_hedge_basis: Decimal = Decimal(0)
    # Residuals waiting for an operator at the end ("opportunity symbol residual: why"), earlier
    # runs' included, and how many this run flagged (its start-up's flags of what an earlier run
    # left with unmatched legs included: that run died before it could say so).
    awaiting_approval: list[str] = []
    flagged_this_run: int = 0
    # Executions the shutdown's drain left in flight (it timed out), each with its orders of unknown outcome.
    left_in_flight: list[str] = []
    funding_settled: Decimal = Decimal(0)  # settled funding this run counted (its first read: since 00:00 UTC)
    funding_payments: int = 0
    # Cycles over target_execution_time_ms (the warnings about them are rate-limited) and the slowest, ms.
    slow_cycles: int = 0
    slowest_cycle_ms: Decimal = Decimal(0)
    target_execution_time_ms: int = 0
    by_symbol: dict[str, SymbolSummary] = {}  # the pairs executed on, each pair's share of the figures above

    @property
    def ok(self) -> bool:
        """No engine failure, no residual flagged for an operator during the run, and every
        shutdown step ended OK."""
        return self.error is None and not self.flagged_this_run and all(o.status.value == "ok" for o in self.shutdown)

    def _held_hedges(self) -> str:
        held, n, dropped = self.held_hedge_basis, self.open_hedges, self.dropped_positions
        if held < 0:  # closes of hedges an earlier run opened, whose basis that run reported
            text = f"{amount_text(-held)} of it hedge basis earlier runs reported, given back by closes; {n} open hedges"
        elif dropped:
            text = f"{amount_text(held)} of it hedge basis locked in; {n} open hedges"
        elif n:
            text = f"{amount_text(held)} of it locked in {n} open hedges"
        else:
            return ""
        if dropped:
            text += (f", {dropped} dropped with {amount_text(self.dropped_hedge_basis)} locked in them by the runs that "
                     "opened them: their close outside the engine is not in this figure")
        return f" ({text})"

    def lines(self) -> list[str]:
        """The summary as printable lines."""
        s = self.statistics
        out = [
            f"arb run summary ({self.mode}, {self.duration_s} s, stopped: {self.stop_reason or '-'})",
            f"  opportunities detected   {s.opportunities_detected}",
            f"  opportunities executed   {s.opportunities_executed}",
            f"  succeeded / failed       {s.executions_succeeded} / {s.executions_failed}",
            f"  fills                    {self.fills}",
            f"  realized PnL             {amount_text(s.total_realized_profit)} USDT" + self._held_hedges(),
            *(
                [f"  funding settled          {amount_text(self.funding_settled)} USDT in {self.funding_payments} payments "
                 "(in the daily PnL, not above)"]
                if self.funding_payments else []
            ),
            *(
                f"  {symbol:<25}{part.executed} executed, {part.succeeded} succeeded, "
                f"realized PnL {amount_text(part.realized_profit)} USDT"
                for symbol, part in sorted(self.by_symbol.items()) if len(self.by_symbol) > 1
            ),
            f"  avg execution time       {s.average_execution_time_ms} ms",
            "  rejected by risk         "
            + (", ".join(f"{k} {v}" for k, v in sorted(self.rejected_by_risk.items())) or "none"),
            f"  skipped, order budget    {self.skipped_for_order_budget}",
            f"  skipped, outdated        {self.skipped_as_outdated}",
            f"  skipped, fills unseen    {self.skipped_for_unseen_fills}",
            f"  skipped, withdrawn       {self.skipped_as_withdrawn}",
            *([f"  sized again after a trade {self.resized_after_trade}"] if self.resized_after_trade else []),
            *([f"  skipped, market halted   {self.skipped_for_halted_market}"] if self.skipped_for_halted_market else []),
            *(f"  market halted            {halt}" for halt in self.halted_markets),
        ]
        for stage, (p50, p99) in self.latency_ms.items():
            out.append(f"  {'latency ' + stage:<25}p50 {p50} ms, p99 {p99} ms")
        if self.slow_cycles:
            out.append(f"  slow cycles              {self.slow_cycles} over target_execution_time_ms "
                       f"{self.target_execution_time_ms}, the slowest {self.slowest_cycle_ms} ms")
        out.append(f"  circuit breakers         {', '.join(self.breakers_tripped) or 'none tripped'}")
        if self.breaker_trips:
            out.append(
                "  breaker trips this run   " + ", ".join(f"{k} {v}" for k, v in sorted(self.breaker_trips.items()))
            )
        out.append(
            "  book resyncs             " + (", ".join(f"{k} {v}" for k, v in sorted(self.resyncs.items())) or "none")
        )
        for alert in self.skew_alerts:
            out.append(f"  {alert}")
        for dropped in self.hedges_dropped:
            out.append(f"  HEDGE DROPPED            {dropped}")
        for untraded in self.hedges_untraded:
            out.append(f"  HEDGE NOT TRADED         {untraded}")
        if self.flagged_this_run:  # what fails the run; the lines below also list earlier runs' flags
            out.append(f"  flagged this run         {self.flagged_this_run} for an operator's approval")
        for waiting in self.awaiting_approval:
            out.append(f"  AWAITING APPROVAL        {waiting}")
        if self.balance_drifts:
            out.append(f"  balance drifts           {self.balance_drifts} (REST disagreed with the pushed balances)")
        if self.error is not None:
            out.append(f"  ENGINE ERROR             {self.error}")
        for left in self.left_in_flight:
            out.append(f"  LEFT IN FLIGHT           {left}")
        failed = [o for o in self.shutdown if o.status.value != "ok"]
        out.append(
            f"  shutdown                 {len(self.shutdown)} steps"
            + (f", problems: {', '.join(f'{o.name} ({o.status.value})' for o in failed)}" if failed else ", all OK")
        )
        return out


def dry_run_cluster(
    config: ArbitrageConfig,
    seed: int = 1,
    *,
    dislocations: Sequence[Dislocation] = (),
    random_per_minute: int = DISLOCATIONS_PER_MINUTE,
    sim_config: SimConfig | None = None,
) -> SimCluster:
    """The simulated venues of a dry run: the configured symbols, with dislocations.

    The cluster's synthetic market has ``random_per_minute`` random one-venue dislocations and
    the scheduled ``dislocations`` (times on the simulator's clock, which starts with the
    cluster), so a run finds opportunities within seconds. ``sim_config`` replaces the
    cluster's own settings (default: ``seed`` and the configured symbols).
    """
    settings = sim_config or SimConfig(seed=seed, symbols=config.symbols)
    return SimCluster(msgspec.structs.replace(
        settings, dislocations_per_minute=random_per_minute, dislocations=tuple(dislocations)
    ))


def _order_names(intents: Sequence[IntentRecord]) -> dict[str, list[str]]:
    """``"market client-id"`` of each of ``intents``, by opportunity: how its orders are named to the operator."""
    named: dict[str, list[str]] = {}
    for intent in intents:
        named.setdefault(intent.opportunity_id, []).append(f"{intent.exchange.value} {intent.client_order_id}")
    return named


def _kill_switch_after_run(signum: int, frame: object) -> None:
    """SIGUSR1/SIGUSR2 once a run has ended and its program reports it (``ShutdownManager.keeps_signals``)."""
    # Not through logging: a signal handler's write may interrupt one and must not wait on it.
    write_without_blocking(
        f"arb: received {signal.Signals(signum).name} after the run ended: the kill switch has nothing to stop\n"
    )


def _warn_of_a_dry_journal_left_behind(path: str, dry_path: str) -> None:
    """A dry run on venues it does not own journaled to ``<stem>-dry`` until it had a journal of its own:
    a first run at ``path`` beside such a file says that file is not read."""
    if not os.path.exists(path) and os.path.exists(dry_path):
        log.warning(
            "journal %s: a dry run on venues of another process (--sim-urls) journals here now, not to %s, "
            "which is not read. Only if that file was written by such a run on these venues (not by a dry "
            "run on the built-in ones): stop this run, delete %s with its -wal, -shm and -intents files, "
            "and move %s with its own to that name", path, dry_path, path, dry_path,
        )


def _set_aside(path: str) -> None:
    """Start a fresh journal at ``path``, keeping the last one as ``<stem>.previous<suffix>``.

    The built-in simulated venues and paper balances start afresh with every run, so the
    orders, positions and hedges an earlier run journaled no longer exist anywhere:
    reconciling or restoring them would trade against positions nobody holds.
    """
    p = Path(path)
    if intent_log_in_use(p):
        raise ArbitrageEngineError(
            f"journal {p} is open in another running engine; stop it, or give this one another journal_path"
        )
    previous = p.with_name(f"{p.stem}.previous{p.suffix}")
    # The files beside the database too, even without it: a stray intent log would be recovered.
    present = [suffix for suffix in _JOURNAL_FILE_SUFFIXES if Path(f"{p}{suffix}").exists()]
    if not present:
        return
    try:
        for suffix in _JOURNAL_FILE_SUFFIXES:
            Path(f"{previous}{suffix}").unlink(missing_ok=True)
        for suffix in present:
            Path(f"{p}{suffix}").replace(Path(f"{previous}{suffix}"))
    except OSError as exc:
        raise ArbitrageEngineError(
            f"journal {p}: the last run's journal cannot be set aside as {previous}: {exc.strerror or exc}; "
            "make its directory writable, or give this run another journal_path"
        ) from exc
    log.info("journal: the simulated venues start afresh, so does %s (the last one is kept as %s)", p, previous)


class ArbitrageController:
    """Builds and runs the engine; every collaborator may be injected.

    ``status``: where the once-a-second status line goes (None: nowhere). ``watch_accounts``:
    read the futures venues' positions every ``balance_refresh_interval_ms`` while running, as
    at start-up (``_check_futures_positions``), and the funding they settled every
    ``funding_refresh_interval_ms`` (``_record_funding``), and every market's trading rules every
    ``instrument_refresh_interval_ms`` and the venues' clocks (``_watch_rules_and_clocks``); a
    backtest's in-process venues need none of it. ``operator_signals``: take SIGINT/SIGTERM (a
    graceful shutdown) and SIGUSR1/SIGUSR2 (the kill switch) from the process while it starts and
    runs; False leaves every signal to the caller (a backtest: stopped, it is interrupted, not a
    shorter run).
    """

    def __init__(
        self,
        config_manager: ConfigurationManager,
        *,
        factory: ExchangeFactory | None = None,
        risk: RiskManager | None = None,
        executor: Executor | None = None,
        recovery: RecoveryManager | None = None,
        monitor: PerformanceMonitor | None = None,
        shutdown: ShutdownManager | None = None,
        journal: Journal | None = None,
        balances: BalanceMonitor | None = None,
        pipeline: ScannerPipeline | None = None,
        sim_cluster: SimCluster | None = None,
        sim_endpoints: SimEndpoints | None = None,
        tap: MarketDataTap | None = None,
        status: Callable[[str], None] | None = None,
        status_interval_s: float = 1.0,
        results_kept: int | None = RESULTS_KEPT,
        clock: Callable[[], int] = monotonic_ns,
        wall_clock: Callable[[], int] = time.time_ns,
        watch_accounts: bool = True,
        operator_signals: bool = True,
    ) -> None:
        self.config_manager = config_manager
        self.config = config_manager.config
        self.factory = factory
        self.risk = risk
        self.executor = executor
        self.recovery = recovery
        self.monitor = monitor or PerformanceMonitor.from_config(self.config)
        self.shutdown_manager = shutdown or ShutdownManager(timeout_s=SHUTDOWN_TIMEOUT_S)
        self.journal = journal
        self.balances = balances
        self.pipeline = pipeline
        self.sim_cluster = sim_cluster
        self.sim_endpoints = sim_endpoints
        self.tap = tap  # sees every market-data message and snapshot (a Recorder)
        self.status = status
        self.status_interval_s = status_interval_s
        self.clock = clock  # monotonic ns; a backtest passes its virtual clock
        self.wall_clock = wall_clock  # ns since the epoch; a backtest passes the recording's
        self.watch_accounts = watch_accounts
        self.operator_signals = operator_signals
        self.mode = "not initialized"
        self.connectors: dict[ExchangeName, ExchangeConnector] = {}
        # The private side the executor, recovery and balances use: the connectors, or paper markets.
        self.traders: dict[ExchangeName, ExchangeConnector | PaperExchange] = {}
        self._owned_sim = False
        self._pending: dict[int, ArbitrageOpportunity] = {}
        self._waiter: asyncio.Future[None] | None = None  # the idle trade loop's wake-up
        self._rehearsed: ArbitrageOpportunity | None = None  # the last executed opportunity, re-encoded while idle
        self._scanning = False
        self._initialized = False
        self._spent = False  # an ``initialize`` failed, or a run or shutdown began: the parts are closed
        self._started_ns = 0
        # Called with the reason when SIGINT/SIGTERM comes between ``initialize`` and a ``run`` (a
        # session without its own run stops its body with it: ``ArbitrageEngine.session``).
        self.early_stop_hook: Callable[[str], None] | None = None
        self._startup_stop: str | None = None  # the signal that stopped the start-up
        self._stop_before_run: str | None = None  # a signal between the start-up and ``run``
        self._startup_stops = StopSignals()  # those the start-up's handlers received, to tell a repeat from a second
        self._kill_at_start: bool | None = None  # SIGUSR1 (True) or SIGUSR2 (False) during the start-up
        self._kill_journaled: tuple[str, int] | None = None  # the kill switch as an earlier run left it
        self._journal_closed = False  # by the shutdown's last steps
        self._startup_kill_journaled: bool | None = None  # the last of those the journal took
        self._early_signals: list[signal.Signals] = []  # handled from the start-up's end until ``run``
        self._fills = 0
        self._budget_skips = 0
        self._expired_skips = 0  # queued opportunities scanned again: their data passed the age limit in the queue
        self._unseen_skips = 0
        self._withdrawn_skips = 0  # queued opportunities a later scan no longer found
        self._resized_skips = 0  # queued opportunities sized again after a trade on one of their markets
        self._halted_skips = 0  # opportunities with a leg on a halted market (or one held for its rules)
        # Markets that refused a leg as changed rules would, until the rules read that refusal brought
        # forward has checked them: no new entry goes there meanwhile (each would be refused too,
        # its other leg unwound at a cost). Market -> what was refused.
        self._held_for_rules: dict[ExchangeName, str] = {}
        self.last_refusal = ""  # why ``process`` last returned None
        self._unlisted_warned: set[tuple[ExchangeName, str]] = set()  # positions on contracts not listed
        # Halted markets hedge closes may still go to, with a reduce-only futures leg only (contracts
        # being delisted: the venue takes only orders that reduce a position there).
        self._closes_reduce_only: set[BookKey] = set()
        # Markets where our orders filled: the book, when the orders were written, and the venue's
        # time of the last fill (0: not comparable with the book's event times). Until the book has
        # caught up with them (``_fills_unseen``), it still shows the liquidity we took.
        self._unseen_fills: dict[tuple[ExchangeName, str], tuple[OrderBook, int, int]] = {}
        # Paper runs: the paper markets. Their books never show what paper orders took, however
        # many frames later (``_paper_holds_back``).
        self._paper_markets: dict[ExchangeName, PaperExchange] = {}
        # The newest results (all of them with ``results_kept=None``, as a backtest's report needs):
        # a live run trades for weeks, and its statistics live in the monitor, not here.
        self._results: collections.deque[ExecutionResult] = collections.deque(maxlen=results_kept)
        self._results_total = 0
        self._by_symbol: dict[str, SymbolSummary] = {}
        self._book_stats: dict[ExchangeName, dict[str, BookSyncStats]] = {}
        # (asset, market) -> its newest skew alert and how many times it was raised this run
        self._skew_alerts: dict[tuple[str, ExchangeName], tuple[str, int]] = {}
        self._hedge_drops: list[HedgeMismatch] = []  # hedges taken out of the book this run
        self._held_basis_of_run = ZERO  # hedge basis this run's executions locked in, net of closes
        self._positions_due = asyncio.Event()  # a futures balance changed: check positions before the interval ends
        # Perpetuals a hedge close fell short on: their hedges are not closed again until a position
        # check has compared the venue's position with the book (``_check_futures_positions``).
        self._closes_held: set[tuple[ExchangeName, str]] = set()  # (futures market, pair)
        # A leg was refused as a changed market or a clock off the venue's would refuse it: read them now.
        self._reads_due = asyncio.Event()
        self._funding_since_ms: int | None = None  # wall ms the next read of settled funding starts at
        self._stream_desyncs_counted: dict[ExchangeName, int] = {}  # when a market's last stream-wide desync counted
        self._funding_settled = ZERO  # counted in this run
        self._funding_payments = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._draining: list[asyncio.Task[None]] = []  # the trade loop, once scanning stopped
        self._catalogs: dict[ExchangeName, InstrumentCatalog] = {}
        self._error: str | None = None
        self._traded_ns: dict[str, int] = {}
        self._market_traded_ns: dict[ExchangeName, int] = {}
        # Held by each execution from its checks until its balances are read: the trade loop's, a
        # hedge's close and one given through ``ArbitrageEngine.execute_opportunity`` never overlap,
        # so none is sized on balance another one's orders are spending.
        self._execution_lock = asyncio.Lock()
        self._queued_ids: set[str] = set()  # opportunities in ``process``, waiting for the lock or executing
        self._leg_symbols: dict[tuple[str, ExchangeName], str] = {}  # market_symbol, kept for the order path
        self._hedges: HedgeBook | None = None
        self.funding: FundingBook | None = None
        self.collection = IdleCollection()  # garbage collection between executions (arb.collection)
        self._collections_put_off = 0  # status ticks in a row that did not collect (``_collect_at_tick``)
        self._flagged_at_start = 0  # residuals an earlier run left that this run's start-up flagged, or raised again
        self._left_in_flight: list[str] = []  # what the shutdown's drain left in flight (``_note_left_in_flight``)

    # --- start-up -----------------------------------------------------------------------

    async def initialize(self, dry_run: bool = True, *, paper: bool = False) -> None:
        """Build every part, connect the markets, start the books and register the shutdown steps.

        ``paper``: paper trading (real public data, simulated fills; never with ``dry_run=False``).
        Raises ``ConfigurationError`` when live trading is not allowed (keys missing or
        refused, symbols and limits not stated).

        Where the loop takes signal handlers (the main thread, POSIX), SIGINT or SIGTERM while it
        runs stops the start (what it opened is closed) and raises ``StartupInterrupted``; a second
        one forces exit. SIGUSR1/SIGUSR2 set the kill switch the run starts with. Once started,
        until ``run`` takes the signals over, SIGINT or SIGTERM makes ``run`` shut down at once.
        """
        if self._initialized:
            raise ArbitrageEngineError("controller already initialized")
        if self._spent:
            raise ArbitrageEngineError("controller: its initialize() failed and closed what it opened; build a new one")
        if paper and not dry_run:
            raise ArbitrageEngineError("paper trading sends no orders: initialize(paper=True) takes dry_run=True")
        starting = asyncio.current_task()
        handled = self._install_startup_signals(starting) if self.operator_signals else []
        try:
            await self._initialize(dry_run, paper)
        except asyncio.CancelledError:
            if self._startup_stop is None or starting is None:
                raise
            starting.uncancel()
            message, flagged = f"{self._startup_stop} while starting; nothing was traded", self._flagged_at_start
            if flagged:
                message += (f"; {flagged} residual{'s' if flagged > 1 else ''} an earlier run left flagged for "
                            "manual approval (python -m arb approvals)")
            raise StartupInterrupted(message, flagged=flagged) from None
        else:
            if self._startup_stop is not None:  # its cancellation was swallowed inside the start-up
                self._stop_before_run = self._startup_stop
            self._restore_kill_switch()
            # Until ``run`` installs its own, or ``shutdown`` gives them back when no run comes.
            self._early_signals = list(dict.fromkeys([*handled, *self._install_kill_switch()]))
            return
        finally:
            if not self._initialized:
                self._spent = True
                loop = asyncio.get_running_loop()
                for sig in handled:
                    loop.remove_signal_handler(sig)
                self._keep_startup_kill()

    def _install_startup_signals(self, starting: asyncio.Task[Any] | None) -> list[signal.Signals]:
        """Handlers for the start-up and the moment after it, before ``run`` takes the signals; the
        signals handled (none where the loop takes no handlers)."""
        loop = asyncio.get_running_loop()

        def stop(sig: signal.Signals) -> None:
            # A repeat: the stop delivered twice, or the one held (``hold_stop_signals``) that came while
            # these handlers were being installed, which reaches both the hold and the loop's handler.
            if self._startup_stops.receive(sig) is StopDelivery.REPEAT:
                note_repeated_stop(sig)
                return
            reason = f"received {sig.name}"
            if self.shutdown_manager.is_shutting_down:  # shut down without a run: as a run's shutdown
                self.shutdown_manager.on_signal(sig)
            elif self._initialized:
                if self._stop_before_run is not None:
                    log.critical("received %s again before a run took the signals: forcing exit", sig.name)
                    exit_at_once(FORCED_EXIT_CODE)
                self._stop_before_run = reason
                hook = self.early_stop_hook
                if hook is not None:
                    log.warning("%s after start-up: stopping", sig.name)
                    hook(reason)
                else:
                    log.warning("%s after start-up: the run shuts down as soon as it starts", sig.name)
            elif self._startup_stop is None and starting is not None:
                self._startup_stop = reason
                log.warning("%s during start-up: stopping; what was opened is closed, nothing is traded", sig.name)
                starting.cancel()
            else:
                log.critical("received %s again while stopping the start-up: forcing exit", sig.name)
                exit_at_once(FORCED_EXIT_CODE)

        def kill_switch(engaged: bool) -> None:
            self._kill_at_start = engaged
            log.warning("%s during start-up: the kill switch is %s when trading starts",
                        (KILL_SWITCH_ENGAGE if engaged else KILL_SWITCH_RELEASE).name,
                        "engaged" if engaged else "released")
            self._journal_startup_kill()  # kept even if this start fails (else once the journal opens)

        handlers: list[tuple[signal.Signals, Callable[..., None], tuple[Any, ...]]] = [
            (signal.SIGINT, stop, (signal.SIGINT,)), (signal.SIGTERM, stop, (signal.SIGTERM,)),
            (KILL_SWITCH_ENGAGE, kill_switch, (True,)), (KILL_SWITCH_RELEASE, kill_switch, (False,)),
        ]
        handled = []
        for sig, handler, args in handlers:
            try:
                loop.add_signal_handler(sig, handler, *args)
            except (NotImplementedError, RuntimeError, ValueError):
                continue  # not the main thread, or no POSIX signals: the default handling stands
            handled.append(sig)
        # Received before these handlers (``hold_stop_signals``): the kill switch first, so that a
        # stop held too still finds it set for the next start.
        held_kill_switch = take_held_kill_switch_signal()
        if held_kill_switch is not None:
            kill_switch(held_kill_switch is KILL_SWITCH_ENGAGE)
        held = take_held_stop_signal()
        if held is not None:
            stop(held)
        return handled

    async def _initialize(self, dry_run: bool, paper: bool) -> None:
        config = self.config
        if self.journal is None:
            problems = self.config_manager.journal_path_problems()
            if problems:
                raise ConfigurationError(problems)
        # Everything it opens, the built-in simulated venues first, is closed if it fails or is stopped.
        try:
            if paper:
                self.mode = "paper"
                if self.factory is None:
                    # No keys: public data only, from the configured venues or the given simulated ones.
                    urls = self.sim_endpoints.venues if self.sim_endpoints is not None else None
                    self.factory = ExchangeFactory(self.config_manager, {}, urls)
            elif dry_run:
                self.mode = "dry run"
                if self.factory is None and self.sim_endpoints is not None:
                    # Simulated venues of another process: they outlive this engine (crash tests).
                    endpoints = self.sim_endpoints
                    credentials = ApiCredentials(Secret(endpoints.api_key), Secret(endpoints.api_secret))
                    self.factory = ExchangeFactory(
                        self.config_manager, {v: credentials for v in VENUE_ENV_PREFIX}, endpoints.venues
                    )
                if self.factory is None:
                    if self.sim_cluster is None:
                        try:
                            self.sim_cluster = dry_run_cluster(config)
                        except ValueError as exc:  # a valid symbol the built-in venues do not list
                            raise ConfigurationError(
                                [f"engine.symbols: {exc}; trade it with --paper, or against venues given by --sim-urls"]
                            ) from None
                        self._owned_sim = True
                    if self._owned_sim:
                        await self.sim_cluster.start()
                    sim = self.sim_cluster.config
                    credentials = ApiCredentials(Secret(sim.api_key), Secret(sim.api_secret))
                    self.factory = ExchangeFactory(
                        self.config_manager, {v: credentials for v in VENUE_ENV_PREFIX}, self.sim_cluster.urls()
                    )
            else:
                self.mode = "LIVE"
                _check_live_allowed(self.config_manager)
                if self.factory is None:
                    self.factory = ExchangeFactory(self.config_manager)
            self.connectors = await self.factory.create_exchanges(config.traded_markets, dry_run=dry_run, paper=paper)
            if paper:
                # A market the venue offers no trading on (MEXC futures) stays market data, as live.
                self.traders = {
                    m: PaperExchange(c, config.paper_balances.get(m.value, {}), latency_ms=config.paper_latency_ms)
                    if c.binding.trading is not None else c
                    for m, c in self.connectors.items()
                }
                self._paper_markets = {m: t for m, t in self.traders.items() if isinstance(t, PaperExchange)}
            else:
                self.traders = dict(self.connectors)
            # Also on simulated venues: signed requests and orders' deadlines carry the venue's time as
            # read; before the keys' check, so that a local clock off the venue's is no refusal of it.
            await self._check_clocks()
            if not dry_run:
                await self._verify_keys()
            await self._build_parts(dry_run)
            if self.journal is not None and self.recovery is not None:
                # Orders an earlier run left open are settled before anything new is sent.
                journal = self.journal
                with journal.damage_named():
                    interrupted = journal.interrupted_opportunities()  # read before reconciling closes intents
                    lookups = {
                        market: connector.binding.client_id_lookup_s for market, connector in self.connectors.items()
                        if connector.binding.client_id_lookup_s is not None
                    }
                    # The earlier runs' windows as they sent their orders; then this run's, before its first.
                    resolver = self.recovery.resolver(lookups, earlier_windows_ms=journal.order_windows())
                    # Each opportunity is flagged as soon as its intents are: a stop before a later
                    # one's flag must not lose it (its intents closed, the next start would not see it).
                    reconciled: set[str] = set()

                    def flag(opportunity_id: str, left_open: list[tuple[IntentRecord, str | None]]) -> None:
                        reconciled.add(opportunity_id)
                        names = _order_names([intent for intent, _ in left_open]).get(opportunity_id, [])
                        errors = [error for _, error in left_open if error is not None]
                        self._flag_residual(journal, opportunity_id, names, errors)

                    await journal.reconcile(self._resolver_with_fees(resolver), flag)
                    self._flag_interrupted(journal, sorted(interrupted - reconciled))
                    journal.record_order_windows(self.recovery.order_windows_ms())
            if self.journal is not None:
                # After reconciliation, so fills an earlier run did not live to record are in. Each
                # restore reads the fills as it goes (the hedges only their executions'), so the
                # memory of a replay follows the open orders kept, not the journal's length.
                with collection_paused(), self.journal.damage_named():
                    self._kill_journaled = self.journal.kill_switch()  # applied once the start-up is through
                    if self.hedges is not None:
                        self.hedges.restore(self.journal)
                    if self.risk is not None:
                        # Same source, same moment: today's realized loss and the positions still held count.
                        restored = self.risk.restore(
                            self.journal, self._catalogs,
                            held_basis_by_day=self.hedges.restored_basis_by_day if self.hedges is not None else None,
                        )
                        if restored.unvalued_today:
                            # Their losses would otherwise be handed back to the daily loss limit (a venue
                            # lost on, disabled, and the engine restarted): fail closed until someone looks.
                            why = restored.why_left_out
                            named = [f"{opp}: {why[opp]}" if opp in why else opp for opp in restored.unvalued_today[:5]]
                            self.engage_kill_switch(
                                f"today's realized PnL is not known whole: {len(restored.unvalued_today)} of "
                                f"today's executions could not be valued ({'; '.join(named)}): a market this run "
                                "does not trade, or an instrument the venue no longer lists; check today's loss, "
                                "then release (SIGUSR2)"
                            )
            # The journal knows only this engine's trades: the futures venues say what is held.
            await self._check_futures_positions(restored=True)
            if self.funding is not None:
                await self.funding.refresh(*self._funding_sources())
            await self._start_books()
            for untraded in self._untraded_hedges():
                log.error("hedge %s; close it by hand, or trade its pair and markets again to have it closed", untraded)
            self._drop_unheld_paper_balances()
            if self.balances is not None:
                await self._start_balance_streams(self.balances)
                await self.balances.refresh()
        except BaseException:
            await self._close_quietly()
            raise
        self._register_shutdown_steps()
        self._initialized = True

    async def _watch_futures_positions(self) -> None:
        """``_check_futures_positions`` every ``balance_refresh_interval_ms`` until cancelled, and
        sooner (at most every ``EARLY_POSITION_CHECK_SPACING_S``) once a futures market's balances
        changed: a liquidation or a position closed by hand moves the margin account first. An
        early check that could not compare (an execution overlapped it) is tried again."""
        interval_s, due = self.config.balance_refresh_interval_ms / 1000, self._positions_due
        while True:
            early = await _set_or_elapsed(due, interval_s)
            try:
                checked = await self._check_futures_positions()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("futures position check failed")
                checked = True  # logged; the next periodic check tries again
            if early:
                await asyncio.sleep(EARLY_POSITION_CHECK_SPACING_S)
                if not checked:
                    due.set()  # the change that brought this check forward is still unseen: again

    async def _watch_funding(self) -> None:
        """``_record_funding`` now and every ``funding_refresh_interval_ms`` until cancelled."""
        while True:
            try:
                await self._record_funding()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reading settled funding failed")
            await asyncio.sleep(self.config.funding_refresh_interval_ms / 1000)

    async def _record_funding(self) -> None:
        """Read the funding each traded futures market settled on the configured pairs (and on pairs
        the engine still holds a position of there), journal the
        payments not seen before and count them in the daily PnL (``RiskManager.record_funding``).

        The first read starts at the UTC day's start, or an hour before the latest payment the
        journal holds when that is earlier (what was settled while the engine was stopped, up
        to ``FUNDING_CATCH_UP_MS`` back); each later one an hour before the previous read began,
        so that an entry the venue lists late is still read (the journal keeps each payment
        once: only those it had not recorded are counted)."""
        journal = self.journal
        if journal is None:
            raise ArbitrageEngineError("controller: the journal was not built")
        now_ms = self.wall_clock() // 1_000_000
        since_ms = self._funding_since_ms
        if since_ms is None:
            since_ms = now_ms - now_ms % MS_PER_DAY
            recorded = journal.last_funding_ms()
            if recorded is not None:
                since_ms = max(min(since_ms, recorded - FUNDING_READ_OVERLAP_MS), now_ms - FUNDING_CATCH_UP_MS)
            self._funding_since_ms = since_ms
        pairs = set(self.config.symbols)
        complete = True
        for market in sorted(self._traded_futures(), key=lambda m: m.value):
            try:
                payments = await self.traders[market].funding_payments(since_ms)
            except ExchangeError as exc:
                log.warning("%s settled funding unreadable (%s): read again next time", market.value, exc)
                complete = False
                continue
            # A pair left out of the symbols whose position the engine still holds is settled on too.
            held = self.risk.held_positions(market) if self.risk is not None else {}
            wanted = [p for p in payments if pair_symbol(p.symbol) in pairs or pair_symbol(p.symbol) in held]
            for payment in journal.record_funding(market, wanted):
                self._funding_settled += payment.amount
                self._funding_payments += 1
                if self.risk is not None:
                    self.risk.record_funding(payment)
                log.info("%s %s: funding settled %s USDT (payment %s)", market.value, payment.symbol, payment.amount,
                         payment.payment_id)
        if complete:
            self._funding_since_ms = now_ms - FUNDING_READ_OVERLAP_MS

    @property
    def hedges(self) -> HedgeBook | None:
        """The open spot/futures hedges (``arb.hedges``); None where the run trades none."""
        return self._hedges

    @hedges.setter
    def hedges(self, book: HedgeBook | None) -> None:
        self._hedges = book
        self._wire_hedges()

    def _wire_hedges(self) -> None:
        """The futures position limit bounds openings by the hedges the book holds (``RiskManager.hedged_futures``)."""
        if self.risk is not None:
            self.risk.hedged_futures = self._hedges.futures_hedged if self._hedges is not None else None

    @property
    def _rules_watched(self) -> bool:
        """Whether this run reads the trading rules again while it runs (``_watch_rules_and_clocks``)."""
        return self.watch_accounts and self.config.instrument_refresh_interval_ms > 0

    async def _watch_rules_and_clocks(self) -> None:
        """Read every market's trading rules again every ``instrument_refresh_interval_ms`` and check
        them (``_check_trading_rules``) until cancelled, and the venues' clocks (``_check_clocks``)
        just before them and at least every ``CLOCK_READ_INTERVAL_S``, also with the rules read only at
        start-up (an interval of 0); a market whose rules cannot be read is checked at the next
        read. A leg refused as a changed market would refuse it, or for its timestamp, brings both
        reads forward (at most every ``EARLY_RULES_READ_SPACING_S``)."""
        loop, due = asyncio.get_running_loop(), self._reads_due
        rules_s = self.config.instrument_refresh_interval_ms / 1000 if self._rules_watched else None
        interval_s = CLOCK_READ_INTERVAL_S if rules_s is None else min(rules_s, CLOCK_READ_INTERVAL_S)
        rules_read_at = loop.time()  # read at start-up
        while True:
            early = await _set_or_elapsed(due, interval_s)
            # The clocks first: the rules read signs requests (account fee rates) by them.
            await self._check_clocks()
            # Due within half a wait: the next wake would be later than the interval asks.
            if rules_s is not None and (early or loop.time() - rules_read_at >= rules_s - interval_s / 2):
                rules_read_at = loop.time()
                await self._read_trading_rules(rules_s)
            if early:
                await asyncio.sleep(EARLY_RULES_READ_SPACING_S)

    async def _read_trading_rules(self, interval_s: float) -> None:
        """One read of every market's trading rules, each checked as it comes; the markets held for
        their rules before it began are released once it is done, whatever it found."""
        held = list(self._held_for_rules)
        try:
            await self._read_each_market_rules(interval_s)
        finally:
            for market in held:
                self._held_for_rules.pop(market, None)

    async def _read_each_market_rules(self, interval_s: float) -> None:
        pipeline = self.pipeline
        for market, connector in sorted(self.connectors.items(), key=lambda item: item[0].value):
            traded = sorted({leg.instrument.symbol for _, leg in pipeline.legs_of(market)}) if pipeline else []
            try:
                fresh = await connector.read_instruments(traded)
                fees_comparable = fresh.fees_from_account == connector.fees_from_account
            except (ExchangeError, InstrumentError) as exc:
                log.warning("%s: trading rules unreadable (%s); read again in %.0f s", market.value, exc, interval_s)
                continue
            except asyncio.CancelledError:
                raise
            except Exception:  # a watcher's failure must not stop the engine: the next read may do
                log.exception("%s: reading the trading rules failed", market.value)
                continue
            self._check_trading_rules(market, fresh, fees_comparable=fees_comparable)

    async def _check_clocks(self) -> None:
        """Read how far the local clock is from each venue whose orders this run signs: an error
        while the venue refuses signed requests at that distance, a warning once it is past half
        of what the venue takes (``ClockWindow``)."""
        for market, connector in sorted(self.connectors.items(), key=lambda item: item[0].value):
            window = connector.binding.clock_window
            if window is None or connector.binding.trading is None or self.mode == "paper":
                continue
            try:
                skew_ms = await connector.clock_skew_ms()
            except (ExchangeError, OSError, asyncio.TimeoutError) as exc:
                log.warning("%s: the venue's clock was not read (%s); read again at the next read", market.value, exc)
                continue
            refusal = window.refusal(skew_ms)
            if refusal is not None:
                log.error("%s: %s: its orders are refused until the clock is synchronised", market.value, refusal)
            elif window.near_edge(skew_ms):
                log.warning("%s: %s, past half of what its signed requests allow (%d ms ahead, %d ms behind): "
                            "synchronise the clock", market.value, clock_distance(skew_ms), window.ahead_ms,
                            window.behind_ms)
        journal, recovery = self.journal, self.recovery
        if journal is not None and recovery is not None:
            # A local clock further ahead of a venue's than before lengthens its orders' windows.
            try:
                journal.record_order_windows(recovery.order_windows_ms())
            except (JournalError, sqlite3.Error) as exc:  # the journal breaker hears of it from the journal
                log.error("journal: the markets' order windows were not recorded: %s", exc)

    def _check_trading_rules(self, market: ExchangeName, fresh: InstrumentCatalog, *, fees_comparable: bool) -> None:
        """Halt each traded symbol of ``market`` that ``fresh`` no longer lists as tradable, or lists
        with another grid than the engine trades it by (``trading_rules_changed``); resume a halted
        one once the venue lists it again as it was. A halted market's legs get no new opportunity,
        and no execution starts with a leg on it; hedge closes still go with a reduce-only futures
        leg where the venue takes such orders only (delisting).

        New minimums, and new fee rates where ``fees_comparable`` (both reads from the same source),
        are taken at once (``_take_terms``)."""
        pipeline = self.pipeline
        if pipeline is None:
            return
        traded = {leg.instrument.symbol: leg.instrument for _, leg in pipeline.legs_of(market)}
        for symbol, instrument in sorted(traded.items()):
            try:
                listed = fresh.get(symbol)
                reason = trading_rules_changed(instrument, listed)
            except InstrumentError as exc:
                listed, reason = None, f"no longer tradable: {exc}"
            left_out = fresh.left_out_reason(symbol) if reason is None and fresh.closing_only(symbol) else None
            if left_out is not None:  # listed again only for its closes (``ExchangeFactory``, at start-up)
                reason = f"no longer tradable: {left_out}"
            key = BookKey(market, symbol)
            if reason is not None:
                if pipeline.halt_market(market, symbol, reason):
                    log.error("%s %s: not traded any more: %s", market.value, symbol, reason)
                self._note_closes_reduce_only(key, fresh.closing_only(symbol))
                continue
            self._closes_reduce_only.discard(key)
            if listed is not None:
                self._take_terms(pipeline, instrument, listed, fees_comparable=fees_comparable)
            if pipeline.resume_market(market, symbol):
                log.warning("%s %s: tradable again with the rules it was halted from; trading it again",
                            market.value, symbol)
                if self.balances is not None:
                    self.balances.update_caps((market,))

    def _note_closes_reduce_only(self, key: BookKey, reduce_only: bool) -> None:
        """Whether hedge closes may still go to halted ``key`` with a reduce-only futures leg, logged when it starts."""
        if not reduce_only:
            self._closes_reduce_only.discard(key)
        elif key not in self._closes_reduce_only:
            self._closes_reduce_only.add(key)
            log.warning("%s %s: the venue still takes orders that reduce a position there: hedges on it are "
                        "closed with reduce-only orders as their rule allows", key.exchange.value, key.symbol)

    def _take_terms(
        self, pipeline: ScannerPipeline, traded: Instrument, listed: Instrument, *, fees_comparable: bool
    ) -> None:
        """Trade ``traded``'s market by ``listed``'s minimums, and fee rates where ``fees_comparable``,
        from now on: the scanner prices and sizes by them; planning, recovery and hedge closes read
        them from the catalogs, and paper fills from the connector's."""
        names = MINIMUM_FIELDS + FEE_FIELDS if fees_comparable else MINIMUM_FIELDS
        changed = {name: getattr(listed, name) for name in names if getattr(listed, name) != getattr(traded, name)}
        if not changed:
            return
        market = traded.exchange
        instrument = msgspec.structs.replace(traded, **changed)
        pipeline.update_terms(instrument)
        self._catalogs[market] = self.connectors[market].use_instrument(instrument)
        log.warning("%s %s: %s; traded by the new terms from now on", market.value, traded.symbol,
                    ", ".join(f"{name} {getattr(traded, name)} -> {value}" for name, value in changed.items()))
        if self.balances is not None:
            self.balances.update_caps((market,))  # a buy's cap leaves room for its fee
        pipeline.scan_pending()  # what stood with the old terms is found again if it still pays

    async def _settle_paper_funding(self, funding: FundingBook, markets: Sequence[PaperExchange]) -> None:
        """Paper runs: settle the announced funding rates on the paper positions as their settlement
        times pass (``PaperExchange.settle_due_funding``), every ``PAPER_FUNDING_CHECK_S``; the
        payments are then read, journaled and counted like a venue's (``_record_funding``)."""
        while True:
            await asyncio.sleep(PAPER_FUNDING_CHECK_S)
            rates, now_ms = funding.rates(), self.wall_clock() // 1_000_000
            for market in markets:
                market.settle_due_funding(rates, now_ms)

    def _drop_unheld_paper_balances(self) -> None:
        """Paper runs: drop, warning, each ``[paper]`` balance of a paper futures market in an asset
        its contracts do not settle in (``gateio_futures = { BTC = "1" }``): the account holds only
        those, and one held anyway counted in the inventory skew. (Spot inventory a run's pairs do
        not trade is merely unused.)"""
        balances = self.config.paper_balances
        for market, paper in sorted(self._paper_markets.items(), key=lambda item: item[0].value):
            if not market.is_futures:
                continue
            catalog = self._catalogs[market]
            settled = {catalog.get(name).quote for name in market_symbols(market, self.config.symbols)}
            unheld = sorted(set(balances.get(market.value, {})) - settled)
            for asset in unheld:
                log.warning("paper.%s.%s: ignored: a futures account holds only what its contracts settle in (%s)",
                            market.value, asset, ", ".join(sorted(settled)))
            paper.drop_assets(unheld)

    def _trading_mark(self) -> int | None:
        """The count of finished executions while none is in flight; None while one is."""
        risk = self.risk
        if risk is not None and risk.executions_in_flight:
            return None
        return self._results_total

    async def _check_futures_positions(self, *, restored: bool = False) -> bool:
        """Read each futures market's open positions: the hedge book drops what the venue no longer
        holds (``HedgeBook.check_venue``), the risk manager counts what it holds
        (``RiskManager.align_futures_positions``). A read overlapped by an execution is dropped:
        its positions may hold fills the books have not recorded yet, or miss some they have.
        ``restored``: just after a restore, markets the hedge book holds but this run does not
        trade are named in a warning. False when an execution kept a market from being compared
        (an unreadable market is logged and left to the next check)."""
        hedges, risk = self.hedges, self.risk
        booked = {p.futures for p in hedges.positions()} if hedges is not None and restored else set()
        checked = True
        for market in sorted(booked | self._traded_futures(), key=lambda m: m.value):
            trader = self.traders.get(market)
            if trader is None:
                log.warning("%s is not traded in this run: the hedges restored on it are not checked", market.value)
                continue
            mark = self._trading_mark()
            if mark is None:
                return False
            try:
                positions = await trader.positions()
            except ExchangeError as exc:
                log.warning("%s positions unreadable (%s): the hedge book and the risk positions are kept unchecked",
                            market.value, exc)
                continue
            if self._trading_mark() != mark:
                log.debug("%s positions read while an execution ran: not compared", market.value)
                checked = False
                continue
            holdings = futures_holdings(market, positions, self._catalogs[market], self._unlisted_warned)
            self._closes_held = {held for held in self._closes_held if held[0] is not market}
            if hedges is not None:
                # What the engine expects there: the venue's at the last read, with its fills since.
                own = risk.held_positions(market) if risk is not None else None
                for mismatch in hedges.check_venue(market, holdings, own):
                    self._hedge_drops.append(mismatch)
                    if self.journal is not None:  # so that a restart does not bring them back
                        for position in mismatch.dropped:
                            self.journal.record_hedge_drop(position.symbol, position.spot, position.futures, str(mismatch))
            if risk is not None:
                # A pair taken out of engine.symbols that the engine still holds (a hedge an earlier
                # run opened) stays aligned with the venue and watched for its liquidation distance.
                risk.align_futures_positions(market, holdings, {*self.config.symbols, *risk.held_positions(market)})
        return checked

    def _traded_futures(self) -> set[ExchangeName]:
        """The futures markets this run trades on."""
        return {m for m, t in self.traders.items() if m.is_futures and t.can_trade}

    def _resolver_with_fees(self, resolve: OrderResolver) -> OrderResolver:
        """``resolve`` with the fee filled in where the venue's order query reports none.

        MEXC spot reports fees only per trade; the executor then charges the instrument's
        taker fee in the asset the market charges it in (``OrderOutcome.fee``), and a fill
        recorded at start-up reconciliation must carry the same fee, or the journal would
        undercount it.
        """

        async def resolved(intent: IntentRecord) -> OrderState | None:
            state = await resolve(intent)
            if state is None or not state.filled_quantity or state.fee or state.fee_asset is not None:
                return state
            exchange, symbol = intent.exchange, intent.request.symbol
            request = OrderRequest(
                symbol=symbol, side=state.side, type=state.type, quantity=state.quantity, price=state.price,
                client_order_id=intent.client_order_id,
            )
            instrument = self._catalogs[exchange].get(symbol)
            fee, asset = OrderOutcome(
                exchange=exchange, instrument=instrument, request=request, leg="reconcile", state=state
            ).fee
            return msgspec.structs.replace(state, fee=fee, fee_asset=asset)

        return resolved

    def _flag_interrupted(self, journal: Journal, opportunity_ids: Sequence[str]) -> None:
        """Flag for manual approval every opportunity an earlier run left with unmatched legs, or
        with an order whose outcome reconciliation could not learn (left open: asked again at the
        next start); then hold every flag not acknowledged yet, earlier runs' included, among the
        recoveries awaiting approval (``RecoveryManager.get_active_recoveries``, the metrics' alert).

        The net is the signed base quantity over all its recorded fills (spot and futures
        legs, recovery orders included): a completed or recovered execution nets to zero.
        """
        unknown = _order_names(journal.open_intents())
        for opp in opportunity_ids:
            self._flag_residual(journal, opp, unknown.get(opp, []))
        flags = self._update_flagged_residuals(journal)
        if self.recovery is not None:
            for opp, symbol, detail in flags:
                self.recovery.restore_flagged(
                    opp, pair_symbol(symbol) if symbol else symbol, detail["residual"],
                    str(detail.get("reason", "")),
                )

    def _flag_residual(self, journal: Journal, opp: str, unknown: Sequence[str], errors: Sequence[str] = ()) -> None:
        """Flag ``opp`` for manual approval (once) when an earlier run left it with unmatched legs or
        with orders of unknown outcome (``unknown``: ``"market client id"`` each; ``errors``: why the
        venues did not say, as their queries failed)."""
        steps = {step for step, _ in journal.recovery_steps(opp)}
        # Flagged already; or closed by its recovery, whose fills may net to the fee a spot buy
        # paid in base (sold back without it: it never reached the account).
        if "manual_approval" in steps or ("recovered" in steps and not unknown):
            return
        net, lot, unvalued = self._net_of(journal, opp)
        if unknown:
            reason = (f"interrupted by an engine restart; {', '.join(unknown)} not final (unanswered, or open at "
                      "the venue): it may fill; asked again at each start until acknowledged")
            reason += "".join(f"; {error}" for error in errors)
        elif unvalued:
            # Its legs cannot be matched without their instruments: an operator checks them.
            reason = f"its fills could not be checked for unmatched legs: {'; '.join(sorted(unvalued))}"
        elif lot is None or abs(net) < lot:
            return
        else:
            reason = "interrupted by an engine restart with unmatched legs"
        log.error("opportunity %s: REQUIRES MANUAL APPROVAL: %s; open residual %s base", opp, reason, net)
        journal.record_recovery_step(opp, "manual_approval", {"reason": reason, "residual": net})
        self._flagged_at_start += 1  # the run that left it died before it could say so

    def _net_of(self, journal: Journal, opportunity_id: str) -> tuple[Decimal, Decimal | None, set[str]]:
        """The signed base quantity of all of an opportunity's recorded fills, the smallest lot among
        its markets (None: no fill valued) and why fills could not be valued (their instruments)."""
        net = ZERO
        lot: Decimal | None = None
        unvalued: set[str] = set()
        for record in journal.fills(opportunity_id):
            fill = record.fill
            catalog = self._catalogs.get(record.exchange)
            try:
                if catalog is None:
                    raise InstrumentError(f"{record.exchange.value} is not traded in this run")
                instrument = catalog.get(fill.symbol)
            except InstrumentError as exc:
                unvalued.add(str(exc))
                continue
            base = fill.quantity * base_per_unit(record.contract_size, instrument)
            net += base if fill.side is OrderSide.BUY else -base
            step = instrument.base_lot
            lot = step if lot is None else min(lot, step)
        return net, lot, unvalued

    def _update_flagged_residuals(self, journal: Journal) -> list[tuple[str, str, dict[str, Any]]]:
        """Every flag awaiting approval (``Journal.awaiting_approval``), each as it stands once checked.

        A flag's residual is what was open when it was raised; the start's reconciliation may have
        learned fills since (an order of unknown outcome found filled). Where the fills now say
        otherwise, by a lot or more, the flag is raised again with the residual they show: an
        operator must not close by hand a position that is no longer there, or leave one that is."""
        flags = journal.awaiting_approval()
        for index, (opp, symbol, detail) in enumerate(flags):
            net, lot, unvalued = self._net_of(journal, opp)
            recorded = detail["residual"]
            if unvalued or lot is None or abs(net - recorded) < lot:
                continue
            reason = f"{detail.get('reason', '')}; the fills now leave {net} base open (was {recorded})"
            log.error("opportunity %s: REQUIRES MANUAL APPROVAL: its residual is now %s base (was %s)", opp, net, recorded)
            raised = {"reason": reason, "residual": net}
            journal.record_recovery_step(opp, "manual_approval", raised)
            self._flagged_at_start += 1  # a position no run has reported yet, as a new flag is
            flags[index] = (opp, symbol, raised)
        return flags

    async def _verify_keys(self) -> None:
        """A signed balance call on every market that trades; refuses live trading if any fails, or
        answers that the account may not trade."""
        problems = []
        for market, connector in self.connectors.items():
            if connector.binding.trading is None:
                continue
            variable = connector.key_variable
            try:
                await connector.balances()
            except ArbitrageEngineError as exc:
                refused_for_time = isinstance(exc, ExchangeError) and exc.category == ErrorCategory.TIMESTAMP
                clock = await self._clock_refusal(connector) if refused_for_time else ""
                problems.append(f"exchange {market.value}: the signed balance call failed with {variable}: {exc}{clock}")
            except Exception as exc:  # named by type only: its text could quote a header, the key's value
                problems.append(
                    f"exchange {market.value}: the signed balance call with {variable} could not be made "
                    f"({type(exc).__name__})"
                )
            else:
                if connector.trading_refused is not None:
                    problems.append(
                        f"exchange {market.value}: the account of {variable} may not trade "
                        f"({connector.trading_refused}); allow the key to trade, or lift the account's "
                        "restriction, on the venue"
                    )
        if problems:
            raise ConfigurationError(problems)

    def _venue_ahead_of_monotonic_ms(self, market: ExchangeName) -> float | None:
        """How far ``market``'s clock was ahead of the local monotonic clock at the last read (ms), None
        while unread."""
        connector = self.connectors.get(market)
        return None if connector is None else connector.venue_ahead_of_monotonic_ms

    @staticmethod
    async def _clock_refusal(connector: ExchangeConnector) -> str:
        """For a signed call refused for its timestamp: how far the local clock is from the venue's, as a clause."""
        try:
            skew_ms = await connector.clock_skew_ms()
        except (ExchangeError, OSError, asyncio.TimeoutError):
            return ""
        window = connector.binding.clock_window
        reason = window.refusal(skew_ms) if window is not None else None
        return f"; {reason or clock_distance(skew_ms)}: synchronise the clock (chrony or `timedatectl set-ntp true`)"

    async def _build_parts(self, dry_run: bool) -> None:
        config = self.config
        for market, connector in self.connectors.items():
            connector.rest.on_timestamp_refused = functools.partial(self._on_timestamp_refused, market)
        if self.risk is None:
            self.risk = RiskManager(
                config.risk_limits,
                enable_risk_checks=config.enable_risk_checks,
                enable_circuit_breakers=config.enable_circuit_breakers,
            )
        if self.journal is None:
            path, kept = self._journal_location()
            if dry_run:
                if not kept:
                    _set_aside(path)
                else:
                    _warn_of_a_dry_journal_left_behind(path, simulated_journal_path(config.journal_path, "dry"))
                self.journal = Journal(path, synchronous="NORMAL", mode=self._journal_mode())
            else:
                if not os.path.exists(path):
                    # A relative journal_path started from another directory lands here too: that run's
                    # kill switch, day's loss, hedges and open orders would be silently unknown.
                    log.warning(
                        "journal %s does not exist: a new one is started, knowing no kill switch, day's PnL, "
                        "hedges or open orders of an earlier run; if the engine traded before, set "
                        "engine.journal_path (or ARB_JOURNAL_PATH) to its journal's absolute path", path,
                    )
                self.journal = Journal(
                    path, synchronous="NORMAL" if config.journal_synchronous == "NORMAL" else "FULL",
                    mode=self._journal_mode(),
                )
        if self.risk is not None:
            # A journal that cannot record stops new entries: an order sent then could not be
            # accounted after a crash.
            self.journal.on_write_failure = self.risk.record_journal_failure
        self._journal_startup_kill()  # the operator's SIGUSR1/2 before the journal was open
        if self.pipeline is None:
            self.pipeline = ScannerPipeline(
                max_data_age_ms=config.max_data_age_ms,
                opportunity_types=config.opportunity_types,
                min_profit_bps=config.risk_limits.min_profit_margin_bps,
                max_position_usd=config.risk_limits.max_position_size_usd,
                id_prefix=_run_token(),
            )
        self.pipeline.on_opportunity = self._on_opportunity
        self.pipeline.on_desync = self._on_desync
        self.pipeline.on_sync = self._on_sync
        if self.balances is None:
            self.balances = BalanceMonitor(
                {m: c for m, c in self.traders.items() if c.can_trade},
                refresh_interval_ms=config.balance_refresh_interval_ms,
                on_alert=self._on_skew,
            )
        self.balances.pipeline = self.pipeline
        if self.risk is not None:
            self.balances.position_room = self.risk.futures_room
        self.balances.venue_ahead_of_monotonic_ms = self._venue_ahead_of_monotonic_ms
        if self.recovery is None:
            self.recovery = RecoveryManager(
                self.traders,
                max_loss_quote=config.risk_limits.max_position_size_usd * RECOVERY_LOSS_FRACTION,
                journal=self.journal,
                automatic=config.enable_recovery_mode,
            )
        self._catalogs = {market: await c.instruments() for market, c in self.connectors.items()}
        if OpportunityType.SPOT_FUTURES_HEDGE in config.opportunity_types and self.hedges is None:
            self.hedges = HedgeBook(self._catalogs, min_profit_bps=config.risk_limits.min_profit_margin_bps)
        self._wire_hedges()  # a book given before the risk manager was built
        if OpportunityType.SPOT_FUTURES_HEDGE in config.opportunity_types and self.pipeline.funding is None:
            # The rates price hedges over their horizon, and paper runs settle them on paper positions.
            if self.funding is None and (config.hedge_holding_horizon_s > 0 or self.mode == "paper"):
                self.funding = FundingBook(
                    horizon_s=config.hedge_holding_horizon_s,
                    max_age_ms=FUNDING_STALE_REFRESHES * config.funding_refresh_interval_ms,
                )
            if config.hedge_holding_horizon_s > 0:
                self.pipeline.funding = self.funding
        if self.hedges is not None:
            # The guard against an opening the closing rule would close at once prices its entry
            # fees as the rule will count them: at the rates the venues charged.
            self.pipeline.charged_rates = self.hedges
        if self.executor is None:
            catalogs = self._catalogs
            self.executor = TwoLegExecutor(
                self.traders, catalogs, recovery=self.recovery, journal=self.journal, monitor=self.monitor
            )

    def _funding_sources(self) -> tuple[dict[ExchangeName, ExchangeConnector], dict[ExchangeName, list[str]]]:
        """The perpetual markets (their connectors) and the symbols whose funding rates are read."""
        sources = {m: c for m, c in self.connectors.items() if m.is_futures}
        return sources, {m: market_symbols(m, self.config.symbols) for m in sources}

    async def _start_books(self) -> None:
        pipeline = self.pipeline
        if pipeline is None:
            raise ArbitrageEngineError("controller: the scanner pipeline was not built")
        symbols = self.config.symbols
        await asyncio.gather(
            *(c.start_books(market_symbols(m, symbols), pipeline, tap=self.tap) for m, c in self.connectors.items())
        )
        limit = self.config.risk_limits.max_position_size_usd
        for symbol in symbols:
            legs = []
            for market, connector in self.connectors.items():
                (name,) = market_symbols(market, [symbol])
                instrument = await connector.instrument(name)
                if instrument.min_notional > limit:
                    # Every order would be below the market's minimum: a healthy engine that never trades.
                    log.warning("%s %s: its minimum order notional %s %s is above risk.max_position_size_usd %s: "
                                "nothing is traded on it", market.value, name, instrument.min_notional,
                                instrument.quote, limit)
                legs.append((instrument, connector.books()[name], connector.book_scale(name)))
            pipeline.register_symbol(symbol, legs)
        # A venue answering fees per symbol (MEXC) gave its books' instruments the account's rates
        # as they started: execution, recovery and hedges read the same catalogs as the scanner.
        for market, connector in self.connectors.items():
            self._catalogs[market] = await connector.instruments()
        # A pair kept only for its closes (in delisting) is halted from the start, as it is once it
        # goes so while running: no opening there, its hedges still closed reduce-only.
        for market, catalog in sorted(self._catalogs.items(), key=lambda item: item[0].value):
            if any(catalog.closing_only(name) for name in market_symbols(market, symbols)):
                self._check_trading_rules(market, catalog, fees_comparable=False)

    async def _start_balance_streams(self, balances: BalanceMonitor) -> None:
        """Start the private stream of every trading market with its balance pushes feeding ``balances``.

        Started before the first REST read, so no change falls between the two. A market
        without a private websocket would only poll orders the executor already follows:
        its balances come from REST alone (and after each execution on it).
        """
        for market, trader in self.traders.items():
            if not trader.can_trade:
                continue
            if isinstance(trader, ExchangeConnector) and trader.binding.private_stream is None:
                log.info("%s: no private balance stream; balances by REST only", market.value)
                continue
            read = balances.read_handler(market)
            if market.is_futures and self.watch_accounts:
                read = self._checking_positions(read)
            await trader.start_private_stream(
                None, _ignore, balances.balance_handler(market), on_balances_read=read,
                on_resubscribed=functools.partial(balances.refresh_soon, market),
            )

    def _checking_positions(self, read: BalancesReadHandler) -> BalancesReadHandler:
        """``read``, then the futures position check brought forward (``_watch_futures_positions``)."""
        due = self._positions_due

        def on_read(balances: Mapping[str, Balance], started_ns: int) -> None:
            read(balances, started_ns)
            due.set()

        return on_read

    def _register_shutdown_steps(self) -> None:
        add = self.shutdown_manager.add_step
        add("stop scanning", self._stop_scanning, timeout_s=5)
        add("finish executions in flight", self._finish_executions, timeout_s=EXECUTIONS_DRAIN_S)
        if self.mode == "paper" and self.watch_accounts and self._traded_futures():
            # A paper account ends with the run: what it settled since the last read is read now or never.
            add("record paper funding", self._record_funding, timeout_s=5)
        add("cancel open orders", self._cancel_open_orders, timeout_s=5)
        add("close connectors", self._close_connectors, timeout_s=5)
        add("flush journal", self._close_journal, timeout_s=5)
        if self._owned_sim:
            add("stop simulated venues", self._stop_sim, timeout_s=5)
        needed = sum(timeout for _, timeout in self.shutdown_manager.steps)
        if self.shutdown_manager.timeout_s < needed:
            log.warning("the shutdown's budget, %.0f s, is shorter than its steps' %.0f s: the last steps may be "
                        "skipped (the journal's flush among them)", self.shutdown_manager.timeout_s, needed)

    # --- the loop -----------------------------------------------------------------------

    async def run(self, duration_s: float | None = None) -> RunSummary:
        """Trade until ``duration_s`` elapses or shutdown is requested (SIGINT/SIGTERM), then shut down.

        Returns the run's summary.
        """
        if not self._initialized:
            raise ArbitrageEngineError("controller not initialized: call initialize() first")
        if self._spent:
            raise ArbitrageEngineError("controller already ran or shut down: build a new one")
        self._spent = True
        shutdown = self.shutdown_manager
        self._early_signals = []  # replaced by the run's own handlers, which it gives back at its end
        if self.operator_signals:
            shutdown.install()
        kill_switch = self._install_kill_switch()
        if self._stop_before_run is not None:
            shutdown.request_shutdown(self._stop_before_run)
        self._mark_to_market()  # restored positions are valued at their journaled fills until now
        busy: asyncio.Task[None] | None = None
        try:
            self.collection.start()
            self._started_ns = self.clock()
            self._scanning = True
            loop = asyncio.get_running_loop()
            self._tasks = [
                loop.create_task(self._trade_loop(), name="arb trade loop"),
                loop.create_task(self._housekeeping(), name="arb status"),
            ]
            if self.balances is not None:
                self._tasks.append(loop.create_task(self.balances.run(), name="arb balances"))
            if self.funding is not None:
                interval_s = self.config.funding_refresh_interval_ms / 1000
                self._tasks.append(
                    loop.create_task(self.funding.run(*self._funding_sources(), interval_s), name="arb funding")
                )
            if self.config.rehearsal_interval_ms:
                self._tasks.append(loop.create_task(self._rehearsals(), name="arb rehearsals"))
            if self.watch_accounts:
                self._tasks.append(loop.create_task(self._watch_rules_and_clocks(), name="arb trading rules and clocks"))
            if self.watch_accounts and self._traded_futures():
                self._tasks.append(loop.create_task(self._watch_futures_positions(), name="arb positions"))
                self._tasks.append(loop.create_task(self._watch_funding(), name="arb funding payments"))
            paper_futures = [t for m, t in self.traders.items() if m.is_futures and isinstance(t, PaperExchange)]
            if self.funding is not None and paper_futures:
                self._tasks.append(
                    loop.create_task(self._settle_paper_funding(self.funding, paper_futures), name="arb paper funding")
                )
            if self.config.busy_poll:
                busy = loop.create_task(_busy_poll(), name="arb busy poll")
                self._tasks.append(busy)
            waiter = asyncio.ensure_future(shutdown.wait())
            done, _ = await asyncio.wait(
                [waiter, *self._tasks], timeout=duration_s, return_when=asyncio.FIRST_COMPLETED
            )
            crashed = [t for t in self._tasks if t in done and not t.cancelled() and t.exception() is not None]
            ended = [t for t in self._tasks if t in done and waiter not in done]
            if crashed:
                self._error = f"{crashed[0].get_name()}: {crashed[0].exception()!r}"
                log.error("engine task failed", exc_info=crashed[0].exception())
            elif ended:  # each runs until the shutdown: one that returned or was cancelled left a part unrun
                self._error = f"{ended[0].get_name()}: {'cancelled' if ended[0].cancelled() else 'returned'} while running"
                log.error("engine task ended: %s", self._error)
            if not shutdown.is_shutting_down:
                shutdown.request_shutdown(self._error or "duration elapsed")
            await waiter
        finally:
            shutdown.uninstall()
            for sig in kill_switch:
                asyncio.get_running_loop().remove_signal_handler(sig)
                if shutdown.keeps_signals:  # SIGUSR1's default would end the process before it reported
                    signal.signal(sig, _kill_switch_after_run)
            self.collection.stop()
            if busy is not None:  # the shutdown steps cancel it; a cancelled run() must not leave it spinning
                busy.cancel()
        return self.summary()

    def engage_kill_switch(self, reason: str) -> None:
        """Stop every new entry (the risk manager's kill switch) and journal it, so that a restart
        keeps it engaged until ``release_kill_switch``; executions in flight and recoveries finish."""
        if self.risk is None:
            raise ArbitrageEngineError("controller not initialized: no risk manager to stop")
        log.warning("kill switch engaged (%s): no new entries until it is released (SIGUSR2); executions in "
                    "flight and recoveries finish", reason)
        if not self._initialized and self._kill_at_start is False:
            # The operator's SIGUSR2 of this start-up came before this engagement: it releases what
            # it was sent about, not this (a later SIGUSR2 does).
            self._kill_at_start = None
        self.risk.kill(reason)
        self._journal_kill_switch(True, reason)

    def release_kill_switch(self, reason: str) -> None:
        """Release the kill switch and reset every tripped breaker (the operator has looked), and journal it."""
        if self.risk is None:
            raise ArbitrageEngineError("controller not initialized: no risk manager to release")
        tripped = [b.value for b, s in self.risk.get_circuit_breaker_status().items() if s.tripped]
        log.warning("kill switch released (%s), breakers reset (tripped: %s)", reason, ", ".join(tripped) or "none")
        self.risk.reset_circuit_breaker()
        self._journal_kill_switch(False, reason)

    def _journal_kill_switch(self, engaged: bool, reason: str) -> bool:
        """Journal a change of the kill switch; whether the journal took it."""
        if self.journal is None:
            if self._journal_closed:  # a signal late in the shutdown
                log.warning("journal closed by the shutdown: the kill switch change (%s) is not kept for the next "
                            "start", reason)
            return False
        try:
            self.journal.record_kill_switch(engaged, reason)
        except Exception:  # the switch holds in this run; a restart would not know it
            log.exception("journal: the kill switch change (%s) was not recorded", reason)
            return False
        return True

    def _journal_startup_kill(self) -> None:
        """Journal the operator's SIGUSR1/SIGUSR2 of the start-up, where the journal is open."""
        engaged = self._kill_at_start
        if engaged is not None and self._journal_kill_switch(engaged, _STARTUP_KILL_REASONS[engaged]):
            self._startup_kill_journaled = engaged

    def _journal_mode(self) -> JournalMode:
        """The mode this start's journal records (``Journal``'s ``mode``)."""
        return "live" if self.mode == "LIVE" else "paper" if self.mode == "paper" else "dry run"

    def _journal_location(self) -> tuple[str, bool]:
        """Where this start's journal is, and whether an earlier run's there is kept: live, and a dry
        run on venues that outlive it (``--sim-urls``); paper and the built-in simulated venues
        start afresh, their journal set aside."""
        if self.mode == "LIVE":
            return os.path.abspath(self.config.journal_path), True
        if self.mode == "paper":
            return simulated_journal_path(self.config.journal_path, "paper"), False
        # Simulated venues this engine does not own (``--sim-urls``, or a cluster it was given) outlive
        # it: their journal is kept, apart from the built-in venues' one, whose orders exist nowhere
        # after a run.
        if self.sim_endpoints is not None or (self.sim_cluster is not None and not self._owned_sim):
            return simulated_journal_path(self.config.journal_path, "sim"), True
        return simulated_journal_path(self.config.journal_path, "dry"), False

    def _keep_startup_kill(self) -> None:
        """A start that failed before its journal opened: the operator's SIGUSR1/SIGUSR2 meanwhile goes
        into the journal all the same where the next start reads it (``_journal_location``), so that
        it holds it."""
        if self._kill_at_start is None or self._startup_kill_journaled is self._kill_at_start:
            return
        path, kept = self._journal_location()
        if not kept or self.mode == "not initialized":  # refused before it chose its mode: no journal of its own yet
            return
        try:
            with Journal(path, mode=self._journal_mode()) as journal:
                journal.record_kill_switch(self._kill_at_start, _STARTUP_KILL_REASONS[self._kill_at_start])
        except Exception:
            log.exception("journal: the kill switch set during the failed start was not recorded")

    def _restore_kill_switch(self) -> None:
        """At the end of the start-up: the operator's SIGUSR1/SIGUSR2 meanwhile, else the kill switch as
        an earlier run left it in the journal."""
        if self._kill_at_start is not None:
            if self._kill_at_start:
                self.engage_kill_switch(_STARTUP_KILL_REASONS[True])
            else:
                self.release_kill_switch(_STARTUP_KILL_REASONS[False])
            return
        kept = self._kill_journaled
        if kept is not None and self.risk is not None:
            reason, at_ms = kept
            log.warning("kill switch engaged before this start (%s, at %d ms): no new entries until SIGUSR2",
                        reason, at_ms)
            self.risk.kill(f"{reason} (engaged before this start)")

    def _install_kill_switch(self) -> list[signal.Signals]:
        """SIGUSR1 engages the kill switch, SIGUSR2 releases it and resets every tripped breaker
        (``engage_kill_switch``, ``release_kill_switch``), while ``run`` runs (where the loop takes
        signal handlers: the main thread, POSIX); the signals handled (none without ``operator_signals``)."""
        if self.risk is None or not self.operator_signals:
            return []

        def engage() -> None:
            self.engage_kill_switch("the operator (SIGUSR1)")

        def release() -> None:
            self.release_kill_switch("the operator (SIGUSR2)")

        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        for sig, handler in ((KILL_SWITCH_ENGAGE, engage), (KILL_SWITCH_RELEASE, release)):
            try:
                loop.add_signal_handler(sig, handler)
            except (NotImplementedError, RuntimeError, ValueError) as exc:
                log.warning("kill switch: %s is not handled here (%s)", sig.name, exc)
                continue
            installed.append(sig)
        return installed

    async def shutdown(self, reason: str = "requested") -> list[StepOutcome]:
        """Run the shutdown steps (once) and return their outcomes."""
        self._spent = True
        self.shutdown_manager.request_shutdown(reason)
        try:
            return await self.shutdown_manager.wait()
        finally:
            self._release_early_signals()  # after the steps: a signal meanwhile is still handled

    def _release_early_signals(self) -> None:
        """Give back the signals ``initialize`` took for the time before ``run`` (a run takes them
        over and gives them back itself)."""
        signals, self._early_signals = self._early_signals, []
        if signals:
            loop = asyncio.get_running_loop()
            for sig in signals:
                loop.remove_signal_handler(sig)

    def _on_opportunity(self, opportunity: ArbitrageOpportunity, plan: SymbolPlan) -> None:
        if self._scanning:
            self._pending[plan.symbol_id] = opportunity
            self._wake()

    def _on_sync(self, key: BookKey) -> None:
        """A book came (back) in sync: its market's balance caps follow its prices now, not at the next refresh."""
        if self.balances is not None:
            self.balances.update_caps((key.exchange,))

    def _on_desync(self, key: BookKey, reason: str) -> None:
        if self.risk is None or not self._scanning or reason == "shutdown":
            return
        if reason in STREAM_RESYNC_REASONS:
            # A dropped stream (or a message of it lost) desyncs each of its books at once: one event
            # for the stale-data breaker, not one per book (a routine reconnect would trip it with five books).
            now = self.clock()
            last = self._stream_desyncs_counted.get(key.exchange)
            if last is not None and now - last < STREAM_DESYNC_COUNTED_ONCE_NS:
                return
            self._stream_desyncs_counted[key.exchange] = now
        self.risk.record_stale_data(key.exchange, key.symbol, desynced=True)

    def _on_timestamp_refused(self, market: ExchangeName, where: str) -> None:
        """Any signed request of ``market`` refused for its timestamp (an order, its query or cancel,
        a balance read) brings the venue's clock read forward, with the rules read where they are
        read while running (``_watch_rules_and_clocks``)."""
        if self.watch_accounts:
            self._read_now(logging.WARNING, "%s %s refused for its timestamp: reading the venue's clock now",
                           market.value, where)

    def _read_now(self, level: int, message: str, *args: object) -> None:
        """Bring the next clock read, and rules read where they are read while running, forward
        (``_watch_rules_and_clocks``), saying why, unless it is already due."""
        if not self._reads_due.is_set():
            log.log(level, message, *args)
            self._reads_due.set()

    def _on_skew(self, alert: SkewAlert) -> None:
        key = (alert.asset, alert.exchange)
        _, times = self._skew_alerts.get(key, ("", 0))
        self._skew_alerts[key] = (alert.message(), times + 1)

    def _wake(self) -> None:
        """Resume the idle trade loop (one event-loop step away; a no-op while it is busy)."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _trade_loop(self) -> None:
        interval_s = self.config.opportunity_scan_interval_ms / 1000
        interval_ns = self.config.opportunity_scan_interval_ms * 1_000_000
        pipeline = self.pipeline
        if pipeline is None:
            raise ArbitrageEngineError("controller: the scanner pipeline was not built")
        loop = asyncio.get_running_loop()
        hedges_checked_ns = self.clock()
        while self._scanning:
            if not self._pending:
                journal = self.journal
                if journal is not None and journal.uncheckpointed >= JOURNAL_CHECKPOINT_COMMITS:
                    journal.start_checkpoint()  # off the loop, rather than automatically on an intent's commit
                self.collection.collect_if_due()  # here rather than inside the next execution
                # A bare future rather than ``wait_for(event.wait())``: the scan's wake-up reaches
                # this task in one loop step instead of three (event task, wait_for, this task).
                self._waiter = waiter = loop.create_future()
                # Scans run on every book update and wake this loop themselves; the timer only
                # re-checks open hedges, whose closing rule needs no update of its own to turn.
                hedges = self.hedges
                timer = None
                if hedges is not None and hedges.has_positions():
                    timer = loop.call_later(interval_s, self._wake)
                try:
                    await waiter
                finally:
                    if timer is not None:
                        timer.cancel()
                    self._waiter = None
            pipeline.scan_pending()
            while self._pending and self._scanning:
                # Taken before the queue is read: an execution given meanwhile (``execute_opportunity``)
                # ends first, and what it traded decides the checks below (uncontended, no wait).
                async with self._execution_lock:
                    if not (self._pending and self._scanning):
                        continue
                    pending = self._pending
                    # Of several standing at once, the most profitable: the first would spend the
                    # balances the others are sized on, and they age while it executes.
                    symbol_id = next(iter(pending)) if len(pending) == 1 else max(
                        pending, key=lambda s: pending[s].total_profit_estimate
                    )
                    opportunity = pending.pop(symbol_id)
                    # A scan older than our own last trade on the symbol priced liquidity we may have taken.
                    if opportunity.detected_at <= self._traded_ns.get(opportunity.symbol, -1):
                        continue
                    # A read after the one that queued it scanned the symbol again and found nothing (a
                    # new hit would have replaced it in the queue): the books no longer show it.
                    if not pipeline.stands(symbol_id, opportunity):
                        self._withdrawn_skips += 1
                        continue
                    # Queued behind another execution until its data is older than the limit: stale data
                    # never trades, so a fresh scan decides (it queues the opportunity again if it stands).
                    # The books' own age counts too: one nearly at the limit when scanned is past it now.
                    now = self.clock()
                    if now - opportunity.detected_at > pipeline.max_age_ns or not pipeline.books_fresh(
                        symbol_id, opportunity, now
                    ):
                        self._expired_skips += 1
                        pipeline.scan(symbol_id)
                        continue
                    # One older than our last trade on one of its markets was sized on balances that trade
                    # spent: sized again now (it queues itself again if it still stands).
                    traded = self._market_traded_ns
                    if traded and opportunity.detected_at < max(
                        traded.get(opportunity.buy_exchange, -1), traded.get(opportunity.sell_exchange, -1)
                    ):
                        self._resized_skips += 1
                        pipeline.scan(symbol_id)
                        continue
                    # The update that shows our last fill is still to come (its scan queues this again if it stands).
                    if self._skip_for_unseen_fills(opportunity):
                        continue
                    await self._process_locked(opportunity)
                # Standing opportunities on several symbols can keep the queue from emptying: open
                # hedges are still checked every scan interval.
                if self.hedges is not None and self._scanning and self.clock() - hedges_checked_ns >= interval_ns:
                    await self._close_hedges(self.hedges, pipeline)
                    hedges_checked_ns = self.clock()
            if self.hedges is not None and self._scanning:
                await self._close_hedges(self.hedges, pipeline)
                hedges_checked_ns = self.clock()

    def _note_traded(self, opportunity: ArbitrageOpportunity) -> None:
        """When ``opportunity`` was last decided on, for its symbol and both its markets (``_trade_loop``)."""
        now = self.clock()
        self._traded_ns[opportunity.symbol] = now
        self._market_traded_ns[opportunity.buy_exchange] = now
        self._market_traded_ns[opportunity.sell_exchange] = now

    async def _rehearsals(self) -> None:
        """Every ``engine.rehearsal_interval_ms`` while the trade loop waits for the next opportunity,
        rehearse the path of the next one: converting the scanner's last hit
        (``ScannerPipeline.rehearse``), then, for the last executed opportunity, the risk check
        (``RiskManager.rehearse``), the order-budget check and the execution up to its writes
        (``TwoLegExecutor.rehearse``). Nothing is counted, reserved, spent or sent.

        None runs while an execution is in flight, also one given while the trade loop waits
        (``ArbitrageEngine.execute_opportunity``). One that raises is logged and the opportunity is
        not rehearsed again until the next execution: a rehearsal never stops the engine."""
        interval_s = self.config.rehearsal_interval_ms / 1000
        executor, risk = self.executor, self.risk
        if executor is None or risk is None:
            raise ArbitrageEngineError("controller: the executor and the risk manager were not built")
        failures = ThrottledWarnings(log, "rehearsals failed")
        while True:
            await asyncio.sleep(interval_s)
            if self._waiter is None or self._execution_lock.locked() or risk.executions_in_flight:
                continue
            try:
                pipeline = self.pipeline
                if pipeline is not None:
                    pipeline.rehearse(self.clock())
                opportunity = self._rehearsed
                if opportunity is None:
                    continue
                risk.rehearse(opportunity)
                self._order_wait_s(opportunity)
                if not executor.rehearse(opportunity):
                    self._rehearsed = None  # cannot be planned any more (instruments changed): wait for the next
            except Exception as exc:
                self._rehearsed = None
                failures.warn(
                    type(exc).__name__, self.clock(), "rehearsal failed, not repeated until the next execution: %r", exc,
                    exc_info=True,
                )

    async def _close_hedges(self, hedges: HedgeBook, pipeline: ScannerPipeline) -> None:
        """Send the closing pair of every hedge position whose basis has reverted (``arb.hedges``)."""
        async with self._execution_lock:  # sized on the balances no given execution is spending
            for position in hedges.positions():
                if not self._scanning:
                    return  # shutting down: a close is a new execution like any other
                if not hedges.holds(position) or (position.futures, position.symbol) in self._closes_held:
                    # A position check meanwhile (while an earlier close settled) dropped or changed it:
                    # its closing pair would open a position rather than close one. Or a close fell short
                    # on its perpetual and no check has looked since.
                    continue
                legs = self._hedge_legs(pipeline, position)
                if legs is None:
                    continue
                balances, funding = self.balances, self.funding
                # Holding the futures leg (short for a long-spot hedge) earns or pays funding a close forgoes.
                held_funding = ZERO if funding is None else funding.held(
                    position.futures, legs[1].instrument.symbol, OrderSide.SELL if position.base > 0 else OrderSide.BUY,
                    position.futures_price,
                )
                closing = hedges.close_opportunity(
                    position, *legs, id_prefix=pipeline.id_prefix, detected_ns=self.clock(),
                    max_age_ns=pipeline.max_age_ns, max_notional=self.config.risk_limits.max_position_size_usd,
                    spot_held=balances.free(position.spot, legs[0].instrument.base) if balances is not None else None,
                    quote_free=balances.free(position.spot, legs[0].instrument.quote) if balances is not None else None,
                    held_funding_per_base=held_funding,
                    futures_held=(
                        self.risk.held_positions(position.futures).get(position.symbol, ZERO)
                        if self.risk is not None else None
                    ),
                )
                if closing is not None and not (
                    (self._unseen_fills or self._paper_markets) and self._fills_unseen(closing)
                ):
                    result = await self._process_locked(closing, closes_hedge=True)
                    if result is not None and _futures_short(result):
                        # Its futures leg fell short, maybe clipped or refused as reduce-only: the venue's
                        # position may be smaller than the book's (closed by hand, liquidated). Checked now,
                        # the book drops what is gone; no close goes to that perpetual until then, or each
                        # would pay the spot round trip again while executions in flight put the check off.
                        if self.watch_accounts:  # a position check runs (``_watch_futures_positions``)
                            self._closes_held.add((position.futures, position.symbol))
                        self._positions_due.set()

    def _untraded_hedges(self) -> list[str]:
        """The open hedges this run never closes (``_hedge_legs`` finds no legs for them), each with
        why: a pair not in ``engine.symbols`` (a hedge an earlier run opened), or a market not traded."""
        hedges, pipeline = self.hedges, self.pipeline
        if hedges is None or pipeline is None or not pipeline.plans:  # no symbol registered yet: a start cut short
            return []
        untraded = []
        for position in hedges.positions():
            if self._hedge_legs(pipeline, position) is not None:
                continue
            if position.symbol not in self.config.symbols:
                why = f"{position.symbol} is not in engine.symbols"
            else:
                why = f"{position.spot.value} and {position.futures.value} are not both traded in this run"
            untraded.append(f"{position.symbol} {position.spot.value}/{position.futures.value} {position.base} base: "
                            f"{why}: never closed by this run")
        return untraded

    @staticmethod
    def _hedge_legs(pipeline: ScannerPipeline, position: HedgePosition) -> tuple[Leg, Leg] | None:
        found: dict[ExchangeName, Leg] = {}
        for market in (position.spot, position.futures):
            for plan, leg in pipeline.legs_of(market):
                if plan.symbol == position.symbol:
                    found[market] = leg
        if len(found) < 2:
            return None
        return found[position.spot], found[position.futures]

    async def process(
        self, opportunity: ArbitrageOpportunity, *, closes_hedge: bool = False, given: bool = False
    ) -> ExecutionResult | None:
        """Risk-check and execute one opportunity, recording it everywhere; None when refused
        (``last_refusal`` says why).

        ``closes_hedge``: the pair closes an open hedge (``RiskManager.validate_opportunity_risk``).
        ``given``: it comes from outside the scanner (``ArbitrageEngine.execute_opportunity``) and is
        checked against ``max_data_age_ms``, the books and the balances first (``_given_refusal``).

        One execution at a time: while another runs (the trade loop's, a hedge's close, another
        given one) it waits for that one to end and its balances to be read, then is checked.
        A cancellation once the orders are out waits for the execution to end and be recorded.
        """
        opportunity_id = opportunity.opportunity_id
        if opportunity_id in self._queued_ids:
            self._refuse_in_flight(opportunity_id)
            return None
        self._queued_ids.add(opportunity_id)
        try:
            async with self._execution_lock:
                return await self._process_locked(opportunity, closes_hedge=closes_hedge, given=given)
        finally:
            self._queued_ids.discard(opportunity_id)

    def _refuse_in_flight(self, opportunity_id: str) -> None:
        """Refuse ``opportunity_id``, given again while it waits or executes (``last_refusal``)."""
        # Given twice (``ArbitrageEngine.execute_opportunity``): its client ids are taken, and its
        # end would release the running execution's reservation while its orders are out.
        log.warning("opportunity %s is being executed already: not started again", opportunity_id)
        self.last_refusal = "not executed: an execution of this opportunity is in flight"

    async def _process_locked(
        self, opportunity: ArbitrageOpportunity, *, closes_hedge: bool = False, given: bool = False
    ) -> ExecutionResult | None:
        """``process``, the caller holding ``_execution_lock``; an execution is noted as traded (``_note_traded``)."""
        risk, executor, monitor = self.risk, self.executor, self.monitor
        if risk is None or executor is None:
            raise ArbitrageEngineError("controller not initialized: call initialize() first")
        if self.shutdown_manager.is_shutting_down:
            # Its orders would go out under the shutdown, past the wait for executions in flight:
            # their open orders cancelled, then the connectors and the journal closed under them.
            self.last_refusal = "not executed: the engine is shutting down"
            return None
        if risk.in_flight(opportunity.opportunity_id):
            self._refuse_in_flight(opportunity.opportunity_id)
            return None
        pipeline = self.pipeline
        if pipeline is not None and pipeline.halted and self._on_halted_market(pipeline, opportunity, closes_hedge):
            self._halted_skips += 1
            self.last_refusal = "not executed: a leg's market is halted (its trading rules changed or it stopped trading)"
            return None
        held = self._held_for_rules
        if held and not closes_hedge and (opportunity.buy_exchange in held or opportunity.sell_exchange in held):
            self._halted_skips += 1
            self.last_refusal = ("not executed: a leg's market refused an order as changed trading rules would; "
                                 "no new entry there until its rules are read")
            return None
        start = self.clock()
        max_age_ms = self.config.max_data_age_ms
        if given and start - opportunity.detected_at > max_age_ms * 1_000_000:
            # Checked once any execution it waited for has ended: stale data never trades.
            self.last_refusal = (f"not executed: detected {(start - opportunity.detected_at) / 1e6:.1f} ms ago, "
                                 f"past max_data_age_ms ({max_age_ms})")
            return None
        monitor.record_opportunity_detected()
        monitor.record_stage(Stage.DETECT, max(0, start - opportunity.detected_at))
        if given:
            refusal = self._given_refusal(opportunity, start)
            if refusal is not None:
                log.debug("%s", refusal)
                self.last_refusal = refusal
                return None
        try:
            risk.validate_opportunity_risk(opportunity, closes_hedge=closes_hedge)
        except RiskRejection as exc:
            log.debug("%s", exc)
            self.last_refusal = f"refused by risk checks: {exc}"
            return None
        finally:
            monitor.record_stage(Stage.RISK, self.clock() - start)
        wait_s = self._order_wait_s(opportunity)
        if wait_s > 0:
            # Both legs go now or neither does: a leg queued behind its venue's order budget
            # would arrive up to a window after the other one, at a price long gone.
            self._budget_skips += 1
            log.debug("%s: skipped, the order budget admits the next order in %.3f s", opportunity.opportunity_id, wait_s)
            self.last_refusal = f"not executed: the order budget admits both legs' orders in {wait_s:.3f} s"
            return None
        risk.record_execution_started(opportunity)
        self._rehearsed = opportunity
        # The orders go out in this step; from then on the execution and its records run to their
        # end even if this call is cancelled (the cancellation is raised once they have).
        started = executor.start(opportunity)
        # Nothing was awaited since the writes: the balances are still those the orders met.
        balances = self.balances
        frees = balances.frees((opportunity.buy_exchange, opportunity.sell_exchange)) if balances is not None else {}
        result = await finish_despite_cancellation(self._finish(executor, risk, started, frees))
        if balances is not None:
            # Pushed markets are current already; the others are read now, and so is a futures
            # market where a leg filled: the next futures leg is sized by the margin that fill used,
            # which its push may bring only after the next opportunity is sized.
            # A leg of unknown outcome may have filled as well.
            margin_used = {
                leg.exchange for leg in result.legs
                if leg.exchange.is_futures and (leg.filled_quantity > 0 or leg.error_category == _OUTCOME_UNKNOWN)
            }
            stale = margin_used | {leg.exchange for leg in result.legs if not balances.streamed(leg.exchange)}
            if stale:
                unread = await balances.refresh(stale) & margin_used
                if unread:
                    # Its margin is still what it was before the fill: nothing is sized there until a read answers.
                    log.warning("%s: margin unread after a fill there: not traded until a balance read succeeds",
                                ", ".join(sorted(m.value for m in unread)))
                    balances.hold_until_read(unread)
        self._note_traded(opportunity)
        return result

    def _given_refusal(self, opportunity: ArbitrageOpportunity, now: int) -> str | None:
        """Why an opportunity from outside the scanner may not trade, or None.

        The scanner prices its own on the books; a given one is checked against them as the
        scanner would price it: detected no later than now, its symbol (spot form) scanned on both
        its markets, both books in sync, fresh and showing our last fills there (as the trade loop
        waits for them: ``_skip_for_unseen_fills``), limits that reach what its quantity walks to
        (a buy at or above the walked ask; a sell at the walked bid, on the tick grid: one far
        under the bids fills at the bids, past the notional the risk checks valued it at), a
        quantity the free balances allow as the scanner's caps would (``BalanceMonitor.leg_caps``), funding
        as the engine's funding book expects it (a hedge the closing rule would close at once is
        refused, as the scanner refuses it), and a profit and margin its limits as sent, the
        markets' fees and that funding give (the risk checks read the stated ones). Amounts that
        are not finite and positive are left to the risk checks, which refuse them by name.
        """
        opp, pipeline = opportunity, self.pipeline
        if pipeline is None:
            raise ArbitrageEngineError("controller: the scanner pipeline was not built")
        if not amounts_valid(opp):
            return None
        where = f"opportunity {opp.opportunity_id} {opp.symbol}"
        if not (opp.buy_fee.is_finite() and opp.sell_fee.is_finite()):
            return f"refused by risk checks: {where}: buy_fee={opp.buy_fee}, sell_fee={opp.sell_fee}: must be finite"
        if opp.detected_at > now:
            return f"not executed: {where}: detected_at {opp.detected_at} is ahead of the engine's clock ({now})"
        found = pipeline.legs_for(opp.symbol, opp.buy_exchange, opp.sell_exchange)
        if found is None:
            return (f"not executed: {where}: the scanner does not pair {opp.buy_exchange.value} with "
                    f"{opp.sell_exchange.value} for it (name the pair in spot form, as BTC/USDT)")
        executor = self.executor
        unsendable = executor.refusal(opp) if executor is not None else None
        if unsendable is not None:
            return f"not executed: {unsendable}"
        symbol_id, buy, sell = found
        if not (buy.book.in_sync and sell.book.in_sync and pipeline.books_fresh(symbol_id, opp, now)):
            return f"not executed: {where}: a leg's book is out of sync or older than max_data_age_ms"
        if self._skip_for_unseen_fills(opp):
            return (f"not executed: {where}: a leg's book does not show our last fill there yet, and may still "
                    "hold the liquidity it took")
        quantity = opp.max_quantity
        worst_ask, worst_bid = walk_price(buy, ASK, quantity), walk_price(sell, BID, quantity)
        if worst_ask is None or worst_bid is None:
            return f"not executed: {where}: a leg's book does not hold its quantity {quantity}"
        bi, si = buy.instrument, sell.instrument
        # The limits as the executor sends them: on the tick grid, toward the book.
        buy_limit = round_price(bi, opp.buy_price, OrderSide.BUY, marketable=True)
        sell_limit = round_price(si, opp.sell_price, OrderSide.SELL, marketable=True)
        if buy_limit < worst_ask:
            return (f"not executed: {where}: buy limit {opp.buy_price} does not reach {worst_ask}, the "
                    f"{buy.exchange.value} ask its quantity walks to")
        lowest_sell = round_price(si, worst_bid, OrderSide.SELL, marketable=True)
        if not lowest_sell <= sell_limit <= worst_bid:
            return (f"not executed: {where}: sell limit {opp.sell_price} is not at {worst_bid}, the "
                    f"{sell.exchange.value} bid its quantity walks to (on the tick grid: {lowest_sell})")
        balances = self.balances
        if balances is not None:
            # Within the free balances as the scanner sizes its own (``BalanceMonitor.leg_caps``),
            # the buy also paid for at its limit: one walking past the best ask pays more per unit.
            for leg in (buy, sell):
                if balances.held_for_read(leg.exchange):
                    return (f"not executed: {where}: {leg.exchange.value}'s balances are out of date (the read "
                            "after a fill there failed): nothing is traded there until a read succeeds")
            plan = pipeline.plans[symbol_id]
            buy_caps, sell_caps = balances.leg_caps(plan.symbol, buy), balances.leg_caps(plan.symbol, sell)
            buys = min(buy_caps.buy, buy_caps.buy_quote / (buy_limit * (1 + bi.taker_fee)))
            for leg, side, most in ((buy, "buy", buys), (sell, "sell", sell_caps.sell)):
                allowed = plan.size_of(plan.common_size(most))
                if quantity > allowed:
                    return (f"not executed: {where}: its quantity {amount_text(quantity)} is above the "
                            f"{amount_text(allowed)} the free balances on {leg.exchange.value} let it {side}")
        cost, proceeds = quantity * buy_limit, quantity * sell_limit
        funding = ZERO
        if opp.opportunity_type is OpportunityType.SPOT_FUTURES_HEDGE and pipeline.funding is not None:
            expected = pipeline.hedge_funding(pipeline.funding, buy, sell, quantity, buy_limit, sell_limit)
            if expected is None:
                futures = bi if bi.is_futures else si
                return f"not executed: {where}: no fresh funding rate for {futures.exchange.value} {futures.symbol}"
            if expected < 0 and pipeline.closes_at_once(pipeline.funding, buy, sell, quantity):
                return (f"not executed: {where}: the funding it would pay ({expected}) would have the hedges' "
                        "closing rule close it at once on these books")
            funding = expected
        if opp.expected_funding > funding:
            return (f"refused by risk checks: {where}: its expected funding {opp.expected_funding} is above "
                    f"what the engine expects ({funding})")
        profit = (proceeds - cost - cost * max(opp.buy_fee, bi.taker_fee)
                  - proceeds * max(opp.sell_fee, si.taker_fee) + opp.expected_funding)
        if opp.total_profit_estimate > profit or opp.profit_margin_bps * cost > profit * BPS:
            return (f"refused by risk checks: {where}: its stated profit {opp.total_profit_estimate} "
                    f"({opp.profit_margin_bps} bps) is above what its limits as sent, the markets' fees and "
                    f"its funding give ({profit})")
        return None

    def _on_halted_market(
        self, pipeline: ScannerPipeline, opportunity: ArbitrageOpportunity, closes_hedge: bool
    ) -> bool:
        """Whether a leg of ``opportunity`` is on a market ``_check_trading_rules`` halted, and may not go
        there: only a hedge's close may, with a reduce-only futures leg where ``_closes_reduce_only`` has the market."""
        symbol = opportunity.symbol
        for market in (opportunity.buy_exchange, opportunity.sell_exchange):
            key = BookKey(market, self._leg_symbol(symbol, market))
            if key not in pipeline.halted:
                continue
            if not (closes_hedge and key in self._closes_reduce_only and opportunity.futures_reduce_only
                    and market.is_futures):
                return True
        return False

    async def _finish(
        self, executor: Executor, risk: RiskManager, started: StartedExecution,
        frees: Mapping[tuple[ExchangeName, str], Decimal],
    ) -> ExecutionResult:
        """Finish a started execution and record its result everywhere; ``frees``: the free
        balances of its markets when its orders were written (``BalanceMonitor.frees``)."""
        result = await executor.finish(started)
        opportunity, monitor = started.opportunity, self.monitor
        self._record_fills(result)
        self._spend_balances(result, frees)
        locked = ZERO
        try:
            if self.hedges is not None:
                # A hedge's opening reports the basis it locked in as realized PnL, and its close gives
                # it back: the daily loss limit counts it only once a close realizes it.
                held = self.hedges.held_basis()
                self.hedges.record(opportunity, result)
                locked = self.hedges.held_basis() - held
                self._held_basis_of_run += locked
        finally:  # the reservation is released whatever the hedge book made of it
            risk.record_execution(result, contract_sizes=self._contract_sizes(result), held_basis=locked)
        # The scanner's caps follow the positions' room at once: a fill moved it, and so may an
        # order of unknown outcome (counted as if it filled).
        futures = {
            leg.exchange for leg in result.legs
            if leg.exchange.is_futures and (leg.filled_quantity > 0 or leg.error_category == ErrorCategory.OUTCOME_UNKNOWN)
        }
        if futures and self.balances is not None:
            self.balances.update_caps(futures)
        for leg in result.legs:
            if leg.error_category in VENUE_FAULTS:
                risk.record_venue_error(leg.exchange, leg.error or leg.error_category or "")
            elif leg.error_category in RULES_SUSPECT:
                if self._rules_watched:
                    self._held_for_rules.setdefault(leg.exchange, f"{leg.symbol} refused ({leg.error_category})")
                    self._read_now(logging.INFO, "%s %s refused (%s): reading the trading rules again now; "
                                   "no new entry there until they are", leg.exchange.value, leg.symbol,
                                   leg.error_category)
        monitor.record_execution(result)
        monitor.record_cycle(self.clock() - opportunity.detected_at, opportunity.opportunity_id)
        self._results.append(result)
        self._results_total += 1
        part = self._by_symbol.get(opportunity.symbol)
        if part is None:
            part = self._by_symbol[opportunity.symbol] = SymbolSummary()
        part.executed += 1
        part.succeeded += result.final_state is ArbitrageState.COMPLETED
        part.realized_profit += result.realized_profit
        self._fills += sum(1 for leg in result.legs if leg.filled_quantity > 0)
        self._hold_until_fills_seen(started, result)
        log.info(
            "%s %s buy %s sell %s: %s, realized %s%s",
            opportunity.opportunity_id, opportunity.symbol, opportunity.buy_exchange.value,
            opportunity.sell_exchange.value, result.final_state.name, result.realized_profit,
            f", expected funding {opportunity.expected_funding}" if opportunity.expected_funding else "",
        )
        return result

    def _spend_balances(self, result: ExecutionResult, frees: Mapping[tuple[ExchangeName, str], Decimal]) -> None:
        """Take what ``result``'s spot fills spent off the balances the scanner sizes by, until the
        venues show it (``BalanceMonitor.spend``; ``frees``: the free balances when the orders were
        written): a buy's quote with its taker fee, a sell's base. Nothing received is counted
        before the venue says so."""
        balances = self.balances
        if balances is None:
            return
        # A leg after another on the same market and asset (a recovery order beside the leg it
        # completes) starts from what the earlier ones left: from the same ``before``, the first
        # one's push would read as showing the later spending too, and its quote count as free.
        left = dict(frees)
        for leg in result.legs:
            if not leg.filled_quantity or leg.exchange.is_futures or leg.average_price is None:
                continue
            catalog = self._catalogs.get(leg.exchange)
            if catalog is None:
                continue
            instrument = catalog.get(leg.symbol)
            if leg.side is OrderSide.BUY:
                asset, amount = instrument.quote, leg.filled_quantity * leg.average_price * (1 + instrument.taker_fee)
            else:
                asset, amount = instrument.base, leg.filled_quantity
            before = left.get((leg.exchange, asset), ZERO)
            balances.spend(leg.exchange, asset, amount, before=before)
            left[(leg.exchange, asset)] = before - amount

    def _hold_until_fills_seen(self, started: StartedExecution, result: ExecutionResult) -> None:
        """Note the markets where a leg of ``result`` filled: their books show the liquidity it took
        until the venue's update arrives, and trading on them waits for that (``_fills_unseen``)."""
        pipeline = self.pipeline
        if pipeline is None:
            return
        symbol = started.opportunity.symbol
        # Paper and backtest fills are stamped on the local clock, not the venue's.
        venue_stamped = self.mode in _VENUE_STAMPED_MODES
        for index, leg in enumerate(result.legs):
            if leg.filled_quantity <= 0:
                continue
            book = pipeline.book_of(leg.exchange, symbol)
            if book is not None:
                # Both legs were written at ``sent_ns``; a recovery order later, at a time not kept here.
                written_ns = started.sent_ns if index < 2 else self.clock()
                venue_ms = leg.updated_at_ms if venue_stamped else 0
                key = (leg.exchange, symbol)
                held = self._unseen_fills.get(key)
                if held is not None:
                    written_ns, venue_ms = max(written_ns, held[1]), max(venue_ms, held[2])
                self._unseen_fills[key] = (book, written_ns, venue_ms)

    def _skip_for_unseen_fills(self, opportunity: ArbitrageOpportunity) -> bool:
        """Whether ``opportunity`` is passed up because a book of its markets may not show our last
        fills there yet (``_fills_unseen``), counted as "skipped, fills unseen"."""
        if (self._unseen_fills or self._paper_markets) and self._fills_unseen(opportunity):
            self._unseen_skips += 1
            return True
        return False

    def _fills_unseen(self, opportunity: ArbitrageOpportunity) -> bool:
        """Whether a market of ``opportunity``'s book may not show our last fills there yet.

        It has caught up once it has applied a frame received after our orders were written (a
        REST snapshot requested after them: one requested before may have been composed before our
        fills) and, where the fills carry the venue's time and the book the venue's event times, a
        frame the venue stamped later than the last fill. Venues batch their book pushes, so
        a push composed before our fill can arrive after our write (or after the answer). A paper
        market's book never shows them: there a leg must not walk into what paper orders took
        (``_paper_holds_back``).
        """
        unseen = self._unseen_fills
        for market in (opportunity.buy_exchange, opportunity.sell_exchange):
            key = (market, opportunity.symbol)
            held = unseen.get(key)
            if held is not None:
                book, written_ns, venue_ms = held
                if book.last_recv_ns <= written_ns:
                    return True
                requested_ns = self._rest_snapshot_requested_ns(market, opportunity.symbol)
                if requested_ns is not None and requested_ns <= written_ns:
                    return True
                event_ms = book.last_event_ms
                if venue_ms and event_ms and event_ms <= venue_ms:
                    return True
                del unseen[key]
        return bool(self._paper_markets) and self._paper_holds_back(opportunity)

    def _rest_snapshot_requested_ns(self, market: ExchangeName, symbol: str) -> int | None:
        """When the REST snapshot ``market``'s book of ``symbol`` rests on was requested
        (``BookSync.rest_snapshot_requested_ns``); None when the stream has moved it since."""
        connector = self.connectors.get(market)
        sync = connector.book_sync() if connector is not None else None
        return sync.rest_snapshot_requested_ns(self._leg_symbol(symbol, market)) if sync is not None else None

    def _paper_holds_back(self, opportunity: ArbitrageOpportunity) -> bool:
        """Whether a paper leg of ``opportunity`` would walk into liquidity paper orders already took
        (``PaperExchange.holds_back``): the public book still shows it, the venue's would not."""
        for market, side, price in (
            (opportunity.buy_exchange, OrderSide.BUY, opportunity.buy_price),
            (opportunity.sell_exchange, OrderSide.SELL, opportunity.sell_price),
        ):
            paper = self._paper_markets.get(market)
            if paper is None:
                continue
            symbol = self._leg_symbol(opportunity.symbol, market)
            quantity = opportunity.max_quantity / self._catalogs[market].get(symbol).contract_size
            if paper.holds_back(symbol, side, quantity, price):
                return True
        return False

    def _order_wait_s(self, opportunity: ArbitrageOpportunity) -> float:
        """Seconds until both legs' budgets admit ``ENTRY_ORDER_BUDGET`` orders (0: both can trade now)."""
        connectors, symbol = self.connectors, opportunity.symbol
        return max(
            (
                connectors[m].order_wait_s(self._leg_symbol(symbol, m), ENTRY_ORDER_BUDGET)
                for m in (opportunity.buy_exchange, opportunity.sell_exchange) if m in connectors
            ),
            default=0.0,
        )

    def _leg_symbol(self, symbol: str, market: ExchangeName) -> str:
        """``market_symbol(symbol, market)``: the symbol a leg's order on ``market`` names."""
        leg = self._leg_symbols.get((symbol, market))
        if leg is None:
            leg = self._leg_symbols[(symbol, market)] = market_symbol(symbol, market)
        return leg

    def _contract_sizes(self, result: ExecutionResult) -> dict[ExchangeName, Decimal]:
        """The contract size of each futures leg's market (``RiskManager.record_execution``)."""
        sizes = {}
        for leg in result.legs:
            catalog = self._catalogs.get(leg.exchange)
            if leg.exchange.is_futures and catalog is not None and leg.symbol in catalog:
                sizes[leg.exchange] = catalog.get(leg.symbol).contract_size
        return sizes

    def _record_fills(self, result: ExecutionResult) -> None:
        """Each leg's fills as one position change for the risk manager (its exposure and marks)."""
        risk = self.risk
        if risk is None:
            return
        now_ms = self.wall_clock() // 1_000_000
        for leg in result.legs:
            if leg.filled_quantity <= 0 or leg.average_price is None:
                continue
            catalog = self._catalogs.get(leg.exchange)
            contract = catalog.get(leg.symbol).contract_size if catalog is not None else Decimal(1)
            fill = Fill(
                symbol=pair_symbol(leg.symbol),  # spot and perpetual of a pair net against each other
                order_id=leg.order_id or leg.client_order_id,
                client_order_id=leg.client_order_id,
                trade_id=leg.client_order_id,
                side=leg.side,
                price=leg.average_price,
                quantity=leg.filled_quantity,
                fee=leg.fee,
                fee_asset=leg.fee_asset,
                is_maker=False,
                timestamp_ms=now_ms,
            )
            risk.record_fill(leg.exchange, fill, contract_size=contract)

    def _mark_to_market(self) -> None:
        """Value the positions held at the live books' prices (``RiskManager.mark_to_market``)."""
        if self.risk is not None and self.pipeline is not None:
            self.risk.mark_to_market(self.pipeline.mark_prices())

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(self.status_interval_s)
            self._collect_at_tick()
            if self.pipeline is not None:
                self.pipeline.refresh_position_caps()
                self._mark_to_market()
            if self.balances is not None:
                self.balances.update_caps()
            if self.status is not None:
                self.status(self.status_line())

    def _collect_at_tick(self) -> None:
        """Trading without a pause never reaches the trade loop's idle collection: the status tick
        collects. Not while an opportunity waits for the trade loop, whose orders would wait for the
        collection, unless opportunities kept it waiting at every tick for a while: garbage must not
        pile up with automatic collection off."""
        if self._pending and self._collections_put_off < COLLECTION_SKIPS_MAX:
            self._collections_put_off += 1
            return
        self._collections_put_off = 0
        self.collection.collect_if_due()

    # --- reports ------------------------------------------------------------------------

    @property
    def results(self) -> list[ExecutionResult]:
        """The execution results of this run kept in memory (see ``results_kept``), oldest first."""
        return list(self._results)

    @property
    def result_count(self) -> int:
        """Execution results recorded in this run, kept in memory or not."""
        return self._results_total

    def results_since(self, start: int) -> tuple[list[ExecutionResult], int]:
        """The kept execution results from position ``start`` on (the run's n-th execution is at n - 1),
        and the position after the newest: where the next call starts, even when the window dropped some."""
        results, total = self._results, self._results_total
        count = min(total - max(start, 0), len(results))
        if count <= 0:
            return [], total
        # Indexed from the right: the view asks for the few newest, and a deque indexes its ends cheaply.
        return [results[i] for i in range(len(results) - count, len(results))], total

    def statistics(self) -> EngineStatistics:
        """The engine counters so far."""
        return self.monitor.get_statistics()

    def books_in_sync(self) -> tuple[int, int]:
        """(books in sync, books) over every market."""
        books = [b for c in self.connectors.values() for b in c.books().values()]
        return sum(1 for b in books if b.in_sync), len(books)

    def status_line(self) -> str:
        """One line: opportunities, fills, PnL, latency, breakers, connections."""
        s = self.statistics()
        (cycle,) = self.monitor.stage_latencies((Stage.CYCLE,))
        in_sync, books = self.books_in_sync()
        links = " ".join(f"{m.value}:{'up' if c.health().connected else 'DOWN'}" for m, c in self.connectors.items())
        elapsed = (self.clock() - self._started_ns) / 1e9 if self._started_ns else 0.0
        return (
            f"[{elapsed:6.1f}s] opportunities {s.opportunities_detected} seen, {s.opportunities_executed} taken | "
            f"fills {self._fills} | PnL {amount_text(s.total_realized_profit)} USDT | cycle p50 {cycle.p50_ns / 1e6:.2f} ms "
            f"p99 {cycle.p99_ns / 1e6:.2f} ms | breakers {self._breaker_text()} | books {in_sync}/{books} | {links}"
        )

    def _breaker_text(self) -> str:
        if self.risk is None:
            return "-"
        tripped = [b.value for b, status in self.risk.get_circuit_breaker_status().items() if status.tripped]
        return ",".join(tripped) if tripped else "ok"

    def summary(self) -> RunSummary:
        """The run so far as a ``RunSummary``."""
        elapsed = Decimal(self.clock() - self._started_ns) / 1_000_000_000 if self._started_ns else ZERO
        latencies = {
            lat.stage.value: (_ms(lat.p50_ns), _ms(lat.p99_ns))
            for lat in self.monitor.stage_latencies()
            if lat.count
        }
        resyncs: dict[str, int] = {}
        stats = dict(self._book_stats)
        for market, connector in self.connectors.items():
            sync = connector.book_sync()
            if sync is not None:
                stats[market] = sync.stats()
        for market, books in stats.items():
            for symbol, book_stats in books.items():
                total = sum(book_stats.resyncs.values())
                if total:
                    resyncs[f"{market.value} {symbol}"] = total
        tripped: list[str] = []
        trips: dict[str, int] = {}
        rejected: dict[str, int] = {}
        if self.risk is not None:
            statuses = self.risk.get_circuit_breaker_status()
            tripped = [
                f"{b.value} ({status.trip.reason if status.trip else 'tripped'})"
                for b, status in statuses.items()
                if status.tripped
            ]
            trips = {b.value: status.trips for b, status in statuses.items() if status.trips}
            rejected = self.risk.get_risk_statistics().rejections
        return RunSummary(
            mode=self.mode,
            duration_s=elapsed.quantize(Decimal("0.1")),
            statistics=self.statistics(),
            fills=self._fills,
            rejected_by_risk=rejected,
            latency_ms=latencies,
            slow_cycles=self.monitor.slow_cycles,
            by_symbol={symbol: msgspec.structs.replace(part) for symbol, part in self._by_symbol.items()},
            slowest_cycle_ms=_ms(self.monitor.slowest_cycle_ns),
            target_execution_time_ms=self.monitor.target_execution_time_ms,
            breakers_tripped=tripped,
            breaker_trips=trips,
            resyncs=resyncs,
            skew_alerts=[
                message if times == 1 else f"{message} (raised {times} times)"
                for message, times in self._skew_alerts.values()
            ],
            hedges_dropped=[str(drop) for drop in self._hedge_drops],
            hedges_untraded=self._untraded_hedges(),
            awaiting_approval=[
                f"{a.opportunity_id} {a.symbol} residual {a.residual_quantity}: {a.reason}"
                for a in (self.recovery.get_active_recoveries() if self.recovery is not None else [])
                if a.status is RecoveryStatus.AWAITING_APPROVAL
            ],
            flagged_this_run=self._flagged_at_start + (
                self.recovery.get_recovery_statistics().flagged if self.recovery is not None else 0
            ),
            left_in_flight=list(self._left_in_flight),
            dropped_positions=sum(len(drop.dropped) for drop in self._hedge_drops),
            dropped_hedge_basis=sum((p.locked_basis for drop in self._hedge_drops for p in drop.dropped), ZERO),
            funding_settled=self._funding_settled,
            funding_payments=self._funding_payments,
            shutdown=self.shutdown_manager.outcomes,
            stop_reason=self.shutdown_manager.reason,
            error=self._error,
            skipped_for_order_budget=self._budget_skips,
            skipped_as_outdated=self._expired_skips,
            skipped_for_unseen_fills=self._unseen_skips,
            skipped_as_withdrawn=self._withdrawn_skips,
            resized_after_trade=self._resized_skips,
            skipped_for_halted_market=self._halted_skips,
            halted_markets=[
                f"{key.exchange.value} {key.symbol}: {reason}"
                for key, reason in sorted((self.pipeline.halted if self.pipeline is not None else {}).items())
            ],
            balance_drifts=self.balances.drifts if self.balances is not None else 0,
            open_hedges=len(self.hedges.positions()) if self.hedges is not None else 0,
            held_hedge_basis=self._held_basis_of_run,
        )

    @property
    def started(self) -> bool:
        """Whether ``initialize`` completed (its connections, reconciliation and journal replay done)."""
        return self._initialized

    @property
    def shutting_down(self) -> bool:
        """Whether the shutdown has begun (its steps running, or done)."""
        return self.shutdown_manager.is_shutting_down

    @property
    def is_healthy(self) -> bool:
        """Initialized, not shutting down, no breaker tripped, the day's loss limit not reached, and every
        market-data stream connected."""
        if not self._initialized or self.shutdown_manager.is_shutting_down:
            return False
        if self.risk is not None and (self.risk.is_tripped or self.risk.daily_loss_reached):
            return False
        return all(c.health().connected for c in self.connectors.values())

    # --- shutdown steps -------------------------------------------------------------------

    async def _stop_scanning(self) -> None:
        self._scanning = False
        self._wake()
        self._pending.clear()
        if self.pipeline is not None:
            self.pipeline.on_opportunity = None
        tasks, self._tasks = self._tasks, []
        self._draining, others = tasks[:1], tasks[1:]  # the trade loop ends in ``_finish_executions``
        for task in others:
            task.cancel()
        # A task that failed (what may have started this shutdown) was logged then: its error is
        # not raised here, where it would keep the next steps from their turn.
        await asyncio.gather(*others, return_exceptions=True)

    async def _finish_executions(self) -> None:
        """Wait for the executions in flight to end: the trade loop's, whose orders are out, and any
        run through ``ArbitrageEngine.execute_opportunity`` meanwhile. Cancelling one would leave
        orders of unknown outcome and a residual neither recovered nor flagged. Those the step's
        timeout leaves in flight are named (``_note_left_in_flight``)."""
        trade_loop, self._draining = self._draining, []
        risk = self.risk
        try:
            for task in trade_loop:
                await asyncio.shield(task)
            while risk is not None and risk.executions_in_flight:
                await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            self._note_left_in_flight()
            raise

    def _note_left_in_flight(self) -> None:
        """Log and keep for the summary each execution still in flight, with the market and client
        id of each of its orders whose outcome the journal does not have: the next start's
        reconciliation asks the venues about them and flags any residual."""
        risk = self.risk
        if risk is None or not risk.executions_in_flight:
            return
        unknown: dict[str, list[str]] = {}
        if self.journal is not None:
            try:
                unknown = _order_names(self.journal.open_intents())
            except Exception:  # each execution is still named, without its orders
                log.exception("journal: the orders of the executions left in flight could not be read")
        for opportunity in risk.opportunities_in_flight:
            orders = unknown.get(opportunity.opportunity_id)
            outcome = f"orders of unknown outcome: {', '.join(orders)}" if orders else "no order of unknown outcome"
            left = f"{opportunity.opportunity_id} {opportunity.symbol}, {outcome}; reconciled at the next start"
            log.error("shutdown: execution left in flight: %s", left)
            self._left_in_flight.append(left)

    async def _cancel_open_orders(self) -> None:
        """Cancel every order of the engine's (one the journal has an intent for) still resting on a
        trading market; one that fails (a venue unreachable) is logged and the others are still
        cancelled, and the step then fails naming what may still rest (one the venue no longer
        knows has ended meanwhile: nothing rests). Other orders on the account (placed by hand or
        by another program) are left as they are, unless the journal cannot be read to tell (then
        cancelled: an order of ours left resting could fill unwatched); without a journal nothing
        says which are the engine's."""
        journal = self.journal
        journal_writes = True
        left: list[str] = []  # what may still rest, for the step's failure
        for market, connector in self.traders.items():
            if not connector.can_trade:
                continue
            try:
                orders = await connector.open_orders()
            except Exception as exc:
                log.error("%s: open orders unreadable, none cancelled there: %s", market.value, exc)
                left.append(f"{market.value}: open orders unreadable ({exc})")
                continue
            for order in orders:
                cid = order.client_order_id
                if journal is None or not cid or not self._engine_order(journal, market, cid, order.symbol):
                    log.info("%s: open order %s (%s) is not the engine's: left as it is", market.value,
                             order.client_order_id or order.order_id, order.symbol)
                    continue
                log.warning("%s: cancelling open order %s (%s)", market.value, order.client_order_id, order.symbol)
                try:
                    state = await connector.cancel_order(order.symbol, order_id=order.order_id)
                except Exception as exc:
                    if isinstance(exc, ExchangeError) and exc.category == ErrorCategory.UNKNOWN_ORDER:
                        log.warning("%s: %s (%s) ended before its cancel: %s", market.value, cid, order.symbol, exc)
                    else:
                        log.error("%s: cancelling %s (%s) failed: %s", market.value, cid, order.symbol, exc)
                        left.append(f"{market.value}: cancelling {cid} ({order.symbol}) failed ({exc})")
                    continue
                if journal_writes:
                    try:
                        journal.record_cancel(market, cid, state)
                    except Exception as exc:  # the venue's cancel stands; the next start's reconciliation learns it
                        log.error("%s: cancel of %s not journaled, nor the cancels after it: %s", market.value, cid, exc)
                        journal_writes = False  # each failed write may hold the loop for the busy timeout
        if left:
            raise ArbitrageEngineError("engine orders may still rest: " + "; ".join(left))

    @staticmethod
    def _engine_order(journal: Journal, market: ExchangeName, client_order_id: str, symbol: str) -> bool:
        """Whether an open order is one of the engine's: the journal has its intent. One the journal
        cannot be asked about counts as the engine's: an order of ours left resting could fill unwatched."""
        try:
            return journal.knows(market, client_order_id)
        except Exception as exc:
            log.error("%s: journal unreadable about open order %s (%s), cancelling it: %s", market.value,
                      client_order_id, symbol, exc)
            return True

    async def _close_connectors(self) -> None:
        for market, connector in self.connectors.items():
            sync = connector.book_sync()
            if sync is not None:
                self._book_stats[market] = sync.stats()
        if self.factory is not None:
            await self.factory.close_all()

    async def _close_journal(self) -> None:
        if self.journal is not None:
            self.journal.close()
            self.journal = None
            self._journal_closed = True

    async def _stop_sim(self) -> None:
        if self.sim_cluster is not None:
            await self.sim_cluster.stop()

    async def _close_quietly(self) -> None:
        """Undo a failed ``initialize``. A step that fails is logged and the next ones still run, so
        that the error which ended the start-up is the one raised (a full disk fails both)."""
        try:
            if self.factory is not None:
                await self.factory.close_all()
        except Exception as exc:
            log.error("start-up failed: closing the connectors failed too: %s", exc)
        journal, self.journal = self.journal, None
        try:
            if journal is not None:
                journal.close()
        except Exception as exc:
            log.error("start-up failed: closing the journal failed too: %s", exc)
        try:
            if self._owned_sim and self.sim_cluster is not None:
                await self.sim_cluster.stop()
        except Exception as exc:
            log.error("start-up failed: stopping the simulated venues failed too: %s", exc)


class ArbitrageEngine:
    """A controller for programmatic use: a session, single executions, statistics and health."""

    def __init__(self, controller: ArbitrageController, *, dry_run: bool = True, paper: bool = False) -> None:
        self.controller = controller
        self.dry_run = dry_run
        self.paper = paper

    @contextlib.asynccontextmanager
    async def session(self, *, trade: bool = True) -> AsyncIterator[ArbitrageEngine]:
        """Initialize the controller; with ``trade``, run its loop in the background; shut down on exit.

        When the engine stops before the body is done (SIGINT or SIGTERM, an engine error, the
        run's end), the body is cancelled at its next await and the session raises
        ``SessionStopped`` once the engine has shut down.
        """
        controller = self.controller
        body = asyncio.current_task()
        await controller.initialize(self.dry_run, paper=self.paper)
        stopped: list[str] = []
        closing = False

        def stop_body(reason: str) -> None:
            if not closing and not stopped and body is not None:
                stopped.append(reason)
                body.cancel()

        runner: asyncio.Task[RunSummary] | None = None
        if trade:
            runner = asyncio.get_running_loop().create_task(controller.run())
            runner.add_done_callback(lambda _: stop_body(controller.shutdown_manager.reason or "the run ended"))
        else:
            controller.early_stop_hook = stop_body
        try:
            yield self
        except asyncio.CancelledError:
            if not stopped or body is None:
                raise
            body.uncancel()
            raise SessionStopped(f"the engine stopped ({stopped[0]}) while the session ran") from None
        finally:
            closing = True
            controller.early_stop_hook = None
            if runner is None:
                await controller.shutdown(stopped[0] if stopped else "session closed")
            else:
                controller.shutdown_manager.request_shutdown("session closed")
                await runner

    async def execute_opportunity(self, opportunity: ArbitrageOpportunity) -> ExecutionResult:
        """Risk-check and execute ``opportunity``; a refusal comes back as a FAILED result naming the check.
        Executions run one at a time: one in flight ends first. One detected longer ago than
        ``engine.max_data_age_ms`` by then is refused: stale data never trades. It must be priced on
        the engine's books as the scanner prices its own, within the free balances (see ``_given_refusal``)."""
        start = self.controller.clock()
        result = await self.controller.process(opportunity, given=True)
        if result is not None:
            return result
        return ExecutionResult(
            opportunity_id=opportunity.opportunity_id,
            final_state=ArbitrageState.FAILED,
            total_execution_time_ms=_ms(self.controller.clock() - start),
            realized_profit=ZERO,
            error=self.controller.last_refusal,  # set as ``process`` refused it, nothing awaited since
        )

    def get_engine_statistics(self) -> EngineStatistics:
        """Opportunities detected and executed, successes, failures, realized PnL, average execution time."""
        return self.controller.statistics()

    @property
    def is_healthy(self) -> bool:
        """Whether the engine can trade now."""
        return self.controller.is_healthy


def _check_live_allowed(manager: ConfigurationManager) -> None:
    """Live trading needs keys for every venue and the symbols and limits stated by the operator."""
    problems = []
    for exchange in manager.config.exchanges:
        if exchange.enabled and manager.get_credentials(exchange.name) is None:
            prefix = VENUE_ENV_PREFIX[exchange.name]
            problems.append(
                f"exchange {exchange.name}: live trading needs API keys; set {prefix}_API_KEY and {prefix}_SECRET_KEY "
                f"(or {prefix}_API_KEY_ENCRYPTED and {prefix}_SECRET_KEY_ENCRYPTED with ENCRYPTION_KEY)"
            )
    problems += manager.live_config_problems()
    if problems:
        raise ConfigurationError(problems)


def _run_token() -> str:
    """A short base-36 stamp of the start second, so client order ids differ between runs."""
    n = time.time_ns() // 1_000_000_000
    digits = ""
    while n:
        n, r = divmod(n, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[r] + digits
    return digits[-6:]


async def _set_or_elapsed(due: asyncio.Event, interval_s: float) -> bool:
    """Wait until ``due`` is set or ``interval_s`` has passed, then clear it; whether it was set."""
    try:
        await asyncio.wait_for(due.wait(), interval_s)
        early = True
    except asyncio.TimeoutError:
        early = False
    due.clear()
    return early


def _futures_short(result: ExecutionResult) -> bool:
    """Whether the futures leg of ``result`` filled less than it asked (recovery orders aside)."""
    return any(leg.exchange.is_futures and leg.filled_quantity < leg.requested_quantity for leg in result.legs[:2])


async def _busy_poll() -> None:
    """Keep the event loop polling its sockets with no timeout, so it never sleeps (``engine.busy_poll``).

    Ready work runs first: each pass yields one loop iteration, whose poll returns at once.
    """
    while True:
        await asyncio.sleep(0)


def _ignore(event: object) -> None:
    """Order and fill pushes: the executor follows its orders itself."""


def _ms(ns: int) -> Decimal:
    return (Decimal(ns) / 1_000_000).quantize(Decimal("0.001"))


__all__ = ["ArbitrageController", "ArbitrageEngine", "RunSummary", "dry_run_cluster"]
