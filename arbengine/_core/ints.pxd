# Strict Python int -> int64 conversion for the Python-facing API.
#
# Cython converts a float argument into an int64_t parameter by truncating it (1.5 -> 1),
# which would put a wrong price into a book or an order. Every Python entry point that takes
# ticks, lots or ids therefore takes ``object`` and converts through here.

from cpython.long cimport PyLong_Check
from libc.stdint cimport int64_t


cdef inline int64_t as_int64(object value, str what) except? -1:
    if not PyLong_Check(value):
        raise TypeError(f"{what} must be an int, got {type(value).__name__} {value!r}")
    try:
        return value
    except OverflowError:
        raise OverflowError(f"{what} {value} does not fit in int64") from None
