"""Normalised exchange data: what every venue's connector returns, whatever its wire format.

Money is ``Decimal`` here (the venue edge); the compiled core sees ticks and lots, converted
through ``arb.instruments.Instrument``. Times are wall-clock milliseconds unless named ``*_ns``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from decimal import Decimal
from enum import Enum, IntEnum

import msgspec

from ..errors import ArbitrageEngineError
from ..types import OrderSide

log = logging.getLogger(__name__)


class OrderRequestError(ArbitrageEngineError, ValueError):
    """An ``OrderRequest`` is inconsistent (price on a market order, post-only market, size <= 0...)."""


class OrderType(str, Enum):
    """Order type."""

    LIMIT = "limit"
    MARKET = "market"


class TimeInForce(str, Enum):
    """How long an order may rest; POST_ONLY is a limit order that must not take liquidity."""

    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"
    POST_ONLY = "post_only"


class OrderStatus(str, Enum):
    """Lifecycle of an order at the venue."""

    NEW = "new"  # accepted and resting, or accepted with fills not yet reported
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"  # possibly after partial fills: see filled_quantity
    REJECTED = "rejected"
    EXPIRED = "expired"  # IOC/FOK remainder dropped by the venue

    @property
    def is_final(self) -> bool:
        """Whether the order can no longer change."""
        return self not in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)


class FrameKind(IntEnum):
    """What a websocket frame is; the first four values are those of ``arb_core.wire.common``."""

    OTHER = 0
    BOOK_UPDATE = 1
    ACK = 2  # subscribe / unsubscribe / login reply
    PONG = 3
    ERROR = 4  # a venue error reply (bad subscription, auth failure...)


class OrderRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A new order, in the instrument's order unit (base asset on spot, contracts on futures)."""

    symbol: str  # unified, "BTC/USDT"
    side: OrderSide
    type: OrderType
    quantity: Decimal
    client_order_id: str
    price: Decimal | None = None  # required for LIMIT, absent for MARKET
    time_in_force: TimeInForce = TimeInForce.GTC  # MARKET takes IOC or FOK
    reduce_only: bool = False  # futures only

    def __post_init__(self) -> None:
        if not self.client_order_id:
            raise OrderRequestError(f"order on {self.symbol}: client_order_id is empty")
        if not self.quantity.is_finite() or self.quantity <= 0:
            raise OrderRequestError(f"{self._where()}: quantity={self.quantity} must be a positive number")
        if self.type is OrderType.LIMIT:
            if self.price is None or not self.price.is_finite() or self.price <= 0:
                raise OrderRequestError(f"{self._where()}: a limit order needs a positive price, got {self.price}")
        else:
            if self.price is not None:
                raise OrderRequestError(f"{self._where()}: a market order takes no price, got {self.price}")
            if self.time_in_force not in (TimeInForce.IOC, TimeInForce.FOK):
                raise OrderRequestError(
                    f"{self._where()}: a market order takes time_in_force ioc or fok, got {self.time_in_force.value}"
                )

    def _where(self) -> str:
        return f"order {self.client_order_id!r} {self.symbol}"


def _all_finite(*amounts: Decimal | None) -> bool:
    """Whether none of ``amounts`` (None: not given) is NaN or infinite: a venue's "NaN" or "Infinity"
    decodes as a Decimal that every later comparison raises on, so a struct holding one is refused."""
    return all(amount is None or amount.is_finite() for amount in amounts)


class OrderState(msgspec.Struct, frozen=True, kw_only=True):
    """An order as the venue last reported it."""

    symbol: str
    order_id: str
    client_order_id: str | None
    side: OrderSide
    type: OrderType
    status: OrderStatus
    quantity: Decimal
    price: Decimal | None = None
    filled_quantity: Decimal = Decimal(0)
    average_price: Decimal | None = None
    fee: Decimal = Decimal(0)
    fee_asset: str | None = None
    updated_at_ms: int = 0
    # The rate the venue says this order's fills are charged, where it reports a rate and no fee
    # (Gate.io futures' ``tkfr``/``mkfr``); None: the instrument's taker rate stands in.
    fee_rate: Decimal | None = None

    def __post_init__(self) -> None:
        # Refused here, the answer is unreadable: an order's outcome then unknown, and queried.
        if not _all_finite(self.quantity, self.filled_quantity, self.fee, self.price, self.average_price, self.fee_rate):
            raise ValueError(
                f"order {self.order_id}: a quantity, price or fee is not a number (quantity={self.quantity} "
                f"price={self.price} filled_quantity={self.filled_quantity} average_price={self.average_price} "
                f"fee={self.fee} fee_rate={self.fee_rate})"
            )

    @property
    def remaining_quantity(self) -> Decimal:
        """Quantity not (yet) filled."""
        return self.quantity - self.filled_quantity

    @property
    def is_final(self) -> bool:
        """Whether the order can no longer change."""
        return self.status.is_final


class Fill(msgspec.Struct, frozen=True, kw_only=True):
    """One execution of an order."""

    symbol: str
    order_id: str
    client_order_id: str | None
    trade_id: str
    side: OrderSide
    price: Decimal
    quantity: Decimal
    fee: Decimal
    fee_asset: str
    is_maker: bool
    timestamp_ms: int

    def __post_init__(self) -> None:
        if not _all_finite(self.price, self.quantity, self.fee):
            raise ValueError(
                f"fill {self.trade_id}: price={self.price} quantity={self.quantity} fee={self.fee}: not all numbers"
            )


class Balance(msgspec.Struct, frozen=True, kw_only=True):
    """Holdings of one asset."""

    asset: str
    free: Decimal
    locked: Decimal = Decimal(0)
    # When the venue's balance became this, by the venue's clock (ms): what a push stamps it with.
    updated_at_ms: int | None = None

    def __post_init__(self) -> None:
        # Refused here, the push or read is counted unreadable instead.
        if not _all_finite(self.free, self.locked):
            raise ValueError(f"balance of {self.asset}: free={self.free} locked={self.locked} is not a number")

    @property
    def total(self) -> Decimal:
        """Free plus locked."""
        return self.free + self.locked


def listed_balances(venue: str, listed: Iterable[tuple[str, Decimal, Decimal, int | None]]) -> list[Balance]:
    """The ``Balance`` of each ``(asset, free, locked, updated_at_ms)`` a venue lists, leaving out with a
    warning an asset whose amounts are not numbers: one such asset must not make every other unreadable."""
    balances = []
    for asset, free, locked, updated_at_ms in listed:
        try:
            balances.append(Balance(asset=asset, free=free, locked=locked, updated_at_ms=updated_at_ms))
        except ValueError as exc:
            log.warning("%s: %s: left out", venue, exc)
    return balances


class Position(msgspec.Struct, frozen=True, kw_only=True):
    """An open futures position as the venue reports it; ``size`` is signed (negative = short)."""

    symbol: str
    size: Decimal  # order unit (contracts on futures)
    entry_price: Decimal
    mark_price: Decimal | None = None
    unrealized_pnl: Decimal | None = None
    leverage: Decimal | None = None
    liquidation_price: Decimal | None = None  # None: the venue gives none (cross margin far from it, or no field)

    def __post_init__(self) -> None:
        if not _all_finite(
            self.size, self.entry_price, self.mark_price, self.unrealized_pnl, self.leverage, self.liquidation_price
        ):
            raise ValueError(f"position in {self.symbol}: an amount is not a number ({self})")


class FundingPayment(msgspec.Struct, frozen=True, kw_only=True):
    """Funding a venue settled on one futures position: ``amount`` in the settle asset, > 0 received."""

    payment_id: str  # unique per market
    symbol: str
    amount: Decimal
    time_ms: int  # wall-clock ms of the settlement

    def __post_init__(self) -> None:
        # Counted in the daily PnL: a NaN there would make every later risk check raise.
        if not _all_finite(self.amount):
            raise ValueError(f"funding payment {self.payment_id} in {self.symbol}: amount={self.amount} is not a number")


class ConnectionHealth(msgspec.Struct, frozen=True, kw_only=True):
    """A point-in-time view of one websocket session."""

    venue: str
    url: str
    connected: bool
    connects: int  # successful handshakes
    reconnects: int  # connection attempts after the first
    messages: int  # complete data messages delivered
    last_message_age_ns: int | None  # None before the first message
    errors: dict[str, int]  # by kind: connect, callback, oversize, protocol...
    fragmented_messages: int = 0  # messages reassembled from CONTINUATION frames
