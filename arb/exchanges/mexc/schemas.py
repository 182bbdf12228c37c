"""msgspec schemas of the MEXC REST payloads the connectors use; fields named as on the wire.

Every money field is ``Decimal``: msgspec decodes JSON strings ("0.0001") and, for the
contract API, JSON numbers (0.0001) to exact Decimals.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from ...instruments import DecimalPlaces


class ExchangeInfoSymbol(msgspec.Struct, frozen=True):
    """One symbol of ``GET /api/v3/exchangeInfo``.

    ``{"symbol":"TOMO3LUSDT","status":"ENABLED","baseAsset":"TOMO3L","baseAssetPrecision":2,
    "quoteAsset":"USDT","quotePrecision":3,"quoteAmountPrecision":"5","baseSizePrecision":"0.0001",
    "makerCommission":"0.002","takerCommission":"0.002","tradeSideType":"1",...}``
    """

    symbol: str  # venue name, "BTCUSDT"
    status: str  # "1" online, "2" paused, "3" offline ("ENABLED" in older payloads)
    baseAsset: str
    quoteAsset: str
    baseAssetPrecision: DecimalPlaces  # quantity decimals
    quotePrecision: DecimalPlaces  # price decimals
    baseSizePrecision: Decimal  # minimum order quantity, base
    quoteAmountPrecision: Decimal  # minimum order value, quote
    quoteAssetPrecision: DecimalPlaces | None = None  # quote asset decimals
    quoteAmountPrecisionMarket: Decimal | None = None  # minimum market order value, quote
    maxQuoteAmount: Decimal | None = None  # maximum order value, quote
    maxQuoteAmountMarket: Decimal | None = None  # maximum market order value, quote
    makerCommission: Decimal | None = None  # fraction
    takerCommission: Decimal | None = None  # fraction
    orderTypes: list[str] = []
    isSpotTradingAllowed: bool = True  # API spot trading allowed
    tradeSideType: str | int = "1"  # 1 all, 2 buy only, 3 sell only, 4 closed


class ExchangeInfoSymbolName(msgspec.Struct, frozen=True):
    """The fields naming an ``ExchangeInfoSymbol``, read from an entry that does not decode as one."""

    symbol: str = ""
    baseAsset: str = ""
    quoteAsset: str = ""


class ExchangeInfo(msgspec.Struct, frozen=True):
    """``GET /api/v3/exchangeInfo``; each symbol is decoded on its own (``ExchangeInfoSymbol``)."""

    symbols: list[msgspec.Raw]
    timezone: str | None = None
    serverTime: int | None = None  # ms


class DefaultSymbols(msgspec.Struct, frozen=True):
    """``GET /api/v3/defaultSymbols``: ``{"code":200,"data":["BTCUSDT",...],"msg":null}``, the pairs open to API orders."""

    code: int
    data: list[str] | None = None
    msg: str | None = None


class DepthSnapshot(msgspec.Struct, frozen=True):
    """``GET /api/v3/depth``: ``{"lastUpdateId":1112416,"bids":[["15.00000","49999.00000"]],"asks":[...]}``."""

    lastUpdateId: int | str  # book version; a string in some replies
    bids: list[tuple[Decimal, Decimal]]  # [price, quantity], best first
    asks: list[tuple[Decimal, Decimal]]
    timestamp: int | str | None = None  # ms

    @property
    def version(self) -> int:
        """``lastUpdateId`` as an int."""
        return int(self.lastUpdateId)


class OrderResponse(msgspec.Struct, frozen=True):
    """``POST /api/v3/order`` reply."""

    symbol: str
    orderId: str
    price: Decimal
    origQty: Decimal  # ordered quantity, base
    type: str  # LIMIT, MARKET, LIMIT_MAKER, IMMEDIATE_OR_CANCEL, FILL_OR_KILL
    side: str  # BUY | SELL
    transactTime: int  # ms
    orderListId: int | str | None = None


class OrderInfo(msgspec.Struct, frozen=True):
    """An order as ``GET /api/v3/order``, ``DELETE /api/v3/order`` and ``GET /api/v3/openOrders`` report it.

    ``{"symbol":"ATLASUSDT","orderId":"C02__385413065019117569043","orderListId":"-1",
    "clientOrderId":null,"price":"0.004327","origQty":"1220","executedQty":"1220",
    "cummulativeQuoteQty":"5.54124","status":"FILLED","timeInForce":null,"type":"MARKET",
    "side":"SELL",...,"time":"1707671871000","updateTime":"1707671871000",...}``
    """

    symbol: str
    orderId: str | int
    price: Decimal
    origQty: Decimal  # ordered quantity, base ("0" on a market buy by quote amount)
    executedQty: Decimal  # filled quantity, base
    cummulativeQuoteQty: Decimal  # filled value, quote (the venue's spelling)
    status: str  # NEW, PARTIALLY_FILLED, FILLED, CANCELED, PARTIALLY_CANCELED, ...
    type: str
    side: str  # BUY | SELL
    clientOrderId: str | None = None
    origClientOrderId: str | None = None  # cancel replies
    time: int | str | None = None  # ms
    updateTime: int | str | None = None  # ms
    origQuoteOrderQty: Decimal | None = None  # quote amount of a market order by value


class Trade(msgspec.Struct, frozen=True):
    """One fill of ``GET /api/v3/myTrades``.

    ``{"symbol":"ATLASUSDT","id":"dd44f79dda764c2e927a190ac5e7a1e5","orderId":"C02__385413065019117569043",
    "price":"0.004542","qty":"1220","quoteQty":"5.54124","commission":"0","commissionAsset":"USDT",
    "time":"1707671871000","isBuyer":false,"isMaker":false,...,"clientOrderId":null}``
    """

    symbol: str
    id: str | int
    orderId: str | int
    price: Decimal
    qty: Decimal
    commission: Decimal
    commissionAsset: str
    time: int | str  # ms
    isBuyer: bool
    isMaker: bool
    quoteQty: Decimal | None = None
    clientOrderId: str | None = None


class Balance(msgspec.Struct, frozen=True):
    """One asset of ``GET /api/v3/account``."""

    asset: str
    free: Decimal  # available
    locked: Decimal  # held by open orders


class AccountTrading(msgspec.Struct, frozen=True):
    """Whether ``GET /api/v3/account`` lets the account trade, its balances left unread."""

    canTrade: bool | None = None  # None: the answer does not say


class Account(msgspec.Struct, frozen=True):
    """``GET /api/v3/account``."""

    balances: list[Balance]
    canTrade: bool | None = None  # None: the answer does not say
    canWithdraw: bool | None = None
    canDeposit: bool | None = None
    updateTime: int | None = None  # ms
    accountType: str | None = None  # "SPOT"
    permissions: list[str] = []


class ErrorResponse(msgspec.Struct, frozen=True):
    """A failed spot request: ``{"code":700003,"msg":"Timestamp for this request is outside of the recvWindow."}``."""

    code: int | str
    msg: str = ""


class ContractDetail(msgspec.Struct, frozen=True):
    """One contract of ``GET /api/v1/contract/detail`` (numbers, not strings, on the wire)."""

    symbol: str  # "BTC_USDT"
    baseCoin: str
    quoteCoin: str
    contractSize: Decimal  # base units per contract
    priceUnit: Decimal  # tick
    volUnit: Decimal  # contract step
    minVol: Decimal  # minimum order, contracts
    maxVol: Decimal  # maximum order, contracts
    takerFeeRate: Decimal  # fraction
    makerFeeRate: Decimal  # fraction
    settleCoin: str | None = None
    priceScale: int | None = None  # price decimals
    volScale: int | None = None  # volume decimals
    state: int = 0  # 0 enabled, 1 delivering, 2 delivered, 3 offline, 4 paused
    apiAllowed: bool = True  # API trading allowed
    isHidden: bool = False


class ContractDetailName(msgspec.Struct, frozen=True):
    """The fields naming a ``ContractDetail``, read from an entry that does not decode as one."""

    symbol: str = ""
    baseCoin: str = ""
    quoteCoin: str = ""
    settleCoin: str | None = None


class ContractDetailResponse(msgspec.Struct, frozen=True):
    """``{"success":true,"code":0,"data":[...]}`` wrapper of the contract detail (a list, or one
    object); each contract is decoded on its own (``ContractDetail``)."""

    success: bool
    code: int
    data: msgspec.Raw = msgspec.Raw(b"null")
    message: str | None = None


class ContractFundingRate(msgspec.Struct, frozen=True):
    """``GET /api/v1/contract/funding_rate/{symbol}`` data.

    ``{"symbol":"BTC_USDT","fundingRate":0.0001,"maxFundingRate":0.003,"minFundingRate":-0.003,
    "collectCycle":8,"nextSettleTime":1587442022003,"timestamp":1587442022003}``
    """

    symbol: str  # "BTC_USDT"
    fundingRate: Decimal  # fraction per settlement; > 0: longs pay shorts
    collectCycle: int  # hours between settlements
    nextSettleTime: int  # ms
    maxFundingRate: Decimal | None = None
    minFundingRate: Decimal | None = None
    timestamp: int | None = None  # ms


class ContractFundingRateResponse(msgspec.Struct, frozen=True):
    """``{"success":true,"code":0,"data":{...}}`` wrapper of one contract's funding rate."""

    success: bool
    code: int
    data: ContractFundingRate | None = None
    message: str | None = None


class ContractDepth(msgspec.Struct, frozen=True):
    """``GET /api/v1/contract/depth/{symbol}`` data: ``{"asks":[[3968.5,121],...],"bids":...,"version":1}``."""

    asks: list[list[Decimal]]  # [price, contracts] or [price, contracts, order count]
    bids: list[list[Decimal]]
    version: int
    timestamp: int | None = None  # ms


class SpotWsRequest(msgspec.Struct, frozen=True):
    """A spot websocket control frame: ``{"method":"SUBSCRIPTION","params":["spot@public..."],"id":1}``."""

    method: str  # SUBSCRIPTION | UNSUBSCRIPTION | PING
    params: list[str] = []  # topics
    id: int = 0


class SpotWsReply(msgspec.Struct, frozen=True):
    """A spot websocket reply: ``{"id":0,"code":0,"msg":"spot@public.aggre.deals.v3.api.pb@100ms@BTCUSDT"}``.

    ``msg`` is the topic list on success, ``PONG`` for a ping, or a refusal text (still code 0).
    """

    id: int
    code: int
    msg: str


class ContractWsParam(msgspec.Struct, frozen=True):
    """``param`` of a contract websocket request."""

    symbol: str | None = None  # "BTC_USDT"


class ContractWsRequest(msgspec.Struct, frozen=True):
    """A contract websocket request: ``{"method":"sub.depth","param":{"symbol":"BTC_USDT"}}``."""

    method: str  # sub.depth | unsub.depth | ping | ...
    param: ContractWsParam = ContractWsParam()


class ContractWsReply(msgspec.Struct, frozen=True):
    """A contract websocket reply: ``{"channel":"rs.error","data":"contract not exists","ts":1587442022003}``."""

    channel: str
    data: msgspec.Raw = msgspec.Raw(b"null")


class Commission(msgspec.Struct, frozen=True):
    """The rates of ``GET /api/v3/tradeFee`` (fractions, written as JSON numbers)."""

    makerCommission: Decimal
    takerCommission: Decimal


class TradeFee(msgspec.Struct, frozen=True):
    """``GET /api/v3/tradeFee?symbol=``: ``{"data":{"makerCommission":0.002,"takerCommission":0.002},"code":0,
    "msg":"success"}``."""

    data: Commission
    code: int = 0
    msg: str = ""
