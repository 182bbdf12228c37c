"""Per-market adapters between the simulator's sockets and each venue's server-side wire format.

``arb.sim.server`` is venue-agnostic: it owns connections, fan-out, faults and stamps. A
``MarketWire`` tells it, for one market, how to answer a connection's control frames (via
the venue's sim session classes), which streams a connection is subscribed to (``Topic``),
how to encode a ``BookUpdate`` for a stream (via the venue's book encoders), how to
corrupt a frame for the MALFORMED fault, and how to answer a REST depth snapshot when the
venue's own ``rest_routes()`` do not provide one.

A topic is ``(kind, venue_symbol, variant)``: Gate ``("spot.order_book_update", "BTC_USDT",
"100")`` (the variant is the depth, which Gate writes into spot pushes), MEXC spot
``("depth", "BTCUSDT", "100ms")`` (the interval names the push channel), MEXC contract
``("depth", "BTC_USDT", "")``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from picows import WSMsgType

from arb_core.wire.common import WireScale

from ..exchanges.gateio import constants as gate
from ..exchanges.gateio.private_sim import FUTURES_PRIVATE, SPOT_PRIVATE, GateioPrivateSimSession
from ..exchanges.gateio.ws_trading_sim import GateioWsApiSimSession
from ..exchanges.gateio.sim import (
    FUTURES as GATE_FUTURES,
    SPOT as GATE_SPOT,
    FuturesBookEncoder,
    GateioSimSession,
    SimMarket as GateSimMarket,
    SpotBookEncoder,
)
from ..exchanges.mexc import constants as mexc
from ..exchanges.mexc.private_sim import MexcPrivateSimSession, listen_key_user
from ..exchanges.mexc.sim import (
    MexcFuturesDepthEncoder,
    MexcFuturesSimSession,
    MexcSpotDepthEncoder,
    MexcSpotSimSession,
)
from ..instruments import Instrument
from ..types import ExchangeName
from .http import Route, SimContext, SimRequest, SimResponse
from .matching import BookUpdate, Fill, MatchingEngine, OrderEvent
from .matching import OrderStatus as SimOrderStatus

Topic = tuple[str, str, str]
"""``(kind, venue_symbol, variant)``: one stream a connection receives."""

OutFrame = tuple[WSMsgType, bytes]

_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY
_DEPTH = "depth"
_SNAPSHOT_DEFAULT_LIMIT = 100
_SNAPSHOT_MAX_LIMIT = 5000


def _text(frames: Iterable[str | bytes]) -> tuple[OutFrame, ...]:
    return tuple((_TEXT, f.encode() if isinstance(f, str) else f) for f in frames)


def _json_error(status: int, body: dict[str, object]) -> SimResponse:
    return SimResponse(status=status, body=msgspec.json.encode(body))


def _query_limit(request: SimRequest, default: int) -> int:
    for key, value in parse_qsl(request.query):
        if key == "limit":
            return int(value) if value.isdigit() and 0 < int(value) <= _SNAPSHOT_MAX_LIMIT else default
    return default


def _query_value(request: SimRequest, name: str) -> str | None:
    for key, value in parse_qsl(request.query):
        if key == name:
            return value
    return None


class MarketWire(ABC):
    """What the serving layer needs to know about one market's wire format."""

    exchange: ExchangeName
    ws_path: str  # path of the real venue's websocket URL, kept in the simulator's URL
    client_order_id_keys: tuple[str, ...]  # request fields naming the client order id

    def __init__(self, instruments: Iterable[Instrument], listed: Iterable[str] = ()) -> None:
        """``listed``: venue symbols served without an instrument (recorded streams being replayed)."""
        self.instruments = {i.venue_symbol: i for i in instruments if i.exchange is self.exchange}
        self.venue_symbols = {i.symbol: i.venue_symbol for i in self.instruments.values()}
        self.listed = frozenset(self.instruments) | frozenset(listed)
        self.context: SimContext | None = None  # set by the venue: private channels need its keys and markets
        self._order_fees: dict[int, int] = {}  # open order id -> fee atoms so far

    def open_session(self, target: str) -> object | None:
        """The session of a connection to ``target`` (path and query); None refuses the handshake."""
        return self.new_session()

    def prepare_private(self, events: Iterable[Fill | OrderEvent]) -> list[tuple[Fill | OrderEvent, int]]:
        """Each event with its order's cumulative fee in atoms (order pushes report it)."""
        fees = self._order_fees
        out: list[tuple[Fill | OrderEvent, int]] = []
        for event in events:
            fee = fees.get(event.order_id, 0)
            if isinstance(event, Fill):
                fee += event.fee_atoms
                fees[event.order_id] = fee
            elif event.status not in (SimOrderStatus.NEW, SimOrderStatus.PARTIALLY_FILLED):
                fees.pop(event.order_id, None)
            out.append((event, fee))
        return out

    def private_frames(self, session: Any, items: list[tuple[Fill | OrderEvent, int]], send_ms: int) -> tuple[OutFrame, ...]:
        """The private pushes ``session`` receives for ``items`` (none where the market has no private stream)."""
        return ()

    @abstractmethod
    def new_session(self) -> object:
        """A fresh per-connection session of the venue's sim session class."""

    @abstractmethod
    def handle(self, session: Any, raw: bytes, now_ms: int) -> tuple[OutFrame, ...]:
        """Answer one client frame with the venue's replies."""

    @abstractmethod
    def topics(self, session: Any) -> frozenset[Topic]:
        """The streams the session is subscribed to now."""

    @abstractmethod
    def encoder(self, topic: Topic) -> Callable[[BookUpdate, MatchingEngine, int], OutFrame]:
        """``(update, engine, send_ms) -> frame`` of one stream (built once per topic)."""

    def first_push(self, topic: Topic, engine: MatchingEngine, send_ms: int) -> OutFrame | None:
        """What a new subscription to ``topic`` is sent first, before any change of the book (None: nothing)."""
        return None

    @abstractmethod
    def malformed(self, payload: bytes) -> bytes:
        """``payload`` corrupted so that it routes to its book but does not decode."""

    @abstractmethod
    def snapshot_route(self, prefix: str) -> Route:
        """A REST depth snapshot route, mounted only when the venue's routes lack one."""

    def engine_of(self, context: SimContext, venue_symbol: str) -> MatchingEngine | None:
        """The engine of a venue symbol in ``context``, or None."""
        instrument = self.instruments.get(venue_symbol)
        exchange = context.exchanges.get(self.exchange)
        if instrument is None or exchange is None:
            return None
        return exchange.engines.get(instrument.symbol)


# --- Gate.io ----------------------------------------------------------------------------


class _GateWire(MarketWire):
    """Gate spot and futures: ``order_book_update`` diffs and ``book_ticker`` pushes (JSON text)."""

    client_order_id_keys = ("text",)
    market: GateSimMarket
    snapshot_path: str
    snapshot_symbol_param: str
    encoder_class: type[SpotBookEncoder] | type[FuturesBookEncoder]

    def scale(self, instrument: Instrument) -> WireScale:
        """The order grid: Gate books may be finer, so pushes on the order grid decode at the book scale."""
        return WireScale(*instrument.wire_scale(), symbol=instrument.venue_symbol)

    def new_session(self) -> GateioSimSession | GateioWsApiSimSession:
        public = GateioSimSession(self.market, self.listed)
        if self.context is None:
            return public
        futures = self.exchange is ExchangeName.GATEIO_FUTURES
        channels = FUTURES_PRIVATE if futures else SPOT_PRIVATE
        # The WS trading API shares the connection with market data and private channels, as at Gate.
        private = GateioPrivateSimSession(public, self.context, self.listed, channels)
        return GateioWsApiSimSession(private, self.context, futures=futures)

    def private_frames(self, session: Any, items: list[tuple[Fill | OrderEvent, int]], send_ms: int) -> tuple[OutFrame, ...]:
        if isinstance(session, GateioWsApiSimSession):
            session = session.inner
        if not isinstance(session, GateioPrivateSimSession):
            return ()
        return _text(session.private_frames(items, send_ms))

    def handle(self, session: Any, raw: bytes, now_ms: int) -> tuple[OutFrame, ...]:
        reply = session.handle(raw, now_ms)
        return _text(reply.frames)

    def topics(self, session: Any) -> frozenset[Topic]:
        return frozenset((s.channel, s.symbol, str(s.depth)) for s in session.subscriptions.values())

    def _book_encoder(self, venue_symbol: str, variant: str, instrument: Instrument) -> Any:
        """The encoder of one subscription's book frames (``variant``: its depth)."""
        depth = int(variant)
        return self.encoder_class(venue_symbol, self.scale(instrument), depth if depth in self.market.intervals else None)

    def encoder(self, topic: Topic) -> Callable[[BookUpdate, MatchingEngine, int], OutFrame]:
        channel, venue_symbol, variant = topic
        encoder = self._book_encoder(venue_symbol, variant, self.instruments[venue_symbol])
        if channel == self.market.book_ticker_channel:

            def ticker(update: BookUpdate, engine: MatchingEngine, send_ms: int) -> OutFrame:
                book = engine.book
                return _TEXT, encoder.book_ticker(update.last_update_id, book.best_bid(), book.best_ask(), send_ms)

            return ticker
        encode = encoder.update_levels

        def diff(update: BookUpdate, engine: MatchingEngine, send_ms: int) -> OutFrame:
            return _TEXT, encode(update.first_update_id, update.last_update_id, update.levels, send_ms)

        return diff

    def first_push(self, topic: Topic, engine: MatchingEngine, send_ms: int) -> OutFrame | None:
        """Gate's first push on a book channel: the book at the subscription's depth, ``full`` (the
        client replaces its book), ``U`` = ``u`` = the book's last update id. None before the book
        has any update (a replay's recorded stream carries its own)."""
        channel, venue_symbol, variant = topic
        book_id = engine.book.last_update_id
        if channel != self.market.book_channel or not book_id:
            return None
        encoder = self._book_encoder(venue_symbol, variant, engine.instrument)
        book = engine.snapshot(encoder.depth)
        return _TEXT, encoder.update(book_id, book_id, book.bids, book.asks, send_ms, full=True)

    def malformed(self, payload: bytes) -> bytes:
        # A non-number update id: still routable (channel and symbol intact), refused by the decoder.
        return payload.replace(b'"u":', b'"u":x', 1)

    def snapshot_route(self, prefix: str) -> Route:
        def order_book(request: SimRequest, context: SimContext) -> SimResponse:
            symbol = _query_value(request, self.snapshot_symbol_param) or ""
            engine = self.engine_of(context, symbol)
            if engine is None:
                return _json_error(400, {"label": "INVALID_CURRENCY", "message": f"unknown {symbol!r}"})
            depth = _query_limit(request, gate.ORDER_BOOK_LIMIT)
            snapshot = engine.snapshot(depth)
            encoder = self.encoder_class(symbol, self.scale(engine.instrument))
            now_ms = context.wall_ms()
            body = encoder.snapshot(snapshot.last_update_id, snapshot.bids, snapshot.asks, now_ms, now_ms)
            return SimResponse(status=200, body=body)

        return Route("GET", prefix + self.snapshot_path, order_book)


class GateioSpotWire(_GateWire):
    """Gate.io spot (``wss://api.gateio.ws/ws/v4/``, ``/api/v4/spot/order_book``)."""

    exchange = ExchangeName.GATEIO
    ws_path = "/ws/v4/"
    market = GATE_SPOT
    snapshot_path = gate.ORDER_BOOK_PATH
    snapshot_symbol_param = "currency_pair"
    encoder_class = SpotBookEncoder


class GateioFuturesWire(_GateWire):
    """Gate.io USDT perpetuals (``wss://fx-ws.gateio.ws/v4/ws/usdt``, ``/api/v4/futures/usdt/order_book``)."""

    exchange = ExchangeName.GATEIO_FUTURES
    ws_path = "/v4/ws/usdt"
    market = GATE_FUTURES
    snapshot_path = gate.FUTURES_ORDER_BOOK_PATH
    snapshot_symbol_param = "contract"
    encoder_class = FuturesBookEncoder


# --- MEXC -------------------------------------------------------------------------------


class MexcSpotWire(MarketWire):
    """MEXC spot: protobuf aggre-depth pushes (BINARY), JSON control replies, ``/api/v3/depth``."""

    exchange = ExchangeName.MEXC
    ws_path = "/ws"
    client_order_id_keys = ("newClientOrderId",)

    def new_session(self) -> MexcSpotSimSession:
        return MexcSpotSimSession(self.listed)

    def open_session(self, target: str) -> object | None:
        """A ``?listenKey=`` connection belongs to the key's user; an unknown or expired key is refused."""
        if self.context is None:
            return self.new_session()
        accepted, user = listen_key_user(self.context, target)
        return MexcPrivateSimSession(self.new_session(), self.context, user) if accepted else None

    def private_frames(self, session: Any, items: list[tuple[Fill | OrderEvent, int]], send_ms: int) -> tuple[OutFrame, ...]:
        if not isinstance(session, MexcPrivateSimSession):
            return ()
        return tuple((_BINARY, frame) for frame in session.private_frames(items, send_ms))

    def handle(self, session: Any, raw: bytes, now_ms: int) -> tuple[OutFrame, ...]:
        return _text(session.handle(raw, now_ms).frames)

    def topics(self, session: Any) -> frozenset[Topic]:
        # topic text: spot@public.aggre.depth.v3.api.pb@<interval>@<symbol>
        return frozenset((_DEPTH, symbol, topic.split("@")[-2]) for topic, symbol in session.topics.items())

    def encoder(self, topic: Topic) -> Callable[[BookUpdate, MatchingEngine, int], OutFrame]:
        push = MexcSpotDepthEncoder(self.instruments[topic[1]], interval=topic[2]).push

        def encode(update: BookUpdate, engine: MatchingEngine, send_ms: int) -> OutFrame:
            return _BINARY, push(update.levels, update.first_update_id, update.last_update_id, send_ms)

        return encode

    def malformed(self, payload: bytes) -> bytes:
        # The push ends with toVersion's digits: a letter there keeps the frame routable but undecodable.
        return payload[:-1] + b"x"

    def snapshot_route(self, prefix: str) -> Route:
        def depth(request: SimRequest, context: SimContext) -> SimResponse:
            symbol = _query_value(request, "symbol") or ""
            engine = self.engine_of(context, symbol)
            if engine is None:
                return _json_error(400, {"code": mexc.WS_BAD_REQUEST_CODE, "msg": f"Invalid symbol {symbol!r}"})
            snapshot = engine.snapshot(_query_limit(request, _SNAPSHOT_DEFAULT_LIMIT))
            encoder = MexcSpotDepthEncoder(engine.instrument)
            body = encoder.snapshot(snapshot.bids, snapshot.asks, snapshot.last_update_id, context.wall_ms())
            return SimResponse(status=200, body=body)

        return Route("GET", prefix + mexc.DEPTH_PATH, depth)


class MexcFuturesWire(MarketWire):
    """MEXC contract: JSON ``push.depth`` (TEXT), ``/api/v1/contract/depth/{symbol}``."""

    exchange = ExchangeName.MEXC_FUTURES
    ws_path = "/edge"
    client_order_id_keys = ("externalOid",)

    def new_session(self) -> MexcFuturesSimSession:
        return MexcFuturesSimSession(self.listed)

    def handle(self, session: Any, raw: bytes, now_ms: int) -> tuple[OutFrame, ...]:
        return _text(session.handle(raw, now_ms).frames)

    def topics(self, session: Any) -> frozenset[Topic]:
        return frozenset((_DEPTH, symbol, "") for symbol in session.subscriptions)

    def encoder(self, topic: Topic) -> Callable[[BookUpdate, MatchingEngine, int], OutFrame]:
        push = MexcFuturesDepthEncoder(self.instruments[topic[1]]).push

        def encode(update: BookUpdate, engine: MatchingEngine, send_ms: int) -> OutFrame:
            # One version per push: the market's engine takes one id per change (``ONE_ID_PER_CHANGE``).
            return _TEXT, push(update.levels, update.last_update_id, send_ms).encode()

        return encode

    def malformed(self, payload: bytes) -> bytes:
        return payload.replace(b'"version":', b'"version":-', 1)

    def snapshot_route(self, prefix: str) -> Route:
        def depth(request: SimRequest, context: SimContext) -> SimResponse:
            symbol = request.path_params.get("symbol", "")
            engine = self.engine_of(context, symbol)
            if engine is None:
                return _json_error(200, {"success": False, "code": 1001, "message": f"contract {symbol!r} not exists"})
            snapshot = engine.snapshot(_query_limit(request, _SNAPSHOT_DEFAULT_LIMIT))
            encoder = MexcFuturesDepthEncoder(engine.instrument)
            body = encoder.snapshot(snapshot.bids, snapshot.asks, snapshot.last_update_id, context.wall_ms())
            return SimResponse(status=200, body=body)

        return Route("GET", prefix + mexc.CONTRACT_DEPTH_PATH, depth)


WIRES: Mapping[ExchangeName, type[MarketWire]] = {
    ExchangeName.GATEIO: GateioSpotWire,
    ExchangeName.GATEIO_FUTURES: GateioFuturesWire,
    ExchangeName.MEXC: MexcSpotWire,
    ExchangeName.MEXC_FUTURES: MexcFuturesWire,
}

REST_PREFIX: Mapping[str, str] = {gate.VENUE: gate.API_PREFIX, "mexc": ""}
"""The part of each venue's REST base URL that is a path (Gate signs ``/api/v4/...``)."""
