# Header-only fixed-point helpers shared by the compiled modules.
# Prices are int64 ticks, sizes int64 lots, times int64 ns; nothing here allocates.
from libc.stdint cimport INT64_MAX, INT64_MIN, int64_t, uint64_t

cdef extern from *:
    """
    static inline int arb_mul_overflows(long long a, long long b, long long *out) {
        return __builtin_mul_overflow(a, b, out);
    }
    static inline int arb_add_overflows(long long a, long long b, long long *out) {
        return __builtin_add_overflow(a, b, out);
    }
    static inline int arb_sub_overflows(long long a, long long b, long long *out) {
        return __builtin_sub_overflow(a, b, out);
    }
    """
    bint arb_mul_overflows(long long a, long long b, long long *out) noexcept nogil
    bint arb_add_overflows(long long a, long long b, long long *out) noexcept nogil
    bint arb_sub_overflows(long long a, long long b, long long *out) noexcept nogil


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


cdef inline int64_t checked_mul(int64_t a, int64_t b) except? -1:
    """a * b, raising OverflowError instead of wrapping."""
    cdef long long out
    if arb_mul_overflows(a, b, &out):
        raise OverflowError(f"fixed-point overflow: {a} * {b}")
    return out


cdef inline int64_t checked_add(int64_t a, int64_t b) except? -1:
    """a + b, raising OverflowError instead of wrapping."""
    cdef long long out
    if arb_add_overflows(a, b, &out):
        raise OverflowError(f"fixed-point overflow: {a} + {b}")
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
