"""All four simulated markets (MEXC and Gate.io, spot and USDT perpetuals) from one config.

``SimCluster`` builds a ``SimulatedVenue`` per exchange with realistic default instruments,
funds one user on every market, and drives the books with a seeded ``SyntheticFeed`` (one
shared price walk per base asset, so the venues stay correlated) or with a ``ReplayFeed``
of recorded frames. ``urls()`` gives the ``ExchangeConfig`` overrides per venue.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from types import TracebackType

import msgspec

from ..config import is_loopback
from ..exchanges.mexc import constants as mexc
from ..instruments import Instrument, decimals_of
from ..secrets import ApiCredentials, Secret
from ..types import ExchangeName
from .faults import FaultPlan
from .http import DEFAULT_FUNDING_INTERVAL_S
from .market import Dislocation, MarketSpec, SyntheticConfig, SyntheticMarket
from .server import ReplayFeed, SimulatedVenue, SyntheticFeed, VenuePorts, VenueUrls

VENUES = ("gateio", "mexc")
# The random one-venue dislocations of a dry run's market and of `arb sim`'s: wide enough to pay
# both taker fees (Gate spot 0.2 %, MEXC spot 0.05 %) and the default 10 bps margin, so an engine
# finds opportunities within seconds.
DISLOCATIONS_PER_MINUTE = 30
DISLOCATION_BPS = 60
DISLOCATION_NS = 1_500_000_000


class _Asset(msgspec.Struct, frozen=True):
    """Per base asset: start price and typical size at the best level (base units)."""

    start_price: Decimal
    top_size: Decimal


ASSETS: Mapping[str, _Asset] = {
    "BTC": _Asset(Decimal("60000"), Decimal("0.5")),
    "ETH": _Asset(Decimal("3000"), Decimal("8")),
}


def _instrument(
    exchange: ExchangeName, base: str, tick: str, lot: str, *, contract: str = "1", taker: str, maker: str,
    min_notional: str = "0", fees_in_quote: bool = False,
) -> Instrument:
    venue_symbol = f"{base}USDT" if exchange is ExchangeName.MEXC else f"{base}_USDT"
    tick_size, lot_size = Decimal(tick), Decimal(lot)
    return Instrument(
        exchange=exchange,
        symbol=f"{base}/USDT:USDT" if exchange.is_futures else f"{base}/USDT",
        venue_symbol=venue_symbol,
        base=base,
        quote="USDT",
        tick_size=tick_size,
        lot_size=lot_size,
        min_size=lot_size,
        min_notional=Decimal(min_notional),
        contract_size=Decimal(contract),
        taker_fee=Decimal(taker),
        maker_fee=Decimal(maker),
        price_decimals=decimals_of(tick_size),
        size_decimals=decimals_of(lot_size),
        fees_in_quote=fees_in_quote,
    )


def default_instruments(bases: Iterable[str] = ("BTC", "ETH")) -> list[Instrument]:
    """BTC/USDT and ETH/USDT on the four markets, with the venues' published grids and base fees.

    Gate spot: BTC tick 0.1 / 0.000001 BTC, ETH 0.01 / 0.0001 ETH, 3 USDT minimum, 0.2 %.
    Gate perpetual: BTC tick 0.1 x 0.0001 BTC contracts, ETH 0.01 x 0.01 ETH; taker 0.05 %, maker 0.02 %.
    MEXC spot: BTC 0.01 / 0.000001, ETH 0.01 / 0.00001, 1 USDT minimum; taker 0.05 %, maker 0, in quote.
    MEXC perpetual: BTC 0.1 x 0.0001 BTC, ETH 0.01 x 0.01 ETH; taker 0.02 %, maker 0.
    """
    grids = {
        "BTC": (("0.1", "0.000001"), ("0.1", "0.0001"), ("0.01", "0.000001"), ("0.1", "0.0001")),
        "ETH": (("0.01", "0.0001"), ("0.01", "0.01"), ("0.01", "0.00001"), ("0.01", "0.01")),
    }
    instruments: list[Instrument] = []
    for base in bases:
        if base not in grids:
            raise ValueError(f"simulator: no default instrument for {base!r}; known: {sorted(grids)}")
        gate_spot, gate_perp, mexc_spot, mexc_perp = grids[base]
        instruments += [
            _instrument(ExchangeName.GATEIO, base, *gate_spot, taker="0.002", maker="0.002", min_notional="3"),
            _instrument(ExchangeName.GATEIO_FUTURES, base, gate_perp[0], "1", contract=gate_perp[1],
                        taker="0.0005", maker="0.0002"),
            _instrument(ExchangeName.MEXC, base, *mexc_spot, taker="0.0005", maker="0", min_notional="1",
                        fees_in_quote=mexc.SPOT_FEES_IN_QUOTE),
            _instrument(ExchangeName.MEXC_FUTURES, base, mexc_perp[0], "1", contract=mexc_perp[1],
                        taker="0.0002", maker="0"),
        ]
    return instruments


class SimConfig(msgspec.Struct, frozen=True, kw_only=True):
    """What the cluster serves and how its books move."""

    seed: int = 1
    symbols: tuple[str, ...] = ("BTC/USDT", "ETH/USDT")  # spot names; each is also listed as a perpetual
    venues: tuple[str, ...] = VENUES
    updates_per_second: int = 100  # per market and symbol
    depth_levels: int = 50
    spread_ticks: int = 2
    noise_ticks: int = 1
    volatility_ppm: int = 2  # per 1 ms step of the shared walk
    api_key: str = "sim-key"  # the funded user
    api_secret: str = "sim-secret"
    deposits: Mapping[str, Decimal] = msgspec.field(
        default_factory=lambda: {"USDT": Decimal(1_000_000), "BTC": Decimal(10), "ETH": Decimal(200)}
    )
    port_base: int | None = None  # venue i listens on port_base + 3*i + (0 rest, 1 spot ws, 2 futures ws)
    replay: tuple[Path, ...] = ()  # recorded files; replaces the synthetic market
    replay_speed: Decimal | None = Decimal(1)
    matching_delay_ms: float = 0  # how long each venue holds an order before matching it (``SimulatedVenue``)
    funding_interval_s: int = DEFAULT_FUNDING_INTERVAL_S  # perpetuals settle funding at each multiple of it
    # Random one-venue price dislocations of the synthetic market, per minute and base asset (0:
    # none), drawn from the seed; ``dislocations`` adds scheduled ones (on the simulator's clock).
    dislocations_per_minute: int = 0
    dislocation_bps: int = DISLOCATION_BPS
    dislocation_ns: int = DISLOCATION_NS
    dislocations: tuple[Dislocation, ...] = ()


def market_specs(config: SimConfig, instruments: Iterable[Instrument]) -> dict[str, list[MarketSpec]]:
    """The generator's ``MarketSpec`` of each instrument, grouped by base asset."""
    specs: dict[str, list[MarketSpec]] = {}
    for instrument in instruments:
        asset = ASSETS[instrument.base]
        top_lots = max(1, int(asset.top_size / instrument.base_lot))
        specs.setdefault(instrument.base, []).append(
            MarketSpec(
                exchange=instrument.exchange,
                symbol=instrument.symbol,
                spread_ticks=config.spread_ticks,
                depth_levels=config.depth_levels,
                base_size_lots=top_lots,
                size_slope_lots=max(1, top_lots // 10),
                noise_ticks=config.noise_ticks,
                updates_per_second=config.updates_per_second,
                near_top_levels=max(1, min(10, config.depth_levels // 4)),
            )
        )
    return specs


class SimCluster:
    """The simulated venues of ``config``, started and stopped together (async context manager)."""

    def __init__(self, config: SimConfig | None = None, *, faults: FaultPlan | None = None,
                 instruments: Iterable[Instrument] | None = None) -> None:
        self.config = config = config or SimConfig()
        for venue in config.venues:
            if venue not in VENUES:
                raise ValueError(f"simulator: venue {venue!r} is not one of {VENUES}")
        if config.port_base is not None and not 0 < config.port_base <= 65536 - 3 * len(config.venues):
            raise ValueError(
                f"simulator: port base {config.port_base}: {len(config.venues)} venues listen on 3 ports each "
                f"from it, so it must be from 1 to {65536 - 3 * len(config.venues)}"
            )
        bases = []
        for symbol in config.symbols:
            base, _, quote = symbol.partition("/")
            if quote != "USDT" or not base:
                raise ValueError(f"simulator: symbol {symbol!r} is not BASE/USDT")
            bases.append(base)
        self.instruments = list(instruments) if instruments is not None else default_instruments(bases)
        self.faults = faults or FaultPlan(config.seed)
        credentials = {config.api_key: ApiCredentials(Secret(config.api_key), Secret(config.api_secret))}
        self.replay = ReplayFeed(config.replay, config.replay_speed) if config.replay else None
        listed = self.replay.symbols() if self.replay is not None else None
        self.venues: dict[str, SimulatedVenue] = {}
        for index, venue in enumerate(config.venues):
            ports = None
            if config.port_base is not None:
                base_port = config.port_base + 3 * index
                ports = VenuePorts(rest=base_port, spot_ws=base_port + 1, futures_ws=base_port + 2)
            routes = None
            if self.replay is not None:
                routes = self.replay.rest_routes(venue)
            self.venues[venue] = SimulatedVenue(
                venue, self.instruments, faults=self.faults, credentials=credentials, ports=ports, listed=listed,
                routes=routes, matching_delay_ms=config.matching_delay_ms, funding_interval_s=config.funding_interval_s,
            )
        for sim_venue in self.venues.values():
            for exchange in sim_venue.exchanges.values():
                for asset, amount in config.deposits.items():
                    exchange.deposit(config.api_key, asset, amount)
        self.feed: SyntheticFeed | ReplayFeed
        if self.replay is not None:
            self.replay.attach(self.venues.values())
            self.feed = self.replay
        else:
            self.feed = SyntheticFeed(self._synthetic_markets(), self.venues.values())
        self._task: asyncio.Task[None] | None = None

    def _synthetic_markets(self) -> list[SyntheticMarket]:
        served = [i for i in self.instruments if i.exchange.venue in self.venues]
        engines = {
            (name, symbol): engine
            for venue in self.venues.values()
            for name, exchange in venue.exchanges.items()
            for symbol, engine in exchange.engines.items()
        }
        markets = []
        config = self.config
        for index, (base, specs) in enumerate(sorted(market_specs(config, served).items())):
            quoted = {(s.exchange, s.symbol) for s in specs}
            synthetic = SyntheticConfig(
                seed=config.seed * 1_000 + index, start_price=ASSETS[base].start_price, markets=tuple(specs),
                volatility_ppm=config.volatility_ppm,
                dislocations=tuple(d for d in config.dislocations if (d.exchange, d.symbol) in quoted),
                random_dislocations_per_minute=config.dislocations_per_minute,
                random_dislocation_bps=config.dislocation_bps,
                random_dislocation_ns=config.dislocation_ns,
            )
            markets.append(SyntheticMarket(synthetic, [engines[(s.exchange, s.symbol)] for s in specs], 0))
        return markets

    async def start(self) -> None:
        """Open every server and start the feed."""
        for venue in self.venues.values():
            await venue.start()
        self._task = asyncio.get_running_loop().create_task(self.feed.run(), name="sim feed")

    async def stop(self) -> None:
        """Stop the feed and close every server."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for venue in self.venues.values():
            await venue.stop()

    async def __aenter__(self) -> SimCluster:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def urls(self) -> dict[str, VenueUrls]:
        """Per venue name, the URLs to put in its ``ExchangeConfig`` (``VenueUrls.overrides()``)."""
        return {name: venue.urls() for name, venue in self.venues.items()}

    def endpoints(self) -> SimEndpoints:
        """The URLs and the funded user's key, for an engine in another process (``arb run --sim-urls``)."""
        return SimEndpoints(venues=self.urls(), api_key=self.config.api_key, api_secret=self.config.api_secret)

    def url_lines(self) -> list[str]:
        """One printable line per endpoint: ``gateio spot ws ws://127.0.0.1:PORT/ws/v4/``."""
        lines = []
        for name, urls in self.urls().items():
            lines += [
                f"{name} spot rest {urls.rest_url}",
                f"{name} spot ws {urls.ws_url}",
                f"{name} futures rest {urls.futures_rest_url}",
                f"{name} futures ws {urls.futures_ws_url}",
            ]
        return lines


class SimEndpoints(msgspec.Struct, frozen=True, kw_only=True):
    """Where running simulated venues listen and which key they fund, as a JSON file.

    ``python -m arb sim --urls-out FILE`` writes it; ``python -m arb run --sim-urls FILE``
    attaches a dry run to those venues instead of starting its own, so the venues outlive
    the engine process (crash and restart tests).
    """

    venues: dict[str, VenueUrls]
    api_key: str
    api_secret: str

    def __post_init__(self) -> None:
        # A dry run signs its requests with this file's key: to this machine's simulated venues
        # only (they listen on 127.0.0.1), never to a host that could be a real venue.
        for name, urls in self.venues.items():
            for field, url in urls.overrides().items():
                if not is_loopback(url):
                    raise ValueError(
                        f"{name} {field} {url!r}: not a loopback address (127.0.0.1, ::1, localhost); the "
                        "simulated venues run on this machine, and a dry run sends nothing to another host"
                    )

    def write(self, path: str | Path) -> None:
        """Write the file atomically (a reader never sees half of it)."""
        target = Path(path)
        partial = target.with_name(f".{target.name}.partial")
        partial.write_bytes(msgspec.json.encode(self))
        partial.replace(target)

    @classmethod
    def read(cls, path: str | Path) -> SimEndpoints:
        """Read a file written by ``write``; ValueError naming the file when it is missing or malformed."""
        try:
            return msgspec.json.decode(Path(path).read_bytes(), type=cls)
        except (OSError, msgspec.DecodeError) as exc:
            raise ValueError(f"simulator endpoints {path}: {exc}") from None

