"""Simulated Gate.io pushes: ``order_book_update`` frames of 20 levels from integer levels.

Each timed call encodes MESSAGES frames (10 bids + 10 asks each, the shape of a busy 100 ms
diff); messages per second are reported in extra_info. ``warm`` reuses a bounded set of
sizes (the fragment caches hit, as in a steady simulated book), ``cold`` gives every level a
fresh size (every size is formatted). The baseline in each group builds the same document
as a dict and serialises it with orjson, formatting each number with the same ``plain_decimal``
(futures: prices as strings, whole-contract sizes as JSON integers, in the venue's key order,
so the futures baseline writes the encoder's bytes exactly).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from arb.exchanges.gateio.market_data import GateioFuturesMarketData, GateioSpotMarketData
from arb.exchanges.gateio.sim import FuturesBookEncoder, SpotBookEncoder, plain_decimal
from arb_core.book import DeltaBatch
from arb_core.wire.common import WireScale

MESSAGES = 2000
ROUNDS = 20
SPOT_SCALE = WireScale(8, 1, 10, 1, "BTC_USDT")
FUTURES_SCALE = WireScale(1, 1, 0, 1, "BTC_USDT")
T0_MS = 1_700_000_000_000

Levels = list[tuple[int, int]]


def _messages(cold: bool) -> list[tuple[Levels, Levels]]:
    rng = random.Random(11)
    sizes = [rng.randrange(1, 10**12) for _ in range(64)]
    mid = 6_500_000_000_000  # 65000.00000000 at 8 decimals
    out = []
    for _ in range(MESSAGES):
        pick = (lambda: rng.randrange(0, 10**12)) if cold else (lambda: rng.choice(sizes))
        bids = [(mid - rng.randrange(1, 2000) * 1_000_000, pick()) for _ in range(10)]
        asks = [(mid + rng.randrange(1, 2000) * 1_000_000, pick()) for _ in range(10)]
        out.append((bids, asks))
    return out


def _report(benchmark: Any) -> None:
    stats = benchmark.stats.stats
    benchmark.extra_info["messages_per_s"] = round(MESSAGES / stats.median)


def _run(encode: Callable[[int, Levels, Levels], bytes], messages: list[tuple[Levels, Levels]]) -> list[bytes]:
    return [encode(i + 1, bids, asks) for i, (bids, asks) in enumerate(messages)]


@pytest.mark.parametrize("cold", [False, True], ids=["warm", "cold"])
def test_spot_update_encoder(benchmark: Any, cold: bool) -> None:
    benchmark.group = f"gateio-sim-encode-spot-{'cold' if cold else 'warm'}"
    messages = _messages(cold)
    encoder = SpotBookEncoder("BTC_USDT", SPOT_SCALE)
    update = encoder.update

    def encode(i: int, bids: Levels, asks: Levels) -> bytes:
        return update(i, i, bids, asks, T0_MS + i)

    frames = benchmark.pedantic(_run, args=(encode, messages), rounds=ROUNDS, warmup_rounds=1)
    _report(benchmark)
    batch = DeltaBatch()
    assert GateioSpotMarketData.decode_update(frames[-1], SPOT_SCALE, batch) == 20
    assert batch.last_update_id == MESSAGES


@pytest.mark.parametrize("cold", [False, True], ids=["warm", "cold"])
def test_spot_update_orjson_baseline(benchmark: Any, cold: bool) -> None:
    benchmark.group = f"gateio-sim-encode-spot-{'cold' if cold else 'warm'}"
    messages = _messages(cold)
    dumps = orjson.dumps

    def encode(i: int, bids: Levels, asks: Levels) -> bytes:
        t = T0_MS + i
        return dumps({
            "time": t // 1000, "time_ms": t, "channel": "spot.order_book_update", "event": "update",
            "result": {
                "t": t, "l": "100", "e": "depthUpdate", "E": t // 1000, "s": "BTC_USDT", "U": i, "u": i,
                "b": [[plain_decimal(p, 8), plain_decimal(s, 10)] for p, s in bids],
                "a": [[plain_decimal(p, 8), plain_decimal(s, 10)] for p, s in asks],
            },
        })

    frames = benchmark.pedantic(_run, args=(encode, messages), rounds=ROUNDS, warmup_rounds=1)
    _report(benchmark)
    assert GateioSpotMarketData.decode_update(frames[-1], SPOT_SCALE, DeltaBatch()) == 20


def _futures_messages() -> list[tuple[Levels, Levels]]:
    """The warm spot messages on the futures grid: 0.1 price ticks, whole contracts below 10**6."""
    return [([(p // 10**7, s % 10**6) for p, s in b], [(p // 10**7, s % 10**6) for p, s in a])
            for b, a in _messages(False)]


def test_futures_update_encoder(benchmark: Any) -> None:
    benchmark.group = "gateio-sim-encode-futures-warm"
    messages = _futures_messages()
    update = FuturesBookEncoder("BTC_USDT", FUTURES_SCALE).update

    def encode(i: int, bids: Levels, asks: Levels) -> bytes:
        return update(i, i, bids, asks, T0_MS + i)

    frames = benchmark.pedantic(_run, args=(encode, messages), rounds=ROUNDS, warmup_rounds=1)
    _report(benchmark)
    assert GateioFuturesMarketData.decode_update(frames[-1], FUTURES_SCALE, DeltaBatch()) == 20


def test_futures_update_orjson_baseline(benchmark: Any) -> None:
    benchmark.group = "gateio-sim-encode-futures-warm"
    messages = _futures_messages()
    dumps = orjson.dumps

    def encode(i: int, bids: Levels, asks: Levels) -> bytes:
        t = T0_MS + i
        return dumps({
            "time": t // 1000, "time_ms": t, "channel": "futures.order_book_update", "event": "update",
            "result": {
                "U": i,
                "a": [{"p": plain_decimal(p, 1), "s": s} for p, s in asks],
                "b": [{"p": plain_decimal(p, 1), "s": s} for p, s in bids],
                "s": "BTC_USDT", "t": t, "u": i,
            },
        })

    frames = benchmark.pedantic(_run, args=(encode, messages), rounds=ROUNDS, warmup_rounds=1)
    _report(benchmark)
    assert GateioFuturesMarketData.decode_update(frames[-1], FUTURES_SCALE, DeltaBatch()) == 20
    bids, asks = messages[-1]
    assert frames[-1] == FuturesBookEncoder("BTC_USDT", FUTURES_SCALE).update(MESSAGES, MESSAGES, bids, asks, T0_MS + MESSAGES)
