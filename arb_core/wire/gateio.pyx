"""Gate.io spot and USDT-futures order-book frames -> DeltaBatch, straight from the bytes.

Every decoder validates the whole JSON document (grammar, UTF-8, nesting depth, no
trailing bytes), reads prices and sizes as exact fixed-point integers and raises
WireError naming the channel, field and byte offset on anything it cannot decode
exactly. Keys and the string values it reads must be free of JSON escapes (Gate never
escapes them); escapes elsewhere are accepted.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport int64_t, uint64_t

from arb_core.book cimport DeltaBatch, BID, ASK
from arb_core.wire._scan cimport (
    Reader, reader_init, fail, open_container, next_key, skip_value, end_document, peek,
    key_is, read_plain_string, scan_bool, seek_key, expect_string, seen_once, require,
    read_uint_member, NUM_STRING, NUM_INT, ERR_SEQUENCE, ERR_MISSING,
    fast_string, fast_quoted, fast_uint, fast_skip, fast_is, fast_literal, fast_array,
    fast_next, fast_first_key, fast_next_key, fast_seen,
)
from arb_core.wire.common cimport (
    WireScale, Frame, frame_acquire, frame_release, reset_batch, raise_wire_error, decode_buffer,
    next_member,
    read_symbol, read_array_levels, read_object_levels, FRAME_OTHER, FRAME_BOOK_UPDATE,
    FRAME_SUBSCRIPTION, FRAME_PONG, FRAME_ERROR, RawBatch, raw_reset, raw_push,
)

cdef enum:
    # presence bits of the fields a decoder reads
    F_CHANNEL = 1 << 0
    F_EVENT = 1 << 1
    F_RESULT = 1 << 2
    F_T = 1 << 3
    F_FULL = 1 << 4
    F_S = 1 << 5
    F_FIRST = 1 << 6
    F_LAST = 1 << 7
    F_BIDS = 1 << 8
    F_ASKS = 1 << 9
    F_ID = 1 << 10
    F_ERROR = 1 << 11


cdef int _spot_levels(Reader* r, WireScale scale, DeltaBatch batch, int side) except -1:
    """[["7.883", "263.375"], ...]"""
    return read_array_levels(r, scale, batch, side, NUM_STRING, NUM_STRING, 0)


cdef int _futures_levels(Reader* r, WireScale scale, DeltaBatch batch, int side) except -1:
    """[{"p": "55.87", "s": 175}, ...]: sizes are contracts, a JSON integer or a decimal string"""
    return read_object_levels(r, scale, batch, side, b"p", NUM_STRING, b"s", NUM_INT)


cdef inline int _levels(Reader* r, WireScale scale, DeltaBatch batch, int side,
                        bint futures) except -1:
    if futures:
        return _futures_levels(r, scale, batch, side)
    return _spot_levels(r, scale, batch, side)


cdef int _update_result(Reader* r, WireScale scale, DeltaBatch batch, bint futures) except -1:
    cdef int seen = 0
    cdef bint first = True
    cdef Py_ssize_t ks = 0, ke = 0
    cdef bint flag
    cdef unsigned char k
    if open_container(r, 123) < 0:
        return raise_wire_error(r, scale)
    while next_member(r, scale, b"result", &first, &ks, &ke):
        k = r.buf[ks] if ke - ks == 1 else 0
        if k == 98 or k == 97:  # b a
            r.field = b"result.b[]" if k == 98 else b"result.a[]"
            if seen_once(r, &seen, F_BIDS if k == 98 else F_ASKS, ks) < 0:
                return raise_wire_error(r, scale)
            _levels(r, scale, batch, BID if k == 98 else ASK, futures)
        elif k == 85 or k == 117 or k == 116:  # U u t: first / last update id, event time
            r.field = b"result.U" if k == 85 else (b"result.u" if k == 117 else b"result.t")
            if read_uint_member(r, &seen, F_FIRST if k == 85 else (F_LAST if k == 117 else F_T), ks,
                                &batch.first_id if k == 85 else (
                                    &batch.last_id if k == 117 else &batch.event_ms)) < 0:
                return raise_wire_error(r, scale)
        elif k == 115:  # s
            r.field = b"result.s"
            if seen_once(r, &seen, F_S, ks) < 0 or read_symbol(r, scale) < 0:
                return raise_wire_error(r, scale)
        elif key_is(r.buf, ks, ke, b"full", 4):
            r.field = b"result.full"
            if seen_once(r, &seen, F_FULL, ks) < 0 or scan_bool(r, &flag) < 0:
                return raise_wire_error(r, scale)
            batch.is_snapshot = flag
        elif skip_value(r) < 0:
            return raise_wire_error(r, scale)
    if (require(r, seen, F_S, b"result.s") < 0 or require(r, seen, F_FIRST, b"result.U") < 0
            or require(r, seen, F_LAST, b"result.u") < 0):
        return raise_wire_error(r, scale)
    if batch.first_id > batch.last_id:
        r.field = b"result.U"
        fail(r, ERR_SEQUENCE, r.pos)
        return raise_wire_error(r, scale)
    return 0


cdef int _update(Reader* r, WireScale scale, DeltaBatch batch, bint futures) except -1:
    cdef int seen = 0
    cdef bint first = True
    cdef Py_ssize_t ks = 0, ke = 0
    reset_batch(batch)
    if open_container(r, 123) < 0:
        return raise_wire_error(r, scale)
    while next_member(r, scale, b"", &first, &ks, &ke):
        if key_is(r.buf, ks, ke, b"result", 6):
            r.field = b"result"
            if seen_once(r, &seen, F_RESULT, ks) < 0:
                return raise_wire_error(r, scale)
            _update_result(r, scale, batch, futures)
        elif key_is(r.buf, ks, ke, b"channel", 7):
            r.field = b"channel"
            if seen_once(r, &seen, F_CHANNEL, ks) < 0 or (
                    expect_string(r, b"futures.order_book_update", 25) if futures
                    else expect_string(r, b"spot.order_book_update", 22)) < 0:
                return raise_wire_error(r, scale)
        elif key_is(r.buf, ks, ke, b"event", 5):
            r.field = b"event"
            if seen_once(r, &seen, F_EVENT, ks) < 0 or expect_string(r, b"update", 6) < 0:
                return raise_wire_error(r, scale)
        elif skip_value(r) < 0:
            return raise_wire_error(r, scale)
    if (require(r, seen, F_CHANNEL, b"channel") < 0 or require(r, seen, F_EVENT, b"event") < 0
            or require(r, seen, F_RESULT, b"result") < 0 or end_document(r) < 0):
        return raise_wire_error(r, scale)
    return <int>batch.count


cdef int _snapshot(Reader* r, WireScale scale, DeltaBatch batch, bint futures) except -1:
    cdef int seen = 0
    cdef bint first = True
    cdef Py_ssize_t ks = 0, ke = 0
    reset_batch(batch)
    batch.is_snapshot = True
    if open_container(r, 123) < 0:
        return raise_wire_error(r, scale)
    while next_member(r, scale, b"", &first, &ks, &ke):
        if key_is(r.buf, ks, ke, b"bids", 4) or key_is(r.buf, ks, ke, b"asks", 4):
            r.field = b"bids[]" if r.buf[ks] == 98 else b"asks[]"
            if seen_once(r, &seen, F_BIDS if r.buf[ks] == 98 else F_ASKS, ks) < 0:
                return raise_wire_error(r, scale)
            _levels(r, scale, batch, BID if r.buf[ks] == 98 else ASK, futures)
        elif key_is(r.buf, ks, ke, b"id", 2):
            r.field = b"id"
            if read_uint_member(r, &seen, F_ID, ks, &batch.first_id) < 0:
                return raise_wire_error(r, scale)
            batch.last_id = batch.first_id
        elif skip_value(r) < 0:
            return raise_wire_error(r, scale)
    if (require(r, seen, F_ID, b"id") < 0 or require(r, seen, F_BIDS, b"bids") < 0
            or require(r, seen, F_ASKS, b"asks") < 0 or end_document(r) < 0):
        return raise_wire_error(r, scale)
    return <int>batch.count


cdef int decode_spot_update_c(const unsigned char* buf, Py_ssize_t n, WireScale scale,
                              DeltaBatch batch) except -1:
    cdef Reader r
    reader_init(&r, buf, n, b"gateio spot.order_book_update")
    return _update(&r, scale, batch, False)


cdef int decode_futures_update_c(const unsigned char* buf, Py_ssize_t n, WireScale scale,
                                 DeltaBatch batch) except -1:
    cdef Reader r
    reader_init(&r, buf, n, b"gateio futures.order_book_update")
    return _update(&r, scale, batch, True)


cdef int decode_spot_snapshot_c(const unsigned char* buf, Py_ssize_t n, WireScale scale,
                                DeltaBatch batch) except -1:
    cdef Reader r
    reader_init(&r, buf, n, b"gateio spot order_book (REST)")
    return _snapshot(&r, scale, batch, False)


cdef int decode_futures_snapshot_c(const unsigned char* buf, Py_ssize_t n, WireScale scale,
                                   DeltaBatch batch) except -1:
    cdef Reader r
    reader_init(&r, buf, n, b"gateio futures order_book (REST)")
    return _snapshot(&r, scale, batch, True)


def decode_spot_update(frame, WireScale scale not None, DeltaBatch batch not None):
    """Decode a ``spot.order_book_update`` event into ``batch``; returns the level count.

    U -> first_update_id, u -> last_update_id, t -> event_time_ms, ``full: true`` ->
    is_snapshot. The 2021 feed sent its first full push without ``full``; such a frame
    decodes as a diff with U == u and the caller's U/u sync decides what it is.

        {"time":1619093542,"channel":"spot.order_book_update","event":"update",
         "result":{"t":1619093542391,"e":"depthUpdate","E":1619093542,"s":"OMG_USDT",
                   "U":59231897,"u":59231897,"b":[["7.883","263.375"],["6.258","0"]],"a":[]}}
    """
    return decode_buffer(decode_spot_update_c, frame, scale, batch)


def decode_futures_update(frame, WireScale scale not None, DeltaBatch batch not None):
    """Decode a ``futures.order_book_update`` event (levels ``{"p": str, "s": int}``).

        {"time":1684930172,"time_ms":1684930172695,"channel":"futures.order_book_update",
         "event":"update","result":{"U":124930264,"a":[],"b":[{"p":"55.87","s":175},
         {"p":"55.93","s":0}],"s":"QUICK_USDT","t":1684930172596,"u":124930265}}
    """
    return decode_buffer(decode_futures_update_c, frame, scale, batch)


def decode_spot_snapshot(body, WireScale scale not None, DeltaBatch batch not None):
    """Decode a ``GET /spot/order_book?with_id=true`` body; id -> both ids, is_snapshot.

        {"id":2691446,"asks":[["0.00010396","5876.967"]],"bids":[["0.00010322","5360.209"]]}
    """
    return decode_buffer(decode_spot_snapshot_c, body, scale, batch)


def decode_futures_snapshot(body, WireScale scale not None, DeltaBatch batch not None):
    """Decode a ``GET /futures/usdt/order_book?with_id=true`` body (``{"p","s"}`` levels).

        {"current":1684930166.384,"update":1684930166.35,"asks":[{"s":803,"p":"0.2974"}],
         "bids":[{"s":1200,"p":"0.2971"}],"id":203083287}
    """
    return decode_buffer(decode_futures_snapshot_c, body, scale, batch)


cdef int frame_symbol_c(const unsigned char* buf, Py_ssize_t n, Reader* r, Py_ssize_t* s,
                        Py_ssize_t* e) noexcept nogil:
    cdef int rc
    reader_init(r, buf, n, b"gateio frame")
    rc = -1 if open_container(r, 123) < 0 else seek_key(r, b"result", 6)
    if rc == 1:
        r.field = b"result"
        rc = -1 if open_container(r, 123) < 0 else seek_key(r, b"s", 1)
    if rc < 0:
        return -1
    r.field = b"result.s"
    if rc == 0:
        return fail(r, ERR_MISSING, r.pos)
    return read_plain_string(r, s, e)


def frame_symbol(frame):
    """``result.s`` of a channel frame as bytes, to route it to its book before decoding.

    Stops at the symbol; the decoder validates the rest of the frame.
    """
    cdef Reader r
    cdef Py_ssize_t s = 0, e = 0
    cdef Frame f
    frame_acquire(&f, frame)
    try:
        if frame_symbol_c(f.buf, f.n, &r, &s, &e) < 0:
            return raise_wire_error(&r, None)
        return PyBytes_FromStringAndSize(<const char*>f.buf + s, e - s)
    finally:
        frame_release(&f)


cdef inline bint _ends_with(const unsigned char* b, Py_ssize_t s, Py_ssize_t e,
                            const char* tail, Py_ssize_t size) noexcept nogil:
    return e - s >= size and key_is(b, e - size, e, tail, size)


cdef inline bint _subscription_event(const unsigned char* b, Py_ssize_t s, Py_ssize_t e) noexcept nogil:
    return key_is(b, s, e, b"subscribe", 9) or key_is(b, s, e, b"unsubscribe", 11)


cdef int classify_c(const unsigned char* buf, Py_ssize_t n, Reader* r) noexcept nogil:
    cdef bint first = True
    cdef bint refused = False
    cdef int rc
    cdef Py_ssize_t ks, ke
    cdef Py_ssize_t cs = 0, ce = 0, es = 0, ee = 0
    cdef int seen = 0
    reader_init(r, buf, n, b"gateio frame")
    if open_container(r, 123) < 0:
        return -1
    while True:
        # Done once both keys are in, except for a (un)subscribe reply: it also needs its
        # "error" (null unless refused), which may come anywhere in it. Book updates stop early.
        if seen & (F_CHANNEL | F_EVENT) == F_CHANNEL | F_EVENT and (
                seen & F_ERROR or not _subscription_event(r.buf, es, ee)):
            break
        r.field = b""
        rc = next_key(r, first, &ks, &ke)
        if rc < 0:
            return -1
        if rc == 0:
            break
        first = False
        if key_is(r.buf, ks, ke, b"channel", 7) and not seen & F_CHANNEL:
            r.field = b"channel"
            if read_plain_string(r, &cs, &ce) < 0:
                return -1
            seen |= F_CHANNEL
        elif key_is(r.buf, ks, ke, b"event", 5) and not seen & F_EVENT:
            r.field = b"event"
            if read_plain_string(r, &es, &ee) < 0:
                return -1
            seen |= F_EVENT
        elif key_is(r.buf, ks, ke, b"error", 5) and not seen & F_ERROR:
            r.field = b"error"
            refused = peek(r) != 110  # anything but null
            if skip_value(r) < 0:
                return -1
            seen |= F_ERROR
        elif skip_value(r) < 0:
            return -1
    if seen & F_CHANNEL:
        if _ends_with(r.buf, cs, ce, b".pong", 5):
            return FRAME_PONG
        if seen & F_EVENT and key_is(r.buf, es, ee, b"update", 6) and _ends_with(
                r.buf, cs, ce, b".order_book_update", 18):
            return FRAME_BOOK_UPDATE
    if seen & F_EVENT and _subscription_event(r.buf, es, ee):
        return FRAME_ERROR if refused else FRAME_SUBSCRIPTION
    return FRAME_OTHER


def classify(frame):
    """Kind of a Gate websocket frame from its ``channel`` and ``event`` alone.

    BOOK_UPDATE (``*.order_book_update`` + ``update``), PONG (``*.pong``),
    SUBSCRIPTION (``subscribe``/``unsubscribe`` replies), ERROR (such a reply whose ``error``
    is not null: refused) or OTHER. Stops as soon as the keys it needs were seen; no dict is built.
    """
    cdef Reader r
    cdef int kind
    cdef Frame f
    frame_acquire(&f, frame)
    try:
        kind = classify_c(f.buf, f.n, &r)
        if kind < 0:
            return raise_wire_error(&r, None)
        return kind
    finally:
        frame_release(&f)


# ---------------------------------------------------------------------------
# Single pass (arb_core.router): a diff's channel, event, symbol and levels in one read
#
# Only the compact shape Gate sends is read here (see "Single pass" in _scan.pxd); any
# frame that differs in the slightest is declined and takes classify_c, frame_symbol_c
# and the decoder above, so what is accepted decodes exactly as there.

cdef Py_ssize_t _fast_spot_levels(const unsigned char* b, Py_ssize_t i, Py_ssize_t n,
                                  RawBatch* raw, int side) noexcept nogil:
    """[["7.883","263.375"],...]"""
    cdef uint64_t price, size
    cdef int price_frac, size_frac
    cdef bint more = fast_array(b, &i, n)
    while more:
        if i >= n or b[i] != 91:
            return -1
        i = fast_quoted(b, i + 1, n, &price, &price_frac)
        if i < 0 or i >= n or b[i] != 44:
            return -1
        i = fast_quoted(b, i + 1, n, &size, &size_frac)
        if i < 0 or i >= n or b[i] != 93:
            return -1
        if raw_push(raw, side, price, price_frac, size, size_frac) < 0:
            return -1
        i += 1
        more = fast_next(b, &i, n, 93)
    return i


cdef Py_ssize_t _fast_futures_level(const unsigned char* b, Py_ssize_t i, Py_ssize_t n,
                                    RawBatch* raw, int side) noexcept nogil:
    """{"p":"55.87","s":175} (or "s":"175"): any member order, other members skipped."""
    cdef uint64_t price = 0, size = 0
    cdef int64_t whole = 0
    cdef int price_frac = 0, size_frac = 0
    cdef int seen = 0
    cdef Py_ssize_t ks
    cdef bint more = fast_first_key(b, &i, n, &ks)
    while more:
        if i - 2 - ks == 1 and b[ks] == 112:  # p
            i = -1 if fast_seen(&seen, 1) else fast_quoted(b, i, n, &price, &price_frac)
        elif i - 2 - ks == 1 and b[ks] == 115:  # s
            if fast_seen(&seen, 2):
                i = -1
            elif i < n and b[i] == 34:
                i = fast_quoted(b, i, n, &size, &size_frac)
            else:
                i = fast_uint(b, i, n, &whole)
                size = <uint64_t>whole
        else:
            i = fast_skip(b, i, n, 4)
        more = fast_next_key(b, &i, n, &ks)
    if i < 0 or seen != 3 or raw_push(raw, side, price, price_frac, size, size_frac) < 0:
        return -1
    return i


cdef Py_ssize_t _fast_futures_levels(const unsigned char* b, Py_ssize_t i, Py_ssize_t n,
                                     RawBatch* raw, int side) noexcept nogil:
    """[{"p":"55.87","s":175},...]"""
    cdef bint more = fast_array(b, &i, n)
    while more:
        i = _fast_futures_level(b, i, n, raw, side)
        more = fast_next(b, &i, n, 93)
    return i


cdef Py_ssize_t _fast_result(const unsigned char* b, Py_ssize_t i, Py_ssize_t n, RawBatch* raw,
                             bint futures) noexcept nogil:
    cdef int seen = 0
    cdef int side
    cdef Py_ssize_t ks
    cdef unsigned char k
    cdef bint more = fast_first_key(b, &i, n, &ks)
    while more:
        k = b[ks] if i - 2 - ks == 1 else 0
        if k == 98 or k == 97:  # b a
            side = BID if k == 98 else ASK
            if fast_seen(&seen, F_BIDS if k == 98 else F_ASKS):
                i = -1
            elif futures:
                i = _fast_futures_levels(b, i, n, raw, side)
            else:
                i = _fast_spot_levels(b, i, n, raw, side)
        elif k == 85 or k == 117 or k == 116:  # U u t
            if fast_seen(&seen, F_FIRST if k == 85 else (F_LAST if k == 117 else F_T)):
                i = -1
            else:
                i = fast_uint(b, i, n, &raw.first_update_id if k == 85 else (
                    &raw.last_update_id if k == 117 else &raw.event_time_ms))
        elif k == 115:  # s
            if fast_seen(&seen, F_S):
                i = -1
            else:
                i = fast_string(b, i, n, &raw.symbol_start, &raw.symbol_end)
        elif fast_is(b, ks, i - 2, b"full", 4):
            # a full book is left to the exact path
            i = -1 if fast_seen(&seen, F_FULL) else fast_literal(b, i, n, b"false", 5)
        else:
            i = fast_skip(b, i, n, 2)
        more = fast_next_key(b, &i, n, &ks)
    if (i < 0 or (seen & (F_S | F_FIRST | F_LAST)) != (F_S | F_FIRST | F_LAST)
            or raw.first_update_id > raw.last_update_id):
        return -1
    return i


cdef int fast_update_c(const unsigned char* buf, Py_ssize_t n, RawBatch* raw,
                       bint futures) noexcept nogil:
    cdef const unsigned char* b = buf
    cdef int seen = 0
    cdef Py_ssize_t i = 0
    cdef Py_ssize_t ks
    cdef bint more
    raw_reset(raw)
    more = fast_first_key(b, &i, n, &ks)
    while more:
        if fast_is(b, ks, i - 2, b"result", 6):
            i = -1 if fast_seen(&seen, F_RESULT) else _fast_result(b, i, n, raw, futures)
        elif fast_is(b, ks, i - 2, b"channel", 7):
            if fast_seen(&seen, F_CHANNEL):
                i = -1
            elif futures:
                i = fast_literal(b, i, n, b'"futures.order_book_update"', 27)
            else:
                i = fast_literal(b, i, n, b'"spot.order_book_update"', 24)
        elif fast_is(b, ks, i - 2, b"event", 5):
            i = -1 if fast_seen(&seen, F_EVENT) else fast_literal(b, i, n, b'"update"', 8)
        else:
            i = fast_skip(b, i, n, 1)
        more = fast_next_key(b, &i, n, &ks)
    return i == n and seen == (F_CHANNEL | F_EVENT | F_RESULT)
