"""Hedge or unwind what two legs left unmatched; resolve journaled orders against the venues on restart.

A residual is the base quantity one leg filled beyond the other. ``RecoveryManager``
closes it with IOC orders, either completing the missing leg on the venue that under-filled
(hedge) or reversing the excess on the venue that over-filled (unwind). Every order is
priced so that closing the residual loses at most ``max_loss_quote`` against the over-filled
leg's average price, fees included. When that bound or the attempts run out, the residual
is flagged for manual approval, logged as an error and journaled; it is never left silent.
An order the venue refuses for its rate limit, or one its venue's order budget would hold past
the order deadline (not sent), is not an attempt: recovery tries the next venue, and sends to one
that refused so only after a pause, for up to ``RATE_LIMITED_FOR_S`` in all.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from enum import Enum

import msgspec

from .errors import ExchangeError, RecoveryError
from .exchanges.base import PrivateExchange
from .exchanges.errors import ErrorCategory
from .exchanges.models import OrderState
from .instruments import Instrument
from .journal import IntentRecord, OrderResolver
from .orders import (
    ZERO,
    Backoff,
    Clock,
    OrderJournal,
    OrderOutcome,
    OrderRunner,
    OrderSettings,
    Sleep,
    client_order_id,
    ioc_order,
    lots_of_base,
    round_price,
)
from .types import ExchangeName, OrderSide

log = logging.getLogger(__name__)
# A recovery order refused for the venue's rate limit (past the order runner's own wait), held
# back while its order budget admits it only past that wait, or never sent (no connection took it;
# its deadline passed while it waited for its budget or a login) is not an attempt: nothing reached
# the venue. The residual is open meanwhile, so recovery tries the next venue at once, pauses this
# long before sending again to a venue that refused so since the last pause, and flags the residual
# once this long has passed since the first such refusal with no order taken.
RATE_LIMIT_PAUSE_S = 1.0
RATE_LIMITED_FOR_S = 30.0
# What such an unfilled outcome's category says, in the reason its residual is flagged with.
_NOT_TAKEN: dict[str, str] = {ErrorCategory.RATE_LIMITED.value: "rate limited", ErrorCategory.NOT_SENT.value: "not sent"}


class RecoveryAction(str, Enum):
    """How a residual is closed."""

    HEDGE = "hedge"  # complete the missing leg on the venue that under-filled
    UNWIND = "unwind"  # reverse the excess on the venue that over-filled


class RecoveryStatus(str, Enum):
    """Where an active recovery stands."""

    RECOVERING = "recovering"
    AWAITING_APPROVAL = "awaiting_approval"  # flagged: an operator must decide


class Residual(msgspec.Struct, frozen=True, kw_only=True):
    """The two legs of one opportunity whose fills differ, or whose outcome is not known."""

    opportunity_id: str
    buy: OrderOutcome
    sell: OrderOutcome

    @property
    def net_base(self) -> Decimal:
        """Bought minus sold, base units: positive means long exposure."""
        return self.buy.filled_base - self.sell.filled_base


class RecoveryOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What recovering a residual achieved.

    ``cost`` is the quote-currency loss of closing the residual against the over-filled leg's
    average price, recovery fees included (negative when closing it gained).
    """

    opportunity_id: str
    recovered: bool
    requires_manual_approval: bool
    residual_quantity: Decimal  # base units still open, signed like ``Residual.net_base``
    cost: Decimal
    buy: OrderOutcome  # the legs as finally resolved
    sell: OrderOutcome
    orders: tuple[OrderOutcome, ...] = ()  # recovery orders, in the order sent
    reason: str = ""

    @property
    def hedged_base(self) -> Decimal:
        """Base quantity closed by hedge orders."""
        return sum((o.filled_base for o in self.orders if o.leg.startswith(RecoveryAction.HEDGE.value)), ZERO)

    @property
    def unwound_base(self) -> Decimal:
        """Base quantity closed by unwind orders."""
        return sum((o.filled_base for o in self.orders if o.leg.startswith(RecoveryAction.UNWIND.value)), ZERO)


class ActiveRecovery(msgspec.Struct, kw_only=True):
    """A recovery in progress, or flagged and waiting for an operator."""

    opportunity_id: str
    symbol: str
    status: RecoveryStatus
    residual_quantity: Decimal
    attempts: int
    cost: Decimal
    started_ns: int
    reason: str = ""


class RecoveryStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters over every recovery run so far."""

    recoveries: int
    attempts: int  # recovery orders sent
    recovered: int
    flagged: int
    total_recovery_cost: Decimal
    active: int
    awaiting_approval: int


class RecoveryManager:
    """Closes residuals within a loss bound, retrying with backoff; flags what it cannot close."""

    def __init__(
        self,
        exchanges: Mapping[ExchangeName, PrivateExchange],
        *,
        max_loss_quote: Decimal,
        max_slippage: Decimal = Decimal("0.02"),
        max_attempts: int = 4,
        backoff: Backoff = Backoff(),
        clock: Clock = time.monotonic_ns,
        sleep: Sleep = asyncio.sleep,
        journal: OrderJournal | None = None,
        order_settings: OrderSettings = OrderSettings(),
        automatic: bool = True,
    ) -> None:
        if not max_loss_quote.is_finite() or max_loss_quote < 0:
            raise ValueError(f"max_loss_quote={max_loss_quote}: expected a finite amount >= 0")
        if not max_slippage.is_finite() or not 0 <= max_slippage < 1:
            raise ValueError(f"max_slippage={max_slippage}: expected a fraction in [0, 1)")
        if max_attempts < 1:
            raise ValueError(f"max_attempts={max_attempts}: expected >= 1")
        self.max_loss_quote = max_loss_quote
        self.max_slippage = max_slippage
        self.max_attempts = max_attempts
        # False (``engine.enable_recovery_mode = false``): a residual is flagged for an operator at
        # once, with its legs resolved, and no recovery order is sent.
        self.automatic = automatic
        self.backoff = backoff
        self.clock = clock
        self.sleep = sleep
        self.journal = journal
        self.orders = OrderRunner(exchanges, journal=journal, settings=order_settings, clock=clock, sleep=sleep)
        self._active: dict[str, ActiveRecovery] = {}
        self._recoveries = self._attempts = self._recovered = self._flagged = 0
        self._total_cost = ZERO

    async def recover(self, residual: Residual) -> RecoveryOutcome:
        """Close ``residual``; never raises on venue failures (they end in a flagged outcome)."""
        opp = residual.opportunity_id
        self._recoveries += 1
        active = self._active[opp] = ActiveRecovery(
            opportunity_id=opp,
            symbol=residual.buy.request.symbol,
            status=RecoveryStatus.RECOVERING,
            residual_quantity=residual.net_base,
            attempts=0,
            cost=ZERO,
            started_ns=self.clock(),
        )
        progress = _Progress(residual)
        try:
            return await self._recover(residual, active, progress)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("recovery %s failed", opp)
            # With what it had learnt and sent: the residual flagged is the one left open.
            return self._flag(
                active, progress.buy, progress.sell, progress.orders, active.cost, f"recovery failed: {exc}"
            )

    async def _recover(self, residual: Residual, active: ActiveRecovery, progress: _Progress) -> RecoveryOutcome:
        opp = residual.opportunity_id
        buy = progress.buy = await self.orders.resolve(residual.buy)
        sell = progress.sell = await self.orders.resolve(residual.sell)
        unresolved = [o for o in (buy, sell) if not o.resolved]
        if unresolved:
            names = ", ".join(f"{o.leg} {o.exchange.value} {o.request.client_order_id}" for o in unresolved)
            return self._flag(active, buy, sell, (), ZERO, f"outcome of {names} still unknown after querying")
        net = buy.filled_base - sell.filled_base
        active.residual_quantity = net
        self._step(opp, "start", {"net_base": net, "buy_filled": buy.filled, "sell_filled": sell.filled})
        over, under = (buy, sell) if net > 0 else (sell, buy)
        tolerance = min(buy.instrument.base_lot, sell.instrument.base_lot)
        if not self.automatic and abs(net) >= tolerance:
            return self._flag(active, buy, sell, (), ZERO, "automatic recovery is off (engine.enable_recovery_mode)")
        # A spot buy whose fee was taken from the base it bought left only the rest on the account.
        # An unwind sells back the whole fill, as a completed trade would have sold, the fee coming
        # out of other inventory; refused for the balance, it sells back only what the buy left.
        base_fee = over.base_fee if over is buy else ZERO
        fee_kept = ZERO
        reference = over.average_price
        venues: list[tuple[RecoveryAction, ExchangeName, Instrument]] = []
        refusals: list[str] = []  # why each venue left out of ``venues`` was, for a flag's reason
        if under.refused_permanently:
            refusals.append(f"{under.exchange.value} refused the {under.request.side.value} leg: {under.error}")
        else:
            venues.append((RecoveryAction.HEDGE, under.exchange, under.instrument))
        venues.append((RecoveryAction.UNWIND, over.exchange, over.instrument))
        orders = progress.orders
        # The fee rate each venue charged here: a tier above the catalog's (not read again yet) would
        # otherwise let the orders' limits spend more than the loss bound.
        charged: dict[ExchangeName, Decimal] = {}
        for outcome in (buy, sell):
            _note_charged(charged, outcome)
        cost = ZERO
        # Orders that were attempts (not refused for a rate limit); orders sent, or passed up unsent
        # for their venue's order budget.
        attempt = tried = 0
        limits = _RateLimits()
        unwound = False
        while abs(net) >= tolerance:
            if fee_kept and abs(net) - fee_kept < tolerance and (
                unwound or all(action is RecoveryAction.UNWIND for action, _, _ in venues)
            ):
                break  # the rest is the buy's fee, never on the account
            if attempt >= self.max_attempts:
                return self._flag(active, buy, sell, orders, cost, f"{attempt} recovery attempts did not close it")
            budget = self.max_loss_quote - cost
            if budget < 0:
                return self._flag(active, buy, sell, orders, cost, f"loss bound {self.max_loss_quote} reached")
            side = OrderSide.SELL if net > 0 else OrderSide.BUY
            choice = self._pick(venues, tried, side, abs(net), reference, budget, fee_kept, charged, tolerance)
            if choice is None:
                where = "every venue that could close it"
                if refusals:
                    where = f"{', '.join(v[1].value for v in venues)}, the venue left ({'; '.join(refusals)})"
                return self._flag(
                    active, buy, sell, orders, cost, f"residual {abs(net)} is below the minimum order on {where}"
                )
            action, exchange, instrument, quantity, price = choice
            if exchange in limits.venues:  # back to a venue that refused for its rate limit: wait a little
                await self.sleep(RATE_LIMIT_PAUSE_S)
                limits.paused()
            tried += 1
            leg = f"{action.value}-{tried}"
            # An order whose budget is held (a 429's wait) would sleep in the connector until it is
            # admitted, the residual open meanwhile: it is refused for the rate limit, unsent and unjournaled.
            refusal = self.orders.budget_refusal(exchange, instrument.symbol)
            if refusal is not None:
                log.warning("recovery %s: %s on %s: %s", opp, leg, exchange.value, refusal)
                waited_s = limits.refused(exchange, self.clock())
                if waited_s is not None:
                    return self._flag(active, buy, sell, orders, cost, f"rate limited for {waited_s:.0f} s")
                continue
            cid = client_order_id(opp, f"{action.value[0]}{tried}")
            # Completing a reduce-only leg reduces the same position; an unwind reverses a leg, so it
            # may grow one (and whether it would is not known here).
            reduce_only = action is RecoveryAction.HEDGE and under.request.reduce_only
            request = ioc_order(instrument, side, quantity, price, cid, reduce_only=reduce_only)
            if attempt:
                await self.sleep(self.backoff.delay(attempt - 1))
            try:
                self.orders.intend(opp, leg, instrument, request)
            except Exception as exc:  # not sent: the journal must hold every order before it exists
                return self._flag(active, buy, sell, orders, cost, f"journal refused recovery order: {exc}")
            self._step(opp, action.value, {
                "exchange": exchange.value, "side": side.value, "quantity": quantity, "price": price,
                "client_order_id": request.client_order_id, "budget": budget,
            })
            log.info("recovery %s: %s %s %s %s @ %s on %s (residual %s base, budget %s)", opp, action.value,
                     side.value, quantity, instrument.symbol, price, exchange.value, net, budget)
            outcome = await self.orders.run(exchange, instrument, request, leg)
            orders.append(outcome)
            _note_charged(charged, outcome)
            self._attempts += 1
            not_taken = None if outcome.filled or outcome.category is None else _NOT_TAKEN.get(outcome.category)
            if not_taken is not None:
                waited_s = limits.refused(exchange, self.clock())
                if waited_s is not None:
                    return self._flag(active, buy, sell, orders, cost, f"{not_taken} for {waited_s:.0f} s")
                continue
            limits.taken()
            attempt += 1
            active.attempts = attempt
            if not outcome.resolved:
                return self._flag(active, buy, sell, orders, cost, f"recovery order {leg} outcome unknown")
            filled = outcome.filled_base
            if filled:
                loss = outcome.notional - reference * filled  # paid above the reference on a buy
                cost += (-loss if side is OrderSide.SELL else loss) + outcome.fee_quote
                net += -filled if side is OrderSide.SELL else filled
                active.residual_quantity, active.cost = net, cost
                unwound = unwound or action is RecoveryAction.UNWIND
            if (
                action is RecoveryAction.UNWIND and base_fee and not fee_kept
                and outcome.category == ErrorCategory.INSUFFICIENT_BALANCE
            ):
                fee_kept = base_fee  # no other inventory there: sell back what the buy left
                continue
            if outcome.refused_permanently:
                venues = [v for v in venues if v[1] is not exchange]
                refusals.append(f"{exchange.value} refused {leg}: {outcome.error}")
                if not venues:
                    return self._flag(active, buy, sell, orders, cost, f"every venue refused: {outcome.error}")
        if cost > self.max_loss_quote:
            log.error("recovery %s: closed at a cost of %s, past its loss bound %s (fills priced worse than their "
                      "limits allowed for)", opp, cost, self.max_loss_quote)
        self._recovered += 1
        self._total_cost += cost
        del self._active[opp]
        self._step(opp, "recovered", {"residual": net, "cost": cost, "orders": len(orders)})
        log.info("recovery %s: closed with %d orders, cost %s, residual %s", opp, len(orders), cost, net)
        return RecoveryOutcome(
            opportunity_id=opp, recovered=True, requires_manual_approval=False, residual_quantity=net, cost=cost,
            buy=buy, sell=sell, orders=tuple(orders),
        )

    def get_recovery_statistics(self) -> RecoveryStatistics:
        """Counters over every recovery so far; ``total_recovery_cost`` includes flagged ones (cost so far)."""
        waiting = sum(1 for a in self._active.values() if a.status is RecoveryStatus.AWAITING_APPROVAL)
        return RecoveryStatistics(
            recoveries=self._recoveries,
            attempts=self._attempts,
            recovered=self._recovered,
            flagged=self._flagged,
            total_recovery_cost=self._total_cost,
            active=len(self._active) - waiting,
            awaiting_approval=waiting,
        )

    def get_active_recoveries(self) -> list[ActiveRecovery]:
        """Recoveries in progress and flagged ones awaiting an operator, oldest first."""
        return [msgspec.structs.replace(a) for a in self._active.values()]

    def restore_flagged(self, opportunity_id: str, symbol: str, residual: Decimal, reason: str) -> None:
        """Hold an opportunity an earlier run (or its restart) flagged for manual approval and no
        operator has acknowledged: it awaits approval here too (already journaled)."""
        if opportunity_id not in self._active:
            self._active[opportunity_id] = ActiveRecovery(
                opportunity_id=opportunity_id, symbol=symbol, status=RecoveryStatus.AWAITING_APPROVAL,
                residual_quantity=residual, attempts=0, cost=ZERO, started_ns=self.clock(), reason=reason,
            )

    def acknowledge(self, opportunity_id: str) -> ActiveRecovery:
        """Remove a flagged recovery once an operator has dealt with it; raises RecoveryError if none is flagged."""
        active = self._active.get(opportunity_id)
        if active is None or active.status is not RecoveryStatus.AWAITING_APPROVAL:
            raise RecoveryError(f"recovery {opportunity_id!r}: nothing awaits approval")
        del self._active[opportunity_id]
        self._step(opportunity_id, "acknowledged", {"residual": active.residual_quantity})
        return active

    def resolver(
        self, client_id_lookup_s: Mapping[ExchangeName, int] | None = None,
        earlier_windows_ms: Mapping[ExchangeName, int] | None = None,
    ) -> OrderResolver:
        """The start-up resolver for ``Journal.reconcile`` (``order_resolver`` over this manager's markets;
        an order rate limited at its first send went again for up to ``rate_limit_deadline_s``)."""
        return order_resolver(
            self.orders.exchanges, client_id_lookup_s=client_id_lookup_s,
            resent_for_s=self.orders.settings.rate_limit_deadline_s, earlier_windows_ms=earlier_windows_ms,
        )

    def order_windows_ms(self) -> dict[ExchangeName, int]:
        """Per market, how long after its intent an order sent now may still be taken by its venue,
        in ms: what a restart waits for one not found yet (``Journal.record_order_windows``)."""
        resent_for_s = self.orders.settings.rate_limit_deadline_s
        return {
            market: math.ceil(_order_window_s(venue, resent_for_s) * 1000)
            for market, venue in self.orders.exchanges.items()
        }

    def _pick(
        self, venues: list[tuple[RecoveryAction, ExchangeName, Instrument]], attempt: int, side: OrderSide,
        base: Decimal, reference: Decimal, budget: Decimal, fee_kept: Decimal,
        charged: Mapping[ExchangeName, Decimal], tolerance: Decimal,
    ) -> tuple[RecoveryAction, ExchangeName, Instrument, Decimal, Decimal] | None:
        """This attempt's venue (alternating over the usable ones) with the size and limit price to send
        there; an unwind closes ``base`` less ``fee_kept`` (what the over-filled buy never received).
        ``charged``: the fee rate each venue charged this execution's fills, where above the listed one.

        A venue whose lot would leave a remainder no venue can close (below every minimum order,
        for an operator to close) goes after those that leave none: a finer lot elsewhere could
        have closed the residual whole."""
        closing: list[tuple[RecoveryAction, ExchangeName, Instrument, Decimal, Decimal]] = []
        dusty: list[tuple[RecoveryAction, ExchangeName, Instrument, Decimal, Decimal]] = []
        for action, exchange, instrument in venues:
            wanted = base - fee_kept if action is RecoveryAction.UNWIND else base
            lots = lots_of_base(instrument, wanted)
            if lots <= 0:
                continue
            size = instrument.lots_to_size(lots)
            traded = size * instrument.contract_size
            fee = max(instrument.taker_fee, charged.get(exchange, ZERO))
            price = self._bounded_price(instrument, side, reference, traded, budget, fee)
            if size >= instrument.min_size and traded * price >= instrument.min_notional:
                left = wanted - traded
                if left < tolerance or any(
                    _closes(other, left - fee_kept if then is RecoveryAction.UNWIND else left, reference)
                    for then, _, other in venues
                ):
                    closing.append((action, exchange, instrument, size, price))
                else:
                    dusty.append((action, exchange, instrument, size, price))
        usable = closing + dusty
        return usable[attempt % len(usable)] if usable else None

    def _bounded_price(
        self, instrument: Instrument, side: OrderSide, reference: Decimal, base: Decimal, budget: Decimal,
        fee: Decimal,
    ) -> Decimal:
        """The worst limit at which closing ``base`` against ``reference`` loses at most ``budget`` (the fee
        rate ``fee`` included) and strays at most ``max_slippage`` from ``reference``."""
        if side is OrderSide.SELL:
            limit = max((reference * base - budget) / (base * (1 - fee)), reference * (1 - self.max_slippage))
        else:
            limit = min((reference * base + budget) / (base * (1 + fee)), reference * (1 + self.max_slippage))
        # Rounded inward so both bounds hold on the tick grid.
        return round_price(instrument, limit, side, marketable=False)

    def _flag(
        self, active: ActiveRecovery, buy: OrderOutcome, sell: OrderOutcome, orders: list[OrderOutcome] | tuple[()],
        cost: Decimal, reason: str,
    ) -> RecoveryOutcome:
        opp = active.opportunity_id
        net = buy.filled_base - sell.filled_base + sum(
            (o.filled_base if o.request.side is OrderSide.BUY else -o.filled_base for o in orders), ZERO
        )
        active.status = RecoveryStatus.AWAITING_APPROVAL
        active.residual_quantity, active.cost, active.reason = net, cost, reason
        self._flagged += 1
        self._total_cost += cost
        log.error(
            "recovery %s %s: REQUIRES MANUAL APPROVAL: %s; open residual %s base (buy %s on %s, sell %s on %s), "
            "cost so far %s",
            opp, active.symbol, reason, net, buy.filled, buy.exchange.value, sell.filled, sell.exchange.value, cost,
        )
        self._step(opp, "manual_approval", {"reason": reason, "residual": net, "cost": cost})
        return RecoveryOutcome(
            opportunity_id=opp, recovered=False, requires_manual_approval=True, residual_quantity=net, cost=cost,
            buy=buy, sell=sell, orders=tuple(orders), reason=reason,
        )

    def _step(self, opportunity_id: str, step: str, detail: Mapping[str, object]) -> None:
        journal = self.journal
        if journal is None:
            return
        try:
            journal.record_recovery_step(opportunity_id, step, detail)
        except Exception:
            log.exception("recovery %s: journaling step %r failed", opportunity_id, step)


class _RateLimits:
    """A recovery's refusals for rate limits: the venues that refused since the last pause, the first
    refusal since an order was last taken, and the pauses made since."""

    __slots__ = ("venues", "since_ns", "pauses")

    def __init__(self) -> None:
        self.venues: set[ExchangeName] = set()
        self.since_ns: int | None = None
        self.pauses = 0

    def refused(self, exchange: ExchangeName, now_ns: int) -> float | None:
        """Note a refusal by ``exchange`` at ``now_ns``; how long recovery has been refused so, in s, once
        that is ``RATE_LIMITED_FOR_S`` or more (the residual is flagged), else None."""
        since_ns = self.since_ns = now_ns if self.since_ns is None else self.since_ns
        # On the clock, or by the pauses made where the clock does not follow the sleeps.
        waited_s = max((now_ns - since_ns) / 1e9, self.pauses * RATE_LIMIT_PAUSE_S)
        if waited_s >= RATE_LIMITED_FOR_S:
            return waited_s
        self.venues.add(exchange)
        return None

    def paused(self) -> None:
        """A pause was made before sending to a venue that refused."""
        self.venues.clear()
        self.pauses += 1

    def taken(self) -> None:
        """A venue took an order: the refusals so far no longer count."""
        self.venues.clear()
        self.since_ns, self.pauses = None, 0


class _Progress:
    """What a recovery has learnt (the legs as resolved) and sent so far, for the flag raised by a
    failure nobody foresaw."""

    __slots__ = ("buy", "sell", "orders")

    def __init__(self, residual: Residual) -> None:
        self.buy, self.sell = residual.buy, residual.sell
        self.orders: list[OrderOutcome] = []


def order_resolver(
    exchanges: Mapping[ExchangeName, PrivateExchange], *, client_id_lookup_s: Mapping[ExchangeName, int] | None = None,
    wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000, sleep: Sleep = asyncio.sleep,
    resent_for_s: float = 0.0, earlier_windows_ms: Mapping[ExchangeName, int] | None = None,
) -> OrderResolver:
    """An ``OrderResolver`` over ``exchanges``: query by the venue's order id where the journal has
    it, else by client id; None only when the venue has no such order.

    An order the venue acknowledged (the journal has its order id) existed: when the venue no longer
    finds it (its order history moved on), it may have filled (ExchangeError, category OUTCOME_UNKNOWN).

    ``client_id_lookup_s``: per market, how long after an order ends its venue still finds it by
    client id. An intent older than that, known by client id only, is not taken as absent when
    the venue does not find it: it may have filled (ExchangeError, category OUTCOME_UNKNOWN).
    An intent younger than the venue's ``order_acceptance_s`` (a request held up on its way may
    still be taken) is asked for once more when that has passed, counted from the intent's write
    plus ``resent_for_s`` (how long after its intent an order may have been sent again, each send
    with a deadline of its own), or for the longest window an earlier run journaled for the market
    (``earlier_windows_ms``: its orders were sent by its settings and clock, not this run's). A
    wall clock stepped back since is waited out for no longer.
    """
    windows = client_id_lookup_s or {}
    earlier = earlier_windows_ms or {}

    async def resolve(intent: IntentRecord) -> OrderState | None:
        exchange, symbol, cid = intent.exchange, intent.request.symbol, intent.client_order_id
        venue = exchanges.get(exchange)
        if venue is None:
            raise ExchangeError(exchange.value, f"no connector to resolve order {cid!r} on {symbol}")
        if intent.order_id is not None:
            state = await _query(venue, symbol, order_id=intent.order_id)
            if state is None:
                raise ExchangeError(
                    exchange.value,
                    f"order {cid!r} on {symbol} was acknowledged as order {intent.order_id}, which the venue no "
                    "longer finds (its order history moved on): it may have filled",
                    category=ErrorCategory.OUTCOME_UNKNOWN,
                )
            return state
        state = await _query(venue, symbol, client_order_id=cid, sent_at_ms=intent.created_at_ms)
        if state is not None:
            return state
        acceptance_s = max(_order_window_s(venue, resent_for_s), earlier.get(exchange, 0) / 1000)
        wait_s = min((intent.created_at_ms - wall_ms()) / 1000 + acceptance_s, acceptance_s)
        if wait_s > 0:
            log.warning(
                "journal reconcile: %s order %s on %s not found yet; the venue may still take its request for "
                "%.1f s: asking then", exchange.value, cid, symbol, wait_s,
            )
            await sleep(wait_s)
            state = await _query(venue, symbol, client_order_id=cid, sent_at_ms=intent.created_at_ms)
            if state is not None:
                return state
        window_s = windows.get(exchange)
        age_s = (wall_ms() - intent.created_at_ms) / 1000
        if window_s is not None and age_s > window_s:
            raise ExchangeError(
                exchange.value,
                f"order {cid!r} on {symbol} was not found by its client id {age_s:.0f} s after it was sent, past "
                f"the {window_s} s the venue finds a finished order by it: it may have filled",
                category=ErrorCategory.OUTCOME_UNKNOWN,
            )
        return None

    return resolve


async def _query(
    venue: PrivateExchange, symbol: str, *, order_id: str | None = None, client_order_id: str | None = None,
    sent_at_ms: int | None = None,
) -> OrderState | None:
    """The venue's state of one order; None when it answers that it has no such order."""
    try:
        return await venue.query_order(
            symbol, order_id=order_id, client_order_id=client_order_id, sent_at_ms=sent_at_ms
        )
    except ExchangeError as exc:
        if exc.category != ErrorCategory.UNKNOWN_ORDER:
            raise
    return None


def _closes(instrument: Instrument, base: Decimal, reference: Decimal) -> bool:
    """Whether an order on ``instrument`` can take all of ``base`` (whole lots, its minimum size and
    notional at ``reference``)."""
    lots = lots_of_base(instrument, base)
    return (
        lots > 0 and instrument.base_quantity_of(lots) == base and instrument.lots_to_size(lots) >= instrument.min_size
        and base * reference >= instrument.min_notional
    )


def _order_window_s(venue: PrivateExchange, resent_for_s: float) -> float:
    """How long after its intent an order may still be taken by ``venue``: sent again for up to
    ``resent_for_s``, each send taken for up to the venue's ``order_acceptance_s``."""
    return resent_for_s + venue.order_acceptance_s


def _note_charged(charged: dict[ExchangeName, Decimal], outcome: OrderOutcome) -> None:
    """Keep in ``charged`` the highest fee rate ``outcome``'s venue charged its fills (in quote)."""
    notional = outcome.notional
    if notional:
        rate = outcome.fee_quote / notional
        if rate > charged.get(outcome.exchange, ZERO):
            charged[outcome.exchange] = rate
