"""arb_core.wire.mexc against reference.wire_mexc.

There is no raw MEXC protobuf recording: spot frames here are SYNTHESIZED by encoding
the decoded examples (hummingbot's MessageToDict output and MEXC's rendered docs
samples) with reference.wire_mexc.encode_push.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arb.exchanges.mexc.market_data import MexcSpotMarketData
from arb_core.book import ASK, BID, DeltaBatch, OrderBook
from arb_core.wire import mexc
from arb_core.wire.common import BOOK_UPDATE, ERROR, OTHER, PONG, SUBSCRIPTION, WireError, WireScale
from reference import book as ref_book
from reference import wire_mexc as ref
from reference.wire_common import Scale
from reference.wire_common import WireError as RefWireError
from wire_data import json_values, same_outcome, scales

BTC = (2, 1, 6, 1)  # BTCUSDC / BTCUSDT on MEXC: 0.01 price tick, 1e-6 quantity


@pytest.fixture(scope="module")
def examples(shared_data: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("mexc_docs_examples.json", "mexc_spot_ws_pb_as_dict.hummingbot.json"):
        out.update(json.loads((shared_data / "examples" / name).read_bytes()))
    return out


def _rendered_to_proto(rendered: dict[str, Any], body: str) -> dict[str, Any]:
    """MEXC's docs render pushes in lower case (asksList, sendtime); map to proto names."""
    depth = rendered[body.lower()]
    out = {"channel": rendered["channel"], "symbol": rendered["symbol"],
           "sendTime": rendered["sendtime"]}
    out[body] = {"asks": depth["asksList"], "bids": depth["bidsList"],
                 "eventType": depth["eventtype"]}
    for key in ("fromVersion", "toVersion", "version"):
        if key in depth:
            out[body][key] = depth[key]
    return out


@pytest.fixture(scope="module")
def spot_frames(examples: dict[str, Any]) -> dict[str, bytes]:
    """Synthesized protobuf pushes built from the published decoded examples."""
    docs_aggre = _rendered_to_proto(examples["ws_aggre_depth_push_rendered"], "publicIncreaseDepths")
    docs_aggre["publicAggreDepths"] = docs_aggre.pop("publicIncreaseDepths")
    return {
        "hummingbot_aggre": ref.encode_push(examples["aggre_depth_push"]),
        "hummingbot_deals": ref.encode_push(examples["aggre_deals_push"]),
        "docs_aggre": ref.encode_push(docs_aggre),
        "docs_limit": ref.encode_push(
            _rendered_to_proto(examples["ws_limit_depth_push_rendered"], "publicLimitDepths")),
    }


def test_synthesized_spot_pushes_decode_like_reference(spot_frames: dict[str, bytes]) -> None:
    batch = DeltaBatch()
    assert same_outcome(mexc.decode_spot_depth, ref.decode_spot_depth, spot_frames["hummingbot_aggre"],
                        *scales(BTC, "BTCUSDC"), batch)
    assert batch.levels() == [(ASK, 11519874, 68865), (BID, 11483884, 101)]  # asks are field 1
    assert (batch.first_update_id, batch.last_update_id, batch.event_time_ms, batch.is_snapshot) == (
        17521975448, 17521975455, 1755973885809, False)
    assert same_outcome(mexc.decode_spot_depth, ref.decode_spot_depth, spot_frames["docs_aggre"],
                        *scales(BTC, "BTCUSDT"), batch)
    assert batch.levels() == [(BID, 9287758, 0)]
    assert same_outcome(mexc.decode_spot_depth, ref.decode_spot_depth, spot_frames["docs_limit"],
                        *scales((2, 1, 8, 1), "BTCUSDT"), batch)
    assert batch.is_snapshot and batch.first_update_id == batch.last_update_id == 36913565463
    assert batch.levels() == [(ASK, 9318018, 21976424), (BID, 9317998, 282651000)]
    assert mexc.spot_frame_symbol(spot_frames["docs_limit"]) == b"BTCUSDT"
    assert mexc.spot_push_body(spot_frames["hummingbot_aggre"]) == 313
    assert mexc.spot_push_body(spot_frames["docs_limit"]) == 303
    assert mexc.spot_push_body(spot_frames["hummingbot_deals"]) == 314
    with pytest.raises(WireError, match="publicAggreDepths.*required field missing"):
        mexc.decode_spot_depth(spot_frames["hummingbot_deals"], WireScale(*BTC), batch)


def test_spot_push_precision_and_symbol_are_checked(spot_frames: dict[str, bytes]) -> None:
    batch = DeltaBatch()
    with pytest.raises(WireError, match=r"mexc spot.*asks\[0\] at byte 83: more decimals"):
        mexc.decode_spot_depth(spot_frames["hummingbot_aggre"], WireScale(2, 1, 5, 1), batch)
    with pytest.raises(WireError, match="symbol.*unexpected value"):
        mexc.decode_spot_depth(spot_frames["hummingbot_aggre"], WireScale(*BTC, b"BTCUSDT"), batch)


def _push(body: bytes, extra: bytes = b"") -> bytes:
    return ref.field_bytes(3, "BTCUSDT") + extra + ref.field_bytes(313, body)


def _item(price: bytes | str, qty: bytes | str) -> bytes:
    return ref.field_bytes(1, price) + ref.field_bytes(2, qty)


VERSIONS = ref.field_bytes(4, "7") + ref.field_bytes(5, "9")


def test_unknown_fields_of_every_wire_type_are_skipped() -> None:
    unknown = (ref.field_varint(7, 2**64 - 1) + ref.tag(8, 1) + b"\x01" * 8 + ref.tag(9, 5) + b"\x02" * 4
               + ref.field_bytes(10, b"\xff\x00") + ref.tag(11, 3) + ref.field_varint(1, 5)
               + ref.tag(12, 3) + ref.tag(12, 4) + ref.tag(11, 4) + ref.field_bytes(302, b"x"))
    body = ref.field_bytes(2, _item("1.5", "2") + unknown) + unknown + VERSIONS + ref.field_varint(6, 3)
    frame = _push(body, unknown)
    batch = DeltaBatch()
    assert same_outcome(mexc.decode_spot_depth, ref.decode_spot_depth, frame, *scales((1, 1, 0, 1)),
                        batch)
    assert batch.levels() == [(BID, 15, 2)]


@pytest.mark.parametrize("frame, fragment", [
    (_push(ref.field_bytes(2, _item("1.5", "2")) + ref.field_bytes(4, "7")), "toVersion"),
    (_push(ref.field_bytes(2, _item("1.5", "2")) + ref.field_bytes(4, "9") + ref.field_bytes(5, "7")),
     "fromVersion.*above"),
    (_push(ref.field_bytes(2, ref.field_bytes(1, "1.5")) + VERSIONS), "bids.*required"),
    (_push(ref.field_bytes(2, _item("1.55", "2")) + VERSIONS), "more decimals"),
    (_push(ref.field_bytes(2, _item("-1.5", "2")) + VERSIONS), "malformed"),
    (_push(ref.field_bytes(2, _item("0", "2")) + VERSIONS), "price must be > 0"),
    (_push(ref.field_bytes(2, _item("1.5", "2")) + ref.field_bytes(4, "x") + ref.field_bytes(5, "9")),
     "malformed"),
    (_push(ref.field_varint(2, 5) + VERSIONS), "wrong type"),
    (_push(VERSIONS) + ref.field_bytes(303, ref.field_bytes(4, "1")), "appears twice"),
    (_push(VERSIONS, ref.field_varint(6, 1) + ref.field_varint(6, 2)), "sendTime.*twice"),
    (_push(VERSIONS, ref.field_varint(6, 2**63)), "int64"),
    (_push(VERSIONS, ref.tag(5, 4)), "group"),
    (_push(VERSIONS, ref.tag(5, 3) + ref.tag(6, 4)), "group"),
    (_push(VERSIONS, b"\x07"), "invalid field number"),
    (_push(VERSIONS, b"\x80" * 11), "varint"),
    (_push(VERSIONS, ref.tag(20, 2) + ref.varint(1000)), "length"),
    (_push(VERSIONS) + b"\x00", "invalid field number"),
])
def test_bad_spot_pushes_are_rejected(frame: bytes, fragment: str) -> None:
    with pytest.raises(WireError, match=fragment):
        mexc.decode_spot_depth(frame, WireScale(1, 1, 0, 1), DeltaBatch())
    with pytest.raises(RefWireError):
        ref.decode_spot_depth(frame, Scale(1, 1, 0, 1))


def test_every_truncation_of_a_spot_push_is_rejected(spot_frames: dict[str, bytes]) -> None:
    frame = spot_frames["hummingbot_aggre"]
    batch = DeltaBatch()
    for end in range(len(frame)):
        outcome = same_outcome(mexc.decode_spot_depth, ref.decode_spot_depth, frame[:end],
                               *scales(BTC), batch)
        # a cut on a field boundary before the body is a valid push without depth
        assert not outcome


def test_contract_push_and_snapshots_decode_like_reference(examples: dict[str, Any]) -> None:
    batch = DeltaBatch()
    push = json.dumps(examples["contract_ws_push_depth"]).encode()
    assert same_outcome(mexc.decode_futures_depth, ref.decode_futures_depth, push,
                        *scales((1, 1, 0, 1), "BTC_USDT"), batch)
    assert batch.levels() == [(ASK, 68595, 3251)]
    assert (batch.first_update_id, batch.last_update_id, batch.event_time_ms) == (
        96801927, 96801927, 1587442022003)
    assert mexc.classify_futures(push) == BOOK_UPDATE
    assert mexc.futures_frame_symbol(push) == b"BTC_USDT"
    for reply, kind in ((b'{"channel":"rs.sub.depth","data":"success"}', SUBSCRIPTION),
                        (b'{"channel":"rs.error","data":"contract not exists"}', ERROR),
                        (b'{"channel":"rs.errors","data":"x"}', SUBSCRIPTION)):
        assert mexc.classify_futures(reply) == ref.classify_futures(reply) == kind
    snapshot = examples["contract_depth_snapshot_GET_api_v1_contract_depth"]
    for body in (json.dumps(snapshot).encode(),
                 json.dumps({"success": True, "code": 0, "data": snapshot}).encode()):
        assert same_outcome(mexc.decode_futures_snapshot, ref.decode_futures_snapshot, body,
                            *scales((1, 1, 0, 1)), batch)
        assert batch.is_snapshot and batch.last_update_id == 1
        assert batch.levels() == [(ASK, 39685, 121), (ASK, 39686, 160), (BID, 39684, 179), (BID, 39680, 914)]
    spot = examples["spot_depth_snapshot_GET_api_v3_depth"]
    assert same_outcome(mexc.decode_spot_snapshot, ref.decode_spot_snapshot, json.dumps(spot).encode(),
                        *scales((4, 1, 4, 1)), batch)
    assert batch.levels() == [(BID, 150000, 499990000), (ASK, 140000, 10000)]
    assert batch.last_update_id == 1112416


def test_ccxt_spot_depth_with_string_ids(shared_data: Path) -> None:
    extract = json.loads((shared_data / "examples" / "ccxt_static_fixtures_extract.json").read_bytes())
    body = json.dumps(extract["mexc_spot_depth_response"]).encode()
    batch = DeltaBatch()
    assert same_outcome(mexc.decode_spot_snapshot, ref.decode_spot_snapshot, body, *scales(BTC), batch)
    assert batch.last_update_id == 20453289489
    assert batch.levels() == [(BID, 4599547, 10337165), (ASK, 4599548, 13457322)]


CONTRACT = b'{"channel":"push.depth","data":{"asks":[[6859.5,3251,1]],"bids":[],"version":9},"symbol":"BTC_USDT","ts":1}'


@pytest.mark.parametrize("old, new", [
    (b"6859.5", b"6859.55"), (b"6859.5", b"-6859.5"), (b"6859.5", b"6.8595e3"), (b"6859.5", b'"6859.5"'),
    (b"3251,1", b"3251.5,1"), (b",1]", b",1,2]"), (b"[6859.5,3251,1]", b"[6859.5]"),
    (b'"version":9', b'"version":"9"'), (b',"version":9', b""), (b'"push.depth"', b'"push.deal"'),
    (b'"symbol":"BTC_USDT",', b""), (b',"ts":1', b',"ts":1,"ts":2'), (b"}", b"}}"),
])
def test_bad_contract_pushes_are_rejected(old: bytes, new: bytes) -> None:
    frame = CONTRACT.replace(old, new, 1)
    with pytest.raises(WireError, match="mexc contract push.depth"):
        mexc.decode_futures_depth(frame, WireScale(1, 1, 0, 1), DeltaBatch())
    assert not same_outcome(mexc.decode_futures_depth, ref.decode_futures_depth, frame,
                            *scales((1, 1, 0, 1)), DeltaBatch())


SPOT_REST = b'{"lastUpdateId":"71","bids":[["101.50","2"]],"asks":[],"timestamp":"1"}'


# (decoder, reference, frame, whether it decodes): a JSON escape is refused by the compiled
# decoders and the reference alike where the decoder reads text byte by byte, and is fine in a
# value stepped over.
@pytest.mark.parametrize("compiled, reference, frame, decodes", [
    (mexc.decode_futures_depth, ref.decode_futures_depth, CONTRACT.replace(b'"ts"', b'"x":"\\u00e9","ts"'), True),
    (mexc.decode_futures_depth, ref.decode_futures_depth, CONTRACT.replace(b'"ts"', b'"\\u0078":1,"ts"'), False),
    (mexc.decode_futures_depth, ref.decode_futures_depth, CONTRACT.replace(b'"version"', b'"versio\\u006e"'),
     False),
    (mexc.decode_futures_depth, ref.decode_futures_depth, CONTRACT.replace(b"push.depth", b"push\\u002edepth"),
     False),
    (mexc.decode_futures_depth, ref.decode_futures_depth, CONTRACT.replace(b"BTC_USDT", b"BTC\\u005fUSDT"), False),
    (mexc.decode_futures_snapshot, ref.decode_futures_snapshot,
     b'{"success":true,"code":0,"data":{"asks":[],"bids":[],"version":1,"\\u0078":0}}', False),
    (mexc.decode_spot_snapshot, ref.decode_spot_snapshot, SPOT_REST.replace(b'"1"}', b'"\\/1"}'), True),
    (mexc.decode_spot_snapshot, ref.decode_spot_snapshot, SPOT_REST.replace(b'"71"', b'"7\\u0031"'), False),
    (mexc.decode_spot_snapshot, ref.decode_spot_snapshot, SPOT_REST.replace(b'"2"', b'"\\u0032"'), False),
])
def test_escapes_are_refused_where_text_is_read_and_stepped_over_elsewhere(
    compiled: Callable[..., int], reference: Callable[..., object], frame: bytes, decodes: bool
) -> None:
    assert same_outcome(compiled, reference, frame, *scales((2, 1, 0, 1)), DeltaBatch()) == decodes
    if not decodes:
        with pytest.raises(RefWireError, match="escape in the"):
            reference(frame, Scale(2, 1, 0, 1))


def test_contract_frame_kinds() -> None:
    assert mexc.classify_futures(b'{"channel":"pong","data":1587453241453}') == PONG
    assert mexc.classify_futures(b'{"channel":"rs.sub.depth","data":"success","ts":1}') == SUBSCRIPTION
    assert mexc.classify_futures(b'{"channel":"push.deal","data":{}}') == OTHER
    assert mexc.classify_futures(b'{"data":1}') == OTHER
    for bad in (b"", b"[", b'{"channel":3}'):
        with pytest.raises(WireError):
            mexc.classify_futures(bad)


def test_snapshot_then_pushes_through_the_book(spot_frames: dict[str, bytes]) -> None:
    """REST snapshot at version V, then aggre pushes continuing at V+1 (synthesized)."""
    wscale, rscale = scales(BTC, "BTCUSDT")
    rest = b'{"lastUpdateId":"100","bids":[["10.00","1"],["9.99","2"]],"asks":[["10.02","3"]]}'
    book, expected, batch = OrderBook("BTCUSDT"), ref_book.OrderBook("BTCUSDT"), DeltaBatch()
    mexc.decode_spot_snapshot(rest, wscale, batch)
    book.apply_snapshot(batch, 0)
    expected.apply_snapshot(ref.decode_spot_snapshot(rest, rscale), 0)
    version = 101
    for bid, bid_qty, ask, ask_qty in [("10.01", "0.5", "10.03", "1"), ("9.99", "0", "10.02", "0"),
                                       ("10.00", "2", "10.04", "1.25")]:
        msg = {"symbol": "BTCUSDT", "sendTime": "1", "publicAggreDepths": {
            "bids": [{"price": bid, "quantity": bid_qty}], "asks": [{"price": ask, "quantity": ask_qty}],
            "fromVersion": str(version), "toVersion": str(version + 1)}}
        frame = ref.encode_push(msg)
        mexc.decode_spot_depth(frame, wscale, batch)
        assert book.apply_batch(batch, 1) == expected.apply_batch(ref.decode_spot_depth(frame, rscale), 1)
        version += 2
    for side in (BID, ASK):
        assert book.top(side, 100) == expected.top(side, 100)
    assert book.last_update_id == 106 and book.best_ask() == (1003, 1_000_000)
    assert book.top(BID, 3) == [(1001, 500_000), (1000, 2_000_000)]


# ---------------------------------------------------------------------------
# Differential: generated protobuf and contract frames

decimal_text = st.one_of(
    st.builds(lambda w, f: w + ("." + f if f else ""), st.text("0123456789", min_size=1, max_size=21),
              st.text("0123456789", max_size=12)),
    st.binary(max_size=6).map(lambda b: b.decode("latin-1")),
)
unknown_field = st.one_of(
    st.builds(ref.field_varint, st.integers(7, 300), st.integers(0, 2**64 - 1)),
    st.builds(lambda f, b: ref.tag(f, 1) + b, st.integers(7, 300), st.binary(min_size=8, max_size=8)),
    st.builds(lambda f, b: ref.tag(f, 5) + b, st.integers(7, 300), st.binary(min_size=4, max_size=4)),
    st.builds(ref.field_bytes, st.integers(7, 300), st.binary(max_size=8)),
    st.builds(lambda f: ref.tag(f, 3) + ref.field_varint(1, 1) + ref.tag(f, 4), st.integers(7, 300)),
)


@st.composite
def spot_pushes(draw: st.DrawFn) -> bytes:
    body = b""
    for _ in range(draw(st.integers(0, 6))):
        item = ref.field_bytes(1, draw(decimal_text).encode("latin-1"))
        item += ref.field_bytes(2, draw(decimal_text).encode("latin-1"))
        if draw(st.booleans()):
            item += draw(unknown_field)
        body += ref.field_bytes(draw(st.sampled_from([1, 2])), item)
    first = draw(st.integers(0, 2**63))
    body += ref.field_bytes(4, str(first)) + ref.field_bytes(5, str(first + draw(st.integers(-1, 3))))
    if draw(st.booleans()):
        body += draw(unknown_field)
    fields = [ref.field_bytes(3, "BTCUSDT"), ref.field_varint(6, draw(st.integers(0, 2**64 - 1))),
              ref.field_bytes(draw(st.sampled_from([303, 313])), body), draw(unknown_field)]
    return b"".join(draw(st.permutations(fields)))


scale_args = st.tuples(st.integers(0, 10), st.sampled_from([1, 1, 5]), st.integers(0, 10),
                       st.sampled_from([1, 1, 10]))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=spot_pushes(), args=scale_args)
def test_generated_spot_pushes_match_reference(frame: bytes, args: tuple[int, int, int, int]) -> None:
    same_outcome(mexc.decode_spot_depth, ref.decode_spot_depth, frame, WireScale(*args),
                 Scale(*args), DeltaBatch(4))


json_number = st.one_of(st.integers(0, 10**20).map(str),
                        st.decimals(min_value=0, max_value=10**9, allow_nan=False, places=6).map(str),
                        st.sampled_from(["-1", "1e3", "0.0", "1.50"]))


@st.composite
def contract_pushes(draw: st.DrawFn) -> bytes:
    def level() -> str:
        items = [draw(json_number) for _ in range(draw(st.integers(1, 4)))]
        return "[" + ",".join(items) + "]"
    data = {'"asks"': "[" + ",".join(level() for _ in range(draw(st.integers(0, 4)))) + "]",
            '"bids"': "[" + ",".join(level() for _ in range(draw(st.integers(0, 4)))) + "]",
            '"version"': draw(st.one_of(st.integers(0, 2**64).map(str), st.just('"1"')))}
    keys = draw(st.permutations(list(data)))
    body = "{" + ",".join(f"{k}:{data[k]}" for k in keys) + "}"
    return f'{{"channel":"push.depth","data":{body},"symbol":"BTC_USDT","ts":5}}'.encode()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=contract_pushes(), args=scale_args)
def test_generated_contract_pushes_match_reference(frame: bytes, args: tuple[int, int, int, int]) -> None:
    same_outcome(mexc.decode_futures_depth, ref.decode_futures_depth, frame, WireScale(*args),
                 Scale(*args), DeltaBatch(4))


on_grid = st.tuples(st.integers(0, 10**9), st.sampled_from(["", ".0", ".5", ".25", ".50", ".00"])).map(
    lambda p: f'"{p[0]}{p[1]}"'
)
off_grid = st.sampled_from(['"007.50"', '"1e3"', '"-1"', '""', '"1."', "1.5", '"9223372036854775808"',
                            '"0.12345678"', '"0"'])


@st.composite
def spot_snapshots(draw: st.DrawFn) -> bytes:
    """``GET /api/v3/depth`` bodies: levels as string pairs on the scales' grids, ``lastUpdateId`` an
    integer or a string, members in any order, an unknown one now and then; in about a third of
    them one number, level or id a decoder must refuse or read with care."""
    numbers = [draw(on_grid) for _ in range(2 * draw(st.integers(0, 6)))]
    update_id = draw(st.one_of(st.integers(0, 2**63 - 1).map(str), st.integers(0, 2**63 - 1).map(lambda n: f'"{n}"')))
    flaw = draw(st.sampled_from(["", "", "number", "level", "id"]))
    if flaw == "number" and numbers:
        numbers[draw(st.integers(0, len(numbers) - 1))] = draw(off_grid)
    elif flaw == "level":
        numbers.append(draw(on_grid))  # a level of one number, or three
    elif flaw == "id":
        update_id = draw(st.sampled_from(['"0012"', '"-1"', '"x"', "1.5", "null", str(2**63), f'"{2**64}"']))
    levels = ["[" + ",".join(numbers[i:i + 2]) + "]" for i in range(0, len(numbers), 2)]
    split = draw(st.integers(0, len(levels)))
    members = {'"lastUpdateId"': update_id, '"bids"': "[" + ",".join(levels[:split]) + "]",
               '"asks"': "[" + ",".join(levels[split:]) + "]"}
    if draw(st.booleans()):
        members['"timestamp"'] = str(draw(st.integers(0, 2**45)))
    keys = draw(st.permutations(list(members)))
    return ("{" + ",".join(f"{k}:{members[k]}" for k in keys) + "}").encode()


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=spot_snapshots(), args=st.tuples(st.integers(0, 6), st.sampled_from([1, 1, 1, 5]), st.integers(0, 6),
                                             st.sampled_from([1, 1, 1, 10])))
def test_generated_spot_snapshots_match_reference(body: bytes, args: tuple[int, int, int, int]) -> None:
    same_outcome(mexc.decode_spot_snapshot, ref.decode_spot_snapshot, body, WireScale(*args),
                 Scale(*args), DeltaBatch(4))


# ---------------------------------------------------------------------------
# Differential: the routing helpers on generated valid frames, against both references (the
# whole document, and the first members / fields as the compiled helpers read them) and
# against the kind, body and symbol each frame was built with.

spot_symbols = st.from_regex(r"[A-Z0-9]{2,12}", fullmatch=True)
contract_symbols = st.from_regex(r"[A-Z0-9]{1,10}_(USDT|USDC|USD)", fullmatch=True)
# a field of the wrapper's future schema; never a group of field 15, whose tag is "{"
wrapper_unknown_field = unknown_field.filter(lambda raw: not raw.startswith(b"{"))


def _value(call: Callable[[bytes], object], frame: bytes) -> object:
    """What a routing helper returns, or "WireError" for the compiled or the reference one."""
    try:
        return call(frame)
    except (WireError, RefWireError):
        return "WireError"


@st.composite
def _depth_body(draw: st.DrawFn, aggre: bool) -> bytes:
    levels = st.lists(st.fixed_dictionaries({"price": st.decimals(0, 10**6, places=2).map(str),
                                             "quantity": st.decimals(0, 10**3, places=6).map(str)}), max_size=4)
    first = draw(st.integers(0, 2**62))
    body: dict[str, Any] = {"asks": draw(levels), "bids": draw(levels),
                            "eventType": draw(st.sampled_from(["", "spot@public.aggre.depth.v3.api.pb@100ms"]))}
    if aggre:
        body |= {"fromVersion": str(first), "toVersion": str(first + draw(st.integers(0, 9)))}
    else:
        body["version"] = str(first)
    return ref.encode_depths(body, aggre=aggre)


@st.composite
def spot_wrapper_pushes(draw: st.DrawFn) -> tuple[bytes, int, bytes | None]:
    """(push, body field number or 0, symbol or None): PushDataV3ApiWrapper messages with any
    body (aggre / limit depth, deals, or another of 301..315), fields in any order, the optional
    ones left out at random, and unknown fields a newer schema could add."""
    body_field = draw(st.sampled_from([313, 313, 303, 314, 301, 305, 311, 315, 0]))
    symbol = draw(spot_symbols)
    fields = [ref.field_bytes(1, f"spot@public.aggre.depth.v3.api.pb@100ms@{symbol}")]
    has_symbol = draw(st.sampled_from([True, True, True, False]))
    if has_symbol:
        fields.append(ref.field_bytes(3, symbol))
    if draw(st.booleans()):
        fields.append(ref.field_bytes(4, draw(st.from_regex(r"[0-9a-f]{32}", fullmatch=True))))
    for number in (5, 6):  # createTime, sendTime
        if draw(st.booleans()):
            fields.append(ref.field_varint(number, draw(st.integers(0, 2**63 - 1))))
    if body_field in (303, 313):
        fields.append(ref.field_bytes(body_field, draw(_depth_body(body_field == 313))))
    elif body_field == 314:
        deals = [{"price": "1.5", "quantity": "2", "tradeType": draw(st.sampled_from([1, 2])), "time": 1}]
        fields.append(ref.field_bytes(314, ref.encode_deals({"deals": deals, "eventType": "x"})))
    elif body_field:
        fields.append(ref.field_bytes(body_field, draw(st.binary(max_size=12))))
    fields += draw(st.lists(wrapper_unknown_field, max_size=2))
    push = b"".join(draw(st.permutations(fields)))
    return push, body_field, symbol.encode() if has_symbol else None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=spot_wrapper_pushes())
def test_spot_push_body_of_generated_pushes_matches_reference(case: tuple[bytes, int, bytes | None]) -> None:
    """spot_push_body() names the body a push was built with (0 without one), like the reference;
    the router's and the dialect's classification follow from it."""
    push, body, _ = case
    assert mexc.spot_push_body(push) == ref.spot_push_body(push) == body, push
    kind = BOOK_UPDATE if body in (303, 313) else OTHER
    assert ref.classify_spot(push) == MexcSpotMarketData().classify(push) == kind, push


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=spot_wrapper_pushes())
def test_spot_frame_symbol_of_generated_pushes_matches_reference(case: tuple[bytes, int, bytes | None]) -> None:
    """spot_frame_symbol() returns the symbol field wherever it stands and fails like the
    reference on a push without one."""
    push, _, symbol = case
    got = _value(mexc.spot_frame_symbol, push)
    assert got == _value(ref.spot_frame_symbol, push) == (symbol if symbol is not None else "WireError"), push




@st.composite
def _shuffled(draw: st.DrawFn, members: dict[str, Any]) -> dict[str, Any]:
    """``members`` in a drawn order."""
    return {k: members[k] for k in draw(st.permutations(list(members)))}


@st.composite
def contract_frames(draw: st.DrawFn) -> tuple[bytes, int, bytes | None]:
    """(frame, expected kind, top-level symbol or None): push.depth diffs, other pushes (some with
    a "symbol" inside their data too), pongs, rs.* replies and frames without a channel; members
    in any order, extra members, compact or spaced."""
    symbol = draw(contract_symbols)
    shape = draw(st.sampled_from(["push.depth", "push.depth.full", "push.deal", "push.ticker", "pong",
                                  "rs.sub.depth", "rs.unsub.depth", "rs.error", "rs.login", "no channel"]))
    members: dict[str, Any] = {}
    top_symbol: str | None = None
    if shape.startswith("push."):
        top_symbol = symbol
        level = st.tuples(st.decimals(0, 10**5, places=1).map(float), st.integers(0, 10**5),
                          st.integers(0, 50)).map(lambda t: list(t[: 2 + (t[2] % 2)]))
        if shape.startswith("push.depth"):
            data = {"asks": draw(st.lists(level, max_size=3)), "bids": draw(st.lists(level, max_size=3)),
                    "version": draw(st.integers(0, 2**62))}
        elif shape == "push.deal":
            data = {"M": 1, "O": 3, "T": 1, "p": 27000.5, "t": 1587442022003, "v": 2}
        else:
            data = {"symbol": draw(contract_symbols), "lastPrice": 6865.5, "volume24": 164586129}
        members |= {"channel": shape, "data": draw(_shuffled(data)), "symbol": symbol}
    elif shape == "pong":
        members |= {"channel": "pong", "data": draw(st.integers(0, 2**50))}
    elif shape == "no channel":
        members |= {"data": draw(json_values)}
    else:
        members |= {"channel": shape, "data": "success" if shape != "rs.error" else "invalid symbol"}
    if draw(st.booleans()):
        members["ts"] = draw(st.integers(0, 2**50))
    for key in draw(st.lists(st.sampled_from(["id", "code", "msg", "extra"]), unique=True, max_size=2)):
        members[key] = draw(json_values)
    kind = {"push.depth": BOOK_UPDATE, "pong": PONG, "rs.error": ERROR}.get(
        shape, SUBSCRIPTION if shape.startswith("rs.") else OTHER
    )
    spaced = draw(st.booleans())
    frame = json.dumps(draw(_shuffled(members)), separators=(", ", ": ") if spaced else (",", ":"),
                       ensure_ascii=draw(st.booleans()))
    return frame.encode(), kind, None if top_symbol is None else top_symbol.encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=contract_frames())
def test_classify_futures_of_generated_frames_matches_both_references(case: tuple[bytes, int, bytes | None]) -> None:
    """classify_futures() gives the kind a valid contract frame was built as, like both references."""
    frame, kind, _ = case
    got = mexc.classify_futures(frame)
    assert got == ref.classify_futures(frame) == ref.classify_futures_prefix(frame) == kind, frame


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=contract_frames())
def test_futures_frame_symbol_of_generated_frames_matches_both_references(
    case: tuple[bytes, int, bytes | None],
) -> None:
    """futures_frame_symbol() returns the top-level symbol wherever it stands (not one inside
    data) and fails like both references on a frame without one."""
    frame, _, symbol = case
    got = _value(mexc.futures_frame_symbol, frame)
    assert got == _value(ref.futures_frame_symbol, frame) == _value(ref.futures_frame_symbol_prefix, frame), frame
    assert got == (symbol if symbol is not None else "WireError"), frame
