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
trailing zeros. Pushes are built from precomputed byte fragments and per-value caches, not
``json.dumps``: the simulator must sustain tens of thousands of pushes per second.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Sequence
from typing import ClassVar, NamedTuple

import msgspec

from arb_core.wire.common import WireScale

from . import constants
from .schemas import WsRequest

Level = tuple[int, int]  # (price_ticks, size_lots)

_CACHE_LIMIT = 1 << 16  # values per cache before it is emptied (a random walk keeps making new ones)

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
    __slots__ = ("symbol", "scale", "depth", "_prices", "_sizes", "_update", "_full", "_ticker")

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
        self._sizes: dict[int, bytes] = {}
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
        return plain_decimal(lots * self.scale.lot_units, self.scale.size_decimals).encode()

    @abstractmethod
    def _price_fragment(self, text: bytes) -> bytes:
        """Subclass data."""

    @abstractmethod
    def _size_fragment(self, text: bytes) -> bytes:
        """Subclass data."""

    def _fill(self, levels: Iterable[Level]) -> None:
        prices, sizes = self._prices, self._sizes
        if len(prices) > _CACHE_LIMIT:
            prices.clear()
        if len(sizes) > _CACHE_LIMIT:
            sizes.clear()
        for level in levels:
            if len(level) != 2:
                raise ValueError(f"gateio sim {self.symbol}: level {level!r} is not (price_ticks, size_lots)")
            price, size = level
            if price not in prices:
                prices[price] = self._price_fragment(self._price_text(price))
            if size not in sizes:
                sizes[size] = self._size_fragment(self._size_text(size))

    def levels(self, levels: Sequence[Level]) -> bytes:
        """The JSON array body (without brackets) of ``levels``."""
        prices, sizes = self._prices, self._sizes
        try:
            return b",".join([prices[p] + sizes[s] for p, s in levels])
        except (KeyError, TypeError, ValueError):
            self._fill(levels)
            return b",".join([prices[p] + sizes[s] for p, s in levels])

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

    def _price_fragment(self, text: bytes) -> bytes:
        return b'["' + text + b'","'

    def _size_fragment(self, text: bytes) -> bytes:
        return text + b'"]'

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

    def _price_fragment(self, text: bytes) -> bytes:
        return b'{"p":"' + text + b'","s":'

    def _size_fragment(self, text: bytes) -> bytes:
        return text + b"}"

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
