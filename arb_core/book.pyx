# cython: freethreading_compatible = False
"""L2 order book in fixed-point integers (price in ticks, size in lots).

Layout: each side is a pair of parallel C arrays (int64 prices, int64 sizes) kept
sorted with the BEST level LAST: bids ascending, asks descending. Real crypto
books change mostly at the top, so an update usually lands within a few slots of
the end of the array and the ``memmove`` that opens or closes a slot moves only
those few elements. A level is located by scanning the last 16 slots from the
end, then by binary search over the rest. Capacity grows by doubling
(``malloc``/``realloc``/``free``); a snapshot sizes each side to what it holds
plus about 1/8 headroom, so 1,000 levels per side cost about 36 KB per book.

Worst case: an insert or delete at the far (worst-priced) end of a deep side
moves the whole side, O(n); lookups stay O(log n).
"""

from libc.stdint cimport int64_t, uint8_t, uint64_t, INT64_MAX
from libc.stdlib cimport calloc, malloc, realloc, free, qsort
from libc.string cimport memmove

from arb_core.fixed cimport NOTIONAL_MAX, int_arg, wide_t

# The enums in book.pxd exist only at C level; publish the same values to Python.
globals().update(BID=BID, ASK=ASK, APPLIED=APPLIED, STALE=STALE)

# How long after a book's last change diffs it already had may keep coming before it is taken
# out of sync (``StaleStreamError``): a venue whose update ids went backwards (a restarted
# matching engine) sends nothing but such diffs, and without this the book would stay "in sync"
# and unchanged until the connection dropped. A REST snapshot runs ahead of the websocket by far
# less; diffs buffered before the snapshot are older than it and never trip this.
cdef int64_t _STALE_STREAM_NS = 5_000_000_000
STALE_STREAM_NS = _STALE_STREAM_NS
globals().update(NOTIONAL_MAX=NOTIONAL_MAX)  # what a walk's (and the scanner's) notional may reach: 2**112 - 1


cdef class DeltaBatch:
    """A reusable buffer of (side, price_ticks, size_lots) levels plus sequence header.

    Decoders fill it straight from frame bytes; ``OrderBook.apply_batch`` consumes it.
    """

    def __cinit__(self, Py_ssize_t capacity=64):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.sides = <uint8_t*>malloc(capacity * sizeof(uint8_t))
        self.prices = <int64_t*>malloc(capacity * sizeof(int64_t))
        self.sizes = <int64_t*>malloc(capacity * sizeof(int64_t))
        if self.sides == NULL or self.prices == NULL or self.sizes == NULL:
            raise MemoryError()
        self.capacity = capacity
        self.count = 0

    def __dealloc__(self):
        free(self.sides)
        free(self.prices)
        free(self.sizes)

    cdef int push(self, int side, int64_t price_ticks, int64_t size_lots) except -1:
        cdef Py_ssize_t cap
        cdef void* p
        if self.count == self.capacity:
            cap = self.capacity * 2
            p = realloc(self.sides, cap * sizeof(uint8_t))
            if p == NULL:
                raise MemoryError()
            self.sides = <uint8_t*>p
            p = realloc(self.prices, cap * sizeof(int64_t))
            if p == NULL:
                raise MemoryError()
            self.prices = <int64_t*>p
            p = realloc(self.sizes, cap * sizeof(int64_t))
            if p == NULL:
                raise MemoryError()
            self.sizes = <int64_t*>p
            self.capacity = cap
        self.sides[self.count] = <uint8_t>side
        self.prices[self.count] = price_ticks
        self.sizes[self.count] = size_lots
        self.count += 1
        return 0

    cpdef void clear(self):
        """Empty the buffer and reset the header; capacity is kept."""
        self.changes += 1
        self.count = 0
        self.first_id = 0
        self.last_id = 0
        self.event_ms = 0
        self.is_snapshot = False

    @property
    def first_update_id(self):
        """First sequence id covered (Gate ``U``, MEXC ``fromVersion``)."""
        return self.first_id

    @first_update_id.setter
    def first_update_id(self, int_arg value):
        self.first_id = value

    @property
    def last_update_id(self):
        """Last sequence id covered (Gate ``u``, MEXC ``toVersion``)."""
        return self.last_id

    @last_update_id.setter
    def last_update_id(self, int_arg value):
        self.last_id = value

    @property
    def event_time_ms(self):
        """Venue event time in ms, 0 if unknown."""
        return self.event_ms

    @event_time_ms.setter
    def event_time_ms(self, int_arg value):
        self.event_ms = value

    def add(self, int_arg side, int_arg price_ticks, int_arg size_lots):
        """Append one level (validated: side BID/ASK, price > 0, size >= 0)."""
        if side != BID and side != ASK:
            raise ValueError(f"side must be 0 (bid) or 1 (ask), got {side}")
        if price_ticks <= 0:
            raise ValueError(f"price_ticks must be > 0, got {price_ticks}")
        if size_lots < 0:
            raise ValueError(f"size_lots must be >= 0, got {size_lots}")
        self.changes += 1
        self.push(side, price_ticks, size_lots)

    def extend(self, levels):
        """Append (side, price_ticks, size_lots) tuples validated as add() does; on error none is kept
        (RuntimeError, and an emptied batch, when the iteration itself changed the batch).

        Then every (side, price_ticks) of the batch appears once: at its first position, with its
        last size. Returns how many entries that merged away (0: the batch grew by len(levels)).
        """
        cdef Py_ssize_t start = self.count
        cdef Py_ssize_t i = 0
        cdef int_arg side, price_ticks, size_lots
        cdef uint64_t changes
        if levels is None:
            raise ValueError("levels must be an iterable of (side, price_ticks, size_lots), got None")
        self.changes += 1
        changes = self.changes
        try:
            for level in levels:
                if not isinstance(level, tuple) or len(level) != 3:
                    raise ValueError(f"levels[{i}] must be a (side, price_ticks, size_lots) tuple, got {level!r}")
                side = level[0]
                price_ticks = level[1]
                size_lots = level[2]
                if side != BID and side != ASK:
                    raise ValueError(f"side must be 0 (bid) or 1 (ask), got {side}")
                if price_ticks <= 0:
                    raise ValueError(f"price_ticks must be > 0, got {price_ticks}")
                if size_lots < 0:
                    raise ValueError(f"size_lots must be >= 0, got {size_lots}")
                self.push(side, price_ticks, size_lots)
                i += 1
        except BaseException:
            if self.changes != changes:
                self.clear()
                raise RuntimeError("the batch was changed while extend read its levels; it was emptied")
            self.count = start
            raise
        if self.changes != changes:
            self.clear()
            raise RuntimeError("the batch was changed while extend read its levels; it was emptied")
        return _merge_repeats(self)

    def levels(self):
        """The buffered levels as a list of (side, price_ticks, size_lots), in order."""
        return [(self.sides[i], self.prices[i], self.sizes[i]) for i in range(self.count)]

    def __len__(self):
        return self.count

    def __repr__(self):
        return (f"DeltaBatch(levels={self.count}, first_update_id={self.first_id}, "
                f"last_update_id={self.last_id}, snapshot={bool(self.is_snapshot)})")


cdef enum:
    _MERGE_SCAN = 16   # batches up to this size find repeats by pairwise comparison, larger ones by hashing
    _MERGED = 2        # side mark of an entry merged into an earlier one, squeezed out afterwards


cdef Py_ssize_t _merge_repeats(DeltaBatch batch) except -1:
    # Keep the first entry of each (side, price) with the size of its last one, in order.
    cdef Py_ssize_t n = batch.count
    cdef uint8_t* sides = batch.sides
    cdef int64_t* prices = batch.prices
    cdef int64_t* sizes = batch.sizes
    cdef Py_ssize_t i, j, w
    cdef Py_ssize_t merged = 0
    cdef Py_ssize_t* slots
    cdef size_t cap, mask, h
    if n < 2:
        return 0
    if n <= _MERGE_SCAN:
        for i in range(1, n):
            for j in range(i):
                if prices[j] == prices[i] and sides[j] == sides[i]:
                    sizes[j] = sizes[i]
                    sides[i] = _MERGED
                    merged += 1
                    break
    else:
        # Open addressing; a slot holds 1 + the index of the first entry of its key, 0 if empty.
        cap = 32
        while cap < <size_t>n * 2:
            cap <<= 1
        slots = <Py_ssize_t*>calloc(cap, sizeof(Py_ssize_t))
        if slots == NULL:
            raise MemoryError()
        mask = cap - 1
        for i in range(n):
            h = <size_t>((((<uint64_t>prices[i]) << 1 | sides[i]) * <uint64_t>0x9E3779B97F4A7C15) >> 32) & mask
            while True:
                j = slots[h]
                if j == 0:
                    slots[h] = i + 1
                    break
                j -= 1
                if prices[j] == prices[i] and sides[j] == sides[i]:
                    sizes[j] = sizes[i]
                    sides[i] = _MERGED
                    merged += 1
                    break
                h = (h + 1) & mask
        free(slots)
    if merged:
        w = 0
        for i in range(n):
            if sides[i] != _MERGED:
                sides[w] = sides[i]
                prices[w] = prices[i]
                sizes[w] = sizes[i]
                w += 1
        batch.count = w
    return merged


class BookError(Exception):
    """Base class of order-book errors."""


class SequenceGapError(BookError):
    """A diff batch skipped update ids; the book has been marked out of sync."""


class CrossedBookError(BookError):
    """Best bid >= best ask after an update; the book has been marked out of sync."""


class BookOutOfSyncError(BookError):
    """A diff batch reached a book that needs a snapshot first."""


class StaleStreamError(BookError):
    """Only diffs the book already had arrived for ``STALE_STREAM_NS`` after its last change
    (the venue's update ids went backwards); the book has been marked out of sync."""


cdef enum:
    _SCAN = 16       # top slots scanned linearly before falling back to binary search
    _MIN_CAP = 16    # first allocation of a side that starts empty


cdef struct Level:
    int64_t price_ticks
    int64_t size_lots


cdef inline Py_ssize_t _lower_bound(const int64_t* prices, Py_ssize_t n, int64_t sgn,
                                    int64_t key) noexcept nogil:
    # Keys (sgn * price) ascend along the array; return the first index with key >= ``key``.
    cdef Py_ssize_t i = n
    cdef Py_ssize_t stop = n - _SCAN if n > _SCAN else 0
    cdef Py_ssize_t lo = 0
    cdef Py_ssize_t mid
    while i > stop and sgn * prices[i - 1] >= key:
        i -= 1
    if i > stop or stop == 0:
        return i
    while lo < stop:
        mid = (lo + stop) >> 1
        if sgn * prices[mid] < key:
            lo = mid + 1
        else:
            stop = mid
    return lo


cdef int _reserve(int64_t** prices, int64_t** sizes, Py_ssize_t* cap, Py_ssize_t need) except -1:
    # Resize both arrays of a side to ``need`` (>= 1) slots.
    cdef void* p
    if need > (<Py_ssize_t>1 << 40):
        raise MemoryError(f"order book side of {need} levels")
    p = realloc(prices[0], need * sizeof(int64_t))
    if p == NULL:
        raise MemoryError()
    prices[0] = <int64_t*>p
    p = realloc(sizes[0], need * sizeof(int64_t))
    if p == NULL:
        # prices may already have shrunk: only the smaller size is safe to use
        cap[0] = need if need < cap[0] else cap[0]
        raise MemoryError()
    sizes[0] = <int64_t*>p
    cap[0] = need
    return 0


cdef inline int _set(int64_t** prices, int64_t** sizes, Py_ssize_t* n, Py_ssize_t* cap,
                     int64_t sgn, int64_t price_ticks, int64_t size_lots) except -1:
    cdef Py_ssize_t count = n[0]
    cdef int64_t* p = prices[0]
    cdef int64_t* s = sizes[0]
    cdef Py_ssize_t i = _lower_bound(p, count, sgn, sgn * price_ticks)
    if i < count and p[i] == price_ticks:
        if size_lots != 0:
            s[i] = size_lots
        else:
            memmove(p + i, p + i + 1, (count - i - 1) * sizeof(int64_t))
            memmove(s + i, s + i + 1, (count - i - 1) * sizeof(int64_t))
            n[0] = count - 1
        return 0
    if size_lots == 0:
        return 0
    if count == cap[0]:
        _reserve(prices, sizes, cap, 2 * count if count else _MIN_CAP)
        p = prices[0]
        s = sizes[0]
    memmove(p + i + 1, p + i, (count - i) * sizeof(int64_t))
    memmove(s + i + 1, s + i, (count - i) * sizeof(int64_t))
    p[i] = price_ticks
    s[i] = size_lots
    n[0] = count + 1
    return 0


cdef int _cmp_ascending(const void* a, const void* b) noexcept nogil:
    cdef int64_t x = (<const Level*>a).price_ticks
    cdef int64_t y = (<const Level*>b).price_ticks
    return (x > y) - (x < y)


cdef int _cmp_descending(const void* a, const void* b) noexcept nogil:
    cdef int64_t x = (<const Level*>a).price_ticks
    cdef int64_t y = (<const Level*>b).price_ticks
    return (x < y) - (x > y)


cdef str _side_name(int side):
    return "bid" if side == BID else "ask"


cdef int _order_levels(Level* levels, Py_ssize_t n, int side, str name) except -1:
    # Sort one side of a snapshot best-last; already-sorted input (either way) is O(n).
    cdef int64_t sgn = 1 if side == BID else -1
    cdef bint ascending = True
    cdef bint descending = True
    cdef Py_ssize_t i
    cdef Level tmp
    for i in range(1, n):
        if sgn * levels[i - 1].price_ticks >= sgn * levels[i].price_ticks:
            ascending = False
        if sgn * levels[i - 1].price_ticks <= sgn * levels[i].price_ticks:
            descending = False
        if not ascending and not descending:
            break
    if ascending:
        return 0
    if descending:
        for i in range(n // 2):
            tmp = levels[i]
            levels[i] = levels[n - 1 - i]
            levels[n - 1 - i] = tmp
        return 0
    qsort(levels, n, sizeof(Level), _cmp_ascending if side == BID else _cmp_descending)
    for i in range(1, n):
        if levels[i - 1].price_ticks == levels[i].price_ticks:
            raise ValueError(f"book {name!r}: duplicate {_side_name(side)} price_ticks "
                             f"{levels[i].price_ticks} in snapshot")
    return 0


cdef int _load(int64_t** prices, int64_t** sizes, Py_ssize_t* n, Py_ssize_t* cap,
               const Level* levels, Py_ssize_t count) except -1:
    # Replace one side with ``levels`` (already best-last), sizing it to about count * 9/8.
    cdef Py_ssize_t target = (count + count // 8 + 8) & ~(<Py_ssize_t>7)
    cdef Py_ssize_t i
    n[0] = 0
    if cap[0] < count or cap[0] > 2 * target + 64:
        _reserve(prices, sizes, cap, target)
    for i in range(count):
        prices[0][i] = levels[i].price_ticks
        sizes[0][i] = levels[i].size_lots
    n[0] = count
    return 0


cdef inline int _check_side(int_arg side) except -1:
    if side != BID and side != ASK:
        raise ValueError(f"side must be 0 (bid) or 1 (ask), got {side}")
    return 0


cdef int _raise_if_crossed(OrderBook book) except -1:
    cdef int64_t bid = book.best_bid_price_c()
    cdef int64_t ask = book.best_ask_price_c()
    if book.n_bids and book.n_asks and bid >= ask:
        book.in_sync = False
        raise CrossedBookError(
            f"book {book.name!r}: crossed at update {book.last_update_id}, "
            f"best bid {bid} >= best ask {ask}")
    return 0


cdef class OrderBook:
    """L2 book in ticks and lots for one instrument on one venue.

    Feed it with ``apply_snapshot`` and then ``apply_batch``; read it with ``best_bid``,
    ``best_ask``, ``top``, ``walk`` and ``size_up_to``.
    """

    def __init__(self, str name="", Py_ssize_t capacity=64):
        if name is None:
            raise ValueError("name must be a str, got None")
        if capacity < 1 or capacity > (1 << 32):
            raise ValueError(f"capacity must be in [1, 2**32], got {capacity}")
        self.name = name
        self.n_bids = 0
        self.n_asks = 0
        _reserve(&self.bid_prices, &self.bid_sizes, &self.cap_bids, capacity)
        _reserve(&self.ask_prices, &self.ask_sizes, &self.cap_asks, capacity)
        self.last_update_id = 0
        self.in_sync = False
        self.last_recv_ns = 0
        self.last_event_ms = 0

    def __dealloc__(self):
        free(self.bid_prices)
        free(self.bid_sizes)
        free(self.ask_prices)
        free(self.ask_sizes)

    cdef int set_level(self, int side, int64_t price_ticks, int64_t size_lots) except -1:
        if side == BID:
            return _set(&self.bid_prices, &self.bid_sizes, &self.n_bids, &self.cap_bids,
                        1, price_ticks, size_lots)
        return _set(&self.ask_prices, &self.ask_sizes, &self.n_asks, &self.cap_asks,
                    -1, price_ticks, size_lots)

    cpdef int apply_snapshot(self, DeltaBatch batch, int_arg recv_ns) except -1:
        """Replace the book with ``batch`` (size-0 levels skipped) and mark it in sync.

        Raises ValueError on a duplicate price within one side (the book is left
        untouched) and CrossedBookError if the snapshot is crossed (the book keeps
        the snapshot but stays out of sync).
        """
        cdef Py_ssize_t i
        cdef Py_ssize_t nb = 0
        cdef Py_ssize_t na = 0
        cdef Level* levels
        if batch is None:
            raise ValueError("batch must be a DeltaBatch, got None")
        for i in range(batch.count):
            if batch.sizes[i] != 0:
                if batch.sides[i] == BID:
                    nb += 1
                else:
                    na += 1
        levels = <Level*>malloc((nb + na + 1) * sizeof(Level))
        if levels == NULL:
            raise MemoryError()
        try:
            nb = 0
            na = 0
            for i in range(batch.count):
                if batch.sizes[i] != 0 and batch.sides[i] == BID:
                    levels[nb].price_ticks = batch.prices[i]
                    levels[nb].size_lots = batch.sizes[i]
                    nb += 1
            for i in range(batch.count):
                if batch.sizes[i] != 0 and batch.sides[i] != BID:
                    levels[nb + na].price_ticks = batch.prices[i]
                    levels[nb + na].size_lots = batch.sizes[i]
                    na += 1
            _order_levels(levels, nb, BID, self.name)
            _order_levels(levels + nb, na, ASK, self.name)
            self.in_sync = False
            _load(&self.bid_prices, &self.bid_sizes, &self.n_bids, &self.cap_bids, levels, nb)
            _load(&self.ask_prices, &self.ask_sizes, &self.n_asks, &self.cap_asks,
                  levels + nb, na)
        finally:
            free(levels)
        self.last_update_id = batch.last_id
        self.last_recv_ns = recv_ns
        self.last_event_ms = batch.event_ms
        _raise_if_crossed(self)
        self.in_sync = True
        return APPLIED

    cpdef int apply_batch(self, DeltaBatch batch, int_arg recv_ns) except -1:
        """Apply a diff batch under the sequence rule; returns APPLIED or STALE.

        Raises BookOutOfSyncError if the book needs a snapshot, SequenceGapError if
        ids were skipped, CrossedBookError if the result is crossed and StaleStreamError
        for a stale batch received more than ``STALE_STREAM_NS`` after the book last
        changed; the last three mark the book out of sync.
        """
        cdef Py_ssize_t i
        cdef uint64_t unchanged_ns
        if batch is None:
            raise ValueError("batch must be a DeltaBatch, got None")
        if not self.in_sync:
            raise BookOutOfSyncError(
                f"book {self.name!r} is out of sync (last_update_id {self.last_update_id}); "
                f"a snapshot is needed before batch "
                f"{batch.first_id}..{batch.last_id}")
        if batch.last_id <= self.last_update_id:
            if recv_ns > self.last_recv_ns:
                unchanged_ns = <uint64_t>recv_ns - <uint64_t>self.last_recv_ns  # exact for any two such int64
                if unchanged_ns > <uint64_t>_STALE_STREAM_NS:
                    self.in_sync = False
                    raise StaleStreamError(
                        f"book {self.name!r}: batch {batch.first_id}..{batch.last_id} is at or before "
                        f"update {self.last_update_id}, and the book has not changed for "
                        f"{unchanged_ns // 1_000_000} ms: the venue's update ids went backwards")
            return STALE
        if batch.first_id > self.last_update_id + 1:
            self.in_sync = False
            raise SequenceGapError(
                f"book {self.name!r}: gap, batch starts at update {batch.first_id} "
                f"but the book is at {self.last_update_id}")
        try:
            for i in range(batch.count):
                if batch.sides[i] == BID:
                    _set(&self.bid_prices, &self.bid_sizes, &self.n_bids, &self.cap_bids,
                         1, batch.prices[i], batch.sizes[i])
                else:
                    _set(&self.ask_prices, &self.ask_sizes, &self.n_asks, &self.cap_asks,
                         -1, batch.prices[i], batch.sizes[i])
        except BaseException:
            self.in_sync = False
            raise
        self.last_update_id = batch.last_id
        self.last_recv_ns = recv_ns
        self.last_event_ms = batch.event_ms
        if self.n_bids and self.n_asks and self.best_bid_price_c() >= self.best_ask_price_c():
            _raise_if_crossed(self)
        return APPLIED

    cpdef void mark_out_of_sync(self):
        """Require a snapshot before the next diff batch (for example after a reconnect)."""
        self.in_sync = False

    def clear(self):
        """Remove every level and reset ids and times; the book is left out of sync."""
        self.n_bids = 0
        self.n_asks = 0
        self.last_update_id = 0
        self.in_sync = False
        self.last_recv_ns = 0
        self.last_event_ms = 0

    cdef int walk_c(self, int side, int64_t size_lots, WalkResult* out) except -1:
        # ASK: buy ``size_lots`` against the asks; BID: sell into the bids. Best first.
        cdef const int64_t* prices
        cdef const int64_t* sizes
        cdef Py_ssize_t i
        cdef int64_t take
        cdef int64_t left = size_lots
        out.filled_lots = 0
        out.notional = 0
        out.worst_price_ticks = 0
        out.levels = 0
        if side == BID:
            prices = self.bid_prices
            sizes = self.bid_sizes
            i = self.n_bids
        else:
            prices = self.ask_prices
            sizes = self.ask_sizes
            i = self.n_asks
        while left > 0 and i > 0:
            i -= 1
            take = sizes[i] if sizes[i] < left else left
            # Each term is under 2**126 and the sum so far at most NOTIONAL_MAX: no wrap before the check.
            out.notional += <wide_t>prices[i] * take
            if out.notional > NOTIONAL_MAX:
                raise OverflowError(f"fixed-point overflow: a walk's notional exceeds 2**112 - 1 at {size_lots} lots")
            left -= take
            out.worst_price_ticks = prices[i]
            out.levels += 1
        out.filled_lots = size_lots - left
        return 0

    cdef int64_t size_up_to_c(self, int side, int64_t limit_price_ticks) noexcept:
        # Lots at prices at least as good as the limit; saturates at INT64_MAX.
        cdef const int64_t* prices
        cdef const int64_t* sizes
        cdef Py_ssize_t i
        cdef int64_t total = 0
        if side == BID:
            prices = self.bid_prices
            sizes = self.bid_sizes
            i = self.n_bids
            while i > 0 and prices[i - 1] >= limit_price_ticks:
                i -= 1
                if total > INT64_MAX - sizes[i]:
                    return INT64_MAX
                total += sizes[i]
        else:
            prices = self.ask_prices
            sizes = self.ask_sizes
            i = self.n_asks
            while i > 0 and prices[i - 1] <= limit_price_ticks:
                i -= 1
                if total > INT64_MAX - sizes[i]:
                    return INT64_MAX
                total += sizes[i]
        return total

    cdef int64_t size_at_c(self, int side, int64_t price_ticks) noexcept:
        # Lots of the level at ``price_ticks``, 0 when there is none.
        cdef const int64_t* prices
        cdef Py_ssize_t n
        cdef Py_ssize_t i
        cdef int64_t sgn
        if side == BID:
            prices, n, sgn = self.bid_prices, self.n_bids, 1
        else:
            prices, n, sgn = self.ask_prices, self.n_asks, -1
        i = _lower_bound(prices, n, sgn, sgn * price_ticks)
        if i < n and prices[i] == price_ticks:
            return self.bid_sizes[i] if side == BID else self.ask_sizes[i]
        return 0

    # ---- Python API -----------------------------------------------------------------

    def apply_delta(self, int_arg side, int_arg price_ticks, int_arg size_lots):
        """Set one level (size 0 deletes; deleting a missing level is a no-op).

        A raw edit: no sequence or crossing check.
        """
        _check_side(side)
        if price_ticks <= 0:
            raise ValueError(f"price_ticks must be > 0, got {price_ticks}")
        if size_lots < 0:
            raise ValueError(f"size_lots must be >= 0, got {size_lots}")
        self.set_level(side, price_ticks, size_lots)

    def best_bid(self):
        """(price_ticks, size_lots) of the best bid, or None when there are no bids."""
        cdef Py_ssize_t n = self.n_bids
        if n:
            return (self.bid_prices[n - 1], self.bid_sizes[n - 1])
        return None

    def best_ask(self):
        """(price_ticks, size_lots) of the best ask, or None when there are no asks."""
        cdef Py_ssize_t n = self.n_asks
        if n:
            return (self.ask_prices[n - 1], self.ask_sizes[n - 1])
        return None

    def best_bid_price(self):
        """Best bid in ticks, 0 when there are no bids."""
        return self.best_bid_price_c()

    def best_ask_price(self):
        """Best ask in ticks, 0 when there are no asks."""
        return self.best_ask_price_c()

    def top(self, int_arg side, Py_ssize_t n):
        """Up to ``n`` levels of ``side`` as (price_ticks, size_lots), best first."""
        cdef const int64_t* prices
        cdef const int64_t* sizes
        cdef Py_ssize_t count
        cdef Py_ssize_t i
        _check_side(side)
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if side == BID:
            prices = self.bid_prices
            sizes = self.bid_sizes
            count = self.n_bids
        else:
            prices = self.ask_prices
            sizes = self.ask_sizes
            count = self.n_asks
        if n > count:
            n = count
        return [(prices[count - 1 - i], sizes[count - 1 - i]) for i in range(n)]

    def walk(self, int_arg side, int_arg size_lots):
        """Fill ``size_lots`` against ``side`` (ASK = buy, BID = sell), best level first.

        Returns (filled_lots, notional, worst_price_ticks, levels); notional is the sum of
        price_ticks * size_lots over the filled part (OverflowError if it exceeds ``NOTIONAL_MAX``).
        """
        cdef WalkResult result
        _check_side(side)
        if size_lots < 0:
            raise ValueError(f"size_lots must be >= 0, got {size_lots}")
        self.walk_c(side, size_lots, &result)
        return (result.filled_lots, result.notional, result.worst_price_ticks, result.levels)

    def size_up_to(self, int_arg side, int_arg limit_price_ticks):
        """Lots on ``side`` at prices at least as good as the limit (ASK <=, BID >=)."""
        _check_side(side)
        if limit_price_ticks <= 0:
            raise ValueError(f"limit_price_ticks must be > 0, got {limit_price_ticks}")
        return self.size_up_to_c(side, limit_price_ticks)

    def size_at(self, int_arg side, int_arg price_ticks):
        """Lots of the level of ``side`` at ``price_ticks``; 0 when the book has none there."""
        _check_side(side)
        if price_ticks <= 0:
            raise ValueError(f"price_ticks must be > 0, got {price_ticks}")
        return self.size_at_c(side, price_ticks)

    def depth(self, int_arg side):
        """Number of levels on ``side``."""
        _check_side(side)
        return self.n_bids if side == BID else self.n_asks

    @property
    def bid_count(self):
        """Number of bid levels."""
        return self.n_bids

    @property
    def ask_count(self):
        """Number of ask levels."""
        return self.n_asks

    def __repr__(self):
        return (f"OrderBook(name={self.name!r}, bid={self.best_bid()}, ask={self.best_ask()}, "
                f"depth=({self.n_bids}, {self.n_asks}), last_update_id={self.last_update_id}, "
                f"in_sync={bool(self.in_sync)})")
