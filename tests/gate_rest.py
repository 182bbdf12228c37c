"""A simulated Gate venue driven by the client's own requests, without sockets: shared by the trading tests."""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal

from sim.simdata import perp, spot

from arb.errors import ExchangeError
from arb.exchanges.gateio import constants
from arb.exchanges.gateio.auth import GateioSigner
from arb.exchanges.gateio.sim import rest_routes
from arb.exchanges.gateio.trading import GateioFuturesTrading, GateioSpotTrading, rest_venue
from arb.exchanges.rest import RestRequest, parse_error_body, rate_limit_wait_s
from arb.exchanges.errors import venue_error
from arb.instruments import Instrument, InstrumentCatalog
from arb.secrets import ApiCredentials, Secret
from arb.sim.faults import FaultPlan
from arb.sim.http import Route, SimContext, SimRequest, SimResponse
from arb.sim.matching import SimExchange
from arb.types import ExchangeName
from arb_core.book import ASK, BID

API_KEY = "sim-key"
SECRET = "sim-secret"
WALL_MS = 1_700_000_000_000
CREDENTIALS = ApiCredentials(Secret(API_KEY), Secret(SECRET))


class GateVenue:
    """Spot BTC_USDT and perpetual BTC_USDT with a few levels, a funded user and signed clients."""

    def __init__(self, extra: Sequence[Instrument] = ()) -> None:
        """``extra`` instruments (spot or perpetual) are listed too, with no liquidity of their own."""
        self.now_ns = 1_000_000_000
        self.wall_ms = WALL_MS
        self.faults = FaultPlan()
        self.spot_instrument, self.perp_instrument = spot(), perp()
        spots = [self.spot_instrument, *(i for i in extra if not i.is_futures)]
        perps = [self.perp_instrument, *(i for i in extra if i.is_futures)]
        self.spot = SimExchange(ExchangeName.GATEIO, spots)
        self.futures = SimExchange(ExchangeName.GATEIO_FUTURES, perps)
        self.ctx = SimContext(
            venue=constants.VENUE,
            exchanges={ExchangeName.GATEIO: self.spot, ExchangeName.GATEIO_FUTURES: self.futures},
            faults=self.faults,
            credentials={API_KEY: CREDENTIALS},
            now_ns=lambda: self.now_ns,
            wall_ms=lambda: self.wall_ms,
        )
        # spot: asks 30000.00 x 0.1, 30001.00 x 0.2; bids 29999.00 x 0.1 (ticks 0.01, lots 0.0001)
        self.spot.engine("BTC/USDT").apply_market_levels(
            [(ASK, 3_000_000, 1000), (ASK, 3_000_100, 2000), (BID, 2_999_900, 1000)], self.now_ns
        )
        # perp: asks 30000.0 x 50, bids 29999.0 x 50 contracts (tick 0.1)
        self.futures.engine("BTC/USDT:USDT").apply_market_levels(
            [(ASK, 300_000, 50), (BID, 299_990, 50)], self.now_ns
        )
        for exchange in (self.spot, self.futures):
            exchange.deposit(API_KEY, "USDT", "100000")
        self.spot.deposit(API_KEY, "BTC", "1")
        self.routes = rest_routes()
        signer = GateioSigner(CREDENTIALS)
        clock = lambda: self.wall_ms / 1000  # noqa: E731
        self.spot_client = GateioSpotTrading(
            signer, InstrumentCatalog(ExchangeName.GATEIO, spots), clock=clock
        )
        self.futures_client = GateioFuturesTrading(
            signer, InstrumentCatalog(ExchangeName.GATEIO_FUTURES, perps), clock=clock
        )

    def send(self, request: RestRequest) -> SimResponse:
        """The sim's answer to a client request, as the server would route it."""
        self.now_ns += 1_000_000  # both clocks move together, so wall stamps of engine times stay put
        self.wall_ms += 1
        return answer(self.routes, self.ctx, to_sim(request))

    def fetch(self, request: RestRequest) -> bytes:
        """The body of a 2xx answer; otherwise the ``ExchangeError`` the REST client would raise."""
        return body_or_raise(request, self.send(request))


def to_sim(request: RestRequest, *, headers: dict[str, str] | None = None) -> SimRequest:
    """The request as the venue sees it: full path (``/api/v4`` + path), lower-cased header names."""
    sent = request.headers if headers is None else headers
    return SimRequest(
        method=request.method,
        path=constants.API_PREFIX + request.path,
        query=request.query,
        body=request.body,
        headers={k.lower(): v for k, v in sent.items()},
    )


def route_pattern(route: Route) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", route.path) + "$")


def answer(routes: list[Route], ctx: SimContext, request: SimRequest) -> SimResponse:
    """Dispatch like an aiohttp router: method and path pattern, path parameters filled in."""
    for route in routes:
        match = route_pattern(route).match(request.path)
        if match and route.method == request.method:
            routed = SimRequest(
                method=request.method, path=request.path, query=request.query, body=request.body,
                headers=request.headers, path_params=match.groupdict(),
            )
            return route.handler(routed, ctx)
    raise AssertionError(f"no route for {request.method} {request.path}")


def body_or_raise(request: RestRequest, response: SimResponse, now_ms: int | None = None) -> bytes:
    """What ``RestClient`` makes of an answer: the body, or the mapped error (same helpers, same tables);
    ``now_ms``: the local clock a rate limit's reset time is read against."""
    if response.drop_connection:
        raise ExchangeError(constants.VENUE, "connection dropped", category="outcome_unknown")
    if 200 <= response.status < 300:
        return response.body
    venue = rest_venue()
    failure = parse_error_body(response.body)
    assert failure is not None, response.body
    headers = {name.lower(): value for name, value in response.headers}
    raise venue_error(
        venue.name, f"{request.method} {request.path}: {failure[1]}", codes=venue.error_codes,
        http_statuses=venue.http_statuses, code=failure[0], http_status=response.status,
        retry_after_s=rate_limit_wait_s(venue, headers, now_ms),
    )


D = Decimal
