"""arb/exchanges/gateio/trading.py: request building (bad inputs first), recorded bodies, response parsing."""

from __future__ import annotations

import json
from decimal import Decimal as D
from pathlib import Path

import pytest
from gate_rest import CREDENTIALS, GateVenue
from sim.simdata import perp, spot

from arb.errors import ExchangeError
from arb.exchanges.errors import ErrorCategory
from arb.exchanges.gateio import constants
from arb.exchanges.gateio.auth import GateioSigner
from arb.exchanges.gateio.trading import GateioFuturesTrading, GateioSpotTrading, from_text, rest_venue, to_text
from arb.exchanges.models import OrderRequest, OrderRequestError, OrderStatus, OrderType, TimeInForce
from arb.exchanges.rest import RateLimiter, market_limit
from arb.instruments import InstrumentCatalog, InstrumentError
from arb.orders import OrderOutcome
from arb.types import ExchangeName, OrderSide

NOW_S = 1_700_000_000
LTC = dict(symbol="LTC/USDT", venue_symbol="LTC_USDT", base="LTC")


def spot_client() -> GateioSpotTrading:
    catalog = InstrumentCatalog(ExchangeName.GATEIO, [spot(), spot(**LTC)])
    return GateioSpotTrading(GateioSigner(CREDENTIALS), catalog, clock=lambda: NOW_S + 0.9)


def futures_client() -> GateioFuturesTrading:
    xrp = dict(symbol="XRP/USDT:USDT", venue_symbol="XRP_USDT", base="XRP")
    catalog = InstrumentCatalog(
        ExchangeName.GATEIO_FUTURES, [perp(), perp(**{**LTC, "symbol": "LTC/USDT:USDT"}), perp(**xrp)]
    )
    return GateioFuturesTrading(GateioSigner(CREDENTIALS), catalog, clock=lambda: NOW_S)


def req(symbol: str, side: OrderSide, quantity: str, price: str | None, tif: TimeInForce = TimeInForce.GTC,
        cid: str = "c1", reduce_only: bool = False) -> OrderRequest:
    return OrderRequest(symbol=symbol, side=side, type=OrderType.LIMIT if price else OrderType.MARKET,
                        quantity=D(quantity), price=D(price) if price else None, time_in_force=tif,
                        client_order_id=cid, reduce_only=reduce_only)


# --- bad inputs ---------------------------------------------------------------------------


@pytest.mark.parametrize("cid", ["has space", "x" * 29, "é", "a/b", "quote\"d"])
def test_client_ids_gate_would_refuse_are_refused_before_sending(cid: str) -> None:
    with pytest.raises(OrderRequestError, match="client_order_id"):
        spot_client().place_order(req("BTC/USDT", OrderSide.BUY, "0.1", "100", cid=cid))


def test_text_mapping_is_the_identity_behind_the_prefix() -> None:
    assert to_text("x" * 28) == "t-" + "x" * 28
    assert from_text(to_text("a.b-c_9")) == "a.b-c_9"
    assert from_text("api") is None and from_text("t-") is None and from_text("") is None


def test_values_off_the_order_grid_are_refused() -> None:
    client = spot_client()
    with pytest.raises(OrderRequestError, match="tick_size"):
        client.place_order(req("BTC/USDT", OrderSide.BUY, "0.1", "100.001"))
    with pytest.raises(OrderRequestError, match="lot_size"):
        client.place_order(req("BTC/USDT", OrderSide.BUY, "0.00001", "100"))
    with pytest.raises(OrderRequestError, match="lot_size"):
        futures_client().place_order(req("BTC/USDT:USDT", OrderSide.BUY, "1.5", "100"))
    with pytest.raises(InstrumentError, match="no instrument"):
        client.place_order(req("ETH/USDT", OrderSide.BUY, "0.1", "100"))


def test_market_buy_needs_a_quote_amount_and_only_it_takes_one() -> None:
    client = spot_client()
    market_buy = req("BTC/USDT", OrderSide.BUY, "0.1", None, TimeInForce.IOC)
    for bad in (None, D(0), D("-1"), D("NaN")):
        with pytest.raises(OrderRequestError, match="quote_amount"):
            client.place_order(market_buy, quote_amount=bad)
    with pytest.raises(OrderRequestError, match="market buys only"):
        client.place_order(req("BTC/USDT", OrderSide.SELL, "0.1", None, TimeInForce.IOC), quote_amount=D(5))
    with pytest.raises(OrderRequestError, match="futures only"):
        client.place_order(req("BTC/USDT", OrderSide.SELL, "0.1", None, TimeInForce.IOC, reduce_only=True))


def test_order_references_need_exactly_one_valid_id() -> None:
    client, fclient = spot_client(), futures_client()
    with pytest.raises(OrderRequestError, match="exactly one"):
        client.cancel_order("BTC/USDT")
    with pytest.raises(OrderRequestError, match="exactly one"):
        fclient.query_order(order_id="1", client_order_id="c")
    with pytest.raises(OrderRequestError, match="not a Gate order id"):
        client.query_order("BTC/USDT", order_id="1/../2")


def test_unreadable_bodies_raise_exchange_errors() -> None:
    with pytest.raises(ExchangeError, match="spot order"):
        spot_client().parse_order(b'{"id": 1}')
    with pytest.raises(ExchangeError, match="futures positions"):
        futures_client().parse_positions(b"{}")


# --- requests -----------------------------------------------------------------------------


def test_requests_are_signed_over_the_full_path_with_whole_second_timestamps() -> None:
    request = spot_client().cancel_order("BTC/USDT", client_order_id="abc")
    assert (request.method, request.path, request.query) == ("DELETE", "/spot/orders/t-abc", "currency_pair=BTC_USDT")
    assert request.headers["Timestamp"] == str(NOW_S)
    expected = GateioSigner(CREDENTIALS).sign_rest("DELETE", "/api/v4/spot/orders/t-abc", request.query, b"", NOW_S)
    assert request.headers["SIGN"] == expected and request.headers["KEY"] == "sim-key"
    assert request.limits == ((constants.SPOT_ORDER_CANCEL_RATE_LIMIT, 1),)


def test_an_order_signed_again_past_its_deadline_is_not_sent() -> None:
    """What the REST client sends after a rate-limit wait (``RestRequest.resign``): stamped with the
    time of signing, the order's ``x-gate-exptime`` kept; once that has passed Gate would refuse it
    for its timestamp, so it is not sent."""
    now = [NOW_S + 0.5]
    t = GateioSpotTrading(GateioSigner(CREDENTIALS), InstrumentCatalog(ExchangeName.GATEIO, [spot()]),
                          clock=lambda: now[0])
    expires_at_ms = (NOW_S + 5) * 1000
    order = req("BTC/USDT", OrderSide.BUY, "0.001", "60000", TimeInForce.IOC)
    request = t.place_order(order, expires_at_ms=expires_at_ms)
    now[0] = NOW_S + 3.5  # a 429's Retry-After later
    assert request.resign is not None
    again = request.resign()
    assert again.headers["Timestamp"] == str(NOW_S + 3) and again.headers[constants.EXPIRY_HEADER] == str(expires_at_ms)
    now[0] = NOW_S + 5
    with pytest.raises(ExchangeError, match="deadline passed while it waited for its budget; not sent") as late:
        request.resign()
    assert late.value.category == ErrorCategory.NOT_SENT


def test_every_request_spends_a_limit_the_venue_declares() -> None:
    limiter = RateLimiter("gateio", rest_venue().rate_limits)
    client, fclient = spot_client(), futures_client()
    requests = [
        client.place_order(req("BTC/USDT", OrderSide.BUY, "0.1", "100")), client.cancel_order("BTC/USDT", order_id="1"),
        client.query_order("BTC/USDT", order_id="1"), client.open_orders(), client.open_orders("BTC/USDT"),
        client.balances(), client.finished_orders("BTC/USDT", 0),
        fclient.place_order(req("BTC/USDT:USDT", OrderSide.BUY, "1", "100")),
        fclient.cancel_order(order_id="1"), fclient.query_order(order_id="1"), fclient.open_orders(),
        fclient.account(), fclient.positions(), fclient.funding_payments(0),
    ]
    for request in requests:
        limiter.check(request.limits)
    assert rest_venue().base_url == constants.REST_URL
    # Spot placement spends its pair's own budget, as Gate counts it; futures placement the account's.
    assert requests[0].limits == ((market_limit(constants.SPOT_ORDER_PLACE_RATE_LIMIT, "BTC/USDT"), 1),)
    assert requests[7].limits == ((constants.FUTURES_ORDER_PLACE_RATE_LIMIT, 1),)


def test_funding_payments_are_read_from_the_account_books_fund_entries() -> None:
    client = futures_client()
    request = client.funding_payments(1_700_000_123_456, offset=200)
    assert (request.method, request.path) == ("GET", constants.FUTURES_ACCOUNT_BOOK_PATH)
    assert request.query == "from=1700000123&limit=100&offset=200&type=fund"
    assert request.limits == ((constants.FUTURES_ACCOUNT_BOOK_RATE_LIMIT, 1),)
    body = json.dumps([
        {"time": 1700003600.123, "change": "0.0123", "balance": "100.0123", "type": "fund", "text": "BTC_USDT:1",
         "contract": "BTC_USDT", "trade_id": "", "id": "77"},
        {"time": 1700003600, "change": "-0.5", "balance": "99.5", "type": "fund", "text": "", "contract": "LTC_USDT"},
        {"time": 1700003601, "change": "-0.01", "balance": "99.49", "type": "fee", "contract": "BTC_USDT", "id": "78"},
        {"time": 1700003602, "change": "1", "balance": "100.49", "type": "fund", "contract": "DOGE_USDT", "id": "79"},
    ]).encode()
    payments, more = client.parse_funding_payments(body)
    assert more == 0  # not a full page
    assert [(p.payment_id, p.symbol, p.amount, p.time_ms) for p in payments] == [
        ("77", "BTC/USDT:USDT", D("0.0123"), 1_700_003_600_123),
        ("1700003600:LTC_USDT:-0.5", "LTC/USDT:USDT", D("-0.5"), 1_700_003_600_000),  # no id: named by its fields
    ]  # the fee entry and the contract the catalog does not list are left out
    full = json.dumps([{"time": 1, "change": "0", "type": "pnl"}] * constants.ACCOUNT_BOOK_PAGE).encode()
    assert client.parse_funding_payments(full) == ([], constants.ACCOUNT_BOOK_PAGE)
    with pytest.raises(ExchangeError, match="futures account book"):
        client.parse_funding_payments(b'{"label": "oops"}')


@pytest.mark.parametrize("change", ["NaN", "Infinity", "sNaN"])
def test_a_funding_payment_that_is_no_number_fails_the_read(change: str) -> None:
    """Counted in the daily PnL, a NaN made every later risk check raise, and the journal kept it
    for every restart: the read fails instead, naming the entry, and is made again."""
    body = json.dumps([{"time": 1700003600, "change": change, "type": "fund", "contract": "BTC_USDT", "id": "77"}])
    with pytest.raises(ValueError, match="funding payment 77 in BTC/USDT:USDT: amount=.* is not a number"):
        futures_client().parse_funding_payments(body.encode())


def test_a_position_that_is_no_number_is_unreadable() -> None:
    from arb.exchanges.models import Position

    with pytest.raises(ValueError, match="position in BTC/USDT:USDT: an amount is not a number"):
        Position(symbol="BTC/USDT:USDT", size=D("NaN"), entry_price=D("60000"))
    with pytest.raises(ValueError, match="not a number"):
        Position(symbol="BTC/USDT:USDT", size=D(1), entry_price=D("60000"), liquidation_price=D("Infinity"))


def recorded_bodies(shared_data: Path) -> dict[str, dict[str, object]]:
    doc = json.loads((shared_data / "examples" / "ccxt_static_fixtures_extract.json").read_text())
    return {k: v for k, v in doc["gate_request_bodies"].items() if not k.startswith("_")}


def test_recorded_request_bodies_are_reproduced(shared_data: Path) -> None:
    client, fclient = spot_client(), futures_client()
    built = {
        "spot_limit_buy": client.place_order(req("LTC/USDT", OrderSide.BUY, "0.1", "50")),
        "spot_market_sell": client.place_order(req("BTC/USDT", OrderSide.SELL, "0.0001", None, TimeInForce.IOC)),
        "spot_market_buy_cost": client.place_order(req("BTC/USDT", OrderSide.BUY, "0.0001", None, TimeInForce.IOC),
                                                   quote_amount=D("5")),
        "futures_limit_buy": fclient.place_order(req("LTC/USDT:USDT", OrderSide.BUY, "1", "50")),
        "futures_limit_sell": fclient.place_order(req("LTC/USDT:USDT", OrderSide.SELL, "1", "100")),
        "futures_market_buy": fclient.place_order(req("XRP/USDT:USDT", OrderSide.BUY, "1", None, TimeInForce.IOC)),
    }
    recorded = recorded_bodies(shared_data)
    assert set(built) == set(recorded)
    for name, request in built.items():
        sent = json.loads(request.body)
        assert sent.pop("text") == "t-c1"  # our client id rides along; the recording has none
        # Same keys in the same order; numbers written on the order grid ("0.1000" for "0.1") are the same numbers.
        assert list(sent) == list(recorded[name]), name
        for key, value in recorded[name].items():
            same = D(value) == D(sent[key]) if key in ("amount", "price") else value == sent[key]
            assert same and type(value) is type(sent[key]), (name, key, sent[key], value)


def test_futures_bodies_sign_sizes_and_flag_reduce_only() -> None:
    body = json.loads(futures_client().place_order(
        req("BTC/USDT:USDT", OrderSide.SELL, "3", None, TimeInForce.FOK, reduce_only=True)).body)
    assert body == {"contract": "BTC_USDT", "size": -3, "price": "0", "tif": "fok", "text": "t-c1",
                    "reduce_only": True}
    post_only = json.loads(spot_client().place_order(
        req("BTC/USDT", OrderSide.BUY, "0.1", "100.5", TimeInForce.POST_ONLY)).body)
    assert (post_only["time_in_force"], post_only["price"], post_only["amount"]) == ("poc", "100.50", "0.1000")


def test_open_orders_query_names_the_pair_and_status() -> None:
    assert spot_client().open_orders("BTC/USDT").query == "currency_pair=BTC_USDT&status=open"
    assert spot_client().open_orders().path == constants.OPEN_ORDERS_PATH
    finished = spot_client().finished_orders("BTC/USDT", 1_700_000_000)
    assert (finished.method, finished.path) == ("GET", constants.ORDERS_PATH)
    assert finished.query == "currency_pair=BTC_USDT&status=finished&page=1&limit=100&from=1700000000"
    window = spot_client().finished_orders("BTC/USDT", 1_700_000_000, 1_700_000_200, 3)
    assert window.query == "currency_pair=BTC_USDT&status=finished&page=3&limit=100&from=1700000000&to=1700000200"
    assert futures_client().open_orders("BTC/USDT:USDT").query == "contract=BTC_USDT&status=open"


# --- parsing ------------------------------------------------------------------------------


def test_documented_spot_order_parses(shared_data: Path) -> None:
    docs = json.loads((shared_data / "examples" / "gate_docs_ws_examples.json").read_text())
    body = json.dumps(docs["spot_ws_api_order_place_result"]["data"]["result"]).encode()
    gt = dict(symbol="GT/USDT", venue_symbol="GT_USDT", base="GT")
    client = GateioSpotTrading(GateioSigner(CREDENTIALS), InstrumentCatalog(ExchangeName.GATEIO, [spot(**gt)]))
    state = client.parse_order(body)
    assert (state.order_id, state.client_order_id, state.status, state.quantity, state.price) == (
        "1700664330", "my-custom-id", OrderStatus.NEW, D(1), D(1))
    assert (state.fee_asset, state.updated_at_ms, state.average_price) == ("GT", 1681986204832, None)


def test_recorded_futures_order_parses(shared_data: Path) -> None:
    doc = json.loads((shared_data / "examples" / "ccxt_static_fixtures_extract.json").read_text())
    recorded = doc["gate_futures_market_order_response"]
    body = json.dumps({**recorded, "contract": "BTC_USDT"}).encode()
    state = futures_client().parse_order(body)
    assert (state.order_id, state.client_order_id, state.type, state.side, state.status) == (
        "299207900263708423", None, OrderType.MARKET, OrderSide.BUY, OrderStatus.FILLED)
    assert (state.quantity, state.filled_quantity, state.average_price, state.updated_at_ms) == (
        D(100), D(100), D("0.005416"), 1768397866663)


@pytest.mark.parametrize(("tif", "rates", "fee"), [
    ("ioc", {"tkfr": "0.0002", "mkfr": "-0.0001"}, D("0.6")),  # the order's own taker rate, not the tier's
    ("poc", {"tkfr": "0.0002", "mkfr": "-0.0001"}, D("-0.3")),  # a post-only order only makes: a rebate
    ("ioc", {}, D("1.5")),  # no rate in the answer: the instrument's (the account tier's) taker rate
])
def test_a_futures_fill_is_charged_the_rate_its_order_answer_reports(
    shared_data: Path, tif: str, rates: dict[str, str], fee: D
) -> None:
    """Gate.io's futures order answer carries no fee, only its rates ``tkfr``/``mkfr``; a contract on
    a promotion rate was charged the account's tier instead, and the PnL drifted from the venue's."""
    doc = json.loads((shared_data / "examples" / "ccxt_static_fixtures_extract.json").read_text())
    recorded = {k: v for k, v in doc["gate_futures_market_order_response"].items() if k not in ("tkfr", "mkfr")}
    body = json.dumps({**recorded, "contract": "BTC_USDT", "price": "30000", "fill_price": "30000", "tif": tif,
                       "size": "1000", **rates}).encode()
    client = futures_client()
    state = client.parse_order(body)
    instrument = client.instruments.get("BTC/USDT:USDT")  # tier taker 0.0005; 1000 contracts = 0.1 BTC = 3000 USDT
    request = req("BTC/USDT:USDT", OrderSide.BUY, "1000", "30000", TimeInForce.IOC)
    outcome = OrderOutcome(exchange=instrument.exchange, instrument=instrument, request=request, leg="x", state=state)
    assert outcome.fee == (fee, "USDT")
    pushed = json.dumps({**json.loads(body), "tkfr": 0.0002, "mkfr": -0.0001}).encode()  # numbers, as pushed
    assert client.parse_order(pushed).fee_rate == (D("-0.0001") if tif == "poc" else D("0.0002"))


@pytest.mark.parametrize(("status", "finish_as", "left", "expected"), [
    ("open", "open", "1", OrderStatus.NEW),
    ("open", "open", "0.4", OrderStatus.PARTIALLY_FILLED),
    ("closed", "filled", "0", OrderStatus.FILLED),
    ("cancelled", "cancelled", "0.4", OrderStatus.CANCELED),
    ("cancelled", "ioc", "0.4", OrderStatus.EXPIRED),
    ("cancelled", "poc", "1", OrderStatus.REJECTED),
    ("cancelled", "stp", "1", OrderStatus.CANCELED),
    ("closed", "something_new", "0", OrderStatus.FILLED),
    ("cancelled", "something_new", "1", OrderStatus.CANCELED),
])
def test_spot_status_mapping(status: str, finish_as: str, left: str, expected: OrderStatus) -> None:
    body = json.dumps({"id": "1", "currency_pair": "BTC_USDT", "type": "limit", "side": "buy", "amount": "1",
                       "price": "10", "status": status, "finish_as": finish_as, "left": left}).encode()
    state = spot_client().parse_order(body)
    assert state.status is expected and state.filled_quantity == 1 - D(left)


@pytest.mark.parametrize(("status", "finish_as", "left", "expected"), [
    ("open", "", "-5", OrderStatus.NEW),
    ("open", "", "-2", OrderStatus.PARTIALLY_FILLED),
    ("finished", "filled", "0", OrderStatus.FILLED),
    ("finished", "cancelled", "-2", OrderStatus.CANCELED),
    ("finished", "ioc", "-2", OrderStatus.EXPIRED),
    ("finished", "reduce_only", "-5", OrderStatus.CANCELED),
    ("finished", "liquidated", "-1", OrderStatus.CANCELED),
    ("finished", "auto_deleveraged", "-2", OrderStatus.CANCELED),
    ("finished", "auto_deleveraged", "0", OrderStatus.FILLED),
])
def test_futures_status_mapping(status: str, finish_as: str, left: str, expected: OrderStatus) -> None:
    body = json.dumps({"id": 7, "contract": "BTC_USDT", "size": -5, "price": "100", "status": status,
                       "finish_as": finish_as, "left": left}).encode()
    state = futures_client().parse_order(body)
    assert (state.status, state.side, state.quantity) == (expected, OrderSide.SELL, D(5))
    assert state.filled_quantity == 5 - abs(D(left))


def test_balances_and_positions_parse() -> None:
    spot_balances = spot_client().parse_balances(b'[{"currency":"USDT","available":"10.5","locked":"1"}]')
    assert (spot_balances["USDT"].free, spot_balances["USDT"].total) == (D("10.5"), D("11.5"))
    fclient = futures_client()
    account = fclient.parse_balances(b'{"total":"100","available":"80","currency":"USDT","order_margin":"5"}')
    assert (account["USDT"].free, account["USDT"].locked) == (D(80), D(20))
    positions = fclient.parse_positions(
        b'[{"contract":"BTC_USDT","size":-3,"entry_price":"30000","mark_price":"29000","unrealised_pnl":"0.3",'
        b'"liq_price":"32850"},{"contract":"BTC_USDT","size":0,"entry_price":"0"}]'
    )
    assert [(p.symbol, p.size, p.mark_price, p.liquidation_price) for p in positions] == [
        ("BTC/USDT:USDT", D(-3), D(29000), D(32850))
    ]
    (unpriced,) = fclient.parse_positions(b'[{"contract":"BTC_USDT","size":2,"entry_price":"30000","liq_price":"0"}]')
    assert unpriced.liquidation_price is None  # "0": the venue gives none


def test_a_position_on_a_contract_the_catalog_does_not_list_leaves_the_others_readable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A position on a contract in delisting (left out of the catalog) made the whole answer
    unreadable: no hedge or position check ran while the account held it."""
    from arb.risk import futures_holdings

    client = futures_client()
    positions = client.parse_positions(
        b'[{"contract":"BTC_USDT","size":-3,"entry_price":"30000"},'
        b'{"contract":"COCOS_USDT","size":10,"entry_price":"1.5"}]'
    )
    assert [(p.symbol, p.size) for p in positions] == [("BTC/USDT:USDT", D(-3)), ("COCOS/USDT:USDT", D(10))]
    warned: set[tuple[ExchangeName, str]] = set()
    holdings = futures_holdings(ExchangeName.GATEIO_FUTURES, positions, client.instruments, warned)
    assert list(holdings) == ["BTC/USDT"]
    assert "gateio_futures holds 10 of COCOS/USDT:USDT, which is not listed" in caplog.text
    caplog.clear()  # read again a few seconds later: said once is enough
    assert list(futures_holdings(ExchangeName.GATEIO_FUTURES, positions, client.instruments, warned)) == ["BTC/USDT"]
    assert "COCOS" not in caplog.text


def test_a_futures_account_in_dual_position_mode_is_refused_by_name() -> None:
    """In dual mode a buy meant to shrink a short opens a long: the balance read, which live trading
    makes at start-up, refuses it rather than let the engine trade one net position per contract."""
    with pytest.raises(ExchangeError, match=r"in dual \(hedge\) position mode; the engine needs single mode"):
        futures_client().parse_balances(b'{"total":"100","available":"80","currency":"USDT","in_dual_mode":true}')
    single = futures_client().parse_balances(b'{"total":"100","available":"80","currency":"USDT","in_dual_mode":false}')
    assert single["USDT"].free == D(80)


def test_sim_venue_round_trip_smoke() -> None:
    venue = GateVenue()
    state = venue.spot_client.parse_order(venue.fetch(venue.spot_client.place_order(
        req("BTC/USDT", OrderSide.BUY, "0.01", "29000"))))
    assert state.status is OrderStatus.NEW


@pytest.mark.parametrize(("fees", "reported"), [
    ({"fee": "0.3", "fee_currency": "USDT"}, (D("0.3"), "USDT")),
    ({"fee": "0", "fee_currency": "USDT", "point_fee": "0.3"}, (D(0), None)),  # paid in points
    ({"fee": "0", "fee_currency": "USDT", "gt_fee": "0.02", "gt_discount": True}, (D(0), None)),  # in GT
    ({"fee": "0", "fee_currency": "USDT"}, (D(0), "USDT")),  # a zero-fee order: nothing was charged
])
def test_a_spot_fee_paid_in_gt_or_points_is_not_read_as_no_fee(fees: dict[str, object], reported: tuple[D, str | None]
                                                               ) -> None:
    """Gate.io reports ``fee`` 0 when the account pays it with GT or points; the order then has no
    fee the engine can count in the quote, and ``OrderOutcome.fee`` charges the taker rate instead."""
    body = json.dumps({"id": "1", "currency_pair": "BTC_USDT", "type": "limit", "side": "sell", "amount": "0.005",
                       "price": "60000", "status": "closed", "finish_as": "filled", "left": "0",
                       "filled_total": "300", **fees}).encode()
    state = spot_client().parse_order(body)
    assert (state.fee, state.fee_asset) == reported


def test_a_filled_market_buy_whose_answer_does_not_say_the_base_bought_is_of_unknown_outcome() -> None:
    """The websocket API's answer (its documented example) may carry neither ``filled_amount`` nor
    ``avg_deal_price``: a filled market buy then read as FILLED with nothing bought."""
    body = json.dumps({"id": "7", "currency_pair": "BTC_USDT", "type": "market", "side": "buy", "amount": "10",
                       "status": "closed", "finish_as": "filled", "left": "0", "filled_total": "10"}).encode()
    with pytest.raises(ExchangeError, match="the base bought is unknown") as unknown:
        spot_client().parse_order(body)
    assert unknown.value.category is ErrorCategory.OUTCOME_UNKNOWN
    priced = json.loads(body) | {"avg_deal_price": "50000"}
    state = spot_client().parse_order(json.dumps(priced).encode())
    assert (state.status, state.filled_quantity) == (OrderStatus.FILLED, D("0.0002"))


def test_a_listing_keeps_its_other_orders_when_one_market_buy_does_not_say_what_it_bought(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Such an order (never the engine's: it sends no market orders) made the whole listing
    unreadable: a lookup of the engine's own order by client id among them came out unknown."""
    ours = {"id": "8", "currency_pair": "BTC_USDT", "type": "limit", "side": "sell", "amount": "0.001",
            "price": "60000", "status": "closed", "finish_as": "filled", "left": "0", "filled_total": "60",
            "text": "t-opp1-s", "time_in_force": "ioc"}
    manual = {"id": "7", "currency_pair": "BTC_USDT", "type": "market", "side": "buy", "amount": "10",
              "status": "closed", "finish_as": "filled", "left": "0", "filled_total": "10"}
    states = spot_client().parse_open_orders(json.dumps([manual, ours]).encode())
    assert [(s.client_order_id, s.filled_quantity) for s in states] == [("opp1-s", D("0.001"))]
    assert "spot market buy 7 BTC_USDT: 10 quote spent" in caplog.text and "left out" in caplog.text


def test_an_open_order_on_a_pair_or_contract_the_catalog_lacks_leaves_the_others_readable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One such order (a close resting on a contract in delisting, a pair no longer tradable) made
    the whole listing unreadable: at shutdown none of the engine's resting orders there were cancelled."""
    spot = spot_client()
    ours = {"id": "8", "currency_pair": "BTC_USDT", "type": "limit", "side": "sell", "amount": "0.001",
            "price": "60000", "status": "open", "left": "0.001", "filled_total": "0", "text": "t-opp1-s",
            "time_in_force": "gtc"}
    delisted = {**ours, "id": "9", "currency_pair": "GONE_USDT", "text": "t-manual"}
    assert [s.client_order_id for s in spot.parse_open_orders(json.dumps([delisted, ours]).encode())] == ["opp1-s"]
    futures = futures_client()
    order = {"id": 5, "contract": "BTC_USDT", "size": -3, "left": -3, "price": "60000", "tif": "gtc",
             "text": "t-opp2-s", "status": "open", "finish_as": "_new", "fill_price": "0", "create_time": 1700000000.5}
    closing = {**order, "id": 6, "contract": "COCOS_USDT", "text": "t-close", "is_reduce_only": True}
    listed = futures.parse_open_orders(json.dumps([closing, order]).encode())
    assert [(s.client_order_id, s.quantity) for s in listed] == [("opp2-s", D(3))]
    assert caplog.text.count("left out") == 2


def test_a_spot_order_s_average_comes_from_its_quote_total_where_it_has_one() -> None:
    """The quote total is what the fills summed to; the average's precision is not documented. An
    average rounded to the tick (0.5 at 30000.01 and 0.5 at 30000.02 said as 30000.02) would be
    snapped to a notional the fills never had."""
    body = json.dumps({"id": "9", "currency_pair": "BTC_USDT", "type": "limit", "side": "buy", "amount": "1",
                       "price": "30000.1", "status": "closed", "finish_as": "filled", "left": "0",
                       "filled_amount": "1", "filled_total": "30000.015", "avg_deal_price": "30000.02"}).encode()
    state = spot_client().parse_order(body)
    assert state.average_price == D("30000.015") and state.filled_quantity * state.average_price == D("30000.015")
    unfilled = json.loads(body) | {"filled_amount": "0", "filled_total": "0", "avg_deal_price": "0", "left": "1"}
    assert not spot_client().parse_order(json.dumps(unfilled).encode()).average_price
