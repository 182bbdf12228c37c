"""arb_core.router against its reference (tests/reference/router.py), and BookSync on top of it.

Frames are real Gate.io recordings and synthesized MEXC pushes (MEXC publishes no raw
protobuf recording). Every outcome is compared: return code, exception class, last_slot,
per-slot counters and the books level by level.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
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
DIALECTS = (
    router.DIALECT_GATEIO_SPOT,
    router.DIALECT_GATEIO_FUTURES,
    router.DIALECT_MEXC_SPOT,
    router.DIALECT_MEXC_FUTURES,
)
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

    @property
    def frames(self) -> list[bytes]:
        return [f for frames in self.diffs.values() for f in frames]


def _gate_pool(dialect: int, frames: list[bytes], scales: dict[str, tuple[int, int, int, int]], prefix: str) -> Pool:
    pool = Pool(dialect, {})
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
    pool = Pool(router.DIALECT_MEXC_SPOT, {})
    for symbol, base in (("BTCUSDT", 100_000), ("ETHUSDT", 3_000), ("MXUSDT", 1_000)):
        pool.scales[symbol] = (2, 1, 6, 1)
        version = 17_521_975_448 + rng.randrange(1000)
        frames = pool.diffs.setdefault(symbol, [])
        for _ in range(25):
            step = rng.randrange(1, 4)
            size = (lambda: "0" if rng.random() < 0.2 else f"0.{rng.randrange(1, 10**6):06d}")
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
def pools(shared_data: Path) -> dict[int, Pool]:
    cf = shared_data / "cryptofeed"
    return {
        router.DIALECT_GATEIO_SPOT: _gate_pool(
            router.DIALECT_GATEIO_SPOT, channel_updates(cf / "GATEIO.ws.1.0", "spot.order_book_update"),
            gate_spot_book_scales(shared_data), "spot"),
        router.DIALECT_GATEIO_FUTURES: _gate_pool(
            router.DIALECT_GATEIO_FUTURES,
            channel_updates(cf / "GATEIO_FUTURES.ws.1.0", "futures.order_book_update"),
            gate_futures_scales(shared_data), "futures"),
        router.DIALECT_MEXC_SPOT: _mexc_spot_pool(),
        router.DIALECT_MEXC_FUTURES: _mexc_futures_pool(),
    }


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


class Twin:
    """The compiled router and the reference router over twin books, driven in lockstep."""

    def __init__(self, pool: Pool, symbols: list[str]) -> None:
        self.pool = pool
        self.compiled = router.BookRouter(pool.dialect)
        self.reference = ref_router.BookRouter(pool.dialect)
        self.books: list[OrderBook] = []
        self.ref_books: list[ref_book.OrderBook] = []
        self.symbols = symbols
        for symbol in symbols:
            args = pool.scales[symbol]
            book, ref = OrderBook(symbol), ref_book.OrderBook(symbol)
            raw = symbol.encode()
            slot = self.compiled.add_book(raw, book, WireScale(*args, symbol=raw))
            assert slot == self.reference.add_book(raw, ref, Scale(*args, symbol=raw)) == len(self.books)
            self.books.append(book)
            self.ref_books.append(ref)

    def snapshot(self, slot: int, rows: list[tuple[int, int, int]], last_update_id: int) -> None:
        batch = DeltaBatch()
        for side, price, size in rows:
            batch.add(side, price, size)
        batch.first_update_id = batch.last_update_id = last_update_id
        batch.is_snapshot = True
        ref = Decoded(list(rows), last_update_id, last_update_id, 0, True)
        got = _outcome(lambda: self.books[slot].apply_snapshot(batch, 5))
        assert got == _outcome(lambda: self.ref_books[slot].apply_snapshot(ref, 5))
        self.check_book(slot)

    def snapshot_near(self, slot: int, frame: bytes, offset: int) -> None:
        """A snapshot built from ``frame``'s own levels, ending ``offset`` ids before it starts."""
        symbol = self.symbols[slot]
        decoded = REF_DECODE[self.pool.dialect](frame, Scale(*self.pool.scales[symbol], symbol=symbol.encode()))
        rows = {(side, price): size for side, price, size in decoded.rows if size}
        self.snapshot(slot, [(s, p, q) for (s, p), q in rows.items()], decoded.first_update_id - 1 - offset)

    def route(self, frame: bytes, recv_ns: int = 7) -> int | str:
        got = _outcome(lambda: self.compiled.route(frame, recv_ns))
        want = _outcome(lambda: self.reference.route(frame, recv_ns))
        assert got == want, frame
        assert self.compiled.last_slot == self.reference.last_slot, frame
        if self.compiled.last_slot >= 0:
            self.check_book(self.compiled.last_slot)
        return got

    def check_book(self, slot: int) -> None:
        book, ref = self.books[slot], self.ref_books[slot]
        assert (book.in_sync, book.last_update_id, book.last_recv_ns, book.last_event_ms) == (
            ref.in_sync, ref.last_update_id, ref.last_recv_ns, ref.last_event_ms)
        for side in (BID, ASK):
            assert book.top(side, 10_000) == ref.top(side, 10_000)

    def check_all(self) -> None:
        assert self.compiled.slots == self.reference.slots == len(self.books)
        for slot in range(len(self.books)):
            assert self.compiled.applied(slot) == self.reference.applied(slot)
            assert self.compiled.stale(slot) == self.reference.stale(slot)
            self.check_book(slot)


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
    assert (r.applied(0), r.stale(0), r.slots) == (0, 0, 1)


def test_non_contiguous_buffers_are_refused() -> None:
    r = router.BookRouter(router.DIALECT_GATEIO_SPOT)
    with pytest.raises(BufferError):
        r.route(memoryview(b"{}" * 8)[::2], 0)


def test_dialect_none_routes_nothing(pools: dict[int, Pool]) -> None:
    r = router.BookRouter(router.DIALECT_NONE)
    pool = pools[router.DIALECT_GATEIO_SPOT]
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
def test_steady_state_applies_counts_and_fails_like_the_reference(pools: dict[int, Pool], dialect: int) -> None:
    pool = pools[dialect]
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
def test_malformed_frame_for_an_in_sync_book_raises_with_the_slot(pools: dict[int, Pool], dialect: int) -> None:
    pool = pools[dialect]
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


def test_full_push_is_left_to_the_python_path(pools: dict[int, Pool]) -> None:
    pool = pools[router.DIALECT_GATEIO_SPOT]
    symbol, frames = next(iter(pool.diffs.items()))
    twin = Twin(pool, [symbol])
    twin.snapshot_near(0, frames[0], 0)
    before = twin.books[0].top(BID, 1000)
    full = frames[0].replace(b'"result":{', b'"result":{"full":true,', 1)
    assert twin.route(full) == router.ROUTE_OTHER and twin.compiled.last_slot == 0
    assert twin.books[0].top(BID, 1000) == before and twin.compiled.applied(0) == 0


# --- differential: random sequences -------------------------------------------------------------


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_sequences_match_the_reference(data: st.DataObject, pools: dict[int, Pool]) -> None:
    pool = pools[data.draw(st.sampled_from(DIALECTS), label="dialect")]
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
            twin.books[slot].mark_out_of_sync()
            twin.ref_books[slot].mark_out_of_sync()
        elif op == "other":
            twin.route(data.draw(st.sampled_from(pool.others)))
        elif op == "mutant":
            mutant = _mutate(rng, data.draw(st.sampled_from(frames)))
            if b"\\" not in mutant:  # the compiled decoders reject escapes the reference reads
                twin.route(mutant)
        else:
            twin.route(data.draw(st.sampled_from(frames)), data.draw(st.integers(0, 2**62)))
    twin.check_all()


def test_mutated_real_frames_route_like_the_reference(pools: dict[int, Pool]) -> None:
    """Mutation fuzzing through route(): never a crash, always the reference's outcome."""
    rng = random.Random(SEED)
    outcomes: Counter[int | str] = Counter()
    for dialect in DIALECTS:
        pool = pools[dialect]
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
    counters = (sync.unroutable, sync.unknown_symbol, sync.acks, sync.venue_errors)
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
    shared_data: Path, pools: dict[int, Pool], seed: int
) -> None:
    pool = pools[router.DIALECT_GATEIO_SPOT]
    snaps = _gate_snapshots(shared_data)
    specs = [
        BookSpec(p.replace("_", "/"), p, WireScale(*pool.scales[p], symbol=p.encode()))
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
def test_book_sync_with_router_equals_python_path_mexc_spot(pools: dict[int, Pool], seed: int) -> None:
    pool = pools[router.DIALECT_MEXC_SPOT]
    rng = random.Random(seed)
    registered = sorted(pool.diffs)[:2]  # the third symbol streams without a book
    specs = [BookSpec(s, s, WireScale(*pool.scales[s], symbol=s.encode())) for s in registered]
    interleaved = [f for group in zip(*pool.diffs.values()) for f in group]
    stream = _stream_with_faults(rng, interleaved, pool.others)

    def first_version(symbol: str) -> int:
        return ref_mexc.decode_spot_depth(pool.diffs[symbol][0], Scale(*pool.scales[symbol])).first_update_id

    async def snapshot(venue_symbol: str) -> bytes:
        version = first_version(venue_symbol) + rng.randrange(0, 3)
        return json.dumps({"lastUpdateId": str(version), "bids": [["1.00", "1"]], "asks": []}).encode()

    async def main() -> None:
        fast = BookSync(ExchangeName.MEXC, MexcSpotMarketData(), specs, RecordingSink(), fetch_snapshot=snapshot)
        slow = BookSync(ExchangeName.MEXC, _MexcSpotPythonOnly(), specs, RecordingSink(), fetch_snapshot=snapshot)
        await _run_both(fast, slow, stream, lambda: rng.seed(seed))
        assert sum(fast.router.applied(i) for i in range(fast.router.slots)) > 0

    run(main())


def test_book_sync_slot_of_and_router_are_public(pools: dict[int, Pool]) -> None:
    pool = pools[router.DIALECT_MEXC_FUTURES]
    specs = [BookSpec(s.replace("_", "/"), s, WireScale(*pool.scales[s], symbol=s.encode())) for s in pool.diffs]
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


def test_book_sync_survives_a_raising_consumer_and_odd_receive_times(pools: dict[int, Pool]) -> None:
    pool = pools[router.DIALECT_MEXC_SPOT]
    symbol = sorted(pool.diffs)[0]
    specs = [BookSpec(symbol, symbol, WireScale(*pool.scales[symbol], symbol=symbol.encode()))]
    frames = pool.diffs[symbol]
    first = ref_mexc.decode_spot_depth(frames[0], Scale(*pool.scales[symbol])).first_update_id

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
