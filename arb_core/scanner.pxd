# C-level interface of arb_core.scanner: cross-venue spread scan over compiled books.
from libc.stdint cimport int64_t

from arb_core.fixed cimport int_arg, wide_t

cpdef enum OpportunityKind:
    SPOT_SPOT = 0            # buy spot on one venue, sell spot on another
    SPOT_FUTURES_HEDGE = 1   # one leg is a perpetual future hedging the spot leg

cdef enum:
    MAX_LEGS = 8             # legs (venue markets) per symbol


cdef class Opportunity:
    """One priced cross-venue trade: buy on ``buy_leg``'s asks, sell on ``sell_leg``'s bids."""
    cdef readonly int64_t symbol_id
    cdef readonly int64_t buy_leg
    cdef readonly int64_t sell_leg
    cdef readonly int kind
    cdef readonly int64_t size_common        # common size units, a multiple of both lots
    cdef readonly int64_t buy_size_lots      # in the buy venue's lots
    cdef readonly int64_t sell_size_lots     # in the sell venue's lots
    cdef readonly int64_t buy_limit_ticks    # worst ask touched, buy venue's ticks
    cdef readonly int64_t sell_limit_ticks   # worst bid touched, sell venue's ticks
    cdef readonly wide_t buy_notional        # common quote units (common price x common size), <= 2**112 - 1
    cdef readonly wide_t sell_notional
    cdef readonly wide_t fees                # both taker fees, each rounded up
    cdef readonly wide_t profit              # sell_notional - buy_notional - fees
    cdef readonly int64_t profit_bps         # profit / buy_notional in bps, rounded down


cdef class SpreadScanner:
    """Per-symbol legs over compiled books; finds the most profitable taker/taker pair."""
    cdef dict _by_id         # symbol_id -> _Symbol
    cdef list _symbols       # _Symbol in registration order

    cpdef object scan_symbol(self, int_arg symbol_id, int_arg now_ns, int_arg max_age_ns)
    cpdef list scan_all(self, int_arg now_ns, int_arg max_age_ns)
