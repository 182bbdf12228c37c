"""The server side of MEXC's spot user data stream, for the simulated venue (no I/O here).

* ``user_stream_routes()``: signed ``POST/PUT/DELETE /api/v3/userDataStream`` (create, extend,
  close a listenKey valid 60 min), keys kept in ``SimContext.user_streams``.
* ``open_session``: a connection to ``/ws?listenKey=<key>`` belongs to the key's user; an
  unknown or expired key is refused at the handshake.
* ``MexcPrivateSimSession`` accepts ``spot@private.orders.v3.api.pb``,
  ``spot@private.deals.v3.api.pb`` and ``spot@private.account.v3.api.pb`` on such a
  connection (a request naming only private topics; anything else goes to the market-data
  session) and encodes the user's order events and fills as binary ``PushDataV3ApiWrapper``
  messages (body fields 304 and 306), then one account push (307) per asset they changed,
  with the free and frozen amounts after the batch.
"""

from __future__ import annotations

import decimal
import secrets
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Final
from urllib.parse import parse_qsl

import msgspec

from ...sim.http import Route, SimContext, SimResponse
from ...sim.matching import Fill, Liquidity, MatchingEngine, OrderEvent, from_atoms
from ...sim.matching import OrderStatus as SimOrderStatus
from ...sim.matching import OrderType as SimOrderType
from ...sim.matching import TimeInForce as SimTimeInForce
from ...types import ExchangeName, OrderSide
from . import constants
from .schemas import SpotWsRequest
from .sim import _BAD_PARAM, MexcSpotSimSession, SimReply, _json, _Refusal, _signed, _spot_reply, length_delimited, tag, varint

PRIVATE_TOPICS: Final = (constants.PRIVATE_ORDERS_TOPIC, constants.PRIVATE_DEALS_TOPIC, constants.PRIVATE_ACCOUNT_TOPIC)
PUSH_PRIVATE_ORDERS: Final = 304
PUSH_PRIVATE_DEALS: Final = 306
PUSH_PRIVATE_ACCOUNT: Final = 307
PrivateItem = tuple[Fill | OrderEvent, int]  # an event and its order's cumulative fee in atoms

_ORDER_TYPES: Final = {
    (SimOrderType.LIMIT, SimTimeInForce.GTC): 1,
    (SimOrderType.LIMIT, SimTimeInForce.POST_ONLY): 2,
    (SimOrderType.LIMIT, SimTimeInForce.IOC): 3,
    (SimOrderType.LIMIT, SimTimeInForce.FOK): 4,
    (SimOrderType.MARKET, SimTimeInForce.IOC): 5,
    (SimOrderType.MARKET, SimTimeInForce.FOK): 5,
}
_TRADE_TYPES: Final = {OrderSide.BUY: 1, OrderSide.SELL: 2}
_EXACT = decimal.Context(prec=40)
_request = msgspec.json.Decoder(SpotWsRequest)


# -- REST: listenKey lifecycle ---------------------------------------------------------------


def _create(params: dict[str, str], user: str, ctx: SimContext) -> SimResponse:
    key = secrets.token_hex(32)
    ctx.user_streams[key] = (user, ctx.wall_ms() + constants.LISTEN_KEY_TTL_S * 1000)
    return _json(200, {"listenKey": key})


def _owned(params: Mapping[str, str], user: str, ctx: SimContext) -> str:
    key = params.get("listenKey", "")
    owner = ctx.user_streams.get(key)
    if owner is None or owner[0] != user or owner[1] < ctx.wall_ms():
        raise _Refusal(_BAD_PARAM, name="listenKey")
    return key


def _extend(params: dict[str, str], user: str, ctx: SimContext) -> SimResponse:
    key = _owned(params, user, ctx)
    ctx.user_streams[key] = (user, ctx.wall_ms() + constants.LISTEN_KEY_TTL_S * 1000)
    return _json(200, {"listenKey": key})


def _close(params: dict[str, str], user: str, ctx: SimContext) -> SimResponse:
    key = _owned(params, user, ctx)
    del ctx.user_streams[key]
    return _json(200, {"listenKey": key})


def user_stream_routes() -> list[Route]:
    """The signed listenKey endpoints."""
    path = constants.USER_DATA_STREAM_PATH
    return [Route("POST", path, _signed(_create)), Route("PUT", path, _signed(_extend)), Route("DELETE", path, _signed(_close))]


def listen_key_user(context: SimContext, target: str) -> tuple[bool, str | None]:
    """Whether a connection to ``target`` (path and query) is accepted, and the user of its listenKey."""
    _, _, query = target.partition("?")
    key = dict(parse_qsl(query)).get("listenKey")
    if key is None:
        return True, None
    owner = context.user_streams.get(key)
    if owner is None or owner[1] < context.wall_ms():
        return False, None
    return True, owner[0]


# -- websocket ------------------------------------------------------------------------------


class MexcPrivateSimSession:
    """A spot connection's market-data session plus the private topics of its listenKey's user."""

    def __init__(self, public: MexcSpotSimSession, context: SimContext, user: str | None) -> None:
        self.public = public
        self.context = context
        self.user = user
        self.private: dict[str, None] = {}
        self._reported: dict[str, tuple[Decimal, Decimal]] = {}  # asset -> (free, frozen) last pushed

    @property
    def topics(self) -> dict[str, str]:
        """The market-data topics (what the book fan-out serves)."""
        return self.public.topics

    def handle(self, frame: bytes | str, now_ms: int) -> SimReply:
        """Private SUBSCRIPTION / UNSUBSCRIPTION here; every other frame by the market-data session."""
        try:
            request = _request.decode(frame)
        except msgspec.DecodeError:
            return self.public.handle(frame, now_ms)
        if request.method not in (constants.WS_SUBSCRIBE, constants.WS_UNSUBSCRIBE) or not request.params:
            return self.public.handle(frame, now_ms)
        if not all(topic in PRIVATE_TOPICS for topic in request.params):
            return self.public.handle(frame, now_ms)
        topics = ",".join(request.params)
        if self.user is None:  # private topics need a connection opened with a listenKey
            text = constants.WS_NOT_SUBSCRIBED.format(topics=topics, reason=constants.WS_BLOCKED_REASON)
            return SimReply((_spot_reply(request.id, constants.WS_OK_CODE, text),))
        for topic in request.params:
            if request.method == constants.WS_SUBSCRIBE:
                if topic == constants.PRIVATE_ACCOUNT_TOPIC and topic not in self.private:
                    self._reported = self._balances(self.user)  # pushes report changes from here on
                self.private[topic] = None
            else:
                self.private.pop(topic, None)
        return SimReply((_spot_reply(request.id, constants.WS_OK_CODE, topics),))

    def private_frames(self, items: Iterable[PrivateItem], send_ms: int) -> tuple[bytes, ...]:
        """Binary pushes of this connection's user's events, in the order they happened."""
        if self.user is None or not self.private:
            return ()
        frames = []
        changed: dict[str, ExchangeName] = {}
        for event, _fee in items:
            if event.user != self.user:
                continue
            engine = self.context.exchanges[event.exchange].engines[event.symbol]
            changed[engine.instrument.base] = changed[engine.instrument.quote] = event.exchange
            if isinstance(event, Fill):
                if constants.PRIVATE_DEALS_TOPIC in self.private:
                    frames.append(deal_push(engine, event, self._wall_ms(event.time_ns), send_ms))
            elif constants.PRIVATE_ORDERS_TOPIC in self.private:
                frames.append(order_push(engine, event, self._wall_ms(event.created_ns), send_ms))
        if changed and constants.PRIVATE_ACCOUNT_TOPIC in self.private:
            now = self._balances(self.user)
            for asset in changed:
                free, frozen = now.get(asset, (Decimal(0), Decimal(0)))
                before_free, before_frozen = self._reported.get(asset, (Decimal(0), Decimal(0)))
                if (free, frozen) != (before_free, before_frozen):
                    self._reported[asset] = (free, frozen)
                    frames.append(account_push(asset, free, frozen, free - before_free, frozen - before_frozen, send_ms))
        return tuple(frames)

    def _balances(self, user: str) -> dict[str, tuple[Decimal, Decimal]]:
        return self.context.exchanges[ExchangeName.MEXC].balances(user)

    def _wall_ms(self, time_ns: int) -> int:
        return self.context.wall_ms() - max(0, self.context.now_ns() - time_ns) // 1_000_000


def _string(field: int, text: str) -> bytes:
    return length_delimited(field, text.encode()) if text else b""


def _number(field: int, value: int) -> bytes:
    return tag(field, 0) + varint(value) if value else b""


def _wrapper(topic: str, engine: MatchingEngine, body_field: int, body: bytes, send_ms: int) -> bytes:
    return (
        _string(constants.PUSH_CHANNEL, topic)
        + _string(constants.PUSH_SYMBOL, engine.instrument.venue_symbol)
        + _number(constants.PUSH_SEND_TIME, send_ms)
        + length_delimited(body_field, body)
    )


def _plain(value: Decimal) -> str:
    return "0" if not value else f"{value.normalize():f}"


def _status(event: OrderEvent) -> int:
    if event.status is SimOrderStatus.NEW:
        return 1
    if event.status is SimOrderStatus.FILLED:
        return 2
    if event.status is SimOrderStatus.PARTIALLY_FILLED:
        return 3
    return 5 if event.filled_lots else 4  # canceled, or partially canceled


def order_push(engine: MatchingEngine, event: OrderEvent, created_ms: int, send_ms: int) -> bytes:
    """``PushDataV3ApiWrapper{channel, symbol, sendTime, privateOrders=304}`` of one order event."""
    instrument = engine.instrument
    filled_base = event.filled_lots * engine.base_atoms_per_lot
    average = _EXACT.divide(Decimal(event.filled_quote_atoms), Decimal(filled_base)) if filled_base else Decimal(0)
    price = instrument.format_price(event.price_ticks) if event.price_ticks else "0"
    quantity = instrument.format_size(event.size_lots)
    ordered = engine.notional_atoms(event.price_ticks, event.size_lots) if event.price_ticks else event.quote_amount_atoms
    body = (
        _string(1, str(event.order_id))
        + _string(2, event.client_id or "")
        + _string(3, price)
        + _string(4, quantity)
        + _string(5, _plain(from_atoms(ordered)))
        + _string(6, _plain(average))
        + _number(7, _ORDER_TYPES[(event.order_type, event.time_in_force)])
        + _number(8, _TRADE_TYPES[event.side])
        + _string(10, _plain(from_atoms(max(0, ordered - event.filled_quote_atoms))))
        + _string(11, instrument.format_size(event.size_lots - event.filled_lots))
        + _string(13, instrument.format_size(event.filled_lots))
        + _string(14, _plain(from_atoms(event.filled_quote_atoms)))
        + _number(15, _status(event))
        + _number(16, created_ms)
    )
    return _wrapper(constants.PRIVATE_ORDERS_TOPIC, engine, PUSH_PRIVATE_ORDERS, body, send_ms)


def deal_push(engine: MatchingEngine, fill: Fill, time_ms: int, send_ms: int) -> bytes:
    """``PushDataV3ApiWrapper{channel, symbol, sendTime, privateDeals=306}`` of one fill."""
    instrument = engine.instrument
    body = (
        _string(1, instrument.format_price(fill.price_ticks))
        + _string(2, instrument.format_size(fill.size_lots))
        + _string(3, _plain(from_atoms(engine.notional_atoms(fill.price_ticks, fill.size_lots))))
        + _number(4, _TRADE_TYPES[fill.side])
        + _number(5, 1 if fill.liquidity is Liquidity.MAKER else 0)
        + _string(7, str(fill.trade_id))
        + _string(8, fill.client_id or "")
        + _string(9, str(fill.order_id))
        + _string(10, _plain(from_atoms(fill.fee_atoms)))
        + _string(11, fill.fee_asset)
        + _number(12, time_ms)
    )
    return _wrapper(constants.PRIVATE_DEALS_TOPIC, engine, PUSH_PRIVATE_DEALS, body, send_ms)


def account_push(asset: str, free: Decimal, frozen: Decimal, free_change: Decimal, frozen_change: Decimal, send_ms: int) -> bytes:
    """``PushDataV3ApiWrapper{channel, sendTime, privateAccount=307}`` of one asset's balance after a change."""
    body = (
        _string(1, asset)
        + _string(3, _plain(free))
        + _string(4, _plain(free_change))
        + _string(5, _plain(frozen))
        + _string(6, _plain(frozen_change))
        + _number(8, send_ms)
    )
    return (
        _string(constants.PUSH_CHANNEL, constants.PRIVATE_ACCOUNT_TOPIC)
        + _number(constants.PUSH_SEND_TIME, send_ms)
        + length_delimited(PUSH_PRIVATE_ACCOUNT, body)
    )
