"""Typed Python API of arb_core.book (compiled)."""

from collections.abc import Iterable
from typing import Final

BID: Final[int]  # 0
ASK: Final[int]  # 1
APPLIED: Final[int]  # 0: the batch continued the sequence and was applied
STALE: Final[int]  # 1: the batch ended at or before the book's last update id; ignored
STALE_STREAM_NS: Final[int]  # stale batches this long after the book's last change raise StaleStreamError
NOTIONAL_MAX: Final[int]  # 2**112 - 1: the largest notional the compiled code forms (a walk's, the scanner's)

class BookError(Exception):
    """Base class of order-book errors."""

class SequenceGapError(BookError):
    """A diff batch skipped update ids; the book has been marked out of sync."""

class CrossedBookError(BookError):
    """Best bid >= best ask after an update; the book has been marked out of sync."""

class BookOutOfSyncError(BookError):
    """A diff batch reached a book that needs a snapshot first."""

class StaleStreamError(BookError):
    """Only diffs the book already had arrived for ``STALE_STREAM_NS`` after its last change
    (the venue's update ids went backwards); the book has been marked out of sync."""

class DeltaBatch:
    """A reusable buffer of (side, price_ticks, size_lots) levels plus sequence header."""

    first_update_id: int
    last_update_id: int
    event_time_ms: int
    is_snapshot: bool
    def __init__(self, capacity: int = 64) -> None: ...
    def clear(self) -> None:
        """Empty the buffer and reset the header; capacity is kept."""
    def add(self, side: int, price_ticks: int, size_lots: int) -> None:
        """Append one level (validated: side BID/ASK, price > 0, size >= 0)."""
    def extend(self, levels: Iterable[tuple[int, int, int]]) -> int:
        """Append (side, price_ticks, size_lots) tuples validated as add() does; on error none is kept.

        Then every (side, price_ticks) of the batch appears once: at its first position, with its
        last size. Returns how many entries that merged away (0: the batch grew by len(levels)).
        """
    def levels(self) -> list[tuple[int, int, int]]:
        """The buffered levels as a list of (side, price_ticks, size_lots), in order."""
    def __len__(self) -> int: ...

class OrderBook:
    """L2 book in ticks and lots; each side is a sorted int64 array with the best level last."""

    @property
    def name(self) -> str: ...
    @property
    def last_update_id(self) -> int: ...
    @property
    def in_sync(self) -> bool: ...
    @property
    def last_recv_ns(self) -> int:
        """Local monotonic receive time of the last applied update."""
    @property
    def last_event_ms(self) -> int:
        """Venue event time of the last applied update."""
    @property
    def bid_count(self) -> int: ...
    @property
    def ask_count(self) -> int: ...
    def __init__(self, name: str = "", capacity: int = 64) -> None: ...
    def apply_snapshot(self, batch: DeltaBatch, recv_ns: int) -> int:
        """Replace the book with ``batch`` (size-0 levels skipped) and mark it in sync.

        Raises ValueError on a duplicate price within one side, CrossedBookError if crossed.
        """
    def apply_batch(self, batch: DeltaBatch, recv_ns: int) -> int:
        """Apply a diff batch under the sequence rule; returns APPLIED or STALE.

        Raises BookOutOfSyncError, SequenceGapError, CrossedBookError or StaleStreamError.
        """
    def mark_out_of_sync(self) -> None:
        """Require a snapshot before the next diff batch."""
    def clear(self) -> None:
        """Remove every level and reset ids and times; the book is left out of sync."""
    def apply_delta(self, side: int, price_ticks: int, size_lots: int) -> None:
        """Set one level (size 0 deletes; deleting a missing level is a no-op)."""
    def best_bid(self) -> tuple[int, int] | None:
        """(price_ticks, size_lots) of the best bid, or None."""
    def best_ask(self) -> tuple[int, int] | None:
        """(price_ticks, size_lots) of the best ask, or None."""
    def best_bid_price(self) -> int:
        """Best bid in ticks, 0 when there are no bids."""
    def best_ask_price(self) -> int:
        """Best ask in ticks, 0 when there are no asks."""
    def top(self, side: int, n: int) -> list[tuple[int, int]]:
        """Up to ``n`` levels of ``side`` as (price_ticks, size_lots), best first."""
    def walk(self, side: int, size_lots: int) -> tuple[int, int, int, int]:
        """(filled_lots, notional, worst_price_ticks, levels) of filling ``size_lots``.

        ASK = buying from the asks, BID = selling into the bids; best level first. OverflowError
        when the notional would pass ``NOTIONAL_MAX``.
        """
    def size_up_to(self, side: int, limit_price_ticks: int) -> int:
        """Lots on ``side`` at prices at least as good as the limit (ASK <=, BID >=)."""
    def size_at(self, side: int, price_ticks: int) -> int:
        """Lots of the level of ``side`` at ``price_ticks``; 0 when the book has none there."""
    def depth(self, side: int) -> int:
        """Number of levels on ``side``."""
