"""Pure-Python reference of arb_core.wire.gateio: Gate.io depth frames -> levels + header."""

from __future__ import annotations

from reference.wire_common import (
    BOOK_UPDATE,
    MISSING,
    OTHER,
    PONG,
    SUBSCRIPTION,
    Decoded,
    Scale,
    array,
    check_symbol,
    fail,
    json_uint,
    load_json,
    member,
    pairs,
    number_text,
    price,
    required,
    size,
    string,
    uint_text,
)

SPOT_CHANNEL = "spot.order_book_update"
FUTURES_CHANNEL = "futures.order_book_update"
BID, ASK = 0, 1


def _spot_level(level: object, scale: Scale, where: str) -> tuple[int, int]:
    items = array(level, where)
    if len(items) != 2:
        fail(f"{where}: expected [price, amount]")
    return (
        price(string(items[0], where), scale, where),
        size(string(items[1], where), scale, where),
    )


def _futures_level(level: object, scale: Scale, where: str) -> tuple[int, int]:
    p = string(required(member(level, "p", where), f"{where}.p"), f"{where}.p")
    s = number_text(required(member(level, "s", where), f"{where}.s"), f"{where}.s")
    uint_text(s, f"{where}.s")  # contracts are a JSON integer
    return price(p, scale, f"{where}.p"), size(s, scale, f"{where}.s")


def _levels(out: Decoded, value: object, side: int, scale: Scale, futures: bool, where: str) -> None:
    decode = _futures_level if futures else _spot_level
    for i, level in enumerate(array(value, where)):
        out.rows.append((side, *decode(level, scale, f"{where}[{i}]")))


def _update(frame: bytes, scale: Scale, futures: bool) -> Decoded:
    doc = load_json(frame)
    channel = FUTURES_CHANNEL if futures else SPOT_CHANNEL
    if string(required(member(doc, "channel", ""), "channel"), "channel") != channel:
        fail(f"channel is not {channel}")
    if string(required(member(doc, "event", ""), "event"), "event") != "update":
        fail("event is not update")
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
    sides = {"b": BID, "a": ASK}
    for key in [k for k, _ in pairs(result, "") if k in sides]:
        _levels(out, member(result, key, "result"), sides[key], scale, futures, f"result.{key}")
    if out.first_update_id > out.last_update_id:
        fail("result.U is above result.u")
    return out


def _snapshot(body: bytes, scale: Scale, futures: bool) -> Decoded:
    doc = load_json(body)
    out = Decoded(is_snapshot=True)
    out.first_update_id = out.last_update_id = json_uint(required(member(doc, "id", ""), "id"), "id")
    required(member(doc, "bids", ""), "bids")
    required(member(doc, "asks", ""), "asks")
    sides = {"bids": BID, "asks": ASK}
    for key in [k for k, _ in pairs(doc, "") if k in sides]:
        _levels(out, member(doc, key, ""), sides[key], scale, futures, key)
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
        return SUBSCRIPTION
    return OTHER
