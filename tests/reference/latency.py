"""Pure-Python reference of arb_core.latency: the same bucket math, written plainly."""

from __future__ import annotations

import math
from collections.abc import Iterable

DEFAULT_LOWEST_NS = 100
DEFAULT_HIGHEST_NS = 60_000_000_000
DEFAULT_PRECISION_BITS = 7


def bucket_index(value_ns: int, precision_bits: int) -> int:
    """Exact buckets below 2**(bits+1); then 2**bits linear sub-buckets per power of two."""
    shift = max(0, value_ns.bit_length() - (precision_bits + 1))
    return (shift << precision_bits) + (value_ns >> shift)


def bucket_highest(index: int, precision_bits: int) -> int:
    """Highest value mapping to ``index``."""
    shift = max(0, (index >> precision_bits) - 1)
    mantissa = index - (shift << precision_bits)
    return ((mantissa + 1) << shift) - 1


INT64_MAX = 2**63 - 1


class LatencyHistogram:
    """Same contract as arb_core.latency.LatencyHistogram, counts kept in a dict."""

    def __init__(
        self,
        lowest_ns: int = DEFAULT_LOWEST_NS,
        highest_ns: int = DEFAULT_HIGHEST_NS,
        precision_bits: int = DEFAULT_PRECISION_BITS,
    ) -> None:
        self.lowest_ns = lowest_ns
        self.highest_ns = highest_ns
        self.precision_bits = precision_bits
        self.reset()

    def reset(self) -> None:
        self.counts: dict[int, int] = {}
        self.count = 0
        self.overflow_count = 0
        self.min = 0
        self.max = 0
        self.total_ns = 0

    def record(self, value_ns: int) -> None:
        if value_ns < 0:
            raise ValueError(f"value_ns must be >= 0, got {value_ns}")
        if self.count == INT64_MAX:
            raise OverflowError(f"count passes int64: {self.count} + 1")
        if value_ns > self.highest_ns:
            self.overflow_count += 1
        v = min(max(value_ns, self.lowest_ns), self.highest_ns)
        i = bucket_index(v, self.precision_bits)
        self.counts[i] = self.counts.get(i, 0) + 1
        self.min = v if self.count == 0 else min(self.min, v)
        self.max = max(self.max, v)
        self.count += 1
        self.total_ns = min(self.total_ns + v, INT64_MAX)  # saturates like the compiled sum

    @property
    def mean(self) -> float:
        # Both operands as doubles first, as the compiled module does.
        return float(self.total_ns) / float(self.count) if self.count else 0.0

    def _value(self, index: int) -> int:
        return min(bucket_highest(index, self.precision_bits), self.highest_ns)

    def percentile(self, p: float) -> int:
        if not 0.0 <= p <= 100.0:
            raise ValueError(f"p must be in [0, 100], got {p}")
        if self.count == 0:
            return 0
        rank = min(max(math.ceil(p * float(self.count) / 100.0), 1), self.count)
        cumulative = 0
        for i in sorted(self.counts):
            cumulative += self.counts[i]
            if cumulative >= rank:
                return min(self._value(i), self.max)
        raise AssertionError("unreachable: counts sum to count")

    def percentiles(self, ps: Iterable[float]) -> list[int]:
        values = [float(p) for p in ps]
        for p in values:
            if not 0.0 <= p <= 100.0:
                raise ValueError(f"p must be in [0, 100], got {p}")
        return [self.percentile(p) for p in values]

    def merge(self, other: LatencyHistogram) -> None:
        if (other.lowest_ns, other.highest_ns, other.precision_bits) != (
            self.lowest_ns, self.highest_ns, self.precision_bits,
        ):
            raise ValueError("cannot merge histograms with different configurations")
        if other.count == 0:
            return
        if self.count + other.count > INT64_MAX:
            raise OverflowError(f"merged count passes int64: {self.count} + {other.count}")
        for i, n in other.counts.items():
            self.counts[i] = self.counts.get(i, 0) + n
        self.min = other.min if self.count == 0 else min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.count += other.count
        self.overflow_count += other.overflow_count
        self.total_ns = min(self.total_ns + other.total_ns, INT64_MAX)

    def buckets(self) -> list[tuple[int, int]]:
        return [(self._value(i), self.counts[i]) for i in sorted(self.counts)]

    def to_dict(self) -> dict[str, object]:
        return {
            "lowest_ns": self.lowest_ns,
            "highest_ns": self.highest_ns,
            "precision_bits": self.precision_bits,
            "count": self.count,
            "overflow_count": self.overflow_count,
            "min": self.min,
            "max": self.max,
            "mean": self.mean,
            "buckets": self.buckets(),
        }


def exact_percentile(values: list[int], p: float, lowest_ns: int, highest_ns: int) -> int:
    """The rank-based percentile of the clamped values themselves, for precision checks."""
    ordered = sorted(min(max(v, lowest_ns), highest_ns) for v in values)
    rank = min(max(math.ceil(p * float(len(ordered)) / 100.0), 1), len(ordered))
    return ordered[rank - 1]
