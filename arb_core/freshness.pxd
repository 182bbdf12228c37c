# C-level interface of arb_core.freshness: book age on the monotonic clock and venue clock offsets.
from libc.stdint cimport int64_t
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC, CLOCK_REALTIME

from arb_core.book cimport OrderBook
from arb_core.fixed cimport int_arg

cdef enum:
    OFFSET_BUCKETS = 8      # time buckets of a ClockOffset window


cdef inline int64_t monotonic_ns_c() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


cdef inline int64_t wall_ns_c() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


cdef inline bint is_fresh_c(OrderBook book, int64_t now_ns, int64_t max_age_ns) noexcept:
    # now_ns >= 0 and last_recv_ns > 0 keep the subtraction in range.
    return book.in_sync and book.last_recv_ns > 0 and now_ns - book.last_recv_ns <= max_age_ns


cdef struct OffsetBucket:
    int64_t epoch          # local_wall_ns // bucket width of the samples held; -1 when empty
    int64_t min_delay_ns   # min(local - venue) over push samples in this bucket
    int64_t min_rtt_ns     # smallest round trip seen in this bucket; -1 when none
    int64_t rtt_offset_ns  # clock offset measured by that round trip


cdef class ClockOffset:
    """Windowed estimate of one venue's clock offset and one-way latency."""
    cdef readonly int64_t window_ns
    cdef int64_t width_ns
    cdef int64_t latest_epoch
    cdef OffsetBucket buckets[OFFSET_BUCKETS]

    cdef OffsetBucket* _bucket(self, int64_t local_wall_ns) noexcept
    cdef void _window(self, int64_t* min_delay, int64_t* best_rtt, int64_t* rtt_offset) noexcept
    cpdef int64_t observe(self, int_arg local_wall_ns, int_arg venue_event_ms) except? -1
    cpdef int64_t observe_round_trip(
        self, int_arg local_send_ns, int_arg local_recv_ns, int_arg venue_time_ms
    ) except? -1
