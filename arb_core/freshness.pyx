# cython: freethreading_compatible = False
"""Book freshness on the monotonic clock.

A book is fresh when it is in sync and its last update arrived at most
``max_age_ns`` ago on the local monotonic clock; stale books never reach the
scanner.
"""

from libc.stdint cimport int64_t

from arb_core.book cimport OrderBook
from arb_core.fixed cimport int_arg


def monotonic_ns():
    """Local monotonic clock in ns (CLOCK_MONOTONIC, the clock of ``time.monotonic_ns``)."""
    return monotonic_ns_c()


cdef inline int _check_args(OrderBook book, int64_t now_ns) except -1:
    if book is None:
        raise ValueError("book must be an OrderBook, got None")
    if now_ns < 0:
        raise ValueError(f"now_ns must be >= 0, got {now_ns}")
    return 0


def is_fresh(OrderBook book, int_arg now_ns, int_arg max_age_ns):
    """True when ``book`` is in sync and its last update is at most ``max_age_ns`` old."""
    _check_args(book, now_ns)
    if max_age_ns < 0:
        raise ValueError(f"max_age_ns must be >= 0, got {max_age_ns}")
    return is_fresh_c(book, now_ns, max_age_ns)


def age_ns(OrderBook book, int_arg now_ns):
    """Nanoseconds since ``book`` last applied an update, or None if it never did."""
    _check_args(book, now_ns)
    if book.last_recv_ns <= 0:
        return None
    return now_ns - book.last_recv_ns

