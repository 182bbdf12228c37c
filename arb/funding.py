"""Perpetual funding rates and the funding a spot/futures hedge expects over its holding horizon.

A USDT perpetual settles funding every ``interval_s``: at each settlement a position pays
``rate x position value`` when it is long and the rate is positive (longs pay shorts), and
receives it when short; a negative rate reverses both. A long-spot/short-futures hedge
therefore RECEIVES ``rate x notional`` per settlement (and pays when the rate is negative);
a short-spot/long-futures hedge the opposite.

``FundingBook`` holds the latest rate of every perpetual the engine hedges on, refreshed
periodically from the venues (``run``). ``expected`` is exact Decimal arithmetic:
``rate x notional x settlements``, where ``settlements`` counts the settlement times in
``(now, now + horizon]`` from the venue's next settlement time and interval. A rate
older than ``max_age_ms``, or none at all, gives None: the caller then refuses the
hedge (nothing is assumed about funding it cannot see), and a warning names the market.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Protocol

import msgspec

from arb_core.freshness import monotonic_ns

from .types import ExchangeName, OrderSide

log = logging.getLogger(__name__)

ZERO = Decimal(0)


class FundingRate(msgspec.Struct, frozen=True, kw_only=True):
    """The current funding rate of one perpetual, as its venue announces it."""

    exchange: ExchangeName
    symbol: str  # unified perpetual symbol, BTC/USDT:USDT
    rate: Decimal  # fraction of the position value per settlement; > 0: longs pay shorts
    interval_s: int  # time between settlements
    next_settle_ms: int  # wall-clock ms of the next settlement

    def __post_init__(self) -> None:
        if self.interval_s <= 0:
            raise ValueError(f"{self.exchange.value} {self.symbol}: funding interval {self.interval_s} s must be > 0")
        if not self.rate.is_finite():
            raise ValueError(f"{self.exchange.value} {self.symbol}: funding rate {self.rate} is not finite")

    def settlements_within(self, now_ms: int, horizon_ms: int) -> int:
        """How many settlements fall in ``(now_ms, now_ms + horizon_ms]``.

        A next settlement time already past (the rate was read before it) rolls forward by
        whole intervals.
        """
        if horizon_ms <= 0:
            return 0
        interval_ms = self.interval_s * 1000
        next_ms = self.next_settle_ms
        if next_ms <= now_ms:
            next_ms += ((now_ms - next_ms) // interval_ms + 1) * interval_ms
        end_ms = now_ms + horizon_ms
        if next_ms > end_ms:
            return 0
        return 1 + (end_ms - next_ms) // interval_ms


def funding_income(rate: Decimal, futures_side: OrderSide, notional: Decimal, settlements: int) -> Decimal:
    """Funding a futures position opened by ``futures_side`` receives (> 0) or pays (< 0), in quote.

    A short (opened by selling) receives a positive rate; a long pays it.
    """
    paid_by_longs = rate * notional * settlements
    return paid_by_longs if futures_side is OrderSide.SELL else -paid_by_longs


class FundingSource(Protocol):
    """A perpetual market that reports funding rates (``ExchangeConnector.funding_rates``)."""

    async def funding_rates(self, symbols: Sequence[str]) -> list[FundingRate]:
        """The current rates of ``symbols`` (unified perpetual symbols)."""


class FundingBook:
    """Latest funding rate per perpetual, and the funding a hedge expects over ``horizon_s``.

    ``max_age_ms``: a rate received longer ago than this is stale and gives no estimate.
    """

    def __init__(
        self,
        *,
        horizon_s: int,
        max_age_ms: int,
        clock: Callable[[], int] = monotonic_ns,
        wall_clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        if horizon_s < 0:
            raise ValueError(f"horizon_s={horizon_s}: must be 0 or more")
        if max_age_ms < 1:
            raise ValueError(f"max_age_ms={max_age_ms}: must be at least 1")
        self.horizon_s = horizon_s
        self.max_age_ns = max_age_ms * 1_000_000
        self.clock = clock
        self.wall_clock_ms = wall_clock_ms
        self._rates: dict[tuple[ExchangeName, str], tuple[FundingRate, int]] = {}
        self._warned: set[tuple[ExchangeName, str]] = set()
        self.refused = 0  # estimates asked for with no fresh rate

    def update(self, rates: Iterable[FundingRate]) -> None:
        """Store fresh rates (received now)."""
        now = self.clock()
        for rate in rates:
            key = (rate.exchange, rate.symbol)
            if key in self._warned:
                self._warned.discard(key)
                log.info("funding: %s %s rate %s available again", rate.exchange.value, rate.symbol, rate.rate)
            self._rates[key] = (rate, now)

    def rate(self, exchange: ExchangeName, symbol: str) -> FundingRate | None:
        """The fresh rate of ``symbol`` on ``exchange``; None when missing or stale."""
        entry = self._rates.get((exchange, symbol))
        if entry is None or self.clock() - entry[1] > self.max_age_ns:
            return None
        return entry[0]

    def rates(self) -> list[FundingRate]:
        """Every stored rate, fresh or not."""
        return [rate for rate, _ in self._rates.values()]

    def expected(
        self, exchange: ExchangeName, symbol: str, futures_side: OrderSide, notional: Decimal, *, counted: bool = True
    ) -> Decimal | None:
        """Funding a hedge whose futures leg is ``futures_side`` for ``notional`` quote expects over the
        horizon (> 0 received, < 0 paid); None when no fresh rate is known, counted in ``refused`` and
        warned about unless not ``counted`` (a rehearsal's reading)."""
        funding = self.rate(exchange, symbol)
        if funding is None:
            if counted:
                self.refused += 1
                self._warn(exchange, symbol)
            return None
        return self._over_horizon(funding, futures_side, notional)

    def held(self, exchange: ExchangeName, symbol: str, futures_side: OrderSide, notional: Decimal) -> Decimal:
        """Funding an open futures position of ``futures_side`` for ``notional`` quote expects over the
        horizon (> 0 received), as ``expected``; 0 when no fresh rate is known (nothing is counted,
        nor warned about: a close is not held back for want of a rate)."""
        funding = self.rate(exchange, symbol)
        return ZERO if funding is None else self._over_horizon(funding, futures_side, notional)

    def _over_horizon(self, funding: FundingRate, futures_side: OrderSide, notional: Decimal) -> Decimal:
        settlements = funding.settlements_within(self.wall_clock_ms(), self.horizon_s * 1000)
        return funding_income(funding.rate, futures_side, notional, settlements)

    def _warn(self, exchange: ExchangeName, symbol: str) -> None:
        key = (exchange, symbol)
        if key in self._warned:
            return
        self._warned.add(key)
        entry = self._rates.get(key)
        if entry is None:
            why = "no funding rate read yet"
        else:
            age_ms, limit_ms = (self.clock() - entry[1]) // 1_000_000, self.max_age_ns // 1_000_000
            why = f"funding rate stale (read {age_ms} ms ago, limit {limit_ms} ms)"
        log.warning(
            "funding: %s %s: %s; spot-futures hedges on it are refused until it refreshes", exchange.value, symbol, why
        )

    async def refresh(
        self, sources: Mapping[ExchangeName, FundingSource], symbols: Mapping[ExchangeName, Sequence[str]]
    ) -> int:
        """Read the rates of ``symbols`` from every source once; returns how many were stored.

        A source that fails is logged and skipped: its rates age until the next refresh.
        """
        stored = 0
        for market, source in sources.items():
            wanted = symbols.get(market, ())
            if not wanted:
                continue
            try:
                rates = await source.funding_rates(wanted)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("funding: %s: reading funding rates failed: %s", market.value, exc)
                continue
            missing = set(wanted) - {r.symbol for r in rates}
            if missing:
                log.warning("funding: %s: no funding rate reported for %s", market.value, ", ".join(sorted(missing)))
            self.update(rates)
            stored += len(rates)
        return stored

    async def run(
        self, sources: Mapping[ExchangeName, FundingSource], symbols: Mapping[ExchangeName, Sequence[str]],
        interval_s: float,
    ) -> None:
        """Refresh every ``interval_s`` until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            await self.refresh(sources, symbols)


__all__ = ["FundingBook", "FundingRate", "FundingSource", "funding_income"]
