"""arb.exchanges.http1 (and RestClient's writes over it) against scripted raw HTTP servers on 127.0.0.1."""

from __future__ import annotations

import arb
import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from loopback import run

from arb.errors import ExchangeConnectionError, ExchangeError, OrderRejectedError, RateLimitError
from arb.exchanges.errors import ErrorCategory
from arb.exchanges.gateio import constants as gate
from arb.exchanges.http1 import Http1Pool, HttpConnectError, HttpProtocolError, HttpStatusError
from arb.exchanges.mexc import constants as mexc
from arb.exchanges.rest import RateLimit, RestClient, RestRequest, RestSettings, RestVenue
from arb.types import ExchangeConfig

# A script answers one request (its raw bytes) with raw response bytes; None: close without answering,
# b"": never answer.
Script = Callable[[bytes], bytes | None]

JSON_OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'


class RawServer:
    """Reads whole requests (head + Content-Length body) and answers with the script; records them."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[tuple[int, bytes]] = []  # (connection number, raw request)
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                raw = head + await reader.readexactly(length)
                self.requests.append((number, raw))
                answer = self.script(raw)
                if answer is None:
                    break
                if answer:
                    writer.write(answer)
                    await writer.drain()
                    if b"\r\nConnection: close\r\n" in answer:
                        break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def serve(script: Script) -> AsyncIterator[tuple[str, RawServer]]:
    server = RawServer(script)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        listener.close()


def venue(base_url: str, codes=gate.ERROR_LABELS, statuses=gate.HTTP_STATUSES, limits=()) -> RestVenue:  # type: ignore[no-untyped-def]
    return RestVenue(name="gateio", base_url=base_url, error_codes=codes, http_statuses=statuses, rate_limits=limits)


LEAN = RestSettings(timeout_s=0.3, retry_backoff_s=0.001, http1_writes=True)


AGENT = f"User-Agent: arb/{arb.__version__}\r\n".encode()  # as aiohttp's reads send one


def test_request_bytes_are_the_signed_parts_unchanged() -> None:
    pool = Http1Pool("http://127.0.0.1:8080/api/v3")
    data = pool.encode("POST", "/order", "symbol=BTCUSDT&signature=ab12", b"", {"X-MEXC-APIKEY": "k"})
    assert data == (
        b"POST /api/v3/order?symbol=BTCUSDT&signature=ab12 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
        + AGENT + b"X-MEXC-APIKEY: k\r\nContent-Length: 0\r\n\r\n"
    )
    secure = Http1Pool("https://api.mexc.com")
    assert secure.secure and secure.port == 443 and secure.ssl is not None
    assert secure.encode("DELETE", "/o", "", b"", {}) == b"DELETE /o HTTP/1.1\r\nHost: api.mexc.com\r\n" + AGENT + b"\r\n"
    with pytest.raises(ValueError, match="must be an http"):
        Http1Pool("ws://127.0.0.1:1")


def test_keep_alive_reuses_one_connection() -> None:
    async def main() -> None:
        async with serve(lambda raw: JSON_OK) as (url, server), RestClient(venue(url), LEAN) as client:
            query = "symbol=BTCUSDT&signature=ab12"
            body = b'{"currency_pair":"BTC_USDT"}'
            headers = {"KEY": "k", "Content-Type": "application/json"}
            for _ in range(3):
                assert await client.fetch(RestRequest(method="POST", path="/order", query=query, body=body, headers=headers)) == b'{"ok":true}'
        assert [n for n, _ in server.requests] == [1, 1, 1]
        raw = server.requests[0][1]
        assert raw.startswith(b"POST /order?symbol=BTCUSDT&signature=ab12 HTTP/1.1\r\n")
        assert b"\r\nKEY: k\r\n" in raw and raw.endswith(b"\r\n\r\n" + body)
        assert client.stats.requests == client.stats.responses == 3

    run(main())


def test_chunked_and_close_delimited_bodies() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\n{\"a\"\r\n6;ext=1\r\n:[1,2]\r\n1\r\n}\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    until_close = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"b\":2}"

    async def main() -> None:
        answers = iter([chunked, chunked, until_close])
        async with serve(lambda raw: next(answers)) as (url, server), RestClient(venue(url), LEAN) as client:
            assert await client.fetch(RestRequest(method="POST", path="/a")) == b'{"a":[1,2]}'
            assert await client.fetch(RestRequest(method="POST", path="/a")) == b'{"a":[1,2]}'
            assert await client.fetch(RestRequest(method="POST", path="/b")) == b'{"b":2}'
            # the close-delimited answer ended its connection: the next request opens another
            answers = iter([JSON_OK])
            assert await client.fetch(RestRequest(method="DELETE", path="/c")) == b'{"ok":true}'
        assert [n for n, _ in server.requests] == [1, 1, 1, 2]

    run(main())


def test_interim_responses_are_skipped_for_the_final_one() -> None:
    early = b"HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n"
    proceed = b"HTTP/1.1 100 Continue\r\n\r\n"

    async def main() -> None:
        answers = iter([early + JSON_OK, proceed + early + JSON_OK, b"HTTP/1.1 101 Switching Protocols\r\n\r\n"])
        async with serve(lambda raw: next(answers)) as (url, server), RestClient(venue(url), LEAN) as client:
            assert await client.fetch(RestRequest(method="POST", path="/a")) == b'{"ok":true}'
            assert await client.fetch(RestRequest(method="POST", path="/b")) == b'{"ok":true}'
            with pytest.raises(ExchangeError) as info:  # an upgrade nobody asked for: what happened is unknown
                await client.fetch(RestRequest(method="POST", path="/c"))
            assert info.value.category is ErrorCategory.OUTCOME_UNKNOWN
        assert [n for n, _ in server.requests] == [1, 1, 1]  # the interim heads left the connection usable

    run(main())


def test_split_response_is_reassembled() -> None:
    async def main() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            for piece in (JSON_OK[:10], JSON_OK[10:60], JSON_OK[60:]):
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0.01)
            await reader.read()

        listener = await asyncio.start_server(handle, "127.0.0.1", 0)
        pool = Http1Pool(f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}")
        response = await pool.request(pool.encode("GET", "/x", "", b"", {}), timeout_s=1.0)
        assert (response.status, response.reason, response.body) == (200, "OK", b'{"ok":true}')
        assert response.headers["content-type"] == "application/json"
        await pool.close()
        listener.close()

    run(main())


def test_timeout_is_outcome_unknown_and_the_connection_is_not_reused() -> None:
    async def main() -> None:
        answers = iter([b"", JSON_OK])
        async with serve(lambda raw: next(answers)) as (url, server), RestClient(venue(url), LEAN) as client:
            with pytest.raises(ExchangeError, match="POST /slow: timed out; the outcome is unknown") as info:
                await client.fetch(RestRequest(method="POST", path="/slow", body=b"{}"))
            assert type(info.value) is ExchangeError and info.value.category is ErrorCategory.OUTCOME_UNKNOWN
            assert isinstance(info.value.__cause__, asyncio.TimeoutError)
            # a late answer must never be read as the next request's: a new connection carries it
            assert await client.fetch(RestRequest(method="POST", path="/next")) == b'{"ok":true}'
            assert client.stats.errors == {"timeout": 1}
        assert [n for n, _ in server.requests] == [1, 2]

    run(main())


def test_server_close_before_answering_is_outcome_unknown_and_never_retried() -> None:
    async def main() -> None:
        async with serve(lambda raw: None) as (url, server), RestClient(venue(url), LEAN) as client:
            with pytest.raises(ExchangeError, match="POST /order: connection failed") as info:
                await client.fetch(RestRequest(method="POST", path="/order"))
            assert info.value.category is ErrorCategory.OUTCOME_UNKNOWN
            assert isinstance(info.value.__cause__, ConnectionError)
        assert len(server.requests) == 1

    run(main())


def test_idle_connection_closed_by_the_server_is_not_used() -> None:
    async def main() -> None:
        closing = JSON_OK.replace(b"Content-Type", b"Connection: keep-alive\r\nContent-Type")
        answers = iter([closing, JSON_OK])

        def script(raw: bytes) -> bytes | None:
            return next(answers)

        async with serve(script) as (url, server), RestClient(venue(url), LEAN) as client:
            await client.fetch(RestRequest(method="POST", path="/a"))
            # the server drops the idle connection (as a venue's keep-alive timeout does)
            for task in asyncio.all_tasks():
                if task.get_coro().__qualname__.startswith("RawServer.handle"):  # type: ignore[union-attr]
                    task.cancel()
            await asyncio.sleep(0.05)
            assert await client.fetch(RestRequest(method="POST", path="/b")) == b'{"ok":true}'
        assert [n for n, _ in server.requests] == [1, 2]

    run(main())


def test_429_retry_after_blocks_the_budget_and_venue_codes_map() -> None:
    limited = (
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 0.2\r\nContent-Length: 55\r\n\r\n"
        b'{"label":"TOO_MANY_REQUESTS","message":"slow down"}    '
    )
    refused = b'{"label":"BALANCE_NOT_ENOUGH","message":"Not enough balance"}'
    rejected = b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n%s" % (len(refused), refused)

    async def main() -> None:
        answers = iter([limited, JSON_OK, JSON_OK, rejected])
        limits = (RateLimit("orders", 100, 1.0), RateLimit("public", 10, 1.0))
        async with serve(lambda raw: next(answers)) as (url, _), RestClient(venue(url, limits=limits), LEAN) as client:
            with pytest.raises(RateLimitError) as info:
                await client.fetch(RestRequest(method="POST", path="/order", limits=(("orders", 1),)))
            assert info.value.retry_after_s == pytest.approx(0.2) and info.value.category is ErrorCategory.RATE_LIMITED
            assert isinstance(info.value.__cause__, HttpStatusError) and info.value.__cause__.status == 429
            await client.fetch(RestRequest(method="POST", path="/other", limits=(("public", 1),)))
            assert client.limiter.waits == 0  # another budget is not blocked
            await client.fetch(RestRequest(method="POST", path="/order", limits=(("orders", 1),)))
            assert client.limiter.waits == 1 and client.limiter.waited_s > 0
            with pytest.raises(OrderRejectedError) as rejection:
                await client.fetch(RestRequest(method="POST", path="/order"))
            err = rejection.value
            assert err.category is ErrorCategory.INSUFFICIENT_BALANCE and err.code == "BALANCE_NOT_ENOUGH"
            assert str(err) == "gateio: POST /order: Not enough balance [HTTP 400] (code BALANCE_NOT_ENOUGH)"

    run(main())


def test_5xx_on_an_order_is_outcome_unknown_and_mexc_codes_map() -> None:
    mexc_body = b'{"code":700003,"msg":"Timestamp for this request is outside of the recvWindow."}'

    async def main() -> None:
        answers = iter([
            b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 11\r\n\r\nbad gateway",
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n%s" % (len(mexc_body), mexc_body),
        ])
        async with serve(lambda raw: next(answers)) as (url, server):
            client = RestClient(venue(url, mexc.ERROR_CODES, mexc.HTTP_STATUSES), LEAN)
            async with client:
                with pytest.raises(ExchangeError) as info:
                    await client.fetch(RestRequest(method="POST", path="/boom"))
                assert info.value.category is ErrorCategory.OUTCOME_UNKNOWN and "[HTTP 502]" in str(info.value)
                with pytest.raises(ExchangeError) as info:
                    await client.fetch(RestRequest(method="DELETE", path="/order"))
                assert info.value.category is ErrorCategory.TIMESTAMP and info.value.code == 700003
        assert len(server.requests) == 2  # writes are never retried

    run(main())


def test_refused_connection_is_a_connection_error_and_garbage_is_outcome_unknown() -> None:
    async def main() -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        async with RestClient(venue(f"http://127.0.0.1:{port}"), LEAN) as client:
            with pytest.raises(ExchangeConnectionError, match="POST /order: cannot connect") as info:
                await client.fetch(RestRequest(method="POST", path="/order"))  # never sent: not "unknown"
            assert isinstance(info.value.__cause__, HttpConnectError)
            assert info.value.category == ErrorCategory.NOT_SENT
            with pytest.raises(ExchangeConnectionError):
                await client.prewarm()
        async with serve(lambda raw: b"SPDY/9 what\r\n\r\n") as (url, _), RestClient(venue(url), LEAN) as client:
            with pytest.raises(ExchangeError) as info:
                await client.fetch(RestRequest(method="POST", path="/order"))
            assert info.value.category is ErrorCategory.OUTCOME_UNKNOWN
            assert isinstance(info.value.__cause__, HttpProtocolError)

    run(main())


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 2\xb20 OK\r\nContent-Length: 0\r\n\r\n",  # latin-1 superscript 2: ``isdigit`` takes it, ``int`` not
    b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 999999999999\r\n\r\n",
], ids=["superscript", "four-digit", "oversized"])
def test_a_malformed_answer_is_a_protocol_error_at_once_not_a_timeout(answer: bytes) -> None:
    """A status ``int`` refused raised out of the protocol callback, and the order waited out its
    whole timeout; a huge declared body was buffered until then."""
    async def main() -> None:
        patient = RestSettings(timeout_s=60.0, retry_backoff_s=0.001, http1_writes=True)
        async with serve(lambda raw: answer) as (url, _), RestClient(venue(url), patient) as client:
            with pytest.raises(ExchangeError) as info:
                await client.fetch(RestRequest(method="POST", path="/order"))
            assert info.value.category is ErrorCategory.OUTCOME_UNKNOWN
            assert isinstance(info.value.__cause__, HttpProtocolError)  # not the timeout

    run(main())


def test_prewarm_opens_the_connection_the_first_order_uses() -> None:
    async def main() -> None:
        async with serve(lambda raw: JSON_OK) as (url, server), RestClient(venue(url), LEAN) as client:
            await client.prewarm()
            assert server.requests == []
            await client.fetch(RestRequest(method="POST", path="/order"))
        assert server.connections == 1 and [n for n, _ in server.requests] == [1]

    run(main())


def test_reads_stay_on_aiohttp_and_config_settings_enable_lean_writes() -> None:
    assert RestSettings.from_exchange_config(ExchangeConfig(name="mexc", rest_timeout_ms=1500)).http1_writes
    assert not RestSettings().http1_writes

    async def main() -> None:
        async with serve(lambda raw: JSON_OK) as (url, server), RestClient(venue(url), LEAN) as client:
            assert await client.fetch(RestRequest(method="GET", path="/ticker")) == b'{"ok":true}'
        assert server.requests[0][1].startswith(b"GET /ticker HTTP/1.1\r\n")
        assert b"Accept-Encoding" in server.requests[0][1]  # aiohttp's headers; Http1Pool sends no such one

    run(main())


def test_write_now_writes_before_returning_and_answers_as_fetch_does() -> None:
    refused = b'{"label":"BALANCE_NOT_ENOUGH","message":"Not enough balance"}'
    rejected = b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n%s" % (len(refused), refused)

    async def main() -> None:
        answers = iter([JSON_OK, rejected, b""])
        limits = (RateLimit("orders", 3, 60.0),)
        async with serve(lambda raw: next(answers)) as (url, server), RestClient(venue(url, limits=limits), LEAN) as client:
            await client.prewarm()
            order = RestRequest(method="POST", path="/order", body=b"{}", limits=(("orders", 1),))
            answer = client.write_now(order)
            assert answer is not None and client.limiter.wait_s((("orders", 3),)) > 0  # one of 3 spent
            await asyncio.sleep(0.05)  # the loop runs, the answer is not awaited: the request is out
            assert [raw.split(b" ")[1] for _, raw in server.requests] == [b"/order"]
            assert await answer == b'{"ok":true}'
            second = client.write_now(order)  # the connection went back to the pool
            assert second is not None
            with pytest.raises(OrderRejectedError) as info:
                await second
            assert info.value.category is ErrorCategory.INSUFFICIENT_BALANCE
            third = client.write_now(order)
            assert third is not None
            with pytest.raises(ExchangeError, match="POST /order: timed out; the outcome is unknown") as lost:
                await third
            assert lost.value.category is ErrorCategory.OUTCOME_UNKNOWN
            assert client.stats.requests == client.stats.responses + 1 == 3
            # The budget is spent (3 of 3): nothing is written and nothing more is spent.
            assert client.write_now(order) is None
            # The timed-out connection was closed, not put back: a late answer is never read as another's.
            assert client._ensure_http1().write(b"", timeout_s=1.0) is None
        assert server.connections == 1 and len(server.requests) == 3

    run(main())


def test_an_idle_connection_reset_before_its_close_arrives_is_not_written_on() -> None:
    """A reset read closes the transport at once and ``connection_lost`` comes a turn later; a write
    in between was dropped silently, and the order taken as sent (of unknown outcome)."""
    async def main() -> None:
        async with serve(lambda raw: JSON_OK) as (url, server), RestClient(venue(url), LEAN) as client:
            await client.prewarm()
            connection = client._ensure_http1()._idle[-1]
            assert connection.transport is not None
            connection.transport.abort()
            with pytest.raises(HttpConnectError, match="nothing was sent"):
                connection.send(b"POST /order HTTP/1.1\r\n\r\n", head_only=False)
            order = RestRequest(method="POST", path="/order", body=b"{}")
            assert client.write_now(order) is None  # no connection takes it at once: nothing written
            assert await client.fetch(order) == b'{"ok":true}'  # on a new connection
        assert server.connections == 2 and [n for n, _ in server.requests] == [2]

    run(main())


def test_write_now_declines_what_cannot_go_at_once_without_spending() -> None:
    async def main() -> None:
        limits = (RateLimit("orders", 1, 60.0),)
        order = RestRequest(method="POST", path="/order", limits=(("orders", 1),))
        async with serve(lambda raw: JSON_OK) as (url, server):
            async with RestClient(venue(url, limits=limits), LEAN) as client:
                assert client.write_now(order) is None  # no connection open yet: connecting means waiting
                assert client.write_now(RestRequest(method="GET", path="/order")) is None  # reads take aiohttp
                await client.prewarm()
                plain = RestClient(venue(url, limits=limits), RestSettings(timeout_s=0.3))
                assert plain.write_now(order) is None  # lean writes off
                assert client.limiter.try_spend((("orders", 1),))  # nothing above spent the one token
                assert client.write_now(order) is None  # no budget now: nothing is written
                pool = client._ensure_http1()
                await pool.close()
                with pytest.raises(HttpConnectError, match="pool closed"):  # nothing sent
                    pool.write(b"", timeout_s=1.0)
                # A write on the closed pool went nowhere: not sent, rather than of unknown outcome.
                with pytest.raises(ExchangeConnectionError) as refused:
                    await client.fetch(RestRequest(method="POST", path="/order"))  # no budget to wait for
                assert refused.value.category == ErrorCategory.NOT_SENT
        assert server.requests == []

    run(main())


class _Transport:
    """What ``_Connection`` writes its requests to, in a test that feeds its answers by hand."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return False


def test_a_chunked_body_arriving_a_byte_at_a_time_is_reassembled_and_the_next_answer_reads_fresh() -> None:
    """Each read resumes the chunked body where the last one stopped (sizes, CRLFs and trailers split
    anywhere), and none of one answer's chunks carry over to the next on the same connection."""
    from arb.exchanges.http1 import _Connection

    first = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\n{\"a\"\r\n6;ext=1\r\n:[1,2]\r\n1\r\n}\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    second = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"

    async def main() -> None:
        connection = _Connection()
        connection.connection_made(_Transport())  # type: ignore[arg-type]
        for answer, body in ((first, b'{"a":[1,2]}'), (second, b"{}")):
            response = connection.send(b"GET / HTTP/1.1\r\n\r\n", head_only=False)
            for n in range(len(answer)):
                assert not response.done()
                connection.data_received(answer[n:n + 1])
            assert response.result().body == body and connection.reusable

    run(main())
