# Cross-venue spread calculator: net edge at the top of book, and the largest size whose
# marginal edge stays at or above a threshold, found by walking both books together.
#
# Both legs are brought onto one common grid: prices in "price quanta" (10**-price_decimals)
# and sizes in "base quanta" (10**-size_decimals of the base asset). Notional is then an exact
# integer in 10**-(price_decimals + size_decimals) quote; comparisons and sums use __int128,
# so no float ever decides a size or a limit price.

from libc.stdint cimport int64_t

from arbengine._core.book cimport Book
from arbengine._core.instrument cimport Instrument

cdef extern from *:
    # GCC/Clang 128-bit integer. Cython only needs to know it is an integer; values never
    # cross into Python except through int128_to_py().
    ctypedef long long int128 "__int128"

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

cdef struct LegRules:
    int64_t tick_q          # one tick of this venue in common price quanta
    int64_t unit_q          # one size step of this venue in common base quanta
    int64_t lot_q           # one order lot of this venue in common base quanta
    int64_t fee             # taker fee in millionths (1 bp = 100)
    int64_t min_size_q
    int64_t min_notional_q  # in common notional quanta (rounded up)
    int128 quote_budget     # quote balance * FEE_ONE in notional quanta; <0 = unlimited
    int64_t base_cap_q      # base balance in base quanta; INT64_MAX = unlimited


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
    cdef int128 cost                       # buy notional before fees, notional quanta
    cdef int128 proceeds                   # sell notional before fees
    cdef int128 profit_scaled              # proceeds*(1-fee) - cost*(1+fee), x FEE_ONE

    cdef void reset(self, int direction) noexcept


cdef class SpreadCalculator:
    cdef readonly Instrument instrument_a
    cdef readonly Instrument instrument_b
    cdef readonly int price_decimals
    cdef readonly int size_decimals
    cdef LegRules legs[2]
    cdef int64_t min_edge                  # threshold in millionths (1 bp = 100)
    cdef int64_t max_size_q                # INT64_MAX = unlimited
    cdef int64_t step_q                    # lcm of both lots: sizes fill both grids
    cdef int64_t lhs_k[2]                  # per direction: sell coefficient (1-fee_s)*ONE
    cdef int64_t rhs_k[2]                  # buy coefficient (1+fee_b)*(1+min_edge)

    cdef void _precompute(self) noexcept
    cdef int compute(self, Book book_a, Book book_b, int direction,
                     SpreadResult out) except -1
    cdef double top_edge(self, Book buy_book, Book sell_book, int direction) noexcept
    cpdef SpreadResult calc(self, Book book_a, Book book_b, int direction)
