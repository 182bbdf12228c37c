# C-level interface of arb_core.wire.mexc: a Cython listener can decode a borrowed
# frame pointer without going through Python.
from arb_core.book cimport DeltaBatch
from arb_core.wire.common cimport WireScale

cdef int decode_spot_depth_c(const unsigned char* buf, Py_ssize_t n, WireScale scale,
                             DeltaBatch batch) except -1
cdef int decode_futures_depth_c(const unsigned char* buf, Py_ssize_t n, WireScale scale,
                                DeltaBatch batch) except -1
cdef int decode_spot_snapshot_c(const unsigned char* buf, Py_ssize_t n, WireScale scale,
                                DeltaBatch batch) except -1
cdef int decode_futures_snapshot_c(const unsigned char* buf, Py_ssize_t n, WireScale scale,
                                   DeltaBatch batch) except -1

# Routing helpers for compiled callers (arb_core.router): no GIL, no exception. Each
# initialises ``r`` over the frame; on failure it returns -1 and ``r`` holds the error
# that ``raise_wire_error(r, None)`` turns into the WireError the ``def`` functions raise.
# Symbols come back as the span [s, e) of the frame.
from arb_core.wire._scan cimport Reader

cdef enum:
    PB_LIMIT_DEPTHS = 303   # PushDataV3ApiWrapper.publicLimitDepths (a top-N book)
    PB_AGGRE_DEPTHS = 313   # PushDataV3ApiWrapper.publicAggreDepths (a diff)

cdef int spot_push_body_c(const unsigned char* buf, Py_ssize_t n, Reader* r) noexcept nogil
cdef int spot_frame_symbol_c(const unsigned char* buf, Py_ssize_t n, Reader* r, Py_ssize_t* s,
                             Py_ssize_t* e) noexcept nogil
cdef int classify_futures_c(const unsigned char* buf, Py_ssize_t n, Reader* r) noexcept nogil
cdef int futures_frame_symbol_c(const unsigned char* buf, Py_ssize_t n, Reader* r, Py_ssize_t* s,
                                Py_ssize_t* e) noexcept nogil

# Single pass for the router: 1 when the frame is a diff in its usual shape (an aggre depth
# push; a contract push.depth), read into ``raw`` (symbol span, versions, unscaled levels)
# exactly as the decoders above would read it; 0 when it is anything else, which the
# caller then routes through the helpers above and decode_*_depth_c.
from arb_core.wire.common cimport RawBatch

cdef int fast_spot_depth_c(const unsigned char* buf, Py_ssize_t n, RawBatch* raw) noexcept nogil
cdef int fast_futures_depth_c(const unsigned char* buf, Py_ssize_t n, RawBatch* raw) noexcept nogil
