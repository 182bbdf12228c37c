"""Gate.io spot and USDT-perpetual connectors: Gate's data bound to the shared ``ExchangeConnector``.

Both markets share the REST host (``/api/v4``), the signer and the error labels; they differ
in the market-data dialect, the metadata endpoint and the trading class. The adapters
below only rename ``trading.py``'s calls into the connector's ``Trading`` shape.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import msgspec

from ...instruments import Instrument, InstrumentCatalog
from ...secrets import ApiCredentials
from ...types import ExchangeName
from ..connector import (
    ClockWindow, ExchangeConnector, FinishedOrdersPage, FundingEndpoint, ListPaging, NoPositions, OrderTransportFactory,
    PublicEndpoints, VenueBinding,
)
from ..factory import register
from ..models import Balance, FundingPayment, OrderRequest, OrderState, Position
from ..rest import RestClient, RestRequest, RestVenue
from ..ws import WsSettings
from . import constants
from .auth import GateioSigner
from .instruments import parse_currency_pairs, parse_funding_rates, parse_futures_contracts
from .market_data import GateioFuturesMarketData, GateioSpotMarketData
from .private_stream import GateioFuturesPrivateStream, GateioSpotPrivateStream
from .trading import GateioFuturesTrading, GateioSpotTrading, rest_venue
from .ws_trading import GateioWsOrders


class ServerTime(msgspec.Struct, frozen=True):
    """``GET /spot/time``: ``{"server_time":1597026383085}`` (ms)."""

    server_time: int


_server_time = msgspec.json.Decoder(ServerTime)


def _public_get(path: str, limit_id: str) -> RestRequest:
    """A public read spending one of its endpoint's budget ``limit_id``."""
    return RestRequest(method="GET", path=path, limits=((limit_id, 1),))


_TIME = _public_get(constants.SERVER_TIME_PATH, constants.SERVER_TIME_RATE_LIMIT)
_CONTRACTS = _public_get(constants.FUTURES_CONTRACTS_PATH, constants.FUTURES_CONTRACTS_RATE_LIMIT)
_CONTRACTS_PAGING = ListPaging(page_size=constants.FUTURES_CONTRACTS_PAGE, max_pages=constants.FUTURES_CONTRACTS_MAX_PAGES)


def parse_server_time(body: bytes) -> int:
    """Gate's clock in ms from a ``/spot/time`` body."""
    return _server_time.decode(body).server_time


def _rest_venue(base_url: str | None) -> RestVenue:
    return rest_venue(base_url or constants.REST_URL)


class _Trading:
    """What both markets' trading classes spell alike, in the connector's ``Trading`` shape."""

    open_orders_need_symbol = False
    _t: GateioSpotTrading | GateioFuturesTrading

    def place_order(self, order: OrderRequest, expires_at_ms: int | None) -> RestRequest:
        return self._t.place_order(order, expires_at_ms=expires_at_ms)

    def parse_placed(self, body: bytes, order: OrderRequest) -> OrderState:
        return self._t.parse_order(body)

    def parse_order(self, body: bytes) -> OrderState:
        return self._t.parse_order(body)

    def open_orders(self, symbol: str | None) -> RestRequest:
        return self._t.open_orders(symbol)

    def parse_open_orders(self, body: bytes) -> list[OrderState]:
        return self._t.parse_open_orders(body)

    def parse_balances(self, body: bytes) -> dict[str, Balance]:
        return self._t.parse_balances(body)


def _seconds(clock_ms: Callable[[], int]) -> Callable[[], float]:
    """``clock_ms`` in seconds, as Gate.io stamps its requests."""
    return lambda: clock_ms() / 1000


class _SpotTrading(NoPositions, _Trading):
    """Spot orders are addressed with their pair; spot has no positions."""

    def __init__(self, credentials: ApiCredentials, catalog: InstrumentCatalog, clock_ms: Callable[[], int]) -> None:
        self._t = self._spot = GateioSpotTrading(GateioSigner(credentials), catalog, clock=_seconds(clock_ms))

    def cancel_order(self, symbol: str, order_id: str | None, client_order_id: str | None) -> RestRequest:
        return self._spot.cancel_order(symbol, order_id=order_id, client_order_id=client_order_id)

    def query_order(self, symbol: str, order_id: str | None, client_order_id: str | None) -> RestRequest:
        return self._spot.query_order(symbol, order_id=order_id, client_order_id=client_order_id)

    def finished_orders(self, symbol: str, since_s: int, until_s: int | None, page: int) -> FinishedOrdersPage:
        return FinishedOrdersPage(
            self._spot.finished_orders(symbol, since_s, until_s, page), constants.FINISHED_ORDERS_LIMIT,
            self._spot.parse_finished_orders,
        )

    def balances(self) -> RestRequest:
        return self._spot.balances()


class _FuturesTrading(_Trading):
    """Futures orders are addressed by id alone; the balance is the futures account."""

    def __init__(self, credentials: ApiCredentials, catalog: InstrumentCatalog, clock_ms: Callable[[], int]) -> None:
        self._t = self._futures = GateioFuturesTrading(GateioSigner(credentials), catalog, clock=_seconds(clock_ms))

    def cancel_order(self, symbol: str, order_id: str | None, client_order_id: str | None) -> RestRequest:
        return self._futures.cancel_order(order_id=order_id, client_order_id=client_order_id)

    def query_order(self, symbol: str, order_id: str | None, client_order_id: str | None) -> RestRequest:
        return self._futures.query_order(order_id=order_id, client_order_id=client_order_id)

    def finished_orders(self, symbol: str, since_s: int, until_s: int | None, page: int) -> None:
        return None  # a text finds a finished contract order for its whole 60 s lookup window

    def balances(self) -> RestRequest:
        return self._futures.account()

    def positions(self) -> RestRequest:
        return self._futures.positions()

    def parse_positions(self, body: bytes) -> list[Position]:
        return self._futures.parse_positions(body)

    def funding_payments(self, since_ms: int, offset: int) -> RestRequest:
        return self._futures.funding_payments(since_ms, offset)

    def parse_funding_payments(self, body: bytes) -> tuple[list[FundingPayment], int]:
        return self._futures.parse_funding_payments(body)


class _Fees:
    """The account's tier from ``GET /spot/fee`` (one answer for every pair, spot and futures rates)."""

    per_symbol = False

    def __init__(self, credentials: ApiCredentials, clock_ms: Callable[[], int], futures: bool) -> None:
        signer = GateioSigner(credentials)
        market = ExchangeName.GATEIO_FUTURES if futures else ExchangeName.GATEIO
        trading = GateioFuturesTrading if futures else GateioSpotTrading
        self._t = trading(signer, InstrumentCatalog(market, []), clock=_seconds(clock_ms))

    def fee_request(self, instrument: Instrument | None) -> RestRequest:
        return self._t.fee_request()

    def parse_fees(self, body: bytes) -> tuple[Decimal, Decimal]:
        return self._t.parse_fees(body)


def _spot_fees(credentials: ApiCredentials, clock_ms: Callable[[], int]) -> _Fees:
    return _Fees(credentials, clock_ms, futures=False)


def _futures_fees(credentials: ApiCredentials, clock_ms: Callable[[], int]) -> _Fees:
    return _Fees(credentials, clock_ms, futures=True)


def _ws_orders(futures: bool) -> OrderTransportFactory:
    """The factory of the market's ``GateioWsOrders`` (it shares the REST client's rate limiter)."""

    def factory(
        credentials: ApiCredentials, catalog: InstrumentCatalog, url: str, rest: RestClient, ws: WsSettings,
        timeout_s: float, clock_ms: Callable[[], int],
    ) -> GateioWsOrders:
        return GateioWsOrders(
            credentials, catalog, url, rest, futures=futures, timeout_s=timeout_s, settings=ws, clock=_seconds(clock_ms)
        )

    return factory


_CLOCK_WINDOW = ClockWindow(ahead_ms=constants.REQUEST_WINDOW_S * 1000, behind_ms=constants.REQUEST_WINDOW_S * 1000)


class GateioSpotConnector(ExchangeConnector):
    """Gate.io spot: ``spot.order_book_update`` books, ``/spot`` orders and balances."""

    binding = VenueBinding(
        exchange=ExchangeName.GATEIO,
        dialect=GateioSpotMarketData,
        rest_venue=_rest_venue,
        endpoints=PublicEndpoints(
            instruments=_public_get(constants.CURRENCY_PAIRS_PATH, constants.CURRENCY_PAIRS_RATE_LIMIT),
            parse_instruments=parse_currency_pairs,
            server_time=_TIME,
            parse_server_time=parse_server_time,
            ping=_TIME,
        ),
        trading=_SpotTrading,
        private_stream=lambda credentials, catalog, url, clock_ms: GateioSpotPrivateStream(
            credentials, catalog, url, clock=_seconds(clock_ms)
        ),
        ws_orders=_ws_orders(futures=False),
        order_limits=((constants.SPOT_ORDER_PLACE_RATE_LIMIT, 1),),
        clock_window=_CLOCK_WINDOW,
        client_id_lookup_s=constants.SPOT_CLIENT_ID_LOOKUP_S,
        fees=_spot_fees,
    )


class GateioFuturesConnector(ExchangeConnector):
    """Gate.io USDT perpetuals: ``futures.order_book_update`` books, ``/futures/usdt`` orders and positions."""

    binding = VenueBinding(
        exchange=ExchangeName.GATEIO_FUTURES,
        dialect=GateioFuturesMarketData,
        rest_venue=_rest_venue,
        endpoints=PublicEndpoints(
            instruments=_CONTRACTS,
            parse_instruments=parse_futures_contracts,
            instruments_paging=_CONTRACTS_PAGING,
            server_time=_TIME,
            parse_server_time=parse_server_time,
            ping=_TIME,
            # The contracts list carries every contract's funding_rate / interval / next settlement.
            funding=FundingEndpoint(request=lambda _: _CONTRACTS, parse=parse_funding_rates, paging=_CONTRACTS_PAGING),
        ),
        trading=_FuturesTrading,
        private_stream=lambda credentials, catalog, url, clock_ms: GateioFuturesPrivateStream(
            credentials, catalog, url, clock=_seconds(clock_ms)
        ),
        ws_orders=_ws_orders(futures=True),
        order_limits=((constants.FUTURES_ORDER_PLACE_RATE_LIMIT, 1),),
        clock_window=_CLOCK_WINDOW,
        client_id_lookup_s=constants.FUTURES_CLIENT_ID_LOOKUP_S,
        fees=_futures_fees,
    )


register(ExchangeName.GATEIO, GateioSpotConnector)
register(ExchangeName.GATEIO_FUTURES, GateioFuturesConnector)
