"""Secrets: masking everywhere, environment loading, Fernet-encrypted keys."""

import logging
import pickle

import msgspec
import pytest
from cryptography.fernet import Fernet

from arb.errors import ConfigurationError
from arb.secrets import Secret, encrypt_secret, generate_encryption_key, load_credentials

VALUE = "sk-live-abcdef123456"


def test_secret_never_shows_its_value(caplog: pytest.LogCaptureFixture) -> None:
    secret = Secret(VALUE)
    logging.getLogger("t").warning("secret is %s / %r / %s", secret, secret, [secret])
    for text in (repr(secret), str(secret), f"{secret}", caplog.text, secret.masked()):
        assert VALUE not in text
    assert secret.reveal() == VALUE


def test_secret_cannot_be_serialised() -> None:
    with pytest.raises(TypeError):
        pickle.dumps(Secret(VALUE))
    with pytest.raises(TypeError):
        msgspec.json.encode(Secret(VALUE))


def test_plain_credentials() -> None:
    creds = load_credentials("mexc", {"MEXC_API_KEY": "k1", "MEXC_SECRET_KEY": VALUE})
    assert creds is not None
    assert creds.api_key.reveal() == "k1" and creds.secret_key.reveal() == VALUE
    assert VALUE not in repr(creds)


def test_no_credentials_is_none() -> None:
    assert load_credentials("gateio", {}) is None


def test_half_a_pair_is_an_error_naming_the_missing_variable() -> None:
    with pytest.raises(ConfigurationError) as info:
        load_credentials("gateio", {"GATEIO_API_KEY": "k"})
    assert info.value.problems == ("env GATEIO_SECRET_KEY: missing (the other half of the gateio key pair is set)",)


def test_plain_and_encrypted_together_is_ambiguous() -> None:
    env = {"MEXC_API_KEY": "a", "MEXC_API_KEY_ENCRYPTED": "b", "MEXC_SECRET_KEY": "c"}
    with pytest.raises(ConfigurationError, match="set one or the other"):
        load_credentials("mexc", env)


def test_encrypted_round_trip() -> None:
    key = generate_encryption_key()
    env = {
        "ENCRYPTION_KEY": key,
        "GATEIO_API_KEY_ENCRYPTED": encrypt_secret("api", key),
        "GATEIO_SECRET_KEY_ENCRYPTED": encrypt_secret(VALUE, key),
    }
    creds = load_credentials("gateio", env)
    assert creds is not None and creds.secret_key.reveal() == VALUE


def test_credentials_name_the_variable_the_key_was_read_from() -> None:
    key = generate_encryption_key()
    plain = load_credentials("mexc", {"MEXC_API_KEY": "k1", "MEXC_SECRET_KEY": VALUE})
    encrypted = load_credentials("mexc", {
        "ENCRYPTION_KEY": key, "MEXC_API_KEY_ENCRYPTED": encrypt_secret("k1", key), "MEXC_SECRET_KEY": VALUE,
    })
    assert plain is not None and plain.api_key_variable == "MEXC_API_KEY"
    assert encrypted is not None and encrypted.api_key_variable == "MEXC_API_KEY_ENCRYPTED"


def test_an_encrypted_value_that_decrypts_to_nothing_is_refused() -> None:
    # An empty plain variable counts as unset; an empty decrypted one was taken as a key of 0 characters.
    key = generate_encryption_key()
    env = {
        "ENCRYPTION_KEY": key,
        "MEXC_API_KEY_ENCRYPTED": encrypt_secret("", key),
        "MEXC_SECRET_KEY_ENCRYPTED": encrypt_secret("", key),
    }
    with pytest.raises(ConfigurationError) as info:
        load_credentials("mexc", env)
    assert info.value.problems == (
        "env MEXC_API_KEY_ENCRYPTED: decrypts to an empty value",
        "env MEXC_SECRET_KEY_ENCRYPTED: decrypts to an empty value",
    )


@pytest.mark.parametrize(
    ("encryption_key", "expected"),
    [
        (None, "env MEXC_API_KEY_ENCRYPTED: set, but ENCRYPTION_KEY is missing"),
        ("not-a-key", "env ENCRYPTION_KEY: not a valid Fernet key"),
        (Fernet.generate_key().decode(), "env MEXC_API_KEY_ENCRYPTED: cannot be decrypted with ENCRYPTION_KEY"),
    ],
)
def test_decryption_problems_name_the_variable_not_the_value(encryption_key: str | None, expected: str) -> None:
    token = encrypt_secret(VALUE, generate_encryption_key())
    env = {"MEXC_API_KEY_ENCRYPTED": token, "MEXC_SECRET_KEY": "s"}
    if encryption_key is not None:
        env["ENCRYPTION_KEY"] = encryption_key
    with pytest.raises(ConfigurationError) as info:
        load_credentials("mexc", env)
    assert info.value.problems[0].startswith(expected)
    assert token not in str(info.value) and VALUE not in str(info.value)


def test_a_bad_encryption_key_is_reported_once_for_both_encrypted_variables() -> None:
    env = {
        "ENCRYPTION_KEY": "not-a-key",
        "MEXC_API_KEY_ENCRYPTED": encrypt_secret("api", generate_encryption_key()),
        "MEXC_SECRET_KEY_ENCRYPTED": encrypt_secret(VALUE, generate_encryption_key()),
    }
    with pytest.raises(ConfigurationError) as info:
        load_credentials("mexc", env)
    assert len(info.value.problems) == 1 and info.value.problems[0].startswith("env ENCRYPTION_KEY: not a valid")


@pytest.mark.parametrize("bad", [f"{VALUE}\n", f" {VALUE}", "ke\ty", "kéy"])
def test_a_key_that_cannot_go_into_a_header_is_refused_naming_the_variable(bad: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_credentials("gateio", {"GATEIO_API_KEY": bad, "GATEIO_SECRET_KEY": "s"})
    assert info.value.problems == (
        "env GATEIO_API_KEY: contains whitespace, control or non-ASCII characters (a trailing newline from a file?)",
    )
    key = generate_encryption_key()
    encrypted = {"ENCRYPTION_KEY": key, "GATEIO_API_KEY": "k", "GATEIO_SECRET_KEY_ENCRYPTED": encrypt_secret(bad, key)}
    with pytest.raises(ConfigurationError, match="env GATEIO_SECRET_KEY_ENCRYPTED: contains whitespace"):
        load_credentials("gateio", encrypted)


@pytest.mark.parametrize("quote", ['"', "'"])
def test_a_quoted_key_is_refused_naming_the_variable_not_the_value(quote: str) -> None:
    # `docker run --env-file` keeps quotes written around a value: the venue would refuse every signed call.
    with pytest.raises(ConfigurationError) as info:
        load_credentials("mexc", {"MEXC_API_KEY": "k1", "MEXC_SECRET_KEY": f"{quote}{VALUE}{quote}"})
    assert info.value.problems == (f"env MEXC_SECRET_KEY: is quoted (starts and ends with {quote}); "
                                   "give the value without the quotes",)
    assert VALUE not in str(info.value)
    key = generate_encryption_key()
    encrypted = {"ENCRYPTION_KEY": key, "MEXC_API_KEY_ENCRYPTED": encrypt_secret(f"{quote}k1{quote}", key),
                 "MEXC_SECRET_KEY": VALUE}
    with pytest.raises(ConfigurationError, match="env MEXC_API_KEY_ENCRYPTED: is quoted"):
        load_credentials("mexc", encrypted)


def test_an_encrypted_value_that_is_not_text_is_a_problem_not_a_crash() -> None:
    # os.environ holds an undecodable byte as a lone surrogate.
    env = {"ENCRYPTION_KEY": generate_encryption_key(), "MEXC_API_KEY_ENCRYPTED": "gAAAA\udcff", "MEXC_SECRET_KEY": "s"}
    with pytest.raises(ConfigurationError, match="env MEXC_API_KEY_ENCRYPTED: cannot be decrypted"):
        load_credentials("mexc", env)
