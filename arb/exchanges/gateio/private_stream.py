"""Gate.io private streams: signed order, fill and balance subscriptions and their pushes.

Private channels live on the public websockets; each subscribe request carries
``"auth":{"method":"api_key","KEY":..,"SIGN":hex(HMAC-SHA512(secret,"channel=<ch>&event=<ev>&time=<t>"))}``.
A refused request is answered with ``"error":{"code":4,"message":"Authentication fail"}``.

* Spot: ``spot.orders`` and ``spot.usertrades`` with payload ``["!all"]`` (every pair),
  ``spot.balances`` without payload.
* Futures (USDT): ``futures.orders`` and ``futures.usertrades`` with payload
  ``[user_id, "!all"]``, ``futures.balances`` with ``[user_id]``; the user id is the ``user``
  of ``GET /futures/usdt/accounts``, read once before the first connection. Sizes are signed
  contracts; orders and fills report unsigned contracts (the futures order unit), numbers
  arrive as JSON numbers and are decoded exactly from their text.

Orders and trades of a pair the catalog does not list (made outside the engine) are left out
item by item (``PrivateMessage.unlisted``), the rest of their push kept.

Pushes::

    {"time":1605175506,"time_ms":1605175506123,"channel":"spot.orders","event":"update",
     "result":[{"id":"30784435","text":"t-abc","event":"put","currency_pair":"BTC_USDT",...}]}
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from operator import attrgetter
from typing import ClassVar

import msgspec

from ...errors import ExchangeError
from ...instruments import InstrumentCatalog
from ...secrets import ApiCredentials, redacted
from ...types import OrderSide
from ..base import Frame, WsPayload
from ..models import Fill, OrderState, listed_balances
from ..private_stream import PrivateMessage, PushedFees, listed_items
from ..rest import RestClient
from . import constants
from .auth import GateioSigner
from .schemas import (
    FuturesAccount,
    FuturesBalancePush,
    FuturesOrderPush,
    FuturesUserTrade,
    SpotBalancePush,
    SpotOrder,
    SpotOrderPush,
    SpotUserTrade,
    WsPush,
)
from .trading import MS_FROM, GateioFuturesTrading, GateioSpotTrading, from_text, ms_or_seconds_to_ms, time_ms

PRIVATE_CHANNELS = (constants.SPOT_ORDERS_CHANNEL, constants.SPOT_USERTRADES_CHANNEL, constants.SPOT_BALANCES_CHANNEL)
FUTURES_PRIVATE_CHANNELS = (
    constants.FUTURES_ORDERS_CHANNEL,
    constants.FUTURES_USERTRADES_CHANNEL,
    constants.FUTURES_BALANCES_CHANNEL,
)
ALL_PAIRS = "!all"

_push = msgspec.json.Decoder(WsPush)
_orders = msgspec.json.Decoder(list[SpotOrderPush])
_trades = msgspec.json.Decoder(list[SpotUserTrade])
_balances = msgspec.json.Decoder(list[SpotBalancePush])
_futures_orders = msgspec.json.Decoder(list[FuturesOrderPush])
_futures_trades = msgspec.json.Decoder(list[FuturesUserTrade])
_futures_balances = msgspec.json.Decoder(list[FuturesBalancePush])
_futures_account = msgspec.json.Decoder(FuturesAccount)
_encode = msgspec.json.Encoder().encode
_pair = attrgetter("currency_pair")
_contract = attrgetter("contract")
_PONG = b'"' + constants.SPOT_PONG_CHANNEL.encode() + b'"'
_FUTURES_PONG = b'"' + constants.FUTURES_PONG_CHANNEL.encode() + b'"'


def _subscribe_frame(auth: dict[str, str], channel: str, payload: list[str] | None, now_s: int, request_id: int) -> str:
    request: dict[str, object] = {"time": now_s, "id": request_id, "channel": channel, "event": constants.EVENT_SUBSCRIBE}
    if payload is not None:
        request["payload"] = payload
    request["auth"] = auth
    return _encode(request).decode()


def _channel_push(frame: Frame, channels: tuple[str, ...]) -> WsPush | PrivateMessage:
    """The push of one of ``channels`` to decode further, or the message an ack/error/other frame is."""
    push = _push.decode(frame)
    if push.error is not None:
        return PrivateMessage(error=f"{push.channel} {push.event}: code {push.error.code} {push.error.message}")
    if push.channel not in channels:
        return PrivateMessage()
    if push.event == constants.EVENT_SUBSCRIBE:
        return PrivateMessage(ack=True)
    if push.event != constants.EVENT_UPDATE:
        return PrivateMessage()
    return push


def order_of_push(push: SpotOrderPush) -> SpotOrder:
    """The REST order object a ``spot.orders`` push describes (open until its ``finish`` event)."""
    return SpotOrder(
        id=push.id,
        currency_pair=push.currency_pair,
        type=push.type,
        side=push.side,
        amount=push.amount,
        status=constants.SPOT_ORDER_STATUS_OPEN if push.event != "finish" else "closed",
        text=push.text,
        price=push.price,
        left=push.left,
        filled_amount=push.filled_amount,
        filled_total=push.filled_total,
        avg_deal_price=push.avg_deal_price,
        fee=push.fee,
        fee_currency=push.fee_currency,
        gt_fee=push.gt_fee,
        point_fee=push.point_fee,
        finish_as=push.finish_as,
        create_time_ms=None if push.create_time_ms is None else time_ms(push.create_time_ms, "create_time_ms"),
        update_time_ms=None if push.update_time_ms is None else time_ms(push.update_time_ms, "update_time_ms"),
    )


def _changed_at_ms(push: SpotBalancePush) -> int | None:
    """When the balance of one ``spot.balances`` item changed (ms), if it says; None for a stamp that
    is no time in ms (0, seconds, garbage): the balance is then undated (applied as newer), not
    dropped as older than every read, nor lost with the push's others."""
    if push.timestamp_ms is None:
        return None
    try:
        stamp = time_ms(push.timestamp_ms, "timestamp_ms")
    except ValueError:
        return None
    return stamp if stamp >= MS_FROM else None


class _GateioPrivateStream:
    """What Gate.io's spot and futures private dialects share: signing, subscribe frames, ping
    and pong, and the ack/error handling of pushes; a market supplies its channels, their
    payloads and the decoding of an update."""

    keepalive_interval_s = None
    channels: ClassVar[tuple[str, ...]]
    ping_channel: ClassVar[str]
    pong_marker: ClassVar[bytes]
    market: ClassVar[str]  # for error messages

    def __init__(self, catalog: InstrumentCatalog, ws_url: str, signer: GateioSigner, clock: Callable[[], float]) -> None:
        self._signer = signer
        self._catalog = catalog
        self._ws_url = ws_url
        self._clock = clock
        self._request_id = 0
        self._auth_secrets: list[str] = []  # the API key and signatures the last subscriptions carried

    @property
    def venue(self) -> str:
        return constants.VENUE

    async def connect_url(self, rest: RestClient) -> str:
        return self._ws_url

    async def keepalive(self, rest: RestClient) -> None:
        return None

    async def release(self, rest: RestClient) -> None:
        return None

    def subscribe_frames(self) -> Sequence[WsPayload]:
        """One signed subscribe frame per private channel, signed now."""
        now_s = int(self._clock())
        frames = []
        self._auth_secrets = []
        for channel in self.channels:
            payload = self._payload(channel)
            self._request_id += 1
            auth = self._signer.channel_auth(channel, constants.EVENT_SUBSCRIBE, now_s)
            self._auth_secrets += (auth["KEY"], auth["SIGN"])
            frames.append(_subscribe_frame(auth, channel, payload, now_s, self._request_id))
        return frames

    def _payload(self, channel: str) -> list[str] | None:
        raise NotImplementedError

    def ping_frame(self) -> WsPayload:
        return _encode({"time": int(self._clock()), "channel": self.ping_channel}).decode()

    def is_pong(self, frame: Frame) -> bool:
        return self.pong_marker in bytes(frame[:120])

    def decode(self, frame: Frame, is_binary: bool) -> PrivateMessage:
        """An update push of a private channel, an ack, an error reply, or nothing of interest."""
        try:
            push = _channel_push(frame, self.channels)
            if isinstance(push, PrivateMessage):
                if push.error is not None:  # the venue's text may echo what the subscription carried
                    return push._replace(error=redacted(push.error, self._auth_secrets))
                return push
            return self._update(push)
        except msgspec.DecodeError as exc:
            raise ValueError(f"gateio {self.market}private frame: {exc}") from None

    def _update(self, push: WsPush) -> PrivateMessage:
        raise NotImplementedError


class GateioSpotPrivateStream(_GateioPrivateStream):
    """The ``PrivateDialect`` of Gate.io spot for one key over one instrument catalog:
    ``spot.orders`` and ``spot.usertrades`` of every pair, and ``spot.balances``."""

    channels = PRIVATE_CHANNELS
    ping_channel = constants.SPOT_PING_CHANNEL
    pong_marker = _PONG
    market = ""

    def __init__(
        self,
        credentials: ApiCredentials,
        catalog: InstrumentCatalog,
        ws_url: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        signer = GateioSigner(credentials)
        super().__init__(catalog, ws_url, signer, clock)
        self._trading = GateioSpotTrading(signer, catalog)

    def _payload(self, channel: str) -> list[str] | None:
        return None if channel == constants.SPOT_BALANCES_CHANNEL else [ALL_PAIRS]

    def _update(self, push: WsPush) -> PrivateMessage:
        if push.channel == constants.SPOT_ORDERS_CHANNEL:
            pushed, unlisted = listed_items(self._catalog, _orders.decode(push.result), _pair)
            orders = self._trading.order_states(order_of_push(p) for p in pushed)
            return PrivateMessage(orders=orders, unlisted=unlisted)
        if push.channel == constants.SPOT_BALANCES_CHANNEL:
            items = _balances.decode(push.result)
            listed = ((b.currency, b.available, b.freeze, _changed_at_ms(b)) for b in items)
            return PrivateMessage(balances=listed_balances(constants.VENUE, listed))
        trades, unlisted = listed_items(self._catalog, _trades.decode(push.result), _pair)
        return PrivateMessage(fills=[self.fill(t) for t in trades], unlisted=unlisted)

    def fill(self, trade: SpotUserTrade) -> Fill:
        """The ``Fill`` of one ``spot.usertrades`` item (fee asset as Gate charges it when not given:
        the asset received)."""
        instrument = self._catalog.by_venue_symbol(trade.currency_pair)
        side = OrderSide(trade.side)
        fee_asset = trade.fee_currency or instrument.fee_asset(side)
        return Fill(
            symbol=instrument.symbol,
            order_id=trade.order_id,
            client_order_id=from_text(trade.text),
            trade_id=str(trade.id),
            side=side,
            price=trade.price,
            quantity=trade.amount,
            fee=trade.fee,
            fee_asset=fee_asset,
            is_maker=trade.role == "maker",
            timestamp_ms=0 if trade.create_time_ms is None else time_ms(trade.create_time_ms, "create_time_ms"),
        )


class GateioFuturesPrivateStream(_GateioPrivateStream):
    """The ``PrivateDialect`` of Gate.io USDT perpetuals for one key over one instrument catalog.

    Order pushes carry no fee: ``OrderState.fee`` is the sum of the ``futures.usertrades``
    fees pushed for the order so far, in the settle asset (before any, the order's own rate
    stands in, as for its answers). ``futures.balances`` tells the
    wallet balance only, so it is reported as ``balances_changed`` (the stream reads the
    account's free and locked margin by REST).
    """

    channels = FUTURES_PRIVATE_CHANNELS
    ping_channel = constants.FUTURES_PING_CHANNEL
    pong_marker = _FUTURES_PONG
    market = "futures "

    def __init__(
        self,
        credentials: ApiCredentials,
        catalog: InstrumentCatalog,
        ws_url: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        signer = GateioSigner(credentials)
        super().__init__(catalog, ws_url, signer, clock)
        self._trading = GateioFuturesTrading(signer, catalog, clock=clock)
        self.user_id: str | None = None
        self._fees = PushedFees(constants.VENUE)

    async def connect_url(self, rest: RestClient) -> str:
        """The websocket URL, after reading the account's user id (once) from ``/futures/usdt/accounts``."""
        if self.user_id is None:
            body = await rest.fetch(self._trading.account())
            try:
                user = _futures_account.decode(body).user
            except msgspec.DecodeError as exc:
                raise ExchangeError(constants.VENUE, f"futures account: unreadable answer {body[:200]!r}") from exc
            if user is None:
                raise ExchangeError(constants.VENUE, "futures account: the answer names no user id")
            self.user_id = str(user)
        return self._ws_url

    def _payload(self, channel: str) -> list[str] | None:
        if self.user_id is None:
            raise ExchangeError(constants.VENUE, "futures private stream: user id unknown before connecting")
        if channel == constants.FUTURES_BALANCES_CHANNEL:
            return [self.user_id]
        return [self.user_id, constants.ALL_CONTRACTS]

    def _update(self, push: WsPush) -> PrivateMessage:
        if push.channel == constants.FUTURES_ORDERS_CHANNEL:
            orders, unlisted = listed_items(self._catalog, _futures_orders.decode(push.result), _contract)
            return PrivateMessage(orders=[self.order(p) for p in orders], unlisted=unlisted)
        if push.channel == constants.FUTURES_USERTRADES_CHANNEL:
            trades, unlisted = listed_items(self._catalog, _futures_trades.decode(push.result), _contract)
            return PrivateMessage(fills=[self.fill(t) for t in trades], unlisted=unlisted)
        _futures_balances.decode(push.result)  # validated; the split comes from REST
        return PrivateMessage(balances_changed=True)

    def order(self, push: FuturesOrderPush) -> OrderState:
        """The ``OrderState`` of one ``futures.orders`` item (unsigned contracts, fee from the fills seen)."""
        state = self._trading.order_state(push)
        updated_ms = state.updated_at_ms
        if push.update_time:
            updated_ms = ms_or_seconds_to_ms(push.update_time, "update_time")
        fee, fee_asset = self._fees.total(state.order_id)  # no asset while no fee was pushed: not a zero fee
        if state.is_final:
            self._fees.finish(state.order_id)
        return msgspec.structs.replace(state, fee=fee, fee_asset=fee_asset, updated_at_ms=updated_ms)

    def fill(self, trade: FuturesUserTrade) -> Fill:
        """The ``Fill`` of one ``futures.usertrades`` item: ``|size|`` contracts, fee in the settle asset."""
        if not trade.size:
            raise ValueError(f"gateio futures trade {trade.id}: size 0")
        instrument = self._catalog.by_venue_symbol(trade.contract)
        order_id = str(trade.order_id)
        if trade.fee is not None:  # a push without one leaves the order's fee unknown, not zero
            self._fees.add(order_id, str(trade.id), trade.fee, instrument.quote)
        return Fill(
            symbol=instrument.symbol,
            order_id=order_id,
            client_order_id=from_text(trade.text),
            trade_id=str(trade.id),
            side=OrderSide.BUY if trade.size > 0 else OrderSide.SELL,
            price=trade.price,
            quantity=abs(trade.size),
            fee=Decimal(0) if trade.fee is None else trade.fee,
            fee_asset=instrument.quote,
            is_maker=trade.role == "maker",
            timestamp_ms=trade.create_time_ms,
        )
