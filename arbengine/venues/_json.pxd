# A minimal in-place JSON cursor for venue frames: just enough to walk objects and arrays,
# take string/number spans and integers, and skip values, without building Python objects.
# Functions return False on malformed input; callers turn that into one clear error.

from libc.stdint cimport int64_t, uint64_t

from arbengine.venues._depth cimport Span


cdef struct Cursor:
    const char* p
    const char* end


cdef inline void skip_ws(Cursor* c) noexcept nogil:
    while c.p < c.end and (c.p[0] == c' ' or c.p[0] == c'\n' or c.p[0] == c'\r'
                           or c.p[0] == c'\t'):
        c.p += 1


cdef inline bint peek(Cursor* c, char ch) noexcept nogil:
    skip_ws(c)
    return c.p < c.end and c.p[0] == ch


cdef inline bint expect(Cursor* c, char ch) noexcept nogil:
    skip_ws(c)
    if c.p < c.end and c.p[0] == ch:
        c.p += 1
        return True
    return False


cdef inline const char* string_end(const char* q, const char* end) noexcept nogil:
    """The closing quote of a string whose content starts at ``q`` (``end`` if none).
    A local pointer: walked through a Cursor it would be reloaded around every byte."""
    while q < end and q[0] != c'"':
        if q[0] == c'\\':
            q += 1
        q += 1
    return q


cdef inline bint read_string(Cursor* c, Span* out) noexcept nogil:
    """A string's raw content (escapes left as they are: numbers and symbols have none)."""
    cdef const char* q
    cdef const char* end = c.end
    skip_ws(c)
    q = c.p
    if q >= end or q[0] != c'"':
        return False
    out.p = q + 1
    q = string_end(out.p, end)
    if q >= end:
        c.p = q
        return False
    out.n = q - out.p
    c.p = q + 1
    return True


cdef inline bint read_number(Cursor* c, Span* out) noexcept nogil:
    """A bare JSON number's text, exactly as sent (Kraken v2 sends prices this way)."""
    skip_ws(c)
    out.p = c.p
    while c.p < c.end and (c'0' <= c.p[0] <= c'9' or c.p[0] == c'.' or c.p[0] == c'-'
                           or c.p[0] == c'+' or c.p[0] == c'e' or c.p[0] == c'E'):
        c.p += 1
    out.n = c.p - out.p
    return out.n > 0


cdef inline bint read_scalar(Cursor* c, Span* out) noexcept nogil:
    """A string's content or a bare number's text: venues quote numbers inconsistently."""
    if peek(c, c'"'):
        return read_string(c, out)
    return read_number(c, out)


cdef inline bint span_to_int(Span s, int64_t* out) noexcept nogil:
    """Decimal integer text (optional leading '-') to int64, with overflow checks."""
    cdef Py_ssize_t i = 0
    cdef bint neg = False
    cdef uint64_t acc = 0
    cdef uint64_t limit
    if s.n > 0 and s.p[0] == c'-':
        neg = True
        i = 1
    if i >= s.n or s.n - i > 19:
        return False
    while i < s.n:
        if s.p[i] < c'0' or s.p[i] > c'9':
            return False
        acc = acc * 10 + <uint64_t>(s.p[i] - c'0')
        i += 1
    limit = <uint64_t>9223372036854775807 + (1 if neg else 0)
    if acc > limit:
        return False
    out[0] = -<int64_t>(acc - 1) - 1 if neg and acc else (<int64_t>acc)
    return True


cdef inline bint read_int(Cursor* c, int64_t* out) noexcept nogil:
    """An integer, bare or quoted ("ts":"1597026383085" on OKX)."""
    cdef Span s
    return read_scalar(c, &s) and span_to_int(s, out)


cdef inline bint span_eq(Span s, const char* lit, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    if s.n != n:
        return False
    for i in range(n):
        if s.p[i] != lit[i]:
            return False
    return True


cdef bint skip_value(Cursor* c) noexcept nogil
cdef bint read_container(Cursor* c, Span* out) noexcept nogil
