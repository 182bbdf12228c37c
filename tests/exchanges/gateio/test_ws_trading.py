"""Gate.io WS trading API: the simulator's side frame by frame, then the connector end to end over loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal as D
from typing import Any

import msgspec
import pytest
from loopback import WsTestServer, eventually, run
from shapes import assert_same_shape
from simvenues import API_KEY, CREDENTIALS, PERP, SPOT, instruments, simulated_venues

from arb.errors import ExchangeConnectionError, ExchangeError, OrderRejectedError, RateLimitError
from arb.exchanges.connector import ConnectorSettings
from arb.exchanges.errors import ErrorCategory
from arb.exchanges.gateio.auth import GateioSigner
from arb.exchanges.gateio.trading import GateioSpotTrading, rest_venue
from arb.exchanges.gateio.ws_trading import GateioWsOrders
from arb.exchanges.gateio.ws_trading_sim import GateioWsApiSimSession
from arb.exchanges.models import OrderRequest, OrderStatus, OrderType
from arb.exchanges.rest import RestClient, RestSettings
from arb.instruments import InstrumentCatalog
from arb.secrets import ApiCredentials, Secret
from arb.sim.faults import OrderFaultKind
from arb.sim.server import SimulatedVenue
from arb.types import ExchangeName, OrderSide

# Keys that Gate's newer order objects carry and the 2023 docs example does not (and vice versa).
ORDER_OPTIONAL = ("$.data.result.filled_amount", "$.data.result.avg_deal_price")


def _session(futures: bool = False) -> tuple[GateioWsApiSimSession, SimulatedVenue]:
    venue = SimulatedVenue("gateio", instruments(), credentials={API_KEY: CREDENTIALS})
    for exchange in venue.exchanges.values():
        exchange.deposit(API_KEY, "USDT", "100000")
    market = ExchangeName.GATEIO_FUTURES if futures else ExchangeName.GATEIO
    session = venue.markets[market].wire.new_session()
    assert isinstance(session, GateioWsApiSimSession)
    return session, venue


def _login_frame(now_s: int, secret: str = "sim-secret-1", key: str = API_KEY, channel: str = "spot.login") -> bytes:
    signer = GateioSigner(ApiCredentials(Secret(key), Secret(secret)))
    payload = signer.ws_login_payload(channel, now_s, "login-1")
    return json.dumps({"time": now_s, "channel": channel, "event": "api", "payload": payload}).encode()


def _api(channel: str, req_id: str, param: dict[str, Any], now_s: int) -> bytes:
    frame = {"time": now_s, "channel": channel, "event": "api", "payload": {"req_id": req_id, "req_param": param}}
    return json.dumps(frame).encode()


def _replies(session: GateioWsApiSimSession, frame: bytes, now_ms: int) -> list[dict[str, Any]]:
    return [json.loads(f) for f in session.handle(frame, now_ms).frames]


ORDER = {"text": "t-ws-1", "currency_pair": "BTC_USDT", "type": "limit", "account": "spot", "side": "buy",
         "amount": "0.001", "price": "50000"}


def test_login_is_verified_as_gate_does() -> None:
    session, venue = _session()
    now_ms = venue.context.wall_ms()
    now_s = now_ms // 1000
    for frame, label in [
        (_login_frame(now_s, secret="wrong"), "INVALID_SIGNATURE"),
        (_login_frame(now_s, key="unknown"), "INVALID_KEY"),
        (_login_frame(now_s - 120), "REQUEST_EXPIRED"),
        (_login_frame(now_s, channel="futures.login"), "INVALID_PROTOCOL"),  # the spot endpoint
    ]:
        [reply] = _replies(session, frame, now_ms)
        assert reply["data"]["errs"]["label"] == label and reply["request_id"] == "login-1"
        assert reply["header"]["status"] == ("400" if label == "INVALID_PROTOCOL" else "401")
    [refused] = _replies(session, _api("spot.order_place", "r1", ORDER, now_s), now_ms)
    assert refused["data"]["errs"]["label"] == "FORBIDDEN" and session.user is None
    assert venue.exchanges[ExchangeName.GATEIO].open_orders(API_KEY) == []
    [accepted] = _replies(session, _login_frame(now_s), now_ms)
    assert accepted["header"]["status"] == "200" and accepted["data"]["result"]["api_key"] == API_KEY
    assert session.user == API_KEY


def test_order_place_ack_then_result_shaped_like_the_docs(shared_data: Any) -> None:
    examples = json.loads((shared_data / "examples" / "gate_docs_ws_examples.json").read_text())
    session, venue = _session()
    now_ms = venue.context.wall_ms()
    _replies(session, _login_frame(now_ms // 1000), now_ms)
    ack, result = _replies(session, _api("spot.order_place", "request-2", ORDER, now_ms // 1000), now_ms)
    assert_same_shape(ack, examples["spot_ws_api_order_place_ack"])
    assert_same_shape(result, examples["spot_ws_api_order_place_result"], optional=ORDER_OPTIONAL)
    assert ack["ack"] is True and ack["data"]["result"]["req_param"] == ORDER
    assert result["request_id"] == "request-2" and result["data"]["result"]["text"] == "t-ws-1"
    assert result["header"]["x_in_time"] <= result["header"]["x_out_time"]
    [status] = _replies(session, _api("spot.order_status", "r3", {"order_id": "t-ws-1", "currency_pair": "BTC_USDT"}, 0), now_ms)
    assert status["data"]["result"]["status"] == "open"
    [cancel] = _replies(session, _api("spot.order_cancel", "r4", {"order_id": "t-ws-1", "currency_pair": "BTC_USDT"}, 0), now_ms)
    assert cancel["data"]["result"]["finish_as"] == "cancelled"
    [again] = _replies(session, _api("spot.order_cancel", "r5", {"order_id": "t-ws-1", "currency_pair": "BTC_USDT"}, 0), now_ms)
    assert again["data"]["errs"]["label"] == "ORDER_NOT_FOUND" and again["header"]["status"] == "404"


def test_a_burst_past_the_pairs_order_limit_is_refused_429_with_the_counters_in_the_header() -> None:
    """The websocket API takes 10 spot orders of a pair a second, as REST does: each ack and result
    carries the counters, the 11th is refused with status 429 and TOO_MANY_REQUESTS, its header
    saying when the window takes one again; a status read spends nothing."""
    session, venue = _session()
    now_ms = venue.context.wall_ms()
    venue.context.now_ns = lambda: 5_000_000_000  # the whole burst at one instant
    _replies(session, _login_frame(now_ms // 1000), now_ms)
    remains = []
    for n in range(10):
        ack, result = _replies(session, _api("spot.order_place", f"p{n}", {**ORDER, "text": f"t-b{n}"}, 0), now_ms)
        ack_counters, result_counters = (
            (r["header"]["x_gate_ratelimit_requests_remain"], r["header"]["x_gate_ratelimit_limit"]) for r in (ack, result)
        )
        assert ack_counters == result_counters  # one request, one spending
        remains.append(result_counters)
    assert remains == [(9 - n, 10) for n in range(10)]
    [refused] = _replies(session, _api("spot.order_place", "p10", {**ORDER, "text": "t-b10"}, 0), now_ms)
    header = refused["header"]
    assert refused["data"]["errs"]["label"] == "TOO_MANY_REQUESTS" and header["status"] == "429"
    assert header["x_gate_ratelimit_requests_remain"] == 0 and header["x_gate_ratelimit_reset_timestamp"] > now_ms
    assert len(venue.exchanges[ExchangeName.GATEIO].open_orders(API_KEY)) == 10
    [status] = _replies(session, _api("spot.order_status", "s1", {"order_id": "t-b0", "currency_pair": "BTC_USDT"}, 0), now_ms)
    assert status["data"]["result"]["status"] == "open" and "x_gate_ratelimit_limit" not in status["header"]
    assert venue.context.rate_limits.refused == {"gateio spot order place": 1}


def test_other_frames_still_reach_the_market_data_session() -> None:
    session, venue = _session()
    frame = b'{"time":1,"channel":"spot.order_book_update","event":"subscribe","payload":["BTC_USDT","100ms"]}'
    [ack] = _replies(session, frame, venue.context.wall_ms())
    assert ack["result"] == {"status": "success"} and list(session.subscriptions) == [("spot.order_book_update", "BTC_USDT")]


# --- connector end to end over loopback --------------------------------------------------------


def limit_buy(symbol: str, client_order_id: str, price: str = "50000") -> OrderRequest:
    quantity = D(2) if symbol == PERP else D("0.001")
    return OrderRequest(
        symbol=symbol, side=OrderSide.BUY, type=OrderType.LIMIT, quantity=quantity, price=D(price),
        client_order_id=client_order_id,
    )


@pytest.mark.parametrize("market", [ExchangeName.GATEIO, ExchangeName.GATEIO_FUTURES], ids=lambda m: m.value)
def test_place_status_cancel_over_the_ws_api(market: ExchangeName) -> None:
    symbol = PERP if market.is_futures else SPOT

    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            connector = sim.connector(market)
            assert connector.settings.order_transport == "ws"
            try:
                await connector.instruments()
                rest_before = sim.venues["gateio"].requests
                placed = await connector.place_order(limit_buy(symbol, "w-1"))
                assert placed.status is OrderStatus.NEW and placed.client_order_id == "w-1"
                by_client = await connector.query_order(symbol, client_order_id="w-1")
                by_id = await connector.query_order(symbol, order_id=placed.order_id)
                assert by_client.order_id == by_id.order_id == placed.order_id and by_id.price == D(50000)
                cancelled = await connector.cancel_order(symbol, client_order_id="w-1")
                assert cancelled.status is OrderStatus.CANCELED and cancelled.order_id == placed.order_id
                # Login, orders, reads and cancels all went over the websocket.
                assert sim.venues["gateio"].requests == rest_before
                orders = connector._orders_ws
                assert isinstance(orders, GateioWsOrders) and orders.acks == 1 and orders.results == 4
            finally:
                await connector.close()

    run(scenario())


def test_a_futures_cancel_over_the_ws_api_spends_the_placement_budget() -> None:
    """Gate's websocket API allows futures placements and cancels 100 in any second together; a
    cancel there spent a budget of its own (200 a second, the REST cancel limit), so placements and
    cancels could send 300 a second into it."""

    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            connector = sim.connector(ExchangeName.GATEIO_FUTURES)
            try:
                await connector.place_order(limit_buy(PERP, "wc-1"))
                assert connector.order_wait_s(PERP, 99) == 0.0  # the placement spent one of 100
                await connector.cancel_order(PERP, client_order_id="wc-1")
                assert connector.order_wait_s(PERP, 98) == 0.0 and connector.order_wait_s(PERP, 99) > 0
            finally:
                await connector.close()

    run(scenario())


def test_login_refused_with_a_bad_signature() -> None:
    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            bad = ApiCredentials(Secret(API_KEY), Secret("not-the-secret"))
            connector = sim.connector(ExchangeName.GATEIO, credentials=bad)
            try:
                with pytest.raises(ExchangeError, match="Signature mismatch") as info:
                    await connector.place_order(limit_buy(SPOT, "bad-1"))
                assert info.value.category == ErrorCategory.AUTH_FAILED
                # Starting the private stream logs the order transport in ahead: refused there, before any order.
                with pytest.raises(ExchangeError, match="spot.login: Signature mismatch") as info:
                    await connector.start_private_stream(lambda state: None, lambda fill: None)
                assert info.value.category == ErrorCategory.AUTH_FAILED
                assert sim.venues["gateio"].exchanges[ExchangeName.GATEIO].open_orders(API_KEY) == []
            finally:
                await connector.close()

    run(scenario())


def test_a_start_cancelled_before_the_login_closes_its_connection() -> None:
    """A start cancelled while the login was on its way (a stop during the start-up) left the
    session running with no owner: it logged in again after every drop, and nothing closed it."""
    async def scenario() -> None:
        server = await WsTestServer().start()  # answers no login
        spot = InstrumentCatalog(ExchangeName.GATEIO, [i for i in instruments() if i.exchange is ExchangeName.GATEIO])
        orders = GateioWsOrders(CREDENTIALS, spot, server.url, RestClient(rest_venue("http://127.0.0.1:1")))
        try:
            starting = asyncio.ensure_future(orders.start(5.0))
            await eventually(lambda: orders.session.connected, what="the login sent")
            starting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await starting
            task = orders.session._task
            assert task is not None and task.done() and not orders.session.connected
        finally:
            await orders.close()
            await server.close()

    run(scenario())


@asynccontextmanager
async def logged_in_orders(first_order: str) -> AsyncIterator[tuple[Any, GateioWsOrders]]:
    """The simulated Gate.io spot connector and its websocket orders, logged in by a first order."""
    async with simulated_venues(moving=False) as sim:
        connector = sim.connector(ExchangeName.GATEIO)
        try:
            await connector.place_order(limit_buy(SPOT, first_order))
            orders = connector._orders_ws
            assert isinstance(orders, GateioWsOrders) and orders.logged_in
            yield connector, orders
        finally:
            await connector.close()


def test_a_login_refused_on_a_reconnect_connects_again_rather_than_refusing_every_order() -> None:
    """The connection stayed up after the refused login, pings kept it so, and every order was
    refused with that login's error until a restart. Until a login is accepted again, the
    connection does not count as logged in (the connector's queries and cancels go by REST)."""
    async def scenario() -> None:
        async with logged_in_orders("ok-1") as (connector, orders):
            connects = orders.session.connects
            connector.clock_skew = -120_000  # the clock read 2 minutes off as the connection comes back
            orders.session.drop()
            await eventually(lambda: orders._login_error is not None, what="the login refused")
            assert orders._login_error.category == ErrorCategory.TIMESTAMP and not orders.logged_in
            connector.clock_skew = 0.0  # right again
            await eventually(lambda: orders.logged_in and orders.session.connects > connects + 1, 10,
                             "logged in on a connection after the refused one")
            state = await connector.place_order(limit_buy(SPOT, "ok-2"))
            assert state.client_order_id == "ok-2"

    run(scenario())


def test_a_request_after_a_login_the_venue_failed_on_is_not_sent_not_of_unknown_outcome() -> None:
    """A login answered SERVER_ERROR was raised again for every order with its own category,
    OUTCOME_UNKNOWN, though nothing was written: each order was then queried for nothing."""
    async def scenario() -> None:
        async with logged_in_orders("ok-1") as (connector, orders):
            orders._login_error = ExchangeError(
                "gateio", "spot.login: internal error (code SERVER_ERROR)", category=ErrorCategory.OUTCOME_UNKNOWN
            )
            with pytest.raises(ExchangeError) as info:
                await orders.place_order(limit_buy(SPOT, "after-1"))
            assert info.value.category == ErrorCategory.NOT_SENT and "SERVER_ERROR" in str(info.value)
            orders._login_error = ExchangeError("gateio", "spot.login: bad key", category=ErrorCategory.AUTH_FAILED)
            with pytest.raises(ExchangeError) as info:
                await orders.place_order(limit_buy(SPOT, "after-2"))
            assert info.value.category == ErrorCategory.AUTH_FAILED  # the refusal itself, as it was

    run(scenario())


def test_an_order_whose_deadline_passed_while_it_waited_for_its_budget_is_not_sent() -> None:
    """An order waiting for its pair's budget went out once it was admitted, its deadline already
    past: Gate refuses it for its timestamp (counted against the venue-errors breaker, and a
    clock read forced). It is not sent; one whose deadline is still ahead goes."""
    async def scenario() -> None:
        async with logged_in_orders("ok-1") as (connector, orders):
            ((limit_id, _),) = orders._place_cost(limit_buy(SPOT, "late-1"))
            sent = orders.acks
            orders.rest.limiter.block([limit_id], 0.2)
            with pytest.raises(ExchangeError, match="deadline passed while it waited") as info:
                await orders.place_order(limit_buy(SPOT, "late-1"), int(orders._clock() * 1000) + 50)
            assert info.value.category == ErrorCategory.NOT_SENT and orders.acks == sent
            with pytest.raises(OrderRejectedError):
                await connector.query_order(SPOT, client_order_id="late-1")  # the venue never saw it
            orders.rest.limiter.block([limit_id], 0.2)
            body = await orders.place_order(limit_buy(SPOT, "in-time-1"), int(orders._clock() * 1000) + 5_000)
            assert json.loads(body)["text"] == "t-in-time-1"

    run(scenario())


def test_timeout_is_outcome_unknown_then_the_client_id_resolves_it() -> None:
    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            connector = sim.connector(ExchangeName.GATEIO, rest_timeout_s=0.3)
            try:
                sim.faults.fail_next_orders("gateio", OrderFaultKind.TIMEOUT_PLACED)
                with pytest.raises(ExchangeError) as info:
                    await connector.place_order(limit_buy(SPOT, "lost-1"))
                assert info.value.category == ErrorCategory.OUTCOME_UNKNOWN
                assert "client_order_id='lost-1'" in str(info.value)
                found = await connector.query_order(SPOT, client_order_id="lost-1")
                assert found.status is OrderStatus.NEW and found.client_order_id == "lost-1"
            finally:
                await connector.close()

    run(scenario())


@pytest.mark.parametrize(("reset_in_ms", "held_s"), [(0, 0.1), (30_000, 1.0)], ids=["due", "far"])
def test_a_rate_limit_reset_is_held_for_at_least_a_little_and_at_most_the_budgets_window(
    reset_in_ms: int, held_s: float
) -> None:
    """Gate's own example reply has the reset time equal to the response time (or a millisecond
    off): a wait of about 0 would send the order again at once, into the same limit, until its
    deadline; it is held 0.1 s. A reset 30 s off (a venue clock step, a bad reply) would hold the
    pair's order budget, whose window is 1 s, for 30 s: it is held for the window at most."""

    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            connector = sim.connector(ExchangeName.GATEIO)
            try:
                sim.faults.fail_next_orders("gateio", OrderFaultKind.RATE_LIMIT, retry_after_ms=reset_in_ms)
                with pytest.raises(RateLimitError) as limited:
                    await connector.place_order(limit_buy(SPOT, "rl-0"))
                assert limited.value.retry_after_s == held_s  # what the budget is then held for
            finally:
                await connector.close()

    run(scenario())


def test_rate_limit_and_reject_faults_map_through_the_label_table() -> None:
    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            connector = sim.connector(ExchangeName.GATEIO)
            try:
                sim.faults.fail_next_orders("gateio", OrderFaultKind.RATE_LIMIT, retry_after_ms=200)
                with pytest.raises(RateLimitError) as limited:
                    await connector.place_order(limit_buy(SPOT, "rl-1"))
                assert limited.value.retry_after_s == pytest.approx(0.2, abs=0.02)
                # Gate counts spot placement per pair: the refusal holds this pair's budget only.
                assert connector.order_wait_s(SPOT) > 0.1 and connector.order_wait_s("ETH/USDT") == 0.0
                placed = await connector.place_order(limit_buy(SPOT, "rl-1"))  # waits out the block
                assert placed.status is OrderStatus.NEW and connector.rest.limiter.waits >= 1
                sim.faults.fail_next_orders("gateio", OrderFaultKind.REJECT, category=ErrorCategory.INSUFFICIENT_BALANCE)
                with pytest.raises(OrderRejectedError) as rejected:
                    await connector.place_order(limit_buy(SPOT, "rej-1"))
                assert rejected.value.category == ErrorCategory.INSUFFICIENT_BALANCE
                assert rejected.value.code == "BALANCE_NOT_ENOUGH"
                # Too busy (a 5xx) answering an order: it may have been taken, as over REST.
                sim.faults.fail_next_orders("gateio", OrderFaultKind.REJECT, category=ErrorCategory.MAINTENANCE)
                with pytest.raises(ExchangeError) as busy:
                    await connector.place_order(limit_buy(SPOT, "busy-1"))
                assert busy.value.category == ErrorCategory.OUTCOME_UNKNOWN and "(code TOO_BUSY)" in str(busy.value)
                # Refused for its timestamp: told on as the REST client tells its own (the clock is read).
                refused_for_time: list[str] = []
                connector.rest.on_timestamp_refused = refused_for_time.append
                sim.faults.fail_next_orders("gateio", OrderFaultKind.REJECT, category=ErrorCategory.TIMESTAMP)
                with pytest.raises(ExchangeError) as expired:
                    await connector.place_order(limit_buy(SPOT, "ts-1"))
                assert expired.value.category == ErrorCategory.TIMESTAMP and refused_for_time == ["spot.order_place 'ts-1'"]
                with pytest.raises(OrderRejectedError) as unknown:
                    await connector.query_order(SPOT, client_order_id="rej-1")
                assert unknown.value.category == ErrorCategory.UNKNOWN_ORDER
            finally:
                await connector.close()

    run(scenario())


def test_lost_connection_leaves_a_pending_order_unknown_and_rest_transport_still_works() -> None:
    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            connector = sim.connector(ExchangeName.GATEIO)
            rest_only = sim.connector(ExchangeName.GATEIO)
            rest_only.settings = msgspec.structs.replace(rest_only.settings, order_transport="rest")
            try:
                await connector.place_order(limit_buy(SPOT, "up-1"))
                orders = connector._orders_ws
                assert isinstance(orders, GateioWsOrders)
                sim.faults.fail_next_orders("gateio", OrderFaultKind.TIMEOUT_PLACED)
                pending = connector.place_order(limit_buy(SPOT, "drop-1"))
                task = asyncio.ensure_future(pending)
                await asyncio.sleep(0.05)
                orders.session.drop()
                with pytest.raises(ExchangeError, match="connection lost") as info:
                    await task
                assert info.value.category == ErrorCategory.OUTCOME_UNKNOWN
                # The REST transport reads the order the websocket placed.
                found = await rest_only.query_order(SPOT, client_order_id="drop-1")
                assert found.status is OrderStatus.NEW and rest_only._orders_ws is None
            finally:
                await connector.close()
                await rest_only.close()

    run(scenario())


def test_write_order_writes_only_on_a_logged_in_connection() -> None:
    async def scenario() -> None:
        async with logged_in_orders("up-1") as (_, orders):
            orders.session.drop()
            await eventually(lambda: not orders.logged_in, what="the drop noticed")
            assert orders.write_order(limit_buy(SPOT, "w-1")) is None  # no login yet: it would wait
            await eventually(lambda: orders.logged_in, what="logged in again")
            written = orders.write_order(limit_buy(SPOT, "w-1"))
            assert written is not None and orders.results == 1
            placed = json.loads(await written)
            assert placed["text"] == "t-w-1" and orders.results == 2

    run(scenario())


def test_an_order_written_as_a_server_close_is_answered_is_not_sent_rather_than_of_unknown_outcome() -> None:
    """Until the disconnect arrives a turn after a server's CLOSE is answered, the connection looked
    logged in: the order was dropped unwritten and then queried as of unknown outcome."""
    async def scenario() -> None:
        async with logged_in_orders("up-1") as (connector, orders):
            transport = orders.session._transport
            assert transport is not None
            transport.send_close()  # what answering a server's CLOSE does
            transport.disconnect()
            assert orders.logged_in and orders.write_order(limit_buy(SPOT, "w-1")) is None
            with pytest.raises(ExchangeConnectionError, match="is not connected") as info:
                await connector.place_order(limit_buy(SPOT, "w-1"))
            assert info.value.category is ErrorCategory.NOT_SENT

    run(scenario())


def test_settings_refuse_an_unknown_transport() -> None:
    with pytest.raises(ValueError, match="order_transport='fix'"):
        ConnectorSettings(order_transport="fix")
    with pytest.raises(ValueError, match="order_timeout_s"):
        ConnectorSettings(rest=RestSettings(), order_timeout_s=0)


def test_use_catalog_rebuilds_the_trading_module_only_for_another_catalog() -> None:
    spot = [i for i in instruments() if i.exchange is ExchangeName.GATEIO]
    catalog = InstrumentCatalog(ExchangeName.GATEIO, spot)
    orders = GateioWsOrders(CREDENTIALS, catalog, "ws://127.0.0.1:1/ws/v4/", RestClient(rest_venue("http://127.0.0.1:1")))
    built = orders._trading
    orders.use_catalog(catalog)  # the connector's call before every request
    assert orders._trading is built
    reloaded = InstrumentCatalog(ExchangeName.GATEIO, spot)
    orders.use_catalog(reloaded)
    assert orders._trading is not built and orders._trading.instruments is reloaded
    assert isinstance(orders._trading, GateioSpotTrading)


def test_a_refusal_echoing_the_login_shows_neither_the_key_nor_the_signature() -> None:
    """A refusal whose message echoed the login frame put the API key and the login's signature in
    the error, and in the warning logged with it; the venue's reason stays."""
    spot = [i for i in instruments() if i.exchange is ExchangeName.GATEIO]
    key = "APIKEY-0123456789abcdef"
    orders = GateioWsOrders(ApiCredentials(Secret(key), Secret("SECRET-fedcba9876543210")),
                            InstrumentCatalog(ExchangeName.GATEIO, spot), "ws://127.0.0.1:1/ws/v4/",
                            RestClient(rest_venue("http://127.0.0.1:1")))
    [login] = orders._login_frames()
    signature = json.loads(login)["payload"]["signature"]
    reply = {"request_id": orders._login_id, "header": {"status": "401", "channel": "spot.login"},
             "data": {"errs": {"label": "INVALID_KEY", "message": f"Invalid key in {login}"}}}
    orders._on_message(memoryview(json.dumps(reply).encode()), False, True, 0)
    error = orders._login_error
    assert error is not None and "Invalid key in" in str(error) and "****" in str(error)
    assert key not in f"{error} {error!r}" and signature not in f"{error} {error!r}"


def _rate_limited_login(orders: GateioWsOrders, reset_in_ms: int) -> None:
    """Feed ``orders`` Gate's 429 answer to its last login, its reset ``reset_in_ms`` after the answer."""
    now_ms = 1_700_000_000_000
    reply = {"request_id": orders._login_id,
             "header": {"status": "429", "channel": "spot.login", "response_time": str(now_ms),
                        "x_gate_ratelimit_reset_timestamp": now_ms + reset_in_ms},
             "data": {"errs": {"label": "TOO_MANY_REQUESTS", "message": "Request Rate limit Exceeded"}}}
    orders._on_message(memoryview(json.dumps(reply).encode()), False, True, 0)


def _orders_on(rest: RestClient) -> GateioWsOrders:
    spot = [i for i in instruments() if i.exchange is ExchangeName.GATEIO]
    return GateioWsOrders(CREDENTIALS, InstrumentCatalog(ExchangeName.GATEIO, spot), "ws://127.0.0.1:1/ws/v4/", rest)


def test_a_login_refused_for_the_rate_limit_holds_only_the_next_login_and_no_longer_than_the_longest_window() -> None:
    """A login names no budget: its refusal held every request of the market, REST queries,
    cancels, hedges and snapshots included, as an IP ban does, and for its stated reset uncapped
    (an hour off: a venue clock step, a bad reply). As a REST refusal naming no budget holds its
    own endpoint alone, only the next login waits, and for Gate's longest window at most."""
    rest = RestClient(rest_venue("http://127.0.0.1:1"))
    orders = _orders_on(rest)
    orders._login_frames()
    _rate_limited_login(orders, 3_600_000)
    error = orders._login_error
    assert isinstance(error, RateLimitError) and error.retry_after_s == 10.0
    order_cost = orders._place_cost(limit_buy(SPOT, "x"))
    assert rest.limiter.wait_s(()) == 0 and rest.limiter.wait_s(order_cost) == 0

    async def reconnecting() -> list[str]:
        orders._started = True
        drops: list[str] = []
        orders.session.drop = lambda: drops.append(orders._login_id)  # type: ignore[method-assign]
        orders._login_frames()
        _rate_limited_login(orders, 200)  # refused on a reconnect: connect again once the wait is over
        assert drops == []
        await asyncio.sleep(0.3)
        orders._login_frames()  # logged in again meanwhile, on a connection of its own: not dropped
        _rate_limited_login(orders, 200)
        orders._login_error = None
        await asyncio.sleep(0.3)
        return drops

    assert len(run(reconnecting())) == 1
