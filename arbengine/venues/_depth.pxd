# The contract between venue frame parsers and book sync.
#
# A parser reads one raw WebSocket frame (or REST snapshot body) in place and fills a
# DepthMsg: what kind of message it is, which symbol, the venue's sequence fields and
# timestamps, and where in the frame the level arrays are. It does not convert prices: the
# symbol (and so the instrument's grids) is only known once the header is read, and venues do
# not promise JSON key order. The book's sync object then parses the level spans with its own
# grids straight into a LevelBuffer and applies them in one call. Nothing here allocates a
# Python object per level; pointers stay valid only while the frame is alive.

from libc.stdint cimport int64_t

from arbengine._core.book cimport LevelUpdate

cdef extern from *:
    """
    #include <stdint.h>
    #define ARB_NO_ID INT64_MIN
    """
    # The venue sent no such field (INT64_MIN: no real id or timestamp takes that value).
    const int64_t NO_ID "ARB_NO_ID"

cpdef enum:  # DepthKind
    DEPTH_NONE = 0        # not a book message (ack, trade, ticker, pong, ...)
    DEPTH_SNAPSHOT = 1    # replaces the book
    DEPTH_UPDATE = 2      # changes levels (absolute sizes, 0 deletes)

# How a level span is laid out, so one level parser serves every venue.
cpdef enum:  # LevelLayout
    LAYOUT_PAIRS = 0      # [["price","size",...], ...]           Binance, OKX, Bybit, Kraken v1
    LAYOUT_KRAKEN2 = 1    # [{"price":<num>,"qty":<num>}, ...]    JSON numbers, parsed exactly
    LAYOUT_COINBASE = 2   # [{"side":"bid"|"offer","price_level":"..","new_quantity":".."}, ...]

cdef struct Span:
    const char* p         # points into the frame; NULL when absent
    Py_ssize_t n

cdef struct DepthMsg:
    int kind              # DepthKind
    int layout            # LevelLayout of bids/asks (mixed: both sides in `bids`)
    bint mixed_sides      # one span carries both sides (Coinbase)
    Span symbol           # venue symbol as sent ("BTCUSDT", "BTC-USDT", "BTC/USD")
    Span bids
    Span asks
    int64_t first_id      # Binance U; otherwise NO_ID
    int64_t last_id       # Binance u, OKX seqId, Bybit u, Coinbase sequence_num, REST lastUpdateId
    int64_t prev_id       # Binance futures pu, OKX prevSeqId; NO_ID when the venue has none
    int64_t exch_ts_ns    # venue event time in ns (0 when none)
    int64_t checksum      # as sent: OKX signed int32, Kraken unsigned; valid if has_checksum
    bint has_checksum


cdef class LevelBuffer:
    """A growable C array of LevelUpdate, reused for every message of a connection."""
    cdef LevelUpdate* data
    cdef Py_ssize_t n
    cdef Py_ssize_t cap

    cdef inline void clear(self) noexcept nogil:
        self.n = 0

    cdef int grow(self) except -1

    cdef inline int push(self, int64_t side, int64_t price, int64_t size) except -1:
        if self.n == self.cap:
            self.grow()
        self.data[self.n].side = side
        self.data[self.n].price = price
        self.data[self.n].size = size
        self.n += 1
        return 0


# Parse one level span (DepthMsg.bids / asks) with an instrument's grids into ``out``.
# ``side`` is BID or ASK for a one-sided span and ignored for a mixed one (Coinbase).
# Raises FrameError (malformed span) or FixedPointError (a price/size off the grids).
from arbengine._core.fixed cimport Grid

cdef int parse_levels(Span span, int layout, int side, Grid price, Grid size,
                      LevelBuffer out) except -1
