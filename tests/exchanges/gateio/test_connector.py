"""arb.exchanges.gateio.connector: Gate's data bound to the shared connector."""

from __future__ import annotations

from decimal import Decimal as D

import msgspec
import pytest
from simvenues import CREDENTIALS
from sim.simdata import perp, spot

from arb.exchanges.gateio import constants
from arb.exchanges.gateio.connector import GateioFuturesConnector, GateioSpotConnector, parse_server_time
from arb.exchanges.models import OrderRequest, OrderType
from arb.instruments import InstrumentCatalog
from arb.types import ExchangeName, OrderSide


def test_defaults_are_the_venue_urls() -> None:
    spot_connector, futures_connector = GateioSpotConnector(), GateioFuturesConnector()
    assert spot_connector.rest.venue.base_url == futures_connector.rest.venue.base_url == constants.REST_URL
    assert spot_connector.dialect.ws_url == constants.SPOT_WS_URL
    assert futures_connector.dialect.ws_url == constants.FUTURES_WS_URL


def test_server_time() -> None:
    assert parse_server_time(b'{"server_time":1597026383085}') == 1597026383085
    with pytest.raises(msgspec.ValidationError):
        parse_server_time(b'{"serverTime":1}')


@pytest.mark.parametrize("connector_class", [GateioSpotConnector, GateioFuturesConnector], ids=["spot", "futures"])
def test_public_requests_spend_their_endpoints_budget(
    connector_class: type[GateioSpotConnector] | type[GateioFuturesConnector],
) -> None:
    """Clock reads, pings, the pair and contract lists and the funding read each spend one of their
    endpoint's 200 per 10 s: without a budget they were neither spaced nor held apart from orders."""
    endpoints = connector_class.binding.endpoints
    requests = [endpoints.instruments, endpoints.server_time, endpoints.ping]
    if endpoints.funding is not None:
        requests.append(endpoints.funding.request(None))
    limiter = connector_class().rest.limiter
    for request in requests:
        ((limit_id, weight),) = request.limits
        assert limit_id == "gateio:public:" + request.path and weight == 1
        assert limiter.wait_s(request.limits) == 0.0  # a budget of the market's RestVenue
    assert limiter.longest_window_s([endpoints.instruments.limits[0][0]]) == 10.0


def test_book_scales_spot_finer_than_the_order_grid_futures_whole_contracts() -> None:
    spot_scale = GateioSpotConnector().dialect.book_scale(spot())
    assert (spot_scale.price_decimals, spot_scale.size_decimals) == (4, 10)  # order grid 0.01 + 2 decimals
    futures_scale = GateioFuturesConnector().dialect.book_scale(perp())
    assert (futures_scale.price_decimals, futures_scale.tick_units, futures_scale.size_decimals) == (1, 1, 0)


def test_orders_are_addressed_per_market() -> None:
    spot_trading = GateioSpotConnector.binding.trading
    futures_trading = GateioFuturesConnector.binding.trading
    assert spot_trading is not None and futures_trading is not None
    spot_side = spot_trading(CREDENTIALS, InstrumentCatalog(ExchangeName.GATEIO, [spot()]), lambda: 1_700_000_000_000)
    cancel = spot_side.cancel_order("BTC/USDT", None, "abc")
    assert (cancel.method, cancel.path, cancel.query) == ("DELETE", "/spot/orders/t-abc", "currency_pair=BTC_USDT")
    assert spot_side.positions() is None and spot_side.parse_positions(b"[]") == []
    futures_side = futures_trading(CREDENTIALS, InstrumentCatalog(ExchangeName.GATEIO_FUTURES, [perp()]), lambda: 1_700_000_000_000)
    query = futures_side.query_order("BTC/USDT:USDT", "42", None)
    assert (query.method, query.path, query.query) == ("GET", "/futures/usdt/orders/42", "")
    assert futures_side.balances().path == constants.FUTURES_ACCOUNTS_PATH
    positions = futures_side.positions()
    assert positions is not None and positions.path == constants.FUTURES_POSITIONS_PATH
    order = OrderRequest(
        symbol="BTC/USDT:USDT", side=OrderSide.SELL, type=OrderType.LIMIT, quantity=D(2), price=D("60000.5"),
        client_order_id="hedge-1",
    )
    placed = futures_side.place_order(order, 1_700_000_005_000)
    body = msgspec.json.decode(placed.body)
    assert (placed.path, body["size"], body["text"]) == (constants.FUTURES_ORDERS_PATH, -2, "t-hedge-1")
    assert constants.SIGN_HEADER in placed.headers
    assert placed.headers[constants.EXPIRY_HEADER] == "1700000005000"
    assert constants.EXPIRY_HEADER not in futures_side.place_order(order, None).headers
