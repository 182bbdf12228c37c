"""Risk manager: hard limits on every new entry, circuit breakers, and a manual kill switch.

Boundaries, one rule for all: a maximum is inclusive (a trade whose notional equals
``max_position_size_usd`` passes, one unit more is rejected); the minimum margin is
inclusive; the daily loss limit and every breaker trip when their count or loss *reaches*
the threshold. Money is ``Decimal`` throughout, exactly.

Too good to be true. An entry whose margin is above ``max_profit_margin_bps`` (500 bps by
default, inclusive) is refused: real dislocations between liquid venues are a few dozen bps,
and a margin many times that comes from a market the engine should not trade (a wrong or
stale price, deposits or withdrawals halted on one venue, another asset listed under the same
name). Each symbol's first such refusal, and one a minute after while it lasts, is logged as a
warning with both venues and prices. A hedge's close is never refused this way: it takes risk off.

Exposure is market risk, in USD: per symbol, ``|net base quantity over every market| *
last fill price`` (a hedged spot-spot or spot-futures pair nets to zero), plus the
worst-case leg notional of each execution in flight (one leg filled, the other not).

A perpetual futures position is a position of its own even when spot hedges it: it is
margined and can be liquidated whatever the spot side holds. An entry that would grow one
past ``max_position_size_usd`` (its base after the trade times the symbol's mark, the last
fill price, or the leg's price before any fill) is refused (``max_futures_position_usd``),
so hedges cannot pile up past the limit one opening at a time (executions still in flight count
as filled in full, so concurrent ones cannot either). Hedges of one perpetual against two spot
venues can hold it in opposite directions (short against a long on one spot venue, long against
a short on the other) and net out on the venue, where the position is one; closing the hedges of
one direction then leaves the perpetual with everything the other direction holds, and an
operator closing a flagged residual takes its part away too. So an opening is bounded on the side it grows, as if whatever holds the position the
other way were gone: the open hedges holding it that way (``hedged_futures``, the hedge book's),
plus the part of the position no hedge explains where it points that way, plus the trade. A
hedge's close (``closes_hedge``) takes both legs of a hedge off and is not bounded by the limit:
the openings kept what it can leave within it (at their prices); one that grows the venue's
position the way it points is still refused while the position is too near its liquidation
(below). ``futures_room`` gives the scanner the same bound as leg caps, so it looks for another
pair rather than proposing the refused one again. Spot holdings are inventory, capped by the
balances, not by this limit.

Liquidation. Liquidating the perpetual leg of a hedge leaves its spot leg naked. Each venue
position read (``align_futures_positions``, at start-up and every position check) brings the
distance from the mark to the venue's liquidation price; while it is under
``min_liquidation_distance_bps`` (500 by default, 0: off) the position is warned about once and
entries and hedge closes that would grow it are refused (``min_liquidation_distance_bps``; a close
that turns it around takes off the side near liquidation and passes), and
``futures_room`` offers only what shrinks it, until a read finds it far enough again. Recoveries
shrink it and pass. The venue decides when to liquidate; this only stops the engine adding to it.

A tripped breaker blocks new entries and hedge closes (``validate_opportunity_risk`` raises)
until it is reset. Recoveries do not ask (``RecoveryManager`` bounds their loss itself);
``validate_recovery`` says whether an order of a caller's own would reduce the net position.
Breakers latch: a money-moving engine stays stopped until someone looks.

Restart. Positions and the daily realized PnL live in memory; ``restore`` rebuilds them from
the order journal, which holds every order with its fills (one fill per order at its average
price, as the executor journals it, plus any gap a start-up reconciliation added). Replaying
the orders in journal (intent) order through ``record_fill`` gives the positions, entry
prices and marks the live path built from the execution legs; grouping them by opportunity
and applying the executor's realized-PnL rule gives each execution's PnL, counted on the
trading day of its last journaled fill. An execution cut short by a crash, which the running
engine never accounted, counts too: its fills are real, at the venues. The journal knows only
what this engine traded, so the controller then reads the futures venues' open positions and
``align_futures_positions`` puts each in place of the journal's where they differ (a position
closed by hand or liquidated while the engine was stopped no longer offsets its spot side).

Funding. What the venues settle on futures positions counts in the daily realized PnL of the
UTC day it was settled on (``record_funding``), live and on restore (from the journal's
funding record): paid funding brings the daily loss limit nearer, received funding offsets it.

Hedges. A spot/futures hedge's opening reports the basis it locked in as realized PnL and its
close reports minus the exit basis; the basis is realized only by the close. The controller
takes the locked basis out of the daily PnL when a hedge opens and puts it back when it closes
(``HedgeBook.held_basis``), live and on restore, so that the daily loss limit never counts a
gain that an open hedge could still give back.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from decimal import ROUND_FLOOR, Decimal, localcontext
from enum import Enum
from typing import Protocol

import msgspec

from arb_core.freshness import monotonic_ns

from .errors import RiskManagementError
from .exchanges.errors import ErrorCategory
from .exchanges.models import Fill, FundingPayment, OrderStatus, Position
from .instruments import Instrument, InstrumentCatalog, InstrumentError, pair_symbol
from .journal import FillRecord, IntentRecord, base_per_unit
from .orders import WIDE, RealizedPnl, exact_notional, fee_in_quote
from .pipeline import BPS, BPS_STEP
from .types import (
    ArbitrageOpportunity,
    ArbitrageState,
    ExchangeName,
    ExecutionResult,
    OrderSide,
    PositionEntry,
    RiskLimits,
)

log = logging.getLogger(__name__)

ZERO = Decimal(0)
# Every futures market (a leg's position limit; the hedge book reads only executions with one).
FUTURES_MARKETS = frozenset(market for market in ExchangeName if market.is_futures)
HUNDRED = Decimal(100)
_OUTCOME_UNKNOWN = ErrorCategory.OUTCOME_UNKNOWN.value  # an execution leg's ``error_category`` while unresolved
# Final statuses of an order taken and dropped unfilled: an IOC's remainder expired (Gate.io), or
# cancelled (by the venue's IOC or self-trade rule, or by the engine past its deadline).
_MISSED = frozenset({OrderStatus.EXPIRED.value, OrderStatus.CANCELED.value})
NS_PER_DAY = 86_400_000_000_000
MS_PER_DAY = 86_400_000
# Beyond 10**20 bps a price margin is not floored to 0.01 bps: that would need more than the 28 digits
# of Decimal's context (a stated profit tiny beside its expected funding gives such ratios).
PRICE_MARGIN_QUANTIZED_DIGITS = 20
IMPLAUSIBLE_WARNING_INTERVAL_NS = 60_000_000_000  # one warning a minute per symbol while margins stay implausible


class Breaker(str, Enum):
    """A circuit breaker."""

    CONSECUTIVE_FAILURES = "consecutive_failures"
    EXECUTION_LATENCY = "execution_latency"
    STALE_DATA = "stale_data"
    VENUE_ERRORS = "venue_errors"
    KILL_SWITCH = "kill_switch"
    JOURNAL_WRITES = "journal_writes"  # a journal write failed: orders could no longer be accounted


class RiskCheck(str, Enum):
    """Why the risk manager refused something."""

    CIRCUIT_BREAKER = "circuit_breaker"
    INVALID_OPPORTUNITY = "invalid_opportunity"
    MIN_PROFIT_MARGIN = "min_profit_margin_bps"
    MAX_PROFIT_MARGIN = "max_profit_margin_bps"
    MAX_POSITION_SIZE = "max_position_size_usd"
    MAX_FUTURES_POSITION = "max_futures_position_usd"
    LIQUIDATION_DISTANCE = "min_liquidation_distance_bps"
    MAX_TOTAL_EXPOSURE = "max_total_exposure_usd"
    MAX_SYMBOL_EXPOSURE = "max_symbol_exposure_usd"
    MAX_DAILY_LOSS = "max_daily_loss_usd"
    RECOVERY_NOT_REDUCING = "recovery_not_reducing"


_REJECTION_TEXT = {
    RiskCheck.MAX_DAILY_LOSS: ("daily realized loss (USD)", "reached"),
    RiskCheck.MIN_PROFIT_MARGIN: ("profit margin (bps)", "below"),
    RiskCheck.MAX_PROFIT_MARGIN: ("profit margin (bps)", "over"),
    RiskCheck.MAX_POSITION_SIZE: ("leg notional (USD)", "over"),
    RiskCheck.MAX_FUTURES_POSITION: ("futures position the way this trade grows it, with it (USD)", "over"),
    RiskCheck.LIQUIDATION_DISTANCE: ("distance of the futures position from its liquidation (bps)", "below"),
    RiskCheck.MAX_TOTAL_EXPOSURE: ("total exposure with this trade (USD)", "over"),
    RiskCheck.MAX_SYMBOL_EXPOSURE: ("symbol exposure with this trade (USD)", "over"),
}

class RiskRejection(RiskManagementError):
    """A limit refused an action; ``check`` names it, ``value`` and ``limit`` are the numbers compared."""

    def __init__(
        self, check: RiskCheck, message: str, *, value: Decimal | None = None, limit: Decimal | None = None
    ) -> None:
        super().__init__(message)
        self.check = check
        self.value = value
        self.limit = limit


class CircuitBreakerOpen(RiskRejection):
    """A tripped circuit breaker refused a new entry."""

    def __init__(self, breaker: Breaker, message: str) -> None:
        super().__init__(RiskCheck.CIRCUIT_BREAKER, message)
        self.breaker = breaker


class BreakerTrip(msgspec.Struct, frozen=True, kw_only=True):
    """One trip of a breaker, as passed to the alert callback."""

    breaker: Breaker
    reason: str
    tripped_at_ns: int  # monotonic
    tripped_at_ms: int  # wall clock


class BreakerStatus(msgspec.Struct, frozen=True, kw_only=True):
    """State of one breaker: its current count against its threshold, and the active trip."""

    breaker: Breaker
    tripped: bool
    count: int
    threshold: int
    trips: int
    trip: BreakerTrip | None = None


class RiskMetrics(msgspec.Struct, frozen=True, kw_only=True):
    """Current exposure, positions and daily PnL against the limits."""

    total_exposure_usd: Decimal
    in_flight_usd: Decimal  # executions in flight, and finished ones with an order of unknown outcome
    max_total_exposure_usd: Decimal
    exposure_utilisation_pct: Decimal
    symbol_exposure_usd: dict[str, Decimal]
    positions: tuple[PositionEntry, ...]
    trading_day: int  # days since the epoch, UTC
    daily_realized_pnl_usd: Decimal
    max_daily_loss_usd: Decimal
    daily_loss_utilisation_pct: Decimal
    executions_in_flight: int
    daily_funding_usd: Decimal = Decimal(0)  # funding settled today, part of ``daily_realized_pnl_usd``


class RiskStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters since start: validations, rejections by check, breaker trips."""

    validations: int
    accepted: int
    rejections: dict[str, int]
    breaker_trips: dict[str, int]
    # Answers of ``validate_recovery`` to a caller's own orders; the engine's recoveries do not ask
    # (``RecoveryManager.get_recovery_statistics`` counts them).
    recoveries_allowed: int
    recoveries_refused: int


class FuturesHolding(msgspec.Struct, frozen=True, kw_only=True):
    """What a futures venue reports holding in one pair, in base."""

    base: Decimal  # signed: < 0 short
    lot: Decimal  # one contract, in base
    entry_price: Decimal
    # How far the mark is from the liquidation price, bps of the mark (None: the venue says no price).
    liquidation_distance_bps: Decimal | None = None


def _worst_notional(opportunity: ArbitrageOpportunity) -> Decimal:
    """The larger leg notional of ``opportunity``: what it holds at worst with one leg filled and the other not."""
    buy, sell = opportunity.buy_price, opportunity.sell_price
    return opportunity.max_quantity * (sell if sell > buy else buy)


def _futures_leg(opportunity: ArbitrageOpportunity) -> tuple[ExchangeName, Decimal, Decimal] | None:
    """``(market, signed base, price)`` of ``opportunity``'s futures leg (it has at most one), the
    base positive on a buy; None when both legs are spot."""
    if opportunity.buy_exchange in FUTURES_MARKETS:
        return opportunity.buy_exchange, opportunity.max_quantity, opportunity.buy_price
    if opportunity.sell_exchange in FUTURES_MARKETS:
        return opportunity.sell_exchange, -opportunity.max_quantity, opportunity.sell_price
    return None


def futures_holdings(
    market: ExchangeName, positions: Sequence[Position], catalog: InstrumentCatalog,
    warned: set[tuple[ExchangeName, str]] | None = None,
) -> dict[str, FuturesHolding]:
    """``market``'s open ``positions`` (as the venue reports them, in contracts) by pair (spot form,
    BTC/USDT), in base; a contract ``catalog`` does not list is left out, with a warning (once per
    contract given ``warned``, the ones warned about already: positions are read every few seconds)."""
    holdings: dict[str, FuturesHolding] = {}
    for position in positions:
        try:
            instrument = catalog.get(position.symbol)
        except InstrumentError:
            if warned is None or (market, position.symbol) not in warned:
                log.warning("%s holds %s of %s, which is not listed: left out of the engine's positions",
                            market.value, position.size, position.symbol)
                if warned is not None:
                    warned.add((market, position.symbol))
            continue
        pair = pair_symbol(position.symbol)
        size = position.size * instrument.contract_size
        held = holdings.get(pair)
        earlier = held.liquidation_distance_bps if held is not None else None
        distances = [d for d in (_liquidation_distance_bps(position), earlier) if d is not None]
        holdings[pair] = FuturesHolding(
            base=size + (held.base if held is not None else ZERO), lot=instrument.base_lot,
            entry_price=held.entry_price if held is not None else position.entry_price,
            liquidation_distance_bps=min(distances, default=None),
        )
    return holdings


def _liquidation_distance_bps(position: Position) -> Decimal | None:
    """How far the mark may move against the position before its liquidation price, in bps of the
    mark: down for a long, up for a short; 0 when the mark is already past it."""
    mark, liquidation = position.mark_price, position.liquidation_price
    if not mark or mark <= 0 or not liquidation or liquidation <= 0 or not position.size:
        return None
    room = mark - liquidation if position.size > 0 else liquidation - mark
    return (max(room, ZERO) * BPS / mark).quantize(BPS_STEP)


class RestoredRisk(msgspec.Struct, frozen=True, kw_only=True):
    """What ``RiskManager.restore`` rebuilt from the journal."""

    orders: int  # journaled orders with fills, replayed into the positions
    executions_today: int  # executions whose realized PnL counts on the current trading day
    trading_day: int  # days since the epoch, UTC
    daily_realized_pnl_usd: Decimal  # funding settled today included
    positions: int  # open (non-zero) positions
    total_exposure_usd: Decimal
    skipped: tuple[str, ...]  # opportunities (or orphan trade ids) left out, each logged as an error
    funding_today_usd: Decimal = Decimal(0)  # settled on the current trading day (in the daily PnL)
    # Of ``skipped``, those with a fill recorded on the current trading day: its realized PnL is not
    # known whole (the daily loss limit cannot be trusted until someone has looked).
    unvalued_today: tuple[str, ...] = ()
    why_left_out: dict[str, str] = {}  # each of ``skipped``: why (its instrument not listed, a malformed fill)


class RiskJournal(Protocol):
    """The read of ``arb.journal.Journal`` that ``RiskManager.restore`` needs."""

    def iter_fills(self) -> Iterable[FillRecord]:
        """Recorded fills in journal order, read as they are taken."""

    def acknowledged(self) -> set[str]:
        """Opportunities whose flagged residual an operator acknowledged as dealt with."""

    def open_intents(self) -> list[IntentRecord]:
        """Orders not known final: after the start's reconciliation, those of unknown outcome."""

    def funding_payments(self, since_ms: int = 0) -> list[tuple[ExchangeName, FundingPayment]]:
        """Recorded funding settled at or after ``since_ms``."""


AlertCallback = Callable[[BreakerTrip], None]


class _Position:
    __slots__ = ("entry_price", "opened_at_ms", "quantity")

    def __init__(self) -> None:
        self.quantity = ZERO  # signed base quantity
        self.entry_price = ZERO
        self.opened_at_ms = 0


class _JournaledOrder:
    """The journaled fills of one order, summed into the one fill the live path records per leg."""

    __slots__ = (
        "contract_size", "exchange", "fees", "notional", "order_id", "price", "quantity", "recorded_at_ms", "side",
        "symbol",
    )

    def __init__(self, record: FillRecord) -> None:
        fill = record.fill
        self.exchange = record.exchange
        self.contract_size = record.contract_size  # as journaled with the order (``base_per_unit``)
        self.symbol = fill.symbol
        self.side = fill.side
        self.order_id = fill.client_order_id or fill.order_id
        self.price: Decimal | None = fill.price
        self.quantity = ZERO
        self.notional = ZERO
        self.fees: list[tuple[Decimal, str]] = []
        self.recorded_at_ms = 0
        self.add(record)

    def add(self, record: FillRecord) -> None:
        fill = record.fill
        if self.quantity:
            self.price = None  # more than one fill: the average is notional / quantity
        self.quantity = WIDE.add(self.quantity, fill.quantity)
        self.notional = WIDE.add(self.notional, WIDE.multiply(fill.price, fill.quantity))
        self.fees.append((fill.fee, fill.fee_asset))
        self.recorded_at_ms = max(self.recorded_at_ms, record.recorded_at_ms)

    @property
    def average_price(self) -> Decimal:
        if self.price is not None:
            return self.price
        return WIDE.divide(self.notional, self.quantity)


class _ExecutionPnl(RealizedPnl):
    """The executor's realized-PnL rule over one opportunity's journaled orders, and when its last fill was recorded."""

    __slots__ = ("recorded_at_ms",)

    def __init__(self) -> None:
        super().__init__()
        self.recorded_at_ms = 0

    def add_order(self, order: _JournaledOrder, instrument: Instrument) -> None:
        average = order.average_price
        with localcontext() as ctx:
            ctx.prec = 60
            base = order.quantity * base_per_unit(order.contract_size, instrument)
            notional = exact_notional(instrument, base, average)
            # A fee journaled without its asset is in quote; one in neither base nor quote counts at the
            # taker rate on the notional, as live (``OrderOutcome.fee_quote``).
            fees, unvalued = ZERO, False
            for fee, asset in order.fees:
                in_quote = fee_in_quote(instrument, fee, asset or instrument.quote, average)
                if in_quote is None:
                    unvalued = True
                else:
                    fees += in_quote
            if unvalued:  # once for the order, as live charges it
                fees += notional * instrument.taker_fee
        self.add(order.side, base, notional, fees)
        self.recorded_at_ms = max(self.recorded_at_ms, order.recorded_at_ms)


def _journaled_instrument(
    catalogs: Mapping[ExchangeName, InstrumentCatalog], order: _JournaledOrder
) -> Instrument:
    catalog = catalogs.get(order.exchange)
    if catalog is None:
        raise InstrumentError(f"market {order.exchange.value} has no instrument catalog")
    instrument = catalog.get(order.symbol)
    if order.quantity <= ZERO or order.average_price <= ZERO:
        raise InstrumentError(
            f"order {order.order_id} on {order.exchange.value} {order.symbol}: journaled quantity "
            f"{order.quantity} at {order.average_price} is not positive"
        )
    return instrument


def amounts_valid(opportunity: ArbitrageOpportunity) -> bool:
    """Whether ``opportunity``'s amounts are finite, its quantity and prices positive (checked before
    anything orders them: ordering a NaN raises in Decimal)."""
    o = opportunity
    return (
        o.profit_margin_bps.is_finite() and o.max_quantity.is_finite() and o.buy_price.is_finite()
        and o.sell_price.is_finite() and o.total_profit_estimate.is_finite() and o.expected_funding.is_finite()
        and o.max_quantity > ZERO and o.buy_price > ZERO and o.sell_price > ZERO
    )


class RiskManager:
    """Enforces ``RiskLimits`` on new entries and runs the circuit breakers.

    Parameters
    ----------
    latency_trips_after:
        Consecutive executions slower than ``max_execution_latency_ms`` that trip the
        latency breaker (1: a single slow execution trips it).
    stale_data_trips_at, stale_data_window_ns:
        Stale or desynced books reported at decision time within the window that trip.
    venue_errors_trip_at, venue_errors_window_ns:
        Errors of one venue within the window that trip.
    clock, wall_clock:
        Monotonic ns (breaker windows, trip times) and wall ns (the UTC trading day).
    """

    def __init__(
        self,
        limits: RiskLimits,
        *,
        enable_risk_checks: bool = True,
        enable_circuit_breakers: bool = True,
        on_alert: AlertCallback | None = None,
        latency_trips_after: int = 1,
        stale_data_trips_at: int = 5,
        stale_data_window_ns: int = 10_000_000_000,
        venue_errors_trip_at: int = 5,
        venue_errors_window_ns: int = 60_000_000_000,
        clock: Callable[[], int] = monotonic_ns,
        wall_clock: Callable[[], int] = time.time_ns,
    ) -> None:
        for name, value in (
            ("latency_trips_after", latency_trips_after),
            ("stale_data_trips_at", stale_data_trips_at),
            ("venue_errors_trip_at", venue_errors_trip_at),
            ("stale_data_window_ns", stale_data_window_ns),
            ("venue_errors_window_ns", venue_errors_window_ns),
        ):
            if value < 1:
                raise ValueError(f"{name}={value}: must be at least 1")
        self.limits = limits
        self.enable_risk_checks = enable_risk_checks
        self.enable_circuit_breakers = enable_circuit_breakers
        self.on_alert = on_alert  # called with each trip; may be replaced while running
        # (futures market, pair) -> the base the open hedges hold long and short on that perpetual
        # (``HedgeBook.futures_hedged``), which bounds openings (see the module doc); None: no hedges.
        self.hedged_futures: Callable[[ExchangeName, str], tuple[Decimal, Decimal]] | None = None
        self._clock = clock
        self._wall_clock = wall_clock
        # Limits read on every validation, bound once.
        self._min_margin = limits.min_profit_margin_bps
        self._max_margin = limits.max_profit_margin_bps
        self._implausible_warned_ns: dict[str, int] = {}  # symbol -> when its last implausible margin was logged
        self._max_position = limits.max_position_size_usd
        self._min_liquidation = limits.min_liquidation_distance_bps
        # (futures market, pair) -> the last distance from liquidation its venue reported.
        self._liquidation_distances: dict[tuple[ExchangeName, str], Decimal] = {}
        self._max_total = limits.max_total_exposure_usd
        self._max_symbol = limits.max_symbol_exposure_usd
        self._max_daily_loss = limits.max_daily_loss_usd
        self._daily_floor = -limits.max_daily_loss_usd
        self._max_latency_ms = Decimal(limits.max_execution_latency_ms)
        self._thresholds = {
            Breaker.CONSECUTIVE_FAILURES: limits.max_consecutive_failures,
            Breaker.EXECUTION_LATENCY: latency_trips_after,
            Breaker.STALE_DATA: stale_data_trips_at,
            Breaker.VENUE_ERRORS: venue_errors_trip_at,
            Breaker.KILL_SWITCH: 1,
            Breaker.JOURNAL_WRITES: 1,
        }
        self._stale_window_ns = stale_data_window_ns
        self._venue_window_ns = venue_errors_window_ns

        self._positions: dict[tuple[ExchangeName, str], _Position] = {}
        self._marks: dict[str, Decimal] = {}
        self._symbol_exposure: dict[str, Decimal] = {}
        self._in_flight: dict[str, ArbitrageOpportunity] = {}  # executions started, not yet recorded
        # Finished executions with an order of unknown outcome: still reserved (``record_execution``).
        self._unresolved: dict[str, ArbitrageOpportunity] = {}
        # Of those, a futures order's unfilled part, (market, symbol, signed base) by opportunity id
        # (those a restart could not learn: by market and client order id, ``_reserve_unresolved``):
        # it may have filled, and counts against the futures limit until the venue's position is read.
        self._unknown_futures: dict[str, tuple[ExchangeName, str, Decimal]] = {}
        # Orders a restart's reconciliation still could not learn the outcome of (``restore``): their
        # unfilled notional, counted until the next restart.
        self._unresolved_orders_usd = ZERO
        # Position exposure plus in-flight reservations, the sums validation compares.
        self._used_total = ZERO
        self._used_by_symbol: dict[str, Decimal] = {}

        self._day = wall_clock() // NS_PER_DAY
        self._day_end_ns = (self._day + 1) * NS_PER_DAY
        self._daily_pnl = ZERO
        self._daily_funding = ZERO  # part of _daily_pnl
        self._loss_warned_day: int | None = None  # the day the daily loss limit was last warned about
        # Funding settled on a UTC day this clock has not reached yet (the venue's clock runs ahead):
        # counted when the day rolls to it.
        self._early_funding: list[FundingPayment] = []

        self._tripped: dict[Breaker, BreakerTrip] = {}
        self._trip_counts = dict.fromkeys(Breaker, 0)
        self._consecutive_failures = 0
        self._slow_streak = 0
        self._journal_failures = 0  # journal writes failed since the breaker was last reset
        self._stale_times: deque[int] = deque()
        self._venue_error_times: dict[str, deque[int]] = {}

        self._validations = 0
        self._rejections: dict[RiskCheck, int] = dict.fromkeys(RiskCheck, 0)
        self._recoveries_allowed = 0

    # -- the hot path -------------------------------------------------------------------

    def validate_opportunity_risk(self, opportunity: ArbitrageOpportunity, *, closes_hedge: bool = False) -> None:
        """Accept a new entry by returning; refuse it by raising ``RiskRejection``.

        ``CircuitBreakerOpen`` (a ``RiskRejection``) when any breaker is tripped; otherwise
        the message names the limit and both values. ``closes_hedge``: the pair closes (part
        of) an open hedge, which takes both its legs off; the futures position limit does not
        apply (the openings bounded what it can leave, see the module doc).
        """
        self._validations += 1
        self._validate(opportunity, True, closes_hedge)

    def rehearse(self, opportunity: ArbitrageOpportunity) -> bool:
        """Check ``opportunity`` as ``validate_opportunity_risk`` would, counting nothing; True when
        it would be accepted. Between executions this keeps the check in the CPU's caches
        (``engine.rehearsal_interval_ms``)."""
        try:
            self._validate(opportunity, False)
        except RiskRejection:
            return False
        return True

    def _validate(self, opportunity: ArbitrageOpportunity, counted: bool, closes_hedge: bool = False) -> None:
        if self._tripped:
            self._refuse_breaker(opportunity, counted)
        if not self.enable_risk_checks:
            return
        if self._wall_clock() >= self._day_end_ns:
            self._roll_day()
        if self._daily_pnl <= self._daily_floor:
            self._reject(RiskCheck.MAX_DAILY_LOSS, opportunity, -self._daily_pnl, self._max_daily_loss, counted)
        margin = opportunity.profit_margin_bps
        quantity = opportunity.max_quantity
        buy = opportunity.buy_price
        sell = opportunity.sell_price
        profit = opportunity.total_profit_estimate
        if not amounts_valid(opportunity):
            # Checked first: ordering a NaN raises in Decimal.
            self._reject_invalid(opportunity, counted, "all must be finite, and the quantity and prices positive")
        if profit < ZERO < margin and not closes_hedge:  # a close's own spread may be a loss its basis pays for
            self._reject_invalid(opportunity, counted, "a positive margin with a loss as its profit estimate")
        if margin < self._min_margin:
            self._reject(RiskCheck.MIN_PROFIT_MARGIN, opportunity, margin, self._min_margin, counted)
        if not closes_hedge:
            # The ceiling judges the prices: funding expected against a hedge does not make them plausible.
            funding = opportunity.expected_funding
            price_margin = margin
            if funding and profit > ZERO:
                price_margin = margin * (profit - funding) / profit
                # Floored to the margin's resolution, unless a profit tiny beside its funding makes it
                # too large to quantize (past any ceiling, or far under the floor, either way).
                if price_margin.adjusted() < PRICE_MARGIN_QUANTIZED_DIGITS:
                    price_margin = price_margin.quantize(BPS_STEP, ROUND_FLOOR)
            if price_margin > self._max_margin:
                if counted:
                    self._warn_implausible(opportunity, price_margin)
                self._reject(RiskCheck.MAX_PROFIT_MARGIN, opportunity, price_margin, self._max_margin, counted)
        # ``_worst_notional`` and ``_futures_leg``, written out: this runs on the order path.
        notional = quantity * (sell if sell > buy else buy)
        if notional > self._max_position:
            self._reject(RiskCheck.MAX_POSITION_SIZE, opportunity, notional, self._max_position, counted)
        # An opportunity has at most one futures leg.
        if opportunity.buy_exchange in FUTURES_MARKETS:
            self._check_futures_position(opportunity, opportunity.buy_exchange, quantity, buy, counted, closes_hedge)
        elif opportunity.sell_exchange in FUTURES_MARKETS:
            self._check_futures_position(opportunity, opportunity.sell_exchange, -quantity, sell, counted, closes_hedge)
        total = self._used_total + notional
        if total > self._max_total:
            self._reject(RiskCheck.MAX_TOTAL_EXPOSURE, opportunity, total, self._max_total, counted)
        if self._max_symbol is not None:
            used = self._used_by_symbol.get(opportunity.symbol, ZERO) + notional
            if used > self._max_symbol:
                self._reject(RiskCheck.MAX_SYMBOL_EXPOSURE, opportunity, used, self._max_symbol, counted)

    def _check_futures_position(
        self,
        opportunity: ArbitrageOpportunity,
        market: ExchangeName,
        signed: Decimal,
        price: Decimal,
        counted: bool,
        closes_hedge: bool,
    ) -> None:
        """Refuse an opening's leg that takes the side of ``market``'s futures position it grows past the
        position limit (``_held_that_way``); and any leg that grows the position (a close: the way it
        points) while the venue reports it nearer its liquidation than ``min_liquidation_distance_bps``."""
        position = self._positions.get((market, opportunity.symbol))
        held = position.quantity if position is not None else ZERO
        # Executions in flight that grow it the same way count as filled in full, and so does the
        # unfilled part of a futures order of unknown outcome until the venue's position is read.
        for started in self._in_flight.values():
            leg = _futures_leg(started) if started.symbol == opportunity.symbol else None
            if leg is not None and leg[0] is market and (leg[1] > 0) == (signed > 0):
                held += leg[1]
        for unknown_market, symbol, base in self._unknown_futures.values():
            if unknown_market is market and symbol == opportunity.symbol and (base > 0) == (signed > 0):
                held += base
        if not closes_hedge:
            size = (self._held_that_way(market, opportunity.symbol, held, signed > 0) + abs(signed)) * (
                self._position_price(opportunity.symbol, price)
            )
            if size > self._max_position:
                self._reject(RiskCheck.MAX_FUTURES_POSITION, opportunity, size, self._max_position, counted)
        after = held + signed
        # A close that turns the position around takes off the side near its liquidation.
        if self._liquidation_distances and held and abs(after) > abs(held) and (
            not closes_hedge or (after > 0) == (held > 0)
        ):
            distance = self._too_near_liquidation(market, opportunity.symbol)
            if distance is not None:
                self._reject(RiskCheck.LIQUIDATION_DISTANCE, opportunity, distance, self._min_liquidation, counted)

    def _held_that_way(self, market: ExchangeName, symbol: str, held: Decimal, buying: bool) -> Decimal:
        """The base the futures position ``held`` (signed) of ``symbol`` on ``market`` may be left holding the
        way a buy (``buying``) or a sell grows it, once whatever holds it the other way is gone: the open
        hedges holding it that way (``hedged_futures``), and the part no hedge explains (a flagged residual,
        a position not the engine's) where it points that way. Neither hedges nor such a part the other way
        are an offset to count on: hedges close, and an operator closes a residual."""
        long = short = ZERO
        if self.hedged_futures is not None:
            long, short = self.hedged_futures(market, symbol)
        rest = held - long + short
        return long + max(rest, ZERO) if buying else short + max(-rest, ZERO)

    def _reject(
        self, check: RiskCheck, opp: ArbitrageOpportunity, value: Decimal, limit: Decimal, counted: bool
    ) -> None:
        if counted:
            self._rejections[check] += 1
        what, relation = _REJECTION_TEXT[check]
        message = f"opportunity {opp.opportunity_id} {opp.symbol}: {what} {value} {relation} {check.value} {limit}"
        raise RiskRejection(check, message, value=value, limit=limit)

    def _warn_implausible(self, opp: ArbitrageOpportunity, margin: Decimal) -> None:
        """Log a refused too-good ``margin`` (the prices', before funding): a symbol's first, then at
        most one a minute."""
        now = self._clock()
        last = self._implausible_warned_ns.get(opp.symbol)
        if last is not None and now - last < IMPLAUSIBLE_WARNING_INTERVAL_NS:
            return
        self._implausible_warned_ns[opp.symbol] = now
        log.warning(
            "risk: %s: buy on %s at %s, sell on %s at %s is %s bps, over max_profit_margin_bps %s: refused as "
            "implausible; check both markets (prices, deposit and withdrawal status, that they list the same asset)",
            opp.symbol, opp.buy_exchange.value, opp.buy_price, opp.sell_exchange.value, opp.sell_price,
            margin, self._max_margin,
        )

    def _reject_invalid(self, opp: ArbitrageOpportunity, counted: bool, why: str) -> None:
        if counted:
            self._rejections[RiskCheck.INVALID_OPPORTUNITY] += 1
        raise RiskRejection(
            RiskCheck.INVALID_OPPORTUNITY,
            f"opportunity {opp.opportunity_id} {opp.symbol}: max_quantity={opp.max_quantity}, "
            f"buy_price={opp.buy_price}, sell_price={opp.sell_price}, profit_margin_bps={opp.profit_margin_bps}, "
            f"total_profit_estimate={opp.total_profit_estimate}: {why}",
        )

    def _refuse_breaker(self, opp: ArbitrageOpportunity, counted: bool) -> None:
        if counted:
            self._rejections[RiskCheck.CIRCUIT_BREAKER] += 1
        breaker, trip = next(iter(self._tripped.items()))
        others = f" (+{len(self._tripped) - 1} more)" if len(self._tripped) > 1 else ""
        raise CircuitBreakerOpen(
            breaker,
            f"opportunity {opp.opportunity_id} {opp.symbol}: circuit breaker {breaker.value} tripped: "
            f"{trip.reason}{others}",
        )

    # -- recoveries ---------------------------------------------------------------------

    def validate_recovery(self, exchange: ExchangeName, symbol: str, side: OrderSide, quantity: Decimal) -> None:
        """Allow an order that reduces the open net position of ``symbol``, breakers or not.

        ``quantity`` is in base units. Raises ``RiskRejection`` when the order would open,
        grow or flip the net position (that is a new entry, not a recovery).
        """
        net = self.net_position(symbol)
        signed = quantity if side is OrderSide.BUY else -quantity
        if quantity <= ZERO or net == ZERO or (net > ZERO) == (signed > ZERO) or quantity > abs(net):
            self._rejections[RiskCheck.RECOVERY_NOT_REDUCING] += 1
            raise RiskRejection(
                RiskCheck.RECOVERY_NOT_REDUCING,
                f"recovery {side.value} {quantity} {symbol} on {exchange.value}: net position is {net}; "
                "a recovery must reduce it without flipping",
                value=quantity,
                limit=abs(net),
            )
        self._recoveries_allowed += 1

    # -- feeding the state --------------------------------------------------------------

    def in_flight(self, opportunity_id: str) -> bool:
        """Whether an execution of ``opportunity_id`` is started and not yet recorded as finished."""
        return opportunity_id in self._in_flight

    def record_execution_started(self, opportunity: ArbitrageOpportunity) -> None:
        """Reserve the worst-case leg notional of an execution until ``record_execution``."""
        previous = self._in_flight.get(opportunity.opportunity_id)
        if previous is not None:
            self._adjust_used(previous.symbol, -_worst_notional(previous))
        self._in_flight[opportunity.opportunity_id] = opportunity
        self._adjust_used(opportunity.symbol, _worst_notional(opportunity))

    def record_execution(
        self, result: ExecutionResult, *, contract_sizes: Mapping[ExchangeName, Decimal] | None = None,
        held_basis: Decimal = ZERO,
    ) -> None:
        """Account a finished execution: release its reservation, realized PnL, failure and latency breakers.

        ``held_basis``: what of its realized PnL a hedge's opening holds as locked basis (negative
        when a close gives it back), left out of the day's PnL in the same step, so the two cannot
        land on different UTC days.

        An execution with an order whose outcome is still unknown (flagged for an operator) keeps its
        reservation for the rest of the run: the order may have filled, and a restart reconciles it.
        A futures order of unknown outcome counts against the futures limit, its unfilled contracts
        in base by ``contract_sizes`` (per market), until the venue's position is next read.
        """
        reserved = self._in_flight.pop(result.opportunity_id, None)
        if reserved is not None:
            if any(leg.error_category == _OUTCOME_UNKNOWN for leg in result.legs):
                self._unresolved[result.opportunity_id] = reserved
                self._note_unknown_futures(reserved, result, contract_sizes or {})
                log.warning(
                    "risk: %s has an order of unknown outcome: its %s USD stay counted against the exposure "
                    "limits until a restart reconciles it", result.opportunity_id, _worst_notional(reserved),
                )
            else:
                self._adjust_used(reserved.symbol, -_worst_notional(reserved))
        self.record_realized_pnl(result.realized_profit - held_basis)
        if result.final_state is ArbitrageState.COMPLETED:
            self._consecutive_failures = 0
        elif result.legs and all(
            not leg.filled_quantity and leg.error is None and leg.status in _MISSED for leg in result.legs
        ):
            # Both IOC orders taken and dropped unfilled: the liquidity was gone, nothing went wrong and
            # nothing was spent. Neither a failure (misses in a fast market would latch the breaker)
            # nor a success (a refused leg before and after it still make a streak). A venue's final
            # REJECTED is a refusal: it counts. So does an execution that sent nothing (its plan or its
            # intents refused here: an engine or journal fault that would refuse every one).
            pass
        else:
            self._consecutive_failures += 1
            threshold = self._thresholds[Breaker.CONSECUTIVE_FAILURES]
            if self._consecutive_failures >= threshold:
                self._trip(
                    Breaker.CONSECUTIVE_FAILURES,
                    f"{self._consecutive_failures} consecutive failed executions (max_consecutive_failures "
                    f"{threshold}); last {result.opportunity_id}: {result.error or result.final_state.name}",
                )
        latency = result.total_execution_time_ms
        if latency > self._max_latency_ms:
            self._slow_streak += 1
            threshold = self._thresholds[Breaker.EXECUTION_LATENCY]
            if self._slow_streak >= threshold:
                self._trip(
                    Breaker.EXECUTION_LATENCY,
                    f"{self._slow_streak} consecutive executions over max_execution_latency_ms "
                    f"{self._max_latency_ms}; last {result.opportunity_id} took {latency} ms",
                )
        else:
            self._slow_streak = 0

    def _note_unknown_futures(
        self, opportunity: ArbitrageOpportunity, result: ExecutionResult, contract_sizes: Mapping[ExchangeName, Decimal]
    ) -> None:
        """Keep the unfilled base of each futures order of unknown outcome, the way it would move the
        position (its own side: a recovery order may go against the opening's)."""
        for leg in result.legs:
            market = leg.exchange
            if market not in FUTURES_MARKETS or leg.error_category != _OUTCOME_UNKNOWN:
                continue
            contract = contract_sizes.get(market)
            if contract is None:
                log.warning("risk: %s order %s of unknown outcome: no contract size given, not counted against "
                            "the futures limit", market.value, leg.client_order_id)
                continue
            unfilled = (leg.requested_quantity - leg.filled_quantity) * contract
            if unfilled <= 0:
                continue
            signed = unfilled if leg.side is OrderSide.BUY else -unfilled
            known = self._unknown_futures.get(result.opportunity_id)
            if known is not None and known[0] is market:
                signed += known[2]
            self._unknown_futures[result.opportunity_id] = (market, opportunity.symbol, signed)

    def record_fill(self, exchange: ExchangeName, fill: Fill, *, contract_size: Decimal = Decimal(1)) -> None:
        """Update the position of ``exchange``/``fill.symbol``; ``contract_size`` converts futures contracts to base."""
        quantity = fill.quantity * contract_size
        if quantity <= ZERO or fill.price <= ZERO:
            raise ValueError(
                f"fill {fill.trade_id} on {exchange.value} {fill.symbol}: quantity={fill.quantity} "
                f"and price={fill.price} must be positive"
            )
        self._move_position(exchange, fill.symbol, fill.side, quantity, fill.price, fill.timestamp_ms)
        self._refresh_symbol(fill.symbol)

    def _move_position(
        self, exchange: ExchangeName, symbol: str, side: OrderSide, quantity: Decimal, price: Decimal, at_ms: int
    ) -> None:
        """Apply a fill of ``quantity`` base (> 0) at ``price`` to the position and the mark, not the exposure."""
        key = (exchange, symbol)
        position = self._positions.get(key)
        if position is None:
            position = self._positions[key] = _Position()
        signed = quantity if side is OrderSide.BUY else -quantity
        old = position.quantity
        new = old + signed
        if old == ZERO or (new > ZERO) != (old > ZERO) and new != ZERO:
            position.entry_price = price
            position.opened_at_ms = at_ms
        elif (signed > ZERO) == (old > ZERO):
            position.entry_price = (old * position.entry_price + signed * price) / new
        position.quantity = new
        self._marks[symbol] = price

    def mark_to_market(self, prices: Mapping[str, Decimal]) -> None:
        """Value each held symbol's net position at its price in ``prices`` (the live books'), so the
        exposure limits follow the market between fills rather than the last fill's price (or,
        after a restart, a journaled one)."""
        for symbol, price in prices.items():
            if price > ZERO and symbol in self._symbol_exposure and self._marks.get(symbol) != price:
                self._marks[symbol] = price
                self._refresh_symbol(symbol)

    def record_realized_pnl(self, amount: Decimal) -> None:
        """Add realized PnL in USD (negative for a loss) to the current UTC day."""
        if self._wall_clock() >= self._day_end_ns:
            self._roll_day()
        self._daily_pnl += amount
        self._warn_daily_loss()

    def _warn_daily_loss(self) -> None:
        """Warn once a day when the day's realized loss reaches the limit: its refusals are logged at debug."""
        if self._daily_pnl <= self._daily_floor and self._loss_warned_day != self._day and self.enable_risk_checks:
            self._loss_warned_day = self._day
            log.warning("risk: the day's realized loss %s USD reached max_daily_loss_usd %s: no entry or hedge close "
                        "until the UTC day rolls over", -self._daily_pnl, self._max_daily_loss)

    @property
    def daily_loss_reached(self) -> bool:
        """Whether the day's realized loss has reached ``max_daily_loss_usd`` (with risk checks on):
        no entry or hedge close until the UTC day rolls over."""
        if self._wall_clock() >= self._day_end_ns:
            self._roll_day()
        return self.enable_risk_checks and self._daily_pnl <= self._daily_floor

    @property
    def executions_in_flight(self) -> int:
        """Executions started (``record_execution_started``) and not yet recorded as finished."""
        return len(self._in_flight)

    @property
    def opportunities_in_flight(self) -> list[ArbitrageOpportunity]:
        """The opportunities of the executions in flight, in the order they started."""
        return list(self._in_flight.values())

    def record_funding(self, payment: FundingPayment) -> None:
        """Count funding a venue settled (USD, > 0 received) in the daily PnL when it was settled on
        the current UTC day (a payment of an earlier day, read late, belongs to that day; one of a
        later day, stamped by a venue clock ahead of this one at midnight, counts once the day rolls)."""
        if self._wall_clock() >= self._day_end_ns:
            self._roll_day()
        self._count_funding([payment])

    def _count_funding(self, payments: Iterable[FundingPayment]) -> None:
        for payment in payments:
            day = payment.time_ms // MS_PER_DAY
            if day == self._day:
                self._daily_pnl += payment.amount
                self._daily_funding += payment.amount
            elif day > self._day:
                self._early_funding.append(payment)
        self._warn_daily_loss()

    def record_stale_data(self, exchange: ExchangeName, symbol: str, *, desynced: bool = False) -> None:
        """Report a book found stale (or out of sync) when a decision needed it."""
        now = self._clock()
        times = self._stale_times
        self._prune(times, now - self._stale_window_ns)
        times.append(now)
        if len(times) >= self._thresholds[Breaker.STALE_DATA]:
            what = "desynced" if desynced else "stale"
            self._trip(
                Breaker.STALE_DATA,
                f"{len(times)} stale or desynced books within {self._stale_window_ns // 1_000_000} ms; "
                f"last {exchange.value} {symbol} {what}",
            )

    def record_venue_error(self, exchange: ExchangeName, error: str | BaseException) -> None:
        """Report a venue error (rejected request, timeout, disconnect)."""
        now = self._clock()
        times = self._venue_error_times.setdefault(exchange.venue, deque())
        self._prune(times, now - self._venue_window_ns)
        times.append(now)
        if len(times) >= self._thresholds[Breaker.VENUE_ERRORS]:
            self._trip(
                Breaker.VENUE_ERRORS,
                f"{len(times)} errors from {exchange.venue} within {self._venue_window_ns // 1_000_000} ms; "
                f"last: {error}",
            )

    def record_journal_failure(self, reason: str) -> None:
        """A journal write failed: stop every new entry (whether breakers are enabled or not) until
        an operator resets the breaker; executions and recoveries under way go on."""
        self._journal_failures += 1
        self._trip(Breaker.JOURNAL_WRITES, reason, force=True)

    def kill(self, reason: str = "manual kill switch") -> None:
        """Stop every new entry now, whether breakers are enabled or not."""
        self._trip(Breaker.KILL_SWITCH, reason, force=True)

    def resume(self) -> None:
        """Release the kill switch (other tripped breakers stay tripped)."""
        self.reset_circuit_breaker(Breaker.KILL_SWITCH)

    def reset_circuit_breaker(self, breaker: Breaker | None = None) -> None:
        """Reset one breaker (or all of them) and its counter."""
        for item in Breaker if breaker is None else (breaker,):
            if self._tripped.pop(item, None) is not None:
                log.warning("circuit breaker %s reset", item.value)
            if item is Breaker.CONSECUTIVE_FAILURES:
                self._consecutive_failures = 0
            elif item is Breaker.EXECUTION_LATENCY:
                self._slow_streak = 0
            elif item is Breaker.STALE_DATA:
                self._stale_times.clear()
            elif item is Breaker.VENUE_ERRORS:
                self._venue_error_times.clear()
            elif item is Breaker.JOURNAL_WRITES:
                self._journal_failures = 0

    # -- restart ------------------------------------------------------------------------

    def restore(
        self, journal: RiskJournal, catalogs: Mapping[ExchangeName, InstrumentCatalog], *,
        held_basis_by_day: Mapping[int, Decimal] | None = None,
    ) -> RestoredRisk:
        """Rebuild positions, exposure and today's realized PnL from ``journal`` (see the module doc).

        ``catalogs`` give each journaled market symbol its contract size, grid and assets.
        ``held_basis_by_day``: by UTC day, how much hedge basis that day's executions locked in
        net of what they closed (``HedgeBook.restored_basis_by_day``); today's is left out of the
        daily PnL, as the live path leaves it out. The fills are read one at a time: what stays
        is one summed record per journaled order.
        Replaces the positions and the daily PnL held; reservations of executions in flight
        are kept. An opportunity with an order whose instrument is no longer listed (or a
        malformed fill) is left out whole, with an error naming it. The breakers, the
        consecutive-failure count included, start reset: a restart is a deliberate operator
        action, and a latched breaker is the operator's to clear.
        """
        by_intent: dict[int, tuple[str | None, _JournaledOrder]] = {}
        orphans: list[tuple[str | None, _JournaledOrder]] = []
        for record in journal.iter_fills():
            if record.intent_id is None:
                orphans.append((None, _JournaledOrder(record)))
            elif record.intent_id in by_intent:
                by_intent[record.intent_id][1].add(record)
            else:
                by_intent[record.intent_id] = (record.opportunity_id, _JournaledOrder(record))
        # Intents are journaled in the order the live path lists the legs (buy, sell, recovery
        # orders); fills of no known intent were never in a leg and go last.
        sequence = [by_intent[i] for i in sorted(by_intent)] + orphans
        resolved: list[tuple[str | None, _JournaledOrder, Instrument]] = []
        skipped: dict[str, str] = {}
        for opportunity_id, order in sequence:
            try:
                resolved.append((opportunity_id, order, _journaled_instrument(catalogs, order)))
            except InstrumentError as exc:
                skipped.setdefault(opportunity_id or order.order_id, str(exc))

        if self._wall_clock() >= self._day_end_ns:
            self._roll_day()
        unvalued_today = sorted({
            opportunity_id for opportunity_id, order in sequence
            if opportunity_id in skipped and order.recorded_at_ms // MS_PER_DAY == self._day
        })
        self._positions.clear()
        self._marks.clear()
        self._symbol_exposure.clear()
        self._used_total = ZERO
        self._used_by_symbol.clear()
        for started in self._in_flight.values():
            self._adjust_used(started.symbol, _worst_notional(started))
        executions: dict[str, _ExecutionPnl] = {}
        replayed = 0
        moved: set[str] = set()
        # A residual an operator acknowledged was closed (or taken over) by hand: taken off where
        # its execution's spot leg traded, or it would use exposure headroom for good. Its other
        # legs stand (a hedge's two legs stay in the hedge book, and so here).
        acknowledged = journal.acknowledged()
        residuals: dict[str, tuple[ExchangeName, str, Decimal, Decimal, int]] = {}
        for opportunity_id, order, instrument in resolved:
            if opportunity_id in skipped:
                continue
            # What record_fill does with the leg's one fill, the exposure left to the end (it
            # depends only on the final positions and marks).
            symbol = pair_symbol(order.symbol)  # as the live path: spot and perpetual of a pair net
            base = order.quantity * base_per_unit(order.contract_size, instrument)
            self._move_position(order.exchange, symbol, order.side, base, order.average_price, order.recorded_at_ms)
            moved.add(symbol)
            if opportunity_id in acknowledged:
                signed = base if order.side is OrderSide.BUY else -base
                market, _, net, price, at_ms = residuals.get(opportunity_id, (order.exchange, symbol, ZERO, ZERO, 0))
                if not instrument.is_futures:
                    market, price, at_ms = order.exchange, order.average_price, order.recorded_at_ms
                residuals[opportunity_id] = (market, symbol, net + signed, price, at_ms)
            replayed += 1
            if opportunity_id is not None:
                executions.setdefault(opportunity_id, _ExecutionPnl()).add_order(order, instrument)
        for market, symbol, net, price, at_ms in residuals.values():
            if net and not market.is_futures:  # a futures venue's position is read from the venue anyway
                self._move_position(market, symbol, OrderSide.SELL if net > 0 else OrderSide.BUY, abs(net), price, at_ms)
        self._reserve_unresolved(journal, catalogs)
        for symbol in sorted(moved):
            self._refresh_symbol(symbol)
        self._daily_pnl = ZERO
        today = [e for e in executions.values() if e.recorded_at_ms // MS_PER_DAY == self._day]
        for execution in today:
            self._daily_pnl += execution.value()
        if held_basis_by_day:
            self._daily_pnl -= held_basis_by_day.get(self._day, ZERO)
        self._daily_funding = ZERO
        self._early_funding = []
        self._count_funding(p for _, p in journal.funding_payments(since_ms=self._day * MS_PER_DAY))
        for what, reason in skipped.items():
            log.error("risk: %s left out of the restored positions and daily PnL: %s", what, reason)
        restored = RestoredRisk(
            orders=replayed,
            executions_today=len(today),
            trading_day=self._day,
            daily_realized_pnl_usd=self._daily_pnl,
            positions=sum(1 for p in self._positions.values() if p.quantity != ZERO),
            total_exposure_usd=self._used_total,
            skipped=tuple(skipped),
            funding_today_usd=self._daily_funding,
            unvalued_today=tuple(unvalued_today),
            why_left_out=skipped,
        )
        log.info(
            "risk: restored from the journal: %d orders, %d open positions, exposure %s USD; trading day %d "
            "realized PnL %s USD from %d executions and %s USD of funding; %d left out",
            restored.orders, restored.positions, restored.total_exposure_usd, restored.trading_day,
            restored.daily_realized_pnl_usd, restored.executions_today, restored.funding_today_usd, len(restored.skipped),
        )
        return restored

    def _reserve_unresolved(self, journal: RiskJournal, catalogs: Mapping[ExchangeName, InstrumentCatalog]) -> None:
        """Count each order still of unknown outcome after the start's reconciliation at its unfilled
        notional, as a live run counts one until a restart: it may have filled. A futures order's
        unfilled base also counts against the futures limit the way it would move the position, as a
        live run's does, until the venue's position is read (``align_futures_positions``)."""
        self._unresolved_orders_usd = ZERO
        for intent in journal.open_intents():
            request = intent.request
            catalog = catalogs.get(intent.exchange)
            if request.price is None or catalog is None:
                continue
            try:
                contract = base_per_unit(intent.contract_size, catalog.get(request.symbol))
            except InstrumentError:
                continue
            unfilled = (request.quantity - intent.filled_quantity) * contract
            notional = unfilled * request.price
            if notional <= 0:
                continue
            self._unresolved_orders_usd += notional
            symbol = pair_symbol(request.symbol)
            self._adjust_used(symbol, notional)
            if intent.exchange in FUTURES_MARKETS:
                signed = unfilled if request.side is OrderSide.BUY else -unfilled
                self._unknown_futures[f"{intent.exchange.value} {request.client_order_id}"] = (
                    intent.exchange, symbol, signed,
                )
            log.warning("risk: %s %s of unknown outcome: its %s USD stay counted against the exposure limits "
                        "until a restart learns it", intent.exchange.value, request.client_order_id, notional)

    # -- reports ------------------------------------------------------------------------

    def align_futures_positions(
        self, market: ExchangeName, holdings: Mapping[str, FuturesHolding], symbols: Collection[str]
    ) -> dict[str, tuple[Decimal, Decimal]]:
        """Take what futures ``market``'s venue holds (``futures_holdings``) as its positions of the
        pairs ``symbols`` (spot form: BTC/USDT), in place of the journal's; returns
        ``{pair: (journal's base, venue's base)}`` of every pair that changed, each logged. A pair
        the venue does not hold is flat there; other pairs (the account's other trading) are left
        as they are.

        Each pair's distance from liquidation is taken too: one under ``min_liquidation_distance_bps``
        is warned about, and entries that grow that position are refused until a read finds it
        farther (``validate_opportunity_risk``, ``futures_room``)."""
        held = {symbol: p.quantity for (m, symbol), p in self._positions.items() if m is market and p.quantity}
        wanted = set(symbols)
        # What the venue holds now says whether an order of unknown outcome filled.
        for opportunity_id, (unknown_market, symbol, _) in list(self._unknown_futures.items()):
            if unknown_market is market and symbol in wanted:
                del self._unknown_futures[opportunity_id]
        for symbol in sorted(wanted):
            holding = holdings.get(symbol)
            self._note_liquidation_distance(market, symbol, holding.liquidation_distance_bps if holding else None)
        changed = {}
        for symbol in sorted((held.keys() | holdings.keys()) & wanted):
            holding = holdings.get(symbol)
            quantity, price = (holding.base, holding.entry_price) if holding is not None else (ZERO, ZERO)
            journaled = held.get(symbol, ZERO)
            if quantity == journaled:
                continue
            changed[symbol] = (journaled, quantity)
            log.warning(
                "risk: %s %s: the journal's position is %s base, the venue's %s; the venue's counts against the limits",
                market.value, symbol, journaled, quantity,
            )
            aligned = self._positions.setdefault((market, symbol), _Position())
            aligned.quantity = quantity
            if quantity and price > ZERO:
                aligned.entry_price = price
                self._marks.setdefault(symbol, price)
            if symbol in self._marks:
                self._refresh_symbol(symbol)
        return changed

    def held_positions(self, market: ExchangeName) -> dict[str, Decimal]:
        """The signed base of each pair (spot form) it counts an open position of on ``market``: what
        the fills it was given hold there, aligned with the venue at each position read."""
        return {symbol: p.quantity for (m, symbol), p in self._positions.items() if m is market and p.quantity}

    def liquidation_distances(self) -> dict[tuple[ExchangeName, str], tuple[Decimal, bool]]:
        """(futures market, pair) -> the distance of its position from liquidation, bps of the mark, as the
        last read found it, and whether that is under ``min_liquidation_distance_bps``."""
        minimum = self._min_liquidation
        return {key: (distance, distance < minimum) for key, distance in sorted(self._liquidation_distances.items())}

    def _too_near_liquidation(self, market: ExchangeName, symbol: str) -> Decimal | None:
        """The last distance read for the position, when it is under ``min_liquidation_distance_bps``."""
        distance = self._liquidation_distances.get((market, symbol))
        return distance if distance is not None and distance < self._min_liquidation else None

    def _note_liquidation_distance(self, market: ExchangeName, symbol: str, distance: Decimal | None) -> None:
        key = (market, symbol)
        was_near = self._too_near_liquidation(market, symbol) is not None
        if distance is None:
            self._liquidation_distances.pop(key, None)
        else:
            self._liquidation_distances[key] = distance
        if self._too_near_liquidation(market, symbol) is not None:
            if not was_near:
                log.warning(
                    "risk: %s %s: the position is %s bps from its liquidation, under min_liquidation_distance_bps "
                    "%s: entries that grow it are refused; add margin or lower the leverage", market.value, symbol,
                    distance, self._min_liquidation,
                )
        elif was_near:
            if distance is None:
                log.warning("risk: %s %s: no liquidation price reported any more (the position closed, or none "
                            "given); entries may grow it", market.value, symbol)
            else:
                log.warning("risk: %s %s: the position is %s bps from its liquidation again; entries may grow it",
                            market.value, symbol, distance)

    @property
    def is_tripped(self) -> bool:
        """Whether any breaker currently blocks new entries."""
        return bool(self._tripped)

    def _position_price(self, symbol: str, price: Decimal) -> Decimal:
        """What a futures position of ``symbol`` is valued at against its limit: the higher of the
        symbol's mark (its last fill, or its books' price at the last ``mark_to_market``) and
        ``price`` (the current one), so that a mark gone stale does not understate it."""
        mark = self._marks.get(symbol)
        return price if mark is None else max(mark, price)

    def futures_room(
        self, market: ExchangeName, symbol: str, price: Decimal | None = None
    ) -> tuple[Decimal, Decimal] | None:
        """How much base an entry may buy and sell on futures ``market`` of ``symbol`` (spot form,
        BTC/USDT) before the side of its position it grows (``_held_that_way``) passes
        ``max_position_size_usd`` at the higher of the symbol's
        mark and ``price`` (the market's current price), as ``validate_opportunity_risk`` values it,
        and only what shrinks it while it is too near its liquidation; None before the symbol's first
        fill (no mark: each entry's own leg limit bounds it)."""
        mark = self._marks.get(symbol)
        if mark is None:
            return None
        if price is not None:
            mark = self._position_price(symbol, price)
        position = self._positions.get((market, symbol))
        held = position.quantity if position is not None else ZERO
        limit = self._max_position / mark
        # Orders of unknown outcome count the way they would grow it, and the hedges the other way
        # as closed (``_check_futures_position``).
        unknown = [base for m, s, base in self._unknown_futures.values() if m is market and s == symbol]
        bought = held + sum((b for b in unknown if b > 0), ZERO)
        sold = held + sum((b for b in unknown if b < 0), ZERO)
        buy = max(limit - self._held_that_way(market, symbol, bought, True), ZERO)
        sell = max(limit - self._held_that_way(market, symbol, sold, False), ZERO)
        if held and self._too_near_liquidation(market, symbol) is not None:  # only shrinking it: up to the position
            buy, sell = (ZERO, min(sell, held)) if held > 0 else (min(buy, -held), ZERO)
        return buy, sell

    def net_position(self, symbol: str) -> Decimal:
        """Signed base quantity of ``symbol`` summed over every market."""
        return sum((p.quantity for (_, s), p in self._positions.items() if s == symbol), ZERO)

    def get_circuit_breaker_status(self) -> dict[Breaker, BreakerStatus]:
        """Every breaker: tripped or not, its count against its threshold, its active trip."""
        now = self._clock()
        self._prune(self._stale_times, now - self._stale_window_ns)
        for times in self._venue_error_times.values():
            self._prune(times, now - self._venue_window_ns)
        counts = {
            Breaker.CONSECUTIVE_FAILURES: self._consecutive_failures,
            Breaker.EXECUTION_LATENCY: self._slow_streak,
            Breaker.STALE_DATA: len(self._stale_times),
            Breaker.VENUE_ERRORS: max((len(t) for t in self._venue_error_times.values()), default=0),
            Breaker.KILL_SWITCH: int(Breaker.KILL_SWITCH in self._tripped),
            Breaker.JOURNAL_WRITES: self._journal_failures,
        }
        return {
            breaker: BreakerStatus(
                breaker=breaker,
                tripped=breaker in self._tripped,
                count=counts[breaker],
                threshold=self._thresholds[breaker],
                trips=self._trip_counts[breaker],
                trip=self._tripped.get(breaker),
            )
            for breaker in Breaker
        }

    def get_current_risk_metrics(self) -> RiskMetrics:
        """Exposure, positions and daily PnL, with utilisation of the limits in percent."""
        if self._wall_clock() >= self._day_end_ns:
            self._roll_day()
        in_flight = sum((_worst_notional(o) for o in (*self._in_flight.values(), *self._unresolved.values())), ZERO)
        in_flight += self._unresolved_orders_usd
        loss = max(-self._daily_pnl, ZERO)
        positions = tuple(
            PositionEntry(
                exchange=exchange,
                symbol=symbol,
                side=OrderSide.BUY if p.quantity > ZERO else OrderSide.SELL,
                quantity=abs(p.quantity),
                entry_price=p.entry_price,
                opened_at=p.opened_at_ms,
            )
            for (exchange, symbol), p in self._positions.items()
            if p.quantity != ZERO
        )
        return RiskMetrics(
            total_exposure_usd=self._used_total,
            in_flight_usd=in_flight,
            max_total_exposure_usd=self._max_total,
            exposure_utilisation_pct=self._used_total * HUNDRED / self._max_total,
            symbol_exposure_usd={s: e for s, e in self._symbol_exposure.items() if e != ZERO},
            positions=positions,
            trading_day=self._day,
            daily_realized_pnl_usd=self._daily_pnl,
            max_daily_loss_usd=self._max_daily_loss,
            daily_loss_utilisation_pct=loss * HUNDRED / self._max_daily_loss,
            executions_in_flight=self.executions_in_flight,
            daily_funding_usd=self._daily_funding,
        )

    def get_risk_statistics(self) -> RiskStatistics:
        """Validations, rejections by check and breaker trips since start."""
        refused = RiskCheck.RECOVERY_NOT_REDUCING
        rejected = sum(n for check, n in self._rejections.items() if check is not refused)
        return RiskStatistics(
            validations=self._validations,
            accepted=self._validations - rejected,
            rejections={check.value: n for check, n in self._rejections.items() if n},
            breaker_trips={b.value: n for b, n in self._trip_counts.items() if n},
            recoveries_allowed=self._recoveries_allowed,
            recoveries_refused=self._rejections[refused],
        )

    # -- internals ----------------------------------------------------------------------

    def _trip(self, breaker: Breaker, reason: str, *, force: bool = False) -> None:
        if breaker in self._tripped or not (force or self.enable_circuit_breakers):
            return
        trip = BreakerTrip(
            breaker=breaker, reason=reason, tripped_at_ns=self._clock(), tripped_at_ms=self._wall_clock() // 1_000_000
        )
        self._tripped[breaker] = trip
        self._trip_counts[breaker] += 1
        log.error("circuit breaker %s tripped: %s", breaker.value, reason)
        if self.on_alert is not None:
            try:
                self.on_alert(trip)
            except Exception:
                # The breaker is already tripped; a failing alert sink must not undo or hide that.
                log.exception("alert callback failed for circuit breaker %s", breaker.value)

    def _roll_day(self) -> None:
        day = self._wall_clock() // NS_PER_DAY
        if day != self._day:
            log.info("trading day %d closed with realized PnL %s USD", self._day, self._daily_pnl)
            self._day = day
            self._daily_pnl = ZERO
            self._daily_funding = ZERO
            early, self._early_funding = self._early_funding, []
            self._count_funding(early)
        self._day_end_ns = (day + 1) * NS_PER_DAY

    def _refresh_symbol(self, symbol: str) -> None:
        exposure = abs(self.net_position(symbol)) * self._marks[symbol]
        self._adjust_used(symbol, exposure - self._symbol_exposure.get(symbol, ZERO))
        self._symbol_exposure[symbol] = exposure

    def _adjust_used(self, symbol: str, delta: Decimal) -> None:
        self._used_total += delta
        self._used_by_symbol[symbol] = self._used_by_symbol.get(symbol, ZERO) + delta

    @staticmethod
    def _prune(times: deque[int], oldest_ns: int) -> None:
        while times and times[0] <= oldest_ns:
            times.popleft()
