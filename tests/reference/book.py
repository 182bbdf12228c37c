"""Pure-Python reference of arb_core.book.OrderBook (and DeltaBatch.extend): the readable spec and test oracle.

Each side is a dict price_ticks -> size_lots; ordering is done on demand. Semantics
(validation, sequence rule, errors, overflow) match the compiled book exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

BID = 0
ASK = 1
APPLIED = 0
STALE = 1
INT64_MAX = 2**63 - 1
NOTIONAL_MAX = 2**112 - 1  # notionals (price x size) are 128-bit in the compiled code, bounded here
STALE_STREAM_NS = 5_000_000_000


class BookError(Exception):
    """Base class of order-book errors."""


class SequenceGapError(BookError):
    """A diff batch skipped update ids; the book has been marked out of sync."""


class CrossedBookError(BookError):
    """Best bid >= best ask after an update; the book has been marked out of sync."""


class BookOutOfSyncError(BookError):
    """A diff batch reached a book that needs a snapshot first."""


class StaleStreamError(BookError):
    """Only diffs the book already had arrived for STALE_STREAM_NS after its last change."""


class Batch(Protocol):
    """What the book reads from a batch (arb_core.book.DeltaBatch satisfies it)."""

    first_update_id: int
    last_update_id: int
    event_time_ms: int

    def levels(self) -> list[tuple[int, int, int]]: ...


def _check_side(side: int) -> None:
    if side != BID and side != ASK:
        raise ValueError(f"side must be 0 (bid) or 1 (ask), got {side}")


def extend_batch(levels: list[tuple[int, int, int]], new: Iterable[object]) -> int:
    """``DeltaBatch.extend`` on a batch holding ``levels`` (changed in place); returns the merged count."""
    added: list[tuple[int, int, int]] = []
    for i, level in enumerate(new):
        if not isinstance(level, tuple) or len(level) != 3:
            raise ValueError(f"levels[{i}] must be a (side, price_ticks, size_lots) tuple, got {level!r}")
        side, price, size = level
        # converted to C int, int64, int64 before any check, as the compiled loop does
        for value, bound in ((side, 2**31), (price, 2**63), (size, 2**63)):
            if not -bound <= value < bound:
                raise OverflowError(f"{value} does not fit the C type")
        _check_side(side)
        if price <= 0:
            raise ValueError(f"price_ticks must be > 0, got {price}")
        if size < 0:
            raise ValueError(f"size_lots must be >= 0, got {size}")
        added.append((side, price, size))
    merged: dict[tuple[int, int], int] = {}
    for side, price, size in levels + added:
        merged[(side, price)] = size  # an existing key keeps its position and takes the new size
    count = len(levels) + len(added) - len(merged)
    levels[:] = [(side, price, size) for (side, price), size in merged.items()]
    return count


class OrderBook:
    """Reference L2 book in ticks and lots."""

    def __init__(self, name: str = "", capacity: int = 64) -> None:
        if name is None:
            raise ValueError("name must be a str, got None")
        if capacity < 1 or capacity > 1 << 32:
            raise ValueError(f"capacity must be in [1, 2**32], got {capacity}")
        self.name = name
        self._sides: tuple[dict[int, int], dict[int, int]] = ({}, {})
        self.last_update_id = 0
        self.in_sync = False
        self.last_recv_ns = 0
        self.last_event_ms = 0

    def _ordered(self, side: int) -> list[tuple[int, int]]:
        """Levels of ``side``, best first."""
        return sorted(self._sides[side].items(), reverse=side == BID)

    def _set(self, side: int, price_ticks: int, size_lots: int) -> None:
        if size_lots:
            self._sides[side][price_ticks] = size_lots
        else:
            self._sides[side].pop(price_ticks, None)

    def _raise_if_crossed(self) -> None:
        bid, ask = self.best_bid_price(), self.best_ask_price()
        if self._sides[BID] and self._sides[ASK] and bid >= ask:
            self.in_sync = False
            raise CrossedBookError(
                f"book {self.name!r}: crossed at update {self.last_update_id}, "
                f"best bid {bid} >= best ask {ask}"
            )

    def apply_snapshot(self, batch: Batch, recv_ns: int) -> int:
        """Replace the book (size-0 levels skipped); duplicate price on a side -> ValueError."""
        if batch is None:
            raise ValueError("batch must be a DeltaBatch, got None")
        sides: tuple[dict[int, int], dict[int, int]] = ({}, {})
        for side, price, size in batch.levels():
            if size == 0:
                continue
            levels = sides[BID if side == BID else ASK]
            if price in levels:
                raise ValueError(
                    f"book {self.name!r}: duplicate {'bid' if side == BID else 'ask'} "
                    f"price_ticks {price} in snapshot"
                )
            levels[price] = size
        self._sides = sides
        self.last_update_id = batch.last_update_id
        self.last_recv_ns = recv_ns
        self.last_event_ms = batch.event_time_ms
        self.in_sync = False
        self._raise_if_crossed()
        self.in_sync = True
        return APPLIED

    def apply_batch(self, batch: Batch, recv_ns: int) -> int:
        """Apply a diff batch under the sequence rule; returns APPLIED or STALE."""
        if batch is None:
            raise ValueError("batch must be a DeltaBatch, got None")
        if not self.in_sync:
            raise BookOutOfSyncError(
                f"book {self.name!r} is out of sync (last_update_id {self.last_update_id}); "
                f"a snapshot is needed before batch "
                f"{batch.first_update_id}..{batch.last_update_id}"
            )
        if batch.last_update_id <= self.last_update_id:
            if recv_ns - self.last_recv_ns > STALE_STREAM_NS:
                self.in_sync = False
                raise StaleStreamError(
                    f"book {self.name!r}: batch {batch.first_update_id}..{batch.last_update_id} is at or "
                    f"before update {self.last_update_id}, and the book has not changed for "
                    f"{(recv_ns - self.last_recv_ns) // 1_000_000} ms: the venue's update ids went backwards"
                )
            return STALE
        if batch.first_update_id > self.last_update_id + 1:
            self.in_sync = False
            raise SequenceGapError(
                f"book {self.name!r}: gap, batch starts at update {batch.first_update_id} "
                f"but the book is at {self.last_update_id}"
            )
        for side, price, size in batch.levels():
            self._set(BID if side == BID else ASK, price, size)
        self.last_update_id = batch.last_update_id
        self.last_recv_ns = recv_ns
        self.last_event_ms = batch.event_time_ms
        self._raise_if_crossed()
        return APPLIED

    def mark_out_of_sync(self) -> None:
        self.in_sync = False

    def clear(self) -> None:
        self._sides = ({}, {})
        self.last_update_id = 0
        self.in_sync = False
        self.last_recv_ns = 0
        self.last_event_ms = 0

    def apply_delta(self, side: int, price_ticks: int, size_lots: int) -> None:
        _check_side(side)
        if price_ticks <= 0:
            raise ValueError(f"price_ticks must be > 0, got {price_ticks}")
        if size_lots < 0:
            raise ValueError(f"size_lots must be >= 0, got {size_lots}")
        self._set(side, price_ticks, size_lots)

    def best_bid(self) -> tuple[int, int] | None:
        levels = self._ordered(BID)
        return levels[0] if levels else None

    def best_ask(self) -> tuple[int, int] | None:
        levels = self._ordered(ASK)
        return levels[0] if levels else None

    def best_bid_price(self) -> int:
        return max(self._sides[BID], default=0)

    def best_ask_price(self) -> int:
        return min(self._sides[ASK], default=0)

    def top(self, side: int, n: int) -> list[tuple[int, int]]:
        _check_side(side)
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        return self._ordered(side)[:n]

    def walk(self, side: int, size_lots: int) -> tuple[int, int, int, int]:
        """(filled_lots, notional, worst_price_ticks, levels); OverflowError past NOTIONAL_MAX."""
        _check_side(side)
        if size_lots < 0:
            raise ValueError(f"size_lots must be >= 0, got {size_lots}")
        left, notional, worst, touched = size_lots, 0, 0, 0
        for price, size in self._ordered(side):
            if left == 0:
                break
            take = min(size, left)
            notional += price * take
            left -= take
            worst = price
            touched += 1
        # the running notional only grows, so checking the total catches any step
        if notional > NOTIONAL_MAX:
            raise OverflowError(f"fixed-point overflow: notional {notional}")
        return size_lots - left, notional, worst, touched

    def size_up_to(self, side: int, limit_price_ticks: int) -> int:
        """Lots at prices at least as good as the limit; saturates at INT64_MAX."""
        _check_side(side)
        if limit_price_ticks <= 0:
            raise ValueError(f"limit_price_ticks must be > 0, got {limit_price_ticks}")
        if side == ASK:
            total = sum(s for p, s in self._sides[ASK].items() if p <= limit_price_ticks)
        else:
            total = sum(s for p, s in self._sides[BID].items() if p >= limit_price_ticks)
        return min(total, INT64_MAX)

    def size_at(self, side: int, price_ticks: int) -> int:
        """Lots of the level at ``price_ticks``; 0 when there is none."""
        _check_side(side)
        if price_ticks <= 0:
            raise ValueError(f"price_ticks must be > 0, got {price_ticks}")
        return self._sides[side].get(price_ticks, 0)

    def depth(self, side: int) -> int:
        _check_side(side)
        return len(self._sides[side])

    @property
    def bid_count(self) -> int:
        return len(self._sides[BID])

    @property
    def ask_count(self) -> int:
        return len(self._sides[ASK])
