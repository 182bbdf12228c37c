"""Mutation fuzzing of every wire decoder against its reference.

Real recorded Gate.io frames and (synthesized) MEXC pushes are truncated, flipped,
spliced and sprinkled with structural bytes. Each mutant must either decode exactly as
the reference decodes it or raise WireError in both; nothing else may escape.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
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
from wire_data import channel_updates, http_bodies, same_outcome

SEED = 20240611
SPECIAL = b'"{}[],:.-+eE0 9\\\x00\x7f\x80\xc3\xed\xf4\xff'

Case = tuple[Callable[..., int], Callable[..., Any], list[bytes], tuple[int, int, int, int], bool]


def _mutate(rng: random.Random, frame: bytes) -> bytes:
    data = bytearray(frame)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        if not data:
            break
        i = rng.randrange(len(data))
        op = rng.randrange(7)
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
        else:
            data[i] ^= 1 << rng.randrange(8)
    return bytes(data)


def _mexc_pushes(shared: Path) -> list[bytes]:
    """Synthesized protobuf pushes from the published decoded examples plus variants."""
    hb = json.loads((shared / "examples" / "mexc_spot_ws_pb_as_dict.hummingbot.json").read_bytes())
    pushes = [ref_mexc.encode_push(hb["aggre_depth_push"])]
    rng = random.Random(SEED)
    for n in (3, 10, 20):
        levels = [{"price": f"{114800 + rng.randrange(800)}.{rng.randrange(100):02d}",
                   "quantity": f"0.{rng.randrange(10**6):06d}"} for _ in range(n)]
        body = {"asks": levels[: n // 2], "bids": levels[n // 2:], "eventType": "x",
                "fromVersion": "17521975448", "toVersion": "17521975460"}
        pushes.append(ref_mexc.encode_push({"channel": "c", "symbol": "BTCUSDC", "sendTime": "1755973885809",
                                            "publicAggreDepths": body}))
        limit = {"asks": body["asks"], "bids": body["bids"], "version": "36913565463"}
        pushes.append(ref_mexc.encode_push({"symbol": "BTCUSDC", "publicLimitDepths": limit}))
    return pushes


@pytest.fixture(scope="module")
def cases(shared_data: Path) -> list[tuple[Case, int]]:
    cf = shared_data / "cryptofeed"

    def small(frames: list[bytes]) -> list[bytes]:  # keeps the reference side fast
        return [f for f in frames if len(f) < 1500]

    spot = small(channel_updates(cf / "GATEIO.ws.1.0", "spot.order_book_update"))
    futures = small(channel_updates(cf / "GATEIO_FUTURES.ws.1.0", "futures.order_book_update"))
    spot_rest = [b for _, b in http_bodies(cf / "GATEIO.http.0.0")][:3]
    futures_rest = [b for _, b in http_bodies(cf / "GATEIO_FUTURES.http.0.0")][:3]
    docs = json.loads((shared_data / "examples" / "mexc_docs_examples.json").read_bytes())
    contract = [json.dumps(docs["contract_ws_push_depth"]).encode(),
                json.dumps(docs["contract_depth_snapshot_GET_api_v1_contract_depth"]).encode()]
    fine = (8, 1, 10, 1)
    return [
        ((gateio.decode_spot_update, ref_gateio.decode_spot_update, spot, fine, True), 40_000),
        ((gateio.decode_futures_update, ref_gateio.decode_futures_update, futures, (4, 1, 0, 1), True), 30_000),
        ((gateio.decode_spot_snapshot, ref_gateio.decode_spot_snapshot, spot_rest, fine, True), 3_000),
        ((gateio.decode_futures_snapshot, ref_gateio.decode_futures_snapshot, futures_rest, (4, 1, 0, 1), True),
         3_000),
        ((mexc.decode_spot_depth, ref_mexc.decode_spot_depth, _mexc_pushes(shared_data), (2, 1, 6, 1), False),
         20_000),
        ((mexc.decode_futures_depth, ref_mexc.decode_futures_depth, contract[:1], (1, 1, 0, 1), True), 3_000),
        ((mexc.decode_futures_snapshot, ref_mexc.decode_futures_snapshot, contract[1:], (1, 1, 0, 1), True),
         3_000),
    ]


def test_mutated_real_frames_decode_like_reference_or_raise_wire_error(
    cases: list[tuple[Case, int]],
) -> None:
    rng = random.Random(SEED)
    batch = DeltaBatch(8)
    total = decoded = 0
    for (compiled, reference, frames, args, json_escapes), count in cases:
        assert frames
        wire_scale, ref_scale = WireScale(*args), Scale(*args)
        for _ in range(count):
            mutant = _mutate(rng, rng.choice(frames))
            decoded += same_outcome(compiled, reference, mutant, wire_scale, ref_scale, batch,
                                    json_escapes=json_escapes)
            total += 1
    assert total >= 100_000
    assert 0 < decoded < total  # both outcomes were exercised


def test_routing_helpers_only_raise_wire_error(cases: list[tuple[Case, int]]) -> None:
    rng = random.Random(SEED + 1)
    json_frames = cases[0][0][2] + cases[1][0][2]
    pushes = cases[4][0][2]
    for _ in range(20_000):
        for helper, frame in ((gateio.classify, rng.choice(json_frames)),
                              (gateio.frame_symbol, rng.choice(json_frames)),
                              (mexc.classify_futures, rng.choice(json_frames)),
                              (mexc.spot_frame_symbol, rng.choice(pushes)),
                              (mexc.spot_push_body, rng.choice(pushes))):
            try:
                helper(_mutate(rng, frame))
            except WireError:
                pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_hypothesis_mutations_of_a_real_frame(data: st.DataObject, cases: list[tuple[Case, int]]) -> None:
    (compiled, reference, frames, args, json_escapes), _ = data.draw(st.sampled_from(cases))
    frame = bytearray(data.draw(st.sampled_from(frames)))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(frame)))
        frame[i:i + data.draw(st.integers(0, 3))] = data.draw(st.binary(max_size=3))
    same_outcome(compiled, reference, bytes(frame), WireScale(*args), Scale(*args), DeltaBatch(),
                 json_escapes=json_escapes)
