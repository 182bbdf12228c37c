"""arb.exchanges.mexc.sim: the simulated venue speaks MEXC's wire format.

Conformance: simulated messages have the shape of the documented/recorded examples
(tests/shapes.py). Spot pushes decode identically with the compiled decoder and the
pure-Python reference, and re-encoding hummingbot's decoded push gives the reference
encoder's bytes. Round trips: snapshot + pushes rebuild the generated book exactly.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arb.exchanges.mexc import constants
from arb.exchanges.mexc.market_data import MexcFuturesMarketData, MexcSpotMarketData
from arb.exchanges.mexc.sim import (
    MexcFuturesDepthEncoder,
    MexcFuturesSimSession,
    MexcSpotDepthEncoder,
    MexcSpotSimSession,
    SimReply,
    varint,
)
from arb.exchanges.models import FrameKind
from arb.instruments import Instrument
from arb.types import ExchangeName
from arb_core.book import ASK, BID, DeltaBatch, OrderBook
from arb_core.wire import mexc as wire
from arb_core.wire.common import WireScale
from reference import wire_mexc as ref
from reference.wire_common import Scale
from shapes import assert_same_shape

SPOT = Instrument(
    exchange=ExchangeName.MEXC, symbol="BTC/USDC", venue_symbol="BTCUSDC", base="BTC", quote="USDC",
    tick_size=Decimal("0.01"), lot_size=Decimal("0.000001"), min_size=Decimal("0.000001"),
    min_notional=Decimal(1), taker_fee=Decimal("0.0005"), maker_fee=Decimal(0),
    price_decimals=2, size_decimals=6,
)
FUTURES = Instrument(
    exchange=ExchangeName.MEXC_FUTURES, symbol="BTC/USDT:USDT", venue_symbol="BTC_USDT", base="BTC",
    quote="USDT", tick_size=Decimal("0.5"), lot_size=Decimal(1), min_size=Decimal(1), min_notional=Decimal(0),
    contract_size=Decimal("0.0001"), taker_fee=Decimal("0.0002"), maker_fee=Decimal(0),
    price_decimals=1, size_decimals=0,
)
LEVEL_TUPLES = ("$.data.asks", "$.data.bids")


@pytest.fixture(scope="module")
def examples(shared_data: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("mexc_docs_examples.json", "mexc_spot_ws_pb_as_dict.hummingbot.json",
                 "ccxt_static_fixtures_extract.json"):
        out.update(json.loads((shared_data / "examples" / name).read_bytes()))
    return out


def _reply(reply: SimReply, i: int = 0) -> Any:
    return json.loads(reply.frames[i])


# --- bad inputs ----------------------------------------------------------------------


def test_encoders_refuse_other_markets_and_bad_settings() -> None:
    with pytest.raises(ValueError, match="mexc spot encoder: instrument BTC/USDT:USDT is mexc_futures"):
        MexcSpotDepthEncoder(FUTURES)
    with pytest.raises(ValueError, match="mexc contract encoder"):
        MexcFuturesDepthEncoder(SPOT)
    with pytest.raises(ValueError, match="interval '5ms'"):
        MexcSpotDepthEncoder(SPOT, interval="5ms")


@pytest.mark.parametrize(
    ("levels", "ids", "match"),
    [
        ([(BID, 1, 1)], (5, 4, 1), "from_version=5 is above to_version=4"),
        ([(BID, 1, 1)], (-1, 4, 1), "from_version=-1"),
        ([(BID, 1, 1)], (1, 2**63, 1), "to_version="),
        ([(BID, 1, 1)], (1, 2, -5), "send_time_ms=-5"),
        ([(BID, 0, 1)], (1, 2, 3), "price 0 must be a positive int64"),
        ([(BID, 1, -1)], (1, 2, 3), "size -1 must be a non-negative int64"),
        ([(BID, 2**63, 1)], (1, 2, 3), "price"),
        ([(2, 1, 1)], (1, 2, 3), "side 2 is neither"),
    ],
)
def test_bad_spot_push_inputs(levels: Any, ids: tuple[int, int, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MexcSpotDepthEncoder(SPOT).push(levels, *ids)


def test_bad_futures_and_snapshot_inputs() -> None:
    encoder = MexcFuturesDepthEncoder(FUTURES)
    with pytest.raises(ValueError, match="version=-1"):
        encoder.push([], -1, 1)
    with pytest.raises(ValueError, match="side 7"):
        encoder.push([(7, 1, 1)], 1, 1)
    with pytest.raises(ValueError, match="price 0"):
        encoder.snapshot([(0, 1)], [], 1, 1)
    with pytest.raises(ValueError, match="last_update_id=-2"):
        MexcSpotDepthEncoder(SPOT).snapshot([], [], -2, 1)


@pytest.mark.parametrize(
    ("frame", "msg"),
    [
        (b"not json", "Invalid request: JSON is malformed"),
        (b'{"params":[]}', "Invalid request: Object missing required field `method`"),
        (b'{"method":"SUBSCRIPTION","params":"x","id":4}', "Invalid request: Expected `array`"),
        (b'{"method":"HELLO","id":4}', "Invalid request: unknown method 'HELLO'"),
        (b'{"method":"SUBSCRIPTION","params":[],"id":4}', "Invalid request: params is empty"),
        (b'{"method":"UNSUBSCRIPTION","id":4}', "Invalid request: params is empty"),
    ],
)
def test_bad_spot_client_frames_get_an_error_code(frame: bytes, msg: str) -> None:
    session = MexcSpotSimSession(["BTCUSDC"])
    reply = session.handle(frame, 0)
    assert len(reply.frames) == 1 and not reply.subscribed and not session.topics
    doc = _reply(reply)
    assert doc["code"] == constants.WS_BAD_REQUEST_CODE and doc["msg"].startswith(msg)
    assert MexcSpotMarketData().classify(reply.frames[0].encode()) == FrameKind.ERROR


def test_unserved_spot_topics_are_refused_like_the_venue() -> None:
    session = MexcSpotSimSession(["BTCUSDC"])
    deals = "spot@public.aggre.deals.v3.api.pb@100ms@BTCUSDC"
    unknown = "spot@public.aggre.depth.v3.api.pb@100ms@FOOUSDT"
    good = "spot@public.aggre.depth.v3.api.pb@100ms@BTCUSDC"
    reply = session.handle(json.dumps({"method": "SUBSCRIPTION", "params": [deals, good, unknown], "id": 9}), 0)
    assert [_reply(reply, i) for i in range(2)] == [
        {"id": 9, "code": 0, "msg": good},
        {"id": 9, "code": 0, "msg": f"Not Subscribed successfully! [{deals},{unknown}].  Reason\uff1a Blocked! "},
    ]
    assert reply.subscribed == ("BTCUSDC",) and session.symbols == {"BTCUSDC"}
    client = MexcSpotMarketData()
    assert client.classify(reply.frames[0].encode()) == FrameKind.ACK
    assert client.classify(reply.frames[1].encode()) == FrameKind.ERROR


def test_spot_subscription_limit_per_connection() -> None:
    symbols = [f"C{i}USDT" for i in range(31)]
    session = MexcSpotSimSession(symbols)
    frames = [t for s in symbols for t in MexcSpotMarketData().subscribe_frames([s])]
    replies = [session.handle(f, 0) for f in frames]
    assert len(session.topics) == 30 and replies[29].subscribed == ("C29USDT",)
    last = replies[30]
    assert not last.subscribed and "Reason\uff1a Subscription limit exceeded!" in _reply(last)["msg"]


@pytest.mark.parametrize(
    ("frame", "data"),
    [
        (b"{", "invalid request: Input data was truncated"),
        (b'{"method":"sub.deal","param":{"symbol":"BTC_USDT"}}', "invalid request: unknown method 'sub.deal'"),
        (b'{"method":"sub.depth","param":{}}', "invalid request: param.symbol is missing"),
        (b'{"method":"sub.depth","param":{"symbol":"FOO_USDT"}}', "contract FOO_USDT does not exist"),
        (b'{"method":"sub.depth","param":{"symbol":5}}', "invalid request: Expected `str | null`"),
    ],
)
def test_bad_futures_client_frames_get_rs_error(frame: bytes, data: str) -> None:
    session = MexcFuturesSimSession(["BTC_USDT"])
    reply = session.handle(frame, 77)
    doc = _reply(reply)
    assert doc["channel"] == "rs.error" and doc["data"].startswith(data) and doc["ts"] == 77
    assert not reply.subscribed and not session.symbols
    assert MexcFuturesMarketData().classify(reply.frames[0].encode()) == FrameKind.ERROR


# --- protobuf writer and number text -------------------------------------------------


def test_varint_matches_the_reference_encoder() -> None:
    for value in (0, 1, 127, 128, 300, 2**31, 2**63 - 1, 2**64 - 1):
        assert varint(value) == ref.varint(value)
    with pytest.raises(ValueError, match="varint value -1"):
        varint(-1)


def test_numbers_are_plain_decimals_never_exponents() -> None:
    tiny = msgspec.structs.replace(SPOT, lot_size=Decimal("1E-18"), min_size=Decimal("1E-18"), size_decimals=18)
    body = json.loads(MexcSpotDepthEncoder(tiny).snapshot([(1, 1)], [(123456789, 10**18)], 1, 2))
    assert body["bids"] == [["0.01", "0.000000000000000001"]]
    assert body["asks"] == [["1234567.89", "1.000000000000000000"]]
    futures = json.loads(MexcFuturesDepthEncoder(FUTURES).push([(ASK, 7937, 0), (BID, 7936, 12)], 3, 4))
    assert futures["data"]["asks"] == [[3968.5, 0, 0]] and futures["data"]["bids"] == [[3968, 12, 1]]


# --- conformance with the documented / recorded examples -----------------------------


def test_spot_push_reencodes_hummingbots_decoded_example_bytewise(examples: dict[str, Any]) -> None:
    example = examples["aggre_depth_push"]
    body = example["publicAggreDepths"]
    levels = [(ASK, SPOT.price_to_ticks(Decimal(x["price"])), SPOT.size_to_lots(Decimal(x["quantity"])))
              for x in body["asks"]]
    levels += [(BID, SPOT.price_to_ticks(Decimal(x["price"])), SPOT.size_to_lots(Decimal(x["quantity"])))
               for x in body["bids"]]
    push = MexcSpotDepthEncoder(SPOT).push(
        levels, int(body["fromVersion"]), int(body["toVersion"]), int(example["sendTime"]))
    assert push == ref.encode_push(example)


def test_spot_push_decodes_the_same_with_compiled_and_reference() -> None:
    levels = [(ASK, 11519874, 68865), (ASK, 11519900, 0), (BID, 11483884, 101), (BID, 1, 10**12)]
    push = MexcSpotDepthEncoder(SPOT, interval="10ms").push(levels, 17521975448, 17521975455, 1755973885809)
    args = (*SPOT.wire_scale(),)
    batch = DeltaBatch()
    assert wire.decode_spot_depth(push, WireScale(*args, symbol=b"BTCUSDC"), batch) == 4
    expected = ref.decode_spot_depth(push, Scale(*args, symbol=b"BTCUSDC"))
    assert batch.levels() == expected.levels() == levels
    header = (batch.first_update_id, batch.last_update_id, batch.event_time_ms, bool(batch.is_snapshot))
    assert header == expected.header() == (17521975448, 17521975455, 1755973885809, False)
    assert wire.spot_frame_symbol(push) == ref.spot_frame_symbol(push) == b"BTCUSDC"
    assert wire.spot_push_body(push) == 313


def test_spot_snapshot_and_replies_have_the_recorded_shape(examples: dict[str, Any]) -> None:
    encoder = MexcSpotDepthEncoder(SPOT)
    body = encoder.snapshot([(4599547, 10337165), (4599546, 1)], [(4599548, 13457322)], 20453289489, 1704908526228)
    assert_same_shape(json.loads(body), examples["mexc_spot_depth_response"])
    assert body == (b'{"lastUpdateId":"20453289489","bids":[["45995.47","10.337165"],["45995.46","0.000001"]],'
                    b'"asks":[["45995.48","13.457322"]],"timestamp":"1704908526228"}')
    batch = DeltaBatch()
    MexcSpotMarketData.decode_snapshot(body, MexcSpotMarketData().book_scale(SPOT), batch)
    assert batch.last_update_id == 20453289489 and batch.is_snapshot
    session = MexcSpotSimSession(["BTCUSDT"])
    ack = session.handle(MexcSpotMarketData().subscribe_frames(["BTCUSDT"])[0], 0)
    assert_same_shape(_reply(ack), examples["ws_subscribe_ack"])
    pong = session.handle(MexcSpotMarketData().ping_frame(), 0)
    assert _reply(pong) == examples["ws_pong"]
    assert MexcSpotMarketData().is_pong(pong.frames[0].encode())


def test_futures_push_and_snapshot_have_the_documented_shape(examples: dict[str, Any]) -> None:
    encoder = MexcFuturesDepthEncoder(FUTURES)
    push = encoder.push([(ASK, 13719, 3251), (BID, 13717, 0)], 96801927, 1587442022003)
    assert_same_shape(json.loads(push), examples["contract_ws_push_depth"], tuples=LEVEL_TUPLES)
    assert push == ('{"channel":"push.depth","data":{"asks":[[6859.5,3251,1]],"bids":[[6858.5,0,0]],'
                    '"version":96801927},"symbol":"BTC_USDT","ts":1587442022003}')
    snapshot = json.loads(encoder.snapshot([(7936, 179), (7935, 914)], [(7937, 121)], 1, 1587442022003))
    documented = {"success": True, "code": 0, "data": examples["contract_depth_snapshot_GET_api_v1_contract_depth"]}
    assert_same_shape(snapshot, documented, tuples=LEVEL_TUPLES)


def test_futures_replies_have_the_documented_shape() -> None:
    session = MexcFuturesSimSession(["BTC_USDT"])
    client = MexcFuturesMarketData()
    pong = session.handle(client.ping_frame(), 1587453241453)
    assert _reply(pong) == {"channel": "pong", "data": 1587453241453} and client.is_pong(pong.frames[0].encode())
    sub = session.handle(client.subscribe_frames(["BTC_USDT"])[0], 5)
    assert_same_shape(_reply(sub), {"channel": "rs.sub.depth", "data": "success", "ts": 1587442022003})
    assert sub.subscribed == ("BTC_USDT",) and client.classify(sub.frames[0].encode()) == FrameKind.ACK
    assert session.handle(client.subscribe_frames(["BTC_USDT"])[0], 6).subscribed == ()
    unsub = session.handle(client.unsubscribe_frames(["BTC_USDT"])[0], 7)
    assert _reply(unsub) == {"channel": "rs.unsub.depth", "data": "success", "ts": 7}
    assert unsub.unsubscribed == ("BTC_USDT",) and not session.symbols
    assert session.handle(client.unsubscribe_frames(["BTC_USDT"])[0], 8).unsubscribed == ()


def test_spot_subscribe_and_unsubscribe_round_trip() -> None:
    session = MexcSpotSimSession(["BTCUSDT", "ETHUSDT"])
    client = MexcSpotMarketData()
    reply = session.handle(client.subscribe_frames(["BTCUSDT", "ETHUSDT"])[0].encode(), 0)
    assert reply.subscribed == ("BTCUSDT", "ETHUSDT") and client.classify(reply.frames[0].encode()) == FrameKind.ACK
    assert _reply(reply)["msg"] == ",".join(client.topic(s) for s in ("BTCUSDT", "ETHUSDT"))
    assert session.handle(client.subscribe_frames(["BTCUSDT"])[0], 0).subscribed == ()
    reply = session.handle(client.unsubscribe_frames(["BTCUSDT"])[0], 0)
    assert reply.unsubscribed == ("BTCUSDT",) and session.symbols == {"ETHUSDT"}
    assert _reply(reply) == {"id": 3, "code": 0, "msg": client.topic("BTCUSDT")}


# --- round trips through arb_core OrderBook -----------------------------------------

_prices = st.integers(min_value=1, max_value=10**9)
_sizes = st.integers(min_value=0, max_value=10**12)
_updates = st.lists(
    st.lists(st.tuples(st.sampled_from([BID, ASK]), _prices, _sizes), max_size=25), min_size=1, max_size=8)


def _levels_of(book: OrderBook) -> dict[tuple[int, int], int]:
    return {(side, p): s for side in (BID, ASK) for p, s in book.top(side, 10**6)}


def _uncrossed(model: dict[tuple[int, int], int]) -> bool:
    bids = [p for (side, p), s in model.items() if side == BID and s]
    asks = [p for (side, p), s in model.items() if side == ASK and s]
    return not bids or not asks or max(bids) < min(asks)


def _book_side(model: dict[tuple[int, int], int], side: int) -> list[tuple[int, int]]:
    return sorted(((p, s) for (sd, p), s in model.items() if sd == side and s), reverse=side == BID)


@settings(max_examples=60, deadline=None)
@given(updates=_updates, futures=st.booleans())
def test_snapshot_and_pushes_rebuild_the_generated_book(
    updates: list[list[tuple[int, int, int]]], futures: bool
) -> None:
    instrument = FUTURES if futures else SPOT
    dialect = MexcFuturesMarketData() if futures else MexcSpotMarketData()
    scale = dialect.book_scale(instrument)
    model = {(BID, 100): 5, (ASK, 200): 7}
    book, batch = OrderBook(instrument.symbol), DeltaBatch()
    version = 1000
    if futures:
        fenc = MexcFuturesDepthEncoder(instrument)
        body = fenc.snapshot(_book_side(model, BID), _book_side(model, ASK), version, 1)
    else:
        senc = MexcSpotDepthEncoder(instrument)
        body = senc.snapshot(_book_side(model, BID), _book_side(model, ASK), version, 1)
    dialect.decode_snapshot(body, scale, batch)
    book.apply_snapshot(batch, 0)
    for levels in updates:
        levels = list({(side, p): (side, p, s) for side, p, s in levels}.values())  # one entry per price
        candidate = dict(model)
        candidate.update({(side, p): s for side, p, s in levels})
        if not _uncrossed(candidate):
            continue
        model = {k: v for k, v in candidate.items() if v}
        if futures:
            version += 1
            frame: bytes = fenc.push(levels, version, 2).encode()
        else:
            frame = senc.push(levels, version + 1, version + len(levels) + 1, 2)
            version += len(levels) + 1
        assert dialect.classify(frame) == FrameKind.BOOK_UPDATE
        assert dialect.frame_symbol(frame) == instrument.venue_symbol.encode()
        dialect.decode_update(memoryview(frame), scale, batch)
        assert batch.levels() == [x for x in levels if x[0] == ASK] + [x for x in levels if x[0] == BID]  # asks first
        book.apply_batch(batch, 1)
    assert _levels_of(book) == model and book.last_update_id == version and book.in_sync
