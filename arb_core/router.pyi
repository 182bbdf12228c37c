"""Typed Python API of arb_core.router (compiled)."""

from typing import Final

from typing_extensions import Buffer

from arb_core.book import OrderBook
from arb_core.wire.common import WireScale

ROUTE_APPLIED: Final[int]  # 0: a diff decoded and applied to an in-sync book (last_slot names it)
ROUTE_STALE: Final[int]  # 1: an in-sync book already had this diff (ignored; last_slot names it)
ROUTE_OTHER: Final[int]  # 2: anything else; nothing changed, the caller runs its full path

DIALECT_NONE: Final[int]  # routes nothing: every frame is ROUTE_OTHER
DIALECT_GATEIO_SPOT: Final[int]
DIALECT_GATEIO_FUTURES: Final[int]
DIALECT_MEXC_SPOT: Final[int]
DIALECT_MEXC_FUTURES: Final[int]

class BookRouter:
    """The books of one market stream and the compiled steady-state path over them.

    ``route`` classifies a frame, finds its book by venue symbol and, for a diff to an
    in-sync book, decodes and applies it. Anything else is ROUTE_OTHER with nothing
    changed. Decode errors (WireError, ValueError, OverflowError) and BookError
    subclasses propagate with ``last_slot`` naming the book.

    A diff in the venue's usual compact shape is read in a single pass; every other
    frame takes the three steps (classify, frame symbol, decode), with the same
    results. ``single_pass=False`` always takes the three steps (for comparison).
    """

    @property
    def last_slot(self) -> int:
        """Slot of the book the last ``route`` call found (-1 when it found none)."""
    @property
    def dialect(self) -> int: ...
    @property
    def slots(self) -> int:
        """Number of registered books."""
    @property
    def single_pass_frames(self) -> int:
        """Diffs the single pass read (the rest of the frames took the three steps)."""
    def __init__(self, dialect: int, *, single_pass: bool = True) -> None: ...
    def add_book(self, venue_symbol: bytes, book: OrderBook, scale: WireScale) -> int:
        """Register ``book`` for frames naming ``venue_symbol``, decoded with ``scale``; returns its slot."""
    def route(self, frame: Buffer, recv_ns: int) -> int:
        """Route one frame; ROUTE_APPLIED, ROUTE_STALE or ROUTE_OTHER."""
    def applied(self, slot: int) -> int:
        """Diffs ``route`` applied to the book at ``slot``."""
    def stale(self, slot: int) -> int:
        """Diffs ``route`` ignored because the book at ``slot`` already had them."""
