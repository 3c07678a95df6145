# The risk gates' hot state and the one check every new arb passes (``GateCore.check``).
#
# ``arbengine.risk.RiskGates`` is the typed Python API: it validates limits, builds this state
# and owns everything off the hot path (hedge checks, breakers' bookkeeping, the kill
# switch's history, reports). The state objects are cdef classes with public attributes so
# that API reads and writes them directly, and the check reads them as C struct fields.
#
# Amounts in atoms (10**-18 of an asset) and token-bucket units exceed int64, so they are
# Python ints (``object``) compared and multiplied by CPython's long arithmetic without the
# interpreter; times are int64 ns.
#
# What the check needs of the portfolio it reads from the portfolio's ledger cells
# (_core/ledger.pxd), held here by reference: each venue's line, each instrument's two
# accounts, each pair's base asset line and the ledger itself (the total of open orders).
# RiskGates sets every one when it builds this state, and the check reads them without a
# None test, as it reads ``Rules.venue`` or ``PairGate.a``.

from cpython.ref cimport PyObject
from libc.stdint cimport int64_t

from arbengine._core.book cimport Book
from arbengine._core.instrument cimport Instrument
from arbengine._core.ledger cimport Account, AssetLine, Ledger, VenueLine
from arbengine._core.spread cimport SpreadResult
from arbengine._core.wide cimport int128

# Reason codes: the values of arbengine.risk.Reason (a test keeps the two in step).
cpdef enum:
    R_OK = 0
    R_KILL_SWITCH = 1
    R_UNKNOWN_PAIR = 2
    R_WRONG_INSTRUMENT = 3
    R_EDGE_TOO_SMALL = 4
    R_EDGE_TOO_LARGE = 5
    R_BOOK_NOT_LIVE = 6
    R_BOOK_STALE = 7
    R_DATA_AGE = 8
    R_VENUE_LAG = 9
    R_NO_CLOCK_OFFSET = 10
    R_CIRCUIT_OPEN = 11
    R_VENUE_UNHEALTHY = 12
    R_BAD_PRICE = 13
    R_BAD_SIZE = 14
    R_OFF_LOT = 15
    R_BELOW_MIN_SIZE = 16
    R_BELOW_MIN_NOTIONAL = 17
    R_SIZE_TOO_SMALL = 18
    R_SIZE_TOO_LARGE = 19
    R_NOTIONAL_TOO_SMALL = 20
    R_NOTIONAL_TOO_LARGE = 21
    R_MAX_OPEN_ORDERS = 22
    R_MAX_OPEN_ORDERS_TOTAL = 23
    R_INSUFFICIENT_BALANCE = 24
    R_MAX_INVENTORY = 25
    R_MAX_EXPOSURE = 26
    R_RATE_LIMITED = 27
    R_REASONS = 31  # one past the last arbengine.risk.Reason value

cdef enum:
    # What the check's C path answers when a value is beyond it: take the Python-int path.
    GATES_SLOW = 1000


cdef class Bucket:
    """Exact int token bucket: ``level`` in units (``unit`` per token), ``rate`` units/ns.

    int128 fields (Python reads and writes them as ints through properties that refuse
    anything beyond int128): the arb check takes tokens in C."""
    cdef int128 unit
    cdef int128 rate
    cdef int128 cap
    cdef int128 reserve  # units only priority takes (hedges, cancels) may use
    cdef int128 level
    cdef public int64_t stamp

    cpdef object refill(self, int64_t now)
    cdef int128 refill_w(self, int64_t now) noexcept


cdef class VenueState:
    cdef public str name
    cdef public object limits  # its arbengine.risk.VenueLimits
    cdef public tuple buckets  # venue-wide buckets
    cdef public int64_t max_age
    cdef public int64_t max_open
    cdef public int64_t failures
    cdef public int64_t cooldown
    cdef public int64_t consecutive
    cdef public int64_t open_until  # 0: breaker closed; else open until then, half-open after
    cdef public int64_t trial_until  # half-open: the one trial arb is out until then
    cdef public int64_t window
    cdef public object rejects  # deque of the last (threshold + 1) event times per kind
    cdef public object timeouts
    cdef public object resyncs
    cdef public int64_t unhealthy_until
    cdef public VenueLine line  # its open orders, from the portfolio's ledger


cdef class Rules:
    """One instrument's order rules, in the units an arb's legs carry.

    The amounts are Python ints behind properties that also keep an int128 copy (``*_w``)
    for the check's C path; ``unfit`` is nonzero while one of them is not an int within
    int128, and the check then takes its Python-int path."""
    cdef public Instrument instrument
    cdef public VenueState venue
    cdef public str base
    cdef public str quote
    cdef object lot
    cdef object min_size
    cdef object min_notional  # quote atoms
    cdef object base_per_size
    cdef object quote_per_px_size
    cdef public object fee_bps  # Decimal, for reports
    cdef object fee_num  # fee = ceil(notional * fee_num / fee_den)
    cdef object fee_den
    cdef int128 lot_w, min_size_w, min_notional_w, base_per_size_w, quote_per_px_size_w
    cdef int128 fee_num_w, fee_den_w
    cdef int unfit
    cdef public tuple takes  # ((Bucket, cost in its units), ...): venue-wide and own
    cdef public Account quote_account  # (its venue, quote): what a BUY spends
    cdef public Account base_account  # (its venue, base): what a SELL spends
    # A derivative (Instrument.derivative): either side spends only the fee on its
    # notional, from quote_account; a SELL may open a short.
    cdef public bint derivative

    cdef int conform(self, object price, object size) except -1
    # conform on C values: -1 when a value is beyond the C path (its caller falls back).
    cdef int conform_w(self, int64_t price, int64_t size, int128 notional) noexcept nogil


cdef enum:
    MAX_TAKES = 8  # buckets a pair's check takes from in C; more go the Python-int path


cdef class PairGate:
    """One pair's limits: amounts as in Rules (properties with int128 copies)."""
    cdef public Rules a
    cdef public Rules b
    cdef public str base
    cdef public object min_edge  # Decimal bps (reports) ...
    cdef public object max_edge
    cdef object min_edge_num  # ... and the same as exact fractions
    cdef object min_edge_den
    cdef object max_edge_num
    cdef object max_edge_den
    cdef object min_base
    cdef object max_base
    cdef object min_notional
    cdef object max_notional
    cdef object max_inventory
    cdef object max_exposure
    cdef int128 min_edge_num_w, min_edge_den_w, max_edge_num_w, max_edge_den_w
    cdef int128 min_base_w, max_base_w, min_notional_w, max_notional_w
    cdef int128 max_inventory_w, max_exposure_w
    cdef int unfit
    cdef public bint same_venue
    cdef tuple takes  # both legs' buckets, each once
    # ``takes`` unpacked for the C path (borrowed: ``takes`` holds the references);
    # n_takes is -1 when they do not fit it.
    cdef PyObject* take_buckets[MAX_TAKES]
    cdef int128 take_costs[MAX_TAKES]
    cdef int n_takes
    cdef public AssetLine asset  # the base asset: inventory (== net exposure), in flight


cpdef bint take(tuple takes, int64_t now, bint priority) except -1


cdef class GateCore:
    cdef object _level  # arbengine.risk.KillLevel, falsy when trading (a property) ...
    cdef bint _halted  # ... and its truth, kept by the same setter, for the check to read
    cdef public dict _pairs  # pair_id -> PairGate
    cdef public object _portfolio  # arbengine.risk.PortfolioView
    cdef public Ledger _ledger  # its ledger: the check reads open_total here
    cdef public int64_t _max_age
    cdef public int64_t _max_open_total
    cdef public list counts  # checks per reason code
    cdef public str last_venue  # the venue of the last venue-specific refusal
    cdef readonly object _clock  # monotonic ns
    cdef readonly object _wall  # epoch ns
    cdef bint _native_clock  # _clock is time.monotonic_ns: read CLOCK_MONOTONIC directly
    cdef bint _native_wall
    # False: every check takes the Python-int path, as when a value is beyond the C path
    # (the tests hold each path to the reference). Checks that took it are counted.
    cdef public bint c_path
    cdef readonly int64_t slow_checks

    cdef int64_t _now(self) except? -1
    cdef int64_t _wall_now(self) except? -1
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
    ) except -1
    # Every gate after the kill switch, once the pair and its legs' rules are known: what
    # both entry points (``check`` and ``ArbGate.check``) share.
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
    ) except -1
    # The same gates on C values, the usual path: GATES_SLOW, before any state changes, when
    # some value is beyond int128 (or a product of them overflows).
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
    ) except -1


cdef class ArbGate:
    """One engine pair's arb check, bound once: the gates fed straight from the spread
    calculator's result and the pair's two books (C fields, no Python object in between).

    ``a``/``b`` are the calculator's sides; the result's direction says which one buys."""
    cdef readonly GateCore core
    cdef readonly PairGate pair
    cdef readonly Rules rules_a
    cdef readonly Rules rules_b
    cdef readonly Book book_a
    cdef readonly Book book_b
    cdef readonly object wall  # epoch ns for the venue clock offsets; None: the kernel's

    cpdef int check(self, SpreadResult res, bint live_a, bint live_b, object recv_ns,
                    Book trigger, object trigger_clock) except -1
