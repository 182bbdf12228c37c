# C-level interface of arb_core.replay: the recorder's decompressed blocks walked in C, and
# the backtest's record loop over them (route, mark, scan) until Python must take over.
from libc.stdint cimport int64_t

from arb_core.scanner cimport SpreadScanner

cdef enum:
    RECORD_HEADER_SIZE = 24   # struct "<qqBBHI": recv_ns, wall_ns, market, kind, symbol_len, payload_len
    KIND_WS_TEXT = 1
    KIND_WS_BINARY = 2
    KIND_REST_SNAPSHOT = 3
    KIND_REST_RESPONSE = 4

cdef enum:
    MODE_SKIP = 0      # no feed for the market: its records are only counted
    MODE_PYTHON = 1    # every record of the market is handed to Python
    MODE_BOOKS = 2     # websocket records routed in C; the book sink ignores updates
    MODE_SCAN = 3      # websocket records routed in C; updates mark scanner symbols

cdef enum:
    STOP_END = 0          # every record was consumed
    STOP_NEED_BLOCK = 1   # push the next block (or None at the end) and run again
    STOP_RECORD = 2       # Python feeds the current record, then advance()
    STOP_WAIT = 3         # Python sleeps until the current record, then run(waited=True)
    STOP_FOUND = 4        # Python hands ``found`` of ``symbol_id`` to the pipeline, then run()
    STOP_SCAN = 5         # Python scans ``symbol_id`` itself, then run()
    STOP_ROUTE_ERROR = 6  # the router raised ``error`` on the current record; Python handles it, then run()
    STOP_BUDGET = 7       # ``budget`` records consumed in this call; run() again


cdef struct RecordHead:
    int64_t recv_ns
    int64_t wall_ns
    int market
    int kind
    Py_ssize_t symbol_at     # offset of the symbol bytes in the block
    Py_ssize_t symbol_len
    Py_ssize_t payload_at
    Py_ssize_t payload_len
    Py_ssize_t end           # offset just after the record


cdef int read_head(const unsigned char* raw, Py_ssize_t n, Py_ssize_t at, RecordHead* head) noexcept nogil


cdef class BlockSurvey:
    cdef readonly Py_ssize_t records
    cdef readonly object first
    cdef readonly int64_t last_ns
    cdef readonly set symbols
    cdef readonly list responses
    cdef list _last_symbol        # per market code: the symbol bytes seen last (or None)


cdef class RecordLoop:
    cdef int64_t _window_ns
    cdef int64_t _origin_ns
    cdef double _margin_s
    cdef object _clock
    cdef object _pipeline
    cdef SpreadScanner _scanner
    cdef int64_t _max_age_ns
    cdef unsigned char _mode[256]
    cdef unsigned char _market_dirty[256]
    cdef int64_t _messages[256]
    cdef list _routers            # per market code: BookRouter or None
    cdef list _syncs              # per market code: the book synchroniser or None
    cdef list _connectors         # per market code: the connector or None
    cdef list _codes              # market codes routed in C
    cdef Py_ssize_t _slot_base[256]
    cdef Py_ssize_t _slot_count[256]
    cdef Py_ssize_t* _ranges      # per (market, slot): begin, end into _ids
    cdef int64_t* _ids
    cdef Py_ssize_t _n_ranges
    cdef Py_ssize_t _n_ids
    cdef Py_ssize_t _n_symbols
    cdef unsigned char* _sym_dirty
    cdef unsigned char* _standing
    cdef int64_t* _pending
    cdef Py_ssize_t _n_pending
    cdef Py_ssize_t _pending_at
    cdef bytes _cur
    cdef Py_ssize_t _pos
    cdef Py_ssize_t _left
    cdef bytes _next
    cdef Py_ssize_t _next_count
    cdef bint _ended
    cdef int _stage               # 0: at the record's start, 1: routed (batch end next), 2: scanning
    cdef bint _handed             # the current record was handed to Python (STOP_RECORD)
    cdef bint _running            # inside run(): Python it calls may not drive the loop again
    cdef RecordHead _head
    cdef int64_t _now
    cdef bint _read_open          # the last record consumed was not the last of its read
    cdef int64_t _read_start      # receive time of the current read's first record
    cdef bint _wait_set           # _wait_from holds a time (set from the clock on the first run)
    cdef int64_t _wait_from       # receive time at which the loop was last offered a turn
    cdef readonly bint last_in_buffer
    cdef readonly int64_t symbol_id
    cdef readonly object found
    cdef readonly object error
    cdef readonly Py_ssize_t count
    cdef readonly Py_ssize_t scans     # scans since the last return, handed to the pipeline on return

    cdef int _load(self) except -1
    cdef int _store(self) except -1
    cdef int _finish(self) except -1
    cdef int _run(self, bint busy, double next_timer_s, bint waited, Py_ssize_t budget) except -1
    cdef int _scan_rest(self) except -2
