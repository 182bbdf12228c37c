"""Market data -> scanner: the ``BookSink`` that maps every venue book onto ``SpreadScanner`` legs.

Scales. Each symbol gets one common fixed-point grid: ``10**-price_decimals`` quote per
price unit and ``10**-size_decimals`` base per size unit, the finest of its legs' book
and order steps, so every book level and every order step is a whole number of common
units. A leg's ``price_mult`` is common price units per book tick, its ``size_mult``
common size units per book lot (a futures lot includes the contract size).

Opportunities. The scanner prices on the books; the venues accept only their order grid.
A found ``arb_core`` opportunity becomes an ``ArbitrageOpportunity`` with the buy limit
rounded UP and the sell limit rounded DOWN to the order ticks, the quantity rounded down
to both order lots, and the profit recomputed on those numbers: a conversion never
promises a better price than the book allowed. One that no longer pays at the depth walked
(the order tick, or the funding a hedge pays, took its deepest level's edge) is walked back a
level at a time (``SpreadScanner.scan_pair`` under a size cap) until it pays or no level is left,
so a deeper level never sinks what the better ones carry. The scanner hands over only its best
pair: when that one is dropped (here or for its funding), the symbol is scanned again without
it, so the next-best pair of the same books is not hidden.
``max_quantity`` is in base units (the executor converts to contracts on futures);
``buy_fee``/``sell_fee`` are the taker fee rates.

Funding. A SPOT_FUTURES_HEDGE also earns or pays the perpetual's funding while it is held.
With a ``funding`` book set, the conversion adds the funding the hedge expects over the
book's holding horizon (``arb.funding``) to the profit before the margin check, and
records it as ``expected_funding``; with no fresh rate the hedge is dropped. This is the
one place: the risk manager reads the margin computed here, and the compiled scanner
stays funding-blind (it prices fees only), so positive funding never makes the scanner
report more, it only changes which of its hedges pass the margin floor.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from math import gcd
from typing import Protocol

from arb_core.book import ASK, BID, NOTIONAL_MAX, OrderBook
from arb_core.freshness import is_fresh, monotonic_ns
from arb_core.scanner import Opportunity, OpportunityKind, SpreadScanner
from arb_core.wire.common import WireScale

from .funding import FundingBook
from .instruments import INT64_MAX, Instrument, InstrumentError, decimals_of, trading_rules_changed
from .throttled_log import ThrottledWarnings
from .types import ArbitrageOpportunity, ExchangeName, OpportunityType, OrderSide, amount_text
from .exchanges.base import BookKey

log = logging.getLogger(__name__)
_GRID_CAP_SHOWN = Decimal("0.000001")  # quote shown in the grid-bound warning

PPM = 1_000_000
BPS = Decimal(10_000)
ZERO = Decimal(0)
# Headroom of the notional cap over the best ask: the scanner walks deeper levels.
_WALK_HEADROOM = Decimal("1.125")
BPS_STEP = Decimal("0.01")  # the resolution of ``profit_margin_bps``


def _units(value: Decimal, decimals: int) -> int:
    """``value * 10**decimals`` as an int; raises ValueError when it is not whole."""
    scaled = value.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value} is not a whole number of 10**-{decimals} units")
    return int(scaled)


def book_tick(scale: WireScale) -> Decimal:
    """The price of one book tick."""
    return Decimal(scale.tick_units).scaleb(-scale.price_decimals)


def book_lot(scale: WireScale) -> Decimal:
    """The size of one book lot, in the instrument's order unit (contracts on futures)."""
    return Decimal(scale.lot_units).scaleb(-scale.size_decimals)


class Leg:
    """One market of a symbol as the scanner sees it: its book, scale and trading rules."""

    __slots__ = (
        "leg_id", "exchange", "instrument", "is_futures", "book", "scale", "price_mult", "size_mult", "fee_ppm",
        "min_notional_common", "order_lot_common",
    )

    def __init__(
        self, leg_id: int, instrument: Instrument, book: OrderBook, scale: WireScale, price_decimals: int,
        size_decimals: int,
    ) -> None:
        self.leg_id = leg_id
        self.exchange = instrument.exchange
        self.is_futures = instrument.is_futures
        self.book = book
        self.scale = scale
        self.price_mult = _units(book_tick(scale), price_decimals)
        self.size_mult = _units(book_lot(scale) * instrument.contract_size, size_decimals)
        self.order_lot_common = _units(instrument.base_lot, size_decimals)
        self.set_terms(instrument, price_decimals, size_decimals)

    def set_terms(self, instrument: Instrument, price_decimals: int, size_decimals: int) -> None:
        """Take ``instrument`` (this market, same grid) with its fee rate and minimums, rounded against us."""
        self.instrument = instrument
        self.fee_ppm = int((instrument.taker_fee * PPM).to_integral_value(ROUND_CEILING))
        minimum = instrument.min_notional.scaleb(price_decimals + size_decimals).to_integral_value(ROUND_CEILING)
        self.min_notional_common = min(int(minimum), NOTIONAL_MAX)

    def book_price(self, ticks: int) -> Decimal:
        """The exact price of ``ticks`` book ticks."""
        return Decimal(ticks * self.scale.tick_units).scaleb(-self.scale.price_decimals)


class SymbolPlan:
    """The scanner registration of one symbol: common grid and legs.

    With only SPOT_FUTURES_HEDGE enabled, a symbol is registered once per spot market
    (that spot leg with every futures leg), so the scanner never pairs two spot legs.
    """

    __slots__ = ("symbol_id", "symbol", "price_decimals", "size_decimals", "legs")

    def __init__(self, symbol_id: int, symbol: str, legs: Sequence[tuple[Instrument, OrderBook, WireScale]]) -> None:
        if len(legs) < 2:
            raise ValueError(f"symbol {symbol}: needs at least two markets to scan, got {len(legs)}")
        self.symbol_id = symbol_id
        self.symbol = symbol
        self.price_decimals = max(
            max(decimals_of(book_tick(scale)), decimals_of(i.tick_size)) for i, _, scale in legs
        )
        self.size_decimals = max(
            max(decimals_of(book_lot(scale) * i.contract_size), decimals_of(i.base_lot))
            for i, _, scale in legs
        )
        self.legs = [
            Leg(index, instrument, book, scale, self.price_decimals, self.size_decimals)
            for index, (instrument, book, scale) in enumerate(legs)
        ]

    def size_of(self, common: int) -> Decimal:
        """Base quantity of ``common`` size units."""
        return Decimal(common).scaleb(-self.size_decimals)

    def common_size(self, base_quantity: Decimal) -> int:
        """``base_quantity`` in common size units, rounded down."""
        return int(base_quantity.scaleb(self.size_decimals).to_integral_value(ROUND_FLOOR))

    def common_price(self, price: Decimal) -> int:
        """``price`` in common price units, rounded up."""
        return int(price.scaleb(self.price_decimals).to_integral_value(ROUND_CEILING))

    def highest_ask(self) -> Decimal | None:
        """The highest of the legs' best asks; None when no leg has an ask yet."""
        asks = [leg.book_price(leg.book.best_ask_price()) for leg in self.legs if leg.book.ask_count]
        return max(asks) if asks else None

    def notional_cap(self, highest_ask: Decimal) -> int:
        """Largest size (common units) the scanner can trade at ``highest_ask`` (``highest_ask()``):
        an int64 whose notional stays within ``NOTIONAL_MAX`` (the compiled walk's 128-bit bound)."""
        price = self.common_price(highest_ask * _WALK_HEADROOM)
        return min(NOTIONAL_MAX // max(price, 1), INT64_MAX)


OpportunityHandler = Callable[[ArbitrageOpportunity, SymbolPlan], None]


class _Dropped(enum.Enum):
    """Why ``_convert`` did not take a scanner hit."""

    SIZE = enum.auto()  # under a venue's minimum size or order value: less depth cannot help
    FUNDING = enum.auto()  # a hedge without a fresh funding rate, at any depth
    # At the depth walked; a shallower walk of the pair may not be:
    CLOSES_AT_ONCE = enum.auto()  # a hedge paying funding that the closing rule would close at once
    UNPAID = enum.auto()  # under the margin floor


_AT_ANY_DEPTH = frozenset({_Dropped.SIZE, _Dropped.FUNDING})


class ChargedRates(Protocol):
    """The fee rates the venues charged the engine's orders (``arb.hedges.HedgeBook``)."""

    def charged_rate(self, market: ExchangeName, symbol: str) -> Decimal | None:
        """The fee rate ``market`` last charged an order on ``symbol`` (None before any)."""


class ScannerPipeline:
    """``BookSink`` over a ``SpreadScanner``: registers legs, scans on updates, converts what it finds.

    Book updates mark their symbols; the scan runs once per socket read (``on_batch_end``)
    or on ``scan_pending``. Found opportunities go to ``on_opportunity`` after conversion.
    """

    def __init__(
        self,
        *,
        max_data_age_ms: int,
        opportunity_types: Iterable[OpportunityType] = (OpportunityType.SPOT_SPOT,),
        min_profit_bps: Decimal = ZERO,
        max_position_usd: Decimal | None = None,
        on_opportunity: OpportunityHandler | None = None,
        id_prefix: str = "",
        clock: Callable[[], int] = monotonic_ns,
        scanner: SpreadScanner | None = None,
    ) -> None:
        if max_data_age_ms < 1:
            raise ValueError(f"max_data_age_ms={max_data_age_ms}: must be at least 1")
        self.max_age_ns = max_data_age_ms * 1_000_000
        self.types = frozenset(opportunity_types)
        if not self.types:
            raise ValueError("opportunity_types: at least one type must be enabled")
        self.min_profit_bps = min_profit_bps
        # The scanner's floor, in millionths of the price (hundredths of a bp), rounded up.
        self._floor_ppm = int((min_profit_bps * PPM / BPS).to_integral_value(ROUND_CEILING))
        self.max_position_usd = max_position_usd
        self.on_opportunity = on_opportunity
        self.id_prefix = id_prefix
        self.clock = clock
        self.scanner = scanner if scanner is not None else SpreadScanner()
        self.plans: dict[int, SymbolPlan] = {}
        self._by_key: dict[BookKey, list[int]] = {}
        self.marked: set[int] = set()  # symbol ids to scan at the next batch end
        self._counter = 0
        self.scans = 0
        self.found = 0  # scanner hits
        self.dropped_after_rounding = 0
        self.dropped_for_funding = 0  # hedges without a fresh funding rate
        self.dropped_paying_funding = 0  # hedges whose funding paid would have them closed at once
        self.funding: FundingBook | None = None
        self.charged_rates: ChargedRates | None = None  # what ``closes_at_once`` prices entry fees by
        self.overflows = 0
        # A symbol's books that overflow the fixed point do so on every scan (each book update).
        self._overflow_warnings = ThrottledWarnings(log, "scans overflowed")
        self.desyncs = 0
        self.on_desync: Callable[[BookKey, str], None] | None = None
        self.on_sync: Callable[[BookKey], None] | None = None  # a registered book came (back) in sync
        self._standing: dict[int, ArbitrageOpportunity] = {}
        self._buy_quote: dict[tuple[int, int], Decimal] = {}  # (symbol id, leg id) -> quote a buy may spend
        self._last_found: Opportunity | None = None  # the last hit that converted, for ``rehearse``
        self.halted: dict[BookKey, str] = {}  # markets of a symbol not traded, and why (``halt_market``)
        self._grid_capped: set[int] = set()  # symbol ids warned about for their grid's notional bound

    # --- registration -----------------------------------------------------------------

    def register_symbol(self, symbol: str, legs: Sequence[tuple[Instrument, OrderBook, WireScale]]) -> list[SymbolPlan]:
        """Register ``symbol``'s markets (instrument, live book, book scale); returns the scanner symbols made."""
        spot = [leg for leg in legs if not leg[0].is_futures]
        futures = [leg for leg in legs if leg[0].is_futures]
        groups: list[list[tuple[Instrument, OrderBook, WireScale]]] = []
        if OpportunityType.SPOT_FUTURES_HEDGE in self.types:
            if OpportunityType.SPOT_SPOT in self.types:
                groups.append([*spot, *futures])
            else:
                groups.extend([leg, *futures] for leg in spot)
        else:
            groups.append(spot)
        plans = []
        for group in groups:
            if len(group) < 2 or all(i.is_futures for i, _, _ in group):
                continue
            symbol_id = len(self.plans)
            try:
                plan = SymbolPlan(symbol_id, symbol, group)
                self.scanner.add_symbol(symbol_id, 0, self._floor_ppm)
                for leg in plan.legs:
                    self.scanner.add_leg(
                        symbol_id, leg.book, leg.leg_id, leg.is_futures, leg.fee_ppm, leg.price_mult,
                        leg.size_mult, leg.min_notional_common,
                    )
            except (ValueError, OverflowError) as exc:
                # Grids too far apart for one fixed point (a tick or lot ratio past the scanner's range).
                grids = "; ".join(
                    f"{i.exchange.value} tick {i.tick_size} lot {i.lot_size} (book {book_tick(w)} / {book_lot(w)})"
                    for i, _, w in group
                )
                raise InstrumentError(f"symbol {symbol}: its markets cannot be scanned together ({grids}): {exc}") from exc
            for leg in plan.legs:
                self._by_key.setdefault(BookKey(leg.exchange, leg.instrument.symbol), []).append(symbol_id)
            self.plans[symbol_id] = plan
            plans.append(plan)
        if not plans:
            raise ValueError(
                f"symbol {symbol}: no pair of markets for {', '.join(sorted(t.value for t in self.types))}"
            )
        self.refresh_position_caps()
        return plans

    def mark_prices(self) -> dict[str, Decimal]:
        """Each symbol's price to value positions at: the highest best ask among its legs whose books
        are in sync (the costlier side, as the limits value an entry)."""
        prices: dict[str, Decimal] = {}
        for plan in self.plans.values():
            asks = [leg.book_price(leg.book.best_ask_price()) for leg in plan.legs if leg.book.in_sync and leg.book.ask_count]
            if asks:
                price = max(asks)
                prices[plan.symbol] = max(price, prices.get(plan.symbol, price))
        return prices

    def refresh_position_caps(self) -> None:
        """Re-derive each symbol's size cap from ``max_position_usd`` and the scanner's fixed point (``notional_cap``)."""
        for plan in self.plans.values():
            price = plan.highest_ask()
            if price is None:
                cap = 0
            else:
                cap = plan.notional_cap(price)
                self._note_grid_cap(plan, plan.size_of(cap) * price)
                if self.max_position_usd is not None:
                    cap = min(cap, plan.common_size(self.max_position_usd / price))
            self.scanner.set_symbol_limits(plan.symbol_id, cap, self._floor_ppm)

    def _note_grid_cap(self, plan: SymbolPlan, notional: Decimal) -> None:
        """Warn, once a symbol, when the scanner's fixed point on its common grid (``notional_cap``)
        holds a trade under ``max_position_usd`` or under a leg's minimum order value (coins priced
        far under a cent, on a book grid of many size decimals)."""
        if plan.symbol_id in self._grid_capped:
            return
        minimum = max(leg.instrument.min_notional for leg in plan.legs)
        if notional < minimum:
            why = f"under its markets' minimum order value {minimum}: it cannot trade"
        elif self.max_position_usd is not None and notional < self.max_position_usd:
            why = f"under max_position_size_usd {self.max_position_usd}"
        else:
            return
        self._grid_capped.add(plan.symbol_id)
        shown = amount_text(notional.quantize(_GRID_CAP_SHOWN, ROUND_FLOOR))
        log.warning(
            "%s: the scanner's fixed point (10^-%d quote x 10^-%d base: an int64 size, a notional to 2**112 units) "
            "holds a trade to %s quote at this price, %s",
            plan.symbol, plan.price_decimals, plan.size_decimals, shown, why,
        )

    def set_leg_limits(
        self, symbol_id: int, leg_id: int, max_buy_base: Decimal, max_sell_base: Decimal,
        *, max_buy_quote: Decimal | None = None,
    ) -> None:
        """How much base a leg can buy (from its quote balance) and sell (its inventory or margin).

        ``max_buy_quote``: the quote a buy on the leg may spend, taker fee included. The base
        cap is set from the best ask, and a buy that walks deeper pays more per unit: its
        quantity is cut down to what this quote pays for at the buy limit.
        """
        plan = self.plans[symbol_id]
        if max_buy_quote is None:
            self._buy_quote.pop((symbol_id, leg_id), None)
        else:
            self._buy_quote[(symbol_id, leg_id)] = max_buy_quote
        leg = plan.legs[leg_id]
        if self.halted and BookKey(leg.exchange, leg.instrument.symbol) in self.halted:
            self.scanner.set_limits(symbol_id, leg_id, 0, 0)
            return
        self.scanner.set_limits(
            symbol_id,
            leg_id,
            min(max(plan.common_size(max_buy_base), 0), INT64_MAX),
            min(max(plan.common_size(max_sell_base), 0), INT64_MAX),
        )

    def halt_market(self, exchange: ExchangeName, symbol: str, reason: str) -> bool:
        """Stop scanning ``exchange``'s market ``symbol`` (its own symbol: BTC/USDT:USDT on futures):
        its legs' limits stay at zero until ``resume_market`` and new limits are set. False when
        it was halted already (the first reason is kept)."""
        key = BookKey(exchange, symbol)
        if key in self.halted:
            return False
        self.halted[key] = reason
        for plan, leg in self.legs_of(exchange):
            if leg.instrument.symbol == symbol:
                self.scanner.set_limits(plan.symbol_id, leg.leg_id, 0, 0)
        return True

    def update_terms(self, instrument: Instrument) -> bool:
        """Trade ``instrument``'s market by its fee rate and minimums from now on (the venue changed
        them): its legs take them, and their symbols are scanned again at the next scan. An
        opportunity found with the old terms no longer stands. False when the market is not scanned.

        The grid must be the one the legs were registered with: a new tick, lot or contract size
        needs new scanner registrations (ValueError).
        """
        legs = [(plan, leg) for plan, leg in self.legs_of(instrument.exchange) if leg.instrument.symbol == instrument.symbol]
        for _, leg in legs:
            changed = trading_rules_changed(leg.instrument, instrument)
            if changed is not None:
                raise ValueError(f"{instrument.exchange.value} {instrument.symbol}: {changed}")
        for plan, leg in legs:
            leg.set_terms(instrument, plan.price_decimals, plan.size_decimals)
            self.scanner.set_leg_costs(plan.symbol_id, leg.leg_id, leg.fee_ppm, leg.min_notional_common)
            self._withdraw(plan.symbol_id)
        return bool(legs)

    def _withdraw(self, symbol_id: int) -> None:
        """What ``symbol_id``'s scans found no longer stands (``stands``); it is scanned again at the next scan."""
        self._standing.pop(symbol_id, None)
        self.marked.add(symbol_id)

    def resume_market(self, exchange: ExchangeName, symbol: str) -> bool:
        """Scan a halted market again once its limits are set again (``set_leg_limits``); False when it was not halted."""
        return self.halted.pop(BookKey(exchange, symbol), None) is not None

    # --- BookSink ---------------------------------------------------------------------

    def on_book_update(self, key: BookKey) -> None:
        """Mark the symbols this book belongs to for the next scan."""
        ids = self._by_key.get(key)
        if ids is not None:
            self.marked.update(ids)

    def on_batch_end(self) -> None:
        """Scan every symbol updated during this socket read."""
        self.scan_pending()

    def on_book_state(self, key: BookKey, in_sync: bool, reason: str) -> None:
        """A book went out of sync (the scanner skips it by itself) or came back."""
        if not in_sync:
            self.desyncs += 1
            # What its symbols' scans found was priced on this book: withdrawn (a queued opportunity
            # no longer stands), and scanned again without it.
            for symbol_id in self._by_key.get(key, ()):
                self._withdraw(symbol_id)
            if self.on_desync is not None:
                self.on_desync(key, reason)
        elif key in self._by_key:
            # Caps derive from the best asks: a book that was empty (at start-up) left them at zero.
            self.refresh_position_caps()
            if self.on_sync is not None:
                self.on_sync(key)
            self.marked.update(self._by_key[key])

    # --- scanning ---------------------------------------------------------------------

    def scan_pending(self) -> None:
        """Scan the symbols marked since the last scan."""
        if not self.marked:
            return
        dirty, self.marked = self.marked, set()
        for symbol_id in sorted(dirty):
            self.scan(symbol_id)

    def scan(self, symbol_id: int) -> ArbitrageOpportunity | None:
        """Scan one symbol now; the converted opportunity (also handed to ``on_opportunity``) or None."""
        now = self.clock()
        self.scans += 1
        try:
            found = self.scanner.scan_symbol(symbol_id, now, self.max_age_ns)
        except OverflowError as exc:
            # A price jump since the caps were set; the caps follow the book on the next refresh.
            # What the previous scan found is not confirmed by this one: it no longer stands.
            self.overflows += 1
            self._standing.pop(symbol_id, None)
            self._overflow_warnings.warn(symbol_id, now, "scanner: symbol %s: %s", self.plans[symbol_id].symbol, exc)
            return None
        return self.handle_scan(symbol_id, found, now)

    def handle_scan(self, symbol_id: int, found: Opportunity | None, now: int) -> ArbitrageOpportunity | None:
        """What ``scan`` does with the scanner's answer for ``symbol_id`` at ``now`` (a compiled
        replay scans in C and hands over what it found here; the scan itself it counts with
        ``count_scans``)."""
        dropped: list[tuple[int, int]] = []
        while found is not None:
            self.found += 1
            taken = self._convert_walking_back(found, now)
            if not isinstance(taken, _Dropped):
                self._last_found, opportunity = taken
                self._standing[symbol_id] = opportunity
                if self.on_opportunity is not None:
                    self.on_opportunity(opportunity, self.plans[symbol_id])
                return opportunity
            self.dropped_after_rounding += 1
            if taken is _Dropped.FUNDING:
                self.dropped_for_funding += 1
            elif taken is _Dropped.CLOSES_AT_ONCE:
                self.dropped_paying_funding += 1
            # The scanner hands over only its best pair; another pair of the same books (a spot
            # pair beside a hedge refused for its funding) may still pay. Scanning a subset of the
            # pairs already scanned at ``now`` cannot overflow where the full scan did not.
            dropped.append((found.buy_leg, found.sell_leg))
            found = self.scanner.scan_symbol_except(symbol_id, now, self.max_age_ns, dropped)
        self._standing.pop(symbol_id, None)
        return None

    def count_scans(self, n: int) -> None:
        """Count ``n`` scans made outside ``scan`` (a compiled replay's scans)."""
        self.scans += n

    def _convert_walking_back(
        self, found: Opportunity, detected_ns: int
    ) -> tuple[Opportunity, ArbitrageOpportunity] | _Dropped:
        """``found`` converted or, where it does not pay at the depth walked, the deepest shallower walk
        of its pair that does: with the scanner's answer it was converted from. Else why the last
        walk tried was dropped.

        The scanner walks as deep as the floor allows on the books' prices, so its deepest level clears
        it by little; the order tick, or the funding a hedge pays (neither of which the scanner sees),
        can take that and more. Each step back leaves the deepest ask or the deepest bid walked.
        """
        walked = found
        while True:
            converted = self._convert(walked, detected_ns, rehearsal=False)
            if not isinstance(converted, _Dropped):
                return walked, converted
            shallower = None if converted in _AT_ANY_DEPTH else self._shallower(walked, detected_ns)
            if shallower is None:
                return converted
            walked = shallower

    def _shallower(self, found: Opportunity, now: int) -> Opportunity | None:
        """The scanner's walk of ``found``'s pair stopped short of its deepest ask or its deepest bid
        (whichever leaves more); None when both are the best levels, or the scanner finds the
        shorter walk not worth trading."""
        plan = self.plans[found.symbol_id]
        buy, sell = plan.legs[found.buy_leg], plan.legs[found.sell_leg]
        asks_before = buy.book.size_up_to(ASK, found.buy_limit_ticks - 1) if found.buy_limit_ticks > 1 else 0
        bids_before = sell.book.size_up_to(BID, found.sell_limit_ticks + 1) if found.sell_limit_ticks < INT64_MAX else 0
        # Levels the walk took whole: less than it took, in common units.
        size = max(asks_before * buy.size_mult, bids_before * sell.size_mult)
        if size == 0:
            return None
        return self.scanner.scan_pair(found.symbol_id, found.buy_leg, found.sell_leg, now, self.max_age_ns, size)

    def rehearse(self, detected_ns: int) -> ArbitrageOpportunity | None:
        """Convert the last hit that converted again, as its scan did, and drop the result: no
        opportunity id is used up and nothing is counted. None when there is none (or it no
        longer pays); the result's id is a placeholder.

        Between executions this keeps the conversion's code and data in the CPU's caches
        (``engine.rehearsal_interval_ms``, with ``TwoLegExecutor.rehearse``).
        """
        found = self._last_found
        if found is None or found.symbol_id not in self.plans:
            return None
        try:
            converted = self._convert(found, detected_ns, rehearsal=True)
        except Exception as exc:  # a rehearsal never fails the engine; it is only not repeated
            log.debug("scanner: the last opportunity found was not rehearsed: %s", exc)
            self._last_found = None
            return None
        return None if isinstance(converted, _Dropped) else converted

    def _convert(self, found: Opportunity, detected_ns: int, rehearsal: bool) -> ArbitrageOpportunity | _Dropped:
        plan = self.plans[found.symbol_id]
        buy, sell = plan.legs[found.buy_leg], plan.legs[found.sell_leg]
        bi, si = buy.instrument, sell.instrument
        buy_price = _to_step(buy.book_price(found.buy_limit_ticks), bi.tick_size, ROUND_CEILING)
        sell_price = _to_step(sell.book_price(found.sell_limit_ticks), si.tick_size, ROUND_FLOOR)
        step = _lcm(buy.order_lot_common, sell.order_lot_common)
        common = found.size_common - found.size_common % step
        quantity = plan.size_of(common)
        top = max(buy_price, sell_price)
        if self.max_position_usd is not None and quantity * top > self.max_position_usd:
            # The scanner's size cap follows the best asks at its last refresh; the limits found
            # can be higher. Less quantity walks no deeper, so they stay valid for it.
            capped = plan.common_size(self.max_position_usd / top)
            common = capped - capped % step
            quantity = plan.size_of(common)
        cost = quantity * buy_price
        budget = self._buy_quote.get((found.symbol_id, found.buy_leg))
        if budget is not None and cost * (1 + bi.taker_fee) > budget:  # walked past the best ask
            affordable = plan.common_size(budget / (buy_price * (1 + bi.taker_fee)))
            common = affordable - affordable % step
            quantity = plan.size_of(common)
            cost = quantity * buy_price
        proceeds = quantity * sell_price
        if (
            common <= 0
            or quantity < bi.min_size * bi.contract_size
            or quantity < si.min_size * si.contract_size
            or cost < bi.min_notional
            or proceeds < si.min_notional
        ):
            return _Dropped.SIZE
        profit = proceeds - cost - cost * bi.taker_fee - proceeds * si.taker_fee
        kind = (
            OpportunityType.SPOT_FUTURES_HEDGE
            if found.kind == OpportunityKind.SPOT_FUTURES_HEDGE
            else OpportunityType.SPOT_SPOT
        )
        funding = ZERO
        if kind is OpportunityType.SPOT_FUTURES_HEDGE and self.funding is not None:
            expected = self.hedge_funding(
                self.funding, buy, sell, quantity, buy_price, sell_price, counted=not rehearsal
            )
            if expected is None:
                return _Dropped.FUNDING
            if expected < 0 and self.closes_at_once(self.funding, buy, sell, quantity):
                return _Dropped.CLOSES_AT_ONCE
            funding = expected
            profit += funding
        if profit <= 0:
            return _Dropped.UNPAID
        margin = profit * BPS / cost
        if margin < self.min_profit_bps:
            return _Dropped.UNPAID
        if rehearsal:
            opportunity_id = f"{self.id_prefix}rehearsal"
        else:
            self._counter += 1
            # "_" ends the count: run together, count 1 of 1000SATS and count 11000 of SATS were one id.
            opportunity_id = f"{self.id_prefix}{self._counter}_{bi.base.lower()}"
        return ArbitrageOpportunity(
            opportunity_id=opportunity_id,
            opportunity_type=kind,
            symbol=plan.symbol,
            buy_exchange=buy.exchange,
            sell_exchange=sell.exchange,
            buy_price=buy_price,
            sell_price=sell_price,
            max_quantity=quantity,
            profit_per_unit=profit / quantity,
            total_profit_estimate=profit,
            profit_margin_bps=stated_margin(margin, self.min_profit_bps),
            detected_at=detected_ns,
            buy_fee=bi.taker_fee,
            sell_fee=si.taker_fee,
            expected_funding=funding,
        )

    @staticmethod
    def hedge_funding(
        funding: FundingBook, buy: Leg, sell: Leg, quantity: Decimal, buy_price: Decimal, sell_price: Decimal,
        *, counted: bool = True,
    ) -> Decimal | None:
        """Funding a hedge buying ``quantity`` on ``buy`` and selling it on ``sell`` at these prices
        expects over the horizon (> 0 received), from its futures leg; None without a fresh rate
        (counted and warned about by the book unless not ``counted``)."""
        bi, si = buy.instrument, sell.instrument
        futures, side, price = (bi, OrderSide.BUY, buy_price) if bi.is_futures else (si, OrderSide.SELL, sell_price)
        return funding.expected(futures.exchange, futures.symbol, side, quantity * price, counted=counted)

    def closes_at_once(self, funding: FundingBook, buy: Leg, sell: Leg, quantity: Decimal) -> bool:
        """Whether the hedges' closing rule (``HedgeBook.close_opportunity``), which credits a close
        with the funding holding would pay, would close a hedge buying ``quantity`` on ``buy`` and
        selling it on ``sell`` at once on the same books, at their best prices: it would lose its four
        fees and the spreads, and the next scan would open it again.

        The opening is priced as the rule will see the position: at the average prices its fills
        walk the books to (better than the limits of an opening that takes more than one level),
        their fees at the rates they will be charged (``entry_rate``) and the funding of the
        futures average, with the floor on the spot average's notional. One whose walk cannot be
        priced is refused."""
        exit_sell, exit_buy = buy.book, sell.book
        if not (exit_sell.bid_count and exit_buy.ask_count):
            return False
        bought, sold = walk_average(buy, ASK, quantity), walk_average(sell, BID, quantity)
        if bought is None or sold is None:
            return True
        sold_back = buy.book_price(exit_sell.best_bid_price())
        bought_back = sell.book_price(exit_buy.best_ask_price())
        long_spot = sell.is_futures
        spot, futures = (buy.instrument, sell.instrument) if long_spot else (sell.instrument, buy.instrument)
        entry_spot, entry_futures = (bought, sold) if long_spot else (sold, bought)
        exit_spot, exit_futures = (sold_back, bought_back) if long_spot else (bought_back, sold_back)
        entry_fees = entry_spot * self.entry_rate(spot) + entry_futures * self.entry_rate(futures)
        held = funding.held(
            futures.exchange, futures.symbol, OrderSide.SELL if long_spot else OrderSide.BUY, entry_futures
        )
        profit = hedge_round_trip(
            long_spot, spot, futures, entry_spot, entry_futures, entry_fees, exit_spot, exit_futures, held
        )
        return profit >= self.min_profit_bps * entry_spot / BPS

    def entry_rate(self, instrument: Instrument) -> Decimal:
        """The fee rate ``closes_at_once`` prices an opening's fill on ``instrument`` at: its taker rate,
        or the rate its market last charged (``charged_rates``) where lower. The closing rule counts
        the fees the fills were charged, and a venue may charge an order less than the tier (a
        promotion, a contract's own rate); the lower rate errs toward refusing the opening."""
        charged = None if self.charged_rates is None else self.charged_rates.charged_rate(
            instrument.exchange, instrument.symbol
        )
        return instrument.taker_fee if charged is None else min(instrument.taker_fee, charged)

    def markets(self) -> list[BookKey]:
        """Every market scanned, once each, however many symbols it is a leg of."""
        return list(self._by_key)

    def taker_fees(self) -> dict[BookKey, Decimal]:
        """The taker fee rate each scanned market is priced with."""
        return {BookKey(leg.exchange, leg.instrument.symbol): leg.instrument.taker_fee
                for plan in self.plans.values() for leg in plan.legs}

    def legs_of(self, exchange: ExchangeName) -> list[tuple[SymbolPlan, Leg]]:
        """Every registered leg on ``exchange``, with its symbol."""
        return [(plan, leg) for plan in self.plans.values() for leg in plan.legs if leg.exchange is exchange]

    def legs_for(self, symbol: str, buy: ExchangeName, sell: ExchangeName) -> tuple[int, Leg, Leg] | None:
        """``(symbol id, buy leg, sell leg)`` of the scanner symbol ``symbol`` pairing ``buy`` with
        ``sell`` (None: the scanner does not pair them for it)."""
        for plan in self.plans.values():
            if plan.symbol == symbol:
                legs = {leg.exchange: leg for leg in plan.legs}
                if buy in legs and sell in legs:
                    return plan.symbol_id, legs[buy], legs[sell]
        return None

    def book_of(self, exchange: ExchangeName, symbol: str) -> OrderBook | None:
        """The book the scanner reads for ``symbol`` on ``exchange`` (None: not scanned)."""
        for plan, leg in self.legs_of(exchange):
            if plan.symbol == symbol:
                return leg.book
        return None

    def symbol_plans(self) -> Mapping[int, SymbolPlan]:
        """Registered scanner symbols by id."""
        return self.plans

    def stands(self, symbol_id: int, opportunity: ArbitrageOpportunity) -> bool:
        """Whether ``opportunity`` is what ``symbol_id``'s latest scan found (not replaced or withdrawn since)."""
        return self._standing.get(symbol_id) is opportunity

    def books_fresh(self, symbol_id: int, opportunity: ArbitrageOpportunity, now_ns: int) -> bool:
        """Whether both books ``opportunity`` was priced on are still within the data age limit at
        ``now_ns`` (the scan checked them when it found it; a queued one may outlive that)."""
        markets = (opportunity.buy_exchange, opportunity.sell_exchange)
        max_age_ns = self.max_age_ns
        legs = self.plans[symbol_id].legs
        return all(is_fresh(leg.book, now_ns, max_age_ns) for leg in legs if leg.exchange in markets)

    def standing_opportunities(self) -> list[ArbitrageOpportunity]:
        """The opportunity each symbol's latest scan found (symbols whose latest scan found none are left out)."""
        return list(self._standing.values())


def walk_price(leg: Leg, side: int, base: Decimal) -> Decimal | None:
    """Worst price of taking ``base`` from ``leg``'s book (ASK: buying, BID: selling); None when too thin."""
    walked = _walk(leg, side, base)
    return None if walked is None else leg.book_price(walked[2])


def walk_average(leg: Leg, side: int, base: Decimal) -> Decimal | None:
    """Average price of taking ``base`` from ``leg``'s book, as its fills would be (ASK: buying, BID:
    selling); None when too thin."""
    walked = _walk(leg, side, base)
    if walked is None:
        return None
    lots, notional, _ = walked
    return leg.book_price(notional) / lots


def _walk(leg: Leg, side: int, base: Decimal) -> tuple[int, int, int] | None:
    """(lots, notional in ticks x lots, worst price in ticks) of taking ``base`` from ``leg``'s book;
    None when too thin."""
    lot = book_lot(leg.scale) * leg.instrument.contract_size
    lots = int((base / lot).to_integral_value(ROUND_CEILING))
    try:
        filled, notional, worst, _ = leg.book.walk(side, lots)
    except OverflowError as exc:  # a notional past the book's fixed point (NOTIONAL_MAX): not priced
        log.warning("%s %s: cannot walk %s base: %s", leg.exchange.value, leg.instrument.symbol, base, exc)
        return None
    if filled < lots or worst <= 0:
        return None
    return lots, notional, worst


def hedge_round_trip(
    long_spot: bool, spot: Instrument, futures: Instrument, entry_spot: Decimal, entry_futures: Decimal,
    entry_fees: Decimal, exit_spot: Decimal, exit_futures: Decimal, held_funding: Decimal,
) -> Decimal:
    """What a spot/futures hedge (long spot or short spot) earns per base unit over its round trip:
    opened at the average prices ``entry_spot`` and ``entry_futures`` having paid ``entry_fees``,
    closed at ``exit_spot`` and ``exit_futures`` paying ``spot``'s and ``futures``' taker fees, less
    ``held_funding``, the funding holding it expects (> 0 received), which a close forgoes; all in
    quote per base unit. The hedges' closing rule (``HedgeBook.close_opportunity``) closes by it, and
    ``ScannerPipeline.closes_at_once`` prices an opening with it, so the two cannot disagree."""
    entry_basis, exit_basis = entry_futures - entry_spot, exit_futures - exit_spot
    gain = entry_basis - exit_basis if long_spot else exit_basis - entry_basis
    fees = entry_fees + exit_spot * spot.taker_fee + exit_futures * futures.taker_fee
    return gain - fees - held_funding


def stated_margin(margin: Decimal, floor_bps: Decimal) -> Decimal:
    """``margin`` (bps), which clears ``floor_bps``, as an opportunity states it: rounded down to
    ``BPS_STEP``, or the floor where that falls under it (the risk manager holds the stated margin
    to the exact floor, and one finer than the step would refuse it for the rounding alone); never
    over the margin nor under the floor."""
    return max(margin.quantize(BPS_STEP, ROUND_FLOOR), floor_bps)


def _to_step(price: Decimal, step: Decimal, rounding: str) -> Decimal:
    return (price / step).to_integral_value(rounding) * step


def _lcm(a: int, b: int) -> int:
    return a // gcd(a, b) * b
