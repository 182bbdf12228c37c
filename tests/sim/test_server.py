"""The simulated venues over real loopback sockets: dialect conformance, the real client
mechanism staying in sync, every stream fault seen by the client, determinism, REST plumbing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from loopback import RecordingSink, eventually, run
from simvenues import API_KEY, SPOT, simulated_venues
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from arb.exchanges.base import MarketDataDialect
from arb.exchanges.book_sync import BookSpec, BookSync, rest_snapshot_fetcher
from arb.exchanges.connector import ExchangeConnector
from arb.exchanges.gateio.market_data import GateioFuturesMarketData, GateioSpotMarketData
from arb.exchanges.mexc.market_data import MexcFuturesMarketData, MexcSpotMarketData
from arb.exchanges.models import FrameKind, OrderRequest, OrderStatus
from arb.exchanges.rest import RateLimit, RestClient, RestRequest, RestVenue
from arb.exchanges.ws import WsSettings
from arb.instruments import Instrument
from arb.sim.cluster import DISLOCATION_BPS, DISLOCATIONS_PER_MINUTE, SimCluster, SimConfig, default_instruments
from arb.sim.faults import FaultPlan, StreamFaultKind
from arb.sim.http import Route, SimContext, SimRequest, SimResponse
from arb.sim.market import Dislocation
from arb.sim.matching import OrderType, TimeInForce
from arb.sim.server import SimulatedVenue, SyntheticFeed
from arb.types import ExchangeName, OrderSide
from arb_core.book import ASK, BID, DeltaBatch, OrderBook

MARKETS = [ExchangeName.GATEIO, ExchangeName.GATEIO_FUTURES, ExchangeName.MEXC, ExchangeName.MEXC_FUTURES]
DIALECTS: dict[ExchangeName, Callable[[str], MarketDataDialect]] = {
    ExchangeName.GATEIO: lambda url: GateioSpotMarketData(url),
    ExchangeName.GATEIO_FUTURES: lambda url: GateioFuturesMarketData(url),
    ExchangeName.MEXC: lambda url: MexcSpotMarketData(url),
    ExchangeName.MEXC_FUTURES: lambda url: MexcFuturesMarketData(url),
}
FAST = WsSettings(backoff_initial_s=0.01, backoff_max_s=0.05, heartbeat_interval_s=5, heartbeat_timeout_s=5)


def instrument(exchange: ExchangeName, symbol: str = "BTC") -> Instrument:
    return next(i for i in default_instruments([symbol]) if i.exchange is exchange)


@asynccontextmanager
async def cluster(seed: int = 3, faults: FaultPlan | None = None) -> AsyncIterator[SimCluster]:
    """A started cluster whose feed the test advances by hand (no background task)."""
    sim = SimCluster(SimConfig(seed=seed, updates_per_second=1_000, depth_levels=30), faults=faults)
    for venue in sim.venues.values():
        await venue.start()
    try:
        yield sim
    finally:
        for venue in sim.venues.values():
            await venue.stop()


def feed(sim: SimCluster) -> SyntheticFeed:
    assert isinstance(sim.feed, SyntheticFeed)
    return sim.feed


def ws_url(sim: SimCluster, exchange: ExchangeName) -> str:
    return sim.venues[exchange.venue].markets[exchange].url


def to_client_ticks(levels: list[tuple[int, int]], inst: Instrument, dialect: Any) -> list[tuple[int, int]]:
    """Server levels (order grid) in the client's book scale (Gate spot books are finer)."""
    pd, tu, sd, lu = inst.wire_scale()
    scale = dialect.book_scale(inst)
    price = tu * 10 ** (scale.price_decimals - pd) // scale.tick_units
    size = lu * 10 ** (scale.size_decimals - sd) // scale.lot_units
    return [(p * price, s * size) for p, s in levels]


class Collector(WSListener):
    """A raw client keeping a copy of every frame."""

    def __init__(self) -> None:
        super().__init__()
        self.frames: list[tuple[WSMsgType, bytes]] = []

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY):
            self.frames.append((frame.msg_type, frame.get_payload_as_bytes()))


async def raw_subscriber(sim: SimCluster, exchange: ExchangeName) -> tuple[WSTransport, Collector, MarketDataDialect]:
    dialect = DIALECTS[exchange](ws_url(sim, exchange))
    transport, listener = await ws_connect(Collector, ws_url(sim, exchange))
    assert isinstance(listener, Collector)
    for frame in dialect.subscribe_frames([instrument(exchange).venue_symbol]):
        transport.send(WSMsgType.TEXT, frame.encode() if isinstance(frame, str) else frame)
    market = sim.venues[exchange.venue].markets[exchange]
    await eventually(lambda: market.subscribed(instrument(exchange).venue_symbol), what="subscription")
    return transport, listener, dialect


def decoded(frames: list[tuple[WSMsgType, bytes]], exchange: ExchangeName, dialect: Any) -> list[tuple[int, int, list[Any]]]:
    scale = dialect.book_scale(instrument(exchange))
    batch = DeltaBatch(64)
    out = []
    for _, payload in frames:
        if dialect.classify(payload) == FrameKind.BOOK_UPDATE:
            dialect.decode_update(payload, scale, batch)
            out.append((batch.first_update_id, batch.last_update_id, batch.levels()))
    return out


# --- conformance ----------------------------------------------------------------------------


@pytest.mark.parametrize("exchange", MARKETS, ids=lambda e: e.value)
def test_subscribed_client_receives_frames_the_compiled_decoders_read(exchange: ExchangeName) -> None:
    async def main() -> None:
        async with cluster() as sim:
            transport, listener, dialect = await raw_subscriber(sim, exchange)
            feed(sim).advance(20)
            await eventually(lambda: len(decoded(listener.frames, exchange, dialect)) >= 20, what="20 pushes")
            updates = decoded(listener.frames, exchange, dialect)
            ids = [(first, last) for first, last, _ in updates]
            assert all(b[0] == a[1] + 1 for a, b in zip(ids, ids[1:])), ids
            assert all(levels for _, _, levels in updates)
            assert dialect.classify(listener.frames[0][1]) == FrameKind.ACK  # the subscription reply
            stamps = sim.venues[exchange.venue].stamps
            assert stamps.push_ns(exchange, instrument(exchange).symbol, ids[-1][1]) is not None
            binary = exchange is ExchangeName.MEXC
            assert {t for t, p in listener.frames if dialect.classify(p) == FrameKind.BOOK_UPDATE} == {
                WSMsgType.BINARY if binary else WSMsgType.TEXT
            }
            transport.disconnect()

    run(main())


@pytest.mark.parametrize("exchange", MARKETS, ids=lambda e: e.value)
def test_a_gate_subscription_is_sent_its_whole_book_first_marked_full(exchange: ExchangeName) -> None:
    """Gate's first push after subscribing is the book, ``full`` (the client replaces its book), with
    ``U`` = ``u`` = the book's id; the diffs follow on from it. MEXC sends no such push."""
    async def main() -> None:
        async with cluster() as sim:
            feed(sim).advance(3)
            engine = sim.venues[exchange.venue].exchanges[exchange].engine(instrument(exchange).symbol)
            book = engine.snapshot(100)
            transport, listener, dialect = await raw_subscriber(sim, exchange)
            feed(sim).advance(2)
            await eventually(lambda: len(decoded(listener.frames, exchange, dialect)) >= 2, what="2 pushes")
            pushes = [p for _, p in listener.frames if dialect.classify(p) == FrameKind.BOOK_UPDATE]
            batch = DeltaBatch(256)
            dialect.decode_update(pushes[0], dialect.book_scale(instrument(exchange)), batch)
            if exchange.venue == "gateio":
                assert batch.is_snapshot and batch.first_update_id == batch.last_update_id == book.last_update_id
                inst = instrument(exchange)
                assert sorted(batch.levels()) == sorted(
                    [(BID, p, q) for p, q in to_client_ticks(book.bids, inst, dialect)]
                    + [(ASK, p, q) for p, q in to_client_ticks(book.asks, inst, dialect)]
                )
                second = decoded(listener.frames, exchange, dialect)[1][0]
                assert second == book.last_update_id + 1
            else:
                assert not batch.is_snapshot and batch.first_update_id > book.last_update_id
            transport.disconnect()

    run(main())


def test_dropping_a_streams_subscribers_leaves_the_other_connections_up() -> None:
    """A replayed recording's stream drop drops the connections subscribed to that stream, not an
    order or private connection to the same server."""
    async def main() -> None:
        async with cluster() as sim:
            exchange = ExchangeName.GATEIO
            market = sim.venues["gateio"].markets[exchange]
            subscribed, _, _ = await raw_subscriber(sim, exchange)
            other, _ = await ws_connect(Collector, ws_url(sim, exchange))  # subscribes to nothing
            await eventually(lambda: len(market.connections) == 2, what="both connected")
            market.drop_subscribers({"spot.order_book_update"})
            await eventually(lambda: len(market.connections) == 1, what="the subscriber dropped")
            assert not market.subscribed(instrument(exchange).venue_symbol)
            other.disconnect()
            subscribed.disconnect()

    run(main())


def test_unsubscribe_stops_the_pushes_and_ping_is_answered() -> None:
    async def main() -> None:
        async with cluster() as sim:
            exchange = ExchangeName.GATEIO
            transport, listener, dialect = await raw_subscriber(sim, exchange)
            feed(sim).advance(5)
            await eventually(lambda: len(decoded(listener.frames, exchange, dialect)) >= 5, what="pushes")
            for frame in dialect.unsubscribe_frames(["BTC_USDT"]):
                transport.send(WSMsgType.TEXT, str(frame).encode())
            ping = dialect.ping_frame()
            assert ping is not None
            transport.send(WSMsgType.TEXT, str(ping).encode())
            await eventually(lambda: any(dialect.is_pong(p) for _, p in listener.frames), what="pong")
            market = sim.venues["gateio"].markets[exchange]
            assert not market.subscribed("BTC_USDT")
            count = len(listener.frames)
            feed(sim).advance(5)
            await asyncio.sleep(0.05)
            assert len(listener.frames) == count
            transport.disconnect()

    run(main())


# --- the real client mechanism ---------------------------------------------------------------


class Client:
    """BookSync + WsSession + RestClient of one market against the simulator."""

    def __init__(self, sim: SimCluster, exchange: ExchangeName) -> None:
        urls = sim.venues[exchange.venue].urls()
        self.exchange = exchange
        self.instrument = instrument(exchange)
        self.dialect = DIALECTS[exchange](urls.futures_ws_url if exchange.is_futures else urls.ws_url)
        base = urls.futures_rest_url if exchange.is_futures else urls.rest_url
        limits = tuple(
            RateLimit(limit_id, 1_000_000, 1.0)
            for limit_id, _ in self.dialect.snapshot_request(self.instrument.venue_symbol).limits
        )
        self.rest = RestClient(
            RestVenue(name=exchange.value, base_url=base, error_codes={}, http_statuses={}, rate_limits=limits)
        )
        self.sink = RecordingSink()
        spec = BookSpec(self.instrument.symbol, self.instrument.venue_symbol, self.dialect.book_scale(self.instrument))
        self.sync = BookSync(
            exchange, self.dialect, [spec], self.sink, fetch_snapshot=rest_snapshot_fetcher(self.rest, self.dialect)
        )
        self.session = self.sync.make_session(FAST)
        self.server_book = sim.venues[exchange.venue].exchanges[exchange].engine(self.instrument.symbol).book

    @property
    def book(self) -> OrderBook:
        return self.sync.books[self.instrument.symbol]

    def stats(self) -> Any:
        return self.sync.stats()[self.instrument.symbol]

    def caught_up(self) -> bool:
        return self.book.in_sync and self.book.last_update_id == self.server_book.last_update_id

    def assert_same_book(self) -> None:
        for side in (BID, ASK):
            expected = to_client_ticks(self.server_book.top(side, 20), self.instrument, self.dialect)
            assert self.book.top(side, 20) == expected

    async def close(self) -> None:
        await self.session.close()
        await self.sync.close()
        await self.rest.close()


async def synced(sim: SimCluster, client: Client, ticks: int = 10) -> None:
    """Advance the market until the client has applied a diff after its snapshot, and is caught up."""
    start = client.stats().applied

    def done() -> bool:
        return client.caught_up() and client.stats().applied > start

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not done():
        assert loop.time() < deadline, f"{client.exchange.value}: not in sync: {client.stats()}"
        feed(sim).advance(ticks)
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("exchange", MARKETS, ids=lambda e: e.value)
def test_book_sync_stays_in_sync_with_the_server_book(exchange: ExchangeName) -> None:
    async def main() -> None:
        async with cluster() as sim:
            client = Client(sim, exchange)
            client.session.start()
            await client.session.wait_connected(5)
            await synced(sim, client)
            for _ in range(5):
                feed(sim).advance(40)
                await eventually(client.caught_up, what="client catching up")
                client.assert_same_book()
            stats = client.stats()
            assert stats.applied >= 200 and stats.snapshots == 1 and not stats.resyncs
            await client.close()

    run(main())


SPANNING_MARKETS = [ExchangeName.GATEIO, ExchangeName.GATEIO_FUTURES, ExchangeName.MEXC]


@pytest.mark.parametrize("exchange", SPANNING_MARKETS, ids=lambda e: e.value)
def test_book_sync_stays_in_sync_over_pushes_spanning_several_update_ids(exchange: ExchangeName) -> None:
    """A push carries one update id per level it changes (Gate.io ``U..u``, MEXC spot
    ``fromVersion..toVersion``), the next push starting at the id after: no false gap."""
    async def main() -> None:
        async with cluster() as sim:
            client = Client(sim, exchange)
            client.session.start()
            await client.session.wait_connected(5)
            transport, listener, dialect = await raw_subscriber(sim, exchange)
            await synced(sim, client)
            feed(sim).advance(200)
            await eventually(client.caught_up, what="client catching up")
            client.assert_same_book()
            spans = [last - first + 1 for first, last, _ in decoded(listener.frames, exchange, dialect)]
            assert max(spans) > 1 and spans.count(1) < len(spans), spans
            stats = client.stats()
            assert stats.snapshots == 1 and not stats.resyncs, stats
            transport.disconnect()
            await client.close()

    run(main())


@pytest.mark.parametrize("exchange", SPANNING_MARKETS, ids=lambda e: e.value)
def test_a_dropped_push_spanning_several_ids_is_a_gap_the_client_resyncs_from(exchange: ExchangeName) -> None:
    async def main() -> None:
        async with cluster() as sim:
            client = Client(sim, exchange)
            client.session.start()
            await synced(sim, client)
            venue = sim.venues[exchange.venue]
            engine = venue.exchanges[exchange].engine(client.instrument.symbol)
            bid, ask = engine.book.best_bid_price(), engine.book.best_ask_price()
            venue.inject_stream_fault(exchange, StreamFaultKind.GAP)
            dropped = engine.apply_market_levels([(BID, bid, 5), (ASK, ask, 5)], 0)
            venue.publish(dropped)
            assert dropped.last_update_id == dropped.first_update_id + 1 == client.book.last_update_id + 2
            await synced(sim, client)
            client.assert_same_book()
            stats = client.stats()
            assert stats.resyncs == {"gap": 1} and stats.snapshots == 2, stats
            await client.close()

    run(main())


def test_orders_move_the_streamed_book_and_reach_the_private_hook() -> None:
    exchange = ExchangeName.MEXC_FUTURES

    def place(request: SimRequest, context: SimContext) -> SimResponse:
        engine = context.exchanges[exchange].engine("BTC/USDT:USDT")
        best = engine.book.best_bid_price()
        result = context.exchanges[exchange].place_order(
            "sim-key", "BTC/USDT:USDT", OrderSide.BUY, OrderType.LIMIT, 7, context.now_ns(),
            price_ticks=best, time_in_force=TimeInForce.GTC, client_id="c-1",
        )
        return SimResponse(status=200, body=b'{"orderId":%d}' % result.order.order_id)

    async def main() -> None:
        async with cluster() as sim:
            venue = sim.venues["mexc"]
            await venue.stop()
            venue.routes.append(Route("POST", "/sim-test/place", place))
            await venue.start()
            hooked: list[Any] = []
            venue.on_private_events = lambda name, events: hooked.extend(events)
            client = Client(sim, exchange)
            client.session.start()
            await synced(sim, client)
            before = client.server_book.last_update_id
            body = await client.rest.fetch(
                RestRequest(method="POST", path="/sim-test/place", body=b'{"externalOid":"c-1"}')
            )
            assert body.startswith(b'{"orderId":')
            assert client.server_book.last_update_id == before + 1
            await eventually(client.caught_up, what="the order's book change")
            client.assert_same_book()
            assert [type(e).__name__ for e in hooked] == ["OrderEvent"]
            assert venue.stamps.request_ns("c-1") is not None and venue.bypassed_updates == 0
            await client.close()

    run(main())


# --- faults ---------------------------------------------------------------------------------


FAULT_MARKETS = [ExchangeName.GATEIO, ExchangeName.MEXC_FUTURES, ExchangeName.MEXC]


@pytest.mark.parametrize("exchange", FAULT_MARKETS, ids=lambda e: e.value)
@pytest.mark.parametrize(
    "kind",
    [StreamFaultKind.GAP, StreamFaultKind.DUPLICATE, StreamFaultKind.REORDER, StreamFaultKind.MALFORMED,
     StreamFaultKind.DISCONNECT],
    ids=lambda k: k.value,
)
def test_stream_fault_is_seen_by_the_client_which_recovers(exchange: ExchangeName, kind: StreamFaultKind) -> None:
    async def main() -> None:
        async with cluster() as sim:
            client = Client(sim, exchange)
            client.session.start()
            await synced(sim, client)
            venue = sim.venues[exchange.venue]
            venue.inject_stream_fault(exchange, kind)
            feed(sim).advance(3)
            await asyncio.sleep(0.02)
            await synced(sim, client)  # recovers: back in sync and applying diffs
            client.assert_same_book()
            stats = client.stats()
            assert venue.faults.count(exchange.value, kind) == 1
            if kind is StreamFaultKind.GAP or kind is StreamFaultKind.REORDER:
                assert stats.resyncs.get("gap", 0) + stats.resyncs.get("snapshot_too_old", 0) >= 1, stats
                assert stats.snapshots == 2
            elif kind is StreamFaultKind.DUPLICATE:
                assert stats.stale >= 1 and not stats.resyncs
            elif kind is StreamFaultKind.MALFORMED:
                assert stats.malformed == 1 and stats.resyncs == {"malformed": 1}
            else:
                assert stats.resyncs.get("reconnect", 0) >= 1 and client.session.connects == 2
            await client.close()

    run(main())


def test_stall_leaves_the_client_book_stale_then_catches_up() -> None:
    exchange = ExchangeName.GATEIO_FUTURES

    async def main() -> None:
        async with cluster() as sim:
            client = Client(sim, exchange)
            client.session.start()
            await synced(sim, client)
            sim.venues["gateio"].inject_stream_fault(exchange, StreamFaultKind.STALL, stall_ms=300)
            stalled_at = client.book.last_update_id
            for _ in range(10):
                feed(sim).advance(5)
                await asyncio.sleep(0.01)
            assert client.book.last_update_id == stalled_at
            assert client.server_book.last_update_id > stalled_at
            assert time.monotonic_ns() - client.book.last_recv_ns >= 100_000_000  # stale by age
            await eventually(client.caught_up, what="release after the stall")
            client.assert_same_book()
            assert not client.stats().resyncs
            await client.close()

    run(main())


# --- determinism ----------------------------------------------------------------------------


def test_same_seed_pushes_the_same_frames() -> None:
    async def pushed(seed: int) -> list[tuple[int, int, list[Any]]]:
        async with cluster(seed) as sim:
            exchange = ExchangeName.GATEIO_FUTURES
            transport, listener, dialect = await raw_subscriber(sim, exchange)
            feed(sim).advance(50)
            await eventually(lambda: len(decoded(listener.frames, exchange, dialect)) >= 50, what="50 pushes")
            transport.disconnect()
            return decoded(listener.frames, exchange, dialect)

    async def main() -> None:
        first, second, other = await pushed(11), await pushed(11), await pushed(12)
        assert first == second
        assert first != other

    run(main())


# --- REST plumbing --------------------------------------------------------------------------


def test_rest_requests_arrive_verbatim_and_faults_delay_or_drop_them() -> None:
    seen: list[SimRequest] = []

    def echo(request: SimRequest, context: SimContext) -> SimResponse:
        seen.append(request)
        mode = request.path_params["mode"]
        if mode == "drop":
            return SimResponse(status=200, body=b"{}", drop_connection=True)
        return SimResponse(status=201, body=b'{"ok":true}', delay_ms=50 if mode == "slow" else 0,
                           headers=(("X-Sim", "1"),))

    async def main() -> None:
        venue = SimulatedVenue("gateio", default_instruments(["BTC"]), routes=[Route("POST", "/api/v4/echo/{mode}", echo)])
        async with venue:
            import aiohttp

            base = venue.urls().rest_url
            async with aiohttp.ClientSession() as http:
                from yarl import URL

                url = URL(base + "/echo/fast?b=2&a=%2F", encoded=True)
                async with http.post(url, data=b'{"text":"t-9"}', headers={"KEY": "k"}) as response:
                    assert response.status == 201 and response.headers["X-Sim"] == "1"
                started = time.monotonic()
                async with http.post(base + "/echo/slow") as response:
                    assert response.status == 201
                assert time.monotonic() - started >= 0.05
                with pytest.raises(aiohttp.ClientError):
                    async with http.post(base + "/echo/drop") as response:
                        await response.read()
            first = seen[0]
            assert (first.method, first.path, first.query, first.body) == ("POST", "/api/v4/echo/fast", "b=2&a=%2F", b'{"text":"t-9"}')
            assert first.headers["key"] == "k" and first.path_params == {"mode": "fast"} and first.received_ns > 0
            assert venue.stamps.request_ns("t-9") == first.received_ns

    run(main())


# --- matching delay ---------------------------------------------------------------------------

HOLD_NS = 300_000_000


def _resting_buy(client_order_id: str) -> OrderRequest:
    return OrderRequest(symbol=SPOT, side=OrderSide.BUY, type=OrderType.LIMIT, quantity=Decimal("0.001"),
                        price=Decimal(50000), client_order_id=client_order_id)


def _received_ns(venue: SimulatedVenue, client_order_id: str) -> int | None:
    """The venue's receive stamp of an order (Gate.io names it ``t-<id>`` on the wire)."""
    return venue.stamps.request_ns(client_order_id) or venue.stamps.request_ns(f"t-{client_order_id}")


@asynccontextmanager
async def holding_venue(market: ExchangeName, hold_ns: int) -> AsyncIterator[tuple[SimulatedVenue, ExchangeConnector]]:
    """``market``'s simulated venue and a connector to it, one order placed to set up the session,
    then the venue's matching delay set to ``hold_ns``."""
    async with simulated_venues(moving=False) as sim:
        venue = sim.venues[market.venue]
        connector = sim.connector(market)
        try:
            await connector.place_order(_resting_buy("before"))
            venue.matching_delay_ns = hold_ns
            yield venue, connector
        finally:
            await connector.close()


@pytest.mark.parametrize("market", [ExchangeName.GATEIO, ExchangeName.MEXC], ids=["gateio-ws", "mexc-rest"])
def test_a_held_order_is_stamped_on_receipt_and_matched_after_the_delay(market: ExchangeName) -> None:
    async def main() -> None:
        async with holding_venue(market, HOLD_NS) as (venue, connector):
            sent_ns = time.monotonic_ns()
            placed = await connector.place_order(_resting_buy("held-1"))
            received_ns = _received_ns(venue, "held-1")
            assert placed.status is OrderStatus.NEW and received_ns is not None and received_ns >= sent_ns
            [matched] = [o for o in venue.exchanges[market].open_orders(API_KEY) if o.client_id.endswith("held-1")]
            assert matched.created_ns - received_ns >= HOLD_NS

    run(main())


def test_frames_behind_a_held_order_wait_for_it_in_arrival_order() -> None:
    async def main() -> None:
        async with holding_venue(ExchangeName.GATEIO, HOLD_NS) as (venue, connector):
            placing = asyncio.ensure_future(connector.place_order(_resting_buy("held-2")))
            await eventually(lambda: _received_ns(venue, "held-2") is not None, what="the receive stamp")
            # The cancel goes on the same websocket while the order is held: it must not overtake it.
            cancelled = await connector.cancel_order(SPOT, client_order_id="held-2")
            assert cancelled.status is OrderStatus.CANCELED
            assert (await placing).status is OrderStatus.NEW

    run(main())


def test_a_request_naming_no_order_is_not_held() -> None:
    async def main() -> None:
        async with holding_venue(ExchangeName.MEXC, 1_000_000_000) as (_, connector):
            placing = asyncio.ensure_future(connector.place_order(_resting_buy("held-3")))
            balances = await connector.balances()
            assert balances["USDT"].free > 0 and not placing.done()
            assert (await placing).status is OrderStatus.NEW

    run(main())


def test_a_negative_matching_delay_is_refused() -> None:
    with pytest.raises(ValueError, match="matching_delay_ms -1 must be >= 0"):
        SimulatedVenue("mexc", [], matching_delay_ms=-1)


def test_clock_skew_moves_the_venue_clock() -> None:
    from arb.sim.faults import VenueFaults

    venue = SimulatedVenue("mexc", [], faults=FaultPlan(venues={"mexc": VenueFaults(clock_skew_ms=-5_000)}))
    assert abs(time.time() * 1000 - 5_000 - venue.context.wall_ms()) < 1_000


# --- replay ---------------------------------------------------------------------------------


def test_replay_resends_the_recorded_gate_frames(shared_data: Path) -> None:
    path = shared_data / "cryptofeed" / "GATEIO_FUTURES.ws.1.0"
    recorded = [line.partition(b": ")[2] for line in path.read_bytes().splitlines() if b"RDNT_USDT" in line
                and b'"futures.order_book_update","event":"update"' in line and not line.startswith(b"wss")]

    async def main() -> None:
        config = SimConfig(replay=(path, shared_data / "cryptofeed" / "GATEIO_FUTURES.http.0.0"), replay_speed=None,
                           venues=("gateio",))
        sim = SimCluster(config)
        for venue in sim.venues.values():
            await venue.start()
        url = sim.venues["gateio"].markets[ExchangeName.GATEIO_FUTURES].url
        transport, listener = await ws_connect(Collector, url)
        assert isinstance(listener, Collector)
        for frame in GateioFuturesMarketData(url).subscribe_frames(["RDNT_USDT"]):
            transport.send(WSMsgType.TEXT, str(frame).encode())
        await eventually(lambda: sim.venues["gateio"].markets[ExchangeName.GATEIO_FUTURES].subscribed("RDNT_USDT"))
        await sim.feed.run()
        await eventually(lambda: len(listener.frames) >= len(recorded) + 1, what="recorded frames")
        assert [p for _, p in listener.frames[1:]] == recorded
        rest = sim.venues["gateio"].urls().futures_rest_url
        import aiohttp

        async with aiohttp.ClientSession() as http:
            async with http.get(rest + "/futures/usdt/order_book?contract=RDNT_USDT&limit=100&with_id=true") as response:
                assert response.status == 200 and b'"id":' in await response.read()
        transport.disconnect()
        for venue in sim.venues.values():
            await venue.stop()

    run(main())


def test_cluster_dislocations_are_drawn_from_the_seed_and_scheduled_ones_are_kept() -> None:
    def started(config: SimConfig) -> list[Dislocation]:
        cluster = SimCluster(config)
        assert isinstance(cluster.feed, SyntheticFeed)
        cluster.feed.advance(20_000)  # 20 s of simulated time
        return [d for market in cluster.feed.markets for d in market.dislocations_started]

    scheduled = Dislocation(exchange=ExchangeName.GATEIO, symbol="BTC/USDT", start_ns=1_000_000_000,
                            duration_ns=10_000_000, bps=-80)
    config = SimConfig(symbols=("BTC/USDT",), seed=3, dislocations_per_minute=DISLOCATIONS_PER_MINUTE,
                       dislocations=(scheduled,))
    drawn = started(config)
    assert scheduled in drawn and len(drawn) > 1
    assert {abs(d.bps) for d in drawn if d != scheduled} == {DISLOCATION_BPS}
    assert started(config) == drawn  # same seed, same market
    assert started(msgspec.structs.replace(config, dislocations_per_minute=0)) == [scheduled]


def test_cluster_runs_its_feed_in_the_background() -> None:
    async def main() -> None:
        async with SimCluster(SimConfig(venues=("mexc",), symbols=("ETH/USDT",), updates_per_second=500)) as sim:
            assert isinstance(sim.feed, SyntheticFeed)
            await eventually(lambda: sim.feed.updates > 100, what="background updates")  # type: ignore[union-attr]
            urls = sim.urls()["mexc"].overrides()
            assert set(urls) == {"rest_url", "ws_url", "futures_rest_url", "futures_ws_url"}
            exchange = sim.venues["mexc"].exchanges[ExchangeName.MEXC]
            assert exchange.balances("sim-key")["USDT"] == (Decimal(1_000_000), Decimal(0))

    run(main())
