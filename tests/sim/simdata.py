"""Instruments and helpers shared by the simulator tests."""

from decimal import Decimal as D

from arb.instruments import Instrument
from arb.types import ExchangeName


def spot(exchange: ExchangeName = ExchangeName.GATEIO, **overrides: object) -> Instrument:
    """BTC/USDT spot: tick 0.01, lot 0.0001, min notional 1 USDT, 0.1 % taker, 0.05 % maker."""
    fields: dict[str, object] = dict(
        exchange=exchange, symbol="BTC/USDT", venue_symbol="BTC_USDT", base="BTC", quote="USDT",
        tick_size=D("0.01"), lot_size=D("0.0001"), min_size=D("0.0001"), min_notional=D("1"),
        taker_fee=D("0.001"), maker_fee=D("0.0005"), price_decimals=2, size_decimals=4,
    )
    fields.update(overrides)
    return Instrument(**fields)  # type: ignore[arg-type]


def perp(exchange: ExchangeName = ExchangeName.GATEIO_FUTURES, **overrides: object) -> Instrument:
    """BTC/USDT:USDT perpetual: tick 0.1, 1 contract = 0.0001 BTC, 0.05 % taker, -0.025 % maker rebate."""
    fields: dict[str, object] = dict(
        exchange=exchange, symbol="BTC/USDT:USDT", venue_symbol="BTC_USDT", base="BTC", quote="USDT",
        tick_size=D("0.1"), lot_size=D("1"), min_size=D("1"), min_notional=D("0"), contract_size=D("0.0001"),
        taker_fee=D("0.0005"), maker_fee=D("-0.00025"), price_decimals=1, size_decimals=0,
    )
    fields.update(overrides)
    return Instrument(**fields)  # type: ignore[arg-type]
