"""API credentials: a masked ``Secret`` type and loading (optionally Fernet-encrypted) from the environment."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import msgspec

from .errors import ConfigurationError

VENUE_ENV_PREFIX = {"mexc": "MEXC", "gateio": "GATEIO"}
MASK = "****"  # what is shown in place of a secret


class Secret:
    """A sensitive string whose repr and str never show it; call ``reveal()`` to use it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret value itself; only for signing requests."""
        return self._value

    def masked(self) -> str:
        """A hint safe to log: the length and nothing of the content."""
        return f"<{len(self._value)} chars>"

    def __repr__(self) -> str:
        return "Secret('****')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("Secret cannot be pickled")


class ApiCredentials(msgspec.Struct, frozen=True):
    """An API key and its secret for one venue; ``api_key_variable`` names the environment variable
    the key was read from (``MEXC_API_KEY_ENCRYPTED``), None when it was given otherwise."""

    api_key: Secret
    secret_key: Secret
    api_key_variable: str | None = None

    def __repr__(self) -> str:
        return f"ApiCredentials(api_key={self.api_key!r}, secret_key={self.secret_key!r})"


def redacted(text: str, values: Iterable[str]) -> str:
    """``text`` with each of ``values`` in it replaced by ``****``: for a venue's text, which may echo
    what a request carried (its API key, its signature)."""
    # Longest first: a value inside another would otherwise break the longer one's match.
    for value in sorted({value for value in values if value}, key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


def load_credentials(venue: str, environ: Mapping[str, str] | None = None) -> ApiCredentials | None:
    """Credentials for ``venue`` from ``<VENUE>_API_KEY``/``<VENUE>_SECRET_KEY`` or their
    ``*_ENCRYPTED`` forms decrypted with ``ENCRYPTION_KEY``; None when none are set.

    Raises ConfigurationError naming the variables (never their values) when the
    set is incomplete or cannot be decrypted.
    """
    env = os.environ if environ is None else environ
    prefix = VENUE_ENV_PREFIX[venue]
    problems: list[str] = []
    values: dict[str, str] = {}
    read_from: dict[str, str] = {}
    for part in ("API_KEY", "SECRET_KEY"):
        plain_name = f"{prefix}_{part}"
        encrypted_name = f"{plain_name}_ENCRYPTED"
        plain, encrypted = env.get(plain_name), env.get(encrypted_name)
        if plain and encrypted:
            problems.append(f"env {plain_name} and {encrypted_name}: set one or the other, not both")
        elif plain:
            if _well_formed(plain_name, plain, problems):
                values[part], read_from[part] = plain, plain_name
        elif encrypted:
            decrypted = _decrypt(encrypted_name, encrypted, env, problems)
            if decrypted == "":  # an empty plain variable counts as unset; an empty key is no key
                problems.append(f"env {encrypted_name}: decrypts to an empty value")
            elif decrypted is not None and _well_formed(encrypted_name, decrypted, problems):
                values[part], read_from[part] = decrypted, encrypted_name
    if not problems and len(values) == 1:
        missing = "SECRET_KEY" if "API_KEY" in values else "API_KEY"
        problems.append(f"env {prefix}_{missing}: missing (the other half of the {venue} key pair is set)")
    if problems:
        raise ConfigurationError(list(dict.fromkeys(problems)))  # a bad ENCRYPTION_KEY once, not per variable
    if not values:
        return None
    return ApiCredentials(Secret(values["API_KEY"]), Secret(values["SECRET_KEY"]), read_from["API_KEY"])


def header_safe(value: str) -> bool:
    """Whether ``value`` can go into a request header as it is: printable ASCII, no whitespace (as
    every venue key and secret is)."""
    return value.isascii() and value.isprintable() and not any(c.isspace() for c in value)


def _well_formed(name: str, value: str, problems: list[str]) -> bool:
    if not header_safe(value):
        problems.append(
            f"env {name}: contains whitespace, control or non-ASCII characters (a trailing newline from a file?)"
        )
        return False
    quote = quote_around(value)
    if quote is not None:
        problems.append(f"env {name}: is quoted (starts and ends with {quote}); give the value without the quotes")
        return False
    return True


def quote_around(value: str) -> str | None:
    """The quote ``value`` starts and ends with, or None. No venue's key or secret has quotes: they are
    what ``docker run --env-file`` keeps of a value written quoted."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[0]
    return None


def _decrypt(name: str, token: str, env: Mapping[str, str], problems: list[str]) -> str | None:
    from cryptography.fernet import Fernet, InvalidToken

    key = env.get("ENCRYPTION_KEY")
    if not key:
        problems.append(f"env {name}: set, but ENCRYPTION_KEY is missing")
        return None
    try:
        fernet = Fernet(key.encode())
    except (ValueError, TypeError):
        problems.append("env ENCRYPTION_KEY: not a valid Fernet key (32 url-safe base64-encoded bytes)")
        return None
    try:
        return fernet.decrypt(token.encode()).decode()
    except (InvalidToken, UnicodeEncodeError):
        problems.append(f"env {name}: cannot be decrypted with ENCRYPTION_KEY (wrong key or corrupted value)")
    except UnicodeDecodeError:
        problems.append(f"env {name}: decrypts to bytes that are not UTF-8 text")
    return None


def encrypt_secret(value: str, encryption_key: str) -> str:
    """The Fernet token of ``value`` under ``encryption_key``, for ``*_ENCRYPTED`` variables."""
    from cryptography.fernet import Fernet

    return Fernet(encryption_key.encode()).encrypt(value.encode()).decode()


def generate_encryption_key() -> str:
    """A fresh Fernet key for ``ENCRYPTION_KEY``."""
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()
