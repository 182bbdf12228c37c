"""The contract between the simulated venues' HTTP server and each venue's REST dialect.

``arb.sim.server`` owns the sockets; a venue's ``sim.py`` owns its wire format. A venue
exposes its REST endpoints as ``Route`` entries whose handlers are plain functions from a
``SimRequest`` to a ``SimResponse``, so they are tested without any network.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING

import msgspec

from .ratelimit import RateLimits

if TYPE_CHECKING:
    from ..secrets import ApiCredentials
    from ..types import ExchangeName
    from .faults import FaultPlan
    from .matching import SimExchange


DEFAULT_FUNDING_RATE = Decimal("0.0001")
DEFAULT_FUNDING_INTERVAL_S = 28_800


class SimRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One HTTP request as the venue received it."""

    method: str  # upper case
    path: str  # as sent, without the query string, e.g. "/api/v4/spot/orders"
    query: str  # raw query string as sent (signatures cover it byte for byte)
    body: bytes
    headers: Mapping[str, str]  # names lower-cased
    path_params: Mapping[str, str] = {}
    received_ns: int = 0  # local monotonic receive time, for latency stamps


class SimResponse(msgspec.Struct, frozen=True, kw_only=True):
    """What the server sends back, and how (faults may delay or drop the answer)."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)
    delay_ms: int = 0  # answer late (a stalled venue)
    drop_connection: bool = False  # close the socket instead of answering (outcome unknown)


class SimContext(msgspec.Struct, kw_only=True):
    """What a venue handler may use: the markets it serves, the fault plan and the clock."""

    venue: str
    exchanges: Mapping[ExchangeName, SimExchange]
    faults: FaultPlan
    credentials: Mapping[str, ApiCredentials]  # api key -> credentials; the user is the api key
    now_ns: Callable[[], int]  # monotonic
    wall_ms: Callable[[], int]  # venue clock (clock skew applied)
    # User data stream tokens (MEXC listenKey) -> (user, expiry in venue ms), shared by REST and websocket.
    user_streams: dict[str, tuple[str, int]] = {}
    funding_rate: Decimal = DEFAULT_FUNDING_RATE  # announced on every perpetual and settled at each interval
    funding_interval_s: int = DEFAULT_FUNDING_INTERVAL_S  # settlements at whole multiples of it (venue clock)
    # Perpetuals (unified symbols) listed as being delisted: they take reduce-only orders only.
    delisting: set[str] = set()
    rate_limits: RateLimits = msgspec.field(default_factory=RateLimits)  # the venue's own, on its order endpoints


Handler = Callable[[SimRequest, SimContext], SimResponse]


class Route(msgspec.Struct, frozen=True):
    """One endpoint: method, aiohttp-style path pattern (``/spot/orders/{order_id}``) and handler."""

    method: str
    path: str
    handler: Handler
