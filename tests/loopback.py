"""Loopback servers, a Gate.io test dialect and frame builders for the exchange mechanism tests."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server

from arb.exchanges.base import BookKey, SnapshotRequest
from arb.exchanges.gateio.market_data import GateioSpotMarketData
from arb_core import router
from arb_core.wire import gateio

T = TypeVar("T")

PING = '{"time":0,"channel":"spot.ping"}'
PONG = b'{"time":0,"time_ms":0,"channel":"spot.pong","event":"","result":null}'


def run(coro: Coroutine[Any, Any, T], timeout_s: float = 20.0) -> T:
    """Run a test coroutine on a fresh event loop; a hang fails instead of blocking the suite."""
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


async def eventually(predicate: Callable[[], bool], timeout_s: float = 5.0, what: str = "condition") -> None:
    """Poll ``predicate`` until true; fails the test with ``what`` after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


class GateSpotTestDialect:
    """``MarketDataDialect`` on the real Gate.io spot wire format (compiled decoders)."""

    venue = "gateio"
    classify = staticmethod(gateio.classify)
    frame_symbol = staticmethod(gateio.frame_symbol)
    decode_update = staticmethod(gateio.decode_spot_update)
    decode_snapshot = staticmethod(gateio.decode_spot_snapshot)
    error_reason = staticmethod(GateioSpotMarketData.error_reason)
    router_dialect = router.DIALECT_GATEIO_SPOT  # BookSync's steady state runs compiled, as live

    def __init__(self, ws_url: str = "ws://127.0.0.1:1/", snapshot_in_first_push: bool = False) -> None:
        self.ws_url = ws_url
        self.snapshot_in_first_push = snapshot_in_first_push

    @staticmethod
    def _frames(event: str, venue_symbols: Sequence[str]) -> list[str]:
        return [
            json.dumps({"time": 0, "channel": "spot.order_book_update", "event": event, "payload": [s, "100ms"]})
            for s in venue_symbols
        ]

    def subscribe_frames(self, venue_symbols: Sequence[str]) -> list[str]:
        return self._frames("subscribe", venue_symbols)

    def unsubscribe_frames(self, venue_symbols: Sequence[str]) -> list[str]:
        return self._frames("unsubscribe", venue_symbols)

    def ping_frame(self) -> str:
        return PING

    def is_pong(self, frame: Any) -> bool:
        return b'"spot.pong"' in bytes(frame)

    def snapshot_request(self, venue_symbol: str) -> SnapshotRequest:
        return SnapshotRequest(
            path="/spot/order_book",
            params=(("currency_pair", venue_symbol), ("limit", "100"), ("with_id", "true")),
            limits=(("public", 1),),
        )


def gate_update(
    symbol: str,
    first: int,
    last: int,
    bids: Sequence[tuple[str, str]] = (),
    asks: Sequence[tuple[str, str]] = (),
    *,
    full: bool = False,
) -> bytes:
    """A ``spot.order_book_update`` frame as Gate sends it."""
    result: dict[str, Any] = {"t": 1619093532978, "e": "depthUpdate", "E": 1619093532, "s": symbol}
    if full:
        result["full"] = True
    result.update({"U": first, "u": last, "b": [list(b) for b in bids], "a": [list(a) for a in asks]})
    doc = {"time": 1619093532, "channel": "spot.order_book_update", "event": "update", "result": result}
    return json.dumps(doc, separators=(",", ":")).encode()


def gate_snapshot(update_id: int, bids: Sequence[tuple[str, str]], asks: Sequence[tuple[str, str]]) -> bytes:
    """A ``GET /spot/order_book?with_id=true`` body."""
    return json.dumps({"id": update_id, "asks": [list(a) for a in asks], "bids": [list(b) for b in bids]}).encode()


class RecordingSink:
    """A ``BookSink`` that records what it is told."""

    def __init__(self) -> None:
        self.updates: Counter[str] = Counter()
        self.batch_ends = 0
        self.states: list[tuple[str, bool, str]] = []

    def on_book_update(self, key: BookKey) -> None:
        self.updates[key.symbol] += 1

    def on_batch_end(self) -> None:
        self.batch_ends += 1

    def on_book_state(self, key: BookKey, in_sync: bool, reason: str) -> None:
        self.states.append((key.symbol, in_sync, reason))


def text_frame(payload: bytes) -> bytes:
    """A server's (unmasked) TEXT frame of a payload under 64 KiB, as written on the wire."""
    if len(payload) < 126:
        return bytes([0x81, len(payload)]) + payload
    assert len(payload) < 1 << 16
    return bytes([0x81, 126]) + len(payload).to_bytes(2, "big") + payload


class ServerConnection(WSListener):
    """Server side of one test connection: records client messages, answers app pings."""

    def __init__(self, server: WsTestServer) -> None:
        super().__init__()
        self.server = server
        self.transport: WSTransport | None = None
        self.received: list[bytes] = []
        self.close_codes: list[int] = []
        self.pings = 0
        self.pongs: list[bytes] = []  # the payloads of protocol PONGs received

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.server.connections.append(self)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            self.close_codes.append(frame.get_close_code().value)
            transport.send_close(frame.get_close_code())
            transport.disconnect()
            return
        if frame.msg_type == WSMsgType.PONG:
            self.pongs.append(frame.get_payload_as_bytes())
            return
        if frame.msg_type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            return
        payload = frame.get_payload_as_bytes()
        if b'"spot.ping"' in payload:
            self.pings += 1
            if self.server.reply_pings:
                ahead = self.server.ahead_of_pong
                if ahead:  # one write: the client reads the message and the pong together
                    transport.underlying_transport.write(b"".join(text_frame(p) for p in (ahead, PONG)))
                else:
                    transport.send(WSMsgType.TEXT, PONG)
            return
        self.received.append(payload)
        if self.server.on_message is not None:
            self.server.on_message(self, payload)

    def send(self, payload: bytes) -> None:
        assert self.transport is not None
        self.transport.send(WSMsgType.TEXT, payload)


class WsTestServer:
    """A picows server on 127.0.0.1 recording every connection."""

    def __init__(
        self, *, reply_pings: bool = True, on_message: Callable[[ServerConnection, bytes], None] | None = None,
        ahead_of_pong: bytes = b"",
    ) -> None:
        """``ahead_of_pong``: a message written with each pong, ahead of it."""
        self.reply_pings = reply_pings
        self.ahead_of_pong = ahead_of_pong
        self.on_message = on_message
        self.connections: list[ServerConnection] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self, port: int = 0) -> WsTestServer:
        self._server = await ws_create_server(lambda request: ServerConnection(self), "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    async def close(self) -> None:
        for conn in self.connections:
            if conn.transport is not None and not conn.transport.is_disconnected:
                conn.transport.disconnect(graceful=False)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

