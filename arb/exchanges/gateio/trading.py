"""Gate.io v4 spot and USDT-perpetual trading: signed requests and response parsing, no I/O.

``GateioSpotTrading`` and ``GateioFuturesTrading`` build ``RestRequest``s that a ``RestClient``
made with ``rest_venue()`` sends unchanged, and parse the bodies it returns into the
normalised models. Failed responses never reach the parsers: the client maps Gate's
``{"label": ..., "message": ...}`` bodies through ``constants.ERROR_LABELS``.

Paths are relative to ``constants.REST_URL`` (as in the market-data dialects), while the
signature covers the full path with the ``/api/v4`` prefix, as Gate requires.

Client order ids travel in Gate's ``text`` field: ``"t-" + client_order_id``. Gate allows at
most 28 bytes of ``[0-9A-Za-z_.-]`` after the prefix, so ids outside that alphabet or length
are refused when the order is built (the mapping stays the identity and needs no table).
Gate accepts the ``text`` in place of the order id on ``GET``/``DELETE .../orders/{order_id}``
while the order is open, and for a while after it finishes: 60 s on futures; on spot an hour by
the SDK docs, only while open by the REST reference. A spot order the ``text`` no longer finds is
looked for among the pair's finished orders (``finished_orders``); later only the order id works.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import TypeVar

import msgspec

from ...errors import ExchangeError
from ...instruments import Instrument, InstrumentCatalog, InstrumentError
from ...types import OrderSide
from ..errors import ErrorCategory
from ..models import (
    Balance,
    FundingPayment,
    OrderRequest,
    OrderRequestError,
    OrderState,
    OrderStatus,
    OrderType,
    Position,
    TimeInForce,
    listed_balances,
)
from ..rest import RateLimit, RestRequest, RestVenue, check_deadline, market_limit
from . import constants
from .auth import GateioSigner
from .instruments import from_venue_symbol
from .schemas import (
    AccountFee,
    FuturesAccount,
    FuturesAccountBookEntry,
    FuturesOrder,
    FuturesPosition,
    SpotAccount,
    SpotOpenOrders,
    SpotOrder,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

_TIME_IN_FORCE = {
    TimeInForce.GTC: "gtc",
    TimeInForce.IOC: "ioc",
    TimeInForce.FOK: "fok",
    TimeInForce.POST_ONLY: "poc",
}
# Spot ``finish_as`` of a closed or cancelled order; unknown values fall back on the fill state.
_SPOT_FINISHED = {
    "filled": OrderStatus.FILLED,
    "cancelled": OrderStatus.CANCELED,
    "liquidate_cancelled": OrderStatus.CANCELED,
    "stp": OrderStatus.CANCELED,
    "ioc": OrderStatus.EXPIRED,
    "fok": OrderStatus.EXPIRED,
    "depth_not_enough": OrderStatus.EXPIRED,
    "trader_not_enough": OrderStatus.EXPIRED,
    "small": OrderStatus.EXPIRED,
    "poc": OrderStatus.REJECTED,  # a post-only order that would have taken
}
_FUTURES_FINISHED = {
    "filled": OrderStatus.FILLED,
    "cancelled": OrderStatus.CANCELED,
    "ioc": OrderStatus.EXPIRED,
    "reduce_only": OrderStatus.CANCELED,
    "reduce_out": OrderStatus.CANCELED,
    "position_closed": OrderStatus.CANCELED,
    "stp": OrderStatus.CANCELED,
    "poc": OrderStatus.REJECTED,
}
# Not in the table: "liquidated" (cancelled by a liquidation) and "auto_deleveraged" (finished by
# ADL) end FILLED or CANCELED by what filled, as an unknown ``finish_as`` does.
_decoders: dict[object, msgspec.json.Decoder[object]] = {}
_encode = msgspec.json.Encoder().encode


def rest_venue(base_url: str = constants.REST_URL) -> RestVenue:
    """Gate's ``RestVenue``: base URL (``/api/v4`` included), label table, HTTP statuses and every rate limit."""
    limits = {**constants.RATE_LIMITS, **constants.TRADING_RATE_LIMITS}
    return RestVenue(
        name=constants.VENUE,
        base_url=base_url,
        error_codes=constants.ERROR_LABELS,
        http_statuses=constants.HTTP_STATUSES,
        rate_limits=tuple(
            RateLimit(limit_id, capacity, window, per_market=limit_id in constants.PER_MARKET_RATE_LIMITS)
            for limit_id, (capacity, window) in limits.items()
        ),
        rate_limit_reset_header=constants.RATE_LIMIT_RESET_HEADER,
        secret_headers=frozenset({constants.KEY_HEADER, constants.SIGN_HEADER}),
    )


def to_text(client_order_id: str) -> str:
    """Gate's ``text`` of a client order id: ``"t-" + id``; OrderRequestError if Gate would refuse it."""
    if (
        not client_order_id
        or len(client_order_id.encode()) > constants.CLIENT_ORDER_ID_MAX_BYTES
        or not constants.CLIENT_ORDER_ID_ALPHABET.issuperset(client_order_id)
    ):
        raise OrderRequestError(
            f"gateio: client_order_id {client_order_id!r} must be 1..{constants.CLIENT_ORDER_ID_MAX_BYTES} "
            "characters of 0-9 A-Z a-z _ - ."
        )
    return constants.CLIENT_ORDER_ID_PREFIX + client_order_id


def from_text(text: str) -> str | None:
    """The client order id of a ``text``; None for orders placed without one (``"api"``, ``"web"``...)."""
    prefix = constants.CLIENT_ORDER_ID_PREFIX
    return text[len(prefix) :] if text.startswith(prefix) and len(text) > len(prefix) else None


def _decode(body: bytes, type_: type[T], where: str) -> T:
    decoder = _decoders.get(type_)
    if decoder is None:
        decoder = _decoders[type_] = msgspec.json.Decoder(type_)
    try:
        result: T = decoder.decode(body)  # type: ignore[assignment]
    except msgspec.DecodeError as exc:
        raise ExchangeError(constants.VENUE, f"{where}: response does not match the venue schema: {exc}") from exc
    return result


def _divide(numerator: Decimal, denominator: Decimal) -> Decimal | None:
    return (numerator / denominator).normalize() if denominator else None


# Past any time a venue stamps (year ~33658 in ms): a larger "time" is garbage, and int() of an
# exponent like 1E+999999999 would build its billion digits on the event loop.
_MAX_MS = Decimal(10**15)
# The smallest time in ms told apart from seconds: 2001-09-09 in ms, the year ~33658 in seconds.
MS_FROM = Decimal(10**12)


def time_ms(value: Decimal, what: str, per_unit: int = 1) -> int:
    """``value`` (in units of ``per_unit`` ms: 1000 for seconds) as whole ms, a fraction dropped;
    ValueError when it is no time at all (NaN, infinite, negative or far past any date)."""
    if not value.is_finite() or value.adjusted() > 20 or not 0 <= value * per_unit < _MAX_MS:
        raise ValueError(f"{what}={value} is not a time")
    return int(value * per_unit)


def _seconds_to_ms(value: Decimal | None) -> int:
    return 0 if value is None else time_ms(value, "time", 1000)


def ms_or_seconds_to_ms(value: Decimal, what: str) -> int:
    """A time Gate writes either in ms or in seconds with a fraction (as its REST answers do), as
    whole ms: a value under ``MS_FROM`` is seconds. ValueError as ``time_ms``."""
    return time_ms(value, what, 1000 if value.is_finite() and value < MS_FROM else 1)


def _readable_states(
    orders: Iterable[T], order_state: Callable[[T], OrderState], unreadable: tuple[type[Exception], ...]
) -> list[OrderState]:
    """``order_state`` of each of a listing's orders; one that raises ``unreadable`` (no order this run
    sent) is left out with a warning, not the whole listing with it."""
    states = []
    for order in orders:
        try:
            states.append(order_state(order))
        except unreadable as exc:
            log.warning("%s: left out", exc)
    return states


class UnsizedMarketBuy(ExchangeError):
    """A spot market buy whose answer spent quote without saying for how much base (outcome unknown)."""

    def __init__(self, message: str) -> None:
        super().__init__(constants.VENUE, message, category=ErrorCategory.OUTCOME_UNKNOWN)


class _GateioTrading:
    """Signing and instrument lookup shared by both markets."""

    __slots__ = ("instruments", "_signer", "_clock")

    def __init__(
        self, signer: GateioSigner, instruments: InstrumentCatalog, *, clock: Callable[[], float] = time.time
    ) -> None:
        """``clock`` gives the wall time in seconds stamped into ``Timestamp`` (whole seconds are sent)."""
        self.instruments = instruments
        self._signer = signer
        self._clock = clock

    def _signed(
        self, method: str, path: str, limit_id: str, query: str = "", body: bytes = b"",
        expires_at_ms: int | None = None, *, again: bool = False,
    ) -> RestRequest:
        now_s = self._clock()
        if again:
            # Past its x-gate-exptime, Gate refuses it for its timestamp: the order is not sent.
            check_deadline(constants.VENUE, method, path, expires_at_ms, now_s * 1000)
        timestamp = str(int(now_s))
        headers = self._signer.rest_headers(method, constants.API_PREFIX + path, query, body, timestamp)
        if expires_at_ms is not None:
            headers[constants.EXPIRY_HEADER] = str(expires_at_ms)
        return RestRequest(
            method=method, path=path, query=query, body=body, headers=headers, limits=((limit_id, 1),),
            # Signed afresh after a budget wait or a retry, an order's deadline kept.
            resign=lambda: self._signed(method, path, limit_id, query, body, expires_at_ms, again=True),
        )

    def _instrument(self, symbol: str) -> Instrument:
        return self.instruments.get(symbol)

    def fee_request(self) -> RestRequest:
        """``GET /spot/fee``: the account's fee tier (spot and futures rates in one answer)."""
        return self._signed("GET", constants.FEE_PATH, constants.SPOT_FEE_RATE_LIMIT)

    @staticmethod
    def _order_ref(order_id: str | None, client_order_id: str | None) -> str:
        if (order_id is None) == (client_order_id is None):
            raise OrderRequestError("gateio: give exactly one of order_id and client_order_id")
        ref = to_text(client_order_id) if client_order_id is not None else order_id
        if not ref or not constants.CLIENT_ORDER_ID_ALPHABET.issuperset(ref):
            raise OrderRequestError(f"gateio: order_id {order_id!r} is not a Gate order id")
        return ref

    def _price(self, instrument: Instrument, price: Decimal, request: OrderRequest) -> str:
        try:
            return instrument.format_price(instrument.price_to_ticks(price))
        except InstrumentError as exc:
            raise OrderRequestError(f"gateio order {request.client_order_id!r}: {exc}") from None

    def _lots(self, instrument: Instrument, size: Decimal, request: OrderRequest) -> int:
        try:
            return instrument.size_to_lots(size)
        except InstrumentError as exc:
            raise OrderRequestError(f"gateio order {request.client_order_id!r}: {exc}") from None


class GateioSpotTrading(_GateioTrading):
    """Spot orders and balances: ``POST/GET/DELETE /spot/orders``, ``/spot/open_orders``, ``/spot/accounts``."""

    __slots__ = ()

    def place_order(
        self, request: OrderRequest, *, quote_amount: Decimal | None = None, expires_at_ms: int | None = None
    ) -> RestRequest:
        """``POST /spot/orders``; a market BUY spends ``quote_amount`` of quote (Gate's market-buy ``amount``),
        and its ``request.quantity`` is then only the caller's intent. Gate refuses it when it arrives
        after ``expires_at_ms`` (its clock, ``x-gate-exptime``)."""
        body = self.order_body(request, quote_amount=quote_amount)
        limit_id = market_limit(constants.SPOT_ORDER_PLACE_RATE_LIMIT, request.symbol)
        return self._signed("POST", constants.ORDERS_PATH, limit_id, body=body, expires_at_ms=expires_at_ms)

    def order_body(self, request: OrderRequest, *, quote_amount: Decimal | None = None) -> bytes:
        """The JSON order object of ``request``: the REST body and the WS API ``req_param`` alike."""
        instrument = self._instrument(request.symbol)
        body: dict[str, str] = {
            "text": to_text(request.client_order_id),
            "currency_pair": instrument.venue_symbol,
            "type": request.type.value,
            "account": constants.SPOT_ACCOUNT,
            "side": request.side.value,
        }
        if request.reduce_only:
            raise OrderRequestError(f"gateio order {request.client_order_id!r}: reduce_only is futures only")
        if request.type is OrderType.MARKET and request.side is OrderSide.BUY:
            if quote_amount is None or not quote_amount.is_finite() or quote_amount <= 0:
                raise OrderRequestError(
                    f"gateio order {request.client_order_id!r}: a market buy needs a positive quote_amount, "
                    f"got {quote_amount}"
                )
            body["amount"] = f"{quote_amount.normalize():f}"
        elif quote_amount is not None:
            raise OrderRequestError(f"gateio order {request.client_order_id!r}: quote_amount is for market buys only")
        else:
            body["amount"] = instrument.format_size(self._lots(instrument, request.quantity, request))
        if request.price is not None:
            body["price"] = self._price(instrument, request.price, request)
        if request.type is OrderType.MARKET or request.time_in_force is not TimeInForce.GTC:
            body["time_in_force"] = _TIME_IN_FORCE[request.time_in_force]
        return _encode(body)

    def cancel_order(
        self, symbol: str, *, order_id: str | None = None, client_order_id: str | None = None
    ) -> RestRequest:
        """``DELETE /spot/orders/{id or text}?currency_pair=X``."""
        ref = self._order_ref(order_id, client_order_id)
        query = f"currency_pair={self._instrument(symbol).venue_symbol}"
        path = constants.ORDER_PATH.format(order_id=ref)
        return self._signed("DELETE", path, constants.SPOT_ORDER_CANCEL_RATE_LIMIT, query)

    def query_order(
        self, symbol: str, *, order_id: str | None = None, client_order_id: str | None = None
    ) -> RestRequest:
        """``GET /spot/orders/{id or text}?currency_pair=X``."""
        ref = self._order_ref(order_id, client_order_id)
        query = f"currency_pair={self._instrument(symbol).venue_symbol}"
        path = constants.ORDER_PATH.format(order_id=ref)
        return self._signed("GET", path, constants.SPOT_ORDER_QUERY_RATE_LIMIT, query)

    def open_orders(self, symbol: str | None = None) -> RestRequest:
        """One pair: ``GET /spot/orders?currency_pair=X&status=open`` (a list of orders); every pair:
        ``GET /spot/open_orders`` (orders grouped by pair). Parse either with ``parse_open_orders``."""
        if symbol is None:
            return self._signed("GET", constants.OPEN_ORDERS_PATH, constants.SPOT_OPEN_ORDERS_RATE_LIMIT)
        query = f"currency_pair={self._instrument(symbol).venue_symbol}&status={constants.SPOT_ORDER_STATUS_OPEN}"
        return self._signed("GET", constants.ORDERS_PATH, constants.SPOT_ORDERS_LIST_RATE_LIMIT, query)

    def finished_orders(self, symbol: str, since_s: int, until_s: int | None = None, page: int = 1) -> RestRequest:
        """``GET /spot/orders?currency_pair=X&status=finished&page=N&limit=...&from=since_s[&to=until_s]``:
        page ``page`` of the pair's newest finished orders created from ``since_s`` to ``until_s``
        (UNIX seconds; None: now); parse with ``parse_finished_orders``."""
        query = (
            f"currency_pair={self._instrument(symbol).venue_symbol}&status={constants.SPOT_ORDER_STATUS_FINISHED}"
            f"&page={page}&limit={constants.FINISHED_ORDERS_LIMIT}&from={since_s}"
            + ("" if until_s is None else f"&to={until_s}")
        )
        return self._signed("GET", constants.ORDERS_PATH, constants.SPOT_ORDERS_LIST_RATE_LIMIT, query)

    def balances(self) -> RestRequest:
        """``GET /spot/accounts``."""
        return self._signed("GET", constants.ACCOUNTS_PATH, constants.SPOT_ACCOUNTS_RATE_LIMIT)

    def parse_order(self, body: bytes) -> OrderState:
        """An order body (place, cancel, query)::

        {"id":"1700664330","text":"t-my-custom-id","create_time":"1681986204","update_time_ms":1681986204832,
         "status":"open","currency_pair":"GT_USDT","type":"limit","side":"buy","amount":"1","price":"1",
         "time_in_force":"gtc","left":"1","filled_total":"0","fee":"0","fee_currency":"GT","finish_as":"open"}
        """
        return self.order_state(_decode(body, SpotOrder, "spot order"))

    def parse_open_orders(self, body: bytes) -> list[OrderState]:
        """The body of either ``open_orders`` request."""
        if b'"orders":' in body:  # grouped by pair; an order object has no such key
            groups = _decode(body, list[SpotOpenOrders], "spot open orders")
            return self.order_states(order for group in groups for order in group.orders)
        return self.order_states(_decode(body, list[SpotOrder], "spot orders"))

    def parse_finished_orders(self, body: bytes) -> tuple[list[OrderState], int]:
        """The orders of a ``finished_orders`` page, and how many entries it listed."""
        orders = _decode(body, list[SpotOrder], "spot orders")
        return self.order_states(orders), len(orders)

    def order_states(self, orders: Iterable[SpotOrder]) -> list[OrderState]:
        """``order_state`` of each of a listing's or push's orders. Left out with a warning, not the
        whole listing with them: a market buy that does not say what it bought (``UnsizedMarketBuy``:
        never one of the engine's, which sends no market orders) and an order on a pair the
        catalog does not list (not tradable now: never one this run sent)."""
        return _readable_states(orders, self.order_state, (UnsizedMarketBuy, InstrumentError))

    def parse_fees(self, body: bytes) -> tuple[Decimal, Decimal]:
        """``(taker, maker)`` spot fractions of a ``GET /spot/fee`` body."""
        fee = _decode(body, AccountFee, "spot fee")
        return fee.taker_fee, fee.maker_fee

    def parse_balances(self, body: bytes) -> dict[str, Balance]:
        """``[{"currency":"USDT","available":"10.5","locked":"1"}]`` -> balances by asset."""
        accounts = _decode(body, list[SpotAccount], "spot accounts")
        listed = listed_balances(constants.VENUE, ((a.currency, a.available, a.locked, None) for a in accounts))
        return {b.asset: b for b in listed}

    def order_state(self, order: SpotOrder) -> OrderState:
        """The ``OrderState`` of a decoded spot order (also what ``spot.orders`` pushes carry)."""
        instrument = self.instruments.by_venue_symbol(order.currency_pair)
        market_buy = order.type == OrderType.MARKET.value and order.side == OrderSide.BUY.value
        if order.filled_amount is not None:
            filled = order.filled_amount
        elif market_buy:  # amount and left are quote there
            if order.filled_total and not order.avg_deal_price:
                # Quote was spent, and nothing says for how much base: not "nothing bought".
                raise UnsizedMarketBuy(
                    f"spot market buy {order.id} {order.currency_pair}: {order.filled_total} quote spent, but the "
                    "answer gives neither filled_amount nor avg_deal_price: the base bought is unknown"
                )
            filled = _divide(order.filled_total, order.avg_deal_price or Decimal(0)) or Decimal(0)
        else:
            filled = order.amount - order.left
        # A market buy has no base size until it has filled: report what filled.
        quantity = filled if market_buy else order.amount
        if order.status == constants.SPOT_ORDER_STATUS_OPEN:
            status = OrderStatus.PARTIALLY_FILLED if filled else OrderStatus.NEW
        else:
            status = _SPOT_FINISHED.get(order.finish_as) or (
                OrderStatus.FILLED if filled >= quantity and filled else OrderStatus.CANCELED
            )
        return OrderState(
            symbol=instrument.symbol,
            order_id=order.id,
            client_order_id=from_text(order.text),
            side=OrderSide(order.side),
            type=OrderType(order.type),
            status=status,
            quantity=quantity,
            price=order.price if order.type == OrderType.LIMIT.value else None,
            filled_quantity=filled,
            # From the quote total where both are given: it is what the fills summed to, exactly,
            # while the documented average's precision is not stated.
            average_price=(_divide(order.filled_total, filled) if order.filled_total and filled else None)
            or order.avg_deal_price,
            fee=order.fee,
            # Paid in GT or points, the fee says 0 in the fee currency: not what the trade cost, so
            # no fee is reported and the taker rate is charged instead (``OrderOutcome.fee``).
            fee_asset=None if not order.fee and (order.gt_fee or order.point_fee) else order.fee_currency or None,
            updated_at_ms=order.update_time_ms or order.create_time_ms or 0,
        )


class GateioFuturesTrading(_GateioTrading):
    """USDT-perpetual orders, account and positions under ``/futures/usdt``; sizes in whole contracts."""

    __slots__ = ()

    def place_order(self, request: OrderRequest, *, expires_at_ms: int | None = None) -> RestRequest:
        """``POST /futures/usdt/orders``: ``size`` signed (> 0 buy, < 0 sell); market = price "0" + ioc/fok.
        Gate refuses it when it arrives after ``expires_at_ms`` (its clock, ``x-gate-exptime``)."""
        return self._signed(
            "POST", constants.FUTURES_ORDERS_PATH, constants.FUTURES_ORDER_PLACE_RATE_LIMIT, body=self.order_body(request),
            expires_at_ms=expires_at_ms,
        )

    def order_body(self, request: OrderRequest) -> bytes:
        """The JSON order object of ``request``: the REST body and the WS API ``req_param`` alike."""
        instrument = self._instrument(request.symbol)
        lots = self._lots(instrument, request.quantity, request)
        contracts = int(instrument.lots_to_size(lots))
        body: dict[str, str | int | bool] = {
            "contract": instrument.venue_symbol,
            "size": contracts if request.side is OrderSide.BUY else -contracts,
        }
        if request.price is not None:
            body["price"] = self._price(instrument, request.price, request)
        else:
            body["price"] = constants.FUTURES_MARKET_PRICE
        if request.type is OrderType.MARKET or request.time_in_force is not TimeInForce.GTC:
            body["tif"] = _TIME_IN_FORCE[request.time_in_force]
        body["text"] = to_text(request.client_order_id)
        if request.reduce_only:
            body["reduce_only"] = True
        return _encode(body)

    def cancel_order(self, *, order_id: str | None = None, client_order_id: str | None = None) -> RestRequest:
        """``DELETE /futures/usdt/orders/{id or text}``."""
        path = constants.FUTURES_ORDER_PATH.format(order_id=self._order_ref(order_id, client_order_id))
        return self._signed("DELETE", path, constants.FUTURES_ORDER_CANCEL_RATE_LIMIT)

    def query_order(self, *, order_id: str | None = None, client_order_id: str | None = None) -> RestRequest:
        """``GET /futures/usdt/orders/{id or text}``."""
        path = constants.FUTURES_ORDER_PATH.format(order_id=self._order_ref(order_id, client_order_id))
        return self._signed("GET", path, constants.FUTURES_ORDER_QUERY_RATE_LIMIT)

    def open_orders(self, symbol: str | None = None) -> RestRequest:
        """``GET /futures/usdt/orders?status=open`` (``contract=X&`` first when a symbol is given)."""
        query = f"status={constants.FUTURES_ORDER_STATUS_OPEN}"
        if symbol is not None:
            query = f"contract={self._instrument(symbol).venue_symbol}&{query}"
        return self._signed("GET", constants.FUTURES_ORDERS_PATH, constants.FUTURES_ORDERS_LIST_RATE_LIMIT, query)

    def account(self) -> RestRequest:
        """``GET /futures/usdt/accounts``."""
        return self._signed("GET", constants.FUTURES_ACCOUNTS_PATH, constants.FUTURES_ACCOUNTS_RATE_LIMIT)

    def positions(self) -> RestRequest:
        """``GET /futures/usdt/positions``."""
        return self._signed("GET", constants.FUTURES_POSITIONS_PATH, constants.FUTURES_POSITIONS_RATE_LIMIT)

    def funding_payments(self, since_ms: int, offset: int = 0) -> RestRequest:
        """``GET /futures/usdt/account_book?type=fund``: one page of the funding settled since
        ``since_ms`` (whole seconds), newest first, from entry ``offset``."""
        query = (
            f"from={since_ms // 1000}&limit={constants.ACCOUNT_BOOK_PAGE}&offset={offset}"
            f"&type={constants.ACCOUNT_BOOK_FUNDING}"
        )
        return self._signed("GET", constants.FUTURES_ACCOUNT_BOOK_PATH, constants.FUTURES_ACCOUNT_BOOK_RATE_LIMIT, query)

    def parse_funding_payments(self, body: bytes) -> tuple[list[FundingPayment], int]:
        """The funding payments of one ``funding_payments`` page, and its entry count when the page
        is full (a next page may follow), else 0.

        Entries of contracts this catalog does not list are left out. An entry without an id
        (older than the venue's ids) is named by its time, contract and amount.
        """
        entries = _decode(body, list[FuturesAccountBookEntry], "futures account book")
        payments = []
        for entry in entries:
            if entry.type != constants.ACCOUNT_BOOK_FUNDING:
                continue
            try:
                symbol = self.instruments.by_venue_symbol(entry.contract).symbol
            except InstrumentError:
                continue
            payment_id = entry.id or f"{entry.time}:{entry.contract}:{entry.change}"
            payments.append(
                FundingPayment(payment_id=payment_id, symbol=symbol, amount=entry.change, time_ms=time_ms(entry.time, "funding time", 1000))
            )
        return payments, len(entries) if len(entries) >= constants.ACCOUNT_BOOK_PAGE else 0

    def parse_order(self, body: bytes) -> OrderState:
        """An order body (place, cancel, query)::

        {"id":"299207900263708423","contract":"BTC_USDT","size":"100","left":"0","price":"0","tif":"ioc",
         "fill_price":"0.005416","text":"api","status":"finished","finish_as":"filled","tkfr":"0.0005",
         "mkfr":"0.0002","create_time":"1768397866.662","finish_time":"1768397866.663"}
        """
        return self.order_state(_decode(body, FuturesOrder, "futures order"))

    def parse_open_orders(self, body: bytes) -> list[OrderState]:
        """The body of ``open_orders``: a list of orders. One on a contract the catalog does not list
        (in delisting: never one this run sent) is left out with a warning, not the whole listing."""
        return _readable_states(_decode(body, list[FuturesOrder], "futures orders"), self.order_state, (InstrumentError,))

    def parse_fees(self, body: bytes) -> tuple[Decimal, Decimal]:
        """``(taker, maker)`` USDT-perpetual fractions of a ``GET /spot/fee`` body (``futures_*_fee``)."""
        fee = _decode(body, AccountFee, "spot fee")
        if fee.futures_taker_fee is None or fee.futures_maker_fee is None:
            raise ExchangeError(constants.VENUE, "spot fee: the answer has no futures_taker_fee/futures_maker_fee")
        return fee.futures_taker_fee, fee.futures_maker_fee

    def parse_balances(self, body: bytes) -> dict[str, Balance]:
        """The settle asset's balance: free = ``available``, locked = the rest of ``total`` (margins).

        Refused for an account in dual (hedge) position mode: the engine trades, checks and closes
        one net position per contract, and there a buy meant to shrink a short opens a long.
        """
        account = _decode(body, FuturesAccount, "futures account")
        if account.in_dual_mode:
            raise ExchangeError(
                constants.VENUE,
                "the USDT futures account is in dual (hedge) position mode; the engine needs single mode "
                "(one net position per contract): switch it in the account's futures settings",
            )
        free = account.available
        return {account.currency: Balance(asset=account.currency, free=free, locked=account.total - free)}

    def parse_positions(self, body: bytes) -> list[Position]:
        """Open positions (size != 0) of ``GET /futures/usdt/positions``, sizes in contracts.

        A contract the catalog does not list (in delisting, listed since it was read, traded by
        hand) is named as its unified symbol all the same: one such position made the whole
        answer unreadable, and with it every check of the engine's own positions.
        """
        return [
            Position(
                symbol=self._position_symbol(p.contract),
                size=p.size,
                entry_price=p.entry_price,
                mark_price=p.mark_price,
                unrealized_pnl=p.unrealised_pnl,
                leverage=p.leverage,
                liquidation_price=p.liq_price or None,
            )
            for p in _decode(body, list[FuturesPosition], "futures positions")
            if p.size
        ]

    def _position_symbol(self, contract: str) -> str:
        try:
            return self.instruments.by_venue_symbol(contract).symbol
        except InstrumentError:
            try:
                return from_venue_symbol(contract, futures=True)
            except InstrumentError:
                return contract

    def order_state(self, order: FuturesOrder) -> OrderState:
        """The ``OrderState`` of a decoded futures order; quantities are unsigned contracts.

        The answer carries no fee, only the order's rates: its fills are charged ``tkfr`` (the
        order's own taker rate, which a promotion or the contract can set apart from the account's
        tier), ``mkfr`` on a post-only order, which only makes (``OrderOutcome.fee``).
        """
        instrument = self.instruments.by_venue_symbol(order.contract)
        quantity = abs(order.size)
        filled = quantity - abs(order.left)
        if order.status == constants.FUTURES_ORDER_STATUS_OPEN:
            status = OrderStatus.PARTIALLY_FILLED if filled else OrderStatus.NEW
        else:
            status = _FUTURES_FINISHED.get(order.finish_as) or (
                OrderStatus.FILLED if filled == quantity else OrderStatus.CANCELED
            )
        market = order.price == 0
        return OrderState(
            symbol=instrument.symbol,
            order_id=str(order.id),
            client_order_id=from_text(order.text),
            side=OrderSide.BUY if order.size > 0 else OrderSide.SELL,
            type=OrderType.MARKET if market else OrderType.LIMIT,
            status=status,
            quantity=quantity,
            price=None if market else order.price,
            filled_quantity=filled,
            average_price=order.fill_price if filled else None,
            updated_at_ms=_seconds_to_ms(order.finish_time or order.create_time),
            fee_rate=order.mkfr if order.tif == _TIME_IN_FORCE[TimeInForce.POST_ONLY] else order.tkfr,
        )

