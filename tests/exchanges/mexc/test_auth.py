"""Tests of arb/exchanges/mexc/auth.py against the docs' known answers and ccxt's recorded URLs."""

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from arb.errors import ConfigurationError
from arb.exchanges.mexc.auth import MexcSigner, contract_param_string, encode_params
from arb.secrets import ApiCredentials, Secret

DOCS_KEY = "mx0aBYs33eIilxBWC5"
DOCS_SECRET = "45d0b3c26f2644f19bfb98b07741b2f5"


@pytest.fixture(scope="module")
def vectors(shared_data: Path) -> dict[str, Any]:
    return json.loads((shared_data / "vectors" / "signing_known_answers.json").read_text())  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def ccxt(shared_data: Path) -> dict[str, Any]:
    return json.loads((shared_data / "examples" / "ccxt_static_fixtures_extract.json").read_text())  # type: ignore[no-any-return]


def signer(key: str = DOCS_KEY, secret: str = DOCS_SECRET) -> MexcSigner:
    return MexcSigner(ApiCredentials(Secret(key), Secret(secret)))


def reference_hmac(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def test_recv_window_outside_the_documented_range_is_refused() -> None:
    for window in (0, -1, 60001):
        with pytest.raises(ConfigurationError, match=f"mexc recv_window_ms: {window} outside 1..60000"):
            signer().signed_query([("symbol", "BTCUSDT")], timestamp_ms=1, recv_window_ms=window)


def test_secret_never_shows_in_repr_or_headers() -> None:
    s = signer()
    assert DOCS_SECRET not in repr(s) and DOCS_KEY not in repr(s)
    assert DOCS_SECRET not in repr(s.headers()) and DOCS_SECRET not in repr(s.contract_headers(1, ""))
    assert s.headers() == {"X-MEXC-APIKEY": DOCS_KEY, "Content-Type": "application/json"}


def test_docs_known_answers(vectors: dict[str, Any]) -> None:
    for vector in vectors["mexc_spot_v3"]:
        s = signer(vector["api_key"], vector["secret"])
        assert s.sign(vector["message"]) == vector["expected"], vector["name"]


def test_docs_example_1_is_an_erratum(vectors: dict[str, Any]) -> None:
    """The docs print example 1 with the same input as example 2 but a digest that input cannot produce."""
    example_2 = vectors["mexc_spot_v3"][0]
    wrong = vectors["mexc_spot_v3_docs_erratum"]["wrong_published_value"]
    ours = signer().sign(example_2["message"])
    assert ours != wrong
    assert ours == example_2["expected"] == reference_hmac(DOCS_SECRET, example_2["message"])


def test_signed_query_reproduces_docs_example_2(vectors: dict[str, Any]) -> None:
    expected = vectors["mexc_spot_v3"][0]["expected"]
    query = signer().signed_query(
        [("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "LIMIT"), ("quantity", "1"), ("price", "11")],
        timestamp_ms=1644489390087,
        recv_window_ms=5000,
    )
    assert query == (
        "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=11&recvWindow=5000&timestamp=1644489390087"
        f"&signature={expected}"
    )


def test_mixed_query_and_body_are_concatenated_without_ampersand(vectors: dict[str, Any]) -> None:
    expected = vectors["mexc_spot_v3"][1]["expected"]
    query = "symbol=BTCUSDT&side=BUY&type=LIMIT"
    body = "quantity=1&price=11&recvWindow=5000&timestamp=1644489390087"
    assert signer().sign(query + body) == expected
    assert signer().signed_query([], timestamp_ms=7, body="x=1").endswith(
        "&signature=" + reference_hmac(DOCS_SECRET, "recvWindow=5000&timestamp=7x=1")
    )


def test_param_order_matches_ccxt_signed_urls(ccxt: dict[str, Any]) -> None:
    """ccxt's recorded order URLs keep the caller's parameter order; our query does the same."""
    for name, url in ccxt["mexc_spot_request_urls"].items():
        pairs = [tuple(part.split("=", 1)) for part in urlsplit(url).query.split("&")]
        business = [(k, unquote(v)) for k, v in pairs if k not in ("timestamp", "recvWindow", "signature")]
        timestamp = int(dict(pairs)["timestamp"])
        query = signer().signed_query(business, timestamp_ms=timestamp)
        expected_prefix = url.split("?", 1)[1].split("&timestamp=", 1)[0]
        assert query.startswith(expected_prefix + "&recvWindow=5000&timestamp="), name
        signature = query.rsplit("&signature=", 1)[1]
        assert len(signature) == 64 and signature == signature.lower()


def test_batch_orders_value_is_encoded_like_ccxt(ccxt: dict[str, Any]) -> None:
    url = ccxt["mexc_spot_request_urls"]["batch_orders"]
    recorded = urlsplit(url).query.split("&", 1)[0]
    orders = [
        {"symbol": "ATLASUSDT", "side": "BUY", "type": "LIMIT", "quantity": "1000", "price": "0.005"},
        {"symbol": "ATLASUSDT", "side": "BUY", "type": "LIMIT", "quantity": "1100", "price": "0.0054"},
    ]
    assert encode_params([("batchOrders", json.dumps(orders, separators=(",", ":")))]) == recorded


def test_contract_signature_and_param_string() -> None:
    s = signer()
    params = contract_param_string({"symbol": "BTC_USDT", "page_size": 20, "end_time": None, "category": "a,b"})
    assert params == "category=a%2Cb&page_size=20&symbol=BTC_USDT"
    assert s.contract_signature(1611038237237, params) == reference_hmac(DOCS_SECRET, DOCS_KEY + "1611038237237" + params)
    body = '{"symbol":"LTC_USDT","vol":1,"type":6,"openType":2,"side":1}'
    headers = s.contract_headers(1611038237237, body, recv_window_s=30)
    assert headers["ApiKey"] == DOCS_KEY and headers["Request-Time"] == "1611038237237"
    assert headers["Signature"] == reference_hmac(DOCS_SECRET, DOCS_KEY + "1611038237237" + body)
    assert headers["Recv-Window"] == "30"
    assert "Recv-Window" not in s.contract_headers(1, "")


def test_contract_ws_login() -> None:
    frame = signer().contract_ws_login(1611038237237)
    assert frame == {
        "method": "login",
        "param": {
            "apiKey": DOCS_KEY,
            "reqTime": "1611038237237",
            "signature": reference_hmac(DOCS_SECRET, DOCS_KEY + "1611038237237"),
        },
    }


def test_signer_is_reusable() -> None:
    """The precomputed HMAC state must not leak between requests."""
    s = signer()
    first = s.sign("a=1")
    s.sign("b=2")
    assert s.sign("a=1") == first == reference_hmac(DOCS_SECRET, "a=1")


@given(st.lists(st.tuples(st.sampled_from(["symbol", "price", "newClientOrderId"]), st.one_of(st.text(), st.integers()))))
@example([("symbol", "BTCUSDT"), ("price", "0.000123"), ("newClientOrderId", "arb-1_x~y.z")])
@example([("batchOrders", '[{"a":1},{"b":2}]'), ("note", "a b+c/d\n"), ("unicode", "\u00e9\u0661"), ("empty", ""), ("list", "1,2")])
def test_params_are_encoded_as_urllib_quotes_every_value(params: list[tuple[str, str | int]]) -> None:
    expected = "&".join(f"{key}={quote(str(value), safe='')}" for key, value in params)
    assert encode_params(params) == expected
