"""arb.exchanges.models and base: validation of normalised types, frame kinds, the test dialect."""

from __future__ import annotations

from decimal import Decimal

import pytest
from loopback import GateSpotTestDialect, gate_update

from arb.exchanges.base import BookKey, MarketDataDialect
from arb.exchanges.models import (
    Balance,
    FrameKind,
    OrderRequest,
    OrderRequestError,
    OrderState,
    OrderStatus,
    OrderType,
    TimeInForce,
)
from arb.types import ExchangeName, OrderSide
from arb_core.book import DeltaBatch
from arb_core.wire import common
from arb_core.wire.common import WireScale


def limit(**kw: object) -> OrderRequest:
    args: dict[str, object] = dict(
        symbol="BTC/USDT", side=OrderSide.BUY, type=OrderType.LIMIT, quantity=Decimal("0.01"),
        price=Decimal("65000.5"), client_order_id="t-abc",
    )
    args.update(kw)
    return OrderRequest(**args)  # type: ignore[arg-type]


def test_order_request_accepts_valid_orders() -> None:
    assert limit().time_in_force is TimeInForce.GTC
    market = limit(type=OrderType.MARKET, price=None, time_in_force=TimeInForce.IOC)
    assert market.price is None and not market.reduce_only


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"price": None}, "a limit order needs a positive price, got None"),
        ({"price": Decimal("-1")}, "a limit order needs a positive price, got -1"),
        ({"quantity": Decimal("0")}, "quantity=0 must be a positive number"),
        ({"quantity": Decimal("NaN")}, "quantity=NaN must be a positive number"),
        ({"type": OrderType.MARKET}, "a market order takes no price, got 65000.5"),
        ({"type": OrderType.MARKET, "price": None}, "a market order takes time_in_force ioc or fok, got gtc"),
        ({"client_order_id": ""}, "client_order_id is empty"),
    ],
)
def test_order_request_rejects_inconsistent_orders(changes: dict[str, object], message: str) -> None:
    with pytest.raises(OrderRequestError, match=message.replace("(", r"\(")):
        limit(**changes)


def test_order_state_and_balance_helpers() -> None:
    state = OrderState(
        symbol="BTC/USDT", order_id="1", client_order_id="t-abc", side=OrderSide.SELL, type=OrderType.LIMIT,
        status=OrderStatus.PARTIALLY_FILLED, quantity=Decimal("1.5"), filled_quantity=Decimal("0.5"),
    )
    assert state.remaining_quantity == Decimal("1.0") and not state.is_final
    assert [s.value for s in OrderStatus if s.is_final] == ["filled", "canceled", "rejected", "expired"]
    assert Balance(asset="USDT", free=Decimal("10"), locked=Decimal("2.5")).total == Decimal("12.5")


def test_frame_kinds_match_the_compiled_constants() -> None:
    assert (FrameKind.OTHER, FrameKind.BOOK_UPDATE, FrameKind.ACK, FrameKind.PONG) == (
        common.OTHER, common.BOOK_UPDATE, common.SUBSCRIPTION, common.PONG
    )
    assert BookKey(ExchangeName.GATEIO, "BTC/USDT").exchange is ExchangeName.GATEIO


def test_the_test_dialect_speaks_gate() -> None:
    dialect: MarketDataDialect = GateSpotTestDialect()
    frame = gate_update("BTC_USDT", 5, 6, [("1.5", "2")], full=True)
    batch = DeltaBatch()
    assert dialect.classify(frame) == FrameKind.BOOK_UPDATE and dialect.frame_symbol(frame) == b"BTC_USDT"
    assert dialect.decode_update(frame, WireScale(1, 1, 0, 1), batch) == 1
    assert (batch.first_update_id, batch.last_update_id, batch.is_snapshot) == (5, 6, True)
    assert dialect.classify(b'{"time":1,"channel":"spot.pong","event":"","result":null}') == FrameKind.PONG
