"""MEXC spot trading, client side: signed ``RestRequest``s and their replies as models (no I/O).

``MexcSpotTrading`` builds every signed spot request (``POST/DELETE/GET /api/v3/order``,
``GET /api/v3/openOrders``, ``GET /api/v3/account``, ``GET /api/v3/myTrades``) for
``RestClient.fetch`` to send unchanged, and parses the bodies into ``OrderState``,
``Balance`` and ``Fill``. ``spot_rest_venue`` / ``futures_rest_venue`` are what
``RestClient`` needs to map MEXC failures onto the error tree.

Wire rules [MX-S "New Order", "SIGNED"]: every parameter travels in the query string
(business parameters, then ``recvWindow``, ``timestamp`` and ``signature`` last, as
``MexcSigner.signed_query`` writes them), the body stays empty, the API key goes in
``X-MEXC-APIKEY``. IOC and FOK are order *types* (``IMMEDIATE_OR_CANCEL``,
``FILL_OR_KILL``), post-only is ``LIMIT_MAKER``; a market order gives ``quantity`` or,
for a buy by value, ``quoteOrderQty``.

MEXC futures: the contract API's order endpoints are "Under maintenance" for ordinary
accounts (contract docs; the venue answers code 1002 "Contract not allow place order!").
Nothing here builds a contract order: asking for one raises ``FuturesTradingUnavailable``.
Contract market data is served by ``market_data.MexcFuturesMarketData``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from decimal import Context, Decimal, Inexact
from typing import Final, TypeVar

import msgspec

from ...errors import ExchangeError, OrderRejectedError
from ...instruments import Instrument, InstrumentCatalog, InstrumentError
from ...types import OrderSide
from ..errors import ErrorCategory
from ..models import (
    Balance,
    Fill,
    OrderRequest,
    OrderRequestError,
    OrderState,
    OrderStatus,
    OrderType,
    TimeInForce,
    listed_balances,
)
from ..rest import RateLimit, RestRequest, RestVenue, check_deadline
from . import constants
from .auth import MexcSigner, ParamValue
from .schemas import Account, AccountTrading, OrderInfo, OrderResponse, Trade, TradeFee

T = TypeVar("T")

SPOT_RATE_LIMITS: Final = (
    *(
        RateLimit(path, *constants.ENDPOINT_LIMIT)
        for path in (
            *constants.ENDPOINT_WEIGHTS,
            *constants.PRIVATE_ENDPOINT_WEIGHTS,
        )
    ),
    RateLimit(constants.IP_WEIGHT_LIMIT_ID, *constants.IP_WEIGHT_LIMIT),
    RateLimit(constants.UID_WEIGHT_LIMIT_ID, *constants.UID_WEIGHT_LIMIT),
)
"""Client-side budgets: 500 requests / 10 s per endpoint (limit id = path), plus the IP and UID weight models."""

FUTURES_RATE_LIMITS: Final = tuple(RateLimit(path, *limit) for path, limit in constants.CONTRACT_RATE_LIMITS.items())
"""Client-side budgets of the contract API: one per public endpoint (limit id = its path, ``{symbol}`` unfilled)."""

# (order type, time in force) -> MEXC order type
_ORDER_TYPES: Final = {
    (OrderType.LIMIT, TimeInForce.GTC): "LIMIT",
    (OrderType.LIMIT, TimeInForce.POST_ONLY): "LIMIT_MAKER",
    (OrderType.LIMIT, TimeInForce.IOC): "IMMEDIATE_OR_CANCEL",
    (OrderType.LIMIT, TimeInForce.FOK): "FILL_OR_KILL",
    (OrderType.MARKET, TimeInForce.IOC): "MARKET",
}
_SIDES: Final = {OrderSide.BUY: "BUY", OrderSide.SELL: "SELL"}
_WIRE_SIDES: Final = {"BUY": OrderSide.BUY, "SELL": OrderSide.SELL}
_STATUSES: Final = {
    "NEW": OrderStatus.NEW,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "PARTIALLY_CANCELED": OrderStatus.CANCELED,  # canceled after partial fills: see filled_quantity
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
}
_CLIENT_ORDER_ID = re.compile(constants.CLIENT_ORDER_ID_PATTERN)
_AVERAGE = Context(prec=50, traps=[])  # 50 significant digits when the quotient does not terminate

_order_response = msgspec.json.Decoder(OrderResponse)
_order_info = msgspec.json.Decoder(OrderInfo)
_order_list = msgspec.json.Decoder(list[OrderInfo])
_account = msgspec.json.Decoder(Account)
_account_trading = msgspec.json.Decoder(AccountTrading)  # read with every balance read: no Decimals
_trades = msgspec.json.Decoder(list[Trade])
_trade_fee = msgspec.json.Decoder(TradeFee)


class FuturesTradingUnavailable(OrderRejectedError):
    """MEXC futures cannot be traded through the API by ordinary accounts; only market data is served."""

    def __init__(self, action: str) -> None:
        super().__init__(
            constants.VENUE + "_futures",
            f"{action}: MEXC's contract order API (order create/cancel) is marked 'Under maintenance' and "
            f"refuses ordinary accounts (code {constants.CONTRACT_ORDER_REFUSED_CODE} "
            f"'{constants.CONTRACT_ORDER_REFUSED_MSG}'); MEXC futures are market data only, "
            "hedge on Gate.io futures",
            category=ErrorCategory.ORDER_REJECTED,
        )


def spot_rest_venue(base_url: str = constants.REST_URL) -> RestVenue:
    """``RestVenue`` of MEXC spot: error codes, 429/418/403 handling and rate limits from ``constants``."""
    return RestVenue(
        name=constants.VENUE,
        base_url=base_url,
        error_codes=constants.ERROR_CODES,
        http_statuses=constants.HTTP_STATUSES,
        rate_limits=SPOT_RATE_LIMITS,
        secret_headers=frozenset({constants.API_KEY_HEADER}),
        secret_params=frozenset({constants.SIGNATURE_PARAM, constants.LISTEN_KEY_PARAM}),
    )


def futures_rest_venue(base_url: str = constants.FUTURES_REST_URL) -> RestVenue:
    """``RestVenue`` of the MEXC contract API (public market data only)."""
    return RestVenue(
        name=constants.VENUE + "_futures",
        base_url=base_url,
        error_codes=constants.FUTURES_ERROR_CODES,
        http_statuses=constants.HTTP_STATUSES,
        rate_limits=FUTURES_RATE_LIMITS,
        secret_headers=frozenset({constants.CONTRACT_API_KEY_HEADER, constants.CONTRACT_SIGNATURE_HEADER}),
    )


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def _text(value: Decimal) -> str:
    """Plain decimal text without trailing zeros: ``1000``, ``0.005`` (as ccxt sends them)."""
    return f"{value.normalize():f}"


class MexcSpotTrading:
    """Signed MEXC spot requests and reply parsing for one API key over one instrument catalog.

    ``clock_ms`` gives the ``timestamp`` of each request (wall-clock ms; pass a function
    corrected for the venue's clock offset when it matters, since MEXC refuses requests
    whose timestamp is more than ``recv_window_ms`` old or 1 s ahead: code 700003).
    """

    def __init__(
        self,
        signer: MexcSigner,
        instruments: InstrumentCatalog,
        *,
        recv_window_ms: int = constants.DEFAULT_RECV_WINDOW_MS,
        clock_ms: Callable[[], int] = _wall_clock_ms,
    ) -> None:
        if instruments.exchange.value != constants.VENUE:
            raise ValueError(f"mexc spot trading: instrument catalog is of {instruments.exchange.value}")
        if not 0 < recv_window_ms <= constants.MAX_RECV_WINDOW_MS:
            raise ValueError(f"mexc spot trading: recv_window_ms={recv_window_ms} outside 1..{constants.MAX_RECV_WINDOW_MS}")
        self._signer = signer
        self._instruments = instruments
        self._recv_window_ms = recv_window_ms
        self._clock_ms = clock_ms

    # -- requests ----------------------------------------------------------------------------

    def place_order_request(self, order: OrderRequest, *, expires_at_ms: int | None = None) -> RestRequest:
        """``POST /api/v3/order`` for ``order``; quantity and price must lie on the instrument's grid.

        ``expires_at_ms`` (the venue's clock): the ``recvWindow`` is what is left from the request's
        ``timestamp`` to it, so MEXC refuses the order when it arrives later (None: ``recv_window_ms``).

        Raises OrderRequestError for what MEXC cannot express (a FOK market order: MEXC market
        orders are IOC, use a FILL_OR_KILL limit instead; reduce-only on spot), an
        off-grid value or a client id outside ``[A-Za-z0-9_-]{1,32}``, and
        FuturesTradingUnavailable for a futures symbol.
        """
        instrument = self._instrument(order.symbol, "place order")
        where = f"mexc order {order.client_order_id!r} {order.symbol}"
        wire_type = _ORDER_TYPES.get((order.type, order.time_in_force))
        if wire_type is None:
            raise OrderRequestError(
                f"{where}: MEXC has no {order.type.value} order with time_in_force {order.time_in_force.value} "
                "(market orders are IOC; use a FILL_OR_KILL limit order for all-or-nothing)"
            )
        if order.reduce_only:
            raise OrderRequestError(f"{where}: reduce_only applies to futures orders only")
        params: list[tuple[str, ParamValue]] = [
            ("symbol", instrument.venue_symbol),
            ("side", _SIDES[order.side]),
            ("type", wire_type),
            ("quantity", _text(instrument.lots_to_size(self._lots(instrument, order.quantity, where)))),
        ]
        if order.price is not None:
            ticks = self._ticks(instrument, order.price, where)
            params.append(("price", _text(instrument.ticks_to_price(ticks))))
        params.append(("newClientOrderId", _client_order_id(order.client_order_id, where)))
        return self._signed("POST", constants.ORDER_PATH, params, expires_at_ms)

    def market_buy_by_quote_request(self, symbol: str, quote_amount: Decimal, client_order_id: str) -> RestRequest:
        """``POST /api/v3/order`` of a MARKET buy spending ``quote_amount`` of the quote asset (``quoteOrderQty``)."""
        instrument = self._instrument(symbol, "place order")
        where = f"mexc order {client_order_id!r} {symbol}"
        if not isinstance(quote_amount, Decimal) or not quote_amount.is_finite() or quote_amount <= 0:
            raise OrderRequestError(f"{where}: quote_amount={quote_amount!r} must be a positive Decimal")
        params: list[tuple[str, ParamValue]] = [
            ("symbol", instrument.venue_symbol),
            ("side", "BUY"),
            ("type", "MARKET"),
            ("quoteOrderQty", _text(quote_amount)),
            ("newClientOrderId", _client_order_id(client_order_id, where)),
        ]
        return self._signed("POST", constants.ORDER_PATH, params)

    def cancel_order_request(
        self, symbol: str, *, order_id: str | None = None, client_order_id: str | None = None
    ) -> RestRequest:
        """``DELETE /api/v3/order`` by venue ``orderId`` or by ``origClientOrderId`` (exactly one)."""
        return self._signed("DELETE", constants.ORDER_PATH, self._order_ref(symbol, "cancel order", order_id, client_order_id))

    def query_order_request(
        self, symbol: str, *, order_id: str | None = None, client_order_id: str | None = None
    ) -> RestRequest:
        """``GET /api/v3/order`` by venue ``orderId`` or by ``origClientOrderId`` (exactly one)."""
        return self._signed("GET", constants.ORDER_PATH, self._order_ref(symbol, "query order", order_id, client_order_id))

    def open_orders_request(self, symbol: str) -> RestRequest:
        """``GET /api/v3/openOrders`` of one symbol (MEXC requires the symbol)."""
        instrument = self._instrument(symbol, "open orders")
        return self._signed("GET", constants.OPEN_ORDERS_PATH, [("symbol", instrument.venue_symbol)])

    def account_request(self) -> RestRequest:
        """``GET /api/v3/account`` (balances)."""
        return self._signed("GET", constants.ACCOUNT_PATH, [])

    def trade_fee_request(self, symbol: str) -> RestRequest:
        """``GET /api/v3/tradeFee?symbol=``: the account's rates on one symbol."""
        instrument = self._instrument(symbol, "trade fee")
        return self._signed("GET", constants.TRADE_FEE_PATH, [("symbol", instrument.venue_symbol)])

    def my_trades_request(self, symbol: str, *, order_id: str | None = None, limit: int | None = None) -> RestRequest:
        """``GET /api/v3/myTrades`` of one symbol, optionally of one order; ``limit`` 1..1000 (venue default 500)."""
        instrument = self._instrument(symbol, "my trades")
        params: list[tuple[str, ParamValue]] = [("symbol", instrument.venue_symbol)]
        if order_id is not None:
            params.append(("orderId", _order_id(order_id, f"mexc my trades {symbol}")))
        if limit is not None:
            if not isinstance(limit, int) or not 1 <= limit <= 1000:
                raise ValueError(f"mexc my trades {symbol}: limit={limit!r} outside 1..1000")
            params.append(("limit", limit))
        return self._signed("GET", constants.MY_TRADES_PATH, params)

    # -- replies -----------------------------------------------------------------------------

    def parse_new_order(self, body: bytes, client_order_id: str | None) -> OrderState:
        """The ``POST /api/v3/order`` reply as an ``OrderState``: NEW, fills not yet known (query them).

        ``{"symbol":"MXUSDT","orderId":"06a480e69e604477bfb48dddd5f0b750","orderListId":-1,
        "price":"0.1","origQty":"50","type":"LIMIT","side":"BUY","transactTime":1666676533741}``

        The reply does not echo the client id, so the caller passes the one it sent. A
        decoding failure is OUTCOME_UNKNOWN: the order may exist.
        """
        reply = _decode(_order_response, body, "POST " + constants.ORDER_PATH, ErrorCategory.OUTCOME_UNKNOWN)
        instrument = self._venue_instrument(reply.symbol)
        order_type = _order_type(reply.type)
        return OrderState(
            symbol=instrument.symbol,
            order_id=reply.orderId,
            client_order_id=client_order_id,
            side=_side(reply.side),
            type=order_type,
            status=OrderStatus.NEW,
            quantity=reply.origQty,
            price=reply.price if order_type is OrderType.LIMIT else None,
            updated_at_ms=reply.transactTime,
        )

    def parse_order(self, body: bytes) -> OrderState:
        """A ``GET``/``DELETE /api/v3/order`` reply as an ``OrderState`` (filled quantity and exact average price)."""
        return self._order_state(_decode(_order_info, body, constants.ORDER_PATH, None))

    def parse_open_orders(self, body: bytes) -> list[OrderState]:
        """A ``GET /api/v3/openOrders`` reply."""
        return [self._order_state(info) for info in _decode(_order_list, body, constants.OPEN_ORDERS_PATH, None)]

    def parse_balances(self, body: bytes) -> dict[str, Balance]:
        """A ``GET /api/v3/account`` reply: ``{"balances":[{"asset":"USDT","free":"10.5","locked":"0"}],...}``."""
        account = _decode(_account, body, constants.ACCOUNT_PATH, None)
        listed = listed_balances(constants.VENUE, ((b.asset, b.free, b.locked, None) for b in account.balances))
        return {b.asset: b for b in listed}

    @staticmethod
    def parse_trading_refusal(body: bytes) -> str | None:
        """Why a ``GET /api/v3/account`` reply says the account may not trade: only an explicit
        ``"canTrade":false`` does (its ``permissions`` list is not read); else None."""
        if _decode(_account_trading, body, constants.ACCOUNT_PATH, None).canTrade is False:
            return f"MEXC's {constants.ACCOUNT_PATH} answer says canTrade=false: it refuses the account's orders"
        return None

    @staticmethod
    def parse_trade_fee(body: bytes) -> tuple[Decimal, Decimal]:
        """``(taker, maker)`` of a ``GET /api/v3/tradeFee`` reply; a non-zero ``code`` is a refusal."""
        reply = _decode(_trade_fee, body, constants.TRADE_FEE_PATH, None)
        if reply.code != 0:
            raise ExchangeError(constants.VENUE, f"{constants.TRADE_FEE_PATH}: code {reply.code} {reply.msg}")
        return reply.data.takerCommission, reply.data.makerCommission

    def parse_my_trades(self, body: bytes) -> list[Fill]:
        """A ``GET /api/v3/myTrades`` reply as fills (``isBuyer`` gives the side)."""
        fills = []
        for trade in _decode(_trades, body, constants.MY_TRADES_PATH, None):
            fills.append(
                Fill(
                    symbol=self._venue_instrument(trade.symbol).symbol,
                    order_id=str(trade.orderId),
                    client_order_id=trade.clientOrderId,
                    trade_id=str(trade.id),
                    side=OrderSide.BUY if trade.isBuyer else OrderSide.SELL,
                    price=trade.price,
                    quantity=trade.qty,
                    fee=trade.commission,
                    fee_asset=trade.commissionAsset,
                    is_maker=trade.isMaker,
                    timestamp_ms=_int(trade.time, "time"),
                )
            )
        return fills

    # -- helpers -----------------------------------------------------------------------------

    def _signed(
        self, method: str, path: str, params: Sequence[tuple[str, ParamValue]], expires_at_ms: int | None = None,
        *, again: bool = False,
    ) -> RestRequest:
        timestamp_ms = self._clock_ms()
        recv_window_ms = self._recv_window_ms
        if again:
            # Signed afresh with a 1 ms window, it could still be taken (MEXC takes a timestamp up
            # to 1 s ahead of its clock): past its deadline, the order is not sent.
            check_deadline(constants.VENUE, method, path, expires_at_ms, timestamp_ms)
        if expires_at_ms is not None:
            # Within MEXC's bounds: at least 1 ms (MEXC also takes a timestamp up to 1 s ahead of its
            # clock, so a local clock that far ahead loosens the deadline by that much), at most 60 s.
            recv_window_ms = min(max(expires_at_ms - timestamp_ms, 1), constants.MAX_RECV_WINDOW_MS)
        query = self._signer.signed_query(params, timestamp_ms=timestamp_ms, recv_window_ms=recv_window_ms)
        weight = constants.PRIVATE_ENDPOINT_WEIGHTS[path]
        return RestRequest(
            method=method,
            path=path,
            query=query,
            headers=self._signer.headers(),
            limits=((path, 1), (constants.UID_WEIGHT_LIMIT_ID, weight)),
            resign=lambda: self._signed(method, path, params, expires_at_ms, again=True),  # the deadline kept
        )

    def _instrument(self, symbol: str, action: str) -> Instrument:
        if ":" in symbol:
            raise FuturesTradingUnavailable(f"{action} {symbol}")
        try:
            return self._instruments.get(symbol)
        except InstrumentError as exc:
            raise OrderRequestError(f"mexc {action}: {exc}") from None

    def _venue_instrument(self, venue_symbol: str) -> Instrument:
        try:
            return self._instruments.by_venue_symbol(venue_symbol)
        except InstrumentError as exc:
            raise ExchangeError(constants.VENUE, f"reply names an unknown symbol: {exc}") from None

    def _order_ref(
        self, symbol: str, action: str, order_id: str | None, client_order_id: str | None
    ) -> list[tuple[str, ParamValue]]:
        instrument = self._instrument(symbol, action)
        where = f"mexc {action} {symbol}"
        if (order_id is None) == (client_order_id is None):
            raise OrderRequestError(f"{where}: give exactly one of order_id and client_order_id")
        if client_order_id is not None:
            return [("symbol", instrument.venue_symbol), ("origClientOrderId", _client_order_id(client_order_id, where))]
        return [("symbol", instrument.venue_symbol), ("orderId", _order_id(str(order_id), where))]

    @staticmethod
    def _lots(instrument: Instrument, quantity: Decimal, where: str) -> int:
        try:
            return instrument.size_to_lots(quantity)
        except InstrumentError as exc:
            raise OrderRequestError(f"{where}: {exc}") from None

    @staticmethod
    def _ticks(instrument: Instrument, price: Decimal, where: str) -> int:
        try:
            return instrument.price_to_ticks(price)
        except InstrumentError as exc:
            raise OrderRequestError(f"{where}: {exc}") from None

    def _order_state(self, info: OrderInfo) -> OrderState:
        instrument = self._venue_instrument(info.symbol)
        status = _STATUSES.get(info.status)
        if status is None:
            if info.status != "PENDING_CANCEL":
                raise ExchangeError(constants.VENUE, f"order {info.orderId}: unknown status {info.status!r}")
            status = OrderStatus.PARTIALLY_FILLED if info.executedQty else OrderStatus.NEW
        order_type = _order_type(info.type)
        # A market buy by quote amount reports origQty 0: its size is what filled.
        quantity = info.origQty if info.origQty > 0 else info.executedQty
        updated = info.updateTime if info.updateTime is not None else info.time
        return OrderState(
            symbol=instrument.symbol,
            order_id=str(info.orderId),
            # A cancel's answer names the order in origClientOrderId (clientOrderId is the cancel's own).
            client_order_id=info.origClientOrderId or info.clientOrderId,
            side=_side(info.side),
            type=order_type,
            status=status,
            quantity=quantity,
            price=info.price if order_type is OrderType.LIMIT else None,
            filled_quantity=info.executedQty,
            average_price=average_price(info.cummulativeQuoteQty, info.executedQty),
            updated_at_ms=0 if updated is None else _int(updated, "updateTime"),
        )


def average_price(quote_quantity: Decimal, base_quantity: Decimal) -> Decimal | None:
    """``quote / base`` (None when nothing filled): exact when the quotient terminates, else 50 significant digits."""
    if not base_quantity:
        return None
    try:
        return Context(prec=50, traps=[Inexact]).divide(quote_quantity, base_quantity).normalize()
    except Inexact:
        return _AVERAGE.divide(quote_quantity, base_quantity)


def _client_order_id(value: str, where: str) -> str:
    if not isinstance(value, str) or not _CLIENT_ORDER_ID.fullmatch(value):
        raise OrderRequestError(
            f"{where}: client order id {value!r} must be 1..{constants.CLIENT_ORDER_ID_MAX_LEN} "
            "characters of A-Z, a-z, 0-9, '_' and '-'"
        )
    return value


def _order_id(value: str, where: str) -> str:
    if not isinstance(value, str) or not value or not value.isascii() or not all(c.isalnum() or c == "_" for c in value):
        raise OrderRequestError(f"{where}: order id {value!r} must be non-empty ASCII letters, digits and '_'")
    return value


def _order_type(wire_type: str) -> OrderType:
    if wire_type == "MARKET":
        return OrderType.MARKET
    if wire_type in constants.ORDER_TYPES:
        return OrderType.LIMIT
    raise ExchangeError(constants.VENUE, f"unknown order type {wire_type!r} in a reply")


def _side(wire_side: str) -> OrderSide:
    side = _WIRE_SIDES.get(wire_side)
    if side is None:
        raise ExchangeError(constants.VENUE, f"unknown order side {wire_side!r} in a reply")
    return side


def _int(value: int | str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ExchangeError(constants.VENUE, f"reply field {name}={value!r} is not an integer") from None


def _decode(decoder: msgspec.json.Decoder[T], body: bytes, where: str, category: ErrorCategory | None) -> T:
    try:
        return decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise ExchangeError(
            constants.VENUE, f"{where}: reply does not match the expected schema: {exc}", category=category
        ) from exc
