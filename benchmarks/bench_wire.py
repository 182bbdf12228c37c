"""Frame bytes -> book: compiled decoders + OrderBook against orjson/SortedDict baselines.

Each timed call decodes and applies FRAMES consecutive 20-level depth frames (10 bids,
10 asks) to a book reset from a REST snapshot outside the timing; ns per frame is
reported in extra_info. Gate frames reuse the real BTC_USDC levels recorded in
GATEIO.http.0.0; MEXC pushes are synthesized protobuf (no raw recording exists).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from sortedcontainers import SortedDict

from arb_core.book import ASK, BID, DeltaBatch, OrderBook
from arb_core.wire import gateio, mexc
from arb_core.wire.common import WireScale
from reference import wire_mexc as ref_mexc
from reference.wire_common import Scale
from wire_data import http_bodies, snapshot_symbol

FRAMES = 2000
ROUNDS = 30
GATE_SCALE = (8, 1, 10, 1)  # BTC_USDC book scale (see tests/wire_data.py)
MEXC_SCALE = (2, 1, 6, 1)


def _levels(rng: random.Random, prices: list[str], qty_decimals: int) -> list[list[str]]:
    out = []
    for price in rng.sample(prices, 10):
        qty = "0" if rng.random() < 0.2 else f"{rng.randrange(1, 10**6)}.{rng.randrange(10**qty_decimals):0{qty_decimals}d}"
        out.append([price, qty])
    return out


@pytest.fixture(scope="module")
def gate(shared_data: Path) -> dict[str, Any]:
    """REST snapshot of BTC_USDC and FRAMES realistic spot.order_book_update frames on it."""
    url, body = next((u, b) for u, b in http_bodies(shared_data / "cryptofeed" / "GATEIO.http.0.0")
                     if snapshot_symbol(u) == "BTC_USDC")
    snap = json.loads(body)
    rng = random.Random(7)
    bids = [p for p, _ in snap["bids"][:40]]
    asks = [p for p, _ in snap["asks"][:40]]
    frames, first = [], snap["id"] + 1
    for k in range(FRAMES):
        result = {"t": 1619093533000 + k * 100, "e": "depthUpdate", "E": 1619093533 + k // 10,
                  "s": "BTC_USDC", "U": first, "u": first + 3,
                  "b": _levels(rng, bids, 8), "a": _levels(rng, asks, 8)}
        frames.append(orjson.dumps({"time": 1619093533, "time_ms": 1619093533000 + k * 100,
                                    "channel": "spot.order_book_update", "event": "update",
                                    "result": result}))
        first += 4
    return {"snapshot": body, "frames": frames}


@pytest.fixture(scope="module")
def mexc_pushes() -> dict[str, Any]:
    """Synthesized aggre-depth protobuf pushes around the hummingbot BTCUSDC example."""
    rng = random.Random(11)
    bids = [f"{114838 - i}.{rng.randrange(100):02d}" for i in range(40)]
    asks = [f"{114840 + i}.{rng.randrange(100):02d}" for i in range(40)]
    snapshot = orjson.dumps({"lastUpdateId": "17521975447", "timestamp": "1755973885809",
                             "bids": [[p, "1.000000"] for p in bids], "asks": [[p, "1.000000"] for p in asks]})
    frames, first = [], 17521975448
    for k in range(FRAMES):
        body = {"bids": [{"price": p, "quantity": q} for p, q in _levels(rng, bids, 6)],
                "asks": [{"price": p, "quantity": q} for p, q in _levels(rng, asks, 6)],
                "eventType": "spot@public.aggre.depth.v3.api.pb@100ms",
                "fromVersion": str(first), "toVersion": str(first + 6)}
        frames.append(ref_mexc.encode_push({
            "channel": "spot@public.aggre.depth.v3.api.pb@100ms@BTCUSDC", "symbol": "BTCUSDC",
            "sendTime": str(1755973885809 + k * 100), "publicAggreDepths": body}))
        first += 7
    return {"snapshot": snapshot, "frames": frames}


# ---------------------------------------------------------------------------
# Baselines: decode with orjson (or the pure-Python protobuf reader), Decimal -> int,
# sequence check, and a sorted-dict book per side.


class DictBook:
    """The orjson + SortedDict baseline book: price_ticks -> size_lots per side."""

    def __init__(self, sorted_dict: Callable[[], Any]) -> None:
        self.sorted_dict = sorted_dict
        self.sides = (sorted_dict(), sorted_dict())
        self.last_update_id = 0

    def reset(self) -> None:
        self.sides = (self.sorted_dict(), self.sorted_dict())

    def set(self, side: int, price: int, size: int) -> None:
        levels = self.sides[side]
        if size:
            levels[price] = size
        elif price in levels:
            del levels[price]

    def top(self, side: int) -> list[tuple[int, int]]:
        levels = self.sides[side]
        keys = list(levels.keys())
        keys = keys[::-1] if side == BID else keys
        return [(k, levels[k]) for k in keys]


def _ticks(text: str, decimals: int) -> int:
    return int(Decimal(text).scaleb(decimals))


def _gate_baseline(book: DictBook, frames: list[bytes]) -> None:
    setter = book.set
    for frame in frames:
        result = orjson.loads(frame)["result"]
        if result["u"] <= book.last_update_id:
            continue
        if result["U"] > book.last_update_id + 1:
            raise RuntimeError("gap")
        for price, qty in result["b"]:
            setter(BID, _ticks(price, 8), _ticks(qty, 10))
        for price, qty in result["a"]:
            setter(ASK, _ticks(price, 8), _ticks(qty, 10))
        book.last_update_id = result["u"]


def _gate_book_reset(book: DictBook, snapshot: bytes) -> None:
    doc = orjson.loads(snapshot)
    book.reset()
    for key, side in (("bids", BID), ("asks", ASK)):
        for price, qty in doc[key]:
            book.set(side, _ticks(price, 8), _ticks(qty, 10))
    book.last_update_id = doc["id"]


def _order_book_dict() -> Callable[[], Any]:
    order_book = pytest.importorskip("order_book", reason="the order-book package is not installed")
    return order_book.SortedDict  # type: ignore[no-any-return]


def _top(book: OrderBook, side: int) -> list[tuple[int, int]]:
    return book.top(side, 1_000_000)


def _expected_gate_book(gate: dict[str, Any]) -> DictBook:
    expected = DictBook(SortedDict)
    _gate_book_reset(expected, gate["snapshot"])
    _gate_baseline(expected, gate["frames"])
    return expected


def _per_frame(benchmark: Any) -> None:
    benchmark.extra_info["frames_per_call"] = FRAMES
    benchmark.extra_info["ns_per_frame_median"] = round(benchmark.stats.stats.median / FRAMES * 1e9, 1)


def _compiled(benchmark: Any, decode_snapshot: Callable[..., int], decode: Callable[..., int],
              data: dict[str, Any], scale: WireScale, expected: DictBook) -> None:
    """Time decode + OrderBook.apply_batch over data["frames"], then check the book."""
    batch, book, snapshot, frames = DeltaBatch(), OrderBook("book"), DeltaBatch(), data["frames"]
    decode_snapshot(data["snapshot"], scale, snapshot)
    apply = book.apply_batch

    def run() -> None:
        for frame in frames:
            decode(frame, scale, batch)
            apply(batch, 0)

    benchmark.pedantic(run, setup=lambda: book.apply_snapshot(snapshot, 0), rounds=ROUNDS,
                       warmup_rounds=2)
    _per_frame(benchmark)
    assert book.last_update_id == expected.last_update_id
    assert _top(book, BID) == expected.top(BID) and _top(book, ASK) == expected.top(ASK)


def _gate_dict_baseline(benchmark: Any, gate: dict[str, Any], sorted_dict: Callable[[], Any]) -> None:
    book = DictBook(sorted_dict)
    benchmark.pedantic(_gate_baseline, args=(book, gate["frames"]), rounds=ROUNDS // 3,
                       setup=lambda: _gate_book_reset(book, gate["snapshot"]), warmup_rounds=1)
    _per_frame(benchmark)
    expected = _expected_gate_book(gate)
    assert book.top(BID) == expected.top(BID) and book.top(ASK) == expected.top(ASK)


# ---------------------------------------------------------------------------
# Gate.io spot: frame bytes -> book


@pytest.mark.benchmark(group="gateio spot.order_book_update 20 levels -> book")
def test_gateio_compiled(benchmark: Any, gate: dict[str, Any]) -> None:
    """decode_spot_update into a DeltaBatch + OrderBook.apply_batch, per frame."""
    _compiled(benchmark, gateio.decode_spot_snapshot, gateio.decode_spot_update, gate,
              WireScale(*GATE_SCALE, b"BTC_USDC"), _expected_gate_book(gate))


@pytest.mark.benchmark(group="gateio spot.order_book_update 20 levels -> book")
def test_gateio_orjson_sorteddict_baseline(benchmark: Any, gate: dict[str, Any]) -> None:
    """orjson.loads + Decimal -> int + sortedcontainers.SortedDict book, per frame."""
    _gate_dict_baseline(benchmark, gate, SortedDict)


@pytest.mark.benchmark(group="gateio spot.order_book_update 20 levels -> book")
def test_gateio_orjson_order_book_package(benchmark: Any, gate: dict[str, Any]) -> None:
    """orjson.loads + Decimal -> int + the C SortedDict of the order-book package, per frame."""
    _gate_dict_baseline(benchmark, gate, _order_book_dict())


# ---------------------------------------------------------------------------
# MEXC spot: protobuf push bytes -> book


def _mexc_baseline(book: DictBook, frames: list[bytes], scale: Scale) -> None:
    decode, setter = ref_mexc.decode_spot_depth, book.set
    for frame in frames:
        push = decode(frame, scale)
        if push.last_update_id <= book.last_update_id:
            continue
        if push.first_update_id > book.last_update_id + 1:
            raise RuntimeError("gap")
        for side, price, size in push.rows:
            setter(side, price, size)
        book.last_update_id = push.last_update_id


def _mexc_book_reset(book: DictBook, snapshot: bytes) -> None:
    doc = orjson.loads(snapshot)
    book.reset()
    for key, side in (("bids", BID), ("asks", ASK)):
        for price, qty in doc[key]:
            book.set(side, _ticks(price, 2), _ticks(qty, 6))
    book.last_update_id = int(doc["lastUpdateId"])


def _expected_mexc_book(pushes: dict[str, Any]) -> DictBook:
    expected = DictBook(SortedDict)
    _mexc_book_reset(expected, pushes["snapshot"])
    _mexc_baseline(expected, pushes["frames"], Scale(*MEXC_SCALE))
    return expected


@pytest.mark.benchmark(group="mexc aggre depth protobuf 20 levels -> book")
def test_mexc_compiled(benchmark: Any, mexc_pushes: dict[str, Any]) -> None:
    """decode_spot_depth into a DeltaBatch + OrderBook.apply_batch, per push."""
    _compiled(benchmark, mexc.decode_spot_snapshot, mexc.decode_spot_depth, mexc_pushes,
              WireScale(*MEXC_SCALE, b"BTCUSDC"), _expected_mexc_book(mexc_pushes))


@pytest.mark.benchmark(group="mexc aggre depth protobuf 20 levels -> book")
def test_mexc_python_protobuf_sorteddict_baseline(benchmark: Any, mexc_pushes: dict[str, Any]) -> None:
    """Pure-Python protobuf reader (reference.wire_mexc) + SortedDict book, per push."""
    book = DictBook(SortedDict)
    benchmark.pedantic(_mexc_baseline, args=(book, mexc_pushes["frames"], Scale(*MEXC_SCALE)),
                       rounds=3, setup=lambda: _mexc_book_reset(book, mexc_pushes["snapshot"]),
                       warmup_rounds=0)
    _per_frame(benchmark)
    expected = _expected_mexc_book(mexc_pushes)
    assert book.top(BID) == expected.top(BID) and book.top(ASK) == expected.top(ASK)
