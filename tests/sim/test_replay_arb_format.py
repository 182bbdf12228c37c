"""The simulator replaying the recorder's own files: a recording of the simulator played back
as fast as possible reaches the real client frame for frame, books end where they ended;
a damaged file replays up to its damage."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from loopback import eventually, run
from simulated_recording import record_simulated

from arb.config import ConfigurationManager
from arb.doctor import public_connector
from arb.exchanges.base import MarketDataDialect
from arb.exchanges.connector import ExchangeConnector
from arb.exchanges.factory import ExchangeFactory
from arb.replay import RecordingReader, RecordKind
from arb.replay.recorder import Recorder, symbolizer
from arb.sim.cluster import SimCluster, SimConfig
from arb.sim.http import SimRequest
from arb.sim.server import ReplayFeed
from arb.types import ExchangeName
from arb_core.book import ASK, BID, OrderBook

Handler = Callable[[memoryview, bool, bool, int], None]
Fetch = Callable[[str], Awaitable[bytes]]
Frame = tuple[RecordKind, bytes]
BookState = tuple[int, list[tuple[int, int]], list[tuple[int, int]]]
MARKETS = (ExchangeName.GATEIO, ExchangeName.GATEIO_FUTURES, ExchangeName.MEXC, ExchangeName.MEXC_FUTURES)
SYMBOLS = {m: ["BTC/USDT:USDT", "ETH/USDT:USDT"] if m.is_futures else ["BTC/USDT", "ETH/USDT"] for m in MARKETS}
WS_KINDS = (RecordKind.WS_TEXT, RecordKind.WS_BINARY)


class FrameCapture:
    """A tap keeping every websocket message the client receives, per market and in order."""

    def __init__(self) -> None:
        self.frames: dict[ExchangeName, list[Frame]] = {m: [] for m in MARKETS}

    def wrap_messages(self, exchange: ExchangeName, dialect: MarketDataDialect, handler: Handler) -> Handler:
        seen = self.frames[exchange]

        def on_message(payload: memoryview, is_binary: bool, last: bool, recv_ns: int) -> None:
            seen.append((RecordKind.WS_BINARY if is_binary else RecordKind.WS_TEXT, bytes(payload)))
            handler(payload, is_binary, last, recv_ns)

        return on_message

    def wrap_snapshots(self, exchange: ExchangeName, fetch: Fetch) -> Fetch:
        return fetch


def state(book: OrderBook) -> BookState:
    return book.last_update_id, book.top(BID, book.depth(BID)), book.top(ASK, book.depth(ASK))


def connectors_of(sim: SimCluster) -> dict[ExchangeName, ExchangeConnector]:
    manager = ConfigurationManager(environ={})
    manager.load_configuration()
    factory = ExchangeFactory(manager, sim_urls=sim.urls())
    return {market: public_connector(factory, market, True) for market in MARKETS}


def all_in_sync(connectors: dict[ExchangeName, ExchangeConnector]) -> bool:
    return all(
        len(c.books()) == len(SYMBOLS[m]) and all(b.in_sync for b in c.books().values()) for m, c in connectors.items()
    )


async def record(path: Path) -> dict[tuple[ExchangeName, str], BookState]:
    """About 1.5 s of the synthetic simulator recorded by the client; the books' final states."""
    recorder = Recorder(path)
    sim = SimCluster(SimConfig(symbols=("BTC/USDT", "ETH/USDT")))
    for venue in sim.venues.values():
        await venue.start()
    connectors = connectors_of(sim)
    feed = asyncio.get_running_loop().create_task(sim.feed.run())
    try:
        for market, connector in connectors.items():
            await connector.start_books(SYMBOLS[market], tap=recorder)
        await eventually(lambda: all_in_sync(connectors), what="recorded books in sync")
        await asyncio.sleep(1.0)
        feed.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feed
        await asyncio.sleep(0.3)  # pushes already sent reach the client
        assert all_in_sync(connectors)
        final = {(m, s): state(b) for m, c in connectors.items() for s, b in c.books().items()}
        for connector in connectors.values():
            await connector.stop_books()
        return final
    finally:
        feed.cancel()
        for connector in connectors.values():
            await connector.close()
        for venue in sim.venues.values():
            await venue.stop()
        recorder.close()


def book_frames(frames: list[Frame], connector: ExchangeConnector) -> list[Frame]:
    """The book updates among a client's frames (what the replay sends; acks are the simulator's own)."""
    symbol = symbolizer(connector.dialect)
    return [(kind, payload) for kind, payload in frames if symbol(payload)]


async def replay(
    path: Path, expected: dict[ExchangeName, int], wait_in_sync: bool
) -> tuple[dict[ExchangeName, list[Frame]], dict[tuple[ExchangeName, str], BookState], ReplayFeed]:
    """Replay ``path`` as fast as possible to a real client subscribed beforehand; what it received."""
    sim = SimCluster(SimConfig(replay=(path,), replay_speed=None))
    assert isinstance(sim.feed, ReplayFeed)
    for venue in sim.venues.values():
        await venue.start()
    connectors = connectors_of(sim)
    capture = FrameCapture()
    try:
        for market, connector in connectors.items():
            await connector.start_books(SYMBOLS[market], tap=capture)
        venue_symbols = {m: [(await c.instrument(s)).venue_symbol for s in SYMBOLS[m]] for m, c in connectors.items()}
        await eventually(
            lambda: all(sim.venues[m.venue].markets[m].subscribed(v) for m, vs in venue_symbols.items() for v in vs),
            what="subscriptions",
        )
        await sim.feed.run()
        received = {m: book_frames(capture.frames[m], c) for m, c in connectors.items()}

        def delivered() -> bool:
            received.update({m: book_frames(capture.frames[m], c) for m, c in connectors.items()})
            return all(len(received[m]) >= expected[m] for m in MARKETS)

        await eventually(delivered, what="replayed frames")
        if wait_in_sync:
            await eventually(lambda: all_in_sync(connectors), what="replayed books in sync")
        books = {(m, s): state(b) for m, c in connectors.items() for s, b in c.books().items()}
        return received, books, sim.feed
    finally:
        for connector in connectors.values():
            await connector.stop_books()
            await connector.close()
        for venue in sim.venues.values():
            await venue.stop()


def recorded_frames(path: Path) -> tuple[dict[ExchangeName, list[Frame]], RecordingReader]:
    reader = RecordingReader([path])
    frames: dict[ExchangeName, list[Frame]] = {m: [] for m in MARKETS}
    for record in reader:
        if record.kind in WS_KINDS and record.venue_symbol:
            frames[record.market].append((record.kind, record.payload))
    return frames, reader


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[tuple[ExchangeName, str], BookState]]:
    path = tmp_path_factory.mktemp("replay") / "sim.arbrec"
    final = run(record(path))
    return path, final


def test_a_recording_replays_frame_for_frame_and_books_end_as_recorded(
    recording: tuple[Path, dict[tuple[ExchangeName, str], BookState]],
) -> None:
    path, final = recording
    recorded, reader = recorded_frames(path)
    assert reader.damage is None
    assert all(len(recorded[m]) > 50 for m in MARKETS)
    assert {kind for kind, _ in recorded[ExchangeName.MEXC]} == {RecordKind.WS_BINARY}  # protobuf pushes
    assert {kind for kind, _ in recorded[ExchangeName.GATEIO]} == {RecordKind.WS_TEXT}
    snapshots = {(r.market, r.venue_symbol) for r in RecordingReader([path]) if r.kind is RecordKind.REST_SNAPSHOT}
    # One REST snapshot per MEXC book, which the replay serves; a Gate.io book is synced by the
    # full push its subscription starts with, recorded and replayed as its first frame.
    assert {market for market, _ in snapshots} == {ExchangeName.MEXC, ExchangeName.MEXC_FUTURES} and len(snapshots) == 4
    for market in (ExchangeName.GATEIO, ExchangeName.GATEIO_FUTURES):
        assert sum(b'"full":true' in payload for _, payload in recorded[market]) == len(SYMBOLS[market])

    received, books, feed = run(replay(path, {m: len(recorded[m]) for m in MARKETS}, wait_in_sync=True))

    for market in MARKETS:
        assert received[market] == recorded[market], market  # same payload bytes, same frame type, same order
    assert books == final
    assert feed.damages == [] and feed.sent == len(feed.frames) == sum(len(f) for f in recorded.values())


def test_a_damaged_recording_replays_up_to_the_damage(
    recording: tuple[Path, dict[tuple[ExchangeName, str], BookState]], tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path, _ = recording
    data = path.read_bytes()
    cut = tmp_path / "cut.arbrec"
    cut.write_bytes(data[: len(data) * 2 // 3])
    whole, _ = recorded_frames(path)
    before, reader = recorded_frames(cut)
    assert reader.damage is not None
    assert 0 < sum(map(len, before.values())) < sum(map(len, whole.values()))

    with caplog.at_level(logging.WARNING, logger="arb.sim.server"):
        received, _, feed = run(replay(cut, {m: len(before[m]) for m in MARKETS}, wait_in_sync=False))

    for market in MARKETS:
        assert received[market] == before[market] == whole[market][: len(before[market])], market
    assert feed.damages == [reader.damage]
    assert f"replay of {reader.records} records: a recording stopped at its damage: {reader.damage}" in caplog.text


def test_replay_times_and_resync_snapshots_follow_the_recording(tmp_path: Path) -> None:
    path = tmp_path / "hand.arbrec"
    recorder = Recorder(path)
    futures = ExchangeName.MEXC_FUTURES
    push = b'{"channel":"push.depth","data":{"asks":[],"bids":[[60000.1,5,1]],"version":%d},"symbol":"BTC_USDT","ts":1}'
    recorder.record(futures, RecordKind.REST_SNAPSHOT, b'{"first":1}', recv_ns=1_000, venue_symbol="BTC_USDT")
    recorder.record(futures, RecordKind.WS_TEXT, push % 11, recv_ns=2_000, venue_symbol="BTC_USDT")
    recorder.record(futures, RecordKind.WS_TEXT, b'{"channel":"pong","data":1}', recv_ns=2_500, venue_symbol="")
    recorder.record(futures, RecordKind.REST_SNAPSHOT, b'{"second":1}', recv_ns=3_000, venue_symbol="BTC_USDT")
    recorder.record(futures, RecordKind.WS_TEXT, push % 12, recv_ns=1_500_000_000, venue_symbol="BTC_USDT")
    recorder.close()

    feed = ReplayFeed([path], 2)
    assert [(elapsed, frame.kind, frame.last_update_id) for elapsed, _, frame in feed.frames] == [
        (1_000, "depth", 11), (1_499_999_000, "depth", 12)
    ]
    assert feed.symbols() == {futures: {"BTC_USDT"}}
    route = next(r for r in feed.rest_routes("mexc") if r.path.endswith("/contract/depth/{symbol}"))
    context = SimCluster(SimConfig(venues=("mexc",))).venues["mexc"].context
    request = SimRequest(method="GET", path="/api/v1/contract/depth/BTC_USDT", query="", body=b"", headers={},
                         path_params={"symbol": "BTC_USDT"}, received_ns=0)
    assert route.handler(request, context).body == b'{"first":1}'
    feed.sent = 1  # the replay passed the first push: the resync snapshot recorded after it is served
    assert route.handler(request, context).body == b'{"second":1}'
    with pytest.raises(ValueError, match="speed"):
        ReplayFeed([path], 0)


def test_cli_serves_a_replay(recording: tuple[Path, dict[tuple[ExchangeName, str], BookState]],
                             capsys: pytest.CaptureFixture[str]) -> None:
    from arb.cli import main

    path, _ = recording
    feed = ReplayFeed([path], None)
    assert main(["sim", "--replay", str(path), "--speed", "max", "--duration", "0.2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"replaying {len(feed.frames)} book updates of {feed.records} records"
    assert any(line.startswith("mexc spot ws ws://127.0.0.1:") for line in lines[1:])
    with pytest.raises(SystemExit) as exit_info:
        main(["sim", "--replay", str(path), "--speed", "0"])
    assert exit_info.value.code == 2


def test_cli_serves_a_rotated_recording_by_its_name(
    recording: tuple[Path, dict[tuple[ExchangeName, str], BookState]], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A rotated recording's ``--out`` name stands for its parts (as in ``backtest``): ``sim --replay``
    refused it as no such file."""
    from arb.cli import main

    path, _ = recording
    (tmp_path / "md.00000.20260101T000000Z.arbrec").write_bytes(path.read_bytes())
    assert main(["sim", "--replay", str(tmp_path / "md.arbrec"), "--speed", "max", "--duration", "0.2"]) == 0
    feed = ReplayFeed([path], None)
    assert capsys.readouterr().out.splitlines()[0] == f"replaying {len(feed.frames)} book updates of {feed.records} records"
    assert main(["sim", "--replay", str(tmp_path / "other.arbrec"), "--duration", "0.2"]) == 2


def test_a_recorded_stream_drop_drops_the_replays_connections_of_its_market_at_its_time(tmp_path: Path) -> None:
    """A recording's stream drop (``DISCONNECT``) is no book update: the replay drops the connections
    of that market where it was recorded (clients reconnect and resync, as the recorded run did)."""
    path = tmp_path / "drop.arbrec"
    record_simulated(path, 400, outage_s=(0.1, 0.2))
    feed = ReplayFeed([path], speed=None)
    drops = [(index, market) for index, (_, market, frame) in enumerate(feed.frames) if frame is None]
    assert feed.drops == len(drops)
    recorded = list(RecordingReader([path]))
    assert sorted(m for _, m in drops) == sorted(r.market for r in recorded if r.kind is RecordKind.DISCONNECT)
    assert drops and all(0 < index < len(feed.frames) - 1 for index, _ in drops)
    assert all(None not in symbols for symbols in feed.symbols().values())

    class Server:
        def __init__(self, market: ExchangeName) -> None:
            self.market = market

        def publish_raw(self, frame: object) -> None:
            seen.append((self.market, "update"))

        def drop_subscribers(self, kinds: set[str]) -> None:
            assert kinds == {f.kind for _, m, f in feed.frames if m is self.market and f is not None}
            seen.append((self.market, "drop"))

    class Venue:
        markets = {market: Server(market) for _, market, _ in feed.frames}

    seen: list[tuple[ExchangeName, str]] = []
    feed.attach([Venue()])  # type: ignore[list-item]
    run(feed.run())
    assert [index for index, (_, what) in enumerate(seen) if what == "drop"] == [index for index, _ in drops]
    assert feed.sent == len(feed.frames)
