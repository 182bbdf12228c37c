# Header-only byte scanners shared by the venue decoders.
#
# Every helper checks each index against the length before reading, never allocates and
# never raises. The exact helpers work on a Reader (a borrowed pointer plus length and a
# cursor): on failure they record the first error code and byte offset in the Reader and
# return -1, so the decoder raises one WireError with the full context at its boundary.
# The single-pass helpers at the end work on a plain index and only say yes or no.
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcmp

cdef enum:
    MAX_DEPTH = 64          # nested JSON containers (or protobuf groups) accepted

# Error codes recorded in Reader.err
cdef enum:
    ERR_NONE = 0
    ERR_EOF = 1             # frame ends inside a value
    ERR_SYNTAX = 2          # unexpected byte
    ERR_UTF8 = 3            # invalid UTF-8 inside a string
    ERR_CONTROL = 4         # raw control character inside a string
    ERR_ESCAPE = 5          # invalid escape, or an escape where plain text is required
    ERR_DEPTH = 6           # nesting deeper than MAX_DEPTH
    ERR_TRAILING = 7        # bytes after the document
    ERR_TYPE = 8            # a field has the wrong JSON type / protobuf wire type
    ERR_MISSING = 9         # a required field is absent
    ERR_DUPLICATE = 10      # a field that is read appears twice
    ERR_MISMATCH = 11       # channel / event / symbol differs from the expected one
    ERR_NUMBER = 12         # malformed number (empty, sign, exponent, dots, non-digits)
    ERR_OVERFLOW = 13       # does not fit int64
    ERR_TOO_FINE = 14       # more significant fractional digits than the precision
    ERR_NOT_MULTIPLE = 15   # not a whole number of ticks / lots
    ERR_NOT_POSITIVE = 16   # a price of zero
    ERR_SEQUENCE = 17       # first update id above the last one
    ERR_ARITY = 18          # a level array with the wrong number of elements
    ERR_VARINT = 19         # protobuf varint longer than 10 bytes or above 64 bits
    ERR_LENGTH = 20         # protobuf length runs past its enclosing message
    ERR_FIELD = 21          # protobuf field number 0 or wire type 6/7
    ERR_GROUP = 22          # protobuf end-group without / with a different start


cdef struct Reader:
    const unsigned char* buf
    Py_ssize_t n            # end of the readable region (exclusive)
    Py_ssize_t pos
    Py_ssize_t err_pos
    int err
    int depth               # containers currently open
    int index               # level index for error messages, -1 when not in a level
    const char* field       # field being decoded, for error messages
    const char* context     # venue and channel, for error messages


cdef inline void reader_init(Reader* r, const unsigned char* buf, Py_ssize_t n,
                             const char* context) noexcept nogil:
    r.buf = buf
    r.n = n
    r.pos = 0
    r.err_pos = 0
    r.err = ERR_NONE
    r.depth = 0
    r.index = -1
    r.field = b""
    r.context = context


cdef inline int fail(Reader* r, int code, Py_ssize_t pos) noexcept nogil:
    if r.err == ERR_NONE:
        r.err = code
        r.err_pos = pos
    return -1


# ---------------------------------------------------------------------------
# Fixed-point numbers

cdef inline bint _is_digit(unsigned char c) noexcept nogil:
    return c >= 48 and c <= 57


cdef inline bint _push_digit(uint64_t* acc, unsigned char c) noexcept nogil:
    """acc = acc * 10 + digit; False when the result leaves int64."""
    cdef uint64_t d = c - 48
    if acc[0] > 922337203685477580ULL or (acc[0] == 922337203685477580ULL and d > 7):
        return False
    acc[0] = acc[0] * 10 + d
    return True


cdef extern from *:
    """
    static const unsigned long long arb_pow10[19] = {
        1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL, 10000000ULL,
        100000000ULL, 1000000000ULL, 10000000000ULL, 100000000000ULL, 1000000000000ULL,
        10000000000000ULL, 100000000000000ULL, 1000000000000000ULL, 10000000000000000ULL,
        100000000000000000ULL, 1000000000000000000ULL};
    /* INT64_MAX / 10**k: the largest value that can still be scaled by 10**k */
    static const unsigned long long arb_pow10_limit[19] = {
        9223372036854775807ULL, 922337203685477580ULL, 92233720368547758ULL, 9223372036854775ULL, 922337203685477ULL, 92233720368547ULL, 9223372036854ULL, 922337203685ULL, 92233720368ULL, 9223372036ULL, 922337203ULL, 92233720ULL, 9223372ULL, 922337ULL, 92233ULL, 9223ULL, 922ULL, 92ULL, 9ULL};
    /* bytes a JSON string scan must look at: '"', '\\', control characters, non-ASCII */
    static const unsigned char arb_string_special[256] = {1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,0,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1};
    """
    const unsigned long long arb_pow10[19]
    const unsigned long long arb_pow10_limit[19]
    const unsigned char arb_string_special[256]


cdef inline int scan_fixed(const unsigned char* b, Py_ssize_t start, Py_ssize_t limit,
                           int decimals, int64_t units, bint floor, int64_t* out,
                           Py_ssize_t* stop) noexcept nogil:
    """Parse DIGITS['.'DIGITS] from ``start`` as value * 10**decimals / units.

    ``stop`` receives where the number text ends (the caller checks what follows).
    Returns ERR_NONE or the error code; syntax errors win over overflow, overflow over
    precision, so the code does not depend on where in the text the problem sits.
    ``floor``: a value finer than the scale (too fine, not a multiple of ``units``) is
    rounded down to it instead of refused.
    """
    cdef Py_ssize_t i = start
    cdef Py_ssize_t fstart
    cdef uint64_t acc = 0
    cdef int digits = 0         # digits accumulated; below 18 no overflow is possible
    cdef int frac = 0
    cdef bint overflow = False
    cdef bint too_fine = False
    cdef unsigned char c
    while i < limit and _is_digit(b[i]):
        if digits < 18:
            acc = acc * 10 + (b[i] - 48)
            digits += 1
        elif not overflow and not _push_digit(&acc, b[i]):
            overflow = True
        i += 1
    if i == start:
        stop[0] = i
        return ERR_NUMBER
    if i < limit and b[i] == 46:  # '.'
        i += 1
        fstart = i
        while i < limit and _is_digit(b[i]):
            c = b[i]
            if frac < decimals:
                if digits < 18:
                    acc = acc * 10 + (c - 48)
                    digits += 1
                elif not overflow and not _push_digit(&acc, c):
                    overflow = True
                frac += 1
            elif c != 48 and not floor:
                too_fine = True
            i += 1
        if i == fstart:
            stop[0] = i
            return ERR_NUMBER
    stop[0] = i
    if overflow:
        return ERR_OVERFLOW
    if frac < decimals:
        if acc > arb_pow10_limit[decimals - frac]:
            return ERR_OVERFLOW
        acc *= arb_pow10[decimals - frac]
    if too_fine:
        return ERR_TOO_FINE
    if units == 1:
        out[0] = <int64_t>acc
        return ERR_NONE
    if acc % <uint64_t>units and not floor:
        return ERR_NOT_MULTIPLE
    out[0] = <int64_t>(acc / <uint64_t>units)
    return ERR_NONE


cdef inline int parse_fixed(const unsigned char* b, Py_ssize_t start, Py_ssize_t end,
                            int decimals, int64_t units, bint floor, int64_t* out) noexcept nogil:
    """Decimal text filling [start, end) -> value * 10**decimals / units (``scan_fixed``)."""
    cdef Py_ssize_t stop
    cdef int code = scan_fixed(b, start, end, decimals, units, floor, out, &stop)
    if stop != end:
        return ERR_NUMBER
    return code


cdef inline int parse_uint(const unsigned char* b, Py_ssize_t start, Py_ssize_t end,
                           int64_t* out) noexcept nogil:
    """Plain DIGITS -> int64 (no sign, fraction or exponent)."""
    cdef Py_ssize_t i
    cdef uint64_t acc = 0
    if start == end:
        return ERR_NUMBER
    for i in range(start, end):
        if not _is_digit(b[i]):
            return ERR_NUMBER
    for i in range(start, end):
        if not _push_digit(&acc, b[i]):
            return ERR_OVERFLOW
    out[0] = <int64_t>acc
    return ERR_NONE


# ---------------------------------------------------------------------------
# JSON

cdef inline void skip_ws(Reader* r) noexcept nogil:
    cdef const unsigned char* b = r.buf
    cdef Py_ssize_t i = r.pos
    cdef Py_ssize_t n = r.n
    while i < n and (b[i] == 32 or b[i] == 10 or b[i] == 13 or b[i] == 9):
        i += 1
    r.pos = i


cdef inline int peek(Reader* r) noexcept nogil:
    """Next non-blank byte (cursor left on it), or -1 at the end."""
    skip_ws(r)
    if r.pos >= r.n:
        return -1
    return r.buf[r.pos]


cdef inline int expect_byte(Reader* r, unsigned char c) noexcept nogil:
    skip_ws(r)
    if r.pos >= r.n:
        return fail(r, ERR_EOF, r.pos)
    if r.buf[r.pos] != c:
        return fail(r, ERR_SYNTAX, r.pos)
    r.pos += 1
    return 0


cdef inline int _hex(unsigned char c) noexcept nogil:
    return (48 <= c <= 57) or (65 <= c <= 70) or (97 <= c <= 102)


cdef inline int _utf8_tail(Reader* r, Py_ssize_t i) noexcept nogil:
    """Validate the multi-byte UTF-8 sequence starting at i; return its length or -1."""
    cdef const unsigned char* b = r.buf
    cdef unsigned char c = b[i]
    cdef unsigned char lo = 0x80
    cdef unsigned char hi = 0xBF
    cdef int need
    cdef int k
    if 0xC2 <= c <= 0xDF:
        need = 1
    elif 0xE0 <= c <= 0xEF:
        need = 2
        if c == 0xE0:
            lo = 0xA0
        elif c == 0xED:
            hi = 0x9F     # no UTF-16 surrogates
    elif 0xF0 <= c <= 0xF4:
        need = 3
        if c == 0xF0:
            lo = 0x90
        elif c == 0xF4:
            hi = 0x8F     # nothing above U+10FFFF
    else:
        return fail(r, ERR_UTF8, i)
    if i + need >= r.n:
        return fail(r, ERR_EOF, r.n)
    if not (lo <= b[i + 1] <= hi):
        return fail(r, ERR_UTF8, i)
    for k in range(2, need + 1):
        if not (0x80 <= b[i + k] <= 0xBF):
            return fail(r, ERR_UTF8, i)
    return need + 1


cdef inline int scan_string(Reader* r, Py_ssize_t* start, Py_ssize_t* end,
                            bint plain) noexcept nogil:
    """Cursor on '"': validate the string, leave the cursor after it.

    [start, end) is the raw content. With ``plain`` an escape is an error (the
    content is then compared or converted byte-wise).
    """
    cdef const unsigned char* b = r.buf
    cdef Py_ssize_t n = r.n
    cdef Py_ssize_t i = r.pos + 1
    cdef Py_ssize_t k
    cdef int step
    cdef unsigned char c
    start[0] = i
    while True:
        while i < n and not arb_string_special[b[i]]:
            i += 1
        if i >= n:
            return fail(r, ERR_EOF, n)
        c = b[i]
        if c == 34:  # '"'
            end[0] = i
            r.pos = i + 1
            return 0
        if c == 92:  # '\\'
            if plain:
                return fail(r, ERR_ESCAPE, i)
            if i + 1 >= n:
                return fail(r, ERR_EOF, n)
            c = b[i + 1]
            if c == 117:  # 'u'
                if i + 5 >= n:
                    return fail(r, ERR_EOF, n)
                for k in range(i + 2, i + 6):
                    if not _hex(b[k]):
                        return fail(r, ERR_ESCAPE, i)
                i += 6
            elif (c == 34 or c == 92 or c == 47 or c == 98 or c == 102 or c == 110
                  or c == 114 or c == 116):
                i += 2
            else:
                return fail(r, ERR_ESCAPE, i)
        elif c < 32:
            return fail(r, ERR_CONTROL, i)
        else:
            step = _utf8_tail(r, i)
            if step < 0:
                return -1
            i += step


cdef inline int scan_number(Reader* r, Py_ssize_t* start, Py_ssize_t* end) noexcept nogil:
    """Cursor on a number: validate the JSON number grammar, leave the cursor after it."""
    cdef const unsigned char* b = r.buf
    cdef Py_ssize_t n = r.n
    cdef Py_ssize_t i = r.pos
    cdef Py_ssize_t d
    start[0] = i
    if i < n and b[i] == 45:  # '-'
        i += 1
    if i >= n:
        return fail(r, ERR_EOF, n)
    if b[i] == 48:
        i += 1
    elif _is_digit(b[i]):
        while i < n and _is_digit(b[i]):
            i += 1
    else:
        return fail(r, ERR_SYNTAX, i)
    if i < n and b[i] == 46:  # '.'
        i += 1
        d = i
        while i < n and _is_digit(b[i]):
            i += 1
        if i == d:
            return fail(r, ERR_EOF if i >= n else ERR_SYNTAX, i)
    if i < n and (b[i] == 101 or b[i] == 69):  # 'e' 'E'
        i += 1
        if i < n and (b[i] == 43 or b[i] == 45):
            i += 1
        d = i
        while i < n and _is_digit(b[i]):
            i += 1
        if i == d:
            return fail(r, ERR_EOF if i >= n else ERR_SYNTAX, i)
    end[0] = i
    r.pos = i
    return 0


cdef inline int _literal(Reader* r, const char* word, Py_ssize_t size) noexcept nogil:
    cdef Py_ssize_t k
    for k in range(size):
        if r.pos + k >= r.n:
            return fail(r, ERR_EOF, r.n)
        if r.buf[r.pos + k] != <unsigned char>word[k]:
            return fail(r, ERR_SYNTAX, r.pos + k)
    r.pos += size
    return 0


cdef inline int scan_bool(Reader* r, bint* out) noexcept nogil:
    """Cursor before a value that must be true or false."""
    cdef int c = peek(r)
    if c == 116:  # 't'
        out[0] = True
        return _literal(r, b"true", 4)
    if c == 102:  # 'f'
        out[0] = False
        return _literal(r, b"false", 5)
    if c < 0:
        return fail(r, ERR_EOF, r.n)
    return fail(r, ERR_TYPE, r.pos)


cdef inline int _scan_key(Reader* r) noexcept nogil:
    """Key string + ':' of an object member inside a skipped value."""
    cdef Py_ssize_t ks, ke
    cdef int c = peek(r)
    if c < 0:
        return fail(r, ERR_EOF, r.n)
    if c != 34:
        return fail(r, ERR_SYNTAX, r.pos)
    if scan_string(r, &ks, &ke, False) < 0:
        return -1
    return expect_byte(r, 58)


cdef inline int skip_value(Reader* r) noexcept nogil:
    """Validate and step over one JSON value of any type (iterative, depth-limited)."""
    cdef unsigned char stack[MAX_DEPTH]
    cdef int sp = 0
    cdef int c
    cdef unsigned char close
    cdef Py_ssize_t s, e
    while True:
        # one value; containers push and continue with their first member
        c = peek(r)
        if c < 0:
            return fail(r, ERR_EOF, r.n)
        if c == 123 or c == 91:  # '{' '['
            if r.depth + sp + 1 > MAX_DEPTH:
                return fail(r, ERR_DEPTH, r.pos)
            r.pos += 1
            close = 125 if c == 123 else 93
            if peek(r) == close:
                r.pos += 1
            else:
                stack[sp] = close
                sp += 1
                if close == 125 and _scan_key(r) < 0:
                    return -1
                continue
        elif c == 34:
            if scan_string(r, &s, &e, False) < 0:
                return -1
        elif c == 45 or _is_digit(<unsigned char>c):
            if scan_number(r, &s, &e) < 0:
                return -1
        elif c == 116:
            if _literal(r, b"true", 4) < 0:
                return -1
        elif c == 102:
            if _literal(r, b"false", 5) < 0:
                return -1
        elif c == 110:
            if _literal(r, b"null", 4) < 0:
                return -1
        else:
            return fail(r, ERR_SYNTAX, r.pos)
        # after a complete value: close containers or move to the next member
        while sp > 0:
            c = peek(r)
            if c < 0:
                return fail(r, ERR_EOF, r.n)
            if c == 44:  # ','
                r.pos += 1
                if stack[sp - 1] == 125 and _scan_key(r) < 0:
                    return -1
                break
            if c == stack[sp - 1]:
                r.pos += 1
                sp -= 1
            else:
                return fail(r, ERR_SYNTAX, r.pos)
        if sp == 0:
            return 0


cdef inline int open_container(Reader* r, unsigned char c) noexcept nogil:
    """Enter an object ('{') or array ('['); a different value is ERR_TYPE."""
    cdef int got = peek(r)
    if got < 0:
        return fail(r, ERR_EOF, r.n)
    if got != c:
        return fail(r, ERR_TYPE, r.pos)
    if r.depth + 1 > MAX_DEPTH:
        return fail(r, ERR_DEPTH, r.pos)
    r.depth += 1
    r.pos += 1
    return 0


cdef inline int _next_in(Reader* r, bint first, unsigned char close) noexcept nogil:
    """Inside a container: 1 when a member follows (cursor on it), 0 after ``close``."""
    cdef int c = peek(r)
    if c < 0:
        return fail(r, ERR_EOF, r.n)
    if c == close:
        r.pos += 1
        r.depth -= 1
        return 0
    if not first:
        if c != 44:
            return fail(r, ERR_SYNTAX, r.pos)
        r.pos += 1
        if peek(r) < 0:
            return fail(r, ERR_EOF, r.n)
    return 1


cdef inline int next_key(Reader* r, bint first, Py_ssize_t* ks, Py_ssize_t* ke) noexcept nogil:
    """Inside an object: 1 and the key span (cursor after ':'), 0 after '}', -1 on error.

    Keys are compared byte-wise, so an escaped key is rejected rather than misread.
    """
    cdef int rc = _next_in(r, first, 125)
    if rc <= 0:
        return rc
    if r.buf[r.pos] != 34:
        return fail(r, ERR_SYNTAX, r.pos)
    if scan_string(r, ks, ke, True) < 0:
        return -1
    if expect_byte(r, 58) < 0:
        return -1
    return 1


cdef inline int next_item(Reader* r, bint first) noexcept nogil:
    """Inside an array: 1 when an element follows (cursor on it), 0 after ']', -1 on error."""
    return _next_in(r, first, 93)


cdef inline int end_document(Reader* r) noexcept nogil:
    skip_ws(r)
    if r.pos != r.n:
        return fail(r, ERR_TRAILING, r.pos)
    return 0


cdef inline bint key_is(const unsigned char* b, Py_ssize_t ks, Py_ssize_t ke,
                        const char* name, Py_ssize_t size) noexcept nogil:
    cdef Py_ssize_t k
    if ke - ks != size:
        return False
    for k in range(size):
        if b[ks + k] != <unsigned char>name[k]:
            return False
    return True


cdef inline int read_plain_string(Reader* r, Py_ssize_t* s, Py_ssize_t* e) noexcept nogil:
    """Cursor before a value that must be a string without escapes."""
    cdef int c = peek(r)
    if c < 0:
        return fail(r, ERR_EOF, r.n)
    if c != 34:
        return fail(r, ERR_TYPE, r.pos)
    return scan_string(r, s, e, True)


cdef inline int read_number_token(Reader* r, Py_ssize_t* s, Py_ssize_t* e) noexcept nogil:
    """Cursor before a value that must be a JSON number."""
    cdef int c = peek(r)
    if c < 0:
        return fail(r, ERR_EOF, r.n)
    if c != 45 and not _is_digit(<unsigned char>c):
        return fail(r, ERR_TYPE, r.pos)
    return scan_number(r, s, e)


cdef inline int read_json_uint(Reader* r, int64_t* out) noexcept nogil:
    """A JSON integer >= 0 that fits int64."""
    cdef Py_ssize_t s, e
    cdef int code
    if read_number_token(r, &s, &e) < 0:
        return -1
    code = parse_uint(r.buf, s, e, out)
    if code != ERR_NONE:
        return fail(r, code, s)
    return 0


cdef inline int read_json_fixed(Reader* r, bint quoted, int decimals, int64_t units, bint floor,
                                int64_t* out) noexcept nogil:
    """A price or size, as a string ("0.12") or a bare number (0.12), in fixed point (``floor``:
    rounded down to the scale, ``scan_fixed``)."""
    cdef Py_ssize_t s, e
    cdef int code
    cdef int c
    if quoted:
        # one pass: a decimal string holds only digits and '.', so the first other byte
        # must be the closing quote; anything else is not a number whatever JSON says
        c = peek(r)
        if c < 0:
            return fail(r, ERR_EOF, r.n)
        if c != 34:
            return fail(r, ERR_TYPE, r.pos)
        s = r.pos + 1
        code = scan_fixed(r.buf, s, r.n, decimals, units, floor, out, &e)
        if e >= r.n:
            return fail(r, ERR_EOF, r.n)
        if r.buf[e] != 34:
            return fail(r, ERR_NUMBER, s)
        r.pos = e + 1
        if code != ERR_NONE:
            return fail(r, code, s)
        return 0
    elif read_number_token(r, &s, &e) < 0:
        return -1
    code = parse_fixed(r.buf, s, e, decimals, units, floor, out)
    if code != ERR_NONE:
        return fail(r, code, s)
    return 0


cdef inline int seek_key(Reader* r, const char* name, Py_ssize_t size) noexcept nogil:
    """Inside a just-opened object: skip members up to key ``name``.

    1 with the cursor on its value, 0 after '}' when it is absent, -1 on error.
    """
    cdef bint first = True
    cdef int rc
    cdef Py_ssize_t ks, ke
    while True:
        rc = next_key(r, first, &ks, &ke)
        if rc <= 0 or key_is(r.buf, ks, ke, name, size):
            return rc
        first = False
        if skip_value(r) < 0:
            return -1


cdef inline int expect_string(Reader* r, const char* want, Py_ssize_t size) noexcept nogil:
    """A plain string value that must equal ``want`` (a channel, an event), else ERR_MISMATCH."""
    cdef Py_ssize_t s, e
    if read_plain_string(r, &s, &e) < 0:
        return -1
    if not key_is(r.buf, s, e, want, size):
        return fail(r, ERR_MISMATCH, s)
    return 0


# ---------------------------------------------------------------------------
# Field bookkeeping: a bit per field a decoder reads

cdef inline int seen_once(Reader* r, int* seen, int bit, Py_ssize_t at) noexcept nogil:
    """Mark a field as read; a second occurrence is ERR_DUPLICATE at ``at``."""
    if seen[0] & bit:
        return fail(r, ERR_DUPLICATE, at)
    seen[0] |= bit
    return 0


cdef inline int require(Reader* r, int seen, int bit, const char* field) noexcept nogil:
    """ERR_MISSING naming ``field`` unless its bit was seen."""
    if not seen & bit:
        r.field = field
        return fail(r, ERR_MISSING, r.pos)
    return 0


cdef inline int read_uint_member(Reader* r, int* seen, int bit, Py_ssize_t at,
                                 int64_t* out) noexcept nogil:
    """The value of a once-only integer member (an update id, a timestamp)."""
    if seen_once(r, seen, bit, at) < 0:
        return -1
    return read_json_uint(r, out)


# ---------------------------------------------------------------------------
# JSON book levels: lists of [price, size(, ...)] arrays or of {price, size} objects

# How a price or size is written
cdef enum:
    NUM_STRING = 0          # "0.12"
    NUM_BARE = 1            # 0.12
    NUM_INT = 2             # 12 or "12": contracts, a JSON integer or a decimal string, scaled like any size

cdef inline int read_json_number(Reader* r, int kind, int decimals, int64_t units, bint floor,
                                 int64_t* out) noexcept nogil:
    """A price or size written as ``kind``, in fixed point (``floor``: rounded down to the scale)."""
    cdef Py_ssize_t s, e
    cdef int code
    cdef uint64_t acc
    if kind != NUM_INT or peek(r) == 34:
        return read_json_fixed(r, kind != NUM_BARE, decimals, units, floor, out)
    if read_number_token(r, &s, &e) < 0:
        return -1
    code = parse_uint(r.buf, s, e, out)
    if code == ERR_NONE:
        acc = <uint64_t>out[0]
        if acc > arb_pow10_limit[decimals]:
            code = ERR_OVERFLOW
        else:
            acc *= arb_pow10[decimals]
            if acc % <uint64_t>units and not floor:
                code = ERR_NOT_MULTIPLE
            else:
                out[0] = <int64_t>(acc / <uint64_t>units)
    if code != ERR_NONE:
        return fail(r, code, s)
    return 0


cdef inline int open_levels(Reader* r) noexcept nogil:
    """Enter a level list; r.index then counts the levels (the caller adds 1 after each)."""
    if open_container(r, 91) < 0:
        return -1
    r.index = 0
    return 0


cdef inline int next_level(Reader* r) noexcept nogil:
    """1 when another level follows, 0 after ']' (r.index back to -1), -1 on error."""
    cdef int rc = next_item(r, r.index == 0)
    if rc == 0:
        r.index = -1
    return rc


# ---------------------------------------------------------------------------
# Protobuf

cdef inline int read_varint(Reader* r, uint64_t* out) noexcept nogil:
    """Base-128 varint of at most 10 bytes whose value fits 64 bits."""
    cdef const unsigned char* b = r.buf
    cdef Py_ssize_t i = r.pos
    cdef Py_ssize_t start = i
    cdef uint64_t acc = 0
    cdef int shift = 0
    cdef unsigned char c
    if i < r.n and b[i] < 0x80:  # one-byte varints: every tag and length in a depth push
        out[0] = b[i]
        r.pos = i + 1
        return 0
    while True:
        if i >= r.n:
            return fail(r, ERR_EOF, r.n)
        c = b[i]
        if shift == 63 and c > 1:
            return fail(r, ERR_VARINT, start)
        acc |= (<uint64_t>(c & 0x7F)) << shift
        i += 1
        if c < 0x80:
            break
        shift += 7
    r.pos = i
    out[0] = acc
    return 0


cdef inline int read_tag(Reader* r, uint64_t* field, int* wire_type) noexcept nogil:
    cdef uint64_t tag
    cdef Py_ssize_t start = r.pos
    if read_varint(r, &tag) < 0:
        return -1
    field[0] = tag >> 3
    wire_type[0] = <int>(tag & 7)
    if field[0] == 0 or field[0] > 536870911 or wire_type[0] > 5:
        return fail(r, ERR_FIELD, start)
    return 0


cdef inline int read_length(Reader* r, Py_ssize_t* start, Py_ssize_t* end) noexcept nogil:
    """Length prefix of a wire-type-2 field; [start, end) must lie inside the message."""
    cdef uint64_t size
    cdef Py_ssize_t at = r.pos
    if read_varint(r, &size) < 0:
        return -1
    if size > <uint64_t>(r.n - r.pos):
        return fail(r, ERR_LENGTH, at)
    start[0] = r.pos
    end[0] = r.pos + <Py_ssize_t>size
    r.pos = end[0]
    return 0


cdef inline int skip_field(Reader* r, uint64_t field, int wire_type) noexcept nogil:
    """Step over the value of a field whose tag was just read (groups included)."""
    cdef uint64_t scratch
    cdef Py_ssize_t s, e
    cdef uint64_t open_fields[MAX_DEPTH]
    cdef int sp = 0
    cdef uint64_t f
    cdef int wt
    if wire_type == 4:
        return fail(r, ERR_GROUP, r.pos)
    if wire_type == 3:
        open_fields[0] = field
        sp = 1
    while True:
        if wire_type == 0:
            if read_varint(r, &scratch) < 0:
                return -1
        elif wire_type == 1 or wire_type == 5:
            s = 8 if wire_type == 1 else 4
            if r.n - r.pos < s:
                return fail(r, ERR_EOF, r.n)
            r.pos += s
        elif wire_type == 2:
            if read_length(r, &s, &e) < 0:
                return -1
        if sp == 0:
            return 0
        # inside a group: read members until the matching end-group
        while True:
            if read_tag(r, &f, &wt) < 0:
                return -1
            if wt == 4:
                if f != open_fields[sp - 1]:
                    return fail(r, ERR_GROUP, r.pos)
                sp -= 1
                if sp == 0:
                    return 0
            elif wt == 3:
                if sp >= MAX_DEPTH:
                    return fail(r, ERR_DEPTH, r.pos)
                open_fields[sp] = f
                sp += 1
            else:
                wire_type = wt
                break


# ---------------------------------------------------------------------------
# Single pass: the compact shape venues send
#
# These read only the compact form of a frame (no blanks between tokens, keys and read
# strings in plain ASCII, numbers as bare digits) and return the index after what they
# read, or -1. -1 means "not the compact shape", never "invalid": the caller then hands
# the frame to the exact decoders above, which accept or reject it with their own error.
# So everything a fast path accepts must be a frame the exact path decodes to the same
# result; anything unusual is simply declined.

cdef enum:
    FAST_DIGITS = 18        # longest digit string read in one pass (never overflows int64)


cdef inline Py_ssize_t fast_plain(const unsigned char* b, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    """b[i] is '"': the index after the closing quote of an ASCII string without escapes."""
    i += 1
    while i < n and not arb_string_special[b[i]]:
        i += 1
    if i < n and b[i] == 34:
        return i + 1
    return -1


cdef inline Py_ssize_t fast_string(const unsigned char* b, Py_ssize_t i, Py_ssize_t n,
                                   Py_ssize_t* s, Py_ssize_t* e) noexcept nogil:
    """An ASCII string without escapes at i: the index after it; its content is [s, e)."""
    if i >= n or b[i] != 34:
        return -1
    s[0] = i + 1
    i = fast_plain(b, i, n)
    e[0] = i - 1
    return i


cdef inline Py_ssize_t fast_key(const unsigned char* b, Py_ssize_t i, Py_ssize_t n,
                                Py_ssize_t* ks) noexcept nogil:
    """A member's key and its ':': the index of the value; the key is [ks, result - 2)."""
    cdef Py_ssize_t ke
    i = fast_string(b, i, n, ks, &ke)
    if i < 0 or i >= n or b[i] != 58:
        return -1
    return i + 1


# A container is read item by item; i ends past it, or at -1 when it is not the compact shape:
#
#     more = fast_array(b, &i, n)             more = fast_first_key(b, &i, n, &ks)
#     while more:                             while more:
#         i = <element at i>                      i = <value at i of the key [ks, i - 2)>
#         more = fast_next(b, &i, n, 93)          more = fast_next_key(b, &i, n, &ks)
#
# where reading an item gives the index after it, or -1.

cdef inline bint fast_array(const unsigned char* b, Py_ssize_t* i, Py_ssize_t n) noexcept nogil:
    """i[0] >= 0 is at '[': True with i[0] at the first element; False with i[0] past an
    empty array, or at -1 when '[' is not there or the frame ends after it."""
    cdef Py_ssize_t j = i[0]
    if j + 1 < n and b[j] == 91:
        if b[j + 1] != 93:
            i[0] = j + 1
            return True
        i[0] = j + 2
        return False
    i[0] = -1
    return False


cdef inline bint fast_next(const unsigned char* b, Py_ssize_t* i, Py_ssize_t n,
                           unsigned char close) noexcept nogil:
    """i[0] is past an item (-1 when reading it failed): True with i[0] past the ',' before
    the next item; False with i[0] past ``close``, or at -1 when neither follows."""
    cdef Py_ssize_t j = i[0]
    if <size_t>j < <size_t>n:  # also rules out -1
        if b[j] == 44:  # ','
            i[0] = j + 1
            return True
        if b[j] == close:
            i[0] = j + 1
            return False
    i[0] = -1
    return False


cdef inline bint fast_first_key(const unsigned char* b, Py_ssize_t* i, Py_ssize_t n,
                                Py_ssize_t* ks) noexcept nogil:
    """i[0] >= 0 is at '{': True with i[0] at the first member's value; otherwise False with
    i[0] at -1 (the empty object included: every reader requires some key)."""
    cdef Py_ssize_t j = i[0]
    if j < n and b[j] == 123:
        j = fast_key(b, j + 1, n, ks)
        i[0] = j
        return j >= 0
    i[0] = -1
    return False


cdef inline bint fast_next_key(const unsigned char* b, Py_ssize_t* i, Py_ssize_t n,
                               Py_ssize_t* ks) noexcept nogil:
    """i[0] is past a member's value (-1 when reading it failed): True with i[0] at the next
    member's value; False with i[0] past the '}', or at -1 when neither follows."""
    if fast_next(b, i, n, 125):
        i[0] = fast_key(b, i[0], n, ks)
        return i[0] >= 0
    return False


cdef inline bint fast_seen(int* seen, int bit) noexcept nogil:
    """True when a key (or field) was read before, which declines the frame; else marks it."""
    if seen[0] & bit:
        return True
    seen[0] |= bit
    return False


cdef inline Py_ssize_t _fast_digit_run(const unsigned char* b, Py_ssize_t i, Py_ssize_t n,
                                       uint64_t* acc) noexcept nogil:
    """Digits from i, appended to acc (modulo 2**64: callers bound the count); index after them."""
    cdef uint64_t value = acc[0]
    cdef unsigned int d
    while i < n:
        d = b[i] - 48
        if d > 9:
            break
        value = value * 10 + d
        i += 1
    acc[0] = value
    return i


cdef inline Py_ssize_t fast_decimal(const unsigned char* b, Py_ssize_t i, Py_ssize_t n,
                                    uint64_t* digits, int* frac) noexcept nogil:
    """DIGITS['.'DIGITS] (at most FAST_DIGITS digits): the digits without the point and how
    many follow it; leading zeros are kept as the exact decoders keep them."""
    cdef Py_ssize_t start = i
    cdef Py_ssize_t point
    cdef uint64_t acc = 0
    i = _fast_digit_run(b, i, n, &acc)
    if i == start:
        return -1
    frac[0] = 0
    if i < n and b[i] == 46:  # '.'
        point = i
        i = _fast_digit_run(b, i + 1, n, &acc)
        if i == point + 1:
            return -1
        frac[0] = <int>(i - point - 1)
        start += 1
    if i - start > FAST_DIGITS:
        return -1
    digits[0] = acc
    return i


cdef inline Py_ssize_t fast_quoted(const unsigned char* b, Py_ssize_t i, Py_ssize_t n,
                                   uint64_t* digits, int* frac) noexcept nogil:
    """A decimal string "DIGITS['.'DIGITS]", as read_json_fixed reads a quoted price or size."""
    if i >= n or b[i] != 34:
        return -1
    i = fast_decimal(b, i + 1, n, digits, frac)
    if i < 0 or i >= n or b[i] != 34:
        return -1
    return i + 1


cdef inline Py_ssize_t fast_number(const unsigned char* b, Py_ssize_t i, Py_ssize_t n,
                                   uint64_t* digits, int* frac) noexcept nogil:
    """A bare JSON number of the form DIGITS['.'DIGITS] (JSON forbids a leading zero before a
    digit); the caller checks that a separator follows, which rules out exponents."""
    if i + 1 < n and b[i] == 48 and _is_digit(b[i + 1]):
        return -1
    return fast_decimal(b, i, n, digits, frac)


cdef inline Py_ssize_t fast_uint(const unsigned char* b, Py_ssize_t i, Py_ssize_t n,
                                 int64_t* out) noexcept nogil:
    """A bare JSON integer >= 0 (an id, a timestamp, whole contracts)."""
    cdef uint64_t digits
    cdef int frac
    i = fast_number(b, i, n, &digits, &frac)
    if i < 0 or frac:
        return -1
    out[0] = <int64_t>digits
    return i


cdef inline Py_ssize_t _fast_number_end(const unsigned char* b, Py_ssize_t i,
                                        Py_ssize_t n) noexcept nogil:
    """b[i] is a digit: the end of the JSON number DIGITS['.'DIGITS] starting there, or -1."""
    if b[i] == 48:
        i += 1
        if i < n and _is_digit(b[i]):
            return -1
    else:
        while i < n and _is_digit(b[i]):
            i += 1
    if i < n and b[i] == 46:  # '.'
        i += 1
        if i >= n or not _is_digit(b[i]):
            return -1
        while i < n and _is_digit(b[i]):
            i += 1
    return i


cdef inline Py_ssize_t fast_skip_value(const unsigned char* b, Py_ssize_t i, Py_ssize_t n,
                                       int depth) noexcept nogil:
    """Any JSON value inside ``depth`` open containers, through skip_value (exact)."""
    cdef Reader r
    reader_init(&r, b, n, b"")
    r.pos = i
    r.depth = depth
    if skip_value(&r) < 0:
        return -1
    return r.pos


cdef inline Py_ssize_t fast_skip(const unsigned char* b, Py_ssize_t i, Py_ssize_t n,
                                 int depth) noexcept nogil:
    """Any JSON value inside ``depth`` open containers: the index after it. A plain string or a
    number followed by a separator is read in line, anything else through skip_value (exact,
    so an invalid value declines the frame)."""
    cdef Py_ssize_t j = -1
    if i < n:
        if b[i] == 34:
            j = fast_plain(b, i, n)
        elif _is_digit(b[i]):
            j = _fast_number_end(b, i, n)
        if j >= 0 and j < n and (b[j] == 44 or b[j] == 125 or b[j] == 93):
            return j
    return fast_skip_value(b, i, n, depth)


cdef inline bint fast_is(const unsigned char* b, Py_ssize_t s, Py_ssize_t e, const char* name,
                         Py_ssize_t size) noexcept nogil:
    """[s, e) spells ``name``."""
    return e - s == size and memcmp(b + s, name, size) == 0


cdef inline Py_ssize_t fast_literal(const unsigned char* b, Py_ssize_t i, Py_ssize_t n,
                                    const char* text, Py_ssize_t size) noexcept nogil:
    """The bytes of ``text`` (a quoted string or a literal) at i."""
    if n - i >= size and memcmp(b + i, text, size) == 0:
        return i + size
    return -1


cdef inline Py_ssize_t fast_varint(const unsigned char* b, Py_ssize_t i, Py_ssize_t end,
                                   uint64_t* out) noexcept nogil:
    """A protobuf varint as read_varint reads it."""
    cdef uint64_t acc = 0
    cdef int shift = 0
    cdef unsigned char c
    if i < end and b[i] < 0x80:
        out[0] = b[i]
        return i + 1
    while True:
        if i >= end:
            return -1
        c = b[i]
        if shift == 63 and c > 1:
            return -1
        acc |= (<uint64_t>(c & 0x7F)) << shift
        i += 1
        if c < 0x80:
            break
        shift += 7
    out[0] = acc
    return i


cdef inline Py_ssize_t fast_tag(const unsigned char* b, Py_ssize_t i, Py_ssize_t end,
                                uint64_t* field, int* wire_type) noexcept nogil:
    """A protobuf tag as read_tag accepts it."""
    cdef uint64_t tag
    i = fast_varint(b, i, end, &tag)
    if i < 0:
        return -1
    field[0] = tag >> 3
    wire_type[0] = <int>(tag & 7)
    if field[0] == 0 or field[0] > 536870911 or wire_type[0] > 5:
        return -1
    return i


cdef inline Py_ssize_t fast_length(const unsigned char* b, Py_ssize_t i, Py_ssize_t end,
                                   Py_ssize_t* stop) noexcept nogil:
    """A length prefix whose bytes lie inside [i, end): their start, and their end in stop."""
    cdef uint64_t size
    i = fast_varint(b, i, end, &size)
    if i < 0 or size > <uint64_t>(end - i):
        return -1
    stop[0] = i + <Py_ssize_t>size
    return i


cdef inline Py_ssize_t fast_skip_field(const unsigned char* b, Py_ssize_t i, Py_ssize_t end,
                                       int wire_type) noexcept nogil:
    """The value of an unknown field as skip_field steps over it; groups are declined."""
    cdef uint64_t scratch
    cdef Py_ssize_t stop
    if wire_type == 0:
        return fast_varint(b, i, end, &scratch)
    if wire_type == 1 or wire_type == 5:
        stop = i + (8 if wire_type == 1 else 4)
        return stop if stop <= end else -1
    if wire_type == 2:
        if fast_length(b, i, end, &stop) < 0:
            return -1
        return stop
    return -1
