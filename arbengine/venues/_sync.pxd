# Per-book sync: the venue's snapshot/delta procedure and sequence rules, on every message.

from libc.stdint cimport int64_t, uint64_t

from arbengine._core.book cimport Book, LevelUpdate
from arbengine._core.instrument cimport Instrument
from arbengine.venues._depth cimport DepthMsg, LevelBuffer

cpdef enum:  # SyncRule: which venue procedure a book follows
    RULE_BINANCE_SPOT = 0       # REST snapshot + buffered deltas; U == prev u + 1
    RULE_BINANCE_FUTURES = 1    # REST snapshot + buffered deltas; pu == prev u
    RULE_OKX = 2                # WS snapshot; prevSeqId == prev seqId; CRC32 when non-zero
    RULE_BYBIT = 3              # WS snapshot; u == prev u + 1; u == 1 is a fresh snapshot
    RULE_COINBASE = 4           # WS snapshot; sequence_num is per connection (checked there)
    RULE_KRAKEN = 5             # WS snapshot; CRC32 over the top 10 levels on every update

cpdef enum:  # BookState: only LIVE books are offered to consumers
    DOWN = 0                    # no subscription (connection down or not started)
    SYNCING = 1                 # waiting for the first snapshot
    LIVE = 2
    RESYNCING = 3               # a gap, checksum mismatch or crossed book: waiting for a snapshot

cpdef enum:  # Outcome of one message, telling the connection what to do next
    OUT_IGNORED = 0             # not for the book now (stale, duplicate, before the snapshot)
    OUT_BUFFERED = 1            # held until the REST snapshot arrives
    OUT_NEED_SNAPSHOT = 2       # held; fetch the REST snapshot now (Binance)
    OUT_APPLIED = 3             # the LIVE book changed
    OUT_SNAPSHOT = 4            # a snapshot was loaded; the book is LIVE
    OUT_RESYNC = 5              # the book left LIVE: fetch a snapshot / resubscribe this book

cpdef enum:  # why a book left LIVE
    REASON_NONE = 0
    REASON_GAP = 1
    REASON_CHECKSUM = 2
    REASON_CROSSED = 3
    REASON_PARSE = 4
    REASON_STALE_SNAPSHOT = 5


cdef class BookSync:
    cdef readonly Book book
    cdef readonly Instrument instrument
    cdef readonly int rule
    cdef readonly int state
    cdef readonly int64_t last_id        # the venue's id of the last applied message
    cdef readonly bint bridged           # Binance: the first delta after the snapshot fitted
    cdef readonly int price_decimals     # Kraken checksum wire precision
    cdef readonly int qty_decimals
    cdef readonly int last_reason
    cdef readonly str last_error
    cdef LevelBuffer levels              # the message being applied
    cdef LevelBuffer held_levels         # Binance deltas held while waiting for the snapshot
    cdef list held                       # (first_id, last_id, prev_id, exch_ts, recv_ts, start, n)
    cdef bint snapshot_requested
    # counters, read by the metrics layer
    cdef readonly uint64_t messages
    cdef readonly uint64_t applied
    cdef readonly uint64_t snapshots
    cdef readonly uint64_t ignored
    cdef readonly uint64_t buffered
    cdef readonly uint64_t gaps
    cdef readonly uint64_t checksum_failures
    cdef readonly uint64_t crossed_books
    cdef readonly uint64_t parse_errors
    cdef readonly uint64_t stale_snapshots
    cdef readonly uint64_t resyncs

    cdef int on_depth(self, DepthMsg* msg, int64_t recv_ts_ns) except -1

    cdef void _reset(self, int state) noexcept
    cdef int _resync(self, int reason, str error) except -1
    cdef int _apply(self, const LevelUpdate* ups, Py_ssize_t n, int64_t seq, int64_t exch_ts,
                    int64_t recv_ts, bint snapshot, int64_t checksum,
                    bint has_checksum) except -1
    cdef bint _wants_checksum(self, DepthMsg* msg) noexcept
    cdef int _snapshot(self, DepthMsg* msg, int64_t recv_ts_ns) except -1
    cdef int _ws_update(self, DepthMsg* msg, int64_t recv_ts_ns) except -1
    cdef int _binance_update(self, DepthMsg* msg, int64_t recv_ts_ns) except -1
    cdef int _binance_delta(self, int64_t first, int64_t last, int64_t prev, int64_t exch_ts,
                            int64_t recv_ts, const LevelUpdate* ups,
                            Py_ssize_t n) except -1
    cdef int _binance_snapshot(self, DepthMsg* msg, int64_t recv_ts_ns) except -1
