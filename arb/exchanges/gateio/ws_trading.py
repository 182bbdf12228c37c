"""Gate.io websocket trading API, client side: one logged-in connection carrying orders.

``GateioWsOrders`` keeps a ``WsSession`` on the market's websocket URL (the market-data URL:
Gate serves both on one endpoint). On every (re)connect it sends ``spot.login`` (or
``futures.login``) signed with a fresh timestamp::

    {"time":1681984544,"channel":"spot.login","event":"api",
     "payload":{"api_key":"ea83...","signature":"6fa3...","timestamp":"1681984544","req_id":"login-1"}}

where the signature is hex(HMAC-SHA512(secret, "api\\nspot.login\\n\\n<timestamp>")). Requests then
ride on the authenticated connection without a signature of their own::

    {"time":1681986204,"channel":"spot.order_place","event":"api",
     "payload":{"req_id":"7","req_param":{"text":"t-abc","currency_pair":"BTC_USDT",...},
                "req_header":{"x-gate-exptime":"1681986209000"}}}

``order_place`` is answered twice, an ack (``"ack":true``) and then the result; cancel and
status once. Each request id has one awaiting future; the result's ``data.result`` (the
same order object as the REST answer) resolves it as bytes, so the venue's REST parsers read
it. A refusal (``header.status`` not 200, ``data.errs.label``) is mapped through
``constants.ERROR_LABELS`` like a REST error. No answer within the timeout, or the
connection lost while waiting, is ``OUTCOME_UNKNOWN`` for an order or cancel (query by
client id to learn what happened) and a connection error for a status read.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

import msgspec

from ...errors import ExchangeConnectionError, ExchangeError, RateLimitError
from ...instruments import InstrumentCatalog
from ...secrets import ApiCredentials, redacted
from ..base import Frame, WsPayload
from ..errors import ErrorCategory, venue_error
from ..models import OrderRequest
from ..rest import RestClient, check_deadline, reset_wait_s
from ..ws import WsSession, WsSettings
from . import constants
from .auth import GateioSigner
from .schemas import WsApiReply
from .trading import GateioFuturesTrading, GateioSpotTrading

log = logging.getLogger(__name__)

_reply = msgspec.json.Decoder(WsApiReply)
_encode = msgspec.json.Encoder().encode
# One bytes % per request: the order object comes pre-encoded from the trading module, then
# the payload's ``req_header`` where there is one (``_expiry``).
_REQUEST = b'{"time":%d,"channel":"%s","event":"api","payload":{"req_id":"%d","req_param":%s%s}}'
_EXPIRY = b',"req_header":{"%s":"%%d"}' % constants.EXPIRY_HEADER.encode()


def _expiry(expires_at_ms: int | None) -> bytes:
    """The ``req_header`` member of an order refused when Gate receives it after ``expires_at_ms``."""
    return b"" if expires_at_ms is None else _EXPIRY % expires_at_ms


class WsApiMarket(msgspec.Struct, frozen=True, kw_only=True):
    """Channel names of one market's WS API and how orders are addressed there."""

    login: str
    place: str
    cancel: str
    status: str
    ping: str
    pong: bytes
    pair_key: str | None  # spot orders name their pair ("currency_pair"); futures ids stand alone
    place_limit: str
    cancel_limit: str
    status_limit: str


SPOT_API = WsApiMarket(
    login=constants.SPOT_LOGIN_CHANNEL,
    place=constants.SPOT_ORDER_PLACE_CHANNEL,
    cancel=constants.SPOT_ORDER_CANCEL_CHANNEL,
    status=constants.SPOT_ORDER_STATUS_CHANNEL,
    ping=constants.SPOT_PING_CHANNEL,
    pong=b'"' + constants.SPOT_PONG_CHANNEL.encode() + b'"',
    pair_key="currency_pair",
    place_limit=constants.SPOT_ORDER_PLACE_RATE_LIMIT,
    cancel_limit=constants.SPOT_ORDER_CANCEL_RATE_LIMIT,
    status_limit=constants.SPOT_ORDER_QUERY_RATE_LIMIT,
)
FUTURES_API = WsApiMarket(
    login=constants.FUTURES_LOGIN_CHANNEL,
    place=constants.FUTURES_ORDER_PLACE_CHANNEL,
    cancel=constants.FUTURES_ORDER_CANCEL_CHANNEL,
    status=constants.FUTURES_ORDER_STATUS_CHANNEL,
    ping=constants.FUTURES_PING_CHANNEL,
    pong=b'"' + constants.FUTURES_PONG_CHANNEL.encode() + b'"',
    pair_key=None,
    place_limit=constants.FUTURES_ORDER_PLACE_RATE_LIMIT,
    cancel_limit=constants.FUTURES_WS_ORDER_CANCEL_RATE_LIMIT,
    status_limit=constants.FUTURES_ORDER_QUERY_RATE_LIMIT,
)


class _Pending:
    """A request awaiting its result."""

    __slots__ = ("future", "write", "where", "limit_id")

    def __init__(self, future: asyncio.Future[bytes], write: bool, where: str, limit_id: str) -> None:
        self.future = future
        self.write = write
        self.where = where
        self.limit_id = limit_id


class GateioWsOrders:
    """Orders, cancels and status reads over Gate's WS API, on one persistent logged-in connection.

    Requests spend the budgets of ``rest``'s rate limiter: the venue counts WS and REST orders
    against the same per-UID limits. ``timeout_s`` bounds each request's answer.
    """

    def __init__(
        self,
        credentials: ApiCredentials,
        catalog: InstrumentCatalog,
        url: str,
        rest: RestClient,
        *,
        futures: bool = False,
        timeout_s: float = 2.0,
        settings: WsSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"gateio ws orders: timeout_s={timeout_s} must be > 0")
        self.market = FUTURES_API if futures else SPOT_API
        self.venue = constants.VENUE + ("_futures" if futures else "")
        self._signer = GateioSigner(credentials)
        self._trading: GateioSpotTrading | GateioFuturesTrading
        self.use_catalog(catalog, futures=futures)
        self.rest = rest
        self.timeout_s = timeout_s
        self._clock = clock
        self._ids = itertools.count(1)
        self._pending: dict[str, _Pending] = {}
        self._login_id = ""
        self._login_secrets: tuple[str, ...] = ()  # the API key and signature the last login carried
        self._logged_in = asyncio.Event()
        self._login_error: ExchangeError | None = None
        self._started = False  # ``start`` logged in: a login refused after it is retried, not raised
        self._channel = {name: name.encode() for name in (self.market.place, self.market.cancel, self.market.status)}
        self.acks = 0
        self.results = 0
        self.last_venue_us = 0  # x_out_time - x_in_time of the last result: the venue's own processing time
        self.session = WsSession(
            self.venue,
            url,
            self._on_message,
            connect_frames=self._login_frames,
            ping_frame=self._ping_frame,
            is_pong=self._is_pong,
            on_disconnected=self._disconnected,
            settings=settings,
        )

    def use_catalog(self, catalog: InstrumentCatalog, *, futures: bool | None = None) -> None:
        """Build orders with ``catalog``'s instruments from now on (after ``reload_instruments``);
        nothing to do when they already are (the connector calls this before every request)."""
        if futures is None:
            if self._trading.instruments is catalog:
                return
            futures = self.market is FUTURES_API
        trading = GateioFuturesTrading if futures else GateioSpotTrading
        self._trading = trading(self._signer, catalog)

    @property
    def logged_in(self) -> bool:
        """Whether the current connection's login was accepted (answered, and not refused)."""
        return self._logged_in.is_set() and self._login_error is None

    async def start(self, timeout_s: float) -> None:
        """Connect and log in; raises ``ExchangeError`` (AUTH_FAILED...) when Gate refuses the login and
        ``ExchangeConnectionError`` when no login is accepted within ``timeout_s``."""
        self.session.start()
        try:
            await self._ready(timeout_s)
        except (ExchangeError, asyncio.CancelledError):
            # Cancelled too (a stop during the start-up): the caller never gets the connection to close.
            await self.close()
            raise
        self._started = True

    async def close(self) -> None:
        """Close the connection; requests still waiting end as their outcome dictates."""
        await self.session.close()
        self._fail_pending("websocket closed")

    # --- requests ---------------------------------------------------------------------------

    async def place_order(self, order: OrderRequest, expires_at_ms: int | None = None) -> bytes:
        """``order_place``: the placed order object (as the REST answer), once the result arrives.
        Gate refuses it when it arrives after ``expires_at_ms`` (its clock)."""
        req_param = self._trading.order_body(order)
        ((limit_id, _),) = self._place_cost(order)
        return await self._request(
            self.market.place, req_param, limit_id, True, self._where_placed(order), expires_at_ms=expires_at_ms
        )

    def write_order(self, order: OrderRequest, expires_at_ms: int | None = None) -> Awaitable[bytes] | None:
        """``order_place`` written before returning, when logged in and the budget admits it now;
        else None (nothing written or spent: use ``place_order``). Await the result for the body."""
        if not self._logged_in.is_set() or self._login_error is not None:
            return None
        limiter = self.rest.limiter
        cost = self._place_cost(order)
        if limiter.wait_s(cost) > 0:
            return None
        req_param = self._trading.order_body(order)
        try:
            written = self._send(
                self.market.place, req_param, cost[0][0], True, self._where_placed(order), _expiry(expires_at_ms)
            )
        except ExchangeConnectionError:
            return None
        limiter.try_spend(cost)  # fits: checked above, with nothing awaited since
        return self._answer(*written)

    def rehearse_order(self, order: OrderRequest, expires_at_ms: int | None = None) -> None:
        """Encode the ``order_place`` request ``write_order`` would write and drop it."""
        self._frame(self.market.place, 0, self._trading.order_body(order), _expiry(expires_at_ms))

    async def cancel_order(self, symbol: str, order_id: str | None, client_order_id: str | None) -> bytes:
        """``order_cancel`` by id or client id (exactly one): the cancelled order object."""
        req_param = self._address(symbol, order_id, client_order_id)
        where = f"{self.market.cancel} {order_id or client_order_id!r}"
        return await self._request(self.market.cancel, req_param, self.market.cancel_limit, True, where)

    async def query_order(self, symbol: str, order_id: str | None, client_order_id: str | None) -> bytes:
        """``order_status`` by id or client id (exactly one): the order object."""
        req_param = self._address(symbol, order_id, client_order_id)
        where = f"{self.market.status} {order_id or client_order_id!r}"
        return await self._request(self.market.status, req_param, self.market.status_limit, False, where)

    def _place_cost(self, order: OrderRequest) -> tuple[tuple[str, int], ...]:
        """The budget placing ``order`` spends: its market's place limit (on spot, its pair's own)."""
        return self.rest.limiter.for_market(((self.market.place_limit, 1),), order.symbol)

    def _where_placed(self, order: OrderRequest) -> str:
        return f"{self.market.place} {order.client_order_id!r}"

    def _address(self, symbol: str, order_id: str | None, client_order_id: str | None) -> bytes:
        ref = self._trading._order_ref(order_id, client_order_id)
        if self.market.pair_key is None:
            return _encode({"order_id": ref})
        return _encode({"order_id": ref, self.market.pair_key: self._trading.instruments.get(symbol).venue_symbol})

    async def _ready(self, timeout_s: float) -> None:
        if not self._logged_in.is_set():
            try:
                await asyncio.wait_for(self._logged_in.wait(), timeout_s)
            except asyncio.TimeoutError:
                raise ExchangeConnectionError(
                    self.venue, f"ws api {self.session.url}: not logged in within {timeout_s} s",
                    category=ErrorCategory.NOT_SENT,
                ) from None
        error = self._login_error
        if error is not None:
            if error.category in (None, ErrorCategory.OUTCOME_UNKNOWN):
                # A login the venue failed on (SERVER_ERROR, TOO_BUSY): this request is certainly not
                # written, and taken as of unknown outcome it would be queried for nothing.
                raise ExchangeConnectionError(
                    self.venue, f"ws api {self.session.url}: not logged in ({error}); not sent",
                    category=ErrorCategory.NOT_SENT,
                )
            raise error.with_traceback(None)  # raised again per request: no traceback piling up

    async def _request(
        self, channel: str, req_param: bytes, limit_id: str, write: bool, where: str, *,
        expires_at_ms: int | None = None,
    ) -> bytes:
        """Send one request once logged in and its budget admits it; its result. One whose deadline
        ``expires_at_ms`` (Gate's clock) passed while it waited is not sent (Gate would refuse it)."""
        await self._ready(self.timeout_s)
        await self.rest.limiter.acquire(((limit_id, 1),))
        check_deadline(self.venue, "WS", channel, expires_at_ms, self._clock() * 1000)
        return await self._answer(*self._send(channel, req_param, limit_id, write, where, _expiry(expires_at_ms)))

    def _send(
        self, channel: str, req_param: bytes, limit_id: str, write: bool, where: str, header: bytes = b""
    ) -> tuple[str, _Pending]:
        """Write one request now; its key and pending entry. Raises ``ExchangeConnectionError``
        when the connection cannot take it (nothing written)."""
        request_id = next(self._ids)
        key = str(request_id)
        pending = self._pending[key] = _Pending(asyncio.get_running_loop().create_future(), write, where, limit_id)
        try:
            self.session.send_text(self._frame(channel, request_id, req_param, header))
        except ExchangeConnectionError:
            del self._pending[key]
            raise
        return key, pending

    def _frame(self, channel: str, request_id: int, req_param: bytes, header: bytes) -> bytes:
        return _REQUEST % (int(self._clock()), self._channel[channel], request_id, req_param, header)

    async def _answer(self, key: str, pending: _Pending) -> bytes:
        """The result of the request written as ``key``; raises what its answer, or its absence, means."""
        try:
            return await asyncio.wait_for(pending.future, self.timeout_s)
        except asyncio.TimeoutError:
            self._pending.pop(key, None)
            raise self._lost(pending.where, f"no result within {self.timeout_s} s", pending.write) from None

    def _lost(self, where: str, what: str, write: bool) -> ExchangeError:
        if write:
            return ExchangeError(self.venue, f"{where}: {what}; the outcome is unknown", category=ErrorCategory.OUTCOME_UNKNOWN)
        return ExchangeConnectionError(self.venue, f"{where}: {what}")

    # --- connection callbacks ---------------------------------------------------------------------

    def _login_frames(self) -> Sequence[WsPayload]:
        self._logged_in.clear()
        self._login_error = None
        self._login_id = f"login-{next(self._ids)}"
        now = int(self._clock())
        payload = self._signer.ws_login_payload(self.market.login, now, self._login_id)
        self._login_secrets = (payload["api_key"], payload["signature"])
        return (
            _encode({"time": now, "channel": self.market.login, "event": constants.EVENT_API, "payload": payload}).decode(),
        )

    def _login_refused(self, error: ExchangeError) -> None:
        """A login refused on a reconnect (a clock off at that moment, a venue hiccup, its rate limit):
        the connection would stay up refusing every order until a restart. It is dropped to connect
        again, after the session's backoff, with a freshly signed login; refused for the rate limit,
        once the wait the refusal asks has passed (sooner, the login would go into the same limit)."""
        wait_s = error.retry_after_s if isinstance(error, RateLimitError) and error.retry_after_s else 0.0
        log.warning("%s: ws api login refused on reconnecting: %s; connecting again%s", self.venue, error,
                    f" in {wait_s:.3f} s" if wait_s else "")
        if not wait_s:
            self.session.drop()
            return

        def drop_if_still_refused() -> None:
            if self._login_error is error:  # not logged in again meanwhile (on a connection of its own)
                self.session.drop()

        asyncio.get_running_loop().call_later(wait_s, drop_if_still_refused)

    def _ping_frame(self) -> WsPayload:
        return f'{{"time":{int(self._clock())},"channel":"{self.market.ping}"}}'

    def _is_pong(self, frame: Frame) -> bool:
        return self.market.pong in bytes(frame[:120])

    def _disconnected(self) -> None:
        self._logged_in.clear()
        self._fail_pending("connection lost")

    def _fail_pending(self, what: str) -> None:
        pending, self._pending = self._pending, {}
        for item in pending.values():
            if not item.future.done():
                item.future.set_exception(self._lost(item.where, f"{what} before the result", item.write))

    def _on_message(self, payload: memoryview, is_binary: bool, last_in_buffer: bool, recv_ns: int) -> None:
        try:
            reply = _reply.decode(payload)
        except msgspec.DecodeError:
            self.session._count_error("malformed", f"unreadable ws api frame {bytes(payload[:120])!r}")
            return
        if not reply.request_id:
            return  # pongs and other channel traffic
        if reply.ack:
            self.acks += 1
            return
        header, data = reply.header, reply.data
        if reply.request_id == self._login_id:
            if data.errs is not None or header.status != constants.WS_API_STATUS_OK:
                self._login_error = error = self._refusal(reply, self.market.login, None, False)
                if self._started:
                    self._login_refused(error)
                else:
                    log.warning("%s: ws api login refused: %s", self.venue, self._login_error)
            self._logged_in.set()
            return
        item = self._pending.pop(reply.request_id, None)
        if item is None or item.future.done():
            return  # answered after its timeout: the caller already reported the outcome unknown
        self.results += 1
        self.last_venue_us = header.x_out_time - header.x_in_time
        if data.errs is not None or header.status != constants.WS_API_STATUS_OK:
            item.future.set_exception(self._refusal(reply, item.where, item.limit_id, item.write))
        else:
            item.future.set_result(bytes(data.result))

    def _refusal(self, reply: WsApiReply, where: str, limit_id: str | None, write: bool) -> ExchangeError:
        """The error of a refused request; a 5xx answer to a ``write`` (place, cancel) leaves its
        outcome unknown, as over REST, whatever its label. What signed the login is masked in the
        venue's message, which may echo it."""
        header, errs = reply.header, reply.data.errs
        label, message = (errs.label, errs.message) if errs is not None else (None, "refused")
        message = redacted(message, self._login_secrets)
        status = int(header.status) if header.status.isdigit() else None
        retry_after_s = None
        reset_ms = header.x_gate_ratelimit_reset_timestamp
        if reset_ms is not None and header.response_time.isdigit():
            refused = () if limit_id is None else (limit_id,)
            retry_after_s = reset_wait_s(
                reset_ms, int(header.response_time), self.rest.limiter.longest_window_s(refused)
            )
        error = venue_error(
            self.venue,
            f"{where}: {message}",
            codes=constants.ERROR_LABELS,
            http_statuses=constants.HTTP_STATUSES,
            code=label,
            http_status=status,
            retry_after_s=retry_after_s,
            write=write,
        )
        self.rest.note_refusal(error, where)
        if isinstance(error, RateLimitError):
            default_s = self.rest.settings.rate_limited_default_s
            if limit_id is None:
                # A login spends no budget: as the REST client holds such a request's endpoint alone,
                # only the next login waits (``_login_refused``); orders and REST calls go on.
                self.rest.rate_limit_hold_s(error, default_s)
            else:  # as the REST client does after a 429: hold the budget this request spends
                self.rest.hold_after_rate_limit(error, [limit_id], default_s)
        return error
