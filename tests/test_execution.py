"""Two-leg executor against scripted venues: exact PnL, every fault ends flat or flagged, journal complete."""

from __future__ import annotations

import asyncio
import math
import re
import tempfile
from collections.abc import Awaitable
from decimal import ROUND_CEILING, ROUND_FLOOR, localcontext
from decimal import Decimal as D
from pathlib import Path

import msgspec
import pytest
from fakevenue import FakeExchange, FakeTime, Step, catalogs, perp, spot
from hypothesis import example, given, settings
from hypothesis import strategies as st
from simvenues import API_KEY, PERP, SPOT, simulated_venues

from arb.errors import ExchangeConnectionError, ExchangeError, OrderExecutionError, OrderRejectedError, RateLimitError
from arb.exchanges.errors import ErrorCategory
from arb.exchanges.models import OrderRequest, OrderState, OrderType, TimeInForce
from arb.execution import TwoLegExecutor
from arb.instruments import Instrument, InstrumentCatalog, InstrumentError
from arb.journal import Journal
from arb.monitor import Stage
from arb.orders import Backoff, OrderRunner, OrderSettings, client_order_id, ioc_order
from arb.recovery import RecoveryManager, RecoveryStatus
from arb.sim.faults import OrderFaultKind
from arb.types import ArbitrageOpportunity, ArbitrageState, ExchangeName, ExecutionResult, OpportunityType, OrderSide
from arb_core.fsm import legal_targets

GATE, MEXC, MEXC_PERP = "gateio", "mexc", "mexc_futures"
S = ArbitrageState


def opportunity(
    opportunity_id: str = "opp1",
    *,
    buy: str = GATE,
    sell: str = MEXC,
    buy_price: str = "60000.10",
    sell_price: str = "60010.50",
    quantity: str = "0.5",
    kind: OpportunityType = OpportunityType.SPOT_SPOT,
) -> ArbitrageOpportunity:
    spread = D(sell_price) - D(buy_price)
    return ArbitrageOpportunity(
        opportunity_id=opportunity_id, opportunity_type=kind, symbol="BTC/USDT",
        buy_exchange=ExchangeName(buy), sell_exchange=ExchangeName(sell), buy_price=D(buy_price),
        sell_price=D(sell_price), max_quantity=D(quantity), profit_per_unit=spread,
        total_profit_estimate=spread * D(quantity), profit_margin_bps=D(1), detected_at=0,
    )


class Stages:
    def __init__(self) -> None:
        self.seen: list[tuple[Stage, int]] = []

    def record_stage(self, stage: Stage, duration_ns: int) -> None:
        self.seen.append((stage, duration_ns))


class Harness:
    def __init__(
        self, tmp_path: Path, buy: FakeExchange, sell: FakeExchange, *, max_loss: str = "50", attempts: int = 3
    ) -> None:
        self.buy, self.sell = buy, sell
        self.time = FakeTime()
        self.journal = Journal(tmp_path / "journal.sqlite3", wall_clock_ms=lambda: 1_700_000_000_000)
        venues = {buy.exchange: buy, sell.exchange: sell}
        settings = OrderSettings(query_attempts=4, rate_limit_deadline_s=1.0)
        self.recovery = RecoveryManager(
            venues, max_loss_quote=D(max_loss), max_attempts=attempts, clock=self.time.clock, sleep=self.time.sleep,
            journal=self.journal, order_settings=settings,
        )
        self.stages = Stages()
        self.executor = TwoLegExecutor(
            venues, catalogs(buy, sell), recovery=self.recovery, journal=self.journal, clock=self.time.clock,
            sleep=self.time.sleep, order_settings=settings, monitor=self.stages,
        )

    def run(self, opp: ArbitrageOpportunity) -> ExecutionResult:
        result = asyncio.run(self.executor.execute(opp))
        self.check_fsm(opp.opportunity_id, result)
        return result

    def check_fsm(self, opportunity_id: str, result: ExecutionResult) -> None:
        history = self.executor.transitions(opportunity_id)
        states = [state for state, _ in history]
        assert states[0] is S.OPPORTUNITY_FOUND and states[1] is S.EXECUTING
        assert states[-1] is result.final_state
        for (a, ta), (b, tb) in zip(history, history[1:]):
            assert int(b) in legal_targets(int(a)) and tb >= ta

    def net_base(self) -> D:
        return self.buy.net_base() + self.sell.net_base()

    def check_journal_accounts_for_every_order(self, open_expected: int = 0) -> None:
        """Every order any venue saw has an intent; all but ``open_expected`` are closed."""
        for venue in (self.buy, self.sell):
            for request in venue.placed:
                assert self.journal.intent(venue.exchange, request.client_order_id).request == request
        assert len(self.journal.open_intents()) == open_expected


def venues(buy_script: tuple[Step, ...] = (), sell_script: tuple[Step, ...] = ()) -> tuple[FakeExchange, FakeExchange]:
    return (
        FakeExchange(spot(ExchangeName.GATEIO), buy_script),
        FakeExchange(spot(ExchangeName.MEXC, venue_symbol="BTCUSDT"), sell_script),
    )


def test_spot_spot_completes_with_exact_pnl(tmp_path: Path) -> None:
    h = Harness(tmp_path, *venues())
    result = h.run(opportunity())
    assert result.final_state is S.COMPLETED and result.error is None
    # buy 0.5 @ 60000.10 (fee 0.0005 BTC valued at 60000.10), sell 0.5 @ 60010.50 (fee 0.1 % in USDT)
    expected = D("0.5") * D("60010.50") - D("0.5") * D("60000.10") - D("0.0005") * D("60000.10") - D("30.00525")
    assert result.realized_profit == expected == D("-54.80530")
    buy_leg, sell_leg = result.legs
    assert (buy_leg.client_order_id, sell_leg.client_order_id) == ("opp1-b", "opp1-s")
    assert buy_leg.filled_quantity == sell_leg.filled_quantity == D("0.5")
    assert buy_leg.limit_price == D("60000.10") and sell_leg.limit_price == D("60010.50")
    assert all(r.time_in_force is TimeInForce.IOC for r in h.buy.placed + h.sell.placed)
    assert result.total_execution_time_ms == D(0)  # the fake clock only moves when slept on
    assert [s for s, _ in h.executor.transitions("opp1")] == [S.OPPORTUNITY_FOUND, S.EXECUTING, S.COMPLETED]
    assert {stage for stage, _ in h.stages.seen} == {Stage.PLACE, Stage.FILL, Stage.TRANSITION}
    h.check_journal_accounts_for_every_order()
    # The journal's cash flow agrees once its base-asset fee is valued at the buy price.
    pnl = h.journal.opportunity_pnl("opp1")
    assert pnl.realized_pnl - pnl.other_fees["BTC"] * D("60000.10") == expected and pnl.residual_quantity == 0
    assert h.net_base() == 0


class HeldAnswers(FakeExchange):
    """Answers orders only once ``release`` is called."""

    def __init__(self, instrument: Instrument) -> None:
        super().__init__(instrument)
        self.waiting = 0
        self._released: asyncio.Event | None = None

    async def place_order(self, request: OrderRequest) -> OrderState:
        if self._released is None:
            self._released = asyncio.Event()
        self.waiting += 1
        await self._released.wait()
        return await super().place_order(request)

    def release(self) -> None:
        assert self._released is not None
        self._released.set()


def test_a_cancelled_execution_ends_and_journals_both_legs_before_the_cancellation_is_raised(tmp_path: Path) -> None:
    buy, sell = HeldAnswers(spot(ExchangeName.GATEIO)), HeldAnswers(spot(ExchangeName.MEXC, venue_symbol="BTCUSDT"))
    h = Harness(tmp_path, buy, sell)

    async def scenario() -> None:
        task = asyncio.ensure_future(h.executor.execute(opportunity()))
        while buy.waiting + sell.waiting < 2:  # both orders sent, neither answered
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.sleep(0)
        assert not task.done()  # held until the execution ends
        buy.release()
        sell.release()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert [s for s, _ in h.executor.transitions("opp1")] == [S.OPPORTUNITY_FOUND, S.EXECUTING, S.COMPLETED]
    assert len(buy.placed) == len(sell.placed) == 1
    h.check_journal_accounts_for_every_order()  # both outcomes journaled: no intent left open
    assert h.net_base() == 0


def test_spot_futures_hedge_trades_whole_contracts_with_exact_pnl(tmp_path: Path) -> None:
    buy = FakeExchange(spot(ExchangeName.GATEIO))
    sell = FakeExchange(perp(ExchangeName.MEXC_FUTURES, venue_symbol="BTC_USDT", contract_size=D("0.001")))
    h = Harness(tmp_path, buy, sell)
    opp = opportunity(sell=MEXC_PERP, sell_price="60020.34", quantity="0.5237",
                      kind=OpportunityType.SPOT_FUTURES_HEDGE)
    result = h.run(opp)
    assert result.final_state is S.COMPLETED
    (spot_order,), (perp_order,) = buy.placed, sell.placed
    assert spot_order.quantity == D("0.523") and perp_order.quantity == D("523")  # 0.001 BTC contracts, exact
    assert perp_order.price == D("60020.3") and perp_order.symbol == "BTC/USDT:USDT"
    base = D("0.523")
    expected = (base * D("60020.3") - base * D("60000.10") - base * D("0.001") * D("60000.10")
                - base * D("60020.3") * D("0.0005"))
    assert result.realized_profit == expected
    assert h.net_base() == 0
    h.check_journal_accounts_for_every_order()


def close_venues(perp_script: tuple[Step, ...] = (), spot_script: tuple[Step, ...] = ()) -> tuple[FakeExchange, FakeExchange]:
    perpetual = perp(ExchangeName.MEXC_FUTURES, venue_symbol="BTC_USDT", contract_size=D("0.001"))
    return FakeExchange(perpetual, perp_script), FakeExchange(spot(ExchangeName.GATEIO), spot_script)


def hedge_close(quantity: str = "0.5") -> ArbitrageOpportunity:
    """Closing a long-spot hedge: buy the perpetual back, sell the spot; the futures leg reduce-only."""
    opp = opportunity(buy=MEXC_PERP, sell=GATE, quantity=quantity, kind=OpportunityType.SPOT_FUTURES_HEDGE)
    return msgspec.structs.replace(opp, futures_reduce_only=True)


def test_a_reduce_only_close_sends_its_futures_leg_and_the_leg_completing_it_reduce_only(tmp_path: Path) -> None:
    h = Harness(tmp_path, *close_venues(perp_script=(Step(fraction=D("0.6")),)))
    result = h.run(hedge_close())
    assert result.final_state is S.COMPLETED
    (spot_leg,) = h.sell.placed
    futures_leg, completion = h.buy.placed
    assert futures_leg.reduce_only and not spot_leg.reduce_only
    assert completion.client_order_id == "opp1-h1" and completion.quantity == D("200") and completion.reduce_only
    assert h.net_base() == 0
    h.check_journal_accounts_for_every_order()  # the journaled requests say reduce-only too


def test_unwinding_a_reduce_only_leg_is_a_plain_order(tmp_path: Path) -> None:
    """The spot leg refused: the perpetual bought back goes out again, which grows the position."""
    h = Harness(tmp_path, *close_venues(spot_script=(Step(kind="reject"),)))
    result = h.run(hedge_close())
    assert result.final_state is S.FAILED
    futures_leg, unwind = h.buy.placed
    assert futures_leg.reduce_only and unwind.client_order_id == "opp1-u1" and not unwind.reduce_only
    assert h.net_base() == 0
    h.check_journal_accounts_for_every_order()


def test_nothing_is_sent_when_the_quantity_is_below_a_lot(tmp_path: Path) -> None:
    h = Harness(tmp_path, *venues())
    result = h.run(opportunity(quantity="0.00005"))
    assert result.final_state is S.FAILED and "below one common lot" in (result.error or "")
    assert not h.buy.placed and not h.sell.placed and result.legs == ()


def test_an_opportunity_is_executed_at_most_once(tmp_path: Path) -> None:
    h = Harness(tmp_path, *venues())
    assert h.run(opportunity()).final_state is S.COMPLETED
    again = h.run(opportunity())  # same id, same client ids: the journal refuses before anything is sent
    assert again.final_state is S.FAILED and "already journaled" in (again.error or "")
    assert len(h.buy.placed) == len(h.sell.placed) == 1
    h.check_journal_accounts_for_every_order()


def test_a_spot_spot_opportunity_naming_a_futures_market_is_refused(tmp_path: Path) -> None:
    buy, _ = venues()
    sell = FakeExchange(perp(ExchangeName.MEXC_FUTURES))
    h = Harness(tmp_path, buy, sell)
    result = h.run(opportunity(sell=MEXC_PERP))
    assert result.final_state is S.FAILED and "names a futures market" in (result.error or "")
    assert not buy.placed and not sell.placed


def test_rejected_leg_is_unwound_to_flat(tmp_path: Path) -> None:
    h = Harness(tmp_path, *venues(sell_script=(Step(kind="reject"),)))
    result = h.run(opportunity())
    assert result.final_state is S.FAILED and "unwind" in (result.error or "")
    assert len(h.sell.placed) == 1  # the refused venue is not retried for a balance refusal
    unwind = h.buy.placed[1]
    assert unwind.side.value == "sell" and unwind.quantity == D("0.5") and unwind.client_order_id == "opp1-u1"
    assert h.net_base() == 0
    legs = [leg.client_order_id for leg in result.legs]
    assert legs == ["opp1-b", "opp1-s", "opp1-u1"]
    h.check_journal_accounts_for_every_order()
    assert [step for step, _ in h.journal.recovery_steps("opp1")] == ["start", "unwind", "recovered"]


class HoldsOnlyWhatItBought(FakeExchange):
    """A spot venue whose account starts with no base: a sell of more than its buys left (their
    fee taken in base, where the market charges it there) is refused for the balance.
    ``fee_reported`` False answers orders without their fee, as MEXC's order query does."""

    held = D(0)
    fee_reported = True

    async def place_order(self, request: OrderRequest) -> OrderState:
        if request.side is OrderSide.SELL and request.quantity > self.held:
            self.placed.append(request)
            raise OrderRejectedError(
                self.exchange.value, f"holds {self.held}", category=ErrorCategory.INSUFFICIENT_BALANCE
            )
        state = await super().place_order(request)
        instrument = self.instrument
        bought = request.side is OrderSide.BUY
        in_base = bought and instrument.fee_asset(OrderSide.BUY) == instrument.base
        fee = state.filled_quantity * instrument.taker_fee if in_base else D(0)  # what the outcome charges
        self.held += state.filled_quantity - fee if bought else -state.filled_quantity
        return state if self.fee_reported else msgspec.structs.replace(state, fee=D(0), fee_asset=None)


def test_an_unwind_refused_for_the_balance_sells_back_what_the_buy_left(tmp_path: Path) -> None:
    """Bought 0.5 BTC on a Gate.io account that held none, 0.1 % of it taken as the fee; the sell leg
    refused. Selling back the whole 0.5 is refused for the balance; the unwind then sells the 0.4995
    the account holds, and the execution is recovered rather than flagged."""
    buy = HoldsOnlyWhatItBought(spot(ExchangeName.GATEIO))
    h = Harness(tmp_path, buy, FakeExchange(spot(ExchangeName.MEXC), [Step(kind="reject")]))
    result = h.run(opportunity())
    assert [(r.client_order_id, r.quantity) for r in buy.placed] == [
        ("opp1-b", D("0.5")), ("opp1-u1", D("0.5")), ("opp1-u2", D("0.4995")),
    ]
    assert result.final_state is S.FAILED and "requires manual approval" not in (result.error or "")
    assert buy.held == 0 and h.recovery.get_recovery_statistics().recovered == 1
    h.check_journal_accounts_for_every_order()


def test_an_unwind_of_a_buy_that_paid_its_fee_in_quote_sells_back_all_it_bought(tmp_path: Path) -> None:
    """Bought 0.5 BTC on a MEXC account that held none, the sell leg refused. MEXC's answer carries
    no fee and the venue charged it in USDT, so all 0.5 reached the account: the leg's fee is
    estimated in USDT, and the unwind sells back the whole 0.5 at once."""
    buy = HoldsOnlyWhatItBought(spot(ExchangeName.MEXC, venue_symbol="BTCUSDT", fees_in_quote=True))
    buy.fee_reported = False
    h = Harness(tmp_path, buy, FakeExchange(spot(ExchangeName.GATEIO), [Step(kind="reject")]))
    result = h.run(opportunity(buy=MEXC, sell=GATE))
    assert [(r.client_order_id, r.quantity) for r in buy.placed] == [("opp1-b", D("0.5")), ("opp1-u1", D("0.5"))]
    bought = result.legs[0]
    assert bought.average_price is not None
    assert (bought.fee, bought.fee_asset) == (D("0.5") * bought.average_price * D("0.001"), "USDT")
    assert buy.held == 0 and h.recovery.get_recovery_statistics().recovered == 1
    h.check_journal_accounts_for_every_order()


def test_both_legs_missing_fail_with_no_leg_error(tmp_path: Path) -> None:
    """Both IOC orders expire unfilled: FAILED, nothing recovered, and neither leg carries an error,
    which is how the consecutive-failures breaker tells a miss from a failure."""
    h = Harness(tmp_path, *venues(buy_script=(Step(fraction=D(0)),), sell_script=(Step(fraction=D(0)),)))
    result = h.run(opportunity())
    assert result.final_state is S.FAILED and result.error == "nothing filled"
    assert [(leg.filled_quantity, leg.error, leg.status) for leg in result.legs] == [(0, None, "expired")] * 2
    assert [r.client_order_id for r in h.buy.placed + h.sell.placed] == ["opp1-b", "opp1-s"]
    h.check_journal_accounts_for_every_order()


def test_partial_fill_is_hedged_to_flat_and_completes(tmp_path: Path) -> None:
    h = Harness(tmp_path, *venues(sell_script=(Step(fraction=D("0.6")),)))
    result = h.run(opportunity())
    assert result.final_state is S.COMPLETED
    first, hedge = h.sell.placed
    assert hedge.quantity == D("0.2") and hedge.client_order_id == "opp1-h1" and hedge.time_in_force is TimeInForce.IOC
    assert h.net_base() == 0
    # The hedge sold at its loss-bounded limit (the fake fills at the limit): PnL counts every fill.
    proceeds = D("0.3") * D("60010.50") + D("0.2") * hedge.price  # type: ignore[operator]
    fees = (D("0.0005") * D("60000.10") + D("0.3") * D("60010.50") * D("0.001")
            + D("0.2") * hedge.price * D("0.001"))  # type: ignore[operator]
    assert result.realized_profit == proceeds - D("0.5") * D("60000.10") - fees
    h.check_journal_accounts_for_every_order()


def test_an_answer_the_engine_fails_to_handle_leaves_that_leg_unknown_and_the_other_leg_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A leg's ``run`` that raised (an answer the engine could not handle) discarded the other leg's
    fill with it: no recovery, no flag, the trade loop's execution never recorded. The leg's outcome
    is unknown instead, asked about again by the recovery, and the execution ends as usual."""
    h = Harness(tmp_path, *venues())
    finished = OrderRunner._finished
    failed: list[str] = []

    def failing_once(runner: OrderRunner, exchange: ExchangeName, *args: object, **kwargs: object) -> object:
        if exchange is ExchangeName.MEXC and not failed:
            failed.append(exchange.value)
            raise ArithmeticError("an answer this engine cannot handle")
        return finished(runner, exchange, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(OrderRunner, "_finished", failing_once)
    result = h.run(opportunity())
    assert failed == ["mexc"] and result.final_state is S.COMPLETED
    assert [r.client_order_id for r in h.sell.placed] == ["opp1-s"] and h.sell.queries == ["opp1-s"]
    assert result.realized_profit == D("-54.80530") and h.net_base() == 0
    h.check_journal_accounts_for_every_order()


def test_lost_answer_with_order_placed_is_resolved_by_client_id_without_resending(tmp_path: Path) -> None:
    h = Harness(tmp_path, *venues(buy_script=(Step(kind="lost"),)))
    result = h.run(opportunity())
    assert result.final_state is S.COMPLETED
    assert [r.client_order_id for r in h.buy.placed] == ["opp1-b"]  # sent exactly once
    assert h.buy.queries == ["opp1-b"]
    assert result.realized_profit == D("-54.80530")
    h.check_journal_accounts_for_every_order()


def test_an_acknowledged_order_is_then_asked_about_by_the_venues_order_id(tmp_path: Path) -> None:
    """Gate.io finds a finished order by its client id only by searching the pair's history."""
    h = Harness(tmp_path, *venues(buy_script=(Step(kind="ack"),)))
    result = h.run(opportunity())
    assert result.final_state is S.COMPLETED
    (placed,) = [leg for leg in result.legs if leg.client_order_id == "opp1-b"]
    assert placed.order_id is not None and h.buy.queries == [f"order id {placed.order_id}"]
    h.check_journal_accounts_for_every_order()


def test_recovery_asking_again_about_a_lost_leg_waits_out_the_venues_window_before_replacing_it(
    tmp_path: Path,
) -> None:
    """The buy's answer is lost and every query of the executor fails (the venue's API hiccups), so
    recovery gets it unresolved. Its own queries find nothing: "not found" is final only once the
    venue can no longer take the delayed request; a hedge sent before that could buy the leg twice."""
    buy, sell = venues(buy_script=(Step(kind="vanish"),))
    buy.order_acceptance_s = 6.0  # the order deadline and the clock's error, as a real venue's
    buy.failing_queries = 4  # the executor's
    h = Harness(tmp_path, buy, sell)
    sent_at: dict[str, int] = {}
    place = buy.place_order

    async def placing(request: OrderRequest) -> OrderState:
        sent_at[request.client_order_id] = h.time.now_ns
        return await place(request)

    buy.place_order = placing  # type: ignore[method-assign]
    result = h.run(opportunity())
    hedges = [cid for cid in sent_at if cid != "opp1-b"]
    assert hedges and result.final_state is S.COMPLETED
    assert all(sent_at[cid] - sent_at["opp1-b"] >= 6_000_000_000 for cid in hedges)
    h.check_journal_accounts_for_every_order()


def test_disconnect_mid_execution_is_resolved_after_failed_queries(tmp_path: Path) -> None:
    buy, sell = venues(sell_script=(Step(kind="lost", error="disconnect", fraction=D("0.4")),))
    sell.failing_queries = 2
    h = Harness(tmp_path, buy, sell)
    result = h.run(opportunity())
    assert h.sell.queries == ["opp1-s"] * 3
    assert len([r for r in h.sell.placed if r.client_order_id == "opp1-s"]) == 1
    assert result.final_state is S.COMPLETED  # the 0.3 missing is hedged on the same venue
    assert h.net_base() == 0
    h.check_journal_accounts_for_every_order()


class LandsLateThenRateLimits(FakeExchange):
    """The first order's answer is lost and the order lands just after the first query (which finds
    nothing); every later query of it is refused with a 429."""

    async def place_order(self, request: OrderRequest) -> OrderState:
        if self.placed:
            return await super().place_order(request)
        self.placed.append(request)
        self.landing = self._execute(request, D(1))
        raise ExchangeError(self.exchange.value, "gateway timeout [HTTP 504]", category=ErrorCategory.OUTCOME_UNKNOWN)

    async def query_order(
        self, symbol: str, *, order_id: str | None = None, client_order_id: str | None = None,
        sent_at_ms: int | None = None,
    ) -> OrderState:
        if client_order_id == self.landing.client_order_id:
            self.queries.append(client_order_id)
            if len(self.queries) == 1:
                self.orders[client_order_id] = self.landing
                raise OrderRejectedError(self.exchange.value, "order not found", category=ErrorCategory.UNKNOWN_ORDER)
            raise RateLimitError(self.exchange.value, "too many requests", category=ErrorCategory.RATE_LIMITED)
        return await super().query_order(symbol, order_id=order_id, client_order_id=client_order_id)


def test_not_found_then_rate_limited_queries_leave_the_order_unknown_not_unfilled(tmp_path: Path) -> None:
    buy, sell = LandsLateThenRateLimits(spot(ExchangeName.GATEIO)), FakeExchange(spot(ExchangeName.MEXC))
    h = Harness(tmp_path, buy, sell)
    result = h.run(opportunity())
    # Only the first answer said "not found"; the order exists. Concluding "nothing executed" would
    # buy the leg again and end long, reported COMPLETED.
    assert [r.client_order_id for r in buy.placed] == ["opp1-b"]
    assert result.final_state is S.RECOVERING and "requires manual approval" in (result.error or "")
    assert h.journal.open_intents()[0].client_order_id == "opp1-b"  # left open for reconciliation


def test_lost_request_never_placed_counts_as_nothing_and_is_unwound(tmp_path: Path) -> None:
    h = Harness(tmp_path, *venues(sell_script=(Step(kind="vanish"),)))
    result = h.run(opportunity())
    assert result.legs[1].filled_quantity == 0 and "not found" in (result.legs[1].error or "")
    assert h.sell.queries == ["opp1-s"] * 4  # asked until the query window ran out
    assert [r.client_order_id for r in h.sell.placed] == ["opp1-s", "opp1-h1"]  # then hedged on the same venue
    assert result.final_state is S.COMPLETED
    assert h.net_base() == 0
    h.check_journal_accounts_for_every_order()


class DelayedInTransit(FakeExchange):
    """The first order's request is held up on its way: its answer is lost, the venue does not
    know it at first, and it lands (and fills) ``land_after_s`` after sending, within the
    venue's window for it (``order_acceptance_s``)."""

    order_acceptance_s = 6.0

    def __init__(self, instrument: Instrument, time: FakeTime, land_after_s: float) -> None:
        super().__init__(instrument)
        self.time, self.land_after_s = time, land_after_s
        self.landing: tuple[int, OrderState] | None = None

    async def place_order(self, request: OrderRequest) -> OrderState:
        if self.placed:
            return await super().place_order(request)
        self.placed.append(request)
        self.landing = (self.time.clock() + int(self.land_after_s * 1e9), self._execute(request, D(1)))
        raise ExchangeError(self.exchange.value, "timed out", category=ErrorCategory.OUTCOME_UNKNOWN)

    async def query_order(
        self, symbol: str, *, order_id: str | None = None, client_order_id: str | None = None,
        sent_at_ms: int | None = None,
    ) -> OrderState:
        if self.landing is not None and self.time.clock() >= self.landing[0]:
            state = self.landing[1]
            self.orders[state.client_order_id] = state
            self.landing = None
        return await super().query_order(symbol, order_id=order_id, client_order_id=client_order_id)


def test_an_order_not_found_is_not_taken_as_absent_while_the_venue_may_still_take_it(tmp_path: Path) -> None:
    """The sell leg's request lands 4 s after it was sent, past the queries' backoff (~2 s), within
    MEXC-like 6 s: taken as never placed, recovery would sell again and the late fill double it."""
    sell = DelayedInTransit(spot(ExchangeName.MEXC), FakeTime(), land_after_s=4.0)
    h = Harness(tmp_path, FakeExchange(spot(ExchangeName.GATEIO)), sell)
    sell.time = h.time  # lands by the executor's clock
    result = h.run(opportunity())
    assert [r.client_order_id for r in sell.placed] == ["opp1-s"]  # nothing sent again
    assert result.final_state is S.COMPLETED and result.legs[1].filled_quantity == D("0.5")
    assert sum(h.time.sleeps) >= 6.0 and h.sell.queries[-1] == "opp1-s"
    assert h.net_base() == 0
    h.check_journal_accounts_for_every_order()

    # Never placed at all: "not found" stands once the window has passed, and the leg is hedged.
    (tmp_path / "vanished").mkdir()
    vanished = Harness(tmp_path / "vanished", *venues(sell_script=(Step(kind="vanish"),)))
    vanished.sell.order_acceptance_s = 6.0  # type: ignore[misc]
    result = vanished.run(opportunity())
    assert "not found at the venue after 5 queries" in (result.legs[1].error or "")
    assert sum(vanished.time.sleeps) >= 6.0 and result.final_state is S.COMPLETED
    assert vanished.net_base() == 0


class CannotCancel(FakeExchange):
    async def cancel_order(
        self, symbol: str, *, order_id: str | None = None, client_order_id: str | None = None
    ) -> OrderState:
        raise ExchangeConnectionError(self.exchange.value, "disconnected", category=ErrorCategory.OUTCOME_UNKNOWN)


def test_an_acknowledged_order_no_query_reached_is_not_said_to_be_still_new() -> None:
    """Acknowledged as NEW, then every query failed: the venue never said it was still new, and an
    operator reading the flag must not take it for an order seen resting."""
    venue = CannotCancel(spot(ExchangeName.MEXC, venue_symbol="BTCUSDT"), (Step(kind="ack"),), failing_queries=100)
    time = FakeTime()
    runner = OrderRunner({venue.exchange: venue}, settings=OrderSettings(query_attempts=3), clock=time.clock,
                         sleep=time.sleep)
    request = ioc_order(venue.instrument, OrderSide.SELL, D("0.5"), D("60010.50"), "opp1-s")
    outcome = asyncio.run(runner.run(venue.exchange, venue.instrument, request, "sell"))
    assert not outcome.resolved and outcome.state is not None
    assert "new when acknowledged, then 3 queries unanswered (mexc: disconnected" in (outcome.error or "")
    assert "cancel failed" in (outcome.error or "") and "still new" not in (outcome.error or "")


def test_unresolvable_outcome_is_flagged_and_left_open_for_reconciliation(tmp_path: Path) -> None:
    buy, sell = venues(sell_script=(Step(kind="lost"),))
    sell.failing_queries = 100
    h = Harness(tmp_path, buy, sell)
    result = h.run(opportunity())
    assert result.final_state is S.RECOVERING and "requires manual approval" in (result.error or "")
    assert h.recovery.get_recovery_statistics().flagged == 1
    (active,) = h.recovery.get_active_recoveries()
    assert active.status is RecoveryStatus.AWAITING_APPROVAL and active.opportunity_id == "opp1"
    h.check_journal_accounts_for_every_order(open_expected=1)
    (open_intent,) = h.journal.open_intents()
    assert open_intent.client_order_id == "opp1-s"


def test_a_failing_recovery_is_flagged_not_raised(tmp_path: Path) -> None:
    h = Harness(tmp_path, *venues(sell_script=(Step(kind="reject"),)))

    async def broken(residual: object) -> None:
        raise RuntimeError("recovery bug")

    h.recovery.recover = broken  # type: ignore[assignment]
    result = h.run(opportunity())
    assert result.final_state is S.RECOVERING
    assert result.error == "requires manual approval: recovery failed: recovery bug"


def test_rate_limit_waits_retry_after_and_proceeds(tmp_path: Path) -> None:
    script = (Step(kind="ratelimit", retry_after_s=0.25), Step(kind="ratelimit", retry_after_s=0.25))
    h = Harness(tmp_path, *venues(buy_script=script))
    result = h.run(opportunity())
    assert result.final_state is S.COMPLETED
    assert h.time.sleeps == [0.25, 0.25]
    assert [r.client_order_id for r in h.buy.placed] == ["opp1-b"] * 3
    assert result.total_execution_time_ms == D(500)
    h.check_journal_accounts_for_every_order()


class WritingExchange(FakeExchange):
    """Writes its orders at once (``write_order``), as a connector whose order connection is ready does."""

    def __init__(self, *args: object, log: list[str], refuse_writes: bool = False, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.log = log
        self.refuse_writes = refuse_writes

    def write_order(self, request: OrderRequest) -> Awaitable[OrderState]:  # type: ignore[override]
        if self.refuse_writes:
            raise ValueError("this order cannot be expressed at once")
        self.log.append(f"write {request.client_order_id}")
        answer = self.place_order(request)

        async def awaited() -> OrderState:
            self.log.append(f"await {request.client_order_id}")
            return await answer

        return awaited()


def writing_venues(log: list[str], buy_script: tuple[Step, ...] = (), **kwargs: bool) -> tuple[FakeExchange, FakeExchange]:
    return (
        WritingExchange(spot(ExchangeName.GATEIO), buy_script, log=log, **kwargs),
        WritingExchange(spot(ExchangeName.MEXC, venue_symbol="BTCUSDT"), log=log),
    )


def test_both_orders_are_written_before_either_answer_is_awaited(tmp_path: Path) -> None:
    log: list[str] = []
    h = Harness(tmp_path, *writing_venues(log))
    result = h.run(opportunity())
    assert result.final_state is S.COMPLETED
    assert log[:2] == ["write opp1-b", "write opp1-s"] and sorted(log[2:]) == ["await opp1-b", "await opp1-s"]
    assert [r.client_order_id for r in h.buy.placed + h.sell.placed] == ["opp1-b", "opp1-s"]  # each sent once
    h.check_journal_accounts_for_every_order()
    assert h.net_base() == 0


def test_a_rehearsal_encodes_both_legs_and_sends_and_journals_nothing(tmp_path: Path) -> None:
    h = Harness(tmp_path, *venues())
    for _ in range(3):
        assert h.executor.rehearse(opportunity())
    assert [r.client_order_id for r in h.buy.rehearsed] == ["opp1-b"] * 3
    assert [r.client_order_id for r in h.sell.rehearsed] == ["opp1-s"] * 3
    assert h.buy.rehearsed[0] == h.executor.plan(opportunity())[0].request  # the very order execute would send
    assert not h.buy.placed and not h.sell.placed and not h.journal.open_intents()
    # Rehearsed ids are still free: the real execution goes through, journaled with its first intent ids.
    assert h.run(opportunity()).final_state is S.COMPLETED
    assert [h.journal.intent(v.exchange, cid).intent_id for v, cid in ((h.buy, "opp1-b"), (h.sell, "opp1-s"))] == [1, 2]
    h.check_journal_accounts_for_every_order()


def test_an_opportunity_that_cannot_be_planned_is_not_rehearsed(tmp_path: Path) -> None:
    h = Harness(tmp_path, *venues())
    assert not h.executor.rehearse(opportunity(quantity="0.00005"))  # below one common lot
    assert not h.buy.rehearsed and not h.sell.rehearsed


def test_a_written_order_refused_by_its_rate_limit_is_sent_again(tmp_path: Path) -> None:
    log: list[str] = []
    h = Harness(tmp_path, *writing_venues(log, (Step(kind="ratelimit", retry_after_s=0.25),)))
    result = h.run(opportunity())
    assert result.final_state is S.COMPLETED and h.time.sleeps == [0.25]
    assert log.count("write opp1-b") == 1 and [r.client_order_id for r in h.buy.placed] == ["opp1-b"] * 2
    h.check_journal_accounts_for_every_order()


def test_an_order_that_cannot_be_written_at_once_is_sent_the_ordinary_way(tmp_path: Path) -> None:
    log: list[str] = []
    h = Harness(tmp_path, *writing_venues(log, refuse_writes=True))
    result = h.run(opportunity())
    assert result.final_state is S.COMPLETED
    assert "write opp1-b" not in log and [r.client_order_id for r in h.buy.placed] == ["opp1-b"]
    h.check_journal_accounts_for_every_order()


def test_rate_limit_past_the_deadline_gives_the_leg_up_and_recovers(tmp_path: Path) -> None:
    limited = Step(kind="ratelimit", retry_after_s=5.0)
    h = Harness(tmp_path, *venues(sell_script=(limited, limited)))
    result = h.run(opportunity())
    assert result.final_state is S.FAILED
    assert "rate limited" in (result.legs[1].error or "")
    assert 5.0 not in h.time.sleeps  # a wait past the deadline is not taken
    # The refused sell, a hedge on the same venue (refused again), then an unwind on the buy venue.
    assert [r.client_order_id for r in h.sell.placed] == ["opp1-s", "opp1-h1"]
    assert [r.client_order_id for r in h.buy.placed] == ["opp1-b", "opp1-u2"]
    assert h.net_base() == 0
    h.check_journal_accounts_for_every_order()


def test_rate_limits_on_every_venue_pause_recovery_rather_than_use_up_its_attempts(tmp_path: Path) -> None:
    """Both venues answer 429 with a wait past the order deadline: recovery tries the other venue at
    once, pauses when both refused in a row, and closes the residual once a venue takes it, rather
    than flagging it after four quick refusals."""
    limited = Step(kind="ratelimit", retry_after_s=1.5)
    h = Harness(tmp_path, *venues(buy_script=(Step(), limited, limited), sell_script=(limited, limited, limited, Step())))
    result = h.run(opportunity())
    assert result.final_state is S.COMPLETED and h.net_base() == 0
    assert [r.client_order_id for r in h.sell.placed] == ["opp1-s", "opp1-h1", "opp1-h3", "opp1-h5"]
    assert [r.client_order_id for r in h.buy.placed] == ["opp1-b", "opp1-u2", "opp1-u4"]
    assert h.time.sleeps.count(1.0) == 2  # a pause after each round of refusals
    h.check_journal_accounts_for_every_order()


def test_a_venue_that_refused_for_its_rate_limit_is_sent_to_again_only_after_a_pause(tmp_path: Path) -> None:
    """The sell venue refused the leg for good: only the unwind venue is left, and it is asked again
    only after a pause, not straight after its refusal."""
    limited = Step(kind="ratelimit", retry_after_s=1.5)
    buy = FakeExchange(spot(ExchangeName.GATEIO), (Step(), limited, limited))
    sell = FakeExchange(spot(ExchangeName.MEXC, venue_symbol="BTCUSDT"),
                        (Step(kind="reject", category=ErrorCategory.ORDER_REJECTED),))
    h = Harness(tmp_path, buy, sell)
    result = h.run(opportunity())
    assert h.net_base() == 0 and result.final_state is S.FAILED  # unwound
    assert [r.client_order_id for r in buy.placed] == ["opp1-b", "opp1-u1", "opp1-u2", "opp1-u3"]
    assert h.time.sleeps.count(1.0) == 2  # before each send to the venue that had just refused
    assert h.recovery.get_recovery_statistics().attempts == 3  # every recovery order sent
    h.check_journal_accounts_for_every_order()


@pytest.mark.parametrize("clock_follows_sleeps", [True, False])
def test_a_residual_rate_limited_everywhere_for_half_a_minute_is_flagged(
    tmp_path: Path, clock_follows_sleeps: bool
) -> None:
    """Measured on the clock, and by the pauses made where a clock does not follow the sleeps."""
    limited = Step(kind="ratelimit", retry_after_s=1.5)
    h = Harness(tmp_path, *venues(buy_script=(Step(),) + (limited,) * 40, sell_script=(limited,) * 40))
    if not clock_follows_sleeps:
        h.recovery.clock = lambda: 0
    result = h.run(opportunity())
    assert result.final_state is S.RECOVERING and "requires manual approval" in (result.error or "")
    assert "rate limited for 30 s" in (result.error or "") and h.net_base() == D("0.5")
    h.check_journal_accounts_for_every_order()


def test_an_unwind_prices_in_the_fee_rate_its_venue_charged_the_leg(tmp_path: Path) -> None:
    """The venue's tier rose to 0.3 % and the catalog, read minutes ago, still says 0.1 %: the unwind
    is priced with the rate the filled leg was charged, so the recovery stays within its bound."""
    buy = FakeExchange(spot(ExchangeName.GATEIO, taker_fee=D("0.003")))
    sell = FakeExchange(spot(ExchangeName.MEXC, venue_symbol="BTCUSDT"),
                        (Step(kind="reject", category=ErrorCategory.ORDER_REJECTED),))
    h = Harness(tmp_path, buy, sell)
    h.executor.instruments = catalogs(FakeExchange(spot(ExchangeName.GATEIO)), sell)  # the listed 0.1 %
    result = h.run(opportunity())
    assert h.net_base() == 0 and [r.client_order_id for r in buy.placed][-1].startswith("opp1-u")
    statistics = h.recovery.get_recovery_statistics()
    assert statistics.recovered == 1 and 0 < statistics.total_recovery_cost <= h.recovery.max_loss_quote
    assert result.final_state is S.FAILED
    h.check_journal_accounts_for_every_order()


def test_with_recovery_off_a_residual_is_flagged_and_no_recovery_order_sent(tmp_path: Path) -> None:
    h = Harness(tmp_path, *venues(sell_script=(Step(fraction=D("0.4")),)))
    h.recovery.automatic = False  # engine.enable_recovery_mode = false
    result = h.run(opportunity())
    assert result.final_state is S.RECOVERING and "automatic recovery is off" in (result.error or "")
    assert [r.client_order_id for r in h.buy.placed + h.sell.placed] == ["opp1-b", "opp1-s"]
    assert h.recovery.get_recovery_statistics().awaiting_approval == 1 and h.net_base() == D("0.3")
    h.check_journal_accounts_for_every_order()


def test_rate_limited_hedge_completes_the_trade(tmp_path: Path) -> None:
    h = Harness(tmp_path, *venues(sell_script=(Step(kind="ratelimit", retry_after_s=5.0),)))
    result = h.run(opportunity())
    assert result.final_state is S.COMPLETED  # the hedge sold the missing 0.5 on the sell venue
    assert [r.client_order_id for r in h.sell.placed] == ["opp1-s", "opp1-h1"]
    assert h.net_base() == 0
    h.check_journal_accounts_for_every_order()


def test_loss_bound_exceeded_requires_manual_approval(tmp_path: Path) -> None:
    # The sell leg is refused; the buy venue's bid is far below what a 10 USDT loss bound allows.
    buy, sell = venues(sell_script=(Step(kind="reject"),))
    buy.touch = (D("59000"), D("60000"))
    h = Harness(tmp_path, buy, sell, max_loss="10", attempts=3)
    result = h.run(opportunity())
    assert result.final_state is S.RECOVERING
    assert "requires manual approval" in (result.error or "") and "3 recovery attempts" in (result.error or "")
    unwinds = buy.placed[1:]
    # Closing 0.5 bought at 60000 within 10 USDT, 0.1 % fee included: sell at >= (30000 - 10) / 0.4995.
    assert [u.price for u in unwinds] == [D("60040.05")] * 3
    assert all(u.filled_quantity == 0 for u in result.legs[2:])
    assert h.time.sleeps[-2:] == [0.05, 0.1]  # backoff between recovery attempts
    stats = h.recovery.get_recovery_statistics()
    assert (stats.flagged, stats.recovered, stats.attempts, stats.awaiting_approval) == (1, 0, 3, 1)
    assert h.net_base() == D("0.5")
    assert [s for s, _ in h.journal.recovery_steps("opp1")][-1] == "manual_approval"
    h.check_journal_accounts_for_every_order()


def test_client_order_ids_fit_both_venues_and_are_deterministic() -> None:
    long_id = "spot_spot:BTC/USDT:gateio->mexc:1732560000123456789"
    first, again = client_order_id(long_id, "b"), client_order_id(long_id, "b")
    assert first == again and len(first) <= 28 and re.fullmatch(r"[A-Za-z0-9_-]+", first)
    assert client_order_id(long_id, "s") != first
    assert client_order_id("opp1", "h12") == "opp1-h12"
    with pytest.raises(ValueError):
        client_order_id("opp1", "toolong")


def test_results_are_msgspec_encodable(tmp_path: Path) -> None:
    h = Harness(tmp_path, *venues(sell_script=(Step(fraction=D("0.5")),)))
    result = h.run(opportunity())
    decoded = msgspec.json.decode(msgspec.json.encode(result), type=ExecutionResult)
    assert decoded == result


# --- end to end: the real connectors against the simulated Gate.io and MEXC spot venues over loopback ---


async def _simulated_execution(fault: OrderFaultKind | None) -> tuple[ExecutionResult, D, D]:
    async with simulated_venues(moving=False) as sim:
        gate, mexc = sim.connector(ExchangeName.GATEIO), sim.connector(ExchangeName.MEXC)
        try:
            exchanges = {ExchangeName.GATEIO: gate, ExchangeName.MEXC: mexc}
            instruments = {name: await connector.instruments() for name, connector in exchanges.items()}
            # Buy at Gate's best ask, sell at MEXC's best bid: the exactness of PnL is what is tested.
            gate_engine = sim.venues["gateio"].exchanges[ExchangeName.GATEIO].engine(SPOT)
            mexc_engine = sim.venues["mexc"].exchanges[ExchangeName.MEXC].engine(SPOT)
            gate_spot, mexc_spot = gate_engine.instrument, mexc_engine.instrument
            (ask_ticks, ask_lots), (bid_ticks, bid_lots) = gate_engine.snapshot(1).asks[0], mexc_engine.snapshot(1).bids[0]
            ask, bid = gate_spot.ticks_to_price(ask_ticks), mexc_spot.ticks_to_price(bid_ticks)
            quantity = min(gate_spot.lots_to_size(ask_lots), mexc_spot.lots_to_size(bid_lots))
            before = [await c.balances() for c in exchanges.values()]
            if fault is not None:
                sim.faults.fail_next_orders("mexc", fault, fill_ppm=400_000, retry_after_ms=200,
                                            category=ErrorCategory.INSUFFICIENT_BALANCE)
            with tempfile.TemporaryDirectory() as tmp:
                journal = Journal(Path(tmp) / "journal.sqlite3")
                settings = OrderSettings(query_attempts=8, backoff=Backoff(initial_s=0.05, max_s=0.2))
                recovery = RecoveryManager(exchanges, max_loss_quote=D("50"), journal=journal,
                                           order_settings=settings)
                executor = TwoLegExecutor(exchanges, instruments, recovery=recovery, journal=journal,
                                          order_settings=settings)
                opp = opportunity("sim1", buy_price=str(ask), sell_price=str(bid), quantity=str(quantity))
                result = await executor.execute(opp)
                assert journal.open_intents() == []
                journal.close()
            after = [await c.balances() for c in exchanges.values()]
            delta = {asset: sum((a[asset].total - b[asset].total for a, b in zip(after, before)), D(0))
                     for asset in ("USDT", "BTC")}
            return result, delta["USDT"], delta["BTC"]
        finally:
            await gate.close()
            await mexc.close()


def _average_buy_price(result: ExecutionResult) -> D:
    buys = [leg for leg in result.legs if leg.side.value == "buy" and leg.filled_quantity]
    (buy,) = buys
    assert buy.average_price is not None
    return buy.average_price


SIM_CASES = {
    # fault on MEXC's sell: (final state, client ids of the orders sent)
    None: (S.COMPLETED, ["sim1-b", "sim1-s"]),
    OrderFaultKind.TIMEOUT_PLACED: (S.COMPLETED, ["sim1-b", "sim1-s"]),  # resolved by query, not resent
    OrderFaultKind.RATE_LIMIT: (S.COMPLETED, ["sim1-b", "sim1-s"]),  # 429: waited 200 ms, sent again
    OrderFaultKind.PARTIAL_FILL: (S.COMPLETED, ["sim1-b", "sim1-s", "sim1-h1"]),  # 40 % filled, rest hedged
    OrderFaultKind.REJECT: (S.FAILED, ["sim1-b", "sim1-s", "sim1-u1"]),  # balance refusal: buy unwound
}


@pytest.mark.parametrize("fault", list(SIM_CASES), ids=lambda f: "clean" if f is None else f.value)
def test_end_to_end_pnl_equals_the_simulators_balance_changes(fault: OrderFaultKind | None) -> None:
    result, usdt, btc = asyncio.run(_simulated_execution(fault))
    state, orders = SIM_CASES[fault]
    assert result.final_state is state, result.error
    assert [leg.client_order_id for leg in result.legs] == orders
    # Flat: BTC moved only by the buy's fee, taken in BTC by the venue.
    assert btc == -result.legs[0].fee
    # The simulator's balances moved by exactly the fills and fees the executor accounted.
    assert result.realized_profit == usdt + btc * _average_buy_price(result)


async def _close_on_the_simulator(held_contracts: int, reduce_only: bool) -> tuple[ExecutionResult, int]:
    """Close a 5-contract long-spot hedge of Gate.io's BTC perpetual (buy it back, sell spot) while the
    venue holds ``held_contracts`` short, the rest closed by hand; the result and the contracts held after."""
    async with simulated_venues(moving=False) as sim:
        spot_connector, perp_connector = sim.connector(ExchangeName.GATEIO), sim.connector(ExchangeName.GATEIO_FUTURES)
        try:
            exchanges = {ExchangeName.GATEIO: spot_connector, ExchangeName.GATEIO_FUTURES: perp_connector}
            instruments = {name: await connector.instruments() for name, connector in exchanges.items()}
            venue = sim.venues["gateio"].exchanges[ExchangeName.GATEIO_FUTURES]
            perp_engine, spot_engine = venue.engine(PERP), sim.venues["gateio"].exchanges[ExchangeName.GATEIO].engine(SPOT)
            perp_instrument, spot_instrument = perp_engine.instrument, spot_engine.instrument
            bid = perp_instrument.ticks_to_price(perp_engine.snapshot(1).bids[0][0])
            ask = perp_instrument.ticks_to_price(perp_engine.snapshot(1).asks[0][0])
            spot_bid = spot_instrument.ticks_to_price(spot_engine.snapshot(1).bids[0][0])
            if held_contracts:
                opened = await perp_connector.place_order(OrderRequest(
                    symbol=PERP, side=OrderSide.SELL, type=OrderType.LIMIT, quantity=D(held_contracts), price=bid,
                    time_in_force=TimeInForce.IOC, client_order_id="by-hand",
                ))
                assert opened.filled_quantity == held_contracts
            contract = instruments[ExchangeName.GATEIO_FUTURES].get(PERP).contract_size
            opp = opportunity(
                "close1", buy=ExchangeName.GATEIO_FUTURES.value, sell=GATE, buy_price=str(ask), sell_price=str(spot_bid),
                quantity=str(5 * contract), kind=OpportunityType.SPOT_FUTURES_HEDGE,
            )
            with tempfile.TemporaryDirectory() as tmp:
                journal = Journal(Path(tmp) / "journal.sqlite3")
                settings = OrderSettings(query_attempts=8, backoff=Backoff(initial_s=0.05, max_s=0.2))
                recovery = RecoveryManager(exchanges, max_loss_quote=D("50"), journal=journal, order_settings=settings)
                executor = TwoLegExecutor(exchanges, instruments, recovery=recovery, journal=journal,
                                          order_settings=settings)
                result = await executor.execute(msgspec.structs.replace(opp, futures_reduce_only=reduce_only))
                assert journal.open_intents() == []
                journal.close()
            return result, venue.ledger.account(API_KEY).position(PERP).contracts
        finally:
            await spot_connector.close()
            await perp_connector.close()


@pytest.mark.parametrize("held", [0, 3])
def test_a_reduce_only_close_on_the_simulator_never_turns_the_position_around(held: int) -> None:
    """The venue holds less than the close buys back (none, or 3 of 5 contracts): the reduce-only leg
    is refused or clipped, the spot sold beyond it is bought back, and the perpetual ends flat,
    where a plain order would have opened a long position."""
    result, contracts = asyncio.run(_close_on_the_simulator(held, reduce_only=True))
    futures_leg = result.legs[0]
    assert futures_leg.filled_quantity == held
    assert result.final_state is S.FAILED and contracts == 0
    # The excess spot is bought back; with 3 held, completing the leg (reduce-only too) was tried first.
    expected = ["close1-b", "close1-s", "close1-u1"] if not held else ["close1-b", "close1-s", "close1-h1", "close1-u2"]
    assert [leg.client_order_id for leg in result.legs] == expected
    plain, plain_contracts = asyncio.run(_close_on_the_simulator(held, reduce_only=False))
    assert plain.final_state is S.COMPLETED and plain_contracts == 5 - held


# -- plan against the plain Decimal route ---------------------------------------------------


def decimal_route_plan(buy: Instrument, sell: Instrument, opp: ArbitrageOpportunity) -> list[tuple[str, str, str]]:
    """The legs' (size, limit price, client id) computed with Decimal arithmetic only, step by step."""
    a, b = buy.lot_size * buy.contract_size, sell.lot_size * sell.contract_size
    exponent = min(int(a.normalize().as_tuple().exponent), int(b.normalize().as_tuple().exponent), 0)
    step = D(math.lcm(int(a.scaleb(-exponent)), int(b.scaleb(-exponent)))).scaleb(exponent).normalize()
    with localcontext() as exact:  # floored exactly: no digit of the quantity is rounded first
        exact.prec = 200
        quantity = (opp.max_quantity / step).to_integral_value(rounding=ROUND_FLOOR) * step
    if quantity <= 0:
        raise ValueError("below one common lot")
    legs = []
    for side, instrument, price in ((OrderSide.BUY, buy, opp.buy_price), (OrderSide.SELL, sell, opp.sell_price)):
        with localcontext() as ctx:
            ctx.prec = 60
            in_order_unit = (quantity / instrument.contract_size).normalize()
        size = instrument.lots_to_size(instrument.size_to_lots(in_order_unit))
        ticks = (price / instrument.tick_size).to_integral_value(
            rounding=ROUND_CEILING if side is OrderSide.BUY else ROUND_FLOOR
        )
        limit = instrument.ticks_to_price(max(int(ticks), 1))
        if size < instrument.min_size or quantity * limit < instrument.min_notional:
            raise ValueError("below the minimums")
        legs.append((str(size), str(limit), client_order_id(opp.opportunity_id, side.value[0])))
    return legs


def grid_instrument(exchange: ExchangeName, lot: D, size_decimals: int, contract: D) -> Instrument:
    futures = exchange.is_futures
    return Instrument(
        exchange=exchange, symbol="BTC/USDT:USDT" if futures else "BTC/USDT", venue_symbol="BTC_USDT", base="BTC",
        quote="USDT", tick_size=D("0.05"), lot_size=lot, min_size=lot, min_notional=D(0), contract_size=contract,
        taker_fee=D("0.001"), maker_fee=D("0.001"), price_decimals=2, size_decimals=size_decimals,
    )


@st.composite
def grids(draw: st.DrawFn) -> tuple[D, int, D]:
    """A lot size, its decimals and a contract size: small, or of up to 45 digits."""
    size_decimals = draw(st.integers(0, 18))
    units = draw(st.one_of(st.integers(1, 10**4), st.integers(1, 10**45)))
    contract = D(draw(st.integers(1, 10**6))).scaleb(-draw(st.integers(0, 12)))
    return D(units).scaleb(-size_decimals), size_decimals, contract


quantities = st.builds(lambda units, exp: D(units).scaleb(exp), st.integers(0, 10**40), st.integers(-30, 10))


@settings(max_examples=400, deadline=None)
@given(buy=grids(), sell=grids(), max_quantity=quantities)
@example(buy=(D("0.0001"), 4, D(1)), sell=(D(1), 0, D("0.0001")), max_quantity=D("1E+30"))  # lots beyond int64
@example(  # 29 digits: floored to the common step exactly, not rounded to 28 digits first
    buy=(D("1.234567890123"), 12, D(1)), sell=(D("1.234567890123"), 12, D(1)),
    max_quantity=D("123456789012299998.765432109877"),
)
@example(buy=(D("0.0001"), 4, D(1)), sell=(D(1), 0, D("0.0001")), max_quantity=D("Infinity"))  # not finite
@example(  # lots of 42 digits: the Decimal route rounds the size (61 digits) and refuses it
    buy=(D(5**60), 0, D(2**60)), sell=(D(5**60), 0, D(2**60)), max_quantity=D("1234567890123456789E+60"),
)
def test_plan_takes_the_decimal_routes_sizes(buy: tuple[D, int, D], sell: tuple[D, int, D], max_quantity: D) -> None:
    """The plan gives the step-by-step Decimal route's sizes, prices and client ids, or its refusal."""
    spot_leg = grid_instrument(ExchangeName.GATEIO, *buy)
    perp_leg = grid_instrument(ExchangeName.MEXC_FUTURES, *sell)
    opp = msgspec.structs.replace(
        opportunity(buy=GATE, sell=MEXC_PERP, kind=OpportunityType.SPOT_FUTURES_HEDGE), max_quantity=max_quantity
    )
    venues_ = {m.exchange: InstrumentCatalog(m.exchange, [m]) for m in (spot_leg, perp_leg)}
    executor = TwoLegExecutor({}, venues_, recovery=RecoveryManager({}, max_loss_quote=D(1)))
    try:
        expected: object = decimal_route_plan(spot_leg, perp_leg, opp)
    except (ArithmeticError, InstrumentError) as exc:
        expected = (type(exc), str(exc))
    except ValueError:  # the plan's own refusals, which it words as OrderExecutionError
        expected = ValueError
    try:
        legs = executor.plan(opp)
    except OrderExecutionError:
        assert expected is ValueError
        return
    except (ArithmeticError, InstrumentError) as exc:  # the same refusal, word for word
        assert expected == (type(exc), str(exc))
        return
    assert [(str(p.request.quantity), str(p.request.price), p.request.client_order_id) for p in legs] == expected


class UnreachableOnce(FakeExchange):
    """A market whose first order finds no connection to its venue: it never left the process."""

    async def place_order(self, request: OrderRequest) -> OrderState:
        if not self.placed:
            self.placed.append(request)
            raise ExchangeConnectionError(
                self.exchange.value, "POST /api/v3/order: cannot connect", category=ErrorCategory.NOT_SENT
            )
        return await super().place_order(request)


def test_a_leg_that_never_left_the_process_is_known_unfilled_and_recovered_at_once(tmp_path: Path) -> None:
    """A venue that cannot be reached took nothing: the leg is settled as not filled without a query,
    and recovery hedges the other leg's fill rather than leaving it to an operator."""
    sell = UnreachableOnce(spot(ExchangeName.MEXC))
    h = Harness(tmp_path, FakeExchange(spot(ExchangeName.GATEIO)), sell)
    result = h.run(opportunity())
    assert result.legs[1].filled_quantity == 0 and result.legs[1].error_category == "not_sent"
    assert h.sell.queries == []  # nothing to ask about
    assert result.final_state is S.COMPLETED and not (result.error or "").startswith("requires manual approval")
    assert h.net_base() == 0
    h.check_journal_accounts_for_every_order()


class FoundByItsTextForAMinute(FakeExchange):
    """Gate.io futures as it finds orders: by their text only for 60 s after they end. The first
    order's answer is lost; its request lands 4.8 s after it was sent and fills at once."""

    order_acceptance_s = 65.0  # the order's deadline plus the clock window before the clock is read
    client_id_lookup_s = 60.0

    def __init__(self, instrument: Instrument, time: FakeTime) -> None:
        super().__init__(instrument)
        self.time = time
        self.landed: tuple[int, OrderState] | None = None
        self.asked_at_s: list[float] = []

    async def place_order(self, request: OrderRequest) -> OrderState:
        if self.placed:
            return await super().place_order(request)
        self.placed.append(request)
        self.landed = (self.time.clock() + int(4.8e9), self._execute(request, D(1)))
        raise ExchangeError(self.exchange.value, "timed out", category=ErrorCategory.OUTCOME_UNKNOWN)

    async def query_order(
        self, symbol: str, *, order_id: str | None = None, client_order_id: str | None = None,
        sent_at_ms: int | None = None,
    ) -> OrderState:
        now = self.time.clock()
        self.asked_at_s.append(now / 1e9)
        if self.landed is not None and client_order_id == self.landed[1].client_order_id:
            landed_ns, state = self.landed
            if landed_ns <= now:
                self.orders[state.client_order_id] = state  # the venue has it, found or not
            if landed_ns <= now <= landed_ns + 60 * 10**9:
                return state
            raise OrderRejectedError(self.exchange.value, "ORDER_NOT_FOUND", category=ErrorCategory.UNKNOWN_ORDER)
        return await super().query_order(symbol, order_id=order_id, client_order_id=client_order_id)


def test_an_order_found_by_its_client_id_only_for_a_while_is_asked_about_within_that_while(tmp_path: Path) -> None:
    """Asked about only before it landed and once the venue could no longer take it (65 s after it
    was sent), the order above was past its 60 s lookup window: "not found" would have counted it
    as never placed and its fill would never have been recovered. Asking at least twice a window
    finds it."""
    sell = FoundByItsTextForAMinute(spot(ExchangeName.MEXC), FakeTime())
    h = Harness(tmp_path, FakeExchange(spot(ExchangeName.GATEIO)), sell)
    sell.time = h.time  # lands by the executor's clock
    result = h.run(opportunity())
    assert result.legs[1].filled_quantity == D("0.5") and result.final_state is S.COMPLETED
    assert any(4.8 <= t <= 64.8 for t in sell.asked_at_s[1:])  # a query found it inside its window
    assert h.net_base() == 0


def test_an_order_still_not_found_when_the_queries_run_out_is_unknown_not_never_placed() -> None:
    """With the venue taking a request far longer than it finds an ended one (a local clock minutes
    ahead before the clock is read), the queries stop before it could no longer land: what they
    did not find may still come, so the leg is of unknown outcome, not settled unfilled."""
    sell = FakeExchange(spot(ExchangeName.MEXC), [Step(kind="vanish")])
    sell.order_acceptance_s = 400.0  # type: ignore[misc]
    sell.client_id_lookup_s = 60.0
    time = FakeTime()
    runner = OrderRunner({sell.exchange: sell}, clock=time.clock, sleep=time.sleep,
                         settings=OrderSettings(query_attempts=4))
    request = ioc_order(sell.instrument, OrderSide.SELL, D("0.5"), D("100"), "opp1-s")
    outcome = asyncio.run(runner.run(sell.exchange, sell.instrument, request, "sell"))
    assert not outcome.resolved and outcome.category == ErrorCategory.OUTCOME_UNKNOWN
    assert sum(time.sleeps) < 400  # gave up before the venue could no longer take it, and says so
