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
from pathlib import Path

import msgspec
import pytest
from loopback import eventually

from arb.config import ConfigurationManager
from arb.controller import ArbitrageController, dry_run_cluster
from arb.exchanges.base import BookKey
from arb.exchanges.connector import ExchangeConnector
from arb.instruments import InstrumentCatalog, SkippedPair
from arb.journal import Journal
from arb.sim.market import Dislocation
from arb.types import ExchangeName

SECOND = 1_000_000_000
CONFIG = """
[engine]
symbols = ["BTC/USDT"]
instrument_refresh_interval_ms = 1000

[exchanges.gateio]
markets = ["spot"]
"""
GATE_BTC = BookKey(ExchangeName.GATEIO, "BTC/USDT")


def test_a_market_that_stops_trading_or_changes_its_rules_is_halted_then_resumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "arb.toml"
    path.write_text(CONFIG)
    manager = ConfigurationManager(path, environ={})
    manager.load_configuration(dry_run=True)
    cheap = Dislocation(exchange=ExchangeName.MEXC, symbol="BTC/USDT", start_ns=SECOND, duration_ns=30 * SECOND, bps=-80)
    cluster = dry_run_cluster(manager.config, dislocations=(cheap,), random_per_minute=0)
    listing = ["as started"]
    read = ExchangeConnector.read_instruments

    async def edited(connector: ExchangeConnector) -> InstrumentCatalog:
        catalog = await read(connector)
        if connector.exchange is not ExchangeName.GATEIO or listing[0] == "as started":
            return catalog
        btc = catalog.get("BTC/USDT")
        others = [i for i in catalog if i.symbol != "BTC/USDT"]
        if listing[0] == "untradable":
            skipped = SkippedPair.of(btc.venue_symbol, "BTC", "USDT", None, "trade_status=untradable")
            return InstrumentCatalog(catalog.exchange, others, [*catalog.skipped, skipped])
        coarser = msgspec.structs.replace(btc, tick_size=btc.tick_size * 10)
        return InstrumentCatalog(catalog.exchange, [*others, coarser], catalog.skipped)

    monkeypatch.setattr(ExchangeConnector, "read_instruments", edited)

    async def scenario() -> tuple[list[str], list[str]]:
        async with cluster:
            engine = ArbitrageController(manager, sim_cluster=cluster, journal=Journal(tmp_path / "j.sqlite3"))
            await engine.initialize(dry_run=True)
            pipeline = engine.pipeline
            assert pipeline is not None
            running = asyncio.ensure_future(engine.run(duration_s=40))
            await eventually(lambda: engine.result_count >= 1, 10, "a first execution")
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
