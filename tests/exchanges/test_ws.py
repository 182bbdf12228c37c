"""arb.exchanges.ws against a picows server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import ssl
import time
from typing import Any

import pytest
from loopback import PING, WsTestServer, eventually, run, text_frame
from picows import WSCloseCode, WSMsgType

from arb.errors import ExchangeConnectionError
from arb.exchanges.errors import ErrorCategory
from arb.exchanges.ws import WsSession, WsSettings, _Listener, backoff_delay
from arb.types import ExchangeConfig

FAST = WsSettings(backoff_initial_s=0.01, backoff_max_s=0.05, heartbeat_interval_s=5, heartbeat_timeout_s=5)


class Inbox:
    """A message handler that copies what it receives (the payload is borrowed)."""

    def __init__(self, fail_first: int = 0) -> None:
        self.messages: list[tuple[bytes, bool, bool]] = []
        self.fail_first = fail_first

    def __call__(self, payload: memoryview, binary: bool, last_in_buffer: bool, recv_ns: int) -> None:
        assert recv_ns > 0
        self.messages.append((bytes(payload), binary, last_in_buffer))
        if len(self.messages) <= self.fail_first:
            raise RuntimeError("consumer bug")

    @property
    def payloads(self) -> list[bytes]:
        return [m[0] for m in self.messages]


def session(url: str, inbox: Inbox, settings: WsSettings = FAST, **kwargs: object) -> WsSession:
    return WsSession("testvenue", url, inbox, settings=settings, **kwargs)  # type: ignore[arg-type]


def test_subscribes_on_connect_and_delivers_messages() -> None:
    async def main() -> None:
        server = await WsTestServer(
            on_message=lambda conn, msg: (conn.send(b'{"n":1}'), conn.transport.send(WSMsgType.BINARY, b"\x01\x02"))
        ).start()
        inbox = Inbox()
        connected: list[int] = []
        client = session(server.url, inbox, connect_frames=lambda: ['{"sub":"a"}'], on_connected=lambda: connected.append(1))
        client.start()
        await client.wait_connected(5)
        await eventually(lambda: len(inbox.messages) == 2, what="two messages")
        assert server.connections[0].received == [b'{"sub":"a"}']
        assert inbox.messages[0][:2] == (b'{"n":1}', False)
        assert inbox.messages[1][:2] == (b"\x01\x02", True)
        health = client.health()
        assert health.connected and health.connects == 1 and health.reconnects == 0
        assert health.messages == 2 and health.last_message_age_ns is not None and health.last_message_age_ns >= 0
        assert health.errors == {} and connected == [1]
        await client.close()
        await server.close()

    run(main())


def test_reconnects_with_backoff_and_resubscribes_after_drop() -> None:
    async def main() -> None:
        def drop_first(conn, msg):  # type: ignore[no-untyped-def]
            if len(conn.server.connections) == 1:
                conn.transport.disconnect()

        server = await WsTestServer(on_message=drop_first).start()
        disconnects: list[int] = []
        client = session(
            server.url, Inbox(), connect_frames=lambda: ["sub"], on_disconnected=lambda: disconnects.append(1)
        )
        client.start()
        await eventually(lambda: len(server.connections) == 2 and client.connected, what="reconnect")
        await eventually(lambda: server.connections[1].received == [b"sub"], what="resubscribe")
        assert server.connections[0].received == [b"sub"]
        health = client.health()
        assert health.connects == 2 and health.reconnects == 1 and disconnects == [1]
        await client.close()
        await server.close()

    run(main())


def test_server_close_frame_is_answered_then_reconnects() -> None:
    async def main() -> None:
        server = await WsTestServer().start()
        client = session(server.url, Inbox())
        client.start()
        await client.wait_connected(5)
        first = server.connections[0]
        assert first.transport is not None
        first.transport.send_close()
        await eventually(lambda: len(server.connections) == 2, what="reconnect after CLOSE")
        assert client.health().reconnects == 1
        await client.close()
        await server.close()

    run(main())


def test_a_server_close_is_counted_and_warned_about_with_its_code_and_reason(caplog: pytest.LogCaptureFixture) -> None:
    """A venue closing with a reason (MEXC: "Blocked: too many connections") was answered and
    reconnected from in silence: counted nowhere, logged nowhere, while the loop went on."""
    async def main() -> None:
        server = await WsTestServer().start()
        client = session(server.url, Inbox())
        client.start()
        await client.wait_connected(5)
        with caplog.at_level(logging.WARNING, logger="arb.exchanges.ws"):
            for n in (0, 1):
                transport = server.connections[n].transport
                assert transport is not None
                transport.send_close(WSCloseCode(4003), b"Blocked: too many connections")
                await eventually(lambda: len(server.connections) == n + 2, what="reconnect after CLOSE")
            await client.wait_connected(5)
        assert client.health().errors == {"close": 2}
        await client.close()
        await server.close()
        assert client.health().errors == {"close": 2}  # our own close is no error

    run(main())
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1  # the second within the minute at debug level
    assert warned[0].endswith(": the server closed the connection, code 4003: 'Blocked: too many connections' (close #1)")


async def _two_failed_connects(
    handler: Any, scheme: str = "ws", settings: WsSettings = FAST, **kwargs: Any
) -> None:
    """A session to a 127.0.0.1 server running ``handler`` fails to connect twice, counting each."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = session(f"{scheme}://127.0.0.1:{port}/", Inbox(), settings, **kwargs)
    client.start()
    await eventually(lambda: client.health().errors.get("connect", 0) >= 2, what="two failed attempts")
    assert not client.connected and client.connects == 0
    await client.close()
    server.close()


def test_a_connection_closed_during_the_handshake_is_a_connect_error(caplog: pytest.LogCaptureFixture) -> None:
    """picows returns a transport without a listener, raising nothing, when the peer hangs up
    during the upgrade: the session reconnected in a loop counting no error and warning nothing."""
    async def hanging_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    with caplog.at_level(logging.WARNING, logger="arb.exchanges.ws"):
        run(_two_failed_connects(hanging_up))
    assert "connection to ws://127.0.0.1:" in caplog.text and "closed during the handshake" in caplog.text


def test_a_host_that_stops_answering_fails_each_connect_within_the_handshake_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """picows times the upgrade only, from the TCP connection on: a host that took the connection
    and answered nothing of TLS held each connect for asyncio's TLS timeout (60 s), counting no error."""
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    settings = WsSettings(handshake_timeout_s=0.2, backoff_initial_s=0.01, backoff_max_s=0.05)
    with caplog.at_level(logging.WARNING, logger="arb.exchanges.ws"):
        run(_two_failed_connects(silent, "wss", settings, ssl_context=ssl.create_default_context()))
    assert "connection to wss://127.0.0.1:" in caplog.text and "failed: no handshake within 0.2 s" in caplog.text


class _Transport:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.disconnected = False

    def send(self, msg_type: WSMsgType, payload: bytes) -> None:
        self.sent.append(payload)

    def disconnect(self) -> None:
        self.disconnected = True


def test_a_handshake_completing_after_its_attempt_gave_up_is_closed_unused() -> None:
    """An upgrade answered after the connect's time was up (picows's own timer starts later) would
    otherwise bring a second connection, subscribed, beside the one of the next attempt."""
    disconnects: list[int] = []
    client = session(
        "ws://127.0.0.1:1/", Inbox(), connect_frames=lambda: ["sub"], on_disconnected=lambda: disconnects.append(1)
    )
    late = _Listener(client, client._attempt - 1)  # of the attempt before the one under way
    transport = _Transport()
    late.on_ws_connected(transport)  # type: ignore[arg-type]
    late.on_ws_disconnected(transport)  # type: ignore[arg-type]
    assert transport.disconnected and transport.sent == []
    assert not client.connected and client.connects == 0 and disconnects == []


def test_a_handshake_taken_in_the_turn_the_time_ran_out_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The upgrade's answer and the connect's deadline in one event-loop turn: the connection was
    taken (subscribed), then the attempt counted as failed; it stayed open, feeding the session
    beside the next attempt's, even after ``close``."""
    transport = _Transport()

    async def connect_then_hang(listener_factory: Any, *args: Any, **kwargs: Any) -> Any:
        listener_factory().on_ws_connected(transport)  # the 101 read in the turn the deadline fired
        await asyncio.sleep(10)  # ws_connect still awaiting its handshake's completion: cancelled here

    monkeypatch.setattr("arb.exchanges.ws.ws_connect", connect_then_hang)

    async def main() -> None:
        client = session("ws://127.0.0.1:1/", Inbox(), WsSettings(handshake_timeout_s=0.05),
                         connect_frames=lambda: ["sub"])
        with pytest.raises(TimeoutError):
            await client._connect()
        assert transport.sent == [b"sub"] and transport.disconnected
        assert not client.connected and client._transport is None

    run(main())


def test_drop_forces_a_reconnect() -> None:
    async def main() -> None:
        server = await WsTestServer().start()
        client = session(server.url, Inbox(), connect_frames=lambda: ["sub"])
        client.start()
        await client.wait_connected(5)
        client.drop()
        await eventually(lambda: len(server.connections) == 2 and client.connected, what="reconnect after drop")
        # The server sees the close and the resubscription a moment after the client is connected again.
        await eventually(lambda: server.connections[1].received == [b"sub"], what="resubscription")
        await eventually(lambda: server.connections[0].close_codes == [1001], what="close code of the dropped connection")
        await client.close()
        await server.close()

    run(main())


def test_missing_pong_disconnects_and_reconnects() -> None:
    async def main() -> None:
        server = await WsTestServer(reply_pings=False).start()
        settings = WsSettings(
            heartbeat_interval_s=0.05, heartbeat_timeout_s=0.05, backoff_initial_s=0.01, backoff_max_s=0.02
        )
        client = session(server.url, Inbox(), settings, ping_frame=lambda: PING, is_pong=lambda f: b"pong" in bytes(f))
        client.start()
        await eventually(lambda: len(server.connections) >= 2, what="reconnect after heartbeat timeout")
        assert server.connections[0].pings >= 1
        assert client.health().reconnects >= 1
        await client.close()
        await server.close()

    run(main())


def test_answered_heartbeat_keeps_the_connection() -> None:
    async def main() -> None:
        server = await WsTestServer(reply_pings=True).start()
        settings = WsSettings(heartbeat_interval_s=0.03, heartbeat_timeout_s=0.03, backoff_initial_s=0.01)
        inbox = Inbox()
        client = session(server.url, inbox, settings, ping_frame=lambda: PING, is_pong=lambda f: b"spot.pong" in bytes(f))
        client.start()
        await eventually(lambda: bool(server.connections) and server.connections[0].pings >= 5, what="five pings")
        assert len(server.connections) == 1 and client.health().reconnects == 0
        assert inbox.messages == []  # pongs are consumed by the heartbeat, not delivered
        await client.close()
        await server.close()

    run(main())


def test_a_ping_sent_on_demand_is_answered_and_its_pong_moves_last_frame_ns() -> None:
    """A quiet connection and one that died silently both deliver nothing: the pong of a ping sent
    now tells them apart (paper fills wait for it)."""
    async def main() -> None:
        server = await WsTestServer(reply_pings=True).start()
        client = session(server.url, Inbox(), FAST, ping_frame=lambda: PING, is_pong=lambda f: b"spot.pong" in bytes(f))
        client.ping()  # not connected: nothing sent, nothing raised
        client.start()
        await client.wait_connected(5)
        assert client.last_frame_ns == 0
        sent_ns = time.monotonic_ns()
        client.ping()
        await eventually(lambda: client.last_frame_ns >= sent_ns, what="the pong")
        assert server.connections[0].pings == 1
        await client.close()
        await server.close()

    run(main())


def test_fragmented_message_is_reassembled() -> None:
    async def main() -> None:
        def fragments(conn, msg):  # type: ignore[no-untyped-def]
            t = conn.transport
            t.send(WSMsgType.TEXT, b'{"a":', fin=False)
            t.send(WSMsgType.CONTINUATION, b'"long', fin=False)
            t.send(WSMsgType.CONTINUATION, b' message"}', fin=True)
            t.send(WSMsgType.TEXT, b'{"b":2}')

        server = await WsTestServer(on_message=fragments).start()
        inbox = Inbox()
        client = session(server.url, inbox, connect_frames=lambda: ["go"])
        client.start()
        await eventually(lambda: len(inbox.messages) == 2, what="two messages")
        assert inbox.payloads == [b'{"a":"long message"}', b'{"b":2}']
        assert client.health().fragmented_messages == 1 and client.health().messages == 2
        await client.close()
        await server.close()

    run(main())


def test_oversize_fragmented_message_is_dropped_and_counted() -> None:
    async def main() -> None:
        def fragments(conn, msg):  # type: ignore[no-untyped-def]
            t = conn.transport
            t.send(WSMsgType.TEXT, b"0123456", fin=False)
            t.send(WSMsgType.CONTINUATION, b"789abc", fin=True)
            t.send(WSMsgType.TEXT, b"ok")

        server = await WsTestServer(on_message=fragments).start()
        inbox = Inbox()
        settings = WsSettings(max_message_bytes=10, backoff_initial_s=0.01)
        client = session(server.url, inbox, settings, connect_frames=lambda: ["go"])
        client.start()
        await eventually(lambda: len(inbox.messages) == 1, what="the small message")
        assert inbox.payloads == [b"ok"]
        assert client.health().errors == {"oversize": 1} and client.health().connects == 1
        await client.close()
        await server.close()

    run(main())


@pytest.mark.parametrize(
    ("frames", "delivered", "error"),
    [
        ([(WSMsgType.TEXT, b"0123456", False), (WSMsgType.CONTINUATION, b"789abc", True)], [], "oversize"),
        ([(WSMsgType.TEXT, b'{"a":', False), (WSMsgType.TEXT, b'{"b":2}', True)], [b'{"b":2}'], "protocol"),
        ([(WSMsgType.CONTINUATION, b'"tail"}', True)], [], "protocol"),
    ],
    ids=["oversize", "fragments_cut_off_by_a_new_message", "fragment_without_a_start"],
)
def test_a_message_dropped_undelivered_is_told_to_the_consumer(
    frames: list[tuple[WSMsgType, bytes, bool]], delivered: list[bytes], error: str
) -> None:
    """A data message dropped whole (too large) or in part (its fragments cut off, or without their
    start) was counted in the session's errors only: a consumer keeping books from every message
    went on as if it had had them all."""
    async def main() -> None:
        def send(conn, msg):  # type: ignore[no-untyped-def]
            for msg_type, payload, fin in frames:
                conn.transport.send(msg_type, payload, fin=fin)
            conn.transport.send(WSMsgType.TEXT, b"ok")

        server = await WsTestServer(on_message=send).start()
        events: list[bytes | None] = []

        def on_message(payload: memoryview, binary: bool, last_in_buffer: bool, recv_ns: int) -> None:
            events.append(bytes(payload))

        settings = WsSettings(max_message_bytes=10, backoff_initial_s=0.01)
        client = WsSession("testvenue", server.url, on_message, connect_frames=lambda: ["go"], settings=settings,
                           on_message_lost=lambda: events.append(None))
        client.start()
        await eventually(lambda: b"ok" in events, what="the message after")
        assert events == [None, *delivered, b"ok"]  # told before any later message
        assert client.health().errors == {error: 1} and client.health().connects == 1
        await client.close()
        await server.close()

    run(main())


def test_frames_read_together_flag_only_the_last() -> None:
    async def main() -> None:
        def burst(conn, msg):  # type: ignore[no-untyped-def]
            # Three unmasked server TEXT frames in one write, hence one client read.
            raw = b"".join(bytes([0x81, len(p)]) + p for p in (b"one", b"two", b"three"))
            conn.transport.underlying_transport.write(raw)

        server = await WsTestServer(on_message=burst).start()
        inbox = Inbox()
        client = session(server.url, inbox, connect_frames=lambda: ["go"])
        client.start()
        await eventually(lambda: len(inbox.messages) == 3, what="three messages")
        assert [(m[0], m[2]) for m in inbox.messages] == [(b"one", False), (b"two", False), (b"three", True)]
        await client.close()
        await server.close()

    run(main())


def test_a_read_ending_with_a_pong_or_a_ping_tells_the_handler_its_read_ended() -> None:
    """The handler batches a read's messages by ``last_in_buffer``; a heartbeat's pong or a
    protocol ping ending the read never reached it, so that read's batch was never ended (the
    book diffs ahead of it were not scanned until a later read)."""
    async def main() -> None:
        def ping_behind(conn, msg):  # type: ignore[no-untyped-def]
            conn.transport.underlying_transport.write(text_frame(b"diff") + bytes([0x89, 2]) + b"hi")

        server = await WsTestServer(ahead_of_pong=b"update", on_message=ping_behind).start()
        settings = WsSettings(heartbeat_interval_s=0.05, heartbeat_timeout_s=0.05, backoff_initial_s=0.01)
        inbox, read_ends = Inbox(), []
        client = session(
            server.url, inbox, settings, ping_frame=lambda: PING, is_pong=lambda f: b"spot.pong" in bytes(f),
            on_read_end=lambda: read_ends.append(len(inbox.messages)),
        )
        client.start()
        await eventually(lambda: len(inbox.messages) >= 2, what="two updates ahead of pongs")
        assert [(m[0], bool(m[2])) for m in inbox.messages[:2]] == [(b"update", False)] * 2  # a pong ended each read
        assert read_ends[:2] == [1, 2]
        client.send("go")  # a message, then a protocol ping, in one read
        await eventually(lambda: b"diff" in inbox.payloads, what="the diff ahead of the ping")
        at = inbox.payloads.index(b"diff")
        assert not inbox.messages[at][2] and at + 1 in read_ends
        await eventually(lambda: server.connections[0].pongs == [b"hi"], what="the ping answered")
        assert client.health().reconnects == 0 and client.health().errors == {}
        await client.close()
        await server.close()

    run(main())


def test_handler_exception_is_counted_and_the_stream_survives() -> None:
    async def main() -> None:
        server = await WsTestServer(on_message=lambda conn, msg: [conn.send(b"x"), conn.send(b"y")]).start()
        inbox = Inbox(fail_first=1)
        client = session(server.url, inbox, connect_frames=lambda: ["go"])
        client.start()
        await eventually(lambda: len(inbox.messages) == 2, what="both messages")
        health = client.health()
        assert health.errors == {"callback": 1} and health.connects == 1 and health.connected
        await client.close()
        await server.close()

    run(main())


def test_retries_until_the_server_comes_up() -> None:
    async def main() -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        client = session(f"ws://127.0.0.1:{port}/", Inbox())
        client.start()
        await eventually(lambda: client.health().errors.get("connect", 0) >= 2, what="failed attempts")
        assert not client.connected
        server = await WsTestServer().start(port)
        await client.wait_connected(5)
        assert client.health().reconnects >= 2 and client.health().connects == 1
        await client.close()
        await server.close()

    run(main())


def test_graceful_close_sends_close_ok() -> None:
    async def main() -> None:
        server = await WsTestServer().start()
        client = session(server.url, Inbox())
        client.start()
        await client.wait_connected(5)
        await client.close()
        await eventually(lambda: server.connections[0].close_codes == [1000], what="CLOSE 1000 at the server")
        assert not client.connected and len(server.connections) == 1
        with pytest.raises(ExchangeConnectionError, match="testvenue: websocket .* is not connected"):
            client.send("late")
        await server.close()

    run(main())


def test_a_send_while_the_connection_closes_is_refused_not_dropped() -> None:
    """Between a server's CLOSE (answered at once) or a reset and the disconnect a loop turn later,
    picows and asyncio drop a write silently: an order written then was taken as sent."""
    async def main() -> None:
        server = await WsTestServer().start()
        refused: list[ErrorCategory | None] = []

        def send_in_the_closing_turn() -> None:  # the read that brought the CLOSE ends here
            try:
                client.send_text(b'{"order":1}')
            except ExchangeConnectionError as exc:
                refused.append(exc.category)

        client = session(server.url, Inbox(), on_read_end=send_in_the_closing_turn)
        client.start()
        await client.wait_connected(5)
        first = server.connections[0].transport
        assert first is not None
        first.send_close()
        await eventually(lambda: len(server.connections) == 2 and client.connected, what="reconnect after CLOSE")
        assert refused == [ErrorCategory.NOT_SENT]
        transport = client._transport
        assert transport is not None
        transport.underlying_transport.abort()  # as a reset read does: the disconnect comes a turn later
        with pytest.raises(ExchangeConnectionError, match="is not connected") as info:
            client.send_text(b'{"order":2}')
        assert info.value.category is ErrorCategory.NOT_SENT
        await client.close()
        await server.close()

    run(main())


def test_backoff_is_exponential_capped_and_jittered() -> None:
    settings = WsSettings(backoff_initial_s=0.1, backoff_max_s=2.0, backoff_multiplier=2.0)
    rng = random.Random(7)
    for attempt, base in [(0, 0.1), (1, 0.2), (3, 0.8), (5, 2.0), (500, 2.0)]:
        delays = [backoff_delay(attempt, settings, rng) for _ in range(50)]
        assert all(base / 2 <= d <= base for d in delays), (attempt, delays)
        assert len(set(delays)) > 1


def test_settings_from_exchange_config() -> None:
    settings = WsSettings.from_exchange_config(ExchangeConfig(name="gateio", ws_heartbeat_interval_ms=5000))
    assert (settings.heartbeat_interval_s, settings.heartbeat_timeout_s) == (5.0, 5.0)


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="heartbeat_interval_s must be > 0"):
        WsSettings(heartbeat_interval_s=0)
    with pytest.raises(ValueError, match="heartbeat_timeout_s=2 must be <= heartbeat_interval_s=1"):
        WsSettings(heartbeat_interval_s=1, heartbeat_timeout_s=2)
    with pytest.raises(ValueError, match="backoff_max_s"):
        WsSettings(backoff_initial_s=5, backoff_max_s=1)
    with pytest.raises(ValueError, match="ping_frame and is_pong"):
        WsSession("v", "ws://127.0.0.1:1/", Inbox(), ping_frame=lambda: PING)


def test_a_private_stream_s_account_token_stays_out_of_its_logs_and_errors(caplog: pytest.LogCaptureFixture) -> None:
    """A MEXC private stream's URL carries the listenKey: failing to connect, the log names the URL
    without it, and so do the error of a send on the closed session and the last error kept (the
    refusal, which ``arb doctor`` shows)."""
    token = "pqia91ma19a5s61cv6a81va65sdf19v8a65a1"

    async def main() -> tuple[str, dict[str, str]]:
        ws = session(f"ws://127.0.0.1:1/ws?listenKey={token}", Inbox())
        ws.start()
        await asyncio.sleep(0.3)  # a connection attempt or two, refused
        with pytest.raises(ExchangeConnectionError) as closed:
            ws.send_text(b"{}")
        await ws.close()
        return str(closed.value), ws.last_errors

    with caplog.at_level(logging.DEBUG, logger="arb.exchanges.ws"):
        error, last = asyncio.run(main())
    assert "ws://127.0.0.1:1/ws?…" in error and token not in error
    assert "connection to ws://127.0.0.1:1/ws?… failed" in caplog.text and token not in caplog.text
    assert last["connect"].startswith("connection to ws://127.0.0.1:1/ws?… failed: ConnectionRefusedError")


def test_a_stream_url_that_cannot_be_had_is_named_as_such(caplog: pytest.LogCaptureFixture) -> None:
    """A MEXC private stream's URL comes from a signed listenKey call: when that call failed, the
    log read "connection to  failed" with no URL, as if a connection had been tried."""

    async def no_url() -> str:
        raise ExchangeConnectionError("testvenue", "POST /api/v3/userDataStream: 503")

    async def main() -> None:
        ws = session("", Inbox(), refresh_url=no_url)
        ws.start()
        await asyncio.sleep(0.2)
        await ws.close()

    with caplog.at_level(logging.DEBUG, logger="arb.exchanges.ws"):
        asyncio.run(main())
    assert "getting the stream's URL failed: ExchangeConnectionError" in caplog.text
    assert "connection to  failed" not in caplog.text


@pytest.mark.parametrize("url", ["ws://127.0.0.1:99999/", "ws://[::1/"])
def test_a_connect_failing_with_any_error_is_counted_and_retried(url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Only network, websocket, timeout and engine errors were caught: a ValueError of a URL picows
    cannot read (as the UnicodeError of a host name label over 63 characters) ended the connect
    loop in silence, the stream down for good, and ``close`` raised the error."""
    async def main() -> None:
        client = session(url, Inbox())
        client.start()
        with caplog.at_level(logging.WARNING, logger="arb.exchanges.ws"):
            await eventually(lambda: client.health().errors.get("connect", 0) >= 2, what="two failed attempts")
        assert client._task is not None and not client._task.done()
        await client.close()

    run(main())
    assert f"connection to {url} failed: " in caplog.text


def test_a_redirect_is_not_followed(caplog: pytest.LogCaptureFixture) -> None:
    """picows follows up to five redirects to any host: a login, signed subscription or order sent
    after the handshake went there, past the checks made on the configured URL."""
    async def main() -> None:
        target = await WsTestServer().start()

        async def redirecting(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(f"HTTP/1.1 302 Found\r\nLocation: {target.url}\r\nContent-Length: 0\r\n\r\n".encode())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(redirecting, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = session(f"ws://127.0.0.1:{port}/ws", Inbox(), connect_frames=lambda: ['{"login":"signed"}'])
        client.start()
        with caplog.at_level(logging.WARNING, logger="arb.exchanges.ws"):
            await eventually(lambda: client.health().errors.get("connect", 0) >= 2, what="refused twice")
        assert not client.connected and target.connections == []
        assert "a redirect, which is not followed: set the venue's ws_url to where it leads" in caplog.text
        await client.close()
        server.close()
        await target.close()

    run(main())


def test_close_while_the_stream_token_is_fetched_stops_there_and_connects_nothing() -> None:
    """``close`` waited for the connect loop, which went on to connect (and send its signed
    connect frames) after the token came: a start that timed out hung in its close."""
    async def main() -> None:
        server = await WsTestServer(on_message=lambda connection, message: None).start()
        fetching = asyncio.Event()

        async def refresh_url() -> str:  # a listen-key request that does not answer
            fetching.set()
            await asyncio.Event().wait()
            return server.url

        session = WsSession("t", "", lambda *a: None, settings=FAST, refresh_url=refresh_url,
                            connect_frames=lambda: ['{"sub":1}'])
        session.start()
        await fetching.wait()
        try:
            closing = asyncio.ensure_future(session.close())
            done, _ = await asyncio.wait({closing}, timeout=5)  # not wait_for: its cancel would end the wait
            assert done == {closing} and closing.result() is None
            assert server.connections == [] and not session.connected
        finally:
            await server.close()

    run(main())


def test_a_cancelled_close_raises_the_cancellation() -> None:
    """The caller's cancellation cancelled the connect loop it awaited, and ``close`` took that for
    the loop's own and returned as if it had closed."""
    async def main() -> None:
        server = await WsTestServer(on_message=lambda connection, message: None).start()
        session = WsSession("t", server.url, lambda *a: None, settings=FAST)
        session.start()
        try:
            await session.wait_connected(5)
            closing = asyncio.create_task(session.close())
            await asyncio.sleep(0)  # close() is waiting for the loop
            closing.cancel()
            with pytest.raises(asyncio.CancelledError):
                await closing
        finally:
            await server.close()

    run(main())


def test_sessions_closed_in_the_cleanup_of_a_cancelled_task_all_close() -> None:
    """A task already cancelled closes its sessions in a ``finally``: the first close, stopping a loop
    that was connecting, took the caller's earlier cancellation for a new one and raised it, and
    the sessions after it were never closed."""
    async def main() -> None:
        fetching: list[asyncio.Event] = [asyncio.Event(), asyncio.Event()]

        def token(n: int) -> Any:
            async def refresh_url() -> str:
                fetching[n].set()
                await asyncio.Event().wait()
                return "ws://127.0.0.1:1/"
            return refresh_url

        sessions = [WsSession("t", "", lambda *a: None, settings=FAST, refresh_url=token(n)) for n in (0, 1)]
        for session in sessions:
            session.start()
        for event in fetching:
            await event.wait()
        cleaned: list[bool] = []

        async def owner() -> None:
            try:
                await asyncio.Event().wait()
            finally:
                for session in sessions:
                    await session.close()
                cleaned.append(True)

        task = asyncio.create_task(owner())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert cleaned == [True] and all(s._task is not None and s._task.done() for s in sessions)

    run(main())


def test_an_error_of_a_new_cause_is_warned_about_though_its_kind_was_before(caplog: pytest.LogCaptureFixture) -> None:
    """Each kind was warned about once per run: a connection failing hours later for a new reason
    (an expired certificate, a 403), or a handler raising a new exception, showed at debug level only."""
    session = WsSession("t", "ws://127.0.0.1:1/", lambda *a: None, settings=FAST)
    with caplog.at_level(logging.DEBUG, logger="arb.exchanges.ws"):
        session._count_error("connect", "refused", cause="ConnectionRefusedError")
        session._count_error("connect", "refused again", cause="ConnectionRefusedError")
        session._count_error("connect", "certificate has expired", cause="SSLCertVerificationError")
        for error in (KeyError("k"), KeyError("k2"), ZeroDivisionError()):
            try:
                raise error
            except Exception:
                session._count_error("callback", f"message handler raised {type(error).__name__}", exc_info=True)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [m.split(": ", 1)[1] for m in warned] == [
        "refused (connect #1)", "certificate has expired (connect #3)", "message handler raised KeyError (callback #1)",
        "message handler raised ZeroDivisionError (callback #3)",
    ]
    assert session.errors == {"connect": 3, "callback": 3}
