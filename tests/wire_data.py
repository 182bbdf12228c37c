"""Recorded frames and instrument precisions from shared/data, for the wire tests and benchmarks."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

# `<url> <dir> <ts>` or `<ts>`, then optional `: <body>` (see shared/data/README.md)
_LINE = re.compile(r"^(?:(\S+) (<->|<-|->) )?([0-9.]+)(?:: (.*))?$")

ScaleArgs = tuple[int, int, int, int]  # price_decimals, tick_units, size_decimals, lot_units


def _lines(path: Path) -> Iterator[tuple[str | None, str | None, str]]:
    for line in path.read_text(encoding="utf-8").split("\n"):
        m = _LINE.match(line)
        if m and m.group(4) is not None:
            yield m.group(1), m.group(2), m.group(4)


def server_frames(path: Path) -> list[bytes]:
    """Every frame received from the server, in order, as the raw UTF-8 bytes."""
    return [body.encode() for url, _, body in _lines(path) if url is None]


def http_bodies(path: Path) -> list[tuple[str, bytes]]:
    """(url, body) of every HTTP response in a recording."""
    return [(url, body.encode()) for url, d, body in _lines(path) if url and d == "->"]


def channel_updates(path: Path, channel: str) -> list[bytes]:
    """Server frames of ``channel`` with event ``update``."""
    out = []
    for frame in server_frames(path):
        doc = json.loads(frame)
        if doc.get("channel") == channel and doc.get("event") == "update":
            out.append(frame)
    return out


def step_scale(step: str) -> tuple[int, int]:
    """'0.0001' -> (4, 1), '0.05' -> (2, 5): decimals and units of a price/size step."""
    sign, digits, exponent = Decimal(step).normalize().as_tuple()
    assert isinstance(exponent, int) and not sign
    units = int("".join(map(str, digits)))
    if exponent >= 0:
        return 0, units * 10**exponent
    return -exponent, units


def gate_spot_scales(shared: Path) -> dict[str, ScaleArgs]:
    """Pair -> scale from GATEIO.0 currency_pairs (precision, amount_precision)."""
    pairs: list[dict[str, Any]] = json.loads(http_bodies(shared / "cryptofeed" / "GATEIO.0")[0][1])
    return {p["id"]: (p["precision"], 1, p["amount_precision"], 1) for p in pairs}


# Gate spot books are finer than the order-entry precision: the 2021 recording carries
# amounts with up to 10 decimals whatever `amount_precision` says, and NEO_BTC / ZKS_ETH
# levels with 8-decimal prices above their 7 / 6-decimal `precision` (resting orders
# from before a precision change). A book that must stay exact uses this finer scale.
GATE_SPOT_BOOK_PRICE_DECIMALS = 8
GATE_SPOT_BOOK_SIZE_DECIMALS = 10


def gate_spot_book_scales(shared: Path) -> dict[str, ScaleArgs]:
    """Pair -> book scale: the metadata precision, widened to what Gate books carry."""
    return {
        pair: (max(p, GATE_SPOT_BOOK_PRICE_DECIMALS), 1, max(a, GATE_SPOT_BOOK_SIZE_DECIMALS), 1)
        for pair, (p, _, a, _) in gate_spot_scales(shared).items()
    }


def gate_futures_scales(shared: Path) -> dict[str, ScaleArgs]:
    """Contract -> scale from GATEIO_FUTURES.0 (order_price_round; sizes are whole contracts)."""
    contracts: list[dict[str, Any]] = json.loads(
        http_bodies(shared / "cryptofeed" / "GATEIO_FUTURES.0")[0][1]
    )
    return {c["name"]: (*step_scale(c["order_price_round"]), 0, 1) for c in contracts}


def symbol_of(frame: bytes) -> str:
    doc = json.loads(frame)
    return str(doc["result"]["s"])


def snapshot_symbol(url: str) -> str:
    m = re.search(r"(?:currency_pair|contract)=([A-Z0-9_]+)", url)
    assert m, url
    return m.group(1)


def scales(args: ScaleArgs, symbol: str | None = None) -> tuple[Any, Any]:
    """The compiled WireScale and the reference Scale of the same instrument."""
    from arb_core.wire.common import WireScale
    from reference.wire_common import Scale

    raw = symbol.encode() if symbol else None
    return WireScale(*args, symbol=raw), Scale(*args, symbol=raw)


def same_outcome(
    compiled: Any,
    reference: Any,
    frame: bytes,
    wire_scale: Any,
    ref_scale: Any,
    batch: Any,
) -> bool:
    """Run both decoders on ``frame``; assert they agree. True when it decoded.

    Both must reject together, or produce the same levels and header.
    """
    from arb_core.wire.common import WireError
    from reference.wire_common import WireError as RefWireError

    try:
        expected = reference(frame, ref_scale)
    except RefWireError:
        expected = None
    try:
        count = compiled(frame, wire_scale, batch)
    except WireError:
        assert expected is None, f"compiled rejected a valid frame: {frame!r}"
        return False
    assert expected is not None, f"compiled accepted a frame the reference rejects: {frame!r}"
    assert count == len(expected.rows), frame
    assert batch.levels() == expected.levels(), frame
    got = (batch.first_update_id, batch.last_update_id, batch.event_time_ms, bool(batch.is_snapshot))
    assert got == expected.header(), frame
    return True


# Any JSON value, for the members a venue's frames may carry beside the ones read: short text,
# wide integers, finite floats, shallow lists and objects.
json_text = st.text(st.characters(codec="utf-8"), max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | json_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(json_text, inner, max_size=3),
    max_leaves=8,
)
