"""arb_core.wire.gateio against reference.wire_gateio, on recorded Gate.io frames and generated ones."""

from __future__ import annotations

import json
import pickle
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arb_core.book import ASK, BID, DeltaBatch, OrderBook
from arb_core.wire import gateio
from arb_core.wire.common import BOOK_UPDATE, ERROR, OTHER, PONG, SUBSCRIPTION, WireError, WireScale
from reference import book as ref_book
from reference import wire_gateio as ref
from reference.wire_common import Scale
from reference.wire_common import WireError as RefWireError
from wire_data import (
    ScaleArgs,
    channel_updates,
    gate_futures_scales,
    gate_spot_book_scales,
    gate_spot_scales,
    http_bodies,
    json_values,
    same_outcome,
    scales,
    server_frames,
    snapshot_symbol,
    symbol_of,
)

SPOT_WS = "cryptofeed/GATEIO.ws.1.0"
FUTURES_WS = "cryptofeed/GATEIO_FUTURES.ws.1.0"


@pytest.fixture(scope="module")
def spot_scales(shared_data: Path) -> dict[str, ScaleArgs]:
    """Book scales of the recorded pairs (see wire_data.gate_spot_book_scales)."""
    return gate_spot_book_scales(shared_data)


@pytest.fixture(scope="module")
def futures_scales(shared_data: Path) -> dict[str, ScaleArgs]:
    return gate_futures_scales(shared_data)


@pytest.fixture(scope="module")
def spot_updates(shared_data: Path) -> list[bytes]:
    return channel_updates(shared_data / SPOT_WS, "spot.order_book_update")


@pytest.fixture(scope="module")
def futures_updates(shared_data: Path) -> list[bytes]:
    return channel_updates(shared_data / FUTURES_WS, "futures.order_book_update")


@pytest.fixture(scope="module")
def docs(shared_data: Path) -> dict[str, object]:
    return json.loads((shared_data / "examples" / "gate_docs_ws_examples.json").read_bytes())


# futures -> (compiled update, reference update, compiled snapshot, reference snapshot)
DECODERS = {
    False: (gateio.decode_spot_update, ref.decode_spot_update,
            gateio.decode_spot_snapshot, ref.decode_spot_snapshot),
    True: (gateio.decode_futures_update, ref.decode_futures_update,
           gateio.decode_futures_snapshot, ref.decode_futures_snapshot),
}
REST = {False: "cryptofeed/GATEIO.http.0.0", True: "cryptofeed/GATEIO_FUTURES.http.0.0"}


def _recorded(request: pytest.FixtureRequest, futures: bool) -> tuple[list[bytes], dict[str, ScaleArgs]]:
    """Recorded update frames and scale table of spot or futures."""
    kind = "futures" if futures else "spot"
    return request.getfixturevalue(f"{kind}_updates"), request.getfixturevalue(f"{kind}_scales")


@pytest.mark.parametrize("futures, count", [(False, 172), (True, 352)])
def test_recorded_updates_decode_like_reference(
    request: pytest.FixtureRequest, futures: bool, count: int
) -> None:
    frames, table = _recorded(request, futures)
    compiled, reference, _, _ = DECODERS[futures]
    batch = DeltaBatch()
    assert len(frames) == count
    for frame in frames:
        symbol = symbol_of(frame)
        assert same_outcome(compiled, reference, frame, *scales(table[symbol], symbol), batch)
        assert futures or not batch.is_snapshot  # the 2021 spot feed has no "full" key
        assert gateio.frame_symbol(frame) == symbol.encode()
        assert gateio.classify(frame) == BOOK_UPDATE


@pytest.mark.parametrize("futures", [False, True])
def test_recorded_snapshots_decode_like_reference(
    request: pytest.FixtureRequest, shared_data: Path, futures: bool
) -> None:
    bodies = http_bodies(shared_data / REST[futures])
    assert len(bodies) == 10
    _, table = _recorded(request, futures)
    _, _, compiled, reference = DECODERS[futures]
    batch = DeltaBatch()
    for url, body in bodies:
        assert same_outcome(compiled, reference, body, *scales(table[snapshot_symbol(url)]), batch)
        assert batch.is_snapshot and batch.first_update_id == batch.last_update_id > 0
        assert len(batch) > 0


def test_order_entry_precision_is_too_coarse_for_recorded_spot_books(
    shared_data: Path, spot_updates: list[bytes]
) -> None:
    order_precision = gate_spot_scales(shared_data)
    assert order_precision["HAI_ETH"] == (8, 1, 3, 1) and order_precision["NEO_BTC"][0] == 7
    batch = DeltaBatch()
    hai = next(f for f in spot_updates if b'"HAI_ETH"' in f)
    with pytest.raises(WireError, match=r"result\.b\[1\] at byte 216: more decimals"):
        gateio.decode_spot_update(hai, WireScale(*order_precision["HAI_ETH"]), batch)
    rejected = ref_rejected = 0
    for frame in spot_updates:
        args = order_precision[symbol_of(frame)]
        try:
            gateio.decode_spot_update(frame, WireScale(*args), batch)
        except WireError:
            rejected += 1
        try:
            ref.decode_spot_update(frame, Scale(*args))
        except RefWireError:
            ref_rejected += 1
        # frame by frame too: the same frames are refused and the rest decode alike
        same_outcome(gateio.decode_spot_update, ref.decode_spot_update, frame, WireScale(*args), Scale(*args),
                     batch)
    assert rejected == ref_rejected and 0 < rejected < len(spot_updates)


def test_known_values_of_a_recorded_spot_frame(
    shared_data: Path, spot_updates: list[bytes]
) -> None:
    frame = next(f for f in spot_updates if b'"U":59231897' in f)
    batch = DeltaBatch()
    assert gate_spot_scales(shared_data)["OMG_USDT"] == (3, 1, 3, 1)
    assert gateio.decode_spot_update(frame, WireScale(3, 1, 3, 1, "OMG_USDT"), batch) == 2
    assert batch.levels() == [(BID, 7883, 263375), (BID, 6258, 0)]
    assert (batch.first_update_id, batch.last_update_id, batch.event_time_ms) == (
        59231897, 59231897, 1619093542391)


def test_known_values_of_a_recorded_futures_frame(futures_updates: list[bytes]) -> None:
    frame = next(f for f in futures_updates if b'"U":124930264' in f)
    batch = DeltaBatch()
    gateio.decode_futures_update(frame, WireScale(2, 1, 0, 1, b"QUICK_USDT"), batch)
    assert batch.levels() == [(BID, 5587, 175), (BID, 5593, 0), (BID, 5389, 1)]
    assert (batch.first_update_id, batch.last_update_id, batch.event_time_ms) == (
        124930264, 124930265, 1684930172596)


def test_docs_samples(docs: dict[str, object]) -> None:
    batch = DeltaBatch()
    spot = json.dumps(docs["spot_order_book_update_push"]).encode()
    assert same_outcome(gateio.decode_spot_update, ref.decode_spot_update, spot,
                        *scales((2, 1, 4, 1), "BTC_USDT"), batch)
    assert batch.is_snapshot and batch.levels() == [
        (BID, 1913774, 1), (BID, 1908837, 0), (ASK, 1913775, 6135)]
    futures = json.dumps(docs["futures_order_book_update_push"]).encode()
    assert same_outcome(gateio.decode_futures_update, ref.decode_futures_update, futures,
                        *scales((1, 1, 0, 1), "BTC_USD"), batch)
    assert batch.levels() == [(BID, 546721, 0), (BID, 546645, 58794), (ASK, 547436, 0),
                              (ASK, 547420, 95)]
    assert gateio.classify(json.dumps(docs["spot_pong"]).encode()) == PONG
    assert gateio.classify(json.dumps(docs["spot_obu_subscribe_ack"]).encode()) == SUBSCRIPTION
    # A refused subscription (its "error" not null) is an error reply, not an acknowledgement.
    assert gateio.classify(json.dumps(docs["spot_obu_subscribe_fail_duplicate"]).encode()) == ERROR
    assert gateio.classify(json.dumps(docs["futures_book_ticker_push"]).encode()) == OTHER
    assert gateio.classify(json.dumps(docs["spot_ws_api_order_place_ack"]).encode()) == OTHER


@pytest.mark.parametrize("path, updates, others", [(SPOT_WS, 172, 45), (FUTURES_WS, 352, 76)])
def test_classify_every_recorded_frame_like_reference(shared_data: Path, path: str, updates: int, others: int) -> None:
    """Every server frame of a recording classifies like both references, in the counts the
    recording holds (shared/data/README.md: updates, tickers / trades / candles, 22 acks)."""
    kinds: dict[int, int] = defaultdict(int)
    for frame in server_frames(shared_data / path):
        kind = gateio.classify(frame)
        assert kind == ref.classify(frame) == ref.classify_prefix(frame), frame
        kinds[kind] += 1
    assert kinds == {BOOK_UPDATE: updates, OTHER: others, SUBSCRIPTION: 22}


_MEMBERS = {
    "channel": st.sampled_from(['"spot.order_book_update"', '"spot.obu"', '"spot.pong"', '"futures.order_book"']),
    "event": st.sampled_from(['"subscribe"', '"unsubscribe"', '"update"', '"all"']),
    "error": st.sampled_from(["null", '{"code": 2, "message": "Alert sub"}', '"bad"', "0", "[]", "false"]),
    "result": st.sampled_from(['{"status": "success"}', '{"status": "fail"}', "null"]),
    "time": st.sampled_from(["1747391482", '"x"']),
}


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(sorted(_MEMBERS)), min_size=0, max_size=7).flatmap(
    lambda keys: st.tuples(st.just(keys), st.tuples(*(_MEMBERS[k] for k in keys)))))
def test_classify_matches_reference_whatever_the_order_and_the_error(members: tuple[list[str], tuple[str, ...]]) -> None:
    """(Un)subscribe replies are errors when their "error" is anything but null, wherever it stands
    (before or after "channel" and "event", first occurrence counted); other frames as before."""
    keys, values = members
    frame = ("{" + ", ".join(f'"{k}": {v}' for k, v in zip(keys, values)) + "}").encode()
    assert gateio.classify(frame) == ref.classify(frame) == ref.classify_prefix(frame), frame


# Valid Gate frames of every kind, generated: the routing helpers against both references
# (the whole document, and the first members as the compiled helpers read them) and against
# the kind and symbol the frame was built with.

gate_symbols = st.from_regex(r"[A-Z0-9]{1,10}_(USDT|USDC|USD|BTC|ETH)", fullmatch=True)
# top-level members Gate frames carry besides channel / event / error / result
_EXTRA_KEYS = ("time", "time_ms", "id", "conn_id", "trace_id", "payload", "request_id", "x_gate")


@st.composite
def _shuffled(draw: st.DrawFn, members: dict[str, object]) -> dict[str, object]:
    """``members`` in a drawn order."""
    return {k: members[k] for k in draw(st.permutations(list(members)))}


@st.composite
def _levels(draw: st.DrawFn, futures: bool) -> list[object]:
    prices = draw(st.lists(st.decimals(min_value=0, max_value=10**6, places=4), max_size=4))
    if futures:
        sizes = st.one_of(st.integers(0, 10**6), st.integers(0, 10**6).map(str))
        return [draw(_shuffled({"p": str(p), "s": draw(sizes)})) for p in prices]
    return [[str(p), str(draw(st.decimals(min_value=0, max_value=10**4, places=6)))] for p in prices]


@st.composite
def gate_frames(draw: st.DrawFn) -> tuple[bytes, int, bytes | None]:
    """(frame, expected kind, ``result.s`` or None): book updates, obu / ticker / trade pushes,
    pongs, (un)subscribe replies refused or not, WS-API replies; members in any order, with
    the top-level extras Gate sends, compact or spaced."""
    market = draw(st.sampled_from(["spot", "futures"]))
    symbol = draw(gate_symbols)
    shape = draw(st.sampled_from(["book", "obu", "ticker", "trades", "pong", "reply", "api", "event all"]))
    first = draw(st.integers(0, 2**62))
    members: dict[str, object] = {}
    result_symbol: str | None = None
    if shape in ("book", "obu", "event all"):
        result: dict[str, object] = {
            "t": draw(st.integers(0, 2**50)), "U": first, "u": first + draw(st.integers(0, 50)),
            "b": draw(_levels(market == "futures")), "a": draw(_levels(market == "futures")),
        }
        result_symbol = f"ob.{symbol}.{draw(st.sampled_from([5, 50, 400]))}" if shape == "obu" else symbol
        result["s"] = result_symbol
        if market == "spot" and shape == "book":
            result |= {"e": "depthUpdate", "E": draw(st.integers(0, 2**32))}
        if draw(st.booleans()):
            result["full"] = draw(st.booleans())
        members["channel"] = f"{market}.obu" if shape == "obu" else f"{market}.order_book_update"
        if shape != "obu":  # obu pushes carry no event
            members["event"] = "all" if shape == "event all" else "update"
        members["result"] = draw(_shuffled(result))
        kind = BOOK_UPDATE if shape == "book" else OTHER
    elif shape in ("ticker", "trades"):
        if shape == "ticker":  # futures.book_ticker / spot.book_ticker: the symbol in result.s
            result_symbol = symbol
            result = {"t": draw(st.integers(0, 2**50)), "u": first, "s": symbol, "b": "1.5", "B": 3, "a": "1.6", "A": 4}
        else:
            result = {"id": first, "currency_pair": symbol, "side": "buy", "amount": "1", "price": "2"}
        members |= {"channel": f"{market}.{'book_ticker' if shape == 'ticker' else 'trades'}", "event": "update",
                    "result": draw(_shuffled(result))}
        kind = OTHER
    elif shape == "pong":
        members |= {"channel": f"{market}.pong", "event": "", "result": None}
        if draw(st.booleans()):
            members["error"] = None
        kind = PONG
    elif shape == "reply":
        refused = draw(st.booleans())
        channel = draw(st.sampled_from([f"{market}.order_book_update", f"{market}.obu", f"{market}.trades"]))
        members |= {"channel": channel, "event": draw(st.sampled_from(["subscribe", "unsubscribe"])),
                    "result": {"status": "fail" if refused else "success"}}
        if refused:
            members["error"] = {"code": 2, "message": f"Alert sub ob.{symbol}.400"}
        elif draw(st.booleans()):
            members["error"] = None
        kind = ERROR if refused else SUBSCRIPTION
    else:  # a WS-API reply: channel and event only inside its header
        members |= {"request_id": "request-2", "ack": True,
                    "header": {"channel": f"{market}.order_place", "event": "api", "status": "200"},
                    "data": {"result": {"s": symbol}}}
        kind = OTHER
    for key in draw(st.lists(st.sampled_from(_EXTRA_KEYS), unique=True, max_size=3)):
        members.setdefault(key, draw(json_values))
    spaced = draw(st.booleans())
    frame = json.dumps(draw(_shuffled(members)), separators=(", ", ": ") if spaced else (",", ":"),
                       ensure_ascii=draw(st.booleans()))
    return frame.encode(), kind, None if result_symbol is None else result_symbol.encode()


def _value(call: Callable[[bytes], object], frame: bytes) -> object:
    """What a routing helper returns, or "WireError" for the compiled or the reference one."""
    try:
        return call(frame)
    except (WireError, RefWireError):
        return "WireError"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=gate_frames())
def test_classify_of_generated_frames_matches_both_references(case: tuple[bytes, int, bytes | None]) -> None:
    """classify() gives the kind a valid frame was built as, like the whole-document reference and
    the reference that reads the first members only."""
    frame, kind, _ = case
    assert gateio.classify(frame) == ref.classify(frame) == ref.classify_prefix(frame) == kind, frame


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=gate_frames())
def test_frame_symbol_of_generated_frames_matches_both_references(case: tuple[bytes, int, bytes | None]) -> None:
    """frame_symbol() returns ``result.s`` wherever it stands (nested "s" keys of futures levels
    before it do not count) and fails like the references on frames without it."""
    frame, _, symbol = case
    got = _value(gateio.frame_symbol, frame)
    assert got == _value(ref.frame_symbol, frame) == _value(ref.frame_symbol_prefix, frame), frame
    assert got == (symbol if symbol is not None else "WireError"), frame


# ---------------------------------------------------------------------------
# Bad input

SPOT = (b'{"time":1,"channel":"spot.order_book_update","event":"update","result":'
        b'{"t":5,"s":"OMG_USDT","U":10,"u":12,"b":[["7.883","263.375"]],"a":[["7.9","1"]]}}')
FUTURES = (b'{"channel":"futures.order_book_update","event":"update","result":'
           b'{"U":1,"a":[{"p":"0.2983","s":0}],"b":[],"s":"RDNT_USDT","t":2,"u":1}}')


def _reject(frame: bytes, *fragments: str, futures: bool = False, scale: WireScale | None = None) -> str:
    decode = DECODERS[futures][0]
    scale = scale or (WireScale(4, 1, 0, 1) if futures else WireScale(3, 1, 3, 1))
    with pytest.raises(WireError) as info:
        decode(frame, scale, DeltaBatch())
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_valid_base_frames_decode() -> None:
    batch = DeltaBatch()
    assert gateio.decode_spot_update(SPOT, WireScale(3, 1, 3, 1, "OMG_USDT"), batch) == 2
    assert gateio.decode_futures_update(FUTURES, WireScale(4, 1, 0, 1, "RDNT_USDT"), batch) == 1


def test_precision_finer_than_the_tick_is_rejected() -> None:
    _reject(SPOT.replace(b'"7.883"', b'"7.8831"'), "spot.order_book_update", "result.b[0]",
            "more decimals", "byte 114", "near b'7.8831")
    _reject(SPOT.replace(b'"263.375"', b'"263.3751"'), "result.b[0]", "more decimals")
    _reject(SPOT, "not a whole number", scale=WireScale(3, 5, 3, 1))  # tick 0.005
    _reject(FUTURES.replace(b'"0.2983"', b'"0.29835"'), "result.a[0]", futures=True)


def test_trailing_zeros_beyond_the_precision_are_exact() -> None:
    batch = DeltaBatch()
    gateio.decode_spot_update(SPOT.replace(b'"7.883"', b'"7.88300000"'), WireScale(3, 1, 3, 1), batch)
    assert batch.levels()[0] == (BID, 7883, 263375)


@pytest.mark.parametrize("text", [b"", b"-1", b"+1", b"1e3", b"1E3", b"1..2", b"1.2.3", b".5",
                                  b"5.", b"abc", b" 1", b"1 ", b"0x1", b"\\u0031",
                                  b"99999999999999999999", b"0", b"0.000"])
def test_malformed_or_zero_prices_are_rejected(text: bytes) -> None:
    _reject(SPOT.replace(b'"7.883"', b'"' + text + b'"'), "result.b[0]")


# (frame, futures, whether it decodes): a JSON escape where the decoder reads text byte by byte
# (a key of an object it reads, channel, event, symbol, a price or size string) is refused by
# the compiled decoders and the reference alike; one in a value stepped over is fine.
ESCAPED = {
    "in an unknown value": (SPOT.replace(b'"t":5', b'"e":"depth\\u0055pdate\\n","t":5'), False, True),
    "in a key inside an unknown value": (SPOT.replace(b'"t":5', b'"x":{"\\u0061":[1]},"t":5'), False, True),
    "in an unknown value of a level": (FUTURES.replace(b'"s":0', b'"s":0,"x":"\\/"'), True, True),
    "in an unknown key": (SPOT.replace(b'"t":5', b'"\\u0065":1,"t":5'), False, False),
    "in a known key": (SPOT.replace(b'"event"', b'"\\u0065vent"'), False, False),
    "in a key of a level": (FUTURES.replace(b'"p"', b'"\\u0070"'), True, False),
    "in the channel": (SPOT.replace(b"spot.order", b"spot\\u002eorder"), False, False),
    "in the event": (SPOT.replace(b'"update"', b'"upd\\u0061te"'), False, False),
    "in the symbol": (SPOT.replace(b"OMG_USDT", b"OMG\\u005fUSDT"), False, False),
    "in a price": (SPOT.replace(b'"7.883"', b'"7.88\\u0033"'), False, False),
    "in a size": (SPOT.replace(b'"263.375"', b'"263.37\\u0035"'), False, False),
    "in a contract size string": (FUTURES.replace(b'"s":0', b'"s":"\\u0030"'), True, False),
}


@pytest.mark.parametrize("name", ESCAPED)
def test_escapes_are_refused_where_text_is_read_and_stepped_over_elsewhere(name: str) -> None:
    frame, futures, decodes = ESCAPED[name]
    compiled, reference = DECODERS[futures][:2]
    args = (4, 1, 0, 1) if futures else (3, 1, 3, 1)
    assert same_outcome(compiled, reference, frame, *scales(args), DeltaBatch()) == decodes
    if not decodes:
        with pytest.raises(RefWireError, match="escape in the"):
            reference(frame, Scale(*args))


@pytest.mark.parametrize("size", [b"1.0", b"-1", b"1e2", b"9223372036854775808", b"null", b'"1.5"', b'"-1"', b'""',
                                  b'"1e2"', b'"\\u0031"'])
def test_futures_sizes_must_be_whole_contracts_as_json_integers_or_decimal_strings(size: bytes) -> None:
    _reject(FUTURES.replace(b'"s":0', b'"s":' + size), "result.a[0]", futures=True)


def test_futures_sizes_as_decimal_strings_read_as_the_same_integers() -> None:
    """Gate writes contract sizes as strings in its newer answers (futures.obu levels, orders);
    a book whose updates changed to them never came in sync."""
    numbers = FUTURES.replace(b'"b":[]', b'"b":[{"s":95,"p":"0.2981"}]')
    strings = numbers.replace(b'"s":0', b'"s":"0"').replace(b'"s":95', b'"s":"95.0"')
    batches = []
    for frame in (numbers, strings):
        batch = DeltaBatch()
        assert gateio.decode_futures_update(frame, WireScale(4, 1, 0, 1, "RDNT_USDT"), batch) == 2
        batches.append(list(batch.levels()))
    assert batches[0] == batches[1] == [(ASK, 2983, 0), (BID, 2981, 95)]


@pytest.mark.parametrize("old, new, field", [
    (b'"U":10,', b"", "result.U"),
    (b'"u":12,', b"", "result.u"),
    (b'"s":"OMG_USDT",', b"", "result.s"),
    (b'"event":"update",', b"", "event"),
    (b'"channel":"spot.order_book_update",', b"", "channel"),
    (b'"U":10', b'"U":"10"', "result.U"),
    (b'"U":10', b'"U":13', "result.U"),  # U above u
    (b'"U":10', b'"U":-1', "result.U"),
    (b'"t":5', b'"t":5,"full":1', "result.full"),
    (b'"t":5', b'"t":5,"U":10', "result.U"),  # duplicate
    (b'"b":[["7.883","263.375"]]', b'"b":{}', "result.b"),
    (b'["7.883","263.375"]', b'["7.883"]', "result.b[0]"),
    (b'["7.883","263.375"]', b'["7.883","263.375","1"]', "result.b[0]"),
    (b'["7.883","263.375"]', b"[]", "result.b[0]"),
    (b'["7.883","263.375"]', b'[7.883,"263.375"]', "result.b[0]"),
    (b'"event":"update"', b'"event":"subscribe"', "event"),
    (b'"spot.order_book_update"', b'"spot.trades"', "channel"),
])
def test_missing_wrong_or_duplicate_fields_are_rejected(old: bytes, new: bytes, field: str) -> None:
    assert old in SPOT
    _reject(SPOT.replace(old, new, 1), field)


def test_symbol_of_another_instrument_is_rejected() -> None:
    _reject(SPOT, "result.s", "unexpected value", scale=WireScale(3, 1, 3, 1, "BTC_USDT"))


@pytest.mark.parametrize("frame", [b"", b" ", b"[]", b"null", b"{}", SPOT + b"x", SPOT + b"{}",
                                   SPOT.replace(b"OMG", b"\xff\xfeG"), SPOT[:-1] + b"\x00}",
                                   b"{" * 200 + b"}" * 200, SPOT.replace(b'"time":1', b'"time":NaN')])
def test_garbage_frames_are_rejected(frame: bytes) -> None:
    _reject(frame, "gateio spot.order_book_update")


def test_every_truncation_of_real_frames_is_rejected(
    spot_updates: list[bytes], futures_updates: list[bytes]
) -> None:
    batch = DeltaBatch()
    spot_scale, futures_scale = WireScale(8, 1, 8, 1), WireScale(4, 1, 0, 1)
    cases = 0
    for frame, decode, scale in [(spot_updates[0], gateio.decode_spot_update, spot_scale),
                                 (spot_updates[-1], gateio.decode_spot_update, spot_scale),
                                 (futures_updates[100], gateio.decode_futures_update, futures_scale)]:
        decode(frame, scale, batch)
        for end in range(len(frame)):
            with pytest.raises(WireError):
                decode(frame[:end], scale, batch)
            cases += 1
    assert cases > 1000


def test_any_contiguous_buffer_is_accepted_and_other_arguments_are_checked() -> None:
    scale, batch = WireScale(3, 1, 3, 1), DeltaBatch()
    for buf in (SPOT, bytearray(SPOT), memoryview(SPOT), memoryview(b"xx" + SPOT)[2:]):
        assert gateio.decode_spot_update(buf, scale, batch) == 2
    with pytest.raises(BufferError):  # strided views are refused before any decoding
        gateio.decode_spot_update(memoryview(SPOT)[::2], scale, batch)
    with pytest.raises(TypeError):
        gateio.decode_spot_update(None, scale, batch)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        gateio.decode_spot_update(SPOT.decode(), scale, batch)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        gateio.decode_spot_update(SPOT, None, batch)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        gateio.decode_spot_update(SPOT, scale, None)  # type: ignore[arg-type]


@pytest.mark.parametrize("args", [(-1, 1, 0, 1), (19, 1, 0, 1), (0, 0, 0, 1), (0, 1, 0, 0),
                                  (0, 1, 19, 1), (0, 1, -1, 1)])
def test_wire_scale_validates_its_arguments(args: tuple[int, int, int, int]) -> None:
    with pytest.raises(ValueError):
        WireScale(*args)
    with pytest.raises(ValueError):
        WireScale(2, 1, 2, 1, symbol=b"")


def test_a_wire_scale_cannot_exist_unchecked() -> None:
    """Every instance passes the checks (the decoders divide by the units unchecked): there is no
    bare ``__new__`` and no pickle state to set; pickling goes back through the constructor."""
    with pytest.raises(TypeError):
        WireScale.__new__(WireScale)
    assert not hasattr(WireScale(2, 1, 2, 1), "__setstate_cython__")
    scale = WireScale(2, 5, 3, 1, symbol="BTC_USDT")
    assert pickle.loads(pickle.dumps(scale)) == scale
    assert scale.__reduce__() == (WireScale, (2, 5, 3, 1, b"BTC_USDT", False))
    floored = WireScale(2, 5, 3, 1, "BTC_USDT", floor_sizes=True)
    assert pickle.loads(pickle.dumps(floored)) == floored != scale


def test_frame_symbol_and_classify_reject_garbage() -> None:
    for bad in (b"", b"[", b'{"result":{"a":1}}', b'{"result":null}', b'{"result":{"s":1}}'):
        with pytest.raises(WireError):
            gateio.frame_symbol(bad)
    for bad in (b"", b"[]", b'{"channel":1}', b'{"channel":"x"'):
        with pytest.raises(WireError):
            gateio.classify(bad)


# ---------------------------------------------------------------------------
# Replays: REST snapshot + recorded diffs through OrderBook vs the reference book


@pytest.mark.parametrize("futures, min_applied", [(False, 50), (True, 100)])
def test_replay_matches_the_reference_book(
    request: pytest.FixtureRequest, shared_data: Path, futures: bool, min_applied: int
) -> None:
    update, ref_update, snapshot, ref_snapshot = DECODERS[futures]
    frames, table = _recorded(request, futures)
    books: dict[str, tuple[OrderBook, ref_book.OrderBook, WireScale, Scale]] = {}
    batch = DeltaBatch()
    for url, body in http_bodies(shared_data / REST[futures]):
        symbol = snapshot_symbol(url)
        wscale, rscale = scales(table[symbol], symbol)
        book, expected = OrderBook(symbol), ref_book.OrderBook(symbol)
        snapshot(body, wscale, batch)
        book.apply_snapshot(batch, 0)
        expected.apply_snapshot(ref_snapshot(body, rscale), 0)
        books[symbol] = (book, expected, wscale, rscale)
    applied = 0
    for frame in frames:
        book, expected, wscale, rscale = books[symbol_of(frame)]
        update(frame, wscale, batch)
        status = book.apply_batch(batch, 1)
        assert status == expected.apply_batch(ref_update(frame, rscale), 1)
        applied += status == ref_book.APPLIED
    for book, expected, _, _ in books.values():
        assert book.in_sync and book.last_update_id == expected.last_update_id
        for side in (BID, ASK):
            assert book.top(side, 10_000) == expected.top(side, 10_000)
        assert book.best_bid_price() < book.best_ask_price()
    assert applied > min_applied


# ---------------------------------------------------------------------------
# Differential: generated frames through both decoders

digits = st.text("0123456789", min_size=1, max_size=22)
numbers = st.one_of(
    st.builds(lambda w, f: w + ("." + f if f else ""), digits, st.one_of(st.just(""), digits)),
    st.integers(0, 10**12).map(str),
    st.text("0123456789.-+eE x", max_size=8),
)
spot_level = st.tuples(numbers, numbers).map(lambda pq: f'["{pq[0]}","{pq[1]}"]')
futures_size = st.one_of(st.integers(0, 2**64).map(str), numbers, st.integers(0, 2**64).map(lambda n: f'"{n}"'),
                         numbers.map(lambda n: f'"{n}"'))
futures_level = st.tuples(numbers, futures_size).map(lambda ps: f'{{"p":"{ps[0]}","s":{ps[1]}}}')
scale_args = st.tuples(st.integers(0, 10), st.sampled_from([1, 1, 2, 5, 25]),
                       st.integers(0, 10), st.sampled_from([1, 1, 2, 10]))


@st.composite
def update_frames(draw: st.DrawFn, futures: bool) -> bytes:
    level = futures_level if futures else spot_level
    first = draw(st.integers(0, 2**63))
    members = {
        '"s"': '"X_USDT"',
        '"U"': str(first),
        '"u"': str(first + draw(st.integers(-1, 5))),
        '"b"': "[" + ",".join(draw(st.lists(level, max_size=6))) + "]",
        '"a"': "[" + ",".join(draw(st.lists(level, max_size=6))) + "]",
    }
    if draw(st.booleans()):
        members['"t"'] = str(draw(st.integers(0, 2**64)))
    if draw(st.booleans()):
        members['"full"'] = draw(st.sampled_from(["true", "false", "1"]))
    keys = draw(st.permutations(list(members)))
    result = "{" + ",".join(f"{k}:{members[k]}" for k in keys) + "}"
    channel = "futures.order_book_update" if futures else "spot.order_book_update"
    return f'{{"time":1,"channel":"{channel}","event":"update","result":{result}}}'.encode()


@pytest.mark.parametrize("futures", [False, True])
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), args=scale_args, floor=st.booleans())
def test_generated_update_frames_match_reference(futures: bool, data: st.DataObject,
                                                 args: ScaleArgs, floor: bool) -> None:
    compiled, reference, _, _ = DECODERS[futures]
    same_outcome(compiled, reference, data.draw(update_frames(futures=futures)),
                 WireScale(*args, floor_sizes=floor), Scale(*args, floor_sizes=floor), DeltaBatch(4))


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(numbers, st.text(max_size=12)), args=scale_args, floor=st.booleans())
def test_generated_prices_and_sizes_match_reference(text: str, args: ScaleArgs, floor: bool) -> None:
    """A price is exact whatever the scale says of sizes; a size is rounded down where it floors them."""
    for field in (b"7.883", b"263.375"):  # the frame's bid price, then its size
        frame = SPOT.replace(field, text.encode("utf-8", "surrogatepass"), 1)
        same_outcome(gateio.decode_spot_update, ref.decode_spot_update, frame,
                     WireScale(*args, floor_sizes=floor), Scale(*args, floor_sizes=floor), DeltaBatch())


def test_a_size_finer_than_a_flooring_scale_is_rounded_down_and_a_price_still_refused() -> None:
    scale = WireScale(3, 1, 2, 1, floor_sizes=True)
    batch = DeltaBatch()
    gateio.decode_spot_snapshot(b'{"id":1,"asks":[["7.883","0.129"],["7.884","0.009"]],"bids":[]}', scale, batch)
    assert batch.levels() == [(ASK, 7883, 12), (ASK, 7884, 0)]  # under a lot: 0, no level
    with pytest.raises(WireError, match="more decimals than the instrument precision"):
        gateio.decode_spot_snapshot(b'{"id":1,"asks":[["7.8831","1"]],"bids":[]}', scale, batch)
