# 128-bit integers for exact money arithmetic in C, with overflow detection.
#
# Amounts in atoms (10**-18 of an asset), notionals in price x size units and token-bucket
# units pass int64 but fit int128 for any real account. The compiled code that must not go
# through CPython's long arithmetic (the arb check: every Python int operation there is a
# call into cold code and a fresh object) keeps int128 copies of such numbers, and every
# product or sum is overflow-checked: an overflow is not an error, it means "this value is
# beyond the C path", and the caller answers with its exact Python-int path instead.
#
# Cython only needs to know int128 is an integer: values never cross into Python except
# through int128_to_py / int128_from_py (Cython would convert it as a long long).

from cpython.long cimport PyLong_Check

cdef extern from *:
    """
    typedef __int128 arb_int128;
    static inline int arb_mul128(arb_int128 a, arb_int128 b, arb_int128 *r) {
        return __builtin_mul_overflow(a, b, r);
    }
    static inline int arb_add128(arb_int128 a, arb_int128 b, arb_int128 *r) {
        return __builtin_add_overflow(a, b, r);
    }
    static inline int arb_sub128(arb_int128 a, arb_int128 b, arb_int128 *r) {
        return __builtin_sub_overflow(a, b, r);
    }
    """
    ctypedef long long int128 "arb_int128"
    # Nonzero when the exact result does not fit (``r`` then holds the wrapped value).
    bint mul128 "arb_mul128"(int128 a, int128 b, int128* r) noexcept nogil
    bint add128 "arb_add128"(int128 a, int128 b, int128* r) noexcept nogil
    bint sub128 "arb_sub128"(int128 a, int128 b, int128* r) noexcept nogil


cdef inline object int128_to_py(int128 x):
    cdef bint neg = x < 0
    cdef int128 mag = -x if neg else x
    cdef unsigned long long lo = <unsigned long long>mag
    cdef unsigned long long hi = <unsigned long long>(mag >> 64)
    value = (<object>hi << 64) | <object>lo
    return -value if neg else value


cdef inline bint int128_from_py(object value, int128* out) except -1:
    # ``value`` into ``out`` if it is an int with |value| < 2**126 (a margin under the
    # type's range); False, ``out`` untouched, for anything else (a bigger int, a float).
    if not PyLong_Check(value) or not -(1 << 126) < value < (1 << 126):
        return False
    cdef bint neg = value < 0
    mag = -value if neg else value
    cdef unsigned long long lo = mag & 0xFFFFFFFFFFFFFFFF
    cdef unsigned long long hi = mag >> 64
    cdef int128 x = ((<int128>hi) << 64) | <int128>lo
    out[0] = -x if neg else x
    return True



cdef inline int mirror(object value, int128* wide, int unfit, int bit) except -1:
    # Keep the int128 copy of an amount just set, for a cell that tracks which of its
    # amounts fit in a bitmask: ``unfit`` with ``bit`` cleared, or set (``wide`` untouched)
    # if the amount is not an int within int128.
    if int128_from_py(value, wide):
        return unfit & ~bit
    return unfit | bit
