# Cross-venue spread calculator: net edge at the top of book, and the largest size whose
# marginal edge stays at or above a threshold, found by walking both books together.
#
# Both legs are brought onto one common grid: prices in "price quanta" (10**-price_decimals)
# and sizes in "base quanta" (10**-size_decimals of the base asset). Notional is then an exact
# integer in 10**-(price_decimals + size_decimals) quote; comparisons and sums use __int128,
# so no float ever decides a size or a limit price.
#
# Cross-quote pairs (cross_quote=True, e.g. BTC/USD against BTC/USDT): the pair's quote is
# A's. B's prices stay in B's quote on the grid above and are converted only where legs are
# compared or summed into A's quote, by a rate held as a fixed-point integer x RATE_ONE
# (10**15): pay_q (A-quote paid per B-quote, rounded up) when buying on B, get_q (A-quote
# received per B-quote, rounded down) when selling on B. The rate is folded into the two
# threshold coefficients (lhs_k/rhs_k, reduced by their gcd), so the per-level test is the
# same two int128 products and one compare as for a same-quote pair. Rates are bounded to
# [1e-6, 1e6]: coefficients stay below 2**112, and each direction's max_buy_px/max_sell_px
# caps the book prices (in ticks) for which every product of a price in that test, the
# budget and the top-of-book edge fits int128; a price beyond raises SpreadError instead of
# overflowing. Notional, budgets and minimums stay in each leg's own quote.

from libc.stdint cimport int64_t

from arbengine._core.book cimport Book
from arbengine._core.instrument cimport Instrument

from arbengine._core.wide cimport int128

cpdef enum:
    BUY_A_SELL_B = 0
    BUY_B_SELL_A = 1

cpdef enum:
    OK = 0
    EMPTY_BOOK = 1          # a side needed for this direction has no levels
    NO_EDGE = 2             # the top-of-book net edge is below the threshold
    NO_CAPACITY = 3         # balances or max size allow nothing
    BELOW_MIN_SIZE = 4      # the lot-rounded size is below a venue's minimum
    BELOW_MIN_NOTIONAL = 5  # a leg's notional is below its venue's minimum
    NO_RATE = 6             # cross-quote pair whose quote rate is not set (or was cleared)

cdef struct LegRules:
    int64_t tick_q          # one tick of this venue in common price quanta
    int64_t unit_q          # one size step of this venue in common base quanta
    int64_t lot_q           # one order lot of this venue in common base quanta
    int64_t fee             # taker fee in millionths (1 bp = 100)
    int64_t min_size_q
    int64_t min_notional_q  # in common notional quanta (rounded up)
    int128 quote_budget     # this leg's own-quote balance * FEE_ONE in notional quanta
                            # (never converted); <0 = unlimited
    int64_t base_cap_q      # base balance in base quanta; INT64_MAX = unlimited


# The walk (SpreadCalculator._walk) is compiled twice from one source, selected by the type
# of a pointer that is never read: _Same is the same-quote walk exactly as before cross-quote
# support (nothing added to its hot path), _Cross adds the rate check and the price guards.
cdef struct _Same:
    char unused


cdef struct _Cross:
    char unused


ctypedef fused _Mode:
    _Same
    _Cross


cdef class SpreadResult:
    cdef readonly int direction
    cdef readonly int status
    cdef readonly double top_edge_bps      # NaN when a side is empty
    cdef readonly int64_t base_qty         # common base quanta; 0 unless status == OK
    cdef readonly int64_t buy_size         # order size on the buying venue, its size units
    cdef readonly int64_t sell_size        # order size on the selling venue, its size units
    cdef readonly int64_t buy_limit        # worst ask touched, buying venue's ticks
    cdef readonly int64_t sell_limit       # worst bid touched, selling venue's ticks
    cdef readonly Py_ssize_t buy_levels    # levels touched on each side
    cdef readonly Py_ssize_t sell_levels
    cdef readonly int size_decimals
    cdef readonly int notional_decimals
    cdef readonly int rate_decimals        # 0 same-quote; 15 cross-quote (profit scale)
    cdef int128 cost                       # buy notional before fees, notional quanta of
                                           # the buying venue's own quote
    cdef int128 proceeds                   # sell notional before fees, selling venue's quote
    cdef int128 profit_scaled              # same-quote only: proceeds*(1-fee) -
                                           # cost*(1+fee), x FEE_ONE (cross: computed from
                                           # the fields below when read, never overflows)
    cdef int128 buy_conv                   # cross only: A-quote per unit of the buy leg's
    cdef int128 sell_conv                  # / sell leg's quote, x RATE_ONE (RATE_ONE = A)
    cdef int64_t kb                        # cross only: FEE_ONE + buy fee
    cdef int64_t ks                        # cross only: FEE_ONE - sell fee

    cdef void reset(self, int direction) noexcept


# The net edge of an OK result as an exact fraction ``(num, den)`` in bps, den > 0: what
# ``SpreadResult.edge_ratio`` returns, for compiled callers (the risk gates) without the
# attribute lookup.
cdef tuple edge_fraction(SpreadResult r)


cdef class SpreadCalculator:
    cdef readonly Instrument instrument_a
    cdef readonly Instrument instrument_b
    cdef readonly int price_decimals
    cdef readonly int size_decimals
    cdef LegRules legs[2]
    cdef int64_t min_edge                  # threshold in millionths (1 bp = 100)
    cdef int64_t max_size_q                # INT64_MAX = unlimited
    cdef int64_t step_q                    # lcm of both lots: sizes fill both grids
    # Per direction. Marginal edge >= min_edge  <=>  sell_px * lhs_k >= buy_px * rhs_k.
    # Same-quote: lhs_k = (1-fee_s)*ONE, rhs_k = (1+fee_b)*(1+min_edge), as before.
    # Cross: the sell coefficient also carries get_q (selling on B) or RATE_ONE, the buy
    # coefficient pay_q (buying on B) or RATE_ONE; both divided by their gcd.
    cdef int128 lhs_k[2]
    cdef int128 rhs_k[2]
    cdef int64_t max_buy_px[2]             # cross: overflow guards, in the venue's ticks
    cdef int64_t max_sell_px[2]            # (INT64_MAX and unused for same-quote pairs)
    cdef double conv_buy[2]                # informational (top_edge_bps): rate as double,
    cdef double conv_sell[2]               # 1.0 where no conversion applies
    # Cross-quote state (after the fields the walk reads on every call).
    cdef readonly bint cross_quote         # B may be in another quote, converted to A's
    cdef bint rate_known                   # always True unless cross_quote
    cdef int128 pay_q                      # cross: A-quote paid per B-quote x RATE_ONE (up)
    cdef int128 get_q                      # cross: A-quote got per B-quote x RATE_ONE (down)

    cdef int _precompute(self) except -1
    cdef int _beyond_range(self, int direction, int64_t buy_px, int64_t sell_px) except -1
    cdef int compute(self, Book book_a, Book book_b, int direction,
                     SpreadResult out) except -1
    cdef int _walk(self, Book book_a, Book book_b, int direction, SpreadResult out,
                   _Mode* mode) except -1
    cdef double top_edge(self, Book buy_book, Book sell_book, int direction) noexcept
    cpdef SpreadResult calc(self, Book book_a, Book book_b, int direction)
