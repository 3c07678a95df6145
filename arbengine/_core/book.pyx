# cython: language_level=3
"""Compiled L2 order book on integer ticks and lots.

See book.pxd for the layout. The cdef API (set_level / apply_levels / end_message, and the
inline reads) is what feed parsers and the spread calculator call; the Python API wraps it
with validation for tests, tools and slow paths.
"""

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport INT64_MAX, int64_t, uint64_t
from libc.string cimport memcpy, memmove

from arbengine._core.errors import BookError
from arbengine._core.ints cimport as_int64

cdef enum:
    _MIN_CAPACITY = 64

cdef uint64_t _FNV_OFFSET = 0xcbf29ce484222325ULL
cdef uint64_t _FNV_PRIME = 0x100000001b3ULL


cdef int _side_init(BookSide* s, Py_ssize_t cap, int64_t sign) except -1:
    s.buf = <Level*>PyMem_Malloc(cap * sizeof(Level))
    if s.buf == NULL:
        raise MemoryError()
    s.cap = cap
    s.lo = cap // 2
    s.hi = s.lo
    s.sign = sign
    return 0


cdef int _side_make_room(BookSide* s) except -1:
    """Give both ends of the array free room: recentre in place, or double when half full."""
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
    """Index of the highest level whose key is <= ``key`` (lo - 1 when there is none).

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


cdef inline int _set(BookSide* s, int64_t price, int64_t size) except -1:
    cdef int64_t key = s.sign * price
    cdef Py_ssize_t i = _find(s, key)
    if i >= s.lo and s.buf[i].key == key:
        if size == 0:
            _delete(s, i)
        else:
            s.buf[i].size = size
        return 0
    if size == 0:
        # Venues delete levels we never held (beyond snapshot depth); that is normal.
        return 0
    return _insert(s, i + 1, key, size)


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
        PyMem_Free(self.sides[BID].buf)
        PyMem_Free(self.sides[ASK].buf)

    # --- cdef API ---------------------------------------------------------------------

    cdef int set_level(self, int side, int64_t price, int64_t size) except -1:
        if _bad_level(side, price, size):
            return _raise_bad_level(side, price, size)
        return _set(&self.sides[side], price, size)

    cdef int apply_side(self, int side, const int64_t* prices, const int64_t* sizes,
                        Py_ssize_t n) except -1:
        cdef Py_ssize_t i
        # Validate the whole run first so a bad message never half-applies.
        for i in range(n):
            if _bad_level(side, prices[i], sizes[i]):
                return _raise_bad_level(side, prices[i], sizes[i])
        cdef BookSide* s = &self.sides[side]
        for i in range(n):
            _set(s, prices[i], sizes[i])
        return 0

    cdef int apply_levels(self, const LevelUpdate* ups, Py_ssize_t n) except -1:
        cdef Py_ssize_t i
        for i in range(n):
            if _bad_level(ups[i].side, ups[i].price, ups[i].size):
                return _raise_bad_level(ups[i].side, ups[i].price, ups[i].size)
        for i in range(n):
            _set(&self.sides[ups[i].side], ups[i].price, ups[i].size)
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
            if b.hi - b.lo > self.max_depth:
                b.lo = b.hi - self.max_depth
            if a.hi - a.lo > self.max_depth:
                a.lo = a.hi - self.max_depth
        # ask key = -price, so bid >= ask  <=>  bid_key + ask_key >= 0.
        self.crossed = (b.hi > b.lo and a.hi > a.lo
                        and b.buf[b.hi - 1].key >= -a.buf[a.hi - 1].key)
        return self.crossed

    cdef void reset(self) noexcept:
        cdef int side
        for side in range(2):
            self.sides[side].lo = self.sides[side].cap // 2
            self.sides[side].hi = self.sides[side].lo
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
        if <uint64_t>c_side > 1:
            raise BookError(f"side must be BID (0) or ASK (1), got {side}")
        cdef Py_ssize_t d = self.depth(<int>c_side)
        if n < 0 or n > d:
            n = d
        return [(self.price_at(<int>c_side, i), self.size_at(<int>c_side, i))
                for i in range(n)]

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
        """Allocated levels per side (bids, asks): the book's memory is 16 bytes each."""
        return (self.sides[BID].cap, self.sides[ASK].cap)

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
