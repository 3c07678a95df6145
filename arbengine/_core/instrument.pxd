# Static metadata of one instrument on one venue: its grids and its order rules.

from libc.stdint cimport int64_t

from arbengine._core.fixed cimport Grid


cdef class Instrument:
    cdef readonly str venue
    cdef readonly str symbol
    cdef readonly str base
    cdef readonly str quote
    cdef readonly Grid price            # the tick grid
    cdef readonly Grid size             # quantity grid of books and orders (size unit)
    cdef readonly int64_t lot           # order lot, in size units (>= 1)
    cdef readonly Grid multiplier       # base units per size unit step ("1" spot, ctVal)
    cdef readonly int64_t min_size      # size units
    cdef readonly str min_notional      # quote units, exact decimal text ("0" = none)
    # A futures contract (one-way position): a sell may open a short, and an order needs
    # its fee in quote, not the notional or the base (margin is the venue's business).
    cdef readonly bint derivative
