"""The server side of MEXC's market-data wire format, for the simulated venue (no networking).

* ``MexcSpotSimSession`` / ``MexcFuturesSimSession`` answer one connection's client frames
  (subscribe, unsubscribe, ping) the way the venue does and track its depth subscriptions.
* ``MexcSpotDepthEncoder`` writes protobuf ``PushDataV3ApiWrapper`` aggre-depth pushes and
  ``GET /api/v3/depth`` bodies; ``MexcFuturesDepthEncoder`` writes contract ``push.depth``
  frames and ``GET /api/v1/contract/depth/{symbol}`` bodies.

Levels come in as integers, ``(side, price_ticks, size_lots)`` for pushes (``BookUpdate.levels``,
``DeltaBatch.levels()``) and ``(price_ticks, size_lots)`` best first for snapshots, and go out
as plain decimal text on the instrument's grid. Frames follow ``arb.exchanges.base.WsPayload``:
``bytes`` is a BINARY websocket frame, ``str`` a TEXT frame; REST bodies are bytes.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import NamedTuple

import msgspec

from arb_core.book import ASK

from ...instruments import Instrument
from ...types import ExchangeName
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
        self._sizes: dict[int, bytes] = {}  # lots -> quantity field

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
        sizes = self._sizes
        byte = _BYTE
        asks: list[bytes] = []
        bids: list[bytes] = []
        for side, price, size in levels:
            p = prices.get(price)
            if p is None:
                p = self._price_field(price)
            q = sizes.get(size)
            if q is None:
                q = self._size_field(size)
            if side == ASK:
                asks += (_ASKS_TAG, byte[len(p) + len(q)], p, q)
            elif side == 0:
                bids += (_BIDS_TAG, byte[len(p) + len(q)], p, q)
            else:
                raise ValueError(f"mexc spot push: side {side!r} is neither BID (0) nor ASK (1)")
            # an item is at most 2 * (2 + 40) bytes, so its length is a one-byte varint
        first = str(from_version).encode()
        last = str(to_version).encode()
        asks += bids
        asks += (self._event, _FROM_TAG, byte[len(first)], first, _TO_TAG, byte[len(last)], last)
        body = b"".join(asks)
        return b"".join((self._head, _SEND_TIME_TAG, varint(send_time_ms), _AGGRE_TAG, varint(len(body)), body))

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

    def _size_field(self, lots: int) -> bytes:
        text = self._size_text(lots).encode()
        if len(self._sizes) >= _CACHE_MAX:
            self._sizes.clear()
        field = self._sizes[lots] = _QUANTITY_TAG + _BYTE[len(text)] + text
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
