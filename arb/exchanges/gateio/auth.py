"""Gate.io API v4 signing: REST (HMAC-SHA512 over a five-line string), WS channel auth and WS API login.

Pure functions of the credentials and explicit timestamps, so every signature is
reproducible in tests (``shared/data/vectors/signing_known_answers.json``).
"""

from __future__ import annotations

import hashlib
import hmac

from ...secrets import ApiCredentials
from . import constants

EMPTY_BODY_SHA512 = hashlib.sha512(b"").hexdigest()


class GateioSigner:
    """Signs Gate.io requests with one API key; the HMAC key schedule is computed once."""

    __slots__ = ("_api_key", "_mac")

    def __init__(self, credentials: ApiCredentials) -> None:
        self._api_key = credentials.api_key.reveal()
        self._mac = hmac.new(credentials.secret_key.reveal().encode(), digestmod=hashlib.sha512)

    def __repr__(self) -> str:
        return "GateioSigner(api_key='****')"

    def sign(self, message: bytes) -> str:
        """Lower-case hex HMAC-SHA512 of ``message`` with the secret key."""
        mac = self._mac.copy()
        mac.update(message)
        return mac.hexdigest()

    def sign_rest(self, method: str, path: str, query: str, body: bytes, timestamp: int | str) -> str:
        """``SIGN`` of a REST request: ``METHOD\\nPATH\\nQUERY\\nhex(SHA512(body))\\nTIMESTAMP``.

        ``path`` includes ``/api/v4``; ``query`` is the raw query exactly as sent (or "");
        ``body`` is the exact bytes sent (b"" when none).
        """
        body_hash = hashlib.sha512(body).hexdigest() if body else EMPTY_BODY_SHA512
        return self.sign(f"{method.upper()}\n{path}\n{query}\n{body_hash}\n{timestamp}".encode())

    def rest_headers(self, method: str, path: str, query: str, body: bytes, timestamp: int | str) -> dict[str, str]:
        """Headers of a signed REST request (``KEY``, ``Timestamp``, ``SIGN``)."""
        return {
            constants.KEY_HEADER: self._api_key,
            constants.TIMESTAMP_HEADER: str(timestamp),
            constants.SIGN_HEADER: self.sign_rest(method, path, query, body, timestamp),
            "Content-Type": "application/json",
            "Accept": "application/json",
        }

    def channel_auth(self, channel: str, event: str, time_s: int) -> dict[str, str]:
        """The ``auth`` object of a private channel request: SIGN over ``channel=<ch>&event=<ev>&time=<t>``."""
        return {
            "method": constants.WS_AUTH_METHOD,
            "KEY": self._api_key,
            "SIGN": self.sign(f"channel={channel}&event={event}&time={time_s}".encode()),
        }

    def ws_api_signature(self, channel: str, req_param: str, timestamp: int | str) -> str:
        """WS API signature over ``api\\n<channel>\\n<req_param>\\n<timestamp>`` (req_param "" for login)."""
        return self.sign(f"{constants.EVENT_API}\n{channel}\n{req_param}\n{timestamp}".encode())

    def ws_login_payload(self, channel: str, timestamp: int | str, req_id: str) -> dict[str, str]:
        """The ``payload`` of a ``spot.login``/``futures.login`` WS API request."""
        return {
            "api_key": self._api_key,
            "signature": self.ws_api_signature(channel, "", timestamp),
            "timestamp": str(timestamp),
            "req_id": req_id,
        }
