"""The executor's own cost: ``TwoLegExecutor.execute`` against instant in-memory venues, median per opportunity.

The baseline in the group sends the same two prebuilt orders with ``asyncio.gather`` straight
to the same venues, so the difference is what planning, the state machine, outcome handling,
exact PnL and the result cost. A second group adds the SQLite journal (``synchronous=NORMAL``):
three commits per opportunity (both intents, then each order's answer with its fill and
closing event).

Group ``plan``: ``TwoLegExecutor.plan`` (instrument lookup, the common lot step, sizes and
limit prices on each market's grid, client ids) against building the same two requests from
precomputed values, the part no plan can skip.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from decimal import Decimal as D
from pathlib import Path

import pytest
from fakevenue import FakeExchange, catalogs, spot

from arb.exchanges.models import OrderRequest, OrderType, TimeInForce
from arb.execution import TwoLegExecutor
from arb.journal import Journal
from arb.recovery import RecoveryManager
from arb.types import ArbitrageOpportunity, ArbitrageState, ExchangeName, OpportunityType, OrderSide

ROUNDS = 2000
EXPECTED_PROFIT = D("0.5") * D("60010.50") - D("0.5") * D("60000.10") - D("0.0005") * D("60000.10") - D("30.00525")


def opportunities() -> Iterator[ArbitrageOpportunity]:
    for n in itertools.count():
        yield ArbitrageOpportunity(
            opportunity_id=f"bench{n}", opportunity_type=OpportunityType.SPOT_SPOT, symbol="BTC/USDT",
            buy_exchange=ExchangeName.GATEIO, sell_exchange=ExchangeName.MEXC, buy_price=D("60000.10"),
            sell_price=D("60010.50"), max_quantity=D("0.5"), profit_per_unit=D("10.40"),
            total_profit_estimate=D("5.20"), profit_margin_bps=D("1.7"), detected_at=0,
        )


def requests() -> Iterator[tuple[OrderRequest, OrderRequest]]:
    for n in itertools.count():
        yield tuple(  # type: ignore[misc]
            OrderRequest(symbol="BTC/USDT", side=side, type=OrderType.LIMIT, quantity=D("0.5"), price=D(price),
                         time_in_force=TimeInForce.IOC, client_order_id=f"base{n}-{side.value[0]}")
            for side, price in ((OrderSide.BUY, "60000.10"), (OrderSide.SELL, "60010.50"))
        )


def executor(journal: Journal | None) -> tuple[TwoLegExecutor, FakeExchange, FakeExchange]:
    buy, sell = FakeExchange(spot(ExchangeName.GATEIO)), FakeExchange(spot(ExchangeName.MEXC))
    venues = {buy.exchange: buy, sell.exchange: sell}
    recovery = RecoveryManager(venues, max_loss_quote=D(10), journal=journal)
    return TwoLegExecutor(venues, catalogs(buy, sell), recovery=recovery, journal=journal), buy, sell


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.mark.benchmark(group="execute")
def test_baseline_two_orders_gathered(benchmark, loop: asyncio.AbstractEventLoop) -> None:  # type: ignore[no-untyped-def]
    _, buy, sell = executor(None)
    pairs = requests()
    run = loop.run_until_complete

    async def send(pair: tuple[OrderRequest, OrderRequest]) -> None:
        await asyncio.gather(buy.place_order(pair[0]), sell.place_order(pair[1]))

    benchmark.pedantic(lambda: run(send(next(pairs))), rounds=ROUNDS, warmup_rounds=50)
    # Every pair sent (with --benchmark-disable pedantic runs the body once, without warm-up).
    assert buy.net_base() + sell.net_base() == 0 and len(buy.placed) == len(sell.placed) >= 1


@pytest.mark.benchmark(group="execute")
def test_execute(benchmark, loop: asyncio.AbstractEventLoop) -> None:  # type: ignore[no-untyped-def]
    engine, buy, sell = executor(None)
    opps, execute, run = opportunities(), engine.execute, loop.run_until_complete
    result = benchmark.pedantic(lambda: run(execute(next(opps))), rounds=ROUNDS, warmup_rounds=50)
    assert result.final_state is ArbitrageState.COMPLETED and result.realized_profit == EXPECTED_PROFIT
    assert buy.net_base() + sell.net_base() == 0


@pytest.mark.benchmark(group="plan")
def test_baseline_requests_built(benchmark) -> None:  # type: ignore[no-untyped-def]
    pairs = requests()
    result = benchmark.pedantic(lambda: next(pairs), rounds=ROUNDS, warmup_rounds=50)
    assert [r.quantity for r in result] == [D("0.5"), D("0.5")]


@pytest.mark.benchmark(group="plan")
def test_plan(benchmark) -> None:  # type: ignore[no-untyped-def]
    engine, _, _ = executor(None)
    opps, plan = opportunities(), engine.plan
    buy, sell = benchmark.pedantic(lambda: plan(next(opps)), rounds=ROUNDS, warmup_rounds=50)
    assert (buy.request.quantity, buy.request.price, sell.request.quantity, sell.request.price) == (
        D("0.5"), D("60000.10"), D("0.5"), D("60010.50")
    )


@pytest.mark.benchmark(group="execute-journal")
def test_execute_with_journal(benchmark, loop: asyncio.AbstractEventLoop, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    journal = Journal(tmp_path / "journal.sqlite3", synchronous="NORMAL")
    engine, _, _ = executor(journal)
    opps, execute, run = opportunities(), engine.execute, loop.run_until_complete
    result = benchmark.pedantic(lambda: run(execute(next(opps))), rounds=ROUNDS // 4, warmup_rounds=10)
    assert result.final_state is ArbitrageState.COMPLETED and result.realized_profit == EXPECTED_PROFIT
    assert journal.open_intents() == []
    journal.close()
