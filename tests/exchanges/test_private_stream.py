"""Private order and fill streams end to end: each venue's connector against its simulated venue on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from decimal import Decimal as D
from typing import Any

import msgspec

import pytest
from loopback import eventually, run
from simvenues import API_KEY, SYMBOL, simulated_venues

from arb.errors import ArbitrageEngineError, ExchangeError
from arb.exchanges.errors import ErrorCategory
from arb.exchanges.models import Balance, Fill, OrderRequest, OrderState, OrderStatus, OrderType, TimeInForce
from arb.exchanges.private_stream import PrivateMessage, PushedFees
from arb.secrets import ApiCredentials, Secret
from arb.sim.matching import Fill as SimFill
from arb.types import ExchangeName, OrderSide

SPOT_STREAMED = [ExchangeName.GATEIO, ExchangeName.MEXC]
STREAMED = [*SPOT_STREAMED, ExchangeName.GATEIO_FUTURES]
QUANTITY = {ExchangeName.GATEIO: D("0.01"), ExchangeName.MEXC: D("0.01"), ExchangeName.GATEIO_FUTURES: D("3")}  # contracts
CONTRACT_SIZE = D("0.0001")  # BTC per Gate perpetual contract in the simulated venues
PERP_TAKER_FEE = D("0.0005")
BUY_FEE_ASSET = {ExchangeName.GATEIO: "BTC", ExchangeName.MEXC: "USDT"}


class ScriptedDialect:
    """A private stream dialect that reads each frame with ``decode`` (its bytes in, the message out)."""

    keepalive_interval_s = None

    def __init__(self, decode: Callable[[bytes], PrivateMessage], venue: str = "gateio") -> None:
        self.venue = venue
        self._decode = decode

    def ping_frame(self) -> str:
        return "{}"

    def is_pong(self, frame: Any) -> bool:
        return False

    def decode(self, frame: Any, is_binary: bool) -> PrivateMessage:
        return self._decode(bytes(frame))


def ioc_buy(market: ExchangeName, client_order_id: str) -> OrderRequest:
    """An IOC buy priced far above the synthetic market (around 60000): it fills at once."""
    return OrderRequest(
        symbol=SYMBOL[market],
        side=OrderSide.BUY,
        type=OrderType.LIMIT,
        quantity=QUANTITY[market],
        price=D("90000"),
        time_in_force=TimeInForce.IOC,
        client_order_id=client_order_id,
    )


@pytest.mark.parametrize("market", SPOT_STREAMED, ids=lambda m: m.value)
def test_ioc_order_streams_its_states_and_fills(market: ExchangeName) -> None:
    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            connector = sim.connector(market)
            orders: list[OrderState] = []
            fills: list[Fill] = []
            try:
                await connector.start_private_stream(orders.append, fills.append)
                placed = await connector.place_order(ioc_buy(market, "pstream1"))
                await eventually(lambda: any(o.is_final for o in orders), what=f"{market.value} final order push")
                mine = [o for o in orders if o.order_id == placed.order_id]
                assert mine[0].status is OrderStatus.NEW and mine[0].client_order_id == "pstream1"
                final = mine[-1]
                assert final.status is OrderStatus.FILLED and final.filled_quantity == D("0.01")
                await eventually(lambda: sum((f.quantity for f in fills), D(0)) == final.filled_quantity,
                                 what="fills sum to the filled quantity")
                assert all(f.order_id == placed.order_id and f.client_order_id == "pstream1" for f in fills)
                # Gate.io charges a spot buy's fee in the BTC it receives, MEXC in USDT.
                fee_asset = BUY_FEE_ASSET[market]
                assert all(not f.is_maker and f.side is OrderSide.BUY and f.fee_asset == fee_asset for f in fills)
                assert sum((f.fee for f in fills), D(0)) == final.fee > 0
                assert final.fee_asset == fee_asset
                notional = sum((f.price * f.quantity for f in fills), D(0))
                assert final.average_price == notional / final.filled_quantity
                assert len({f.trade_id for f in fills}) == len(fills)
                # The simulator's record of the same executions, to the last digit.
                recorded = [e for _, e in sim.venues[market.venue].private_events if isinstance(e, SimFill)]
                assert len(recorded) == len(fills)
            finally:
                await connector.close()

    run(scenario())


@pytest.mark.parametrize("market", STREAMED, ids=lambda m: m.value)
def test_bad_credentials_are_refused_at_start(market: ExchangeName) -> None:
    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            wrong = ApiCredentials(Secret(API_KEY), Secret("not-the-secret"))
            connector = sim.connector(market, credentials=wrong)
            try:
                with pytest.raises(ArbitrageEngineError) as caught:
                    await connector.start_private_stream(lambda o: None, lambda f: None)
                assert "auth" in str(caught.value).lower() or "signature" in str(caught.value).lower()
                assert connector.private_stream is None
            finally:
                await connector.close()

    run(scenario())


@pytest.mark.parametrize("market", STREAMED, ids=lambda m: m.value)
def test_reconnect_resubscribes(market: ExchangeName) -> None:
    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            connector = sim.connector(market)
            fills: list[Fill] = []
            try:
                await connector.start_private_stream(lambda o: None, fills.append)
                stream = connector.private_stream
                assert stream is not None
                stream.session.drop()
                await eventually(lambda: stream.session.connects == 2 and stream.session.connected, what="reconnected")
                if market is ExchangeName.MEXC:
                    assert len(stream.urls) == 2 and stream.urls[0] != stream.urls[1]  # a new listenKey
                    assert len(sim.venues["mexc"].context.user_streams) == 1  # the old key was closed
                await eventually(lambda: stream._pending_acks == 0, what="resubscribed")
                await connector.place_order(ioc_buy(market, "pstream2"))
                await eventually(
                    lambda: sum((f.quantity for f in fills), D(0)) == QUANTITY[market], what="fills after reconnect"
                )
            finally:
                await connector.close()
            if market is ExchangeName.MEXC:
                assert not sim.venues["mexc"].context.user_streams  # released on close

    run(scenario())


def test_futures_ioc_order_streams_contract_states_and_exact_fills() -> None:
    market = ExchangeName.GATEIO_FUTURES

    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            connector = sim.connector(market)
            orders: list[OrderState] = []
            fills: list[Fill] = []
            try:
                await connector.start_private_stream(orders.append, fills.append)
                stream = connector.private_stream
                assert stream is not None and stream.dialect.venue == "gateio"  # websocket, not polling
                placed = await connector.place_order(ioc_buy(market, "pfut1"))
                await eventually(lambda: any(o.is_final for o in orders), what="final futures order push")
                mine = [o for o in orders if o.order_id == placed.order_id]
                assert mine and all(o.client_order_id == "pfut1" and o.quantity == D(3) for o in mine)
                final = mine[-1]
                assert final.status is OrderStatus.FILLED and final.filled_quantity == D(3)  # contracts, unsigned
                await eventually(lambda: sum((f.quantity for f in fills), D(0)) == final.filled_quantity,
                                 what="fills sum to the filled contracts")
                assert all(f.order_id == placed.order_id and f.side is OrderSide.BUY and not f.is_maker for f in fills)
                assert all(f.fee_asset == "USDT" for f in fills) and final.fee_asset == "USDT"
                # taker fee on the base notional: contracts x contract size x price x rate, to the last digit
                assert all(f.fee == f.quantity * CONTRACT_SIZE * f.price * PERP_TAKER_FEE for f in fills)
                assert sum((f.fee for f in fills), D(0)) == final.fee > 0
                notional = sum((f.price * f.quantity for f in fills), D(0))
                assert final.average_price == notional / final.filled_quantity
                (position,) = await connector.positions()
                assert position.size == final.filled_quantity
            finally:
                await connector.close()

    run(scenario())


@pytest.mark.parametrize("market", STREAMED, ids=lambda m: m.value)
def test_balance_pushes_after_a_fill_equal_the_venue_balances(market: ExchangeName) -> None:
    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            connector = sim.connector(market)
            balances: list[Balance] = []
            fills: list[Fill] = []
            assets = ("USDT",) if market.is_futures else ("BTC", "USDT")
            try:
                await connector.start_private_stream(lambda o: None, fills.append, balances.append)
                before = await connector.balances()
                await connector.place_order(ioc_buy(market, "pbal1"))
                await eventually(lambda: sum((f.quantity for f in fills), D(0)) == QUANTITY[market], what="fills")
                expected = await connector.balances()
                assert all(expected[a] != before[a] for a in assets)

                def latest_match() -> bool:
                    latest = {b.asset: (b.free, b.locked) for b in balances}
                    return all(latest.get(a) == (expected[a].free, expected[a].locked) for a in assets)

                await eventually(latest_match, what=f"{market.value} balance pushes equal balances()")
                # Stamped as the venue stamps them; Gate.io's futures balances are read by REST instead.
                assert all(bool(b.updated_at_ms) is not market.is_futures for b in balances)
            finally:
                await connector.close()

    run(scenario())


def test_gate_futures_balances_read_after_a_push_go_to_the_read_handler_whole() -> None:
    """Gate.io's futures.balances push tells no free/locked split: the stream reads the account by
    REST and hands the whole read to ``on_balances_read``; ``on_balance`` gets nothing."""
    market = ExchangeName.GATEIO_FUTURES

    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            connector = sim.connector(market)
            pushed: list[Balance] = []
            reads: list[Mapping[str, Balance]] = []
            fills: list[Fill] = []
            try:
                await connector.start_private_stream(
                    lambda o: None, fills.append, pushed.append, on_balances_read=lambda read, _: reads.append(read)
                )
                await connector.place_order(ioc_buy(market, "pbal2"))
                await eventually(lambda: sum((f.quantity for f in fills), D(0)) == QUANTITY[market], what="fills")
                expected = await connector.balances()
                await eventually(lambda: bool(reads) and reads[-1] == expected, what="a read equal to balances()")
                assert pushed == []
            finally:
                await connector.close()

    run(scenario())


def test_a_resubscription_refused_after_a_reconnect_connects_again() -> None:
    """One reconnect signed 120 s off (any passing refusal) used to leave the stream connected with
    nothing pushed on it for good: it now connects again, and pushes come once the venue takes it."""
    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            connector = sim.connector(ExchangeName.GATEIO)
            balances: list[Balance] = []
            try:
                await connector.start_private_stream(None, lambda fill: None, balances.append)
                stream = connector.private_stream
                assert stream is not None and connector.private_subscribed() is True
                dialect: Any = stream.dialect
                dialect._clock = lambda: time.time() - 120
                stream.session.drop()
                await eventually(lambda: bool(stream.errors), what="the resubscription refused")
                assert connector.private_subscribed() is False  # what readiness and the gauge show
                dialect._clock = time.time
                await eventually(lambda: stream.session.connects >= 3 and connector.private_subscribed() is True,
                                 what="subscribed again")
                stats = connector.private_stats()  # what the metrics show
                assert stats is not None and stats.refusals >= 1 and stats.reconnects >= 2 and not stats.malformed
                balances.clear()
                await connector.place_order(ioc_buy(ExchangeName.GATEIO, "again1"))
                await eventually(lambda: bool(balances), what="balance pushes after the refusal")
            finally:
                await connector.close()

    run(scenario())


@pytest.mark.parametrize("market", STREAMED, ids=lambda m: m.value)
def test_a_reconnect_reads_the_balances_the_pushes_missed(market: ExchangeName) -> None:
    """Pushes sent while the stream was down are gone: once subscribed again, the balances are read
    by REST, so a change made meanwhile (here: none by this connector) reaches the handler."""
    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            connector = sim.connector(market)
            balances: list[Balance] = []
            reads: list[Mapping[str, Balance]] = []
            try:
                await connector.start_private_stream(
                    None, lambda fill: None, balances.append,
                    on_balances_read=(lambda read, _: reads.append(read)) if market.is_futures else None,
                )
                stream = connector.private_stream
                assert stream is not None and not balances and not reads
                stream.session.drop()
                await eventually(lambda: stream.session.connects == 2 and stream._pending_acks == 0, what="resubscribed")
                await eventually(lambda: bool(reads if market.is_futures else balances), what="balances read")
                got = {b.asset: b for b in (reads[-1].values() if market.is_futures else balances)}
                assert got == dict(await connector.balances())
            finally:
                await connector.close()

    run(scenario())


def test_an_order_whose_outcome_is_unknown_but_the_venue_never_knew_is_polled_only_until_it_cannot_land(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A write refused before it reached the venue is OUTCOME_UNKNOWN and its order is polled; once
    the venue could no longer take it (its deadline and the clock's error), polling stops. With
    no order handler nothing is polled at all."""
    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            connector = sim.connector(ExchangeName.MEXC)
            connector.settings = msgspec.structs.replace(connector.settings, order_deadline_ms=100)
            try:
                await connector.start_private_stream(lambda state: None, lambda fill: None)
                connector.clock_skew = 0.0  # read: the venue can take it for 1.1 s
                real_fetch = connector.rest.fetch

                async def refused(request: Any) -> bytes:
                    if request.method == "POST" and request.path.endswith("/order"):
                        raise ExchangeError("mexc", "connection refused", category=ErrorCategory.OUTCOME_UNKNOWN)
                    return await real_fetch(request)

                monkeypatch.setattr(connector.rest, "fetch", refused)
                with pytest.raises(ExchangeError):
                    await connector.place_order(ioc_buy(ExchangeName.MEXC, "ghost1"))
                assert "ghost1" in connector._tracked
                await eventually(lambda: "ghost1" not in connector._tracked, 5, "polling given up")
                await connector.stop_private_stream()
                await connector.start_private_stream(None, lambda fill: None)
                with pytest.raises(ExchangeError):
                    await connector.place_order(ioc_buy(ExchangeName.MEXC, "ghost2"))
                assert not connector._tracked
            finally:
                await connector.close()

    run(scenario())


def test_a_reconnect_calls_the_resubscription_handler_once_and_reads_nothing_itself() -> None:
    async def scenario() -> None:
        async with simulated_venues(moving=False) as sim:
            connector = sim.connector(ExchangeName.GATEIO)
            balances: list[Balance] = []
            calls: list[int] = []
            try:
                await connector.start_private_stream(
                    None, lambda fill: None, balances.append, on_resubscribed=lambda: calls.append(1)
                )
                stream = connector.private_stream
                assert stream is not None and calls == []  # the first subscription is not a resubscription
                with pytest.raises(ExchangeError, match="already started"):
                    await connector.start_private_stream(None, lambda fill: None)
                stream.session.drop()
                await eventually(lambda: calls == [1] and stream._pending_acks == 0, what="resubscribed")
                await asyncio.sleep(0.2)
                assert calls == [1] and balances == []  # the handler reads, the stream does not
            finally:
                await connector.close()

    run(scenario())


def test_pushed_fees_count_each_trade_once_and_forget_finished_and_oldest_orders(caplog: pytest.LogCaptureFixture) -> None:
    fees = PushedFees("mexc", capacity=2)
    assert fees.total("o1") == (D(0), None)
    fees.add("o1", "t1", D("0.1"), "BTC")
    fees.add("o1", "t2", D("0.02"), "BTC")
    fees.add("o1", "t1", D("0.1"), "BTC")  # resent
    assert fees.total("o1") == (D("0.12"), "BTC")
    with caplog.at_level(logging.WARNING):
        fees.add("o1", "t3", D("5"), "MX")  # another asset is not summed into BTC
    assert fees.total("o1") == (D("0.12"), "BTC") and "not in BTC" in caplog.text
    fees.finish("o1")
    assert fees.total("o1") == (D(0), None) and len(fees) == 0
    for order in ("o2", "o3", "o4"):  # o2's final push never came
        fees.add(order, "t", D(1), "USDT")
    assert len(fees) == 2 and fees.total("o2") == (D(0), None) and fees.total("o4") == (D(1), "USDT")
    with pytest.raises(ValueError, match="at least 1"):
        PushedFees("mexc", capacity=0)


def test_a_failed_balance_read_is_made_again_for_a_change_pushed_while_it_was_on_its_way() -> None:
    """Gate.io futures: a balance push (a fill's fee, say) came while the read for an earlier one
    was on its way; that read failed. The later change is read for, not left to the periodic read."""
    from arb.exchanges.private_stream import PrivateMessage, PrivateStream

    reads: list[int] = []
    first_read = asyncio.Event()

    async def source() -> Mapping[str, Balance]:
        reads.append(len(reads) + 1)
        if len(reads) == 1:
            await first_read.wait()
            raise ExchangeError("gateio_futures", "GET /futures/usdt/accounts: timed out")
        return {"USDT": Balance(asset="USDT", free=D("400"))}

    async def scenario() -> list[Mapping[str, Balance]]:
        got: list[Mapping[str, Balance]] = []
        stream = PrivateStream(
            ScriptedDialect(PrivateMessage, "gateio_futures"), None, lambda order: None,  # type: ignore[arg-type]
            lambda fill: None, on_balances_read=lambda balances, _: got.append(balances), balance_source=source,
        )
        stream._read_balances_soon()  # the first push
        await asyncio.sleep(0)
        stream._read_balances_soon()  # the second, while the first read is on its way
        first_read.set()
        await eventually(lambda: bool(got), what="the balances read again")
        return got

    assert run(scenario()) == [{"USDT": Balance(asset="USDT", free=D("400"))}] and reads == [1, 2]


def test_a_start_cancelled_while_subscribing_closes_the_stream_and_releases_its_token() -> None:
    """A stop during the start-up cancels ``start``: its caller never gets the stream to close, and its
    session went on reconnecting (and signing subscriptions) until the process ended."""
    from arb.exchanges.private_stream import PrivateMessage, PrivateStream
    from arb.exchanges.ws import WsSettings
    from loopback import WsTestServer

    released: list[str] = []

    class NeverAcknowledged:
        venue = "gateio"
        keepalive_interval_s = None

        def __init__(self, url: str) -> None:
            self.url = url

        async def connect_url(self, rest: Any) -> str:
            return self.url

        async def release(self, rest: Any) -> None:
            released.append(self.url)

        def subscribe_frames(self) -> list[str]:
            return ['{"sub":1}']

        def ping_frame(self) -> str:
            return "{}"

        def is_pong(self, frame: Any) -> bool:
            return False

        def decode(self, frame: Any, is_binary: bool) -> PrivateMessage:
            return PrivateMessage()

    async def scenario() -> None:
        server = await WsTestServer().start()
        settings = WsSettings(backoff_initial_s=0.01, backoff_max_s=0.05, heartbeat_interval_s=5, heartbeat_timeout_s=5)
        stream = PrivateStream(NeverAcknowledged(server.url), None, lambda order: None,  # type: ignore[arg-type]
                               lambda fill: None, settings)
        starting = asyncio.create_task(stream.start(30))
        try:
            await eventually(lambda: stream.session.connected, what="connected, waiting for the subscription")
            starting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await starting
            assert stream.session._task is not None and stream.session._task.done() and not stream.session.connected
            assert released == [server.url]
        finally:
            await server.close()

    run(scenario())


def test_unreadable_frames_are_counted_each_and_warned_about_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    """Each one was warned about with 200 bytes of its payload: a venue whose pushes stopped
    matching the schema filled the log at the rate of the account's trading."""
    from arb.exchanges.private_stream import PrivateMessage, PrivateStream

    def unreadable(frame: bytes) -> PrivateMessage:
        raise ValueError("a push of another shape")

    stream = PrivateStream(ScriptedDialect(unreadable), None, lambda order: None, lambda fill: None)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING):
        for second in (0, 1, 2, 61):
            stream._on_message(memoryview(b'{"push":1}'), False, True, second * 1_000_000_000)
    assert stream.malformed == 4
    assert [r.getMessage().endswith("(2 more unreadable private frames since the last warning)")
            for r in caplog.records] == [False, True]


def test_stats_count_refusals_unreadable_frames_and_unlisted_items() -> None:
    from arb.exchanges.private_stream import PrivateMessage, PrivateStream, PrivateStreamStats

    def decode(frame: bytes) -> PrivateMessage:
        if frame == b"refused":
            return PrivateMessage(error="code 4 Authentication fail")
        if frame == b"other pairs":
            return PrivateMessage(unlisted=["ETH_USDT", "DOGE_USDT"])
        raise ValueError("unreadable")

    stream = PrivateStream(ScriptedDialect(decode), None, lambda order: None, lambda fill: None)  # type: ignore[arg-type]
    for frame in (b"refused", b"other pairs", b"?", b"?"):
        stream._on_message(memoryview(frame), False, True, 0)
    assert stream.stats() == PrivateStreamStats(malformed=2, unlisted=2, refusals=1, reconnects=0)


def test_pushed_fees_forget_the_least_recently_used_order_not_the_first_seen() -> None:
    """An order still receiving trades was forgotten for being seen first, its final state then
    reporting no fee."""
    fees = PushedFees("gateio_futures", capacity=2)
    fees.add("a", "t1", D(1), "USDT")
    fees.add("b", "t1", D(1), "USDT")
    fees.add("a", "t2", D(1), "USDT")  # a trades on
    fees.add("c", "t1", D(1), "USDT")
    assert fees.total("a") == (D(2), "USDT") and fees.total("b") == (D(0), None)
    fees.add("d", "t1", D(1), "USDT")  # a's state was pushed since c's trade: c goes
    assert fees.total("a") == (D(2), "USDT") and fees.total("c") == (D(0), None)


def test_a_trade_pushed_again_reaches_the_fill_handler_once() -> None:
    """A venue resending a trade (after a reconnect) had it reported, and counted, twice."""
    from arb.exchanges.private_stream import PrivateMessage, PrivateStream, ReportedTrades

    def fill(order_id: str, trade_id: str) -> Fill:
        return Fill(symbol="BTC/USDT", order_id=order_id, client_order_id=None, trade_id=trade_id, side=OrderSide.BUY,
                    price=D(60000), quantity=D("0.1"), fee=D("0.0001"), fee_asset="BTC", is_maker=False, timestamp_ms=1)

    pushes = {b"1": [fill("o1", "t1"), fill("o1", "t1")], b"2": [fill("o1", "t2"), fill("o1", "t1"), fill("o2", "t1")]}

    received: list[Fill] = []
    failures = [RuntimeError("journal busy")]

    def on_fill(taken: Fill) -> None:
        if taken.trade_id == "t2" and failures:
            raise failures.pop()
        received.append(taken)

    dialect = ScriptedDialect(lambda frame: PrivateMessage(fills=pushes[frame]))
    stream = PrivateStream(dialect, None, lambda order: None, on_fill)  # type: ignore[arg-type]
    for frame in (b"1", b"2", b"1", b"2"):
        stream._on_message(memoryview(frame), False, True, 0)
    # t2's handler failed the first time: pushed again, it is taken then, and only then.
    assert [(f.order_id, f.trade_id) for f in received] == [("o1", "t1"), ("o2", "t1"), ("o1", "t2")]
    reported = ReportedTrades(capacity=1)
    reported.remember(fill("o1", "t1"))
    assert reported.reported(fill("o1", "t1")) and not reported.reported(fill("o1", "t2"))
    reported.remember(fill("o1", "t2"))
    assert not reported.reported(fill("o1", "t1"))  # forgotten past the capacity
    with pytest.raises(ValueError, match="at least 1"):
        ReportedTrades(capacity=0)


def test_a_push_the_websocket_dropped_has_what_it_said_read_again_once_the_stream_is_up() -> None:
    """A push dropped undelivered (too large, cut off by another frame) was only counted: a balance
    it changed stayed as it was until the next periodic read. It is read again, as after a reconnect."""
    from arb.exchanges.private_stream import PrivateMessage, PrivateStream

    async def scenario() -> list[int]:
        calls: list[int] = []
        stream = PrivateStream(
            ScriptedDialect(lambda frame: PrivateMessage()), None,  # type: ignore[arg-type]
            lambda order: None, lambda fill: None, on_resubscribed=lambda: calls.append(1),
        )
        stream._ready = asyncio.get_running_loop().create_future()
        stream.session._message_lost("oversize", "dropped")  # while subscribing: the start reads anyway
        assert calls == []
        stream._ready.set_result(None)
        stream.session._message_lost("oversize", "dropped")
        return calls

    assert run(scenario()) == [1]
