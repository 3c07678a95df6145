# cython: language_level=3
"""Compiled header parsers for venue book frames (see _frames.pxd for the contract).

How a frame is read: every JSON object on the way is walked once, key by key. A small
per-object function maps a key to a slot; the value's raw text (quotes and brackets
included) is recorded in that slot and every other value is skipped. Objects and arrays the
parser needs the inside of (Binance's envelope "data", OKX "arg" and "data", ...) are walked
in place as they come (see Nest), so no byte is scanned twice. Only after the whole object
has been seen are the slots interpreted, because key order is not promised and a
discriminator ("e", "channel", "type") may come after the fields it qualifies. Reading values
late also keeps non-book messages safe: a Binance bookTicker has a *string* "b", which would
be an error if "b" were always read as an array.

The grammar is the _json cursor's (expect, read_string, skip_value), implemented here on a
local pointer for speed (see _skip_to). What is validated: the structure of every object and
array the parser walks, the shape and range of every field it reports, and that nothing but
whitespace follows the frame. Values it skips are only delimited (brackets counted, strings
honoured), and level arrays are delimited here and validated by ``parse_levels``. So a frame
that is not valid JSON can still be accepted when the damage is confined to a skipped value;
it is never read as different values than a JSON parser would see. One deliberate exception:
string escapes are not decoded, so an escaped (or non-ASCII) key and an escaped discriminator
or symbol are refused with FrameError rather than compared raw. Venues never escape these.

Integers may be bare or quoted (OKX quotes "ts", Bybit and Binance do not; the rule is the
same everywhere so no venue quirk can slip through), must fit int64, and INT64_MIN is
refused because it is NO_ID. Bare integers with a leading zero are not JSON and are refused.
Millisecond timestamps must be in 0..INT64_MAX // 10**6 so that the ns value cannot overflow.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport INT64_MAX, int64_t, uint64_t
from libc.string cimport memchr, memcmp, memset
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

from arbengine._core.book cimport ASK, BID, Book
from arbengine._core.fixed cimport Grid
from arbengine.venues._depth cimport (
    DEPTH_NONE,
    DEPTH_SNAPSHOT,
    DEPTH_UPDATE,
    LAYOUT_COINBASE,
    LAYOUT_KRAKEN2,
    LAYOUT_PAIRS,
    NO_ID,
    DepthMsg,
    LevelBuffer,
    Span,
    parse_levels,
)
from arbengine.venues._json cimport Cursor, span_eq, span_to_int

from arbengine.venues.errors import FrameError

# Venue names of the Python API, in FrameFamily order.
VENUES = ("binance", "binance_rest", "okx", "bybit", "bybit_rest", "coinbase", "kraken")

cdef enum:
    _MS_TO_NS = 1000000


# --- error reporting (out of line: the parsers only test return codes) ---------------------

cdef struct Ctx:
    const char* base             # the frame, for byte offsets in messages
    Py_ssize_t n
    const char* what             # "binance depth", "okx books", ... (ASCII)


cdef int _fail(Ctx* x, const char* at, str why) except -1:
    # `at` may sit one byte past the end (an escape at the very end of a truncated string):
    # clamp, so the message always names an offset inside the frame.
    cdef Py_ssize_t off = x.n if at == NULL else at - x.base
    off = 0 if off < 0 else (x.n if off > x.n else off)
    raise FrameError(f"{(<bytes>x.what).decode('ascii')} frame: {why} at byte {off} of {x.n}")


cdef str _quote(Span s, Py_ssize_t limit=80):
    # A short excerpt of frame text for an error message: never raises, and repr() escapes
    # line breaks and control bytes so that the message stays on one printable line.
    cdef Py_ssize_t n = s.n if s.n < limit else limit
    text = PyBytes_FromStringAndSize(s.p, n).decode("utf-8", "backslashreplace")
    cdef str shown = repr(text)
    return shown[1:len(shown) - 1] + ("..." if s.n > limit else "")


# --- raw value slots ------------------------------------------------------------------------

ctypedef int (*KeyFn)(Span key) noexcept nogil


cdef inline bint _is_ws(char ch) noexcept nogil:
    return ch == c' ' or ch == c'\n' or ch == c'\r' or ch == c'\t'


cdef inline bint _has_backslash(Span s) noexcept nogil:
    return s.n > 0 and memchr(s.p, c'\\', <size_t>s.n) != NULL


cdef inline bint _plain_key(Span s) noexcept nogil:
    """Printable ASCII without escapes, like every key venues send."""
    cdef Py_ssize_t i
    cdef unsigned char ch
    for i in range(s.n):
        ch = <unsigned char>s.p[i]
        if ch < 0x20 or ch > 0x7E or ch == c'\\':
            return False
    return True


cdef inline const char* _string_end(const char* q, const char* end) noexcept nogil:
    """Just past the closing quote of a string whose content starts at q; NULL if none."""
    while q < end:
        if q[0] == c'"':
            return q + 1
        if q[0] == c'\\':
            q += 1          # the escaped byte is skipped whatever it is
        q += 1
    return NULL


cdef inline const char* _ws(const char* q, const char* end) noexcept nogil:
    while q < end and _is_ws(q[0]):
        q += 1
    return q


cdef const char* _skip_to(const char* q, const char* end) noexcept nogil:
    """Past the JSON value at q (leading whitespace allowed), by _json.skip_value's rules
    exactly; NULL where skip_value would fail.

    The scanners here keep their position in a local pointer instead of a Cursor in memory:
    frame bytes are read through ``char`` pointers, which may alias anything, so a position
    held in memory must be stored and reloaded around every byte read (about 3 ns a byte on
    the 2.1 GHz test machine, 10 us for a 2 kB Binance frame), while a local one stays in a
    register.
    """
    cdef int depth = 0
    cdef char ch
    q = _ws(q, end)
    if q >= end:
        return NULL
    ch = q[0]
    if ch == c'"':
        return _string_end(q + 1, end)
    if ch != c'[' and ch != c'{':
        # A number or literal: up to the next delimiter (validated by whoever reads it).
        while q < end and q[0] != c',' and q[0] != c']' and q[0] != c'}':
            q += 1
        return q
    while q < end:
        ch = q[0]
        if ch == c'"':
            q = _string_end(q + 1, end)
            if q == NULL:
                return NULL
            continue
        if ch == c'[' or ch == c'{':
            depth += 1
        elif ch == c']' or ch == c'}':
            depth -= 1
            if depth == 0:
                return q + 1
        q += 1
    return NULL


cdef struct Nest:
    # How _scan treats one slot's value when it opens with `opener`: the object or array is
    # walked in place, its fields going to `slots` (one pass over its bytes, where skipping it
    # and walking it later would take two). A value of another type is recorded raw, like a
    # plain slot's, for the interpretation to refuse.
    char opener                  # '{' object, '[' array of objects, 0: a plain slot
    KeyFn key
    Span* slots                  # `n` per object; arrays: up to `limit` objects back to back
    int n
    Py_ssize_t limit             # arrays: objects walked into slots (later ones are skipped)
    Py_ssize_t count             # arrays: elements seen, all of them
    bint all_objects             # arrays: every element was an object


cdef int _scan(Ctx* x, Cursor* c, KeyFn key_slot, Span* slots, int nslots,
               Nest* nests=NULL) except -1:
    """Walk one object at the cursor: the raw text of each known key's value goes to its slot
    (NULL when absent; the last one wins on duplicates), others are skipped. With ``nests``
    (one per slot), nested containers are walked in place (see Nest). The structure accepted
    is the _json cursor's (expect / read_string / skip_value), with the position kept local
    (see _skip_to)."""
    cdef const char* q = _ws(c.p, c.end)
    cdef const char* end = c.end
    cdef const char* start
    cdef const char* stop
    cdef Span key
    cdef Nest* nest
    cdef int i
    for i in range(nslots):
        slots[i].p = NULL
        slots[i].n = 0
    if q >= end or q[0] != c'{':
        return _fail(x, q, "expected '{'")
    q = _ws(q + 1, end)
    if q < end and q[0] == c'}':
        c.p = q + 1
        return 0
    while True:
        if q >= end or q[0] != c'"':
            return _fail(x, q, "expected a key string")
        key.p = q + 1
        q = _string_end(q + 1, end)
        if q == NULL:
            return _fail(x, end, "expected a key string")
        key.n = q - 1 - key.p
        q = _ws(q, end)
        if q >= end or q[0] != c':':
            return _fail(x, q, "expected ':' after a key")
        i = key_slot(key)
        if i < 0 and not _plain_key(key):
            # "\u0065" is "e" to a JSON parser, and a damaged "\x00hecksum" is no key at all
            # (raw control bytes are not JSON): refuse, rather than miss a known key.
            return _fail(x, key.p, "escaped or non-ASCII key (not supported)")
        start = _ws(q + 1, end)
        nest = &nests[i] if nests != NULL and i >= 0 else NULL
        if nest != NULL and nest.opener != 0 and start < end and start[0] == nest.opener:
            c.p = start
            if nest.opener == c'{':
                _scan(x, c, nest.key, nest.slots, nest.n)
            else:
                _scan_array(x, c, nest)
            q = c.p
        else:
            q = _skip_to(start, end)
            if q == NULL:
                return _fail(x, start, "malformed or truncated value")
        stop = q
        # A bare token runs up to the next delimiter: drop the whitespace before it.
        while stop > start and _is_ws((stop - 1)[0]):
            stop -= 1
        if stop == start:
            return _fail(x, start, "expected a value")
        if i >= 0:
            slots[i].p = start
            slots[i].n = stop - start
        q = _ws(q, end)
        if q < end and q[0] == c',':
            q = _ws(q + 1, end)
            continue
        if q < end and q[0] == c'}':
            c.p = q + 1
            return 0
        return _fail(x, q, "expected ',' or '}'")


cdef int _scan_array(Ctx* x, Cursor* c, Nest* a) except -1:
    """Walk the array at the cursor: its first ``a.limit`` elements that are objects go to
    a.slots (object k at a.slots + k * a.n), everything else is skipped; counts elements."""
    cdef const char* q = _ws(c.p, c.end)
    cdef const char* end = c.end
    cdef const char* start
    cdef Py_ssize_t k
    for k in range(a.limit * a.n):
        a.slots[k].p = NULL
        a.slots[k].n = 0
    a.count = 0
    a.all_objects = True
    if q >= end or q[0] != c'[':
        return _fail(x, q, "expected '['")
    q = _ws(q + 1, end)
    if q < end and q[0] == c']':
        c.p = q + 1
        return 0
    while True:
        start = q
        if q < end and q[0] == c'{' and a.count < a.limit:
            c.p = q
            _scan(x, c, a.key, a.slots + a.count * a.n, a.n)
            q = c.p
        else:
            if q >= end or q[0] != c'{':
                a.all_objects = False
            q = _skip_to(q, end)
            if q == NULL:
                return _fail(x, start, "malformed or truncated value")
            if q == start:
                return _fail(x, start, "expected a value")
        a.count += 1
        q = _ws(q, end)
        if q < end and q[0] == c',':
            q = _ws(q + 1, end)
            continue
        if q < end and q[0] == c']':
            c.p = q + 1
            return 0
        return _fail(x, q, "expected ',' or ']'")


cdef inline void _nest_object(Nest* nest, KeyFn key, Span* slots, int n) noexcept nogil:
    nest.opener = c'{'
    nest.key = key
    nest.slots = slots
    nest.n = n


cdef inline void _nest_array(Nest* nest, KeyFn key, Span* slots, int n,
                             Py_ssize_t limit) noexcept nogil:
    nest.opener = c'['
    nest.key = key
    nest.slots = slots
    nest.n = n
    nest.limit = limit
    nest.count = 0
    nest.all_objects = True


cdef int _scan_frame(Ctx* x, const char* p, Py_ssize_t n, KeyFn key_slot, Span* slots,
                     int nslots, Nest* nests=NULL) except -1:
    """_scan of a whole frame: one object, then nothing but whitespace."""
    cdef Cursor c
    c.p = p
    c.end = p + n
    _scan(x, &c, key_slot, slots, nslots, nests)
    c.p = _ws(c.p, c.end)
    if c.p != c.end:
        return _fail(x, c.p, "trailing bytes after the top-level object")
    return 0


cdef int _need_single(Ctx* x, Span v, Nest* nest, const char* end, str name) except -1:
    """A `data` array that must hold exactly one object (OKX, Kraken): one DepthMsg is one
    book message, and no venue sends more than one entry."""
    _need_array(x, v, end, name, &v)
    if nest.count == 0:
        return _fail(x, v.p, f"empty '{name}' array")
    if nest.count > 1:
        return _fail(x, v.p, f"more than one entry in '{name}'")
    if not nest.all_objects:
        return _fail(x, v.p, f"'{name}' entry is not an object")
    return 0


# --- value interpretation -------------------------------------------------------------------

cdef inline bint _is_str(Span v) noexcept nogil:
    # Recorded strings always end with their closing quote (_string_end checked it).
    return v.p != NULL and v.n >= 2 and v.p[0] == c'"'


cdef inline bint _is_array(Span v) noexcept nogil:
    return v.p != NULL and v.n >= 2 and v.p[0] == c'[' and v.p[v.n - 1] == c']'


cdef inline bint _is_object(Span v) noexcept nogil:
    return v.p != NULL and v.n >= 2 and v.p[0] == c'{' and v.p[v.n - 1] == c'}'


cdef inline bint _str_is(Span v, const char* lit, Py_ssize_t n) noexcept nogil:
    return v.n == n + 2 and v.p != NULL and v.p[0] == c'"' and memcmp(v.p + 1, lit, n) == 0


cdef inline bint _to_int(Span v, int64_t* out) noexcept nogil:
    cdef Py_ssize_t lead
    if v.n >= 2 and v.p[0] == c'"':
        v.p += 1
        v.n -= 2
    else:
        # A bare JSON number has no leading zero ("u":0093 is not JSON: a damaged frame).
        lead = 1 if v.n > 0 and v.p[0] == c'-' else 0
        if v.n > lead + 1 and v.p[lead] == c'0':
            return False
    return span_to_int(v, out) and out[0] != NO_ID


cdef inline Span _missing_at(Cursor* c) noexcept nogil:
    cdef Span s
    s.p = c.p
    s.n = 0
    return s


cdef int _not_book(Ctx* x, Span v) except -1:
    """A discriminator that names no book message. Returns 0 (DEPTH_NONE), unless it is an
    escaped string: "depth\\u0055pdate" is "depthUpdate" to a JSON parser."""
    if _is_str(v) and _has_backslash(v):
        return _fail(x, v.p, "escaped string (not supported)")
    return 0


cdef int _need_int(Ctx* x, Span v, const char* end, str name, int64_t* out) except -1:
    if v.p == NULL:
        return _fail(x, end, f"missing '{name}'")
    if not _to_int(v, out):
        return _fail(x, v.p, f"'{name}' is not an int64 integer: {_quote(v)}")
    return 0


cdef int _opt_int(Ctx* x, Span v, str name, int64_t* out) except -1:
    if v.p == NULL:
        out[0] = NO_ID
        return 0
    if not _to_int(v, out):
        return _fail(x, v.p, f"'{name}' is not an int64 integer: {_quote(v)}")
    return 0


cdef int _opt_ms(Ctx* x, Span v, str name, int64_t* out_ns) except -1:
    """Epoch milliseconds (optional: 0 when absent) -> ns."""
    cdef int64_t ms = 0
    if v.p == NULL:
        out_ns[0] = 0
        return 0
    if not _to_int(v, &ms) or ms < 0 or ms > INT64_MAX // _MS_TO_NS:
        return _fail(x, v.p, f"'{name}' is not a millisecond timestamp: {_quote(v)}")
    out_ns[0] = ms * _MS_TO_NS
    return 0


cdef int _opt_rfc3339(Ctx* x, Span v, str name, int64_t* out_ns) except -1:
    """RFC 3339 string (optional: 0 when absent) -> ns."""
    if v.p == NULL:
        out_ns[0] = 0
        return 0
    if not _is_str(v) or not rfc3339_to_ns(v.p + 1, v.n - 2, out_ns):
        return _fail(x, v.p, f"'{name}' is not an RFC 3339 UTC timestamp: {_quote(v)}")
    return 0


cdef int _opt_checksum(Ctx* x, Span v, int64_t lo, int64_t hi, DepthMsg* out) except -1:
    cdef int64_t value = 0
    if v.p == NULL:
        return 0
    if not _to_int(v, &value) or value < lo or value > hi:
        return _fail(x, v.p, f"'checksum' is not an integer in [{lo}, {hi}]: {_quote(v)}")
    out.checksum = value
    out.has_checksum = True
    return 0


cdef int _need_array(Ctx* x, Span v, const char* end, str name, Span* out) except -1:
    if v.p == NULL:
        return _fail(x, end, f"missing '{name}'")
    if not _is_array(v):
        return _fail(x, v.p, f"'{name}' is not an array")
    out[0] = v
    return 0


cdef int _need_object(Ctx* x, Span v, const char* end, str name) except -1:
    if v.p == NULL:
        return _fail(x, end, f"missing '{name}'")
    if not _is_object(v):
        return _fail(x, v.p, f"'{name}' is not an object")
    return 0


cdef int _need_symbol(Ctx* x, Span v, const char* end, str name, Span* out) except -1:
    """A venue symbol: a non-empty string of printable ASCII without escapes (every venue's
    symbols are; refusing the rest keeps routing by byte comparison exact)."""
    cdef Py_ssize_t i
    cdef unsigned char ch
    if v.p == NULL:
        return _fail(x, end, f"missing '{name}'")
    if not _is_str(v) or v.n == 2:
        return _fail(x, v.p, f"'{name}' is not a non-empty string")
    for i in range(1, v.n - 1):
        ch = <unsigned char>v.p[i]
        if ch < 0x21 or ch > 0x7E or ch == c'\\':
            return _fail(x, v.p + i, f"'{name}' is not a printable ASCII symbol")
    out.p = v.p + 1
    out.n = v.n - 2
    return 0


cdef inline void _clear(DepthMsg* out) noexcept nogil:
    out.kind = DEPTH_NONE
    out.layout = LAYOUT_PAIRS
    out.mixed_sides = False
    out.symbol.p = NULL
    out.symbol.n = 0
    out.bids.p = NULL
    out.bids.n = 0
    out.asks.p = NULL
    out.asks.n = 0
    out.first_id = NO_ID
    out.last_id = NO_ID
    out.prev_id = NO_ID
    out.exch_ts_ns = 0
    out.checksum = 0
    out.has_checksum = False


# --- RFC 3339 -------------------------------------------------------------------------------

cdef inline int _digits(const char* p, int k) noexcept nogil:
    """k ASCII digits -> value, -1 if any is not a digit."""
    cdef int v = 0
    cdef int i
    for i in range(k):
        if p[i] < c'0' or p[i] > c'9':
            return -1
        v = v * 10 + (p[i] - c'0')
    return v


cdef inline int64_t _days_from_civil(int64_t y, int64_t m, int64_t d) noexcept nogil:
    # Howard Hinnant's days_from_civil: days since 1970-01-01 of a proleptic Gregorian date.
    # Only called with y >= 1970, so every division below is of non-negative numbers.
    y -= m <= 2
    cdef int64_t era = y // 400
    cdef int64_t yoe = y - era * 400
    cdef int64_t doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    cdef int64_t doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


cdef bint rfc3339_to_ns(const char* p, Py_ssize_t n, int64_t* out) noexcept nogil:
    cdef int year, month, day, hour, minute, second, oh, om, dim
    cdef int64_t frac = 0
    cdef int64_t offset_s = 0
    cdef int64_t secs
    cdef int nd = 0
    cdef Py_ssize_t i = 19
    # "YYYY-MM-DDTHH:MM:SS" then the optional fraction and the mandatory offset.
    if n < 20 or p[4] != c'-' or p[7] != c'-' or p[13] != c':' or p[16] != c':':
        return False
    if p[10] != c'T' and p[10] != c't':
        return False
    year = _digits(p, 4)
    month = _digits(p + 5, 2)
    day = _digits(p + 8, 2)
    hour = _digits(p + 11, 2)
    minute = _digits(p + 14, 2)
    second = _digits(p + 17, 2)
    if p[i] == c'.':
        i += 1
        while i < n and c'0' <= p[i] <= c'9':
            if nd == 9:
                return False          # finer than 1 ns: not representable exactly
            frac = frac * 10 + (p[i] - c'0')
            nd += 1
            i += 1
        if nd == 0:
            return False
        while nd < 9:
            frac *= 10
            nd += 1
    if i < n and (p[i] == c'Z' or p[i] == c'z'):
        i += 1
    elif i + 6 <= n and (p[i] == c'+' or p[i] == c'-') and p[i + 3] == c':':
        oh = _digits(p + i + 1, 2)
        om = _digits(p + i + 4, 2)
        if oh < 0 or oh > 23 or om < 0 or om > 59:
            return False
        offset_s = (oh * 60 + om) * 60
        if p[i] == c'-':
            offset_s = -offset_s
        i += 6
    else:
        return False
    if i != n:
        return False
    # 2261 keeps every instant of the year (and any offset) inside int64 ns (April 2262).
    if year < 1970 or year > 2261 or month < 1 or month > 12 or day < 1:
        return False
    if hour < 0 or hour > 23 or minute < 0 or minute > 59 or second < 0 or second > 59:
        return False
    if month == 2:
        dim = 29 if (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)) else 28
    elif month == 4 or month == 6 or month == 9 or month == 11:
        dim = 30
    else:
        dim = 31
    if day > dim:
        return False
    secs = (_days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
            - offset_s)
    if secs < 0:
        return False
    out[0] = secs * 1000000000 + frac
    return True


# --- 1. Binance diff depth ------------------------------------------------------------------

cdef enum:
    BW_EVENT, BW_TIME, BW_SYMBOL, BW_FIRST, BW_LAST, BW_PREV, BW_BIDS, BW_ASKS, BW_DATA, BW_N


cdef int _binance_key(Span k) noexcept nogil:
    cdef char ch
    if k.n == 1:
        ch = k.p[0]
        if ch == c'e':
            return BW_EVENT
        if ch == c'E':
            return BW_TIME
        if ch == c's':
            return BW_SYMBOL
        if ch == c'U':
            return BW_FIRST
        if ch == c'u':
            return BW_LAST
        if ch == c'b':
            return BW_BIDS
        if ch == c'a':
            return BW_ASKS
        return -1
    if k.n == 2 and k.p[0] == c'p' and k.p[1] == c'u':
        return BW_PREV
    if span_eq(k, b"data", 4):
        return BW_DATA
    return -1


cdef int parse_binance_depth(const char* p, Py_ssize_t n, DepthMsg* out) except -1:
    # Raw `{"e":"depthUpdate",...}` or the combined-stream `{"stream":..,"data":{...}}`: a
    # top-level "data" makes it an envelope and the event is read from it. The discriminator
    # is the event's "e", not the stream name: it is what the venue says the payload is, and
    # it also holds for raw streams. Spot bookTicker has no "e" at all: DEPTH_NONE.
    cdef Ctx x
    cdef Span top[BW_N]
    cdef Span inner[BW_N]
    cdef Nest nests[BW_N]
    cdef Span* v = top
    cdef const char* end = p + n
    x.base = p
    x.n = n
    x.what = b"binance depth"
    _clear(out)
    memset(nests, 0, sizeof(nests))
    _nest_object(&nests[BW_DATA], _binance_key, inner, BW_N)
    _scan_frame(&x, p, n, _binance_key, top, BW_N, nests)
    if top[BW_DATA].p != NULL:
        _need_object(&x, top[BW_DATA], end, "data")
        end = top[BW_DATA].p + top[BW_DATA].n - 1
        v = inner
    if not _str_is(v[BW_EVENT], b"depthUpdate", 11):
        return _not_book(&x, v[BW_EVENT])
    _need_symbol(&x, v[BW_SYMBOL], end, "s", &out.symbol)
    _need_int(&x, v[BW_FIRST], end, "U", &out.first_id)
    _need_int(&x, v[BW_LAST], end, "u", &out.last_id)
    _opt_int(&x, v[BW_PREV], "pu", &out.prev_id)      # futures only; spot has none
    _opt_ms(&x, v[BW_TIME], "E", &out.exch_ts_ns)
    _need_array(&x, v[BW_BIDS], end, "b", &out.bids)
    _need_array(&x, v[BW_ASKS], end, "a", &out.asks)
    out.kind = DEPTH_UPDATE
    return 0


# --- 2. Binance REST depth snapshot ---------------------------------------------------------

cdef enum:
    BR_ID, BR_TIME, BR_BIDS, BR_ASKS, BR_CODE, BR_MSG, BR_N


cdef int _binance_rest_key(Span k) noexcept nogil:
    if span_eq(k, b"lastUpdateId", 12):
        return BR_ID
    if span_eq(k, b"E", 1):
        return BR_TIME
    if span_eq(k, b"bids", 4):
        return BR_BIDS
    if span_eq(k, b"asks", 4):
        return BR_ASKS
    if span_eq(k, b"code", 4):
        return BR_CODE
    if span_eq(k, b"msg", 3):
        return BR_MSG
    return -1


cdef int parse_binance_snapshot(const char* p, Py_ssize_t n, DepthMsg* out) except -1:
    # The body names no symbol: the caller knows what it asked for (symbol span stays NULL).
    # Spot bodies have no "E"/"T": exch_ts_ns stays 0. An error body {"code":..,"msg":..}
    # is a FrameError that quotes both, since the caller asked for a snapshot.
    cdef Ctx x
    cdef Span v[BR_N]
    cdef const char* end = p + n
    x.base = p
    x.n = n
    x.what = b"binance depth snapshot"
    _clear(out)
    _scan_frame(&x, p, n, _binance_rest_key, v, BR_N)
    if v[BR_ID].p == NULL and v[BR_CODE].p != NULL:
        msg = _quote(v[BR_MSG]) if v[BR_MSG].p != NULL else "(none)"
        return _fail(&x, v[BR_CODE].p, f"error reply code {_quote(v[BR_CODE])}, msg {msg}")
    _need_int(&x, v[BR_ID], end, "lastUpdateId", &out.last_id)
    _opt_ms(&x, v[BR_TIME], "E", &out.exch_ts_ns)
    _need_array(&x, v[BR_BIDS], end, "bids", &out.bids)
    _need_array(&x, v[BR_ASKS], end, "asks", &out.asks)
    out.kind = DEPTH_SNAPSHOT
    return 0


# --- 3. OKX v5 books channels ---------------------------------------------------------------

cdef enum:
    OK_ARG, OK_ACTION, OK_DATA, OK_EVENT, OK_N

cdef enum:
    OA_CHANNEL, OA_INST, OA_N

cdef enum:
    OD_ASKS, OD_BIDS, OD_TS, OD_CHECKSUM, OD_PREV, OD_SEQ, OD_N


cdef int _okx_key(Span k) noexcept nogil:
    if span_eq(k, b"arg", 3):
        return OK_ARG
    if span_eq(k, b"action", 6):
        return OK_ACTION
    if span_eq(k, b"data", 4):
        return OK_DATA
    if span_eq(k, b"event", 5):
        return OK_EVENT
    return -1


cdef int _okx_arg_key(Span k) noexcept nogil:
    if span_eq(k, b"channel", 7):
        return OA_CHANNEL
    if span_eq(k, b"instId", 6):
        return OA_INST
    return -1


cdef int _okx_data_key(Span k) noexcept nogil:
    if span_eq(k, b"asks", 4):
        return OD_ASKS
    if span_eq(k, b"bids", 4):
        return OD_BIDS
    if span_eq(k, b"ts", 2):
        return OD_TS
    if span_eq(k, b"checksum", 8):
        return OD_CHECKSUM
    if span_eq(k, b"prevSeqId", 9):
        return OD_PREV
    if span_eq(k, b"seqId", 5):
        return OD_SEQ
    return -1


cdef inline bint _is_pong(const char* p, Py_ssize_t n) noexcept nogil:
    # OKX answers the text "ping" with the bare text "pong" (not JSON).
    cdef const char* end = p + n
    p = _ws(p, end)
    if end - p < 4 or memcmp(p, b"pong", 4) != 0:
        return False
    return _ws(p + 4, end) == end


cdef int parse_okx_books(const char* p, Py_ssize_t n, DepthMsg* out) except -1:
    # DEPTH_NONE: the text "pong", any {"event":...} (subscribe, error, ...), frames without
    # "arg" and channels other than the five book channels. books5 and bbo-tbt send no
    # "action": each push is a whole (5- or 1-level) book, so a snapshot. seqId/prevSeqId are
    # optional (the 2022 recording predates them). The checksum is reported as sent, 0 too
    # (OKX sends 0 from June 2026): deciding what 0 means is the sync layer's job.
    cdef Ctx x
    cdef Span v[OK_N]
    cdef Span a[OA_N]
    cdef Span d[OD_N]
    cdef Nest nests[OK_N]
    cdef Span ch
    cdef const char* end = p + n
    cdef bint snapshot_only
    x.base = p
    x.n = n
    x.what = b"okx books"
    _clear(out)
    if _is_pong(p, n):
        return 0
    memset(nests, 0, sizeof(nests))
    _nest_object(&nests[OK_ARG], _okx_arg_key, a, OA_N)
    _nest_array(&nests[OK_DATA], _okx_data_key, d, OD_N, 1)
    _scan_frame(&x, p, n, _okx_key, v, OK_N, nests)
    if v[OK_EVENT].p != NULL or v[OK_ARG].p == NULL:
        return 0
    _need_object(&x, v[OK_ARG], end, "arg")
    ch = a[OA_CHANNEL]
    if (_str_is(ch, b"books", 5) or _str_is(ch, b"books-l2-tbt", 12)
            or _str_is(ch, b"books50-l2-tbt", 14)):
        snapshot_only = False
    elif _str_is(ch, b"books5", 6) or _str_is(ch, b"bbo-tbt", 7):
        snapshot_only = True
    else:
        return _not_book(&x, ch)
    _need_symbol(&x, a[OA_INST], v[OK_ARG].p + v[OK_ARG].n - 1, "instId", &out.symbol)
    if v[OK_ACTION].p == NULL:
        if not snapshot_only:
            return _fail(&x, end, "missing 'action'")
        out.kind = DEPTH_SNAPSHOT
    elif _str_is(v[OK_ACTION], b"snapshot", 8):
        out.kind = DEPTH_SNAPSHOT
    elif _str_is(v[OK_ACTION], b"update", 6):
        out.kind = DEPTH_UPDATE
    else:
        return _fail(&x, v[OK_ACTION].p, f"unknown 'action' {_quote(v[OK_ACTION])}")
    _need_single(&x, v[OK_DATA], &nests[OK_DATA], end, "data")
    end = v[OK_DATA].p + v[OK_DATA].n - 1
    _need_array(&x, d[OD_ASKS], end, "asks", &out.asks)
    _need_array(&x, d[OD_BIDS], end, "bids", &out.bids)
    _opt_ms(&x, d[OD_TS], "ts", &out.exch_ts_ns)
    _opt_checksum(&x, d[OD_CHECKSUM], -2147483648, 2147483647, out)   # signed CRC-32
    _opt_int(&x, d[OD_SEQ], "seqId", &out.last_id)
    _opt_int(&x, d[OD_PREV], "prevSeqId", &out.prev_id)
    return 0


# --- 4. Bybit v5 orderbook stream and REST snapshot -----------------------------------------

cdef enum:
    YW_TOPIC, YW_TYPE, YW_TS, YW_DATA, YW_N

cdef enum:
    YR_CODE, YR_MSG, YR_RESULT, YR_N

cdef enum:  # the book object: WS `data` and REST `result` share their keys
    YB_SYMBOL, YB_BIDS, YB_ASKS, YB_ID, YB_TS, YB_N


cdef int _bybit_key(Span k) noexcept nogil:
    if span_eq(k, b"topic", 5):
        return YW_TOPIC
    if span_eq(k, b"type", 4):
        return YW_TYPE
    if span_eq(k, b"ts", 2):
        return YW_TS
    if span_eq(k, b"data", 4):
        return YW_DATA
    return -1


cdef int _bybit_rest_key(Span k) noexcept nogil:
    if span_eq(k, b"retCode", 7):
        return YR_CODE
    if span_eq(k, b"retMsg", 6):
        return YR_MSG
    if span_eq(k, b"result", 6):
        return YR_RESULT
    return -1


cdef int _bybit_book_key(Span k) noexcept nogil:
    if k.n == 1:
        if k.p[0] == c's':
            return YB_SYMBOL
        if k.p[0] == c'b':
            return YB_BIDS
        if k.p[0] == c'a':
            return YB_ASKS
        if k.p[0] == c'u':
            return YB_ID
        return -1
    if span_eq(k, b"ts", 2):
        return YB_TS
    return -1


cdef int _bybit_book(Ctx* x, Span obj, Span* b, bint rest, DepthMsg* out) except -1:
    cdef const char* end = obj.p + obj.n - 1
    _need_symbol(x, b[YB_SYMBOL], end, "s", &out.symbol)
    _need_int(x, b[YB_ID], end, "u", &out.last_id)
    _need_array(x, b[YB_BIDS], end, "b", &out.bids)
    _need_array(x, b[YB_ASKS], end, "a", &out.asks)
    if rest:
        _opt_ms(x, b[YB_TS], "ts", &out.exch_ts_ns)
    return 0


cdef int parse_bybit_orderbook(const char* p, Py_ssize_t n, DepthMsg* out) except -1:
    # DEPTH_NONE: frames without "topic" (op replies, pong) and topics other than
    # "orderbook.*". "u" is reported as sent, including u = 1 (a service restart: Bybit says
    # to overwrite the book) and the repeated u of depth-1 snapshots; "seq" (the cross
    # sequence) has no slot in DepthMsg and is not read. exch_ts_ns is the envelope's "ts".
    cdef Ctx x
    cdef Span v[YW_N]
    cdef Span b[YB_N]
    cdef Nest nests[YW_N]
    cdef const char* end = p + n
    x.base = p
    x.n = n
    x.what = b"bybit orderbook"
    _clear(out)
    memset(nests, 0, sizeof(nests))
    _nest_object(&nests[YW_DATA], _bybit_book_key, b, YB_N)
    _scan_frame(&x, p, n, _bybit_key, v, YW_N, nests)
    if v[YW_TOPIC].p == NULL:
        return 0
    if not (_is_str(v[YW_TOPIC]) and v[YW_TOPIC].n >= 12
            and memcmp(v[YW_TOPIC].p + 1, b"orderbook.", 10) == 0):
        return _not_book(&x, v[YW_TOPIC])
    if _str_is(v[YW_TYPE], b"snapshot", 8):
        out.kind = DEPTH_SNAPSHOT
    elif _str_is(v[YW_TYPE], b"delta", 5):
        out.kind = DEPTH_UPDATE
    elif v[YW_TYPE].p == NULL:
        return _fail(&x, end, "missing 'type'")
    else:
        return _fail(&x, v[YW_TYPE].p, f"unknown 'type' {_quote(v[YW_TYPE])}")
    _need_object(&x, v[YW_DATA], end, "data")
    _bybit_book(&x, v[YW_DATA], b, False, out)
    _opt_ms(&x, v[YW_TS], "ts", &out.exch_ts_ns)
    return 0


cdef int parse_bybit_snapshot(const char* p, Py_ssize_t n, DepthMsg* out) except -1:
    # REST /v5/market/orderbook: retCode != 0 is a FrameError naming retCode and retMsg.
    # The result carries its own "s" and "ts", reported like the stream's.
    cdef Ctx x
    cdef Span v[YR_N]
    cdef Span b[YB_N]
    cdef Nest nests[YR_N]
    cdef int64_t code = 0
    cdef const char* end = p + n
    x.base = p
    x.n = n
    x.what = b"bybit orderbook snapshot"
    _clear(out)
    memset(nests, 0, sizeof(nests))
    _nest_object(&nests[YR_RESULT], _bybit_book_key, b, YB_N)
    _scan_frame(&x, p, n, _bybit_rest_key, v, YR_N, nests)
    _need_int(&x, v[YR_CODE], end, "retCode", &code)
    if code != 0:
        msg = _quote(v[YR_MSG]) if v[YR_MSG].p != NULL else "(none)"
        return _fail(&x, v[YR_CODE].p, f"error reply retCode {code}, retMsg {msg}")
    _need_object(&x, v[YR_RESULT], end, "result")
    _bybit_book(&x, v[YR_RESULT], b, True, out)
    out.kind = DEPTH_SNAPSHOT
    return 0


# --- 5. Coinbase Advanced Trade level2 ------------------------------------------------------

cdef enum:
    CB_CHANNEL, CB_TS, CB_SEQ, CB_EVENTS, CB_N

cdef enum:
    CE_TYPE, CE_PRODUCT, CE_UPDATES, CE_N


cdef int _coinbase_key(Span k) noexcept nogil:
    if span_eq(k, b"channel", 7):
        return CB_CHANNEL
    if span_eq(k, b"timestamp", 9):
        return CB_TS
    if span_eq(k, b"sequence_num", 12):
        return CB_SEQ
    if span_eq(k, b"events", 6):
        return CB_EVENTS
    return -1


cdef int _coinbase_event_key(Span k) noexcept nogil:
    if span_eq(k, b"type", 4):
        return CE_TYPE
    if span_eq(k, b"product_id", 10):
        return CE_PRODUCT
    if span_eq(k, b"updates", 7):
        return CE_UPDATES
    return -1


cdef Py_ssize_t parse_coinbase_l2_events(const char* p, Py_ssize_t n, DepthMsg* out,
                                         Py_ssize_t cap) except -1:
    # sequence_num counts every message of the connection, whatever its channel, so it is
    # read from every frame that has it (DEPTH_NONE frames included): the sync layer needs
    # all of them to see a gap. The envelope's "timestamp" is the event time; the per-level
    # event_time fields are left to the level parser (which skips them). The events are
    # walked in place during the frame scan (their fields into `e`), and interpreted once the
    # channel is known: a heartbeat may carry any number of events, an l2_data frame at most
    # `cap`.
    cdef Ctx x
    cdef Span v[CB_N]
    cdef Span e[COINBASE_MAX_EVENTS * CE_N]
    cdef Nest nests[CB_N]
    cdef Span* f
    cdef const char* end = p + n
    cdef int64_t seq = NO_ID
    cdef int64_t ts = 0
    cdef Py_ssize_t k
    cdef DepthMsg* m
    x.base = p
    x.n = n
    x.what = b"coinbase level2"
    if cap < 1:
        raise ValueError("cap must be >= 1")
    if cap > COINBASE_MAX_EVENTS:
        cap = COINBASE_MAX_EVENTS
    _clear(out)
    memset(nests, 0, sizeof(nests))
    _nest_array(&nests[CB_EVENTS], _coinbase_event_key, e, CE_N, cap)
    _scan_frame(&x, p, n, _coinbase_key, v, CB_N, nests)
    _opt_int(&x, v[CB_SEQ], "sequence_num", &seq)
    if not _str_is(v[CB_CHANNEL], b"l2_data", 7):
        _not_book(&x, v[CB_CHANNEL])
        out.last_id = seq
        return 0
    if seq == NO_ID:
        return _fail(&x, end, "missing 'sequence_num'")
    _opt_rfc3339(&x, v[CB_TS], "timestamp", &ts)
    _need_array(&x, v[CB_EVENTS], end, "events", &v[CB_EVENTS])
    end = v[CB_EVENTS].p
    if not nests[CB_EVENTS].all_objects:
        return _fail(&x, end, "'events' entry is not an object")
    if nests[CB_EVENTS].count > cap:
        if cap == 1:
            return _fail(&x, end, "more than one book event in a frame "
                         "(parse_coinbase_l2_events reads them all)")
        return _fail(&x, end, f"more than {cap} book events in a frame")
    for k in range(nests[CB_EVENTS].count):
        f = e + k * CE_N
        m = &out[k]
        _clear(m)
        if _str_is(f[CE_TYPE], b"snapshot", 8):
            m.kind = DEPTH_SNAPSHOT
        elif _str_is(f[CE_TYPE], b"update", 6):
            m.kind = DEPTH_UPDATE
        elif f[CE_TYPE].p == NULL:
            return _fail(&x, end, f"event {k}: missing 'type'")
        else:
            return _fail(&x, f[CE_TYPE].p, f"event {k}: unknown 'type' {_quote(f[CE_TYPE])}")
        _need_symbol(&x, f[CE_PRODUCT], end, "product_id", &m.symbol)
        _need_array(&x, f[CE_UPDATES], end, "updates", &m.bids)
        m.layout = LAYOUT_COINBASE
        m.mixed_sides = True
        m.last_id = seq
        m.exch_ts_ns = ts
    if nests[CB_EVENTS].count == 0:
        out.last_id = seq       # an l2_data frame without events: nothing to apply
    return nests[CB_EVENTS].count


cdef int parse_coinbase_l2(const char* p, Py_ssize_t n, DepthMsg* out) except -1:
    parse_coinbase_l2_events(p, n, out, 1)
    return 0


# --- 6. Kraken WebSocket v2 book ------------------------------------------------------------

cdef enum:
    KR_CHANNEL, KR_TYPE, KR_DATA, KR_N

cdef enum:
    KD_SYMBOL, KD_BIDS, KD_ASKS, KD_CHECKSUM, KD_TS, KD_N


cdef int _kraken_key(Span k) noexcept nogil:
    if span_eq(k, b"channel", 7):
        return KR_CHANNEL
    if span_eq(k, b"type", 4):
        return KR_TYPE
    if span_eq(k, b"data", 4):
        return KR_DATA
    return -1


cdef int _kraken_data_key(Span k) noexcept nogil:
    if span_eq(k, b"symbol", 6):
        return KD_SYMBOL
    if span_eq(k, b"bids", 4):
        return KD_BIDS
    if span_eq(k, b"asks", 4):
        return KD_ASKS
    if span_eq(k, b"checksum", 8):
        return KD_CHECKSUM
    if span_eq(k, b"timestamp", 9):
        return KD_TS
    return -1


cdef int parse_kraken_book(const char* p, Py_ssize_t n, DepthMsg* out) except -1:
    # DEPTH_NONE: channels other than "book" (heartbeat, status, ...) and frames without a
    # channel (method responses: subscribe acks, pong). The checksum is the unsigned CRC-32;
    # snapshots may have no timestamp (exch_ts_ns 0).
    cdef Ctx x
    cdef Span v[KR_N]
    cdef Span d[KD_N]
    cdef Nest nests[KR_N]
    cdef const char* end = p + n
    x.base = p
    x.n = n
    x.what = b"kraken book"
    _clear(out)
    memset(nests, 0, sizeof(nests))
    _nest_array(&nests[KR_DATA], _kraken_data_key, d, KD_N, 1)
    _scan_frame(&x, p, n, _kraken_key, v, KR_N, nests)
    if not _str_is(v[KR_CHANNEL], b"book", 4):
        return _not_book(&x, v[KR_CHANNEL])
    if _str_is(v[KR_TYPE], b"snapshot", 8):
        out.kind = DEPTH_SNAPSHOT
    elif _str_is(v[KR_TYPE], b"update", 6):
        out.kind = DEPTH_UPDATE
    elif v[KR_TYPE].p == NULL:
        return _fail(&x, end, "missing 'type'")
    else:
        return _fail(&x, v[KR_TYPE].p, f"unknown 'type' {_quote(v[KR_TYPE])}")
    _need_single(&x, v[KR_DATA], &nests[KR_DATA], end, "data")
    end = v[KR_DATA].p + v[KR_DATA].n - 1
    _need_symbol(&x, d[KD_SYMBOL], end, "symbol", &out.symbol)
    _need_array(&x, d[KD_BIDS], end, "bids", &out.bids)
    _need_array(&x, d[KD_ASKS], end, "asks", &out.asks)
    _opt_checksum(&x, d[KD_CHECKSUM], 0, 4294967295, out)
    _opt_rfc3339(&x, d[KD_TS], "timestamp", &out.exch_ts_ns)
    out.layout = LAYOUT_KRAKEN2
    return 0


# --- dispatch -------------------------------------------------------------------------------

cdef int parse_depth_frame(int family, const char* p, Py_ssize_t n, DepthMsg* out) except -1:
    if family == FAMILY_BINANCE_DEPTH:
        return parse_binance_depth(p, n, out)
    if family == FAMILY_OKX_BOOKS:
        return parse_okx_books(p, n, out)
    if family == FAMILY_BYBIT_ORDERBOOK:
        return parse_bybit_orderbook(p, n, out)
    if family == FAMILY_COINBASE_L2:
        return parse_coinbase_l2(p, n, out)
    if family == FAMILY_KRAKEN_BOOK:
        return parse_kraken_book(p, n, out)
    if family == FAMILY_BINANCE_SNAPSHOT:
        return parse_binance_snapshot(p, n, out)
    if family == FAMILY_BYBIT_SNAPSHOT:
        return parse_bybit_snapshot(p, n, out)
    raise FrameError(f"unknown frame family {family}")


# --- Python API (tests and tools; allocates) ------------------------------------------------

cdef int _family(str venue) except -1:
    try:
        return VENUES.index(venue)
    except ValueError:
        raise ValueError(f"unknown venue {venue!r}; expected one of {', '.join(VENUES)}") from None


cdef object _bytes_or_none(Span s):
    return None if s.p == NULL else PyBytes_FromStringAndSize(s.p, s.n)


cdef object _id_or_none(int64_t v):
    return None if v == NO_ID else v


cdef class FrameHeader:
    """A DepthMsg copied into Python objects: spans as bytes (None when absent), ids as int
    (None for NO_ID), checksum as int (None unless has_checksum)."""

    cdef readonly int kind
    cdef readonly int layout
    cdef readonly bint mixed_sides
    cdef readonly object symbol
    cdef readonly object bids
    cdef readonly object asks
    cdef readonly object first_id
    cdef readonly object last_id
    cdef readonly object prev_id
    cdef readonly int64_t exch_ts_ns
    cdef readonly bint has_checksum
    cdef readonly object checksum

    def as_dict(self):
        return {
            "kind": self.kind,
            "layout": self.layout,
            "mixed_sides": self.mixed_sides,
            "symbol": self.symbol,
            "bids": self.bids,
            "asks": self.asks,
            "first_id": self.first_id,
            "last_id": self.last_id,
            "prev_id": self.prev_id,
            "exch_ts_ns": self.exch_ts_ns,
            "has_checksum": self.has_checksum,
            "checksum": self.checksum,
        }

    def __eq__(self, other):
        if not isinstance(other, FrameHeader):
            return NotImplemented
        return self.as_dict() == (<FrameHeader>other).as_dict()

    __hash__ = None

    def __repr__(self):
        fields = [f"{k}={v!r}" for k, v in self.as_dict().items()]
        return f"FrameHeader({', '.join(fields)})"


cdef FrameHeader _header(DepthMsg* m):
    cdef FrameHeader h = FrameHeader.__new__(FrameHeader)
    h.kind = m.kind
    h.layout = m.layout
    h.mixed_sides = m.mixed_sides
    h.symbol = _bytes_or_none(m.symbol)
    h.bids = _bytes_or_none(m.bids)
    h.asks = _bytes_or_none(m.asks)
    h.first_id = _id_or_none(m.first_id)
    h.last_id = _id_or_none(m.last_id)
    h.prev_id = _id_or_none(m.prev_id)
    h.exch_ts_ns = m.exch_ts_ns
    h.has_checksum = m.has_checksum
    h.checksum = m.checksum if m.has_checksum else None
    return h


def parse_frame(str venue not None, bytes frame not None):
    """Parse one frame's header with ``venue``'s parser (one of VENUES)."""
    cdef DepthMsg m
    parse_depth_frame(_family(venue), frame, len(frame), &m)
    return _header(&m)


def parse_frame_events(str venue not None, bytes frame not None):
    """Every book message of a frame: Coinbase frames may carry several events (one header
    each, at least one: a DEPTH_NONE header when there are none); other venues give one."""
    cdef DepthMsg ms[COINBASE_MAX_EVENTS]
    cdef Py_ssize_t k, i
    cdef int family = _family(venue)
    if family != FAMILY_COINBASE_L2:
        parse_depth_frame(family, frame, len(frame), &ms[0])
        return [_header(&ms[0])]
    k = parse_coinbase_l2_events(frame, len(frame), ms, COINBASE_MAX_EVENTS)
    headers = []
    for i in range(k if k > 0 else 1):
        headers.append(_header(&ms[i]))
    return headers


def frame_levels(str venue not None, bytes frame not None, Grid price not None,
                 Grid size not None):
    """Header plus levels: the spans parsed in place by parse_levels with the given grids.
    Returns (header, [(side, price_units, size_units), ...]) with bids before asks."""
    cdef DepthMsg m
    cdef LevelBuffer buf = LevelBuffer()
    parse_depth_frame(_family(venue), frame, len(frame), &m)
    parse_levels(m.bids, m.layout, BID, price, size, buf)
    if not m.mixed_sides:
        parse_levels(m.asks, m.layout, ASK, price, size, buf)
    return _header(&m), buf.levels()


def rfc3339_ns(text):
    """RFC 3339 UTC text (str or bytes) -> int ns since the epoch; ValueError otherwise."""
    cdef bytes raw = text.encode("ascii", "replace") if isinstance(text, str) else bytes(text)
    cdef int64_t ns = 0
    if not rfc3339_to_ns(raw, len(raw), &ns):
        raise ValueError(f"not an RFC 3339 UTC timestamp in range: {text!r}")
    return ns


# --- compiled driver: frame -> header -> levels -> book -------------------------------------

cdef inline int64_t _now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


cdef class DepthPipeline:
    """One instrument's frames straight into a Book, all compiled: header parse, level parse
    with the instrument's grids into a reused LevelBuffer, one apply_levels call, end_message.

    A driver for benchmarks, tests and tools. It applies every book message it is given and
    checks no sequence: sync (gaps, snapshot bridging, checksums) is the sync layer's job.
    Frames for another symbol (when ``symbol`` is set) and non-book frames are ignored. A
    snapshot clears the book first; if one of its levels is bad the error propagates and the
    book is left cleared. Binance and Bybit also take their REST snapshot body (on_rest).
    """

    cdef readonly Book book
    cdef readonly Grid price
    cdef readonly Grid size
    cdef readonly str venue
    cdef readonly object symbol
    cdef readonly uint64_t applied
    cdef readonly uint64_t ignored
    cdef LevelBuffer levels
    cdef int family
    cdef int rest_family             # -1: the venue has no REST snapshot parser
    cdef DepthMsg msg

    def __init__(self, str venue not None, Grid price not None, Grid size not None,
                 bytes symbol=None, Py_ssize_t max_depth=0):
        self.family = _family(venue)
        self.rest_family = (FAMILY_BINANCE_SNAPSHOT if self.family == FAMILY_BINANCE_DEPTH
                            else FAMILY_BYBIT_SNAPSHOT if self.family == FAMILY_BYBIT_ORDERBOOK
                            else -1)
        self.venue = venue
        self.price = price
        self.size = size
        self.symbol = symbol
        self.book = Book(max_depth, f"{venue}:{'' if symbol is None else symbol.decode()}")
        self.levels = LevelBuffer()

    cdef int _apply(self, int family, const char* p, Py_ssize_t n,
                    int64_t recv_ts_ns) except -1:
        cdef DepthMsg* m = &self.msg
        cdef bytes want
        parse_depth_frame(family, p, n, m)
        if m.kind == DEPTH_NONE:
            self.ignored += 1
            return DEPTH_NONE
        if self.symbol is not None and m.symbol.p != NULL:
            want = <bytes>self.symbol
            if m.symbol.n != len(want) or memcmp(m.symbol.p, <const char*>want, m.symbol.n):
                self.ignored += 1
                return DEPTH_NONE
        self.levels.clear()
        parse_levels(m.bids, m.layout, BID, self.price, self.size, self.levels)
        if not m.mixed_sides:
            parse_levels(m.asks, m.layout, ASK, self.price, self.size, self.levels)
        if m.kind == DEPTH_SNAPSHOT:
            self.book.reset()
        self.book.apply_levels(self.levels.data, self.levels.n)
        # Book.seq uses -1 for "none"; NO_ID would read as a huge negative id.
        self.book.end_message(-1 if m.last_id == NO_ID else m.last_id, m.exch_ts_ns,
                              recv_ts_ns)
        self.applied += 1
        return m.kind

    cpdef int on_frame(self, bytes frame, int64_t recv_ts_ns=0) except -1:
        """Apply one frame; returns its DepthKind (DEPTH_NONE when ignored)."""
        if frame is None:
            raise TypeError("frame must be bytes, not None")
        return self._apply(self.family, frame, len(frame), recv_ts_ns)

    cpdef int on_rest(self, bytes body, int64_t recv_ts_ns=0) except -1:
        """Apply a REST snapshot body (Binance, Bybit); returns DEPTH_SNAPSHOT."""
        if body is None:
            raise TypeError("body must be bytes, not None")
        if self.rest_family < 0:
            raise ValueError(f"{self.venue} has no REST snapshot parser")
        return self._apply(self.rest_family, body, len(body), recv_ts_ns)

    def run(self, list frames not None, int64_t[::1] ns_out=None):
        """Apply every frame and read the best bid and ask after each, in one compiled loop.

        With ``ns_out`` (one slot per frame), each frame's time from the raw bytes to the
        best bid/ask read is stored there (CLOCK_MONOTONIC, ns). Returns a fold of every best
        bid/ask (price, size) read, so that two runs can be compared and the reads are not
        optimised away.
        """
        cdef Py_ssize_t i, n = len(frames)
        cdef bytes frame
        cdef int64_t t0, bp = 0, bs = 0, ap = 0, as_ = 0
        cdef uint64_t fold = 0xcbf29ce484222325ULL
        cdef bint timed = ns_out is not None
        if timed and ns_out.shape[0] < n:
            raise ValueError(f"ns_out has {ns_out.shape[0]} slots for {n} frames")
        for i in range(n):
            frame = <bytes?>frames[i]
            t0 = _now_ns() if timed else 0
            self._apply(self.family, frame, len(frame), 0)
            if not self.book.best(BID, &bp, &bs):
                bp = bs = 0
            if not self.book.best(ASK, &ap, &as_):
                ap = as_ = 0
            if timed:
                ns_out[i] = _now_ns() - t0
            fold = (fold ^ <uint64_t>bp ^ (<uint64_t>ap << 1)) * 0x100000001b3ULL
            fold = (fold ^ <uint64_t>bs ^ (<uint64_t>as_ << 1)) * 0x100000001b3ULL
        return fold


def time_headers(str venue not None, list frames not None, int64_t[::1] ns_out not None):
    """Header parse alone, in a compiled loop (benchmarks): each frame's parse time in ns goes
    to ns_out (CLOCK_MONOTONIC, timer cost included). Returns the number of book messages."""
    cdef int family = _family(venue)
    cdef Py_ssize_t i, n = len(frames), books = 0
    cdef bytes frame
    cdef int64_t t0
    cdef DepthMsg m
    if ns_out.shape[0] < n:
        raise ValueError(f"ns_out has {ns_out.shape[0]} slots for {n} frames")
    for i in range(n):
        frame = <bytes?>frames[i]
        t0 = _now_ns()
        parse_depth_frame(family, frame, len(frame), &m)
        ns_out[i] = _now_ns() - t0
        books += m.kind != DEPTH_NONE
    return books
