"""Venue error codes -> the arb error tree, written once; each venue supplies only its tables.

A venue's ``constants.py`` maps its error codes (MEXC numeric codes, Gate ``label``
strings) and HTTP statuses to an ``ErrorCategory``; ``venue_error`` turns a failed
response into the matching ``ExchangeError`` subclass with the category attached.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum

from ..errors import ExchangeConnectionError, ExchangeError, OrderRejectedError, RateLimitError


class ErrorCategory(str, Enum):
    """What kind of failure a venue reported, independent of the venue's own codes."""

    INSUFFICIENT_BALANCE = "insufficient_balance"
    PRECISION = "precision"  # price or size off the venue's tick/lot grid
    MIN_NOTIONAL = "min_notional"  # order size or value below (or above) the venue's limits
    UNKNOWN_ORDER = "unknown_order"  # no such order, or it is already closed
    ORDER_REJECTED = "order_rejected"  # other refusals: post-only would take, FOK unfilled, symbol halted
    INVALID_REQUEST = "invalid_request"  # malformed or unsupported parameters
    RATE_LIMITED = "rate_limited"
    AUTH_FAILED = "auth_failed"  # key, signature, IP whitelist or permission
    TIMESTAMP = "timestamp"  # request time outside the venue's window (clock skew or slow request)
    MAINTENANCE = "maintenance"  # venue or market unavailable, server busy
    OUTCOME_UNKNOWN = "outcome_unknown"  # server error: the request may have taken effect; reconcile
    NOT_SENT = "not_sent"  # no connection took the request: it never left this process


ErrorCodeTable = Mapping[str | int, ErrorCategory]
"""A venue's error codes (or labels) and their categories."""

ERROR_CLASS_BY_CATEGORY: Mapping[ErrorCategory, type[ExchangeError]] = {
    ErrorCategory.INSUFFICIENT_BALANCE: OrderRejectedError,
    ErrorCategory.PRECISION: OrderRejectedError,
    ErrorCategory.MIN_NOTIONAL: OrderRejectedError,
    ErrorCategory.UNKNOWN_ORDER: OrderRejectedError,
    ErrorCategory.ORDER_REJECTED: OrderRejectedError,
    ErrorCategory.INVALID_REQUEST: ExchangeError,
    ErrorCategory.RATE_LIMITED: RateLimitError,
    ErrorCategory.AUTH_FAILED: ExchangeError,
    ErrorCategory.TIMESTAMP: ExchangeError,
    ErrorCategory.MAINTENANCE: ExchangeConnectionError,
    ErrorCategory.OUTCOME_UNKNOWN: ExchangeError,
    ErrorCategory.NOT_SENT: ExchangeConnectionError,
}


def classify_error(
    code: str | int | None,
    http_status: int | None,
    codes: ErrorCodeTable,
    http_statuses: Mapping[int, ErrorCategory],
    *,
    write: bool = False,
) -> ErrorCategory | None:
    """The category of a venue failure: the venue code wins, then the HTTP status; any other 5xx is
    OUTCOME_UNKNOWN. A 5xx answer to a ``write`` is OUTCOME_UNKNOWN whatever its code: a server
    that failed or was too busy to answer may still have processed it."""
    if write and http_status is not None and 500 <= http_status <= 599:
        return ErrorCategory.OUTCOME_UNKNOWN
    if code is not None:
        category = codes.get(code)
        if category is None and isinstance(code, str) and code.isascii() and code.lstrip("-").isdigit():
            category = codes.get(int(code))
        if category is not None:
            return category
    if http_status is not None:
        category = http_statuses.get(http_status)
        if category is not None:
            return category
        if 500 <= http_status <= 599:
            return ErrorCategory.OUTCOME_UNKNOWN
    return None


def venue_error(
    venue: str,
    message: str,
    *,
    codes: ErrorCodeTable,
    http_statuses: Mapping[int, ErrorCategory],
    code: str | int | None = None,
    http_status: int | None = None,
    retry_after_s: float | None = None,
    write: bool = False,
) -> ExchangeError:
    """The exception for a failed venue response, to be raised by the caller (``raise venue_error(...) from exc``).

    ``message`` should be the venue's own text plus where it happened (endpoint, symbol);
    it must never contain request headers or signed parameters.
    """
    category = classify_error(code, http_status, codes, http_statuses, write=write)
    if http_status is not None:
        message = f"{message} [HTTP {http_status}]"
    if category is ErrorCategory.RATE_LIMITED:
        return RateLimitError(venue, message, code=code, category=category, retry_after_s=retry_after_s)
    error_class = ExchangeError if category is None else ERROR_CLASS_BY_CATEGORY[category]
    return error_class(venue, message, code=code, category=category)
