"""arb.exchanges.mexc.trading: signed spot requests and reply parsing, without the simulator.

Round trips through the simulated venue are in test_sim_rest.py.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import msgspec
import pytest

from arb.errors import ArbitrageEngineError, ExchangeError, OrderRejectedError
from arb.exchanges.errors import ErrorCategory
from arb.exchanges.mexc import constants
from arb.exchanges.mexc.auth import MexcSigner
from arb.exchanges.mexc.trading import (
    FuturesTradingUnavailable,
    MexcSpotTrading,
    average_price,
    futures_rest_venue,
    spot_rest_venue,
)
from arb.exchanges.models import OrderRequest, OrderRequestError, OrderStatus, OrderType, TimeInForce
from arb.exchanges.rest import RateLimiter
from arb.instruments import Instrument, InstrumentCatalog
from arb.secrets import ApiCredentials, Secret
from arb.types import ExchangeName, OrderSide

KEY, SECRET = "mx0aBYs33eIilxBWC5", "45d0b3c26f2644f19bfb98b07741b2f5"  # the docs' example credentials
NOW_MS = 1644489390087


def _spot(symbol: str, base: str, quote: str, tick: str, lot: str, pd: int, sd: int) -> Instrument:
    return Instrument(
        exchange=ExchangeName.MEXC, symbol=f"{base}/{quote}", venue_symbol=symbol, base=base, quote=quote,
        tick_size=Decimal(tick), lot_size=Decimal(lot), min_size=Decimal(lot), min_notional=Decimal(1),
        taker_fee=Decimal("0.0005"), maker_fee=Decimal(0), price_decimals=pd, size_decimals=sd,
    )


CATALOG = InstrumentCatalog(
    ExchangeName.MEXC,
    [
        _spot("BTCUSDT", "BTC", "USDT", "0.01", "0.000001", 2, 6),
        _spot("ATLASUSDT", "ATLAS", "USDT", "0.000001", "0.01", 6, 2),
        _spot("ADAUSDT", "ADA", "USDT", "0.0001", "0.01", 4, 2),
        _spot("LTCUSDT", "LTC", "USDT", "0.01", "0.001", 2, 3),
    ],
)


def trading(now_ms: int = NOW_MS) -> MexcSpotTrading:
    return MexcSpotTrading(MexcSigner(ApiCredentials(Secret(KEY), Secret(SECRET))), CATALOG, clock_ms=lambda: now_ms)


def order(**changes: Any) -> OrderRequest:
    fields: dict[str, Any] = dict(
        symbol="BTC/USDT", side=OrderSide.BUY, type=OrderType.LIMIT, quantity=Decimal("0.5"),
        price=Decimal("100.25"), client_order_id="arb-1",
    )
    fields.update(changes)
    return OrderRequest(**fields)


def pairs(query: str) -> list[tuple[str, str]]:
    return parse_qsl(query, keep_blank_values=True, strict_parsing=True)


@pytest.fixture(scope="module")
def ccxt(shared_data: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((shared_data / "examples" / "ccxt_static_fixtures_extract.json").read_bytes())
    return data


# --- bad inputs ----------------------------------------------------------------------


def test_constructor_refuses_other_markets_and_bad_windows() -> None:
    signer = MexcSigner(ApiCredentials(Secret(KEY), Secret(SECRET)))
    with pytest.raises(ValueError, match="catalog is of gateio"):
        MexcSpotTrading(signer, InstrumentCatalog(ExchangeName.GATEIO, []))
    with pytest.raises(ValueError, match="recv_window_ms=60001"):
        MexcSpotTrading(signer, CATALOG, recv_window_ms=60001)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"quantity": Decimal("0.0000005")}, r"quantity|size 5E-7 is not a multiple of lot_size"),
        ({"price": Decimal("100.255")}, "price 100.255 is not a multiple of tick_size"),
        ({"client_order_id": "has space"}, r"client order id 'has space' must be 1\.\.32"),
        ({"client_order_id": "x" * 33}, "must be 1..32"),
        ({"client_order_id": "ordre-é"}, "must be 1..32"),
        ({"time_in_force": TimeInForce.FOK, "type": OrderType.MARKET, "price": None}, "FILL_OR_KILL limit"),
        ({"reduce_only": True}, "reduce_only applies to futures"),
        ({"symbol": "DOGE/USDT"}, "no instrument 'DOGE/USDT'"),
    ],
)
def test_place_order_refuses_what_mexc_cannot_take(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(OrderRequestError, match=message):
        trading().place_order_request(order(**changes))


def test_order_references_and_quote_amounts_are_checked() -> None:
    t = trading()
    with pytest.raises(OrderRequestError, match="exactly one of order_id and client_order_id"):
        t.cancel_order_request("BTC/USDT")
    with pytest.raises(OrderRequestError, match="exactly one"):
        t.query_order_request("BTC/USDT", order_id="1", client_order_id="a")
    with pytest.raises(OrderRequestError, match="order id '1&x=2'"):
        t.query_order_request("BTC/USDT", order_id="1&x=2")
    with pytest.raises(OrderRequestError, match="quote_amount=Decimal\\('-1'\\)"):
        t.market_buy_by_quote_request("BTC/USDT", Decimal(-1), "q1")
    with pytest.raises(ValueError, match="limit=0 outside 1..1000"):
        t.my_trades_request("BTC/USDT", limit=0)


def test_futures_trading_is_refused_clearly() -> None:
    t = trading()
    with pytest.raises(FuturesTradingUnavailable) as info:
        t.place_order_request(order(symbol="BTC/USDT:USDT"))
    error = info.value
    assert isinstance(error, OrderRejectedError) and isinstance(error, ArbitrageEngineError)
    assert error.venue == "mexc_futures" and error.category == ErrorCategory.ORDER_REJECTED
    assert "Under maintenance" in str(error) and "market data only" in str(error) and "1002" in str(error)
    for call in (
        lambda: t.cancel_order_request("BTC/USDT:USDT", order_id="1"),
        lambda: t.market_buy_by_quote_request("BTC/USDT:USDT", Decimal(5), "q"),
        lambda: t.open_orders_request("ETH/USDT:USDT"),
    ):
        with pytest.raises(FuturesTradingUnavailable, match="refuses ordinary accounts"):
            call()


def test_replies_that_do_not_match_raise_exchange_errors() -> None:
    t = trading()
    with pytest.raises(ExchangeError, match="reply does not match") as info:
        t.parse_new_order(b'{"symbol":"BTCUSDT"}', "a")
    assert info.value.category == ErrorCategory.OUTCOME_UNKNOWN  # the order may exist
    with pytest.raises(ExchangeError, match="/api/v3/account: reply does not match"):
        t.parse_balances(b"[]")  # not an object
    body = {"symbol": "XYZUSDT", "orderId": "1", "price": "1", "origQty": "1", "executedQty": "0",
            "cummulativeQuoteQty": "0", "status": "NEW", "type": "LIMIT", "side": "BUY"}
    with pytest.raises(ExchangeError, match="unknown symbol"):
        t.parse_order(msgspec.json.encode(body))
    with pytest.raises(ExchangeError, match="unknown status 'HALF'"):
        t.parse_order(msgspec.json.encode({**body, "symbol": "BTCUSDT", "status": "HALF"}))


# --- requests ------------------------------------------------------------------------


def test_signed_request_layout_and_signature() -> None:
    request = trading().place_order_request(order(client_order_id="Ab_9-z"))
    assert (request.method, request.path, request.body) == ("POST", "/api/v3/order", b"")
    assert request.headers[constants.API_KEY_HEADER] == KEY
    assert request.limits == (("/api/v3/order", 1), ("uid_weight", 2))
    params = pairs(request.query)
    assert [k for k, _ in params] == [
        "symbol", "side", "type", "quantity", "price", "newClientOrderId", "recvWindow", "timestamp", "signature"
    ]
    assert dict(params)["timestamp"] == str(NOW_MS)
    unsigned, _, signature = request.query.rpartition("&signature=")
    assert signature == MexcSigner(ApiCredentials(Secret(KEY), Secret(SECRET))).sign(unsigned)


def test_docs_known_answer_through_the_builder(shared_data: Path) -> None:
    vectors = json.loads((shared_data / "vectors" / "signing_known_answers.json").read_bytes())["mexc_spot_v3"]
    catalog = InstrumentCatalog(ExchangeName.MEXC, [_spot("BTCUSDT", "BTC", "USDT", "1", "1", 0, 0)])
    t = MexcSpotTrading(MexcSigner(ApiCredentials(Secret(KEY), Secret(SECRET))), catalog, clock_ms=lambda: NOW_MS)
    request = t._signed(  # the docs' example carries no client id, so the shared helper is used directly
        "POST", constants.ORDER_PATH,
        [("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "LIMIT"), ("quantity", "1"), ("price", "11")],
    )
    assert request.query == f"{vectors[0]['message']}&signature={vectors[0]['expected']}"


@pytest.mark.parametrize(
    ("name", "build"),
    [
        ("limit_buy", lambda t: t.place_order_request(order(
            symbol="ATLAS/USDT", quantity=Decimal(1000), price=Decimal("0.005"), client_order_id="c1"))),
        ("market_buy_qty", lambda t: t.place_order_request(order(
            symbol="ATLAS/USDT", type=OrderType.MARKET, price=None, time_in_force=TimeInForce.IOC,
            quantity=Decimal(1), client_order_id="c1"))),
        ("market_buy_quote", lambda t: t.market_buy_by_quote_request("ATLAS/USDT", Decimal(8), "c1")),
        ("ioc", lambda t: t.place_order_request(order(
            symbol="ADA/USDT", quantity=Decimal("0.5"), price=Decimal(2), time_in_force=TimeInForce.IOC,
            client_order_id="c1"))),
        ("fok", lambda t: t.place_order_request(order(
            symbol="ADA/USDT", quantity=Decimal("0.5"), price=Decimal(2), time_in_force=TimeInForce.FOK,
            client_order_id="c1"))),
        ("query_order", lambda t: t.query_order_request("LTC/USDT", order_id="129402018493145088")),
    ],
)
def test_ccxt_signed_urls_parameter_order_is_reproduced(ccxt: dict[str, Any], name: str, build: Any) -> None:
    """Business parameters in ccxt's order with the same values; then the window and the signature last.

    ccxt writes ``timestamp`` before ``recvWindow``; MexcSigner writes them in the docs' order
    (``recvWindow&timestamp``). The venue signs whatever order is sent, so both are accepted.
    """
    url = urlsplit(ccxt["mexc_spot_request_urls"][name])
    expected = [(k, v) for k, v in pairs(url.query) if k not in ("timestamp", "recvWindow", "signature")]
    request = build(trading())
    assert request.path == url.path
    got = pairs(request.query)
    business = [(k, v) for k, v in got if k not in ("timestamp", "recvWindow", "signature", "newClientOrderId")]
    assert business == expected
    assert [k for k, _ in got[-3:]] == ["recvWindow", "timestamp", "signature"]


def test_every_builder_signs_and_spends_its_budget() -> None:
    t = trading()
    built = {
        "cancel by id": t.cancel_order_request("BTC/USDT", order_id="42"),
        "cancel by client id": t.cancel_order_request("BTC/USDT", client_order_id="arb-1"),
        "query by client id": t.query_order_request("BTC/USDT", client_order_id="arb-1"),
        "open orders": t.open_orders_request("BTC/USDT"),
        "account": t.account_request(),
        "my trades": t.my_trades_request("BTC/USDT", order_id="42", limit=100),
    }
    assert built["cancel by id"].method == "DELETE"
    assert pairs(built["cancel by client id"].query)[:2] == [("symbol", "BTCUSDT"), ("origClientOrderId", "arb-1")]
    assert pairs(built["account"].query)[0] == ("recvWindow", "5000")
    assert pairs(built["my trades"].query)[:3] == [("symbol", "BTCUSDT"), ("orderId", "42"), ("limit", "100")]
    limiter = RateLimiter("mexc", spot_rest_venue().rate_limits)
    for name, request in built.items():
        assert request.query.rsplit("&", 1)[1].startswith("signature="), name
        limiter.check(request.limits)  # every limit id is one the venue definition knows


def test_rest_venue_definitions() -> None:
    spot = spot_rest_venue("http://127.0.0.1:1")
    assert spot.base_url == "http://127.0.0.1:1" and spot.name == "mexc"
    assert spot.error_codes[700003] is ErrorCategory.TIMESTAMP
    assert {418, 429, 403} <= set(spot.http_statuses)
    ids = {limit.limit_id for limit in spot.rate_limits}
    assert {"/api/v3/depth", "/api/v3/order", "ip_weight", "uid_weight"} <= ids
    futures = futures_rest_venue()
    assert futures.base_url == constants.FUTURES_REST_URL
    assert futures.error_codes[1002] is ErrorCategory.ORDER_REJECTED
    RateLimiter("mexc_futures", futures.rate_limits).check((("/api/v1/contract/depth/{symbol}", 1),))


# --- replies -------------------------------------------------------------------------


def test_parse_documented_new_order_reply(shared_data: Path) -> None:
    docs = json.loads((shared_data / "examples" / "mexc_docs_examples.json").read_bytes())
    catalog = InstrumentCatalog(ExchangeName.MEXC, [_spot("MXUSDT", "MX", "USDT", "0.0001", "0.01", 4, 2)])
    t = MexcSpotTrading(MexcSigner(ApiCredentials(Secret(KEY), Secret(SECRET))), catalog)
    state = t.parse_new_order(json.dumps(docs["spot_new_order_response_POST_api_v3_order"]).encode(), "mine")
    assert state.symbol == "MX/USDT" and state.order_id == "06a480e69e604477bfb48dddd5f0b750"
    assert (state.status, state.side, state.type) == (OrderStatus.NEW, OrderSide.BUY, OrderType.LIMIT)
    assert (state.quantity, state.price, state.client_order_id) == (Decimal(50), Decimal("0.1"), "mine")
    assert state.updated_at_ms == 1666676533741


def test_parse_recorded_order_and_trades(ccxt: dict[str, Any]) -> None:
    t = trading()
    order_state = t.parse_order(json.dumps(ccxt["mexc_spot_allOrders_response"][0]).encode())
    assert order_state.symbol == "ATLAS/USDT" and order_state.status is OrderStatus.FILLED
    assert order_state.type is OrderType.MARKET and order_state.price is None
    assert order_state.filled_quantity == Decimal(1220)
    assert order_state.average_price == Decimal("0.004542")  # 5.54124 / 1220, exactly
    assert order_state.updated_at_ms == 1707671871000 and order_state.client_order_id is None
    listed = t.parse_open_orders(json.dumps(ccxt["mexc_spot_allOrders_response"]).encode())
    assert listed == [order_state]
    (fill,) = t.parse_my_trades(json.dumps(ccxt["mexc_spot_myTrades_response"]).encode())
    assert (fill.symbol, fill.side, fill.price, fill.quantity) == ("ATLAS/USDT", OrderSide.SELL, Decimal("0.004542"), 1220)
    assert (fill.fee, fill.fee_asset, fill.is_maker, fill.timestamp_ms) == (0, "USDT", False, 1707671871000)
    assert fill.order_id == "C02__385413065019117569043"


@pytest.mark.parametrize(
    ("status", "executed", "expected"),
    [
        ("NEW", "0", OrderStatus.NEW),
        ("PARTIALLY_FILLED", "1", OrderStatus.PARTIALLY_FILLED),
        ("FILLED", "2", OrderStatus.FILLED),
        ("CANCELED", "0", OrderStatus.CANCELED),
        ("PARTIALLY_CANCELED", "1", OrderStatus.CANCELED),
        ("PENDING_CANCEL", "0", OrderStatus.NEW),
        ("PENDING_CANCEL", "1", OrderStatus.PARTIALLY_FILLED),
        ("REJECTED", "0", OrderStatus.REJECTED),
        ("EXPIRED", "0", OrderStatus.EXPIRED),
    ],
)
def test_status_mapping(status: str, executed: str, expected: OrderStatus) -> None:
    body = {"symbol": "BTCUSDT", "orderId": 7, "price": "10.00", "origQty": "2", "executedQty": executed,
            "cummulativeQuoteQty": str(Decimal(executed) * 10), "status": status, "type": "LIMIT", "side": "SELL",
            "time": 5, "updateTime": None}
    state = trading().parse_order(msgspec.json.encode(body))
    assert state.status is expected and state.order_id == "7" and state.updated_at_ms == 5
    assert state.average_price == (Decimal(10) if executed != "0" else None)


def test_average_price_is_exact_when_it_terminates() -> None:
    assert average_price(Decimal("30.3"), Decimal("0.3")) == Decimal(101)
    assert average_price(Decimal(0), Decimal(0)) is None
    third = average_price(Decimal(1), Decimal(3))
    assert third is not None and third.as_tuple().digits == (3,) * 50  # 50 significant digits


def test_parse_balances() -> None:
    body = b'{"canTrade":true,"balances":[{"asset":"USDT","free":"10.5","locked":"0.25"}],"permissions":["SPOT"]}'
    balances = trading().parse_balances(body)
    assert balances["USDT"].total == Decimal("10.75")
    # An asset whose amount is not a number is left out; the others are read.
    odd = b'{"balances":[{"asset":"OLD","free":"NaN","locked":"0"},{"asset":"USDT","free":"1","locked":"0"}]}'
    assert list(trading().parse_balances(odd)) == ["USDT"]


def test_only_an_explicit_cantrade_false_refuses_the_account() -> None:
    """The balance read ignored ``canTrade``: an account that may not trade passed the live start's
    key check. An answer without the field, or with an empty ``permissions`` list, says nothing."""
    refused = MexcSpotTrading.parse_trading_refusal(b'{"canTrade":false,"balances":[],"permissions":["SPOT"]}')
    assert refused is not None and "canTrade=false" in refused and "MEXC" in refused
    for body in (b'{"canTrade":true,"balances":[]}', b'{"balances":[],"permissions":[]}'):
        assert MexcSpotTrading.parse_trading_refusal(body) is None


def test_a_cancel_reply_is_read_as_the_cancelled_orders_not_the_cancels() -> None:
    """``DELETE /api/v3/order`` names the cancelled order in ``origClientOrderId``; its ``clientOrderId``
    is the cancel request's own id (the documented reply's ``cancelMyOrder1``)."""
    body = {"symbol": "BTCUSDT", "orderId": 7, "price": "10.00", "origQty": "2", "executedQty": "1",
            "cummulativeQuoteQty": "10", "status": "CANCELED", "type": "LIMIT", "side": "BUY",
            "origClientOrderId": "arb-1", "clientOrderId": "cancelMyOrder1"}
    state = trading().parse_order(msgspec.json.encode(body))
    assert state.client_order_id == "arb-1" and state.filled_quantity == 1
    query = {**body, "clientOrderId": "arb-1", "origClientOrderId": None}  # an order query's answer
    assert trading().parse_order(msgspec.json.encode(query)).client_order_id == "arb-1"


def test_a_request_signed_again_carries_the_time_of_signing_and_keeps_an_order_s_deadline() -> None:
    """What the REST client sends after a rate-limit wait (``RestRequest.resign``)."""
    now = [NOW_MS]
    t = MexcSpotTrading(MexcSigner(ApiCredentials(Secret(KEY), Secret(SECRET))), CATALOG, clock_ms=lambda: now[0])
    order = OrderRequest(symbol="BTC/USDT", side=OrderSide.BUY, type=OrderType.LIMIT, quantity=Decimal("0.001"),
                         price=Decimal("60000"), time_in_force=TimeInForce.IOC, client_order_id="opp1-b")
    request = t.place_order_request(order, expires_at_ms=NOW_MS + 10_000)
    query = t.query_order_request("BTC/USDT", client_order_id="opp1-b")
    now[0] += 7_000  # a 429's Retry-After later
    assert request.resign is not None and query.resign is not None
    again, asked = dict(pairs(request.resign().query)), dict(pairs(query.resign().query))
    assert (again["timestamp"], again["recvWindow"]) == (str(NOW_MS + 7_000), "3000")  # the deadline kept
    assert asked["timestamp"] == str(NOW_MS + 7_000) and asked["signature"] != dict(pairs(query.query))["signature"]
    now[0] = NOW_MS + 10_000  # the deadline: signed again with a 1 ms window, MEXC could still take it
    with pytest.raises(ExchangeError, match="deadline passed while it waited for its budget; not sent") as info:
        request.resign()
    assert info.value.category == ErrorCategory.NOT_SENT
