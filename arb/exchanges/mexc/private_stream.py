"""MEXC spot user data stream: listenKey lifecycle, private topic subscription, protobuf pushes.

``POST /api/v3/userDataStream`` (signed) gives a listenKey valid 60 min; ``PUT`` with it
extends it (sent every 30 min), ``DELETE`` closes it. Each connection goes to
``wss://wbs-api.mexc.com/ws?listenKey=<key>`` with a key created for it, then subscribes
``spot@private.orders.v3.api.pb``, ``spot@private.deals.v3.api.pb`` and
``spot@private.account.v3.api.pb``. Pushes are binary ``PushDataV3ApiWrapper`` messages
(mexcdevelop/websocket-proto) with the body in field 304 (``PrivateOrdersV3Api``), 306
(``PrivateDealsV3Api``) or 307 (``PrivateAccountV3Api``: one asset's free ``balanceAmount``
and ``frozenAmount`` after a change); replies to requests are JSON text. The topics cover every
pair of the account: an order or deal of a pair the catalog does not list is left out
(``PrivateMessage.unlisted``).
The protobuf is read by the small reader below: these are per-order messages, not the book path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import Final

import msgspec

from ...errors import ArbitrageEngineError, ExchangeError
from ...instruments import InstrumentCatalog
from ...secrets import ApiCredentials
from ...types import OrderSide
from ..base import Frame, WsPayload
from ..models import Balance, Fill, OrderState, OrderStatus, OrderType
from ..private_stream import PrivateMessage, PushedFees
from ..rest import RestClient, RestRequest
from . import constants
from .auth import MexcSigner
from .schemas import SpotWsReply

log = logging.getLogger(__name__)

# PushDataV3ApiWrapper bodies and the fields read from them (PrivateOrdersV3Api.proto, PrivateDealsV3Api.proto).
PUSH_PRIVATE_ORDERS: Final = 304
PUSH_PRIVATE_DEALS: Final = 306
PUSH_PRIVATE_ACCOUNT: Final = 307
ORDER_FIELDS: Final = {
    1: "id", 2: "clientId", 3: "price", 4: "quantity", 5: "amount", 6: "avgPrice", 7: "orderType",
    8: "tradeType", 9: "isMaker", 10: "remainAmount", 11: "remainQuantity", 12: "lastDealQuantity",
    13: "cumulativeQuantity", 14: "cumulativeAmount", 15: "status", 16: "createTime",
}
DEAL_FIELDS: Final = {
    1: "price", 2: "quantity", 3: "amount", 4: "tradeType", 5: "isMaker", 6: "isSelfTrade", 7: "tradeId",
    8: "clientOrderId", 9: "orderId", 10: "feeAmount", 11: "feeCurrency", 12: "time",
}
ACCOUNT_FIELDS: Final = {
    1: "vcoinName", 2: "coinId", 3: "balanceAmount", 4: "balanceAmountChange", 5: "frozenAmount",
    6: "frozenAmountChange", 7: "type", 8: "time",
}
_PAIR_BODIES: Final = (PUSH_PRIVATE_ORDERS, PUSH_PRIVATE_DEALS)  # bodies of one pair, the wrapper's symbol
TRADE_TYPES: Final = {1: OrderSide.BUY, 2: OrderSide.SELL}
# orderType: 1 LIMIT_ORDER, 2 POST_ONLY, 3 IMMEDIATE_OR_CANCEL, 4 FILL_OR_KILL, 5 MARKET_ORDER
ORDER_TYPES: Final = {1: OrderType.LIMIT, 2: OrderType.LIMIT, 3: OrderType.LIMIT, 4: OrderType.LIMIT, 5: OrderType.MARKET}
# status: 1 not traded, 2 fully traded, 3 partially traded, 4 canceled, 5 partially canceled
ORDER_STATUSES: Final = {
    1: OrderStatus.NEW,
    2: OrderStatus.FILLED,
    3: OrderStatus.PARTIALLY_FILLED,
    4: OrderStatus.CANCELED,
    5: OrderStatus.CANCELED,
}
PRIVATE_TOPICS: Final = (constants.PRIVATE_ORDERS_TOPIC, constants.PRIVATE_DEALS_TOPIC, constants.PRIVATE_ACCOUNT_TOPIC)

_reply = msgspec.json.Decoder(SpotWsReply)
_encode = msgspec.json.Encoder().encode


class ListenKey(msgspec.Struct, frozen=True):
    """``{"listenKey":"pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1"}``."""

    listenKey: str


_listen_key = msgspec.json.Decoder(ListenKey)


# -- protobuf reader ------------------------------------------------------------------------


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("protobuf: truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift >= 64:
            raise ValueError("protobuf: varint longer than 10 bytes")


def fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """``(field number, value)`` of each field: varints as int, length-delimited as bytes; fixed-width
    fields are skipped. Raises ValueError on a truncated or malformed message."""
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = _varint(data, pos)
            yield number, value
        elif wire_type == 2:
            size, pos = _varint(data, pos)
            if pos + size > end:
                raise ValueError(f"protobuf: field {number} runs past the message end")
            yield number, data[pos : pos + size]
            pos += size
        elif wire_type in (1, 5):
            pos += 8 if wire_type == 1 else 4
            if pos > end:
                raise ValueError(f"protobuf: field {number} runs past the message end")
        else:
            raise ValueError(f"protobuf: field {number} has unsupported wire type {wire_type}")


def message(data: bytes, names: dict[int, str]) -> dict[str, int | str]:
    """The named fields of a message whose strings are UTF-8 and numbers varints."""
    out: dict[str, int | str] = {}
    for number, value in fields(data):
        name = names.get(number)
        if name is not None:
            out[name] = value.decode() if isinstance(value, bytes) else value
    return out


def _text(doc: dict[str, int | str], name: str, default: str = "") -> str:
    value = doc.get(name, default)
    if not isinstance(value, str):
        raise ValueError(f"mexc private push: {name} is not a string")
    return value


def _number(doc: dict[str, int | str], name: str) -> int:
    value = doc.get(name, 0)
    if not isinstance(value, int):
        raise ValueError(f"mexc private push: {name} is not a number")
    return value


def _decimal(doc: dict[str, int | str], name: str) -> Decimal:
    text = _text(doc, name, "0") or "0"
    try:
        value = Decimal(text)
    except ArithmeticError:
        raise ValueError(f"mexc private push: {name}={text!r} is not a number") from None
    if not value.is_finite():
        raise ValueError(f"mexc private push: {name}={text!r} is not a number")
    return value


# -- the dialect ----------------------------------------------------------------------------


class MexcSpotPrivateStream:
    """The ``PrivateDialect`` of MEXC spot for one key over one instrument catalog.

    Order pushes carry no fee: ``OrderState.fee`` is the sum of the deals pushed for the
    order so far (MEXC sends the deal before the order update it causes).
    """

    keepalive_interval_s: float = constants.LISTEN_KEY_KEEPALIVE_S

    def __init__(
        self,
        credentials: ApiCredentials,
        catalog: InstrumentCatalog,
        ws_url: str,
        *,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self._signer = MexcSigner(credentials)
        self._catalog = catalog
        self._ws_url = ws_url
        self._clock_ms = clock_ms
        self.listen_key: str | None = None
        self._fees = PushedFees(constants.VENUE)

    @property
    def venue(self) -> str:
        return constants.VENUE

    def _request(self, method: str, listen_key: str | None) -> RestRequest:
        params: list[tuple[str, str | int]] = [] if listen_key is None else [(constants.LISTEN_KEY_PARAM, listen_key)]
        query = self._signer.signed_query(params, timestamp_ms=self._clock_ms())
        path = constants.USER_DATA_STREAM_PATH
        # Its own budget only: a 429 holds the budgets its request spent, and one on a keep-alive
        # must not hold the account weight the orders spend.
        return RestRequest(
            method=method, path=path, query=query, headers=self._signer.headers(), limits=((path, 1),),
            resign=lambda: self._request(method, listen_key),
        )

    async def connect_url(self, rest: RestClient) -> str:
        """A new listenKey for every connection (the old one is closed first, best effort)."""
        if self.listen_key is not None:
            try:
                await self.release(rest)
            except ArbitrageEngineError as exc:
                # Usually the reason for the reconnect (expired, or its keep-alive failed): it
                # cannot keep the new key from being made, and expires on its own within the hour.
                log.info("%s: the previous listen key was not closed (%s); making a new one", constants.VENUE, exc)
        body = await rest.fetch(self._request("POST", None))
        try:
            self.listen_key = _listen_key.decode(body).listenKey
        except msgspec.DecodeError as exc:
            raise ExchangeError(constants.VENUE, f"userDataStream: unreadable answer {body[:200]!r}") from exc
        return f"{self._ws_url}?listenKey={self.listen_key}"

    async def keepalive(self, rest: RestClient) -> None:
        """``PUT /api/v3/userDataStream`` of the current key."""
        if self.listen_key is not None:
            await rest.fetch(self._request("PUT", self.listen_key))

    async def release(self, rest: RestClient) -> None:
        """``DELETE /api/v3/userDataStream`` of the current key."""
        key, self.listen_key = self.listen_key, None
        if key is not None:
            await rest.fetch(self._request("DELETE", key))

    def subscribe_frames(self) -> Sequence[WsPayload]:
        return [_encode({"method": constants.WS_SUBSCRIBE, "params": list(PRIVATE_TOPICS), "id": 1}).decode()]

    def ping_frame(self) -> WsPayload:
        return _encode({"method": constants.WS_PING}).decode()

    def is_pong(self, frame: Frame) -> bool:
        return bytes(frame[:1]) == b"{" and b'"PONG"' in bytes(frame[:64])

    def decode(self, frame: Frame, is_binary: bool) -> PrivateMessage:
        """A JSON reply (ack, refusal, pong) or a protobuf push of orders, deals or an account change."""
        data = bytes(frame)
        if data[:1] == b"{":
            try:
                reply = _reply.decode(data)
            except msgspec.DecodeError as exc:
                raise ValueError(f"mexc private reply: {exc}") from None
            if reply.code != constants.WS_OK_CODE or reply.msg.startswith(constants.WS_NOT_SUBSCRIBED_PREFIX):
                return PrivateMessage(error=f"code {reply.code}: {reply.msg}")
            return PrivateMessage(ack=reply.msg != constants.WS_PONG_MSG)
        symbol = ""
        for number, value in fields(data):
            if number == constants.PUSH_SYMBOL and isinstance(value, bytes):
                symbol = value.decode()
            elif number in _PAIR_BODIES and symbol and not self._catalog.lists_venue_symbol(symbol):
                return PrivateMessage(unlisted=[symbol])  # an order or trade made outside the engine
            elif number == PUSH_PRIVATE_ORDERS and isinstance(value, bytes):
                return PrivateMessage(orders=[self.order(symbol, message(value, ORDER_FIELDS))])
            elif number == PUSH_PRIVATE_DEALS and isinstance(value, bytes):
                return PrivateMessage(fills=[self.fill(symbol, message(value, DEAL_FIELDS))])
            elif number == PUSH_PRIVATE_ACCOUNT and isinstance(value, bytes):
                return PrivateMessage(balances=[self.balance(message(value, ACCOUNT_FIELDS))])
        return PrivateMessage()

    @staticmethod
    def balance(doc: dict[str, int | str]) -> Balance:
        """The ``Balance`` of a decoded ``PrivateAccountV3Api`` (free ``balanceAmount``, locked
        ``frozenAmount``, changed at ``time``)."""
        asset = _text(doc, "vcoinName")
        if not asset:
            raise ValueError(f"mexc private account push: vcoinName missing in {doc}")
        return Balance(
            asset=asset, free=_decimal(doc, "balanceAmount"), locked=_decimal(doc, "frozenAmount"),
            updated_at_ms=_number(doc, "time") or None,
        )

    def order(self, venue_symbol: str, doc: dict[str, int | str]) -> OrderState:
        """The ``OrderState`` of a decoded ``PrivateOrdersV3Api``."""
        instrument = self._catalog.by_venue_symbol(venue_symbol)
        order_id = _text(doc, "id")
        side = TRADE_TYPES.get(_number(doc, "tradeType"))
        order_type = ORDER_TYPES.get(_number(doc, "orderType"))
        status = ORDER_STATUSES.get(_number(doc, "status"))
        if not order_id or side is None or order_type is None or status is None:
            raise ValueError(f"mexc private order push: id/tradeType/orderType/status missing or unknown in {doc}")
        filled = _decimal(doc, "cumulativeQuantity")
        average = _decimal(doc, "avgPrice")
        fee, fee_asset = self._fees.total(order_id)
        if status.is_final:
            self._fees.finish(order_id)
        return OrderState(
            symbol=instrument.symbol,
            order_id=order_id,
            client_order_id=_text(doc, "clientId") or None,
            side=side,
            type=order_type,
            status=status,
            quantity=_decimal(doc, "quantity"),
            price=_decimal(doc, "price") if order_type is OrderType.LIMIT else None,
            filled_quantity=filled,
            average_price=average if filled and average else None,
            fee=fee,
            fee_asset=fee_asset,
            updated_at_ms=_number(doc, "createTime"),
        )

    def fill(self, venue_symbol: str, doc: dict[str, int | str]) -> Fill:
        """The ``Fill`` of a decoded ``PrivateDealsV3Api``."""
        instrument = self._catalog.by_venue_symbol(venue_symbol)
        side = TRADE_TYPES.get(_number(doc, "tradeType"))
        order_id, trade_id, fee_asset = _text(doc, "orderId"), _text(doc, "tradeId"), _text(doc, "feeCurrency")
        if side is None or not order_id or not trade_id or not fee_asset:
            raise ValueError(f"mexc private deal push: tradeType/orderId/tradeId/feeCurrency missing in {doc}")
        fee = _decimal(doc, "feeAmount")
        self._fees.add(order_id, trade_id, fee, fee_asset)
        return Fill(
            symbol=instrument.symbol,
            order_id=order_id,
            client_order_id=_text(doc, "clientOrderId") or None,
            trade_id=trade_id,
            side=side,
            price=_decimal(doc, "price"),
            quantity=_decimal(doc, "quantity"),
            fee=fee,
            fee_asset=fee_asset,
            is_maker=bool(_number(doc, "isMaker")),
            timestamp_ms=_number(doc, "time"),
        )
