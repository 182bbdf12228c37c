"""``python -m arb doctor``: is this machine ready to run arb, and how far are the venues?

Checks, in order: the configuration (every problem at once), the compiled core, the API
keys (masked), what ``run --live`` would refuse in the configuration (real venues only), then
for every enabled market the REST round trip (median of a few pings), the clock against the
venue's server time, whether each configured symbol is listed as tradable there (with the
trading rules the engine would trade it by), the websocket handshake time and, where keys are
given and the market trades, the signed balance call live trading starts with (the account's
own fee rates with it).
Each finding has a level and, when something is off, one line of advice. With
``sim=True`` the markets are the in-process simulated venues and nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Sequence
from decimal import Decimal
from enum import Enum

import msgspec

from .config import ConfigurationManager
from .errors import ArbitrageEngineError, ConfigurationError, ExchangeConnectionError, ExchangeError
from .exchanges.connector import ClockWindow, ExchangeConnector
from .exchanges.errors import ErrorCategory
from .exchanges.factory import ExchangeFactory, market_symbols, registered
from .exchanges.ws import WsSession, WsSettings
from .secrets import VENUE_ENV_PREFIX, ApiCredentials, Secret
from .types import ArbitrageConfig, ExchangeName

CLOCK_WARN_MS = 500
# Where a venue's window is not known: signed requests further off than this are likely refused.
CLOCK_FAIL_MS = 5000
PINGS = 5


class Level(str, Enum):
    """How bad a finding is; only FAIL makes ``doctor`` exit non-zero."""

    OK = "ok"
    WARN = "WARN"
    FAIL = "FAIL"


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    """One check's outcome."""

    check: str
    level: Level
    detail: str
    advice: str = ""

    def lines(self) -> list[str]:
        """The finding as printable lines (advice indented under it)."""
        out = [f"  {self.level.value:<5} {self.check:<22} {self.detail}"]
        if self.advice:
            out.append(f"  {'':<5} {'':<22} -> {self.advice}")
        return out


# Checks whose failure is a configuration ``run`` refuses (exit 2, as it exits).
_CONFIG_CHECKS = frozenset({"config", "journal", "simulator"})


class Diagnosis(msgspec.Struct, kw_only=True):
    """Every finding of one ``doctor`` run."""

    sim: bool
    findings: list[Finding] = msgspec.field(default_factory=list)

    @property
    def config_failed(self) -> bool:
        """The configuration is one every run refuses: invalid, its journal path unusable, or (with the
        simulated venues) symbols they do not list."""
        return any(f.check in _CONFIG_CHECKS and f.level is Level.FAIL for f in self.findings)

    @property
    def failed(self) -> bool:
        """Something is wrong (a FAIL finding)."""
        return any(f.level is Level.FAIL for f in self.findings)

    def lines(self) -> list[str]:
        """The report as printable lines, with a verdict last."""
        out = [f"arb doctor ({'simulated venues' if self.sim else 'real venues'})"]
        for finding in self.findings:
            out += finding.lines()
        failures = sum(f.level is Level.FAIL for f in self.findings)
        warnings = sum(f.level is Level.WARN for f in self.findings)
        verdict = "everything OK" if not failures and not warnings else f"{failures} problem(s), {warnings} warning(s)"
        out.append(f"doctor: {verdict}")
        return out


def check_core() -> Finding:
    """Whether every ``arb_core`` module loads as a compiled extension."""
    advice = "build it: `pip install -e .` or `python setup.py build_ext --inplace` (needs a C compiler)"
    try:
        from .cli import compiled_core_status

        status = compiled_core_status()
    except ImportError as exc:
        return Finding(check="compiled core", level=Level.FAIL, detail=f"arb_core does not import: {exc}", advice=advice)
    missing = [name for name, path in status if path is None]
    if not status or missing:
        return Finding(
            check="compiled core", level=Level.FAIL,
            detail=f"not compiled: {', '.join(missing) or 'no modules found'}", advice=advice,
        )
    return Finding(check="compiled core", level=Level.OK, detail=f"{len(status)} compiled modules loaded")


def check_keys(manager: ConfigurationManager, config: ArbitrageConfig, sim: bool) -> list[Finding]:
    """API keys of each enabled venue, masked; missing keys only matter for live trading."""
    findings = []
    for exchange in config.exchanges:
        if not exchange.enabled:
            continue
        credentials = manager.get_credentials(exchange.name)
        prefix = VENUE_ENV_PREFIX.get(exchange.name, exchange.name.upper())
        if credentials is None:
            findings.append(Finding(
                check=f"keys {exchange.name}", level=Level.OK if sim else Level.WARN,
                detail="no API keys (fine for dry runs, recording and public data)",
                advice="" if sim else f"live trading needs {prefix}_API_KEY and {prefix}_SECRET_KEY "
                "(or their *_ENCRYPTED forms with ENCRYPTION_KEY)",
            ))
        else:
            findings.append(Finding(
                check=f"keys {exchange.name}", level=Level.OK,
                detail=f"api key {credentials.api_key.masked()}, secret {credentials.secret_key.masked()}",
            ))
    return findings


def check_live(manager: ConfigurationManager, config: ArbitrageConfig) -> list[Finding]:
    """What ``run --live`` refuses in the configuration besides missing keys (``check_keys`` names
    those): a FAIL each where some venue's keys are given, a WARN where none are (a setup for dry
    runs and public data, which could not trade yet anyway)."""
    keyed = any(manager.get_credentials(e.name) is not None for e in config.exchanges if e.enabled)
    return [
        Finding(check="live", level=Level.FAIL if keyed else Level.WARN, detail=problem,
                advice="`run --live` refuses to start with this; dry runs and --paper do not")
        for problem in manager.live_config_problems()
    ]


async def check_market(
    connector: ExchangeConnector, target_ms: int, pings: int = PINGS, symbols: Sequence[str] = ()
) -> list[Finding]:
    """REST round trip, clock skew, the listing of ``symbols`` (spot form) and websocket handshake of one market."""
    name = connector.exchange.value
    url = connector.rest.venue.base_url
    findings = []
    try:
        rtts = [await connector.ping() for _ in range(pings)]
    except (ExchangeConnectionError, OSError, asyncio.TimeoutError) as exc:
        findings.append(Finding(
            check=f"{name} rest", level=Level.FAIL, detail=f"{url} unreachable: {exc}",
            advice="check the network, DNS and firewall, the venue's status page, and any rest_url override",
        ))
    except ArbitrageEngineError as exc:
        findings.append(Finding(
            check=f"{name} rest", level=Level.FAIL, detail=f"{url} answered the ping with an error: {exc}",
            advice="check that any rest_url override points at the venue's API root; retry if the venue is degraded",
        ))
    else:
        median_ms = statistics.median(rtts) / 1e6
        detail = f"median {median_ms:.1f} ms over {pings} pings (min {min(rtts) / 1e6:.1f}, max {max(rtts) / 1e6:.1f})"
        if median_ms > target_ms:
            findings.append(Finding(
                check=f"{name} rest", level=Level.WARN, detail=detail,
                advice=f"slower than target_execution_time_ms={target_ms}: run arb nearer the venue or raise the target",
            ))
        else:
            findings.append(Finding(check=f"{name} rest", level=Level.OK, detail=detail))
        findings.append(await _check_clock(connector))
        findings += await check_symbols(connector, symbols)
    findings.append(await _check_ws(connector))
    return findings


async def check_symbols(connector: ExchangeConnector, symbols: Sequence[str]) -> list[Finding]:
    """Each of ``symbols`` listed as tradable on the market, with the rules it would be traded by."""
    name = connector.exchange.value
    try:
        catalog = await connector.read_instruments()
    except ArbitrageEngineError as exc:
        return [Finding(check=f"{name} symbols", level=Level.FAIL, detail=f"trading rules unreadable: {exc}",
                        advice="retry; if it persists, check the venue's status page")]
    findings = []
    for symbol in market_symbols(connector.exchange, symbols):
        try:
            i = catalog.get(symbol)
        except ArbitrageEngineError as exc:
            findings.append(Finding(
                check=f"{name} {symbol}", level=Level.FAIL, detail=str(exc),
                advice=f"take it out of engine.symbols, or the market out of [exchanges.{name.split('_')[0]}] markets",
            ))
            continue
        findings.append(Finding(
            check=f"{name} {symbol}", level=Level.OK,
            detail=f"tradable: tick {i.tick_size}, lot {i.lot_size}, min size {i.min_size}, min notional "
            f"{i.min_notional} {i.quote}" + (f", contract {i.contract_size} {i.base}" if i.is_futures else "")
            + f", listed taker fee {_percent(i.taker_fee)}",
        ))
    return findings


async def check_account(connector: ExchangeConnector, symbols: Sequence[str], *, simulated: bool = False) -> list[Finding]:
    """The signed balance call ``--live`` starts with, made with ``connector``'s keys, then the
    account's own fee rates on ``symbols`` where the venue gives them. ``simulated``: the keys
    are the simulated venue's account, not the configured ones."""
    name = connector.exchange.value
    check = f"{name} account"
    keys = "the simulated account's keys" if simulated else connector.key_variable
    try:
        balances = await connector.balances()
    except ArbitrageEngineError as exc:
        auth = isinstance(exc, ExchangeError) and exc.category == ErrorCategory.AUTH_FAILED
        return [Finding(
            check=check, level=Level.FAIL, detail=f"the signed balance call with {keys} failed: {exc}",
            advice="check the key and secret, that the key may read the account and trade, and its IP whitelist"
            if auth else "live trading refuses to start until this call succeeds; the venue's reason is above",
        )]
    except Exception as exc:  # named by type only: its text could quote a header, the key's value
        return [Finding(
            check=check, level=Level.FAIL, detail=f"the signed balance call with {keys} could not be made "
            f"({type(exc).__name__})", advice="retry; if it persists, check the network and the venue's status page",
        )]
    if connector.trading_refused is not None:
        return [Finding(
            check=check, level=Level.FAIL,
            detail=f"the signed balance call with {keys} answered, but the account may not trade: "
            f"{connector.trading_refused}",
            advice="allow the key to trade, or lift the account's restriction, on the venue; live trading "
            "refuses to start until then",
        )]
    held = sorted(b.asset for b in balances.values() if b.total > 0)
    usdt = balances.get("USDT")
    findings = [Finding(
        check=check, level=Level.OK,
        detail=f"signed balance call answered ({keys}): {len(held)} asset(s) held, "
        f"USDT free {usdt.free if usdt is not None else 0}",
    )]
    try:
        catalog = await connector.instruments()
        traded = [s for s in market_symbols(connector.exchange, symbols) if s in catalog]
        if traded:
            catalog = await connector.load_account_fees(traded)
    except ArbitrageEngineError as exc:
        return findings + [Finding(check=f"{name} fees", level=Level.WARN, detail=f"fee rates unreadable: {exc}")]
    if not traded:
        return findings
    if not connector.fees_from_account:
        return findings + [Finding(
            check=f"{name} fees", level=Level.WARN, detail="the account's fee rates are unavailable",
            advice="the engine then prices with the listed rates; a higher tier of the account's would cost more "
            "than it expects",
        )]
    rates = "; ".join(
        f"{symbol} taker {_percent(catalog.get(symbol).taker_fee)}, maker {_percent(catalog.get(symbol).maker_fee)}"
        for symbol in traded
    )
    return findings + [Finding(check=f"{name} fees", level=Level.OK, detail=f"the account's rates: {rates}")]


def _percent(fraction: Decimal) -> str:
    return f"{(fraction * 100).normalize():f}%"


def account_connector(
    manager: ConfigurationManager, factory: ExchangeFactory, market: ExchangeName, sim: ApiCredentials | None
) -> ExchangeConnector | None:
    """A connector of ``market`` with the venue's keys (``sim``: the simulated account's, the
    configured ones otherwise), or None when the market does not trade or no keys are given."""
    connector_class = registered().get(market)
    if connector_class is None or connector_class.binding.trading is None:
        return None
    if sim is not None:
        return ExchangeFactory(manager, {market.venue: sim}, factory.sim_urls).build(market, dry_run=True)
    credentials = manager.get_credentials(market.venue)
    if credentials is None:
        return None
    return connector_class.from_config(factory.exchange_config(market), credentials)


async def _check_clock(connector: ExchangeConnector) -> Finding:
    check = f"{connector.exchange.value} clock"
    try:
        skew_ms = await connector.clock_skew_ms()
    except (ArbitrageEngineError, OSError, asyncio.TimeoutError) as exc:
        return Finding(check=check, level=Level.FAIL, detail=f"server time unavailable: {exc}",
                       advice="the venue's time endpoint failed; retry, then check the venue's status")
    return clock_finding(check, skew_ms, connector.binding.clock_window)


def clock_finding(check: str, skew_ms: float, window: ClockWindow | None) -> Finding:
    """The finding for a local clock ``skew_ms`` behind a venue's (negative: ahead) whose signed
    requests take ``window`` (None: not known, ``CLOCK_FAIL_MS`` either way)."""
    detail = f"local clock {'behind' if skew_ms > 0 else 'ahead of'} the venue by {abs(skew_ms):.0f} ms"
    advice = "synchronise the clock (chrony or `timedatectl set-ntp true`); signed requests carry local timestamps"
    if window is None:
        window = ClockWindow(ahead_ms=CLOCK_FAIL_MS + 1, behind_ms=CLOCK_FAIL_MS)
    refusal = window.refusal(skew_ms)
    if refusal is not None:
        return Finding(check=check, level=Level.FAIL, detail=detail, advice=f"{advice}; {refusal}")
    if abs(skew_ms) > CLOCK_WARN_MS or window.near_edge(skew_ms):
        return Finding(check=check, level=Level.WARN, detail=detail, advice=advice)
    return Finding(check=check, level=Level.OK, detail=detail)


async def _check_ws(connector: ExchangeConnector) -> Finding:
    check = f"{connector.exchange.value} ws"
    url = connector.dialect.ws_url
    settings = WsSettings(handshake_timeout_s=connector.settings.ws.handshake_timeout_s, backoff_initial_s=60.0,
                          backoff_max_s=60.0)
    session = WsSession(connector.venue, url, _ignore, settings=settings)
    started = time.monotonic_ns()
    session.start()
    try:
        await session.wait_connected(settings.handshake_timeout_s)
    except asyncio.TimeoutError:
        waited = f"no handshake within {settings.handshake_timeout_s:.0f} s"
        failed = session.last_errors.get("connect")  # names the URL: a refusal, a timeout, a bad answer
        errors = ", ".join(f"{kind} {count}" for kind, count in session.errors.items()) or "no answer"
        return Finding(check=check, level=Level.FAIL,
                       detail=f"{waited}: {failed}" if failed is not None else f"{url}: {waited} ({errors})",
                       advice="check that outbound websockets (TLS, port 443) are allowed and any ws_url override")
    finally:
        elapsed_ms = (time.monotonic_ns() - started) / 1e6
        await session.close()
    return Finding(check=check, level=Level.OK, detail=f"connected in {elapsed_ms:.1f} ms")


def _ignore(payload: memoryview, is_binary: bool, last_in_buffer: bool, recv_ns: int) -> None:
    pass


def public_connector(factory: ExchangeFactory, market: ExchangeName, sim: bool) -> ExchangeConnector:
    """A connector of ``market`` for public data only: the simulated venue, or the real one without keys."""
    if sim:
        # No keys: a build for a dry run signs with the environment's, the operator's real ones.
        return ExchangeFactory(factory.config, sim_urls=factory.sim_urls).build(market, dry_run=True)
    connector_class = registered().get(market)
    if connector_class is None:
        raise ConfigurationError([f"exchange {market.value}: no connector registered"])
    return connector_class.from_config(factory.exchange_config(market))


async def diagnose(config_file: str | None, *, sim: bool, pings: int = PINGS) -> Diagnosis:
    """Run every check; never raises for what it finds."""
    diagnosis = Diagnosis(sim=sim)
    findings = diagnosis.findings
    findings.append(check_core())
    manager = ConfigurationManager(config_file)
    try:
        config = manager.load_configuration(dry_run=sim)
    except ConfigurationError as exc:
        findings.append(Finding(
            check="config", level=Level.FAIL, detail="; ".join(exc.problems),
            advice=f"fix the {'value' if len(exc.problems) == 1 else 'values'} named above; "
            "`python -m arb check-config FILE` prints the effective settings once valid",
        ))
        return diagnosis
    markets = config.traded_markets  # as a run would: futures only when hedging
    findings.append(Finding(
        check="config", level=Level.OK if markets else Level.FAIL,
        detail=f"{len(markets)} markets ({', '.join(m.value for m in markets)}), symbols {', '.join(config.symbols)}",
        advice="" if markets else "enable at least one venue under [exchanges.<venue>]",
    ))
    journal = manager.journal_path_problems()
    if journal:
        findings.append(Finding(
            check="journal", level=Level.FAIL, detail="; ".join(journal),
            advice="every run refuses it: point engine.journal_path at a file in a directory that exists and can be written",
        ))
    findings += check_keys(manager, config, sim)
    if not sim:
        findings += check_live(manager, config)
    async with contextlib.AsyncExitStack() as stack:
        factory = ExchangeFactory(manager)
        sim_account: ApiCredentials | None = None
        if sim:
            from .sim.cluster import SimCluster, SimConfig

            try:
                cluster = SimCluster(SimConfig(symbols=config.symbols))
            except ValueError as exc:
                findings.append(Finding(check="simulator", level=Level.FAIL, detail=str(exc),
                                        advice="the simulated venues list BTC/USDT and ETH/USDT only"))
                return diagnosis
            await stack.enter_async_context(cluster)
            factory = ExchangeFactory(manager, sim_urls=cluster.urls())
            sim_account = ApiCredentials(Secret(cluster.config.api_key), Secret(cluster.config.api_secret))
        connectors = []
        for market in markets:
            try:
                connector = public_connector(factory, market, sim)
            except ConfigurationError as exc:
                findings.append(Finding(check=market.value, level=Level.FAIL, detail="; ".join(exc.problems)))
                continue
            stack.push_async_callback(connector.close)
            connectors.append(connector)
        for connector in connectors:  # one at a time, so the measurements do not disturb each other
            findings += await check_market(connector, config.target_execution_time_ms, pings, config.symbols)
            private = account_connector(manager, factory, connector.exchange, sim_account if sim else None)
            if private is not None:
                stack.push_async_callback(private.close)
                findings += await check_account(private, config.symbols, simulated=sim)
    return diagnosis
