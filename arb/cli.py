"""Command line: ``python -m arb <command>``.

Exit codes: 0 success, 1 runtime error (a backtest: the recording is damaged, or an instrument list
it holds does not parse), 2 bad configuration or usage,
130 interrupted (143: stopped by SIGTERM before it began).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.machinery
import importlib.metadata
import io
import logging
import os
import pkgutil
import platform
import signal
import sys
from collections.abc import Callable, Sequence
from decimal import Decimal, localcontext
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, cast

from . import __version__
from .config import ASSET_PATTERN, EVENT_LOOP_ENV, ConfigurationManager, event_loop_problem
from .errors import ArbitrageEngineError, ConfigurationError, StartupInterrupted
from .output import write_without_blocking
from .secrets import (
    VENUE_ENV_PREFIX, encrypt_secret, generate_encryption_key, header_safe, load_credentials, quote_around,
)
from .shutdown import (
    ShutdownManager, StopDelivery, StopSignals, Terminated, note_repeated_stop, release_stop_signals,
    signals_given_back,
)
from .types import MAX_EXPONENT, number_problem

if TYPE_CHECKING:
    import asyncio

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CONFIG = 2
RUN_REPORT_OPPORTUNITIES = 100_000  # the newest scanner hits a run's report keeps (all are counted)
# Upper bounds of the command line's numbers, far past any use, so that converting them to
# nanoseconds, bytes or seconds cannot overflow.
MAX_DELAY_MS = 60_000  # an order delay (simulated matching, backtest latency): a minute
MAX_ROTATE_MB = 1_000_000  # a recording part of a terabyte
MAX_ROTATE_HOURS = 366 * 24  # a recording part of a year
MIN_REPLAY_SPEED = Decimal("0.001")  # a recording replayed a thousand times slower than it was recorded
# Synthetic book updates a second per market and symbol. At this rate the simulator already keeps
# a core busy most of the time; past what it can generate, it falls further behind at every step.
MAX_SIM_RATE = 10_000
# Random dislocations a minute of the synthetic market: at this rate each 1 ms step of its price
# walk starts one.
MAX_DISLOCATIONS_PER_MINUTE = 60_000

DEPENDENCIES = ("msgspec", "orjson", "aiohttp", "picows", "numpy", "cryptography", "rich")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The engine's event loop: asyncio's, or uvloop's with ``ARB_EVENT_LOOP=uvloop`` (if installed).

    asyncio is the default: on the benchmarks uvloop gained about 10 % at the median of tick
    to order and nothing at the ingest p99, and it rounds sub-millisecond sleeps down to zero.
    """
    import asyncio

    choice = os.environ.get(EVENT_LOOP_ENV, "asyncio")
    problem = event_loop_problem(choice)
    if problem is not None:
        raise ConfigurationError([problem])
    if choice == "uvloop":
        try:
            # Imported by name: uvloop is optional, so type checking must not depend on it.
            uvloop = importlib.import_module("uvloop")
        except ImportError:
            raise ConfigurationError([f"{EVENT_LOOP_ENV}=uvloop: uvloop is not installed"]) from None
        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        return loop
    return asyncio.new_event_loop()


def compiled_core_status() -> list[tuple[str, str | None]]:
    """Each ``arb_core`` module with the file it loaded from, or None when it is not compiled."""
    import arb_core

    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    status: list[tuple[str, str | None]] = []
    for info in pkgutil.walk_packages(arb_core.__path__, prefix="arb_core."):
        if info.ispkg:
            continue
        module = importlib.import_module(info.name)
        path = getattr(module, "__file__", None) or ""
        status.append((info.name, path if path.endswith(suffixes) else None))
    return status


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m arb", description="Cross-exchange arbitrage for MEXC and Gate.io.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the engine (dry run on simulated venues by default)")
    modes = run.add_mutually_exclusive_group()
    modes.add_argument("--live", action="store_true", help="send real orders (needs API keys)")
    modes.add_argument("--paper", action="store_true", help="real public market data, simulated fills")
    run.add_argument("--config", metavar="FILE", help="user TOML file layered over the shipped defaults")
    run.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    run.add_argument("--duration", type=_positive_seconds, metavar="SECONDS", help="stop after this long")
    run.add_argument(
        "--sim-urls", metavar="FILE",
        help="dry run on the simulated venues of `arb sim --urls-out FILE` instead of starting its own "
        "(with --paper: read their public market data)",
    )
    run.add_argument(
        "--headless", action="store_true",
        help="JSON lines on stdout (status each second, executions, breaker trips, resyncs) instead of the live view",
    )
    run.add_argument("--report", metavar="DIR", help="at the end, write report.html, summary.json and charts to DIR")

    check = commands.add_parser("check-config", help="validate a configuration and print the effective settings")
    check.add_argument("file", nargs="?", metavar="FILE", help="user TOML file (default: shipped defaults only)")

    keys = commands.add_parser("keys", help="API key helpers")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    key_commands.add_parser("generate", help="print a new ENCRYPTION_KEY")
    key_commands.add_parser(
        "encrypt", help="encrypt one secret read from standard input with ENCRYPTION_KEY (for *_ENCRYPTED)"
    )
    key_commands.add_parser("show", help="show which venue keys are set (masked)")

    commands.add_parser("version", help="versions and whether the compiled core is loaded")

    sim = commands.add_parser("sim", help="serve the simulated venues on 127.0.0.1 and print their URLs")
    sim.add_argument("--seed", type=int, help="seed of the synthetic market (default 1; same seed, same market)")
    sim.add_argument("--symbols", nargs="+", action=_Distinct, default=["BTC/USDT", "ETH/USDT"], metavar="SYMBOL")
    sim.add_argument("--duration", type=_positive_seconds, metavar="SECONDS", help="stop after this long")
    sim.add_argument("--port-base", type=int, metavar="PORT", help="listen on PORT.. (default: free ports)")
    sim.add_argument(
        "--urls-out", metavar="FILE", help="also write the URLs and the funded key as JSON (for run --sim-urls)"
    )
    sim.add_argument("--rate", type=_sim_rate, metavar="N",
                     help=f"book updates per second per market and symbol of the synthetic market (default 100, "
                          f"at most {MAX_SIM_RATE})")
    sim.add_argument("--dislocations", type=_dislocation_rate, metavar="N", help=DISLOCATIONS_HELP)
    sim.add_argument(
        "--replay", nargs="+", metavar="FILE",
        help="replay recordings (arb record files or cryptofeed text recordings) instead of the synthetic market",
    )
    sim.add_argument("--speed", type=_replay_speed, metavar="X",
                     help="with --replay: X times real time (default 1), or \"max\" for as fast as possible")
    sim.add_argument("--matching-delay-ms", type=_non_negative_ms, default=0.0, metavar="X",
                     help="hold each order X ms after receiving it before matching it (default 0)")
    record = commands.add_parser(
        "record", help="record raw market data (simulated venues by default; --live: real public data)"
    )
    record_source = record.add_mutually_exclusive_group()
    record_source.add_argument("--sim", action="store_true", help="record the in-process simulated venues (default)")
    record_source.add_argument("--live", action="store_true", help="record the real venues' public market data")
    record.add_argument("--dislocations", type=_dislocation_rate, metavar="N", help=f"with --sim: {DISLOCATIONS_HELP}")
    record.add_argument("--venues", type=_word_list, default=["gateio", "mexc"], metavar="V1,V2",
                        help="venues to record (default: gateio,mexc)")
    record.add_argument("--markets", type=_word_list, default=["spot"], metavar="M1,M2",
                        help="spot and/or futures (default: spot)")
    record.add_argument("--symbols", nargs="+", action=_Distinct, default=["BTC/USDT"], metavar="SYMBOL",
                        help="spot-form symbols")
    record.add_argument("--out", required=True, metavar="FILE", help="recording file (never overwritten)")
    record.add_argument("--rotate-mb", type=_rotation("MB", 1_000_000, MAX_ROTATE_MB), metavar="N",
                        help="start a new part every N MB")
    record.add_argument("--rotate-hours", type=_rotation("hours", 3600, MAX_ROTATE_HOURS), metavar="H",
                        help="start a new part every H hours (aligned: 1 rotates on the UTC hour)")
    record.add_argument("--duration", type=_positive_seconds, metavar="SECONDS", help="stop after this long")
    record.add_argument("--config", metavar="FILE", help="user TOML file (timeouts, URL overrides)")
    record.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"))

    doctor = commands.add_parser("doctor", help="check config, keys, clock, compiled core and latency to each venue")
    doctor.add_argument("--config", metavar="FILE", help="user TOML file layered over the shipped defaults")
    doctor.add_argument("--sim", action="store_true", help="check against the in-process simulated venues")
    doctor.add_argument("--log-level", default="ERROR", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    backtest = commands.add_parser(
        "backtest", help="replay recordings through the engine with simulated fills (deterministic)"
    )
    backtest.add_argument("files", nargs="+", metavar="FILE",
                          help="recordings (arb record files or cryptofeed text recordings)")
    backtest.add_argument("--config", metavar="FILE", help="user TOML file layered over the shipped defaults")
    backtest.add_argument("--latency-ms", type=_non_negative_ms, default=0.0, metavar="X",
                          help="order arrival delay on every market, ms (default 0)")
    backtest.add_argument("--no-order-budgets", dest="order_budgets", action="store_false",
                          help="trade every opportunity, past the venues' order rate limits (an upper bound)")
    backtest.add_argument("--deposit", action=_Deposits, type=_deposit, default={}, metavar="ASSET=AMOUNT",
                          help="the account's amount of ASSET on every market, over the default deposits "
                               "(repeatable, each asset once)")
    backtest.add_argument("--report", metavar="DIR", help="write report.html, summary.json and charts to DIR")
    backtest.add_argument("--json", action="store_true", help="print the JSON summary on stdout instead of text")
    backtest.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"))

    export = commands.add_parser(
        "export", help="write the journal's fills, settled funding or orders as CSV (read-only, safe while running)"
    )
    export.add_argument("kind", choices=("fills", "funding", "orders"), help="what to export")
    export_source = export.add_mutually_exclusive_group()
    export_source.add_argument("--journal", metavar="FILE", help="the journal file (default: engine.journal_path)")
    export_source.add_argument("--config", metavar="FILE", help="user TOML file naming engine.journal_path")
    export.add_argument("--from", dest="from_day", type=_day, metavar="YYYY-MM-DD",
                        help="first UTC day to include (default: the journal's start)")
    export.add_argument("--to", dest="to_day", type=_day, metavar="YYYY-MM-DD",
                        help="last UTC day to include (default: today)")
    export.add_argument("--out", metavar="FILE", help="write to FILE instead of standard output (never overwritten)")
    export.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"))

    approvals = commands.add_parser(
        "approvals", help="list what awaits manual approval in a stopped engine's journal, or acknowledge one"
    )
    approvals_source = approvals.add_mutually_exclusive_group()
    approvals_source.add_argument("--journal", metavar="FILE", help="the journal file (default: engine.journal_path)")
    approvals_source.add_argument("--config", metavar="FILE", help="user TOML file naming engine.journal_path")
    approvals.add_argument("--acknowledge", metavar="OPPORTUNITY_ID",
                           help="record that an operator has dealt with this opportunity's residual")
    approvals.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return parser


def _day(text: str) -> int:
    from .export import parse_day

    try:
        return parse_day(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _word_list(text: str) -> list[str]:
    words = [word.strip() for word in text.split(",") if word.strip()]
    if not words:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
    if len(set(words)) != len(words):
        raise argparse.ArgumentTypeError(f"{_repeated(words)} given twice in {text!r}")
    return words


class _Distinct(argparse.Action):
    """Values of a ``nargs`` option, each given once."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        listed = list(values) if isinstance(values, list) else [values]
        if len(set(listed)) != len(listed):
            parser.error(f"{option_string}: {_repeated(listed)} given twice")
        setattr(namespace, self.dest, listed)


def _repeated(values: Sequence[object]) -> object:
    """The first value given a second time in ``values`` (which has one)."""
    seen: set[object] = set()
    for value in values:
        if value in seen:
            return value
        seen.add(value)
    raise ValueError("no value is repeated")


def _replay_speed(text: str) -> Decimal | None:
    if text == "max":
        return None
    try:
        value = Decimal(text)
    except ArithmeticError:
        raise argparse.ArgumentTypeError(f"expected a speed factor or \"max\", got {text!r}") from None
    if not value.is_finite() or value < MIN_REPLAY_SPEED:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_REPLAY_SPEED} and finite, got {text!r}")
    return value


_N = TypeVar("_N", int, float)  # a command-line number


def _bounded(parse: Callable[[str], _N], expected: str, low: float, high: float, unit: str = "") -> Callable[[str], _N]:
    """An option's number read by ``parse`` (``expected`` says what it takes), from ``low`` to ``high``."""

    def read(text: str) -> _N:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not low <= value <= high:  # a NaN is in no range
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}{unit}, got {text!r}")
        return value

    return read


_sim_rate = _bounded(int, "a whole number of updates a second", 1, MAX_SIM_RATE)
_dislocation_rate = _bounded(int, "a whole number of dislocations a minute", 0, MAX_DISLOCATIONS_PER_MINUTE)
_non_negative_ms = _bounded(float, "a number of milliseconds", 0, MAX_DELAY_MS, " ms")
DISLOCATIONS_HELP = ("random one-venue price dislocations a minute per symbol of the synthetic market, drawn from its "
                     "seed (default: as many as a dry run's market has; 0: none)")


def _deposit(text: str) -> tuple[str, Decimal]:
    asset, sep, amount = text.partition("=")
    if not sep or not asset.strip():
        raise argparse.ArgumentTypeError(f"expected ASSET=AMOUNT (SOL=250), got {text!r}")
    name = asset.strip().upper()
    if not ASSET_PATTERN.match(name):
        raise argparse.ArgumentTypeError(f"{asset.strip()!r} is not an asset name (up to 20 letters and digits)")
    try:
        value = Decimal(amount.strip())
    except ArithmeticError:
        raise argparse.ArgumentTypeError(f"{name}: amount {amount.strip()!r} is not a number") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"{name}: amount {amount.strip()!r} must be 0 or more and finite")
    problem = number_problem(value) or _atoms_problem(value)
    if problem:
        raise argparse.ArgumentTypeError(f"{name}: amount {amount.strip()!r}: {problem}")
    return name, value


def _atoms_problem(value: Decimal) -> str | None:
    """Why the simulated venues cannot hold ``value`` (within ``number_problem``'s range) exactly:
    more decimals than their smallest unit; None when they can."""
    from .sim.matching import ATOM_DECIMALS

    with localcontext() as context:
        context.prec = MAX_EXPONENT + ATOM_DECIMALS + 1  # every digit of the range to the unit: exact
        if value.quantize(Decimal(1).scaleb(-ATOM_DECIMALS)) == value:
            return None
    return f"more than {ATOM_DECIMALS} decimals (the simulated venues' smallest unit)"


class _Deposits(argparse.Action):
    """``--deposit`` values as asset -> amount, each asset given once."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        asset, amount = cast(tuple[str, Decimal], values)  # what ``_deposit`` made of the value
        deposits = dict(getattr(namespace, self.dest))
        if asset in deposits:
            parser.error(f"{option_string}: {asset} given twice")
        deposits[asset] = amount
        setattr(namespace, self.dest, deposits)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text!r}")
    return value


def _rotation(unit: str, per_unit: int, maximum: int) -> Callable[[str], float]:
    """A rotation size or interval in ``unit``: at least one byte or second, at most ``maximum`` ``unit``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number of {unit}, got {text!r}") from None
        if not (value * per_unit >= 1 and value <= maximum):
            raise argparse.ArgumentTypeError(f"must be from {1 / per_unit:g} to {maximum} {unit}, got {text!r}")
        return value

    return parse


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m arb``; returns the exit code."""
    _tolerant_output()
    args = _build_parser().parse_args(argv)
    if args.command != "run":  # a run's start-up takes a stop held since ``python -m arb`` began
        held = release_stop_signals()
        if held is not None:
            print(f"arb: received {held.name} before starting; stopped", file=sys.stderr)
            # A service stopped before it began stopped cleanly; any other command did not do its work.
            return EXIT_OK if args.command in ("record", "sim") else 128 + held

    logging.basicConfig(
        level=getattr(args, "log_level", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.command == "version":
            return _version()
        if args.command == "check-config":
            return _check_config(args.file)
        if args.command == "keys":
            return _keys(args.keys_command)
        if args.command == "run":
            return _run(args)
        if args.command == "sim":
            return _sim(args)
        if args.command == "record":
            return _record(args)
        if args.command == "doctor":
            return _doctor(args)
        if args.command == "export":
            return _export(args)
        if args.command == "approvals":
            return _approvals(args)
        return _backtest(args)
    except ConfigurationError as exc:
        print(f"arb: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except BrokenPipeError:
        # The reader went away (``arb version | head -1``): stop quietly, as other tools do. The
        # interpreter's final flush of stdout would fail again, so stdout now goes nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except StartupInterrupted as exc:  # asked to stop while starting: stopped cleanly, unless it flagged a residual
        print(f"arb: {exc}", file=sys.stderr)
        return EXIT_ERROR if exc.flagged else EXIT_OK
    except ArbitrageEngineError as exc:
        print(f"arb: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (``Terminated``) after ``release_stop_signals``
        return 128 + (signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)


def _tolerant_output() -> None:
    """Write what the output's encoding cannot take as escapes (``\\u2026``) rather than raise: on an
    ASCII or Latin-1 terminal the live view's first "…" killed its thread and every log line after
    it, and a venue's non-ASCII error text silenced the headless events for the rest of the run."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
            stream.reconfigure(errors="backslashreplace")


def _version() -> int:
    print(f"arb {__version__}")
    print(f"python {platform.python_version()} ({platform.python_implementation()}, {sys.platform})")
    for name in DEPENDENCIES:
        try:
            print(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            print(f"{name} not installed")
    status = compiled_core_status()
    missing = [name for name, path in status if path is None]
    if not status or missing:
        print(f"compiled core: NOT loaded ({', '.join(missing) or 'no modules found'})")
        return EXIT_ERROR
    print(f"compiled core: loaded ({len(status)} modules)")
    for name, path in status:
        print(f"  {name} {path}")
    return EXIT_OK


def _check_config(file: str | None) -> int:
    manager = ConfigurationManager(file)
    manager.load_configuration(dry_run=True)
    print(manager.summary())
    # A file may be checked on another machine than the one it is for (CI, a workstation): what
    # this machine's disk says of its journal path is told, and a run here refuses it.
    for problem in manager.journal_path_problems():
        print(f"check-config: on this machine: {problem}; a run here refuses it", file=sys.stderr)
    print("configuration OK")
    return EXIT_OK


def _keys(action: str) -> int:
    if action == "generate":
        print(generate_encryption_key())
        return EXIT_OK
    if action == "encrypt":
        key = os.environ.get("ENCRYPTION_KEY")
        if not key:
            raise ConfigurationError(["env ENCRYPTION_KEY: missing; create one with `python -m arb keys generate`"])
        if sys.stdin.isatty():  # typed or pasted: not echoed, so not left on the screen or in its scrollback
            import getpass

            try:
                secret = getpass.getpass("secret to encrypt (not shown): ", stream=sys.stderr)
            except EOFError:  # Ctrl-D: nothing typed
                secret = ""
        else:
            secret = sys.stdin.readline().rstrip("\r\n")
        if not secret:
            raise ConfigurationError(["standard input: empty; pipe the secret to encrypt, one line"])
        if not header_safe(secret):
            # The start would refuse it decrypted; say so now, not at the next live start.
            raise ConfigurationError([
                "standard input: the secret contains whitespace, control or non-ASCII characters; venue keys "
                "and secrets have none (a pasted space or tab?)"
            ])
        quote = quote_around(secret)
        if quote is not None:
            raise ConfigurationError([
                f"standard input: the secret is quoted (starts and ends with {quote}); give it without the quotes"
            ])
        try:
            print(encrypt_secret(secret, key))
        except ValueError:
            raise ConfigurationError(["env ENCRYPTION_KEY: not a valid Fernet key"]) from None
        return EXIT_OK
    problems: list[str] = []
    for venue, prefix in VENUE_ENV_PREFIX.items():
        try:
            credentials = load_credentials(venue)
        except ConfigurationError as exc:  # every venue's problems are reported, not only the first's
            problems.extend(exc.problems)
            continue
        if credentials is None:
            print(f"{venue}: no keys ({prefix}_API_KEY / {prefix}_SECRET_KEY not set)")
        else:
            print(f"{venue}: api key {credentials.api_key.masked()}, secret {credentials.secret_key.masked()}")
    if problems:
        raise ConfigurationError(list(dict.fromkeys(problems)))  # a bad ENCRYPTION_KEY once, not per venue
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    with signals_given_back():  # the run's own handling of them lasts until it has reported
        return _run_engine(args)


def _run_engine(args: argparse.Namespace) -> int:
    manager = ConfigurationManager(args.config)
    manager.load_configuration(dry_run=not args.live)
    manager.log_summary()
    import asyncio

    from .controller import SHUTDOWN_TIMEOUT_S, ArbitrageController, RunSummary
    from .metrics import serve_metrics
    from .output import off_loop_output
    from .view import Output, StatusLines, choose_output, install_json_events, uninstall_json_events, watch_run

    endpoints = None
    if args.sim_urls is not None:
        if args.live:
            raise ConfigurationError(["--sim-urls: live trading never attaches to simulated venues"])
        from .sim.cluster import SimEndpoints

        try:
            endpoints = SimEndpoints.read(args.sim_urls)
        except ValueError as exc:
            raise ConfigurationError([f"--sim-urls: {exc}"]) from None
    from .replay.report import LoggingMonitor, TradeLog, report_data, write_report

    if args.report is not None:
        _check_report_directory(args.report)
    trade_log = TradeLog(opportunities_kept=RUN_REPORT_OPPORTUNITIES)
    # The trade log keeps every execution for the report: only a run that writes one keeps it.
    monitor = LoggingMonitor(manager.config.target_execution_time_ms, trade_log) if args.report is not None else None
    # The process ends with the run: a stop after its shutdown steps, while the summary and the
    # report are written, is noted (a second forces exit) rather than left to end it unreported.
    shutdown = ShutdownManager(timeout_s=SHUTDOWN_TIMEOUT_S, keep_signals=True)
    controller = ArbitrageController(manager, sim_endpoints=endpoints, monitor=monitor, shutdown=shutdown)

    async def trade() -> RunSummary:
        config = manager.config
        # Up before initialize: liveness answers while the venues connect; readiness follows the books.
        async with serve_metrics(config.metrics, controller, max_data_age_ms=config.max_data_age_ms):
            await controller.initialize(dry_run=not args.live, paper=args.paper)
            sampler = None
            if args.report is not None and controller.pipeline is not None:
                trade_log.attach(controller)
                sampler = asyncio.get_running_loop().create_task(
                    trade_log.sample_spreads_every(controller.pipeline)
                )
            started_ns = controller.clock()
            try:
                return await watch_run(controller, output, args.duration, lines=lines)
            finally:
                if sampler is not None:
                    sampler.cancel()
                if args.report is not None:
                    _run_report(controller, trade_log, started_ns, args.report)

    report_failed: list[str] = []

    def _run_report(controller: ArbitrageController, log: TradeLog, started_ns: int, directory: str) -> None:
        data = report_data(f"arb run ({controller.mode})", controller.summary(), log, controller.monitor,
                           start_ns=started_ns)
        try:
            print(f"report written: {write_report(data, directory)[0]}", file=sys.stderr)
        except OSError as exc:  # the run's summary still follows
            print(f"arb run: report not written to {directory}: {exc}", file=sys.stderr)
            report_failed.append(str(exc))

    # While it runs, what it writes goes out through writer threads: a reader that stops reading
    # (a paused pager, a log shipper pushing back) must not stall the event loop.
    with off_loop_output():
        # Status lines and the summary: a stdout closed from the start (``>&-``), or whose reader
        # goes away, takes none of them (the summary then goes to stderr); JSON events go nowhere then.
        lines = StatusLines(sys.stdout)
        output = choose_output(args.headless, sys.stdout)
        events = (
            install_json_events(sys.stdout if sys.stdout is not None else open(os.devnull, "w"))  # noqa: SIM115
            if output is Output.HEADLESS else None
        )
        try:
            with asyncio.Runner(loop_factory=new_event_loop) as runner:
                summary = runner.run(trade())
        finally:  # a caller in this process (a test, an embedding program) keeps its logging as it was
            if events is not None:
                uninstall_json_events(events)
    # Headless stdout carries JSON only (the summary was its last event); the text goes to stderr,
    # as it does when stdout no longer takes it.
    text = "\n".join(summary.lines())
    if output is Output.HEADLESS or not lines.write(text):
        print(text, file=sys.stderr, flush=True)
    return EXIT_OK if summary.ok and not report_failed else EXIT_ERROR


def _check_report_directory(directory: str) -> None:
    """Refuse a ``--report`` directory that cannot be written before the run, not after it."""
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError([f"--report {directory}: cannot create the directory: {exc.strerror or exc}"]) from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigurationError([f"--report {directory}: not writable"])


def _recording_problems(names: Sequence[str]) -> list[str]:
    """Why the recordings named cannot be replayed from their start: missing, a directory, or a file
    of one that cannot be opened (found while replaying, it would pass for a damaged recording)."""
    from .replay.recorder import recording_files

    problems = []
    for name in names:
        if os.path.isdir(name):
            problems.append(f"{name}: is a directory, expected a recording file")
            continue
        files = recording_files(name)
        if not files:
            problems.append(f"{name}: file not found")
        for path in files:
            try:
                with path.open("rb"):
                    pass
            except OSError as exc:
                problems.append(f"{path}: not readable: {exc.strerror or exc}")
    return problems


def _backtest(args: argparse.Namespace) -> int:
    import msgspec

    from .replay.player import BacktestSettings, LatencyModel, backtest
    from .replay.report import write_report

    problems = _recording_problems(args.files)
    if problems:
        raise ConfigurationError(problems)
    if args.report is not None:
        _check_report_directory(args.report)
    manager = ConfigurationManager(args.config)
    manager.load_configuration(dry_run=True)
    deposits = {**BacktestSettings().deposits, **args.deposit}
    settings = BacktestSettings(
        latency=LatencyModel.fixed_ms(Decimal(str(args.latency_ms))), progress=not args.json and sys.stderr.isatty(),
        order_budgets=args.order_budgets, deposits=deposits,
    )
    result = backtest(args.files, manager, settings)
    # No symbol to trade (the notes say why): no run to take for a result, and no report of one.
    traded_nothing = not result.symbols
    report_failed = False
    if args.report is not None and result.report is None:
        print(f"arb backtest: no report written to {args.report}: the engine traded no symbol of this recording "
              "(see the notes)", file=sys.stderr)
        traded_nothing = True
    elif args.report is not None and result.report is not None:
        try:
            print(f"report written: {write_report(result.report, args.report)[0]}", file=sys.stderr)
        except OSError as exc:  # the summary still follows
            print(f"arb backtest: report not written to {args.report}: {exc}", file=sys.stderr)
            report_failed = True
    if args.json:
        summary = result.report.summary() if result.report is not None else {}
        summary.update(
            records=result.records, records_per_s=round(result.records_per_s),
            damage=None if result.damage is None else msgspec.to_builtins(result.damage),
            damages=msgspec.to_builtins(result.damages), instrument_errors=result.instrument_errors,
            markets=[m.value for m in result.markets], symbols=result.symbols, books=len(result.books),
        )
        print(msgspec.json.encode(summary).decode())
    else:
        print("\n".join(result.lines()))
    if traded_nothing and args.report is None:  # with --report, said above
        print("arb backtest: the engine traded no symbol of this recording (see the notes)", file=sys.stderr)
    # A list that does not parse leaves the market on the simulator's terms: not a result to take
    # for one on the venue's, so it fails the backtest as damage does.
    failed = result.damage is not None or result.instrument_errors or traded_nothing or report_failed
    return EXIT_ERROR if failed else EXIT_OK


def _stop_on_signals(signalled: list[str]) -> asyncio.Event:
    """An event the first SIGINT or SIGTERM sets (its name appended to ``signalled``), on the running
    loop; a second one (not the first delivered twice: ``StopSignals``) exits at once, should
    stopping hang. Handled, not left to their defaults: a container's first process is never given
    a signal it has no handler for."""
    import asyncio

    loop, stop = asyncio.get_running_loop(), asyncio.Event()
    received = StopSignals()

    def on_signal(signum: signal.Signals) -> None:
        delivery = received.receive(signum)
        if delivery is StopDelivery.SECOND:
            write_without_blocking(f"arb: received {signum.name} again while stopping: exiting\n")
            os._exit(EXIT_ERROR)
        if delivery is StopDelivery.REPEAT:
            note_repeated_stop(signum)
            return
        signalled.append(signum.name)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    return stop


def _sim(args: argparse.Namespace) -> int:
    import asyncio
    import contextlib

    from .replay.recorder import recording_files
    from .sim.cluster import SimCluster, SimConfig

    # Options of the other source would be silently ignored: refused, so a run is what was asked for.
    if args.replay and (args.seed is not None or args.rate is not None or args.dislocations is not None):
        print("arb sim: --seed, --rate and --dislocations shape the synthetic market; a --replay has none",
              file=sys.stderr)
        return EXIT_CONFIG
    if not args.replay and args.speed is not None:
        print("arb sim: --speed sets a --replay's pace; the synthetic market has none", file=sys.stderr)
        return EXIT_CONFIG
    for path in args.replay or ():
        if not os.path.isfile(path) and not recording_files(path):  # a rotated recording's name: its parts
            print(f"arb sim: --replay {path}: no such file", file=sys.stderr)
            return EXIT_CONFIG
    if args.urls_out is not None and os.path.isdir(args.urls_out):
        print(f"arb sim: --urls-out {args.urls_out}: is a directory, expected a file name", file=sys.stderr)
        return EXIT_CONFIG
    try:
        config = SimConfig(seed=1 if args.seed is None else args.seed, symbols=tuple(args.symbols),
                           port_base=args.port_base, updates_per_second=100 if args.rate is None else args.rate,
                           replay=tuple(Path(f) for f in args.replay or ()),
                           replay_speed=Decimal(1) if args.speed is None else args.speed,
                           matching_delay_ms=args.matching_delay_ms,
                           dislocations_per_minute=_dislocations_per_minute(args))
        cluster = SimCluster(config)
    except ValueError as exc:
        print(f"arb sim: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if cluster.replay is not None:
        replay = cluster.replay
        drops = replay.drops
        shown = f" and {drops} stream drops" if drops else ""
        print(f"replaying {len(replay.frames) - drops} book updates{shown} of {replay.records} records", flush=True)
        for damage in replay.damages:
            print(f"arb sim: replay stops early: {damage}", file=sys.stderr)

    if args.urls_out is not None and not os.path.isdir(os.path.dirname(os.path.abspath(args.urls_out))):
        print(f"arb sim: --urls-out {args.urls_out}: its directory does not exist", file=sys.stderr)
        return EXIT_CONFIG

    signalled: list[str] = []

    async def serve() -> str | None:
        """Serve until stopped; why the URLs file could not be written, if it could not."""
        stop = _stop_on_signals(signalled)
        async with cluster:
            if args.urls_out is not None:
                try:
                    cluster.endpoints().write(args.urls_out)
                except OSError as exc:  # the file's error, not a socket's: told apart from "cannot listen"
                    return f"--urls-out: cannot write the URLs file {args.urls_out}: {exc.strerror or exc}"
            for line in cluster.url_lines():
                print(line, flush=True)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), args.duration)
        return None

    try:
        unwritten = asyncio.run(serve())
    except OSError as exc:
        print(f"arb sim: cannot listen: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if unwritten is not None:
        print(f"arb sim: {unwritten}", file=sys.stderr)
        return EXIT_CONFIG
    if signalled:
        print(f"stopped by {signalled[0]}", flush=True)
    return EXIT_OK


def _dislocations_per_minute(args: argparse.Namespace) -> int:
    """The synthetic market's random dislocations a minute: ``--dislocations``, else a dry run's."""
    from .sim.cluster import DISLOCATIONS_PER_MINUTE

    return DISLOCATIONS_PER_MINUTE if args.dislocations is None else int(args.dislocations)


def _record(args: argparse.Namespace) -> int:
    import asyncio
    import contextlib

    from .doctor import public_connector
    from .exchanges.connector import ExchangeConnector
    from .exchanges.factory import ExchangeFactory, market_symbols
    from .replay.recorder import Recorder, record_markets
    from .sim.cluster import SimCluster, SimConfig
    from .types import ExchangeName

    problems = [f"--venues: unknown venue {v!r} (known: gateio, mexc)" for v in args.venues if v not in VENUE_ENV_PREFIX]
    problems += [f"--markets: unknown market {m!r} (known: spot, futures)" for m in args.markets
                 if m not in ("spot", "futures")]
    if args.live and args.dislocations is not None:
        problems.append("--dislocations: shapes the simulated market; --live records the real one")
    if problems:
        raise ConfigurationError(problems)
    markets = [ExchangeName(v if m == "spot" else f"{v}_{m}") for v in args.venues for m in args.markets]
    sim = not args.live
    manager = ConfigurationManager(args.config)
    manager.load_configuration(dry_run=sim)
    cluster = None
    if sim:
        try:
            cluster = SimCluster(SimConfig(symbols=tuple(args.symbols), venues=tuple(dict.fromkeys(args.venues)),
                                           dislocations_per_minute=_dislocations_per_minute(args)))
        except ValueError as exc:
            raise ConfigurationError([f"--symbols: {exc}"]) from None
    try:
        recorder = Recorder(
            args.out,
            rotate_bytes=None if args.rotate_mb is None else int(args.rotate_mb * 1_000_000),
            rotate_interval_s=None if args.rotate_hours is None else max(1, int(args.rotate_hours * 3600)),
        )
    except OSError as exc:  # the --out given: taken already, or in a directory that cannot take it
        print(f"arb record: cannot create {args.out}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    source = "simulated venues" if sim else "real venues (public data)"
    print(f"recording {', '.join(m.value for m in markets)} {' '.join(args.symbols)} from {source} to {args.out}",
          flush=True)

    signalled: list[str] = []

    async def record() -> dict[ExchangeName, int]:
        # SIGTERM (a service manager's stop) and Ctrl-C end the recording as --duration does:
        # streams stopped, the file closed with its end marker, the summary printed.
        stop = _stop_on_signals(signalled)
        async with contextlib.AsyncExitStack() as stack:
            factory = ExchangeFactory(manager)
            if cluster is not None:
                await stack.enter_async_context(cluster)
                factory = ExchangeFactory(manager, sim_urls=cluster.urls())
            connectors: dict[ExchangeName, ExchangeConnector] = {}
            for market in markets:
                connector = public_connector(factory, market, sim)
                stack.push_async_callback(connector.close)
                connectors[market] = connector
            symbols = {market: market_symbols(market, args.symbols) for market in markets}
            return await record_markets(
                connectors, symbols, recorder, args.duration, status=lambda line: print(line, flush=True), stop=stop
            )

    try:
        delivered = asyncio.run(record())
    except BaseException:
        stats = recorder.close()
        if not stats.records:  # failed before recording anything: nothing to keep, and --out free for a retry
            for name in stats.files:
                with contextlib.suppress(OSError):
                    os.remove(name)
        raise
    stats = recorder.close()
    if signalled:
        print(f"stopped by {signalled[0]}")
    for market, count in delivered.items():
        print(f"  {market.value:<15} {count} websocket messages")
    ratio = f", {stats.stored_bytes / stats.records:.0f} B/record" if stats.records else ""
    print(f"recorded {stats.records} records, {stats.stored_bytes} bytes{ratio} in {len(stats.files)} file(s):")
    for name in stats.files:
        print(f"  {name}")
    if stats.error is not None:
        print(f"arb record: {stats.error}; {stats.dropped} records dropped", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def _journal_named(args: argparse.Namespace, command: str) -> str:
    """The journal ``--journal`` names (else the configuration's), checked to be one before it is
    opened (any other file is left as it is); a ConfigurationError (usage, exit 2) otherwise."""
    from .export import ExportError, journal_version

    path: str = args.journal
    if path is None:
        path = ConfigurationManager(args.config).load_configuration(dry_run=True).journal_path
    if not os.path.isfile(path):
        raise ConfigurationError([f"{command}: no journal at {path}"])
    try:
        journal_version(path)
    except ExportError as exc:
        raise ConfigurationError([f"{command}: {exc}"]) from None
    return path


def _export(args: argparse.Namespace) -> int:
    from .export import export_journal
    from .risk import MS_PER_DAY

    path = _journal_named(args, "export")
    since_ms = args.from_day or 0
    until_ms = None if args.to_day is None else args.to_day + MS_PER_DAY
    if until_ms is not None and until_ms <= since_ms:
        raise ConfigurationError(["export: --to must not be before --from"])
    if args.out is None:
        count = export_journal(path, args.kind, sys.stdout, since_ms=since_ms, until_ms=until_ms)
    else:
        try:
            file = open(args.out, "x", encoding="utf-8", newline="")
        except OSError as exc:
            raise ConfigurationError([f"export --out {args.out}: {exc.strerror or exc}"]) from None
        try:
            with file:
                count = export_journal(path, args.kind, file, since_ms=since_ms, until_ms=until_ms)
        except BaseException:
            os.unlink(args.out)  # no partial export left behind to be taken for a whole one
            raise
    print(f"arb export: {count} {args.kind} rows from {path}", file=sys.stderr)
    return EXIT_OK


def _approvals(args: argparse.Namespace) -> int:
    from .export import read_only_journal
    from .journal import flags_awaiting_approval, intent_log_in_use, sqlite_errors_named

    path = _journal_named(args, "approvals")  # before opening it
    if intent_log_in_use(path):
        raise ConfigurationError([
            f"approvals: the journal {path} is in use by a running engine; stop it first (while it runs, its "
            "live view, log and arb_recoveries_active metric show what awaits approval)"
        ])
    if args.acknowledge is not None:
        return _acknowledge(path, args.acknowledge)
    # Read-only: the journal is left for the engine that runs it (the schema of its version, its intent log).
    with read_only_journal(path) as (db, _), sqlite_errors_named(path):
        waiting = flags_awaiting_approval(db, path)
    for opp, symbol, detail in waiting:
        print(f"{opp}  {symbol}  residual {detail['residual']}  {detail.get('reason', '')}")
    print(f"arb approvals: {len(waiting)} awaiting approval in {path}", file=sys.stderr)
    return EXIT_OK


def _acknowledge(path: str, opportunity_id: str) -> int:
    """Journal that an operator dealt with ``opportunity_id``'s flag; refused on a journal of an older
    schema, which opening it to write would upgrade past what the engine that runs it reads."""
    from .export import journal_version
    from .journal import SCHEMA_VERSION, Journal

    version = journal_version(path)
    if version < SCHEMA_VERSION:
        raise ConfigurationError([
            f"approvals: the journal {path} is of schema version {version}; acknowledging would upgrade it to "
            f"version {SCHEMA_VERSION}, which an engine of an earlier arb refuses to open: acknowledge with the "
            "arb that runs it, or start this arb's engine on it first (its start upgrades it)"
        ])
    with Journal(path) as journal, journal.damage_named():
        if opportunity_id not in {opp for opp, _, _ in journal.awaiting_approval()}:
            raise ConfigurationError([f"approvals: nothing awaits approval for {opportunity_id!r} in {path}"])
        journal.record_recovery_step(opportunity_id, "acknowledged", {"by": "operator"})
    print(f"arb approvals: {opportunity_id} acknowledged; it no longer awaits approval at the next start")
    return EXIT_OK


def _doctor(args: argparse.Namespace) -> int:
    import asyncio

    from .doctor import diagnose

    diagnosis = asyncio.run(diagnose(args.config, sim=args.sim))
    print("\n".join(diagnosis.lines()), flush=True)
    if diagnosis.config_failed:
        return EXIT_CONFIG
    return EXIT_ERROR if diagnosis.failed else EXIT_OK
