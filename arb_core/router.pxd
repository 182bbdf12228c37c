# C-level interface of arb_core.router: the steady-state path of one market stream
# (classify, find the book, decode, apply) as one call, for BookSync and compiled loops.
from libc.stdint cimport int64_t, uint64_t

from arb_core.book cimport DeltaBatch
from arb_core.wire.common cimport RawBatch

cdef enum:
    ROUTE_APPLIED = 0   # a diff decoded and applied to an in-sync book (last_slot names it)
    ROUTE_STALE = 1     # an in-sync book already had this diff (ignored; last_slot names it)
    ROUTE_OTHER = 2     # anything else: the caller must run its full (Python) path for this message.
                        # NOTHING was changed (no book, no counter) when ROUTE_OTHER is returned.

cdef enum:
    # which compiled classify / frame-symbol / decoder a router runs
    DIALECT_NONE = 0            # routes nothing: every frame is ROUTE_OTHER
    DIALECT_GATEIO_SPOT = 1
    DIALECT_GATEIO_FUTURES = 2
    DIALECT_MEXC_SPOT = 3
    DIALECT_MEXC_FUTURES = 4


cdef struct SymbolRef:
    const unsigned char* ptr    # borrowed from the bytes object kept in BookRouter._symbols
    Py_ssize_t len
    uint64_t hash


cdef class BookRouter:
    cdef readonly Py_ssize_t last_slot     # book slot of the last route_c call that found a book (-1 none)
    cdef readonly int dialect
    cdef list _books            # OrderBook per slot
    cdef list _scales           # WireScale per slot
    cdef list _symbols          # venue symbol (bytes) per slot; owns SymbolRef.ptr
    cdef SymbolRef* _refs       # per slot
    cdef int64_t* _applied      # per slot
    cdef int64_t* _stale        # per slot
    cdef Py_ssize_t _count
    cdef Py_ssize_t _capacity
    cdef Py_ssize_t* _table     # open addressing: slot per bucket, -1 empty
    cdef Py_ssize_t _mask       # buckets - 1 (a power of two minus one)
    cdef DeltaBatch _batch
    cdef RawBatch _raw          # the single pass's read of the current frame
    cdef bint _single_pass      # try the single pass first (False: always the three steps)
    cdef int64_t _single        # frames the single pass decoded

    cdef int route_c(self, const unsigned char* buf, Py_ssize_t n, int64_t recv_ns) except -1
