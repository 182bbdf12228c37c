"""``python -m arb doctor`` against the simulated venues: a healthy setup passes, a broken one fails with advice."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from simvenues import API_KEY, CREDENTIALS, instruments

from arb.config import ConfigurationManager
from arb.doctor import Diagnosis, Finding, Level, check_account, check_live, check_symbols, clock_finding, diagnose
from arb.errors import ExchangeError
from arb.exchanges.factory import registered
from arb.sim.server import SimulatedVenue
from arb.instruments import InstrumentCatalog, SkippedPair
from arb.secrets import ApiCredentials, Secret
from arb.sim.cluster import default_instruments
from arb.types import ExchangeName


def arb(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ARB_", "MEXC_", "GATEIO_", "ENCRYPTION_"))}
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "arb", *args], cwd=cwd, env=clean, capture_output=True, text=True, timeout=60
    )


def test_doctor_checks_only_the_markets_a_run_would_connect(tmp_path: Path) -> None:
    """Spot-spot only (the shipped default): a run connects no futures market, so a key without
    futures permission must not fail the check."""
    result = arb("doctor", "--sim", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "gateio account" in result.stdout and "gateio_futures" not in result.stdout


def test_doctor_passes_on_the_simulator_and_measures_every_market(tmp_path: Path) -> None:
    result = arb("doctor", "--sim", cwd=tmp_path, env={"MEXC_API_KEY": "visible-api-key",
                                                      "MEXC_SECRET_KEY": "visible-secret",
                                                      "ARB_OPPORTUNITY_TYPES": "spot_spot,spot_futures_hedge"})
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.startswith("arb doctor (simulated venues)")
    assert "compiled core" in out and "doctor: everything OK" in out
    for market in ("mexc", "gateio", "gateio_futures"):  # the shipped venues, hedging on
        lines = {line.split()[1] + " " + line.split()[2]: line for line in out.splitlines() if line.startswith("  ok")}
        assert "median" in lines[f"{market} rest"]
        assert "ms" in lines[f"{market} clock"]
        assert "connected in" in lines[f"{market} ws"]
    assert "api key <15 chars>" in out
    assert "visible" not in out + result.stderr
    ok = [line.split(None, 1)[1] for line in out.splitlines() if line.startswith("  ok")]
    assert any(line.startswith("gateio BTC/USDT        tradable: tick 0.1, lot 0.000001") for line in ok)
    assert any(line.startswith("gateio_futures BTC/USDT:USDT tradable:") and "contract 0.0001 BTC" in line for line in ok)
    assert any(line.startswith("mexc ETH/USDT") and line.endswith("listed taker fee 0.05%") for line in ok)
    # The signed call --live starts with, on the simulated account (its keys, not the configured ones).
    for market in ("mexc", "gateio", "gateio_futures"):
        assert f"{market} account" in lines and "signed balance call answered" in lines[f"{market} account"]
        assert "USDT free 1000000" in lines[f"{market} account"]
    assert lines["gateio fees"].endswith("the account's rates: BTC/USDT taker 0.2%, maker 0.2%; "
                                         "ETH/USDT taker 0.2%, maker 0.2%")


def test_a_symbol_a_market_does_not_list_as_tradable_fails_with_the_reason() -> None:
    listed = [i for i in default_instruments(("BTC", "ETH")) if i.exchange is ExchangeName.GATEIO and i.base == "ETH"]
    halted = SkippedPair("BTC_USDT", "BTC/USDT", "trade_status=untradable")

    class Listing:
        exchange = ExchangeName.GATEIO

        async def read_instruments(self) -> InstrumentCatalog:
            return InstrumentCatalog(ExchangeName.GATEIO, listed, [halted])

    findings = asyncio.run(check_symbols(Listing(), ["BTC/USDT", "ETH/USDT"]))  # type: ignore[arg-type]
    assert [(f.check, f.level) for f in findings] == [("gateio BTC/USDT", Level.FAIL), ("gateio ETH/USDT", Level.OK)]
    assert "trade_status=untradable" in findings[0].detail and "engine.symbols" in findings[0].advice


def test_a_broken_config_fails_with_the_problem_and_advice(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[engine]\nmax_data_age_ms = -5\n")
    result = arb("doctor", "--sim", "--config", str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    failed = next(i for i, line in enumerate(lines) if line.split()[:2] == ["FAIL", "config"])
    assert "max_data_age_ms" in lines[failed] and "-5" in lines[failed]
    assert "->" in lines[failed + 1] and "check-config" in lines[failed + 1]
    assert "1 problem(s)" in lines[-1]


def test_a_journal_path_every_run_refuses_fails_the_doctor(tmp_path: Path) -> None:
    """It said everything OK for a journal path that every run then refused with exit 2."""
    config = tmp_path / "arb.toml"
    config.write_text(f'[engine]\njournal_path = "{tmp_path / "nonexistent" / "j.sqlite3"}"\n')
    result = arb("doctor", "--sim", "--config", str(config), cwd=tmp_path)
    lines = result.stdout.splitlines()
    failed = next(i for i, line in enumerate(lines) if line.split()[:2] == ["FAIL", "journal"])
    assert "engine.journal_path" in lines[failed] and "does not exist" in lines[failed]
    assert result.returncode == 2 and "Traceback" not in result.stderr  # as every run refuses it


def test_symbols_the_simulated_venues_do_not_list_fail_the_doctor_as_the_run_refuses_them(tmp_path: Path) -> None:
    """``doctor --sim`` exited 1 for symbols a dry run refuses with exit 2."""
    result = arb("doctor", "--sim", cwd=tmp_path, env={"ARB_SYMBOLS": "SOL/USDT"})
    assert any(line.split()[:2] == ["FAIL", "simulator"] for line in result.stdout.splitlines())
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_a_venue_that_does_not_answer_fails_with_advice(tmp_path: Path) -> None:
    import socket

    with socket.socket() as closed:  # a loopback port with nothing listening
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    config = tmp_path / "dead.toml"
    config.write_text(
        f"[exchanges.mexc]\nrest_url = 'http://127.0.0.1:{port}'\nws_url = 'ws://127.0.0.1:{port}/ws'\n"
        f"rest_timeout_ms = 500\n"
        f"[exchanges.gateio]\nmarkets = ['spot']\nrest_url = 'http://127.0.0.1:{port}/api/v4'\n"
        f"ws_url = 'ws://127.0.0.1:{port}/ws/v4/'\nrest_timeout_ms = 500\n"
    )
    result = arb("doctor", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    rest = next(i for i, line in enumerate(lines) if line.split()[:3] == ["FAIL", "gateio", "rest"])
    assert "unreachable" in lines[rest] and "network" in lines[rest + 1]
    ws = next(line for line in lines if line.split()[:3] == ["FAIL", "gateio", "ws"])
    assert f"connection to ws://127.0.0.1:{port}/ws/v4/ failed: ConnectionRefusedError" in ws  # not only a count


LIVE_STATED = """
[engine]
symbols = ['BTC/USDT']
[risk]
max_position_size_usd = '100'
max_total_exposure_usd = '500'
max_daily_loss_usd = '50'
"""


async def diagnose_venues_at_configured_urls(tmp_path: Path, config_text: str) -> Diagnosis:
    """``doctor`` for real venues, with ``config_text`` plus simulated venues' URLs as the configuration."""
    async with (
        SimulatedVenue("mexc", instruments(), credentials={API_KEY: CREDENTIALS}) as mexc,
        SimulatedVenue("gateio", instruments(), credentials={API_KEY: CREDENTIALS}) as gate,
    ):
        config = tmp_path / "arb.toml"
        config.write_text(
            config_text
            + f"[exchanges.mexc]\nrest_url = '{mexc.urls().rest_url}'\nws_url = '{mexc.urls().ws_url}'\n"
            f"[exchanges.gateio]\nmarkets = ['spot']\nrest_url = '{gate.urls().rest_url}'\n"
            f"ws_url = '{gate.urls().ws_url}'\n"
        )
        return await diagnose(str(config), sim=False, pings=1)


def test_what_a_live_run_refuses_in_the_configuration_fails_the_doctor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The doctor said everything OK for a configuration ``run --live`` then refused (exit 2)."""
    for prefix in ("MEXC", "GATEIO"):
        monkeypatch.setenv(f"{prefix}_API_KEY", API_KEY)
        monkeypatch.setenv(f"{prefix}_SECRET_KEY", "sim-secret-1")
    monkeypatch.setenv("ARB_ENABLE_RISK_CHECKS", "false")
    diagnosis = asyncio.run(diagnose_venues_at_configured_urls(tmp_path, "[engine]\nsymbols = ['BTC/USDT']\n"))
    live = [f for f in diagnosis.findings if f.check == "live"]
    assert [f.level for f in live] == [Level.FAIL, Level.FAIL] and diagnosis.failed
    assert live[0].detail.endswith("missing there: risk.max_position_size_usd, risk.max_total_exposure_usd, "
                                   "risk.max_daily_loss_usd")
    assert live[1].detail.startswith("engine.enable_risk_checks is false (env ARB_ENABLE_RISK_CHECKS)")
    assert "run --live` refuses to start" in live[0].advice


def test_without_keys_what_a_live_run_refuses_is_a_warning(tmp_path: Path) -> None:
    """No keys: a setup for dry runs and public data, which the doctor checks too."""
    manager = ConfigurationManager(None, environ={})
    config = manager.load_configuration(dry_run=False)
    (finding,) = check_live(manager, config)
    assert finding.level is Level.WARN and "missing there: engine.symbols" in finding.detail


@pytest.mark.parametrize("right_keys", [True, False], ids=["right keys", "wrong secret"])
def test_the_account_check_makes_the_signed_call_with_the_configured_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, right_keys: bool
) -> None:
    """Against real venues (here a simulated MEXC at the configured URLs), the doctor signs with
    the venue's configured keys: what ``--live`` would refuse, it fails, naming the likely causes."""
    secret = "sim-secret-1" if right_keys else "not-the-secret"
    for prefix, venue_secret in (("MEXC", secret), ("GATEIO", "sim-secret-1")):
        monkeypatch.setenv(f"{prefix}_API_KEY", API_KEY)
        monkeypatch.setenv(f"{prefix}_SECRET_KEY", venue_secret)

    diagnosis = asyncio.run(diagnose_venues_at_configured_urls(tmp_path, LIVE_STATED))
    by_check = {f.check: f for f in diagnosis.findings}
    account = by_check["mexc account"]
    text = "\n".join(diagnosis.lines())
    assert secret not in text and API_KEY not in text
    assert by_check["gateio account"].level is Level.OK and "(GATEIO_API_KEY)" in by_check["gateio account"].detail
    if right_keys:
        assert account.level is Level.OK and "(MEXC_API_KEY)" in account.detail and not diagnosis.failed, text
        assert by_check["mexc fees"].detail == "the account's rates: BTC/USDT taker 0.1%, maker 0.05%"
    else:
        assert account.level is Level.FAIL and diagnosis.failed
        assert account.detail.startswith("the signed balance call with MEXC_API_KEY failed: mexc: ")
        assert "IP whitelist" in account.advice and "mexc fees" not in by_check


def test_an_account_the_engine_cannot_trade_fails_with_the_venues_reason() -> None:
    class DualMode:
        exchange = ExchangeName.GATEIO_FUTURES
        key_variable = "GATEIO_API_KEY"

        async def balances(self) -> dict[str, object]:
            raise ExchangeError("gateio", "the USDT futures account is in dual (hedge) position mode; switch it")

    (finding,) = asyncio.run(check_account(DualMode(), ["BTC/USDT"]))  # type: ignore[arg-type]
    assert (finding.check, finding.level) == ("gateio_futures account", Level.FAIL)
    assert "dual (hedge) position mode" in finding.detail and "live trading refuses to start" in finding.advice


def test_a_mexc_account_that_may_not_trade_fails_naming_cantrade() -> None:
    """The balance call answered with ``canTrade`` false: the doctor passed the account, and the
    first MEXC order of a live run was refused."""
    async def scenario() -> list[str]:
        async with SimulatedVenue("mexc", instruments(), credentials={API_KEY: CREDENTIALS}) as mexc:
            urls = mexc.urls()
            connector = registered()[ExchangeName.MEXC](
                credentials=CREDENTIALS, rest_url=urls.rest_url, ws_url=urls.ws_url
            )
            fetch = connector.rest.fetch

            async def answering(request: Any) -> bytes:
                body = await fetch(request)
                return body.replace(b'"canTrade":true', b'"canTrade":false') if request.path == "/api/v3/account" else body

            connector.rest.fetch = answering  # type: ignore[method-assign]
            try:
                findings = await check_account(connector, ["BTC/USDT"])
            finally:
                await connector.close()
        return [f"{f.check} {f.level.name}: {f.detail} | {f.advice}" for f in findings]

    (finding,) = asyncio.run(scenario())
    assert finding.startswith("mexc account FAIL: ") and "canTrade=false" in finding and "MEXC" in finding
    assert "live trading refuses to start" in finding


def test_a_refused_key_is_named_by_the_variable_it_was_read_from() -> None:
    refused_key = ApiCredentials(CREDENTIALS.api_key, Secret("not-the-secret"), "MEXC_API_KEY_ENCRYPTED")

    async def scenario() -> list[Finding]:
        async with SimulatedVenue("mexc", instruments(), credentials={API_KEY: CREDENTIALS}) as mexc:
            urls = mexc.urls()
            connector = registered()[ExchangeName.MEXC](credentials=refused_key, rest_url=urls.rest_url, ws_url=urls.ws_url)
            try:
                return await check_account(connector, ["BTC/USDT"])
            finally:
                await connector.close()

    (finding,) = asyncio.run(scenario())
    assert finding.level is Level.FAIL
    assert finding.detail.startswith("the signed balance call with MEXC_API_KEY_ENCRYPTED failed: ")


@pytest.mark.parametrize(
    ("market", "skew_ms", "level"),
    [
        (ExchangeName.MEXC, 100, Level.OK),
        (ExchangeName.MEXC, -700, Level.WARN),  # taken, but past half of the 1000 ms ahead MEXC allows
        (ExchangeName.MEXC, -1_200, Level.FAIL),  # MEXC refuses a timestamp 1 s ahead of its clock
        (ExchangeName.MEXC, 3_000, Level.WARN),
        (ExchangeName.MEXC, 5_200, Level.FAIL),
        (ExchangeName.GATEIO, -1_200, Level.WARN),  # Gate.io takes 60 s either way
        (ExchangeName.GATEIO, 45_000, Level.WARN),
        (ExchangeName.GATEIO, -61_000, Level.FAIL),
        (ExchangeName.MEXC_FUTURES, -4_000, Level.WARN),  # no window known: 5000 ms either way
        (ExchangeName.MEXC_FUTURES, -5_200, Level.FAIL),
    ],
)
def test_the_clock_fails_where_the_venue_would_refuse_signed_requests(
    market: ExchangeName, skew_ms: float, level: Level
) -> None:
    finding = clock_finding(f"{market.value} clock", skew_ms, registered()[market].binding.clock_window)
    assert finding.level is level
    side = "behind" if skew_ms > 0 else "ahead of"
    assert finding.detail == f"local clock {side} the venue by {abs(skew_ms):.0f} ms"
    if level is Level.FAIL:
        assert "refuses signed requests" in finding.advice and "synchronise the clock" in finding.advice


def test_public_connectors_on_the_simulator_carry_no_keys_the_environment_holds() -> None:
    """``record --sim`` and ``doctor --sim`` built their connectors as a dry run does, with the keys
    of the environment: the operator's real keys signed fee reads sent to the simulator."""
    from arb.config import ConfigurationManager
    from arb.doctor import public_connector
    from arb.exchanges.factory import ExchangeFactory
    from arb.sim.server import VenueUrls

    environ = {"MEXC_API_KEY": "mx-real-key", "MEXC_SECRET_KEY": "mx-real-secret",
               "GATEIO_API_KEY": "gt-real-key", "GATEIO_SECRET_KEY": "gt-real-secret"}
    manager = ConfigurationManager(None, environ=environ)
    manager.load_configuration(dry_run=True)
    assert manager.get_credentials("mexc") is not None
    loopback = VenueUrls(rest_url="http://127.0.0.1:9", ws_url="ws://127.0.0.1:9/ws",
                         futures_rest_url="http://127.0.0.1:9", futures_ws_url="ws://127.0.0.1:9/ws")
    factory = ExchangeFactory(manager, sim_urls={"mexc": loopback, "gateio": loopback})
    for market in (ExchangeName.MEXC, ExchangeName.GATEIO):
        assert public_connector(factory, market, True)._credentials is None
