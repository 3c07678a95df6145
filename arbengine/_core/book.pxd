# L2 order book on int64 ticks (price) and lots (size).
#
# Each side is one contiguous array of Level sorted by key, best level at the top
# (buf[hi - 1]), with free room below lo and above hi so an insert or delete shifts
# whichever part of the array is shorter. Updates cluster near the top of book, so the common
# case touches a handful of cache lines and no allocator. Asks are stored with key = -price
# so both sides share one code path: a higher key is always a better level.

from libc.stdint cimport int64_t, uint64_t

cpdef enum:
    BID = 0
    ASK = 1

# One level change as parsers emit it: side (BID/ASK), price in ticks, size in lots.
# size 0 deletes the level.
cdef struct LevelUpdate:
    int64_t side
    int64_t price
    int64_t size

cdef struct Level:
    int64_t key      # price for bids, -price for asks
    int64_t size

cdef struct BookSide:
    Level* buf
    Py_ssize_t lo
    Py_ssize_t hi
    Py_ssize_t cap
    int64_t sign     # +1 bids, -1 asks: price = sign * key


cdef class Book:
    cdef BookSide sides[2]
    cdef readonly str name
    cdef readonly Py_ssize_t max_depth   # 0 = unlimited
    cdef readonly int64_t seq            # last sequence id applied (-1 = none)
    cdef readonly int64_t exch_ts_ns     # exchange event time of the last update
    cdef readonly int64_t recv_ts_ns     # local receive time of the last update
    cdef readonly uint64_t updates       # messages applied since creation
    cdef readonly bint crossed           # best bid >= best ask after the last message

    # --- cdef API: the hot path for other Cython modules ------------------------------
    # Change one level without finishing the message (no truncation, no crossed check).
    cdef int set_level(self, int side, int64_t price, int64_t size) except -1
    # Apply a run of level changes of one side.
    cdef int apply_side(self, int side, const int64_t* prices, const int64_t* sizes,
                        Py_ssize_t n) except -1
    # Apply a run of mixed-side level changes.
    cdef int apply_levels(self, const LevelUpdate* ups, Py_ssize_t n) except -1
    # Finish a message: stamp it, truncate to max_depth, detect a crossed book.
    # Returns True when the book is crossed.
    cdef bint end_message(self, int64_t seq, int64_t exch_ts_ns,
                          int64_t recv_ts_ns) noexcept
    cdef void reset(self) noexcept
    cdef void _swap_sides(self, Book other) noexcept

    # O(1) reads. Level i counts from the best (0 = best). Callers keep i < depth(side).
    cdef inline Py_ssize_t depth(self, int side) noexcept nogil:
        return self.sides[side].hi - self.sides[side].lo

    cdef inline int64_t price_at(self, int side, Py_ssize_t i) noexcept nogil:
        return self.sides[side].sign * self.sides[side].buf[self.sides[side].hi - 1 - i].key

    cdef inline int64_t size_at(self, int side, Py_ssize_t i) noexcept nogil:
        return self.sides[side].buf[self.sides[side].hi - 1 - i].size

    # Best price and size; returns False (and leaves outputs alone) when the side is empty.
    cdef inline bint best(self, int side, int64_t* price, int64_t* size) noexcept nogil:
        cdef BookSide* s = &self.sides[side]
        if s.hi == s.lo:
            return False
        price[0] = s.sign * s.buf[s.hi - 1].key
        size[0] = s.buf[s.hi - 1].size
        return True

    # --- Python API ------------------------------------------------------------------
    cpdef bint apply(self, object bids, object asks, object seq=*, object exch_ts_ns=*,
                     object recv_ts_ns=*) except -1
    cpdef bint load_snapshot(self, object bids, object asks, object seq=*,
                             object exch_ts_ns=*, object recv_ts_ns=*) except -1
    cpdef clear(self)
    cpdef object best_bid(self)
    cpdef object best_ask(self)
    cpdef list top(self, object side, Py_ssize_t n=*)
