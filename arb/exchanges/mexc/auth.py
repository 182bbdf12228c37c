"""MEXC request signing: spot v3 (HMAC-SHA256 over query + body), contract v1 and WS login.

Pure functions of the credentials and explicit timestamps, so every signature is
reproducible in tests (``shared/data/vectors/signing_known_answers.json``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from urllib.parse import quote

from ...errors import ConfigurationError
from ...secrets import ApiCredentials
from . import constants

ParamValue = str | int

# What ``quote(text, safe="")`` leaves as it is: a value made only of these is sent unchanged.
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*").fullmatch


def encode_params(params: Iterable[tuple[str, ParamValue]]) -> str:
    """``k=v&...`` in the given order, values percent-encoded with upper-case hex (``,`` -> ``%2C``).

    MEXC signs the string exactly as sent, so the order is kept and nothing is sorted.
    """
    return "&".join(f"{key}={_percent_encoded(str(value))}" for key, value in params)


def _percent_encoded(text: str) -> str:
    # An order's values (symbol, side, decimals, client id, times) need no escape: checking
    # that costs a fraction of ``quote``'s work on the order path.
    return text if _UNRESERVED(text) is not None else quote(text, safe="")


class MexcSigner:
    """Signs MEXC requests with one API key; the HMAC key schedule is computed once."""

    __slots__ = ("_api_key", "_mac")

    def __init__(self, credentials: ApiCredentials) -> None:
        self._api_key = credentials.api_key.reveal()
        self._mac = hmac.new(credentials.secret_key.reveal().encode(), digestmod=hashlib.sha256)

    def __repr__(self) -> str:
        return "MexcSigner(api_key='****')"

    def sign(self, message: str) -> str:
        """Lower-case hex HMAC-SHA256 of ``message`` with the secret key."""
        mac = self._mac.copy()
        mac.update(message.encode())
        return mac.hexdigest()

    def signed_query(
        self,
        params: Iterable[tuple[str, ParamValue]],
        *,
        timestamp_ms: int,
        recv_window_ms: int = constants.DEFAULT_RECV_WINDOW_MS,
        body: str = "",
    ) -> str:
        """Spot v3 query string: ``params``, ``recvWindow``, ``timestamp`` and then ``signature``.

        The signed text is this query (before ``signature``) immediately followed by
        ``body`` with no ``&`` between them, as the venue concatenates them; pass the
        exact url-encoded body when parameters also travel in the body.
        """
        if not 0 < recv_window_ms <= constants.MAX_RECV_WINDOW_MS:
            raise ConfigurationError(
                [f"mexc recv_window_ms: {recv_window_ms} outside 1..{constants.MAX_RECV_WINDOW_MS}"]
            )
        encoded = encode_params(params)
        window = f"recvWindow={recv_window_ms}&timestamp={timestamp_ms}"
        query = f"{encoded}&{window}" if encoded else window
        return f"{query}&{constants.SIGNATURE_PARAM}={self.sign(query + body)}"

    def headers(self) -> dict[str, str]:
        """Headers of a signed spot request."""
        return {constants.API_KEY_HEADER: self._api_key, "Content-Type": "application/json"}

    def contract_signature(self, request_time_ms: int, param_string: str) -> str:
        """Contract v1 signature: HMAC-SHA256 hex of ``accessKey + Request-Time + paramString``."""
        return self.sign(f"{self._api_key}{request_time_ms}{param_string}")

    def contract_headers(
        self, request_time_ms: int, param_string: str, *, recv_window_s: int | None = None
    ) -> dict[str, str]:
        """Headers of a signed contract request; ``param_string`` from ``contract_param_string`` or the raw JSON body."""
        headers = {
            constants.CONTRACT_API_KEY_HEADER: self._api_key,
            constants.CONTRACT_TIME_HEADER: str(request_time_ms),
            constants.CONTRACT_SIGNATURE_HEADER: self.contract_signature(request_time_ms, param_string),
            "Content-Type": "application/json",
        }
        if recv_window_s is not None:
            headers[constants.CONTRACT_RECV_WINDOW_HEADER] = str(recv_window_s)
        return headers

    def contract_ws_login(self, request_time_ms: int) -> dict[str, object]:
        """The contract WebSocket ``login`` frame: signature = HMAC-SHA256(secret, apiKey + reqTime)."""
        return {
            "method": constants.FUTURES_WS_LOGIN,
            "param": {
                "apiKey": self._api_key,
                "reqTime": str(request_time_ms),
                "signature": self.contract_signature(request_time_ms, ""),
            },
        }


def contract_param_string(params: Mapping[str, ParamValue | None]) -> str:
    """The signed parameter string of a contract GET/DELETE: non-null params sorted by key, url-encoded."""
    return encode_params(sorted((k, v) for k, v in params.items() if v is not None))
