"""Pure-Python reference of arb_core.scanner: the readable spec and the test oracle.

Books are read only through their public API (``top``, ``ask_count``, ``bid_count``,
``in_sync``, ``last_recv_ns``), so the same reference runs over compiled books.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from math import gcd
from typing import Protocol

from reference.freshness import is_fresh

BID = 0
ASK = 1
SPOT_SPOT = 0
SPOT_FUTURES_HEDGE = 1
PPM = 1_000_000
BPS = 10_000
INT64_MAX = 2**63 - 1
NOTIONAL_MAX = 2**112 - 1

OPPORTUNITY_FIELDS = (
    "symbol_id", "buy_leg", "sell_leg", "kind", "size_common", "buy_size_lots",
    "sell_size_lots", "buy_limit_ticks", "sell_limit_ticks", "buy_notional",
    "sell_notional", "fees", "profit", "profit_bps",
)


class Book(Protocol):
    """The public book API the reference reads."""

    @property
    def in_sync(self) -> bool: ...
    @property
    def last_recv_ns(self) -> int: ...
    @property
    def bid_count(self) -> int: ...
    @property
    def ask_count(self) -> int: ...
    def top(self, side: int, n: int) -> list[tuple[int, int]]: ...


@dataclass(frozen=True)
class Opportunity:
    symbol_id: int
    buy_leg: int
    sell_leg: int
    kind: int
    size_common: int
    buy_size_lots: int
    sell_size_lots: int
    buy_limit_ticks: int
    sell_limit_ticks: int
    buy_notional: int
    sell_notional: int
    fees: int
    profit: int
    profit_bps: int


@dataclass
class Leg:
    book: Book
    leg_id: int
    is_futures: bool
    fee_ppm: int
    price_mult: int
    size_mult: int
    min_notional: int
    max_buy: int = 0
    max_sell: int = 0


@dataclass
class Symbol:
    symbol_id: int
    max_position: int
    min_profit_ppm: int  # the profit floor in millionths of the price (100 per bp)
    legs: list[Leg] = field(default_factory=list)
    best: Opportunity | None = None


def fee_up(notional: int, fee_ppm: int) -> int:
    """Taker fee rounded up against us: ceil(notional * fee_ppm / 1e6)."""
    return -(-notional * fee_ppm // PPM)


def fill(levels: list[tuple[int, int]], lots: int) -> tuple[int, int]:
    """(sum of price * lots, worst price touched) taking ``lots`` from ``levels``, best first."""
    notional = worst = 0
    for price, size in levels:
        if lots == 0:
            break
        take = min(size, lots)
        notional += price * take
        worst = price
        lots -= take
    return notional, worst


def price_pair(sym: Symbol, buy: Leg, sell: Leg, max_size: int = INT64_MAX) -> Opportunity | None:
    """Buy on ``buy``'s asks and sell on ``sell``'s bids, at most ``max_size`` common units; None when
    not worth trading."""
    asks = buy.book.top(ASK, buy.book.ask_count)
    bids = sell.book.top(BID, sell.book.bid_count)
    cap = min(sym.max_position, buy.max_buy, sell.max_sell, max_size)

    def pays(ask: int, bid: int) -> bool:
        # A unit bought at ``ask`` and sold at ``bid``: its proceeds net of fee above its cost incl.
        # fee, by at least the floor's share of its price, on the common grid.
        price = Fraction(ask * buy.price_mult)
        edge = bid * sell.price_mult * (1 - Fraction(sell.fee_ppm, PPM)) - price * (1 + Fraction(buy.fee_ppm, PPM))
        return edge > 0 and edge * PPM / price >= sym.min_profit_ppm

    # Match ask units against bid units in price order while the marginal unit pays; that part is a
    # prefix, and at its deepest prices the whole of it still meets the floor.
    filled = 0
    i = j = 0
    left_ask = asks[0][1] * buy.size_mult if asks else 0
    left_bid = bids[0][1] * sell.size_mult if bids else 0
    while i < len(asks) and j < len(bids) and filled < cap and pays(asks[i][0], bids[j][0]):
        take = min(left_ask, left_bid, cap - filled)
        filled += take
        left_ask -= take
        left_bid -= take
        if left_ask == 0:
            i += 1
            left_ask = asks[i][1] * buy.size_mult if i < len(asks) else 0
        if left_bid == 0:
            j += 1
            left_bid = bids[j][1] * sell.size_mult if j < len(bids) else 0
    step = buy.size_mult * sell.size_mult // gcd(buy.size_mult, sell.size_mult)
    size = filled - filled % step
    if size == 0:
        return None
    buy_lots, sell_lots = size // buy.size_mult, size // sell.size_mult
    buy_ticks_lots, buy_limit = fill(asks, buy_lots)
    sell_ticks_lots, sell_limit = fill(bids, sell_lots)
    buy_notional = buy_ticks_lots * buy.price_mult * buy.size_mult
    sell_notional = sell_ticks_lots * sell.price_mult * sell.size_mult
    if buy_notional < buy.min_notional or sell_notional < sell.min_notional:
        return None
    buy_fee, sell_fee = fee_up(buy_notional, buy.fee_ppm), fee_up(sell_notional, sell.fee_ppm)
    profit = sell_notional - sell_fee - buy_notional - buy_fee
    if profit <= 0:
        return None
    profit_bps = profit * BPS // buy_notional
    # Notionals are bounded by NOTIONAL_MAX, the basis points by int64 (fees and profit, under the
    # sell notional once the pair pays, need no bound of their own).
    if max(buy_notional, sell_notional) > NOTIONAL_MAX or profit_bps > INT64_MAX:
        raise OverflowError(f"fixed-point overflow: {buy_notional}, {sell_notional}, {profit_bps} bps")
    if profit * PPM < sym.min_profit_ppm * buy_notional:
        return None
    kind = SPOT_FUTURES_HEDGE if buy.is_futures or sell.is_futures else SPOT_SPOT
    return Opportunity(
        sym.symbol_id, buy.leg_id, sell.leg_id, kind, size, buy_lots, sell_lots, buy_limit,
        sell_limit, buy_notional, sell_notional, buy_fee + sell_fee, profit, profit_bps,
    )


class SpreadScanner:
    """Same registration API and results as arb_core.scanner.SpreadScanner."""

    def __init__(self) -> None:
        self._symbols: dict[int, Symbol] = {}

    def add_symbol(self, symbol_id: int, max_position_common: int, min_profit_ppm: int = 0) -> None:
        self._symbols[symbol_id] = Symbol(symbol_id, max_position_common, min_profit_ppm)

    def set_symbol_limits(self, symbol_id: int, max_position_common: int, min_profit_ppm: int) -> None:
        sym = self._symbols[symbol_id]
        sym.max_position, sym.min_profit_ppm = max_position_common, min_profit_ppm

    def add_leg(
        self, symbol_id: int, book: Book, leg_id: int, is_futures: bool, taker_fee_ppm: int,
        price_mult: int, size_mult: int, min_notional_common: int,
    ) -> None:
        self._symbols[symbol_id].legs.append(
            Leg(book, leg_id, is_futures, taker_fee_ppm, price_mult, size_mult, min_notional_common)
        )

    def set_limits(self, symbol_id: int, leg_id: int, max_buy_common: int, max_sell_common: int) -> None:
        leg = next(leg for leg in self._symbols[symbol_id].legs if leg.leg_id == leg_id)
        leg.max_buy, leg.max_sell = max_buy_common, max_sell_common

    def set_leg_costs(self, symbol_id: int, leg_id: int, taker_fee_ppm: int, min_notional_common: int) -> None:
        leg = next(leg for leg in self._symbols[symbol_id].legs if leg.leg_id == leg_id)
        leg.fee_ppm, leg.min_notional = taker_fee_ppm, min_notional_common

    def scan_symbol(self, symbol_id: int, now_ns: int, max_age_ns: int) -> Opportunity | None:
        return self.scan_symbol_except(symbol_id, now_ns, max_age_ns, ())

    def scan_symbol_except(
        self, symbol_id: int, now_ns: int, max_age_ns: int, excluded: Iterable[tuple[int, int]],
        max_size: int = INT64_MAX,
    ) -> Opportunity | None:
        skipped = set(excluded)
        sym = self._symbols[symbol_id]
        sym.best = None  # a scan that raises leaves nothing standing from the one before
        fresh = [is_fresh(leg.book, now_ns, max_age_ns) for leg in sym.legs]
        best: Opportunity | None = None
        for i, buy in enumerate(sym.legs):
            for j, sell in enumerate(sym.legs):
                if (
                    i == j or not (fresh[i] and fresh[j]) or (buy.is_futures and sell.is_futures)
                    or (buy.leg_id, sell.leg_id) in skipped
                ):
                    continue
                found = price_pair(sym, buy, sell, max_size)
                if found is not None and (best is None or found.profit > best.profit):
                    best = found
        sym.best = best
        return best

    def scan_pair(
        self, symbol_id: int, buy_leg: int, sell_leg: int, now_ns: int, max_age_ns: int, max_size_common: int
    ) -> Opportunity | None:
        legs = [leg.leg_id for leg in self._symbols[symbol_id].legs]
        others = [(b, s) for b in legs for s in legs if b != s and (b, s) != (buy_leg, sell_leg)]
        return self.scan_symbol_except(symbol_id, now_ns, max_age_ns, others, max_size_common)

    def scan_all(self, now_ns: int, max_age_ns: int) -> list[Opportunity]:
        found = [self.scan_symbol(symbol_id, now_ns, max_age_ns) for symbol_id in self._symbols]
        return [opp for opp in found if opp is not None]

    def best(self, symbol_id: int) -> Opportunity | None:
        return self._symbols[symbol_id].best
