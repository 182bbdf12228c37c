"""Simulator hot path: encoding MEXC depth pushes from integer levels (target >= 50,000/s per venue).

Each timed call encodes MESSAGES pushes of 20 levels (10 bids, 10 asks) drawn from a book
of 60 price levels per side with random sizes; messages/s is reported in extra_info.
Baselines in the same group: the reference protobuf encoder over the equivalent decoded
dict (tests/reference/wire_mexc.py) for spot, and orjson over the equivalent dict for the
contract JSON push.
"""

from __future__ import annotations

import json
import random
from decimal import Decimal
from typing import Any

import orjson
import pytest

from arb.exchanges.mexc.sim import MexcFuturesDepthEncoder, MexcSpotDepthEncoder
from arb.instruments import Instrument
from arb.types import ExchangeName
from arb_core.book import ASK, BID, DeltaBatch
from arb_core.wire import mexc
from arb_core.wire.common import WireScale
from reference import wire_mexc as ref

MESSAGES = 1000
ROUNDS = 20
SPOT = Instrument(
    exchange=ExchangeName.MEXC, symbol="BTC/USDT", venue_symbol="BTCUSDT", base="BTC", quote="USDT",
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


def _updates(mid: int) -> list[list[tuple[int, int, int]]]:
    rng = random.Random(11)
    bids = list(range(mid - 60, mid))
    asks = list(range(mid + 1, mid + 61))
    out = []
    for _ in range(MESSAGES):
        levels = [(ASK, p, 0 if rng.random() < 0.2 else rng.randrange(1, 10**8)) for p in rng.sample(asks, 10)]
        levels += [(BID, p, 0 if rng.random() < 0.2 else rng.randrange(1, 10**8)) for p in rng.sample(bids, 10)]
        out.append(levels)
    return out


def _report(benchmark: Any) -> None:
    benchmark.extra_info["messages_per_s"] = round(MESSAGES / benchmark.stats.stats.median)


@pytest.mark.benchmark(group="sim encode: mexc spot protobuf push, 20 levels")
def test_spot_push_encoder(benchmark: Any) -> None:
    updates = _updates(11_000_000)

    def run(push: Any) -> list[bytes]:
        return [push(levels, 1000 + 2 * k, 1001 + 2 * k, 1755973885809 + k) for k, levels in enumerate(updates)]

    # a fresh encoder per round: its price/size text caches start empty (sizes rarely repeat)
    frames = benchmark.pedantic(run, setup=lambda: ((MexcSpotDepthEncoder(SPOT).push,), {}), rounds=ROUNDS)
    _report(benchmark)
    batch = DeltaBatch()
    mexc.decode_spot_depth(frames[-1], WireScale(*SPOT.wire_scale(), symbol=b"BTCUSDT"), batch)
    assert batch.levels() == updates[-1] and batch.last_update_id == 1001 + 2 * (MESSAGES - 1)


@pytest.mark.benchmark(group="sim encode: mexc spot protobuf push, 20 levels")
def test_spot_push_reference_encoder_baseline(benchmark: Any) -> None:
    updates = _updates(11_000_000)

    def text(units: int, decimals: int) -> str:
        return f"{units // 10**decimals}.{units % 10**decimals:0{decimals}d}"

    docs = []
    for k, levels in enumerate(updates):
        items = {side: [{"price": text(p, 2), "quantity": text(s, 6)} for sd, p, s in levels if sd == side]
                 for side in (ASK, BID)}
        docs.append({"channel": "spot@public.aggre.depth.v3.api.pb@100ms@BTCUSDT", "symbol": "BTCUSDT",
                     "sendTime": str(1755973885809 + k),
                     "publicAggreDepths": {"asks": items[ASK], "bids": items[BID],
                                           "eventType": "spot@public.aggre.depth.v3.api.pb@100ms",
                                           "fromVersion": str(1000 + 2 * k), "toVersion": str(1001 + 2 * k)}})
    encode = ref.encode_push

    frames = benchmark.pedantic(lambda: [encode(d) for d in docs], rounds=ROUNDS, warmup_rounds=1)
    _report(benchmark)
    assert frames[-1] == MexcSpotDepthEncoder(SPOT).push(updates[-1], 1000 + 2 * (MESSAGES - 1),
                                                          1001 + 2 * (MESSAGES - 1), 1755973885809 + MESSAGES - 1)


@pytest.mark.benchmark(group="sim encode: mexc contract JSON push.depth, 20 levels")
def test_futures_push_encoder(benchmark: Any) -> None:
    updates = _updates(1_000_000)

    def run(push: Any) -> list[str]:
        return [push(levels, 5000 + k, 1587442022003 + k) for k, levels in enumerate(updates)]

    frames = benchmark.pedantic(run, setup=lambda: ((MexcFuturesDepthEncoder(FUTURES).push,), {}), rounds=ROUNDS)
    _report(benchmark)
    batch = DeltaBatch()
    mexc.decode_futures_depth(frames[-1].encode(), WireScale(*FUTURES.wire_scale(), symbol=b"BTC_USDT"), batch)
    assert batch.levels() == updates[-1] and batch.last_update_id == 5000 + MESSAGES - 1


@pytest.mark.benchmark(group="sim encode: mexc contract JSON push.depth, 20 levels")
def test_futures_push_orjson_baseline(benchmark: Any) -> None:
    updates = _updates(1_000_000)
    # orjson writes 100000.0 for a float; MEXC writes exact decimals, so this baseline is
    # only the cost reference, checked for structure rather than bytes.
    docs = [{"channel": "push.depth",
             "data": {"asks": [[p / 10, s, 1 if s else 0] for sd, p, s in levels if sd == ASK],
                      "bids": [[p / 10, s, 1 if s else 0] for sd, p, s in levels if sd == BID],
                      "version": 5000 + k},
             "symbol": "BTC_USDT", "ts": 1587442022003 + k} for k, levels in enumerate(updates)]
    dumps = orjson.dumps

    frames = benchmark.pedantic(lambda: [dumps(d) for d in docs], rounds=ROUNDS, warmup_rounds=1)
    _report(benchmark)
    assert json.loads(frames[-1])["data"]["version"] == 5000 + MESSAGES - 1
