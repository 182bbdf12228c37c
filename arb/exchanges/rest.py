"""REST execution written once: pooled session, client-side rate limits, error mapping, retries.

The venue layer builds and signs a ``RestRequest`` (method, path, query string exactly as
signed, body bytes, headers, and the rate limits it spends); ``RestClient`` sends it
unchanged and turns every failure into the ``ExchangeError`` tree through
``arb.exchanges.errors.venue_error``, with the original exception chained.

Outcomes: a 5xx, a timeout or a dropped connection on anything but a GET raises
``ExchangeError`` with category ``OUTCOME_UNKNOWN`` (the order may exist: reconcile, never
assume failure). Only GETs are retried, and only on those transient failures.

Writes (orders, cancels) go through ``arb.exchanges.http1.Http1Pool`` when
``RestSettings.http1_writes`` is set (``from_exchange_config`` sets it): the request bytes are
written straight to a kept-alive connection, about 20 µs from ``_send`` to the socket write
against about 200 µs through aiohttp (loopback, ``bench_tick_to_order.py``), and the answer is
read without aiohttp's response objects. Errors map exactly as on the aiohttp path; the cause
chained is ``http1.HttpStatusError`` / ``HttpConnectError`` instead of aiohttp's. Writes are
never retried on either path.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import time
import urllib.parse
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import aiohttp
import msgspec
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from ..errors import ExchangeConnectionError, ExchangeError, RateLimitError
from ..secrets import redacted
from ..types import ExchangeConfig
from .errors import ErrorCategory, ErrorCodeTable, venue_error
from .http1 import USER_AGENT, Http1Pool, HttpConnectError, HttpResponse, HttpStatusError

log = logging.getLogger(__name__)

T = TypeVar("T")

MIN_RATE_LIMIT_WAIT_S = 0.1  # the least a refusal for the rate limit is waited out, whatever it asks
MAX_RETRY_AFTER_S = 3600.0  # the most a ``Retry-After`` is taken for: then the venue is asked again
_TRANSIENT = frozenset({ErrorCategory.OUTCOME_UNKNOWN, ErrorCategory.MAINTENANCE})


MARKET_SEPARATOR = "@"


class RateLimit(msgspec.Struct, frozen=True):
    """A documented budget: at most ``capacity`` weight in any ``window_s`` seconds.

    ``per_market``: the venue keeps one such budget per market (Gate.io's spot order placement,
    per currency pair); a cost names one market's budget as ``market_limit(limit_id, symbol)``.
    """

    limit_id: str
    capacity: int
    window_s: float
    per_market: bool = False

    def __post_init__(self) -> None:
        if self.capacity <= 0 or self.window_s <= 0:
            raise ValueError(
                f"rate limit {self.limit_id!r}: capacity={self.capacity} and window_s={self.window_s} must be > 0"
            )
        if MARKET_SEPARATOR in self.limit_id:
            raise ValueError(f"rate limit {self.limit_id!r}: an id may not contain {MARKET_SEPARATOR!r}")


def market_limit(limit_id: str, symbol: str) -> str:
    """The id of market ``symbol``'s own budget of the ``per_market`` limit ``limit_id``."""
    return f"{limit_id}{MARKET_SEPARATOR}{symbol}"


class SpendWindow:
    """What one ``RateLimit`` spent in its last window, by time; it can also be blocked until a time
    (after a 429/418).

    A sliding window rather than a token bucket: a bucket that starts full and refills at
    ``capacity / window_s`` admits up to twice the capacity within one window (the full
    bucket, then what refills while it is spent), which the venue answers with 429s.
    """

    __slots__ = ("limit", "spent", "total", "now", "blocked_until")

    def __init__(self, limit: RateLimit, now: float) -> None:
        self.limit = limit
        self.spent: deque[tuple[float, int]] = deque()  # (when, weight), oldest first, within the window
        self.total = 0  # weight in ``spent``
        self.now = now  # of the last ``wait_s``, when ``take`` spends
        self.blocked_until = 0.0

    def wait_s(self, weight: int, now: float) -> float:
        """Seconds until ``weight`` can be spent (0 when it can be spent now)."""
        self.now = now
        spent, window_s = self.spent, self.limit.window_s
        while spent and spent[0][0] <= now - window_s:
            self.total -= spent.popleft()[1]
        excess = self.total + weight - self.limit.capacity
        wait = 0.0
        if excess > 0:
            for when, spent_weight in spent:  # the spends that must leave the window first
                excess -= spent_weight
                if excess <= 0:
                    wait = when + window_s - now
                    break
        return max(wait, self.blocked_until - now)

    def take(self, weight: int) -> None:
        """Spend ``weight`` (after ``wait_s`` returned 0, with nothing awaited since)."""
        self.spent.append((self.now, weight))
        self.total += weight


class RateLimiter:
    """The client-side budgets of one venue, keyed by limit id; ``acquire`` waits when exhausted."""

    def __init__(self, venue: str, limits: Iterable[RateLimit], clock: Callable[[], float] = time.monotonic) -> None:
        self.venue = venue
        self._clock = clock
        now = clock()
        limits = list(limits)
        self._windows = {limit.limit_id: SpendWindow(limit, now) for limit in limits if not limit.per_market}
        # Per-market limits: a market's window is made when a cost first names it.
        self._per_market = {limit.limit_id: limit for limit in limits if limit.per_market}
        self._longest_window_s = max((limit.window_s for limit in limits), default=None)
        self._market_costs: dict[tuple[tuple[tuple[str, int], ...], str], tuple[tuple[str, int], ...]] = {}
        self._blocked_until = 0.0  # every request, limited or not (IP ban)
        # Endpoints of requests that spend no budget, refused for the rate limit: until when they are held.
        self._endpoints_blocked: dict[str, float] = {}
        self._valid: set[tuple[tuple[str, int], ...]] = set()  # costs that passed ``check``
        self.waits = 0
        self.waited_s = 0.0

    def for_market(self, costs: tuple[tuple[str, int], ...], symbol: str) -> tuple[tuple[str, int], ...]:
        """``costs`` with each ``per_market`` limit named as market ``symbol``'s own budget."""
        key = (costs, symbol)
        scoped = self._market_costs.get(key)
        if scoped is None:
            per_market = self._per_market
            scoped = self._market_costs[key] = tuple(
                (market_limit(limit_id, symbol) if limit_id in per_market else limit_id, weight)
                for limit_id, weight in costs
            )
        return scoped

    def check(self, costs: Sequence[tuple[str, int]]) -> None:
        """Raise ValueError if a cost names an unknown limit (or a per-market limit without its
        market) or exceeds its capacity."""
        if type(costs) is tuple and costs in self._valid:
            return  # each request of a kind carries the same costs: checked once, not on every order
        for limit_id, weight in costs:
            window = self._window(limit_id)
            if not 0 < weight <= window.limit.capacity:
                raise ValueError(
                    f"{self.venue}: weight {weight} for rate limit {limit_id!r} outside 1..{window.limit.capacity}"
                )
        if type(costs) is tuple:
            self._valid.add(costs)

    def wait_s(self, costs: Sequence[tuple[str, int]]) -> float:
        """Seconds until every ``(limit id, weight)`` fits (0 when they fit now); spends nothing."""
        self.check(costs)
        return max(0.0, self._wait_s(costs))

    def _wait_s(self, costs: Sequence[tuple[str, int]]) -> float:
        now = self._clock()
        wait = self._blocked_until - now
        for limit_id, weight in costs:
            wait = max(wait, self._windows[limit_id].wait_s(weight, now))
        return wait

    def try_spend(self, costs: Sequence[tuple[str, int]]) -> bool:
        """Spend every ``(limit id, weight)`` if they all fit now; False (nothing spent) when one does not."""
        self.check(costs)
        if self._wait_s(costs) > 0:
            return False
        self._take(costs)
        return True

    async def acquire(self, costs: Sequence[tuple[str, int]]) -> bool:
        """Wait until every ``(limit id, weight)`` fits, then spend them all at once; whether it waited."""
        self.check(costs)
        waited = await self._wait_out(lambda: self._wait_s(costs))
        self._take(costs)  # they fit: nothing was awaited since the last check
        return waited

    async def acquire_endpoint(self, endpoint: str) -> bool:
        """Wait until a request to ``endpoint`` that spends no budget may go (no IP ban, no hold of
        ``endpoint`` after a refusal); whether it waited."""
        blocked = self._endpoints_blocked
        return await self._wait_out(lambda: max(self._blocked_until, blocked.get(endpoint, 0.0)) - self._clock())

    async def _wait_out(self, wait_s: Callable[[], float]) -> bool:
        """Sleep until ``wait_s()`` is no longer positive, counted in ``waits`` and ``waited_s``;
        whether it slept."""
        waited = False
        while True:
            wait = wait_s()
            if wait <= 0:
                return waited
            if not waited:
                self.waits += 1
                waited = True
            self.waited_s += wait
            await asyncio.sleep(wait)

    def _take(self, costs: Sequence[tuple[str, int]]) -> None:
        for limit_id, weight in costs:
            self._windows[limit_id].take(weight)

    def block(self, limit_ids: Sequence[str] | None, seconds: float) -> None:
        """Refuse to spend on ``limit_ids`` (all requests when None) for ``seconds``."""
        until = self._clock() + seconds
        if limit_ids is None:
            self._blocked_until = max(self._blocked_until, until)
            return
        for limit_id in limit_ids:
            window = self._window(limit_id)
            window.blocked_until = max(window.blocked_until, until)

    def block_endpoint(self, endpoint: str, seconds: float) -> None:
        """Hold the requests to ``endpoint`` that spend no budget for ``seconds``; the budgets stay free."""
        until = self._clock() + seconds
        self._endpoints_blocked[endpoint] = max(self._endpoints_blocked.get(endpoint, 0.0), until)

    def longest_window_s(self, limit_ids: Iterable[str]) -> float | None:
        """The longest window among the budgets ``limit_ids``; where they are none, among every budget
        (None when there is none): the most a refusal's stated reset may hold them."""
        longest = max((self._window(limit_id).limit.window_s for limit_id in limit_ids), default=None)
        return self._longest_window_s if longest is None else longest

    def _window(self, limit_id: str) -> SpendWindow:
        """The window of ``limit_id`` (a market's, made on first use); raises ValueError when unknown."""
        window = self._windows.get(limit_id)
        if window is not None:
            return window
        base, _, symbol = limit_id.partition(MARKET_SEPARATOR)
        limit = self._per_market.get(base)
        if limit is None or not symbol:
            if limit is not None:
                detail = f"kept per market: name one market's as market_limit({base!r}, symbol)"
            else:
                known = sorted(i for i in (*self._windows, *self._per_market) if MARKET_SEPARATOR not in i)
                detail = f"known: {known}"
            raise ValueError(f"{self.venue}: unknown rate limit id {limit_id!r} ({detail})")
        window = self._windows[limit_id] = SpendWindow(limit, self._clock())
        return window


VenueFailure = tuple[str | int | None, str]
"""``(venue error code or label, venue message)`` of a failed response."""


def parse_error_body(body: bytes) -> VenueFailure | None:
    """The code and message of a JSON error body: ``code``/``label`` and ``msg``/``message`` keys
    (MEXC ``{"code":700003,"msg":...}``, Gate ``{"label":"INVALID_KEY","message":...}``)."""
    try:
        doc = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    code = doc.get("label", doc.get("code"))
    message = doc.get("message", doc.get("msg", ""))
    if not isinstance(code, (str, int)) or isinstance(code, bool):
        code = None
    if code is None and not message:
        return None
    return code, str(message)


class RestVenue(msgspec.Struct, frozen=True, kw_only=True):
    """What a venue supplies to ``RestClient``: base URL, error tables, rate limits, error body parser."""

    name: str
    base_url: str
    error_codes: ErrorCodeTable
    http_statuses: Mapping[int, ErrorCategory]
    rate_limits: tuple[RateLimit, ...] = ()
    error_parser: Callable[[bytes], VenueFailure | None] = parse_error_body
    # A header giving, on a 429 without ``Retry-After``, when the limit resets (ms since the epoch).
    rate_limit_reset_header: str | None = None
    # The headers and query parameters whose values must never be shown (the API key, the
    # signature): masked in the venue's answer to a request that carried them.
    secret_headers: frozenset[str] = frozenset()
    secret_params: frozenset[str] = frozenset()


class RestSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Timeouts, pool sizes and retry policy of a venue's REST client."""

    timeout_s: float = 2.0  # whole request
    connect_timeout_s: float | None = None  # defaults to timeout_s
    pool_limit: int = 64
    pool_limit_per_host: int = 32
    keepalive_s: float = 30.0
    get_retries: int = 1  # extra attempts for GETs on transient failures
    retry_backoff_s: float = 0.05
    rate_limited_default_s: float = 1.0  # block after a 429 without Retry-After
    banned_default_s: float = 60.0  # block after a 418 without Retry-After
    http1_writes: bool = False  # non-GET requests over ``Http1Pool`` instead of aiohttp

    @classmethod
    def from_exchange_config(cls, config: ExchangeConfig) -> RestSettings:
        """Settings with the venue's configured timeout (``rest_timeout_ms``), writes over ``Http1Pool``."""
        return cls(timeout_s=config.rest_timeout_ms / 1000, http1_writes=True)


class RestRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One signed request, sent byte for byte as given.

    ``query`` is the encoded query string without ``?``, exactly as signed; ``limits`` are
    the ``(rate limit id, weight)`` pairs it spends.
    """

    method: str
    path: str
    query: str = ""
    body: bytes = b""
    headers: dict[str, str] = {}
    limits: tuple[tuple[str, int], ...] = ()
    # The same request signed afresh: a signature stamped with its time goes stale while the request
    # waits for its budget or a retry, and the venue refuses it (MEXC: outside recvWindow).
    resign: Callable[[], RestRequest] | None = None

    @property
    def is_read(self) -> bool:
        """A GET: retried on transient failures, and a failure never leaves an unknown outcome."""
        return self.method == "GET"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        """What ``repr`` shows: the headers' names, the query's parameter names and the body's size.
        Their values sign the request (an API key header, a signature, MEXC's listenKey); a Struct's
        own would show them, here and through rich's pretty printing."""
        return [
            ("method", self.method),
            ("path", self.path),
            ("query_names", [name for name, _ in urllib.parse.parse_qsl(self.query, keep_blank_values=True)]),
            ("body_bytes", len(self.body)),
            ("header_names", sorted(self.headers)),
            ("limits", self.limits),
        ]

    def __repr__(self) -> str:
        return f"RestRequest({', '.join(f'{name}={value!r}' for name, value in self.__rich_repr__())})"


def check_deadline(venue: str, method: str, path: str, expires_at_ms: int | None, venue_now_ms: float) -> None:
    """For a request about to go after a wait (signed again by ``RestRequest.resign``, or a websocket
    order once logged in and within its budget) at ``venue_now_ms``: raise ``ExchangeError`` (category
    NOT_SENT) once its deadline ``expires_at_ms`` (both in the venue's clock) has passed, rather than
    send what the venue should not take."""
    if expires_at_ms is not None and expires_at_ms <= venue_now_ms:
        raise ExchangeError(
            venue, f"{method} {path}: its deadline passed while it waited for its budget; not sent",
            category=ErrorCategory.NOT_SENT,
        )


class RestStats:
    """Counters of one REST client."""

    __slots__ = ("requests", "responses", "retries", "errors")

    def __init__(self) -> None:
        self.requests = 0
        self.responses = 0
        self.retries = 0
        self.errors: Counter[str] = Counter()


def rate_limit_wait_s(
    venue: RestVenue, headers: Mapping[str, str], now_ms: int | None = None, cap_s: float | None = None
) -> float | None:
    """The wait a refusal's headers (names lower-cased, or a case-insensitive mapping) ask:
    ``Retry-After``, else ``venue``'s reset timestamp against ``now_ms``, the venue's time (default:
    the local clock's), at most ``cap_s`` (default: the venue's longest rate-limit window), the
    window of the refused budgets: a clock read far off would otherwise block them for as long."""
    retry_after = parse_retry_after(headers.get("retry-after"))
    reset_header = venue.rate_limit_reset_header
    if retry_after is not None or reset_header is None:
        return retry_after
    reset = headers.get(reset_header.lower())
    if reset is None or not (reset.strip().isascii() and reset.strip().isdigit()):
        return None
    if cap_s is None:
        cap_s = max((limit.window_s for limit in venue.rate_limits), default=None)
    return reset_wait_s(int(reset), time.time_ns() // 1_000_000 if now_ms is None else now_ms, cap_s)


def reset_wait_s(reset_ms: int, now_ms: int, cap_s: float | None) -> float:
    """Seconds from ``now_ms`` to a stated reset time ``reset_ms`` (both on the venue's clock), at
    most ``cap_s``: the refused budgets' window, which a clock far off must not stretch."""
    wait = max(0.0, (reset_ms - now_ms) / 1000)
    return wait if cap_s is None else min(wait, cap_s)


def parse_retry_after(value: str | None, now_s: float | None = None) -> float | None:
    """Seconds of a ``Retry-After`` header (delta seconds or HTTP date), at most ``MAX_RETRY_AFTER_S``;
    None if absent or unreadable (not a finite number: ``inf`` blocked the budget for good)."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        seconds = when.timestamp() - (time.time() if now_s is None else now_s)
    if not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER_S)


class RestClient:
    """One pooled keep-alive ``aiohttp.ClientSession`` per venue, with its rate limiter."""

    def __init__(self, venue: RestVenue, settings: RestSettings | None = None) -> None:
        self.venue = venue
        self.settings = settings or RestSettings()
        self.limiter = RateLimiter(venue.name, venue.rate_limits)
        self.stats = RestStats()
        # How far the venue's clock runs ahead of the local one (its connector's last reading, ms):
        # reset times the venue states are read on its clock.
        self.venue_clock_ahead_ms = 0.0
        self._base_url = venue.base_url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None
        self._http1: Http1Pool | None = None
        self._decoders: dict[Any, msgspec.json.Decoder[Any]] = {}
        # Called with ``METHOD path`` whenever the venue refuses a request for its timestamp.
        self.on_timestamp_refused: Callable[[str], None] | None = None

    async def __aenter__(self) -> RestClient:
        self._ensure_session()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _ensure_session(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None or session.closed:
            s = self.settings
            connector = aiohttp.TCPConnector(
                limit=s.pool_limit, limit_per_host=s.pool_limit_per_host, keepalive_timeout=s.keepalive_s
            )
            timeout = aiohttp.ClientTimeout(total=s.timeout_s, sock_connect=s.connect_timeout_s or s.timeout_s)
            session = self._session = aiohttp.ClientSession(
                connector=connector, timeout=timeout, middlewares=(_writes_sent_once,),
                headers={"User-Agent": USER_AGENT},
            )
        return session

    async def close(self) -> None:
        """Close the session and its pooled connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._http1 is not None:
            await self._http1.close()
            self._http1 = None

    async def prewarm(self) -> None:
        """Open the write path's connection ahead of the first order (when writes use ``Http1Pool``)."""
        if self.settings.http1_writes:
            s = self.settings
            try:
                await self._ensure_http1().prewarm(1, s.connect_timeout_s or s.timeout_s)
            except HttpConnectError as exc:
                raise ExchangeConnectionError(self.venue.name, str(exc)) from exc

    def _ensure_http1(self) -> Http1Pool:
        pool = self._http1
        if pool is None:
            pool = self._http1 = Http1Pool(self._base_url, max_idle=self.settings.pool_limit_per_host)
        return pool

    async def fetch(self, request: RestRequest) -> bytes:
        """Send ``request`` and return the body of a 2xx response; raises an ``ExchangeError`` child."""
        retries = self.settings.get_retries if request.is_read else 0
        attempt = 0
        while True:
            try:
                return await self._send(request)
            except ExchangeError as exc:
                transient = isinstance(exc, ExchangeConnectionError) or exc.category in _TRANSIENT
                if attempt >= retries or not transient:
                    raise
            self.stats.retries += 1
            await asyncio.sleep(self.settings.retry_backoff_s * (2**attempt))
            attempt += 1
            if request.resign is not None:
                request = request.resign()

    async def fetch_json(self, request: RestRequest, type_: type[T]) -> T:
        """``fetch`` and decode the body into the venue schema ``type_``."""
        body = await self.fetch(request)
        decoder = self._decoders.get(type_)
        if decoder is None:
            decoder = self._decoders[type_] = msgspec.json.Decoder(type_)
        try:
            result: T = decoder.decode(body)
        except msgspec.DecodeError as exc:
            self.stats.errors["decode"] += 1
            # A 2xx to an order we cannot read may still mean the order exists.
            category = None if request.is_read else ErrorCategory.OUTCOME_UNKNOWN
            raise ExchangeError(
                self.venue.name,
                f"{request.method} {request.path}: response does not match {getattr(type_, '__name__', type_)}: {exc}",
                category=category,
            ) from exc
        return result

    async def _spend(self, request: RestRequest) -> RestRequest:
        """Wait for ``request``'s budget and spend it (for one that spends none, wait out a hold of its
        endpoint); the request as it goes, signed again if it waited."""
        if request.limits:
            waited = await self.limiter.acquire(request.limits)
        else:
            waited = await self.limiter.acquire_endpoint(_endpoint(request))
        if waited and request.resign is not None:
            return request.resign()
        return request

    async def _send(self, request: RestRequest) -> bytes:
        if self.settings.http1_writes and not request.is_read:
            return await self._send_http1(request)
        request = await self._spend(request)
        target = self._base_url + request.path + ("?" + request.query if request.query else "")
        session = self._ensure_session()
        self.stats.requests += 1
        try:
            # A redirect is not followed: it would carry the signed headers to another host, and
            # answer for the venue from there. Its status maps as any other failure.
            async with session.request(
                request.method, URL(target, encoded=True), data=request.body or None, headers=request.headers,
                allow_redirects=False,
            ) as response:
                body = await response.read()
                status = response.status
                if 200 <= status < 300:
                    self.stats.responses += 1
                    return body
                # The cause of the mapped error: the status line and URL as aiohttp saw them (the
                # URL without its query and the request without its headers: they are signed).
                http_error = aiohttp.ClientResponseError(
                    _unsigned(response.request_info),
                    (),
                    status=status,
                    message=response.reason or "",
                    headers=response.headers,
                )
        except asyncio.CancelledError:
            raise
        except aiohttp.ClientConnectorError as exc:
            raise self._not_connected(request, f"cannot connect: {exc}") from exc
        except (asyncio.TimeoutError, aiohttp.ClientError, OSError) as exc:
            lost, cause = self._lost(request, exc), _scrubbed(exc)
        else:
            self.stats.responses += 1
            raise self._failure(request, status, http_error.headers, body) from http_error
        # Raised outside the handler: the original error, which carries the signed URL and headers,
        # is then not kept as its context.
        raise lost from cause

    async def _send_http1(self, request: RestRequest) -> bytes:
        """``_send`` of a write over ``Http1Pool``: the same outcomes, mapped the same way."""
        request = await self._spend(request)
        pool = self._ensure_http1()
        data = _http1_bytes(pool, request)
        self.stats.requests += 1
        return await self._http1_answer(request, pool.request(data, timeout_s=self.settings.timeout_s))

    def write_now(self, request: RestRequest) -> Awaitable[bytes] | None:
        """Write the order-path ``request`` before returning, when it can go at once.

        That needs ``http1_writes``, a write, its budget free now and an idle connection;
        otherwise nothing is written or spent and the answer is None (use ``fetch``). The
        returned awaitable gives what ``fetch`` would (without retries: writes have none).
        """
        if request.is_read or not self.settings.http1_writes or self.limiter.wait_s(request.limits) > 0:
            return None
        pool = self._ensure_http1()
        data = _http1_bytes(pool, request)
        answer = pool.write(data, timeout_s=self.settings.timeout_s)
        if answer is None:
            return None
        self.limiter.try_spend(request.limits)  # fits: checked above, with nothing awaited since
        self.stats.requests += 1
        return self._http1_answer(request, answer)

    def rehearse_write(self, request: RestRequest) -> None:
        """Encode ``request`` as ``write_now`` would and drop it: nothing is written or spent."""
        pool = self._http1
        if pool is not None and not request.is_read and self.settings.http1_writes:
            _http1_bytes(pool, request)

    async def _http1_answer(self, request: RestRequest, answer: Awaitable[HttpResponse]) -> bytes:
        """The body of the 2xx ``answer`` to ``request`` over ``Http1Pool``; raises the mapped error
        of any other outcome."""
        try:
            response = await answer
        except HttpConnectError as exc:
            raise self._not_connected(request, str(exc)) from exc
        except (asyncio.TimeoutError, OSError) as exc:
            raise self._lost(request, exc) from exc
        self.stats.responses += 1
        if 200 <= response.status < 300:
            return response.body
        error = HttpStatusError(request.method, self._base_url + request.path, response)
        raise self._failure(request, response.status, response.headers, response.body) from error

    def _not_connected(self, request: RestRequest, detail: str) -> ExchangeConnectionError:
        """The connection was never made, so the request was never sent."""
        self.stats.errors["connect"] += 1
        return ExchangeConnectionError(
            self.venue.name, f"{request.method} {request.path}: {detail}", category=ErrorCategory.NOT_SENT
        )

    def note_refusal(self, error: ExchangeError, where: str) -> None:
        """Pass a venue's refusal of a signed request ``where`` (here or on a transport sharing this
        client's budget) to ``on_timestamp_refused`` when it was refused for its timestamp."""
        if error.category == ErrorCategory.TIMESTAMP and self.on_timestamp_refused is not None:
            self.on_timestamp_refused(where)

    def _lost(self, request: RestRequest, exc: BaseException) -> ExchangeError:
        """A timeout or a dropped connection after sending: a read failed, a write's outcome is unknown."""
        kind = "timeout" if isinstance(exc, asyncio.TimeoutError) else "connection"
        self.stats.errors[kind] += 1
        what = "timed out" if kind == "timeout" else f"connection failed: {_scrubbed(exc)!r}"
        where = f"{request.method} {request.path}"
        if request.is_read:
            return ExchangeConnectionError(self.venue.name, f"{where}: {what}")
        return ExchangeError(
            self.venue.name, f"{where}: {what}; the outcome is unknown", category=ErrorCategory.OUTCOME_UNKNOWN
        )

    def _failure(
        self, request: RestRequest, status: int, headers: Mapping[str, str] | None, body: bytes
    ) -> ExchangeError:
        failure = self.venue.error_parser(body)
        if failure is not None:
            code, text = failure[0], _unsigned_text(failure[1], request, self.venue)
        else:  # masked before it is cut: a cut inside an echoed value would leave its start
            code, text = None, _unsigned_text(body.decode("utf-8", "replace"), request, self.venue)[:200]
        error = venue_error(
            self.venue.name,
            f"{request.method} {request.path}: {text}",
            codes=self.venue.error_codes,
            http_statuses=self.venue.http_statuses,
            code=code,
            http_status=status,
            retry_after_s=None if headers is None else rate_limit_wait_s(
                self.venue, headers, time.time_ns() // 1_000_000 + round(self.venue_clock_ahead_ms),
                self.limiter.longest_window_s(limit_id for limit_id, _ in request.limits),
            ),
            write=not request.is_read,
        )
        self.stats.errors[ErrorCategory(error.category).value if error.category is not None else f"http_{status}"] += 1
        self.note_refusal(error, f"{request.method} {request.path}")
        if isinstance(error, RateLimitError):
            if status == 418:  # an IP ban: nothing may go out
                self.hold_after_rate_limit(error, None, self.settings.banned_default_s)
            elif request.limits:  # a 429 holds the budgets this request spends
                self.hold_after_rate_limit(error, [i for i, _ in request.limits], self.settings.rate_limited_default_s)
            else:  # ... or, where it spends none, its own endpoint: the venue's limit there is not known here
                self.limiter.block_endpoint(
                    _endpoint(request), self.rate_limit_hold_s(error, self.settings.rate_limited_default_s)
                )
            log.warning("%s: %s; requests blocked for %.3f s", self.venue.name, error, error.retry_after_s)
        return error

    def hold_after_rate_limit(self, error: RateLimitError, limit_ids: list[str] | None, default_s: float) -> None:
        """Block the budgets ``limit_ids`` (None: every request) for the wait the refusal ``error``
        asks (``rate_limit_hold_s``)."""
        self.limiter.block(limit_ids, self.rate_limit_hold_s(error, default_s))

    @staticmethod
    def rate_limit_hold_s(error: RateLimitError, default_s: float) -> float:
        """The wait the refusal ``error`` asks, set on it: ``default_s`` where it asks none, and never
        less than ``MIN_RATE_LIMIT_WAIT_S`` (a reset due already, or a wait of 0, would send the
        request again at once into the limit)."""
        given = error.retry_after_s
        error.retry_after_s = default_s if given is None else max(given, MIN_RATE_LIMIT_WAIT_S)
        return error.retry_after_s


async def _writes_sent_once(
    request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
) -> aiohttp.ClientResponse:
    """``handler``, a write's connection failing raised as an error aiohttp sends nothing again on.

    aiohttp sends a PUT or DELETE (a cancel) once more when its connection fails under it, though
    the venue may have read the first copy: the cancel then went twice, and its answer was the
    second copy's (an order not found, or a refused connection taken for nothing sent).
    """
    try:
        return await handler(request)
    except aiohttp.ClientConnectorError:
        raise  # no connection made: nothing sent, and aiohttp sends nothing again
    except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError) as exc:
        if request.method == "GET":
            raise
        raise aiohttp.ClientConnectionError(repr(exc)) from exc


def _endpoint(request: RestRequest) -> str:
    """The endpoint ``request`` calls, as a hold after a refusal names it: ``METHOD path``."""
    return f"{request.method} {request.path}"


def _unsigned(info: aiohttp.RequestInfo) -> aiohttp.RequestInfo:
    """``info`` without what signs a request: the URL's query and the headers."""
    return aiohttp.RequestInfo(
        info.url.with_query(None), info.method, CIMultiDictProxy(CIMultiDict()), info.real_url.with_query(None)
    )


def _scrubbed(exc: BaseException) -> BaseException:
    """``exc``, or for an aiohttp error that carries the request (its repr shows the signed URL
    and headers) the same error without them."""
    if isinstance(exc, aiohttp.ClientResponseError):
        return type(exc)(_unsigned(exc.request_info), (), status=exc.status, message=exc.message)
    return exc


def _unsigned_text(text: str, request: RestRequest, venue: RestVenue) -> str:
    """``text`` of ``venue``'s answer to ``request`` without what signs the request: a venue, or a
    proxy in front of it, may echo the request's headers or query in an error."""
    names = {name.lower() for name in venue.secret_headers}
    values = [value for name, value in request.headers.items() if name.lower() in names]
    if venue.secret_params:
        for pair in request.query.split("&"):
            name, _, value = pair.partition("=")
            if name in venue.secret_params:
                values.append(value)
    return redacted(text, values)


def _http1_bytes(pool: Http1Pool, request: RestRequest) -> bytes:
    """``request`` as ``pool`` writes it."""
    return pool.encode(request.method, request.path, request.query, request.body, request.headers)
