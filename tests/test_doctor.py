"""``python -m arb doctor`` against the simulated venues: a healthy setup passes, a broken one fails with advice."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from arb.doctor import Level, check_symbols
from arb.instruments import InstrumentCatalog, SkippedPair
from arb.sim.cluster import default_instruments
from arb.types import ExchangeName


def arb(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ARB_", "MEXC_", "GATEIO_", "ENCRYPTION_"))}
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "arb", *args], cwd=cwd, env=clean, capture_output=True, text=True, timeout=60
    )


def test_doctor_passes_on_the_simulator_and_measures_every_market(tmp_path: Path) -> None:
    result = arb("doctor", "--sim", cwd=tmp_path, env={"MEXC_API_KEY": "visible-api-key",
                                                      "MEXC_SECRET_KEY": "visible-secret"})
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.startswith("arb doctor (simulated venues)")
    assert "compiled core" in out and "doctor: everything OK" in out
    for market in ("mexc", "gateio", "gateio_futures"):  # the shipped defaults
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
    assert any(line.split()[:3] == ["FAIL", "gateio", "ws"] for line in lines)
