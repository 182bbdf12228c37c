"""``ExchangeFactory``: market name -> connector, from a registry that venue packages fill.

Each venue's ``arb/exchanges/<venue>/connector.py`` registers its connector classes by
``ExchangeName`` when imported, and the factory imports every venue folder's connector
module, so a new venue is added as a new folder without touching this file. The factory picks the endpoints per run mode: a dry run points every connector at
the simulated venues (``sim_urls`` or the configured overrides) and never at a real host;
a live run uses the venue's own URLs (or the configured overrides) and requires API keys
for every market that trades; paper trading builds public-data connectors without keys
(the venue's URLs, the configured overrides or ``sim_urls``) and fills orders with
``arb.exchanges.paper.PaperExchange``.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import pkgutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

import msgspec

from ..config import ConfigurationManager, is_loopback
from ..errors import ConfigurationError
from ..instruments import InstrumentError
from ..secrets import VENUE_ENV_PREFIX, ApiCredentials
from ..types import ArbitrageConfig, ExchangeConfig, ExchangeName
from .. import exchanges as _exchanges
from .connector import ExchangeConnector

log = logging.getLogger(__name__)

ConnectorClass = type[ExchangeConnector]
CredentialsLookup = Callable[[str], ApiCredentials | None]

_REGISTRY: dict[ExchangeName, ConnectorClass] = {}


def register(name: ExchangeName, connector: ConnectorClass) -> None:
    """Register the connector class of market ``name`` (a venue package does this on import)."""
    if connector.binding.exchange is not name:
        raise ValueError(f"connector {connector.__name__} serves {connector.binding.exchange.value}, not {name.value}")
    existing = _REGISTRY.get(name)
    if existing is not None and existing is not connector:
        raise ValueError(f"market {name.value} already has connector {existing.__name__}")
    _REGISTRY[name] = connector


def registered() -> Mapping[ExchangeName, ConnectorClass]:
    """The registered connector classes by market, after importing every venue's ``connector`` module."""
    for venue in pkgutil.iter_modules(_exchanges.__path__):
        if venue.ispkg:
            module = f"{_exchanges.__name__}.{venue.name}.connector"
            if importlib.util.find_spec(module) is not None:
                importlib.import_module(module)
    return dict(_REGISTRY)


class EndpointOverrides(Protocol):
    """Base URLs of one venue's markets (``arb.sim.server.VenueUrls`` and ``ExchangeConfig`` both fit)."""

    @property
    def rest_url(self) -> str | None: ...
    @property
    def ws_url(self) -> str | None: ...
    @property
    def futures_rest_url(self) -> str | None: ...
    @property
    def futures_ws_url(self) -> str | None: ...


class ExchangeFactory:
    """Builds, tracks and closes the connectors of one engine run.

    ``config``: a loaded ``ConfigurationManager`` or an ``ArbitrageConfig``.
    ``credentials``: a lookup by venue (``mexc``, ``gateio``), a mapping, or None to use the
    ``ConfigurationManager``'s (none with a bare ``ArbitrageConfig``). ``sim_urls``: the
    simulated venues' URLs by venue name, used in dry runs.
    """

    def __init__(
        self,
        config: ConfigurationManager | ArbitrageConfig,
        credentials: CredentialsLookup | Mapping[str, ApiCredentials] | None = None,
        sim_urls: Mapping[str, EndpointOverrides] | None = None,
    ) -> None:
        if isinstance(config, ConfigurationManager):
            self.config = config.config
            lookup: CredentialsLookup = config.get_credentials
        else:
            self.config = config
            lookup = _no_credentials
        if isinstance(credentials, Mapping):
            lookup = credentials.get
        elif credentials is not None:
            lookup = credentials
        self._credentials = lookup
        self.sim_urls: dict[str, EndpointOverrides] = dict(sim_urls or {})
        self._active: dict[ExchangeName, ExchangeConnector] = {}

    def exchange_config(self, name: ExchangeName) -> ExchangeConfig:
        """The configuration of ``name``'s venue (defaults when the venue is not configured)."""
        for exchange in self.config.exchanges:
            if exchange.name == name.venue:
                return exchange
        return ExchangeConfig(name=name.venue)

    def build(self, name: ExchangeName | str, *, dry_run: bool | None = None, paper: bool = False) -> ExchangeConnector:
        """A connector of ``name`` for the run mode (``dry_run`` defaults to the configuration's), not started.

        ``paper``: a public-data connector without keys (paper trading): the configured venue
        URLs, or ``sim_urls`` where given; ``dry_run`` is then ignored.
        """
        market = _market(name)
        dry = self.config.dry_run if dry_run is None else dry_run
        connector_class = registered().get(market)
        if connector_class is None:
            known = ", ".join(sorted(m.value for m in registered()))
            raise ConfigurationError([f"exchange {market.value}: no connector registered (registered: {known})"])
        config = self.exchange_config(market)
        if paper:
            if market.venue in self.sim_urls:
                config = self._simulated(market, config)
            return connector_class.from_config(config)
        credentials = self._credentials(market.venue)
        if dry:
            config = self._simulated(market, config)
        elif credentials is None and connector_class.binding.trading is not None:
            prefix = VENUE_ENV_PREFIX.get(market.venue, market.venue.upper())
            raise ConfigurationError(
                [
                    f"exchange {market.value}: live trading needs API keys; set {prefix}_API_KEY and "
                    f"{prefix}_SECRET_KEY (or {prefix}_API_KEY_ENCRYPTED and {prefix}_SECRET_KEY_ENCRYPTED "
                    "with ENCRYPTION_KEY)"
                ]
            )
        return connector_class.from_config(config, credentials)

    def _simulated(self, market: ExchangeName, config: ExchangeConfig) -> ExchangeConfig:
        """``config`` pointed at the simulated venue; refuses to fall back on a real host."""
        urls = self.sim_urls.get(market.venue)
        if urls is not None:
            config = msgspec.structs.replace(
                config,
                rest_url=urls.rest_url,
                ws_url=urls.ws_url,
                futures_rest_url=urls.futures_rest_url,
                futures_ws_url=urls.futures_ws_url,
            )
        rest, ws = (
            (config.futures_rest_url, config.futures_ws_url) if market.is_futures else (config.rest_url, config.ws_url)
        )
        prefix = "futures_" if market.is_futures else ""
        if not rest or not ws:
            raise ConfigurationError(
                [
                    f"exchange {market.value}: a dry run needs the simulated venue's URLs (sim_urls or "
                    f"exchanges.{market.venue}.{prefix}rest_url / {prefix}ws_url); refusing to use the real venue"
                ]
            )
        # Its requests are signed (with the simulator's key, or the operator's when the environment
        # has them): to this machine only, where the simulated venues run, never a host that could
        # be a real venue.
        remote = [f"{prefix}{name} {url!r}" for name, url in (("rest_url", rest), ("ws_url", ws)) if not is_loopback(url)]
        if remote:
            raise ConfigurationError(
                [
                    f"exchange {market.value}: a dry run trades only on simulated venues on this machine; "
                    f"{', '.join(remote)} is not a loopback address (127.0.0.1, ::1, localhost)"
                ]
            )
        return config

    async def create_exchange(
        self, name: ExchangeName | str, symbols: Sequence[str] = (), *, dry_run: bool | None = None,
        paper: bool = False,
    ) -> ExchangeConnector:
        """Build the connector of ``name``, load its instruments and check it lists ``symbols``
        (those of ``engine.symbols``: one it does not list is a ConfigurationError naming each).
        One the venue takes only orders reducing a position on (a contract in delisting) is kept
        by the rules it still lists (``ExchangeConnector.keep_closing_only``): positions there can
        be closed, and the engine halts it for anything else.

        Spot-form symbols (``BTC/USDT``) name the linear perpetual on a futures market. Books
        are not started here: the engine starts them with its sink (``start_books``). The
        connector is closed again if loading fails.
        """
        market = _market(name)
        if market in self._active:
            raise ConfigurationError([f"exchange {market.value}: already created; close_all() first"])
        connector = self.build(market, dry_run=dry_run, paper=paper)
        try:
            catalog = await connector.instruments()
            names = market_symbols(market, symbols)
            closing = [name for name in names if name not in catalog and catalog.closing_only(name)]
            if closing:
                catalog = connector.keep_closing_only(closing)
            unlisted = []
            for symbol in names:
                try:
                    catalog.get(symbol)
                except InstrumentError as exc:
                    unlisted.append(f"engine.symbols: {exc}; take it out, or the market out of "
                                    f"exchanges.{market.venue}.markets")
            if unlisted:
                raise ConfigurationError(unlisted)
        except BaseException:
            await connector.close()
            raise
        self._active[market] = connector
        log.info("%s: connector ready (%d instruments), %r", market.value, len(catalog), connector)
        return connector

    async def create_exchanges(
        self, names: Iterable[ExchangeName | str] | None = None, dry_run: bool | None = None, *, paper: bool = False
    ) -> dict[ExchangeName, ExchangeConnector]:
        """Create every market of ``names`` (default: every enabled market) concurrently, for the
        configured symbols; if one fails, the ones created by this call are closed and the first
        error is raised (every market's problems, when each failure is a ConfigurationError)."""
        if names is None:
            markets = [m for exchange in self.config.exchanges if exchange.enabled for m in exchange.exchange_names]
        else:
            markets = [_market(n) for n in names]
        results = await asyncio.gather(
            *(self.create_exchange(m, self.config.symbols, dry_run=dry_run, paper=paper) for m in markets),
            return_exceptions=True,
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            for market, result in zip(markets, results):
                if not isinstance(result, BaseException):
                    await self._active.pop(market).close()
            if all(isinstance(f, ConfigurationError) for f in failures):
                raise ConfigurationError([p for f in failures if isinstance(f, ConfigurationError) for p in f.problems])
            raise failures[0]
        return {m: self._active[m] for m in markets}

    def get_active_exchanges(self) -> dict[ExchangeName, ExchangeConnector]:
        """The connectors created and not yet closed, by market."""
        return dict(self._active)

    async def close_all(self) -> None:
        """Close every active connector (streams, sockets, sessions), concurrently. Each stays active
        until its close has ended: one still closing when the caller gives up (a shutdown step's
        timeout) is still listed (``get_active_exchanges``) and closed again by the next call."""
        await asyncio.gather(*(self._close(market, c) for market, c in list(self._active.items())))

    async def _close(self, market: ExchangeName, connector: ExchangeConnector) -> None:
        try:
            await connector.close()
        except Exception as exc:
            log.error("%s: closing the connector failed: %r", market.value, exc)
        if self._active.get(market) is connector:
            del self._active[market]


def market_symbols(market: ExchangeName, symbols: Iterable[str]) -> list[str]:
    """``symbols`` as ``market`` names them: ``BTC/USDT`` -> ``BTC/USDT:USDT`` on a futures market."""
    if not market.is_futures:
        return list(symbols)
    return [s if ":" in s else f"{s}:{s.rpartition('/')[2]}" for s in symbols]


def _market(name: ExchangeName | str) -> ExchangeName:
    if isinstance(name, ExchangeName):
        return name
    try:
        return ExchangeName(name)
    except ValueError:
        known = ", ".join(m.value for m in ExchangeName)
        raise ConfigurationError([f"exchange {name!r}: unknown market (known: {known})"]) from None


def _no_credentials(venue: str) -> ApiCredentials | None:
    return None
