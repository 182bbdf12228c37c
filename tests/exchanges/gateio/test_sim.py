"""arb/exchanges/gateio/sim.py: the simulated server speaks Gate's wire format (conformance, round trips)."""

from __future__ import annotations

import json
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapes import assert_same_shape, shape_differences
from wire_data import channel_updates, gate_futures_scales, gate_spot_book_scales, http_bodies, server_frames, snapshot_symbol, symbol_of

from arb.exchanges.gateio import constants
from arb.exchanges.gateio.market_data import GateioFuturesMarketData, GateioSpotMarketData
from arb.exchanges.gateio.sim import (
    FUTURES,
    SPOT,
    FuturesBookEncoder,
    GateioSimSession,
    SimMarket,
    SpotBookEncoder,
    Subscription,
    plain_decimal,
)
from arb.exchanges.models import FrameKind
from arb_core.book import ASK, BID, DeltaBatch, OrderBook
from arb_core.wire.common import WireScale

NOW_MS = 1684930166366
SPOT_SCALE = WireScale(8, 1, 10, 1, "BTC_USDT")
FUTURES_SCALE = WireScale(1, 1, 0, 1, "BTC_USDT")
INT64_MAX = 2**63 - 1


def error_of(frame: bytes) -> tuple[int, str]:
    doc = json.loads(frame)
    assert doc["result"] == {"status": "fail"}
    return doc["error"]["code"], doc["error"]["message"]


def examples(shared_data: Path) -> dict[str, Any]:
    return json.loads((shared_data / "examples" / "gate_docs_ws_examples.json").read_text())


def recorded_client_frames(path: Path, channel: str) -> list[str]:
    return [
        line.split(": ", 1)[1]
        for line in path.read_text().splitlines()
        if " <- " in line and f'"channel":"{channel}"' in line
    ]


def session(market: SimMarket = SPOT) -> GateioSimSession:
    return GateioSimSession(market, ["BTC_USDT", "ETH_USDT"])


# --- bad client frames ------------------------------------------------------------------------

BAD_SPOT_FRAMES = [
    (b"not json", constants.WS_ERROR_BAD_REQUEST),
    (b"[1,2]", constants.WS_ERROR_BAD_REQUEST),
    (b'{"channel":"spot.order_book_update","event":"subscribe","payload":["BTC_USDT","100ms"]}', 1),  # no time
    (b'{"time":"1","channel":"spot.order_book_update","event":"subscribe","payload":["BTC_USDT","100ms"]}', 1),
    (b'{"time":1,"channel":"spot.order_book_update","event":"subscribe"}', 1),  # no payload
    (b'{"time":1,"channel":"spot.order_book_update","event":"subscribe","payload":"BTC_USDT"}', 1),
    (b'{"time":1,"channel":"spot.order_book_update","event":"subscribe","payload":["BTC_USDT",100]}', 1),
    (b'{"time":1,"channel":"spot.order_book_update","event":"watch","payload":["BTC_USDT","100ms"]}', 1),
    (b'{"time":1,"channel":"spot.nothing","event":"subscribe","payload":["BTC_USDT"]}', 2),
    (b'{"time":1,"channel":"futures.order_book_update","event":"subscribe","payload":["BTC_USDT","100ms"]}', 2),
    (b'{"time":1,"channel":"spot.order_book_update","event":"subscribe","payload":["XRP_USDT","100ms"]}', 2),
    (b'{"time":1,"channel":"spot.order_book_update","event":"subscribe","payload":["BTC_USDT","1000ms"]}', 2),
    (b'{"time":1,"channel":"spot.order_book_update","event":"subscribe","payload":["BTC_USDT"]}', 2),
    (b'{"time":1,"channel":"spot.order_book_update","event":"subscribe","payload":["BTC_USDT","100ms","100"]}', 2),
    (b'{"time":1,"channel":"spot.book_ticker","event":"subscribe","payload":[]}', 2),
]


@pytest.mark.parametrize(("frame", "code"), BAD_SPOT_FRAMES)
def test_bad_client_frames_get_gate_errors(frame: bytes, code: int) -> None:
    sim = session()
    reply = sim.handle(frame, NOW_MS)
    assert len(reply.frames) == 1 and not reply.subscribed and not sim.subscriptions
    got_code, message = error_of(reply.frames[0])
    assert got_code == code and message.startswith(constants.WS_ERROR_MESSAGES[code])
    # A refused (un)subscribe is an error reply; one to a frame the sim could not read is another frame.
    assert GateioSpotMarketData.classify(reply.frames[0]) in (FrameKind.ERROR, FrameKind.OTHER)


@pytest.mark.parametrize(
    "payload",
    [["BTC_USDT", "20ms", "100"], ["BTC_USDT", "100ms", "30"], ["BTC_USDT", "100ms", "x"], ["BTC_USDT", "20ms"],
     ["BTC_USDT", "100ms", "100", "1"]],
)
def test_bad_futures_payloads(payload: list[str]) -> None:
    frame = json.dumps({"time": 1, "channel": "futures.order_book_update", "event": "subscribe", "payload": payload})
    assert error_of(session(FUTURES).handle(frame, NOW_MS).frames[0])[0] == constants.WS_ERROR_BAD_ARGUMENT


def test_duplicate_subscription_is_refused_like_gate(shared_data: Path) -> None:
    sim = session()
    frame = GateioSpotMarketData().subscribe_frames(["BTC_USDT"])[0]
    assert sim.handle(frame, NOW_MS).subscribed
    reply = sim.handle(frame, NOW_MS)
    assert not reply.subscribed and len(sim.subscriptions) == 1
    assert error_of(reply.frames[0]) == (2, "Alert sub BTC_USDT")
    docs = examples(shared_data)["spot_obu_subscribe_fail_duplicate"]
    assert_same_shape(json.loads(reply.frames[0]), docs, optional={"$.id", "$.conn_id", "$.trace_id"})


def test_error_echoes_request_id() -> None:
    reply = session().handle(b'{"time":1,"id":42,"channel":"spot.x","event":"subscribe","payload":[]}', NOW_MS)
    assert json.loads(reply.frames[0])["id"] == 42


# --- subscriptions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dialect", "market", "depth", "interval"),
    [
        (GateioSpotMarketData(), SPOT, 100, "100ms"),
        (GateioSpotMarketData(depth=20), SPOT, 20, "20ms"),
        (GateioFuturesMarketData(), FUTURES, 100, "100ms"),
        (GateioFuturesMarketData(depth=50), FUTURES, 50, "100ms"),
        (GateioFuturesMarketData(depth=20), FUTURES, 20, "20ms"),
    ],
)
def test_dialect_frames_parse_on_the_sim_side(
    dialect: GateioSpotMarketData, market: SimMarket, depth: int, interval: str
) -> None:
    sim = session(market)
    reply = sim.handle(dialect.subscribe_frames(["BTC_USDT", "ETH_USDT"])[1], NOW_MS)
    assert reply.subscribed == (Subscription(market.book_channel, "ETH_USDT", depth, interval),)
    assert dialect.classify(reply.frames[0]) == FrameKind.ACK
    assert json.loads(reply.frames[0])["result"] == {"status": "success"}
    reply = sim.handle(dialect.unsubscribe_frames(["ETH_USDT"])[0], NOW_MS)
    assert reply.unsubscribed == (Subscription(market.book_channel, "ETH_USDT", depth, interval),)
    assert not sim.subscriptions
    assert not sim.handle(dialect.unsubscribe_frames(["ETH_USDT"])[0], NOW_MS).unsubscribed  # idempotent
    assert sim.handle(dialect.subscribe_frames(["ETH_USDT"])[0], NOW_MS).subscribed


def test_recorded_client_subscribes_parse(shared_data: Path) -> None:
    for name, market, channels in (
        ("GATEIO", SPOT, ("spot.order_book_update",)),
        ("GATEIO_FUTURES", FUTURES, ("futures.order_book_update", "futures.book_ticker")),
    ):
        path = shared_data / "cryptofeed" / f"{name}.ws.1.0"
        frames = [f for c in channels for f in recorded_client_frames(path, c)]
        symbols = {s for f in frames for s in json.loads(f)["payload"] if "_" in s}
        sim = GateioSimSession(market, symbols)
        for frame in frames:
            reply = sim.handle(frame, NOW_MS)
            assert reply.subscribed, reply.frames
        assert len(sim.subscriptions) == (2 if name == "GATEIO_FUTURES" else 1) * len(symbols)
        assert all(s.depth == 100 for s in sim.subscriptions.values() if s.channel == market.book_channel)


def test_ping_answers_pong_shaped_like_the_docs(shared_data: Path) -> None:
    for market, dialect in ((SPOT, GateioSpotMarketData()), (FUTURES, GateioFuturesMarketData())):
        reply = session(market).handle(dialect.ping_frame(), NOW_MS)
        assert dialect.is_pong(reply.frames[0]) and dialect.classify(reply.frames[0]) == FrameKind.PONG
        assert_same_shape(json.loads(reply.frames[0]), examples(shared_data)["spot_pong"])


def test_ack_shape_matches_recorded_and_documented_acks(shared_data: Path) -> None:
    reply = session().handle(GateioSpotMarketData().subscribe_frames(["BTC_USDT"])[0], NOW_MS)
    ack = json.loads(reply.frames[0])
    recorded = [json.loads(f) for f in server_frames(shared_data / "cryptofeed" / "GATEIO.ws.1.0")]
    spot_ack = next(d for d in recorded if d["event"] == "subscribe" and d["channel"] == "spot.order_book_update")
    assert_same_shape(ack, spot_ack, optional={"$.time_ms", "$.payload"})
    assert_same_shape(ack, examples(shared_data)["spot_obu_subscribe_ack"], optional={"$.conn_id", "$.trace_id"})
    reply = session(FUTURES).handle(GateioFuturesMarketData().subscribe_frames(["BTC_USDT"])[0], NOW_MS)
    recorded = [json.loads(f) for f in server_frames(shared_data / "cryptofeed" / "GATEIO_FUTURES.ws.1.0")]
    futures_ack = next(d for d in recorded if d["event"] == "subscribe")
    assert_same_shape(json.loads(reply.frames[0]), futures_ack, optional={"$.payload"})


def test_shape_helper_reports_differences() -> None:
    assert shape_differences({"a": 1, "b": "x"}, {"b": "y", "a": 2}) == ["$: keys in order ['a', 'b'], expected ['b', 'a']"]
    assert shape_differences({"a": [{"s": 1}]}, {"a": [{"s": "1"}]}) == ["$.a[0].s: int where str was expected"]
    assert shape_differences({"a": 1.5}, {"a": 1}) == ["$.a: float where int was expected"]
    assert shape_differences({"a": 1, "z": None}, {"a": 1}) == ["$.z: unexpected key"]
    assert shape_differences({"a": 1}, {"a": 1, "z": True}, optional={"$.z"}) == []


# --- encoders: bad inputs -------------------------------------------------------------------


def test_encoder_rejects_bad_levels_and_ids() -> None:
    enc = SpotBookEncoder("BTC_USDT", SPOT_SCALE)
    for bids in ([(0, 1)], [(-5, 1)], [(10, -1)], [(1.5, 1)], [(10, 1, 2)], [(10,)]):
        with pytest.raises(ValueError, match="BTC_USDT"):
            enc.update(1, 1, bids, [], NOW_MS)
    for first, last in ((0, 1), (5, 4), (-1, 3)):
        with pytest.raises(ValueError, match="U="):
            enc.update(first, last, [], [], NOW_MS)


def test_encoder_rejects_mismatched_scale_and_depth() -> None:
    with pytest.raises(ValueError, match="bound to symbol"):
        SpotBookEncoder("ETH_USDT", SPOT_SCALE)
    with pytest.raises(ValueError, match="whole contracts"):
        FuturesBookEncoder("BTC_USDT", WireScale(1, 1, 2, 1))
    with pytest.raises(ValueError, match="depth=30"):
        FuturesBookEncoder("BTC_USDT", FUTURES_SCALE, depth=30)


@pytest.mark.parametrize(
    ("units", "decimals", "text"),
    [(0, 8, "0"), (5, 10, "0.0000000005"), (18734, 7, "0.0018734"), (54742, 0, "54742"), (547420, 1, "54742"),
     (2900, 4, "0.29"), (10**18, 18, "1"), (INT64_MAX, 18, "9.223372036854775807")],
)
def test_plain_decimal(units: int, decimals: int, text: str) -> None:
    assert plain_decimal(units, decimals) == text


# --- conformance with recorded frames -------------------------------------------------------


def test_futures_reencoding_of_recorded_updates_is_byte_identical(shared_data: Path) -> None:
    scales = gate_futures_scales(shared_data)
    batch = DeltaBatch()
    for frame in channel_updates(shared_data / "cryptofeed" / "GATEIO_FUTURES.ws.1.0", "futures.order_book_update"):
        doc = json.loads(frame)
        symbol = symbol_of(frame)
        scale = WireScale(*scales[symbol], symbol)
        GateioFuturesMarketData.decode_update(frame, scale, batch)
        bids = [(p, s) for side, p, s in batch.levels() if side == BID]
        asks = [(p, s) for side, p, s in batch.levels() if side == ASK]
        encoder = FuturesBookEncoder(symbol, scale)
        result = doc["result"]
        again = encoder.update(result["U"], result["u"], bids, asks, result["t"], send_ms=doc["time_ms"])
        assert doc["time"] == doc["time_ms"] // 1000
        assert again == frame


def test_spot_updates_have_the_recorded_shape_and_level_strings(shared_data: Path) -> None:
    scales = gate_spot_book_scales(shared_data)
    batch = DeltaBatch()
    for frame in channel_updates(shared_data / "cryptofeed" / "GATEIO.ws.1.0", "spot.order_book_update"):
        doc = json.loads(frame)
        symbol = symbol_of(frame)
        scale = WireScale(*scales[symbol], symbol)
        GateioSpotMarketData.decode_update(frame, scale, batch)
        bids = [(p, s) for side, p, s in batch.levels() if side == BID]
        asks = [(p, s) for side, p, s in batch.levels() if side == ASK]
        result = doc["result"]
        again = json.loads(SpotBookEncoder(symbol, scale).update(result["U"], result["u"], bids, asks, result["t"]))
        # the 2021 feed had neither time_ms nor l; both are in today's documented push
        assert_same_shape(again, doc, optional={"$.time_ms", "$.result.l"})
        assert again["result"]["b"] == result["b"] and again["result"]["a"] == result["a"]
        assert again["result"]["E"] == result["E"] and again["result"]["e"] == result["e"]


def test_full_pushes_have_the_documented_shape(shared_data: Path) -> None:
    docs = examples(shared_data)
    spot = json.loads(SpotBookEncoder("BTC_USDT", SPOT_SCALE).update(1, 5, [(10**12, 1)], [(2 * 10**12, 0)], NOW_MS, full=True))
    assert_same_shape(spot, docs["spot_order_book_update_push"])
    futures_frame = channel_updates(shared_data / "cryptofeed" / "GATEIO_FUTURES.ws.1.0", "futures.order_book_update")[0]
    futures = json.loads(FuturesBookEncoder("BTC_USDT", FUTURES_SCALE).update(1, 5, [(10, 1)], [(20, 2)], NOW_MS, full=True))
    assert futures["result"]["full"] is True
    assert_same_shape(futures, json.loads(futures_frame), optional={"$.result.full"})


def test_snapshots_have_the_recorded_shape(shared_data: Path) -> None:
    for name, encoder in (
        ("GATEIO", SpotBookEncoder("BTC_USDT", SPOT_SCALE)),
        ("GATEIO_FUTURES", FuturesBookEncoder("BTC_USDT", FUTURES_SCALE)),
    ):
        for _, body in http_bodies(shared_data / "cryptofeed" / f"{name}.http.0.0"):
            ours = json.loads(encoder.snapshot(7, [(10, 3), (9, 1)], [(11, 2)], NOW_MS, NOW_MS - 35))
            # the 2021 spot snapshot predates the documented current/update fields
            assert_same_shape(ours, json.loads(body), optional={"$.current", "$.update"})


def test_futures_snapshot_reencoding_matches_recorded_levels(shared_data: Path) -> None:
    scales = gate_futures_scales(shared_data)
    batch = DeltaBatch()
    for url, body in http_bodies(shared_data / "cryptofeed" / "GATEIO_FUTURES.http.0.0"):
        symbol = snapshot_symbol(url)
        scale = WireScale(*scales[symbol], symbol)
        GateioFuturesMarketData.decode_snapshot(body, scale, batch)
        doc = json.loads(body)
        bids = [(p, s) for side, p, s in batch.levels() if side == BID]
        asks = [(p, s) for side, p, s in batch.levels() if side == ASK]
        ours = json.loads(FuturesBookEncoder(symbol, scale).snapshot(doc["id"], bids, asks, 0, 0))
        assert (ours["asks"], ours["bids"], ours["id"]) == (doc["asks"], doc["bids"], doc["id"])


def test_book_ticker_matches_recorded_futures_ticker(shared_data: Path) -> None:
    frames = channel_updates(shared_data / "cryptofeed" / "GATEIO_FUTURES.ws.1.0", "futures.book_ticker")
    scales = gate_futures_scales(shared_data)
    for frame in frames:
        doc = json.loads(frame)
        r = doc["result"]
        symbol = r["s"]
        scale = WireScale(*scales[symbol], symbol)
        ticks = [int(Decimal(r[k]).scaleb(scale.price_decimals)) // scale.tick_units for k in ("b", "a")]
        encoder = FuturesBookEncoder(symbol, scale)
        again = encoder.book_ticker(r["u"], (ticks[0], r["B"]), (ticks[1], r["A"]), r["t"], send_ms=doc["time_ms"])
        assert json.loads(again) == doc
    spot = json.loads(SpotBookEncoder("BTC_USDT", SPOT_SCALE).book_ticker(3, (10**12, 5), None, NOW_MS))
    assert spot["result"] == {"t": NOW_MS, "u": 3, "s": "BTC_USDT", "b": "10000", "B": "0.0000000005", "a": "", "A": "0"}


# --- round trips ----------------------------------------------------------------------------

prices = st.integers(1, 10**15)
levels = st.lists(st.tuples(prices, st.integers(0, 10**15)), max_size=30, unique_by=lambda level: level[0])
ids = st.integers(1, 2**62)


@given(levels, levels, ids, st.integers(0, 10**6), st.integers(0, 2**41), st.booleans(), st.booleans())
@settings(max_examples=150, deadline=None)
def test_update_round_trip(
    bids: list[tuple[int, int]], asks: list[tuple[int, int]], first: int, span: int, event_ms: int, full: bool,
    futures: bool,
) -> None:
    scale = WireScale(2, 5, 0, 3, "BTC_USDT") if futures else WireScale(3, 5, 4, 3, "BTC_USDT")
    encoder = (FuturesBookEncoder if futures else SpotBookEncoder)("BTC_USDT", scale)
    decode = GateioFuturesMarketData.decode_update if futures else GateioSpotMarketData.decode_update
    batch = DeltaBatch()
    frame = encoder.update(first, first + span, bids, asks, event_ms, full=full)
    assert decode(frame, scale, batch) == len(bids) + len(asks)
    assert sorted(batch.levels()) == sorted([(BID, p, s) for p, s in bids] + [(ASK, p, s) for p, s in asks])
    header = (batch.first_update_id, batch.last_update_id, batch.event_time_ms, bool(batch.is_snapshot))
    assert header == (first, first + span, event_ms, full)
    doc = json.loads(frame)
    assert doc["time"] == event_ms // 1000 and doc["time_ms"] == event_ms


@given(levels, levels, ids, st.booleans())
@settings(max_examples=80, deadline=None)
def test_snapshot_round_trip(bids: list[tuple[int, int]], asks: list[tuple[int, int]], book_id: int, futures: bool) -> None:
    scale = WireScale(2, 5, 0, 1) if futures else WireScale(8, 1, 10, 1)
    encoder = (FuturesBookEncoder if futures else SpotBookEncoder)("BTC_USDT", scale)
    decode = GateioFuturesMarketData.decode_snapshot if futures else GateioSpotMarketData.decode_snapshot
    batch = DeltaBatch()
    assert decode(encoder.snapshot(book_id, bids, asks, NOW_MS, NOW_MS - 1), scale, batch) == len(bids) + len(asks)
    assert sorted(batch.levels()) == sorted([(BID, p, s) for p, s in bids] + [(ASK, p, s) for p, s in asks])
    assert batch.is_snapshot and batch.first_update_id == batch.last_update_id == book_id


@pytest.mark.parametrize("futures", [False, True])
def test_snapshot_then_diffs_rebuild_the_generated_book(futures: bool) -> None:
    """A random book walk served as a REST snapshot plus diffs ends equal in arb_core's OrderBook."""
    rng = random.Random(7 + futures)
    scale = WireScale(1, 1, 0, 1, "BTC_USDT") if futures else WireScale(8, 1, 10, 1, "BTC_USDT")
    encoder = (FuturesBookEncoder if futures else SpotBookEncoder)("BTC_USDT", scale)
    dialect = GateioFuturesMarketData() if futures else GateioSpotMarketData()
    mid = 1_000_000
    book: dict[int, dict[int, int]] = {
        BID: {mid - i: rng.randint(1, 10**6) for i in range(1, 40)},
        ASK: {mid + i: rng.randint(1, 10**6) for i in range(1, 40)},
    }

    def best_first(side: int) -> list[tuple[int, int]]:
        return sorted(book[side].items(), reverse=side == BID)

    last_id = 1000
    ob = OrderBook("BTC_USDT")
    batch = DeltaBatch()
    body = encoder.snapshot(last_id, best_first(BID), best_first(ASK), NOW_MS, NOW_MS)
    dialect.decode_snapshot(body, scale, batch)
    ob.apply_snapshot(batch, 0)
    for step in range(300):
        changes: dict[int, dict[int, int]] = {BID: {}, ASK: {}}
        for _ in range(rng.randint(0, 20)):
            side = rng.choice((BID, ASK))
            offset = rng.randint(1, 60)
            price = mid - offset if side == BID else mid + offset
            size = 0 if rng.random() < 0.3 else rng.randint(1, 10**6)
            changes[side][price] = size
            if size:
                book[side][price] = size
            else:
                book[side].pop(price, None)
        first, last_id = last_id + 1, last_id + rng.randint(1, 5)
        frame = encoder.update(
            first, last_id, sorted(changes[BID].items()), sorted(changes[ASK].items()), NOW_MS + step
        )
        assert dialect.decode_update(frame, scale, batch) == len(changes[BID]) + len(changes[ASK])
        ob.apply_batch(batch, step)
    assert ob.last_update_id == last_id
    assert ob.top(BID, 1000) == best_first(BID)
    assert ob.top(ASK, 1000) == best_first(ASK)
