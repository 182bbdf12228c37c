"""RiskManager.restore: positions, exposure and today's PnL rebuilt from the journal equal the live state."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from contextlib import closing
from decimal import Decimal as D
from pathlib import Path

import msgspec
import pytest
from fakevenue import FakeExchange, FakeTime, Step, catalogs, perp, spot

from arb.exchanges.models import Fill, FundingPayment, OrderRequest, OrderState, OrderStatus, OrderType, Position
from arb.execution import TwoLegExecutor
from arb.instruments import InstrumentCatalog, split_symbol
from arb import journal as journal_module
from arb.journal import SCHEMA_VERSION, IntentRecord, Journal
from arb.orders import OrderSettings
from arb.recovery import RecoveryManager
from arb.risk import FuturesHolding, RiskCheck, RiskManager, RiskRejection, futures_holdings
from arb.types import (
    ArbitrageOpportunity,
    ArbitrageState,
    ExchangeName,
    ExecutionResult,
    OpportunityType,
    OrderSide,
    RiskLimits,
)

GATE, MEXC, MEXC_PERP = ExchangeName.GATEIO, ExchangeName.MEXC, ExchangeName.MEXC_FUTURES
DAY_MS = 86_400_000
TODAY_MS = 20_000 * DAY_MS + 3_600_000  # 01:00 UTC
LIMITS = RiskLimits(
    max_position_size_usd=D("100000"),
    max_total_exposure_usd=D("250000"),
    max_daily_loss_usd=D("500"),
    min_profit_margin_bps=D("1"),
    max_consecutive_failures=3,
    max_execution_latency_ms=500,
)


class Wall:
    """A wall clock in ms shared by the journal and the risk managers."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def ns(self) -> int:
        return self.ms * 1_000_000


def opportunity(
    opportunity_id: str,
    *,
    sell: ExchangeName = MEXC,
    sell_price: str = "60010.50",
    quantity: str = "0.5",
    kind: OpportunityType = OpportunityType.SPOT_SPOT,
) -> ArbitrageOpportunity:
    buy_price = D("60000.10")
    spread = D(sell_price) - buy_price
    return ArbitrageOpportunity(
        opportunity_id=opportunity_id, opportunity_type=kind, symbol="BTC/USDT", buy_exchange=GATE,
        sell_exchange=sell, buy_price=buy_price, sell_price=D(sell_price), max_quantity=D(quantity),
        profit_per_unit=spread, total_profit_estimate=spread * D(quantity), profit_margin_bps=D(2), detected_at=0,
    )


class Engine:
    """Executor, recovery and journal over scripted venues, feeding a RiskManager as the controller does."""

    def __init__(self, tmp_path: Path, wall: Wall, limits: RiskLimits = LIMITS) -> None:
        self.wall = wall
        self.gate = FakeExchange(spot(GATE))
        self.mexc = FakeExchange(spot(MEXC, venue_symbol="BTCUSDT"))
        self.perp = FakeExchange(perp(MEXC_PERP, venue_symbol="BTC_USDT", contract_size=D("0.001")))
        venues = {v.exchange: v for v in (self.gate, self.mexc, self.perp)}
        self.catalogs = catalogs(self.gate, self.mexc, self.perp)
        self.path = tmp_path / "journal.sqlite3"
        self.venues = venues
        self.wire(Journal(self.path, wall_clock_ms=lambda: wall.ms))
        self.risk = RiskManager(limits, wall_clock=wall.ns)

    def wire(self, journal: Journal) -> None:
        """The executor and recovery, journaling to ``journal``."""
        self.journal = journal
        time = FakeTime()
        settings = OrderSettings(query_attempts=4, rate_limit_deadline_s=1.0)
        self.recovery = RecoveryManager(
            self.venues, max_loss_quote=D("50"), max_attempts=3, clock=time.clock, sleep=time.sleep,
            journal=journal, order_settings=settings,
        )
        self.executor = TwoLegExecutor(
            self.venues, self.catalogs, recovery=self.recovery, journal=journal, clock=time.clock,
            sleep=time.sleep, order_settings=settings,
        )

    def run(self, opp: ArbitrageOpportunity) -> ExecutionResult:
        """What ``ArbitrageController.process`` does around the executor."""
        self.risk.record_execution_started(opp)
        result = asyncio.run(self.executor.execute(opp))
        for leg in result.legs:
            if leg.filled_quantity <= 0 or leg.average_price is None:
                continue
            base, quote, _ = split_symbol(leg.symbol)
            fill = Fill(
                symbol=f"{base}/{quote}", order_id=leg.order_id or leg.client_order_id,
                client_order_id=leg.client_order_id, trade_id=leg.client_order_id, side=leg.side,
                price=leg.average_price, quantity=leg.filled_quantity, fee=leg.fee, fee_asset="", is_maker=False,
                timestamp_ms=self.wall.ms,
            )
            contract = self.catalogs[leg.exchange].get(leg.symbol).contract_size
            self.risk.record_fill(leg.exchange, fill, contract_size=contract)
        self.risk.record_execution(result)
        return result

    def restarted(self, limits: RiskLimits = LIMITS) -> RiskManager:
        """A fresh RiskManager restored from the journal file, as ``initialize`` does after a restart.

        The running engine's journal is closed first (one open journal per file) and opened again
        for it afterwards, so it can go on trading.
        """
        self.journal.close()
        risk = RiskManager(limits, wall_clock=self.wall.ns)
        with Journal(self.path, wall_clock_ms=lambda: self.wall.ms) as journal:
            risk.restore(journal, self.catalogs)
        self.wire(Journal(self.path, wall_clock_ms=lambda: self.wall.ms))
        return risk


def trade_a_day(engine: Engine) -> list[ExecutionResult]:
    """A losing completed trade, a partial fill hedged, a refused leg unwound, a spot/futures hedge left open
    and a residual flagged for manual approval (left open)."""
    results = [engine.run(opportunity("loss1"))]
    engine.wall.ms += 1_000
    engine.mexc.script = [Step(fraction=D("0.6"))]
    results.append(engine.run(opportunity("part2")))
    engine.wall.ms += 1_000
    engine.mexc.script = [Step(kind="reject")]
    results.append(engine.run(opportunity("unw3")))
    engine.wall.ms += 1_000
    results.append(
        engine.run(opportunity("hdg4", sell=MEXC_PERP, sell_price="60020.34", quantity="0.5237",
                               kind=OpportunityType.SPOT_FUTURES_HEDGE))
    )
    engine.wall.ms += 1_000
    engine.mexc.script = [Step(kind="reject")]
    engine.gate.touch = (D("59000"), D("60000"))
    engine.recovery.max_loss_quote = D("10")
    results.append(engine.run(opportunity("flag5", quantity="0.2")))
    engine.gate.touch = None
    engine.recovery.max_loss_quote = D("50")
    return results


def test_restart_restores_identical_metrics(tmp_path: Path) -> None:
    engine = Engine(tmp_path, Wall(TODAY_MS))
    results = trade_a_day(engine)
    states = [r.final_state for r in results]
    assert states == [ArbitrageState.COMPLETED, ArbitrageState.COMPLETED, ArbitrageState.FAILED,
                      ArbitrageState.COMPLETED, ArbitrageState.RECOVERING]
    live = engine.risk.get_current_risk_metrics()
    assert live.daily_realized_pnl_usd == sum((r.realized_profit for r in results), D(0)) < 0
    assert engine.risk.net_position("BTC/USDT") == D("0.2")  # the flagged residual
    assert len(live.positions) == 3 and live.total_exposure_usd > 0

    restored = engine.restarted()
    assert restored.get_current_risk_metrics() == live
    assert restored.net_position("BTC/USDT") == D("0.2")


def test_a_fee_charged_in_a_third_asset_counts_at_the_taker_rate_live_and_restored(tmp_path: Path) -> None:
    """MEXC charges a fee in MX on an account that pays fees with it: the live PnL counted it as 0
    (overstating the day's PnL by the whole fee) while the hedge book charged the taker rate."""
    engine = Engine(tmp_path, Wall(TODAY_MS))
    engine.mexc.fee_in = (D("0.37"), "MX")
    (result,) = [engine.run(opportunity("mx1"))]
    sell = next(leg for leg in result.legs if leg.exchange is MEXC)
    assert (sell.fee, sell.fee_asset) == (D("0.37"), "MX")
    mexc = engine.catalogs[MEXC].get("BTC/USDT")
    gate_fee = D("0.5") * engine.catalogs[GATE].get("BTC/USDT").taker_fee * D("60000.10")  # BTC, at its price
    expected = D("0.5") * (D("60010.50") - D("60000.10")) - gate_fee - D("0.5") * D("60010.50") * mexc.taker_fee
    assert result.realized_profit == expected
    assert engine.risk.get_current_risk_metrics().daily_realized_pnl_usd == expected
    assert engine.restarted().get_current_risk_metrics().daily_realized_pnl_usd == expected


def test_restore_reports_and_logs_what_it_rebuilt(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine = Engine(tmp_path, Wall(TODAY_MS))
    results = trade_a_day(engine)
    risk = RiskManager(LIMITS, wall_clock=engine.wall.ns)
    with caplog.at_level(logging.INFO, logger="arb.risk"):
        summary = risk.restore(engine.journal, engine.catalogs)
    assert summary.executions_today == 5 and summary.positions == 3 and summary.skipped == ()
    assert summary.orders == sum(1 for r in results for leg in r.legs if leg.filled_quantity > 0)
    assert summary.daily_realized_pnl_usd == engine.risk.get_current_risk_metrics().daily_realized_pnl_usd
    (line,) = [r.getMessage() for r in caplog.records if "restored from the journal" in r.getMessage()]
    assert "3 open positions" in line and "from 5 executions" in line


def test_yesterdays_trades_restore_no_pnl_but_keep_positions(tmp_path: Path) -> None:
    wall = Wall(TODAY_MS - DAY_MS)
    engine = Engine(tmp_path, wall)
    trade_a_day(engine)
    assert engine.risk.get_current_risk_metrics().daily_realized_pnl_usd < 0
    wall.ms = TODAY_MS
    live = engine.risk.get_current_risk_metrics()  # the running engine rolled the day
    assert live.daily_realized_pnl_usd == 0 and len(live.positions) == 3
    restored = engine.restarted()
    assert restored.get_current_risk_metrics() == live
    # Today's trades count, yesterday's do not.
    today = engine.run(opportunity("today6"))
    assert engine.restarted().get_current_risk_metrics() == engine.risk.get_current_risk_metrics()
    assert engine.risk.get_current_risk_metrics().daily_realized_pnl_usd == today.realized_profit


def loss_limits(max_daily_loss: D) -> RiskLimits:
    return RiskLimits(
        max_position_size_usd=D("100000"), max_total_exposure_usd=D("250000"), max_daily_loss_usd=max_daily_loss,
        min_profit_margin_bps=D("1"), max_consecutive_failures=3, max_execution_latency_ms=500,
    )


def test_daily_loss_limit_trips_after_restart_at_the_boundary(tmp_path: Path) -> None:
    engine = Engine(tmp_path, Wall(TODAY_MS))
    engine.run(opportunity("loss1"))
    loss = -engine.risk.get_current_risk_metrics().daily_realized_pnl_usd
    assert loss == D("54.80530")
    next_trade = opportunity("next", quantity="0.01")

    at_limit = engine.restarted(loss_limits(loss))
    with pytest.raises(RiskRejection) as refused:
        at_limit.validate_opportunity_risk(next_trade)
    assert refused.value.check is RiskCheck.MAX_DAILY_LOSS and refused.value.value == loss

    unit_below = engine.restarted(loss_limits(loss + D("0.00001")))
    unit_below.validate_opportunity_risk(next_trade)  # passes: the loss is one unit short of the limit

    fresh = RiskManager(loss_limits(loss), wall_clock=engine.wall.ns)  # what a restart used to give
    fresh.validate_opportunity_risk(next_trade)


def test_restored_positions_count_against_the_exposure_limit(tmp_path: Path) -> None:
    engine = Engine(tmp_path, Wall(TODAY_MS))
    trade_a_day(engine)  # leaves 0.2 BTC open at 60000
    limits = RiskLimits(
        max_position_size_usd=D("100000"), max_total_exposure_usd=D("12100"), max_daily_loss_usd=D("500"),
        min_profit_margin_bps=D("1"), max_consecutive_failures=3, max_execution_latency_ms=500,
    )
    restored = engine.restarted(limits)
    assert restored.get_current_risk_metrics().total_exposure_usd == D("0.2") * D("60000")
    with pytest.raises(RiskRejection) as refused:
        restored.validate_opportunity_risk(opportunity("next", quantity="0.002"))  # 120.021 more: over
    assert refused.value.check is RiskCheck.MAX_TOTAL_EXPOSURE


def test_a_crash_mid_execution_counts_after_reconciliation(tmp_path: Path) -> None:
    """Both orders filled at the venues; the sell fill was never journaled, reconciliation adds it."""
    wall = Wall(TODAY_MS)
    engine = Engine(tmp_path, wall)
    journal = engine.journal
    buy = engine.executor.plan(opportunity("crash1"))[0].request
    sell = engine.executor.plan(opportunity("crash1"))[1].request
    journal.record_intents("crash1", [("buy", GATE, buy), ("sell", MEXC, sell)])
    journal.record_fill(GATE, Fill(
        symbol="BTC/USDT", order_id="g1", client_order_id=buy.client_order_id, trade_id="order:b",
        side=OrderSide.BUY, price=D("60000.10"), quantity=D("0.5"), fee=D("0.0005"), fee_asset="BTC",
        is_maker=False, timestamp_ms=wall.ms,
    ))
    states = {
        buy.client_order_id: OrderState(
            symbol="BTC/USDT", order_id="g1", client_order_id=buy.client_order_id, side=OrderSide.BUY,
            type=OrderType.LIMIT, status=OrderStatus.FILLED, quantity=D("0.5"), price=D("60000.10"),
            filled_quantity=D("0.5"), average_price=D("60000.10"), fee=D("0.0005"), fee_asset="BTC",
        ),
        sell.client_order_id: OrderState(
            symbol="BTC/USDT", order_id="m1", client_order_id=sell.client_order_id, side=OrderSide.SELL,
            type=OrderType.LIMIT, status=OrderStatus.FILLED, quantity=D("0.5"), price=D("60010.50"),
            filled_quantity=D("0.5"), average_price=D("60010.50"), fee=D("30.00525"), fee_asset="USDT",
        ),
    }

    async def resolve(intent: IntentRecord) -> OrderState | None:
        return states[intent.client_order_id]

    wall.ms += 5_000
    summary = asyncio.run(journal.reconcile(resolve))
    assert summary.fills_added == 1
    restored = engine.restarted().get_current_risk_metrics()
    assert restored.daily_realized_pnl_usd == D("-54.80530")  # as the completed trade above
    assert restored.positions[0].quantity == D("0.5") and restored.total_exposure_usd == 0


def test_an_instrument_no_longer_listed_leaves_its_opportunity_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = Engine(tmp_path, Wall(TODAY_MS))
    engine.run(opportunity("spot1"))
    engine.run(opportunity("hdg2", sell=MEXC_PERP, sell_price="60020.34", quantity="0.5237",
                           kind=OpportunityType.SPOT_FUTURES_HEDGE))
    listed = {m: c for m, c in engine.catalogs.items() if m is not MEXC_PERP}
    risk = RiskManager(LIMITS, wall_clock=engine.wall.ns)
    with caplog.at_level(logging.ERROR, logger="arb.risk"):
        summary = risk.restore(engine.journal, listed)
    assert summary.skipped == ("hdg2",) and summary.executions_today == 1
    assert risk.get_current_risk_metrics().daily_realized_pnl_usd == D("-54.80530")
    assert any("hdg2 left out" in r.getMessage() and "mexc_futures" in r.getMessage() for r in caplog.records)
    # Filled today: the day's realized PnL is not known whole (the controller holds entries for it).
    assert summary.unvalued_today == ("hdg2",)
    assert summary.why_left_out == {"hdg2": "market mexc_futures has no instrument catalog"}  # named by the kill switch
    tomorrow = RiskManager(LIMITS, wall_clock=lambda: (TODAY_MS + 86_400_000) * 1_000_000)
    assert tomorrow.restore(engine.journal, listed).unvalued_today == ()  # another day's: not today's loss


def test_restore_replaces_state_and_keeps_in_flight_reservations(tmp_path: Path) -> None:
    engine = Engine(tmp_path, Wall(TODAY_MS))
    trade_a_day(engine)
    risk = engine.risk
    expected = engine.restarted().get_current_risk_metrics()
    pending = opportunity("inflight", quantity="0.1")
    risk.record_execution_started(pending)
    risk.restore(engine.journal, engine.catalogs)  # again, over the live state: nothing counted twice
    metrics = risk.get_current_risk_metrics()
    reserved = D("0.1") * D("60010.50")
    assert metrics.daily_realized_pnl_usd == expected.daily_realized_pnl_usd
    assert metrics.positions == expected.positions
    assert metrics.in_flight_usd == reserved
    assert metrics.total_exposure_usd == expected.total_exposure_usd + reserved


def test_funding_settled_today_counts_in_the_daily_pnl_live_and_after_a_restart(tmp_path: Path) -> None:
    perp_market = ExchangeName.GATEIO_FUTURES

    def payment(payment_id: str, amount: str, time_ms: int) -> FundingPayment:
        return FundingPayment(payment_id=payment_id, symbol="BTC/USDT:USDT", amount=D(amount), time_ms=time_ms)

    midnight = TODAY_MS - TODAY_MS % DAY_MS
    yesterday = payment("1", "5", midnight - 1)  # the last millisecond of yesterday
    today = payment("2", "1.25", midnight)
    paid = payment("3", "-0.5", TODAY_MS)
    live = RiskManager(LIMITS, wall_clock=Wall(TODAY_MS).ns)
    for settled in (yesterday, today, paid):
        live.record_funding(settled)
    metrics = live.get_current_risk_metrics()
    assert metrics.daily_realized_pnl_usd == metrics.daily_funding_usd == D("0.75")  # yesterday's belongs to yesterday
    with Journal(tmp_path / "j.sqlite3", wall_clock_ms=lambda: TODAY_MS) as journal:
        journal.record_funding(perp_market, [yesterday, today, paid])
        wall = Wall(TODAY_MS)
        restarted = RiskManager(LIMITS, wall_clock=wall.ns)
        restored = restarted.restore(journal, {})
    assert restored.funding_today_usd == D("0.75") and restored.daily_realized_pnl_usd == D("0.75")
    assert restarted.get_current_risk_metrics().daily_funding_usd == D("0.75")
    wall.ms += DAY_MS  # the day rolls: today's funding is yesterday's
    restarted.record_realized_pnl(D(0))
    assert restarted.get_current_risk_metrics().daily_funding_usd == 0


def test_funding_stamped_on_a_day_this_clock_has_not_reached_counts_once_the_day_rolls(tmp_path: Path) -> None:
    """The venue's clock runs ahead: its midnight settlement is read while this clock still shows
    the day before. It is that next day's funding, live and after a restart, never lost."""
    midnight = TODAY_MS - TODAY_MS % DAY_MS + DAY_MS
    early = FundingPayment(payment_id="1", symbol="BTC/USDT:USDT", amount=D("-40"), time_ms=midnight)
    wall = Wall(midnight - 300)
    live = RiskManager(LIMITS, wall_clock=wall.ns)
    live.record_funding(early)
    assert live.get_current_risk_metrics().daily_funding_usd == 0  # not the day before's
    with Journal(tmp_path / "j.sqlite3", wall_clock_ms=lambda: wall.ms) as journal:
        journal.record_funding(ExchangeName.GATEIO_FUTURES, [early])
        restarted = RiskManager(LIMITS, wall_clock=wall.ns)
        assert restarted.restore(journal, {}).funding_today_usd == 0
    wall.ms = midnight + 1
    for risk in (live, restarted):
        risk.record_realized_pnl(D(0))
        metrics = risk.get_current_risk_metrics()
        assert metrics.daily_funding_usd == metrics.daily_realized_pnl_usd == D("-40")
    wall.ms += DAY_MS
    live.record_realized_pnl(D(0))
    assert live.get_current_risk_metrics().daily_funding_usd == 0  # counted on its own day only


def test_a_journal_written_by_an_earlier_version_restores(tmp_path: Path) -> None:
    """A version 1 file (before the funding and hedge-drop tables), written without this code, is
    upgraded when opened and restores."""
    assert SCHEMA_VERSION == 8
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(journal_module._SCHEMA)  # the version 1 tables, as that version created them
    db.execute("PRAGMA user_version=1")
    request = (
        '{"symbol":"BTC/USDT","side":"buy","type":"limit","quantity":"0.5","price":"60000.10",'
        '"client_order_id":"old1-b"}'
    )
    db.execute(
        "INSERT INTO intents (opportunity_id, leg, exchange, client_order_id, symbol, request, created_at_ms) "
        "VALUES ('old1', 'buy', 'gateio', 'old1-b', 'BTC/USDT', ?, ?)", (request, TODAY_MS),
    )
    db.execute(
        "INSERT INTO fills (intent_id, exchange, symbol, trade_id, order_id, client_order_id, side, price, "
        "quantity, fee, fee_asset, is_maker, timestamp_ms, source, recorded_at_ms) VALUES "
        "(1, 'gateio', 'BTC/USDT', 'order:old1-b', 'g1', 'old1-b', 'buy', '60000.10', '0.5', '0.0005', 'BTC', 0, "
        "?, 'venue', ?)", (TODAY_MS, TODAY_MS),
    )
    db.commit()
    db.close()
    risk = RiskManager(LIMITS, wall_clock=Wall(TODAY_MS).ns)
    with Journal(path) as journal:
        summary = risk.restore(journal, {GATE: InstrumentCatalog(GATE, [spot(GATE)])})
        assert journal.funding_payments() == []  # the table version 2 added is there, empty
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert summary.orders == 1 and summary.positions == 1
    # An open residual: no matched quantity, so only the fee (0.0005 BTC at 60000.10) is realized.
    assert summary.daily_realized_pnl_usd == -D("0.0005") * D("60000.10")
    assert risk.net_position("BTC/USDT") == D("0.5")


def test_the_futures_venues_positions_replace_the_journals_where_they_differ(caplog: pytest.LogCaptureFixture) -> None:
    perp_market = ExchangeName.GATEIO_FUTURES
    catalog = catalogs(FakeExchange(perp(perp_market)))[perp_market]
    contract = perp(perp_market).contract_size
    risk = RiskManager(LIMITS)
    traded = ("BTC/USDT",)

    def fill(exchange: ExchangeName, side: OrderSide, quantity: str, price: str) -> Fill:
        return Fill(symbol="BTC/USDT", order_id="1", client_order_id="c", trade_id="t", side=side, price=D(price),
                    quantity=D(quantity), fee=D(0), fee_asset="", is_maker=False, timestamp_ms=TODAY_MS)

    # A hedge: long 0.5 spot, short 5000 contracts of 0.0001: no exposure while both legs are held.
    risk.record_fill(GATE, fill(GATE, OrderSide.BUY, "0.5", "60000"))
    risk.record_fill(perp_market, fill(perp_market, OrderSide.SELL, "5000", "60300"), contract_size=contract)
    assert risk.get_current_risk_metrics().total_exposure_usd == 0
    held = Position(symbol="BTC/USDT:USDT", size=D(-5000), entry_price=D("60300"))
    unlisted = Position(symbol="DOGE/USDT:USDT", size=D(7), entry_price=D("0.1"))
    assert risk.align_futures_positions(perp_market, futures_holdings(perp_market, [held, unlisted], catalog), traded) == {}

    # Bought back at the venue while the engine was stopped: the spot leg is exposure again.
    with caplog.at_level(logging.WARNING, logger="arb.risk"):
        assert risk.align_futures_positions(perp_market, {}, traded) == {"BTC/USDT": (D("-0.5"), D(0))}
    assert "the journal's position is -0.5000 base, the venue's 0" in caplog.text
    metrics = risk.get_current_risk_metrics()
    assert metrics.total_exposure_usd == D("0.5") * D("60300")  # at the symbol's last mark
    assert [(p.exchange, p.quantity) for p in metrics.positions] == [(GATE, D("0.5"))]
    assert risk.futures_room(perp_market, "BTC/USDT") == (LIMITS.max_position_size_usd / D("60300"),) * 2

    # A position the journal never had counts as well (here: back to the hedge, short 0.3).
    short = Position(symbol="BTC/USDT:USDT", size=D(-3000), entry_price=D("61000"))
    assert risk.align_futures_positions(perp_market, futures_holdings(perp_market, [short], catalog), traded) == {"BTC/USDT": (D(0), D("-0.3000"))}
    assert risk.net_position("BTC/USDT") == D("0.2")
    # A pair this engine does not trade is the account's other business: left as it is.
    assert risk.align_futures_positions(perp_market, {}, ("ETH/USDT",)) == {}
    assert risk.net_position("BTC/USDT") == D("0.2")


def test_a_residual_an_operator_acknowledged_holds_no_exposure_after_a_restart(tmp_path: Path) -> None:
    """``approvals --acknowledge``: the operator dealt with the residual (closed it by hand). Still
    replayed from its fills, it used the exposure headroom for good: one residual under small limits
    refused every entry (and every hedge close) from then on."""
    engine = Engine(tmp_path, Wall(TODAY_MS))
    results = trade_a_day(engine)
    assert engine.risk.net_position("BTC/USDT") == D("0.2")  # flag5's residual
    engine.journal.record_recovery_step("flag5", "acknowledged", {"by": "operator"})
    restored = engine.restarted()
    assert restored.net_position("BTC/USDT") == 0
    # Its realized PnL so far still counts against the day's loss limit.
    assert restored.get_current_risk_metrics().daily_realized_pnl_usd == sum((r.realized_profit for r in results), D(0))
    # Flagged again since (a later restart found more): it holds its position again.
    engine.journal.record_recovery_step("flag5", "manual_approval", {"reason": "again", "residual": "0.2"})
    assert engine.restarted().net_position("BTC/USDT") == D("0.2")


def test_acknowledging_a_matched_hedge_leaves_its_legs_where_the_hedge_book_holds_them(tmp_path: Path) -> None:
    """Only the residual was dealt with by hand: a hedge's matched legs stay (the hedge book still
    holds the hedge, and the futures venue its short); taking them all out left the futures leg as
    a phantom exposure once the venue read replaced the journal's futures position."""
    engine = Engine(tmp_path, Wall(TODAY_MS))
    trade_a_day(engine)
    before = engine.restarted().get_current_risk_metrics()
    engine.journal.record_recovery_step("hdg4", "manual_approval", {"reason": "an order's outcome unknown", "residual": "0"})
    engine.journal.record_recovery_step("hdg4", "acknowledged", {"by": "operator"})
    after = engine.restarted().get_current_risk_metrics()
    assert after.positions == before.positions and after.total_exposure_usd == before.total_exposure_usd


def test_an_order_of_unknown_outcome_after_the_restart_still_counts_against_the_limits(tmp_path: Path) -> None:
    """A live run counts an order of unknown outcome until a restart learns it; when the restart's
    reconciliation could not learn it either, it may still have filled: still counted, not dropped."""
    from arb.exchanges.models import OrderRequest, TimeInForce

    engine = Engine(tmp_path, Wall(TODAY_MS))
    request = OrderRequest(symbol="BTC/USDT", side=OrderSide.BUY, type=OrderType.LIMIT, quantity=D("0.5"),
                           price=D("60000"), time_in_force=TimeInForce.IOC, client_order_id="lost1-b")
    engine.journal.record_intent("lost1", "buy", request, GATE)  # sent; no answer ever recorded
    restored = engine.restarted().get_current_risk_metrics()
    assert restored.in_flight_usd == D("30000") and restored.total_exposure_usd == D("30000")


def test_a_futures_order_of_unknown_outcome_after_the_restart_counts_against_the_futures_limit(tmp_path: Path) -> None:
    """A futures sell of 30 contracts of 0.001 BTC was sent and never answered, nor learnt by the
    restart's reconciliation. It counted in the exposure but not in the perpetual's position room, so
    the scanner and the risk check let entries grow the short by 0.03 BTC more than the limit allows,
    had it filled. It counts until the venue's position is read, which says whether it did."""
    limits = msgspec.structs.replace(LIMITS, max_position_size_usd=D("60300"))  # about 1 BTC of perpetual
    engine = Engine(tmp_path, Wall(TODAY_MS), limits)
    engine.run(opportunity("hdg1", sell=MEXC_PERP, sell_price="60020.34", kind=OpportunityType.SPOT_FUTURES_HEDGE))
    before = engine.restarted(limits).futures_room(MEXC_PERP, "BTC/USDT")
    assert before is not None
    request = OrderRequest(symbol="BTC/USDT:USDT", side=OrderSide.SELL, type=OrderType.LIMIT, quantity=D(30),
                           price=D("60000"), client_order_id="lost2-s")
    engine.journal.record_intent("lost2", "sell", request, MEXC_PERP, D("0.001"))  # sent; never answered
    restored = engine.restarted(limits)
    assert restored.futures_room(MEXC_PERP, "BTC/USDT") == (before[0], before[1] - D("0.03"))
    held = FuturesHolding(base=D("-0.5"), lot=D("0.001"), entry_price=D("60020.34"))  # the hedge's short alone
    assert restored.align_futures_positions(MEXC_PERP, {"BTC/USDT": held}, ("BTC/USDT",)) == {}  # it did not fill
    assert restored.futures_room(MEXC_PERP, "BTC/USDT") == before


def test_a_venue_changing_its_contract_size_does_not_change_what_the_journaled_contracts_were(tmp_path: Path) -> None:
    """A hedge sold 500 contracts of 0.001 BTC; the venue then made its contracts 0.01 BTC (converting
    positions). Read at the new size, the journal's 500 contracts were 5 BTC: a false 4.5 BTC short
    and its exposure after the restart."""
    engine = Engine(tmp_path, Wall(TODAY_MS))
    engine.run(opportunity("hdg1", sell=MEXC_PERP, sell_price="60020.34", kind=OpportunityType.SPOT_FUTURES_HEDGE))
    live = engine.risk.get_current_risk_metrics()
    assert engine.risk.net_position("BTC/USDT") == 0 and live.total_exposure_usd == 0
    request = OrderRequest(symbol="BTC/USDT:USDT", side=OrderSide.SELL, type=OrderType.LIMIT, quantity=D(30),
                           price=D("60000"), client_order_id="lost2-s")
    engine.journal.record_intent("lost2", "sell", request, MEXC_PERP, D("0.001"))  # sent; never answered
    engine.catalogs = catalogs(engine.gate, engine.mexc, FakeExchange(
        perp(MEXC_PERP, venue_symbol="BTC_USDT", contract_size=D("0.01"))
    ))
    restored = engine.restarted()
    assert restored.net_position("BTC/USDT") == 0
    assert restored.get_current_risk_metrics().daily_realized_pnl_usd == live.daily_realized_pnl_usd
    assert restored.get_current_risk_metrics().in_flight_usd == D("1800")  # 30 contracts of 0.001 at 60000
