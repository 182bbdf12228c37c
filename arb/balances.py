"""Balances per market and asset, reconciled by REST, feeding the scanner's size caps.

The connectors' private streams report orders, not balances, so balances come from the
signed balance call: every ``balance_refresh_interval_ms`` and right after each
execution on the two markets it touched. From the free balances the scanner learns how
much each leg can trade: buy up to free quote / ask (fee included), sell up to the free
base on spot; a futures leg can open either way up to its free margin at 1x.

Skew: arbitrage moves inventory from one venue to the other. When a venue's share of an
asset falls below ``skew_threshold`` of that asset's total, selling it there (or buying
with it, for the quote) will soon stop; an alert says so once per episode.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Protocol

import msgspec

from .exchanges.models import Balance
from .pipeline import ScannerPipeline
from .types import ExchangeName

log = logging.getLogger(__name__)

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
    share: Decimal  # free / total over the markets holding the asset

    def message(self) -> str:
        """A one-line alert text."""
        return (
            f"inventory skew: {self.exchange.value} holds {self.free} of {self.total} {self.asset} "
            f"({self.share * 100:.1f} %); trades that spend {self.asset} there will stop soon"
        )


class BalanceMonitor:
    """Free balances by market and asset, refreshed by REST; pushes leg caps into the scanner."""

    def __init__(
        self,
        sources: Mapping[ExchangeName, BalanceSource],
        *,
        refresh_interval_ms: int = 5_000,
        skew_threshold: Decimal = Decimal("0.1"),
        on_alert: Callable[[SkewAlert], None] | None = None,
    ) -> None:
        if refresh_interval_ms < 1:
            raise ValueError(f"refresh_interval_ms={refresh_interval_ms}: must be at least 1")
        if not ZERO <= skew_threshold < 1:
            raise ValueError(f"skew_threshold={skew_threshold}: must be in [0, 1)")
        self.sources = dict(sources)
        self.refresh_interval_s = refresh_interval_ms / 1000
        self.skew_threshold = skew_threshold
        self.on_alert = on_alert
        self._balances: dict[ExchangeName, dict[str, Balance]] = {}
        self._alerted: set[tuple[str, ExchangeName]] = set()
        self.refreshes = 0
        self.errors = 0
        self.pipeline: ScannerPipeline | None = None

    def free(self, exchange: ExchangeName, asset: str) -> Decimal:
        """Free balance of ``asset`` on ``exchange`` (0 when unknown)."""
        balance = self._balances.get(exchange, {}).get(asset)
        return balance.free if balance is not None else ZERO

    def snapshot(self) -> dict[ExchangeName, dict[str, Balance]]:
        """The latest balances by market and asset."""
        return {exchange: dict(assets) for exchange, assets in self._balances.items()}

    async def refresh(self, exchanges: Iterable[ExchangeName] | None = None) -> None:
        """Read the balances of ``exchanges`` (default: all) concurrently, then update caps and alerts.

        A failed read keeps that market's previous balances and is logged.
        """
        names = [e for e in (self.sources if exchanges is None else exchanges) if e in self.sources]
        results = await asyncio.gather(*(self.sources[e].balances() for e in names), return_exceptions=True)
        for exchange, result in zip(names, results):
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, BaseException):
                self.errors += 1
                log.warning("%s: balance refresh failed: %s", exchange.value, result)
                continue
            self._balances[exchange] = dict(result)
        self.refreshes += 1
        self.update_caps()
        self.check_skew()

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

    def update_caps(self) -> None:
        """Set every scanner leg's buy and sell caps from the free balances and the current best prices."""
        pipeline = self.pipeline
        if pipeline is None:
            return
        for plan in pipeline.plans.values():
            for leg in plan.legs:
                instrument = leg.instrument
                quote = self.free(leg.exchange, instrument.quote)
                ask = leg.book.best_ask_price() if leg.book.ask_count else None
                buy = ZERO if ask is None else quote / (leg.book_price(ask) * (1 + instrument.taker_fee))
                if instrument.is_futures:
                    sell = buy
                else:
                    sell = self.free(leg.exchange, instrument.base)
                pipeline.set_leg_limits(plan.symbol_id, leg.leg_id, buy, sell)

    def check_skew(self) -> list[SkewAlert]:
        """Current skews (each alerted once until it clears)."""
        totals: dict[str, list[tuple[ExchangeName, Decimal]]] = {}
        for exchange, assets in self._balances.items():
            for asset, balance in assets.items():
                totals.setdefault(asset, []).append((exchange, balance.free))
        alerts = []
        active: set[tuple[str, ExchangeName]] = set()
        for asset, holdings in totals.items():
            total = sum((free for _, free in holdings), ZERO)
            if len(holdings) < 2 or total <= 0:
                continue
            for exchange, free in holdings:
                share = free / total
                if share < self.skew_threshold:
                    alert = SkewAlert(asset=asset, exchange=exchange, free=free, total=total, share=share)
                    alerts.append(alert)
                    key = (asset, exchange)
                    active.add(key)
                    if key not in self._alerted:
                        log.warning(alert.message())
                        if self.on_alert is not None:
                            self.on_alert(alert)
        self._alerted = active
        return alerts

