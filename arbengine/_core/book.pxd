# L2 order book on int64 ticks (price) and lots (size).
#
# Each side is a price ladder plus an overflow array:
#   - the window: WINDOW consecutive price keys [base, base + WINDOW) held in a ring of sizes
#     (slot = key mod WINDOW, so sliding the window moves no memory) with a two-level
#     occupancy bitmap. A level update near the top of book is one index computation and a
#     store; the next best level after a delete is two count-leading-zeros.
#   - the overflow: levels worse than the window, a sorted array with its best at the top.
#     Deep updates are rare; they cost a bounded binary search and a short memmove.
# Asks are stored with key = -price so both sides share one code path: a higher key is always
# a better level. Invariants: every level with key >= base is in the window; overflow keys are
# < base; a non-empty side always has its best level in the window (count > 0).

from libc.stdint cimport int64_t, uint64_t

cpdef enum:
    BID = 0
    ASK = 1

cdef enum:
    WINDOW = 4096            # price keys per side held in the ladder (32 KiB of sizes)
    WINDOW_MASK = 4095
    WINDOW_WORDS = 64        # WINDOW / 64 bitmap words: one summary word covers them all

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
    int64_t* sizes           # WINDOW ring slots, 0 = empty
    uint64_t* bits           # WINDOW_WORDS occupancy words
    uint64_t summary         # bit w set <=> bits[w] != 0
    int64_t base             # lowest key the window holds
    int64_t top              # best key (valid when count > 0)
    Py_ssize_t count         # levels in the window
    Level* buf               # overflow, sorted by key, best at buf[hi - 1]
    Py_ssize_t lo
    Py_ssize_t hi
    Py_ssize_t cap
    int64_t sign             # +1 bids, -1 asks: price = sign * key

cdef extern from *:
    int __builtin_clzll(unsigned long long) nogil


cdef inline Py_ssize_t _slot(int64_t key) noexcept nogil:
    return <Py_ssize_t>(<uint64_t>key & WINDOW_MASK)


cdef inline uint64_t _bits_below(BookSide* s, Py_ssize_t slot) noexcept nogil:
    return s.bits[slot >> 6] & ((1ULL << (slot & 63)) - 1)


cdef inline Py_ssize_t _next_down(BookSide* s, Py_ssize_t slot, uint64_t* word) noexcept nogil:
    # The next occupied slot below ``slot``, scanning the ring cyclically downward. ``word``
    # holds the not yet scanned bits of slot's word below slot and is updated for the next
    # call. Every key above the best is empty, so while unvisited window levels remain, a
    # downward cyclic scan from a visited key meets the next lower level before anything
    # else: callers only ask while one remains.
    cdef uint64_t w = word[0]
    cdef Py_ssize_t wi = slot >> 6
    cdef uint64_t m
    if w == 0:
        m = s.summary & ((1ULL << wi) - 1)
        wi = 63 - __builtin_clzll(m if m else s.summary)
        w = s.bits[wi]
    slot = (wi << 6) + 63 - __builtin_clzll(w)
    word[0] = w & ~(1ULL << (slot & 63))
    return slot


# Walks one side from the best level down: Book.iter_first, then Book.iter_next.
cdef struct LevelIter:
    int64_t price
    int64_t size
    int64_t key
    Py_ssize_t slot          # ring slot of key while in the window
    uint64_t word            # occupied bits of slot's bitmap word below slot, not yet visited
    Py_ssize_t left          # window levels not yet visited
    Py_ssize_t pos           # overflow index once past the window
    bint in_window


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
    # Apply a run of level changes of one side (validated first: all or nothing).
    cdef int apply_side(self, int side, const int64_t* prices, const int64_t* sizes,
                        Py_ssize_t n) except -1
    # Apply a run of mixed-side level changes (validated first: all or nothing).
    cdef int apply_levels(self, const LevelUpdate* ups, Py_ssize_t n) except -1
    # Finish a message: stamp it, truncate to max_depth, detect a crossed book.
    # Returns True when the book is crossed.
    cdef bint end_message(self, int64_t seq, int64_t exch_ts_ns,
                          int64_t recv_ts_ns) noexcept
    cdef void reset(self) noexcept
    cdef void _swap_sides(self, Book other) noexcept

    # Level iteration from the best, at C speed: no allocation, O(1) per step near the top.
    # Inline here so that other Cython modules (the spread walk) compile it into their loops.
    cdef inline bint iter_first(self, int side, LevelIter* it) noexcept nogil:
        cdef BookSide* s = &self.sides[side]
        if s.count == 0:
            return False
        it.in_window = True
        it.key = s.top
        it.slot = _slot(s.top)
        it.word = _bits_below(s, it.slot)
        it.left = s.count - 1
        it.size = s.sizes[it.slot]
        it.price = s.sign * s.top
        return True

    cdef inline bint iter_next(self, int side, LevelIter* it) noexcept nogil:
        cdef BookSide* s = &self.sides[side]
        cdef Py_ssize_t slot
        if it.in_window:
            if it.left:
                slot = _next_down(s, it.slot, &it.word)
                it.key -= (it.slot - slot) & WINDOW_MASK
                it.slot = slot
                it.left -= 1
                it.size = s.sizes[slot]
                it.price = s.sign * it.key
                return True
            it.in_window = False
            it.pos = s.hi
        it.pos -= 1
        if it.pos < s.lo:
            return False
        it.key = s.buf[it.pos].key
        it.size = s.buf[it.pos].size
        it.price = s.sign * it.key
        return True

    cdef inline Py_ssize_t depth(self, int side) noexcept nogil:
        return self.sides[side].count + self.sides[side].hi - self.sides[side].lo

    # Best price and size; returns False (and leaves outputs alone) when the side is empty.
    cdef inline bint best(self, int side, int64_t* price, int64_t* size) noexcept nogil:
        cdef BookSide* s = &self.sides[side]
        if s.count == 0:
            return False
        price[0] = s.sign * s.top
        size[0] = s.sizes[<uint64_t>s.top & WINDOW_MASK]
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
