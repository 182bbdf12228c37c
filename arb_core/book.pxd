# C-level interface of arb_core.book; other Cython modules cimport this and skip Python.
from libc.stdint cimport int64_t, uint8_t, uint64_t

from arb_core.fixed cimport int_arg, wide_t

cdef enum:
    BID = 0
    ASK = 1

cdef enum:
    APPLIED = 0        # the batch continued the sequence and was applied
    STALE = 1          # the batch ended at or before the book's last update id; ignored


cdef struct WalkResult:
    int64_t filled_lots       # lots actually available (<= requested)
    wide_t notional           # sum(price_ticks * size_lots) over the filled part, <= NOTIONAL_MAX
    int64_t worst_price_ticks # price of the last level touched (0 if nothing filled)
    int64_t levels            # number of levels touched


cdef class DeltaBatch:
    """A reusable buffer of (side, price_ticks, size_lots) levels plus sequence header."""
    cdef uint8_t* sides
    cdef int64_t* prices
    cdef int64_t* sizes
    cdef Py_ssize_t count
    cdef Py_ssize_t capacity
    # Python reads and sets these as first_update_id, last_update_id and event_time_ms (properties
    # taking only integers; a Cython public attribute would truncate a float).
    cdef int64_t first_id                 # first sequence id covered (Gate U, MEXC fromVersion)
    cdef int64_t last_id                  # last sequence id covered (Gate u, MEXC toVersion)
    cdef int64_t event_ms                 # venue event time, 0 if unknown
    cdef public bint is_snapshot          # a full replacement rather than a diff
    cdef uint64_t changes                 # bumped by clear, add and extend: extend's rollback checks it

    cdef int push(self, int side, int64_t price_ticks, int64_t size_lots) except -1
    cpdef void clear(self)


cdef class OrderBook:
    """L2 book in ticks and lots. Each side is a sorted array with the best level last."""
    cdef int64_t* bid_prices     # ascending: best bid at [n_bids - 1]
    cdef int64_t* bid_sizes
    cdef int64_t* ask_prices     # descending: best ask at [n_asks - 1]
    cdef int64_t* ask_sizes
    cdef Py_ssize_t n_bids
    cdef Py_ssize_t n_asks
    cdef Py_ssize_t cap_bids
    cdef Py_ssize_t cap_asks
    cdef readonly str name
    cdef readonly int64_t last_update_id
    cdef readonly bint in_sync
    cdef readonly int64_t last_recv_ns    # local monotonic receive time of the last applied update
    cdef readonly int64_t last_event_ms   # venue event time of the last applied update

    cdef int set_level(self, int side, int64_t price_ticks, int64_t size_lots) except -1
    cpdef int apply_snapshot(self, DeltaBatch batch, int_arg recv_ns) except -1
    cpdef int apply_batch(self, DeltaBatch batch, int_arg recv_ns) except -1
    cpdef void mark_out_of_sync(self)
    cdef int walk_c(self, int side, int64_t size_lots, WalkResult* out) except -1
    cdef int64_t size_up_to_c(self, int side, int64_t limit_price_ticks) noexcept
    cdef int64_t size_at_c(self, int side, int64_t price_ticks) noexcept

    cdef inline int64_t best_bid_price_c(self) noexcept:
        return self.bid_prices[self.n_bids - 1] if self.n_bids else 0
    cdef inline int64_t best_bid_size_c(self) noexcept:
        return self.bid_sizes[self.n_bids - 1] if self.n_bids else 0
    cdef inline int64_t best_ask_price_c(self) noexcept:
        return self.ask_prices[self.n_asks - 1] if self.n_asks else 0
    cdef inline int64_t best_ask_size_c(self) noexcept:
        return self.ask_sizes[self.n_asks - 1] if self.n_asks else 0
