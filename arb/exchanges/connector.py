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
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from decimal import Decimal
from typing import ClassVar, NamedTuple, Protocol, TypeVar

import msgspec

from arb_core.book import CrossedBookError, DeltaBatch, OrderBook
from arb_core.wire.common import WireError, WireScale

from ..errors import ArbitrageEngineError, ExchangeConnectionError, ExchangeError, RateLimitError
from ..funding import FundingRate
from ..instruments import Instrument, InstrumentCatalog
from ..secrets import VENUE_ENV_PREFIX, ApiCredentials
from ..types import ExchangeConfig, ExchangeName
from .base import (
    BalanceHandler, BalancesReadHandler, BookKey, BookSink, DisconnectTap, FillHandler, MarketDataDialect, MarketDataTap,
    OrderHandler,
)
from .book_sync import BookSpec, BookSync, BookSyncSettings, rest_snapshot_fetcher
from .errors import ErrorCategory
from .models import (
    Balance,
    ConnectionHealth,
    FundingPayment,
    OrderRequest,
    OrderRequestError,
    OrderState,
    OrderStatus,
    Position,
)
from .private_stream import PrivateDialect, PrivateStream, PrivateStreamStats
from .rest import RestClient, RestRequest, RestSettings, RestVenue
from .ws import WsSession, WsSettings

log = logging.getLogger(__name__)

T = TypeVar("T")
_raw_list = msgspec.json.Decoder(list[msgspec.Raw])


class BookDialect(MarketDataDialect, Protocol):
    """A market-data dialect that also knows the fixed-point scale of each instrument's book."""

    def book_scale(self, instrument: Instrument) -> WireScale:
        """The decoders' scale of ``instrument``'s book (may be finer than its order grid)."""


class ListPaging(msgspec.Struct, frozen=True, kw_only=True):
    """How a venue pages a public JSON list by ``limit`` and ``offset``: every page is read, the first
    short one being the last, and their entries joined into one list, as an unpaged answer would be."""

    page_size: int  # the ``limit`` sent
    max_pages: int  # pages read before giving up with an error (a venue ignoring ``offset``)


class FundingEndpoint(msgspec.Struct, frozen=True, kw_only=True):
    """A perpetual market's funding-rate call: one answer for every contract, or one per contract."""

    request: Callable[[str | None], RestRequest]  # venue symbol (None: every contract) -> request
    parse: Callable[[bytes], list[FundingRate]]  # raises ValueError on an unreadable body
    per_symbol: bool = False
    paging: ListPaging | None = None  # the answer is a list paged so


class ApiSymbolsEndpoint(msgspec.Struct, frozen=True, kw_only=True):
    """A venue's list of the pairs open to API orders, where it lists more pairs than it trades by API."""

    request: RestRequest
    parse: Callable[[bytes], frozenset[str]]  # body -> venue symbols; raises InstrumentError when unreadable
    source: str  # the call, as named in the reason a pair is left out


class PublicEndpoints(msgspec.Struct, frozen=True, kw_only=True):
    """A venue's public REST calls besides depth snapshots: requests and response parsers."""

    instruments: RestRequest
    parse_instruments: Callable[[bytes], InstrumentCatalog]
    instruments_paging: ListPaging | None = None  # the instrument list is paged so
    server_time: RestRequest
    parse_server_time: Callable[[bytes], int]  # body -> wall-clock ms
    ping: RestRequest
    funding: FundingEndpoint | None = None  # perpetuals only
    api_symbols: ApiSymbolsEndpoint | None = None


class FinishedOrdersPage(NamedTuple):
    """One page of a market's finished orders (``Trading.finished_orders``)."""

    request: RestRequest
    most: int  # the most entries a page lists: a full page may leave older orders for the next
    # The page's orders, and how many entries it listed: an entry that is no order of the engine's
    # may be left out, and the page is still full.
    parse: Callable[[bytes], tuple[list[OrderState], int]]


class Trading(Protocol):
    """A venue's signed trading requests and reply parsers, bound to one key and one instrument catalog.

    Each venue's ``connector.py`` adapts its ``trading.py`` to this shape. Builders return a
    ``RestRequest`` signed at call time; parsers take the body of a 2xx answer and raise
    ``ValueError`` (or an ``ExchangeError``) on a body they cannot read.
    """

    open_orders_need_symbol: bool  # the venue lists resting orders of one symbol at a time

    def place_order(self, order: OrderRequest, expires_at_ms: int | None) -> RestRequest:
        """The request submitting ``order``, refused by the venue when received after ``expires_at_ms``
        (its clock; None: the venue's own window)."""

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

    def finished_orders(self, symbol: str, since_s: int, until_s: int | None, page: int) -> FinishedOrdersPage | None:
        """Where the venue finds a finished order by client id only for a while
        (``VenueBinding.client_id_lookup_s``) and lists them: page ``page`` (from 1) of the newest
        orders of ``symbol`` created from ``since_s`` to ``until_s`` (UNIX seconds in the venue's
        clock; None: now).
        Else None."""

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

    def funding_payments(self, since_ms: int, offset: int) -> RestRequest | None:
        """The request reading one page (from entry ``offset``) of the funding settled on the
        account's positions since ``since_ms``; None where the market settles none (spot)."""

    def parse_funding_payments(self, body: bytes) -> tuple[list[FundingPayment], int]:
        """The payments of a funding page, and the entries it held when it was full (the next page's
        offset moves by that much), else 0 (the last page)."""


class NoPositions:
    """The position and funding part of ``Trading`` for a market that has neither (spot)."""

    def positions(self) -> None:
        return None

    def parse_positions(self, body: bytes) -> list[Position]:
        return []

    def funding_payments(self, since_ms: int, offset: int) -> None:
        return None

    def parse_funding_payments(self, body: bytes) -> tuple[list[FundingPayment], int]:
        return [], 0


TradingFactory = Callable[[ApiCredentials, InstrumentCatalog, Callable[[], int]], Trading]
"""``(credentials, catalog, venue clock) -> Trading``; the venue clock gives the wall time in ms as
the venue keeps it (the local clock corrected by the last clock read), for the requests' timestamps."""


class OrderTransport(Protocol):
    """Orders over a venue's websocket trading API instead of REST (``order_transport = "ws"``).

    Each call answers the body the REST call would have returned (the same order object),
    so ``Trading``'s parsers read it; failures raise the same ``ExchangeError`` tree, with
    OUTCOME_UNKNOWN when a written request got no answer.
    """

    async def start(self, timeout_s: float) -> None:
        """Connect and authenticate; raises when the venue refuses."""

    async def close(self) -> None:
        """Close the connection."""

    @property
    def logged_in(self) -> bool:
        """Whether requests can go now (connected and authenticated)."""

    def use_catalog(self, catalog: InstrumentCatalog) -> None:
        """Build requests with ``catalog`` from now on (called before every request; cheap when unchanged)."""

    async def place_order(self, order: OrderRequest, expires_at_ms: int | None) -> bytes:
        """The placed order's body (``expires_at_ms`` as in ``Trading.place_order``)."""

    def write_order(self, order: OrderRequest, expires_at_ms: int | None) -> Awaitable[bytes] | None:
        """The placed order's body, the order written before returning; None (nothing written) when
        it cannot go at once (not logged in, no budget now)."""

    def rehearse_order(self, order: OrderRequest, expires_at_ms: int | None) -> None:
        """Encode the request ``write_order`` would write and drop it; nothing is sent or spent."""

    async def cancel_order(self, symbol: str, order_id: str | None, client_order_id: str | None) -> bytes:
        """The cancelled order's body."""

    async def query_order(self, symbol: str, order_id: str | None, client_order_id: str | None) -> bytes:
        """The order's body."""


OrderTransportFactory = Callable[
    [ApiCredentials, InstrumentCatalog, str, RestClient, WsSettings, float, Callable[[], int]], OrderTransport
]
"""``(credentials, catalog, market-data ws URL, REST client (its limiter), ws settings, timeout s, venue
clock in ms) -> transport``."""


class FeeSource(Protocol):
    """Where a venue tells an account's own fee rates (its tier) rather than the listed defaults."""

    per_symbol: bool  # one request per symbol (MEXC tradeFee) rather than one per account (Gate)

    def fee_request(self, instrument: Instrument | None) -> RestRequest:
        """The signed request of the rates of ``instrument`` (None where ``per_symbol`` is False)."""

    def parse_fees(self, body: bytes) -> tuple[Decimal, Decimal]:
        """``(taker, maker)`` fractions of an answer."""


FeeSourceFactory = Callable[[ApiCredentials, Callable[[], int]], FeeSource]
"""``(credentials, venue clock in ms) -> source``: its requests are signed by the venue's clock."""
MAX_FUNDING_PAGES = 50  # pages of settled funding one read follows before giving up with an error
MAX_FINISHED_ORDER_PAGES = 10  # pages of finished orders a client id is looked for in before giving up
ORDER_TRANSPORTS = ("rest", "ws")
DEFAULT_ORDER_TRANSPORT = "ws"
"""Measured by ``benchmarks/bench_order_transport.py``: Gate's WS API answers sooner than REST."""
DEFAULT_ORDER_DEADLINE_MS = 5000
MAX_ORDER_DEADLINE_MS = 60_000  # MEXC's largest recvWindow
# How far a measured clock skew may be off when an order's deadline is stamped by it: half the
# server-time call's round trip (at most MAX_CLOCK_READ_RTT_MS), the venue's rounding, and drift
# until the next read.
CLOCK_READ_ERROR_MS = 1000
MAX_CLOCK_READ_RTT_MS = 1000
CLOCK_READ_ATTEMPTS = 3
PrivateStreamFactory = Callable[[ApiCredentials, InstrumentCatalog, str, Callable[[], int]], PrivateDialect]
"""``(credentials, catalog, market-data ws URL, venue clock in ms) -> dialect`` of a venue's private websocket."""


def clock_distance(skew_ms: float) -> str:
    """"the local clock is N ms behind (or ahead of) the venue's", for a clock ``skew_ms`` behind it."""
    return f"the local clock is {abs(skew_ms):.0f} ms {'behind' if skew_ms > 0 else 'ahead of'} the venue's"


class ClockWindow(msgspec.Struct, frozen=True, kw_only=True):
    """How far the local clock may run from the venue's before the venue refuses signed requests."""

    ahead_ms: int  # refused at this much ahead or more
    behind_ms: int  # refused beyond this much behind (the request's own trip counts against it)

    def refusal(self, skew_ms: float) -> str | None:
        """Why signed requests are refused with the local clock ``skew_ms`` behind the venue's
        (negative: ahead of it); None when they are taken."""
        if -skew_ms >= self.ahead_ms:
            return f"{clock_distance(skew_ms)}, which refuses signed requests {self.ahead_ms} ms ahead or more"
        if skew_ms > self.behind_ms:
            return f"{clock_distance(skew_ms)}, which refuses signed requests more than {self.behind_ms} ms behind"
        return None

    def near_edge(self, skew_ms: float) -> bool:
        """Whether ``skew_ms`` is past half the window on its side: taken now, refused after a little drift or a slow trip."""
        return -skew_ms >= self.ahead_ms / 2 or skew_ms > self.behind_ms / 2


class VenueBinding(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a connector needs to know about one market; data and small callables only."""

    exchange: ExchangeName
    dialect: Callable[[str | None], BookDialect]  # ws_url override -> dialect
    rest_venue: Callable[[str | None], RestVenue]  # base URL override -> RestVenue
    endpoints: PublicEndpoints
    trading: TradingFactory | None = None
    # Where ``trading`` is None: the error raised by every trading call (named after the action).
    trading_unavailable: Callable[[str], ArbitrageEngineError] | None = None
    # Of a balances answer: why it says the account may not trade, else None. None: the venue's
    # answer does not say.
    trading_refusal: Callable[[bytes], str | None] | None = None
    # The private websocket of orders and fills; None: orders are followed by REST polling.
    private_stream: PrivateStreamFactory | None = None
    # The websocket trading API, used when ``ConnectorSettings.order_transport == "ws"``.
    ws_orders: OrderTransportFactory | None = None
    # The account's fee tier; None: the instruments' listed fees stand.
    fees: FeeSourceFactory | None = None
    # The client-side budgets one order placement spends, on REST and the websocket API alike.
    order_limits: tuple[tuple[str, int], ...] = ()
    # How far the local clock may be from the venue's for signed requests; None: not known.
    clock_window: ClockWindow | None = None
    # How long after an order ends the venue still finds it by client id (s); None: as long as by its id.
    client_id_lookup_s: int | None = None


class ConnectorSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Timeouts and policies of one connector."""

    rest: RestSettings = RestSettings()
    ws: WsSettings = WsSettings()
    book_sync: BookSyncSettings = BookSyncSettings()
    poll_interval_s: float = 0.5  # private stream by REST polling
    # Where the venue has a websocket trading API (Gate.io): "ws" sends orders, cancels and
    # status reads over it, "rest" over REST. Other venues always use REST.
    order_transport: str = DEFAULT_ORDER_TRANSPORT
    order_timeout_s: float | None = None  # a websocket request's answer; defaults to rest.timeout_s
    order_deadline_ms: int = DEFAULT_ORDER_DEADLINE_MS  # the venue refuses an order it receives later

    def __post_init__(self) -> None:
        if self.order_transport not in ORDER_TRANSPORTS:
            raise ValueError(f"ConnectorSettings.order_transport={self.order_transport!r} is not one of {ORDER_TRANSPORTS}")
        if self.order_timeout_s is not None and self.order_timeout_s <= 0:
            raise ValueError(f"ConnectorSettings.order_timeout_s={self.order_timeout_s} must be > 0")
        if not 0 < self.order_deadline_ms <= MAX_ORDER_DEADLINE_MS:
            raise ValueError(f"ConnectorSettings.order_deadline_ms={self.order_deadline_ms} outside 1..{MAX_ORDER_DEADLINE_MS}")

    @classmethod
    def from_exchange_config(cls, config: ExchangeConfig) -> ConnectorSettings:
        """Settings with the venue's configured REST timeout, websocket heartbeat and order transport."""
        return cls(
            rest=RestSettings.from_exchange_config(config),
            ws=WsSettings.from_exchange_config(config),
            order_transport=config.order_transport or DEFAULT_ORDER_TRANSPORT,
            order_deadline_ms=config.order_deadline_ms,
        )


class _NullSink:
    """The sink of books nobody listens to (books are still readable through ``books()``)."""

    def on_book_update(self, key: BookKey) -> None:
        pass

    def on_batch_end(self) -> None:
        pass

    def on_book_state(self, key: BookKey, in_sync: bool, reason: str) -> None:
        pass


def _unreported(state: OrderState) -> None:
    """The order handler of a stream whose order states nobody asked for."""


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
        # The venue's answer to the last instrument list read (``instrument_list``), as it gave it.
        self.last_instrument_list: bytes | None = None
        self._catalog_lock = asyncio.Lock()
        self._sync: BookSync | None = None
        self._session: WsSession | None = None
        self._stopped_health: ConnectionHealth | None = None  # final counts of the last stopped stream
        self._scales: dict[str, WireScale] = {}
        self._poller: asyncio.Task[None] | None = None
        self._private: PrivateStream | None = None
        self._tracked: dict[str, str] = {}  # client order id -> symbol: orders the polled stream follows
        self._order_symbols: set[str] = set()
        self._orders_ws: OrderTransport | None = None
        self._orders_ws_lock = asyncio.Lock()
        self._closes = 0  # ``close`` calls: a transport whose start spans one is closed, not kept
        self.clock_skew: float | None = None  # ms, the last ``clock_skew_ms`` read
        # ms, how far the venue's clock was ahead of the local monotonic one (``time.monotonic_ns``) at
        # that read: a venue's stamp placed on a clock no step of the wall clock moves.
        self.venue_ahead_of_monotonic_ms: float | None = None
        # Why the last balances answer said the account may not trade; None: it did not say so.
        self.trading_refused: str | None = None

    @property
    def fees_from_account(self) -> bool:
        """Whether the cached catalog's fees are the account's (else the listed defaults)."""
        return self._catalog is not None and self._catalog.fees_from_account

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

    @property
    def key_variable(self) -> str:
        """The environment variable of the API key its signed calls carry, for messages: the one it
        was read from (``MEXC_API_KEY_ENCRYPTED``), else the venue's plain one."""
        variable = self._credentials.api_key_variable if self._credentials is not None else None
        venue = self.binding.exchange.venue
        return variable or f"{VENUE_ENV_PREFIX.get(venue, venue.upper())}_API_KEY"

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

    def use_instrument(self, instrument: Instrument) -> InstrumentCatalog:
        """Cache ``instrument`` in place of its symbol's (the account's fee rate changed) and return
        the catalog cached now; orders and paper fills go by it from the next one."""
        catalog = self._catalog
        if catalog is None:
            raise ExchangeError(self.venue, f"use_instrument {instrument.symbol}: no catalog was read yet")
        return self._cache(catalog.replaced(instrument))

    def keep_closing_only(self, symbols: Sequence[str]) -> InstrumentCatalog:
        """List again in the cached catalog those of ``symbols`` the venue left out as taking only
        orders that reduce a position (a contract in delisting), by the rules it still gives them
        (``InstrumentCatalog.with_closing_only``): positions there can still be closed. Returns the
        catalog cached now."""
        catalog = self._catalog
        if catalog is None:
            raise ExchangeError(self.venue, f"keep_closing_only {', '.join(symbols)}: no catalog was read yet")
        return self._cache(catalog.with_closing_only(symbols))

    def _cache(self, catalog: InstrumentCatalog) -> InstrumentCatalog:
        """Cache ``catalog``; orders and paper fills go by it from the next one."""
        self._catalog = catalog
        factory, credentials = self.binding.trading, self._credentials
        if self._trading is not None and factory is not None and credentials is not None:
            self._bind_trading(factory, credentials, catalog)  # ready to write at once, as before
        return catalog

    async def read_instruments(self, symbols: Sequence[str] = ()) -> InstrumentCatalog:
        """Fetch the instruments now, as the venue lists them, leaving the cached catalog as it is.

        With the account's fee rates where the venue gives them, as ``instruments()`` has them:
        per account, and for the listed ones of ``symbols`` where the venue answers per symbol.
        ``fees_from_account`` says whether that read succeeded.
        """
        catalog = await self._fetch_instruments()
        source = self._fee_source()
        if source is not None and source.per_symbol:
            chosen = [catalog.get(s) for s in symbols if s in catalog]
            if chosen:
                catalog = await self._account_fees(catalog, source, chosen)
        return catalog

    async def instrument_list(self) -> bytes:
        """The venue's instrument list as it answers it now; every page of a paged one, joined.
        Kept as ``last_instrument_list``."""
        endpoints = self.binding.endpoints
        body = await self._fetch_list(endpoints.instruments, endpoints.instruments_paging)
        self.last_instrument_list = body
        return body

    async def _fetch_list(self, request: RestRequest, paging: ListPaging | None) -> bytes:
        """The answer to public ``request``; where the venue pages it, every page's entries in one JSON list."""
        if paging is None:
            return await self.rest.fetch(request)
        entries: list[msgspec.Raw] = []
        where = f"GET {request.path}"
        for page in range(paging.max_pages):
            offset = page * paging.page_size
            query = f"limit={paging.page_size}&offset={offset}"
            body = await self.rest.fetch(
                msgspec.structs.replace(request, query=f"{request.query}&{query}" if request.query else query)
            )
            try:
                listed = _raw_list.decode(body)
            except msgspec.DecodeError as exc:
                raise ExchangeError(
                    self.venue, f"{where}: the page at offset {offset} is not a list ({exc}): {body[:200]!r}"
                ) from exc
            entries.extend(listed)
            if len(listed) < paging.page_size:
                return b"[" + b",".join(entries) + b"]"
        raise ExchangeError(
            self.venue, f"{where}: still more after {paging.max_pages} pages of {paging.page_size} "
            "(the venue may be ignoring the offset)",
        )

    async def _fetch_instruments(self) -> InstrumentCatalog:
        endpoints = self.binding.endpoints
        body = await self.instrument_list()
        catalog = endpoints.parse_instruments(body)
        if catalog.exchange is not self.exchange:
            raise ExchangeError(self.venue, f"instrument parser returned a {catalog.exchange.value} catalog")
        api_symbols = endpoints.api_symbols
        if api_symbols is not None:
            # Listed pairs the venue refuses API orders on are left out, as untradable as a halted one.
            tradable = api_symbols.parse(await self.rest.fetch(api_symbols.request))
            catalog = catalog.limited_to(tradable, f"not open to API orders (not in {api_symbols.source})")
        source = self._fee_source()
        if source is not None and not source.per_symbol:
            catalog = await self._account_fees(catalog, source, list(catalog))
        return catalog

    def _fee_source(self) -> FeeSource | None:
        factory = self.binding.fees
        return None if factory is None or self._credentials is None else factory(self._credentials, self._venue_clock_ms)

    async def load_account_fees(self, symbols: Sequence[str] | None = None) -> InstrumentCatalog:
        """Give the instruments of ``symbols`` (all when None) the account's own fee rates.

        Done by ``instruments()`` for venues answering per account (Gate ``/spot/fee``) and by
        ``start_books`` for those answering per symbol (MEXC ``tradeFee``). Without credentials,
        or where the venue's answer fails (logged), the listed fees stay: the documented defaults.
        """
        catalog = await self.instruments()
        source = self._fee_source()
        if source is None:
            return catalog
        chosen = list(catalog) if symbols is None else [catalog.get(s) for s in symbols]
        async with self._catalog_lock:
            self._catalog = await self._account_fees(catalog, source, chosen)
            return self._catalog

    async def _account_fees(
        self, catalog: InstrumentCatalog, source: FeeSource, chosen: Sequence[Instrument]
    ) -> InstrumentCatalog:
        targets: list[Instrument | None] = list(chosen) if source.per_symbol else [None]
        try:
            bodies = await asyncio.gather(*(self.rest.fetch(source.fee_request(i)) for i in targets))
            rates = [source.parse_fees(body) for body in bodies]
        except (ArbitrageEngineError, ValueError, msgspec.DecodeError) as exc:
            log.warning("%s: account fees unavailable, keeping the listed fees: %s", self.venue, exc)
            return catalog
        by_symbol = {i.symbol: r for i, r in zip(chosen, rates)} if source.per_symbol else {i.symbol: rates[0] for i in chosen}
        instruments = [
            msgspec.structs.replace(i, taker_fee=by_symbol[i.symbol][0], maker_fee=by_symbol[i.symbol][1])
            if i.symbol in by_symbol
            else i
            for i in catalog
        ]
        return InstrumentCatalog(catalog.exchange, instruments, catalog.skipped, fees_from_account=True)

    async def instrument(self, symbol: str) -> Instrument:
        """The instrument of unified ``symbol``; raises InstrumentError saying why it is missing."""
        return (await self.instruments()).get(symbol)

    async def start_books(
        self, symbols: Sequence[str], sink: BookSink | None = None, *, tap: MarketDataTap | None = None
    ) -> None:
        """Subscribe the books of unified ``symbols`` and keep them in sync until ``stop_books``.

        Returns once the stream is connected (books become ``in_sync`` as snapshots land);
        ``sink`` is told about every applied update; ``tap`` (a recorder) sees every raw
        message and REST snapshot first. Raises ``ExchangeConnectionError`` (and stops
        again) when no connection is made within twice the handshake timeout.
        """
        if self._sync is not None:
            raise ExchangeError(self.venue, "books already started; call stop_books() first")
        if not symbols:
            raise ValueError(f"{self.venue}: start_books needs at least one symbol")
        catalog = await self.instruments()
        source = self._fee_source()
        if source is not None and source.per_symbol:
            catalog = await self.load_account_fees(symbols)
        specs = []
        for symbol in symbols:
            instrument = catalog.get(symbol)
            scale = self.dialect.book_scale(instrument)
            self._scales[symbol] = scale
            specs.append(BookSpec(symbol, instrument.venue_symbol, scale))
        fetch = rest_snapshot_fetcher(self.rest, self.dialect)
        if tap is not None:
            fetch = tap.wrap_snapshots(self.exchange, fetch)
        sync = BookSync(
            self.exchange,
            self.dialect,
            specs,
            sink or _NullSink(),
            fetch_snapshot=fetch,
            settings=self.settings.book_sync,
        )
        # A subscription the venue would refuse (too many symbols on one connection) is refused
        # here, with its reason, rather than on every connect while start-up goes on.
        sync.subscribe_frames()
        tapped = tap.wrap_disconnects(self.exchange, sync.on_disconnected) if isinstance(tap, DisconnectTap) else None

        def on_disconnected() -> None:
            # stop_books() lets go of the books before it closes their stream: that close is no drop.
            (tapped if tapped is not None and self._sync is sync else sync.on_disconnected)()

        session = sync.make_session(
            self.settings.ws,
            on_message=None if tap is None else tap.wrap_messages(self.exchange, self.dialect, sync.on_message),
            on_disconnected=None if tapped is None else on_disconnected,
        )
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
            self._stopped_health = session.health()
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

    def stream_heard_ns(self, symbol: str) -> int:
        """When the market-data stream carrying ``symbol``'s book last received a frame of any kind, a
        pong too (``time.monotonic_ns``; 0: none yet, or the books are stopped)."""
        session = self._session
        return session.last_frame_ns if session is not None else 0

    def ping_stream(self, symbol: str) -> None:
        """Ping the market-data stream carrying ``symbol``'s book now: its pong moves ``stream_heard_ns``
        on a connection that is alive however quiet its books are."""
        if self._session is not None:
            self._session.ping()

    def book_sync(self) -> BookSync | None:
        """The synchroniser of the running books (counters per book), None when stopped."""
        return self._sync

    async def depth_snapshot(self, symbol: str) -> OrderBook:
        """A one-off REST depth snapshot of ``symbol`` as a fresh in-sync book (book scale)."""
        instrument = await self.instrument(symbol)
        scale = self._scales.setdefault(symbol, self.dialect.book_scale(instrument))
        body = await rest_snapshot_fetcher(self.rest, self.dialect)(instrument.venue_symbol)
        batch = DeltaBatch(256)
        book = OrderBook(f"{self.venue} {symbol} snapshot")
        try:
            self.dialect.decode_snapshot(body, scale, batch)
            book.apply_snapshot(batch, time.monotonic_ns())
        except (WireError, ValueError, OverflowError, CrossedBookError) as exc:
            raise ExchangeError(self.venue, f"depth snapshot of {symbol}: {exc}") from exc
        return book

    async def server_time(self) -> int:
        """The venue's clock in wall-clock ms."""
        endpoints = self.binding.endpoints
        body = await self.rest.fetch(endpoints.server_time)
        try:
            return endpoints.parse_server_time(body)
        except (msgspec.DecodeError, ValueError) as exc:
            raise ExchangeError(self.venue, f"server time: unreadable answer {body[:200]!r}") from exc

    async def clock_skew_ms(self) -> float:
        """How far the local wall clock is behind the venue's, in ms (negative: ahead), taking the
        venue's time at the midpoint of one server-time call; kept as ``clock_skew``.

        A call whose round trip (budget wait and retries included) exceeds ``MAX_CLOCK_READ_RTT_MS``
        could put the midpoint too far off for ``CLOCK_READ_ERROR_MS``: it is made again, up to
        ``CLOCK_READ_ATTEMPTS`` times, then an ``ExchangeError`` leaves ``clock_skew`` as it was."""
        round_trips = []
        for _ in range(CLOCK_READ_ATTEMPTS):
            # The round trip on the monotonic clock: a wall clock stepped during the call would
            # misstate it (a negative one passing the bound). The midpoint is placed back from the
            # wall clock at the answer, which the venue's time is then reckoned from.
            sent_ns = time.monotonic_ns()
            server_ms = await self.server_time()
            rtt_ns = time.monotonic_ns() - sent_ns
            received_wall_ns = time.time_ns()
            rtt_ms = rtt_ns / 1e6
            if rtt_ms <= MAX_CLOCK_READ_RTT_MS:
                self.clock_skew = skew = server_ms - (received_wall_ns - rtt_ns / 2) / 1e6
                self.venue_ahead_of_monotonic_ms = server_ms - (sent_ns + rtt_ns / 2) / 1e6
                self.rest.venue_clock_ahead_ms = skew
                return skew
            round_trips.append(f"{rtt_ms:.0f}")
        raise ExchangeError(
            self.venue, f"clock not read: server-time round trips of {', '.join(round_trips)} ms, over "
            f"the {MAX_CLOCK_READ_RTT_MS} ms that keep the reading within {CLOCK_READ_ERROR_MS} ms",
        )

    async def funding_rates(self, symbols: Sequence[str]) -> list[FundingRate]:
        """The current funding rates of ``symbols`` (unified perpetual symbols) that the venue reports."""
        endpoint = self.binding.endpoints.funding
        if endpoint is None:
            raise ExchangeError(self.venue, "this market has no funding rates")
        catalog = await self.instruments()
        wanted = {catalog.get(symbol).venue_symbol for symbol in symbols}
        requests = [endpoint.request(v) for v in sorted(wanted)] if endpoint.per_symbol else [endpoint.request(None)]
        rates: list[FundingRate] = []
        for request in requests:
            body = await self._fetch_list(request, endpoint.paging)
            try:
                rates.extend(endpoint.parse(body))
            except (msgspec.DecodeError, ValueError) as exc:
                raise ExchangeError(self.venue, f"funding rates: unreadable answer ({exc}): {body[:200]!r}") from exc
        return [rate for rate in rates if rate.symbol in symbols]

    async def ping(self) -> int:
        """REST round trip in ns."""
        started = time.monotonic_ns()
        await self.rest.fetch(self.binding.endpoints.ping)
        return time.monotonic_ns() - started

    def health(self) -> ConnectionHealth:
        """The market-data connection's health (not connected before ``start_books``; after
        ``stop_books``, the stopped stream's final counts)."""
        if self._session is not None:
            return self._session.health()
        if self._stopped_health is not None:
            return self._stopped_health
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

    def order_wait_s(self, symbol: str, orders: int = 1) -> float:
        """Seconds until the order budget of ``symbol`` admits ``orders`` more orders (0: they can be
        sent now); spends nothing. A budget the venue keeps per market is ``symbol``'s own.

        A two-leg trade checks both venues before sending either leg: a leg that queued for
        its budget would reach the venue that much later than the other, at a stale price.
        """
        limits = self.order_limits(symbol)
        if not limits:
            return 0.0
        if orders != 1:
            limits = tuple((limit_id, weight * orders) for limit_id, weight in limits)
        return self.rest.limiter.wait_s(limits)

    async def spend_order_budget(self, symbol: str) -> None:
        """Wait until the order budget of ``symbol`` admits one order, then spend it, as sending one
        does: for orders that are filled here rather than sent (paper trading, backtests)."""
        limits = self.order_limits(symbol)
        if limits:
            await self.rest.limiter.acquire(limits)

    def order_limits(self, symbol: str) -> tuple[tuple[str, int], ...]:
        """The budgets one order on ``symbol`` spends, ``(limit id, weight)`` each."""
        return self.rest.limiter.for_market(self.binding.order_limits, symbol)

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
            return self._bind_trading(binding.trading, self._credentials, catalog)
        return self._trading

    def _bind_trading(self, factory: TradingFactory, credentials: ApiCredentials, catalog: InstrumentCatalog) -> Trading:
        """The trading module of ``catalog``, kept for the orders to come."""
        self._trading = trading = factory(credentials, catalog, self._venue_clock_ms)
        self._trading_catalog = catalog
        return trading

    async def _order_transport(self) -> OrderTransport | None:
        """The logged-in websocket trading API when it is the chosen transport (started on first use), else None."""
        factory = self.binding.ws_orders
        if factory is None or self.settings.order_transport != "ws" or self._credentials is None:
            return None
        catalog = await self.instruments()
        async with self._orders_ws_lock:
            transport = self._orders_ws
            if transport is None:
                timeout_s = self.settings.order_timeout_s or self.settings.rest.timeout_s
                transport = factory(
                    self._credentials, catalog, self.dialect.ws_url, self.rest, self.settings.ws, timeout_s,
                    self._venue_clock_ms,
                )
                closes = self._closes
                await transport.start(self.settings.ws.handshake_timeout_s * 2)
                if self._closes != closes:
                    # The connector closed meanwhile: kept, this connection would outlive it, nothing
                    # closing it, logging in again after every drop.
                    await transport.close()
                    raise ExchangeConnectionError(
                        self.venue, "the connector closed while the websocket order API started; not sent",
                        category=ErrorCategory.NOT_SENT,
                    )
                self._orders_ws = transport
            transport.use_catalog(catalog)
            return transport

    async def balances(self) -> Mapping[str, Balance]:
        """Balances by asset; ``trading_refused`` takes what the answer says of the account trading."""
        trading = await self._trader("balances")
        body = await self.rest.fetch(trading.balances())
        balances = self._parsed("balances", trading.parse_balances, body, write=False)
        refusal = self.binding.trading_refusal
        self.trading_refused = None if refusal is None else self._parsed("balances", refusal, body, write=False)
        return balances

    async def place_order(self, request: OrderRequest) -> OrderState:
        """Submit an order.

        Raises ``OrderRequestError`` for what the venue cannot express (nothing sent),
        ``OrderRejectedError`` with its category when the venue refuses, and ``ExchangeError``
        with category OUTCOME_UNKNOWN when the answer was lost: the order may exist, resolve
        it with ``query_order(symbol, client_order_id=...)``.
        """
        trading = await self._trader("place_order")
        orders_ws = await self._order_transport()
        expires_at_ms = self._order_expiry_ms()
        if orders_ws is None:
            sending = self.rest.fetch(trading.place_order(request, expires_at_ms))
        else:
            sending = orders_ws.place_order(request, expires_at_ms)
        # Polled streams track before sending, so an order whose answer is lost is still followed;
        # with the websocket stream only lost answers are polled (the pushes report the rest).
        self._track(request)
        return await self._placed(trading, request, sending)

    def _order_expiry_ms(self) -> int:
        """When the venue is to refuse an order sent now: ``order_deadline_ms`` on, in its clock as last read."""
        return self._venue_clock_ms() + self.settings.order_deadline_ms

    def _venue_clock_ms(self) -> int:
        """The wall time in ms as the venue keeps it: the local clock corrected by the last ``clock_skew_ms``
        read (the local clock before any). Signed requests carry it: a venue refuses a timestamp ahead
        of its own clock (MEXC by more than 1 s) whatever the local clock says."""
        return time.time_ns() // 1_000_000 + round(self.clock_skew or 0.0)

    @property
    def client_id_lookup_s(self) -> float | None:
        """How long after an order ends the venue still finds it by its client id (``VenueBinding``)."""
        return self.binding.client_id_lookup_s

    @property
    def order_acceptance_s(self) -> float:
        """How long after an order is sent the venue may still take it: its deadline, plus how far the
        local reading of the venue's clock may be behind it (``CLOCK_READ_ERROR_MS`` once read; before,
        as far as the local clock may be ahead while signed requests are taken). 0 where the venue
        does not sign orders by the clock.

        Once read, how far the local clock is ahead counts too: an order of an earlier run that
        could not read the clock was stamped by the local clock, and a restart waits this out."""
        window = self.binding.clock_window
        if window is None:
            return 0.0
        skew = self.clock_skew
        error_ms = window.ahead_ms if skew is None else CLOCK_READ_ERROR_MS + max(0.0, -skew)
        return (self.settings.order_deadline_ms + error_ms) / 1000

    def write_order(self, request: OrderRequest) -> Awaitable[OrderState] | None:
        """Write the order of ``request`` before returning, when nothing has to be awaited first.

        That needs trading set up by an earlier call, and the order transport connected with
        budget free now. Otherwise nothing is written or spent and the answer is None (use
        ``place_order``). Await the returned awaitable for what ``place_order`` would return.
        """
        ready = self._ready_to_write()
        if ready is None:
            return None
        trading, orders_ws = ready
        expires_at_ms = self._order_expiry_ms()
        if orders_ws is not None:
            sending = orders_ws.write_order(request, expires_at_ms)
        else:
            sending = self.rest.write_now(trading.place_order(request, expires_at_ms))
        if sending is None:
            return None
        self._track(request)  # nothing was awaited since the write: no answer can have come yet
        return self._placed(trading, request, sending)

    def rehearse_order(self, request: OrderRequest) -> None:
        """Encode ``request`` as ``write_order`` would and drop it: nothing is sent, spent or tracked.

        Between executions this keeps the order path's code and data in the CPU's caches.
        """
        ready = self._ready_to_write()
        if ready is None:
            return
        trading, orders_ws = ready
        expires_at_ms = self._order_expiry_ms()
        if orders_ws is not None:
            orders_ws.rehearse_order(request, expires_at_ms)
        else:
            self.rest.rehearse_write(trading.place_order(request, expires_at_ms))

    def _ready_to_write(self) -> tuple[Trading, OrderTransport | None] | None:
        """``(trading, the websocket order transport, or None when orders go over REST)`` once an
        earlier call has set trading up and started the chosen transport; else None."""
        trading, catalog = self._trading, self._catalog
        if trading is None or catalog is None or self._trading_catalog is not catalog:
            return None
        if self.binding.ws_orders is not None and self.settings.order_transport == "ws":
            orders_ws = self._orders_ws
            if orders_ws is None:
                return None
            orders_ws.use_catalog(catalog)
            return trading, orders_ws
        return trading, None

    def _track(self, request: OrderRequest) -> None:
        if self._poller is not None and self._private is None:
            self._tracked[request.client_order_id] = request.symbol
        self._order_symbols.add(request.symbol)

    async def _placed(self, trading: Trading, request: OrderRequest, sending: Awaitable[bytes]) -> OrderState:
        """The state placing ``request`` ended in, once ``sending`` gives the venue's answer."""
        try:
            body = await sending
        except OrderRequestError:
            self._tracked.pop(request.client_order_id, None)  # nothing was sent
            raise
        except ExchangeError as exc:
            if exc.category is not None and exc.category != ErrorCategory.OUTCOME_UNKNOWN:
                self._tracked.pop(request.client_order_id, None)  # refused: nothing exists at the venue
                raise
            if self._poller is not None:  # order states are reported: the poller follows it
                self._tracked[request.client_order_id] = request.symbol
            if exc.category is None:
                # No known category (an unmapped label, a 404): maybe not a refusal, so followed as
                # an unknown outcome is, and queried by the order runner likewise.
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
        body = await self._over_ws_or_rest(
            lambda ws: ws.cancel_order(symbol, order_id, client_order_id),
            lambda: trading.cancel_order(symbol, order_id, client_order_id),
        )
        return self._parsed("cancel_order", trading.parse_order, body, write=True)

    async def query_order(
        self, symbol: str, *, order_id: str | None = None, client_order_id: str | None = None,
        sent_at_ms: int | None = None,
    ) -> OrderState:
        """The current state of an order, by venue id or client id (exactly one); ``sent_at_ms``
        (the local wall clock), where known, narrows the search among finished orders (``_finished_by_client_id``)."""
        _one_id(f"{self.venue} query_order {symbol}", order_id, client_order_id)
        trading = await self._trader("query_order")
        try:
            body = await self._over_ws_or_rest(
                lambda ws: ws.query_order(symbol, order_id, client_order_id),
                lambda: trading.query_order(symbol, order_id, client_order_id),
            )
        except ExchangeError as exc:
            if client_order_id is None or exc.category != ErrorCategory.UNKNOWN_ORDER:
                raise
            return await self._finished_by_client_id(trading, symbol, client_order_id, exc, sent_at_ms)
        return self._parsed("query_order", trading.parse_order, body, write=False)

    async def _over_ws_or_rest(
        self, over_ws: Callable[[OrderTransport], Awaitable[bytes]], over_rest: Callable[[], RestRequest]
    ) -> bytes:
        """A cancel's or a query's answer over the websocket trading API when it is the transport
        and logged in, else over REST: resolving an order's outcome must not wait for the
        websocket to come back while REST answers."""
        try:
            orders_ws = await self._order_transport()
        except ExchangeError as exc:
            if exc.category != ErrorCategory.NOT_SENT and not isinstance(exc, RateLimitError):
                raise
            orders_ws = None  # not logged in on first use (no connection, its login rate limited): REST asks
        if orders_ws is not None and orders_ws.logged_in:
            try:
                return await over_ws(orders_ws)
            except ExchangeError as exc:
                if exc.category != ErrorCategory.NOT_SENT:
                    raise
                # The connection dropped since it was checked: nothing was sent, REST asks instead.
        return await self.rest.fetch(over_rest())

    async def _finished_by_client_id(
        self, trading: Trading, symbol: str, client_order_id: str, not_found: ExchangeError, sent_at_ms: int | None
    ) -> OrderState:
        """An order its client id did not find, looked for among the pair's finished orders where the
        venue lists them (``Trading.finished_orders``): those of the minutes around ``sent_at_ms``
        (until the venue can no longer take it), else of the venue's whole lookup window, page by
        page. Raises ``not_found`` when it is not there, and an unknown outcome when the pages run
        out before the list does (it may be among the orders not listed)."""
        lookup_s = self.binding.client_id_lookup_s
        if lookup_s is None:
            raise not_found
        # The venue lists by its own clock: local times are moved onto it by the last clock read, or
        # before any, by as far either way as the venue takes signed requests. A minute more either
        # side for a clock that drifted or was stepped since the order was sent (by an earlier run).
        skew, window = self.clock_skew, self.binding.clock_window
        if skew is not None:
            earliest_ms = latest_ms = round(skew)
        else:
            earliest_ms, latest_ms = (-window.ahead_ms, window.behind_ms) if window is not None else (0, 0)
        if sent_at_ms is None:
            since_s, until_s = (time.time_ns() // 1_000_000 + earliest_ms) // 1000 - lookup_s - 60, None
        else:
            since_s = (sent_at_ms + earliest_ms) // 1000 - 60
            until_s = (sent_at_ms + latest_ms) // 1000 + math.ceil(self.order_acceptance_s) + 60
        seen = 0
        for page in range(1, MAX_FINISHED_ORDER_PAGES + 1):
            listing = trading.finished_orders(symbol, since_s, until_s, page)
            if listing is None:
                raise not_found
            body = await self.rest.fetch(listing.request)
            orders, listed = self._parsed("finished_orders", listing.parse, body, write=False)
            for order in orders:
                if order.client_order_id == client_order_id:
                    return order
            seen += listed
            if listed < listing.most:
                raise not_found
        raise ExchangeError(
            self.venue,
            f"order {client_order_id!r} on {symbol}: not found by its client id nor among the {seen} newest "
            f"finished orders of {MAX_FINISHED_ORDER_PAGES} full pages: it may be among those not listed",
            category=ErrorCategory.OUTCOME_UNKNOWN,
        ) from not_found

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

    async def funding_payments(self, since_ms: int) -> Sequence[FundingPayment]:
        """Funding settled on the account's futures positions since ``since_ms`` (empty on spot), oldest first."""
        trading = await self._trader("funding_payments")
        payments: list[FundingPayment] = []
        offset = 0
        for _ in range(MAX_FUNDING_PAGES):
            request = trading.funding_payments(since_ms, offset)
            if request is None:
                return []
            body = await self.rest.fetch(request)
            page, more = self._parsed("funding_payments", trading.parse_funding_payments, body, write=False)
            payments.extend(page)
            if not more:
                return sorted(payments, key=lambda payment: (payment.time_ms, payment.payment_id))
            offset += more
        # Never normal (a few settlements a day per contract): the venue may be ignoring the offset.
        raise ExchangeError(
            self.venue, f"funding_payments: still more after {MAX_FUNDING_PAGES} pages ({offset} entries) since {since_ms}"
        )

    def _parsed(self, action: str, parse: Callable[[bytes], T], body: bytes, *, write: bool) -> T:
        """Run a reply parser; an unreadable answer to a write leaves its outcome unknown."""
        failure: Exception
        try:
            return parse(body)
        except ExchangeError as exc:
            if not write or exc.category == ErrorCategory.OUTCOME_UNKNOWN:
                raise
            failure = exc
        except (ValueError, KeyError, ArithmeticError) as exc:  # ArithmeticError: a "NaN" amount compared
            failure = exc
        raise ExchangeError(
            self.venue,
            f"{action}: unreadable answer ({failure}): {body[:200]!r}",
            category=ErrorCategory.OUTCOME_UNKNOWN if write else None,
        ) from failure

    # --- private stream (websocket, REST polling as the fallback) ----------------------------

    async def start_private_stream(
        self, on_order: OrderHandler | None, on_fill: FillHandler, on_balance: BalanceHandler | None = None,
        *, on_balances_read: BalancesReadHandler | None = None, on_resubscribed: Callable[[], None] | None = None,
    ) -> None:
        """Stream order updates to ``on_order`` (None: none, and no order is polled) and executions
        to ``on_fill`` (each trade once, also when the venue pushes it again).

        Where the venue binds a private websocket (``VenueBinding.private_stream``), its
        pushes are decoded into ``OrderState`` (cumulative ``filled_quantity`` and ``fee``)
        and ``Fill`` (price, quantity, fee, maker flag, trade id); returns once the
        subscriptions are acknowledged and raises ``ExchangeError`` (AUTH_FAILED) when the
        venue refuses them. Orders whose placement outcome is unknown are still queried by
        client id every ``settings.poll_interval_s`` until final. Without a private websocket
        every order placed here is polled that way, and ``on_fill`` is never called.

        ``on_balance`` receives the ``Balance`` of each asset the venue reports changed (after
        fills, order placement and cancels); where the push lacks free/locked (Gate futures)
        the balances are read by REST when it arrives, and go to ``on_balances_read`` when given.
        Never called when polling.
        """
        await self._trader("start_private_stream")
        # The first order then finds its connection (and TLS session) open, and where orders go
        # over the websocket, that connection logged in, so it can be written at once. A refused
        # login raises here, before trading starts, rather than at the first order.
        for open_ahead in (self.rest.prewarm, self._order_transport):
            try:
                await open_ahead()
            except (ExchangeConnectionError, RateLimitError) as exc:  # a login refused otherwise (bad keys) is raised
                log.warning("%s: order connection not opened ahead (orders connect on demand): %s", self.venue, exc)
        if self._private is not None or (self._poller is not None and not self._poller.done()):
            raise ExchangeError(self.venue, "private stream already started")
        factory = self.binding.private_stream
        if factory is not None and self._credentials is not None:
            dialect = factory(self._credentials, await self.instruments(), self.dialect.ws_url, self._venue_clock_ms)
            stream = PrivateStream(
                dialect,
                self.rest,
                on_order if on_order is not None else _unreported,
                on_fill,
                self.settings.ws,
                on_balance=on_balance,
                on_balances_read=on_balances_read,
                balance_source=self.balances,
                on_resubscribed=on_resubscribed,
            )
            await stream.start(self.settings.ws.handshake_timeout_s * 2)
            self._private = stream
        if on_order is not None:
            self._poller = asyncio.get_running_loop().create_task(self._poll(on_order), name=f"{self.venue} orders poll")

    @property
    def private_stream(self) -> PrivateStream | None:
        """The running private websocket stream (None when polling only or stopped)."""
        return self._private

    def private_subscribed(self) -> bool | None:
        """Whether the private websocket stream is subscribed now; None where none runs."""
        stream = self._private
        return None if stream is None else stream.subscribed

    def private_stats(self) -> PrivateStreamStats | None:
        """The private websocket stream's counters; None where none runs."""
        stream = self._private
        return None if stream is None else stream.stats()

    async def stop_private_stream(self) -> None:
        """Stop the private stream (websocket and polling)."""
        poller, self._poller = self._poller, None
        self._tracked.clear()
        stream, self._private = self._private, None
        if stream is not None:
            await stream.close()
        if poller is not None:
            poller.cancel()
            try:
                await poller
            except asyncio.CancelledError:
                if not poller.cancelled():
                    raise

    async def _poll(self, on_order: OrderHandler) -> None:
        reported: dict[str, tuple[OrderStatus, Decimal]] = {}
        unknown_since: dict[str, float] = {}  # client id -> when the venue first did not know it
        while True:
            for client_id, symbol in list(self._tracked.items()):
                try:
                    state = await self.query_order(symbol, client_order_id=client_id)
                except asyncio.CancelledError:
                    raise
                except ArbitrageEngineError as exc:
                    # Unknown to the venue yet (in flight) or a transient failure: ask again next
                    # round, until the venue can no longer take an order it does not know.
                    log.debug("%s: polling order %r: %s", self.venue, client_id, exc)
                    if getattr(exc, "category", None) == ErrorCategory.UNKNOWN_ORDER:
                        now = time.monotonic()
                        if now - unknown_since.setdefault(client_id, now) > self.order_acceptance_s:
                            self._tracked.pop(client_id, None)
                            unknown_since.pop(client_id, None)
                    continue
                unknown_since.pop(client_id, None)
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
            for gone in unknown_since.keys() - self._tracked.keys():  # refused or dropped meanwhile
                del unknown_since[gone]
            await asyncio.sleep(self.settings.poll_interval_s)

    # --- lifecycle ------------------------------------------------------------------------

    async def _close_orders_ws(self) -> None:
        """Close the websocket trading API; forgotten only once closed (a close cut short is made again)."""
        orders_ws = self._orders_ws
        if orders_ws is not None:
            await orders_ws.close()
            self._orders_ws = None

    async def close(self) -> None:
        """Stop streams, the websocket trading API and the REST session: each of them, also when
        one fails to close (the first failure is raised once all were closed, the others logged)."""
        self._closes += 1
        parts = [self.stop_private_stream, self.stop_books, self.rest.close]
        if self._orders_ws is not None:
            parts.insert(0, self._close_orders_ws)
        failure: Exception | None = None
        for close in parts:
            try:
                await close()
            except Exception as exc:
                if failure is not None:
                    log.error("%s: closing failed again: %r", self.venue, exc)
                failure = failure or exc
        if failure is not None:
            raise failure

