"""The risk gates' arb check in plain Python (tests only): the oracle for the compiled
``arbengine._core.gates.GateCore.check``.

This is the check as it ran in Python before it was compiled, line for line over the same
state objects (their attributes are public), so a test can run one RiskGates through the
compiled check and an identical one through this, and compare every verdict and every
state change. Edges compare as exact fractions, as the compiled check does.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from arbengine.risk import INT64_MAX, ArbIntent, Reason, RiskGates

_OK = Reason.OK
_BOOK_NOT_LIVE = Reason.BOOK_NOT_LIVE
_BOOK_STALE = Reason.BOOK_STALE
_CIRCUIT_OPEN = Reason.CIRCUIT_OPEN
_DATA_AGE = Reason.DATA_AGE
_EDGE_TOO_LARGE = Reason.EDGE_TOO_LARGE
_EDGE_TOO_SMALL = Reason.EDGE_TOO_SMALL
_INSUFFICIENT_BALANCE = Reason.INSUFFICIENT_BALANCE
_KILL_SWITCH = Reason.KILL_SWITCH
_MAX_EXPOSURE = Reason.MAX_EXPOSURE
_MAX_INVENTORY = Reason.MAX_INVENTORY
_MAX_OPEN_ORDERS = Reason.MAX_OPEN_ORDERS
_MAX_OPEN_ORDERS_TOTAL = Reason.MAX_OPEN_ORDERS_TOTAL
_NOTIONAL_TOO_LARGE = Reason.NOTIONAL_TOO_LARGE
_NOTIONAL_TOO_SMALL = Reason.NOTIONAL_TOO_SMALL
_NO_CLOCK_OFFSET = Reason.NO_CLOCK_OFFSET
_RATE_LIMITED = Reason.RATE_LIMITED
_SIZE_TOO_LARGE = Reason.SIZE_TOO_LARGE
_SIZE_TOO_SMALL = Reason.SIZE_TOO_SMALL
_UNKNOWN_PAIR = Reason.UNKNOWN_PAIR
_VENUE_LAG = Reason.VENUE_LAG
_VENUE_UNHEALTHY = Reason.VENUE_UNHEALTHY
_WRONG_INSTRUMENT = Reason.WRONG_INSTRUMENT
_BAD_PRICE = Reason.BAD_PRICE
_BAD_SIZE = Reason.BAD_SIZE
_OFF_LOT = Reason.OFF_LOT
_BELOW_MIN_SIZE = Reason.BELOW_MIN_SIZE
_BELOW_MIN_NOTIONAL = Reason.BELOW_MIN_NOTIONAL


def take(takes: Any, now: int, priority: bool) -> bool:
    for b, cost in takes:
        if now > b.stamp:
            level = b.level + (now - b.stamp) * b.rate
            b.level = level if level < b.cap else b.cap
            b.stamp = now
        if b.level - cost < (0 if priority else b.reserve):
            return False
    for b, cost in takes:
        b.level -= cost
    return True


def conform(rules: Any, price: int, size: int) -> Reason:
    if price <= 0 or price > INT64_MAX:
        return _BAD_PRICE
    if size <= 0 or size > INT64_MAX:
        return _BAD_SIZE
    if size % rules.lot:
        return _OFF_LOT
    if size < rules.min_size:
        return _BELOW_MIN_SIZE
    if price * size * rules.quote_per_px_size < rules.min_notional:
        return _BELOW_MIN_NOTIONAL
    return _OK


def reference_check_arb(gates: RiskGates, intent: ArbIntent) -> Reason:
    """``RiskGates.check_arb`` in Python: the verdict, counted as the compiled one counts."""
    reason = reference_arb(gates, intent)
    gates.counts[reason] += 1
    return reason


def reference_arb(self: RiskGates, it: ArbIntent) -> Reason:
    if self._level:
        return _KILL_SWITCH
    pair = self._pairs.get(it.pair_id)
    if pair is None:
        return _UNKNOWN_PAIR
    buy, sell = it.buy, it.sell
    a, b = pair.a, pair.b
    if buy.instrument is a.instrument and sell.instrument is b.instrument:
        rb, rs = a, b
    elif buy.instrument is b.instrument and sell.instrument is a.instrument:
        rb, rs = b, a
    else:  # equal instruments built elsewhere, or a wrong mapping: the slow path
        rb_, rs_ = self._lookup(buy.instrument), self._lookup(sell.instrument)
        if not ((rb_ is a and rs_ is b) or (rb_ is b and rs_ is a)):
            return _WRONG_INSTRUMENT
        assert rb_ is not None and rs_ is not None
        rb, rs = rb_, rs_
    edge = Fraction(it.edge_bps)
    if edge < Fraction(pair.min_edge):
        return _EDGE_TOO_SMALL
    if edge > Fraction(pair.max_edge):
        return _EDGE_TOO_LARGE

    vb, vs = rb.venue, rs.venue
    if not buy.live:
        self.last_venue = vb.name
        return _BOOK_NOT_LIVE
    if not sell.live:
        self.last_venue = vs.name
        return _BOOK_NOT_LIVE
    now = self._clock()
    if now - buy.updated_ns > vb.max_age:
        self.last_venue = vb.name
        return _BOOK_STALE
    if now - sell.updated_ns > vs.max_age:
        self.last_venue = vs.name
        return _BOOK_STALE
    if now - it.trigger_recv_ns > self._max_age:
        return _DATA_AGE
    if it.exch_ts_ns:
        offset = it.clock_offset_ns
        if offset is None:
            return _NO_CLOCK_OFFSET
        # (local wall - venue clock + floor latency) removed: what is left is how much
        # older than the network floor the event is, by the venue's own clock.
        if self._wall() - it.exch_ts_ns - offset > self._max_age:
            return _VENUE_LAG

    # Unrolled over the two venues: a loop would build a tuple per check.
    if vb.open_until and (now < vb.open_until or now < vb.trial_until):
        self.last_venue = vb.name
        return _CIRCUIT_OPEN
    if vs.open_until and (now < vs.open_until or now < vs.trial_until):
        self.last_venue = vs.name
        return _CIRCUIT_OPEN
    if now < vb.unhealthy_until:
        self.last_venue = vb.name
        return _VENUE_UNHEALTHY
    if now < vs.unhealthy_until:
        self.last_venue = vs.name
        return _VENUE_UNHEALTHY

    bp, bz, sp, sz = buy.price, buy.size, sell.price, sell.size
    reason = conform(rb, bp, bz)
    if reason:
        self.last_venue = vb.name
        return reason
    reason = conform(rs, sp, sz)
    if reason:
        self.last_venue = vs.name
        return reason
    buy_base = bz * rb.base_per_size
    sell_base = sz * rs.base_per_size
    buy_notional = bp * bz * rb.quote_per_px_size
    sell_notional = sp * sz * rs.quote_per_px_size
    if buy_base < pair.min_base or sell_base < pair.min_base:
        return _SIZE_TOO_SMALL
    if buy_base > pair.max_base or sell_base > pair.max_base:
        return _SIZE_TOO_LARGE
    if buy_notional < pair.min_notional or sell_notional < pair.min_notional:
        return _NOTIONAL_TOO_SMALL
    if buy_notional > pair.max_notional or sell_notional > pair.max_notional:
        return _NOTIONAL_TOO_LARGE

    pf = self._portfolio
    if pair.same_venue:
        if pf.open_orders(vb.name) + 2 > vb.max_open:
            self.last_venue = vb.name
            return _MAX_OPEN_ORDERS
    else:
        if pf.open_orders(vb.name) >= vb.max_open:
            self.last_venue = vb.name
            return _MAX_OPEN_ORDERS
        if pf.open_orders(vs.name) >= vs.max_open:
            self.last_venue = vs.name
            return _MAX_OPEN_ORDERS
    if pf.open_orders_total() + 2 > self._max_open_total:
        return _MAX_OPEN_ORDERS_TOTAL
    # What each leg spends from which account: a spot BUY the notional plus fee in quote,
    # a spot SELL the base, a derivative either side its fee in quote (one account may
    # pay for both legs).
    fee = -((-buy_notional * rb.fee_num) // rb.fee_den)
    buy_at = (vb.name, rb.quote)
    buy_need = fee if rb.instrument.derivative else buy_notional + fee
    if pf.available(*buy_at) < buy_need:
        self.last_venue = vb.name
        return _INSUFFICIENT_BALANCE
    if rs.instrument.derivative:
        sell_at = (vs.name, rs.quote)
        sell_need = -((-sell_notional * rs.fee_num) // rs.fee_den)
    else:
        sell_at, sell_need = (vs.name, rs.base), sell_base
    if sell_at == buy_at:
        sell_need += buy_need
    if pf.available(*sell_at) < sell_need:
        self.last_venue = vs.name
        return _INSUFFICIENT_BALANCE
    delta = buy_base - sell_base
    if abs(pf.inventory(pair.base) + delta) > pair.max_inventory:
        return _MAX_INVENTORY
    exposure = pf.net_exposure(pair.base)
    limit = pair.max_exposure
    if abs(exposure) > limit:
        self._exposure_breached(pair.base, exposure, limit)
        return _MAX_EXPOSURE
    # Worst case: one leg fills and the other does not, and so does every order already
    # in flight on this asset (other pairs' legs, UNKNOWN outcomes).
    open_buy, open_sell = pf.in_flight(pair.base)
    if exposure + open_buy + buy_base > limit or sell_base + open_sell - exposure > limit:
        return _MAX_EXPOSURE

    if not take(pair.takes, now, False):
        return _RATE_LIMITED
    if vb.open_until:  # half-open (an open one was refused above): claim the trial
        vb.trial_until = now + vb.cooldown
    if vs.open_until:
        vs.trial_until = now + vs.cooldown
    return _OK
