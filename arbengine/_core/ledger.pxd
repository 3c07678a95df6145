# The portfolio numbers the risk gates read on every arb, as C struct fields.
#
# The arb check needs, per arb, a handful of portfolio figures: open orders per venue and in
# total, what each leg's account has available, the base asset's inventory (== net exposure)
# and what open orders on it may still add or remove. Asked through Python methods these were
# nine calls with dict lookups on tuple keys, and under load every one ran cache-cold: about
# half of the check's time. Here each figure is a field of a small cell object. The portfolio
# (``arbengine.portfolio.Portfolio``, or any ``arbengine.risk.PortfolioView``) keeps the cells
# exact in the same call that changes the figure; the gates look their cells up once, when
# their per-venue/per-instrument/per-pair state is built, hold the references, and read the
# fields without calling anything.
#
# That only works if a cell, once handed out, is the one that is updated for ever: ``Ledger``
# gets or creates a cell per key and never replaces or drops it. A cell nobody has touched
# holds zero, which is what the portfolio answers for an unknown key, so a lookup made before
# any activity (the gates at startup) is indistinguishable from no lookup.
#
# Amounts are atoms (10**-18 of an asset) and exceed int64, so they are Python ints
# (``object``, compared by CPython's long arithmetic without the interpreter); counts are
# int64. The fields are private at C level and reach Python through properties that refuse
# anything but an int (a float would silently lose atoms, and Cython would truncate one into
# an int64 field).
#
# Each amount also has an int128 copy (``*_w``), kept by the same setter, for the gates' C
# path; ``unfit`` is nonzero while some amount of the cell is beyond int128 (never, for a
# real account), and the gates then take their exact Python-int path.

from libc.stdint cimport int64_t

from arbengine._core.wide cimport int128


cdef class Account:
    """One (venue, asset): what the account has available to new orders."""
    cdef readonly str venue
    cdef readonly str asset
    cdef readonly tuple key  # (venue, asset): the ledger's key, reusable as the caller's
    cdef object available  # balance minus the reservations of open orders, atoms (may be < 0)
    cdef int128 available_w
    cdef int unfit


cdef class AssetLine:
    """One asset across every venue."""
    cdef readonly str asset
    # Net change of the asset since the start from trading (fills and fees), atoms. The
    # portfolio defines net exposure as this same number (see arbengine.portfolio), so the
    # gates read it for both the inventory and the exposure limits; a view that told them
    # apart would need a second field.
    cdef object inventory
    # Base atoms that open BUY / SELL orders of this base asset may still add / remove (what
    # ``Portfolio.in_flight`` returns): the worst case on top of ``inventory``.
    cdef object open_buy
    cdef object open_sell
    cdef int128 inventory_w
    cdef int128 open_buy_w
    cdef int128 open_sell_w
    cdef int unfit  # a bit per amount: 1 inventory, 2 open_buy, 4 open_sell


cdef class VenueLine:
    """One venue."""
    cdef readonly str venue
    cdef int64_t open_orders  # orders holding a reservation: in flight, acked or UNKNOWN


cdef class Ledger:
    """Every cell, by key. Get-or-create only: a cell is never replaced or removed, because
    the gates hold references to the cells they read."""
    cdef dict _accounts  # (venue, asset) -> Account
    cdef dict _assets  # asset -> AssetLine
    cdef dict _venues  # venue -> VenueLine
    cdef int64_t open_total  # orders holding a reservation, every venue

    cpdef Account account(self, str venue, str asset)
    cpdef AssetLine asset(self, str asset)
    cpdef VenueLine venue(self, str venue)
