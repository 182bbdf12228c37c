"""A lean HTTP/1.1 keep-alive client for the order path: one request per connection at a time.

``Http1Pool`` keeps open connections to one venue host (``http://`` or ``https://`` with
an ``ssl`` context) and sends a request as one ``transport.write`` of bytes built from a
per-pool header prefix, the signed query and body: no per-request URL, header or cookie
objects. The response is parsed in ``data_received`` only as far as needed: status line,
headers, then a ``Content-Length`` body, a chunked body, or a body ended by the close.

Failures are plain exceptions for ``arb.exchanges.rest.RestClient`` to map:
``HttpConnectError`` when no connection could take the request (nothing was sent),
``asyncio.TimeoutError`` when no complete response arrived in time, ``ConnectionError``
when the connection ended before it, ``HttpProtocolError`` for bytes that are not an
HTTP/1.1 response. A connection that failed or timed out is closed, never reused (a late
answer must not be read as the next request's); one the peer closed while idle is dropped
from the pool when its close arrives.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Awaitable, Mapping
from typing import NamedTuple, cast
from urllib.parse import urlsplit

from .. import __version__

# Sent with every request, reads and orders alike: an HTTP front may refuse a request without one.
USER_AGENT = f"arb/{__version__}"

_HEAD_END = b"\r\n\r\n"
_MAX_HEAD = 64 * 1024
# Far above any answer the engine asks this client for (orders and their cancels): a peer sending
# more is not a venue answering, and its bytes would otherwise be buffered until the timeout.
_MAX_BODY = 16 * 1024 * 1024
_NO_BODY_STATUSES = frozenset({204, 304})


class HttpConnectError(OSError):
    """No connection could be made (refused, unreachable, TLS handshake failed, timed out), or the one
    taken could not take the request: nothing was sent."""


class HttpProtocolError(ConnectionError):
    """The peer sent something that is not a valid HTTP/1.1 response."""


class HttpResponse(NamedTuple):
    """A complete response: status, reason, headers (names lower-cased, last value wins), body."""

    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes


class HttpStatusError(Exception):
    """A non-2xx response, chained as the cause of the venue error it maps to."""

    def __init__(self, method: str, url: str, response: HttpResponse) -> None:
        super().__init__(f"{method} {url}: HTTP {response.status} {response.reason}")
        self.status = response.status
        self.reason = response.reason
        self.headers = response.headers


class _Connection(asyncio.Protocol):
    """One kept-alive connection; ``send`` writes a request and returns the future of its response."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = True
        self._buffer = bytearray()
        self._waiter: asyncio.Future[HttpResponse] | None = None
        self._head_only = False
        self._head: tuple[int, str, dict[str, str], int] | None = None  # status, reason, headers, body start
        # A chunked body read so far: where its next chunk's size line starts (0: none read) and the
        # chunks before it, so each read parses only what it brought.
        self._chunk_pos = 0
        self._chunks: list[bytes] = []

    # --- protocol ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            self._abort(HttpProtocolError("bytes received with no request outstanding"))
            return
        self._buffer += data
        try:
            response = self._parse(eof=False)
        except HttpProtocolError as exc:
            self._abort(exc)
            return
        if response is not None:
            self._finish(response)

    def eof_received(self) -> bool:
        self.reusable = False
        return False  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        try:
            response = self._parse(eof=True)
        except HttpProtocolError as error:
            waiter.set_exception(error)
            return
        if response is not None:
            self._finish(response)
        else:
            waiter.set_exception(ConnectionResetError(f"connection closed before a complete response ({exc!r})"))

    # --- requests ---------------------------------------------------------------------------

    @property
    def open(self) -> bool:
        """Whether a request written now goes out: asyncio drops a write silently from the moment the
        transport starts closing (a reset read, a close) until ``connection_lost``, a turn or more later."""
        transport = self.transport
        return transport is not None and not self.closed and not transport.is_closing()

    def send(self, data: bytes, head_only: bool) -> asyncio.Future[HttpResponse]:
        """Write one request; the future resolves to its response (or a failure). Raises
        ``HttpConnectError`` (nothing written) when the connection cannot take it."""
        transport = self.transport
        if transport is None or not self.open or self._waiter is not None:
            raise HttpConnectError("connection not usable: nothing was sent")
        self._waiter = waiter = asyncio.get_running_loop().create_future()
        self._head_only = head_only
        transport.write(data)
        return waiter

    def close(self) -> None:
        """Close now (a request still outstanding fails with ConnectionResetError)."""
        self.reusable = False
        if self.transport is not None and not self.closed:
            self.transport.abort()

    def _finish(self, response: HttpResponse) -> None:
        waiter = self._waiter
        self._waiter = None
        self._head = None
        self._chunk_pos = 0
        self._chunks = []
        if self._buffer:  # more than one response's bytes: the stream is out of step
            self._buffer.clear()
            self.reusable = False
        if response.headers.get("connection", "").lower() == "close":
            self.reusable = False
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    def _abort(self, exc: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.close()

    def _parse(self, eof: bool) -> HttpResponse | None:
        """The complete response in the buffer (consumed), or None when more bytes are needed."""
        buffer = self._buffer
        while True:
            head = self._head
            if head is None:
                end = buffer.find(_HEAD_END)
                if end < 0:
                    if len(buffer) > _MAX_HEAD:
                        raise HttpProtocolError(f"response head longer than {_MAX_HEAD} bytes")
                    return None
                head = self._head = _parse_head(bytes(buffer[:end]), end + 4)
            status, reason, headers, start = head
            if not 100 <= status < 200:
                break
            if status == 101:
                raise HttpProtocolError("101 Switching Protocols answering a request that asked for no upgrade")
            # An interim response (100 Continue, 103 Early Hints from a proxy): the final one follows.
            del buffer[:start]
            self._head = None
        if self._head_only or status in _NO_BODY_STATUSES:
            return self._take(status, reason, headers, start, start)
        if len(buffer) - start > _MAX_BODY:
            raise HttpProtocolError(f"response body longer than {_MAX_BODY} bytes")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return self._chunked(status, reason, headers, start)
        length = headers.get("content-length")
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                raise HttpProtocolError(f"bad Content-Length {length!r}") from None
            if size < 0 or size > _MAX_BODY:
                raise HttpProtocolError(f"bad Content-Length {length!r} (0 to {_MAX_BODY} bytes taken)")
            if len(buffer) - start < size:
                return None
            return self._take(status, reason, headers, start, start + size)
        # Neither length nor chunks: the body runs to the close, and the connection ends with it.
        self.reusable = False
        if not eof:
            return None
        return self._take(status, reason, headers, start, len(buffer))

    def _take(self, status: int, reason: str, headers: dict[str, str], start: int, end: int) -> HttpResponse:
        body = bytes(self._buffer[start:end])
        del self._buffer[:end]
        return HttpResponse(status, reason, headers, body)

    def _chunked(self, status: int, reason: str, headers: dict[str, str], start: int) -> HttpResponse | None:
        buffer = self._buffer
        pos = self._chunk_pos or start
        parts = self._chunks
        while True:
            self._chunk_pos = pos
            line_end = buffer.find(b"\r\n", pos)
            if line_end < 0:
                return None
            size_text = bytes(buffer[pos:line_end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise HttpProtocolError(f"bad chunk size {size_text!r}") from None
            if size < 0:
                raise HttpProtocolError(f"bad chunk size {size_text!r}")
            pos = line_end + 2
            if size == 0:
                # Trailers (ignored) end with an empty line.
                while True:
                    line_end = buffer.find(b"\r\n", pos)
                    if line_end < 0:
                        return None
                    empty = line_end == pos
                    pos = line_end + 2
                    if empty:
                        del buffer[:pos]
                        return HttpResponse(status, reason, headers, b"".join(parts))
            if len(buffer) < pos + size + 2:
                return None
            if buffer[pos + size:pos + size + 2] != b"\r\n":
                raise HttpProtocolError("chunk not followed by CRLF")
            parts.append(bytes(buffer[pos:pos + size]))
            pos += size + 2


def _parse_head(head: bytes, body_start: int) -> tuple[int, str, dict[str, str], int]:
    lines = head.split(b"\r\n")
    status_line = lines[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    code = parts[1] if len(parts) > 1 else ""
    # ``isdigit`` alone takes digits ``int`` refuses (superscripts): a bare ValueError out of a callback.
    valid = len(code) == 3 and code.isascii() and code.isdigit() and "100" <= code <= "599"
    if not parts[0].startswith("HTTP/1.") or not valid:
        raise HttpProtocolError(f"bad status line {status_line[:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise HttpProtocolError(f"bad header line {line[:80]!r}")
        headers[name.strip().decode("latin-1").lower()] = value.strip().decode("latin-1")
    return int(parts[1]), parts[2] if len(parts) > 2 else "", headers, body_start


class Http1Pool:
    """Kept-alive HTTP/1.1 connections to the host of ``base_url``; ``request`` sends one request.

    ``ssl_context`` is used for ``https`` URLs (the default context when None); ``max_idle``
    bounds the connections kept between requests.
    """

    def __init__(self, base_url: str, *, ssl_context: ssl.SSLContext | None = None, max_idle: int = 8) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"http1 pool: base_url={base_url!r} must be an http:// or https:// URL")
        self.host = url.hostname
        self.secure = url.scheme == "https"
        self.port = url.port or (443 if self.secure else 80)
        self.prefix = url.path.rstrip("/")
        self.ssl = (ssl_context or ssl.create_default_context()) if self.secure else None
        self.max_idle = max_idle
        default_port = self.port == (443 if self.secure else 80)
        authority = self.host if default_port else f"{self.host}:{self.port}"
        self._host_header = f"Host: {authority}\r\nUser-Agent: {USER_AGENT}\r\n".encode("latin-1")
        self._idle: deque[_Connection] = deque()
        self.opened = 0  # connections made, over the pool's life
        self._closed = False

    async def prewarm(self, count: int, timeout_s: float) -> None:
        """Open connections until ``count`` are idle (a first order pays no connect); raises ``HttpConnectError``."""
        if self._closed:
            raise HttpConnectError("http1 pool closed")
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(self._idle) < min(count, self.max_idle):
            self._idle.append(await self._connect(deadline))

    def encode(self, method: str, path: str, query: str, body: bytes, headers: Mapping[str, str]) -> bytes:
        """The request bytes: request line, Host, User-Agent, the given headers, Content-Length, body."""
        target = self.prefix + path + ("?" + query if query else "")
        lines = [f"{method} {target} HTTP/1.1\r\n".encode("latin-1"), self._host_header]
        lines.extend(f"{name}: {value}\r\n".encode("latin-1") for name, value in headers.items())
        if body or method not in ("GET", "HEAD", "DELETE"):
            lines.append(b"Content-Length: %d\r\n" % len(body))
        lines.append(b"\r\n")
        lines.append(body)
        return b"".join(lines)

    async def request(self, data: bytes, *, timeout_s: float, head_only: bool = False) -> HttpResponse:
        """Send the encoded request ``data`` and return the complete response.

        Raises ``HttpConnectError`` when no connection can be made (nothing sent); after
        sending, ``asyncio.TimeoutError`` or ``ConnectionError`` leave the outcome
        unknown. The connection is reused only after a complete, well-delimited response.
        """
        self._check_open()
        deadline = asyncio.get_running_loop().time() + timeout_s
        conn = self._take_idle()
        if conn is None:
            conn = await self._connect(deadline)
        return await self._response(conn, conn.send(data, head_only), deadline)

    def write(self, data: bytes, *, timeout_s: float, head_only: bool = False) -> Awaitable[HttpResponse] | None:
        """Write ``data`` now on an idle connection; None (nothing written) when none is idle.

        The returned awaitable gives what ``request`` would and must be awaited: it also puts
        the connection back in the pool.
        """
        self._check_open()
        conn = self._take_idle()
        if conn is None:
            return None
        deadline = asyncio.get_running_loop().time() + timeout_s
        return self._response(conn, conn.send(data, head_only), deadline)

    async def _response(self, conn: _Connection, waiter: asyncio.Future[HttpResponse], deadline: float) -> HttpResponse:
        try:
            async with asyncio.timeout_at(deadline):
                response = await waiter
        except BaseException:
            conn.close()
            raise
        if conn.reusable and not self._closed and len(self._idle) < self.max_idle:
            self._idle.append(conn)
        else:
            conn.close()
        return response

    def _check_open(self) -> None:
        if self._closed:
            raise HttpConnectError("http1 pool closed")  # nothing was sent: not an unknown outcome

    async def close(self) -> None:
        """Close every idle connection; later requests fail."""
        self._closed = True
        while self._idle:
            self._idle.pop().close()

    def _take_idle(self) -> _Connection | None:
        idle = self._idle
        while idle:
            conn = idle.pop()  # most recently used first: the least likely to be closed by the peer
            if conn.reusable and conn.open:
                return conn
            conn.close()
        return None

    async def _connect(self, deadline: float) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(deadline):
                _, conn = await loop.create_connection(
                    _Connection, self.host, self.port, ssl=self.ssl, server_hostname=self.host if self.ssl else None
                )
        except (OSError, asyncio.TimeoutError, ssl.SSLError) as exc:
            raise HttpConnectError(f"cannot connect to {self.host}:{self.port}: {exc!r}") from exc
        self.opened += 1
        return conn
