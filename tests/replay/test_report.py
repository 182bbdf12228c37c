"""arb.replay.report: a report from a short backtest (HTML, non-empty PNG charts, JSON summary); the CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from decimal import Decimal as D
from pathlib import Path
from types import SimpleNamespace

import msgspec
import pytest

from arb import ArbitrageController
from arb.config import ConfigurationManager
from arb.controller import RunSummary, dry_run_cluster
from arb.journal import Journal
from arb.replay.player import BacktestSettings, backtest
from arb.replay.recorder import Recorder
from arb.monitor import PerformanceMonitor
from arb.replay.report import (
    CHARTS, OpportunityPoint, TimedExecution, TradeLog, charts_available, report_data, write_report,
)
from arb.sim.cluster import SimConfig
from arb.sim.market import Dislocation
from arb.types import ArbitrageState, EngineStatistics, ExchangeName, ExecutionLeg, ExecutionResult, OrderSide
from test_pipeline import GATE, GATE_BOOK, MEXC, MEXC_BOOK, book, pipeline, snapshot

SECOND = 1_000_000_000
DEPOSITS = {"USDT": D("1000"), "BTC": D("1"), "ETH": D("10")}


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ConfigurationManager]:
    """A 2 s dry run on the simulator with a dislocation, recorded."""
    tmp_path = tmp_path_factory.mktemp("report")
    config = tmp_path / "arb.toml"
    config.write_text('[engine]\nsymbols = ["BTC/USDT"]\n')
    manager = ConfigurationManager(config, environ={})
    manager.load_configuration(dry_run=True)
    dislocation = Dislocation(exchange=ExchangeName.MEXC, symbol="BTC/USDT", start_ns=SECOND,
                              duration_ns=SECOND // 2, bps=-80)
    sim = SimConfig(symbols=manager.config.symbols, deposits=DEPOSITS)
    cluster = dry_run_cluster(manager.config, dislocations=(dislocation,), random_per_minute=0, sim_config=sim)
    path = tmp_path / "short.arbrec"
    recorder = Recorder(path)

    async def scenario() -> None:
        async with cluster:
            controller = ArbitrageController(manager, sim_cluster=cluster, journal=Journal(tmp_path / "j.sqlite3"),
                                             tap=recorder)
            await controller.initialize(dry_run=True)
            await controller.run(duration_s=2.0)

    try:
        asyncio.run(scenario())
    finally:
        recorder.close()
    return path, manager


def test_a_short_backtest_writes_the_html_report_the_charts_and_the_json_summary(recording, tmp_path: Path) -> None:
    path, manager = recording
    result = backtest([path], manager, BacktestSettings(deposits=DEPOSITS))
    assert result.report is not None and result.results
    written = write_report(result.report, tmp_path / "out")
    page = (tmp_path / "out" / "report.html").read_text()
    for title in ("Realized PnL over time", "Opportunities by size and margin", "Spread distribution",
                  "Fill ratio", "Latency histograms per stage", "Circuit breaker trips"):
        assert title in page
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["opportunities_executed"] == len(result.results) >= 1
    assert D(summary["realized_pnl"]) == sum((r.realized_profit for r in result.results), D(0))
    assert result.report.spreads and result.report.opportunities
    # The chart shows every scanner hit; "detected" counts those the engine took up.
    assert summary["scanner_hits"] == len(result.report.opportunities) >= summary["opportunities_detected"]
    assert summary["opportunities_detected"] == result.summary.statistics.opportunities_detected
    assert result.report.skipped["order_budget"] > 0 and "passed up" in page
    if not charts_available():
        assert "Charts need matplotlib" in page
        pytest.skip("matplotlib (the report extra) is not installed: PNG charts not written")
    for name in CHARTS:
        png = tmp_path / "out" / f"{name}.png"
        assert png in written and png.stat().st_size > 1000
        assert png.read_bytes().startswith(b"\x89PNG") and f"{name}.png" in page


def test_backtest_cli_prints_a_json_summary_and_writes_the_report(recording, tmp_path: Path) -> None:
    path, _ = recording
    out = tmp_path / "cli"
    result = subprocess.run(
        [sys.executable, "-m", "arb", "backtest", str(path), "--latency-ms", "1", "--report", str(out), "--json"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["records"] > 100 and summary["damage"] is None and summary["damages"] == [] and summary["symbols"] == ["BTC/USDT"]
    assert {"opportunities_detected", "realized_pnl", "fill_ratio", "latency_ns"} <= set(summary)
    assert (out / "report.html").is_file() and (out / "summary.json").is_file()


def test_backtest_cli_applies_the_order_budgets_unless_told_not_to(recording, tmp_path: Path) -> None:
    path, _ = recording
    summaries = {}
    for flags in ((), ("--no-order-budgets",)):
        result = subprocess.run([sys.executable, "-m", "arb", "backtest", str(path), "--json", *flags],
                                capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        summaries[flags] = json.loads(result.stdout)
    budgeted, unbounded = summaries[()], summaries[("--no-order-budgets",)]
    assert budgeted["skipped"]["order_budget"] > 0 and "order_budget" not in unbounded["skipped"]
    assert unbounded["opportunities_executed"] > budgeted["opportunities_executed"] > 0


def test_backtest_cli_exits_1_on_a_damaged_recording_and_names_the_place(recording, tmp_path: Path) -> None:
    path, _ = recording
    cut = tmp_path / "cut.arbrec"
    cut.write_bytes(path.read_bytes()[:-40])
    result = subprocess.run([sys.executable, "-m", "arb", "backtest", str(cut)], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert result.returncode == 1
    assert "RECORDING DAMAGED" in result.stdout and str(cut) in result.stdout


def test_the_report_says_how_much_of_the_realized_pnl_open_hedges_hold(tmp_path: Path) -> None:
    summary = RunSummary(
        mode="backtest", duration_s=D(1), statistics=EngineStatistics(total_realized_profit=D("4.5")), fills=0,
        rejected_by_risk={}, latency_ms={}, breakers_tripped=[], resyncs={}, skew_alerts=[], shutdown=[],
        open_hedges=2, held_hedge_basis=D("1.5"),
    )
    data = report_data("t", summary, TradeLog(), PerformanceMonitor(100), start_ns=0)
    write_report(data, tmp_path)
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert (saved["realized_pnl"], saved["open_hedges"], saved["held_hedge_basis"]) == ("4.5", 2, "1.5")
    page = (tmp_path / "report.html").read_text()
    assert "of it in open hedges" in page and "1.5 (2 open)" in page


def test_a_zero_held_hedge_basis_and_a_tiny_pnl_read_without_an_exponent(tmp_path: Path) -> None:
    """Hedges opened and closed at eight decimals leave a basis of ``0E-8``, and a PnL of a few
    units of the eighth decimal reads ``1.2E-7``: the summary and the page showed the exponent."""
    summary = RunSummary(
        mode="backtest", duration_s=D(1), statistics=EngineStatistics(total_realized_profit=D("1.2E-7")), fills=0,
        rejected_by_risk={}, latency_ms={}, breakers_tripped=[], resyncs={}, skew_alerts=[], shutdown=[],
        open_hedges=0, held_hedge_basis=D("1.25000000") - D("1.25000000"),
    )
    data = report_data("t", summary, TradeLog(), PerformanceMonitor(100), start_ns=0)
    write_report(data, tmp_path)
    written = json.loads((tmp_path / "summary.json").read_text())
    assert (written["held_hedge_basis"], written["realized_pnl"]) == ("0", "0.00000012")
    page = (tmp_path / "report.html").read_text()
    assert "<td>0.00000012</td><td>0 (0 open)</td>" in page
    assert str(data.held_hedge_basis) == "0E-8"  # the value itself is kept as it was


def test_the_report_counts_opportunities_passed_up_for_a_halted_market(tmp_path: Path) -> None:
    """The run summary counted them, the report's ``skipped`` left them out."""
    summary = RunSummary(
        mode="backtest", duration_s=D(1), statistics=EngineStatistics(), fills=0, rejected_by_risk={},
        latency_ms={}, breakers_tripped=[], resyncs={}, skew_alerts=[], shutdown=[],
        skipped_as_outdated=1, skipped_for_halted_market=3,
    )
    write_report(report_data("t", summary, TradeLog(), PerformanceMonitor(100), start_ns=0), tmp_path)
    assert json.loads((tmp_path / "summary.json").read_text())["skipped"] == {"outdated": 1, "market_halted": 3}
    assert "<td>market_halted</td><td>3</td>" in (tmp_path / "report.html").read_text()


def test_a_report_replaces_the_one_in_its_directory_charts_included(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Charts of an earlier report (drawn where matplotlib was available) stayed beside a later
    report written without charts, showing another run's PnL; and nothing else is touched."""
    for name in CHARTS:
        (tmp_path / f"{name}.png").write_bytes(b"an earlier run's chart")
    (tmp_path / "notes.txt").write_text("mine")
    monkeypatch.setattr("arb.replay.report.charts_available", lambda: False)
    summary = RunSummary(
        mode="backtest", duration_s=D(1), statistics=EngineStatistics(total_realized_profit=D("4.5")), fills=0,
        rejected_by_risk={}, latency_ms={}, breakers_tripped=[], resyncs={}, skew_alerts=[], shutdown=[],
    )
    written = write_report(report_data("t", summary, TradeLog(), PerformanceMonitor(100), start_ns=0), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "report.html", "summary.json"]
    assert sorted(p.name for p in written) == ["report.html", "summary.json"]
    assert json.loads((tmp_path / "summary.json").read_text())["realized_pnl"] == "4.5"


def test_spreads_are_counted_per_value_so_a_long_run_keeps_a_bounded_log(tmp_path: Path) -> None:
    """1,000 samples of the same two books add counts, not entries; the report's table gives the
    sample count, extremes and median of what the books showed."""
    gate_book = book("gate", GATE_BOOK, [("60000", "1")], [("60001", "1")])
    mexc_book = book("mexc", MEXC_BOOK, [("60003", "1")], [("60004", "1")])
    scans, _ = pipeline((GATE, gate_book, GATE_BOOK), (MEXC, mexc_book, MEXC_BOOK))
    log = TradeLog()
    for _ in range(1_000):
        log.sample_spreads(scans)
    # Buy on Gate.io at 60001, sell on MEXC at 60003: +2 / 60001 = 0.33 bps; the reverse -4 / 60004.
    assert log.spreads == {
        "BTC/USDT gateio->mexc": {D("0.33"): 1_000}, "BTC/USDT mexc->gateio": {D("-0.67"): 1_000}
    }
    mexc_book.apply_snapshot(snapshot(MEXC_BOOK, [("60002", "1")], [("60004", "1")]), 2)
    for _ in range(3):
        log.sample_spreads(scans)
    summary = RunSummary(
        mode="backtest", duration_s=D(1), statistics=EngineStatistics(), fills=0, rejected_by_risk={}, latency_ms={},
        breakers_tripped=[], resyncs={}, skew_alerts=[], shutdown=[],
    )
    data = report_data("t", summary, log, PerformanceMonitor(100), start_ns=0)
    assert data.spreads["BTC/USDT gateio->mexc"] == {D("0.17"): 3, D("0.33"): 1_000}
    write_report(data, tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert "<td>BTC/USDT gateio-&gt;mexc</td><td>1003</td><td>0.17</td><td>0.33</td><td>0.33</td>" in page


def test_a_run_keeps_a_bounded_window_of_the_newest_scanner_hits_and_counts_them_all() -> None:
    """A standing opportunity is found again on every book update: a long run with --report keeps
    about the newest ``opportunities_kept`` and counts every hit."""
    pipeline = SimpleNamespace(on_opportunity=None)
    log = TradeLog(opportunities_kept=3)
    log.attach(SimpleNamespace(pipeline=pipeline, risk=None))  # type: ignore[arg-type]
    for n in range(10):
        pipeline.on_opportunity(n, None)
    assert log.hits == 10 and 3 <= len(log.opportunities) < 6 and log.opportunities[-3:] == [7, 8, 9]
    everything = TradeLog()
    everything.attach(SimpleNamespace(pipeline=pipeline, risk=None))  # type: ignore[arg-type]
    for n in range(10):
        pipeline.on_opportunity(n, None)
    assert everything.opportunities == list(range(10)) and everything.hits == 10
    with pytest.raises(ValueError, match="opportunities_kept=0"):
        TradeLog(opportunities_kept=0)


def test_a_run_logs_every_breaker_trip_also_those_reset_before_it_ends() -> None:
    """``run --report`` read the trips from the breakers still tripped at the end: a kill switch
    engaged and released during the run, or a breaker's earlier trips, were not in the report."""
    from arb.risk import Breaker, RiskManager
    from test_risk import LIMITS

    alerts: list[object] = []
    risk = RiskManager(LIMITS, on_alert=alerts.append)
    risk.kill("before the report")  # in force when the log is attached
    log = TradeLog()
    log.attach(SimpleNamespace(pipeline=SimpleNamespace(on_opportunity=None), risk=risk))  # type: ignore[arg-type]
    risk.reset_circuit_breaker(Breaker.KILL_SWITCH)
    risk.kill("the operator")
    risk.reset_circuit_breaker(Breaker.KILL_SWITCH)
    risk.kill("the operator again")
    assert [t.reason for t in log.trips] == ["before the report", "the operator", "the operator again"]
    assert len(alerts) == 3  # the alert callback the engine set still hears every trip


def test_backtest_cli_says_no_report_was_written_when_the_engine_did_not_run(shared_data: Path, tmp_path: Path) -> None:
    """A recording of one venue has nothing the engine can pair: ``--report`` left the directory
    empty, said nothing and exited 0."""
    folder = shared_data / "cryptofeed"
    out = tmp_path / "report"
    result = subprocess.run(
        [sys.executable, "-m", "arb", "backtest", str(folder / "GATEIO.http.0.0"), str(folder / "GATEIO.ws.1.0"),
         "--report", str(out)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr
    assert f"arb backtest: no report written to {out}: the engine traded no symbol of this recording" in result.stderr
    assert "traded symbols none" in result.stdout and not any(out.iterdir())
    assert "no symbol is recorded on two markets the scanner can pair" in result.stdout  # the note saying why


def test_a_backtest_in_which_the_engine_trades_no_symbol_fails_without_a_report_too(shared_data: Path, tmp_path: Path) -> None:
    """Without ``--report`` such a backtest exited 0, as if the recording had been traded."""
    folder = shared_data / "cryptofeed"
    result = subprocess.run(
        [sys.executable, "-m", "arb", "backtest", str(folder / "GATEIO.http.0.0"), str(folder / "GATEIO.ws.1.0")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr
    assert "arb backtest: the engine traded no symbol of this recording (see the notes)" in result.stderr
    assert "traded symbols none" in result.stdout


def test_backtest_cli_takes_the_account_s_deposits_and_names_an_asset_it_lacks(recording, tmp_path: Path) -> None:
    """The account held only the default USDT, BTC and ETH, which no option changed: a recording of
    another pair traded nothing, with no word of why."""
    path, _ = recording

    def backtest_cli(*flags: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "arb", "backtest", str(path), *flags],
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)

    without = backtest_cli("--deposit", "btc=0", "--deposit", "SOL=250")
    assert without.returncode == 0, without.stderr
    assert "note: the account holds no BTC: no sell of it on spot finds inventory" in without.stdout
    funded = backtest_cli("--deposit", "BTC=0.5")
    assert funded.returncode == 0 and "the account holds no" not in funded.stdout
    unpaid = backtest_cli("--deposit", "USDT=0")  # traded nothing, and said nothing of why
    assert unpaid.returncode == 0, unpaid.stderr
    assert "note: the account holds no USDT: no buy finds it to pay with, nor a futures leg its margin" in unpaid.stdout
    for bad, expected in (("SOL", "expected ASSET=AMOUNT"), ("SOL=abc", "SOL: amount 'abc' is not a number"),
                          ("SOL=-1", "must be 0 or more and finite")):
        refused = backtest_cli("--deposit", bad)
        assert refused.returncode == 2 and expected in refused.stderr


def test_the_fill_ratio_of_a_market_weighs_its_orders_by_quote_value(tmp_path: Path) -> None:
    """Quantities of different symbols were added up: one missed 1 BTC order beside nine filled
    1000 DOGE orders read 9000 / 9001 filled. Valued at their limit prices (a futures order's
    contracts times its contract size), 900 of 60,900 USDT filled."""

    def execution(
        at: int, symbol: str, requested: str, filled: str, price: str, contract_size: str = "1"
    ) -> TimedExecution:
        leg = ExecutionLeg(
            exchange=ExchangeName.MEXC, symbol=symbol, side=OrderSide.BUY, client_order_id=f"c{at}",
            requested_quantity=D(requested), limit_price=D(price), filled_quantity=D(filled),
            contract_size=D(contract_size),
        )
        return TimedExecution(time_ns=at, result=ExecutionResult(
            opportunity_id=f"o{at}", final_state=ArbitrageState.COMPLETED if filled != "0" else ArbitrageState.FAILED,
            total_execution_time_ms=D(1), realized_profit=D(0), legs=(leg,),
        ))

    log = TradeLog()
    log.executions.append(execution(0, "BTC/USDT", "1", "0", "60000"))
    log.executions += [execution(1 + i, "DOGE/USDT", "1000", "1000", "0.1") for i in range(9)]
    summary = RunSummary(
        mode="backtest", duration_s=D(1), statistics=EngineStatistics(), fills=9, rejected_by_risk={}, latency_ms={},
        breakers_tripped=[], resyncs={}, skew_alerts=[], shutdown=[],
    )
    data = report_data("t", summary, log, PerformanceMonitor(100), start_ns=0)
    (mexc,) = data.fill_ratios
    assert (mexc.orders, mexc.requested, mexc.filled, mexc.ratio) == (10, D("60900.0"), D("900.0"), D("0.0147"))
    write_report(data, tmp_path)
    assert json.loads((tmp_path / "summary.json").read_text())["fill_ratio"] == {"mexc": "0.0147"}
    # Contracts count at their contract size; all but a sliver filled is not rounded up to 1.
    log.executions[:] = [execution(0, "BTC/USDT:USDT", "3", "3", "60000", "0.0001"),
                         execution(1, "ETH/USDT:USDT", "100000", "99999", "3000", "0.01")]
    (mexc,) = report_data("t", summary, log, PerformanceMonitor(100), start_ns=0).fill_ratios
    assert (mexc.requested, mexc.filled, mexc.ratio) == (D("3000018"), D("2999988"), D("0.9999"))


@pytest.mark.parametrize(("count", "said"), [(200, False), (201, True)])
def test_the_page_says_when_it_lists_only_the_first_opportunities(tmp_path: Path, count: int, said: bool) -> None:
    summary = RunSummary(
        mode="backtest", duration_s=D(1), statistics=EngineStatistics(), fills=0, rejected_by_risk={},
        latency_ms={}, breakers_tripped=[], resyncs={}, skew_alerts=[], shutdown=[],
    )
    point = OpportunityPoint(symbol="BTC/USDT", buy="mexc", sell="gateio", quantity=D("0.001"), notional=D(60),
                             margin_bps=D(12), executed=False)
    data = report_data("t", summary, TradeLog(), PerformanceMonitor(100), start_ns=0)
    write_report(msgspec.structs.replace(data, opportunities=[point] * count), tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert page.count("<td>BTC/USDT</td>") == 200
    assert (f"The first 200 of {count} opportunities are listed" in page) is said
