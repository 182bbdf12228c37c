"""The server side of Gate.io's market-data wire format, for the simulated venues (no I/O here).

``GateioSimSession`` answers one connection's client frames (subscribe, unsubscribe, ping)
the way Gate does, errors included. ``SpotBookEncoder`` / ``FuturesBookEncoder`` turn integer
book levels of one symbol into ``order_book_update`` pushes, ``book_ticker`` pushes and REST
snapshot bodies, key for key in the order of Gate's recorded frames::

    {"time":1606294781,"time_ms":1606294781236,"channel":"spot.order_book_update","event":"update",
     "result":{"t":1606294781123,"full":true,"l":"100","e":"depthUpdate","E":1606294781,"s":"BTC_USDT",
               "U":48776301,"u":48776306,"b":[["19137.74","0.0001"]],"a":[["19137.75","0.6135"]]}}
    {"time":1684930166,"time_ms":1684930166366,"channel":"futures.order_book_update","event":"update",
     "result":{"U":203083273,"a":[{"p":"0.3036","s":2016}],"b":[],"s":"RDNT_USDT","t":1684930166326,"u":203083287}}

Levels are ``(price_ticks, size_lots)`` pairs in the BOOK scale (``market_data.book_scale``),
best first; numbers are written as Gate writes them: plain decimals without exponent or
trailing zeros. Pushes are built from precomputed byte fragments, a cache of price fragments
(a book revisits its prices) and sizes written straight from their integers (sizes rarely
repeat), not ``json.dumps``: the simulator must sustain tens of thousands of pushes per second.
"""

from __future__ import annotations

import decimal
import hmac
import urllib.parse
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import ClassVar, NamedTuple

import msgspec

from arb_core.book import ASK, BID
from arb_core.wire.common import WireScale

from ...instruments import Instrument
from ...sim.faults import OrderFaultKind
from ...sim.http import Handler, Route, SimContext, SimRequest, SimResponse
from ...sim.matching import MatchingEngine, OrderEvent, OrderRejected, PlaceResult, SimExchange, from_atoms, to_atoms
from ...sim.matching import OrderStatus as SimOrderStatus
from ...sim.matching import OrderType as SimOrderType
from ...sim.matching import TimeInForce as SimTimeInForce
from ...sim.ratelimit import VenueRateLimit
from ...types import ExchangeName, OrderSide
from ..errors import ErrorCategory
from . import constants
from .auth import GateioSigner
from .schemas import WsRequest

Level = tuple[int, int]  # (price_ticks, size_lots)

_CACHE_LIMIT = 1 << 16  # prices cached before the cache is emptied (a random walk keeps making new ones)

_request_decoder = msgspec.json.Decoder(WsRequest)
_payload_decoder = msgspec.json.Decoder(list[str])
_encode = msgspec.json.Encoder().encode


class SimMarket(msgspec.Struct, frozen=True, kw_only=True):
    """What differs between Gate's spot and futures streams on the server side: data only."""

    book_channel: str
    book_ticker_channel: str
    ping_channel: str
    pong_channel: str
    intervals: dict[int, str]  # depth -> interval
    level_in_payload: bool  # futures: [contract, interval, level]
    default_depth: int


SPOT = SimMarket(
    book_channel=constants.SPOT_ORDER_BOOK_UPDATE_CHANNEL,
    book_ticker_channel=constants.SPOT_BOOK_TICKER_CHANNEL,
    ping_channel=constants.SPOT_PING_CHANNEL,
    pong_channel=constants.SPOT_PONG_CHANNEL,
    intervals=dict(constants.SPOT_BOOK_INTERVALS),
    level_in_payload=False,
    default_depth=constants.ORDER_BOOK_LIMIT,
)
FUTURES = SimMarket(
    book_channel=constants.FUTURES_ORDER_BOOK_UPDATE_CHANNEL,
    book_ticker_channel=constants.FUTURES_BOOK_TICKER_CHANNEL,
    ping_channel=constants.FUTURES_PING_CHANNEL,
    pong_channel=constants.FUTURES_PONG_CHANNEL,
    intervals=dict(constants.FUTURES_BOOK_INTERVALS),
    level_in_payload=True,
    default_depth=constants.FUTURES_DEFAULT_BOOK_LEVEL,
)


# --- client requests ------------------------------------------------------------------


class Subscription(NamedTuple):
    """One channel of one symbol on one connection; ``depth`` is the levels per book push."""

    channel: str
    symbol: str
    depth: int
    interval: str


class SessionReply(NamedTuple):
    """What answering one client frame produced: frames to send back and subscription changes."""

    frames: tuple[bytes, ...]
    subscribed: tuple[Subscription, ...] = ()
    unsubscribed: tuple[Subscription, ...] = ()


class _Refusal(Exception):
    """A request Gate refuses: error code and message of the reply."""

    def __init__(self, code: int, detail: str = "", *, verbatim: bool = False) -> None:
        base = constants.WS_ERROR_MESSAGES[code]
        super().__init__(detail if verbatim else f"{base}: {detail}" if detail else base)
        self.code = code


class GateioSimSession:
    """One client connection's subscriptions and Gate's replies to its frames.

    ``symbols`` are the venue symbols the simulated market lists; ``handle`` takes the raw
    text of one client frame and the server clock in ms.
    """

    __slots__ = ("market", "symbols", "subscriptions")

    def __init__(self, market: SimMarket, symbols: Collection[str]) -> None:
        self.market = market
        self.symbols = frozenset(symbols)
        self.subscriptions: dict[tuple[str, str], Subscription] = {}

    def handle(self, raw: bytes | str, now_ms: int) -> SessionReply:
        """Answer one client frame: an ack, a pong or an error reply (never raises on bad input)."""
        try:
            request = _request_decoder.decode(raw)
        except msgspec.DecodeError as exc:
            error = _Refusal(constants.WS_ERROR_BAD_REQUEST, str(exc))
            return SessionReply((encode_error("", "", None, None, error.code, str(error), now_ms),))
        payload: list[str] | None = None
        try:
            if request.channel == self.market.ping_channel:
                return SessionReply((encode_pong(self.market, now_ms),))
            if request.channel not in (self.market.book_channel, self.market.book_ticker_channel):
                raise _Refusal(constants.WS_ERROR_BAD_ARGUMENT, f"unknown channel {request.channel!r}")
            payload = self._payload(request)
            wanted = self._parse_payload(request.channel, payload)
            if request.event == constants.EVENT_SUBSCRIBE:
                for sub in wanted:
                    if (sub.channel, sub.symbol) in self.subscriptions:
                        raise _Refusal(
                            constants.WS_ERROR_BAD_ARGUMENT,
                            constants.WS_DUPLICATE_SUBSCRIPTION_MESSAGE.format(payload=sub.symbol),
                            verbatim=True,
                        )
                for sub in wanted:
                    self.subscriptions[(sub.channel, sub.symbol)] = sub
                return SessionReply((self._ack(request, payload, now_ms),), subscribed=wanted)
            if request.event == constants.EVENT_UNSUBSCRIBE:
                # unsubscribing what is not subscribed is accepted, like Gate does
                gone = tuple(
                    s for s in (self.subscriptions.pop((w.channel, w.symbol), None) for w in wanted) if s is not None
                )
                return SessionReply((self._ack(request, payload, now_ms),), unsubscribed=gone)
            raise _Refusal(constants.WS_ERROR_BAD_REQUEST, f"unknown event {request.event!r}")
        except _Refusal as error:
            frame = encode_error(request.channel, request.event, request.id, payload, error.code, str(error), now_ms)
            return SessionReply((frame,))

    @staticmethod
    def _payload(request: WsRequest) -> list[str]:
        try:
            return _payload_decoder.decode(request.payload)
        except msgspec.DecodeError as exc:
            raise _Refusal(constants.WS_ERROR_BAD_REQUEST, f"payload: {exc}") from None

    def _parse_payload(self, channel: str, payload: list[str]) -> tuple[Subscription, ...]:
        market = self.market
        if channel == market.book_ticker_channel:
            if not payload:
                raise _Refusal(constants.WS_ERROR_BAD_ARGUMENT, "payload names no symbol")
            return tuple(Subscription(channel, self._symbol(s), 1, "") for s in payload)
        arity = (2, 3) if market.level_in_payload else (2,)
        if len(payload) not in arity:
            shape = "[symbol, interval, level]" if market.level_in_payload else "[symbol, interval]"
            raise _Refusal(constants.WS_ERROR_BAD_ARGUMENT, f"payload {payload} is not {shape}")
        symbol, interval = self._symbol(payload[0]), payload[1]
        if market.level_in_payload:
            level = payload[2] if len(payload) == 3 else str(market.default_depth)
            depth = int(level) if level.isdigit() else -1
            # the fast interval is tied to its level ("20ms" only with "20"); the default one fits all
            if depth not in market.intervals or interval not in (
                market.intervals[depth],
                market.intervals[market.default_depth],
            ):
                raise _Refusal(constants.WS_ERROR_BAD_ARGUMENT, f"interval {interval!r} with level {level!r}")
        else:
            depth = next((d for d, i in market.intervals.items() if i == interval), -1)
            if depth < 0:
                raise _Refusal(constants.WS_ERROR_BAD_ARGUMENT, f"interval {interval!r}")
        return (Subscription(channel, symbol, depth, interval),)

    def _symbol(self, symbol: str) -> str:
        if symbol not in self.symbols:
            raise _Refusal(constants.WS_ERROR_BAD_ARGUMENT, f"unknown symbol {symbol!r}")
        return symbol

    @staticmethod
    def _ack(request: WsRequest, payload: list[str], now_ms: int) -> bytes:
        reply: dict[str, object] = {"time": now_ms // 1000, "time_ms": now_ms}
        if request.id is not None:
            reply["id"] = request.id
        reply.update(
            channel=request.channel,
            event=request.event,
            payload=payload,
            result={"status": constants.WS_STATUS_SUCCESS},
        )
        return _encode(reply)


def encode_error(
    channel: str,
    event: str,
    request_id: int | None,
    payload: Sequence[str] | None,
    code: int,
    message: str,
    now_ms: int,
) -> bytes:
    """A refused request's reply: ``{..., "error":{"code":2,"message":"..."},"result":{"status":"fail"}}``."""
    reply: dict[str, object] = {"time": now_ms // 1000, "time_ms": now_ms}
    if request_id is not None:
        reply["id"] = request_id
    reply.update(channel=channel, event=event)
    if payload is not None:
        reply["payload"] = list(payload)
    reply.update(error={"code": code, "message": message}, result={"status": constants.WS_STATUS_FAIL})
    return _encode(reply)


def encode_pong(market: SimMarket, now_ms: int) -> bytes:
    """``{"time":s,"channel":"spot.pong","event":"","error":null,"result":null}``."""
    return b'{"time":%d,"channel":"%s","event":"","error":null,"result":null}' % (
        now_ms // 1000,
        market.pong_channel.encode(),
    )


# --- pushes and snapshots --------------------------------------------------------------


def plain_decimal(units: int, decimals: int) -> str:
    """``units * 10**-decimals`` as Gate writes numbers: ``"0.0018734"``, ``"54742"``, ``"0"``."""
    if decimals == 0:
        return str(units)
    whole, frac = divmod(units, 10**decimals)
    if not frac:
        return str(whole)
    return f"{whole}.{frac:0{decimals}d}".rstrip("0")


def _seconds(ms: int) -> bytes:
    """Milliseconds as JSON seconds with the ms fraction (futures REST ``current``/``update``)."""
    whole, frac = divmod(ms, 1000)
    text = f"{whole}.{frac:03d}".rstrip("0")
    return (text + "0" if text.endswith(".") else text).encode()


class _BookEncoder(ABC):
    """Pushes and snapshots of one symbol; subclasses declare the market's templates and key order."""

    market: ClassVar[SimMarket]
    size_tail: ClassVar[bytes]  # what follows a size in a pushed level
    __slots__ = (
        "symbol", "scale", "depth", "_prices", "_update", "_full", "_ticker", "_lot_units", "_size_unit", "_size_format"
    )

    def __init__(self, symbol: str, scale: WireScale, depth: int | None = None) -> None:
        if depth is None:
            depth = self.market.default_depth
        if depth not in self.market.intervals:
            raise ValueError(f"gateio sim {symbol}: depth={depth!r} is not one of {sorted(self.market.intervals)}")
        if scale.symbol is not None and scale.symbol != symbol.encode():
            raise ValueError(f"gateio sim {symbol}: scale is bound to symbol {scale.symbol!r}")
        self.symbol = symbol
        self.scale = scale
        self.depth = depth
        self._prices: dict[int, bytes] = {}
        # sizes as plain_decimal writes them: whole part, then the zero-padded fraction trimmed
        self._lot_units = scale.lot_units
        self._size_unit = 10**scale.size_decimals
        self._size_format = b"%%d.%%0%dd" % scale.size_decimals
        sym = symbol.encode()
        self._update = self._update_template(sym, depth)
        self._full = b""
        self._ticker = self._ticker_template(sym)

    @abstractmethod
    def _update_template(self, symbol: bytes, depth: int) -> bytes:
        """Subclass data."""

    @abstractmethod
    def _ticker_template(self, symbol: bytes) -> bytes:
        """Subclass data."""

    def _price_text(self, ticks: int) -> bytes:
        if type(ticks) is not int or ticks <= 0:
            raise ValueError(f"gateio sim {self.symbol}: price_ticks={ticks!r} must be a positive int")
        return plain_decimal(ticks * self.scale.tick_units, self.scale.price_decimals).encode()

    def _size_text(self, lots: int) -> bytes:
        if type(lots) is not int or lots < 0:
            raise ValueError(f"gateio sim {self.symbol}: size_lots={lots!r} must be an int >= 0")
        whole, frac = divmod(lots * self._lot_units, self._size_unit)
        return (self._size_format % (whole, frac)).rstrip(b"0") if frac else b"%d" % whole

    @abstractmethod
    def _price_fragment(self, text: bytes) -> bytes:
        """Subclass data."""

    def _price_item(self, ticks: int) -> bytes:
        prices = self._prices
        if len(prices) >= _CACHE_LIMIT:
            prices.clear()
        fragment = prices[ticks] = self._price_fragment(self._price_text(ticks))
        return fragment

    def levels(self, levels: Sequence[Level]) -> bytes:
        """The JSON array body (without brackets) of ``levels``."""
        prices = self._prices
        tail = self.size_tail
        items: list[bytes] = []
        for level in levels:
            if len(level) != 2:
                raise ValueError(f"gateio sim {self.symbol}: level {level!r} is not (price_ticks, size_lots)")
            price, size = level
            items.append((prices.get(price) or self._price_item(price)) + self._size_text(size) + tail)
        return b",".join(items)

    def update(
        self,
        first_id: int,
        last_id: int,
        bids: Sequence[Level],
        asks: Sequence[Level],
        event_ms: int,
        *,
        full: bool = False,
        send_ms: int | None = None,
    ) -> bytes:
        """An ``order_book_update`` push: ids ``U``/``u``, changed levels (size 0 deletes) or, with
        ``full``, the whole book (``full`` marks it so the client replaces its book)."""
        if not 0 < first_id <= last_id:
            raise ValueError(f"gateio sim {self.symbol}: ids U={first_id!r} u={last_id!r} need 0 < U <= u")
        time_ms = event_ms if send_ms is None else send_ms
        return self._update % self._update_values(
            time_ms, event_ms, first_id, last_id, self.levels(bids), self.levels(asks), full
        )

    def update_levels(self, first_id: int, last_id: int, levels: Iterable[tuple[int, int, int]], event_ms: int) -> bytes:
        """``update`` of side-tagged ``(side, price_ticks, size_lots)`` changes (``BookUpdate.levels``),
        each side keeping the given order: the serving layer's hot path, one pass, no per-level calls."""
        if not 0 < first_id <= last_id:
            raise ValueError(f"gateio sim {self.symbol}: ids U={first_id!r} u={last_id!r} need 0 < U <= u")
        prices = self._prices
        tail = self.size_tail
        units, unit, size_format = self._lot_units, self._size_unit, self._size_format
        bids: list[bytes] = []
        asks: list[bytes] = []
        for side, price, size in levels:
            fragment = prices.get(price) or self._price_item(price)
            if type(size) is int and size >= 0:
                whole, frac = divmod(size * units, unit)
                text = (size_format % (whole, frac)).rstrip(b"0") if frac else b"%d" % whole
            else:
                text = self._size_text(size)  # raises
            if side == BID:
                bids.append(fragment + text + tail)
            elif side == ASK:
                asks.append(fragment + text + tail)
            else:
                raise ValueError(f"gateio sim {self.symbol}: side {side!r} is neither BID ({BID}) nor ASK ({ASK})")
        return self._update % self._update_values(
            event_ms, event_ms, first_id, last_id, b",".join(bids), b",".join(asks), False
        )

    @abstractmethod
    def _update_values(
        self, time_ms: int, event_ms: int, first: int, last: int, bids: bytes, asks: bytes, full: bool
    ) -> tuple[int | bytes, ...]:
        """The update template's values, in the market's key order."""

    @abstractmethod
    def snapshot(
        self, book_id: int, bids: Sequence[Level], asks: Sequence[Level], now_ms: int, update_ms: int
    ) -> bytes:
        """The REST ``order_book?with_id=true`` body: ``book_id`` is the last update id it contains."""

    def book_ticker(
        self, update_id: int, bid: Level | None, ask: Level | None, event_ms: int, *, send_ms: int | None = None
    ) -> bytes:
        """A ``book_ticker`` push of the best bid and ask (an empty side is ``""`` and size 0)."""
        time_ms = event_ms if send_ms is None else send_ms
        bp, bs = self._ticker_side(bid)
        ap, az = self._ticker_side(ask)
        return self._ticker % (time_ms // 1000, time_ms, event_ms, update_id, bp, bs, ap, az)

    def _ticker_side(self, level: Level | None) -> tuple[bytes, bytes]:
        if level is None:
            return b"", b"0"
        return self._price_text(level[0]), self._size_text(level[1])


class SpotBookEncoder(_BookEncoder):
    """``spot.order_book_update`` / ``spot.book_ticker`` pushes and ``/spot/order_book`` bodies of one pair.

    Levels are ``["price","amount"]``; the REST body is ``{"id","current","update","asks","bids"}``.
    """

    market = SPOT
    __slots__ = ()

    def _update_template(self, symbol: bytes, depth: int) -> bytes:
        head = b'{"time":%%d,"time_ms":%%d,"channel":"%s","event":"update","result":{"t":%%d,%%s"l":"%d","e":"%s",' % (
            self.market.book_channel.encode(),
            depth,
            constants.SPOT_DEPTH_EVENT.encode(),
        )
        return head + b'"E":%%d,"s":"%s","U":%%d,"u":%%d,"b":[%%s],"a":[%%s]}}' % symbol

    def _ticker_template(self, symbol: bytes) -> bytes:
        return (
            b'{"time":%%d,"time_ms":%%d,"channel":"%s","event":"update",'
            b'"result":{"t":%%d,"u":%%d,"s":"%s","b":"%%s","B":"%%s","a":"%%s","A":"%%s"}}'
            % (self.market.book_ticker_channel.encode(), symbol)
        )

    size_tail = b'"]'

    def _price_fragment(self, text: bytes) -> bytes:
        return b'["' + text + b'","'

    def _update_values(
        self, time_ms: int, event_ms: int, first: int, last: int, bids: bytes, asks: bytes, full: bool
    ) -> tuple[int | bytes, ...]:
        full_field = b'"full":true,' if full else b""
        return (time_ms // 1000, time_ms, event_ms, full_field, event_ms // 1000, first, last, bids, asks)

    def snapshot(
        self, book_id: int, bids: Sequence[Level], asks: Sequence[Level], now_ms: int, update_ms: int
    ) -> bytes:
        """``{"id":123,"current":ms,"update":ms,"asks":[["p","q"],...],"bids":[...]}``."""
        return b'{"id":%d,"current":%d,"update":%d,"asks":[%s],"bids":[%s]}' % (
            book_id,
            now_ms,
            update_ms,
            self.levels(asks),
            self.levels(bids),
        )


class FuturesBookEncoder(_BookEncoder):
    """``futures.order_book_update`` / ``futures.book_ticker`` pushes and ``/futures/usdt/order_book``
    bodies of one contract. Sizes are whole contracts written as JSON integers.

    The result keys follow the 2023 recording (alphabetical: ``U a b s t u``); a full push adds
    ``"full":true`` in that order. The REST levels are ``{"s":int,"p":"str"}`` as recorded.
    """

    market = FUTURES
    __slots__ = ()

    def __init__(self, symbol: str, scale: WireScale, depth: int | None = None) -> None:
        if scale.size_decimals != 0:
            raise ValueError(
                f"gateio sim {symbol}: futures sizes are whole contracts, scale has size_decimals={scale.size_decimals}"
            )
        super().__init__(symbol, scale, depth)

    def _update_template(self, symbol: bytes, depth: int) -> bytes:
        return (
            b'{"time":%%d,"time_ms":%%d,"channel":"%s","event":"update",'
            b'"result":{"U":%%d,"a":[%%s],"b":[%%s],%%s"s":"%s","t":%%d,"u":%%d}}'
            % (self.market.book_channel.encode(), symbol)
        )

    def _ticker_template(self, symbol: bytes) -> bytes:
        return (
            b'{"time":%%d,"time_ms":%%d,"channel":"%s","event":"update",'
            b'"result":{"t":%%d,"u":%%d,"s":"%s","b":"%%s","B":%%s,"a":"%%s","A":%%s}}'
            % (self.market.book_ticker_channel.encode(), symbol)
        )

    size_tail = b"}"

    def _price_fragment(self, text: bytes) -> bytes:
        return b'{"p":"' + text + b'","s":'

    def _update_values(
        self, time_ms: int, event_ms: int, first: int, last: int, bids: bytes, asks: bytes, full: bool
    ) -> tuple[int | bytes, ...]:
        full_field = b'"full":true,' if full else b""
        return (time_ms // 1000, time_ms, first, asks, bids, full_field, event_ms, last)

    def snapshot(
        self, book_id: int, bids: Sequence[Level], asks: Sequence[Level], now_ms: int, update_ms: int
    ) -> bytes:
        """``{"current":s.ms,"update":s.ms,"asks":[{"s":803,"p":"0.2974"},...],"bids":[...],"id":123}``."""
        return b'{"current":%s,"update":%s,"asks":[%s],"bids":[%s],"id":%d}' % (
            _seconds(now_ms),
            _seconds(update_ms),
            self._rest_levels(asks),
            self._rest_levels(bids),
            book_id,
        )

    def _rest_levels(self, levels: Sequence[Level]) -> bytes:
        # snapshots are rare: no fragment cache for the REST key order
        parts = []
        for price, size in levels:
            parts.append(b'{"s":%s,"p":"%s"}' % (self._size_text(size), self._price_text(price)))
        return b",".join(parts)


# --- REST -------------------------------------------------------------------------------
# Handlers of the simulated REST API (``rest_routes``). Private requests are verified as
# Gate does (KEY known, Timestamp within 60 s, SIGN over the five-line string); the user of
# the matching engine is the api key. Order bodies are read with the engine's own
# tick/lot conversion, so a price or amount off the order grid is INVALID_PRECISION.
# Orders carry their ``text`` as the engine's client id.


class _GateRefusal(Exception):
    """A request Gate answers with an error body: label, HTTP status, message, extra headers."""

    def __init__(self, label: str, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.label = label
        self.status = status
        self.headers = headers

    @classmethod
    def of(cls, error: tuple[str, int, str], detail: str = "") -> _GateRefusal:
        label, status, message = error
        return cls(label, status, f"{message}: {detail}" if detail else message)

    def response(self) -> SimResponse:
        body = _encode({"label": self.label, "message": str(self)})
        return SimResponse(status=self.status, body=body, headers=(("Content-Type", "application/json"), *self.headers))


_PrivateHandler = Callable[[SimRequest, SimContext, str], SimResponse]
_MARKET_TIF = {"ioc": SimTimeInForce.IOC, "fok": SimTimeInForce.FOK}
_TIF = {"gtc": SimTimeInForce.GTC, "poc": SimTimeInForce.POST_ONLY, **_MARKET_TIF}
_SIDES = {"buy": OrderSide.BUY, "sell": OrderSide.SELL}
_PPM = 1_000_000
_QUOTE_EXACT = decimal.Context(prec=40)
_MAINTENANCE_RATE = Decimal("0.005")  # every simulated contract's maintenance margin rate

# Gate's order rate limits as its docs state them [GT rate_limits.md], not the connector's
# budgets: spot placement 10 a second per user and currency pair, futures placement 100 a
# second, cancels 200 a second, other private endpoints (an order's read) 200 in 10 s. Over
# the websocket API futures cancels count with placement ("a total of 100r/s") and reads
# have no limit.
SPOT_PLACE_LIMIT = VenueRateLimit("gateio spot order place", 10, 1_000)
SPOT_CANCEL_LIMIT = VenueRateLimit("gateio spot order cancel", 200, 1_000)
SPOT_ORDER_READ_LIMIT = VenueRateLimit("gateio GET " + constants.ORDER_PATH, 200, 10_000)
FUTURES_PLACE_LIMIT = VenueRateLimit("gateio futures order place", 100, 1_000)
FUTURES_CANCEL_LIMIT = VenueRateLimit("gateio futures order cancel", 200, 1_000)
FUTURES_ORDER_READ_LIMIT = VenueRateLimit("gateio GET " + constants.FUTURES_ORDER_PATH, 200, 10_000)
RateLimitHeaders = tuple[tuple[str, str], ...]


def rest_routes() -> list[Route]:
    """Every REST endpoint of the simulated Gate venue; paths include ``/api/v4`` as requests send it."""
    p = constants.API_PREFIX
    c = constants
    return [
        Route("GET", p + c.SERVER_TIME_PATH, _server_time),
        Route("GET", p + c.ORDER_BOOK_PATH, _spot_order_book),
        Route("GET", p + c.FUTURES_ORDER_BOOK_PATH, _futures_order_book),
        Route("GET", p + c.CURRENCY_PAIRS_PATH, _currency_pairs),
        Route("GET", p + c.CURRENCY_PAIR_PATH, _currency_pair),
        Route("GET", p + c.FUTURES_CONTRACTS_PATH, _contracts),
        Route("GET", p + c.FUTURES_CONTRACT_PATH, _contract),
        Route("POST", p + c.ORDERS_PATH, _private(_spot_place)),
        Route("GET", p + c.ORDERS_PATH, _private(_spot_list)),
        Route("GET", p + c.ORDER_PATH, _private(_spot_get)),
        Route("DELETE", p + c.ORDER_PATH, _private(_spot_cancel)),
        Route("GET", p + c.OPEN_ORDERS_PATH, _private(_spot_open_orders)),
        Route("GET", p + c.ACCOUNTS_PATH, _private(_spot_accounts)),
        Route("GET", p + c.FEE_PATH, _private(_spot_fee)),
        Route("POST", p + c.FUTURES_ORDERS_PATH, _private(_futures_place)),
        Route("GET", p + c.FUTURES_ORDERS_PATH, _private(_futures_list)),
        Route("GET", p + c.FUTURES_ORDER_PATH, _private(_futures_get)),
        Route("DELETE", p + c.FUTURES_ORDER_PATH, _private(_futures_cancel)),
        Route("GET", p + c.FUTURES_ACCOUNTS_PATH, _private(_futures_account)),
        Route("GET", p + c.FUTURES_POSITIONS_PATH, _private(_futures_positions)),
        Route("GET", p + c.FUTURES_ACCOUNT_BOOK_PATH, _private(_futures_account_book)),
    ]


def _json(doc: object, headers: RateLimitHeaders = ()) -> SimResponse:
    return SimResponse(status=200, body=_encode(doc), headers=(("Content-Type", "application/json"), *headers))


def spend_rate_limit(ctx: SimContext, budget: VenueRateLimit, key: tuple[object, ...]) -> RateLimitHeaders:
    """Spend one request of ``budget`` for ``key``: the answer's ``X-Gate-RateLimit-*`` headers (the
    reset time is now while the budget has room). Past the limit, raises Gate's 429
    ``TOO_MANY_REQUESTS`` with the same headers, the reset time when the window takes one again
    (Gate sends no Retry-After)."""
    admission = ctx.rate_limits.spend(budget, key, ctx.now_ns())
    reset_ms = ctx.wall_ms() + -(-admission.wait_ns // 1_000_000)
    headers = (
        (constants.RATE_LIMIT_REMAIN_HEADER, str(admission.remaining)),
        (constants.RATE_LIMIT_LIMIT_HEADER, str(admission.limit)),
        (constants.RATE_LIMIT_RESET_HEADER, str(reset_ms)),
    )
    if not admission.admitted:
        label, status, message = constants.SPOT_REJECT_LABELS[ErrorCategory.RATE_LIMITED]
        raise _GateRefusal(label, status, message, headers)
    return headers


def spot_place_key(user: str, order: Mapping[str, object]) -> tuple[str, str]:
    """What a spot placement is counted by: its user and the currency pair it names (as text, whatever it is)."""
    return user, str(order.get("currency_pair"))


def _public(handler: Handler) -> Handler:
    def guarded(request: SimRequest, ctx: SimContext) -> SimResponse:
        try:
            return handler(request, ctx)
        except _GateRefusal as refusal:
            return refusal.response()

    return guarded


def _private(handler: _PrivateHandler) -> Handler:
    """Verify the signature as Gate does, then run ``handler`` for the key's user; map refusals."""

    def guarded(request: SimRequest, ctx: SimContext) -> SimResponse:
        try:
            user = _authenticate(request, ctx)
            return handler(request, ctx, user)
        except _GateRefusal as refusal:
            return refusal.response()
        except OrderRejected as rejected:
            return _rejection(rejected.category, str(rejected), _is_futures(request)).response()

    return guarded


def _authenticate(request: SimRequest, ctx: SimContext) -> str:
    headers = request.headers
    key = headers.get(constants.KEY_HEADER.lower())
    timestamp = headers.get(constants.TIMESTAMP_HEADER.lower())
    sign = headers.get(constants.SIGN_HEADER.lower())
    if not key or not timestamp or not sign:
        raise _GateRefusal.of(constants.AUTH_MISSING_HEADER, "KEY, Timestamp and SIGN are required")
    credentials = ctx.credentials.get(key)
    if credentials is None:
        raise _GateRefusal.of(constants.AUTH_INVALID_KEY)
    try:
        sent_s = Decimal(timestamp)
    except decimal.InvalidOperation:
        sent_s = Decimal("NaN")
    if not sent_s.is_finite() or abs(sent_s * 1000 - ctx.wall_ms()) > constants.REQUEST_WINDOW_S * 1000:
        raise _GateRefusal.of(constants.AUTH_REQUEST_EXPIRED, f"Timestamp {timestamp}")
    expected = GateioSigner(credentials).sign_rest(request.method, request.path, request.query, request.body, timestamp)
    if not hmac.compare_digest(expected, sign):
        raise _GateRefusal.of(constants.AUTH_INVALID_SIGNATURE)
    return key


def _is_futures(request: SimRequest) -> bool:
    return request.path.startswith(constants.API_PREFIX + "/futures/")


def _rejection(category: ErrorCategory, detail: str, futures: bool) -> _GateRefusal:
    table = constants.FUTURES_REJECT_LABELS if futures else constants.SPOT_REJECT_LABELS
    return _GateRefusal.of(table[category], detail)


def _invalid(detail: str, label: str = "INVALID_PARAM_VALUE") -> _GateRefusal:
    return _GateRefusal(label, 400, detail)


def _params(request: SimRequest) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(request.query, keep_blank_values=True))


def _required(params: Mapping[str, object], name: str) -> object:
    value = params.get(name)
    if value is None or value == "":
        raise _invalid(f"missing required parameter {name!r}", "MISSING_REQUIRED_PARAM")
    return value


def _exchange(ctx: SimContext, futures: bool) -> SimExchange:
    name = ExchangeName.GATEIO_FUTURES if futures else ExchangeName.GATEIO
    exchange = ctx.exchanges.get(name)
    if exchange is None:
        raise _GateRefusal("NOT_FOUND", 404, f"market {name.value} is not simulated")
    return exchange


def _engine(ctx: SimContext, venue_symbol: object, futures: bool) -> MatchingEngine:
    for engine in _exchange(ctx, futures).engines.values():
        if engine.instrument.venue_symbol == venue_symbol:
            return engine
    if futures:
        raise _GateRefusal("CONTRACT_NOT_FOUND", 400, f"contract {venue_symbol} not found")
    raise _GateRefusal("INVALID_CURRENCY_PAIR", 400, f"invalid currency pair {venue_symbol}")


def _body(request: SimRequest) -> dict[str, object]:
    try:
        doc = msgspec.json.decode(request.body)
    except msgspec.DecodeError as exc:
        raise _invalid(f"request body is not JSON: {exc}", "INVALID_REQUEST_BODY") from None
    if not isinstance(doc, dict):
        raise _invalid("request body is not a JSON object", "INVALID_REQUEST_BODY")
    return doc


def _text(body: Mapping[str, object]) -> str | None:
    text = body.get("text")
    if text is None:
        return None
    prefix = constants.CLIENT_ORDER_ID_PREFIX
    if (
        not isinstance(text, str)
        or not text.startswith(prefix)
        or not 0 < len(text) - len(prefix) <= constants.CLIENT_ORDER_ID_MAX_BYTES
        or not constants.CLIENT_ORDER_ID_ALPHABET.issuperset(text)
    ):
        raise _invalid(f"text {text!r}: must be t- followed by at most 28 characters of 0-9 A-Z a-z _ - .")
    return text


def _decimal_text(value: Decimal) -> str:
    """A Decimal as Gate writes numbers: plain, no exponent, no trailing zeros."""
    return "0" if not value else f"{value.normalize():f}"


def _seconds_text(ms: int) -> str:
    return _seconds(ms).decode()


def _wall_ms(ctx: SimContext, time_ns: int) -> int:
    """The venue wall time of a monotonic stamp of the engine."""
    return ctx.wall_ms() - max(0, ctx.now_ns() - time_ns) // 1_000_000


def _apply_fault(
    ctx: SimContext, futures: bool, place: Callable[[int | None], PlaceResult], wanted_lots: int
) -> tuple[PlaceResult, bool]:
    """Ask the fault plan about this order and apply it: ``(result, drop the answer)``."""
    fault = ctx.faults.on_order(constants.VENUE)
    if fault is None:
        return place(None), False
    if fault.kind is OrderFaultKind.REJECT:
        raise _rejection(fault.category or ErrorCategory.ORDER_REJECTED, "order rejected", futures)
    if fault.kind is OrderFaultKind.RATE_LIMIT:
        wait_ms = fault.retry_after_ms or 0
        label, status, message = constants.SPOT_REJECT_LABELS[ErrorCategory.RATE_LIMITED]
        headers = (  # Gate states the reset time only, no Retry-After
            (constants.RATE_LIMIT_LIMIT_HEADER, "10"),
            (constants.RATE_LIMIT_REMAIN_HEADER, "0"),
            (constants.RATE_LIMIT_RESET_HEADER, str(ctx.wall_ms() + wait_ms)),
        )
        raise _GateRefusal(label, status, message, headers)
    if fault.kind is OrderFaultKind.PARTIAL_FILL:
        return place(wanted_lots * (fault.fill_ppm or 0) // _PPM), False
    return place(None), True  # TIMEOUT_PLACED: the order exists, the answer never comes


# -- public ------------------------------------------------------------------------------


@_public
def _server_time(request: SimRequest, ctx: SimContext) -> SimResponse:
    return _json({"server_time": ctx.wall_ms()})


def _snapshot(request: SimRequest, ctx: SimContext, futures: bool) -> SimResponse:
    params = _params(request)
    engine = _engine(ctx, _required(params, "contract" if futures else "currency_pair"), futures)
    limit = _int_param(params, "limit", 10, 1, 100)
    instrument = engine.instrument
    scale = WireScale(*instrument.wire_scale(), instrument.venue_symbol)
    encoder_type = FuturesBookEncoder if futures else SpotBookEncoder
    encoder = encoder_type(instrument.venue_symbol, scale)
    book = engine.snapshot(limit)
    now_ms = ctx.wall_ms()
    return SimResponse(status=200, body=encoder.snapshot(book.last_update_id, book.bids, book.asks, now_ms, now_ms))


@_public
def _spot_order_book(request: SimRequest, ctx: SimContext) -> SimResponse:
    return _snapshot(request, ctx, futures=False)


@_public
def _futures_order_book(request: SimRequest, ctx: SimContext) -> SimResponse:
    return _snapshot(request, ctx, futures=True)


def _pair_doc(instrument: Instrument) -> dict[str, object]:
    """A ``currency_pairs`` entry in the recorded key order (the spot tick is a power of ten at Gate)."""
    if instrument.tick_size != Decimal(1).scaleb(-instrument.price_decimals) or instrument.lot_size != Decimal(
        1
    ).scaleb(-instrument.size_decimals):
        raise ValueError(f"gateio sim {instrument.symbol}: spot tick and lot must be powers of ten")
    return {
        "id": instrument.venue_symbol,
        "base": instrument.base,
        "quote": instrument.quote,
        "fee": _decimal_text(instrument.taker_fee.scaleb(2)),
        "min_base_amount": _decimal_text(instrument.min_size),
        "min_quote_amount": _decimal_text(instrument.min_notional),
        "amount_precision": instrument.size_decimals,
        "precision": instrument.price_decimals,
        "trade_status": constants.TRADE_STATUS_TRADABLE,
        "sell_start": 0,
        "buy_start": 0,
    }


@_public
def _currency_pairs(request: SimRequest, ctx: SimContext) -> SimResponse:
    return _json([_pair_doc(engine.instrument) for engine in _exchange(ctx, False).engines.values()])


@_public
def _currency_pair(request: SimRequest, ctx: SimContext) -> SimResponse:
    return _json(_pair_doc(_engine(ctx, request.path_params.get("currency_pair"), False).instrument))


def _contract_doc(engine: MatchingEngine, ctx: SimContext) -> dict[str, object]:
    """A ``contracts`` entry in the recorded key order; prices from the simulated book."""
    instrument = engine.instrument
    bid, ask = engine.book.best_bid(), engine.book.best_ask()
    last = instrument.ticks_to_price(bid[0]) if bid else instrument.ticks_to_price(ask[0]) if ask else Decimal(0)
    tick = _decimal_text(instrument.tick_size)
    price = _decimal_text(last)
    rate, interval, now_s = _decimal_text(ctx.funding_rate), ctx.funding_interval_s, ctx.wall_ms() // 1000
    return {
        "funding_rate_indicative": rate,
        "mark_price_round": tick,
        "funding_offset": 0,
        "in_delisting": instrument.symbol in ctx.delisting,
        "risk_limit_base": "1000000",
        "interest_rate": "0.0003",
        "index_price": price,
        "order_price_round": tick,
        "order_size_min": int(instrument.min_size),
        "ref_rebate_rate": "0.2",
        "name": instrument.venue_symbol,
        "ref_discount_rate": "0",
        "order_price_deviate": "0.1",
        "maintenance_rate": _decimal_text(_MAINTENANCE_RATE),
        "mark_type": "index",
        "funding_interval": interval,
        "type": "direct",
        "risk_limit_step": "1000000",
        "enable_bonus": False,
        "leverage_min": "1",
        "funding_rate": rate,
        "last_price": price,
        "mark_price": price,
        "order_size_max": 1000000,
        "funding_next_apply": now_s - now_s % interval + interval,
        "short_users": 0,
        "enable_credit": True,
        "config_change_time": 0,
        "create_time": 0,
        "trade_size": 0,
        "position_size": 0,
        "long_users": 0,
        "quanto_multiplier": _decimal_text(instrument.contract_size),
        "funding_impact_value": "5000",
        "leverage_max": str(engine.leverage),
        "risk_limit_max": "10000000",
        "maker_fee_rate": _decimal_text(instrument.maker_fee),
        "taker_fee_rate": _decimal_text(instrument.taker_fee),
        "orders_limit": 50,
        "trade_id": 0,
        "orderbook_id": engine.book.last_update_id,
    }


@_public
def _contracts(request: SimRequest, ctx: SimContext) -> SimResponse:
    """``GET /futures/usdt/contracts``: ``limit`` (1..1000) contracts from ``offset``; without a
    ``limit`` every one, as the recorded answer lists them."""
    engines = list(_exchange(ctx, True).engines.values())
    params = _params(request)
    limit, offset = _int_param(params, "limit", len(engines), 1, 1000), _int_param(params, "offset", 0, 0, 1 << 31)
    return _json([_contract_doc(engine, ctx) for engine in engines[offset : offset + limit]])


@_public
def _contract(request: SimRequest, ctx: SimContext) -> SimResponse:
    engine = _engine(ctx, request.path_params.get("contract"), True)
    return _json(_contract_doc(engine, ctx))


# -- spot orders -------------------------------------------------------------------------


def check_expiry(ctx: SimContext, expires: str | None) -> None:
    """An order received after its ``x-gate-exptime`` (ms, the venue's clock) is refused (REST and WS API)."""
    if expires is None:
        return
    if not expires.isdigit():
        raise _invalid(f"{constants.EXPIRY_HEADER} {expires!r} is not a time in ms")
    now_ms = ctx.wall_ms()
    if now_ms > int(expires):
        raise _GateRefusal.of(constants.ORDER_EXPIRED, f"received at {now_ms}, {constants.EXPIRY_HEADER} {expires}")


def _dropped() -> SimResponse:
    """The answer of a TIMEOUT_PLACED order: the socket closes instead."""
    return SimResponse(status=200, body=b"", drop_connection=True)


def _spot_place(request: SimRequest, ctx: SimContext, user: str) -> SimResponse:
    body = _body(request)
    limits = spend_rate_limit(ctx, SPOT_PLACE_LIMIT, spot_place_key(user, body))
    check_expiry(ctx, request.headers.get(constants.EXPIRY_HEADER))
    doc = place_spot_order(ctx, user, body)
    return _dropped() if doc is None else _json(doc, limits)


def place_spot_order(ctx: SimContext, user: str, body: Mapping[str, object]) -> dict[str, object] | None:
    """Place the spot order object ``body`` (``POST /spot/orders`` and ``spot.order_place``), faults applied.

    Returns Gate's order object, or None when the TIMEOUT_PLACED fault keeps the answer; raises
    ``_GateRefusal`` / ``OrderRejected`` for refusals (REST and WS API render them).
    """
    engine = _engine(ctx, _required(body, "currency_pair"), False)
    side = _SIDES.get(str(_required(body, "side")))
    order_type = str(body.get("type", "limit"))
    if side is None or order_type not in ("limit", "market"):
        raise _invalid(f"side {body.get('side')!r} / type {order_type!r}")
    if body.get("account", constants.SPOT_ACCOUNT) != constants.SPOT_ACCOUNT:
        raise _invalid(f"account {body.get('account')!r}: only spot is simulated")
    amount = _required(body, "amount")
    text = _text(body)
    tif_name = str(body.get("time_in_force", "ioc" if order_type == "market" else "gtc"))
    tif = (_MARKET_TIF if order_type == "market" else _TIF).get(tif_name)
    if tif is None:
        raise _invalid(f"time_in_force {tif_name!r} with type {order_type}")
    price_ticks, size_lots, quote = 0, 0, None
    if order_type == "limit":
        price_ticks = engine.price_ticks(_string(_required(body, "price"), "price"))
    elif body.get("price") not in (None, "", "0"):
        raise _invalid("a market order takes no price")
    if order_type == "market" and side is OrderSide.BUY:
        quote = _quote_amount(engine, _string(amount, "amount"))
    else:
        size_lots = engine.size_lots(_string(amount, "amount"))
    exchange = _exchange(ctx, False)
    wanted = size_lots or _affordable_lots(engine, quote or Decimal(0))

    def place(max_fill_lots: int | None) -> PlaceResult:
        return exchange.place_order(
            user, engine.symbol, side, SimOrderType(order_type), size_lots, ctx.now_ns(), price_ticks=price_ticks,
            time_in_force=tif, quote_amount=quote, client_id=text, max_fill_lots=max_fill_lots,
        )

    result, drop = _apply_fault(ctx, False, place, wanted)
    return None if drop else _spot_order_doc(ctx, engine, result.order)


def _string(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise _invalid(f"{name} {value!r} must be a decimal string")
    return value


def _quote_amount(engine: MatchingEngine, text: str) -> Decimal:
    """A market buy's quote amount, on the quote asset's grid (the price grid's decimals)."""
    try:
        value = Decimal(text)
    except decimal.InvalidOperation:
        raise _invalid(f"amount {text!r} is not a number") from None
    if not value.is_finite() or value <= 0:
        raise _invalid(f"amount {text!r} must be positive")
    if value != value.quantize(Decimal(1).scaleb(-engine.instrument.price_decimals), context=_QUOTE_EXACT):
        raise OrderRejected(ErrorCategory.PRECISION, f"amount {text} has more decimals than the quote allows")
    return value


def _affordable_lots(engine: MatchingEngine, quote: Decimal) -> int:
    ask = engine.book.best_ask()
    if ask is None or not quote:
        return 0
    return to_atoms(quote) // engine.notional_atoms(ask[0], 1)


def _gate_status(event: OrderEvent, futures: bool) -> tuple[str, str]:
    """``(status, finish_as)`` of an engine order in Gate's words."""
    if event.status in (SimOrderStatus.NEW, SimOrderStatus.PARTIALLY_FILLED):
        return "open", "open"
    if event.status is SimOrderStatus.FILLED:
        return ("finished" if futures else "closed"), "filled"
    if event.status is SimOrderStatus.CANCELED:
        return ("finished" if futures else "cancelled"), "cancelled"
    finish_as = "fok" if event.reason == "fok" and not futures else "ioc"
    return ("finished" if futures else "cancelled"), finish_as


def _spot_order_doc(ctx: SimContext, engine: MatchingEngine, event: OrderEvent) -> dict[str, object]:
    """A spot order in the key order of Gate's documented order object."""
    instrument = engine.instrument
    status, finish_as = _gate_status(event, futures=False)
    quote_buy = bool(event.quote_amount_atoms)
    filled_base = event.filled_lots * engine.base_atoms_per_lot
    if quote_buy:
        amount = _decimal_text(from_atoms(event.quote_amount_atoms))
        left = _decimal_text(from_atoms(event.quote_amount_atoms - event.filled_quote_atoms))
    else:
        amount = instrument.format_size(event.size_lots)
        left = instrument.format_size(event.size_lots - event.filled_lots)
    buy = event.side is OrderSide.BUY
    filled_total = _decimal_text(from_atoms(event.filled_quote_atoms))
    created_ms, updated_ms = _wall_ms(ctx, event.created_ns), _wall_ms(ctx, event.time_ns)
    average = Decimal(event.filled_quote_atoms) / Decimal(filled_base) if filled_base else Decimal(0)
    return {
        "id": str(event.order_id),
        "text": event.client_id or "apiv4",
        "amend_text": "-",
        "create_time": str(created_ms // 1000),
        "update_time": str(updated_ms // 1000),
        "create_time_ms": created_ms,
        "update_time_ms": updated_ms,
        "status": status,
        "currency_pair": instrument.venue_symbol,
        "type": event.order_type.value,
        "account": constants.SPOT_ACCOUNT,
        "side": event.side.value,
        "amount": amount,
        "price": instrument.format_price(event.price_ticks) if event.price_ticks else "0",
        "time_in_force": next(k for k, v in _TIF.items() if v is event.time_in_force),
        "iceberg": "0",
        "left": left,
        "filled_amount": _decimal_text(from_atoms(filled_base)),
        "fill_price": filled_total,
        "filled_total": filled_total,
        "avg_deal_price": _decimal_text(average),
        "fee": _decimal_text(from_atoms(event.fee_atoms)),  # what its fills were charged, maker or taker
        "fee_currency": event.fee_asset or (instrument.base if buy else instrument.quote),
        "point_fee": "0",
        "gt_fee": "0",
        "gt_maker_fee": "0",
        "gt_taker_fee": "0",
        "gt_discount": False,
        "rebated_fee": "0",
        "rebated_fee_currency": instrument.quote,
        "stp_id": 0,
        "stp_act": "-",
        "finish_as": finish_as,
    }


def _found_by_client_id(ctx: SimContext, event: OrderEvent, futures: bool) -> bool:
    """Whether a ``text`` still finds ``event``: always while it is open; once it ended, for the fault
    plan's ``client_id_lookup_ms``, by default never on spot (Gate's spot REST reference: only while
    open) and for 60 s on futures (its futures reference)."""
    if not event.status.is_final:
        return True
    lookup_ms = ctx.faults.client_id_lookup_ms(ctx.venue)
    if lookup_ms is None:
        if not futures:
            return False
        lookup_ms = constants.FUTURES_CLIENT_ID_LOOKUP_S * 1000
    return ctx.now_ns() - event.time_ns <= lookup_ms * 1_000_000


def _spot_find(ctx: SimContext, user: str, engine: MatchingEngine, ref: str) -> OrderEvent:
    exchange = _exchange(ctx, False)
    if ref.startswith(constants.CLIENT_ORDER_ID_PREFIX):
        event = exchange.get_order_by_client_id(user, engine.symbol, ref)
        if not _found_by_client_id(ctx, event, False):
            raise _rejection(ErrorCategory.UNKNOWN_ORDER, f"order {ref}", futures=False)
        return event
    if not ref.isdigit():
        raise _rejection(ErrorCategory.UNKNOWN_ORDER, f"order {ref}", futures=False)
    event = exchange.get_order(user, int(ref))
    if event.symbol != engine.symbol:
        raise _rejection(ErrorCategory.UNKNOWN_ORDER, f"order {ref} is not of {engine.instrument.venue_symbol}", False)
    return event


def spot_order(ctx: SimContext, user: str, pair: object, ref: str) -> dict[str, object]:
    """The order object of ``ref`` (order id or ``t-`` text) on ``pair`` (REST GET and ``spot.order_status``)."""
    engine = _engine(ctx, pair, False)
    return _spot_order_doc(ctx, engine, _spot_find(ctx, user, engine, ref))


def cancel_spot_order(ctx: SimContext, user: str, pair: object, ref: str) -> dict[str, object]:
    """Cancel ``ref`` on ``pair``; the cancelled order object (REST DELETE and ``spot.order_cancel``)."""
    engine = _engine(ctx, pair, False)
    found = _spot_find(ctx, user, engine, ref)
    event, _ = _exchange(ctx, False).cancel_order(user, engine.symbol, ctx.now_ns(), order_id=found.order_id)
    return _spot_order_doc(ctx, engine, event)


def _spot_get(request: SimRequest, ctx: SimContext, user: str) -> SimResponse:
    limits = spend_rate_limit(ctx, SPOT_ORDER_READ_LIMIT, (user,))
    pair = _required(_params(request), "currency_pair")
    return _json(spot_order(ctx, user, pair, request.path_params.get("order_id", "")), limits)


def _spot_cancel(request: SimRequest, ctx: SimContext, user: str) -> SimResponse:
    limits = spend_rate_limit(ctx, SPOT_CANCEL_LIMIT, (user,))
    pair = _required(_params(request), "currency_pair")
    return _json(cancel_spot_order(ctx, user, pair, request.path_params.get("order_id", "")), limits)


def _spot_fee(request: SimRequest, ctx: SimContext, user: str) -> SimResponse:
    """``GET /spot/fee``: the account's tier, here the rates of the simulated instruments."""
    pair = _params(request).get("currency_pair")
    spot = ctx.exchanges.get(ExchangeName.GATEIO)
    futures = ctx.exchanges.get(ExchangeName.GATEIO_FUTURES)
    spot_instrument = _engine(ctx, pair, False).instrument if pair else _first_instrument(spot)
    futures_instrument = _first_instrument(futures)
    taker = spot_instrument.taker_fee if spot_instrument else constants.DEFAULT_SPOT_FEE
    maker = spot_instrument.maker_fee if spot_instrument else constants.DEFAULT_SPOT_FEE
    f_taker = futures_instrument.taker_fee if futures_instrument else constants.DEFAULT_FUTURES_TAKER_FEE
    f_maker = futures_instrument.maker_fee if futures_instrument else constants.DEFAULT_FUTURES_MAKER_FEE
    return _json(
        {
            "user_id": int(_user_number(user)),
            "taker_fee": _decimal_text(taker),
            "maker_fee": _decimal_text(maker),
            "gt_discount": False,
            "gt_taker_fee": "0",
            "gt_maker_fee": "0",
            "loan_fee": "0.18",
            "point_type": "1",
            "futures_taker_fee": _decimal_text(f_taker),
            "futures_maker_fee": _decimal_text(f_maker),
            "delivery_taker_fee": _decimal_text(f_taker),
            "delivery_maker_fee": _decimal_text(f_maker),
            "debit_fee": 3,
        }
    )


def _first_instrument(exchange: SimExchange | None) -> Instrument | None:
    return None if exchange is None else next((e.instrument for e in exchange.engines.values()), None)


def _spot_list(request: SimRequest, ctx: SimContext, user: str) -> SimResponse:
    params = _params(request)
    engine = _engine(ctx, _required(params, "currency_pair"), False)
    status = _required(params, "status")
    if status == constants.SPOT_ORDER_STATUS_OPEN:
        orders = _exchange(ctx, False).open_orders(user, engine.symbol)
        return _json([_spot_order_doc(ctx, engine, event) for event in orders])
    if status != constants.SPOT_ORDER_STATUS_FINISHED:
        raise _invalid(f"status {status!r}: must be open or finished")
    since_ms = int(params.get("from", "0")) * 1000
    until_ms = int(params["to"]) * 1000 + 999 if "to" in params else None
    limit, page = int(params.get("limit", "100")), int(params.get("page", "1"))
    finished = [
        event for event in reversed(engine.orders_of(user))
        if event.status.is_final and since_ms <= _wall_ms(ctx, event.created_ns)
        and (until_ms is None or _wall_ms(ctx, event.created_ns) <= until_ms)
    ]
    return _json([_spot_order_doc(ctx, engine, event) for event in finished[(page - 1) * limit: page * limit]])


def _spot_open_orders(request: SimRequest, ctx: SimContext, user: str) -> SimResponse:
    groups = []
    for engine in _exchange(ctx, False).engines.values():
        orders = engine.open_orders(user)
        if orders:
            docs = [_spot_order_doc(ctx, engine, event) for event in orders]
            groups.append({"currency_pair": engine.instrument.venue_symbol, "total": len(docs), "orders": docs})
    return _json(groups)


def _spot_accounts(request: SimRequest, ctx: SimContext, user: str) -> SimResponse:
    balances = _exchange(ctx, False).balances(user)
    return _json(
        [
            {"currency": asset, "available": _decimal_text(free), "locked": _decimal_text(locked), "update_id": 1}
            for asset, (free, locked) in balances.items()
        ]
    )


# -- futures orders ----------------------------------------------------------------------


def _futures_place(request: SimRequest, ctx: SimContext, user: str) -> SimResponse:
    limits = spend_rate_limit(ctx, FUTURES_PLACE_LIMIT, (user,))
    check_expiry(ctx, request.headers.get(constants.EXPIRY_HEADER))
    doc = place_futures_order(ctx, user, _body(request))
    return _dropped() if doc is None else _json(doc, limits)


def place_futures_order(ctx: SimContext, user: str, body: Mapping[str, object]) -> dict[str, object] | None:
    """Place the futures order object ``body`` (REST and ``futures.order_place``); None: the answer is kept
    by the TIMEOUT_PLACED fault."""
    engine = _engine(ctx, _required(body, "contract"), True)
    size = _required(body, "size")
    if isinstance(size, str) and size.lstrip("-").isdigit():
        size = int(size)
    if not isinstance(size, int) or isinstance(size, bool) or size == 0:
        raise _invalid(f"size {size!r} must be a non-zero integer of contracts")
    price = _string(_required(body, "price"), "price")
    text = _text(body)
    reduce_only = body.get("reduce_only", False)
    if not isinstance(reduce_only, bool) or body.get("close", False) is not False:
        raise _invalid("reduce_only must be a boolean; close is not simulated")
    if engine.symbol in ctx.delisting and not reduce_only:
        raise _GateRefusal("CONTRACT_IN_DELISTING", 400, f"contract {engine.instrument.venue_symbol} in delisting")
    market = price == constants.FUTURES_MARKET_PRICE
    tif_name = str(body.get("tif", "gtc"))
    tif = (_MARKET_TIF if market else _TIF).get(tif_name)
    if tif is None:
        raise _invalid(f"tif {tif_name!r} with price {price!r} (a market order takes ioc or fok)")
    price_ticks = 0 if market else engine.price_ticks(price)
    side = OrderSide.BUY if size > 0 else OrderSide.SELL
    exchange = _exchange(ctx, True)

    def place(max_fill_lots: int | None) -> PlaceResult:
        return exchange.place_order(
            user, engine.symbol, side, SimOrderType.MARKET if market else SimOrderType.LIMIT, abs(size),
            ctx.now_ns(), price_ticks=price_ticks, time_in_force=tif, client_id=text, reduce_only=reduce_only,
            max_fill_lots=max_fill_lots,
        )

    result, drop = _apply_fault(ctx, True, place, abs(size))
    return None if drop else _futures_order_doc(ctx, engine, result.order)


def _user_number(user: str) -> str:
    return str(zlib.crc32(user.encode()))


def _futures_order_doc(ctx: SimContext, engine: MatchingEngine, event: OrderEvent) -> dict[str, object]:
    """A futures order in the key order of Gate's order object (as recorded by ccxt)."""
    instrument = engine.instrument
    status, finish_as = _gate_status(event, futures=True)
    sign = 1 if event.side is OrderSide.BUY else -1
    filled_base = event.filled_lots * engine.base_atoms_per_lot
    average = Decimal(event.filled_quote_atoms) / Decimal(filled_base) if filled_base else Decimal(0)
    created, updated = _wall_ms(ctx, event.created_ns), _wall_ms(ctx, event.time_ns)
    doc: dict[str, object] = {
        "refu": "0",
        "tkfr": _decimal_text(instrument.taker_fee),
        "mkfr": _decimal_text(instrument.maker_fee),
        "contract": instrument.venue_symbol,
        "id": str(event.order_id),
        "price": instrument.format_price(event.price_ticks) if event.price_ticks else "0",
        "tif": next(k for k, v in _TIF.items() if v is event.time_in_force),
        "iceberg": "0",
        "text": event.client_id or "api",
        "user": _user_number(event.user),
        "is_reduce_only": event.reduce_only,
        "is_close": False,
        "is_liq": False,
        "fill_price": _decimal_text(average.quantize(Decimal(1).scaleb(-18), context=_QUOTE_EXACT)),
        "create_time": _seconds_text(created),
        "update_time": _seconds_text(updated),
    }
    if status != "open":
        doc["finish_time"] = _seconds_text(updated)
        doc["finish_as"] = finish_as
    doc.update(
        status=status,
        left=str(sign * (event.size_lots - event.filled_lots)),
        refr="0",
        size=str(sign * event.size_lots),
        biz_info="-",
        amend_text="-",
        stp_act="-",
        stp_id="0",
        update_id="1",
        pnl="0",
        pnl_margin="0",
        bbo="-",
        market_order_slip_ratio="0.05",
    )
    return doc


def _futures_find(ctx: SimContext, user: str, ref: str) -> tuple[MatchingEngine, OrderEvent]:
    exchange = _exchange(ctx, True)
    if ref.startswith(constants.CLIENT_ORDER_ID_PREFIX):
        for engine in exchange.engines.values():
            event = engine.order_by_client_id(user, ref)
            if event is not None and _found_by_client_id(ctx, event, True):
                return engine, event
        raise _rejection(ErrorCategory.UNKNOWN_ORDER, f"order {ref}", futures=True)
    if not ref.isdigit():
        raise _rejection(ErrorCategory.UNKNOWN_ORDER, f"order {ref}", futures=True)
    event = exchange.get_order(user, int(ref))
    return exchange.engine(event.symbol), event


def futures_order(ctx: SimContext, user: str, ref: str) -> dict[str, object]:
    """The futures order object of ``ref`` (REST GET and ``futures.order_status``)."""
    engine, event = _futures_find(ctx, user, ref)
    return _futures_order_doc(ctx, engine, event)


def cancel_futures_order(ctx: SimContext, user: str, ref: str) -> dict[str, object]:
    """Cancel ``ref``; the cancelled futures order object (REST DELETE and ``futures.order_cancel``)."""
    engine, found = _futures_find(ctx, user, ref)
    event, _ = _exchange(ctx, True).cancel_order(user, engine.symbol, ctx.now_ns(), order_id=found.order_id)
    return _futures_order_doc(ctx, engine, event)


def _futures_get(request: SimRequest, ctx: SimContext, user: str) -> SimResponse:
    limits = spend_rate_limit(ctx, FUTURES_ORDER_READ_LIMIT, (user,))
    return _json(futures_order(ctx, user, request.path_params.get("order_id", "")), limits)


def _futures_cancel(request: SimRequest, ctx: SimContext, user: str) -> SimResponse:
    limits = spend_rate_limit(ctx, FUTURES_CANCEL_LIMIT, (user,))
    return _json(cancel_futures_order(ctx, user, request.path_params.get("order_id", "")), limits)


def _futures_list(request: SimRequest, ctx: SimContext, user: str) -> SimResponse:
    params = _params(request)
    if _required(params, "status") != constants.FUTURES_ORDER_STATUS_OPEN:
        raise _invalid(f"status {params['status']!r}: the simulator lists open orders only")
    exchange = _exchange(ctx, True)
    engines = list(exchange.engines.values()) if "contract" not in params else [_engine(ctx, params["contract"], True)]
    return _json([_futures_order_doc(ctx, e, event) for e in engines for event in e.open_orders(user)])


def _futures_account(request: SimRequest, ctx: SimContext, user: str) -> SimResponse:
    exchange = _exchange(ctx, True)
    settle = next(iter({e.settle_asset for e in exchange.engines.values()}), "USDT")
    free, locked = exchange.balances(user).get(settle, (Decimal(0), Decimal(0)))
    position_margin = sum(
        (exchange.position(user, symbol)[2] for symbol in exchange.ledger.account(user).positions), Decimal(0)
    )
    return _json(
        {
            "user": int(_user_number(user)),
            "total": _decimal_text(free + locked),
            "unrealised_pnl": "0",
            "position_margin": _decimal_text(position_margin),
            "order_margin": _decimal_text(locked - position_margin),
            "available": _decimal_text(free),
            "point": "0",
            "currency": settle,
            "in_dual_mode": False,
            "enable_credit": False,
            "position_initial_margin": _decimal_text(position_margin),
            "maintenance_margin": "0",
            "bonus": "0",
        }
    )


def _futures_account_book(request: SimRequest, ctx: SimContext, user: str) -> SimResponse:
    """``GET /futures/usdt/account_book``: the account's changes, newest first. The simulator records
    funding (``type=fund``) only; ``contract``, ``from``/``to`` (seconds, inclusive), ``limit``
    (1..1000, 100 by default) and ``offset`` filter and page it."""
    params = _params(request)
    exchange = _exchange(ctx, True)
    limit, offset = _int_param(params, "limit", 100, 1, 1000), _int_param(params, "offset", 0, 0, 1 << 31)
    first_ms = _int_param(params, "from", 0, 0, 1 << 40) * 1000
    last_ms = _int_param(params, "to", 1 << 40, 0, 1 << 40) * 1000 + 999
    symbol = None if "contract" not in params else _engine(ctx, params["contract"], True).symbol
    recorded = exchange.ledger.account(user).funding
    if params.get("type", constants.ACCOUNT_BOOK_FUNDING) != constants.ACCOUNT_BOOK_FUNDING:
        recorded = []  # the simulator records funding only
    entries = [
        entry for entry in reversed(recorded)
        if (symbol is None or entry.symbol == symbol) and first_ms <= entry.wall_ms <= last_ms
    ]
    docs = []
    for entry in entries[offset : offset + limit]:
        contract = exchange.engine(entry.symbol).instrument.venue_symbol
        docs.append(
            {
                "time": entry.wall_ms / 1000,
                "change": _decimal_text(from_atoms(entry.change_atoms)),
                "balance": _decimal_text(from_atoms(entry.balance_atoms)),
                "type": constants.ACCOUNT_BOOK_FUNDING,
                "text": f"{contract}:{entry.entry_id}",
                "contract": contract,
                "trade_id": "",
                "id": str(entry.entry_id),
            }
        )
    return _json(docs)


def _int_param(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """A whole-number query parameter within ``low..high`` (``default`` when absent)."""
    text = params.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise _invalid(f"{name} {text!r} must be {low}..{high}")
    return int(text)


def _liquidation_price(engine: MatchingEngine, contracts: int, entry: Decimal | None) -> Decimal:
    """Where an isolated position at the engine's leverage runs out of margin: the entry price moved
    against it by 1/leverage less the maintenance rate, on the tick grid (0: no position)."""
    if not contracts or not entry:
        return Decimal(0)
    move = 1 / Decimal(engine.leverage) - _MAINTENANCE_RATE
    price = entry * (1 - move if contracts > 0 else 1 + move)
    return engine.instrument.ticks_to_price(int(price / engine.instrument.tick_size))


def _mark_price(engine: MatchingEngine, entry: Decimal | None) -> Decimal:
    """The book's mid on the tick grid (the entry price while a side is empty): no index is simulated."""
    bid, ask = engine.book.best_bid(), engine.book.best_ask()
    instrument = engine.instrument
    if not bid or not ask:
        return (entry or Decimal(0)).quantize(Decimal(1).scaleb(-18), context=_QUOTE_EXACT)
    return instrument.ticks_to_price((bid[0] + ask[0]) // 2)


def _futures_positions(request: SimRequest, ctx: SimContext, user: str) -> SimResponse:
    exchange = _exchange(ctx, True)
    docs = []
    for symbol in exchange.ledger.account(user).positions:
        engine = exchange.engine(symbol)
        contracts, entry, margin, realized = exchange.position(user, symbol)
        entry_text = _decimal_text((entry or Decimal(0)).quantize(Decimal(1).scaleb(-18), context=_QUOTE_EXACT))
        docs.append(
            {
                "user": int(_user_number(user)),
                "contract": engine.instrument.venue_symbol,
                "size": contracts,
                "leverage": str(engine.leverage),
                "risk_limit": "1000000",
                "leverage_max": str(engine.leverage),
                "maintenance_rate": _decimal_text(_MAINTENANCE_RATE),
                "value": "0",
                "margin": _decimal_text(margin),
                "entry_price": entry_text,
                "liq_price": _decimal_text(_liquidation_price(engine, contracts, entry)),
                "mark_price": _decimal_text(_mark_price(engine, entry)),
                "unrealised_pnl": "0",
                "realised_pnl": _decimal_text(realized),
                "history_pnl": "0",
                "last_close_pnl": "0",
                "realised_point": "0",
                "history_point": "0",
                "adl_ranking": 5,
                "pending_orders": len(engine.open_orders(user)),
                "mode": "single",
                "update_time": ctx.wall_ms() // 1000,
            }
        )
    return _json(docs)
