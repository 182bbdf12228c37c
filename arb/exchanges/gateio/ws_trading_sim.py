"""The server side of Gate.io's websocket trading API, for the simulated venue (no I/O here).

``GateioWsApiSimSession`` wraps one connection's session: frames with ``"event":"api"`` are
answered here, every other frame by the wrapped (market-data / private-channel) session.
``spot.login`` / ``futures.login`` is verified as Gate verifies it: a known ``api_key``, a
``timestamp`` within 60 s of the server clock and ``signature`` = hex(HMAC-SHA512(secret,
"api\\n<channel>\\n\\n<timestamp>")); a refusal is HTTP-like status 401 with Gate's label.
Orders run through the same functions as the REST handlers (``sim.place_spot_order`` ...),
so the matching engine and the fault plan see one venue whatever the transport. Replies
follow the docs' examples: ``order_place`` is answered by an ack (``"ack":true``, the
request echoed) and then the result (the order object); cancel and status by the result
alone; a refusal by a result whose ``data.errs`` holds the label and message. The
TIMEOUT_PLACED fault places the order and sends the ack only. Placement and cancels spend the
venue's rate limits as over REST (``sim.spend_rate_limit``; futures cancels count with
placement here, as Gate documents for its websocket API); their replies carry the counters in
``x_gate_ratelimit_*``, a request past the limit is refused with status 429.
"""

from __future__ import annotations

import hmac
import itertools
import os
from collections.abc import Mapping
from typing import Any

import msgspec

from ...sim.http import SimContext
from ...sim.matching import OrderRejected
from ...sim.ratelimit import VenueRateLimit
from . import constants
from .auth import GateioSigner
from .schemas import WsRequest
from .sim import (
    FUTURES_PLACE_LIMIT,
    SPOT_CANCEL_LIMIT,
    SPOT_PLACE_LIMIT,
    RateLimitHeaders,
    SessionReply,
    _GateRefusal,
    _rejection,
    _user_number,
    cancel_futures_order,
    cancel_spot_order,
    check_expiry,
    futures_order,
    place_futures_order,
    place_spot_order,
    spend_rate_limit,
    spot_order,
    spot_place_key,
)

_request = msgspec.json.Decoder(WsRequest)
_encode = msgspec.json.Encoder().encode
_NOT_LOGGED_IN = ("FORBIDDEN", 401, "Not logged in: send spot.login first")
# A reply header's counters, from the REST headers of the same budget.
_LIMIT_FIELDS = (
    ("x_gate_ratelimit_requests_remain", constants.RATE_LIMIT_REMAIN_HEADER),
    ("x_gate_ratelimit_limit", constants.RATE_LIMIT_LIMIT_HEADER),
    ("x_gate_ratelimit_reset_timestamp", constants.RATE_LIMIT_RESET_HEADER),
)


class ApiPayload(msgspec.Struct, frozen=True):
    """``payload`` of an ``api`` request: login fields, or ``req_id`` + ``req_param``."""

    req_id: str = ""
    req_param: msgspec.Raw = msgspec.Raw(b"null")
    req_header: dict[str, str] | None = None
    api_key: str = ""
    signature: str = ""
    timestamp: str = ""


_payload = msgspec.json.Decoder(ApiPayload)


class _Channels(msgspec.Struct, frozen=True):
    login: str
    place: str
    cancel: str
    status: str
    place_limit: VenueRateLimit
    cancel_limit: VenueRateLimit


_SPOT = _Channels(
    constants.SPOT_LOGIN_CHANNEL,
    constants.SPOT_ORDER_PLACE_CHANNEL,
    constants.SPOT_ORDER_CANCEL_CHANNEL,
    constants.SPOT_ORDER_STATUS_CHANNEL,
    SPOT_PLACE_LIMIT,
    SPOT_CANCEL_LIMIT,
)
_FUTURES = _Channels(
    constants.FUTURES_LOGIN_CHANNEL,
    constants.FUTURES_ORDER_PLACE_CHANNEL,
    constants.FUTURES_ORDER_CANCEL_CHANNEL,
    constants.FUTURES_ORDER_STATUS_CHANNEL,
    FUTURES_PLACE_LIMIT,
    FUTURES_PLACE_LIMIT,
)


class GateioWsApiSimSession:
    """A Gate connection's session plus its WS API login state and order requests."""

    __slots__ = ("inner", "context", "futures", "channels", "user", "conn_id", "_traces")

    def __init__(self, inner: Any, context: SimContext, *, futures: bool) -> None:
        self.inner = inner
        self.context = context
        self.futures = futures
        self.channels = _FUTURES if futures else _SPOT
        self.user: str | None = None
        self.conn_id = os.urandom(8).hex()
        self._traces = itertools.count(1)

    @property
    def subscriptions(self) -> Mapping[tuple[str, str], object]:
        """The wrapped session's market-data subscriptions (what the book fan-out serves)."""
        subscriptions: Mapping[tuple[str, str], object] = self.inner.subscriptions
        return subscriptions

    def handle(self, raw: bytes | str, now_ms: int) -> SessionReply:
        """Answer an ``api`` frame here; hand anything else to the wrapped session."""
        try:
            request = _request.decode(raw)
            if request.event != constants.EVENT_API:
                raise ValueError
            payload = _payload.decode(request.payload)
        except (msgspec.DecodeError, ValueError):
            reply: SessionReply = self.inner.handle(raw, now_ms)
            return reply
        started_ns = self.context.now_ns()
        channel = request.channel
        try:
            if channel == self.channels.login:
                return SessionReply((self._login(payload, now_ms, started_ns),))
            if channel not in (self.channels.place, self.channels.cancel, self.channels.status):
                raise _GateRefusal("INVALID_PROTOCOL", 400, f"unknown channel {channel!r}")
            if self.user is None:
                raise _GateRefusal.of(_NOT_LOGGED_IN)
            return self._order_request(channel, payload, now_ms, started_ns)
        except _GateRefusal as refusal:
            return SessionReply((self._error(channel, payload.req_id, refusal, now_ms, started_ns),))
        except OrderRejected as rejected:
            mapped = _rejection(rejected.category, str(rejected), self.futures)
            return SessionReply((self._error(channel, payload.req_id, mapped, now_ms, started_ns),))

    def _login(self, payload: ApiPayload, now_ms: int, started_ns: int) -> bytes:
        channel = self.channels.login
        credentials = self.context.credentials.get(payload.api_key)
        if credentials is None:
            raise _GateRefusal.of(constants.AUTH_INVALID_KEY)
        stamp = payload.timestamp
        if not stamp.isdigit() or abs(int(stamp) * 1000 - now_ms) > constants.REQUEST_WINDOW_S * 1000:
            raise _GateRefusal.of(constants.AUTH_REQUEST_EXPIRED, f"timestamp {stamp!r}")
        expected = GateioSigner(credentials).ws_api_signature(channel, "", stamp)
        if not hmac.compare_digest(expected, payload.signature):
            raise _GateRefusal.of(constants.AUTH_INVALID_SIGNATURE)
        self.user = payload.api_key
        result = {"api_key": payload.api_key, "uid": _user_number(payload.api_key)}
        return self._result(channel, payload.req_id, result, now_ms, started_ns)

    def _order_request(self, channel: str, payload: ApiPayload, now_ms: int, started_ns: int) -> SessionReply:
        user = self.user or ""
        try:
            param = msgspec.json.decode(payload.req_param)
        except msgspec.DecodeError as exc:
            raise _GateRefusal("INVALID_REQUEST_BODY", 400, f"req_param is not JSON: {exc}") from None
        if not isinstance(param, dict):
            raise _GateRefusal("INVALID_REQUEST_BODY", 400, "req_param must be a JSON object")
        if channel == self.channels.place:
            key = (user,) if self.futures else spot_place_key(user, param)
            limits = spend_rate_limit(self.context, self.channels.place_limit, key)
            check_expiry(self.context, (payload.req_header or {}).get(constants.EXPIRY_HEADER))
            placed = place_futures_order(self.context, user, param) if self.futures else place_spot_order(
                self.context, user, param
            )
            ack = self._ack(channel, payload, now_ms, started_ns, limits)
            if placed is None:  # TIMEOUT_PLACED: received and placed, the result never comes
                return SessionReply((ack,))
            return SessionReply((ack, self._result(channel, payload.req_id, placed, now_ms, started_ns, limits)))
        cancel = channel == self.channels.cancel
        limits = spend_rate_limit(self.context, self.channels.cancel_limit, (user,)) if cancel else ()
        ref = param.get("order_id")
        if not isinstance(ref, str) or not ref:
            raise _GateRefusal("MISSING_REQUIRED_PARAM", 400, "missing required parameter 'order_id'")
        if self.futures:
            doc = cancel_futures_order(self.context, user, ref) if cancel else futures_order(self.context, user, ref)
        else:
            pair = param.get("currency_pair")
            if not pair:
                raise _GateRefusal("MISSING_REQUIRED_PARAM", 400, "missing required parameter 'currency_pair'")
            doc = cancel_spot_order(self.context, user, pair, ref) if cancel else spot_order(self.context, user, pair, ref)
        return SessionReply((self._result(channel, payload.req_id, doc, now_ms, started_ns, limits),))

    # --- replies, keys in the order of the docs' examples ------------------------------------------

    def _header(
        self, channel: str, status: int, now_ms: int, started_ns: int, limits: RateLimitHeaders
    ) -> dict[str, object]:
        """The reply's header; ``limits`` (the spent budget's REST headers) as its ``x_gate_ratelimit_*``."""
        in_us = now_ms * 1000
        out_us = in_us + (self.context.now_ns() - started_ns) // 1000
        trace = f"{next(self._traces):032x}"
        header: dict[str, object] = {
            "response_time": str(out_us // 1000),
            "status": str(status),
            "channel": channel,
            "event": constants.EVENT_API,
            "client_id": f"127.0.0.1-0x{id(self):x}",
            "x_in_time": in_us,
            "x_out_time": out_us,
            "conn_id": self.conn_id,
            "conn_trace_id": self.conn_id * 2,
            "trace_id": trace,
        }
        named = dict(limits)
        for field, name in _LIMIT_FIELDS:
            if name in named:
                header[field] = int(named[name])
        return header

    def _ack(self, channel: str, payload: ApiPayload, now_ms: int, started_ns: int, limits: RateLimitHeaders) -> bytes:
        return _encode(
            {
                "request_id": payload.req_id,
                "ack": True,
                "header": self._header(channel, 200, now_ms, started_ns, limits),
                "data": {
                    "result": {"req_id": payload.req_id, "req_header": payload.req_header, "req_param": payload.req_param}
                },
            }
        )

    def _result(
        self, channel: str, req_id: str, result: object, now_ms: int, started_ns: int, limits: RateLimitHeaders = ()
    ) -> bytes:
        header = self._header(channel, 200, now_ms, started_ns, limits)
        return _encode({"request_id": req_id, "header": header, "data": {"result": result}})

    def _error(self, channel: str, req_id: str, refusal: _GateRefusal, now_ms: int, started_ns: int) -> bytes:
        header = self._header(channel, refusal.status, now_ms, started_ns, refusal.headers)
        errs = {"label": refusal.label, "message": str(refusal)}
        return _encode({"request_id": req_id, "header": header, "data": {"errs": errs}})
