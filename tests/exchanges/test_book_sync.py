"""arb.exchanges.book_sync on the Gate.io wire format: recorded frames, scripted faults, loopback sockets."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web
from picows import WSMsgType
from loopback import (
    GateSpotTestDialect,
    RecordingSink,
    WsTestServer,
    eventually,
    gate_snapshot,
    gate_update,
    run,
)

from arb.errors import ExchangeError, RateLimitError
from arb.exchanges.book_sync import BookSpec, BookSync, BookSyncSettings, rest_snapshot_fetcher
from arb.exchanges.mexc.market_data import MexcFuturesMarketData
from arb.exchanges.rest import RateLimit, RestClient, RestVenue
from arb.exchanges.ws import WsSettings
from arb.types import ExchangeName
from arb_core.book import ASK, BID, STALE_STREAM_NS
from arb_core.router import DIALECT_NONE
from arb_core.wire.common import WireScale
from reference import book as ref_book
from reference import wire_gateio as ref_wire
from reference.wire_common import Scale
from wire_data import channel_updates, gate_spot_book_scales, http_bodies, snapshot_symbol, symbol_of

GATE = ExchangeName.GATEIO
SCALE = WireScale(2, 1, 4, 1)  # 0.01 ticks, 0.0001 lots


class Snapshots:
    """A snapshot fetcher serving scripted bodies per venue symbol, optionally held back."""

    def __init__(self, bodies: dict[str, list[bytes]]) -> None:
        self.bodies = bodies
        self.calls: Counter[str] = Counter()
        self.release = asyncio.Event()
        self.release.set()
        self.fail_next: Exception | None = None

    async def __call__(self, venue_symbol: str) -> bytes:
        self.calls[venue_symbol] += 1
        await self.release.wait()
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        queue = self.bodies[venue_symbol]
        return queue.pop(0) if len(queue) > 1 else queue[0]


def feed(sync: BookSync, frame: bytes, last: bool = True) -> None:
    sync.on_message(memoryview(frame), False, last, 1)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def synthetic_sync(snapshots: Snapshots, sink: RecordingSink, **kwargs: object) -> BookSync:
    specs = [BookSpec("AAA/USDT", "AAA_USDT", SCALE), BookSpec("BBB/USDT", "BBB_USDT", SCALE)]
    return BookSync(GATE, GateSpotTestDialect(), specs, sink, fetch_snapshot=snapshots, **kwargs)  # type: ignore[arg-type]


BOOK = ([("100.00", "1")], [("101.00", "1")])


async def synced(snapshots: Snapshots, sink: RecordingSink) -> BookSync:
    """Both synthetic books in sync at update id 10."""
    sync = synthetic_sync(snapshots, sink)
    for symbol in ("AAA_USDT", "BBB_USDT"):
        feed(sync, gate_update(symbol, 10, 10, [("99.00", "1")]))
    await settle()
    assert all(book.in_sync and book.last_update_id == 10 for book in sync.books.values())
    return sync


def bodies() -> dict[str, list[bytes]]:
    return {"AAA_USDT": [gate_snapshot(9, *BOOK)], "BBB_USDT": [gate_snapshot(9, *BOOK)]}


# --- recorded frames ----------------------------------------------------------------------


def reference_books(
    updates: list[bytes], snapshots: dict[str, bytes], scales: dict[str, tuple[int, int, int, int]]
) -> dict[str, ref_book.OrderBook]:
    """The documented procedure on the pure-Python reference: snapshot, drop stale, apply the rest."""
    books = {}
    for pair, body in snapshots.items():
        book = ref_book.OrderBook(pair)
        book.apply_snapshot(ref_wire.decode_spot_snapshot(body, Scale(*scales[pair])), 0)
        books[pair] = book
    for frame in updates:
        pair = symbol_of(frame)
        books[pair].apply_batch(ref_wire.decode_spot_update(frame, Scale(*scales[pair])), 0)
    return books


def recorded(shared_data: Path) -> tuple[list[bytes], dict[str, bytes], dict[str, tuple[int, int, int, int]]]:
    updates = channel_updates(shared_data / "cryptofeed" / "GATEIO.ws.1.0", "spot.order_book_update")
    snaps = {snapshot_symbol(u): b for u, b in http_bodies(shared_data / "cryptofeed" / "GATEIO.http.0.0")}
    return updates, snaps, gate_spot_book_scales(shared_data)


def test_recorded_stream_syncs_every_book_like_the_reference(shared_data: Path) -> None:
    updates, snaps, scales = recorded(shared_data)
    specs = [BookSpec(p.replace("_", "/"), p, WireScale(*scales[p])) for p in snaps]

    async def main() -> None:
        sink = RecordingSink()
        fetcher = Snapshots({p: [b] for p, b in snaps.items()})
        sync = BookSync(GATE, GateSpotTestDialect(), specs, sink, fetch_snapshot=fetcher)
        for i, frame in enumerate(updates):
            feed(sync, frame, last=i % 3 == 2)
            await settle()
        expected = reference_books(updates, snaps, scales)
        last_u: dict[str, int] = {}
        for frame in updates:
            last_u[symbol_of(frame)] = int(frame.split(b'"u":')[1].split(b",")[0])
        stats = sync.stats()
        for pair, ref in expected.items():
            book = sync.books[pair.replace("_", "/")]
            assert book.in_sync and book.last_update_id == ref.last_update_id == last_u[pair]
            for side in (BID, ASK):
                assert book.top(side, 1000) == ref.top(side, 1000), pair
            assert stats[pair.replace("_", "/")].resyncs == {}
        assert fetcher.calls == Counter({p: 1 for p in snaps})
        assert stats["NEO/BTC"].stale > 0  # first recorded u below the snapshot id
        assert set(sink.updates) == {p.replace("_", "/") for p in snaps}
        assert sink.batch_ends > 0
        assert sorted(s for s, ok, why in sink.states) == sorted(p.replace("_", "/") for p in snaps)

    run(main())


def test_diffs_are_buffered_until_the_snapshot_arrives(shared_data: Path) -> None:
    updates, snaps, scales = recorded(shared_data)
    neo = [f for f in updates if symbol_of(f) == "NEO_BTC"]

    async def main() -> None:
        fetcher = Snapshots({"NEO_BTC": [snaps["NEO_BTC"]]})
        fetcher.release.clear()
        sync = BookSync(
            GATE, GateSpotTestDialect(), [BookSpec("NEO/BTC", "NEO_BTC", WireScale(*scales["NEO_BTC"]))],
            RecordingSink(), fetch_snapshot=fetcher,
        )
        for frame in neo[:10]:
            feed(sync, frame)
            await settle()
        stats = sync.stats()["NEO/BTC"]
        assert not stats.in_sync and stats.buffered == 10 and fetcher.calls["NEO_BTC"] == 1
        fetcher.release.set()
        await settle()
        stats = sync.stats()["NEO/BTC"]
        assert stats.in_sync and stats.buffered == 0 and stats.snapshots == 1
        assert stats.stale >= 1 and stats.stale + stats.applied == 10
        assert stats.last_update_id == int(neo[9].split(b'"u":')[1].split(b",")[0])

    run(main())


# --- faults -------------------------------------------------------------------------------


def test_gap_resyncs_only_that_book() -> None:
    async def main() -> None:
        sink, fetcher = RecordingSink(), Snapshots(bodies())
        sync = await synced(fetcher, sink)
        feed(sync, gate_update("AAA_USDT", 12, 12, [("99.50", "1")]))  # 11 is missing
        assert not sync.books["AAA/USDT"].in_sync and sync.books["BBB/USDT"].in_sync
        assert sink.states[-1] == ("AAA/USDT", False, "gap")
        feed(sync, gate_update("BBB_USDT", 11, 11, [("99.10", "2")]))
        assert sync.books["BBB/USDT"].top(BID, 3) == [(10000, 10000), (9910, 20000), (9900, 10000)]
        # the next AAA diff starts a new snapshot; it continues the new snapshot (id 12)
        fetcher.bodies["AAA_USDT"] = [gate_snapshot(12, *BOOK)]
        feed(sync, gate_update("AAA_USDT", 13, 13, [("99.70", "1")]))
        await settle()
        a, b = sync.stats()["AAA/USDT"], sync.stats()["BBB/USDT"]
        assert a.in_sync and a.last_update_id == 13 and a.resyncs == {"gap": 1} and a.snapshots == 2
        assert b.resyncs == {} and b.snapshots == 1
        assert fetcher.calls == Counter({"AAA_USDT": 2, "BBB_USDT": 1})
        assert sink.states[-1] == ("AAA/USDT", True, "snapshot")

    run(main())


class PythonPathDialect(GateSpotTestDialect):
    """The same wire format with no compiled router: every frame takes ``BookSync``'s Python path."""

    router_dialect = DIALECT_NONE


@pytest.mark.parametrize("dialect", [GateSpotTestDialect, PythonPathDialect])
def test_update_ids_going_backwards_resync_the_book_once_its_diffs_stay_stale(dialect: type) -> None:
    async def main() -> None:
        sink, fetcher = RecordingSink(), Snapshots(bodies())
        specs = [BookSpec("AAA/USDT", "AAA_USDT", SCALE)]
        sync = BookSync(GATE, dialect(), specs, sink, fetch_snapshot=fetcher)
        feed(sync, gate_update("AAA_USDT", 10, 10, [("99.00", "1")]))
        await settle()
        assert sync.books["AAA/USDT"].last_update_id == 10
        # the venue restarted its ids at 1: every diff is "already had", the book stops changing
        restarted = STALE_STREAM_NS // 4
        for n in range(1, 5):
            sync.on_message(memoryview(gate_update("AAA_USDT", n, n, [("99.10", "1")])), False, True, 1 + n * restarted)
        assert sync.books["AAA/USDT"].in_sync and sync.stats()["AAA/USDT"].stale == 4
        fetcher.bodies["AAA_USDT"] = [gate_snapshot(5, *BOOK)]
        sync.on_message(memoryview(gate_update("AAA_USDT", 5, 5, [("99.20", "1")])), False, True, 2 + 4 * restarted)
        assert not sync.books["AAA/USDT"].in_sync
        assert sink.states[-1] == ("AAA/USDT", False, "stale_stream")
        feed(sync, gate_update("AAA_USDT", 6, 6, [("99.30", "1")]))
        await settle()
        stats = sync.stats()["AAA/USDT"]
        assert stats.in_sync and stats.last_update_id == 6 and stats.resyncs == {"stale_stream": 1}
        assert sink.states[-1] == ("AAA/USDT", True, "snapshot")

    run(main())


def test_crossed_book_resyncs() -> None:
    async def main() -> None:
        sink, fetcher = RecordingSink(), Snapshots(bodies())
        sync = await synced(fetcher, sink)
        feed(sync, gate_update("AAA_USDT", 11, 11, [("102.00", "1")]))  # bid above the 101 ask
        assert not sync.books["AAA/USDT"].in_sync and sync.books["BBB/USDT"].in_sync
        assert sync.stats()["AAA/USDT"].resyncs == {"crossed": 1}
        assert sink.states[-1] == ("AAA/USDT", False, "crossed")

    run(main())


def test_a_book_resynced_for_a_crossing_diff_is_fetched_again_after_a_growing_wait() -> None:
    """After a crossing diff (in sync, or buffered and replayed on a snapshot) the next diff fetched a
    snapshot at once: a stream whose diffs kept crossing the book was asked for one per diff, ten a
    second, where a snapshot the book refuses waits 0.2-10 s."""
    async def main() -> None:
        sink, fetcher = RecordingSink(), Snapshots(bodies())
        sync = await synced(fetcher, sink)
        loop = asyncio.get_running_loop()
        waits: list[int] = []
        waiting: list[asyncio.Future[None]] = []

        async def backoff(attempt: int, exc: Exception | None) -> None:
            waits.append(attempt)
            waiting.append(loop.create_future())
            await waiting[-1]

        sync._backoff = backoff  # type: ignore[method-assign]
        crossing = [("102.00", "1")]  # a bid above the 101 ask
        feed(sync, gate_update("AAA_USDT", 11, 11, crossing))
        for n in range(12, 16):
            feed(sync, gate_update("AAA_USDT", n, n, [("99.00", str(n))]))
        await settle()
        assert fetcher.calls["AAA_USDT"] == 1 and waits == [0]  # the next fetch waits
        fetcher.bodies["AAA_USDT"] = [gate_snapshot(13, *BOOK)]
        waiting[-1].set_result(None)
        await eventually(lambda: sync.books["AAA/USDT"].in_sync, what="the snapshot after the wait")
        assert sync.books["AAA/USDT"].last_update_id == 15 and fetcher.calls["AAA_USDT"] == 2
        feed(sync, gate_update("AAA_USDT", 16, 16, crossing))  # again: a longer wait
        feed(sync, gate_update("AAA_USDT", 17, 17, crossing))  # buffered: crosses the next snapshot
        await settle()
        assert waits == [0, 1] and fetcher.calls["AAA_USDT"] == 2
        fetcher.bodies["AAA_USDT"] = [gate_snapshot(16, *BOOK)]
        waiting[-1].set_result(None)
        await settle()
        assert waits == [0, 1, 2] and fetcher.calls["AAA_USDT"] == 3
        a = sync.stats()["AAA/USDT"]
        assert not a.in_sync and a.resyncs == {"crossed": 3} and a.snapshot_failures == 0
        await sync.close()

    run(main())


def test_malformed_frame_is_counted_logged_once_and_resyncs(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        sink, fetcher = RecordingSink(), Snapshots(bodies())
        sync = await synced(fetcher, sink)
        bad = gate_update("AAA_USDT", 11, 11, [("99.00", "1")]).replace(b'"99.00"', b'"99.0x"')
        with caplog.at_level(logging.DEBUG, logger="arb.exchanges.book_sync"):
            feed(sync, bad)
            feed(sync, bad)
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "malformed" in r.getMessage()]
        assert len(warnings) == 1 and "AAA/USDT" in warnings[0].getMessage() and "gateio" in warnings[0].getMessage()
        a = sync.stats()["AAA/USDT"]
        assert a.malformed == 2 and a.resyncs == {"malformed": 1} and not a.in_sync
        feed(sync, gate_update("BBB_USDT", 11, 11, [("99.10", "2")]))  # the stream goes on
        assert sync.books["BBB/USDT"].last_update_id == 11
        feed(sync, b"\x00not json at all")
        feed(sync, b'{"channel":"spot.order_book_update","event":"update","result":{"s":"ZZZ_USDT"}}')
        assert sync.unroutable == 1 and sync.unknown_symbol == 1

    run(main())


def test_a_frame_of_no_kind_the_stream_reads_is_counted_and_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    """A diff damaged in its channel name read as a frame of no known kind and was dropped with no
    count and no word."""
    async def main() -> None:
        sync = await synced(Snapshots(bodies()), RecordingSink())
        damaged = gate_update("AAA_USDT", 11, 11, [("99.00", "1")]).replace(b"order_book_update", b"order_book_updat")
        with caplog.at_level(logging.WARNING, logger="arb.exchanges.book_sync"):
            feed(sync, damaged)
            feed(sync, damaged)
        assert sync.other_frames == 2 and sync.unroutable == 0 and sync.books["AAA/USDT"].last_update_id == 10
        [warned] = [r.getMessage() for r in caplog.records if "no kind the stream reads" in r.getMessage()]
        assert "gateio" in warned and "order_book_updat" in warned
        await sync.close()

    run(main())


LOST_DIFF = gate_update("AAA_USDT", 11, 11, [], [("101.00", "0"), ("105.00", "1")])  # takes the 101 ask away


@pytest.mark.parametrize("dialect", [GateSpotTestDialect, PythonPathDialect])
@pytest.mark.parametrize(
    "damaged",
    [LOST_DIFF[: len(LOST_DIFF) * 2 // 5], LOST_DIFF.replace(b'"s":"AAA_USDT"', b'"s":1234567')],
    ids=["cut_short", "symbol_not_a_string"],
)
def test_a_frame_whose_book_cannot_be_told_resyncs_every_book_of_the_stream(
    dialect: type, damaged: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """A diff whose symbol could not be read (cut short before it, a number where a string was) was
    counted and warned about, and no book resynced: the book it was for stayed in sync, fresh, with
    a level the venue had taken away, and was traded on until its next diff showed the gap."""
    async def main() -> None:
        sink, fetcher = RecordingSink(), Snapshots(bodies())
        specs = [BookSpec("AAA/USDT", "AAA_USDT", SCALE), BookSpec("BBB/USDT", "BBB_USDT", SCALE)]
        sync = BookSync(GATE, dialect(), specs, sink, fetch_snapshot=fetcher)
        for symbol in ("AAA_USDT", "BBB_USDT"):
            feed(sync, gate_update(symbol, 10, 10, [("99.00", "1")]))
        await settle()
        assert all(book.in_sync for book in sync.books.values())
        with caplog.at_level(logging.DEBUG, logger="arb.exchanges.book_sync"):
            feed(sync, damaged)
            feed(sync, damaged)
        assert not any(book.in_sync for book in sync.books.values())
        assert sync.unroutable == 2
        assert {s: st.resyncs for s, st in sync.stats().items()} == {
            "AAA/USDT": {"unroutable": 1}, "BBB/USDT": {"unroutable": 1}
        }
        assert sink.states[-2:] == [("AAA/USDT", False, "unroutable"), ("BBB/USDT", False, "unroutable")]
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warned) == 1 and "frame not classifiable or without symbol" in warned[0]
        assert "(books resynced: 2)" in warned[0]
        fetcher.bodies["AAA_USDT"] = [gate_snapshot(11, [("100.00", "1")], [("105.00", "1")])]
        feed(sync, gate_update("AAA_USDT", 12, 12, [("99.50", "1")]))
        await settle()
        assert sync.books["AAA/USDT"].in_sync and sync.books["AAA/USDT"].top(ASK, 5) == [(10500, 10000)]
        await sync.close()

    run(main())


def test_a_message_the_websocket_dropped_resyncs_every_book_of_the_stream() -> None:
    """A message the websocket dropped (above its size limit, or its fragments cut off) was counted
    in the session's errors only: the book whose diff it was stayed in sync and fresh without it."""
    async def main() -> None:
        def on_subscribe(conn, msg):  # type: ignore[no-untyped-def]
            conn.send(gate_update(json.loads(msg)["payload"][0], 10, 10, [("99.00", "1")]))

        server = await WsTestServer(on_message=on_subscribe).start()
        sink, fetcher = RecordingSink(), Snapshots(bodies())
        sync = synthetic_sync(fetcher, sink)
        session = sync.make_session(WsSettings(max_message_bytes=1000, backoff_initial_s=0.01), url=server.url)
        session.start()
        await eventually(lambda: all(b.in_sync for b in sync.books.values()), what="both books in sync")
        transport = server.connections[0].transport
        diff = gate_update("AAA_USDT", 11, 11, [], [(f"{101 + n}.00", "0") for n in range(60)])  # over 1000 bytes
        transport.send(WSMsgType.TEXT, diff[:600], fin=False)
        transport.send(WSMsgType.CONTINUATION, diff[600:], fin=True)
        await eventually(lambda: not any(b.in_sync for b in sync.books.values()), what="both books resynced")
        assert {s: st.resyncs for s, st in sync.stats().items()} == {
            "AAA/USDT": {"message_lost": 1}, "BBB/USDT": {"message_lost": 1}
        }
        assert session.health().errors == {"oversize": 1} and session.health().reconnects == 0
        await session.close()
        await sync.close()
        await server.close()

    run(main())


@pytest.mark.parametrize(
    "lose",
    [
        lambda sync: feed(sync, LOST_DIFF.replace(b'"101.00"', b'"101.0x"')),
        lambda sync: feed(sync, LOST_DIFF[: len(LOST_DIFF) * 2 // 5]),
        lambda sync: sync.on_message_lost(),
    ],
    ids=["malformed", "unroutable", "message_lost"],
)
def test_a_diff_lost_while_the_snapshot_is_pending_makes_the_book_fetch_a_newer_one(
    lose: Callable[[BookSync], None],
) -> None:
    """A diff lost (malformed, unroutable, dropped by the websocket) while its book waited for a
    snapshot was counted and nothing else: the snapshot, requested before that diff, brought the
    book in sync and fresh without it, showing a level the venue had taken away."""
    async def main() -> None:
        sink = RecordingSink()
        fetcher = Snapshots({**bodies(), "AAA_USDT": [gate_snapshot(10, *BOOK), gate_snapshot(11, [("100.00", "1")], [("105.00", "1")])]})
        fetcher.release.clear()
        settings = BookSyncSettings(snapshot_retry_initial_s=0.05, snapshot_retry_max_s=0.05)
        sync = synthetic_sync(fetcher, sink, settings=settings)
        feed(sync, gate_update("AAA_USDT", 10, 10, [("99.00", "1")]))  # buffered; the fetch is sent
        await settle()
        assert fetcher.calls["AAA_USDT"] == 1
        lose(sync)
        fetcher.release.set()  # the answer of update 10 lands: it lacks the lost update 11
        await settle()
        a = sync.stats()["AAA/USDT"]
        assert not a.in_sync and a.buffered == 0 and a.snapshots == 0 and a.snapshot_failures == 1 and sink.states == []
        feed(sync, gate_update("AAA_USDT", 12, 12, [("99.50", "1")]))  # buffered until the fetch after the wait
        await eventually(lambda: sync.books["AAA/USDT"].in_sync, 2, what="the snapshot requested after the loss")
        book = sync.books["AAA/USDT"]
        assert book.last_update_id == 12 and book.top(ASK, 5) == [(10500, 10000)]
        assert fetcher.calls["AAA_USDT"] == 2 and sync.stats()["AAA/USDT"].resyncs == {}
        await sync.close()

    run(main())


@pytest.mark.parametrize(
    "lose",
    [lambda sync: feed(sync, LOST_DIFF.replace(b'"101.00"', b'"101.0x"')), lambda sync: sync.on_message_lost()],
    ids=["malformed", "message_lost"],
)
def test_diffs_lost_while_a_snapshot_waits_out_its_retry_do_not_cut_the_wait_short(
    lose: Callable[[BookSync], None],
) -> None:
    """A lost diff cancelled the pending fetch, retry wait included, and the next diff fetched at
    once: a stream losing every other frame asked for a snapshot per diff (ten a second on MEXC)
    on the venue's shared request weight, whatever the backoff said."""
    async def main() -> None:
        crossed = gate_snapshot(9, [("101.00", "1")], [("100.00", "1")])
        fetcher = Snapshots({**bodies(), "AAA_USDT": [crossed, gate_snapshot(30, *BOOK)]})
        settings = BookSyncSettings(snapshot_retry_initial_s=0.2, snapshot_retry_max_s=0.2)
        sync = synthetic_sync(fetcher, RecordingSink(), settings=settings)
        for n in range(20):
            feed(sync, gate_update("AAA_USDT", 10 + n, 10 + n, [("99.00", str(n + 1))]))
            if n % 2:
                lose(sync)
            await asyncio.sleep(0.001)
        assert fetcher.calls["AAA_USDT"] == 1  # the refused one; the next waits for its retry delay
        await eventually(lambda: sync.books["AAA/USDT"].in_sync, 3, what="the snapshot after the wait")
        assert fetcher.calls["AAA_USDT"] == 2 and sync.stats()["AAA/USDT"].snapshot_failures == 1
        await sync.close()

    run(main())


def test_a_book_on_a_rest_snapshot_says_when_the_snapshot_was_requested() -> None:
    """The venue may compose a REST snapshot as soon as its request arrives: a book synced by one
    answered after our order was written counted as showing our fill (received after the write)
    when it may predate it. The book says when its snapshot was requested until the stream moves it
    on; it is applied at its arrival, so the stream's diffs it already has are stale, not a stream
    gone backwards."""
    async def main() -> None:
        now = [1_000]
        fetcher = Snapshots({"AAA_USDT": [gate_snapshot(11, *BOOK)], "BBB_USDT": []})
        fetcher.release.clear()
        sync = synthetic_sync(fetcher, RecordingSink(), clock=lambda: now[0])
        sync.on_message(memoryview(gate_update("AAA_USDT", 10, 10, [("99.00", "1")])), False, True, now[0])
        await settle()  # the request is sent
        now[0] += 2 * STALE_STREAM_NS
        fetcher.release.set()
        await settle()
        book = sync.books["AAA/USDT"]
        assert book.in_sync and book.last_update_id == 11 and book.last_recv_ns == now[0]
        assert sync.rest_snapshot_requested_ns("AAA/USDT") == 1_000
        now[0] += 1_000_000
        sync.on_message(memoryview(gate_update("AAA_USDT", 11, 11, [("99.10", "1")])), False, True, now[0])
        assert sync.stats()["AAA/USDT"].resyncs == {} and sync.rest_snapshot_requested_ns("AAA/USDT") == 1_000
        sync.on_message(memoryview(gate_update("AAA_USDT", 12, 12, [("99.20", "1")])), False, True, now[0])
        assert book.last_update_id == 12 and sync.rest_snapshot_requested_ns("AAA/USDT") is None
        assert sync.rest_snapshot_requested_ns("BBB/USDT") is None
        await sync.close()

    run(main())


def test_snapshot_older_than_the_buffer_is_fetched_again() -> None:
    async def main() -> None:
        sink = RecordingSink()
        fetcher = Snapshots({"AAA_USDT": [gate_snapshot(5, *BOOK), gate_snapshot(20, *BOOK)], "BBB_USDT": []})
        settings = BookSyncSettings(snapshot_retry_initial_s=0.0, snapshot_retry_max_s=0.0)
        sync = synthetic_sync(fetcher, sink, settings=settings)
        feed(sync, gate_update("AAA_USDT", 20, 21, [("99.00", "1")]))  # starts after id 5 + 1
        await eventually(lambda: sync.books["AAA/USDT"].in_sync, what="the newer snapshot")
        a = sync.stats()["AAA/USDT"]
        assert a.in_sync and a.last_update_id == 21 and a.resyncs == {"snapshot_too_old": 1}
        assert fetcher.calls["AAA_USDT"] == 2 and a.applied == 1

    run(main())


def test_snapshots_too_old_for_the_stream_are_fetched_again_after_a_growing_wait_and_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A snapshot older than the buffered diffs was fetched again at once, counted nowhere but in
    ``resyncs`` and never logged: a venue whose REST depth lags its stream was polled as fast as it
    answered (50 requests a second at a 20 ms round trip), on the budget every other book shares."""
    async def main() -> None:
        def lagging() -> Snapshots:
            return Snapshots({"AAA_USDT": [gate_snapshot(5, *BOOK)] * 4 + [gate_snapshot(20, *BOOK)], "BBB_USDT": []})

        fetcher = lagging()
        sync = synthetic_sync(fetcher, RecordingSink())
        feed(sync, gate_update("AAA_USDT", 20, 21, [("99.00", "1")]))  # starts after id 5 + 1
        await settle()
        assert fetcher.calls["AAA_USDT"] == 1  # the next waits for its retry delay
        assert not sync.books["AAA/USDT"].in_sync and sync.stats()["AAA/USDT"].snapshot_failures == 1
        await sync.close()

        attempts: list[int] = []

        async def no_wait(state: object, attempt: int, exc: Exception | None) -> None:
            attempts.append(attempt)

        sync = synthetic_sync(lagging(), RecordingSink())
        sync._retry_after = no_wait  # type: ignore[method-assign]
        with caplog.at_level(logging.DEBUG, logger="arb.exchanges.book_sync"):
            feed(sync, gate_update("AAA_USDT", 20, 21, [("99.00", "1")]))
            await eventually(lambda: sync.books["AAA/USDT"].in_sync, what="the newer snapshot")
        assert attempts == [0, 1, 2, 3]  # the wait grows as for a failed fetch
        assert sync.stats()["AAA/USDT"].resyncs == {"snapshot_too_old": 4}
        await sync.close()

    run(main())
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "3 snapshots of AAA/USDT in a row too old" in warned[0]
    assert "the last at update 5, the diffs from 20" in warned[0]


def test_failed_snapshot_is_retried_after_retry_after() -> None:
    async def main() -> None:
        fetcher = Snapshots(bodies())
        fetcher.fail_next = RateLimitError("gateio", "slow down", retry_after_s=0.01)
        sync = synthetic_sync(fetcher, RecordingSink())
        feed(sync, gate_update("AAA_USDT", 10, 10))
        await eventually(lambda: sync.books["AAA/USDT"].in_sync, what="snapshot after the retry")
        assert sync.stats()["AAA/USDT"].snapshot_failures == 1 and fetcher.calls["AAA_USDT"] == 2

    run(main())


def test_a_snapshot_fetch_failing_with_any_error_is_logged_with_its_traceback_and_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A fetch failing with an error of no expected type (a bug, a transport's own exception) ended
    the fetch task silently; the book kept pointing at the finished task, so no later diff started
    another, and it stayed out of sync until the next reconnect."""
    async def main() -> None:
        fetcher = Snapshots(bodies())
        fetcher.fail_next = RuntimeError("unexpected")
        settings = BookSyncSettings(snapshot_retry_initial_s=0.0, snapshot_retry_max_s=0.0)
        sync = synthetic_sync(fetcher, RecordingSink(), settings=settings)
        with caplog.at_level(logging.WARNING, logger="arb.exchanges.book_sync"):
            feed(sync, gate_update("AAA_USDT", 10, 10))
            await eventually(lambda: sync.books["AAA/USDT"].in_sync, what="the snapshot after the retry")
        assert sync.stats()["AAA/USDT"].snapshot_failures == 1 and fetcher.calls["AAA_USDT"] == 2
        [warned] = [r for r in caplog.records if "snapshot of AAA/USDT failed: unexpected" in r.getMessage()]
        assert warned.exc_info is not None and warned.exc_info[0] is RuntimeError
        await sync.close()

    run(main())


def test_a_snapshot_fetch_that_ended_does_not_hold_back_the_next() -> None:
    async def main() -> None:
        fetcher = Snapshots(bodies())
        fetcher.release.clear()
        sync = synthetic_sync(fetcher, RecordingSink())
        feed(sync, gate_update("AAA_USDT", 10, 10))
        await settle()
        [task] = [t for t in asyncio.all_tasks() if t.get_name() == "gateio snapshot AAA_USDT"]
        task.cancel()  # ended from outside
        await settle()
        fetcher.release.set()
        feed(sync, gate_update("AAA_USDT", 11, 11))
        await eventually(lambda: sync.books["AAA/USDT"].in_sync, what="the snapshot of a new fetch")
        assert fetcher.calls["AAA_USDT"] == 2
        await sync.close()

    run(main())


def test_a_snapshot_refused_for_hours_is_still_retried_and_syncs_once_answered() -> None:
    """Retries' delays doubled without an end to the exponent: the 1024th failure's delay overflowed
    a float, which ended the fetch task, and no later update started another: out of sync until
    the connection dropped, and ``close`` raised the overflow."""
    async def main() -> None:
        fetcher = Snapshots(bodies())
        failures = 1_100

        async def refusing(venue_symbol: str) -> bytes:
            nonlocal failures
            if failures:
                failures -= 1
                raise RateLimitError("gateio", "banned")
            return await fetcher(venue_symbol)

        settings = BookSyncSettings(snapshot_retry_initial_s=0.0, snapshot_retry_max_s=0.0)
        sync = synthetic_sync(refusing, RecordingSink(), settings=settings)  # type: ignore[arg-type]
        feed(sync, gate_update("AAA_USDT", 10, 10))
        await eventually(lambda: sync.books["AAA/USDT"].in_sync, what="the snapshot once it is answered")
        assert sync.stats()["AAA/USDT"].snapshot_failures == 1_100
        await sync.close()

    run(main())


@pytest.mark.parametrize(
    ("refused", "reason"),
    [
        (([("100.00", "1"), ("100.00", "2")], [("101.00", "1")]), "invalid_snapshot"),  # a bid level twice
        (([("102.00", "1")], [("101.00", "1")]), "crossed_snapshot"),
    ],
)
def test_a_snapshot_the_book_refuses_is_fetched_again_after_a_wait_not_once_per_diff(
    refused: tuple[list[tuple[str, str]], list[tuple[str, str]]], reason: str
) -> None:
    """A snapshot with a price level twice escaped as a traceback, counted nowhere, and the next diff
    started the next fetch at once: a depth request per diff (ten a second on MEXC) on the
    venue's shared request weight. A crossed one was counted but refetched per diff alike."""
    async def main() -> None:
        fetcher = Snapshots({"AAA_USDT": [gate_snapshot(9, *refused), gate_snapshot(9, *refused), gate_snapshot(9, *BOOK)],
                             "BBB_USDT": []})
        settings = BookSyncSettings(snapshot_retry_initial_s=0.2, snapshot_retry_max_s=0.2)
        sync = synthetic_sync(fetcher, RecordingSink(), settings=settings)
        for n in range(20):
            feed(sync, gate_update("AAA_USDT", 10 + n, 10 + n, [("99.00", str(n + 1))]))
            await asyncio.sleep(0.001)
        assert fetcher.calls["AAA_USDT"] == 1  # the refused one; the next waits for its retry delay
        a = sync.stats()["AAA/USDT"]
        assert not a.in_sync and a.snapshot_failures == 1 and a.resyncs == {reason: 1}
        await eventually(lambda: sync.books["AAA/USDT"].in_sync, 3, what="the snapshot once a valid one is served")
        a = sync.stats()["AAA/USDT"]
        assert fetcher.calls["AAA_USDT"] == 3 and a.snapshot_failures == 2 and a.resyncs == {reason: 2}
        await sync.close()

    run(main())


def test_a_snapshot_failing_for_a_new_reason_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    """Only a symbol's first snapshot failure was a warning: a later, different one (an IP not
    whitelisted after a connection reset) showed at debug level while the book stayed out of sync."""
    async def main() -> None:
        fetcher = Snapshots(bodies())
        failures = [OSError("connection reset"), OSError("reset again"), ExchangeError("gateio", "HTTP 403: IP not whitelisted")]

        async def failing(venue_symbol: str) -> bytes:
            if failures:
                raise failures.pop(0)
            return await fetcher(venue_symbol)

        settings = BookSyncSettings(snapshot_retry_initial_s=0.0, snapshot_retry_max_s=0.0)
        sync = synthetic_sync(failing, RecordingSink(), settings=settings)  # type: ignore[arg-type]
        with caplog.at_level(logging.DEBUG, logger="arb.exchanges.book_sync"):
            feed(sync, gate_update("AAA_USDT", 10, 10))
            await eventually(lambda: sync.books["AAA/USDT"].in_sync, what="the snapshot once it is answered")
        await sync.close()

    run(main())
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "snapshot" in r.getMessage()]
    assert [w.split("failed: ")[1] for w in warned] == ["connection reset", "gateio: HTTP 403: IP not whitelisted"]


def test_a_diff_read_together_with_a_pong_is_scanned() -> None:
    """The venue's answer to the heartbeat read right behind a diff was consumed before the book's
    handler saw it, so that read's batch never ended and the diff's book was not scanned."""
    async def main() -> None:
        diff = gate_update("AAA_USDT", 11, 11, [("99.50", "2")])
        server = await WsTestServer(ahead_of_pong=diff).start()
        sink = RecordingSink()
        spec = BookSpec("AAA/USDT", "AAA_USDT", SCALE)
        sync = BookSync(GATE, GateSpotTestDialect(server.url, snapshot_in_first_push=True), [spec], sink,
                        fetch_snapshot=Snapshots({"AAA_USDT": [gate_snapshot(10, *BOOK)]}))
        sync.on_message(memoryview(gate_update("AAA_USDT", 10, 10, *BOOK, full=True)), False, True, 1)
        ends = sink.batch_ends
        session = sync.make_session(WsSettings(heartbeat_interval_s=0.05, heartbeat_timeout_s=0.05))
        session.start()
        await eventually(lambda: sync.books["AAA/USDT"].last_update_id == 11, what="the diff ahead of a pong")
        assert sink.batch_ends == ends + 1
        await session.close()
        await server.close()

    run(main())


def test_disconnect_marks_every_book_out_of_sync() -> None:
    async def main() -> None:
        sink, fetcher = RecordingSink(), Snapshots(bodies())
        sync = await synced(fetcher, sink)
        sync.on_disconnected()
        assert not any(book.in_sync for book in sync.books.values())
        assert {s: st.resyncs for s, st in sync.stats().items()} == {
            "AAA/USDT": {"reconnect": 1}, "BBB/USDT": {"reconnect": 1}
        }
        assert sink.states[-2:] == [("AAA/USDT", False, "reconnect"), ("BBB/USDT", False, "reconnect")]
        await sync.close()

    run(main())


def test_full_push_replaces_the_book_and_cancels_the_pending_fetch() -> None:
    async def main() -> None:
        fetcher = Snapshots(bodies())
        fetcher.release.clear()
        sync = synthetic_sync(fetcher, RecordingSink())
        feed(sync, gate_update("AAA_USDT", 10, 10, [("99.00", "1")]))
        await settle()
        feed(sync, gate_update("AAA_USDT", 11, 11, *BOOK, full=True))
        feed(sync, gate_update("AAA_USDT", 12, 12, [("99.00", "3")]))
        await settle()
        a = sync.stats()["AAA/USDT"]
        assert a.in_sync and a.last_update_id == 12 and a.snapshots == 1
        assert sync.books["AAA/USDT"].top(BID, 5) == [(10000, 10000), (9900, 30000)]

    run(main())


class FakeSession:
    connected = True

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, payload: str) -> None:
        self.sent.append(payload)


def test_first_push_mode_resyncs_by_resubscribing() -> None:
    async def main() -> None:
        sink = RecordingSink()
        sync = BookSync(
            GATE, GateSpotTestDialect(snapshot_in_first_push=True),
            [BookSpec("AAA/USDT", "AAA_USDT", SCALE), BookSpec("BBB/USDT", "BBB_USDT", SCALE)], sink,
        )
        session = FakeSession()
        sync._session = session  # type: ignore[assignment]
        feed(sync, gate_update("AAA_USDT", 5, 6, [("99.00", "1")]))  # no snapshot yet: dropped
        assert not sync.books["AAA/USDT"].in_sync
        feed(sync, gate_update("AAA_USDT", 7, 7, *BOOK, full=True))
        feed(sync, gate_update("AAA_USDT", 9, 9, [("99.00", "1")]))  # gap
        assert sync.stats()["AAA/USDT"].resyncs == {"gap": 1}
        assert ['"unsubscribe"' in s and "AAA_USDT" in s for s in session.sent] == [True, False]
        assert '"subscribe"' in session.sent[1] and "AAA_USDT" in session.sent[1]
        feed(sync, gate_update("AAA_USDT", 20, 20, *BOOK, full=True))
        assert sync.books["AAA/USDT"].in_sync and sync.books["AAA/USDT"].last_update_id == 20
        with pytest.raises(ValueError, match="needs REST snapshots but no fetch_snapshot"):
            BookSync(GATE, GateSpotTestDialect(), [], sink)

    run(main())


def test_consumer_exception_does_not_stop_the_stream() -> None:
    class Failing(RecordingSink):
        def on_book_update(self, key):  # type: ignore[no-untyped-def]
            super().on_book_update(key)
            raise RuntimeError("scanner bug")

    async def main() -> None:
        sink, fetcher = Failing(), Snapshots(bodies())
        sync = synthetic_sync(fetcher, sink)
        feed(sync, gate_update("AAA_USDT", 10, 10))
        await settle()
        feed(sync, gate_update("AAA_USDT", 11, 11, [("99.00", "1")]))
        feed(sync, gate_update("AAA_USDT", 12, 12, [("99.00", "2")]))
        assert sync.books["AAA/USDT"].last_update_id == 12 and sink.updates["AAA/USDT"] == 3

    run(main())


# --- the whole pipeline on loopback sockets ------------------------------------------------


def test_pipeline_over_sockets_resyncs_after_the_server_drops(shared_data: Path) -> None:
    updates, snaps, scales = recorded(shared_data)
    by_pair: dict[str, list[bytes]] = defaultdict(list)
    for frame in updates:
        by_pair[symbol_of(frame)].append(frame)
    specs = [BookSpec(p.replace("_", "/"), p, WireScale(*scales[p])) for p in snaps]

    async def main() -> None:
        def replay(conn, msg):  # type: ignore[no-untyped-def]
            pair = json.loads(msg)["payload"][0]
            for frame in by_pair[pair]:
                conn.send(frame)

        ws_server = await WsTestServer(on_message=replay).start()

        async def order_book(request: web.Request) -> web.Response:
            return web.Response(body=snaps[request.query["currency_pair"]], content_type="application/json")

        app = web.Application()
        app.router.add_get("/api/v4/spot/order_book", order_book)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        rest_venue = RestVenue(
            name="gateio", base_url=f"http://{host}:{port}/api/v4", error_codes={}, http_statuses={},
            rate_limits=(RateLimit("public", 200, 10.0),),
        )
        sink = RecordingSink()
        async with RestClient(rest_venue) as client:
            dialect = GateSpotTestDialect(ws_server.url)
            sync = BookSync(GATE, dialect, specs, sink, fetch_snapshot=rest_snapshot_fetcher(client, dialect))
            session = sync.make_session(WsSettings(backoff_initial_s=0.01, backoff_max_s=0.05))
            session.start()
            await eventually(lambda: all(b.in_sync for b in sync.books.values()), what="all books in sync")
            first = {s: (b.last_update_id, b.top(BID, 1000), b.top(ASK, 1000)) for s, b in sync.books.items()}
            ws_server.connections[0].transport.disconnect()
            await eventually(lambda: len(ws_server.connections) == 2, what="reconnect")
            await eventually(
                lambda: all(s.resyncs == {"reconnect": 1} and s.in_sync for s in sync.stats().values()),
                what="resync after reconnect",
            )
            again = {s: (b.last_update_id, b.top(BID, 1000), b.top(ASK, 1000)) for s, b in sync.books.items()}
            assert again == first
            assert client.stats.requests == 2 * len(snaps) and session.health().reconnects == 1
            assert ("NEO/BTC", False, "reconnect") in sink.states
            await session.close()
            await sync.close()
        await runner.cleanup()
        await ws_server.close()

    run(main())


def test_a_refused_subscription_is_a_venue_error_not_an_acknowledgement(caplog: pytest.LogCaptureFixture) -> None:
    """Gate.io answers a subscription it refuses with a non-null "error": counted and logged as the
    venue's error (the book never comes in sync), where an accepted one only counts as an ack."""
    sync = synthetic_sync(Snapshots(bodies()), RecordingSink())
    accepted = b'{"time":1,"channel":"spot.order_book_update","event":"subscribe","error":null,"result":{"status":"success"}}'
    refused = (b'{"time":1,"channel":"spot.order_book_update","event":"subscribe",'
               b'"error":{"code":2,"message":"unknown currency pair AAA_USDT"},"result":{"status":"fail"}}')
    with caplog.at_level(logging.WARNING, logger="arb.exchanges.book_sync"):
        feed(sync, accepted)
        feed(sync, refused)
    assert (sync.acks, sync.venue_errors) == (1, 1)
    assert "venue error frame" in caplog.text and "unknown currency pair AAA_USDT" in caplog.text


def test_a_refused_mexc_contract_subscription_is_a_venue_error(caplog: pytest.LogCaptureFixture) -> None:
    """MEXC's contract stream answers a subscription it refuses on channel ``rs.error``: a venue
    error, counted and logged; ``rs.sub.depth`` is the acknowledgement."""
    async def fetch(symbol: str) -> bytes:
        raise AssertionError("no snapshot is asked for")

    sync = BookSync(ExchangeName.MEXC_FUTURES, MexcFuturesMarketData(),
                    [BookSpec("A/USDT:USDT", "AAA_USDT", WireScale(2, 1, 0, 1))], RecordingSink(), fetch_snapshot=fetch)
    with caplog.at_level(logging.WARNING, logger="arb.exchanges.book_sync"):
        feed(sync, b'{"channel":"rs.sub.depth","data":"success","ts":1587442022003}')
        feed(sync, b'{"channel":"rs.error","data":"contract not exists","ts":1587442022003}')
    assert (sync.acks, sync.venue_errors) == (1, 1)
    assert "venue error frame" in caplog.text and "contract not exists" in caplog.text


def test_venue_error_frames_are_all_counted_and_warned_about_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    """A venue answering every frame with an error would otherwise log a warning per frame."""
    now = [0]
    sync = synthetic_sync(Snapshots(bodies()), RecordingSink(), clock=lambda: now[0])
    refused = (b'{"time":1,"channel":"spot.order_book_update","event":"subscribe",'
               b'"error":{"code":2,"message":"unknown currency pair AAA_USDT"},"result":{"status":"fail"}}')
    with caplog.at_level(logging.WARNING, logger="arb.exchanges.book_sync"):
        for _ in range(500):
            now[0] += 100_000_000  # one every 100 ms: 50 s
            feed(sync, refused)
        now[0] += 10_100_000_000  # a minute after the first
        feed(sync, refused)
    warnings = [r.getMessage() for r in caplog.records if "venue error frame" in r.getMessage()]
    assert sync.venue_errors == 501 and len(warnings) == 2
    assert "unknown currency pair AAA_USDT" in warnings[1]
    assert warnings[1].endswith("(499 more venue error frames since the last warning)")


def test_a_venue_error_unlike_the_last_one_is_warned_about_at_once(caplog: pytest.LogCaptureFixture) -> None:
    """Every venue error frame shared one warning a minute: a different refusal coming within it
    (a second pair unknown, a subscription limit reached) was logged at debug level only."""
    now = [0]
    sync = synthetic_sync(Snapshots(bodies()), RecordingSink(), clock=lambda: now[0])
    refused = ('{"time":%d,"channel":"spot.order_book_update","event":"subscribe",'
               '"error":{"code":2,"message":"unknown currency pair %s"},"result":{"status":"fail"}}')
    with caplog.at_level(logging.WARNING, logger="arb.exchanges.book_sync"):
        for pair in ("AAA_USDT", "AAA_USDT", "BBB_USDT", "AAA_USDT", "BBB_USDT"):
            now[0] += 1_000_000_000
            feed(sync, (refused % (now[0] // 1_000_000_000, pair)).encode())
    warnings = [r.getMessage() for r in caplog.records if "venue error frame" in r.getMessage()]
    assert sync.venue_errors == 5 and len(warnings) == 2
    assert "pair AAA_USDT" in warnings[0] and "pair BBB_USDT" in warnings[1]
