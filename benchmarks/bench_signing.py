"""Building and signing one order request per venue (target <= 20 us each).

Times the whole cold-path step from integer ticks/lots to wire-ready bytes: format the
price and size from the instrument, build the MEXC query string or the Gate JSON body,
sign it, and produce the headers. Inputs (instrument, signer) are built outside the timed body.

Baselines in the same group, one per venue: a bare ``hmac.new(key, message, digest).hexdigest()``
over the venue's signed text, prebuilt outside the timed body (MEXC: the query string before
``&signature=``; Gate: the five-line ``METHOD/PATH/QUERY/SHA512(body)/TIMESTAMP`` string), so
the ratio of each venue's row to its baseline is what formatting, encoding the request and
the headers add to the MAC itself. The baselines pay the HMAC key schedule on every call (the
signers compute it once and copy it), so the ratio understates that overhead slightly.
"""

import hashlib
import hmac
from decimal import Decimal
from typing import Any

import msgspec

from arb.exchanges.gateio.auth import GateioSigner
from arb.exchanges.mexc.auth import MexcSigner
from arb.instruments import Instrument
from arb.secrets import ApiCredentials, Secret
from arb.types import ExchangeName

CREDENTIALS = ApiCredentials(Secret("mx0aBYs33eIilxBWC5"), Secret("45d0b3c26f2644f19bfb98b07741b2f5"))
PRICE_TICKS = 9_313_275  # 93132.75
SIZE_LOTS = 1_500  # 0.0015
SECRET = CREDENTIALS.secret_key.reveal().encode()
MEXC_SIGNED_TEXT = (
    b"symbol=BTCUSDT&side=BUY&type=IMMEDIATE_OR_CANCEL&quantity=0.001500&price=93132.75"
    b"&recvWindow=5000&timestamp=1736411507002"
)
GATE_BODY = (
    b'{"currency_pair":"BTC_USDT","type":"limit","account":"spot","side":"buy","amount":"0.001500",'
    b'"price":"93132.75","time_in_force":"ioc","text":"t-arb-1"}'
)


def instrument(exchange: ExchangeName, venue_symbol: str) -> Instrument:
    return Instrument(
        exchange=exchange, symbol="BTC/USDT", venue_symbol=venue_symbol, base="BTC", quote="USDT",
        tick_size=Decimal("0.01"), lot_size=Decimal("0.000001"), min_size=Decimal("0.000001"),
        min_notional=Decimal(1), taker_fee=Decimal("0.0005"), maker_fee=Decimal("0"),
        price_decimals=2, size_decimals=6,
    )


def test_mexc_spot_order_query(benchmark: Any) -> None:
    """POST /api/v3/order: query string with recvWindow, timestamp and signature, plus headers."""
    benchmark.group = "sign order request"
    mexc = instrument(ExchangeName.MEXC, "BTCUSDT")
    signer = MexcSigner(CREDENTIALS)
    signed_query, format_price, format_size, headers = signer.signed_query, mexc.format_price, mexc.format_size, signer.headers

    def build() -> tuple[str, dict[str, str]]:
        params = (
            ("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "IMMEDIATE_OR_CANCEL"),
            ("quantity", format_size(SIZE_LOTS)), ("price", format_price(PRICE_TICKS)),
        )
        return signed_query(params, timestamp_ms=1736411507002), headers()

    query, _ = benchmark.pedantic(build, rounds=2000, iterations=5, warmup_rounds=100)
    unsigned, signature = query.rsplit("&signature=", 1)
    assert unsigned == MEXC_SIGNED_TEXT.decode()
    assert signature == signer.sign(unsigned)


def test_mexc_hmac_sha256_baseline(benchmark: Any) -> None:
    """Baseline: HMAC-SHA256 hex of the prebuilt MEXC query string, nothing else."""
    benchmark.group = "sign order request"
    new, sha256, message = hmac.new, hashlib.sha256, MEXC_SIGNED_TEXT

    def mac() -> str:
        return new(SECRET, message, sha256).hexdigest()

    signature = benchmark.pedantic(mac, rounds=2000, iterations=5, warmup_rounds=100)
    assert signature == MexcSigner(CREDENTIALS).sign(MEXC_SIGNED_TEXT.decode())


class SpotOrderRequest(msgspec.Struct, omit_defaults=True):
    currency_pair: str
    type: str
    account: str
    side: str
    amount: str
    price: str
    time_in_force: str
    text: str = ""


def test_gateio_spot_order_body(benchmark: Any) -> None:
    """POST /spot/orders: JSON body bytes and the KEY/Timestamp/SIGN headers."""
    benchmark.group = "sign order request"
    gate = instrument(ExchangeName.GATEIO, "BTC_USDT")
    signer = GateioSigner(CREDENTIALS)
    encode, rest_headers, format_price, format_size = msgspec.json.encode, signer.rest_headers, gate.format_price, gate.format_size

    def build() -> tuple[bytes, dict[str, str]]:
        body = encode(SpotOrderRequest(
            "BTC_USDT", "limit", "spot", "buy", format_size(SIZE_LOTS), format_price(PRICE_TICKS), "ioc", "t-arb-1"
        ))
        return body, rest_headers("POST", "/api/v4/spot/orders", "", body, 1736411507)

    body, headers = benchmark.pedantic(build, rounds=2000, iterations=5, warmup_rounds=100)
    assert body == GATE_BODY
    assert headers["SIGN"] == signer.sign_rest("POST", "/api/v4/spot/orders", "", body, "1736411507")


def test_gateio_hmac_sha512_baseline(benchmark: Any) -> None:
    """Baseline: HMAC-SHA512 hex of the prebuilt Gate signature string (body hash included), nothing else."""
    benchmark.group = "sign order request"
    message = b"POST\n/api/v4/spot/orders\n\n%s\n1736411507" % hashlib.sha512(GATE_BODY).hexdigest().encode()
    new, sha512 = hmac.new, hashlib.sha512

    def mac() -> str:
        return new(SECRET, message, sha512).hexdigest()

    signature = benchmark.pedantic(mac, rounds=2000, iterations=5, warmup_rounds=100)
    assert signature == GateioSigner(CREDENTIALS).sign_rest("POST", "/api/v4/spot/orders", "", GATE_BODY, "1736411507")
