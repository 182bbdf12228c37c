"""Balances per market and asset from private pushes, reconciled by REST, feeding the scanner's size caps.

A market whose private stream pushes balances (``balance_handler``) has each push applied
as that asset's current balance, and the scanner's caps on that market follow at once.
The signed balance call still reads every market every ``balance_refresh_interval_ms``
(and on request, e.g. after an execution on a market without pushes). On a pushed market
the answer is the reconciliation: the read wins, except for an asset pushed while the read
was in flight, which keeps the push (it may be the newer of the two). A push the venue stamps as
changed clearly before the last read applied began (its clock as last measured against the local
monotonic clock, ``venue_ahead_of_monotonic_ms``, give or take ``CLOCK_READ_ERROR_MS``; a step of the
wall clock moves neither) is older than that read, however late it lands: it is dropped
(``stale_pushes``), and kept over no read in flight either. An asset whose read
disagrees with the pushed state (free or locked differ at all) is a drift unless the push that
brings the read's state is merely late: it is reported (logged, counted, ``on_drift``) at
the next read of the market if no push has brought that state by then. A market whose stream
only says that balances changed has them read by REST (``read_handler``): those reads keep
it current but are not pushes, and its periodic reads are not checked for drift.
From the free balances the scanner learns how much each leg can trade: buy up to free
quote / ask (fee included), sell up to the free base on spot; a futures leg can open either
way up to its free margin at 1x. A market whose balances are known to be out of date (a
futures fill used margin, and the read after it failed: ``hold_until_read``) trades nothing
until a read begun after that answers.

Skew: arbitrage moves inventory from one venue to the other. When a venue's share of an
asset falls below ``skew_threshold`` of that asset's total, selling it there (or buying
with it, for the quote) will soon stop; an alert says so once per episode. Only assets a
scanner leg trades on the market are compared, spot markets with spot markets and futures
margin with futures margin: margin opens either way and is no inventory of the spot venues.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, NamedTuple, Protocol

import msgspec

from .exchanges.base import BalanceHandler, BalancesReadHandler
from .exchanges.connector import CLOCK_READ_ERROR_MS
from .exchanges.models import Balance
from .pipeline import Leg, ScannerPipeline
from .types import ExchangeName

log = logging.getLogger(__name__)
SKEW_CLEARS_AT = Decimal("1.5")  # an alerted skew clears at this multiple of the threshold

ZERO = Decimal(0)


class BalanceSource(Protocol):
    """What the monitor reads: a connector's signed balance call."""

    async def balances(self) -> Mapping[str, Balance]:
        """Balances by asset."""


class SkewAlert(msgspec.Struct, frozen=True, kw_only=True):
    """One venue holds too little of an asset compared to the other venues."""

    asset: str
    exchange: ExchangeName
    free: Decimal
    total: Decimal
    share: Decimal  # free / total over the markets of its kind (spot or futures) trading the asset

    def message(self) -> str:
        """A one-line alert text."""
        return (
            f"inventory skew: {self.exchange.value} holds {self.free} of {self.total} {self.asset} "
            f"({self.share * 100:.1f} %); trades that spend {self.asset} there will stop soon"
        )


class _Spending(NamedTuple):
    """What an execution spent of one asset, off its free balance until the venue shows it (``spend``)."""

    amount: Decimal
    shown_at: Decimal  # a venue free balance at or below this shows it spent
    at: int  # the push sequence when it was spent: a read begun later shows it


def _settle_shown(spent: list[_Spending], free: Decimal) -> None:
    """Drop from ``spent`` the spendings a venue free balance of ``free`` is down far enough to show."""
    spent[:] = [s for s in spent if free > s.shown_at]


class LegCaps(NamedTuple):
    """How much base a scanner leg may trade by the free balances (``BalanceMonitor.leg_caps``)."""

    buy: Decimal
    sell: Decimal
    buy_quote: Decimal  # the quote a buy may spend, taker fee included


class BalanceDrift(msgspec.Struct, frozen=True, kw_only=True):
    """A REST read disagreed with the balance the private stream had pushed: a missed or wrong push."""

    exchange: ExchangeName
    asset: str
    pushed: Balance  # the state before the read (zero when the asset was unknown)
    read: Balance  # the venue's answer, now the state

    def message(self) -> str:
        """A one-line alert text."""
        return (
            f"balance drift: {self.exchange.value} {self.asset} pushed free {self.pushed.free} locked "
            f"{self.pushed.locked}, REST reads free {self.read.free} locked {self.read.locked}"
        )


class BalanceMonitor:
    """Free balances by market and asset from pushes and REST; pushes leg caps into the scanner."""

    def __init__(
        self,
        sources: Mapping[ExchangeName, BalanceSource],
        *,
        refresh_interval_ms: int = 5_000,
        skew_threshold: Decimal = Decimal("0.1"),
        on_alert: Callable[[SkewAlert], None] | None = None,
        on_drift: Callable[[BalanceDrift], None] | None = None,
    ) -> None:
        if refresh_interval_ms < 1:
            raise ValueError(f"refresh_interval_ms={refresh_interval_ms}: must be at least 1")
        if not ZERO <= skew_threshold < 1:
            raise ValueError(f"skew_threshold={skew_threshold}: must be in [0, 1)")
        self.sources = dict(sources)
        self.refresh_interval_s = refresh_interval_ms / 1000
        self.skew_threshold = skew_threshold
        self.on_alert = on_alert
        self.on_drift = on_drift
        self._balances: dict[ExchangeName, dict[str, Balance]] = {}
        self._alerted: set[tuple[str, ExchangeName]] = set()
        self._streamed: set[ExchangeName] = set()  # markets kept current by their private stream
        self._pushing: set[ExchangeName] = set()  # markets whose stream pushes the balances themselves
        self._suspects: dict[tuple[ExchangeName, str], BalanceDrift] = {}  # disagreements a late push may explain
        self._read: set[ExchangeName] = set()  # markets with a REST read to reconcile against
        self._push_seq = 0
        self._read_seq = 0  # refreshes started
        self._applied_read: dict[ExchangeName, int] = {}  # the refresh whose read each market's balances came from
        self._applied_read_ns: dict[ExchangeName, int] = {}  # when that read began (``time.monotonic_ns``)
        self._pushed_at: dict[tuple[ExchangeName, str], int] = {}  # the push sequence of each asset's last push
        # Refreshes on their way per market: (when the read began, the push number it began at).
        self._reading: dict[ExchangeName, list[tuple[int, int]]] = {}
        # What executions just spent, off the free balance until the venue says what is left (``spend``).
        self._spent: dict[tuple[ExchangeName, str], list[_Spending]] = {}
        self.refreshes = 0
        self.errors = 0
        self.pushes = 0
        self.drifts = 0
        self.stale_pushes = 0  # pushes dropped as older than a read already applied
        self.pipeline: ScannerPipeline | None = None
        # (market, symbol, its current price) -> the base a futures leg may buy and sell before its
        # position limit (``RiskManager.futures_room``); None: no bound but the balances.
        self.position_room: Callable[[ExchangeName, str, Decimal | None], tuple[Decimal, Decimal] | None] | None = None
        # market -> how far the venue's clock is ahead of the local monotonic clock in ms
        # (``ExchangeConnector.venue_ahead_of_monotonic_ms``), None while unread: what a push's stamp is
        # placed on the local clock by. None: pushes are not dated.
        self.venue_ahead_of_monotonic_ms: Callable[[ExchangeName], float | None] | None = None
        self._refreshing: dict[ExchangeName, asyncio.Task[None]] = {}  # ``refresh_soon`` reads under way
        self._refresh_again: set[ExchangeName] = set()  # asked for while one was under way: read once more
        # Markets sized on nothing until a read begun after this (``time.monotonic_ns``) answers.
        self._held_for_read: dict[ExchangeName, int] = {}

    def free(self, exchange: ExchangeName, asset: str) -> Decimal:
        """Free balance of ``asset`` on ``exchange`` (0 when unknown), less what an execution spent
        since the venue last said (``spend``)."""
        free = self._venue_free(exchange, asset)
        spent = self._spent.get((exchange, asset))
        return free if not spent else max(free - sum((s.amount for s in spent), ZERO), ZERO)

    def frees(self, exchanges: Iterable[ExchangeName]) -> dict[tuple[ExchangeName, str], Decimal]:
        """``free`` of every known asset of ``exchanges``, by (market, asset): take it when an
        execution's orders are written, for ``spend``'s ``before``."""
        return {(e, asset): self.free(e, asset) for e in exchanges for asset in self._balances.get(e, {})}

    def spend(self, exchange: ExchangeName, asset: str, amount: Decimal, *, before: Decimal) -> None:
        """Take ``amount`` of ``asset`` off ``exchange``'s free balance, and the scanner's caps there,
        until the venue shows it spent: a push of the asset whose free balance is down by at least
        half of ``amount`` from ``before``, or a read begun after this. An execution just spent it,
        and the push that says so may come after the next opportunity is sized.

        ``before``: ``free`` when the execution's orders were written. A push since then that is
        down that far shows the spending already (it usually comes before the order's answer):
        nothing is taken off again. Any other push, an older state or another change, leaves it
        off. Each spending is settled on its own, so back-to-back executions each stay off until
        the venue shows theirs. Half rather than all of it: the venue's own fee and rounding
        differ from the estimate. A push that also brings a credit (a deposit, a sale's proceeds)
        can hide a spending, which then stays off until the next read: the caps err low."""
        if amount <= 0:
            return
        shown_at = before - amount / 2
        if self._venue_free(exchange, asset) <= shown_at:
            return
        self._push_seq += 1
        self._spent.setdefault((exchange, asset), []).append(_Spending(amount, shown_at, self._push_seq))
        self.update_caps((exchange,))

    def hold_until_read(self, exchanges: Iterable[ExchangeName]) -> None:
        """Size nothing on ``exchanges`` (their caps zero) until a read of their balances begun
        from now on answers (``refresh``, or the private stream's): what is known of them is out
        of date (a futures fill used margin a failed read did not say)."""
        now_ns = time.monotonic_ns()
        held = list(exchanges)
        for exchange in held:
            self._held_for_read[exchange] = now_ns
        self.update_caps(held)

    def held_for_read(self, exchange: ExchangeName) -> bool:
        """Whether ``exchange`` waits for a read of its balances before anything is sized on them
        (``hold_until_read``)."""
        return exchange in self._held_for_read

    def _answered(self, exchange: ExchangeName, started_ns: int) -> None:
        """A read of ``exchange`` begun at ``started_ns`` was applied: it ends a hold placed before it began."""
        held_ns = self._held_for_read.get(exchange)
        if held_ns is not None and started_ns > held_ns:
            del self._held_for_read[exchange]
            log.info("%s: balances read again: trading there resumes", exchange.value)

    def _venue_free(self, exchange: ExchangeName, asset: str) -> Decimal:
        balance = self._balances.get(exchange, {}).get(asset)
        return balance.free if balance is not None else ZERO

    def snapshot(self) -> dict[ExchangeName, dict[str, Balance]]:
        """The latest balances by market and asset."""
        return {exchange: dict(assets) for exchange, assets in self._balances.items()}

    def streamed(self, exchange: ExchangeName) -> bool:
        """Whether ``exchange``'s private stream keeps its balances current (a handler was made for it)."""
        return exchange in self._streamed

    def balance_handler(self, exchange: ExchangeName) -> BalanceHandler:
        """The ``on_balance`` handler of ``exchange``'s private stream; from now on its REST reads reconcile."""
        self._streamed.add(exchange)

        def on_balance(balance: Balance) -> None:
            self.push(exchange, balance)

        return on_balance

    def read_handler(self, exchange: ExchangeName) -> BalancesReadHandler:
        """The ``on_balances_read`` handler of ``exchange``'s private stream: the balances it reads by
        REST when a push says they changed. Applied as pushes are, never checked for drift; dropped
        when a read of ``refresh`` begun after it has answered first (a trade's margin read, say),
        and given way to one begun after it that is still on its way."""
        self._streamed.add(exchange)

        def on_read(balances: Mapping[str, Balance], started_ns: int) -> None:
            if started_ns < self._applied_read_ns.get(exchange, 0):
                log.debug("%s: balances read by the private stream dropped: a later read has answered", exchange.value)
                return
            # Numbered as of the earliest refresh begun after it: that refresh's answer replaces it,
            # an older refresh's does not.
            later = [at for began_ns, at in self._reading.get(exchange, ()) if began_ns > started_ns]
            as_of = min(later) if later else None
            for balance in balances.values():
                self._apply(exchange, balance, as_of)
            self._answered(exchange, started_ns)
            self.update_caps((exchange,))
            self.check_skew()

        return on_read

    def push(self, exchange: ExchangeName, balance: Balance) -> None:
        """Apply a pushed balance as the asset's current one; the caps on ``exchange`` follow at once.
        Dropped when stamped clearly before the last read applied began: that read is newer."""
        self._pushing.add(exchange)
        key = (exchange, balance.asset)
        suspect = self._suspects.get(key)
        if suspect is not None and (balance.free, balance.locked) == (suspect.read.free, suspect.read.locked):
            del self._suspects[key]  # the push the read was ahead of
        if self._changed_before(exchange, balance, self._applied_read_ns.get(exchange)):
            # Sent before the read's request, delivered after its answer: it would put back what
            # executions spent since, and take a spending it does not show as shown.
            self.stale_pushes += 1
            log.debug("%s: %s balance push stamped %d dropped: older than the read applied", exchange.value,
                      balance.asset, balance.updated_at_ms)
            return
        self._apply(exchange, balance)
        self.pushes += 1
        self.update_caps((exchange,))
        self.check_skew()

    def _changed_before(self, exchange: ExchangeName, balance: Balance, monotonic_ns: int | None) -> bool:
        """Whether pushed ``balance`` changed clearly before ``monotonic_ns`` (a read's start,
        ``time.monotonic_ns``): its venue stamp, placed on the monotonic clock by the venue's measured
        offset, is earlier by more than that offset may be off. Not when unstamped, or the offset
        unknown: it is then taken as newer."""
        clock = self.venue_ahead_of_monotonic_ms
        ahead_ms = None if clock is None else clock(exchange)
        if balance.updated_at_ms is None or monotonic_ns is None or ahead_ms is None:
            return False
        return balance.updated_at_ms - ahead_ms < monotonic_ns / 1e6 - CLOCK_READ_ERROR_MS

    def _apply(self, exchange: ExchangeName, balance: Balance, as_of: int | None = None) -> None:
        """``balance`` as its asset's current one, numbered as a push (a read in flight keeps it), or
        ``as_of`` an earlier push number (a read begun at ``as_of`` replaces it)."""
        self._streamed.add(exchange)
        self._push_seq += 1
        self._pushed_at[(exchange, balance.asset)] = self._push_seq if as_of is None else as_of
        self._balances.setdefault(exchange, {})[balance.asset] = balance
        spent = self._spent.get((exchange, balance.asset))
        if spent:
            _settle_shown(spent, balance.free)

    def refresh_soon(self, exchange: ExchangeName) -> None:
        """Read ``exchange``'s balances now, in the background (as ``refresh``: assets pushed while the
        read is on its way keep their push). Asked while a read is under way, one more follows it:
        that read may have begun before what this was asked for (a second reconnect)."""
        task = self._refreshing.get(exchange)
        if task is not None and not task.done():
            self._refresh_again.add(exchange)
            return
        self._refreshing[exchange] = asyncio.get_running_loop().create_task(
            self._refresh_while_asked(exchange), name=f"{exchange.value} balance read"
        )

    async def _refresh_while_asked(self, exchange: ExchangeName) -> None:
        try:
            while True:
                self._refresh_again.discard(exchange)
                await self.refresh((exchange,))
                if exchange not in self._refresh_again:
                    return
        except Exception:  # nobody awaits this task: its failure is told here, and the next ask reads again
            log.exception("%s: background balance read failed", exchange.value)

    async def refresh(self, exchanges: Iterable[ExchangeName] | None = None) -> set[ExchangeName]:
        """Read the balances of ``exchanges`` (default: all) concurrently, then update caps and
        alerts; the markets whose read failed.

        A failed read keeps that market's previous balances and is logged. On a pushed market
        the read is reconciled against the pushed state (drifts noted, and reported at the next
        read unless a push explains them meanwhile). A read that answers
        after the read of a later refresh of the same market is older than what it would
        replace, and is dropped.
        """
        names = [e for e in (self.sources if exchanges is None else exchanges) if e in self.sources]
        self._push_seq += 1  # a number of its own: what a stream read numbers as of this read (``read_handler``)
        started = self._push_seq
        started_ns = time.monotonic_ns()
        self._read_seq += 1
        read_seq = self._read_seq
        reading = (started_ns, started)
        for exchange in names:
            self._reading.setdefault(exchange, []).append(reading)
        try:
            results = await _read_all([self.sources[e].balances() for e in names])
        finally:
            for exchange in names:
                self._reading[exchange].remove(reading)
        failed = set()
        for exchange, result in zip(names, results):
            if isinstance(result, Exception):
                self.errors += 1
                failed.add(exchange)
                log.warning("%s: balance refresh failed: %s", exchange.value, result)
                continue
            if self._applied_read.get(exchange, 0) > read_seq:
                log.debug("%s: balance read dropped: a later read has answered", exchange.value)
                continue
            self._applied_read[exchange] = read_seq
            self._applied_read_ns[exchange] = started_ns
            self._reconcile(exchange, result, started, started_ns)
            self._answered(exchange, started_ns)
        self.refreshes += 1
        self.update_caps()
        self.check_skew()
        return failed

    def _reconcile(self, exchange: ExchangeName, read: Mapping[str, Balance], started: int, started_ns: int) -> None:
        """Make ``read`` the balances of ``exchange``, keeping assets pushed after push number ``started``
        unless the push is stamped clearly before the read began (at ``started_ns``, monotonic)."""
        current = self._balances.get(exchange, {})
        fresh = {
            asset: balance
            for asset, balance in current.items()
            if self._pushed_at.get((exchange, asset), 0) > started
            and not self._changed_before(exchange, balance, started_ns)
        }
        kept = set(fresh)  # pushed while the read was on its way: the push, not the read, says what is left
        check = exchange in self._pushing and exchange in self._read
        if check:
            # A refresh interval on, no push has brought what the last read disagreed with.
            for key in [key for key in self._suspects if key[0] is exchange]:
                self._report(self._suspects.pop(key))
        for asset, balance in read.items():
            if asset in fresh:
                continue
            if check:
                self._suspect(exchange, asset, current.get(asset), balance)
            fresh[asset] = balance
        if check:
            for asset, pushed in current.items():
                if asset not in fresh:  # the venue no longer lists it: zero now
                    self._suspect(exchange, asset, pushed, None)
        self._balances[exchange] = fresh
        self._read.add(exchange)
        for (market, asset), spent in self._spent.items():
            if market is not exchange:
                continue
            if asset in kept:  # settled as a push settles them
                _settle_shown(spent, fresh[asset].free)
            else:  # a read begun after a spending shows what is left
                spent[:] = [s for s in spent if s.at > started]

    def _suspect(self, exchange: ExchangeName, asset: str, pushed: Balance | None, read: Balance | None) -> None:
        """Note a read that disagrees with the pushed state (a drift, unless its push is only late)."""
        before = pushed if pushed is not None else Balance(asset=asset, free=ZERO)
        after = read if read is not None else Balance(asset=asset, free=ZERO)
        if (before.free, before.locked) == (after.free, after.locked):
            return
        self._suspects[(exchange, asset)] = BalanceDrift(exchange=exchange, asset=asset, pushed=before, read=after)

    def _report(self, drift: BalanceDrift) -> None:
        self.drifts += 1
        log.warning(drift.message())
        if self.on_drift is not None:
            try:
                self.on_drift(drift)
            except Exception:
                # The drift is logged and counted; a failing sink must not leave the read half applied.
                log.exception("balance drift callback failed")

    async def run(self) -> None:
        """Refresh every ``refresh_interval_ms`` until cancelled."""
        while True:
            await asyncio.sleep(self.refresh_interval_s)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("balance refresh failed")

    def update_caps(self, exchanges: Iterable[ExchangeName] | None = None) -> None:
        """Set the buy and sell caps of every scanner leg (on ``exchanges``: default all) from the
        free balances and the current best prices."""
        pipeline = self.pipeline
        if pipeline is None:
            return
        markets = None if exchanges is None else set(exchanges)
        for plan in pipeline.plans.values():
            for leg in plan.legs:
                if markets is not None and leg.exchange not in markets:
                    continue
                caps = self.leg_caps(plan.symbol, leg)
                pipeline.set_leg_limits(plan.symbol_id, leg.leg_id, caps.buy, caps.sell, max_buy_quote=caps.buy_quote)

    def leg_caps(self, symbol: str, leg: Leg) -> LegCaps:
        """What ``leg`` (a scanner leg of ``symbol``) may trade by the free balances now: a buy what
        its free quote pays for at the best ask, taker fee included; a sell its free base on spot,
        on futures as much as a buy (margin at 1x); a futures leg also no more than its position
        limit leaves (``position_room``). Nothing on a market held for a read (``hold_until_read``)."""
        exchange, instrument, book = leg.exchange, leg.instrument, leg.book
        if exchange in self._held_for_read:
            return LegCaps(buy=ZERO, sell=ZERO, buy_quote=ZERO)
        buy = ZERO
        ask = leg.book_price(book.best_ask_price()) if book.ask_count else None
        quote = self.free(exchange, instrument.quote)
        if ask is not None:
            buy = quote / (ask * (1 + instrument.taker_fee))
        sell = buy if leg.is_futures else self.free(exchange, instrument.base)
        room = self.position_room(exchange, symbol, ask) if leg.is_futures and self.position_room else None
        if room is not None:
            buy, sell = min(buy, room[0]), min(sell, room[1])
        return LegCaps(buy=buy, sell=sell, buy_quote=quote)

    def check_skew(self) -> list[SkewAlert]:
        """Current skews (each alerted once until it clears): of each asset a scanner leg trades, the
        share of each market among the markets of its kind (spot, or futures margin) trading it.

        A market whose balances are known holds none of an asset it trades when its venue does not
        list it: that is the deepest skew, not none. Assets no leg trades are left out.
        """
        traded: dict[ExchangeName, set[str]] = {}
        if self.pipeline is not None:
            for plan in self.pipeline.plans.values():
                for leg in plan.legs:
                    instrument = leg.instrument
                    assets = traded.setdefault(leg.exchange, set())
                    assets.add(instrument.quote)
                    if not leg.is_futures:
                        assets.add(instrument.base)
        totals: dict[tuple[str, bool], list[tuple[ExchangeName, Decimal]]] = {}
        for exchange, held in self._balances.items():
            for asset in traded.get(exchange, ()):
                balance = held.get(asset)
                holding = (exchange, ZERO if balance is None else balance.free)
                totals.setdefault((asset, exchange.is_futures), []).append(holding)
        alerts = []
        active: set[tuple[str, ExchangeName]] = set()
        for (asset, _), holdings in totals.items():
            total = sum((free for _, free in holdings), ZERO)
            if len(holdings) < 2 or total <= 0:
                continue
            for exchange, free in holdings:
                share = free / total
                key = (asset, exchange)
                if share < self.skew_threshold:
                    alert = SkewAlert(asset=asset, exchange=exchange, free=free, total=total, share=share)
                    alerts.append(alert)
                    active.add(key)
                    if key not in self._alerted:
                        log.warning(alert.message())
                        if self.on_alert is not None:
                            try:
                                self.on_alert(alert)
                            except Exception:
                                # Logged above; a failing sink must not reach the push or read that got here.
                                log.exception("skew alert callback failed")
                elif key in self._alerted and share < self.skew_threshold * SKEW_CLEARS_AT:
                    # Cleared only well clear of the threshold: a share trading back and forth
                    # across it alerts once, not once per trade.
                    active.add(key)
        self._alerted = active
        return alerts


async def _read_all(
    reads: Sequence[Coroutine[Any, Any, Mapping[str, Balance]]],
) -> list[Mapping[str, Balance] | Exception]:
    """The answers of ``reads``, run concurrently, with an exception in place of a failed one.

    As ``gather(..., return_exceptions=True)``, but the first read runs in this task: one
    task fewer per refresh, and the refresh after every execution is on the trading path.
    Cancelled, the reads still running are cancelled with it.
    """
    others = [asyncio.ensure_future(read) for read in reads[1:]]
    results: list[Mapping[str, Balance] | Exception] = []
    try:
        for read in (*reads[:1], *others):
            try:
                results.append(await read)
            except Exception as exc:
                results.append(exc)
    except BaseException:
        for task in others:
            task.cancel()
        raise
    return results
