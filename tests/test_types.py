"""Domain types and the error tree."""

from decimal import Decimal

import msgspec
import pytest

import arb
from arb.errors import (
    ArbitrageEngineError,
    ConfigurationError,
    DataFreshnessError,
    ExchangeConnectionError,
    ExchangeError,
    OrderExecutionError,
    OrderRejectedError,
    RateLimitError,
    RecoveryError,
    RiskManagementError,
)
from arb.types import (
    ArbitrageOpportunity,
    ArbitrageState,
    EngineStatistics,
    ExchangeName,
    OpportunityType,
    RiskLimits,
)


def opportunity() -> ArbitrageOpportunity:
    return ArbitrageOpportunity(
        opportunity_id="op-1",
        opportunity_type=OpportunityType.SPOT_SPOT,
        symbol="BTC/USDT",
        buy_exchange=ExchangeName.MEXC,
        sell_exchange=ExchangeName.GATEIO,
        buy_price=Decimal("100.01"),
        sell_price=Decimal("100.50"),
        max_quantity=Decimal("0.5"),
        profit_per_unit=Decimal("0.29"),
        total_profit_estimate=Decimal("0.145"),
        profit_margin_bps=Decimal("29"),
        detected_at=1,
    )


def test_value_types_are_frozen() -> None:
    op = opportunity()
    with pytest.raises(AttributeError):
        op.buy_price = Decimal(1)  # type: ignore[misc]


def test_money_round_trips_exactly() -> None:
    op = opportunity()
    decoded = msgspec.json.decode(msgspec.json.encode(op), type=ArbitrageOpportunity)
    assert decoded == op
    assert decoded.buy_price == Decimal("100.01")


def test_decimal_fields_decode_json_numbers_exactly() -> None:
    raw = (b'{"max_position_size_usd": 0.1, "max_total_exposure_usd": "0.3", "max_daily_loss_usd": 1,'
           b' "min_profit_margin_bps": "2.5"}')
    decoded = msgspec.json.decode(raw, type=RiskLimits)
    assert decoded.max_position_size_usd == Decimal("0.1")  # not 0.1000000000000000055...
    assert decoded.max_total_exposure_usd == Decimal("0.3")


def test_exchange_names() -> None:
    assert ExchangeName.GATEIO_FUTURES.venue == "gateio" and ExchangeName.GATEIO_FUTURES.is_futures
    assert ExchangeName.MEXC.venue == "mexc" and not ExchangeName.MEXC.is_futures


def test_states_match_the_compiled_state_machine() -> None:
    from arb_core import fsm

    assert [s.name for s in ArbitrageState] == list(fsm.STATE_NAMES)


def test_success_rate() -> None:
    assert EngineStatistics().success_rate == 0
    stats = EngineStatistics(opportunities_executed=4, executions_succeeded=3)
    assert stats.success_rate == Decimal("0.75")


@pytest.mark.parametrize(
    "error",
    [
        ConfigurationError(["x"]),
        ExchangeError("mexc", "down"),
        ExchangeConnectionError("mexc", "refused"),
        RateLimitError("gateio", "slow down", retry_after_s=2.0),
        OrderRejectedError("gateio", "balance", code="BALANCE_NOT_ENOUGH"),
        OrderExecutionError("leg"),
        RiskManagementError("limit"),
        RecoveryError("residual"),
        DataFreshnessError("stale"),
    ],
)
def test_one_error_tree(error: Exception) -> None:
    assert isinstance(error, ArbitrageEngineError)


def test_exchange_errors_name_the_venue_and_code() -> None:
    assert str(OrderRejectedError("gateio", "insufficient balance", code="BALANCE_NOT_ENOUGH")) == (
        "gateio: insufficient balance (code BALANCE_NOT_ENOUGH)"
    )
    assert isinstance(RateLimitError("mexc", "x"), ExchangeError)


def test_configuration_error_lists_each_problem() -> None:
    error = ConfigurationError(["a: bad", "b: worse"])
    assert str(error) == "2 configuration problems:\n  a: bad\n  b: worse"


def test_public_api() -> None:
    for name in ("ConfigurationManager", "ArbitrageConfig", "RiskLimits", "ArbitrageOpportunity", "PositionEntry",
                 "EngineStatistics", "OpportunityType", "ExchangeName", "ArbitrageEngineError",
                 "OrderExecutionError", "RiskManagementError", "RecoveryError"):
        assert hasattr(arb, name), name
