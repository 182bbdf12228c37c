# cython: freethreading_compatible = False
"""Cross-venue spread scanner: SPOT_SPOT and SPOT_FUTURES_HEDGE over compiled books.

Scales. Venues quote one symbol on different grids (a Gate spot tick of 0.01,
a MEXC tick of 0.001, a futures contract of 0.0001 BTC). Each leg registers
``price_mult`` (common price units per one of its ticks) and ``size_mult``
(common size units per one of its lots; for futures it includes the contract
multiplier), so every comparison runs on one integer grid per symbol. Notionals,
fees and profit are in common quote units: common price unit x common size unit.

Walk. A pair takes ask and bid levels, best first, while the marginal unit (the deepest ask
against the deepest bid) pays both taker fees and earns the symbol's profit floor of its price:
``min_profit_ppm``, in millionths of the price (100 per basis point), so a floor of a fraction of a
basis point is held as it is, not rounded up to a whole one. Its limits are the deepest prices touched, so even filled entirely at them the size meets
the floor; a deeper, thinner level that would pull it under stays untaken.

Rounding. The traded size is rounded down to a multiple of both legs' lots
(the LCM of their size multipliers). Each taker fee is
``ceil(notional * taker_fee_ppm / 1e6)``, rounded up against us, and
``profit_bps`` is ``floor(profit * 10000 / buy_notional)``; the floor is held to the profit in ppm,
``floor(profit * 1e6 / buy_notional)``.

Ranges. ``price_mult`` is at most 1e12 and fees are below 1e6 ppm, so the
fee-adjusted price coefficients fit int64 and the marginal price comparison,
done in 128 bits, cannot overflow for any int64 tick. Sizes are int64 common
units. Notionals (ticks x lots x price_mult x size_mult), fees and profit are
128-bit, up to ``NOTIONAL_MAX`` (2**112 - 1), and raise OverflowError rather
than wrap past it: even on a 1e-12 USDT price unit and a 1e-10 size unit (a
sub-cent coin on a fine book grid) one notional may reach about 5e11 USDT. A
level's size in common units counts only up to the cap being filled, so a level
too large for int64 there is walked like any other; only what is traded must fit.
"""

cimport cython
import operator
from libc.stdint cimport int64_t, uint64_t, INT64_MAX

from arb_core.book cimport OrderBook, WalkResult, ASK, BID
from arb_core.fixed cimport NOTIONAL_MAX, checked_notional, int_arg, wide_t
from arb_core.freshness cimport is_fresh_c

cdef int64_t PPM = 1000000
cdef int64_t BPS = 10000
cdef int64_t MAX_PRICE_MULT = 1000000000000


cdef struct PairSpec:
    int buy              # index of the leg whose asks we lift
    int sell             # index of the leg whose bids we hit
    int kind
    int64_t step         # LCM of both size multipliers: the tradable size grid


cdef struct Candidate:
    int64_t buy_leg
    int64_t sell_leg
    int kind
    int64_t size_common
    int64_t buy_size_lots
    int64_t sell_size_lots
    int64_t buy_limit_ticks
    int64_t sell_limit_ticks
    wide_t buy_notional
    wide_t sell_notional
    wide_t fees
    wide_t profit
    int64_t profit_bps


@cython.final
@cython.freelist(16)
cdef class Opportunity:
    """One priced cross-venue trade: buy on ``buy_leg``'s asks, sell on ``sell_leg``'s bids.

    Sizes are in common size units and in each venue's lots, limit prices in each
    venue's ticks, notionals, fees and profit in the symbol's common quote units.
    """

    def __init__(self):
        raise TypeError("Opportunity is created by SpreadScanner")

    def __repr__(self):
        return (f"Opportunity(symbol_id={self.symbol_id}, buy_leg={self.buy_leg}, "
                f"sell_leg={self.sell_leg}, kind={OpportunityKind(self.kind).name}, "
                f"size_common={self.size_common}, buy_limit_ticks={self.buy_limit_ticks}, "
                f"sell_limit_ticks={self.sell_limit_ticks}, profit={self.profit}, "
                f"profit_bps={self.profit_bps})")


cdef Opportunity _make_opportunity(int64_t symbol_id, Candidate* c):
    cdef Opportunity o = Opportunity.__new__(Opportunity)
    o.symbol_id = symbol_id
    o.buy_leg = c.buy_leg
    o.sell_leg = c.sell_leg
    o.kind = c.kind
    o.size_common = c.size_common
    o.buy_size_lots = c.buy_size_lots
    o.sell_size_lots = c.sell_size_lots
    o.buy_limit_ticks = c.buy_limit_ticks
    o.sell_limit_ticks = c.sell_limit_ticks
    o.buy_notional = c.buy_notional
    o.sell_notional = c.sell_notional
    o.fees = c.fees
    o.profit = c.profit
    o.profit_bps = c.profit_bps
    return o


@cython.final
@cython.auto_pickle(False)
cdef class _Leg:
    cdef OrderBook book
    cdef int64_t leg_id
    cdef bint is_futures
    cdef int64_t fee_ppm
    cdef int64_t price_mult
    cdef int64_t size_mult
    cdef wide_t min_notional
    cdef int64_t max_buy
    cdef int64_t max_sell
    cdef int64_t ask_coef    # price_mult * (1e6 + fee): cost of one tick of ask price
    cdef int64_t bid_coef    # price_mult * (1e6 - fee): proceeds of one tick of bid price


@cython.final
@cython.auto_pickle(False)
cdef class _Symbol:
    cdef int64_t symbol_id
    cdef int64_t max_position
    cdef int64_t min_profit_ppm  # the profit floor in millionths of the price
    cdef list legs
    cdef PairSpec pairs[MAX_LEGS * (MAX_LEGS - 1)]
    cdef int n_pairs
    cdef object best


cdef inline int64_t _gcd(int64_t a, int64_t b) noexcept:
    cdef int64_t t
    while b:
        t = a % b
        a = b
        b = t
    return a


cdef inline wide_t _fee_up(wide_t notional, int64_t fee_ppm) noexcept:
    # ceil(notional * fee_ppm / 1e6) for 0 <= notional <= NOTIONAL_MAX: the product is under 2**132,
    # so notional is split at 1e6 and each part stays in range for fee_ppm < 1e6. Within int64 (the
    # common case) in 64 bits, where a 128-bit division is a library call.
    cdef int64_t small
    cdef wide_t q, r
    if notional <= INT64_MAX:
        small = <int64_t>notional
        return small // PPM * fee_ppm + (small % PPM * fee_ppm + PPM - 1) // PPM
    q = notional // PPM
    r = notional % PPM
    return q * fee_ppm + (r * fee_ppm + PPM - 1) // PPM


cdef inline bint _pays(int64_t ask_ticks, _Leg buy, int64_t bid_ticks, _Leg sell, int64_t floor_ppm) noexcept:
    """Whether a unit bought at ``ask_ticks`` and sold at ``bid_ticks`` pays both taker fees and
    earns at least ``floor_ppm`` millionths of its price."""
    # Per common size unit, in common price units x 1e6: the net edge after both fees, and the price.
    cdef wide_t edge = <wide_t>bid_ticks * sell.bid_coef - <wide_t>ask_ticks * buy.ask_coef
    if edge <= 0:
        return False
    # edge / (1e6 * price) >= floor / 1e6  <=>  edge >= floor * price; a whole multiple of the price,
    # so the quotient decides it exactly (and no product can overflow).
    return floor_ppm == 0 or edge // (<wide_t>ask_ticks * buy.price_mult) >= floor_ppm


cdef inline int64_t _usable(int64_t size, int64_t mult, int64_t cap) noexcept nogil:
    """A level's ``size`` in common units, ``size * mult``, or ``cap`` where that is more: the walk
    never takes more than ``cap`` in all, so a level past it (even past int64) plays the same."""
    if size > cap // mult:
        return cap
    return size * mult


cdef object _exact_notional(OrderBook book, int side, int64_t lots):
    """Ticks x lots of the first ``lots`` of ``side``, as a Python int (no overflow)."""
    total = 0
    for price_ticks, size_lots in book.top(side, book.depth(side)):
        if lots <= 0:
            break
        take = size_lots if size_lots < lots else lots
        total += price_ticks * take
        lots -= take
    return total


cdef bint _worth_exactly(_Leg buy, _Leg sell, int64_t buy_lots, int64_t sell_lots) except -1:
    """Whether exact (Python int) arithmetic finds the pair above both minimums and profitable."""
    buy_notional = _exact_notional(buy.book, ASK, buy_lots) * buy.price_mult * buy.size_mult
    sell_notional = _exact_notional(sell.book, BID, sell_lots) * sell.price_mult * sell.size_mult
    if buy_notional < buy.min_notional or sell_notional < sell.min_notional:
        return False
    fees = -(-buy_notional * buy.fee_ppm // PPM) - (-sell_notional * sell.fee_ppm // PPM)
    return sell_notional - buy_notional - fees > 0


cdef int _price_pair(_Symbol sym, _Leg buy, _Leg sell, PairSpec* spec, int64_t max_size, Candidate* out) except -1:
    """Fill ``out`` for buying on ``buy`` and selling on ``sell``, at most ``max_size`` common units;
    1 if worth trading, else 0."""
    cdef OrderBook ab = buy.book
    cdef OrderBook bb = sell.book
    cdef Py_ssize_t i = ab.n_asks - 1
    cdef Py_ssize_t j = bb.n_bids - 1
    cdef int64_t cap, ra, rb, take, filled = 0, size, small, step = spec.step
    cdef wide_t buy_fee, sell_fee, bps, ppm
    cdef WalkResult wb, ws
    if i < 0 or j < 0 or not _pays(ab.ask_prices[i], buy, bb.bid_prices[j], sell, sym.min_profit_ppm):
        return 0
    cap = sym.max_position if sym.max_position < max_size else max_size
    if buy.max_buy < cap:
        cap = buy.max_buy
    if sell.max_sell < cap:
        cap = sell.max_sell
    if cap < step:
        return 0
    # Lift asks and hit bids level by level while the marginal unit still pays both fees and
    # earns the profit floor; prices only worsen as we go deeper, so that part is a prefix. The
    # whole size then meets the floor even at the deepest prices touched, where its limits lie.
    ra = _usable(ab.ask_sizes[i], buy.size_mult, cap)
    rb = _usable(bb.bid_sizes[j], sell.size_mult, cap)
    while True:
        take = ra if ra < rb else rb
        if cap - filled < take:
            take = cap - filled
        filled += take
        ra -= take
        rb -= take
        if filled == cap:
            break
        if ra == 0:
            i -= 1
            if i < 0:
                break
            ra = _usable(ab.ask_sizes[i], buy.size_mult, cap)
        if rb == 0:
            j -= 1
            if j < 0:
                break
            rb = _usable(bb.bid_sizes[j], sell.size_mult, cap)
        if not _pays(ab.ask_prices[i], buy, bb.bid_prices[j], sell, sym.min_profit_ppm):
            break
    size = filled - filled % step
    if size == 0:
        return 0
    out.buy_size_lots = size // buy.size_mult
    out.sell_size_lots = size // sell.size_mult
    # From here a notional may pass NOTIONAL_MAX (OverflowError): ``_scan`` then judges the pair
    # exactly, from the sizes just set.
    ab.walk_c(ASK, out.buy_size_lots, &wb)
    bb.walk_c(BID, out.sell_size_lots, &ws)
    out.buy_notional = checked_notional(checked_notional(wb.notional, buy.price_mult), buy.size_mult)
    out.sell_notional = checked_notional(checked_notional(ws.notional, sell.price_mult), sell.size_mult)
    if out.buy_notional < buy.min_notional or out.sell_notional < sell.min_notional:
        return 0
    # Every term is at most NOTIONAL_MAX (2**112): none of the sums and products below leaves 128 bits.
    buy_fee = _fee_up(out.buy_notional, buy.fee_ppm)
    sell_fee = _fee_up(out.sell_notional, sell.fee_ppm)
    out.fees = buy_fee + sell_fee
    out.profit = out.sell_notional - sell_fee - out.buy_notional - buy_fee
    if out.profit <= 0:
        return 0
    if out.profit <= INT64_MAX // PPM and out.buy_notional <= INT64_MAX:  # 64 bits where it fits
        small = <int64_t>out.profit * PPM // <int64_t>out.buy_notional
        out.profit_bps = small // (PPM // BPS)
        ppm = small
    else:
        # profit * 1e6 may pass 128 bits (profit * 1e4 does not): whole basis points first, then
        # their hundredths from the remainder, which is under the notional (x 100: under 2**119).
        bps = out.profit * BPS // out.buy_notional
        if bps > INT64_MAX:
            raise OverflowError(
                f"profit_bps overflows int64: profit {out.profit} on buy notional {out.buy_notional}")
        out.profit_bps = <int64_t>bps
        ppm = bps * (PPM // BPS) + (out.profit * BPS - bps * out.buy_notional) * (PPM // BPS) // out.buy_notional
    if ppm < sym.min_profit_ppm:
        return 0
    out.buy_leg = buy.leg_id
    out.sell_leg = sell.leg_id
    out.kind = spec.kind
    out.size_common = size
    out.buy_limit_ticks = wb.worst_price_ticks
    out.sell_limit_ticks = ws.worst_price_ticks
    return 1


cdef object _scan(_Symbol sym, int64_t now_ns, int64_t max_age_ns, uint64_t skipped, int64_t max_size):
    """The best pair of ``sym`` at ``now_ns``, at most ``max_size`` common units of it, leaving out the
    pairs whose bit (by index) ``skipped`` sets: at most MAX_LEGS * (MAX_LEGS - 1) = 56 pairs, so one
    64-bit mask holds them."""
    cdef bint fresh[MAX_LEGS]
    cdef Py_ssize_t k, n = len(sym.legs)
    cdef int p = 0
    cdef bint found = False
    cdef PairSpec* spec
    cdef Candidate best, cand
    best.profit = 0  # read only once found; set so the C compiler sees it set
    sym.best = None  # a scan that raises leaves nothing standing from the one before
    for k in range(n):
        fresh[k] = is_fresh_c((<_Leg>sym.legs[k]).book, now_ns, max_age_ns)
    # The try is entered once per scan (and again after an overflow), not once per pair.
    while p < sym.n_pairs:
        try:
            while p < sym.n_pairs:
                spec = &sym.pairs[p]
                if not (skipped >> p) & 1 and fresh[spec.buy] and fresh[spec.sell] and _price_pair(
                    sym, <_Leg>sym.legs[spec.buy], <_Leg>sym.legs[spec.sell], spec, max_size, &cand
                ):
                    # Ties keep the earlier pair (registration order).
                    if not found or cand.profit > best.profit:
                        best = cand
                        found = True
                p += 1
        except OverflowError:
            # A pair exact arithmetic finds below its minimums or unprofitable is simply not traded;
            # only one worth trading that the fixed point cannot hold is an overflow to report.
            spec = &sym.pairs[p]
            if _worth_exactly(<_Leg>sym.legs[spec.buy], <_Leg>sym.legs[spec.sell], cand.buy_size_lots,
                              cand.sell_size_lots):
                raise
            p += 1
    sym.best = _make_opportunity(sym.symbol_id, &best) if found else None
    return sym.best


cdef _Symbol _lookup(SpreadScanner scanner, int64_t symbol_id):
    sym = scanner._by_id.get(symbol_id)
    if sym is None:
        raise ValueError(f"symbol_id {symbol_id} is not registered")
    return <_Symbol>sym


cdef int _pair_index(_Symbol sym, int64_t buy_leg, int64_t sell_leg) except -1:
    """The index in ``sym.pairs`` of the pair buying on leg ``buy_leg`` and selling on ``sell_leg``."""
    cdef int p
    for p in range(sym.n_pairs):
        if ((<_Leg>sym.legs[sym.pairs[p].buy]).leg_id == buy_leg
                and (<_Leg>sym.legs[sym.pairs[p].sell]).leg_id == sell_leg):
            return p
    raise ValueError(f"symbol {sym.symbol_id} has no pair buying on leg {buy_leg} and selling on leg {sell_leg}")


cdef inline int _check_clock(int64_t now_ns, int64_t max_age_ns) except -1:
    if now_ns < 0:
        raise ValueError(f"now_ns must be >= 0, got {now_ns}")
    if max_age_ns < 0:
        raise ValueError(f"max_age_ns must be >= 0, got {max_age_ns}")
    return 0


cdef wide_t _notional_arg(str name, value) except? -1:
    """``value`` (a notional from Python) as a C notional, checked: an integer (a float or Decimal is
    refused, not truncated) in [0, NOTIONAL_MAX]."""
    value = operator.index(value)
    if value < 0 or value > NOTIONAL_MAX:
        raise ValueError(f"{name} must be in [0, 2**112 - 1], got {value}")
    return value


cdef inline int _check_non_negative(str name, int64_t value) except -1:
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return 0


cdef class SpreadScanner:
    """Per-symbol legs over compiled books; finds the most profitable taker/taker pair.

    Register a symbol with ``add_symbol``, its venue markets with ``add_leg`` and
    their balance caps with ``set_limits`` (a new leg can trade nothing until then).
    After a book update call ``scan_symbol`` for that symbol only; ``scan_all``
    re-evaluates every symbol. Legs whose book is out of sync or older than
    ``max_age_ns`` are skipped. A pair of two futures legs is not scanned.
    """

    def __cinit__(self):
        self._by_id = {}
        self._symbols = []

    def add_symbol(self, int_arg symbol_id, int_arg max_position_common,
                   int_arg min_profit_ppm=0):
        """Register a symbol with its position cap (common size units) and profit floor (millionths
        of the price: 100 per basis point)."""
        _check_non_negative("symbol_id", symbol_id)
        if symbol_id in self._by_id:
            raise ValueError(f"symbol_id {symbol_id} is already registered")
        _check_non_negative("max_position_common", max_position_common)
        _check_non_negative("min_profit_ppm", min_profit_ppm)
        cdef _Symbol sym = _Symbol.__new__(_Symbol)
        sym.symbol_id = symbol_id
        sym.max_position = max_position_common
        sym.min_profit_ppm = min_profit_ppm
        sym.legs = []
        sym.n_pairs = 0
        sym.best = None
        self._by_id[symbol_id] = sym
        self._symbols.append(sym)

    def set_symbol_limits(self, int_arg symbol_id, int_arg max_position_common,
                          int_arg min_profit_ppm):
        """Replace a symbol's position cap (common size units) and profit floor (millionths of the price)."""
        cdef _Symbol sym = _lookup(self, symbol_id)
        _check_non_negative("max_position_common", max_position_common)
        _check_non_negative("min_profit_ppm", min_profit_ppm)
        sym.max_position = max_position_common
        sym.min_profit_ppm = min_profit_ppm

    def add_leg(self, int_arg symbol_id, OrderBook book, int_arg leg_id,
                bint is_futures, int_arg taker_fee_ppm, int_arg price_mult,
                int_arg size_mult, min_notional_common):
        """Register one venue market of a symbol.

        ``price_mult``: common price units per tick of ``book``; ``size_mult``:
        common size units per lot of ``book`` (contract multiplier included);
        ``min_notional_common``: the venue's minimum order value in common quote units (an int up
        to ``NOTIONAL_MAX``, 2**112 - 1).
        """
        cdef _Symbol sym = _lookup(self, symbol_id)
        cdef _Leg other, leg
        cdef int64_t g, step
        cdef int k, j, n = len(sym.legs)
        if book is None:
            raise ValueError("book must be an OrderBook, got None")
        _check_non_negative("leg_id", leg_id)
        for other in sym.legs:
            if other.leg_id == leg_id:
                raise ValueError(f"leg_id {leg_id} is already registered for symbol {symbol_id}")
        if n == MAX_LEGS:
            raise ValueError(f"symbol {symbol_id} already has the maximum of {MAX_LEGS} legs")
        if taker_fee_ppm < 0 or taker_fee_ppm >= PPM:
            raise ValueError(f"taker_fee_ppm must be in [0, {PPM}), got {taker_fee_ppm}")
        if price_mult < 1 or price_mult > MAX_PRICE_MULT:
            raise ValueError(f"price_mult must be in [1, {MAX_PRICE_MULT}], got {price_mult}")
        if size_mult < 1:
            raise ValueError(f"size_mult must be >= 1, got {size_mult}")
        cdef wide_t min_notional = _notional_arg("min_notional_common", min_notional_common)
        for other in sym.legs:
            g = _gcd(other.size_mult, size_mult)
            if (other.size_mult // g) > INT64_MAX // size_mult:
                raise ValueError(
                    f"size_mult {size_mult}: the lot grid shared with leg {other.leg_id} "
                    f"(size_mult {other.size_mult}) overflows int64")
        leg = _Leg.__new__(_Leg)
        leg.book = book
        leg.leg_id = leg_id
        leg.is_futures = is_futures
        leg.fee_ppm = taker_fee_ppm
        leg.price_mult = price_mult
        leg.size_mult = size_mult
        leg.min_notional = min_notional
        leg.max_buy = 0
        leg.max_sell = 0
        leg.ask_coef = price_mult * (PPM + taker_fee_ppm)
        leg.bid_coef = price_mult * (PPM - taker_fee_ppm)
        sym.legs.append(leg)
        # Ordered pairs in registration order: (i, j) for every i, then every j != i.
        sym.n_pairs = 0
        for k in range(n + 1):
            for j in range(n + 1):
                if k == j:
                    continue
                other = <_Leg>sym.legs[k]
                leg = <_Leg>sym.legs[j]
                if other.is_futures and leg.is_futures:
                    continue
                g = _gcd(other.size_mult, leg.size_mult)
                step = (other.size_mult // g) * leg.size_mult
                sym.pairs[sym.n_pairs].buy = k
                sym.pairs[sym.n_pairs].sell = j
                sym.pairs[sym.n_pairs].kind = (
                    SPOT_FUTURES_HEDGE if other.is_futures or leg.is_futures else SPOT_SPOT)
                sym.pairs[sym.n_pairs].step = step
                sym.n_pairs += 1

    def set_limits(self, int_arg symbol_id, int_arg leg_id, int_arg max_buy_common,
                   int_arg max_sell_common):
        """Set how much a leg can buy (quote balance) and sell (inventory), in common size units."""
        cdef _Symbol sym = _lookup(self, symbol_id)
        cdef _Leg leg
        _check_non_negative("max_buy_common", max_buy_common)
        _check_non_negative("max_sell_common", max_sell_common)
        for leg in sym.legs:
            if leg.leg_id == leg_id:
                leg.max_buy = max_buy_common
                leg.max_sell = max_sell_common
                return
        raise ValueError(f"leg_id {leg_id} is not registered for symbol {symbol_id}")

    def set_leg_costs(self, int_arg symbol_id, int_arg leg_id, int_arg taker_fee_ppm,
                      min_notional_common):
        """Replace a leg's taker fee (ppm) and minimum order value (common quote units): the
        venue changed the account's rate or the market's minimum."""
        cdef _Symbol sym = _lookup(self, symbol_id)
        cdef _Leg leg
        if taker_fee_ppm < 0 or taker_fee_ppm >= PPM:
            raise ValueError(f"taker_fee_ppm must be in [0, {PPM}), got {taker_fee_ppm}")
        cdef wide_t min_notional = _notional_arg("min_notional_common", min_notional_common)
        for leg in sym.legs:
            if leg.leg_id == leg_id:
                leg.fee_ppm = taker_fee_ppm
                leg.ask_coef = leg.price_mult * (PPM + taker_fee_ppm)
                leg.bid_coef = leg.price_mult * (PPM - taker_fee_ppm)
                leg.min_notional = min_notional
                return
        raise ValueError(f"leg_id {leg_id} is not registered for symbol {symbol_id}")

    cpdef object scan_symbol(self, int_arg symbol_id, int_arg now_ns, int_arg max_age_ns):
        """Re-evaluate one symbol; its best Opportunity at or above the profit floor, or None."""
        _check_clock(now_ns, max_age_ns)
        return _scan(_lookup(self, symbol_id), now_ns, max_age_ns, 0, INT64_MAX)

    def scan_symbol_except(self, int_arg symbol_id, int_arg now_ns, int_arg max_age_ns, excluded):
        """``scan_symbol`` leaving out the pairs ``excluded`` names as (buy_leg, sell_leg) leg ids:
        the best of the other pairs, when the best one found was not taken."""
        cdef _Symbol sym = _lookup(self, symbol_id)
        cdef uint64_t skipped = 0
        cdef int_arg buy_leg, sell_leg
        _check_clock(now_ns, max_age_ns)
        for buy_leg, sell_leg in excluded:
            skipped |= (<uint64_t>1) << _pair_index(sym, buy_leg, sell_leg)
        return _scan(sym, now_ns, max_age_ns, skipped, INT64_MAX)

    def scan_pair(self, int_arg symbol_id, int_arg buy_leg, int_arg sell_leg, int_arg now_ns,
                  int_arg max_age_ns, int_arg max_size_common):
        """``scan_symbol`` of the one pair buying on leg ``buy_leg`` and selling on leg ``sell_leg``,
        at most ``max_size_common`` of it: a shallower walk of a pair whose limits were not taken."""
        cdef _Symbol sym = _lookup(self, symbol_id)
        _check_clock(now_ns, max_age_ns)
        _check_non_negative("max_size_common", max_size_common)
        cdef uint64_t only = (<uint64_t>1) << _pair_index(sym, buy_leg, sell_leg)
        return _scan(sym, now_ns, max_age_ns, ~only, max_size_common)

    cpdef list scan_all(self, int_arg now_ns, int_arg max_age_ns):
        """Re-evaluate every symbol; the opportunities found, in registration order."""
        cdef list found = []
        cdef _Symbol sym
        _check_clock(now_ns, max_age_ns)
        for sym in self._symbols:
            if _scan(sym, now_ns, max_age_ns, 0, INT64_MAX) is not None:
                found.append(sym.best)
        return found

    def best(self, int_arg symbol_id):
        """The opportunity found by the latest scan of ``symbol_id``, or None."""
        return _lookup(self, symbol_id).best

    def symbol_ids(self):
        """Registered symbol ids in registration order."""
        return [(<_Symbol>sym).symbol_id for sym in self._symbols]

    def leg_ids(self, int_arg symbol_id):
        """Leg ids of ``symbol_id`` in registration order."""
        return [(<_Leg>leg).leg_id for leg in _lookup(self, symbol_id).legs]

    def __len__(self):
        return len(self._symbols)
