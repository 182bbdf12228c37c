"""Gate.io spot private channels: client frames and decoding, simulator auth and push shapes."""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal as D

import msgspec
import pytest
from shapes import assert_same_shape
from sim.simdata import perp, spot

from arb.exchanges.gateio.auth import GateioSigner
from arb.exchanges.gateio.private_sim import FUTURES_PRIVATE, GateioPrivateSimSession
from arb.exchanges.gateio.private_stream import GateioFuturesPrivateStream, GateioSpotPrivateStream
from arb.exchanges.gateio.sim import FUTURES, SPOT, GateioSimSession, _user_number
from arb.exchanges.gateio.trading import GateioSpotTrading
from arb.exchanges.models import Balance, OrderStatus
from arb.instruments import InstrumentCatalog
from arb.secrets import ApiCredentials, Secret
from arb.sim.http import SimContext
from arb.sim.faults import FaultPlan
from arb.sim.matching import Fill, SimExchange
from arb.sim.matching import OrderType as SimOrderType
from arb.sim.matching import TimeInForce as SimTimeInForce
from arb.types import ExchangeName, OrderSide

KEY = "k1"
CREDENTIALS = ApiCredentials(Secret(KEY), Secret("s1"))
NOW_S = 1_700_000_000
# Gate docs (spot_websocket_api.md, coincise a00ae58): "Server Notification" examples.
DOC_USERTRADES = {
    "time": 1605176741, "time_ms": 1605176741763, "channel": "spot.usertrades", "event": "update",
    "result": [{"id": 5736713, "user_id": 1000001, "order_id": "30784428", "currency_pair": "BTC_USDT",
                "create_time": 1605176741, "create_time_ms": "1605176741123.456", "side": "sell",
                "amount": "1.00000000", "role": "taker", "price": "10000.00000000", "fee": "0.00200000000000",
                "point_fee": "0", "gt_fee": "0", "text": "apiv4", "id_market": 5736713}],
}
DOC_ORDERS = {
    "time": 1605175506, "channel": "spot.orders", "event": "update",
    "result": [{"id": "30784435", "user": 123456, "text": "t-abc", "create_time": "1605175506",
                "create_time_ms": "1605175506123", "update_time": "1605175506", "update_time_ms": "1605175506123",
                "event": "put", "currency_pair": "BTC_USDT", "type": "limit", "account": "spot", "side": "sell",
                "amount": "1", "price": "10001", "time_in_force": "gtc", "left": "1", "filled_total": "0",
                "fee": "0", "fee_currency": "USDT", "point_fee": "0", "gt_fee": "0", "gt_discount": True,
                "rebated_fee": "0", "rebated_fee_currency": "USDT"}],
}
DOC_BALANCES = {
    "time": 1605248616, "time_ms": 1605248616763, "channel": "spot.balances", "event": "update",
    "result": [{"timestamp": "1667556323", "timestamp_ms": "1667556323730", "user": "1000001", "currency": "USDT",
                "change": "0", "total": "222244.3827652", "available": "222244.3827", "freeze": "5",
                "freeze_change": "5.000000", "change_type": "order-create"}],
}
# Gate docs (futures websocket_api.md, coincise): "Orders notification", "User trades notification",
# "balances notification".
DOC_FUTURES_ORDERS = {
    "channel": "futures.orders", "event": "update", "time": 1541505434, "time_ms": 1541505434123,
    "result": [{"contract": "BTC_USD", "create_time": 1628736847, "create_time_ms": 1628736847325,
                "fill_price": 40000.4, "finish_as": "filled", "finish_time": 1628736848,
                "finish_time_ms": 1628736848321, "iceberg": 0, "id": 4872460, "is_close": False, "is_liq": False,
                "is_reduce_only": False, "left": 0, "mkfr": -0.00025, "price": 40000.4, "refr": 0, "refu": 0,
                "size": 1, "status": "finished", "text": "-", "tif": "gtc", "tkfr": 0.0005, "user": "110xxxxx",
                "update_id": 1, "update_time": 1541505434123, "stop_loss_price": "", "stop_profit_price": ""}],
}
DOC_FUTURES_USERTRADES = {
    "time": 1543205083, "time_ms": 1543205083123, "channel": "futures.usertrades", "event": "update",
    "result": [{"id": "3335259", "create_time": 1628736848, "create_time_ms": 1628736848321, "contract": "BTC_USD",
                "order_id": "4872460", "size": 1, "price": "40000.4", "role": "maker", "text": "api",
                "fee": 0.0009290592, "point_fee": 0}],
}
DOC_FUTURES_BALANCES = {
    "channel": "futures.balances", "event": "update", "time": 1541505434, "time_ms": 1541505434123,
    "result": [{"balance": 9.998739899488, "change": -0.000002074115, "text": "BTC_USD:3914424", "time": 1547199246,
                "time_ms": 1547199246123, "type": "fee", "user": "211xxx", "currency": "btc"}],
}


def setup() -> tuple[SimExchange, SimContext, GateioPrivateSimSession, GateioSpotPrivateStream]:
    instrument = spot(ExchangeName.GATEIO)
    exchange = SimExchange(ExchangeName.GATEIO, [instrument])
    context = SimContext(
        venue="gateio", exchanges={ExchangeName.GATEIO: exchange}, faults=FaultPlan(), credentials={KEY: CREDENTIALS},
        now_ns=time.monotonic_ns, wall_ms=lambda: NOW_S * 1000,
    )
    session = GateioPrivateSimSession(GateioSimSession(SPOT, ["BTC_USDT"]), context, ["BTC_USDT"])
    client = GateioSpotPrivateStream(CREDENTIALS, InstrumentCatalog(ExchangeName.GATEIO, [instrument]), "ws://x",
                                     clock=lambda: NOW_S)
    return exchange, context, session, client


def test_signed_subscriptions_are_acknowledged_and_decoded_as_acks() -> None:
    _, _, session, client = setup()
    frames = client.subscribe_frames()
    assert [msgspec.json.decode(f)["channel"] for f in frames] == ["spot.orders", "spot.usertrades", "spot.balances"]
    assert "payload" not in msgspec.json.decode(frames[2])  # spot.balances takes none
    for frame in frames:
        (reply,) = session.handle(frame, NOW_S * 1000).frames
        assert client.decode(reply, False).ack
    assert session.user == KEY and session.private["spot.orders"] == {"!all"}


def test_bad_signature_unknown_key_and_stale_time_are_refused_with_code_4() -> None:
    _, _, session, client = setup()
    good = msgspec.json.decode(client.subscribe_frames()[0])
    cases = [
        {**good, "auth": {**good["auth"], "SIGN": "0" * 128}},
        {**good, "auth": {**good["auth"], "KEY": "nobody"}},
        {k: v for k, v in good.items() if k != "auth"},
        {**good, "time": NOW_S - 61},  # outside the window (and signed over another time)
    ]
    for request in cases:
        (reply,) = session.handle(msgspec.json.encode(request), NOW_S * 1000).frames
        doc = msgspec.json.decode(reply)
        assert doc["error"]["code"] == 4 and doc["result"] == {"status": "fail"}
        assert client.decode(reply, False).error is not None
    assert session.user is None and not session.private


def test_a_refusal_echoing_the_subscription_shows_neither_the_key_nor_its_signature() -> None:
    """A subscription refusal whose message echoed the request put the API key and the channel's
    signature into the stream's errors and logs."""
    _, _, _, client = setup()
    request = msgspec.json.decode(client.subscribe_frames()[0])
    echo = f"bad auth {request['auth']}"
    reply = msgspec.json.encode({"time": NOW_S, "channel": "spot.orders", "event": "subscribe",
                                 "error": {"code": 4, "message": echo}, "result": {"status": "fail"}})
    error = client.decode(reply, False).error
    assert error is not None and "bad auth" in error and "****" in error
    assert request["auth"]["KEY"] not in error and request["auth"]["SIGN"] not in error


def test_pushes_decode_exactly_and_have_the_documented_shape() -> None:
    exchange, context, session, client = setup()
    for frame in client.subscribe_frames():
        session.handle(frame, NOW_S * 1000)
    exchange.deposit("maker", "BTC", "1")
    exchange.deposit(KEY, "USDT", "10000")
    engine = exchange.engines["BTC/USDT"]
    exchange.place_order("maker", "BTC/USDT", OrderSide.SELL, SimOrderType.LIMIT, engine.size_lots("0.3"),
                         time.monotonic_ns(), price_ticks=engine.price_ticks("60000"))
    exchange.drain_events()
    exchange.place_order(KEY, "BTC/USDT", OrderSide.BUY, SimOrderType.LIMIT, engine.size_lots("0.1"),
                         time.monotonic_ns(), price_ticks=engine.price_ticks("61000"),
                         time_in_force=SimTimeInForce.IOC, client_id="t-abc")
    events = exchange.drain_events()
    fee = sum(e.fee_atoms for e in events if isinstance(e, Fill) and e.user == KEY)
    items = [(e, fee if not isinstance(e, Fill) else e.fee_atoms) for e in events]
    frames = session.private_frames(items, NOW_S * 1000)
    decoded = [client.decode(f, False) for f in frames]
    fills = [f for m in decoded for f in m.fills]
    orders = [o for m in decoded for o in m.orders]
    assert [f.price for f in fills] == [D("60000")] and fills[0].quantity == D("0.1") and fills[0].fee_asset == "BTC"
    assert orders[-1].filled_quantity == D("0.1") and orders[-1].fee == fills[0].fee and orders[0].client_order_id == "abc"
    balances = {b.asset: b for m in decoded for b in m.balances}
    assert balances == {
        a: Balance(asset=a, free=f, locked=l, updated_at_ms=NOW_S * 1000) for a, (f, l) in exchange.balances(KEY).items()
    }
    docs = {"spot.usertrades": DOC_USERTRADES, "spot.orders": DOC_ORDERS, "spot.balances": DOC_BALANCES}
    for frame in frames:
        doc = msgspec.json.decode(frame)
        expected = docs[doc["channel"]]
        assert_same_shape(doc, expected, optional={
            "$.time_ms", "$.result[0].fee_currency", "$.result[0].filled_amount", "$.result[0].avg_deal_price",
            "$.result[0].stp_id", "$.result[0].stp_act", "$.result[0].finish_as", "$.result[0].amend_text",
        })
    assert [msgspec.json.decode(f)["result"][0]["event"] for f in frames if b"spot.orders" in f][0] == "put"


def setup_futures() -> tuple[SimExchange, GateioPrivateSimSession, GateioFuturesPrivateStream]:
    instrument = perp(ExchangeName.GATEIO_FUTURES)
    exchange = SimExchange(ExchangeName.GATEIO_FUTURES, [instrument])
    context = SimContext(
        venue="gateio", exchanges={ExchangeName.GATEIO_FUTURES: exchange}, faults=FaultPlan(),
        credentials={KEY: CREDENTIALS}, now_ns=time.monotonic_ns, wall_ms=lambda: NOW_S * 1000,
    )
    session = GateioPrivateSimSession(GateioSimSession(FUTURES, ["BTC_USDT"]), context, ["BTC_USDT"], FUTURES_PRIVATE)
    catalog = InstrumentCatalog(ExchangeName.GATEIO_FUTURES, [instrument])
    client = GateioFuturesPrivateStream(CREDENTIALS, catalog, "ws://x", clock=lambda: NOW_S)
    client.user_id = _user_number(KEY)  # what connect_url reads from /futures/usdt/accounts
    return exchange, session, client


def test_futures_subscriptions_name_the_user_id_and_are_acknowledged() -> None:
    _, session, client = setup_futures()
    frames = [msgspec.json.decode(f) for f in client.subscribe_frames()]
    user = _user_number(KEY)
    assert [(f["channel"], f["payload"]) for f in frames] == [
        ("futures.orders", [user, "!all"]), ("futures.usertrades", [user, "!all"]), ("futures.balances", [user]),
    ]
    for frame in client.subscribe_frames():
        (reply,) = session.handle(frame, NOW_S * 1000).frames
        assert client.decode(reply, False).ack
    assert session.private == {"futures.orders": {"!all"}, "futures.usertrades": {"!all"}, "futures.balances": {"!all"}}


def test_futures_wrong_user_id_and_bad_signature_are_refused() -> None:
    _, session, client = setup_futures()
    good = msgspec.json.decode(client.subscribe_frames()[0])
    other_user = {**good, "payload": ["20011", "!all"]}  # signature covers channel, event and time only
    (reply,) = session.handle(msgspec.json.encode(other_user), NOW_S * 1000).frames
    assert msgspec.json.decode(reply)["error"]["code"] == 2 and client.decode(reply, False).error is not None
    bad_sign = {**good, "auth": {**good["auth"], "SIGN": "0" * 128}}
    (reply,) = session.handle(msgspec.json.encode(bad_sign), NOW_S * 1000).frames
    assert msgspec.json.decode(reply)["error"]["code"] == 4
    assert session.user is None and not session.private


def futures_ioc_buy_pushes(client_id: str) -> tuple[SimExchange, GateioFuturesPrivateStream, list[bytes]]:
    """3 contracts bought IOC from a maker's 5 at 60000.5, subscribed: the venue, the stream client
    and the private frames the venue pushed for it."""
    exchange, session, client = setup_futures()
    for frame in client.subscribe_frames():
        session.handle(frame, NOW_S * 1000)
    exchange.deposit("maker", "USDT", "100000")
    exchange.deposit(KEY, "USDT", "10000")
    engine = exchange.engines["BTC/USDT:USDT"]
    exchange.place_order("maker", "BTC/USDT:USDT", OrderSide.SELL, SimOrderType.LIMIT, 5, time.monotonic_ns(),
                         price_ticks=engine.price_ticks("60000.5"))
    exchange.drain_events()
    exchange.place_order(KEY, "BTC/USDT:USDT", OrderSide.BUY, SimOrderType.LIMIT, 3, time.monotonic_ns(),
                         price_ticks=engine.price_ticks("61000.5"), time_in_force=SimTimeInForce.IOC,
                         client_id=client_id)
    return exchange, client, session.private_frames([(e, 0) for e in exchange.drain_events()], NOW_S * 1000)


def test_futures_pushes_decode_contracts_and_fees_exactly_and_have_the_documented_shape() -> None:
    exchange, client, frames = futures_ioc_buy_pushes("t-f1")
    decoded = [client.decode(f, False) for f in frames]
    fills = [f for m in decoded for f in m.fills]
    orders = [o for m in decoded for o in m.orders]
    (fill,) = fills
    assert fill.quantity == D(3) and fill.price == D("60000.5") and fill.side is OrderSide.BUY
    assert fill.fee == D(3) * D("0.0001") * D("60000.5") * D("0.0005") == D("0.009000075") and fill.fee_asset == "USDT"
    assert orders[-1].status is OrderStatus.FILLED and orders[-1].filled_quantity == D(3) == orders[-1].quantity
    assert orders[-1].fee == fill.fee and orders[-1].client_order_id == "f1" and orders[-1].price == D("61000.5")
    assert [m.balances_changed for m in decoded].count(True) == 1 and decoded[-1].balances_changed
    signed = [msgspec.json.decode(f)["result"][0] for f in frames if b'"futures.usertrades"' in f]
    assert signed[0]["size"] == 3
    docs = {"futures.orders": DOC_FUTURES_ORDERS, "futures.usertrades": DOC_FUTURES_USERTRADES,
            "futures.balances": DOC_FUTURES_BALANCES}
    last = {msgspec.json.decode(f)["channel"]: msgspec.json.decode(f) for f in frames}
    assert set(last) == set(docs)
    for channel, doc in last.items():
        # Gate writes floats as numbers, so 0 is an int (an unfilled fill_price): compare the final pushes.
        # The documented envelopes list their keys in different orders from channel to channel.
        assert set(doc) == set(docs[channel])
        assert_same_shape(doc["result"], docs[channel]["result"])
    wallet = msgspec.json.decode(frames[-1])["result"][0]
    free, locked = exchange.balances(KEY)["USDT"]
    assert D(str(wallet["balance"])) == free + locked == D("10000") - fill.fee


def test_futures_trade_pushed_twice_counts_its_fee_once() -> None:
    _, client, frames = futures_ioc_buy_pushes("t-f2")
    trades = [f for f in frames if b'"futures.usertrades"' in f]
    orders = [f for f in frames if b'"futures.orders"' in f]
    assert trades and orders
    fill, resent = [f for frame in trades + trades for f in client.decode(frame, False).fills]
    assert resent == fill  # decoded again (the stream hands it to on_fill once)
    final = [o for frame in orders for o in client.decode(frame, False).orders][-1]
    assert final.status is OrderStatus.FILLED and final.fee == fill.fee > 0


def test_futures_pushes_with_sizes_as_text_decode_and_an_order_without_fees_names_no_fee_asset() -> None:
    """Gate's futures websocket docs show ``"size":"1"`` (text) in some editions; and an order state
    pushed before any of its trades has no fee yet, which is not a fee of 0 USDT."""
    _, _, client = setup_futures()
    trade = {"id": 7, "create_time": NOW_S, "create_time_ms": NOW_S * 1000, "contract": "BTC_USDT", "order_id": "42",
             "size": "-3", "price": "60000.5", "role": "taker", "text": "t-f9", "fee": "0.009"}
    frame = msgspec.json.encode({"time": NOW_S, "channel": "futures.usertrades", "event": "update", "result": [trade]})
    (fill,) = client.decode(frame, False).fills
    assert fill.side is OrderSide.SELL and fill.quantity == D(3) and fill.fee == D("0.009")
    order = {"contract": "BTC_USDT", "create_time": NOW_S, "id": 43, "left": "3", "price": "60000.5", "size": "3",
             "status": "open", "text": "t-f10", "tif": "ioc", "fill_price": "0", "update_time": NOW_S * 1000}
    frame = msgspec.json.encode({"time": NOW_S, "channel": "futures.orders", "event": "update", "result": [order]})
    (state,) = client.decode(frame, False).orders
    assert (state.fee, state.fee_asset) == (D(0), None)


@pytest.mark.parametrize("amount", ["NaN", "Infinity", "-Infinity", "sNaN"])
def test_a_balance_that_is_not_a_number_is_left_out_and_the_others_kept(amount: str) -> None:
    """Decimal takes "NaN" and "Infinity", and every later comparison of such a balance raised: it is
    left out of the push, the other assets of the same push kept (REST lists likewise)."""
    _, _, _, client = setup()
    push = msgspec.json.decode(msgspec.json.encode(DOC_BALANCES))
    good = push["result"][0]
    push["result"] = [dict(good, currency="OLD", available=amount), good]
    (usdt,) = client.decode(msgspec.json.encode(push), False).balances
    assert (usdt.asset, usdt.free, usdt.locked) == ("USDT", D("222244.3827"), D("5"))
    listed = f'[{{"currency":"OLD","available":"{amount}","locked":"0"}},{{"currency":"USDT","available":"1","locked":"0"}}]'
    assert list(GateioSpotTrading(GateioSigner(CREDENTIALS), client._catalog).parse_balances(listed.encode())) == ["USDT"]


@pytest.mark.parametrize("stamp", ["NaN", "-1", "1E+30", "0", "1667556323"])
def test_a_balance_stamped_with_no_time_is_kept_undated_with_the_others(stamp: str) -> None:
    """A ``timestamp_ms`` that is no time raised outside the per-asset check: every asset of the
    push was lost with the one badly stamped. One of 0 or in seconds dated it before every read."""
    _, _, _, client = setup()
    push = msgspec.json.decode(msgspec.json.encode(DOC_BALANCES))
    good = push["result"][0]
    push["result"] = [dict(good, currency="OLD", timestamp_ms=stamp), good]
    old, usdt = client.decode(msgspec.json.encode(push), False).balances
    assert (old.asset, old.updated_at_ms) == ("OLD", None)
    assert (usdt.asset, usdt.updated_at_ms) == ("USDT", 1667556323730)


@pytest.mark.parametrize(("channel", "field", "value"), [
    ("spot.usertrades", "create_time_ms", "1E+999999999"),  # int() of it built a billion digits on the loop
    ("spot.usertrades", "create_time_ms", "Infinity"),
    ("spot.orders", "update_time_ms", "NaN"),
    ("spot.orders", "amount", "sNaN"),
    ("futures.orders", "size", "NaN"),
    ("futures.orders", "update_time", "NaN"),
    ("futures.usertrades", "size", "sNaN"),
])
def test_a_push_with_a_value_that_is_no_number_is_counted_malformed(channel: str, field: str, value: str) -> None:
    """Such values escaped the stream's malformed count as ArithmeticErrors (or froze the loop)."""
    from arb.exchanges.private_stream import PrivateStream

    futures = channel.startswith("futures")
    client = setup_futures()[2] if futures else setup()[3]
    doc = {"spot.usertrades": DOC_USERTRADES, "spot.orders": DOC_ORDERS, "futures.orders": DOC_FUTURES_ORDERS,
           "futures.usertrades": DOC_FUTURES_USERTRADES}[channel]
    push = msgspec.json.decode(msgspec.json.encode(doc))
    if futures:
        push["result"][0]["contract"] = "BTC_USDT"  # the docs' BTC_USD is no contract of this catalog
    received: list[object] = []
    stream = PrivateStream(client, None, received.append, received.append)  # type: ignore[arg-type]
    stream._on_message(memoryview(msgspec.json.encode(push)), False, True, 0)
    assert stream.malformed == 0 and len(received) == 1  # the push as documented reads
    push["result"][0][field] = value
    stream._on_message(memoryview(msgspec.json.encode(push)), False, True, 0)
    assert stream.malformed == 1 and len(received) == 1


def test_an_order_push_paid_in_gt_reports_no_fee_as_the_rest_answer_does() -> None:
    """Its fee says 0 in the fee currency: not what the trade cost. The REST reading reports no fee
    asset (the taker rate is charged instead); the push reported a zero USDT fee."""
    client = setup()[3]
    push = msgspec.json.decode(msgspec.json.encode(DOC_ORDERS))
    push["result"][0] |= {"event": "finish", "finish_as": "filled", "left": "0", "filled_total": "10001",
                          "gt_fee": "0.0123"}
    (state,) = client.decode(msgspec.json.encode(push), False).orders
    assert (state.status, state.fee, state.fee_asset) == (OrderStatus.FILLED, D(0), None)


def test_a_futures_trade_push_without_a_fee_leaves_the_order_fee_unknown() -> None:
    _, _, client = setup_futures()
    trade = msgspec.json.decode(msgspec.json.encode(DOC_FUTURES_USERTRADES))
    trade["result"][0]["contract"] = "BTC_USDT"
    del trade["result"][0]["fee"]
    client.decode(msgspec.json.encode(trade), False)
    order = msgspec.json.decode(msgspec.json.encode(DOC_FUTURES_ORDERS))
    order["result"][0] |= {"contract": "BTC_USDT", "id": trade["result"][0]["order_id"]}
    (state,) = client.decode(msgspec.json.encode(order), False).orders
    assert (state.fee, state.fee_asset) == (D(0), None)  # not a zero fee in USDT


@pytest.mark.parametrize("channel", ["spot.usertrades", "spot.orders", "futures.orders", "futures.usertrades"])
def test_items_on_pairs_the_catalog_does_not_list_are_left_out_one_by_one(
    channel: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The channels push every pair of the account: a trade made by hand on another pair made the
    whole push unreadable (the engine's own items in it lost with it), counted malformed and warned
    about with its payload at every push."""
    from arb.exchanges.private_stream import PrivateStream

    futures = channel.startswith("futures")
    client = setup_futures()[2] if futures else setup()[3]
    doc = {"spot.usertrades": DOC_USERTRADES, "spot.orders": DOC_ORDERS, "futures.orders": DOC_FUTURES_ORDERS,
           "futures.usertrades": DOC_FUTURES_USERTRADES}[channel]
    push = msgspec.json.decode(msgspec.json.encode(doc))
    pair = "contract" if futures else "currency_pair"
    mine = push["result"][0] | {pair: "BTC_USDT"}
    push["result"] = [mine | {pair: "ETH_USDT"}, mine, mine | {pair: "DOGE_USDT"}]
    received: list[object] = []
    stream = PrivateStream(client, None, received.append, received.append)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING):
        for n in range(3):
            push["result"][1]["id"] = str(n)  # another trade of ours each time
            stream._on_message(memoryview(msgspec.json.encode(push)), False, True, 0)
    assert len(received) == 3 and stream.malformed == 0 and stream.unlisted == 6
    assert [r.getMessage().split(" on ")[1].split()[0] for r in caplog.records] == ["ETH_USDT", "DOGE_USDT"]
    assert client.decode(msgspec.json.encode(push), False).unlisted == ["ETH_USDT", "DOGE_USDT"]


@pytest.mark.parametrize(("update_time", "expected_ms"), [
    (1768397866663, 1768397866663),  # ms, as documented
    ("1768397866.663", 1768397866663),  # s with a fraction, as the REST futures order answer writes it
    (1768397866.663, 1768397866663),
    (1768397866, 1768397866000),
])
def test_a_futures_order_push_takes_its_update_time_in_ms_or_in_seconds(update_time: object, expected_ms: int) -> None:
    """A push writing it as the REST answer does (a string of seconds) was refused whole."""
    _, _, client = setup_futures()
    push = msgspec.json.decode(msgspec.json.encode(DOC_FUTURES_ORDERS))
    push["result"][0] |= {"contract": "BTC_USDT", "update_time": update_time}
    (state,) = client.decode(msgspec.json.encode(push), False).orders
    assert state.updated_at_ms == expected_ms


def test_the_futures_user_id_is_read_from_an_account_answer_writing_it_as_text() -> None:
    """Gate's answers write ``"user":"10406147"`` (the recorded futures order answer does): the
    stream could not connect when the account answer did too."""
    _, _, client = setup_futures()
    client.user_id = None

    class Rest:
        async def fetch(self, request: object) -> bytes:
            return b'{"total":"10","available":"10","currency":"USDT","user":"10406147"}'

    asyncio.run(client.connect_url(Rest()))  # type: ignore[arg-type]
    assert client.user_id == "10406147"
    assert msgspec.json.decode(client.subscribe_frames()[0])["payload"] == ["10406147", "!all"]
