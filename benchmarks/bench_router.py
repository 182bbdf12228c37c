"""One websocket diff -> book updated: the Python steady state vs the compiled router.

Per venue, a round feeds 200 diffs with consecutive update ids for one in-sync book (the
book is reset by a snapshot outside the timing); ns per frame is in extra_info.

* ``python_path``: the steady state of ``BookSync.on_message`` before the router, copied
  below (``OldSteadyState``): dialect.classify, frame_symbol, dict lookup, decode into a
  DeltaBatch, apply_batch, counters, sink call, each a Python-level call.
* ``three_steps``: ``BookRouter(single_pass=False).route``: classify, frame symbol and
  decode as three compiled passes over the frame, then apply, in one call.
* ``router``: ``BookRouter.route`` alone (the single pass reads the diff once, then apply).
* ``book_sync``: ``BookSync.on_message`` now (router, then the sink call).

Gate.io frames are a recorded ``spot.order_book_update`` diff (and, for the futures group, a
recorded ``futures.order_book_update`` diff) with renumbered ids; MEXC frames are the
published ``aggre_depth_push`` example encoded as protobuf (and the documented contract
``push.depth``), renumbered. The futures groups compare the two router paths only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from reference import wire_mexc as ref_mexc

from arb.exchanges.base import BookKey
from arb.exchanges.book_sync import BookSpec, BookSync
from arb.exchanges.gateio.market_data import GateioFuturesMarketData, GateioSpotMarketData
from arb.exchanges.mexc.market_data import MexcFuturesMarketData, MexcSpotMarketData
from arb.exchanges.models import FrameKind
from arb.types import ExchangeName
from arb_core.book import APPLIED, DeltaBatch, OrderBook
from arb_core.router import ROUTE_APPLIED, BookRouter
from arb_core.wire.common import WireError, WireScale
from wire_data import channel_updates, gate_futures_scales, gate_spot_book_scales, symbol_of

FRAMES = 200
ROUNDS = 300
FIRST_ID = 1_000_000
_BOOK_UPDATE = int(FrameKind.BOOK_UPDATE)
_DECODE_ERRORS = (WireError, ValueError, OverflowError)


class NullSink:
    """A ``BookSink`` that does nothing, so only the ingest path is timed."""

    def on_book_update(self, key: BookKey) -> None:
        pass

    def on_batch_end(self) -> None:
        pass

    def on_book_state(self, key: BookKey, in_sync: bool, reason: str) -> None:
        pass


class _State:
    __slots__ = ("key", "scale", "book", "applied", "stale")

    def __init__(self, key: BookKey, scale: WireScale, book: OrderBook) -> None:
        self.key, self.scale, self.book = key, scale, book
        self.applied = self.stale = 0


class OldSteadyState:
    """``BookSync.on_message`` as it was before the router, for an in-sync book receiving diffs."""

    def __init__(
        self, exchange: ExchangeName, dialect: Any, venue_symbol: str, scale: WireScale, book: OrderBook, sink: NullSink
    ) -> None:
        self._classify = dialect.classify
        self._frame_symbol = dialect.frame_symbol
        self._decode = dialect.decode_update
        self._books = {venue_symbol.encode(): _State(BookKey(exchange, venue_symbol), scale, book)}
        self._batch = DeltaBatch(256)
        self._on_update = sink.on_book_update
        self._on_batch_end = sink.on_batch_end
        self._dirty = False

    def on_message(self, payload: memoryview, binary: bool, last_in_buffer: bool, recv_ns: int) -> None:
        try:
            kind = self._classify(payload)
            state = self._books.get(self._frame_symbol(payload)) if kind == _BOOK_UPDATE else None
        except _DECODE_ERRORS:
            kind, state = -1, None
        if state is not None:
            book = state.book
            # (the BookError / decode-error handlers are left out: try costs nothing when nothing raises)
            if book.in_sync:
                batch = self._batch
                self._decode(payload, state.scale, batch)
                if batch.is_snapshot:
                    raise AssertionError("the benchmark feeds diffs only")
                elif book.apply_batch(batch, recv_ns) == APPLIED:
                    state.applied += 1
                    self._dirty = True
                    self._on_update(state.key)
                else:
                    state.stale += 1
            else:
                raise AssertionError("the benchmark keeps the book in sync")
        if last_in_buffer and self._dirty:
            self._dirty = False
            self._on_batch_end()


class Case:
    """Renumbered diffs of one symbol plus the snapshot that each round starts from."""

    def __init__(
        self, exchange: ExchangeName, dialect: Any, symbol: str, scale: WireScale, frames: list[bytes]
    ) -> None:
        self.exchange, self.dialect, self.symbol, self.scale = exchange, dialect, symbol, scale
        self.rounds = 0
        self.frames = [memoryview(f) for f in frames]
        self.snapshot = DeltaBatch()
        self.snapshot.first_update_id = self.snapshot.last_update_id = FIRST_ID - 1
        self.snapshot.is_snapshot = True

    def reset(self, book: OrderBook) -> None:
        book.apply_snapshot(self.snapshot, 0)
        self.rounds += 1

    def sync(self) -> BookSync:
        spec = BookSpec(self.symbol, self.symbol, self.scale)
        return BookSync(self.exchange, self.dialect, [spec], NullSink(), fetch_snapshot=_never_called)


@pytest.fixture(scope="module")
def gate(shared_data: Path) -> Case:
    frames = channel_updates(shared_data / "cryptofeed" / "GATEIO.ws.1.0", "spot.order_book_update")
    omg = [f for f in frames if symbol_of(f) == "OMG_USDT"]
    template = omg[1]  # a diff after the pair's opening full book
    ids = re.compile(rb'"U":\d+,"u":\d+')
    assert ids.search(template)
    renumbered = [ids.sub(b'"U":%d,"u":%d' % (FIRST_ID + i, FIRST_ID + i), template) for i in range(FRAMES)]
    scale = WireScale(*gate_spot_book_scales(shared_data)["OMG_USDT"], symbol=b"OMG_USDT")
    return Case(ExchangeName.GATEIO, GateioSpotMarketData(), "OMG_USDT", scale, renumbered)


@pytest.fixture(scope="module")
def gate_futures(shared_data: Path) -> Case:
    frames = channel_updates(shared_data / "cryptofeed" / "GATEIO_FUTURES.ws.1.0", "futures.order_book_update")
    template = max((f for f in frames if symbol_of(f) == "QUICK_USDT"), key=lambda f: f.count(b'"p"'))
    first, last = re.compile(rb'"U":\d+'), re.compile(rb'"u":\d+')
    assert first.search(template) and last.search(template)
    renumbered = [last.sub(b'"u":%d' % (FIRST_ID + i), first.sub(b'"U":%d' % (FIRST_ID + i), template)) for i in range(FRAMES)]
    scale = WireScale(*gate_futures_scales(shared_data)["QUICK_USDT"], symbol=b"QUICK_USDT")
    return Case(ExchangeName.GATEIO_FUTURES, GateioFuturesMarketData(), "QUICK_USDT", scale, renumbered)


@pytest.fixture(scope="module")
def mexc_futures(shared_data: Path) -> Case:
    push = json.loads((shared_data / "examples" / "mexc_docs_examples.json").read_bytes())["contract_ws_push_depth"]
    frames = [
        json.dumps(dict(push, data=dict(push["data"], version=FIRST_ID + i)), separators=(",", ":")).encode()
        for i in range(FRAMES)
    ]
    scale = WireScale(1, 1, 0, 1, symbol=push["symbol"])
    return Case(ExchangeName.MEXC_FUTURES, MexcFuturesMarketData(), push["symbol"], scale, frames)


@pytest.fixture(scope="module")
def mexc(shared_data: Path) -> Case:
    examples = json.loads((shared_data / "examples" / "mexc_spot_ws_pb_as_dict.hummingbot.json").read_bytes())
    push = examples["aggre_depth_push"]
    frames = []
    for i in range(FRAMES):
        body = dict(push["publicAggreDepths"], fromVersion=str(FIRST_ID + i), toVersion=str(FIRST_ID + i))
        frames.append(ref_mexc.encode_push(dict(push, publicAggreDepths=body)))
    scale = WireScale(2, 1, 6, 1, symbol=push["symbol"])
    return Case(ExchangeName.MEXC, MexcSpotMarketData(), push["symbol"], scale, frames)


def _per_frame(benchmark: Any) -> None:
    benchmark.extra_info["frames_per_round"] = FRAMES
    stats = benchmark.stats.stats if benchmark.stats else None
    if stats is not None:
        benchmark.extra_info["median_ns_per_frame"] = round(stats.median * 1e9 / FRAMES, 1)


def _feed(on_message: Callable[[memoryview, bool, bool, int], None], frames: list[memoryview]) -> Callable[[], None]:
    def run() -> None:
        for i, frame in enumerate(frames):
            on_message(frame, True, True, i)

    return run


def _python_path(benchmark: Any, case: Case) -> None:
    book = OrderBook(case.symbol)
    old = OldSteadyState(case.exchange, case.dialect, case.symbol, case.scale, book, NullSink())
    benchmark.pedantic(_feed(old.on_message, case.frames), setup=lambda: case.reset(book), rounds=ROUNDS)
    _per_frame(benchmark)
    assert book.in_sync and book.last_update_id == FIRST_ID + FRAMES - 1


def _router(benchmark: Any, case: Case, single_pass: bool = True) -> None:
    sync = case.sync()
    book, frames = sync.books[case.symbol], case.frames
    router = sync.router if single_pass else BookRouter(sync.router.dialect, single_pass=False)
    if not single_pass:
        router.add_book(case.symbol.encode(), book, case.scale)
    route = router.route

    def run() -> None:
        for i, frame in enumerate(frames):
            if route(frame, i) != ROUTE_APPLIED:
                raise AssertionError("every diff continues the book")

    case.rounds = 0
    benchmark.pedantic(run, setup=lambda: case.reset(book), rounds=ROUNDS)
    _per_frame(benchmark)
    assert book.in_sync and book.last_update_id == FIRST_ID + FRAMES - 1
    assert router.applied(0) == FRAMES * case.rounds
    assert router.single_pass_frames == (FRAMES * case.rounds if single_pass else 0)


def _book_sync(benchmark: Any, case: Case) -> None:
    sync = case.sync()
    book = sync.books[case.symbol]
    case.rounds = 0
    benchmark.pedantic(_feed(sync.on_message, case.frames), setup=lambda: case.reset(book), rounds=ROUNDS)
    _per_frame(benchmark)
    assert book.in_sync and book.last_update_id == FIRST_ID + FRAMES - 1
    stats = sync.stats()[case.symbol]
    assert stats.applied == FRAMES * case.rounds and not stats.resyncs


async def _never_called(venue_symbol: str) -> bytes:
    raise AssertionError(f"no snapshot expected for {venue_symbol}")


GATE_GROUP = f"router: Gate.io spot diff -> in-sync book (per round of {FRAMES} frames)"
MEXC_GROUP = f"router: MEXC spot protobuf diff -> in-sync book (per round of {FRAMES} frames)"
GATE_FUTURES_GROUP = f"router: Gate.io futures diff -> in-sync book (per round of {FRAMES} frames)"
MEXC_FUTURES_GROUP = f"router: MEXC contract diff -> in-sync book (per round of {FRAMES} frames)"


@pytest.mark.benchmark(group=GATE_GROUP)
def test_gate_python_path(benchmark: Any, gate: Case) -> None:
    _python_path(benchmark, gate)


@pytest.mark.benchmark(group=GATE_GROUP)
def test_gate_three_steps(benchmark: Any, gate: Case) -> None:
    _router(benchmark, gate, single_pass=False)


@pytest.mark.benchmark(group=GATE_GROUP)
def test_gate_router(benchmark: Any, gate: Case) -> None:
    _router(benchmark, gate)


@pytest.mark.benchmark(group=GATE_GROUP)
def test_gate_book_sync(benchmark: Any, gate: Case) -> None:
    _book_sync(benchmark, gate)


@pytest.mark.benchmark(group=MEXC_GROUP)
def test_mexc_python_path(benchmark: Any, mexc: Case) -> None:
    _python_path(benchmark, mexc)


@pytest.mark.benchmark(group=MEXC_GROUP)
def test_mexc_three_steps(benchmark: Any, mexc: Case) -> None:
    _router(benchmark, mexc, single_pass=False)


@pytest.mark.benchmark(group=MEXC_GROUP)
def test_mexc_router(benchmark: Any, mexc: Case) -> None:
    _router(benchmark, mexc)


@pytest.mark.benchmark(group=MEXC_GROUP)
def test_mexc_book_sync(benchmark: Any, mexc: Case) -> None:
    _book_sync(benchmark, mexc)


@pytest.mark.benchmark(group=GATE_FUTURES_GROUP)
def test_gate_futures_three_steps(benchmark: Any, gate_futures: Case) -> None:
    _router(benchmark, gate_futures, single_pass=False)


@pytest.mark.benchmark(group=GATE_FUTURES_GROUP)
def test_gate_futures_router(benchmark: Any, gate_futures: Case) -> None:
    _router(benchmark, gate_futures)


@pytest.mark.benchmark(group=MEXC_FUTURES_GROUP)
def test_mexc_futures_three_steps(benchmark: Any, mexc_futures: Case) -> None:
    _router(benchmark, mexc_futures, single_pass=False)


@pytest.mark.benchmark(group=MEXC_FUTURES_GROUP)
def test_mexc_futures_router(benchmark: Any, mexc_futures: Case) -> None:
    _router(benchmark, mexc_futures)
