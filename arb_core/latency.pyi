"""Typed Python API of arb_core.latency (compiled)."""

from collections.abc import Iterable
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from typing_extensions import Buffer

DEFAULT_LOWEST_NS: Final[int]  # 100
DEFAULT_HIGHEST_NS: Final[int]  # 60_000_000_000
DEFAULT_PRECISION_BITS: Final[int]  # 7: 128 sub-buckets per power of two, <= 0.78 %

class LatencyHistogram:
    """Counts of ns latencies in log-linear buckets over [lowest_ns, highest_ns]."""

    @property
    def lowest_ns(self) -> int: ...
    @property
    def highest_ns(self) -> int: ...
    @property
    def precision_bits(self) -> int: ...
    @property
    def count(self) -> int: ...
    @property
    def overflow_count(self) -> int:
        """Values above highest_ns (recorded as highest_ns)."""
    @property
    def min(self) -> int:
        """Smallest recorded (clamped) value in ns, 0 if empty."""
    @property
    def max(self) -> int:
        """Largest recorded (clamped) value in ns, 0 if empty."""
    @property
    def mean(self) -> float:
        """Mean of the recorded (clamped) values in ns, 0.0 if empty."""
    @property
    def bucket_count(self) -> int:
        """Number of buckets between lowest_ns and highest_ns."""
    def __init__(
        self, lowest_ns: int = 100, highest_ns: int = 60_000_000_000, precision_bits: int = 7
    ) -> None: ...
    def record(self, value_ns: int) -> None:
        """Record one latency in ns; raises ValueError if it is negative, OverflowError if
        the count is already the int64 maximum."""
    def record_many(self, values_ns: Buffer | npt.NDArray[np.int64]) -> None:
        """Record a contiguous int64 buffer of latencies; all or nothing on a negative value
        or a count that would pass int64."""
    def percentile(self, p: float) -> int:
        """Value in ns at percentile ``p`` (0 <= p <= 100): the highest value equivalent
        to the bucket holding that rank, capped at ``max``; 0 if empty."""
    def percentiles(self, ps: Iterable[float]) -> list[int]:
        """``[percentile(p) for p in ps]``, validating every p before computing any."""
    def merge(self, other: LatencyHistogram) -> None:
        """Add ``other``'s counts into this histogram; both must share one configuration."""
    def reset(self) -> None:
        """Forget every recorded value; the configuration and the allocation are kept."""
    def config(self) -> tuple[int, int, int]:
        """(lowest_ns, highest_ns, precision_bits)."""
    def buckets(self) -> list[tuple[int, int]]:
        """Non-empty buckets as (highest equivalent value_ns, count), ascending."""
    def to_dict(self) -> dict[str, Any]:
        """Summary for reporting: configuration, statistics and the non-empty buckets."""
    def __reduce__(self) -> tuple[Any, ...]: ...
    def __setstate__(self, state: tuple[Any, ...]) -> None: ...
