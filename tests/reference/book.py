"""Pure-Python reference L2 book: the oracle for ``arbengine._core.book.Book``.

It has the same Python API and the same semantics as the compiled book, written the obvious
way (one ``SortedDict`` per side, keyed by price), so a differential test can run both on the
same stream and any disagreement points at the compiled code. Semantics it pins down:

* size 0 deletes a level; deleting a level the book does not hold is a no-op;
* ``max_depth`` truncation drops the worst levels at the END of a message (``apply``,
  ``finish``, ``load_snapshot``), never per level, because venues that bound depth send no
  delete for levels pushed out of scope;
* crossed = both sides non-empty and best bid price >= best ask price; reported, never fixed;
* a message is validated completely before any of it is applied (no half-applied message),
  and a bad snapshot leaves the old book untouched;
* ``clear`` resets levels, seq and timestamps, but ``updates`` keeps counting messages.

It deliberately does not import the compiled book (an oracle that shares code with the thing
it checks proves nothing); it only shares the plain-Python exception classes so both raise
the same ``BookError``. The benchmark imports it too, so the hot paths avoid needless work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import islice
from typing import TYPE_CHECKING, Final, Protocol

from sortedcontainers import SortedDict

from arbengine._core.errors import BookError

if TYPE_CHECKING:
    # Only for annotations: typing_extensions is not needed at run time.
    from typing_extensions import Buffer

__all__ = [
    "ASK",
    "BID",
    "BookFactory",
    "L2Book",
    "Level",
    "ReferenceBook",
    "replay_packed_reference",
]

BID: Final = 0
ASK: Final = 1

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
_MASK64: Final = 2**64 - 1
_FNV_OFFSET: Final = 0xCBF29CE484222325
_FNV_PRIME: Final = 0x100000001B3

# A level as the Python API exchanges it: (price in ticks, size in lots).
Level = tuple[int, int]


class L2Book(Protocol):
    """The Python API shared by the compiled ``Book`` and ``ReferenceBook``.

    Tests are written against this protocol so one body runs on both implementations.
    """

    @property
    def name(self) -> str: ...
    @property
    def max_depth(self) -> int: ...
    @property
    def seq(self) -> int: ...
    @property
    def exch_ts_ns(self) -> int: ...
    @property
    def recv_ts_ns(self) -> int: ...
    @property
    def updates(self) -> int: ...
    @property
    def crossed(self) -> bool: ...
    @property
    def bid_depth(self) -> int: ...
    @property
    def ask_depth(self) -> int: ...
    def apply(
        self,
        bids: Iterable[Level],
        asks: Iterable[Level],
        seq: int = -1,
        exch_ts_ns: int = 0,
        recv_ts_ns: int = 0,
    ) -> bool: ...
    def load_snapshot(
        self,
        bids: Iterable[Level],
        asks: Iterable[Level],
        seq: int = -1,
        exch_ts_ns: int = 0,
        recv_ts_ns: int = 0,
    ) -> bool: ...
    def set(self, side: int, price: int, size: int) -> None: ...
    def finish(self, seq: int = -1, exch_ts_ns: int = 0, recv_ts_ns: int = 0) -> bool: ...
    def clear(self) -> None: ...
    def best_bid(self) -> Level | None: ...
    def best_ask(self) -> Level | None: ...
    def top(self, side: int, n: int = -1) -> list[Level]: ...
    def bids(self, n: int = -1) -> list[Level]: ...
    def asks(self, n: int = -1) -> list[Level]: ...


# What the ``book_cls`` fixture yields: a class taking (max_depth, name).
BookFactory = Callable[..., L2Book]


def _as_int64(value: object, what: str) -> int:
    """Strict int -> int64 check, mirroring ``arbengine._core.ints.as_int64``.

    Floats are refused rather than truncated: 1.5 ticks silently becoming 1 would put a
    wrong price in the book. Messages match the compiled core so tests can share patterns.
    """
    if type(value) is int:  # fast path: plain ints are what every caller passes
        number = value
    elif isinstance(value, int):
        number = int(value)  # bool or an int subclass: the C conversion keeps the value
    else:
        raise TypeError(f"{what} must be an int, got {type(value).__name__} {value!r}")
    if number < INT64_MIN or number > INT64_MAX:
        raise OverflowError(f"{what} {number} does not fit in int64")
    return number


def _check_level(side: int, price: int, size: int) -> None:
    """Raise the compiled core's BookError for an invalid level (same order, same text)."""
    if side != BID and side != ASK:
        raise BookError(f"side must be BID (0) or ASK (1), got {side}")
    if price <= 0:
        raise BookError(f"price must be a positive tick count, got {price}")
    if size < 0:
        raise BookError(f"size must be a non-negative lot count, got {size}")


class ReferenceBook:
    """A plain-Python L2 book for one instrument, in integer ticks and lots."""

    __slots__ = (
        "_asks",
        "_bids",
        "_crossed",
        "_exch_ts_ns",
        "_max_depth",
        "_name",
        "_recv_ts_ns",
        "_seq",
        "_updates",
    )

    def __init__(self, max_depth: int = 0, name: str = "") -> None:
        if not isinstance(max_depth, int):
            raise TypeError(f"max_depth must be an int, got {type(max_depth).__name__}")
        if max_depth < 0:
            raise BookError(f"max_depth must be >= 0, got {max_depth}")
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}")
        self._max_depth = int(max_depth)
        self._name = name
        # Both sides are keyed by price so the best level sits at one end: the last key for
        # bids, the first for asks. Values are sizes in lots (never 0: 0 means "absent").
        self._bids: SortedDict = SortedDict()
        self._asks: SortedDict = SortedDict()
        self._seq = -1
        self._exch_ts_ns = 0
        self._recv_ts_ns = 0
        self._updates = 0
        self._crossed = False

    # --- read-only state, as the compiled book's readonly attributes ------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def max_depth(self) -> int:
        return self._max_depth

    @property
    def seq(self) -> int:
        return self._seq

    @property
    def exch_ts_ns(self) -> int:
        return self._exch_ts_ns

    @property
    def recv_ts_ns(self) -> int:
        return self._recv_ts_ns

    @property
    def updates(self) -> int:
        return self._updates

    @property
    def crossed(self) -> bool:
        return self._crossed

    @property
    def bid_depth(self) -> int:
        return len(self._bids)

    @property
    def ask_depth(self) -> int:
        return len(self._asks)

    # --- internals ----------------------------------------------------------------------

    def _set(self, side: int, price: int, size: int) -> None:
        """Change one validated level; no truncation and no crossed check."""
        levels = self._bids if side == BID else self._asks
        if size:
            levels[price] = size
        else:
            # Venues delete levels we never held (beyond snapshot depth): not an error.
            levels.pop(price, None)

    def _end_message(self, seq: int, exch_ts_ns: int, recv_ts_ns: int) -> bool:
        """Stamp a finished message, truncate to max_depth and detect a crossed book."""
        self._seq = seq
        self._exch_ts_ns = exch_ts_ns
        self._recv_ts_ns = recv_ts_ns
        self._updates += 1
        depth = self._max_depth
        if depth:
            # Worst bids are the lowest prices (front), worst asks the highest (back).
            bids, asks = self._bids, self._asks
            for _ in range(len(bids) - depth):
                bids.popitem(0)
            for _ in range(len(asks) - depth):
                asks.popitem(-1)
        self._crossed = self._is_crossed()
        return self._crossed

    def _is_crossed(self) -> bool:
        if not self._bids or not self._asks:
            return False
        best_bid: int = self._bids.peekitem(-1)[0]
        best_ask: int = self._asks.peekitem(0)[0]
        return best_bid >= best_ask

    def _validate(self, bids: Iterable[Level], asks: Iterable[Level]) -> list[tuple[int, int, int]]:
        """Convert and check a whole message before any of it touches the book."""
        pending: list[tuple[int, int, int]] = []
        for side, levels in ((BID, bids), (ASK, asks)):
            for level in levels:
                p, q = level
                price = _as_int64(p, "price")
                size = _as_int64(q, "size")
                _check_level(side, price, size)
                pending.append((side, price, size))
        return pending

    # --- Python API ---------------------------------------------------------------------

    def apply(
        self,
        bids: Iterable[Level],
        asks: Iterable[Level],
        seq: int = -1,
        exch_ts_ns: int = 0,
        recv_ts_ns: int = 0,
    ) -> bool:
        """Apply one message of (price, size) pairs; size 0 deletes. Returns crossed."""
        pending = self._validate(bids, asks)
        c_seq = _as_int64(seq, "seq")
        c_exch = _as_int64(exch_ts_ns, "exch_ts_ns")
        c_recv = _as_int64(recv_ts_ns, "recv_ts_ns")
        for side, price, size in pending:
            self._set(side, price, size)
        return self._end_message(c_seq, c_exch, c_recv)

    def load_snapshot(
        self,
        bids: Iterable[Level],
        asks: Iterable[Level],
        seq: int = -1,
        exch_ts_ns: int = 0,
        recv_ts_ns: int = 0,
    ) -> bool:
        """Replace the whole book with a snapshot. Returns True when it is crossed."""
        # Stage into a fresh book first: a bad snapshot raises here and the current book
        # (levels, stamps and counter) stays exactly as it was.
        staged = ReferenceBook(self._max_depth, self._name)
        staged.apply(bids, asks, seq, exch_ts_ns, recv_ts_ns)
        self._bids, self._asks = staged._bids, staged._asks
        self._seq = staged._seq
        self._exch_ts_ns = staged._exch_ts_ns
        self._recv_ts_ns = staged._recv_ts_ns
        self._updates += 1
        self._crossed = staged._crossed
        return self._crossed

    def set(self, side: int, price: int, size: int) -> None:
        """Change one level outside a message (no truncation or crossed check until
        ``finish``)."""
        c_side = _as_int64(side, "side")
        c_price = _as_int64(price, "price")
        c_size = _as_int64(size, "size")
        _check_level(c_side, c_price, c_size)
        self._set(c_side, c_price, c_size)

    def finish(self, seq: int = -1, exch_ts_ns: int = 0, recv_ts_ns: int = 0) -> bool:
        """End a message built with ``set``; returns True when the book is crossed."""
        return self._end_message(
            _as_int64(seq, "seq"),
            _as_int64(exch_ts_ns, "exch_ts_ns"),
            _as_int64(recv_ts_ns, "recv_ts_ns"),
        )

    def clear(self) -> None:
        """Drop every level and the sequence/timestamps (the update counter keeps counting)."""
        self._bids.clear()
        self._asks.clear()
        self._seq = -1
        self._exch_ts_ns = 0
        self._recv_ts_ns = 0
        self._crossed = False

    def best_bid(self) -> Level | None:
        if not self._bids:
            return None
        price: int
        size: int
        price, size = self._bids.peekitem(-1)
        return (price, size)

    def best_ask(self) -> Level | None:
        if not self._asks:
            return None
        price: int
        size: int
        price, size = self._asks.peekitem(0)
        return (price, size)

    def top(self, side: int, n: int = -1) -> list[Level]:
        """Up to ``n`` levels of ``side`` from the best, as (price, size); all when n < 0."""
        if not isinstance(side, int):
            raise TypeError(f"side must be an int, got {type(side).__name__}")
        if side != BID and side != ASK:
            raise BookError(f"side must be BID (0) or ASK (1), got {side}")
        if not isinstance(n, int):
            raise TypeError(f"'{type(n).__name__}' object cannot be interpreted as an integer")
        levels = self._bids if side == BID else self._asks
        # irange(reverse=True) walks bids best-first without building the whole key list.
        prices = levels.irange(reverse=True) if side == BID else iter(levels)
        if n >= 0:
            prices = islice(prices, n)
        return [(price, levels[price]) for price in prices]

    def bids(self, n: int = -1) -> list[Level]:
        return self.top(BID, n)

    def asks(self, n: int = -1) -> list[Level]:
        return self.top(ASK, n)

    def __repr__(self) -> str:
        return (
            f"<ReferenceBook {self._name or '?'} bids={len(self._bids)} "
            f"asks={len(self._asks)} best={self.best_bid()}/{self.best_ask()} seq={self._seq}>"
        )


def _int64_words(buffer: Buffer, what: str) -> list[int]:
    """The int64 words of a C-contiguous buffer (array('q'), numpy int64...)."""
    view = memoryview(buffer)
    if view.itemsize != 8 or view.format.lstrip("@=<") not in ("q", "l"):
        raise ValueError(f"{what} must be a buffer of int64, got format {view.format!r}")
    words: list[int] = view.cast("B").cast("q").tolist()
    return words


def _fold(h: int, word: int) -> int:
    """One FNV-1a step over an int64 word reinterpreted as uint64."""
    return ((h ^ (word & _MASK64)) * _FNV_PRIME) & _MASK64


def replay_packed_reference(book: ReferenceBook, levels: Buffer, ends: Buffer) -> tuple[int, int]:
    """Reference for ``arbengine._core.book.replay_packed``.

    ``levels`` holds (side, price, size) int64 triplets back to back and message m is the
    triplets before index ``ends[m]``. Each message is applied whole (validated first) and
    stamped seq = m, timestamps 0. Returns ``(top_hash, crossed_messages)``: top_hash folds
    best bid price, bid size, ask price, ask size (0s for an empty side) after every message,
    FNV-1a style from the offset basis.

    It matches the compiled function bit for bit, errors included: every end is checked
    (non-decreasing, inside ``levels``) before anything is applied, so a bad ``ends`` leaves
    the book untouched; a bad level in message m raises with messages 0..m-1 applied.
    """
    words = _int64_words(levels, "levels")
    boundaries = _int64_words(ends, "ends")
    start = 0
    for m, end in enumerate(boundaries):
        if end < start:
            raise BookError(f"ends must not decrease (message {m})")
        # Exact integers here, so no overflow can hide an end far past the buffer.
        if end * 3 > len(words):
            raise BookError(f"ends[{m}] = {end} points past the end of levels")
        start = end
    h = _FNV_OFFSET
    crossed = 0
    start = 0
    for m, end in enumerate(boundaries):
        message = [(words[i], words[i + 1], words[i + 2]) for i in range(3 * start, 3 * end, 3)]
        for side, price, size in message:
            _check_level(side, price, size)
        for side, price, size in message:
            book._set(side, price, size)
        crossed += book._end_message(m, 0, 0)
        bid = book.best_bid() or (0, 0)
        ask = book.best_ask() or (0, 0)
        h = _fold(_fold(_fold(_fold(h, bid[0]), bid[1]), ask[0]), ask[1])
        start = end
    return h, crossed
