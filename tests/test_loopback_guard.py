"""The loopback-only guard of tests/conftest.py refuses real hosts and fails the test that tried."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from loopback import run
from picows import WSListener, ws_connect

HERE = Path(__file__).resolve().parent


def test_guard_refuses_a_non_loopback_connect(loopback_guard: Any) -> None:
    with socket.socket() as sock, pytest.raises(PermissionError, match="non-loopback host: connect.*203.0.113.7"):
        sock.connect(("203.0.113.7", 443))  # TEST-NET-3: never routed
    with pytest.raises(PermissionError, match="non-loopback host: getaddrinfo 'api.gateio.ws'"):
        socket.getaddrinfo("api.gateio.ws", 443)
    assert len(loopback_guard.blocked) == 2
    loopback_guard.blocked.clear()  # tried on purpose; otherwise the teardown fails this test


def test_guard_stops_the_http_and_websocket_clients(loopback_guard: Any) -> None:
    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientConnectorError):
                await session.get("https://api.mexc.com/api/v3/ping")
        with pytest.raises(OSError):
            await ws_connect(WSListener, "wss://api.gateio.ws/ws/v4/")

    run(main())
    assert [b.split()[0] for b in loopback_guard.blocked] == ["getaddrinfo", "getaddrinfo"]
    loopback_guard.blocked.clear()


def test_guard_allows_loopback(loopback_guard: Any) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname()):
            pass
    assert loopback_guard.blocked == []


def test_guard_fails_a_test_that_tried(tmp_path: Path) -> None:
    pytest_exe = shutil.which("pytest")
    if pytest_exe is None:
        pytest.skip("the pytest executable is not on PATH")
    shutil.copy(HERE / "conftest.py", tmp_path / "conftest.py")
    shutil.copy(HERE / "datafiles.py", tmp_path / "datafiles.py")
    (tmp_path / "test_sneaky.py").write_text(
        "import socket\n\n"
        "def test_sneaky():\n"
        "    try:\n"
        "        socket.create_connection(('198.51.100.1', 80), timeout=0.1)\n"
        "    except OSError:\n"
        "        pass  # swallowed, yet the guard still fails the test\n"
    )
    result = subprocess.run(
        [pytest_exe, "-p", "no:cacheprovider", "-q", str(tmp_path)], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "test tried to reach non-loopback hosts" in result.stdout and "198.51.100.1" in result.stdout
    assert "1 passed, 1 error" in result.stdout
