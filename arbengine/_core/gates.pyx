# cython: language_level=3, boundscheck=False, wraparound=False
"""The risk gates a new arb passes, compiled: see gates.pxd and arbengine.risk.

``GateCore.check`` runs the gates in the order arbengine.risk's docstring gives (cheapest and
most often decisive first, the only state change last). ``RiskGates`` subclasses
``GateCore``; a pure-Python copy of the check in tests/reference/risk.py is the oracle the
tests hold this one to, case by case.
"""

import time

from cpython.long cimport PyLong_Check
from libc.stdint cimport int64_t
from posix.time cimport CLOCK_MONOTONIC, CLOCK_REALTIME, clock_gettime, timespec

from arbengine._core.book cimport Book
from arbengine._core.instrument cimport Instrument
from arbengine._core.ints cimport as_int64
from arbengine._core.ledger cimport AssetLine
from arbengine._core.spread cimport BUY_A_SELL_B, OK, SpreadResult, edge_fraction

cdef object INT64_MAX = 2**63 - 1


cdef inline int64_t _clock_ns(int which) except? -1:
    cdef timespec ts
    if clock_gettime(which, &ts) != 0:
        raise OSError("clock_gettime failed")
    return <int64_t>ts.tv_sec * 1_000_000_000 + ts.tv_nsec


cdef class Bucket:

    cpdef object refill(self, int64_t now):
        cdef object level
        if now > self.stamp:
            level = self.level + (now - self.stamp) * self.rate
            self.level = level if level < self.cap else self.cap
            self.stamp = now
        return self.level


cpdef bint take(tuple takes, int64_t now, bint priority) except -1:
    """All or nothing: every bucket must allow its cost before any is charged; non-priority
    takes must leave each bucket's reserve in place."""
    cdef Bucket b
    cdef tuple t
    for t in takes:
        b = <Bucket>t[0]
        if b.refill(now) - t[1] < (0 if priority else b.reserve):
            return False
    for t in takes:
        b = <Bucket>t[0]
        b.level = b.level - t[1]
    return True


cdef class VenueState:
    pass


cdef class Rules:

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

    def check_conform(self, price, size):
        """``conform`` for the Python side (hedge checks): a reason code."""
        return self.conform(price, size)


cdef class PairGate:
    pass


cdef class GateCore:

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
        if self._level:
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
        if rb.quote_account.available < buy_notional + fee:
            self.last_venue = vb.name
            return R_INSUFFICIENT_BALANCE
        if rs.base_account.available < sell_base:
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
        cdef int64_t exch_ts
        cdef tuple edge
        if core._level:
            reason = R_KILL_SWITCH
        else:
            if res.direction == BUY_A_SELL_B:
                rb, rs, bb, bs, lb, ls = (
                    self.rules_a, self.rules_b, self.book_a, self.book_b, live_a, live_b)
            else:
                rb, rs, bb, bs, lb, ls = (
                    self.rules_b, self.rules_a, self.book_b, self.book_a, live_b, live_a)
            exch_ts = trigger.exch_ts_ns
            offset = None
            if exch_ts and trigger_clock is not None:
                offset = trigger_clock.offset_ns(
                    _clock_ns(CLOCK_REALTIME) if self.wall is None else self.wall()
                )
            edge = edge_fraction(res)
            reason = core._gates(
                self.pair, rb, rs,
                res.buy_limit, res.buy_size, res.sell_limit, res.sell_size,
                lb, bb.recv_ts_ns, ls, bs.recv_ts_ns,
                edge[0], edge[1], recv, exch_ts, offset,
            )
        cdef list counts = core.counts
        counts[reason] = <object>counts[reason] + 1
        return reason
