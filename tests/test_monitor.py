"""PerformanceMonitor: stage histograms, counters, statistics and rate-limited slow-cycle warnings."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from arb.monitor import PerformanceMonitor, Stage
from arb.types import ArbitrageState, ExecutionResult


class FakeClock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


def result(state: ArbitrageState, ms: str, profit: str) -> ExecutionResult:
    return ExecutionResult(
        opportunity_id="o", final_state=state, total_execution_time_ms=Decimal(ms), realized_profit=Decimal(profit)
    )


def test_stage_latencies() -> None:
    monitor = PerformanceMonitor(50)
    for value in range(1, 101):
        monitor.record_stage(Stage.DETECT, value * 1_000)
    (detect,) = monitor.stage_latencies([Stage.DETECT])
    assert detect.count == 100 and detect.max_ns == 100_000 and detect.mean_ns == 50_500
    assert 49_000 <= detect.p50_ns <= 51_000 and 98_000 <= detect.p99_ns <= 100_000
    assert [s.stage for s in monitor.stage_latencies()] == list(Stage)
    assert monitor.histogram(Stage.RISK).count == 0


@pytest.mark.parametrize(("duration_ns", "slow"), [(49_999_999, False), (50_000_000, False), (50_000_001, True)])
def test_cycle_over_target_boundary(duration_ns: int, slow: bool, caplog: pytest.LogCaptureFixture) -> None:
    monitor = PerformanceMonitor(50)
    assert monitor.record_cycle(duration_ns, "opp7") is slow
    assert monitor.slow_cycles == int(slow)
    assert ("cycle opp7 took 50.000 ms, over target_execution_time_ms 50" in caplog.text) is slow


def test_slow_cycle_warnings_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    monitor = PerformanceMonitor(10, warn_interval_ns=1_000, clock=clock)
    for _ in range(5):
        monitor.record_cycle(20_000_000)
        clock.now += 300
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and warnings[1].endswith("(3 more slow cycles since the last warning)")
    assert monitor.slow_cycles == 5 and monitor.histogram(Stage.CYCLE).count == 5
    monitor.record_cycle(60_000_000)
    monitor.record_cycle(30_000_000)
    assert monitor.slowest_cycle_ns == 60_000_000  # a later, worse one a warning may not have named


def test_measure_times_a_block() -> None:
    clock = FakeClock()
    monitor = PerformanceMonitor(1, clock=clock)
    with monitor.measure(Stage.PLACE):
        clock.now += 7_000
    with monitor.measure(Stage.CYCLE):
        clock.now += 2_000_000
    assert monitor.histogram(Stage.PLACE).max == 7_000
    assert monitor.slow_cycles == 1


def test_statistics_snapshot() -> None:
    clock = FakeClock()
    monitor = PerformanceMonitor(50, clock=clock)
    monitor.record_opportunity_detected(4)
    monitor.record_execution(result(ArbitrageState.COMPLETED, "12.5", "1.25"))
    monitor.record_execution(result(ArbitrageState.COMPLETED, "20", "0.75"))
    monitor.record_execution(result(ArbitrageState.RECOVERING, "40.1", "-0.5"))
    clock.now = 3_500_000_000
    stats = monitor.get_statistics()
    assert (stats.opportunities_detected, stats.opportunities_executed) == (4, 3)
    assert (stats.executions_succeeded, stats.executions_failed) == (2, 1)
    assert stats.total_realized_profit == Decimal("1.50")
    assert stats.average_execution_time_ms == Decimal("24.200")
    assert stats.success_rate == Decimal(2) / Decimal(3)
    assert stats.uptime_s == Decimal("3.500")
    monitor.reset()
    after = monitor.get_statistics()
    assert (after.opportunities_executed, after.average_execution_time_ms) == (0, 0)


def test_target_must_be_positive() -> None:
    with pytest.raises(ValueError, match="target_execution_time_ms=0"):
        PerformanceMonitor(0)
