"""``python -m arb record`` on the simulated venues, as a subprocess."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from arb.replay import RecordKind, read_records, recording_files
from arb.types import ExchangeName


def arb(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARB_", "MEXC_", "GATEIO_", "ENCRYPTION_"))}
    return subprocess.run(
        [sys.executable, "-m", "arb", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_record_the_simulator_with_rotation(tmp_path: Path) -> None:
    result = arb(
        "record", "--sim", "--venues", "gateio,mexc", "--markets", "spot,futures", "--symbols", "BTC/USDT",
        "--out", "md.arbrec", "--rotate-mb", "0.02", "--duration", "2", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    parts = recording_files(tmp_path / "md.arbrec")
    assert len(parts) >= 2
    reader = read_records(tmp_path / "md.arbrec")
    records = list(reader)
    assert reader.damage is None
    assert f"recorded {len(records)} records" in result.stdout
    markets = {r.market for r in records}
    assert markets == set(ExchangeName)
    for market in ExchangeName:
        line = next(line for line in result.stdout.splitlines() if line.split()[:1] == [market.value])
        delivered = int(line.split()[1])
        assert delivered == sum(r.market is market and r.kind in (RecordKind.WS_TEXT, RecordKind.WS_BINARY) for r in records)
        assert sum(r.market is market and r.kind is RecordKind.REST_RESPONSE for r in records) == 1  # its instruments
    # The --out name stands for all its parts in a backtest too.
    replayed = arb("backtest", "md.arbrec", "--json", cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stderr
    refused = arb("backtest", "md.arbrec", "--latency-ms", "inf", cwd=tmp_path)
    assert refused.returncode == 2 and "must be from 0 to 60000 ms, got 'inf'" in refused.stderr


def test_record_refuses_to_overwrite_and_bad_arguments(tmp_path: Path) -> None:
    (tmp_path / "taken.arbrec").write_bytes(b"x")
    result = arb("record", "--out", "taken.arbrec", "--duration", "1", cwd=tmp_path)
    assert result.returncode == 2 and "cannot create" in result.stderr  # a usage error, as for export
    result = arb("record", "--out", "x.arbrec", "--venues", "kraken", "--duration", "1", cwd=tmp_path)
    assert result.returncode == 2 and "'kraken'" in result.stderr
    result = arb("record", "--out", "x.arbrec", "--symbols", "DOGE/USDT", "--duration", "1", cwd=tmp_path)
    assert result.returncode == 2 and "DOGE" in result.stderr
    assert not (tmp_path / "x.arbrec").exists()


def test_sigterm_ends_a_recording_as_its_duration_would_and_the_instruments_are_recorded(tmp_path: Path) -> None:
    """A service manager stops the recorder with SIGTERM: the streams stop, the file gets its end
    marker (it reads back without damage) and the summary is printed, exit 0. Each market's
    instrument list leads the recording, so its backtest trades by the recorded ticks and fees."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARB_", "MEXC_", "GATEIO_", "ENCRYPTION_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "arb", "record", "--sim", "--venues", "gateio,mexc", "--markets", "spot",
         "--symbols", "BTC/USDT", "--out", "md.arbrec"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("recording gateio, mexc BTC/USDT")
        path = tmp_path / "md.arbrec"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not path.exists() or path.stat().st_size < 2_000):
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "stopped by SIGTERM" in out and "recorded " in out
    reader = read_records(path)
    records = list(reader)
    assert reader.damage is None
    listed = {r.market for r in records if r.kind is RecordKind.REST_RESPONSE}
    assert listed == {ExchangeName.GATEIO, ExchangeName.MEXC}
    replayed = arb("backtest", "md.arbrec", cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stderr
    assert "instruments of gateio: recorded instrument list" in replayed.stdout
    assert "instruments of mexc: recorded instrument list" in replayed.stdout
