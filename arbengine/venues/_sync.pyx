# cython: language_level=3
"""Book sync: snapshot + delta procedures and sequence checks, per book, on every message.

The connection hands each parsed DepthMsg (see _depth.pxd) to the BookSync of its symbol.
BookSync parses the level spans with the instrument's grids, applies the venue's rule,
applies the levels to the compiled book in one call, verifies the checksum where the venue
offers one, and answers with an Outcome so the connection knows whether to fetch a snapshot
or resubscribe. A gap, a checksum mismatch, a crossed book or a malformed message takes that
book alone out of LIVE; no exception escapes for bad venue data.
"""

from libc.stdint cimport int64_t

from arbengine._core.book cimport ASK, BID, Book, LevelUpdate
from arbengine._core.fixed cimport Grid
from arbengine._core.instrument cimport Instrument
from arbengine.venues._depth cimport (
    DEPTH_NONE,
    DEPTH_SNAPSHOT,
    DEPTH_UPDATE,
    NO_ID,
    DepthMsg,
    LevelBuffer,
    Span,
    parse_levels,
)
from arbengine.venues.checksum cimport kraken_checksum, okx_checksum

from arbengine._core.errors import CoreError
from arbengine.venues.errors import FrameError

_RULES = {
    "binance_spot": RULE_BINANCE_SPOT,
    "binance_futures": RULE_BINANCE_FUTURES,
    "okx": RULE_OKX,
    "bybit": RULE_BYBIT,
    "coinbase": RULE_COINBASE,
    "kraken": RULE_KRAKEN,
}
STATE_NAMES = {DOWN: "DOWN", SYNCING: "SYNCING", LIVE: "LIVE", RESYNCING: "RESYNCING"}
REASON_NAMES = {
    REASON_NONE: "none",
    REASON_GAP: "gap",
    REASON_CHECKSUM: "checksum",
    REASON_CROSSED: "crossed",
    REASON_PARSE: "parse",
    REASON_STALE_SNAPSHOT: "stale_snapshot",
}


cdef class BookSync:
    """Keeps one venue book in sync. ``rule`` names the venue procedure (see _RULES).

    ``max_depth`` bounds the book (Kraken: the subscribed depth, which its checksum needs);
    ``price_decimals``/``qty_decimals`` are Kraken's wire precision for the checksum and
    default to the instrument's grids.
    """

    def __init__(self, Instrument instrument not None, str rule, Py_ssize_t max_depth=0,
                 price_decimals=None, qty_decimals=None):
        if rule not in _RULES:
            raise ValueError(f"unknown sync rule {rule!r}; one of {', '.join(_RULES)}")
        self.instrument = instrument
        self.rule = _RULES[rule]
        self.book = Book(max_depth, instrument.name)
        self.levels = LevelBuffer()
        self.held_levels = LevelBuffer()
        self.held = []
        self.price_decimals = (instrument.price.decimals if price_decimals is None
                               else price_decimals)
        self.qty_decimals = instrument.size.decimals if qty_decimals is None else qty_decimals
        self.last_error = ""
        self.state = DOWN
        self.last_id = NO_ID

    # --- lifecycle, driven by the connection ---------------------------------------------

    def start(self):
        """The subscription is on its way: wait for (and, on Binance, fetch) a snapshot."""
        self._reset(SYNCING)

    def down(self):
        """The connection is gone: nothing about this book can be trusted until resynced."""
        self._reset(DOWN)

    def resync(self, str error="resync requested"):
        """Take the book out of LIVE from outside (a connection-level gap, an operator)."""
        self.gaps += 1
        return self._resync(REASON_GAP, error)

    cdef void _reset(self, int state) noexcept:
        self.state = state
        self.book.reset()
        self.held = []
        self.held_levels.clear()
        self.snapshot_requested = False
        self.bridged = False
        self.last_id = NO_ID

    cdef int _resync(self, int reason, str error) except -1:
        self.last_reason = reason
        self.last_error = error
        self.resyncs += 1
        self._reset(RESYNCING)
        return OUT_RESYNC

    # --- the hot path ---------------------------------------------------------------------

    cdef int on_depth(self, DepthMsg* msg, int64_t recv_ts_ns) except -1:
        cdef int rule = self.rule
        self.messages += 1
        if msg.kind == DEPTH_NONE:
            return OUT_IGNORED
        if self.state == DOWN:
            self.ignored += 1
            return OUT_IGNORED
        if msg.kind == DEPTH_UPDATE and self.state != LIVE and rule != RULE_BINANCE_SPOT \
                and rule != RULE_BINANCE_FUTURES and not (rule == RULE_BYBIT
                                                          and msg.last_id == 1):
            # WebSocket-snapshot venues: updates before the snapshot mean nothing.
            self.ignored += 1
            return OUT_IGNORED
        self.levels.clear()
        try:
            parse_levels(msg.bids, msg.layout, BID, self.instrument.price,
                         self.instrument.size, self.levels)
            if not msg.mixed_sides:
                parse_levels(msg.asks, msg.layout, ASK, self.instrument.price,
                             self.instrument.size, self.levels)
        except (FrameError, CoreError) as exc:
            self.parse_errors += 1
            return self._resync(REASON_PARSE, str(exc))
        if msg.kind == DEPTH_SNAPSHOT or (rule == RULE_BYBIT and msg.last_id == 1):
            return self._snapshot(msg, recv_ts_ns)
        if rule == RULE_BINANCE_SPOT or rule == RULE_BINANCE_FUTURES:
            return self._binance_update(msg, recv_ts_ns)
        return self._ws_update(msg, recv_ts_ns)

    cdef int _apply(self, const LevelUpdate* ups, Py_ssize_t n, int64_t seq, int64_t exch_ts,
                    int64_t recv_ts, bint snapshot, int64_t checksum,
                    bint has_checksum) except -1:
        """Apply levels as one message, then checksum and crossed checks."""
        cdef int64_t got
        if snapshot:
            self.book.reset()
        try:
            self.book.apply_levels(ups, n)
        except CoreError as exc:
            self.parse_errors += 1
            return self._resync(REASON_PARSE, str(exc))
        crossed = self.book.end_message(seq, exch_ts, recv_ts)
        if has_checksum:
            if self.rule == RULE_KRAKEN:
                got = kraken_checksum(self.book, self.instrument.price, self.instrument.size,
                                      self.price_decimals, self.qty_decimals)
            else:
                got = okx_checksum(self.book, self.instrument.price, self.instrument.size)
            if got != checksum:
                self.checksum_failures += 1
                return self._resync(REASON_CHECKSUM,
                                    f"checksum {got} != {checksum} after id {seq}")
        if crossed:
            self.crossed_books += 1
            return self._resync(REASON_CROSSED, f"crossed book after id {seq}")
        return OUT_SNAPSHOT if snapshot else OUT_APPLIED

    cdef bint _wants_checksum(self, DepthMsg* msg) noexcept:
        # OKX sends 0 since its checksum deprecation (2026): 0 means "not provided".
        if not msg.has_checksum:
            return False
        if self.rule == RULE_OKX:
            return msg.checksum != 0
        return self.rule == RULE_KRAKEN

    cdef int _snapshot(self, DepthMsg* msg, int64_t recv_ts_ns) except -1:
        cdef int out
        cdef int64_t last = msg.last_id
        if self.rule == RULE_BINANCE_SPOT or self.rule == RULE_BINANCE_FUTURES:
            return self._binance_snapshot(msg, recv_ts_ns)
        out = self._apply(self.levels.data, self.levels.n, last, msg.exch_ts_ns, recv_ts_ns,
                          True, msg.checksum, self._wants_checksum(msg))
        if out == OUT_SNAPSHOT:
            self.snapshots += 1
            self.state = LIVE
            self.last_id = last
        return out

    cdef int _ws_update(self, DepthMsg* msg, int64_t recv_ts_ns) except -1:
        cdef int rule = self.rule
        cdef int out
        if rule == RULE_OKX:
            # prevSeqId must be the last seqId. A no-change message repeats it
            # (prev == seq == last) and a maintenance reset goes backwards (seq < prev):
            # both still chain on prevSeqId. The 2022-era feed has no ids: checksum only.
            if msg.prev_id != NO_ID and self.last_id != NO_ID and msg.prev_id != self.last_id:
                self.gaps += 1
                return self._resync(REASON_GAP,
                                    f"prevSeqId {msg.prev_id} != last seqId {self.last_id}")
        elif rule == RULE_BYBIT:
            if msg.last_id <= self.last_id:
                # Level 1 re-sends its snapshot with the same u; anything older is stale.
                self.ignored += 1
                return OUT_IGNORED
            if msg.last_id != self.last_id + 1:
                self.gaps += 1
                return self._resync(REASON_GAP, f"u {msg.last_id} after {self.last_id}")
        out = self._apply(self.levels.data, self.levels.n, msg.last_id, msg.exch_ts_ns,
                          recv_ts_ns, False, msg.checksum, self._wants_checksum(msg))
        if out == OUT_APPLIED:
            self.applied += 1
            if msg.last_id != NO_ID:
                self.last_id = msg.last_id
        return out

    # --- Binance: REST snapshot bridged to the buffered WebSocket deltas -------------------

    cdef int _binance_update(self, DepthMsg* msg, int64_t recv_ts_ns) except -1:
        cdef Py_ssize_t start, i
        cdef bint spot = self.rule == RULE_BINANCE_SPOT
        if self.state == LIVE and not self.bridged and (
                (spot and msg.first_id > self.last_id + 1)
                or (not spot and msg.first_id > self.last_id)):
            # The snapshot came before the first event this stream delivers: it is older
            # than the stream, not a gap in it (doc step 4). Hold this event, fetch again.
            self.stale_snapshots += 1
            self.last_reason = REASON_STALE_SNAPSHOT
            self.last_error = (f"snapshot {self.last_id} older than the stream's first event "
                               f"{msg.first_id}")
            self._reset(SYNCING)
        if self.state != LIVE:
            start = self.held_levels.n
            for i in range(self.levels.n):
                self.held_levels.push(self.levels.data[i].side, self.levels.data[i].price,
                                      self.levels.data[i].size)
            self.held.append((msg.first_id, msg.last_id, msg.prev_id, msg.exch_ts_ns,
                              recv_ts_ns, start, self.levels.n))
            self.buffered += 1
            if not self.snapshot_requested:
                self.snapshot_requested = True
                return OUT_NEED_SNAPSHOT
            return OUT_BUFFERED
        return self._binance_delta(msg.first_id, msg.last_id, msg.prev_id, msg.exch_ts_ns,
                                   recv_ts_ns, self.levels.data, self.levels.n)

    cdef int _binance_delta(self, int64_t first, int64_t last, int64_t prev, int64_t exch_ts,
                            int64_t recv_ts, const LevelUpdate* ups,
                            Py_ssize_t n) except -1:
        cdef bint spot = self.rule == RULE_BINANCE_SPOT
        cdef int out
        if not self.bridged:
            # Drop what the snapshot already holds, then the first event must straddle it.
            if (spot and last <= self.last_id) or (not spot and last < self.last_id):
                self.ignored += 1
                return OUT_IGNORED
            if spot and not (first <= self.last_id + 1 <= last):
                self.gaps += 1
                return self._resync(REASON_GAP, f"first event [{first};{last}] does not "
                                    f"bridge snapshot {self.last_id}")
            if not spot and not (first <= self.last_id <= last):
                self.gaps += 1
                return self._resync(REASON_GAP, f"first event [{first};{last}] does not "
                                    f"bridge snapshot {self.last_id}")
        else:
            if last <= self.last_id:
                self.ignored += 1
                return OUT_IGNORED
            if spot and first != self.last_id + 1:
                self.gaps += 1
                return self._resync(REASON_GAP, f"U {first} != last u {self.last_id} + 1")
            if not spot and prev != self.last_id:
                self.gaps += 1
                return self._resync(REASON_GAP, f"pu {prev} != last u {self.last_id}")
        out = self._apply(ups, n, last, exch_ts, recv_ts, False, 0, False)
        if out == OUT_APPLIED:
            self.applied += 1
            self.bridged = True
            self.last_id = last
        return out

    cdef int _binance_snapshot(self, DepthMsg* msg, int64_t recv_ts_ns) except -1:
        cdef int64_t snap = msg.last_id
        cdef int out
        cdef tuple h
        cdef Py_ssize_t start, n
        if self.held:
            h = self.held[0]
            # The snapshot must not be older than the first held event (doc step 4).
            if snap < <int64_t>h[0] - (1 if self.rule == RULE_BINANCE_SPOT else 0):
                self.stale_snapshots += 1
                self.last_reason = REASON_STALE_SNAPSHOT
                self.last_error = f"snapshot {snap} older than first held event {h[0]}"
                return OUT_NEED_SNAPSHOT
        out = self._apply(self.levels.data, self.levels.n, snap, msg.exch_ts_ns, recv_ts_ns,
                          True, 0, False)
        if out != OUT_SNAPSHOT:
            return out
        self.snapshots += 1
        self.state = LIVE
        self.last_id = snap
        self.bridged = False
        held = self.held
        self.held = []
        for h in held:
            start = h[5]
            n = h[6]
            out = self._binance_delta(h[0], h[1], h[2], h[3], h[4],
                                      self.held_levels.data + start, n)
            if out == OUT_RESYNC:
                return out
        self.held_levels.clear()
        self.snapshot_requested = False
        return OUT_SNAPSHOT

    # --- Python entry (tests, replay tools): build a DepthMsg from Python values ----------

    def on_message(self, int kind, bids, asks=None, *, int layout=0, bint mixed=False,
                   first_id=None, last_id=None, prev_id=None, int64_t exch_ts_ns=0,
                   int64_t recv_ts_ns=0, checksum=None, bytes symbol=b""):
        """Feed one message whose level arrays are raw JSON text (bytes). Returns the
        Outcome. Ids default to "absent"."""
        cdef DepthMsg msg
        cdef bytes b = bids if bids is not None else b""
        cdef bytes a = asks if asks is not None else b""
        msg.kind = kind
        msg.layout = layout
        msg.mixed_sides = mixed
        msg.symbol.p = symbol
        msg.symbol.n = len(symbol)
        msg.bids.p = <const char*>b if bids is not None else NULL
        msg.bids.n = len(b)
        msg.asks.p = <const char*>a if asks is not None else NULL
        msg.asks.n = len(a)
        msg.first_id = NO_ID if first_id is None else first_id
        msg.last_id = NO_ID if last_id is None else last_id
        msg.prev_id = NO_ID if prev_id is None else prev_id
        msg.exch_ts_ns = exch_ts_ns
        msg.has_checksum = checksum is not None
        msg.checksum = checksum if checksum is not None else 0
        return self.on_depth(&msg, recv_ts_ns)

    @property
    def live(self):
        return self.state == LIVE

    @property
    def state_name(self):
        return STATE_NAMES[self.state]

    @property
    def last_reason_name(self):
        return REASON_NAMES[self.last_reason]

    def counters(self):
        """Every counter by name, for the metrics layer and tests."""
        return {
            "messages": self.messages, "applied": self.applied, "snapshots": self.snapshots,
            "ignored": self.ignored, "buffered": self.buffered, "gaps": self.gaps,
            "checksum_failures": self.checksum_failures, "crossed": self.crossed_books,
            "parse_errors": self.parse_errors, "stale_snapshots": self.stale_snapshots,
            "resyncs": self.resyncs,
        }
