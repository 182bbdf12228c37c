# C-level interface of arb_core.latency: a log-linear latency histogram in integer ns.
from libc.stdint cimport int64_t, INT64_MAX

cdef extern from *:
    """
    static inline int arb_bit_length(unsigned long long v) {
        return v ? 64 - __builtin_clzll(v) : 0;
    }
    """
    int arb_bit_length(unsigned long long v) noexcept nogil


cdef inline int64_t bucket_index_c(int64_t value_ns, int precision_bits) noexcept nogil:
    """Global bucket index of a value >= 0: exact below 2**(bits+1), then 2**bits
    linear sub-buckets per power of two."""
    cdef int shift = arb_bit_length(<unsigned long long>value_ns) - (precision_bits + 1)
    if shift < 0:
        shift = 0
    return (<int64_t>shift << precision_bits) + (value_ns >> shift)


cdef inline int64_t bucket_highest_c(int64_t index, int precision_bits) noexcept nogil:
    """Highest value that maps to a global bucket index."""
    cdef int64_t shift = (index >> precision_bits) - 1
    if shift < 0:
        shift = 0
    cdef int64_t mantissa = index - (shift << precision_bits)
    return ((mantissa + 1) << shift) - 1


cdef class LatencyHistogram:
    """Counts of ns latencies in log-linear buckets over [lowest_ns, highest_ns]."""
    cdef int64_t* counts           # counts[i] belongs to global bucket base_index + i
    cdef Py_ssize_t n_buckets
    cdef int64_t base_index
    cdef readonly int64_t lowest_ns
    cdef readonly int64_t highest_ns
    cdef readonly int precision_bits
    cdef readonly int64_t count
    cdef readonly int64_t overflow_count   # values above highest_ns, recorded as highest_ns
    cdef int64_t min_ns
    cdef int64_t max_ns
    cdef int64_t total_ns

    cdef int64_t value_at_c(self, Py_ssize_t i) noexcept
    cdef int64_t percentile_c(self, double p) noexcept
    cpdef void reset(self) noexcept

    cdef inline int record_c(self, int64_t value_ns) except -1:
        # Bucket counts are at most the count: checking the count keeps them all inside int64.
        if self.count == INT64_MAX:
            raise OverflowError(f"count passes int64: {self.count} + 1")
        self.record_unchecked_c(value_ns)
        return 0

    cdef inline void record_unchecked_c(self, int64_t value_ns) noexcept:
        # Unchecked: the caller has made room in the count. Negative input cannot be reported
        # from here; it clamps like any value below range.
        if value_ns < self.lowest_ns:
            value_ns = self.lowest_ns
        elif value_ns > self.highest_ns:
            value_ns = self.highest_ns
            self.overflow_count += 1
        self.counts[bucket_index_c(value_ns, self.precision_bits) - self.base_index] += 1
        self.count += 1
        # Saturate rather than wrap: only the mean reads total_ns, after ~292 years of latency.
        self.total_ns = self.total_ns + value_ns if self.total_ns <= INT64_MAX - value_ns else INT64_MAX
        if value_ns < self.min_ns:
            self.min_ns = value_ns
        if value_ns > self.max_ns:
            self.max_ns = value_ns
