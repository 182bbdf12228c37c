"""Connectors written once: a venue binds its data to ``ExchangeConnector`` and gets both interfaces.

``ExchangeConnector`` implements ``PublicExchange`` (instruments, books, snapshots, clocks)
and ``PrivateExchange`` (balances, orders, positions, order and fill stream) over the shared
mechanism: ``RestClient`` for every REST call, ``BookSync`` + ``WsSession`` for the books.
A venue's ``connector.py`` subclasses it and declares a ``VenueBinding``: the market-data
dialect, the public endpoints, the ``RestVenue`` and the trading module. Nothing here knows
a venue's wire format.

Order outcomes are never guessed: a refusal raises ``OrderRejectedError`` with its
category; a timeout, a 5xx, a dropped connection or an unreadable 2xx after an order was
sent raises ``ExchangeError`` with category ``OUTCOME_UNKNOWN``, and only
``query_order(symbol, client_order_id=...)`` can tell what happened.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import ClassVar, Protocol, TypeVar

import msgspec

from arb_core.book import DeltaBatch, OrderBook
from arb_core.wire.common import WireError, WireScale

from ..errors import ArbitrageEngineError, ExchangeConnectionError, ExchangeError
from ..instruments import Instrument, InstrumentCatalog
from ..secrets import ApiCredentials
from ..types import ExchangeConfig, ExchangeName
from .base import BookKey, BookSink, FillHandler, MarketDataDialect, OrderHandler
from .book_sync import BookSpec, BookSync, BookSyncSettings, rest_snapshot_fetcher
from .errors import ErrorCategory
from .models import Balance, ConnectionHealth, OrderRequest, OrderState, OrderStatus, Position
from .rest import RestClient, RestRequest, RestSettings, RestVenue
from .ws import WsSession, WsSettings

log = logging.getLogger(__name__)

T = TypeVar("T")


class BookDialect(MarketDataDialect, Protocol):
    """A market-data dialect that also knows the fixed-point scale of each instrument's book."""

    def book_scale(self, instrument: Instrument) -> WireScale:
        """The decoders' scale of ``instrument``'s book (may be finer than its order grid)."""


class PublicEndpoints(msgspec.Struct, frozen=True, kw_only=True):
    """A venue's public REST calls besides depth snapshots: requests and response parsers."""

    instruments: RestRequest
    parse_instruments: Callable[[bytes], InstrumentCatalog]
    server_time: RestRequest
    parse_server_time: Callable[[bytes], int]  # body -> wall-clock ms
    ping: RestRequest


class Trading(Protocol):
    """A venue's signed trading requests and reply parsers, bound to one key and one instrument catalog.

    Each venue's ``connector.py`` adapts its ``trading.py`` to this shape. Builders return a
    ``RestRequest`` signed at call time; parsers take the body of a 2xx answer and raise
    ``ValueError`` (or an ``ExchangeError``) on a body they cannot read.
    """

    open_orders_need_symbol: bool  # the venue lists resting orders of one symbol at a time

    def place_order(self, order: OrderRequest) -> RestRequest:
        """The request submitting ``order``."""

    def parse_placed(self, body: bytes, order: OrderRequest) -> OrderState:
        """The order in the answer to ``place_order(order)``."""

    def cancel_order(self, symbol: str, order_id: str | None, client_order_id: str | None) -> RestRequest:
        """The request cancelling one order (exactly one id given)."""

    def query_order(self, symbol: str, order_id: str | None, client_order_id: str | None) -> RestRequest:
        """The request reading one order (exactly one id given)."""

    def parse_order(self, body: bytes) -> OrderState:
        """The order in a cancel or query answer."""

    def open_orders(self, symbol: str | None) -> RestRequest:
        """The request listing resting orders of ``symbol`` (of all symbols when None)."""

    def parse_open_orders(self, body: bytes) -> list[OrderState]:
        """The orders of an open-orders answer."""

    def balances(self) -> RestRequest:
        """The request reading the account's balances."""

    def parse_balances(self, body: bytes) -> dict[str, Balance]:
        """Balances by asset."""

    def positions(self) -> RestRequest | None:
        """The request reading open positions; None where the market has none (spot)."""

    def parse_positions(self, body: bytes) -> list[Position]:
        """The open positions of a positions answer."""


TradingFactory = Callable[[ApiCredentials, InstrumentCatalog], Trading]


class VenueBinding(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a connector needs to know about one market; data and small callables only."""

    exchange: ExchangeName
    dialect: Callable[[str | None], BookDialect]  # ws_url override -> dialect
    rest_venue: Callable[[str | None], RestVenue]  # base URL override -> RestVenue
    endpoints: PublicEndpoints
    trading: TradingFactory | None = None
    # Where ``trading`` is None: the error raised by every trading call (named after the action).
    trading_unavailable: Callable[[str], ArbitrageEngineError] | None = None


class ConnectorSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Timeouts and policies of one connector."""

    rest: RestSettings = RestSettings()
    ws: WsSettings = WsSettings()
    book_sync: BookSyncSettings = BookSyncSettings()
    poll_interval_s: float = 0.5  # private stream by REST polling

    @classmethod
    def from_exchange_config(cls, config: ExchangeConfig) -> ConnectorSettings:
        """Settings with the venue's configured REST timeout and websocket heartbeat."""
        return cls(rest=RestSettings.from_exchange_config(config), ws=WsSettings.from_exchange_config(config))


class _NullSink:
    """The sink of books nobody listens to (books are still readable through ``books()``)."""

    def on_book_update(self, key: BookKey) -> None:
        pass

    def on_batch_end(self) -> None:
        pass

    def on_book_state(self, key: BookKey, in_sync: bool, reason: str) -> None:
        pass


def _one_id(where: str, order_id: str | None, client_order_id: str | None) -> None:
    if (order_id is None) == (client_order_id is None):
        raise ValueError(
            f"{where}: give exactly one of order_id={order_id!r} and client_order_id={client_order_id!r}"
        )


class ExchangeConnector:
    """``PublicExchange`` and ``PrivateExchange`` of one market, over the shared mechanism.

    Subclasses set ``binding``. ``rest_url``/``ws_url`` override the venue's URLs (the
    simulated venues, a testnet); without ``credentials`` only public calls work.
    """

    binding: ClassVar[VenueBinding]

    def __init__(
        self,
        *,
        credentials: ApiCredentials | None = None,
        rest_url: str | None = None,
        ws_url: str | None = None,
        settings: ConnectorSettings | None = None,
    ) -> None:
        binding = self.binding
        self.settings = settings or ConnectorSettings()
        self.dialect = binding.dialect(ws_url)
        self.rest = RestClient(binding.rest_venue(rest_url), self.settings.rest)
        self._credentials = credentials
        self._trading: Trading | None = None
        self._trading_catalog: InstrumentCatalog | None = None
        self._catalog: InstrumentCatalog | None = None
        self._catalog_lock = asyncio.Lock()
        self._sync: BookSync | None = None
        self._session: WsSession | None = None
        self._scales: dict[str, WireScale] = {}
        self._poller: asyncio.Task[None] | None = None
        self._tracked: dict[str, str] = {}  # client order id -> symbol: orders the polled stream follows
        self._order_symbols: set[str] = set()

    @classmethod
    def from_config(
        cls,
        config: ExchangeConfig,
        credentials: ApiCredentials | None = None,
        *,
        rest_url: str | None = None,
        ws_url: str | None = None,
    ) -> ExchangeConnector:
        """A connector with ``config``'s timeouts and URL overrides (``futures_*`` on a futures market;
        explicit URLs win)."""
        futures = cls.binding.exchange.is_futures
        return cls(
            credentials=credentials,
            rest_url=rest_url or (config.futures_rest_url if futures else config.rest_url),
            ws_url=ws_url or (config.futures_ws_url if futures else config.ws_url),
            settings=ConnectorSettings.from_exchange_config(config),
        )

    @property
    def exchange(self) -> ExchangeName:
        """The market served."""
        return self.binding.exchange

    @property
    def venue(self) -> str:
        """The market's name in messages (``gateio_futures``)."""
        return self.binding.exchange.value

    def __repr__(self) -> str:
        keys = "with keys" if self._credentials is not None else "public only"
        return f"{type(self).__name__}(rest={self.rest.venue.base_url!r}, ws={self.dialect.ws_url!r}, {keys})"

    # --- public ---------------------------------------------------------------------------

    async def instruments(self) -> InstrumentCatalog:
        """Trading rules of every listed instrument, fetched once and cached (``reload_instruments`` refreshes)."""
        async with self._catalog_lock:
            if self._catalog is None:
                self._catalog = await self._fetch_instruments()
            return self._catalog

    async def reload_instruments(self) -> InstrumentCatalog:
        """Fetch the instruments again (fees and limits change)."""
        catalog = await self._fetch_instruments()
        self._catalog = catalog
        return catalog

    async def _fetch_instruments(self) -> InstrumentCatalog:
        endpoints = self.binding.endpoints
        body = await self.rest.fetch(endpoints.instruments)
        catalog = endpoints.parse_instruments(body)
        if catalog.exchange is not self.exchange:
            raise ExchangeError(self.venue, f"instrument parser returned a {catalog.exchange.value} catalog")
        return catalog

    async def instrument(self, symbol: str) -> Instrument:
        """The instrument of unified ``symbol``; raises InstrumentError saying why it is missing."""
        return (await self.instruments()).get(symbol)

    async def start_books(self, symbols: Sequence[str], sink: BookSink | None = None) -> None:
        """Subscribe the books of unified ``symbols`` and keep them in sync until ``stop_books``.

        Returns once the stream is connected (books become ``in_sync`` as snapshots land);
        ``sink`` is told about every applied update. Raises ``ExchangeConnectionError`` (and
        stops again) when no connection is made within twice the handshake timeout.
        """
        if self._sync is not None:
            raise ExchangeError(self.venue, "books already started; call stop_books() first")
        if not symbols:
            raise ValueError(f"{self.venue}: start_books needs at least one symbol")
        catalog = await self.instruments()
        specs = []
        for symbol in symbols:
            instrument = catalog.get(symbol)
            scale = self.dialect.book_scale(instrument)
            self._scales[symbol] = scale
            specs.append(BookSpec(symbol, instrument.venue_symbol, scale))
        sync = BookSync(
            self.exchange,
            self.dialect,
            specs,
            sink or _NullSink(),
            fetch_snapshot=rest_snapshot_fetcher(self.rest, self.dialect),
            settings=self.settings.book_sync,
        )
        session = sync.make_session(self.settings.ws)
        self._sync, self._session = sync, session
        session.start()
        timeout_s = self.settings.ws.handshake_timeout_s * 2
        try:
            await session.wait_connected(timeout_s)
        except asyncio.TimeoutError:
            await self.stop_books()
            raise ExchangeConnectionError(
                self.venue, f"market-data websocket {self.dialect.ws_url} not connected within {timeout_s} s"
            ) from None

    async def stop_books(self) -> None:
        """Close the market-data stream; books stay readable but out of sync."""
        session, sync = self._session, self._sync
        self._session = self._sync = None
        if session is not None:
            await session.close()
        if sync is not None:
            await sync.close()

    def books(self) -> Mapping[str, OrderBook]:
        """The live books by unified symbol, in their book scale (``book_scale``); check ``in_sync``."""
        return self._sync.books if self._sync is not None else {}

    def book_scale(self, symbol: str) -> WireScale:
        """The fixed-point scale the book of ``symbol`` is kept in (ticks and lots of that scale)."""
        try:
            return self._scales[symbol]
        except KeyError:
            raise ExchangeError(self.venue, f"no book of {symbol!r} was started or snapshotted") from None

    def book_sync(self) -> BookSync | None:
        """The synchroniser of the running books (counters per book), None when stopped."""
        return self._sync

    async def depth_snapshot(self, symbol: str) -> OrderBook:
        """A one-off REST depth snapshot of ``symbol`` as a fresh in-sync book (book scale)."""
        instrument = await self.instrument(symbol)
        scale = self._scales.setdefault(symbol, self.dialect.book_scale(instrument))
        body = await rest_snapshot_fetcher(self.rest, self.dialect)(instrument.venue_symbol)
        batch = DeltaBatch(256)
        try:
            self.dialect.decode_snapshot(body, scale, batch)
        except (WireError, ValueError, OverflowError) as exc:
            raise ExchangeError(self.venue, f"depth snapshot of {symbol}: {exc}") from exc
        book = OrderBook(f"{self.venue} {symbol} snapshot")
        book.apply_snapshot(batch, time.monotonic_ns())
        return book

    async def server_time(self) -> int:
        """The venue's clock in wall-clock ms."""
        endpoints = self.binding.endpoints
        body = await self.rest.fetch(endpoints.server_time)
        try:
            return endpoints.parse_server_time(body)
        except (msgspec.DecodeError, ValueError) as exc:
            raise ExchangeError(self.venue, f"server time: unreadable answer {body[:200]!r}") from exc

    async def ping(self) -> int:
        """REST round trip in ns."""
        started = time.monotonic_ns()
        await self.rest.fetch(self.binding.endpoints.ping)
        return time.monotonic_ns() - started

    def health(self) -> ConnectionHealth:
        """The market-data connection's health (not connected before ``start_books``)."""
        if self._session is not None:
            return self._session.health()
        return ConnectionHealth(
            venue=self.venue,
            url=self.dialect.ws_url,
            connected=False,
            connects=0,
            reconnects=0,
            messages=0,
            last_message_age_ns=None,
            errors={},
        )

    # --- private --------------------------------------------------------------------------

    @property
    def can_trade(self) -> bool:
        """Whether trading calls can be made (credentials given and the venue offers trading here)."""
        return self._credentials is not None and self.binding.trading is not None

    async def _trader(self, action: str) -> Trading:
        """The trading module bound to the current catalog; raises before anything is sent when unavailable."""
        binding = self.binding
        if binding.trading is None:
            if binding.trading_unavailable is not None:
                raise binding.trading_unavailable(action)
            raise ExchangeError(self.venue, f"{action}: this market offers no trading")
        if self._credentials is None:
            raise ExchangeError(
                self.venue,
                f"{action} needs API credentials; none were given for {self.exchange.venue}",
                category=ErrorCategory.AUTH_FAILED,
            )
        catalog = await self.instruments()
        if self._trading is None or self._trading_catalog is not catalog:
            self._trading = binding.trading(self._credentials, catalog)
            self._trading_catalog = catalog
        return self._trading

    async def balances(self) -> Mapping[str, Balance]:
        """Balances by asset."""
        trading = await self._trader("balances")
        body = await self.rest.fetch(trading.balances())
        return self._parsed("balances", trading.parse_balances, body, write=False)

    async def place_order(self, request: OrderRequest) -> OrderState:
        """Submit an order.

        Raises ``OrderRequestError`` for what the venue cannot express (nothing sent),
        ``OrderRejectedError`` with its category when the venue refuses, and ``ExchangeError``
        with category OUTCOME_UNKNOWN when the answer was lost: the order may exist, resolve
        it with ``query_order(symbol, client_order_id=...)``.
        """
        trading = await self._trader("place_order")
        signed = trading.place_order(request)
        # Tracked before sending: an order whose answer is lost is still polled.
        self._tracked[request.client_order_id] = request.symbol
        self._order_symbols.add(request.symbol)
        try:
            body = await self.rest.fetch(signed)
        except ExchangeError as exc:
            if exc.category != ErrorCategory.OUTCOME_UNKNOWN:
                self._tracked.pop(request.client_order_id, None)  # refused: nothing exists at the venue
                raise
            raise ExchangeError(
                self.venue,
                f"order {request.client_order_id!r} on {request.symbol}: outcome unknown ({exc}); resolve with "
                f"query_order({request.symbol!r}, client_order_id={request.client_order_id!r})",
                category=ErrorCategory.OUTCOME_UNKNOWN,
            ) from exc
        return self._parsed("place_order", lambda b: trading.parse_placed(b, request), body, write=True)

    async def cancel_order(
        self, symbol: str, *, order_id: str | None = None, client_order_id: str | None = None
    ) -> OrderState:
        """Cancel by venue id or client id (exactly one); returns the final state the venue reports."""
        _one_id(f"{self.venue} cancel_order {symbol}", order_id, client_order_id)
        trading = await self._trader("cancel_order")
        body = await self.rest.fetch(trading.cancel_order(symbol, order_id, client_order_id))
        return self._parsed("cancel_order", trading.parse_order, body, write=True)

    async def query_order(
        self, symbol: str, *, order_id: str | None = None, client_order_id: str | None = None
    ) -> OrderState:
        """The current state of an order, by venue id or client id (exactly one)."""
        _one_id(f"{self.venue} query_order {symbol}", order_id, client_order_id)
        trading = await self._trader("query_order")
        body = await self.rest.fetch(trading.query_order(symbol, order_id, client_order_id))
        return self._parsed("query_order", trading.parse_order, body, write=False)

    async def open_orders(self, symbol: str | None = None) -> Sequence[OrderState]:
        """Resting orders, of one symbol or all (where the venue lists one symbol at a time: of
        every symbol whose books were started or that this connector placed orders on)."""
        trading = await self._trader("open_orders")
        if symbol is None and trading.open_orders_need_symbol:
            symbols = dict.fromkeys([*self.books(), *self._order_symbols])
            lists = await asyncio.gather(*(self.open_orders(s) for s in symbols))
            return [order for orders in lists for order in orders]
        body = await self.rest.fetch(trading.open_orders(symbol))
        return self._parsed("open_orders", trading.parse_open_orders, body, write=False)

    async def positions(self) -> Sequence[Position]:
        """Open futures positions (empty on spot)."""
        trading = await self._trader("positions")
        request = trading.positions()
        if request is None:
            return []
        body = await self.rest.fetch(request)
        return self._parsed("positions", trading.parse_positions, body, write=False)

    def _parsed(self, action: str, parse: Callable[[bytes], T], body: bytes, *, write: bool) -> T:
        """Run a reply parser; an unreadable answer to a write leaves its outcome unknown."""
        failure: Exception
        try:
            return parse(body)
        except ExchangeError as exc:
            if not write or exc.category == ErrorCategory.OUTCOME_UNKNOWN:
                raise
            failure = exc
        except (ValueError, KeyError) as exc:
            failure = exc
        raise ExchangeError(
            self.venue,
            f"{action}: unreadable answer ({failure}): {body[:200]!r}",
            category=ErrorCategory.OUTCOME_UNKNOWN if write else None,
        ) from failure

    # --- private stream (REST polling) ----------------------------------------------------

    async def start_private_stream(self, on_order: OrderHandler, on_fill: FillHandler) -> None:
        """Stream order updates by REST polling: the venues' private websocket encodings are not built.

        Every order placed through this connector is queried by client id each
        ``settings.poll_interval_s`` until it is final; each change of status or filled
        quantity goes to ``on_order`` (cumulative ``filled_quantity``, ``average_price`` and
        ``fee``). ``on_fill`` is not called: per-trade fills (price, maker flag) need the
        private streams; read executions from the order updates.
        """
        await self._trader("start_private_stream")
        if self._poller is not None and not self._poller.done():
            raise ExchangeError(self.venue, "private stream already started")
        self._poller = asyncio.get_running_loop().create_task(self._poll(on_order), name=f"{self.venue} orders poll")

    async def stop_private_stream(self) -> None:
        """Stop polling."""
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            try:
                await poller
            except asyncio.CancelledError:
                if not poller.cancelled():
                    raise

    async def _poll(self, on_order: OrderHandler) -> None:
        reported: dict[str, tuple[OrderStatus, Decimal]] = {}
        while True:
            for client_id, symbol in list(self._tracked.items()):
                try:
                    state = await self.query_order(symbol, client_order_id=client_id)
                except asyncio.CancelledError:
                    raise
                except ArbitrageEngineError as exc:
                    # Unknown to the venue yet (in flight) or a transient failure: ask again next round.
                    log.debug("%s: polling order %r: %s", self.venue, client_id, exc)
                    continue
                seen = (state.status, state.filled_quantity)
                if reported.get(client_id) != seen:
                    reported[client_id] = seen
                    try:
                        on_order(state)
                    except Exception:
                        log.exception("%s: order handler raised on %r", self.venue, client_id)
                if state.is_final:
                    self._tracked.pop(client_id, None)
                    reported.pop(client_id, None)
            await asyncio.sleep(self.settings.poll_interval_s)

    # --- lifecycle ------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop streams and close the REST session."""
        await self.stop_private_stream()
        await self.stop_books()
        await self.rest.close()

