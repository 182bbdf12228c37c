"""arb.balances: REST reconciliation, scanner caps from free balances, inventory skew alerts."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any
from decimal import Decimal as D

import pytest

from test_pipeline import GATE, GATE_BOOK, GATE_PERP, GATE_PERP_BOOK, MEXC, MEXC_BOOK, book

from arb_core.wire.common import WireScale
from arb.balances import BalanceDrift, BalanceMonitor, SkewAlert
from arb.errors import ExchangeError
from arb.exchanges.models import Balance
from arb.pipeline import ScannerPipeline
from arb.types import ExchangeName, OpportunityType


class FakeVenue:
    """Balances by asset, changeable between refreshes; can fail."""

    def __init__(self, **free: str) -> None:
        self.free = {asset: D(amount) for asset, amount in free.items()}
        self.fail = False
        self.calls = 0
        self.hold: asyncio.Event | None = None  # set: a read answers what it saw once the event is set

    async def balances(self) -> Mapping[str, Balance]:
        self.calls += 1
        if self.fail:
            raise ExchangeError("fake", "balances unavailable")
        read = {asset: Balance(asset=asset, free=amount) for asset, amount in self.free.items()}
        if self.hold is not None:
            await self.hold.wait()
        return read


def scanner_pipeline() -> ScannerPipeline:
    """Buy on Gate (asks 60000), sell on MEXC (bids 60400): profitable for any size up to the caps."""
    pipeline = ScannerPipeline(max_data_age_ms=100, clock=lambda: 2)
    pipeline.register_symbol(
        "BTC/USDT",
        [
            (GATE, book("gate", GATE_BOOK, [("59000", "1")], [("60000", "1")]), GATE_BOOK),
            (MEXC, book("mexc", MEXC_BOOK, [("60400", "1")], [("61000", "1")]), MEXC_BOOK),
        ],
    )
    return pipeline


def test_a_market_holding_none_of_an_asset_it_trades_is_the_deepest_skew() -> None:
    """Venues may leave a zero balance out of an account read: a market that sold all its BTC, or
    never held any, holds 0 % of it."""
    gate, mexc = FakeVenue(BTC="9.5", USDT="1000"), FakeVenue(BTC="0.5", USDT="1000")
    alerts: list[SkewAlert] = []
    monitor = BalanceMonitor({ExchangeName.GATEIO: gate, ExchangeName.MEXC: mexc}, on_alert=alerts.append)
    monitor.pipeline = scanner_pipeline()
    asyncio.run(monitor.refresh())
    assert [(a.asset, a.exchange) for a in alerts] == [("BTC", ExchangeName.MEXC)]
    del mexc.free["BTC"]  # sold the rest: no longer listed
    asyncio.run(monitor.refresh())
    (alert,) = monitor.check_skew()
    assert (alert.asset, alert.exchange, alert.free, alert.share) == ("BTC", ExchangeName.MEXC, 0, 0)
    assert len(alerts) == 1  # still the same episode, not cleared

    fresh = BalanceMonitor({ExchangeName.GATEIO: FakeVenue(BTC="1", USDT="1000"), ExchangeName.MEXC: FakeVenue(USDT="1000")})
    fresh.pipeline = scanner_pipeline()  # MEXC trades BTC/USDT but lists no BTC from the start
    asyncio.run(fresh.refresh())
    assert [(a.asset, a.exchange, a.share) for a in fresh.check_skew()] == [("BTC", ExchangeName.MEXC, 0)]


def test_skew_compares_the_assets_traded_on_spot_with_spot_and_futures_margin_with_futures() -> None:
    """Both spot venues hold 10,000 USDT and the futures margin account 2,000: margin is no inventory
    of the spot venues, and pooled with them it was alerted at 9.1 %. DOGE, which no leg trades,
    was alerted too. Alone of its kind, the margin account is compared with nothing."""
    gate = FakeVenue(USDT="10000", BTC="0.1", DOGE="500")
    mexc = FakeVenue(USDT="10000", BTC="0.1", DOGE="5")
    perp = FakeVenue(USDT="2000", BTC="9")  # a BTC balance the perpetual's leg does not trade
    monitor = BalanceMonitor({ExchangeName.GATEIO: gate, ExchangeName.MEXC: mexc, ExchangeName.GATEIO_FUTURES: perp})
    pipeline = ScannerPipeline(max_data_age_ms=100, clock=lambda: 2)
    pipeline.register_symbol("BTC/USDT", [
        (GATE, book("gate", GATE_BOOK, [("59000", "1")], [("60000", "1")]), GATE_BOOK),
        (MEXC, book("mexc", MEXC_BOOK, [("60400", "1")], [("61000", "1")]), MEXC_BOOK),
        (GATE_PERP, book("perp", GATE_PERP_BOOK, [("60400", "100000")], [("61000", "100000")]), GATE_PERP_BOOK),
    ])
    monitor.pipeline = pipeline
    asyncio.run(monitor.refresh())
    assert monitor.check_skew() == []
    mexc.free["USDT"] = D("500")
    asyncio.run(monitor.refresh())
    (alert,) = monitor.check_skew()
    assert (alert.asset, alert.exchange, alert.total) == ("USDT", ExchangeName.MEXC, D(10500))


def test_caps_follow_free_quote_on_the_buy_leg_and_free_base_on_the_sell_leg() -> None:
    gate, mexc = FakeVenue(USDT="1000", BTC="1"), FakeVenue(USDT="1000", BTC="0.00005")
    monitor = BalanceMonitor({ExchangeName.GATEIO: gate, ExchangeName.MEXC: mexc})
    monitor.pipeline = pipeline = scanner_pipeline()
    asyncio.run(monitor.refresh())
    assert monitor.free(ExchangeName.MEXC, "BTC") == D("0.00005")
    opp = pipeline.scan(0)
    assert opp is not None and opp.max_quantity == D("0.00005")  # all MEXC holds

    mexc.free["BTC"] = D("1")
    gate.free["USDT"] = D("3.5")  # 3.5 / (60000 * 1.002) = 0.0000582 BTC
    asyncio.run(monitor.refresh([ExchangeName.GATEIO, ExchangeName.MEXC]))
    opp = pipeline.scan(0)
    assert opp is not None and opp.max_quantity == D("0.000058")

    gate.free["USDT"] = D("0")
    asyncio.run(monitor.refresh())
    assert pipeline.scan(0) is None


def test_a_buy_that_walks_past_the_best_ask_still_costs_no_more_than_the_free_quote() -> None:
    pipeline = ScannerPipeline(max_data_age_ms=100, clock=lambda: 2)
    gate_book = WireScale(3, 1, 10, 1)  # Gate.io's BTC_USDT book grid: prices to 0.001, sizes to 1e-10
    pipeline.register_symbol("BTC/USDT", [
        # A thin best ask, then a deeper level 0.8 % above it: the base cap is set at the best ask.
        (GATE, book("gate", gate_book, [("59000", "1")], [("60000", "0.001"), ("60500", "1")]), gate_book),
        (MEXC, book("mexc", MEXC_BOOK, [("62000", "1")], [("62500", "1")]), MEXC_BOOK),
    ])
    monitor = BalanceMonitor({ExchangeName.GATEIO: FakeVenue(USDT="600"), ExchangeName.MEXC: FakeVenue(BTC="1")})
    monitor.pipeline = pipeline
    asyncio.run(monitor.refresh())
    opp = pipeline.scan(0)
    assert opp is not None and opp.buy_exchange is ExchangeName.GATEIO and opp.buy_price == D("60500")
    # 600 / (60500 * 1.002) = 0.0098973 BTC, down to the 0.000001 lot; the base cap alone allowed 0.009980
    assert opp.max_quantity == D("0.009897")
    assert opp.max_quantity * opp.buy_price * (1 + opp.buy_fee) <= D(600)


def test_a_failed_refresh_keeps_the_last_balances() -> None:
    gate, mexc = FakeVenue(USDT="10"), FakeVenue(USDT="20")
    monitor = BalanceMonitor({ExchangeName.GATEIO: gate, ExchangeName.MEXC: mexc})
    asyncio.run(monitor.refresh())
    gate.fail = True
    mexc.free["USDT"] = D("25")
    asyncio.run(monitor.refresh())
    assert monitor.free(ExchangeName.GATEIO, "USDT") == D("10")
    assert monitor.free(ExchangeName.MEXC, "USDT") == D("25")
    assert monitor.errors == 1 and monitor.refreshes == 2



class SlowVenue(FakeVenue):
    """A read that waits on ``gate`` (an asyncio.Event made on the running loop) before answering."""

    def __init__(self, log: list[str], name: str, **free: str) -> None:
        super().__init__(**free)
        self.log, self.name = log, name
        self.gate: asyncio.Event | None = None

    async def balances(self) -> Mapping[str, Balance]:
        self.log.append(f"{self.name} started")
        self.gate = asyncio.Event()
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.log.append(f"{self.name} cancelled")
            raise
        self.log.append(f"{self.name} answered")
        return await super().balances()


async def _steps(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def test_the_reads_of_a_refresh_run_concurrently() -> None:
    log: list[str] = []
    gate, mexc = SlowVenue(log, "gate", USDT="10"), SlowVenue(log, "mexc", USDT="20")
    monitor = BalanceMonitor({ExchangeName.GATEIO: gate, ExchangeName.MEXC: mexc})

    async def run() -> None:
        refresh = asyncio.ensure_future(monitor.refresh())
        await _steps(10)  # the second read starts while the first one still waits
        assert gate.gate is not None and mexc.gate is not None and log == ["gate started", "mexc started"]
        mexc.gate.set()
        await asyncio.sleep(0)
        gate.gate.set()
        await refresh

    asyncio.run(run())
    assert log == ["gate started", "mexc started", "mexc answered", "gate answered"]
    assert monitor.free(ExchangeName.GATEIO, "USDT") == D("10") and monitor.free(ExchangeName.MEXC, "USDT") == D("20")


def test_a_cancelled_refresh_cancels_its_reads_and_keeps_the_last_balances() -> None:
    log: list[str] = []
    gate, mexc = SlowVenue(log, "gate", USDT="10"), SlowVenue(log, "mexc", USDT="20")
    monitor = BalanceMonitor({ExchangeName.GATEIO: gate, ExchangeName.MEXC: mexc})

    async def run() -> None:
        refresh = asyncio.ensure_future(monitor.refresh())
        await _steps(10)
        assert log == ["gate started", "mexc started"]
        refresh.cancel()
        try:
            await refresh
        except asyncio.CancelledError:
            pass
        else:
            raise AssertionError("the refresh was not cancelled")
        await _steps(2)
        # Before the loop closes (asyncio.run would cancel a leftover read itself).
        assert sorted(log) == ["gate cancelled", "gate started", "mexc cancelled", "mexc started"]

    asyncio.run(run())
    assert monitor.refreshes == 0 and monitor.free(ExchangeName.GATEIO, "USDT") == D(0)

def test_skew_alerts_once_per_episode() -> None:
    gate, mexc = FakeVenue(BTC="9.5", USDT="1000"), FakeVenue(BTC="0.5", USDT="1000")
    alerts: list[SkewAlert] = []
    monitor = BalanceMonitor({ExchangeName.GATEIO: gate, ExchangeName.MEXC: mexc}, on_alert=alerts.append)
    monitor.pipeline = scanner_pipeline()
    asyncio.run(monitor.refresh())
    asyncio.run(monitor.refresh())
    (alert,) = alerts
    assert (alert.asset, alert.exchange, alert.share) == ("BTC", ExchangeName.MEXC, D("0.05"))
    assert "mexc holds 0.5 of 10.0 BTC (5.0 %)" in alert.message()
    mexc.free["BTC"] = D("5")
    asyncio.run(monitor.refresh())
    assert monitor.check_skew() == [] and len(alerts) == 1
    mexc.free["BTC"] = D("0.1")
    asyncio.run(monitor.refresh())
    assert len(alerts) == 2



def test_failing_alert_and_drift_callbacks_are_logged_and_the_balances_still_applied(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate, mexc = FakeVenue(BTC="9.5", USDT="1000"), FakeVenue(BTC="1", USDT="1000")
    calls: list[object] = []

    def failing(what: object) -> None:
        calls.append(what)
        raise RuntimeError("sink down")

    monitor = BalanceMonitor({ExchangeName.GATEIO: gate, ExchangeName.MEXC: mexc}, on_alert=failing, on_drift=failing)
    monitor.pipeline = scanner_pipeline()
    on_mexc = monitor.balance_handler(ExchangeName.MEXC)
    asyncio.run(monitor.refresh())
    mexc.free["BTC"] = D("0.5")
    on_mexc(Balance(asset="BTC", free=D("0.5")))  # a skew: the alert's sink raises, the push stands
    assert monitor.free(ExchangeName.MEXC, "BTC") == D("0.5") and monitor.check_skew() != []
    on_mexc(Balance(asset="USDT", free=D("990")))  # wrong: the venue still holds 1000
    asyncio.run(monitor.refresh())
    asyncio.run(monitor.refresh())  # the drift is reported now; its sink raises, the read stands
    assert monitor.free(ExchangeName.MEXC, "USDT") == D("1000") and monitor.drifts == 1
    assert [type(c).__name__ for c in calls] == ["SkewAlert", "BalanceDrift"]  # the skew alerted once
    assert "skew alert callback failed" in caplog.text and "balance drift callback failed" in caplog.text


def test_a_share_trading_back_and_forth_across_the_threshold_alerts_once() -> None:
    """Each trade moving MEXC's BTC share between 9 % and 11 % would alert again and again: an
    alerted skew clears only at 1.5 times the threshold (15 %)."""
    gate, mexc = FakeVenue(BTC="9.1", USDT="1000"), FakeVenue(BTC="0.9", USDT="1000")
    alerts: list[SkewAlert] = []
    monitor = BalanceMonitor({ExchangeName.GATEIO: gate, ExchangeName.MEXC: mexc}, on_alert=alerts.append)
    monitor.pipeline = scanner_pipeline()
    for mexc_btc in ("0.9", "1.1", "0.9", "1.1", "1.4", "0.9"):
        mexc.free["BTC"], gate.free["BTC"] = D(mexc_btc), 10 - D(mexc_btc)
        asyncio.run(monitor.refresh())
    assert len(alerts) == 1  # 11 % and 14 % kept it alerted
    for mexc_btc in ("1.6", "0.9"):
        mexc.free["BTC"], gate.free["BTC"] = D(mexc_btc), 10 - D(mexc_btc)
        asyncio.run(monitor.refresh())
    assert len(alerts) == 2  # cleared at 16 %, then a new episode


def test_a_push_sets_the_free_balance_and_the_caps_at_once() -> None:
    gate, mexc = FakeVenue(USDT="1000", BTC="1"), FakeVenue(USDT="1000", BTC="1")
    monitor = BalanceMonitor({ExchangeName.GATEIO: gate, ExchangeName.MEXC: mexc})
    monitor.pipeline = pipeline = scanner_pipeline()
    asyncio.run(monitor.refresh())
    on_mexc = monitor.balance_handler(ExchangeName.MEXC)
    assert monitor.streamed(ExchangeName.MEXC) and not monitor.streamed(ExchangeName.GATEIO)

    on_mexc(Balance(asset="BTC", free=D("0.00005"), locked=D("0.5")))
    assert monitor.free(ExchangeName.MEXC, "BTC") == D("0.00005")
    opp = pipeline.scan(0)
    assert opp is not None and opp.max_quantity == D("0.00005")  # no REST read since
    assert (gate.calls, mexc.calls, monitor.pushes) == (1, 1, 1)

    on_mexc(Balance(asset="BTC", free=D("0")))
    assert pipeline.scan(0) is None
    assert monitor.snapshot()[ExchangeName.MEXC]["USDT"] == Balance(asset="USDT", free=D("1000"))


def test_rest_reconciliation_corrects_a_wrong_push_and_reports_the_drift_a_read_later() -> None:
    gate, mexc = FakeVenue(USDT="1000", BTC="1"), FakeVenue(USDT="1000", BTC="1")
    drifts: list[BalanceDrift] = []
    monitor = BalanceMonitor({ExchangeName.GATEIO: gate, ExchangeName.MEXC: mexc}, on_drift=drifts.append)
    monitor.pipeline = pipeline = scanner_pipeline()
    on_mexc = monitor.balance_handler(ExchangeName.MEXC)
    asyncio.run(monitor.refresh())  # the first read is the baseline, nothing to disagree with
    on_mexc(Balance(asset="BTC", free=D("0.00002")))  # wrong: the venue still holds 1 BTC
    asyncio.run(monitor.refresh())
    assert monitor.free(ExchangeName.MEXC, "BTC") == D("1")  # the read wins at once
    opp = pipeline.scan(0)
    assert opp is not None and opp.max_quantity > D("0.00002")
    assert drifts == []  # the push that brings 1 BTC may only be late
    asyncio.run(monitor.refresh())  # a refresh interval on, no push has brought it
    (drift,) = drifts
    assert (drift.exchange, drift.asset, drift.pushed.free, drift.read.free) == (
        ExchangeName.MEXC, "BTC", D("0.00002"), D("1"),
    )
    assert "mexc BTC pushed free 0.00002" in drift.message() and monitor.drifts == 1

    # A change with no push at all is a drift too; a market without pushes never drifts.
    mexc.free["USDT"] = D("900")
    gate.free["USDT"] = D("5")
    asyncio.run(monitor.refresh())
    asyncio.run(monitor.refresh())
    assert [(d.exchange, d.asset) for d in drifts[1:]] == [(ExchangeName.MEXC, "USDT")]
    asyncio.run(monitor.refresh())
    assert monitor.drifts == 2


def test_a_push_later_than_the_read_that_showed_its_change_is_not_a_drift() -> None:
    """The venue's fill changes MEXC's BTC; the periodic read shows it before the fill's push arrives.
    The push then brings the same state: late, not wrong. A push that brings another state (the
    venue's push is wrong) leaves the drift to be reported at the next read."""
    mexc = FakeVenue(USDT="1000", BTC="1")
    drifts: list[BalanceDrift] = []
    monitor = BalanceMonitor({ExchangeName.MEXC: mexc}, on_drift=drifts.append)
    on_mexc = monitor.balance_handler(ExchangeName.MEXC)
    asyncio.run(monitor.refresh())
    mexc.free["BTC"] = D("0.5")  # sold; the push is on its way
    asyncio.run(monitor.refresh())
    on_mexc(Balance(asset="BTC", free=D("0.5")))
    asyncio.run(monitor.refresh())
    assert drifts == [] and monitor.free(ExchangeName.MEXC, "BTC") == D("0.5")

    mexc.free["BTC"] = D("0.25")
    asyncio.run(monitor.refresh())
    on_mexc(Balance(asset="BTC", free=D("0.3")))  # not the state the read showed
    assert drifts == []
    asyncio.run(monitor.refresh())
    assert [(d.asset, d.pushed.free, d.read.free) for d in drifts] == [("BTC", D("0.5"), D("0.25"))]


def test_balances_a_stream_reads_by_rest_keep_the_market_current_but_are_never_drifts() -> None:
    """Gate.io futures pushes only say the balances changed; its stream reads them by REST. A stream
    read answering after a periodic read that already saw a later change is older, not wrong."""
    futures = FakeVenue(USDT="1000")
    drifts: list[BalanceDrift] = []
    monitor = BalanceMonitor({ExchangeName.GATEIO_FUTURES: futures}, on_drift=drifts.append)
    on_read = monitor.read_handler(ExchangeName.GATEIO_FUTURES)
    assert monitor.streamed(ExchangeName.GATEIO_FUTURES)
    asyncio.run(monitor.refresh())
    on_read({"USDT": Balance(asset="USDT", free=D("900"), locked=D("100"))}, time.monotonic_ns())
    assert monitor.free(ExchangeName.GATEIO_FUTURES, "USDT") == D("900")
    futures.free["USDT"] = D("800")  # the stream's next read is still on its way
    for _ in range(3):
        asyncio.run(monitor.refresh())
    assert drifts == [] and monitor.free(ExchangeName.GATEIO_FUTURES, "USDT") == D("800")
    assert monitor.pushes == 0


def test_a_push_during_a_read_is_kept_over_the_read() -> None:
    mexc = FakeVenue(USDT="1000", BTC="1")
    monitor = BalanceMonitor({ExchangeName.MEXC: mexc})
    on_mexc = monitor.balance_handler(ExchangeName.MEXC)
    asyncio.run(monitor.refresh())
    balances = mexc.balances

    async def read_then_push() -> Mapping[str, Balance]:
        answer = await balances()  # taken before the venue's next change
        on_mexc(Balance(asset="BTC", free=D("0.4")))
        return answer

    mexc.balances = read_then_push  # type: ignore[method-assign]
    asyncio.run(monitor.refresh())
    assert monitor.free(ExchangeName.MEXC, "BTC") == D("0.4") and monitor.drifts == 0


def test_pushes_raise_and_clear_the_skew_alert() -> None:
    gate, mexc = FakeVenue(BTC="5"), FakeVenue(BTC="5")
    alerts: list[SkewAlert] = []
    monitor = BalanceMonitor({ExchangeName.GATEIO: gate, ExchangeName.MEXC: mexc}, on_alert=alerts.append)
    monitor.pipeline = scanner_pipeline()
    on_mexc = monitor.balance_handler(ExchangeName.MEXC)
    asyncio.run(monitor.refresh())
    assert alerts == []
    on_mexc(Balance(asset="BTC", free=D("0.25")))
    (alert,) = alerts
    assert (alert.exchange, alert.share) == (ExchangeName.MEXC, D("0.25") / D("5.25"))
    on_mexc(Balance(asset="BTC", free=D("0.2")))
    assert len(alerts) == 1  # the same episode
    on_mexc(Balance(asset="BTC", free=D("5")))
    assert monitor.check_skew() == []


class HeldReads:
    """Each ``balances()`` answers with the venue's balance when the read was made, once released."""

    def __init__(self, usdt: str) -> None:
        self.usdt = D(usdt)
        self.waiting: list[asyncio.Future[None]] = []

    async def balances(self) -> Mapping[str, Balance]:
        answer = {"USDT": Balance(asset="USDT", free=self.usdt)}
        released: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append(released)
        await released
        return answer


def test_an_older_read_answering_after_a_newer_one_is_dropped() -> None:
    async def scenario() -> None:
        venue = HeldReads("1000")
        monitor = BalanceMonitor({ExchangeName.GATEIO: venue})  # no pushes: REST reads only
        periodic = asyncio.ensure_future(monitor.refresh())  # reads 1000 free
        await asyncio.sleep(0)
        venue.usdt = D("100")  # an execution spends 900; the controller reads the market again
        after_trade = asyncio.ensure_future(monitor.refresh([ExchangeName.GATEIO]))
        await asyncio.sleep(0)
        older, newer = venue.waiting
        newer.set_result(None)
        await after_trade
        older.set_result(None)
        await periodic
        assert monitor.free(ExchangeName.GATEIO, "USDT") == D("100")
        assert monitor.refreshes == 2 and monitor.errors == 0

    asyncio.run(scenario())


def test_a_futures_legs_caps_stop_at_the_room_its_position_limit_leaves() -> None:
    """Buy Gate.io spot at 60000, sell the perpetual at 60400: the free margin would sell 0.0166 BTC
    of it; the risk manager's room (0.0005 more short) caps the sell instead, and no room leaves the
    scanner nothing to propose on that leg."""
    spot, perp = FakeVenue(USDT="1000"), FakeVenue(USDT="1000")
    coarse = WireScale(3, 1, 10, 1)  # a Gate.io spot book grid
    monitor = BalanceMonitor({ExchangeName.GATEIO: spot, ExchangeName.GATEIO_FUTURES: perp})
    pipeline = ScannerPipeline(
        max_data_age_ms=100, clock=lambda: 2, opportunity_types=(OpportunityType.SPOT_FUTURES_HEDGE,)
    )
    pipeline.register_symbol("BTC/USDT", [
        (GATE, book("gate", coarse, [("59000", "1")], [("60000", "1")]), coarse),
        (GATE_PERP, book("perp", GATE_PERP_BOOK, [("60400", "100000")], [("61000", "100000")]), GATE_PERP_BOOK),
    ])
    monitor.pipeline = pipeline
    rooms = {"BTC/USDT": (D(1), D("0.0005"))}
    priced: list[D | None] = []

    def room(market: ExchangeName, symbol: str, price: D | None) -> tuple[D, D] | None:
        priced.append(price)
        return rooms[symbol] if market is ExchangeName.GATEIO_FUTURES else None

    monitor.position_room = room
    asyncio.run(monitor.refresh())
    opp = pipeline.scan(0)
    assert opp is not None and opp.sell_exchange is ExchangeName.GATEIO_FUTURES and opp.max_quantity == D("0.0005")
    assert priced and set(priced) == {D(61000)}  # the perpetual's best ask: the room at today's price
    rooms["BTC/USDT"] = (D(1), D(0))
    monitor.update_caps()
    assert pipeline.scan(0) is None


def test_a_market_held_for_a_read_trades_nothing_until_a_read_begun_after_the_hold_answers() -> None:
    """A futures fill used margin and the read after it failed: the margin known is older than the
    fill. Held, the perpetual's legs are capped at nothing; a read that fails, or one begun before the
    hold (the stream's), leaves it held; a refresh, or a stream read begun since, ends the hold."""
    spot, perp = FakeVenue(USDT="1000"), FakeVenue(USDT="1000")
    monitor = BalanceMonitor({ExchangeName.GATEIO: spot, ExchangeName.GATEIO_FUTURES: perp})
    on_read = monitor.read_handler(ExchangeName.GATEIO_FUTURES)
    pipeline = ScannerPipeline(
        max_data_age_ms=100, clock=lambda: 2, opportunity_types=(OpportunityType.SPOT_FUTURES_HEDGE,)
    )
    pipeline.register_symbol("BTC/USDT", [
        (GATE, book("gate", GATE_BOOK, [("59000", "1")], [("60000", "1")]), GATE_BOOK),
        (GATE_PERP, book("perp", GATE_PERP_BOOK, [("60400", "100000")], [("61000", "100000")]), GATE_PERP_BOOK),
    ])
    monitor.pipeline = pipeline
    asyncio.run(monitor.refresh())
    assert pipeline.scan(0) is not None
    perp.fail = True
    failed = asyncio.run(monitor.refresh([ExchangeName.GATEIO, ExchangeName.GATEIO_FUTURES]))
    assert failed == {ExchangeName.GATEIO_FUTURES}
    begun = time.monotonic_ns()  # a stream read begins before the hold
    monitor.hold_until_read(failed)
    assert monitor.held_for_read(ExchangeName.GATEIO_FUTURES) and not monitor.held_for_read(ExchangeName.GATEIO)
    assert pipeline.scan(0) is None
    on_read({"USDT": Balance(asset="USDT", free=D("1000"))}, begun)
    assert asyncio.run(monitor.refresh()) == {ExchangeName.GATEIO_FUTURES}
    assert monitor.held_for_read(ExchangeName.GATEIO_FUTURES) and pipeline.scan(0) is None
    perp.fail = False
    assert asyncio.run(monitor.refresh()) == set()
    assert not monitor.held_for_read(ExchangeName.GATEIO_FUTURES)
    assert pipeline.scan(0) is not None
    monitor.hold_until_read([ExchangeName.GATEIO_FUTURES])
    on_read({"USDT": Balance(asset="USDT", free=D("900"))}, time.monotonic_ns())  # begun since
    assert not monitor.held_for_read(ExchangeName.GATEIO_FUTURES)
    assert pipeline.scan(0) is not None


def test_what_an_execution_spent_is_off_the_caps_until_the_venue_says_what_is_left() -> None:
    """Gate.io's quote pays for a buy; the push saying so may come after the next opportunity is
    sized. Until then the caps leave the spent quote out; a push of the asset, or a read begun
    after the spending, puts the venue's figure back."""
    gate, mexc = FakeVenue(USDT="6.02", BTC="1"), FakeVenue(USDT="1000", BTC="1")
    monitor = BalanceMonitor({ExchangeName.GATEIO: gate, ExchangeName.MEXC: mexc})
    monitor.pipeline = pipeline = scanner_pipeline()
    on_gate = monitor.balance_handler(ExchangeName.GATEIO)
    asyncio.run(monitor.refresh())
    opp = pipeline.scan(0)
    assert opp is not None and opp.max_quantity == D("0.0001")  # 6.02 USDT at 60000 plus 0.2 %

    def spend(asset: str, amount: str) -> None:  # spent from what is free now, as on writing its orders
        monitor.spend(ExchangeName.GATEIO, asset, D(amount), before=monitor.free(ExchangeName.GATEIO, asset))

    spend("USDT", "3.01")
    assert monitor.free(ExchangeName.GATEIO, "USDT") == D("3.01")
    assert monitor.snapshot()[ExchangeName.GATEIO]["USDT"].free == D("6.02")  # the venue's figure is kept apart
    opp = pipeline.scan(0)
    assert opp is not None and opp.max_quantity == D("0.00005")

    stale = gate.balances

    async def read_begun_before_the_spending() -> Mapping[str, Balance]:
        answer = await stale()
        spend("USDT", "3.01")  # while the read was out
        return answer

    gate.balances = read_begun_before_the_spending  # type: ignore[method-assign]
    asyncio.run(monitor.refresh([ExchangeName.GATEIO]))
    # The read, begun after the first spending, settles it; the second, made while it was out, stays off.
    assert monitor.free(ExchangeName.GATEIO, "USDT") == D("3.01")
    spend("USDT", "3.01")
    assert pipeline.scan(0) is None
    gate.balances = stale  # type: ignore[method-assign]
    gate.free["USDT"] = D("0")
    asyncio.run(monitor.refresh([ExchangeName.GATEIO]))  # begun after: the venue's figure stands
    assert monitor.free(ExchangeName.GATEIO, "USDT") == 0
    gate.free["USDT"] = D("6.02")
    asyncio.run(monitor.refresh([ExchangeName.GATEIO]))
    assert monitor.free(ExchangeName.GATEIO, "USDT") == D("6.02")

    spend("USDT", "6.02")
    assert pipeline.scan(0) is None
    on_gate(Balance(asset="USDT", free=D("2")))  # the push: what is left now (down far enough to show it)
    assert monitor.free(ExchangeName.GATEIO, "USDT") == D("2")
    spend("USDT", "0")  # nothing spent: nothing changes
    assert monitor.free(ExchangeName.GATEIO, "USDT") == D("2")

    # The usual order: the orders are written, the venue pushes what is left, then the answer comes
    # and the execution is recorded. That push shows the spending already: nothing is taken off again.
    usdt, btc = monitor.free(ExchangeName.GATEIO, "USDT"), monitor.free(ExchangeName.GATEIO, "BTC")
    on_gate(Balance(asset="USDT", free=D("0.5")))
    monitor.spend(ExchangeName.GATEIO, "USDT", D("1.5"), before=usdt)
    assert monitor.free(ExchangeName.GATEIO, "USDT") == D("0.5")
    monitor.spend(ExchangeName.GATEIO, "BTC", D("0.25"), before=btc)  # another asset: not pushed since
    assert monitor.free(ExchangeName.GATEIO, "BTC") == D("0.75")


def test_a_read_keeping_a_push_from_its_flight_settles_that_assets_spendings_by_the_push() -> None:
    """A push of the state before a spending lands while a read begun after it is out: the push is
    kept for its asset (newer than the read's start), and it does not show the spending, so the
    spending stays off. Settled as the read said, the venue's 1000 read free for 100 held."""
    gate = FakeVenue(USDT="1000")
    monitor = BalanceMonitor({ExchangeName.GATEIO: gate})
    on_gate = monitor.balance_handler(ExchangeName.GATEIO)
    asyncio.run(monitor.refresh())
    monitor.spend(ExchangeName.GATEIO, "USDT", D(900), before=monitor.free(ExchangeName.GATEIO, "USDT"))
    gate.free["USDT"] = D(100)
    read = gate.balances

    async def read_then_a_late_push() -> Mapping[str, Balance]:
        answer = await read()
        on_gate(Balance(asset="USDT", free=D(1000)))  # the stream's state from before the buy
        return answer

    gate.balances = read_then_a_late_push  # type: ignore[method-assign]
    asyncio.run(monitor.refresh())
    assert monitor.free(ExchangeName.GATEIO, "USDT") == D(100)
    on_gate(Balance(asset="USDT", free=D(100)))  # the push that shows it
    assert monitor.free(ExchangeName.GATEIO, "USDT") == D(100)
    on_gate(Balance(asset="USDT", free=D(150)))
    assert monitor.free(ExchangeName.GATEIO, "USDT") == D(150)


def test_each_spending_stays_off_until_a_push_shows_it() -> None:
    """Back-to-back executions spend 300 USDT each on Gate.io before its pushes come. The first
    execution's push (700) shows only the first: the second stays off. A push that shows neither
    (a lock change elsewhere, an older state) takes nothing back. The second's push settles it."""
    gate, mexc = FakeVenue(USDT="1000", BTC="1"), FakeVenue(USDT="1000", BTC="1")
    monitor = BalanceMonitor({ExchangeName.GATEIO: gate, ExchangeName.MEXC: mexc})
    on_gate = monitor.balance_handler(ExchangeName.GATEIO)
    asyncio.run(monitor.refresh())

    def free() -> D:
        return monitor.free(ExchangeName.GATEIO, "USDT")

    first_written = free()
    monitor.spend(ExchangeName.GATEIO, "USDT", D(300), before=first_written)
    second_written = free()
    assert second_written == D(700)
    on_gate(Balance(asset="USDT", free=D(1000), locked=D(5)))  # shows neither spending
    assert free() == D(700)
    monitor.spend(ExchangeName.GATEIO, "USDT", D(300), before=second_written)
    assert free() == D(400)
    on_gate(Balance(asset="USDT", free=D(700)))  # the first execution's push, late
    assert free() == D(400)
    on_gate(Balance(asset="USDT", free=D(400)))  # the second's
    assert free() == D(400)
    on_gate(Balance(asset="USDT", free=D(450)))  # a credit after both: the venue's figure
    assert free() == D(450)

    # The second execution's push came before its answer, after a late push of the first: the
    # late push shows only the first, so the second is still taken off when recorded.
    on_gate(Balance(asset="USDT", free=D(1000)))
    first_written = free()
    monitor.spend(ExchangeName.GATEIO, "USDT", D(300), before=first_written)
    second_written = free()
    on_gate(Balance(asset="USDT", free=D(700)))  # the first's push, after the second's orders went out
    monitor.spend(ExchangeName.GATEIO, "USDT", D(300), before=second_written)
    assert free() == D(400)
    # A venue fee charged in another asset (or rounded): the push is down by less than estimated,
    # still past half of it.
    monitor.spend(ExchangeName.GATEIO, "USDT", D("300.6"), before=free())
    on_gate(Balance(asset="USDT", free=D(400)))  # settles the earlier one only
    assert free() == D("99.4")
    on_gate(Balance(asset="USDT", free=D(100)))
    assert free() == D(100)


def stamped(asset: str, free: str, ago_ms: int, *, venue_ahead_ms: int = 0) -> Balance:
    """A push of ``asset`` stamped as changed ``ago_ms`` before now, by a venue clock ``venue_ahead_ms``
    ahead of the local monotonic one."""
    return Balance(asset=asset, free=D(free), updated_at_ms=time.monotonic_ns() // 1_000_000 - ago_ms + venue_ahead_ms)


def test_a_push_older_than_the_read_applied_does_not_put_back_what_executions_spent() -> None:
    """Two executions spend 400 and 500 of Gate.io's 1000 USDT; their pushes are slow. The periodic
    read, begun after both, says 100. The first execution's push (600), sent before that read's
    request, lands after its answer: applied, it put the 500 back, and a 598.8 USDT buy was sized
    on 100 free. Stamped seconds before the read began, it is dropped; the next push still applies."""
    gate, mexc = FakeVenue(USDT="1000", BTC="1"), FakeVenue(USDT="1000", BTC="1")
    monitor = BalanceMonitor({ExchangeName.GATEIO: gate, ExchangeName.MEXC: mexc})
    monitor.venue_ahead_of_monotonic_ms = lambda market: 0.0
    monitor.pipeline = pipeline = scanner_pipeline()  # buys on Gate.io
    on_gate = monitor.balance_handler(ExchangeName.GATEIO)
    asyncio.run(monitor.refresh())
    for spent in ("400", "500"):
        before = monitor.free(ExchangeName.GATEIO, "USDT")
        gate.free["USDT"] -= D(spent)
        monitor.spend(ExchangeName.GATEIO, "USDT", D(spent) * D("1.002"), before=before)
    asyncio.run(monitor.refresh([ExchangeName.GATEIO]))
    assert monitor.free(ExchangeName.GATEIO, "USDT") == D(100)

    on_gate(stamped("USDT", "600", 5_000))  # the first execution's push
    assert monitor.free(ExchangeName.GATEIO, "USDT") == D(100) and monitor.stale_pushes == 1
    opp = pipeline.scan(0)
    assert opp is not None and opp.max_quantity * opp.buy_price <= D(100)
    on_gate(stamped("USDT", "100", 4_000))  # the second's, as old: the read showed it already
    on_gate(stamped("USDT", "130", 0))  # a credit after the read: newer, applied
    assert monitor.free(ExchangeName.GATEIO, "USDT") == D(130) and monitor.stale_pushes == 2


def test_a_push_not_clearly_older_than_the_read_still_applies() -> None:
    """Only a push stamped before the read began by more than the measured clock skew may be off is
    dropped: one within that error, one after the read began, or any while the venue's clock is
    unread, applies as before. The stamp is placed on the local clock by the measured skew."""
    gate = FakeVenue(USDT="1000")
    skew: dict[ExchangeName, float | None] = {ExchangeName.GATEIO: None}
    monitor = BalanceMonitor({ExchangeName.GATEIO: gate})
    monitor.venue_ahead_of_monotonic_ms = skew.get
    on_gate = monitor.balance_handler(ExchangeName.GATEIO)
    asyncio.run(monitor.refresh())

    def free() -> D:
        return monitor.free(ExchangeName.GATEIO, "USDT")

    on_gate(stamped("USDT", "900", 60_000))  # the venue's clock is unread: not dated
    assert free() == D(900)
    skew[ExchangeName.GATEIO] = 10_000.0  # the venue's clock 10 s ahead of the local one
    asyncio.run(monitor.refresh())
    on_gate(stamped("USDT", "800", 0, venue_ahead_ms=10_000))  # just now, after the read began
    assert free() == D(800)
    on_gate(stamped("USDT", "700", 200, venue_ahead_ms=10_000))  # within the skew's error
    assert free() == D(700)
    on_gate(stamped("USDT", "600", 5_000, venue_ahead_ms=10_000))  # 5 s before the read began
    on_gate(stamped("USDT", "500", 0))  # the local clock's now is 10 s ago on the venue's
    assert free() == D(700) and monitor.stale_pushes == 2
    on_gate(Balance(asset="USDT", free=D(400)))  # unstamped
    assert free() == D(400)


def test_a_wall_clock_stepped_since_the_venue_clock_was_read_drops_no_newer_push(monkeypatch: pytest.MonkeyPatch) -> None:
    """The read's start was taken on the wall clock and the venue's stamp placed on it by a skew
    read minutes before: a clock stepped 3 s forward since (NTP, a resumed VM) dropped pushes made
    up to 2 s after the read began, and the next reads called it a drift. Stamps and reads are now
    placed on the monotonic clock, which no step moves."""
    gate = FakeVenue(USDT="1000")
    monitor = BalanceMonitor({ExchangeName.GATEIO: gate})
    monitor.venue_ahead_of_monotonic_ms = lambda market: 0.0
    on_gate = monitor.balance_handler(ExchangeName.GATEIO)
    real_time_ns = time.time_ns
    monkeypatch.setattr(time, "time_ns", lambda: real_time_ns() + 3_000_000_000)  # stepped 3 s forward
    asyncio.run(monitor.refresh())
    on_gate(stamped("USDT", "400", 0))  # made after the read began
    assert monitor.free(ExchangeName.GATEIO, "USDT") == D(400) and monitor.stale_pushes == 0


def test_a_push_older_than_the_read_is_not_taken_as_showing_the_next_spending() -> None:
    """Gate.io's USDT went 1000 -> 500 (a buy) -> 1000 (a sale's proceeds); the read shows 1000, and
    an execution then spends 400. The pushes of 500 and 1000 come late, after the spending: the
    500 looked down far enough to show the spending, which was settled and never taken off, and
    the 1000 then showed 400 more free than the venue had. Stamped before the read, both are
    dropped; the spending stays off until its own push."""
    gate = FakeVenue(USDT="1000")
    monitor = BalanceMonitor({ExchangeName.GATEIO: gate})
    monitor.venue_ahead_of_monotonic_ms = lambda market: 0.0
    on_gate = monitor.balance_handler(ExchangeName.GATEIO)
    asyncio.run(monitor.refresh())
    monitor.spend(ExchangeName.GATEIO, "USDT", D(400), before=monitor.free(ExchangeName.GATEIO, "USDT"))
    on_gate(stamped("USDT", "500", 6_000))
    on_gate(stamped("USDT", "1000", 5_000))
    assert monitor.free(ExchangeName.GATEIO, "USDT") == D(600) and monitor.stale_pushes == 2
    on_gate(stamped("USDT", "600", 0))  # the spending's own push
    assert monitor.free(ExchangeName.GATEIO, "USDT") == D(600)
    on_gate(stamped("USDT", "650", 0))
    assert monitor.free(ExchangeName.GATEIO, "USDT") == D(650)


def test_a_push_older_than_a_read_landing_while_it_is_out_is_not_kept_over_it() -> None:
    """A push lands while a read is out, so it may be newer than the read's answer and is kept; but
    one stamped before the read began is older, and the read's answer wins."""
    gate = FakeVenue(USDT="1000")
    monitor = BalanceMonitor({ExchangeName.GATEIO: gate})
    monitor.venue_ahead_of_monotonic_ms = lambda market: 0.0
    on_gate = monitor.balance_handler(ExchangeName.GATEIO)
    asyncio.run(monitor.refresh())
    gate.free["USDT"] = D(100)
    read = gate.balances

    async def read_then_a_late_push() -> Mapping[str, Balance]:
        answer = await read()
        on_gate(stamped("USDT", "600", 5_000))
        return answer

    gate.balances = read_then_a_late_push  # type: ignore[method-assign]
    asyncio.run(monitor.refresh())
    assert monitor.free(ExchangeName.GATEIO, "USDT") == D(100)


def test_a_read_after_a_reconnect_keeps_a_push_that_came_while_it_was_on_its_way() -> None:
    """A stream subscribed again asks for a read (``refresh_soon``); a fill's push that lands while
    that read is on its way is newer than the read's answer and stays."""
    gate, mexc = FakeVenue(USDT="1000"), FakeVenue(USDT="1000")
    monitor = BalanceMonitor({ExchangeName.GATEIO: gate, ExchangeName.MEXC: mexc})
    release = asyncio.Event()
    answer = gate.balances

    async def slow_balances() -> Mapping[str, Balance]:
        snapshot = await answer()  # the venue's state when the read was served: before the fill
        await release.wait()
        return snapshot

    gate.balances = slow_balances  # type: ignore[method-assign]

    async def run() -> None:
        monitor.balance_handler(ExchangeName.GATEIO)  # a streamed market, as the controller sets it up
        monitor.refresh_soon(ExchangeName.GATEIO)
        await asyncio.sleep(0)
        gate.free["USDT"] = D("400")  # a fill, and its push
        monitor.push(ExchangeName.GATEIO, Balance(asset="USDT", free=D("400")))
        release.set()
        await asyncio.sleep(0.01)

    asyncio.run(run())
    assert gate.calls == 1 and monitor.free(ExchangeName.GATEIO, "USDT") == D("400")


def test_a_read_asked_for_while_one_is_under_way_follows_it() -> None:
    """Two reconnects in quick succession: the read the first asked for may have begun before the
    second outage, whose lost pushes only a read begun after it can show. One more read follows."""
    gate = FakeVenue(USDT="1000")
    monitor = BalanceMonitor({ExchangeName.GATEIO: gate})
    gate.hold = release = asyncio.Event()

    async def run() -> None:
        monitor.balance_handler(ExchangeName.GATEIO)
        monitor.refresh_soon(ExchangeName.GATEIO)  # the first resubscription's read: 1000
        await asyncio.sleep(0)
        gate.free["USDT"] = D("300")  # spent while the stream was down the second time: its push lost
        monitor.refresh_soon(ExchangeName.GATEIO)  # the second resubscription
        monitor.refresh_soon(ExchangeName.GATEIO)  # asked again meanwhile: still one read to follow
        release.set()
        await asyncio.sleep(0.01)

    asyncio.run(run())
    assert gate.calls == 2 and monitor.free(ExchangeName.GATEIO, "USDT") == D("300")


def test_a_background_read_that_fails_is_logged_and_the_next_ask_reads_again(caplog: pytest.LogCaptureFixture) -> None:
    """Nobody awaits ``refresh_soon``'s task: a failure outside the reads it guards was kept in the
    task, unseen until the task was collected."""
    gate = FakeVenue(USDT="1000")
    monitor = BalanceMonitor({ExchangeName.GATEIO: gate})
    refresh = monitor.refresh
    failures = [RuntimeError("bookkeeping broke")]

    async def failing(exchanges: Any = None) -> None:
        if failures:
            raise failures.pop()
        await refresh(exchanges)

    monitor.refresh = failing  # type: ignore[method-assign]

    async def run() -> None:
        monitor.refresh_soon(ExchangeName.GATEIO)
        await asyncio.sleep(0.01)
        monitor.refresh_soon(ExchangeName.GATEIO)
        await asyncio.sleep(0.01)

    with caplog.at_level(logging.ERROR, logger="arb.balances"):
        asyncio.run(run())
    assert [r.getMessage() for r in caplog.records] == ["gateio: background balance read failed"]
    assert "bookkeeping broke" in caplog.text and gate.calls == 1


def test_a_stream_read_begun_before_a_refresh_still_on_its_way_gives_way_to_its_answer() -> None:
    """The same race with the stream's older read answering while the controller's read is on its
    way: the refresh's answer, begun later, replaces it rather than keeping it as a newer push."""
    futures = FakeVenue(USDT="1000")
    monitor = BalanceMonitor({ExchangeName.GATEIO_FUTURES: futures})
    on_read = monitor.read_handler(ExchangeName.GATEIO_FUTURES)
    futures.hold = held = asyncio.Event()

    async def main() -> None:
        begun = time.monotonic_ns()  # the stream's read begins: 1000 free then
        futures.free["USDT"] = D("400")  # a fill uses margin
        refresh = asyncio.create_task(monitor.refresh([ExchangeName.GATEIO_FUTURES]))
        await asyncio.sleep(0)
        on_read({"USDT": Balance(asset="USDT", free=D("1000"))}, begun)
        assert monitor.free(ExchangeName.GATEIO_FUTURES, "USDT") == D("1000")  # nothing newer yet
        held.set()
        await refresh
        assert monitor.free(ExchangeName.GATEIO_FUTURES, "USDT") == D("400")
        # a stream read begun during a refresh is newer than its answer: the refresh keeps it
        held.clear()
        futures.free["USDT"] = D("300")
        refresh = asyncio.create_task(monitor.refresh([ExchangeName.GATEIO_FUTURES]))
        await asyncio.sleep(0)
        on_read({"USDT": Balance(asset="USDT", free=D("250"))}, time.monotonic_ns())
        held.set()
        await refresh
        assert monitor.free(ExchangeName.GATEIO_FUTURES, "USDT") == D("250")

    asyncio.run(main())


def test_a_stream_read_begun_before_a_refresh_that_answered_first_is_dropped() -> None:
    """Gate.io futures: the stream's read for a balance push was on its way when a fill used margin and
    the controller's own read answered; the stream's older answer must not undo it, or the next
    futures leg is sized on margin already used."""
    futures = FakeVenue(USDT="1000")
    monitor = BalanceMonitor({ExchangeName.GATEIO_FUTURES: futures})
    on_read = monitor.read_handler(ExchangeName.GATEIO_FUTURES)
    begun = time.monotonic_ns()  # the stream's read begins: 1000 free then
    futures.free["USDT"] = D("400")
    asyncio.run(monitor.refresh([ExchangeName.GATEIO_FUTURES]))
    on_read({"USDT": Balance(asset="USDT", free=D("1000"))}, begun)
    assert monitor.free(ExchangeName.GATEIO_FUTURES, "USDT") == D("400")
    on_read({"USDT": Balance(asset="USDT", free=D("350"))}, time.monotonic_ns())  # a read begun since applies
    assert monitor.free(ExchangeName.GATEIO_FUTURES, "USDT") == D("350")
