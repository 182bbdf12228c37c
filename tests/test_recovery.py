"""Recovery manager: hedge/unwind within the loss bound, backoff, flags, statistics, start-up resolution."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from pathlib import Path

import msgspec
import pytest
from fakevenue import FakeExchange, FakeTime, HeldBudget, Step, spot

from arb.errors import ExchangeConnectionError, ExchangeError, RecoveryError
from arb.exchanges.errors import ErrorCategory
from arb.exchanges.models import OrderRequest, OrderState, OrderStatus, OrderType, TimeInForce
from arb.journal import IntentRecord, Journal, JournalError
from arb.orders import Backoff, OrderOutcome, OrderSettings
from arb.recovery import RATE_LIMIT_PAUSE_S, RecoveryManager, RecoveryStatus, Residual, order_resolver
from arb.types import ExchangeName, OrderSide

GATE, MEXC = ExchangeName.GATEIO, ExchangeName.MEXC


def leg(venue: FakeExchange, side: OrderSide, quantity: str, filled: str, price: str, **extra: object) -> OrderOutcome:
    """An executed leg as the executor hands it over (fee-free to keep the arithmetic visible)."""
    tag = "b" if side is OrderSide.BUY else "s"
    request = OrderRequest(
        symbol="BTC/USDT", side=side, type=OrderType.LIMIT, quantity=D(quantity), price=D(price),
        time_in_force=TimeInForce.IOC, client_order_id=f"opp1-{tag}",
    )
    state = OrderState(
        symbol="BTC/USDT", order_id=f"{tag}1", client_order_id=request.client_order_id, side=side,
        type=OrderType.LIMIT, status=OrderStatus.EXPIRED, quantity=D(quantity), price=D(price),
        filled_quantity=D(filled), average_price=D(price) if D(filled) else None,
    )
    fields: dict[str, object] = dict(exchange=venue.exchange, instrument=venue.instrument, request=request, leg=tag,
                                     state=state)
    fields.update(extra)
    return OrderOutcome(**fields)  # type: ignore[arg-type]


def manager(*venues: FakeExchange, max_loss: str = "20", attempts: int = 4, journal: Journal | None = None
            ) -> tuple[RecoveryManager, FakeTime]:
    time = FakeTime()
    return RecoveryManager(
        {v.exchange: v for v in venues}, max_loss_quote=D(max_loss), max_attempts=attempts,
        backoff=Backoff(initial_s=0.1, factor=2.0, max_s=0.3), clock=time.clock, sleep=time.sleep, journal=journal,
        order_settings=OrderSettings(query_attempts=3),
    ), time


def fee_free(exchange: ExchangeName, **overrides: object) -> FakeExchange:
    return FakeExchange(spot(exchange, taker_fee=D(0), **overrides))


def test_hedge_sells_the_missing_quantity_at_the_loss_bounded_price() -> None:
    buy, sell = fee_free(GATE), fee_free(MEXC)
    sell.touch = (D("99.50"), D("99.60"))
    recovery, _ = manager(buy, sell, max_loss="2")
    residual = Residual(opportunity_id="opp1", buy=leg(buy, OrderSide.BUY, "10", "10", "100"),
                        sell=leg(sell, OrderSide.SELL, "10", "6", "101"))
    outcome = asyncio.run(recovery.recover(residual))
    assert outcome.recovered and not outcome.requires_manual_approval and outcome.residual_quantity == 0
    (hedge,) = sell.placed
    # 4 bought at 100 closed within 2 quote: sell at >= 100 - 2/4 = 99.50.
    assert (hedge.side, hedge.quantity, hedge.price) == (OrderSide.SELL, D("4"), D("99.50"))
    assert outcome.cost == D("2.00") and outcome.hedged_base == D(4) and outcome.unwound_base == 0
    stats = recovery.get_recovery_statistics()
    assert (stats.recoveries, stats.recovered, stats.attempts, stats.total_recovery_cost) == (1, 1, 1, D("2.00"))
    assert recovery.get_active_recoveries() == []


def test_short_residual_buys_at_a_price_capped_by_the_bound_and_fee() -> None:
    buy, sell = FakeExchange(spot(GATE)), FakeExchange(spot(MEXC))
    recovery, _ = manager(buy, sell, max_loss="1")
    residual = Residual(opportunity_id="opp1", buy=leg(buy, OrderSide.BUY, "1", "0", "100"),
                        sell=leg(sell, OrderSide.SELL, "1", "1", "101"))
    outcome = asyncio.run(recovery.recover(residual))
    assert outcome.recovered
    (hedge,) = buy.placed[:1]
    # 1 sold at 101, bought back within 1 with a 0.1 % fee: price <= (101 + 1) / 1.001 = 101.898..., floored.
    assert hedge.side is OrderSide.BUY and hedge.price == D("101.89")
    assert outcome.cost <= D(1)


def test_alternates_hedge_and_unwind_with_backoff_until_flat() -> None:
    buy, sell = fee_free(GATE), fee_free(MEXC)
    sell.touch = (D("90"), D("91"))  # the hedge venue's bid is out of the bound: no fill there
    recovery, time = manager(buy, sell, max_loss="5")
    residual = Residual(opportunity_id="opp1", buy=leg(buy, OrderSide.BUY, "10", "10", "100"),
                        sell=leg(sell, OrderSide.SELL, "10", "0", "101"))
    outcome = asyncio.run(recovery.recover(residual))
    assert outcome.recovered and outcome.unwound_base == D(10) and outcome.hedged_base == 0
    assert [o.request.client_order_id for o in outcome.orders] == ["opp1-h1", "opp1-u2"]
    assert time.sleeps == [0.1]  # one backoff before the second attempt
    assert buy.net_base() == -10  # the unwind sold the 10 the (pre-existing) buy leg holds


def test_a_venue_that_closes_the_whole_residual_goes_before_one_that_would_leave_dust() -> None:
    """The first attempt went to the leg's own venue whatever its lot: Gate.io's 0.0001 took 0.0040
    of a 0.00408 residual, and the 0.00008 left was below every venue's minimum order (flagged for
    an operator) where MEXC's 0.00001 lot could have unwound all of it in one order."""
    buy = fee_free(GATE)
    sell = fee_free(MEXC, lot_size=D("0.00001"), min_size=D("0.00001"), size_decimals=5)
    recovery, _ = manager(buy, sell)
    residual = Residual(opportunity_id="opp1", buy=leg(buy, OrderSide.BUY, "0.0331", "0", "3000"),
                        sell=leg(sell, OrderSide.SELL, "0.03310", "0.00408", "3001"))
    outcome = asyncio.run(recovery.recover(residual))
    assert outcome.recovered and not outcome.requires_manual_approval
    assert [(o.exchange, o.request.side, o.filled) for o in outcome.orders] == [(MEXC, OrderSide.BUY, D("0.00408"))]
    assert outcome.unwound_base == D("0.00408") and not buy.placed


def test_the_leg_is_completed_first_where_the_other_venue_can_close_what_its_lot_leaves() -> None:
    """Completing the short leg keeps the arbitrage; unwinding gives it up, paying spread and fees on
    the whole size. Only a remainder no venue could close sends the whole residual elsewhere."""
    buy = fee_free(GATE)
    sell = fee_free(MEXC, lot_size=D("0.00001"), min_size=D("0.00001"), size_decimals=5, min_notional=D("0.1"))
    recovery, _ = manager(buy, sell)
    residual = Residual(opportunity_id="opp1", buy=leg(buy, OrderSide.BUY, "1.0001", "0", "3000"),
                        sell=leg(sell, OrderSide.SELL, "1.00005", "1.00005", "3001"))
    outcome = asyncio.run(recovery.recover(residual))
    assert outcome.recovered and not outcome.requires_manual_approval
    assert [(o.exchange, o.request.client_order_id[-2:], o.filled) for o in outcome.orders] == [
        (GATE, "h1", D("1.0000")), (MEXC, "u2", D("0.00005"))
    ]


def test_whether_the_other_venue_can_close_the_remainder_counts_the_fee_an_unwind_keeps() -> None:
    """After a refused unwind an unwind sells back what the buy left (its base fee kept): the other
    venue's remainder is that much smaller, and 0.00007 ETH is under MEXC's 0.22 USDT minimum where
    0.00008 was not, so completing on Gate.io (lot 0.0001) would leave dust no venue closes."""
    from arb.recovery import RecoveryAction

    gate = fee_free(GATE)
    mexc = fee_free(MEXC, lot_size=D("0.00001"), min_size=D("0.00001"), size_decimals=5, min_notional=D("0.22"))
    recovery, _ = manager(gate, mexc)
    venues = [(RecoveryAction.HEDGE, GATE, gate.instrument), (RecoveryAction.UNWIND, MEXC, mexc.instrument)]
    pick = recovery._pick(venues, 0, OrderSide.BUY, D("0.00418"), D(3000), D(100), D("0.00001"), {}, D("0.00001"))
    assert pick is not None and (pick[0], pick[1], pick[3]) == (RecoveryAction.UNWIND, MEXC, D("0.00417"))
    without_fee = recovery._pick(venues, 0, OrderSide.BUY, D("0.00418"), D(3000), D(100), D(0), {}, D("0.00001"))
    assert without_fee is not None and (without_fee[1], without_fee[3]) == (GATE, D("0.0041"))  # 0.00008 closes on MEXC


def test_unresolved_leg_is_queried_again_before_acting() -> None:
    buy, sell = fee_free(GATE), fee_free(MEXC)
    sell.orders["opp1-s"] = leg(sell, OrderSide.SELL, "10", "10", "101").state  # type: ignore[assignment]
    recovery, _ = manager(buy, sell)
    unknown = leg(sell, OrderSide.SELL, "10", "0", "101", state=None, resolved=False,
                  category=ErrorCategory.OUTCOME_UNKNOWN)
    residual = Residual(opportunity_id="opp1", buy=leg(buy, OrderSide.BUY, "10", "10", "100"), sell=unknown)
    outcome = asyncio.run(recovery.recover(residual))
    assert outcome.recovered and outcome.orders == () and outcome.sell.filled == D(10)
    assert sell.queries == ["opp1-s"] and not sell.placed


def test_a_recovery_cut_short_by_an_unforeseen_failure_flags_what_it_left_open() -> None:
    """The hedge sold 4 of the 10 the buy left unmatched, then the next attempt failed in a way
    nothing foresaw: the flag carries that hedge and the 6 still open, not the 10 it started with."""
    buy, sell = fee_free(GATE), FakeExchange(spot(MEXC, taker_fee=D(0)), [Step(fraction=D("0.4"))])
    recovery, _ = manager(buy, sell)
    run = recovery.orders.run
    calls = 0

    async def second_call_fails(*args: object, **kwargs: object) -> OrderOutcome:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("disk gone")
        return await run(*args, **kwargs)  # type: ignore[arg-type]

    recovery.orders.run = second_call_fails  # type: ignore[method-assign]
    residual = Residual(opportunity_id="opp1", buy=leg(buy, OrderSide.BUY, "10", "10", "100"),
                        sell=leg(sell, OrderSide.SELL, "10", "0", "101"))
    outcome = asyncio.run(recovery.recover(residual))
    assert outcome.requires_manual_approval and outcome.reason == "recovery failed: disk gone"
    assert [o.request.client_order_id for o in outcome.orders] == ["opp1-h1"] and outcome.orders[0].filled == D(4)
    assert outcome.residual_quantity == D(6)
    (active,) = recovery.get_active_recoveries()
    assert active.residual_quantity == D(6)


def test_residual_within_one_lot_needs_no_order() -> None:
    buy, sell = fee_free(GATE), fee_free(MEXC)
    recovery, _ = manager(buy, sell)
    sell_leg = leg(sell, OrderSide.SELL, "1", "1", "101")
    buy_leg = leg(buy, OrderSide.BUY, "1", "1", "100")
    outcome = asyncio.run(recovery.recover(Residual(opportunity_id="opp1", buy=buy_leg, sell=sell_leg)))
    assert outcome.recovered and outcome.orders == () and not buy.placed and not sell.placed


def test_residual_below_every_minimum_order_is_flagged(tmp_path: Path) -> None:
    buy, sell = fee_free(GATE, min_size=D("0.01")), fee_free(MEXC, min_size=D("0.01"))
    journal = Journal(tmp_path / "j.sqlite3")
    recovery, _ = manager(buy, sell, journal=journal)
    residual = Residual(opportunity_id="opp1", buy=leg(buy, OrderSide.BUY, "1", "1", "100"),
                        sell=leg(sell, OrderSide.SELL, "1", "0.995", "101"))
    outcome = asyncio.run(recovery.recover(residual))
    assert outcome.requires_manual_approval and not outcome.recovered
    assert outcome.residual_quantity == D("0.005") and "below the minimum order" in outcome.reason
    (active,) = recovery.get_active_recoveries()
    assert active.status is RecoveryStatus.AWAITING_APPROVAL and active.residual_quantity == D("0.005")
    assert recovery.acknowledge("opp1").opportunity_id == "opp1"
    assert recovery.get_active_recoveries() == []
    with pytest.raises(RecoveryError, match="nothing awaits approval"):
        recovery.acknowledge("opp1")
    assert [step for step, _ in journal.recovery_steps("opp1")] == ["start", "manual_approval", "acknowledged"]


@pytest.mark.parametrize("refused", ["hedge", "leg"])
def test_a_residual_left_below_the_minimum_where_a_venue_refused_says_which_refused_and_why(refused: str) -> None:
    """MEXC refuses the order that would complete the sell (or refused the sell leg itself), and Gate.io's
    minimum order is above the residual. The reason said "every venue that could close it": MEXC's
    refusal was only in the log."""
    buy = fee_free(GATE, min_size=D("0.1"))
    sell = FakeExchange(spot(MEXC, taker_fee=D(0)), [Step(kind="reject")] if refused == "hedge" else [])
    recovery, _ = manager(buy, sell)
    if refused == "hedge":
        buy_leg, sell_leg = leg(buy, OrderSide.BUY, "1", "1", "100"), leg(sell, OrderSide.SELL, "1", "0.95", "101")
    else:
        buy_leg = leg(buy, OrderSide.BUY, "0.05", "0.05", "100")
        sell_leg = leg(sell, OrderSide.SELL, "0.05", "0", "101", state=None,
                       category=ErrorCategory.INSUFFICIENT_BALANCE, error="mexc: insufficient balance")
    outcome = asyncio.run(recovery.recover(Residual(opportunity_id="opp1", buy=buy_leg, sell=sell_leg)))
    assert outcome.requires_manual_approval and outcome.residual_quantity == D("0.05")
    assert outcome.reason.startswith("residual 0.05 is below the minimum order on gateio, the venue left (mexc refused ")
    assert ("hedge-1: " if refused == "hedge" else "the sell leg: mexc: insufficient balance") in outcome.reason
    assert len(sell.placed) == (refused == "hedge") and not buy.placed


def test_active_recovery_is_visible_while_it_runs() -> None:
    buy, sell = fee_free(GATE), fee_free(MEXC)
    recovery, _ = manager(buy, sell)
    seen: list[tuple[str, RecoveryStatus, int]] = []
    original = sell.place_order

    async def place(request: OrderRequest) -> OrderState:
        seen.extend((a.opportunity_id, a.status, recovery.get_recovery_statistics().active)
                    for a in recovery.get_active_recoveries())
        return await original(request)

    sell.place_order = place  # type: ignore[method-assign]
    residual = Residual(opportunity_id="opp1", buy=leg(buy, OrderSide.BUY, "2", "2", "100"),
                        sell=leg(sell, OrderSide.SELL, "2", "1", "101"))
    assert asyncio.run(recovery.recover(residual)).recovered
    assert seen == [("opp1", RecoveryStatus.RECOVERING, 1)]


def test_permanent_refusal_of_every_venue_is_flagged() -> None:
    buy = FakeExchange(spot(GATE, taker_fee=D(0)), [Step(kind="reject")])
    sell = fee_free(MEXC)
    recovery, _ = manager(buy, sell)
    residual = Residual(opportunity_id="opp1", buy=leg(buy, OrderSide.BUY, "2", "2", "100"),
                        sell=leg(sell, OrderSide.SELL, "2", "0", "101", state=None,
                                 category=ErrorCategory.INSUFFICIENT_BALANCE, error="balance"))
    outcome = asyncio.run(recovery.recover(residual))
    assert outcome.requires_manual_approval and "every venue refused" in outcome.reason
    assert not sell.placed and len(buy.placed) == 1


def test_a_venue_whose_order_budget_is_held_is_passed_up_at_once_for_the_other(tmp_path: Path) -> None:
    """The hedge venue's budget is held for an hour after a 429: a hedge sent there would sleep that
    long in the connector with the residual open. It is not sent (nor journaled); the unwind goes
    out at once instead."""
    buy, sell = fee_free(GATE), HeldBudget(spot(MEXC, taker_fee=D(0)))
    journal = Journal(tmp_path / "j.sqlite3")
    recovery, time = manager(buy, sell, journal=journal)
    sell.hold(time, 3600.0)
    residual = Residual(opportunity_id="opp1", buy=leg(buy, OrderSide.BUY, "10", "10", "100"),
                        sell=leg(sell, OrderSide.SELL, "10", "6", "101"))
    outcome = asyncio.run(recovery.recover(residual))
    assert outcome.recovered and outcome.unwound_base == D(4) and not sell.placed
    assert [o.request.client_order_id for o in outcome.orders] == ["opp1-u2"]
    assert time.sleeps == []  # neither the hold nor a pause was waited
    assert journal.open_intents() == []
    with pytest.raises(JournalError, match="no intent"):
        journal.intent(MEXC, "opp1-h1")
    assert recovery.get_recovery_statistics().attempts == 1


def test_a_residual_whose_venues_budgets_stay_held_is_flagged_after_half_a_minute() -> None:
    buy, sell = HeldBudget(spot(GATE, taker_fee=D(0))), HeldBudget(spot(MEXC, taker_fee=D(0)))
    recovery, time = manager(buy, sell)
    buy.hold(time, 3600.0)
    sell.hold(time, 60.0)  # a 418's default ban
    residual = Residual(opportunity_id="opp1", buy=leg(buy, OrderSide.BUY, "10", "10", "100"),
                        sell=leg(sell, OrderSide.SELL, "10", "6", "101"))
    outcome = asyncio.run(recovery.recover(residual))
    assert outcome.requires_manual_approval and outcome.reason == "rate limited for 30 s"
    assert not buy.placed and not sell.placed and outcome.residual_quantity == D(4)
    assert set(time.sleeps) == {1.0} and sum(time.sleeps) == 30.0  # a pause after each round of refusals
    (active,) = recovery.get_active_recoveries()
    assert active.status is RecoveryStatus.AWAITING_APPROVAL


class NeverSent(FakeExchange):
    """A venue no order reaches for ``for_orders`` orders: each waited past its deadline for its
    budget (or a login) and was not sent; then orders go through."""

    def __init__(self, exchange: ExchangeName, for_orders: int) -> None:
        super().__init__(spot(exchange, taker_fee=D(0)))
        self.unsent = for_orders

    async def place_order(self, request: OrderRequest) -> OrderState:
        if self.unsent:
            self.unsent -= 1
            raise ExchangeError(self.exchange.value, "POST /spot/orders: its deadline passed while it waited for "
                                "its budget; not sent", category=ErrorCategory.NOT_SENT)
        return await super().place_order(request)


def test_a_recovery_order_that_never_left_is_not_an_attempt() -> None:
    """Orders refused before they left (their deadline passed while they waited for a budget, or a
    login) were counted as attempts: a second of such refusals used up the four attempts and the
    residual was flagged, where the same trouble answered as a 429 is tried for half a minute."""
    buy, sell = NeverSent(GATE, 6), NeverSent(MEXC, 6)
    recovery, time = manager(buy, sell)
    residual = Residual(opportunity_id="opp1", buy=leg(buy, OrderSide.BUY, "10", "10", "100"),
                        sell=leg(sell, OrderSide.SELL, "10", "6", "101"))
    outcome = asyncio.run(recovery.recover(residual))
    assert outcome.recovered and outcome.residual_quantity == 0
    assert [o.category for o in outcome.orders].count(ErrorCategory.NOT_SENT) == 12
    assert time.sleeps.count(RATE_LIMIT_PAUSE_S) >= 5  # paused before going back to a venue that refused so

    buy, sell = NeverSent(GATE, 10**6), NeverSent(MEXC, 10**6)
    recovery, time = manager(buy, sell)
    residual = Residual(opportunity_id="opp2", buy=leg(buy, OrderSide.BUY, "10", "10", "100"),
                        sell=leg(sell, OrderSide.SELL, "10", "6", "101"))
    outcome = asyncio.run(recovery.recover(residual))
    assert outcome.requires_manual_approval and outcome.reason == "not sent for 30 s"


def test_a_recovery_order_whose_query_the_venue_holds_for_an_hour_is_flagged_at_once() -> None:
    """The hedge's answer was lost and the venue refused its query with a 429 asking an hour: the
    wait is not slept out, the residual is flagged with the hedge's outcome unknown."""
    buy, sell = fee_free(GATE), FakeExchange(spot(MEXC, taker_fee=D(0)), [Step(kind="lost")])
    sell.limited_queries.append(3600.0)
    recovery, time = manager(buy, sell)
    residual = Residual(opportunity_id="opp1", buy=leg(buy, OrderSide.BUY, "10", "10", "100"),
                        sell=leg(sell, OrderSide.SELL, "10", "6", "101"))
    outcome = asyncio.run(recovery.recover(residual))
    assert outcome.requires_manual_approval and outcome.reason == "recovery order hedge-1 outcome unknown"
    assert sum(time.sleeps) < 1.0 and sell.queries == ["opp1-h1"]
    (hedge,) = outcome.orders
    assert not hedge.resolved and hedge.category == ErrorCategory.OUTCOME_UNKNOWN


def test_constructor_validates_bounds() -> None:
    with pytest.raises(ValueError, match="max_loss_quote"):
        RecoveryManager({}, max_loss_quote=D(-1))
    with pytest.raises(ValueError, match="max_attempts"):
        RecoveryManager({}, max_loss_quote=D(1), max_attempts=0)
    assert [Backoff(initial_s=0.1, factor=2, max_s=0.3).delay(n) for n in range(4)] == [0.1, 0.2, 0.3, 0.3]


def test_resolver_reconciles_open_journal_intents(tmp_path: Path) -> None:
    venue = fee_free(GATE)
    journal = Journal(tmp_path / "j.sqlite3")
    placed = leg(venue, OrderSide.BUY, "2", "2", "100")
    never = leg(venue, OrderSide.SELL, "1", "0", "101")
    for outcome in (placed, never):
        journal.record_intent("opp1", outcome.leg, outcome.request, GATE)
    assert placed.state is not None
    venue.orders["opp1-b"] = placed.state  # the venue has the buy; the sell never reached it
    recovery, _ = manager(venue)
    summary = asyncio.run(journal.reconcile(recovery.resolver()))
    assert (summary.checked, summary.partially_filled + summary.filled, summary.not_found) == (2, 1, 1)
    assert journal.open_intents() == []


def test_an_acknowledged_order_the_venue_no_longer_finds_is_left_open_at_a_restart(tmp_path: Path) -> None:
    """The venue acknowledged the order, it filled, and the venue's order history then moved on: the
    restart took "no such order" by its order id as never placed, closed the intent with nothing
    filled, and the fill was missing from positions and PnL."""
    venue = fee_free(GATE)
    journal = Journal(tmp_path / "j.sqlite3")
    sent = leg(venue, OrderSide.BUY, "2", "0", "100")
    assert sent.state is not None
    journal.record_intent("opp1", sent.leg, sent.request, GATE)
    journal.record_ack(GATE, sent.request.client_order_id, msgspec.structs.replace(sent.state, status=OrderStatus.NEW))
    recovery, _ = manager(venue)  # the venue keeps no order: it forgot this one
    left: list[list[tuple[str, str | None]]] = []
    summary = asyncio.run(journal.reconcile(
        recovery.resolver(), lambda opp, left_open: left.append([(i.client_order_id, why) for i, why in left_open])
    ))
    assert (summary.not_found, summary.errors) == (0, 1)
    assert left == [[("opp1-b", "gateio: order 'opp1-b' on BTC/USDT was acknowledged as order b1, which the venue "
                      "no longer finds (its order history moved on): it may have filled")]]
    assert [i.client_order_id for i in journal.open_intents()] == ["opp1-b"]
    journal.close()


def intent(exchange: ExchangeName, client_order_id: str, *, order_id: str | None = None, age_s: int = 0) -> IntentRecord:
    """A journaled intent sent ``age_s`` before ``NOW_MS``."""
    request = OrderRequest(
        symbol="BTC/USDT", side=OrderSide.BUY, type=OrderType.LIMIT, quantity=D(1), price=D(100),
        time_in_force=TimeInForce.IOC, client_order_id=client_order_id,
    )
    return IntentRecord(
        intent_id=1, opportunity_id="x", leg="buy", exchange=exchange, request=request,
        created_at_ms=NOW_MS - age_s * 1000, order_id=order_id, filled_quantity=D(0),
    )


NOW_MS = 1_700_000_000_000


def test_resolver_raises_on_venue_failures_and_unknown_markets() -> None:
    venue = fee_free(GATE)
    venue.failing_queries = 1
    resolve = order_resolver({GATE: venue})

    def ask(exchange: ExchangeName) -> OrderState | None:
        async def query() -> OrderState | None:
            return await resolve(intent(exchange, "x-b"))

        return asyncio.run(query())

    with pytest.raises(ExchangeConnectionError):
        ask(GATE)
    assert ask(GATE) is None  # the venue answered: no such order
    with pytest.raises(ExchangeError, match="no connector"):
        ask(MEXC)


def test_resolver_asks_once_more_when_the_venue_may_still_take_a_request_sent_before_the_restart() -> None:
    """An intent written 2 s before the restart that the venue does not find may still be taken for
    the venue's acceptance time (5 s here): the resolver waits out the 3 s left and asks again, and
    finds the order that landed meanwhile. One written longer ago is answered at once."""
    venue = fee_free(GATE)
    venue.order_acceptance_s = 5.0  # type: ignore[misc]
    placed = leg(venue, OrderSide.BUY, "2", "2", "100")
    assert placed.state is not None
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        venue.orders["late-b"] = placed.state  # type: ignore[assignment]  # the held-up request lands

    resolve = order_resolver({GATE: venue}, wall_ms=lambda: NOW_MS, sleep=sleep)
    assert asyncio.run(resolve(intent(GATE, "late-b", age_s=2))) == placed.state
    assert slept == [3.0] and venue.queries == ["late-b", "late-b"]
    assert asyncio.run(resolve(intent(GATE, "gone-b", age_s=2))) is None  # asked again after the wait: absent
    assert slept == [3.0, 3.0]
    assert asyncio.run(resolve(intent(GATE, "gone-c", age_s=6))) is None and len(slept) == 2  # past it: no wait
    # Sent again for up to 1 s after its intent (rate limited), each send with its own deadline.
    resent = order_resolver({GATE: venue}, wall_ms=lambda: NOW_MS, sleep=sleep, resent_for_s=1.0)
    assert asyncio.run(resent(intent(GATE, "gone-d", age_s=2))) is None and slept[-1] == 4.0
    # An intent "from the future" (the wall clock stepped back since): no longer than the window.
    assert asyncio.run(resent(intent(GATE, "gone-e", age_s=-3600))) is None and slept[-1] == 6.0


def test_resolver_waits_out_the_window_an_earlier_run_journaled_for_its_orders() -> None:
    """The earlier run sent with a 30 s deadline, this one with 5 s: an order of the earlier run,
    not found 2 s after its intent, may still land for 28 s. Waiting this run's 3 s took it as never
    placed, and a fill landing after that was never accounted."""
    venue = fee_free(GATE)
    venue.order_acceptance_s = 5.0  # type: ignore[misc]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    resolve = order_resolver({GATE: venue}, wall_ms=lambda: NOW_MS, sleep=sleep,
                             earlier_windows_ms={GATE: 30_000, MEXC: 90_000})
    assert asyncio.run(resolve(intent(GATE, "gone-b", age_s=2))) is None and slept == [28.0]
    shorter = order_resolver({GATE: venue}, wall_ms=lambda: NOW_MS, sleep=sleep, earlier_windows_ms={GATE: 1_000})
    assert asyncio.run(shorter(intent(GATE, "gone-c", age_s=2))) is None and slept[-1] == 3.0  # this run's is longer


def test_resolver_asks_by_order_id_where_known_and_does_not_take_a_stale_client_id_as_absent() -> None:
    """Gate.io finds a finished futures order by its client id for 60 s only: an order sent
    earlier that the journal knows by client id alone may have filled, so "not found" is not an
    answer then. One whose venue order id was journaled is asked for by that id."""
    venue = fee_free(GATE)
    placed = leg(venue, OrderSide.BUY, "2", "2", "100")
    assert placed.state is not None
    venue.orders["opp1-b"] = placed.state
    resolve = order_resolver({GATE: venue}, client_id_lookup_s={GATE: 60}, wall_ms=lambda: NOW_MS)

    def ask(record: IntentRecord) -> OrderState | None:
        return asyncio.run(resolve(record))

    assert ask(intent(GATE, "opp1-b", order_id="b1", age_s=600)) == placed.state
    assert venue.queries[-1] == "order id b1"
    assert ask(intent(GATE, "gone-b", age_s=59)) is None  # within the window: the venue would know it
    with pytest.raises(ExchangeError, match="past the 60 s the venue finds a finished order by it") as unknown:
        ask(intent(GATE, "gone-b", age_s=61))
    assert unknown.value.category == ErrorCategory.OUTCOME_UNKNOWN
    with pytest.raises(ExchangeError, match="acknowledged as order nope, which the venue no longer finds") as gone:
        ask(intent(GATE, "gone-b", order_id="nope", age_s=600))  # it existed: its history moved on
    assert gone.value.category == ErrorCategory.OUTCOME_UNKNOWN
    # No window given (a venue that keeps client ids): "not found" is taken as absent.
    assert asyncio.run(order_resolver({GATE: venue})(intent(GATE, "gone-b", age_s=10**6))) is None
