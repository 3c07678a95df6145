# cython: language_level=3
"""Exact conversion between venue decimal text and int64 grid units.

Venues send prices and sizes as decimal text ("61737.63000000"). The hot path keeps them as
int64 counts of the instrument's tick or lot, so this module parses text straight into those
counts with integer arithmetic only, and refuses anything it cannot represent exactly:
malformed text, negatives, exponent form, values past int64, values between grid steps.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.stdint cimport INT64_MAX, int64_t, uint64_t

from arbengine._core.errors import FixedPointError
from arbengine._core.ints cimport as_int64

# Largest accumulator value that can still take one more digit without wrapping.
cdef uint64_t _ACC_LIMIT = (<uint64_t>0xFFFFFFFFFFFFFFFF - 9) // 10

_REASONS = {
    PARSE_MALFORMED: "is not plain decimal text",
    PARSE_NEGATIVE: "is negative",
    PARSE_EXPONENT: "is in exponent form",
    PARSE_OVERFLOW: "overflows int64",
}


cdef int parse_decimal(const char* p, Py_ssize_t n, int decimals, int64_t mantissa,
                       int64_t* out) noexcept nogil:
    """Parse ``[0-9]+(\\.[0-9]+)?`` into units of ``mantissa * 10**-decimals``.

    Digits beyond ``decimals`` must be zeros ("61737.63000000" on a 0.01 grid is fine).
    Classification of a bad text happens here too, so callers can raise a precise message.
    """
    cdef Py_ssize_t i = 0
    cdef uint64_t acc = 0
    cdef int frac = 0
    cdef bint int_digits = False
    cdef bint off_grid = False
    cdef bint overflow = False
    cdef char c
    if n <= 0:
        return PARSE_MALFORMED
    if p[0] == c'-':
        # "-" followed by a number is a negative; anything else is just malformed.
        if n > 1 and c'0' <= p[1] <= c'9':
            return PARSE_NEGATIVE
        return PARSE_MALFORMED
    while i < n:
        c = p[i]
        if c < c'0' or c > c'9':
            break
        if acc > _ACC_LIMIT:
            overflow = True
        else:
            acc = acc * 10 + <uint64_t>(c - c'0')
        int_digits = True
        i += 1
    if not int_digits:
        return PARSE_MALFORMED
    if i < n:
        c = p[i]
        if c == c'e' or c == c'E':
            return PARSE_EXPONENT
        if c != c'.':
            return PARSE_MALFORMED
        i += 1
        if i == n:
            return PARSE_MALFORMED
        while i < n:
            c = p[i]
            if c < c'0' or c > c'9':
                if c == c'e' or c == c'E':
                    return PARSE_EXPONENT
                return PARSE_MALFORMED
            if frac < decimals:
                if acc > _ACC_LIMIT:
                    overflow = True
                else:
                    acc = acc * 10 + <uint64_t>(c - c'0')
            elif c != c'0':
                off_grid = True
            frac += 1
            i += 1
    while frac < decimals:
        if acc > _ACC_LIMIT:
            overflow = True
        else:
            acc *= 10
        frac += 1
    # acc is units * mantissa: bounding it by int64 (not just the units) keeps parse the exact
    # inverse of format, so any value accepted here can be written back out.
    if overflow or acc > <uint64_t>INT64_MAX:
        return PARSE_OVERFLOW
    if off_grid or acc % <uint64_t>mantissa != 0:
        return PARSE_OFF_GRID
    acc //= <uint64_t>mantissa
    out[0] = <int64_t>acc
    return PARSE_OK


cdef Py_ssize_t format_decimal(int64_t units, int decimals, int64_t mantissa, bint trim,
                               char* out) noexcept nogil:
    """Write ``units * mantissa * 10**-decimals`` as plain decimal text; -1 on overflow."""
    cdef char digits[24]
    cdef int nd = 0
    cdef Py_ssize_t pos = 0
    cdef int k
    cdef int frac_len
    cdef bint neg = units < 0
    cdef uint64_t mag
    if neg:
        mag = <uint64_t>(-(units + 1)) + 1
    else:
        mag = <uint64_t>units
    if mag != 0 and <uint64_t>mantissa > <uint64_t>0xFFFFFFFFFFFFFFFF // mag:
        return -1
    mag *= <uint64_t>mantissa
    if mag > <uint64_t>INT64_MAX + (1 if neg else 0):
        return -1
    while True:
        digits[nd] = <char>(c'0' + mag % 10)
        nd += 1
        mag //= 10
        if mag == 0:
            break
    # Left-pad with zeros so there is at least one digit before the point.
    while nd <= decimals:
        digits[nd] = c'0'
        nd += 1
    frac_len = decimals
    if trim:
        while frac_len > 0 and digits[decimals - frac_len] == c'0':
            frac_len -= 1
    if neg:
        out[pos] = c'-'
        pos += 1
    for k in range(nd - 1, decimals - 1, -1):
        out[pos] = digits[k]
        pos += 1
    if frac_len > 0:
        out[pos] = c'.'
        pos += 1
        for k in range(decimals - 1, decimals - 1 - frac_len, -1):
            out[pos] = digits[k]
            pos += 1
    return pos


cdef inline const char* _text_chars(object text, Py_ssize_t* n) except NULL:
    if isinstance(text, str):
        return PyUnicode_AsUTF8AndSize(text, n)
    if isinstance(text, bytes):
        n[0] = PyBytes_GET_SIZE(text)
        return PyBytes_AS_STRING(text)
    if isinstance(text, float):
        raise TypeError(f"float {text!r} is not exact; pass the venue's decimal text")
    raise TypeError(f"expected decimal text (str or bytes), got {type(text).__name__}")


def _split_step(str step):
    """Validate a grid step's text and split it into (mantissa, decimals)."""
    cdef int64_t value
    cdef Py_ssize_t n
    cdef const char* p
    text = step.strip()
    if "." in text:
        text = text.rstrip("0")
        if text.endswith("."):
            text = text[:-1]
    decimals = len(text) - text.index(".") - 1 if "." in text else 0
    if decimals > 18:
        raise FixedPointError(f"grid step {step!r} has more than 18 decimals")
    p = _text_chars(text, &n)
    status = parse_decimal(p, n, decimals, 1, &value)
    if status != PARSE_OK:
        reason = _REASONS.get(status, "is not plain decimal text")
        raise FixedPointError(f"grid step {step!r} {reason}")
    if value == 0:
        raise FixedPointError(f"grid step {step!r} is zero")
    return value, decimals


cdef class Grid:
    """A decimal grid: a price tick or a size lot, given as the venue's decimal text.

    ``Grid("0.01", name="binance:BTCUSDT price").parse("61737.63000000") == 6173763``.
    ``name`` only serves error messages, so a bad value names its instrument.
    """

    def __init__(self, str step, str name=""):
        mantissa, decimals = _split_step(step)
        self.mantissa = mantissa
        self.decimals = decimals
        self.name = name
        self.step = format_text(1, decimals, mantissa)

    cdef int64_t parse_chars(self, const char* p, Py_ssize_t n) except -1:
        cdef int64_t out = 0
        cdef int status = parse_decimal(p, n, self.decimals, self.mantissa, &out)
        if status == PARSE_OK:
            return out
        self._raise(p[:n].decode("utf-8", "replace"), status)
        return -1

    cdef Py_ssize_t format_chars(self, int64_t units, bint trim, char* out) noexcept nogil:
        return format_decimal(units, self.decimals, self.mantissa, trim, out)

    cpdef int64_t parse(self, object text) except -1:
        """Exact units for decimal ``text``; raises FixedPointError naming value and grid."""
        cdef Py_ssize_t n = 0
        cdef const char* p
        try:
            p = _text_chars(text, &n)
        except UnicodeEncodeError:
            # A lone surrogate (json.loads can produce one) is malformed text, not a crash.
            self._raise(text, PARSE_MALFORMED)
        return self.parse_chars(p, n)

    cpdef str format(self, object units, bint trim=False):
        """Exact decimal text for ``units``: all the grid's decimals, or trimmed of zeros."""
        cdef char buf[FORMAT_BUFSIZE]
        cdef int64_t c_units = as_int64(units, "units")
        cdef Py_ssize_t n = format_decimal(c_units, self.decimals, self.mantissa, trim, buf)
        if n < 0:
            raise FixedPointError(
                f"{self._where()}{units} units of {self.step} overflow int64"
            )
        return buf[:n].decode("ascii")

    def _where(self):
        return f"{self.name}: " if self.name else ""

    def _raise(self, str text, int status):
        if status == PARSE_OFF_GRID:
            reason = f"is off the {self.step} grid"
        else:
            reason = _REASONS.get(status, "is not plain decimal text")
        raise FixedPointError(f"{self._where()}value {text!r} {reason}")

    def __repr__(self):
        return f"Grid({self.step!r}, name={self.name!r})"

    def __eq__(self, other):
        if not isinstance(other, Grid):
            return NotImplemented
        return (self.mantissa, self.decimals) == ((<Grid>other).mantissa, (<Grid>other).decimals)

    def __hash__(self):
        return hash((self.mantissa, self.decimals))

    def __reduce__(self):
        return (Grid, (self.step, self.name))


def format_text(object units, int decimals, int64_t mantissa=1, bint trim=False):
    """Exact decimal text of ``units * mantissa * 10**-decimals``."""
    cdef char buf[FORMAT_BUFSIZE]
    cdef int64_t c_units = as_int64(units, "units")
    if decimals < 0 or decimals > 18 or mantissa <= 0:
        raise FixedPointError(f"bad scale: decimals={decimals} mantissa={mantissa}")
    cdef Py_ssize_t n = format_decimal(c_units, decimals, mantissa, trim, buf)
    if n < 0:
        raise FixedPointError(f"{units} x {mantissa}e-{decimals} overflows int64")
    return buf[:n].decode("ascii")
