"""arb: cross-exchange crypto arbitrage for MEXC and Gate.io over a compiled fixed-point core.

The public API below is imported on first use: ``python -m arb`` takes the stop signals
(``arb.shutdown.hold_stop_signals``) before the engine's modules are loaded.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import ConfigurationManager
    from .controller import ArbitrageController, ArbitrageEngine
    from .errors import (
        ArbitrageEngineError,
        ConfigurationError,
        DataFreshnessError,
        ExchangeConnectionError,
        ExchangeError,
        OrderExecutionError,
        OrderRejectedError,
        RateLimitError,
        RecoveryError,
        RiskManagementError,
        SessionStopped,
        StartupInterrupted,
    )
    from .exchanges.factory import ExchangeFactory
    from .journal import Journal
    from .monitor import PerformanceMonitor
    from .risk import RiskManager
    from .shutdown import ShutdownManager
    from .types import (
        ArbitrageConfig,
        ArbitrageOpportunity,
        ArbitrageState,
        EngineStatistics,
        ExchangeName,
        ExecutionResult,
        OpportunityType,
        OrderSide,
        PositionEntry,
        RiskLimits,
    )

try:
    __version__ = version("arb")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "ArbitrageConfig",
    "ArbitrageController",
    "ArbitrageEngine",
    "ArbitrageEngineError",
    "ArbitrageOpportunity",
    "ArbitrageState",
    "ConfigurationError",
    "ConfigurationManager",
    "DataFreshnessError",
    "EngineStatistics",
    "ExchangeConnectionError",
    "ExchangeError",
    "ExchangeFactory",
    "ExchangeName",
    "ExecutionResult",
    "Journal",
    "OpportunityType",
    "OrderExecutionError",
    "OrderRejectedError",
    "OrderSide",
    "PerformanceMonitor",
    "PositionEntry",
    "RateLimitError",
    "RecoveryError",
    "RiskLimits",
    "RiskManagementError",
    "RiskManager",
    "SessionStopped",
    "ShutdownManager",
    "StartupInterrupted",
    "__version__",
]

# Where each public name lives, for ``__getattr__``.
_SOURCES = {
    "ConfigurationManager": "config",
    "ArbitrageController": "controller",
    "ArbitrageEngine": "controller",
    "ExchangeFactory": "exchanges.factory",
    "Journal": "journal",
    "PerformanceMonitor": "monitor",
    "RiskManager": "risk",
    "ShutdownManager": "shutdown",
    **dict.fromkeys(
        (
            "ArbitrageEngineError", "ConfigurationError", "DataFreshnessError", "ExchangeConnectionError",
            "ExchangeError", "OrderExecutionError", "OrderRejectedError", "RateLimitError", "RecoveryError",
            "RiskManagementError", "SessionStopped", "StartupInterrupted",
        ),
        "errors",
    ),
    **dict.fromkeys(
        (
            "ArbitrageConfig", "ArbitrageOpportunity", "ArbitrageState", "EngineStatistics", "ExchangeName",
            "ExecutionResult", "OpportunityType", "OrderSide", "PositionEntry", "RiskLimits",
        ),
        "types",
    ),
}


def __getattr__(name: str) -> Any:
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module 'arb' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{source}", __name__), name)
    globals()[name] = value  # imported once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_SOURCES})
