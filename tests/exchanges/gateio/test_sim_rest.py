"""arb/exchanges/gateio/sim.py REST side: every request trading.py builds is answered as Gate answers it."""

from __future__ import annotations

import json
from decimal import Decimal as D
from pathlib import Path

import msgspec
import pytest
from gate_rest import API_KEY, WALL_MS, GateVenue, answer, body_or_raise, to_sim
from shapes import assert_same_shape
from sim.simdata import perp, spot
from wire_data import http_bodies

from arb.errors import ExchangeError, OrderRejectedError, RateLimitError
from arb.exchanges.errors import ErrorCategory
from arb.exchanges.gateio import constants
from arb.exchanges.gateio.instruments import parse_currency_pairs, parse_futures_contracts
from arb.exchanges.gateio.schemas import FuturesOrderBook, OrderBook
from arb.exchanges.models import OrderRequest, OrderStatus, OrderType, TimeInForce
from arb.exchanges.rest import RestRequest
from arb.sim.faults import OrderFaultKind, VenueFaults
from arb.instruments import Instrument
from arb.types import OrderSide
from arb_core.book import ASK

SPOT = "BTC/USDT"
PERP = "BTC/USDT:USDT"


def order(symbol: str = SPOT, side: OrderSide = OrderSide.BUY, quantity: str = "0.05", price: str | None = "29000",
          tif: TimeInForce = TimeInForce.GTC, cid: str = "c1", reduce_only: bool = False) -> OrderRequest:
    kind = OrderType.LIMIT if price is not None else OrderType.MARKET
    return OrderRequest(symbol=symbol, side=side, type=kind, quantity=D(quantity), client_order_id=cid,
                        price=None if price is None else D(price), time_in_force=tif, reduce_only=reduce_only)


def error_of(venue: GateVenue, request: RestRequest) -> ExchangeError:
    with pytest.raises(ExchangeError) as info:
        venue.fetch(request)
    return info.value


def label_of(venue: GateVenue, request: RestRequest) -> tuple[int, str]:
    response = venue.send(request)
    return response.status, json.loads(response.body)["label"]


# --- authentication: refused exactly as Gate refuses ---------------------------------------


def test_unknown_key_is_invalid_key_401_and_auth_failed() -> None:
    venue = GateVenue()
    request = venue.spot_client.balances()
    headers = {**request.headers, constants.KEY_HEADER: "someone-else"}
    response = answer(venue.routes, venue.ctx, to_sim(request, headers=headers))
    assert (response.status, json.loads(response.body)["label"]) == (401, "INVALID_KEY")
    with pytest.raises(ExchangeError) as info:
        body_or_raise(request, response)
    assert info.value.category == ErrorCategory.AUTH_FAILED


def test_wrong_signature_is_invalid_signature_401() -> None:
    venue = GateVenue()
    request = venue.spot_client.place_order(order())
    tampered = msgspec.structs.replace(request, body=request.body.replace(b"29000", b"29001"))
    assert label_of(venue, tampered) == (401, "INVALID_SIGNATURE")
    assert error_of(venue, tampered).category == ErrorCategory.AUTH_FAILED
    assert venue.spot.open_orders(API_KEY) == []  # nothing placed


@pytest.mark.parametrize("skew_ms", [61_000, -61_000])
def test_timestamp_outside_60_s_is_request_expired_and_timestamp_category(skew_ms: int) -> None:
    venue = GateVenue()
    request = venue.futures_client.positions()
    venue.wall_ms = WALL_MS + skew_ms
    assert label_of(venue, request) == (401, "REQUEST_EXPIRED")
    assert error_of(venue, request).category == ErrorCategory.TIMESTAMP


def test_timestamp_within_the_window_is_accepted() -> None:
    venue = GateVenue()
    request = venue.futures_client.positions()
    venue.wall_ms = WALL_MS + 59_000
    assert venue.fetch(request) == b"[]"


def test_missing_headers_are_refused() -> None:
    venue = GateVenue()
    request = venue.spot_client.balances()
    response = answer(venue.routes, venue.ctx, to_sim(request, headers={}))
    assert (response.status, json.loads(response.body)["label"]) == (401, "MISSING_REQUIRED_HEADER")


def test_malformed_order_bodies_are_refused_with_gate_labels() -> None:
    venue = GateVenue()
    base = venue.spot_client.place_order(order())
    for body, label in [
        (b"not json", "INVALID_REQUEST_BODY"),
        (b"[]", "INVALID_REQUEST_BODY"),
        (b'{"currency_pair":"BTC_USDT","side":"buy","type":"limit","price":"1"}', "MISSING_REQUIRED_PARAM"),
        (b'{"currency_pair":"NOPE_USDT","side":"buy","amount":"1","price":"1"}', "INVALID_CURRENCY_PAIR"),
        (b'{"currency_pair":["BTC_USDT"],"side":"buy","amount":"1","price":"1"}', "INVALID_CURRENCY_PAIR"),
        (b'{"currency_pair":"BTC_USDT","side":"hold","amount":"1","price":"1"}', "INVALID_PARAM_VALUE"),
        (b'{"currency_pair":"BTC_USDT","side":"buy","amount":"0.1","price":"29000.001"}', "INVALID_PRECISION"),
        (b'{"currency_pair":"BTC_USDT","side":"buy","amount":"0.00001","price":"29000"}', "INVALID_PRECISION"),
        (b'{"currency_pair":"BTC_USDT","side":"buy","amount":0.1,"price":"29000"}', "INVALID_PARAM_VALUE"),
        (b'{"currency_pair":"BTC_USDT","side":"buy","amount":"1","price":"1","text":"nope"}', "INVALID_PARAM_VALUE"),
        (b'{"currency_pair":"BTC_USDT","side":"buy","type":"market","amount":"1","time_in_force":"gtc"}',
         "INVALID_PARAM_VALUE"),
        (b'{"currency_pair":"BTC_USDT","side":"buy","amount":"100","price":"29000"}', "BALANCE_NOT_ENOUGH"),
        (b'{"currency_pair":"BTC_USDT","side":"buy","amount":"0.0001","price":"1"}', "AMOUNT_TOO_LITTLE"),
    ]:
        signed = venue.spot_client._signed("POST", constants.ORDERS_PATH, constants.SPOT_ORDER_PLACE_RATE_LIMIT,
                                           body=body)
        assert label_of(venue, signed)[1] == label, body
    assert base.method == "POST"
    futures = venue.futures_client
    for body, label in [
        (b'{"contract":"BTC_USDT","size":0,"price":"1"}', "INVALID_PARAM_VALUE"),
        (b'{"contract":"BTC_USDT","size":1.5,"price":"1"}', "INVALID_PARAM_VALUE"),
        (b'{"contract":"ETH_USDT","size":1,"price":"1"}', "CONTRACT_NOT_FOUND"),
        (b'{"contract":"BTC_USDT","size":1,"price":"0","tif":"gtc"}', "INVALID_PARAM_VALUE"),
        (b'{"contract":"BTC_USDT","size":1,"price":"29000.05"}', "INVALID_PRECISION"),
        (b'{"contract":"BTC_USDT","size":-1,"price":"0","tif":"ioc","reduce_only":true}', "RISK_LIMIT_EXCEEDED"),
    ]:
        signed = futures._signed("POST", constants.FUTURES_ORDERS_PATH, constants.FUTURES_ORDER_PLACE_RATE_LIMIT,
                                 body=body)
        assert label_of(venue, signed)[1] == label, body


# --- spot round trips ---------------------------------------------------------------------


def test_spot_limit_order_rests_then_is_found_and_cancelled_by_id() -> None:
    venue = GateVenue()
    client = venue.spot_client
    placed = client.parse_order(venue.fetch(client.place_order(order())))
    assert (placed.status, placed.client_order_id, placed.quantity, placed.price) == (
        OrderStatus.NEW, "c1", D("0.05"), D("29000"))
    assert client.parse_order(venue.fetch(client.query_order(SPOT, order_id=placed.order_id))) == placed
    listed = client.parse_open_orders(venue.fetch(client.open_orders(SPOT)))
    grouped = client.parse_open_orders(venue.fetch(client.open_orders()))
    assert [o.order_id for o in listed] == [o.order_id for o in grouped] == [placed.order_id]
    locked = client.parse_balances(venue.fetch(client.balances()))["USDT"]
    assert (locked.free, locked.locked) == (D("98550"), D("1450"))
    cancelled = client.parse_order(venue.fetch(client.cancel_order(SPOT, order_id=placed.order_id)))
    assert cancelled.status is OrderStatus.CANCELED and cancelled.filled_quantity == 0
    assert client.parse_open_orders(venue.fetch(client.open_orders())) == []
    again = error_of(venue, client.cancel_order(SPOT, order_id=placed.order_id))
    assert isinstance(again, OrderRejectedError) and again.category == ErrorCategory.UNKNOWN_ORDER


def test_spot_cancel_and_query_by_client_id_use_the_text_in_place_of_the_id() -> None:
    venue = GateVenue()
    client = venue.spot_client
    placed = client.parse_order(venue.fetch(client.place_order(order(cid="my.id-7"))))
    request = client.query_order(SPOT, client_order_id="my.id-7")
    assert request.path == "/spot/orders/t-my.id-7"
    assert client.parse_order(venue.fetch(request)).order_id == placed.order_id
    cancelled = client.parse_order(venue.fetch(client.cancel_order(SPOT, client_order_id="my.id-7")))
    assert (cancelled.order_id, cancelled.status) == (placed.order_id, OrderStatus.CANCELED)
    missing = error_of(venue, client.query_order(SPOT, client_order_id="other"))
    assert missing.category == ErrorCategory.UNKNOWN_ORDER


def test_spot_ioc_fills_what_crosses_and_expires_the_rest() -> None:
    venue = GateVenue()
    client = venue.spot_client
    state = client.parse_order(venue.fetch(client.place_order(order(quantity="0.15", price="30000",
                                                                    tif=TimeInForce.IOC))))
    assert (state.status, state.filled_quantity, state.average_price) == (OrderStatus.EXPIRED, D("0.1"), D("30000"))
    assert (state.fee, state.fee_asset) == (D("0.0001"), "BTC")  # 0.1 % of the BTC received
    balances = client.parse_balances(venue.fetch(client.balances()))
    assert balances["BTC"].free == D("1.0999") and balances["USDT"].free == D("97000")


def test_spot_market_sell_and_market_buy_by_quote_amount() -> None:
    venue = GateVenue()
    client = venue.spot_client
    sell = client.parse_order(venue.fetch(client.place_order(
        order(side=OrderSide.SELL, quantity="0.05", price=None, tif=TimeInForce.IOC, cid="s"))))
    assert (sell.status, sell.filled_quantity, sell.average_price, sell.fee_asset) == (
        OrderStatus.FILLED, D("0.05"), D("29999"), "USDT")
    buy_request = client.place_order(order(quantity="0.01", price=None, tif=TimeInForce.IOC, cid="b"),
                                     quote_amount=D("300"))
    buy = client.parse_order(venue.fetch(buy_request))
    assert json.loads(buy_request.body)["amount"] == "300"
    assert (buy.status, buy.filled_quantity, buy.quantity, buy.average_price) == (
        OrderStatus.FILLED, D("0.01"), D("0.01"), D("30000"))


def test_post_only_that_would_take_is_refused() -> None:
    venue = GateVenue()
    client = venue.spot_client
    error = error_of(venue, client.place_order(order(price="30000", tif=TimeInForce.POST_ONLY)))
    assert isinstance(error, OrderRejectedError) and error.category == ErrorCategory.ORDER_REJECTED


def test_public_endpoints_build_catalogs_and_books_the_client_reads() -> None:
    venue = GateVenue()
    routes, ctx = venue.routes, venue.ctx

    def get(path: str, query: str = "") -> bytes:
        response = answer(routes, ctx, to_sim(RestRequest(method="GET", path=path, query=query), headers={}))
        assert response.status == 200, response.body
        return response.body

    spot = parse_currency_pairs(get(constants.CURRENCY_PAIRS_PATH)).get(SPOT)
    assert spot.tick_size == venue.spot_instrument.tick_size and spot.lot_size == venue.spot_instrument.lot_size
    assert json.loads(get("/spot/currency_pairs/BTC_USDT"))["id"] == "BTC_USDT"
    perp = parse_futures_contracts(get(constants.FUTURES_CONTRACTS_PATH)).get(PERP)
    assert (perp.contract_size, perp.tick_size, perp.maker_fee) == (D("0.0001"), D("0.1"), D("-0.00025"))
    assert json.loads(get("/futures/usdt/contracts/BTC_USDT"))["name"] == "BTC_USDT"
    book = msgspec.json.decode(get(constants.ORDER_BOOK_PATH, "currency_pair=BTC_USDT&limit=5&with_id=true"),
                               type=OrderBook)
    assert book.asks[0] == (D("30000"), D("0.1")) and book.bids[0] == (D("29999"), D("0.1")) and book.id
    fbook = msgspec.json.decode(get(constants.FUTURES_ORDER_BOOK_PATH, "contract=BTC_USDT&limit=5&with_id=true"),
                                type=FuturesOrderBook)
    assert (fbook.asks[0].p, fbook.asks[0].s) == (D("30000"), D(50))
    assert json.loads(get(constants.SERVER_TIME_PATH)) == {"server_time": venue.wall_ms}
    missing = answer(routes, ctx, to_sim(RestRequest(method="GET", path=constants.ORDER_BOOK_PATH,
                                                     query="limit=5"), headers={}))
    assert (missing.status, json.loads(missing.body)["label"]) == (400, "MISSING_REQUIRED_PARAM")


def test_the_contracts_list_is_paged_by_limit_and_offset_as_gate_documents() -> None:
    extra = [perp(symbol=f"{base}/USDT:USDT", venue_symbol=f"{base}_USDT", base=base) for base in ("ETH", "LTC")]
    venue = GateVenue(extra)

    def names(query: str) -> list[str]:
        response = answer(venue.routes, venue.ctx, to_sim(
            RestRequest(method="GET", path=constants.FUTURES_CONTRACTS_PATH, query=query), headers={}))
        assert response.status == 200, response.body
        return [c["name"] for c in json.loads(response.body)]

    assert names("") == ["BTC_USDT", "ETH_USDT", "LTC_USDT"]
    assert (names("limit=2&offset=0"), names("limit=2&offset=2"), names("limit=2&offset=4")) == (
        ["BTC_USDT", "ETH_USDT"], ["LTC_USDT"], [])
    refused = answer(venue.routes, venue.ctx, to_sim(
        RestRequest(method="GET", path=constants.FUTURES_CONTRACTS_PATH, query="limit=0"), headers={}))
    assert (refused.status, json.loads(refused.body)["label"]) == (400, "INVALID_PARAM_VALUE")


def test_public_metadata_has_the_recorded_shape(shared_data: Path) -> None:
    venue = GateVenue()
    pairs = json.loads(answer(venue.routes, venue.ctx, to_sim(
        RestRequest(method="GET", path=constants.CURRENCY_PAIRS_PATH), headers={})).body)
    contracts = json.loads(answer(venue.routes, venue.ctx, to_sim(
        RestRequest(method="GET", path=constants.FUTURES_CONTRACTS_PATH), headers={})).body)
    (_, recorded_pairs), = http_bodies(shared_data / "cryptofeed" / "GATEIO.0")
    (_, recorded_contracts), = http_bodies(shared_data / "cryptofeed" / "GATEIO_FUTURES.0")
    with_min_base = next(p for p in json.loads(recorded_pairs) if "min_base_amount" in p and "min_quote_amount" in p)
    assert_same_shape(pairs, [with_min_base])
    assert_same_shape(contracts, json.loads(recorded_contracts)[:1])


# --- futures round trips ------------------------------------------------------------------


def test_futures_limit_ioc_market_reduce_only_positions_and_account() -> None:
    venue = GateVenue()
    client = venue.futures_client
    resting = client.parse_order(venue.fetch(client.place_order(order(PERP, quantity="3", price="29000", cid="f1"))))
    assert (resting.status, resting.quantity, resting.side) == (OrderStatus.NEW, D(3), OrderSide.BUY)
    assert [o.order_id for o in client.parse_open_orders(venue.fetch(client.open_orders(PERP)))] == [resting.order_id]
    assert client.parse_order(venue.fetch(client.query_order(client_order_id="f1"))).order_id == resting.order_id
    cancelled = client.parse_order(venue.fetch(client.cancel_order(client_order_id="f1")))
    assert cancelled.status is OrderStatus.CANCELED
    ioc = client.parse_order(venue.fetch(client.place_order(
        order(PERP, quantity="60", price="30000", tif=TimeInForce.IOC, cid="f2"))))
    assert (ioc.status, ioc.filled_quantity, ioc.average_price) == (OrderStatus.EXPIRED, D(50), D("30000"))
    positions = client.parse_positions(venue.fetch(client.positions()))
    assert [(p.symbol, p.size, p.entry_price) for p in positions] == [(PERP, D(50), D("30000"))]
    # Isolated at 10x with a 0.5 % maintenance rate: liquidated 9.5 % below the entry; marked at the
    # book's mid, or the entry while a side is empty (the IOC took every ask).
    assert (positions[0].liquidation_price, positions[0].mark_price) == (D("27150.0"), D("30000"))
    account = client.parse_balances(venue.fetch(client.account()))["USDT"]
    assert account.locked == D("15")  # 50 x 0.0001 x 30000 / 10x leverage
    close = client.parse_order(venue.fetch(client.place_order(
        order(PERP, side=OrderSide.SELL, quantity="80", price=None, tif=TimeInForce.IOC, cid="f3", reduce_only=True))))
    assert (close.status, close.filled_quantity, close.side, close.type) == (
        OrderStatus.FILLED, D(50), OrderSide.SELL, OrderType.MARKET)
    assert client.parse_positions(venue.fetch(client.positions())) == []
    assert client.parse_order(venue.fetch(client.query_order(order_id=ioc.order_id))).filled_quantity == D(50)


def test_a_finished_futures_order_is_found_by_its_text_for_60_s_only() -> None:
    """Gate's futures reference: a custom id finds an order for 60 s after it ended (counted from its
    end, not its placing); its order id still finds it after that, and an open order is found by
    its text however old."""
    venue = GateVenue()
    client = venue.futures_client
    resting = client.parse_order(venue.fetch(client.place_order(order(PERP, quantity="1", price="29000", cid="old"))))
    ioc = client.parse_order(venue.fetch(client.place_order(
        order(PERP, quantity="1", price="30000", tif=TimeInForce.IOC, cid="f1"))))
    venue.now_ns += 59_000_000_000
    assert client.parse_order(venue.fetch(client.query_order(client_order_id="f1"))).order_id == ioc.order_id
    venue.now_ns += 2_000_000_000
    missing = error_of(venue, client.query_order(client_order_id="f1"))
    assert isinstance(missing, OrderRejectedError) and missing.category == ErrorCategory.UNKNOWN_ORDER
    assert client.parse_order(venue.fetch(client.query_order(order_id=ioc.order_id))).filled_quantity == D(1)
    assert client.parse_order(venue.fetch(client.query_order(client_order_id="old"))).order_id == resting.order_id
    client.parse_order(venue.fetch(client.cancel_order(client_order_id="old")))  # 61 s after it was placed
    venue.now_ns += 1_000_000_000
    assert client.parse_order(venue.fetch(client.query_order(client_order_id="old"))).status is OrderStatus.CANCELED
    venue.now_ns += 60_000_000_000
    assert isinstance(error_of(venue, client.query_order(client_order_id="old")), OrderRejectedError)


def test_a_finished_spot_order_is_found_by_its_text_only_while_open() -> None:
    """Gate's spot REST reference: a custom id finds an order only while it is open; its order id
    still finds it after it ended. A fault plan's ``client_id_lookup_ms`` keeps it found longer."""
    venue = GateVenue()
    client = venue.spot_client
    resting = client.parse_order(venue.fetch(client.place_order(order(cid="rest"))))
    ioc = client.parse_order(venue.fetch(client.place_order(
        order(quantity="0.01", price="30000", tif=TimeInForce.IOC, cid="ioc"))))
    assert ioc.status is OrderStatus.FILLED
    for request in (client.query_order(SPOT, client_order_id="ioc"), client.cancel_order(SPOT, client_order_id="ioc")):
        missing = error_of(venue, request)
        assert isinstance(missing, OrderRejectedError) and missing.category == ErrorCategory.UNKNOWN_ORDER
    assert client.parse_order(venue.fetch(client.query_order(SPOT, order_id=ioc.order_id))).filled_quantity == D("0.01")
    venue.now_ns += 3_600_000_000_000
    assert client.parse_order(venue.fetch(client.query_order(SPOT, client_order_id="rest"))).order_id == resting.order_id
    client.parse_order(venue.fetch(client.cancel_order(SPOT, client_order_id="rest")))
    assert isinstance(error_of(venue, client.query_order(SPOT, client_order_id="rest")), OrderRejectedError)
    venue.faults.configure("gateio", VenueFaults(client_id_lookup_ms=1_000))
    assert client.parse_order(venue.fetch(client.query_order(SPOT, client_order_id="rest"))).status is OrderStatus.CANCELED


def test_a_contract_in_delisting_is_listed_so_and_takes_reduce_only_orders_only() -> None:
    venue = GateVenue()
    client = venue.futures_client
    client.parse_order(venue.fetch(client.place_order(
        order(PERP, side=OrderSide.SELL, quantity="5", price="29999", tif=TimeInForce.IOC, cid="open"))))
    venue.ctx.delisting.add(PERP)
    listed = answer(venue.routes, venue.ctx, to_sim(RestRequest(method="GET", path=constants.FUTURES_CONTRACTS_PATH), headers={}))
    catalog = parse_futures_contracts(listed.body)
    assert PERP not in catalog and catalog.closing_only(PERP)
    assert [(s.symbol, s.reason) for s in catalog.skipped] == [(PERP, "in_delisting=true")]
    assert label_of(venue, client.place_order(
        order(PERP, side=OrderSide.SELL, quantity="1", price="29999", tif=TimeInForce.IOC, cid="more"))
    ) == (400, "CONTRACT_IN_DELISTING")
    refused = error_of(venue, client.place_order(
        order(PERP, side=OrderSide.SELL, quantity="1", price="29999", tif=TimeInForce.IOC, cid="more2")))
    assert refused.category is ErrorCategory.ORDER_REJECTED
    close = client.parse_order(venue.fetch(client.place_order(
        order(PERP, quantity="5", price="30000", tif=TimeInForce.IOC, cid="close", reduce_only=True))))
    assert close.filled_quantity == D(5) and client.parse_positions(venue.fetch(client.positions())) == []


def test_funding_settled_on_a_position_is_read_back_from_the_account_book_page_by_page() -> None:
    venue = GateVenue()
    client = venue.futures_client
    client.parse_order(venue.fetch(client.place_order(order(PERP, quantity="20", price="30000", tif=TimeInForce.IOC))))
    assert client.parse_funding_payments(venue.fetch(client.funding_payments(WALL_MS))) == ([], 0)
    for n in range(constants.ACCOUNT_BOOK_PAGE + 5):  # more than one page
        venue.futures.settle_funding(PERP, D("0.0001"), WALL_MS + 1_000 * n + 250)
    settled = venue.futures.ledger.account(API_KEY).funding
    first, more = client.parse_funding_payments(venue.fetch(client.funding_payments(WALL_MS)))
    assert more == constants.ACCOUNT_BOOK_PAGE and len(first) == more
    rest, last = client.parse_funding_payments(venue.fetch(client.funding_payments(WALL_MS, offset=more)))
    assert last == 0 and len(rest) == 5
    payments = sorted(first + rest, key=lambda p: p.time_ms)
    # Long 20 contracts x 0.0001 BTC, 59.999 USDT at the mid 29999.5: pays 0.0059999 a settlement, stamped to the ms.
    assert [(p.symbol, p.amount, p.time_ms) for p in payments] == [
        (PERP, D("-0.0059999"), WALL_MS + 1_000 * n + 250) for n in range(constants.ACCOUNT_BOOK_PAGE + 5)
    ]
    assert [p.payment_id for p in payments] == [str(entry.entry_id) for entry in settled]
    # ``from`` is in whole seconds: the settlements of the last 3 seconds.
    since = client.funding_payments(WALL_MS + 1_000 * (constants.ACCOUNT_BOOK_PAGE + 2))
    assert [p.time_ms for p in client.parse_funding_payments(venue.fetch(since))[0]] == [
        WALL_MS + 1_000 * n + 250 for n in range(constants.ACCOUNT_BOOK_PAGE + 4, constants.ACCOUNT_BOOK_PAGE + 1, -1)
    ]


# --- faults -------------------------------------------------------------------------------


@pytest.mark.parametrize("category", [ErrorCategory.INSUFFICIENT_BALANCE, ErrorCategory.ORDER_REJECTED,
                                      ErrorCategory.MIN_NOTIONAL, ErrorCategory.PRECISION])
@pytest.mark.parametrize("futures", [False, True])
def test_reject_fault_answers_the_category_label(category: ErrorCategory, futures: bool) -> None:
    venue = GateVenue()
    venue.faults.fail_next_orders(constants.VENUE, OrderFaultKind.REJECT, category=category)
    request = (venue.futures_client.place_order(order(PERP, quantity="1")) if futures
               else venue.spot_client.place_order(order()))
    table = constants.FUTURES_REJECT_LABELS if futures else constants.SPOT_REJECT_LABELS
    assert label_of(venue, request) == (table[category][1], table[category][0])
    venue.faults.fail_next_orders(constants.VENUE, OrderFaultKind.REJECT, category=category)
    error = error_of(venue, request)
    assert isinstance(error, OrderRejectedError) and error.category == category
    assert venue.spot.open_orders(API_KEY) == [] and venue.futures.open_orders(API_KEY) == []


def test_rate_limit_fault_is_429_with_retry_hints() -> None:
    venue = GateVenue()
    venue.faults.fail_next_orders(constants.VENUE, OrderFaultKind.RATE_LIMIT, retry_after_ms=1500)
    request = venue.spot_client.place_order(order())
    response = venue.send(request)
    headers = dict(response.headers)
    assert response.status == 429 and json.loads(response.body)["label"] == "TOO_MANY_REQUESTS"
    assert "Retry-After" not in headers  # Gate states when the limit resets, nothing else
    assert headers[constants.RATE_LIMIT_RESET_HEADER] == str(venue.wall_ms + 1500)
    with pytest.raises(RateLimitError) as info:
        body_or_raise(request, response, now_ms=venue.wall_ms)
    assert info.value.retry_after_s == 1.5 and info.value.category == ErrorCategory.RATE_LIMITED
    assert venue.spot.open_orders(API_KEY) == []


def test_a_burst_past_a_pairs_spot_order_limit_is_429_with_the_reset_time_and_no_retry_after() -> None:
    """Gate takes 10 spot orders of a pair in any second [GT rate_limits.md]: every answer carries the
    X-Gate-RateLimit-* counters, the 11th in the second is refused TOO_MANY_REQUESTS with the time the
    window takes one again and no Retry-After, and another pair's budget is its own."""
    eth = spot(symbol="ETH/USDT", venue_symbol="ETH_USDT", base="ETH")
    venue = GateVenue(extra=[eth])
    counters = []
    for n in range(10):
        response = venue.send(venue.spot_client.place_order(order(quantity="0.0001", cid=f"c{n}")))
        assert response.status == 200, response.body
        headers = dict(response.headers)
        assert headers[constants.RATE_LIMIT_RESET_HEADER] == str(venue.wall_ms)  # now: not exceeded
        counters.append((headers[constants.RATE_LIMIT_REMAIN_HEADER], headers[constants.RATE_LIMIT_LIMIT_HEADER]))
        if n == 0:
            first_ms = venue.wall_ms
    assert counters == [(str(9 - n), "10") for n in range(10)]
    request = venue.spot_client.place_order(order(quantity="0.0001", cid="c10"))
    response = venue.send(request)
    headers = dict(response.headers)
    assert response.status == 429 and json.loads(response.body)["label"] == "TOO_MANY_REQUESTS"
    assert "Retry-After" not in headers and headers[constants.RATE_LIMIT_REMAIN_HEADER] == "0"
    assert headers[constants.RATE_LIMIT_RESET_HEADER] == str(first_ms + 1000)
    with pytest.raises(RateLimitError) as info:
        body_or_raise(request, response, now_ms=venue.wall_ms)
    assert info.value.retry_after_s == (first_ms + 1000 - venue.wall_ms) / 1000
    assert len(venue.spot.open_orders(API_KEY)) == 10
    other = venue.send(venue.spot_client.place_order(order(symbol="ETH/USDT", quantity="0.0001", cid="e0")))
    assert other.status == 200 and dict(other.headers)[constants.RATE_LIMIT_REMAIN_HEADER] == "9"
    venue.now_ns += 1_000_000_000
    venue.wall_ms += 1000
    assert venue.send(venue.spot_client.place_order(order(quantity="0.0001", cid="c11"))).status == 200


def test_futures_placement_takes_100_a_second_and_cancels_200() -> None:
    venue = GateVenue()
    for n in range(100):
        assert venue.send(venue.futures_client.place_order(order(PERP, quantity="1", cid=f"f{n}"))).status == 200
    refused = venue.send(venue.futures_client.place_order(order(PERP, quantity="1", cid="f100")))
    assert refused.status == 429 and json.loads(refused.body)["label"] == "TOO_MANY_REQUESTS"
    cancelled = venue.send(venue.futures_client.cancel_order(client_order_id="f0"))
    assert cancelled.status == 200 and dict(cancelled.headers)[constants.RATE_LIMIT_LIMIT_HEADER] == "200"


@pytest.mark.parametrize("futures", [False, True])
def test_partial_fill_fault_fills_a_share_and_expires_the_rest(futures: bool) -> None:
    venue = GateVenue()
    venue.faults.fail_next_orders(constants.VENUE, OrderFaultKind.PARTIAL_FILL, fill_ppm=400_000)
    if futures:
        client = venue.futures_client
        state = client.parse_order(venue.fetch(client.place_order(order(PERP, quantity="10", price="30000"))))
        assert state.filled_quantity == D(4)
    else:
        client = venue.spot_client  # type: ignore[assignment]
        state = client.parse_order(venue.fetch(client.place_order(order(quantity="0.05", price="30000"))))
        assert state.filled_quantity == D("0.02")
    assert state.status is OrderStatus.EXPIRED and state.is_final


@pytest.mark.parametrize("futures", [False, True])
def test_timeout_fault_places_the_order_and_drops_the_answer(futures: bool) -> None:
    venue = GateVenue()
    venue.faults.fail_next_orders(constants.VENUE, OrderFaultKind.TIMEOUT_PLACED)
    if futures:
        fclient = venue.futures_client
        request = fclient.place_order(order(PERP, quantity="2", cid="lost"))
        assert venue.send(request).drop_connection
        found = fclient.parse_order(venue.fetch(fclient.query_order(client_order_id="lost")))
    else:
        sclient = venue.spot_client
        request = sclient.place_order(order(cid="lost"))
        assert venue.send(request).drop_connection
        found = sclient.parse_order(venue.fetch(sclient.query_order(SPOT, client_order_id="lost")))
    assert (found.client_order_id, found.status) == ("lost", OrderStatus.NEW)
    assert venue.faults.count(constants.VENUE, OrderFaultKind.TIMEOUT_PLACED) == 1


# --- shapes and recorded bodies -----------------------------------------------------------


def examples(shared_data: Path) -> dict[str, object]:
    doc: dict[str, object] = json.loads((shared_data / "examples" / "ccxt_static_fixtures_extract.json").read_text())
    return doc


def test_futures_order_has_the_recorded_shape(shared_data: Path) -> None:
    venue = GateVenue()
    client = venue.futures_client
    body = venue.fetch(client.place_order(order(PERP, quantity="1", price=None, tif=TimeInForce.IOC)))
    recorded = examples(shared_data)["gate_futures_market_order_response"]
    assert_same_shape(json.loads(body), recorded)
    resting = venue.fetch(client.place_order(order(PERP, quantity="1", cid="r")))
    assert_same_shape(json.loads(resting), recorded, optional=("$.finish_time", "$.finish_as"))


def test_spot_order_has_the_documented_shape(shared_data: Path) -> None:
    venue = GateVenue()
    body = json.loads(venue.fetch(venue.spot_client.place_order(order())))
    docs = json.loads((shared_data / "examples" / "gate_docs_ws_examples.json").read_text())
    documented = docs["spot_ws_api_order_place_result"]["data"]["result"]
    assert_same_shape(body, documented, optional=("$.filled_amount", "$.avg_deal_price"))


def recorded_markets() -> list[Instrument]:
    """The pairs of the recorded bodies (LTC, XRP) on the grids of the BTC test instruments."""
    ltc = dict(symbol="LTC/USDT", venue_symbol="LTC_USDT", base="LTC")
    xrp = dict(symbol="XRP/USDT:USDT", venue_symbol="XRP_USDT", base="XRP", tick_size=D("0.0001"), price_decimals=4)
    return [spot(**ltc), perp(**{**ltc, "symbol": "LTC/USDT:USDT"}), perp(**xrp)]


def test_recorded_request_bodies_are_accepted(shared_data: Path) -> None:
    venue = GateVenue(recorded_markets())
    venue.futures.engine("XRP/USDT:USDT").apply_market_levels([(ASK, 5000, 100)], venue.now_ns)
    bodies = examples(shared_data)["gate_request_bodies"]
    assert isinstance(bodies, dict)
    for name, body in bodies.items():
        if name.startswith("_"):
            continue
        futures = name.startswith("futures")
        path = constants.FUTURES_ORDERS_PATH if futures else constants.ORDERS_PATH
        client = venue.futures_client if futures else venue.spot_client
        signed = client._signed("POST", path, "any", body=json.dumps(body).encode())
        response = venue.send(signed)
        assert response.status == 200, (name, response.body)
        placed = json.loads(response.body)
        assert placed["contract" if futures else "currency_pair"] == body["contract" if futures else "currency_pair"]


def test_an_order_answer_reports_the_fee_its_fills_were_charged_maker_or_taker() -> None:
    """The simulated Gate.io answered every order with the taker fee on what it received, while a
    resting order filled as maker was charged the maker rate: fees and PnL of maker fills were
    tested against a number the venue's ledger did not hold."""
    import time

    from arb.exchanges.gateio import sim as gateio_sim
    from arb.sim.faults import FaultPlan
    from arb.sim.http import SimContext
    from arb.sim.matching import Fill, SimExchange, from_atoms
    from arb.types import ExchangeName
    from arb_core.book import BID

    maker_rate = D("0.0005")
    venue = SimExchange(ExchangeName.GATEIO, [msgspec.structs.replace(spot(), maker_fee=maker_rate)])
    venue.engine("BTC/USDT").apply_market_levels([(ASK, 10_100, 100_000), (BID, 9_900, 100_000)], 1)
    venue.deposit("alice", "USDT", "10000")
    venue.deposit("bob", "BTC", "10")
    context = SimContext(venue="gateio", exchanges={ExchangeName.GATEIO: venue}, faults=FaultPlan(), credentials={},
                         now_ns=time.monotonic_ns, wall_ms=lambda: time.time_ns() // 1_000_000)
    order = {"currency_pair": "BTC_USDT", "side": "buy", "amount": "1", "price": "100", "text": "t-a1"}
    placed = gateio_sim.place_spot_order(context, "alice", order)
    assert placed["status"] == "open"  # rests: a maker
    gateio_sim.place_spot_order(context, "bob", {"currency_pair": "BTC_USDT", "side": "sell", "amount": "1",
                                                 "price": "100", "time_in_force": "ioc"})
    (fill,) = [e for e in venue.drain_events() if isinstance(e, Fill) and e.user == "alice"]
    answer = gateio_sim.spot_order(context, "alice", "BTC_USDT", str(placed["id"]))  # filled: its text no longer finds it
    assert (D(answer["fee"]), answer["fee_currency"]) == (from_atoms(fill.fee_atoms), fill.fee_asset) == (
        maker_rate, "BTC"
    )
