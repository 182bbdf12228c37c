"""The one exception tree of arb: everything raised on purpose derives from ArbitrageEngineError."""

from __future__ import annotations

from collections.abc import Sequence


class ArbitrageEngineError(Exception):
    """Root of every error arb raises on purpose."""


class ConfigurationError(ArbitrageEngineError):
    """The configuration is invalid; ``problems`` holds one line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        count = len(self.problems)
        header = f"{count} configuration problem{'s' if count != 1 else ''}"
        super().__init__(header + ":\n" + "\n".join(f"  {p}" for p in self.problems))


class ExchangeError(ArbitrageEngineError):
    """A venue or the network failed; ``venue`` names which, ``category`` says what kind of failure
    (an ``arb.exchanges.errors.ErrorCategory`` value) when the venue's code is known."""

    def __init__(
        self, venue: str, message: str, *, code: str | int | None = None, category: str | None = None
    ) -> None:
        self.venue = venue
        self.code = code
        self.category = category
        suffix = f" (code {code})" if code is not None else ""
        super().__init__(f"{venue}: {message}{suffix}")


class ExchangeConnectionError(ExchangeError):
    """The connection to a venue could not be made or was lost."""


class RateLimitError(ExchangeError):
    """The venue refused the request for exceeding its rate limit."""

    def __init__(
        self,
        venue: str,
        message: str,
        *,
        code: str | int | None = None,
        category: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(venue, message, code=code, category=category)
        self.retry_after_s = retry_after_s


class OrderRejectedError(ExchangeError):
    """The venue rejected an order (balance, precision, min notional, unknown order...)."""


class OrderExecutionError(ArbitrageEngineError):
    """An arbitrage leg could not be executed as intended."""


class RiskManagementError(ArbitrageEngineError):
    """A risk limit or circuit breaker forbids the action."""


class RecoveryError(ArbitrageEngineError):
    """A residual position could not be hedged or unwound within its bounds."""


class DataFreshnessError(ArbitrageEngineError):
    """Market data is stale or out of sync and must not be traded on."""


class SessionStopped(ArbitrageEngineError):
    """The engine stopped (a signal, an engine error, the run's end) while an
    ``ArbitrageEngine.session`` body ran: the body was cancelled and the engine shut down."""


class StartupInterrupted(ArbitrageEngineError):
    """A signal (SIGINT, SIGTERM) stopped the engine while it started: nothing was traded, and what
    it had opened is closed. ``flagged``: residuals an earlier run left that the start-up flagged
    for manual approval before it stopped."""

    def __init__(self, message: str, *, flagged: int = 0) -> None:
        super().__init__(message)
        self.flagged = flagged
