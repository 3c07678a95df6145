# cython: language_level=3
"""Level spans -> LevelUpdate arrays, shared by every venue parser (see _depth.pxd)."""

from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc

from arbengine._core.book cimport ASK, BID
from arbengine._core.fixed cimport Grid
from arbengine.venues._json cimport (
    Cursor,
    expect,
    peek,
    read_number,
    read_scalar,
    read_string,
    skip_value,
    span_eq,
)

from arbengine.venues.errors import FrameError


cdef class LevelBuffer:
    def __cinit__(self, Py_ssize_t capacity=256):
        self.cap = max(capacity, 16)
        self.n = 0
        self.data = <LevelUpdate*>PyMem_Malloc(self.cap * sizeof(LevelUpdate))
        if self.data == NULL:
            raise MemoryError()

    def __dealloc__(self):
        PyMem_Free(self.data)

    cdef int grow(self) except -1:
        cdef LevelUpdate* bigger = <LevelUpdate*>PyMem_Realloc(
            self.data, 2 * self.cap * sizeof(LevelUpdate))
        if bigger == NULL:
            raise MemoryError()
        self.data = bigger
        self.cap *= 2
        return 0

    def __len__(self):
        return self.n

    def levels(self):
        """(side, price, size) of every level, for tests and tools (allocates)."""
        return [(self.data[i].side, self.data[i].price, self.data[i].size)
                for i in range(self.n)]


cdef int _bad(Span span, Cursor* c, str what) except -1:
    at = c.p - span.p
    raise FrameError(f"malformed level array: {what} at byte {at} of {span.n}")


cdef int _parse_pairs(Span span, int side, Grid price, Grid size, LevelBuffer out) except -1:
    # [["p","q", ...extra fields ignored...], ...]
    cdef Cursor c
    cdef Span ps, qs
    c.p = span.p
    c.end = span.p + span.n
    if not expect(&c, c'['):
        return _bad(span, &c, "expected '['")
    if expect(&c, c']'):
        return 0
    while True:
        if not expect(&c, c'['):
            return _bad(span, &c, "expected a level '['")
        if not read_scalar(&c, &ps) or not expect(&c, c','):
            return _bad(span, &c, "expected a price")
        if not read_scalar(&c, &qs):
            return _bad(span, &c, "expected a size")
        while expect(&c, c','):
            if not skip_value(&c):
                return _bad(span, &c, "bad extra field")
        if not expect(&c, c']'):
            return _bad(span, &c, "expected ']' closing a level")
        out.push(side, price.parse_chars(ps.p, ps.n), size.parse_chars(qs.p, qs.n))
        if expect(&c, c']'):
            return 0
        if not expect(&c, c','):
            return _bad(span, &c, "expected ',' or ']'")


cdef int _parse_objects(Span span, int layout, int side, Grid price, Grid size,
                        LevelBuffer out) except -1:
    # [{"price":<num>,"qty":<num>}, ...] (Kraken v2) or
    # [{"side":"bid"|"offer","price_level":"..","new_quantity":".."}, ...] (Coinbase)
    cdef Cursor c
    cdef Span key, value, ps, qs
    cdef int level_side
    c.p = span.p
    c.end = span.p + span.n
    if not expect(&c, c'['):
        return _bad(span, &c, "expected '['")
    if expect(&c, c']'):
        return 0
    while True:
        if not expect(&c, c'{'):
            return _bad(span, &c, "expected a level '{'")
        ps.p = NULL
        qs.p = NULL
        level_side = side
        if not peek(&c, c'}'):
            while True:
                if not read_string(&c, &key) or not expect(&c, c':'):
                    return _bad(span, &c, "expected a key")
                if layout == LAYOUT_KRAKEN2:
                    if span_eq(key, b"price", 5):
                        if not read_number(&c, &ps):
                            return _bad(span, &c, "bad price")
                    elif span_eq(key, b"qty", 3):
                        if not read_number(&c, &qs):
                            return _bad(span, &c, "bad qty")
                    elif not skip_value(&c):
                        return _bad(span, &c, "bad value")
                else:
                    if span_eq(key, b"price_level", 11):
                        if not read_scalar(&c, &ps):
                            return _bad(span, &c, "bad price_level")
                    elif span_eq(key, b"new_quantity", 12):
                        if not read_scalar(&c, &qs):
                            return _bad(span, &c, "bad new_quantity")
                    elif span_eq(key, b"side", 4):
                        if not read_string(&c, &value):
                            return _bad(span, &c, "bad side")
                        if span_eq(value, b"bid", 3):
                            level_side = BID
                        elif span_eq(value, b"offer", 5) or span_eq(value, b"ask", 3):
                            level_side = ASK
                        else:
                            return _bad(span, &c, "unknown side")
                    elif not skip_value(&c):
                        return _bad(span, &c, "bad value")
                if not expect(&c, c','):
                    break
        if not expect(&c, c'}'):
            return _bad(span, &c, "expected '}' closing a level")
        if ps.p == NULL or qs.p == NULL:
            return _bad(span, &c, "level without price or size")
        if level_side != BID and level_side != ASK:
            return _bad(span, &c, "level without side")
        out.push(level_side, price.parse_chars(ps.p, ps.n), size.parse_chars(qs.p, qs.n))
        if expect(&c, c']'):
            return 0
        if not expect(&c, c','):
            return _bad(span, &c, "expected ',' or ']'")


cdef int parse_levels(Span span, int layout, int side, Grid price, Grid size,
                      LevelBuffer out) except -1:
    if span.p == NULL:
        return 0
    if layout == LAYOUT_PAIRS:
        return _parse_pairs(span, side, price, size, out)
    if layout == LAYOUT_KRAKEN2 or layout == LAYOUT_COINBASE:
        return _parse_objects(span, layout, side, price, size, out)
    raise FrameError(f"unknown level layout {layout}")


def parse_level_span(bytes text, int layout, int side, Grid price not None,
                     Grid size not None, LevelBuffer out not None):
    """Python entry for tests and tools: parse ``text`` as one level span into ``out``."""
    cdef Span span
    span.p = text
    span.n = len(text)
    out.clear()
    parse_levels(span, layout, side, price, size, out)
    return out.levels()
