"""Simulated venue push rate over loopback, with subscribed picows clients.

Groups (medians in ``extra_info``: messages per second and the server's own ns per message):

* ``sim feed per venue``: the seeded generator stepping and pushing flat out to a client
  subscribed to both markets of the venue (spot and futures, every message counted), with
  a REST order answered every 500 messages; the target is >= 50,000 messages/s per venue;
* ``sim feed``: the same with the client on the spot market only (the futures market is
  still generated, unsubscribed, so every spot message carries the cost of two updates);
* ``sim push <venue>``: pre-generated book updates pushed through ``MarketServer.publish``
  (encode, fault check, stamp, send) vs the baseline of sending the same frames already
  encoded with a bare ``transport.send``.

The two ``sim feed`` groups have the same kind of baseline, one per venue: the same rig (the
same subscribed clients over the same loopback connections), with updates of the generator
drawn and encoded by each market's stream encoder before the timing, then written with a
bare ``transport.send`` to each market's connection in generation order, MESSAGES in all,
in chunks of 1000 between loop turns as the push groups do, with no REST orders. The ratio of
a feed row to its venue's baseline is what generating, matching, publishing and answering
orders on the one loop cost over writing the frames.

The server's ns per message is the time spent in ``SyntheticFeed.advance`` (generator,
matching, encode, send) or in ``publish``, per message pushed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from arb.exchanges.gateio.market_data import GateioFuturesMarketData, GateioSpotMarketData
from arb.exchanges.mexc.market_data import MexcFuturesMarketData, MexcSpotMarketData
from arb.sim.cluster import SimCluster, SimConfig
from arb.sim.http import Route, SimContext, SimRequest, SimResponse
from arb.sim.matching import BookUpdate, OrderType
from arb.sim.server import MarketServer, SimulatedVenue, SyntheticFeed
from arb.types import ExchangeName, OrderSide

MESSAGES = 20_000
SUBSCRIBE = {  # market -> (venue symbol, subscription frames)
    ExchangeName.GATEIO: ("BTC_USDT", GateioSpotMarketData().subscribe_frames(["BTC_USDT"])),
    ExchangeName.GATEIO_FUTURES: ("BTC_USDT", GateioFuturesMarketData().subscribe_frames(["BTC_USDT"])),
    ExchangeName.MEXC: ("BTCUSDT", MexcSpotMarketData().subscribe_frames(["BTCUSDT"])),
    ExchangeName.MEXC_FUTURES: ("BTC_USDT", MexcFuturesMarketData().subscribe_frames(["BTC_USDT"])),
}


class Counter(WSListener):
    """Counts book pushes (everything after the subscription reply)."""

    def __init__(self) -> None:
        super().__init__()
        self.frames = 0
        self.done: asyncio.Future[None] | None = None
        self.target = 0

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        self.frames += 1
        if self.done is not None and self.frames >= self.target and not self.done.done():
            self.done.set_result(None)


def _place(request: SimRequest, context: SimContext) -> SimResponse:
    exchange = next(iter(context.exchanges.values()))
    result = exchange.place_order("sim-key", "BTC/USDT", OrderSide.BUY, OrderType.MARKET, 1, context.now_ns())
    return SimResponse(status=200, body=b'{"id":%d}' % result.order.order_id)


class Rig:
    """A cluster of one venue, its feed, and a subscribed client per market: spot, or spot and futures."""

    def __init__(self, venue: str, *, both_markets: bool = False) -> None:
        self.loop = asyncio.new_event_loop()
        config = SimConfig(venues=(venue,), symbols=("BTC/USDT",), updates_per_second=200_000, depth_levels=50)
        self.sim = SimCluster(config)
        self.venue: SimulatedVenue = self.sim.venues[venue]
        self.venue.routes.append(Route("POST", "/sim-bench/order", _place))
        self.exchange = ExchangeName(venue)
        self.market = self.venue.markets[self.exchange]
        self.markets: list[MarketServer] = [self.market]
        if both_markets:
            self.markets.append(self.venue.markets[ExchangeName(f"{venue}_futures")])
        assert isinstance(self.sim.feed, SyntheticFeed)
        self.feed: SyntheticFeed = self.sim.feed
        self.clients: list[Counter] = []
        self.transports: list[WSTransport] = []
        self.loop.run_until_complete(self._connect())

    async def _connect(self) -> None:
        await self.venue.start()
        for market in self.markets:
            transport, listener = await ws_connect(Counter, market.url)
            assert isinstance(listener, Counter)
            self.transports.append(transport)
            self.clients.append(listener)
            venue_symbol, frames = SUBSCRIBE[market.exchange_name]
            for frame in frames:
                transport.send(WSMsgType.TEXT, str(frame).encode())
            while not market.subscribed(venue_symbol):
                await asyncio.sleep(0.001)
        self.client = self.clients[0]
        self.http = aiohttp.ClientSession()

    def pushed(self) -> int:
        """Updates pushed so far by the rig's markets (each to its one client)."""
        return sum(market.pushed for market in self.markets)

    def updates(self, count: int) -> list[BookUpdate]:
        """``count`` fresh updates of the generator (applied to the server books, not pushed)."""
        market = self.feed.markets[0]
        out: list[BookUpdate] = []
        while len(out) < count:
            self.feed.sim_ns += self.feed.tick_ns
            out += [u for u in market.step(self.feed.sim_ns) if u.exchange is self.exchange]
        return out[:count]

    def market_updates(self, count: int) -> list[tuple[int, BookUpdate]]:
        """``count`` fresh updates of the rig's markets, in generation order, each with the index
        of its market in ``markets`` (applied to the server books, not pushed)."""
        index = {market.exchange_name: i for i, market in enumerate(self.markets)}
        out: list[tuple[int, BookUpdate]] = []
        while len(out) < count:
            self.feed.sim_ns += self.feed.tick_ns
            for synthetic in self.feed.markets:
                out += [(index[u.exchange], u) for u in synthetic.step(self.feed.sim_ns) if u.exchange in index]
        return out[:count]

    async def wait_for(self, frames: int, client: Counter | None = None) -> None:
        """Until ``client`` (default: the spot one) has received ``frames`` frames in all."""
        client = client or self.client
        client.target = frames
        client.done = self.loop.create_future()
        if client.frames < frames:
            await asyncio.wait_for(client.done, 30)

    def close(self) -> None:
        async def shutdown() -> None:
            await self.http.close()
            for transport in self.transports:
                transport.disconnect()
            await self.venue.stop()

        self.loop.run_until_complete(shutdown())
        self.loop.close()


def _push_bench(benchmark: Any, venue: str, baseline: bool) -> None:
    rig = Rig(venue)
    state: dict[str, Any] = {"server_ns": []}

    def setup() -> tuple[tuple[()], dict[str, Any]]:
        updates = rig.updates(MESSAGES)
        state["updates"] = updates
        if baseline:
            engine = rig.market.exchange.engines["BTC/USDT"]
            encode = next(iter(rig.market._streams.values()))[0][1]
            state["frames"] = [encode(u, engine, 0) for u in updates]
        return (), {}

    async def push() -> None:
        start_frames = rig.client.frames
        spent = 0
        if baseline:
            send = rig.market.connections[0].transport.send  # type: ignore[union-attr]
            frames = state["frames"]
            for offset in range(0, len(frames), 1000):
                t0 = time.perf_counter_ns()
                for msg_type, payload in frames[offset:offset + 1000]:
                    send(msg_type, payload)
                spent += time.perf_counter_ns() - t0
                await asyncio.sleep(0)
        else:
            publish = rig.venue.publish
            updates = state["updates"]
            for offset in range(0, len(updates), 1000):
                t0 = time.perf_counter_ns()
                for update in updates[offset:offset + 1000]:
                    publish(update)
                spent += time.perf_counter_ns() - t0
                await asyncio.sleep(0)
        await rig.wait_for(start_frames + MESSAGES)
        state["server_ns"].append(spent / MESSAGES)

    def run() -> None:
        rig.loop.run_until_complete(push())

    try:
        benchmark.pedantic(run, setup=setup, rounds=5, iterations=1)
        median_s = benchmark.stats.stats.median
        benchmark.extra_info["messages_per_s"] = round(MESSAGES / median_s)
        benchmark.extra_info["server_ns_per_message"] = round(sorted(state["server_ns"])[len(state["server_ns"]) // 2])
        assert rig.client.frames >= 5 * MESSAGES
    finally:
        rig.close()


def test_push_gateio(benchmark: Any) -> None:
    """Gate spot pushes through the server (encode, faults, stamps, send)."""
    benchmark.group = "sim push gateio"
    _push_bench(benchmark, "gateio", baseline=False)


def test_push_gateio_bare_send_baseline(benchmark: Any) -> None:
    """The same frames, pre-encoded, sent with a bare transport.send."""
    benchmark.group = "sim push gateio"
    _push_bench(benchmark, "gateio", baseline=True)


def test_push_mexc(benchmark: Any) -> None:
    """MEXC spot protobuf pushes through the server."""
    benchmark.group = "sim push mexc"
    _push_bench(benchmark, "mexc", baseline=False)


def test_push_mexc_bare_send_baseline(benchmark: Any) -> None:
    """The same frames, pre-encoded, sent with a bare transport.send."""
    benchmark.group = "sim push mexc"
    _push_bench(benchmark, "mexc", baseline=True)


def _feed_bench(benchmark: Any, venue: str, both_markets: bool) -> None:
    rig = Rig(venue, both_markets=both_markets)
    orders: list[int] = []
    url = rig.venue.urls().rest_url.removesuffix("/api/v4") + "/sim-bench/order"
    state: dict[str, list[float]] = {"server_ns": [], "messages": []}

    async def order() -> None:
        async with rig.http.post(url) as response:
            orders.append(response.status)

    async def pump() -> None:
        start_frames = [client.frames for client in rig.clients]
        start_pushed = [market.pushed for market in rig.markets]
        start = rig.pushed()
        pending = []
        spent = 0
        while (before := rig.pushed()) - start < MESSAGES:
            t0 = time.perf_counter_ns()
            rig.feed.advance(1)
            spent += time.perf_counter_ns() - t0
            if (rig.pushed() - start) // 500 != (before - start) // 500:
                pending.append(asyncio.ensure_future(order()))
            await asyncio.sleep(0)
        await asyncio.gather(*pending)
        for client, frames, market, pushed in zip(rig.clients, start_frames, rig.markets, start_pushed):
            await rig.wait_for(frames + market.pushed - pushed, client)
        state["messages"].append(rig.pushed() - start)
        state["server_ns"].append(spent / (rig.pushed() - start))

    def run() -> None:
        rig.loop.run_until_complete(pump())

    try:
        benchmark.pedantic(run, rounds=5, iterations=1)
        messages = state["messages"]
        benchmark.extra_info["messages_per_s"] = round(sum(messages) / len(messages) / benchmark.stats.stats.median)
        benchmark.extra_info["server_ns_per_message"] = round(sorted(state["server_ns"])[len(state["server_ns"]) // 2])
        benchmark.extra_info["orders_answered"] = len(orders)
        assert orders and set(orders) == {200}
        assert sum(state["messages"]) >= 5 * MESSAGES and all(market.pushed for market in rig.markets)
    finally:
        rig.close()


def test_feed_per_venue_gateio_with_orders(benchmark: Any) -> None:
    """Generator + pushes of Gate spot and futures to one client + REST orders, on one loop."""
    benchmark.group = "sim feed per venue"
    _feed_bench(benchmark, "gateio", both_markets=True)


def test_feed_per_venue_mexc_with_orders(benchmark: Any) -> None:
    """Generator + pushes of MEXC spot and futures to one client + REST orders, on one loop."""
    benchmark.group = "sim feed per venue"
    _feed_bench(benchmark, "mexc", both_markets=True)


def test_feed_gateio_with_orders(benchmark: Any) -> None:
    """Generator + pushes + REST orders on one loop, Gate spot subscribed."""
    benchmark.group = "sim feed"
    _feed_bench(benchmark, "gateio", both_markets=False)


def test_feed_mexc_with_orders(benchmark: Any) -> None:
    """Generator + pushes + REST orders on one loop, MEXC spot subscribed."""
    benchmark.group = "sim feed"
    _feed_bench(benchmark, "mexc", both_markets=False)


def _feed_bare_send_bench(benchmark: Any, venue: str, both_markets: bool) -> None:
    rig = Rig(venue, both_markets=both_markets)
    state: dict[str, Any] = {"server_ns": []}
    encoders = [next(iter(market._streams.values()))[0][1] for market in rig.markets]

    def setup() -> tuple[tuple[()], dict[str, Any]]:
        frames = []
        for i, update in rig.market_updates(MESSAGES):
            msg_type, payload = encoders[i](update, rig.markets[i].exchange.engines[update.symbol], 0)
            frames.append((i, msg_type, payload))
        state["frames"] = frames
        state["per_client"] = [sum(1 for market, _, _ in frames if market == i) for i in range(len(rig.clients))]
        return (), {}

    async def push() -> None:
        start_frames = [client.frames for client in rig.clients]
        sends = [market.connections[0].transport.send for market in rig.markets]  # type: ignore[union-attr]
        frames = state["frames"]
        spent = 0
        for offset in range(0, len(frames), 1000):
            t0 = time.perf_counter_ns()
            for i, msg_type, payload in frames[offset:offset + 1000]:
                sends[i](msg_type, payload)
            spent += time.perf_counter_ns() - t0
            await asyncio.sleep(0)
        for client, start, count in zip(rig.clients, start_frames, state["per_client"]):
            await rig.wait_for(start + count, client)
        state["server_ns"].append(spent / MESSAGES)

    def run() -> None:
        rig.loop.run_until_complete(push())

    try:
        benchmark.pedantic(run, setup=setup, rounds=5, iterations=1)
        benchmark.extra_info["messages_per_s"] = round(MESSAGES / benchmark.stats.stats.median)
        benchmark.extra_info["server_ns_per_message"] = round(sorted(state["server_ns"])[len(state["server_ns"]) // 2])
        assert sum(client.frames for client in rig.clients) >= 5 * MESSAGES
        assert all(client.frames for client in rig.clients)
    finally:
        rig.close()


def test_feed_per_venue_gateio_bare_send_baseline(benchmark: Any) -> None:
    """Gate spot and futures frames, pre-generated and pre-encoded, sent with a bare transport.send."""
    benchmark.group = "sim feed per venue"
    _feed_bare_send_bench(benchmark, "gateio", both_markets=True)


def test_feed_per_venue_mexc_bare_send_baseline(benchmark: Any) -> None:
    """MEXC spot and futures frames, pre-generated and pre-encoded, sent with a bare transport.send."""
    benchmark.group = "sim feed per venue"
    _feed_bare_send_bench(benchmark, "mexc", both_markets=True)


def test_feed_gateio_bare_send_baseline(benchmark: Any) -> None:
    """Gate spot frames, pre-generated and pre-encoded, sent with a bare transport.send."""
    benchmark.group = "sim feed"
    _feed_bare_send_bench(benchmark, "gateio", both_markets=False)


def test_feed_mexc_bare_send_baseline(benchmark: Any) -> None:
    """MEXC spot frames, pre-generated and pre-encoded, sent with a bare transport.send."""
    benchmark.group = "sim feed"
    _feed_bare_send_bench(benchmark, "mexc", both_markets=False)
