"""Gate.io spot and USDT-perpetual market data: the ``MarketDataDialect`` of ``order_book_update``.

Both markets speak the same frame grammar and the same sync rule (REST snapshot with
``with_id=true``, then diffs with ``U <= id + 1 <= u``, gap when ``U > last u + 1``); they
differ only in data: URL, channel names, the subscribe payload, the snapshot path and the
level format the compiled decoders of ``arb_core.wire.gateio`` read. The shared base holds
the mechanism and each class only declares its data.

Subscribe frame, as Gate's own recording shows it::

    {"time":1619093532,"channel":"spot.order_book_update","event":"subscribe","payload":["INK_USDT","100ms"]}
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar

import msgspec

from arb_core import router
from arb_core.wire import gateio as wire
from arb_core.wire.common import WireScale

from ...instruments import Instrument
from ..base import Frame, SnapshotRequest, WsPayload
from . import constants
from .schemas import WsPush

# Gate spot books carry levels finer than the pair's order precision: amounts with up to
# 10 decimals whatever ``amount_precision`` says, and prices 1-2 decimals finer than
# ``precision`` (orders resting from before a precision change; see the 2021 recording).
SPOT_BOOK_EXTRA_PRICE_DECIMALS = 2
SPOT_BOOK_SIZE_DECIMALS = 10
# A level's size is an int64 of book lots: at 10 decimals it holds 9.2e8 coins, 9,200 USDT of a
# coin priced at 0.00001, and a larger level would not decode (its book resyncing for ever).
# Sizes therefore get at most 16 minus the pair's price decimals: with prices quoted to 4-6
# significant digits, an int64 then holds a level worth about a million USDT or more. Digits
# finer than that (dust a fraction of a coin's smallest quoted value) are rounded down.
SPOT_BOOK_SIZE_DIGITS = 16

# Pong frames are about 100 bytes; anything much longer is a data frame.
_PONG_MAX_BYTES = 256

_encode = msgspec.json.Encoder().encode
_push = msgspec.json.Decoder(WsPush)


class _GateioMarketData:
    """The mechanism shared by both Gate markets; subclasses declare only data."""

    venue: ClassVar[str] = constants.VENUE
    snapshot_in_first_push: ClassVar[bool] = False

    default_ws_url: ClassVar[str]
    channel: ClassVar[str]
    ping_channel: ClassVar[str]
    snapshot_path: ClassVar[str]
    snapshot_symbol_param: ClassVar[str]  # query parameter naming the pair / contract
    snapshot_rate_limit: ClassVar[str]
    intervals: ClassVar[Mapping[int, str]]  # depth -> interval
    level_in_payload: ClassVar[bool]  # futures name the depth in the payload
    book_extra_price_decimals: ClassVar[int]  # BOOK price decimals beyond the order grid's
    book_size_decimals: ClassVar[int]  # size decimals the venue writes (the BOOK scale's widest)
    book_size_digits: ClassVar[int]  # price decimals plus size decimals the BOOK scale may have
    book_floors_sizes: ClassVar[bool]  # sizes finer than the BOOK scale are rounded down
    router_dialect: ClassVar[int]  # arb_core.router dialect running this market's steady state

    __slots__ = ("ws_url", "depth", "_clock", "_pong_tag")

    def __init__(
        self,
        ws_url: str | None = None,
        *,
        depth: int = constants.ORDER_BOOK_LIMIT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``ws_url`` overrides the venue URL (simulator, testnet); ``depth`` is both the
        websocket depth and the REST snapshot limit, as Gate's sync procedure requires."""
        if depth not in self.intervals:
            raise ValueError(
                f"{self.venue} {self.channel}: depth={depth!r} is not one of {sorted(self.intervals)}"
            )
        self.ws_url = ws_url or self.default_ws_url
        self.depth = depth
        self._clock = clock
        self._pong_tag = f'"channel":"{self.ping_channel.replace("ping", "pong")}"'.encode()

    classify = staticmethod(wire.classify)
    frame_symbol = staticmethod(wire.frame_symbol)

    @staticmethod
    def error_reason(frame: Frame) -> str:
        """``code message`` of a refused (un)subscribe reply's ``error``; "" when unreadable."""
        try:
            error = _push.decode(frame).error
        except msgspec.MsgspecError:
            return ""
        return "" if error is None else f"{error.code} {error.message}"

    def subscription_payload(self, venue_symbol: str) -> list[str]:
        """The ``payload`` of one symbol's (un)subscribe request."""
        payload = [venue_symbol, self.intervals[self.depth]]
        if self.level_in_payload:
            payload.append(str(self.depth))
        return payload

    def subscribe_frames(self, venue_symbols: Sequence[str]) -> Sequence[WsPayload]:
        """One subscribe request per symbol (the channel takes one pair per request)."""
        return self._requests(constants.EVENT_SUBSCRIBE, venue_symbols)

    def unsubscribe_frames(self, venue_symbols: Sequence[str]) -> Sequence[WsPayload]:
        """One unsubscribe request per symbol."""
        return self._requests(constants.EVENT_UNSUBSCRIBE, venue_symbols)

    def _requests(self, event: str, venue_symbols: Sequence[str]) -> list[WsPayload]:
        now = int(self._clock())
        return [
            _encode(
                {"time": now, "channel": self.channel, "event": event, "payload": self.subscription_payload(s)}
            ).decode()
            for s in venue_symbols
        ]

    def ping_frame(self) -> WsPayload:
        """``{"time":<s>,"channel":"spot.ping"}``; the server answers on ``spot.pong``."""
        return _encode({"time": int(self._clock()), "channel": self.ping_channel}).decode()

    def is_pong(self, frame: Frame) -> bool:
        """Whether ``frame`` is the pong channel's reply; a short byte search, no parsing."""
        return len(frame) <= _PONG_MAX_BYTES and self._pong_tag in bytes(frame)

    def snapshot_request(self, venue_symbol: str) -> SnapshotRequest:
        """``GET <order_book>?<pair>=X&limit=<depth>&with_id=true``; ``id`` continues the diff ids."""
        return SnapshotRequest(
            path=self.snapshot_path,
            params=(
                (self.snapshot_symbol_param, venue_symbol),
                ("limit", str(self.depth)),
                ("with_id", "true"),
            ),
            limits=((self.snapshot_rate_limit, constants.ORDER_BOOK_WEIGHT),),
        )

    def book_scale(self, instrument: Instrument) -> WireScale:
        """The fixed-point scale of ``instrument``'s BOOK (the order grid, widened where the venue's
        books are finer, sizes within ``book_size_digits``); decoders bound to it check that
        frames are for this symbol."""
        price_decimals, tick_units, size_decimals, lot_units = instrument.wire_scale()
        if self.book_extra_price_decimals:
            price_decimals, tick_units = price_decimals + self.book_extra_price_decimals, 1
        widest = min(self.book_size_decimals, self.book_size_digits - instrument.price_decimals)
        if size_decimals < widest:
            size_decimals, lot_units = widest, 1
        return WireScale(
            price_decimals, tick_units, size_decimals, lot_units, instrument.venue_symbol,
            floor_sizes=self.book_floors_sizes,
        )


class GateioSpotMarketData(_GateioMarketData):
    """Gate.io spot ``spot.order_book_update`` diffs over ``/spot/order_book`` snapshots.

    Levels are ``[priceStr, amountStr]``; book scales are finer than the order grid
    (``SPOT_BOOK_EXTRA_PRICE_DECIMALS`` / ``SPOT_BOOK_SIZE_DECIMALS``).
    """

    __slots__ = ()
    default_ws_url = constants.SPOT_WS_URL
    channel = constants.SPOT_ORDER_BOOK_UPDATE_CHANNEL
    ping_channel = constants.SPOT_PING_CHANNEL
    snapshot_path = constants.ORDER_BOOK_PATH
    snapshot_symbol_param = "currency_pair"
    snapshot_rate_limit = constants.SPOT_ORDER_BOOK_RATE_LIMIT
    intervals = constants.SPOT_BOOK_INTERVALS
    level_in_payload = False
    book_extra_price_decimals = SPOT_BOOK_EXTRA_PRICE_DECIMALS
    book_size_decimals = SPOT_BOOK_SIZE_DECIMALS
    book_size_digits = SPOT_BOOK_SIZE_DIGITS
    book_floors_sizes = True
    router_dialect = router.DIALECT_GATEIO_SPOT
    decode_update = staticmethod(wire.decode_spot_update)
    decode_snapshot = staticmethod(wire.decode_spot_snapshot)


class GateioFuturesMarketData(_GateioMarketData):
    """Gate.io USDT perpetual ``futures.order_book_update`` diffs over ``/futures/usdt/order_book``.

    Levels are ``{"p": priceStr, "s": contracts}``; the book scale is the contract's
    ``order_price_round`` tick and whole contracts.
    """

    __slots__ = ()
    default_ws_url = constants.FUTURES_WS_URL
    channel = constants.FUTURES_ORDER_BOOK_UPDATE_CHANNEL
    ping_channel = constants.FUTURES_PING_CHANNEL
    snapshot_path = constants.FUTURES_ORDER_BOOK_PATH
    snapshot_symbol_param = "contract"
    snapshot_rate_limit = constants.FUTURES_ORDER_BOOK_RATE_LIMIT
    intervals = constants.FUTURES_BOOK_INTERVALS
    level_in_payload = True
    book_extra_price_decimals = 0
    book_size_decimals = 0
    book_size_digits = 0
    book_floors_sizes = False
    router_dialect = router.DIALECT_GATEIO_FUTURES
    decode_update = staticmethod(wire.decode_futures_update)
    decode_snapshot = staticmethod(wire.decode_futures_snapshot)
