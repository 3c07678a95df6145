# cython: language_level=3
"""Out-of-line parts of the JSON cursor (see _json.pxd)."""


cdef bint skip_value(Cursor* c) noexcept nogil:
    """Skip any JSON value: string, number, literal, or a nested array/object."""
    cdef Span s
    cdef int depth = 0
    skip_ws(c)
    if c.p >= c.end:
        return False
    if c.p[0] == c'"':
        return read_string(c, &s)
    if c.p[0] != c'[' and c.p[0] != c'{':
        # number or literal (true/false/null): up to the next delimiter
        while c.p < c.end and c.p[0] != c',' and c.p[0] != c']' and c.p[0] != c'}':
            c.p += 1
        return True
    cdef const char* q = c.p
    cdef const char* end = c.end
    cdef char ch
    # Walk a local pointer (through ``c`` it would be reloaded around every byte).
    while q < end:
        ch = q[0]
        if ch == c'"':
            q = string_end(q + 1, end)
            if q >= end:
                c.p = q
                return False
        elif ch == c'[' or ch == c'{':
            depth += 1
        elif ch == c']' or ch == c'}':
            depth -= 1
            if depth == 0:
                c.p = q + 1
                return True
        q += 1
    c.p = q
    return False


cdef bint read_container(Cursor* c, Span* out) noexcept nogil:
    """The span of the array or object at the cursor, brackets included."""
    skip_ws(c)
    out.p = c.p
    if c.p >= c.end or (c.p[0] != c'[' and c.p[0] != c'{'):
        return False
    if not skip_value(c):
        return False
    out.n = c.p - out.p
    return True
