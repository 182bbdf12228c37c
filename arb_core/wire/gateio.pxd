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
