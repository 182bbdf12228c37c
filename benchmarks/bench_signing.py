"""Building and signing one order request per venue (target <= 20 us each).

Times the engine's own builders, as the connectors call them: ``GateioSpotTrading.place_order``
and ``MexcSpotTrading.place_order_request`` turn an IOC ``OrderRequest`` (Decimal price and
quantity) and its deadline into the signed ``RestRequest``: instrument lookup, the grid checks,
price and size text, the client id, the Gate JSON body or the MEXC query string, the signature
and the headers. The clocks are fixed, so each result is asserted byte for byte against the
request written out here. The order and the trading modules are built outside the timed body.

Baselines in the same group, one per venue: a bare ``hmac.new(key, message, digest).hexdigest()``
over the venue's signed text, prebuilt outside the timed body (MEXC: the query string before
``&signature=``; Gate: the five-line ``METHOD/PATH/QUERY/SHA512(body)/TIMESTAMP`` string), so
the ratio of each venue's row to its baseline is what building the request adds to the MAC
itself. The baselines pay the HMAC key schedule on every call (the signers compute it once
and copy it), so the ratio understates that overhead slightly.
"""

import hashlib
import hmac
from decimal import Decimal
from typing import Any

from arb.exchanges.gateio.auth import GateioSigner
from arb.exchanges.gateio.trading import GateioSpotTrading
from arb.exchanges.mexc.auth import MexcSigner
from arb.exchanges.mexc.trading import MexcSpotTrading
from arb.exchanges.rest import RestRequest
from arb.instruments import Instrument, InstrumentCatalog
from arb.orders import ioc_order
from arb.secrets import ApiCredentials, Secret
from arb.types import ExchangeName, OrderSide

CREDENTIALS = ApiCredentials(Secret("mx0aBYs33eIilxBWC5"), Secret("45d0b3c26f2644f19bfb98b07741b2f5"))
API_KEY = CREDENTIALS.api_key.reveal()
SECRET = CREDENTIALS.secret_key.reveal().encode()
CLIENT_ID = "5d1c0e9a7b3f42e8a61c07-b"  # a 22-character opportunity hash and a leg tag, as the engine names orders
NOW_MS = 1736411507002
DEADLINE_MS = NOW_MS + 5000  # the connectors' default order deadline

MEXC_SIGNED_TEXT = (
    b"symbol=BTCUSDT&side=BUY&type=IMMEDIATE_OR_CANCEL&quantity=0.0015&price=93132.75"
    b"&newClientOrderId=5d1c0e9a7b3f42e8a61c07-b&recvWindow=5000&timestamp=1736411507002"
)
GATE_BODY = (
    b'{"text":"t-5d1c0e9a7b3f42e8a61c07-b","currency_pair":"BTC_USDT","type":"limit","account":"spot",'
    b'"side":"buy","amount":"0.001500","price":"93132.75","time_in_force":"ioc"}'
)
GATE_SIGNED_TEXT = b"POST\n/api/v4/spot/orders\n\n%s\n1736411507" % hashlib.sha512(GATE_BODY).hexdigest().encode()


def instrument(exchange: ExchangeName, venue_symbol: str) -> Instrument:
    return Instrument(
        exchange=exchange, symbol="BTC/USDT", venue_symbol=venue_symbol, base="BTC", quote="USDT",
        tick_size=Decimal("0.01"), lot_size=Decimal("0.000001"), min_size=Decimal("0.000001"),
        min_notional=Decimal(1), taker_fee=Decimal("0.0005"), maker_fee=Decimal("0"),
        price_decimals=2, size_decimals=6,
    )


def catalog(exchange: ExchangeName, venue_symbol: str) -> InstrumentCatalog:
    return InstrumentCatalog(exchange, [instrument(exchange, venue_symbol)])


ORDER = ioc_order(
    instrument(ExchangeName.GATEIO, "BTC_USDT"), OrderSide.BUY, Decimal("0.0015"), Decimal("93132.75"), CLIENT_ID
)


def test_mexc_spot_order_query(benchmark: Any) -> None:
    """POST /api/v3/order: query string with recvWindow, timestamp and signature, plus headers."""
    benchmark.group = "sign order request"
    mexc = MexcSpotTrading(MexcSigner(CREDENTIALS), catalog(ExchangeName.MEXC, "BTCUSDT"), clock_ms=lambda: NOW_MS)
    place_order_request = mexc.place_order_request

    def build() -> RestRequest:
        return place_order_request(ORDER, expires_at_ms=DEADLINE_MS)

    request = benchmark.pedantic(build, rounds=2000, iterations=5, warmup_rounds=100)
    signature = hmac.new(SECRET, MEXC_SIGNED_TEXT, hashlib.sha256).hexdigest()
    assert (request.method, request.path, request.body) == ("POST", "/api/v3/order", b"")
    assert request.query == f"{MEXC_SIGNED_TEXT.decode()}&signature={signature}"
    assert request.headers == {"X-MEXC-APIKEY": API_KEY, "Content-Type": "application/json"}


def test_mexc_hmac_sha256_baseline(benchmark: Any) -> None:
    """Baseline: HMAC-SHA256 hex of the prebuilt MEXC query string, nothing else."""
    benchmark.group = "sign order request"
    new, sha256, message = hmac.new, hashlib.sha256, MEXC_SIGNED_TEXT

    def mac() -> str:
        return new(SECRET, message, sha256).hexdigest()

    signature = benchmark.pedantic(mac, rounds=2000, iterations=5, warmup_rounds=100)
    assert signature == MexcSigner(CREDENTIALS).sign(MEXC_SIGNED_TEXT.decode())


def test_gateio_spot_order_body(benchmark: Any) -> None:
    """POST /spot/orders: JSON body bytes and the KEY/Timestamp/SIGN/x-gate-exptime headers."""
    benchmark.group = "sign order request"
    gate = GateioSpotTrading(GateioSigner(CREDENTIALS), catalog(ExchangeName.GATEIO, "BTC_USDT"), clock=lambda: NOW_MS / 1000)
    place_order = gate.place_order

    def build() -> RestRequest:
        return place_order(ORDER, expires_at_ms=DEADLINE_MS)

    request = benchmark.pedantic(build, rounds=2000, iterations=5, warmup_rounds=100)
    assert (request.method, request.path, request.query, request.body) == ("POST", "/spot/orders", "", GATE_BODY)
    assert request.headers == {
        "KEY": API_KEY,
        "Timestamp": "1736411507",
        "SIGN": hmac.new(SECRET, GATE_SIGNED_TEXT, hashlib.sha512).hexdigest(),
        "Content-Type": "application/json",
        "Accept": "application/json",
        "x-gate-exptime": str(DEADLINE_MS),
    }


def test_gateio_hmac_sha512_baseline(benchmark: Any) -> None:
    """Baseline: HMAC-SHA512 hex of the prebuilt Gate signature string (body hash included), nothing else."""
    benchmark.group = "sign order request"
    new, sha512, message = hmac.new, hashlib.sha512, GATE_SIGNED_TEXT

    def mac() -> str:
        return new(SECRET, message, sha512).hexdigest()

    signature = benchmark.pedantic(mac, rounds=2000, iterations=5, warmup_rounds=100)
    assert signature == GateioSigner(CREDENTIALS).sign_rest("POST", "/api/v4/spot/orders", "", GATE_BODY, "1736411507")
