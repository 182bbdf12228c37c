# Header-only fixed-point helpers shared by the compiled modules.
# Prices are int64 ticks, sizes int64 lots, times int64 ns; notionals (price x size) are 128-bit
# ``wide_t`` up to ``NOTIONAL_MAX``; nothing here allocates.
from libc.stdint cimport INT64_MAX, INT64_MIN, int64_t, uint64_t

cdef extern from *:
    """
    static inline int arb_mul_overflows(long long a, long long b, long long *out) {
        return __builtin_mul_overflow(a, b, out);
    }
    static inline int arb_sub_overflows(long long a, long long b, long long *out) {
        return __builtin_sub_overflow(a, b, out);
    }
    """
    bint arb_mul_overflows(long long a, long long b, long long *out) noexcept nogil
    bint arb_sub_overflows(long long a, long long b, long long *out) noexcept nogil

cdef extern from *:
    """
    typedef __int128 arb_wide;
    #define ARB_NOTIONAL_MAX ((((arb_wide)1) << 112) - 1)
    static inline int arb_wide_mul_overflows(arb_wide a, arb_wide b, arb_wide *out) {
        return __builtin_mul_overflow(a, b, out);
    }
    """
    # GCC/Clang's 128-bit integer. Cython converts it to and from Python ints exactly (out of range:
    # OverflowError); C arithmetic on it wraps, so products go through ``checked_notional``.
    ctypedef long long wide_t "arb_wide"
    bint arb_wide_mul_overflows(wide_t a, wide_t b, wide_t *out) noexcept nogil
    # The largest notional (price units x size units) the compiled code forms: 2**112 - 1, about
    # 5.2e33. Far past any trade on any grid (5e11 USDT on a 1e-22 USDT unit), and low enough that a
    # notional times 10,000 (basis points) or a few of them added stay in 128 bits.
    const wide_t NOTIONAL_MAX "ARB_NOTIONAL_MAX"


# The type of every integer argument (and settable integer attribute) that Python code hands to
# the compiled modules. Cython converts a Python object to an ordinary C integer with ``__int__``,
# which truncates a float or Decimal (10.9 -> 10) without a word; to ``Py_ssize_t`` it converts
# with ``__index__``, which takes ints and numpy integers and refuses the rest with TypeError
# (out of range: OverflowError). Inside, values are int64: the assertion below keeps the widths equal.
ctypedef Py_ssize_t int_arg

cdef extern from *:
    """
    _Static_assert(sizeof(Py_ssize_t) == sizeof(int64_t), "arb_core needs a 64-bit Py_ssize_t");
    """


cdef inline wide_t checked_notional(wide_t a, wide_t b) except? -1:
    """a * b for non-negative operands, raising OverflowError past ``NOTIONAL_MAX``."""
    cdef long long small
    cdef wide_t out
    # Operands and product within int64 (the common case): one 64-bit multiply decides it, where
    # the 128-bit one is a library call.
    if a <= INT64_MAX and b <= INT64_MAX and not arb_mul_overflows(<long long>a, <long long>b, &small):
        return small
    if arb_wide_mul_overflows(a, b, &out) or out > NOTIONAL_MAX:
        raise OverflowError(f"fixed-point overflow: notional {a} * {b} exceeds 2**112 - 1")
    return out


cdef inline int64_t saturating_sub(int64_t a, int64_t b) noexcept nogil:
    """a - b clamped to the int64 range: compared with a bound, it answers as the exact difference would."""
    cdef long long out
    if arb_sub_overflows(a, b, &out):
        # Only operands of opposite signs overflow: a >= 0 > b upwards, a < 0 < b downwards.
        return INT64_MAX if b < 0 else INT64_MIN
    return out


cdef inline double difference_as_double(int64_t a, int64_t b) noexcept nogil:
    """a - b as the nearest double, as Python's ``float(a - b)`` gives it, without overflow."""
    if a >= b:
        return <double>(<uint64_t>a - <uint64_t>b)
    return -<double>(<uint64_t>b - <uint64_t>a)
