# cython: language_level=3, boundscheck=False, wraparound=False
"""The risk gates a new arb passes, compiled: see gates.pxd and arbengine.risk.

``GateCore.check`` runs the gates in the order arbengine.risk's docstring gives (cheapest and
most often decisive first, the only state change last). ``RiskGates`` subclasses
``GateCore``; a pure-Python copy of the check in tests/reference/risk.py is the oracle the
tests hold this one to, case by case.
"""

import time

cimport cython

from cpython.long cimport PyLong_Check
from cpython.ref cimport PyObject
from libc.stdint cimport INT64_MAX as INT64_MAX_C
from libc.stdint cimport INT64_MIN, int64_t
from posix.time cimport CLOCK_MONOTONIC, CLOCK_REALTIME, clock_gettime, timespec

from arbengine._core.book cimport Book
from arbengine._core.instrument cimport Instrument
from arbengine._core.ints cimport as_int64
from arbengine._core.ledger cimport Account, AssetLine
from arbengine.venues._clock cimport ClockOffset
from arbengine._core.spread cimport BUY_A_SELL_B, OK, SpreadResult, edge_fraction
from arbengine._core.wide cimport (
    add128,
    int128,
    int128_from_py,
    int128_to_py,
    mirror,
    mul128,
    sub128,
)

cdef object INT64_MAX = 2**63 - 1


cdef inline int64_t _clock_ns(int which) except? -1:
    cdef timespec ts
    if clock_gettime(which, &ts) != 0:
        raise OSError("clock_gettime failed")
    return <int64_t>ts.tv_sec * 1_000_000_000 + ts.tv_nsec


cdef inline int128 _bucket_amount(object value, str what) except? -1:
    # Bucket amounts come from validated rate limits (tokens x units per token): anything
    # beyond int128 is a bug, not a limit.
    cdef int128 out
    if not int128_from_py(value, &out):
        raise OverflowError(f"Bucket.{what} must be an int within int128, got {value!r}")
    return out


cdef inline bint _fits64(object value, int64_t* out) except -1:
    cdef int128 wide
    if not int128_from_py(value, &wide) or not INT64_MIN <= wide <= INT64_MAX_C:
        return False
    out[0] = <int64_t>wide
    return True


cdef class Bucket:

    cdef int128 refill_w(self, int64_t now) noexcept:
        # level + (now - stamp) * rate, capped; a product past int128 is past the cap too.
        cdef int128 add, level
        if now > self.stamp:
            if (mul128(<int128>(now - self.stamp), self.rate, &add)
                    or add128(self.level, add, &level) or level >= self.cap):
                level = self.cap
            self.level = level
            self.stamp = now
        return self.level

    cpdef object refill(self, int64_t now):
        return int128_to_py(self.refill_w(now))

    @property
    def unit(self):
        return int128_to_py(self.unit)

    @unit.setter
    def unit(self, value):
        self.unit = _bucket_amount(value, "unit")

    @property
    def rate(self):
        return int128_to_py(self.rate)

    @rate.setter
    def rate(self, value):
        self.rate = _bucket_amount(value, "rate")

    @property
    def cap(self):
        return int128_to_py(self.cap)

    @cap.setter
    def cap(self, value):
        self.cap = _bucket_amount(value, "cap")

    @property
    def reserve(self):
        return int128_to_py(self.reserve)

    @reserve.setter
    def reserve(self, value):
        self.reserve = _bucket_amount(value, "reserve")

    @property
    def level(self):
        return int128_to_py(self.level)

    @level.setter
    def level(self, value):
        self.level = _bucket_amount(value, "level")


cdef inline bint _take_w(PyObject** buckets, int128* costs, int n, int64_t now,
                         bint priority) noexcept:
    # take() on a pair's unpacked takes (PairGate.take_buckets/take_costs).
    cdef int i
    cdef Bucket b
    for i in range(n):
        b = <Bucket>buckets[i]
        # level - cost < floor; costs and reserves are far below int128, so no overflow
        if b.refill_w(now) < costs[i] + (0 if priority else b.reserve):
            return False
    for i in range(n):
        b = <Bucket>buckets[i]
        b.level -= costs[i]
    return True


cpdef bint take(tuple takes, int64_t now, bint priority) except -1:
    """All or nothing: every bucket must allow its cost before any is charged; non-priority
    takes must leave each bucket's reserve in place."""
    cdef Bucket b
    cdef tuple t
    for t in takes:
        b = <Bucket>t[0]
        if b.refill_w(now) < _bucket_amount(t[1], "cost") + (0 if priority else b.reserve):
            return False
    for t in takes:
        b = <Bucket>t[0]
        b.level -= _bucket_amount(t[1], "cost")
    return True


cdef class VenueState:
    pass


cdef class Rules:

    def __cinit__(self):
        # Every amount unset: the C path is closed until all of them are ints.
        self.unfit = (1 << 7) - 1

    @property
    def lot(self):
        return self.lot

    @lot.setter
    def lot(self, value):
        self.lot = value
        self.unfit = mirror(value, &self.lot_w, self.unfit, 1)

    @property
    def min_size(self):
        return self.min_size

    @min_size.setter
    def min_size(self, value):
        self.min_size = value
        self.unfit = mirror(value, &self.min_size_w, self.unfit, 2)

    @property
    def min_notional(self):
        return self.min_notional

    @min_notional.setter
    def min_notional(self, value):
        self.min_notional = value
        self.unfit = mirror(value, &self.min_notional_w, self.unfit, 4)

    @property
    def base_per_size(self):
        return self.base_per_size

    @base_per_size.setter
    def base_per_size(self, value):
        self.base_per_size = value
        self.unfit = mirror(value, &self.base_per_size_w, self.unfit, 8)

    @property
    def quote_per_px_size(self):
        return self.quote_per_px_size

    @quote_per_px_size.setter
    def quote_per_px_size(self, value):
        self.quote_per_px_size = value
        self.unfit = mirror(value, &self.quote_per_px_size_w, self.unfit, 16)

    @property
    def fee_num(self):
        return self.fee_num

    @fee_num.setter
    def fee_num(self, value):
        self.fee_num = value
        self.unfit = mirror(value, &self.fee_num_w, self.unfit, 32)

    @property
    def fee_den(self):
        return self.fee_den

    @fee_den.setter
    def fee_den(self, value):
        self.fee_den = value
        self.unfit = mirror(value, &self.fee_den_w, self.unfit, 64)

    cdef int conform(self, object price, object size) except -1:
        # Prices are counts of ticks, so an int is on the tick grid by construction; what can
        # still be wrong is its range. Sizes are counts of the size grid, which may be finer
        # than the order lot (Binance shows sizes below its lot).
        if price <= 0 or price > INT64_MAX:
            return R_BAD_PRICE
        if size <= 0 or size > INT64_MAX:
            return R_BAD_SIZE
        if size % self.lot:
            return R_OFF_LOT
        if size < self.min_size:
            return R_BELOW_MIN_SIZE
        if price * size * self.quote_per_px_size < self.min_notional:
            return R_BELOW_MIN_NOTIONAL
        return R_OK

    @cython.cdivision(True)
    cdef int conform_w(self, int64_t price, int64_t size, int128 notional) noexcept nogil:
        # conform() for the C path: ``notional`` is price * size * quote_per_px_size, formed
        # by the caller, whose lot is > 0 (else it takes the Python-int path).
        if price <= 0:
            return R_BAD_PRICE
        if size <= 0:
            return R_BAD_SIZE
        # An int64 remainder (one instruction; an int128 one is a libgcc call): a lot past
        # int64 is larger than any size, which is then off the lot.
        if self.lot_w > INT64_MAX_C or size % <int64_t>self.lot_w:
            return R_OFF_LOT
        if size < self.min_size_w:
            return R_BELOW_MIN_SIZE
        if notional < self.min_notional_w:
            return R_BELOW_MIN_NOTIONAL
        return R_OK

    def check_conform(self, price, size):
        """``conform`` for the Python side (hedge checks): a reason code."""
        return self.conform(price, size)


cdef class PairGate:

    def __cinit__(self):
        self.unfit = (1 << 10) - 1
        self.takes = ()
        self.n_takes = 0

    @property
    def min_edge_num(self):
        return self.min_edge_num

    @min_edge_num.setter
    def min_edge_num(self, value):
        self.min_edge_num = value
        self.unfit = mirror(value, &self.min_edge_num_w, self.unfit, 1)

    @property
    def min_edge_den(self):
        return self.min_edge_den

    @min_edge_den.setter
    def min_edge_den(self, value):
        self.min_edge_den = value
        self.unfit = mirror(value, &self.min_edge_den_w, self.unfit, 2)

    @property
    def max_edge_num(self):
        return self.max_edge_num

    @max_edge_num.setter
    def max_edge_num(self, value):
        self.max_edge_num = value
        self.unfit = mirror(value, &self.max_edge_num_w, self.unfit, 4)

    @property
    def max_edge_den(self):
        return self.max_edge_den

    @max_edge_den.setter
    def max_edge_den(self, value):
        self.max_edge_den = value
        self.unfit = mirror(value, &self.max_edge_den_w, self.unfit, 8)

    @property
    def min_base(self):
        return self.min_base

    @min_base.setter
    def min_base(self, value):
        self.min_base = value
        self.unfit = mirror(value, &self.min_base_w, self.unfit, 16)

    @property
    def max_base(self):
        return self.max_base

    @max_base.setter
    def max_base(self, value):
        self.max_base = value
        self.unfit = mirror(value, &self.max_base_w, self.unfit, 32)

    @property
    def min_notional(self):
        return self.min_notional

    @min_notional.setter
    def min_notional(self, value):
        self.min_notional = value
        self.unfit = mirror(value, &self.min_notional_w, self.unfit, 64)

    @property
    def max_notional(self):
        return self.max_notional

    @max_notional.setter
    def max_notional(self, value):
        self.max_notional = value
        self.unfit = mirror(value, &self.max_notional_w, self.unfit, 128)

    @property
    def max_inventory(self):
        return self.max_inventory

    @max_inventory.setter
    def max_inventory(self, value):
        self.max_inventory = value
        self.unfit = mirror(value, &self.max_inventory_w, self.unfit, 256)

    @property
    def max_exposure(self):
        return self.max_exposure

    @max_exposure.setter
    def max_exposure(self, value):
        self.max_exposure = value
        self.unfit = mirror(value, &self.max_exposure_w, self.unfit, 512)

    @property
    def takes(self):
        return self.takes

    @takes.setter
    def takes(self, tuple value):
        # Unpacked for the C path; the tuple keeps the buckets alive.
        cdef int n = len(value)
        cdef int i
        cdef tuple t
        self.takes = value
        self.n_takes = -1
        if n > MAX_TAKES:
            return
        for i in range(n):
            t = value[i]
            if not isinstance(t[0], Bucket) or not int128_from_py(t[1], &self.take_costs[i]):
                return
            self.take_buckets[i] = <PyObject*>t[0]
        self.n_takes = n


cdef class GateCore:

    def __cinit__(self, *args, **kwargs):
        self.c_path = True

    @property
    def _level(self):
        return self._level

    @_level.setter
    def _level(self, level):
        self._level = level
        self._halted = bool(level)

    def _set_clocks(self, clock, wall_clock):
        self._clock = clock
        self._wall = wall_clock
        # The default clocks are read straight from the kernel: a Python call each would
        # cost more than the gates' whole arithmetic.
        self._native_clock = clock is time.monotonic_ns
        self._native_wall = wall_clock is time.time_ns

    cdef int64_t _now(self) except? -1:
        if self._native_clock:
            return _clock_ns(CLOCK_MONOTONIC)
        return self._clock()

    cdef int64_t _wall_now(self) except? -1:
        if self._native_wall:
            return _clock_ns(CLOCK_REALTIME)
        return self._wall()

    cpdef int check(
        self,
        str pair_id,
        Instrument buy,
        Instrument sell,
        object bp,
        object bz,
        object sp,
        object sz,
        bint buy_live,
        object buy_updated_ns,
        bint sell_live,
        object sell_updated_ns,
        object edge_num,
        object edge_den,
        object trigger_recv_ns,
        object exch_ts_ns,
        object clock_offset_ns,
    ) except -1:
        """Every gate on a new arb: buy ``bz`` at ``bp`` of ``buy``, sell ``sz`` at ``sp`` of
        ``sell`` (grid units), net edge ``edge_num / edge_den`` bps (``edge_den`` > 0).
        Returns a reason code (0: pass, and both venues' order tokens are taken) and counts
        it. ``clock_offset_ns`` is None when the venue has no offset estimate."""
        # Exact ints only: a float price would go into an order, a float time would be
        # truncated. PyLong_Check is a type-flag test, cheap enough for every call.
        if not (PyLong_Check(bp) and PyLong_Check(bz) and PyLong_Check(sp) and PyLong_Check(sz)):
            raise TypeError("prices and sizes must be ints (grid units)")
        if not (PyLong_Check(edge_num) and PyLong_Check(edge_den)) or edge_den <= 0:
            raise TypeError(f"the edge must be two ints, den > 0, got {edge_num!r}/{edge_den!r}")
        if clock_offset_ns is not None and not PyLong_Check(clock_offset_ns):
            raise TypeError(f"clock_offset_ns must be an int or None, got {clock_offset_ns!r}")
        cdef int64_t buy_updated = as_int64(buy_updated_ns, "buy_updated_ns")
        cdef int64_t sell_updated = as_int64(sell_updated_ns, "sell_updated_ns")
        cdef int64_t recv = as_int64(trigger_recv_ns, "trigger_recv_ns")
        cdef int64_t exch_ts = as_int64(exch_ts_ns, "exch_ts_ns")
        cdef int reason
        cdef PairGate pair
        cdef Rules a, b, rb, rs
        cdef int64_t bp_c, bz_c, sp_c, sz_c, off = 0
        cdef int128 en, ed
        if self._halted:
            reason = R_KILL_SWITCH
        else:
            pair = self._pairs.get(pair_id)
            if pair is None:
                reason = R_UNKNOWN_PAIR
            else:
                a, b = pair.a, pair.b
                if buy is a.instrument and sell is b.instrument:
                    rb, rs = a, b
                elif buy is b.instrument and sell is a.instrument:
                    rb, rs = b, a
                else:  # equal instruments built elsewhere, or a wrong mapping: slow path
                    rb_ = self._lookup(buy)
                    rs_ = self._lookup(sell)
                    if (rb_ is a and rs_ is b) or (rb_ is b and rs_ is a):
                        rb, rs = rb_, rs_
                    else:
                        rb = rs = None
                if rb is None:
                    reason = R_WRONG_INSTRUMENT
                else:
                    reason = GATES_SLOW
                    if (self.c_path and _fits64(bp, &bp_c) and _fits64(bz, &bz_c)
                            and _fits64(sp, &sp_c) and _fits64(sz, &sz_c)
                            and int128_from_py(edge_num, &en)
                            and int128_from_py(edge_den, &ed)
                            and (clock_offset_ns is None or _fits64(clock_offset_ns, &off))):
                        reason = self._gates_w(
                            pair, rb, rs, bp_c, bz_c, sp_c, sz_c, buy_live, buy_updated,
                            sell_live, sell_updated, en, ed, recv, exch_ts,
                            clock_offset_ns is not None, off,
                        )
                    if reason == GATES_SLOW:
                        self.slow_checks += 1
                        reason = self._gates(
                            pair, rb, rs, bp, bz, sp, sz, buy_live, buy_updated, sell_live,
                            sell_updated, edge_num, edge_den, recv, exch_ts, clock_offset_ns,
                        )
        cdef list counts = self.counts
        counts[reason] = <object>counts[reason] + 1
        return reason

    cdef int _gates(
        self,
        PairGate pair,
        Rules rb,
        Rules rs,
        object bp,
        object bz,
        object sp,
        object sz,
        bint buy_live,
        int64_t buy_updated_ns,
        bint sell_live,
        int64_t sell_updated_ns,
        object edge_num,
        object edge_den,
        int64_t trigger_recv_ns,
        int64_t exch_ts_ns,
        object clock_offset_ns,
    ) except -1:
        # The caller has checked the kill switch (first, as the reference does) and found
        # the pair and its legs' rules.
        # edge < min (fractions with positive denominators, cross-multiplied)
        if edge_num * pair.min_edge_den < pair.min_edge_num * edge_den:
            return R_EDGE_TOO_SMALL
        if edge_num * pair.max_edge_den > pair.max_edge_num * edge_den:
            return R_EDGE_TOO_LARGE

        cdef VenueState vb = rb.venue, vs = rs.venue
        if not buy_live:
            self.last_venue = vb.name
            return R_BOOK_NOT_LIVE
        if not sell_live:
            self.last_venue = vs.name
            return R_BOOK_NOT_LIVE
        cdef int64_t now = self._now()
        if now - buy_updated_ns > vb.max_age:
            self.last_venue = vb.name
            return R_BOOK_STALE
        if now - sell_updated_ns > vs.max_age:
            self.last_venue = vs.name
            return R_BOOK_STALE
        if now - trigger_recv_ns > self._max_age:
            return R_DATA_AGE
        if exch_ts_ns:
            if clock_offset_ns is None:
                return R_NO_CLOCK_OFFSET
            # (local wall - venue clock + floor latency) removed: what is left is how much
            # older than the network floor the event is, by the venue's own clock.
            if self._wall_now() - exch_ts_ns - clock_offset_ns > self._max_age:
                return R_VENUE_LAG

        if vb.open_until and (now < vb.open_until or now < vb.trial_until):
            self.last_venue = vb.name
            return R_CIRCUIT_OPEN
        if vs.open_until and (now < vs.open_until or now < vs.trial_until):
            self.last_venue = vs.name
            return R_CIRCUIT_OPEN
        if now < vb.unhealthy_until:
            self.last_venue = vb.name
            return R_VENUE_UNHEALTHY
        if now < vs.unhealthy_until:
            self.last_venue = vs.name
            return R_VENUE_UNHEALTHY

        cdef int reason = rb.conform(bp, bz)
        if reason:
            self.last_venue = vb.name
            return reason
        reason = rs.conform(sp, sz)
        if reason:
            self.last_venue = vs.name
            return reason
        buy_base = bz * rb.base_per_size
        sell_base = sz * rs.base_per_size
        buy_notional = bp * bz * rb.quote_per_px_size
        sell_notional = sp * sz * rs.quote_per_px_size
        if buy_base < pair.min_base or sell_base < pair.min_base:
            return R_SIZE_TOO_SMALL
        if buy_base > pair.max_base or sell_base > pair.max_base:
            return R_SIZE_TOO_LARGE
        if buy_notional < pair.min_notional or sell_notional < pair.min_notional:
            return R_NOTIONAL_TOO_SMALL
        if buy_notional > pair.max_notional or sell_notional > pair.max_notional:
            return R_NOTIONAL_TOO_LARGE

        # The portfolio, read from its ledger's cells (struct fields, nothing called). They
        # are other objects' memory, likely cache-cold, so they still come after everything
        # that can refuse without them.
        if pair.same_venue:
            if vb.line.open_orders + 2 > vb.max_open:
                self.last_venue = vb.name
                return R_MAX_OPEN_ORDERS
        else:
            if vb.line.open_orders >= vb.max_open:
                self.last_venue = vb.name
                return R_MAX_OPEN_ORDERS
            if vs.line.open_orders >= vs.max_open:
                self.last_venue = vs.name
                return R_MAX_OPEN_ORDERS
        if self._ledger.open_total + 2 > self._max_open_total:
            return R_MAX_OPEN_ORDERS_TOTAL
        fee = -((-buy_notional * rb.fee_num) // rb.fee_den)
        buy_need = fee if rb.derivative else buy_notional + fee
        if rb.quote_account.available < buy_need:
            self.last_venue = vb.name
            return R_INSUFFICIENT_BALANCE
        if rs.derivative:
            # Its fee, from the quote; after the buy leg's need if that is the same account.
            sell_need = -((-sell_notional * rs.fee_num) // rs.fee_den)
            if rs.quote_account is rb.quote_account:
                sell_need += buy_need
            if rs.quote_account.available < sell_need:
                self.last_venue = vs.name
                return R_INSUFFICIENT_BALANCE
        elif rs.base_account.available < sell_base:
            self.last_venue = vs.name
            return R_INSUFFICIENT_BALANCE
        cdef AssetLine line = pair.asset
        # The portfolio's net exposure is its inventory (ledger.pxd): one field for both.
        exposure = line.inventory
        if abs(exposure + (buy_base - sell_base)) > pair.max_inventory:
            return R_MAX_INVENTORY
        limit = pair.max_exposure
        if abs(exposure) > limit:
            self._exposure_breached(pair.base, exposure, limit)
            return R_MAX_EXPOSURE
        # Worst case: one leg fills and the other does not, and so does every order already
        # in flight on this asset (other pairs' legs, UNKNOWN outcomes).
        if (exposure + line.open_buy + buy_base > limit
                or sell_base + line.open_sell - exposure > limit):
            return R_MAX_EXPOSURE

        if not take(pair.takes, now, False):
            return R_RATE_LIMITED
        if vb.open_until:  # half-open (an open one was refused above): claim the trial
            vb.trial_until = now + vb.cooldown
        if vs.open_until:
            vs.trial_until = now + vs.cooldown
        return R_OK


    cdef int _gates_w(
        self,
        PairGate pair,
        Rules rb,
        Rules rs,
        int64_t bp,
        int64_t bz,
        int64_t sp,
        int64_t sz,
        bint buy_live,
        int64_t buy_updated_ns,
        bint sell_live,
        int64_t sell_updated_ns,
        int128 edge_num,
        int128 edge_den,
        int64_t trigger_recv_ns,
        int64_t exch_ts_ns,
        bint has_offset,
        int64_t clock_offset_ns,
    ) except -1:
        # ``_gates`` in C: the same gates in the same order on the int128 copies. Why: each
        # Python-int operation is a call into CPython and a fresh object, and on the arb path
        # they all run cache-cold (one arb after thousands of book updates). Everything that
        # could overflow is formed first, so GATES_SLOW leaves no state changed.
        cdef VenueState vb = rb.venue, vs = rs.venue
        cdef Account qa = rb.quote_account, ba = rs.base_account
        cdef AssetLine line = pair.asset
        # A derivative's sell leg spends quote (its fee); when that is the buy leg's
        # account too, both needs add up: rare enough to leave to the Python-int path.
        if rs.derivative:
            ba = rs.quote_account
        if (pair.unfit or rb.unfit or rs.unfit or pair.n_takes < 0 or qa.unfit or ba.unfit
                or line.unfit or edge_den <= 0 or rb.fee_den_w <= 0 or rs.fee_den_w <= 0
                or (rs.derivative and ba is qa)):
            return GATES_SLOW
        cdef int128 e1, e2, e3, e4
        cdef int128 buy_base, sell_base, buy_notional, sell_notional, fee_n, sell_fee_n = 0
        cdef int128 slack, sell_slack = 0, net, worst_buy, worst_sell
        cdef int128 exposure = line.inventory_w
        if (mul128(edge_num, pair.min_edge_den_w, &e1)
                or mul128(pair.min_edge_num_w, edge_den, &e2)
                or mul128(edge_num, pair.max_edge_den_w, &e3)
                or mul128(pair.max_edge_num_w, edge_den, &e4)
                or mul128(bz, rb.base_per_size_w, &buy_base)
                or mul128(sz, rs.base_per_size_w, &sell_base)
                or mul128(<int128>bp * bz, rb.quote_per_px_size_w, &buy_notional)
                or mul128(<int128>sp * sz, rs.quote_per_px_size_w, &sell_notional)
                or mul128(buy_notional, rb.fee_num_w, &fee_n)
                or sub128(qa.available_w, 0 if rb.derivative else buy_notional, &slack)
                or mul128(slack, rb.fee_den_w, &slack)
                or (rs.derivative and (mul128(sell_notional, rs.fee_num_w, &sell_fee_n)
                                       or mul128(ba.available_w, rs.fee_den_w, &sell_slack)))
                or sub128(buy_base, sell_base, &net)
                or add128(exposure, net, &net)
                or add128(exposure, line.open_buy_w, &worst_buy)
                or add128(worst_buy, buy_base, &worst_buy)
                or sub128(sell_base, exposure, &worst_sell)
                or add128(worst_sell, line.open_sell_w, &worst_sell)
                or rb.lot_w <= 0 or rs.lot_w <= 0):
            return GATES_SLOW

        if e1 < e2:
            return R_EDGE_TOO_SMALL
        if e3 > e4:
            return R_EDGE_TOO_LARGE
        if not buy_live:
            self.last_venue = vb.name
            return R_BOOK_NOT_LIVE
        if not sell_live:
            self.last_venue = vs.name
            return R_BOOK_NOT_LIVE
        cdef int64_t now = self._now()
        if now - buy_updated_ns > vb.max_age:
            self.last_venue = vb.name
            return R_BOOK_STALE
        if now - sell_updated_ns > vs.max_age:
            self.last_venue = vs.name
            return R_BOOK_STALE
        if now - trigger_recv_ns > self._max_age:
            return R_DATA_AGE
        if exch_ts_ns:
            if not has_offset:
                return R_NO_CLOCK_OFFSET
            if <int128>self._wall_now() - exch_ts_ns - clock_offset_ns > self._max_age:
                return R_VENUE_LAG

        if vb.open_until and (now < vb.open_until or now < vb.trial_until):
            self.last_venue = vb.name
            return R_CIRCUIT_OPEN
        if vs.open_until and (now < vs.open_until or now < vs.trial_until):
            self.last_venue = vs.name
            return R_CIRCUIT_OPEN
        if now < vb.unhealthy_until:
            self.last_venue = vb.name
            return R_VENUE_UNHEALTHY
        if now < vs.unhealthy_until:
            self.last_venue = vs.name
            return R_VENUE_UNHEALTHY

        cdef int reason = rb.conform_w(bp, bz, buy_notional)
        if reason:
            self.last_venue = vb.name
            return reason
        reason = rs.conform_w(sp, sz, sell_notional)
        if reason:
            self.last_venue = vs.name
            return reason
        if buy_base < pair.min_base_w or sell_base < pair.min_base_w:
            return R_SIZE_TOO_SMALL
        if buy_base > pair.max_base_w or sell_base > pair.max_base_w:
            return R_SIZE_TOO_LARGE
        if buy_notional < pair.min_notional_w or sell_notional < pair.min_notional_w:
            return R_NOTIONAL_TOO_SMALL
        if buy_notional > pair.max_notional_w or sell_notional > pair.max_notional_w:
            return R_NOTIONAL_TOO_LARGE

        if pair.same_venue:
            if vb.line.open_orders + 2 > vb.max_open:
                self.last_venue = vb.name
                return R_MAX_OPEN_ORDERS
        else:
            if vb.line.open_orders >= vb.max_open:
                self.last_venue = vb.name
                return R_MAX_OPEN_ORDERS
            if vs.line.open_orders >= vs.max_open:
                self.last_venue = vs.name
                return R_MAX_OPEN_ORDERS
        if self._ledger.open_total + 2 > self._max_open_total:
            return R_MAX_OPEN_ORDERS_TOTAL
        # available < notional + ceil(fee_n / den)  <=>  (available - notional) * den < fee_n
        # (den > 0): the same verdict without an int128 division.
        if slack < fee_n:
            self.last_venue = vb.name
            return R_INSUFFICIENT_BALANCE
        if rs.derivative:
            if sell_slack < sell_fee_n:  # available < ceil(fee_n / den), as for the buy leg
                self.last_venue = vs.name
                return R_INSUFFICIENT_BALANCE
        elif ba.available_w < sell_base:
            self.last_venue = vs.name
            return R_INSUFFICIENT_BALANCE
        if (net if net >= 0 else -net) > pair.max_inventory_w:
            return R_MAX_INVENTORY
        cdef int128 limit = pair.max_exposure_w
        if (exposure if exposure >= 0 else -exposure) > limit:
            self._exposure_breached(pair.base, line.inventory, pair.max_exposure)
            return R_MAX_EXPOSURE
        if worst_buy > limit or worst_sell > limit:
            return R_MAX_EXPOSURE

        if not _take_w(pair.take_buckets, pair.take_costs, pair.n_takes, now, False):
            return R_RATE_LIMITED
        if vb.open_until:  # half-open (an open one was refused above): claim the trial
            vb.trial_until = now + vb.cooldown
        if vs.open_until:
            vs.trial_until = now + vs.cooldown
        return R_OK


cdef class ArbGate:

    def __init__(self, GateCore core, str pair_id, Instrument a, Instrument b, Book book_a,
                 Book book_b, wall=None):
        """Bind the gates' pair ``pair_id`` to an engine pair whose calculator buys and
        sells ``a`` and ``b`` on ``book_a`` and ``book_b``. ``wall`` (epoch ns) feeds the
        venue clock offsets; None reads the kernel's realtime clock."""
        cdef PairGate pair = core._pairs.get(pair_id)
        if pair is None:
            raise ValueError(f"pair {pair_id}: no risk limits for it")
        ra = core._lookup(a)
        rb = core._lookup(b)
        if not ((ra is pair.a and rb is pair.b) or (ra is pair.b and rb is pair.a)):
            raise ValueError(
                f"pair {pair_id}: its instruments {a.name} and {b.name} are not the ones its "
                f"risk limits give ({pair.a.instrument.name}, {pair.b.instrument.name})"
            )
        if wall is not None and not callable(wall):
            raise TypeError(f"wall must be a clock (callable) or None, got {wall!r}")
        self.core = core
        self.pair = pair
        self.rules_a = ra
        self.rules_b = rb
        self.book_a = book_a
        self.book_b = book_b
        self.wall = wall

    cpdef int check(self, SpreadResult res, bint live_a, bint live_b, object recv_ns,
                    Book trigger, object trigger_clock) except -1:
        """Every gate on the arb ``res`` describes (an OK result of this pair's calculator),
        the same gates in the same order as ``GateCore.check``. ``trigger`` is the book whose
        change found it (a side's or the conversion book), ``trigger_clock`` its venue's
        ClockOffset or None. Returns the reason code and counts it; on 0 both venues' order
        tokens are taken."""
        if res.status != OK:
            raise ValueError(f"only an OK spread result can be checked, got status {res.status}")
        cdef int64_t recv = as_int64(recv_ns, "recv_ns")
        cdef GateCore core = self.core
        cdef int reason
        cdef Rules rb, rs
        cdef Book bb, bs
        cdef bint lb, ls
        cdef int64_t exch_ts, wall, off = 0
        cdef bint has_offset = False, ok
        cdef int128 edge_num, edge_den
        cdef tuple edge
        if core._halted:
            reason = R_KILL_SWITCH
        else:
            if res.direction == BUY_A_SELL_B:
                rb, rs, bb, bs, lb, ls = (
                    self.rules_a, self.rules_b, self.book_a, self.book_b, live_a, live_b)
            else:
                rb, rs, bb, bs, lb, ls = (
                    self.rules_b, self.rules_a, self.book_b, self.book_a, live_b, live_a)
            exch_ts = trigger.exch_ts_ns
            # The venue clock offset, read in C from the usual ClockOffset; anything else
            # that offers offset_ns() is asked through Python.
            if exch_ts and trigger_clock is not None:
                wall = _clock_ns(CLOCK_REALTIME) if self.wall is None else as_int64(
                    self.wall(), "wall clock")
                if type(trigger_clock) is ClockOffset:
                    has_offset = (<ClockOffset>trigger_clock).estimate(wall, &off)
                else:
                    offset = trigger_clock.offset_ns(wall)
                    if offset is not None:
                        has_offset = True
                        off = as_int64(offset, "clock offset")
            reason = GATES_SLOW
            if core.c_path and res.rate_decimals == 0:
                # The same-quote edge (edge_fraction) in C: profit / (cost x 100) bps.
                if res.cost <= 0:
                    edge_num, edge_den, ok = 0, 1, True
                else:
                    edge_num = res.profit_scaled
                    ok = not mul128(res.cost, 100, &edge_den)
                if ok:
                    reason = core._gates_w(
                        self.pair, rb, rs,
                        res.buy_limit, res.buy_size, res.sell_limit, res.sell_size,
                        lb, bb.recv_ts_ns, ls, bs.recv_ts_ns,
                        edge_num, edge_den, recv, exch_ts, has_offset, off,
                    )
            if reason == GATES_SLOW:
                core.slow_checks += 1
                edge = edge_fraction(res)
                reason = core._gates(
                    self.pair, rb, rs,
                    res.buy_limit, res.buy_size, res.sell_limit, res.sell_size,
                    lb, bb.recv_ts_ns, ls, bs.recv_ts_ns,
                    edge[0], edge[1], recv, exch_ts, off if has_offset else None,
                )
        cdef list counts = core.counts
        counts[reason] = <object>counts[reason] + 1
        return reason
