"""Pure-Python reference of arb_core.freshness: the readable spec and the test oracle."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

OFFSET_BUCKETS = 8
NS_PER_MS = 1_000_000
INT64_MAX = 2**63 - 1
MAX_MS = INT64_MAX // NS_PER_MS  # the latest venue millisecond whose nanoseconds fit int64


class BookClock(Protocol):
    """What freshness reads from a book."""

    @property
    def in_sync(self) -> bool: ...
    @property
    def last_recv_ns(self) -> int: ...


def is_fresh(book: BookClock, now_ns: int, max_age_ns: int) -> bool:
    """In sync, updated at least once, and the last update at most ``max_age_ns`` old."""
    return bool(book.in_sync) and book.last_recv_ns > 0 and now_ns - book.last_recv_ns <= max_age_ns


def age_ns(book: BookClock, now_ns: int) -> int | None:
    """Nanoseconds since the last update, None if the book was never updated."""
    return None if book.last_recv_ns <= 0 else now_ns - book.last_recv_ns


@dataclass
class _Bucket:
    epoch: int
    min_delay_ns: int = INT64_MAX
    min_rtt_ns: int = -1
    rtt_offset_ns: int = 0


@dataclass
class ClockOffset:
    """Windowed minimum-delay / minimum-RTT clock offset estimator (see the compiled docstring)."""

    window_ns: int
    _buckets: dict[int, _Bucket] = field(default_factory=dict)
    _latest: int = -1

    @property
    def _width(self) -> int:
        return self.window_ns // OFFSET_BUCKETS

    def _bucket(self, local_ns: int) -> _Bucket | None:
        epoch = local_ns // self._width
        if epoch <= self._latest - OFFSET_BUCKETS:
            return None
        self._latest = max(self._latest, epoch)
        bucket = self._buckets.get(epoch)
        if bucket is None:
            bucket = self._buckets[epoch] = _Bucket(epoch)
        return bucket

    def _window(self) -> tuple[int | None, int | None]:
        """(min delay, offset of the min-RTT round trip) over the buckets in the window."""
        live = [b for e, b in sorted(self._buckets.items()) if e > self._latest - OFFSET_BUCKETS]
        delays = [b.min_delay_ns for b in live if b.min_delay_ns != INT64_MAX]
        trips = [b for b in live if b.min_rtt_ns >= 0]
        best = min(trips, key=lambda b: b.min_rtt_ns) if trips else None  # min keeps the oldest tie
        return (min(delays) if delays else None, best.rtt_offset_ns if best else None)

    def observe(self, local_wall_ns: int, venue_event_ms: int) -> int:
        delay = local_wall_ns - venue_event_ms * NS_PER_MS
        bucket = self._bucket(local_wall_ns)
        if bucket is not None:
            bucket.min_delay_ns = min(bucket.min_delay_ns, delay)
        min_delay, rtt_offset = self._window()
        if rtt_offset is not None:
            return delay - rtt_offset
        return delay - min_delay if min_delay is not None else 0

    def observe_round_trip(self, local_send_ns: int, local_recv_ns: int, venue_time_ms: int) -> int:
        rtt = local_recv_ns - local_send_ns
        offset = local_send_ns + rtt // 2 - venue_time_ms * NS_PER_MS
        bucket = self._bucket(local_recv_ns)
        if bucket is not None and (bucket.min_rtt_ns < 0 or rtt < bucket.min_rtt_ns):
            bucket.min_rtt_ns = rtt
            bucket.rtt_offset_ns = offset
        return offset

    @property
    def min_delay_ns(self) -> int | None:
        return self._window()[0]

    @property
    def offset_ns(self) -> int | None:
        min_delay, rtt_offset = self._window()
        return rtt_offset if rtt_offset is not None else min_delay

    @property
    def latency_ns(self) -> int | None:
        min_delay, rtt_offset = self._window()
        if min_delay is None:
            return None
        return min_delay - rtt_offset if rtt_offset is not None else 0

    def venue_to_local_ns(self, venue_event_ms: int) -> int | None:
        """A venue timestamp (ms) on the local wall clock: its nanoseconds plus ``offset_ns``, or
        None without an estimate; outside [0, MAX_MS] is a ValueError."""
        if not 0 <= venue_event_ms <= MAX_MS:
            raise ValueError(f"venue_event_ms must be in [0, {MAX_MS}], got {venue_event_ms}")
        offset = self.offset_ns
        return None if offset is None else venue_event_ms * NS_PER_MS + offset
