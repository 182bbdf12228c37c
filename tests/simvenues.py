"""Both simulated venues on 127.0.0.1 with a synthetic market running, for connector tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from decimal import Decimal as D
from typing import Any

import msgspec
from sim.simdata import perp, spot

from arb.exchanges.connector import ConnectorSettings, ExchangeConnector
from arb.exchanges.factory import registered
from arb.exchanges.rest import RateLimiter, RestSettings
from arb.instruments import Instrument
from arb.secrets import ApiCredentials, Secret
from arb.sim.faults import FaultPlan
from arb.sim.http import DEFAULT_FUNDING_INTERVAL_S
from arb.sim.market import MarketSpec, SyntheticConfig, SyntheticMarket
from arb.sim.server import SimulatedVenue, SyntheticFeed, VenueUrls
from arb.types import ExchangeName

API_KEY = "sim-key-1"
CREDENTIALS = ApiCredentials(Secret(API_KEY), Secret("sim-secret-1"))
SPOT, PERP = "BTC/USDT", "BTC/USDT:USDT"
SYMBOL = {
    ExchangeName.GATEIO: SPOT,
    ExchangeName.GATEIO_FUTURES: PERP,
    ExchangeName.MEXC: SPOT,
    ExchangeName.MEXC_FUTURES: PERP,
}


def instruments() -> list[Instrument]:
    """BTC/USDT spot and perpetual on both venues, as each venue spells them and charges fees."""
    return [
        spot(ExchangeName.GATEIO),
        perp(ExchangeName.GATEIO_FUTURES),
        spot(ExchangeName.MEXC, venue_symbol="BTCUSDT", fees_in_quote=True),
        perp(ExchangeName.MEXC_FUTURES),
    ]


class SimVenues(msgspec.Struct, kw_only=True):
    """The running venues, their fault plan and the feed."""

    venues: dict[str, SimulatedVenue]
    faults: FaultPlan
    feed: SyntheticFeed

    def urls(self) -> dict[str, VenueUrls]:
        """Base URLs by venue name, as the factory's ``sim_urls``."""
        return {name: venue.urls() for name, venue in self.venues.items()}

    def connector(
        self, market: ExchangeName, *, credentials: ApiCredentials | None = CREDENTIALS, rest_timeout_s: float = 2.0
    ) -> ExchangeConnector:
        """A connector of ``market`` pointed at its simulated venue."""
        urls = self.venues[market.venue].urls()
        rest, ws = (urls.futures_rest_url, urls.futures_ws_url) if market.is_futures else (urls.rest_url, urls.ws_url)
        settings = ConnectorSettings(rest=RestSettings(timeout_s=rest_timeout_s), poll_interval_s=0.02)
        return registered()[market](credentials=credentials, rest_url=rest, ws_url=ws, settings=settings)


@asynccontextmanager
async def simulated_venues(
    updates_per_second: int = 200, *, moving: bool = True, funding_interval_s: int = DEFAULT_FUNDING_INTERVAL_S
) -> AsyncIterator[SimVenues]:
    """Gate.io and MEXC simulated, funded for ``CREDENTIALS``, books moving (unless not ``moving``); stopped on exit."""
    faults = FaultPlan(seed=3)
    listed = instruments()
    venues = {
        name: SimulatedVenue(
            name, listed, faults=faults, credentials={API_KEY: CREDENTIALS}, funding_interval_s=funding_interval_s
        )
        for name in ("gateio", "mexc")
    }
    for venue in venues.values():
        await venue.start()
    engines = [e for venue in venues.values() for ex in venue.exchanges.values() for e in ex.engines.values()]
    for venue in venues.values():
        for exchange in venue.exchanges.values():
            exchange.deposit(API_KEY, "USDT", "100000")
            exchange.deposit(API_KEY, "BTC", "10")
    config = SyntheticConfig(
        seed=1,
        start_price=D("60000"),
        markets=tuple(
            MarketSpec(exchange=e.exchange, symbol=e.symbol, updates_per_second=updates_per_second) for e in engines
        ),
    )
    feed = SyntheticFeed([SyntheticMarket(config, engines, 0)], venues.values())
    feed.advance()  # every book has levels from the start
    task = asyncio.get_running_loop().create_task(feed.run()) if moving else None
    try:
        yield SimVenues(venues=venues, faults=faults, feed=feed)
    finally:
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        for venue in venues.values():
            await venue.stop()


class SimVenuesOnLoop:
    """Simulated venues (book moves off) on an event loop of their own, for synchronous callers
    such as benchmarks; ``connectors`` are closed with the venues by ``close``."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._stack = AsyncExitStack()
        self.sim: SimVenues = self.loop.run_until_complete(self._stack.enter_async_context(simulated_venues(moving=False)))
        self.connectors: dict[Any, ExchangeConnector] = {}

    @staticmethod
    def refill_order_budget(connector: ExchangeConnector) -> None:
        """A fresh client-side rate limiter, so every round finds a full order budget."""
        rest = connector.rest
        rest.limiter = RateLimiter(rest.venue.name, rest.venue.rate_limits)

    def close(self) -> None:
        for connector in self.connectors.values():
            self.loop.run_until_complete(connector.close())
        self.loop.run_until_complete(self._stack.aclose())
        self.loop.close()
