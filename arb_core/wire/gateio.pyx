"""Gate.io spot and USDT-futures order-book frames -> DeltaBatch, straight from the bytes.

Every decoder validates the whole JSON document (grammar, UTF-8, nesting depth, no
trailing bytes), reads prices and sizes as exact fixed-point integers and raises
WireError naming the channel, field and byte offset on anything it cannot decode
exactly. Keys and the string values it reads must be free of JSON escapes (Gate never
escapes them); escapes elsewhere are accepted.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport int64_t

from arb_core.book cimport DeltaBatch, BID, ASK
from arb_core.wire._scan cimport (
    Reader, reader_init, fail, open_container, next_key, next_item, skip_value, end_document,
    key_is, read_plain_string, read_number_token, read_json_uint, read_json_fixed, scan_bool,
    parse_fixed, parse_uint, ERR_MISSING, ERR_DUPLICATE, ERR_MISMATCH, ERR_NOT_POSITIVE,
    ERR_SEQUENCE, ERR_ARITY, ERR_NONE,
)
from arb_core.wire.common cimport (
    Frame, frame_acquire, frame_release, reset_batch, WireScale, raise_wire_error, FRAME_OTHER, FRAME_BOOK_UPDATE, FRAME_SUBSCRIPTION, FRAME_PONG,
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
    F_PRICE = 1 << 11
    F_SIZE = 1 << 12


cdef inline int _seen(Reader* r, int* seen, int bit, Py_ssize_t at) noexcept nogil:
    if seen[0] & bit:
        return fail(r, ERR_DUPLICATE, at)
    seen[0] |= bit
    return 0


cdef inline int _require(Reader* r, int seen, int bit, const char* field) noexcept nogil:
    if not seen & bit:
        r.field = field
        return fail(r, ERR_MISSING, r.pos)
    return 0


cdef inline int _price(Reader* r, WireScale scale, bint quoted, int64_t* out) except -1:
    if read_json_fixed(r, quoted, scale.price_decimals, scale.tick_units, out) < 0:
        return raise_wire_error(r, scale)
    if out[0] == 0:
        fail(r, ERR_NOT_POSITIVE, r.pos)
        return raise_wire_error(r, scale)
    return 0


cdef int _int_size(Reader* r, WireScale scale, int64_t* out) except -1:
    """Futures sizes: a JSON integer of contracts, scaled like any size."""
    cdef Py_ssize_t s, e
    cdef int64_t unused
    cdef int code
    if read_number_token(r, &s, &e) < 0:
        return raise_wire_error(r, scale)
    code = parse_uint(r.buf, s, e, &unused)
    if code == ERR_NONE:
        code = parse_fixed(r.buf, s, e, scale.size_decimals, scale.lot_units, out)
    if code != ERR_NONE:
        fail(r, code, s)
        return raise_wire_error(r, scale)
    return 0


cdef int _spot_levels(Reader* r, WireScale scale, DeltaBatch batch, int side) except -1:
    """[[priceStr, amountStr], ...]"""
    cdef bint first = True
    cdef int rc
    cdef int64_t price = 0, size = 0
    if open_container(r, 91) < 0:
        return raise_wire_error(r, scale)
    r.index = 0
    while True:
        rc = next_item(r, first)
        if rc < 0:
            return raise_wire_error(r, scale)
        if rc == 0:
            break
        first = False
        if open_container(r, 91) < 0:
            return raise_wire_error(r, scale)
        rc = next_item(r, True)
        if rc <= 0:
            if rc == 0:
                fail(r, ERR_ARITY, r.pos - 1)
            return raise_wire_error(r, scale)
        _price(r, scale, True, &price)
        rc = next_item(r, False)
        if rc <= 0:
            if rc == 0:
                fail(r, ERR_ARITY, r.pos - 1)
            return raise_wire_error(r, scale)
        if read_json_fixed(r, True, scale.size_decimals, scale.lot_units, &size) < 0:
            return raise_wire_error(r, scale)
        rc = next_item(r, False)
        if rc != 0:
            if rc == 1:
                fail(r, ERR_ARITY, r.pos)
            return raise_wire_error(r, scale)
        batch.push(side, price, size)
        r.index += 1
    r.index = -1
    return 0


cdef int _futures_levels(Reader* r, WireScale scale, DeltaBatch batch, int side) except -1:
    """[{"p": priceStr, "s": intContracts}, ...]"""
    cdef bint first = True
    cdef bint kfirst
    cdef int rc
    cdef int seen
    cdef int64_t price = 0, size = 0
    cdef Py_ssize_t ks, ke
    cdef const char* field = r.field
    if open_container(r, 91) < 0:
        return raise_wire_error(r, scale)
    r.index = 0
    while True:
        rc = next_item(r, first)
        if rc < 0:
            return raise_wire_error(r, scale)
        if rc == 0:
            break
        first = False
        if open_container(r, 123) < 0:
            return raise_wire_error(r, scale)
        seen = 0
        kfirst = True
        while True:
            rc = next_key(r, kfirst, &ks, &ke)
            if rc < 0:
                return raise_wire_error(r, scale)
            if rc == 0:
                break
            kfirst = False
            if key_is(r.buf, ks, ke, b"p", 1):
                if _seen(r, &seen, F_PRICE, ks) < 0:
                    return raise_wire_error(r, scale)
                _price(r, scale, True, &price)
            elif key_is(r.buf, ks, ke, b"s", 1):
                if _seen(r, &seen, F_SIZE, ks) < 0:
                    return raise_wire_error(r, scale)
                _int_size(r, scale, &size)
            elif skip_value(r) < 0:
                return raise_wire_error(r, scale)
        if _require(r, seen, F_PRICE, field) < 0 or _require(r, seen, F_SIZE, field) < 0:
            return raise_wire_error(r, scale)
        batch.push(side, price, size)
        r.index += 1
    r.index = -1
    return 0


cdef int _levels(Reader* r, WireScale scale, DeltaBatch batch, int side, bint futures) except -1:
    if futures:
        return _futures_levels(r, scale, batch, side)
    return _spot_levels(r, scale, batch, side)


cdef int _symbol(Reader* r, WireScale scale) except -1:
    cdef Py_ssize_t s, e
    if read_plain_string(r, &s, &e) < 0:
        return raise_wire_error(r, scale)
    if not scale.symbol_matches(r.buf, s, e):
        fail(r, ERR_MISMATCH, s)
        return raise_wire_error(r, scale)
    return 0


cdef int _update_result(Reader* r, WireScale scale, DeltaBatch batch, bint futures) except -1:
    cdef int seen = 0
    cdef bint first = True
    cdef int rc
    cdef Py_ssize_t ks, ke
    cdef int64_t value
    cdef bint flag
    cdef unsigned char k
    if open_container(r, 123) < 0:
        return raise_wire_error(r, scale)
    while True:
        r.field = b"result"
        rc = next_key(r, first, &ks, &ke)
        if rc < 0:
            return raise_wire_error(r, scale)
        if rc == 0:
            break
        first = False
        if ke - ks == 1:
            k = r.buf[ks]
            if k == 98 or k == 97:  # b a
                r.field = b"result.b[]" if k == 98 else b"result.a[]"
                if _seen(r, &seen, F_BIDS if k == 98 else F_ASKS, ks) < 0:
                    return raise_wire_error(r, scale)
                _levels(r, scale, batch, BID if k == 98 else ASK, futures)
                continue
            if k == 85:  # U
                r.field = b"result.U"
                if _seen(r, &seen, F_FIRST, ks) < 0 or read_json_uint(r, &value) < 0:
                    return raise_wire_error(r, scale)
                batch.first_update_id = value
                continue
            if k == 117:  # u
                r.field = b"result.u"
                if _seen(r, &seen, F_LAST, ks) < 0 or read_json_uint(r, &value) < 0:
                    return raise_wire_error(r, scale)
                batch.last_update_id = value
                continue
            if k == 116:  # t
                r.field = b"result.t"
                if _seen(r, &seen, F_T, ks) < 0 or read_json_uint(r, &value) < 0:
                    return raise_wire_error(r, scale)
                batch.event_time_ms = value
                continue
            if k == 115:  # s
                r.field = b"result.s"
                if _seen(r, &seen, F_S, ks) < 0:
                    return raise_wire_error(r, scale)
                _symbol(r, scale)
                continue
        elif key_is(r.buf, ks, ke, b"full", 4):
            r.field = b"result.full"
            if _seen(r, &seen, F_FULL, ks) < 0 or scan_bool(r, &flag) < 0:
                return raise_wire_error(r, scale)
            batch.is_snapshot = flag
            continue
        r.field = b"result"
        if skip_value(r) < 0:
            return raise_wire_error(r, scale)
    if (_require(r, seen, F_S, b"result.s") < 0 or _require(r, seen, F_FIRST, b"result.U") < 0
            or _require(r, seen, F_LAST, b"result.u") < 0):
        return raise_wire_error(r, scale)
    if batch.first_update_id > batch.last_update_id:
        r.field = b"result.U"
        fail(r, ERR_SEQUENCE, r.pos)
        return raise_wire_error(r, scale)
    return 0


cdef int _expect_string(Reader* r, WireScale scale, const char* want, Py_ssize_t size) except -1:
    cdef Py_ssize_t s, e
    if read_plain_string(r, &s, &e) < 0:
        return raise_wire_error(r, scale)
    if not key_is(r.buf, s, e, want, size):
        fail(r, ERR_MISMATCH, s)
        return raise_wire_error(r, scale)
    return 0


cdef int _update(Reader* r, WireScale scale, DeltaBatch batch, bint futures) except -1:
    cdef int seen = 0
    cdef bint first = True
    cdef int rc
    cdef Py_ssize_t ks, ke
    reset_batch(batch)
    if open_container(r, 123) < 0:
        return raise_wire_error(r, scale)
    while True:
        r.field = b""
        rc = next_key(r, first, &ks, &ke)
        if rc < 0:
            return raise_wire_error(r, scale)
        if rc == 0:
            break
        first = False
        if key_is(r.buf, ks, ke, b"result", 6):
            r.field = b"result"
            if _seen(r, &seen, F_RESULT, ks) < 0:
                return raise_wire_error(r, scale)
            _update_result(r, scale, batch, futures)
        elif key_is(r.buf, ks, ke, b"channel", 7):
            r.field = b"channel"
            if _seen(r, &seen, F_CHANNEL, ks) < 0:
                return raise_wire_error(r, scale)
            if futures:
                _expect_string(r, scale, b"futures.order_book_update", 25)
            else:
                _expect_string(r, scale, b"spot.order_book_update", 22)
        elif key_is(r.buf, ks, ke, b"event", 5):
            r.field = b"event"
            if _seen(r, &seen, F_EVENT, ks) < 0:
                return raise_wire_error(r, scale)
            _expect_string(r, scale, b"update", 6)
        elif skip_value(r) < 0:
            return raise_wire_error(r, scale)
    if (_require(r, seen, F_CHANNEL, b"channel") < 0 or _require(r, seen, F_EVENT, b"event") < 0
            or _require(r, seen, F_RESULT, b"result") < 0 or end_document(r) < 0):
        return raise_wire_error(r, scale)
    return <int>batch.count


cdef int _snapshot(Reader* r, WireScale scale, DeltaBatch batch, bint futures) except -1:
    cdef int seen = 0
    cdef bint first = True
    cdef int rc
    cdef Py_ssize_t ks, ke
    cdef int64_t value
    reset_batch(batch)
    batch.is_snapshot = True
    if open_container(r, 123) < 0:
        return raise_wire_error(r, scale)
    while True:
        r.field = b""
        rc = next_key(r, first, &ks, &ke)
        if rc < 0:
            return raise_wire_error(r, scale)
        if rc == 0:
            break
        first = False
        if key_is(r.buf, ks, ke, b"bids", 4):
            r.field = b"bids[]"
            if _seen(r, &seen, F_BIDS, ks) < 0:
                return raise_wire_error(r, scale)
            _levels(r, scale, batch, BID, futures)
        elif key_is(r.buf, ks, ke, b"asks", 4):
            r.field = b"asks[]"
            if _seen(r, &seen, F_ASKS, ks) < 0:
                return raise_wire_error(r, scale)
            _levels(r, scale, batch, ASK, futures)
        elif key_is(r.buf, ks, ke, b"id", 2):
            r.field = b"id"
            if _seen(r, &seen, F_ID, ks) < 0 or read_json_uint(r, &value) < 0:
                return raise_wire_error(r, scale)
            batch.first_update_id = value
            batch.last_update_id = value
        elif skip_value(r) < 0:
            return raise_wire_error(r, scale)
    if (_require(r, seen, F_ID, b"id") < 0 or _require(r, seen, F_BIDS, b"bids") < 0
            or _require(r, seen, F_ASKS, b"asks") < 0 or end_document(r) < 0):
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
    cdef Frame f
    frame_acquire(&f, frame)
    try:
        return decode_spot_update_c(f.buf, f.n, scale, batch)
    finally:
        frame_release(&f)


def decode_futures_update(frame, WireScale scale not None, DeltaBatch batch not None):
    """Decode a ``futures.order_book_update`` event (levels ``{"p": str, "s": int}``).

        {"time":1684930172,"time_ms":1684930172695,"channel":"futures.order_book_update",
         "event":"update","result":{"U":124930264,"a":[],"b":[{"p":"55.87","s":175},
         {"p":"55.93","s":0}],"s":"QUICK_USDT","t":1684930172596,"u":124930265}}
    """
    cdef Frame f
    frame_acquire(&f, frame)
    try:
        return decode_futures_update_c(f.buf, f.n, scale, batch)
    finally:
        frame_release(&f)


def decode_spot_snapshot(body, WireScale scale not None, DeltaBatch batch not None):
    """Decode a ``GET /spot/order_book?with_id=true`` body; id -> both ids, is_snapshot.

        {"id":2691446,"asks":[["0.00010396","5876.967"]],"bids":[["0.00010322","5360.209"]]}
    """
    cdef Frame f
    frame_acquire(&f, body)
    try:
        return decode_spot_snapshot_c(f.buf, f.n, scale, batch)
    finally:
        frame_release(&f)


def decode_futures_snapshot(body, WireScale scale not None, DeltaBatch batch not None):
    """Decode a ``GET /futures/usdt/order_book?with_id=true`` body (``{"p","s"}`` levels).

        {"current":1684930166.384,"update":1684930166.35,"asks":[{"s":803,"p":"0.2974"}],
         "bids":[{"s":1200,"p":"0.2971"}],"id":203083287}
    """
    cdef Frame f
    frame_acquire(&f, body)
    try:
        return decode_futures_snapshot_c(f.buf, f.n, scale, batch)
    finally:
        frame_release(&f)


def frame_symbol(frame):
    """``result.s`` of a channel frame as bytes, to route it to its book before decoding.

    Stops at the symbol; the decoder validates the rest of the frame.
    """
    cdef Reader r
    cdef bint first = True
    cdef bint rfirst
    cdef int rc
    cdef Py_ssize_t ks, ke, s, e
    cdef Frame f
    frame_acquire(&f, frame)
    try:
        reader_init(&r, f.buf, f.n, b"gateio frame")
        if open_container(&r, 123) < 0:
            return raise_wire_error(&r, None)
        while True:
            rc = next_key(&r, first, &ks, &ke)
            if rc < 0:
                return raise_wire_error(&r, None)
            if rc == 0:
                break
            first = False
            if not key_is(r.buf, ks, ke, b"result", 6):
                if skip_value(&r) < 0:
                    return raise_wire_error(&r, None)
                continue
            r.field = b"result"
            if open_container(&r, 123) < 0:
                return raise_wire_error(&r, None)
            rfirst = True
            while True:
                rc = next_key(&r, rfirst, &ks, &ke)
                if rc < 0:
                    return raise_wire_error(&r, None)
                if rc == 0:
                    break
                rfirst = False
                if key_is(r.buf, ks, ke, b"s", 1):
                    r.field = b"result.s"
                    if read_plain_string(&r, &s, &e) < 0:
                        return raise_wire_error(&r, None)
                    return PyBytes_FromStringAndSize(<const char*>r.buf + s, e - s)
                if skip_value(&r) < 0:
                    return raise_wire_error(&r, None)
            break
        r.field = b"result.s"
        fail(&r, ERR_MISSING, r.pos)
        return raise_wire_error(&r, None)
    finally:
        frame_release(&f)


cdef inline bint _ends_with(const unsigned char* b, Py_ssize_t s, Py_ssize_t e,
                            const char* tail, Py_ssize_t size) noexcept:
    return e - s >= size and key_is(b, e - size, e, tail, size)


def classify(frame):
    """Kind of a Gate websocket frame from its ``channel`` and ``event`` alone.

    BOOK_UPDATE (``*.order_book_update`` + ``update``), PONG (``*.pong``),
    SUBSCRIPTION (``subscribe``/``unsubscribe`` replies, success or error) or OTHER.
    Stops as soon as both keys were seen; no dict is built.
    """
    cdef Reader r
    cdef bint first = True
    cdef int rc
    cdef Py_ssize_t ks, ke
    cdef Py_ssize_t cs = 0, ce = 0, es = 0, ee = 0
    cdef int seen = 0
    cdef Frame f
    frame_acquire(&f, frame)
    try:
        reader_init(&r, f.buf, f.n, b"gateio frame")
        if open_container(&r, 123) < 0:
            return raise_wire_error(&r, None)
        while seen != F_CHANNEL | F_EVENT:
            r.field = b""
            rc = next_key(&r, first, &ks, &ke)
            if rc < 0:
                return raise_wire_error(&r, None)
            if rc == 0:
                break
            first = False
            if key_is(r.buf, ks, ke, b"channel", 7) and not seen & F_CHANNEL:
                r.field = b"channel"
                if read_plain_string(&r, &cs, &ce) < 0:
                    return raise_wire_error(&r, None)
                seen |= F_CHANNEL
            elif key_is(r.buf, ks, ke, b"event", 5) and not seen & F_EVENT:
                r.field = b"event"
                if read_plain_string(&r, &es, &ee) < 0:
                    return raise_wire_error(&r, None)
                seen |= F_EVENT
            elif skip_value(&r) < 0:
                return raise_wire_error(&r, None)
        if seen & F_CHANNEL:
            if _ends_with(r.buf, cs, ce, b".pong", 5):
                return FRAME_PONG
            if seen & F_EVENT and key_is(r.buf, es, ee, b"update", 6) and _ends_with(
                    r.buf, cs, ce, b".order_book_update", 18):
                return FRAME_BOOK_UPDATE
        if seen & F_EVENT and (key_is(r.buf, es, ee, b"subscribe", 9)
                               or key_is(r.buf, es, ee, b"unsubscribe", 11)):
            return FRAME_SUBSCRIPTION
        return FRAME_OTHER

    finally:
        frame_release(&f)