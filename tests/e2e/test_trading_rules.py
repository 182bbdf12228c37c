"""A market that stops trading, or changes its trading rules, while the engine runs is no longer traded.

The simulated venues run in this process; MEXC's BTC/USDT trades 80 bps cheap for half a
minute, so the engine keeps buying there and selling on Gate.io. The engine reads the venues'
trading rules every second. Gate.io's answer is then edited: BTC/USDT is listed as untradable,
then as at the start, then with a coarser tick size. The engine must stop trading it, trade it
again, and stop again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from decimal import Decimal as D
from pathlib import Path

import msgspec
import pytest
from loopback import eventually

from arb.config import ConfigurationManager
from arb.controller import ArbitrageController, RunSummary, dry_run_cluster
from arb.exchanges.base import BookKey
from arb.exchanges.connector import ExchangeConnector
from arb.instruments import InstrumentCatalog, SkippedPair
from arb.journal import Journal
from arb.pipeline import ScannerPipeline
from arb.sim.cluster import SimCluster
from arb.sim.market import Dislocation
from arb.sim.matching import MatchingEngine
from arb.types import ArbitrageState, ExchangeName, ExecutionResult, OrderSide

SECOND = 1_000_000_000
CONFIG = """
[engine]
symbols = ["BTC/USDT"]
instrument_refresh_interval_ms = 1000

[exchanges.gateio]
markets = ["spot"]
"""
GATE_BTC = BookKey(ExchangeName.GATEIO, "BTC/USDT")


def dislocated(
    tmp_path: Path, config: str, market: ExchangeName, symbol: str, seconds: int, bps: int
) -> tuple[ConfigurationManager, SimCluster]:
    """The configuration ``config`` and simulated venues where ``market``'s ``symbol`` trades ``bps``
    away from 1 s for ``seconds``."""
    path = tmp_path / "arb.toml"
    path.write_text(config)
    manager = ConfigurationManager(path, environ={})
    manager.load_configuration(dry_run=True)
    moved = Dislocation(exchange=market, symbol=symbol, start_ns=SECOND, duration_ns=seconds * SECOND, bps=bps)
    return manager, dry_run_cluster(manager.config, dislocations=(moved,), random_per_minute=0)


async def trading(
    manager: ConfigurationManager, cluster: SimCluster, tmp_path: Path
) -> tuple[ArbitrageController, ScannerPipeline, asyncio.Future[RunSummary]]:
    """An engine started on ``cluster`` once it has made its first execution; its pipeline and run."""
    engine = ArbitrageController(manager, sim_cluster=cluster, journal=Journal(tmp_path / "j.sqlite3"))
    await engine.initialize(dry_run=True)
    pipeline = engine.pipeline
    assert pipeline is not None
    running = asyncio.ensure_future(engine.run(duration_s=40))
    await eventually(lambda: engine.result_count >= 1, 10, "a first execution")
    return engine, pipeline, running


def test_a_market_that_stops_trading_or_changes_its_rules_is_halted_then_resumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    manager, cluster = dislocated(tmp_path, CONFIG, ExchangeName.MEXC, "BTC/USDT", 30, -80)
    listing = ["as started"]
    read = ExchangeConnector.read_instruments

    async def edited(connector: ExchangeConnector, symbols: Sequence[str] = ()) -> InstrumentCatalog:
        catalog = await read(connector, symbols)
        if connector.exchange is not ExchangeName.GATEIO or listing[0] == "as started":
            return catalog
        btc = catalog.get("BTC/USDT")
        others = [i for i in catalog if i.symbol != "BTC/USDT"]
        if listing[0] == "untradable":
            skipped = SkippedPair.of(btc.venue_symbol, "BTC", "USDT", None, "trade_status=untradable")
            return InstrumentCatalog(
                catalog.exchange, others, [*catalog.skipped, skipped], fees_from_account=catalog.fees_from_account
            )
        coarser = msgspec.structs.replace(btc, tick_size=btc.tick_size * 10)
        return InstrumentCatalog(
            catalog.exchange, [*others, coarser], catalog.skipped, fees_from_account=catalog.fees_from_account
        )

    monkeypatch.setattr(ExchangeConnector, "read_instruments", edited)

    async def scenario() -> tuple[list[str], list[str]]:
        async with cluster:
            engine, pipeline, running = await trading(manager, cluster, tmp_path)
            listing[0] = "untradable"
            await eventually(lambda: GATE_BTC in pipeline.halted, 5, "Gate.io BTC/USDT halted")
            halted_at = engine.result_count
            await asyncio.sleep(1.5)
            assert engine.result_count <= halted_at + 1  # at most one that had started before the halt
            during = engine.summary()
            listing[0] = "as started"
            await eventually(lambda: GATE_BTC not in pipeline.halted, 5, "Gate.io BTC/USDT resumed")
            resumed_at = engine.result_count
            await eventually(lambda: engine.result_count > resumed_at, 10, "an execution after resuming")
            listing[0] = "coarser tick"
            await eventually(lambda: GATE_BTC in pipeline.halted, 5, "Gate.io BTC/USDT halted for its rules")
            halted_at = engine.result_count
            await asyncio.sleep(2.5)  # two more reads: the rules still differ, so it stays halted
            assert GATE_BTC in pipeline.halted and engine.result_count <= halted_at + 1
            await engine.shutdown("test over")
            summary = await running
            return during.lines(), summary.halted_markets

    with caplog.at_level(logging.WARNING, logger="arb.controller"):
        lines, halted_at_end = asyncio.run(scenario())
    (halted,) = [line for line in lines if line.startswith("  market halted ")]
    assert halted.startswith("  market halted            gateio BTC/USDT: no longer tradable: ")
    assert halted.endswith("trade_status=untradable")
    assert halted_at_end == [
        "gateio BTC/USDT: trading rules changed (tick_size 0.1 -> 1.0); restart the engine to trade it by the new rules"
    ]
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("gateio BTC/USDT: not traded any more: no longer tradable") for m in messages)
    assert any(m.startswith("gateio BTC/USDT: tradable again") for m in messages)
    assert any(m.startswith("gateio BTC/USDT: not traded any more: trading rules changed (tick_size") for m in messages)


HEDGE_CONFIG = """
[engine]
symbols = ["BTC/USDT"]
opportunity_types = ["spot_futures_hedge"]
instrument_refresh_interval_ms = 1000
"""
PERP = "BTC/USDT:USDT"
GATE_PERP = BookKey(ExchangeName.GATEIO_FUTURES, PERP)


@pytest.mark.parametrize(
    ("halt", "warning"),
    [
        ("delisting", "the venue still takes orders that reduce a position there"),
        ("higher fee", "only the fee changed: hedges on it are still closed"),
    ],
)
def test_hedges_on_a_perpetual_halted_for_a_delisting_or_its_fee_are_still_closed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, halt: str, warning: str
) -> None:
    """Gate.io's perpetual trades 80 bps rich from 1 s to 5 s; once hedges are open the venue lists
    it as being delisted (when it takes reduce-only orders only), or raises its taker fee. The engine
    halts it (no new hedge there) but still closes the hedges it holds when the basis reverts."""
    manager, cluster = dislocated(tmp_path, HEDGE_CONFIG, ExchangeName.GATEIO_FUTURES, PERP, 4, 80)
    journal_path = tmp_path / "j.sqlite3"

    async def scenario() -> tuple[list[ExecutionResult], D, int]:
        loop = asyncio.get_running_loop()
        async with cluster:
            started = loop.time()
            engine = ArbitrageController(manager, sim_cluster=cluster, journal=Journal(journal_path))
            await engine.initialize(dry_run=True)
            pipeline, hedges, risk = engine.pipeline, engine.hedges, engine.risk
            assert pipeline is not None and hedges is not None and risk is not None
            running = asyncio.ensure_future(engine.run(duration_s=30))
            await eventually(hedges.has_positions, 5, "a hedge opened on the dislocation")
            # Held while the venue's listing changes: until the engine reads it, openings would be
            # refused there (delisting) or priced with the old fee.
            risk.kill("test: hold entries while the perpetual's listing changes")
            await asyncio.sleep(0.1)
            venue = cluster.venues["gateio"]
            if halt == "delisting":
                venue.context.delisting.add(PERP)
            else:
                for engine_ in venue.exchanges[ExchangeName.GATEIO_FUTURES].engines.values():
                    engine_.set_fees(engine_.instrument.taker_fee * 2, engine_.instrument.maker_fee)
            await eventually(lambda: GATE_PERP in pipeline.halted, 3, "the perpetual halted")
            risk.resume()
            held, open_base = len(engine.results), sum((p.base for p in hedges.positions()), D(0))
            assert open_base > 0 and loop.time() - started < 5, "halted while the basis is still rich"
            await eventually(lambda: not hedges.has_positions(), 8, "the hedges closed after the reversion")
            await engine.shutdown("test over")
            summary = await running
            assert summary.halted_markets and summary.halted_markets[0].startswith("gateio_futures BTC/USDT:USDT")
            contracts = cluster.venues["gateio"].exchanges[ExchangeName.GATEIO_FUTURES].ledger.account(
                cluster.config.api_key
            ).position(PERP).contracts
            return engine.results[held:], open_base, contracts

    with caplog.at_level(logging.WARNING, logger="arb.controller"):
        after, open_base, contracts = asyncio.run(scenario())
    assert warning in caplog.text
    assert after, "the hedges were closed"
    closed = D(0)
    with Journal(journal_path) as journal:
        for result in after:  # nothing opened on the halted perpetual: closes only, reduce-only
            futures_leg = next(leg for leg in result.legs if leg.exchange.is_futures)
            assert futures_leg.side is OrderSide.BUY and result.final_state is ArbitrageState.COMPLETED
            assert journal.intent(futures_leg.exchange, futures_leg.client_order_id).request.reduce_only
            closed += futures_leg.filled_quantity * D("0.0001")
    assert closed == open_base and contracts == 0


def test_a_leg_refused_by_a_market_in_delisting_has_the_rules_read_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The perpetual goes into delisting before its basis dislocates, and the rules are read only
    every minute: the first opening the venue refuses there has them read at once, which halts
    the market before the refusals could trip the consecutive-failures breaker."""
    config = HEDGE_CONFIG.replace("instrument_refresh_interval_ms = 1000", "instrument_refresh_interval_ms = 60000")
    manager, cluster = dislocated(tmp_path, config, ExchangeName.GATEIO_FUTURES, PERP, 3, 80)

    async def scenario() -> tuple[list[ExecutionResult], list[str], int]:
        async with cluster:
            engine = ArbitrageController(manager, sim_cluster=cluster, journal=Journal(tmp_path / "j.sqlite3"))
            await engine.initialize(dry_run=True)
            pipeline = engine.pipeline
            assert pipeline is not None
            cluster.venues["gateio"].context.delisting.add(PERP)
            running = asyncio.ensure_future(engine.run(duration_s=4))
            await eventually(lambda: GATE_PERP in pipeline.halted, 4, "the perpetual halted")
            summary = await running
            contracts = cluster.venues["gateio"].exchanges[ExchangeName.GATEIO_FUTURES].ledger.account(
                cluster.config.api_key
            ).position(PERP).contracts
            return engine.results, summary.breakers_tripped, contracts

    with caplog.at_level(logging.INFO, logger="arb.controller"):
        results, tripped, contracts = asyncio.run(scenario())
    assert "gateio_futures BTC/USDT:USDT refused (order_rejected): reading the trading rules again now" in caplog.text
    assert 1 <= len(results) <= 2 and all(r.final_state is ArbitrageState.FAILED for r in results)
    assert all("CONTRACT_IN_DELISTING" in (r.error or "") for r in results)
    assert tripped == [] and contracts == 0


def test_a_higher_taker_fee_halts_the_market_and_a_lower_one_is_only_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The account's tier changes while the engine runs: Gate.io's spot taker fee goes up, then back,
    and MEXC's goes down. The engine prices every opportunity with the fees it read at start-up:
    the higher fee halts Gate.io's market until the rate is back; the lower one is logged."""
    manager, cluster = dislocated(tmp_path, CONFIG, ExchangeName.MEXC, "BTC/USDT", 30, -80)

    def engines(market: ExchangeName) -> list[MatchingEngine]:
        return list(cluster.venues[market.venue].exchanges[market].engines.values())

    async def scenario() -> tuple[str, D, D, D]:
        async with cluster:
            engine, pipeline, running = await trading(manager, cluster, tmp_path)
            gate = engines(ExchangeName.GATEIO)
            tier = [(e, e.instrument.taker_fee, e.instrument.maker_fee) for e in gate]
            for e, taker, maker in tier:
                e.set_fees(taker + D("0.0005"), maker)
            mexc = next(e for e in engines(ExchangeName.MEXC) if e.symbol == "BTC/USDT")
            mexc_taker = mexc.instrument.taker_fee
            mexc.set_fees(mexc_taker / 2, mexc.instrument.maker_fee)
            await eventually(lambda: GATE_BTC in pipeline.halted, 5, "Gate.io BTC/USDT halted for its fee")
            reason = pipeline.halted[GATE_BTC]
            halted_at = engine.result_count
            await asyncio.sleep(1.5)
            assert engine.result_count <= halted_at + 1
            for e, taker, maker in tier:
                e.set_fees(taker, maker)
            await eventually(lambda: GATE_BTC not in pipeline.halted, 5, "Gate.io BTC/USDT resumed")
            resumed_at = engine.result_count
            await eventually(lambda: engine.result_count > resumed_at, 10, "an execution after resuming")
            await engine.shutdown("test over")
            await running
            return reason, tier[0][1], mexc_taker, mexc.instrument.taker_fee

    with caplog.at_level(logging.WARNING, logger="arb.controller"):
        reason, gate_taker, mexc_taker, mexc_lower = asyncio.run(scenario())
    assert reason == (
        f"trading rules changed (taker_fee {gate_taker} -> {gate_taker + D('0.0005')}); "
        "restart the engine to trade it by the new rules"
    )
    lower = [r.getMessage() for r in caplog.records if "taker fee fell" in r.getMessage()]
    assert lower == [f"mexc BTC/USDT: taker fee fell {mexc_taker} -> {mexc_lower}; the engine prices with {mexc_taker} "
                     "until a restart"]
    assert not any(m.startswith("mexc BTC/USDT: not traded any more") for m in (r.getMessage() for r in caplog.records))
