# C-level interface of arb_core.wire.common, shared by the venue decoders.
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.bytes cimport (
    PyBytes_CheckExact, PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize,
)
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport realloc, free
from libc.string cimport strlen

from arb_core.book cimport DeltaBatch
from arb_core.wire._scan cimport (
    Reader, fail, open_container, next_item, next_key, key_is, skip_value, read_plain_string,
    read_number_token, read_json_number, seen_once, require, open_levels, next_level,
    ERR_MISMATCH, ERR_MISSING, ERR_NOT_POSITIVE, ERR_ARITY,
)

cdef enum:
    FRAME_OTHER = 0          # any other channel or reply
    FRAME_BOOK_UPDATE = 1    # an order-book diff / depth push
    FRAME_SUBSCRIPTION = 2   # subscribe / unsubscribe reply (success or error)
    FRAME_PONG = 3           # application-level pong
    FRAME_ERROR = 4          # a venue's error reply (a refused subscription)


cdef class WireScale:
    """Fixed-point description of one instrument's prices and sizes on the wire."""
    cdef readonly int price_decimals
    cdef readonly int64_t tick_units
    cdef readonly int size_decimals
    cdef readonly int64_t lot_units
    cdef readonly bint floor_sizes     # sizes finer than the scale are rounded down, not refused
    cdef readonly bytes symbol

    cdef bint symbol_matches(self, const unsigned char* buf, Py_ssize_t start,
                             Py_ssize_t end) noexcept


cdef int raise_wire_error(Reader* r, WireScale scale) except -1


cdef struct Frame:
    # borrowed bytes of a frame: bytes are read in place, other buffers through a view
    const unsigned char* buf
    Py_ssize_t n
    Py_buffer view
    bint held


cdef inline int frame_acquire(Frame* f, object obj) except -1:
    """Borrow any contiguous buffer (bytes, bytearray, memoryview); TypeError/BufferError otherwise."""
    if PyBytes_CheckExact(obj):
        f.buf = <const unsigned char*>PyBytes_AS_STRING(obj)
        f.n = PyBytes_GET_SIZE(obj)
        f.held = False
        return 0
    PyObject_GetBuffer(obj, &f.view, PyBUF_SIMPLE)
    f.buf = <const unsigned char*>f.view.buf
    f.n = f.view.len
    f.held = True
    return 0


cdef inline void frame_release(Frame* f) noexcept:
    if f.held:
        PyBuffer_Release(&f.view)
        f.held = False


cdef struct RawLevel:
    uint64_t price          # the decimal digits of the price as written, point removed
    uint64_t size
    int price_frac          # how many of those digits follow the point
    int size_frac
    int side


cdef struct RawBatch:
    # A diff read in a single pass, before its book (and so its scale) is known: the
    # numbers stay decimal digits until raw_to_batch scales them.
    RawLevel* levels
    Py_ssize_t count
    Py_ssize_t capacity
    int64_t first_update_id
    int64_t last_update_id
    int64_t event_time_ms
    Py_ssize_t symbol_start     # the frame's symbol is its bytes [symbol_start, symbol_end)
    Py_ssize_t symbol_end


cdef inline void raw_reset(RawBatch* raw) noexcept nogil:
    raw.count = 0
    raw.first_update_id = 0
    raw.last_update_id = 0
    raw.event_time_ms = 0
    raw.symbol_start = 0
    raw.symbol_end = 0


cdef inline int raw_push(RawBatch* raw, int side, uint64_t price, int price_frac, uint64_t size,
                         int size_frac) noexcept nogil:
    """Append a level; -1 when the buffer cannot grow (the frame then takes the exact path)."""
    cdef Py_ssize_t cap
    cdef void* p
    cdef RawLevel* level
    if raw.count == raw.capacity:
        cap = raw.capacity * 2 if raw.capacity else 64
        p = realloc(raw.levels, cap * sizeof(RawLevel))
        if p == NULL:
            return -1
        raw.levels = <RawLevel*>p
        raw.capacity = cap
    level = &raw.levels[raw.count]
    level.price = price
    level.size = size
    level.price_frac = price_frac
    level.size_frac = size_frac
    level.side = side
    raw.count += 1
    return 0


cdef inline void raw_free(RawBatch* raw) noexcept nogil:
    free(raw.levels)
    raw.levels = NULL
    raw.count = 0
    raw.capacity = 0


cdef int raw_to_batch(RawBatch* raw, WireScale scale, DeltaBatch batch) except -1


cdef inline void reset_batch(DeltaBatch batch) noexcept:
    """DeltaBatch.clear() without the cpdef dispatch (same fields, same values)."""
    batch.count = 0
    batch.first_id = 0
    batch.last_id = 0
    batch.event_ms = 0
    batch.is_snapshot = False


ctypedef int (*Decoder)(const unsigned char* buf, Py_ssize_t n, WireScale scale,
                        DeltaBatch batch) except -1


cdef inline int decode_buffer(Decoder decode, object frame, WireScale scale,
                              DeltaBatch batch) except -1:
    """Run a ``decode_*_c`` function on any contiguous buffer (the ``def`` entry points)."""
    cdef Frame f
    frame_acquire(&f, frame)
    try:
        return decode(f.buf, f.n, scale, batch)
    finally:
        frame_release(&f)


cdef inline int next_member(Reader* r, WireScale scale, const char* field, bint* first,
                            Py_ssize_t* ks, Py_ssize_t* ke) except -1:
    """Next member of an open object, with ``field`` named in errors: 1 and the key span
    (cursor on the value), 0 after '}'."""
    cdef int rc
    r.field = field
    rc = next_key(r, first[0], ks, ke)
    if rc < 0:
        return raise_wire_error(r, scale)
    first[0] = False
    return rc


cdef inline object string_member(Reader* r, int found, const char* field):
    """The plain string value ``seek_key`` found (``found`` == 1) as bytes, for routing.

    ``found`` == 0 (absent) raises WireError naming ``field``; -1 raises the recorded error.
    """
    cdef Py_ssize_t s, e
    if found >= 0:
        r.field = field
        if found == 0:
            fail(r, ERR_MISSING, r.pos)
        elif read_plain_string(r, &s, &e) == 0:
            return PyBytes_FromStringAndSize(<const char*>r.buf + s, e - s)
    raise_wire_error(r, None)


cdef inline int check_symbol(Reader* r, WireScale scale, Py_ssize_t s, Py_ssize_t e) noexcept:
    """ERR_MISMATCH at ``s`` when [s, e) is not the scale's symbol (if it names one)."""
    if not scale.symbol_matches(r.buf, s, e):
        return fail(r, ERR_MISMATCH, s)
    return 0


cdef inline int read_symbol(Reader* r, WireScale scale) noexcept:
    """A plain string value checked against the scale's symbol."""
    cdef Py_ssize_t s, e
    if read_plain_string(r, &s, &e) < 0:
        return -1
    return check_symbol(r, scale, s, e)


cdef inline int read_price(Reader* r, WireScale scale, int kind, int64_t* out) noexcept:
    """A level price (written as ``kind``) in ticks; zero is ERR_NOT_POSITIVE."""
    if read_json_number(r, kind, scale.price_decimals, scale.tick_units, False, out) < 0:
        return -1
    if out[0] == 0:
        return fail(r, ERR_NOT_POSITIVE, r.pos)
    return 0


cdef inline int read_size(Reader* r, WireScale scale, int kind, int64_t* out) noexcept:
    """A level size (written as ``kind``) in lots (rounded down where the scale floors sizes)."""
    return read_json_number(r, kind, scale.size_decimals, scale.lot_units, scale.floor_sizes, out)


cdef inline int read_array_level(Reader* r, WireScale scale, int price_kind, int size_kind,
                                 int optional, int64_t* price, int64_t* size) noexcept:
    """[price, size] plus at most ``optional`` further JSON numbers (e.g. an order count)."""
    cdef int rc
    cdef int extra = 0
    cdef Py_ssize_t s, e
    if open_container(r, 91) < 0:
        return -1
    rc = next_item(r, True)
    if rc <= 0:
        return fail(r, ERR_ARITY, r.pos - 1) if rc == 0 else -1
    if read_price(r, scale, price_kind, price) < 0:
        return -1
    rc = next_item(r, False)
    if rc <= 0:
        return fail(r, ERR_ARITY, r.pos - 1) if rc == 0 else -1
    if read_size(r, scale, size_kind, size) < 0:
        return -1
    rc = next_item(r, False)
    while rc == 1:
        if extra == optional:
            return fail(r, ERR_ARITY, r.pos)
        if read_number_token(r, &s, &e) < 0:
            return -1
        extra += 1
        rc = next_item(r, False)
    return rc


cdef inline int read_object_level(Reader* r, WireScale scale, const char* price_key,
                                  int price_kind, const char* size_key, int size_kind,
                                  int64_t* price, int64_t* size) noexcept:
    """{price_key: price, size_key: size}; other members are skipped, both are required."""
    cdef const char* field = r.field
    cdef bint first = True
    cdef int seen = 0
    cdef int rc
    cdef Py_ssize_t ks, ke
    if open_container(r, 123) < 0:
        return -1
    while True:
        rc = next_key(r, first, &ks, &ke)
        if rc <= 0:
            if rc < 0:
                return -1
            break
        first = False
        if key_is(r.buf, ks, ke, price_key, <Py_ssize_t>strlen(price_key)):
            if seen_once(r, &seen, 1, ks) < 0 or read_price(r, scale, price_kind, price) < 0:
                return -1
        elif key_is(r.buf, ks, ke, size_key, <Py_ssize_t>strlen(size_key)):
            if seen_once(r, &seen, 2, ks) < 0 or read_size(r, scale, size_kind, size) < 0:
                return -1
        elif skip_value(r) < 0:
            return -1
    if require(r, seen, 1, field) < 0 or require(r, seen, 2, field) < 0:
        return -1
    return 0


cdef inline int read_array_levels(Reader* r, WireScale scale, DeltaBatch batch, int side,
                                  int price_kind, int size_kind, int optional) except -1:
    """A JSON list of ``[price, size]`` levels (plus up to ``optional`` numbers) into ``batch``.

    ``r.field`` names the list (e.g. b"bids[]"). Pass constants for the kinds (NUM_*):
    the C compiler then specialises the inlined loop for the venue's format.
    """
    cdef int64_t price = 0, size = 0
    cdef int rc = open_levels(r)
    while rc == 0:
        rc = next_level(r)
        if rc <= 0 or read_array_level(r, scale, price_kind, size_kind, optional,
                                       &price, &size) < 0:
            break
        rc = batch.push(side, price, size)
        r.index += 1
    return rc if rc == 0 else raise_wire_error(r, scale)


cdef inline int read_object_levels(Reader* r, WireScale scale, DeltaBatch batch, int side,
                                   const char* price_key, int price_kind, const char* size_key,
                                   int size_kind) except -1:
    """A JSON list of ``{price_key: price, size_key: size}`` levels into ``batch``."""
    cdef int64_t price = 0, size = 0
    cdef int rc = open_levels(r)
    while rc == 0:
        rc = next_level(r)
        if rc <= 0 or read_object_level(r, scale, price_key, price_kind, size_key, size_kind,
                                        &price, &size) < 0:
            break
        rc = batch.push(side, price, size)
        r.index += 1
    return rc if rc == 0 else raise_wire_error(r, scale)
