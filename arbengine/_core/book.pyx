# cython: language_level=3
"""Compiled L2 order book on integer ticks and lots.

See book.pxd for the layout. The cdef API (set_level / apply_levels / end_message, and the
inline reads) is what feed parsers and the spread calculator call; the Python API wraps it
with validation for tests, tools and slow paths.
"""

from cpython.mem cimport PyMem_Calloc, PyMem_Free, PyMem_Malloc
from libc.stdint cimport INT64_MIN, int64_t, uint64_t
from libc.string cimport memcpy, memmove, memset

from arbengine._core.errors import BookError
from arbengine._core.ints cimport as_int64

cdef enum:
    _MIN_CAPACITY = 64
    # Levels of one message whose previous sizes are remembered so that a bad level can be
    # rolled back; longer messages are validated in a separate pass first.
    _UNDO = 64

cdef extern from *:
    int __builtin_ctzll(unsigned long long) nogil

cdef uint64_t _FNV_OFFSET = 0xcbf29ce484222325ULL
cdef uint64_t _FNV_PRIME = 0x100000001b3ULL


cdef int _side_init(BookSide* s, Py_ssize_t cap, int64_t sign) except -1:
    s.sizes = <int64_t*>PyMem_Calloc(WINDOW, sizeof(int64_t))
    s.bits = <uint64_t*>PyMem_Calloc(WINDOW_WORDS, sizeof(uint64_t))
    s.buf = <Level*>PyMem_Malloc(cap * sizeof(Level))
    if s.sizes == NULL or s.bits == NULL or s.buf == NULL:
        raise MemoryError()
    s.cap = cap
    s.sign = sign
    _side_clear(s)
    return 0


cdef void _side_free(BookSide* s) noexcept:
    PyMem_Free(s.sizes)
    PyMem_Free(s.bits)
    PyMem_Free(s.buf)
    s.sizes = NULL
    s.bits = NULL
    s.buf = NULL


cdef void _side_clear(BookSide* s) noexcept nogil:
    memset(s.sizes, 0, WINDOW * sizeof(int64_t))
    memset(s.bits, 0, WINDOW_WORDS * sizeof(uint64_t))
    s.summary = 0
    s.count = 0
    s.base = 0
    s.top = 0
    s.lo = s.cap // 2
    s.hi = s.lo


# --- the window: a ring of WINDOW slots with a two-level occupancy bitmap -------------------
#
# Offsets are relative to ``base`` (0 .. WINDOW-1), slots are positions in the ring. Working in
# offsets keeps all arithmetic inside int64 even for keys at the ends of the range.

cdef inline Py_ssize_t _lo_bit(BookSide* s, Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """Lowest occupied slot in [a, b] (0 <= a <= b < WINDOW), or -1."""
    cdef Py_ssize_t wa = a >> 6
    cdef Py_ssize_t wb = b >> 6
    cdef uint64_t m = s.bits[wa] & (0xFFFFFFFFFFFFFFFFULL << (a & 63))
    cdef uint64_t between
    if wa == wb:
        m &= 0xFFFFFFFFFFFFFFFFULL >> (63 - (b & 63))
        return (wa << 6) + __builtin_ctzll(m) if m else -1
    if m:
        return (wa << 6) + __builtin_ctzll(m)
    between = s.summary & ((1ULL << wb) - 1) & ~((2ULL << wa) - 1)
    if between:
        wa = __builtin_ctzll(between)
        return (wa << 6) + __builtin_ctzll(s.bits[wa])
    m = s.bits[wb] & (0xFFFFFFFFFFFFFFFFULL >> (63 - (b & 63)))
    return (wb << 6) + __builtin_ctzll(m) if m else -1


cdef inline Py_ssize_t _lo_off(BookSide* s, Py_ssize_t oa, Py_ssize_t ob) noexcept nogil:
    """Lowest occupied offset in [oa, ob] (0 <= oa <= ob < WINDOW), or -1."""
    cdef Py_ssize_t r0 = _slot(s.base)
    cdef Py_ssize_t ra = (r0 + oa) & WINDOW_MASK
    cdef Py_ssize_t rb = (r0 + ob) & WINDOW_MASK
    cdef Py_ssize_t r
    if ra <= rb:
        r = _lo_bit(s, ra, rb)
    else:
        r = _lo_bit(s, ra, WINDOW_MASK)
        if r < 0:
            r = _lo_bit(s, 0, rb)
    return -1 if r < 0 else (r - r0) & WINDOW_MASK


cdef inline void _win_put(BookSide* s, int64_t key, int64_t size) noexcept nogil:
    """Store a level whose key is inside the window (size > 0)."""
    cdef Py_ssize_t r = _slot(key)
    if s.sizes[r] == 0:
        s.bits[r >> 6] |= 1ULL << (r & 63)
        s.summary |= 1ULL << (r >> 6)
        if s.count == 0 or key > s.top:
            s.top = key
        s.count += 1
    s.sizes[r] = size


cdef inline void _win_drop(BookSide* s, int64_t key) noexcept nogil:
    """Remove an occupied window level. The caller restores ``top`` if it was the best."""
    cdef Py_ssize_t r = _slot(key)
    cdef uint64_t w = s.bits[r >> 6] & ~(1ULL << (r & 63))
    s.sizes[r] = 0
    s.bits[r >> 6] = w
    if w == 0:
        s.summary &= ~(1ULL << (r >> 6))
    s.count -= 1


cdef inline int64_t _anchor_base(int64_t key) noexcept nogil:
    """Window base that puts ``key`` three quarters up: room above for new best levels."""
    if key < INT64_MIN + (WINDOW * 3) // 4:
        return INT64_MIN
    return key - (WINDOW * 3) // 4


cdef int _slide_up(BookSide* s, int64_t new_base) except -1:
    """Move the window up to ``new_base``: levels falling below it go to the overflow top."""
    cdef uint64_t span = <uint64_t>new_base - <uint64_t>s.base
    cdef Py_ssize_t limit = WINDOW - 1 if span >= WINDOW else <Py_ssize_t>span - 1
    cdef Py_ssize_t off = 0
    cdef int64_t key
    while s.count and off <= limit:
        off = _lo_off(s, off, limit)
        if off < 0:
            break
        key = <int64_t>(<uint64_t>s.base + <uint64_t>off)
        # Ascending keys, all above every overflow key: each lands on the overflow top.
        _insert(s, s.hi, key, s.sizes[_slot(key)])
        _win_drop(s, key)
        off += 1
    s.base = new_base
    return 0


cdef void _slide_down(BookSide* s, int64_t new_base) noexcept nogil:
    """Move the window down to ``new_base`` (every window key stays below new_base + WINDOW)
    and pull the overflow levels it now covers into the window."""
    cdef Level lv
    s.base = new_base
    while s.hi > s.lo and s.buf[s.hi - 1].key >= new_base:
        s.hi -= 1
        lv = s.buf[s.hi]
        _win_put(s, lv.key, lv.size)


cdef inline void _refill(BookSide* s) noexcept nogil:
    """The window just emptied: bring the overflow's best levels into it."""
    if s.hi > s.lo:
        _slide_down(s, _anchor_base(s.buf[s.hi - 1].key))


cdef void _top_removed(BookSide* s, int64_t key) noexcept nogil:
    """The best level was deleted: find the next one. Kept out of line (it scans the bitmap)
    so that _set stays small enough to inline into the apply loops."""
    cdef Py_ssize_t old = _slot(key)
    cdef uint64_t word
    cdef Py_ssize_t slot
    if s.count:
        word = _bits_below(s, old)
        slot = _next_down(s, old, &word)
        s.top = key - ((old - slot) & WINDOW_MASK)
    else:
        _refill(s)


cdef int64_t _set_outside(BookSide* s, int64_t key, int64_t size) except -1:
    """A level outside the window: a new best above it, or a level below it. Returns the
    level's previous size."""
    cdef Py_ssize_t i
    cdef int64_t new_base, prev
    if key >= s.base:
        # Above the window. Only a new best can be there; deleting it is a no-op.
        if size == 0:
            return 0
        new_base = _anchor_base(key)
        if s.count == 0:
            s.base = new_base
        else:
            _slide_up(s, new_base)
        _win_put(s, key, size)
        return 0
    if s.count == 0:
        # Empty side (the overflow is empty too): centre the window on the new level.
        if size:
            s.base = _anchor_base(key)
            _win_put(s, key, size)
        return 0
    new_base = _anchor_base(s.top)
    if new_base < s.base and key >= new_base:
        # The book moved down: slide the window so the level lands in the ladder.
        _slide_down(s, new_base)
        prev = s.sizes[_slot(key)]
        if size:
            _win_put(s, key, size)
        elif prev:
            _win_drop(s, key)
        return prev
    i = _find(s, key)
    if i >= s.lo and s.buf[i].key == key:
        prev = s.buf[i].size
        if size == 0:
            _delete(s, i)
        else:
            s.buf[i].size = size
        return prev
    if size:
        _insert(s, i + 1, key, size)
    return 0


cdef inline int64_t _set(BookSide* s, int64_t price, int64_t size) except -1:
    """Set one level (size 0 deletes); returns its previous size (0 when absent)."""
    cdef int64_t key = s.sign * price
    cdef Py_ssize_t r
    cdef int64_t prev
    if key < s.base or <uint64_t>key - <uint64_t>s.base >= WINDOW:
        return _set_outside(s, key, size)
    r = _slot(key)
    prev = s.sizes[r]
    if size:
        _win_put(s, key, size)
    elif prev:
        _win_drop(s, key)
        if key == s.top:
            _top_removed(s, key)
    # Deleting a level we never held (beyond snapshot depth) is normal: nothing to do.
    return prev


cdef void _truncate(BookSide* s, Py_ssize_t depth) noexcept nogil:
    """Keep the best ``depth`` levels of the side."""
    cdef Py_ssize_t off
    cdef int64_t key
    if s.count + (s.hi - s.lo) <= depth:
        return
    if s.count <= depth:
        s.lo = s.hi - (depth - s.count)
        return
    s.lo = s.hi
    while s.count > depth:
        off = _lo_off(s, 0, WINDOW_MASK)
        key = <int64_t>(<uint64_t>s.base + <uint64_t>off)
        _win_drop(s, key)


cdef int _side_make_room(BookSide* s) except -1:
    """Give both ends of the overflow array room: recentre in place, or double when half
    full."""
    cdef Py_ssize_t n = s.hi - s.lo
    cdef Py_ssize_t new_cap, new_lo
    cdef Level* new_buf
    if n * 2 >= s.cap:
        new_cap = s.cap * 2
        new_buf = <Level*>PyMem_Malloc(new_cap * sizeof(Level))
        if new_buf == NULL:
            raise MemoryError()
        new_lo = (new_cap - n) // 2
        memcpy(new_buf + new_lo, s.buf + s.lo, n * sizeof(Level))
        PyMem_Free(s.buf)
        s.buf = new_buf
        s.cap = new_cap
    else:
        new_lo = (s.cap - n) // 2
        memmove(s.buf + new_lo, s.buf + s.lo, n * sizeof(Level))
    s.lo = new_lo
    s.hi = new_lo + n
    return 0


cdef inline Py_ssize_t _find(BookSide* s, int64_t key) noexcept nogil:
    """Overflow index of the highest level whose key is <= ``key`` (lo - 1 if none).

    Keys are distinct integers (ticks), so a level ``d`` ticks below the top has at most
    ``d`` levels above it: the answer lies in the last ``d + 1`` slots. Near the top of book,
    where updates cluster, that window is a handful of slots, and a branch-free binary
    search over it costs a few cycles with no mispredicted branch.
    """
    cdef Py_ssize_t top = s.hi - 1
    cdef Py_ssize_t base, n, half
    cdef uint64_t d
    if top < s.lo or key < s.buf[s.lo].key:
        return s.lo - 1
    if key >= s.buf[top].key:
        return top
    # Both keys have the same sign on one side, so the difference cannot overflow.
    d = <uint64_t>(s.buf[top].key - key)
    if d < <uint64_t>(top - s.lo):
        base = top - <Py_ssize_t>d
    else:
        base = s.lo
    # Invariant: buf[base].key <= key; find the last such index in [base, top].
    n = top - base + 1
    while n > 1:
        half = n >> 1
        if s.buf[base + half].key <= key:
            base += half
        n -= half
    return base


cdef inline int _insert(BookSide* s, Py_ssize_t pos, int64_t key, int64_t size) except -1:
    """Insert before index ``pos`` (so it lands between pos - 1 and pos)."""
    cdef Py_ssize_t above = s.hi - pos
    cdef Py_ssize_t below = pos - s.lo
    cdef Py_ssize_t old_lo
    if (above <= below and s.hi == s.cap) or (above > below and s.lo == 0):
        old_lo = s.lo
        _side_make_room(s)
        pos += s.lo - old_lo
    if above <= below:
        if above:
            memmove(s.buf + pos + 1, s.buf + pos, above * sizeof(Level))
        s.hi += 1
    else:
        pos -= 1
        if below:
            memmove(s.buf + s.lo - 1, s.buf + s.lo, below * sizeof(Level))
        s.lo -= 1
    s.buf[pos].key = key
    s.buf[pos].size = size
    return 0


cdef inline void _delete(BookSide* s, Py_ssize_t i) noexcept nogil:
    cdef Py_ssize_t above = s.hi - 1 - i
    cdef Py_ssize_t below = i - s.lo
    if above <= below:
        if above:
            memmove(s.buf + i, s.buf + i + 1, above * sizeof(Level))
        s.hi -= 1
    else:
        if below:
            memmove(s.buf + s.lo + 1, s.buf + s.lo, below * sizeof(Level))
        s.lo += 1


cdef inline bint _bad_level(int64_t side, int64_t price, int64_t size) noexcept nogil:
    return <uint64_t>side > 1 or price <= 0 or size < 0


cdef int _raise_bad_level(int64_t side, int64_t price, int64_t size) except -1:
    if <uint64_t>side > 1:
        raise BookError(f"side must be BID (0) or ASK (1), got {side}")
    if price <= 0:
        raise BookError(f"price must be a positive tick count, got {price}")
    raise BookError(f"size must be a non-negative lot count, got {size}")


cdef class Book:
    """An L2 book for one instrument on one venue, in integer ticks and lots."""

    def __cinit__(self, Py_ssize_t max_depth=0, str name="", Py_ssize_t capacity=0):
        if max_depth < 0:
            raise BookError(f"max_depth must be >= 0, got {max_depth}")
        if capacity <= 0:
            capacity = max(_MIN_CAPACITY, 4 * max_depth)
        capacity = max(capacity, _MIN_CAPACITY)
        _side_init(&self.sides[BID], capacity, 1)
        _side_init(&self.sides[ASK], capacity, -1)
        self.max_depth = max_depth
        self.name = name
        self.reset()

    def __dealloc__(self):
        _side_free(&self.sides[BID])
        _side_free(&self.sides[ASK])

    # --- cdef API ---------------------------------------------------------------------

    cdef int set_level(self, int side, int64_t price, int64_t size) except -1:
        if _bad_level(side, price, size):
            return _raise_bad_level(side, price, size)
        _set(&self.sides[side], price, size)
        return 0

    cdef int apply_side(self, int side, const int64_t* prices, const int64_t* sizes,
                        Py_ssize_t n) except -1:
        cdef Py_ssize_t i
        cdef int64_t undo[_UNDO]
        cdef BookSide* s = &self.sides[side]
        if <uint64_t>side > 1:
            return _raise_bad_level(side, 1, 0)
        if n > _UNDO:
            for i in range(n):
                if _bad_level(side, prices[i], sizes[i]):
                    return _raise_bad_level(side, prices[i], sizes[i])
            for i in range(n):
                _set(s, prices[i], sizes[i])
            return 0
        for i in range(n):
            if _bad_level(side, prices[i], sizes[i]):
                # Put back what this message already changed: all or nothing.
                while i > 0:
                    i -= 1
                    _set(s, prices[i], undo[i])
                return _raise_bad_level(side, prices[i], sizes[i])
            undo[i] = _set(s, prices[i], sizes[i])
        return 0

    cdef int apply_levels(self, const LevelUpdate* ups, Py_ssize_t n) except -1:
        cdef Py_ssize_t i, k
        cdef int64_t undo[_UNDO]
        if n > _UNDO:
            # Too long to remember: validate everything first, then apply.
            for i in range(n):
                if _bad_level(ups[i].side, ups[i].price, ups[i].size):
                    return _raise_bad_level(ups[i].side, ups[i].price, ups[i].size)
            for i in range(n):
                _set(&self.sides[ups[i].side], ups[i].price, ups[i].size)
            return 0
        # One pass: each level's previous size goes to an undo log, so a bad level can put
        # back what this message already changed (all or nothing) without a second loop.
        for i in range(n):
            if _bad_level(ups[i].side, ups[i].price, ups[i].size):
                k = i
                while k > 0:
                    k -= 1
                    _set(&self.sides[ups[k].side], ups[k].price, undo[k])
                return _raise_bad_level(ups[i].side, ups[i].price, ups[i].size)
            undo[i] = _set(&self.sides[ups[i].side], ups[i].price, ups[i].size)
        return 0

    cdef bint end_message(self, int64_t seq, int64_t exch_ts_ns,
                          int64_t recv_ts_ns) noexcept:
        cdef BookSide* b = &self.sides[BID]
        cdef BookSide* a = &self.sides[ASK]
        self.seq = seq
        self.exch_ts_ns = exch_ts_ns
        self.recv_ts_ns = recv_ts_ns
        self.updates += 1
        if self.max_depth:
            # Venues that bound depth (Kraken) send no delete for levels pushed out of
            # scope, so the worst levels go here, after the whole message is applied.
            _truncate(b, self.max_depth)
            _truncate(a, self.max_depth)
        # ask key = -price, so bid >= ask  <=>  bid_key >= -ask_key.
        self.crossed = b.count > 0 and a.count > 0 and b.top >= -a.top
        return self.crossed

    cdef void reset(self) noexcept:
        _side_clear(&self.sides[BID])
        _side_clear(&self.sides[ASK])
        self.seq = -1
        self.exch_ts_ns = 0
        self.recv_ts_ns = 0
        self.crossed = False

    # --- Python API -------------------------------------------------------------------

    cpdef bint apply(self, object bids, object asks, object seq=-1, object exch_ts_ns=0,
                     object recv_ts_ns=0) except -1:
        """Apply one message: ``bids``/``asks`` are (price_ticks, size_lots) pairs, size 0
        deletes. Returns True when the book is crossed afterwards (it is not repaired)."""
        cdef list pending = []
        cdef int64_t price, size
        cdef int side
        for side, levels in ((BID, bids), (ASK, asks)):
            for level in levels:
                p, q = level
                price = as_int64(p, "price")
                size = as_int64(q, "size")
                if _bad_level(side, price, size):
                    _raise_bad_level(side, price, size)
                pending.append((side, price, size))
        cdef int64_t c_seq = as_int64(seq, "seq")
        cdef int64_t c_exch = as_int64(exch_ts_ns, "exch_ts_ns")
        cdef int64_t c_recv = as_int64(recv_ts_ns, "recv_ts_ns")
        for side, price, size in pending:
            _set(&self.sides[side], price, size)
        return self.end_message(c_seq, c_exch, c_recv)

    cpdef bint load_snapshot(self, object bids, object asks, object seq=-1,
                             object exch_ts_ns=0, object recv_ts_ns=0) except -1:
        """Replace the whole book with a snapshot. Returns True when it is crossed."""
        cdef Book staged = Book(self.max_depth, self.name)
        # Stage first: a bad snapshot raises and leaves the current book untouched.
        staged.apply(bids, asks, seq, exch_ts_ns, recv_ts_ns)
        self._swap_sides(staged)
        self.seq = staged.seq
        self.exch_ts_ns = staged.exch_ts_ns
        self.recv_ts_ns = staged.recv_ts_ns
        self.updates += 1
        self.crossed = staged.crossed
        return self.crossed

    cdef void _swap_sides(self, Book other) noexcept:
        cdef BookSide tmp
        cdef int side
        for side in range(2):
            tmp = self.sides[side]
            self.sides[side] = other.sides[side]
            other.sides[side] = tmp

    cpdef clear(self):
        """Drop every level and the sequence/timestamps (the update counter keeps counting)."""
        self.reset()

    def set(self, side, price, size):
        """Change one level outside a message (no truncation or crossed check until
        ``finish``)."""
        cdef int64_t c_side = as_int64(side, "side")
        cdef int64_t c_price = as_int64(price, "price")
        cdef int64_t c_size = as_int64(size, "size")
        # Check before narrowing to the cdef API's int side: 2**32 must not become BID.
        if _bad_level(c_side, c_price, c_size):
            _raise_bad_level(c_side, c_price, c_size)
        self.set_level(<int>c_side, c_price, c_size)

    def finish(self, seq=-1, exch_ts_ns=0, recv_ts_ns=0):
        """End a message built with ``set``; returns True when the book is crossed."""
        return self.end_message(as_int64(seq, "seq"), as_int64(exch_ts_ns, "exch_ts_ns"),
                                as_int64(recv_ts_ns, "recv_ts_ns"))

    cpdef object best_bid(self):
        cdef int64_t price, size
        if self.best(BID, &price, &size):
            return (price, size)
        return None

    cpdef object best_ask(self):
        cdef int64_t price, size
        if self.best(ASK, &price, &size):
            return (price, size)
        return None

    cpdef list top(self, object side, Py_ssize_t n=-1):
        """Up to ``n`` levels of ``side`` from the best, as (price, size); all when n < 0."""
        cdef int64_t c_side = as_int64(side, "side")
        cdef LevelIter it
        cdef list out = []
        if <uint64_t>c_side > 1:
            raise BookError(f"side must be BID (0) or ASK (1), got {side}")
        if n < 0:
            n = self.depth(<int>c_side)
        if n == 0 or not self.iter_first(<int>c_side, &it):
            return out
        while True:
            out.append((it.price, it.size))
            if len(out) == n or not self.iter_next(<int>c_side, &it):
                return out

    def bids(self, Py_ssize_t n=-1):
        return self.top(BID, n)

    def asks(self, Py_ssize_t n=-1):
        return self.top(ASK, n)

    @property
    def bid_depth(self):
        return self.depth(BID)

    @property
    def ask_depth(self):
        return self.depth(ASK)

    @property
    def capacity(self):
        """Levels each side (bids, asks) holds without allocating: the ladder window plus the
        overflow array. Memory is 8 bytes per window slot and 16 per overflow level."""
        return (WINDOW + self.sides[BID].cap, WINDOW + self.sides[ASK].cap)

    def __repr__(self):
        return (f"<Book {self.name or '?'} bids={self.depth(BID)} asks={self.depth(ASK)} "
                f"best={self.best_bid()}/{self.best_ask()} seq={self.seq}>")


cdef inline uint64_t _fold(uint64_t h, int64_t w) noexcept nogil:
    return (h ^ <uint64_t>w) * _FNV_PRIME


def replay_packed(Book book, const int64_t[::1] levels, const int64_t[::1] ends):
    """Apply a packed stream of messages and read the top of book after each one.

    ``levels`` holds (side, price, size) triplets back to back; message m is the triplets up
    to index ``ends[m]`` (exclusive). Each message is applied in one call and stamped with
    seq = m. Returns ``(top_hash, crossed_messages)`` where top_hash folds best bid/ask price
    and size after every message (FNV-1a over int64 words, 0 for an empty side), so a
    reference implementation can check the whole run with one comparison.
    """
    cdef Py_ssize_t m, start = 0, end
    cdef Py_ssize_t n_msgs = ends.shape[0]
    cdef uint64_t h = _FNV_OFFSET
    cdef int64_t bp, bs, ap, as_
    cdef Py_ssize_t crossed = 0
    cdef const LevelUpdate* ups = NULL
    if levels.shape[0]:
        ups = <const LevelUpdate*>&levels[0]
    # Check every bound before reading anything: a bad ``ends`` must never reach memory
    # beyond the buffer.
    for m in range(n_msgs):
        end = ends[m]
        if end < start:
            raise BookError(f"ends must not decrease (message {m})")
        if end > levels.shape[0] // 3:       # not end * 3: that can wrap
            raise BookError(f"ends[{m}] = {end} points past the end of levels")
        start = end
    start = 0
    for m in range(n_msgs):
        end = ends[m]
        book.apply_levels(ups + start, end - start)
        crossed += book.end_message(m, 0, 0)
        bp = bs = ap = as_ = 0
        book.best(BID, &bp, &bs)
        book.best(ASK, &ap, &as_)
        h = _fold(_fold(_fold(_fold(h, bp), bs), ap), as_)
        start = end
    return h, crossed
