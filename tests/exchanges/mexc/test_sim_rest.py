"""arb.exchanges.mexc.sim REST side: every request trading.py builds is served and parsed back.

Each test builds a ``RestRequest`` with ``MexcSpotTrading``, hands it to the route handler
as a ``SimRequest``, and maps the ``SimResponse`` the way ``RestClient`` does (2xx body, or
``venue_error`` over the venue's tables). Shapes are compared with the documented and
recorded replies (tests/shapes.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from arb.errors import ExchangeError, OrderRejectedError, RateLimitError
from arb.exchanges.errors import ErrorCategory, venue_error
from arb.exchanges.mexc import constants
from arb.exchanges.mexc.auth import MexcSigner
from arb.exchanges.mexc.instruments import parse_contract_detail, parse_default_symbols, parse_exchange_info
from arb.exchanges.mexc.schemas import DepthSnapshot
from arb.exchanges.mexc.sim import rest_routes
from arb.exchanges.mexc.trading import MexcSpotTrading, futures_rest_venue, spot_rest_venue
from arb.exchanges.models import OrderRequest, OrderState, OrderStatus, OrderType, TimeInForce
from arb.exchanges.rest import RestRequest, RestVenue, parse_error_body, parse_retry_after
from arb.instruments import Instrument, InstrumentCatalog
from arb.secrets import ApiCredentials, Secret
from arb.sim.faults import FaultPlan, OrderFaultKind, VenueFaults
from arb.sim.http import SimContext, SimRequest, SimResponse
from arb.sim.matching import SimExchange
from arb.types import ExchangeName, OrderSide
from arb_core.book import ASK, BID
from shapes import assert_same_shape

KEY, SECRET = "mx0simkey", "simsecret"
WALL_MS = 1_700_000_000_000
SPOT = Instrument(
    exchange=ExchangeName.MEXC, symbol="BTC/USDT", venue_symbol="BTCUSDT", base="BTC", quote="USDT",
    tick_size=Decimal("0.01"), lot_size=Decimal("0.0001"), min_size=Decimal("0.0001"), min_notional=Decimal(1),
    taker_fee=Decimal("0.001"), maker_fee=Decimal(0), price_decimals=2, size_decimals=4, fees_in_quote=True,
)
FUTURES = Instrument(
    exchange=ExchangeName.MEXC_FUTURES, symbol="BTC/USDT:USDT", venue_symbol="BTC_USDT", base="BTC",
    quote="USDT", tick_size=Decimal("0.5"), lot_size=Decimal(1), min_size=Decimal(1), min_notional=Decimal(0),
    contract_size=Decimal("0.0001"), taker_fee=Decimal("0.0002"), maker_fee=Decimal(0),
    price_decimals=1, size_decimals=0,
)
ROUTES = {(route.method, route.path): route.handler for route in rest_routes()}


class Venue:
    """One simulated MEXC with a funded user, a book, a fault plan and a client for that user."""

    def __init__(self) -> None:
        self.now_ns = 10**12
        self.wall_ms = WALL_MS
        self.spot = SimExchange(ExchangeName.MEXC, [SPOT])
        self.futures = SimExchange(ExchangeName.MEXC_FUTURES, [FUTURES])
        self.faults = FaultPlan()
        self.ctx = SimContext(
            venue="mexc",
            exchanges={ExchangeName.MEXC: self.spot, ExchangeName.MEXC_FUTURES: self.futures},
            faults=self.faults,
            credentials={KEY: ApiCredentials(Secret(KEY), Secret(SECRET))},
            now_ns=lambda: self.now_ns,
            wall_ms=lambda: self.wall_ms,
        )
        self.spot.deposit(KEY, "USDT", 100_000)
        self.spot.deposit(KEY, "BTC", 10)
        # asks 100.00 x 0.5, 101.00 x 2; bids 99.00 x 1, 98.00 x 3
        self.spot.engine("BTC/USDT").apply_market_levels(
            [(ASK, 10000, 5000), (ASK, 10100, 20000), (BID, 9900, 10000), (BID, 9800, 30000)], self.now_ns
        )
        self.futures.engine("BTC/USDT:USDT").apply_market_levels([(ASK, 60001, 7), (BID, 60000, 3)], self.now_ns)
        self.trading = self.client(SECRET)

    def client(self, secret: str, key: str = KEY, skew_ms: int = 0, recv_window_ms: int = 5000) -> MexcSpotTrading:
        signer = MexcSigner(ApiCredentials(Secret(key), Secret(secret)))
        catalog = InstrumentCatalog(ExchangeName.MEXC, [SPOT])
        return MexcSpotTrading(signer, catalog, recv_window_ms=recv_window_ms, clock_ms=lambda: self.wall_ms + skew_ms)

    def send(self, request: RestRequest) -> SimResponse:
        """The handler's answer to ``request`` as the simulator's server would pass it."""
        handler, params = route(request.method, request.path)
        sim_request = SimRequest(
            method=request.method, path=request.path, query=request.query, body=request.body,
            headers={k.lower(): v for k, v in request.headers.items()}, path_params=params,
        )
        self.now_ns += 1_000_000
        self.wall_ms += 1
        return handler(sim_request, self.ctx)

    def fetch(self, request: RestRequest, venue: RestVenue | None = None) -> bytes:
        """The 2xx body, or the error ``RestClient`` would raise for this answer."""
        response = self.send(request)
        assert not response.drop_connection
        if 200 <= response.status < 300:
            return response.body
        raise failure(response, venue or spot_rest_venue())

    def place(self, order: OrderRequest) -> OrderState:
        return self.trading.parse_new_order(self.fetch(self.trading.place_order_request(order)), order.client_order_id)

    def query(self, **ref: str) -> OrderState:
        return self.trading.parse_order(self.fetch(self.trading.query_order_request("BTC/USDT", **ref)))


def route(method: str, path: str) -> tuple[Any, dict[str, str]]:
    for (m, template), handler in ROUTES.items():
        parts, wanted = path.split("/"), template.split("/")
        if m == method and len(parts) == len(wanted):
            params = {w[1:-1]: p for p, w in zip(parts, wanted) if w.startswith("{")}
            if all(w.startswith("{") or w == p for p, w in zip(parts, wanted)):
                return handler, params
    raise AssertionError(f"no route for {method} {path}")


def failure(response: SimResponse, venue: RestVenue) -> ExchangeError:
    parsed = parse_error_body(response.body)
    code, text = parsed if parsed is not None else (None, "")
    headers = dict(response.headers)
    return venue_error(
        venue.name, text, codes=venue.error_codes, http_statuses=venue.http_statuses, code=code,
        http_status=response.status, retry_after_s=parse_retry_after(headers.get("Retry-After")),
    )


def limit(quantity: str, price: str, *, side: OrderSide = OrderSide.BUY, tif: TimeInForce = TimeInForce.GTC,
          cid: str = "arb-1") -> OrderRequest:
    return OrderRequest(symbol="BTC/USDT", side=side, type=OrderType.LIMIT, quantity=Decimal(quantity),
                        price=Decimal(price), time_in_force=tif, client_order_id=cid)


def market(quantity: str, side: OrderSide, cid: str = "mkt-1") -> OrderRequest:
    return OrderRequest(symbol="BTC/USDT", side=side, type=OrderType.MARKET, quantity=Decimal(quantity),
                        time_in_force=TimeInForce.IOC, client_order_id=cid)


def signed(venue: Venue, method: str, path: str, params: list[tuple[str, str | int]]) -> RestRequest:
    """A hand-made signed request (for inputs the client refuses to build)."""
    signer = MexcSigner(ApiCredentials(Secret(KEY), Secret(SECRET)))
    query = signer.signed_query(params, timestamp_ms=venue.wall_ms)
    return RestRequest(method=method, path=path, query=query, headers=signer.headers())


@pytest.fixture
def venue() -> Iterator[Venue]:
    yield Venue()


@pytest.fixture(scope="module")
def examples(shared_data: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("mexc_docs_examples.json", "ccxt_static_fixtures_extract.json"):
        out.update(json.loads((shared_data / "examples" / name).read_bytes()))
    return out


# --- authentication: refused exactly as MEXC refuses ------------------------------------


def _refused(venue: Venue, request: RestRequest) -> ExchangeError:
    with pytest.raises(ExchangeError) as info:
        venue.fetch(request)
    return info.value


def test_wrong_signature_unknown_key_and_missing_key(venue: Venue) -> None:
    order = limit("0.1", "90")
    response = venue.send(venue.client("not-the-secret").place_order_request(order))
    assert response.status == 400
    assert json.loads(response.body) == {"code": 700002, "msg": "Signature for this request is not valid."}
    error = _refused(venue, venue.client("not-the-secret").place_order_request(order))
    assert (error.code, error.category) == (700002, ErrorCategory.AUTH_FAILED)
    error = _refused(venue, venue.client(SECRET, key="mx0unknown").account_request())
    assert (error.code, error.category) == (10072, ErrorCategory.AUTH_FAILED)
    bare = venue.trading.account_request()
    error = _refused(venue, RestRequest(method="GET", path=bare.path, query=bare.query))
    assert (error.code, error.category) == (400, ErrorCategory.INVALID_REQUEST)  # MEXC uses 400 for bad parameters too
    tampered = venue.trading.place_order_request(order)
    tampered = RestRequest(method="POST", path=tampered.path, query=tampered.query.replace("quantity=0.1", "quantity=1"),
                           headers=tampered.headers)
    assert _refused(venue, tampered).code == 700002
    assert venue.spot.open_orders(KEY) == []  # nothing refused was placed


def test_timestamps_outside_the_window_are_refused(venue: Venue) -> None:
    late = _refused(venue, venue.client(SECRET, skew_ms=-10_000).account_request())
    assert (late.code, late.category) == (700003, ErrorCategory.TIMESTAMP)
    early = _refused(venue, venue.client(SECRET, skew_ms=2_000).account_request())
    assert early.code == 700003
    # the same lag passes with a wider window; a window above 60 s is refused
    assert venue.client(SECRET, skew_ms=-10_000, recv_window_ms=60_000).parse_balances(
        venue.fetch(venue.client(SECRET, skew_ms=-10_000, recv_window_ms=60_000).account_request())
    )["USDT"].free == 100_000
    signer = MexcSigner(ApiCredentials(Secret(KEY), Secret(SECRET)))
    query = f"recvWindow=60001&timestamp={venue.wall_ms}"  # MexcSigner itself refuses such a window
    too_wide = RestRequest(method="GET", path=constants.ACCOUNT_PATH, headers=signer.headers(),
                           query=f"{query}&signature={signer.sign(query)}")
    assert _refused(venue, too_wide).code == 700005


def test_signature_over_query_and_body_concatenated(venue: Venue) -> None:
    """totalParams = query + body with nothing between them (docs example 3)."""
    signer = MexcSigner(ApiCredentials(Secret(KEY), Secret(SECRET)))
    query = "symbol=BTCUSDT&side=BUY&type=LIMIT"
    body = f"quantity=0.1&price=90.00&recvWindow=5000&timestamp={venue.wall_ms}"
    signature = signer.sign(query + body)
    request = RestRequest(method="POST", path=constants.ORDER_PATH, query=f"{query}&signature={signature}",
                          body=body.encode(), headers=signer.headers())
    state = venue.trading.parse_new_order(venue.fetch(request), None)
    assert (state.quantity, state.price, state.status) == (Decimal("0.1"), Decimal(90), OrderStatus.NEW)


# --- bad order parameters -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "code", "category"),
    [
        ([("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "LIMIT"), ("quantity", "0.00001"), ("price", "90")],
         10096, ErrorCategory.PRECISION),
        ([("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "LIMIT"), ("quantity", "0.1"), ("price", "90.001")],
         10096, ErrorCategory.PRECISION),
        ([("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "LIMIT"), ("quantity", "0.0001"), ("price", "90")],
         30002, ErrorCategory.MIN_NOTIONAL),
        ([("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "LIMIT"), ("quantity", "5000"), ("price", "90")],
         30004, ErrorCategory.INSUFFICIENT_BALANCE),
        ([("symbol", "DOGEUSDT"), ("side", "BUY"), ("type", "LIMIT"), ("quantity", "1"), ("price", "1")],
         30014, ErrorCategory.INVALID_REQUEST),
        ([("symbol", "BTCUSDT"), ("side", "HOLD"), ("type", "LIMIT"), ("quantity", "1"), ("price", "1")],
         33333, ErrorCategory.INVALID_REQUEST),
        ([("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "LIMIT"), ("quantity", "1")],
         44444, ErrorCategory.INVALID_REQUEST),
        ([("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "MARKET")], 44444, ErrorCategory.INVALID_REQUEST),
        ([("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "MARKET"), ("quoteOrderQty", "abc")],
         33333, ErrorCategory.INVALID_REQUEST),
        ([("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "LIMIT"), ("quantity", "1"), ("price", "1"),
          ("newClientOrderId", "bad id!")], 700008, ErrorCategory.INVALID_REQUEST),
    ],
)
def test_order_refusals_use_mexc_codes(
    venue: Venue, params: list[tuple[str, str | int]], code: int, category: ErrorCategory
) -> None:
    error = _refused(venue, signed(venue, "POST", constants.ORDER_PATH, params))
    assert (error.code, error.category) == (code, category)


def test_a_pair_closed_to_api_orders_is_left_out_of_default_symbols_and_refused_with_10007(venue: Venue) -> None:
    """Listed in exchangeInfo either way; defaultSymbols names only the pairs open to API orders,
    and an order on another is refused as MEXC does (code 10007), placing nothing."""
    listed = venue.fetch(RestRequest(method="GET", path=constants.DEFAULT_SYMBOLS_PATH))
    assert parse_default_symbols(listed) == {"BTCUSDT"}
    venue.faults.configure("mexc", VenueFaults(api_refused_symbols=frozenset({"BTCUSDT"})))
    closed = venue.fetch(RestRequest(method="GET", path=constants.DEFAULT_SYMBOLS_PATH))
    assert msgspec.json.decode(closed) == {"code": 200, "data": [], "msg": None}
    assert "BTC/USDT" in parse_exchange_info(venue.fetch(RestRequest(method="GET", path=constants.EXCHANGE_INFO_PATH)))
    error = _refused(venue, venue.trading.place_order_request(limit("0.1", "101", tif=TimeInForce.IOC)))
    assert (error.code, error.category, str(error).count("symbol not support api")) == (
        10007, ErrorCategory.INVALID_REQUEST, 1
    )
    assert venue.spot.engine("BTC/USDT").order_by_client_id(KEY, "arb-1") is None


def test_unknown_orders(venue: Venue) -> None:
    error = _refused(venue, venue.trading.query_order_request("BTC/USDT", order_id="999"))
    assert (error.code, error.category, type(error)) == (-2013, ErrorCategory.UNKNOWN_ORDER, OrderRejectedError)
    error = _refused(venue, venue.trading.cancel_order_request("BTC/USDT", client_order_id="nope"))
    assert (error.code, error.category) == (-2011, ErrorCategory.UNKNOWN_ORDER)
    error = _refused(venue, signed(venue, "GET", constants.ORDER_PATH, [("symbol", "BTCUSDT")]))
    assert error.code == 700004


# --- round trips ---------------------------------------------------------------------------


def test_limit_rests_then_cancel_by_client_id(venue: Venue) -> None:
    placed = venue.place(limit("0.5", "95.50", cid="rest-1"))
    assert (placed.status, placed.quantity, placed.price, placed.client_order_id) == (
        OrderStatus.NEW, Decimal("0.5"), Decimal("95.5"), "rest-1")
    by_id = venue.query(order_id=placed.order_id)
    assert (by_id.status, by_id.filled_quantity, by_id.average_price) == (OrderStatus.NEW, 0, None)
    assert by_id.client_order_id == "rest-1"
    listed = venue.trading.parse_open_orders(venue.fetch(venue.trading.open_orders_request("BTC/USDT")))
    assert [o.order_id for o in listed] == [placed.order_id]
    balances = venue.trading.parse_balances(venue.fetch(venue.trading.account_request()))
    # 0.5 at 95.50 and the fee it may pay in USDT, at the larger (taker) rate of 0.1 %.
    assert balances["USDT"].locked == Decimal("47.75") + Decimal("0.04775") and balances["USDT"].total == 100_000
    canceled = venue.trading.parse_order(
        venue.fetch(venue.trading.cancel_order_request("BTC/USDT", client_order_id="rest-1"))
    )
    assert (canceled.status, canceled.order_id, canceled.client_order_id) == (OrderStatus.CANCELED, placed.order_id, "rest-1")
    assert venue.query(client_order_id="rest-1").status is OrderStatus.CANCELED
    assert venue.trading.parse_open_orders(venue.fetch(venue.trading.open_orders_request("BTC/USDT"))) == []


def test_cancel_by_order_id(venue: Venue) -> None:
    placed = venue.place(limit("0.2", "101.50", side=OrderSide.SELL, cid="s-1"))
    canceled = venue.trading.parse_order(
        venue.fetch(venue.trading.cancel_order_request("BTC/USDT", order_id=placed.order_id))
    )
    assert canceled.status is OrderStatus.CANCELED and canceled.side is OrderSide.SELL


def test_ioc_fills_across_levels_with_exact_average(venue: Venue) -> None:
    placed = venue.place(limit("1", "101", tif=TimeInForce.IOC, cid="ioc-1"))
    state = venue.query(order_id=placed.order_id)
    assert (state.status, state.filled_quantity) == (OrderStatus.FILLED, 1)
    assert state.average_price == Decimal("100.5")  # (0.5 x 100 + 0.5 x 101) / 1


def test_ioc_remainder_is_reported_partially_canceled(venue: Venue) -> None:
    placed = venue.place(limit("1", "100", tif=TimeInForce.IOC, cid="ioc-2"))
    response = json.loads(venue.fetch(venue.trading.query_order_request("BTC/USDT", order_id=placed.order_id)))
    assert (response["status"], response["type"]) == ("PARTIALLY_CANCELED", "IMMEDIATE_OR_CANCEL")
    state = venue.query(order_id=placed.order_id)
    assert (state.status, state.filled_quantity, state.average_price) == (OrderStatus.CANCELED, Decimal("0.5"), 100)


def test_fok_that_cannot_fill_is_canceled_untouched(venue: Venue) -> None:
    placed = venue.place(limit("3", "101", tif=TimeInForce.FOK, cid="fok-1"))
    state = venue.query(client_order_id="fok-1")
    assert (state.order_id, state.status, state.filled_quantity) == (placed.order_id, OrderStatus.CANCELED, 0)
    done = venue.place(limit("2", "101", tif=TimeInForce.FOK, cid="fok-2"))
    assert venue.query(order_id=done.order_id).status is OrderStatus.FILLED


def test_market_by_quantity_and_by_quote_amount(venue: Venue) -> None:
    sold = venue.place(market("1.5", OrderSide.SELL))
    assert sold.type is OrderType.MARKET and sold.price is None
    state = venue.query(order_id=sold.order_id)
    assert (state.status, state.filled_quantity, state.average_price) == (
        OrderStatus.FILLED, Decimal("1.5"), Decimal("98.666666666666666666666666666666666666666666666667"))  # 148 / 1.5, 50 digits
    request = venue.trading.market_buy_by_quote_request("BTC/USDT", Decimal("100.5"), "quote-1")
    bought = venue.trading.parse_new_order(venue.fetch(request), "quote-1")
    assert (bought.quantity, bought.type) == (1, OrderType.MARKET)  # 0.5 at 100 + 0.5 at 101
    state = venue.query(client_order_id="quote-1")
    assert (state.status, state.filled_quantity, state.average_price) == (OrderStatus.FILLED, 1, Decimal("100.5"))
    reply = json.loads(venue.fetch(venue.trading.query_order_request("BTC/USDT", client_order_id="quote-1")))
    assert reply["origQuoteOrderQty"] == "100.5" and reply["type"] == "MARKET"


# --- faults ------------------------------------------------------------------------------------


def test_reject_fault_answers_the_category(venue: Venue) -> None:
    venue.faults.fail_next_orders("mexc", OrderFaultKind.REJECT, category=ErrorCategory.INSUFFICIENT_BALANCE)
    error = _refused(venue, venue.trading.place_order_request(limit("0.1", "90")))
    assert (type(error), error.code, error.category) == (OrderRejectedError, 30004, ErrorCategory.INSUFFICIENT_BALANCE)
    assert venue.spot.open_orders(KEY) == [] and venue.faults.count("mexc", OrderFaultKind.REJECT) == 1


def test_rate_limit_fault_is_429_with_retry_after(venue: Venue) -> None:
    venue.faults.fail_next_orders("mexc", OrderFaultKind.RATE_LIMIT, retry_after_ms=1500)
    response = venue.send(venue.trading.place_order_request(limit("0.1", "90")))
    assert response.status == 429 and ("Retry-After", "1.5") in response.headers
    venue.faults.fail_next_orders("mexc", OrderFaultKind.RATE_LIMIT, retry_after_ms=1500)
    error = _refused(venue, venue.trading.place_order_request(limit("0.1", "90", cid="arb-2")))
    assert isinstance(error, RateLimitError) and error.retry_after_s == 1.5
    assert error.category == ErrorCategory.RATE_LIMITED and venue.spot.open_orders(KEY) == []


def test_a_burst_past_an_order_endpoints_limit_is_429_with_retry_after_in_whole_seconds(venue: Venue) -> None:
    """MEXC's docs give each endpoint limited by account 500 requests in 10 s: the 501st order in
    half a second is refused with its code 429 and a Retry-After of the seconds until the window
    takes one; Query Order, an endpoint of its own, is still answered."""
    for n in range(500):
        response = venue.send(venue.trading.place_order_request(limit("0.1", "90", tif=TimeInForce.IOC, cid=f"b{n}")))
        assert response.status == 200, response.body
    refused = venue.send(venue.trading.place_order_request(limit("0.1", "90", tif=TimeInForce.IOC, cid="b500")))
    assert (refused.status, json.loads(refused.body)) == (429, {"code": 429, "msg": "Too Many Requests"})
    assert ("Retry-After", "10") in refused.headers  # the first order leaves the window 9.5 s from now
    error = failure(refused, spot_rest_venue())
    assert isinstance(error, RateLimitError) and error.retry_after_s == 10
    assert venue.query(client_order_id="b499").client_order_id == "b499"
    venue.now_ns += 9_500_000_000
    assert venue.send(venue.trading.place_order_request(limit("0.1", "90", tif=TimeInForce.IOC, cid="b501"))).status == 200


def test_partial_fill_fault_fills_a_share(venue: Venue) -> None:
    venue.faults.fail_next_orders("mexc", OrderFaultKind.PARTIAL_FILL, fill_ppm=400_000)
    placed = venue.place(limit("2", "101", tif=TimeInForce.IOC, cid="pf-1"))
    state = venue.query(order_id=placed.order_id)
    assert (state.status, state.filled_quantity) == (OrderStatus.CANCELED, Decimal("0.8"))
    assert state.average_price == Decimal("100.375")  # 0.5 x 100 + 0.3 x 101, over 0.8
    venue.faults.fail_next_orders("mexc", OrderFaultKind.PARTIAL_FILL, fill_ppm=500_000)
    request = venue.trading.market_buy_by_quote_request("BTC/USDT", Decimal(100), "pf-q")
    venue.fetch(request)
    assert venue.query(client_order_id="pf-q").filled_quantity == Decimal("0.4950")


def test_timeout_with_order_placed_then_found_by_client_id(venue: Venue) -> None:
    venue.faults.fail_next_orders("mexc", OrderFaultKind.TIMEOUT_PLACED)
    response = venue.send(venue.trading.place_order_request(limit("0.3", "95", cid="lost-1")))
    assert response.drop_connection
    state = venue.query(client_order_id="lost-1")
    assert (state.status, state.quantity, state.client_order_id) == (OrderStatus.NEW, Decimal("0.3"), "lost-1")


# --- public endpoints and shapes --------------------------------------------------------------


def _get(venue: Venue, path: str, query: str = "") -> Any:
    response = venue.send(RestRequest(method="GET", path=path, query=query))
    assert response.status == 200, response.body
    return json.loads(response.body)


def test_public_spot_endpoints(venue: Venue, examples: dict[str, Any]) -> None:
    assert _get(venue, constants.PING_PATH) == {}
    assert _get(venue, constants.TIME_PATH)["serverTime"] == venue.wall_ms
    depth = _get(venue, constants.DEPTH_PATH, "symbol=BTCUSDT&limit=1")
    assert_same_shape(depth, examples["mexc_spot_depth_response"])
    snapshot = msgspec.json.decode(msgspec.json.encode(depth), type=DepthSnapshot)
    assert (snapshot.bids, snapshot.asks) == ([(Decimal("99.00"), Decimal(1))], [(Decimal(100), Decimal("0.5"))])
    info = _get(venue, constants.EXCHANGE_INFO_PATH, "symbol=BTCUSDT")
    assert_same_shape(info["symbols"][0], examples["spot_exchangeInfo_symbol_entry"])
    assert list(parse_exchange_info(msgspec.json.encode(info))) == [SPOT]
    assert venue.send(RestRequest(method="GET", path=constants.DEPTH_PATH, query="symbol=NOPE")).status == 400
    assert venue.send(RestRequest(method="GET", path=constants.EXCHANGE_INFO_PATH, query="symbols=BTCUSDT,X")).status == 400


def test_private_replies_have_the_documented_shapes(venue: Venue, examples: dict[str, Any]) -> None:
    new_order = venue.fetch(venue.trading.place_order_request(limit("0.5", "95", cid="shape-1")))
    assert_same_shape(json.loads(new_order), examples["spot_new_order_response_POST_api_v3_order"])
    reply = json.loads(venue.fetch(venue.trading.query_order_request("BTC/USDT", client_order_id="shape-1")))
    assert reply["clientOrderId"] == "shape-1"
    reply["clientOrderId"] = None  # the recorded order was placed without a client id
    assert_same_shape(reply, examples["mexc_spot_allOrders_response"][0])
    canceled = json.loads(venue.fetch(venue.trading.cancel_order_request("BTC/USDT", client_order_id="shape-1")))
    assert list(canceled)[:4] == ["symbol", "origClientOrderId", "orderId", "clientOrderId"]
    account = json.loads(venue.fetch(venue.trading.account_request()))
    assert account["balances"][0] == {"asset": "BTC", "free": "10", "locked": "0"}


def test_contract_market_data_and_refused_orders(venue: Venue, examples: dict[str, Any]) -> None:
    depth = _get(venue, "/api/v1/contract/depth/BTC_USDT", "limit=5")
    assert depth["success"] is True
    assert_same_shape(depth["data"], examples["contract_depth_snapshot_GET_api_v1_contract_depth"],
                      tuples=("$.asks", "$.bids"))
    assert depth["data"]["asks"] == [[30000.5, 7, 1]]
    detail = venue.send(RestRequest(method="GET", path=constants.CONTRACT_DETAIL_PATH))
    assert list(parse_contract_detail(detail.body)) == [FUTURES]
    one = _get(venue, constants.CONTRACT_DETAIL_PATH, "symbol=BTC_USDT")
    assert one["data"]["contractSize"] == 0.0001
    missing = _get(venue, "/api/v1/contract/depth/ETH_USDT")
    assert missing["success"] is False
    body = b'{"symbol":"BTC_USDT","vol":1,"type":1,"openType":2,"price":60000,"side":1}'
    for path in (constants.CONTRACT_ORDER_CREATE_PATH, constants.CONTRACT_ORDER_SUBMIT_PATH):
        response = venue.send(RestRequest(method="POST", path=path, body=body))
        refusal = json.loads(response.body)
        assert (response.status, refusal) == (
            200, {"success": False, "code": 1002, "message": "Contract not allow place order!"})
        error = failure(SimResponse(status=400, body=response.body), futures_rest_venue())
        assert isinstance(error, OrderRejectedError) and error.category == ErrorCategory.ORDER_REJECTED
    assert venue.futures.open_orders(KEY) == []
