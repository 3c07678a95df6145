# Compiled header parsers: one raw venue frame (WebSocket text or REST body) -> DepthMsg.
#
# Each parser reads the frame in place with the _json cursor and fills a DepthMsg (see
# _depth.pxd): kind, layout, symbol, where the level arrays are, the venue's sequence ids, the
# event time and the checksum. Prices are never converted here: parse_levels does that later
# with the grids of the instrument the symbol names.
#
# Error convention, the same for every parser:
#   * valid book message            -> kind DEPTH_SNAPSHOT or DEPTH_UPDATE, fields filled;
#   * well-formed frame that is not a book message (ack, pong, trade, ticker, heartbeat, error
#     event) -> kind DEPTH_NONE, every other field "absent" (NULL spans, NO_ID, 0), except
#     Coinbase, which reports the connection-wide sequence_num in last_id on every frame;
#   * malformed or truncated frame, or a book message missing a field -> FrameError (one line:
#     what was expected, at which byte offset of the frame).
# Spans point into the frame: they are valid only while the caller keeps the frame alive.
# After a FrameError the contents of `out` are unspecified (it may be partly filled).
#
# JSON key order never matters (venues do not promise it; Bybit spot and futures differ) and
# unknown keys are skipped. Duplicate keys: the last one wins, like json.loads and orjson.

from libc.stdint cimport int64_t

from arbengine.venues._depth cimport DepthMsg

cpdef enum:  # FrameFamily: which parser a connection's frames go to
    FAMILY_BINANCE_DEPTH = 0      # diff depth event, raw or in a combined-stream envelope
    FAMILY_BINANCE_SNAPSHOT = 1   # REST /api/v3/depth, /fapi/v1/depth, /dapi/v1/depth body
    FAMILY_OKX_BOOKS = 2          # v5 books, books5, books50-l2-tbt, books-l2-tbt, bbo-tbt
    FAMILY_BYBIT_ORDERBOOK = 3    # v5 orderbook.{depth}.{symbol} stream
    FAMILY_BYBIT_SNAPSHOT = 4     # REST /v5/market/orderbook body
    FAMILY_COINBASE_L2 = 5        # Advanced Trade level2 (l2_data), one book event per frame
    FAMILY_KRAKEN_BOOK = 6        # WebSocket v2 book channel

cdef int parse_binance_depth(const char* p, Py_ssize_t n, DepthMsg* out) except -1
cdef int parse_binance_snapshot(const char* p, Py_ssize_t n, DepthMsg* out) except -1
cdef int parse_okx_books(const char* p, Py_ssize_t n, DepthMsg* out) except -1
cdef int parse_bybit_orderbook(const char* p, Py_ssize_t n, DepthMsg* out) except -1
cdef int parse_bybit_snapshot(const char* p, Py_ssize_t n, DepthMsg* out) except -1
cdef int parse_coinbase_l2(const char* p, Py_ssize_t n, DepthMsg* out) except -1
cdef int parse_kraken_book(const char* p, Py_ssize_t n, DepthMsg* out) except -1

# Coinbase frames carry an `events` array. parse_coinbase_l2 accepts exactly one book event
# (FrameError on more); this variant fills out[0..k) with one DepthMsg per event, all sharing
# the envelope's sequence_num and timestamp, and returns k (<= cap; more raises FrameError).
# k == 0 means DEPTH_NONE, and out[0] still carries last_id = sequence_num. cap is at most
# COINBASE_MAX_EVENTS (a larger cap counts as that): out needs max(cap, 1) entries.
cdef enum:
    COINBASE_MAX_EVENTS = 64

cdef Py_ssize_t parse_coinbase_l2_events(const char* p, Py_ssize_t n, DepthMsg* out,
                                         Py_ssize_t cap) except -1

# Dispatch on a FrameFamily (FrameError for an unknown family).
cdef int parse_depth_frame(int family, const char* p, Py_ssize_t n, DepthMsg* out) except -1

# Exact RFC 3339 UTC timestamp -> ns since the epoch: YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|+HH:MM|
# -HH:MM), years 1970..2261 (the int64 ns range), result >= 0. False on anything else.
cdef bint rfc3339_to_ns(const char* p, Py_ssize_t n, int64_t* out) noexcept nogil
