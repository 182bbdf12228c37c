"""Simulated venues on 127.0.0.1: picows websocket servers and an aiohttp REST server per venue.

One ``SimulatedVenue`` serves one exchange (``gateio`` or ``mexc``): for each of its
markets a websocket server speaking the venue dialect (``arb.sim.wire`` over the venue's
``sim.py``), and one HTTP server mounting the venue's ``rest_routes()`` under its real path
prefixes (Gate ``/api/v4/...``; MEXC spot ``/api/v3/...`` and contract ``/api/v1/...``).
Book updates come from a feed (``SyntheticFeed``, ``ReplayFeed``) or from orders, and are
pushed to subscribed connections with the stream faults of the ``FaultPlan`` applied.

Fault keys: stream faults are asked per market (``ExchangeName`` value, e.g.
``gateio_futures``), once per book update that has at least one subscriber; the clock skew
is asked per venue (``gateio``, ``mexc``), the key of ``SimContext.venue``.

Latency stamps (out of band, never on the wire): ``LatencyStamps`` keeps the monotonic
send time of every pushed update by ``(market, symbol, last_update_id)`` and the receive
time of every request carrying an order, by client order id when the request names one.
A push is stamped just before its first socket write. A request is stamped at the socket
read that completed it, before routing and matching: for REST, the last ``data_received``
on its connection before the handler runs (``_StampingProtocol``; bytes of a later
pipelined request can only make the stamp later, never earlier than complete); for the
websocket trading API, ``on_ws_frame``, which picows calls from the read that completed
the frame. Stamps are taken on receipt, also when the venue holds an order before
matching it (``matching_delay_ms``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from fractions import Fraction
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

import msgspec
from aiohttp import web
from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

from ..instruments import Instrument
from ..replay.reader import Record, RecordingDamaged, read_records
from ..replay.recorder import RecordKind
from ..secrets import ApiCredentials
from ..types import ExchangeName
from .faults import FaultPlan, StreamFault, StreamFaultKind
from .http import DEFAULT_FUNDING_INTERVAL_S, Route, SimContext, SimRequest, SimResponse
from .market import SyntheticMarket
from .matching import BookUpdate, Fill, OrderEvent, PlaceResult, SimExchange
from .wire import REST_PREFIX, WIRES, MarketWire, OutFrame, Topic

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
PrivateEvent = Fill | OrderEvent
PrivateHook = Callable[[ExchangeName, Sequence[PrivateEvent]], None]
_Encoder = Callable[[BookUpdate, Any, int], OutFrame]


def _venue_markets(venue: str) -> tuple[ExchangeName, ExchangeName]:
    spot = ExchangeName(venue)
    return spot, ExchangeName(f"{venue}_futures")


# --- latency stamps ----------------------------------------------------------------------


class RequestStamp(NamedTuple):
    """When a REST request arrived (local monotonic ns), and the client order id it carried."""

    method: str
    path: str
    client_order_id: str | None
    received_ns: int


class LatencyStamps:
    """Bounded rings of push send times and request receive times (oldest dropped first)."""

    def __init__(self, capacity: int = 1 << 16) -> None:
        if capacity < 1:
            raise ValueError(f"latency stamps: capacity {capacity} must be >= 1")
        self.capacity = capacity
        self._pushes: dict[tuple[ExchangeName, str, int], int] = {}
        self._push_order: deque[tuple[ExchangeName, str, int]] = deque()
        self.requests: deque[RequestStamp] = deque(maxlen=capacity)

    def record_push(self, exchange: ExchangeName, symbol: str, last_update_id: int, send_ns: int) -> None:
        """Stamp one pushed update (the first send wins; duplicates keep the first time)."""
        key = (exchange, symbol, last_update_id)
        if key in self._pushes:
            return
        self._pushes[key] = send_ns
        order = self._push_order
        order.append(key)
        if len(order) > self.capacity:
            del self._pushes[order.popleft()]

    def push_ns(self, exchange: ExchangeName, symbol: str, last_update_id: int) -> int | None:
        """Monotonic send time of the push of ``symbol`` ending at ``last_update_id``, if still kept."""
        return self._pushes.get((exchange, symbol, last_update_id))

    def pushes(self) -> list[tuple[ExchangeName, str, int, int]]:
        """Every kept push stamp, oldest first: ``(market, symbol, last_update_id, send_ns)``."""
        return [(*key, self._pushes[key]) for key in self._push_order]

    def request_ns(self, client_order_id: str) -> int | None:
        """Receive time of the latest kept request carrying ``client_order_id``."""
        for stamp in reversed(self.requests):
            if stamp.client_order_id == client_order_id:
                return stamp.received_ns
        return None


class _HeldReads:
    """What one connection received while its venue holds an order (``matching_delay_ms``).

    An order is handed on once its delay is over; whatever the connection received after it
    waits behind it and follows it in arrival order, so nothing overtakes an order.
    """

    __slots__ = ("_handle", "_items", "_timer")

    def __init__(self, handle: Callable[[bytes], None]) -> None:
        self._handle = handle
        self._items: deque[tuple[int, bytes]] = deque()  # (monotonic ns due, or 0 behind an order; data)
        self._timer: asyncio.TimerHandle | None = None

    def hold(self, data: bytes, received_ns: int, delay_ns: int, is_order: bool) -> bool:
        """Hold ``data`` when it is an order and the venue delays orders, or when something is held
        already; False: nothing is held, handle it now."""
        if not delay_ns or not (is_order or self._items):
            return False
        self._items.append((received_ns + delay_ns if is_order else 0, data))
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(delay_ns / 1e9, self._release)
        return True

    def flush(self) -> None:
        """Hand on everything held now (the connection is closing)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._items:
            self._handle(self._items.popleft()[1])

    def _release(self) -> None:
        self._timer = None
        items = self._items
        self._handle(items.popleft()[1])  # the order the timer was set for
        while items:
            due_ns, data = items[0]
            wait_ns = due_ns - time.monotonic_ns()
            if wait_ns > 0:
                self._timer = asyncio.get_running_loop().call_later(wait_ns / 1e9, self._release)
                return
            items.popleft()
            self._handle(data)


class _StampingProtocol(asyncio.Protocol):
    """aiohttp's request handler behind a shim that notes the time of every socket read.

    The REST handler stamps a request with its connection's last read time: the moment
    the simulator had the complete request, before aiohttp's dispatch (a task wake-up and
    routing, about 150 µs) and the matching. A read that names a client order id is held
    for the venue's matching delay before aiohttp sees it (``_HeldReads``).
    """

    def __init__(self, inner: asyncio.Protocol, reads: dict[object, int], venue: SimulatedVenue) -> None:
        self._inner = inner
        self._venue = venue
        self._reads = reads
        self._transport: asyncio.BaseTransport | None = None
        self._held = _HeldReads(inner.data_received)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        received_ns = self._reads[self._transport] = time.monotonic_ns()
        venue = self._venue
        delay_ns = venue.matching_delay_ns
        if delay_ns and self._held.hold(data, received_ns, delay_ns, any(m in data for m in venue.order_markers)):
            return
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        self._held.flush()
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._held.flush()
        self._reads.pop(self._transport, None)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


# --- websocket side ------------------------------------------------------------------------


class _Connection(WSListener):
    """One client connection of a market: its venue session and the streams it receives."""

    def __init__(self, market: MarketServer, session: object) -> None:
        super().__init__()
        self.market = market
        self.session = session
        self.topics: frozenset[Topic] = frozenset()
        self.transport: WSTransport | None = None
        self.closed = False
        self._held = _HeldReads(self._handle)

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.market.connections.append(self)
        self.market.connects += 1

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        if msg_type is WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
            return
        if msg_type is not WSMsgType.TEXT and msg_type is not WSMsgType.BINARY:
            return
        received_ns = time.monotonic_ns()
        market = self.market
        market.control_frames += 1
        data = frame.get_payload_as_bytes()
        cid = _ws_client_order_id(data, market.wire.client_order_id_keys)
        if cid is not None:  # an order over a websocket trading API: stamped like a REST order
            market.venue.stamps.requests.append(RequestStamp("WS", market.wire.ws_path, cid, received_ns))
        if self._held.hold(data, received_ns, market.venue.matching_delay_ns, cid is not None):
            return
        self._handle(data)

    def _handle(self, data: bytes) -> None:
        market = self.market
        for out_type, payload in market.wire.handle(self.session, data, market.wall_ms()):
            if self.transport is not None and not self.closed:
                self.transport.send(out_type, payload)
        # Orders sent over a websocket trading API (Gate) make private events as REST orders do.
        market.venue.drain_private_events()
        topics = market.wire.topics(self.session)
        if topics != self.topics and not self.closed:
            market.resubscribe(self, topics)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        # Held orders still reach matching, as they would at a venue that received them; their answers go nowhere.
        self.closed = True
        self._held.flush()
        self.market.disconnected(self)


def _ws_client_order_id(data: bytes, keys: Sequence[str]) -> str | None:
    """The client order id a websocket request carries under one of ``keys`` (a byte search, no decode)."""
    for key in keys:
        start = data.find(b'"' + key.encode() + b'":"')
        if start >= 0:
            start += len(key) + 4
            end = data.find(b'"', start)
            if end > start:
                return data[start:end].decode("utf-8", "replace")
    return None


class _RawFrame(NamedTuple):
    """A recorded frame to forward as is to the subscribers of ``kind`` on ``venue_symbol``."""

    kind: str
    venue_symbol: str
    last_update_id: int
    msg_type: WSMsgType
    payload: bytes


_Stream = tuple[Topic, _Encoder, dict[_Connection, None]]


class MarketServer:
    """The websocket server of one market: connections, subscriptions, fan-out and stream faults."""

    def __init__(self, venue: SimulatedVenue, wire: MarketWire, exchange: SimExchange, port: int = 0) -> None:
        self.venue = venue
        self.wire = wire
        self.exchange = exchange
        self.exchange_name = exchange.exchange
        self._fault_key = exchange.exchange.value
        self.requested_port = port
        self.port = 0
        self.connections: list[_Connection] = []
        self._subscribers: dict[Topic, dict[_Connection, None]] = {}
        self._encoders: dict[Topic, _Encoder] = {}
        self._streams: dict[str, list[_Stream]] = {}  # venue symbol -> streams with subscribers
        self._venue_symbol = dict(wire.venue_symbols)
        self._held: list[BookUpdate | _RawFrame] | None = None  # pushes held by a STALL
        self._reordered: dict[str, BookUpdate | _RawFrame] = {}
        self._server: asyncio.Server | None = None
        self.connects = 0
        self.control_frames = 0
        self.offered = 0  # updates that had a subscriber (the fault plan's update count)
        self.pushed = 0  # updates sent (once per update, whatever the number of connections)
        self.frames_sent = 0
        self.private_frames_sent = 0
        self.faults: Counter[str] = Counter()

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:<port><venue path>``."""
        return f"ws://{HOST}:{self.port}{self.wire.ws_path}"

    async def start(self) -> None:
        """Listen on 127.0.0.1 (the requested port, or one the OS picks)."""
        self._server = await ws_create_server(self._accept, HOST, self.requested_port)
        self.port = self._server.sockets[0].getsockname()[1]

    def _accept(self, request: WSUpgradeRequest) -> _Connection | None:
        target = request.path.decode("latin-1") if isinstance(request.path, bytes) else str(request.path)
        session = self.wire.open_session(target)
        return None if session is None else _Connection(self, session)

    def publish_private(self, events: Sequence[PrivateEvent]) -> None:
        """Push private events to the connections of their users that subscribed to them."""
        items = self.wire.prepare_private(events)
        send_ms = self.venue.context.wall_ms()
        for conn in self.connections:
            transport = conn.transport
            if transport is None:
                continue
            for msg_type, payload in self.wire.private_frames(conn.session, items, send_ms):
                transport.send(msg_type, payload)
                self.private_frames_sent += 1

    def drop_subscribers(self, kinds: Iterable[str]) -> None:
        """Drop every connection subscribed to a stream of ``kinds`` (a market-data stream dropped;
        order and private connections stay): clients reconnect and resubscribe."""
        wanted = set(kinds)
        dropped = {conn: None for topic, subscribers in self._subscribers.items() if topic[0] in wanted
                   for conn in subscribers}
        for conn in dropped:
            if conn.transport is not None:
                conn.transport.disconnect(graceful=False)

    async def stop(self) -> None:
        """Drop every connection and stop listening."""
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.disconnect(graceful=False)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def wall_ms(self) -> int:
        """The venue's clock in ms (clock skew applied)."""
        return self.venue.context.wall_ms()

    # --- subscriptions ------------------------------------------------------------------------

    def resubscribe(self, conn: _Connection, topics: frozenset[Topic]) -> None:
        """Move ``conn`` to the streams of ``topics``."""
        changed = {t[1] for t in conn.topics ^ topics}
        for topic in conn.topics - topics:
            subscribers = self._subscribers.get(topic)
            if subscribers is not None:
                subscribers.pop(conn, None)
        for topic in topics - conn.topics:
            self._subscribers.setdefault(topic, {})[conn] = None
            self._send_first_push(conn, topic)
        conn.topics = topics
        for venue_symbol in changed:
            self._rebuild(venue_symbol)

    def _send_first_push(self, conn: _Connection, topic: Topic) -> None:
        engine = self.wire.engine_of(self.venue.context, topic[1])
        transport = conn.transport
        if engine is None or transport is None:
            return
        first = self.wire.first_push(topic, engine, self.wall_ms())
        if first is not None:
            transport.send(*first)
            self.frames_sent += 1

    def disconnected(self, conn: _Connection) -> None:
        """Forget a closed connection."""
        if conn in self.connections:
            self.connections.remove(conn)
        self.resubscribe(conn, frozenset())

    def _rebuild(self, venue_symbol: str) -> None:
        streams: list[_Stream] = []
        for topic, subscribers in self._subscribers.items():
            if topic[1] != venue_symbol or not subscribers:
                continue
            encoder = self._encoders.get(topic)
            if encoder is None and topic[1] in self.wire.instruments:
                encoder = self._encoders[topic] = self.wire.encoder(topic)
            if encoder is not None:
                streams.append((topic, encoder, subscribers))
        if streams:
            self._streams[venue_symbol] = streams
        else:
            self._streams.pop(venue_symbol, None)

    def subscribed(self, venue_symbol: str) -> bool:
        """Whether any connection receives a stream of ``venue_symbol``."""
        return any(t[1] == venue_symbol and c for t, c in self._subscribers.items())

    # --- pushes -----------------------------------------------------------------------------

    def publish(self, update: BookUpdate) -> None:
        """Push one sequenced book change to its subscribers, faults applied."""
        venue_symbol = self._venue_symbol[update.symbol]
        if venue_symbol not in self._streams:
            return
        if self._held is not None or self._reordered:
            self._deliver(venue_symbol, update)
            return
        # _deliver and _send without a held or reordered push: the path of nearly every update
        self.offered += 1
        fault = self.venue.faults.on_book_update(self._fault_key)
        if fault is not None:
            self._fault(venue_symbol, update, fault)
            return
        engine = self.exchange.engines[update.symbol]
        send_ms = self.venue.context.wall_ms()
        stamped = False
        for _topic, encode, subscribers in self._streams[venue_symbol]:
            msg_type, payload = encode(update, engine, send_ms)
            if not stamped:
                self.venue.stamps.record_push(self.exchange_name, update.symbol, update.last_update_id, time.monotonic_ns())
                stamped = True
            for conn in subscribers:
                transport = conn.transport
                if transport is not None:
                    transport.send(msg_type, payload)
            self.frames_sent += len(subscribers)
        self.pushed += 1

    def publish_raw(self, frame: _RawFrame) -> None:
        """Forward one recorded frame to the subscribers of its channel and symbol, faults applied."""
        if any(t[0] == frame.kind and t[1] == frame.venue_symbol and c for t, c in self._subscribers.items()):
            self._deliver(frame.venue_symbol, frame)

    def _deliver(self, venue_symbol: str, item: BookUpdate | _RawFrame) -> None:
        if self._held is not None:
            self._held.append(item)
            return
        reordered = self._reordered.pop(venue_symbol, None)
        self.offered += 1
        fault = self.venue.faults.on_book_update(self._fault_key)
        if fault is None:
            self._send(venue_symbol, item, False)
        else:
            self._fault(venue_symbol, item, fault)
        if reordered is not None:
            self._send(venue_symbol, reordered, False)

    def _fault(self, venue_symbol: str, item: BookUpdate | _RawFrame, fault: StreamFault) -> None:
        kind = fault.kind
        self.faults[kind.value] += 1
        if kind is StreamFaultKind.GAP:
            return
        if kind is StreamFaultKind.DUPLICATE:
            self._send(venue_symbol, item, False)
            self._send(venue_symbol, item, False)
        elif kind is StreamFaultKind.REORDER:
            self._reordered[venue_symbol] = item
        elif kind is StreamFaultKind.MALFORMED:
            self._send(venue_symbol, item, True)
        elif kind is StreamFaultKind.STALL:
            self._held = [item]
            asyncio.get_running_loop().call_later(fault.stall_ms / 1000, self._release)
        elif kind is StreamFaultKind.DISCONNECT:
            for conn in self._receivers(venue_symbol, item):
                if conn.transport is not None:
                    conn.transport.disconnect(graceful=False)

    def _release(self) -> None:
        held, self._held = self._held or [], None
        for item in held:
            symbol = item.venue_symbol if isinstance(item, _RawFrame) else self._venue_symbol[item.symbol]
            self._send(symbol, item, False)

    def _receivers(self, venue_symbol: str, item: BookUpdate | _RawFrame) -> list[_Connection]:
        if isinstance(item, _RawFrame):
            return [c for t, s in self._subscribers.items() if t[0] == item.kind and t[1] == venue_symbol for c in s]
        return [c for _, _, subscribers in self._streams.get(venue_symbol, ()) for c in subscribers]

    def _send(self, venue_symbol: str, item: BookUpdate | _RawFrame, corrupt: bool) -> None:
        stamped = False
        if isinstance(item, _RawFrame):
            payload = self.wire.malformed(item.payload) if corrupt else item.payload
            receivers = self._receivers(venue_symbol, item)
            self.venue.stamps.record_push(self.exchange_name, venue_symbol, item.last_update_id, time.monotonic_ns())
            for conn in receivers:
                if conn.transport is not None:
                    conn.transport.send(item.msg_type, payload)
            self.frames_sent += len(receivers)
            self.pushed += 1
            return
        streams = self._streams.get(venue_symbol)
        if not streams:
            return
        engine = self.exchange.engines[item.symbol]
        send_ms = self.venue.context.wall_ms()
        for _topic, encode, subscribers in streams:
            msg_type, payload = encode(item, engine, send_ms)
            if corrupt:
                payload = self.wire.malformed(payload)
            if not stamped:
                self.venue.stamps.record_push(self.exchange_name, item.symbol, item.last_update_id, time.monotonic_ns())
                stamped = True
            for conn in subscribers:
                transport = conn.transport
                if transport is not None:
                    transport.send(msg_type, payload)
            self.frames_sent += len(subscribers)
        self.pushed += 1


# --- the venue ---------------------------------------------------------------------------------


class VenuePorts(msgspec.Struct, frozen=True, kw_only=True):
    """Ports to listen on (0: the OS picks a free one)."""

    rest: int = 0
    spot_ws: int = 0
    futures_ws: int = 0


class VenueUrls(msgspec.Struct, frozen=True, kw_only=True):
    """Where a connector reaches a simulated venue; field names match ``ExchangeConfig`` overrides."""

    rest_url: str
    ws_url: str
    futures_rest_url: str
    futures_ws_url: str

    def overrides(self) -> dict[str, str]:
        """The ``ExchangeConfig`` endpoint overrides (``msgspec.structs.replace(config, **overrides)``)."""
        return msgspec.structs.asdict(self)


class _PublishingExchange(SimExchange):
    """A ``SimExchange`` that hands the public book change of every order and cancel to its venue."""

    def __init__(self, exchange: ExchangeName, instruments: Iterable[Instrument], leverage: int,
                 on_update: Callable[[BookUpdate], None]) -> None:
        super().__init__(exchange, instruments, leverage=leverage)
        self._on_update = on_update

    def place_order(self, *args: Any, **kwargs: Any) -> PlaceResult:
        result = super().place_order(*args, **kwargs)
        if result.book_update is not None:
            self._on_update(result.book_update)
        return result

    def cancel_order(self, *args: Any, **kwargs: Any) -> tuple[OrderEvent, BookUpdate | None]:
        event, update = super().cancel_order(*args, **kwargs)
        if update is not None:
            self._on_update(update)
        return event, update


def _venue_rest_routes(venue: str) -> list[Route]:
    """The venue's own REST dialect routes, when its ``sim.py`` defines them."""
    if venue == "gateio":
        from ..exchanges.gateio import sim as module
    else:
        from ..exchanges.mexc import sim as module  # type: ignore[no-redef]
    factory = getattr(module, "rest_routes", None)
    return list(factory()) if callable(factory) else []


class SimulatedVenue:
    """One simulated exchange (both markets) on 127.0.0.1; use as an async context manager.

    ``instruments`` may include other venues' (they are ignored). ``routes`` replaces the
    venue's own ``rest_routes()``; either way a depth snapshot route of each market is added
    when none is given. ``listed`` adds venue symbols served without an instrument (replay).
    ``matching_delay_ms`` holds every request that carries a client order id that long after
    its receive stamp before handling it, as a real venue's gateway does before its matching
    engine; on a websocket the frames behind a held order wait with it, in order.
    """

    def __init__(
        self,
        venue: str,
        instruments: Iterable[Instrument],
        *,
        faults: FaultPlan | None = None,
        credentials: Mapping[str, ApiCredentials] | None = None,
        routes: Sequence[Route] | None = None,
        ports: VenuePorts | None = None,
        leverage: int = 10,
        stamp_capacity: int = 1 << 16,
        listed: Mapping[ExchangeName, Iterable[str]] | None = None,
        private_event_capacity: int = 1 << 16,
        matching_delay_ms: float = 0,
        funding_interval_s: int = DEFAULT_FUNDING_INTERVAL_S,
    ) -> None:
        if venue not in REST_PREFIX:
            raise ValueError(f"simulated venue {venue!r}: not one of {sorted(REST_PREFIX)}")
        if not matching_delay_ms >= 0:
            raise ValueError(f"simulated venue {venue!r}: matching_delay_ms {matching_delay_ms} must be >= 0")
        if not isinstance(funding_interval_s, int) or funding_interval_s < 1:
            raise ValueError(f"simulated venue {venue!r}: funding_interval_s {funding_interval_s!r} must be an int >= 1")
        self.venue = venue
        self.matching_delay_ns = int(matching_delay_ms * 1_000_000)
        self.faults = faults or FaultPlan()
        self.stamps = LatencyStamps(stamp_capacity)
        self.ports = ports or VenuePorts()
        instruments = list(instruments)
        self.exchanges: dict[ExchangeName, SimExchange] = {}
        self.markets: dict[ExchangeName, MarketServer] = {}
        for name in _venue_markets(venue):
            exchange = _PublishingExchange(name, (i for i in instruments if i.exchange is name), leverage, self.publish)
            wire = WIRES[name](instruments, (listed or {}).get(name, ()))
            port = self.ports.futures_ws if name.is_futures else self.ports.spot_ws
            self.exchanges[name] = exchange
            self.markets[name] = MarketServer(self, wire, exchange, port)
        self.context = SimContext(
            venue=venue,
            exchanges=self.exchanges,
            faults=self.faults,
            credentials=dict(credentials or {}),
            now_ns=time.monotonic_ns,
            wall_ms=self._wall_ms,
            funding_interval_s=funding_interval_s,
        )
        for market in self.markets.values():
            market.wire.context = self.context
        self.routes = list(_venue_rest_routes(venue) if routes is None else routes)
        self.private_events: deque[tuple[ExchangeName, PrivateEvent]] = deque(maxlen=private_event_capacity)
        self.on_private_events: PrivateHook | None = None
        self.requests = 0
        self.handler_errors = 0
        self.bypassed_updates = 0
        self._published: dict[tuple[ExchangeName, str], int] = {}
        self._order_keys = tuple(
            dict.fromkeys(key for market in self.markets.values() for key in market.wire.client_order_id_keys)
        )
        # How a REST read names a client order id: in a query or form, or as a JSON key.
        self.order_markers = tuple(
            marker for key in self._order_keys for marker in (f"{key}=".encode(), f'"{key}"'.encode())
        )
        self._runner: web.AppRunner | None = None
        self._funding: asyncio.Task[None] | None = None
        self._rest_server: asyncio.Server | None = None
        self._reads: dict[object, int] = {}  # REST transport -> monotonic time of its last read
        self.rest_port = 0

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the websocket servers and the REST server."""
        for market in self.markets.values():
            await market.start()
        app = web.Application()
        prefix = REST_PREFIX[self.venue]
        mounted = {(r.method.upper(), r.path) for r in self.routes}
        routes = list(self.routes)
        for market in self.markets.values():
            fallback = market.wire.snapshot_route(prefix)
            if (fallback.method, fallback.path) not in mounted:
                routes.append(fallback)
        for route in routes:
            app.router.add_route(route.method.upper(), route.path, self._aiohttp_handler(route))
        runner = self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        handler_factory = runner.server
        if handler_factory is None:
            raise RuntimeError(f"sim {self.venue}: aiohttp runner has no server after setup")
        reads = self._reads
        self._rest_server = await asyncio.get_running_loop().create_server(
            lambda: _StampingProtocol(handler_factory(), reads, self), HOST, self.ports.rest
        )
        self.rest_port = self._rest_server.sockets[0].getsockname()[1]
        if any(name.is_futures for name in self.exchanges):
            self._funding = asyncio.get_running_loop().create_task(self._settle_funding(), name=f"sim {self.venue} funding")

    async def stop(self) -> None:
        """Close every server and connection."""
        funding, self._funding = self._funding, None
        if funding is not None:
            funding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await funding
        for market in self.markets.values():
            await market.stop()
        server, self._rest_server = self._rest_server, None
        if server is not None:
            server.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> SimulatedVenue:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def urls(self) -> VenueUrls:
        """Base URLs for the connectors (REST bases include the venue's path prefix)."""
        rest = f"http://{HOST}:{self.rest_port}{REST_PREFIX[self.venue]}"
        spot, futures = _venue_markets(self.venue)
        return VenueUrls(
            rest_url=rest, ws_url=self.markets[spot].url, futures_rest_url=rest, futures_ws_url=self.markets[futures].url
        )

    # --- market data ----------------------------------------------------------------------------

    def publish(self, update: BookUpdate) -> None:
        """Push a sequenced book change of one of this venue's markets."""
        self._published[(update.exchange, update.symbol)] = update.last_update_id
        self.markets[update.exchange].publish(update)

    def inject_stream_fault(self, exchange: ExchangeName, kind: StreamFaultKind, stall_ms: int | None = None) -> None:
        """The market's next pushed book update (one with a subscriber) gets ``kind``."""
        # The plan numbers a key's updates by its on_book_update calls; this server is their only caller.
        self.faults.at_update(exchange.value, self.markets[exchange].offered + 1, kind, stall_ms)

    def drain_private_events(self) -> None:
        """Move every market's private events to ``private_events`` and the hook."""
        for name, exchange in self.exchanges.items():
            events = exchange.drain_events()
            if events:
                self.private_events.extend((name, event) for event in events)
                if self.on_private_events is not None:
                    self.on_private_events(name, events)
                self.markets[name].publish_private(events)

    def _wall_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.faults.clock_skew_ms(self.venue)

    async def _settle_funding(self) -> None:
        """At every whole multiple of the funding interval (venue clock), settle the announced rate
        on every open position of every perpetual (``SimExchange.settle_funding``)."""
        context = self.context
        interval_ms = context.funding_interval_s * 1000
        while True:
            now_ms = self._wall_ms()
            due_ms = now_ms - now_ms % interval_ms + interval_ms
            await asyncio.sleep((due_ms - now_ms) / 1000)
            for exchange in self.exchanges.values():
                for symbol, engine in exchange.engines.items():
                    if engine.is_futures:
                        exchange.settle_funding(symbol, context.funding_rate, due_ms)

    # --- REST -------------------------------------------------------------------------------------

    def _aiohttp_handler(self, route: Route) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            # The read that completed the request (body included), else now.
            received_ns = self._reads.get(request.transport) or time.monotonic_ns()
            url = request.rel_url
            sim_request = SimRequest(
                method=request.method,
                path=url.raw_path,
                query=url.raw_query_string,
                body=body,
                headers={k.lower(): v for k, v in request.headers.items()},
                path_params=dict(request.match_info),
                received_ns=received_ns,
            )
            return await self._answer(request, route, sim_request)

        return handle

    async def _answer(self, request: web.Request, route: Route, sim_request: SimRequest) -> web.StreamResponse:
        self.requests += 1
        self.stamps.requests.append(
            RequestStamp(sim_request.method, sim_request.path, self._client_order_id(sim_request), sim_request.received_ns)
        )
        try:
            response = route.handler(sim_request, self.context)
        except Exception:
            self.handler_errors += 1
            log.exception("sim %s: handler of %s %s raised", self.venue, route.method, route.path)
            response = SimResponse(status=500, body=b'{"message":"simulator handler error"}')
        self._check_published()
        self.drain_private_events()
        if response.delay_ms:
            await asyncio.sleep(response.delay_ms / 1000)
        if response.drop_connection:
            if request.transport is not None:
                request.transport.abort()
            # Nothing can be answered on an aborted socket; aiohttp discards this response.
            return web.Response(status=500)
        return web.Response(status=response.status, body=response.body, headers=dict(response.headers))

    def _client_order_id(self, request: SimRequest) -> str | None:
        if request.method == "GET" or not self._order_keys:
            return None
        fields: dict[str, object] = dict(parse_qsl(request.query))
        body = request.body
        if body[:1] == b"{":
            try:
                document = msgspec.json.decode(body)
            except msgspec.DecodeError:
                document = None
            if isinstance(document, dict):
                fields.update(document)
        elif body:
            fields.update(parse_qsl(body.decode("utf-8", "replace")))
        for key in self._order_keys:
            value = fields.get(key)
            if isinstance(value, str):
                return value
        return None

    def _check_published(self) -> None:
        # A handler that changed a book without going through place_order/cancel_order left a
        # change the streams never saw; clients find out by a gap. Counted, not hidden.
        for name, exchange in self.exchanges.items():
            for symbol, engine in exchange.engines.items():
                last = engine.book.last_update_id
                if self._published.get((name, symbol), last) != last:
                    self.bypassed_updates += 1
                    self._published[(name, symbol)] = last


# --- market feeds ----------------------------------------------------------------------------


class SyntheticFeed:
    """Steps seeded ``SyntheticMarket``s on a fixed simulated tick and pushes their updates.

    Simulated time advances in whole ticks to catch up with the monotonic clock, so the
    sequence of updates depends only on the seeds, never on scheduling jitter. ``start_ns``
    is the monotonic time of simulated time 0 (default: when ``run`` starts); copies of one
    feed in several processes, given the same start, move their books in step.
    """

    def __init__(
        self, markets: Sequence[SyntheticMarket], venues: Iterable[SimulatedVenue], *, tick_ns: int = 1_000_000,
        max_ticks_per_wakeup: int = 100, start_ns: int | None = None,
    ) -> None:
        if tick_ns < 1 or max_ticks_per_wakeup < 1:
            raise ValueError("synthetic feed: tick_ns and max_ticks_per_wakeup must be >= 1")
        self.markets = list(markets)
        self.venues = list(venues)
        self._route = {name: venue for venue in self.venues for name in venue.markets}
        self.tick_ns = tick_ns
        self.max_ticks_per_wakeup = max_ticks_per_wakeup
        self.start_ns = start_ns
        self.sim_ns = 0
        self.updates = 0

    def advance(self, ticks: int = 1) -> int:
        """Step every market ``ticks`` ticks and push what they produced; returns the update count."""
        route = self._route
        count = 0
        for _ in range(ticks):
            self.sim_ns += self.tick_ns
            for market in self.markets:
                for update in market.step(self.sim_ns):
                    venue = route.get(update.exchange)
                    if venue is not None:
                        venue.publish(update)
                    count += 1
        for venue in self.venues:
            venue.drain_private_events()
        self.updates += count
        return count

    async def run(self) -> None:
        """Advance with the monotonic clock until cancelled."""
        start = time.monotonic_ns() if self.start_ns is None else self.start_ns
        while True:
            due = (time.monotonic_ns() - start - self.sim_ns) // self.tick_ns
            if due > 0:
                self.advance(min(due, self.max_ticks_per_wakeup))
            await asyncio.sleep(self.tick_ns / 1e9)


class _Head(msgspec.Struct):
    channel: str = ""
    event: str = ""
    result: msgspec.Raw = msgspec.Raw(b"null")


class _ResultIds(msgspec.Struct):
    s: str = ""
    u: int = 0


class _Version(msgspec.Struct):
    version: int = 0


class _FuturesPush(msgspec.Struct):
    data: _Version = msgspec.field(default_factory=_Version)


_head_decoder = msgspec.json.Decoder(_Head)
_ids_decoder = msgspec.json.Decoder(_ResultIds)
_futures_push_decoder = msgspec.json.Decoder(_FuturesPush)
_WS_KINDS = {RecordKind.WS_TEXT: WSMsgType.TEXT, RecordKind.WS_BINARY: WSMsgType.BINARY}
_MEXC_SPOT_DEPTH = (313, 5)  # publicAggreDepths.toVersion (a decimal string)
_TRUSTED_STEP_NS = 1_000_000_000


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while shift < 64:
        if pos >= len(data):
            raise ValueError("varint runs past the frame")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise ValueError("varint longer than 64 bits")


def _protobuf_bytes(data: bytes, path: tuple[int, ...]) -> bytes | None:
    """The first length-delimited field at ``path`` (field numbers, outermost first), or None."""
    start, end = 0, len(data)
    for number in path:
        pos, found = start, None
        while pos < end and found is None:
            key, pos = _varint(data, pos)
            wire_type = key & 7
            if wire_type == 0:
                pos = _varint(data, pos)[1]
            elif wire_type == 1:
                pos += 8
            elif wire_type == 5:
                pos += 4
            elif wire_type == 2:
                length, pos = _varint(data, pos)
                if key >> 3 == number:
                    found = (pos, pos + length)
                pos += length
            else:
                return None
        if found is None or found[1] > end:
            return None
        start, end = found
    return data[start:end]


def _last_update_id(market: ExchangeName, payload: bytes) -> int:
    """The update id a recorded push ends at (for the latency stamps), 0 when it names none."""
    try:
        if market is ExchangeName.MEXC:
            version = _protobuf_bytes(payload, _MEXC_SPOT_DEPTH)
            return int(version) if version is not None and version.isdigit() else 0
        if market is ExchangeName.MEXC_FUTURES:
            return _futures_push_decoder.decode(payload).data.version
        return _ids_decoder.decode(_head_decoder.decode(payload).result).u
    except (msgspec.DecodeError, ValueError):
        return 0


def recorded_route(record: Record) -> _RawFrame | None:
    """Where a recorded websocket message goes: its stream kind and venue symbol, or None
    (acks, pongs, anything but a book update of a known symbol)."""
    msg_type = _WS_KINDS.get(record.kind)
    if msg_type is None or not record.venue_symbol:
        return None
    market, payload = record.market, record.payload
    if market.venue == "gateio":
        try:
            head = _head_decoder.decode(payload)
        except msgspec.DecodeError:
            return None
        if head.event != "update":
            return None
        kind = head.channel
    else:
        kind = "depth"  # the kind of every MEXC depth topic (``arb.sim.wire``)
    return _RawFrame(kind, record.venue_symbol, _last_update_id(market, payload), msg_type, payload)


def _step_ns(previous: Record, record: Record) -> int:
    """Recording time between two consecutive records: their receive clock, unless the
    records come from different recordings (another process's monotonic clock), then the wall clock."""
    recv = record.recv_ns - previous.recv_ns
    wall = max(0, record.wall_ns - previous.wall_ns)
    return recv if 0 <= recv <= wall + _TRUSTED_STEP_NS else wall


class ReplayFeed:
    """Re-sends recorded messages to subscribers at a chosen speed.

    Reads the recorder's files (``arb.replay.recorder``) and cryptofeed recordings, told
    apart by their first bytes (``arb.replay.reader``). Each recorded book update goes to
    the connections of its market subscribed to its stream and venue symbol, as the frame
    type it arrived in (MEXC spot pushes stay binary); a recorded drop of a market's stream drops
    the connections subscribed to that market's recorded streams at its time (order and private
    connections stay); recorded REST depth snapshots answer
    the market's snapshot route, the latest one recorded before the replay position (the
    first one before that). ``speed`` 1 is real time (receive-time deltas), 10 ten times
    faster, None as fast as possible. A path naming a rotated recording stands for all its
    parts. Reading stops at the first damage: the records before
    it are replayed, ``damage`` says where, and ``run`` logs it.
    """

    def __init__(self, paths: Iterable[str | os.PathLike[str]], speed: Decimal | int | None = 1) -> None:
        if speed is not None and speed <= 0:
            raise ValueError(f"replay speed {speed!r} must be positive (or None for as fast as possible)")
        self.speed = speed
        reader = read_records(*paths)
        # (recording ns since the first record, market, frame; None: the market's stream dropped there)
        self.frames: list[tuple[int, ExchangeName, _RawFrame | None]] = []
        self._stream_kinds: dict[ExchangeName, set[str]] = {}  # what a recorded drop of a market drops
        self.drops = 0  # recorded stream drops among the frames
        self.snapshots: dict[tuple[ExchangeName, str], list[tuple[int, bytes]]] = {}  # -> [(frames before, body)]
        elapsed = 0
        previous: Record | None = None
        for record in reader:
            if previous is not None:
                elapsed += _step_ns(previous, record)
            previous = record
            if record.kind is RecordKind.REST_SNAPSHOT:
                if record.venue_symbol:
                    key = (record.market, record.venue_symbol)
                    self.snapshots.setdefault(key, []).append((len(self.frames), record.payload))
                continue
            if record.kind is RecordKind.DISCONNECT:
                self.frames.append((elapsed, record.market, None))
                self.drops += 1
                continue
            routed = recorded_route(record)
            if routed is not None:
                self.frames.append((elapsed, record.market, routed))
                self._stream_kinds.setdefault(record.market, set()).add(routed.kind)
        self.records = reader.records
        self.damages: list[RecordingDamaged] = list(reader.damages)  # each damaged recording ends at its damage
        self._route: dict[ExchangeName, SimulatedVenue] = {}
        self.sent = 0

    def attach(self, venues: Iterable[SimulatedVenue]) -> None:
        """Send to these venues' markets (build them with ``listed=symbols()`` and ``rest_routes``)."""
        self._route.update((name, venue) for venue in venues for name in venue.markets)

    def symbols(self) -> dict[ExchangeName, set[str]]:
        """Venue symbols with recorded streams, per market (for ``SimulatedVenue(listed=...)``)."""
        found: dict[ExchangeName, set[str]] = {}
        for _, market, frame in self.frames:
            if frame is not None:
                found.setdefault(market, set()).add(frame.venue_symbol)
        return found

    def snapshot_routes(self, venue: str) -> list[Route]:
        """Routes answering the recorded depth snapshots of ``venue``'s markets."""
        prefix = REST_PREFIX[venue]
        routes = []
        for name in _venue_markets(venue):
            wire_route = WIRES[name]([]).snapshot_route(prefix)
            routes.append(Route(wire_route.method, wire_route.path, self._snapshot_handler(name)))
        return routes

    def rest_routes(self, venue: str) -> list[Route]:
        """The venue's own REST routes (instruments, time, orders), its depth snapshots from the recording."""
        replayed = self.snapshot_routes(venue)
        taken = {(r.method.upper(), r.path) for r in replayed}
        return replayed + [r for r in _venue_rest_routes(venue) if (r.method.upper(), r.path) not in taken]

    def _snapshot_handler(self, name: ExchangeName) -> Callable[[SimRequest, SimContext], SimResponse]:
        def handler(request: SimRequest, context: SimContext) -> SimResponse:
            query = dict(parse_qsl(request.query))
            symbol = (
                query.get("currency_pair") or query.get("contract") or query.get("symbol")
                or request.path_params.get("symbol", "")
            )
            recorded = self.snapshots.get((name, symbol))
            if not recorded:
                return SimResponse(status=400, body=b'{"label":"INVALID_CURRENCY","message":"not recorded"}')
            body = recorded[0][1]
            for position, later in recorded:
                if position > self.sent:
                    break
                body = later
            return SimResponse(status=200, body=body)

        return handler

    async def run(self) -> None:
        """Send every recorded book update when due, then return (logging any damage that ended the recording)."""
        start_ns = time.monotonic_ns()
        factor = None if self.speed is None else Fraction(self.speed)
        for elapsed, market, frame in self.frames:
            if factor is not None:
                due = elapsed / factor
                wait = start_ns + due.numerator // due.denominator - time.monotonic_ns()
                if wait > 0:
                    await asyncio.sleep(wait / 1e9)
            venue = self._route.get(market)
            if venue is not None:
                server = venue.markets[market]
                if frame is None:
                    server.drop_subscribers(self._stream_kinds.get(market, ()))  # as the recorded stream dropped
                else:
                    server.publish_raw(frame)
            self.sent += 1
            if factor is None and self.sent % 256 == 0:
                await asyncio.sleep(0)
        for damage in self.damages:
            log.warning("replay of %d records: a recording stopped at its damage: %s", self.records, damage)
