# Header-only fixed-point helpers shared by the compiled modules.
# Prices are int64 ticks, sizes int64 lots, times int64 ns; nothing here allocates.
from libc.stdint cimport int64_t

cdef extern from *:
    """
    static inline int arb_mul_overflows(long long a, long long b, long long *out) {
        return __builtin_mul_overflow(a, b, out);
    }
    static inline int arb_add_overflows(long long a, long long b, long long *out) {
        return __builtin_add_overflow(a, b, out);
    }
    """
    bint arb_mul_overflows(long long a, long long b, long long *out) noexcept nogil
    bint arb_add_overflows(long long a, long long b, long long *out) noexcept nogil


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
