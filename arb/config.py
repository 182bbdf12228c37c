"""Configuration: shipped defaults, an optional user TOML file, then ``ARB_*`` environment overrides.

Every layer is checked against one schema and every problem is reported at once, one
line each, naming where the value came from (file and key, or variable), the bad
value and what is allowed.
"""

from __future__ import annotations

import difflib
import importlib.util
import ipaddress
import logging
import os
import re
import tomllib
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ConfigurationError
from .secrets import ApiCredentials, load_credentials
from .types import (
    DEFAULT_MAX_PROFIT_MARGIN_BPS,
    MAX_EXPONENT,
    ArbitrageConfig,
    ExchangeConfig,
    ExchangeName,
    MetricsConfig,
    OpportunityType,
    RiskLimits,
    amount_text,
    number_problem,
)

log = logging.getLogger(__name__)

VENUES = ("mexc", "gateio")
MARKETS = ("spot", "futures")
QUOTE_CURRENCIES = ("USDT",)
SYMBOL_PATTERN = re.compile(r"^([A-Z0-9]{1,20})/([A-Z0-9]{1,20})\Z")  # \Z: "$" would pass a final newline
# ARB_* variables that configure the build or the process (the event loop), not the engine.
NON_CONFIG_ENV = frozenset({"ARB_BUILD_ONLY", "ARB_CYTHON_ANNOTATE", "ARB_CYTHON_TRACE", "ARB_EVENT_LOOP"})
EVENT_LOOP_ENV = "ARB_EVENT_LOOP"
EVENT_LOOPS = ("uvloop", "asyncio")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# Settings live trading needs stated by the operator, not inherited from the shipped defaults.
LIVE_REQUIRED = (
    "engine.symbols", "risk.max_position_size_usd", "risk.max_total_exposure_usd", "risk.max_daily_loss_usd",
)
# The settings that turn a safety mechanism off, and what is then not applied.
SAFETY_SWITCHES = {
    "engine.enable_risk_checks": "no position, exposure, daily loss or margin limit",
    "engine.enable_circuit_breakers": "no circuit breaker but the kill switch and journal writes",
}


def is_loopback(url: str) -> bool:
    """Whether ``url`` names this machine (``LOOPBACK_HOSTS``); False when it names no host or cannot be read."""
    try:
        return urllib.parse.urlsplit(url).hostname in LOOPBACK_HOSTS
    except ValueError:
        return False


class _Invalid(ValueError):
    """A value failed its field's rule; the message says what is allowed."""


class _InvalidSecret(_Invalid):
    """As ``_Invalid``, for a value that holds a secret: the problem is named without the value."""


def _decimal(raw: Any) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, int | Decimal | str):
        raise _Invalid("expected a number")
    if isinstance(raw, str) and not raw.isascii():  # Decimal reads other scripts' digits too
        raise _Invalid("expected a decimal number such as 100 or 12.5")
    try:
        value = Decimal(raw.strip() if isinstance(raw, str) else raw)
    except InvalidOperation:
        raise _Invalid("expected a decimal number such as 100 or 12.5") from None
    if not value.is_finite():
        raise _Invalid("expected a finite number")
    problem = number_problem(value)
    if problem:
        raise _Invalid(problem)
    return value


def _integer(raw: Any) -> int:
    if isinstance(raw, bool):
        raise _Invalid("expected an integer")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and re.fullmatch(r"\s*[+-]?[0-9]+\s*", raw):  # \d, as int(), takes other scripts' digits
        text = raw.strip()
        sign, digits = ("-", text[1:]) if text[0] == "-" else ("", text.lstrip("+"))
        digits = digits.lstrip("0") or "0"  # leading zeros, however many, say nothing
        if len(digits) > MAX_EXPONENT:
            raise _Invalid(f"out of range: at most {MAX_EXPONENT} digits")
        return int(sign + digits)
    raise _Invalid("expected an integer")


def _boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        word = raw.strip().lower()
        if word in ("true", "1", "yes", "on"):
            return True
        if word in ("false", "0", "no", "off"):
            return False
    raise _Invalid("expected true or false")


def _string_list(raw: Any) -> list[str]:
    if isinstance(raw, str):
        return [part.strip() for part in raw.split(",") if part.strip()]
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        return list(raw)
    raise _Invalid("expected a list of strings")


def _url(scheme: str) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        if isinstance(raw, str) and "@" in raw:
            # First: every other refusal below repeats the value. It would be logged with the URL
            # too (connectors name their endpoints); a proxy that needs credentials takes them
            # some other way. Any "@", not only one in the host part: a password may hold the "/",
            # "?" or "#" that would end that part, and no venue endpoint needs an "@".
            raise _InvalidSecret(
                "a URL with an @ in it (a user name or password): not accepted, it would appear in logs"
            )
        if not isinstance(raw, str) or not re.match(rf"^{scheme}s?://[^/\s]", raw):
            raise _Invalid(f"expected a URL starting {scheme}:// or {scheme}s://")
        if re.search(r"\s", raw):
            raise _Invalid("a URL has no spaces")
        try:
            parsed = urllib.parse.urlsplit(raw)
            parsed.port  # noqa: B018 (raises on a port out of range or not a number)
        except ValueError as exc:
            raise _Invalid(f"not a valid URL: {exc}") from None
        if not parsed.hostname:
            raise _Invalid("no host")
        return raw

    return parse


def _shown(raw: Any) -> str:
    """A refused value as the operator wrote it: a TOML float (read as a Decimal) as its number."""
    if isinstance(raw, Decimal):
        return str(raw)
    if isinstance(raw, list):
        return f"[{', '.join(map(_shown, raw))}]"
    if isinstance(raw, dict):
        return f"{{{', '.join(f'{key!r}: {_shown(value)}' for key, value in raw.items())}}}"
    return repr(raw)


def _cleartext_remote(url: str) -> bool:
    """Whether ``url`` is unencrypted (http://, ws://) to a host other than this machine."""
    return urllib.parse.urlsplit(url).scheme in ("http", "ws") and not is_loopback(url)


def _money(*, positive: bool, maximum: Decimal | None = None) -> Callable[[Any], Decimal]:
    def parse(raw: Any) -> Decimal:
        value = _decimal(raw)
        if value < 0 or (positive and value == 0):
            raise _Invalid("must be greater than 0" if positive else "must be 0 or more")
        if maximum is not None and value > maximum:
            raise _Invalid(f"must be at most {maximum}")
        return value

    return parse


def _bounded_int(low: int, high: int) -> Callable[[Any], int]:
    def parse(raw: Any) -> int:
        value = _integer(raw)
        if not low <= value <= high:
            raise _Invalid(f"must be an integer from {low} to {high}")
        return value

    return parse


def _off_or_bounded_int(low: int, high: int) -> Callable[[Any], int]:
    """0 (off), or an integer from ``low`` to ``high``."""
    def parse(raw: Any) -> int:
        value = _integer(raw)
        if value != 0 and not low <= value <= high:
            raise _Invalid(f"must be 0 (off) or an integer from {low} to {high}")
        return value

    return parse


def _choices(allowed: tuple[str, ...]) -> Callable[[Any], list[str]]:
    def parse(raw: Any) -> list[str]:
        values = _string_list(raw)
        bad = [v for v in values if v not in allowed]
        if bad:
            raise _Invalid(f"{', '.join(map(repr, bad))} not allowed; choose from {', '.join(allowed)}")
        if not values:
            raise _Invalid(f"must name at least one of {', '.join(allowed)}")
        if len(set(values)) != len(values):
            raise _Invalid("lists a value twice")
        return values

    return parse


def _one_of(allowed: tuple[str, ...]) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        if not isinstance(raw, str) or raw not in allowed:
            raise _Invalid(f"choose one of {', '.join(map(repr, allowed))}")
        return raw

    return parse


def _file_path(raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise _Invalid("expected a file path")
    path = raw.strip()
    if "\0" in path:
        raise _Invalid("a file path cannot hold a NUL character")
    if path.endswith("/") or Path(path).name in ("", ".", ".."):
        raise _Invalid("names a directory, expected a file")
    return path


def _sync_mode(raw: Any) -> str:
    if not isinstance(raw, str) or raw.strip().upper() not in ("FULL", "NORMAL"):
        raise _Invalid("expected FULL or NORMAL")
    return raw.strip().upper()


def _host(raw: Any) -> str:
    if not isinstance(raw, str) or not re.fullmatch(r"[A-Za-z0-9.:\-]+", raw.strip()):
        raise _Invalid("expected a host name or IP address such as 127.0.0.1 or 0.0.0.0")
    host = raw.strip()
    if ":" in host:  # only an IPv6 address has colons; anything else would fail when the server starts
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _Invalid("has a colon but is not an IPv6 address (give the port as metrics.port)") from None
        return host
    # A name is looked up through IDNA, which refuses an empty label or one over 63 characters; a
    # final dot (a fully qualified name) is allowed.
    if not all(1 <= len(label) <= 63 for label in host.removesuffix(".").split(".")):
        raise _Invalid("each part of a host name between dots must be 1 to 63 characters long")
    return host


def _symbols(raw: Any) -> list[str]:
    values = _string_list(raw)
    if not values:
        raise _Invalid("must list at least one symbol such as BTC/USDT")
    for symbol in values:
        match = SYMBOL_PATTERN.match(symbol)
        if match is None:
            raise _Invalid(f"{symbol!r} is not a symbol; write BASE/QUOTE in capitals, e.g. BTC/USDT")
        if match.group(2) not in QUOTE_CURRENCIES:
            raise _Invalid(f"{symbol!r} is not supported; the quote currency must be one of {QUOTE_CURRENCIES}")
    if len(set(values)) != len(values):
        raise _Invalid("lists a symbol twice")
    return values


# Every key the configuration accepts, with its parser. Exchange keys apply per venue.
ENGINE_FIELDS: dict[str, Callable[[Any], Any]] = {
    "symbols": _symbols,
    "opportunity_types": _choices(tuple(t.value for t in OpportunityType)),
    "target_execution_time_ms": _bounded_int(1, 60_000),
    "opportunity_scan_interval_ms": _bounded_int(1, 60_000),
    "balance_refresh_interval_ms": _bounded_int(100, 3_600_000),
    "max_data_age_ms": _bounded_int(1, 60_000),
    "enable_circuit_breakers": _boolean,
    "enable_risk_checks": _boolean,
    "enable_recovery_mode": _boolean,
    "journal_path": _file_path,
    "journal_synchronous": _sync_mode,
    "hedge_holding_horizon_s": _bounded_int(0, 30 * 86_400),
    "funding_refresh_interval_ms": _bounded_int(1_000, 3_600_000),
    "instrument_refresh_interval_ms": _off_or_bounded_int(1_000, 86_400_000),
    "busy_poll": _boolean,
    "rehearsal_interval_ms": _bounded_int(0, 60_000),
    "paper_latency_ms": _bounded_int(0, 10_000),
}
RISK_FIELDS: dict[str, Callable[[Any], Any]] = {
    "max_position_size_usd": _money(positive=True),
    "max_total_exposure_usd": _money(positive=True),
    "max_daily_loss_usd": _money(positive=True),
    # 1,000,000 bps (10,000 %): no spread comes near it, so it can stand for "never enter"; it keeps the
    # value inside the compiled scanner's int64.
    "min_profit_margin_bps": _money(positive=False, maximum=Decimal(1_000_000)),
    "max_profit_margin_bps": _money(positive=True, maximum=Decimal(1_000_000)),
    "min_liquidation_distance_bps": _money(positive=False, maximum=Decimal(10_000)),
    "max_consecutive_failures": _bounded_int(1, 1000),
    "max_execution_latency_ms": _bounded_int(1, 60_000),
    "max_symbol_exposure_usd": _money(positive=True),
}
EXCHANGE_FIELDS: dict[str, Callable[[Any], Any]] = {
    "enabled": _boolean,
    "markets": _choices(MARKETS),
    "rest_timeout_ms": _bounded_int(50, 60_000),
    "ws_heartbeat_interval_ms": _bounded_int(1000, 60_000),
    "rest_url": _url("http"),
    "ws_url": _url("ws"),
    "futures_rest_url": _url("http"),
    "futures_ws_url": _url("ws"),
    "order_transport": _one_of(("rest", "ws")),
    "order_deadline_ms": _bounded_int(100, 60_000),
}
METRICS_FIELDS: dict[str, Callable[[Any], Any]] = {
    "enabled": _boolean,
    "host": _host,
    "port": _bounded_int(1, 65_535),
}
ASSET_PATTERN = re.compile(r"^[A-Z0-9]{1,20}\Z")


def _inventory(raw: Any) -> dict[str, Decimal]:
    """A paper market's starting balances: a table of asset -> amount >= 0, every bad entry named."""
    if not isinstance(raw, dict):
        raise _Invalid('expected a table of asset = "amount", e.g. { USDT = "10000", BTC = "0.1" }')
    balances: dict[str, Decimal] = {}
    bad: list[str] = []
    for asset, amount in raw.items():
        if not ASSET_PATTERN.match(asset):
            bad.append(f"{asset!r} is not an asset name (capitals and digits, e.g. USDT)")
            continue
        try:
            balances[asset] = _money(positive=False)(amount)
        except _Invalid as exc:
            bad.append(f"{asset} = {_shown(amount)}: {exc}")
    if bad:
        raise _Invalid("; ".join(bad))
    return balances


# Paper mode's starting inventory, one table per market (``[paper] gateio_futures = { USDT = "1000" }``).
PAPER_FIELDS: dict[str, Callable[[Any], Any]] = {market.value: _inventory for market in ExchangeName}
SECTIONS: dict[str, dict[str, Callable[[Any], Any]]] = {
    "engine": ENGINE_FIELDS, "risk": RISK_FIELDS, "metrics": METRICS_FIELDS, "paper": PAPER_FIELDS,
}

ENV_OVERRIDES: dict[str, str] = {
    "ARB_SYMBOLS": "engine.symbols",
    "ARB_OPPORTUNITY_TYPES": "engine.opportunity_types",
    "ARB_MAX_POSITION_SIZE_USD": "risk.max_position_size_usd",
    "ARB_MAX_TOTAL_EXPOSURE_USD": "risk.max_total_exposure_usd",
    "ARB_MIN_PROFIT_MARGIN_BPS": "risk.min_profit_margin_bps",
    "ARB_MAX_PROFIT_MARGIN_BPS": "risk.max_profit_margin_bps",
    "ARB_MIN_LIQUIDATION_DISTANCE_BPS": "risk.min_liquidation_distance_bps",
    "ARB_MAX_DAILY_LOSS_USD": "risk.max_daily_loss_usd",
    "ARB_MAX_CONSECUTIVE_FAILURES": "risk.max_consecutive_failures",
    "ARB_TARGET_EXECUTION_TIME_MS": "engine.target_execution_time_ms",
    "ARB_OPPORTUNITY_SCAN_INTERVAL_MS": "engine.opportunity_scan_interval_ms",
    "ARB_BALANCE_REFRESH_INTERVAL_MS": "engine.balance_refresh_interval_ms",
    "ARB_ENABLE_CIRCUIT_BREAKERS": "engine.enable_circuit_breakers",
    "ARB_ENABLE_RISK_CHECKS": "engine.enable_risk_checks",
    "ARB_ENABLE_RECOVERY_MODE": "engine.enable_recovery_mode",
    "ARB_MAX_DATA_AGE_MS": "engine.max_data_age_ms",
    "ARB_JOURNAL_PATH": "engine.journal_path",
    "ARB_JOURNAL_SYNCHRONOUS": "engine.journal_synchronous",
    "ARB_HEDGE_HOLDING_HORIZON_S": "engine.hedge_holding_horizon_s",
    "ARB_FUNDING_REFRESH_INTERVAL_MS": "engine.funding_refresh_interval_ms",
    "ARB_INSTRUMENT_REFRESH_INTERVAL_MS": "engine.instrument_refresh_interval_ms",
    "ARB_BUSY_POLL": "engine.busy_poll",
    "ARB_REHEARSAL_INTERVAL_MS": "engine.rehearsal_interval_ms",
    "ARB_PAPER_LATENCY_MS": "engine.paper_latency_ms",
    "ARB_METRICS_ENABLED": "metrics.enabled",
    "ARB_METRICS_HOST": "metrics.host",
    "ARB_METRICS_PORT": "metrics.port",
}


def _file_only_variables() -> dict[str, tuple[str, str]]:
    """The ``ARB_*`` names an operator might try for a setting that has no variable, each with the
    setting's TOML table and key: ``ARB_`` and the dotted name (``ARB_RISK_MAX_SYMBOL_EXPOSURE_USD``,
    ``ARB_EXCHANGES_MEXC_REST_URL``), and the name without its section, as most variables are
    written (``ARB_MAX_SYMBOL_EXPOSURE_USD``, ``ARB_MEXC_REST_URL``); not for ``[paper]``, whose keys
    are market names (``ARB_MEXC`` is no paper inventory)."""
    overridden = set(ENV_OVERRIDES.values())
    dotted_names = [f"{section}.{key}" for section, fields in SECTIONS.items() for key in fields] + [
        f"exchanges.{venue}.{key}" for venue in VENUES for key in EXCHANGE_FIELDS
    ]
    names: dict[str, tuple[str, str]] = {}
    for dotted in dotted_names:
        if dotted in overridden:
            continue
        table, _, key = dotted.rpartition(".")
        section, _, rest = dotted.partition(".")
        forms = [dotted] if section == "paper" else [dotted, rest]
        for form in forms:
            names["ARB_" + form.replace(".", "_").upper()] = (table, key)
    return names


FILE_ONLY_VARIABLES = _file_only_variables()


@dataclass(frozen=True)
class _Setting:
    raw: Any
    source: str  # "path: key" or "env NAME"


def default_config_path() -> Path:
    """The shipped ``default.toml`` (installed inside the package)."""
    return Path(str(resources.files("arb") / "default.toml"))


class ConfigurationManager:
    """Loads, validates and holds the engine configuration."""

    def __init__(
        self,
        config_file: str | os.PathLike[str] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        defaults_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self.config_file = Path(config_file) if config_file is not None else None
        self.defaults_file = Path(defaults_file) if defaults_file is not None else default_config_path()
        self._environ = os.environ if environ is None else environ
        self._config: ArbitrageConfig | None = None
        self._credentials: dict[str, ApiCredentials | None] = {}
        self._chosen: frozenset[str] = frozenset()  # settings the file or the environment set
        self._stated: frozenset[str] = frozenset()  # settings the --config file states, as it was read
        self._sources: dict[str, str] = {}  # each setting's source ("path: key", "env NAME")
        self._overridden: list[str] = []  # "env NAME over path: key" of each file value the environment replaced

    @property
    def config(self) -> ArbitrageConfig:
        """The loaded configuration; ``load_configuration`` must have run."""
        if self._config is None:
            raise ConfigurationError(["configuration not loaded yet: call load_configuration() first"])
        return self._config

    def load_configuration(self, dry_run: bool = True) -> ArbitrageConfig:
        """Read every layer, validate, and return the effective configuration.

        Raises ConfigurationError listing every problem found.
        """
        problems: list[str] = []
        settings: dict[str, _Setting] = {}
        sources: list[str] = []
        shipped: dict[str, _Setting] = {}
        stated: frozenset[str] = frozenset()
        for path in (self.defaults_file, self.config_file):
            if path is None:
                continue
            table = _read_toml(path, problems)
            if table is not None:
                layer: dict[str, _Setting] = {}
                _flatten(table, str(path), layer, problems)
                settings.update(layer)
                sources.append(str(path))
                if path is self.config_file:
                    stated = frozenset(layer)
            if path is self.defaults_file:
                shipped = dict(settings)
        from_files = dict(settings)
        _apply_environment(self._environ, settings, problems)
        config = _build(settings, dry_run, tuple(sources), problems)
        credentials: dict[str, ApiCredentials | None] = {}
        for venue in VENUES:
            try:
                credentials[venue] = load_credentials(venue, self._environ)
            except ConfigurationError as exc:
                problems.extend(exc.problems)
        if problems or config is None:
            raise ConfigurationError(problems)
        self._config = config
        self._credentials = credentials
        self._chosen = frozenset(d for d, setting in settings.items() if shipped.get(d) is not setting)
        self._stated = stated
        self._sources = {d: setting.source for d, setting in settings.items()}
        self._overridden = sorted(
            f"{settings[d].source} over {setting.source}" for d, setting in from_files.items()
            if settings[d] is not setting and shipped.get(d) is not setting
        )
        return config

    def chosen(self, dotted: str) -> bool:
        """Whether the loaded setting ``dotted`` (``engine.symbols``) was set by the configuration
        file or the environment rather than left at the shipped default."""
        return dotted in self._chosen

    def source_of(self, dotted: str) -> str:
        """Where the loaded setting ``dotted`` came from: ``"path: key"`` or ``"env NAME"``."""
        self.config  # noqa: B018 - raises when not loaded
        return self._sources.get(dotted, "not set")

    def stated_in_file(self, dotted: str) -> bool:
        """Whether the ``--config`` file states the setting ``dotted``, whatever the environment then
        sets over it. From the one read the configuration was loaded from: a pipe cannot be read twice."""
        self.config  # noqa: B018 - raises when not loaded
        return dotted in self._stated

    def set_by_file(self, dotted: str) -> bool:
        """Whether the ``--config`` file set the loaded setting ``dotted`` (not the shipped defaults,
        not the environment over it)."""
        return self.config_file is not None and self.source_of(dotted) == f"{self.config_file}: {dotted}"

    def get_exchange_config(self, name: ExchangeName | str) -> ExchangeConfig:
        """The settings of one venue (``mexc``/``gateio``, or any of their markets)."""
        known = {market.value: market.venue for market in ExchangeName}
        venue = known.get(name.value if isinstance(name, ExchangeName) else name)
        for exchange in self.config.exchanges:
            if exchange.name == venue:
                return exchange
        raise ConfigurationError([f"exchange {str(name)!r}: not configured; configured: {', '.join(VENUES)}"])

    def get_credentials(self, venue: str) -> ApiCredentials | None:
        """The venue's API credentials from the environment, or None when not given."""
        self.config  # noqa: B018 - raises when not loaded
        return self._credentials.get(venue)

    def summary(self) -> str:
        """A one-screen description of the effective configuration, secrets masked."""
        c = self.config
        r = c.risk_limits
        journal = os.path.abspath(c.journal_path)  # a relative path is taken from the working directory
        lines = [
            f"mode            {'dry run' if c.dry_run else 'LIVE'}",
            f"sources         {', '.join(c.sources) or '-'} + environment",
            f"symbols         {', '.join(c.symbols)}",
            f"opportunities   {', '.join(t.value for t in c.opportunity_types)}",
        ]
        for exchange in c.exchanges:
            creds = self._credentials.get(exchange.name)
            keys = (
                f"key {creds.api_key.masked()}, secret {creds.secret_key.masked()}" if creds else "no API keys"
            )
            state = ", ".join(exchange.markets) if exchange.enabled else "disabled"
            lines.append(f"{exchange.name:<15} {state}; timeout {exchange.rest_timeout_ms} ms; {keys}")
        lines += [
            f"risk            position {amount_text(r.max_position_size_usd)} USD, exposure "
            f"{amount_text(r.max_total_exposure_usd)} USD, daily loss {amount_text(r.max_daily_loss_usd)} USD, "
            f"margin {amount_text(r.min_profit_margin_bps)}-{amount_text(r.max_profit_margin_bps)} bps",
            f"timing          target {c.target_execution_time_ms} ms, scan every {c.opportunity_scan_interval_ms} ms, "
            f"balances every {c.balance_refresh_interval_ms} ms, max data age {c.max_data_age_ms} ms",
            f"safety          circuit breakers {_on(c.enable_circuit_breakers)}, risk checks "
            f"{_on(c.enable_risk_checks)}, recovery {_on(c.enable_recovery_mode)}, busy poll {_on(c.busy_poll)}, "
            f"rehearsal {f'every {c.rehearsal_interval_ms} ms' if c.rehearsal_interval_ms else 'off'}",
            f"journal         {journal} (--live, synchronous={c.journal_synchronous}); dry runs "
            f"{simulated_journal_path(journal)}, --paper {simulated_journal_path(journal, 'paper')}, --sim-urls "
            f"{simulated_journal_path(journal, 'sim')} (synchronous=NORMAL)",
            f"hedge funding   over {c.hedge_holding_horizon_s} s held, rates read every "
            f"{c.funding_refresh_interval_ms} ms",
            "trading rules   "
            + (f"read again every {c.instrument_refresh_interval_ms} ms" if c.instrument_refresh_interval_ms
               else "read at start-up only"),
            "metrics         "
            + (f"http://{c.metrics.host}:{c.metrics.port}/metrics" if c.metrics.enabled else "off"),
            f"paper orders    filled {c.paper_latency_ms} ms after they are placed (--paper)",
        ]
        lines += [f"environment     {override}" for override in self._overridden]
        return "\n".join(lines)

    def log_summary(self, logger: logging.Logger = log) -> None:
        """Log ``summary()`` at INFO, and a warning for each safety switch that is off, naming its
        source, and, for a live run, for each value of the ``--config`` file the environment replaced."""
        logger.info("effective configuration:\n%s", self.summary())
        for dotted in self.safety_switches_off():
            logger.warning("%s is false (%s): %s is applied", dotted, self.source_of(dotted), SAFETY_SWITCHES[dotted])
        if not self.config.dry_run:
            # Live, a value the operator wrote that is not in force (a container image's variable
            # over the journal path of a mounted file) changes what trades, or where it is journaled.
            for override in self._overridden:
                logger.warning("%s: the environment replaces the --config file's value", override)

    def journal_path_problems(self) -> list[str]:
        """Why ``engine.journal_path`` cannot hold a journal on this machine: a directory there, a file
        other than an SQLite database, or its directory missing or not writable (dry and paper runs
        journal in the same directory).
        Checked before anything is opened: SQLite's "unable to open database file" names no setting."""
        path = self.config.journal_path
        where = f"engine.journal_path {path!r} ({self.source_of('engine.journal_path')})"
        # A relative path is taken from the working directory; a symlink's file is made where it points.
        directory = os.path.dirname(os.path.realpath(path))
        if os.path.isdir(path):
            return [f"{where}: is a directory; name the journal's file in it"]
        if not os.path.isdir(directory):
            return [f"{where}: its directory {directory} does not exist"]
        if not os.access(directory, os.W_OK | os.X_OK):
            return [f"{where}: its directory {directory} is not writable"]
        # The engine's modules are loaded when first needed.
        from .journal import hard_links_problem, not_a_database_problem

        try:
            problem = hard_links_problem(path) or not_a_database_problem(path)
        except OSError:  # not made yet; or the run names what stops it
            problem = None
        return [] if problem is None else [f"{where}: {problem}"]

    def live_config_problems(self) -> list[str]:
        """What a live run refuses in the loaded configuration (its API keys aside): the symbols and
        limits its ``--config`` file does not state, a safety switch off other than in that file."""
        problems = []
        missing = [key for key in LIVE_REQUIRED if not self.stated_in_file(key)]
        if missing:
            problems.append(
                "live trading needs the symbols and limits stated in a --config FILE, not taken from the shipped "
                f"defaults; missing there: {', '.join(missing)}"
            )
        for key in self.safety_switches_off():
            # A live run may have one off only where the operator wrote so. What set the value in force,
            # not only whether the file names it: an environment variable over a file that says true
            # switches it off all the same.
            if not self.set_by_file(key):
                problems.append(f"{key} is false ({self.source_of(key)}): live trading with it off must be written "
                                "in the --config FILE itself")
        return problems

    def safety_switches_off(self) -> list[str]:
        """The ``SAFETY_SWITCHES`` the loaded configuration turns off."""
        config = self.config
        return [dotted for dotted in SAFETY_SWITCHES if not getattr(config, dotted.partition(".")[2])]


def simulated_journal_path(path: str, tag: str = "dry") -> str:
    """Where a dry (``tag`` "dry") or paper ("paper") run journals: beside ``path``, apart from live
    trading, so a live restart never reconciles simulated orders."""
    p = Path(path)
    return str(p.with_name(f"{p.stem}-{tag}{p.suffix or '.sqlite3'}"))


def event_loop_problem(choice: str) -> str | None:
    """Why ``ARB_EVENT_LOOP=choice`` names no event loop ``run`` has, or None when it names one."""
    if choice not in EVENT_LOOPS:
        return f"{EVENT_LOOP_ENV}={choice!r}: must be one of {', '.join(EVENT_LOOPS)}"
    if choice == "uvloop" and importlib.util.find_spec("uvloop") is None:  # optional: not a dependency
        return f"{EVENT_LOOP_ENV}=uvloop: uvloop is not installed"
    return None


def _on(flag: bool) -> str:
    return "on" if flag else "OFF"


def _read_toml(path: Path, problems: list[str]) -> dict[str, Any] | None:
    try:
        with path.open("rb") as fh:
            text = fh.read()
        if text.startswith(b"\xef\xbb\xbf"):
            problems.append(f"{path}: starts with a byte-order mark, which TOML does not take: save it as UTF-8 without one")
            return None
        # A TOML float is read as written (0.1 is 0.1), never through a binary float: money is exact.
        return tomllib.loads(text.decode(), parse_float=Decimal)
    except FileNotFoundError:
        problems.append(f"{path}: file not found")
    except IsADirectoryError:
        problems.append(f"{path}: is a directory, expected a TOML file")
    except PermissionError:
        problems.append(f"{path}: not readable (permission denied)")
    except OSError as exc:  # a symlink loop, a path through a regular file, a name too long, ...
        problems.append(f"{path}: cannot be read: {exc.strerror or exc}")
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"{path}: not valid TOML: {exc}")
    except UnicodeDecodeError:
        problems.append(f"{path}: not UTF-8 text")
    except ValueError as exc:  # an integer too long to convert (tomllib converts while parsing)
        problems.append(f"{path}: not readable: {exc}")
    except RecursionError:
        problems.append(f"{path}: not readable: nested too deeply")
    return None


def _futures_traded(market: ExchangeName) -> bool:
    """Whether ``market`` is a futures market its connector can trade (MEXC's is market data only)."""
    from .exchanges.factory import registered  # the connectors read this module: imported when first checked

    connector = registered().get(market)
    return market.is_futures and connector is not None and connector.binding.trading is not None


def _unknown(where: str, key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(sorted(known))}"
    return f"{where}: unknown key{hint}"


def _flatten(table: dict[str, Any], path: str, out: dict[str, _Setting], problems: list[str]) -> None:
    for section, body in table.items():
        if section == "exchanges":
            if not isinstance(body, dict):
                problems.append(f"{path}: exchanges: expected a table of venues ([exchanges.mexc] ...)")
                continue
            for venue, fields in body.items():
                where = f"{path}: exchanges.{venue}"
                if venue not in VENUES:
                    problems.append(f"{where}: unknown venue {venue!r}; supported venues: {', '.join(VENUES)}")
                    continue
                if not isinstance(fields, dict):
                    problems.append(f"{where}: expected a table of settings")
                    continue
                for key, raw in fields.items():
                    dotted = f"exchanges.{venue}.{key}"
                    if key not in EXCHANGE_FIELDS:
                        problems.append(_unknown(f"{path}: {dotted}", key, list(EXCHANGE_FIELDS)))
                    else:
                        out[dotted] = _Setting(raw, f"{path}: {dotted}")
        elif section in SECTIONS:
            if not isinstance(body, dict):
                problems.append(f"{path}: {section}: expected a table ([{section}])")
                continue
            fields = SECTIONS[section]
            for key, raw in body.items():
                dotted = f"{section}.{key}"
                if key not in fields:
                    problems.append(_unknown(f"{path}: {dotted}", key, list(fields)))
                else:
                    out[dotted] = _Setting(raw, f"{path}: {dotted}")
        else:
            problems.append(_unknown(f"{path}: {section}", section, [*SECTIONS, "exchanges"]))


# The variables Kubernetes sets for each Service in the namespace (``<NAME>_SERVICE_HOST``,
# ``<NAME>_PORT_9464_TCP_ADDR``, ...).
_SERVICE_LINK = re.compile(r"_SERVICE_(HOST|PORT)(_\w+)?$|_PORT_\d+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?$")


def _apply_environment(environ: Mapping[str, str], out: dict[str, _Setting], problems: list[str]) -> None:
    for name in sorted(environ):
        # The process's setting, not the engine's: checked here so check-config and doctor refuse it as run does.
        if name == EVENT_LOOP_ENV:
            problem = event_loop_problem(environ[name])
            if problem is not None:
                problems.append(problem)
            continue
        if not name.startswith("ARB_") or name in NON_CONFIG_ENV:
            continue
        dotted = ENV_OVERRIDES.get(name)
        if dotted is None and name in FILE_ONLY_VARIABLES:
            table, key = FILE_ONLY_VARIABLES[name]
            problems.append(f"env {name}: {table}.{key} can be set in the --config file only ([{table}] {key})")
            continue
        if dotted is None:
            close = difflib.get_close_matches(name, list(ENV_OVERRIDES), n=1)
            if _SERVICE_LINK.search(name):
                hint = ("; it looks like a Kubernetes service link (a Service named arb-...): set "
                        "enableServiceLinks: false in the pod spec")
            elif close:
                hint = f"; did you mean {close[0]}?"
            else:
                hint = "; see README for the supported ARB_* variables"
            problems.append(f"env {name}: unknown setting{hint}")
            continue
        out[dotted] = _Setting(environ[name], f"env {name}")


def _build(
    settings: dict[str, _Setting], dry_run: bool, sources: tuple[str, ...], problems: list[str]
) -> ArbitrageConfig | None:
    values: dict[str, Any] = {}
    for dotted, setting in settings.items():
        section, key = dotted.split(".", 1)
        field = EXCHANGE_FIELDS[key.split(".", 1)[1]] if section == "exchanges" else SECTIONS[section][key]
        try:
            values[dotted] = field(setting.raw)
        except _InvalidSecret as exc:
            problems.append(f"{setting.source}: {exc}")
        except _Invalid as exc:
            problems.append(f"{setting.source}: {_shown(setting.raw)}: {exc}")

    def require(dotted: str) -> Any:
        if dotted not in values and dotted not in settings:
            problems.append(f"{dotted}: missing; it has no default and must be set")
        return values.get(dotted)

    risk_values = {key: values.get(f"risk.{key}") for key in RISK_FIELDS}
    for key in ("max_position_size_usd", "max_total_exposure_usd", "max_daily_loss_usd", "min_profit_margin_bps"):
        require(f"risk.{key}")
    symbols = require("engine.symbols")
    position, exposure = risk_values["max_position_size_usd"], risk_values["max_total_exposure_usd"]
    if position is not None and exposure is not None and exposure < position:
        problems.append(
            f"{settings['risk.max_total_exposure_usd'].source}: {exposure}: must be at least "
            f"risk.max_position_size_usd ({position}, from {settings['risk.max_position_size_usd'].source})"
        )
    low, high = risk_values["min_profit_margin_bps"], risk_values["max_profit_margin_bps"]
    if high is None:
        high, where = DEFAULT_MAX_PROFIT_MARGIN_BPS, "the built-in default"
    else:
        where = settings["risk.max_profit_margin_bps"].source
    if low is not None and high < low:
        problems.append(
            f"risk.max_profit_margin_bps ({high}, {where}) must be at least risk.min_profit_margin_bps ({low}, from "
            f"{settings['risk.min_profit_margin_bps'].source}): no margin would pass both"
        )
    symbol_cap = risk_values["max_symbol_exposure_usd"]
    if symbol_cap is not None and exposure is not None and symbol_cap > exposure:
        problems.append(
            f"{settings['risk.max_symbol_exposure_usd'].source}: {symbol_cap}: must not exceed "
            f"risk.max_total_exposure_usd ({exposure})"
        )
    if symbol_cap is not None and position is not None and symbol_cap < position:
        # Every opportunity is sized up to the position limit: each would be refused, nothing traded.
        problems.append(
            f"{settings['risk.max_symbol_exposure_usd'].source}: {symbol_cap}: must be at least "
            f"risk.max_position_size_usd ({position}, from {settings['risk.max_position_size_usd'].source})"
        )

    exchanges = []
    for venue in VENUES:
        fields = {
            key: values[f"exchanges.{venue}.{key}"] for key in EXCHANGE_FIELDS if f"exchanges.{venue}.{key}" in values
        }
        if "markets" in fields:
            fields["markets"] = tuple(fields["markets"])
        exchanges.append(ExchangeConfig(name=venue, **fields))
    for exchange in exchanges:
        # Signed requests carry the API key: a live run sends them over TLS unless the venue is local.
        for key in ("rest_url", "ws_url", "futures_rest_url", "futures_ws_url"):
            url = getattr(exchange, key)
            if not dry_run and exchange.enabled and url is not None and _cleartext_remote(url):
                setting = settings[f"exchanges.{exchange.name}.{key}"]
                problems.append(
                    f"{setting.source}: {url!r}: a live run sends its API key and signed requests only over "
                    "https:// or wss:// (or to this machine)"
                )
        # Only Gate.io has a websocket trading API; elsewhere "ws" would silently mean REST.
        if exchange.order_transport == "ws" and exchange.name != "gateio":
            setting = settings[f"exchanges.{exchange.name}.order_transport"]
            problems.append(f'{setting.source}: "ws": {exchange.name} has no websocket trading API; use "rest"')
    markets = [name for exchange in exchanges if exchange.enabled for name in exchange.exchange_names]
    if len(markets) < 2:
        problems.append(
            "exchanges: at least two markets must be enabled to arbitrage between them; enabled: "
            + (", ".join(m.value for m in markets) or "none")
        )
    types = tuple(OpportunityType(t) for t in values.get("engine.opportunity_types", ["spot_spot"]))
    if OpportunityType.SPOT_FUTURES_HEDGE in types and not any(_futures_traded(m) for m in markets):
        data_only = [m.value for m in markets if m.is_futures]
        problems.append(
            f"{settings['engine.opportunity_types'].source}: spot_futures_hedge needs a venue with "
            'markets = ["spot", "futures"] whose futures can be traded'
            + (f" ({', '.join(data_only)}: market data only)" if data_only else "")
        )
    if OpportunityType.SPOT_SPOT in types and sum(not m.is_futures for m in markets) < 2:
        problems.append("engine.opportunity_types: spot_spot needs the spot market enabled on both venues")
    if problems:
        return None
    engine = {key: values[f"engine.{key}"] for key in ENGINE_FIELDS if f"engine.{key}" in values}
    engine.pop("symbols")
    engine["opportunity_types"] = types
    metrics = {key: values[f"metrics.{key}"] for key in METRICS_FIELDS if f"metrics.{key}" in values}
    return ArbitrageConfig(
        dry_run=dry_run,
        symbols=tuple(symbols),
        exchanges=tuple(exchanges),
        risk_limits=RiskLimits(**{k: v for k, v in risk_values.items() if v is not None}),
        sources=sources,
        metrics=MetricsConfig(**metrics),
        paper_balances={key: values[f"paper.{key}"] for key in PAPER_FIELDS if f"paper.{key}" in values},
        **engine,
    )
