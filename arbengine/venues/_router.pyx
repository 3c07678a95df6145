# cython: language_level=3
"""One connection's frames -> the BookSync of their symbol.

A FeedRouter parses each frame's header (see _frames), finds the book by comparing the
symbol span against the connection's symbols (no Python object per message), hands the
message to that book's BookSync, and feeds the venue clock-offset estimate. The Python
adapter only looks at the outcome: when a book needs a snapshot or a resubscribe it reads
``last_index`` to know which one.
"""

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcmp

from arbengine.venues._clock cimport ClockOffset
from arbengine.venues._depth cimport DEPTH_NONE, NO_ID, DepthMsg, Span
from arbengine.venues._frames cimport FAMILY_COINBASE_L2, parse_depth_frame
from arbengine.venues._sync cimport OUT_IGNORED, OUT_RESYNC, BookSync

from arbengine.venues.errors import FrameError

NO_BOOK = -1


cdef class FeedRouter:
    """Routes one connection's frames. ``symbols`` are the venue's spellings (bytes), in the
    same order as ``syncs``."""

    cdef readonly int family
    cdef readonly int snapshot_family
    cdef readonly list syncs
    cdef list _symbols                  # keeps the bytes alive for _ptrs
    cdef const char** _ptrs
    cdef Py_ssize_t* _lens
    cdef Py_ssize_t _n
    cdef readonly ClockOffset clock
    cdef readonly Py_ssize_t last_index
    cdef readonly str last_error
    cdef readonly int64_t last_sequence  # Coinbase: the connection-wide sequence_num
    cdef readonly uint64_t frames
    cdef readonly uint64_t not_book
    cdef readonly uint64_t frame_errors
    cdef readonly uint64_t unknown_symbols
    cdef readonly uint64_t sequence_gaps

    def __cinit__(self):
        self._ptrs = NULL
        self._lens = NULL

    def __init__(self, int family, list symbols not None, list syncs not None,
                 int snapshot_family=-1, ClockOffset clock=None):
        if len(symbols) != len(syncs) or not symbols:
            raise ValueError("a router needs one BookSync per symbol, at least one")
        self._symbols = [bytes(s) for s in symbols]
        if len(set(self._symbols)) != len(self._symbols):
            raise ValueError(f"duplicate symbols in {self._symbols!r}")
        for sync in syncs:
            if not isinstance(sync, BookSync):
                raise TypeError(f"expected BookSync, got {type(sync).__name__}")
        self.syncs = list(syncs)
        self._n = len(self._symbols)
        self._ptrs = <const char**>PyMem_Malloc(self._n * sizeof(const char*))
        self._lens = <Py_ssize_t*>PyMem_Malloc(self._n * sizeof(Py_ssize_t))
        if self._ptrs == NULL or self._lens == NULL:
            raise MemoryError()
        for i, s in enumerate(self._symbols):
            self._ptrs[i] = <const char*>(<bytes>s)
            self._lens[i] = len(<bytes>s)
        self.family = family
        self.snapshot_family = snapshot_family
        self.clock = clock if clock is not None else ClockOffset()
        self.last_index = NO_BOOK
        self.last_error = ""
        self.last_sequence = NO_ID

    def __dealloc__(self):
        PyMem_Free(self._ptrs)
        PyMem_Free(self._lens)

    cdef inline Py_ssize_t _find(self, Span symbol) noexcept:
        cdef Py_ssize_t i
        if self._n == 1 and symbol.p == NULL:
            return 0                     # single-book connections need no symbol
        for i in range(self._n):
            if self._lens[i] == symbol.n and memcmp(self._ptrs[i], symbol.p, symbol.n) == 0:
                return i
        return NO_BOOK

    cpdef int on_frame(self, bytes frame, int64_t recv_mono_ns, int64_t recv_wall_ns) except -2:
        """Route one WebSocket frame; returns the book's Outcome (``last_index`` says which
        book), OUT_IGNORED for frames that are not for a book, and OUT_RESYNC with
        ``last_index`` NO_BOOK when every book of the connection must resync (a malformed
        frame, a Coinbase sequence gap)."""
        cdef DepthMsg msg
        cdef Py_ssize_t i
        self.frames += 1
        self.last_index = NO_BOOK
        try:
            parse_depth_frame(self.family, frame, len(frame), &msg)
        except FrameError as exc:
            # A malformed frame cannot be attributed to a book, and one of them just lost a
            # message: until the next message of that book reveals the gap it would stay LIVE
            # on stale data. Take every book of the connection out of LIVE instead.
            self.frame_errors += 1
            self.last_error = str(exc)
            self._resync_all(f"malformed frame: {exc}")
            return OUT_RESYNC
        if self.family == FAMILY_COINBASE_L2 and msg.last_id != NO_ID:
            # sequence_num counts every message of the connection, on every channel.
            if self.last_sequence != NO_ID and msg.last_id != self.last_sequence + 1:
                self.sequence_gaps += 1
                why = f"sequence_num {msg.last_id} after {self.last_sequence}"
                self.last_sequence = msg.last_id
                self._resync_all(why)
                return OUT_RESYNC
            self.last_sequence = msg.last_id
        if msg.kind == DEPTH_NONE:
            self.not_book += 1
            return OUT_IGNORED
        i = self._find(msg.symbol)
        if i == NO_BOOK:
            self.unknown_symbols += 1
            return OUT_IGNORED
        if msg.exch_ts_ns > 0:
            self.clock.observe(recv_wall_ns, msg.exch_ts_ns)
        self.last_index = i
        return (<BookSync>self.syncs[i]).on_depth(&msg, recv_mono_ns)

    cdef void _resync_all(self, str why):
        self.last_index = NO_BOOK
        for sync in self.syncs:
            (<BookSync>sync).resync(why)

    cpdef int on_snapshot(self, Py_ssize_t index, bytes body, int64_t recv_mono_ns) except -2:
        """Hand a REST snapshot body to book ``index``; FrameError (one line) if malformed,
        after which the book stays out of LIVE."""
        cdef DepthMsg msg
        if index < 0 or index >= self._n:
            raise IndexError(f"no book {index}")
        if self.snapshot_family < 0:
            raise ValueError("this venue takes no REST snapshots")
        self.last_index = index
        parse_depth_frame(self.snapshot_family, body, len(body), &msg)
        return (<BookSync>self.syncs[index]).on_depth(&msg, recv_mono_ns)

    def symbol(self, Py_ssize_t index):
        return self._symbols[index]
