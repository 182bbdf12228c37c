"""One websocket session per stream on picows: reconnect, resubscribe, heartbeat, health.

The listener hands each complete message's payload, as the memoryview picows lends for
the duration of the callback, straight to ``on_message`` (no copy, no dict). Everything a
venue differs in comes in as data or small callables (URL, frames sent on connect, ping
frame, pong check), so the loop below is written once for every venue and stream.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from ssl import SSLContext

import msgspec
from picows import (
    WSAutoPingStrategy,
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    ws_connect,
)

from ..errors import ExchangeConnectionError
from ..throttled_log import ThrottledWarnings
from ..types import ExchangeConfig
from .base import Frame, WsPayload
from .errors import ErrorCategory
from .models import ConnectionHealth

log = logging.getLogger(__name__)

MessageHandler = Callable[[memoryview, bool, bool, int], None]
"""``(payload, is_binary, last_in_buffer, recv_ns)``; ``payload`` is valid only during the call."""

_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY
_CONTINUATION = WSMsgType.CONTINUATION
_CLOSE = WSMsgType.CLOSE


class WsSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Timing and size limits of a websocket session."""

    heartbeat_interval_s: float = 10.0  # application ping period
    heartbeat_timeout_s: float = 10.0  # no pong within this -> reconnect; <= heartbeat_interval_s
    handshake_timeout_s: float = 5.0
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 30.0
    backoff_multiplier: float = 2.0
    stable_after_s: float = 30.0  # a connection that lived this long resets the backoff
    max_message_bytes: int = 8 * 1024 * 1024  # reassembled messages above this are dropped

    def __post_init__(self) -> None:
        for name in ("heartbeat_interval_s", "heartbeat_timeout_s", "handshake_timeout_s", "backoff_initial_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"WsSettings.{name} must be > 0, got {getattr(self, name)}")
        if self.heartbeat_timeout_s > self.heartbeat_interval_s:
            # picows pings every interval and requires the pong before the next ping is due.
            raise ValueError(
                f"WsSettings: heartbeat_timeout_s={self.heartbeat_timeout_s} must be <= "
                f"heartbeat_interval_s={self.heartbeat_interval_s}"
            )
        if self.backoff_max_s < self.backoff_initial_s or self.backoff_multiplier < 1:
            raise ValueError(
                f"WsSettings: backoff_max_s={self.backoff_max_s} must be >= backoff_initial_s="
                f"{self.backoff_initial_s} and backoff_multiplier={self.backoff_multiplier} >= 1"
            )

    @classmethod
    def from_exchange_config(cls, config: ExchangeConfig) -> WsSettings:
        """Settings with the venue's configured heartbeat (the timeout equals the interval)."""
        interval = config.ws_heartbeat_interval_ms / 1000
        return cls(heartbeat_interval_s=interval, heartbeat_timeout_s=interval)


def backoff_delay(attempt: int, settings: WsSettings, rng: random.Random | None = None) -> float:
    """Delay before reconnect ``attempt`` (0-based): exponential, capped, half of it jittered."""
    base = min(settings.backoff_max_s, settings.backoff_initial_s * settings.backoff_multiplier ** min(attempt, 64))
    return base / 2 + (rng or random).uniform(0, base / 2)


class _Listener(WSListener):
    """picows listener of one connection; delivers complete messages to the session's handler."""

    def __init__(self, session: WsSession, attempt: int) -> None:
        super().__init__()
        self._session = session
        self._attempt = attempt  # the connect attempt this connection is of
        self._accepted = False
        self._on_message = session._on_message
        self._fragments: bytearray | None = None
        self._fragments_binary = False
        self._oversize = False

    def on_ws_connected(self, transport: WSTransport) -> None:
        self._accepted = self._session._connected(transport, self._attempt)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self._accepted:
            self._session._disconnected(transport)

    def send_user_specific_ping(self, transport: WSTransport) -> None:
        self._session._send_ping(transport)

    def is_user_specific_pong(self, frame: WSFrame) -> bool:
        session = self._session
        if session._has_app_ping:
            msg_type = frame.msg_type
            pong = (msg_type is _TEXT or msg_type is _BINARY) and frame.fin and session._is_pong(
                frame.get_payload_as_memoryview()
            )
        else:
            pong = frame.msg_type is WSMsgType.PONG
        if pong:
            session.last_frame_ns = time.monotonic_ns()
        if pong and frame.last_in_buffer:
            session._read_ended()  # consumed here: no message of it reaches the handler
        return pong

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        session = self._session
        session.last_frame_ns = recv_ns = time.monotonic_ns()
        msg_type = frame.msg_type
        if frame.fin and self._fragments is None and (msg_type is _TEXT or msg_type is _BINARY):
            session.messages += 1
            session.last_message_ns = recv_ns
            try:
                self._on_message(frame.get_payload_as_memoryview(), msg_type is _BINARY, frame.last_in_buffer, recv_ns)
            except Exception:
                # The consumer handles its own errors; anything reaching here is a bug, but one
                # message must not take the stream down.
                session._count_error("callback", "message handler raised", exc_info=True)
            return
        self._other_frame(transport, frame, msg_type)
        if frame.last_in_buffer:
            self._session._read_ended()  # a no-op for the handler when the frame ended a message

    def _other_frame(self, transport: WSTransport, frame: WSFrame, msg_type: WSMsgType) -> None:
        session = self._session
        if msg_type is _CLOSE:
            code, reason = frame.get_close_code(), frame.get_close_message()
            transport.send_close(code, reason)
            transport.disconnect()
            if not session._closing:
                said = f": {reason.decode(errors='replace')!r}" if reason else ""
                message = f"the server closed the connection, code {code.value}{said}"
                session._count_error("close", message, cause=str(code.value))
            return
        fragments = self._fragments
        if msg_type is _TEXT or msg_type is _BINARY:
            if fragments is not None:
                # A new data frame while a fragmented message is open violates RFC 6455 5.4.
                self._fragments = None
                session._message_lost("protocol", "data frame inside a fragmented message; the open message dropped")
            if frame.fin:
                self.on_ws_frame(transport, frame)
                return
            self._fragments = fragments = bytearray()
            self._fragments_binary = msg_type is _BINARY
            self._oversize = False
        elif msg_type is _CONTINUATION:
            if fragments is None:
                session._message_lost("protocol", "CONTINUATION frame without a message start; dropped")
                return
        else:
            if msg_type is WSMsgType.PING:
                transport.send_pong(frame.get_payload_as_bytes())
            return
        if not self._oversize:
            if len(fragments) + frame.payload_size > session.settings.max_message_bytes:
                self._oversize = True
                fragments.clear()
            else:
                fragments += frame.get_payload_as_memoryview()
        if not frame.fin:
            return
        self._fragments = None
        if self._oversize:
            session._message_lost("oversize", f"message above {session.settings.max_message_bytes} bytes dropped")
            return
        session.messages += 1
        session.fragmented_messages += 1
        session.last_message_ns = recv_ns = time.monotonic_ns()
        try:
            self._on_message(memoryview(fragments), self._fragments_binary, frame.last_in_buffer, recv_ns)
        except Exception:
            session._count_error("callback", "message handler raised", exc_info=True)


def _send(transport: WSTransport, payload: WsPayload) -> None:
    if isinstance(payload, str):
        transport.send(_TEXT, payload.encode())
    else:
        transport.send(_BINARY, payload)


class WsSession:
    """A self-healing websocket connection: connect, send ``connect_frames``, deliver messages,
    heartbeat, and on any failure reconnect with jittered exponential backoff.

    ``connect_frames`` is called on every (re)connect, so subscriptions (and logins with a
    fresh signature) are re-sent each time. ``on_connected``/``on_disconnected`` run inside
    picows callbacks; ``on_disconnected`` is where consumers mark their books stale.
    """

    def __init__(
        self,
        venue: str,
        url: str,
        on_message: MessageHandler,
        *,
        connect_frames: Callable[[], Iterable[WsPayload]] = tuple,
        ping_frame: Callable[[], WsPayload | None] | None = None,
        is_pong: Callable[[Frame], bool] | None = None,
        on_connected: Callable[[], None] | None = None,
        on_disconnected: Callable[[], None] | None = None,
        settings: WsSettings | None = None,
        ssl_context: SSLContext | None = None,
        rng: random.Random | None = None,
        refresh_url: Callable[[], Awaitable[str]] | None = None,
        on_read_end: Callable[[], None] | None = None,
        on_message_lost: Callable[[], None] | None = None,
    ) -> None:
        """``on_read_end`` is called when a socket read ends with a frame that brought no message
        (a ping, a pong, a control frame, part of a message): a handler that batches the messages
        of a read by ``last_in_buffer`` ends its batch there, as no message says so.
        ``on_message_lost`` is called when a data message is dropped undelivered (too large, or its
        fragments interrupted): a consumer keeping state from every message knows it missed one."""
        if (ping_frame is None) != (is_pong is None):
            raise ValueError(f"{venue} ws {url}: ping_frame and is_pong must be given together")
        self.venue = venue
        self.url = url
        self.settings = settings or WsSettings()
        self._on_message = on_message
        self._connect_frames = connect_frames
        self._ping_frame: Callable[[], WsPayload | None] = ping_frame or _no_ping
        self._is_pong: Callable[[Frame], bool] = is_pong or _never
        self._has_app_ping = ping_frame is not None
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self._ssl_context = ssl_context
        self._rng = rng
        self._refresh_url = refresh_url  # asked before every connect (a fresh stream token in the URL)
        self._on_read_end = on_read_end
        self._on_message_lost = on_message_lost
        self._transport: WSTransport | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._attempt = 0  # the connect under way, counted; a handshake completing for an earlier one is refused
        self._transport_attempt = -1  # the connect attempt ``_transport`` came from
        self._wakeup = asyncio.Event()
        self._connected_event = asyncio.Event()
        self.connects = 0
        self.reconnects = 0
        self.messages = 0
        self.fragmented_messages = 0
        self.last_message_ns = 0
        # Any frame, a pong or a part of a message too: the connection is alive then, even with no
        # message to deliver (``ping``).
        self.last_frame_ns = 0
        self.errors: Counter[str] = Counter()
        self.last_errors: dict[str, str] = {}  # each kind's last error, as logged (the URL's query left out)
        self._warnings = ThrottledWarnings(log, "errors")

    @property
    def connected(self) -> bool:
        """Whether a handshake completed and the connection is still open."""
        return self._transport is not None

    def health(self) -> ConnectionHealth:
        """A snapshot of the session's counters."""
        last = self.last_message_ns
        return ConnectionHealth(
            venue=self.venue,
            url=self.url,
            connected=self.connected,
            connects=self.connects,
            reconnects=self.reconnects,
            messages=self.messages,
            last_message_age_ns=time.monotonic_ns() - last if last else None,
            errors=dict(self.errors),
            fragmented_messages=self.fragmented_messages,
        )

    def start(self) -> None:
        """Start the connect/reconnect loop in a task (idempotent)."""
        if self._task is None or self._task.done():
            self._closing = False
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"ws {self.venue} {self._shown(self.url)}")

    async def wait_connected(self, timeout_s: float | None = None) -> None:
        """Wait until a connection is up; raises asyncio.TimeoutError after ``timeout_s``."""
        await asyncio.wait_for(self._connected_event.wait(), timeout_s)

    def send(self, payload: WsPayload) -> None:
        """Send one message (``str`` as TEXT, ``bytes`` as BINARY) on the current connection."""
        _send(self._open_transport(), payload)

    def send_text(self, payload: bytes) -> None:
        """Send UTF-8 ``payload`` as one TEXT message, without a ``str`` round trip (order requests)."""
        self._open_transport().send(_TEXT, payload)

    def ping(self) -> None:
        """Send a heartbeat ping now (nothing while not connected): its pong, as any frame received,
        moves ``last_frame_ns``, which tells a connection that died silently from a quiet one."""
        transport = self._transport
        if transport is not None:
            self._send_ping(transport)

    def _send_ping(self, transport: WSTransport) -> None:
        frame = self._ping_frame()
        if frame is None:
            transport.send_ping()
        else:
            _send(transport, frame)

    def _open_transport(self) -> WSTransport:
        """The connection a message can still go out on; raises the not-connected error (nothing sent).

        A connection being closed is refused too: once its CLOSE went out (a server's CLOSE answered,
        a heartbeat timed out) or its socket is closing, picows and asyncio drop a write silently
        until the disconnect arrives, a loop turn or more later.
        """
        transport = self._transport
        if transport is None or transport.is_close_frame_sent or transport.underlying_transport.is_closing():
            raise ExchangeConnectionError(
                self.venue, f"websocket {self._shown(self.url)} is not connected", category=ErrorCategory.NOT_SENT
            )
        return transport

    def drop(self) -> None:
        """Close the current connection without stopping the session (it reconnects)."""
        transport = self._transport
        if transport is not None:
            transport.send_close(WSCloseCode.GOING_AWAY)
            transport.disconnect()

    async def close(self) -> None:
        """Stop reconnecting, close the connection gracefully and wait for the loop to end."""
        current = asyncio.current_task()
        # Cancellations of the caller already under way (a cleanup after one): not raised again here.
        cancelling = current.cancelling() if current is not None else 0
        self._closing = True
        self._wakeup.set()
        transport = self._transport
        if transport is not None:
            # CLOSE first, then disconnect: picows flushes the CLOSE before shutting the socket.
            transport.send_close(WSCloseCode.OK)
            transport.disconnect()
        task = self._task
        if task is not None:
            if transport is None and not task.done():
                # Connecting (a stream token being fetched, a handshake): stop that rather than wait
                # for a connection only to close it.
                task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                if not task.cancelled() or (current is not None and current.cancelling() > cancelling):
                    raise  # the caller cancelled while closing, not (only) the loop's own cancellation

    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            started = time.monotonic()
            step = "getting the stream's URL"  # a private stream's comes from a signed call (MEXC's listenKey)
            try:
                if self._refresh_url is not None:
                    self.url = await self._refresh_url()
                    if self._closing:
                        break
                step = f"connection to {self.url}"
                transport, listener = await self._connect()
                if listener is None:  # the peer hung up during the upgrade: picows raises nothing
                    cause = "closed during the handshake"
                    self._count_error("connect", f"{step} {cause}", cause=cause)
                await transport.wait_disconnected()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Whatever a connect fails with (a URL picows cannot read, a name the IDNA codec
                # refuses, a listener's error picows raises again) is retried: ending the loop
                # would leave the stream down with nothing counted or logged.
                status = getattr(getattr(exc, "response", None), "status", None)
                redirected = isinstance(status, int) and 300 <= status < 400
                why = (" (a redirect, which is not followed: set the venue's ws_url to where it leads)"
                       if redirected else "")
                cause = f"{type(exc).__name__} {status}" if isinstance(status, int) else type(exc).__name__
                what = f"no handshake within {self.settings.handshake_timeout_s} s" if _bare_timeout(exc) else repr(exc)
                self._count_error("connect", f"{step} failed: {what}{why}", cause=cause)
            if self._closing:
                break
            if time.monotonic() - started >= self.settings.stable_after_s:
                attempt = 0
            delay = backoff_delay(attempt, self.settings, self._rng)
            attempt += 1
            self.reconnects += 1
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), delay)
            except asyncio.TimeoutError:
                pass

    async def _connect(self) -> tuple[WSTransport, WSListener | None]:
        """Connect to ``url`` (DNS, TCP, TLS and the upgrade) within ``handshake_timeout_s``.

        picows times the upgrade only, from the TCP connection on: a host that stops answering
        held each reconnect for the system's TCP and asyncio's TLS timeouts (minutes). A
        connection whose upgrade completes after the time is up is closed on arrival, and so is
        one taken in the very turn the time ran out (the caller counts the attempt as failed).
        """
        attempt = self._attempt
        try:
            async with asyncio.timeout(self.settings.handshake_timeout_s):
                return await ws_connect(
                    partial(_Listener, self, self._attempt),
                    self.url,
                    ssl_context=self._ssl_context,
                    websocket_handshake_timeout=self.settings.handshake_timeout_s,
                    enable_auto_ping=True,
                    auto_ping_idle_timeout=self.settings.heartbeat_interval_s,
                    auto_ping_reply_timeout=self.settings.heartbeat_timeout_s,
                    auto_ping_strategy=WSAutoPingStrategy.PING_PERIODICALLY,
                    enable_auto_pong=False,  # answered by the listener, which sees where its read ends
                    # A redirect is not followed: the session's logins, signed subscriptions and orders
                    # would go to whatever host it names, past the loopback and TLS checks of the URL.
                    max_redirects=0,
                    max_frame_size=self.settings.max_message_bytes,
                    logger_name=f"{self.venue}.ws",
                )
        except BaseException:
            transport = self._transport
            if transport is not None and self._transport_attempt == attempt:
                # Its handshake completed, and then the time ran out (or we were cancelled) before
                # ws_connect returned: picows leaves it open, and the next attempt would stand beside it.
                self._transport = None
                self._connected_event.clear()
                transport.disconnect()
            raise
        finally:
            self._attempt += 1  # done with, connected or not: a later handshake of it is not taken

    def _connected(self, transport: WSTransport, attempt: int) -> bool:
        """Take the connection of connect ``attempt``: whether it was taken (else it is closed)."""
        if self._closing or attempt != self._attempt:
            # Closed while connecting, or the attempt gave up waiting: nothing is sent on it.
            transport.disconnect()
            return False
        self._transport, self._transport_attempt = transport, attempt
        self.connects += 1
        self._connected_event.set()
        try:
            for frame in self._connect_frames():
                _send(transport, frame)
            if self._on_connected is not None:
                self._on_connected()
        except Exception:
            # Without its subscriptions the connection is useless: drop it and let the loop retry.
            self._count_error("subscribe", "sending the connect frames failed", exc_info=True)
            transport.disconnect()
        return True

    def _disconnected(self, transport: WSTransport) -> None:
        if self._transport is transport:
            self._transport = None
            self._connected_event.clear()
        if self._on_disconnected is not None:
            self._on_disconnected()

    def _read_ended(self) -> None:
        on_read_end = self._on_read_end
        if on_read_end is not None:
            try:
                on_read_end()
            except Exception:
                self._count_error("callback", "read-end handler raised", exc_info=True)

    def _message_lost(self, kind: str, message: str) -> None:
        """Count a data message dropped undelivered, and tell the consumer."""
        self._count_error(kind, message)
        on_message_lost = self._on_message_lost
        if on_message_lost is not None:
            try:
                on_message_lost()
            except Exception:
                self._count_error("callback", "message-lost handler raised", exc_info=True)

    def _count_error(self, kind: str, message: str, *, exc_info: bool = False, cause: str | None = None) -> None:
        """Count an error; warn about each kind and cause (``cause``, else the exception being
        handled) about once a minute, at debug level between: a connection failing for a new
        reason, or a handler raising a new error, is warned about when it starts."""
        self.errors[kind] += 1
        self.last_errors[kind] = shown = self._shown(message)
        if cause is None and exc_info:
            cause = type(sys.exc_info()[1]).__name__
        self._warnings.warn(
            (kind, cause), time.monotonic_ns(), "%s ws %s: %s (%s #%d)", self.venue, self._shown(self.url),
            shown, kind, self.errors[kind], exc_info=exc_info,
        )

    def _shown(self, text: str) -> str:
        """``text`` with the URL's query left out: a private stream's carries an account token."""
        query = self.url.partition("?")[2]
        return text.replace(query, "…") if query else text


def _bare_timeout(exc: BaseException) -> bool:
    """Whether ``exc`` is a timeout that says nothing (``asyncio.timeout``'s)."""
    return isinstance(exc, asyncio.TimeoutError) and not exc.args


def _no_ping() -> WsPayload | None:
    return None


def _never(frame: Frame) -> bool:
    return False
