"""Typed Python API of arb_core.freshness (compiled)."""

from arb_core.book import OrderBook


def monotonic_ns() -> int:
    """Local monotonic clock in ns (CLOCK_MONOTONIC, the clock of ``time.monotonic_ns``)."""

def wall_ns() -> int:
    """Local wall clock in ns (CLOCK_REALTIME, the clock of ``time.time_ns``)."""

def is_fresh(book: OrderBook, now_ns: int, max_age_ns: int) -> bool:
    """True when ``book`` is in sync and its last update is at most ``max_age_ns`` old."""

def age_ns(book: OrderBook, now_ns: int) -> int | None:
    """Nanoseconds since ``book`` last applied an update, or None if it never did."""

class ClockOffset:
    """Windowed estimate of one venue's clock offset and one-way latency."""

    @property
    def window_ns(self) -> int: ...
    def __init__(self, window_ns: int) -> None: ...
    def observe(self, local_wall_ns: int, venue_event_ms: int) -> int:
        """Record one push; returns its one-way latency estimate (delay - offset) in ns."""
    def observe_round_trip(self, local_send_ns: int, local_recv_ns: int, venue_time_ms: int) -> int:
        """Record one server-time round trip; returns its offset sample in ns."""
    @property
    def min_delay_ns(self) -> int | None:
        """Smallest push delay (local - venue) in the window, or None without pushes."""
    @property
    def offset_ns(self) -> int | None:
        """Local clock minus venue clock in ns, or None without any sample in the window."""
    @property
    def latency_ns(self) -> int | None:
        """Fastest one-way latency in the window (min delay - offset), or None without pushes."""
    def venue_to_local_ns(self, venue_event_ms: int) -> int | None:
        """A venue timestamp mapped onto the local wall clock, or None without an estimate."""
