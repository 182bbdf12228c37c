"""MEXC spot and USDT-perpetual connectors: MEXC's data bound to the shared ``ExchangeConnector``.

MEXC futures are market data only: the contract order API is "Under maintenance" for
ordinary accounts, so every trading call of ``MexcFuturesConnector`` raises
``FuturesTradingUnavailable`` before anything is sent.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import msgspec

from ...instruments import Instrument, InstrumentCatalog
from ...secrets import ApiCredentials
from ...types import ExchangeName
from ..connector import (
    ApiSymbolsEndpoint,
    ClockWindow,
    ExchangeConnector,
    FundingEndpoint,
    NoPositions,
    PublicEndpoints,
    VenueBinding,
)
from ..factory import register
from ..models import Balance, OrderRequest, OrderState
from ..rest import RestRequest, RestVenue
from . import constants
from .auth import MexcSigner
from .instruments import (
    parse_contract_detail,
    parse_contract_funding_rate,
    parse_default_symbols,
    parse_exchange_info,
)
from .market_data import MexcFuturesMarketData, MexcSpotMarketData
from .private_stream import MexcSpotPrivateStream
from .trading import FuturesTradingUnavailable, MexcSpotTrading, futures_rest_venue, spot_rest_venue


class ServerTime(msgspec.Struct, frozen=True):
    """``GET /api/v3/time``: ``{"serverTime":1645539742000}`` (ms)."""

    serverTime: int


class ContractPing(msgspec.Struct, frozen=True):
    """``GET /api/v1/contract/ping``: ``{"success":true,"code":0,"data":1587442022003}`` (server ms)."""

    success: bool
    code: int
    data: int


_server_time = msgspec.json.Decoder(ServerTime)
_contract_ping = msgspec.json.Decoder(ContractPing)


def parse_server_time(body: bytes) -> int:
    """MEXC spot's clock in ms from a ``/api/v3/time`` body."""
    return _server_time.decode(body).serverTime


def parse_contract_time(body: bytes) -> int:
    """MEXC contract's clock in ms from a ``/api/v1/contract/ping`` body."""
    reply = _contract_ping.decode(body)
    if not reply.success:
        raise ValueError(f"mexc_futures ping: success=false code={reply.code}")
    return reply.data


def _spot_venue(base_url: str | None) -> RestVenue:
    return spot_rest_venue(base_url or constants.REST_URL)


def _futures_venue(base_url: str | None) -> RestVenue:
    return futures_rest_venue(base_url or constants.FUTURES_REST_URL)


def _get(path: str) -> RestRequest:
    """A public spot read, spending its endpoint's budget and its weight of the IP's."""
    limits = ((path, 1), (constants.IP_WEIGHT_LIMIT_ID, constants.ENDPOINT_WEIGHTS[path]))
    return RestRequest(method="GET", path=path, limits=limits)


def _contract_get(path: str, **path_params: str) -> RestRequest:
    """A public contract read of ``path`` (its ``path_params`` filled in), spending its endpoint's budget."""
    return RestRequest(method="GET", path=path.format(**path_params), limits=((path, 1),))


def _funding_rate(venue_symbol: str | None) -> RestRequest:
    if venue_symbol is None:
        raise ValueError("mexc_futures funding rates are read one contract at a time")
    return _contract_get(constants.CONTRACT_FUNDING_RATE_PATH, symbol=venue_symbol)


class _SpotTrading(NoPositions):
    """``MexcSpotTrading`` as the connector's ``Trading``."""

    open_orders_need_symbol = True  # GET /api/v3/openOrders requires the symbol

    def __init__(self, credentials: ApiCredentials, catalog: InstrumentCatalog, clock_ms: Callable[[], int]) -> None:
        self._t = MexcSpotTrading(MexcSigner(credentials), catalog, clock_ms=clock_ms)

    def place_order(self, order: OrderRequest, expires_at_ms: int | None) -> RestRequest:
        return self._t.place_order_request(order, expires_at_ms=expires_at_ms)

    def parse_placed(self, body: bytes, order: OrderRequest) -> OrderState:
        return self._t.parse_new_order(body, order.client_order_id)

    def cancel_order(self, symbol: str, order_id: str | None, client_order_id: str | None) -> RestRequest:
        return self._t.cancel_order_request(symbol, order_id=order_id, client_order_id=client_order_id)

    def query_order(self, symbol: str, order_id: str | None, client_order_id: str | None) -> RestRequest:
        return self._t.query_order_request(symbol, order_id=order_id, client_order_id=client_order_id)

    def finished_orders(self, symbol: str, since_s: int, until_s: int | None, page: int) -> None:
        return None  # a client id finds a finished order as long as its order id does

    def parse_order(self, body: bytes) -> OrderState:
        return self._t.parse_order(body)

    def open_orders(self, symbol: str | None) -> RestRequest:
        if symbol is None:
            raise ValueError("mexc: open orders are listed per symbol")
        return self._t.open_orders_request(symbol)

    def parse_open_orders(self, body: bytes) -> list[OrderState]:
        return self._t.parse_open_orders(body)

    def balances(self) -> RestRequest:
        return self._t.account_request()

    def parse_balances(self, body: bytes) -> dict[str, Balance]:
        return self._t.parse_balances(body)


class _Fees:
    """The account's rates per symbol from ``GET /api/v3/tradeFee`` (the account endpoint leaves them null)."""

    per_symbol = True

    def __init__(self, credentials: ApiCredentials, clock_ms: Callable[[], int]) -> None:
        self._signer = MexcSigner(credentials)
        self._clock_ms = clock_ms

    def fee_request(self, instrument: Instrument | None) -> RestRequest:
        if instrument is None:
            raise ValueError("mexc: trade fees are asked per symbol")
        catalog = InstrumentCatalog(ExchangeName.MEXC, [instrument])
        return MexcSpotTrading(self._signer, catalog, clock_ms=self._clock_ms).trade_fee_request(instrument.symbol)

    def parse_fees(self, body: bytes) -> tuple[Decimal, Decimal]:
        return MexcSpotTrading.parse_trade_fee(body)


class MexcSpotConnector(ExchangeConnector):
    """MEXC spot: protobuf aggregated-depth books, ``/api/v3`` orders and balances."""

    binding = VenueBinding(
        exchange=ExchangeName.MEXC,
        dialect=MexcSpotMarketData,
        rest_venue=_spot_venue,
        endpoints=PublicEndpoints(
            instruments=_get(constants.EXCHANGE_INFO_PATH),
            parse_instruments=parse_exchange_info,
            server_time=_get(constants.TIME_PATH),
            parse_server_time=parse_server_time,
            ping=_get(constants.PING_PATH),
            api_symbols=ApiSymbolsEndpoint(
                request=_get(constants.DEFAULT_SYMBOLS_PATH), parse=parse_default_symbols,
                source=f"GET {constants.DEFAULT_SYMBOLS_PATH}",
            ),
        ),
        trading=_SpotTrading,
        trading_refusal=MexcSpotTrading.parse_trading_refusal,
        private_stream=lambda credentials, catalog, url, clock_ms: MexcSpotPrivateStream(
            credentials, catalog, url, clock_ms=clock_ms
        ),
        fees=_Fees,
        order_limits=(
            (constants.ORDER_PATH, 1),
            (constants.UID_WEIGHT_LIMIT_ID, constants.PRIVATE_ENDPOINT_WEIGHTS[constants.ORDER_PATH]),
        ),
        clock_window=ClockWindow(ahead_ms=constants.CLOCK_AHEAD_LIMIT_MS, behind_ms=constants.DEFAULT_RECV_WINDOW_MS),
    )


class MexcFuturesConnector(ExchangeConnector):
    """MEXC USDT perpetuals: ``push.depth`` books and contract metadata; trading is refused (see module doc)."""

    binding = VenueBinding(
        exchange=ExchangeName.MEXC_FUTURES,
        dialect=MexcFuturesMarketData,
        rest_venue=_futures_venue,
        endpoints=PublicEndpoints(
            instruments=_contract_get(constants.CONTRACT_DETAIL_PATH),
            parse_instruments=parse_contract_detail,
            server_time=_contract_get(constants.CONTRACT_PING_PATH),
            parse_server_time=parse_contract_time,
            ping=_contract_get(constants.CONTRACT_PING_PATH),
            funding=FundingEndpoint(request=_funding_rate, parse=parse_contract_funding_rate, per_symbol=True),
        ),
        trading_unavailable=FuturesTradingUnavailable,
    )


register(ExchangeName.MEXC, MexcSpotConnector)
register(ExchangeName.MEXC_FUTURES, MexcFuturesConnector)
