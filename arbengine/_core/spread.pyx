# cython: language_level=3
"""Cross-venue spread calculator on two compiled books.

For a pair of books of one base asset on two venues, and each direction (buy A / sell B,
buy B / sell A), it reports the top-of-book edge net of taker fees and the largest size whose
marginal edge stays at or above ``min_edge_bps``, found by walking the buying venue's asks and
the selling venue's bids together. The size is rounded down onto both venues' lot grids and
capped by ``max_size`` and the balances, then each leg's VWAP, limit price (worst level
touched) and the expected profit net of fees are computed exactly.

Cross-quote pairs (``cross_quote=True``): B may be quoted in another currency than A (BTC/USD
against BTC/USDT). The pair's quote is A's; B's prices are converted into it with a rate the
caller keeps current through ``set_quote_rate(pay, get)``, held as a fixed-point integer
rounded against us. The conversion enters the edge test and the profit only: each leg's
notional, limit price, minimums and quote balance stay in that venue's own quote.

All money is integer: see spread.pxd for the common grid. A call allocates nothing but its
result (and nothing at all through ``calc_into``), and costs O(levels walked).
"""

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation, localcontext
from math import gcd, lcm

from libc.math cimport NAN
from libc.stdint cimport INT64_MAX, int64_t

from arbengine._core.book cimport ASK, BID, Book, LevelIter
from arbengine._core.errors import SpreadError
from arbengine._core.instrument cimport Instrument
from arbengine._core.wide cimport int128_from_py, int128_to_py

cdef int64_t FEE_ONE = 1_000_000     # fees and edges are in millionths: 1 bp = 100
_FEE_ONE = 1_000_000
_LIMIT = 1 << 62                     # headroom so products of two grid values fit int128
_INT128_MAX = (1 << 127) - 1

# Quote rates (cross-quote pairs) are integers x 10**15. Rates are accepted in [1e-6, 1e6]:
# at the smallest rate the fixed-point value still has 1e9 units, so rounding it (pay up, get
# down: against us) moves it by at most 1e-9 relative, 0.00001 bp, a thousand times finer
# than the 0.01 bp grid of fees and thresholds. At the largest rate the value is 1e21 < 2**70,
# so a threshold coefficient (at most 4e12, below 2**42) times a rate stays below 2**112 and
# leaves the price at least 15 bits of int128 even before the gcd reduction in _precompute;
# the per-direction price guards (max_buy_px/max_sell_px) make the rest exact or refused.
cdef int RATE_DECIMALS = 15
cdef int128 RATE_ONE = 1_000_000_000_000_000
_RATE_ONE = 10 ** 15
_RATE_MIN = Decimal("0.000001")
_RATE_MAX = Decimal("1000000")


cdef int128 py_to_int128(object value) except? -1:
    cdef int128 x
    if not int128_from_py(value, &x):
        raise SpreadError(f"{value} is out of range")
    return x


cdef inline double _edge_bps(int128 pa, int128 pb, int64_t kb, int64_t ks) noexcept nogil:
    cdef double cost = <double>(pa * kb)
    return (<double>(pb * ks) - cost) / cost * 1e4


cdef inline double _edge_bps_x(int128 pa, int128 pb, int64_t kb, int64_t ks,
                               double cb, double cs) noexcept nogil:
    # Cross-quote, informational only: cb/cs convert each leg into the pair's quote.
    cdef double cost = <double>(pa * kb) * cb
    return (<double>(pb * ks) * cs - cost) / cost * 1e4


def _millionths(value, str what, lo, hi):
    """Exact bps (int, decimal text or Decimal) -> millionths, within [lo, hi] bps."""
    if isinstance(value, float):
        raise SpreadError(f"{what} {value!r} is a float; give bps as decimal text or int")
    try:
        d = Decimal(value) if not isinstance(value, Decimal) else value
    except (InvalidOperation, TypeError, ValueError):
        raise SpreadError(f"{what} {value!r} is not a number of bps") from None
    if not d.is_finite():
        raise SpreadError(f"{what} {value!r} is not a finite number of bps")
    scaled = d * 100
    if scaled != scaled.to_integral_value():
        raise SpreadError(f"{what} {value} bps is finer than 0.01 bp")
    if not lo <= d <= hi:
        raise SpreadError(f"{what} {value} bps is outside [{lo}, {hi}]")
    return int(scaled)


def _rate(value, str what):
    """Quote rate (decimal text, int or Decimal; never a float) -> Decimal in range."""
    if isinstance(value, float):
        raise SpreadError(f"quote rate {what} {value!r} is a float; give decimal text, int "
                          "or Decimal")
    try:
        d = Decimal(value) if not isinstance(value, Decimal) else value
    except (InvalidOperation, TypeError, ValueError):
        raise SpreadError(f"quote rate {what} {value!r} is not a decimal number") from None
    if not d.is_finite():
        raise SpreadError(f"quote rate {what} {value!r} is not a finite number")
    if d <= 0:
        raise SpreadError(f"quote rate {what} {value} must be > 0")
    if not _RATE_MIN <= d <= _RATE_MAX:
        raise SpreadError(f"quote rate {what} {value} is outside [{_RATE_MIN}, {_RATE_MAX}]")
    return d


def _rate_q(d, rounding):
    """In-range rate -> integer x 10**15, rounded as given (pay up, get down)."""
    with localcontext() as ctx:
        ctx.prec = 80
        return int(d.scaleb(15).to_integral_value(rounding=rounding))


cdef object _profit_scaled(SpreadResult r):
    if r.rate_decimals == 0:
        return int128_to_py(r.profit_scaled)
    # Cross-quote: both legs converted into A's quote, exact in Python integers (these can
    # exceed int128, so they are not formed on the hot path).
    return (int128_to_py(r.proceeds) * int128_to_py(r.sell_conv) * r.ks
            - int128_to_py(r.cost) * int128_to_py(r.buy_conv) * r.kb)


cdef tuple edge_fraction(SpreadResult r):
    cdef object ps = _profit_scaled(r)
    cdef object cost = int128_to_py(r.cost)
    if cost <= 0:
        return (0, 1)
    if r.rate_decimals == 0 or r.buy_conv == RATE_ONE:
        # A Python int power: with C int operands Cython would compute a double.
        return (ps, cost * (<object>10) ** (2 + r.rate_decimals))
    return (ps, cost * int128_to_py(r.buy_conv) * 100)


def _quanta(value, int decimals, str what, rounding):
    """Decimal amount -> integer count of 10**-decimals, rounded as given (never a float)."""
    if isinstance(value, float):
        raise SpreadError(f"{what} {value!r} is a float; give decimal text, int or Decimal")
    try:
        d = Decimal(value) if not isinstance(value, Decimal) else value
    except (InvalidOperation, TypeError, ValueError):
        raise SpreadError(f"{what} {value!r} is not a decimal amount") from None
    if not d.is_finite() or d < 0:
        raise SpreadError(f"{what} {value!r} must be a finite amount >= 0")
    with localcontext() as ctx:
        ctx.prec = 80
        return int(d.scaleb(decimals).to_integral_value(rounding=rounding))


cdef class SpreadResult:
    """One direction's answer. Only a result with ``status == OK`` carries a tradable size.

    Sizes, limits, ``buy_notional``/``sell_notional`` (and their ``*_quanta``) are in each
    venue's own units and quote. ``profit``/``profit_scaled`` and ``cost_ref`` are in the
    pair's quote (A's): on a cross-quote pair B's leg is converted at the calculator's rate
    (``pay`` when buying on B, ``get`` when selling on B), so net edge = profit / cost_ref.
    """

    cdef void reset(self, int direction) noexcept:
        self.direction = direction
        self.status = EMPTY_BOOK
        self.top_edge_bps = NAN
        self.base_qty = 0
        self.buy_size = 0
        self.sell_size = 0
        self.buy_limit = 0
        self.sell_limit = 0
        self.buy_levels = 0
        self.sell_levels = 0
        self.cost = 0
        self.proceeds = 0
        self.profit_scaled = 0

    @property
    def ok(self):
        return self.status == OK

    @property
    def status_name(self):
        return _STATUS_NAMES[self.status]

    @property
    def size(self):
        """Trade size in base units, exact."""
        return Decimal(self.base_qty).scaleb(-self.size_decimals)

    @property
    def cost_quanta(self):
        """Buy-leg notional before fees, in 10**-notional_decimals quote (exact int)."""
        return int128_to_py(self.cost)

    @property
    def proceeds_quanta(self):
        """Sell-leg notional before fees, in 10**-notional_decimals quote (exact int)."""
        return int128_to_py(self.proceeds)

    @property
    def profit_decimals(self):
        """``profit == profit_scaled * 10**-profit_decimals``: notional_decimals + 6, plus
        the rate's 15 decimals (``rate_decimals``) on a cross-quote calculator."""
        return self.notional_decimals + 6 + self.rate_decimals

    @property
    def profit_scaled(self):
        """Profit net of both fees in the pair's quote (A's) x 10**profit_decimals, exact int:
        x 10**6 in 10**-notional_decimals quote for same-quote pairs; cross-quote results
        carry 15 more decimals (the rate's)."""
        return _profit_scaled(self)

    @property
    def buy_notional(self):
        """Buy-leg notional before fees, in the buying venue's own quote, exact."""
        return Decimal(int128_to_py(self.cost)).scaleb(-self.notional_decimals)

    @property
    def sell_notional(self):
        """Sell-leg notional before fees, in the selling venue's own quote, exact."""
        return Decimal(int128_to_py(self.proceeds)).scaleb(-self.notional_decimals)

    @property
    def cost_ref(self):
        """Buy-leg notional before fees in the pair's quote (A's), exact: ``buy_notional``
        itself unless buying on B of a cross-quote pair, where it is converted at ``pay``.
        The net edge of the trade is ``profit / cost_ref``."""
        if self.rate_decimals == 0 or self.buy_conv == RATE_ONE:
            return self.buy_notional
        return Decimal(int128_to_py(self.cost) * int128_to_py(self.buy_conv)).scaleb(
            -self.notional_decimals - self.rate_decimals)

    @property
    def edge_ratio(self):
        """The net edge in bps as an exact fraction ``(num, den)``, den > 0: ``profit /
        cost_ref * 10**4`` in integers, for gates that compare edges without Decimal."""
        return edge_fraction(self)

    @property
    def profit(self):
        """Expected profit in the pair's quote (A's), net of both taker fees, exact."""
        return Decimal(_profit_scaled(self)).scaleb(-self.profit_decimals)

    @property
    def buy_vwap(self):
        """Average buy price (quote per base) for reporting; orders use ``buy_limit``."""
        if self.base_qty == 0:
            return NAN
        return (<double>self.cost / <double>self.base_qty) * 10.0 ** (
            self.size_decimals - self.notional_decimals)

    @property
    def sell_vwap(self):
        if self.base_qty == 0:
            return NAN
        return (<double>self.proceeds / <double>self.base_qty) * 10.0 ** (
            self.size_decimals - self.notional_decimals)

    def __repr__(self):
        if self.status != OK:
            return (f"<SpreadResult dir={self.direction} {self.status_name} "
                    f"top_edge={self.top_edge_bps:.2f}bps>")
        return (f"<SpreadResult dir={self.direction} OK size={self.size} "
                f"buy={self.buy_size}@{self.buy_limit} sell={self.sell_size}@{self.sell_limit} "
                f"profit={self.profit} top_edge={self.top_edge_bps:.2f}bps>")


_STATUS_NAMES = {
    OK: "OK",
    EMPTY_BOOK: "EMPTY_BOOK",
    NO_EDGE: "NO_EDGE",
    NO_CAPACITY: "NO_CAPACITY",
    BELOW_MIN_SIZE: "BELOW_MIN_SIZE",
    BELOW_MIN_NOTIONAL: "BELOW_MIN_NOTIONAL",
    NO_RATE: "NO_RATE",
}


cdef int _fill(Book book, int side, int128 qty, LegRules* leg, int128* notional,
               int64_t* limit, Py_ssize_t* levels) except -1:
    """Exact notional of taking ``qty`` base quanta from ``side``; worst price touched."""
    cdef LevelIter it
    cdef Py_ssize_t n = 0
    cdef int128 avail, take
    cdef int128 total = 0
    if not book.iter_first(side, &it):
        raise SpreadError("internal: filling from an empty side")
    while True:
        avail = <int128>it.size * leg.unit_q
        take = avail if avail < qty else qty
        total += take * it.price * leg.tick_q
        qty -= take
        n += 1
        if qty <= 0:
            break
        if not book.iter_next(side, &it):
            # Cannot happen: qty never exceeds what the walk saw on this side.
            raise SpreadError("internal: walk ran past the book")
    notional[0] = total
    limit[0] = it.price
    levels[0] = n
    return 0


cdef enum:
    # Chunks of the walk remembered so rounding down can trim them instead of walking both
    # books a second time; a longer walk falls back to _fill.
    _MAX_CHUNKS = 64


cdef struct Chunk:
    int128 take              # base quanta matched at this pair of levels
    int128 pa                # buy price, common price quanta
    int128 pb                # sell price, common price quanta
    int64_t buy_px           # buy price, buying venue ticks
    int64_t sell_px          # sell price, selling venue ticks
    Py_ssize_t i             # level index on the buy side
    Py_ssize_t j             # level index on the sell side


cdef class SpreadCalculator:
    """Spread calculator for one pair: instrument A on one venue, B on another.

    ``fee_a_bps``/``fee_b_bps`` are taker fees; ``min_edge_bps`` the marginal-edge threshold
    (net of fees); ``max_size`` a cap in base units. Bps are exact to 0.01 bp and amounts are
    decimal text, int or Decimal: floats are refused so nothing is rounded silently.

    ``cross_quote=True`` lets B's quote differ from A's (it may also be the same). The pair's
    quote is then A's and B's prices are converted into it at the rate set with
    ``set_quote_rate(pay, get)``; until one is set, ``calc`` answers ``NO_RATE``. The marginal
    edge of every chunk walked and the top-of-book edge include the conversion; quote
    balances, notionals, limits and minimums stay in each venue's own quote. With the default
    ``cross_quote=False`` the quotes must match and nothing is converted.
    """

    def __init__(self, Instrument instrument_a not None, Instrument instrument_b not None,
                 fee_a_bps, fee_b_bps, min_edge_bps=0, max_size=None, *, cross_quote=False):
        a, b = instrument_a, instrument_b
        if cross_quote is not True and cross_quote is not False:
            raise SpreadError(f"cross_quote must be True or False, got {cross_quote!r}")
        if a.venue == b.venue and a.symbol == b.symbol:
            raise SpreadError(f"pair {a.name} with itself")
        if a.base != b.base:
            raise SpreadError(
                f"mismatched assets: {a.name} trades {a.base}, {b.name} trades {b.base}"
            )
        if a.quote != b.quote and not cross_quote:
            raise SpreadError(
                f"mismatched quotes: {a.name} is in {a.quote}, {b.name} in {b.quote}; "
                "convert one quote before pairing"
            )
        self.instrument_a = a
        self.instrument_b = b
        self.price_decimals = max(a.price.decimals, b.price.decimals)
        self.size_decimals = max(a.size.decimals + a.multiplier.decimals,
                                 b.size.decimals + b.multiplier.decimals)
        if self.price_decimals + self.size_decimals > 30:
            raise SpreadError(f"{a.name}/{b.name}: grids too fine to share one notional scale")
        fees = (_millionths(fee_a_bps, f"{a.name} taker fee", 0, 9999),
                _millionths(fee_b_bps, f"{b.name} taker fee", 0, 9999))
        lots = []
        for k, inst in enumerate((a, b)):
            tick_q = inst.price.mantissa * 10 ** (self.price_decimals - inst.price.decimals)
            unit_q = (inst.size.mantissa * inst.multiplier.mantissa
                      * 10 ** (self.size_decimals - inst.size.decimals
                               - inst.multiplier.decimals))
            lot_q = inst.lot * unit_q
            min_size_q = inst.min_size * unit_q
            min_notional_q = _quanta(inst.min_notional,
                                     self.price_decimals + self.size_decimals,
                                     f"{inst.name} min_notional", ROUND_CEILING)
            for value, what in ((tick_q, "tick"), (lot_q, "lot"), (min_size_q, "min_size"),
                                (min_notional_q, "min_notional")):
                if value >= _LIMIT:
                    raise SpreadError(f"{inst.name}: {what} too large on the pair's common grid")
            self.legs[k].tick_q = tick_q
            self.legs[k].unit_q = unit_q
            self.legs[k].lot_q = lot_q
            self.legs[k].fee = fees[k]
            self.legs[k].min_size_q = min_size_q
            self.legs[k].min_notional_q = min_notional_q
            self.legs[k].quote_budget = -1
            self.legs[k].base_cap_q = INT64_MAX
            lots.append(lot_q)
        step = lcm(*lots)
        if step >= _LIMIT:
            raise SpreadError(f"{a.name}/{b.name}: lot grids have no common size in range")
        self.step_q = step
        self.max_size_q = INT64_MAX
        self.cross_quote = cross_quote
        self.rate_known = not cross_quote
        self.pay_q = 0
        self.get_q = 0
        self.min_edge = 0
        self.min_edge_bps = min_edge_bps
        self.max_size = max_size

    # --- configuration (validated, exact; not on the hot path) ------------------------

    @property
    def min_edge_bps(self):
        return Decimal(self.min_edge) / 100

    @min_edge_bps.setter
    def min_edge_bps(self, value):
        cdef int64_t old = self.min_edge
        self.min_edge = _millionths(value, "min_edge_bps", -10000, 10000)
        try:
            self._precompute()
        except BaseException:
            self.min_edge = old
            self._precompute()
            raise

    # --- cross-quote rate -------------------------------------------------------------

    @property
    def quote_rate(self):
        """``(pay, get)`` as held (exact, after rounding to 15 decimals), or None when unknown
        or on a same-quote calculator."""
        if not self.cross_quote or not self.rate_known:
            return None
        return (Decimal(int128_to_py(self.pay_q)).scaleb(-RATE_DECIMALS),
                Decimal(int128_to_py(self.get_q)).scaleb(-RATE_DECIMALS))

    def set_quote_rate(self, pay, get):
        """Rate converting B's quote into A's (the pair's quote), for a cross-quote calculator.

        ``pay``: A-quote paid per 1 unit of B-quote when we need B-quote, used when buying
        on B (cost in A-quote = cost on B * pay). ``get``: A-quote received per unit of
        B-quote earned, used when selling on B (proceeds in A-quote = proceeds on B * get).
        Decimal text, int or Decimal (never a float), 0 < get <= pay, both within
        [0.000001, 1000000]. They are held as integers x 10**15 rounded against us: pay up,
        get down. Called when the rate's own book moves, not per spread calculation.

        The rate is folded into the int128 edge-test coefficients (divided by their gcd). A
        book price too large for that test to stay exact makes ``calc`` raise SpreadError
        instead of overflowing: with no common factor to divide out (a rate with 15
        significant digits) that is ~4e10/max(1, rate) of the pair's price quanta, and
        usually far more (a rate read from a book has few digits)."""
        if not self.cross_quote:
            raise SpreadError(
                f"{self.instrument_a.name}/{self.instrument_b.name} was built without "
                "cross_quote=True: it has no quote rate to set"
            )
        p = _rate(pay, "pay")
        g = _rate(get, "get")
        if g > p:
            raise SpreadError(f"quote rate get {get} is above pay {pay}: need 0 < get <= pay")
        # int128 fields go through int128_to_py/py_to_int128: Cython sees a long long.
        old_known = self.rate_known
        old_pay = int128_to_py(self.pay_q)
        old_get = int128_to_py(self.get_q)
        self.pay_q = py_to_int128(_rate_q(p, ROUND_CEILING))
        self.get_q = py_to_int128(_rate_q(g, ROUND_FLOOR))
        self.rate_known = True
        try:
            self._precompute()
        except BaseException:
            self.rate_known = old_known
            self.pay_q = py_to_int128(old_pay)
            self.get_q = py_to_int128(old_get)
            self._precompute()
            raise

    def clear_quote_rate(self):
        """Forget the quote rate (its book went stale): ``calc`` answers NO_RATE until the
        next ``set_quote_rate``."""
        if not self.cross_quote:
            raise SpreadError(
                f"{self.instrument_a.name}/{self.instrument_b.name} was built without "
                "cross_quote=True: it has no quote rate to clear"
            )
        self.rate_known = False
        self.pay_q = 0
        self.get_q = 0
        self._precompute()

    @property
    def max_size(self):
        if self.max_size_q == INT64_MAX:
            return None
        return Decimal(self.max_size_q).scaleb(-self.size_decimals)

    @max_size.setter
    def max_size(self, value):
        if value is None:
            self.max_size_q = INT64_MAX
            return
        q = _quanta(value, self.size_decimals, "max_size", ROUND_FLOOR)
        self.max_size_q = min(q, INT64_MAX)

    @property
    def step(self):
        """Smallest size (base units) that is a whole number of lots on both venues."""
        return Decimal(self.step_q).scaleb(-self.size_decimals)

    @property
    def notional_decimals(self):
        return self.price_decimals + self.size_decimals

    def set_balances(self, *, quote_a=None, base_a=None, quote_b=None, base_b=None):
        """Available balances per venue (None = unlimited). The quote balance of the buying
        venue caps the buy leg's cost including its fee; the base balance of the selling
        venue caps the size. Each quote balance is in that venue's own quote (what the
        account holds), also on a cross-quote pair: it is never converted. Called when
        balances change, not per book update."""
        nd = self.price_decimals + self.size_decimals
        for k, quote, base in ((0, quote_a, base_a), (1, quote_b, base_b)):
            name = (self.instrument_a if k == 0 else self.instrument_b).name
            if quote is None:
                self.legs[k].quote_budget = -1
            else:
                # Budget is compared with cost * (FEE_ONE + fee): keep its 6 extra decimals.
                self.legs[k].quote_budget = py_to_int128(
                    _quanta(quote, nd + 6, f"{name} quote balance", ROUND_FLOOR))
            if base is None:
                self.legs[k].base_cap_q = INT64_MAX
            else:
                q = _quanta(base, self.size_decimals, f"{name} base balance", ROUND_FLOOR)
                self.legs[k].base_cap_q = min(q, INT64_MAX)

    cdef int _precompute(self) except -1:
        # Marginal edge >= min_edge  <=>  pb*(1-fs) >= pa*(1+fb)*(1+min_edge),
        # all scaled by FEE_ONE so the test is two int128 products and one compare.
        # Cross-quote: B's price is worth get (selling on B) or pay (buying on B) in A's
        # quote, so the test becomes pb*get*(1-fs) >= pa*(1+fb)*(1+min_edge) (buy A) and
        # pa*(1-fs) >= pb*pay*(1+fb)*(1+min_edge) (buy B), scaled by FEE_ONE**2 * RATE_ONE.
        # Everything is computed in Python integers and checked before anything is stored.
        cdef int d, b, s
        cdef bint cross = self.cross_quote and self.rate_known
        pay = int128_to_py(self.pay_q)
        get = int128_to_py(self.get_q)
        lhs_k = [0, 0]
        rhs_k = [0, 0]
        max_buy = [INT64_MAX, INT64_MAX]
        max_sell = [INT64_MAX, INT64_MAX]
        conv_buy = [1.0, 1.0]
        conv_sell = [1.0, 1.0]
        for d in range(2):
            b = 0 if d == BUY_A_SELL_B else 1
            s = 1 - b
            lhs = (_FEE_ONE - self.legs[s].fee) * _FEE_ONE
            rhs = (_FEE_ONE + self.legs[b].fee) * (_FEE_ONE + self.min_edge)
            if cross:
                if s == 1:
                    lhs *= get
                    rhs *= _RATE_ONE
                    conv_sell[d] = get / _RATE_ONE
                else:
                    lhs *= _RATE_ONE
                    rhs *= pay
                    conv_buy[d] = pay / _RATE_ONE
                # Exact; often large (a rate from a book has few digits), and every bit
                # removed here is headroom for prices.
                g = gcd(lhs, rhs)
                lhs //= g
                rhs //= g
                # Both coefficients are below 2**112 (rates <= 1e6). A price p in common
                # quanta enters int128 products with its coefficient, with 1+fee (budget)
                # and 1-fee (top edge): all fit when p * max(coef, 2*FEE_ONE) <= INT128_MAX.
                # The walk checks prices (in the venue's ticks) against these guards.
                max_buy[d] = min(INT64_MAX, _INT128_MAX // (max(rhs, 2 * _FEE_ONE)
                                                           * self.legs[b].tick_q))
                max_sell[d] = min(INT64_MAX, _INT128_MAX // (max(lhs, 2 * _FEE_ONE)
                                                            * self.legs[s].tick_q))
                for k, guard in ((b, max_buy[d]), (s, max_sell[d])):
                    if guard < 1:
                        inst = self.instrument_a if k == 0 else self.instrument_b
                        raise SpreadError(
                            f"{inst.name}: no price is comparable exactly at quote rate "
                            f"pay={Decimal(pay).scaleb(-15)} get={Decimal(get).scaleb(-15)} "
                            "on the pair's grid"
                        )
            lhs_k[d] = lhs
            rhs_k[d] = rhs
        for d in range(2):
            self.lhs_k[d] = py_to_int128(lhs_k[d])
            self.rhs_k[d] = py_to_int128(rhs_k[d])
            self.max_buy_px[d] = max_buy[d]
            self.max_sell_px[d] = max_sell[d]
            self.conv_buy[d] = conv_buy[d]
            self.conv_sell[d] = conv_sell[d]
        return 0

    cdef int _beyond_range(self, int direction, int64_t buy_px, int64_t sell_px) except -1:
        cdef int b = 0 if direction == BUY_A_SELL_B else 1
        insts = (self.instrument_a, self.instrument_b)
        if buy_px > self.max_buy_px[direction]:
            inst, what, px, guard = insts[b], "ask", buy_px, self.max_buy_px[direction]
        else:
            inst, what, px, guard = insts[1 - b], "bid", sell_px, self.max_sell_px[direction]
        raise SpreadError(
            f"{inst.name}: {what} of {px} ticks is beyond the {guard} ticks the cross-quote "
            "edge test can compare exactly at this quote rate"
        )

    # --- hot path ---------------------------------------------------------------------

    cdef double top_edge(self, Book buy_book, Book sell_book, int direction) noexcept:
        cdef int b = 0 if direction == BUY_A_SELL_B else 1
        cdef int s = 1 - b
        cdef int64_t pa, pb, qa, qb
        if not self.rate_known:
            return NAN
        if not buy_book.best(ASK, &pa, &qa) or not sell_book.best(BID, &pb, &qb):
            return NAN
        if pa > self.max_buy_px[direction] or pb > self.max_sell_px[direction]:
            return NAN
        return _edge_bps_x(<int128>pa * self.legs[b].tick_q, <int128>pb * self.legs[s].tick_q,
                           FEE_ONE + self.legs[b].fee, FEE_ONE - self.legs[s].fee,
                           self.conv_buy[direction], self.conv_sell[direction])

    cdef int compute(self, Book book_a, Book book_b, int direction,
                     SpreadResult out) except -1:
        if self.cross_quote:
            return self._walk(book_a, book_b, direction, out, <_Cross*>NULL)
        return self._walk(book_a, book_b, direction, out, <_Same*>NULL)

    cdef int _walk(self, Book book_a, Book book_b, int direction, SpreadResult out,
                   _Mode* mode) except -1:
        cdef Book buy_book = book_a if direction == BUY_A_SELL_B else book_b
        cdef Book sell_book = book_b if direction == BUY_A_SELL_B else book_a
        cdef int b = 0 if direction == BUY_A_SELL_B else 1
        cdef LegRules* bl = &self.legs[b]
        cdef LegRules* sl = &self.legs[1 - b]
        cdef LevelIter ia, ib
        cdef Chunk chunks[_MAX_CHUNKS]
        cdef Py_ssize_t nch = 0
        cdef Py_ssize_t i = 0, j = 0
        cdef int64_t kb = FEE_ONE + bl.fee
        cdef int64_t ks = FEE_ONE - sl.fee
        cdef int128 lhs = self.lhs_k[direction]
        cdef int128 rhs = self.rhs_k[direction]
        cdef int128 pa, pb, rem_a, rem_b, take, afford, unit_cost, excess
        cdef int128 total = 0
        cdef int128 cost = 0
        cdef int128 proceeds = 0
        cdef int128 budget = bl.quote_budget
        cdef int128 cap = self.max_size_q if self.max_size_q < sl.base_cap_q else sl.base_cap_q
        cdef int128 qty
        # Overflow guards in ticks (cross-quote only, see _precompute).
        cdef int64_t max_pa = self.max_buy_px[direction]
        cdef int64_t max_pb = self.max_sell_px[direction]
        out.reset(direction)
        out.size_decimals = self.size_decimals
        out.notional_decimals = self.price_decimals + self.size_decimals
        if _Mode is _Cross:
            out.rate_decimals = RATE_DECIMALS
            if not self.rate_known:
                out.status = NO_RATE
                return 0
        else:
            out.rate_decimals = 0
        if not buy_book.iter_first(ASK, &ia) or not sell_book.iter_first(BID, &ib):
            return 0
        pa = <int128>ia.price * bl.tick_q
        pb = <int128>ib.price * sl.tick_q
        if _Mode is _Cross:
            if ia.price > max_pa or ib.price > max_pb:
                return self._beyond_range(direction, ia.price, ib.price)
            out.top_edge_bps = _edge_bps_x(pa, pb, kb, ks, self.conv_buy[direction],
                                           self.conv_sell[direction])
        else:
            out.top_edge_bps = _edge_bps(pa, pb, kb, ks)
        if pb * lhs < pa * rhs:
            out.status = NO_EDGE
            return 0
        rem_a = <int128>ia.size * bl.unit_q
        rem_b = <int128>ib.size * sl.unit_q
        while True:
            take = rem_a if rem_a < rem_b else rem_b
            if cap - total < take:
                take = cap - total
            if budget >= 0:
                unit_cost = pa * kb
                afford = budget // unit_cost
                if afford < take:
                    take = afford
                budget -= take * unit_cost
            if take <= 0:
                break
            total += take
            cost += take * pa
            proceeds += take * pb
            if nch < _MAX_CHUNKS:
                chunks[nch].take = take
                chunks[nch].pa = pa
                chunks[nch].pb = pb
                chunks[nch].buy_px = ia.price
                chunks[nch].sell_px = ib.price
                chunks[nch].i = i
                chunks[nch].j = j
            nch += 1
            rem_a -= take
            rem_b -= take
            if rem_a > 0 and rem_b > 0:
                break                       # a cap or the budget stopped the walk
            if rem_a == 0:
                if not buy_book.iter_next(ASK, &ia):
                    break
                if _Mode is _Cross:                # asks rise: check each one reached
                    if ia.price > max_pa:
                        return self._beyond_range(direction, ia.price, ib.price)
                i += 1
                pa = <int128>ia.price * bl.tick_q
                rem_a = <int128>ia.size * bl.unit_q
            if rem_b == 0:
                # Bids only fall deeper in the book: the top-of-book guard covers them all.
                if not sell_book.iter_next(BID, &ib):
                    break
                j += 1
                pb = <int128>ib.price * sl.tick_q
                rem_b = <int128>ib.size * sl.unit_q
            if pb * lhs < pa * rhs:
                break
        if total == 0:
            out.status = NO_CAPACITY
            return 0
        qty = total - total % self.step_q
        if qty == 0 or qty < bl.min_size_q or qty < sl.min_size_q:
            out.status = BELOW_MIN_SIZE
            return 0
        if nch <= _MAX_CHUNKS:
            # Rounding down removes less than one common lot from the end of the walk.
            excess = total - qty
            nch -= 1
            while excess >= chunks[nch].take:
                excess -= chunks[nch].take
                cost -= chunks[nch].take * chunks[nch].pa
                proceeds -= chunks[nch].take * chunks[nch].pb
                nch -= 1
            cost -= excess * chunks[nch].pa
            proceeds -= excess * chunks[nch].pb
            out.cost = cost
            out.proceeds = proceeds
            out.buy_limit = chunks[nch].buy_px
            out.sell_limit = chunks[nch].sell_px
            out.buy_levels = chunks[nch].i + 1
            out.sell_levels = chunks[nch].j + 1
        else:
            _fill(buy_book, ASK, qty, bl, &out.cost, &out.buy_limit, &out.buy_levels)
            _fill(sell_book, BID, qty, sl, &out.proceeds, &out.sell_limit, &out.sell_levels)
        # A venue judges an order's notional at its limit price, the worst level touched
        # (a sell walking two bids is worth less there than at its average).
        if (qty * (<int128>out.buy_limit * bl.tick_q) < bl.min_notional_q
                or qty * (<int128>out.sell_limit * sl.tick_q) < sl.min_notional_q):
            out.status = BELOW_MIN_NOTIONAL
            out.cost = 0
            out.proceeds = 0
            out.buy_levels = out.sell_levels = 0
            out.buy_limit = out.sell_limit = 0
            return 0
        out.status = OK
        out.base_qty = <int64_t>qty
        out.buy_size = <int64_t>(qty // bl.unit_q)
        out.sell_size = <int64_t>(qty // sl.unit_q)
        if _Mode is _Cross:
            # Profit in A's quote needs the rate's 15 decimals on top: formed from these
            # when read (SpreadResult.profit_scaled), never on the hot path.
            out.buy_conv = self.pay_q if direction == BUY_B_SELL_A else RATE_ONE
            out.sell_conv = self.get_q if direction == BUY_A_SELL_B else RATE_ONE
            out.kb = kb
            out.ks = ks
        else:
            out.profit_scaled = out.proceeds * ks - out.cost * kb
        return 0


    cpdef SpreadResult calc(self, Book book_a, Book book_b, int direction):
        """Both books' answer for one direction (BUY_A_SELL_B or BUY_B_SELL_A).

        A cross-quote calculator without a rate answers NO_RATE (before looking at the
        books). On a cross-quote pair a book price so large that the exact edge test could
        overflow int128 at the current rate raises SpreadError (see set_quote_rate)."""
        cdef SpreadResult out = SpreadResult.__new__(SpreadResult)
        self.calc_into(book_a, book_b, direction, out)
        return out

    def calc_into(self, Book book_a not None, Book book_b not None, int direction,
                  SpreadResult out not None):
        """Like ``calc`` but fills a result the caller reuses: no allocation at all."""
        if direction != BUY_A_SELL_B and direction != BUY_B_SELL_A:
            raise SpreadError(f"direction must be BUY_A_SELL_B (0) or BUY_B_SELL_A (1), "
                              f"got {direction}")
        if book_a is book_b:
            raise SpreadError("book_a and book_b are the same book")
        # What compute() does, one call shorter.
        if self.cross_quote:
            self._walk(book_a, book_b, direction, out, <_Cross*>NULL)
        else:
            self._walk(book_a, book_b, direction, out, <_Same*>NULL)

    def top_edges(self, Book book_a not None, Book book_b not None):
        """Top-of-book net edge in bps for (buy A/sell B, buy B/sell A), converted into A's
        quote on a cross-quote pair; NaN if a side is empty, the quote rate is unknown or a
        top price is beyond the exact range (see set_quote_rate). Informational only."""
        return (self.top_edge(book_a, book_b, BUY_A_SELL_B),
                self.top_edge(book_b, book_a, BUY_B_SELL_A))
