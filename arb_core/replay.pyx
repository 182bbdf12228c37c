"""The recorder's blocks walked in C, and the backtest's record loop over them.

A block is the decompressed body of one recorder block: ``count`` records, each a
24-byte header (struct ``"<qqBBHI"``: recv_ns, wall_ns, market code, kind, symbol
length, payload length), the venue symbol, the payload. ``check_block`` tells whether a
block holds exactly that (the reader then walks it unchecked), ``BlockSurvey`` gathers
what a backtest needs to know before replaying, and ``RecordLoop`` replays websocket
records straight into each market's ``BookRouter`` and the scanner, returning to Python
for everything the per-record Python feed would do differently.
"""

import operator

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.stdint cimport int64_t, uint16_t, uint32_t
from libc.string cimport memcmp, memcpy, memset

from arb_core.fixed cimport difference_as_double, int_arg, saturating_sub
from arb_core.router cimport BookRouter, ROUTE_APPLIED, ROUTE_OTHER
from arb_core.scanner cimport SpreadScanner

globals().update(
    RECORD_HEADER_SIZE=RECORD_HEADER_SIZE, KIND_WS_TEXT=KIND_WS_TEXT, KIND_WS_BINARY=KIND_WS_BINARY,
    KIND_REST_SNAPSHOT=KIND_REST_SNAPSHOT, KIND_REST_RESPONSE=KIND_REST_RESPONSE,
    MODE_SKIP=MODE_SKIP, MODE_PYTHON=MODE_PYTHON, MODE_BOOKS=MODE_BOOKS, MODE_SCAN=MODE_SCAN,
    STOP_END=STOP_END, STOP_NEED_BLOCK=STOP_NEED_BLOCK, STOP_RECORD=STOP_RECORD, STOP_WAIT=STOP_WAIT,
    STOP_FOUND=STOP_FOUND, STOP_SCAN=STOP_SCAN, STOP_ROUTE_ERROR=STOP_ROUTE_ERROR, STOP_BUDGET=STOP_BUDGET,
)


cdef inline int64_t _i64(const unsigned char* p) noexcept nogil:
    cdef int64_t v
    memcpy(&v, p, 8)  # little-endian hosts only, like the recorder's struct format on them
    return v


cdef int read_head(const unsigned char* raw, Py_ssize_t n, Py_ssize_t at, RecordHead* head) noexcept nogil:
    """The header of the record at ``at``: 0, -1 when the header is cut, -2 when the record runs past ``n``."""
    cdef uint16_t symbol_len
    cdef uint32_t payload_len
    if at < 0 or n - at < RECORD_HEADER_SIZE:
        return -1
    head.recv_ns = _i64(raw + at)
    head.wall_ns = _i64(raw + at + 8)
    head.market = raw[at + 16]
    head.kind = raw[at + 17]
    memcpy(&symbol_len, raw + at + 18, 2)
    memcpy(&payload_len, raw + at + 20, 4)
    head.symbol_at = at + RECORD_HEADER_SIZE
    head.symbol_len = symbol_len
    head.payload_at = head.symbol_at + symbol_len
    head.payload_len = payload_len
    head.end = head.payload_at + payload_len
    return -2 if head.end > n else 0


cdef int _check_table(str name, bytes table) except -1:
    if table is None or PyBytes_GET_SIZE(table) != 256:
        raise ValueError(f"{name} must be a 256-byte table, got {table!r:.60}")
    return 0


cdef Py_ssize_t _check(const unsigned char* p, Py_ssize_t n, Py_ssize_t count, const unsigned char* market_ok,
                      const unsigned char* kind_ok) noexcept nogil:
    cdef Py_ssize_t at = 0, i, j, symbol_end
    cdef RecordHead head
    cdef int status
    for i in range(count):
        status = read_head(p, n, at, &head)
        if status == -1:
            return i
        # The Python reader decodes the symbol bytes that are present before it sees the overrun.
        symbol_end = head.symbol_at + head.symbol_len
        if symbol_end > n:
            symbol_end = n
        for j in range(head.symbol_at, symbol_end):
            if p[j] >= 128:
                return i
        if status != 0 or not market_ok[head.market] or not kind_ok[head.kind]:
            return i
        at = head.end
    return -1 if at == n else count


def check_block(bytes raw not None, Py_ssize_t count, bytes markets not None, bytes kinds not None):
    """-1 when ``raw`` holds exactly ``count`` readable records; else the index of the first
    unreadable one (``count`` when bytes are left after them).

    Readable: the record fits in the block, its symbol is ASCII, ``markets[code]`` and
    ``kinds[kind]`` (256-byte tables) are non-zero. Runs without the GIL.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    _check_table("markets", markets)
    _check_table("kinds", kinds)
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(raw)
    cdef const unsigned char* market_ok = <const unsigned char*>PyBytes_AS_STRING(markets)
    cdef const unsigned char* kind_ok = <const unsigned char*>PyBytes_AS_STRING(kinds)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(raw)
    cdef Py_ssize_t result
    with nogil:
        result = _check(p, n, count, market_ok, kind_ok)
    return result


cdef class BlockSurvey:
    """What the records of a recording hold: count, first record, last receive time, venue
    symbols per market and REST responses (``add`` one checked block at a time).

    ``first``: ``(recv_ns, wall_ns, market, kind, venue_symbol, payload)``; ``symbols``:
    ``{(market, venue_symbol)}`` of records that are not REST responses; ``responses``:
    ``[(market, payload)]`` of REST responses in order.
    """

    def __cinit__(self):
        self.records = 0
        self.first = None
        self.last_ns = 0
        self.symbols = set()
        self.responses = []
        self._last_symbol = [None] * 256

    def add(self, bytes raw not None, Py_ssize_t count):
        """Survey the ``count`` records of the block ``raw``; ValueError, and the survey
        unchanged, when it does not hold exactly them."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(raw)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(raw)
        cdef Py_ssize_t at = 0, i
        cdef RecordHead head
        cdef bytes last, symbol
        cdef list cache = self._last_symbol
        # The whole block is checked before the survey changes: a bad block leaves it as it was.
        for i in range(count):
            if read_head(p, n, at, &head) != 0:
                raise ValueError(f"block: record {i} at byte {at} runs past the block ({n} bytes)")
            at = head.end
        if at != n:
            raise ValueError(f"block: {n - at} bytes after its {count} records")
        at = 0
        for i in range(count):
            read_head(p, n, at, &head)
            if self.first is None:
                self.first = _record(raw, &head)
            if head.kind == KIND_REST_RESPONSE:
                self.responses.append((head.market, raw[head.payload_at:head.end]))
            elif head.symbol_len:
                # Symbols repeat record after record: compare with the market's last one in C.
                last = <bytes>cache[head.market] if cache[head.market] is not None else None
                if (last is None or PyBytes_GET_SIZE(last) != head.symbol_len
                        or memcmp(PyBytes_AS_STRING(last), p + head.symbol_at, head.symbol_len) != 0):
                    symbol = PyBytes_FromStringAndSize(<const char*>(p + head.symbol_at), head.symbol_len)
                    cache[head.market] = symbol
                    self.symbols.add((head.market, symbol))
            self.last_ns = head.recv_ns
            at = head.end
        self.records += count


cdef tuple _record(bytes raw, RecordHead* head):
    return (
        head.recv_ns, head.wall_ns, head.market, head.kind,
        raw[head.symbol_at:head.symbol_at + head.symbol_len], raw[head.payload_at:head.end],
    )


cdef inline int _not_running(RecordLoop loop, str call) except -1:
    if loop._running:
        raise RuntimeError(f"RecordLoop.{call}() called from code that RecordLoop.run() is running")
    return 0


cdef class RecordLoop:
    """Replays checked blocks through the markets' ``BookRouter``\\s and the scanner until Python must act.

    It makes the decisions of the per-record Python feed (``arb.replay.player``) for as
    long as they need no Python: a websocket record of a market routed in C goes to
    ``route_c``; an applied diff marks its market dirty and (``MODE_SCAN``) its scanner
    symbols; at the last record of a read (the next record is of another market, more
    than ``window_ns`` after the read's first record, or there is none) a dirty market
    scans every marked symbol in id order, and a scan that finds nothing is only counted.
    The event loop is offered a turn (STOP_WAIT, unless it is idle until then) at a record
    more than ``window_ns`` after the clock, and at the first record of a read more than
    ``window_ns`` after the last offer, so a stream that never pauses still lets timers
    and tasks run. It stops (``run``'s
    STOP_* value) where Python has work: a record to feed, a wait on the event loop, an
    opportunity, a scan of a symbol with a standing opportunity, a router exception.

    The Python state it mirrors is read when ``run`` starts and written back when it
    returns: ``clock.now_ns``; per market ``sync.batch_updated`` (bool) and
    ``connector.messages`` (websocket messages fed); ``pipeline.marked`` (set of symbol
    ids), ``pipeline._standing`` (dict by symbol id) and ``pipeline.count_scans(n)``.
    """

    def __cinit__(self):
        self._routers = [None] * 256
        self._syncs = [None] * 256
        self._connectors = [None] * 256
        self._codes = []
        memset(self._mode, MODE_SKIP, sizeof(self._mode))
        memset(self._market_dirty, 0, sizeof(self._market_dirty))
        memset(self._messages, 0, sizeof(self._messages))
        memset(self._slot_base, 0, sizeof(self._slot_base))
        memset(self._slot_count, 0, sizeof(self._slot_count))
        self._ranges = NULL
        self._ids = NULL
        self._sym_dirty = NULL
        self._standing = NULL
        self._pending = NULL

    def __init__(self, clock, int_arg window_ns, int_arg origin_ns, double idle_margin_s=1e-6, pipeline=None,
                 SpreadScanner scanner=None, int_arg max_age_ns=0, Py_ssize_t symbols=0):
        if self._sym_dirty != NULL:
            # A second __init__ would keep the markets' tables while replacing the ranges they index.
            raise ValueError("RecordLoop is initialised once; make a new one")
        if clock is None:
            raise ValueError("clock must not be None")
        if window_ns < 0:
            raise ValueError(f"window_ns must be >= 0, got {window_ns}")
        if symbols < 0 or symbols > 1_000_000:
            raise ValueError(f"symbols must be in [0, 1000000], got {symbols}")
        if (pipeline is None) != (scanner is None):
            raise ValueError("pipeline and scanner go together")
        if max_age_ns < 0:
            raise ValueError(f"max_age_ns must be >= 0, got {max_age_ns}")
        self._clock = clock
        self._window_ns = window_ns
        self._origin_ns = origin_ns
        self._margin_s = idle_margin_s
        self._pipeline = pipeline
        self._scanner = scanner
        self._max_age_ns = max_age_ns
        self._n_symbols = symbols
        cdef Py_ssize_t size = symbols if symbols > 0 else 1
        PyMem_Free(self._sym_dirty)
        PyMem_Free(self._standing)
        PyMem_Free(self._pending)
        PyMem_Free(self._ranges)
        PyMem_Free(self._ids)
        self._ids = NULL
        self._sym_dirty = <unsigned char*>PyMem_Malloc(size)
        self._standing = <unsigned char*>PyMem_Malloc(size)
        self._pending = <int64_t*>PyMem_Malloc(size * sizeof(int64_t))
        self._ranges = <Py_ssize_t*>PyMem_Malloc(2 * sizeof(Py_ssize_t))
        if self._sym_dirty == NULL or self._standing == NULL or self._pending == NULL or self._ranges == NULL:
            raise MemoryError()
        memset(self._sym_dirty, 0, size)
        memset(self._standing, 0, size)
        self._n_ranges = 0
        self._n_ids = 0
        self._cur = None
        self._next = None
        self._pos = self._left = self._next_count = 0
        self._ended = False
        self._stage = 0
        self._handed = False
        self._now = 0
        self._read_open = False
        self._read_start = 0
        self._wait_set = False
        self._wait_from = 0
        self.last_in_buffer = False
        self.symbol_id = -1
        self.found = None
        self.error = None
        self.count = 0
        self.scans = 0

    def __dealloc__(self):
        PyMem_Free(self._ranges)
        PyMem_Free(self._ids)
        PyMem_Free(self._sym_dirty)
        PyMem_Free(self._standing)
        PyMem_Free(self._pending)

    # --- setup ----------------------------------------------------------------------------

    def add_market(self, int_arg market, int_arg mode, BookRouter router=None, sync=None, connector=None, slot_ids=()):
        """Say how records of ``market`` (its code) are handled.

        ``MODE_BOOKS``/``MODE_SCAN`` need the market's ``router``, its ``sync`` and
        ``connector``; ``slot_ids[slot]``: the scanner symbol ids a diff applied to the
        router's book ``slot`` marks (``MODE_SCAN``).
        """
        if market < 0 or market > 255:
            raise ValueError(f"market must be a code in [0, 255], got {market}")
        if mode < MODE_SKIP or mode > MODE_SCAN:
            raise ValueError(f"mode must be one of MODE_*, got {mode}")
        if market in self._codes or self._mode[market] != MODE_SKIP:
            raise ValueError(f"market {market} is already set")
        if mode >= MODE_BOOKS and (router is None or sync is None or connector is None):
            raise ValueError(f"market {market}: mode {mode} needs its router, sync and connector")
        if mode == MODE_SCAN and self._pipeline is None:
            raise ValueError(f"market {market}: MODE_SCAN needs the loop's pipeline")
        # Plain ints, converted once and compared in C: what is checked is what is stored.
        cdef list ranges = [[int(operator.index(i)) for i in ids] for ids in slot_ids] if mode == MODE_SCAN else []
        cdef Py_ssize_t total = sum(len(ids) for ids in ranges)
        cdef Py_ssize_t slots = len(ranges), slot, k, checked_id
        cdef object symbol_id
        for ids in ranges:
            for symbol_id in ids:
                checked_id = symbol_id
                if not 0 <= checked_id < self._n_symbols:
                    raise ValueError(f"market {market}: symbol id {symbol_id} is not in [0, {self._n_symbols})")
        cdef Py_ssize_t* new_ranges = <Py_ssize_t*>PyMem_Realloc(
            self._ranges, (2 * (self._n_ranges + slots) + 2) * sizeof(Py_ssize_t))
        if new_ranges == NULL:
            raise MemoryError()
        self._ranges = new_ranges
        cdef int64_t* new_ids = <int64_t*>PyMem_Realloc(self._ids, (self._n_ids + total + 1) * sizeof(int64_t))
        if new_ids == NULL:
            raise MemoryError()
        self._ids = new_ids
        self._slot_base[market] = self._n_ranges
        self._slot_count[market] = slots
        for slot in range(slots):
            self._ranges[2 * (self._n_ranges + slot)] = self._n_ids
            for k, symbol_id in enumerate(ranges[slot]):
                self._ids[self._n_ids + k] = symbol_id
            self._n_ids += len(ranges[slot])
            self._ranges[2 * (self._n_ranges + slot) + 1] = self._n_ids
        self._n_ranges += slots
        self._mode[market] = mode
        if mode >= MODE_BOOKS:
            self._routers[market] = router
            self._syncs[market] = sync
            self._connectors[market] = connector
            self._codes.append(market)

    def push(self, bytes raw, Py_ssize_t count):
        """Append the next checked block (``raw`` None: there is none); at most two are held."""
        _not_running(self, "push")
        if raw is None:
            self._ended = True
            return
        if self._ended:
            raise ValueError("push after the end was pushed")
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        if count == 0:
            return
        if self._cur is None:
            self._cur, self._pos, self._left = raw, 0, count
        elif self._next is None:
            self._next, self._next_count = raw, count
        else:
            raise ValueError("two blocks are pending already: run() first")

    # --- the stopped record -----------------------------------------------------------------

    @property
    def recv_ns(self):
        """Receive time of the current record."""
        return self._head.recv_ns

    def record(self):
        """The current record: ``(recv_ns, wall_ns, market, kind, venue_symbol, payload)``."""
        if self._cur is None:
            raise ValueError("no current record")
        return _record(self._cur, &self._head)

    def advance(self):
        """Python fed the current record (STOP_RECORD): go past it."""
        _not_running(self, "advance")
        if not self._handed:
            raise ValueError("advance() only after STOP_RECORD")
        self._handed = False
        self._finish()

    def drop_scans(self):
        """Forget the scans left in this batch (the batch-end consumer raised)."""
        self._pending_at = self._n_pending

    # --- running --------------------------------------------------------------------------

    def run(self, bint busy, double next_timer_s, bint waited=False, Py_ssize_t budget=0):
        """Replay until Python has work; a STOP_* value.

        ``busy``: the event loop has callbacks ready; ``next_timer_s``: loop time of its
        first timer (``inf`` for none); ``waited``: Python has just slept until the current
        record; ``budget``: return STOP_BUDGET after that many records (0: no limit).
        """
        cdef int status
        _not_running(self, "run")
        if self._handed:
            raise ValueError("run() after STOP_RECORD: advance() past the record first")
        self._running = True
        try:
            self._load()
            try:
                status = self._run(busy, next_timer_s, waited, budget)
            finally:
                self._store()
        finally:
            self._running = False
        return status

    cdef int _load(self) except -1:
        cdef object symbol_id
        cdef Py_ssize_t i, sid, n = self._n_symbols
        cdef int code
        cdef int_arg now = self._clock.now_ns  # as an index: a float clock is refused, not truncated
        self._now = now
        if not self._wait_set:
            self._wait_set = True
            self._wait_from = self._now
        for code in self._codes:
            self._market_dirty[code] = 1 if self._syncs[code].batch_updated else 0
        if self._pipeline is not None:
            memset(self._sym_dirty, 0, n)
            memset(self._standing, 0, n)
            for symbol_id in self._pipeline.marked:
                sid = symbol_id  # converted once, then checked and used in C
                if not 0 <= sid < n:
                    raise ValueError(f"dirty symbol id {symbol_id} is not in [0, {n})")
                self._sym_dirty[sid] = 1
            for symbol_id in self._pipeline._standing:
                sid = symbol_id
                if 0 <= sid < n:
                    self._standing[sid] = 1
        return 0

    cdef int _store(self) except -1:
        cdef Py_ssize_t i
        cdef int code
        cdef set dirty
        cdef object connector
        self._clock.now_ns = self._now
        for code in self._codes:
            self._syncs[code].batch_updated = self._market_dirty[code] != 0
            if self._messages[code]:
                connector = self._connectors[code]
                connector.messages = connector.messages + self._messages[code]
                self._messages[code] = 0
        if self._pipeline is not None:
            dirty = self._pipeline.marked
            dirty.clear()
            for i in range(self._n_symbols):
                if self._sym_dirty[i]:
                    dirty.add(i)
            if self.scans:
                scans, self.scans = self.scans, 0
                self._pipeline.count_scans(scans)
        return 0

    cdef int _finish(self) except -1:
        """Go past the current record."""
        self._stage = 0
        self._read_open = not self.last_in_buffer
        self._pos = self._head.end
        self._left -= 1
        self.count += 1
        if self._left == 0:
            self._cur = self._next
            self._left = self._next_count
            self._pos = 0
            self._next = None
            self._next_count = 0
        return 0

    cdef int _run(self, bint busy, double next_timer_s, bint waited, Py_ssize_t budget) except -1:
        cdef Py_ssize_t consumed = 0, n, at, k, end
        cdef const unsigned char* p
        cdef RecordHead following
        cdef bint has_following
        cdef int mode, status, routed
        cdef int64_t recv_ns, symbol_id
        cdef BookRouter router
        while True:
            if self._stage == 1:
                self._stage = 0
                mode = self._mode[self._head.market]
                if self.last_in_buffer and self._market_dirty[self._head.market]:
                    self._market_dirty[self._head.market] = 0
                    if mode == MODE_SCAN:
                        self._n_pending = self._pending_at = 0
                        for k in range(self._n_symbols):
                            if self._sym_dirty[k]:
                                self._sym_dirty[k] = 0
                                self._pending[self._n_pending] = k
                                self._n_pending += 1
                        if self._n_pending:
                            self._stage = 2
                if self._stage == 0:
                    self._finish()
                    consumed += 1
            if self._stage == 2:
                status = self._scan_rest()
                if status >= 0:
                    return status
                self._finish()
                consumed += 1
            if budget > 0 and consumed >= budget:
                return STOP_BUDGET
            if self._cur is None:
                return STOP_END if self._ended else STOP_NEED_BLOCK
            p = <const unsigned char*>PyBytes_AS_STRING(self._cur)
            n = PyBytes_GET_SIZE(self._cur)
            if read_head(p, n, self._pos, &self._head) != 0:
                raise ValueError(f"block record at byte {self._pos} runs past the block: not a checked block")
            if self._left > 1:
                has_following = True
                if read_head(p, n, self._head.end, &following) != 0:
                    raise ValueError(f"block record at byte {self._head.end} runs past the block: not a checked block")
            elif self._next is not None:
                has_following = True
                if read_head(<const unsigned char*>PyBytes_AS_STRING(self._next), PyBytes_GET_SIZE(self._next), 0,
                             &following) != 0:
                    raise ValueError("the next block's first record runs past it: not a checked block")
            elif self._ended:
                has_following = False
            else:
                return STOP_NEED_BLOCK
            recv_ns = self._head.recv_ns
            if not self._read_open:
                self._read_start = recv_ns
            self.last_in_buffer = (not has_following or following.market != self._head.market
                                   or saturating_sub(following.recv_ns, self._read_start) > self._window_ns)
            if waited:
                waited = False
            elif saturating_sub(recv_ns, self._now) > self._window_ns or (
                    not self._read_open and saturating_sub(recv_ns, self._wait_from) > self._window_ns):
                self._wait_from = recv_ns
                if busy or not next_timer_s > difference_as_double(recv_ns, self._origin_ns) / 1e9 + self._margin_s:
                    return STOP_WAIT
            mode = self._mode[self._head.market]
            if mode == MODE_SKIP:
                if recv_ns > self._now:
                    self._now = recv_ns
                self._finish()
                consumed += 1
                continue
            if mode == MODE_PYTHON or (self._head.kind != KIND_WS_TEXT and self._head.kind != KIND_WS_BINARY):
                self._handed = True
                return STOP_RECORD
            if recv_ns > self._now:
                self._now = recv_ns
            router = <BookRouter>self._routers[self._head.market]
            try:
                routed = router.route_c(p + self._head.payload_at, self._head.payload_len, recv_ns)
            except Exception as exc:
                self.error = exc
                self._messages[self._head.market] += 1
                self._stage = 1
                return STOP_ROUTE_ERROR
            if routed == ROUTE_OTHER:
                self._handed = True
                return STOP_RECORD
            self._messages[self._head.market] += 1
            if routed == ROUTE_APPLIED:
                self._market_dirty[self._head.market] = 1
                if mode == MODE_SCAN and 0 <= router.last_slot < self._slot_count[self._head.market]:
                    at = 2 * (self._slot_base[self._head.market] + router.last_slot)
                    for k in range(self._ranges[at], self._ranges[at + 1]):
                        self._sym_dirty[self._ids[k]] = 1
            self._stage = 1

    cdef int _scan_rest(self) except -2:
        """Scan the batch's pending symbols; a STOP_* value for Python, -1 when all are done."""
        cdef int64_t symbol_id
        cdef object found
        while self._pending_at < self._n_pending:
            symbol_id = self._pending[self._pending_at]
            self._pending_at += 1
            if self._standing[symbol_id]:
                self.symbol_id = symbol_id
                return STOP_SCAN
            try:
                found = self._scanner.scan_symbol(symbol_id, self._now, self._max_age_ns)
            except Exception:
                # Python scans it again and meets the same exception on its own path.
                self.symbol_id = symbol_id
                return STOP_SCAN
            self.scans += 1
            if found is not None:
                self.symbol_id = symbol_id
                self.found = found
                return STOP_FOUND
        return -1
