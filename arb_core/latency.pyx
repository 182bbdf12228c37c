# cython: freethreading_compatible = False
"""Log-linear latency histogram in integer nanoseconds (HdrHistogram-style).

Values below ``2**(precision_bits + 1)`` ns get one bucket each; above that every power
of two is split into ``2**precision_bits`` equal sub-buckets, so a bucket is never wider
than ``1 / 2**precision_bits`` of its lower bound (0.78% with the default 7 bits).
Values are clamped into ``[lowest_ns, highest_ns]`` before bucketing; values above the
range are also counted in ``overflow_count``.

A percentile is reported as the highest value equivalent to its bucket (capped at the
recorded maximum), so it is never below the exact percentile and exceeds it by less
than the bucket precision.
"""

import operator

from libc.math cimport ceil
from libc.stdint cimport int64_t, INT64_MAX
from libc.stdlib cimport calloc, free
from libc.string cimport memset

from arb_core.fixed cimport int_arg

DEFAULT_LOWEST_NS = 100
DEFAULT_HIGHEST_NS = 60_000_000_000
DEFAULT_PRECISION_BITS = 7

# Keeps (mantissa + 1) << shift inside int64 and the count array below ~2 M buckets.
cdef int64_t MAX_HIGHEST_NS = (<int64_t>1 << 62) - 1
cdef int MAX_PRECISION_BITS = 14


cdef class LatencyHistogram:
    """Counts of ns latencies in log-linear buckets over [lowest_ns, highest_ns].

    ``count``, ``min``, ``max`` and ``mean`` describe the clamped values; ``min``,
    ``max`` and ``mean`` are 0 while the histogram is empty.
    """

    def __cinit__(self, int_arg lowest_ns=DEFAULT_LOWEST_NS,
                  int_arg highest_ns=DEFAULT_HIGHEST_NS,
                  int_arg precision_bits=DEFAULT_PRECISION_BITS):
        if lowest_ns < 1:
            raise ValueError(f"lowest_ns must be >= 1, got {lowest_ns}")
        if lowest_ns >= MAX_HIGHEST_NS:  # first: the range below is reported from lowest_ns + 1
            raise ValueError(f"lowest_ns must be below {MAX_HIGHEST_NS}, got {lowest_ns}")
        if highest_ns <= lowest_ns or highest_ns > MAX_HIGHEST_NS:
            raise ValueError(
                f"highest_ns must be in {lowest_ns + 1}..{MAX_HIGHEST_NS}, got {highest_ns}"
            )
        if precision_bits < 1 or precision_bits > MAX_PRECISION_BITS:
            raise ValueError(
                f"precision_bits must be in 1..{MAX_PRECISION_BITS}, got {precision_bits}"
            )
        self.lowest_ns = lowest_ns
        self.highest_ns = highest_ns
        self.precision_bits = precision_bits
        self.base_index = bucket_index_c(lowest_ns, precision_bits)
        self.n_buckets = <Py_ssize_t>(bucket_index_c(highest_ns, precision_bits) - self.base_index + 1)
        self.counts = <int64_t*>calloc(self.n_buckets, sizeof(int64_t))
        if self.counts == NULL:
            raise MemoryError()
        self.reset()

    def __dealloc__(self):
        free(self.counts)

    cpdef void reset(self) noexcept:
        """Forget every recorded value; the configuration and the allocation are kept."""
        memset(self.counts, 0, self.n_buckets * sizeof(int64_t))
        self.count = 0
        self.overflow_count = 0
        self.min_ns = INT64_MAX
        self.max_ns = 0
        self.total_ns = 0

    def record(self, int_arg value_ns):
        """Record one latency in ns; raises ValueError if it is negative, OverflowError if
        the count is already the int64 maximum."""
        if value_ns < 0:
            raise ValueError(f"value_ns must be >= 0, got {value_ns}")
        self.record_c(value_ns)

    def record_many(self, const int64_t[::1] values_ns not None):
        """Record a contiguous int64 buffer of latencies; all or nothing on a negative value
        or a count that would pass int64."""
        cdef Py_ssize_t i, n = values_ns.shape[0]
        if self.count > INT64_MAX - n:
            raise OverflowError(f"count passes int64: {self.count} + {n}")
        for i in range(n):
            if values_ns[i] < 0:
                raise ValueError(f"values_ns[{i}] must be >= 0, got {values_ns[i]}")
        for i in range(n):
            self.record_unchecked_c(values_ns[i])

    @property
    def min(self):
        """Smallest recorded (clamped) value in ns, 0 if empty."""
        return self.min_ns if self.count else 0

    @property
    def max(self):
        """Largest recorded (clamped) value in ns, 0 if empty."""
        return self.max_ns if self.count else 0

    @property
    def mean(self):
        """Mean of the recorded (clamped) values in ns, 0.0 if empty."""
        return <double>self.total_ns / <double>self.count if self.count else 0.0

    @property
    def bucket_count(self):
        """Number of buckets between lowest_ns and highest_ns."""
        return self.n_buckets

    cdef int64_t value_at_c(self, Py_ssize_t i) noexcept:
        cdef int64_t v = bucket_highest_c(self.base_index + i, self.precision_bits)
        return v if v < self.highest_ns else self.highest_ns

    cdef int64_t percentile_c(self, double p) noexcept:
        # rank = ceil(p% of count), at least 1: p=0 gives the smallest value.
        if self.count == 0:
            return 0
        cdef double r = ceil(p * <double>self.count / 100.0)
        cdef int64_t rank
        # Compared as doubles first: a count near 2**63 rounds up to it, past int64 (UB to convert).
        if r >= <double>self.count:
            rank = self.count
        elif r >= 1.0:
            rank = <int64_t>r
        else:
            rank = 1
        cdef int64_t cumulative = 0, v
        cdef Py_ssize_t i = <Py_ssize_t>(bucket_index_c(self.min_ns, self.precision_bits)
                                          - self.base_index)
        while i < self.n_buckets:
            cumulative += self.counts[i]
            if cumulative >= rank:
                break
            i += 1
        v = self.value_at_c(i)
        return v if v < self.max_ns else self.max_ns

    def percentile(self, double p):
        """Value in ns at percentile ``p`` (0 <= p <= 100); 0 if empty."""
        if not (0.0 <= p <= 100.0):
            raise ValueError(f"p must be in [0, 100], got {p}")
        return self.percentile_c(p)

    def percentiles(self, ps):
        """``[percentile(p) for p in ps]``, validating every p before computing any."""
        cdef list values = [float(p) for p in ps]
        for p in values:
            if not (0.0 <= p <= 100.0):
                raise ValueError(f"p must be in [0, 100], got {p}")
        return [self.percentile_c(p) for p in values]

    def merge(self, LatencyHistogram other not None):
        """Add ``other``'s counts into this histogram; both must share one configuration."""
        if (other.lowest_ns != self.lowest_ns or other.highest_ns != self.highest_ns
                or other.precision_bits != self.precision_bits):
            raise ValueError(
                f"cannot merge a histogram configured as {other.config()} "
                f"into one configured as {self.config()}"
            )
        if other.count == 0:
            return
        if self.count > INT64_MAX - other.count:  # checked first: bucket counts are at most the count
            raise OverflowError(f"merged count passes int64: {self.count} + {other.count}")
        cdef Py_ssize_t i
        for i in range(self.n_buckets):
            self.counts[i] += other.counts[i]
        self.count += other.count
        self.overflow_count += other.overflow_count
        self.total_ns = (self.total_ns + other.total_ns if self.total_ns <= INT64_MAX - other.total_ns
                         else INT64_MAX)
        if other.min_ns < self.min_ns:
            self.min_ns = other.min_ns
        if other.max_ns > self.max_ns:
            self.max_ns = other.max_ns

    def config(self):
        """(lowest_ns, highest_ns, precision_bits)."""
        return (self.lowest_ns, self.highest_ns, self.precision_bits)

    def buckets(self):
        """Non-empty buckets as a list of (highest equivalent value_ns, count), ascending."""
        cdef Py_ssize_t i
        return [(self.value_at_c(i), self.counts[i])
                for i in range(self.n_buckets) if self.counts[i]]

    def to_dict(self):
        """Summary for reporting: configuration, statistics and the non-empty buckets."""
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

    def __reduce__(self):
        cdef Py_ssize_t i
        state = (self.count, self.overflow_count, self.min_ns, self.max_ns, self.total_ns,
                 [(i, self.counts[i]) for i in range(self.n_buckets) if self.counts[i]])
        return (LatencyHistogram, self.config(), state)

    def __setstate__(self, state):
        # Every field as an exact integer (a float count is refused, not truncated), all of it
        # checked before anything is changed.
        count, overflow_count, min_ns, max_ns, total_ns = [operator.index(v) for v in state[:5]]
        buckets = [(operator.index(i), operator.index(n)) for i, n in state[5]]
        total = 0  # a Python int: bucket counts near INT64_MAX must not wrap into agreement
        for i, n in buckets:
            if i < 0 or i >= self.n_buckets or n <= 0:
                raise ValueError(f"invalid pickled bucket ({i}, {n})")
            total += n
        if total != count or count > INT64_MAX or not (0 <= overflow_count <= count):
            raise ValueError(f"pickled counts disagree: buckets sum {total}, count {count}")
        if count and not (self.lowest_ns <= min_ns <= max_ns <= self.highest_ns):
            raise ValueError(f"pickled min/max out of range: {min_ns}, {max_ns}")
        if not 0 <= total_ns <= INT64_MAX:
            raise ValueError(f"pickled total_ns out of range: {total_ns}")
        self.reset()
        for i, n in buckets:
            self.counts[i] += n
        self.count = count
        self.overflow_count = overflow_count
        if count:
            self.min_ns = min_ns
            self.max_ns = max_ns
            self.total_ns = total_ns

    def __repr__(self):
        return (f"LatencyHistogram(count={self.count}, min={self.min}, "
                f"p50={self.percentile_c(50.0)}, p99={self.percentile_c(99.0)}, max={self.max})")
