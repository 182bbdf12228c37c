"""Performance monitor: per-stage latency histograms, outcome counters, slow-cycle warnings.

A cycle is one opportunity from detection to its last fill, in stages: detect (book
update to candidate), risk (validation), place (both orders sent and acked), fill (acks to
the last fill); transition times each state-machine move of the executor. Each stage and the whole cycle go into an ``arb_core.latency`` histogram;
recording is one compiled call, cheap enough for every cycle.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from enum import Enum

import msgspec

from arb_core.freshness import monotonic_ns
from arb_core.latency import LatencyHistogram

from .types import ArbitrageConfig, ArbitrageState, EngineStatistics, ExecutionResult

log = logging.getLogger(__name__)

MILLI = Decimal("0.001")


class Stage(str, Enum):
    """A measured part of a cycle."""

    DETECT = "detect"
    RISK = "risk"
    PLACE = "place"
    FILL = "fill"
    TRANSITION = "transition"
    CYCLE = "cycle"


class StageLatency(msgspec.Struct, frozen=True, kw_only=True):
    """Latency summary of one stage, in ns."""

    stage: Stage
    count: int
    p50_ns: int
    p99_ns: int
    max_ns: int
    mean_ns: int


class PerformanceMonitor:
    """Latency histograms per stage, engine counters, and a warning when a cycle is over target.

    Warnings are rate-limited to one per ``warn_interval_ns``; the next one says how many
    slow cycles were not logged in between.
    """

    def __init__(
        self,
        target_execution_time_ms: int,
        *,
        warn_interval_ns: int = 10_000_000_000,
        clock: Callable[[], int] = monotonic_ns,
    ) -> None:
        if target_execution_time_ms < 1:
            raise ValueError(f"target_execution_time_ms={target_execution_time_ms}: must be at least 1")
        if warn_interval_ns < 0:
            raise ValueError(f"warn_interval_ns={warn_interval_ns}: must be 0 or more")
        self.target_execution_time_ms = target_execution_time_ms
        self._target_ns = target_execution_time_ms * 1_000_000
        self._warn_interval_ns = warn_interval_ns
        self._clock = clock
        self._started_ns = clock()
        self._histograms = {stage: LatencyHistogram() for stage in Stage}
        self._last_warning_ns: int | None = None
        self._suppressed = 0
        self.slow_cycles = 0
        self.slowest_cycle_ns = 0  # of the slow cycles (0: none)
        self._statistics = EngineStatistics()
        self._execution_time_ms = Decimal(0)
        self._outcomes: dict[ArbitrageState, int] = {}

    @classmethod
    def from_config(cls, config: ArbitrageConfig) -> PerformanceMonitor:
        """A monitor with the configured ``target_execution_time_ms``."""
        return cls(config.target_execution_time_ms)

    def record_stage(self, stage: Stage, duration_ns: int) -> None:
        """Record one stage's duration (not the cycle: use ``record_cycle``, which also checks the target)."""
        self._histograms[stage].record(duration_ns)

    def record_cycle(self, duration_ns: int, opportunity_id: str = "") -> bool:
        """Record a whole cycle; True (and a rate-limited warning) when it exceeds the target."""
        self._histograms[Stage.CYCLE].record(duration_ns)
        if duration_ns <= self._target_ns:
            return False
        self.slow_cycles += 1
        self.slowest_cycle_ns = max(self.slowest_cycle_ns, duration_ns)
        now = self._clock()
        if self._last_warning_ns is not None and now - self._last_warning_ns < self._warn_interval_ns:
            self._suppressed += 1
            return True
        suppressed = f" ({self._suppressed} more slow cycles since the last warning)" if self._suppressed else ""
        log.warning(
            "cycle %s took %.3f ms, over target_execution_time_ms %d%s",
            opportunity_id or "-", duration_ns / 1e6, self.target_execution_time_ms, suppressed,
        )
        self._last_warning_ns = now
        self._suppressed = 0
        return True

    @contextmanager
    def measure(self, stage: Stage) -> Iterator[None]:
        """Time the body as ``stage`` (a cycle through ``record_cycle``); for code off the hot path."""
        start = self._clock()
        try:
            yield
        finally:
            elapsed = self._clock() - start
            if stage is Stage.CYCLE:
                self.record_cycle(elapsed)
            else:
                self.record_stage(stage, elapsed)

    def record_opportunity_detected(self, count: int = 1) -> None:
        """Count detected opportunities."""
        self._statistics.opportunities_detected += count

    def record_execution(self, result: ExecutionResult) -> None:
        """Count an execution by outcome, with its realized profit and execution time."""
        stats = self._statistics
        stats.opportunities_executed += 1
        if result.final_state is ArbitrageState.COMPLETED:
            stats.executions_succeeded += 1
        else:
            stats.executions_failed += 1
        stats.total_realized_profit += result.realized_profit
        self._execution_time_ms += result.total_execution_time_ms
        self._outcomes[result.final_state] = self._outcomes.get(result.final_state, 0) + 1

    def execution_outcomes(self) -> dict[ArbitrageState, int]:
        """Executions by final state: COMPLETED, FAILED, or RECOVERING (a residual awaiting an operator)."""
        return dict(self._outcomes)

    def histogram(self, stage: Stage) -> LatencyHistogram:
        """The live histogram of ``stage``."""
        return self._histograms[stage]

    def stage_latencies(self, stages: Iterable[Stage] = tuple(Stage)) -> list[StageLatency]:
        """p50/p99/max/mean per stage, for display."""
        out = []
        for stage in stages:
            h = self._histograms[stage]
            p50, p99 = h.percentiles((50.0, 99.0))
            out.append(
                StageLatency(stage=stage, count=h.count, p50_ns=p50, p99_ns=p99, max_ns=h.max, mean_ns=round(h.mean))
            )
        return out

    def get_statistics(self) -> EngineStatistics:
        """A snapshot of the engine counters; ``success_rate`` is a property of the result."""
        stats = self._statistics
        executed = stats.opportunities_executed
        average = (self._execution_time_ms / executed).quantize(MILLI) if executed else Decimal(0)
        return EngineStatistics(
            opportunities_detected=stats.opportunities_detected,
            opportunities_executed=executed,
            executions_succeeded=stats.executions_succeeded,
            executions_failed=stats.executions_failed,
            total_realized_profit=stats.total_realized_profit,
            average_execution_time_ms=average,
            uptime_s=(Decimal(self._clock() - self._started_ns) / 1_000_000_000).quantize(MILLI),
        )

    def reset(self) -> None:
        """Forget every latency and counter; uptime keeps counting from construction."""
        for h in self._histograms.values():
            h.reset()
        self._statistics = EngineStatistics()
        self._execution_time_ms = Decimal(0)
        self._outcomes.clear()
        self.slow_cycles = 0
        self.slowest_cycle_ns = 0
        self._suppressed = 0
        self._last_warning_ns = None
