"""Snapshot + diff order-book synchronisation, written once for every venue.

Per book: diffs that arrive while the book is out of sync are decoded and buffered; the
first buffered diff starts a REST snapshot fetch (unless the venue pushes full books); the
snapshot is applied, buffered diffs ending at or before its id are dropped as stale, and
the rest must continue it (``first_update_id <= id + 1 <= last_update_id``), all by
``OrderBook.apply_batch``'s sequence rule. A gap, a crossed book, a malformed frame or a
reconnect puts only the affected book(s) out of sync (the scanner ignores them) and
resyncs them; other books keep streaming. A frame whose book cannot be told (its symbol
unreadable), or a message the websocket dropped, may be a lost diff of any book: every book
of the stream resyncs. A diff lost while its book is out of sync empties the buffer, and a
snapshot requested before the loss is not taken: it is fetched again after the retry wait, so
a stream losing frames often still fetches at the backoff's pace. Nothing raised while
handling a frame escapes the frame callback.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from ssl import SSLContext
from urllib.parse import urlencode

import msgspec

from arb_core.book import (
    APPLIED,
    BookError,
    BookOutOfSyncError,
    CrossedBookError,
    DeltaBatch,
    OrderBook,
    SequenceGapError,
    StaleStreamError,
)
from arb_core.router import DIALECT_NONE, ROUTE_APPLIED, ROUTE_OTHER, BookRouter
from arb_core.wire.common import WireError, WireScale

from ..errors import ArbitrageEngineError, RateLimitError
from ..throttled_log import ThrottledWarnings
from ..types import ExchangeName
from .base import BookKey, BookSink, Frame, MarketDataDialect, WsPayload
from .models import FrameKind
from .rest import RestClient, RestRequest
from .ws import MessageHandler, WsSession, WsSettings

log = logging.getLogger(__name__)

SnapshotFetcher = Callable[[str], Awaitable[bytes]]
"""``venue_symbol -> REST snapshot body``; raises an ``ExchangeError`` child on failure."""

_BOOK_UPDATE = int(FrameKind.BOOK_UPDATE)
_PONG = int(FrameKind.PONG)
_ACK = int(FrameKind.ACK)
_ERROR = int(FrameKind.ERROR)
_DECODE_ERRORS = (WireError, ValueError, OverflowError)
# What a snapshot fetch is expected to meet; any other error is logged with its traceback.
_FETCH_ERRORS = (ArbitrageEngineError, OSError, asyncio.TimeoutError, *_DECODE_ERRORS)
_ROUTE_ERRORS = (BookError, *_DECODE_ERRORS)
_POOL_MAX = 64
_TOO_OLD_WARN_AFTER = 3  # snapshots in a row too old for the buffered diffs before a warning
_CROSSINGS_IN_A_ROW_NS = 60_000_000_000  # a crossing diff this soon after the last waits longer before its fetch

STREAM_RESYNC_REASONS = frozenset({"reconnect", "unroutable", "message_lost"})
"""Resync reasons that put every book of a stream out of sync at once: one event, however many books."""


class _Snapshot(enum.Enum):
    """What applying a snapshot came to."""

    TAKEN = enum.auto()  # applied (the book may have resynced on a buffered diff since)
    REFUSED = enum.auto()  # crossed, or a price level given twice: the book is resynced
    TOO_OLD = enum.auto()  # the buffered diffs do not continue it: kept for a newer one
    LOST_DIFF = enum.auto()  # requested before a diff lost since: not applied


class BookSpec(msgspec.Struct, frozen=True):
    """One book to keep: unified symbol, venue symbol, and the scale its wire levels decode with
    (for Gate spot a book scale finer than the order grid, see ``Instrument.wire_scale``)."""

    symbol: str
    venue_symbol: str
    scale: WireScale


class BookSyncSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Buffering and snapshot retry policy."""

    max_buffered: int = 2000  # diffs kept per book while its snapshot is pending; oldest dropped
    snapshot_retry_initial_s: float = 0.2
    snapshot_retry_max_s: float = 10.0


class BookSyncStats(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of one book."""

    symbol: str
    venue_symbol: str
    in_sync: bool
    last_update_id: int
    applied: int  # diffs applied
    stale: int  # diffs ignored because the book already had them
    snapshots: int  # snapshots applied (REST or full push)
    malformed: int  # frames that could not be decoded
    snapshot_failures: int  # REST snapshot fetches that failed (retried)
    buffered: int  # diffs waiting for a snapshot now
    resyncs: dict[str, int]  # by reason: gap, crossed, malformed, reconnect, snapshot_too_old...


def rest_snapshot_fetcher(client: RestClient, dialect: MarketDataDialect) -> SnapshotFetcher:
    """A ``SnapshotFetcher`` that sends the dialect's snapshot request through ``client``."""

    async def fetch(venue_symbol: str) -> bytes:
        spec = dialect.snapshot_request(venue_symbol)
        return await client.fetch(
            RestRequest(method="GET", path=spec.path, query=urlencode(spec.params), limits=spec.limits)
        )

    return fetch


class _Book:
    """Sync state of one book; ``applied``/``stale`` count the Python path only (the router counts its own)."""

    __slots__ = (
        "key", "spec", "scale", "book", "slot", "buffer", "fetch", "resyncs", "applied", "stale", "snapshots",
        "malformed", "snapshot_failures", "crossings", "crossed_ns", "rest_snapshot", "losses",
    )

    def __init__(self, exchange: ExchangeName, spec: BookSpec, slot: int) -> None:
        self.key = BookKey(exchange, spec.symbol)
        self.slot = slot
        self.spec = spec
        self.scale = spec.scale
        self.book = OrderBook(f"{exchange.value} {spec.symbol}")
        self.buffer: deque[tuple[DeltaBatch, int]] = deque()
        self.fetch: asyncio.Task[None] | None = None
        self.resyncs: Counter[str] = Counter()
        self.applied = 0
        self.stale = 0
        self.snapshots = 0
        self.malformed = 0
        self.snapshot_failures = 0
        self.crossings = 0  # crossing diffs in a row (each within _CROSSINGS_IN_A_ROW_NS of the last)
        self.crossed_ns = 0  # when the last one came (``clock``)
        # The last REST snapshot taken: the update id it left the book at and when it was requested
        # (``BookSync.rest_snapshot_requested_ns``).
        self.rest_snapshot: tuple[int, int] | None = None
        self.losses = 0  # diffs lost while out of sync: a snapshot requested before the last one is not taken


class BookSync:
    """Keeps the books of one market stream in sync and tells ``sink`` about every applied update.

    Wire it to a websocket with ``make_session`` (or pass ``on_message``, ``subscribe_frames``,
    ``on_disconnected`` and ``on_message_lost`` to a ``WsSession`` yourself). ``fetch_snapshot``
    is required unless the dialect's first push is a full book.

    The steady state (a diff for an in-sync book) runs in ``router``, one compiled call per
    frame, when the dialect names a compiled ``router_dialect``; every other frame takes the
    Python path. A compiled loop can drive ``router.route_c`` itself and pass the frames it
    returns ROUTE_OTHER for to ``on_message`` (routing them again changes nothing).
    """

    def __init__(
        self,
        exchange: ExchangeName,
        dialect: MarketDataDialect,
        specs: Sequence[BookSpec],
        sink: BookSink,
        *,
        fetch_snapshot: SnapshotFetcher | None = None,
        settings: BookSyncSettings | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.exchange = exchange
        self.venue = dialect.venue
        self._dialect = dialect
        self._full_push = dialect.snapshot_in_first_push
        if fetch_snapshot is None and not self._full_push:
            raise ValueError(f"{exchange.value}: the dialect needs REST snapshots but no fetch_snapshot was given")
        self._fetch_snapshot = fetch_snapshot
        self.settings = settings or BookSyncSettings()
        self._rng = rng or random.Random()
        self._clock = clock  # receive and request times of REST snapshots, warning times (a backtest's virtual clock)
        self._sink = sink
        self._on_update = sink.on_book_update
        self._on_batch_end = sink.on_batch_end
        self._classify = dialect.classify
        self._frame_symbol = dialect.frame_symbol
        self._decode = dialect.decode_update
        router_dialect: int = getattr(dialect, "router_dialect", DIALECT_NONE)
        self.router = BookRouter(router_dialect)
        self._route = None if router_dialect == DIALECT_NONE else self.router.route
        self._books: dict[bytes, _Book] = {}
        self._slots: list[_Book] = []
        for spec in specs:
            venue_symbol = spec.venue_symbol.encode()
            if venue_symbol in self._books:
                raise ValueError(f"{exchange.value}: venue symbol {spec.venue_symbol!r} given twice")
            state = _Book(exchange, spec, len(self._slots))
            self.router.add_book(venue_symbol, state.book, state.scale)
            self._books[venue_symbol] = state
            self._slots.append(state)
        self._by_symbol: dict[str, _Book] = {s.spec.symbol: s for s in self._slots}
        self.books: dict[str, OrderBook] = {s.spec.symbol: s.book for s in self._books.values()}
        self._batch = DeltaBatch(256)
        self._pool: list[DeltaBatch] = []
        self.batch_updated = False  # a book changed since the last batch end (a compiled replay sets it too)
        self._session: WsSession | None = None
        self._warnings = ThrottledWarnings(log, "occurrences")
        # A venue may answer every frame with an error: counted each time, warned about once a minute
        # for each thing it says.
        self._error_warnings = ThrottledWarnings(log, "venue error frames")
        self.acks = 0
        self.venue_errors = 0
        self.unroutable = 0  # malformed frames whose symbol could not be read
        self.unknown_symbol = 0
        self.other_frames = 0  # frames of no kind the dialect knows (a diff damaged in its channel, perhaps)

    # --- websocket wiring -----------------------------------------------------------------

    def subscribe_frames(self) -> Sequence[WsPayload]:
        """Frames subscribing every book (sent on each connect)."""
        return self._dialect.subscribe_frames([s.spec.venue_symbol for s in self._books.values()])

    def make_session(
        self,
        settings: WsSettings | None = None,
        *,
        url: str | None = None,
        ssl_context: SSLContext | None = None,
        on_message: MessageHandler | None = None,
        on_disconnected: Callable[[], None] | None = None,
    ) -> WsSession:
        """A ``WsSession`` feeding this synchroniser, with the dialect's heartbeat.

        ``on_message`` and ``on_disconnected`` replace ``self.on_message`` and
        ``self.on_disconnected`` as the session's handlers (ones that forward to them, such
        as a recorder's tap)."""
        d = self._dialect
        app_ping = d.ping_frame() is not None
        session = WsSession(
            d.venue,
            url or d.ws_url,
            on_message or self.on_message,
            connect_frames=self.subscribe_frames,
            ping_frame=d.ping_frame if app_ping else None,
            is_pong=d.is_pong if app_ping else None,
            on_disconnected=on_disconnected or self.on_disconnected,
            settings=settings,
            ssl_context=ssl_context,
            on_read_end=self.on_read_end,
            on_message_lost=self.on_message_lost,
        )
        self._session = session
        return session

    def on_message(self, payload: memoryview, binary: bool, last_in_buffer: bool, recv_ns: int) -> None:
        """Handle one websocket message (the ``WsSession`` message handler); never raises."""
        route = self._route
        if route is None:
            self._handle(payload, recv_ns)
        else:
            try:
                routed = route(payload, recv_ns)
            except _ROUTE_ERRORS as exc:
                self.on_route_error(exc, payload, recv_ns)
            else:
                if routed == ROUTE_APPLIED:
                    self.batch_updated = True
                    state = self._slots[self.router.last_slot]
                    try:
                        self._on_update(state.key)
                    except Exception:
                        log.exception("%s %s: book update consumer raised", self.venue, state.spec.symbol)
                elif routed == ROUTE_OTHER:
                    self._handle(payload, recv_ns)
        if last_in_buffer and self.batch_updated:
            self.on_read_end()

    def on_read_end(self) -> None:
        """End the batch of the socket read that ended (the ``WsSession`` read-end handler, for a read
        whose last frame was no message): the consumer's batch end, when a book changed in it."""
        if self.batch_updated:
            self.batch_updated = False
            try:
                self._on_batch_end()
            except Exception:
                log.exception("%s: batch-end consumer raised", self.venue)

    def on_route_error(self, exc: Exception, payload: Frame, recv_ns: int) -> None:
        """Handle an exception ``router`` raised for ``payload`` (its book is ``router.last_slot``) as the
        Python path would; for callers that drive ``router.route_c`` themselves."""
        slot = self.router.last_slot
        if slot < 0:
            # refused before any book was touched (an argument out of range): the Python path decides
            self._handle(payload, recv_ns)
        elif isinstance(exc, BookError):
            self._book_failed(self._slots[slot], exc)
        else:
            self._malformed(self._slots[slot], exc)

    def _handle(self, payload: Frame, recv_ns: int) -> None:
        """The full Python path of one message: replies, resyncs, buffering, full pushes."""
        try:
            kind = self._classify(payload)
            state = self._books.get(self._frame_symbol(payload)) if kind == _BOOK_UPDATE else None
        except _DECODE_ERRORS as exc:
            # Perhaps a diff (a frame cut short, a symbol of the wrong type): of a book it cannot name.
            self.unroutable += 1
            self._resync_stream("unroutable", f"frame not classifiable or without symbol: {exc}")
            return
        if state is not None:
            book = state.book
            try:
                if book.in_sync:
                    batch = self._batch
                    self._decode(payload, state.scale, batch)
                    if batch.is_snapshot:
                        self._apply_snapshot(state, batch, recv_ns)
                    elif book.apply_batch(batch, recv_ns) == APPLIED:
                        state.applied += 1
                        self.batch_updated = True
                        self._on_update(state.key)
                    else:
                        state.stale += 1
                else:
                    self._buffer(state, payload, recv_ns)
            except BookError as exc:
                self._book_failed(state, exc)
            except _DECODE_ERRORS as exc:
                self._malformed(state, exc)
            except Exception:
                # A sink bug must not kill the stream; the book itself is still consistent.
                log.exception("%s %s: book update consumer raised", self.venue, state.spec.symbol)
        elif kind == _BOOK_UPDATE:
            self.unknown_symbol += 1
            self._warn_throttled("unknown_symbol", f"update for an unsubscribed symbol: {bytes(payload[:200])!r}")
        elif kind == _ACK:
            self.acks += 1
        elif kind == _ERROR:
            self.venue_errors += 1
            self._error_warnings.warn(
                self._dialect.error_reason(payload), self._clock(), "%s: venue error frame: %r", self.venue,
                bytes(payload[:300]),
            )
        elif kind != _PONG:
            self.other_frames += 1
            self._warn_throttled("other", f"frame of no kind the stream reads, ignored: {bytes(payload[:200])!r}")

    def on_message_lost(self) -> None:
        """The websocket dropped a message undelivered (the ``WsSession`` message-lost handler): a diff
        of any book, perhaps."""
        self._resync_stream("message_lost", "the websocket dropped a message")

    def _resync_stream(self, reason: str, message: str) -> None:
        """A diff of an unknown book may be lost: every in-sync book resyncs, every other one loses its
        buffer and pending snapshot (``_lost_while_out_of_sync``; warned about once)."""
        resynced = 0
        for state in self._slots:
            if state.book.in_sync:
                self._resync(state, reason, None, True)
                resynced += 1
            else:
                self._lost_while_out_of_sync(state)
        self._warn_throttled(reason, f"{message} (books resynced: {resynced})")

    def on_disconnected(self) -> None:
        """The stream dropped: every book is out of sync until its resync completes."""
        for state in self._books.values():
            self._reset(state, "reconnect")

    async def close(self) -> None:
        """Stop pending snapshot fetches; books are left out of sync."""
        tasks = [s.fetch for s in self._books.values() if s.fetch is not None]
        for state in self._books.values():
            self._reset(state, None)
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass

    # --- inspection -----------------------------------------------------------------------

    def slot_of(self, symbol: str) -> int:
        """The ``router`` slot of the book of unified ``symbol``; KeyError when it is not kept here."""
        return self._by_symbol[symbol].slot

    def rest_snapshot_requested_ns(self, symbol: str) -> int | None:
        """When the REST snapshot ``symbol``'s book rests on was requested (``clock``; the latest receive
        time of the buffered diffs applied on top, where later): the venue may have composed it any time
        after, so it shows nothing known to have happened before. None once the stream has moved the
        book past it, or when the book came from the stream."""
        for state in self._books.values():
            if state.spec.symbol == symbol:
                taken = state.rest_snapshot
                return taken[1] if taken is not None and taken[0] == state.book.last_update_id else None
        return None

    def stats(self) -> dict[str, BookSyncStats]:
        """Per-book counters by unified symbol."""
        router = self.router
        return {
            s.spec.symbol: BookSyncStats(
                symbol=s.spec.symbol,
                venue_symbol=s.spec.venue_symbol,
                in_sync=s.book.in_sync,
                last_update_id=s.book.last_update_id,
                applied=s.applied + router.applied(s.slot),
                stale=s.stale + router.stale(s.slot),
                snapshots=s.snapshots,
                malformed=s.malformed,
                snapshot_failures=s.snapshot_failures,
                buffered=len(s.buffer),
                resyncs=dict(s.resyncs),
            )
            for s in self._books.values()
        }

    # --- out-of-sync path -----------------------------------------------------------------

    def _buffer(self, state: _Book, payload: Frame, recv_ns: int) -> None:
        batch = self._pool.pop() if self._pool else DeltaBatch(256)
        try:
            self._decode(payload, state.scale, batch)
        except BaseException:
            self._release(batch)
            raise
        if batch.is_snapshot:
            if self._apply_snapshot(state, batch, recv_ns) is _Snapshot.TOO_OLD:
                self._start_fetch(state)
            self._release(batch)
            return
        if self._full_push:
            self._release(batch)  # the resubscription's full push will replace the book
            return
        buffer = state.buffer
        buffer.append((batch, recv_ns))
        if len(buffer) > self.settings.max_buffered:
            self._release(buffer.popleft()[0])
        self._start_fetch(state)

    def _apply_snapshot(
        self, state: _Book, snapshot: DeltaBatch, recv_ns: int, requested_ns: int | None = None
    ) -> _Snapshot:
        """Bring the book in sync from ``snapshot`` and the diffs buffered since. TOO_OLD starts no
        fetch of a newer snapshot: the caller decides when. ``requested_ns``: when a REST snapshot was
        requested (``rest_snapshot_requested_ns``)."""
        if state.fetch is not None and state.fetch is not asyncio.current_task():
            state.fetch.cancel()
        state.fetch = None
        was_in_sync = state.book.in_sync
        try:
            state.book.apply_snapshot(snapshot, recv_ns)
        except CrossedBookError as exc:
            self._resync(state, "crossed_snapshot", exc, was_in_sync)
            return _Snapshot.REFUSED
        except ValueError as exc:  # a price level twice on a side
            self._resync(state, "invalid_snapshot", exc, was_in_sync)
            return _Snapshot.REFUSED
        state.snapshots += 1
        buffer = state.buffer
        book = state.book
        applied_any = False
        seen_ns = requested_ns  # the newest of the request and the buffered diffs applied on top
        while buffer:
            batch, batch_recv_ns = buffer[0]
            try:
                result = book.apply_batch(batch, batch_recv_ns)
            except SequenceGapError:
                # The buffered diffs are newer than the snapshot: keep them for a newer one.
                state.resyncs["gap" if applied_any else "snapshot_too_old"] += 1
                return _Snapshot.TOO_OLD
            except BookError as exc:
                self._resync(state, _resync_reason(exc), exc, False)
                return _Snapshot.TAKEN
            buffer.popleft()
            self._release(batch)
            if result == APPLIED:
                state.applied += 1
                applied_any = True
                if seen_ns is not None:
                    seen_ns = max(seen_ns, batch_recv_ns)
            else:
                state.stale += 1
        state.rest_snapshot = (book.last_update_id, seen_ns) if seen_ns is not None else None
        self.batch_updated = True
        if not was_in_sync:
            self._sink.on_book_state(state.key, True, "snapshot")
        self._on_update(state.key)
        return _Snapshot.TAKEN

    async def _fetch(self, state: _Book, wait: int | None = None) -> None:
        """Fetch and apply snapshots until one is taken; ``wait``: first wait the delay of that retry attempt."""
        fetch = self._fetch_snapshot
        if fetch is None:
            return
        if wait is not None:
            await self._backoff(wait, None)
        attempt = 0
        too_old = 0  # snapshots in a row too old for the buffered diffs
        while True:
            batch = self._pool.pop() if self._pool else DeltaBatch(256)
            requested_ns = self._clock()
            losses = state.losses
            try:
                body = await fetch(state.spec.venue_symbol)
                self._dialect.decode_snapshot(body, state.scale, batch)
            except Exception as exc:
                # Whatever it fails with (a bug, a transport's own exception type) is retried: ending
                # the task would leave the book out of sync until the next reconnect.
                self._release(batch)
                await self._retry_after(state, attempt, exc)
                attempt = min(attempt + 1, 64)
                continue
            state.fetch = None
            snapshot_id = batch.last_update_id
            try:
                if state.book.in_sync:
                    return
                if state.losses != losses:  # requested before a lost diff: may lack it
                    outcome = _Snapshot.LOST_DIFF
                else:
                    outcome = self._apply_snapshot(state, batch, self._clock(), requested_ns)
                if outcome is _Snapshot.TAKEN:
                    return
            except Exception:
                log.exception("%s %s: applying the snapshot failed", self.venue, state.spec.symbol)
                return
            finally:
                self._release(batch)
            # Refused by the book (and resynced), too old, or requested before a lost diff: fetched
            # again after the same wait as a failed fetch. At once, a refused one would be fetched again per diff (ten a second on
            # MEXC), a too-old one as fast as the venue answers while its REST depth lags the stream.
            too_old = too_old + 1 if outcome is _Snapshot.TOO_OLD else 0
            if too_old >= _TOO_OLD_WARN_AFTER:
                self._warn_throttled(
                    f"snapshot too old {state.spec.symbol}",
                    f"{too_old} snapshots of {state.spec.symbol} in a row too old for the buffered diffs"
                    f" (the last at update {snapshot_id}, the diffs from {state.buffer[0][0].first_update_id})",
                )
            state.fetch = asyncio.current_task()
            await self._retry_after(state, attempt, None)
            attempt = min(attempt + 1, 64)

    async def _retry_after(self, state: _Book, attempt: int, exc: Exception | None) -> None:
        """Count a failed snapshot (``exc``, or None: one not taken) and wait before
        the next fetch."""
        state.snapshot_failures += 1
        if exc is not None:
            self._warn_throttled(
                f"snapshot {state.spec.symbol} {type(exc).__name__}", f"snapshot of {state.spec.symbol} failed: {exc}",
                exc_info=not isinstance(exc, _FETCH_ERRORS),
            )
        await self._backoff(attempt, exc)

    async def _backoff(self, attempt: int, exc: Exception | None) -> None:
        """Wait the jittered delay of retry ``attempt`` (at least what a rate limit ``exc`` asks for)."""
        delay = min(self.settings.snapshot_retry_max_s, self.settings.snapshot_retry_initial_s * 2**attempt)
        if isinstance(exc, RateLimitError) and exc.retry_after_s is not None:
            delay = max(delay, exc.retry_after_s)
        # ``attempt`` is capped by the caller: past 2**1023 the float product overflows, which ended
        # the fetch for good (about 1.5-3 h of refusals at the default delays) and left the book out of sync.
        await asyncio.sleep(delay * self._rng.uniform(0.5, 1.0))

    def _start_fetch(self, state: _Book, wait: int | None = None) -> None:
        """Resubscribe (full pushes), or fetch a snapshot unless one is under way (``wait``: see ``_fetch``)."""
        if self._full_push:
            self._resubscribe(state)
        elif state.fetch is None or state.fetch.done():  # one that ended (cancelled) runs no more
            state.fetch = asyncio.get_running_loop().create_task(
                self._fetch(state, wait), name=f"{self.venue} snapshot {state.spec.venue_symbol}"
            )

    def _crossing_wait(self, state: _Book) -> int:
        """The retry attempt whose delay the fetch after a crossing diff waits: one more for each
        crossing in a row."""
        now = self._clock()
        if now - state.crossed_ns >= _CROSSINGS_IN_A_ROW_NS:
            state.crossings = 0
        state.crossed_ns = now
        state.crossings = min(state.crossings + 1, 64)
        return state.crossings - 1

    # --- failures -------------------------------------------------------------------------

    def _book_failed(self, state: _Book, exc: BookError) -> None:
        # apply_batch has already marked the book out of sync, so tell the sink explicitly.
        self._resync(state, _resync_reason(exc), exc, True)

    def _malformed(self, state: _Book, exc: Exception) -> None:
        state.malformed += 1
        self._warn_throttled(
            f"malformed {state.spec.symbol}", f"malformed frame for {state.spec.symbol} (#{state.malformed}): {exc}"
        )
        if state.book.in_sync:
            self._resync(state, "malformed", exc, True)
        else:
            self._lost_while_out_of_sync(state)

    def _resync(self, state: _Book, reason: str, exc: Exception | None, announce: bool) -> None:
        state.book.mark_out_of_sync()
        state.resyncs[reason] += 1
        while state.buffer:
            self._release(state.buffer.popleft()[0])
        if exc is not None:
            log.info("%s %s: resync (%s): %s", self.venue, state.spec.symbol, reason, exc)
        if announce:
            self._notify_state(state, reason)
        if self._full_push:
            self._resubscribe(state)
        elif reason == "crossed":
            # Fetched at once, as after a gap, a stream whose diffs keep crossing the book would be
            # asked for a snapshot per diff (ten a second on MEXC): it waits as a refused snapshot does.
            self._start_fetch(state, self._crossing_wait(state))
        # Else the next diff starts the snapshot fetch (it may be a full push instead).

    def _lost_while_out_of_sync(self, state: _Book) -> None:
        """A diff of an out-of-sync book was lost: a snapshot requested before the loss may not have it,
        and the diffs buffered before it could not show that. The buffer is emptied and a snapshot
        requested before now is not taken (``_fetch`` asks again after its retry wait, which goes on:
        a stream losing frames often must not fetch per diff)."""
        state.losses += 1
        while state.buffer:
            self._release(state.buffer.popleft()[0])

    def _reset(self, state: _Book, reason: str | None) -> None:
        """Out of sync with nothing pending; ``reason`` None (closing) is neither counted nor announced."""
        if state.fetch is not None:
            state.fetch.cancel()
            state.fetch = None
        was_in_sync = state.book.in_sync
        state.book.mark_out_of_sync()
        while state.buffer:
            self._release(state.buffer.popleft()[0])
        if reason is not None:
            state.resyncs[reason] += 1
            if was_in_sync:
                self._notify_state(state, reason)

    def _resubscribe(self, state: _Book) -> None:
        session = self._session
        if session is None or not session.connected:
            return  # the reconnect subscribes afresh
        symbols = [state.spec.venue_symbol]
        try:
            for frame in (*self._dialect.unsubscribe_frames(symbols), *self._dialect.subscribe_frames(symbols)):
                session.send(frame)
        except (ArbitrageEngineError, OSError) as exc:
            log.warning("%s %s: resubscribe failed: %s", self.venue, state.spec.symbol, exc)

    def _notify_state(self, state: _Book, reason: str) -> None:
        try:
            self._sink.on_book_state(state.key, False, reason)
        except Exception:
            log.exception("%s %s: book state consumer raised", self.venue, state.spec.symbol)

    def _release(self, batch: DeltaBatch) -> None:
        if len(self._pool) < _POOL_MAX:
            batch.clear()
            self._pool.append(batch)

    def _warn_throttled(self, what: str, message: str, *, exc_info: bool = False) -> None:
        """Warn about ``what`` about once a minute, at debug level between (its count then said);
        ``exc_info``: with the traceback of the exception being handled."""
        self._warnings.warn(
            what, self._clock(), "%s %s: %s", self.venue, self.exchange.value, message, exc_info=exc_info
        )


def _resync_reason(exc: BookError) -> str:
    """The ``resyncs`` counter a book error counts under."""
    if isinstance(exc, SequenceGapError):
        return "gap"
    if isinstance(exc, CrossedBookError):
        return "crossed"
    if isinstance(exc, StaleStreamError):
        return "stale_stream"
    if isinstance(exc, BookOutOfSyncError):
        return "out_of_sync"
    return "book_error"
