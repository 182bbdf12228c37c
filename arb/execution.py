"""Two-leg executor: both legs at once, drives ``arb_core.fsm``, hands residuals to recovery.

``execute`` turns an opportunity into two IOC limit orders at the scanned worst prices,
journals both intents, sends them concurrently and waits for each final outcome (an
unknown outcome is resolved by querying the client id, never guessed). Equal fills
complete the opportunity with its exact realized profit; anything else goes to the
``RecoveryManager``, so an execution ends flat or flagged for manual approval.

``start`` is the synchronous part (plan, journal, both writes) and ``finish`` the rest, so a
caller can keep its own records of the result safe from cancellation too (the controller does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Coroutine, Mapping
from decimal import Decimal
from typing import Any, Protocol, TypeVar

import msgspec

from arb_core.fsm import StateMachine

from .errors import ArbitrageEngineError, OrderExecutionError
from .exchanges.base import PrivateExchange
from .exchanges.models import OrderRequest, OrderState
from .instruments import Instrument, InstrumentCatalog, common_step, round_down_to_step
from .journal import IntentOrder
from .monitor import Stage
from .orders import (
    WIDE,
    ZERO,
    Clock,
    OrderJournal,
    OrderOutcome,
    OrderRunner,
    OrderSettings,
    RealizedPnl,
    Sleep,
    catalog_instrument,
    client_order_id,
    ioc_order,
    round_price,
)
from .recovery import RecoveryManager, RecoveryOutcome, Residual
from .types import ArbitrageOpportunity, ArbitrageState, ExchangeName, ExecutionResult, OpportunityType, OrderSide

log = logging.getLogger(__name__)

_NS_PER_MS = Decimal(1_000_000)
_KEPT_HISTORIES = 256
_STATES = {int(state): state for state in ArbitrageState}
_T = TypeVar("_T")


class ExecutionObserver(Protocol):
    """Latency hooks (``arb.monitor.PerformanceMonitor`` satisfies it)."""

    def record_stage(self, stage: Stage, duration_ns: int) -> None:
        """Record how long ``stage`` took."""


class LegPlan(msgspec.Struct, frozen=True, kw_only=True):
    """One leg about to be sent."""

    leg: str  # "buy" or "sell"
    instrument: Instrument
    request: OrderRequest


class StartedExecution:
    """An execution whose orders ``TwoLegExecutor.start`` wrote (or that ended there: ``result``)."""

    __slots__ = ("opportunity", "start_ns", "sent_ns", "legs", "result")

    def __init__(
        self, opportunity: ArbitrageOpportunity, start_ns: int, sent_ns: int,
        legs: tuple[tuple[LegPlan, Awaitable[OrderState] | None], ...], *, result: ExecutionResult | None = None,
    ) -> None:
        self.opportunity = opportunity
        self.start_ns = start_ns
        self.sent_ns = sent_ns
        self.legs = legs  # (plan, the written order's answer or None) of the buy leg, then the sell leg
        self.result = result


async def finish_despite_cancellation(finishing: Coroutine[Any, Any, _T]) -> _T:
    """Run ``finishing`` to its end in a task of its own and return its result.

    A cancellation of the caller meanwhile does not reach it: the caller keeps waiting for it
    and raises ``CancelledError`` once it has ended. For the part of an execution after its
    orders are out, which must learn, journal and settle what the venues did.
    """
    task = asyncio.ensure_future(finishing)
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait([task])
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError from (None if task.cancelled() else task.exception())
    return task.result()


class TwoLegExecutor:
    """Executes opportunities as one two-leg operation; the residual of a failed leg goes to ``recovery``."""

    def __init__(
        self,
        exchanges: Mapping[ExchangeName, PrivateExchange],
        instruments: Mapping[ExchangeName, InstrumentCatalog],
        *,
        recovery: RecoveryManager,
        journal: OrderJournal | None = None,
        clock: Clock = time.monotonic_ns,
        sleep: Sleep = asyncio.sleep,
        order_settings: OrderSettings = OrderSettings(),
        monitor: ExecutionObserver | None = None,
    ) -> None:
        self.instruments = instruments
        self.recovery = recovery
        self.clock = clock
        self.monitor = monitor
        self.orders = OrderRunner(exchanges, journal=journal, settings=order_settings, clock=clock, sleep=sleep)
        self._histories: OrderedDict[str, list[tuple[int, int]]] = OrderedDict()  # raw, converted when read

    def plan(self, opportunity: ArbitrageOpportunity) -> tuple[LegPlan, LegPlan]:
        """The two IOC orders of ``opportunity``; raises OrderExecutionError when it cannot be traded as given.

        The quantity is ``max_quantity`` rounded down to a step both markets can trade
        exactly (futures: whole contracts); prices are the scanned worst prices on each
        market's tick grid, rounded toward the market by at most one tick.
        """
        opp = opportunity
        buy_market, sell_market = opp.buy_exchange, opp.sell_exchange
        if buy_market is sell_market:
            raise OrderExecutionError(f"{_where(opp)}: buy and sell market are both {buy_market.value}")
        buy_futures, sell_futures = buy_market.is_futures, sell_market.is_futures
        if opp.opportunity_type is OpportunityType.SPOT_SPOT and (buy_futures or sell_futures):
            raise OrderExecutionError(f"{_where(opp)}: a spot_spot opportunity names a futures market")
        if opp.opportunity_type is OpportunityType.SPOT_FUTURES_HEDGE and buy_futures == sell_futures:
            raise OrderExecutionError(f"{_where(opp)}: a spot_futures_hedge needs one spot and one futures market")
        buy = catalog_instrument(self.instruments, buy_market, opp.symbol)
        sell = catalog_instrument(self.instruments, sell_market, opp.symbol)
        step = common_step(buy.base_lot, sell.base_lot)
        quantity = round_down_to_step(opp.max_quantity, step)
        if quantity <= 0:
            raise OrderExecutionError(
                f"{_where(opp)}: max_quantity {opp.max_quantity} is below one common lot {step}"
            )
        return (
            _leg(opp, "buy", OrderSide.BUY, buy, opp.buy_price, quantity),
            _leg(opp, "sell", OrderSide.SELL, sell, opp.sell_price, quantity),
        )

    async def execute(self, opportunity: ArbitrageOpportunity) -> ExecutionResult:
        """Execute both legs of ``opportunity`` and recover any residual; never raises on venue failures.

        ``start`` then ``finish``. Once the orders are out a cancellation does not cut the
        execution short: it waits for the execution to end (both outcomes known and journaled,
        any residual recovered) and is raised then; ``transitions`` keeps how it ended.
        """
        return await finish_despite_cancellation(self.finish(self.start(opportunity)))

    def start(self, opportunity: ArbitrageOpportunity) -> StartedExecution:
        """Plan both legs, journal their intents and write both orders, before returning (nothing is
        awaited, so nothing runs between the writes). Pass the result to ``finish``.

        Nothing is sent when planning or journaling fails; ``finish`` then gives the FAILED result.
        """
        start = self.clock()
        opp_id = opportunity.opportunity_id
        try:
            buy_plan, sell_plan = self.plan(opportunity)
            # Both intents in one record, durable together before either order is sent.
            self.orders.intend_all(opp_id, _intents(buy_plan, sell_plan), deferred=True)
        except Exception as exc:  # nothing was sent, nothing was journaled
            log.warning("opportunity %s not executed: %s", opp_id, exc)
            fsm = self._executing(start)
            self._move(fsm, ArbitrageState.FAILED)
            return StartedExecution(
                opportunity, start, start, (), result=self._result(opportunity, fsm, start, (), ZERO, f"not executed: {exc}")
            )
        sent = self.clock()
        # Both orders are written back to back here when their venues can take them at once;
        # a leg that cannot is sent by its ``run`` in ``finish``.
        orders = self.orders
        buy_written = orders.write(buy_plan.instrument.exchange, buy_plan.request)
        sell_written = orders.write(sell_plan.instrument.exchange, sell_plan.request)
        return StartedExecution(opportunity, start, sent, ((buy_plan, buy_written), (sell_plan, sell_written)))

    async def finish(self, started: StartedExecution) -> ExecutionResult:
        """Wait for both legs of a ``start``ed execution, recover any residual; its final result.

        Await it to the end once ``start`` has written orders: a cancellation meanwhile leaves
        the outcomes unknown to this process until a restart reconciles them
        (``finish_despite_cancellation`` holds one off instead).
        """
        if started.result is not None:
            return started.result
        opportunity, start, sent = started.opportunity, started.start_ns, started.sent_ns
        (buy_plan, buy_written), (sell_plan, sell_written) = started.legs
        opp_id = opportunity.opportunity_id
        orders = self.orders
        # Entered at ``start``, recorded once both orders are out: nothing reads it before.
        fsm = self._executing(start)
        sell_task = asyncio.ensure_future(
            orders.run(sell_plan.instrument.exchange, sell_plan.instrument, sell_plan.request, sell_plan.leg, sell_written)
        )
        # Scheduled after the sell leg's first step, which sends it when not written yet: the
        # intents' database commit then runs once both orders are out, while the venues match them.
        asyncio.get_running_loop().call_soon(orders.settle_intents)
        try:
            buy = await orders.run(
                buy_plan.instrument.exchange, buy_plan.instrument, buy_plan.request, buy_plan.leg, buy_written
            )
        except asyncio.CancelledError:
            # Cancelled with us, as ``gather`` would do, and awaited so it cannot outlive us.
            sell_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sell_task
            raise
        except BaseException:
            await asyncio.wait([sell_task])  # the sell leg still learns (and journals) its outcome
            raise
        sell = await sell_task
        if self.monitor is not None:
            answered = [o.answered_ns for o in (buy, sell) if o.answered_ns]
            if answered:
                self.monitor.record_stage(Stage.PLACE, max(answered) - sent)
            self.monitor.record_stage(Stage.FILL, self.clock() - sent)
        tolerance = min(buy.instrument.base_lot, sell.instrument.base_lot)
        if buy.resolved and sell.resolved and abs(buy.filled_base - sell.filled_base) < tolerance:
            if not buy.filled and not sell.filled:
                self._move(fsm, ArbitrageState.FAILED)
                return self._result(opportunity, fsm, start, (buy, sell), ZERO, _errors("nothing filled", buy, sell))
            self._move(fsm, ArbitrageState.COMPLETED)
            return self._result(opportunity, fsm, start, (buy, sell), _realized([buy, sell]), None)
        self._move(fsm, ArbitrageState.RECOVERING)
        log.warning(
            "opportunity %s: legs differ (buy %s filled %s of %s, sell %s filled %s of %s); recovering",
            opp_id, buy.exchange.value, buy.filled, buy.request.quantity, sell.exchange.value, sell.filled,
            sell.request.quantity,
        )
        try:
            outcome = await self.recovery.recover(Residual(opportunity_id=opp_id, buy=buy, sell=sell))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("opportunity %s: recovery failed; REQUIRES MANUAL APPROVAL", opp_id)
            error = f"requires manual approval: recovery failed: {exc}"
            return self._result(opportunity, fsm, start, (buy, sell), _realized((buy, sell)), error)
        return self._recovered(opportunity, fsm, start, outcome)

    def rehearse(self, opportunity: ArbitrageOpportunity) -> bool:
        """Plan ``opportunity`` and encode its intents and orders as ``execute`` would, then drop them:
        nothing is journaled, sent or spent. False when it cannot be planned.

        Between executions the order path's code and data leave the CPU's caches, and the next
        execution then runs several times slower than a warm one; rehearsing every few
        milliseconds keeps them there (``engine.rehearsal_interval_ms``).
        """
        try:
            buy_plan, sell_plan = self.plan(opportunity)
            self.orders.rehearse(opportunity.opportunity_id, _intents(buy_plan, sell_plan))
        except Exception as exc:  # a rehearsal never fails the engine; it is only not repeated
            log.debug("opportunity %s not rehearsed: %s", opportunity.opportunity_id, exc)
            return False
        return True

    def refusal(self, opportunity: ArbitrageOpportunity) -> str | None:
        """Why ``start`` would send nothing of ``opportunity``: its orders cannot be planned, or a
        client id of theirs is journaled already (its id traded before); None when it would send them.
        Nothing is journaled or sent."""
        try:
            plans = self.plan(opportunity)
        except ArbitrageEngineError as exc:
            return str(exc)
        journal = self.orders.journal
        if journal is not None:
            for plan in plans:
                market, client_id = plan.instrument.exchange, plan.request.client_order_id
                if journal.knows(market, client_id):
                    return (f"{_where(opportunity)}: its {plan.leg} order's client id {client_id!r} is journaled "
                            f"on {market.value} already: an opportunity id is traded once")
        return None

    def transitions(self, opportunity_id: str) -> list[tuple[ArbitrageState, int]]:
        """The state machine history of a recent execution as (state, entered_at_ns), oldest first."""
        return [(_STATES[state], at_ns) for state, at_ns in self._histories.get(opportunity_id, ())]

    def _recovered(
        self, opportunity: ArbitrageOpportunity, fsm: StateMachine, start: int, outcome: RecoveryOutcome
    ) -> ExecutionResult:
        orders = (outcome.buy, outcome.sell, *outcome.orders)
        if outcome.requires_manual_approval:
            # The state machine stays in RECOVERING: the residual is open until an operator acts.
            error = f"requires manual approval: {outcome.reason}"
            return self._result(opportunity, fsm, start, orders, _realized(orders), error)
        # Completed only when hedges finished the planned trade; any unwind means the arbitrage did not happen.
        completed = not outcome.unwound_base and any(o.filled for o in orders)
        self._move(fsm, ArbitrageState.COMPLETED if completed else ArbitrageState.FAILED)
        failure = None
        if not completed:
            what = f"recovered by unwind (cost {outcome.cost})" if outcome.unwound_base else "nothing filled"
            failure = _errors(what, outcome.buy, outcome.sell)
        return self._result(opportunity, fsm, start, orders, _realized(orders), failure)

    def _executing(self, start: int) -> StateMachine:
        """An execution's state machine, moved from OPPORTUNITY_FOUND to EXECUTING at ``start``."""
        fsm = StateMachine(int(ArbitrageState.OPPORTUNITY_FOUND), now_ns=start)
        self._move(fsm, ArbitrageState.EXECUTING, start)
        return fsm

    def _move(self, fsm: StateMachine, state: ArbitrageState, at_ns: int | None = None) -> None:
        now = self.clock()
        fsm.transition(int(state), max(now if at_ns is None else at_ns, fsm.entered_at_ns))
        if self.monitor is not None:
            self.monitor.record_stage(Stage.TRANSITION, self.clock() - now)

    def _result(
        self, opportunity: ArbitrageOpportunity, fsm: StateMachine, start: int, orders: tuple[OrderOutcome, ...],
        profit: Decimal, error: str | None,
    ) -> ExecutionResult:
        elapsed_ns = self.clock() - start
        histories = self._histories
        histories[opportunity.opportunity_id] = fsm.history()
        if len(histories) > _KEPT_HISTORIES:
            histories.popitem(last=False)
        return ExecutionResult(
            opportunity_id=opportunity.opportunity_id,
            final_state=_STATES[fsm.state],
            total_execution_time_ms=Decimal(elapsed_ns) / _NS_PER_MS,
            realized_profit=profit,
            legs=tuple([o.to_leg() for o in orders]),
            error=error,
        )


def _intents(*plans: LegPlan) -> list[IntentOrder]:
    return [(plan.leg, plan.instrument.exchange, plan.request, plan.instrument.contract_size) for plan in plans]


def _realized(orders: list[OrderOutcome] | tuple[OrderOutcome, ...]) -> Decimal:
    """The orders' realized profit (``RealizedPnl``)."""
    pnl = RealizedPnl()
    for order in orders:
        if order.filled:
            pnl.add(order.request.side, order.filled_base, order.notional, order.fee_quote)
    return pnl.value()


def _errors(prefix: str, *orders: OrderOutcome) -> str:
    details = "; ".join(f"{o.leg} on {o.exchange.value}: {o.error}" for o in orders if o.error)
    return f"{prefix}: {details}" if details else prefix


def _where(opportunity: ArbitrageOpportunity) -> str:
    return f"opportunity {opportunity.opportunity_id} {opportunity.symbol}"


def _leg(
    opportunity: ArbitrageOpportunity, leg: str, side: OrderSide, instrument: Instrument, price: Decimal,
    quantity: Decimal,
) -> LegPlan:
    """The IOC order of one leg trading ``quantity`` (base units) at ``price`` rounded toward the market."""
    size = instrument.lots_to_size(instrument.size_to_lots(_exact_div(quantity, instrument.contract_size)))
    limit = round_price(instrument, price, side, marketable=True)
    if size < instrument.min_size or quantity * limit < instrument.min_notional:
        raise OrderExecutionError(
            f"{_where(opportunity)}: {leg} {size} on {instrument.exchange.value} is below min_size "
            f"{instrument.min_size} or min_notional {instrument.min_notional}"
        )
    request = ioc_order(
        instrument, side, size, limit, client_order_id(opportunity.opportunity_id, leg[0]),
        reduce_only=opportunity.futures_reduce_only,
    )
    return LegPlan(leg=leg, instrument=instrument, request=request)


def _exact_div(value: Decimal, divisor: Decimal) -> Decimal:
    return WIDE.divide(value, divisor).normalize(WIDE)

