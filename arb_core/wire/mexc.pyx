"""MEXC spot protobuf depth pushes and contract JSON depth -> DeltaBatch, from the bytes.

Spot pushes are ``PushDataV3ApiWrapper`` protobuf messages read with our own varint
reader; unknown fields of every wire type (groups included) are skipped. Contract
frames and all REST bodies are JSON, validated as a whole like the Gate decoders.
Numbers become exact fixed-point integers; anything else raises WireError naming the
message, field and byte offset.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport int64_t, uint64_t

from arb_core.book cimport DeltaBatch, BID, ASK
from arb_core.wire._scan cimport (
    Reader, reader_init, fail, open_container, next_key, skip_value, end_document, key_is,
    read_plain_string, read_json_uint, peek, parse_fixed, parse_uint, read_varint, read_tag,
    read_length, skip_field, seek_key, expect_string, seen_once, require, read_uint_member,
    NUM_STRING, NUM_BARE, ERR_MISSING, ERR_NOT_POSITIVE, ERR_SEQUENCE, ERR_NONE, ERR_TYPE,
    ERR_OVERFLOW, fast_string, fast_decimal, fast_number, fast_uint, fast_skip, fast_is,
    fast_literal, fast_tag, fast_varint, fast_length, fast_skip_field, fast_array, fast_next,
    fast_first_key, fast_next_key, fast_seen,
)
from arb_core.wire.common cimport (
    WireScale, Frame, frame_acquire, frame_release, reset_batch, raise_wire_error, decode_buffer,
    next_member,
    check_symbol, read_symbol, read_array_levels, FRAME_OTHER, FRAME_BOOK_UPDATE,
    FRAME_SUBSCRIPTION, FRAME_PONG, FRAME_ERROR, RawBatch, raw_reset, raw_push,
)

cdef enum:
    # PushDataV3ApiWrapper field numbers
    PB_SYMBOL = 3
    PB_SEND_TIME = 6
    PB_BODY_FIRST = 301
    PB_BODY_LAST = 315

cdef enum:
    # presence bits of the fields a decoder reads
    F_SYMBOL = 1 << 0
    F_TIME = 1 << 1
    F_BODY = 1 << 2
    F_FROM = 1 << 3
    F_TO = 1 << 4
    F_PRICE = 1 << 5
    F_SIZE = 1 << 6
    F_BIDS = 1 << 7
    F_ASKS = 1 << 8
    F_VERSION = 1 << 9
    F_CHANNEL = 1 << 10
    F_DATA = 1 << 11


# ---------------------------------------------------------------------------
# Protobuf pushes

cdef inline int _wire_type(Reader* r, int got, int want, Py_ssize_t at) noexcept nogil:
    if got != want:
        return fail(r, ERR_TYPE, at)
    return 0


cdef inline int _pb_item(Reader* r, WireScale scale, DeltaBatch batch, int side) except -1:
    """One depth level: 1 price, 2 quantity (decimal strings); r.n bounds the item."""
    cdef int seen = 0
    cdef uint64_t field
    cdef int wt
    cdef Py_ssize_t at, s, e
    cdef int64_t price = 0, size = 0
    cdef int code
    while r.pos < r.n:
        at = r.pos
        if read_tag(r, &field, &wt) < 0:
            return raise_wire_error(r, scale)
        if field == 1 or field == 2:
            if (_wire_type(r, wt, 2, at) < 0 or seen_once(r, &seen, F_PRICE if field == 1 else F_SIZE, at) < 0
                    or read_length(r, &s, &e) < 0):
                return raise_wire_error(r, scale)
            if field == 1:
                code = parse_fixed(r.buf, s, e, scale.price_decimals, scale.tick_units, False, &price)
                if code == ERR_NONE and price == 0:
                    code = ERR_NOT_POSITIVE
            else:
                code = parse_fixed(r.buf, s, e, scale.size_decimals, scale.lot_units, scale.floor_sizes, &size)
            if code != ERR_NONE:
                fail(r, code, s)
                return raise_wire_error(r, scale)
        elif skip_field(r, field, wt) < 0:
            return raise_wire_error(r, scale)
    if require(r, seen, F_PRICE, r.field) < 0 or require(r, seen, F_SIZE, r.field) < 0:
        return raise_wire_error(r, scale)
    batch.push(side, price, size)
    return 0


cdef int _pb_version(Reader* r, WireScale scale, int wt, Py_ssize_t at, int64_t* out) except -1:
    """A version carried as a decimal string."""
    cdef Py_ssize_t s, e
    cdef int code
    if _wire_type(r, wt, 2, at) < 0 or read_length(r, &s, &e) < 0:
        return raise_wire_error(r, scale)
    code = parse_uint(r.buf, s, e, out)
    if code != ERR_NONE:
        fail(r, code, s)
        return raise_wire_error(r, scale)
    return 0


cdef int _pb_depths(Reader* r, WireScale scale, DeltaBatch batch, bint aggre) except -1:
    """PublicAggreDepthsV3Api (1 asks, 2 bids, 4 fromVersion, 5 toVersion) or
    PublicLimitDepthsV3Api (1 asks, 2 bids, 4 version); r.n bounds the body."""
    cdef int seen = 0
    cdef uint64_t field
    cdef int wt
    cdef Py_ssize_t at, s, e
    cdef Py_ssize_t outer = r.n
    cdef int64_t value = 0
    cdef const char* body = b"publicAggreDepths" if aggre else b"publicLimitDepths"
    cdef int asks = 0, bids = 0
    while r.pos < r.n:
        at = r.pos
        r.field = body
        if read_tag(r, &field, &wt) < 0:
            return raise_wire_error(r, scale)
        if field == 1 or field == 2:
            r.field = (b"publicAggreDepths.asks[]" if aggre else b"publicLimitDepths.asks[]") \
                if field == 1 else (b"publicAggreDepths.bids[]" if aggre else b"publicLimitDepths.bids[]")
            r.index = asks if field == 1 else bids
            if _wire_type(r, wt, 2, at) < 0 or read_length(r, &s, &e) < 0:
                return raise_wire_error(r, scale)
            r.pos = s
            r.n = e
            _pb_item(r, scale, batch, ASK if field == 1 else BID)
            r.n = outer
            r.index = -1
            if field == 1:
                asks += 1
            else:
                bids += 1
        elif field == 4 or (aggre and field == 5):
            if aggre:
                r.field = b"publicAggreDepths.fromVersion" if field == 4 else b"publicAggreDepths.toVersion"
            else:
                r.field = b"publicLimitDepths.version"
            if seen_once(r, &seen, F_FROM if field == 4 else F_TO, at) < 0:
                return raise_wire_error(r, scale)
            _pb_version(r, scale, wt, at, &value)
            if field == 4:
                batch.first_id = value
                if not aggre:
                    batch.last_id = value
            else:
                batch.last_id = value
        elif skip_field(r, field, wt) < 0:
            return raise_wire_error(r, scale)
    if aggre:
        if (require(r, seen, F_FROM, b"publicAggreDepths.fromVersion") < 0
                or require(r, seen, F_TO, b"publicAggreDepths.toVersion") < 0):
            return raise_wire_error(r, scale)
        if batch.first_id > batch.last_id:
            r.field = b"publicAggreDepths.fromVersion"
            fail(r, ERR_SEQUENCE, r.pos)
            return raise_wire_error(r, scale)
    elif require(r, seen, F_FROM, b"publicLimitDepths.version") < 0:
        return raise_wire_error(r, scale)
    return 0


cdef int decode_spot_depth_c(const unsigned char* buf, Py_ssize_t n, WireScale scale,
                             DeltaBatch batch) except -1:
    cdef Reader r
    cdef int seen = 0
    cdef uint64_t field
    cdef uint64_t value
    cdef int wt
    cdef Py_ssize_t at, s, e
    cdef Py_ssize_t sym_s = 0, sym_e = 0
    reader_init(&r, buf, n, b"mexc spot PushDataV3ApiWrapper")
    reset_batch(batch)
    while r.pos < r.n:
        at = r.pos
        r.field = b""
        if read_tag(&r, &field, &wt) < 0:
            return raise_wire_error(&r, scale)
        if field == PB_AGGRE_DEPTHS or field == PB_LIMIT_DEPTHS:
            r.field = b"publicAggreDepths" if field == PB_AGGRE_DEPTHS else b"publicLimitDepths"
            if (_wire_type(&r, wt, 2, at) < 0 or seen_once(&r, &seen, F_BODY, at) < 0
                    or read_length(&r, &s, &e) < 0):
                return raise_wire_error(&r, scale)
            r.pos = s
            r.n = e
            _pb_depths(&r, scale, batch, field == PB_AGGRE_DEPTHS)
            r.n = n
            batch.is_snapshot = field == PB_LIMIT_DEPTHS
        elif field == PB_SEND_TIME:
            r.field = b"sendTime"
            if (_wire_type(&r, wt, 0, at) < 0 or seen_once(&r, &seen, F_TIME, at) < 0
                    or read_varint(&r, &value) < 0):
                return raise_wire_error(&r, scale)
            if value > <uint64_t>0x7FFFFFFFFFFFFFFF:
                fail(&r, ERR_OVERFLOW, at)
                return raise_wire_error(&r, scale)
            batch.event_ms = <int64_t>value
        elif field == PB_SYMBOL:
            r.field = b"symbol"
            if (_wire_type(&r, wt, 2, at) < 0 or seen_once(&r, &seen, F_SYMBOL, at) < 0
                    or read_length(&r, &sym_s, &sym_e) < 0):
                return raise_wire_error(&r, scale)
        elif skip_field(&r, field, wt) < 0:
            return raise_wire_error(&r, scale)
    if require(&r, seen, F_BODY, b"publicAggreDepths") < 0:
        return raise_wire_error(&r, scale)
    if scale.symbol is not None:
        if require(&r, seen, F_SYMBOL, b"symbol") < 0:
            return raise_wire_error(&r, scale)
        r.field = b"symbol"
        if check_symbol(&r, scale, sym_s, sym_e) < 0:
            return raise_wire_error(&r, scale)
    return <int>batch.count


def decode_spot_depth(frame, WireScale scale not None, DeltaBatch batch not None):
    """Decode a spot depth push into ``batch``; returns the level count.

    ``publicAggreDepths`` (313): fromVersion -> first_update_id, toVersion ->
    last_update_id. ``publicLimitDepths`` (303): version -> both ids, is_snapshot.
    sendTime -> event_time_ms. Rendered (the wire form is protobuf):

        {"channel":"spot@public.aggre.depth.v3.api.pb@100ms@BTCUSDC","symbol":"BTCUSDC",
         "sendTime":"1755973885809","publicAggreDepths":{"bids":[{"price":"114838.84",
         "quantity":"0.000101"}],"asks":[...],"fromVersion":"17521975448","toVersion":"17521975455"}}
    """
    return decode_buffer(decode_spot_depth_c, frame, scale, batch)


cdef int spot_frame_symbol_c(const unsigned char* buf, Py_ssize_t n, Reader* r, Py_ssize_t* s,
                             Py_ssize_t* e) noexcept nogil:
    cdef uint64_t field
    cdef int wt
    cdef Py_ssize_t at
    reader_init(r, buf, n, b"mexc spot PushDataV3ApiWrapper")
    while r.pos < r.n:
        at = r.pos
        if read_tag(r, &field, &wt) < 0:
            return -1
        if field == PB_SYMBOL:
            r.field = b"symbol"
            if _wire_type(r, wt, 2, at) < 0:
                return -1
            return read_length(r, s, e)
        if skip_field(r, field, wt) < 0:
            return -1
    r.field = b"symbol"
    return fail(r, ERR_MISSING, r.pos)


def spot_frame_symbol(frame):
    """The ``symbol`` field of a spot push as bytes, to route it before decoding."""
    cdef Reader r
    cdef Py_ssize_t s = 0, e = 0
    cdef Frame f
    frame_acquire(&f, frame)
    try:
        if spot_frame_symbol_c(f.buf, f.n, &r, &s, &e) < 0:
            return raise_wire_error(&r, None)
        return PyBytes_FromStringAndSize(<const char*>f.buf + s, e - s)
    finally:
        frame_release(&f)


cdef int spot_push_body_c(const unsigned char* buf, Py_ssize_t n, Reader* r) noexcept nogil:
    cdef uint64_t field
    cdef int wt
    reader_init(r, buf, n, b"mexc spot PushDataV3ApiWrapper")
    while r.pos < r.n:
        if read_tag(r, &field, &wt) < 0:
            return -1
        if PB_BODY_FIRST <= field <= PB_BODY_LAST:
            return <int>field
        if skip_field(r, field, wt) < 0:
            return -1
    return 0


def spot_push_body(frame):
    """Field number of the push's body (e.g. 313 publicAggreDepths), 0 when it has none."""
    cdef Reader r
    cdef int body
    cdef Frame f
    frame_acquire(&f, frame)
    try:
        body = spot_push_body_c(f.buf, f.n, &r)
        if body < 0:
            return raise_wire_error(&r, None)
        return body
    finally:
        frame_release(&f)


# ---------------------------------------------------------------------------
# JSON: contract push.depth and the REST snapshots

cdef int _contract_depth(Reader* r, WireScale scale, DeltaBatch batch, int* seen,
                         bint allow_data) except -1:
    """Members of a contract depth object {asks, bids, version}; with ``allow_data`` the
    object may instead wrap it as {"success":true,"code":0,"data":{...}}."""
    cdef bint first = True
    cdef Py_ssize_t ks = 0, ke = 0
    if open_container(r, 123) < 0:
        return raise_wire_error(r, scale)
    while next_member(r, scale, b"", &first, &ks, &ke):
        if key_is(r.buf, ks, ke, b"asks", 4) or key_is(r.buf, ks, ke, b"bids", 4):
            r.field = b"asks[]" if r.buf[ks] == 97 else b"bids[]"
            if seen_once(r, seen, F_ASKS if r.buf[ks] == 97 else F_BIDS, ks) < 0:
                return raise_wire_error(r, scale)
            # [[6859.5, 3251, 1], ...]: price, vol and an optional order count
            read_array_levels(r, scale, batch, ASK if r.buf[ks] == 97 else BID, NUM_BARE, NUM_BARE, 1)
        elif key_is(r.buf, ks, ke, b"version", 7):
            r.field = b"version"
            if read_uint_member(r, seen, F_VERSION, ks, &batch.first_id) < 0:
                return raise_wire_error(r, scale)
            batch.last_id = batch.first_id
        elif allow_data and key_is(r.buf, ks, ke, b"data", 4):
            r.field = b"data"
            if seen_once(r, seen, F_DATA, ks) < 0:
                return raise_wire_error(r, scale)
            _contract_depth(r, scale, batch, seen, False)
        elif skip_value(r) < 0:
            return raise_wire_error(r, scale)
    return 0


cdef int decode_futures_depth_c(const unsigned char* buf, Py_ssize_t n, WireScale scale,
                                DeltaBatch batch) except -1:
    cdef Reader r
    cdef int seen = 0
    cdef bint first = True
    cdef Py_ssize_t ks = 0, ke = 0
    reader_init(&r, buf, n, b"mexc contract push.depth")
    reset_batch(batch)
    if open_container(&r, 123) < 0:
        return raise_wire_error(&r, scale)
    while next_member(&r, scale, b"", &first, &ks, &ke):
        if key_is(r.buf, ks, ke, b"data", 4):
            r.field = b"data"
            if seen_once(&r, &seen, F_DATA, ks) < 0:
                return raise_wire_error(&r, scale)
            _contract_depth(&r, scale, batch, &seen, False)
        elif key_is(r.buf, ks, ke, b"channel", 7):
            r.field = b"channel"
            if seen_once(&r, &seen, F_CHANNEL, ks) < 0 or expect_string(&r, b"push.depth", 10) < 0:
                return raise_wire_error(&r, scale)
        elif key_is(r.buf, ks, ke, b"symbol", 6):
            r.field = b"symbol"
            if seen_once(&r, &seen, F_SYMBOL, ks) < 0 or read_symbol(&r, scale) < 0:
                return raise_wire_error(&r, scale)
        elif key_is(r.buf, ks, ke, b"ts", 2):
            r.field = b"ts"
            if read_uint_member(&r, &seen, F_TIME, ks, &batch.event_ms) < 0:
                return raise_wire_error(&r, scale)
        elif skip_value(&r) < 0:
            return raise_wire_error(&r, scale)
    if (require(&r, seen, F_CHANNEL, b"channel") < 0 or require(&r, seen, F_DATA, b"data") < 0
            or require(&r, seen, F_SYMBOL, b"symbol") < 0
            or require(&r, seen, F_VERSION, b"data.version") < 0 or end_document(&r) < 0):
        return raise_wire_error(&r, scale)
    return <int>batch.count


cdef int decode_futures_snapshot_c(const unsigned char* buf, Py_ssize_t n, WireScale scale,
                                   DeltaBatch batch) except -1:
    cdef Reader r
    cdef int seen = 0
    reader_init(&r, buf, n, b"mexc contract depth (REST)")
    reset_batch(batch)
    batch.is_snapshot = True
    _contract_depth(&r, scale, batch, &seen, True)
    if (require(&r, seen, F_VERSION, b"version") < 0 or require(&r, seen, F_ASKS, b"asks") < 0
            or require(&r, seen, F_BIDS, b"bids") < 0 or end_document(&r) < 0):
        return raise_wire_error(&r, scale)
    return <int>batch.count


cdef int decode_spot_snapshot_c(const unsigned char* buf, Py_ssize_t n, WireScale scale,
                                DeltaBatch batch) except -1:
    cdef Reader r
    cdef int seen = 0
    cdef bint first = True
    cdef int code
    cdef Py_ssize_t ks = 0, ke = 0, s, e
    cdef int64_t value
    reader_init(&r, buf, n, b"mexc spot depth (REST)")
    reset_batch(batch)
    batch.is_snapshot = True
    if open_container(&r, 123) < 0:
        return raise_wire_error(&r, scale)
    while next_member(&r, scale, b"", &first, &ks, &ke):
        if key_is(r.buf, ks, ke, b"asks", 4) or key_is(r.buf, ks, ke, b"bids", 4):
            r.field = b"asks[]" if r.buf[ks] == 97 else b"bids[]"
            if seen_once(&r, &seen, F_ASKS if r.buf[ks] == 97 else F_BIDS, ks) < 0:
                return raise_wire_error(&r, scale)
            # [["45995.47", "10.337165"], ...]
            read_array_levels(&r, scale, batch, ASK if r.buf[ks] == 97 else BID, NUM_STRING,
                              NUM_STRING, 0)
        elif key_is(r.buf, ks, ke, b"lastUpdateId", 12):
            # an integer in the docs, a decimal string in live responses
            r.field = b"lastUpdateId"
            if seen_once(&r, &seen, F_VERSION, ks) < 0:
                return raise_wire_error(&r, scale)
            if peek(&r) == 34:
                if read_plain_string(&r, &s, &e) < 0:
                    return raise_wire_error(&r, scale)
                code = parse_uint(r.buf, s, e, &value)
                if code != ERR_NONE:
                    fail(&r, code, s)
                    return raise_wire_error(&r, scale)
            elif read_json_uint(&r, &value) < 0:
                return raise_wire_error(&r, scale)
            batch.first_id = value
            batch.last_id = value
        elif skip_value(&r) < 0:
            return raise_wire_error(&r, scale)
    if (require(&r, seen, F_VERSION, b"lastUpdateId") < 0 or require(&r, seen, F_ASKS, b"asks") < 0
            or require(&r, seen, F_BIDS, b"bids") < 0 or end_document(&r) < 0):
        return raise_wire_error(&r, scale)
    return <int>batch.count


def decode_futures_depth(frame, WireScale scale not None, DeltaBatch batch not None):
    """Decode a contract ``push.depth`` frame; version -> both ids, ts -> event_time_ms.

        {"channel":"push.depth","data":{"asks":[[6859.5,3251,1]],"bids":[],
         "version":96801927},"symbol":"BTC_USDT","ts":1587442022003}
    """
    return decode_buffer(decode_futures_depth_c, frame, scale, batch)


def decode_spot_snapshot(body, WireScale scale not None, DeltaBatch batch not None):
    """Decode a ``GET /api/v3/depth`` body; lastUpdateId -> both ids, is_snapshot.

        {"lastUpdateId":"20453289489","bids":[["45995.47","10.337165"]],
         "asks":[["45995.48","13.457322"]],"timestamp":"1704908526228"}
    """
    return decode_buffer(decode_spot_snapshot_c, body, scale, batch)


def decode_futures_snapshot(body, WireScale scale not None, DeltaBatch batch not None):
    """Decode a ``GET /api/v1/contract/depth/{symbol}`` body, bare or in its
    ``{"success":true,"code":0,"data":{...}}`` envelope; version -> both ids.

        {"asks":[[3968.5,121],[3968.6,160,4]],"bids":[[3968.4,179,4]],"version":1,
         "timestamp":1587442022003}
    """
    return decode_buffer(decode_futures_snapshot_c, body, scale, batch)


cdef int classify_futures_c(const unsigned char* buf, Py_ssize_t n, Reader* r) noexcept nogil:
    cdef int rc
    cdef Py_ssize_t s, e
    reader_init(r, buf, n, b"mexc contract frame")
    rc = -1 if open_container(r, 123) < 0 else seek_key(r, b"channel", 7)
    if rc <= 0:
        return FRAME_OTHER if rc == 0 else -1
    r.field = b"channel"
    if read_plain_string(r, &s, &e) < 0:
        return -1
    if key_is(r.buf, s, e, b"push.depth", 10):
        return FRAME_BOOK_UPDATE
    if key_is(r.buf, s, e, b"pong", 4):
        return FRAME_PONG
    if key_is(r.buf, s, e, b"rs.error", 8):
        return FRAME_ERROR
    if e - s >= 3 and key_is(r.buf, s, s + 3, b"rs.", 3):
        return FRAME_SUBSCRIPTION
    return FRAME_OTHER


def classify_futures(frame):
    """Kind of a contract websocket frame from its ``channel`` alone.

    BOOK_UPDATE (``push.depth``), PONG (``pong``), ERROR (``rs.error``: a refused
    subscription), SUBSCRIPTION (other ``rs.*`` replies: ``rs.sub.*``, ``rs.unsub.*``) or OTHER;
    stops at the channel, builds no dict.
    """
    cdef Reader r
    cdef int kind
    cdef Frame f
    frame_acquire(&f, frame)
    try:
        kind = classify_futures_c(f.buf, f.n, &r)
        if kind < 0:
            return raise_wire_error(&r, None)
        return kind
    finally:
        frame_release(&f)


cdef int futures_frame_symbol_c(const unsigned char* buf, Py_ssize_t n, Reader* r, Py_ssize_t* s,
                                Py_ssize_t* e) noexcept nogil:
    cdef int rc
    reader_init(r, buf, n, b"mexc contract frame")
    rc = -1 if open_container(r, 123) < 0 else seek_key(r, b"symbol", 6)
    if rc < 0:
        return -1
    r.field = b"symbol"
    if rc == 0:
        return fail(r, ERR_MISSING, r.pos)
    return read_plain_string(r, s, e)


def futures_frame_symbol(frame):
    """The top-level ``symbol`` of a contract push as bytes, to route it before decoding."""
    cdef Reader r
    cdef Py_ssize_t s = 0, e = 0
    cdef Frame f
    frame_acquire(&f, frame)
    try:
        if futures_frame_symbol_c(f.buf, f.n, &r, &s, &e) < 0:
            return raise_wire_error(&r, None)
        return PyBytes_FromStringAndSize(<const char*>f.buf + s, e - s)
    finally:
        frame_release(&f)


# ---------------------------------------------------------------------------
# Single pass (arb_core.router): a diff's symbol, versions and levels in one read
#
# Only the usual shape of a diff is read here (see "Single pass" in _scan.pxd); anything
# else is declined and takes the routing helpers and the decoders above, so what is
# accepted decodes exactly as there.

cdef Py_ssize_t _fast_pb_level(const unsigned char* b, Py_ssize_t i, Py_ssize_t end,
                               RawBatch* raw, int side) noexcept nogil:
    """One PublicAggreDepthV3ApiItem filling [i, end): 1 price, 2 quantity."""
    cdef uint64_t field
    cdef int wt
    cdef int seen = 0
    cdef Py_ssize_t s, stop
    cdef uint64_t price = 0, size = 0
    cdef int price_frac = 0, size_frac = 0
    while i < end:
        i = fast_tag(b, i, end, &field, &wt)
        if i < 0:
            return -1
        if field == 1 or field == 2:
            if wt != 2 or fast_seen(&seen, <int>field):
                return -1
            s = fast_length(b, i, end, &stop)
            if s < 0:
                return -1
            if field == 1:
                s = fast_decimal(b, s, stop, &price, &price_frac)
            else:
                s = fast_decimal(b, s, stop, &size, &size_frac)
            if s != stop:
                return -1
            i = stop
        else:
            i = fast_skip_field(b, i, end, wt)
            if i < 0:
                return -1
    if seen != 3 or raw_push(raw, side, price, price_frac, size, size_frac) < 0:
        return -1
    return end


cdef Py_ssize_t _fast_pb_version(const unsigned char* b, Py_ssize_t i, Py_ssize_t end,
                                 int64_t* out) noexcept nogil:
    """A version as a decimal string field; the index after it."""
    cdef Py_ssize_t s, stop
    cdef uint64_t digits = 0
    cdef int frac = 0
    s = fast_length(b, i, end, &stop)
    if s < 0 or fast_decimal(b, s, stop, &digits, &frac) != stop or frac:
        return -1
    out[0] = <int64_t>digits
    return stop


cdef Py_ssize_t _fast_pb_aggre(const unsigned char* b, Py_ssize_t i, Py_ssize_t end,
                               RawBatch* raw) noexcept nogil:
    """PublicAggreDepthsV3Api filling [i, end): 1 asks, 2 bids, 4 fromVersion, 5 toVersion."""
    cdef uint64_t field
    cdef int wt
    cdef int seen = 0
    cdef Py_ssize_t s, stop
    while i < end:
        i = fast_tag(b, i, end, &field, &wt)
        if i < 0:
            return -1
        if field == 1 or field == 2:
            if wt != 2:
                return -1
            s = fast_length(b, i, end, &stop)
            if s < 0 or _fast_pb_level(b, s, stop, raw, ASK if field == 1 else BID) < 0:
                return -1
            i = stop
        elif field == 4 or field == 5:
            if wt != 2 or fast_seen(&seen, F_FROM if field == 4 else F_TO):
                return -1
            i = _fast_pb_version(b, i, end, &raw.first_update_id if field == 4 else &raw.last_update_id)
        else:
            i = fast_skip_field(b, i, end, wt)
        if i < 0:
            return -1
    if seen != (F_FROM | F_TO) or raw.first_update_id > raw.last_update_id:
        return -1
    return end


cdef int fast_spot_depth_c(const unsigned char* buf, Py_ssize_t n, RawBatch* raw) noexcept nogil:
    cdef const unsigned char* b = buf
    cdef uint64_t field
    cdef uint64_t value
    cdef int wt
    cdef int seen = 0
    cdef Py_ssize_t i = 0, s, stop
    raw_reset(raw)
    if n == 0 or b[0] == 123:
        return 0
    while i < n:
        i = fast_tag(b, i, n, &field, &wt)
        if i < 0:
            return 0
        if field == PB_AGGRE_DEPTHS:
            if wt != 2 or fast_seen(&seen, F_BODY):
                return 0
            s = fast_length(b, i, n, &stop)
            if s < 0 or _fast_pb_aggre(b, s, stop, raw) < 0:
                return 0
            i = stop
        elif PB_BODY_FIRST <= field <= PB_BODY_LAST:
            return 0    # a top-N book or another push: the exact path decides
        elif field == PB_SEND_TIME:
            if wt != 0 or fast_seen(&seen, F_TIME):
                return 0
            i = fast_varint(b, i, n, &value)
            if i < 0 or value > <uint64_t>0x7FFFFFFFFFFFFFFF:
                return 0
            raw.event_time_ms = <int64_t>value
        elif field == PB_SYMBOL:
            if wt != 2 or fast_seen(&seen, F_SYMBOL):
                return 0
            s = fast_length(b, i, n, &stop)
            if s < 0:
                return 0
            raw.symbol_start = s
            raw.symbol_end = stop
            i = stop
        else:
            i = fast_skip_field(b, i, n, wt)
            if i < 0:
                return 0
    return (seen & (F_BODY | F_SYMBOL)) == (F_BODY | F_SYMBOL)


cdef Py_ssize_t _fast_contract_levels(const unsigned char* b, Py_ssize_t i, Py_ssize_t n,
                                      RawBatch* raw, int side) noexcept nogil:
    """[[6859.5,3251,1],...]: price, vol and an optional order count, bare numbers."""
    cdef uint64_t price, size
    cdef int price_frac, size_frac
    cdef int64_t orders
    cdef bint more = fast_array(b, &i, n)
    while more:
        if i >= n or b[i] != 91:
            return -1
        i = fast_number(b, i + 1, n, &price, &price_frac)
        if i < 0 or i >= n or b[i] != 44:
            return -1
        i = fast_number(b, i + 1, n, &size, &size_frac)
        if i < 0 or i >= n:
            return -1
        if b[i] == 44:
            i = fast_uint(b, i + 1, n, &orders)
            if i < 0 or i >= n:
                return -1
        if b[i] != 93 or raw_push(raw, side, price, price_frac, size, size_frac) < 0:
            return -1
        i += 1
        more = fast_next(b, &i, n, 93)
    return i


cdef Py_ssize_t _fast_contract_data(const unsigned char* b, Py_ssize_t i, Py_ssize_t n,
                                    RawBatch* raw, int* seen) noexcept nogil:
    """{"asks":[...],"bids":[...],"version":96801927}"""
    cdef Py_ssize_t ks
    cdef bint more = fast_first_key(b, &i, n, &ks)
    while more:
        if fast_is(b, ks, i - 2, b"asks", 4) or fast_is(b, ks, i - 2, b"bids", 4):
            if fast_seen(seen, F_ASKS if b[ks] == 97 else F_BIDS):
                i = -1
            else:
                i = _fast_contract_levels(b, i, n, raw, ASK if b[ks] == 97 else BID)
        elif fast_is(b, ks, i - 2, b"version", 7):
            i = -1 if fast_seen(seen, F_VERSION) else fast_uint(b, i, n, &raw.first_update_id)
            raw.last_update_id = raw.first_update_id
        else:
            i = fast_skip(b, i, n, 2)
        more = fast_next_key(b, &i, n, &ks)
    return i


cdef int fast_futures_depth_c(const unsigned char* buf, Py_ssize_t n, RawBatch* raw) noexcept nogil:
    cdef const unsigned char* b = buf
    cdef int seen = 0
    cdef Py_ssize_t i = 0
    cdef Py_ssize_t ks
    cdef bint more
    raw_reset(raw)
    more = fast_first_key(b, &i, n, &ks)
    while more:
        if fast_is(b, ks, i - 2, b"data", 4):
            i = -1 if fast_seen(&seen, F_DATA) else _fast_contract_data(b, i, n, raw, &seen)
        elif fast_is(b, ks, i - 2, b"channel", 7):
            i = -1 if fast_seen(&seen, F_CHANNEL) else fast_literal(b, i, n, b'"push.depth"', 12)
        elif fast_is(b, ks, i - 2, b"symbol", 6):
            if fast_seen(&seen, F_SYMBOL):
                i = -1
            else:
                i = fast_string(b, i, n, &raw.symbol_start, &raw.symbol_end)
        elif fast_is(b, ks, i - 2, b"ts", 2):
            i = -1 if fast_seen(&seen, F_TIME) else fast_uint(b, i, n, &raw.event_time_ms)
        else:
            i = fast_skip(b, i, n, 1)
        more = fast_next_key(b, &i, n, &ks)
    return i == n and (seen & (F_CHANNEL | F_DATA | F_SYMBOL | F_VERSION)) == (
        F_CHANNEL | F_DATA | F_SYMBOL | F_VERSION)
