# cython: freethreading_compatible = False
"""Book freshness on the monotonic clock, and per-venue clock offset estimation.

A book is fresh when it is in sync and its last update arrived at most
``max_age_ns`` ago on the local monotonic clock; stale books never reach the
scanner. Venue timestamps are on the venue's clock, so comparing them with
local time needs the offset between the clocks, estimated by ``ClockOffset``.
"""

from libc.stdint cimport int64_t, INT64_MAX

from arb_core.book cimport OrderBook
from arb_core.fixed cimport checked_add, int_arg

cdef int64_t NS_PER_MS = 1000000
cdef int64_t MAX_MS = INT64_MAX // NS_PER_MS


def monotonic_ns():
    """Local monotonic clock in ns (CLOCK_MONOTONIC, the clock of ``time.monotonic_ns``)."""
    return monotonic_ns_c()


def wall_ns():
    """Local wall clock in ns (CLOCK_REALTIME, the clock of ``time.time_ns``)."""
    return wall_ns_c()


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


cdef class ClockOffset:
    """Windowed estimate of one venue's clock offset and one-way latency.

    Two kinds of samples feed it, both on the local wall clock:

    * ``observe(local_wall_ns, venue_event_ms)`` per push: its delay
      ``local - venue`` is the clock offset plus that message's one-way latency.
      Latency is never negative, so the minimum delay over the window is the
      tightest bound on the offset (offset + the fastest latency seen);
      a minimum ignores queueing spikes that would skew a mean.
    * ``observe_round_trip(send_ns, recv_ns, venue_time_ms)`` per server-time
      request: NTP-style, the offset is the midpoint of the round trip minus the
      venue time. The round trip with the smallest RTT in the window wins, since
      its error is bounded by RTT / 2.

    ``offset_ns`` is the round-trip estimate when one is in the window and
    otherwise the minimum delay (then ``latency_ns`` reads 0: latencies are
    measured relative to the fastest message). The window is split into
    ``OFFSET_BUCKETS`` time buckets keyed by the sample's local time, and it ends
    at the newest sample seen, so old minima expire without storing every sample.
    """

    def __cinit__(self, int_arg window_ns):
        if window_ns < OFFSET_BUCKETS:
            raise ValueError(f"window_ns must be >= {OFFSET_BUCKETS}, got {window_ns}")
        self.window_ns = window_ns
        self.width_ns = window_ns // OFFSET_BUCKETS
        self.latest_epoch = -1
        cdef int i
        for i in range(OFFSET_BUCKETS):
            self.buckets[i].epoch = -1

    cdef OffsetBucket* _bucket(self, int64_t local_wall_ns) noexcept:
        cdef int64_t epoch = local_wall_ns // self.width_ns
        cdef OffsetBucket* b
        if epoch <= self.latest_epoch - OFFSET_BUCKETS:
            return NULL     # older than the window
        if epoch > self.latest_epoch:
            self.latest_epoch = epoch
        b = &self.buckets[epoch % OFFSET_BUCKETS]
        if b.epoch != epoch:
            b.epoch = epoch
            b.min_delay_ns = INT64_MAX
            b.min_rtt_ns = -1
            b.rtt_offset_ns = 0
        return b

    cpdef int64_t observe(self, int_arg local_wall_ns, int_arg venue_event_ms) except? -1:
        """Record one push; returns its one-way latency estimate (delay - offset) in ns."""
        if local_wall_ns < 0:
            raise ValueError(f"local_wall_ns must be >= 0, got {local_wall_ns}")
        if venue_event_ms < 0 or venue_event_ms > MAX_MS:
            raise ValueError(f"venue_event_ms must be in [0, {MAX_MS}], got {venue_event_ms}")
        cdef int64_t delay = local_wall_ns - venue_event_ms * NS_PER_MS
        cdef OffsetBucket* b = self._bucket(local_wall_ns)
        cdef int64_t min_delay, best_rtt, rtt_offset
        if b != NULL and delay < b.min_delay_ns:
            b.min_delay_ns = delay
        self._window(&min_delay, &best_rtt, &rtt_offset)
        if best_rtt >= 0:
            return checked_add(delay, -rtt_offset)
        if min_delay != INT64_MAX:
            return checked_add(delay, -min_delay)
        return 0    # this push fell outside the window and none is inside

    cpdef int64_t observe_round_trip(
        self, int_arg local_send_ns, int_arg local_recv_ns, int_arg venue_time_ms
    ) except? -1:
        """Record one server-time round trip; returns its offset sample in ns."""
        if local_send_ns < 0:
            raise ValueError(f"local_send_ns must be >= 0, got {local_send_ns}")
        if local_recv_ns < local_send_ns:
            raise ValueError(
                f"local_recv_ns must be >= local_send_ns ({local_send_ns}), got {local_recv_ns}")
        if venue_time_ms < 0 or venue_time_ms > MAX_MS:
            raise ValueError(f"venue_time_ms must be in [0, {MAX_MS}], got {venue_time_ms}")
        cdef int64_t rtt = local_recv_ns - local_send_ns
        cdef int64_t offset = local_send_ns + rtt // 2 - venue_time_ms * NS_PER_MS
        cdef OffsetBucket* b = self._bucket(local_recv_ns)
        if b != NULL and (b.min_rtt_ns < 0 or rtt < b.min_rtt_ns):
            b.min_rtt_ns = rtt
            b.rtt_offset_ns = offset
        return offset

    cdef void _window(self, int64_t* min_delay, int64_t* best_rtt, int64_t* rtt_offset) noexcept:
        # Oldest bucket first with strict comparisons, so ties keep the older sample. A fixed
        # count rather than a loop up to latest_epoch, which cannot end at INT64_MAX.
        cdef int64_t e
        cdef int k
        cdef OffsetBucket* b
        min_delay[0] = INT64_MAX
        best_rtt[0] = -1
        rtt_offset[0] = 0
        for k in range(OFFSET_BUCKETS):
            e = self.latest_epoch - (OFFSET_BUCKETS - 1) + k
            if e < 0:
                continue
            b = &self.buckets[e % OFFSET_BUCKETS]
            if b.epoch == e:
                if b.min_delay_ns < min_delay[0]:
                    min_delay[0] = b.min_delay_ns
                if b.min_rtt_ns >= 0 and (best_rtt[0] < 0 or b.min_rtt_ns < best_rtt[0]):
                    best_rtt[0] = b.min_rtt_ns
                    rtt_offset[0] = b.rtt_offset_ns

    @property
    def min_delay_ns(self):
        """Smallest push delay (local - venue) in the window, or None without pushes."""
        cdef int64_t min_delay, best_rtt, rtt_offset
        self._window(&min_delay, &best_rtt, &rtt_offset)
        return None if min_delay == INT64_MAX else min_delay

    @property
    def offset_ns(self):
        """Local clock minus venue clock in ns, or None without any sample in the window."""
        cdef int64_t min_delay, best_rtt, rtt_offset
        self._window(&min_delay, &best_rtt, &rtt_offset)
        if best_rtt >= 0:
            return rtt_offset
        return None if min_delay == INT64_MAX else min_delay

    @property
    def latency_ns(self):
        """Fastest one-way latency in the window (min delay - offset), or None without pushes."""
        cdef int64_t min_delay, best_rtt, rtt_offset
        self._window(&min_delay, &best_rtt, &rtt_offset)
        if min_delay == INT64_MAX:
            return None
        if best_rtt >= 0:
            return <object>min_delay - <object>rtt_offset
        return 0

    def venue_to_local_ns(self, int_arg venue_event_ms):
        """A venue timestamp mapped onto the local wall clock, or None without an estimate."""
        if venue_event_ms < 0 or venue_event_ms > MAX_MS:
            raise ValueError(f"venue_event_ms must be in [0, {MAX_MS}], got {venue_event_ms}")
        offset = self.offset_ns
        return None if offset is None else venue_event_ms * NS_PER_MS + offset

    def __repr__(self):
        return (f"ClockOffset(window_ns={self.window_ns}, offset_ns={self.offset_ns}, "
                f"latency_ns={self.latency_ns})")
