"""A scripted in-memory ``PrivateExchange`` and a fake clock, for executor and recovery tests.

Each ``place_order`` takes the next scripted ``Step`` (default: fill at the touch or the
limit). A venue keeps every order it accepted, so a query by client id tells the truth
even when the answer to placing it was lost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal as D

import msgspec

from arb.errors import ExchangeConnectionError, ExchangeError, OrderRejectedError, RateLimitError
from arb.exchanges.base import FillHandler, OrderHandler
from arb.exchanges.errors import ErrorCategory
from arb.exchanges.models import Balance, ConnectionHealth, OrderRequest, OrderState, OrderStatus, Position
from arb.instruments import Instrument, InstrumentCatalog
from arb.types import ExchangeName, OrderSide

ZERO = D(0)


class FakeTime:
    """Monotonic clock in ns that only moves when slept on; records every sleep."""

    def __init__(self) -> None:
        self.now_ns = 1_000_000_000
        self.sleeps: list[float] = []

    def clock(self) -> int:
        return self.now_ns

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now_ns += int(seconds * 1e9)


class Step(msgspec.Struct, frozen=True, kw_only=True):
    """What the venue does with one ``place_order``.

    ``kind``: fill (fill ``fraction`` of the order at the touch/limit), reject (raise
    OrderRejectedError with ``category``), lost (accept and fill like ``fill``, then lose the
    answer with ``error``), vanish (lose the request before the venue sees it), ratelimit
    (raise RateLimitError with ``retry_after_s``), ack (answer NEW, finish on the next query).
    """

    kind: str = "fill"
    fraction: D = D(1)
    category: ErrorCategory = ErrorCategory.INSUFFICIENT_BALANCE
    retry_after_s: float | None = None
    error: str = "outcome_unknown"  # lost: outcome_unknown | disconnect


class FakeExchange:
    """One scripted market implementing ``PrivateExchange``."""

    def __init__(
        self,
        instrument: Instrument,
        script: Sequence[Step] = (),
        *,
        touch: tuple[D, D] | None = None,
        failing_queries: int = 0,
    ) -> None:
        self.instrument = instrument
        self.script = list(script)
        self.touch = touch  # (bid, ask): IOC fills only through it; None fills at the limit
        self.failing_queries = failing_queries  # the next queries fail as if disconnected
        self.limited_queries: list[float] = []  # the next queries are refused with a 429 asking these waits
        self.fee_in: tuple[D, str] | None = None  # (fee, asset): fills charged this in another asset (MEXC's MX)
        self.orders: dict[str, OrderState] = {}
        self.placed: list[OrderRequest] = []  # every place_order call, including refused ones
        self.rehearsed: list[OrderRequest] = []  # every rehearse_order call
        self.queries: list[str] = []
        self.cancels: list[str] = []
        self._pending: dict[str, OrderState] = {}
        self._ids = 0

    can_trade = True
    order_acceptance_s = 0.0  # how long after sending the venue may still take an order
    client_id_lookup_s: float | None = None  # how long after it ends an order is found by its client id

    @property
    def exchange(self) -> ExchangeName:
        return self.instrument.exchange

    def net_base(self) -> D:
        """Signed base quantity this venue's fills moved (buys positive)."""
        total = ZERO
        for state in self.orders.values():
            base = state.filled_quantity * self.instrument.contract_size
            total += base if state.side is OrderSide.BUY else -base
        return total

    def write_order(self, request: OrderRequest) -> None:
        return None  # every order goes through the scripted place_order

    def order_wait_s(self, symbol: str) -> float:
        return 0.0  # the order budget always admits an order at once

    def rehearse_order(self, request: OrderRequest) -> None:
        self.rehearsed.append(request)

    async def place_order(self, request: OrderRequest) -> OrderState:
        self.placed.append(request)
        step = self.script.pop(0) if self.script else Step()
        venue = self.exchange.value
        if step.kind == "reject":
            raise OrderRejectedError(venue, f"order {request.client_order_id} refused", category=step.category)
        if step.kind == "ratelimit":
            raise RateLimitError(venue, "too many requests", category=ErrorCategory.RATE_LIMITED,
                                 retry_after_s=step.retry_after_s)
        if step.kind == "vanish":
            raise ExchangeError(venue, "request timed out", category=ErrorCategory.OUTCOME_UNKNOWN)
        if request.client_order_id in self.orders:
            raise OrderRejectedError(venue, "duplicate client order id", category=ErrorCategory.ORDER_REJECTED)
        state = self._execute(request, step.fraction)
        if step.kind == "ack":
            self.orders[request.client_order_id] = state
            self._pending[request.client_order_id] = state
            return msgspec.structs.replace(
                state, status=OrderStatus.NEW, filled_quantity=ZERO, average_price=None, fee=ZERO
            )
        self.orders[request.client_order_id] = state
        if step.kind == "lost":
            if step.error == "disconnect":
                raise ConnectionResetError("connection reset by peer")
            raise ExchangeError(venue, "gateway timeout [HTTP 504]", category=ErrorCategory.OUTCOME_UNKNOWN)
        return state

    def _execute(self, request: OrderRequest, fraction: D) -> OrderState:
        assert request.price is not None
        price = request.price
        fills = True
        if self.touch is not None:
            bid, ask = self.touch
            fills = request.price >= ask if request.side is OrderSide.BUY else request.price <= bid
            price = ask if request.side is OrderSide.BUY else bid
        lots = self.instrument.size_to_lots(request.quantity)
        filled_lots = int(lots * fraction) if fills else 0
        filled = self.instrument.lots_to_size(filled_lots)
        inst = self.instrument
        fee_asset = inst.fee_asset(request.side)
        if fee_asset == inst.quote:
            fee = filled * inst.contract_size * price * inst.taker_fee
        else:
            fee = filled * inst.taker_fee
        if self.fee_in is not None:
            fee, fee_asset = self.fee_in
        self._ids += 1
        return OrderState(
            symbol=request.symbol,
            order_id=f"{self.exchange.value}-{self._ids}",
            client_order_id=request.client_order_id,
            side=request.side,
            type=request.type,
            status=OrderStatus.FILLED if filled == request.quantity else OrderStatus.EXPIRED,
            quantity=request.quantity,
            price=request.price,
            filled_quantity=filled,
            average_price=price if filled else None,
            fee=fee,
            fee_asset=fee_asset if filled else None,
            updated_at_ms=1_700_000_000_000,
        )

    async def query_order(
        self, symbol: str, *, order_id: str | None = None, client_order_id: str | None = None,
        sent_at_ms: int | None = None,
    ) -> OrderState:
        assert (client_order_id is None) != (order_id is None)
        self.queries.append(client_order_id if client_order_id is not None else f"order id {order_id}")
        if self.failing_queries:
            self.failing_queries -= 1
            raise ExchangeConnectionError(self.exchange.value, "disconnected", category=ErrorCategory.OUTCOME_UNKNOWN)
        if self.limited_queries:
            raise RateLimitError(self.exchange.value, "too many requests", category=ErrorCategory.RATE_LIMITED,
                                 retry_after_s=self.limited_queries.pop(0))
        if client_order_id is None:
            state = next((s for s in self.orders.values() if s.order_id == order_id), None)
        else:
            self._pending.pop(client_order_id, None)
            state = self.orders.get(client_order_id)
        if state is None:
            raise OrderRejectedError(self.exchange.value, "order not found", category=ErrorCategory.UNKNOWN_ORDER)
        return state

    async def cancel_order(
        self, symbol: str, *, order_id: str | None = None, client_order_id: str | None = None
    ) -> OrderState:
        assert client_order_id is not None
        self.cancels.append(client_order_id)
        state = self.orders.get(client_order_id)
        if state is None:
            raise OrderRejectedError(self.exchange.value, "order not found", category=ErrorCategory.UNKNOWN_ORDER)
        return state

    async def balances(self) -> Mapping[str, Balance]:
        return {}

    async def open_orders(self, symbol: str | None = None) -> Sequence[OrderState]:
        return []

    async def positions(self) -> Sequence[Position]:
        """A perpetual's net position from its fills, as a venue reports it (contracts); none on spot."""
        contracts = self.net_base() / self.instrument.contract_size
        if not self.instrument.is_futures or not contracts:
            return []
        last = next(s for s in reversed(list(self.orders.values())) if s.filled_quantity and s.average_price)
        return [Position(symbol=self.instrument.symbol, size=contracts, entry_price=last.average_price or ZERO)]

    async def start_private_stream(self, on_order: OrderHandler, on_fill: FillHandler) -> None:
        return None

    async def stop_private_stream(self) -> None:
        return None

    def health(self) -> ConnectionHealth:
        return ConnectionHealth(
            venue=self.exchange.value, url="fake://", connected=True, connects=1, reconnects=0, messages=0,
            last_message_age_ns=None, errors={},
        )


class HeldBudget(FakeExchange):
    """A market whose order budget is held for a while (after a 429): ``place_order`` first sleeps on
    the fake clock until the hold ends, as the connector's rate limiter does."""

    time: FakeTime | None = None
    held_until_ns = 0

    def hold(self, time: FakeTime, seconds: float) -> None:
        self.time = time
        self.held_until_ns = time.now_ns + int(seconds * 1e9)

    def order_wait_s(self, symbol: str) -> float:
        return 0.0 if self.time is None else max(0.0, (self.held_until_ns - self.time.now_ns) / 1e9)

    async def place_order(self, request: OrderRequest) -> OrderState:
        wait_s = self.order_wait_s(request.symbol)
        if wait_s and self.time is not None:
            await self.time.sleep(wait_s)
        return await super().place_order(request)


def spot(exchange: ExchangeName, **overrides: object) -> Instrument:
    """BTC/USDT spot: tick 0.01, lot 0.0001, 0.1 % taker."""
    fields: dict[str, object] = dict(
        exchange=exchange, symbol="BTC/USDT", venue_symbol="BTC_USDT", base="BTC", quote="USDT",
        tick_size=D("0.01"), lot_size=D("0.0001"), min_size=D("0.0001"), min_notional=D("1"),
        taker_fee=D("0.001"), maker_fee=D("0.0005"), price_decimals=2, size_decimals=4,
    )
    fields.update(overrides)
    return Instrument(**fields)  # type: ignore[arg-type]


def perp(exchange: ExchangeName, **overrides: object) -> Instrument:
    """BTC/USDT:USDT perpetual: tick 0.1, 1 contract = 0.0001 BTC, 0.05 % taker."""
    fields: dict[str, object] = dict(
        exchange=exchange, symbol="BTC/USDT:USDT", venue_symbol="BTC_USDT", base="BTC", quote="USDT",
        tick_size=D("0.1"), lot_size=D("1"), min_size=D("1"), min_notional=D("0"), contract_size=D("0.0001"),
        taker_fee=D("0.0005"), maker_fee=D("-0.00025"), price_decimals=1, size_decimals=0,
    )
    fields.update(overrides)
    return Instrument(**fields)  # type: ignore[arg-type]


def catalogs(*venues: FakeExchange) -> dict[ExchangeName, InstrumentCatalog]:
    """Instrument catalogs of the venues' markets."""
    return {v.exchange: InstrumentCatalog(v.exchange, [v.instrument]) for v in venues}
