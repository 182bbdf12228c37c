"""arb.exchanges.rest against an aiohttp server on 127.0.0.1."""

from __future__ import annotations

import arb
import asyncio
import bisect
import random
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone

import aiohttp
import msgspec
import pytest
from aiohttp import web
from loopback import run

from arb.errors import ExchangeConnectionError, ExchangeError, OrderRejectedError, RateLimitError
from arb.exchanges.errors import ErrorCategory
from arb.exchanges.gateio import constants as gate
from arb.exchanges.gateio import trading as gateio_trading
from arb.exchanges.gateio.auth import GateioSigner
from arb.exchanges.mexc import constants as mexc
from arb.exchanges.mexc import trading as mexc_trading
from arb.exchanges.mexc.auth import MexcSigner
from arb.exchanges.rest import (
    MAX_RETRY_AFTER_S,
    MIN_RATE_LIMIT_WAIT_S,
    RateLimit,
    RateLimiter,
    RestClient,
    RestRequest,
    RestSettings,
    RestVenue,
    market_limit,
    parse_error_body,
    parse_retry_after,
    rate_limit_wait_s,
)
from arb.secrets import ApiCredentials, Secret
from arb.types import ExchangeConfig

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Ticker(msgspec.Struct):
    symbol: str
    price: str


class Server:
    """Scripted venue endpoints; records what arrived."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.seen: list[tuple[str, str, bytes, dict[str, str], int]] = []

    def app(self) -> web.Application:
        app = web.Application()
        for method, path, handler in [
            ("*", "/echo", self.echo),
            ("GET", "/ticker", self.ticker),
            ("POST", "/gate_order", self.gate_reject),
            ("GET", "/mexc_time", self.mexc_reject),
            ("GET", "/limited", self.limited),
            ("GET", "/limited_now", self.limited_now),
            ("GET", "/banned", self.banned),
            ("*", "/boom", self.boom),
            ("GET", "/flaky", self.flaky),
            ("*", "/slow", self.slow),
            ("*", "/garbage", self.garbage),
            ("GET", "/moved", self.moved),
        ]:
            app.router.add_route(method, path, self._record(handler))
        return app

    def _record(self, handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            self.hits[request.method + " " + request.path] += 1
            peer = request.transport.get_extra_info("peername")[1] if request.transport else 0
            body = await request.read()
            self.seen.append((request.method, request.raw_path.partition("?")[2], body, dict(request.headers), peer))
            return await handler(request)

        return wrapped

    async def echo(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def ticker(self, request: web.Request) -> web.Response:
        return web.json_response({"symbol": "BTC_USDT", "price": "65000.1"})

    async def gate_reject(self, request: web.Request) -> web.Response:
        return web.json_response({"label": "BALANCE_NOT_ENOUGH", "message": "Not enough balance"}, status=400)

    async def mexc_reject(self, request: web.Request) -> web.Response:
        return web.json_response({"code": 700003, "msg": "Timestamp for this request is outside of the recvWindow."}, status=400)

    async def limited(self, request: web.Request) -> web.Response:
        return web.json_response({"label": "TOO_MANY_REQUESTS", "message": "slow down"}, status=429, headers={"Retry-After": "0.2"})

    async def limited_now(self, request: web.Request) -> web.Response:
        return web.json_response({"label": "TOO_MANY_REQUESTS", "message": "slow down"}, status=429, headers={"Retry-After": "0"})

    async def banned(self, request: web.Request) -> web.Response:
        return web.Response(status=418, text="banned", headers={"Retry-After": "0.15"})

    async def boom(self, request: web.Request) -> web.Response:
        return web.Response(status=502, text="<html>bad gateway</html>")

    async def flaky(self, request: web.Request) -> web.Response:
        if self.hits["GET /flaky"] == 1:
            return web.Response(status=503, text="busy")
        return web.json_response({"symbol": "X", "price": "1"})

    async def slow(self, request: web.Request) -> web.Response:
        await asyncio.sleep(1.0)
        return web.json_response({})

    async def garbage(self, request: web.Request) -> web.Response:
        return web.Response(text="<html>not json</html>")

    async def moved(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])


@asynccontextmanager
async def serve(server: Server) -> AsyncIterator[str]:
    runner = web.AppRunner(server.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def venue(base_url: str, codes=gate.ERROR_LABELS, statuses=gate.HTTP_STATUSES, limits=()) -> RestVenue:  # type: ignore[no-untyped-def]
    return RestVenue(name="gateio", base_url=base_url, error_codes=codes, http_statuses=statuses, rate_limits=limits)


FAST = RestSettings(timeout_s=0.3, retry_backoff_s=0.001)


def test_signed_parts_are_sent_unchanged_over_one_kept_alive_connection() -> None:
    async def main() -> None:
        server = Server()
        async with serve(server) as url, RestClient(venue(url), FAST) as client:
            query = "symbol=BTCUSDT&list=%5B%7B%22a%22%3A1%7D%5D&signature=ab12"
            body = b'{"currency_pair":"BTC_USDT","amount":"0.001"}'
            headers = {"KEY": "k", "SIGN": "s", "Content-Type": "application/json"}
            assert await client.fetch(RestRequest(method="POST", path="/echo", query=query, body=body, headers=headers)) == b'{"ok": true}'
            await client.fetch(RestRequest(method="GET", path="/echo", query=query))
            await client.fetch(RestRequest(method="DELETE", path="/echo"))
        (m1, q1, b1, h1, p1), (m2, q2, _, h2, p2), (m3, _, _, _, p3) = server.seen
        assert (m1, q1, b1) == ("POST", query, body)
        assert h1["KEY"] == "k" and h1["SIGN"] == "s" and h1["Content-Type"] == "application/json"
        assert h1["User-Agent"] == h2["User-Agent"] == f"arb/{arb.__version__}"  # an HTTP front may refuse none
        assert (m2, q2, m3) == ("GET", query, "DELETE")
        assert p1 == p2 == p3  # keep-alive: one pooled connection
        assert client.stats.requests == 3 and client.stats.responses == 3

    run(main())


def test_a_signed_request_shows_no_header_value_query_value_or_body() -> None:
    request = RestRequest(
        method="POST", path="/api/v3/order", query="symbol=BTCUSDT&timestamp=1&signature=sig-0123abcd",
        body=b'{"text":"body-789"}', headers={"X-MEXC-APIKEY": "key-4567efgh"}, limits=(("orders", 1),),
    )
    import rich.pretty

    for shown in (repr(request), str(request), f"{request}", rich.pretty.pretty_repr(request)):
        assert "key-4567efgh" not in shown and "sig-0123abcd" not in shown and "body-789" not in shown
    assert repr(request) == (
        "RestRequest(method='POST', path='/api/v3/order', query_names=['symbol', 'timestamp', 'signature'], "
        "body_bytes=19, header_names=['X-MEXC-APIKEY'], limits=(('orders', 1),))"
    )


def test_json_is_decoded_into_the_venue_schema() -> None:
    async def main() -> None:
        async with serve(Server()) as url, RestClient(venue(url), FAST) as client:
            assert await client.fetch_json(RestRequest(method="GET", path="/ticker"), Ticker) == Ticker("BTC_USDT", "65000.1")
            with pytest.raises(ExchangeError, match="GET /garbage: response does not match Ticker") as info:
                await client.fetch_json(RestRequest(method="GET", path="/garbage"), Ticker)
            assert info.value.category is None and isinstance(info.value.__cause__, msgspec.DecodeError)
            with pytest.raises(ExchangeError) as info:
                await client.fetch_json(RestRequest(method="POST", path="/garbage"), Ticker)
            assert info.value.category is ErrorCategory.OUTCOME_UNKNOWN  # an order reply we cannot read

    run(main())


def test_venue_codes_map_to_the_error_tree_with_the_http_error_chained() -> None:
    async def main() -> None:
        server = Server()
        async with serve(server) as url:
            refused_for_time: list[str] = []
            async with RestClient(venue(url), FAST) as client:
                client.on_timestamp_refused = refused_for_time.append
                with pytest.raises(OrderRejectedError) as info:
                    await client.fetch(RestRequest(method="POST", path="/gate_order", body=b"{}"))
                err = info.value
                assert err.category is ErrorCategory.INSUFFICIENT_BALANCE and err.code == "BALANCE_NOT_ENOUGH"
                assert str(err) == "gateio: POST /gate_order: Not enough balance [HTTP 400] (code BALANCE_NOT_ENOUGH)"
                assert isinstance(err.__cause__, aiohttp.ClientResponseError) and err.__cause__.status == 400
            mexc_venue = venue(url, mexc.ERROR_CODES, mexc.HTTP_STATUSES)
            assert refused_for_time == []  # refused, but not for its timestamp
            async with RestClient(mexc_venue, FAST) as client:
                client.on_timestamp_refused = refused_for_time.append
                with pytest.raises(ExchangeError) as info:
                    await client.fetch(RestRequest(method="GET", path="/mexc_time"))
                assert info.value.category is ErrorCategory.TIMESTAMP and info.value.code == 700003
                assert client.stats.errors == {"timestamp": 1}
            assert refused_for_time == ["GET /mexc_time"]
        assert server.hits["GET /mexc_time"] == 1  # a 4xx is never retried

    run(main())


def test_429_raises_with_retry_after_and_blocks_the_bucket() -> None:
    async def main() -> None:
        limits = (RateLimit("public", 100, 1.0), RateLimit("orders", 10, 1.0))
        async with serve(Server()) as url, RestClient(venue(url, limits=limits), FAST) as client:
            with pytest.raises(RateLimitError) as info:
                await client.fetch(RestRequest(method="GET", path="/limited", limits=(("public", 1),)))
            assert info.value.retry_after_s == pytest.approx(0.2) and info.value.category is ErrorCategory.RATE_LIMITED
            # another budget is not blocked ...
            await client.fetch(RestRequest(method="GET", path="/echo", limits=(("orders", 1),)))
            assert client.limiter.waits == 0
            # ... the blocked one waits until Retry-After has passed, then succeeds
            await client.fetch(RestRequest(method="GET", path="/echo", limits=(("public", 1),)))
            assert client.limiter.waits == 1 and client.limiter.waited_s > 0

    run(main())


def test_a_429_asking_no_wait_is_still_waited_out_a_little() -> None:
    """A Retry-After of 0 (or a reset due already) would send the request again at once, into the
    same limit: the budget is held for at least MIN_RATE_LIMIT_WAIT_S."""
    async def main() -> None:
        async with serve(Server()) as url, RestClient(venue(url, limits=(RateLimit("public", 100, 1.0),)), FAST) as client:
            with pytest.raises(RateLimitError) as info:
                await client.fetch(RestRequest(method="GET", path="/limited_now", limits=(("public", 1),)))
            assert info.value.retry_after_s == MIN_RATE_LIMIT_WAIT_S == 0.1

    run(main())


def test_a_stated_reset_time_is_read_on_the_venues_clock_and_within_its_longest_window() -> None:
    """A venue that states when its limit resets (Gate.io) is waited out to that time on its own clock,
    as last read; never longer than the refused budgets' longest window (the venue's, when none is
    named), whatever the clock reading says."""
    gate_venue = msgspec.structs.replace(
        venue("http://127.0.0.1:9", limits=(RateLimit("orders", 10, 1.0), RateLimit("public", 200, 10.0))),
        rate_limit_reset_header=gate.RATE_LIMIT_RESET_HEADER,
    )
    reset = {gate.RATE_LIMIT_RESET_HEADER.lower(): "1000200"}
    assert rate_limit_wait_s(gate_venue, reset, now_ms=1_000_000) == pytest.approx(0.2)
    assert rate_limit_wait_s(gate_venue, reset, now_ms=1_000_300) == 0.0  # due already
    assert rate_limit_wait_s(gate_venue, reset, now_ms=1_000_200 - 59_000) == 10.0  # a clock far behind
    assert rate_limit_wait_s(gate_venue, {"retry-after": "0.5", **reset}, now_ms=1_000_000) == 0.5
    assert rate_limit_wait_s(gate_venue, {}, now_ms=1_000_000) is None
    assert rate_limit_wait_s(venue("http://127.0.0.1:9"), reset, now_ms=1_000_000) is None  # no such header
    superscript = {gate.RATE_LIMIT_RESET_HEADER.lower(): "1000²"}  # ``isdigit`` takes it, ``int`` does not
    assert rate_limit_wait_s(gate_venue, superscript, now_ms=1_000_000) is None

    async def main() -> None:
        async with RestClient(gate_venue, FAST) as client:
            client.venue_clock_ahead_ms = 25_000.0  # the venue's clock 25 s ahead of ours
            error = client._failure(
                RestRequest(method="POST", path="/order", limits=(("orders", 1),)), 429,
                {gate.RATE_LIMIT_RESET_HEADER.lower(): str(time.time_ns() // 1_000_000 + 25_300)},
                b'{"label":"TOO_MANY_REQUESTS","message":"slow down"}',
            )
            assert isinstance(error, RateLimitError) and 0.25 <= (error.retry_after_s or 0) <= 0.3
            client.venue_clock_ahead_ms = -59_000.0  # a reading far off: held for the refused budget's window
            error = client._failure(
                RestRequest(method="POST", path="/order", limits=(("orders", 1),)), 429,
                {gate.RATE_LIMIT_RESET_HEADER.lower(): str(time.time_ns() // 1_000_000 + 300)},
                b'{"label":"TOO_MANY_REQUESTS","message":"slow down"}',
            )
            assert isinstance(error, RateLimitError) and error.retry_after_s == 1.0

    run(main())


def test_a_429_on_a_request_spending_no_budget_holds_only_its_endpoint() -> None:
    """A 429 to a request with no budget of its own held every request (as a 418 does), order
    placement included: it holds that endpoint alone, and the budgets stay free."""
    async def main() -> None:
        server = Server()
        async with serve(server) as url, RestClient(venue(url, limits=(RateLimit("orders", 10, 1.0),)), FAST) as client:
            with pytest.raises(RateLimitError) as info:
                await client.fetch(RestRequest(method="GET", path="/limited"))
            assert info.value.retry_after_s == pytest.approx(0.2)
            assert client.limiter.wait_s((("orders", 1),)) == 0.0
            await client.fetch(RestRequest(method="GET", path="/echo"))  # another endpoint without a budget
            await client.fetch(RestRequest(method="POST", path="/echo", limits=(("orders", 1),)))
            assert client.limiter.waits == 0
            with pytest.raises(RateLimitError):  # the refused endpoint is asked again only after its wait
                await client.fetch(RestRequest(method="GET", path="/limited"))
            assert client.limiter.waits == 1 and server.hits["GET /limited"] == 2

    run(main())


def test_418_blocks_every_request() -> None:
    async def main() -> None:
        mexc_venue = venue("", mexc.ERROR_CODES, mexc.HTTP_STATUSES, (RateLimit("ip", 100, 1.0),))
        async with serve(Server()) as url:
            mexc_venue = msgspec.structs.replace(mexc_venue, base_url=url)
            async with RestClient(mexc_venue, FAST) as client:
                with pytest.raises(RateLimitError, match=r"banned \[HTTP 418\]") as info:
                    await client.fetch(RestRequest(method="GET", path="/banned", limits=(("ip", 1),)))
                assert info.value.retry_after_s == pytest.approx(0.15)
                await client.fetch(RestRequest(method="GET", path="/echo"))  # spends no budget, still waits
                assert client.limiter.waits == 1

    run(main())


def test_5xx_on_an_order_is_outcome_unknown_and_not_retried() -> None:
    async def main() -> None:
        server = Server()
        async with serve(server) as url, RestClient(venue(url), FAST) as client:
            with pytest.raises(ExchangeError) as info:
                await client.fetch(RestRequest(method="POST", path="/boom", body=b"{}"))
            assert info.value.category is ErrorCategory.OUTCOME_UNKNOWN
            assert "bad gateway" in str(info.value) and "[HTTP 502]" in str(info.value)
            with pytest.raises(ExchangeError):
                await client.fetch(RestRequest(method="GET", path="/boom"))
        assert server.hits == {"POST /boom": 1, "GET /boom": 2}  # GETs get one retry
        assert client.stats.retries == 1

    run(main())


def test_transient_get_failure_is_retried() -> None:
    async def main() -> None:
        async with serve(Server()) as url, RestClient(venue(url), FAST) as client:
            assert await client.fetch_json(RestRequest(method="GET", path="/flaky"), Ticker) == Ticker("X", "1")
            assert client.stats.retries == 1 and client.stats.errors == {"outcome_unknown": 1}

    run(main())


@pytest.mark.parametrize("http1_writes", [False, True])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_request_that_waited_for_its_budget_or_a_retry_is_signed_again(method: str, http1_writes: bool) -> None:
    """Signed when built, then held by a rate-limit wait (or a retry's backoff), a request went out
    with its old timestamp, and MEXC refused it as outside its recvWindow: just when the queries and
    cancels that resolve an execution are made, after a 429."""
    signed: list[int] = []

    def request(path: str) -> RestRequest:
        signed.append(len(signed))
        return RestRequest(method=method, path=path, query=f"signature={len(signed)}", limits=(("budget", 1),),
                           resign=lambda: request(path))

    async def main() -> None:
        server = Server()
        limits = (RateLimit("budget", 1, 0.05),)
        settings = RestSettings(timeout_s=0.3, retry_backoff_s=0.001, http1_writes=http1_writes)
        async with serve(server) as url, RestClient(venue(url, limits=limits), settings) as client:
            await client.fetch(request("/echo"))  # the budget's one request of its window
            await client.fetch(request("/echo"))  # waits for the next window: signed again then
            if method == "GET":
                await client.fetch(request("/flaky"))  # retried after a 503: signed again for the retry
        queries = [query for _, query, _, _, _ in server.seen]
        # 1 sent at once; 2 waited, sent as 3; 4 waited, sent as 5, refused; 6 for the retry waited, sent as 7
        expected = ["signature=1", "signature=3"] + (["signature=5", "signature=7"] if method == "GET" else [])
        assert queries == expected

    run(main())


def test_timeouts() -> None:
    async def main() -> None:
        settings = RestSettings(timeout_s=0.1, get_retries=0)
        async with serve(Server()) as url, RestClient(venue(url), settings) as client:
            with pytest.raises(ExchangeError, match="POST /slow: timed out; the outcome is unknown") as info:
                await client.fetch(RestRequest(method="POST", path="/slow", body=b"{}"))
            assert type(info.value) is ExchangeError and info.value.category is ErrorCategory.OUTCOME_UNKNOWN
            assert isinstance(info.value.__cause__, asyncio.TimeoutError)
            with pytest.raises(ExchangeConnectionError, match="GET /slow: timed out"):
                await client.fetch(RestRequest(method="GET", path="/slow"))
            assert client.stats.errors == {"timeout": 2}

    run(main())


def test_refused_connection_is_a_connection_error() -> None:
    async def main() -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        async with RestClient(venue(f"http://127.0.0.1:{port}"), FAST) as client:
            with pytest.raises(ExchangeConnectionError, match="POST /order: cannot connect") as info:
                await client.fetch(RestRequest(method="POST", path="/order"))  # never sent: not "unknown"
            assert isinstance(info.value.__cause__, aiohttp.ClientConnectorError)
            assert info.value.category == ErrorCategory.NOT_SENT

    run(main())


@pytest.mark.parametrize("host", ["gone", "answering"])
def test_a_write_whose_connection_fails_under_it_is_sent_once_and_of_unknown_outcome(host: str) -> None:
    """aiohttp sends a DELETE or PUT again, once, when its kept-alive connection fails under it: the
    venue read the cancel twice and the second answer stood for both (a success, or an order not
    found); with the host gone by then, the refused reconnect made it NOT_SENT, though it was read."""
    lines: list[bytes] = []

    async def main() -> None:
        async def venue_side(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                line = head.split(b"\r\n")[0]
                lines.append(line)
                if line.startswith(b"DELETE") and len(lines) == 2:  # read, then the connection drops
                    if host == "gone":
                        server.close()
                    writer.transport.abort()
                    break
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                await writer.drain()

        server = await asyncio.start_server(venue_side, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with RestClient(venue(f"http://127.0.0.1:{port}"), RestSettings(timeout_s=1.0)) as client:
                await client.fetch(RestRequest(method="GET", path="/time"))  # the connection kept alive
                with pytest.raises(ExchangeError, match="DELETE /order: connection failed") as info:
                    await client.fetch(RestRequest(method="DELETE", path="/order", query="orderId=1"))
            assert info.value.category == ErrorCategory.OUTCOME_UNKNOWN
        finally:
            server.close()

    run(main())
    assert lines == [b"GET /time HTTP/1.1", b"DELETE /order?orderId=1 HTTP/1.1"]


def test_token_bucket_waits_when_exhausted() -> None:
    async def main() -> None:
        limits = (RateLimit("public", 3, 0.15),)
        async with serve(Server()) as url, RestClient(venue(url, limits=limits), FAST) as client:
            results = await asyncio.gather(
                *(client.fetch(RestRequest(method="GET", path="/echo", limits=(("public", 1),))) for _ in range(7))
            )
            assert results == [b'{"ok": true}'] * 7
            assert client.limiter.waits >= 4 and client.limiter.waited_s > 0

    run(main())


def test_rate_limiter_checks_costs() -> None:
    limiter = RateLimiter("gateio", [RateLimit("public", 5, 1.0)])
    with pytest.raises(ValueError, match=r"gateio: unknown rate limit id 'orders' \(known: \['public'\]\)"):
        limiter.check([("orders", 1)])
    with pytest.raises(ValueError, match="weight 6 for rate limit 'public' outside 1..5"):
        limiter.check([("public", 6)])
    with pytest.raises(ValueError, match="capacity=0"):
        RateLimit("x", 0, 1.0)
    limiter.check((("public", 5),))
    limiter.check((("public", 5),))  # remembered as valid; an invalid tuple is still refused every time
    for _ in range(2):
        with pytest.raises(ValueError, match="weight 6"):
            limiter.check((("public", 6),))


def test_rate_limiter_spends_with_a_fake_clock() -> None:
    now = [100.0]
    limiter = RateLimiter("v", [RateLimit("a", 2, 1.0)], clock=lambda: now[0])

    async def main() -> None:
        await limiter.acquire([("a", 2)])
        assert limiter._windows["a"].wait_s(1, now[0]) == pytest.approx(1.0)  # until the spend leaves the window
        now[0] += 1.0
        await limiter.acquire([("a", 1)])
        limiter.block(["a"], 3.0)
        assert limiter._windows["a"].wait_s(1, now[0]) == pytest.approx(3.0)
        assert limiter.waits == 0

    run(main())


def test_no_window_ever_holds_more_than_the_capacity() -> None:
    """Spending as soon as allowed, at random moments: every window of ``window_s`` holds at most the
    capacity (a token bucket starting full would admit up to twice as much)."""
    rng = random.Random(7)
    now = [0.0]
    limiter = RateLimiter("v", [RateLimit("orders", 10, 1.0)], clock=lambda: now[0])
    spends: list[float] = []
    for _ in range(2_000):
        now[0] += rng.choice((0.0, 0.001, 0.01, 0.05, 0.3))
        weight = rng.choice((1, 1, 2, 3))
        if limiter.try_spend([("orders", weight)]):
            spends.extend([now[0]] * weight)
    assert len(spends) > 500
    assert max(bisect.bisect_right(spends, t + 1.0 - 1e-9) - i for i, t in enumerate(spends)) == 10


def test_rate_limiter_wait_s_reports_without_spending() -> None:
    now = [100.0]
    limiter = RateLimiter("v", [RateLimit("a", 2, 1.0), RateLimit("b", 10, 1.0)], clock=lambda: now[0])

    async def main() -> None:
        assert limiter.wait_s([("a", 2), ("b", 1)]) == 0.0
        assert limiter.wait_s([("a", 2), ("b", 1)]) == 0.0  # asking spent nothing
        await limiter.acquire([("a", 2)])
        assert limiter.wait_s([("a", 1), ("b", 1)]) == pytest.approx(1.0)
        now[0] += 1.0
        assert limiter.wait_s([("a", 1)]) == 0.0
        limiter.block(None, 2.0)
        assert limiter.wait_s([("b", 1)]) == pytest.approx(2.0)
        with pytest.raises(ValueError, match="unknown rate limit id 'c'"):
            limiter.wait_s([("c", 1)])

    run(main())


def test_a_per_market_limit_keeps_one_budget_per_market() -> None:
    now = [100.0]
    limiter = RateLimiter(
        "gateio", [RateLimit("orders", 2, 1.0, per_market=True), RateLimit("account", 3, 1.0)], clock=lambda: now[0]
    )
    costs = (("orders", 1), ("account", 1))
    btc, eth = limiter.for_market(costs, "BTC/USDT"), limiter.for_market(costs, "ETH/USDT")
    assert btc == ((market_limit("orders", "BTC/USDT"), 1), ("account", 1)) and btc[0][0] == "orders@BTC/USDT"
    assert limiter.for_market(costs, "BTC/USDT") is btc  # built once per market
    assert limiter.try_spend(btc) and limiter.try_spend(btc) and not limiter.try_spend(btc)
    assert limiter.wait_s(btc) == pytest.approx(1.0)
    assert limiter.try_spend(eth)  # its own budget, while both spend the account-wide one
    assert not limiter.try_spend(eth) and limiter.wait_s(eth) == pytest.approx(1.0)  # "account": 3 spent
    now[0] += 1.0
    limiter.block([market_limit("orders", "ETH/USDT")], 5.0)  # a 429 on one pair
    assert limiter.wait_s(btc) == 0.0 and limiter.wait_s(eth) == pytest.approx(5.0)
    limiter.block([market_limit("orders", "SOL/USDT")], 5.0)  # a market not spent on yet
    assert limiter.wait_s(limiter.for_market(costs, "SOL/USDT")) == pytest.approx(5.0)
    with pytest.raises(ValueError, match=r"'orders' \(kept per market: name one market's as market_limit"):
        limiter.check([("orders", 1)])
    with pytest.raises(ValueError, match=r"unknown rate limit id 'account@BTC/USDT' \(known: \['account', 'orders'\]\)"):
        limiter.check([("account@BTC/USDT", 1)])
    with pytest.raises(ValueError, match="weight 3 for rate limit 'orders@BTC/USDT' outside 1..2"):
        limiter.check([(market_limit("orders", "BTC/USDT"), 3)])
    with pytest.raises(ValueError, match="may not contain '@'"):
        RateLimit("a@b", 1, 1.0)


def test_rate_limiter_try_spend_takes_all_costs_or_none() -> None:
    now = [100.0]
    limiter = RateLimiter("v", [RateLimit("a", 2, 1.0), RateLimit("b", 1, 1.0)], clock=lambda: now[0])
    assert limiter.try_spend([("a", 1), ("b", 1)])
    assert not limiter.try_spend([("a", 1), ("b", 1)])  # b is spent: neither is taken
    assert limiter.wait_s([("a", 1)]) == 0.0  # a still has its second token
    assert limiter.try_spend([("a", 1)]) and not limiter.try_spend([("a", 1)])
    now[0] += 0.5
    assert not limiter.try_spend([("a", 1)])  # both spends are still in the window
    now[0] += 0.5
    assert limiter.try_spend([("a", 1)])
    limiter.block(None, 1.0)
    now[0] += 0.5
    assert not limiter.try_spend([("b", 1)])  # b's spend has left its window, but every budget is blocked for 1 s
    now[0] += 0.5
    assert limiter.try_spend([("b", 1)])
    with pytest.raises(ValueError, match="unknown rate limit id 'c'"):
        limiter.try_spend([("c", 1)])
    assert limiter.waits == 0


def test_parse_retry_after() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    when = datetime(2030, 1, 1, tzinfo=timezone.utc)
    now = (when - timedelta(seconds=30)).timestamp()
    assert parse_retry_after(format_datetime(when, usegmt=True), now_s=now) == pytest.approx(30.0)
    # Not a finite wait (it blocked the budget for good, and overflowed the order runner's deadline):
    # unreadable, as is a digit ``float`` refuses; a very long one is asked again after an hour.
    for endless in ("inf", "Infinity", "1e400", "nan", "²"):
        assert parse_retry_after(endless) is None, endless
    assert parse_retry_after("86400") == MAX_RETRY_AFTER_S == 3600


def test_parse_error_body() -> None:
    assert parse_error_body(b'{"code":-2011,"msg":"Unknown order sent."}') == (-2011, "Unknown order sent.")
    assert parse_error_body(b'{"label":"INVALID_KEY","message":"Invalid key"}') == ("INVALID_KEY", "Invalid key")
    assert parse_error_body(b'{"success":false,"code":602,"message":"sig"}') == (602, "sig")
    assert parse_error_body(b"<html>") is None
    assert parse_error_body(b"[1]") is None
    assert parse_error_body(b"{}") is None


def test_settings_from_exchange_config() -> None:
    assert RestSettings.from_exchange_config(ExchangeConfig(name="mexc", rest_timeout_ms=1500)).timeout_s == 1.5


def test_a_signed_request_s_signature_and_key_never_reach_its_errors() -> None:
    """aiohttp's errors carry the request: their text shows the URL with its signed query and the
    headers with the API key. Neither reaches the mapped error's text, nor the cause chained to it
    (what a logged traceback prints), nor its context (what code walking the chain finds): a
    refusal, and an answer aiohttp cannot parse."""
    signature, key = "DEADBEEFSIGNATURE", "mx0vglSECRETAPIKEY"

    async def garbled(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n")
        await writer.drain()
        writer.close()

    def text_of(exc: BaseException | None) -> str:
        if exc is None:
            return ""
        return f"{exc!s} {exc!r} {text_of(exc.__cause__)} {text_of(exc.__context__)}"

    async def main() -> None:
        request = RestRequest(method="GET", path="/mexc_time", query=f"timestamp=1&signature={signature}",
                              headers={"X-MEXC-APIKEY": key})
        async with serve(Server()) as url:
            async with RestClient(venue(url, mexc.ERROR_CODES, mexc.HTTP_STATUSES), FAST) as client:
                with pytest.raises(ExchangeError) as refused:
                    await client.fetch(request)
        assert isinstance(refused.value.__cause__, aiohttp.ClientResponseError)
        assert refused.value.__cause__.status == 400 and "/mexc_time" in str(refused.value.__cause__)
        server = await asyncio.start_server(garbled, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with RestClient(venue(f"http://127.0.0.1:{port}"), RestSettings(get_retries=0)) as client:
                with pytest.raises(ExchangeError) as unreadable:
                    await client.fetch(msgspec.structs.replace(request, path="/api/v3/account"))
        finally:
            server.close()
        for error in (refused.value, unreadable.value):
            text = text_of(error)
            assert signature not in text and key not in text, text

    run(main())


def test_a_redirect_is_not_followed_with_the_signed_headers() -> None:
    """aiohttp follows redirects and keeps the venue's own signing headers (``KEY``, ``SIGN``) across
    origins: a signed read redirected elsewhere sent the key and signature there, and took the
    answer from there as the venue's."""
    async def main() -> None:
        other, venue_server = Server(), Server()
        async with serve(other) as elsewhere, serve(venue_server) as url:
            async with RestClient(venue(url), FAST) as client:
                signed = RestRequest(method="GET", path="/moved", query=f"to={elsewhere}/echo",
                                     headers={"KEY": "api-key", "SIGN": "signature"})
                with pytest.raises(ExchangeError, match="302"):
                    await client.fetch(signed)
        assert venue_server.hits["GET /moved"] == 1 and not other.seen

    run(main())


def test_a_venue_answer_echoing_the_request_shows_neither_its_key_nor_its_signature() -> None:
    """A venue, or a proxy in front of it, may answer with the request's headers and query in its
    error text: the API key and the signature went on into the error, the logs and ``doctor``'s
    output. They are masked in a parsed message and in a raw body, whose cut after 200 bytes once
    fell inside an echoed value; the venue's reason stays."""
    key, secret = "APIKEY-0123456789abcdef", "SECRET-fedcba9876543210"
    credentials = ApiCredentials(Secret(key), Secret(secret))

    async def echoed(request: web.Request) -> web.Response:
        shown = "; ".join(f"{name}={value}" for name, value in request.headers.items())
        text = f"bad request; headers: {shown}; query: {request.query_string}"
        if request.path.endswith("_text"):  # padded so that the cut after 200 bytes falls 8 into the key
            return web.Response(status=401, text="denied " + "." * (184 - text.find(key)) + " " + text)
        return web.json_response({"label": "INVALID_KEY", "code": 700003, "message": text, "msg": text}, status=401)

    def text_of(exc: BaseException | None) -> str:
        return "" if exc is None else f"{exc!s} {exc!r} {text_of(exc.__cause__)}"

    async def main() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", echoed)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = "http://127.0.0.1:%d" % runner.addresses[0][1]
        gate_signer, mexc_signer = GateioSigner(credentials), MexcSigner(credentials)
        errors: list[tuple[ExchangeError, tuple[str, ...]]] = []
        try:
            for method, path in [("GET", "/spot/accounts"), ("POST", "/spot/orders"), ("GET", "/spot/accounts_text")]:
                headers = gate_signer.rest_headers(method, path, "", b"", 1700000000)
                async with RestClient(gateio_trading.rest_venue(url), RestSettings(http1_writes=True)) as client:
                    with pytest.raises(ExchangeError) as refused:
                        await client.fetch(RestRequest(method=method, path=path, headers=headers))
                errors.append((refused.value, (key, headers[gate.SIGN_HEADER])))
            listen_key = "LISTENKEY-0a1b2c3d4e5f6a7b8c9d"  # the private stream's account token
            for method, path, params in [
                ("GET", "/api/v3/account", []), ("GET", "/api/v3/account_text", []),
                ("PUT", "/api/v3/userDataStream", [("listenKey", listen_key)]),
            ]:
                query = mexc_signer.signed_query(params, timestamp_ms=1700000000000)
                async with RestClient(mexc_trading.spot_rest_venue(url), FAST) as client:
                    with pytest.raises(ExchangeError) as refused:
                        await client.fetch(RestRequest(method=method, path=path, query=query, headers=mexc_signer.headers()))
                secrets = (key, query.rpartition("signature=")[2], *(value for _, value in params))
                errors.append((refused.value, secrets))
        finally:
            await runner.cleanup()
        for error, secrets in errors:
            text = text_of(error)
            assert "bad request" in str(error) or "denied" in str(error), text
            assert "****" in str(error), text
            for value in secrets:
                assert value[:12] not in text, text

    run(main())
