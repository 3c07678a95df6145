"""Inline risk gates: every order passes here, synchronously, before it is handed to a gateway.

``RiskGates.check_arb`` judges a new arb (both legs at once), ``check_hedge`` an unwind or a
chase. Each returns a ``Reason``: ``Reason.OK`` (0, falsy) to go ahead, anything else names the
gate that refused, is counted (``counts``/``counters()`` for the metrics layer) and is what the
engine journals. ``last_venue`` names the venue a venue-specific refusal was about.

The check is compiled (``_core/gates.pyx``; tests/reference/risk.py is its Python oracle).

Order of the gates in ``check_arb`` (cheapest and most often decisive first; every gate before
the last only reads, so a refusal anywhere leaves no trace but its counter):

1. kill switch: one int compare, and while it is on it refuses everything;
2. pair and instruments: one dict lookup that everything below needs; legs must be the
   pair's instruments (a wrong mapping caught before any arithmetic);
3. edge min / max: two exact fractions compared by cross-multiplying ints (no Decimal on
   the hot path); a too-good-to-be-true edge means a stale book or a wrong symbol mapping,
   so it is refused here before anything trusts the prices;
4. books LIVE, book staleness per venue, data age (the triggering frame's receive time and
   the venue event time corrected by that venue's clock offset): bools and int compares
   plus one read of each clock; stale data is the most common reason a found edge is not
   real;
5. venue state: circuit breaker and health, one compare per venue (the state is kept
   up to date by ``record_result``/``record_resync``, off the check path);
6. order rules per leg: price on the tick grid, size on the lot, min size, min notional
   (both venues'), then our per-leg size and notional limits: integer arithmetic on the
   intent, nothing called;
7. portfolio: open orders (per venue, total), balances net of reservations, inventory, net
   exposure (worst case if one leg fails). The check reads them as fields of the portfolio's
   ledger cells (``_core/ledger.pxd``), held by reference in its state: nothing is called,
   but it is other objects' memory, likely cache-cold, so these come after everything that
   can refuse without them;
8. order rate tokens, last because it is the only gate that changes state: both venues'
   buckets are taken atomically (all or none) and only for an arb that passed everything
   else, so a refused arb never burns venue quota. A half-open circuit's single trial is
   claimed here too.

Amounts are exact ints (``orders``): prices and sizes in grid units, balances and limits in
atoms. Limits are built from decimal text / int / Decimal and refuse floats (TypeError naming
the field) and bad values (ValueError, one line naming the limit). Times are ints in ns:
``clock`` is monotonic (book updates, frame receive times, breakers, buckets), ``wall_clock``
is epoch ns (venue event times, kill-switch history).

The balance model is spot's: a BUY needs quote (notional plus fee), a SELL needs base.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import IntEnum, StrEnum
from math import gcd
from typing import Protocol

from arbengine._core.gates import Bucket, GateCore, PairGate, Rules, VenueState, take
from arbengine._core.instrument import Instrument
from arbengine._core.ledger import Ledger
from arbengine.orders import AtomScale, Order, Purpose, Side, atoms, from_atoms

Amount = str | int | Decimal
INT64_MAX = 2**63 - 1
_NS_PER_S = 10**9
AUTO = "risk"  # the ``by`` of automatic kill-switch triggers; never accepted by ``resume``


class PortfolioView(Protocol):
    """What the gates read from the portfolio. Amounts are atoms (10**-18 of an asset);
    ``marks`` price each asset in the reference currency.

    ``net_exposure`` is signed (> 0: long the asset); ``drawdown`` is how far equity is below
    its peak (>= 0); ``realized_pnl_today`` is signed (< 0: a loss).

    ``ledger`` holds the same figures the arb check needs (open orders, available, inventory
    == net exposure, in flight) as cells the view keeps exact through every change; the
    compiled check reads those, the methods serve everything else (hedges, reports). The
    gates take the cells when they are built, so the view must keep this one ledger for its
    lifetime."""

    @property
    def ledger(self) -> Ledger: ...

    def available(self, venue: str, asset: str) -> int: ...

    def inventory(self, asset: str) -> int: ...

    def net_exposure(self, asset: str) -> int: ...

    def in_flight(self, asset: str) -> tuple[int, int]: ...  # (open buy, open sell) base atoms

    def open_orders(self, venue: str) -> int: ...

    def open_orders_total(self) -> int: ...

    def realized_pnl_today(self, marks: Mapping[str, Decimal]) -> int: ...

    def drawdown(self, marks: Mapping[str, Decimal]) -> int: ...

    def equity(self, marks: Mapping[str, Decimal]) -> int: ...


class Reason(IntEnum):
    """Why a check passed (OK) or which gate refused; the values follow the gate order."""

    OK = 0
    KILL_SWITCH = 1
    UNKNOWN_PAIR = 2
    WRONG_INSTRUMENT = 3
    EDGE_TOO_SMALL = 4
    EDGE_TOO_LARGE = 5
    BOOK_NOT_LIVE = 6
    BOOK_STALE = 7
    DATA_AGE = 8  # the triggering frame was received too long ago
    VENUE_LAG = 9  # its venue event time, offset-corrected, is too old
    NO_CLOCK_OFFSET = 10  # an event time but no offset estimate to judge it
    CIRCUIT_OPEN = 11
    VENUE_UNHEALTHY = 12
    BAD_PRICE = 13  # not a positive int64 count of ticks
    BAD_SIZE = 14  # not a positive int64 count of size units
    OFF_LOT = 15
    BELOW_MIN_SIZE = 16
    BELOW_MIN_NOTIONAL = 17
    SIZE_TOO_SMALL = 18
    SIZE_TOO_LARGE = 19
    NOTIONAL_TOO_SMALL = 20
    NOTIONAL_TOO_LARGE = 21
    MAX_OPEN_ORDERS = 22
    MAX_OPEN_ORDERS_TOTAL = 23
    INSUFFICIENT_BALANCE = 24
    MAX_INVENTORY = 25
    MAX_EXPOSURE = 26
    RATE_LIMITED = 27
    NOT_HEDGE = 28  # an ENTRY order sent to check_hedge
    UNKNOWN_INSTRUMENT = 29
    NOT_REDUCING = 30  # a hedge that would not reduce exposure under REDUCE_ONLY/FLATTEN


class KillLevel(IntEnum):
    NONE = 0
    HALT_NEW = 1  # no new arbs; hedges go on
    REDUCE_ONLY = 2  # no new arbs; only hedges that reduce exposure
    FLATTEN = 3  # REDUCE_ONLY, and the engine sells/buys its holdings back to zero


class Outcome(StrEnum):
    """What became of an order on a venue, for breakers and health."""

    OK = "ok"
    REJECT = "reject"
    TIMEOUT = "timeout"


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"  # cooling down: no new arbs on the venue
    HALF_OPEN = "half_open"  # one trial arb allowed; its result closes or reopens


@dataclass(frozen=True, slots=True)
class KillEvent:
    """One change of the kill-switch level, for the journal."""

    level: KillLevel
    previous: KillLevel
    by: str
    why: str
    wall_ns: int  # epoch ns
    mono_ns: int


# Enum member access costs ~250 ns on CPython 3.11 (a descriptor call each time); the check
# paths read these module globals, the very same members, instead.
_OK = Reason.OK
_INSUFFICIENT_BALANCE = Reason.INSUFFICIENT_BALANCE
_RATE_LIMITED = Reason.RATE_LIMITED
_NOT_HEDGE = Reason.NOT_HEDGE
_UNKNOWN_INSTRUMENT = Reason.UNKNOWN_INSTRUMENT
_NOT_REDUCING = Reason.NOT_REDUCING
_ENTRY = Purpose.ENTRY
_BUY = Side.BUY
_REDUCE_ONLY = KillLevel.REDUCE_ONLY
_FOREVER = 2**63 - 1  # an int64 ns no clock reaches: a hold lasts until released
# Reason by value: the compiled check returns the code.
_REASONS = tuple(Reason)


# --- limits -----------------------------------------------------------------------------------


def _int(owner: str, name: str, value: object, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner}.{name}: expected an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{owner}.{name}: must be >= {minimum}, got {value}")
    return value


def _decimal(owner: str, name: str, value: object) -> Decimal:
    if isinstance(value, (bool, float)) or not isinstance(value, (str, int, Decimal)):
        raise TypeError(
            f"{owner}.{name}: amounts are decimal text, int or Decimal, not {type(value).__name__}"
        )
    try:
        dec = value if isinstance(value, Decimal) else Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{owner}.{name}: not a decimal: {value!r}") from None
    if not dec.is_finite():
        raise ValueError(f"{owner}.{name}: not a finite amount: {value!r}")
    return dec


def _atoms(owner: str, name: str, value: object) -> int:
    """A non-negative amount of an asset, in exact atoms."""
    dec = _decimal(owner, name, value)
    if dec < 0:
        raise ValueError(f"{owner}.{name}: must be >= 0, got {value}")
    try:
        return atoms(dec)
    except ValueError as exc:
        raise ValueError(f"{owner}.{name}: {exc}") from None


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)  # compiled fields of a frozen dataclass


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket: up to ``burst`` orders at once, ``refill`` more every ``seconds``.

    ``per_instrument``: one bucket per instrument (OKX "User ID + Instrument ID", Kraken's
    per-pair counters) instead of one for the venue. Build them with ``window`` (a venue's
    "N orders per T" limit) or ``counter`` (a venue whose limit is itself a decaying counter).
    """

    burst: int
    refill: int
    seconds: Amount
    per_instrument: bool = False
    _unit: int = field(init=False, repr=False, compare=False)  # units per token
    _rate: int = field(init=False, repr=False, compare=False)  # units refilled per ns

    def __post_init__(self) -> None:
        owner = "RateLimit"
        _int(owner, "burst", self.burst, 1)
        _int(owner, "refill", self.refill, 1)
        secs = _decimal(owner, "seconds", self.seconds)
        if secs <= 0:
            raise ValueError(f"{owner}.seconds: must be > 0, got {self.seconds}")
        # refill / seconds tokens per s = refill * den / (num * 1e9) tokens per ns. Counting in
        # units of 1/(num * 1e9 / g) token keeps the bucket in exact ints.
        num, den = secs.as_integer_ratio()
        unit, rate = num * _NS_PER_S, self.refill * den
        g = gcd(unit, rate)
        _set(self, "_unit", unit // g)
        _set(self, "_rate", rate // g)

    @staticmethod
    def window(count: int, seconds: Amount, *, per_instrument: bool = False) -> RateLimit:
        """At most ``count`` orders in ANY ``seconds``-long window (sliding or fixed): half
        of it as burst, the rest refilled over the window, so burst + refill <= count. A full
        bucket refilled at count/seconds would allow up to 2 x count in one window."""
        _int("RateLimit.window", "count", count, 2)
        burst = count - count // 2
        return RateLimit(burst, count - burst, seconds, per_instrument)

    @staticmethod
    def counter(threshold: int, decay_per_s: Amount, *, per_instrument: bool = True) -> RateLimit:
        """A venue counter that each order raises by 1 and that decays continuously (Kraken):
        exactly a bucket of ``threshold`` tokens refilled at ``decay_per_s``."""
        decay = _decimal("RateLimit.counter", "decay_per_s", decay_per_s)
        if decay <= 0:
            raise ValueError(f"RateLimit.counter.decay_per_s: must be > 0, got {decay_per_s}")
        num, den = decay.as_integer_ratio()
        return RateLimit(threshold, num, den, per_instrument)


# Documented order-entry limits, as conservative default buckets (config can override).
# | venue    | documented limit                                        | source (read 2026)   |
# |----------|---------------------------------------------------------|----------------------|
# | binance  | spot ORDERS: 50 / 10 s and 160,000 / day per account    | [1]                  |
# | okx      | place order: 60 / 2 s per instrument (User ID + Inst    | [2]                  |
# |          | ID); 1,000 order requests / 2 s per sub-account         |                      |
# | bybit    | default per-UID: 20/s spot (10/s futures), rolling 1 s  | [3]                  |
# | kraken   | per-pair counter, +1 per add order, threshold 60 and    | [4]                  |
# |          | decay 1/s (Starter; Intermediate 125 & 2.34/s; Pro 180  |                      |
# |          | & 3.75/s)                                               |                      |
# | coinbase | Advanced Trade private REST: 30 requests/s per user     | [5] (lower confidence|
# |          |                                                         |  : via mirrors)      |
# [1] https://developers.binance.com/docs/binance-spot-api-docs/rest-api (GET /api/v3/rateLimit/
#     order; the live values are in exchangeInfo "rateLimits", which should replace these)
# [2] https://www.okx.com/docs-v5/en/#order-book-trading-trade-post-place-order and
#     #overview-rate-limits-sub-account-rate-limit
# [3] https://bybit-exchange.github.io/docs/v5/rate-limit (and .../rules-for-pros/introduction)
# [4] https://docs.kraken.com/api/docs/guides/spot-ratelimits (tier table also in
#     krakenfx/kraken-cli's rate-limit notes)
# [5] https://docs.cdp.coinbase.com/advanced-trade/docs/rest-api-rate-limits
# Window limits become ``RateLimit.window`` (never more than the documented count in any
# window); Kraken's counter is a bucket already. Bybit's default is the spot one: a futures
# venue should be configured with RateLimit.window(10, 1).
DEFAULT_RATE_LIMITS: Mapping[str, tuple[RateLimit, ...]] = {
    "binance": (RateLimit.window(50, 10), RateLimit.window(160_000, 86_400)),
    "okx": (RateLimit.window(60, 2, per_instrument=True), RateLimit.window(1_000, 2)),
    "bybit": (RateLimit.window(20, 1),),
    "kraken": (RateLimit.counter(60, 1),),
    "coinbase": (RateLimit.window(30, 1),),
}


@dataclass(frozen=True, slots=True)
class VenueLimits:
    """Per-venue limits. ``rate_limits`` None means the documented defaults for ``name``."""

    name: str
    max_book_age_ns: int = 2_000_000_000  # since the book's last update
    max_open_orders: int = 10
    rate_limits: tuple[RateLimit, ...] | None = None
    priority_share: Amount = "0.2"  # of every bucket, reserved to hedges and cancels
    breaker_failures: int = 3  # consecutive rejects/timeouts that open the breaker
    breaker_cooldown_ns: int = 30_000_000_000
    health_window_ns: int = 60_000_000_000
    max_rejects: int = 5  # in the window; one more makes the venue unhealthy
    max_timeouts: int = 3
    max_resyncs: int = 5
    _limits: tuple[RateLimit, ...] = field(init=False, repr=False, compare=False)
    _share: Decimal = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"VenueLimits.name: must be a non-empty str, got {self.name!r}")
        owner = f"VenueLimits({self.name})"
        _int(owner, "max_book_age_ns", self.max_book_age_ns, 1)
        _int(owner, "max_open_orders", self.max_open_orders, 1)
        _int(owner, "breaker_failures", self.breaker_failures, 1)
        _int(owner, "breaker_cooldown_ns", self.breaker_cooldown_ns, 1)
        _int(owner, "health_window_ns", self.health_window_ns, 1)
        _int(owner, "max_rejects", self.max_rejects)
        _int(owner, "max_timeouts", self.max_timeouts)
        _int(owner, "max_resyncs", self.max_resyncs)
        share = _decimal(owner, "priority_share", self.priority_share)
        if not 0 <= share < 1:
            raise ValueError(f"{owner}.priority_share: must be in [0, 1), got {share}")
        limits = self.rate_limits
        if limits is None:
            if self.name not in DEFAULT_RATE_LIMITS:
                raise ValueError(f"{owner}.rate_limits: no documented default for {self.name}")
            limits = DEFAULT_RATE_LIMITS[self.name]
        for rl in limits:
            if not isinstance(rl, RateLimit):
                raise TypeError(f"{owner}.rate_limits: expected RateLimit, not {type(rl).__name__}")
            if _reserve(rl.burst, share) >= rl.burst:
                raise ValueError(
                    f"{owner}.priority_share: {share} of a burst of {rl.burst} leaves "
                    "nothing for arbs"
                )
        _set(self, "_limits", tuple(limits))
        _set(self, "_share", share)


def _reserve(burst: int, share: Decimal) -> int:
    num, den = share.as_integer_ratio()
    return -((-burst * num) // den)  # rounded up: hedges keep at least their share


@dataclass(frozen=True, slots=True)
class PairLimits:
    """One cross-venue pair: edge bounds, per-leg limits and the fees used for balances.

    Sizes are per leg in the base asset, notionals per leg in that leg's quote asset (a pair
    of USD and USDT legs compares each against the same number)."""

    pair_id: str
    a: Instrument
    b: Instrument
    min_edge_bps: Amount
    max_edge_bps: Amount
    max_base: Amount
    max_notional: Amount
    min_base: Amount = 0
    min_notional: Amount = 0
    fee_a_bps: Amount = 0
    fee_b_bps: Amount = 0
    _edges: tuple[Decimal, Decimal] = field(init=False, repr=False, compare=False)
    _atoms: tuple[int, int, int, int] = field(init=False, repr=False, compare=False)
    _fees: tuple[Decimal, Decimal] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.pair_id, str) or not self.pair_id:
            raise ValueError(f"PairLimits.pair_id: must be a non-empty str, got {self.pair_id!r}")
        owner = f"PairLimits({self.pair_id})"
        for name in ("a", "b"):
            if not isinstance(getattr(self, name), Instrument):
                raise TypeError(f"{owner}.{name}: expected an Instrument")
        if self.a.base != self.b.base:
            raise ValueError(f"{owner}.b: base {self.b.base} is not a's base {self.a.base}")
        if self.a is self.b or self.a.name == self.b.name:
            raise ValueError(f"{owner}.b: both legs are {self.a.name}")
        lo = _decimal(owner, "min_edge_bps", self.min_edge_bps)
        hi = _decimal(owner, "max_edge_bps", self.max_edge_bps)
        if lo < 0:
            raise ValueError(f"{owner}.min_edge_bps: must be >= 0, got {lo}")
        if hi <= lo:
            raise ValueError(f"{owner}.max_edge_bps: must be > min_edge_bps ({hi} <= {lo})")
        sizes = []
        for low, high in (("min_base", "max_base"), ("min_notional", "max_notional")):
            low_v = _atoms(owner, low, getattr(self, low))
            high_v = _atoms(owner, high, getattr(self, high))
            if high_v <= 0 or high_v < low_v:
                raise ValueError(
                    f"{owner}.{high}: must be > 0 and >= {low} "
                    f"({getattr(self, high)} vs {getattr(self, low)})"
                )
            sizes += [low_v, high_v]
        fees = []
        for name in ("fee_a_bps", "fee_b_bps"):
            fee = _decimal(owner, name, getattr(self, name))
            if fee < 0:
                raise ValueError(f"{owner}.{name}: must be >= 0, got {fee}")
            fees.append(fee)
        _set(self, "_edges", (lo, hi))
        _set(self, "_atoms", (sizes[0], sizes[1], sizes[2], sizes[3]))
        _set(self, "_fees", (fees[0], fees[1]))


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """Every limit the gates enforce. Amounts in asset units (decimal text, int, Decimal);
    ``max_daily_loss`` and ``max_drawdown`` in the reference currency of the marks."""

    venues: tuple[VenueLimits, ...]
    pairs: tuple[PairLimits, ...]
    max_inventory: Mapping[str, Amount]  # |inventory| per asset after the arb
    max_net_exposure: Mapping[str, Amount]  # |net exposure| per asset, even if a leg fails
    max_daily_loss: Amount
    max_drawdown: Amount
    max_open_orders_total: int = 20
    max_data_age_ns: int = 100_000_000  # the budget from frame to order
    daily_loss_kill: KillLevel = KillLevel.HALT_NEW
    drawdown_kill: KillLevel = KillLevel.HALT_NEW
    exposure_kill: KillLevel = KillLevel.REDUCE_ONLY
    _inventory: Mapping[str, int] = field(init=False, repr=False, compare=False)
    _exposure: Mapping[str, int] = field(init=False, repr=False, compare=False)
    _loss: tuple[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        owner = "RiskLimits"
        _int(owner, "max_open_orders_total", self.max_open_orders_total, 2)
        _int(owner, "max_data_age_ns", self.max_data_age_ns, 1)
        for name in ("daily_loss_kill", "drawdown_kill", "exposure_kill"):
            level = getattr(self, name)
            if not isinstance(level, KillLevel) or level == KillLevel.NONE:
                raise ValueError(f"{owner}.{name}: must be a KillLevel above NONE, got {level!r}")
        venues: set[str] = set()
        for v in self.venues:
            if not isinstance(v, VenueLimits):
                raise TypeError(f"{owner}.venues: expected VenueLimits, not {type(v).__name__}")
            if v.name in venues:
                raise ValueError(f"{owner}.venues: {v.name} listed twice")
            venues.add(v.name)
        if not self.pairs:
            raise ValueError(f"{owner}.pairs: no pairs")
        ids: set[str] = set()
        for p in self.pairs:
            if not isinstance(p, PairLimits):
                raise TypeError(f"{owner}.pairs: expected PairLimits, not {type(p).__name__}")
            if p.pair_id in ids:
                raise ValueError(f"{owner}.pairs: {p.pair_id} listed twice")
            ids.add(p.pair_id)
            for inst in (p.a, p.b):
                if inst.venue not in venues:
                    raise ValueError(
                        f"{owner}.venues: no limits for {inst.venue} (pair {p.pair_id})"
                    )
        inventory = {
            a: _atoms(owner, f"max_inventory[{a}]", v) for a, v in self.max_inventory.items()
        }
        exposure = {
            a: _atoms(owner, f"max_net_exposure[{a}]", v) for a, v in self.max_net_exposure.items()
        }
        for p in self.pairs:
            # Fail closed: an asset we trade without an inventory or exposure limit would
            # be unlimited.
            if p.a.base not in inventory:
                raise ValueError(
                    f"{owner}.max_inventory: no limit for {p.a.base} (pair {p.pair_id})"
                )
            if p.a.base not in exposure:
                raise ValueError(
                    f"{owner}.max_net_exposure: no limit for {p.a.base} (pair {p.pair_id})"
                )
        loss = _atoms(owner, "max_daily_loss", self.max_daily_loss)
        drawdown = _atoms(owner, "max_drawdown", self.max_drawdown)
        _set(self, "_inventory", inventory)
        _set(self, "_exposure", exposure)
        _set(self, "_loss", (loss, drawdown))


# --- what is checked ---------------------------------------------------------------------------


def _check_int(owner: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner}.{name}: expected an int, not {type(value).__name__}")


@dataclass(slots=True)
class Leg:
    """One leg of an arb as found: the order it would place and the state of its book.

    Mutable (not frozen) so the engine can keep one per pair and direction and refill it in
    place; the type checks run at construction only."""

    instrument: Instrument
    price: int  # limit, price units (ticks)
    size: int  # size units
    live: bool  # the book is LIVE
    updated_ns: int  # monotonic ns of the book's last update

    def __post_init__(self) -> None:
        if not isinstance(self.instrument, Instrument):
            raise TypeError("Leg.instrument: expected an Instrument")
        _check_int("Leg", "price", self.price)
        _check_int("Leg", "size", self.size)
        _check_int("Leg", "updated_ns", self.updated_ns)
        if not isinstance(self.live, bool):
            raise TypeError(f"Leg.live: expected a bool, not {type(self.live).__name__}")


@dataclass(slots=True)
class ArbIntent:
    """A new arb: buy ``buy`` on its venue, sell ``sell`` on the other."""

    pair_id: str
    buy: Leg
    sell: Leg
    edge_bps: Decimal  # exact, e.g. the engine's net edge quantized to 0.0001 bps
    trigger_recv_ns: int  # monotonic ns the triggering frame was received
    exch_ts_ns: int  # venue event time (epoch ns) of that frame; 0: the venue gave none
    clock_offset_ns: int | None  # that venue's ClockOffset.offset_ns(now); None: no estimate

    def __post_init__(self) -> None:
        if isinstance(self.edge_bps, (bool, float)) or not isinstance(
            self.edge_bps, (int, Decimal)
        ):
            raise TypeError(
                f"ArbIntent.edge_bps: expected a Decimal or int, not {type(self.edge_bps).__name__}"
            )
        for name in ("buy", "sell"):
            if not isinstance(getattr(self, name), Leg):
                raise TypeError(f"ArbIntent.{name}: expected a Leg")
        _check_int("ArbIntent", "trigger_recv_ns", self.trigger_recv_ns)
        _check_int("ArbIntent", "exch_ts_ns", self.exch_ts_ns)
        if self.clock_offset_ns is not None:
            _check_int("ArbIntent", "clock_offset_ns", self.clock_offset_ns)

    def edge_ratio(self) -> tuple[int, int]:
        """``edge_bps`` as an exact fraction (num, den > 0), as the compiled check takes it."""
        return (
            self.edge_bps.as_integer_ratio()
            if isinstance(self.edge_bps, Decimal)
            else (
                self.edge_bps,
                1,
            )
        )


# --- compiled state ----------------------------------------------------------------------------
# The state the arb check reads lives in cdef classes (``_core.gates``); these build it from
# the validated limits, and wire in the portfolio ledger's cells it reads.


MAX_BACK_OFF_S = 30 * 86_400  # the longest wait back_off applies
_LEVEL_FLOOR = -(1 << 125)  # a back-off never empties a bucket deeper (int128 bucket fields)


def _bucket(rl: RateLimit, share: Decimal, now: int) -> Bucket:
    b = Bucket()
    b.unit = rl._unit
    b.rate = rl._rate
    b.cap = rl.burst * rl._unit
    b.reserve = _reserve(rl.burst, share) * rl._unit
    b.level = b.cap
    b.stamp = now
    return b


def _own_buckets(gates: RiskGates, v: VenueState) -> dict[str, list[Bucket]]:
    """Per instrument of venue ``v``: its own (per-instrument) buckets, in order."""
    shared = {id(b) for b in v.buckets}
    return {
        key: [b for b, _ in rules.takes if id(b) not in shared]
        for key, rules in gates._by_name.items()
        if rules.venue is v
    }


def bucket_tokens(b: Bucket) -> Decimal:
    return Decimal(b.level) / b.unit


Takes = tuple[tuple[Bucket, int], ...]  # (bucket, cost in its units)


def _takes(buckets: Iterable[Bucket], n: int = 1) -> Takes:
    counts: dict[Bucket, int] = {}
    for b in buckets:
        counts[b] = counts.get(b, 0) + n
    return tuple((b, k * b.unit) for b, k in counts.items())


def _venue_state(v: VenueLimits, now: int, ledger: Ledger) -> VenueState:
    vs = VenueState()
    vs.name = v.name
    vs.line = ledger.venue(v.name)
    vs.limits = v
    vs.max_age = v.max_book_age_ns
    vs.max_open = v.max_open_orders
    vs.buckets = tuple(_bucket(rl, v._share, now) for rl in v._limits if not rl.per_instrument)
    vs.failures = v.breaker_failures
    vs.cooldown = v.breaker_cooldown_ns
    vs.consecutive = 0
    vs.open_until = 0
    vs.trial_until = 0
    vs.window = v.health_window_ns
    # The last (threshold + 1) event times per kind: the venue is unhealthy while the
    # oldest of a full deque is inside the window, i.e. more than the threshold in it.
    vs.rejects = deque(maxlen=v.max_rejects + 1)
    vs.timeouts = deque(maxlen=v.max_timeouts + 1)
    vs.resyncs = deque(maxlen=v.max_resyncs + 1)
    vs.unhealthy_until = 0
    return vs


def _venue_event(v: VenueState, times: deque[int], now: int) -> None:
    times.append(now)
    if len(times) == times.maxlen:
        until = times[0] + v.window
        if until > v.unhealthy_until:
            v.unhealthy_until = until


def _rules(inst: Instrument, venue: VenueState, fee: Decimal, now: int, ledger: Ledger) -> Rules:
    scale = AtomScale.of(inst)
    r = Rules()
    r.instrument = inst
    r.venue = venue
    r.base = inst.base
    r.quote = inst.quote
    r.quote_account = ledger.account(venue.name, inst.quote)
    r.base_account = ledger.account(venue.name, inst.base)
    r.derivative = inst.derivative
    r.lot = inst.lot
    r.min_size = inst.min_size
    r.min_notional = atoms(inst.min_notional)
    r.base_per_size = scale.base_per_size
    r.quote_per_px_size = scale.quote_per_price_size
    _set_fee(r, fee)
    own = [
        _bucket(rl, venue.limits._share, now) for rl in venue.limits._limits if rl.per_instrument
    ]
    r.takes = _takes([*venue.buckets, *own])
    return r


def _set_fee(r: Rules, fee: Decimal) -> None:
    r.fee_bps = fee
    num, den = fee.as_integer_ratio()
    r.fee_num, r.fee_den = num, den * 10_000


def _pair_gate(p: PairLimits, a: Rules, b: Rules, limits: RiskLimits, ledger: Ledger) -> PairGate:
    g = PairGate()
    g.a, g.b = a, b
    g.min_edge, g.max_edge = p._edges
    g.min_edge_num, g.min_edge_den = g.min_edge.as_integer_ratio()
    g.max_edge_num, g.max_edge_den = g.max_edge.as_integer_ratio()
    g.min_base, g.max_base, g.min_notional, g.max_notional = p._atoms
    g.base = p.a.base
    g.asset = ledger.asset(g.base)
    g.max_inventory = limits._inventory[g.base]
    g.max_exposure = limits._exposure[g.base]
    g.same_venue = a.venue is b.venue
    g.takes = _takes([bucket for bucket, _ in (*a.takes, *b.takes)])
    return g


@dataclass(frozen=True, slots=True)
class RiskState:
    """A snapshot for status displays and the control socket."""

    level: KillLevel
    last_change: KillEvent | None
    breakers: Mapping[str, BreakerState]
    unhealthy: tuple[str, ...]


class RiskGates(GateCore):
    """The gates, their counters, the kill switch, breakers, health and rate buckets.

    The arb check itself is compiled (``GateCore.check``, see ``_core/gates.pyx``); this
    class builds its state and does everything off that path.

    Single-threaded: everything is called from the event loop."""

    _level: KillLevel

    def __init__(
        self,
        limits: RiskLimits,
        portfolio: PortfolioView,
        *,
        clock: Callable[[], int] = time.monotonic_ns,
        wall_clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if not isinstance(limits, RiskLimits):
            raise TypeError(f"expected RiskLimits, not {type(limits).__name__}")
        self.limits = limits
        self._portfolio = portfolio
        ledger = portfolio.ledger
        if not isinstance(ledger, Ledger):  # the check reads its cells unguarded
            raise TypeError(f"portfolio.ledger: expected a Ledger, not {type(ledger).__name__}")
        self._ledger = ledger
        self._set_clocks(clock, wall_clock)
        now = clock()
        self._venues = {v.name: _venue_state(v, now, ledger) for v in limits.venues}
        self._rules: dict[Instrument, Rules] = {}
        self._by_name: dict[str, Rules] = {}
        self._pairs = {}
        for p in limits.pairs:
            a = self._register(p.a, p._fees[0], now)
            b = self._register(p.b, p._fees[1], now)
            self._pairs[p.pair_id] = _pair_gate(p, a, b, limits, ledger)
        self._max_age = limits.max_data_age_ns
        self._max_open_total = limits.max_open_orders_total
        self._level = KillLevel.NONE
        self.history: list[KillEvent] = []
        self.counts = [0] * len(Reason)  # by Reason value; the metrics layer reads
        self.last_venue = ""  # the venue of the last venue-specific refusal
        self.backoffs: dict[str, int] = {}  # venue -> back_off calls (429 and 418)
        self.bans: dict[str, int] = {}  # venue -> of those, bans (418)
        self.blocked_until: dict[str, int] = {}  # venue -> monotonic ns of the last back-off
        self.held: dict[str, str] = {}  # venue -> why it is held (``hold``)

    def _register(self, inst: Instrument, fee: Decimal, now: int) -> Rules:
        rules = self._by_name.get(inst.name)
        if rules is None:
            rules = _rules(inst, self._venues[inst.venue], fee, now, self._ledger)
            self._by_name[inst.name] = rules
        else:
            if not _same_grids(rules.instrument, inst):
                raise ValueError(f"RiskLimits.pairs: two different definitions of {inst.name}")
            if fee > rules.fee_bps:
                _set_fee(rules, fee)  # one instrument in two pairs: the higher fee, against us
        self._rules[inst] = rules
        return rules

    def _lookup(self, inst: Instrument) -> Rules | None:
        rules = self._rules.get(inst)
        if rules is None:  # an equal instrument built elsewhere: slow path, once per object
            rules = self._by_name.get(inst.name)
            if rules is not None and _same_grids(rules.instrument, inst):
                self._rules[inst] = rules
            else:
                rules = None
        return rules

    # --- checks --------------------------------------------------------------------------------

    def check_arb(self, intent: ArbIntent) -> Reason:
        """Run every gate on a new arb (see the module docstring for the order); on OK the
        order tokens of both venues have been taken. The engine calls the compiled
        ``check`` with the same fields unpacked (no intent object on the hot path)."""
        buy, sell = intent.buy, intent.sell
        num, den = intent.edge_ratio()
        return _REASONS[
            self.check(
                intent.pair_id,
                buy.instrument,
                sell.instrument,
                buy.price,
                buy.size,
                sell.price,
                sell.size,
                buy.live,
                buy.updated_ns,
                sell.live,
                sell.updated_ns,
                num,
                den,
                intent.trigger_recv_ns,
                intent.exch_ts_ns,
                intent.clock_offset_ns,
            )
        ]

    def _exposure_breached(self, asset: str, exposure: int, limit: int) -> None:
        """The arb check found net exposure already beyond its limit: trip the kill switch."""
        self._trip(
            self.limits.exposure_kill,
            f"{AUTO}:exposure",
            f"net exposure {from_atoms(exposure)} {asset} beyond {from_atoms(limit)}",
        )

    def check_hedge(self, order: Order) -> Reason:
        """Gates for an unwind or a chase: kill switch (REDUCE_ONLY and FLATTEN let through
        only orders that reduce the net exposure), order rules, balance, and a priority
        token (hedges may use the bucket's reserved share). Edge, staleness, breakers,
        health, open-order and size limits are not applied: refusing a hedge leaves a naked
        position, which is the risk they all exist to limit."""
        reason = self._hedge(order)
        self.counts[reason] += 1
        return reason

    def _hedge(self, order: Order) -> Reason:
        if order.purpose == _ENTRY:
            return _NOT_HEDGE
        rules = self._lookup(order.instrument)
        if rules is None:
            return _UNKNOWN_INSTRUMENT
        price, size = order.price, order.size
        base = size * rules.base_per_size
        buying = order.side == _BUY
        if self._level >= _REDUCE_ONLY:
            # Reducing: towards zero, never past it (that would open the other way).
            exposure = self._portfolio.net_exposure(rules.base)
            if exposure > 0:
                reducing = not buying and base <= exposure
            else:
                reducing = buying and 0 < base <= -exposure
            if not reducing:
                return _NOT_REDUCING
        code = rules.check_conform(price, size)
        if code:
            self.last_venue = rules.venue.name
            return _REASONS[code]
        pf = self._portfolio
        venue = rules.venue.name
        if buying or rules.derivative:  # a derivative needs its fee, either side
            notional = price * size * rules.quote_per_px_size
            fee = -((-notional * rules.fee_num) // rules.fee_den)
            need = fee if rules.derivative else notional + fee
            if pf.available(venue, rules.quote) < need:
                self.last_venue = venue
                return _INSUFFICIENT_BALANCE
        elif pf.available(venue, rules.base) < base:
            self.last_venue = venue
            return _INSUFFICIENT_BALANCE
        if not take(rules.takes, self._clock(), True):
            self.last_venue = venue
            return _RATE_LIMITED
        return _OK

    # --- rate tokens ---------------------------------------------------------------------------

    def try_take(
        self,
        venue: str,
        n: int = 1,
        priority: bool = False,
        instrument: Instrument | None = None,
    ) -> bool:
        """Take ``n`` order tokens on ``venue`` now, or none (never waits). ``instrument``
        adds its per-instrument buckets; ``priority`` (hedges, cancels) may use the reserve."""
        v = self._venue(venue)
        buckets: list[Bucket] = list(v.buckets)
        if instrument is not None:
            rules = self._lookup(instrument)
            if rules is None or rules.venue is not v:
                raise ValueError(f"instrument {instrument.name} is not traded on {venue}")
            buckets = [b for b, _ in rules.takes]
        return take(_takes(buckets, n), self._clock(), priority)

    def try_take_arb(self, pair_id: str) -> bool:
        """Both legs' tokens of ``pair_id`` atomically (as ``check_arb`` does last)."""
        pair: PairGate = self._pairs[pair_id]
        return take(pair.takes, self._clock(), False)

    def tokens(self, venue: str, instrument: Instrument | None = None) -> tuple[Decimal, ...]:
        """Tokens left now in each bucket of ``venue`` (and ``instrument``), for status."""
        now = self._clock()
        v = self._venue(venue)
        buckets = v.buckets
        if instrument is not None:
            rules = self._lookup(instrument)
            if rules is None:
                raise ValueError(f"unknown instrument {instrument.name}")
            buckets = tuple(b for b, _ in rules.takes)
        for b in buckets:
            b.refill(now)
        return tuple(bucket_tokens(b) for b in buckets)

    def back_off(self, venue: str, seconds: float, banned: bool = False) -> int:
        """The venue asked us to wait (HTTP 429, or 418: an IP ban): empty every order bucket
        of ``venue`` (venue-wide and per instrument) so deep that refilling takes
        ``seconds`` before one non-priority order fits again; new arbs there are refused
        ``RATE_LIMITED`` meanwhile. Hedges get no reserve either: the venue would refuse
        them. Never shortens a longer back-off already in force. Returns the monotonic ns
        the venue is blocked until (counted in ``backoffs``; the caller journals)."""
        v = self._venue(venue)
        if not seconds > 0:
            raise ValueError(f"back_off needs a positive wait, got {seconds!r}")
        now = self._clock()
        # A wait past MAX_BACK_OFF_S (a venue's nonsense, or a ban of months) is taken as that
        # long: the buckets are int128, and that far out the operator decides, not a timer.
        wait_ns = int(min(seconds, MAX_BACK_OFF_S) * 1e9)
        until = self._block(v, now, wait_ns)
        self.backoffs[venue] = self.backoffs.get(venue, 0) + 1
        if banned:
            self.bans[venue] = self.bans.get(venue, 0) + 1
        return until

    def _block(self, v: VenueState, now: int, wait_ns: int) -> int:
        """Empty ``v``'s order buckets so that one non-priority order fits again only after
        ``wait_ns``; the monotonic ns that is."""
        own = _own_buckets(self, v).values()
        for b in (*v.buckets, *(b for buckets in own for b in buckets)):
            b.refill(now)
            # After exactly ``wait_ns`` of refill, one token above the reserve again.
            level = max(b.reserve + b.unit - wait_ns * b.rate, _LEVEL_FLOOR)
            if level < b.level:
                b.level = level
        until = now + wait_ns
        self.blocked_until[v.name] = max(self.blocked_until.get(v.name, 0), until)
        return until

    def keep_rate_state(self, old: RiskGates) -> None:
        """Gates rebuilt by a reload take over from ``old``, the gates they replace, what
        the venues' order limits still hold against us: a venue whose limits did not change
        keeps its buckets' levels (a reload must not hand out a fresh burst), and every
        wait a venue asked for (429/418) that has not run out still holds, whatever the
        new limits (not counted again in ``backoffs``)."""
        now = self._clock()
        for name, v in self._venues.items():
            prev = old._venues.get(name)
            if prev is None:
                continue
            if v.limits._limits == prev.limits._limits:
                pairs = list(zip(prev.buckets, v.buckets, strict=True))
                own_old = _own_buckets(old, prev)
                own_new = _own_buckets(self, v)
                for key, buckets in own_new.items():
                    if key in own_old and len(own_old[key]) == len(buckets):
                        pairs += zip(own_old[key], buckets, strict=True)
                for was, now_b in pairs:
                    was.refill(now)
                    now_b.level, now_b.stamp = min(was.level, now_b.cap), now
            until = old.blocked_until.get(name, 0)
            if until > now:
                self._block(v, now, until - now)
        self.backoffs, self.bans = dict(old.backoffs), dict(old.bans)

    # --- holds: a venue held out of new arbs until released (balance drift) ---------------

    def hold(self, venue: str, why: str) -> bool:
        """Refuse new arbs on ``venue`` (``VENUE_UNHEALTHY``) until ``release``: a live
        venue's balances drifted from ours. Returns False if it was held already."""
        v = self._venue(venue)
        if venue in self.held:
            self.held[venue] = why
            return False
        self.held[venue] = why
        v.unhealthy_until = _FOREVER
        return True

    def release(self, venue: str) -> bool:
        """Lift ``hold``; the venue's own health (rejects, timeouts, resyncs in the window)
        is in force again. Returns False if it was not held."""
        v = self._venue(venue)
        if self.held.pop(venue, None) is None:
            return False
        until = 0
        for times in (v.rejects, v.timeouts, v.resyncs):
            if len(times) == times.maxlen:
                until = max(until, times[0] + v.window)
        v.unhealthy_until = until
        return True

    # --- venue results: breakers and health ----------------------------------------------------

    def _venue(self, venue: str) -> VenueState:
        v = self._venues.get(venue)
        if v is None:
            raise ValueError(f"unknown venue {venue!r}")
        return v

    def record_result(self, venue: str, result: Outcome | str) -> None:
        """An order's outcome on ``venue``: rejects and timeouts count towards the breaker
        (consecutive) and the venue's health (in the window); OK resets the streak and
        closes a half-open breaker."""
        outcome = Outcome(result)
        v = self._venue(venue)
        now = self._clock()
        if outcome is Outcome.OK:
            v.consecutive = 0
            if v.open_until and now >= v.open_until:  # the half-open trial succeeded
                v.open_until = 0
                v.trial_until = 0
            return
        _venue_event(v, v.rejects if outcome is Outcome.REJECT else v.timeouts, now)
        v.consecutive += 1
        if v.open_until:
            if now >= v.open_until:  # half-open and the trial failed: cool down again
                v.open_until = now + v.cooldown
                v.trial_until = 0
        elif v.consecutive >= v.failures:
            v.open_until = now + v.cooldown

    def record_resync(self, venue: str) -> None:
        """A book of ``venue`` had to resync (gap, checksum, crossed book...)."""
        v = self._venue(venue)
        _venue_event(v, v.resyncs, self._clock())

    def breaker(self, venue: str) -> BreakerState:
        v = self._venue(venue)
        if not v.open_until:
            return BreakerState.CLOSED
        return BreakerState.OPEN if self._clock() < v.open_until else BreakerState.HALF_OPEN

    def healthy(self, venue: str) -> bool:
        return self._clock() >= self._venue(venue).unhealthy_until

    def recent(self, venue: str) -> dict[str, int]:
        """Rejects, timeouts and resyncs of ``venue`` within its health window (for status
        and metrics; past its limit each count stops growing, the venue being unhealthy)."""
        v = self._venue(venue)
        since = self._clock() - v.window
        return {
            name: sum(1 for t in times if t > since)
            for name, times in (
                ("rejects", v.rejects),
                ("timeouts", v.timeouts),
                ("resyncs", v.resyncs),
            )
        }

    # --- kill switch ---------------------------------------------------------------------------

    @property
    def level(self) -> KillLevel:
        return self._level

    def kill(self, level: KillLevel, by: str, why: str) -> KillLevel:
        """Raise the kill switch to ``level`` now (the operator, or a limit). Never lowers it:
        a lower or equal level changes nothing. Returns the level in force."""
        if not isinstance(level, KillLevel) or level == KillLevel.NONE:
            raise ValueError(f"kill needs a level above NONE, got {level!r} (use resume)")
        _who(by)
        self._trip(level, by, why)
        return self._level

    def resume(self, by: str, why: str = "", level: KillLevel = KillLevel.NONE) -> KillLevel:
        """The operator lowers the kill switch to ``level``. Automatic triggers never call
        this, and it refuses their identity: what a limit raised only a person clears (and
        if the limit is still breached, the next ``refresh`` raises it again)."""
        _who(by)
        if by == AUTO or by.startswith(f"{AUTO}:"):
            raise ValueError(f"resume must come from an operator, not {by!r}")
        if not isinstance(level, KillLevel) or level >= self._level:
            raise ValueError(f"resume to {level!r} does not lower the level {self._level.name}")
        self._change(level, by, why)
        return self._level

    def _trip(self, level: KillLevel, by: str, why: str) -> None:
        if level > self._level:
            self._change(level, by, why)

    def _change(self, level: KillLevel, by: str, why: str) -> None:
        self.history.append(KillEvent(level, self._level, by, why, self._wall(), self._clock()))
        self._level = level

    def refresh(self, marks: Mapping[str, Decimal]) -> KillLevel:
        """Evaluate the automatic kill triggers: daily realized loss, drawdown from peak
        equity, net exposure of every limited asset. Call it after every fill and on a timer
        (marks move); off the hot path. Returns the level in force."""
        pf = self._portfolio
        max_loss, max_drawdown = self.limits._loss
        loss = -pf.realized_pnl_today(marks)
        if loss > max_loss:
            self._trip(
                self.limits.daily_loss_kill,
                f"{AUTO}:daily_loss",
                f"realized loss today {from_atoms(loss)} beyond {from_atoms(max_loss)}",
            )
        drawdown = pf.drawdown(marks)
        if drawdown > max_drawdown:
            self._trip(
                self.limits.drawdown_kill,
                f"{AUTO}:drawdown",
                f"drawdown {from_atoms(drawdown)} beyond {from_atoms(max_drawdown)} "
                f"(equity {from_atoms(pf.equity(marks))})",
            )
        for asset, limit in self.limits._exposure.items():
            exposure = pf.net_exposure(asset)
            if abs(exposure) > limit:
                self._trip(
                    self.limits.exposure_kill,
                    f"{AUTO}:exposure",
                    f"net exposure {from_atoms(exposure)} {asset} beyond {from_atoms(limit)}",
                )
        return self._level

    # --- reporting -----------------------------------------------------------------------------

    @property
    def state(self) -> RiskState:
        now = self._clock()
        return RiskState(
            self._level,
            self.history[-1] if self.history else None,
            {name: self.breaker(name) for name in self._venues},
            tuple(name for name, v in self._venues.items() if now < v.unhealthy_until),
        )

    def counters(self) -> dict[str, int]:
        """Checks per reason, by name (OK included), for the metrics layer."""
        return {r.name.lower(): self.counts[r] for r in Reason}


def _who(by: str) -> None:
    if not isinstance(by, str) or not by.strip():
        raise ValueError(f"a kill-switch change needs who made it, got {by!r}")


def _same_grids(a: Instrument, b: Instrument) -> bool:
    return (
        a.price.step == b.price.step
        and a.size.step == b.size.step
        and a.lot == b.lot
        and a.multiplier.step == b.multiplier.step
        and a.min_size == b.min_size
        and a.min_notional == b.min_notional
        and a.base == b.base
        and a.quote == b.quote
    )
