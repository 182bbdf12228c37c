"""MEXC market-data dialects: what ``arb.exchanges.ws`` / ``book_sync`` need to run MEXC books.

Spot (API v3): JSON text control frames, binary protobuf ``PushDataV3ApiWrapper`` pushes
of ``spot@public.aggre.depth.v3.api.pb@100ms@SYMBOL``; snapshot ``GET /api/v3/depth``.
Contract (v1): JSON everywhere, ``sub.depth`` diffs, snapshot
``GET /api/v1/contract/depth/{symbol}``. The per-frame members are the compiled
``arb_core.wire.mexc`` functions themselves.

Sequence rules, as the decoders map them onto ``OrderBook.apply_batch``:

* spot: ``fromVersion -> first_update_id``, ``toVersion -> last_update_id``, snapshot
  ``lastUpdateId`` -> both. A push ending at or before the book is STALE (the documented
  "drop pushes with toVersion < lastUpdateId"); ``fromVersion > last + 1`` is a gap; so
  "each push starts at previous toVersion + 1" holds after sync.
* contract: ``version`` -> both ids; anything but ``previous + 1`` is stale or a gap.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import msgspec

from arb_core import router
from arb_core.wire import mexc as wire
from arb_core.wire.common import WireError, WireScale

from ...errors import ArbitrageEngineError
from ...instruments import Instrument
from ...types import ExchangeName
from ..base import Frame, SnapshotRequest, WsPayload
from ..models import FrameKind
from . import constants
from .schemas import ContractWsReply, SpotWsReply

_JSON_OPEN = 0x7B  # "{": MEXC text frames are JSON objects; a protobuf push starts with a field tag

_spot_reply = msgspec.json.Decoder(SpotWsReply)
_contract_reply = msgspec.json.Decoder(ContractWsReply)


class SubscriptionError(ArbitrageEngineError, ValueError):
    """A subscription the venue would refuse: too many topics on one connection, or a bad symbol."""


class _MexcMarketData(ABC):
    """What the spot and contract dialects share; the differences are class data."""

    exchange: ClassVar[ExchangeName]
    default_ws_url: ClassVar[str]
    max_subscriptions: ClassVar[int | None]  # depth streams per connection; None = no documented limit
    _ping: ClassVar[str]
    _pong_marker: ClassVar[bytes]  # a pong contains this, and is short
    _snapshot_path: ClassVar[str]
    _snapshot_limits: ClassVar[tuple[tuple[str, int], ...]]  # (limit id, cost) a snapshot spends
    router_dialect: ClassVar[int]  # arb_core.router dialect running this market's steady state
    # Book sizes finer than the order grid are rounded down rather than refused: MEXC's own docs
    # show BTCUSDT depth quantities with 8 decimals, and one such level would otherwise keep the
    # book from decoding at all (resyncing without end).
    book_floors_sizes: ClassVar[bool]

    def __init__(self, ws_url: str | None = None, *, snapshot_limit: int | None = None) -> None:
        if snapshot_limit is not None and snapshot_limit <= 0:
            raise ValueError(f"{self.exchange.value}: snapshot_limit={snapshot_limit} must be positive")
        self._ws_url = ws_url or self.default_ws_url
        self._snapshot_limit = snapshot_limit
        self._ids = itertools.count(1)

    @property
    def venue(self) -> str:
        """Market name for messages and metrics (``mexc``, ``mexc_futures``)."""
        return self.exchange.value

    @property
    def ws_url(self) -> str:
        """Websocket URL of the market-data stream."""
        return self._ws_url

    @property
    def snapshot_in_first_push(self) -> bool:
        """MEXC books start from a REST snapshot."""
        return False

    def ping_frame(self) -> WsPayload:
        """The application-level ping (MEXC drops connections that stay silent for 60 s)."""
        return self._ping

    def is_pong(self, frame: Frame) -> bool:
        """Whether ``frame`` answers ``ping_frame``: short, JSON, carries the pong marker."""
        return 0 < len(frame) <= 96 and frame[0] == _JSON_OPEN and self._pong_marker in bytes(frame)

    def book_scale(self, instrument: Instrument) -> WireScale:
        """The decoders' fixed-point scale of ``instrument``'s book, checking the frame's symbol.

        MEXC books use the instrument's own grid: spot prices/quantities at
        ``quotePrecision``/``baseAssetPrecision`` decimals (finer quantities rounded down,
        ``book_floors_sizes``), contract prices in ``priceUnit`` ticks and volumes in contracts.
        """
        if instrument.exchange is not self.exchange:
            raise ValueError(
                f"{self.venue}: instrument {instrument.symbol} belongs to {instrument.exchange.value}"
            )
        return WireScale(*instrument.wire_scale(), symbol=instrument.venue_symbol, floor_sizes=self.book_floors_sizes)

    def snapshot_request(self, venue_symbol: str) -> SnapshotRequest:
        """The REST depth snapshot of ``venue_symbol`` whose version continues the diff stream."""
        _check_symbol(self.venue, venue_symbol)
        path = self._snapshot_path.format(symbol=venue_symbol)
        params = self._snapshot_params(venue_symbol)
        if self._snapshot_limit is not None:
            params += (("limit", str(self._snapshot_limit)),)
        return SnapshotRequest(path=path, params=params, limits=self._snapshot_limits)

    def subscribe_frames(self, venue_symbols: Sequence[str]) -> Sequence[WsPayload]:
        """Frames that subscribe the depth diffs of ``venue_symbols`` on one connection."""
        return self._control_frames(True, self._checked(venue_symbols))

    def unsubscribe_frames(self, venue_symbols: Sequence[str]) -> Sequence[WsPayload]:
        """Frames that unsubscribe the depth diffs of ``venue_symbols``."""
        return self._control_frames(False, self._checked(venue_symbols))

    def _checked(self, venue_symbols: Sequence[str]) -> Sequence[str]:
        if isinstance(venue_symbols, str):
            raise SubscriptionError(f"{self.venue}: expected a sequence of symbols, got the string {venue_symbols!r}")
        for symbol in venue_symbols:
            _check_symbol(self.venue, symbol)
        if len(set(venue_symbols)) != len(venue_symbols):
            raise SubscriptionError(f"{self.venue}: duplicate symbols in {list(venue_symbols)}")
        limit = self.max_subscriptions
        if limit is not None and len(venue_symbols) > limit:
            raise SubscriptionError(
                f"{self.venue}: {len(venue_symbols)} depth subscriptions on one connection, the venue allows "
                f"{limit}; split the symbols over several connections"
            )
        return venue_symbols

    def _snapshot_params(self, venue_symbol: str) -> tuple[tuple[str, str], ...]:
        return ()

    @abstractmethod
    def _control_frames(self, subscribe: bool, venue_symbols: Sequence[str]) -> list[WsPayload]:
        """The (un)subscribe frames of ``venue_symbols`` (already checked)."""


class MexcSpotMarketData(_MexcMarketData):
    """MEXC spot: aggregated protobuf depth diffs, ``GET /api/v3/depth`` snapshots."""

    exchange = ExchangeName.MEXC
    default_ws_url = constants.WS_URL
    max_subscriptions = constants.WS_MAX_SUBSCRIPTIONS
    _ping = msgspec.json.encode({"method": constants.WS_PING}).decode()
    _pong_marker = b'"msg":"' + constants.WS_PONG_MSG.encode() + b'"'
    _snapshot_path = constants.DEPTH_PATH
    # Its endpoint's budget and its weight of the IP's, as every public spot read.
    _snapshot_limits = (
        (constants.DEPTH_PATH, 1), (constants.IP_WEIGHT_LIMIT_ID, constants.ENDPOINT_WEIGHTS[constants.DEPTH_PATH])
    )
    router_dialect = router.DIALECT_MEXC_SPOT
    book_floors_sizes = True

    frame_symbol = staticmethod(wire.spot_frame_symbol)
    decode_update = staticmethod(wire.decode_spot_depth)
    decode_snapshot = staticmethod(wire.decode_spot_snapshot)

    def __init__(
        self,
        ws_url: str | None = None,
        *,
        interval: str = constants.DEPTH_INTERVAL,
        snapshot_limit: int | None = constants.DEPTH_SYNC_LIMIT,
    ) -> None:
        if interval not in constants.DEPTH_INTERVALS:
            raise ValueError(f"mexc: depth interval {interval!r} is not one of {constants.DEPTH_INTERVALS}")
        if snapshot_limit is not None and snapshot_limit > constants.DEPTH_MAX_LIMIT:
            raise ValueError(f"mexc: snapshot_limit={snapshot_limit} above the venue's {constants.DEPTH_MAX_LIMIT}")
        super().__init__(ws_url, snapshot_limit=snapshot_limit)
        self.interval = interval

    def topic(self, venue_symbol: str) -> str:
        """The depth topic of ``venue_symbol``: ``spot@public.aggre.depth.v3.api.pb@100ms@BTCUSDT``."""
        return constants.AGGRE_DEPTH_TOPIC.format(interval=self.interval, symbol=venue_symbol)

    def classify(self, frame: Frame) -> int:
        """BOOK_UPDATE for a protobuf depth push, ACK/ERROR/PONG for a JSON reply, else OTHER.

        Text frames are JSON objects (first byte ``{``); binary pushes start with a protobuf
        tag, never ``{`` (it would be a group of field 15, which the wrapper does not have).
        Raises WireError on a frame that is neither.
        """
        if not len(frame):
            return FrameKind.OTHER
        if frame[0] != _JSON_OPEN:
            depth = wire.spot_push_body(frame) in constants.PUSH_DEPTH_BODIES
            return FrameKind.BOOK_UPDATE if depth else FrameKind.OTHER
        reply = self._reply(frame)
        if reply is None:
            return FrameKind.OTHER
        if reply.msg == constants.WS_PONG_MSG:
            return FrameKind.PONG
        return FrameKind.ERROR if _spot_refusal(reply) else FrameKind.ACK

    def error_reason(self, frame: Frame) -> str:
        """``code msg`` of a refused subscription's reply; "" when unreadable."""
        try:
            reply = self._reply(frame)
        except WireError:
            return ""
        return "" if reply is None else f"{reply.code} {reply.msg}"

    @staticmethod
    def _reply(frame: Frame) -> SpotWsReply | None:
        try:
            return _spot_reply.decode(frame)
        except msgspec.ValidationError:
            return None
        except msgspec.DecodeError as exc:
            raise WireError(f"mexc spot text frame: {exc}: {bytes(frame[:200])!r}") from None

    def _snapshot_params(self, venue_symbol: str) -> tuple[tuple[str, str], ...]:
        return (("symbol", venue_symbol),)

    def _control_frames(self, subscribe: bool, venue_symbols: Sequence[str]) -> list[WsPayload]:
        if not venue_symbols:
            return []
        method = constants.WS_SUBSCRIBE if subscribe else constants.WS_UNSUBSCRIBE
        request = {"method": method, "params": [self.topic(s) for s in venue_symbols], "id": next(self._ids)}
        return [msgspec.json.encode(request).decode()]


class MexcFuturesMarketData(_MexcMarketData):
    """MEXC USDT perpetuals (contract v1): JSON ``push.depth`` diffs, contract depth snapshots."""

    exchange = ExchangeName.MEXC_FUTURES
    default_ws_url = constants.FUTURES_WS_URL
    max_subscriptions = None
    _ping = msgspec.json.encode({"method": constants.FUTURES_WS_PING}).decode()
    _pong_marker = b'"channel":"' + constants.FUTURES_WS_PONG_CHANNEL.encode() + b'"'
    _snapshot_path = constants.CONTRACT_DEPTH_PATH
    _snapshot_limits = ((constants.CONTRACT_DEPTH_PATH, 1),)
    router_dialect = router.DIALECT_MEXC_FUTURES
    book_floors_sizes = False  # whole contracts

    classify = staticmethod(wire.classify_futures)
    frame_symbol = staticmethod(wire.futures_frame_symbol)
    decode_update = staticmethod(wire.decode_futures_depth)
    decode_snapshot = staticmethod(wire.decode_futures_snapshot)

    def error_reason(self, frame: Frame) -> str:
        """The ``data`` of an ``rs.error`` frame (``"contract not exists"``); "" when unreadable."""
        try:
            return bytes(_contract_reply.decode(frame).data).decode()
        except (msgspec.MsgspecError, UnicodeDecodeError):
            return ""

    def _control_frames(self, subscribe: bool, venue_symbols: Sequence[str]) -> list[WsPayload]:
        method = constants.FUTURES_DEPTH_SUBSCRIBE if subscribe else constants.FUTURES_DEPTH_UNSUBSCRIBE
        # Subscribed unmerged: by default the venue merges increments, one push spanning several
        # versions, which the version sequence check reads as a gap (a resync per push, never in sync).
        options = {"compress": False} if subscribe else {}
        return [
            msgspec.json.encode({"method": method, "param": {"symbol": s, **options}}).decode() for s in venue_symbols
        ]


def _spot_refusal(reply: SpotWsReply) -> bool:
    return reply.code != constants.WS_OK_CODE or reply.msg.startswith(constants.WS_NOT_SUBSCRIBED_PREFIX)


def _check_symbol(venue: str, symbol: object) -> None:
    if (
        not isinstance(symbol, str)
        or not symbol
        or symbol != symbol.upper()
        or not all(c.isalnum() or c == "_" for c in symbol)
        or not symbol.isascii()
    ):
        raise SubscriptionError(f"{venue}: venue symbol {symbol!r} must be upper-case ASCII letters, digits and '_'")


if TYPE_CHECKING:
    from ..base import MarketDataDialect

    _SPOT: type[MarketDataDialect] = MexcSpotMarketData
    _FUTURES: type[MarketDataDialect] = MexcFuturesMarketData
