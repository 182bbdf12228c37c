"""arb_core.router against its reference (tests/reference/router.py), and BookSync on top of it.

Frames are real Gate.io recordings and synthesized MEXC pushes (MEXC publishes no raw
protobuf recording). Every outcome is compared: return code, exception class, last_slot,
per-slot counters and the books level by level. The MEXC tests need no recorded data;
the Gate.io ones skip without ../shared/data.

The router reads a diff in the venue's compact shape in a single pass and sends every
other frame through the three steps (classify, frame symbol, decode). Each comparison
also drives a ``single_pass=False`` router over its own books, which must agree with the
default one exactly, exception messages included.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loopback import RecordingSink, run

from arb.exchanges.book_sync import BookSpec, BookSync
from arb.exchanges.gateio.market_data import GateioFuturesMarketData, GateioSpotMarketData
from arb.exchanges.mexc.market_data import MexcFuturesMarketData, MexcSpotMarketData
from arb.types import ExchangeName
from arb_core import router
from arb_core.book import ASK, BID, DeltaBatch, OrderBook
from arb_core.wire.common import WireScale
from reference import book as ref_book
from reference import router as ref_router
from reference import wire_mexc as ref_mexc
from reference.wire_common import Decoded, Scale
from wire_data import channel_updates, gate_futures_scales, gate_spot_book_scales, http_bodies, snapshot_symbol

SEED = 20261125
SPECIAL = b'"{}[],:.-+eE0 9\x00\x7f\x80\xc3\xed\xf4\xff\x08\x12\x1a\x22'
GATE_DIALECTS = (router.DIALECT_GATEIO_SPOT, router.DIALECT_GATEIO_FUTURES)
MEXC_DIALECTS = (router.DIALECT_MEXC_SPOT, router.DIALECT_MEXC_FUTURES)
DIALECTS = GATE_DIALECTS + MEXC_DIALECTS
REF_DECODE: dict[int, Callable[[bytes, Scale], Decoded]] = {
    d: spec.decode for d, spec in ref_router.DIALECTS.items()
}


@dataclass
class Pool:
    """Frames of one dialect: diffs by symbol, other frames, and each symbol's scale."""

    dialect: int
    scales: dict[str, tuple[int, int, int, int]]
    diffs: dict[str, list[bytes]] = field(default_factory=dict)
    others: list[bytes] = field(default_factory=list)
    floor_sizes: bool = False  # the scales round sizes down, as the engine's spot books do

    @property
    def frames(self) -> list[bytes]:
        return [f for frames in self.diffs.values() for f in frames]

    def wire_scale(self, symbol: str) -> WireScale:
        """The compiled scale of ``symbol``'s book, naming it."""
        return WireScale(*self.scales[symbol], symbol=symbol.encode(), floor_sizes=self.floor_sizes)

    def ref_scale(self, symbol: str) -> Scale:
        """The reference decoders' scale of ``symbol``'s book."""
        return Scale(*self.scales[symbol], symbol=symbol.encode(), floor_sizes=self.floor_sizes)


def _gate_pool(dialect: int, frames: list[bytes], scales: dict[str, tuple[int, int, int, int]], prefix: str) -> Pool:
    pool = Pool(dialect, {}, floor_sizes=dialect == router.DIALECT_GATEIO_SPOT)
    for frame in frames:
        symbol = json.loads(frame)["result"]["s"]
        if symbol in scales and len(frame) < 1500:
            pool.diffs.setdefault(symbol, []).append(frame)
            pool.scales[symbol] = scales[symbol]
    some = next(iter(pool.diffs.values()))[0]
    pool.others += [
        some.replace(b'"result":{', b'"result":{"full":true,', 1),  # a full push
        some.replace(b'"event":"update"', b'"event":"all"', 1),
        b'{"time":1,"time_ms":1,"channel":"%s.pong","event":"","result":null}' % prefix.encode(),
        b'{"time":1,"channel":"%s.order_book_update","event":"subscribe","result":{"status":"success"}}'
        % prefix.encode(),
    ]
    return pool


def _levels(rng: random.Random, base: int, n: int, decimals: int, size_text: Callable[[], str]) -> list[Any]:
    prices = [f"{base + rng.randrange(200)}.{rng.randrange(10**decimals):0{decimals}d}" for _ in range(n)]
    return [(price, size_text()) for price in prices]


def _mexc_spot_pool() -> Pool:
    rng = random.Random(SEED)
    pool = Pool(router.DIALECT_MEXC_SPOT, {}, floor_sizes=True)
    for symbol, base in (("BTCUSDT", 100_000), ("ETHUSDT", 3_000), ("MXUSDT", 1_000)):
        pool.scales[symbol] = (2, 1, 6, 1)
        version = 17_521_975_448 + rng.randrange(1000)
        frames = pool.diffs.setdefault(symbol, [])
        for _ in range(25):
            step = rng.randrange(1, 4)
            # Some quantities finer than the 6-decimal grid, as MEXC's docs show them: rounded down.
            size = (lambda: "0" if rng.random() < 0.2 else f"0.{rng.randrange(1, 10**6):06d}" if rng.random() < 0.7
                    else f"0.{rng.randrange(1, 10**8):08d}")
            bids = [{"price": p, "quantity": q} for p, q in _levels(rng, base - 400, rng.randrange(4), 2, size)]
            asks = [{"price": p, "quantity": q} for p, q in _levels(rng, base + 200, rng.randrange(4), 2, size)]
            body = {"asks": asks, "bids": bids, "eventType": "spot@public.aggre.depth.v3.api.pb@100ms",
                    "fromVersion": str(version + 1), "toVersion": str(version + step)}
            version += step
            frames.append(ref_mexc.encode_push({
                "channel": f"spot@public.aggre.depth.v3.api.pb@100ms@{symbol}", "symbol": symbol,
                "sendTime": str(1_755_973_885_809 + version % 1000), "publicAggreDepths": body}))
    limit = {"asks": [{"price": "100200.00", "quantity": "1.5"}], "bids": [], "version": "17521975999"}
    deals = {"deals": [{"price": "1.00", "quantity": "2", "tradeType": 1, "time": 1}], "eventType": "x"}
    pool.others += [
        ref_mexc.encode_push({"symbol": "BTCUSDT", "publicLimitDepths": limit}),
        ref_mexc.encode_push({"symbol": "BTCUSDT", "sendTime": "1", "publicAggreDeals": deals}),
        b'{"id":1,"code":0,"msg":"spot@public.aggre.depth.v3.api.pb@100ms@BTCUSDT"}',
        b'{"id":0,"code":0,"msg":"PONG"}',
        b"",
    ]
    return pool


def _mexc_futures_pool() -> Pool:
    rng = random.Random(SEED + 1)
    pool = Pool(router.DIALECT_MEXC_FUTURES, {})
    for symbol, base in (("BTC_USDT", 60_000), ("ETH_USDT", 3_000)):
        pool.scales[symbol] = (1, 1, 0, 1)
        version = 96_801_927 + rng.randrange(1000)
        frames = pool.diffs.setdefault(symbol, [])
        for _ in range(25):
            version += 1
            size = (lambda: str(0 if rng.random() < 0.2 else rng.randrange(1, 5000)))
            bids = [[float(p), int(q), 1] for p, q in _levels(rng, base - 400, rng.randrange(4), 1, size)]
            asks = [[float(p), int(q)] for p, q in _levels(rng, base + 200, rng.randrange(4), 1, size)]
            doc = {"channel": "push.depth", "data": {"asks": asks, "bids": bids, "version": version},
                   "symbol": symbol, "ts": 1_587_442_022_003 + version % 1000}
            frames.append(json.dumps(doc, separators=(",", ":")).encode())
    pool.others += [
        b'{"channel":"pong","data":1587453241453}',
        b'{"channel":"rs.sub.depth","data":"success","ts":1}',
        b'{"channel":"push.deal","data":{},"symbol":"BTC_USDT"}',
    ]
    return pool


@pytest.fixture(scope="module")
def recorded_pools(shared_data: Path) -> dict[int, Pool]:
    """The Gate.io pools: recorded frames, so these skip without ../shared/data."""
    cf = shared_data / "cryptofeed"
    return {
        router.DIALECT_GATEIO_SPOT: _gate_pool(
            router.DIALECT_GATEIO_SPOT, channel_updates(cf / "GATEIO.ws.1.0", "spot.order_book_update"),
            gate_spot_book_scales(shared_data), "spot"),
        router.DIALECT_GATEIO_FUTURES: _gate_pool(
            router.DIALECT_GATEIO_FUTURES,
            channel_updates(cf / "GATEIO_FUTURES.ws.1.0", "futures.order_book_update"),
            gate_futures_scales(shared_data), "futures"),
    }


@pytest.fixture(scope="module")
def synthesized_pools() -> dict[int, Pool]:
    """The MEXC pools: synthesized frames, available without any recorded data."""
    return {router.DIALECT_MEXC_SPOT: _mexc_spot_pool(), router.DIALECT_MEXC_FUTURES: _mexc_futures_pool()}


def _pools_of(request: pytest.FixtureRequest, dialects: tuple[int, ...]) -> dict[int, Pool]:
    return request.getfixturevalue("recorded_pools" if dialects == GATE_DIALECTS else "synthesized_pools")


@pytest.fixture
def pool(request: pytest.FixtureRequest, dialect: int) -> Pool:
    """The pool of the test's ``dialect`` parameter (Gate.io's skip without the recorded data)."""
    return _pools_of(request, GATE_DIALECTS if dialect in GATE_DIALECTS else MEXC_DIALECTS)[dialect]


@pytest.fixture(scope="module", params=[GATE_DIALECTS, MEXC_DIALECTS], ids=["gateio", "mexc"])
def venue_pools(request: pytest.FixtureRequest) -> dict[int, Pool]:
    """The pools of one venue, for the hypothesis tests that draw the dialect."""
    return _pools_of(request, request.param)


def _mutate(rng: random.Random, frame: bytes) -> bytes:
    data = bytearray(frame)
    for _ in range(rng.choice((1, 1, 2, 3))):
        if not data:
            break
        i = rng.randrange(len(data))
        op = rng.randrange(6)
        if op == 0:
            del data[rng.randrange(len(data) + 1):]
        elif op == 1:
            data[i] = SPECIAL[rng.randrange(len(SPECIAL))]
        elif op == 2:
            data.insert(i, SPECIAL[rng.randrange(len(SPECIAL))])
        elif op == 3:
            del data[i:i + rng.randrange(1, 8)]
        elif op == 4:
            j = rng.randrange(len(data))
            data[i:i] = data[j:j + rng.randrange(1, 16)]
        else:
            data[i] ^= 1 << rng.randrange(8)
    return bytes(data)


def _outcome(call: Callable[[], int]) -> int | str:
    try:
        return call()
    except Exception as exc:  # compared by class name: compiled and reference raise twins
        return type(exc).__name__


def _detailed(call: Callable[[], int]) -> int | str:
    try:
        return call()
    except Exception as exc:  # the single pass and the three steps raise the very same error
        return f"{type(exc).__name__}: {exc}"


class Twin:
    """The compiled router (single pass), a three-step compiled router and the reference
    router, each over its own books, driven in lockstep."""

    def __init__(self, pool: Pool, symbols: list[str]) -> None:
        self.pool = pool
        self.compiled = router.BookRouter(pool.dialect)
        self.exact = router.BookRouter(pool.dialect, single_pass=False)
        self.reference = ref_router.BookRouter(pool.dialect)
        self.books: list[OrderBook] = []
        self.exact_books: list[OrderBook] = []
        self.ref_books: list[ref_book.OrderBook] = []
        self.symbols = symbols
        for symbol in symbols:
            book, exact, ref = OrderBook(symbol), OrderBook(symbol), ref_book.OrderBook(symbol)
            raw, scale = symbol.encode(), pool.wire_scale(symbol)
            slot = self.compiled.add_book(raw, book, scale)
            assert slot == self.exact.add_book(raw, exact, scale) == len(self.books)
            assert slot == self.reference.add_book(raw, ref, pool.ref_scale(symbol))
            self.books.append(book)
            self.exact_books.append(exact)
            self.ref_books.append(ref)

    def snapshot(self, slot: int, rows: list[tuple[int, int, int]], last_update_id: int) -> None:
        batch = DeltaBatch()
        for side, price, size in rows:
            batch.add(side, price, size)
        batch.first_update_id = batch.last_update_id = last_update_id
        batch.is_snapshot = True
        ref = Decoded(list(rows), last_update_id, last_update_id, 0, True)
        got = _outcome(lambda: self.books[slot].apply_snapshot(batch, 5))
        assert got == _outcome(lambda: self.exact_books[slot].apply_snapshot(batch, 5))
        assert got == _outcome(lambda: self.ref_books[slot].apply_snapshot(ref, 5))
        self.check_book(slot)

    def snapshot_near(self, slot: int, frame: bytes, offset: int) -> None:
        """A snapshot built from ``frame``'s own levels, ending ``offset`` ids before it starts."""
        symbol = self.symbols[slot]
        decoded = REF_DECODE[self.pool.dialect](frame, self.pool.ref_scale(symbol))
        rows = {(side, price): size for side, price, size in decoded.rows if size}
        self.snapshot(slot, [(s, p, q) for (s, p), q in rows.items()], decoded.first_update_id - 1 - offset)

    def desync(self, slot: int) -> None:
        for books in (self.books, self.exact_books, self.ref_books):
            books[slot].mark_out_of_sync()

    def route(self, frame: bytes, recv_ns: int = 7) -> int | str:
        """Route ``frame`` through every router (the reference refuses JSON escapes where the compiled
        decoders do, so it takes every frame too)."""
        got = _detailed(lambda: self.compiled.route(frame, recv_ns))
        assert got == _detailed(lambda: self.exact.route(frame, recv_ns)), frame
        assert self.compiled.last_slot == self.exact.last_slot, frame
        want = _outcome(lambda: self.reference.route(frame, recv_ns))
        assert (got if isinstance(got, int) else got.partition(":")[0]) == want, frame
        assert self.compiled.last_slot == self.reference.last_slot, frame
        if self.compiled.last_slot >= 0:
            self.check_book(self.compiled.last_slot)
        return got if isinstance(got, int) else got.partition(":")[0]

    def check_book(self, slot: int) -> None:
        book, exact, ref = self.books[slot], self.exact_books[slot], self.ref_books[slot]
        state = (book.in_sync, book.last_update_id, book.last_recv_ns, book.last_event_ms)
        assert state == (exact.in_sync, exact.last_update_id, exact.last_recv_ns, exact.last_event_ms)
        assert state == (ref.in_sync, ref.last_update_id, ref.last_recv_ns, ref.last_event_ms)
        for side in (BID, ASK):
            assert book.top(side, 10_000) == exact.top(side, 10_000) == ref.top(side, 10_000)

    def check_all(self) -> None:
        assert self.compiled.slots == self.exact.slots == len(self.books)
        for slot in range(len(self.books)):
            assert self.compiled.applied(slot) == self.exact.applied(slot)
            assert self.compiled.stale(slot) == self.exact.stale(slot)
            assert self.compiled.applied(slot) == self.reference.applied(slot)
            assert self.compiled.stale(slot) == self.reference.stale(slot)
            self.check_book(slot)
        assert self.exact.single_pass_frames == 0


# --- contract and boundary ----------------------------------------------------------------------


def test_contract_constants() -> None:
    assert (router.ROUTE_APPLIED, router.ROUTE_STALE, router.ROUTE_OTHER) == (0, 1, 2)
    assert len({router.DIALECT_NONE, *DIALECTS}) == 5
    assert GateioSpotMarketData.router_dialect == router.DIALECT_GATEIO_SPOT
    assert GateioFuturesMarketData.router_dialect == router.DIALECT_GATEIO_FUTURES
    assert MexcSpotMarketData.router_dialect == router.DIALECT_MEXC_SPOT
    assert MexcFuturesMarketData.router_dialect == router.DIALECT_MEXC_FUTURES


def test_arguments_are_checked_at_the_boundary() -> None:
    with pytest.raises(ValueError, match="dialect"):
        router.BookRouter(99)
    r = router.BookRouter(router.DIALECT_GATEIO_SPOT)
    scale = WireScale(2, 1, 4, 1)
    assert r.add_book(b"AAA_USDT", OrderBook(), scale) == 0
    with pytest.raises(ValueError, match="already registered"):
        r.add_book(b"AAA_USDT", OrderBook(), scale)
    with pytest.raises(ValueError, match="empty"):
        r.add_book(b"", OrderBook(), scale)
    with pytest.raises(TypeError):
        r.add_book("AAA", OrderBook(), scale)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        r.add_book(b"BBB", None, scale)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        r.add_book(b"BBB", OrderBook(), None)  # type: ignore[arg-type]
    for bad in (-1, 1, 2**40):
        with pytest.raises(ValueError, match="slot"):
            r.applied(bad)
        with pytest.raises(ValueError, match="slot"):
            r.stale(bad)
    with pytest.raises(TypeError):
        r.route("{}", 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        r.route(None, 0)  # type: ignore[arg-type]
    frame = b'{"channel":"spot.order_book_update","event":"update","result":{"s":"AAA_USDT"}}'
    assert r.route(frame, 0) == router.ROUTE_OTHER and r.last_slot == 0  # found, out of sync
    with pytest.raises(OverflowError):
        r.route(frame, 2**63)
    assert r.last_slot == -1  # refused before any book was looked at
    for not_an_integer in (1_700_000_000_123.9, D("99.99")):  # a clock in the wrong unit or type
        assert r.route(frame, 0) == router.ROUTE_OTHER and r.last_slot == 0
        with pytest.raises(TypeError):
            r.route(frame, not_an_integer)  # type: ignore[arg-type]
        assert r.last_slot == -1
    assert (r.applied(0), r.stale(0), r.slots) == (0, 0, 1)


def test_non_contiguous_buffers_are_refused() -> None:
    r = router.BookRouter(router.DIALECT_GATEIO_SPOT)
    with pytest.raises(BufferError):
        r.route(memoryview(b"{}" * 8)[::2], 0)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_dialect_none_routes_nothing(pool: Pool) -> None:
    """A DIALECT_NONE router leaves every dialect's diffs to the Python path, even for a known symbol."""
    r = router.BookRouter(router.DIALECT_NONE)
    symbol, frames = next(iter(pool.diffs.items()))
    r.add_book(symbol.encode(), OrderBook(), WireScale(*pool.scales[symbol]))
    assert r.route(frames[0], 0) == router.ROUTE_OTHER and r.last_slot == -1


def test_hundreds_of_books_each_found_by_its_symbol() -> None:
    r = router.BookRouter(router.DIALECT_MEXC_FUTURES)
    books = []
    for i in range(700):
        book = OrderBook(str(i))
        name = f"S{i}_USDT".encode()
        assert r.add_book(name, book, WireScale(1, 1, 0, 1, symbol=name)) == i
        books.append(book)
    batch = DeltaBatch()
    for i in range(0, 700, 7):
        books[i].apply_snapshot(batch, 0)
        frame = b'{"channel":"push.depth","data":{"asks":[[1.5,2]],"bids":[],"version":1},"symbol":"S%d_USDT"}' % i
        assert r.route(frame, 0) == router.ROUTE_APPLIED and r.last_slot == i
        assert books[i].best_ask() == (15, 2) and r.applied(i) == 1
    assert r.route(b'{"channel":"push.depth","data":{},"symbol":"S700_USDT"}', 0) == router.ROUTE_OTHER
    assert r.last_slot == -1 and r.slots == 700


@pytest.mark.parametrize("dialect", DIALECTS)
def test_steady_state_applies_counts_and_fails_like_the_reference(pool: Pool) -> None:
    symbol = max(pool.diffs, key=lambda s: len(pool.diffs[s]))
    twin = Twin(pool, [symbol])
    frames = pool.diffs[symbol]
    assert twin.route(frames[0]) == router.ROUTE_OTHER  # out of sync: the Python path buffers it
    twin.snapshot_near(0, frames[0], 0)
    seen = Counter(twin.route(f) for f in frames)
    assert seen[router.ROUTE_APPLIED] > 0
    assert twin.route(frames[0]) in (router.ROUTE_STALE, router.ROUTE_OTHER)
    # a gap marks the book out of sync and names it
    twin.snapshot_near(0, frames[-1], 5)
    assert twin.route(frames[-1]) == "SequenceGapError" and twin.compiled.last_slot == 0
    assert not twin.books[0].in_sync
    for other in pool.others:
        assert twin.route(other) == router.ROUTE_OTHER
    twin.check_all()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_malformed_frame_for_an_in_sync_book_raises_with_the_slot(pool: Pool, dialect: int) -> None:
    symbol = next(iter(pool.diffs))
    twin = Twin(pool, [symbol])
    frame = pool.diffs[symbol][0]
    twin.snapshot_near(0, frame, 0)
    if dialect == router.DIALECT_MEXC_SPOT:
        broken = frame[:-1]  # the push's last level cut short
    else:
        broken = frame[:-1] + b",}"
    assert twin.route(broken) == "WireError" and twin.compiled.last_slot == 0
    assert twin.books[0].in_sync  # the router leaves the resync to its caller
    twin.check_all()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_scale_naming_another_symbol_refuses_the_diff(pool: Pool) -> None:
    """A book registered under one symbol with the scale of another (a wiring mistake) takes none
    of its diffs: the single pass reads the frame only for a scale naming its symbol, and both
    paths raise the same WireError."""
    symbol, other = list(pool.diffs)[:2]
    frame = pool.diffs[symbol][0]
    args = pool.scales[symbol]
    first_id = REF_DECODE[pool.dialect](
        frame, Scale(*args, symbol=symbol.encode(), floor_sizes=pool.floor_sizes)
    ).first_update_id
    outcomes = []
    for named, single_pass in ((symbol, True), (other, True), (other, False)):
        r = router.BookRouter(pool.dialect, single_pass=single_pass)
        book = OrderBook(symbol)
        r.add_book(symbol.encode(), book, WireScale(*args, symbol=named.encode(), floor_sizes=pool.floor_sizes))
        snapshot = DeltaBatch()
        snapshot.first_update_id = snapshot.last_update_id = first_id - 1
        snapshot.is_snapshot = True
        book.apply_snapshot(snapshot, 5)
        outcomes.append(_detailed(lambda: r.route(frame, 7)))
        assert r.last_slot == 0 and r.single_pass_frames == r.applied(0) == (named == symbol)
        if named != symbol:
            assert book.last_update_id == first_id - 1 and book.bid_count == book.ask_count == 0
    assert outcomes[0] == router.ROUTE_APPLIED  # with its own scale, the single pass reads this diff
    assert isinstance(outcomes[1], str) and outcomes[1].startswith("WireError: ") and outcomes[1] == outcomes[2]


def test_full_push_is_left_to_the_python_path(recorded_pools: dict[int, Pool]) -> None:
    pool = recorded_pools[router.DIALECT_GATEIO_SPOT]
    symbol, frames = next(iter(pool.diffs.items()))
    twin = Twin(pool, [symbol])
    twin.snapshot_near(0, frames[0], 0)
    before = twin.books[0].top(BID, 1000)
    full = frames[0].replace(b'"result":{', b'"result":{"full":true,', 1)
    assert twin.route(full) == router.ROUTE_OTHER and twin.compiled.last_slot == 0
    assert twin.books[0].top(BID, 1000) == before and twin.compiled.applied(0) == 0


# --- differential: random sequences -------------------------------------------------------------


@settings(max_examples=125, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_sequences_match_the_reference(data: st.DataObject, venue_pools: dict[int, Pool]) -> None:
    pool = venue_pools[data.draw(st.sampled_from(sorted(venue_pools)), label="dialect")]
    symbols = data.draw(st.lists(st.sampled_from(sorted(pool.diffs)), min_size=1, unique=True), label="books")
    twin = Twin(pool, symbols)
    frames = pool.frames  # includes symbols without a book
    rng = random.Random(data.draw(st.integers(0, 2**32), label="seed"))
    for _ in range(data.draw(st.integers(1, 60), label="steps")):
        op = data.draw(st.sampled_from(("diff",) * 8 + ("snapshot", "snapshot", "desync", "mutant", "other")))
        if op == "snapshot":
            slot = data.draw(st.integers(0, len(symbols) - 1))
            frame = data.draw(st.sampled_from(pool.diffs[symbols[slot]]))
            twin.snapshot_near(slot, frame, data.draw(st.integers(-3, 3)))
        elif op == "desync":
            slot = data.draw(st.integers(0, len(symbols) - 1))
            twin.desync(slot)
        elif op == "other":
            twin.route(data.draw(st.sampled_from(pool.others)))
        elif op == "mutant":
            twin.route(_mutate(rng, data.draw(st.sampled_from(frames))))
        else:
            twin.route(data.draw(st.sampled_from(frames)), data.draw(st.integers(0, 2**62)))
    twin.check_all()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_mutated_real_frames_route_like_the_reference(pool: Pool, dialect: int) -> None:
    """Mutation fuzzing through route(): never a crash, always the reference's outcome (the
    reference classifies and reads symbols with its own helpers, not the compiled ones)."""
    rng = random.Random(SEED + dialect)
    outcomes: Counter[int | str] = Counter()
    symbols = sorted(pool.diffs)
    twin = Twin(pool, symbols)
    slot_of = {f: slot for slot, symbol in enumerate(symbols) for f in pool.diffs[symbol]}
    frames = pool.frames + pool.others
    for _ in range(10_000):
        original = rng.choice(frames)
        if original in slot_of and rng.random() < 0.5:  # the unmutated frame would continue the book
            twin.snapshot_near(slot_of[original], original, 0)
        mutant = _mutate(rng, original)
        if b"\\" in mutant:
            continue
        outcomes[twin.route(mutant)] += 1
    twin.check_all()
    assert outcomes[router.ROUTE_APPLIED] and outcomes[router.ROUTE_OTHER] and outcomes["WireError"]


# --- the single pass against the three steps ----------------------------------------------------
#
# The single pass may only ever accept what the three steps decode the same way. The routers in
# ``Twin`` check that on every frame; these tests feed frames next to the compact shape (blanks,
# odd numbers, unknown or repeated members, protobuf fields of every kind), say which ones the
# single pass is expected to read, and generate many more.

_PLAIN_VALUES = [b'"x"', b"0", b"12", b"1.25", b"true", b"false", b"null", b"[]", b"{}"]
_ODD_VALUES = [
    b'"caf\xc3\xa9"', b'"a\\"b"', b'"\\u00e9"', b"-1", b"1e5", b"-0.5E-3", b'[1,[2,{"a":[]}],"b"]',
    b'{"b":[["1","2"]],"s":"X"}', b" 7", b"[ ]", b"012", b"1.", b'"\x01"', b"nul", b"{", b"9" * 30,
]


def _with_member(frame: bytes, anchor: bytes, member: bytes) -> bytes:
    """``member`` (``"key":value``) inserted right after ``anchor``'s first occurrence."""
    at = frame.index(anchor) + len(anchor)
    return frame[:at] + member + b"," + frame[at:]


def _span(frame: bytes, pattern: bytes) -> tuple[int, int]:
    """Where the first match of ``pattern``'s group 1 lies in ``frame``."""
    match = re.search(pattern, frame)
    assert match is not None, (pattern, frame)
    return match.span(1)


def _gate_variants(frame: bytes, futures: bool) -> dict[str, tuple[bytes, bool | None]]:
    """Variants of a Gate diff: name -> (frame, True when the single pass must read it, False when
    it must decline it, None when either is fine)."""
    p0, p1 = _span(frame, rb'"p":"(\d+(?:\.\d+)?)"' if futures else rb'\[\["(\d+(?:\.\d+)?)"')
    u0, u1 = _span(frame, rb'"U":(\d+)')
    out: dict[str, tuple[bytes, bool | None]] = {
        "as recorded": (frame, True),
        "result first": (b'{"result":' + frame[frame.index(b"{", 1):-1] + b"," + frame[1:frame.index(b'"result"') - 1] + b"}", True),
        "unknown members": (_with_member(_with_member(frame, b'"result":{', b'"zz":{"a":[1,2.5,"x"]}'), b"{", b'"q":null'), True),
        "full false": (_with_member(frame, b'"result":{', b'"full":false'), True),
        "full true": (_with_member(frame, b'"result":{', b'"full":true'), False),
        "blank after colon": (frame.replace(b'"event":', b'"event": ', 1), False),
        "blank inside result": (frame.replace(b'"result":{', b'"result":{ ', 1), False),
        "trailing newline": (frame + b"\n", False),
        "escaped unknown value": (_with_member(frame, b"{", b'"note":"a\\u00e9\\n"'), True),
        "utf-8 unknown value": (_with_member(frame, b"{", b'"note":"caf\xc3\xa9"'), True),
        "negative unknown number": (_with_member(frame, b"{", b'"q":-1.5e3'), True),
        "leading zeros in a price": (frame[:p0] + b"00" + frame[p0:], None),
        "19 digits in a price": (frame[:p1] + (b"" if b"." in frame[p0:p1] else b".") + b"0" * 19 + frame[p1:], False),
        "zero price": (frame[:p0] + b"0" + frame[p1:], False),
        "19-digit id": (frame[:u0] + b"1" + b"0" * 18 + frame[u1:], False),
        "id beyond int64": (frame[:u0] + b"9" * 20 + frame[u1:], False),
        "leading zero in an id": (frame[:u0] + b"0" + frame[u0:], False),
        "fractional id": (frame[:u1] + b".0" + frame[u1:], False),
        "U above u": (frame[:u0] + b"9" + frame[u0:], False),
        "repeated U": (_with_member(frame, b'"result":{', b'"U":%s' % frame[u0:u1]), False),
        "repeated channel": (_with_member(frame, b"{", frame[frame.index(b'"channel"'):frame.index(b',"event"')]), False),
        "escaped key": (frame.replace(b'"event"', b'"\\u0065vent"', 1), False),
        "other channel": (frame.replace(b"order_book_update", b"order_book", 1), False),
        "symbol of no book": (frame.replace(b'"s":"', b'"s":"NO', 1), None),
        "no symbol": (re.sub(rb',?"s":"[A-Z0-9_]+"', b"", frame, count=1).replace(b"{,", b"{"), False),
        "bytes after the document": (frame + b"{}", False),
        "cut short": (frame[:-1], False),
    }
    if futures:
        s0, s1 = _span(frame, rb'"s":(\d+)')
        out |= {
            "extra level member": (frame.replace(b'{"p":', b'{"x":[0],"p":', 1), True),
            "size before price": (re.sub(rb'\{"p":("[^"]*"),"s":(\d+)\}', rb'{"s":\2,"p":\1}', frame, count=1), True),
            "repeated size": (frame[:s1] + b',"s":1' + frame[s1:], False),
            "fractional size": (frame[:s1] + b".0" + frame[s1:], False),
            "quoted size": (frame[:s0] + b'"' + frame[s0:s1] + b'"' + frame[s1:], True),  # contracts as a decimal string
            "negative size": (frame[:s0] + b"-" + frame[s0:], False),
        }
    else:
        out |= {
            "three-element level": (frame.replace(b'"]', b'","1"]', 1), False),
            "bare price": (frame[:p0 - 1] + frame[p0:p1] + frame[p1 + 1:], False),
            "price with exponent": (frame[:p1] + b"e0" + frame[p1:], False),
        }
    return out


def _mexc_futures_variants(frame: bytes) -> dict[str, tuple[bytes, bool | None]]:
    p0, p1 = _span(frame, rb"\[\[(\d+(?:\.\d+)?),")
    return {
        "as generated": (frame, True),
        "symbol first": (b'{"symbol":"' + json.loads(frame)["symbol"].encode() + b'",' + frame[1:].replace(
            b',"symbol":"%s"' % json.loads(frame)["symbol"].encode(), b""), True),
        "unknown members": (_with_member(_with_member(frame, b'"data":{', b'"data":{"x":1}'), b"{", b'"q":[]'), True),
        "no ts": (re.sub(rb',"ts":\d+', b"", frame), True),
        "blank between levels": (frame.replace(b"],[", b"], [", 1), False),
        "negative order count": (frame.replace(b",1]", b",-1]", 1), False),
        "fractional order count": (frame.replace(b",1]", b",1.5]", 1), False),
        "four-element level": (frame.replace(b",1]", b",1,1]", 1), False),
        "price with exponent": (frame[:p1] + b"e0" + frame[p1:], False),
        "leading zero in a price": (frame[:p0] + b"0" + frame[p0:], False),
        "negative price": (frame[:p0] + b"-" + frame[p0:], False),
        "quoted price": (frame[:p0] + b'"' + frame[p0:p1] + b'"' + frame[p1:], False),
        "repeated version": (_with_member(frame, b'"data":{', b'"version":1'), False),
        "version outside data": (_with_member(frame, b"{", b'"version":1'), True),
        "other channel": (frame.replace(b"push.depth", b"push.deal", 1), False),
        "bytes after the document": (frame + b" ", False),
    }


def _pb(field: int, wire_type: int, payload: bytes | int) -> bytes:
    if wire_type == 0:
        return ref_mexc.tag(field, 0) + ref_mexc.varint(int(payload))
    assert isinstance(payload, bytes)
    return ref_mexc.tag(field, wire_type) + (ref_mexc.varint(len(payload)) + payload if wire_type == 2 else payload)


def _long_varint(value: int) -> bytes:
    """``value`` as a varint one byte longer than needed (still valid protobuf)."""
    raw = bytearray(ref_mexc.varint(value))
    raw[-1] |= 0x80
    return bytes(raw) + b"\x00"


def _mexc_spot_variants(frame: bytes) -> dict[str, tuple[bytes, bool | None]]:
    pb = ref_mexc._Pb(frame)
    fields: list[tuple[int, int, bytes]] = []  # (field, wire type, raw field bytes)
    while pb.more():
        start = pb.pos
        field_no, wire_type = pb.tag()
        pb.skip(field_no, wire_type)
        fields.append((field_no, wire_type, frame[start:pb.pos]))
    raw = {f: r for f, _, r in fields}
    body_at = frame.index(raw[313])
    price = re.search(rb"\n\x08(\d+\.\d+)", frame)
    assert price is not None
    p0, p1 = price.span(1)
    group = ref_mexc.tag(9, 3) + _pb(1, 0, 5) + ref_mexc.tag(9, 4)
    return {
        "as generated": (frame, True),
        "body first": (raw[313] + b"".join(r for f, _, r in fields if f != 313), True),
        "unknown fields": (_pb(7, 0, 2**40) + _pb(8, 1, b"\x00" * 8) + _pb(10, 5, b"\x01" * 4) + frame, True),
        "a group": (group + frame, False),
        "long tag varint": (frame.replace(raw[3], _long_varint(3 << 3 | 2) + raw[3][1:], 1), True),
        "repeated symbol": (raw[3] + frame, False),
        "repeated sendTime": (_pb(6, 0, 1) + frame, False),
        "sendTime beyond int64": (frame.replace(raw[6], _pb(6, 0, 2**63)), False),
        "sendTime as bytes": (frame.replace(raw[6], _pb(6, 2, b"1")), False),
        "no symbol": (frame.replace(raw[3], b""), False),
        "top-N book": (frame.replace(raw[313][:2], ref_mexc.tag(303, 2), 1), False),
        "deals before depth": (_pb(314, 2, b"") + frame, False),
        "leading zeros in a price": (frame[:p0 - 1] + bytes([p1 - p0 + 2]) + b"00" + frame[p0:], None),
        "price without fraction digits": (frame[:p0 - 1] + bytes([p1 - p0 - 2]) + frame[p0:p1 - 2] + frame[p1:], None),
        "empty price": (frame[:p0 - 1] + b"\x00" + frame[p1:], False),
        "cut short": (frame[:-1], False),
        "length past the end": (frame[:body_at] + raw[313][:2] + b"\x7f" + frame[body_at + 3:], False),
    }


def _variant_pool(pool: Pool) -> tuple[str, bytes]:
    symbol = max(pool.diffs, key=lambda s: len(pool.diffs[s]))
    frame = max((f for f in pool.diffs[symbol] if len(f) < 600), key=lambda f: f.count(b","))  # the most levels
    return symbol, frame


def _variants(pool: Pool, dialect: int) -> tuple[str, bytes, dict[str, tuple[bytes, bool | None]]]:
    symbol, frame = _variant_pool(pool)
    if dialect == router.DIALECT_GATEIO_SPOT:
        return symbol, frame, _gate_variants(frame, False)
    if dialect == router.DIALECT_GATEIO_FUTURES:
        return symbol, frame, _gate_variants(frame, True)
    if dialect == router.DIALECT_MEXC_SPOT:
        return symbol, frame, _mexc_spot_variants(frame)
    return symbol, frame, _mexc_futures_variants(frame)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_frames_next_to_the_compact_shape_route_like_the_three_steps(
    pool: Pool, dialect: int
) -> None:
    symbol, base, variants = _variants(pool, dialect)
    outcomes = {}
    for name, (frame, single) in variants.items():
        twin = Twin(pool, [symbol])
        twin.snapshot_near(0, base, 0)
        outcomes[name] = twin.route(frame)
        twin.check_all()
        if single is not None:
            assert twin.compiled.single_pass_frames == int(single), name
    assert outcomes["as recorded" if "as recorded" in outcomes else "as generated"] == router.ROUTE_APPLIED
    # declining is never refusing: frames off the compact shape still apply through the three steps
    declined = [n for n, (_, single) in variants.items() if single is False and outcomes[n] == router.ROUTE_APPLIED]
    assert declined and "WireError" in outcomes.values() and router.ROUTE_OTHER in outcomes.values()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_single_pass_reads_every_diff_of_the_stream(pool: Pool) -> None:
    for symbol, frames in pool.diffs.items():
        twin = Twin(pool, [symbol])
        twin.snapshot_near(0, frames[0], 0)
        routed = 0
        for frame in frames:
            before = twin.compiled.single_pass_frames
            outcome = twin.route(frame)
            if outcome in (router.ROUTE_APPLIED, router.ROUTE_STALE):
                assert twin.compiled.single_pass_frames == before + 1, frame
                routed += 1
        assert routed and twin.compiled.applied(0) + twin.compiled.stale(0) == routed
        twin.check_all()


# Structure-aware edits: each keeps a frame close to valid, so that the single pass, not only the
# three steps, has to decide.

_JSON_EDITS = ("blank", "lead0", "trail0", "digit", "member", "repeat", "exponent", "sign", "cut")


def _edit_json(rng: random.Random, frame: bytes, edit: str) -> bytes:
    numbers = [m.span() for m in re.finditer(rb"\d+(?:\.\d+)?", frame)]
    tokens = [m.end() for m in re.finditer(rb"[:,\[\]{}]", frame)]
    if not numbers or not tokens or b"{" not in frame:
        return frame[:-1]
    a, b = rng.choice(numbers)
    if edit == "blank":
        at = rng.choice(tokens)
        return frame[:at] + rng.choice((b" ", b"\n", b"\t", b"\r ")) + frame[at:]
    if edit == "lead0":
        return frame[:a] + b"0" * rng.randrange(1, 3) + frame[a:]
    if edit == "trail0":
        zeros = b"0" * rng.choice((1, 2, 9, 20))
        return frame[:b] + (zeros if b"." in frame[a:b] else b"." + zeros) + frame[b:]
    if edit == "digit":
        at = rng.randrange(a, b)
        return frame[:at] + str(rng.randrange(10)).encode() + frame[at + 1:] if frame[at:at + 1] != b"." else frame
    if edit == "member":
        at = rng.choice([m.end() for m in re.finditer(rb"\{", frame)])
        value = rng.choice(_PLAIN_VALUES + _ODD_VALUES)
        return frame[:at] + b'"%s":%s,' % (rng.choice((b"k", b"t", b"s", b"U", b"full", b"data", b"p")), value) + frame[at:]
    if edit == "repeat":
        members = list(re.finditer(rb'"[A-Za-z]+":(?:"[^"]*"|\d+)', frame))
        if not members:
            return frame
        member = rng.choice(members)
        return frame[:member.end()] + b"," + member.group() + frame[member.end():]
    if edit == "exponent":
        return frame[:b] + rng.choice((b"e0", b"E+1", b"e-2")) + frame[b:]
    if edit == "sign":
        return frame[:a] + b"-" + frame[a:]
    return frame[: rng.randrange(len(frame) + 1)]


_PB_VALUES: list[tuple[int, bytes | int]] = [(0, 0), (0, 2**63), (0, 2**64 - 1), (1, b"\x00" * 8), (5, b"\xff" * 4),
                                            (2, b""), (2, b"x"), (2, b"1.5"), (2, b"\x0a\x02\x08\x01")]


def _edit_pb(rng: random.Random, frame: bytes, edit: str) -> bytes:
    """Protobuf edits on a push built by ``_pb_push`` (``edit`` picks one at random)."""
    if edit == "cut":
        return frame[: rng.randrange(len(frame) + 1)]
    if edit == "digit":
        digits = [i for i, c in enumerate(frame) if 48 <= c <= 57]
        if not digits:
            return frame
        at = rng.choice(digits)
        return frame[:at] + rng.choice((b"0", b"7", b".", b"-", b"e")) + frame[at + 1:]
    wire_type, value = rng.choice(_PB_VALUES)
    field_no = rng.choice((1, 2, 3, 4, 5, 6, 7, 303, 313, 314, 999))
    return _pb(field_no, wire_type, value) + frame


def _decimal(rng: random.Random, whole: int, places: int) -> str:
    text = str(whole) + ("." + "".join(rng.choice("0123456789") for _ in range(places)) if places else "")
    return rng.choice(("", "", "", "0")) + text + ("0" * rng.choice((0, 0, 0, 1, 12)) if "." in text else "")


def _pb_push(rng: random.Random, symbol: str, first: int, last: int) -> bytes:
    """An aggre depth push whose fields come in any order, with unknown fields of every kind."""
    levels = []
    for _ in range(rng.randrange(4)):
        item = [_pb(1, 2, _decimal(rng, rng.randrange(1, 200_000), rng.choice((0, 1, 2, 2, 3))).encode()),
                _pb(2, 2, _decimal(rng, rng.randrange(0, 50), rng.choice((0, 6, 6, 7))).encode())]
        if rng.random() < 0.2:
            item.append(_pb(rng.choice((3, 9)), *rng.choice(_PB_VALUES)))
        rng.shuffle(item)
        levels.append(_pb(rng.choice((1, 2)), 2, b"".join(item)))
    body = levels + [_pb(4, 2, str(first).encode()), _pb(5, 2, str(last).encode()),
                     _pb(3, 2, b"spot@public.aggre.depth.v3.api.pb@100ms")]
    rng.shuffle(body)
    top = [_pb(1, 2, f"spot@public.aggre.depth.v3.api.pb@100ms@{symbol}".encode()), _pb(3, 2, symbol.encode()),
           _pb(6, 0, 1_755_973_885_809 + first), _pb(313, 2, b"".join(body))]
    if rng.random() < 0.3:
        top.append(_pb(rng.choice((7, 8, 20, 400)), *rng.choice(_PB_VALUES)))
    rng.shuffle(top)
    return b"".join(top)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_edited_frames_route_like_the_three_steps(data: st.DataObject, venue_pools: dict[int, Pool]) -> None:
    dialect = data.draw(st.sampled_from(sorted(venue_pools)), label="dialect")
    pool = venue_pools[dialect]
    rng = random.Random(data.draw(st.integers(0, 2**32), label="seed"))
    symbols = sorted(pool.diffs)
    twin = Twin(pool, symbols)
    for _ in range(data.draw(st.integers(1, 12), label="frames")):
        slot = rng.randrange(len(symbols))
        if dialect == router.DIALECT_MEXC_SPOT:
            first = rng.randrange(1, 10**12)
            base = _pb_push(rng, symbols[slot], first, first + rng.randrange(3))
            edits = data.draw(st.lists(st.sampled_from(("field", "digit", "cut")), max_size=2), label="edits")
            frame = base
            for edit in edits:
                frame = _edit_pb(rng, frame, edit)
        else:
            base = rng.choice(pool.diffs[symbols[slot]])
            edits = data.draw(st.lists(st.sampled_from(_JSON_EDITS), max_size=2), label="edits")
            frame = base
            for edit in edits:
                frame = _edit_json(rng, frame, edit)
        try:
            twin.snapshot_near(slot, base, rng.choice((0, 0, 1)))
        except ValueError:  # a generated push the reference refuses (e.g. a price too fine): no snapshot
            twin.desync(slot)
        twin.route(frame)
    twin.check_all()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_mutated_frames_with_escapes_route_like_the_three_steps(pool: Pool, dialect: int) -> None:
    """Mutation fuzzing with JSON escapes fed in too, the reference among the routers."""
    rng = random.Random(SEED + 2 + dialect)
    outcomes: Counter[int | str] = Counter()
    symbols = sorted(pool.diffs)
    twin = Twin(pool, symbols)
    slot_of = {f: slot for slot, symbol in enumerate(symbols) for f in pool.diffs[symbol]}
    frames = pool.frames + pool.others
    for _ in range(4_000):
        original = rng.choice(frames)
        if original in slot_of:
            twin.snapshot_near(slot_of[original], original, 0)
        mutant = _mutate(rng, original)
        if rng.random() < 0.3:
            at = rng.randrange(len(mutant) + 1)
            mutant = mutant[:at] + rng.choice((b"\\", b'\\"', b"\\u0041", b"\\n")) + mutant[at:]
        outcomes[twin.route(mutant)] += 1
    twin.check_all()
    assert outcomes[router.ROUTE_APPLIED] and outcomes[router.ROUTE_OTHER] and outcomes["WireError"]


# --- BookSync: the router path against the Python path ------------------------------------------


class _PythonOnly:
    """Mixin: the same dialect without a compiled router (the Python path for every frame)."""

    router_dialect = router.DIALECT_NONE


class _GateSpotPythonOnly(_PythonOnly, GateioSpotMarketData):
    __slots__ = ()


class _MexcSpotPythonOnly(_PythonOnly, MexcSpotMarketData):
    pass


async def _drive(sync: BookSync, frames: list[bytes]) -> None:
    for i, frame in enumerate(frames):
        sync.on_message(memoryview(frame), False, i % 3 == 2, 1_000 + i)
        for _ in range(3):
            await asyncio.sleep(0)
    for _ in range(10):
        await asyncio.sleep(0)


def _state(sync: BookSync, sink: RecordingSink) -> tuple[Any, ...]:
    """Everything observable of a synchroniser and its sink after a stream."""
    books = {
        symbol: (book.in_sync, book.last_update_id, book.top(BID, 10_000), book.top(ASK, 10_000))
        for symbol, book in sync.books.items()
    }
    counters = (sync.unroutable, sync.unknown_symbol, sync.acks, sync.venue_errors, sync.other_frames)
    return sync.stats(), books, counters, dict(sink.updates), sink.batch_ends, list(sink.states)


async def _run_both(fast: BookSync, slow: BookSync, stream: list[bytes], reset: Callable[[], None]) -> BookSync:
    """Feed ``stream`` to each synchroniser in turn (closing it before the next starts); compare."""
    assert fast._route is not None and slow._route is None
    states = []
    for sync in (fast, slow):
        reset()
        await _drive(sync, stream)
        states.append(_state(sync, sync._sink))  # type: ignore[arg-type]
        await sync.close()
    assert states[0] == states[1]
    return fast


def _stream_with_faults(rng: random.Random, frames: list[bytes], others: list[bytes]) -> list[bytes]:
    out = []
    for frame in frames:
        roll = rng.random()
        if roll < 0.05:
            continue  # lost: a gap
        if roll < 0.12:
            mutant = _mutate(rng, frame)
            if b"\\" not in mutant:
                out.append(mutant)
            continue
        out.append(frame)
        if roll > 0.95:
            out.append(frame)  # duplicated: stale
        if roll > 0.97:
            out.append(rng.choice(others))
    return out


def _gate_snapshots(shared: Path) -> dict[str, bytes]:
    return {snapshot_symbol(u): b for u, b in http_bodies(shared / "cryptofeed" / "GATEIO.http.0.0")}


@pytest.mark.parametrize("seed", range(4))
def test_book_sync_with_router_equals_python_path_gate_spot(
    shared_data: Path, recorded_pools: dict[int, Pool], seed: int
) -> None:
    pool = recorded_pools[router.DIALECT_GATEIO_SPOT]
    snaps = _gate_snapshots(shared_data)
    specs = [
        BookSpec(p.replace("_", "/"), p, pool.wire_scale(p))
        for p in snaps
        if p in pool.scales
    ]
    frames = channel_updates(shared_data / "cryptofeed" / "GATEIO.ws.1.0", "spot.order_book_update")
    stream = _stream_with_faults(random.Random(seed), frames, pool.others)

    async def snapshot(venue_symbol: str) -> bytes:
        return snaps[venue_symbol]

    async def main() -> None:
        fast = BookSync(ExchangeName.GATEIO, GateioSpotMarketData(), specs, RecordingSink(), fetch_snapshot=snapshot)
        slow = BookSync(ExchangeName.GATEIO, _GateSpotPythonOnly(), specs, RecordingSink(), fetch_snapshot=snapshot)
        await _run_both(fast, slow, stream, lambda: None)
        assert sum(fast.router.applied(fast.slot_of(s.symbol)) for s in specs) > 0
        assert [fast.slot_of(s.symbol) for s in specs] == list(range(len(specs)))

    run(main())


@pytest.mark.parametrize("seed", range(4))
def test_book_sync_with_router_equals_python_path_mexc_spot(synthesized_pools: dict[int, Pool], seed: int) -> None:
    pool = synthesized_pools[router.DIALECT_MEXC_SPOT]
    rng = random.Random(seed)
    registered = sorted(pool.diffs)[:2]  # the third symbol streams without a book
    specs = [BookSpec(s, s, pool.wire_scale(s)) for s in registered]
    interleaved = [f for group in zip(*pool.diffs.values()) for f in group]
    stream = _stream_with_faults(rng, interleaved, pool.others)

    def first_version(symbol: str) -> int:
        return ref_mexc.decode_spot_depth(pool.diffs[symbol][0], pool.ref_scale(symbol)).first_update_id

    async def snapshot(venue_symbol: str) -> bytes:
        version = first_version(venue_symbol) + rng.randrange(0, 3)
        return json.dumps({"lastUpdateId": str(version), "bids": [["1.00", "1"]], "asks": []}).encode()

    async def main() -> None:
        fast = BookSync(ExchangeName.MEXC, MexcSpotMarketData(), specs, RecordingSink(), fetch_snapshot=snapshot)
        slow = BookSync(ExchangeName.MEXC, _MexcSpotPythonOnly(), specs, RecordingSink(), fetch_snapshot=snapshot)
        await _run_both(fast, slow, stream, lambda: rng.seed(seed))
        assert sum(fast.router.applied(i) for i in range(fast.router.slots)) > 0

    run(main())


def test_book_sync_slot_of_and_router_are_public(synthesized_pools: dict[int, Pool]) -> None:
    pool = synthesized_pools[router.DIALECT_MEXC_FUTURES]
    specs = [BookSpec(s.replace("_", "/"), s, pool.wire_scale(s)) for s in pool.diffs]
    sync = BookSync(ExchangeName.MEXC_FUTURES, MexcFuturesMarketData(), specs, RecordingSink(),
                    fetch_snapshot=_never)
    assert isinstance(sync.router, router.BookRouter) and sync.router.slots == len(specs)
    assert sync.router.dialect == router.DIALECT_MEXC_FUTURES
    for i, spec in enumerate(specs):
        assert sync.slot_of(spec.symbol) == i
    with pytest.raises(KeyError):
        sync.slot_of("NOPE/USDT")


async def _never(venue_symbol: str) -> bytes:
    raise AssertionError(f"no snapshot expected for {venue_symbol}")


class _RaisingSink(RecordingSink):
    def on_book_update(self, key: Any) -> None:
        super().on_book_update(key)
        raise RuntimeError("consumer bug")


def test_book_sync_survives_a_raising_consumer_and_odd_receive_times(synthesized_pools: dict[int, Pool]) -> None:
    pool = synthesized_pools[router.DIALECT_MEXC_SPOT]
    symbol = sorted(pool.diffs)[0]
    specs = [BookSpec(symbol, symbol, pool.wire_scale(symbol))]
    frames = pool.diffs[symbol]
    first = ref_mexc.decode_spot_depth(frames[0], pool.ref_scale(symbol)).first_update_id

    async def snapshot(venue_symbol: str) -> bytes:
        return json.dumps({"lastUpdateId": first - 1, "bids": [], "asks": []}).encode()

    async def main() -> None:
        results = []
        for dialect in (MexcSpotMarketData(), _MexcSpotPythonOnly()):
            sink = _RaisingSink()
            sync = BookSync(ExchangeName.MEXC, dialect, specs, sink, fetch_snapshot=snapshot)
            await _drive(sync, frames[:1])  # buffered, then the snapshot arrives
            for frame in frames[1:4]:
                sync.on_message(memoryview(frame), True, True, 5)
            sync.on_message(memoryview(frames[4]), True, True, 2**63)  # beyond int64: a malformed frame
            results.append((_state(sync, sink), sync.books[symbol].in_sync))
            await sync.close()
        assert results[0] == results[1]
        stats = results[0][0][0][symbol]
        assert stats.applied == 4 and stats.malformed == 1 and stats.resyncs == {"malformed": 1}

    run(main())
