# Exact decimal text <-> int64 units on a decimal grid (a price tick or a size lot).
#
# A grid step is mantissa * 10**-decimals ("0.01" -> 1, 2; "0.5" -> 5, 1; "10" -> 10, 0).
# A value on the grid is an int64 count of steps. Nothing here ever goes through a float.

from libc.stdint cimport int64_t, uint64_t

# Status codes of the non-raising parser; the raising wrappers turn them into messages.
cdef enum ParseStatus:
    PARSE_OK = 0
    PARSE_MALFORMED = 1
    PARSE_NEGATIVE = 2
    PARSE_EXPONENT = 3
    PARSE_OVERFLOW = 4
    PARSE_OFF_GRID = 5

# Longest text format_chars() writes: sign, 19 digits, point, 18 leading zeros, NUL.
cdef enum:
    FORMAT_BUFSIZE = 48

cdef int parse_decimal(const char* p, Py_ssize_t n, int decimals, int64_t mantissa,
                       int64_t* out) noexcept nogil

cdef Py_ssize_t format_decimal(int64_t units, int decimals, int64_t mantissa, bint trim,
                               char* out) noexcept nogil

cdef class Grid:
    cdef readonly str name
    cdef readonly str step
    cdef readonly int decimals
    cdef readonly int64_t mantissa

    # Hot path for parsers that hold a pointer into a frame: raises FixedPointError.
    cdef int64_t parse_chars(self, const char* p, Py_ssize_t n) except -1
    # Writes at most FORMAT_BUFSIZE bytes (no NUL) and returns the length; -1 on overflow.
    cdef Py_ssize_t format_chars(self, int64_t units, bint trim, char* out) noexcept nogil

    cpdef int64_t parse(self, object text) except -1
    cpdef str format(self, object units, bint trim=*)
