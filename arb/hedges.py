"""Open spot/futures hedges and when to close them.

A ``spot_futures_hedge`` execution buys one market and sells the other of the same pair
(spot and perpetual), locking in the basis ``futures price - spot price`` it traded at.
``HedgeBook`` keeps the matched quantity of every such pair as a ``HedgePosition``
(positive base: long spot and short futures), with the average entry prices and the basis
locked in, summed from the fills' exact notionals (a partial close releases its share,
rounded to ``QUOTE_QUANTUM``; the last close releases the rest).

Closing rule. A position is closed by the opposite pair (sell spot and buy futures for a
long-spot position) once the basis it can be closed at, walked through the live books for
the whole open quantity, has reverted far enough that the round trip still earns at least
``min_profit_bps`` of the spot entry notional after all four taker fees (the two entry fees as
the openings paid them, in quote, a partial close releasing its share as for the basis; the
two exit fees at each instrument's current rate). While the dislocation lasts the exit basis is as
wide as the entry basis and the round trip would lose both fees, so nothing closes; when
it reverts the close goes out as an ordinary two-leg execution. The funding settled while
the position was open is not part of the rule: the venue settles it on the account's whole
position, and sharing it out between hedge positions so that a restart rebuilds exactly what
the running book held is not built (the daily PnL counts it, ``ArbitrageController``). The
opening decision included the funding expected over the holding horizon (``arb.pipeline``).

Restart. The book lives in memory; ``restore`` rebuilds it from the order journal, which
holds every order intent with its leg (``buy``/``sell``, or a recovery leg) and market and
every fill. An opportunity whose buy and sell legs are one spot and one futures market is
a spot/futures hedge (the executor refuses any other mix for this type, and SPOT_SPOT never
names a futures market), so no extra record is needed: replaying each such opportunity's
journaled fills, in journal order, through the same arithmetic as ``record`` gives the
positions and average entry prices the book held. The one difference is deliberate: an
execution cut short by a crash, which the running book never recorded, counts with its
matched part, since that part is open at the venues.

Venue check. The journal and the fills know only what this engine traded: a futures
position closed by hand or liquidated at the venue is still open in the book. A close's
futures leg is sent reduce-only whenever the perpetual's position, as the risk manager counts
it (the venue's at its last read, with the fills since), is one the close shrinks
(``futures_reduce_only``), so the venue clips or refuses it rather than opening a new position
the other way; the spot leg's residual then goes to recovery. Hedges of one perpetual against
two spot venues that offset each other (or a flagged residual, or a position not the engine's)
leave the venue's position smaller than the close, and a close that would grow it is sent as a
plain order. Either way the book should not keep what the venue no longer holds: after a restore, and
periodically while running, the controller reads each futures market's positions and
``check_venue`` compares them: a pair whose hedges the venue's position does not cover (what
they net to on the perpetual, in the same direction, at least as large, within one lot; hedges
netting to nothing need nothing there; a venue holding what the engine expects, its last read with
the engine's fills since, has lost nothing since, a flagged residual beside the hedges included) is
taken out of the book, with an error
naming both quantities; the engine no longer closes it, and its spot side is plain
inventory. A venue position larger than the book's (other trading on the account) leaves the
book as it is, with a warning (once per pair and quantities) that the engine closes only its
own part.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Protocol

import msgspec

from arb_core.book import ASK, BID
from arb_core.freshness import is_fresh

from .errors import ExchangeError
from .instruments import InstrumentCatalog, InstrumentError, common_step, pair_symbol, round_down_to_step, split_symbol
from .journal import FillRecord, HedgeDrop, base_per_unit
from .orders import QUOTE_QUANTUM, WIDE, catalog_instrument, exact_notional, fee_in_quote, round_price
from .pipeline import BPS, Leg, hedge_round_trip, stated_margin, walk_price
from .risk import FUTURES_MARKETS, MS_PER_DAY, FuturesHolding
from .types import ArbitrageOpportunity, ExchangeName, ExecutionLeg, ExecutionResult, OpportunityType, OrderSide

log = logging.getLogger(__name__)

ZERO = Decimal(0)
# The executor's two legs; recovery legs are named after their action ("hedge-1", "unwind-2").
_MAIN_LEGS = ("buy", "sell")


class HedgeJournal(Protocol):
    """The reads of ``arb.journal.Journal`` that ``HedgeBook.restore`` needs."""

    def order_legs(self) -> list[tuple[int, str, str, ExchangeName, str]]:
        """(intent id, opportunity id, leg, market, symbol) of every intent, oldest first."""

    def hedge_drops(self) -> list[HedgeDrop]:
        """Every recorded hedge drop, oldest first."""

    def iter_fills(self, *, touching: Collection[ExchangeName] | None = None) -> Iterable[FillRecord]:
        """Recorded fills in journal order (of opportunities with an order on ``touching`` only),
        read as they are taken."""


class HedgePosition(msgspec.Struct, kw_only=True):
    """The open hedge of one pair between one spot and one futures market."""

    symbol: str  # the pair, spot form (BTC/USDT)
    spot: ExchangeName
    futures: ExchangeName
    base: Decimal  # signed: > 0 long spot and short futures, < 0 the reverse
    spot_price: Decimal  # average entry prices of the open quantity
    futures_price: Decimal
    # Quote the openings of the open quantity locked in, from their exact notionals (about
    # ``entry_basis * base``, which rounds through the averages): what they reported as
    # realized PnL and the closes give back.
    locked_basis: Decimal = ZERO
    # Quote the openings of the open quantity paid in fees (both legs, at the rates then).
    entry_fees: Decimal = ZERO

    @property
    def entry_basis(self) -> Decimal:
        """Futures minus spot entry price, quote per base unit."""
        return self.futures_price - self.spot_price


class HedgeMismatch(msgspec.Struct, frozen=True, kw_only=True):
    """A pair whose restored hedges the venue's futures position does not cover (see the module doc)."""

    futures: ExchangeName
    symbol: str  # the pair, spot form
    booked: Decimal  # the futures base the book's hedges held (signed: < 0 short)
    at_venue: Decimal  # the futures base the venue reports (signed)
    dropped: tuple[HedgePosition, ...]  # what was taken out of the book

    def __str__(self) -> str:
        return (
            f"{self.futures.value} {self.symbol}: the journal's hedges hold {self.booked} base of futures, "
            f"the venue {self.at_venue}; {len(self.dropped)} hedge position(s) taken out of the book "
            "(the engine will not close them; check the account)"
        )


class HedgeBook:
    """Hedge positions built from execution results; proposes the closing pair when the basis reverts."""

    def __init__(self, catalogs: Mapping[ExchangeName, InstrumentCatalog], *, min_profit_bps: Decimal) -> None:
        self.catalogs = catalogs
        self.min_profit_bps = min_profit_bps
        self._positions: dict[tuple[str, ExchangeName, ExchangeName], HedgePosition] = {}
        self._closes = 0
        self._larger_at_venue: dict[tuple[ExchangeName, str], tuple[Decimal, Decimal]] = {}  # last warned
        # The fee rate each (market, symbol) last charged a hedge's order, as ``_net`` counts the fee.
        self._charged: dict[tuple[ExchangeName, str], Decimal] = {}
        # Set by ``restore``: how each UTC day's restored executions changed ``held_basis``.
        self.restored_basis_by_day: dict[int, Decimal] = {}

    def positions(self) -> list[HedgePosition]:
        """Every open (non-zero) position."""
        return [msgspec.structs.replace(p) for p in self._positions.values() if p.base]

    def holds(self, position: HedgePosition) -> bool:
        """Whether the book still holds ``position`` (a copy from ``positions``) as it was: same pair,
        markets and size. A check between ``positions`` and a close may have dropped or changed it."""
        held = self._positions.get((position.symbol, position.spot, position.futures))
        return held is not None and held.base == position.base != ZERO

    def has_positions(self) -> bool:
        """Whether any position is open."""
        return any(p.base for p in self._positions.values())

    def charged_rate(self, market: ExchangeName, symbol: str) -> Decimal | None:
        """The fee rate ``market`` last charged a hedge's order on ``symbol``: its fee in quote over its
        notional, as an opening's ``entry_fees`` count it (None before any). The venue may charge an
        order its own rate (Gate.io futures' ``tkfr``: a promotion, a contract's rate), not the tier's."""
        return self._charged.get((market, symbol))

    def futures_hedged(self, futures: ExchangeName, symbol: str) -> tuple[Decimal, Decimal]:
        """The base the open positions of pair ``symbol`` (spot form) hold long and short on the
        perpetual ``futures``, each summed: ``RiskManager.hedged_futures``."""
        long = short = ZERO
        for position in self._positions.values():
            if position.futures is futures and position.symbol == symbol:
                if position.base > 0:
                    short += position.base
                else:
                    long -= position.base
        return long, short

    def held_basis(self) -> Decimal:
        """The basis the open positions locked in, in quote (their ``locked_basis`` summed): what their
        openings reported as realized PnL and their closes give back. The daily loss limit leaves it
        out (see ``RiskManager``) until a close realizes it."""
        return sum((p.locked_basis for p in self._positions.values() if p.base), ZERO)

    def record(self, opportunity: ArbitrageOpportunity, result: ExecutionResult) -> HedgePosition | None:
        """Add the matched spot/futures quantity of a hedge execution (an opening or a closing pair).

        Only the part both markets filled is a hedge; an unmatched residual belongs to
        recovery (flat or flagged) and is not counted here. A close that took one side of the
        position off past the other leaves only what both sides still hold as a hedge. Returns the
        updated position.
        """
        if opportunity.opportunity_type is not OpportunityType.SPOT_FUTURES_HEDGE:
            return None
        spot_market, futures_market = (
            (opportunity.buy_exchange, opportunity.sell_exchange)
            if opportunity.sell_exchange.is_futures
            else (opportunity.sell_exchange, opportunity.buy_exchange)
        )
        return self._apply(opportunity.symbol, spot_market, futures_market, result.legs)

    def restore(self, journal: HedgeJournal) -> list[HedgePosition]:
        """Rebuild the positions from ``journal`` (see the module doc); returns the open ones, logged.

        Replaces whatever the book held. An opportunity whose instruments are no longer in the
        catalogs is left out with an error naming it. Only the hedge executions' fills are read.
        """
        self._positions.clear()
        self._charged.clear()
        self.restored_basis_by_day = {}
        markets: dict[str, dict[str, tuple[ExchangeName, str]]] = {}
        first_intent: dict[str, int] = {}
        for intent_id, opportunity_id, leg, exchange, symbol in journal.order_legs():
            if leg in _MAIN_LEGS:
                markets.setdefault(opportunity_id, {})[leg] = (exchange, symbol)
                first_intent.setdefault(opportunity_id, intent_id)
        # Pairs the venue no longer held, taken out as they were while running: in journal order
        # with the executions, so a later hedge of the pair is not merged with what was gone.
        drops = sorted(journal.hedge_drops(), key=lambda d: d.after_intent_id)
        dropped = 0
        hedges = {
            opp: legs for opp, legs in markets.items()
            if len(legs) == 2 and legs["buy"][0].is_futures != legs["sell"][0].is_futures
        }
        legs_filled: dict[str, list[ExecutionLeg]] = {}
        last_fill_ms: dict[str, int] = {}  # an execution's day is that of its last fill, as in RiskManager.restore
        for record in journal.iter_fills(touching=FUTURES_MARKETS):
            if record.opportunity_id in hedges:
                last_fill_ms[record.opportunity_id] = max(last_fill_ms.get(record.opportunity_id, 0), record.recorded_at_ms)
                fill = record.fill
                legs_filled.setdefault(record.opportunity_id, []).append(
                    ExecutionLeg(
                        exchange=record.exchange, symbol=fill.symbol, side=fill.side,
                        client_order_id=fill.client_order_id or fill.order_id, requested_quantity=fill.quantity,
                        limit_price=fill.price, filled_quantity=fill.quantity, average_price=fill.price,
                        fee=fill.fee, fee_asset=fill.fee_asset, order_id=fill.order_id,
                        contract_size=record.contract_size,
                    )
                )
        for opp, legs in hedges.items():
            while dropped < len(drops) and drops[dropped].after_intent_id < first_intent[opp]:
                self._drop(drops[dropped])
                dropped += 1
            if opp not in legs_filled:
                continue
            (buy_market, buy_symbol), (sell_market, _) = legs["buy"], legs["sell"]
            spot, futures = (sell_market, buy_market) if buy_market.is_futures else (buy_market, sell_market)
            pair = pair_symbol(buy_symbol)
            held = self.held_basis()
            try:
                self._apply(pair, spot, futures, legs_filled[opp])
            except InstrumentError as exc:
                log.error("hedges: opportunity %s left out of the rebuilt hedge book: %s", opp, exc)
                continue
            day = last_fill_ms[opp] // MS_PER_DAY
            self.restored_basis_by_day[day] = self.restored_basis_by_day.get(day, ZERO) + self.held_basis() - held
        for drop in drops[dropped:]:
            self._drop(drop)
        positions = self.positions()
        for p in positions:
            log.info(
                "hedges: restored %s %s/%s: %s base %s, entry spot %s futures %s (basis %s)",
                p.symbol, p.spot.value, p.futures.value, "long spot" if p.base > 0 else "short spot", abs(p.base),
                p.spot_price, p.futures_price, p.entry_basis,
            )
        log.info("hedges: %d open positions rebuilt from %d journaled hedge executions", len(positions), len(legs_filled))
        return positions

    def _drop(self, drop: HedgeDrop) -> None:
        """Take a pair out of the book as ``drop`` recorded it (``check_venue``, while running)."""
        self._positions.pop((drop.symbol, drop.spot, drop.futures), None)

    def check_venue(
        self, futures: ExchangeName, holdings: Mapping[str, FuturesHolding], own: Mapping[str, Decimal] | None = None
    ) -> list[HedgeMismatch]:
        """Compare the book's hedges on ``futures`` with what its venue holds (``futures_holdings``);
        take out of the book, and return, every pair the venue does not cover (see the module doc).
        ``own``: the signed base each pair's position is expected to hold (``RiskManager.held_positions``
        before this read's alignment: the venue's at the last read with the engine's fills since, on
        restore the journal's): a venue holding that has lost nothing since, whatever a flagged
        residual or a position not the engine's beside the hedges makes of it."""
        booked: dict[str, Decimal] = {}
        for hedge in self._positions.values():
            if hedge.futures is futures and hedge.base:
                booked[hedge.symbol] = booked.get(hedge.symbol, ZERO) - hedge.base  # long spot: short futures
        mismatches = []
        for symbol, held in booked.items():
            holding = holdings.get(symbol)
            # A flat venue lists no position: one contract is still the tolerance (a recovery's
            # unwind can leave the book a fraction of a contract off the venue, never more).
            venue, lot = (holding.base, holding.lot) if holding is not None else (ZERO, self._futures_lot(futures, symbol))
            if own is not None and abs(venue - own.get(symbol, ZERO)) <= lot:
                continue
            toward = venue if held >= 0 else -venue  # what the venue holds the way the book's hedges net
            # Hedges netting to nothing (against both spot venues) need nothing held there.
            if abs(held) <= lot or toward >= abs(held) - lot:
                larger = abs(venue) > abs(held) + lot
                if larger and self._larger_at_venue.get((futures, symbol)) != (venue, held):
                    self._larger_at_venue[(futures, symbol)] = (venue, held)
                    log.warning(
                        "hedges: %s %s: the venue holds %s base of futures, the engine's hedges %s; "
                        "the engine closes only its own part", futures.value, symbol, venue, held,
                    )
                continue
            keys = [k for k, p in self._positions.items() if p.futures is futures and p.symbol == symbol and p.base]
            mismatch = HedgeMismatch(
                futures=futures, symbol=symbol, booked=held, at_venue=venue,
                dropped=tuple(self._positions.pop(key) for key in keys),
            )
            log.error("hedges: %s", mismatch)
            mismatches.append(mismatch)
        return mismatches

    def _futures_lot(self, futures: ExchangeName, symbol: str) -> Decimal:
        """One contract of ``symbol``'s perpetual on ``futures``, in base (0 where the catalog lists none)."""
        try:
            instrument = catalog_instrument(self.catalogs, futures, symbol)
        except (ExchangeError, InstrumentError):
            return ZERO
        return instrument.base_lot

    def _apply(
        self, symbol: str, spot_market: ExchangeName, futures_market: ExchangeName, legs: Sequence[ExecutionLeg]
    ) -> HedgePosition | None:
        spot_base, spot_cost, spot_fees = self._net(spot_market, legs)
        futures_base, futures_cost, futures_fees = self._net(futures_market, legs)
        key = (symbol, spot_market, futures_market)
        taken_off = self._take_off_unmatched_close(key, spot_base, futures_base)
        if not spot_base or not futures_base or (spot_base > 0) == (futures_base > 0):
            return taken_off
        matched = min(abs(spot_base), abs(futures_base))
        spot_cost = _share(spot_cost, matched, abs(spot_base))
        futures_cost = _share(futures_cost, matched, abs(futures_base))
        fees = _share(spot_fees, matched, abs(spot_base)) + _share(futures_fees, matched, abs(futures_base))
        spot_price, futures_price = spot_cost / matched, futures_cost / matched
        signed = matched if spot_base > 0 else -matched
        # Long spot: sold futures, bought spot; short spot the reverse.
        locked = futures_cost - spot_cost if signed > 0 else spot_cost - futures_cost
        position = self._positions.get(key)
        if position is None or not position.base:
            position = self._positions[key] = HedgePosition(
                symbol=symbol, spot=spot_market, futures=futures_market, base=signed,
                spot_price=spot_price, futures_price=futures_price, locked_basis=locked, entry_fees=fees,
            )
        elif (position.base > 0) == (signed > 0):
            total = position.base + signed
            position.spot_price = (position.spot_price * position.base + spot_price * signed) / total
            position.futures_price = (position.futures_price * position.base + futures_price * signed) / total
            position.base = total
            position.locked_basis += locked
            position.entry_fees += fees
        else:
            remaining = position.base + signed
            closed = min(matched, abs(position.base))
            position.locked_basis -= _share(position.locked_basis, closed, abs(position.base))
            position.entry_fees -= _share(position.entry_fees, closed, abs(position.base))
            if remaining and (remaining > 0) != (position.base > 0):
                position.spot_price, position.futures_price = spot_price, futures_price
                position.locked_basis = _share(locked, abs(remaining), matched)
                position.entry_fees = _share(fees, abs(remaining), matched)
            position.base = remaining
        return msgspec.structs.replace(position)

    def _take_off_unmatched_close(
        self, key: tuple[str, ExchangeName, ExchangeName], spot_base: Decimal, futures_base: Decimal
    ) -> HedgePosition | None:
        """Take out of the position at ``key`` what one leg of its close took off past the other (a
        residual recovery left, flagged): that side of the pair is gone at its venue, so that much
        is no longer a hedge, and its close would trade the gone side again. The matched rest
        closes as usual. Returns the position when it changed."""
        position = self._positions.get(key)
        if position is None or not position.base:
            return None
        sign = 1 if position.base > 0 else -1  # a long-spot position closes by selling spot, buying futures
        spot_closed, futures_closed = max(-sign * spot_base, ZERO), max(sign * futures_base, ZERO)
        unmatched = min(abs(spot_closed - futures_closed), abs(position.base))
        if not unmatched:
            return None
        log.warning(
            "hedges: %s %s/%s: a close took %s base off one side only: that much is no longer a hedge",
            position.symbol, position.spot.value, position.futures.value, unmatched,
        )
        position.locked_basis -= _share(position.locked_basis, unmatched, abs(position.base))
        position.entry_fees -= _share(position.entry_fees, unmatched, abs(position.base))
        position.base -= sign * unmatched
        return msgspec.structs.replace(position)

    def _net(self, market: ExchangeName, legs: Sequence[ExecutionLeg]) -> tuple[Decimal, Decimal, Decimal]:
        """The signed base quantity ``legs`` left on ``market``, the quote it cost (the exact
        notionals of its fills) and the fees its openings paid, in quote; the legs taken in order:
        a leg against the quantity held reduces it, its cost and fees in proportion (a recovery
        unwinding part of a leg; its own fee opened nothing), one past zero opens the rest at its
        own price and fee. Each leg's fee rate is kept for ``charged_rate``."""
        base = cost = fees = ZERO
        for leg in legs:
            if leg.exchange is not market or not leg.filled_quantity or leg.average_price is None:
                continue
            catalog = self.catalogs.get(market)
            if catalog is None:  # a venue disabled since: ``restore`` leaves the execution out
                raise InstrumentError(f"market {market.value} has no instrument catalog (not traded this run)")
            instrument = catalog.get(leg.symbol)
            filled = leg.filled_quantity * base_per_unit(leg.contract_size, instrument)
            notional = exact_notional(instrument, filled, leg.average_price)
            fee = fee_in_quote(instrument, leg.fee, leg.fee_asset or instrument.quote, leg.average_price)
            if fee is None:  # in neither base nor quote (a venue's points): at the instrument's taker rate
                fee = notional * instrument.taker_fee
            if notional:
                self._charged[(market, leg.symbol)] = fee / notional
            signed = filled if leg.side is OrderSide.BUY else -filled
            total = base + signed
            if not base or (base > 0) == (signed > 0):
                cost += notional
                fees += fee
            elif total and (total > 0) != (base > 0):
                cost = _share(notional, abs(total), filled)
                fees = _share(fee, abs(total), filled)
            else:
                cost -= _share(cost, filled, abs(base))
                fees -= _share(fees, filled, abs(base))
            base = total
        return base, cost, fees

    def close_opportunity(
        self, position: HedgePosition, spot: Leg, futures: Leg, *, id_prefix: str, detected_ns: int,
        max_age_ns: int, max_notional: Decimal | None = None, spot_held: Decimal | None = None,
        quote_free: Decimal | None = None, held_funding_per_base: Decimal = ZERO, futures_held: Decimal | None = None,
    ) -> ArbitrageOpportunity | None:
        """The opposite pair closing ``position`` (at most ``max_notional`` of quote at the walked prices)
        at the books of ``spot`` and ``futures``, when the rule allows. ``spot_held``: the base free
        on the spot venue; a long-spot close sells no more (a buy whose fee the venue took in base
        left less there than the book holds), the rest staying open. ``quote_free``: the quote free
        there; a short-spot close buys back no more than it pays for at its limit, fee included
        (the venue would refuse the buy while the futures leg fills).

        ``held_funding_per_base``: the funding holding the position expects over the holding horizon,
        in quote per base unit (> 0 received): a close forgoes it, so it counts against the close
        (and funding the position pays counts for it), as expected funding counts for an opening.

        ``futures_held``: the signed base the perpetual's venue position holds as the risk manager
        counts it (``RiskManager.held_positions``); the futures leg goes reduce-only when that shrinks
        by the whole close. None: what the book's hedges on the perpetual net to.

        None while the round trip would earn less than ``min_profit_bps`` after fees, when
        either book is out of sync, older than ``max_age_ns`` at ``detected_ns`` or cannot
        fill the quantity, and when what is left is less than both markets can trade (a whole
        common lot, each market's minimum size and notional).
        """
        if not (is_fresh(spot.book, detected_ns, max_age_ns) and is_fresh(futures.book, detected_ns, max_age_ns)):
            return None
        si, fi = spot.instrument, futures.instrument
        step = common_step(si.base_lot, fi.base_lot)
        quantity = abs(position.base)
        if max_notional is not None:
            quantity = min(quantity, max_notional / position.spot_price)
        if spot_held is not None and position.base > 0:
            quantity = min(quantity, spot_held)
        quantity = round_down_to_step(quantity, step)
        if not quantity:
            return None
        long_spot = position.base > 0
        # A long-spot hedge closes by selling spot into the bids and buying futures from the asks.
        spot_price = walk_price(spot, BID if long_spot else ASK, quantity)
        futures_price = walk_price(futures, ASK if long_spot else BID, quantity)
        if spot_price is None or futures_price is None:
            return None
        entry_notional = position.spot_price * quantity
        entry_fees = position.entry_fees / abs(position.base)  # per base, as paid

        def profit_at(spot_price: Decimal, futures_price: Decimal) -> Decimal:
            """The round trip's profit after fees with the close filled at these prices, less the
            funding the close forgoes."""
            return hedge_round_trip(
                long_spot, si, fi, position.spot_price, position.futures_price, entry_fees, spot_price,
                futures_price, held_funding_per_base,
            ) * quantity

        floor = self.min_profit_bps * entry_notional / BPS
        profit = profit_at(spot_price, futures_price)
        if profit < floor:
            return None
        margin = profit * BPS / entry_notional
        # The books move while the orders travel: the profit above the floor buys room in the
        # limits (a quarter per leg). The limits go on each market's tick grid, toward the market,
        # as the executor sends them (the notional reserved against the risk limits is then exact);
        # where that rounding takes more than the room, the limits are the walked prices rounded,
        # and the close waits while even those would keep less than the floor at the worst fills.
        room = (profit - floor) / quantity / 4
        spot_side, futures_side = (OrderSide.SELL, OrderSide.BUY) if long_spot else (OrderSide.BUY, OrderSide.SELL)
        spot_room, futures_room = (-room, room) if long_spot else (room, -room)
        for spot_limit, futures_limit in (
            (spot_price + spot_room, futures_price + futures_room), (spot_price, futures_price)
        ):
            spot_limit = round_price(si, spot_limit, spot_side, marketable=True)
            futures_limit = round_price(fi, futures_limit, futures_side, marketable=True)
            if profit_at(spot_limit, futures_limit) >= floor:
                break
        else:
            return None
        spot_price, futures_price = spot_limit, futures_limit
        if max_notional is not None and quantity * max(spot_price, futures_price) > max_notional:
            # Less quantity walks no deeper, so the limits found stay valid for it.
            smaller = round_down_to_step(max_notional / max(spot_price, futures_price), step)
            profit = profit * smaller / quantity
            quantity = smaller
        if quote_free is not None and not long_spot:
            cost = spot_price * (1 + si.taker_fee)  # per base, the fee as if charged in quote
            if quantity * cost > quote_free:
                smaller = round_down_to_step(max(quote_free, ZERO) / cost, step)
                profit = profit * smaller / quantity
                quantity = smaller
        if (
            not quantity
            or quantity < si.min_size * si.contract_size
            or quantity < fi.min_size * fi.contract_size
            or quantity * spot_price < si.min_notional
            or quantity * futures_price < fi.min_notional
        ):
            return None
        self._closes += 1
        buy, sell = (futures, spot) if long_spot else (spot, futures)
        base, _, _ = split_symbol(position.symbol)
        # The venue nets every hedge on the perpetual into one position, with whatever else it holds
        # there (a flagged residual, a position not the engine's): the close only shrinks it when it is
        # at least this large, the same way.
        held = self._short_futures_base(position.futures, position.symbol) if futures_held is None else -futures_held
        reduces = held >= quantity if long_spot else held <= -quantity
        return ArbitrageOpportunity(
            opportunity_id=f"{id_prefix}c{self._closes}_{base.lower()}",  # "_" ends the count (as the scanner's)
            opportunity_type=OpportunityType.SPOT_FUTURES_HEDGE,
            symbol=position.symbol,
            buy_exchange=buy.exchange,
            sell_exchange=sell.exchange,
            buy_price=futures_price if long_spot else spot_price,
            sell_price=spot_price if long_spot else futures_price,
            max_quantity=quantity,
            profit_per_unit=profit / quantity,
            total_profit_estimate=profit,
            profit_margin_bps=stated_margin(margin, self.min_profit_bps),
            detected_at=detected_ns,
            buy_fee=buy.instrument.taker_fee,
            sell_fee=sell.instrument.taker_fee,
            expected_funding=-held_funding_per_base * quantity if held_funding_per_base else ZERO,
            futures_reduce_only=reduces,
        )

    def _short_futures_base(self, futures: ExchangeName, symbol: str) -> Decimal:
        """The short futures base of ``symbol`` the book's hedges hold on ``futures`` (< 0: long)."""
        return sum((p.base for p in self._positions.values() if p.futures is futures and p.symbol == symbol), ZERO)


def _share(amount: Decimal, part: Decimal, whole: Decimal) -> Decimal:
    """``amount * part / whole``: all of it when ``part`` is the whole, else rounded to ``QUOTE_QUANTUM``
    (what rounding leaves of a position's locked basis stays with it and goes with its last close)."""
    if part == whole:
        return amount
    return WIDE.divide(WIDE.multiply(amount, part), whole).quantize(QUOTE_QUANTUM, ROUND_HALF_EVEN, WIDE)
