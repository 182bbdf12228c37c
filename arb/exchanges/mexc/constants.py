"""MEXC endpoints, channels, limits, fees and error codes: data only.

Sources: MEXC spot v3 docs (``mexcdevelop/apidocs`` spot_v3_en: "General Info", "LIMITS",
"Error Code", "Exchange Information"), contract v1 docs (contract_v1_en), and hummingbot's
MEXC connector where marked [HB]. See ``shared/docs/protocols.md`` sections 1-2.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from ..errors import ErrorCategory, ErrorCodeTable

VENUE: Final = "mexc"

# --- spot REST (API v3) ---------------------------------------------------------------
REST_URL: Final = "https://api.mexc.com"
PING_PATH: Final = "/api/v3/ping"
TIME_PATH: Final = "/api/v3/time"
EXCHANGE_INFO_PATH: Final = "/api/v3/exchangeInfo"
DEFAULT_SYMBOLS_PATH: Final = "/api/v3/defaultSymbols"  # symbols tradable through the API
DEPTH_PATH: Final = "/api/v3/depth"
BOOK_TICKER_PATH: Final = "/api/v3/ticker/bookTicker"
ORDER_PATH: Final = "/api/v3/order"
ORDER_TEST_PATH: Final = "/api/v3/order/test"
OPEN_ORDERS_PATH: Final = "/api/v3/openOrders"
ALL_ORDERS_PATH: Final = "/api/v3/allOrders"
MY_TRADES_PATH: Final = "/api/v3/myTrades"
ACCOUNT_PATH: Final = "/api/v3/account"
TRADE_FEE_PATH: Final = "/api/v3/tradeFee"
BATCH_ORDERS_PATH: Final = "/api/v3/batchOrders"
USER_DATA_STREAM_PATH: Final = "/api/v3/userDataStream"

API_KEY_HEADER: Final = "X-MEXC-APIKEY"
SIGNATURE_PARAM: Final = "signature"  # the last query parameter of a signed spot request
LISTEN_KEY_PARAM: Final = "listenKey"  # the private stream's account token, in userDataStream's query
DEFAULT_RECV_WINDOW_MS: Final = 5000
MAX_RECV_WINDOW_MS: Final = 60000
# Signed spot requests are refused when their timestamp is this far or more ahead of the server's.
CLOCK_AHEAD_LIMIT_MS: Final = 1000
DEPTH_DEFAULT_LIMIT: Final = 100
DEPTH_MAX_LIMIT: Final = 5000
BATCH_ORDERS_MAX: Final = 20  # orders per batch, same symbol
MAX_OPEN_ORDERS: Final = 500  # per account
LISTEN_KEY_TTL_S: Final = 3600
LISTEN_KEY_KEEPALIVE_S: Final = 1800

# exchangeInfo "status": "1" online, "2" paused, "3" offline; older payloads say "ENABLED".
SYMBOL_STATUS_ONLINE: Final = frozenset({"1", "ENABLED"})
# exchangeInfo "tradeSideType": 1 all, 2 buy only, 3 sell only, 4 closed.
TRADE_SIDE_ALL: Final = "1"

ORDER_TYPES: Final = ("LIMIT", "MARKET", "LIMIT_MAKER", "IMMEDIATE_OR_CANCEL", "FILL_OR_KILL")
ORDER_STATUSES: Final = (
    "NEW",
    "FILLED",
    "PARTIALLY_FILLED",
    "CANCELED",
    "PARTIALLY_CANCELED",
    "PENDING_CANCEL",
    "REJECTED",
    "EXPIRED",
)
# Quote assets used to split concatenated spot names ("BTCUSDT"); exchangeInfo stays authoritative.
SPOT_QUOTE_ASSETS: Final = ("USDT", "USDC", "USDE", "USD1", "BTC", "ETH", "EUR", "BRL", "TRY")

# --- spot WebSocket -------------------------------------------------------------------
WS_URL: Final = "wss://wbs-api.mexc.com/ws"  # docs print ws://; pushes are binary protobuf
WS_SUBSCRIBE: Final = "SUBSCRIPTION"
WS_UNSUBSCRIBE: Final = "UNSUBSCRIPTION"
WS_PING: Final = "PING"
WS_PONG_MSG: Final = "PONG"
AGGRE_DEPTH_TOPIC: Final = "spot@public.aggre.depth.v3.api.pb@{interval}@{symbol}"  # interval 100ms | 10ms
LIMIT_DEPTH_TOPIC: Final = "spot@public.limit.depth.v3.api.pb@{symbol}@{levels}"  # levels 5 | 10 | 20
AGGRE_BOOK_TICKER_TOPIC: Final = "spot@public.aggre.bookTicker.v3.api.pb@{interval}@{symbol}"
BOOK_TICKER_BATCH_TOPIC: Final = "spot@public.bookTicker.batch.v3.api.pb@{symbol}"
AGGRE_DEALS_TOPIC: Final = "spot@public.aggre.deals.v3.api.pb@{interval}@{symbol}"
PRIVATE_ACCOUNT_TOPIC: Final = "spot@private.account.v3.api.pb"
PRIVATE_DEALS_TOPIC: Final = "spot@private.deals.v3.api.pb"
PRIVATE_ORDERS_TOPIC: Final = "spot@private.orders.v3.api.pb"
DEPTH_INTERVAL: Final = "100ms"  # aggre depth push period: 100ms | 10ms
DEPTH_INTERVALS: Final = ("100ms", "10ms")
DEPTH_SYNC_LIMIT: Final = 1000  # snapshot depth of the documented book sync procedure
# A refused subscription is still answered with code 0; only the text tells, e.g.
# "Not Subscribed successfully! [spot@public.miniTicker.v3.api@BTCUSDT@UTC+0].  Reason： Blocked!"
# (note the full-width colon).
WS_NOT_SUBSCRIBED: Final = "Not Subscribed successfully! [{topics}].  Reason\uff1a {reason} "
WS_NOT_SUBSCRIBED_PREFIX: Final = "Not Subscribed successfully!"
WS_BLOCKED_REASON: Final = "Blocked!"
WS_OK_CODE: Final = 0
# Undocumented answers the simulator gives (the live wording is not published).
WS_LIMIT_REASON: Final = "Subscription limit exceeded!"
WS_BAD_REQUEST_CODE: Final = 1
WS_BAD_REQUEST_MSG: Final = "Invalid request: {detail}"
WS_MAX_SUBSCRIPTIONS: Final = 30  # per connection
# PushDataV3ApiWrapper field numbers (mexcdevelop/websocket-proto)
PUSH_CHANNEL: Final = 1  # string
PUSH_SYMBOL: Final = 3  # string
PUSH_SEND_TIME: Final = 6  # int64 ms
PUSH_LIMIT_DEPTHS: Final = 303  # PublicLimitDepthsV3Api: top-N book, version
PUSH_AGGRE_DEPTHS: Final = 313  # PublicAggreDepthsV3Api: 1 asks, 2 bids, 3 eventType, 4 fromVersion, 5 toVersion
PUSH_DEPTH_BODIES: Final = frozenset({PUSH_LIMIT_DEPTHS, PUSH_AGGRE_DEPTHS})
AGGRE_DEPTH_EVENT_TYPE: Final = "spot@public.aggre.depth.v3.api.pb@{interval}"
WS_MAX_MESSAGES_PER_S: Final = 100  # per connection, client -> server
WS_NO_SUBSCRIPTION_TIMEOUT_S: Final = 30
WS_IDLE_TIMEOUT_S: Final = 60
WS_MAX_LIFETIME_S: Final = 24 * 3600

# --- spot rate limits -----------------------------------------------------------------
# Every endpoint has its own budget of 500 requests per 10 s, per IP and per UID independently.
ENDPOINT_LIMIT: Final = (500, 10.0)  # (requests, window seconds)
IP_WEIGHT_LIMIT: Final = (20_000, 60.0)  # [HB] model of the IP weight budget
UID_WEIGHT_LIMIT: Final = (240_000, 60.0)  # [HB] model of the UID weight budget
ENDPOINT_WEIGHTS: Final = {
    PING_PATH: 1,
    TIME_PATH: 1,
    EXCHANGE_INFO_PATH: 10,
    DEFAULT_SYMBOLS_PATH: 1,
    DEPTH_PATH: 1,  # docs; [HB] budgets 50 for limit=1000 snapshots
    BOOK_TICKER_PATH: 1,
}
BATCH_ORDERS_PER_S: Final = 2
# Signed spot endpoints: each spends 1 on its own 500/10 s budget plus its weight on the UID
# budget; weights as [HB] budgets them (order 2, account and myTrades 10; the docs list
# query order 2, open orders 3, account 10, myTrades 10).
IP_WEIGHT_LIMIT_ID: Final = "ip_weight"
UID_WEIGHT_LIMIT_ID: Final = "uid_weight"
PRIVATE_ENDPOINT_WEIGHTS: Final = {
    ORDER_PATH: 2,
    OPEN_ORDERS_PATH: 3,
    MY_TRADES_PATH: 10,
    ACCOUNT_PATH: 10,
    TRADE_FEE_PATH: 20,  # [MX-S] "Query Symbol Commission"
    USER_DATA_STREAM_PATH: 1,  # listenKey create, keep-alive, close: on their own budget only (see private_stream)
}
# newClientOrderId: [HB] caps it at 32 characters (MAX_ORDER_ID_LEN) and sends letters,
# digits and '-'; the docs publish no charset, so only that conservative set is sent.
CLIENT_ORDER_ID_MAX_LEN: Final = 32
CLIENT_ORDER_ID_PATTERN: Final = r"[A-Za-z0-9_-]{1,32}"

# --- fees -----------------------------------------------------------------------------
# Used only when exchangeInfo lacks makerCommission/takerCommission. The docs' example
# pair shows 0.2 %; [HB] assumes 0.05 %. The higher figure is the safe assumption for
# an arbitrage filter (it can only hide opportunities, never invent them).
DEFAULT_SPOT_MAKER_FEE: Final = Decimal("0.002")
DEFAULT_SPOT_TAKER_FEE: Final = Decimal("0.002")
# Spot fees are charged in the quote asset on both sides, not in the asset received (MEXC's
# "Calculation of Spot Trading Fees": a buy of 0.1 BTC for 5000 USDT at 0.2 % costs 5010 USDT
# and receives the whole 0.1 BTC; a sell of it receives 4990 USDT).
SPOT_FEES_IN_QUOTE: Final = True

# --- spot errors ----------------------------------------------------------------------
# Numeric codes from the spot v3 "Error Code" table; -2011/-2013 from [HB] (Binance-style
# unknown-order replies); 429/418/403/5xx from "HTTP Return Codes" and "LIMITS".
ERROR_CODES: Final[ErrorCodeTable] = {
    -2011: ErrorCategory.UNKNOWN_ORDER,  # Unknown order sent
    -2013: ErrorCategory.UNKNOWN_ORDER,  # Order does not exist
    22222: ErrorCategory.UNKNOWN_ORDER,  # record does not exist
    30026: ErrorCategory.UNKNOWN_ORDER,  # invalid order ids
    10101: ErrorCategory.INSUFFICIENT_BALANCE,  # Insufficient balance
    30004: ErrorCategory.INSUFFICIENT_BALANCE,  # Insufficient position
    30005: ErrorCategory.INSUFFICIENT_BALANCE,  # Oversold
    10096: ErrorCategory.PRECISION,  # amount decimal places is too long
    30002: ErrorCategory.MIN_NOTIONAL,  # The minimum transaction volume cannot be less than
    30003: ErrorCategory.MIN_NOTIONAL,  # The maximum transaction volume cannot be greater than
    30000: ErrorCategory.MAINTENANCE,  # suspended transaction for the symbol
    30016: ErrorCategory.MAINTENANCE,  # trading disabled
    # "service not available, please try again": a request it came back to may still have been
    # taken (as an HTTP 5xx), so an order's outcome is unknown; reads are retried.
    503: ErrorCategory.OUTCOME_UNKNOWN,
    30001: ErrorCategory.ORDER_REJECTED,  # transaction direction not allowed
    30010: ErrorCategory.ORDER_REJECTED,  # no valid trade price
    30018: ErrorCategory.ORDER_REJECTED,  # market order is disabled
    30019: ErrorCategory.ORDER_REJECTED,  # api market order is disabled
    30020: ErrorCategory.ORDER_REJECTED,  # no permission for the symbol
    30025: ErrorCategory.ORDER_REJECTED,  # no exist opponent order
    30027: ErrorCategory.ORDER_REJECTED,  # max position reached, buying suspended
    30028: ErrorCategory.ORDER_REJECTED,  # platform risk control, selling suspended
    30029: ErrorCategory.ORDER_REJECTED,  # maximum order limit
    30032: ErrorCategory.ORDER_REJECTED,  # maximum position
    30041: ErrorCategory.ORDER_REJECTED,  # current order type can not place order
    70011: ErrorCategory.ORDER_REJECTED,  # pair user ban trade apikey
    10007: ErrorCategory.INVALID_REQUEST,  # "symbol not support api": not in defaultSymbols (rules re-read)
    30014: ErrorCategory.INVALID_REQUEST,  # invalid symbol
    30021: ErrorCategory.INVALID_REQUEST,  # invalid symbol
    33333: ErrorCategory.INVALID_REQUEST,  # param is error
    44444: ErrorCategory.INVALID_REQUEST,  # param cannot be null
    700004: ErrorCategory.INVALID_REQUEST,  # origClientOrderId or orderId must be sent
    700005: ErrorCategory.INVALID_REQUEST,  # recvWindow must less than 60000
    700008: ErrorCategory.INVALID_REQUEST,  # illegal characters found in parameter
    730001: ErrorCategory.INVALID_REQUEST,  # pair not found
    730002: ErrorCategory.INVALID_REQUEST,  # input param is invalid
    429: ErrorCategory.RATE_LIMITED,  # Too Many Requests
    # "api key required", but also "price and quantity must be positive": refused before matching,
    # its parameters rather than the key (a missing key fails the start's signed balance call).
    400: ErrorCategory.INVALID_REQUEST,
    401: ErrorCategory.AUTH_FAILED,  # No authority
    602: ErrorCategory.AUTH_FAILED,  # Signature verification failed
    10072: ErrorCategory.AUTH_FAILED,  # invalid access key
    700001: ErrorCategory.AUTH_FAILED,  # API-key format invalid
    700002: ErrorCategory.AUTH_FAILED,  # Signature for this request is not valid
    700006: ErrorCategory.AUTH_FAILED,  # IP non white list
    700007: ErrorCategory.AUTH_FAILED,  # No permission to access the endpoint
    10073: ErrorCategory.TIMESTAMP,  # invalid Request-Time
    700003: ErrorCategory.TIMESTAMP,  # Timestamp for this request is outside of the recvWindow
}
HTTP_STATUSES: Final = {
    429: ErrorCategory.RATE_LIMITED,  # request rate limit broken
    418: ErrorCategory.RATE_LIMITED,  # IP banned after repeated 429s; Retry-After gives the ban length
    403: ErrorCategory.RATE_LIMITED,  # WAF limit violated
}

# --- futures (contract v1) ------------------------------------------------------------
FUTURES_REST_URL: Final = "https://contract.mexc.com"
CONTRACT_PING_PATH: Final = "/api/v1/contract/ping"
CONTRACT_DETAIL_PATH: Final = "/api/v1/contract/detail"
CONTRACT_DEPTH_PATH: Final = "/api/v1/contract/depth/{symbol}"
CONTRACT_DEPTH_COMMITS_PATH: Final = "/api/v1/contract/depth_commits/{symbol}/{limit}"
CONTRACT_FUNDING_RATE_PATH: Final = "/api/v1/contract/funding_rate/{symbol}"  # fundingRate, collectCycle (h), nextSettleTime (ms)
CONTRACT_ORDER_CREATE_PATH: Final = "/api/v1/private/order/create"  # marked "Under maintenance" in the docs
CONTRACT_ASSETS_PATH: Final = "/api/v1/private/account/assets"
# Each public contract endpoint keeps its own budget (requests, window seconds) [MX-C "Market endpoints"].
CONTRACT_ENDPOINT_LIMIT: Final = (20, 2.0)
CONTRACT_DETAIL_LIMIT: Final = (1, 5.0)  # the contract list: one read in 5 s
CONTRACT_RATE_LIMITS: Final = {
    CONTRACT_PING_PATH: CONTRACT_ENDPOINT_LIMIT,
    CONTRACT_DETAIL_PATH: CONTRACT_DETAIL_LIMIT,
    CONTRACT_DEPTH_PATH: CONTRACT_ENDPOINT_LIMIT,
    CONTRACT_FUNDING_RATE_PATH: CONTRACT_ENDPOINT_LIMIT,  # one budget for every contract's
}

CONTRACT_API_KEY_HEADER: Final = "ApiKey"
CONTRACT_TIME_HEADER: Final = "Request-Time"
CONTRACT_SIGNATURE_HEADER: Final = "Signature"
CONTRACT_RECV_WINDOW_HEADER: Final = "Recv-Window"  # seconds, default 10, max 60

# contract detail "state": 0 enabled, 1 delivering, 2 delivered, 3 offline, 4 paused
CONTRACT_STATE_ENABLED: Final = 0

FUTURES_WS_URL: Final = "wss://contract.mexc.com/edge"
FUTURES_WS_PING: Final = "ping"
FUTURES_WS_PONG_CHANNEL: Final = "pong"
FUTURES_WS_LOGIN: Final = "login"
FUTURES_WS_LOGIN_ACK: Final = "rs.login"
FUTURES_WS_ERROR_CHANNEL: Final = "rs.error"
FUTURES_DEPTH_SUBSCRIBE: Final = "sub.depth"
FUTURES_DEPTH_FULL_SUBSCRIBE: Final = "sub.depth.full"  # limit 5 | 10 | 20
FUTURES_DEPTH_ACK_CHANNEL: Final = "rs.sub.depth"
FUTURES_DEPTH_UNSUBSCRIBE: Final = "unsub.depth"
FUTURES_DEPTH_UNSUB_ACK_CHANNEL: Final = "rs.unsub.depth"
FUTURES_WS_ACK_DATA: Final = "success"
FUTURES_DEPTH_CHANNEL: Final = "push.depth"
# rs.error texts of the simulator (the live wording is not published)
FUTURES_WS_UNKNOWN_SYMBOL: Final = "contract {symbol} does not exist"
FUTURES_WS_BAD_REQUEST: Final = "invalid request: {detail}"
FUTURES_WS_PING_INTERVAL_S: Final = 15  # server drops after 60 s without a ping; docs advise 10-20 s

# Contract API codes; recalled from the contract docs' error table, not re-checked against
# the stored copy (only the order-placement maintenance notice was).
FUTURES_ERROR_CODES: Final[ErrorCodeTable] = {
    401: ErrorCategory.AUTH_FAILED,  # unauthorized
    602: ErrorCategory.AUTH_FAILED,  # signature verification failed
    510: ErrorCategory.RATE_LIMITED,  # excessive frequency of requests
    513: ErrorCategory.TIMESTAMP,  # request time outside the allowed window
    2005: ErrorCategory.INSUFFICIENT_BALANCE,  # balance insufficient
    # The answer to order placement for accounts without contract API trading
    # (ccxt/ccxt#14474): {"success":false,"code":1002,"message":"Contract not allow place order!"}
    1002: ErrorCategory.ORDER_REJECTED,
}
CONTRACT_ORDER_SUBMIT_PATH: Final = "/api/v1/private/order/submit"  # the path ccxt and the SDKs use
CONTRACT_ORDER_REFUSED_CODE: Final = 1002
CONTRACT_ORDER_REFUSED_MSG: Final = "Contract not allow place order!"
