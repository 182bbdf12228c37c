"""Pure-Python reference of arb_core.wire.gateio: Gate.io depth frames -> levels + header."""

from __future__ import annotations

from reference.wire_common import (
    ASK,
    BID,
    BOOK_UPDATE,
    ERROR,
    MISSING,
    OTHER,
    PONG,
    SUBSCRIPTION,
    Decoded,
    Scale,
    array_level,
    check_symbol,
    expect_string,
    fail,
    json_uint,
    levels,
    load_json,
    member,
    object_level,
    pairs,
    required,
    sides_in_order,
    string,
)

SPOT_CHANNEL = "spot.order_book_update"
FUTURES_CHANNEL = "futures.order_book_update"
SPOT_LEVEL = array_level(quoted=True)  # ["7.883", "263.375"]
FUTURES_LEVEL = object_level("p", "s")  # {"p": "55.87", "s": 175}


def _update(frame: bytes, scale: Scale, futures: bool) -> Decoded:
    doc = load_json(frame)
    expect_string(doc, "channel", FUTURES_CHANNEL if futures else SPOT_CHANNEL)
    expect_string(doc, "event", "update")
    result = required(member(doc, "result", ""), "result")
    out = Decoded()
    t = member(result, "t", "result")
    if t is not MISSING:
        out.event_time_ms = json_uint(t, "result.t")
    full = member(result, "full", "result")
    if full is not MISSING:
        if not isinstance(full, bool):
            fail("result.full: expected true or false")
        out.is_snapshot = full
    symbol = string(required(member(result, "s", "result"), "result.s"), "result.s")
    check_symbol(symbol.encode(), scale, "result.s")
    out.first_update_id = json_uint(required(member(result, "U", "result"), "result.U"), "result.U")
    out.last_update_id = json_uint(required(member(result, "u", "result"), "result.u"), "result.u")
    # levels in frame order, whichever side comes first
    level = FUTURES_LEVEL if futures else SPOT_LEVEL
    for key, side in sides_in_order(result, {"b": BID, "a": ASK}):
        levels(out, member(result, key, "result"), side, scale, level, f"result.{key}")
    if out.first_update_id > out.last_update_id:
        fail("result.U is above result.u")
    return out


def _snapshot(body: bytes, scale: Scale, futures: bool) -> Decoded:
    doc = load_json(body)
    out = Decoded(is_snapshot=True)
    out.first_update_id = out.last_update_id = json_uint(required(member(doc, "id", ""), "id"), "id")
    required(member(doc, "bids", ""), "bids")
    required(member(doc, "asks", ""), "asks")
    level = FUTURES_LEVEL if futures else SPOT_LEVEL
    for key, side in sides_in_order(doc, {"bids": BID, "asks": ASK}):
        levels(out, member(doc, key, ""), side, scale, level, key)
    return out


def decode_spot_update(frame: bytes, scale: Scale) -> Decoded:
    """``spot.order_book_update`` event: [price, amount] string levels."""
    return _update(frame, scale, False)


def decode_futures_update(frame: bytes, scale: Scale) -> Decoded:
    """``futures.order_book_update`` event: {"p": price, "s": int contracts} levels."""
    return _update(frame, scale, True)


def decode_spot_snapshot(body: bytes, scale: Scale) -> Decoded:
    """REST ``/spot/order_book?with_id=true`` body."""
    return _snapshot(body, scale, False)


def decode_futures_snapshot(body: bytes, scale: Scale) -> Decoded:
    """REST ``/futures/usdt/order_book?with_id=true`` body."""
    return _snapshot(body, scale, True)


def frame_symbol(frame: bytes) -> bytes:
    """``result.s`` of a (valid) channel frame."""
    doc = load_json(frame)
    result = required(member(doc, "result", ""), "result")
    return string(required(member(result, "s", "result"), "result.s"), "result.s").encode()


def _first(doc: object, key: str) -> object:
    for k, v in pairs(doc, ""):
        if k == key:
            return v
    return MISSING


def classify(frame: bytes) -> int:
    """Frame kind from the first ``channel`` and ``event`` of a (valid) frame."""
    doc = load_json(frame)
    channel, event = _first(doc, "channel"), _first(doc, "event")
    if isinstance(channel, str):
        if channel.endswith(".pong"):
            return PONG
        if event == "update" and channel.endswith(".order_book_update"):
            return BOOK_UPDATE
    if event in ("subscribe", "unsubscribe"):
        error = _first(doc, "error")
        return ERROR if error is not MISSING and error is not None else SUBSCRIPTION
    return OTHER
