"""Domain types of arb: msgspec structs and enums shared by every layer.

Money fields are ``Decimal``; the compiled core works in integer ticks and lots and
converts at the edges (``arb.instruments``).
"""

from __future__ import annotations

from decimal import Decimal
from enum import Enum, IntEnum

import msgspec

MAX_EXPONENT = 30  # a number's decimal exponent, either way (amounts, prices and rates are far inside it)


def number_problem(value: Decimal) -> str | None:
    """Why ``value`` is no amount, price or rate: not finite, or an exponent so large either way that
    arithmetic on it would overflow; None when it is one."""
    if not value.is_finite():
        return "not a finite number"
    if value and not -MAX_EXPONENT <= value.adjusted() <= MAX_EXPONENT:
        return f"out of range: at most {MAX_EXPONENT} digits before or after the point"
    return None


def amount_text(value: Decimal) -> str:
    """``value`` exactly, as plain decimal text for people: no exponent (``0.00000012``, not
    ``1.2000E-7``), no trailing zeros (``-1802.64264947``), zero as ``0``. (Not ``normalize()``,
    which rounds to the context's 28 digits.)"""
    text = f"{value:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("0", "-0") else text


class OpportunityType(str, Enum):
    """Kind of arbitrage."""

    SPOT_SPOT = "spot_spot"
    SPOT_FUTURES_HEDGE = "spot_futures_hedge"


class ExchangeName(str, Enum):
    """A venue and market arb trades on."""

    MEXC = "mexc"
    MEXC_FUTURES = "mexc_futures"
    GATEIO = "gateio"
    GATEIO_FUTURES = "gateio_futures"

    @property
    def venue(self) -> str:
        """The exchange the market belongs to (``mexc`` or ``gateio``)."""
        return self._value_.split("_", 1)[0]  # _value_: a plain attribute, cheaper than the value property

    @property
    def is_futures(self) -> bool:
        """Whether this is the venue's USDT perpetual futures market."""
        return self._value_.endswith("_futures")


class OrderSide(str, Enum):
    """Side of an order."""

    BUY = "buy"
    SELL = "sell"


class ArbitrageState(IntEnum):
    """Lifecycle of one opportunity; values match the compiled state machine."""

    IDLE = 0
    DETECTING = 1
    OPPORTUNITY_FOUND = 2
    EXECUTING = 3
    COMPLETED = 4
    FAILED = 5
    RECOVERING = 6


DEFAULT_MAX_PROFIT_MARGIN_BPS = Decimal(500)
DEFAULT_MIN_LIQUIDATION_DISTANCE_BPS = Decimal(500)


class RiskLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Hard limits the risk manager enforces."""

    max_position_size_usd: Decimal
    max_total_exposure_usd: Decimal
    max_daily_loss_usd: Decimal
    min_profit_margin_bps: Decimal
    max_consecutive_failures: int = 3
    max_execution_latency_ms: int = 500
    max_symbol_exposure_usd: Decimal | None = None
    # A margin above this is taken for a market the engine cannot trade safely (bad data, a transfer
    # halt, another asset under the same name), not for an opportunity.
    max_profit_margin_bps: Decimal = DEFAULT_MAX_PROFIT_MARGIN_BPS
    # A futures position whose mark is nearer its liquidation price than this (bps of the mark) is
    # not grown: liquidating one leg of a hedge leaves the other one naked (0: not checked).
    min_liquidation_distance_bps: Decimal = DEFAULT_MIN_LIQUIDATION_DISTANCE_BPS


class ExchangeConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Settings of one venue: which markets, timeouts and endpoint overrides."""

    name: str
    enabled: bool = True
    markets: tuple[str, ...] = ("spot",)
    rest_timeout_ms: int = 2000
    ws_heartbeat_interval_ms: int = 10000
    rest_url: str | None = None
    ws_url: str | None = None
    futures_rest_url: str | None = None
    futures_ws_url: str | None = None
    order_transport: str | None = None  # "rest" | "ws" (Gate.io's websocket trading API); None: the measured default
    # An order the venue receives later than this after it was sent is refused (MEXC ``recvWindow``,
    # Gate.io ``x-gate-exptime``), in the venue's clock as last read.
    order_deadline_ms: int = 5000

    @property
    def exchange_names(self) -> tuple[ExchangeName, ...]:
        """The ``ExchangeName`` of every enabled market of this venue."""
        return tuple(
            ExchangeName(self.name if market == "spot" else f"{self.name}_{market}") for market in self.markets
        )


class MetricsConfig(msgspec.Struct, frozen=True, kw_only=True):
    """The Prometheus ``/metrics`` and health endpoints; off unless enabled."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 9464


class ArbitrageConfig(msgspec.Struct, frozen=True, kw_only=True):
    """The complete, validated engine configuration."""

    dry_run: bool
    symbols: tuple[str, ...]
    exchanges: tuple[ExchangeConfig, ...]
    risk_limits: RiskLimits
    opportunity_types: tuple[OpportunityType, ...] = (OpportunityType.SPOT_SPOT,)
    target_execution_time_ms: int = 50
    opportunity_scan_interval_ms: int = 10
    balance_refresh_interval_ms: int = 5000
    max_data_age_ms: int = 100
    enable_circuit_breakers: bool = True
    enable_risk_checks: bool = True
    enable_recovery_mode: bool = True
    journal_path: str = "arb-journal.sqlite3"  # SQLite order journal; relative to the working directory
    # FULL: every commit (each intent before its order) fsyncs, surviving power loss, at ~ms per commit.
    # NORMAL (WAL): a commit is a write without fsync, durable against a crash of the process, not of
    # the machine. Dry runs always journal with NORMAL.
    journal_synchronous: str = "FULL"
    # Poll the sockets without ever sleeping: a frame is read ~50 us sooner, at the cost of one core.
    busy_poll: bool = False
    # Between executions, rehearse the last trade's path (sending and counting nothing) this
    # often, so the next execution finds its code in the CPU's caches; 0: never.
    rehearsal_interval_ms: int = 2
    sources: tuple[str, ...] = ()
    metrics: MetricsConfig = msgspec.field(default_factory=MetricsConfig)
    # Starting inventory of each market in paper mode: market name ("gateio_futures") -> asset -> amount.
    paper_balances: dict[str, dict[str, Decimal]] = msgspec.field(default_factory=dict)
    # Paper mode: how long an order travels before it is filled against the book as it is then.
    paper_latency_ms: int = 0
    # SPOT_FUTURES_HEDGE: how long a hedge is expected to stay open (its expected funding counts the
    # settlements within it), and how often the perpetuals' funding rates are read.
    hedge_holding_horizon_s: int = 28_800
    funding_refresh_interval_ms: int = 60_000
    # How often the venues' trading rules are read again while running (0: only at start-up).
    instrument_refresh_interval_ms: int = 300_000

    @property
    def traded_markets(self) -> list[ExchangeName]:
        """The markets a run connects: every market of every enabled venue, its futures only when
        ``spot_futures_hedge`` is traded."""
        hedging = OpportunityType.SPOT_FUTURES_HEDGE in self.opportunity_types
        return [
            market for exchange in self.exchanges if exchange.enabled for market in exchange.exchange_names
            if hedging or not market.is_futures
        ]


class ArbitrageOpportunity(msgspec.Struct, frozen=True, kw_only=True):
    """A detected, executable price difference between two markets."""

    opportunity_id: str
    opportunity_type: OpportunityType
    symbol: str
    buy_exchange: ExchangeName
    sell_exchange: ExchangeName
    buy_price: Decimal
    sell_price: Decimal
    max_quantity: Decimal
    profit_per_unit: Decimal
    total_profit_estimate: Decimal
    profit_margin_bps: Decimal
    detected_at: int  # monotonic ns
    buy_fee: Decimal = Decimal(0)
    sell_fee: Decimal = Decimal(0)
    # SPOT_FUTURES_HEDGE: funding the hedge expects over the holding horizon, quote (> 0 received,
    # < 0 paid); already included in the profit fields.
    expected_funding: Decimal = Decimal(0)
    # A hedge's close that only shrinks the futures position this engine holds: its futures leg
    # is sent reduce-only, so a position closed or liquidated at the venue is not reopened.
    futures_reduce_only: bool = False


class PositionEntry(msgspec.Struct, frozen=True, kw_only=True):
    """An open position on one market."""

    exchange: ExchangeName
    symbol: str
    side: OrderSide
    quantity: Decimal
    entry_price: Decimal
    opened_at: int  # wall-clock ms
    opportunity_id: str | None = None


class ExecutionLeg(msgspec.Struct, frozen=True, kw_only=True):
    """One order of an arbitrage and what came of it.

    ``requested_quantity`` and ``filled_quantity`` are in the market's order unit: the base asset on
    spot, contracts on futures (``contract_size`` base units each); prices are per base unit, so a
    futures leg's notional is quantity x contract_size x price.
    """

    exchange: ExchangeName
    symbol: str
    side: OrderSide
    client_order_id: str
    requested_quantity: Decimal
    limit_price: Decimal
    filled_quantity: Decimal = Decimal(0)
    average_price: Decimal | None = None
    fee: Decimal = Decimal(0)
    # What ``fee`` is counted in (``Instrument.fee_asset``): base on a spot buy charged in what it
    # bought, else quote ("" where nothing filled).
    fee_asset: str = ""
    order_id: str | None = None
    error: str | None = None
    error_category: str | None = None  # what kind of failure ``error`` is (``ErrorCategory`` value), when known
    updated_at_ms: int = 0  # the venue's time of the order's last update (0: not known)
    status: str = ""  # the venue's last status of the order (an ``OrderStatus`` value); "" without an answer
    # Base units per unit of the quantities (1 on spot) as the order was sent; None where not known,
    # for the instrument catalog's current contract size.
    contract_size: Decimal | None = None


class ExecutionResult(msgspec.Struct, frozen=True, kw_only=True):
    """Outcome of executing one opportunity."""

    opportunity_id: str
    final_state: ArbitrageState
    total_execution_time_ms: Decimal
    realized_profit: Decimal
    legs: tuple[ExecutionLeg, ...] = ()
    error: str | None = None


class EngineStatistics(msgspec.Struct, kw_only=True):
    """Running counters of the engine."""

    opportunities_detected: int = 0
    opportunities_executed: int = 0
    executions_succeeded: int = 0
    executions_failed: int = 0
    total_realized_profit: Decimal = Decimal(0)
    average_execution_time_ms: Decimal = Decimal(0)
    uptime_s: Decimal = Decimal(0)

    @property
    def success_rate(self) -> Decimal:
        """Fraction of executed opportunities that completed."""
        if not self.opportunities_executed:
            return Decimal(0)
        return Decimal(self.executions_succeeded) / Decimal(self.opportunities_executed)
