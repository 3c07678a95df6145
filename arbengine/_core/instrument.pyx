# cython: language_level=3
"""Instrument metadata: tick and lot grids, contract multiplier, minimum size and notional.

Built once from a venue's reference data (or config) and shared by the feed parsers (grids)
and the spread calculator (order rules). Every field is validated here so the hot path can
trust it.
"""

from decimal import Decimal, InvalidOperation

from arbengine._core.errors import FixedPointError
from arbengine._core.fixed cimport Grid


def _check_name(str what, str value):
    if not value or value != value.strip():
        raise FixedPointError(f"instrument {what} must be a non-empty name, got {value!r}")


cdef class Instrument:
    """One tradable instrument on one venue.

    ``tick`` and ``lot`` are the venue's decimal text ("0.01", "0.00001"). For contracts,
    sizes are in contracts and ``multiplier`` gives base units per contract (OKX ctVal).
    ``size_step`` is the quantity grid books are kept on when the feed carries sizes finer
    than the order lot (Binance spot still shows resting orders from before a lot change);
    it defaults to the lot, and the lot must be a whole number of size steps. ``min_size`` is
    in the size unit, on that grid; ``min_notional`` is in quote. ``derivative`` marks a
    futures contract traded in one-way position mode (Binance USDⓈ-M): the portfolio keeps
    its position as a signed base balance that may go negative, and an order on it holds
    back only its fee (see ``portfolio``).
    """

    def __init__(self, str venue, str symbol, str base, str quote, str tick, str lot,
                 str multiplier="1", str min_size="0", str min_notional="0",
                 str size_step=None, bint derivative=False):
        _check_name("venue", venue)
        _check_name("symbol", symbol)
        _check_name("base", base)
        _check_name("quote", quote)
        name = f"{venue}:{symbol}"
        self.venue = venue
        self.symbol = symbol
        self.base = base
        self.quote = quote
        self.price = Grid(tick, f"{name} price")
        self.size = Grid(size_step if size_step is not None else lot, f"{name} size")
        self.lot = self.size.parse(lot)
        if self.lot == 0:
            raise FixedPointError(f"{name}: lot {lot!r} is zero")
        self.multiplier = Grid(multiplier, f"{name} multiplier")
        self.min_size = self.size.parse(min_size)
        try:
            notional = Decimal(min_notional)
        except InvalidOperation:
            notional = None
        if (notional is None or not notional.is_finite() or notional < 0
                or "e" in min_notional.lower()):
            raise FixedPointError(
                f"{name}: min_notional {min_notional!r} is not a non-negative decimal"
            )
        self.min_notional = min_notional
        self.derivative = derivative

    @property
    def name(self):
        return f"{self.venue}:{self.symbol}"

    def __repr__(self):
        return (f"Instrument({self.name} {self.base}/{self.quote} tick={self.price.step} "
                f"lot={self.size.format(self.lot, True)} size_step={self.size.step} "
                f"mult={self.multiplier.step} "
                f"min_size={self.size.format(self.min_size, True)} "
                f"min_notional={self.min_notional}"
                f"{' derivative' if self.derivative else ''})")

    def __reduce__(self):
        return (Instrument, (self.venue, self.symbol, self.base, self.quote, self.price.step,
                             self.size.format(self.lot), self.multiplier.step,
                             self.size.format(self.min_size), self.min_notional,
                             self.size.step, self.derivative))
