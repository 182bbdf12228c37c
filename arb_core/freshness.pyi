"""Typed Python API of arb_core.freshness (compiled)."""

from arb_core.book import OrderBook


def monotonic_ns() -> int:
    """Local monotonic clock in ns (CLOCK_MONOTONIC, the clock of ``time.monotonic_ns``)."""

def is_fresh(book: OrderBook, now_ns: int, max_age_ns: int) -> bool:
    """True when ``book`` is in sync and its last update is at most ``max_age_ns`` old."""

def age_ns(book: OrderBook, now_ns: int) -> int | None:
    """Nanoseconds since ``book`` last applied an update, or None if it never did."""
