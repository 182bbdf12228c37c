"""Tests of arb/exchanges/errors.py with the venue tables from each constants.py."""

import pytest

from arb.errors import ExchangeConnectionError, ExchangeError, OrderRejectedError, RateLimitError
from arb.exchanges.errors import ERROR_CLASS_BY_CATEGORY, ErrorCategory, classify_error, venue_error
from arb.exchanges.gateio import constants as gate
from arb.exchanges.mexc import constants as mexc


def mexc_error(**kwargs: object) -> ExchangeError:
    return venue_error("mexc", "POST /api/v3/order BTCUSDT", codes=mexc.ERROR_CODES, http_statuses=mexc.HTTP_STATUSES, **kwargs)  # type: ignore[arg-type]


def gate_error(**kwargs: object) -> ExchangeError:
    return venue_error("gateio", "POST /spot/orders BTC_USDT", codes=gate.ERROR_LABELS, http_statuses=gate.HTTP_STATUSES, **kwargs)  # type: ignore[arg-type]


def test_unknown_code_and_status_give_a_plain_exchange_error() -> None:
    error = mexc_error(code=987654, http_status=400)
    assert type(error) is ExchangeError and error.category is None
    assert str(error) == "mexc: POST /api/v3/order BTCUSDT [HTTP 400] (code 987654)"
    assert type(gate_error()) is ExchangeError


def test_every_category_has_an_error_class() -> None:
    assert set(ERROR_CLASS_BY_CATEGORY) == set(ErrorCategory)


@pytest.mark.parametrize(
    ("code", "category", "cls"),
    [
        (700003, ErrorCategory.TIMESTAMP, ExchangeError),
        ("700003", ErrorCategory.TIMESTAMP, ExchangeError),  # codes sometimes arrive as strings
        (-2011, ErrorCategory.UNKNOWN_ORDER, OrderRejectedError),
        ("-2013", ErrorCategory.UNKNOWN_ORDER, OrderRejectedError),
        (10101, ErrorCategory.INSUFFICIENT_BALANCE, OrderRejectedError),
        (30002, ErrorCategory.MIN_NOTIONAL, OrderRejectedError),
        (10096, ErrorCategory.PRECISION, OrderRejectedError),
        (602, ErrorCategory.AUTH_FAILED, ExchangeError),
        (700002, ErrorCategory.AUTH_FAILED, ExchangeError),
        (30016, ErrorCategory.MAINTENANCE, ExchangeConnectionError),
        (429, ErrorCategory.RATE_LIMITED, RateLimitError),
    ],
)
def test_mexc_codes(code: int | str, category: ErrorCategory, cls: type[ExchangeError]) -> None:
    error = mexc_error(code=code, http_status=400)
    assert type(error) is cls and error.category is category and error.code == code and error.venue == "mexc"


@pytest.mark.parametrize(
    ("label", "category", "cls"),
    [
        ("BALANCE_NOT_ENOUGH", ErrorCategory.INSUFFICIENT_BALANCE, OrderRejectedError),
        ("INSUFFICIENT_AVAILABLE", ErrorCategory.INSUFFICIENT_BALANCE, OrderRejectedError),
        ("INVALID_PRECISION", ErrorCategory.PRECISION, OrderRejectedError),
        ("AMOUNT_TOO_LITTLE", ErrorCategory.MIN_NOTIONAL, OrderRejectedError),
        ("ORDER_NOT_FOUND", ErrorCategory.UNKNOWN_ORDER, OrderRejectedError),
        ("POC_FILL_IMMEDIATELY", ErrorCategory.ORDER_REJECTED, OrderRejectedError),
        # Futures refusals against the position: certain, not queried until the acceptance window ends.
        ("PRICE_OVER_LIQUIDATION", ErrorCategory.ORDER_REJECTED, OrderRejectedError),
        ("POSITION_IN_LIQUIDATION", ErrorCategory.ORDER_REJECTED, OrderRejectedError),
        ("TOO_MANY_REQUESTS", ErrorCategory.RATE_LIMITED, RateLimitError),
        ("INVALID_KEY", ErrorCategory.AUTH_FAILED, ExchangeError),
        ("INVALID_SIGNATURE", ErrorCategory.AUTH_FAILED, ExchangeError),
        ("REQUEST_EXPIRED", ErrorCategory.TIMESTAMP, ExchangeError),
        ("TOO_BUSY", ErrorCategory.OUTCOME_UNKNOWN, ExchangeError),
        ("SERVER_ERROR", ErrorCategory.OUTCOME_UNKNOWN, ExchangeError),
    ],
)
def test_gate_labels(label: str, category: ErrorCategory, cls: type[ExchangeError]) -> None:
    error = gate_error(code=label, http_status=400)
    assert type(error) is cls and error.category is category and error.code == label


def test_code_wins_over_status() -> None:
    assert classify_error("BALANCE_NOT_ENOUGH", 429, gate.ERROR_LABELS, gate.HTTP_STATUSES) is ErrorCategory.INSUFFICIENT_BALANCE


@pytest.mark.parametrize("status", [429, 418, 403])
def test_mexc_limit_statuses_carry_retry_after(status: int) -> None:
    error = mexc_error(http_status=status, retry_after_s=120.0)
    assert isinstance(error, RateLimitError) and error.retry_after_s == 120.0
    assert error.category is ErrorCategory.RATE_LIMITED


def test_gate_403_is_an_auth_failure_not_a_rate_limit() -> None:
    assert gate_error(http_status=403).category is ErrorCategory.AUTH_FAILED


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_mean_the_outcome_is_unknown(status: int) -> None:
    assert mexc_error(http_status=status).category is ErrorCategory.OUTCOME_UNKNOWN
    assert gate_error(http_status=status).category is ErrorCategory.OUTCOME_UNKNOWN


def test_venue_error_chains_when_raised_from() -> None:
    with pytest.raises(OrderRejectedError) as info:
        try:
            raise KeyError("label")
        except KeyError as exc:
            raise gate_error(code="ORDER_NOT_FOUND") from exc
    assert isinstance(info.value.__cause__, KeyError)


@pytest.mark.parametrize(("label", "status"), [("TOO_BUSY", 503), ("SERVER_ERROR", 500), (None, 502)])
def test_a_server_error_answering_a_write_leaves_its_outcome_unknown_whatever_its_code(
    label: str | None, status: int
) -> None:
    """A venue too busy or failing may still have placed the order: the engine queries it, never assumes."""
    assert gate_error(code=label, http_status=status, write=True).category is ErrorCategory.OUTCOME_UNKNOWN
    assert mexc_error(code=503, http_status=status, write=True).category is ErrorCategory.OUTCOME_UNKNOWN



@pytest.mark.parametrize("status", [None, 200, 400, 429])
def test_a_busy_venue_answering_a_write_under_any_status_leaves_its_outcome_unknown(status: int | None) -> None:
    """Gate.io's TOO_BUSY counted as maintenance, a certain refusal, unless it came with a 5xx: over
    the websocket API, whose reply header may carry no status, an order the venue placed was taken
    as never sent, and recovery could send its hedge again."""
    assert gate_error(code="TOO_BUSY", http_status=status, write=True).category is ErrorCategory.OUTCOME_UNKNOWN


def test_a_refusal_that_says_the_order_may_exist_leaves_its_outcome_unknown() -> None:
    """A client id already in use means an order sent with it exists; MEXC's code 503 ("service not
    available, please try again") may come back to an order it took, even under an HTTP 4xx."""
    for label in ("ORDER_EXISTS", "REPEATED_CREATION"):
        assert gate_error(code=label, http_status=400, write=True).category is ErrorCategory.OUTCOME_UNKNOWN
    assert mexc_error(code=503, http_status=400, write=True).category is ErrorCategory.OUTCOME_UNKNOWN
    assert gate_error(code="TOO_FAST", http_status=400).category is ErrorCategory.RATE_LIMITED
    assert gate_error(code="CLIENT_ID_NOT_FOUND", http_status=400).category is ErrorCategory.UNKNOWN_ORDER
    assert gate_error(code="AUTHENTICATION_FAILED", http_status=401).category is ErrorCategory.AUTH_FAILED


def test_a_code_of_digits_int_cannot_read_is_unknown_not_a_crash() -> None:
    """``"7²"`` passes ``isdigit`` but not ``int``: classifying it raised a bare ValueError."""
    assert classify_error("7²", None, mexc.ERROR_CODES, mexc.HTTP_STATUSES) is None
