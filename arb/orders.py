"""One order, sent once and its outcome known for sure: journal first, 429 waits, unknown outcomes resolved by query.

Shared by the two-leg executor and the recovery manager. An order whose answer was lost
(timeout, disconnect, 5xx) is never assumed placed or not placed: it is queried by its
client order id until the venue says what happened. Only an explicit venue refusal or a
"no such order" answer from the venue counts as "nothing executed".
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal
from typing import Any, Literal, Protocol

import msgspec

from .errors import ExchangeError, OrderRejectedError, RateLimitError
from .exchanges.base import PrivateExchange
from .exchanges.errors import ErrorCategory
from .exchanges.models import Fill, OrderRequest, OrderRequestError, OrderState, OrderType, TimeInForce
from .instruments import Instrument, InstrumentCatalog, split_symbol, unified_symbol
from .journal import IntentOrder
from .types import ExchangeName, ExecutionLeg, OrderSide

log = logging.getLogger(__name__)

ZERO = Decimal(0)
# Wide enough that products and quotients of venue decimals stay exact. Its methods are used
# rather than ``localcontext()``, which would build a context on every call.
WIDE = Context(prec=60)
# A quote amount that cannot be exact (a share of a total, a value at an average price) is
# rounded to this: far below any venue's quote precision, and sums of such amounts stay exact.
QUOTE_QUANTUM = Decimal("1e-12")
ONE = Decimal(1)

# Client ids valid on every venue: Gate ``text`` allows 28 bytes of [0-9A-Za-z_.-] after "t-",
# MEXC 32 of [A-Za-z0-9_-]; the intersection is 28 of [A-Za-z0-9_-].
CLIENT_ID_MAX_LEN = 28
CLIENT_ID_TAG_MAX_LEN = 5
_CLIENT_ID_BASE_MAX_LEN = CLIENT_ID_MAX_LEN - 1 - CLIENT_ID_TAG_MAX_LEN
_CLIENT_ID_CHARS = re.compile(r"[A-Za-z0-9_-]+")

# Categories under which the venue refused the order outright: nothing exists there.
REFUSED = frozenset(
    {
        ErrorCategory.INSUFFICIENT_BALANCE,
        ErrorCategory.PRECISION,
        ErrorCategory.MIN_NOTIONAL,
        ErrorCategory.UNKNOWN_ORDER,
        ErrorCategory.ORDER_REJECTED,
        ErrorCategory.INVALID_REQUEST,
        ErrorCategory.AUTH_FAILED,
        ErrorCategory.TIMESTAMP,
        ErrorCategory.MAINTENANCE,
        ErrorCategory.NOT_SENT,  # not refused, but as sure: nothing reached the venue
    }
)
# Refusals that sending the same order again cannot cure ("unknown order" is an order lost
# on the way, which may well go through when sent again).
PERMANENT = REFUSED - {
    ErrorCategory.MAINTENANCE, ErrorCategory.TIMESTAMP, ErrorCategory.UNKNOWN_ORDER, ErrorCategory.NOT_SENT,
}

Sleep = Callable[[float], Awaitable[None]]
# Queries past ``OrderSettings.query_attempts`` while a lost request may still land (bounds the
# loop whatever a venue's windows say).
_MAX_TAIL_QUERIES = 8
Clock = Callable[[], int]


def client_order_id(opportunity_id: str, tag: str) -> str:
    """A client order id valid on every venue, derived deterministically from ``opportunity_id`` and ``tag``.

    The opportunity id is used as is when short enough and spelled in ``[A-Za-z0-9_-]``;
    otherwise a 22-character hash of it stands in, so ids stay stable across restarts.
    """
    if not tag or len(tag) > CLIENT_ID_TAG_MAX_LEN or not _CLIENT_ID_CHARS.fullmatch(tag):
        raise ValueError(f"client id tag {tag!r}: expected 1..{CLIENT_ID_TAG_MAX_LEN} characters of [A-Za-z0-9_-]")
    return f"{_client_id_base(opportunity_id)}-{tag}"


def ioc_order(
    instrument: Instrument, side: OrderSide, quantity: Decimal, price: Decimal, client_id: str,
    *, reduce_only: bool = False,
) -> OrderRequest:
    """An IOC limit order on ``instrument``: how legs, hedges and unwinds are all sent.

    ``reduce_only`` applies on futures only; it is dropped for a spot instrument.
    """
    return OrderRequest(
        symbol=instrument.symbol,
        side=side,
        type=OrderType.LIMIT,
        quantity=quantity,
        price=price,
        time_in_force=TimeInForce.IOC,
        client_order_id=client_id,
        reduce_only=reduce_only and instrument.is_futures,
    )


@functools.lru_cache(maxsize=64)  # a function of its argument; each opportunity asks for several legs' ids
def _client_id_base(opportunity_id: str) -> str:
    if len(opportunity_id) > _CLIENT_ID_BASE_MAX_LEN or not _CLIENT_ID_CHARS.fullmatch(opportunity_id):
        return hashlib.blake2b(opportunity_id.encode(), digest_size=11).hexdigest()
    return opportunity_id


@functools.lru_cache(maxsize=1024)  # a function of its arguments only, called per order
def market_symbol(symbol: str, exchange: ExchangeName) -> str:
    """The unified symbol of ``symbol``'s pair on ``exchange``: ``BTC/USDT`` on spot, ``BTC/USDT:USDT`` on a perpetual."""
    base, quote, _ = split_symbol(symbol)
    return unified_symbol(base, quote, quote if exchange.is_futures else None)


def round_price(instrument: Instrument, price: Decimal, side: OrderSide, *, marketable: bool) -> Decimal:
    """``price`` on the tick grid: toward the market (buy up, sell down) when ``marketable``, else away from it."""
    up = (side is OrderSide.BUY) == marketable
    steps = int((price / instrument.tick_size).to_integral_value(ROUND_CEILING if up else ROUND_FLOOR))
    return instrument.ticks_to_price(steps if steps > 1 else 1)


def lots_of_base(instrument: Instrument, base_quantity: Decimal) -> int:
    """Whole lots of ``instrument`` not exceeding ``base_quantity`` (base asset units)."""
    step = instrument.base_lot
    return int((base_quantity / step).to_integral_value(rounding=ROUND_FLOOR))


def exact_notional(instrument: Instrument, base: Decimal, average_price: Decimal) -> Decimal:
    """Quote value of ``base`` filled at ``average_price``, exactly.

    Every fill is a whole number of ticks times a whole number of lots, so the sum lies on
    the grid of ``tick_size * lot_size * contract_size``. Venues report a rounded average
    price (Gate: quote total / base total to 28 digits); snapping ``average * filled`` to
    that grid recovers the exact total.
    """
    quantum = instrument.tick_size * instrument.base_lot
    wide = WIDE
    steps = wide.divide(wide.multiply(base, average_price), quantum).to_integral_value(ROUND_HALF_EVEN, wide)
    return wide.multiply(steps, quantum)


def fee_in_quote(instrument: Instrument, fee: Decimal, asset: str, average_price: Decimal) -> Decimal | None:
    """``fee`` charged in ``asset`` as quote (a base fee valued at ``average_price``); None in any other asset."""
    if not fee or asset == instrument.quote:
        return fee
    if asset == instrument.base:
        return fee * average_price
    return None


class RealizedPnl:
    """Realized profit of one execution's orders: sell proceeds minus buy cost minus fees over
    the matched base quantity, exactly when the orders leave no residual."""

    __slots__ = ("bought", "sold", "buy_notional", "sell_notional", "fees")

    def __init__(self) -> None:
        self.bought = self.sold = self.buy_notional = self.sell_notional = self.fees = ZERO

    def add(self, side: OrderSide, base: Decimal, notional: Decimal, fee_quote: Decimal) -> None:
        """One order's filled base quantity, its exact quote value and its fee in quote."""
        add = WIDE.add
        self.fees = add(self.fees, fee_quote)
        if side is OrderSide.BUY:
            self.bought = add(self.bought, base)
            self.buy_notional = add(self.buy_notional, notional)
        else:
            self.sold = add(self.sold, base)
            self.sell_notional = add(self.sell_notional, notional)

    def value(self) -> Decimal:
        """The realized profit; with an open residual (flagged), only the matched part at each side's
        average, rounded to ``QUOTE_QUANTUM`` (an average need not end)."""
        wide = WIDE
        if self.bought == self.sold:
            return wide.subtract(wide.subtract(self.sell_notional, self.buy_notional), self.fees)
        matched = min(self.bought, self.sold)
        if not matched:
            return wide.minus(self.fees)
        average_spread = wide.subtract(
            wide.divide(self.sell_notional, self.sold), wide.divide(self.buy_notional, self.bought)
        )
        rounded = wide.subtract(wide.multiply(matched, average_spread), self.fees).quantize(
            QUOTE_QUANTUM, ROUND_HALF_EVEN, WIDE
        )
        trimmed = rounded.normalize(WIDE)  # 1.5, not 1.500000000000
        return trimmed.quantize(ONE, context=WIDE) if trimmed == trimmed.to_integral_value() else trimmed  # not 1.5E+3


class Backoff(msgspec.Struct, frozen=True, kw_only=True):
    """Exponential backoff: ``initial_s * factor**attempt``, capped at ``max_s``."""

    initial_s: float = 0.05
    factor: float = 2.0
    max_s: float = 1.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        return float(min(self.max_s, self.initial_s * self.factor**attempt))


class OrderSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How hard to try to learn an order's outcome."""

    query_attempts: int = 6  # queries by client id before an outcome counts as unresolved
    backoff: Backoff = Backoff()
    rate_limit_deadline_s: float = 1.0  # longest total wait on 429s and the order budget before giving an order up
    # Longest time one resolution waits out 429s on its queries, in all; past it the outcome is left
    # unknown. As long as Gate.io's private windows (10 s): a reset within one is asked again, not
    # flagged, and a leg and recovery's two asks again stay well inside the shutdown's 60 s drain.
    query_hold_max_s: float = 10.0


class OrderJournal(Protocol):
    """The part of ``arb.journal.Journal`` the executor and recovery write to."""

    def knows(self, exchange: ExchangeName, client_order_id: str) -> bool:
        """Whether an intent was recorded for ``client_order_id`` on ``exchange``."""

    def record_intent(
        self, opportunity_id: str, leg: str, request: OrderRequest, exchange: ExchangeName,
        contract_size: Decimal | None = None,
    ) -> int:
        """Record an order about to be sent (``contract_size``: required on futures)."""

    def record_intents(
        self,
        opportunity_id: str,
        orders: Sequence[IntentOrder],
        *,
        deferred: bool = False,
    ) -> list[int]:
        """Record orders about to be sent (``IntentOrder`` each) in one transaction
        (``deferred``: through the intent log, as durable)."""

    def rehearse_intents(self, opportunity_id: str, orders: Sequence[IntentOrder]) -> None:
        """Encode what ``record_intents`` would record and drop it; nothing is recorded."""

    def flush_intents(self) -> None:
        """Commit the intents recorded ``deferred`` to the database."""

    def record_ack(self, exchange: ExchangeName, client_order_id: str, state: OrderState) -> None:
        """Record the venue's answer to placing the order."""

    def record_order_update(self, exchange: ExchangeName, client_order_id: str, state: OrderState) -> None:
        """Record an order state learned by query."""

    def record_cancel(self, exchange: ExchangeName, client_order_id: str, state: OrderState) -> None:
        """Record the venue's answer to canceling the order."""

    def record_result(
        self,
        exchange: ExchangeName,
        client_order_id: str,
        state: OrderState,
        fills: Sequence[Fill] = (),
        *,
        kind: Literal["ack", "update", "cancel"] = "ack",
    ) -> None:
        """Record the venue's final answer (an ack, update or cancel) and the order's fills in one transaction."""

    def record_reject(self, exchange: ExchangeName, client_order_id: str, reason: str) -> None:
        """Record that the order executed nothing (refused, or unknown to the venue)."""

    def record_unknown(self, exchange: ExchangeName, client_order_id: str, reason: str) -> None:
        """Record that the outcome of sending is not known yet."""

    def record_fill(self, exchange: ExchangeName, fill: Fill, *, client_order_id: str | None = None) -> bool:
        """Record an execution of the order."""

    def record_recovery_step(self, opportunity_id: str, step: str, detail: Mapping[str, Any] | None = None) -> int:
        """Record one recovery action."""


class OrderOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What became of one order: its final venue state, or why there is none.

    ``state`` is None when nothing exists at the venue (refused, or never received);
    ``resolved`` is False when the venue could not tell (the order may exist and may fill).
    """

    exchange: ExchangeName
    instrument: Instrument
    request: OrderRequest
    leg: str
    state: OrderState | None = None
    resolved: bool = True
    error: str | None = None
    category: str | None = None
    answered_ns: int = 0  # monotonic time of the venue's first answer (0: none)
    # Unresolved: until when (monotonic) the venue may still take the request, so that asking
    # again later (``OrderRunner.resolve``) takes "not found" as final only after it.
    taken_until_ns: int = 0
    # Unresolved: until when (monotonic) the venue's rate limit holds queries of it (a 429's wait),
    # so that asking again sooner sends none (the connector's rate limiter would sleep it until then).
    queries_held_until_ns: int = 0

    @property
    def filled(self) -> Decimal:
        """Filled quantity in the order unit (contracts on futures)."""
        return ZERO if self.state is None else self.state.filled_quantity

    @property
    def filled_base(self) -> Decimal:
        """Filled quantity in base asset units."""
        return self.filled * self.instrument.contract_size

    @property
    def average_price(self) -> Decimal:
        """Average fill price (the limit price when the venue reported fills without one, or with a
        zero one: a field the answer left out reads as 0 in some venues' schemas)."""
        state = self.state
        if state is not None and state.average_price is not None and state.average_price > 0:
            return state.average_price
        return self.request.price if self.request.price is not None else ZERO

    @property
    def notional(self) -> Decimal:
        """Quote value of the fills, exactly (``exact_notional``)."""
        return exact_notional(self.instrument, self.filled_base, self.average_price) if self.filled else ZERO

    @property
    def fee(self) -> tuple[Decimal, str]:
        """The fee and its asset.

        Some venues' order queries carry no fee (MEXC spot reports it only per trade): an
        order with fills, a zero fee and no fee asset is charged the rate the venue reports
        for the order (``OrderState.fee_rate``), else the instrument's taker fee, in the asset
        the instrument charges it in (``Instrument.fee_asset``: base on a spot buy where the
        fee comes out of what it receives, quote otherwise), as the venue does for IOC.
        """
        state = self.state
        instrument = self.instrument
        if state is None or not state.filled_quantity:
            return ZERO, instrument.quote
        if state.fee or state.fee_asset is not None:
            return state.fee, state.fee_asset or instrument.quote
        rate = instrument.taker_fee if state.fee_rate is None else state.fee_rate
        asset = instrument.fee_asset(self.request.side)
        if asset == instrument.base:
            return self.filled_base * rate, asset
        return self.notional * rate, asset

    @property
    def base_fee(self) -> Decimal:
        """The part of ``fee`` charged in the base asset (a spot buy's where the venue takes it from what
        it bought, not in quote), else 0."""
        fee, asset = self.fee
        return fee if asset == self.instrument.base else ZERO

    @property
    def fee_quote(self) -> Decimal:
        """Fee in the quote asset; a fee in the base asset is valued at the average fill price, one in
        a third asset (a venue's own token) at the taker rate on the notional, as an unreported one."""
        fee, asset = self.fee
        in_quote = fee_in_quote(self.instrument, fee, asset, self.average_price)
        if in_quote is not None:
            return in_quote
        estimate = self.notional * self.instrument.taker_fee
        log.warning(
            "%s %s order %s: fee %s %s is in neither base nor quote: counted in PnL at the taker rate, %s %s",
            self.exchange.value, self.request.symbol, self.request.client_order_id, fee, asset, estimate,
            self.instrument.quote,
        )
        return estimate

    @property
    def refused_permanently(self) -> bool:
        """Whether the venue refused the order for a reason that sending it again cannot cure."""
        return self.state is None and self.resolved and self.category in PERMANENT

    def to_leg(self) -> ExecutionLeg:
        """The order as an ``ExecutionLeg`` record."""
        state, request, filled = self.state, self.request, self.filled
        fee, fee_asset = self.fee
        return ExecutionLeg(
            exchange=self.exchange,
            symbol=request.symbol,
            side=request.side,
            client_order_id=request.client_order_id,
            requested_quantity=request.quantity,
            limit_price=request.price if request.price is not None else ZERO,
            filled_quantity=filled,
            average_price=None if state is None or not filled else self.average_price,
            fee=fee,
            fee_asset=fee_asset if filled else "",
            order_id=None if state is None else state.order_id,
            error=self.error,
            error_category=None if self.category is None else ErrorCategory(self.category).value,
            updated_at_ms=0 if state is None else state.updated_at_ms,
            status="" if state is None else state.status.value,
            contract_size=self.instrument.contract_size,
        )


class OrderRunner:
    """Sends orders and learns their final outcome, journaling every step when a journal is given."""

    def __init__(
        self,
        exchanges: Mapping[ExchangeName, PrivateExchange],
        *,
        journal: OrderJournal | None = None,
        settings: OrderSettings = OrderSettings(),
        clock: Clock = time.monotonic_ns,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.exchanges = exchanges
        self.journal = journal
        self.settings = settings
        self.clock = clock
        self.sleep = sleep

    def exchange(self, name: ExchangeName) -> PrivateExchange:
        """The connector of market ``name``."""
        try:
            return self.exchanges[name]
        except KeyError:
            raise ExchangeError(name.value, "no connector configured for this market") from None

    def intend(self, opportunity_id: str, leg: str, instrument: Instrument, request: OrderRequest) -> None:
        """Journal the intent to send ``request`` on ``instrument``; must precede ``run``. Raises if the journal refuses."""
        if self.journal is not None:
            self.journal.record_intent(opportunity_id, leg, request, instrument.exchange, instrument.contract_size)

    def intend_all(self, opportunity_id: str, orders: Sequence[IntentOrder], *, deferred: bool = False) -> None:
        """Journal the intents of ``orders`` (``IntentOrder`` each) in one transaction: all of them or none.

        ``deferred`` appends them to the journal's intent log, which takes less time before the
        orders go out; ``settle_intents`` then commits them to its database.
        """
        if self.journal is not None:
            self.journal.record_intents(opportunity_id, orders, deferred=deferred)

    def settle_intents(self) -> None:
        """Commit intents journaled ``deferred`` to the journal's database (a failure is logged)."""
        if self.journal is not None:
            self._call_journal(lambda j: j.flush_intents(), "the intents in the intent log")

    def rehearse(self, opportunity_id: str, orders: Sequence[IntentOrder]) -> None:
        """Encode the intents and orders of ``orders`` as ``intend_all`` and ``write`` would, and drop
        them: nothing is journaled, sent or spent."""
        if self.journal is not None:
            self.journal.rehearse_intents(opportunity_id, orders)
        for order in orders:
            self.exchange(order[1]).rehearse_order(order[2])

    def budget_refusal(self, exchange: ExchangeName, symbol: str, deadline_ns: int | None = None) -> str | None:
        """Why an order on ``symbol`` may not go to ``exchange`` now: its venue's order budget (held
        after a 429, say) admits one only past ``deadline_ns`` (monotonic; by default
        ``rate_limit_deadline_s`` from now), and the order would wait for it past its deadline.
        None when the budget admits it in time."""
        now = self.clock()
        if deadline_ns is None:
            deadline_ns = now + int(self.settings.rate_limit_deadline_s * 1e9)
        wait_s = self.exchange(exchange).order_wait_s(symbol)
        if now + int(wait_s * 1e9) <= deadline_ns:
            return None
        return (f"order budget admits it only in {wait_s:.3f} s, past the {self.settings.rate_limit_deadline_s} s "
                "deadline: not sent")

    def write(self, exchange: ExchangeName, request: OrderRequest) -> Awaitable[OrderState] | None:
        """Write ``request`` (its intent already journaled) to its venue now, when it can go without
        waiting (``PrivateExchange.write_order``); pass the result to ``run`` as ``written``.

        None when it cannot: nothing was sent, and ``run`` sends it (and reports any failure).
        """
        try:
            return self.exchange(exchange).write_order(request)
        except Exception as exc:  # refused before writing: ``run`` meets the same failure and reports it
            log.debug("%s order %s not written at once: %s", exchange.value, request.client_order_id, exc)
            return None

    async def run(
        self, exchange: ExchangeName, instrument: Instrument, request: OrderRequest, leg: str,
        written: Awaitable[OrderState] | None = None,
    ) -> OrderOutcome:
        """Send ``request`` (its intent already journaled) and return its final outcome; raises only on cancellation.

        ``written``: the answer of the same request already written by ``write``; awaited instead of sending it.
        Anything else raised on the way (an answer the engine could not handle) leaves the outcome
        unknown, for the caller's recovery to ask the venue again.
        """
        try:
            return await self._run(exchange, instrument, request, leg, written)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("%s order %s %s: failed while handling its outcome", exchange.value,
                          request.client_order_id, request.symbol)
            reason = f"outcome unknown: failed while handling it: {exc!r}"
            if self.journal is not None:
                self._call_journal(lambda j: j.record_unknown(exchange, request.client_order_id, reason), request)
            return OrderOutcome(
                exchange=exchange, instrument=instrument, request=request, leg=leg, resolved=False, error=reason,
                category=ErrorCategory.OUTCOME_UNKNOWN,
                taken_until_ns=self.clock() + int(self.exchange(exchange).order_acceptance_s * 1e9),
            )

    async def _run(
        self, exchange: ExchangeName, instrument: Instrument, request: OrderRequest, leg: str,
        written: Awaitable[OrderState] | None,
    ) -> OrderOutcome:
        venue = self.exchange(exchange)
        cid = request.client_order_id
        deadline_ns = self.clock() + int(self.settings.rate_limit_deadline_s * 1e9)
        waits = 0
        while True:
            if written is None:
                # Sent now, the order would sleep in the connector's rate limiter until its budget admits it.
                refusal = self.budget_refusal(exchange, request.symbol, deadline_ns)
                if refusal is not None:
                    return self._refused(exchange, instrument, request, leg, refusal, ErrorCategory.RATE_LIMITED)
            try:
                if written is None:
                    state = await venue.place_order(request)
                else:
                    sending, written = written, None
                    state = await sending
            except asyncio.CancelledError:
                raise
            except RateLimitError as exc:
                # A 429 is a refusal before matching: the same order (same client id) may be sent again.
                wait_s = exc.retry_after_s if exc.retry_after_s is not None else self.settings.backoff.delay(waits)
                if self.clock() + int(wait_s * 1e9) > deadline_ns:
                    reason = f"rate limited past the {self.settings.rate_limit_deadline_s} s deadline: {exc}"
                    return self._refused(exchange, instrument, request, leg, reason, ErrorCategory.RATE_LIMITED)
                log.info("%s order %s rate limited, retrying in %.3f s", exchange.value, cid, wait_s)
                waits += 1
                await self.sleep(wait_s)
                continue
            except (OrderRejectedError, OrderRequestError) as exc:
                category = getattr(exc, "category", None) or ErrorCategory.ORDER_REJECTED
                return self._refused(exchange, instrument, request, leg, str(exc), category)
            except ExchangeError as exc:
                if exc.category in REFUSED:
                    return self._refused(exchange, instrument, request, leg, str(exc), exc.category)
                return await self._unknown(exchange, instrument, request, leg, exc)
            except Exception as exc:  # transport failures after sending: the order may exist
                return await self._unknown(exchange, instrument, request, leg, exc)
            answered_ns = self.clock()
            if not state.is_final:
                self._journal("record_ack", exchange, cid, state)
                # An acked IOC has already matched (MEXC acks it as NEW without fills): ask at once.
                immediate = request.time_in_force is TimeInForce.IOC
                return await self._resolve(exchange, instrument, request, leg, state, answered_ns, immediate=immediate)
            return self._finished(exchange, instrument, request, leg, state, answered_ns, "ack")

    async def resolve(self, outcome: OrderOutcome) -> OrderOutcome:
        """Ask the venue again about an unresolved outcome; returns it unchanged when already resolved."""
        if outcome.resolved:
            return outcome
        return await self._resolve(
            outcome.exchange, outcome.instrument, outcome.request, outcome.leg, outcome.state, outcome.answered_ns,
            taken_until_ns=outcome.taken_until_ns, queries_held_until_ns=outcome.queries_held_until_ns,
        )

    def _refused(
        self, exchange: ExchangeName, instrument: Instrument, request: OrderRequest, leg: str, reason: str,
        category: str,
    ) -> OrderOutcome:
        log.warning("%s order %s %s refused: %s", exchange.value, request.client_order_id, request.symbol, reason)
        self._journal_reject(exchange, request.client_order_id, reason)
        return OrderOutcome(
            exchange=exchange, instrument=instrument, request=request, leg=leg, error=reason, category=category,
            answered_ns=self.clock(),
        )

    async def _unknown(
        self, exchange: ExchangeName, instrument: Instrument, request: OrderRequest, leg: str, exc: BaseException
    ) -> OrderOutcome:
        reason = f"outcome unknown: {exc}"
        log.warning("%s order %s %s: %s; querying by client id", exchange.value, request.client_order_id,
                    request.symbol, reason)
        if self.journal is not None:
            self._call_journal(lambda j: j.record_unknown(exchange, request.client_order_id, reason), request)
        # A request delayed on its way can still be taken within the venue's window for it.
        taken_until_ns = self.clock() + int(self.exchange(exchange).order_acceptance_s * 1e9)
        return await self._resolve(exchange, instrument, request, leg, None, 0, taken_until_ns=taken_until_ns)

    async def _resolve(
        self, exchange: ExchangeName, instrument: Instrument, request: OrderRequest, leg: str,
        last: OrderState | None, answered_ns: int, *, immediate: bool = False, taken_until_ns: int = 0,
        queries_held_until_ns: int = 0,
    ) -> OrderOutcome:
        """Query by client id (by the venue's order id once known) until the order is final; cancel a
        remainder that outlives the window.

        ``immediate``: the first query goes out without the backoff wait (the venue answered, so
        the order exists; only an unknown outcome needs time for a lost request to land).
        ``taken_until_ns``: until when the venue may still take the request (``order_acceptance_s``);
        "not found" is final only from a query after it, so one more query is made then.
        ``queries_held_until_ns``: until when a 429 holds the venue's queries. 429 waits past
        ``query_hold_max_s`` in all, one wait or several, are not waited out (up to an hour each,
        with the order's outcome, the caller and a shutdown held meanwhile): the outcome is left
        unknown, for recovery to flag and a restart's reconciliation to ask again.
        """
        venue = self.exchange(exchange)
        cid = request.client_order_id
        not_found = False
        error = "no answer"
        attempts, asked = self.settings.query_attempts, 0
        told = False  # whether a query answered with the order's state (else ``last`` is the ack's)
        # A venue finds an ended order by its client id only for a while (Gate.io futures 60 s):
        # while the request may still land, ask at least twice a window, or one that landed and
        # ended just after a query could leave the window before the next and pass as never placed.
        lookup_s = venue.client_id_lookup_s
        tail_step_ns = None if lookup_s is None else int(lookup_s * 1e9) // 2
        attempt = 0
        held = False
        held_waited_s = 0.0  # 429 waits slept out here: at most ``query_hold_max_s`` in all, however many
        while True:
            held_s = (queries_held_until_ns - self.clock()) / 1e9
            if held_s > 0 and held_waited_s + held_s > self.settings.query_hold_max_s:
                # "Not found" holds only when it was the last answer, and none is asked for now.
                not_found, held = False, True
                error = f"{error}; the venue's rate limit holds queries for {held_s:.0f} s more"
                break
            if attempt >= attempts:
                wait_ns = taken_until_ns - self.clock()
                if not not_found or wait_ns <= 0:
                    break
                if attempt >= attempts + _MAX_TAIL_QUERIES:
                    # Still not found while the venue may take it: unknown, not "never placed".
                    not_found = False
                    break
                if tail_step_ns is not None:
                    wait_ns = min(wait_ns, tail_step_ns)
                log.warning(
                    "%s order %s %s not found yet; the venue may still take its request: asking again in %.1f s",
                    exchange.value, cid, request.symbol, wait_ns / 1e9,
                )
                await self.sleep(wait_ns / 1e9)
            elif attempt or not immediate:
                await self.sleep(self.settings.backoff.delay(attempt - immediate))
            attempt += 1
            asked += 1
            try:
                if last is not None and last.order_id:
                    # The venue's id once it gave one: Gate.io finds a finished order by its client id
                    # only by searching the pair's order history.
                    state = await venue.query_order(request.symbol, order_id=last.order_id)
                else:
                    state = await venue.query_order(request.symbol, client_order_id=cid)
            except asyncio.CancelledError:
                raise
            except RateLimitError as exc:
                # Says nothing about the order: "not found" holds only when it was the last answer.
                not_found = False
                error = str(exc)
                wait_s = exc.retry_after_s or 0.0
                queries_held_until_ns = max(queries_held_until_ns, self.clock() + int(wait_s * 1e9))
                if held_waited_s + wait_s <= self.settings.query_hold_max_s:
                    held_waited_s += wait_s
                    await self.sleep(wait_s)
                continue
            except ExchangeError as exc:
                not_found = exc.category == ErrorCategory.UNKNOWN_ORDER
                error = str(exc)
                continue
            except Exception as exc:
                not_found = False
                error = f"{type(exc).__name__}: {exc}"
                continue
            not_found = False
            answered_ns = answered_ns or self.clock()
            last, told = state, True
            if state.is_final:
                return self._finished(exchange, instrument, request, leg, state, answered_ns, "update")
        # Held: a cancel could wait out the same hold (MEXC's cancels spend the queries' budget).
        if last is not None and not held:
            # An IOC should never rest; if one does, cancel so it cannot fill behind our back.
            try:
                state = await venue.cancel_order(request.symbol, client_order_id=cid)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not_found:  # it exists (the venue answered for it): its history moved on, or lags behind
                    when = "last seen" if told else "acknowledged"
                    seen = f"{last.status.value} when {when}, then no longer found by the venue ({error})"
                elif told:
                    seen = f"still {last.status.value} after {asked} queries"
                else:
                    seen = f"{last.status.value} when acknowledged, then {asked} queries unanswered ({error})"
                error = f"{seen}; cancel failed: {exc}"
            else:
                if state.is_final:
                    return self._finished(exchange, instrument, request, leg, state, answered_ns, "cancel")
                self._journal("record_cancel", exchange, cid, state)
                error = f"still {state.status.value} after cancel"
        elif not_found:
            reason = f"not found at the venue after {asked} queries: {error}"
            self._journal_reject(exchange, cid, reason)
            return OrderOutcome(
                exchange=exchange, instrument=instrument, request=request, leg=leg, error=reason,
                category=ErrorCategory.UNKNOWN_ORDER, answered_ns=answered_ns or self.clock(),
            )
        log.error(
            "%s order %s %s: outcome still unknown after %d queries (%s); it may exist and fill",
            exchange.value, cid, request.symbol, asked, error,
        )
        return OrderOutcome(
            exchange=exchange, instrument=instrument, request=request, leg=leg, state=last, resolved=False,
            error=f"outcome unknown: {error}", category=ErrorCategory.OUTCOME_UNKNOWN, answered_ns=answered_ns,
            taken_until_ns=taken_until_ns, queries_held_until_ns=queries_held_until_ns,
        )

    def _finished(
        self, exchange: ExchangeName, instrument: Instrument, request: OrderRequest, leg: str, state: OrderState,
        answered_ns: int, answer: Literal["ack", "update", "cancel"],
    ) -> OrderOutcome:
        """The outcome of a final ``state``; journals that answer (of kind ``answer``) with its fill in one commit."""
        outcome = OrderOutcome(
            exchange=exchange, instrument=instrument, request=request, leg=leg, state=state, answered_ns=answered_ns,
        )
        if self.journal is None:
            return outcome
        cid = request.client_order_id
        fills: tuple[Fill, ...] = ()
        if state.filled_quantity:
            # Connectors report executions as cumulative order states, so the order's whole
            # execution is journaled as one fill at its average price.
            fee, fee_asset = outcome.fee
            fills = (Fill(
                symbol=request.symbol,
                order_id=state.order_id,
                client_order_id=cid,
                trade_id=f"order:{cid}",
                side=request.side,
                price=outcome.average_price,
                quantity=state.filled_quantity,
                fee=fee,
                fee_asset=fee_asset,
                is_maker=False,
                timestamp_ms=state.updated_at_ms,
            ),)
        self._call_journal(lambda j: j.record_result(exchange, cid, state, fills, kind=answer), state)
        return outcome

    def _journal(self, method: str, exchange: ExchangeName, cid: str, state: OrderState) -> None:
        journal = self.journal
        if journal is not None:
            record: Callable[[ExchangeName, str, OrderState], None] = getattr(journal, method)
            self._call_journal(lambda _: record(exchange, cid, state), state)

    def _journal_reject(self, exchange: ExchangeName, cid: str, reason: str) -> None:
        if self.journal is not None:
            self._call_journal(lambda j: j.record_reject(exchange, cid, reason), cid)

    def _call_journal(self, write: Callable[[OrderJournal], object], what: object) -> None:
        """Journal writes after sending must not stop the order flow: a failure is logged loudly instead."""
        journal = self.journal
        if journal is None:
            return
        try:
            write(journal)
        except Exception:
            log.exception("journal write failed for %r; the venue state is reconciled on restart", what)


def catalog_instrument(
    instruments: Mapping[ExchangeName, InstrumentCatalog], exchange: ExchangeName, symbol: str
) -> Instrument:
    """The instrument of ``symbol``'s pair on market ``exchange``."""
    catalog = instruments.get(exchange)
    if catalog is None:
        raise ExchangeError(exchange.value, "no instrument catalog for this market")
    return catalog.get(market_symbol(symbol, exchange))


__all__ = [
    "Backoff",
    "OrderJournal",
    "OrderOutcome",
    "OrderRunner",
    "OrderSettings",
    "catalog_instrument",
    "client_order_id",
    "lots_of_base",
    "market_symbol",
    "round_price",
]
