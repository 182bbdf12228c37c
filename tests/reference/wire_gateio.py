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
    JsonPrefix,
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


def _kind(channel: object, event: object, error: object) -> int:
    """Frame kind from the first ``channel``, ``event`` and ``error`` (MISSING when absent)."""
    if isinstance(channel, str):
        if channel.endswith(".pong"):
            return PONG
        if event == "update" and channel.endswith(".order_book_update"):
            return BOOK_UPDATE
    if event in ("subscribe", "unsubscribe"):
        return ERROR if error is not MISSING and error is not None else SUBSCRIPTION
    return OTHER


def classify(frame: bytes) -> int:
    """Frame kind from the first ``channel`` and ``event`` of a (valid) frame.

    PONG for a ``*.pong`` channel, BOOK_UPDATE for ``*.order_book_update`` with event
    ``update``, SUBSCRIPTION / ERROR for a (un)subscribe reply whose first ``error`` is
    null or absent / anything else, OTHER otherwise.
    """
    doc = load_json(frame)
    return _kind(_first(doc, "channel"), _first(doc, "event"), _first(doc, "error"))


# ---------------------------------------------------------------------------
# The routing helpers as they read: the first members only (see JsonPrefix)


def classify_prefix(frame: bytes) -> int:
    """``classify`` reading members in frame order and stopping once the kind is known.

    That is once the first ``channel`` and ``event`` are in, unless the event is a
    (un)subscribe reply, which also needs its first ``error`` (wherever it stands: anything
    but null makes the reply a refusal); the end of the object stops it too. Channel and
    event must be plain strings; later duplicates are stepped over like unknown members.
    """
    reader = JsonPrefix(frame)
    reader.open_object()
    values: dict[bytes, object] = {}
    for key in reader.keys():
        if key in (b"channel", b"event") and key not in values:
            values[key] = reader.plain_string().decode()
        elif key == b"error" and key not in values:
            values[key] = None if reader.is_null() else True
            reader.skip()
        else:
            reader.skip()
        event = values.get(b"event", MISSING)
        if b"channel" in values and event is not MISSING and (
                b"error" in values or event not in ("subscribe", "unsubscribe")):
            break
    return _kind(values.get(b"channel", MISSING), values.get(b"event", MISSING),
                 values.get(b"error", MISSING))


def frame_symbol_prefix(frame: bytes) -> bytes:
    """``frame_symbol`` reading up to the first ``result`` and in it up to the first ``s``."""
    reader = JsonPrefix(frame)
    reader.open_object()
    if not reader.seek(b"result"):
        fail("result: required field missing")
    reader.open_object()
    if not reader.seek(b"s"):
        fail("result.s: required field missing")
    return reader.plain_string()
