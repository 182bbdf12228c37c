"""arb.exchanges.mexc.connector: MEXC's data bound to the shared connector; futures are market data only."""

from __future__ import annotations

import msgspec
import pytest
from simvenues import CREDENTIALS
from sim.simdata import spot

from arb.errors import OrderRejectedError
from arb.exchanges.mexc import constants
from arb.exchanges.mexc.connector import (
    MexcFuturesConnector,
    MexcSpotConnector,
    parse_contract_time,
    parse_server_time,
)
from arb.instruments import InstrumentCatalog
from arb.types import ExchangeName


def test_defaults_are_the_venue_urls() -> None:
    spot_connector, futures_connector = MexcSpotConnector(), MexcFuturesConnector()
    assert spot_connector.rest.venue.base_url == constants.REST_URL
    assert futures_connector.rest.venue.base_url == constants.FUTURES_REST_URL
    assert spot_connector.dialect.ws_url == constants.WS_URL
    assert futures_connector.dialect.ws_url == constants.FUTURES_WS_URL


def test_clocks() -> None:
    assert parse_server_time(b'{"serverTime":1645539742000}') == 1645539742000
    assert parse_contract_time(b'{"success":true,"code":0,"data":1587442022003}') == 1587442022003
    with pytest.raises(ValueError, match="success=false code=510"):
        parse_contract_time(b'{"success":false,"code":510,"data":0}')
    with pytest.raises(msgspec.ValidationError):
        parse_server_time(b'{"server_time":1}')


def test_public_requests_spend_their_documented_budgets() -> None:
    endpoints = MexcSpotConnector.binding.endpoints
    assert endpoints.instruments.limits == (
        (constants.EXCHANGE_INFO_PATH, 1),
        (constants.IP_WEIGHT_LIMIT_ID, constants.ENDPOINT_WEIGHTS[constants.EXCHANGE_INFO_PATH]),
    )
    connector = MexcSpotConnector()
    for request in (endpoints.instruments, endpoints.server_time, endpoints.ping):
        connector.rest.limiter.check(request.limits)  # every id is a budget of the spot RestVenue
    futures = MexcFuturesConnector.binding.endpoints
    assert futures.ping.limits == futures.server_time.limits == ((constants.CONTRACT_PING_PATH, 1),)
    assert futures.instruments.limits == ((constants.CONTRACT_DETAIL_PATH, 1),)
    futures_limiter = MexcFuturesConnector().rest.limiter
    for request in (futures.instruments, futures.server_time, futures.ping):
        futures_limiter.check(request.limits)


def test_funding_rates_are_read_within_the_contract_endpoints_budget() -> None:
    """One funding call per contract spent no budget: 60 contracts' calls went out in some
    milliseconds, against MEXC's 20 per 2 s. They share the endpoint's budget now."""
    funding = MexcFuturesConnector.binding.endpoints.funding
    assert funding is not None
    requests = [funding.request(f"C{n}_USDT") for n in range(21)]
    assert requests[0].path == "/api/v1/contract/funding_rate/C0_USDT"
    limiter = MexcFuturesConnector().rest.limiter
    assert [limiter.try_spend(request.limits) for request in requests] == [True] * 20 + [False]
    assert limiter.wait_s(requests[20].limits) > 1.9  # until the first leaves the 2 s window


def test_spot_open_orders_are_listed_per_symbol() -> None:
    factory = MexcSpotConnector.binding.trading
    assert factory is not None
    trading = factory(CREDENTIALS, InstrumentCatalog(ExchangeName.MEXC, [spot(ExchangeName.MEXC, venue_symbol="BTCUSDT")]), lambda: 1_700_000_000_000)
    assert trading.open_orders_need_symbol
    assert trading.open_orders("BTC/USDT").query.startswith("symbol=BTCUSDT&")
    with pytest.raises(ValueError, match="per symbol"):
        trading.open_orders(None)
    cancel = trading.cancel_order("BTC/USDT", None, "cid-1")
    assert cancel.method == "DELETE" and "origClientOrderId=cid-1" in cancel.query
    assert trading.positions() is None


def test_futures_refusal_says_why_and_what_to_do() -> None:
    binding = MexcFuturesConnector.binding
    assert binding.trading is None and binding.trading_unavailable is not None
    error = binding.trading_unavailable("place_order")
    assert isinstance(error, OrderRejectedError)
    text = str(error)
    assert "Under maintenance" in text and "1002" in text and "hedge on Gate.io futures" in text
