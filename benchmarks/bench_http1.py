"""Reading a large chunked HTTP/1.1 answer (a venue's full instrument list, say) as the socket
delivers it: ``_Connection.data_received`` fed a 4 MiB body in 16 KiB reads, chunked in 8 KiB
chunks, against the same body sent with a ``Content-Length`` (baseline, same run). A parse that
re-read the whole body at every read would grow with the square of its size; resuming where the
last read stopped keeps it linear.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from arb.exchanges.http1 import _Connection

BODY = bytes(range(256)) * (4 * 1024 * 1024 // 256)
READ = 16 * 1024
CHUNK = 8 * 1024
FRAMINGS = ("content-length", "chunked")


class _Transport:
    def write(self, data: bytes) -> None:
        pass

    def is_closing(self) -> bool:
        return False


def _answer(framing: str) -> bytes:
    if framing == "content-length":
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY
    chunks = b"".join(
        b"%x\r\n" % len(BODY[at:at + CHUNK]) + BODY[at:at + CHUNK] + b"\r\n" for at in range(0, len(BODY), CHUNK)
    )
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.mark.benchmark(group="http1-large-answer")
@pytest.mark.parametrize("framing", FRAMINGS)
def test_large_answer(benchmark: Any, loop: asyncio.AbstractEventLoop, framing: str) -> None:
    answer = _answer(framing)
    reads = [answer[at:at + READ] for at in range(0, len(answer), READ)]
    connection = _Connection()
    connection.connection_made(_Transport())  # type: ignore[arg-type]

    async def request() -> asyncio.Future[Any]:
        return connection.send(b"GET / HTTP/1.1\r\n\r\n", head_only=False)

    def read_all() -> bytes:
        response = loop.run_until_complete(request())
        for data in reads:
            connection.data_received(data)
        return response.result().body

    assert read_all() == BODY
    body = benchmark.pedantic(read_all, rounds=20, iterations=1, warmup_rounds=1)
    assert body == BODY
