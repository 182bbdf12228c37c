"""Pure-Python reference of arb_core.router: the steady-state decision of ``BookSync.on_message``.

Every step runs on the references only: classification and symbol routing use the
routing helpers of reference.wire_gateio / reference.wire_mexc as they read (the first
members of a JSON frame, the first fields of a protobuf push: a frame broken further on
still routes, then fails in its decoder), decoding uses the reference decoders and book
updates the reference book. Semantics of ``route``:

* the frame is a BOOK_UPDATE of the dialect, its symbol reads, and a book is registered
  for it (else ROUTE_OTHER, ``last_slot`` -1; a frame that cannot be classified or has no
  readable symbol counts as not a BOOK_UPDATE);
* ``last_slot`` names that book; out of sync -> ROUTE_OTHER;
* decode (errors propagate); a full book -> ROUTE_OTHER, nothing applied;
* ``apply_batch`` (BookError propagates) -> ROUTE_APPLIED / ROUTE_STALE, counted per slot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reference import wire_gateio, wire_mexc
from reference.book import APPLIED, OrderBook
from reference.wire_common import BOOK_UPDATE, Decoded, Scale, WireError

ROUTE_APPLIED = 0
ROUTE_STALE = 1
ROUTE_OTHER = 2

DIALECT_NONE = 0
DIALECT_GATEIO_SPOT = 1
DIALECT_GATEIO_FUTURES = 2
DIALECT_MEXC_SPOT = 3
DIALECT_MEXC_FUTURES = 4

# what BookSync counts as an unroutable frame rather than a malformed one: the routing
# helpers of the references raise nothing else
ROUTING_ERRORS = (WireError,)


@dataclass(frozen=True)
class Dialect:
    classify: Callable[[bytes], int]
    frame_symbol: Callable[[bytes], bytes]
    decode: Callable[[bytes, Scale], Decoded]


DIALECTS: dict[int, Dialect] = {
    DIALECT_GATEIO_SPOT: Dialect(
        wire_gateio.classify_prefix, wire_gateio.frame_symbol_prefix, wire_gateio.decode_spot_update
    ),
    DIALECT_GATEIO_FUTURES: Dialect(
        wire_gateio.classify_prefix, wire_gateio.frame_symbol_prefix, wire_gateio.decode_futures_update
    ),
    DIALECT_MEXC_SPOT: Dialect(wire_mexc.classify_spot, wire_mexc.spot_frame_symbol, wire_mexc.decode_spot_depth),
    DIALECT_MEXC_FUTURES: Dialect(
        wire_mexc.classify_futures_prefix, wire_mexc.futures_frame_symbol_prefix, wire_mexc.decode_futures_depth
    ),
}


class BookRouter:
    """Reference router over reference books."""

    def __init__(self, dialect: int) -> None:
        if not DIALECT_NONE <= dialect <= DIALECT_MEXC_FUTURES:
            raise ValueError(f"dialect must be one of the router dialect constants, got {dialect}")
        self.dialect = dialect
        self.last_slot = -1
        self._slots: dict[bytes, int] = {}
        self._books: list[OrderBook] = []
        self._scales: list[Scale] = []
        self._applied: list[int] = []
        self._stale: list[int] = []

    @property
    def slots(self) -> int:
        return len(self._books)

    def add_book(self, venue_symbol: bytes, book: OrderBook, scale: Scale) -> int:
        if not venue_symbol:
            raise ValueError("venue_symbol must not be empty")
        if venue_symbol in self._slots:
            raise ValueError(f"venue_symbol {venue_symbol!r} is already registered")
        slot = len(self._books)
        self._slots[venue_symbol] = slot
        self._books.append(book)
        self._scales.append(scale)
        self._applied.append(0)
        self._stale.append(0)
        return slot

    def applied(self, slot: int) -> int:
        return self._applied[self._checked(slot)]

    def stale(self, slot: int) -> int:
        return self._stale[self._checked(slot)]

    def _checked(self, slot: int) -> int:
        if not 0 <= slot < len(self._books):
            raise ValueError(f"slot must be in [0, {len(self._books)}), got {slot}")
        return slot

    def route(self, frame: bytes, recv_ns: int) -> int:
        self.last_slot = -1
        dialect = DIALECTS.get(self.dialect)
        if dialect is None:
            return ROUTE_OTHER
        try:
            if dialect.classify(frame) != BOOK_UPDATE:
                return ROUTE_OTHER
            slot = self._slots.get(dialect.frame_symbol(frame))
        except ROUTING_ERRORS:
            return ROUTE_OTHER
        if slot is None:
            return ROUTE_OTHER
        self.last_slot = slot
        book = self._books[slot]
        if not book.in_sync:
            return ROUTE_OTHER
        batch = dialect.decode(frame, self._scales[slot])
        if batch.is_snapshot:
            return ROUTE_OTHER
        if book.apply_batch(batch, recv_ns) == APPLIED:
            self._applied[slot] += 1
            return ROUTE_APPLIED
        self._stale[slot] += 1
        return ROUTE_STALE
