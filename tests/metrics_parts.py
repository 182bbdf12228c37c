"""Engine parts with known state for the metrics and deployment tests: real monitor, risk,
balances, scanner pipeline (one market halted) and book synchroniser (Gate.io wire format),
fake connectors and recovery."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from decimal import Decimal

from loopback import GateSpotTestDialect, RecordingSink, gate_snapshot, gate_update

from arb.balances import BalanceMonitor
from arb.exchanges.book_sync import BookSpec, BookSync
from arb.exchanges.models import Balance, ConnectionHealth, Fill
from arb.exchanges.private_stream import PrivateStreamStats
from arb.metrics import EngineParts
from arb.monitor import PerformanceMonitor, Stage
from arb.pipeline import ScannerPipeline
from arb.recovery import RecoveryStatistics
from arb.risk import FuturesHolding, RiskManager
from arb.sim.cluster import default_instruments
from arb.types import ArbitrageState, ExchangeName, ExecutionLeg, ExecutionResult, OrderSide, RiskLimits
from arb_core.book import OrderBook
from arb_core.wire.common import WireScale

GATE = ExchangeName.GATEIO
MEXC = ExchangeName.MEXC
SCALE = WireScale(2, 1, 4, 1)
BOOK = ([("100.00", "1")], [("101.00", "1")])
NOW_NS = 1_000_000_000_000


class FakeConnector:
    """A connector as the collector sees it: health and the book synchroniser."""

    def __init__(
        self, venue: str, sync: BookSync | None, *, connected: bool = True, clock_skew: float | None = -12.5,
        private: bool | None = None, private_stats: PrivateStreamStats | None = None,
    ) -> None:
        self.venue = venue
        self.sync = sync
        self.connected = connected
        self.clock_skew = clock_skew
        self.private = private
        self.stats = private_stats

    def health(self) -> ConnectionHealth:
        return ConnectionHealth(
            venue=self.venue, url="ws://127.0.0.1:1/", connected=self.connected, connects=2, reconnects=1,
            messages=42, last_message_age_ns=250_000_000, errors={"connect": 1},
        )

    def book_sync(self) -> BookSync | None:
        return self.sync

    def private_subscribed(self) -> bool | None:
        return self.private

    def private_stats(self) -> PrivateStreamStats | None:
        return self.stats


class FakeRecovery:
    def get_recovery_statistics(self) -> RecoveryStatistics:
        return RecoveryStatistics(
            recoveries=3, attempts=5, recovered=2, flagged=1, total_recovery_cost=Decimal("1.25"), active=0,
            awaiting_approval=1,
        )


class StaticBalances:
    def __init__(self, balances: Mapping[str, Balance]) -> None:
        self._balances = balances

    async def balances(self) -> Mapping[str, Balance]:
        return self._balances


def feed(sync: BookSync, frame: bytes, recv_ns: int = NOW_NS) -> None:
    sync.on_message(memoryview(frame), False, True, recv_ns)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def gate_sync() -> BookSync:
    """AAA in sync (3 applied, 1 ignored, one gap resync then resynced); BBB never synced; one frame
    of each kind that reaches no book (unroutable, unknown symbol, the venue's error) and another unroutable,
    the unroutable ones before any book was in sync."""

    async def fetch(venue_symbol: str) -> bytes:
        return gate_snapshot(9, *BOOK)

    specs = [BookSpec("AAA/USDT", "AAA_USDT", SCALE), BookSpec("BBB/USDT", "BBB_USDT", SCALE)]
    sync = BookSync(GATE, GateSpotTestDialect(), specs, RecordingSink(), fetch_snapshot=fetch)  # type: ignore[arg-type]
    # before any book is in sync: an unroutable frame resyncs every in-sync book
    feed(sync, b"{not json")
    feed(sync, b'{"channel":"spot.order_book_update","event":"update"}')
    feed(sync, gate_update("AAA_USDT", 10, 10, [("99.00", "1")]))
    await settle()
    feed(sync, gate_update("AAA_USDT", 11, 11, [("99.00", "2")]))
    feed(sync, gate_update("AAA_USDT", 11, 11, [("99.00", "2")]))  # already applied: ignored
    feed(sync, gate_update("AAA_USDT", 20, 20, [("99.00", "3")]))  # gap: resync
    feed(sync, gate_update("AAA_USDT", 10, 12, [("98.00", "1")]))  # buffered, then continues the snapshot
    await settle()
    feed(sync, gate_update("ZZZ_USDT", 1, 1, [("1", "1")]))
    feed(sync, b'{"time":1,"channel":"spot.order_book_update","event":"subscribe","error":{"code":2,"message":"no"}}')
    assert sync.books["AAA/USDT"].in_sync and not sync.books["BBB/USDT"].in_sync
    return sync


def result(opportunity_id: str, state: ArbitrageState, profit: str) -> ExecutionResult:
    """An execution ending in ``state``; one that did not complete had its buy refused by the venue."""
    legs = () if state is ArbitrageState.COMPLETED else (ExecutionLeg(
        exchange=MEXC, symbol="BTC/USDT", side=OrderSide.BUY, client_order_id=f"{opportunity_id}-b",
        requested_quantity=Decimal(1), limit_price=Decimal(100), error="insufficient balance", status="rejected",
    ),)
    return ExecutionResult(
        opportunity_id=opportunity_id, final_state=state, total_execution_time_ms=Decimal("12.5"),
        realized_profit=Decimal(profit), legs=legs,
    )


LIMITS = RiskLimits(
    max_position_size_usd=Decimal(1000), max_total_exposure_usd=Decimal(5000), max_daily_loss_usd=Decimal(50),
    min_profit_margin_bps=Decimal(5),
)


async def engine_parts() -> EngineParts:
    monitor = PerformanceMonitor(50, clock=lambda: NOW_NS)
    for value in (2_000, 3_000, 40_000):
        monitor.record_stage(Stage.DETECT, value)
    monitor.record_stage(Stage.PLACE, 7_000_000)
    monitor.record_cycle(9_000_000)
    monitor.record_opportunity_detected(4)
    monitor.record_execution(result("a", ArbitrageState.COMPLETED, "1.50"))
    monitor.record_execution(result("b", ArbitrageState.COMPLETED, "0.25"))
    monitor.record_execution(result("c", ArbitrageState.FAILED, "-0.50"))
    monitor.record_execution(result("d", ArbitrageState.RECOVERING, "0"))
    risk = RiskManager(LIMITS, clock=lambda: NOW_NS)
    fill = Fill(
        symbol="BTC/USDT", order_id="1", client_order_id="c1", trade_id="t1", side=OrderSide.BUY,
        price=Decimal(100), quantity=Decimal("0.5"), fee=Decimal(0), fee_asset="USDT", is_maker=False,
        timestamp_ms=0,
    )
    risk.record_fill(GATE, fill)
    risk.record_realized_pnl(Decimal("1.25"))
    near = FuturesHolding(base=Decimal("-0.5"), lot=Decimal("0.0001"), entry_price=Decimal(100),
                          liquidation_distance_bps=Decimal("312.5"))
    risk.align_futures_positions(ExchangeName.GATEIO_FUTURES, {"ETH/USDT": near}, ["ETH/USDT"])
    balances = BalanceMonitor({
        GATE: StaticBalances({"USDT": Balance(asset="USDT", free=Decimal("950.5"), locked=Decimal(10))}),
        MEXC: StaticBalances({"BTC": Balance(asset="BTC", free=Decimal("0.25"))}),
    })
    await balances.refresh()
    pipeline = ScannerPipeline(max_data_age_ms=100, clock=lambda: NOW_NS, id_prefix="m")
    spot = [i for i in default_instruments(("BTC",)) if not i.is_futures]
    pipeline.register_symbol("BTC/USDT", [(i, OrderBook(i.exchange.value), WireScale(*i.wire_scale())) for i in spot])
    pipeline.halt_market(GATE, "BTC/USDT", "no longer tradable: trade_status=untradable")
    return EngineParts(
        monitor=monitor, risk=risk, recovery=FakeRecovery(), balances=balances,  # type: ignore[arg-type]
        connectors={
            GATE: FakeConnector("gateio", await gate_sync(), private=True),
            MEXC: FakeConnector("mexc", None, clock_skew=None),
        },
        pipeline=pipeline,
    )
