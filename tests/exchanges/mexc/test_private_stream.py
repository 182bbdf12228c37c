"""MEXC user data stream: protobuf private pushes against the .proto field numbers, listenKey routes."""

from __future__ import annotations

import time
from decimal import Decimal as D
from typing import Any

import msgspec
import pytest
from sim.simdata import spot

from arb.exchanges.mexc.private_sim import MexcPrivateSimSession, deal_push, listen_key_user, order_push, user_stream_routes
from arb.exchanges.mexc.private_stream import (
    ACCOUNT_FIELDS,
    DEAL_FIELDS,
    ORDER_FIELDS,
    MexcSpotPrivateStream,
    fields,
    message,
)
from arb.exchanges.models import Balance
from arb.exchanges.mexc.sim import MexcSpotSimSession
from arb.instruments import InstrumentCatalog
from arb.secrets import ApiCredentials, Secret
from arb.sim.faults import FaultPlan
from arb.sim.http import SimContext
from arb.sim.matching import Fill, SimExchange
from arb.sim.matching import OrderType as SimOrderType
from arb.sim.matching import TimeInForce as SimTimeInForce
from arb.types import ExchangeName, OrderSide

KEY = "k1"
CREDENTIALS = ApiCredentials(Secret(KEY), Secret("s1"))
NOW_MS = 1_700_000_000_000
# mexcdevelop/websocket-proto PrivateDealsV3Api.proto / PrivateOrdersV3Api.proto (field -> name), kept apart from the code.
PROTO_DEALS = {1: "price", 2: "quantity", 3: "amount", 4: "tradeType", 5: "isMaker", 6: "isSelfTrade", 7: "tradeId",
               8: "clientOrderId", 9: "orderId", 10: "feeAmount", 11: "feeCurrency", 12: "time"}
PROTO_ORDERS_PREFIX = {1: "id", 2: "clientId", 3: "price", 4: "quantity", 5: "amount", 6: "avgPrice", 7: "orderType",
                       8: "tradeType", 9: "isMaker", 10: "remainAmount", 11: "remainQuantity", 12: "lastDealQuantity",
                       13: "cumulativeQuantity", 14: "cumulativeAmount", 15: "status", 16: "createTime"}


def setup() -> tuple[SimExchange, SimContext, MexcSpotPrivateStream]:
    instrument = spot(ExchangeName.MEXC, venue_symbol="BTCUSDT", fees_in_quote=True)
    exchange = SimExchange(ExchangeName.MEXC, [instrument])
    context = SimContext(venue="mexc", exchanges={ExchangeName.MEXC: exchange}, faults=FaultPlan(),
                         credentials={KEY: CREDENTIALS}, now_ns=time.monotonic_ns, wall_ms=lambda: NOW_MS)
    client = MexcSpotPrivateStream(CREDENTIALS, InstrumentCatalog(ExchangeName.MEXC, [instrument]), "ws://x",
                                   clock_ms=lambda: NOW_MS)
    return exchange, context, client


PROTO_ACCOUNT = {1: "vcoinName", 2: "coinId", 3: "balanceAmount", 4: "balanceAmountChange", 5: "frozenAmount",
                 6: "frozenAmountChange", 7: "type", 8: "time"}


def test_field_tables_follow_the_proto() -> None:
    assert DEAL_FIELDS == PROTO_DEALS and ORDER_FIELDS == PROTO_ORDERS_PREFIX and ACCOUNT_FIELDS == PROTO_ACCOUNT


def an_ioc_buy_filled() -> tuple[Any, MexcSpotPrivateStream, list[Any]]:
    """0.1 BTC bought IOC (client id c1) from a maker's 0.25 at 60000.5: the book engine, the
    stream client and the venue's events of our user."""
    exchange, _, client = setup()
    engine = exchange.engines["BTC/USDT"]
    exchange.deposit("maker", "BTC", "1")
    exchange.deposit(KEY, "USDT", "10000")
    exchange.place_order("maker", "BTC/USDT", OrderSide.SELL, SimOrderType.LIMIT, engine.size_lots("0.25"),
                         time.monotonic_ns(), price_ticks=engine.price_ticks("60000.5"))
    exchange.place_order(KEY, "BTC/USDT", OrderSide.BUY, SimOrderType.LIMIT, engine.size_lots("0.1"),
                         time.monotonic_ns(), price_ticks=engine.price_ticks("61000"),
                         time_in_force=SimTimeInForce.IOC, client_id="c1")
    return engine, client, [e for e in exchange.drain_events() if e.user == KEY]


def test_pushes_round_trip_exactly() -> None:
    engine, client, mine = an_ioc_buy_filled()
    messages = []
    for event in mine:
        frame = (deal_push(engine, event, NOW_MS, NOW_MS) if isinstance(event, Fill)
                 else order_push(engine, event, NOW_MS, NOW_MS))
        wrapper = dict(fields(frame))
        assert wrapper[1] in (b"spot@private.deals.v3.api.pb", b"spot@private.orders.v3.api.pb")
        assert wrapper[3] == b"BTCUSDT" and wrapper[6] == NOW_MS
        messages.append(client.decode(frame, True))
    fills = [f for m in messages for f in m.fills]
    orders = [o for m in messages for o in m.orders]
    assert len(fills) == 1 and fills[0].price == D("60000.5") and fills[0].quantity == D("0.1")
    # MEXC charges a buy's fee in quote: the push says what the engine charged, 0.1 % of 6000.05 USDT.
    assert fills[0].fee_asset == "USDT" and fills[0].fee == D("6.00005")
    assert not fills[0].is_maker and fills[0].client_order_id == "c1"
    assert orders[-1].filled_quantity == D("0.1") and orders[-1].fee == fills[0].fee > 0
    assert orders[-1].average_price == D("60000.5") and orders[0].quantity == D("0.1")


def test_a_deal_pushed_twice_counts_its_fee_once() -> None:
    engine, client, mine = an_ioc_buy_filled()
    (deal,) = [deal_push(engine, e, NOW_MS, NOW_MS) for e in mine if isinstance(e, Fill)]
    (fill,) = client.decode(deal, True).fills
    assert client.decode(deal, True).fills == [fill]  # decoded again (the stream hands it to on_fill once)
    orders = [o for e in mine if not isinstance(e, Fill) for o in client.decode(order_push(engine, e, NOW_MS, NOW_MS), True).orders]
    assert orders[-1].is_final and orders[-1].fee == fill.fee > 0 and orders[-1].fee_asset == "USDT"


def test_listen_key_lifecycle_and_private_topics() -> None:
    _, context, client = setup()
    assert [r.method for r in user_stream_routes()] == ["POST", "PUT", "DELETE"]
    key = "a" * 64
    context.user_streams[key] = (KEY, NOW_MS + 3_600_000)
    assert listen_key_user(context, f"/ws?listenKey={key}") == (True, KEY)
    assert listen_key_user(context, "/ws?listenKey=unknown") == (False, None)
    context.user_streams[key] = (KEY, NOW_MS - 1)
    assert listen_key_user(context, f"/ws?listenKey={key}")[0] is False  # expired
    session = MexcPrivateSimSession(MexcSpotSimSession(["BTCUSDT"]), context, KEY)
    (ack,) = session.handle(client.subscribe_frames()[0], NOW_MS).frames
    assert client.decode(ack.encode(), False).ack and len(session.private) == 3
    anonymous = MexcPrivateSimSession(MexcSpotSimSession(["BTCUSDT"]), context, None)
    (refused,) = anonymous.handle(client.subscribe_frames()[0], NOW_MS).frames
    assert client.decode(refused.encode(), False).error is not None
    assert msgspec.json.decode(refused)["code"] == 0  # refused with code 0, as MEXC does


def test_truncated_protobuf_is_refused() -> None:
    _, _, client = setup()
    with pytest.raises(ValueError, match="past the message end"):
        client.decode(b"\x0a\x09spot@", True)  # a string field running past the end
    with pytest.raises(ValueError, match="truncated varint"):
        client.decode(b"\x08\x80", True)
    assert message(b"\x08\x01", {1: "x"}) == {"x": 1}


def test_account_pushes_after_a_fill_equal_the_venue_balances() -> None:
    exchange, context, client = setup()
    session = MexcPrivateSimSession(MexcSpotSimSession(["BTCUSDT"]), context, KEY)
    exchange.deposit("maker", "BTC", "1")
    exchange.deposit(KEY, "USDT", "10000")
    session.handle(client.subscribe_frames()[0], NOW_MS)
    engine = exchange.engines["BTC/USDT"]
    exchange.place_order("maker", "BTC/USDT", OrderSide.SELL, SimOrderType.LIMIT, engine.size_lots("0.25"),
                         time.monotonic_ns(), price_ticks=engine.price_ticks("60000.5"))
    exchange.drain_events()
    exchange.place_order(KEY, "BTC/USDT", OrderSide.BUY, SimOrderType.LIMIT, engine.size_lots("0.1"),
                         time.monotonic_ns(), price_ticks=engine.price_ticks("61000"),
                         time_in_force=SimTimeInForce.IOC, client_id="c1")
    frames = session.private_frames([(e, 0) for e in exchange.drain_events()], NOW_MS)
    decoded = [client.decode(f, True) for f in frames]
    assert [bool(m.balances) for m in decoded][-2:] == [True, True]  # after the order and deal pushes
    pushed = {b.asset: b for m in decoded for b in m.balances}
    assert pushed == {
        a: Balance(asset=a, free=f, locked=l, updated_at_ms=NOW_MS) for a, (f, l) in exchange.balances(KEY).items()
    }
    assert dict(fields(frames[-1]))[1] == b"spot@private.account.v3.api.pb"


def test_a_reconnect_whose_old_listen_key_is_gone_makes_a_new_one_at_once() -> None:
    """The old key's DELETE fails when the key is why the stream reconnects (expired, its keep-alive
    refused): that failure failed the whole reconnect, which made the new key only after a backoff."""
    from loopback import eventually, run
    from simvenues import simulated_venues

    from arb.types import ExchangeName

    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            connector = sim.connector(ExchangeName.MEXC)
            try:
                await connector.start_private_stream(lambda order: None, lambda fill: None)
                stream = connector.private_stream
                assert stream is not None
                sim.venues["mexc"].context.user_streams.clear()  # the key expired at the venue
                stream.session.drop()
                await eventually(lambda: stream.session.connects == 2 and stream.session.connected, 10, "reconnected")
                assert stream.session.errors.get("connect", 0) == 0
                assert len(sim.venues["mexc"].context.user_streams) == 1  # the new key
            finally:
                await connector.close()

    run(scenario())


def test_a_rate_limited_listen_key_request_holds_its_own_budget_not_the_orders() -> None:
    """Listen-key requests named no budget, and a 429 on one (a keep-alive) held every budget:
    orders and their queries blocked for the venue's Retry-After, up to an hour."""
    from arb.exchanges.mexc import constants
    from arb.exchanges.mexc.connector import MexcSpotConnector
    from arb.types import ExchangeName

    credentials = ApiCredentials(Secret("key"), Secret("secret"))
    connector = MexcSpotConnector(credentials=credentials, rest_url="http://127.0.0.1:9", ws_url="ws://127.0.0.1:9/ws")
    stream = MexcSpotPrivateStream(credentials, InstrumentCatalog(ExchangeName.MEXC, []), "ws://127.0.0.1:9/ws")
    keepalive = stream._request("PUT", "k1")
    assert keepalive.limits == ((constants.USER_DATA_STREAM_PATH, 1),)
    limiter = connector.rest.limiter
    error = connector.rest._failure(keepalive, 429, {"Retry-After": "60"}, b'{"code":429,"msg":"too many"}')
    assert error.retry_after_s is not None and error.retry_after_s > 0
    assert limiter.wait_s(keepalive.limits) > 0
    assert limiter.wait_s(connector.binding.order_limits) == 0  # orders still go


def test_an_order_or_deal_of_a_pair_the_catalog_does_not_list_is_left_out_not_malformed() -> None:
    """The topics push every pair of the account: a trade made by hand on another pair was counted
    as an unreadable frame and warned about with its payload at every push."""
    from arb.exchanges.private_stream import PrivateStream

    engine, _, mine = an_ioc_buy_filled()
    eth = spot(ExchangeName.MEXC, symbol="ETH/USDT", venue_symbol="ETHUSDT", base="ETH")
    other = MexcSpotPrivateStream(CREDENTIALS, InstrumentCatalog(ExchangeName.MEXC, [eth]), "ws://x", clock_ms=lambda: NOW_MS)
    pushes = [deal_push(engine, e, NOW_MS, NOW_MS) if isinstance(e, Fill) else order_push(engine, e, NOW_MS, NOW_MS)
              for e in mine]
    assert [other.decode(p, True).unlisted for p in pushes] == [["BTCUSDT"]] * len(pushes)
    received: list[object] = []
    stream = PrivateStream(other, None, received.append, received.append)  # type: ignore[arg-type]
    for push in pushes:
        stream._on_message(memoryview(push), True, True, 0)
    assert stream.malformed == 0 and stream.unlisted == len(pushes) and not received
