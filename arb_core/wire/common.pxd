# C-level interface of arb_core.wire.common, shared by the venue decoders.
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.bytes cimport PyBytes_CheckExact, PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport int64_t

from arb_core.book cimport DeltaBatch
from arb_core.wire._scan cimport Reader

cdef enum:
    FRAME_OTHER = 0          # any other channel or reply
    FRAME_BOOK_UPDATE = 1    # an order-book diff / depth push
    FRAME_SUBSCRIPTION = 2   # subscribe / unsubscribe reply (success or error)
    FRAME_PONG = 3           # application-level pong


cdef class WireScale:
    """Fixed-point description of one instrument's prices and sizes on the wire."""
    cdef readonly int price_decimals
    cdef readonly int64_t tick_units
    cdef readonly int size_decimals
    cdef readonly int64_t lot_units
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


cdef inline void reset_batch(DeltaBatch batch) noexcept:
    """DeltaBatch.clear() without the cpdef dispatch (same fields, same values)."""
    batch.count = 0
    batch.first_update_id = 0
    batch.last_update_id = 0
    batch.event_time_ms = 0
    batch.is_snapshot = False
