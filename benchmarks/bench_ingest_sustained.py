"""Sustained ingest over loopback: four markets' book updates at a target aggregate rate.

The engine's real ingest path runs in this process: one picows ``WsSession`` per market
(Gate.io spot and perpetuals, MEXC spot and perpetuals), its listener handing each message
to ``BookSync.on_message`` (the compiled classifier and decoder, the ``OrderBook``), which
notifies the ``ScannerPipeline`` that scans each touched symbol at the end of every socket
read. BTC/USDT and ETH/USDT are subscribed on every market (eight books, two scanner
symbols of four legs each).

The source is a pusher in a forked process, so it runs on the other core and measures our
client, not the simulator. It speaks just enough websocket to accept the connections and
streams pre-encoded frames: rings built once with the simulator's venue encoders
(``SpotBookEncoder``, ``FuturesBookEncoder``, ``MexcSpotDepthEncoder``,
``MexcFuturesDepthEncoder``), every update id written at a fixed width of 15 digits, so each
pass over a ring only rewrites those digits in place (numpy) and the bytes go out with one
``sendall`` per market and 1 ms tick. An update is one diff message (1-4 changed levels,
one update id); the rings only ever set sizes on a fixed price ladder per symbol, the same
on every venue and never crossing, so every pass applies cleanly and the books' final
contents are known exactly. REST snapshots are answered in process from the same encoders.

Measured: updates/s achieved over the timed window (after a warm-up), ingest lag per
message (the listener's receive stamp, ``time.monotonic_ns()`` in picows' frame callback,
to the end of the scan that follows its socket read; recorded by a tap wrapping
``BookSync.on_message``, the hook recorders use, at about 0.1 µs a message) in a
``LatencyHistogram``, and VmRSS at the start, middle and end of the window (plus a curve).
Asserted after timing: the achieved rate, every book in sync at the last id sent and equal
to the expected book.

Same-run baseline (``DecodeAlone``): one pass of the same four rings, frame by frame, through
each market's compiled ``BookRouter`` alone (classify, decode and ``OrderBook`` apply: what
``BookSync.on_message`` runs for an in-sync book), in a plain loop, with no socket, event
loop, ``BookSync`` glue, tap or scanner; the books are reset from the same snapshots before
each pass. The sustained run also records the process CPU time over its window per update
(``cpu_ns_per_update``; the pusher is another process), and after the run measures the
baseline's ns per update in the same process: ``cpu_ratio_to_decode_alone`` is the whole
ingest path's CPU cost over decoding and applying alone. The group's baseline row times the
same pass (its median is one pass of every ring, not a sustained window: compare ns per
update in extra_info, not the medians).

``ARB_INGEST_RATE`` (default 105000; 0 = as fast as the pusher can write) sets the
aggregate rate offered. A paced pusher never delivers more than it offers, so an engine that
keeps up with exactly the target rate measures just above or just below it by timing jitter;
the default offers 5% more, and the verdict needs the target reached. ``ARB_SOAK_SECONDS`` the timed window (default 12; 600 for the
10-minute soak). The loop is the engine's (``arb.cli.new_event_loop``: asyncio's, or
uvloop's with ``ARB_EVENT_LOOP=uvloop``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import multiprocessing
import os
import random
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from arb.cli import new_event_loop
from arb.exchanges.book_sync import BookSpec, BookSync
from arb.exchanges.connector import BookDialect
from arb.exchanges.factory import market_symbols
from arb.exchanges.gateio.market_data import GateioFuturesMarketData, GateioSpotMarketData
from arb.exchanges.gateio.sim import FuturesBookEncoder, SpotBookEncoder
from arb.exchanges.mexc.market_data import MexcFuturesMarketData, MexcSpotMarketData
from arb.exchanges.mexc.sim import MexcFuturesDepthEncoder, MexcSpotDepthEncoder
from arb.exchanges.ws import WsSession, WsSettings
from arb.instruments import Instrument
from arb.pipeline import ScannerPipeline
from arb.sim.cluster import ASSETS, default_instruments
from arb.types import ExchangeName, OpportunityType
from arb_core.book import ASK, BID, DeltaBatch, OrderBook
from arb_core.latency import LatencyHistogram
from arb_core.router import BookRouter
from arb_core.wire.common import WireScale

RATE = int(os.environ.get("ARB_INGEST_RATE", "105000"))
SECONDS = float(os.environ.get("ARB_SOAK_SECONDS", "12"))
WARMUP_S = 2.0
TARGET_RATE = 100_000
TARGET_P99_NS = 1_000_000
SYMBOLS = ("BTC/USDT", "ETH/USDT")
MARKETS = (ExchangeName.GATEIO, ExchangeName.GATEIO_FUTURES, ExchangeName.MEXC, ExchangeName.MEXC_FUTURES)
DEPTH = 50  # levels a side
STEP = {"BTC": Decimal("1"), "ETH": Decimal("0.1")}  # ladder step: a multiple of every market's tick
RING_PER_SYMBOL = 2048  # updates per symbol in one pass of a market's ring
ID_WIDTH = 15
ID_BASE = 10 ** (ID_WIDTH - 1)  # first update id of every stream; the snapshots are at ID_BASE - 1
TICK_S = 0.001  # the pusher's send period
CHUNK_MAX = 4096  # frames per sendall when unpaced
EVENT_MS = 1_700_000_000_000
BASELINE_PASSES = 5  # passes of the decode-alone baseline the sustained run measures after its window

Op = tuple[int, int, int]  # (side, price_ticks, size_lots) on the market's order grid


def _rss_kb() -> int:
    with open("/proc/self/status", "rb") as status:
        for line in status:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


# --- the updates --------------------------------------------------------------------------


class SymbolStream:
    """One book's ladder, its opening snapshot and the ring of updates replayed over it."""

    def __init__(self, instrument: Instrument, rng: random.Random) -> None:
        self.instrument = instrument
        asset = ASSETS[instrument.base]
        tick, lot = instrument.tick_size, instrument.lot_size * instrument.contract_size
        step = int(STEP[instrument.base] / tick)
        mid = int(asset.start_price / tick)
        self.top_lots = max(1, int(asset.top_size / lot))
        self.ladder = {BID: [mid - step * (i + 1) for i in range(DEPTH)], ASK: [mid + step * (i + 1) for i in range(DEPTH)]}
        self.opening: dict[int, dict[int, int]] = {
            side: {price: self._size(rng) for price in prices} for side, prices in self.ladder.items()
        }
        live = {side: dict(levels) for side, levels in self.opening.items()}
        self.ring: list[list[Op]] = []
        for _ in range(RING_PER_SYMBOL):
            changes: dict[tuple[int, int], int] = {}
            for _ in range(rng.randint(1, 4)):
                side = rng.choice((BID, ASK))
                index = min(DEPTH - 1, int(rng.expovariate(1 / 6)))  # mostly near the top
                price = self.ladder[side][index]
                # Deep levels are never deleted: a side keeps at least ten levels on every pass.
                delete = index < DEPTH - 10 and price in live[side] and rng.random() < 0.15
                size = 0 if delete else self._size(rng)
                changes[(side, price)] = size
                if size:
                    live[side][price] = size
                else:
                    live[side].pop(price, None)
            self.ring.append([(side, price, size) for (side, price), size in changes.items()])

    def _size(self, rng: random.Random) -> int:
        return max(1, int(self.top_lots * rng.uniform(0.01, 2.0)))

    def book_after(self, updates: int) -> dict[int, dict[int, int]]:
        """The book after the snapshot and ``updates`` updates of the ring, replayed in a cycle."""
        book = {side: dict(levels) for side, levels in self.opening.items()}
        passes, rest = divmod(updates, len(self.ring))
        for update in (self.ring if passes else []) + self.ring[:rest]:
            for side, price, size in update:
                if size:
                    book[side][price] = size
                else:
                    book[side].pop(price, None)
        return book

    def snapshot_levels(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        bids = sorted(self.opening[BID].items(), reverse=True)
        asks = sorted(self.opening[ASK].items())
        return bids, asks


def _order_scale(instrument: Instrument) -> WireScale:
    return WireScale(*instrument.wire_scale(), symbol=instrument.venue_symbol)


class MarketFeed:
    """One market's encoders, snapshot bodies and the ring of websocket frames (all symbols interleaved)."""

    def __init__(self, market: ExchangeName, instruments: Sequence[Instrument], rng: random.Random) -> None:
        self.market = market
        self.streams = {i.venue_symbol: SymbolStream(i, rng) for i in instruments}
        self.snapshots: dict[str, bytes] = {}
        encode: dict[str, Callable[[list[Op], int], bytes]] = {}
        for venue_symbol, stream in self.streams.items():
            encode[venue_symbol], self.snapshots[venue_symbol] = self._encoders(stream)
        order = [s for s in self.streams for _ in range(RING_PER_SYMBOL)]
        rng.shuffle(order)
        self.binary = market is ExchangeName.MEXC
        seen = dict.fromkeys(self.streams, 0)
        frames: list[bytes] = []
        size = 0
        id_slots: list[list[int]] = []
        symbol_of: list[int] = []
        sequence: list[int] = []
        names = list(self.streams)
        for venue_symbol in order:
            k = seen[venue_symbol]
            seen[venue_symbol] = k + 1
            update_id = ID_BASE + k
            payload = encode[venue_symbol](self.streams[venue_symbol].ring[k], update_id)
            header = _ws_header(len(payload), self.binary)
            frame_start = size + len(header)
            text = b"%d" % update_id
            slots, at = [], payload.find(text)
            while at >= 0:
                slots.append(frame_start + at)
                at = payload.find(text, at + 1)
            expected = 1 if market is ExchangeName.MEXC_FUTURES else 2
            if len(slots) != expected:
                raise RuntimeError(f"{market.value}: update id found {len(slots)} times in a frame, expected {expected}")
            frames.append(header + payload)
            size += len(frames[-1])
            id_slots.append(slots)
            symbol_of.append(names.index(venue_symbol))
            sequence.append(k)
        self.buffer = np.frombuffer(b"".join(frames), dtype=np.uint8).copy()
        self.offsets = np.cumsum([0, *map(len, frames)])
        self.positions = np.array(id_slots, dtype=np.int64)[:, :, None] + np.arange(ID_WIDTH, dtype=np.int64)
        self.symbol_of = np.array(symbol_of, dtype=np.int64)
        self.sequence = np.array(sequence, dtype=np.int64)
        self.names = names
        self.cycle = 0

    def _encoders(self, stream: SymbolStream) -> tuple[Callable[[list[Op], int], bytes], bytes]:
        instrument = stream.instrument
        bids, asks = stream.snapshot_levels()
        if self.market is ExchangeName.GATEIO or self.market is ExchangeName.GATEIO_FUTURES:
            gate = (SpotBookEncoder if self.market is ExchangeName.GATEIO else FuturesBookEncoder)(
                instrument.venue_symbol, _order_scale(instrument)
            )
            return (
                lambda ops, update_id: gate.update_levels(update_id, update_id, ops, EVENT_MS),
                gate.snapshot(ID_BASE - 1, bids, asks, EVENT_MS, EVENT_MS),
            )
        if self.market is ExchangeName.MEXC:
            spot = MexcSpotDepthEncoder(instrument)
            return (
                lambda ops, update_id: spot.push(ops, update_id, update_id, EVENT_MS),
                spot.snapshot(bids, asks, ID_BASE - 1, EVENT_MS),
            )
        contract = MexcFuturesDepthEncoder(instrument)
        return (
            lambda ops, update_id: contract.push(ops, update_id, EVENT_MS).encode(),
            contract.snapshot(bids, asks, ID_BASE - 1, EVENT_MS),
        )

    def per_pass(self) -> npt.NDArray[np.int64]:
        return np.bincount(self.symbol_of, minlength=len(self.names)).astype(np.int64)

    def set_cycle(self, cycle: int) -> None:
        """Rewrite every update id for pass ``cycle`` of the ring."""
        ids = ID_BASE + cycle * self.per_pass()[self.symbol_of] + self.sequence
        powers = 10 ** np.arange(ID_WIDTH - 1, -1, -1, dtype=np.int64)
        digits = (ids[:, None] // powers % 10 + 48).astype(np.uint8)
        self.buffer[self.positions] = digits[:, None, :]
        self.cycle = cycle

    def updates_sent(self, frames: int) -> dict[str, int]:
        """Updates per venue symbol among the first ``frames`` frames of the cyclic stream."""
        passes, rest = divmod(frames, len(self.symbol_of))
        counts = passes * self.per_pass() + np.bincount(self.symbol_of[:rest], minlength=len(self.names))
        return {name: int(n) for name, n in zip(self.names, counts)}

    def send(self, sock: socket.socket, start: int, stop: int) -> None:
        """Frames ``start``..``stop`` of the cyclic stream."""
        ring = len(self.symbol_of)
        view = memoryview(self.buffer)  # type: ignore[arg-type]
        while start < stop:
            cycle, i = divmod(start, ring)
            if cycle != self.cycle:
                self.set_cycle(cycle)
            j = min(ring, i + stop - start)
            sock.sendall(view[self.offsets[i]:self.offsets[j]])
            start += j - i


def _ws_header(size: int, binary: bool) -> bytes:
    opcode = 0x82 if binary else 0x81
    if size < 126:
        return bytes((opcode, size))
    if size < 1 << 16:
        return bytes((opcode, 126)) + size.to_bytes(2, "big")
    return bytes((opcode, 127)) + size.to_bytes(8, "big")


# --- the pusher (forked process) ----------------------------------------------------------


def _handshake(sock: socket.socket) -> str:
    request = b""
    while b"\r\n\r\n" not in request:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("client closed during the handshake")
        request += chunk
    head = request.split(b"\r\n\r\n")[0].decode().split("\r\n")
    key = next(line.split(":", 1)[1].strip() for line in head[1:] if line.lower().startswith("sec-websocket-key:"))
    accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
    sock.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )
    return head[0].split()[1].strip("/")


def _push(listener: socket.socket, feeds: dict[str, MarketFeed], rate: int, total: int, control: Connection) -> None:
    """Accept one connection per market, stream ``total`` frames to each at ``rate`` per second in all, wait."""
    sockets: dict[str, socket.socket] = {}
    while len(sockets) < len(feeds):
        sock, _ = listener.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sockets[_handshake(sock)] = sock
    per_market = rate / len(feeds)
    sent = dict.fromkeys(feeds, 0)
    start = time.monotonic()
    tick = 0
    while min(sent.values()) < total:
        due = min(total, int((time.monotonic() - start) * per_market) + 1) if rate else total
        for name, feed in feeds.items():
            stop = min(due, sent[name] + CHUNK_MAX)
            if stop > sent[name]:
                feed.send(sockets[name], sent[name], stop)
                sent[name] = stop
        if rate:
            tick += 1
            pause = start + tick * TICK_S - time.monotonic()
            if pause > 0:
                time.sleep(pause)
    control.send(time.monotonic() - start)
    control.recv()  # the client is done
    for sock in sockets.values():
        sock.close()


# --- the engine side ----------------------------------------------------------------------


def _dialect(market: ExchangeName, url: str) -> BookDialect:
    if market is ExchangeName.GATEIO:
        return GateioSpotMarketData(url)
    if market is ExchangeName.GATEIO_FUTURES:
        return GateioFuturesMarketData(url)
    if market is ExchangeName.MEXC:
        return MexcSpotMarketData(url)
    return MexcFuturesMarketData(url)


class SustainedIngest:
    """Builds the feeds, forks the pusher, runs the engine's ingest path and collects the figures."""

    def __init__(self, rate: int, seconds: float, event_loop: str) -> None:
        self.rate = rate
        self.event_loop = event_loop
        self.seconds = seconds
        rng = random.Random(7)
        instruments = default_instruments([s.split("/")[0] for s in SYMBOLS])
        self.instruments = {(i.exchange, i.symbol): i for i in instruments}
        self.feeds = {
            m.value: MarketFeed(m, [i for i in instruments if i.exchange is m], rng) for m in MARKETS
        }
        per_market = (rate or 400_000) / len(MARKETS)
        # Unpaced runs stop at a count; the window is then however long the client takes.
        self.total = int(per_market * (WARMUP_S + seconds))
        self.lag = LatencyHistogram()
        self.rss: list[tuple[float, int]] = []
        self.rss_marks: dict[str, int] = {}
        self.updates = 0
        self.window_s = 0.0
        self.push_s = 0.0
        self.cpu_s = 0.0  # this process's CPU time over the timed window
        self.syncs: dict[str, BookSync] = {}
        self.scales: dict[tuple[ExchangeName, str], WireScale] = {}
        self.troubles = 0  # session errors, malformed frames and resyncs during the run
        self.final: dict[tuple[str, str], tuple[bool, int, list[tuple[int, int]], list[tuple[int, int]]]] = {}
        self.sessions: list[WsSession] = []

    def start_pusher(self) -> tuple[BaseProcess, Connection, int]:
        listener = socket.create_server(("127.0.0.1", 0))
        port: int = listener.getsockname()[1]
        parent, child = multiprocessing.get_context("fork").Pipe()
        process = multiprocessing.get_context("fork").Process(
            target=_push, args=(listener, self.feeds, self.rate, self.total, child), daemon=True
        )
        process.start()
        listener.close()
        return process, parent, port

    async def run(self, port: int, control: Connection) -> None:
        pipeline = ScannerPipeline(
            max_data_age_ms=500,
            opportunity_types=(OpportunityType.SPOT_SPOT, OpportunityType.SPOT_FUTURES_HEDGE),
            max_position_usd=Decimal(1000),
        )
        settings = WsSettings(heartbeat_interval_s=3600, heartbeat_timeout_s=3600)  # the pusher answers no pings
        pending: list[int] = []
        record = self.lag.record
        clock = time.monotonic_ns
        legs: dict[str, list[tuple[Instrument, OrderBook, WireScale]]] = {s: [] for s in SYMBOLS}
        for market in MARKETS:
            feed = self.feeds[market.value]
            dialect = _dialect(market, f"ws://127.0.0.1:{port}/{market.value}")
            specs = []
            for symbol in SYMBOLS:
                (name,) = market_symbols(market, [symbol])
                instrument = self.instruments[(market, name)]
                specs.append(BookSpec(name, instrument.venue_symbol, dialect.book_scale(instrument)))

            async def snapshot(venue_symbol: str, feed: MarketFeed = feed) -> bytes:
                return feed.snapshots[venue_symbol]

            sync = BookSync(market, dialect, specs, pipeline, fetch_snapshot=snapshot)
            on_message = sync.on_message

            def tap(payload: memoryview, binary: bool, last: bool, recv_ns: int,
                    on_message: Callable[[memoryview, bool, bool, int], None] = on_message) -> None:
                on_message(payload, binary, last, recv_ns)
                pending.append(recv_ns)
                if last:
                    done = clock()
                    for stamp in pending:
                        record(done - stamp)
                    pending.clear()

            self.sessions.append(sync.make_session(settings, on_message=tap))
            self.syncs[market.value] = sync
            for symbol, spec in zip(SYMBOLS, specs):
                self.scales[(market, spec.symbol)] = spec.scale
                legs[symbol].append((self.instruments[(market, spec.symbol)], sync.books[spec.symbol], spec.scale))
        for symbol in SYMBOLS:
            pipeline.register_symbol(symbol, legs[symbol])
        for session in self.sessions:
            session.start()
        try:
            await self._measure(pipeline, control)
        finally:
            control.send("done")
            for session in self.sessions:
                await session.close()
            for sync in self.syncs.values():
                await sync.close()

    async def _measure(self, pipeline: ScannerPipeline, control: Connection) -> None:
        books = [book for sync in self.syncs.values() for book in sync.books.values()]
        deadline = time.monotonic() + 10
        while not all(book.in_sync for book in books):
            if time.monotonic() > deadline:
                raise RuntimeError("books never came in sync")
            await asyncio.sleep(0.01)
        pipeline.refresh_position_caps()
        for plan in pipeline.plans.values():
            for leg in plan.legs:  # generous limits: every scan walks the books as a funded account's would
                pipeline.set_leg_limits(plan.symbol_id, leg.leg_id, Decimal(1000), Decimal(1000))
        started = time.monotonic()
        await asyncio.sleep(WARMUP_S if self.rate else 0.2)
        self.lag.reset()
        first = sum(s.messages for s in self.sessions)
        t0 = time.monotonic_ns()
        cpu0 = time.process_time_ns()
        self.rss_marks["start"] = _rss_kb()
        expected = self.total * len(self.sessions)
        sample_every = max(1.0, self.seconds / 20)
        next_sample = time.monotonic()
        middle = time.monotonic() + self.seconds / 2 if self.rate else None
        while sum(s.messages for s in self.sessions) < expected:
            now = time.monotonic()
            if now >= next_sample:
                self.rss.append((round((time.monotonic_ns() - t0) / 1e9, 1), _rss_kb()))
                next_sample += sample_every
            if middle is not None and now >= middle:
                self.rss_marks["middle"] = _rss_kb()
                middle = None
            if now > started + 3 * (WARMUP_S + self.seconds) + 30:
                raise RuntimeError(f"only {sum(s.messages for s in self.sessions)} of {expected} updates arrived")
            await asyncio.sleep(0.02)
        t1 = max(s.last_message_ns for s in self.sessions)
        self.cpu_s = (time.process_time_ns() - cpu0) / 1e9
        self.rss_marks["end"] = _rss_kb()
        self.rss.append((round((t1 - t0) / 1e9, 1), self.rss_marks["end"]))
        self.updates = expected - first
        # Read before the sessions close (closing leaves the books out of sync); checked after timing.
        self.final = {
            (name, symbol): (book.in_sync, book.last_update_id, book.top(BID, DEPTH + 1), book.top(ASK, DEPTH + 1))
            for name, sync in self.syncs.items()
            for symbol, book in sync.books.items()
        }
        self.troubles = sum(
            sum(session.errors.values()) for session in self.sessions
        ) + sum(st.malformed + sum(st.resyncs.values()) for sync in self.syncs.values() for st in sync.stats().values())
        self.window_s = (t1 - t0) / 1e9
        self.push_s = control.recv()

    def check_books(self) -> None:
        """Every book in sync at the last id sent, and level for level the expected book."""
        for name, feed in self.feeds.items():
            sent = feed.updates_sent(self.total)
            for symbol in self.syncs[name].books:
                instrument = self.instruments[(feed.market, symbol)]
                in_sync, last_id, bids, asks = self.final[(name, symbol)]
                assert in_sync, f"{name} {symbol} out of sync"
                assert last_id == ID_BASE + sent[instrument.venue_symbol] - 1, (name, symbol, last_id)
                want = _expected_levels(feed, instrument, self.scales[(feed.market, symbol)], sent[instrument.venue_symbol])
                assert (bids, asks) == want, (name, symbol)

    def stats(self) -> dict[str, Any]:
        p50, p99, p999 = self.lag.percentiles((50, 99, 99.9))
        return {
            "event_loop": self.event_loop,
            "target_rate": self.rate,
            "updates": self.updates,
            "window_s": round(self.window_s, 2),
            "updates_per_s": round(self.updates / self.window_s) if self.window_s else 0,
            "lag_p50_us": p50 / 1000,
            "lag_p99_us": p99 / 1000,
            "lag_p999_us": p999 / 1000,
            "lag_max_us": self.lag.max / 1000,
            "lag_count": self.lag.count,
            "rss_kb": dict(self.rss_marks),
            "rss_curve_kb": self.rss,
            "pusher_s": round(self.push_s, 2),
            "cpu_s": round(self.cpu_s, 2),
            "cpu_ns_per_update": round(self.cpu_s * 1e9 / self.updates) if self.updates else 0,
            # the target; RSS growth is read off the curve
            "target_met": self.window_s > 0 and self.updates / self.window_s >= TARGET_RATE and p99 < TARGET_P99_NS,
        }


def _expected_levels(
    feed: MarketFeed, instrument: Instrument, scale: WireScale, updates: int
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Bids and asks, best first and on the book grid ``scale``, after the snapshot and ``updates`` updates."""
    order = _order_scale(instrument)
    price_mult = _ratio(order.tick_units, order.price_decimals, scale.tick_units, scale.price_decimals)
    size_mult = _ratio(order.lot_units, order.size_decimals, scale.lot_units, scale.size_decimals)
    expected = feed.streams[instrument.venue_symbol].book_after(updates)
    bids, asks = (
        [(p * price_mult, s * size_mult) for p, s in sorted(expected[side].items(), reverse=side == BID)]
        for side in (BID, ASK)
    )
    return bids, asks


def _ratio(units_a: int, decimals_a: int, units_b: int, decimals_b: int) -> int:
    """How many units of grid b make one unit of grid a (``units * 10**-decimals`` each); exact."""
    numerator: int = units_a * 10**decimals_b
    denominator: int = units_b * 10**decimals_a
    if numerator % denominator:
        raise ValueError(f"grid {units_a}e-{decimals_a} is not a multiple of {units_b}e-{decimals_b}")
    return numerator // denominator


# --- the baseline: the same frames through the compiled router alone -------------------------


class DecodeAlone:
    """One pass of every market's ring through a ``BookRouter`` per market, in a plain loop."""

    def __init__(self, run: SustainedIngest) -> None:
        self.run = run
        self.frames: dict[str, list[memoryview]] = {}
        for name, feed in run.feeds.items():
            if feed.cycle != 0:
                raise RuntimeError(f"{name}: the ring holds pass {feed.cycle}, the baseline replays pass 0")
            data = feed.buffer.tobytes()  # a copy, in pass 0: the snapshots' ids continue into it
            view = memoryview(data)
            offsets = feed.offsets.tolist()
            frames = []
            for start, stop in zip(offsets, offsets[1:]):
                length = data[start + 1] & 0x7F  # the server's frames are unmasked
                frames.append(view[start + (2 if length < 126 else 4 if length == 126 else 10):stop])
            self.frames[name] = frames
        self.updates = sum(len(frames) for frames in self.frames.values())
        self.routes: list[tuple[Callable[[memoryview, int], int], list[memoryview]]] = []
        self.books: dict[tuple[str, str], tuple[OrderBook, WireScale]] = {}

    def reset(self) -> None:
        """Fresh books from the snapshots, one router per market (untimed)."""
        self.routes, self.books = [], {}
        for market in MARKETS:
            feed = self.run.feeds[market.value]
            dialect = _dialect(market, "ws://127.0.0.1:9/unused")
            router = BookRouter(dialect.router_dialect)  # type: ignore[attr-defined]
            for symbol in SYMBOLS:
                (name,) = market_symbols(market, [symbol])
                instrument = self.run.instruments[(market, name)]
                scale = dialect.book_scale(instrument)
                snapshot = DeltaBatch(2 * DEPTH)
                dialect.decode_snapshot(feed.snapshots[instrument.venue_symbol], scale, snapshot)
                book = OrderBook(f"{market.value} {name}")
                book.apply_snapshot(snapshot, 0)
                router.add_book(instrument.venue_symbol.encode(), book, scale)
                self.books[(market.value, name)] = (book, scale)
            self.routes.append((router.route, self.frames[market.value]))

    def apply(self) -> None:
        """The timed pass: every frame of every ring, routed once."""
        for route, frames in self.routes:
            for frame in frames:
                route(frame, 0)

    def check(self) -> None:
        """Every book in sync at the ring's last id and equal to the expected book."""
        for (name, symbol), (book, scale) in self.books.items():
            feed = self.run.feeds[name]
            instrument = self.run.instruments[(feed.market, symbol)]
            updates = feed.updates_sent(len(feed.symbol_of))[instrument.venue_symbol]
            assert book.in_sync and book.last_update_id == ID_BASE + updates - 1, (name, symbol, book.last_update_id)
            assert (book.top(BID, DEPTH + 1), book.top(ASK, DEPTH + 1)) == _expected_levels(feed, instrument, scale, updates)

    def ns_per_update(self, passes: int) -> float:
        """Median over ``passes`` passes of the time per update, checked after the last."""
        times = []
        for _ in range(passes):
            self.reset()
            t0 = time.perf_counter_ns()
            self.apply()
            times.append(time.perf_counter_ns() - t0)
        self.check()
        return sorted(times)[len(times) // 2] / self.updates


def _report(stats: dict[str, Any]) -> str:
    rss = stats["rss_kb"]
    curve = " ".join(f"{t:g}s:{kb / 1024:.1f}" for t, kb in stats["rss_curve_kb"])
    return (
        f"sustained ingest ({stats['event_loop']}, target {stats['target_rate'] or 'unpaced'}/s): "
        f"{stats['updates']} updates in {stats['window_s']} s = {stats['updates_per_s']}/s\n"
        f"  ingest lag p50 {stats['lag_p50_us']:.1f} µs  p99 {stats['lag_p99_us']:.1f} µs  "
        f"p99.9 {stats['lag_p999_us']:.1f} µs  max {stats['lag_max_us']:.1f} µs (n={stats['lag_count']})\n"
        f"  CPU {stats['cpu_ns_per_update']} ns/update vs the compiled router alone "
        f"{stats.get('decode_alone_ns_per_update', '?')} ns/update: x{stats.get('cpu_ratio_to_decode_alone', '?')}\n"
        f"  VmRSS start {rss['start'] / 1024:.1f} MiB  middle {rss.get('middle', 0) / 1024:.1f} MiB  "
        f"end {rss['end'] / 1024:.1f} MiB\n  RSS curve (MiB): {curve}\n"
        f"  >= {TARGET_RATE}/s with p99 < {TARGET_P99_NS / 1e6:g} ms: {'yes' if stats['target_met'] else 'NO'}"
    )


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = new_event_loop()
    yield loop
    loop.close()


@pytest.mark.benchmark(group="ingest: sustained, four markets over loopback")
def test_ingest_sustained(benchmark: Any, loop: asyncio.AbstractEventLoop) -> None:
    """Picows sessions -> BookSync -> ScannerPipeline at ``ARB_INGEST_RATE`` updates/s for ``ARB_SOAK_SECONDS``."""
    run = SustainedIngest(RATE, SECONDS, type(loop).__module__.split(".")[0])
    process, control, port = run.start_pusher()
    try:
        benchmark.pedantic(lambda: loop.run_until_complete(run.run(port, control)), rounds=1, iterations=1)
    finally:
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
    stats = run.stats()
    # The same-run baseline, measured here after the window (the pusher has exited: no contention).
    decode_ns = DecodeAlone(run).ns_per_update(BASELINE_PASSES)
    stats["decode_alone_ns_per_update"] = round(decode_ns, 1)
    stats["cpu_ratio_to_decode_alone"] = round(stats["cpu_ns_per_update"] / decode_ns, 2)
    print("\n" + _report(stats))
    benchmark.extra_info.update(stats)
    run.check_books()
    assert run.troubles == 0
    if RATE:
        assert stats["updates_per_s"] >= 0.98 * RATE, stats


@pytest.mark.benchmark(group="ingest: sustained, four markets over loopback")
def test_ingest_decode_alone_baseline(benchmark: Any) -> None:
    """Baseline: one pass of the same four rings through each market's compiled BookRouter alone."""
    decode = DecodeAlone(SustainedIngest(RATE, SECONDS, "none"))
    benchmark.pedantic(decode.apply, setup=decode.reset, rounds=10, warmup_rounds=1)
    median_s = benchmark.stats.stats.median
    benchmark.extra_info["updates"] = decode.updates
    benchmark.extra_info["ns_per_update"] = round(median_s * 1e9 / decode.updates, 1)
    benchmark.extra_info["updates_per_s"] = round(decode.updates / median_s)
    decode.check()
