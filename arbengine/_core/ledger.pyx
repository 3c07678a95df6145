# cython: language_level=3
"""The portfolio figures the risk gates read, as cells the portfolio keeps exact: see
ledger.pxd.

The C fields are what the compiled gates read; Python reads and writes them through the
properties below, which take ints only. Fields are set in ``__cinit__``, which runs however
an object is made, so no cell ever holds None where the gates expect an int.
"""

from cpython.bool cimport PyBool_Check
from cpython.long cimport PyLong_Check
from libc.stdint cimport int64_t

from arbengine._core.ints cimport as_int64
from arbengine._core.wide cimport int128, mirror


cdef inline object _atoms(object value, str what):
    # bool is an int subclass; True atoms is a bug, not an amount.
    if not PyLong_Check(value) or PyBool_Check(value):
        raise TypeError(f"{what} must be int atoms, got {type(value).__name__} {value!r}")
    return value


cdef inline int64_t _count(object value, str what) except? -1:
    if PyBool_Check(value):
        raise TypeError(f"{what} must be an int, got bool {value!r}")
    return as_int64(value, what)


cdef inline str _name(object value, str what):
    if not isinstance(value, str) or not value:
        raise ValueError(f"a ledger {what} must be a non-empty str, got {value!r}")
    return value


cdef class Account:

    def __cinit__(self, str venue, str asset):
        self.venue = _name(venue, "venue")
        self.asset = _name(asset, "asset")
        self.key = (venue, asset)
        self.available = 0
        self.available_w = 0
        self.unfit = 0

    @property
    def available(self):
        return self.available

    @available.setter
    def available(self, value):
        self.available = _atoms(value, "Account.available")
        self.unfit = mirror(value, &self.available_w, self.unfit, 1)

    def __repr__(self):
        return f"Account({self.venue}:{self.asset} available={self.available})"


cdef class AssetLine:

    def __cinit__(self, str asset):
        self.asset = _name(asset, "asset")
        self.inventory = 0
        self.open_buy = 0
        self.open_sell = 0
        self.inventory_w = self.open_buy_w = self.open_sell_w = 0
        self.unfit = 0

    @property
    def inventory(self):
        return self.inventory

    @inventory.setter
    def inventory(self, value):
        self.inventory = _atoms(value, "AssetLine.inventory")
        self.unfit = mirror(value, &self.inventory_w, self.unfit, 1)

    @property
    def open_buy(self):
        return self.open_buy

    @open_buy.setter
    def open_buy(self, value):
        self.open_buy = _atoms(value, "AssetLine.open_buy")
        self.unfit = mirror(value, &self.open_buy_w, self.unfit, 2)

    @property
    def open_sell(self):
        return self.open_sell

    @open_sell.setter
    def open_sell(self, value):
        self.open_sell = _atoms(value, "AssetLine.open_sell")
        self.unfit = mirror(value, &self.open_sell_w, self.unfit, 4)

    def __repr__(self):
        return (f"AssetLine({self.asset} inventory={self.inventory} "
                f"open_buy={self.open_buy} open_sell={self.open_sell})")


cdef class VenueLine:

    def __cinit__(self, str venue):
        self.venue = _name(venue, "venue")
        self.open_orders = 0

    @property
    def open_orders(self):
        return self.open_orders

    @open_orders.setter
    def open_orders(self, value):
        self.open_orders = _count(value, "VenueLine.open_orders")

    def __repr__(self):
        return f"VenueLine({self.venue} open_orders={self.open_orders})"


cdef class Ledger:

    def __cinit__(self):
        self._accounts = {}
        self._assets = {}
        self._venues = {}
        self.open_total = 0

    @property
    def open_total(self):
        return self.open_total

    @open_total.setter
    def open_total(self, value):
        self.open_total = _count(value, "Ledger.open_total")

    cpdef Account account(self, str venue, str asset):
        """The cell of (``venue``, ``asset``), created (zero) on first use."""
        cell = self._accounts.get((venue, asset))
        if cell is None:
            cell = Account(venue, asset)
            self._accounts[(<Account>cell).key] = cell
        return <Account>cell

    cpdef AssetLine asset(self, str asset):
        """The cell of ``asset``, created (zero) on first use."""
        cell = self._assets.get(asset)
        if cell is None:
            cell = self._assets[asset] = AssetLine(asset)
        return <AssetLine>cell

    cpdef VenueLine venue(self, str venue):
        """The cell of ``venue``, created (zero) on first use."""
        cell = self._venues.get(venue)
        if cell is None:
            cell = self._venues[venue] = VenueLine(venue)
        return <VenueLine>cell

    def accounts(self):
        """Every Account made so far, in the order they were first looked up."""
        return list(self._accounts.values())

    def asset_lines(self):
        """Every AssetLine made so far, in the order they were first looked up."""
        return list(self._assets.values())

    def venue_lines(self):
        """Every VenueLine made so far, in the order they were first looked up."""
        return list(self._venues.values())

    def __repr__(self):
        return (f"Ledger({len(self._accounts)} accounts, {len(self._assets)} assets, "
                f"{len(self._venues)} venues, open_total={self.open_total})")
