"""arb/exchanges/gateio/market_data.py: frames sent, frames classified, recorded frames decoded."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from wire_data import (
    channel_updates,
    gate_futures_scales,
    http_bodies,
    snapshot_symbol,
    symbol_of,
)

from arb.exchanges.gateio import constants
from arb.exchanges.gateio.instruments import parse_currency_pairs, parse_futures_contracts
from arb.exchanges.gateio.market_data import GateioFuturesMarketData, GateioSpotMarketData
from arb.exchanges.models import FrameKind
from arb.instruments import Instrument, InstrumentCatalog, decimals_of
from arb.types import ExchangeName
from arb_core.book import DeltaBatch
from arb_core.wire.common import WireError, WireScale

RECORDED_TIME = 1619093532


def clock() -> float:
    return RECORDED_TIME + 0.77


def scale_args(scale: WireScale) -> tuple[int, int, int, int]:
    return (scale.price_decimals, scale.tick_units, scale.size_decimals, scale.lot_units)


@pytest.fixture(scope="module")
def spot_catalog(shared_data: Path) -> InstrumentCatalog:
    return parse_currency_pairs(http_bodies(shared_data / "cryptofeed" / "GATEIO.0")[0][1])


@pytest.fixture(scope="module")
def futures_catalog(shared_data: Path) -> InstrumentCatalog:
    return parse_futures_contracts(http_bodies(shared_data / "cryptofeed" / "GATEIO_FUTURES.0")[0][1])


# --- bad inputs ---------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [0, 50, 200, -1])
def test_spot_rejects_depth_without_interval(depth: int) -> None:
    with pytest.raises(ValueError, match=f"depth={depth}"):
        GateioSpotMarketData(depth=depth)


@pytest.mark.parametrize("depth", [0, 10, 400])
def test_futures_rejects_unknown_level(depth: int) -> None:
    with pytest.raises(ValueError, match="futures.order_book_update"):
        GateioFuturesMarketData(depth=depth)


def test_decoder_bound_to_symbol_rejects_other_symbol(shared_data: Path) -> None:
    frame = channel_updates(shared_data / "cryptofeed" / "GATEIO.ws.1.0", "spot.order_book_update")[0]
    scale = WireScale(8, 1, 10, 1, "NOT_THIS")
    with pytest.raises(WireError):
        GateioSpotMarketData.decode_update(frame, scale, DeltaBatch())


def test_spot_decoder_rejects_futures_frame(shared_data: Path) -> None:
    frame = channel_updates(shared_data / "cryptofeed" / "GATEIO_FUTURES.ws.1.0", "futures.order_book_update")[0]
    with pytest.raises(WireError):
        GateioSpotMarketData().decode_update(frame, WireScale(8, 1, 10, 1), DeltaBatch())


def test_is_pong_rejects_other_frames(shared_data: Path) -> None:
    dialect = GateioSpotMarketData()
    frames = [
        *channel_updates(shared_data / "cryptofeed" / "GATEIO.ws.1.0", "spot.order_book_update")[:5],
        b'{"time":1619093532,"channel":"spot.order_book_update","event":"subscribe","result":{"status":"success"}}',
        b'{"time":1,"channel":"futures.pong","event":"","error":null,"result":null}',
        b"",
    ]
    assert not any(dialect.is_pong(f) for f in frames)
    assert not any(dialect.is_pong(memoryview(f)) for f in frames)


# --- frames sent --------------------------------------------------------------------------


def test_spot_subscribe_frame_is_byte_identical_to_recorded_client_frame(shared_data: Path) -> None:
    recorded = [
        line.split(": ", 1)[1]
        for line in (shared_data / "cryptofeed" / "GATEIO.ws.1.0").read_text().splitlines()
        if " <- " in line and '"spot.order_book_update"' in line
    ]
    symbols = [json.loads(r)["payload"][0] for r in recorded]
    assert list(GateioSpotMarketData(clock=clock).subscribe_frames(symbols)) == recorded


def test_futures_subscribe_names_level_and_interval() -> None:
    frames = GateioFuturesMarketData(clock=clock, depth=20).subscribe_frames(["BTC_USDT", "ETH_USDT"])
    assert [json.loads(f) for f in frames] == [
        {"time": RECORDED_TIME, "channel": "futures.order_book_update", "event": "subscribe",
         "payload": [s, "20ms", "20"]}
        for s in ("BTC_USDT", "ETH_USDT")
    ]


@pytest.mark.parametrize("cls", [GateioSpotMarketData, GateioFuturesMarketData])
def test_unsubscribe_mirrors_subscribe(cls: type[GateioSpotMarketData]) -> None:
    dialect = cls(clock=clock)
    sub = json.loads(dialect.subscribe_frames(["BTC_USDT"])[0])
    unsub = json.loads(dialect.unsubscribe_frames(["BTC_USDT"])[0])
    assert unsub == {**sub, "event": "unsubscribe"}
    assert all(isinstance(f, str) for f in dialect.unsubscribe_frames(["A_B", "C_D"]))  # TEXT frames


def test_ping_frames_and_pongs(shared_data: Path) -> None:
    spot, futures = GateioSpotMarketData(clock=clock), GateioFuturesMarketData(clock=clock)
    assert json.loads(spot.ping_frame()) == {"time": RECORDED_TIME, "channel": "spot.ping"}
    assert json.loads(futures.ping_frame()) == {"time": RECORDED_TIME, "channel": "futures.ping"}
    docs_pong = json.loads((shared_data / "examples" / "gate_docs_ws_examples.json").read_text())["spot_pong"]
    raw = json.dumps(docs_pong, separators=(",", ":")).encode()
    assert spot.is_pong(raw) and spot.is_pong(memoryview(raw))
    assert futures.is_pong(raw.replace(b"spot.pong", b"futures.pong"))
    assert spot.classify(raw) == FrameKind.PONG


def test_ws_url_default_and_override() -> None:
    assert GateioSpotMarketData().ws_url == constants.SPOT_WS_URL
    assert GateioFuturesMarketData().ws_url == constants.FUTURES_WS_URL
    assert GateioSpotMarketData("ws://127.0.0.1:9001/ws/v4/").ws_url == "ws://127.0.0.1:9001/ws/v4/"
    assert GateioSpotMarketData().venue == "gateio"
    assert not GateioSpotMarketData().snapshot_in_first_push


def test_snapshot_requests_match_recorded_urls(shared_data: Path) -> None:
    for name, dialect in (("GATEIO", GateioSpotMarketData()), ("GATEIO_FUTURES", GateioFuturesMarketData())):
        for url, _ in http_bodies(shared_data / "cryptofeed" / f"{name}.http.0.0"):
            request = dialect.snapshot_request(snapshot_symbol(url))
            query = "&".join(f"{k}={v}" for k, v in request.params)
            assert url == f"{constants.REST_URL}{request.path}?{query}"
            assert request.limits == ((dialect.snapshot_rate_limit, constants.ORDER_BOOK_WEIGHT),)
            assert request.limits[0][0] in constants.RATE_LIMITS


# --- book scale ---------------------------------------------------------------------------


def test_spot_book_scale_is_finer_than_order_grid(spot_catalog: InstrumentCatalog, shared_data: Path) -> None:
    dialect = GateioSpotMarketData()
    for instrument in spot_catalog:
        scale = dialect.book_scale(instrument)
        price_decimals, _, size_decimals, _ = instrument.wire_scale()
        # Sizes to 10 decimals, fewer on pairs priced to many decimals (16 in all), never coarser
        # than the order grid; finer digits are rounded down.
        widest = min(10, 16 - price_decimals)
        assert scale_args(scale) == (price_decimals + 2, 1, max(size_decimals, widest), 1)
        assert scale.symbol == instrument.venue_symbol.encode() and scale.floor_sizes


def test_futures_book_scale_is_the_order_grid(futures_catalog: InstrumentCatalog, shared_data: Path) -> None:
    expected = gate_futures_scales(shared_data)
    dialect = GateioFuturesMarketData()
    for instrument in futures_catalog:
        assert scale_args(dialect.book_scale(instrument)) == expected[instrument.venue_symbol]


def shib(lot: str) -> Instrument:
    return Instrument(
        exchange=ExchangeName.GATEIO, symbol="SHIB/USDT", venue_symbol="SHIB_USDT", base="SHIB", quote="USDT",
        tick_size=Decimal("0.000000005"), lot_size=Decimal(lot), min_size=Decimal(lot), min_notional=Decimal("1"),
        taker_fee=Decimal("0.002"), maker_fee=Decimal("0.002"), price_decimals=9,
        size_decimals=decimals_of(Decimal(lot)),
    )


def test_book_scale_of_a_coin_priced_to_many_decimals_leaves_its_levels_room() -> None:
    """At 10 size decimals an int64 held a level to 9.2e8 SHIB (about 9,000 USDT at 0.00001): a
    larger one did not decode, and the book resynced for ever. 16 - 9 price decimals leaves 7."""
    dialect = GateioSpotMarketData()
    scale = dialect.book_scale(shib("1"))
    assert scale_args(scale) == (11, 1, 7, 1) and scale.floor_sizes
    assert scale_args(dialect.book_scale(shib("0.00000001"))) == (11, 1, 8, 1)  # a finer order grid is kept
    body = b'{"id":7,"asks":[["0.0000123","50000000000"],["0.0000124","1.1234567891"]],"bids":[]}'
    batch = DeltaBatch()
    dialect.decode_snapshot(body, scale, batch)
    # 5e10 SHIB (about 600,000 USDT) decodes; a size finer than 1e-7 is rounded down.
    levels = [(price, size) for _, price, size in batch.levels()]
    assert levels == [(1_230_000, 50_000_000_000 * 10**7), (1_240_000, 11_234_567)]


# --- recorded frames through the dialect ----------------------------------------------------


def test_classify_recorded_frames(shared_data: Path) -> None:
    from wire_data import server_frames

    for name, book_channel in (("GATEIO", "spot.order_book_update"), ("GATEIO_FUTURES", "futures.order_book_update")):
        for frame in server_frames(shared_data / "cryptofeed" / f"{name}.ws.1.0"):
            doc = json.loads(frame)
            kind = GateioSpotMarketData.classify(frame)
            if doc["event"] in ("subscribe", "unsubscribe"):
                assert kind == FrameKind.ACK
            elif doc["channel"] == book_channel:
                assert kind == FrameKind.BOOK_UPDATE
                assert GateioSpotMarketData.frame_symbol(frame) == doc["result"]["s"].encode()
            else:
                assert kind == FrameKind.OTHER


def test_error_reason_is_the_refusal_code_and_message_whatever_the_time() -> None:
    refused = ('{"time":%d,"channel":"spot.order_book_update","event":"subscribe",'
               '"error":{"code":2,"message":"unknown currency pair AAA_USDT"},"result":{"status":"fail"}}')
    reasons = {GateioSpotMarketData.error_reason(memoryview((refused % t).encode())) for t in (1, 2)}
    assert reasons == {"2 unknown currency pair AAA_USDT"}
    assert GateioFuturesMarketData.error_reason(b'{"time":1,"channel":"futures.order_book_update","error":null}') == ""
    assert GateioSpotMarketData.error_reason(b"not json") == ""


@pytest.mark.parametrize(
    ("name", "channel", "cls", "catalog"),
    [
        ("GATEIO", "spot.order_book_update", GateioSpotMarketData, "spot_catalog"),
        ("GATEIO_FUTURES", "futures.order_book_update", GateioFuturesMarketData, "futures_catalog"),
    ],
)
def test_every_recorded_update_and_snapshot_decodes(
    name: str, channel: str, cls: type[GateioSpotMarketData], catalog: str, shared_data: Path,
    request: pytest.FixtureRequest,
) -> None:
    instruments: InstrumentCatalog = request.getfixturevalue(catalog)
    dialect = cls()
    batch = DeltaBatch()
    updates = channel_updates(shared_data / "cryptofeed" / f"{name}.ws.1.0", channel)
    assert updates
    for frame in updates:
        doc = json.loads(frame)["result"]
        scale = dialect.book_scale(instruments.by_venue_symbol(symbol_of(frame)))
        count = dialect.decode_update(memoryview(frame), scale, batch)
        assert count == len(doc["b"]) + len(doc["a"])
        assert (batch.first_update_id, batch.last_update_id) == (doc["U"], doc["u"])
    for url, body in http_bodies(shared_data / "cryptofeed" / f"{name}.http.0.0"):
        doc = json.loads(body)
        scale = dialect.book_scale(instruments.by_venue_symbol(snapshot_symbol(url)))
        assert dialect.decode_snapshot(body, scale, batch) == len(doc["bids"]) + len(doc["asks"])
        assert batch.is_snapshot and batch.first_update_id == batch.last_update_id == doc["id"]


def test_docs_full_push_decodes_as_snapshot(shared_data: Path) -> None:
    examples = json.loads((shared_data / "examples" / "gate_docs_ws_examples.json").read_text())
    batch = DeltaBatch()
    frame = json.dumps(examples["spot_order_book_update_push"]).encode()
    assert GateioSpotMarketData.decode_update(frame, WireScale(8, 1, 10, 1, "BTC_USDT"), batch) == 3
    assert batch.is_snapshot and (batch.first_update_id, batch.last_update_id) == (48776301, 48776306)
    frame = json.dumps(examples["futures_order_book_update_push"]).encode()
    assert GateioFuturesMarketData.decode_update(frame, WireScale(1, 1, 0, 1, "BTC_USD"), batch) == 4
    assert not batch.is_snapshot
