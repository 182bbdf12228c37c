# C-level interface of arb_core.wire.gateio: a Cython listener can decode a borrowed
# frame pointer without going through Python.
from arb_core.book cimport DeltaBatch
from arb_core.wire.common cimport WireScale

cdef int decode_spot_update_c(const unsigned char* buf, Py_ssize_t n, WireScale scale,
                              DeltaBatch batch) except -1
cdef int decode_futures_update_c(const unsigned char* buf, Py_ssize_t n, WireScale scale,
                                 DeltaBatch batch) except -1
cdef int decode_spot_snapshot_c(const unsigned char* buf, Py_ssize_t n, WireScale scale,
                                DeltaBatch batch) except -1
cdef int decode_futures_snapshot_c(const unsigned char* buf, Py_ssize_t n, WireScale scale,
                                   DeltaBatch batch) except -1

# Routing helpers for compiled callers (arb_core.router): no GIL, no exception. Each
# initialises ``r`` over the frame; on failure it returns -1 and ``r`` holds the error
# that ``raise_wire_error(r, None)`` turns into the WireError the ``def`` functions raise.
from arb_core.wire._scan cimport Reader

cdef int classify_c(const unsigned char* buf, Py_ssize_t n, Reader* r) noexcept nogil
cdef int frame_symbol_c(const unsigned char* buf, Py_ssize_t n, Reader* r, Py_ssize_t* s,
                        Py_ssize_t* e) noexcept nogil

# Single pass for the router: 1 when the frame is a diff in Gate's compact shape, read into
# ``raw`` (symbol span, ids, unscaled levels) exactly as the decoder above would read it;
# 0 when it is anything else, which the caller then routes through classify_c,
# frame_symbol_c and decode_*_update_c.
from arb_core.wire.common cimport RawBatch

cdef int fast_update_c(const unsigned char* buf, Py_ssize_t n, RawBatch* raw,
                       bint futures) noexcept nogil
