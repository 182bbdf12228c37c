"""arb.exchanges.factory: the registry, run modes, concurrency and lifecycle of the connectors."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from pathlib import Path

import pytest
from loopback import eventually, run
from simvenues import CREDENTIALS, simulated_venues

from arb import ExchangeFactory
from arb.config import ConfigurationManager
from arb.errors import ConfigurationError
from arb.exchanges import factory as factory_module
from arb.exchanges.factory import market_symbols, register, registered
from arb.exchanges.gateio.connector import GateioFuturesConnector, GateioSpotConnector
from arb.exchanges.mexc import constants as mexc
from arb.exchanges.mexc.connector import MexcFuturesConnector, MexcSpotConnector
from arb.exchanges.models import OrderRequest, OrderType
from arb.instruments import InstrumentCatalog
from arb.secrets import ApiCredentials, Secret
from arb.sim.cluster import SimCluster, SimConfig
from arb.types import ExchangeConfig, ExchangeName, OrderSide

ALL = set(ExchangeName)
CONFIG = """
[engine]
symbols = ["BTC/USDT"]

[exchanges.mexc]
markets = ["spot", "futures"]

[exchanges.gateio]
markets = ["spot", "futures"]
"""


def manager(tmp_path: Path, environ: dict[str, str] | None = None) -> ConfigurationManager:
    path = tmp_path / "arb.toml"
    path.write_text(CONFIG)
    configuration = ConfigurationManager(path, environ=environ or {})
    configuration.load_configuration(dry_run=True)
    return configuration


def test_registry_holds_every_market_and_refuses_mismatches() -> None:
    assert registered() == {
        ExchangeName.GATEIO: GateioSpotConnector,
        ExchangeName.GATEIO_FUTURES: GateioFuturesConnector,
        ExchangeName.MEXC: MexcSpotConnector,
        ExchangeName.MEXC_FUTURES: MexcFuturesConnector,
    }
    with pytest.raises(ValueError, match="serves mexc, not gateio"):
        register(ExchangeName.GATEIO, MexcSpotConnector)

    class OtherGate(GateioSpotConnector):
        pass

    with pytest.raises(ValueError, match="already has connector GateioSpotConnector"):
        register(ExchangeName.GATEIO, OtherGate)
    register(ExchangeName.GATEIO, GateioSpotConnector)  # the same class again is harmless


def test_dry_run_creates_every_market_against_the_simulated_venues(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with simulated_venues() as sim:
            factory = ExchangeFactory(manager(tmp_path), {"gateio": CREDENTIALS, "mexc": CREDENTIALS}, sim.urls())
            created = await factory.create_exchanges(dry_run=True)
            try:
                assert set(created) == ALL and factory.get_active_exchanges() == created
                for market, connector in created.items():
                    assert connector.exchange is market
                    assert connector.rest.venue.base_url.startswith("http://127.0.0.1:")
                    assert connector.dialect.ws_url.startswith("ws://127.0.0.1:")
                    assert [i.symbol for i in await connector.instruments()] == market_symbols(market, ["BTC/USDT"])
                assert created[ExchangeName.GATEIO].can_trade and not created[ExchangeName.MEXC_FUTURES].can_trade
                assert (await created[ExchangeName.MEXC].balances())["USDT"].free > 0
            finally:
                await factory.close_all()
            assert factory.get_active_exchanges() == {}
            assert all(c.rest._session is None for c in created.values())

    run(scenario())


def test_create_exchanges_runs_the_markets_concurrently(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each connector's instrument load waits until all four have started: a sequential factory deadlocks."""
    started: list[ExchangeName] = []

    def barrier(base: type) -> type:
        class Waiting(base):  # type: ignore[valid-type, misc]
            async def instruments(self) -> InstrumentCatalog:
                started.append(self.exchange)
                while len(started) < len(ALL):
                    await asyncio.sleep(0.001)
                return InstrumentCatalog(self.exchange, [])

        return Waiting

    for market, connector in registered().items():
        monkeypatch.setitem(factory_module._REGISTRY, market, barrier(connector))
    urls = {
        venue: ExchangeConfig(
            name=venue,
            rest_url="http://127.0.0.1:9",
            ws_url="ws://127.0.0.1:9/",
            futures_rest_url="http://127.0.0.1:9",
            futures_ws_url="ws://127.0.0.1:9/",
        )
        for venue in ("gateio", "mexc")
    }
    factory = ExchangeFactory(manager(tmp_path), sim_urls=urls)

    async def scenario() -> None:
        try:
            await asyncio.wait_for(factory.create_exchanges([m.value for m in ExchangeName], dry_run=True), 5)
        except ConfigurationError:
            pass  # the empty catalogs list no BTC/USDT; what matters is that all four started
        finally:
            await factory.close_all()

    run(scenario())
    assert set(started) == ALL


def test_a_connector_still_closing_when_the_caller_gives_up_stays_listed(tmp_path: Path) -> None:
    """The list was emptied before the closes ran: a connector still closing when the shutdown's
    step timed out was forgotten, left to no later close."""
    release = asyncio.Event()

    class Closing:
        def __init__(self, hangs: bool) -> None:
            self.hangs, self.closes = hangs, 0

        async def close(self) -> None:
            self.closes += 1
            if self.hangs:
                await release.wait()

    quick, stuck = Closing(hangs=False), Closing(hangs=True)
    factory = ExchangeFactory(manager(tmp_path))
    factory._active = {ExchangeName.MEXC: quick, ExchangeName.GATEIO: stuck}  # type: ignore[dict-item]

    async def scenario() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(factory.close_all(), 0.1)
        assert factory.get_active_exchanges() == {ExchangeName.GATEIO: stuck}
        release.set()
        await factory.close_all()

    run(scenario())
    assert factory.get_active_exchanges() == {} and (quick.closes, stuck.closes) == (1, 2)


def test_a_failing_market_closes_the_ones_created_with_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with simulated_venues() as sim:
            urls = sim.urls()
            del urls["mexc"]
            factory = ExchangeFactory(manager(tmp_path), {"gateio": CREDENTIALS}, urls)
            with pytest.raises(ConfigurationError, match="mexc.*refusing to use the real venue"):
                await factory.create_exchanges(dry_run=True)
            assert factory.get_active_exchanges() == {}

    run(scenario())


def test_a_dry_run_refuses_a_venue_url_that_is_not_this_machine(tmp_path: Path) -> None:
    """A venue the simulator endpoints leave out fell back to the configured URLs: a dry run then
    signed orders, balance reads and listen keys to a real venue (``--sim-urls`` naming one venue,
    ``--config`` pointing the other at api.mexc.com)."""
    path = tmp_path / "arb.toml"
    path.write_text(CONFIG.replace(
        '[exchanges.mexc]\nmarkets = ["spot", "futures"]\n',
        '[exchanges.mexc]\nmarkets = ["spot", "futures"]\nrest_url = "https://api.mexc.com"\nws_url = "ws://192.0.2.2:9/ws"\n',
    ))
    configuration = ConfigurationManager(path, environ={})
    configuration.load_configuration(dry_run=True)
    factory = ExchangeFactory(configuration, {"mexc": CREDENTIALS}, {})
    with pytest.raises(ConfigurationError) as refused:
        factory.build(ExchangeName.MEXC, dry_run=True)
    message = str(refused.value)
    assert "exchange mexc: a dry run trades only on simulated venues on this machine" in message
    assert "rest_url 'https://api.mexc.com', ws_url 'ws://192.0.2.2:9/ws' is not a loopback address" in message


def test_unlisted_symbol_and_duplicate_creation(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with simulated_venues() as sim:
            factory = ExchangeFactory(manager(tmp_path), sim_urls=sim.urls())
            with pytest.raises(ConfigurationError, match="engine.symbols: gateio_futures: no instrument 'ETH/USDT:USDT'"):
                await factory.create_exchange("gateio_futures", ["BTC/USDT", "ETH/USDT"], dry_run=True)
            assert factory.get_active_exchanges() == {}
            connector = await factory.create_exchange(ExchangeName.GATEIO_FUTURES, ["BTC/USDT"], dry_run=True)
            assert not connector.can_trade  # no credentials given: public only
            with pytest.raises(ConfigurationError, match="already created"):
                await factory.create_exchange(ExchangeName.GATEIO_FUTURES, dry_run=True)
            await factory.close_all()

    run(scenario())


def test_a_configured_contract_in_delisting_is_kept_by_its_listed_rules_for_its_closes(tmp_path: Path) -> None:
    """A configured perpetual the venue lists as in delisting (it takes only orders reducing a
    position) refused the whole start: a restart could no longer close the hedges held there, as
    the running engine does. It is kept by the rules the venue still lists, and named closing only."""
    perp = "BTC/USDT:USDT"

    async def scenario() -> None:
        async with simulated_venues() as sim:
            sim.venues["gateio"].context.delisting.add(perp)
            factory = ExchangeFactory(manager(tmp_path), sim_urls=sim.urls())
            connector = await factory.create_exchange(ExchangeName.GATEIO_FUTURES, ["BTC/USDT"], dry_run=True)
            catalog = await connector.instruments()
            assert catalog.get(perp).contract_size == D("0.0001") and catalog.closing_only(perp)
            left_out = catalog.left_out_reason(perp)
            assert left_out == f"gateio_futures: instrument {perp!r} was left out: in_delisting=true"
            await factory.close_all()

    run(scenario())


def test_a_symbol_the_venues_do_not_list_is_a_configuration_problem_naming_every_venue(tmp_path: Path) -> None:
    """It failed as a runtime error (exit 1) naming the first venue only, not the setting to change."""

    async def scenario() -> None:
        async with simulated_venues() as sim:
            configured = manager(tmp_path, {"ARB_SYMBOLS": "BTC/USDT,SOL/USDT,XRP/USDT"})
            factory = ExchangeFactory(configured, sim_urls=sim.urls())
            with pytest.raises(ConfigurationError) as refused:
                await factory.create_exchanges([ExchangeName.MEXC, ExchangeName.GATEIO], dry_run=True)
            assert factory.get_active_exchanges() == {}
            assert [problem.split(";")[0] for problem in refused.value.problems] == [
                f"engine.symbols: {market}: no instrument {symbol!r}"
                for market in ("mexc", "gateio") for symbol in ("SOL/USDT", "XRP/USDT")
            ]
            assert "exchanges.gateio.markets" in refused.value.problems[-1]

    run(scenario())


def test_live_needs_keys_for_every_trading_market(tmp_path: Path) -> None:
    factory = ExchangeFactory(manager(tmp_path))
    for market, prefix in ((ExchangeName.GATEIO, "GATEIO"), (ExchangeName.MEXC, "MEXC")):
        with pytest.raises(ConfigurationError) as info:
            factory.build(market, dry_run=False)
        assert f"{prefix}_API_KEY and {prefix}_SECRET_KEY" in str(info.value)
    # MEXC futures serve market data only: no keys needed, and the venue's own URL is used.
    connector = factory.build(ExchangeName.MEXC_FUTURES, dry_run=False)
    assert connector.rest.venue.base_url == mexc.FUTURES_REST_URL and not connector.can_trade
    keyed = ExchangeFactory(manager(tmp_path, {"GATEIO_API_KEY": "k", "GATEIO_SECRET_KEY": "s"}))
    live = keyed.build("gateio_futures", dry_run=False)
    assert live.can_trade and live.rest.venue.base_url == "https://api.gateio.ws/api/v4"


def test_names_and_symbols(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="'binance': unknown market"):
        ExchangeFactory(manager(tmp_path)).build("binance")
    assert market_symbols(ExchangeName.GATEIO, ["BTC/USDT"]) == ["BTC/USDT"]
    assert market_symbols(ExchangeName.MEXC_FUTURES, ["BTC/USDT", "ETH/USDC:USDC"]) == ["BTC/USDT:USDT", "ETH/USDC:USDC"]


def test_dry_run_on_the_sim_cluster_syncs_every_book_and_trades(tmp_path: Path) -> None:
    """The dry-run path as the engine takes it: SimCluster URLs and key -> factory -> books and an order."""

    async def scenario() -> None:
        config = SimConfig(symbols=("BTC/USDT",), updates_per_second=200)
        async with SimCluster(config) as cluster:
            keys = ApiCredentials(Secret(config.api_key), Secret(config.api_secret))
            factory = ExchangeFactory(manager(tmp_path), lambda venue: keys, cluster.urls())
            try:
                created = await factory.create_exchanges()  # the configuration is a dry run
                for market, connector in created.items():
                    await connector.start_books(market_symbols(market, ["BTC/USDT"]))
                for market, connector in created.items():
                    [book] = connector.books().values()
                    await eventually(lambda: book.in_sync, what=f"{market.value} book in sync")
                gate = created[ExchangeName.GATEIO]
                order = OrderRequest(
                    symbol="BTC/USDT", side=OrderSide.BUY, type=OrderType.LIMIT, quantity=D("0.001"),
                    price=D("10000"), client_order_id="cluster-1",
                )
                placed = await gate.place_order(order)
                assert (await gate.query_order("BTC/USDT", client_order_id="cluster-1")).order_id == placed.order_id
            finally:
                await factory.close_all()

    run(scenario())
