"""arb.controller: an in-process dry run against the simulated venues, live-mode refusals, the engine API."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
import types
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal as D
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import msgspec
import pytest
from loopback import eventually
from simvenues import CREDENTIALS, simulated_venues
from test_pipeline import book

from arb import ArbitrageController, ArbitrageEngine
from arb.config import ConfigurationManager, simulated_journal_path
from arb.controller import (
    COLLECTION_SKIPS_MAX,
    ENTRY_ORDER_BUDGET,
    Executor,
    RunSummary,
    SymbolSummary,
    _check_live_allowed,
    _set_aside,
    dry_run_cluster,
)
from arb.errors import ArbitrageEngineError, ConfigurationError, ExchangeError, OrderRejectedError, SessionStopped
from arb.execution import StartedExecution, TwoLegExecutor
from arb.exchanges.base import BookKey
from arb.exchanges.factory import market_symbols, registered
from arb.exchanges.paper import PaperExchange
from arb.exchanges.gateio.connector import GateioSpotConnector
from arb.exchanges.errors import ErrorCategory
from arb.exchanges.models import (
    Balance, Fill, FundingPayment, OrderRequest, OrderState, OrderStatus, OrderType, TimeInForce,
)
from arb.hedges import HedgeBook, HedgePosition
from arb.instruments import InstrumentCatalog
from arb.journal import IntentRecord, Journal, JournalError
from arb.balances import BalanceMonitor, SkewAlert
from arb.pipeline import ScannerPipeline, SymbolPlan
from arb.recovery import RecoveryManager, RecoveryStatus
from arb.risk import Breaker, RiskManager
from arb.secrets import ApiCredentials, Secret
from arb.shutdown import ShutdownManager, StepOutcome, StepStatus
from arb.sim.cluster import SimCluster, default_instruments
from arb.sim.faults import VenueFaults
from arb.sim.market import Dislocation
from arb.sim.server import VenueUrls
from arb.types import (
    ArbitrageOpportunity, ArbitrageState, EngineStatistics, ExchangeName, ExecutionLeg, ExecutionResult,
    OpportunityType, OrderSide,
)
from arb_core.book import ASK, DeltaBatch, OrderBook
from arb_core.wire.common import WireScale

CONFIG = """
[engine]
symbols = ["BTC/USDT"]
"""
SECOND = 1_000_000_000


def mexc_to_gate(
    opportunity_id: str, buy_price: D, sell_price: D, quantity: str, *, margin_bps: str = "50",
    symbol: str = "BTC/USDT", detected_at: int = 0,
) -> ArbitrageOpportunity:
    """A spot-spot opportunity buying on MEXC and selling on Gate.io; profit from the prices given."""
    per_unit = sell_price - buy_price
    return ArbitrageOpportunity(
        opportunity_id=opportunity_id, opportunity_type=OpportunityType.SPOT_SPOT, symbol=symbol,
        buy_exchange=ExchangeName.MEXC, sell_exchange=ExchangeName.GATEIO, buy_price=buy_price,
        sell_price=sell_price, max_quantity=D(quantity), profit_per_unit=per_unit,
        total_profit_estimate=per_unit * D(quantity), profit_margin_bps=D(margin_bps), detected_at=detected_at,
    )


def manager(tmp_path: Path, text: str = CONFIG, environ: dict[str, str] | None = None) -> ConfigurationManager:
    path = tmp_path / "arb.toml"
    path.write_text(text)
    configuration = ConfigurationManager(path, environ=environ or {})
    configuration.load_configuration(dry_run=True)
    return configuration


def dry_run(
    tmp_path: Path, configuration: ConfigurationManager, duration_s: float, **cluster: Any
) -> tuple[RunSummary, ArbitrageController]:
    """Start a controller on a fresh built-in cluster (``cluster``: ``dry_run_cluster``'s options, no
    random dislocations unless given), run it ``duration_s`` and return its summary and itself."""
    sim = dry_run_cluster(configuration.config, **{"random_per_minute": 0, **cluster})

    async def scenario() -> tuple[RunSummary, ArbitrageController]:
        async with sim:
            controller = ArbitrageController(configuration, sim_cluster=sim, journal=Journal(tmp_path / "j.sqlite3"))
            await controller.initialize(dry_run=True)
            return await controller.run(duration_s=duration_s), controller

    return asyncio.run(scenario())


async def order_states(
    cluster_urls: Mapping[str, VenueUrls], legs: list[tuple[ExchangeName, str, str]]
) -> list[OrderState]:
    """The venues' own record of each (market, symbol, client id), read by fresh connectors."""
    credentials = ApiCredentials(Secret("sim-key"), Secret("sim-secret"))
    states = []
    connectors = {}
    try:
        for market, symbol, client_id in legs:
            if market not in connectors:
                urls = cluster_urls[market.venue]
                connectors[market] = registered()[market](
                    credentials=credentials, rest_url=urls.rest_url, ws_url=urls.ws_url
                )
            states.append(await connectors[market].query_order(symbol, client_order_id=client_id))
    finally:
        for connector in connectors.values():
            await connector.close()
    return states


def holdings(cluster: SimCluster) -> dict[str, D]:
    """Free plus locked of every asset of the funded user, summed over the spot markets."""
    total: dict[str, D] = {}
    for venue in cluster.venues.values():
        for market, exchange in venue.exchanges.items():
            if market.is_futures:
                continue
            for asset, (free, locked) in exchange.balances(cluster.config.api_key).items():
                total[asset] = total.get(asset, D(0)) + free + locked
    return total


def test_dry_run_trades_a_scheduled_dislocation_with_exact_pnl_and_a_full_journal(tmp_path: Path) -> None:
    configuration = manager(tmp_path)
    # MEXC's BTC/USDT 80 bps cheap from 1 s to 3 s of simulator time: buy on MEXC, sell on Gate.
    dislocation = Dislocation(
        exchange=ExchangeName.MEXC, symbol="BTC/USDT", start_ns=SECOND, duration_ns=2 * SECOND, bps=-80
    )
    cluster = dry_run_cluster(configuration.config, dislocations=(dislocation,), random_per_minute=0)
    journal_path = tmp_path / "journal.sqlite3"
    status: list[str] = []

    async def scenario() -> tuple[RunSummary, list[ExecutionResult], list[OrderState], dict[str, D]]:
        async with cluster:
            before = holdings(cluster)
            controller = ArbitrageController(
                configuration, sim_cluster=cluster, journal=Journal(journal_path), status=status.append
            )
            await controller.initialize(dry_run=True)
            summary = await controller.run(duration_s=3.5)
            legs = [(leg.exchange, leg.symbol, leg.client_order_id) for r in controller.results for leg in r.legs]
            states = await order_states(cluster.urls(), legs)
            after = holdings(cluster)
            assert controller.recovery is not None
            windows.update(controller.recovery.order_windows_ms())
            refused.update({name: dict(venue.context.rate_limits.refused) for name, venue in cluster.venues.items()})
            return summary, controller.results, states, {a: after[a] - before.get(a, D(0)) for a in after}

    windows: dict[ExchangeName, int] = {}
    refused: dict[str, dict[str, int]] = {}
    summary, results, states, change = asyncio.run(scenario())
    stats = summary.statistics
    # The dislocation ran the engine up to its order budgets, and no venue refused it for its rate limits.
    assert summary.skipped_for_order_budget > 0 and refused == {"gateio": {}, "mexc": {}}
    assert stats.opportunities_detected >= 1 and stats.opportunities_executed >= 1
    assert summary.ok and summary.stop_reason == "duration elapsed"
    assert status and "opportunities" in status[-1]
    assert all(r.legs for r in results)
    assert [r for r in results if r.legs[0].exchange is ExchangeName.MEXC], "the dislocation makes MEXC the cheap side"

    # Each leg as the venue reports the order: same fills at the same average price.
    by_id = {state.client_order_id: state for state in states}
    legs = [leg for result in results for leg in result.legs]
    for leg in legs:
        state = by_id[leg.client_order_id]
        assert (state.filled_quantity, state.side) == (leg.filled_quantity, leg.side)
        if leg.filled_quantity:
            assert state.average_price == leg.average_price
    # The venues' ledgers: MEXC charges spot fees in USDT on both sides, Gate.io in the asset received
    # (BTC on a buy, USDT on a sell); realized PnL values a BTC fee at its order's average price, exactly.
    bought = sum((leg.filled_quantity for leg in legs if leg.side is OrderSide.BUY), D(0))
    sold = sum((leg.filled_quantity for leg in legs if leg.side is OrderSide.SELL), D(0))
    filled = [leg for leg in legs if leg.filled_quantity]
    assert {leg.fee_asset for leg in filled if leg.exchange is ExchangeName.MEXC} == {"USDT"}
    gate_buys = [leg for leg in filled if leg.exchange is ExchangeName.GATEIO and leg.side is OrderSide.BUY]
    assert all(leg.fee_asset == "BTC" for leg in gate_buys)
    base_fees = [(leg.fee, leg.average_price or D(0)) for leg in filled if leg.fee_asset == "BTC"]
    assert bought == sold > 0
    assert change.get("BTC", D(0)) == -sum((fee for fee, _ in base_fees), D(0))
    realized = change["USDT"] - sum((fee * price for fee, price in base_fees), D(0))
    assert stats.total_realized_profit == sum((r.realized_profit for r in results), D(0)) == realized > 0
    assert stats.executions_succeeded == sum(r.final_state is ArbitrageState.COMPLETED for r in results)

    # Every order has its journaled intent, and none is left open.
    with Journal(journal_path) as journal:
        for leg in (leg for result in results for leg in result.legs):
            assert journal.intent(leg.exchange, leg.client_order_id).client_order_id == leg.client_order_id
        assert journal.open_intents() == []
        # How long its orders could still land, for a restart to wait out whatever its own settings.
        assert journal.order_windows() == windows and min(windows.values()) > 5_000  # the 5 s deadline and more


def test_live_mode_refuses_without_keys_and_without_stated_limits(tmp_path: Path) -> None:
    controller = ArbitrageController(manager(tmp_path, "[engine]\nsymbols = ['BTC/USDT']\n"))
    with pytest.raises(ConfigurationError) as refused:
        asyncio.run(controller.initialize(dry_run=False))
    text = str(refused.value)
    for name in ("MEXC_API_KEY", "MEXC_SECRET_KEY", "GATEIO_API_KEY", "GATEIO_SECRET_KEY"):
        assert name in text
    assert "risk.max_position_size_usd" in text and "engine.symbols" not in text.split("missing there:")[1]


LIVE_STATED = """
[engine]
symbols = ["BTC/USDT"]
[risk]
max_position_size_usd = "100"
max_total_exposure_usd = "200"
max_daily_loss_usd = "10"
"""
KEYS = {"MEXC_API_KEY": "k", "MEXC_SECRET_KEY": "s", "GATEIO_API_KEY": "k", "GATEIO_SECRET_KEY": "s"}


@pytest.mark.parametrize("switch", ["enable_risk_checks", "enable_circuit_breakers"])
def test_live_trading_with_a_safety_switch_off_must_say_so_in_the_config_file(tmp_path: Path, switch: str) -> None:
    """One environment variable turned every limit the file had to state off, and nothing but an
    INFO line said so: a live run with it off must have it written in its --config file."""
    variable = f"ARB_{switch.upper()}"
    from_env = manager(tmp_path, LIVE_STATED, {**KEYS, variable: "false"})
    with pytest.raises(ConfigurationError) as refused:
        _check_live_allowed(from_env)
    assert f"engine.{switch} is false (env {variable}): live trading with it off must be written" in str(refused.value)
    stated_on = LIVE_STATED.replace("[risk]", f"{switch} = true\n[risk]")
    with pytest.raises(ConfigurationError, match=f"engine.{switch} is false \\(env {variable}\\)"):
        _check_live_allowed(manager(tmp_path, stated_on, {**KEYS, variable: "false"}))  # the file says on
    _check_live_allowed(manager(tmp_path, LIVE_STATED.replace("[risk]", f"{switch} = false\n[risk]"), KEYS))
    _check_live_allowed(manager(tmp_path, LIVE_STATED, KEYS))  # on, as shipped: nothing to state


def test_live_checks_the_limits_of_the_file_as_it_was_loaded(tmp_path: Path) -> None:
    """The keys the file states were learnt by reading it a second time: a --config from a pipe
    (``<(cat live.toml)``) is used up by then, and every required key was reported missing."""
    loaded = manager(tmp_path, LIVE_STATED, KEYS)
    (tmp_path / "arb.toml").unlink()  # as a pipe read once: nothing left to read
    _check_live_allowed(loaded)
    (tmp_path / "arb.toml").write_text(LIVE_STATED)
    missing = manager(tmp_path, "[engine]\nsymbols = ['BTC/USDT']\n", KEYS)
    (tmp_path / "arb.toml").write_text(LIVE_STATED)  # changed since: what was loaded is what counts
    with pytest.raises(ConfigurationError, match="missing there: risk.max_position_size_usd"):
        _check_live_allowed(missing)


def test_a_journal_path_that_is_a_directory_is_refused_before_anything_is_opened(tmp_path: Path) -> None:
    """SQLite failed with "unable to open database file", naming no setting, and left the intent
    log beside the directory (`<dir>-intents`)."""
    journal_dir = tmp_path / "journal"
    journal_dir.mkdir()
    closed = "".join(f'[exchanges.{venue}]\nrest_url = "http://127.0.0.1:9"\nws_url = "ws://127.0.0.1:9/"\n'
                     for venue in ("mexc", "gateio"))
    text = LIVE_STATED.replace("[risk]", f"journal_path = '{journal_dir}'\n[risk]") + closed
    controller = ArbitrageController(manager(tmp_path, text, KEYS))
    with pytest.raises(ConfigurationError, match=f"engine.journal_path '{journal_dir}' \\(.*arb.toml: "
                                                 "engine.journal_path\\): is a directory"):
        asyncio.run(controller.initialize(dry_run=False))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arb.toml", "journal"] and not any(journal_dir.iterdir())


def test_a_position_limit_under_a_markets_minimum_order_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every opportunity is sized up to the position limit: under a market's minimum notional (Gate.io
    spot takes 3 USDT at least) nothing ever trades there, and nothing said why."""
    configuration = manager(tmp_path, CONFIG + '[risk]\nmax_position_size_usd = "2"\n')
    with caplog.at_level(logging.WARNING, logger="arb.controller"):
        dry_run(tmp_path, configuration, 0.1)  # warned as it starts
    gate = [r.getMessage() for r in caplog.records if r.getMessage().startswith("gateio BTC/USDT: its minimum order")]
    assert gate == ["gateio BTC/USDT: its minimum order notional 3 USDT is above risk.max_position_size_usd 2: "
                    "nothing is traded on it"]
    assert not any(r.getMessage().startswith("mexc BTC/USDT: its minimum") for r in caplog.records)


def test_a_live_start_on_a_journal_that_does_not_exist_says_so_with_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The default journal_path is relative: started from another directory, a live engine opened a
    fresh journal and silently lost the kill switch, the day's loss and the open orders of the last."""
    monkeypatch.chdir(tmp_path)
    for run in ("first", "second"):
        controller = ArbitrageController(manager(tmp_path, CONFIG))
        controller.mode = "LIVE"
        caplog.clear()
        asyncio.run(controller._build_parts(False))
        assert controller.journal is not None
        controller.journal.close()
        new = f"journal {tmp_path / 'arb-journal.sqlite3'} does not exist: a new one is started" in caplog.text
        assert new is (run == "first")


def test_a_live_start_on_a_paper_journal_is_refused_naming_the_file_and_both_modes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Live, it restored the paper run's hedges, day's PnL and open intents as if real."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "arb-journal.sqlite3"
    with Journal(path, mode="paper"):
        pass
    controller = ArbitrageController(manager(tmp_path, CONFIG))
    controller.mode = "LIVE"
    with pytest.raises(JournalError, match=f"journal {path}: written in paper mode, refused for a run in live mode"):
        asyncio.run(controller._build_parts(False))
    assert controller.journal is None


def test_engine_session_statistics_health_and_a_refused_opportunity(tmp_path: Path) -> None:
    configuration = manager(tmp_path)
    cluster = dry_run_cluster(configuration.config, random_per_minute=0)

    async def scenario() -> None:
        async with cluster:
            journal = Journal(tmp_path / "j.sqlite3")
            controller = ArbitrageController(configuration, sim_cluster=cluster, journal=journal)
            engine = ArbitrageEngine(controller)
            async with engine.session(trade=False):
                assert engine.is_healthy
                pipeline = controller.pipeline
                assert pipeline is not None
                found = pipeline.legs_for("BTC/USDT", ExchangeName.MEXC, ExchangeName.GATEIO)
                assert found is not None
                symbol_id, mexc, gate = found
                thin = mexc_to_gate("thin1btc", D("60000"), D("60001"), "0.0001", margin_bps="0.1")  # floor: 10 bps
                await eventually(lambda: pipeline.books_fresh(symbol_id, thin, controller.clock()), 5, "fresh books")
                ask = mexc.book_price(mexc.book.best_ask_price())  # priced on the books, as the engine checks
                bid = gate.book_price(gate.book.best_bid_price())
                thin = mexc_to_gate("thin1btc", ask, bid, "0.0001", margin_bps="0.1", detected_at=controller.clock())
                result = await engine.execute_opportunity(thin)
                assert result.final_state is ArbitrageState.FAILED
                assert (result.error or "").startswith("refused by risk checks: opportunity thin1btc BTC/USDT: ")
                stats = engine.get_engine_statistics()
                assert (stats.opportunities_detected, stats.opportunities_executed) == (1, 0)
                assert stats.success_rate == 0
                # Detected longer ago than max_data_age_ms: stale data never trades, not even when given.
                old = mexc_to_gate("old1btc", D("60000"), D("60100"), "0.0001",
                                   detected_at=controller.clock() - 101 * 1_000_000)
                result = await engine.execute_opportunity(old)
                assert result.final_state is ArbitrageState.FAILED and "past max_data_age_ms (100)" in (result.error or "")
                assert engine.get_engine_statistics().opportunities_detected == 1  # refused before the risk check
                assert engine.is_healthy and controller.risk is not None
                # A day's loss at the limit stops every entry until the UTC day rolls over: it cannot trade.
                controller.risk.record_realized_pnl(-configuration.config.risk_limits.max_daily_loss_usd)
                assert not engine.is_healthy
            assert not engine.is_healthy

    asyncio.run(scenario())


@pytest.mark.parametrize("table", ["fills", "recovery_steps", "kill_switch"])
def test_a_journal_with_a_damaged_page_fails_the_start_naming_it(tmp_path: Path, table: str) -> None:
    """A bad sector in a table opens fine; the start's first read of it (restoring the fills,
    flagging interrupted executions, the kill switch an earlier run left) died with a bare sqlite3
    traceback naming no file (the kill switch's after the start-up, its clean-up skipped)."""
    path = tmp_path / "j.sqlite3"
    with Journal(path) as journal:
        journal.record_recovery_step("o1", "manual_approval", {"reason": "residual past its bound", "residual": "0.5"})
        journal.record_kill_switch(True, "operator")
        journal.record_kill_switch(False, "operator")
        journal.record_intents("o2", [("buy", ExchangeName.GATEIO, OrderRequest(
            symbol="BTC/USDT", side=OrderSide.BUY, type=OrderType.LIMIT, quantity=D("0.001"), price=D("60000"),
            client_order_id="o2-b", time_in_force=TimeInForce.IOC,
        ))])
    db = sqlite3.connect(path)
    ((page,),) = db.execute("SELECT rootpage FROM sqlite_schema WHERE name = ?", (table,)).fetchall()
    (page_size,) = db.execute("PRAGMA page_size").fetchone()
    db.close()
    with open(path, "r+b") as file:
        file.seek((page - 1) * page_size)
        file.write(b"\xff" * page_size)
    configuration = manager(tmp_path)
    cluster = dry_run_cluster(configuration.config, random_per_minute=0)

    async def scenario() -> None:
        async with cluster:
            controller = ArbitrageController(configuration, sim_cluster=cluster, journal=Journal(path))
            with pytest.raises(JournalError, match=f"journal {path}: database disk image is malformed: restore"):
                await controller.initialize(dry_run=True)
            assert not controller._initialized and controller.journal is None  # the failed start cleaned up

    asyncio.run(scenario())


@pytest.mark.parametrize(("damage", "named"), [
    ("UPDATE fills SET price = '6O000'", "fills row 1: price '6O000': not a decimal number"),
    ("UPDATE funding_payments SET amount = '1,5'", "funding_payments row gateio_futures f1: amount '1,5': not a decimal"),
    ("""UPDATE recovery_steps SET detail = '{"reason": "r", "resid'""", "recovery_steps row 1: detail: not a JSON object"),
    ("""UPDATE recovery_steps SET detail = '{"reason": "r", "residual": "abc"}'""",
     "recovery_steps row 1: detail.residual 'abc': not a decimal number"),
    ("""UPDATE recovery_steps SET detail = '{"reason": "r", "residual": "1e999999999"}'""",
     "recovery_steps row 1: detail.residual '1e999999999': out of range"),
])
def test_a_journal_with_a_damaged_value_fails_the_start_naming_it(tmp_path: Path, damage: str, named: str) -> None:
    """A value edited by hand or damaged on disk: the start's restore of the fills and of today's
    funding died with a bare ``decimal.InvalidOperation``, its read of the flags awaiting approval
    with a bare ``msgspec.DecodeError`` (a bare ``decimal`` error for a flag's residual that is no
    amount), naming no file, row or column."""
    path = tmp_path / "j.sqlite3"
    order = OrderRequest(symbol="BTC/USDT", side=OrderSide.BUY, type=OrderType.LIMIT, quantity=D("0.001"),
                         price=D("60000"), client_order_id="o2-b", time_in_force=TimeInForce.IOC)
    with Journal(path) as journal:
        journal.record_recovery_step("o1", "manual_approval", {"reason": "r", "residual": "0.5"})
        journal.record_intents("o2", [("buy", ExchangeName.GATEIO, order)])
        journal.record_result(ExchangeName.GATEIO, "o2-b", OrderState(
            symbol="BTC/USDT", order_id="v1", client_order_id="o2-b", side=OrderSide.BUY, type=OrderType.LIMIT,
            status=OrderStatus.FILLED, quantity=D("0.001"), price=D("60000"), filled_quantity=D("0.001"),
        ), [Fill(symbol="BTC/USDT", order_id="v1", client_order_id="o2-b", trade_id="t1", side=OrderSide.BUY,
                 price=D("60000"), quantity=D("0.001"), fee=D("0"), fee_asset="BTC", is_maker=False, timestamp_ms=1)])
        journal.record_funding(ExchangeName.GATEIO_FUTURES, [FundingPayment(
            payment_id="f1", symbol="BTC/USDT:USDT", amount=D("0.1"), time_ms=time.time_ns() // 1_000_000 - 1_000
        )])
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute(damage)
    configuration = manager(tmp_path)
    cluster = dry_run_cluster(configuration.config, random_per_minute=0)

    async def scenario() -> None:
        async with cluster:
            controller = ArbitrageController(configuration, sim_cluster=cluster, journal=Journal(path))
            with pytest.raises(JournalError) as refused:
                await controller.initialize(dry_run=True)
            assert str(refused.value).startswith(f"journal {path}: {named}")
            assert not controller._initialized and controller.journal is None  # the failed start cleaned up

    asyncio.run(scenario())


def test_a_start_whose_clean_up_fails_too_raises_what_ended_it_and_cleans_up_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk at the start: reconciliation's commit failed with a clear journal error, then closing
    the journal failed too, and that bare sqlite3 error replaced it, the simulator left running."""
    configuration = manager(tmp_path)
    journal = Journal(tmp_path / "j.sqlite3")
    full = sqlite3.OperationalError("database or disk is full")

    async def full_disk_reconcile(*args: Any) -> None:
        raise full

    def full_disk_close(real_close: Callable[[], None] = journal.close) -> None:
        real_close()
        raise full

    monkeypatch.setattr(journal, "reconcile", full_disk_reconcile)
    monkeypatch.setattr(journal, "close", full_disk_close)

    async def scenario() -> None:
        controller = ArbitrageController(configuration, journal=journal)
        with pytest.raises(JournalError, match=r"j.sqlite3: database or disk is full$"):
            await controller.initialize(dry_run=True)
        assert controller.journal is None and journal._closed
        assert controller.sim_cluster is not None and controller.sim_cluster._task is None  # stopped

    asyncio.run(scenario())


def test_execute_opportunity_sends_nothing_once_the_engine_is_shutting_down(tmp_path: Path) -> None:
    """Called while the engine shut down, it sent its orders after the wait for executions in flight,
    under the cancelling of open orders, with the connectors and journal then closed beneath it."""
    configuration = manager(tmp_path)
    cluster = dry_run_cluster(configuration.config, random_per_minute=0)

    async def scenario() -> None:
        async with cluster:
            controller = ArbitrageController(configuration, sim_cluster=cluster, journal=Journal(tmp_path / "j.sqlite3"))
            engine = ArbitrageEngine(controller)
            async with engine.session(trade=False):
                controller.shutdown_manager.request_shutdown("test")
                late = mexc_to_gate("late1btc", D("60000"), D("60100"), "0.0001", detected_at=controller.clock())
                result = await engine.execute_opportunity(late)
                assert result.final_state is ArbitrageState.FAILED
                assert result.error == "not executed: the engine is shutting down"
                assert engine.get_engine_statistics().opportunities_detected == 0
        with Journal(tmp_path / "j.sqlite3") as journal:
            assert journal.interrupted_opportunities() == set() and not journal.knows(ExchangeName.MEXC, "late1btc-b")

    asyncio.run(scenario())


def test_dry_run_balances_follow_the_private_pushes_to_the_venues_answers(tmp_path: Path) -> None:
    # No periodic read during the run: after the start-up read, only pushes move the monitor's balances.
    configuration = manager(tmp_path, CONFIG + "balance_refresh_interval_ms = 3600000\n")
    dislocation = Dislocation(
        exchange=ExchangeName.MEXC, symbol="BTC/USDT", start_ns=SECOND, duration_ns=2 * SECOND, bps=-80
    )
    cluster = dry_run_cluster(configuration.config, dislocations=(dislocation,), random_per_minute=0)

    async def scenario() -> None:
        async with cluster:
            journal = Journal(tmp_path / "j.sqlite3")
            controller = ArbitrageController(configuration, sim_cluster=cluster, journal=journal)
            await controller.initialize(dry_run=True)
            monitor = controller.balances
            assert monitor is not None and monitor.refreshes == 1
            assert all(monitor.streamed(market) for market in controller.traders)
            runner = asyncio.get_running_loop().create_task(controller.run())
            try:
                await asyncio.sleep(3.5)  # past the dislocation: the executions are over
                assert controller.results
                # Garbage is collected between executions only (arb.collection), not automatically.
                assert controller.collection.active and not gc.isenabled()
                def amounts(balances: Mapping[str, Balance]) -> dict[str, tuple[D, D]]:
                    return {asset: (b.free, b.locked) for asset, b in balances.items()}  # pushes are also stamped

                answers = {market: amounts(await trader.balances()) for market, trader in controller.traders.items()}
                await eventually(
                    lambda: {m: amounts(b) for m, b in monitor.snapshot().items()} == answers,
                    what="pushed balances equal balances()",
                )
                assert monitor.refreshes == 1 and monitor.pushes > 0 and monitor.drifts == 0
            finally:
                controller.shutdown_manager.request_shutdown("test over")
                await runner
            assert not controller.collection.active and gc.isenabled() and gc.get_freeze_count() == 0

    asyncio.run(scenario())


def test_a_dry_run_on_its_own_simulator_starts_a_fresh_journal_and_keeps_the_last_one(tmp_path: Path) -> None:
    # The built-in venues start with fresh ledgers, so an earlier run's orders and positions exist nowhere.
    configuration = manager(tmp_path, environ={"ARB_JOURNAL_PATH": str(tmp_path / "arb.sqlite3")})
    dry = tmp_path / "arb-dry.sqlite3"
    previous = tmp_path / "arb-dry.previous.sqlite3"

    async def one_run() -> None:
        controller = ArbitrageController(configuration)
        await controller.initialize(dry_run=True)
        await controller.shutdown()

    asyncio.run(one_run())
    with Journal(dry) as journal:
        journal.record_recovery_step("earlier-run", "flagged")
    # An intent the earlier run left only in its intent log (killed right after logging it).
    request = OrderRequest(
        symbol="BTC/USDT", side=OrderSide.BUY, type=OrderType.LIMIT, quantity=D(1), price=D(1), client_order_id="x1"
    )
    row = [1, "earlier-run", "buy", "gateio", "x1", "BTC/USDT", msgspec.json.encode(request).decode(), 0]
    Path(f"{dry}-intents").write_bytes(msgspec.json.encode([row]) + b"\n")
    asyncio.run(one_run())
    with Journal(previous) as journal:
        assert journal.recovery_steps("earlier-run") == [("flagged", {})]
        assert [i.client_order_id for i in journal.open_intents()] == ["x1"]  # the log moved with its database
    with Journal(dry) as journal:
        assert journal.recovery_steps("earlier-run") == []
        assert journal.open_intents() == []


def test_a_dry_run_on_venues_it_does_not_own_keeps_a_journal_apart_from_the_built_in_venues_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A dry run on --sim-urls venues shared the built-in venues' journal and restored that run's
    orders, positions and PnL, which its venues never saw. Its first run on a journal of its own
    says the -dry file beside it is not read."""
    configuration = manager(tmp_path, environ={"ARB_JOURNAL_PATH": str(tmp_path / "arb.sqlite3")})
    with Journal(tmp_path / "arb-dry.sqlite3", mode="dry run") as journal:
        journal.record_recovery_step("built-in-run", "flagged")

    async def one_run() -> None:
        cluster = dry_run_cluster(configuration.config, random_per_minute=0)
        await cluster.start()
        try:
            controller = ArbitrageController(configuration, sim_endpoints=cluster.endpoints())
            await controller.initialize(dry_run=True)
            assert controller.journal is not None and controller.journal.recovery_steps("built-in-run") == []
            await controller.shutdown()
        finally:
            await cluster.stop()

    with caplog.at_level(logging.WARNING, logger="arb.controller"):
        asyncio.run(one_run())
    [warned] = [r.getMessage() for r in caplog.records if "is not read" in r.getMessage()]
    assert "arb-sim.sqlite3" in warned and "arb-dry.sqlite3" in warned
    with Journal(tmp_path / "arb-sim.sqlite3") as journal:
        assert journal.mode == "dry run"
    with Journal(tmp_path / "arb-dry.sqlite3") as journal:
        assert journal.recovery_steps("built-in-run") == [("flagged", {})]


@pytest.mark.parametrize("busy_poll", [False, True])
def test_busy_poll_keeps_the_loop_from_sleeping_until_the_run_ends(tmp_path: Path, busy_poll: bool) -> None:
    configuration = manager(tmp_path, CONFIG + f"busy_poll = {str(busy_poll).lower()}\n")
    cluster = dry_run_cluster(configuration.config, random_per_minute=0)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        selector = loop._selector  # type: ignore[attr-defined]
        select = selector.select
        timeouts: list[float | None] = []

        def recording_select(timeout: float | None = None) -> object:
            timeouts.append(timeout)
            return select(timeout)

        async with cluster:
            controller = ArbitrageController(configuration, sim_cluster=cluster, journal=Journal(tmp_path / "j.sqlite3"))
            await controller.initialize(dry_run=True)
            runner = loop.create_task(controller.run())
            await asyncio.sleep(0.3)
            selector.select = recording_select
            try:
                await asyncio.sleep(0.5)
            finally:
                selector.select = select
            names = {task.get_name() for task in asyncio.all_tasks()}
            controller.shutdown_manager.request_shutdown("test over")
            summary = await runner
            assert summary.ok
            assert "arb busy poll" not in {task.get_name() for task in asyncio.all_tasks()}
        assert ("arb busy poll" in names) is busy_poll
        # Polled with a zero timeout every time, or allowed to sleep until the next event or timer.
        assert len(timeouts) > 100
        assert (max(t or 0 for t in timeouts) == 0) is busy_poll

    asyncio.run(scenario())


@pytest.mark.parametrize("interval_ms", [0, 10])
def test_the_last_executed_opportunity_is_rehearsed_only_between_executions(
    tmp_path: Path, interval_ms: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    configuration = manager(tmp_path, CONFIG + f"rehearsal_interval_ms = {interval_ms}\n")
    dislocation = Dislocation(
        exchange=ExchangeName.MEXC, symbol="BTC/USDT", start_ns=SECOND, duration_ns=SECOND, bps=-80
    )
    cluster = dry_run_cluster(configuration.config, dislocations=(dislocation,), random_per_minute=0)
    events: list[tuple[str, str]] = []
    start, finish, rehearse = TwoLegExecutor.start, TwoLegExecutor.finish, TwoLegExecutor.rehearse

    def starting(executor: TwoLegExecutor, opportunity: ArbitrageOpportunity) -> StartedExecution:
        events.append(("execute", opportunity.opportunity_id))
        return start(executor, opportunity)

    async def finishing(executor: TwoLegExecutor, started: StartedExecution) -> ExecutionResult:
        try:
            return await finish(executor, started)
        finally:
            events.append(("executed", started.opportunity.opportunity_id))

    def rehearsing(executor: TwoLegExecutor, opportunity: ArbitrageOpportunity) -> bool:
        events.append(("rehearse", opportunity.opportunity_id))
        return rehearse(executor, opportunity)

    convert_again = ScannerPipeline.rehearse

    def converting_again(pipeline: ScannerPipeline, detected_ns: int) -> ArbitrageOpportunity | None:
        converted = convert_again(pipeline, detected_ns)
        events.append(("convert", converted.opportunity_id if converted is not None else ""))
        return converted

    monkeypatch.setattr(TwoLegExecutor, "start", starting)
    monkeypatch.setattr(TwoLegExecutor, "finish", finishing)
    monkeypatch.setattr(TwoLegExecutor, "rehearse", rehearsing)
    monkeypatch.setattr(ScannerPipeline, "rehearse", converting_again)

    async def scenario() -> RunSummary:
        async with cluster:
            controller = ArbitrageController(configuration, sim_cluster=cluster, journal=Journal(tmp_path / "j.sqlite3"))
            await controller.initialize(dry_run=True)
            return await controller.run(duration_s=2.5)

    summary = asyncio.run(scenario())
    assert summary.ok and summary.statistics.opportunities_executed >= 1
    # Nothing for the executor to rehearse before the first execution.
    assert next(kind for kind, _ in events if kind != "convert") == "execute"
    executing_now, last = None, None
    for kind, opportunity_id in events:
        if kind == "execute":
            executing_now = opportunity_id
        elif kind == "executed":
            executing_now, last = None, opportunity_id
        elif kind == "convert":  # the scanner's last hit, converted again under a placeholder id
            assert executing_now is None and (opportunity_id == "" or opportunity_id.endswith("rehearsal"))
        else:
            assert executing_now is None and opportunity_id == last
    rehearsals = sum(kind == "rehearse" for kind, _ in events)
    conversions = sum(kind == "convert" for kind, _ in events)
    # The run goes on ~1 s after the dislocation's last execution: ~100 rehearsals at 10 ms.
    assert rehearsals == 0 if interval_ms == 0 else rehearsals > 30
    assert conversions == 0 if interval_ms == 0 else conversions > 30


def test_setting_a_dry_journal_aside_moves_a_stray_intent_log_without_its_database(tmp_path: Path) -> None:
    path = tmp_path / "arb-dry.sqlite3"
    Path(f"{path}-intents").write_bytes(b"[]\n")
    _set_aside(str(path))
    assert not Path(f"{path}-intents").exists()
    assert Path(f"{tmp_path / 'arb-dry.previous.sqlite3'}-intents").read_bytes() == b"[]\n"


class InstantExecutor:
    """Completes every opportunity at once, with no legs."""

    def start(self, opportunity: ArbitrageOpportunity) -> StartedExecution:
        return StartedExecution(opportunity, 0, 0, ())

    async def finish(self, started: StartedExecution) -> ExecutionResult:
        return ExecutionResult(
            opportunity_id=started.opportunity.opportunity_id, final_state=ArbitrageState.COMPLETED,
            total_execution_time_ms=D(0), realized_profit=D(0),
        )

    def rehearse(self, opportunity: ArbitrageOpportunity) -> bool:
        return False

    def refusal(self, opportunity: ArbitrageOpportunity) -> str | None:
        return None


def test_a_long_run_keeps_the_newest_results_and_counts_them_all(tmp_path: Path) -> None:
    configuration = manager(tmp_path)
    controller = ArbitrageController(
        configuration, executor=InstantExecutor(), risk=RiskManager(configuration.config.risk_limits), results_kept=3
    )

    async def scenario() -> None:
        for n in range(5):
            assert await controller.process(mexc_to_gate(f"o{n}", D("60000"), D("60300"), "0.0001")) is not None

    asyncio.run(scenario())
    assert [r.opportunity_id for r in controller.results] == ["o2", "o3", "o4"]
    since_3, since_0 = controller.results_since(3), controller.results_since(0)
    assert ([r.opportunity_id for r in since_3[0]], since_3[1]) == (["o3", "o4"], 5)  # positions count every result
    assert ([r.opportunity_id for r in since_0[0]], since_0[1]) == (["o2", "o3", "o4"], 5)  # o0, o1 dropped
    assert controller.results_since(5) == ([], 5) and controller.result_count == 5
    assert controller.statistics().opportunities_executed == 5  # the monitor counts them all


def test_a_hedge_book_given_to_a_controller_bounds_its_risk_managers_futures_limit(tmp_path: Path) -> None:
    """A controller used through ``process`` with a book of its caller's (never initialized) checked the
    futures limit on the perpetual's net position alone (``RiskManager.hedged_futures``)."""
    configuration = manager(tmp_path)
    risk = RiskManager(configuration.config.risk_limits)
    controller = ArbitrageController(configuration, executor=InstantExecutor(), risk=risk)
    book = HedgeBook({}, min_profit_bps=D(10))
    controller.hedges = book
    assert risk.hedged_futures == book.futures_hedged
    controller.hedges = None
    assert risk.hedged_futures is None


def test_the_summary_breaks_the_executions_down_by_pair_when_several_traded(tmp_path: Path) -> None:
    """Kept results may be only the newest: each pair's counts and PnL are summed as executions end."""

    class EarnsByPair(InstantExecutor):
        async def finish(self, started: StartedExecution) -> ExecutionResult:
            opportunity = started.opportunity
            btc = opportunity.symbol == "BTC/USDT"
            return ExecutionResult(
                opportunity_id=opportunity.opportunity_id,
                final_state=ArbitrageState.COMPLETED if btc or opportunity.opportunity_id == "e0" else ArbitrageState.FAILED,
                total_execution_time_ms=D(0), realized_profit=D("0.25") if btc else D("-0.1"),
            )

    configuration = manager(tmp_path)
    controller = ArbitrageController(
        configuration, executor=EarnsByPair(), risk=RiskManager(configuration.config.risk_limits), results_kept=1
    )

    async def scenario(symbols: list[str]) -> None:
        for n, symbol in enumerate(symbols):
            oid = f"{symbol[0].lower()}{n}"
            assert await controller.process(mexc_to_gate(oid, D("100"), D("101"), "0.1", symbol=symbol)) is not None

    asyncio.run(scenario(["BTC/USDT"] * 2))
    assert not any(line.startswith("  BTC/USDT") for line in controller.summary().lines())  # one pair: the totals say it
    asyncio.run(scenario(["ETH/USDT", "BTC/USDT", "ETH/USDT"]))
    summary = controller.summary()
    assert summary.by_symbol == {
        "BTC/USDT": SymbolSummary(executed=3, succeeded=3, realized_profit=D("0.75")),
        "ETH/USDT": SymbolSummary(executed=2, succeeded=1, realized_profit=D("-0.2")),
    }
    assert [line for line in summary.lines() if line.startswith("  BTC/USDT") or line.startswith("  ETH/USDT")] == [
        "  BTC/USDT                 3 executed, 3 succeeded, realized PnL 0.75 USDT",
        "  ETH/USDT                 2 executed, 1 succeeded, realized PnL -0.2 USDT",
    ]
    assert summary.statistics.total_realized_profit == D("0.55")


class HeldExecutor(InstantExecutor):
    """Finishes an execution once ``release`` is set; records each rehearsal with the execution
    running at the time ("" for none). ``failing``: rehearsals that raise, the first ones."""

    def __init__(self, failing: int = 0) -> None:
        self.release = asyncio.Event()
        self.release.set()
        self.executing = ""
        self.rehearsals: list[tuple[str, str]] = []  # (opportunity id, executing)
        self.failing = failing

    def start(self, opportunity: ArbitrageOpportunity) -> StartedExecution:
        self.executing = opportunity.opportunity_id
        return super().start(opportunity)

    async def finish(self, started: StartedExecution) -> ExecutionResult:
        await self.release.wait()
        self.executing = ""
        return await super().finish(started)

    def rehearse(self, opportunity: ArbitrageOpportunity) -> bool:
        self.rehearsals.append((opportunity.opportunity_id, self.executing))
        if len(self.rehearsals) <= self.failing:
            raise RuntimeError("rehearsal bug")
        return True


def rehearsing_controller(tmp_path: Path, executor: HeldExecutor) -> ArbitrageController:
    configuration = manager(tmp_path, CONFIG + "rehearsal_interval_ms = 1\n")
    return ArbitrageController(configuration, executor=executor, risk=RiskManager(configuration.config.risk_limits))


def test_no_rehearsal_runs_while_an_execution_given_through_the_api_is_in_flight(tmp_path: Path) -> None:
    """A given execution runs while the trade loop waits: its orders were encoded again every few
    milliseconds while their answers were awaited."""
    executor = HeldExecutor()
    controller = rehearsing_controller(tmp_path, executor)

    async def scenario() -> None:
        controller._waiter = asyncio.get_running_loop().create_future()  # the trade loop waits for a scan
        rehearsals = asyncio.ensure_future(controller._rehearsals())
        try:
            assert await controller.process(mexc_to_gate("o1", D("60000"), D("60300"), "0.0001")) is not None
            await eventually(lambda: len(executor.rehearsals) > 3, what="rehearsals of o1")
            executor.release.clear()
            given = asyncio.ensure_future(controller.process(mexc_to_gate("o2", D("60000"), D("60300"), "0.0001")))
            await eventually(lambda: executor.executing == "o2", what="o2 in flight")
            await asyncio.sleep(0.02)  # some twenty rehearsal intervals
            executor.release.set()
            assert await given is not None
            await eventually(lambda: executor.rehearsals[-1][0] == "o2", what="rehearsals of o2")
        finally:
            rehearsals.cancel()
        assert [executing for _, executing in executor.rehearsals if executing] == []

    asyncio.run(scenario())


def test_a_rehearsal_that_raises_is_logged_and_the_rehearsals_go_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Anything a rehearsal raised ended its task, and an engine task that ends stops the engine."""
    executor = HeldExecutor(failing=1)
    controller = rehearsing_controller(tmp_path, executor)

    async def scenario() -> None:
        controller._waiter = asyncio.get_running_loop().create_future()
        rehearsals = asyncio.ensure_future(controller._rehearsals())
        try:
            assert await controller.process(mexc_to_gate("o1", D("60000"), D("60300"), "0.0001")) is not None
            await eventually(lambda: len(executor.rehearsals) == 1, what="the rehearsal of o1")
            await asyncio.sleep(0.02)
            assert not rehearsals.done() and len(executor.rehearsals) == 1  # o1 is not rehearsed again
            assert await controller.process(mexc_to_gate("o2", D("60000"), D("60300"), "0.0001")) is not None
            await eventually(lambda: len(executor.rehearsals) > 3, what="rehearsals of o2")
            assert not rehearsals.done()
        finally:
            rehearsals.cancel()

    with caplog.at_level(logging.WARNING, logger="arb.controller"):
        asyncio.run(scenario())
    failures = [r for r in caplog.records if "rehearsal failed" in r.getMessage()]
    assert len(failures) == 1 and "RuntimeError('rehearsal bug')" in failures[0].getMessage()


def test_a_dry_journal_open_in_another_engine_is_not_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "arb-dry.sqlite3"
    with Journal(path):
        with pytest.raises(ArbitrageEngineError, match="is open in another running engine"):
            _set_aside(str(path))
        assert path.exists()
    _set_aside(str(path))
    assert not path.exists() and (tmp_path / "arb-dry.previous.sqlite3").exists()


def test_a_dry_journal_that_cannot_be_set_aside_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "arb-dry.sqlite3"
    Journal(path).close()

    def refused(self: Path, target: Path) -> Path:
        raise PermissionError(errno.EPERM, "Operation not permitted", str(self))

    monkeypatch.setattr(Path, "replace", refused)
    with pytest.raises(ArbitrageEngineError, match=r"arb-dry\.sqlite3: the last run's journal cannot be set aside as "
                       r".*arb-dry\.previous\.sqlite3: Operation not permitted; make its directory writable"):
        _set_aside(str(path))


def test_a_cancelled_run_leaves_no_busy_poll_spinning(tmp_path: Path) -> None:
    configuration = manager(tmp_path, CONFIG + "busy_poll = true\n")
    cluster = dry_run_cluster(configuration.config, random_per_minute=0)

    async def scenario() -> None:
        async with cluster:
            controller = ArbitrageController(configuration, sim_cluster=cluster, journal=Journal(tmp_path / "j.sqlite3"))
            await controller.initialize(dry_run=True)
            runner = asyncio.get_running_loop().create_task(controller.run())
            await asyncio.sleep(0.2)
            assert "arb busy poll" in {task.get_name() for task in asyncio.all_tasks()}
            runner.cancel()
            with pytest.raises(asyncio.CancelledError):
                await runner
            await asyncio.sleep(0)
            assert "arb busy poll" not in {task.get_name() for task in asyncio.all_tasks() if not task.done()}
            await controller.shutdown("test over")

    asyncio.run(scenario())


def test_an_opportunity_given_through_the_api_is_checked_against_the_books(tmp_path: Path) -> None:
    """The risk checks read an opportunity's stated prices and margin; the scanner's are priced on
    the books, a given one was not checked against them: a sell limit far under the bids filled
    at the bids (a 3,000 USD short checked as 50 USD), inverted limits with a claimed margin traded
    at a sure loss, and a perpetual's symbol escaped the futures limits keyed by the spot pair."""
    configuration = manager(tmp_path)
    cluster = dry_run_cluster(configuration.config, random_per_minute=0)

    async def scenario() -> list[str]:
        async with cluster:
            controller = ArbitrageController(configuration, sim_cluster=cluster, journal=Journal(tmp_path / "j.sqlite3"))
            engine = ArbitrageEngine(controller)
            async with engine.session(trade=False):
                pipeline = controller.pipeline
                assert pipeline is not None
                found = pipeline.legs_for("BTC/USDT", ExchangeName.MEXC, ExchangeName.GATEIO)
                assert found is not None
                _, mexc, gate = found
                ask = mexc.book_price(mexc.book.best_ask_price())
                bid = gate.book_price(gate.book.best_bid_price())
                probe = mexc_to_gate("probe", ask, bid, "0.001")
                await eventually(lambda: pipeline.books_fresh(found[0], probe, controller.clock()), 5, "fresh books")
                ask = mexc.book_price(mexc.book.best_ask_price())
                bid = gate.book_price(gate.book.best_bid_price())
                now = controller.clock()
                tick = D("0.01")
                given = [
                    mexc_to_gate("far1btc", ask, D("1001"), "0.05", margin_bps="10", detected_at=now),
                    msgspec.structs.replace(mexc_to_gate("inv1btc", ask, bid, "0.001", margin_bps="20", detected_at=now),
                                            total_profit_estimate=D("0.05")),
                    mexc_to_gate("perp1btc", ask, ask + 100, "0.001", symbol="BTC/USDT:USDT", detected_at=now),
                    mexc_to_gate("late1btc", ask, ask + 100, "0.001", detected_at=now + 10**12),
                    mexc_to_gate("low1btc", ask - 100, bid, "0.001", detected_at=now),  # never reaches the ask
                    mexc_to_gate("high1btc", ask, bid + 100, "0.001", detected_at=now),  # never reaches the bid
                    # Between ticks: sent as ask and bid (the executor rounds toward the book), a loss.
                    mexc_to_gate("tick1btc", ask - tick / 2, bid + tick / 2, "0.001", margin_bps="0", detected_at=now),
                    msgspec.structs.replace(mexc_to_gate("fund1btc", ask, bid, "0.001", margin_bps="0", detected_at=now),
                                            expected_funding=D(1000)),  # a spot pair earns no funding
                    msgspec.structs.replace(mexc_to_gate("nan1btc", ask, bid, "0.001", detected_at=now),
                                            max_quantity=D("NaN")),
                    msgspec.structs.replace(mexc_to_gate("fee1btc", ask, bid, "0.001", detected_at=now),
                                            sell_fee=D("NaN")),
                ]
                errors = [(await engine.execute_opportunity(o)).error or "" for o in given]
                assert controller.results == [] and controller.journal is not None
                assert controller.journal.open_intents() == [] and not controller.journal.knows(ExchangeName.MEXC, "far1btc-b")
                return errors

    far, inverted, perpetual, future, low, high, between, funded, nan, fee = asyncio.run(scenario())
    assert "far1btc BTC/USDT: sell limit 1001 is not at" in far and "the gateio bid its quantity walks to" in far
    assert inverted.startswith("refused by risk checks: opportunity inv1btc BTC/USDT: its stated profit 0.05 (20 bps)")
    assert "the scanner does not pair mexc with gateio for it (name the pair in spot form" in perpetual
    assert "is ahead of the engine's clock" in future
    assert "low1btc BTC/USDT: buy limit" in low and "does not reach" in low
    assert "high1btc BTC/USDT: sell limit" in high and "is not at" in high
    assert between.startswith("refused by risk checks: opportunity tick1btc BTC/USDT: its stated profit")
    assert funded.startswith("refused by risk checks: opportunity fund1btc BTC/USDT: its expected funding 1000")
    assert "all must be finite, and the quantity and prices positive" in nan  # refused, not raised
    assert fee == "refused by risk checks: opportunity fee1btc BTC/USDT: buy_fee=0, sell_fee=NaN: must be finite"


def test_an_opportunity_given_through_the_api_is_refused_before_anything_is_reserved_where_it_cannot_be_sent(
    tmp_path: Path
) -> None:
    """An opportunity id already traded (its client ids journaled), or a quantity under a venue's
    minimum, failed only in the executor: after its risk checks and reservation, and as a failed
    execution, so three of them latched the consecutive-failures breaker with nothing sent."""
    configuration = manager(tmp_path)
    cluster = dry_run_cluster(configuration.config, random_per_minute=0)

    async def scenario() -> list[str]:
        async with cluster:
            controller = ArbitrageController(configuration, sim_cluster=cluster, journal=Journal(tmp_path / "j.sqlite3"))
            engine = ArbitrageEngine(controller)
            async with engine.session(trade=False):
                journal, risk = controller.journal, controller.risk
                assert journal is not None and risk is not None
                request = OrderRequest(symbol="BTC/USDT", side=OrderSide.BUY, type=OrderType.LIMIT,
                                       quantity=D("0.001"), price=D(60000), client_order_id="done1-b")
                journal.record_intent("done1", "buy", request, ExchangeName.MEXC)  # traded by an earlier run
                now = controller.clock()
                given = [mexc_to_gate("done1", D(60000), D(60100), "0.001", detected_at=now) for _ in range(3)]
                given.append(mexc_to_gate("tiny1", D(60000), D(60100), "0.00000001", detected_at=now))
                errors = [(await engine.execute_opportunity(o)).error or "" for o in given]
                assert controller.results == [] and risk.get_current_risk_metrics().in_flight_usd == 0
                assert not risk.get_circuit_breaker_status()[Breaker.CONSECUTIVE_FAILURES].count
                return errors

    *again, tiny = asyncio.run(scenario())
    assert again == [
        "not executed: opportunity done1 BTC/USDT: its buy order's client id 'done1-b' is journaled on mexc "
        "already: an opportunity id is traded once"
    ] * 3
    assert tiny.startswith("not executed: opportunity tiny1 BTC/USDT: max_quantity 1E-8 is below one common lot")


@pytest.mark.parametrize(
    ("rates", "refusal"),
    [
        (["0.0001"], None),
        ([], "no fresh funding rate for gateio_futures BTC/USDT:USDT"),
        (["-0.0008"], "would have the hedges' closing rule close it at once"),
    ],
)
def test_a_hedge_given_through_the_api_meets_the_scanners_funding_refusals(
    tmp_path: Path, rates: list[str], refusal: str | None
) -> None:
    """A given hedge skipped both: one without a fresh funding rate, and one whose funding paid would
    have the closing rule close it at once on the same books."""
    controller, opening = gate_hedge(tmp_path, rates)
    given = controller._given_refusal(opening, 2)
    assert given is None if refusal is None else refusal in (given or "")


def gate_hedge(tmp_path: Path, rates: Sequence[str]) -> tuple[ArbitrageController, ArbitrageOpportunity]:
    """A controller on the clock 2 scanning a Gate.io hedge, and the hedge its scanner finds priced
    without funding, as a caller could give it: 0.01 BTC bought on spot at 60001, sold on the
    perpetual at 60700. Its funding book holds ``rates`` (hourly)."""
    from test_funding import GATE_PERP, GATE_SPOT, HOUR_MS, NEXT_MS, rate
    from test_funding import book as funding_book

    from arb.funding import FundingBook

    pipeline = ScannerPipeline(max_data_age_ms=100, opportunity_types=(OpportunityType.SPOT_FUTURES_HEDGE,),
                               min_profit_bps=D(10), clock=lambda: 2, id_prefix="t")
    legs = [
        (GATE_SPOT, funding_book("spot", GATE_SPOT, [("60000", "1")], [("60001", "1")]), WireScale(*GATE_SPOT.wire_scale())),
        (GATE_PERP, funding_book("perp", GATE_PERP, [("60700", "1")], [("60701", "1")]), WireScale(*GATE_PERP.wire_scale())),
    ]
    (plan,) = pipeline.register_symbol("BTC/USDT", legs)
    for leg in plan.legs:
        pipeline.set_leg_limits(plan.symbol_id, leg.leg_id, D("0.01"), D("0.01"))
    opening = pipeline.scan(0)
    assert opening is not None and opening.expected_funding == 0
    funding = FundingBook(horizon_s=8 * 3600, max_age_ms=60_000, wall_clock_ms=lambda: NEXT_MS - HOUR_MS // 2)
    funding.update([rate(r, interval_s=3600) for r in rates])
    pipeline.funding = funding
    return ArbitrageController(manager(tmp_path), pipeline=pipeline, clock=lambda: 2), opening


def given_dislocation(controller: ArbitrageController, opportunity_id: str, quantity: str) -> ArbitrageOpportunity:
    """What the scanner finds standing (MEXC cheap, sold on Gate.io), as a caller of the API would
    give it: renamed, for ``quantity``, priced as found."""
    assert controller.pipeline is not None
    (found,) = [o for o in controller.pipeline.standing_opportunities() if o.buy_exchange is ExchangeName.MEXC]
    share = D(quantity) / found.max_quantity
    return msgspec.structs.replace(
        found, opportunity_id=opportunity_id, max_quantity=D(quantity),
        total_profit_estimate=found.total_profit_estimate * share, detected_at=controller.clock(),
    )


def test_cancelling_execute_opportunity_after_the_orders_are_out_still_finishes_and_records_it(tmp_path: Path) -> None:
    configuration = manager(tmp_path)
    mexc_cheap = Dislocation(exchange=ExchangeName.MEXC, symbol="BTC/USDT", start_ns=SECOND, duration_ns=600 * SECOND, bps=-80)
    cluster = dry_run_cluster(configuration.config, random_per_minute=0, dislocations=(mexc_cheap,))
    journal_path = tmp_path / "j.sqlite3"

    async def scenario() -> None:
        async with cluster:
            controller = ArbitrageController(configuration, sim_cluster=cluster, journal=Journal(journal_path))
            engine = ArbitrageEngine(controller)
            async with engine.session(trade=False):
                assert controller.pipeline is not None
                await eventually(lambda: any(o.buy_exchange is ExchangeName.MEXC
                                             for o in controller.pipeline.standing_opportunities()), 5, "the dislocation")
                crossing = given_dislocation(controller, "cut1btc", "0.001")
                task = asyncio.ensure_future(engine.execute_opportunity(crossing))
                mexc, gate = cluster.venues["mexc"].stamps, cluster.venues["gateio"].stamps
                while mexc.request_ns("cut1btc-b") is None or gate.request_ns("t-cut1btc-s") is None:
                    await asyncio.sleep(0)
                task.cancel()  # both orders are out, no answer is in yet
                with pytest.raises(asyncio.CancelledError):
                    await task
                # The execution ran to its end before the cancellation was honoured: both legs known and
                # recorded, the risk reservation released, the result kept.
                [result] = controller.results
                assert result.opportunity_id == "cut1btc" and result.final_state is ArbitrageState.COMPLETED
                # The moving market can take either leg's price away before it lands (a loaded machine):
                # then recovery's order completes that leg, also before the cancellation is honoured.
                bought = sum(leg.filled_quantity for leg in result.legs if leg.side is OrderSide.BUY)
                sold = sum(leg.filled_quantity for leg in result.legs if leg.side is OrderSide.SELL)
                assert bought == sold == D("0.001")
                assert controller.risk is not None and controller.risk.get_current_risk_metrics().executions_in_flight == 0
                assert controller.journal is not None and controller.journal.open_intents() == []
                assert engine.get_engine_statistics().opportunities_executed == 1

    asyncio.run(scenario())


def scanning_controller(
    tmp_path: Path, executor: Executor, pipeline: ScannerPipeline, now: list[int]
) -> ArbitrageController:
    """A controller trading what ``pipeline``'s scans find with ``executor``, on the clock ``now[0]``."""
    configuration = manager(tmp_path)
    controller = ArbitrageController(
        configuration, executor=executor, risk=RiskManager(configuration.config.risk_limits), pipeline=pipeline,
        clock=lambda: now[0],
    )
    pipeline.on_opportunity = controller._on_opportunity
    return controller


async def start_trading(controller: ArbitrageController) -> asyncio.Task[None]:
    """The controller's trade loop, running and waiting for its first opportunity."""
    controller._scanning = True
    trading = asyncio.get_running_loop().create_task(controller._trade_loop())
    await asyncio.sleep(0)
    return trading


class SlowFirstExecution:
    """Records what each execution was sent with; the first takes ``first_ms`` (the clock moves on)."""

    def __init__(self, now: list[int], first_ms: int, during_first: Callable[[], None]) -> None:
        self.now, self.first_ms, self.during_first = now, first_ms, during_first
        self.sent: list[tuple[str, int]] = []  # (symbol, ns since its detection)

    def start(self, opportunity: ArbitrageOpportunity) -> StartedExecution:
        self.sent.append((opportunity.symbol, self.now[0] - opportunity.detected_at))
        return StartedExecution(opportunity, 0, 0, ())

    async def finish(self, started: StartedExecution) -> ExecutionResult:
        if len(self.sent) == 1:
            self.now[0] += self.first_ms * 1_000_000
            self.during_first()
        return ExecutionResult(
            opportunity_id=started.opportunity.opportunity_id, final_state=ArbitrageState.COMPLETED,
            total_execution_time_ms=D(0), realized_profit=D(0),
        )

    def rehearse(self, opportunity: ArbitrageOpportunity) -> bool:
        return False

    def refusal(self, opportunity: ArbitrageOpportunity) -> str | None:
        return None


def btc_and_eth_crossed(
    now: list[int],
) -> tuple[ScannerPipeline, dict[tuple[ExchangeName, str], OrderBook], dict[str, SymbolPlan]]:
    """BTC and ETH each cheap on Gate.io and rich on MEXC, books fresh at ``now[0]``; legs capped at
    0.001 BTC and 0.01 ETH (~60 and ~30 USDT, inside the default risk limits)."""
    pipeline = ScannerPipeline(max_data_age_ms=100, clock=lambda: now[0])
    instruments = {(i.exchange, i.base): i for i in default_instruments(("BTC", "ETH"))}
    books, plans = {}, {}
    for base, low, high in (("BTC", "60000", "60400"), ("ETH", "3000", "3020")):
        legs = []
        for exchange, bids, asks in ((ExchangeName.GATEIO, [("1", "1")], [(low, "1")]),
                                     (ExchangeName.MEXC, [(high, "1")], [("99999", "1")])):
            scale = WireScale(*instruments[(exchange, base)].wire_scale())
            books[(exchange, base)] = book(f"{exchange.value} {base}", scale, bids, asks, recv_ns=now[0])
            legs.append((instruments[(exchange, base)], books[(exchange, base)], scale))
        (plan,) = pipeline.register_symbol(f"{base}/USDT", legs)
        plans[base] = plan
        cap = D("0.001") if base == "BTC" else D("0.01")
        for leg in plan.legs:
            pipeline.set_leg_limits(plan.symbol_id, leg.leg_id, cap, cap)
    return pipeline, books, plans


async def trade_both_crossed(controller: ArbitrageController, pipeline: ScannerPipeline, done: Callable[[], bool]) -> None:
    """Queue both opportunities of ``btc_and_eth_crossed`` (BTC first) and trade until ``done`` and the queue is empty."""
    trading = await start_trading(controller)
    for key in (BookKey(ExchangeName.GATEIO, "BTC/USDT"), BookKey(ExchangeName.GATEIO, "ETH/USDT")):
        pipeline.on_book_update(key)
    pipeline.on_batch_end()
    await eventually(lambda: done() and not controller._pending)
    controller._scanning = False
    controller._wake()
    await asyncio.wait_for(trading, 5)


@pytest.mark.parametrize("eth_updated", [False, True])
def test_an_opportunity_queued_past_the_data_age_limit_is_scanned_again_not_traded_stale(
    tmp_path: Path, eth_updated: bool
) -> None:
    """BTC and ETH both cross; BTC's execution takes 500 ms, five times the data age limit. ETH's queued
    opportunity is then scanned again: traded only when its books have fresh data."""
    now = [10_000_000]
    pipeline, books, _ = btc_and_eth_crossed(now)

    def refresh_eth() -> None:
        if not eth_updated:
            return
        for exchange in (ExchangeName.GATEIO, ExchangeName.MEXC):
            eth = books[(exchange, "ETH")]
            batch = DeltaBatch(1)
            batch.first_update_id = batch.last_update_id = eth.last_update_id + 1
            eth.apply_batch(batch, now[0])  # a diff that changes nothing: fresh data, same prices
            pipeline.on_book_update(BookKey(exchange, "ETH/USDT"))
        pipeline.on_batch_end()

    executor = SlowFirstExecution(now, 500, refresh_eth)
    controller = scanning_controller(tmp_path, executor, pipeline, now)

    asyncio.run(trade_both_crossed(controller, pipeline, lambda: len(executor.sent) == (2 if eth_updated else 1)))
    assert executor.sent[0] == ("BTC/USDT", 0)
    if eth_updated:  # found again by the scan of its fresh update, and traded on that
        assert executor.sent[1] == ("ETH/USDT", 0)
    else:  # 500 ms old by the time BTC was done: scanned again, and the stale books find nothing
        assert executor.sent[1:] == []
        assert controller.summary().skipped_as_outdated == 1


def test_an_opportunity_whose_books_passed_the_data_age_limit_in_the_queue_is_scanned_again(tmp_path: Path) -> None:
    """Both crossings are found on books 90 ms old (the limit is 100); BTC's execution takes 20 ms.
    ETH's opportunity is then only 20 ms old, but its books are 110 ms old: scanned again, and the
    stale books find nothing, rather than traded on them."""
    now = [10_000_000]
    pipeline, _, _ = btc_and_eth_crossed(now)
    now[0] += 90_000_000
    executor = SlowFirstExecution(now, 20, lambda: None)
    controller = scanning_controller(tmp_path, executor, pipeline, now)

    asyncio.run(trade_both_crossed(controller, pipeline, lambda: len(executor.sent) == 1))
    assert executor.sent == [("BTC/USDT", 0)]
    assert controller.summary().skipped_as_outdated == 1


def test_of_opportunities_found_together_the_most_profitable_is_traded_first(tmp_path: Path) -> None:
    """BTC and ETH cross at once, BTC first in the configuration and ETH paying more (0.03 ETH
    at 20 USDT a unit against 0.001 BTC at 400). The queue was taken in its order, so BTC
    traded first, spending the balances the better ETH trade needed, while ETH's chance aged."""
    now = [10_000_000]
    pipeline, _, plans = btc_and_eth_crossed(now)
    for leg in plans["ETH"].legs:
        pipeline.set_leg_limits(plans["ETH"].symbol_id, leg.leg_id, D("0.03"), D("0.03"))
    executor = SlowFirstExecution(now, 0, lambda: None)
    controller = scanning_controller(tmp_path, executor, pipeline, now)

    asyncio.run(trade_both_crossed(controller, pipeline, lambda: len(executor.sent) == 2))
    assert [symbol for symbol, _ in executor.sent] == ["ETH/USDT", "BTC/USDT"]


def test_an_opportunity_queued_behind_a_trade_on_its_markets_is_sized_again_from_what_that_trade_left(
    tmp_path: Path,
) -> None:
    """BTC and ETH both cross between the same two venues, BTC queued first. While BTC executes, its
    buy spends most of Gate.io's quote (here: the ETH buy cap drops to 0.004 ETH, as the balance
    monitor's ``spend`` sets it). ETH's queued opportunity, sized for 0.01 before that, is scanned
    again and sent for what is left."""
    now = [10_000_000]
    pipeline, _, plans = btc_and_eth_crossed(now)
    eth = plans["ETH"]

    def btc_spent_the_quote() -> None:
        pipeline.set_leg_limits(eth.symbol_id, 0, D("0.004"), D("0.01"))

    sent: list[ArbitrageOpportunity] = []

    class Recording(SlowFirstExecution):
        def start(self, opportunity: ArbitrageOpportunity) -> StartedExecution:
            sent.append(opportunity)
            return super().start(opportunity)

    executor = Recording(now, 20, btc_spent_the_quote)
    controller = scanning_controller(tmp_path, executor, pipeline, now)

    asyncio.run(trade_both_crossed(controller, pipeline, lambda: len(sent) == 2))
    assert [(o.symbol, o.max_quantity) for o in sent] == [("BTC/USDT", D("0.001")), ("ETH/USDT", D("0.004"))]
    summary = controller.summary()
    assert summary.resized_after_trade == 1 and "  sized again after a trade 1" in summary.lines()


@pytest.mark.parametrize(("btc_mexc_bid", "traded"), [("60400", True), ("64000", False)])
def test_an_opportunity_refused_by_risk_is_no_trade_for_the_next_one_on_its_markets(
    tmp_path: Path, btc_mexc_bid: str, traded: bool
) -> None:
    """BTC and ETH both cross between the same two venues, BTC queued first. BTC at 66 bps trades; at
    666 bps it is refused as too good to be true (past max_profit_margin_bps). A refusal was noted
    as a trade: ETH was then scanned again and counted as "sized again after a trade", and on a
    hedge-only run a hedge sharing the refused one's perpetual was dropped uncounted."""
    now = [10_000_000]
    pipeline = ScannerPipeline(max_data_age_ms=100, clock=lambda: now[0])
    instruments = {(i.exchange, i.base): i for i in default_instruments(("BTC", "ETH"))}
    for base, low, high in (("BTC", "60000", btc_mexc_bid), ("ETH", "3000", "3020")):
        legs = []
        for exchange, bids, asks in ((ExchangeName.GATEIO, [("1", "1")], [(low, "1")]),
                                     (ExchangeName.MEXC, [(high, "1")], [("99999", "1")])):
            instrument = instruments[(exchange, base)]
            scale = WireScale(*instrument.wire_scale())
            legs.append((instrument, book(f"{exchange.value} {base}", scale, bids, asks, recv_ns=now[0]), scale))
        (plan,) = pipeline.register_symbol(f"{base}/USDT", legs)
        cap = D("0.001") if base == "BTC" else D("0.01")
        for leg in plan.legs:
            pipeline.set_leg_limits(plan.symbol_id, leg.leg_id, cap, cap)
    executor = FillsEveryLeg(now, filled=False)
    controller = scanning_controller(tmp_path, executor, pipeline, now)

    def ticking() -> int:  # a real clock: every read a little later
        now[0] += 1_000
        return now[0]

    controller.clock = pipeline.clock = ticking
    asyncio.run(trade_both_crossed(controller, pipeline, lambda: len(executor.sent) == (2 if traded else 1)))
    summary = controller.summary()
    assert len(executor.sent) == (2 if traded else 1)  # ETH trades either way
    assert summary.resized_after_trade == (1 if traded else 0)
    assert summary.rejected_by_risk == ({} if traded else {"max_profit_margin_bps": 1})


def test_an_executions_spot_fills_are_spent_from_the_balances_the_scanner_sizes_by(tmp_path: Path) -> None:
    """Bought 0.001 BTC at 60000 on Gate.io (0.2 % taker: 60.12 USDT with the fee), sold 0.001 on MEXC,
    and a futures fill, which spends margin the position check follows instead."""
    class Venue:
        async def balances(self) -> dict[str, Balance]:
            return {"USDT": Balance(asset="USDT", free=D(100)), "BTC": Balance(asset="BTC", free=D("0.5"))}

    controller = ArbitrageController(manager(tmp_path))
    controller.balances = balances = BalanceMonitor({ExchangeName.GATEIO: Venue(), ExchangeName.MEXC: Venue()})
    controller._catalogs = {
        m: InstrumentCatalog(m, [i for i in default_instruments(("BTC",)) if i.exchange is m])
        for m in (ExchangeName.GATEIO, ExchangeName.MEXC, ExchangeName.GATEIO_FUTURES)
    }
    asyncio.run(balances.refresh())

    def leg(market: ExchangeName, side: OrderSide, symbol: str = "BTC/USDT") -> ExecutionLeg:
        return ExecutionLeg(exchange=market, symbol=symbol, side=side, client_order_id=f"o-{market.value}",
                            requested_quantity=D("0.001"), limit_price=D(60000), filled_quantity=D("0.001"),
                            average_price=D(60000))

    result = ExecutionResult(
        opportunity_id="o", final_state=ArbitrageState.COMPLETED, total_execution_time_ms=D(1), realized_profit=D(0),
        legs=(leg(ExchangeName.GATEIO, OrderSide.BUY), leg(ExchangeName.MEXC, OrderSide.SELL),
              leg(ExchangeName.GATEIO_FUTURES, OrderSide.SELL, "BTC/USDT:USDT")),
    )
    controller._spend_balances(result, balances.frees((ExchangeName.GATEIO, ExchangeName.MEXC)))
    assert balances.free(ExchangeName.GATEIO, "USDT") == D("39.88")  # 100 - 60 * 1.002
    assert balances.free(ExchangeName.GATEIO, "BTC") == D("0.5")  # what it bought counts once the venue says
    assert balances.free(ExchangeName.MEXC, "BTC") == D("0.499")
    assert balances.free(ExchangeName.MEXC, "USDT") == D(100)

    # A recovery order beside the leg it completes, on the same market and asset: the leg's push
    # came before the end; the recovery's spending must stay off until its own push shows it.
    asyncio.run(balances.refresh())
    frees = balances.frees((ExchangeName.GATEIO, ExchangeName.MEXC))
    balances.balance_handler(ExchangeName.GATEIO)(Balance(asset="USDT", free=D("63.928")))  # 100 - 0.0006 BTC's 36.072
    hedged = msgspec.structs.replace(result, legs=(
        msgspec.structs.replace(leg(ExchangeName.GATEIO, OrderSide.BUY), filled_quantity=D("0.0006")),
        msgspec.structs.replace(leg(ExchangeName.GATEIO, OrderSide.BUY), filled_quantity=D("0.0004"),
                                client_order_id="o-h1"),
    ))
    controller._spend_balances(hedged, frees)
    assert balances.free(ExchangeName.GATEIO, "USDT") == D("39.88")  # 100 - both legs' 60.12


class MarginVenue:
    """A venue's balance call, counted; it fails while ``fail`` is set."""

    def __init__(self) -> None:
        self.reads = 0
        self.fail = False

    async def balances(self) -> dict[str, Balance]:
        self.reads += 1
        if self.fail:
            raise ExchangeError("gateio_futures", "balances unavailable")
        return {"USDT": Balance(asset="USDT", free=D(1000)), "BTC": Balance(asset="BTC", free=D(1))}


def hedging_controller(
    tmp_path: Path, venues: Mapping[ExchangeName, MarginVenue]
) -> tuple[ArbitrageController, ArbitrageOpportunity, ArbitrageOpportunity]:
    """A controller whose executions fill every leg, its balances pushed from ``venues``; a spot-spot
    opportunity (MEXC to Gate.io) and a Gate.io hedge (spot bought, perpetual sold)."""
    class FillsBothMarkets(FillsEveryLeg):
        async def finish(self, started: StartedExecution) -> ExecutionResult:
            result = await super().finish(started)
            legs = [msgspec.structs.replace(leg, symbol=market_symbols(leg.exchange, [leg.symbol])[0])
                    for leg in result.legs]
            return msgspec.structs.replace(result, legs=tuple(legs))

    now = [10_000_000]
    configuration = manager(tmp_path)
    controller = ArbitrageController(
        configuration, executor=FillsBothMarkets(now, True), risk=RiskManager(configuration.config.risk_limits),
        clock=lambda: now[0],
    )
    controller.balances = monitor = BalanceMonitor(venues)
    for market in venues:
        monitor.balance_handler(market)  # pushed
    controller._catalogs = {
        m: InstrumentCatalog(m, [i for i in default_instruments(("BTC",)) if i.exchange is m]) for m in venues
    }
    spot_spot = mexc_to_gate("s1", D("60000"), D("60300"), "0.001")
    hedge = msgspec.structs.replace(
        spot_spot, opportunity_id="h1", opportunity_type=OpportunityType.SPOT_FUTURES_HEDGE,
        buy_exchange=ExchangeName.GATEIO, sell_exchange=ExchangeName.GATEIO_FUTURES,
    )
    return controller, spot_spot, hedge


def test_a_futures_fill_has_its_margin_read_before_the_next_opportunity(tmp_path: Path) -> None:
    """Both markets push their balances, so neither is read after a spot-spot execution; a hedge's
    futures fill has its market read at once (the next futures leg is sized by its free margin)."""
    venues = {m: MarginVenue() for m in (ExchangeName.GATEIO, ExchangeName.MEXC, ExchangeName.GATEIO_FUTURES)}
    controller, spot_spot, hedge = hedging_controller(tmp_path, venues)

    async def scenario() -> None:
        assert await controller.process(spot_spot) is not None
        assert [v.reads for v in venues.values()] == [0, 0, 0]
        assert await controller.process(hedge) is not None
        assert [v.reads for v in venues.values()] == [0, 0, 1]

    asyncio.run(scenario())
    assert controller.balances is not None and not controller.balances.held_for_read(ExchangeName.GATEIO_FUTURES)


def test_a_futures_fill_whose_margin_read_fails_holds_its_market_until_a_read_succeeds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The read after a hedge's futures fill fails: the margin known is what it was before the fill,
    and the next futures leg was sized on it. The market now trades nothing (its caps zero) until a
    read of its balances succeeds; a read that fails again keeps it so."""
    futures = MarginVenue()
    venues = {ExchangeName.GATEIO: MarginVenue(), ExchangeName.GATEIO_FUTURES: futures}
    controller, _, hedge = hedging_controller(tmp_path, venues)
    monitor = controller.balances
    assert monitor is not None
    futures.fail = True

    async def scenario() -> list[bool]:
        held = []
        assert await controller.process(hedge) is not None
        held.append(monitor.held_for_read(ExchangeName.GATEIO_FUTURES))
        await monitor.refresh()  # the periodic read, failing again
        held.append(monitor.held_for_read(ExchangeName.GATEIO_FUTURES))
        futures.fail = False
        await monitor.refresh()
        held.append(monitor.held_for_read(ExchangeName.GATEIO_FUTURES))
        return held

    with caplog.at_level(logging.WARNING, logger="arb.controller"):
        assert asyncio.run(scenario()) == [True, True, False]
    assert futures.reads == 3
    assert "gateio_futures: margin unread after a fill there: not traded until a balance read succeeds" in caplog.text
    assert not monitor.held_for_read(ExchangeName.GATEIO)


def test_a_futures_leg_of_unknown_outcome_has_its_margin_read_and_its_market_held_when_that_fails(
    tmp_path: Path,
) -> None:
    """Only a futures leg that filled had its margin read after the execution; one whose outcome is
    unknown may have filled too, and the next futures leg was sized on the margin before it."""
    futures = MarginVenue()
    venues = {ExchangeName.GATEIO: MarginVenue(), ExchangeName.GATEIO_FUTURES: futures}
    controller, _, hedge = hedging_controller(tmp_path, venues)
    executor, monitor = controller.executor, controller.balances
    assert isinstance(executor, FillsEveryLeg) and monitor is not None
    finish = executor.finish

    async def futures_leg_unknown(started: StartedExecution) -> ExecutionResult:
        result = await finish(started)
        legs = tuple(
            msgspec.structs.replace(leg, filled_quantity=D(0), average_price=None, error="outcome unknown: timed out",
                                    error_category=ErrorCategory.OUTCOME_UNKNOWN.value)
            if leg.exchange.is_futures else leg
            for leg in result.legs
        )
        return msgspec.structs.replace(result, legs=legs)

    executor.finish = futures_leg_unknown  # type: ignore[method-assign]
    futures.fail = True
    assert asyncio.run(controller.process(hedge)) is not None
    assert futures.reads == 1 and monitor.held_for_read(ExchangeName.GATEIO_FUTURES)


class FillsEveryLeg:
    """Records each execution; both legs fill in full (or not at all), written at the clock's time of
    the start, the venue stamping the fills ``venue_ms``."""

    def __init__(self, now: list[int], filled: bool, venue_ms: int = 0) -> None:
        self.now, self.filled, self.venue_ms = now, filled, venue_ms
        self.sent: list[int] = []  # the clock at each start

    def start(self, opportunity: ArbitrageOpportunity) -> StartedExecution:
        self.sent.append(self.now[0])
        return StartedExecution(opportunity, self.now[0], self.now[0], ())

    async def finish(self, started: StartedExecution) -> ExecutionResult:
        opp = started.opportunity
        self.now[0] += 1_000_000
        legs = tuple(
            ExecutionLeg(
                exchange=market, symbol=opp.symbol, side=side, client_order_id=f"{opp.opportunity_id}-{side.value}",
                requested_quantity=opp.max_quantity, limit_price=price,
                filled_quantity=opp.max_quantity if self.filled else D(0), average_price=price if self.filled else None,
                updated_at_ms=self.venue_ms,
            )
            for market, side, price in ((opp.buy_exchange, OrderSide.BUY, opp.buy_price),
                                        (opp.sell_exchange, OrderSide.SELL, opp.sell_price))
        )
        return ExecutionResult(
            opportunity_id=opp.opportunity_id, final_state=ArbitrageState.COMPLETED,
            total_execution_time_ms=D(1), realized_profit=D(0), legs=legs,
        )

    def rehearse(self, opportunity: ArbitrageOpportunity) -> bool:
        return False

    def refusal(self, opportunity: ArbitrageOpportunity) -> str | None:
        return None


class CrossedBtc:
    """Gate.io's BTC ask below MEXC's bid, scanned by a pipeline on the clock ``now[0]``."""

    def __init__(self, now: list[int]) -> None:
        self.now = now
        self.pipeline = ScannerPipeline(max_data_age_ms=100, clock=lambda: now[0])
        self.instruments = {i.exchange: i for i in default_instruments(("BTC",))}
        self.books: dict[ExchangeName, OrderBook] = {}
        legs = []
        for exchange, bids, asks in ((ExchangeName.GATEIO, [("1", "1")], [("60000", "1")]),
                                     (ExchangeName.MEXC, [("60400", "1")], [("99999", "1")])):
            scale = WireScale(*self.instruments[exchange].wire_scale())
            self.books[exchange] = book(f"{exchange.value} BTC", scale, bids, asks, recv_ns=now[0])
            legs.append((self.instruments[exchange], self.books[exchange], scale))
        (plan,) = self.pipeline.register_symbol("BTC/USDT", legs)
        for leg in plan.legs:
            self.pipeline.set_leg_limits(plan.symbol_id, leg.leg_id, D("0.001"), D("0.001"))

    def update(self, exchange: ExchangeName, event_ms: int = 0, asks: Sequence[tuple[str, str]] = ()) -> None:
        """A diff setting ``asks`` (price, size; size 0 removes), nothing by default, received 1 ms later
        and stamped ``event_ms`` by the venue; then the scan."""
        self.now[0] += 1_000_000
        target, instrument = self.books[exchange], self.instruments[exchange]
        batch = DeltaBatch(1)
        batch.first_update_id = batch.last_update_id = target.last_update_id + 1
        batch.event_time_ms = event_ms
        for price, size in asks:
            batch.add(ASK, instrument.price_to_ticks(D(price)), instrument.size_to_lots(D(size)))
        target.apply_batch(batch, self.now[0])
        self.pipeline.on_book_update(BookKey(exchange, "BTC/USDT"))
        self.pipeline.on_batch_end()


def test_an_opportunity_a_later_read_withdrew_before_its_turn_is_not_traded(tmp_path: Path) -> None:
    """MEXC's update queues the crossing of Gate.io's 60000 ask; before the trade loop takes it, Gate.io's
    next read removes that ask and its scan finds nothing. The queued opportunity is dropped, not traded
    on books that no longer show it; a later crossing is traded as usual."""
    now = [10_000_000]
    market = CrossedBtc(now)
    executor = FillsEveryLeg(now, False)
    controller = scanning_controller(tmp_path, executor, market.pipeline, now)

    async def scenario() -> None:
        trading = await start_trading(controller)
        market.update(ExchangeName.MEXC)
        assert controller._pending  # queued; the trade loop has not run yet
        market.update(ExchangeName.GATEIO, asks=[("60000", "0")])  # the same loop step: another socket's read
        await eventually(lambda: not controller._pending)
        await asyncio.sleep(0.01)
        assert executor.sent == []
        market.update(ExchangeName.GATEIO, asks=[("60100", "1")])  # crosses MEXC's 60400 bid again
        await eventually(lambda: len(executor.sent) == 1 and not controller._pending)
        controller._scanning = False
        controller._wake()
        await asyncio.wait_for(trading, 5)

    asyncio.run(scenario())
    assert controller.summary().skipped_as_withdrawn == 1


@pytest.mark.parametrize("filled", [True, False])
def test_a_market_is_not_traded_again_until_its_book_has_shown_our_fills(tmp_path: Path, filled: bool) -> None:
    """Gate.io's ask and MEXC's bid cross; our execution takes both. MEXC's next update still crosses
    Gate.io's book, which has not been updated since: the liquidity our buy took is still in it, so
    the opportunity is passed up until Gate.io's book is updated. Legs that filled nothing hold nothing."""
    now = [10_000_000]
    market = CrossedBtc(now)
    executor = FillsEveryLeg(now, filled)
    controller = scanning_controller(tmp_path, executor, market.pipeline, now)

    async def scenario() -> None:
        trading = await start_trading(controller)
        market.update(ExchangeName.MEXC)
        await eventually(lambda: len(executor.sent) == 1 and not controller._pending)
        market.update(ExchangeName.MEXC)  # received after our fills were written; Gate.io's book is older
        await eventually(lambda: len(executor.sent) == (1 if filled else 2) and not controller._pending)
        market.update(ExchangeName.GATEIO)
        await eventually(lambda: len(executor.sent) == (2 if filled else 3) and not controller._pending)
        controller._scanning = False
        controller._wake()
        await asyncio.wait_for(trading, 5)

    asyncio.run(scenario())
    assert controller.summary().skipped_for_unseen_fills == (1 if filled else 0)


def test_a_book_on_a_rest_snapshot_requested_before_our_orders_does_not_show_their_fills(tmp_path: Path) -> None:
    """Gate.io's book is resynced by a REST snapshot answered after our fills were written but requested
    before: the venue may have composed it before the fills, so it counted as showing them wrongly."""
    now = [10_000_000]
    market = CrossedBtc(now)
    executor = FillsEveryLeg(now, True)
    controller = scanning_controller(tmp_path, executor, market.pipeline, now)
    requested: list[int | None] = []
    controller._rest_snapshot_requested_ns = (  # type: ignore[method-assign]
        lambda market, symbol: requested[-1] if market is ExchangeName.GATEIO else None
    )

    async def given(opportunity_id: str) -> ExecutionResult | None:
        found = market.pipeline.scan(0)
        assert found is not None
        return await controller.process(msgspec.structs.replace(found, opportunity_id=opportunity_id), given=True)

    async def scenario() -> list[ExecutionResult | None]:
        requested.append(None)
        sent = now[0]
        assert await given("first1") is not None
        requested.append(sent)  # the snapshot now under Gate.io's book was asked for as the orders went
        market.update(ExchangeName.MEXC)
        market.update(ExchangeName.GATEIO)  # received after the write
        refused = await given("second1")
        requested.append(now[0])
        return [refused, await given("third1")]

    refused, taken = asyncio.run(scenario())
    assert refused is None and taken is not None
    assert controller.summary().skipped_for_unseen_fills == 1


def test_an_opportunity_given_through_the_api_waits_for_the_books_to_show_our_last_fills(tmp_path: Path) -> None:
    """A given crossing of Gate.io's ask and MEXC's bid fills both legs. MEXC's next update still
    crosses Gate.io's book, which has not been updated since: the same crossing given again was
    sized on the liquidity our buy took. It is refused as the trade loop passes up its own, until
    Gate.io's book is updated."""
    now = [10_000_000]
    market = CrossedBtc(now)
    executor = FillsEveryLeg(now, True)
    controller = scanning_controller(tmp_path, executor, market.pipeline, now)

    async def given(opportunity_id: str) -> ExecutionResult | None:
        found = market.pipeline.scan(0)
        assert found is not None
        return await controller.process(msgspec.structs.replace(found, opportunity_id=opportunity_id), given=True)

    async def scenario() -> tuple[ExecutionResult | None, str]:
        assert await given("first1") is not None
        market.update(ExchangeName.MEXC)  # received after our fills were written; Gate.io's book is older
        refused = await given("second1")
        refusal = controller.last_refusal
        market.update(ExchangeName.GATEIO)
        assert await given("third1") is not None
        return refused, refusal

    refused, refusal = asyncio.run(scenario())
    assert refused is None
    assert refusal.startswith("not executed: opportunity ") and "does not show our last fill there yet" in refusal
    assert len(executor.sent) == 2
    assert controller.summary().skipped_for_unseen_fills == 1


@pytest.mark.parametrize("mode", ["LIVE", "dry run", "paper"])
def test_a_push_the_venue_stamped_before_our_fill_does_not_show_it(tmp_path: Path, mode: str) -> None:
    """The venues stamp our fills at 5000 ms. Updates of both books received after our orders were
    written but stamped 5000 ms (composed by then, delivered late) do not count as showing them;
    updates stamped 5001 ms do. Paper fills carry the local clock, so there only receipt counts."""
    now = [10_000_000]
    market = CrossedBtc(now)
    executor = FillsEveryLeg(now, True, venue_ms=5_000)
    controller = scanning_controller(tmp_path, executor, market.pipeline, now)
    controller.mode = mode

    async def both_updated(event_ms: int) -> None:
        for exchange in (ExchangeName.MEXC, ExchangeName.GATEIO):
            market.update(exchange, event_ms)
            await eventually(lambda: not controller._pending)

    async def scenario() -> list[int]:
        trading = await start_trading(controller)
        market.update(ExchangeName.MEXC, 4_000)
        await eventually(lambda: len(executor.sent) == 1 and not controller._pending)
        traded = []
        for event_ms in (5_000, 5_001):
            await both_updated(event_ms)
            traded.append(len(executor.sent))
        controller._scanning = False
        controller._wake()
        await asyncio.wait_for(trading, 5)
        return traded

    traded = asyncio.run(scenario())
    if mode == "paper":
        assert traded[0] == 2  # traded on the second book's update, stamps aside
    else:
        assert traded == [1, 2]
        assert controller.summary().skipped_for_unseen_fills == 3  # both 5000 ms updates, then MEXC's at 5001


class BookSource:
    """The public side of one market of ``CrossedBtc`` a paper market fills against."""

    def __init__(self, market: CrossedBtc, exchange: ExchangeName) -> None:
        self.market, self.exchange = market, exchange

    async def instruments(self) -> InstrumentCatalog:
        return InstrumentCatalog(self.exchange, [self.market.instruments[self.exchange]])

    def books(self) -> Mapping[str, OrderBook]:
        return {"BTC/USDT": self.market.books[self.exchange]}

    def book_scale(self, symbol: str) -> WireScale:
        return WireScale(*self.market.instruments[self.exchange].wire_scale())

    def order_wait_s(self, symbol: str) -> float:
        return 0.0

    async def spend_order_budget(self, symbol: str) -> None:
        return None

    def stream_heard_ns(self, symbol: str) -> int:
        return time.monotonic_ns()  # a live stream

    def ping_stream(self, symbol: str) -> None:
        return None


class BuysOnPaper(FillsEveryLeg):
    """``FillsEveryLeg`` whose buy leg is also placed on a paper market (which keeps what it took)."""

    def __init__(self, now: list[int], paper: PaperExchange) -> None:
        super().__init__(now, True)
        self.paper = paper

    async def finish(self, started: StartedExecution) -> ExecutionResult:
        opp = started.opportunity
        await self.paper.place_order(OrderRequest(
            symbol=opp.symbol, side=OrderSide.BUY, type=OrderType.LIMIT, quantity=opp.max_quantity,
            price=opp.buy_price, time_in_force=TimeInForce.IOC, client_order_id=f"{opp.opportunity_id}-b",
        ))
        return await super().finish(started)


def test_a_paper_run_does_not_trade_liquidity_its_paper_orders_took_again(tmp_path: Path) -> None:
    """A paper buy takes Gate.io's whole 60000 ask. The public book never shows that: once both
    books have been updated since, it still holds the ask, and the same crossing is found again.
    Live, Gate.io's book would no longer show it, so it is passed up until the liquidity is new."""
    now = [10_000_000]
    market = CrossedBtc(now)
    gateio = market.instruments[ExchangeName.GATEIO]
    paper = PaperExchange(BookSource(market, ExchangeName.GATEIO), {"USDT": D("1000")})
    executor = BuysOnPaper(now, paper)
    controller = scanning_controller(tmp_path, executor, market.pipeline, now)
    controller.mode = "paper"
    controller._paper_markets = {ExchangeName.GATEIO: paper}
    controller._catalogs = {ExchangeName.GATEIO: InstrumentCatalog(ExchangeName.GATEIO, [gateio])}

    async def scenario() -> list[int]:
        trading = await start_trading(controller)
        market.update(ExchangeName.GATEIO, asks=[("60000", "0.001")])  # crosses MEXC's bid: traded
        await eventually(lambda: len(executor.sent) == 1 and not controller._pending)
        traded = []
        for exchange in (ExchangeName.GATEIO, ExchangeName.MEXC):  # both updated after our fills
            market.update(exchange)
            await eventually(lambda: not controller._pending)
            traded.append(len(executor.sent))
        market.update(ExchangeName.GATEIO, asks=[("60000", "0.0015")])  # a maker adds 0.0005: not enough
        await eventually(lambda: not controller._pending)
        traded.append(len(executor.sent))
        market.update(ExchangeName.GATEIO, asks=[("60000", "0"), ("60010", "0.001")])  # new liquidity
        await eventually(lambda: len(executor.sent) == 2 and not controller._pending)
        controller._scanning = False
        controller._wake()
        await asyncio.wait_for(trading, 5)
        return traded

    assert asyncio.run(scenario()) == [1, 1, 1]
    assert [f.price for f in paper.fills()] == [D("60000"), D("60010")]
    assert controller.summary().skipped_for_unseen_fills >= 2


class VenueBalances:
    """A venue's balance call answering ``free`` by asset; a test changes it as fills would."""

    def __init__(self, **free: str) -> None:
        self.free = {asset: D(amount) for asset, amount in free.items()}

    async def balances(self) -> dict[str, Balance]:
        return {asset: Balance(asset=asset, free=amount) for asset, amount in self.free.items()}


@pytest.mark.parametrize(
    ("gate_usdt", "mexc_btc", "refusal"),
    [
        ("60.1", "0.001", "its quantity 0.001 is above the 0.000999 the free balances on gateio let it buy"),
        ("60.12", "0.0005", "its quantity 0.001 is above the 0.0005 the free balances on mexc let it sell"),
    ],
)
def test_an_opportunity_given_through_the_api_is_held_to_the_free_balances(
    tmp_path: Path, gate_usdt: str, mexc_btc: str, refusal: str
) -> None:
    """0.001 BTC bought on Gate.io at 60000 costs 60.12 USDT with the 0.2 % taker fee, and is sold on
    MEXC. The scanner sizes its own by the free balances; a given one was sent for any quantity,
    its legs refused by the venues or, worse, one filled and the other not."""
    now = [10_000_000]
    market = CrossedBtc(now)
    found = market.pipeline.scan(0)
    assert found is not None and found.max_quantity == D("0.001")
    controller = scanning_controller(tmp_path, InstantExecutor(), market.pipeline, now)
    gate, mexc = VenueBalances(USDT=gate_usdt), VenueBalances(BTC=mexc_btc)
    controller.balances = balances = BalanceMonitor({ExchangeName.GATEIO: gate, ExchangeName.MEXC: mexc})
    asyncio.run(balances.refresh())
    where = f"opportunity {found.opportunity_id} BTC/USDT"
    assert controller._given_refusal(found, now[0]) == f"not executed: {where}: {refusal}"
    gate.free["USDT"], mexc.free["BTC"] = D("60.12"), D("0.001")  # just enough
    asyncio.run(balances.refresh())
    assert controller._given_refusal(found, now[0]) is None


@pytest.mark.parametrize(("margin", "room", "allowed"), [("100", None, "0.001646"), ("1000", "0.004", "0.004")])
def test_a_hedge_given_through_the_api_is_held_to_its_futures_margin_and_position_limit(
    tmp_path: Path, margin: str, room: str | None, allowed: str
) -> None:
    """The perpetual's leg of a given hedge (0.01 BTC sold at 60700) was not held to its free margin
    at 1x, nor to the room its position limit leaves, as the scanner holds its own."""
    controller, opening = gate_hedge(tmp_path, ["0.0001"])
    futures = VenueBalances(USDT=margin)
    controller.balances = balances = BalanceMonitor(
        {ExchangeName.GATEIO: VenueBalances(USDT="1000"), ExchangeName.GATEIO_FUTURES: futures}
    )
    if room is not None:
        balances.position_room = lambda market, symbol, price: (D(1), D(room))
    asyncio.run(balances.refresh())
    assert controller._given_refusal(opening, 2) == (
        f"not executed: opportunity {opening.opportunity_id} BTC/USDT: its quantity 0.01 is above the {allowed} "
        "the free balances on gateio_futures let it sell"
    )
    futures.free["USDT"] = D(1000)
    balances.position_room = None
    asyncio.run(balances.refresh())
    assert controller._given_refusal(opening, 2) is None


def test_a_hedge_given_through_the_api_is_refused_while_its_futures_margin_is_unread(tmp_path: Path) -> None:
    """The read after a futures fill failed: the margin known there is older than that fill. A given
    hedge was sized on it as on a current one; it is refused, naming why, until a read succeeds."""
    controller, opening = gate_hedge(tmp_path, ["0.0001"])
    controller.balances = balances = BalanceMonitor(
        {ExchangeName.GATEIO: VenueBalances(USDT="1000"), ExchangeName.GATEIO_FUTURES: VenueBalances(USDT="1000")}
    )
    asyncio.run(balances.refresh())
    assert controller._given_refusal(opening, 2) is None
    balances.hold_until_read([ExchangeName.GATEIO_FUTURES])
    assert controller._given_refusal(opening, 2) == (
        f"not executed: opportunity {opening.opportunity_id} BTC/USDT: gateio_futures's balances are out of date "
        "(the read after a fill there failed): nothing is traded there until a read succeeds"
    )
    asyncio.run(balances.refresh())
    assert controller._given_refusal(opening, 2) is None


class HeldExecution(FillsEveryLeg):
    """Records (opportunity id, quantity) at each start; every leg fills in full once ``release`` is set."""

    def __init__(self, now: list[int]) -> None:
        super().__init__(now, filled=True)
        self.release = asyncio.Event()
        self.quantities: list[tuple[str, D]] = []

    def start(self, opportunity: ArbitrageOpportunity) -> StartedExecution:
        self.quantities.append((opportunity.opportunity_id, opportunity.max_quantity))
        return super().start(opportunity)

    async def finish(self, started: StartedExecution) -> ExecutionResult:
        await self.release.wait()
        return await super().finish(started)


def test_the_trade_loop_waits_for_an_execution_given_through_the_api_and_sizes_on_what_it_left(tmp_path: Path) -> None:
    """Gate.io's quote pays for 0.001 BTC once and MEXC holds 0.001 BTC to sell: an execution given
    through the API takes both. While its orders were out, the trade loop sized the same crossing
    on balances its fills had not yet spent and sent it again, full size, beside it."""
    now = [10_000_000]
    market = CrossedBtc(now)
    executor = HeldExecution(now)
    controller = scanning_controller(tmp_path, executor, market.pipeline, now)
    gate, mexc = VenueBalances(USDT="60.2"), VenueBalances(BTC="0.001")
    controller.balances = balances = BalanceMonitor({ExchangeName.GATEIO: gate, ExchangeName.MEXC: mexc})
    balances.pipeline = market.pipeline

    async def scenario() -> None:
        await balances.refresh()
        found = market.pipeline.scan(0)
        assert found is not None and found.max_quantity == D("0.001")
        trading = await start_trading(controller)
        given = asyncio.ensure_future(
            controller.process(msgspec.structs.replace(found, opportunity_id="given1"), given=True)
        )
        await asyncio.sleep(0)  # its orders are out
        market.update(ExchangeName.MEXC)  # the crossing scanned again, on the balances before its fills
        await asyncio.sleep(0.01)
        assert executor.quantities == [("given1", D("0.001"))]
        gate.free["USDT"], mexc.free["BTC"] = D("0.08"), D(0)  # what its fills left, read once it ends
        executor.release.set()
        assert await given is not None
        for exchange in (ExchangeName.GATEIO, ExchangeName.MEXC):
            market.update(exchange)  # both books show the fills: scanned again
            await eventually(lambda: not controller._pending)
        controller._scanning = False
        controller._wake()
        await asyncio.wait_for(trading, 5)

    asyncio.run(scenario())
    assert executor.quantities == [("given1", D("0.001"))]


def test_an_opportunity_given_while_another_executes_waits_for_its_end_and_is_checked_then(tmp_path: Path) -> None:
    """Two opportunities given through the API at once: both were sent together, each sized on
    balance the other's orders were spending. The second now waits for the first's end; 200 ms
    later its data is past the 100 ms limit, and it is refused then, though fresh when given."""
    now = [10_000_000]
    market = CrossedBtc(now)
    executor = HeldExecution(now)
    controller = scanning_controller(tmp_path, executor, market.pipeline, now)
    found = market.pipeline.scan(0)
    assert found is not None

    async def scenario() -> str | None:
        first = asyncio.ensure_future(controller.process(msgspec.structs.replace(found, opportunity_id="one1"), given=True))
        await asyncio.sleep(0)
        second = asyncio.ensure_future(controller.process(msgspec.structs.replace(found, opportunity_id="two1"), given=True))
        await asyncio.sleep(0.01)
        assert executor.quantities == [("one1", D("0.001"))]
        now[0] += 200_000_000
        for exchange in (ExchangeName.GATEIO, ExchangeName.MEXC):
            market.update(exchange)  # the books stay fresh
        executor.release.set()
        assert await first is not None and await second is None
        return controller.last_refusal

    # 200 ms, and 1 ms for each book's update and for the first one's fills
    assert asyncio.run(scenario()) == "not executed: detected 203.0 ms ago, past max_data_age_ms (100)"
    assert executor.quantities == [("one1", D("0.001"))]


def test_an_opportunity_queued_before_an_execution_given_through_the_api_is_sized_again(tmp_path: Path) -> None:
    """BTC and ETH cross between the same two venues. ETH's opportunity is queued, then BTC is given
    through the API and executes, spending balance on both of ETH's markets: ETH is scanned again,
    as after the trade loop's own executions, rather than sent as it was sized before."""
    now = [10_000_000]
    pipeline, _, plans = btc_and_eth_crossed(now)
    executor = SlowFirstExecution(now, 0, lambda: None)
    controller = scanning_controller(tmp_path, executor, pipeline, now)
    btc = pipeline.scan(plans["BTC"].symbol_id)
    assert btc is not None
    controller._scanning = True
    pipeline.scan(plans["ETH"].symbol_id)  # queued
    now[0] += 1_000_000

    async def scenario() -> None:
        assert await controller.process(msgspec.structs.replace(btc, opportunity_id="given1"), given=True) is not None
        trading = await start_trading(controller)
        await eventually(lambda: len(executor.sent) == 2 and not controller._pending)
        controller._scanning = False
        controller._wake()
        await asyncio.wait_for(trading, 5)

    asyncio.run(scenario())
    assert executor.sent == [("BTC/USDT", 1_000_000), ("ETH/USDT", 0)]  # ETH sized on the books after BTC
    assert controller.summary().resized_after_trade == 1


def test_a_signed_call_that_cannot_be_made_refuses_live_trading_without_quoting_the_error(tmp_path: Path) -> None:
    class Unsendable:
        """A connector whose signed call fails below the engine's error tree, quoting a header."""

        binding = SimpleNamespace(trading=object())  # it trades
        key_variable = "GATEIO_API_KEY"

        async def balances(self) -> None:
            raise ValueError("invalid header value 'KEY-sk-live-abc\\n'")

    controller = ArbitrageController(manager(tmp_path))
    controller.connectors = {ExchangeName.GATEIO: Unsendable()}  # type: ignore[dict-item]
    with pytest.raises(ConfigurationError) as refused:
        asyncio.run(controller._verify_keys())
    assert refused.value.problems == (
        "exchange gateio: the signed balance call with GATEIO_API_KEY could not be made (ValueError)",
    )


@pytest.mark.parametrize("answer", [b'"canTrade":false', b'"canTrade":true', b""])
def test_a_mexc_account_that_may_not_trade_refuses_live_trading(tmp_path: Path, answer: bytes) -> None:
    """MEXC's account answer said ``canTrade`` false and the key check passed all the same: the first
    MEXC order was refused, perhaps after the other venue's leg had filled. Only an explicit false
    refuses: an answer without the field says nothing either way."""
    async def scenario() -> tuple[str, ...]:
        async with simulated_venues(moving=False) as sim:
            controller = ArbitrageController(manager(tmp_path))
            controller.connectors = {m: sim.connector(m) for m in (ExchangeName.MEXC, ExchangeName.GATEIO)}
            rest = controller.connectors[ExchangeName.MEXC].rest
            fetch = rest.fetch

            async def answering(request: Any) -> bytes:
                body = await fetch(request)
                if request.path != "/api/v3/account":
                    return body
                assert b'"canTrade":true,' in body
                return body.replace(b'"canTrade":true,', answer + b"," if answer else b"")

            rest.fetch = answering  # type: ignore[method-assign]
            try:
                await controller._verify_keys()
            except ConfigurationError as refused:
                return refused.problems
            finally:
                for connector in controller.connectors.values():
                    await connector.close()
            return ()

    problems = asyncio.run(scenario())
    if answer != b'"canTrade":false':
        assert problems == ()
        return
    (problem,) = problems
    assert problem.startswith("exchange mexc: the account of MEXC_API_KEY may not trade")
    assert "canTrade=false" in problem and "MEXC" in problem


def test_a_refused_key_is_named_by_the_variable_it_was_read_from(tmp_path: Path) -> None:
    """A key read from MEXC_API_KEY_ENCRYPTED was reported as MEXC_API_KEY, a variable not set."""
    refused_key = ApiCredentials(CREDENTIALS.api_key, Secret("not-the-secret"), "MEXC_API_KEY_ENCRYPTED")

    async def scenario() -> tuple[str, ...]:
        async with simulated_venues(moving=False) as sim:
            controller = ArbitrageController(manager(tmp_path))
            controller.connectors = {ExchangeName.MEXC: sim.connector(ExchangeName.MEXC, credentials=refused_key)}
            try:
                with pytest.raises(ConfigurationError) as refused:
                    await controller._verify_keys()
                return refused.value.problems
            finally:
                await controller.connectors[ExchangeName.MEXC].close()

    (problem,) = asyncio.run(scenario())
    assert problem.startswith("exchange mexc: the signed balance call failed with MEXC_API_KEY_ENCRYPTED: mexc: ")


def test_a_clock_the_venue_refuses_is_named_when_live_trading_is_refused_and_checked_while_running(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """MEXC's clock runs 1.5 s behind ours: it refuses every signed call (1 s ahead is its limit).
    A live start says so; a run logs it as an error, and a clock past half of MEXC's window as a
    warning. Gate.io takes 60 s either way: nothing is said of it."""
    async def scenario() -> tuple[tuple[str, ...], list[str]]:
        async with simulated_venues(moving=False) as sim:
            sim.faults.configure("mexc", VenueFaults(clock_skew_ms=-1_500))
            controller = ArbitrageController(manager(tmp_path))
            controller.connectors = {m: sim.connector(m) for m in (ExchangeName.MEXC, ExchangeName.GATEIO)}
            try:
                with pytest.raises(ConfigurationError) as refused:
                    await controller._verify_keys()
                logged = []
                for skew_ms in (-1_500, -700, -100):
                    sim.faults.configure("mexc", VenueFaults(clock_skew_ms=skew_ms))
                    caplog.clear()
                    await controller._check_clocks()
                    logged.append(" | ".join(f"{r.levelname} {r.getMessage()}" for r in caplog.records))
                return refused.value.problems, logged
            finally:
                for connector in controller.connectors.values():
                    await connector.close()

    with caplog.at_level(logging.WARNING, logger="arb.controller"):
        problems, logged = asyncio.run(scenario())
    (problem,) = problems
    assert problem.startswith("exchange mexc: the signed balance call failed with MEXC_API_KEY: mexc: ")
    assert "outside of the recvWindow" in problem
    assert problem.endswith("ms ahead of the venue's, which refuses signed requests 1000 ms ahead or more: "
                            "synchronise the clock (chrony or `timedatectl set-ntp true`)")
    assert logged[0].startswith("ERROR mexc: the local clock is 1") and logged[0].endswith(
        "its orders are refused until the clock is synchronised")
    assert logged[1].startswith("WARNING mexc: the local clock is") and "past half of what its signed" in logged[1]
    assert logged[2] == ""


def test_a_timestamp_refusal_reads_the_venues_clock_with_the_trading_rules_read_only_at_start_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``instrument_refresh_interval_ms = 0`` reads the rules only at start-up, not the clocks: MEXC's
    clock falls 1.5 s behind ours while the engine runs, and the signed read it refuses for its
    timestamp has the clock read at once, so the next signed read is taken."""
    configuration = manager(tmp_path, CONFIG + "instrument_refresh_interval_ms = 0\n")
    cluster = dry_run_cluster(configuration.config, random_per_minute=0)

    async def scenario() -> None:
        async with cluster:
            controller = ArbitrageController(configuration, sim_cluster=cluster, journal=Journal(tmp_path / "j.sqlite3"))
            await controller.initialize(dry_run=True)
            running = asyncio.ensure_future(controller.run(duration_s=30))
            mexc = controller.connectors[ExchangeName.MEXC]
            cluster.faults.configure("mexc", VenueFaults(clock_skew_ms=-1_500))
            with pytest.raises(ExchangeError) as refused:
                await mexc.balances()
            assert refused.value.category == ErrorCategory.TIMESTAMP
            await eventually(lambda: mexc.clock_skew is not None and mexc.clock_skew < -1_000, 10, "the clock read")
            await mexc.balances()
            await controller.shutdown("test over")
            await running

    with caplog.at_level(logging.WARNING, logger="arb.controller"):
        asyncio.run(scenario())
    messages = [r.getMessage() for r in caplog.records]
    assert "mexc GET /api/v3/account refused for its timestamp: reading the venue's clock now" in messages
    assert any(m.startswith("mexc: the local clock is 1") and "refuses signed requests 1000 ms ahead" in m
               for m in messages)


def test_a_read_brought_forward_reads_the_clocks_before_the_rules_it_signs_for(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """MEXC's account fee rates are a signed read of the rules read. Its clock falls 1.5 s behind
    ours and a refusal brings both reads forward: read with the old clock, the fee read was refused
    for its timestamp too, keeping the listed fees and bringing yet another read forward."""
    configuration = manager(tmp_path, CONFIG + "instrument_refresh_interval_ms = 60000\n")
    cluster = dry_run_cluster(configuration.config, random_per_minute=0)
    rules_read: list[float] = []

    async def scenario() -> None:
        async with cluster:
            controller = ArbitrageController(configuration, sim_cluster=cluster, journal=Journal(tmp_path / "j.sqlite3"))
            await controller.initialize(dry_run=True)
            read_rules = controller._read_trading_rules

            async def reading_rules(interval_s: float) -> None:
                await read_rules(interval_s)
                rules_read.append(interval_s)

            controller._read_trading_rules = reading_rules  # type: ignore[method-assign]
            running = asyncio.ensure_future(controller.run(duration_s=30))
            mexc = controller.connectors[ExchangeName.MEXC]
            cluster.faults.configure("mexc", VenueFaults(clock_skew_ms=-1_500))
            controller._on_timestamp_refused(ExchangeName.MEXC, "GET /api/v3/account")
            await eventually(lambda: bool(rules_read), 10, "the rules read")
            assert mexc.clock_skew is not None and mexc.clock_skew < -1_000
            await controller.shutdown("test over")
            await running

    with caplog.at_level(logging.WARNING):
        asyncio.run(scenario())
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "account fees unavailable" in m or "tradeFee" in m]


@pytest.mark.parametrize("rules_ms", [0, 86_400_000], ids=["rules at start-up only", "rules daily"])
def test_the_venues_clocks_are_read_every_clock_interval_whatever_the_rules_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rules_ms: int
) -> None:
    """With the rules read once a day, the clocks were read once a day too: a clock drifting off
    showed only as refused orders. They are read at least every ``CLOCK_READ_INTERVAL_S``, and the
    rules no more often than their own interval."""
    monkeypatch.setattr("arb.controller.CLOCK_READ_INTERVAL_S", 0.2)
    configuration = manager(tmp_path, CONFIG + f"instrument_refresh_interval_ms = {rules_ms}\n")
    cluster = dry_run_cluster(configuration.config, random_per_minute=0)
    reads: list[str] = []

    async def scenario() -> None:
        async with cluster:
            controller = ArbitrageController(configuration, sim_cluster=cluster, journal=Journal(tmp_path / "j.sqlite3"))
            await controller.initialize(dry_run=True)
            check_clocks, read_rules = controller._check_clocks, controller._read_trading_rules

            async def checking_clocks() -> None:
                reads.append("clocks")
                await check_clocks()

            async def reading_rules(interval_s: float) -> None:
                reads.append("rules")
                await read_rules(interval_s)

            monkeypatch.setattr(controller, "_check_clocks", checking_clocks)
            monkeypatch.setattr(controller, "_read_trading_rules", reading_rules)
            running = asyncio.ensure_future(controller.run(duration_s=30))
            await eventually(lambda: reads.count("clocks") >= 3, 10, "three clock reads")
            await controller.shutdown("test over")
            await running

    asyncio.run(scenario())
    assert "rules" not in reads


def journal_both_legs_filled(journal: Journal, opportunity_id: str) -> None:
    """Journal a buy of 0.001 BTC on MEXC and its sell on Gate.io, both filled at 60000."""
    for market, side in ((ExchangeName.MEXC, OrderSide.BUY), (ExchangeName.GATEIO, OrderSide.SELL)):
        cid = f"{opportunity_id}-{side.value[0]}"
        request = OrderRequest(symbol="BTC/USDT", side=side, type=OrderType.LIMIT, quantity=D("0.001"),
                               price=D(60000), client_order_id=cid)
        journal.record_intent(opportunity_id, side.value, request, market)
        state = OrderState(symbol="BTC/USDT", order_id=f"{market.value}-1", client_order_id=cid, side=side,
                           type=OrderType.LIMIT, status=OrderStatus.FILLED, quantity=D("0.001"), price=D(60000),
                           filled_quantity=D("0.001"), average_price=D(60000))
        fill = Fill(symbol="BTC/USDT", order_id=f"{market.value}-1", client_order_id=cid, trade_id="t", side=side,
                    price=D(60000), quantity=D("0.001"), fee=D(0), fee_asset="USDT", is_maker=False, timestamp_ms=1)
        journal.record_result(market, cid, state, [fill])


def test_a_stop_during_the_start_ups_reconciliation_loses_no_residual_it_reconciled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An earlier run left X (its buy filled, its sell never answered) and, newest, Y. Flagged only
    once every intent was reconciled, X was lost to a stop while Y's were asked about: its sell
    closed as not found, X was neither the newest nor open any more, and no later start flagged it."""
    from arb.errors import StartupInterrupted

    path = tmp_path / "j.sqlite3"
    with Journal(path) as journal:
        journal.record_intents("oppX", [
            ("buy", ExchangeName.GATEIO, OrderRequest(symbol="BTC/USDT", side=OrderSide.BUY, type=OrderType.LIMIT,
                                                      quantity=D("0.001"), price=D(60000), client_order_id="oppX-b")),
            ("sell", ExchangeName.MEXC, OrderRequest(symbol="BTC/USDT", side=OrderSide.SELL, type=OrderType.LIMIT,
                                                     quantity=D("0.001"), price=D(60000), client_order_id="oppX-s")),
        ])
        bought = OrderState(symbol="BTC/USDT", order_id="77", client_order_id="oppX-b", side=OrderSide.BUY,
                            type=OrderType.LIMIT, status=OrderStatus.FILLED, quantity=D("0.001"), price=D(60000),
                            filled_quantity=D("0.001"), average_price=D(60000))
        fill = Fill(symbol="BTC/USDT", order_id="77", client_order_id="oppX-b", trade_id="t", side=OrderSide.BUY,
                    price=D(60000), quantity=D("0.001"), fee=D(0), fee_asset="USDT", is_maker=False, timestamp_ms=1)
        journal.record_result(ExchangeName.GATEIO, "oppX-b", bought, [fill])
        journal_both_legs_filled(journal, "oppY")
        journal.record_intent("oppY", "recovery", OrderRequest(
            symbol="BTC/USDT", side=OrderSide.SELL, type=OrderType.LIMIT, quantity=D("0.001"), price=D(60000),
            client_order_id="oppY-r"), ExchangeName.GATEIO)  # the newest, open

    async def resolve(intent: IntentRecord) -> OrderState | None:
        if intent.opportunity_id == "oppY":
            os.kill(os.getpid(), signal.SIGINT)  # the operator stops the start-up
            await asyncio.sleep(30)
        return None  # oppX-s: never reached the venue

    monkeypatch.setattr(RecoveryManager, "resolver", lambda self, *args, **kwargs: resolve)
    configuration = manager(tmp_path)
    cluster = dry_run_cluster(configuration.config, random_per_minute=0)

    async def scenario() -> None:
        async with cluster:
            controller = ArbitrageController(configuration, sim_cluster=cluster, journal=Journal(path))
            with pytest.raises(StartupInterrupted):
                await controller.initialize(dry_run=True)

    asyncio.run(scenario())
    with Journal(path) as journal:
        (step, detail), = [s for s in journal.recovery_steps("oppX") if s[0] == "manual_approval"]
        assert detail["reason"] == "interrupted by an engine restart with unmatched legs"


def test_a_restart_flags_an_acknowledged_order_the_venue_no_longer_finds_as_of_unknown_outcome(tmp_path: Path) -> None:
    """The buy filled and MEXC acknowledged the sell, whose fill the run did not live to record; the
    venue's order history then moved on. The restart took its "no such order" as never placed: the
    sell closed with nothing filled, and the flag's residual told the operator to sell again."""
    path = tmp_path / "j.sqlite3"
    sell = OrderRequest(symbol="BTC/USDT", side=OrderSide.SELL, type=OrderType.LIMIT, quantity=D("0.001"),
                        price=D(60000), client_order_id="oppX-s")
    with Journal(path) as journal:
        journal_both_legs_filled(journal, "oppW")  # an earlier execution, settled
        journal.record_intents("oppX", [("sell", ExchangeName.MEXC, sell)])
        journal.record_ack(ExchangeName.MEXC, "oppX-s", OrderState(
            symbol="BTC/USDT", order_id="forgotten_1", client_order_id="oppX-s", side=OrderSide.SELL,
            type=OrderType.LIMIT, status=OrderStatus.NEW, quantity=D("0.001"), price=D(60000),
        ))
    configuration = manager(tmp_path)
    cluster = dry_run_cluster(configuration.config, random_per_minute=0)

    async def scenario() -> None:
        async with cluster:
            controller = ArbitrageController(configuration, sim_cluster=cluster, journal=Journal(path))
            await controller.initialize(dry_run=True)
            await controller.shutdown("test over")

    asyncio.run(scenario())
    with Journal(path) as journal:
        assert [i.client_order_id for i in journal.open_intents()] == ["oppX-s"]  # asked again at the next start
        (step, detail), = [s for s in journal.recovery_steps("oppX") if s[0] == "manual_approval"]
    assert detail["reason"].startswith("interrupted by an engine restart; mexc oppX-s not final")
    assert detail["reason"].endswith(
        "; mexc: order 'oppX-s' on BTC/USDT was acknowledged as order forgotten_1, which the venue no longer "
        "finds (its order history moved on): it may have filled"
    )


def test_a_restart_without_a_market_the_last_execution_traded_flags_it_rather_than_failing(tmp_path: Path) -> None:
    """The last execution bought on MEXC and sold on Gate.io; this start has MEXC disabled (down, or
    hedging only). Its fills on MEXC cannot be valued without MEXC's instruments: the start goes on
    and the execution is flagged for an operator to check, naming why."""
    journal = Journal(tmp_path / "journal.sqlite3")
    journal_both_legs_filled(journal, "o1")
    controller = ArbitrageController(manager(tmp_path))
    controller._catalogs = {
        ExchangeName.GATEIO: InstrumentCatalog(
            ExchangeName.GATEIO, [i for i in default_instruments(("BTC",)) if i.exchange is ExchangeName.GATEIO]
        )
    }
    controller._flag_interrupted(journal, ["o1"])
    (step, detail), = [s for s in journal.recovery_steps("o1") if s[0] == "manual_approval"]
    assert detail["reason"] == "its fills could not be checked for unmatched legs: mexc is not traded in this run"
    # Flagged by this run's start: the run says so in its exit code (the run that left it died first).
    assert controller.summary().flagged_this_run == 1 and not controller.summary().ok
    controller._flag_interrupted(journal, ["o1"])  # flagged already: not again
    assert controller.summary().flagged_this_run == 1


def test_a_restart_flags_an_older_execution_killed_mid_recovery_beside_a_newer_one(tmp_path: Path) -> None:
    """Two executions ran at once (``ArbitrageEngine.execute_opportunity`` beside the trade loop).
    A bought on MEXC, its sell was refused, and its recovery had started when the process was
    killed; B, newer, completed. Every intent is closed and B is the newest, yet A is flagged
    with its residual; B, and A once its recovery ends, are not."""
    journal = Journal(tmp_path / "journal.sqlite3")

    def intend(opp: str, market: ExchangeName, side: OrderSide) -> str:
        cid = f"{opp}-{side.value[0]}"
        request = OrderRequest(symbol="BTC/USDT", side=side, type=OrderType.LIMIT, quantity=D("0.01"),
                               price=D(60000), client_order_id=cid)
        journal.record_intents(opp, [(side.value, market, request)], deferred=True)
        return cid

    def fill(market: ExchangeName, cid: str, side: OrderSide) -> None:
        state = OrderState(symbol="BTC/USDT", order_id=f"v-{cid}", client_order_id=cid, side=side,
                           type=OrderType.LIMIT, status=OrderStatus.FILLED, quantity=D("0.01"), price=D(60000),
                           filled_quantity=D("0.01"), average_price=D(60000))
        journal.record_result(market, cid, state, [Fill(
            symbol="BTC/USDT", order_id=f"v-{cid}", client_order_id=cid, trade_id=f"order:{cid}", side=side,
            price=D(60000), quantity=D("0.01"), fee=D(0), fee_asset="USDT", is_maker=False, timestamp_ms=1,
        )])

    a_buy, a_sell = intend("A", ExchangeName.MEXC, OrderSide.BUY), intend("A", ExchangeName.GATEIO, OrderSide.SELL)
    b_buy, b_sell = intend("B", ExchangeName.MEXC, OrderSide.BUY), intend("B", ExchangeName.GATEIO, OrderSide.SELL)
    fill(ExchangeName.MEXC, a_buy, OrderSide.BUY)
    journal.record_reject(ExchangeName.GATEIO, a_sell, "insufficient balance")
    fill(ExchangeName.MEXC, b_buy, OrderSide.BUY)
    fill(ExchangeName.GATEIO, b_sell, OrderSide.SELL)
    journal.record_recovery_step("A", "start", {"net_base": D("0.01")})
    assert journal.open_intents() == [] and journal.interrupted_opportunities() == {"A", "B"}
    configuration = manager(tmp_path)
    cluster = dry_run_cluster(configuration.config, random_per_minute=0)

    async def restart() -> None:  # the start-up on simulated venues
        async with cluster:
            controller = ArbitrageController(configuration, sim_cluster=cluster, journal=journal)
            await controller.initialize(dry_run=True)
            await controller.shutdown()

    asyncio.run(restart())
    journal = Journal(tmp_path / "journal.sqlite3")  # closed by the shutdown
    (opp, _, detail), = journal.awaiting_approval()
    assert (opp, detail["reason"], D(detail["residual"])) == (
        "A", "interrupted by an engine restart with unmatched legs", D("0.01")
    )
    journal.record_recovery_step("A", "acknowledged", {})
    journal.record_recovery_step("A", "start", {"net_base": D("0.01")})
    journal.record_recovery_step("A", "recovered", {"residual": D(0)})
    assert journal.interrupted_opportunities() == {"B"}


def test_a_restart_does_not_flag_an_execution_its_recovery_closed_short_of_a_buys_base_fee(tmp_path: Path) -> None:
    """A spot buy paid its fee in base; its recovery sold back only what reached the account and
    journaled "recovered". The fills net to that fee, which is no residual: not flagged again."""
    journal = Journal(tmp_path / "journal.sqlite3")
    for cid, side, quantity in (("o1-b", OrderSide.BUY, "0.5"), ("o1-u1", OrderSide.SELL, "0.4995")):
        request = OrderRequest(symbol="BTC/USDT", side=side, type=OrderType.LIMIT, quantity=D(quantity),
                               price=D(60000), client_order_id=cid)
        journal.record_intent("o1", "buy" if side is OrderSide.BUY else "unwind-1", request, ExchangeName.GATEIO)
        state = OrderState(symbol="BTC/USDT", order_id=f"g-{cid}", client_order_id=cid, side=side,
                           type=OrderType.LIMIT, status=OrderStatus.FILLED, quantity=D(quantity), price=D(60000),
                           filled_quantity=D(quantity), average_price=D(60000))
        fill = Fill(symbol="BTC/USDT", order_id=f"g-{cid}", client_order_id=cid, trade_id=cid, side=side,
                    price=D(60000), quantity=D(quantity), fee=D("0.0005") if side is OrderSide.BUY else D(0),
                    fee_asset="BTC" if side is OrderSide.BUY else "USDT", is_maker=False, timestamp_ms=1)
        journal.record_result(ExchangeName.GATEIO, cid, state, [fill])
    journal.record_recovery_step("o1", "recovered", {"residual": D("0.0005"), "cost": D(1), "orders": 1})
    controller = ArbitrageController(manager(tmp_path))
    controller._catalogs = {
        ExchangeName.GATEIO: InstrumentCatalog(
            ExchangeName.GATEIO, [i for i in default_instruments(("BTC",)) if i.exchange is ExchangeName.GATEIO]
        )
    }
    controller._flag_interrupted(journal, ["o1"])
    assert [step for step, _ in journal.recovery_steps("o1")] == ["recovered"]
    journal.close()


def journal_filled_hedge(
    journal: Journal, opportunity_id: str, base: str, spot: str, contracts: str, contract_size: D, price: D
) -> None:
    """Journal a hedge ``opportunity_id`` whose two legs filled at ``price``: ``spot`` base bought on
    Gate.io spot, ``contracts`` of ``contract_size`` sold on its perpetual."""
    for market, symbol, side, quantity, contract in (
        (ExchangeName.GATEIO, f"{base}/USDT", OrderSide.BUY, spot, None),
        (ExchangeName.GATEIO_FUTURES, f"{base}/USDT:USDT", OrderSide.SELL, contracts, contract_size),
    ):
        cid = f"{opportunity_id}-{side.value[0]}"
        request = OrderRequest(symbol=symbol, side=side, type=OrderType.LIMIT, quantity=D(quantity),
                               price=price, client_order_id=cid)
        journal.record_intent(opportunity_id, side.value, request, market, contract)
        state = OrderState(symbol=symbol, order_id=f"v-{cid}", client_order_id=cid, side=side, type=OrderType.LIMIT,
                           status=OrderStatus.FILLED, quantity=D(quantity), price=price,
                           filled_quantity=D(quantity), average_price=price)
        journal.record_result(market, cid, state, [Fill(
            symbol=symbol, order_id=f"v-{cid}", client_order_id=cid, trade_id=cid, side=side, price=price,
            quantity=D(quantity), fee=D(0), fee_asset="USDT", is_maker=False, timestamp_ms=1,
        )])


def test_a_restart_after_a_venue_changed_its_contract_size_does_not_flag_a_matched_hedge(tmp_path: Path) -> None:
    """A hedge bought 0.5 BTC and sold 5000 contracts of 0.0001 BTC; the venue has made its contracts
    0.001 BTC since. Read at the new size, its fills netted to a 4.5 BTC short: flagged for an
    operator to close by hand a position that was never there."""
    journal = Journal(tmp_path / "journal.sqlite3")
    perp = ExchangeName.GATEIO_FUTURES
    journal_filled_hedge(journal, "o1", "BTC", "0.5", "5000", D("0.0001"), D(60000))
    controller = ArbitrageController(manager(tmp_path))
    instruments = default_instruments(("BTC",))
    controller._catalogs = {
        ExchangeName.GATEIO: InstrumentCatalog(
            ExchangeName.GATEIO, [i for i in instruments if i.exchange is ExchangeName.GATEIO]
        ),
        perp: InstrumentCatalog(
            perp, [msgspec.structs.replace(i, contract_size=D("0.001")) for i in instruments if i.exchange is perp]
        ),
    }
    controller._flag_interrupted(journal, ["o1"])
    assert journal.recovery_steps("o1") == [] and journal.awaiting_approval() == []
    journal.close()


def test_a_hedge_on_a_pair_taken_out_of_the_symbols_is_reported_and_its_perpetual_still_watched(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An earlier run hedged ETH/USDT on Gate.io (0.03 bought, 3 contracts of 0.01 sold); this run
    trades BTC/USDT only. It never closes that hedge: the start says so as an error, and so does the
    summary; the perpetual's position is still taken from the venue (which holds 2 more contracts
    short, sold by hand) and watched for its distance from liquidation."""
    journal_path = tmp_path / "j.sqlite3"
    perp = ExchangeName.GATEIO_FUTURES
    with Journal(journal_path) as journal:
        journal_filled_hedge(journal, "h1", "ETH", "0.03", "3", D("0.01"), D(3000))
    both = manager(tmp_path, '[engine]\nsymbols = ["BTC/USDT", "ETH/USDT"]\nopportunity_types = ["spot_futures_hedge"]\n')
    cluster = dry_run_cluster(both.config, random_per_minute=0)
    configuration = manager(tmp_path, CONFIG + 'opportunity_types = ["spot_futures_hedge"]\n')

    async def scenario() -> tuple[RunSummary, dict[tuple[ExchangeName, str], tuple[D, bool]], D]:
        async with cluster:
            futures = cluster.venues["gateio"].exchanges[perp]
            futures.place_order(cluster.config.api_key, "ETH/USDT:USDT", OrderSide.SELL, OrderType.MARKET, 5,
                                time.monotonic_ns())
            controller = ArbitrageController(configuration, sim_cluster=cluster, journal=Journal(journal_path))
            with caplog.at_level(logging.ERROR, logger="arb.controller"):
                await controller.initialize(dry_run=True)
            assert controller.risk is not None
            distances, net = controller.risk.liquidation_distances(), controller.risk.net_position("ETH/USDT")
            await controller.shutdown("test over")
            return controller.summary(), distances, net

    summary, distances, net = asyncio.run(scenario())
    untraded = "ETH/USDT gateio/gateio_futures 0.03 base: ETH/USDT is not in engine.symbols: never closed by this run"
    assert f"hedge {untraded}; close it by hand" in caplog.text
    assert summary.hedges_untraded == [untraded] and f"  HEDGE NOT TRADED         {untraded}" in summary.lines()
    assert (perp, "ETH/USDT") in distances
    assert net == D("0.03") - D("0.05")  # the venue's short, not the journal's


def test_a_restart_flags_orders_of_unknown_outcome_and_holds_every_unacknowledged_flag(tmp_path: Path) -> None:
    """After reconciliation, an order still open (the venue could not say what became of it) has its
    opportunity flagged for manual approval, even with no fill recorded. Flags of earlier runs no
    operator acknowledged are held among the recoveries awaiting approval, as this run's are."""
    journal = Journal(tmp_path / "journal.sqlite3")
    request = OrderRequest(
        symbol="BTC/USDT:USDT", side=OrderSide.SELL, type=OrderType.LIMIT, quantity=D(3), price=D("60000"),
        client_order_id="o3-s",
    )
    journal.record_intent("o3", "sell", request, ExchangeName.GATEIO_FUTURES, D("0.0001"))  # its outcome never learned
    journal.record_recovery_step("o1", "manual_approval", {"reason": "past its loss bound", "residual": D("0.25")})
    journal.record_recovery_step("o2", "manual_approval", {"reason": "past its loss bound", "residual": D("0.1")})
    journal.record_recovery_step("o2", "acknowledged", {"by": "operator"})
    controller = ArbitrageController(manager(tmp_path))
    controller.recovery = RecoveryManager({}, max_loss_quote=D(1), journal=journal)
    controller._flag_interrupted(journal, ["o3"])
    (step, detail), = [s for s in journal.recovery_steps("o3") if s[0] == "manual_approval"]
    assert detail["reason"] == (
        "interrupted by an engine restart; gateio_futures o3-s not final (unanswered, or open at the venue): it "
        "may fill; asked again at each start until acknowledged"
    )
    waiting = {a.opportunity_id: a for a in controller.recovery.get_active_recoveries()}
    assert sorted(waiting) == ["o1", "o3"]
    assert all(a.status is RecoveryStatus.AWAITING_APPROVAL for a in waiting.values())
    assert (waiting["o1"].residual_quantity, waiting["o3"].symbol) == (D("0.25"), "BTC/USDT")
    assert controller.recovery.get_recovery_statistics().awaiting_approval == 2
    assert [i.client_order_id for i in journal.open_intents()] == ["o3-s"]  # asked about at each start
    controller.recovery.acknowledge("o3")  # an operator dealt with it: journaled, not held at the next start
    assert [opp for opp, _, _ in journal.awaiting_approval()] == ["o1"]
    assert journal.open_intents() == []  # nor asked about again
    journal.close()


def test_open_hedges_are_checked_every_scan_interval_while_the_queue_never_empties(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two symbols whose opportunities stand are each found again while the other executes, so the
    queue never empties; the open hedge is still checked for its close every scan interval."""
    now = [10**9]
    configuration = manager(tmp_path, '[engine]\nsymbols = ["BTC/USDT", "ETH/USDT"]\n')
    interval_ms = configuration.config.opportunity_scan_interval_ms

    pipeline = ScannerPipeline(max_data_age_ms=100, clock=lambda: now[0])
    monkeypatch.setattr(pipeline, "books_fresh", lambda symbol_id, opportunity, now_ns: True)  # no books behind them

    def found(symbol: str) -> None:
        """``symbol``'s scan finds an opportunity (standing in the pipeline) and queues it."""
        opportunity = mexc_to_gate(
            f"{symbol[:3].lower()}{now[0]}", D("100"), D("101"), "0.1", symbol=symbol, detected_at=now[0]
        )
        pipeline._standing[symbol] = opportunity  # type: ignore[index]
        controller._on_opportunity(opportunity, SimpleNamespace(symbol_id=symbol))  # type: ignore[arg-type]

    class TakesTwoIntervals(InstantExecutor):
        executed = 0

        async def finish(self, started: StartedExecution) -> ExecutionResult:
            TakesTwoIntervals.executed += 1
            now[0] += 2 * interval_ms * 1_000_000
            other = "ETH/USDT" if started.opportunity.symbol == "BTC/USDT" else "BTC/USDT"
            found(other)
            return await super().finish(started)

    controller = ArbitrageController(
        configuration, executor=TakesTwoIntervals(), risk=RiskManager(configuration.config.risk_limits),
        pipeline=pipeline, clock=lambda: now[0],
    )
    controller.hedges = HedgeBook({}, min_profit_bps=D(10))
    checks: list[int] = []

    async def close_hedges(hedges: HedgeBook, pipeline: ScannerPipeline) -> None:
        checks.append(now[0])

    monkeypatch.setattr(controller, "_close_hedges", close_hedges)

    async def scenario() -> None:
        controller._scanning = True
        trading = asyncio.get_running_loop().create_task(controller._trade_loop())
        await asyncio.sleep(0)
        found("BTC/USDT")
        await eventually(lambda: TakesTwoIntervals.executed >= 100)
        controller._scanning = False
        controller._wake()
        await asyncio.wait_for(trading, 5)

    asyncio.run(scenario())
    assert len(checks) >= 99  # once after each execution: each took two scan intervals


@pytest.mark.parametrize(("category", "trips"), [("maintenance", True), ("outcome_unknown", True),
                                                  ("insufficient_balance", False)])
def test_legs_failing_for_the_venue_feed_the_venue_errors_breaker(
    tmp_path: Path, category: str, trips: bool
) -> None:
    class FirstLegRefused(InstantExecutor):
        async def finish(self, started: StartedExecution) -> ExecutionResult:
            opportunity = started.opportunity
            refused = ExecutionLeg(
                exchange=opportunity.buy_exchange, symbol=opportunity.symbol, side=OrderSide.BUY,
                client_order_id=f"{opportunity.opportunity_id}-b", requested_quantity=D("0.001"),
                limit_price=opportunity.buy_price, error=f"refused: {category}", error_category=category,
            )
            # Completed by recovery: only the venue-errors breaker can see the refusals.
            return ExecutionResult(
                opportunity_id=opportunity.opportunity_id, final_state=ArbitrageState.COMPLETED,
                total_execution_time_ms=D(0), realized_profit=D(0), legs=(refused,),
            )

    configuration = manager(tmp_path)
    risk = RiskManager(configuration.config.risk_limits)
    controller = ArbitrageController(configuration, executor=FirstLegRefused(), risk=risk)
    threshold = risk.get_circuit_breaker_status()[Breaker.VENUE_ERRORS].threshold

    async def scenario() -> None:
        for n in range(threshold):
            await controller.process(mexc_to_gate(f"v{n}", D("60000"), D("60300"), "0.001"))

    asyncio.run(scenario())
    assert risk.get_circuit_breaker_status()[Breaker.VENUE_ERRORS].tripped is trips


def test_an_execution_starts_only_when_both_venues_admit_its_leg_and_a_recovery_order(tmp_path: Path) -> None:
    """Gate.io admits 10 spot orders of a pair in any second. With 8 spent, an opportunity selling
    there is traded; with 9 spent, one order is left: it would take the leg and leave a failed
    leg's recovery to wait for the window, so the opportunity is passed up. Another pair's budget
    is its own: its opportunity is traded."""
    configuration = manager(tmp_path)
    controller = ArbitrageController(
        configuration, executor=InstantExecutor(), risk=RiskManager(configuration.config.risk_limits)
    )

    async def scenario() -> list[bool]:
        gate = GateioSpotConnector(credentials=CREDENTIALS, rest_url="http://127.0.0.1:9", ws_url="ws://127.0.0.1:9/")
        controller.connectors[ExchangeName.GATEIO] = gate
        traded = []
        try:
            for n in range(9):
                if n >= 8:
                    result = await controller.process(mexc_to_gate(f"b{n}", D("60000"), D("60300"), "0.0001"))
                    traded.append(result is not None)
                await gate.rest.limiter.acquire(gate.order_limits("BTC/USDT"))
            result = await controller.process(mexc_to_gate("b9", D("60000"), D("60300"), "0.0001"))
            traded.append(result is not None)
            result = await controller.process(mexc_to_gate("e0", D("3000"), D("3015"), "0.01", symbol="ETH/USDT"))
            traded.append(result is not None)
        finally:
            await gate.close()
        return traded

    assert asyncio.run(scenario()) == [True, False, True]
    assert controller.summary().skipped_for_order_budget == 1



def test_the_daily_loss_limit_counts_a_hedge_basis_when_the_close_realizes_it(tmp_path: Path) -> None:
    """A hedge opened at basis 300 on 0.001 BTC reports +0.3 of realized PnL less its fees; the daily PnL
    the loss limit reads counts only the fees until the close (exit basis 50) realizes the round trip,
    live and after a restart."""
    from test_hedges import PERP, Venues, opportunity

    venues = Venues(tmp_path / "journal.sqlite3")
    configuration = manager(tmp_path)
    day_ns = 1_700_000_000_000 * 1_000_000  # the journal's wall clock

    def risk_manager() -> RiskManager:
        return RiskManager(configuration.config.risk_limits, wall_clock=lambda: day_ns)

    controller = ArbitrageController(configuration, executor=venues.executor, risk=risk_manager())
    controller.hedges = HedgeBook(venues.catalogs, min_profit_bps=D(10))
    controller._catalogs = dict(venues.catalogs)  # contract sizes, as initialize() would set them
    daily: list[D] = []

    async def scenario() -> None:
        for opp in (opportunity("o1", ExchangeName.GATEIO, PERP, "60000", "60300", "0.001"),
                    opportunity("c1", PERP, ExchangeName.GATEIO, "60100", "60050", "0.001")):
            closing = opp.opportunity_id == "c1"  # its own spread is a loss the basis locked in pays for
            result = await controller.process(msgspec.structs.replace(opp, profit_margin_bps=D(100)), closes_hedge=closing)
            assert result is not None and result.final_state is ArbitrageState.COMPLETED
            daily.append(controller.risk.get_current_risk_metrics().daily_realized_pnl_usd)  # type: ignore[union-attr]

    asyncio.run(scenario())
    opened, closed = (r.realized_profit for r in controller.results)
    fees = D("0.3") - opened
    assert fees > 0 and closed < 0
    assert daily == [-fees, opened + closed]  # the round trip: (300 - 50) * 0.001 less all four fees

    hedges = HedgeBook(venues.catalogs, min_profit_bps=D(10))
    hedges.restore(venues.journal)
    restored = risk_manager().restore(venues.journal, venues.catalogs, held_basis_by_day=hedges.restored_basis_by_day)
    assert restored.daily_realized_pnl_usd == opened + closed
    opened_only = HedgeBook(venues.catalogs, min_profit_bps=D(10))
    opened_only.restored_basis_by_day = {day_ns // 86_400_000_000_000: D("0.3")}  # as if the close had not happened
    assert risk_manager().restore(
        venues.journal, venues.catalogs, held_basis_by_day=opened_only.restored_basis_by_day
    ).daily_realized_pnl_usd == opened + closed - D("0.3")


def test_a_hedge_lost_at_the_venue_after_an_earlier_drop_is_dropped_too(tmp_path: Path) -> None:
    """The position check compares the venue with what the engine expects there: its last read with the
    fills since. Compared with every futures fill the engine ever made, a dropped hedge's fills stayed
    in that for good, and a later hedge lost at the venue could match it and be kept, then closed by a
    plain order opening a position nothing tracks."""
    from test_hedges import GATE_PERP, GATE_SPOT, MEXC_SPOT, book_hedge

    configuration = manager(tmp_path)
    risk = RiskManager(configuration.config.risk_limits)
    controller = ArbitrageController(configuration, executor=InstantExecutor(), risk=risk)
    perp = ExchangeName.GATEIO_FUTURES
    markets = {ExchangeName.GATEIO: GATE_SPOT, ExchangeName.MEXC: MEXC_SPOT, perp: GATE_PERP}
    controller._catalogs = {m: InstrumentCatalog(m, [i]) for m, i in markets.items()}
    controller.hedges = hedges = HedgeBook(controller._catalogs, min_profit_bps=D(10))

    class Venue:  # flat: each hedge's perpetual is closed at the venue before the check after it
        can_trade = True

        async def positions(self) -> list[object]:
            return []

    controller.traders = {perp: Venue()}  # type: ignore[dict-item]

    def hedge(spot: ExchangeName, base: str) -> None:
        book_hedge(hedges, spot, base)
        risk.record_fill(perp, Fill(
            symbol="BTC/USDT", order_id=base, client_order_id=base, trade_id=base, price=D(60600),
            side=OrderSide.SELL if D(base) > 0 else OrderSide.BUY, quantity=abs(D(base)), fee=D(0),
            fee_asset="USDT", is_maker=False, timestamp_ms=0,
        ))

    hedge(ExchangeName.GATEIO, "0.001")  # long spot, short perpetual
    assert asyncio.run(controller._check_futures_positions()) and hedges.positions() == []
    hedge(ExchangeName.MEXC, "-0.001")  # short spot, long perpetual
    assert asyncio.run(controller._check_futures_positions()) and hedges.positions() == []
    assert len(controller.summary().hedges_dropped) == 2


def test_an_early_position_check_that_an_execution_overlapped_is_tried_again(tmp_path: Path) -> None:
    """A balance push brings the check forward; an execution starting while the positions are read
    makes that read useless, so the watcher reads again soon, not a minute later."""
    configuration = manager(tmp_path, CONFIG + "balance_refresh_interval_ms = 60000\n")
    risk = RiskManager(configuration.config.risk_limits)
    controller = ArbitrageController(configuration, executor=InstantExecutor(), risk=risk)
    perp = ExchangeName.GATEIO_FUTURES
    opportunity = mexc_to_gate("overlap", D("60000"), D("60300"), "0.001")
    done = ExecutionResult(
        opportunity_id="overlap", final_state=ArbitrageState.COMPLETED, total_execution_time_ms=D(0),
        realized_profit=D(0),
    )

    class Venue:
        can_trade = True
        reads = 0

        async def positions(self) -> list[object]:
            self.reads += 1
            if self.reads == 1:  # an execution starts while this read is out, and ends a moment later
                risk.record_execution_started(opportunity)
                asyncio.get_running_loop().call_later(0.1, risk.record_execution, done)
            return []

    venue = Venue()
    controller.traders = {perp: venue}  # type: ignore[dict-item]
    controller._catalogs[perp] = InstrumentCatalog(perp, [])

    async def scenario() -> int:
        watcher = asyncio.ensure_future(controller._watch_futures_positions())
        controller._positions_due.set()  # as a futures balance read does
        await asyncio.sleep(1.5)
        watcher.cancel()
        return venue.reads

    assert asyncio.run(scenario()) == 2


def test_settled_funding_is_read_again_from_the_same_point_after_a_failed_read(tmp_path: Path) -> None:
    """The journal counts each payment once across overlapping reads; a market whose read fails
    keeps the next read at the same starting point, so a payment listed meanwhile is not skipped."""
    configuration = manager(tmp_path)
    now_ms = [1_700_013_600_000]  # 02:00 UTC: a read an hour before the last one would start after 00:00
    risk = RiskManager(configuration.config.risk_limits, wall_clock=lambda: now_ms[0] * 1_000_000)
    controller = ArbitrageController(
        configuration, executor=InstantExecutor(), risk=risk, journal=Journal(":memory:"),
        wall_clock=lambda: now_ms[0] * 1_000_000,
    )
    day_start = now_ms[0] - now_ms[0] % 86_400_000

    def payment(payment_id: str, amount: str, symbol: str = "BTC/USDT:USDT") -> FundingPayment:
        return FundingPayment(payment_id=payment_id, symbol=symbol, amount=D(amount), time_ms=day_start + 1)

    class Venue:
        can_trade = True

        def __init__(self, answers: list[list[FundingPayment] | None]) -> None:
            self.answers = answers
            self.since: list[int] = []

        async def funding_payments(self, since_ms: int) -> list[FundingPayment]:
            self.since.append(since_ms)
            answer = self.answers.pop(0)
            if answer is None:
                raise ExchangeError("mexc_futures", "account book unreadable")
            return answer

    # SOL/USDT left the symbols with a short of its perpetual still held (an orphan): it is settled on too.
    risk.record_fill(ExchangeName.GATEIO_FUTURES, Fill(
        symbol="SOL/USDT", order_id="o", client_order_id="o", trade_id="t", side=OrderSide.SELL, price=D(150), quantity=D(1), fee=D(0),
        fee_asset="USDT", is_maker=False, timestamp_ms=day_start,
    ))
    gate = Venue([[payment("1", "0.5"), payment("x", "9", "XRP/USDT:USDT"), payment("s", "-0.1", "SOL/USDT:USDT")],
                  [payment("1", "0.5"), payment("2", "0.25")]])
    mexc = Venue([None, []])
    controller.traders = {ExchangeName.GATEIO_FUTURES: gate, ExchangeName.MEXC_FUTURES: mexc}  # type: ignore[dict-item]

    async def scenario() -> None:
        await controller._record_funding()
        now_ms[0] += 60_000
        await controller._record_funding()

    asyncio.run(scenario())
    # The failed read kept the start of the day for the second read; XRP is neither configured nor held.
    assert gate.since == mexc.since == [day_start, day_start]
    summary = controller.summary()
    assert (summary.funding_payments, summary.funding_settled) == (3, D("0.65"))
    assert risk.get_current_risk_metrics().daily_funding_usd == D("0.65")
    assert controller._funding_since_ms == now_ms[0] - 3_600_000  # the next read: an hour before this one began


def test_a_paper_run_records_the_funding_its_paper_positions_settled_since_the_last_read_at_shutdown(
    tmp_path: Path,
) -> None:
    """A paper account ends with the run, so nothing reads it later: a settlement made after the
    last periodic read is journaled and counted by the shutdown, not lost."""
    configuration = manager(tmp_path)
    journal_path = tmp_path / "paper.sqlite3"
    risk = RiskManager(configuration.config.risk_limits)
    controller = ArbitrageController(
        configuration, executor=InstantExecutor(), risk=risk, journal=Journal(journal_path)
    )
    controller.mode = "paper"
    now_ms = time.time_ns() // 1_000_000
    settled = FundingPayment(payment_id="paper-f1", symbol="BTC/USDT:USDT", amount=D("0.5"), time_ms=now_ms)

    class PaperPerpetual:
        can_trade = True

        async def funding_payments(self, since_ms: int) -> list[FundingPayment]:
            return [settled]

        async def open_orders(self) -> list[OrderState]:
            return []

    controller.traders = {ExchangeName.GATEIO_FUTURES: PaperPerpetual()}  # type: ignore[dict-item]
    controller._register_shutdown_steps()
    asyncio.run(controller.shutdown("test over"))
    summary = controller.summary()
    assert (summary.funding_payments, summary.funding_settled) == (1, D("0.5"))
    assert risk.get_current_risk_metrics().daily_funding_usd == D("0.5")
    with Journal(journal_path) as journal:
        assert [p for _, p in journal.funding_payments()] == [settled]


def test_a_paper_futures_balance_in_an_asset_its_contracts_do_not_settle_in_is_dropped_and_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A futures account holds only what its contracts settle in: BTC given to the paper perpetual
    market is never used, and the warning names the key rather than leaving it silently unused."""
    controller = ArbitrageController(manager(tmp_path, CONFIG + '[paper]\ngateio_futures = { USDT = "1000", BTC = "1" }\n'))
    controller.mode = "paper"
    instruments = default_instruments(("BTC",))
    for market in (ExchangeName.GATEIO, ExchangeName.GATEIO_FUTURES):
        controller._catalogs[market] = InstrumentCatalog(market, [i for i in instruments if i.exchange is market])
        controller._paper_markets[market] = PaperExchange(SimpleNamespace(exchange=market), {})  # type: ignore[arg-type]
    controller._paper_markets[ExchangeName.GATEIO_FUTURES] = futures = PaperExchange(
        SimpleNamespace(exchange=ExchangeName.GATEIO_FUTURES), {"USDT": D(1000), "BTC": D(1)}  # type: ignore[arg-type]
    )
    with caplog.at_level(logging.WARNING, logger="arb.controller"):
        controller._drop_unheld_paper_balances()
    assert [r.getMessage() for r in caplog.records] == [
        "paper.gateio_futures.BTC: ignored: a futures account holds only what its contracts settle in (USDT)"
    ]
    # Held anyway, it counted in the inventory skew of the spot markets' BTC.
    assert list(asyncio.run(futures.balances())) == ["USDT"]


def test_funding_settled_while_the_engine_was_stopped_is_read_at_the_next_start(tmp_path: Path) -> None:
    """The journal's latest payment was settled two days ago at 16:00; the engine was stopped over
    the settlements since. The first read of the next start reaches back to an hour before that
    payment, not only to today's 00:00; a journal with no payment starts at today's 00:00."""
    configuration = manager(tmp_path)
    now_ms = 1_700_013_600_000  # 02:00 UTC
    day_start = now_ms - now_ms % 86_400_000
    journal = Journal(tmp_path / "j.sqlite3")
    last_paid = day_start - 2 * 86_400_000 + 16 * 3_600_000
    journal.record_funding(ExchangeName.GATEIO_FUTURES, [
        FundingPayment(payment_id="old", symbol="BTC/USDT:USDT", amount=D("0.1"), time_ms=last_paid),
    ])

    class Venue:
        can_trade = True

        def __init__(self) -> None:
            self.since: list[int] = []

        async def funding_payments(self, since_ms: int) -> list[FundingPayment]:
            self.since.append(since_ms)
            return []

    for recorded, expected in ((journal, last_paid - 3_600_000), (Journal(":memory:"), day_start)):
        controller = ArbitrageController(
            configuration, executor=InstantExecutor(), journal=recorded, wall_clock=lambda: now_ms * 1_000_000
        )
        venue = Venue()
        controller.traders = {ExchangeName.GATEIO_FUTURES: venue}  # type: ignore[dict-item]
        asyncio.run(controller._record_funding())
        assert venue.since == [expected]


def test_every_market_s_order_budget_admits_an_execution_s_orders() -> None:
    """``ENTRY_ORDER_BUDGET`` orders fit every market's order budget: a budget smaller than that would
    make the check before each execution raise (a weight beyond the capacity) instead of answering."""

    async def waits() -> dict[ExchangeName, float]:
        found = {}
        for market, connector_class in registered().items():
            connector = connector_class(rest_url="http://127.0.0.1:9", ws_url="ws://127.0.0.1:9/")
            try:
                found[market] = connector.order_wait_s(market_symbols(market, ["BTC/USDT"])[0], ENTRY_ORDER_BUDGET)
            finally:
                await connector.close()
        return found

    assert asyncio.run(waits()) == {market: 0.0 for market in registered()}


def test_the_run_summary_lines_up_its_values_and_says_what_open_hedges_hold_of_the_pnl() -> None:
    summary = RunSummary(
        mode="dry run", duration_s=D(1), statistics=EngineStatistics(total_realized_profit=D("4.5")), fills=0,
        rejected_by_risk={}, latency_ms={"risk": (D("0.004"), D("0.02")), "transition": (D("0.002"), D("0.006"))},
        breakers_tripped=[], resyncs={}, skew_alerts=[], shutdown=[], open_hedges=2, held_hedge_basis=D("1.5"),
    )
    lines = summary.lines()[1:]
    assert any("latency transition" in line for line in lines)
    assert [line for line in lines if line[25:27] != "  " or line[27] == " "] == []  # values start at column 27
    assert "  realized PnL             4.5 USDT (1.5 of it locked in 2 open hedges)" in lines
    flat = msgspec.structs.replace(summary, open_hedges=0, held_hedge_basis=D(0))
    assert "  realized PnL             4.5 USDT" in flat.lines()
    assert not any("slow cycles" in line for line in flat.lines())
    slow = msgspec.structs.replace(flat, slow_cycles=5, slowest_cycle_ms=D("600.125"), target_execution_time_ms=50)
    # The warnings about slow cycles are rate-limited: the summary counts every one.
    assert "  slow cycles              5 over target_execution_time_ms 50, the slowest 600.125 ms" in slow.lines()
    # Sums of exact amounts keep their exponents and trailing zeros: shown plain, still exact.
    for total, shown in ((D("0.34691547300") - D("0.34691547300"), "0"), (D("1.2000E-7"), "0.00000012"),
                         (D("-1802.642649470000000000000000"), "-1802.64264947"), (D("-0E-5"), "0"),
                         (D("1234567890.12345678901234567890123"), "1234567890.12345678901234567890123"),  # 33 digits
                         (D("5E+3"), "5000")):
        tiny = msgspec.structs.replace(flat, statistics=EngineStatistics(total_realized_profit=total))
        assert f"  realized PnL             {shown} USDT" in tiny.lines()


def restored_hedge(tmp_path: Path) -> tuple[ArbitrageController, Any, HedgePosition]:
    """A controller whose hedge book and risk manager were restored from a journal holding one hedge
    (Gate.io spot against its perpetual), trading on the scripted venues that made it."""
    from test_hedges import PERP, Venues, opportunity

    venues = Venues(tmp_path / "journal.sqlite3")
    venues.run(opportunity("o1", ExchangeName.GATEIO, PERP, "60000", "60300", "0.001"))
    controller = ArbitrageController(manager(tmp_path), risk=RiskManager(manager(tmp_path).config.risk_limits))
    controller.hedges = HedgeBook(venues.catalogs, min_profit_bps=D(10))
    (restored,) = controller.hedges.restore(venues.journal)
    assert controller.risk is not None
    controller.risk.restore(venues.journal, venues.catalogs)
    controller.traders = dict(venues.venues)
    controller._catalogs = dict(venues.catalogs)
    return controller, venues, restored


def test_restored_hedges_are_kept_unchecked_when_the_futures_venue_cannot_say_what_it_holds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_hedges import PERP

    controller, venues, restored = restored_hedge(tmp_path)
    assert controller.hedges is not None and controller.risk is not None
    journaled = controller.risk.get_current_risk_metrics().positions

    async def unreadable() -> list[Any]:
        raise ExchangeError("gateio", "positions: HTTP 503")

    monkeypatch.setattr(venues.venues[PERP], "positions", unreadable)
    with caplog.at_level(logging.WARNING, logger="arb.controller"):
        asyncio.run(controller._check_futures_positions(restored=True))
    assert controller.hedges.positions() == [restored]
    assert controller.risk.get_current_risk_metrics().positions == journaled
    assert "gateio_futures positions unreadable" in caplog.text and "HTTP 503" in caplog.text
    del controller.traders[PERP]
    asyncio.run(controller._check_futures_positions(restored=True))
    assert controller.hedges.positions() == [restored] and "gateio_futures is not traded in this run" in caplog.text


def test_sigusr1_engages_the_kill_switch_of_a_running_engine_and_sigusr2_releases_it_with_every_breaker(
    tmp_path: Path,
) -> None:
    configuration = manager(tmp_path)
    # MEXC's BTC/USDT 80 bps cheap for the whole test: an opportunity stands all along.
    dislocation = Dislocation(
        exchange=ExchangeName.MEXC, symbol="BTC/USDT", start_ns=SECOND // 2, duration_ns=60 * SECOND, bps=-80
    )
    cluster = dry_run_cluster(configuration.config, dislocations=(dislocation,), random_per_minute=0)

    async def scenario() -> tuple[int, int, int, RunSummary]:
        async with cluster:
            controller = ArbitrageController(configuration, sim_cluster=cluster, journal=Journal(tmp_path / "j.sqlite3"))
            await controller.initialize(dry_run=True)
            risk = controller.risk
            assert risk is not None
            running = asyncio.ensure_future(controller.run(duration_s=30))
            await eventually(lambda: len(controller.results) >= 2, 10, "trades on the dislocation")
            os.kill(os.getpid(), signal.SIGUSR1)
            await eventually(lambda: risk.get_circuit_breaker_status()[Breaker.KILL_SWITCH].tripped, 2, "the kill switch")
            engaged = len(controller.results)
            for _ in range(5):  # meanwhile a venue's errors trip its breaker too
                risk.record_venue_error(ExchangeName.MEXC, "test: 503")
            assert risk.get_circuit_breaker_status()[Breaker.VENUE_ERRORS].tripped
            await asyncio.sleep(1.0)  # the dislocation stands; nothing new may start
            held = len(controller.results)
            os.kill(os.getpid(), signal.SIGUSR2)  # the operator has looked: both are cleared
            await eventually(lambda: len(controller.results) > held, 5, "trading again once released")
            status = risk.get_circuit_breaker_status()
            assert not status[Breaker.KILL_SWITCH].tripped and not status[Breaker.VENUE_ERRORS].tripped
            resumed = len(controller.results)
            assert risk.get_risk_statistics().breaker_trips.get(Breaker.KILL_SWITCH.value) == 1
            assert all(step.status.value == "ok" for step in await controller.shutdown("test over"))
            return engaged, held, resumed, await running

    engaged, held, resumed, summary = asyncio.run(scenario())
    assert held <= engaged + 1  # at most the execution in flight when the signal came finishes
    assert resumed > held and summary.ok
    # Released before the end, the trip is still in the summary, as a trip of the run.
    assert summary.breakers_tripped == [] and summary.breaker_trips == {"kill_switch": 1, "venue_errors": 1}
    assert "  breaker trips this run   kill_switch 1, venue_errors 1" in summary.lines()


def test_a_futures_position_read_overlapped_by_an_execution_is_not_compared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_hedges import PERP

    controller, venues, restored = restored_hedge(tmp_path)
    assert controller.hedges is not None

    async def read_while_an_execution_finishes() -> list[Any]:
        controller._results_total += 1  # an execution ended while the answer was on its way
        return []  # a stale answer: flat

    monkeypatch.setattr(venues.venues[PERP], "positions", read_while_an_execution_finishes)
    asyncio.run(controller._check_futures_positions())
    assert controller.hedges.positions() == [restored]
    monkeypatch.setattr(venues.venues[PERP], "positions", lambda: asyncio.sleep(0, []))
    asyncio.run(controller._check_futures_positions())
    assert controller.hedges.positions() == []  # the same answer, read while nothing traded


def test_shutdown_waits_for_the_execution_in_flight_even_after_another_task_failed(tmp_path: Path) -> None:
    """A background task failed (what started this shutdown); stopping the others must not raise its
    error again before the trade loop, with its execution in flight, has finished."""
    controller = ArbitrageController(manager(tmp_path))
    finished: list[str] = []

    async def trade_loop() -> None:
        await asyncio.sleep(0.05)
        finished.append("execution")

    async def failing() -> None:
        raise RuntimeError("status task broke")

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        controller._tasks = [loop.create_task(trade_loop()), loop.create_task(failing())]
        await asyncio.sleep(0)  # the failing task has failed
        await controller._stop_scanning()
        await controller._finish_executions()

    asyncio.run(scenario())
    assert finished == ["execution"]


def test_a_drain_that_timed_out_names_the_execution_it_left_in_flight_and_its_unknown_orders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The summary said only that the step timed out: neither which execution was left in flight
    nor which of its orders the next start would have to ask the venues about."""
    import arb.controller

    monkeypatch.setattr(arb.controller, "EXECUTIONS_DRAIN_S", 0.2)
    configuration = manager(tmp_path)
    risk = RiskManager(configuration.config.risk_limits)
    journal = Journal(tmp_path / "j.sqlite3")
    journal_both_legs_filled(journal, "o0")  # ended: not named
    controller = ArbitrageController(configuration, risk=risk, journal=journal, shutdown=ShutdownManager(signals=()))
    orders = [
        (side.value, market, OrderRequest(symbol="BTC/USDT", side=side, type=OrderType.LIMIT, quantity=D("0.001"),
                                          price=D(60000), client_order_id=f"o1-{side.value[0]}"))
        for market, side in ((ExchangeName.MEXC, OrderSide.BUY), (ExchangeName.GATEIO, OrderSide.SELL))
    ]
    journal.record_intents("o1", orders)
    journal.record_reject(ExchangeName.MEXC, "o1-b", "insufficient balance")  # its outcome known
    risk.record_execution_started(mexc_to_gate("o1", D(60000), D(60100), "0.001"))  # its sell never answered

    async def scenario() -> list[StepOutcome]:
        controller._register_shutdown_steps()
        return await controller.shutdown("test over")

    outcomes = asyncio.run(scenario())
    assert {o.name: o.status for o in outcomes}["finish executions in flight"] is StepStatus.TIMEOUT
    summary = controller.summary()
    left = "o1 BTC/USDT, orders of unknown outcome: gateio o1-s; reconciled at the next start"
    assert summary.left_in_flight == [left] and f"  LEFT IN FLIGHT           {left}" in summary.lines()
    assert msgspec.to_builtins(summary)["left_in_flight"] == [left]  # the JSON summary event's


def test_shutdown_cancels_every_open_order_it_can_when_some_cannot_be(tmp_path: Path) -> None:
    """One venue's open orders cannot be read, one cancel fails (the venue times out) and one is
    answered that the order ended (filled meanwhile): the other orders of the engine's are still
    cancelled, an order placed by hand is left resting, and the step fails naming what may still
    rest (it ended OK, and the run's summary said "all OK", exit status 0)."""
    def resting(cid: str) -> OrderState:
        return OrderState(symbol="BTC/USDT", order_id=cid, client_order_id=cid, side=OrderSide.BUY,
                          type=OrderType.LIMIT, status=OrderStatus.NEW, quantity=D("0.001"), price=D(50000))

    class Venue:
        can_trade = True

        def __init__(self, orders: list[OrderState] | None) -> None:
            self.orders = orders
            self.cancelled: list[str] = []

        async def open_orders(self) -> list[OrderState]:
            if self.orders is None:
                raise ExchangeError("gateio", "open orders: connection refused")
            return self.orders

        async def cancel_order(self, symbol: str, *, order_id: str) -> OrderState:
            if order_id == "filled":
                raise OrderRejectedError("mexc", "unknown order", category=ErrorCategory.UNKNOWN_ORDER)
            if order_id == "stuck":
                raise ExchangeError("mexc", "cancel: timed out")
            self.cancelled.append(order_id)
            return msgspec.structs.replace(resting(order_id), status=OrderStatus.CANCELED)

    unreachable = Venue(None)
    mexc = Venue([resting("filled"), resting("by-hand"), resting("stuck"), resting("resting")])
    journal = Journal(tmp_path / "journal.sqlite3")
    for cid in ("filled", "stuck", "resting"):
        request = OrderRequest(symbol="BTC/USDT", side=OrderSide.BUY, type=OrderType.LIMIT, quantity=D("0.001"),
                               price=D(50000), time_in_force=TimeInForce.IOC, client_order_id=cid)
        journal.record_intent(f"o-{cid}", "buy", request, ExchangeName.MEXC)
    controller = ArbitrageController(manager(tmp_path), journal=journal)
    controller.traders = {ExchangeName.GATEIO: unreachable, ExchangeName.MEXC: mexc}  # type: ignore[dict-item]

    async def shut_down() -> list[StepOutcome]:
        shutdown = ShutdownManager(signals=())
        shutdown.add_step("cancel open orders", controller._cancel_open_orders, timeout_s=5)
        shutdown.request_shutdown("test")
        return await shutdown.wait()

    [outcome] = asyncio.run(shut_down())
    assert mexc.cancelled == ["resting"]
    assert outcome.status is StepStatus.ERROR and outcome.error is not None
    assert "gateio: open orders unreadable" in outcome.error and "mexc: cancelling stuck" in outcome.error
    assert "filled" not in outcome.error
    journal.close()


@pytest.mark.parametrize("reason", ["reconnect", "unroutable", "message_lost"])
def test_a_stream_wide_desync_counts_once_against_the_stale_data_breaker_whatever_its_books(tmp_path: Path, reason: str) -> None:
    """A dropped MEXC stream desyncs its six books at once: one stale-data event, not six (five trip
    the breaker, which latches). Gaps on single books, and a reconnect a second later, count each.
    So does a frame whose symbol cannot be read, or a message the websocket dropped (a diff of any
    of its books may be lost), which desyncs every book of the stream alike."""
    now = [10**9]
    configuration = manager(tmp_path)
    risk = RiskManager(configuration.config.risk_limits, clock=lambda: now[0])
    controller = ArbitrageController(configuration, executor=InstantExecutor(), risk=risk, clock=lambda: now[0])
    controller._scanning = True
    symbols = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "DOGE/USDT", "ADA/USDT")
    for symbol in symbols:
        controller._on_desync(BookKey(ExchangeName.MEXC, symbol), reason)
    for symbol in symbols[:3]:
        controller._on_desync(BookKey(ExchangeName.GATEIO, symbol), reason)  # another market's stream
    assert not risk.is_tripped
    controller._on_desync(BookKey(ExchangeName.MEXC, "BTC/USDT"), "gap")
    now[0] += 1_000_000_000
    controller._on_desync(BookKey(ExchangeName.MEXC, "BTC/USDT"), reason)
    assert not risk.is_tripped  # four events
    controller._on_desync(BookKey(ExchangeName.GATEIO, "BTC/USDT"), "gap")
    assert risk.is_tripped


def test_the_summary_names_each_inventory_skew_once_with_how_often_it_was_raised(tmp_path: Path) -> None:
    controller = ArbitrageController(manager(tmp_path))
    for share in ("0.05", "0.04"):
        controller._on_skew(
            SkewAlert(asset="BTC", exchange=ExchangeName.MEXC, free=D(share) * 10, total=D(10), share=D(share))
        )
    controller._on_skew(SkewAlert(asset="USDT", exchange=ExchangeName.GATEIO, free=D(5), total=D(100), share=D("0.05")))
    assert controller.summary().skew_alerts == [
        "inventory skew: mexc holds 0.40 of 10 BTC (4.0 %); trades that spend BTC there will stop soon (raised 2 times)",
        "inventory skew: gateio holds 5 of 100 USDT (5.0 %); trades that spend USDT there will stop soon",
    ]


def test_the_summary_counts_only_the_hedge_basis_this_runs_executions_locked_in(tmp_path: Path) -> None:
    """A restored hedge's basis was reported by the run that opened it; closing it gives it back
    out of this run's realized PnL, which the summary says rather than claiming basis locked in."""
    from test_hedges import PERP, opportunity

    controller, venues, restored = restored_hedge(tmp_path)
    assert controller.hedges is not None and controller.risk is not None and restored.locked_basis > 0
    before = controller.summary()
    assert before.open_hedges == 1 and before.held_hedge_basis == 0  # not this run's
    close = opportunity("c1", PERP, ExchangeName.GATEIO, "60100", "60150", "0.001")
    started = venues.executor.start(close)
    result = asyncio.run(controller._finish(venues.executor, controller.risk, started, {}))
    assert result.final_state is ArbitrageState.COMPLETED and controller.hedges.positions() == []
    after = controller.summary()
    assert after.open_hedges == 0 and after.held_hedge_basis == -restored.locked_basis
    assert ("of it hedge basis earlier runs reported, given back by closes; 0 open hedges)"
            in next(line for line in after.lines() if "realized PnL" in line))


def test_a_journal_that_stops_taking_writes_stops_new_entries(tmp_path: Path) -> None:
    configuration = manager(tmp_path)
    dislocation = Dislocation(
        exchange=ExchangeName.MEXC, symbol="BTC/USDT", start_ns=SECOND // 2, duration_ns=60 * SECOND, bps=-80
    )
    cluster = dry_run_cluster(configuration.config, dislocations=(dislocation,), random_per_minute=0)

    async def scenario() -> tuple[int, int, RunSummary]:
        async with cluster:
            journal = Journal(tmp_path / "j.sqlite3")
            controller = ArbitrageController(configuration, sim_cluster=cluster, journal=journal)
            await controller.initialize(dry_run=True)
            risk = controller.risk
            assert risk is not None
            running = asyncio.ensure_future(controller.run(duration_s=30))
            await eventually(lambda: len(controller.results) >= 2, 10, "trades on the dislocation")
            journal._db.execute("PRAGMA query_only=ON")  # as a disk that stopped taking writes
            await eventually(lambda: risk.get_circuit_breaker_status()[Breaker.JOURNAL_WRITES].tripped, 5, "the breaker")
            tripped = len(controller.results)
            await asyncio.sleep(1.0)  # the dislocation stands; nothing new may start
            held = len(controller.results)
            journal._db.execute("PRAGMA query_only=OFF")
            await controller.shutdown("test over")
            return tripped, held, await running

    tripped, held, summary = asyncio.run(scenario())
    assert held <= tripped + 1  # at most the execution in flight when the write failed finishes
    assert [line for line in summary.breakers_tripped if line.startswith("journal_writes")]
    assert "attempt to write a readonly database" in summary.breakers_tripped[0]


STARTUP_CHILD = Path(__file__).with_name("startup_child.py")


def _starting(mode: str) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, str(STARTUP_CHILD), mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline() == "connecting\n"
    return child


def test_sigterm_during_start_up_stops_it_and_closes_what_it_opened() -> None:
    child = _starting("ok")
    child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    assert out.splitlines() == [
        "connecting stopped", "connections closed", "interrupted: received SIGTERM while starting; nothing was traded",
    ]
    assert "SIGTERM during start-up: stopping" in err


def test_a_second_signal_while_the_start_up_stops_forces_exit() -> None:
    child = _starting("hang")
    child.send_signal(signal.SIGTERM)
    assert child.stdout is not None and child.stdout.readline() == "connecting stopped\n"
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=30)
    assert child.returncode == 1 and "received SIGINT again while stopping the start-up: forcing exit" in err


def test_the_kill_switch_engaged_during_start_up_holds_when_trading_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configuration = manager(tmp_path)
    cluster = dry_run_cluster(configuration.config, random_per_minute=0)
    check_clocks = ArbitrageController._check_clocks

    async def operator_engages_it_meanwhile(self: ArbitrageController) -> None:
        assert signal.getsignal(signal.SIGUSR1) is not signal.SIG_DFL  # else the signal would end pytest
        os.kill(os.getpid(), signal.SIGUSR1)
        await asyncio.sleep(0.05)  # the handler runs on the loop
        await check_clocks(self)

    monkeypatch.setattr(ArbitrageController, "_check_clocks", operator_engages_it_meanwhile)

    async def scenario() -> tuple[bool, bool]:
        async with cluster:
            controller = ArbitrageController(configuration, sim_cluster=cluster, journal=Journal(tmp_path / "j.sqlite3"))
            await controller.initialize(dry_run=True)  # restores the risk state, breakers reset, after the signal
            risk = controller.risk
            assert risk is not None
            engaged = risk.get_circuit_breaker_status()[Breaker.KILL_SWITCH].tripped
            assert signal.getsignal(signal.SIGUSR2) is not signal.SIG_DFL
            os.kill(os.getpid(), signal.SIGUSR2)  # between the start-up and run: the kill switch's own handler
            await asyncio.sleep(0.05)
            released = not risk.get_circuit_breaker_status()[Breaker.KILL_SWITCH].tripped
            await controller.shutdown("test over")
            return engaged, released

    assert asyncio.run(scenario()) == (True, True)


def test_sigterm_between_the_start_up_and_the_run_shuts_the_run_down_at_once(tmp_path: Path) -> None:
    configuration = manager(tmp_path)
    cluster = dry_run_cluster(configuration.config, random_per_minute=0)

    async def scenario() -> RunSummary:
        async with cluster:
            controller = ArbitrageController(configuration, sim_cluster=cluster, journal=Journal(tmp_path / "j.sqlite3"))
            await controller.initialize(dry_run=True)
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # else the signal would end pytest
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(0.05)
            return await controller.run(duration_s=30)  # not waited out: stopped for the signal

    summary = asyncio.run(scenario())
    assert summary.stop_reason == "received SIGTERM" and summary.ok


def test_a_start_up_stopped_after_flagging_a_residual_says_so(tmp_path: Path) -> None:
    """It said only "nothing was traded", and the command exited 0 over a residual an earlier run
    left that now waits for an operator."""
    from arb.errors import StartupInterrupted

    controller = ArbitrageController(manager(tmp_path))

    async def flagged_then_stopped(dry_run: bool, paper: bool) -> None:
        controller._flagged_at_start = 1  # as ``_flag_interrupted`` counts it
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # else the signal would end pytest
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(30)

    controller._initialize = flagged_then_stopped  # type: ignore[method-assign]
    with pytest.raises(StartupInterrupted) as stopped:
        asyncio.run(controller.initialize(dry_run=True))
    assert stopped.value.flagged == 1
    assert str(stopped.value) == ("received SIGTERM while starting; nothing was traded; 1 residual an earlier run "
                                  "left flagged for manual approval (python -m arb approvals)")


def test_positions_held_are_valued_at_the_live_books(tmp_path: Path) -> None:
    from test_pipeline import found_buy_gate_sell_mexc

    from arb.exchanges.models import Fill

    controller = ArbitrageController(manager(tmp_path), risk=RiskManager(manager(tmp_path).config.risk_limits))
    controller.pipeline, _, _ = found_buy_gate_sell_mexc()
    risk = controller.risk
    assert risk is not None
    risk.record_fill(ExchangeName.MEXC, Fill(
        symbol="BTC/USDT", order_id="x", client_order_id=None, trade_id="t1", side=OrderSide.BUY, price=D("50000"),
        quantity=D("0.001"), fee=D(0), fee_asset="BTC", is_maker=False, timestamp_ms=1,
    ))
    assert risk.get_current_risk_metrics().symbol_exposure_usd == {"BTC/USDT": D("50.000")}
    controller._mark_to_market()  # what run() does first, and every status tick
    assert risk.get_current_risk_metrics().symbol_exposure_usd == {"BTC/USDT": D("61.000")}


def test_the_kill_switch_holds_across_a_restart_until_it_is_released(tmp_path: Path) -> None:
    """A crash, a reboot or a redeploy restarts the engine: an operator's stop must survive it."""
    configuration = manager(tmp_path)
    cluster = dry_run_cluster(configuration.config, random_per_minute=0)
    path = tmp_path / "j.sqlite3"

    async def start(action: Callable[[ArbitrageController], None] | None = None) -> bool:
        controller = ArbitrageController(configuration, sim_cluster=cluster, journal=Journal(path))
        await controller.initialize(dry_run=True)
        assert controller.risk is not None
        engaged = controller.risk.get_circuit_breaker_status()[Breaker.KILL_SWITCH].tripped
        if action is not None:
            action(controller)
        await controller.shutdown("restart")
        return engaged

    async def scenario() -> list[bool]:
        async with cluster:
            return [
                await start(lambda c: c.engage_kill_switch("the operator (test)")),
                await start(),
                await start(lambda c: c.release_kill_switch("the operator (test)")),
                await start(),
            ]

    assert asyncio.run(scenario()) == [False, True, True, False]


def test_a_kill_switch_engaged_after_the_journal_closed_says_a_restart_does_not_keep_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A SIGUSR1 late in the shutdown, past the journal's flush: engaged for what is left of the
    run, journaled nowhere, and nothing said so."""
    controller = ArbitrageController(manager(tmp_path), journal=Journal(tmp_path / "j.sqlite3"),
                                     risk=RiskManager(manager(tmp_path).config.risk_limits))
    asyncio.run(controller._close_journal())
    with caplog.at_level(logging.WARNING, logger="arb.controller"):
        controller.engage_kill_switch("the operator (test)")
    assert "the kill switch change (the operator (test)) is not kept for the next start" in caplog.text
    with Journal(tmp_path / "j.sqlite3") as journal:
        assert journal.kill_switch() is None


def test_an_engine_started_and_shut_down_without_a_run_gives_the_signals_back(tmp_path: Path) -> None:
    configuration = manager(tmp_path)
    cluster = dry_run_cluster(configuration.config, random_per_minute=0)

    async def scenario() -> tuple[list[Any], list[Any]]:
        async with cluster:
            controller = ArbitrageController(configuration, sim_cluster=cluster, journal=Journal(tmp_path / "j.sqlite3"))
            await controller.initialize(dry_run=True)
            taken = [signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)]
            await controller.shutdown("no run")
            return taken, [signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)]

    taken, given_back = asyncio.run(scenario())
    assert signal.SIG_DFL not in taken and given_back == [signal.SIG_DFL] * 3


def test_the_kill_switch_set_during_a_start_that_then_fails_holds_at_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configuration = manager(tmp_path)
    cluster = dry_run_cluster(configuration.config, random_per_minute=0)
    path = tmp_path / "j.sqlite3"
    check_clocks = ArbitrageController._check_clocks

    async def engaged_then_failed(self: ArbitrageController) -> None:
        assert signal.getsignal(signal.SIGUSR1) is not signal.SIG_DFL  # else the signal would end pytest
        os.kill(os.getpid(), signal.SIGUSR1)
        await asyncio.sleep(0.05)
        raise ExchangeError("gateio", "venue down while starting")

    async def scenario() -> bool:
        async with cluster:
            first = ArbitrageController(configuration, sim_cluster=cluster, journal=Journal(path))
            monkeypatch.setattr(ArbitrageController, "_check_clocks", engaged_then_failed)
            with pytest.raises(ExchangeError, match="venue down while starting"):
                await first.initialize(dry_run=True)
            monkeypatch.setattr(ArbitrageController, "_check_clocks", check_clocks)
            second = ArbitrageController(configuration, sim_cluster=cluster, journal=Journal(path))
            await second.initialize(dry_run=True)
            assert second.risk is not None
            engaged = second.risk.get_circuit_breaker_status()[Breaker.KILL_SWITCH].tripped
            await second.shutdown("test over")
            return engaged

    assert asyncio.run(scenario())


def test_recovery_mode_off_reaches_the_recovery_manager(tmp_path: Path) -> None:
    configuration = manager(tmp_path, CONFIG + "enable_recovery_mode = false\n")
    cluster = dry_run_cluster(configuration.config, random_per_minute=0)

    async def scenario() -> bool:
        async with cluster:
            controller = ArbitrageController(configuration, sim_cluster=cluster, journal=Journal(tmp_path / "j.sqlite3"))
            await controller.initialize(dry_run=True)
            assert controller.recovery is not None
            automatic = controller.recovery.automatic
            await controller.shutdown("test over")
            return automatic

    assert asyncio.run(scenario()) is False


def test_a_live_start_that_failed_before_its_journal_opened_still_journals_the_kill_switch(tmp_path: Path) -> None:
    """The CLI's controller opens its journal only after connecting and checking keys and clocks,
    where a start usually fails: the operator's SIGUSR1 meanwhile goes into the journal all the same."""
    path = tmp_path / "live.sqlite3"
    controller = ArbitrageController(manager(tmp_path, CONFIG + f'journal_path = "{path}"\n'))
    controller.mode = "LIVE"
    controller._kill_at_start = True  # what SIGUSR1 during the start-up sets
    controller._startup_kill_journaled = False  # an earlier SIGUSR2 was journaled; this SIGUSR1 was not
    controller._keep_startup_kill()
    with Journal(path) as journal:
        kept = journal.kill_switch()
    assert kept is not None and kept[0] == "the operator (SIGUSR1, during start-up)"
    dry = ArbitrageController(manager(tmp_path, CONFIG + f'journal_path = "{tmp_path / "dry.sqlite3"}"\n'))
    # Stopped before it made its built-in venues (none given it): their journal starts afresh, nothing to keep.
    dry.mode, dry._kill_at_start = "dry run", True
    dry._keep_startup_kill()
    for tag in ("dry", "sim"):
        assert not Path(simulated_journal_path(str(tmp_path / "dry.sqlite3"), tag)).exists()


def test_the_engine_is_not_ready_once_its_shutdown_has_begun(tmp_path: Path) -> None:
    from arb.metrics import readiness

    controller = ArbitrageController(manager(tmp_path))
    assert not controller.shutting_down
    asyncio.run(controller.shutdown("test over"))
    assert controller.shutting_down and "shutting down" in readiness(controller).reasons


def test_a_dry_run_that_keeps_its_journal_keeps_the_kill_switch_of_a_start_that_failed(tmp_path: Path) -> None:
    """On venues that outlive it (``--sim-urls``) a dry run keeps its journal and restores from it,
    as live does: its operator's SIGUSR1 during a start-up then stopped was lost all the same."""
    path = tmp_path / "j.sqlite3"
    controller = ArbitrageController(manager(tmp_path, CONFIG + f'journal_path = "{path}"\n'))
    controller.mode = "dry run"
    controller.sim_endpoints = cast(Any, object())  # its venues another process's: not the built-in ones it would start
    controller._kill_at_start = True  # what SIGUSR1 during the start-up sets
    controller._keep_startup_kill()
    with Journal(simulated_journal_path(str(path), "sim")) as journal:
        kept = journal.kill_switch()
    assert kept is not None and kept[0] == "the operator (SIGUSR1, during start-up)"


def test_the_shutdown_waits_for_executions_longer_than_a_rate_limited_recovery_takes(tmp_path: Path) -> None:
    """A recovery held by a venue's rate limits flags its residual after RATE_LIMITED_FOR_S: a
    shutdown that closed the connectors and the journal before that cut the recovery short and
    left the residual to an operator, unhedged, when the engine would have hedged it."""
    from arb.recovery import RATE_LIMITED_FOR_S

    controller = ArbitrageController(manager(tmp_path))
    controller._register_shutdown_steps()
    shutdown = controller.shutdown_manager
    steps = dict(shutdown.steps)
    names = list(steps)
    assert names.index("finish executions in flight") < names.index("close connectors") < names.index("flush journal")
    assert steps["finish executions in flight"] >= RATE_LIMITED_FOR_S + 20  # the legs' outcomes, then the recovery
    assert shutdown.timeout_s >= sum(steps.values())  # no step is skipped for want of the whole budget


def test_no_hedge_close_starts_once_the_shutdown_stopped_scanning(tmp_path: Path) -> None:
    closes: list[str] = []
    controller = ArbitrageController(manager(tmp_path))
    positions = [SimpleNamespace(name=f"p{n}", futures=ExchangeName.GATEIO_FUTURES, symbol="BTC/USDT") for n in range(3)]
    hedges = SimpleNamespace(
        positions=lambda: positions, holds=lambda position: True,
        close_opportunity=lambda position, *args, **kwargs: SimpleNamespace(name=position.name),
    )

    async def process(opportunity: Any, *, closes_hedge: bool = False) -> None:
        closes.append(opportunity.name)
        controller._scanning = False  # the shutdown's first step ran while this close executed

    controller._process_locked = process  # type: ignore[method-assign]
    controller._hedge_legs = lambda pipeline, position: (  # type: ignore[method-assign]
        SimpleNamespace(instrument=SimpleNamespace(symbol="BTC_USDT")),) * 2
    controller._scanning = True
    asyncio.run(controller._close_hedges(hedges, SimpleNamespace(id_prefix="t", max_age_ns=1)))  # type: ignore[arg-type]
    assert closes == ["p0"]


def test_a_run_that_flagged_a_residual_does_not_end_ok_and_names_every_one_waiting(tmp_path: Path) -> None:
    """Its exit code and summary say a position waits for a person, not that all went well."""
    from test_recovery import GATE, MEXC, fee_free, leg

    from arb.recovery import RecoveryManager, Residual

    buy, sell = fee_free(GATE), fee_free(MEXC)
    recovery = RecoveryManager({v.exchange: v for v in (buy, sell)}, max_loss_quote=D(20), automatic=False)
    controller = ArbitrageController(manager(tmp_path), recovery=recovery)
    recovery.restore_flagged("old1", "ETH/USDT", D("0.5"), "interrupted by an engine restart")
    before = controller.summary()
    # An earlier run's flag is listed; it is that run's outcome, not this one's.
    assert before.awaiting_approval == ["old1 ETH/USDT residual 0.5: interrupted by an engine restart"]
    assert before.flagged_this_run == 0 and before.ok
    assert not [line for line in before.lines() if "flagged this run" in line]
    residual = Residual(opportunity_id="opp1", buy=leg(buy, OrderSide.BUY, "10", "10", "100"),
                        sell=leg(sell, OrderSide.SELL, "10", "6", "101"))
    assert asyncio.run(recovery.recover(residual)).requires_manual_approval
    after = controller.summary()
    assert after.flagged_this_run == 1 and not after.ok
    waiting = [line for line in after.lines() if line.startswith("  AWAITING APPROVAL")]
    assert len(waiting) == 2 and waiting[1].startswith("  AWAITING APPROVAL        opp1 BTC/USDT residual 4")
    assert "  flagged this run         1 for an operator's approval" in after.lines()


def test_housekeeping_collects_garbage_only_while_no_opportunity_waits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An opportunity queued for the trade loop is traded in the loop's next steps; a collection
    run by the status tick in between would hold its orders back. Put off, but not for ever:
    opportunities standing at every tick, and garbage piles up with automatic collection off."""
    controller = ArbitrageController(manager(tmp_path))
    collected: list[int] = []
    monkeypatch.setattr(controller.collection, "collect_if_due", lambda: collected.append(tick))
    controller._pending["BTC/USDT"] = mexc_to_gate("o1", D("100"), D("101"), "0.1")  # type: ignore[index]
    for tick in range(1, 2 * (COLLECTION_SKIPS_MAX + 1) + 1):
        controller._collect_at_tick()
    assert collected == [COLLECTION_SKIPS_MAX + 1, 2 * (COLLECTION_SKIPS_MAX + 1)]
    controller._pending.clear()
    collected.clear()
    for tick in range(3):
        controller._collect_at_tick()
    assert collected == [0, 1, 2]


def test_a_start_up_stop_whose_cancellation_was_swallowed_still_stops_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Code inside the start-up may swallow the cancellation a SIGTERM brings (a library's own
    ``wait_for``, say) and let the start-up finish: the run then shuts down at once, not trade."""
    controller = ArbitrageController(manager(tmp_path))

    async def start_swallowing_the_cancellation(dry_run: bool, paper: bool) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(5)
        controller._initialized = True

    monkeypatch.setattr(controller, "_initialize", start_swallowing_the_cancellation)

    async def scenario() -> str | None:
        await controller.initialize(dry_run=True)  # its handlers take the SIGTERM sent inside it
        stop = controller._stop_before_run
        await controller.shutdown("test over")
        return stop

    assert asyncio.run(scenario()) == "received SIGTERM"


def test_the_shutdown_cancels_the_engines_orders_while_the_journal_cannot_be_written(tmp_path: Path) -> None:
    """A journal locked by another writer (or failing) is when an operator stops the engine: asking
    it which orders are the engine's must not need a write, and an order it cannot answer about is
    cancelled rather than left to fill unwatched."""
    import sqlite3

    def resting(cid: str) -> OrderState:
        return OrderState(symbol="BTC/USDT", order_id=cid, client_order_id=cid, side=OrderSide.BUY,
                          type=OrderType.LIMIT, status=OrderStatus.NEW, quantity=D("0.001"), price=D(50000))

    class Venue:
        can_trade = True

        def __init__(self) -> None:
            self.cancelled: list[str] = []

        async def open_orders(self) -> list[OrderState]:
            return [resting("logged"), resting("unanswerable")]

        async def cancel_order(self, symbol: str, *, order_id: str) -> OrderState:
            self.cancelled.append(order_id)
            return msgspec.structs.replace(resting(order_id), status=OrderStatus.CANCELED)

    path = tmp_path / "journal.sqlite3"
    journal = Journal(path)
    request = OrderRequest(symbol="BTC/USDT", side=OrderSide.BUY, type=OrderType.LIMIT, quantity=D("0.001"),
                           price=D(50000), time_in_force=TimeInForce.IOC, client_order_id="logged")
    journal.record_intents("o-logged", [("buy", ExchangeName.MEXC, request)], deferred=True)  # in the intent log
    knows = journal.knows

    def knows_or_fails(market: ExchangeName, client_order_id: str) -> bool:
        if client_order_id == "unanswerable":
            raise sqlite3.OperationalError("disk I/O error")
        return knows(market, client_order_id)

    journal.knows = knows_or_fails  # type: ignore[method-assign]
    other = sqlite3.connect(path, timeout=0.1)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the database
    try:
        venue = Venue()
        controller = ArbitrageController(manager(tmp_path), journal=journal)
        controller.traders = {ExchangeName.MEXC: venue}  # type: ignore[dict-item]
        asyncio.run(controller._cancel_open_orders())
        assert venue.cancelled == ["logged", "unanswerable"]
    finally:
        other.rollback()
        other.close()
        journal.close()


def _start_stopped_by(tmp_path: Path, before: str, in_start: str) -> subprocess.CompletedProcess[str]:
    """Run a dry start-up in a process of its own, ``before`` run first and ``in_start`` as the start
    begins, the start then waiting to be stopped; it prints "interrupted: <reason>" when it is."""
    script = f"""
import asyncio, os, signal, sys
{before}
from arb.config import ConfigurationManager
from arb.controller import ArbitrageController
from arb.errors import StartupInterrupted
manager = ConfigurationManager(None, environ={{"ARB_JOURNAL_PATH": {str(tmp_path / "j.sqlite3")!r}}})
manager.load_configuration(dry_run=True)
controller = ArbitrageController(manager)

async def start(dry_run, paper):
{in_start}
    try:
        await asyncio.sleep(5)
    except asyncio.CancelledError:  # stopped: the start-up closes what it opened, which awaits
        await asyncio.sleep(0.2)
        raise

controller._initialize = start
try:
    asyncio.run(controller.initialize(dry_run=True))
except StartupInterrupted as exc:
    print("interrupted:", exc)
"""
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd="/")


def test_the_held_stop_signal_delivered_again_by_the_event_loop_is_handled_once(tmp_path: Path) -> None:
    """A stop that comes while the start-up installs its handlers reaches both the hold
    (``hold_stop_signals``) and the event loop: handled twice, it read as a second signal and
    forced the process out, skipping the start-up's cleanup."""
    result = _start_stopped_by(
        tmp_path,
        "from arb.shutdown import hold_stop_signals\nhold_stop_signals()\nos.kill(os.getpid(), signal.SIGTERM)  # held",
        "    os.kill(os.getpid(), signal.SIGTERM)  # the same stop, as the event loop delivers it",
    )
    assert result.returncode == 0, result.stderr
    assert "interrupted: received SIGTERM while starting" in result.stdout and "forcing exit" not in result.stderr


def test_a_stop_delivered_twice_during_the_start_up_stops_it_once(tmp_path: Path) -> None:
    """``timeout`` signals the process and then its process group: the second delivery of the one
    stop read as a second signal and forced the process out, skipping the start-up's cleanup."""
    result = _start_stopped_by(tmp_path, "", "    os.kill(os.getpid(), signal.SIGTERM)\n    os.kill(os.getpid(), signal.SIGTERM)")
    assert result.returncode == 0, result.stderr
    assert "interrupted: received SIGTERM while starting" in result.stdout
    assert "the same stop delivered twice" in result.stderr and "forcing exit" not in result.stderr


def test_a_kill_switch_signal_held_before_the_start_up_engages_it_when_trading_starts(tmp_path: Path) -> None:
    """A container's first process ignores a signal it has no handler for: SIGUSR1 sent while the
    engine loaded was lost and the engine traded (elsewhere it ended the process). Held, it sets
    the kill switch the run starts with; SIGUSR2 after it (the last word) releases it again."""
    script = f"""
import asyncio, os, signal
from arb.shutdown import hold_stop_signals
hold_stop_signals()
os.kill(os.getpid(), signal.SIGUSR2)
os.kill(os.getpid(), signal.SIGUSR1)  # held: the last one stands
from arb.config import ConfigurationManager
from arb.controller import ArbitrageController
from arb.risk import Breaker
manager = ConfigurationManager(None, environ={{"ARB_JOURNAL_PATH": {str(tmp_path / "j.sqlite3")!r}}})
manager.load_configuration(dry_run=True)

async def main():
    controller = ArbitrageController(manager)
    await controller.initialize(dry_run=True)
    engaged = controller.risk.get_circuit_breaker_status()[Breaker.KILL_SWITCH].tripped
    await controller.shutdown("test over")
    print("engaged:", engaged)

asyncio.run(main())
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "engaged: True" in result.stdout
    assert "SIGUSR1 during start-up: the kill switch is engaged when trading starts" in result.stderr


@pytest.mark.parametrize("trade", [False, True], ids=["no run", "run"])
def test_a_stop_signal_ends_a_session_body_that_would_wait_on(tmp_path: Path, trade: bool) -> None:
    """SIGINT in a session: without a run it was only noted for a run that never came (the body
    traded on, only SIGKILL ended it); with one, the engine shut down under a body never told."""
    configuration = manager(tmp_path)
    cluster = dry_run_cluster(configuration.config, random_per_minute=0)

    async def scenario() -> tuple[str, str | None, bool]:
        async with cluster:
            controller = ArbitrageController(configuration, sim_cluster=cluster, journal=Journal(tmp_path / "j.sqlite3"))
            engine = ArbitrageEngine(controller)
            with pytest.raises(SessionStopped) as stopped:
                async with engine.session(trade=trade):
                    await asyncio.sleep(0.2)
                    assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler  # the engine's own
                    os.kill(os.getpid(), signal.SIGINT)
                    await asyncio.sleep(30)  # a body that waits on: cancelled
            return str(stopped.value), controller.shutdown_manager.reason, controller.journal is None

    message, reason, closed = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert message == "the engine stopped (received SIGINT) while the session ran"
    assert reason == "received SIGINT" and closed  # shut down: the journal closed


def test_the_scanner_prices_a_hedges_entry_fees_at_the_rates_the_hedge_book_saw_charged(tmp_path: Path) -> None:
    """The guard against an opening the closing rule would close at once reads the rates the venues
    charged from the hedge book, whose entry fees the rule counts."""
    configuration = manager(tmp_path, CONFIG + 'opportunity_types = ["spot_spot", "spot_futures_hedge"]\n')
    _, controller = dry_run(tmp_path, configuration, 0.1)
    assert controller.pipeline is not None and controller.hedges is not None
    assert controller.pipeline.charged_rates is controller.hedges


def test_an_execution_the_hedge_book_fails_on_still_releases_its_reservation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hedge book records an execution before the risk manager: failing there, the execution
    stayed reserved and in flight, and the shutdown waited out its drain for it."""
    configuration = manager(tmp_path, CONFIG + 'opportunity_types = ["spot_spot", "spot_futures_hedge"]\n')
    dislocation = Dislocation(
        exchange=ExchangeName.MEXC, symbol="BTC/USDT", start_ns=SECOND // 2, duration_ns=2 * SECOND, bps=-80
    )

    def failing(self: HedgeBook, opportunity: ArbitrageOpportunity, result: ExecutionResult) -> None:
        raise RuntimeError("hedge book out of order")

    monkeypatch.setattr(HedgeBook, "record", failing)
    summary, controller = dry_run(tmp_path, configuration, 10, dislocations=(dislocation,))
    assert controller.hedges is not None and controller.risk is not None
    assert summary.error is not None and "hedge book out of order" in summary.error
    assert controller.risk.executions_in_flight == 0 and controller.risk.get_current_risk_metrics().in_flight_usd == 0


def test_the_built_in_venues_are_stopped_when_the_start_fails_as_they_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Their start was outside the start-up's cleanup: stopped there (a signal, an error), the
    venues' servers stayed open, their sockets left behind."""
    import socket
    from urllib.parse import urlsplit

    started: list[SimCluster] = []
    start = SimCluster.start

    async def started_then_stopped(self: SimCluster) -> None:
        await start(self)
        started.append(self)
        raise asyncio.CancelledError  # as a signal's cancellation lands

    monkeypatch.setattr(SimCluster, "start", started_then_stopped)
    controller = ArbitrageController(manager(tmp_path), journal=Journal(tmp_path / "j.sqlite3"))
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(controller.initialize(dry_run=True))
    (cluster,) = started
    for urls in cluster.urls().values():
        where = urlsplit(urls.rest_url)
        with pytest.raises(OSError), socket.create_connection((where.hostname, where.port), timeout=2):
            pass  # refused: the server was closed


def test_a_controller_whose_start_failed_or_that_ran_is_not_used_again(tmp_path: Path) -> None:
    """Its parts were closed (the journal under the risk manager and executor, the sessions): a
    second initialize traded on a closed journal, a second run left its tasks running."""
    configuration = manager(tmp_path)
    cluster = dry_run_cluster(configuration.config, random_per_minute=0)

    async def scenario() -> None:
        async with cluster:
            failing = ArbitrageController(configuration, sim_cluster=cluster, journal=Journal(tmp_path / "a.sqlite3"))

            async def venue_down(self: ArbitrageController) -> None:
                raise ExchangeError("gateio", "venue down while starting")

            failing._check_clocks = types.MethodType(venue_down, failing)  # type: ignore[method-assign]
            with pytest.raises(ExchangeError):
                await failing.initialize(dry_run=True)
            with pytest.raises(ArbitrageEngineError, match="its initialize\\(\\) failed"):
                await failing.initialize(dry_run=True)
            ran = ArbitrageController(configuration, sim_cluster=cluster, journal=Journal(tmp_path / "b.sqlite3"))
            assert not ran.started and not failing.started  # /startedz answers 503 meanwhile
            await ran.initialize(dry_run=True)
            assert ran.started
            summary = await ran.run(duration_s=0.5)
            assert summary.ok
            with pytest.raises(ArbitrageEngineError, match="already ran or shut down"):
                await ran.run(duration_s=0.5)

    asyncio.run(scenario())


def test_an_engine_task_that_returns_stops_the_run_as_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every task runs until the shutdown: one that returned (or was cancelled) left a part of the
    engine unrun, and was reported as "duration elapsed" with exit code 0."""
    async def returns(self: BalanceMonitor) -> None:
        await asyncio.sleep(0.3)

    monkeypatch.setattr(BalanceMonitor, "run", returns)
    summary, _ = dry_run(tmp_path, manager(tmp_path), 30)
    assert summary.stop_reason == "arb balances: returned while running" and not summary.ok


def test_a_shutdown_manager_given_too_short_a_budget_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One passed in by a caller keeps its own budget: shorter than the steps, the journal's flush
    could be skipped after a long drain."""
    controller = ArbitrageController(manager(tmp_path), shutdown=ShutdownManager(timeout_s=30))
    with caplog.at_level(logging.WARNING, logger="arb.controller"):
        controller._register_shutdown_steps()
    assert "the shutdown's budget, 30 s, is shorter than its steps' 80 s" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="arb.controller"):
        ArbitrageController(manager(tmp_path))._register_shutdown_steps()
    assert "budget" not in caplog.text


def test_an_opportunity_given_again_while_it_executes_is_not_started_twice(tmp_path: Path) -> None:
    """``ArbitrageEngine.execute_opportunity`` called twice with one opportunity: the second would
    find its client ids taken, fail at once, and its end release the first one's reservation while
    the first one's orders were out, opening the exposure limits."""
    configuration = manager(tmp_path)
    risk = RiskManager(configuration.config.risk_limits)
    controller = ArbitrageController(configuration, executor=InstantExecutor(), risk=risk)
    opp = mexc_to_gate("dup1", D("100"), D("101"), "0.1", detected_at=controller.clock())
    risk.record_execution_started(opp)  # the first execution, its orders out
    reserved = risk.get_current_risk_metrics().in_flight_usd
    assert asyncio.run(controller.process(opp)) is None
    assert risk.in_flight("dup1") and risk.get_current_risk_metrics().in_flight_usd == reserved > 0


DELISTED = "gateio_futures: instrument 'BTC/USDT:USDT' was left out: in_delisting=true"


@pytest.mark.parametrize("released_before", [False, True])
def test_a_start_that_cannot_value_todays_executions_holds_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, released_before: bool
) -> None:
    """Lost money on a venue today, disabled it, restarted: its executions cannot be valued, and
    leaving them out would hand their loss back to the daily loss limit. Entries are held (the
    kill switch, journaled) until an operator has looked; a SIGUSR2 sent earlier in the start-up
    (``released_before``) was not about this and does not release it."""
    from arb.risk import RestoredRisk

    configuration = manager(tmp_path)
    cluster = dry_run_cluster(configuration.config, random_per_minute=0)
    restore = RiskManager.restore

    def restore_leaving_out(self: RiskManager, *args: Any, **kwargs: Any) -> RestoredRisk:
        return msgspec.structs.replace(
            restore(self, *args, **kwargs), unvalued_today=("lost1",), why_left_out={"lost1": DELISTED},
        )

    monkeypatch.setattr(RiskManager, "restore", restore_leaving_out)

    async def scenario() -> tuple[bool, tuple[str, int] | None]:
        async with cluster:
            controller = ArbitrageController(configuration, sim_cluster=cluster, journal=Journal(tmp_path / "j.sqlite3"))
            if released_before:
                controller._kill_at_start = False  # what SIGUSR2 early in the start-up sets
            await controller.initialize(dry_run=True)
            assert controller.risk is not None and controller.journal is not None
            held = controller.risk.get_circuit_breaker_status()[Breaker.KILL_SWITCH].tripped
            kept = controller.journal.kill_switch()
            await controller.shutdown("test over")
            return held, kept

    held, kept = asyncio.run(scenario())
    # Named as it is: the market is traded, its contract is what the venue no longer lists.
    assert held and kept is not None and kept[0].startswith(
        f"today's realized PnL is not known whole: 1 of today's executions could not be valued (lost1: {DELISTED}): "
        "a market this run does not trade, or an instrument the venue no longer lists"
    )


def test_a_flag_whose_residual_the_start_found_closed_is_raised_again_with_what_is_open(tmp_path: Path) -> None:
    """Flagged with its sell of unknown outcome (residual 0.001 BTC bought); the start's reconciliation
    found the sell filled. Kept at 0.001, the flag would have an operator sell by hand a position
    that is no longer there."""
    journal = Journal(tmp_path / "journal.sqlite3")
    journal.record_recovery_step("o2", "manual_approval", {"reason": "sell outcome unknown", "residual": D("0.001")})
    journal_both_legs_filled(journal, "o2")  # the sell's fill: what the start's reconciliation learned
    recovery = RecoveryManager({}, max_loss_quote=D(1))
    controller = ArbitrageController(manager(tmp_path), recovery=recovery)
    controller._catalogs = {
        market: InstrumentCatalog(market, [i for i in default_instruments(("BTC",)) if i.exchange is market])
        for market in (ExchangeName.MEXC, ExchangeName.GATEIO)
    }
    controller._flag_interrupted(journal, [])
    [(opp, _, detail)] = journal.awaiting_approval()
    assert opp == "o2" and D(detail["residual"]) == 0
    assert "the fills now leave 0.000 base open (was 0.001)" in detail["reason"]
    [waiting] = recovery.get_active_recoveries()  # what the operator is shown: the flag as raised again
    assert waiting.residual_quantity == 0 and "the fills now leave" in waiting.reason
    # Raised again by this start: the run says so and fails, as for a new flag (it ended 0, unsaid).
    assert controller.summary().flagged_this_run == 1 and not controller.summary().ok
    controller._flag_interrupted(journal, [])  # as the fills say now: not raised again
    assert [step for step, _ in journal.recovery_steps("o2")].count("manual_approval") == 2
    assert controller.summary().flagged_this_run == 1
