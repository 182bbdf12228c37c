"""arb's compiled hot path: order books, wire decoders, scanner, freshness, state machine, latency.

Every module here is a Cython extension; importing this package fails loudly if the
extensions were not built, because a money-moving engine must not silently run slow.
"""

from arb_core.book import (
    APPLIED,
    ASK,
    BID,
    STALE,
    STALE_STREAM_NS,
    BookError,
    BookOutOfSyncError,
    CrossedBookError,
    DeltaBatch,
    OrderBook,
    SequenceGapError,
    StaleStreamError,
)
from arb_core.freshness import age_ns, is_fresh, monotonic_ns
from arb_core.fsm import IllegalTransitionError, StateMachine, state_name
from arb_core.latency import LatencyHistogram
from arb_core.scanner import Opportunity, OpportunityKind, SpreadScanner
from arb_core.wire.common import WireError, WireScale

COMPILED = True

__all__ = [
    "APPLIED",
    "ASK",
    "BID",
    "COMPILED",
    "STALE",
    "STALE_STREAM_NS",
    "BookError",
    "BookOutOfSyncError",
    "CrossedBookError",
    "DeltaBatch",
    "IllegalTransitionError",
    "LatencyHistogram",
    "Opportunity",
    "OpportunityKind",
    "OrderBook",
    "SequenceGapError",
    "SpreadScanner",
    "StaleStreamError",
    "StateMachine",
    "WireError",
    "WireScale",
    "age_ns",
    "is_fresh",
    "monotonic_ns",
    "state_name",
]
