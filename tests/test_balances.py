"""arb.balances: REST reconciliation, scanner caps from free balances, inventory skew alerts."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from decimal import Decimal as D

from test_pipeline import GATE, GATE_BOOK, MEXC, MEXC_BOOK, book

from arb.balances import BalanceMonitor, SkewAlert
from arb.errors import ExchangeError
from arb.exchanges.models import Balance
from arb.pipeline import ScannerPipeline
from arb.types import ExchangeName


class FakeVenue:
    """Balances by asset, changeable between refreshes; can fail."""

    def __init__(self, **free: str) -> None:
        self.free = {asset: D(amount) for asset, amount in free.items()}
        self.fail = False
        self.calls = 0

    async def balances(self) -> Mapping[str, Balance]:
        self.calls += 1
        if self.fail:
            raise ExchangeError("fake", "balances unavailable")
        return {asset: Balance(asset=asset, free=amount) for asset, amount in self.free.items()}


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


def test_skew_alerts_once_per_episode() -> None:
    gate, mexc = FakeVenue(BTC="9.5", USDT="1000"), FakeVenue(BTC="0.5", USDT="1000")
    alerts: list[SkewAlert] = []
    monitor = BalanceMonitor({ExchangeName.GATEIO: gate, ExchangeName.MEXC: mexc}, on_alert=alerts.append)
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
