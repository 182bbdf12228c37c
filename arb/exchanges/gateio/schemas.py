"""msgspec schemas of the Gate.io REST payloads the connectors use; fields named as on the wire.

Every money field is ``Decimal`` (decoded exactly from JSON strings or numbers). Futures
sizes are integers of contracts but may arrive as strings, so they are ``Decimal`` too.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec


class CurrencyPair(msgspec.Struct, frozen=True):
    """One entry of ``GET /spot/currency_pairs``.

    ``{"id":"BTC_USDT","base":"BTC","quote":"USDT","fee":"0.2","min_base_amount":"0.0001",
    "min_quote_amount":"1","amount_precision":4,"precision":2,"trade_status":"tradable"}``
    """

    id: str  # "BTC_USDT"
    base: str
    quote: str
    fee: Decimal  # taker/maker fee in PERCENT: "0.2" = 0.2 %
    amount_precision: int  # amount decimals
    precision: int  # price decimals
    trade_status: str  # untradable | buyable | sellable | tradable
    min_base_amount: Decimal | None = None  # minimum amount, base
    min_quote_amount: Decimal | None = None  # minimum order value, quote
    max_base_amount: Decimal | None = None
    max_quote_amount: Decimal | None = None
    sell_start: int = 0  # s
    buy_start: int = 0  # s


class FuturesContract(msgspec.Struct, frozen=True):
    """One entry of ``GET /futures/usdt/contracts`` (the fields the engine uses).

    ``{"name":"BTC_USDT","quanto_multiplier":"0.0001","order_price_round":"0.1","order_size_min":1,
    "order_size_max":1000000,"maker_fee_rate":"-0.000152","taker_fee_rate":"0.00075","in_delisting":false}``
    """

    name: str  # "BTC_USDT"
    quanto_multiplier: Decimal  # base units per contract
    order_price_round: Decimal  # tick
    order_size_min: int  # contracts
    order_size_max: int  # contracts
    maker_fee_rate: Decimal  # fraction; negative = rebate
    taker_fee_rate: Decimal  # fraction
    mark_price_round: Decimal | None = None
    in_delisting: bool = False
    type: str = "direct"  # direct (linear) | inverse
    status: str | None = None  # newer payloads: "trading" | "delisting" | ...
    orderbook_id: int | None = None
    funding_rate: Decimal | None = None
    funding_interval: int | None = None  # s
    last_price: Decimal | None = None
    mark_price: Decimal | None = None


class OrderBook(msgspec.Struct, frozen=True):
    """``GET /spot/order_book?with_id=true``: ``{"id":123,"current":ms,"update":ms,"asks":[["p","q"]],"bids":...}``."""

    asks: list[tuple[Decimal, Decimal]]  # [price, amount], best first
    bids: list[tuple[Decimal, Decimal]]
    id: int | None = None  # book update id (with_id=true)
    current: int | None = None  # response time, ms
    update: int | None = None  # last book change, ms


class FuturesLevel(msgspec.Struct, frozen=True):
    """``{"p":"54672.1","s":58794}``."""

    p: Decimal  # price
    s: Decimal  # size, contracts


class FuturesOrderBook(msgspec.Struct, frozen=True):
    """``GET /futures/usdt/order_book?with_id=true``."""

    asks: list[FuturesLevel]
    bids: list[FuturesLevel]
    id: int | None = None  # book update id
    current: Decimal | None = None  # response time, s with ms fraction
    update: Decimal | None = None  # last book change, s


class SpotOrder(msgspec.Struct, frozen=True):
    """A spot order as returned by ``POST /spot/orders`` (and the WS API ``spot.order_place`` result)."""

    id: str
    currency_pair: str
    type: str  # limit | market
    side: str  # buy | sell
    amount: Decimal  # base (quote for market buys)
    status: str  # open | closed | cancelled
    text: str = ""  # client order id, "t-..."
    account: str = "spot"
    price: Decimal = Decimal(0)
    time_in_force: str = "gtc"
    left: Decimal = Decimal(0)  # amount still open
    filled_amount: Decimal | None = None  # base filled (newer payloads)
    fill_price: Decimal = Decimal(0)  # total filled in quote (historic name)
    filled_total: Decimal = Decimal(0)  # total filled in quote
    avg_deal_price: Decimal | None = None
    fee: Decimal = Decimal(0)
    fee_currency: str = ""
    finish_as: str = ""  # open | filled | cancelled | ioc | stp | poc | fok ...
    create_time_ms: int | None = None
    update_time_ms: int | None = None


class FuturesOrder(msgspec.Struct, frozen=True):
    """A futures order as returned by ``POST /futures/usdt/orders``."""

    id: int | str
    contract: str
    size: Decimal  # contracts, signed: > 0 buy, < 0 sell
    status: str  # open | finished
    price: Decimal = Decimal(0)  # "0" for market
    left: Decimal = Decimal(0)  # contracts still open
    fill_price: Decimal = Decimal(0)  # average fill price
    tif: str = "gtc"
    text: str = ""
    finish_as: str = ""  # filled | cancelled | liquidated | ioc | auto_deleveraged | reduce_only ...
    is_reduce_only: bool = False
    tkfr: Decimal | None = None  # taker fee rate
    mkfr: Decimal | None = None  # maker fee rate
    create_time: Decimal | None = None  # s
    finish_time: Decimal | None = None  # s


class SpotOpenOrders(msgspec.Struct, frozen=True):
    """One pair of ``GET /spot/open_orders``: ``{"currency_pair":"BTC_USDT","total":1,"orders":[...]}``."""

    currency_pair: str
    orders: list[SpotOrder]
    total: int = 0


class FuturesAccount(msgspec.Struct, frozen=True):
    """``GET /futures/usdt/accounts``: ``{"total":"10","unrealised_pnl":"0","position_margin":"0",
    "order_margin":"0","available":"10","currency":"USDT",...}``."""

    total: Decimal  # wallet balance, excluding unrealised PnL
    available: Decimal
    currency: str
    unrealised_pnl: Decimal = Decimal(0)
    position_margin: Decimal = Decimal(0)
    order_margin: Decimal = Decimal(0)


class FuturesPosition(msgspec.Struct, frozen=True):
    """One entry of ``GET /futures/usdt/positions``."""

    contract: str
    size: Decimal  # contracts, signed: > 0 long, < 0 short
    entry_price: Decimal = Decimal(0)
    mark_price: Decimal | None = None
    unrealised_pnl: Decimal | None = None
    leverage: Decimal | None = None  # 0 = cross margin
    margin: Decimal | None = None


class SpotAccount(msgspec.Struct, frozen=True):
    """One currency of ``GET /spot/accounts``."""

    currency: str
    available: Decimal
    locked: Decimal
    update_id: int | None = None


class ErrorResponse(msgspec.Struct, frozen=True):
    """A failed request: ``{"label":"INVALID_PARAM_VALUE","message":"..."}`` (``detail`` on some endpoints)."""

    label: str
    message: str = ""
    detail: str | None = None


class WsRequest(msgspec.Struct, frozen=True):
    """A client websocket request: ``{"time":s,"id":n,"channel":..,"event":"subscribe","payload":[..]}``.

    ``payload`` stays raw: its type is channel specific (a list of strings on market data).
    """

    time: int  # request time, s
    channel: str
    event: str = ""  # subscribe | unsubscribe | api; absent on spot.ping
    id: int | None = None  # echoed in the reply
    payload: msgspec.Raw = msgspec.Raw(b"null")  # JSON text, null when absent
    auth: dict[str, str] | None = None  # private channels: method, KEY, SIGN
