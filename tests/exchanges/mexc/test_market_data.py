"""arb.exchanges.mexc.market_data: frames sent, frames classified, scales, and the sequence rule.

MEXC publishes no raw websocket recording: protobuf pushes here come from the simulator's
encoder (arb.exchanges.mexc.sim), itself checked against the reference decoder in test_sim.py.
"""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from arb.exchanges.base import SnapshotRequest
from arb.exchanges.mexc import constants
from arb.exchanges.mexc.market_data import MexcFuturesMarketData, MexcSpotMarketData, SubscriptionError
from arb.exchanges.mexc.sim import MexcFuturesDepthEncoder, MexcSpotDepthEncoder
from arb.exchanges.models import FrameKind
from arb.instruments import Instrument
from arb.types import ExchangeName
from arb_core.book import APPLIED, ASK, BID, STALE, DeltaBatch, OrderBook, SequenceGapError
from arb_core.wire.common import WireError
from reference import wire_mexc as ref

SPOT = Instrument(
    exchange=ExchangeName.MEXC, symbol="BTC/USDC", venue_symbol="BTCUSDC", base="BTC", quote="USDC",
    tick_size=Decimal("0.01"), lot_size=Decimal("0.000001"), min_size=Decimal("0.000001"),
    min_notional=Decimal(1), taker_fee=Decimal("0.0005"), maker_fee=Decimal(0),
    price_decimals=2, size_decimals=6,
)
FUTURES = Instrument(
    exchange=ExchangeName.MEXC_FUTURES, symbol="BTC/USDT:USDT", venue_symbol="BTC_USDT", base="BTC",
    quote="USDT", tick_size=Decimal("0.1"), lot_size=Decimal(1), min_size=Decimal(1), min_notional=Decimal(0),
    contract_size=Decimal("0.0001"), taker_fee=Decimal("0.0002"), maker_fee=Decimal(0),
    price_decimals=1, size_decimals=0,
)


@pytest.fixture(scope="module")
def examples(shared_data: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("mexc_docs_examples.json", "mexc_spot_ws_pb_as_dict.hummingbot.json"):
        out.update(json.loads((shared_data / "examples" / name).read_bytes()))
    return out


# --- bad inputs ----------------------------------------------------------------------


def test_more_than_thirty_spot_topics_on_one_connection_is_refused() -> None:
    symbols = [f"C{i}USDT" for i in range(constants.WS_MAX_SUBSCRIPTIONS + 1)]
    with pytest.raises(SubscriptionError, match="31 depth subscriptions on one connection, the venue allows 30"):
        MexcSpotMarketData().subscribe_frames(symbols)
    assert len(MexcSpotMarketData().subscribe_frames(symbols[:30])) == 1
    assert len(MexcFuturesMarketData().subscribe_frames([f"C{i}_USDT" for i in range(31)])) == 31


@pytest.mark.parametrize("symbols", [["btcusdt"], ["BTC USDT"], [""], ["BTCUSDT", "BTCUSDT"], "BTCUSDT", [b"BTCUSDT"]])
def test_bad_symbols_are_refused_before_sending(symbols: Any) -> None:
    for dialect in (MexcSpotMarketData(), MexcFuturesMarketData()):
        with pytest.raises(SubscriptionError, match=dialect.venue):
            dialect.subscribe_frames(symbols)
        with pytest.raises(SubscriptionError):
            dialect.unsubscribe_frames(symbols)


def test_bad_construction_and_wrong_market_instruments() -> None:
    with pytest.raises(ValueError, match="interval '1s'"):
        MexcSpotMarketData(interval="1s")
    with pytest.raises(ValueError, match="snapshot_limit=5001"):
        MexcSpotMarketData(snapshot_limit=5001)
    with pytest.raises(ValueError, match="snapshot_limit=0"):
        MexcFuturesMarketData(snapshot_limit=0)
    with pytest.raises(ValueError, match="BTC/USDT:USDT belongs to mexc_futures"):
        MexcSpotMarketData().book_scale(FUTURES)
    with pytest.raises(ValueError, match="belongs to mexc"):
        MexcFuturesMarketData().book_scale(SPOT)
    with pytest.raises(SubscriptionError):
        MexcSpotMarketData().snapshot_request("btcusdt")


@pytest.mark.parametrize("frame", [b"{", b'{"id":1,"code":0,"msg":', b"{not json}"])
def test_malformed_spot_text_raises_wire_error(frame: bytes) -> None:
    with pytest.raises(WireError, match="mexc spot"):
        MexcSpotMarketData().classify(frame)


def test_malformed_frames_and_unknown_json() -> None:
    spot = MexcSpotMarketData()
    assert spot.classify(b"") == FrameKind.OTHER
    assert spot.classify(b'{"event":"x"}') == FrameKind.OTHER  # JSON, but not a reply
    with pytest.raises(WireError):
        spot.classify(b"\x0a\x05ab")  # truncated protobuf field
    futures = MexcFuturesMarketData()
    with pytest.raises(WireError):
        futures.classify(b"[1,2]")


def test_pong_check_rejects_long_or_binary_frames() -> None:
    spot, futures = MexcSpotMarketData(), MexcFuturesMarketData()
    assert not spot.is_pong(b"")
    assert not spot.is_pong(b'{"id":0,"code":0,"msg":"PONG"}' + b" " * 100)
    assert not spot.is_pong(b'\x0a{"id":0,"code":0,"msg":"PONG"}')
    assert not spot.is_pong(b'{"id":0,"code":0,"msg":"spot@public.aggre.depth.v3.api.pb@100ms@BTCUSDT"}')
    assert not futures.is_pong(b'{"channel":"push.depth","data":{}}')


# --- frames sent ---------------------------------------------------------------------


def test_spot_frames_are_the_documented_ones() -> None:
    spot = MexcSpotMarketData()
    assert spot.venue == "mexc" and spot.ws_url == "wss://wbs-api.mexc.com/ws"
    assert not spot.snapshot_in_first_push
    assert spot.subscribe_frames(["BTCUSDT"]) == [
        '{"method":"SUBSCRIPTION","params":["spot@public.aggre.depth.v3.api.pb@100ms@BTCUSDT"],"id":1}'
    ]
    assert spot.unsubscribe_frames(["BTCUSDT", "ETHUSDT"]) == [
        '{"method":"UNSUBSCRIPTION","params":["spot@public.aggre.depth.v3.api.pb@100ms@BTCUSDT",'
        '"spot@public.aggre.depth.v3.api.pb@100ms@ETHUSDT"],"id":2}'
    ]
    assert spot.subscribe_frames([]) == []
    assert spot.ping_frame() == '{"method":"PING"}'
    assert MexcSpotMarketData("ws://127.0.0.1:9/ws", interval="10ms").subscribe_frames(["X1USDT"]) == [
        '{"method":"SUBSCRIPTION","params":["spot@public.aggre.depth.v3.api.pb@10ms@X1USDT"],"id":1}'
    ]
    assert MexcSpotMarketData("ws://127.0.0.1:9/ws").ws_url == "ws://127.0.0.1:9/ws"


def test_futures_frames_are_the_documented_ones() -> None:
    futures = MexcFuturesMarketData()
    assert futures.venue == "mexc_futures" and futures.ws_url == "wss://contract.mexc.com/edge"
    assert futures.subscribe_frames(["BTC_USDT", "ETH_USDT"]) == [
        '{"method":"sub.depth","param":{"symbol":"BTC_USDT","compress":false}}',  # merged increments skip versions
        '{"method":"sub.depth","param":{"symbol":"ETH_USDT","compress":false}}',
    ]
    assert futures.unsubscribe_frames(["BTC_USDT"]) == ['{"method":"unsub.depth","param":{"symbol":"BTC_USDT"}}']
    assert futures.ping_frame() == '{"method":"ping"}'


def test_snapshot_requests() -> None:
    assert MexcSpotMarketData().snapshot_request("BTCUSDT") == SnapshotRequest(
        path="/api/v3/depth", params=(("symbol", "BTCUSDT"), ("limit", "1000")),
        limits=(("/api/v3/depth", 1), ("ip_weight", 1)),  # its endpoint's budget and the IP weight, as other reads
    )
    assert MexcSpotMarketData(snapshot_limit=None).snapshot_request("BTCUSDT").params == (("symbol", "BTCUSDT"),)
    assert MexcFuturesMarketData().snapshot_request("BTC_USDT") == SnapshotRequest(
        path="/api/v1/contract/depth/BTC_USDT", limits=(("/api/v1/contract/depth/{symbol}", 1),)
    )
    assert MexcFuturesMarketData(snapshot_limit=100).snapshot_request("BTC_USDT").params == (("limit", "100"),)


# --- frames received -----------------------------------------------------------------


def test_spot_classify_on_documented_replies_and_pushes(examples: dict[str, Any]) -> None:
    spot = MexcSpotMarketData()
    ack = json.dumps(examples["ws_subscribe_ack"], separators=(",", ":")).encode()
    pong = json.dumps(examples["ws_pong"], separators=(",", ":")).encode()
    refusal = (
        '{"id":0,"code":0,"msg":"Not Subscribed successfully! [spot@public.miniTicker.v3.api@BTCUSDT@UTC+0].  '
        'Reason\uff1a Blocked! "}'
    ).encode()
    assert spot.classify(memoryview(ack)) == FrameKind.ACK
    assert spot.classify(pong) == FrameKind.PONG and spot.is_pong(memoryview(pong))
    assert spot.classify(refusal) == FrameKind.ERROR
    assert spot.classify(b'{"id":3,"code":1,"msg":"Invalid request"}') == FrameKind.ERROR
    assert spot.classify(ref.encode_push(examples["aggre_depth_push"])) == FrameKind.BOOK_UPDATE
    assert spot.classify(ref.encode_push(examples["aggre_deals_push"])) == FrameKind.OTHER
    push = MexcSpotDepthEncoder(SPOT).push([(BID, 1, 1)], 5, 6, 7)
    assert spot.classify(memoryview(push)) == FrameKind.BOOK_UPDATE
    assert spot.frame_symbol(memoryview(push)) == b"BTCUSDC"


def test_futures_classify_on_documented_frames(examples: dict[str, Any]) -> None:
    futures = MexcFuturesMarketData()
    push = json.dumps(examples["contract_ws_push_depth"], separators=(",", ":")).encode()
    assert futures.classify(push) == FrameKind.BOOK_UPDATE
    assert futures.frame_symbol(memoryview(push)) == b"BTC_USDT"
    pong = b'{"channel":"pong","data":1587453241453}'
    assert futures.classify(pong) == FrameKind.PONG and futures.is_pong(pong)
    ack = b'{"channel":"rs.sub.depth","data":"success","ts":1587442022003}'
    assert futures.classify(ack) == FrameKind.ACK
    error = b'{"channel":"rs.error","data":"contract FOO_USDT does not exist","ts":1}'
    assert futures.classify(error) == FrameKind.ERROR  # a refused subscription: a venue error


def test_error_reasons_leave_out_what_differs_per_frame() -> None:
    spot, futures = MexcSpotMarketData(), MexcFuturesMarketData()
    assert spot.error_reason(b'{"id":3,"code":1,"msg":"Invalid request"}') == "1 Invalid request"
    assert spot.error_reason(memoryview(b'{"id":4,"code":1,"msg":"Invalid request"}')) == "1 Invalid request"
    assert futures.error_reason(b'{"channel":"rs.error","data":"contract not exists","ts":1}') == '"contract not exists"'
    assert futures.error_reason(b'{"channel":"rs.error","data":"contract not exists","ts":2}') == '"contract not exists"'
    assert spot.error_reason(b'{"id":3,') == futures.error_reason(b"[1,2]") == ""


def test_book_scales_follow_the_instrument_grid(examples: dict[str, Any]) -> None:
    scale = MexcSpotMarketData().book_scale(SPOT)
    assert (scale.price_decimals, scale.tick_units, scale.size_decimals, scale.lot_units, scale.symbol) == (
        2, 1, 6, 1, b"BTCUSDC")
    batch = DeltaBatch()
    MexcSpotMarketData.decode_update(ref.encode_push(examples["aggre_depth_push"]), scale, batch)
    assert batch.levels() == [(ASK, 11519874, 68865), (BID, 11483884, 101)]
    fscale = MexcFuturesMarketData().book_scale(FUTURES)
    assert (fscale.price_decimals, fscale.tick_units, fscale.size_decimals, fscale.lot_units) == (1, 1, 0, 1)
    snapshot = examples["contract_depth_snapshot_GET_api_v1_contract_depth"]
    body = json.dumps({"success": True, "code": 0, "data": snapshot}).encode()
    MexcFuturesMarketData().decode_snapshot(body, fscale, batch)
    assert batch.levels()[:2] == [(ASK, 39685, 121), (ASK, 39686, 160)]
    push = json.dumps(examples["contract_ws_push_depth"]).encode()
    assert MexcFuturesMarketData.decode_update(push, fscale, batch) == 1
    assert batch.levels() == [(ASK, 68595, 3251)] and batch.first_update_id == batch.last_update_id == 96801927
    half = MexcFuturesMarketData().book_scale(msgspec.structs.replace(FUTURES, tick_size=Decimal("0.5")))
    assert (half.price_decimals, half.tick_units) == (1, 5)
    assert MexcFuturesMarketData.decode_update(push, half, batch) == 1 and batch.levels() == [(ASK, 13719, 3251)]
    with pytest.raises(WireError, match="not a whole number of ticks"):
        MexcFuturesMarketData().decode_snapshot(body, half, batch)  # 3968.6 is off a 0.5 grid


def test_a_spot_quantity_finer_than_the_order_grid_is_rounded_down(examples: dict[str, Any]) -> None:
    """MEXC's docs show BTCUSDT depth quantities with 8 decimals ("0.21976424"); on a 6-decimal
    grid one such level refused the whole frame, and the book resynced without end."""
    scale = MexcSpotMarketData().book_scale(SPOT)
    assert scale.floor_sizes and not MexcFuturesMarketData().book_scale(FUTURES).floor_sizes
    push = copy.deepcopy(examples["aggre_depth_push"])
    depths = push["publicAggreDepths"]
    depths["asks"], depths["bids"] = [{"price": "93180.18", "quantity": "0.21976424"}], []
    batch = DeltaBatch()
    MexcSpotMarketData.decode_update(ref.encode_push(push), scale, batch)
    assert batch.levels() == [(ASK, 9318018, 219764)]


# --- the sequence rule through OrderBook.apply_batch --------------------------------


def _spot_book(version: int) -> tuple[OrderBook, DeltaBatch, Any]:
    dialect = MexcSpotMarketData()
    encoder = MexcSpotDepthEncoder(SPOT)
    scale = dialect.book_scale(SPOT)
    batch = DeltaBatch()
    book = OrderBook("mexc BTCUSDC")
    dialect.decode_snapshot(encoder.snapshot([(100, 5)], [(110, 5)], version, 1), scale, batch)
    book.apply_snapshot(batch, 1)

    def apply(levels: list[tuple[int, int, int]], first: int, last: int) -> int:
        dialect.decode_update(encoder.push(levels, first, last, 2), scale, batch)
        return book.apply_batch(batch, 2)

    return book, batch, apply


def test_spot_versions_map_onto_the_book_rule() -> None:
    book, _, apply = _spot_book(1000)
    assert apply([(BID, 99, 1)], 990, 999) == STALE  # toVersion < lastUpdateId: dropped
    assert apply([(BID, 99, 1)], 995, 1000) == STALE  # ends at the snapshot: already in it
    assert book.depth(BID) == 1
    assert apply([(BID, 99, 1)], 998, 1003) == APPLIED  # straddles the snapshot version: applied
    assert apply([(ASK, 111, 2)], 1004, 1004) == APPLIED  # fromVersion == previous toVersion + 1
    assert book.last_update_id == 1004 and book.top(BID, 2) == [(100, 5), (99, 1)]
    with pytest.raises(SequenceGapError):
        apply([(ASK, 112, 2)], 1006, 1007)  # 1005 missing
    assert not book.in_sync


def test_spot_first_push_after_a_too_old_snapshot_is_a_gap() -> None:
    _, _, apply = _spot_book(1000)
    with pytest.raises(SequenceGapError):
        apply([(BID, 99, 1)], 1002, 1005)


def test_futures_version_must_grow_by_one() -> None:
    dialect = MexcFuturesMarketData()
    encoder = MexcFuturesDepthEncoder(FUTURES)
    scale = dialect.book_scale(FUTURES)
    batch = DeltaBatch()
    book = OrderBook("mexc_futures BTC_USDT")
    dialect.decode_snapshot(encoder.snapshot([(100, 5)], [(110, 5)], 50, 1), scale, batch)
    book.apply_snapshot(batch, 1)

    def apply(version: int) -> int:
        dialect.decode_update(encoder.push([(BID, 101, version)], version, 2).encode(), scale, batch)
        return book.apply_batch(batch, 2)

    assert apply(49) == STALE and apply(50) == STALE
    assert apply(51) == APPLIED and apply(52) == APPLIED
    assert book.best_bid() == (101, 52)
    with pytest.raises(SequenceGapError):
        apply(54)
