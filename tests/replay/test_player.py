"""arb.replay.player: a recorded dry run replays to the same decisions; determinism; damage; cryptofeed files."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from pathlib import Path

import pytest

from arb import ArbitrageController
from arb.config import ConfigurationManager
from arb.controller import dry_run_cluster
from arb.journal import Journal
from arb.replay.player import BacktestResult, BacktestSettings, LatencyModel, backtest
from arb.replay.recorder import Recorder
from arb.replay.report import TradeLog
from arb.sim.cluster import SimConfig
from arb.sim.market import Dislocation
from arb.types import ArbitrageOpportunity, ExchangeName, ExecutionResult

SECOND = 1_000_000_000
# A still market (no walk, no noise) moved only by the dislocation, and MEXC USDT for one
# 100 USDT trade (what is left is under Gate's 3 USDT minimum, and the balance caps the
# scanner): the live run's decisions then do not depend on how long its executions took.
DEPOSITS = {"USDT": D("102"), "BTC": D("10"), "ETH": D("200")}
CONFIG = """
[engine]
symbols = ["BTC/USDT"]
"""


def _opportunity_key(o: ArbitrageOpportunity) -> tuple[object, ...]:
    return (o.symbol, o.opportunity_type, o.buy_exchange, o.sell_exchange, o.buy_price, o.sell_price, o.max_quantity,
            o.total_profit_estimate, o.profit_margin_bps)


def _orders(results: list[ExecutionResult]) -> list[tuple[object, ...]]:
    return [(leg.exchange, leg.side, leg.limit_price, leg.requested_quantity) for r in results for leg in r.legs]


def _manager(tmp_path: Path) -> ConfigurationManager:
    path = tmp_path / "arb.toml"
    path.write_text(CONFIG)
    manager = ConfigurationManager(path, environ={})
    manager.load_configuration(dry_run=True)
    return manager


@pytest.fixture(scope="module")
def recorded_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ConfigurationManager, list[ArbitrageOpportunity], list[ExecutionResult]]:
    """A dry run on the simulator with a scheduled dislocation, its market data recorded."""
    tmp_path = tmp_path_factory.mktemp("recorded")
    manager = _manager(tmp_path)
    dislocation = Dislocation(
        exchange=ExchangeName.MEXC, symbol="BTC/USDT", start_ns=SECOND, duration_ns=SECOND // 2, bps=-80
    )
    sim = SimConfig(symbols=manager.config.symbols, deposits=DEPOSITS, noise_ticks=0, volatility_ppm=0)
    cluster = dry_run_cluster(manager.config, dislocations=(dislocation,), random_per_minute=0, sim_config=sim)
    path = tmp_path / "run.arbrec"
    recorder = Recorder(path)
    log = TradeLog()

    async def scenario() -> tuple[list[ArbitrageOpportunity], list[ExecutionResult]]:
        async with cluster:
            controller = ArbitrageController(
                manager, sim_cluster=cluster, journal=Journal(tmp_path / "j.sqlite3"), tap=recorder
            )
            await controller.initialize(dry_run=True)
            log.attach(controller)
            await controller.run(duration_s=2.0)
            by_id = {o.opportunity_id: o for o in log.opportunities}
            return [by_id[r.opportunity_id] for r in controller.results], controller.results

    try:
        executed, results = asyncio.run(scenario())
    finally:
        recorder.close()
    return path, manager, executed, results


def test_a_recorded_dry_run_replays_to_the_same_opportunities_and_orders(recorded_run) -> None:
    path, manager, live_opportunities, live_results = recorded_run
    assert live_results, "the dislocation must make the live run trade"
    result = backtest([path], manager, BacktestSettings(latency=LatencyModel(), deposits=DEPOSITS))
    assert result.damage is None and result.summary is not None
    assert [_opportunity_key(o) for o in result.executed_opportunities] == [
        _opportunity_key(o) for o in live_opportunities
    ]
    assert _orders(result.results) == _orders(live_results)
    assert [(o.market, o.side, o.price, o.quantity) for o in result.orders] == [
        (leg[0], leg[1].value, leg[2], leg[3]) for leg in _orders(live_results)
    ]


def test_the_same_recording_and_config_give_the_same_backtest(recorded_run) -> None:
    path, manager, _, _ = recorded_run
    settings = BacktestSettings(latency=LatencyModel.fixed_ms(D("0.5")), deposits=DEPOSITS)
    first, second = backtest([path], manager, settings), backtest([path], manager, settings)
    assert first.records == second.records > 0
    assert first.orders == second.orders
    assert first.results == second.results
    assert first.report is not None and second.report is not None
    assert first.report.summary() == second.report.summary()


def test_a_truncated_recording_replays_up_to_the_cut_and_says_where(recorded_run, tmp_path: Path) -> None:
    path, manager, _, _ = recorded_run
    whole = backtest([path], manager)
    data = path.read_bytes()
    cut = tmp_path / "cut.arbrec"
    cut.write_bytes(data[: len(data) * 2 // 3])
    result = backtest([cut], manager)
    assert result.damage is not None and result.damage.path == str(cut)
    assert 0 < result.records == result.damage.records < whole.records
    assert result.damage.offset <= len(data) * 2 // 3
    assert any("damaged" in line for line in result.lines())


def test_a_corrupted_recording_replays_up_to_the_bad_block(recorded_run, tmp_path: Path) -> None:
    path, manager, _, _ = recorded_run
    whole = backtest([path], manager)
    data = bytearray(path.read_bytes())
    position = len(data) // 2
    data[position] ^= 0xFF
    bad = tmp_path / "bad.arbrec"
    bad.write_bytes(bytes(data))
    result = backtest([bad], manager)
    assert result.damage is not None and "CRC" in result.damage.reason
    assert result.records < whole.records and result.damage.offset <= position


def test_cryptofeed_gate_recordings_replay_their_books(shared_data: Path, tmp_path: Path) -> None:
    manager = ConfigurationManager(None, environ={})
    manager.load_configuration(dry_run=True)
    folder = shared_data / "cryptofeed"
    result = backtest([folder / "GATEIO.0", folder / "GATEIO.http.0.0", folder / "GATEIO.ws.1.0"], manager)
    assert result.damage is None and result.records > 200
    assert result.markets == [ExchangeName.GATEIO] and result.symbols == []
    assert len(result.books) == 10 and all(stats.snapshots >= 1 for stats in result.books.values())
    assert sum(stats.applied for stats in result.books.values()) > 100
