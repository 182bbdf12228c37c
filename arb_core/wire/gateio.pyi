"""Typed Python API of arb_core.wire.gateio (compiled)."""

from typing_extensions import Buffer

from arb_core.book import DeltaBatch
from arb_core.wire.common import WireScale

def decode_spot_update(frame: Buffer, scale: WireScale, batch: DeltaBatch) -> int:
    """Decode a ``spot.order_book_update`` event into ``batch``; returns the level count.

    U -> first_update_id, u -> last_update_id, t -> event_time_ms, ``full: true`` ->
    is_snapshot. Raises WireError on anything that cannot be decoded exactly.
    """

def decode_futures_update(frame: Buffer, scale: WireScale, batch: DeltaBatch) -> int:
    """Decode a ``futures.order_book_update`` event (levels ``{"p": str, "s": int}``)."""

def decode_spot_snapshot(body: Buffer, scale: WireScale, batch: DeltaBatch) -> int:
    """Decode a ``GET /spot/order_book?with_id=true`` body; id -> both ids, is_snapshot."""

def decode_futures_snapshot(body: Buffer, scale: WireScale, batch: DeltaBatch) -> int:
    """Decode a ``GET /futures/usdt/order_book?with_id=true`` body (``{"p","s"}`` levels)."""

def frame_symbol(frame: Buffer) -> bytes:
    """``result.s`` of a channel frame as bytes, to route it to its book before decoding."""

def classify(frame: Buffer) -> int:
    """BOOK_UPDATE, PONG, SUBSCRIPTION or OTHER (arb_core.wire.common) from channel/event."""
