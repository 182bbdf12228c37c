"""Pure-Python reference of arb_core.freshness: the readable spec and the test oracle."""

from __future__ import annotations

from typing import Protocol


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

