"""The steady state of one market stream as one compiled call: frame -> book.

A ``BookRouter`` holds the books of one websocket stream (one venue market, one
dialect). ``route_c`` classifies a frame, reads its symbol, finds the book and, when
that book is in sync and the frame is a diff, decodes it into the router's own batch and
applies it: the same decisions the Python path of ``BookSync.on_message`` makes, taken
in C. Everything else (replies, pongs, unknown symbols, out-of-sync books, full pushes,
unreadable frames) returns ROUTE_OTHER with nothing changed, and the caller runs its
full path on the frame.

A diff in the venue's usual compact shape is read once: the wire module's single pass
(``fast_*_c``) takes its symbol, ids and levels as unscaled decimals in one read, and
the levels are scaled once the symbol has named the book. Any other frame, and any
number that the book's scale would refuse, takes the three steps (classify, frame
symbol, decode) whose errors and results are the reference; the single pass only ever
accepts what those steps decode the same way.
"""

from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcmp

from arb_core.book cimport DeltaBatch, OrderBook, APPLIED
from arb_core.fixed cimport int_arg
from arb_core.wire._scan cimport Reader
from arb_core.wire.common cimport (
    WireScale, Frame, frame_acquire, frame_release, FRAME_BOOK_UPDATE, raw_to_batch, raw_free,
)
from arb_core.wire.gateio cimport (
    fast_update_c as gate_fast_c,
    classify_c as gate_classify_c,
    frame_symbol_c as gate_frame_symbol_c,
    decode_spot_update_c as gate_decode_spot_c,
    decode_futures_update_c as gate_decode_futures_c,
)
from arb_core.wire.mexc cimport (
    fast_spot_depth_c as mexc_fast_spot_c,
    fast_futures_depth_c as mexc_fast_futures_c,
    spot_push_body_c as mexc_push_body_c,
    spot_frame_symbol_c as mexc_spot_symbol_c,
    classify_futures_c as mexc_classify_futures_c,
    futures_frame_symbol_c as mexc_futures_symbol_c,
    decode_spot_depth_c as mexc_decode_spot_c,
    decode_futures_depth_c as mexc_decode_futures_c,
    PB_LIMIT_DEPTHS, PB_AGGRE_DEPTHS,
)

globals().update(
    ROUTE_APPLIED=ROUTE_APPLIED, ROUTE_STALE=ROUTE_STALE, ROUTE_OTHER=ROUTE_OTHER,
    DIALECT_NONE=DIALECT_NONE, DIALECT_GATEIO_SPOT=DIALECT_GATEIO_SPOT,
    DIALECT_GATEIO_FUTURES=DIALECT_GATEIO_FUTURES, DIALECT_MEXC_SPOT=DIALECT_MEXC_SPOT,
    DIALECT_MEXC_FUTURES=DIALECT_MEXC_FUTURES,
)

cdef enum:
    MIN_BUCKETS = 8


cdef inline uint64_t _hash(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    """FNV-1a over the symbol bytes."""
    cdef uint64_t h = 14695981039346656037ULL
    cdef Py_ssize_t i
    for i in range(n):
        h = (h ^ p[i]) * 1099511628211ULL
    return h


cdef inline Py_ssize_t _find(BookRouter router, const unsigned char* p, Py_ssize_t n) noexcept nogil:
    """Slot of the venue symbol p[0:n], -1 when it is not registered."""
    cdef uint64_t h = _hash(p, n)
    cdef Py_ssize_t mask = router._mask
    cdef Py_ssize_t i = <Py_ssize_t>(h & <uint64_t>mask)
    cdef Py_ssize_t slot
    cdef SymbolRef* ref
    while True:
        slot = router._table[i]
        if slot < 0:
            return -1
        ref = &router._refs[slot]
        if ref.hash == h and ref.len == n and memcmp(ref.ptr, p, n) == 0:
            return slot
        i = (i + 1) & mask


cdef int _rebuild_table(BookRouter router, Py_ssize_t buckets, Py_ssize_t count) except -1:
    """A table of ``buckets`` (a power of two, at least twice ``count``) holding slots 0..count-1.

    On MemoryError the old table stays in place.
    """
    cdef Py_ssize_t* table = <Py_ssize_t*>PyMem_Malloc(buckets * sizeof(Py_ssize_t))
    cdef Py_ssize_t i, slot
    if table == NULL:
        raise MemoryError()
    for i in range(buckets):
        table[i] = -1
    for slot in range(count):
        i = <Py_ssize_t>(router._refs[slot].hash & <uint64_t>(buckets - 1))
        while table[i] >= 0:
            i = (i + 1) & (buckets - 1)
        table[i] = slot
    PyMem_Free(router._table)
    router._table = table
    router._mask = buckets - 1
    return 0


cdef int _grow(BookRouter router) except -1:
    """Room for one more slot in the per-slot arrays."""
    cdef Py_ssize_t capacity = router._capacity * 2 if router._capacity else 8
    cdef void* p
    p = PyMem_Realloc(router._refs, capacity * sizeof(SymbolRef))
    if p == NULL:
        raise MemoryError()
    router._refs = <SymbolRef*>p
    p = PyMem_Realloc(router._applied, capacity * sizeof(int64_t))
    if p == NULL:
        raise MemoryError()
    router._applied = <int64_t*>p
    p = PyMem_Realloc(router._stale, capacity * sizeof(int64_t))
    if p == NULL:
        raise MemoryError()
    router._stale = <int64_t*>p
    router._capacity = capacity
    return 0


cdef int _check_slot(BookRouter router, Py_ssize_t slot) except -1:
    if slot < 0 or slot >= router._count:
        raise ValueError(f"slot must be in [0, {router._count}), got {slot}")
    return 0


cdef class BookRouter:
    """The books of one market stream and the compiled steady-state path over them.

    ``dialect`` is one of the ``DIALECT_*`` constants of this module (DIALECT_NONE
    routes nothing). Books are registered with ``add_book`` and
    addressed by slot (0, 1, ... in registration order). ``single_pass=False`` routes
    every frame through the three steps: the same results, more slowly (for comparison).
    """

    def __cinit__(self, int_arg dialect, *, bint single_pass=True):
        if dialect < DIALECT_NONE or dialect > DIALECT_MEXC_FUTURES:
            raise ValueError(f"dialect must be one of the arb_core.router dialect constants "
                             f"({DIALECT_NONE}..{DIALECT_MEXC_FUTURES}), got {dialect}")
        self.dialect = dialect
        self._single_pass = single_pass
        self.last_slot = -1
        self._books = []
        self._scales = []
        self._symbols = []
        self._batch = DeltaBatch(256)
        _rebuild_table(self, MIN_BUCKETS, 0)

    def __dealloc__(self):
        PyMem_Free(self._refs)
        PyMem_Free(self._applied)
        PyMem_Free(self._stale)
        PyMem_Free(self._table)
        raw_free(&self._raw)

    def add_book(self, bytes venue_symbol not None, OrderBook book not None,
                 WireScale scale not None):
        """Register ``book`` for frames naming ``venue_symbol``, decoded with ``scale``; returns its slot."""
        cdef Py_ssize_t n = len(venue_symbol)
        cdef const unsigned char* p = <const unsigned char*>(<char*>venue_symbol)
        cdef Py_ssize_t slot = self._count
        if n == 0:
            raise ValueError("venue_symbol must not be empty")
        if _find(self, p, n) >= 0:
            raise ValueError(f"venue_symbol {venue_symbol!r} is already registered")
        if slot == self._capacity:
            _grow(self)
        # Slot entries past _count are invisible, so a MemoryError below leaves the router as it was.
        self._refs[slot].ptr = p
        self._refs[slot].len = n
        self._refs[slot].hash = _hash(p, n)
        self._applied[slot] = 0
        self._stale[slot] = 0
        try:
            self._books.append(book)
            self._scales.append(scale)
            self._symbols.append(venue_symbol)
            # at most half full, so probe chains stay short
            _rebuild_table(self, 2 * (self._mask + 1) if 2 * (slot + 1) > self._mask + 1 else self._mask + 1,
                           slot + 1)
        except BaseException:
            del self._books[slot:], self._scales[slot:], self._symbols[slot:]
            raise
        self._count = slot + 1
        return slot

    @property
    def slots(self):
        """Number of registered books."""
        return self._count

    @property
    def single_pass_frames(self):
        """Diffs the single pass read (the rest of the frames took the three steps)."""
        return self._single

    def applied(self, Py_ssize_t slot):
        """Diffs ``route`` applied to the book at ``slot``."""
        _check_slot(self, slot)
        return self._applied[slot]

    def stale(self, Py_ssize_t slot):
        """Diffs ``route`` ignored because the book at ``slot`` already had them."""
        _check_slot(self, slot)
        return self._stale[slot]

    def route(self, frame, recv_ns):
        """Route one frame (bytes, bytearray or memoryview); ROUTE_APPLIED, ROUTE_STALE or ROUTE_OTHER.

        Decode errors (WireError, ValueError, OverflowError) and BookError subclasses
        propagate with ``last_slot`` naming the book.
        """
        cdef Frame f
        cdef int_arg t
        self.last_slot = -1  # also when the arguments are refused
        t = recv_ns  # as an index: a float or Decimal time is refused, not truncated
        frame_acquire(&f, frame)
        try:
            return self.route_c(f.buf, f.n, t)
        finally:
            frame_release(&f)

    cdef int route_c(self, const unsigned char* buf, Py_ssize_t n, int64_t recv_ns) except -1:
        cdef Reader r
        cdef Py_ssize_t s = 0, e = 0
        cdef Py_ssize_t slot
        cdef int body
        cdef int dialect = self.dialect
        cdef bint single = False
        cdef OrderBook book
        cdef WireScale scale
        cdef DeltaBatch batch = self._batch
        self.last_slot = -1
        if self._single_pass:
            if dialect == DIALECT_GATEIO_SPOT or dialect == DIALECT_GATEIO_FUTURES:
                single = gate_fast_c(buf, n, &self._raw, dialect == DIALECT_GATEIO_FUTURES)
            elif dialect == DIALECT_MEXC_SPOT:
                single = mexc_fast_spot_c(buf, n, &self._raw)
            elif dialect == DIALECT_MEXC_FUTURES:
                single = mexc_fast_futures_c(buf, n, &self._raw)
        # Classification and symbol errors are not raised here: the Python path meets
        # them again and counts the frame as unroutable.
        if single:
            s = self._raw.symbol_start
            e = self._raw.symbol_end
        elif dialect == DIALECT_GATEIO_SPOT or dialect == DIALECT_GATEIO_FUTURES:
            if (gate_classify_c(buf, n, &r) != FRAME_BOOK_UPDATE
                    or gate_frame_symbol_c(buf, n, &r, &s, &e) < 0):
                return ROUTE_OTHER
        elif dialect == DIALECT_MEXC_SPOT:
            if n == 0 or buf[0] == 123:  # '{': a JSON reply
                return ROUTE_OTHER
            body = mexc_push_body_c(buf, n, &r)
            if ((body != PB_AGGRE_DEPTHS and body != PB_LIMIT_DEPTHS)
                    or mexc_spot_symbol_c(buf, n, &r, &s, &e) < 0):
                return ROUTE_OTHER
        elif dialect == DIALECT_MEXC_FUTURES:
            if (mexc_classify_futures_c(buf, n, &r) != FRAME_BOOK_UPDATE
                    or mexc_futures_symbol_c(buf, n, &r, &s, &e) < 0):
                return ROUTE_OTHER
        else:
            return ROUTE_OTHER
        slot = _find(self, buf + s, e - s)
        if slot < 0:
            return ROUTE_OTHER
        self.last_slot = slot
        book = <OrderBook>self._books[slot]
        if not book.in_sync:
            return ROUTE_OTHER
        scale = <WireScale>self._scales[slot]
        if single and scale.symbol_matches(buf, s, e) and raw_to_batch(&self._raw, scale, batch):
            self._single += 1
        elif dialect == DIALECT_GATEIO_SPOT:
            gate_decode_spot_c(buf, n, scale, batch)
        elif dialect == DIALECT_GATEIO_FUTURES:
            gate_decode_futures_c(buf, n, scale, batch)
        elif dialect == DIALECT_MEXC_SPOT:
            mexc_decode_spot_c(buf, n, scale, batch)
        else:
            mexc_decode_futures_c(buf, n, scale, batch)
        if batch.is_snapshot:
            return ROUTE_OTHER
        if book.apply_batch(batch, recv_ns) == APPLIED:
            self._applied[slot] += 1
            return ROUTE_APPLIED
        self._stale[slot] += 1
        return ROUTE_STALE
