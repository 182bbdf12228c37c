"""Typed Python API of arb_core.scanner (compiled)."""

import enum
from collections.abc import Iterable

from arb_core.book import OrderBook

class OpportunityKind(enum.IntEnum):
    SPOT_SPOT = 0
    SPOT_FUTURES_HEDGE = 1

class Opportunity:
    """One priced cross-venue trade: buy on ``buy_leg``'s asks, sell on ``sell_leg``'s bids."""

    @property
    def symbol_id(self) -> int: ...
    @property
    def buy_leg(self) -> int: ...
    @property
    def sell_leg(self) -> int: ...
    @property
    def kind(self) -> int:
        """An OpportunityKind value."""
    @property
    def size_common(self) -> int:
        """Common size units, a multiple of both legs' lots."""
    @property
    def buy_size_lots(self) -> int: ...
    @property
    def sell_size_lots(self) -> int: ...
    @property
    def buy_limit_ticks(self) -> int:
        """Worst ask touched, in the buy venue's ticks."""
    @property
    def sell_limit_ticks(self) -> int:
        """Worst bid touched, in the sell venue's ticks."""
    @property
    def buy_notional(self) -> int:
        """Common quote units (common price unit x common size unit)."""
    @property
    def sell_notional(self) -> int: ...
    @property
    def fees(self) -> int:
        """Both taker fees, each rounded up."""
    @property
    def profit(self) -> int:
        """sell_notional - buy_notional - fees."""
    @property
    def profit_bps(self) -> int:
        """profit / buy_notional in basis points, rounded down."""

class SpreadScanner:
    """Per-symbol legs over compiled books; finds the most profitable taker/taker pair."""

    def __init__(self) -> None: ...
    def add_symbol(self, symbol_id: int, max_position_common: int, min_profit_ppm: int = 0) -> None:
        """Register a symbol with its position cap (common size units) and profit floor (millionths
        of the price: 100 per basis point)."""
    def set_symbol_limits(self, symbol_id: int, max_position_common: int, min_profit_ppm: int) -> None:
        """Replace a symbol's position cap (common size units) and profit floor (millionths of the price)."""
    def add_leg(
        self,
        symbol_id: int,
        book: OrderBook,
        leg_id: int,
        is_futures: bool,
        taker_fee_ppm: int,
        price_mult: int,
        size_mult: int,
        min_notional_common: int,
    ) -> None:
        """Register one venue market of a symbol (multipliers map its ticks/lots to common units)."""
    def set_limits(self, symbol_id: int, leg_id: int, max_buy_common: int, max_sell_common: int) -> None:
        """Set how much a leg can buy (quote balance) and sell (inventory), in common size units."""
    def set_leg_costs(self, symbol_id: int, leg_id: int, taker_fee_ppm: int, min_notional_common: int) -> None:
        """Replace a leg's taker fee (ppm) and minimum order value: the venue changed them."""
    def scan_symbol(self, symbol_id: int, now_ns: int, max_age_ns: int) -> Opportunity | None:
        """Re-evaluate one symbol; its best Opportunity at or above the profit floor, or None."""
    def scan_symbol_except(
        self, symbol_id: int, now_ns: int, max_age_ns: int, excluded: Iterable[tuple[int, int]]
    ) -> Opportunity | None:
        """``scan_symbol`` leaving out the pairs ``excluded`` names as (buy_leg, sell_leg) leg ids."""
    def scan_pair(
        self, symbol_id: int, buy_leg: int, sell_leg: int, now_ns: int, max_age_ns: int, max_size_common: int
    ) -> Opportunity | None:
        """``scan_symbol`` of the one pair buying on ``buy_leg`` and selling on ``sell_leg``, at most
        ``max_size_common`` of it: a shallower walk of a pair whose limits were not taken."""
    def scan_all(self, now_ns: int, max_age_ns: int) -> list[Opportunity]:
        """Re-evaluate every symbol; the opportunities found, in registration order."""
    def best(self, symbol_id: int) -> Opportunity | None:
        """The opportunity found by the latest scan of ``symbol_id``, or None."""
    def symbol_ids(self) -> list[int]:
        """Registered symbol ids in registration order."""
    def leg_ids(self, symbol_id: int) -> list[int]:
        """Leg ids of ``symbol_id`` in registration order."""
    def __len__(self) -> int: ...
