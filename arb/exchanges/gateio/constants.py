"""Gate.io endpoints, channels, limits, fees and error labels: data only.

Sources: Gate API v4 docs (mirrored in ``rosssaunders/coincise`` docs/gateio: authentication,
"Error Handling" / ``label`` list, rate limits, spot and futures WebSocket), gateapi-python and
gatews; hummingbot's Gate connectors where marked [HB]. See ``shared/docs/protocols.md`` 3-4.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from ..errors import ErrorCategory, ErrorCodeTable

VENUE: Final = "gateio"

# --- REST -----------------------------------------------------------------------------
REST_URL: Final = "https://api.gateio.ws/api/v4"
API_PREFIX: Final = "/api/v4"  # part of the signed path
SERVER_TIME_PATH: Final = "/spot/time"
CURRENCY_PAIRS_PATH: Final = "/spot/currency_pairs"
ORDER_BOOK_PATH: Final = "/spot/order_book"  # ?currency_pair=&limit=&with_id=true
ORDERS_PATH: Final = "/spot/orders"
ORDER_PATH: Final = "/spot/orders/{order_id}"  # DELETE / GET / PATCH with ?currency_pair=
BATCH_ORDERS_PATH: Final = "/spot/batch_orders"
OPEN_ORDERS_PATH: Final = "/spot/open_orders"
MY_TRADES_PATH: Final = "/spot/my_trades"
ACCOUNTS_PATH: Final = "/spot/accounts"
FEE_PATH: Final = "/spot/fee"
COUNTDOWN_CANCEL_ALL_PATH: Final = "/spot/countdown_cancel_all"
FUTURES_CONTRACTS_PATH: Final = "/futures/usdt/contracts"  # ?limit=&offset=
FUTURES_CONTRACTS_PAGE: Final = 100  # contracts per request (Gate's usual default limit)
FUTURES_CONTRACTS_MAX_PAGES: Final = 50  # 5,000 contracts; Gate lists some hundreds
FUTURES_ORDER_BOOK_PATH: Final = "/futures/usdt/order_book"  # ?contract=&limit=&with_id=true
FUTURES_ORDERS_PATH: Final = "/futures/usdt/orders"
FUTURES_ORDER_PATH: Final = "/futures/usdt/orders/{order_id}"
FUTURES_ACCOUNTS_PATH: Final = "/futures/usdt/accounts"
FUTURES_POSITIONS_PATH: Final = "/futures/usdt/positions"
FUTURES_ACCOUNT_BOOK_PATH: Final = "/futures/usdt/account_book"  # ?type=fund: funding settled on positions
ACCOUNT_BOOK_FUNDING: Final = "fund"
ACCOUNT_BOOK_PAGE: Final = 100  # entries per request (Gate's default limit)

KEY_HEADER: Final = "KEY"
TIMESTAMP_HEADER: Final = "Timestamp"  # UNIX seconds, within 60 s of server time
SIGN_HEADER: Final = "SIGN"
# An order Gate receives after this instant (ms, its clock) is refused: REST header, WS API req_header.
EXPIRY_HEADER: Final = "x-gate-exptime"
ORDER_BOOK_LIMIT: Final = 100  # REST snapshot depth; must equal the WS level used for sync
CLIENT_ORDER_ID_PREFIX: Final = "t-"
CLIENT_ORDER_ID_MAX_BYTES: Final = 28  # after the prefix

# currency_pairs "trade_status"
TRADE_STATUS_TRADABLE: Final = "tradable"  # others: untradable, buyable, sellable
TIME_IN_FORCE: Final = ("gtc", "ioc", "poc", "fok")  # poc = post-only; market orders take ioc/fok only

# --- WebSocket ------------------------------------------------------------------------
SPOT_WS_URL: Final = "wss://api.gateio.ws/ws/v4/"
FUTURES_WS_URL: Final = "wss://fx-ws.gateio.ws/v4/ws/usdt"
EVENT_SUBSCRIBE: Final = "subscribe"
EVENT_UNSUBSCRIBE: Final = "unsubscribe"
EVENT_UPDATE: Final = "update"
EVENT_API: Final = "api"
SPOT_PING_CHANNEL: Final = "spot.ping"
SPOT_PONG_CHANNEL: Final = "spot.pong"
SPOT_ORDER_BOOK_UPDATE_CHANNEL: Final = "spot.order_book_update"  # payload [pair, "20ms" | "100ms"]
SPOT_OBU_CHANNEL: Final = "spot.obu"  # payload ["ob.<PAIR>.<400|50>"]
SPOT_BOOK_TICKER_CHANNEL: Final = "spot.book_ticker"
SPOT_ORDERS_CHANNEL: Final = "spot.orders"
SPOT_USERTRADES_CHANNEL: Final = "spot.usertrades"
SPOT_BALANCES_CHANNEL: Final = "spot.balances"
SPOT_LOGIN_CHANNEL: Final = "spot.login"
SPOT_ORDER_PLACE_CHANNEL: Final = "spot.order_place"
SPOT_ORDER_CANCEL_CHANNEL: Final = "spot.order_cancel"
FUTURES_PING_CHANNEL: Final = "futures.ping"
FUTURES_PONG_CHANNEL: Final = "futures.pong"
FUTURES_ORDER_BOOK_UPDATE_CHANNEL: Final = "futures.order_book_update"  # payload [contract, interval, level]
FUTURES_OBU_CHANNEL: Final = "futures.obu"
FUTURES_BOOK_TICKER_CHANNEL: Final = "futures.book_ticker"
FUTURES_ORDERS_CHANNEL: Final = "futures.orders"
FUTURES_USERTRADES_CHANNEL: Final = "futures.usertrades"
FUTURES_BALANCES_CHANNEL: Final = "futures.balances"
# Futures private channels take the account's user id first: [user_id, contract | "!all"],
# futures.balances [user_id]; spot.balances takes no payload. The id is the ``user`` field
# of GET /futures/usdt/accounts.
ALL_CONTRACTS: Final = "!all"
FUTURES_LOGIN_CHANNEL: Final = "futures.login"
FUTURES_ORDER_PLACE_CHANNEL: Final = "futures.order_place"
# WS trading API (event "api"): login once per connection, then requests carry ``req_id``/``req_param``.
SPOT_ORDER_STATUS_CHANNEL: Final = "spot.order_status"
FUTURES_ORDER_CANCEL_CHANNEL: Final = "futures.order_cancel"
FUTURES_ORDER_STATUS_CHANNEL: Final = "futures.order_status"
WS_API_STATUS_OK: Final = "200"  # header.status of a successful reply
# order_book_update: the interval fixes the depth on spot (20ms <-> 20, 100ms <-> 100 levels); futures
# take the depth as a third payload item ("100" when omitted), 20ms only with "20".
SPOT_BOOK_INTERVALS: Final = {100: "100ms", 20: "20ms"}  # depth -> interval
FUTURES_BOOK_INTERVALS: Final = {100: "100ms", 50: "100ms", 20: "20ms"}  # depth (level) -> interval
FUTURES_DEFAULT_BOOK_LEVEL: Final = 100
SPOT_DEPTH_EVENT: Final = "depthUpdate"  # result.e of spot.order_book_update
WS_STATUS_SUCCESS: Final = "success"  # result.status of an accepted (un)subscribe
WS_STATUS_FAIL: Final = "fail"
# Error object {"code", "message"} of a refused request (spot and futures docs, "Error").
WS_ERROR_BAD_REQUEST: Final = 1
WS_ERROR_BAD_ARGUMENT: Final = 2
WS_ERROR_SERVER: Final = 3
WS_ERROR_AUTH: Final = 4
WS_ERROR_MESSAGES: Final = {
    WS_ERROR_BAD_REQUEST: "Invalid request body format",
    WS_ERROR_BAD_ARGUMENT: "Invalid argument provided",
    WS_ERROR_SERVER: "Server side error happened",
    WS_ERROR_AUTH: "Authentication fail",
}
WS_DUPLICATE_SUBSCRIPTION_MESSAGE: Final = "Alert sub {payload}"  # code 2, as answered on spot.obu
WS_AUTH_METHOD: Final = "api_key"
WS_PING_INTERVAL_S: Final = 10  # gatews pings every 5 s, [HB] every 10 s
OBU_DUPLICATE_SUBSCRIPTION_CODE: Final = 2

# --- rate limits (requests, window seconds) -------------------------------------------
PUBLIC_ENDPOINT_LIMIT: Final = (200, 10.0)  # per endpoint per IP
PRIVATE_ENDPOINT_LIMIT: Final = (200, 10.0)  # per endpoint, other private calls
SPOT_ORDER_PLACE_LIMIT: Final = (10, 1.0)  # place + amend, per UID and market
SPOT_ORDER_CANCEL_LIMIT: Final = (200, 1.0)
FUTURES_ORDER_PLACE_LIMIT: Final = (100, 1.0)  # place + amend
FUTURES_ORDER_CANCEL_LIMIT: Final = (200, 1.0)
# Rate-limit ids of the shared limiter: one budget per public endpoint and IP.
SPOT_ORDER_BOOK_RATE_LIMIT: Final = "gateio:public:" + ORDER_BOOK_PATH
FUTURES_ORDER_BOOK_RATE_LIMIT: Final = "gateio:public:" + FUTURES_ORDER_BOOK_PATH
SERVER_TIME_RATE_LIMIT: Final = "gateio:public:" + SERVER_TIME_PATH  # clock reads and pings
CURRENCY_PAIRS_RATE_LIMIT: Final = "gateio:public:" + CURRENCY_PAIRS_PATH
FUTURES_CONTRACTS_RATE_LIMIT: Final = "gateio:public:" + FUTURES_CONTRACTS_PATH  # each page; rules and funding
ORDER_BOOK_WEIGHT: Final = 1
RATE_LIMITS: Final = {
    SPOT_ORDER_BOOK_RATE_LIMIT: PUBLIC_ENDPOINT_LIMIT,
    FUTURES_ORDER_BOOK_RATE_LIMIT: PUBLIC_ENDPOINT_LIMIT,
    SERVER_TIME_RATE_LIMIT: PUBLIC_ENDPOINT_LIMIT,
    CURRENCY_PAIRS_RATE_LIMIT: PUBLIC_ENDPOINT_LIMIT,
    FUTURES_CONTRACTS_RATE_LIMIT: PUBLIC_ENDPOINT_LIMIT,
}
RATE_LIMIT_REMAIN_HEADER: Final = "X-Gate-RateLimit-Requests-Remain"
RATE_LIMIT_LIMIT_HEADER: Final = "X-Gate-RateLimit-Limit"
RATE_LIMIT_RESET_HEADER: Final = "X-Gate-RateLimit-Reset-Timestamp"

# --- fees (fractions) -----------------------------------------------------------------
# Spot pairs carry their own "fee" (a percent string); this is the documented default tier.
DEFAULT_SPOT_FEE: Final = Decimal("0.002")
DEFAULT_FUTURES_MAKER_FEE: Final = Decimal("0.00015")  # [HB]; contracts carry their own rates
DEFAULT_FUTURES_TAKER_FEE: Final = Decimal("0.0005")  # [HB]

# --- errors ---------------------------------------------------------------------------
# ``label`` values from the docs' "label list" (spot, futures, authentication, server);
# TOO_MANY_REQUESTS is not in that list but comes with HTTP 429 (ccxt maps it too), so the
# status table below covers it either way. TOO_FAST, REPEATED_CREATION, CLIENT_ID_NOT_FOUND and
# the websocket API's AUTHENTICATION_FAILED are mapped as ccxt maps them.
ERROR_LABELS: Final[ErrorCodeTable] = {
    "BALANCE_NOT_ENOUGH": ErrorCategory.INSUFFICIENT_BALANCE,
    "MARGIN_BALANCE_NOT_ENOUGH": ErrorCategory.INSUFFICIENT_BALANCE,
    "FUTURES_BALANCE_NOT_ENOUGH": ErrorCategory.INSUFFICIENT_BALANCE,
    "INSUFFICIENT_AVAILABLE": ErrorCategory.INSUFFICIENT_BALANCE,  # futures
    "QUANTITY_NOT_ENOUGH": ErrorCategory.INSUFFICIENT_BALANCE,
    "INVALID_PRECISION": ErrorCategory.PRECISION,
    "AMOUNT_TOO_LITTLE": ErrorCategory.MIN_NOTIONAL,
    "AMOUNT_TOO_MUCH": ErrorCategory.MIN_NOTIONAL,
    "SIZE_TOO_SMALL": ErrorCategory.MIN_NOTIONAL,  # futures, contracts
    "SIZE_TOO_LARGE": ErrorCategory.MIN_NOTIONAL,  # futures, contracts
    "ORDER_NOT_FOUND": ErrorCategory.UNKNOWN_ORDER,
    "ORDER_CLOSED": ErrorCategory.UNKNOWN_ORDER,
    "ORDER_CANCELLED": ErrorCategory.UNKNOWN_ORDER,
    "ORDER_FINISHED": ErrorCategory.UNKNOWN_ORDER,  # futures
    "ORDER_NOT_OWNED": ErrorCategory.UNKNOWN_ORDER,  # futures
    "CLIENT_ID_NOT_FOUND": ErrorCategory.UNKNOWN_ORDER,
    "POC_FILL_IMMEDIATELY": ErrorCategory.ORDER_REJECTED,
    "ORDER_POC_IMMEDIATE": ErrorCategory.ORDER_REJECTED,  # futures
    "FOK_NOT_FILL": ErrorCategory.ORDER_REJECTED,
    "ORDER_FOK": ErrorCategory.ORDER_REJECTED,  # futures
    "ORDER_BOOK_NOT_FOUND": ErrorCategory.ORDER_REJECTED,  # insufficient liquidity
    "PRICE_TOO_DEVIATED": ErrorCategory.ORDER_REJECTED,
    "TRADE_RESTRICTED": ErrorCategory.ORDER_REJECTED,
    "RISK_LIMIT_EXCEEDED": ErrorCategory.ORDER_REJECTED,
    "LIQUIDATE_IMMEDIATELY": ErrorCategory.ORDER_REJECTED,
    "CONTRACT_IN_DELISTING": ErrorCategory.ORDER_REJECTED,
    "REDUCE_EXCEEDED": ErrorCategory.ORDER_REJECTED,  # futures reduce-only: no position to reduce
    "INCREASE_POSITION": ErrorCategory.ORDER_REJECTED,  # futures reduce-only that would grow the position
    "TOO_MANY_ORDERS": ErrorCategory.ORDER_REJECTED,
    # Futures refusals of the order against the position or the contract (no order exists).
    "POSITION_EMPTY": ErrorCategory.ORDER_REJECTED,
    "POSITION_IN_LIQUIDATION": ErrorCategory.ORDER_REJECTED,
    "POSITION_IN_CLOSE": ErrorCategory.ORDER_REJECTED,
    "POSITION_CROSS_MARGIN": ErrorCategory.ORDER_REJECTED,
    "PRICE_OVER_LIQUIDATION": ErrorCategory.ORDER_REJECTED,
    "PRICE_OVER_BANKRUPT": ErrorCategory.ORDER_REJECTED,
    "LEVERAGE_TOO_HIGH": ErrorCategory.ORDER_REJECTED,
    "LEVERAGE_TOO_LOW": ErrorCategory.ORDER_REJECTED,
    "CONTRACT_NO_COUNTER": ErrorCategory.ORDER_REJECTED,
    # A client order id in use: an order sent with it exists, so this one's outcome is that one's.
    "ORDER_EXISTS": ErrorCategory.OUTCOME_UNKNOWN,
    "REPEATED_CREATION": ErrorCategory.OUTCOME_UNKNOWN,
    "INVALID_PARAM_VALUE": ErrorCategory.INVALID_REQUEST,
    "INVALID_PROTOCOL": ErrorCategory.INVALID_REQUEST,
    "INVALID_ARGUMENT": ErrorCategory.INVALID_REQUEST,
    "INVALID_REQUEST_BODY": ErrorCategory.INVALID_REQUEST,
    "MISSING_REQUIRED_PARAM": ErrorCategory.INVALID_REQUEST,
    "BAD_REQUEST": ErrorCategory.INVALID_REQUEST,
    "INVALID_CONTENT_TYPE": ErrorCategory.INVALID_REQUEST,
    "NOT_ACCEPTABLE": ErrorCategory.INVALID_REQUEST,
    "METHOD_NOT_ALLOWED": ErrorCategory.INVALID_REQUEST,
    "NOT_FOUND": ErrorCategory.INVALID_REQUEST,
    "INVALID_CURRENCY": ErrorCategory.INVALID_REQUEST,
    "INVALID_CURRENCY_PAIR": ErrorCategory.INVALID_REQUEST,
    "CONTRACT_NOT_FOUND": ErrorCategory.INVALID_REQUEST,
    "INVALID_CLIENT_ORDER_ID": ErrorCategory.INVALID_REQUEST,
    "TOO_MANY_REQUESTS": ErrorCategory.RATE_LIMITED,
    "TOO_FAST": ErrorCategory.RATE_LIMITED,
    "INVALID_CREDENTIALS": ErrorCategory.AUTH_FAILED,
    "AUTHENTICATION_FAILED": ErrorCategory.AUTH_FAILED,  # websocket API: not logged in
    "INVALID_KEY": ErrorCategory.AUTH_FAILED,
    "IP_FORBIDDEN": ErrorCategory.AUTH_FAILED,
    "READ_ONLY": ErrorCategory.AUTH_FAILED,
    "INVALID_SIGNATURE": ErrorCategory.AUTH_FAILED,
    "MISSING_REQUIRED_HEADER": ErrorCategory.AUTH_FAILED,
    "ACCOUNT_LOCKED": ErrorCategory.AUTH_FAILED,
    "FORBIDDEN": ErrorCategory.AUTH_FAILED,
    "USER_NOT_FOUND": ErrorCategory.AUTH_FAILED,  # no futures account yet
    "REQUEST_EXPIRED": ErrorCategory.TIMESTAMP,
    # Busy or failing, under whatever HTTP status (the websocket API's header may carry none): an
    # order it answers may still have been placed, so it is queried, never taken as refused.
    "TOO_BUSY": ErrorCategory.OUTCOME_UNKNOWN,
    "INTERNAL": ErrorCategory.OUTCOME_UNKNOWN,
    "SERVER_ERROR": ErrorCategory.OUTCOME_UNKNOWN,
}
HTTP_STATUSES: Final = {
    429: ErrorCategory.RATE_LIMITED,
    401: ErrorCategory.AUTH_FAILED,
    403: ErrorCategory.AUTH_FAILED,
}  # any other 5xx: OUTCOME_UNKNOWN (an order may have been placed)

# --- trading (client side and simulator) ----------------------------------------------
FUTURES_CONTRACT_PATH: Final = "/futures/usdt/contracts/{contract}"
CURRENCY_PAIR_PATH: Final = "/spot/currency_pairs/{currency_pair}"
SPOT_ACCOUNT: Final = "spot"  # "account" of a spot order
SPOT_ORDER_STATUS_OPEN: Final = "open"  # spot "status": open | closed | cancelled
SPOT_ORDER_STATUS_FINISHED: Final = "finished"  # the list's filter of closed and cancelled orders
FINISHED_ORDERS_LIMIT: Final = 100  # finished spot orders one list asks for (newest first)
FUTURES_ORDER_STATUS_OPEN: Final = "open"  # futures "status": open | finished
FUTURES_MARKET_PRICE: Final = "0"  # futures market order: price "0" with tif ioc (or fok)
# ``text``: "t-" + at most 28 bytes of these characters.
CLIENT_ORDER_ID_ALPHABET: Final = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-.")
REQUEST_WINDOW_S: Final = 60  # Timestamp must be within this many seconds of the server clock
# How long after an order ends Gate.io still finds it by its custom id (``text``); only its order
# id finds it after that. For spot, Gate's SDK docs say an hour and its REST reference only while
# the order is open: the connector also looks among the pair's orders finished in that hour.
SPOT_CLIENT_ID_LOOKUP_S: Final = 3600
FUTURES_CLIENT_ID_LOOKUP_S: Final = 60

# Private budgets (ids of the shared limiter -> (requests, window s)). Spot placement is kept
# per currency pair (``PER_MARKET_RATE_LIMITS``), as Gate counts it [GT rate_limits.md].
SPOT_ORDER_PLACE_RATE_LIMIT: Final = "gateio:spot:order_place"
SPOT_ORDER_CANCEL_RATE_LIMIT: Final = "gateio:spot:order_cancel"
SPOT_ORDER_QUERY_RATE_LIMIT: Final = "gateio:private:" + ORDER_PATH
SPOT_ORDERS_LIST_RATE_LIMIT: Final = "gateio:private:" + ORDERS_PATH
SPOT_OPEN_ORDERS_RATE_LIMIT: Final = "gateio:private:" + OPEN_ORDERS_PATH
SPOT_ACCOUNTS_RATE_LIMIT: Final = "gateio:private:" + ACCOUNTS_PATH
FUTURES_ORDER_PLACE_RATE_LIMIT: Final = "gateio:futures:order_place"
FUTURES_ORDER_CANCEL_RATE_LIMIT: Final = "gateio:futures:order_cancel"
FUTURES_ORDER_QUERY_RATE_LIMIT: Final = "gateio:private:" + FUTURES_ORDER_PATH
FUTURES_ORDERS_LIST_RATE_LIMIT: Final = "gateio:private:" + FUTURES_ORDERS_PATH
FUTURES_ACCOUNTS_RATE_LIMIT: Final = "gateio:private:" + FUTURES_ACCOUNTS_PATH
FUTURES_POSITIONS_RATE_LIMIT: Final = "gateio:private:" + FUTURES_POSITIONS_PATH
FUTURES_ACCOUNT_BOOK_RATE_LIMIT: Final = "gateio:private:" + FUTURES_ACCOUNT_BOOK_PATH
SPOT_FEE_RATE_LIMIT: Final = "gateio:private:" + FEE_PATH
# Over the websocket API Gate counts futures placements, amends and cancels together, 100 in any
# second [GT rate_limits.md "WebSocket"]: a futures cancel sent there spends the placement budget.
FUTURES_WS_ORDER_CANCEL_RATE_LIMIT: Final = FUTURES_ORDER_PLACE_RATE_LIMIT
PER_MARKET_RATE_LIMITS: Final = frozenset({SPOT_ORDER_PLACE_RATE_LIMIT})
TRADING_RATE_LIMITS: Final = {
    SPOT_ORDER_PLACE_RATE_LIMIT: SPOT_ORDER_PLACE_LIMIT,
    SPOT_ORDER_CANCEL_RATE_LIMIT: SPOT_ORDER_CANCEL_LIMIT,
    SPOT_ORDER_QUERY_RATE_LIMIT: PRIVATE_ENDPOINT_LIMIT,
    SPOT_ORDERS_LIST_RATE_LIMIT: PRIVATE_ENDPOINT_LIMIT,
    SPOT_OPEN_ORDERS_RATE_LIMIT: PRIVATE_ENDPOINT_LIMIT,
    SPOT_ACCOUNTS_RATE_LIMIT: PRIVATE_ENDPOINT_LIMIT,
    FUTURES_ORDER_PLACE_RATE_LIMIT: FUTURES_ORDER_PLACE_LIMIT,
    FUTURES_ORDER_CANCEL_RATE_LIMIT: FUTURES_ORDER_CANCEL_LIMIT,
    FUTURES_ORDER_QUERY_RATE_LIMIT: PRIVATE_ENDPOINT_LIMIT,
    FUTURES_ORDERS_LIST_RATE_LIMIT: PRIVATE_ENDPOINT_LIMIT,
    FUTURES_ACCOUNTS_RATE_LIMIT: PRIVATE_ENDPOINT_LIMIT,
    FUTURES_POSITIONS_RATE_LIMIT: PRIVATE_ENDPOINT_LIMIT,
    FUTURES_ACCOUNT_BOOK_RATE_LIMIT: PRIVATE_ENDPOINT_LIMIT,
    SPOT_FEE_RATE_LIMIT: PRIVATE_ENDPOINT_LIMIT,
}

# The label (HTTP status, message) a venue answers for each kind of refusal: the reverse of
# ERROR_LABELS, as the simulator speaks it. Spot and futures spell some labels differently.
SPOT_REJECT_LABELS: Final = {
    ErrorCategory.INSUFFICIENT_BALANCE: ("BALANCE_NOT_ENOUGH", 400, "Not enough balance"),
    ErrorCategory.PRECISION: ("INVALID_PRECISION", 400, "Invalid precision"),
    ErrorCategory.MIN_NOTIONAL: ("AMOUNT_TOO_LITTLE", 400, "Order amount too little"),
    ErrorCategory.UNKNOWN_ORDER: ("ORDER_NOT_FOUND", 404, "Order not found"),
    ErrorCategory.ORDER_REJECTED: ("TRADE_RESTRICTED", 400, "Trading restricted"),
    ErrorCategory.INVALID_REQUEST: ("INVALID_PARAM_VALUE", 400, "Invalid parameter value"),
    ErrorCategory.RATE_LIMITED: ("TOO_MANY_REQUESTS", 429, "Request Rate limit Exceeded"),
    ErrorCategory.AUTH_FAILED: ("FORBIDDEN", 401, "Forbidden"),
    ErrorCategory.TIMESTAMP: ("REQUEST_EXPIRED", 401, "Request Timestamp Far From Current Time"),
    ErrorCategory.MAINTENANCE: ("TOO_BUSY", 503, "Server is too busy"),
    ErrorCategory.OUTCOME_UNKNOWN: ("SERVER_ERROR", 500, "Internal server error"),
}
FUTURES_REJECT_LABELS: Final = {
    **SPOT_REJECT_LABELS,
    ErrorCategory.INSUFFICIENT_BALANCE: ("INSUFFICIENT_AVAILABLE", 400, "Insufficient available balance"),
    ErrorCategory.MIN_NOTIONAL: ("SIZE_TOO_SMALL", 400, "Order size too small"),
    ErrorCategory.ORDER_REJECTED: ("RISK_LIMIT_EXCEEDED", 400, "Risk limit exceeded"),
}
# Authentication failures, all HTTP 401 at Gate.
AUTH_MISSING_HEADER: Final = ("MISSING_REQUIRED_HEADER", 401, "Missing required authentication header")
AUTH_INVALID_KEY: Final = ("INVALID_KEY", 401, "Invalid key provided")
AUTH_INVALID_SIGNATURE: Final = ("INVALID_SIGNATURE", 401, "Signature mismatch")
AUTH_REQUEST_EXPIRED: Final = ("REQUEST_EXPIRED", 401, "Request timestamp far from current time")
ORDER_EXPIRED: Final = ("REQUEST_EXPIRED", 401, "Request received after its x-gate-exptime")
