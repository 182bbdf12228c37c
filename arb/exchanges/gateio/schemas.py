"""msgspec schemas of the Gate.io REST payloads the connectors use; fields named as on the wire.

Every money field is ``Decimal`` (decoded exactly from JSON strings or numbers). Futures
sizes are integers of contracts but may arrive as strings, so they are ``Decimal`` too.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from ...instruments import DecimalPlaces


class CurrencyPair(msgspec.Struct, frozen=True):
    """One entry of ``GET /spot/currency_pairs``.

    ``{"id":"BTC_USDT","base":"BTC","quote":"USDT","fee":"0.2","min_base_amount":"0.0001",
    "min_quote_amount":"1","amount_precision":4,"precision":2,"trade_status":"tradable"}``
    """

    id: str  # "BTC_USDT"
    base: str
    quote: str
    fee: Decimal  # taker/maker fee in PERCENT: "0.2" = 0.2 %
    amount_precision: DecimalPlaces  # amount decimals
    precision: DecimalPlaces  # price decimals
    trade_status: str  # untradable | buyable | sellable | tradable
    min_base_amount: Decimal | None = None  # minimum amount, base
    min_quote_amount: Decimal | None = None  # minimum order value, quote
    max_base_amount: Decimal | None = None
    max_quote_amount: Decimal | None = None
    sell_start: int = 0  # s
    buy_start: int = 0  # s


class CurrencyPairName(msgspec.Struct, frozen=True):
    """The fields naming a ``CurrencyPair``, read from an entry that does not decode as one."""

    id: str = ""
    base: str = ""
    quote: str = ""


class FuturesContract(msgspec.Struct, frozen=True):
    """One entry of ``GET /futures/usdt/contracts`` (the fields the engine uses).

    ``{"name":"BTC_USDT","quanto_multiplier":"0.0001","order_price_round":"0.1","order_size_min":1,
    "order_size_max":1000000,"maker_fee_rate":"-0.000152","taker_fee_rate":"0.00075","in_delisting":false}``
    """

    name: str  # "BTC_USDT"
    quanto_multiplier: Decimal  # base units per contract
    order_price_round: Decimal  # tick
    order_size_min: Decimal  # contracts (a JSON integer, or a string in newer payloads)
    order_size_max: Decimal  # contracts
    maker_fee_rate: Decimal  # fraction; negative = rebate
    taker_fee_rate: Decimal  # fraction
    mark_price_round: Decimal | None = None
    in_delisting: bool = False
    type: str = "direct"  # direct (linear) | inverse
    status: str | None = None  # newer payloads: "trading" | "delisting" | ...
    orderbook_id: int | None = None
    funding_rate: Decimal | None = None  # fraction per settlement; > 0: longs pay shorts
    funding_interval: int | None = None  # s
    funding_next_apply: int | None = None  # s, next settlement
    last_price: Decimal | None = None
    mark_price: Decimal | None = None


class FuturesContractName(msgspec.Struct, frozen=True):
    """The fields naming a ``FuturesContract`` (and whether it is delisting), read from an entry
    that does not decode as one."""

    name: str = ""
    in_delisting: bool = False
    status: str | None = None


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
    gt_fee: Decimal = Decimal(0)  # the fee paid in GT instead (fee then 0)
    point_fee: Decimal = Decimal(0)  # the fee paid in account points instead (fee then 0)
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


class FuturesOrderPush(FuturesOrder, frozen=True):
    """One order of a ``futures.orders`` push: the REST order object with numbers as JSON numbers.

    ``{"contract":"BTC_USD","create_time":1628736847,"create_time_ms":1628736847325,"fill_price":40000.4,
    "finish_as":"filled","finish_time":1628736848,"finish_time_ms":1628736848321,"iceberg":0,"id":4872460,
    "is_close":false,"is_liq":false,"is_reduce_only":false,"left":0,"mkfr":-0.00025,"price":40000.4,"refr":0,
    "refu":0,"size":1,"status":"finished","text":"-","tif":"gtc","tkfr":0.0005,"user":"110xxxxx",
    "update_id":1,"update_time":1541505434123,"stop_loss_price":"","stop_profit_price":""}``
    """

    update_time: Decimal | None = None  # ms as documented, or s with a fraction as the REST answer writes it


class FuturesUserTrade(msgspec.Struct, frozen=True):
    """One fill of a ``futures.usertrades`` push; ``size`` in contracts, negative on a sell.

    ``{"id":"3335259","create_time":1628736848,"create_time_ms":1628736848321,"contract":"BTC_USD",
    "order_id":"4872460","size":1,"price":"40000.4","role":"maker","text":"api","fee":0.0009290592,"point_fee":0}``
    """

    id: str | int
    contract: str
    order_id: str | int
    size: Decimal  # contracts, signed: > 0 buy, < 0 sell (a JSON number, or text in some pushes)
    price: Decimal
    role: str  # maker | taker
    fee: Decimal | None = None  # settle currency (a JSON number, decoded from its text); absent in older pushes
    text: str = ""
    create_time_ms: int = 0


class SpotBalancePush(msgspec.Struct, frozen=True):
    """One currency of a ``spot.balances`` push.

    ``{"timestamp":"1667556323","timestamp_ms":"1667556323730","user":"1000001","currency":"USDT","change":"0",
    "total":"222244.3827652","available":"222244.3827","freeze":"5","freeze_change":"5.000000",
    "change_type":"order-create"}``
    """

    currency: str
    available: Decimal
    freeze: Decimal = Decimal(0)  # locked
    total: Decimal | None = None
    change_type: str = ""
    timestamp_ms: Decimal | None = None  # when the balance changed


class FuturesBalancePush(msgspec.Struct, frozen=True):
    """One change of a ``futures.balances`` push: the wallet balance after it, nothing on margins.

    ``{"balance":9.998739899488,"change":-0.000002074115,"text":"BTC_USD:3914424","time":1547199246,
    "time_ms":1547199246123,"type":"fee","user":"211xxx","currency":"btc"}``
    """

    balance: Decimal
    currency: str  # lower case
    change: Decimal = Decimal(0)
    type: str = ""


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
    user: int | str | None = None  # the account's user id (futures private channels name it); text in real answers
    unrealised_pnl: Decimal = Decimal(0)
    position_margin: Decimal = Decimal(0)
    order_margin: Decimal = Decimal(0)
    in_dual_mode: bool = False  # long and short positions apart per contract (hedge mode)


class FuturesAccountBookEntry(msgspec.Struct, frozen=True):
    """One entry of ``GET /futures/usdt/account_book``."""

    time: Decimal  # seconds, with a fraction
    change: Decimal  # > 0 credited, < 0 debited
    type: str  # "fund": funding settled on a position; "pnl", "fee", "dnw"... otherwise
    contract: str = ""  # given on entries since 2023-10-30
    id: str = ""  # the entry's id, where the venue gives one
    text: str = ""


class FuturesPosition(msgspec.Struct, frozen=True):
    """One entry of ``GET /futures/usdt/positions``."""

    contract: str
    size: Decimal  # contracts, signed: > 0 long, < 0 short
    entry_price: Decimal = Decimal(0)
    mark_price: Decimal | None = None
    unrealised_pnl: Decimal | None = None
    leverage: Decimal | None = None  # 0 = cross margin
    margin: Decimal | None = None
    liq_price: Decimal | None = None  # "0": none


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


class SpotOrderPush(msgspec.Struct, frozen=True):
    """One order of a ``spot.orders`` push; ``event`` is put (created), update (filled) or finish.

    ``{"id":"30784435","user":123456,"text":"t-abc","create_time":"1605175506","event":"put",
    "currency_pair":"BTC_USDT","type":"limit","side":"sell","amount":"1","price":"10001","left":"1",
    "filled_total":"0","fee":"0","fee_currency":"USDT",...,"finish_as":"open"}``
    """

    id: str
    currency_pair: str
    type: str  # limit | market
    side: str  # buy | sell
    amount: Decimal  # base (quote for market buys)
    event: str  # put | update | finish
    text: str = ""
    price: Decimal = Decimal(0)
    left: Decimal = Decimal(0)
    filled_amount: Decimal | None = None  # base filled (newer payloads)
    filled_total: Decimal = Decimal(0)  # quote filled
    avg_deal_price: Decimal | None = None
    fee: Decimal = Decimal(0)  # cumulative
    fee_currency: str = ""
    gt_fee: Decimal = Decimal(0)  # paid in GT instead (fee then 0), as on ``SpotOrder``
    point_fee: Decimal = Decimal(0)  # paid in account points instead
    finish_as: str = ""
    create_time_ms: Decimal | None = None  # ms (a string on the wire)
    update_time_ms: Decimal | None = None


class SpotUserTrade(msgspec.Struct, frozen=True):
    """One fill of a ``spot.usertrades`` push.

    ``{"id":5736713,"user_id":1000001,"order_id":"30784428","currency_pair":"BTC_USDT","create_time":1605176741,
    "create_time_ms":"1605176741123.456","side":"sell","amount":"1.00000000","role":"taker",
    "price":"10000.00000000","fee":"0.00200000000000","fee_currency":"USDT","point_fee":"0","gt_fee":"0","text":"apiv4"}``
    """

    id: int | str  # trade id
    order_id: str
    currency_pair: str
    side: str  # buy | sell
    amount: Decimal  # base
    role: str  # maker | taker
    price: Decimal
    fee: Decimal = Decimal(0)
    fee_currency: str = ""
    create_time_ms: Decimal | None = None  # ms with a sub-ms fraction (a string on the wire)
    text: str = ""


class WsPush(msgspec.Struct, frozen=True):
    """A server frame of a channel: an update push, an ack or an error reply."""

    channel: str = ""
    event: str = ""
    result: msgspec.Raw = msgspec.Raw(b"null")
    error: WsError | None = None
    time: int = 0  # s


class WsError(msgspec.Struct, frozen=True):
    """``{"code":4,"message":"Authentication fail"}`` of a refused request."""

    code: int
    message: str = ""


class AccountFee(msgspec.Struct, frozen=True):
    """``GET /spot/fee``: the account's tier, as fractions (not percent).

    ``{"user_id":10001,"taker_fee":"0.002","maker_fee":"0.002","gt_discount":false,"gt_taker_fee":"0",
    "gt_maker_fee":"0","loan_fee":"0.18","point_type":"1","futures_taker_fee":"0.0005","futures_maker_fee":"0"}``
    """

    taker_fee: Decimal
    maker_fee: Decimal
    futures_taker_fee: Decimal | None = None
    futures_maker_fee: Decimal | None = None


class WsApiErrs(msgspec.Struct, frozen=True):
    """``data.errs`` of a refused WS API request: ``{"label":"INVALID_SIGNATURE","message":"..."}``."""

    label: str
    message: str = ""


class WsApiHeader(msgspec.Struct, frozen=True):
    """``header`` of a WS API reply (the fields the client reads; times in us, the reset in ms)."""

    status: str = "200"
    channel: str = ""
    response_time: str = ""  # ms, as a string
    x_in_time: int = 0
    x_out_time: int = 0
    x_gate_ratelimit_reset_timestamp: int | None = None


class WsApiData(msgspec.Struct, frozen=True):
    """``data`` of a WS API reply: the result, or ``errs`` when refused."""

    result: msgspec.Raw = msgspec.Raw(b"null")
    errs: WsApiErrs | None = None


class WsApiReply(msgspec.Struct, frozen=True):
    """One WS API reply: the ack (``"ack":true``, order_place only) or the result of request ``request_id``.

    ``{"request_id":"request-2","ack":true,"header":{"status":"200","channel":"spot.order_place",
    "x_in_time":1681985856667508,"x_out_time":1681985856667598,...},"data":{"result":{"req_id":"request-2",...}}}``
    """

    request_id: str = ""
    ack: bool = False
    header: WsApiHeader = WsApiHeader()
    data: WsApiData = WsApiData()
