"""LatencyHistogram: per-record cost from Python and from C, and percentile queries.

The pure-Python reference (tests/reference/latency.py) is the baseline in each group.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import reference.latency as ref
from arb_core.latency import LatencyHistogram

CALLS = 1_000
PS = [50.0, 90.0, 99.0, 99.9, 99.99, 100.0]


def latencies(n: int, seed: int) -> list[int]:
    """Log-normal-ish ns latencies around 50 us with a long tail, some out of range."""
    rng = random.Random(seed)
    return [int(rng.lognormvariate(10.8, 1.2)) for _ in range(n)]


VALUES = latencies(CALLS, 1)


def record_loop(h: Any) -> Callable[[], None]:
    record = h.record
    values = VALUES

    def run() -> None:
        for v in values:
            record(v)

    return run


def per_call(benchmark: Any, calls: int) -> None:
    benchmark.extra_info["ns_per_call"] = round(benchmark.stats.stats.median / calls * 1e9, 1)


def check_multiple_of_one_pass(h: Any) -> None:
    """After n timed passes every bucket holds n times its count from one pass."""
    single = ref.LatencyHistogram()
    for v in VALUES:
        single.record(v)
    passes, rest = divmod(h.count, CALLS)
    assert passes > 0 and rest == 0
    assert h.buckets() == [(value, n * passes) for value, n in single.buckets()]


@pytest.mark.parametrize(
    "impl", [ref.LatencyHistogram, LatencyHistogram], ids=["reference", "compiled"]
)
def test_record_1000(benchmark: Any, impl: type) -> None:
    """1000 record() calls from Python."""
    benchmark.group = "latency.record x1000"
    h = impl()
    benchmark.pedantic(record_loop(h), rounds=300, iterations=1, warmup_rounds=5)
    per_call(benchmark, CALLS)
    check_multiple_of_one_pass(h)


def test_record_many_1000(benchmark: Any) -> None:
    """1000 values through record_many (its count checked once, then C per value), one call."""
    benchmark.group = "latency.record x1000"
    h = LatencyHistogram()
    values = np.array(VALUES, dtype=np.int64)
    benchmark.pedantic(h.record_many, args=(values,), rounds=2_000, iterations=1, warmup_rounds=5)
    per_call(benchmark, CALLS)
    check_multiple_of_one_pass(h)


@pytest.mark.parametrize(
    "impl", [ref.LatencyHistogram, LatencyHistogram], ids=["reference", "compiled"]
)
def test_percentiles(benchmark: Any, impl: type) -> None:
    """Six percentiles of 100k recorded latencies."""
    benchmark.group = "latency.percentiles x6"
    h = impl()
    for v in latencies(100_000, 2):
        h.record(v)
    result = benchmark.pedantic(h.percentiles, args=(PS,), rounds=300, iterations=1)
    per_call(benchmark, len(PS))
    compiled = LatencyHistogram()
    compiled.record_many(np.array(latencies(100_000, 2), dtype=np.int64))
    assert result == compiled.percentiles(PS)
    assert result == sorted(result) and result[-1] == h.max
