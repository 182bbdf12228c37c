"""Private order and fill streams written once: a venue supplies a ``PrivateDialect``, this runs it.

``PrivateStream`` keeps one ``WsSession`` on the venue's private websocket: before every
(re)connect it asks the dialect for the URL (MEXC creates a fresh listenKey there), on every
connect it sends the dialect's signed subscribe frames, keeps the venue's stream token alive
while connected (``keepalive``), and hands each decoded push to ``on_order``/``on_fill`` (a
trade pushed again reaches ``on_fill`` once) and balance pushes to the optional ``on_balance``.
The venues push the account's orders and trades of every pair: those on pairs the instrument
catalog does not list (trades made outside the engine) are left out one by one and counted
apart, not as unreadable frames. A venue whose balance push lacks the free/locked split (Gate
futures sends the wallet balance only) flags the change instead, and the stream reads the
balances from ``balance_source`` (the signed REST call) and reports those: a burst of pushes
costs one read in flight plus at most one more.
``start`` returns once the first subscriptions are acknowledged and raises when the venue
refuses them (bad key or signature), so an unusable stream fails at start, not silently.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import NamedTuple, Protocol, TypeVar

from ..errors import ArbitrageEngineError, ExchangeConnectionError, ExchangeError
from ..instruments import InstrumentCatalog
from ..throttled_log import ThrottledWarnings
from .base import BalanceHandler, BalancesReadHandler, FillHandler, Frame, OrderHandler, WsPayload
from .errors import ErrorCategory
from .models import Balance, Fill, OrderState
from .rest import RestClient
from .ws import WsSession, WsSettings

log = logging.getLogger(__name__)
KEPT = 8  # URLs and refusals a stream remembers (a long run reconnects many times)
FEE_ORDERS_KEPT = 10_000  # orders whose pushed fees a dialect sums at once (least recently used dropped past it)
TRADES_KEPT = 10_000  # trades a stream remembers having reported, to report a resent one once
T = TypeVar("T")


class PrivateMessage(NamedTuple):
    """One decoded private frame: orders, fills or balances it carries, or an ack, or a venue error."""

    orders: Sequence[OrderState] = ()
    fills: Sequence[Fill] = ()
    ack: bool = False  # a subscription was accepted
    error: str | None = None  # the venue refused a request (auth, channel...)
    balances: Sequence[Balance] = ()
    balances_changed: bool = False  # balances changed but the push does not tell free and locked
    unlisted: Sequence[str] = ()  # venue symbols of the orders and trades left out: pairs the catalog does not list


def listed_items(
    catalog: InstrumentCatalog, items: Iterable[T], venue_symbol: Callable[[T], str]
) -> tuple[list[T], list[str]]:
    """The ``items`` on pairs ``catalog`` lists, and the venue symbols of the others (in order)."""
    listed: list[T] = []
    unlisted: list[str] = []
    for item in items:
        symbol = venue_symbol(item)
        if catalog.lists_venue_symbol(symbol):
            listed.append(item)
        else:
            unlisted.append(symbol)
    return listed, unlisted


class PrivateStreamStats(NamedTuple):
    """The counters of one private stream since it started."""

    malformed: int  # frames that could not be read
    unlisted: int  # orders and trades left out: on pairs the instrument catalog does not list
    refusals: int  # requests the venue refused (subscriptions)
    reconnects: int  # connection attempts after the first


class PushedFees:
    """Fees pushed per trade, summed per order, for venues whose order pushes carry none.

    A trade pushed twice (a venue resending after a reconnect) counts once. ``finish`` forgets
    an order once its final state is reported; an order whose final push never comes, or whose
    trades come after it, is forgotten past ``capacity`` orders, the least recently used first
    (an order still pushed stays), so a long run's memory stays bounded.

    A final state pushed before the order's last trades (MEXC sends its orders and deals on
    separate topics, in no set order) reports the fees pushed up to then only; the trades after
    it are held until the order is forgotten that way.
    """

    def __init__(self, venue: str, capacity: int = FEE_ORDERS_KEPT) -> None:
        if capacity < 1:
            raise ValueError(f"fee capacity must be at least 1, got {capacity}")
        self.venue = venue
        self.capacity = capacity
        # order id -> (trade id -> fee), the fee asset of its first trade
        self._orders: OrderedDict[str, tuple[dict[str, Decimal], str]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._orders)

    def add(self, order_id: str, trade_id: str, fee: Decimal, asset: str) -> None:
        """Count the fee of trade ``trade_id`` of ``order_id`` (once per trade id)."""
        held = self._orders.get(order_id)
        if held is None:
            held = self._orders[order_id] = ({}, asset)
            if len(self._orders) > self.capacity:
                self._orders.popitem(last=False)
        else:
            self._orders.move_to_end(order_id)
        fees, first_asset = held
        if asset != first_asset:
            log.warning(
                "%s order %s: trade %s charged %s %s, not in %s as its earlier trades; its pushed order "
                "states report the %s fees only", self.venue, order_id, trade_id, fee, asset, first_asset, first_asset,
            )
            return
        fees.setdefault(trade_id, fee)

    def total(self, order_id: str) -> tuple[Decimal, str | None]:
        """The fees of ``order_id`` so far and their asset; ``(0, None)`` when none were pushed."""
        held = self._orders.get(order_id)
        if held is None:
            return Decimal(0), None
        self._orders.move_to_end(order_id)
        fees, asset = held
        return sum(fees.values(), Decimal(0)), asset

    def finish(self, order_id: str) -> None:
        """Forget ``order_id`` (its final state has been reported)."""
        self._orders.pop(order_id, None)


class ReportedTrades:
    """The trades reported last, by order and trade id, so that one a venue pushes again (after
    a reconnect) reaches the fill handler once; the least recently seen forgotten past ``capacity``."""

    def __init__(self, capacity: int = TRADES_KEPT) -> None:
        if capacity < 1:
            raise ValueError(f"trade capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()

    def reported(self, fill: Fill) -> bool:
        """Whether ``fill`` was reported before (``remember``)."""
        key = (fill.order_id, fill.trade_id)
        if key in self._seen:
            self._seen.move_to_end(key)
            return True
        return False

    def remember(self, fill: Fill) -> None:
        """Note ``fill`` as reported: once its handler took it, so one the handler failed on is
        taken if the venue pushes it again."""
        self._seen[(fill.order_id, fill.trade_id)] = None
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)


BalanceSource = Callable[[], Awaitable[Mapping[str, Balance]]]
"""The signed REST balance call of the stream's account."""


class PrivateDialect(Protocol):
    """A venue's private-stream wire format and token lifecycle; the loop is ``PrivateStream``."""

    @property
    def venue(self) -> str:
        """Market name for messages (``gateio``)."""

    @property
    def keepalive_interval_s(self) -> float | None:
        """How often ``keepalive`` must run while streaming; None when the venue needs nothing."""

    async def connect_url(self, rest: RestClient) -> str:
        """The URL of the next connection (may create a stream token over ``rest``)."""

    async def keepalive(self, rest: RestClient) -> None:
        """Extend the current stream token."""

    async def release(self, rest: RestClient) -> None:
        """Close the current stream token (best effort, on stop)."""

    def subscribe_frames(self) -> Sequence[WsPayload]:
        """Signed subscribe frames sent on every connect; each is acknowledged once."""

    def ping_frame(self) -> WsPayload:
        """The application-level ping."""

    def is_pong(self, frame: Frame) -> bool:
        """Cheap check that ``frame`` answers ``ping_frame``."""

    def decode(self, frame: Frame, is_binary: bool) -> PrivateMessage:
        """One received frame; raises ``ValueError`` on a frame it cannot read."""


class PrivateStream:
    """The private websocket of one connector: reconnect, resubscribe, keep-alive, dispatch."""

    def __init__(
        self,
        dialect: PrivateDialect,
        rest: RestClient,
        on_order: OrderHandler,
        on_fill: FillHandler,
        settings: WsSettings | None = None,
        *,
        on_balance: BalanceHandler | None = None,
        on_balances_read: BalancesReadHandler | None = None,
        balance_source: BalanceSource | None = None,
        on_resubscribed: Callable[[], None] | None = None,
    ) -> None:
        self.dialect = dialect
        self.rest = rest
        self._on_order = on_order
        self._on_fill = on_fill
        self._on_balance = on_balance
        self._on_balances_read = on_balances_read
        self._balance_source = balance_source
        self._on_resubscribed = on_resubscribed
        self._balance_read: asyncio.Task[None] | None = None
        self._read_again = False
        self.session = WsSession(
            dialect.venue,
            "",
            self._on_message,
            connect_frames=self._connect_frames,
            ping_frame=dialect.ping_frame,
            is_pong=dialect.is_pong,
            on_disconnected=self._disconnected,
            settings=settings,
            refresh_url=self._next_url,
            on_message_lost=self._message_lost,
        )
        # The newest URLs connected to, in order (new listenKeys show here), and venue refusals.
        self.urls: deque[str] = deque(maxlen=KEPT)
        self.errors: deque[str] = deque(maxlen=KEPT)
        self.malformed = 0  # frames the dialect could not read
        self.unlisted = 0  # orders and trades left out: on pairs the catalog does not list
        self.refusals = 0  # requests the venue refused
        self._malformed_warnings = ThrottledWarnings(log, "unreadable private frames")
        self._unlisted_warnings = ThrottledWarnings(log, "orders and trades left out")
        self._reported = ReportedTrades()
        self._pending_acks = 0
        self._ready: asyncio.Future[None] | None = None
        self._keepalive: asyncio.Task[None] | None = None

    @property
    def subscribed(self) -> bool:
        """Connected with every subscription acknowledged (False while reconnecting, and while a
        refused resubscription waits to connect again)."""
        ready = self._ready
        return ready is not None and ready.done() and self.session.connected and not self._pending_acks

    def stats(self) -> PrivateStreamStats:
        """The stream's counters now."""
        return PrivateStreamStats(self.malformed, self.unlisted, self.refusals, self.session.reconnects)

    async def start(self, timeout_s: float) -> None:
        """Connect and subscribe; raises ``ExchangeError`` (AUTH_FAILED) when the venue refuses the
        subscriptions, ``ExchangeConnectionError`` when nothing is acknowledged within ``timeout_s``."""
        self._ready = asyncio.get_running_loop().create_future()
        self.session.start()
        interval = self.dialect.keepalive_interval_s
        if interval is not None:
            self._keepalive = asyncio.get_running_loop().create_task(
                self._keep_alive(interval), name=f"{self.dialect.venue} private keepalive"
            )
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), timeout_s)
        except asyncio.TimeoutError:
            await self.close()
            raise ExchangeConnectionError(
                self.dialect.venue, f"private stream not subscribed within {timeout_s} s"
            ) from None
        except (ArbitrageEngineError, asyncio.CancelledError):
            # Cancelled too (a stop during the start-up): the caller never gets the stream to close.
            await self.close()
            raise

    async def close(self) -> None:
        """Stop reconnecting, close the connection and release the stream token."""
        for task in (self._keepalive, self._balance_read):
            if task is None:
                continue
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                if not task.cancelled():
                    raise
        self._keepalive = self._balance_read = None
        await self.session.close()
        if self.urls:
            try:
                await self.dialect.release(self.rest)
            except ArbitrageEngineError as exc:
                log.warning("%s: releasing the private stream token failed: %s", self.dialect.venue, exc)

    async def _next_url(self) -> str:
        try:
            url = await self.dialect.connect_url(self.rest)
        except ExchangeError as exc:
            # A refused key cannot succeed on retry: fail start() instead of looping.
            if exc.category in (ErrorCategory.AUTH_FAILED, ErrorCategory.TIMESTAMP):
                self._fail(exc)
            raise
        self.urls.append(url)
        return url

    async def _keep_alive(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.dialect.keepalive(self.rest)
            except asyncio.CancelledError:
                raise
            except ArbitrageEngineError as exc:
                # The token may be gone; a fresh one comes with the next connection.
                log.warning("%s: private stream keep-alive failed (%s); reconnecting", self.dialect.venue, exc)
                self.session.drop()

    def _connect_frames(self) -> Sequence[WsPayload]:
        frames = self.dialect.subscribe_frames()
        self._pending_acks = len(frames)
        return frames

    def _disconnected(self) -> None:
        self._pending_acks = 0

    def _fail(self, error: ArbitrageEngineError) -> None:
        ready = self._ready
        if ready is not None and not ready.done():
            ready.set_exception(error)

    def _on_message(self, payload: memoryview, is_binary: bool, last_in_buffer: bool, recv_ns: int) -> None:
        venue = self.dialect.venue
        try:
            message = self.dialect.decode(payload, is_binary)
        except (ValueError, KeyError, ArithmeticError) as exc:  # ArithmeticError: a "NaN" amount compared
            self.malformed += 1
            self._malformed_warnings.warn(
                "malformed", recv_ns, "%s: unreadable private frame (%s): %r", venue, exc, bytes(payload[:200])
            )
            return
        if message.error is not None:
            self.refusals += 1
            self.errors.append(message.error)
            ready = self._ready
            if ready is not None and ready.done():
                # A refused resubscription after a reconnect leaves the connection up with nothing
                # pushed on it: connect again (after the session's backoff) rather than go quiet.
                log.error("%s: private stream resubscription refused (%s); reconnecting", venue, message.error)
                self.session.drop()
            else:
                log.warning("%s: private stream request refused: %s", venue, message.error)
                self._fail(
                    ExchangeError(venue, f"private stream refused: {message.error}", category=ErrorCategory.AUTH_FAILED)
                )
            return
        if message.ack and self._pending_acks:
            self._pending_acks -= 1
            ready = self._ready
            if not self._pending_acks and ready is not None:
                if not ready.done():
                    ready.set_result(None)
                else:
                    self._resubscribed()
        for fill in message.fills:
            if self._reported.reported(fill):
                log.debug("%s: trade %s of order %s pushed again, reported once", venue, fill.trade_id, fill.order_id)
                continue
            try:
                self._on_fill(fill)
            except Exception:
                log.exception("%s: fill handler raised on %r", venue, fill.trade_id)
            else:
                self._reported.remember(fill)
        for order in message.orders:
            try:
                self._on_order(order)
            except Exception:
                log.exception("%s: order handler raised on %r", venue, order.order_id)
        self._report_balances(message.balances)
        if message.balances_changed:
            self._read_balances_soon()
        for symbol in message.unlisted:
            self.unlisted += 1
            self._unlisted_warnings.warn(
                symbol, recv_ns, "%s: a private push on %s left out: the instrument catalog does not list it "
                "(an order or trade made outside the engine)", venue, symbol,
            )

    def _message_lost(self) -> None:
        """The websocket dropped a push undelivered (oversize, cut off): what it said is read again,
        as after a reconnect, once the stream is up."""
        ready = self._ready
        if ready is not None and ready.done() and not ready.cancelled() and ready.exception() is None:
            log.warning("%s: a private push was lost; reading what it may have changed", self.dialect.venue)
            self._resubscribed()

    def _resubscribed(self) -> None:
        """Subscribed again after a reconnect: what was pushed meanwhile is lost, so the balances are
        read (by ``on_resubscribed`` where given, a read that keeps later pushes; else here)."""
        if self._on_resubscribed is None:
            self._read_balances_soon()
            return
        try:
            self._on_resubscribed()
        except Exception:
            log.exception("%s: resubscription handler raised", self.dialect.venue)

    def _report_balances(self, balances: Iterable[Balance]) -> None:
        on_balance = self._on_balance
        if on_balance is None:
            return
        for balance in balances:
            try:
                on_balance(balance)
            except Exception:
                log.exception("%s: balance handler raised on %r", self.dialect.venue, balance.asset)

    def _read_balances_soon(self) -> None:
        source = self._balance_source
        if (self._on_balance is None and self._on_balances_read is None) or source is None:
            return
        if self._balance_read is not None and not self._balance_read.done():
            self._read_again = True  # the read in flight may predate this change
            return
        self._balance_read = asyncio.get_running_loop().create_task(
            self._read_balances(source), name=f"{self.dialect.venue} balance read"
        )

    async def _read_balances(self, source: BalanceSource) -> None:
        while True:
            self._read_again = False
            started_ns = time.monotonic_ns()
            try:
                balances = await source()
            except ArbitrageEngineError as exc:
                log.warning("%s: reading balances after a balance push or a reconnect failed: %s",
                            self.dialect.venue, exc)
                if self._read_again:  # a change came meanwhile: read for it, or it waits for the periodic read
                    continue
                return
            if self._on_balances_read is not None:
                try:
                    self._on_balances_read(balances, started_ns)
                except Exception:
                    log.exception("%s: balances-read handler raised", self.dialect.venue)
            else:
                self._report_balances(balances.values())
            if not self._read_again:
                return
