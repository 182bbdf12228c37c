"""Shared fixtures for the test suite."""

from pathlib import Path

import pytest
from datafiles import require_shared_data


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the recorded real exchange messages; skips when absent."""
    return require_shared_data()


# --- loopback-only guard ---------------------------------------------------------------
# No test may reach a real venue host. Every outbound connect and every name lookup of a
# non-loopback host is refused (an OSError, so reconnect loops treat it like any failed
# connect) and recorded; a test that tried fails at teardown.

import ipaddress  # noqa: E402
import socket  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from typing import Any  # noqa: E402

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class NonLoopbackConnectError(PermissionError):
    """A test tried to reach a host that is not loopback."""


class LoopbackGuard:
    """Records blocked attempts; ``blocked`` is cleared by tests that try on purpose."""

    def __init__(self) -> None:
        self.blocked: list[str] = []

    @staticmethod
    def is_loopback(host: object) -> bool:
        if host is None:
            return True  # a passive bind on all interfaces, not an outbound connection
        if isinstance(host, bytes):
            host = host.decode("ascii", "replace")
        if not isinstance(host, str):
            return False
        if host.lower() in _LOOPBACK_NAMES:
            return True
        try:
            return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
        except ValueError:
            return False

    def refuse(self, what: str) -> NonLoopbackConnectError:
        self.blocked.append(what)
        return NonLoopbackConnectError(f"test tried to reach a non-loopback host: {what}")


@pytest.fixture(autouse=True)
def loopback_guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackGuard]:
    """Fail any test that connects to, or resolves, a non-loopback host."""
    guard = LoopbackGuard()
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not guard.is_loopback(address[0]):
            raise guard.refuse(f"connect {address!r}")

    def connect(self: socket.socket, address: Any) -> None:
        check(self, address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(self, address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not guard.is_loopback(host):
            raise guard.refuse(f"getaddrinfo {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield guard
    if guard.blocked:
        pytest.fail(f"test tried to reach non-loopback hosts: {guard.blocked}")
