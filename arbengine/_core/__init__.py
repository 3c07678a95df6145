"""The compiled hot path: exact fixed-point grids, the L2 book and the spread calculator.

Every module here except ``errors`` is a Cython extension; there is no pure-Python fallback
(a reference book for tests lives in tests/reference).
"""

from arbengine._core.book import ASK, BID, Book, replay_packed
from arbengine._core.errors import BookError, CoreError, FixedPointError, SpreadError
from arbengine._core.fixed import Grid, format_text
from arbengine._core.instrument import Instrument
from arbengine._core.spread import (
    BELOW_MIN_NOTIONAL,
    BELOW_MIN_SIZE,
    BUY_A_SELL_B,
    BUY_B_SELL_A,
    EMPTY_BOOK,
    NO_CAPACITY,
    NO_EDGE,
    NO_RATE,
    OK,
    SpreadCalculator,
    SpreadResult,
)

__all__ = [
    "ASK",
    "BELOW_MIN_NOTIONAL",
    "BELOW_MIN_SIZE",
    "BID",
    "BUY_A_SELL_B",
    "BUY_B_SELL_A",
    "EMPTY_BOOK",
    "NO_CAPACITY",
    "NO_EDGE",
    "NO_RATE",
    "OK",
    "Book",
    "BookError",
    "CoreError",
    "FixedPointError",
    "Grid",
    "Instrument",
    "SpreadCalculator",
    "SpreadError",
    "SpreadResult",
    "format_text",
    "replay_packed",
]
