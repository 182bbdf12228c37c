"""Mutation fuzzing of every wire decoder and routing helper against its reference.

Frames are truncated, flipped, spliced and sprinkled with structural bytes and JSON
escapes. Each mutant must either decode exactly as the reference decodes it or raise
WireError in both; nothing else may escape. Two corpora are mutated: frames synthesized here in the venues'
shapes (Gate.io updates and REST bodies, MEXC protobuf pushes and contract JSON), which
need no recorded data, and the real Gate.io recordings plus the published MEXC examples
from ../shared/data (skipped when absent).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arb_core.book import DeltaBatch
from arb_core.wire import gateio, mexc
from arb_core.wire.common import WireError, WireScale
from reference import wire_gateio as ref_gateio
from reference import wire_mexc as ref_mexc
from reference.wire_common import Scale
from reference.wire_common import WireError as RefWireError
from wire_data import channel_updates, http_bodies, same_outcome, server_frames

SEED = 20240611
SPECIAL = b'"{}[],:.-+eE0 9\\\x00\x7f\x80\xc3\xed\xf4\xff'
# whole JSON escapes: inside a string a mutant stays valid, so it shows where they are read
ESCAPES = (b"\\n", b'\\"', b"\\\\", b"\\/", b"\\u0041", b"\\u00e9")

Case = tuple[Callable[..., int], Callable[..., Any], list[bytes], tuple[int, int, int, int]]
FINE = (8, 1, 10, 1)  # a scale fine enough for every recorded Gate.io spot book
CONTRACTS = (4, 1, 0, 1)


@dataclass
class Corpus:
    """Frames to mutate: decoder cases (with how many mutants each) and the routing helpers' frames."""

    cases: list[tuple[Case, int]]
    gate_frames: list[bytes]  # Gate.io websocket frames of any kind
    contract_frames: list[bytes]  # MEXC contract websocket frames of any kind
    pushes: list[bytes]  # MEXC spot protobuf pushes


def _mutate(rng: random.Random, frame: bytes) -> bytes:
    data = bytearray(frame)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        if not data:
            break
        i = rng.randrange(len(data))
        op = rng.randrange(8)
        if op == 0:
            del data[rng.randrange(len(data) + 1):]
        elif op == 1:
            data[i] = rng.randrange(256)
        elif op == 2:
            data[i] = SPECIAL[rng.randrange(len(SPECIAL))]
        elif op == 3:
            data.insert(i, SPECIAL[rng.randrange(len(SPECIAL))])
        elif op == 4:
            del data[i:i + rng.randrange(1, 8)]
        elif op == 5:
            j = rng.randrange(len(data))
            data[i:i] = data[j:j + rng.randrange(1, 16)]
        elif op == 6:
            data[i:i] = ESCAPES[rng.randrange(len(ESCAPES))]
        else:
            data[i] ^= 1 << rng.randrange(8)
    return bytes(data)


def _compact(doc: object) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def _price(rng: random.Random, base: int, decimals: int) -> str:
    return f"{base + rng.randrange(100)}.{rng.randrange(10**decimals):0{decimals}d}"


def _synthesized_mexc_pushes(rng: random.Random) -> list[bytes]:
    """Aggre and limit depth pushes of 3, 10 and 20 levels, encoded with the reference encoder."""
    pushes = []
    for n in (3, 10, 20):
        levels = [{"price": _price(rng, 114_800, 2), "quantity": f"0.{rng.randrange(10**6):06d}"}
                  for _ in range(n)]
        body = {"asks": levels[: n // 2], "bids": levels[n // 2:], "eventType": "x",
                "fromVersion": "17521975448", "toVersion": "17521975460"}
        pushes.append(ref_mexc.encode_push({"channel": "c", "symbol": "BTCUSDC", "sendTime": "1755973885809",
                                            "publicAggreDepths": body}))
        limit = {"asks": body["asks"], "bids": body["bids"], "version": "36913565463"}
        pushes.append(ref_mexc.encode_push({"symbol": "BTCUSDC", "publicLimitDepths": limit}))
    return pushes


def _synthesized() -> Corpus:
    """Frames in the shapes the venues send (see the decoders' docstrings), built here."""
    rng = random.Random(SEED)
    spot, futures, spot_rest, futures_rest, contract = [], [], [], [], []
    for i in range(12):
        first = 59_231_897 + 10 * i
        n_bids, n_asks = rng.randrange(4), rng.randrange(4)
        spot.append(_compact({
            "time": 1_619_093_542, "channel": "spot.order_book_update", "event": "update",
            "result": {"t": 1_619_093_542_391 + i, "e": "depthUpdate", "E": 1_619_093_542, "s": "OMG_USDT",
                       "U": first, "u": first + rng.randrange(3),
                       "b": [[_price(rng, 7, 3), f"{rng.randrange(500)}.{rng.randrange(1000)}"] for _ in range(n_bids)],
                       "a": [[_price(rng, 8, 3), "0"] for _ in range(n_asks)]}}))
        futures.append(_compact({
            "time": 1_684_930_172, "time_ms": 1_684_930_172_695, "channel": "futures.order_book_update",
            "event": "update",
            "result": {"U": first, "a": [{"p": _price(rng, 56, 2), "s": rng.randrange(300)} for _ in range(n_asks)],
                       "b": [{"p": _price(rng, 55, 2), "s": rng.randrange(300)} for _ in range(n_bids)],
                       "s": "QUICK_USDT", "t": 1_684_930_172_596, "u": first + 1}}))
        contract.append(_compact({
            "channel": "push.depth",
            "data": {"asks": [[float(_price(rng, 6859, 1)), rng.randrange(5000), 1] for _ in range(n_asks)],
                     "bids": [[float(_price(rng, 6800, 1)), rng.randrange(5000)] for _ in range(n_bids)],
                     "version": 96_801_927 + i},
            "symbol": "BTC_USDT", "ts": 1_587_442_022_003 + i}))
    for i in range(3):
        spot_rest.append(_compact({"id": 2_691_446 + i,
                                   "asks": [[_price(rng, 1, 8), f"{rng.randrange(9000)}.{rng.randrange(1000)}"]],
                                   "bids": [[_price(rng, 0, 8), "5360.209"], [_price(rng, 0, 8), "1"]]}))
        futures_rest.append(_compact({"current": 1_684_930_166.384, "update": 1_684_930_166.35,
                                      "asks": [{"s": rng.randrange(1000), "p": _price(rng, 1, 4)}],
                                      "bids": [{"s": 1200, "p": _price(rng, 0, 4)}], "id": 203_083_287 + i}))
    mexc_spot_rest = [
        _compact({"lastUpdateId": 1_112_416 + i, "bids": [[_price(rng, 0, 2), f"{rng.randrange(50_000)}.0"]],
                  "asks": [[_price(rng, 1, 2), "1.0000"], [_price(rng, 1, 2), f"{rng.randrange(9)}"]]})
        for i in range(2)
    ] + [_compact({"lastUpdateId": "0071", "bids": [], "asks": [["101.50", "2"]], "timestamp": 1})]
    contract_rest = [
        _compact({"asks": [[3968.5, 121], [3968.6, 160, 4]], "bids": [[3968.4, 179, 4], [3968, 914, 3]],
                  "version": 1, "timestamp": 1_587_442_022_003}),
        _compact({"success": True, "code": 0, "data": {"asks": [[3968.5, 121]], "bids": [], "version": 7}}),
    ]
    pushes = _synthesized_mexc_pushes(rng)
    gate_replies = [
        b'{"time":1,"channel":"spot.order_book_update","event":"subscribe","error":null,"result":{"status":"success"}}',
        b'{"time":1,"channel":"spot.obu","event":"subscribe","error":{"code":2,"message":"Alert sub"},"result":null}',
        b'{"time":1,"time_ms":1,"channel":"futures.pong","event":"","error":null,"result":null}',
    ]
    contract_replies = [b'{"channel":"pong","data":1587453241453}',
                        b'{"channel":"rs.sub.depth","data":"success","ts":1}',
                        b'{"channel":"push.deal","data":{"p":1.5,"v":2},"symbol":"BTC_USDT","ts":1}']
    return Corpus(
        cases=[
            ((gateio.decode_spot_update, ref_gateio.decode_spot_update, spot, FINE), 8_000),
            ((gateio.decode_futures_update, ref_gateio.decode_futures_update, futures, CONTRACTS), 8_000),
            ((gateio.decode_spot_snapshot, ref_gateio.decode_spot_snapshot, spot_rest, FINE), 2_000),
            ((gateio.decode_futures_snapshot, ref_gateio.decode_futures_snapshot, futures_rest, CONTRACTS),
             2_000),
            ((mexc.decode_spot_depth, ref_mexc.decode_spot_depth, pushes, (2, 1, 6, 1)), 8_000),
            ((mexc.decode_futures_depth, ref_mexc.decode_futures_depth, contract, (1, 1, 0, 1)), 4_000),
            ((mexc.decode_futures_snapshot, ref_mexc.decode_futures_snapshot, contract_rest, (1, 1, 0, 1)),
             2_000),
            ((mexc.decode_spot_snapshot, ref_mexc.decode_spot_snapshot, mexc_spot_rest, (2, 1, 6, 1)), 2_000),
        ],
        gate_frames=spot + futures + gate_replies,
        contract_frames=contract + contract_replies,
        pushes=pushes,
    )


def _recorded(shared: Path) -> Corpus:
    """The real Gate.io recordings and the MEXC frames built from the published examples."""
    cf = shared / "cryptofeed"

    def small(frames: list[bytes]) -> list[bytes]:  # keeps the reference side fast
        return [f for f in frames if len(f) < 1500]

    spot = small(channel_updates(cf / "GATEIO.ws.1.0", "spot.order_book_update"))
    futures = small(channel_updates(cf / "GATEIO_FUTURES.ws.1.0", "futures.order_book_update"))
    spot_rest = [b for _, b in http_bodies(cf / "GATEIO.http.0.0")][:3]
    futures_rest = [b for _, b in http_bodies(cf / "GATEIO_FUTURES.http.0.0")][:3]
    docs = json.loads((shared / "examples" / "mexc_docs_examples.json").read_bytes())
    contract = [json.dumps(docs["contract_ws_push_depth"]).encode(),
                json.dumps(docs["contract_depth_snapshot_GET_api_v1_contract_depth"]).encode()]
    spot_depth = [json.dumps(docs["spot_depth_snapshot_GET_api_v3_depth"]).encode()]
    hb = json.loads((shared / "examples" / "mexc_spot_ws_pb_as_dict.hummingbot.json").read_bytes())
    pushes = [ref_mexc.encode_push(hb["aggre_depth_push"])] + _synthesized_mexc_pushes(random.Random(SEED))
    return Corpus(
        cases=[
            ((gateio.decode_spot_update, ref_gateio.decode_spot_update, spot, FINE), 40_000),
            ((gateio.decode_futures_update, ref_gateio.decode_futures_update, futures, CONTRACTS), 30_000),
            ((gateio.decode_spot_snapshot, ref_gateio.decode_spot_snapshot, spot_rest, FINE), 3_000),
            ((gateio.decode_futures_snapshot, ref_gateio.decode_futures_snapshot, futures_rest, CONTRACTS),
             3_000),
            ((mexc.decode_spot_depth, ref_mexc.decode_spot_depth, pushes, (2, 1, 6, 1)), 20_000),
            ((mexc.decode_futures_depth, ref_mexc.decode_futures_depth, contract[:1], (1, 1, 0, 1)), 3_000),
            ((mexc.decode_futures_snapshot, ref_mexc.decode_futures_snapshot, contract[1:], (1, 1, 0, 1)),
             3_000),
            ((mexc.decode_spot_snapshot, ref_mexc.decode_spot_snapshot, spot_depth, (5, 1, 5, 1)), 3_000),
        ],
        gate_frames=small(server_frames(cf / "GATEIO.ws.1.0") + server_frames(cf / "GATEIO_FUTURES.ws.1.0")),
        contract_frames=contract[:1],
        pushes=pushes,
    )


@pytest.fixture(scope="module")
def synthesized_corpus() -> Corpus:
    return _synthesized()


@pytest.fixture(scope="module")
def recorded_corpus(shared_data: Path) -> Corpus:
    return _recorded(shared_data)


@pytest.fixture(scope="module", params=["synthesized", "recorded"])
def corpus(request: pytest.FixtureRequest) -> Corpus:
    """Each corpus in turn; the recorded one skips without ../shared/data."""
    return request.getfixturevalue(f"{request.param}_corpus")


def test_mutated_frames_decode_like_reference_or_raise_wire_error(corpus: Corpus) -> None:
    rng = random.Random(SEED)
    batch = DeltaBatch(8)
    total = decoded = 0
    for (compiled, reference, frames, args), count in corpus.cases:
        assert frames
        wire_scale, ref_scale = WireScale(*args), Scale(*args)
        for _ in range(count):
            mutant = _mutate(rng, rng.choice(frames))
            decoded += same_outcome(compiled, reference, mutant, wire_scale, ref_scale, batch)
            total += 1
    assert total == sum(count for _, count in corpus.cases)
    assert 0 < decoded < total  # both outcomes were exercised


def _value(call: Callable[[bytes], object], frame: bytes) -> object:
    """What a routing helper returns, or "WireError" for the compiled or the reference one."""
    try:
        return call(frame)
    except (WireError, RefWireError):
        return "WireError"


def test_mutated_frames_route_like_the_reference_helpers(corpus: Corpus) -> None:
    """Every mutant gets from each compiled routing helper what the reference that reads the same
    first members / fields gives (a value or WireError, nothing else escapes); a mutant that is
    still a valid frame also gets what the whole-document reference reads in it."""
    rng = random.Random(SEED + 1)
    # compiled helper, reference reading what it reads, whole-document reference, frames
    helpers: list[tuple[Callable[[bytes], object], Callable[[bytes], object], Callable[[bytes], object],
                        list[bytes]]] = [
        (gateio.classify, ref_gateio.classify_prefix, ref_gateio.classify, corpus.gate_frames),
        (gateio.frame_symbol, ref_gateio.frame_symbol_prefix, ref_gateio.frame_symbol, corpus.gate_frames),
        (mexc.classify_futures, ref_mexc.classify_futures_prefix, ref_mexc.classify_futures,
         corpus.contract_frames),
        (mexc.futures_frame_symbol, ref_mexc.futures_frame_symbol_prefix, ref_mexc.futures_frame_symbol,
         corpus.contract_frames),
        (mexc.spot_frame_symbol, ref_mexc.spot_frame_symbol, ref_mexc.spot_frame_symbol, corpus.pushes),
        (mexc.spot_push_body, ref_mexc.spot_push_body, ref_mexc.spot_push_body, corpus.pushes),
    ]
    valid: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    for _ in range(8_000):
        for compiled, prefix, whole, frames in helpers:
            mutant = _mutate(rng, rng.choice(frames))
            got = _value(compiled, mutant)
            assert got == _value(prefix, mutant), (compiled.__name__, mutant)
            expected = _value(whole, mutant)
            if expected != "WireError" and b"\\" not in mutant:  # a valid frame (escapes aside)
                assert got == expected, (compiled.__name__, mutant)
                valid[compiled.__name__] += 1
            failed[compiled.__name__] += got == "WireError"
    for compiled, *_ in helpers:  # each helper met valid frames and refused some mutants
        assert valid[compiled.__name__] and failed[compiled.__name__], compiled.__name__


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_hypothesis_mutations_of_a_frame(data: st.DataObject, corpus: Corpus) -> None:
    (compiled, reference, frames, args), _ = data.draw(st.sampled_from(corpus.cases))
    frame = bytearray(data.draw(st.sampled_from(frames)))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(frame)))
        frame[i:i + data.draw(st.integers(0, 3))] = data.draw(st.binary(max_size=3))
    same_outcome(compiled, reference, bytes(frame), WireScale(*args), Scale(*args), DeltaBatch())
