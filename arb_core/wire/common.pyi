"""Typed Python API of arb_core.wire.common (compiled)."""

from typing import Final

OTHER: Final[int]  # 0: any other channel or reply
BOOK_UPDATE: Final[int]  # 1: an order-book diff / depth push
SUBSCRIPTION: Final[int]  # 2: subscribe / unsubscribe reply (success or error)
PONG: Final[int]  # 3: application-level pong

class WireError(ValueError):
    """A frame could not be decoded exactly; the message names venue, channel, field and byte."""

class WireScale:
    """Fixed-point description of one instrument's prices and sizes on the wire.

    tick = tick_units * 10**-price_decimals and lot = lot_units * 10**-size_decimals;
    a wire price becomes ``value * 10**price_decimals / tick_units`` ticks and must
    divide exactly (likewise sizes, unless ``floor_sizes``: a size finer than the lot is
    then rounded down to it, and one under a lot reads as 0, no level). With ``symbol`` set,
    decoders also check that the frame is for that instrument.
    """

    @property
    def price_decimals(self) -> int: ...
    @property
    def tick_units(self) -> int: ...
    @property
    def size_decimals(self) -> int: ...
    @property
    def lot_units(self) -> int: ...
    @property
    def symbol(self) -> bytes | None: ...
    @property
    def floor_sizes(self) -> bool: ...
    def __init__(
        self,
        price_decimals: int,
        tick_units: int,
        size_decimals: int,
        lot_units: int,
        symbol: str | bytes | None = None,
        floor_sizes: bool = False,
    ) -> None: ...
