"""RiskManager.validate_opportunity_risk on the accept path (target: median under 5 us).

The baseline is the naive form of the same checks: it re-reads the configuration and
rebuilds every Decimal limit on each call, as a manager without precomputed limits would.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from arb.errors import RiskManagementError
from arb.exchanges.models import Fill
from arb.risk import RiskManager
from arb.types import (
    ArbitrageConfig,
    ArbitrageOpportunity,
    ExchangeConfig,
    ExchangeName,
    OpportunityType,
    OrderSide,
    RiskLimits,
)

CALLS = 1_000
CONFIG = ArbitrageConfig(
    dry_run=True,
    symbols=("BTC/USDT", "ETH/USDT"),
    exchanges=(ExchangeConfig(name="mexc"), ExchangeConfig(name="gateio")),
    risk_limits=RiskLimits(
        max_position_size_usd=Decimal("1000"),
        max_total_exposure_usd=Decimal("5000"),
        max_daily_loss_usd=Decimal("50"),
        min_profit_margin_bps=Decimal("10"),
        max_symbol_exposure_usd=Decimal("2000"),
    ),
)
OPPORTUNITY = ArbitrageOpportunity(
    opportunity_id="bench",
    opportunity_type=OpportunityType.SPOT_SPOT,
    symbol="BTC/USDT",
    buy_exchange=ExchangeName.MEXC,
    sell_exchange=ExchangeName.GATEIO,
    buy_price=Decimal("60000.1"),
    sell_price=Decimal("60110.5"),
    max_quantity=Decimal("0.0123"),
    profit_per_unit=Decimal("110.4"),
    total_profit_estimate=Decimal("1.35792"),
    profit_margin_bps=Decimal("18.39"),
    detected_at=0,
)


class NaiveRiskCheck:
    """The same limits, read from the configuration and converted on every call."""

    def __init__(self, config: ArbitrageConfig, exposure: dict[str, str], daily_pnl: str) -> None:
        self.config = config
        self.exposure = exposure
        self.daily_pnl = daily_pnl

    def validate(self, opp: ArbitrageOpportunity) -> None:
        limits = self.config.risk_limits
        if Decimal(self.daily_pnl) <= -Decimal(str(limits.max_daily_loss_usd)):
            raise RiskManagementError("daily loss")
        if opp.profit_margin_bps < Decimal(str(limits.min_profit_margin_bps)):
            raise RiskManagementError("margin")
        if opp.profit_margin_bps > Decimal(str(limits.max_profit_margin_bps)):
            raise RiskManagementError("implausible margin")
        notional = opp.max_quantity * max(opp.buy_price, opp.sell_price)
        if notional > Decimal(str(limits.max_position_size_usd)):
            raise RiskManagementError("position")
        total = sum((Decimal(v) for v in self.exposure.values()), Decimal(0)) + notional
        if total > Decimal(str(limits.max_total_exposure_usd)):
            raise RiskManagementError("exposure")
        cap = limits.max_symbol_exposure_usd
        if cap is not None and Decimal(self.exposure.get(opp.symbol, "0")) + notional > Decimal(str(cap)):
            raise RiskManagementError("symbol")


def _manager() -> RiskManager:
    manager = RiskManager(CONFIG.risk_limits)
    for symbol, price in (("BTC/USDT", "60000"), ("ETH/USDT", "3000")):
        manager.record_fill(
            ExchangeName.MEXC,
            Fill(
                symbol=symbol,
                order_id="1",
                client_order_id=None,
                trade_id=symbol,
                side=OrderSide.BUY,
                price=Decimal(price),
                quantity=Decimal("0.001"),
                fee=Decimal(0),
                fee_asset="USDT",
                is_maker=False,
                timestamp_ms=0,
            ),
        )
    manager.record_realized_pnl(Decimal("-12.5"))
    return manager


def test_validate_precomputed(benchmark: Any) -> None:
    """The engine's manager: limits bound once, state kept as running sums."""
    benchmark.group = "risk.validate_opportunity_risk x1000"
    manager = _manager()
    validate = manager.validate_opportunity_risk
    opp = OPPORTUNITY

    def run() -> None:
        for _ in range(CALLS):
            validate(opp)

    benchmark.pedantic(run, rounds=200, iterations=1, warmup_rounds=5)
    benchmark.extra_info["ns_per_call"] = round(benchmark.stats.stats.median / CALLS * 1e9, 1)
    stats = manager.get_risk_statistics()
    assert stats.validations == stats.accepted and stats.validations >= 205 * CALLS


def test_validate_naive_baseline(benchmark: Any) -> None:
    """Baseline: configuration re-read and limits rebuilt per call."""
    benchmark.group = "risk.validate_opportunity_risk x1000"
    naive = NaiveRiskCheck(CONFIG, {"BTC/USDT": "60", "ETH/USDT": "3"}, "-12.5")
    validate = naive.validate
    opp = OPPORTUNITY

    def run() -> None:
        for _ in range(CALLS):
            validate(opp)

    benchmark.pedantic(run, rounds=200, iterations=1, warmup_rounds=5)
    benchmark.extra_info["ns_per_call"] = round(benchmark.stats.stats.median / CALLS * 1e9, 1)
    rejecting = NaiveRiskCheck(CONFIG, {"BTC/USDT": "1999"}, "0")
    try:
        rejecting.validate(opp)
    except RiskManagementError as exc:
        assert str(exc) == "symbol"
    else:
        raise AssertionError("the baseline must reject over the symbol cap")
