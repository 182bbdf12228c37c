# C-level interface of arb_core.freshness: the local monotonic clock and book age on it.
from libc.stdint cimport int64_t
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

from arb_core.book cimport OrderBook


cdef inline int64_t monotonic_ns_c() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


cdef inline bint is_fresh_c(OrderBook book, int64_t now_ns, int64_t max_age_ns) noexcept:
    # now_ns >= 0 and last_recv_ns > 0 keep the subtraction in range.
    return book.in_sync and book.last_recv_ns > 0 and now_ns - book.last_recv_ns <= max_age_ns

