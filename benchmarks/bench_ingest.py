"""Websocket frame -> book updated and consumer notified: the Python overhead of the ingest path.

All timed calls replay the same recorded Gate.io ``spot.order_book_update`` diffs
(GATEIO.ws.1.0: 162 diffs over 10 pairs, after each pair's first full-book frame) into books
reset from those full-book frames outside the timing; ns per frame is in extra_info.

* ``decode_apply``: compiled only, ``gateio.decode_spot_update`` + ``OrderBook.apply_batch``
  on a book looked up per frame (the floor any Python wiring adds to).
* ``book_sync``: ``BookSync.on_message`` (classify, route by symbol, decode, apply, notify).
* ``listener``: picows' ``on_ws_frame`` of the session listener, the whole path from the
  socket callback. picows has no public way to make a frame without a socket, so frames come
  from its ``_make_test_ws_frame`` (used here only to measure, never in tests).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import picows
import pytest
from loopback import GateSpotTestDialect, RecordingSink
from picows import WSMsgType

from arb.exchanges.book_sync import BookSpec, BookSync
from arb.exchanges.ws import WsSession, _Listener
from arb.types import ExchangeName
from arb_core.book import APPLIED, DeltaBatch, OrderBook
from arb_core.wire import gateio
from arb_core.wire.common import WireScale
from wire_data import channel_updates, gate_spot_book_scales, symbol_of

ROUNDS = 400


class Replay:
    """Recorded frames split into each pair's opening full book and the diffs that follow."""

    def __init__(self, shared: Path) -> None:
        frames = channel_updates(shared / "cryptofeed" / "GATEIO.ws.1.0", "spot.order_book_update")
        scales = gate_spot_book_scales(shared)
        self.scales: dict[str, WireScale] = {}
        self.openings: dict[str, DeltaBatch] = {}
        self.diffs: list[bytes] = []
        self.last_u: dict[str, int] = defaultdict(int)
        for frame in frames:
            pair = symbol_of(frame)
            if pair not in self.openings:
                self.scales[pair] = WireScale(*scales[pair])
                batch = DeltaBatch(256)
                gateio.decode_spot_update(frame, self.scales[pair], batch)
                self.openings[pair] = batch
            else:
                self.diffs.append(frame)
            self.last_u[pair] = int(frame.split(b'"u":')[1].split(b",")[0])

    def reset(self, books: dict[str, OrderBook]) -> None:
        for pair, batch in self.openings.items():
            books[pair].apply_snapshot(batch, 0)


@pytest.fixture(scope="module")
def replay(shared_data: Path) -> Replay:
    return Replay(shared_data)


def _per_frame(benchmark: Any, frames: int) -> None:
    benchmark.extra_info["frames_per_round"] = frames
    stats = benchmark.stats.stats if benchmark.stats else None
    if stats is not None:
        benchmark.extra_info["median_ns_per_frame"] = round(stats.median * 1e9 / frames, 1)


def _sync(replay: Replay) -> tuple[BookSync, RecordingSink, dict[str, OrderBook]]:
    sink = RecordingSink()
    specs = [BookSpec(pair, pair, scale) for pair, scale in replay.scales.items()]
    sync = BookSync(ExchangeName.GATEIO, GateSpotTestDialect(), specs, sink, fetch_snapshot=_never_called)
    return sync, sink, {pair: sync.books[pair] for pair in replay.scales}


async def _never_called(venue_symbol: str) -> bytes:
    raise AssertionError("books are reset outside the timing; no snapshot is fetched")


def _check(replay: Replay, books: dict[str, OrderBook]) -> None:
    for pair, book in books.items():
        assert book.in_sync and book.last_update_id == replay.last_u[pair], pair


@pytest.mark.benchmark(group="ingest: recorded Gate.io diff -> book (per round of 162 frames)")
def test_decode_apply(benchmark: Any, replay: Replay) -> None:
    books = {pair: OrderBook(pair) for pair in replay.scales}
    frames = [(frame, symbol_of(frame)) for frame in replay.diffs]
    scales, batch, decode = replay.scales, DeltaBatch(256), gateio.decode_spot_update

    def run() -> int:
        applied = 0
        for frame, pair in frames:
            decode(frame, scales[pair], batch)
            if books[pair].apply_batch(batch, 1) == APPLIED:
                applied += 1
        return applied

    applied = benchmark.pedantic(run, setup=lambda: replay.reset(books), rounds=ROUNDS, iterations=1)
    _per_frame(benchmark, len(frames))
    assert applied == len(frames)
    _check(replay, books)


@pytest.mark.benchmark(group="ingest: recorded Gate.io diff -> book (per round of 162 frames)")
def test_book_sync(benchmark: Any, replay: Replay) -> None:
    sync, sink, books = _sync(replay)
    views = [memoryview(frame) for frame in replay.diffs]
    on_message = sync.on_message

    def run() -> None:
        for view in views:
            on_message(view, False, True, 1)

    benchmark.pedantic(run, setup=lambda: replay.reset(books), rounds=ROUNDS, iterations=1)
    _per_frame(benchmark, len(views))
    _check(replay, books)
    assert sum(s.applied for s in sync.stats().values()) == len(views) * ROUNDS
    assert sum(sink.updates.values()) == len(views) * ROUNDS and sink.batch_ends == len(views) * ROUNDS


@pytest.mark.benchmark(group="ingest: recorded Gate.io diff -> book (per round of 162 frames)")
def test_listener(benchmark: Any, replay: Replay) -> None:
    make_frame = getattr(picows.picows, "_make_test_ws_frame", None)
    if make_frame is None:
        pytest.skip("this picows version has no _make_test_ws_frame")
    sync, sink, books = _sync(replay)
    session = WsSession("gateio", "ws://127.0.0.1:1/", sync.on_message)
    listener = _Listener(session, 0)  # of the first connect attempt; frames do not read it
    frames = [make_frame(WSMsgType.TEXT, frame, True, False) for frame in replay.diffs]
    on_ws_frame = listener.on_ws_frame

    def run() -> None:
        for frame in frames:
            on_ws_frame(None, frame)

    benchmark.pedantic(run, setup=lambda: replay.reset(books), rounds=ROUNDS, iterations=1)
    _per_frame(benchmark, len(frames))
    _check(replay, books)
    assert session.messages == len(frames) * ROUNDS and session.errors == {}
    assert sum(sink.updates.values()) == len(frames) * ROUNDS
