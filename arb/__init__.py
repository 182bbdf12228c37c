"""arb: cross-exchange crypto arbitrage for MEXC and Gate.io over a compiled fixed-point core."""

from importlib.metadata import PackageNotFoundError, version

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
    "ShutdownManager",
    "StartupInterrupted",
    "__version__",
]
