"""arb.exchanges.connector end to end: every market's connector against the simulated venues on
127.0.0.1, and the shared failure handling against scripted loopback servers."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal as D
from typing import Any

import msgspec
import pytest
from aiohttp import web
from loopback import eventually, run
from simvenues import API_KEY, CREDENTIALS, PERP, SPOT, SYMBOL, instruments, simulated_venues

from arb.errors import ArbitrageEngineError, ExchangeConnectionError, ExchangeError, OrderRejectedError, RateLimitError
from arb.exchanges import connector as connector_module
from arb.exchanges.connector import CLOCK_READ_ERROR_MS, MAX_FUNDING_PAGES, ConnectorSettings
from arb.exchanges.gateio import constants
from arb.exchanges.errors import ErrorCategory, venue_error
from arb.exchanges.factory import registered
from arb.exchanges.gateio.connector import GateioFuturesConnector, GateioSpotConnector
from arb.exchanges.gateio.trading import GateioFuturesTrading, GateioSpotTrading, UnsizedMarketBuy
from arb.exchanges.http1 import Http1Pool
from arb.exchanges.mexc.connector import MexcFuturesConnector, MexcSpotConnector
from arb.exchanges.mexc.trading import FuturesTradingUnavailable
from arb.orders import OrderRunner, ioc_order
from arb.exchanges.models import OrderRequest, OrderState, OrderStatus, OrderType, TimeInForce
from arb.exchanges.rest import RestSettings
from arb.exchanges.ws import WsSettings
from arb.instruments import InstrumentError
from arb.sim.faults import OrderFaultKind, VenueFaults
from arb.sim.matching import from_atoms
from arb.types import ExchangeConfig, ExchangeName, OrderSide

MARKETS = list(ExchangeName)
REST_ORDERS = ConnectorSettings(order_transport="rest")  # the scripted venues below answer REST only
TRADED = [ExchangeName.GATEIO, ExchangeName.GATEIO_FUTURES, ExchangeName.MEXC]


def limit_buy(market: ExchangeName, client_order_id: str, price: str = "50000") -> OrderRequest:
    """A resting buy well below the synthetic market (around 60000)."""
    return OrderRequest(
        symbol=SYMBOL[market],
        side=OrderSide.BUY,
        type=OrderType.LIMIT,
        quantity=D("2") if market.is_futures else D("0.001"),
        price=D(price),
        client_order_id=client_order_id,
    )


@pytest.mark.parametrize("market", MARKETS, ids=lambda m: m.value)
def test_instruments_books_and_snapshot_against_the_simulator(market: ExchangeName) -> None:
    async def scenario() -> None:
        async with simulated_venues() as sim:
            connector = sim.connector(market)
            try:
                catalog = await connector.instruments()
                assert [i.symbol for i in catalog] == [SYMBOL[market]]
                assert await connector.instruments() is catalog  # cached
                await connector.start_books([SYMBOL[market]])
                book = connector.books()[SYMBOL[market]]
                await eventually(lambda: book.in_sync and book.last_update_id > 0, what=f"{market.value} in sync")
                bid, ask = book.best_bid(), book.best_ask()
                assert bid is not None and ask is not None and bid[0] < ask[0]
                # The book's ticks are of the book scale, which prices back to the synthetic ~60000.
                scale = connector.book_scale(SYMBOL[market])
                mid = D(bid[0] * scale.tick_units).scaleb(-scale.price_decimals)
                assert D(55000) < mid < D(65000)
                stats = connector.book_sync().stats()[SYMBOL[market]]  # type: ignore[union-attr]
                assert stats.snapshots >= 1 and stats.malformed == 0
                health = connector.health()
                assert health.connected and health.messages > 0
                snapshot = await connector.depth_snapshot(SYMBOL[market])
                assert snapshot.in_sync and snapshot.best_bid() is not None
                await connector.stop_books()
                assert not connector.health().connected and not book.in_sync
            finally:
                await connector.close()

    run(scenario())


@pytest.mark.parametrize("market", TRADED, ids=lambda m: m.value)
def test_server_time_and_ping_against_the_simulator(market: ExchangeName) -> None:
    async def scenario() -> None:
        async with simulated_venues() as sim:
            connector = sim.connector(market)
            try:
                server_ms = await connector.server_time()
                assert abs(server_ms - sim.venues[market.venue]._wall_ms()) < 10_000
                assert await connector.ping() > 0
            finally:
                await connector.close()

    run(scenario())


@pytest.mark.parametrize("market", TRADED, ids=lambda m: m.value)
def test_place_query_cancel_by_id_and_client_id(market: ExchangeName) -> None:
    async def scenario() -> None:
        async with simulated_venues() as sim:
            connector = sim.connector(market)
            symbol = SYMBOL[market]
            try:
                balances = await connector.balances()
                assert balances["USDT"].free == D("100000")
                placed = await connector.place_order(limit_buy(market, "cx-1"))
                assert placed.status is OrderStatus.NEW and placed.client_order_id == "cx-1"
                by_id = await connector.query_order(symbol, order_id=placed.order_id)
                by_client = await connector.query_order(symbol, client_order_id="cx-1")
                assert by_id.order_id == by_client.order_id == placed.order_id
                assert by_client.quantity == placed.quantity and by_client.price == D("50000")
                assert [o.client_order_id for o in await connector.open_orders(symbol)] == ["cx-1"]
                assert [o.order_id for o in await connector.open_orders()] == [placed.order_id]
                second = await connector.place_order(limit_buy(market, "cx-2", "49000"))
                cancelled = await connector.cancel_order(symbol, client_order_id="cx-1")
                assert cancelled.status is OrderStatus.CANCELED and cancelled.order_id == placed.order_id
                cancelled = await connector.cancel_order(symbol, order_id=second.order_id)
                assert cancelled.status is OrderStatus.CANCELED and cancelled.client_order_id == "cx-2"
                assert await connector.open_orders(symbol) == []
                assert list(await connector.positions()) == []
            finally:
                await connector.close()

    run(scenario())


def test_futures_position_after_a_fill() -> None:
    async def scenario() -> None:
        async with simulated_venues() as sim:
            connector = sim.connector(ExchangeName.GATEIO_FUTURES)
            try:
                order = OrderRequest(
                    symbol=PERP, side=OrderSide.BUY, type=OrderType.LIMIT, quantity=D(3), price=D(70000),
                    client_order_id="take-1",
                )
                placed = await connector.place_order(order)
                final = await connector.query_order(PERP, order_id=placed.order_id)
                assert final.status is OrderStatus.FILLED and final.filled_quantity == D(3)
                [position] = await connector.positions()
                assert position.symbol == PERP and position.size == D(3)
            finally:
                await connector.close()

    run(scenario())


def test_rejected_order_raises_with_its_category() -> None:
    async def scenario() -> None:
        async with simulated_venues() as sim:
            connector = sim.connector(ExchangeName.GATEIO)
            try:
                sim.faults.fail_next_orders("gateio", OrderFaultKind.REJECT, category=ErrorCategory.INSUFFICIENT_BALANCE)
                with pytest.raises(OrderRejectedError) as info:
                    await connector.place_order(limit_buy(ExchangeName.GATEIO, "rej-1"))
                assert info.value.category == ErrorCategory.INSUFFICIENT_BALANCE
                # Nothing was placed: the client id is unknown to the venue.
                with pytest.raises(OrderRejectedError) as info:
                    await connector.query_order(SPOT, client_order_id="rej-1")
                assert info.value.category == ErrorCategory.UNKNOWN_ORDER
            finally:
                await connector.close()

    run(scenario())


@pytest.mark.parametrize("market", [ExchangeName.GATEIO, ExchangeName.MEXC], ids=lambda m: m.value)
def test_rate_limited_order_then_the_retry_after_the_block_succeeds(market: ExchangeName) -> None:
    async def scenario() -> None:
        async with simulated_venues() as sim:
            connector = sim.connector(market)
            try:
                sim.faults.fail_next_orders(market.venue, OrderFaultKind.RATE_LIMIT, retry_after_ms=200)
                with pytest.raises(RateLimitError) as info:
                    await connector.place_order(limit_buy(market, "rl-1"))
                # Gate.io announces a reset time rather than a delay: the delay is read against our clock.
                assert info.value.retry_after_s == pytest.approx(0.2, abs=0.05)
                # The client holds the order budget for Retry-After, then the retry goes through.
                placed = await connector.place_order(limit_buy(market, "rl-1"))
                assert placed.client_order_id == "rl-1" and placed.status is OrderStatus.NEW
                assert connector.rest.limiter.waits >= 1
            finally:
                await connector.close()

    run(scenario())


@pytest.mark.parametrize("market", TRADED, ids=lambda m: m.value)
def test_timeout_with_the_order_placed_is_outcome_unknown_and_resolved_by_client_id(market: ExchangeName) -> None:
    async def scenario() -> None:
        async with simulated_venues() as sim:
            connector = sim.connector(market, rest_timeout_s=0.3)
            try:
                sim.faults.fail_next_orders(market.venue, OrderFaultKind.TIMEOUT_PLACED)
                with pytest.raises(ExchangeError) as info:
                    await connector.place_order(limit_buy(market, "lost-1"))
                assert info.value.category == ErrorCategory.OUTCOME_UNKNOWN
                assert "client_order_id='lost-1'" in str(info.value)
                found = await connector.query_order(SYMBOL[market], client_order_id="lost-1")
                assert found.client_order_id == "lost-1" and found.status is OrderStatus.NEW
            finally:
                await connector.close()

    run(scenario())


def test_mexc_futures_trading_is_refused_before_anything_is_sent() -> None:
    async def scenario() -> None:
        async with simulated_venues() as sim:
            connector = sim.connector(ExchangeName.MEXC_FUTURES)
            try:
                await connector.instruments()
                before = sim.venues["mexc"].requests
                order = OrderRequest(
                    symbol=PERP, side=OrderSide.BUY, type=OrderType.LIMIT, quantity=D(1), price=D(50000),
                    client_order_id="mf-1",
                )
                calls = [
                    connector.place_order(order),
                    connector.cancel_order(PERP, order_id="1"),
                    connector.query_order(PERP, client_order_id="mf-1"),
                    connector.open_orders(),
                    connector.balances(),
                    connector.positions(),
                    connector.start_private_stream(lambda state: None, lambda fill: None),
                ]
                for call in calls:
                    with pytest.raises(FuturesTradingUnavailable, match="market data only"):
                        await call
                assert sim.venues["mexc"].requests == before
                assert not connector.can_trade
            finally:
                await connector.close()

    run(scenario())


def test_polled_private_stream_reports_order_changes() -> None:
    async def scenario() -> None:
        async with simulated_venues() as sim:
            connector = sim.connector(ExchangeName.GATEIO)
            seen: list[OrderState] = []
            try:
                await connector.start_private_stream(seen.append, lambda fill: None)
                await connector.place_order(limit_buy(ExchangeName.GATEIO, "ps-1"))
                await eventually(lambda: any(s.status is OrderStatus.NEW for s in seen), what="NEW reported")
                await connector.cancel_order(SPOT, client_order_id="ps-1")
                await eventually(lambda: seen[-1].status is OrderStatus.CANCELED, what="CANCELED reported")
                assert [s.status for s in seen] == [OrderStatus.NEW, OrderStatus.CANCELED]
                await asyncio.sleep(0.1)  # final orders are no longer polled
                assert len(seen) == 2
            finally:
                await connector.close()

    run(scenario())


def test_an_order_answered_with_no_known_category_stays_followed_by_the_poller() -> None:
    """An unmapped label or a 404 may not be a refusal, and the order runner queries such an order
    as of unknown outcome; the connector took it as refused and its poller did not follow it."""

    async def failing(code: str | None, status: int) -> bytes:
        raise venue_error("gateio", "POST /spot/orders", codes=constants.ERROR_LABELS,
                          http_statuses=constants.HTTP_STATUSES, code=code, http_status=status, write=True)

    async def scenario() -> None:
        async with simulated_venues() as sim:
            connector = sim.connector(ExchangeName.GATEIO)
            try:
                await connector.start_private_stream(lambda state: None, lambda fill: None)  # polled
                trading = await connector._trader("place order")
                for code, status, followed in [("PRICE_OVER_BANKRUPT_X", 400, True), (None, 404, True),
                                               ("BALANCE_NOT_ENOUGH", 400, False)]:
                    request = limit_buy(ExchangeName.GATEIO, f"cat-{status}-{followed}")
                    with pytest.raises(ExchangeError):
                        await connector._placed(trading, request, failing(code, status))
                    assert (request.client_order_id in connector._tracked) is followed, (code, status)
            finally:
                await connector.close()

    run(scenario())


def test_trading_without_credentials_and_bad_arguments_fail_before_sending() -> None:
    async def scenario() -> None:
        async with simulated_venues() as sim:
            connector = sim.connector(ExchangeName.GATEIO, credentials=None)
            try:
                with pytest.raises(ExchangeError, match="needs API credentials") as info:
                    await connector.balances()
                assert info.value.category == ErrorCategory.AUTH_FAILED
                with pytest.raises(ValueError, match="exactly one"):
                    await connector.query_order(SPOT)
                with pytest.raises(ValueError, match="exactly one"):
                    await connector.cancel_order(SPOT, order_id="1", client_order_id="x")
                with pytest.raises(InstrumentError, match="no instrument 'DOGE/USDT'"):
                    await connector.start_books(["DOGE/USDT"])
                with pytest.raises(ExchangeError, match="no book of 'BTC/USDT'"):
                    connector.book_scale(SPOT)
            finally:
                await connector.close()

    run(scenario())


# --- scripted loopback venue: answers the simulator does not give ----------------------------


@asynccontextmanager
async def scripted(routes: dict[tuple[str, str], web.Response]) -> AsyncIterator[str]:
    """An aiohttp server on 127.0.0.1 answering fixed responses; yields its base URL."""
    app = web.Application()
    for (method, path), response in routes.items():

        async def handler(request: web.Request, response: web.Response = response) -> web.Response:
            return web.Response(body=response.body, status=response.status, content_type="application/json")

        app.router.add_route(method, path, handler)
    async with serving(app) as url:
        yield url


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """``app`` served on 127.0.0.1; yields its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def _gate_pairs() -> bytes:
    return (
        b'[{"id":"BTC_USDT","base":"BTC","quote":"USDT","fee":"0.2","min_base_amount":"0.0001",'
        b'"min_quote_amount":"1","amount_precision":4,"precision":2,"trade_status":"tradable"}]'
    )


@asynccontextmanager
async def gate_spot_answering(routes: dict[tuple[str, str], web.Response]) -> AsyncIterator[GateioSpotConnector]:
    """A Gate.io spot connector placing orders by REST against ``routes`` (and the pair list)."""
    async with scripted({("GET", "/spot/currency_pairs"): web.Response(body=_gate_pairs()), **routes}) as url:
        connector = GateioSpotConnector(
            credentials=CREDENTIALS, rest_url=url, ws_url="ws://127.0.0.1:9/", settings=REST_ORDERS
        )
        try:
            yield connector
        finally:
            await connector.close()


def _gate_contract(n: int) -> dict[str, object]:
    return {
        "name": f"C{n}_USDT", "quanto_multiplier": "1", "order_price_round": "0.01", "order_size_min": 1,
        "order_size_max": 1000000, "maker_fee_rate": "-0.00025", "taker_fee_rate": "0.00075",
        "funding_rate": "0.0001", "funding_interval": 28800, "funding_next_apply": 1684944000,
    }


@asynccontextmanager
async def gate_contracts(count: int, *, offsets: bool = True) -> AsyncIterator[tuple[GateioFuturesConnector, list[str]]]:
    """A Gate.io futures connector against a venue listing ``count`` contracts, 100 a page unless
    told otherwise (the default limit of Gate's lists), and the queries the list was asked with;
    ``offsets`` False: a venue that ignores the offset."""
    listed = [_gate_contract(n) for n in range(count)]
    queries: list[str] = []

    async def contracts(request: web.Request) -> web.Response:
        queries.append(request.query_string)
        limit, offset = int(request.query.get("limit", 100)), int(request.query.get("offset", 0)) if offsets else 0
        return web.json_response(listed[offset : offset + limit])

    app = web.Application()
    app.router.add_get(constants.FUTURES_CONTRACTS_PATH, contracts)
    async with serving(app) as url:
        connector = GateioFuturesConnector(rest_url=url, ws_url="ws://127.0.0.1:9/")
        try:
            yield connector, queries
        finally:
            await connector.close()


def test_every_page_of_the_gate_contracts_list_is_read() -> None:
    """The contracts list was read with one unpaged request: a venue answering it a page at a time
    left every contract past the first page untradable, and without a funding rate."""

    async def scenario() -> None:
        async with gate_contracts(250) as (connector, queries):
            catalog = await connector.instruments()
            assert len(catalog) == 250 and "C249/USDT:USDT" in catalog
            assert queries == ["limit=100&offset=0", "limit=100&offset=100", "limit=100&offset=200"]
            (rate,) = await connector.funding_rates(["C249/USDT:USDT"])
            assert rate.rate == D("0.0001")
        async with gate_contracts(200) as (connector, queries):  # a full last page: an empty one ends the list
            assert len(await connector.instruments()) == 200 and len(queries) == 3

    run(scenario())


def test_a_contracts_list_that_never_ends_is_an_error_naming_it() -> None:
    async def scenario() -> None:
        async with gate_contracts(250, offsets=False) as (connector, queries):
            pages = constants.FUTURES_CONTRACTS_MAX_PAGES
            with pytest.raises(ExchangeError, match=f"GET /futures/usdt/contracts: still more after {pages} pages"):
                await connector.instruments()
            assert len(queries) == pages

    run(scenario())


def test_a_429_on_the_gate_contracts_list_holds_that_list_alone() -> None:
    """The contracts list (the trading rules and the funding read) spent no budget, and a 429 on it
    held every request of the market for the wait Gate named: order placement, positions and
    recovery included. It holds the list's own budget now, no order's."""

    async def contracts(request: web.Request) -> web.Response:
        reset_ms = time.time_ns() // 1_000_000 + 30_000  # Gate: this endpoint resets in 30 s
        return web.json_response(
            {"label": "TOO_MANY_REQUESTS", "message": "Request Rate limit Exceeded"}, status=429,
            headers={constants.RATE_LIMIT_RESET_HEADER: str(reset_ms)},
        )

    async def scenario() -> None:
        app = web.Application()
        app.router.add_get(constants.FUTURES_CONTRACTS_PATH, contracts)
        async with serving(app) as url:
            connector = GateioFuturesConnector(credentials=CREDENTIALS, rest_url=url, ws_url="ws://127.0.0.1:9/")
            try:
                with pytest.raises(RateLimitError) as refused:
                    await connector.instruments()
                assert refused.value.retry_after_s == 10.0  # at most the list's window
                limiter = connector.rest.limiter
                assert connector.order_wait_s(PERP) == 0.0
                assert limiter.wait_s(((constants.FUTURES_POSITIONS_RATE_LIMIT, 1),)) == 0.0
                assert limiter.wait_s(((constants.FUTURES_CONTRACTS_RATE_LIMIT, 1),)) > 9
            finally:
                await connector.close()

    run(scenario())


def test_unreadable_answer_to_an_order_is_outcome_unknown_but_to_a_read_is_not() -> None:
    async def scenario() -> None:
        routes = {
            ("POST", "/spot/orders"): web.Response(body=b'{"unexpected": true}'),
            ("GET", "/spot/accounts"): web.Response(body=b'{"not": "a list"}'),
        }
        async with gate_spot_answering(routes) as connector:
            with pytest.raises(ExchangeError, match="place_order: unreadable answer") as info:
                await connector.place_order(limit_buy(ExchangeName.GATEIO, "odd-1"))
            assert info.value.category == ErrorCategory.OUTCOME_UNKNOWN
            with pytest.raises(ExchangeError, match="accounts") as info:
                await connector.balances()
            assert info.value.category is None

    run(scenario())


@pytest.mark.parametrize("field", ["filled_total", "left", "fee", "amount"])
def test_an_order_answer_with_a_nan_amount_is_unreadable(field: str) -> None:
    """Decimal reads "NaN", and the first comparison of it raised deep in an execution (one leg's
    outcome then lost with the other's): such an answer is unreadable, an order's outcome unknown."""
    order = {"id": "1", "currency_pair": "BTC_USDT", "type": "limit", "side": "buy", "amount": "0.001",
             "price": "60000", "status": "closed", "finish_as": "filled", "left": "0", "filled_total": "60",
             "avg_deal_price": "60000", "fee": "0.000002", "fee_currency": "BTC", "text": "t-nan-1"}
    body = json.dumps(order | {field: "NaN"}).encode()

    async def scenario() -> None:
        routes = {("POST", "/spot/orders"): web.Response(body=body), ("GET", "/spot/orders/1"): web.Response(body=body)}
        async with gate_spot_answering(routes) as connector:
            with pytest.raises(ExchangeError, match="place_order: unreadable answer.*not a number") as info:
                await connector.place_order(limit_buy(ExchangeName.GATEIO, "nan-1"))
            assert info.value.category == ErrorCategory.OUTCOME_UNKNOWN
            with pytest.raises(ExchangeError, match="query_order: unreadable answer.*not a number") as info:
                await connector.query_order("BTC/USDT", order_id="1")
            assert info.value.category is None

    run(scenario())


def test_server_error_on_an_order_is_outcome_unknown() -> None:
    async def scenario() -> None:
        routes = {("POST", "/spot/orders"): web.Response(status=502, body=b"bad gateway")}
        async with gate_spot_answering(routes) as connector:
            with pytest.raises(ExchangeError, match="outcome unknown") as info:
                await connector.place_order(limit_buy(ExchangeName.GATEIO, "five-1"))
            assert info.value.category == ErrorCategory.OUTCOME_UNKNOWN
            # pairs, the account's fee tier (404 here: the listed fee stays), the order: no retry of a write
            assert connector.rest.stats.requests == 3 and not connector.fees_from_account

    run(scenario())


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"id":1,"current":1,"update":1,"asks":[["101","1"]],"bids":[["102","1"]]}', "crossed"),
        (b'{"id":1,"current":1,"update":1,"asks":[["101","1"]],"bids":[["99","1"],["99","2"]]}', "duplicate bid"),
    ],
)
def test_a_depth_snapshot_the_book_refuses_is_an_exchange_error(body: bytes, problem: str) -> None:
    """Only the decode was wrapped: a crossed snapshot (as MEXC's own documented example is) or a
    price level given twice escaped as a bare CrossedBookError or ValueError."""
    async def scenario() -> None:
        async with gate_spot_answering({("GET", "/spot/order_book"): web.Response(body=body)}) as connector:
            with pytest.raises(ExchangeError, match=f"depth snapshot of BTC/USDT: .*{problem}"):
                await connector.depth_snapshot("BTC/USDT")

    run(scenario())


def test_mexc_futures_clock_from_the_contract_ping() -> None:
    async def scenario() -> None:
        routes = {("GET", "/api/v1/contract/ping"): web.Response(body=b'{"success":true,"code":0,"data":1587442022003}')}
        async with scripted(routes) as url:
            connector = MexcFuturesConnector(rest_url=url, ws_url="ws://127.0.0.1:9/")
            try:
                assert await connector.server_time() == 1587442022003
                assert await connector.ping() > 0
            finally:
                await connector.close()

    run(scenario())


def test_from_config_takes_the_market_overrides_and_timeouts() -> None:
    config = ExchangeConfig(
        name="mexc",
        rest_timeout_ms=750,
        ws_heartbeat_interval_ms=4000,
        rest_url="http://127.0.0.1:1",
        ws_url="ws://127.0.0.1:2/ws",
        futures_rest_url="http://127.0.0.1:3",
        futures_ws_url="ws://127.0.0.1:4/edge",
    )
    futures = MexcFuturesConnector.from_config(config)
    assert futures.rest.venue.base_url == "http://127.0.0.1:3" and futures.dialect.ws_url == "ws://127.0.0.1:4/edge"
    assert futures.settings.rest.timeout_s == 0.75 and futures.settings.ws.heartbeat_interval_s == 4.0
    spot = GateioSpotConnector.from_config(msgspec.structs.replace(config, name="gateio"))
    assert spot.rest.venue.base_url == "http://127.0.0.1:1" and spot.dialect.ws_url == "ws://127.0.0.1:2/ws"
    assert not spot.health().connected and spot.books() == {}


def test_a_close_cut_short_on_the_websocket_trading_api_closes_it_the_next_time() -> None:
    """The connector forgot its websocket trading API before closing it: a close cancelled while
    that waited (a shutdown step timing out) left the next close nothing to close."""
    closes: list[str] = []

    class Hanging:
        async def close(self) -> None:
            closes.append("orders ws")
            if len(closes) == 1:
                await asyncio.sleep(10)

    async def scenario() -> None:
        connector = GateioSpotConnector(
            credentials=CREDENTIALS, rest_url="http://127.0.0.1:9", ws_url="ws://127.0.0.1:9/", settings=REST_ORDERS
        )
        connector._orders_ws = Hanging()  # type: ignore[assignment]
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(connector.close(), 0.05)
        await connector.close()
        assert connector._orders_ws is None

    run(scenario())
    assert closes == ["orders ws", "orders ws"]


def test_a_part_that_fails_to_close_leaves_the_others_closed_and_its_error_raised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Closing stopped at the first part that failed: the books' stream and the REST session were left open."""
    closed: list[str] = []

    def closing(part: str, error: Exception | None) -> Any:
        async def close() -> None:
            closed.append(part)
            if error is not None:
                raise error

        return close

    async def scenario() -> None:
        connector = GateioSpotConnector(
            credentials=CREDENTIALS, rest_url="http://127.0.0.1:9", ws_url="ws://127.0.0.1:9/", settings=REST_ORDERS
        )
        rest_close = connector.rest.close
        monkeypatch.setattr(connector, "stop_private_stream", closing("private stream", OSError("socket gone")))
        monkeypatch.setattr(connector, "stop_books", closing("books", RuntimeError("stream stuck")))
        monkeypatch.setattr(connector.rest, "close", closing("rest", None))
        try:
            with pytest.raises(OSError, match="socket gone"):  # the first failure
                await connector.close()
        finally:
            await rest_close()

    run(scenario())
    assert closed == ["private stream", "books", "rest"]


def test_start_books_fails_cleanly_when_the_stream_cannot_connect() -> None:
    async def scenario() -> None:
        async with simulated_venues() as sim:
            urls = sim.venues["gateio"].urls()
            settings = ConnectorSettings(ws=WsSettings(handshake_timeout_s=0.1, backoff_initial_s=0.05))
            # Port 9 (discard) on loopback: nothing listens, every connect is refused.
            connector = GateioSpotConnector(rest_url=urls.rest_url, ws_url="ws://127.0.0.1:9/", settings=settings)
            try:
                with pytest.raises(ExchangeConnectionError, match="not connected within 0.2 s"):
                    await connector.start_books([SPOT])
                assert connector.books() == {} and connector.book_sync() is None
            finally:
                await connector.close()

    run(scenario())


@pytest.mark.parametrize("market", TRADED, ids=lambda m: m.value)
def test_rehearse_order_encodes_the_order_and_sends_spends_and_tracks_nothing(
    market: ExchangeName, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded: list[bytes] = []  # what the order transports' encoders produced

    def spying(owner: type, name: str) -> None:
        encode = getattr(owner, name)

        def spy(*args: object, **kwargs: object) -> bytes:
            data: bytes = encode(*args, **kwargs)
            encoded.append(data)
            return data

        monkeypatch.setattr(owner, name, spy)

    for owner in (Http1Pool, GateioSpotTrading, GateioFuturesTrading):
        spying(owner, "encode" if owner is Http1Pool else "order_body")

    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            connector = sim.connector(market)
            connector.rest.settings = msgspec.structs.replace(connector.rest.settings, http1_writes=True)
            venue = sim.venues[market.venue].exchanges[market]
            limiter = connector.rest.limiter
            try:
                connector.rehearse_order(limit_buy(market, "re-0"))  # trading not set up: nothing to encode
                assert encoded == []
                await connector.start_private_stream(lambda state: None, lambda fill: None)
                encoded.clear()
                spent = {limit_id: window.total for limit_id, window in limiter._windows.items()}
                requests, tracked = connector.rest.stats.requests, (dict(connector._tracked), set(connector._order_symbols))
                for n in range(1, 31):  # more than Gate.io's order budget of a second
                    connector.rehearse_order(limit_buy(market, f"re-{n}"))
                assert [any(f"re-{n}".encode() in data for data in encoded) for n in range(1, 31)] == [True] * 30
                await asyncio.sleep(0.05)
                assert venue.open_orders(API_KEY) == [] and connector.rest.stats.requests == requests
                assert all(limiter._windows[limit_id].total <= before for limit_id, before in spent.items())
                assert (connector._tracked, connector._order_symbols) == tracked
                assert connector.order_wait_s(SYMBOL[market]) == 0.0
                written = connector.write_order(limit_buy(market, "re-31"))  # the order path is as it was
                assert written is not None and (await written).client_order_id == "re-31"
            finally:
                await connector.close()

    run(scenario())


def test_funding_settled_by_the_venue_is_read_with_its_amount_and_time() -> None:
    async def scenario() -> None:
        async with simulated_venues(moving=False, funding_interval_s=1) as sim:
            perp, spot = sim.connector(ExchangeName.GATEIO_FUTURES), sim.connector(ExchangeName.GATEIO)
            venue = sim.venues["gateio"].exchanges[ExchangeName.GATEIO_FUTURES]
            try:
                since_ms = sim.venues["gateio"].context.wall_ms()
                sell = OrderRequest(
                    symbol=PERP, side=OrderSide.SELL, type=OrderType.MARKET, quantity=D(3), client_order_id="fund-1",
                    time_in_force=TimeInForce.IOC,
                )
                await perp.place_order(sell)
                await eventually(lambda: len(venue.ledger.account(API_KEY).funding) >= 2, timeout_s=10.0,
                                 what="two settlements of the 1 s interval")
                settled = venue.ledger.account(API_KEY).funding[:2]
                payments = (await perp.funding_payments(since_ms))[:2]
                assert [(p.payment_id, p.symbol, p.amount, p.time_ms) for p in payments] == [
                    (str(e.entry_id), PERP, from_atoms(e.change_atoms), e.wall_ms) for e in settled
                ]
                assert all(p.amount > 0 for p in payments)  # a short receives the simulator's positive rate
                assert all(p.time_ms % 1000 == 0 for p in payments)  # at whole multiples of the interval
                assert await spot.funding_payments(since_ms) == []  # spot settles none
                (rate,) = await perp.funding_rates([PERP])  # what the venue announces is what it settles
                assert (rate.rate, rate.interval_s, rate.next_settle_ms % 1000) == (D("0.0001"), 1, 0)
            finally:
                await perp.close()
                await spot.close()

    run(scenario())


def test_a_funding_read_that_never_ends_is_an_error_not_a_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    full = constants.ACCOUNT_BOOK_PAGE
    monkeypatch.setattr(GateioFuturesTrading, "parse_funding_payments", lambda self, body: ([], full))

    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            perp = sim.connector(ExchangeName.GATEIO_FUTURES)
            try:
                await perp.positions()  # trading set up: what follows is the funding read alone
                requests = perp.rest.stats.requests
                with pytest.raises(ExchangeError, match=f"still more after {MAX_FUNDING_PAGES} pages"):
                    await perp.funding_payments(0)
                assert perp.rest.stats.requests - requests == MAX_FUNDING_PAGES
            finally:
                await perp.close()

    run(scenario())


def test_order_wait_s_follows_the_order_place_budget() -> None:
    async def main() -> None:
        connector = GateioSpotConnector(credentials=CREDENTIALS, rest_url="http://127.0.0.1:9", ws_url="ws://127.0.0.1:9/")
        try:
            assert connector.order_wait_s(SPOT) == 0.0
            for _ in range(9):  # Gate.io: 10 spot orders a second (spent as a paper or replayed order spends them)
                await connector.spend_order_budget(SPOT)
            assert connector.order_wait_s(SPOT) == 0.0
            assert 0.9 < connector.order_wait_s(SPOT, 2) <= 1.0  # one left, not two
            await connector.spend_order_budget(SPOT)
            assert 0.9 < connector.order_wait_s(SPOT) <= 1.0  # until the first of them leaves the 1 s window
            # Gate.io counts spot placement per currency pair: another pair's budget is untouched.
            assert connector.order_wait_s("ETH/USDT", 10) == 0.0
            futures = MexcFuturesConnector(rest_url="http://127.0.0.1:9", ws_url="ws://127.0.0.1:9/")
            assert futures.order_wait_s(PERP) == 0.0
        finally:
            await connector.close()

    run(main())


@pytest.mark.parametrize(
    ("market", "per_market"),
    [(ExchangeName.GATEIO, True), (ExchangeName.GATEIO_FUTURES, False), (ExchangeName.MEXC, False)],
    ids=lambda v: getattr(v, "value", str(v)),
)
def test_order_budget_is_shared_across_pairs_unless_the_venue_keeps_it_per_pair(
    market: ExchangeName, per_market: bool
) -> None:
    async def main() -> None:
        connector = registered()[market](credentials=CREDENTIALS, rest_url="http://127.0.0.1:9", ws_url="ws://127.0.0.1:9/")
        symbol, other = SYMBOL[market], SYMBOL[market].replace("BTC/", "ETH/")
        try:
            limiter = connector.rest.limiter
            limiter.block([limit_id for limit_id, _ in connector.order_limits(symbol)], 60.0)  # as after a 429
            assert connector.order_wait_s(symbol) > 59
            assert (connector.order_wait_s(other) == 0.0) is per_market
        finally:
            await connector.close()

    run(main())


@pytest.mark.parametrize("market", TRADED, ids=lambda m: m.value)
def test_a_new_fee_rate_is_cached_and_orders_still_write_at_once(market: ExchangeName) -> None:
    """``use_instrument``: the engine takes a new fee tier as it runs; the order path stays ready."""
    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            connector = sim.connector(market)
            connector.rest.settings = msgspec.structs.replace(connector.rest.settings, http1_writes=True)
            try:
                with pytest.raises(ExchangeError, match="no catalog was read yet"):
                    connector.use_instrument(next(i for i in instruments() if i.exchange is market))
                await connector.start_private_stream(lambda state: None, lambda fill: None)
                listed = await connector.instrument(SYMBOL[market])
                cheaper = msgspec.structs.replace(listed, taker_fee=listed.taker_fee / 2)
                catalog = connector.use_instrument(cheaper)
                assert catalog.get(SYMBOL[market]) is cheaper and await connector.instrument(SYMBOL[market]) is cheaper
                written = connector.write_order(limit_buy(market, "fee-1"))
                assert written is not None
                assert (await written).client_order_id == "fee-1"
            finally:
                await connector.close()

    run(scenario())


@pytest.mark.parametrize("market", TRADED, ids=lambda m: m.value)
def test_write_order_writes_before_returning_once_trading_is_set_up(market: ExchangeName) -> None:
    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            connector = sim.connector(market)
            connector.rest.settings = msgspec.structs.replace(connector.rest.settings, http1_writes=True)
            venue = sim.venues[market.venue].exchanges[market]

            def resting() -> list[str]:  # client ids as sent (Gate.io's carry its "t-" prefix)
                return [str(order.client_id).removeprefix("t-") for order in venue.open_orders(API_KEY)]

            try:
                assert connector.write_order(limit_buy(market, "wr-0")) is None  # trading not set up: it would wait
                await connector.start_private_stream(lambda state: None, lambda fill: None)
                written = connector.write_order(limit_buy(market, "wr-1"))
                assert written is not None
                await eventually(lambda: resting() == ["wr-1"], what="the order at the venue before it is awaited")
                placed = await written
                assert placed.status is OrderStatus.NEW and placed.client_order_id == "wr-1"
                connector.rest.limiter.block([limit_id for limit_id, _ in connector.order_limits(SYMBOL[market])], 60.0)
                assert connector.write_order(limit_buy(market, "wr-2")) is None  # no budget now: not written
                await asyncio.sleep(0.05)
                assert resting() == ["wr-1"]
            finally:
                await connector.close()

    run(scenario())


@pytest.mark.parametrize(
    ("skew_ms", "refused", "near_edge"),
    [
        (0, None, False),
        (-499, None, False),
        (-500, None, True),  # half of MEXC's 1000 ms ahead
        (-999.4, None, True),
        (-1000, "1000 ms ahead of the venue's, which refuses signed requests 1000 ms ahead or more", True),
        (2500, None, False),
        (2501, None, True),  # past half of its 5000 ms behind
        (5000, None, True),
        (5001, "5001 ms behind the venue's, which refuses signed requests more than 5000 ms behind", True),
    ],
)
def test_a_clock_window_says_when_signed_requests_are_refused(
    skew_ms: float, refused: str | None, near_edge: bool
) -> None:
    window = MexcSpotConnector.binding.clock_window
    assert window is not None and (window.ahead_ms, window.behind_ms) == (1000, 5000)
    reason = window.refusal(skew_ms)
    assert (reason is None) == (refused is None)
    if refused is not None:
        assert reason == f"the local clock is {refused}"
    assert window.near_edge(skew_ms) is near_edge
    gate = GateioSpotConnector.binding.clock_window
    assert gate is not None and gate.refusal(skew_ms) is None and (gate.ahead_ms, gate.behind_ms) == (60_000, 60_000)


def test_an_order_may_be_taken_until_its_deadline_plus_how_far_off_the_venues_clock_may_be_read() -> None:
    """An order carries its deadline in the venue's clock as last read: the venue may take it until
    the deadline plus the error of that reading. Before any reading, our clock may be as far ahead of
    the venue's as signed requests are taken."""
    settings = ConnectorSettings(order_deadline_ms=2000)
    mexc = MexcSpotConnector(
        credentials=CREDENTIALS, rest_url="http://127.0.0.1:9", ws_url="ws://127.0.0.1:9/", settings=settings
    )
    assert mexc.order_acceptance_s == 3.0  # 2 s + MEXC's 1 s ahead
    mexc.clock_skew = -400.0  # our clock 0.4 s ahead: an earlier run's order may be stamped by it
    assert mexc.order_acceptance_s == (2000 + CLOCK_READ_ERROR_MS + 400) / 1000
    gate = GateioSpotConnector(
        credentials=CREDENTIALS, rest_url="http://127.0.0.1:9", ws_url="ws://127.0.0.1:9/", settings=settings
    )
    assert gate.order_acceptance_s == 62.0  # 2 s + Gate.io's 60 s
    gate.clock_skew = 250.0
    assert gate.order_acceptance_s == (2000 + CLOCK_READ_ERROR_MS) / 1000
    with pytest.raises(ValueError, match="order_deadline_ms=0"):
        ConnectorSettings(order_deadline_ms=0)


@pytest.mark.parametrize(("market", "transport"), [
    (ExchangeName.MEXC, "rest"), (ExchangeName.GATEIO, "rest"), (ExchangeName.GATEIO, "ws"),
    (ExchangeName.GATEIO_FUTURES, "ws"),
])
def test_an_order_received_after_its_deadline_in_the_venues_clock_is_refused(
    market: ExchangeName, transport: str
) -> None:
    """The venue's clock runs 4 s ahead of ours and the deadline is 3 s. Before the clock is read
    the order is stamped by our clock, so the venue receives it past its deadline and refuses it
    for its timestamp, with nothing placed; once read, the deadline is in the venue's clock and the
    same order is taken."""
    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            sim.faults.configure(market.venue, VenueFaults(clock_skew_ms=4_000))
            urls = sim.venues[market.venue].urls()
            rest, ws = (urls.futures_rest_url, urls.futures_ws_url) if market.is_futures else (urls.rest_url, urls.ws_url)
            settings = ConnectorSettings(order_transport=transport, order_deadline_ms=3000)
            connector = registered()[market](credentials=CREDENTIALS, rest_url=rest, ws_url=ws, settings=settings)
            symbol = PERP if market.is_futures else SPOT
            engine = sim.venues[market.venue].exchanges[market].engine(symbol)
            ask = engine.instrument.ticks_to_price(engine.snapshot(1).asks[0][0])
            quantity = engine.instrument.lots_to_size(1) if market.is_futures else D("0.001")

            def order(cid: str) -> OrderRequest:
                return OrderRequest(
                    symbol=symbol, side=OrderSide.BUY, type=OrderType.LIMIT, quantity=quantity, price=ask,
                    client_order_id=cid, time_in_force=TimeInForce.IOC,
                )

            try:
                with pytest.raises(ExchangeError) as late:
                    await connector.place_order(order("late-1"))
                assert late.value.category == ErrorCategory.TIMESTAMP
                with pytest.raises(OrderRejectedError) as absent:
                    await connector.query_order(symbol, client_order_id="late-1")
                assert absent.value.category == ErrorCategory.UNKNOWN_ORDER
                assert 3_950 < await connector.clock_skew_ms() < 4_050
                assert connector.rest.venue_clock_ahead_ms == connector.clock_skew  # its reset times too
                assert (await connector.place_order(order("taken-1"))).client_order_id == "taken-1"
                found = await connector.query_order(symbol, client_order_id="taken-1")
                assert found.status.is_final and found.filled_quantity > 0
            finally:
                await connector.close()

    run(scenario())


def test_a_clock_read_whose_round_trip_is_too_long_is_made_again_or_not_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    """The midpoint of a slow server-time call (a budget wait, a retry) may be far from when the
    venue read its clock: a read over the round-trip bound is made again, and after three such
    reads the last good skew stays."""
    connector = MexcSpotConnector(credentials=CREDENTIALS, rest_url="http://127.0.0.1:9", ws_url="ws://127.0.0.1:9/")
    monkeypatch.setattr(connector_module, "MAX_CLOCK_READ_RTT_MS", 20)
    round_trips_ms = [50, 0]
    wall_ns, monotonic_ns = [1_700_000_000_000_000_000], [0]  # the connector's clocks, moved only by the reads

    class Clock:
        time_ns = staticmethod(lambda: wall_ns[0])
        monotonic_ns = staticmethod(lambda: monotonic_ns[0])

    async def server_time() -> int:
        took_ns = (round_trips_ms.pop(0) if round_trips_ms else 50) * 1_000_000
        wall_ns[0] += took_ns
        monotonic_ns[0] += took_ns
        return wall_ns[0] // 1_000_000 + 3_000  # the venue's clock 3 s ahead of ours, read as it answers

    monkeypatch.setattr(connector_module, "time", Clock)
    monkeypatch.setattr(connector, "server_time", server_time)
    assert run(connector.clock_skew_ms()) == pytest.approx(3_000, abs=1e-3)  # the second read, the first too slow
    before = connector.clock_skew
    with pytest.raises(ExchangeError, match="clock not read: server-time round trips of 50, 50, 50 ms"):
        run(connector.clock_skew_ms())
    assert connector.clock_skew == before


def test_a_wall_clock_stepped_during_a_clock_read_does_not_pass_for_a_short_round_trip(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wall clock is stepped 5 s back (NTP) during a server-time call of 10 ms: timed on the wall
    clock the round trip was negative, taken as short, and the midpoint 2.5 s off. Timed on the
    monotonic clock, the skew is read against the wall clock as it now runs."""
    connector = MexcSpotConnector(credentials=CREDENTIALS, rest_url="http://127.0.0.1:9", ws_url="ws://127.0.0.1:9/")
    wall_ns, monotonic_ns = [1_700_000_000_000_000_000], [0]

    class Clock:
        time_ns = staticmethod(lambda: wall_ns[0])
        monotonic_ns = staticmethod(lambda: monotonic_ns[0])

    async def server_time() -> int:
        wall_ns[0] += 10_000_000 - 5_000_000_000
        monotonic_ns[0] += 10_000_000
        return (wall_ns[0] - 5_000_000) // 1_000_000 + 3_000  # 3 s ahead of the stepped clock, at the midpoint

    monkeypatch.setattr(connector_module, "time", Clock)
    monkeypatch.setattr(connector, "server_time", server_time)
    assert run(connector.clock_skew_ms()) == pytest.approx(3_000, abs=1e-3)
    # Against the monotonic clock (5 ms at the midpoint), which the step did not move.
    venue_ms = (wall_ns[0] - 5_000_000) // 1_000_000 + 3_000
    assert connector.venue_ahead_of_monotonic_ms == pytest.approx(venue_ms - 5, abs=1e-3)


def test_clock_skew_is_read_at_the_midpoint_of_a_server_time_call() -> None:
    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            sim.faults.configure("mexc", VenueFaults(clock_skew_ms=-1_500))  # the venue's clock runs behind
            mexc, gate = sim.connector(ExchangeName.MEXC), sim.connector(ExchangeName.GATEIO)
            try:
                assert mexc.clock_skew is None
                # Off by at most half the round trip of the read (plus the venue's whole milliseconds),
                # which a loaded machine can stretch: bounded by the time the call took, not a constant.
                started = time.monotonic()
                skew = await mexc.clock_skew_ms()
                error_ms = (time.monotonic() - started) * 500 + 1
                assert abs(skew + 1_500) <= error_ms and mexc.clock_skew == skew  # local clock ahead by 1.5 s
                started = time.monotonic()
                gate_skew = await gate.clock_skew_ms()
                assert abs(gate_skew) <= (time.monotonic() - started) * 500 + 1
            finally:
                await mexc.close()
                await gate.close()

    run(scenario())


@pytest.mark.parametrize("transport", ["ws", "rest"])
def test_a_gate_spot_order_its_text_no_longer_finds_is_found_among_the_finished_ones(
    transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Gate.io's REST reference says a spot order's text finds it only while it is open. An IOC
    that filled at once and whose answer was lost is then still found, with its fill, among the
    pair's finished orders, page by page; an id it never placed is still 'not found'; when the
    pages run out before the list does, the order may be among those not listed, so its outcome
    is unknown rather than 'never placed'; and the time it was sent narrows the list to its minutes."""
    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            urls = sim.venues["gateio"].urls()
            settings = ConnectorSettings(rest=RestSettings(timeout_s=0.3), order_transport=transport)
            connector = GateioSpotConnector(
                credentials=CREDENTIALS, rest_url=urls.rest_url, ws_url=urls.ws_url, settings=settings
            )
            engine = sim.venues["gateio"].exchanges[ExchangeName.GATEIO].engine(SPOT)
            ask = engine.instrument.ticks_to_price(engine.snapshot(1).asks[0][0])
            try:
                for n in range(2):  # an earlier finished order too: the list holds more than the one
                    sim.faults.fail_next_orders("gateio", OrderFaultKind.TIMEOUT_PLACED)
                    with pytest.raises(ExchangeError) as lost:
                        await connector.place_order(OrderRequest(
                            symbol=SPOT, side=OrderSide.BUY, type=OrderType.LIMIT, quantity=D("0.001"),
                            price=ask, client_order_id=f"gone-{n}", time_in_force=TimeInForce.IOC,
                        ))
                    assert lost.value.category == ErrorCategory.OUTCOME_UNKNOWN
                trading = connector._trading
                assert trading is not None
                with pytest.raises(OrderRejectedError):  # the text alone: not found once finished
                    await connector.rest.fetch(trading.query_order(SPOT, None, "gone-1"))
                found = await connector.query_order(SPOT, client_order_id="gone-1")
                placed = engine.order_by_client_id(API_KEY, "t-gone-1")
                assert placed is not None and placed.filled_lots > 0
                assert found.client_order_id == "gone-1" and found.status.is_final
                assert found.filled_quantity == engine.instrument.lots_to_size(placed.filled_lots)
                with pytest.raises(OrderRejectedError) as never:
                    await connector.query_order(SPOT, client_order_id="never-sent")
                assert never.value.category == ErrorCategory.UNKNOWN_ORDER
                # One order a page: the older one is found on the second page.
                monkeypatch.setattr(constants, "FINISHED_ORDERS_LIMIT", 1)
                assert (await connector.query_order(SPOT, client_order_id="gone-0")).client_order_id == "gone-0"
                monkeypatch.setattr(connector_module, "MAX_FINISHED_ORDER_PAGES", 1)
                with pytest.raises(ExchangeError) as full:
                    await connector.query_order(SPOT, client_order_id="never-sent")
                assert full.value.category == ErrorCategory.OUTCOME_UNKNOWN and "1 full pages" in str(full.value)
                # Sent an hour ago (a restart's intent): only the minutes around it are listed, and
                # none of the orders above are there, so "not found" is an answer again.
                with pytest.raises(OrderRejectedError) as absent:
                    await connector.query_order(
                        SPOT, client_order_id="never-sent", sent_at_ms=int(time.time() * 1000) - 3_600_000
                    )
                assert absent.value.category == ErrorCategory.UNKNOWN_ORDER
            finally:
                await connector.close()

    run(scenario())


@pytest.mark.parametrize("venue_ahead_ms", [120_000, -120_000])
def test_a_restart_finds_a_finished_gate_spot_order_among_the_minutes_of_the_venues_clock(venue_ahead_ms: int) -> None:
    """Gate.io's clock runs 2 minutes off ours (read, the order is taken). A restart asks for a
    filled IOC its text no longer finds with the local time its intent was written: the finished
    orders are listed by Gate's clock, so the minutes searched are moved onto it by the restart's
    clock read, and the fill is found rather than taken as never placed."""
    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            sim.faults.configure("gateio", VenueFaults(clock_skew_ms=venue_ahead_ms))
            urls = sim.venues["gateio"].urls()

            def connector() -> GateioSpotConnector:
                return GateioSpotConnector(
                    credentials=CREDENTIALS, rest_url=urls.rest_url, ws_url=urls.ws_url,
                    settings=ConnectorSettings(rest=RestSettings(timeout_s=0.3), order_transport="rest"),
                )

            engine = sim.venues["gateio"].exchanges[ExchangeName.GATEIO].engine(SPOT)
            ask = engine.instrument.ticks_to_price(engine.snapshot(1).asks[0][0])
            placing, restarted = connector(), connector()
            try:
                await placing.clock_skew_ms()
                intent_ms = time.time_ns() // 1_000_000
                placed = await placing.place_order(OrderRequest(
                    symbol=SPOT, side=OrderSide.BUY, type=OrderType.LIMIT, quantity=D("0.001"), price=ask,
                    client_order_id="restart-1", time_in_force=TimeInForce.IOC,
                ))
                assert placed.filled_quantity > 0
                await restarted.clock_skew_ms()
                found = await restarted.query_order(SPOT, client_order_id="restart-1", sent_at_ms=intent_ms)
                assert found.client_order_id == "restart-1" and found.filled_quantity == placed.filled_quantity
            finally:
                await placing.close()
                await restarted.close()

    run(scenario())


def test_a_full_page_of_finished_orders_with_one_left_out_is_still_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """The end of the list was judged by the orders read off a page: a page with an entry left out
    (a market buy that does not say what it bought) counted as the last, and an order of ours on
    the next page was reported never placed."""
    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            urls = sim.venues["gateio"].urls()
            connector = GateioSpotConnector(
                credentials=CREDENTIALS, rest_url=urls.rest_url, ws_url=urls.ws_url,
                settings=ConnectorSettings(rest=RestSettings(timeout_s=0.3), order_transport="rest"),
            )
            engine = sim.venues["gateio"].exchanges[ExchangeName.GATEIO].engine(SPOT)
            ask = engine.instrument.ticks_to_price(engine.snapshot(1).asks[0][0])
            try:
                for n in range(2):
                    sim.faults.fail_next_orders("gateio", OrderFaultKind.TIMEOUT_PLACED)
                    with pytest.raises(ExchangeError):
                        await connector.place_order(OrderRequest(
                            symbol=SPOT, side=OrderSide.BUY, type=OrderType.LIMIT, quantity=D("0.001"),
                            price=ask, client_order_id=f"gone-{n}", time_in_force=TimeInForce.IOC,
                        ))
                order_state = GateioSpotTrading.order_state

                def unsized_newest(trading: GateioSpotTrading, order: Any) -> OrderState:
                    if order.text == "t-gone-1":
                        raise UnsizedMarketBuy("spot market buy: the base bought is unknown")
                    return order_state(trading, order)

                monkeypatch.setattr(GateioSpotTrading, "order_state", unsized_newest)
                monkeypatch.setattr(constants, "FINISHED_ORDERS_LIMIT", 1)  # gone-1 alone on page 1
                found = await connector.query_order(SPOT, client_order_id="gone-0")
                assert found.client_order_id == "gone-0" and found.status.is_final
            finally:
                await connector.close()

    run(scenario())


def test_more_symbols_than_the_venue_subscribes_on_one_connection_fail_the_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MEXC takes 30 depth subscriptions on one connection (here 0): a start with more is refused
    at once with the reason, rather than connecting, being refused and reconnecting forever."""
    from arb.exchanges.mexc.market_data import MexcSpotMarketData

    monkeypatch.setattr(MexcSpotMarketData, "max_subscriptions", 0)

    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            connector = sim.connector(ExchangeName.MEXC)
            try:
                with pytest.raises(ArbitrageEngineError, match="1 depth subscriptions on one connection, the venue allows 0"):
                    await connector.start_books([SPOT])
                assert connector.book_sync() is None and connector.health().connected is False
            finally:
                await connector.close()

    run(scenario())


def test_a_gate_rest_429_is_held_until_the_reset_time_gate_states() -> None:
    """Gate's 429 names when its limit resets (``X-Gate-RateLimit-Reset-Timestamp``) and sends no
    ``Retry-After``: the refused order's budget is held until then (0.3 s here), not for the
    1 s default of an answer that names no wait."""
    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            urls = sim.venues["gateio"].urls()
            connector = GateioSpotConnector(
                credentials=CREDENTIALS, rest_url=urls.rest_url, ws_url=urls.ws_url,
                settings=ConnectorSettings(order_transport="rest"),
            )
            try:
                sim.faults.fail_next_orders("gateio", OrderFaultKind.RATE_LIMIT, retry_after_ms=300)
                engine = sim.venues["gateio"].exchanges[ExchangeName.GATEIO].engine(SPOT)
                ask = engine.instrument.ticks_to_price(engine.snapshot(1).asks[0][0])
                with pytest.raises(RateLimitError) as refused:
                    await connector.place_order(OrderRequest(
                        symbol=SPOT, side=OrderSide.BUY, type=OrderType.LIMIT, quantity=D("0.001"), price=ask,
                        client_order_id="held-1", time_in_force=TimeInForce.IOC,
                    ))
                assert refused.value.retry_after_s is not None and 0.1 <= refused.value.retry_after_s <= 0.3
                assert 0 < connector.order_wait_s(SPOT) <= 0.3
            finally:
                await connector.close()

    run(scenario())


def test_a_mexc_order_a_query_does_not_find_at_once_is_asked_about_again_until_found() -> None:
    """MEXC is reported not to find an order queried right after its placing at times (-2013). An IOC
    it acknowledged is asked about at once, then again with backoff: its fill is learned, not left
    unknown or taken as never placed."""
    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            sim.faults.configure("mexc", VenueFaults(query_lag_ms=120))
            urls = sim.venues["mexc"].urls()
            connector = MexcSpotConnector(credentials=CREDENTIALS, rest_url=urls.rest_url, ws_url=urls.ws_url)
            try:
                instrument = await connector.instrument(SPOT)
                engine = sim.venues["mexc"].exchanges[ExchangeName.MEXC].engine(SPOT)
                ask = engine.instrument.ticks_to_price(engine.snapshot(1).asks[0][0])
                runner = OrderRunner({ExchangeName.MEXC: connector})
                order = ioc_order(instrument, OrderSide.BUY, D("0.001"), ask, "lag-1")
                outcome = await runner.run(ExchangeName.MEXC, instrument, order, "buy")
                assert outcome.resolved and outcome.error is None and outcome.filled == D("0.001")
                assert connector.rest.stats.errors["unknown_order"] >= 1  # not found at first
            finally:
                await connector.close()

    run(scenario())


@pytest.mark.parametrize("market", [ExchangeName.GATEIO, ExchangeName.GATEIO_FUTURES])
def test_queries_and_cancels_go_over_rest_while_the_websocket_api_is_down(market: ExchangeName) -> None:
    """An order's outcome is learned by querying it: with the websocket order API unreachable and
    REST answering, the query must not fail (and the execution be flagged for an operator)."""
    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            urls = sim.venues[market.venue].urls()
            rest = urls.futures_rest_url if market.is_futures else urls.rest_url
            with socket.socket() as probe:  # a port nothing listens on: the websocket API is down
                probe.bind(("127.0.0.1", 0))
                down = f"ws://127.0.0.1:{probe.getsockname()[1]}/"
            placing = registered()[market](credentials=CREDENTIALS, rest_url=rest, settings=REST_ORDERS)
            settings = ConnectorSettings(order_transport="ws", ws=WsSettings(handshake_timeout_s=0.2))
            asking = registered()[market](credentials=CREDENTIALS, rest_url=rest, ws_url=down, settings=settings)
            symbol = PERP if market.is_futures else SPOT
            engine = sim.venues[market.venue].exchanges[market].engine(symbol)
            ask = engine.instrument.ticks_to_price(engine.snapshot(1).asks[0][0])
            quantity = engine.instrument.lots_to_size(1) if market.is_futures else D("0.001")
            try:
                placed = await placing.place_order(OrderRequest(
                    symbol=symbol, side=OrderSide.BUY, type=OrderType.LIMIT, quantity=quantity, price=ask,
                    client_order_id="rest-1", time_in_force=TimeInForce.IOC,
                ))
                found = await asking.query_order(symbol, client_order_id="rest-1")
                assert found.order_id == placed.order_id and found.filled_quantity == placed.filled_quantity > 0
                with pytest.raises(OrderRejectedError) as finished:  # answered by the venue, over REST
                    await asking.cancel_order(symbol, client_order_id="rest-1")
                assert finished.value.category == ErrorCategory.UNKNOWN_ORDER
            finally:
                await placing.close()
                await asking.close()

    run(scenario())


def test_a_websocket_order_api_whose_first_login_is_rate_limited_leaves_queries_to_rest_and_the_start_going() -> None:
    """Gate.io refusing the websocket order API's first login for its rate limit failed the start
    of the private stream (the engine's start) and every query and cancel, where REST answered."""
    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            placing = sim.connector(ExchangeName.GATEIO)
            asking = sim.connector(ExchangeName.GATEIO)
            logins: list[int] = []

            async def login_rate_limited() -> None:
                logins.append(1)
                raise RateLimitError("gateio", "spot.login: Request Rate limit Exceeded", retry_after_s=5.0)

            asking._order_transport = login_rate_limited  # type: ignore[method-assign]
            try:
                await asking.start_private_stream(None, lambda fill: None)
                assert asking.private_stream is not None and logins == [1]
                engine = sim.venues["gateio"].exchanges[ExchangeName.GATEIO].engine(SPOT)
                ask = engine.instrument.ticks_to_price(engine.snapshot(1).asks[0][0])
                placed = await placing.place_order(OrderRequest(
                    symbol=SPOT, side=OrderSide.BUY, type=OrderType.LIMIT, quantity=D("0.001"), price=ask,
                    client_order_id="rl-1", time_in_force=TimeInForce.IOC,
                ))
                found = await asking.query_order(SPOT, client_order_id="rl-1")
                assert found.order_id == placed.order_id and logins == [1, 1]
            finally:
                await placing.close()
                await asking.close()

    run(scenario())


def test_a_websocket_order_api_started_across_a_close_is_closed_not_kept() -> None:
    """``close`` while the first order's websocket API was logging in closed nothing of it (not yet
    kept), and the start then kept it on the closed connector: a logged-in connection nothing closed."""
    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            connector = sim.connector(ExchangeName.GATEIO)
            binding = connector.binding
            assert binding.ws_orders is not None
            started: list[Any] = []
            closing: list[asyncio.Task[None]] = []

            def ws_orders(*args: Any) -> Any:
                assert binding.ws_orders is not None
                started.append(binding.ws_orders(*args))
                closing.append(asyncio.create_task(connector.close()))  # runs while it logs in
                return started[0]

            connector.binding = msgspec.structs.replace(binding, ws_orders=ws_orders)
            try:
                closed_meanwhile = "closed while the websocket order API started"
                with pytest.raises(ExchangeConnectionError, match=closed_meanwhile) as info:
                    await connector.place_order(limit_buy(ExchangeName.GATEIO, "across-1"))
                assert info.value.category == ErrorCategory.NOT_SENT
                await closing[0]
                task = started[0].session._task
                assert connector._orders_ws is None and task is not None and task.done()
                assert sim.venues["gateio"].exchanges[ExchangeName.GATEIO].open_orders(API_KEY) == []
            finally:
                await connector.close()

    run(scenario())


@pytest.mark.parametrize("market", [ExchangeName.MEXC, ExchangeName.GATEIO])
def test_signed_requests_carry_the_venues_time_once_its_clock_is_read(market: ExchangeName) -> None:
    """MEXC refuses a timestamp more than 1 s ahead of its clock: a local clock 1.2 s ahead had
    every order refused even after the engine had read how far off it was."""
    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            sim.faults.configure(market.venue, VenueFaults(clock_skew_ms=-1_200))  # the venue 1.2 s behind
            urls = sim.venues[market.venue].urls()
            connector = registered()[market](
                credentials=CREDENTIALS, rest_url=urls.rest_url, ws_url=urls.ws_url, settings=REST_ORDERS
            )
            engine = sim.venues[market.venue].exchanges[market].engine(SPOT)
            ask = engine.instrument.ticks_to_price(engine.snapshot(1).asks[0][0])
            try:
                assert -1_250 < await connector.clock_skew_ms() < -1_150
                placed = await connector.place_order(OrderRequest(
                    symbol=SPOT, side=OrderSide.BUY, type=OrderType.LIMIT, quantity=D("0.001"), price=ask,
                    client_order_id="skew-1", time_in_force=TimeInForce.IOC,
                ))
                assert placed.client_order_id == "skew-1"
                assert (await connector.balances())  # a signed read too
            finally:
                await connector.close()

    run(scenario())


@pytest.mark.parametrize("market", [ExchangeName.MEXC, ExchangeName.GATEIO])
def test_the_private_stream_and_websocket_orders_sign_with_the_venues_time_too(market: ExchangeName) -> None:
    """The listen key (MEXC) and the websocket logins (Gate.io) are signed requests as well: with the
    local clock 1.2 s ahead of MEXC's, the private stream could not start once the clock was read."""
    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            sim.faults.configure(market.venue, VenueFaults(clock_skew_ms=-1_200))
            urls = sim.venues[market.venue].urls()
            connector = registered()[market](credentials=CREDENTIALS, rest_url=urls.rest_url, ws_url=urls.ws_url)
            try:
                assert -1_250 < await connector.clock_skew_ms() < -1_150
                await connector.start_private_stream(None, lambda fill: None, lambda balance: None)
                await eventually(lambda: connector.private_subscribed() is True, what="subscribed")
            finally:
                await connector.close()

    run(scenario())


@pytest.mark.parametrize("market", [ExchangeName.MEXC, ExchangeName.GATEIO, ExchangeName.GATEIO_FUTURES])
def test_fee_rate_requests_are_signed_by_the_venues_clock(market: ExchangeName) -> None:
    """The account's fee rates are a signed read too: stamped by the local clock, MEXC refused them
    (700003) with the local clock 1.2 s ahead, and the listed rates stayed in use for the run."""
    connector = registered()[market](credentials=CREDENTIALS, rest_url="http://127.0.0.1:9", ws_url="ws://127.0.0.1:9")
    connector.clock_skew = -1_200.0  # the venue's clock 1.2 s behind the local one
    source = connector._fee_source()
    assert source is not None
    request = source.fee_request(next(i for i in instruments() if i.exchange is market))
    if market.venue == "mexc":
        stamped_ms = int(dict(part.split("=") for part in request.query.split("&"))["timestamp"])
    else:
        stamped_ms = int(request.headers["Timestamp"]) * 1000
    local_ms = time.time_ns() // 1_000_000
    assert local_ms - 2_300 < stamped_ms < local_ms - 1_000 + 100
