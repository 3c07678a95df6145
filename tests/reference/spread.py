"""Brute-force reference for the spread calculator (tests and bench only).

It shares no code or algorithm with arbengine._core.spread: books become piecewise-constant
marginal-price curves over cumulative base quantity (exact Fractions in base units), every
segment's marginal net edge is checked, caps are applied in base units, and the lot grid is
the rational lcm of both venues' lots. The compiled calculator walks both books once in
integer quanta; agreeing on random books is the evidence that the walk is right.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from arbengine._core.instrument import Instrument

OK, EMPTY_BOOK, NO_EDGE, NO_CAPACITY, BELOW_MIN_SIZE, BELOW_MIN_NOTIONAL = range(6)

Levels = list[tuple[int, int]]


@dataclass(frozen=True)
class Leg:
    instrument: Instrument
    fee_bps: Decimal

    @property
    def tick(self) -> Fraction:
        return Fraction(Decimal(self.instrument.price.step))

    @property
    def unit_base(self) -> Fraction:
        """Base quantity of one size step (books and orders count these)."""
        inst = self.instrument
        return Fraction(Decimal(inst.size.step)) * Fraction(Decimal(inst.multiplier.step))

    @property
    def lot_base(self) -> Fraction:
        """Base quantity of one order lot: orders are whole lots."""
        return self.instrument.lot * self.unit_base

    @property
    def fee(self) -> Fraction:
        return Fraction(self.fee_bps) / 10_000


@dataclass(frozen=True)
class RefResult:
    status: int
    size: Fraction = Fraction(0)
    buy_size: int = 0
    sell_size: int = 0
    buy_limit: int = 0
    sell_limit: int = 0
    buy_levels: int = 0
    sell_levels: int = 0
    cost: Fraction = Fraction(0)
    proceeds: Fraction = Fraction(0)
    profit: Fraction = Fraction(0)


def _rational_lcm(a: Fraction, b: Fraction) -> Fraction:
    return Fraction(math.lcm(a.numerator, b.numerator), math.gcd(a.denominator, b.denominator))


def _curve(levels: Levels, leg: Leg) -> list[tuple[Fraction, Fraction, int]]:
    """(cumulative base quantity at the end of the level, price per base, price ticks)."""
    out = []
    cum = Fraction(0)
    for price, size in levels:
        cum += size * leg.unit_base
        out.append((cum, price * leg.tick, price))
    return out


def _take(levels: Levels, leg: Leg, qty: Fraction) -> tuple[Fraction, int, int]:
    """Notional of taking qty base from levels best-first, the worst price, levels used."""
    notional = Fraction(0)
    left = qty
    used = 0
    worst = 0
    for price, size in levels:
        if left <= 0:
            break
        avail = size * leg.unit_base
        take = min(avail, left)
        notional += take * price * leg.tick
        left -= take
        used += 1
        worst = price
    assert left == 0, "reference asked for more than the book holds"
    return notional, worst, used


def reference_spread(
    buy_asks: Levels,
    sell_bids: Levels,
    buy: Leg,
    sell: Leg,
    min_edge_bps: Decimal,
    max_size: Decimal | None = None,
    quote_balance: Decimal | None = None,
    base_balance: Decimal | None = None,
    size_decimals: int | None = None,
) -> RefResult:
    """The answer for buying on ``buy`` (its asks) and selling on ``sell`` (its bids).

    ``size_decimals`` is the base-quantum exponent the compiled calculator works in; the only
    rounding it implies is that a quote balance buys a whole number of 10**-size_decimals.
    """
    if not buy_asks or not sell_bids:
        return RefResult(EMPTY_BOOK)
    thr = Fraction(min_edge_bps) / 10_000
    kb = 1 + buy.fee
    ks = 1 - sell.fee

    def edge_ok(pa: Fraction, pb: Fraction) -> bool:
        return (pb * ks - pa * kb) / (pa * kb) >= thr

    asks = _curve(buy_asks, buy)
    bids = _curve(sell_bids, sell)
    if not edge_ok(asks[0][1], bids[0][1]):
        return RefResult(NO_EDGE)

    # Every breakpoint of either curve starts a segment with constant marginal prices.
    breaks = sorted({q for q, _, _ in asks} | {q for q, _, _ in bids})
    limit = min(asks[-1][0], bids[-1][0])
    q_edge = Fraction(0)
    start = Fraction(0)
    for end in breaks:
        if start >= limit:
            break
        pa = next(p for q, p, _ in asks if q > start)
        pb = next(p for q, p, _ in bids if q > start)
        if not edge_ok(pa, pb):
            break
        q_edge = min(end, limit)
        start = end

    q = q_edge
    if max_size is not None:
        q = min(q, Fraction(max_size))
    if base_balance is not None:
        q = min(q, Fraction(base_balance))
    if quote_balance is not None:
        # Largest quantity whose cost including the buy fee fits the balance.
        budget = Fraction(quote_balance)
        spent = Fraction(0)
        prev = Fraction(0)
        affordable = Fraction(0)
        for cum, price, _ in asks:
            seg = cum - prev
            if spent + seg * price * kb <= budget:
                spent += seg * price * kb
                affordable = cum
                prev = cum
                continue
            affordable = prev + (budget - spent) / (price * kb)
            break
        else:
            affordable = prev
        q = min(q, affordable)
    if size_decimals is not None:
        quantum = Fraction(1, 10**size_decimals)
        q = (q // quantum) * quantum
    if q <= 0:
        return RefResult(NO_CAPACITY)

    step = _rational_lcm(buy.lot_base, sell.lot_base)
    size = (q // step) * step
    min_size = max(
        buy.instrument.min_size * buy.unit_base, sell.instrument.min_size * sell.unit_base
    )
    if size == 0 or size < min_size:
        return RefResult(BELOW_MIN_SIZE)
    cost, buy_limit, buy_levels = _take(buy_asks, buy, size)
    proceeds, sell_limit, sell_levels = _take(sell_bids, sell, size)
    # A venue judges an order's notional at its limit price (the worst level touched).
    if size * buy_limit * buy.tick < Fraction(Decimal(buy.instrument.min_notional)) or (
        size * sell_limit * sell.tick < Fraction(Decimal(sell.instrument.min_notional))
    ):
        return RefResult(BELOW_MIN_NOTIONAL)
    assert (size / buy.lot_base).denominator == 1 and (size / sell.lot_base).denominator == 1
    buy_size = size / buy.unit_base
    sell_size = size / sell.unit_base
    return RefResult(
        status=OK,
        size=size,
        buy_size=int(buy_size),
        sell_size=int(sell_size),
        buy_limit=buy_limit,
        sell_limit=sell_limit,
        buy_levels=buy_levels,
        sell_levels=sell_levels,
        cost=cost,
        proceeds=proceeds,
        profit=proceeds * ks - cost * kb,
    )
