"""Typed Python API of arb_core.wire.mexc (compiled)."""

from typing_extensions import Buffer

from arb_core.book import DeltaBatch
from arb_core.wire.common import WireScale

def decode_spot_depth(frame: Buffer, scale: WireScale, batch: DeltaBatch) -> int:
    """Decode a spot protobuf depth push into ``batch``; returns the level count.

    ``publicAggreDepths`` (313): fromVersion/toVersion -> first/last_update_id;
    ``publicLimitDepths`` (303): version -> both ids, is_snapshot; sendTime ->
    event_time_ms. Raises WireError on anything that cannot be decoded exactly.
    """

def spot_frame_symbol(frame: Buffer) -> bytes:
    """The ``symbol`` field of a spot push as bytes, to route it before decoding."""

def spot_push_body(frame: Buffer) -> int:
    """Field number of the push's body (e.g. 313 publicAggreDepths), 0 when it has none."""

def decode_futures_depth(frame: Buffer, scale: WireScale, batch: DeltaBatch) -> int:
    """Decode a contract ``push.depth`` frame; version -> both ids, ts -> event_time_ms."""

def decode_spot_snapshot(body: Buffer, scale: WireScale, batch: DeltaBatch) -> int:
    """Decode a ``GET /api/v3/depth`` body; lastUpdateId -> both ids, is_snapshot."""

def decode_futures_snapshot(body: Buffer, scale: WireScale, batch: DeltaBatch) -> int:
    """Decode a ``GET /api/v1/contract/depth/{symbol}`` body (bare or enveloped)."""

def classify_futures(frame: Buffer) -> int:
    """BOOK_UPDATE, PONG, SUBSCRIPTION or OTHER (arb_core.wire.common) from ``channel``."""

def futures_frame_symbol(frame: Buffer) -> bytes:
    """The top-level ``symbol`` of a contract push as bytes, to route it before decoding."""
