"""Shared by the venue decoders: the instrument scale, the error type, frame kinds."""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.string cimport memcmp

from arb_core.fixed cimport int_arg
from arb_core.wire._scan cimport (
    Reader, ERR_EOF, ERR_SYNTAX, ERR_UTF8, ERR_CONTROL, ERR_ESCAPE, ERR_DEPTH, ERR_TRAILING,
    ERR_TYPE, ERR_MISSING, ERR_DUPLICATE, ERR_MISMATCH, ERR_NUMBER, ERR_OVERFLOW,
    ERR_TOO_FINE, ERR_NOT_MULTIPLE, ERR_NOT_POSITIVE, ERR_SEQUENCE, ERR_ARITY, ERR_VARINT,
    ERR_LENGTH, ERR_FIELD, ERR_GROUP, MAX_DEPTH, arb_pow10, arb_pow10_limit,
)

OTHER = FRAME_OTHER
BOOK_UPDATE = FRAME_BOOK_UPDATE
SUBSCRIPTION = FRAME_SUBSCRIPTION
PONG = FRAME_PONG
ERROR = FRAME_ERROR


class WireError(ValueError):
    """A frame could not be decoded exactly; the message names venue, channel, field and byte."""


cdef dict _REASONS = {
    ERR_EOF: "frame ends early (truncated)",
    ERR_SYNTAX: "unexpected byte",
    ERR_UTF8: "invalid UTF-8",
    ERR_CONTROL: "control character inside a string",
    ERR_ESCAPE: "invalid or unsupported escape",
    ERR_DEPTH: f"nested deeper than {MAX_DEPTH}",
    ERR_TRAILING: "unexpected bytes after the document",
    ERR_TYPE: "wrong type",
    ERR_MISSING: "required field missing",
    ERR_DUPLICATE: "field appears twice",
    ERR_MISMATCH: "unexpected value",
    ERR_NUMBER: "malformed number",
    ERR_OVERFLOW: "number does not fit int64",
    ERR_TOO_FINE: "more decimals than the instrument precision",
    ERR_NOT_MULTIPLE: "not a whole number of ticks/lots",
    ERR_NOT_POSITIVE: "price must be > 0",
    ERR_SEQUENCE: "first update id is above the last update id",
    ERR_ARITY: "level has the wrong number of elements",
    ERR_VARINT: "varint longer than 10 bytes or above 64 bits",
    ERR_LENGTH: "length runs past the enclosing message",
    ERR_FIELD: "invalid field number or wire type",
    ERR_GROUP: "unbalanced protobuf group",
}


@cython.auto_pickle(False)  # pickled by __reduce__, through the checks below
cdef class WireScale:
    """Fixed-point description of one instrument's prices and sizes on the wire.

    tick = tick_units * 10**-price_decimals and lot = lot_units * 10**-size_decimals;
    a wire price becomes ``value * 10**price_decimals / tick_units`` ticks and must
    divide exactly (likewise sizes, unless ``floor_sizes``: a size finer than the lot is
    then rounded down to it, and one under a lot reads as 0, no level). With ``symbol`` set,
    decoders also check that the frame is for that instrument.
    """

    # Checked in __cinit__, which every instance goes through (``__new__`` included): the
    # decoders divide by the units and index powers of ten by the decimals unchecked.
    def __cinit__(self, int_arg price_decimals, int_arg tick_units, int_arg size_decimals,
                  int_arg lot_units, symbol=None, bint floor_sizes=False):
        if not 0 <= price_decimals <= 18:
            raise ValueError(f"price_decimals must be in 0..18, got {price_decimals}")
        if not 0 <= size_decimals <= 18:
            raise ValueError(f"size_decimals must be in 0..18, got {size_decimals}")
        if tick_units < 1:
            raise ValueError(f"tick_units must be >= 1, got {tick_units}")
        if lot_units < 1:
            raise ValueError(f"lot_units must be >= 1, got {lot_units}")
        if isinstance(symbol, str):
            symbol = symbol.encode("ascii")
        if symbol is not None and (not isinstance(symbol, bytes) or not symbol):
            raise ValueError(f"symbol must be a non-empty str/bytes or None, got {symbol!r}")
        self.price_decimals = price_decimals
        self.tick_units = tick_units
        self.size_decimals = size_decimals
        self.lot_units = lot_units
        self.floor_sizes = floor_sizes
        self.symbol = symbol

    cdef bint symbol_matches(self, const unsigned char* buf, Py_ssize_t start,
                             Py_ssize_t end) noexcept:
        if self.symbol is None:
            return True
        if PyBytes_GET_SIZE(self.symbol) != end - start:
            return False
        return memcmp(PyBytes_AS_STRING(self.symbol), buf + start, end - start) == 0

    def __reduce__(self):
        return WireScale, (self.price_decimals, self.tick_units, self.size_decimals, self.lot_units, self.symbol,
                           bool(self.floor_sizes))

    def __repr__(self):
        return (f"WireScale(price_decimals={self.price_decimals}, tick_units={self.tick_units}, "
                f"size_decimals={self.size_decimals}, lot_units={self.lot_units}, "
                f"symbol={self.symbol!r}, floor_sizes={bool(self.floor_sizes)})")

    def __eq__(self, other):
        if not isinstance(other, WireScale):
            return NotImplemented
        cdef WireScale o = <WireScale>other
        return (self.price_decimals == o.price_decimals and self.tick_units == o.tick_units
                and self.size_decimals == o.size_decimals and self.lot_units == o.lot_units
                and self.symbol == o.symbol and self.floor_sizes == o.floor_sizes)

    def __hash__(self):
        return hash((self.price_decimals, self.tick_units, self.size_decimals,
                     self.lot_units, self.symbol, self.floor_sizes))


cdef int raise_wire_error(Reader* r, WireScale scale) except -1:
    """Raise the WireError recorded in ``r`` (called only after a helper returned -1)."""
    cdef str field = (<bytes>r.field).decode("ascii")
    cdef Py_ssize_t stop = min(r.err_pos + 24, r.n)
    cdef bytes near = r.buf[r.err_pos:stop] if r.err_pos < stop else b""
    if r.index >= 0:
        field = field.replace("[]", f"[{r.index}]", 1)
    reason = _REASONS.get(r.err, "invalid frame")
    if (r.err == ERR_TOO_FINE or r.err == ERR_NOT_MULTIPLE) and scale is not None:
        reason = f"{reason} ({scale!r})"
    raise WireError(f"{(<bytes>r.context).decode('ascii')}: {field or 'frame'} at byte "
                    f"{r.err_pos}: {reason}; near {near!r}")


cdef inline bint _scaled(uint64_t digits, int frac, int decimals, uint64_t units, bint floor,
                         int64_t* out) noexcept nogil:
    """digits * 10**(decimals - frac) / units, when scan_fixed would give it without an error."""
    while frac > decimals:
        if digits % 10 and not floor:
            return False    # too fine
        digits //= 10
        frac -= 1
    if digits > arb_pow10_limit[decimals - frac]:
        return False        # overflow
    digits *= arb_pow10[decimals - frac]
    if units != 1:
        if digits % units and not floor:
            return False    # not a whole number of ticks / lots
        digits //= units
    out[0] = <int64_t>digits
    return True


cdef int raw_to_batch(RawBatch* raw, WireScale scale, DeltaBatch batch) except -1:
    """Scale a single-pass read into ``batch``: 1, or 0 when a number is not exact on ``scale``
    (or a price is zero); the exact decoder then raises the error it always raised."""
    cdef Py_ssize_t k
    cdef RawLevel* level
    cdef int64_t price = 0, size = 0
    cdef int price_decimals = scale.price_decimals
    cdef int size_decimals = scale.size_decimals
    cdef uint64_t tick_units = <uint64_t>scale.tick_units
    cdef uint64_t lot_units = <uint64_t>scale.lot_units
    reset_batch(batch)
    for k in range(raw.count):
        level = &raw.levels[k]
        if (not _scaled(level.price, level.price_frac, price_decimals, tick_units, False, &price) or price == 0
                or not _scaled(level.size, level.size_frac, size_decimals, lot_units, scale.floor_sizes, &size)):
            return 0
        if batch.count < batch.capacity:
            # DeltaBatch.push without the method call while the buffer has room
            batch.sides[batch.count] = <uint8_t>level.side
            batch.prices[batch.count] = price
            batch.sizes[batch.count] = size
            batch.count += 1
        else:
            batch.push(level.side, price, size)
    batch.first_id = raw.first_update_id
    batch.last_id = raw.last_update_id
    batch.event_ms = raw.event_time_ms
    return 1
