"""Start-up restore from the journal: ``RiskManager.restore`` and ``HedgeBook.restore`` replay every
journaled execution, so their cost grows with the journal.

The journal holds ``EXECUTIONS`` filled executions (two orders with one fill each), every fourth
one a spot/futures hedge. Timed: each restore on its own, against reading the fills alone
(``Journal.fills``): the baseline, the floor of a replay; and both as start-up runs them, each
reading the fills as it goes (the hedges only their executions'), with the garbage collector
paused as start-up pauses it and, to compare, left automatic.

Memory (``test_startup_restore_memory``): the peak traced by ``tracemalloc`` while both restores
run as start-up runs them, against the peak of holding every fill read at once
(``Journal.fills``), which the start-up did before the restores read the fills as they went.
"""

from __future__ import annotations

import contextlib
import gc
import tracemalloc
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from fakevenue import FakeExchange, catalogs, perp, spot

from arb.collection import collection_paused
from arb.exchanges.models import Fill, OrderRequest, OrderState, OrderStatus, OrderType
from arb.hedges import HedgeBook
from arb.instruments import InstrumentCatalog
from arb.journal import Journal
from arb.risk import RiskManager
from arb.types import ExchangeName, OrderSide, RiskLimits

EXECUTIONS = 10_000
ROUNDS = 5
GATE, MEXC, GATE_PERP = ExchangeName.GATEIO, ExchangeName.MEXC, ExchangeName.GATEIO_FUTURES
LIMITS = RiskLimits(
    max_position_size_usd=Decimal(10**9), max_total_exposure_usd=Decimal(10**9), max_daily_loss_usd=Decimal(10**6),
    min_profit_margin_bps=Decimal(1), max_consecutive_failures=3, max_execution_latency_ms=500,
)


def _order(
    exchange: ExchangeName, symbol: str, leg: str, side: OrderSide, quantity: Decimal,
    price: Decimal, client_id: str,
) -> tuple[str, ExchangeName, OrderRequest, OrderState, Fill]:
    request = OrderRequest(
        symbol=symbol, side=side, type=OrderType.LIMIT, quantity=quantity, price=price, client_order_id=client_id
    )
    state = OrderState(
        symbol=symbol, order_id=client_id, client_order_id=client_id, side=side, type=OrderType.LIMIT,
        status=OrderStatus.FILLED, quantity=quantity, price=price, filled_quantity=quantity, average_price=price,
        fee=Decimal("0.01"), fee_asset="USDT",
    )
    fill = Fill(
        symbol=symbol, order_id=client_id, client_order_id=client_id, trade_id=client_id, side=side, price=price,
        quantity=quantity, fee=Decimal("0.01"), fee_asset="USDT", is_maker=False, timestamp_ms=0,
    )
    return leg, exchange, request, state, fill


@pytest.fixture(scope="module")
def journaled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Journal, dict[ExchangeName, InstrumentCatalog]]]:
    """A journal of ``EXECUTIONS`` filled executions, and the catalogs of their markets."""
    path = tmp_path_factory.mktemp("restore") / "journal.sqlite3"
    venues = (
        FakeExchange(spot(GATE)), FakeExchange(spot(MEXC, venue_symbol="BTCUSDT")),
        FakeExchange(perp(GATE_PERP, venue_symbol="BTC_USDT", contract_size=Decimal("0.0001"))),
    )
    with Journal(path, synchronous="NORMAL") as journal:
        for n in range(EXECUTIONS):
            opportunity_id = f"o{n}"
            price = Decimal(60_000 + n % 100)
            if n % 4:  # spot-spot: buy on Gate.io, sell on MEXC
                legs = [
                    _order(GATE, "BTC/USDT", "buy", OrderSide.BUY, Decimal("0.01"), price, f"{opportunity_id}-b"),
                    _order(MEXC, "BTC/USDT", "sell", OrderSide.SELL, Decimal("0.01"), price + 5,
                           f"{opportunity_id}-s"),
                ]
            else:  # a hedge: long spot, short perpetual (100 contracts of 0.0001)
                legs = [
                    _order(GATE, "BTC/USDT", "buy", OrderSide.BUY, Decimal("0.01"), price, f"{opportunity_id}-b"),
                    _order(GATE_PERP, "BTC/USDT:USDT", "sell", OrderSide.SELL, Decimal(100), price + 20,
                           f"{opportunity_id}-s"),
                ]
            journal.record_intents(opportunity_id, [
                (leg, exchange, request, Decimal("0.0001") if exchange.is_futures else Decimal(1))
                for leg, exchange, request, _, _ in legs
            ])
            for _, exchange, request, state, fill in legs:
                journal.record_result(exchange, request.client_order_id, state, [fill])
    journal = Journal(path, synchronous="NORMAL")
    yield journal, catalogs(*venues)
    journal.close()


@pytest.mark.benchmark(group="restore")
def test_read_fills(benchmark: Any, journaled: tuple[Journal, dict[ExchangeName, InstrumentCatalog]]) -> None:
    """Baseline: every journaled fill read into records."""
    journal, _ = journaled
    fills = benchmark.pedantic(journal.fills, rounds=ROUNDS, warmup_rounds=1)
    assert len(fills) == 2 * EXECUTIONS


@pytest.mark.benchmark(group="restore")
def test_risk_restore(benchmark: Any, journaled: tuple[Journal, dict[ExchangeName, InstrumentCatalog]]) -> None:
    """``RiskManager.restore``: positions, exposure and today's realized PnL."""
    journal, markets = journaled
    risk = RiskManager(LIMITS)
    restored = benchmark.pedantic(lambda: risk.restore(journal, markets), rounds=ROUNDS, warmup_rounds=1)
    assert restored.orders == 2 * EXECUTIONS and not restored.skipped


@pytest.mark.benchmark(group="restore")
def test_hedge_restore(benchmark: Any, journaled: tuple[Journal, dict[ExchangeName, InstrumentCatalog]]) -> None:
    """``HedgeBook.restore``: the open spot/futures hedges."""
    journal, markets = journaled
    book = HedgeBook(markets, min_profit_bps=Decimal(1))
    positions = benchmark.pedantic(book.restore, args=(journal,), rounds=ROUNDS, warmup_rounds=1)
    [position] = positions
    assert position.base == Decimal("0.01") * (EXECUTIONS // 4)


@pytest.mark.benchmark(group="restore")
@pytest.mark.parametrize("collection", ["automatic", "paused"])
def test_startup_restore(
    benchmark: Any, journaled: tuple[Journal, dict[ExchangeName, InstrumentCatalog]], collection: str
) -> None:
    """Both restores as the controller runs them at start-up: one read of the fills, shared, with
    automatic garbage collection paused (``collection_paused``); ``automatic``: the same with it on."""
    journal, markets = journaled
    book, risk = HedgeBook(markets, min_profit_bps=Decimal(1)), RiskManager(LIMITS)

    def restore() -> int:
        with collection_paused() if collection == "paused" else contextlib.nullcontext():
            book.restore(journal)
            return risk.restore(journal, markets, held_basis_by_day=book.restored_basis_by_day).orders

    assert benchmark.pedantic(restore, rounds=ROUNDS, warmup_rounds=1) == 2 * EXECUTIONS


@pytest.mark.benchmark(group="restore-memory")
def test_startup_restore_memory(benchmark: Any, journaled: tuple[Journal, dict[ExchangeName, InstrumentCatalog]]) -> None:
    """Peak memory of both restores as start-up runs them, against every fill read into one list."""
    journal, markets = journaled

    def peak(action: Any) -> int:
        gc.collect()
        tracemalloc.start()
        try:
            with collection_paused():
                action()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    def restore() -> None:
        book, risk = HedgeBook(markets, min_profit_bps=Decimal(1)), RiskManager(LIMITS)
        book.restore(journal)
        assert risk.restore(journal, markets, held_basis_by_day=book.restored_basis_by_day).orders == 2 * EXECUTIONS

    restored = benchmark.pedantic(lambda: peak(restore), rounds=1, iterations=1)
    listed = peak(journal.fills)
    print(f"\nstart-up restore of {EXECUTIONS} executions: peak {restored / 1e6:.1f} MB ({restored / EXECUTIONS:.0f} B "
          f"per execution); every fill read into one list: {listed / 1e6:.1f} MB ({listed / EXECUTIONS:.0f} B)")
    benchmark.extra_info.update(peak_bytes=restored, listed_fills_peak_bytes=listed,
                                bytes_per_execution=restored / EXECUTIONS)
