"""Tests of arb/exchanges/gateio/auth.py against the docs' known answers."""

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from arb.exchanges.gateio.auth import EMPTY_BODY_SHA512, GateioSigner
from arb.secrets import ApiCredentials, Secret

KEY = "ea83fad2604399da16bf97e6eea772a6"
SECRET = "0b2c6e3a1d5f4e7a9c8b7d6e5f4a3b2c"


@pytest.fixture(scope="module")
def vectors(shared_data: Path) -> list[dict[str, str]]:
    return json.loads((shared_data / "vectors" / "signing_known_answers.json").read_text())["gate_v4_rest"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def ccxt(shared_data: Path) -> dict[str, Any]:
    return json.loads((shared_data / "examples" / "ccxt_static_fixtures_extract.json").read_text())  # type: ignore[no-any-return]


def signer(key: str = KEY, secret: str = SECRET) -> GateioSigner:
    return GateioSigner(ApiCredentials(Secret(key), Secret(secret)))


def reference_hmac(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha512).hexdigest()


def test_secret_never_shows_in_repr_or_headers() -> None:
    s = signer()
    headers = s.rest_headers("GET", "/api/v4/spot/accounts", "", b"", 1)
    assert SECRET not in repr(s) and KEY not in repr(s) and SECRET not in repr(headers)


def test_docs_known_answers(vectors: list[dict[str, str]]) -> None:
    for vector in vectors:
        s = signer(vector["key"], vector["secret"])
        body = vector["body"].encode()
        assert hashlib.sha512(body).hexdigest() == vector["body_sha512_hex"]
        assert s.sign(vector["message"].encode()) == vector["expected"], vector["name"]
        signature = s.sign_rest(vector["method"], vector["path"], vector["query"], body, vector["timestamp"])
        assert signature == vector["expected"], vector["name"]
        assert s.sign_rest(vector["method"].lower(), vector["path"], vector["query"], body, int(vector["timestamp"])) == (
            vector["expected"]
        )


def test_empty_body_hash_is_sha512_of_nothing(vectors: list[dict[str, str]]) -> None:
    assert EMPTY_BODY_SHA512 == vectors[0]["body_sha512_hex"]


def test_rest_headers(vectors: list[dict[str, str]]) -> None:
    vector = vectors[1]
    headers = signer(vector["key"], vector["secret"]).rest_headers(
        "POST", vector["path"], "", vector["body"].encode(), vector["timestamp"]
    )
    assert headers["KEY"] == "key"
    assert headers["Timestamp"] == "1541993715"
    assert headers["SIGN"] == vector["expected"]
    assert headers["Content-Type"] == "application/json"


def test_signing_a_recorded_order_body(ccxt: dict[str, Any]) -> None:
    """The exact bytes sent are what is hashed: a re-encoded body gives the same signature only if byte-identical."""
    body = msgspec.json.encode(ccxt["gate_request_bodies"]["spot_limit_buy"])
    assert body == b'{"currency_pair":"LTC_USDT","type":"limit","account":"spot","side":"buy","amount":"0.1","price":"50"}'
    expected = reference_hmac(
        SECRET, f"POST\n/api/v4/spot/orders\n\n{hashlib.sha512(body).hexdigest()}\n1700000000"
    )
    assert signer().sign_rest("POST", "/api/v4/spot/orders", "", body, 1700000000) == expected
    assert signer().sign_rest("POST", "/api/v4/spot/orders", "", body + b" ", 1700000000) != expected


def test_private_channel_auth() -> None:
    auth = signer().channel_auth("spot.orders", "subscribe", 1681984544)
    assert auth == {
        "method": "api_key",
        "KEY": KEY,
        "SIGN": reference_hmac(SECRET, "channel=spot.orders&event=subscribe&time=1681984544"),
    }


def test_ws_api_login_and_order_signatures() -> None:
    s = signer()
    payload = s.ws_login_payload("spot.login", 1681984544, "request-1")
    assert payload == {
        "api_key": KEY,
        "signature": reference_hmac(SECRET, "api\nspot.login\n\n1681984544"),
        "timestamp": "1681984544",
        "req_id": "request-1",
    }
    req_param = '{"currency_pair":"GT_USDT","type":"limit","side":"buy","amount":"1","price":"1"}'
    assert s.ws_api_signature("spot.order_place", req_param, "1681984544") == reference_hmac(
        SECRET, f"api\nspot.order_place\n{req_param}\n1681984544"
    )
