"""The interfaces the engine sees, and what a venue supplies to the shared mechanism.

``PublicExchange`` and ``PrivateExchange`` are what connectors implement for the engine.
``MarketDataDialect`` is the small surface a venue folder implements so that
``arb.exchanges.ws`` and ``arb.exchanges.book_sync`` (written once) can run its market
data: URLs, frames to send, and the compiled decoders of ``arb_core.wire.<venue>``.
Normalised data types live in ``arb.exchanges.models``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import NamedTuple, Protocol, TypeAlias, runtime_checkable

import msgspec

from arb_core.book import DeltaBatch, OrderBook
from arb_core.wire.common import WireScale

from ..instruments import InstrumentCatalog
from ..types import ExchangeName
from .models import Balance, ConnectionHealth, Fill, FundingPayment, OrderRequest, OrderState, Position

WsPayload: TypeAlias = bytes | str
"""A websocket message to send: ``str`` goes as a TEXT frame, ``bytes`` as BINARY."""

Frame: TypeAlias = memoryview | bytes
"""A received message payload; a memoryview is borrowed and valid only during the callback."""


class BookKey(NamedTuple):
    """Which book: the market and the unified symbol."""

    exchange: ExchangeName
    symbol: str


class BookSink(Protocol):
    """Who is told about book changes (the scanner); called synchronously from the frame callback."""

    def on_book_update(self, key: BookKey) -> None:
        """The book of ``key`` applied an update and is in sync."""

    def on_batch_end(self) -> None:
        """The last complete frame of the current socket read was handled (coalesce work here)."""

    def on_book_state(self, key: BookKey, in_sync: bool, reason: str) -> None:
        """The book of ``key`` went out of sync (``reason``: gap, crossed, malformed, reconnect...) or back in."""


class SnapshotRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A REST depth snapshot request: path under the venue's base URL and its query parameters."""

    path: str
    params: tuple[tuple[str, str], ...] = ()
    limits: tuple[tuple[str, int], ...] = ()  # (rate limit id, weight)


class MarketDataDialect(Protocol):
    """A venue's market-data wire format; the venue folder implements it, the mechanism is shared.

    Hot-path members (``classify``, ``frame_symbol``, ``decode_update``) should be the
    compiled ``arb_core.wire`` functions themselves (``staticmethod(gateio.classify)``) so no
    Python frame runs per message. Sequence rule: the decoder maps the venue's ids onto
    ``first_update_id``/``last_update_id`` so that ``OrderBook.apply_batch``'s rule (stale if
    ``last <= book``, gap if ``first > book + 1``) is the venue's.
    """

    @property
    def venue(self) -> str:
        """Venue name for messages and metrics (``gateio``)."""

    @property
    def ws_url(self) -> str:
        """Websocket URL of the market-data stream."""

    @property
    def snapshot_in_first_push(self) -> bool:
        """True when the first push after subscribing is a full book (Gate ``obu``): no REST
        snapshot; resync by unsubscribing and subscribing again."""

    def subscribe_frames(self, venue_symbols: Sequence[str]) -> Sequence[WsPayload]:
        """Frames that subscribe the depth stream of ``venue_symbols``."""

    def unsubscribe_frames(self, venue_symbols: Sequence[str]) -> Sequence[WsPayload]:
        """Frames that unsubscribe the depth stream of ``venue_symbols``."""

    def ping_frame(self) -> WsPayload | None:
        """The application-level ping, or None to use websocket PING frames."""

    def is_pong(self, frame: Frame) -> bool:
        """Cheap check that a frame answers ``ping_frame`` (runs only while a pong is awaited)."""

    def classify(self, frame: Frame) -> int:
        """A ``FrameKind`` value: text vs binary is told apart by the payload itself."""

    def error_reason(self, frame: Frame) -> str:
        """What an ERROR frame says (its code and message), without what differs per frame (times,
        request ids); "" when unreadable. Not a hot path: error frames are rare."""

    def frame_symbol(self, frame: Frame) -> bytes:
        """The venue symbol of a BOOK_UPDATE frame, to route it before decoding."""

    def decode_update(self, frame: Frame, scale: WireScale, batch: DeltaBatch) -> int:
        """Decode a BOOK_UPDATE frame into ``batch`` (``is_snapshot`` set on full pushes)."""

    def snapshot_request(self, venue_symbol: str) -> SnapshotRequest:
        """The REST request of a depth snapshot whose id continues the diff stream."""

    def decode_snapshot(self, body: Frame, scale: WireScale, batch: DeltaBatch) -> int:
        """Decode a REST snapshot body into ``batch`` (both ids = the snapshot id)."""


class MarketDataTap(Protocol):
    """Sees a connector's raw market data (a recorder): every websocket message and REST snapshot.

    ``start_books(..., tap=...)`` wraps the message handler and the snapshot fetcher with it
    (and the stream-drop handler when it is a ``DisconnectTap`` too); a wrapped handler must
    copy what it keeps (the payload is borrowed) and never raise.
    """

    def wrap_messages(
        self, exchange: ExchangeName, dialect: MarketDataDialect, handler: Callable[[memoryview, bool, bool, int], None]
    ) -> Callable[[memoryview, bool, bool, int], None]:
        """A ``(payload, is_binary, last_in_buffer, recv_ns)`` handler that sees each message, then calls ``handler``."""

    def wrap_snapshots(
        self, exchange: ExchangeName, fetch: Callable[[str], Awaitable[bytes]]
    ) -> Callable[[str], Awaitable[bytes]]:
        """A ``venue_symbol -> body`` snapshot fetcher that sees each body ``fetch`` returns."""


@runtime_checkable
class DisconnectTap(Protocol):
    """A tap that also sees each drop of a connector's market-data stream (a recorder); the
    close ``stop_books`` makes is no drop."""

    def wrap_disconnects(self, exchange: ExchangeName, handler: Callable[[], None]) -> Callable[[], None]:
        """A stream-drop handler that sees each drop, then calls ``handler``."""


OrderHandler: TypeAlias = Callable[[OrderState], None]
FillHandler: TypeAlias = Callable[[Fill], None]
BalanceHandler: TypeAlias = Callable[[Balance], None]
BalancesReadHandler: TypeAlias = Callable[[Mapping[str, Balance], int], None]
"""The account's balances by asset, read by REST because a push said they changed without telling
them, and when the read began (``time.monotonic_ns``): a read begun before another that answered
first is the older."""


class PublicExchange(Protocol):
    """Public market data of one market (``ExchangeName``): instruments, books, clocks, health."""

    @property
    def exchange(self) -> ExchangeName:
        """The market served."""

    async def instruments(self) -> InstrumentCatalog:
        """Trading rules of every listed instrument (fetched from the venue)."""

    async def start_books(self, symbols: Sequence[str]) -> None:
        """Subscribe order books of unified ``symbols`` and keep them in sync until ``stop_books``."""

    async def stop_books(self) -> None:
        """Close the market-data stream; books stay readable but out of sync."""

    def books(self) -> Mapping[str, OrderBook]:
        """The live books by unified symbol (ticks and lots; check ``in_sync`` before use)."""

    async def depth_snapshot(self, symbol: str) -> OrderBook:
        """A one-off REST depth snapshot of ``symbol`` as a fresh book."""

    async def server_time(self) -> int:
        """The venue's clock in wall-clock ms."""

    async def ping(self) -> int:
        """REST round trip in ns."""

    def health(self) -> ConnectionHealth:
        """The market-data connection's health."""


class PrivateExchange(Protocol):
    """Account and trading on one market; every call is signed by the venue layer.

    Outcomes: a venue refusal raises ``OrderRejectedError``; a 5xx, timeout or dropped
    connection after sending raises ``ExchangeError`` with category ``OUTCOME_UNKNOWN``
    (the order may exist: query by client id, never assume failure).
    """

    @property
    def exchange(self) -> ExchangeName:
        """The market traded."""

    async def balances(self) -> Mapping[str, Balance]:
        """Balances by asset."""

    async def place_order(self, request: OrderRequest) -> OrderState:
        """Submit an order. ``status=NEW`` with nothing filled means accepted, fills not yet known."""

    def write_order(self, request: OrderRequest) -> Awaitable[OrderState] | None:
        """Submit an order, written to the venue before this returns; await the result for what
        ``place_order`` returns. None (nothing sent) when the order cannot go without waiting."""

    def order_wait_s(self, symbol: str) -> float:
        """Seconds until the order budget of ``symbol`` admits an order (0: now); ``place_order``
        waits that long before sending. Spends nothing."""

    @property
    def order_acceptance_s(self) -> float:
        """How long after an order is sent the venue may still take it (a request delayed on its
        way): an order it does not find before then may yet appear. 0: never later than answered."""

    @property
    def client_id_lookup_s(self) -> float | None:
        """How long after an order ends the venue still finds it by its client id (None: as long as
        it matters here)."""

    def rehearse_order(self, request: OrderRequest) -> None:
        """Encode ``request`` as ``write_order`` would and drop it: nothing is sent, spent or tracked.
        Called between executions to keep the order path in the CPU's caches."""

    async def cancel_order(
        self, symbol: str, *, order_id: str | None = None, client_order_id: str | None = None
    ) -> OrderState:
        """Cancel by venue id or client id (exactly one); returns the final state the venue reports."""

    async def query_order(
        self, symbol: str, *, order_id: str | None = None, client_order_id: str | None = None,
        sent_at_ms: int | None = None,
    ) -> OrderState:
        """The current state of an order, by venue id or client id (exactly one); ``sent_at_ms``
        (wall clock), where known, narrows the search of a venue that finds finished orders by
        client id only for a while."""

    async def open_orders(self, symbol: str | None = None) -> Sequence[OrderState]:
        """Resting orders, of one symbol or all."""

    async def positions(self) -> Sequence[Position]:
        """Open futures positions (empty on spot)."""

    async def funding_payments(self, since_ms: int) -> Sequence[FundingPayment]:
        """Funding settled on the account's futures positions since ``since_ms``, oldest first (empty on spot)."""

    async def start_private_stream(
        self, on_order: OrderHandler | None, on_fill: FillHandler, on_balance: BalanceHandler | None = None,
        *, on_balances_read: BalancesReadHandler | None = None, on_resubscribed: Callable[[], None] | None = None,
    ) -> None:
        """Stream order updates (unless ``on_order`` is None), fills and (when ``on_balance`` is
        given) balance changes to the handlers (called synchronously, in venue order). Where a push only says the balances
        changed, they are read by REST and go to ``on_balances_read`` (to ``on_balance``, asset
        by asset, without it). ``on_resubscribed``: called once subscribed again after a reconnect
        (what was pushed meanwhile is lost); without it the balances are read as after such a push."""

    async def stop_private_stream(self) -> None:
        """Close the private stream."""

    def health(self) -> ConnectionHealth:
        """The private stream's connection health."""
