"""The server side of MEXC's market-data wire format, for the simulated venue (no networking).

* ``MexcSpotSimSession`` / ``MexcFuturesSimSession`` answer one connection's client frames
  (subscribe, unsubscribe, ping) the way the venue does and track its depth subscriptions.
* ``MexcSpotDepthEncoder`` writes protobuf ``PushDataV3ApiWrapper`` aggre-depth pushes and
  ``GET /api/v3/depth`` bodies; ``MexcFuturesDepthEncoder`` writes contract ``push.depth``
  frames and ``GET /api/v1/contract/depth/{symbol}`` bodies.
* ``rest_routes()`` serves the REST side (``arb.sim.http`` contract): public spot and
  contract market data, signed spot orders/cancel/query/open orders/account, and the
  contract order endpoints refused as the venue refuses ordinary accounts.

Levels come in as integers, ``(side, price_ticks, size_lots)`` for pushes (``BookUpdate.levels``,
``DeltaBatch.levels()``) and ``(price_ticks, size_lots)`` best first for snapshots, and go out
as plain decimal text on the instrument's grid. Frames follow ``arb.exchanges.base.WsPayload``:
``bytes`` is a BINARY websocket frame, ``str`` a TEXT frame; REST bodies are bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Final, NamedTuple
from urllib.parse import parse_qsl

import msgspec

from arb_core.book import ASK

from ...instruments import Instrument
from ...sim.faults import OrderFaultKind
from ...sim.http import Route, SimContext, SimRequest, SimResponse
from ...sim.matching import MatchingEngine, OrderEvent, OrderRejected, SimExchange, from_atoms, to_atoms
from ...sim.matching import OrderStatus as SimOrderStatus
from ...sim.matching import OrderType as SimOrderType
from ...sim.matching import TimeInForce as SimTimeInForce
from ...sim.ratelimit import VenueRateLimit
from ...types import ExchangeName, OrderSide
from ..errors import ErrorCategory
from . import constants
from .schemas import ContractWsRequest, SpotWsRequest

_CACHE_MAX = 1 << 16  # formatted prices/sizes kept per encoder (a sim book revisits the same levels)

_spot_request = msgspec.json.Decoder(SpotWsRequest)
_contract_request = msgspec.json.Decoder(ContractWsRequest)
_encode = msgspec.json.encode


# ---------------------------------------------------------------------------
# protobuf writer: only varints and length-delimited fields are needed


def varint(value: int) -> bytes:
    """``value`` (0 <= value < 2**64) as a protobuf base-128 varint."""
    if not 0 <= value < 1 << 64:
        raise ValueError(f"varint value {value} outside 0..2**64-1")
    if value < 0x80:
        return _BYTE[value]
    if value < 0x4000:  # a push body's length
        return bytes((value & 0x7F | 0x80, value >> 7))
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def tag(field: int, wire_type: int) -> bytes:
    """The key of ``field`` with ``wire_type`` (0 varint, 2 length-delimited)."""
    return varint(field << 3 | wire_type)


def length_delimited(field: int, data: bytes) -> bytes:
    """A wire-type-2 field (string, bytes or embedded message)."""
    return tag(field, 2) + varint(len(data)) + data


_BYTE = tuple(bytes((i,)) for i in range(256))
_INT63 = 1 << 63
_ASKS_TAG = tag(1, 2)  # PublicAggreDepthsV3Api.asks
_BIDS_TAG = tag(2, 2)
_PRICE_TAG = tag(1, 2)  # PublicAggreDepthV3ApiItem.price
_QUANTITY_TAG = tag(2, 2)
_FROM_TAG = tag(4, 2)
_TO_TAG = tag(5, 2)
_SEND_TIME_TAG = tag(constants.PUSH_SEND_TIME, 0)
_AGGRE_TAG = tag(constants.PUSH_AGGRE_DEPTHS, 2)


class _DecimalText:
    """Integer steps -> plain decimal text on a ``units * 10**-decimals`` grid (never an exponent)."""

    __slots__ = ("decimals", "units", "trim", "what")

    def __init__(self, decimals: int, units: int, *, trim: bool, what: str) -> None:
        self.decimals = decimals
        self.units = units
        self.trim = trim  # JSON numbers drop trailing zeros; MEXC spot strings keep the symbol's width
        self.what = what

    def __call__(self, steps: int) -> str:
        if not isinstance(steps, int) or not 0 <= steps < 1 << 63 or (steps == 0 and self.what == "price"):
            sign = "positive" if self.what == "price" else "non-negative"
            raise ValueError(f"{self.what} {steps!r} must be a {sign} int64")
        text = str(steps * self.units)
        d = self.decimals
        if d:
            if len(text) <= d:
                text = "0" * (d + 1 - len(text)) + text
            text = f"{text[:-d]}.{text[-d:]}"
            if self.trim:
                text = text.rstrip("0").rstrip(".")
        return text


def _scales(instrument: Instrument) -> tuple[_DecimalText, _DecimalText, _DecimalText, _DecimalText]:
    price_decimals, tick_units, size_decimals, lot_units = instrument.wire_scale()
    return (
        _DecimalText(price_decimals, tick_units, trim=False, what="price"),
        _DecimalText(size_decimals, lot_units, trim=False, what="size"),
        _DecimalText(price_decimals, tick_units, trim=True, what="price"),
        _DecimalText(size_decimals, lot_units, trim=True, what="size"),
    )


def _check_market(instrument: Instrument, exchange: ExchangeName, what: str) -> None:
    if instrument.exchange is not exchange:
        raise ValueError(f"{what}: instrument {instrument.symbol} is {instrument.exchange.value}, not {exchange.value}")


def _check_ids(**ids: int) -> None:
    for name, value in ids.items():
        if not isinstance(value, int) or not 0 <= value < 1 << 63:
            raise ValueError(f"{name}={value!r} must be an int in 0..2**63-1")


class MexcSpotDepthEncoder:
    """Spot aggre-depth pushes (protobuf) and REST depth bodies of one instrument.

    A push, rendered:

        {"channel":"spot@public.aggre.depth.v3.api.pb@100ms@BTCUSDC","symbol":"BTCUSDC",
         "sendTime":"1755973885809","publicAggreDepths":{"asks":[{"price":"115198.74",
         "quantity":"0.068865"}],"bids":[...],"eventType":"spot@public.aggre.depth.v3.api.pb@100ms",
         "fromVersion":"17521975448","toVersion":"17521975455"}}

    Fields are written in field-number order (channel 1, symbol 3, sendTime 6, body 313;
    in the body asks 1, bids 2, eventType 3, fromVersion 4, toVersion 5), as protobuf
    serializers do. Everything constant is encoded once here.
    """

    def __init__(self, instrument: Instrument, *, interval: str = constants.DEPTH_INTERVAL) -> None:
        _check_market(instrument, ExchangeName.MEXC, "mexc spot encoder")
        if interval not in constants.DEPTH_INTERVALS:
            raise ValueError(f"mexc spot encoder: interval {interval!r} is not one of {constants.DEPTH_INTERVALS}")
        self.instrument = instrument
        self.channel = constants.AGGRE_DEPTH_TOPIC.format(interval=interval, symbol=instrument.venue_symbol)
        self._price_text, self._size_text, _, _ = _scales(instrument)
        self._head = length_delimited(constants.PUSH_CHANNEL, self.channel.encode()) + length_delimited(
            constants.PUSH_SYMBOL, instrument.venue_symbol.encode()
        )
        self._event = length_delimited(3, constants.AGGRE_DEPTH_EVENT_TYPE.format(interval=interval).encode())
        self._prices: dict[int, bytes] = {}  # ticks -> price field (tag, length, text)
        # quantities rarely repeat: written straight from the int, "%d.%0<decimals>d" of units
        # (whole-unit grids take the general path)
        _, _, size_decimals, self._lot_units = instrument.wire_scale()
        self._size_unit = 10**size_decimals
        self._size_format = b"%%d.%%0%dd" % size_decimals if size_decimals else b""
        self._send_time = (-1, b"")  # the last send time and its varint (many pushes share a ms)

    def push(
        self, levels: Iterable[tuple[int, int, int]], from_version: int, to_version: int, send_time_ms: int
    ) -> bytes:
        """One ``PushDataV3ApiWrapper`` with ``publicAggreDepths`` (a BINARY frame).

        ``levels`` are ``(side, price_ticks, size_lots)``, size 0 deleting the level;
        ``from_version``..``to_version`` are the update ids the push covers.
        """
        if not 0 <= from_version <= to_version < 1 << 63 or not 0 <= send_time_ms < 1 << 63:
            _check_ids(from_version=from_version, to_version=to_version, send_time_ms=send_time_ms)
            raise ValueError(f"mexc spot push: from_version={from_version} is above to_version={to_version}")
        prices = self._prices
        units, unit, size_format = self._lot_units, self._size_unit, self._size_format
        byte = _BYTE
        asks: list[bytes] = []
        bids: list[bytes] = []
        for side, price, size in levels:
            p = prices.get(price)
            if p is None:
                p = self._price_field(price)
            if size_format and type(size) is int and 0 <= size < _INT63:
                text = size_format % divmod(size * units, unit)
            else:
                text = self._size_text(size).encode()  # raises on a bad size
            n = len(text)
            if side == ASK:
                asks += (_ASKS_TAG, byte[len(p) + n + 2], p, _QUANTITY_TAG, byte[n], text)
            elif side == 0:
                bids += (_BIDS_TAG, byte[len(p) + n + 2], p, _QUANTITY_TAG, byte[n], text)
            else:
                raise ValueError(f"mexc spot push: side {side!r} is neither BID (0) nor ASK (1)")
            # an item is at most 2 * (2 + 40) bytes, so its length is a one-byte varint
        first = b"%d" % from_version
        last = b"%d" % to_version
        asks += bids
        asks += (self._event, _FROM_TAG, byte[len(first)], first, _TO_TAG, byte[len(last)], last)
        body = b"".join(asks)
        sent_ms, sent = self._send_time
        if sent_ms != send_time_ms:
            sent = varint(send_time_ms)
            self._send_time = (send_time_ms, sent)
        return b"".join((self._head, _SEND_TIME_TAG, sent, _AGGRE_TAG, varint(len(body)), body))

    def snapshot(
        self, bids: Sequence[tuple[int, int]], asks: Sequence[tuple[int, int]], last_update_id: int, timestamp_ms: int
    ) -> bytes:
        """A ``GET /api/v3/depth`` body, levels best first, ids and time as strings as the venue sends them:

        ``{"lastUpdateId":"20453289489","bids":[["45995.47","10.337165"]],"asks":[...],"timestamp":"1704908526228"}``
        """
        _check_ids(last_update_id=last_update_id, timestamp_ms=timestamp_ms)
        price, size = self._price_text, self._size_text
        body = {
            "lastUpdateId": str(last_update_id),
            "bids": [[price(p), size(s)] for p, s in bids],
            "asks": [[price(p), size(s)] for p, s in asks],
            "timestamp": str(timestamp_ms),
        }
        return _encode(body)

    def _price_field(self, ticks: int) -> bytes:
        text = self._price_text(ticks).encode()
        if len(self._prices) >= _CACHE_MAX:
            self._prices.clear()
        field = self._prices[ticks] = _PRICE_TAG + _BYTE[len(text)] + text
        return field


class MexcFuturesDepthEncoder:
    """Contract ``push.depth`` frames and REST depth bodies of one instrument (JSON numbers).

        {"channel":"push.depth","data":{"asks":[[6859.5,3251,1]],"bids":[],"version":96801927},
         "symbol":"BTC_USDT","ts":1587442022003}

    A level is ``[price, contracts, order count]``; the count is 1 for a live level and 0
    for a deletion (the simulator aggregates without counting orders).
    """

    def __init__(self, instrument: Instrument) -> None:
        _check_market(instrument, ExchangeName.MEXC_FUTURES, "mexc contract encoder")
        self.instrument = instrument
        _, _, self._price_text, self._size_text = _scales(instrument)
        self._tail = f'}},"symbol":"{instrument.venue_symbol}","ts":'
        self._prices: dict[int, str] = {}  # ticks -> "[price,"
        self._sizes: dict[int, str] = {}  # lots -> "vol,count]"

    def push(self, levels: Iterable[tuple[int, int, int]], version: int, ts_ms: int) -> str:
        """One ``push.depth`` frame (a TEXT frame); ``version`` must be the previous push's + 1."""
        if not 0 <= version < 1 << 63 or not 0 <= ts_ms < 1 << 63:
            _check_ids(version=version, ts_ms=ts_ms)
        prices = self._prices
        sizes = self._sizes
        asks: list[str] = []
        bids: list[str] = []
        for side, price, size in levels:
            p = prices.get(price)
            if p is None:
                p = self._price_item(price)
            q = sizes.get(size)
            if q is None:
                q = self._size_item(size)
            if side == ASK:
                asks.append(p + q)
            elif side == 0:
                bids.append(p + q)
            else:
                raise ValueError(f"mexc contract push: side {side!r} is neither BID (0) nor ASK (1)")
        return (
            f'{{"channel":"push.depth","data":{{"asks":[{",".join(asks)}],"bids":[{",".join(bids)}],'
            f'"version":{version}{self._tail}{ts_ms}}}'
        )

    def snapshot(
        self, bids: Sequence[tuple[int, int]], asks: Sequence[tuple[int, int]], version: int, timestamp_ms: int
    ) -> bytes:
        """A ``GET /api/v1/contract/depth/{symbol}`` body, levels best first:

        ``{"success":true,"code":0,"data":{"asks":[[3968.5,121,1]],"bids":[...],"version":1,
        "timestamp":1587442022003}}``
        """
        _check_ids(version=version, timestamp_ms=timestamp_ms)
        price, size = self._price_text, self._size_text
        ask_items = ",".join(f"[{price(p)},{size(s)},{1 if s else 0}]" for p, s in asks)
        bid_items = ",".join(f"[{price(p)},{size(s)},{1 if s else 0}]" for p, s in bids)
        return (
            f'{{"success":true,"code":0,"data":{{"asks":[{ask_items}],"bids":[{bid_items}],'
            f'"version":{version},"timestamp":{timestamp_ms}}}}}'
        ).encode()

    def _price_item(self, ticks: int) -> str:
        if len(self._prices) >= _CACHE_MAX:
            self._prices.clear()
        item = self._prices[ticks] = f"[{self._price_text(ticks)},"
        return item

    def _size_item(self, lots: int) -> str:
        if len(self._sizes) >= _CACHE_MAX:
            self._sizes.clear()
        item = self._sizes[lots] = f"{self._size_text(lots)},{1 if lots else 0}]"
        return item


# ---------------------------------------------------------------------------
# client frames -> venue answers


class SimReply(NamedTuple):
    """What the server does with one client frame: TEXT frames to send back, in order, and
    the venue symbols whose depth pushes start or stop with it."""

    frames: tuple[str, ...] = ()
    subscribed: tuple[str, ...] = ()
    unsubscribed: tuple[str, ...] = ()


class MexcSpotSimSession:
    """One simulated spot websocket connection: answers SUBSCRIPTION / UNSUBSCRIPTION / PING.

    Only aggre-depth topics of known symbols are served; any other topic is refused with
    the venue's code-0 ``Not Subscribed successfully! [...]`` text, as are topics beyond
    the 30-per-connection limit. A frame that is not a request gets a non-zero code.
    """

    def __init__(
        self, venue_symbols: Collection[str], *, max_subscriptions: int = constants.WS_MAX_SUBSCRIPTIONS
    ) -> None:
        self._served = {
            constants.AGGRE_DEPTH_TOPIC.format(interval=interval, symbol=symbol): symbol
            for symbol in venue_symbols
            for interval in constants.DEPTH_INTERVALS
        }
        self.max_subscriptions = max_subscriptions
        self.topics: dict[str, str] = {}  # subscribed topic -> venue symbol, in subscription order

    @property
    def symbols(self) -> frozenset[str]:
        """Venue symbols with at least one depth subscription."""
        return frozenset(self.topics.values())

    def handle(self, frame: bytes | str, now_ms: int) -> SimReply:
        """The answer to one client TEXT frame (``now_ms`` is unused: spot replies carry no time)."""
        try:
            request = _spot_request.decode(frame)
        except msgspec.DecodeError as exc:
            return SimReply((self._bad(0, str(exc)),))
        if request.method == constants.WS_PING:
            return SimReply((_spot_reply(request.id, constants.WS_OK_CODE, constants.WS_PONG_MSG),))
        if request.method == constants.WS_SUBSCRIBE:
            return self._subscribe(request)
        if request.method == constants.WS_UNSUBSCRIBE:
            return self._unsubscribe(request)
        return SimReply((self._bad(request.id, f"unknown method {request.method!r}"),))

    def _subscribe(self, request: SpotWsRequest) -> SimReply:
        if not request.params:
            return SimReply((self._bad(request.id, "params is empty"),))
        before = self.symbols
        accepted: list[str] = []
        blocked: list[str] = []
        over: list[str] = []
        for topic in dict.fromkeys(request.params):
            if topic not in self._served:
                blocked.append(topic)
            elif topic in self.topics:
                accepted.append(topic)
            elif len(self.topics) >= self.max_subscriptions:
                over.append(topic)
            else:
                self.topics[topic] = self._served[topic]
                accepted.append(topic)
        frames = []
        if accepted:
            frames.append(_spot_reply(request.id, constants.WS_OK_CODE, ",".join(accepted)))
        for refused, reason in ((blocked, constants.WS_BLOCKED_REASON), (over, constants.WS_LIMIT_REASON)):
            if refused:
                text = constants.WS_NOT_SUBSCRIBED.format(topics=",".join(refused), reason=reason)
                frames.append(_spot_reply(request.id, constants.WS_OK_CODE, text))
        started = tuple(s for s in dict.fromkeys(self.topics.values()) if s not in before)
        return SimReply(tuple(frames), subscribed=started)

    def _unsubscribe(self, request: SpotWsRequest) -> SimReply:
        if not request.params:
            return SimReply((self._bad(request.id, "params is empty"),))
        before = self.symbols
        for topic in request.params:
            self.topics.pop(topic, None)
        stopped = tuple(sorted(before - self.symbols))
        ack = _spot_reply(request.id, constants.WS_OK_CODE, ",".join(request.params))
        return SimReply((ack,), unsubscribed=stopped)

    @staticmethod
    def _bad(request_id: int, detail: str) -> str:
        text = constants.WS_BAD_REQUEST_MSG.format(detail=detail)
        return _spot_reply(request_id, constants.WS_BAD_REQUEST_CODE, text)


class MexcFuturesSimSession:
    """One simulated contract websocket connection: answers ``sub.depth`` / ``unsub.depth`` / ``ping``.

    Acks are ``{"channel":"rs.sub.depth","data":"success","ts":ms}``; the pong is
    ``{"channel":"pong","data":ms}``; anything refused gets ``rs.error``.
    """

    def __init__(self, venue_symbols: Collection[str]) -> None:
        self._served = frozenset(venue_symbols)
        self.subscriptions: dict[str, None] = {}  # venue symbols, in subscription order

    @property
    def symbols(self) -> frozenset[str]:
        """Venue symbols with a depth subscription."""
        return frozenset(self.subscriptions)

    def handle(self, frame: bytes | str, now_ms: int) -> SimReply:
        """The answer to one client TEXT frame at server time ``now_ms``."""
        try:
            request = _contract_request.decode(frame)
        except msgspec.DecodeError as exc:
            return SimReply((self._bad(str(exc), now_ms),))
        method = request.method
        if method == constants.FUTURES_WS_PING:
            return SimReply((_encode({"channel": constants.FUTURES_WS_PONG_CHANNEL, "data": now_ms}).decode(),))
        if method not in (constants.FUTURES_DEPTH_SUBSCRIBE, constants.FUTURES_DEPTH_UNSUBSCRIBE):
            return SimReply((self._bad(f"unknown method {method!r}", now_ms),))
        symbol = request.param.symbol
        if symbol is None:
            return SimReply((self._bad("param.symbol is missing", now_ms),))
        if symbol not in self._served:
            return SimReply((self._error(constants.FUTURES_WS_UNKNOWN_SYMBOL.format(symbol=symbol), now_ms),))
        if method == constants.FUTURES_DEPTH_SUBSCRIBE:
            started = () if symbol in self.subscriptions else (symbol,)
            self.subscriptions[symbol] = None
            return SimReply((self._ack(constants.FUTURES_DEPTH_ACK_CHANNEL, now_ms),), subscribed=started)
        stopped = (symbol,) if symbol in self.subscriptions else ()
        self.subscriptions.pop(symbol, None)
        return SimReply((self._ack(constants.FUTURES_DEPTH_UNSUB_ACK_CHANNEL, now_ms),), unsubscribed=stopped)

    @staticmethod
    def _ack(channel: str, now_ms: int) -> str:
        return _encode({"channel": channel, "data": constants.FUTURES_WS_ACK_DATA, "ts": now_ms}).decode()

    @staticmethod
    def _error(text: str, now_ms: int) -> str:
        return _encode({"channel": constants.FUTURES_WS_ERROR_CHANNEL, "data": text, "ts": now_ms}).decode()

    @classmethod
    def _bad(cls, detail: str, now_ms: int) -> str:
        return cls._error(constants.FUTURES_WS_BAD_REQUEST.format(detail=detail), now_ms)


def _spot_reply(request_id: int, code: int, msg: str) -> str:
    return _encode({"id": request_id, "code": code, "msg": msg}).decode()


# ---------------------------------------------------------------------------
# REST: public endpoints and signed spot endpoints, as ``rest_routes()`` for arb.sim.http
#
# Answers follow the venue: errors are HTTP 400 with ``{"code":..,"msg":..}`` (codes from
# ``constants.ERROR_CODES``), a rate limit is HTTP 429 with ``Retry-After`` (the whole seconds
# until the window takes one again). Signed requests are checked as MEXC does: known
# ``X-MEXC-APIKEY`` (10072), ``recvWindow`` <= 60000 (700005), HMAC-SHA256 hex of totalParams =
# query (without ``signature``) immediately followed by the body (700002), then
# ``timestamp < serverTime + 1000`` and ``serverTime - timestamp <= recvWindow`` (700003). The
# user is the API key.
#
# Not served: ``GET /api/v3/myTrades`` (fills reach the engine through the private
# stream the serving layer drains from ``SimExchange.drain_events``).

_SPOT_TYPES: Final = {
    "LIMIT": (SimOrderType.LIMIT, SimTimeInForce.GTC),
    "LIMIT_MAKER": (SimOrderType.LIMIT, SimTimeInForce.POST_ONLY),
    "IMMEDIATE_OR_CANCEL": (SimOrderType.LIMIT, SimTimeInForce.IOC),
    "FILL_OR_KILL": (SimOrderType.LIMIT, SimTimeInForce.FOK),
    "MARKET": (SimOrderType.MARKET, SimTimeInForce.IOC),
}
_WIRE_TYPES: Final = {value: key for key, value in _SPOT_TYPES.items()}
_SIDES: Final = {"BUY": OrderSide.BUY, "SELL": OrderSide.SELL}
_WIRE_SIDE: Final = {OrderSide.BUY: "BUY", OrderSide.SELL: "SELL"}
_CLIENT_ID: Final = re.compile(constants.CLIENT_ORDER_ID_PATTERN)

# The answer to each refusal category; codes are keys of constants.ERROR_CODES, texts as the
# venue words them where known (the spot v3 "Error Code" table), otherwise the table's gloss.
_REFUSALS: Final[Mapping[ErrorCategory, tuple[int, int, str]]] = {
    ErrorCategory.INSUFFICIENT_BALANCE: (400, 30004, "Insufficient position"),
    ErrorCategory.PRECISION: (400, 10096, "amount decimal places is too long"),
    ErrorCategory.MIN_NOTIONAL: (400, 30002, "The minimum transaction volume cannot be less than the minimum"),
    ErrorCategory.UNKNOWN_ORDER: (400, -2013, "Order does not exist."),
    ErrorCategory.ORDER_REJECTED: (400, 30041, "current order type can not place order"),
    ErrorCategory.INVALID_REQUEST: (400, 33333, "Parameter error"),
    ErrorCategory.RATE_LIMITED: (429, 429, "Too Many Requests"),
    ErrorCategory.AUTH_FAILED: (400, 700002, "Signature for this request is not valid."),
    ErrorCategory.TIMESTAMP: (400, 700003, "Timestamp for this request is outside of the recvWindow."),
    ErrorCategory.MAINTENANCE: (400, 30000, "Trading is suspended for the requested symbol"),
    ErrorCategory.OUTCOME_UNKNOWN: (500, 500, "Internal error"),
}
_UNKNOWN_ORDER_CANCEL: Final = (400, -2011, "Unknown order sent.")
_INVALID_SYMBOL: Final = (400, 30014, "Invalid symbol.")
_API_REFUSED_SYMBOL: Final = (400, 10007, "symbol not support api")
_INVALID_KEY: Final = (400, 10072, "Api key info invalid")
_KEY_REQUIRED: Final = (400, 400, "api key required")
_RECV_WINDOW_TOO_LARGE: Final = (400, 700005, "recvWindow must less than 60000")
_ORDER_REF_MISSING: Final = (
    400, 700004, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"
)
_ILLEGAL_CHARACTERS: Final = (400, 700008, "Illegal characters found in parameter '{name}'; legal range is '{pattern}'.")
_MISSING_PARAM: Final = (400, 44444, "Parameter '{name}' cannot be null")
_BAD_PARAM: Final = (400, 33333, "Parameter '{name}' is invalid")
# MEXC's order rate limits as its docs state them (spot v3 "LIMITS"), not the connector's
# budgets: each endpoint limited by account has its own 500 requests in 10 s. The docs list
# New Order, Query Order and Cancel Order as endpoints of their own, one method of the path each.
ORDER_PLACE_LIMIT: Final = VenueRateLimit("mexc POST " + constants.ORDER_PATH, 500, 10_000)
ORDER_QUERY_LIMIT: Final = VenueRateLimit("mexc GET " + constants.ORDER_PATH, 500, 10_000)
ORDER_CANCEL_LIMIT: Final = VenueRateLimit("mexc DELETE " + constants.ORDER_PATH, 500, 10_000)
_CONTRACT_UNKNOWN_CODE: Final = 1001  # the live code for an unknown contract is not in the stored docs
SIM_FUNDING_RATE: Final = Decimal("0.0001")  # every simulated contract's funding rate per settlement
SIM_FUNDING_CYCLE_H: Final = 8

_encode_numbers = msgspec.json.Encoder(decimal_format="number").encode


class _Refusal(Exception):
    """A venue error answer: HTTP status, MEXC code and message."""

    def __init__(self, answer: tuple[int, int, str], **fields: str) -> None:
        status, code, msg = answer
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg.format(**fields) if fields else msg


def _json(status: int, body: object, headers: tuple[tuple[str, str], ...] = ()) -> SimResponse:
    return SimResponse(status=status, body=_encode(body), headers=(("Content-Type", "application/json"), *headers))


def _refusal_response(refusal: _Refusal, headers: tuple[tuple[str, str], ...] = ()) -> SimResponse:
    return _json(refusal.status, {"code": refusal.code, "msg": refusal.msg}, headers)


def _answering(handler: Callable[[SimRequest, SimContext], SimResponse]) -> Callable[[SimRequest, SimContext], SimResponse]:
    """Turn the refusals a handler raises into the venue's error answers."""

    def answer(request: SimRequest, ctx: SimContext) -> SimResponse:
        try:
            return handler(request, ctx)
        except _Refusal as refusal:
            return _refusal_response(refusal)
        except OrderRejected as exc:
            return _refusal_response(_Refusal(_REFUSALS[exc.category]))

    return answer


SignedHandler = Callable[[dict[str, str], str, SimContext], SimResponse]


def _signed(
    handler: SignedHandler, budget: VenueRateLimit | None = None
) -> Callable[[SimRequest, SimContext], SimResponse]:
    """Authenticate a signed request as the venue does, spend the account's ``budget`` of the
    endpoint, then call ``handler(params, user, ctx)``."""

    def authenticated(request: SimRequest, ctx: SimContext) -> SimResponse:
        user, params = _authenticate(request, ctx)
        if budget is not None:
            admission = ctx.rate_limits.spend(budget, user, ctx.now_ns())
            if not admission.admitted:
                retry_after = str(-(-admission.wait_ns // 1_000_000_000))
                return _refusal_response(_Refusal(_REFUSALS[ErrorCategory.RATE_LIMITED]), (("Retry-After", retry_after),))
        return handler(params, user, ctx)

    return _answering(authenticated)


def _authenticate(request: SimRequest, ctx: SimContext) -> tuple[str, dict[str, str]]:
    api_key = request.headers.get(constants.API_KEY_HEADER.lower())
    if not api_key:
        raise _Refusal(_KEY_REQUIRED)
    credentials = ctx.credentials.get(api_key)
    if credentials is None:
        raise _Refusal(_INVALID_KEY)
    try:
        body = request.body.decode("ascii")
    except UnicodeDecodeError:
        raise _Refusal(_BAD_PARAM, name="body") from None
    params = dict(parse_qsl(body, keep_blank_values=True))
    params.update(parse_qsl(request.query, keep_blank_values=True))  # the query string wins
    recv_window = _int_param(params, "recvWindow", constants.DEFAULT_RECV_WINDOW_MS)
    if recv_window > constants.MAX_RECV_WINDOW_MS:
        raise _Refusal(_RECV_WINDOW_TOO_LARGE)
    signed, signature = _strip_signature(request.query, body)
    expected = hmac.new(credentials.secret_key.reveal().encode(), signed.encode(), hashlib.sha256).hexdigest()
    if signature is None or not hmac.compare_digest(signature, expected):
        raise _Refusal(_REFUSALS[ErrorCategory.AUTH_FAILED])
    timestamp = _int_param(params, "timestamp", None)
    now_ms = ctx.wall_ms()
    if not (timestamp < now_ms + 1000 and now_ms - timestamp <= recv_window):
        raise _Refusal(_REFUSALS[ErrorCategory.TIMESTAMP])
    return api_key, params


def _strip_signature(query: str, body: str) -> tuple[str, str | None]:
    """totalParams without the ``signature`` pair (kept byte for byte), and the signature sent."""
    signature = None
    texts = []
    for text in (query, body):
        kept = []
        for pair in text.split("&") if text else ():
            if pair.startswith("signature="):
                signature = pair[len("signature="):]
            else:
                kept.append(pair)
        texts.append("&".join(kept))
    return texts[0] + texts[1], signature


def _int_param(params: Mapping[str, str], name: str, default: int | None) -> int:
    value = params.get(name)
    if value is None:
        if default is None:
            raise _Refusal(_MISSING_PARAM, name=name)
        return default
    if not value.isdigit() or len(value) > 18:
        raise _Refusal(_BAD_PARAM, name=name)
    return int(value)


def _required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise _Refusal(_MISSING_PARAM, name=name)
    return value


def _market(ctx: SimContext, exchange: ExchangeName) -> SimExchange:
    market = ctx.exchanges.get(exchange)
    if market is None:
        raise _Refusal(_REFUSALS[ErrorCategory.MAINTENANCE])
    return market


def _engine(market: SimExchange, venue_symbol: str) -> MatchingEngine:
    for engine in market.engines.values():
        if engine.instrument.venue_symbol == venue_symbol:
            return engine
    raise _Refusal(_INVALID_SYMBOL)


def _wall_ms_of(ctx: SimContext, time_ns: int) -> int:
    """The venue-clock ms of a monotonic engine time."""
    return ctx.wall_ms() - max(0, ctx.now_ns() - time_ns) // 1_000_000


# -- public spot -------------------------------------------------------------------------


def _ping(request: SimRequest, ctx: SimContext) -> SimResponse:
    return _json(200, {})


def _time(request: SimRequest, ctx: SimContext) -> SimResponse:
    return _json(200, {"serverTime": ctx.wall_ms()})


def _depth(request: SimRequest, ctx: SimContext) -> SimResponse:
    params = dict(parse_qsl(request.query, keep_blank_values=True))
    engine = _engine(_market(ctx, ExchangeName.MEXC), _required(params, "symbol"))
    limit = _int_param(params, "limit", constants.DEPTH_DEFAULT_LIMIT)
    if not 1 <= limit <= constants.DEPTH_MAX_LIMIT:
        raise _Refusal(_BAD_PARAM, name="limit")
    snapshot = engine.snapshot(limit)
    body = MexcSpotDepthEncoder(engine.instrument).snapshot(
        snapshot.bids, snapshot.asks, snapshot.last_update_id, ctx.wall_ms()
    )
    return SimResponse(status=200, body=body)


def _exchange_info(request: SimRequest, ctx: SimContext) -> SimResponse:
    """``{"timezone":"CST","serverTime":..,"rateLimits":[],"exchangeFilters":[],"symbols":[...]}``.

    MEXC states precision as decimals (tick ``10**-quotePrecision``, lot
    ``10**-baseAssetPrecision``), so an instrument whose tick or lot is not a power of ten
    is listed at its decimals only.
    """
    params = dict(parse_qsl(request.query, keep_blank_values=True))
    engines = list(_market(ctx, ExchangeName.MEXC).engines.values())
    wanted = params.get("symbols", params.get("symbol"))
    if wanted is not None:
        names = wanted.split(",")
        known = {engine.instrument.venue_symbol: engine for engine in engines}
        if any(name not in known for name in names):
            raise _Refusal(_INVALID_SYMBOL)
        engines = [known[name] for name in names]
    body = {
        "timezone": "CST",
        "serverTime": ctx.wall_ms(),
        "rateLimits": [],
        "exchangeFilters": [],
        "symbols": [_symbol_info(engine.instrument) for engine in engines],
    }
    return _json(200, body)


def _default_symbols(request: SimRequest, ctx: SimContext) -> SimResponse:
    """``{"code":200,"data":["BTCUSDT",...],"msg":null}``: the listed pairs open to API orders."""
    refused = ctx.faults.api_refused_symbols(constants.VENUE)
    engines = _market(ctx, ExchangeName.MEXC).engines.values()
    symbols = [e.instrument.venue_symbol for e in engines if e.instrument.venue_symbol not in refused]
    return _json(200, {"code": 200, "data": symbols, "msg": None})


def _symbol_info(instrument: Instrument) -> dict[str, object]:
    """One exchangeInfo symbol, keys in the venue's order (the docs' TOMO3LUSDT entry)."""
    return {
        "symbol": instrument.venue_symbol,
        "status": "1",  # online (current docs; older payloads say "ENABLED")
        "baseAsset": instrument.base,
        "baseAssetPrecision": instrument.size_decimals,
        "quoteAsset": instrument.quote,
        "quotePrecision": instrument.price_decimals,
        "quoteAssetPrecision": instrument.price_decimals,
        "baseCommissionPrecision": instrument.size_decimals,
        "quoteCommissionPrecision": instrument.price_decimals,
        "orderTypes": list(constants.ORDER_TYPES),
        "quoteOrderQtyMarketAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "quoteAmountPrecision": f"{instrument.min_notional:f}",
        "baseSizePrecision": f"{instrument.min_size:f}",
        "permissions": ["SPOT"],
        "filters": [],
        "maxQuoteAmount": "5000000",
        "makerCommission": f"{instrument.maker_fee:f}",
        "takerCommission": f"{instrument.taker_fee:f}",
        "tradeSideType": constants.TRADE_SIDE_ALL,
    }


# -- signed spot -------------------------------------------------------------------------


def _place(params: dict[str, str], user: str, ctx: SimContext) -> SimResponse:
    engine = _engine(_market(ctx, ExchangeName.MEXC), _required(params, "symbol"))
    if engine.instrument.venue_symbol in ctx.faults.api_refused_symbols(constants.VENUE):
        raise _Refusal(_API_REFUSED_SYMBOL)
    side = _SIDES.get(_required(params, "side"))
    if side is None:
        raise _Refusal(_BAD_PARAM, name="side")
    kind = _SPOT_TYPES.get(_required(params, "type"))
    if kind is None:
        raise _Refusal(_BAD_PARAM, name="type")
    order_type, tif = kind
    client_id = params.get("newClientOrderId")
    if client_id is not None and not _CLIENT_ID.fullmatch(client_id):
        raise _Refusal(_ILLEGAL_CHARACTERS, name="newClientOrderId", pattern=constants.CLIENT_ORDER_ID_PATTERN)
    quantity, quote, price = params.get("quantity"), params.get("quoteOrderQty"), params.get("price")
    size_lots = price_ticks = 0
    quote_amount = None
    if order_type is SimOrderType.LIMIT:
        if quote is not None:
            raise _Refusal(_BAD_PARAM, name="quoteOrderQty")
        price_ticks = engine.price_ticks(_required(params, "price"))
        size_lots = engine.size_lots(_required(params, "quantity"))
    else:
        if price is not None:
            raise _Refusal(_BAD_PARAM, name="price")
        if (quantity is None) == (quote is None):
            raise _Refusal(_MISSING_PARAM, name="quantity or quoteOrderQty")
        if quantity is not None:
            size_lots = engine.size_lots(quantity)
        elif quote is not None:
            quote_amount = _positive_decimal(quote, "quoteOrderQty")

    fault = ctx.faults.on_order(constants.VENUE)
    max_fill_lots = None
    if fault is not None:
        if fault.kind is OrderFaultKind.REJECT:
            raise _Refusal(_REFUSALS[fault.category or ErrorCategory.ORDER_REJECTED])
        if fault.kind is OrderFaultKind.RATE_LIMIT:
            retry_after = f"{Decimal(fault.retry_after_ms or 0).scaleb(-3).normalize():f}"
            return _refusal_response(_Refusal(_REFUSALS[ErrorCategory.RATE_LIMITED]), (("Retry-After", retry_after),))
        if fault.kind is OrderFaultKind.PARTIAL_FILL:
            fillable = _fillable_lots(engine, side, size_lots, price_ticks, quote_amount)
            max_fill_lots = fillable * (fault.fill_ppm or 0) // 1_000_000
    result = _market(ctx, ExchangeName.MEXC).place_order(
        user, engine.symbol, side, order_type, size_lots, ctx.now_ns(), price_ticks=price_ticks,
        time_in_force=tif, quote_amount=quote_amount, client_id=client_id, max_fill_lots=max_fill_lots,
    )
    if fault is not None and fault.kind is OrderFaultKind.TIMEOUT_PLACED:
        return SimResponse(status=200, body=b"", drop_connection=True)
    order = result.order
    body = {
        "symbol": engine.instrument.venue_symbol,
        "orderId": str(order.order_id),
        "orderListId": -1,
        "price": _price_text(engine, order),
        "origQty": engine.instrument.format_size(order.size_lots),
        "type": _WIRE_TYPES[(order.order_type, order.time_in_force)],
        "side": _WIRE_SIDE[order.side],
        "transactTime": _wall_ms_of(ctx, order.created_ns),
    }
    return _json(200, body)


def _positive_decimal(value: str, name: str) -> Decimal:
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise _Refusal(_BAD_PARAM, name=name) from None
    if not number.is_finite() or number <= 0:
        raise _Refusal(_BAD_PARAM, name=name)
    return number


def _fillable_lots(
    engine: MatchingEngine, side: OrderSide, size_lots: int, limit_ticks: int, quote_amount: Decimal | None
) -> int:
    """Lots the order would take from the book now (the PARTIAL_FILL fault fills a share of it)."""
    book_side = ASK if side is OrderSide.BUY else 0
    budget = 0 if quote_amount is None else to_atoms(quote_amount)
    per_tick_lot = engine.quote_atoms_per_tick_lot
    taken = 0
    for price, size in engine.book.top(book_side, engine.book.depth(book_side)):
        if limit_ticks and (price > limit_ticks if book_side == ASK else price < limit_ticks):
            break
        if quote_amount is None:
            take = min(size, size_lots - taken)
        else:
            take = min(size, budget // (price * per_tick_lot))
            budget -= take * price * per_tick_lot
        taken += take
        if take < size:
            break
    return taken


def _order_ref(params: Mapping[str, str]) -> tuple[int | None, str | None]:
    order_id, client_id = params.get("orderId"), params.get("origClientOrderId")
    if not order_id and not client_id:
        raise _Refusal(_ORDER_REF_MISSING)
    if order_id:
        # MEXC order ids are opaque strings; the simulator's are decimal integers.
        return (int(order_id) if order_id.isdigit() and len(order_id) < 19 else -1), None
    return None, client_id


def _query(params: dict[str, str], user: str, ctx: SimContext) -> SimResponse:
    market = _market(ctx, ExchangeName.MEXC)
    engine = _engine(market, _required(params, "symbol"))
    order_id, client_id = _order_ref(params)
    if order_id is not None:
        event = market.get_order(user, order_id)
        if event.symbol != engine.symbol:
            raise _Refusal(_REFUSALS[ErrorCategory.UNKNOWN_ORDER])
    else:
        event = market.get_order_by_client_id(user, engine.symbol, client_id or "")
    # MEXC is reported not to find an order queried right after its placing at times.
    if ctx.now_ns() - event.created_ns < ctx.faults.query_lag_ms(constants.VENUE) * 1_000_000:
        raise _Refusal(_REFUSALS[ErrorCategory.UNKNOWN_ORDER])
    return _json(200, _order_info(engine, event, ctx))


def _cancel(params: dict[str, str], user: str, ctx: SimContext) -> SimResponse:
    market = _market(ctx, ExchangeName.MEXC)
    engine = _engine(market, _required(params, "symbol"))
    order_id, client_id = _order_ref(params)
    try:
        event, _ = market.cancel_order(user, engine.symbol, ctx.now_ns(), order_id=order_id, client_id=client_id)
    except OrderRejected as exc:
        if exc.category is ErrorCategory.UNKNOWN_ORDER:
            raise _Refusal(_UNKNOWN_ORDER_CANCEL) from None
        raise
    info = _order_info(engine, event, ctx)
    body = {
        "symbol": info["symbol"],
        "origClientOrderId": event.client_id,
        "orderId": info["orderId"],
        "clientOrderId": event.client_id,
        **{key: info[key] for key in ("price", "origQty", "executedQty", "cummulativeQuoteQty", "status",
                                      "timeInForce", "type", "side")},
    }
    return _json(200, body)


def _open_orders(params: dict[str, str], user: str, ctx: SimContext) -> SimResponse:
    market = _market(ctx, ExchangeName.MEXC)
    engine = _engine(market, _required(params, "symbol"))
    return _json(200, [_order_info(engine, event, ctx) for event in market.open_orders(user, engine.symbol)])


def _trade_fee(params: dict[str, str], user: str, ctx: SimContext) -> SimResponse:
    """``GET /api/v3/tradeFee?symbol=``: the account's rates on one symbol, here the instrument's (JSON numbers)."""
    instrument = _engine(_market(ctx, ExchangeName.MEXC), _required(params, "symbol")).instrument
    body = b'{"data":{"makerCommission":%s,"takerCommission":%s},"code":0,"msg":"success"}' % (
        f"{instrument.maker_fee:f}".encode(),
        f"{instrument.taker_fee:f}".encode(),
    )
    return SimResponse(status=200, body=body)


def _account(params: dict[str, str], user: str, ctx: SimContext) -> SimResponse:
    balances = _market(ctx, ExchangeName.MEXC).balances(user)
    body = {
        "makerCommission": None,
        "takerCommission": None,
        "buyerCommission": None,
        "sellerCommission": None,
        "canTrade": True,
        "canWithdraw": True,
        "canDeposit": True,
        "updateTime": None,
        "accountType": "SPOT",
        "balances": [
            {"asset": asset, "free": f"{free:f}", "locked": f"{locked:f}"} for asset, (free, locked) in balances.items()
        ],
        "permissions": ["SPOT"],
    }
    return _json(200, body)


def _price_text(engine: MatchingEngine, order: OrderEvent) -> str:
    return engine.instrument.format_price(order.price_ticks) if order.price_ticks else "0"


def _status(order: OrderEvent) -> str:
    """The venue's status: IOC/FOK/market remainders are reported canceled, as MEXC does."""
    if order.status in (SimOrderStatus.CANCELED, SimOrderStatus.EXPIRED):
        return "PARTIALLY_CANCELED" if order.filled_lots else "CANCELED"
    return order.status.name


def _order_info(engine: MatchingEngine, order: OrderEvent, ctx: SimContext) -> dict[str, object]:
    """An order as ``GET /api/v3/order`` reports it (keys and types of the recorded allOrders reply)."""
    instrument = engine.instrument
    return {
        "symbol": instrument.venue_symbol,
        "orderId": str(order.order_id),
        "orderListId": "-1",
        "clientOrderId": order.client_id,
        "price": _price_text(engine, order),
        "origQty": instrument.format_size(order.size_lots),
        "executedQty": instrument.format_size(order.filled_lots),
        "cummulativeQuoteQty": f"{from_atoms(order.filled_quote_atoms):f}",
        "status": _status(order),
        "timeInForce": None,
        "type": _WIRE_TYPES[(order.order_type, order.time_in_force)],
        "side": _WIRE_SIDE[order.side],
        "stopPrice": None,
        "icebergQty": None,
        "time": str(_wall_ms_of(ctx, order.created_ns)),
        "updateTime": str(_wall_ms_of(ctx, order.time_ns)),
        "isWorking": True,
        "origQuoteOrderQty": f"{from_atoms(order.quote_amount_atoms):f}",
    }


# -- contract (public market data; order placement refused) -------------------------------


def _contract_error(code: int, message: str) -> SimResponse:
    return _json(200, {"success": False, "code": code, "message": message})


def _contract_engine(ctx: SimContext, venue_symbol: str) -> MatchingEngine | None:
    market = ctx.exchanges.get(ExchangeName.MEXC_FUTURES)
    if market is not None:
        for engine in market.engines.values():
            if engine.instrument.venue_symbol == venue_symbol:
                return engine
    return None


def _contract_depth(request: SimRequest, ctx: SimContext) -> SimResponse:
    symbol = request.path_params.get("symbol", request.path.rsplit("/", 1)[-1])
    engine = _contract_engine(ctx, symbol)
    if engine is None:
        return _contract_error(_CONTRACT_UNKNOWN_CODE, constants.FUTURES_WS_UNKNOWN_SYMBOL.format(symbol=symbol))
    params = dict(parse_qsl(request.query, keep_blank_values=True))
    limit = params.get("limit", "")
    depth = int(limit) if limit.isdigit() and 0 < int(limit) <= constants.DEPTH_MAX_LIMIT else constants.DEPTH_DEFAULT_LIMIT
    snapshot = engine.snapshot(depth)
    body = MexcFuturesDepthEncoder(engine.instrument).snapshot(
        snapshot.bids, snapshot.asks, snapshot.last_update_id, ctx.wall_ms()
    )
    return SimResponse(status=200, body=body)


def _contract_detail(request: SimRequest, ctx: SimContext) -> SimResponse:
    """``{"success":true,"code":0,"data":[...]}``; with ``?symbol=`` the data is that one contract."""
    params = dict(parse_qsl(request.query, keep_blank_values=True))
    symbol = params.get("symbol")
    market = ctx.exchanges.get(ExchangeName.MEXC_FUTURES)
    engines = [] if market is None else list(market.engines.values())
    if symbol is None:
        return SimResponse(status=200, body=_encode_numbers(
            {"success": True, "code": 0, "data": [_contract_info(e.instrument) for e in engines]}
        ))
    engine = _contract_engine(ctx, symbol)
    if engine is None:
        return _contract_error(_CONTRACT_UNKNOWN_CODE, constants.FUTURES_WS_UNKNOWN_SYMBOL.format(symbol=symbol))
    return SimResponse(status=200, body=_encode_numbers({"success": True, "code": 0, "data": _contract_info(engine.instrument)}))


def _contract_info(instrument: Instrument) -> dict[str, object]:
    """One contract of ``/api/v1/contract/detail`` (JSON numbers, as the venue sends them)."""
    return {
        "symbol": instrument.venue_symbol,
        "displayNameEn": f"{instrument.venue_symbol} PERPETUAL",
        "baseCoin": instrument.base,
        "quoteCoin": instrument.quote,
        "settleCoin": instrument.quote,
        "contractSize": instrument.contract_size,
        "minLeverage": 1,
        "maxLeverage": 125,
        "priceScale": instrument.price_decimals,
        "volScale": instrument.size_decimals,
        "priceUnit": instrument.tick_size,
        "volUnit": instrument.lot_size,
        "minVol": instrument.min_size,
        "maxVol": Decimal(1_000_000),
        "takerFeeRate": instrument.taker_fee,
        "makerFeeRate": instrument.maker_fee,
        "state": constants.CONTRACT_STATE_ENABLED,
        "isHidden": False,
        "apiAllowed": False,  # no contract API trading for ordinary accounts (see _contract_order)
    }


def _contract_funding_rate(request: SimRequest, ctx: SimContext) -> SimResponse:
    """``{"success":true,"code":0,"data":{"symbol":...,"fundingRate":0.0001,"collectCycle":8,"nextSettleTime":ms}}``.

    Every simulated contract funds at ``SIM_FUNDING_RATE`` every ``SIM_FUNDING_CYCLE_H`` hours,
    settling on the venue clock's whole cycles.
    """
    symbol = request.path_params.get("symbol", request.path.rsplit("/", 1)[-1])
    if _contract_engine(ctx, symbol) is None:
        return _contract_error(_CONTRACT_UNKNOWN_CODE, constants.FUTURES_WS_UNKNOWN_SYMBOL.format(symbol=symbol))
    now_ms = ctx.wall_ms()
    cycle_ms = SIM_FUNDING_CYCLE_H * 3_600_000
    data = {
        "symbol": symbol,
        "fundingRate": SIM_FUNDING_RATE,
        "maxFundingRate": Decimal("0.003"),
        "minFundingRate": Decimal("-0.003"),
        "collectCycle": SIM_FUNDING_CYCLE_H,
        "nextSettleTime": now_ms - now_ms % cycle_ms + cycle_ms,
        "timestamp": now_ms,
    }
    return SimResponse(status=200, body=_encode_numbers({"success": True, "code": 0, "data": data}))


def _contract_order(request: SimRequest, ctx: SimContext) -> SimResponse:
    """Contract order placement, refused as the venue refuses accounts without contract API access.

    The contract docs mark the order endpoints "Under maintenance"; the live answer
    reported in ccxt/ccxt#14474 is HTTP 200 ``{"success":false,"code":1002,"message":
    "Contract not allow place order!"}``, given here to every caller.
    """
    return _contract_error(constants.CONTRACT_ORDER_REFUSED_CODE, constants.CONTRACT_ORDER_REFUSED_MSG)


def _contract_ping(request: SimRequest, ctx: SimContext) -> SimResponse:
    """``{"success":true,"code":0,"data":1587442022003}``: the contract server's time in ms."""
    return _json(200, {"success": True, "code": 0, "data": ctx.wall_ms()})


def rest_routes() -> list[Route]:
    """Every MEXC REST endpoint the simulator serves (spot v3 and contract v1 paths)."""
    from .private_sim import user_stream_routes  # it builds on this module

    public = _answering
    return [
        *user_stream_routes(),
        Route("GET", constants.PING_PATH, public(_ping)),
        Route("GET", constants.TIME_PATH, public(_time)),
        Route("GET", constants.DEPTH_PATH, public(_depth)),
        Route("GET", constants.EXCHANGE_INFO_PATH, public(_exchange_info)),
        Route("GET", constants.DEFAULT_SYMBOLS_PATH, public(_default_symbols)),
        Route("POST", constants.ORDER_PATH, _signed(_place, ORDER_PLACE_LIMIT)),
        Route("GET", constants.ORDER_PATH, _signed(_query, ORDER_QUERY_LIMIT)),
        Route("DELETE", constants.ORDER_PATH, _signed(_cancel, ORDER_CANCEL_LIMIT)),
        Route("GET", constants.OPEN_ORDERS_PATH, _signed(_open_orders)),
        Route("GET", constants.ACCOUNT_PATH, _signed(_account)),
        Route("GET", constants.TRADE_FEE_PATH, _signed(_trade_fee)),
        Route("GET", constants.CONTRACT_PING_PATH, _contract_ping),
        Route("GET", constants.CONTRACT_DEPTH_PATH, _contract_depth),
        Route("GET", constants.CONTRACT_DETAIL_PATH, _contract_detail),
        Route("GET", constants.CONTRACT_FUNDING_RATE_PATH, _contract_funding_rate),
        Route("POST", constants.CONTRACT_ORDER_CREATE_PATH, _contract_order),
        Route("POST", constants.CONTRACT_ORDER_SUBMIT_PATH, _contract_order),
    ]
