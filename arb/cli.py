"""Command line: ``python -m arb <command>``.

Exit codes: 0 success, 1 runtime error, 2 bad configuration or usage, 3 command not built yet.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.machinery
import importlib.metadata
import logging
import os
import pkgutil
import platform
import sys
from collections.abc import Sequence

from . import __version__
from .config import ConfigurationManager
from .errors import ArbitrageEngineError, ConfigurationError
from .secrets import VENUE_ENV_PREFIX, encrypt_secret, generate_encryption_key, load_credentials

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_NOT_BUILT = 3

DEPENDENCIES = ("msgspec", "orjson", "aiohttp", "picows", "numpy", "cryptography")
NOT_BUILT = {
    "record": "market-data recording",
    "backtest": "replay and backtest",
    "doctor": "diagnostics",
}


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
    sim.add_argument("--seed", type=int, default=1, help="seed of the synthetic market (same seed, same market)")
    sim.add_argument("--symbols", nargs="+", default=["BTC/USDT", "ETH/USDT"], metavar="SYMBOL")
    sim.add_argument("--duration", type=_positive_seconds, metavar="SECONDS", help="stop after this long")
    sim.add_argument("--port-base", type=int, metavar="PORT", help="listen on PORT.. (default: free ports)")
    sim.add_argument("--rate", type=int, default=100, metavar="N", help="book updates per second per market and symbol")
    for name in ("record", "backtest", "doctor"):
        commands.add_parser(name, help=f"{NOT_BUILT[name]} (not built yet)")
    return parser


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m arb``; returns the exit code."""
    args = _build_parser().parse_args(argv)
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
        return _not_built(args.command)
    except ConfigurationError as exc:
        print(f"arb: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ArbitrageEngineError as exc:
        print(f"arb: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


def _not_built(command: str) -> int:
    print(f"arb {command}: {NOT_BUILT[command]} is not built yet; see README.md (Features).", file=sys.stderr)
    return EXIT_NOT_BUILT


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
        secret = sys.stdin.readline().rstrip("\r\n")
        if not secret:
            raise ConfigurationError(["standard input: empty; pipe the secret to encrypt, one line"])
        try:
            print(encrypt_secret(secret, key))
        except ValueError:
            raise ConfigurationError(["env ENCRYPTION_KEY: not a valid Fernet key"]) from None
        return EXIT_OK
    for venue, prefix in VENUE_ENV_PREFIX.items():
        credentials = load_credentials(venue)
        if credentials is None:
            print(f"{venue}: no keys ({prefix}_API_KEY / {prefix}_SECRET_KEY not set)")
        else:
            print(f"{venue}: api key {credentials.api_key.masked()}, secret {credentials.secret_key.masked()}")
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    manager = ConfigurationManager(args.config)
    manager.load_configuration(dry_run=not args.live)
    manager.log_summary()
    if args.paper:
        print(
            "arb run --paper: paper trading (real public market data, fills simulated against the live book) "
            "is not built yet; `python -m arb run` is a dry run on the simulated venues.",
            file=sys.stderr,
        )
        return EXIT_NOT_BUILT
    import asyncio

    from .controller import ArbitrageController, RunSummary

    controller = ArbitrageController(manager, status=lambda line: print(line, flush=True))

    async def trade() -> RunSummary:
        await controller.initialize(dry_run=not args.live)
        return await controller.run(args.duration)

    summary = asyncio.run(trade())
    print("\n".join(summary.lines()), flush=True)
    return EXIT_OK if summary.ok else EXIT_ERROR


def _sim(args: argparse.Namespace) -> int:
    import asyncio

    from .sim.cluster import SimCluster, SimConfig

    try:
        config = SimConfig(seed=args.seed, symbols=tuple(args.symbols), port_base=args.port_base,
                           updates_per_second=args.rate)
        cluster = SimCluster(config)
    except ValueError as exc:
        print(f"arb sim: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    async def serve() -> None:
        async with cluster:
            for line in cluster.url_lines():
                print(line, flush=True)
            if args.duration is None:
                await asyncio.Event().wait()
            else:
                await asyncio.sleep(args.duration)

    try:
        asyncio.run(serve())
    except OSError as exc:
        print(f"arb sim: cannot listen: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK
