"""Pure-Python reference of arb_core.wire.mexc, plus a small protobuf encoder for fixtures.

MEXC publishes no raw protobuf recording; tests build spot frames by encoding the
decoded examples (hummingbot's MessageToDict output, MEXC's rendered docs samples)
with ``encode_push`` using the ``PushDataV3ApiWrapper`` schema field numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reference.wire_common import (
    ASK,
    BID,
    BOOK_UPDATE,
    ERROR,
    INT64_MAX,
    MAX_DEPTH,
    MISSING,
    OTHER,
    PONG,
    SUBSCRIPTION,
    Decoded,
    JsonPrefix,
    Num,
    Obj,
    Scale,
    array_level,
    check_symbol,
    expect_string,
    fail,
    json_uint,
    levels,
    load_json,
    member,
    pairs,
    price,
    required,
    sides_in_order,
    size,
    string,
    uint_text,
)

CONTRACT_LEVEL = array_level(quoted=False, optional=1)  # [6859.5, 3251, 1]: order count optional
SPOT_REST_LEVEL = array_level(quoted=True)  # ["45995.47", "10.337165"]
SYMBOL, SEND_TIME = 3, 6
LIMIT_DEPTHS, AGGRE_DEPTHS = 303, 313
BODY_FIELDS = range(301, 316)

# ---------------------------------------------------------------------------
# Encoder (wire format only; enough for the push schema and for crafted fields)


def varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def tag(field: int, wire_type: int) -> bytes:
    return varint(field << 3 | wire_type)


def field_varint(field: int, value: int) -> bytes:
    return tag(field, 0) + varint(value)


def field_bytes(field: int, value: bytes | str) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return tag(field, 2) + varint(len(data)) + data


def _encode_levels(field: int, levels: Sequence[Mapping[str, str]]) -> bytes:
    out = b""
    for level in levels:
        item = b""
        if "price" in level:
            item += field_bytes(1, level["price"])
        if "quantity" in level:
            item += field_bytes(2, level["quantity"])
        out += field_bytes(field, item)
    return out


def encode_depths(body: Mapping[str, Any], aggre: bool) -> bytes:
    """PublicAggreDepthsV3Api / PublicLimitDepthsV3Api, fields in number order."""
    out = _encode_levels(1, body.get("asks", ())) + _encode_levels(2, body.get("bids", ()))
    if body.get("eventType"):
        out += field_bytes(3, body["eventType"])
    if aggre:
        out += field_bytes(4, body["fromVersion"]) + field_bytes(5, body["toVersion"])
        if "lastOrderCreateTime" in body:
            out += field_varint(6, int(body["lastOrderCreateTime"]))
    else:
        out += field_bytes(4, body["version"])
        if "lastOrderCreateTime" in body:
            out += field_varint(5, int(body["lastOrderCreateTime"]))
    return out


def encode_deals(body: Mapping[str, Any]) -> bytes:
    out = b""
    for deal in body.get("deals", ()):
        item = field_bytes(1, deal["price"]) + field_bytes(2, deal["quantity"])
        item += field_varint(3, int(deal["tradeType"])) + field_varint(4, int(deal["time"]))
        out += field_bytes(1, item)
    if body.get("eventType"):
        out += field_bytes(2, body["eventType"])
    return out


def encode_push(msg: Mapping[str, Any]) -> bytes:
    """``PushDataV3ApiWrapper`` from its MessageToDict form (camelCase proto names)."""
    out = b""
    if "channel" in msg:
        out += field_bytes(1, msg["channel"])
    if "symbol" in msg:
        out += field_bytes(3, msg["symbol"])
    if "symbolId" in msg:
        out += field_bytes(4, msg["symbolId"])
    if "createTime" in msg:
        out += field_varint(5, int(msg["createTime"]))
    if "sendTime" in msg:
        out += field_varint(6, int(msg["sendTime"]))
    if "publicLimitDepths" in msg:
        out += field_bytes(LIMIT_DEPTHS, encode_depths(msg["publicLimitDepths"], aggre=False))
    if "publicAggreDepths" in msg:
        out += field_bytes(AGGRE_DEPTHS, encode_depths(msg["publicAggreDepths"], aggre=True))
    if "publicAggreDeals" in msg:
        out += field_bytes(314, encode_deals(msg["publicAggreDeals"]))
    return out


# ---------------------------------------------------------------------------
# Decoder


class _Pb:
    """Cursor over protobuf bytes with the compiled reader's acceptance rules."""

    def __init__(self, data: bytes, start: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = start
        self.end = len(data) if end is None else end

    def more(self) -> bool:
        return self.pos < self.end

    def varint(self) -> int:
        value = shift = 0
        while True:
            if self.pos >= self.end:
                fail("truncated varint")
            byte = self.data[self.pos]
            if shift == 63 and byte > 1:
                fail("varint above 64 bits")
            value |= (byte & 0x7F) << shift
            self.pos += 1
            if byte < 0x80:
                return value
            shift += 7

    def tag(self) -> tuple[int, int]:
        key = self.varint()
        field, wire_type = key >> 3, key & 7
        if field == 0 or field > (1 << 29) - 1 or wire_type > 5:
            fail(f"invalid tag {key}")
        return field, wire_type

    def length(self) -> tuple[int, int]:
        size_ = self.varint()
        if size_ > self.end - self.pos:
            fail("length runs past the message")
        start = self.pos
        self.pos += size_
        return start, self.pos

    def skip(self, field: int, wire_type: int) -> None:
        open_groups: list[int] = []
        if wire_type == 4:
            fail("end-group without start")
        if wire_type == 3:
            open_groups.append(field)
        while True:
            if wire_type == 0:
                self.varint()
            elif wire_type in (1, 5):
                width = 8 if wire_type == 1 else 4
                if self.end - self.pos < width:
                    fail("truncated fixed field")
                self.pos += width
            elif wire_type == 2:
                self.length()
            if not open_groups:
                return
            while True:
                f, wire_type = self.tag()
                if wire_type == 4:
                    if f != open_groups[-1]:
                        fail("mismatched end-group")
                    open_groups.pop()
                    if not open_groups:
                        return
                elif wire_type == 3:
                    if len(open_groups) >= MAX_DEPTH:
                        fail("groups nested too deep")
                    open_groups.append(f)
                else:
                    break


def _expect(wire_type: int, want: int, where: str) -> None:
    if wire_type != want:
        fail(f"{where}: wire type {wire_type}, expected {want}")


def _text(raw: bytes) -> str:
    return raw.decode("latin-1")  # digit checks reject anything non-ASCII


def _item(pb: _Pb, scale: Scale, where: str) -> tuple[int, int]:
    values: dict[int, bytes] = {}
    while pb.more():
        field, wt = pb.tag()
        if field in (1, 2):
            _expect(wt, 2, where)
            if field in values:
                fail(f"{where}: field {field} twice")
            start, end = pb.length()
            values[field] = pb.data[start:end]
        else:
            pb.skip(field, wt)
    if 1 not in values or 2 not in values:
        fail(f"{where}: price and quantity are required")
    return price(_text(values[1]), scale, where), size(_text(values[2]), scale, where)


def _depths(pb: _Pb, scale: Scale, out: Decoded, aggre: bool) -> None:
    versions: dict[int, int] = {}
    while pb.more():
        field, wt = pb.tag()
        if field in (1, 2):
            _expect(wt, 2, "level")
            start, end = pb.length()
            out.rows.append((ASK if field == 1 else BID, *_item(_Pb(pb.data, start, end), scale, "level")))
        elif field == 4 or (aggre and field == 5):
            _expect(wt, 2, "version")
            if field in versions:
                fail(f"version field {field} twice")
            start, end = pb.length()
            versions[field] = uint_text(_text(pb.data[start:end]), "version")
        else:
            pb.skip(field, wt)
    if aggre:
        if 4 not in versions or 5 not in versions:
            fail("fromVersion and toVersion are required")
        out.first_update_id, out.last_update_id = versions[4], versions[5]
        if out.first_update_id > out.last_update_id:
            fail("fromVersion is above toVersion")
    else:
        if 4 not in versions:
            fail("version is required")
        out.first_update_id = out.last_update_id = versions[4]


def decode_spot_depth(frame: bytes, scale: Scale) -> Decoded:
    """``PushDataV3ApiWrapper`` with publicAggreDepths (313) or publicLimitDepths (303)."""
    data = bytes(frame)
    pb = _Pb(data)
    out = Decoded()
    symbol: bytes | None = None
    seen_body = seen_time = False
    while pb.more():
        field, wt = pb.tag()
        if field in (AGGRE_DEPTHS, LIMIT_DEPTHS):
            _expect(wt, 2, "depth body")
            if seen_body:
                fail("two depth bodies")
            seen_body = True
            start, end = pb.length()
            _depths(_Pb(data, start, end), scale, out, field == AGGRE_DEPTHS)
            out.is_snapshot = field == LIMIT_DEPTHS
        elif field == SEND_TIME:
            _expect(wt, 0, "sendTime")
            if seen_time:
                fail("sendTime twice")
            seen_time = True
            out.event_time_ms = pb.varint()
            if out.event_time_ms > INT64_MAX:
                fail("sendTime above int64")
        elif field == SYMBOL:
            _expect(wt, 2, "symbol")
            if symbol is not None:
                fail("symbol twice")
            start, end = pb.length()
            symbol = data[start:end]
        else:
            pb.skip(field, wt)
    if not seen_body:
        fail("no depth body")
    if scale.symbol is not None:
        check_symbol(symbol, scale, "symbol")
    return out


def spot_frame_symbol(frame: bytes) -> bytes:
    """The first ``symbol`` (3) of a push; fields before it are stepped over, none after read."""
    pb = _Pb(bytes(frame))
    while pb.more():
        field, wt = pb.tag()
        if field == SYMBOL:
            _expect(wt, 2, "symbol")
            start, end = pb.length()
            return pb.data[start:end]
        pb.skip(field, wt)
    fail("symbol missing")


def spot_push_body(frame: bytes) -> int:
    """Field number of the first body field (301..315) of a push, whatever its wire type; 0 if none."""
    pb = _Pb(bytes(frame))
    while pb.more():
        field, wt = pb.tag()
        if field in BODY_FIELDS:
            return field
        pb.skip(field, wt)
    return 0


def classify_spot(frame: bytes) -> int:
    """BOOK_UPDATE for a binary push whose body is a depth (303 limit, 313 aggre), else OTHER.

    A text frame (empty, or a JSON object: first byte ``{``, which no push starts with) is
    a reply whose kind its JSON tells; it is never a book update, so OTHER here.
    """
    data = bytes(frame)
    if not data or data[0] == ord("{"):
        return OTHER
    return BOOK_UPDATE if spot_push_body(data) in (LIMIT_DEPTHS, AGGRE_DEPTHS) else OTHER


def _contract_depth(obj: object, out: Decoded, scale: Scale, seen: set[str], allow_data: bool) -> None:
    keys = ["asks", "bids", "version"] + (["data"] if allow_data else [])
    for key in [k for k, _ in pairs(obj, "") if k in keys]:
        if key in seen:
            fail(f"{key} appears twice")
        seen.add(key)
        value = member(obj, key, "")
        if key == "version":
            out.first_update_id = out.last_update_id = json_uint(value, key)
        elif key == "data":
            if not isinstance(value, Obj):
                fail("data: expected an object")
            _contract_depth(value, out, scale, seen, False)
        else:
            levels(out, value, ASK if key == "asks" else BID, scale, CONTRACT_LEVEL, key)


def decode_futures_depth(frame: bytes, scale: Scale) -> Decoded:
    """Contract ``push.depth``: [price, vol, count] number levels, version, ts."""
    doc = load_json(frame)
    expect_string(doc, "channel", "push.depth")
    symbol = string(required(member(doc, "symbol", ""), "symbol"), "symbol")
    check_symbol(symbol.encode(), scale, "symbol")
    out = Decoded()
    ts = member(doc, "ts", "")
    if ts is not MISSING:
        out.event_time_ms = json_uint(ts, "ts")
    data = required(member(doc, "data", ""), "data")
    seen: set[str] = set()
    member(data, "version", "data")  # type and duplicate check
    _contract_depth(data, out, scale, seen, False)
    if "version" not in seen:
        fail("data.version missing")
    return out


def decode_futures_snapshot(body: bytes, scale: Scale) -> Decoded:
    """Contract REST depth, bare or inside {"success","code","data"}."""
    doc = load_json(body)
    member(doc, "data", "")  # must be an object
    out = Decoded(is_snapshot=True)
    seen: set[str] = set()
    _contract_depth(doc, out, scale, seen, True)
    for key in ("version", "asks", "bids"):
        if key not in seen:
            fail(f"{key} missing")
    return out


def decode_spot_snapshot(body: bytes, scale: Scale) -> Decoded:
    """Spot REST ``/api/v3/depth``: lastUpdateId as an integer or a decimal string."""
    doc = load_json(body)
    out = Decoded(is_snapshot=True)
    last = required(member(doc, "lastUpdateId", ""), "lastUpdateId")
    if isinstance(last, str) and not isinstance(last, Num):
        out.first_update_id = out.last_update_id = uint_text(string(last, "lastUpdateId"), "lastUpdateId")
    else:
        out.first_update_id = out.last_update_id = json_uint(last, "lastUpdateId")
    required(member(doc, "bids", ""), "bids")
    required(member(doc, "asks", ""), "asks")
    for key, side in sides_in_order(doc, {"asks": ASK, "bids": BID}):
        levels(out, member(doc, key, ""), side, scale, SPOT_REST_LEVEL, key)
    return out


def _contract_kind(channel: object) -> int:
    if channel == "push.depth":
        return BOOK_UPDATE
    if channel == "pong":
        return PONG
    if channel == "rs.error":
        return ERROR
    if isinstance(channel, str) and channel.startswith("rs."):
        return SUBSCRIPTION
    return OTHER


def classify_futures(frame: bytes) -> int:
    """Contract frame kind from its first ``channel``: BOOK_UPDATE for ``push.depth``, PONG for
    ``pong``, ERROR for ``rs.error``, SUBSCRIPTION for other ``rs.*`` replies, OTHER otherwise (or
    without a channel)."""
    doc = load_json(frame)
    channel = MISSING
    for k, v in pairs(doc, ""):
        if k == "channel":
            channel = v
            break
    return _contract_kind(channel)


def futures_frame_symbol(frame: bytes) -> bytes:
    """Top-level ``symbol`` of a (valid) contract push."""
    doc = load_json(frame)
    return string(required(member(doc, "symbol", ""), "symbol"), "symbol").encode()


# ---------------------------------------------------------------------------
# The contract routing helpers as they read: the first members only (see JsonPrefix)


def classify_futures_prefix(frame: bytes) -> int:
    """``classify_futures`` reading up to the first ``channel`` (a plain string) and no further."""
    reader = JsonPrefix(frame)
    reader.open_object()
    if not reader.seek(b"channel"):
        return OTHER
    return _contract_kind(reader.plain_string().decode())


def futures_frame_symbol_prefix(frame: bytes) -> bytes:
    """``futures_frame_symbol`` reading up to the first top-level ``symbol`` and no further."""
    reader = JsonPrefix(frame)
    reader.open_object()
    if not reader.seek(b"symbol"):
        fail("symbol: required field missing")
    return reader.plain_string()
