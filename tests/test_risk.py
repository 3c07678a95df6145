"""Risk gates: each gate blocks (and passes just inside its limit) and counts its reason; the
kill switch, breakers, health and order-rate buckets run on an injected clock."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest

from arbengine._core.instrument import Instrument
from arbengine._core.ledger import Ledger
from arbengine.orders import ATOMS, Fill, Order, OrderStatus, Purpose, Side, atoms
from arbengine.portfolio import Portfolio
from arbengine.risk import (
    DEFAULT_RATE_LIMITS,
    ArbIntent,
    BreakerState,
    KillLevel,
    Leg,
    Outcome,
    PairLimits,
    PortfolioView,
    RateLimit,
    Reason,
    RiskGates,
    RiskLimits,
    VenueLimits,
)

MS = 1_000_000
S = 1_000_000_000
T0 = 1_000 * S  # monotonic start
WALL0 = 1_750_000_000 * S  # epoch start

# Binance: 0.01 tick, 0.00001 lot on a finer size grid, 5 USDT min notional.
BN = Instrument(
    "binance",
    "BTCUSDT",
    "BTC",
    "USDT",
    "0.01",
    "0.00001",
    min_notional="5",
    size_step="0.00000001",
)
# OKX: 0.1 tick, 0.00000001 lot, 0.00001 min size.
OK = Instrument("okx", "BTC-USDT", "BTC", "USDT", "0.1", "0.00000001", min_size="0.00001")
OK_ETH = Instrument("okx", "ETH-USDT", "ETH", "USDT", "0.01", "0.0001")


class Clock:
    """Injected monotonic and wall clocks that move together."""

    def __init__(self) -> None:
        self.now = T0
        self.wall_offset = WALL0 - T0

    def __call__(self) -> int:
        return self.now

    def wall(self) -> int:
        return self.now + self.wall_offset

    def advance(self, ns: int) -> None:
        self.now += ns


class MemoryPortfolio:
    """A small honest PortfolioView: balances per venue, reservations of in-flight orders,
    inventory as the change of total holdings since the start, exposure = inventory (the book
    starts hedged), equity marked at given prices with its peak, realized PnL of the day.

    Its ``ledger``, what the compiled arb check reads, is worked out again from the very
    dicts the methods read in every call that changes them, so the two cannot drift: tests
    change the state only through these methods (the dicts are private for that reason), and
    the gates oracle holds the compiled check's ledger reads to the reference's method
    calls."""

    def __init__(self) -> None:
        self.ledger = Ledger()
        self._balances: dict[tuple[str, str], int] = {}
        self._reserved: dict[tuple[str, str], int] = {}
        self._start: dict[str, int] = {}
        self._orders: dict[str, int] = {}
        self._flight: dict[str, tuple[int, int]] = {}  # base asset -> open (buy, sell) atoms
        self.realized_today = 0  # reference atoms, fees included
        self.peak: int | None = None

    def deposit(self, venue: str, asset: str, amount: str) -> None:
        self._balances[venue, asset] = self._balances.get((venue, asset), 0) + atoms(amount)
        self._start[asset] = self._start.get(asset, 0) + atoms(amount)
        self._account_changed(venue, asset)

    def trade(self, venue: str, asset: str, amount: int) -> None:
        self._balances[venue, asset] = self._balances.get((venue, asset), 0) + amount
        self._account_changed(venue, asset)

    def set_balance(self, venue: str, asset: str, amount: int) -> None:
        """Overwrite a balance; the starting line stays, so the difference is inventory."""
        self._balances[venue, asset] = amount
        self._account_changed(venue, asset)

    def hold(self, venue: str, asset: str, amount: int) -> None:
        """In-flight orders' reservations on (venue, asset) now total ``amount`` atoms."""
        self._reserved[venue, asset] = amount
        self._account_changed(venue, asset)

    def set_open_orders(self, venue: str, count: int) -> None:
        """``count`` orders on ``venue`` now hold a reservation."""
        self._orders[venue] = count
        self.ledger.venue(venue).open_orders = count
        self.ledger.open_total = self.open_orders_total()

    def set_in_flight(self, asset: str, buy: int, sell: int) -> None:
        """Open orders may still add ``buy`` and remove ``sell`` base atoms of ``asset``."""
        self._flight[asset] = (buy, sell)
        line = self.ledger.asset(asset)
        line.open_buy, line.open_sell = buy, sell

    def _account_changed(self, venue: str, asset: str) -> None:
        self.ledger.account(venue, asset).available = self.available(venue, asset)
        self.ledger.asset(asset).inventory = self.inventory(asset)

    def available(self, venue: str, asset: str) -> int:
        return self._balances.get((venue, asset), 0) - self._reserved.get((venue, asset), 0)

    def inventory(self, asset: str) -> int:
        held = sum(v for (_, a), v in self._balances.items() if a == asset)
        return held - self._start.get(asset, 0)

    def net_exposure(self, asset: str) -> int:
        return self.inventory(asset)

    def in_flight(self, asset: str) -> tuple[int, int]:
        return self._flight.get(asset, (0, 0))

    def open_orders(self, venue: str) -> int:
        return self._orders.get(venue, 0)

    def open_orders_total(self) -> int:
        return sum(self._orders.values())

    def realized_pnl_today(self, marks: Mapping[str, Decimal]) -> int:
        return self.realized_today

    def equity(self, marks: Mapping[str, Decimal]) -> int:
        total = 0
        for (_, asset), amount in self._balances.items():
            num, den = marks.get(asset, Decimal(1)).as_integer_ratio()
            total += amount * num // den
        if self.peak is None or total > self.peak:
            self.peak = total
        return total

    def drawdown(self, marks: Mapping[str, Decimal]) -> int:
        value = self.equity(marks)
        assert self.peak is not None
        return self.peak - value


def test_memory_portfolio_is_a_portfolio_view() -> None:
    view: PortfolioView = MemoryPortfolio()
    assert view.available("binance", "BTC") == 0


def funded() -> MemoryPortfolio:
    pf = MemoryPortfolio()
    for venue in ("binance", "okx"):
        pf.deposit(venue, "USDT", "100000")
        pf.deposit(venue, "BTC", "2")
    return pf


def pair_limits(**kw: Any) -> PairLimits:
    values: dict[str, Any] = {
        "pair_id": "btc",
        "a": BN,
        "b": OK,
        "min_edge_bps": "2",
        "max_edge_bps": "50",
        "max_base": "1",
        "max_notional": "70000",
        "min_base": "0.0001",
        "min_notional": "10",
        "fee_a_bps": "10",
        "fee_b_bps": "8",
    }
    values.update(kw)
    return PairLimits(**values)


def venue(name: str, **kw: Any) -> VenueLimits:
    return VenueLimits(name, **kw)


def risk_limits(**kw: Any) -> RiskLimits:
    values: dict[str, Any] = {
        "venues": (venue("binance"), venue("okx", max_book_age_ns=500 * MS)),
        "pairs": (pair_limits(),),
        "max_inventory": {"BTC": "0.5"},
        "max_net_exposure": {"BTC": "1.5"},
        "max_daily_loss": "1000",
        "max_drawdown": "2500",
        "max_open_orders_total": 6,
    }
    values.update(kw)
    return RiskLimits(**values)


def gates(
    limits: RiskLimits | None = None, pf: MemoryPortfolio | None = None
) -> tuple[RiskGates, MemoryPortfolio, Clock]:
    clock = Clock()
    pf = pf if pf is not None else funded()
    g = RiskGates(limits or risk_limits(), pf, clock=clock, wall_clock=clock.wall)
    return g, pf, clock


def intent(clock: Clock, **kw: Any) -> ArbIntent:
    """Buy 0.1 BTC on Binance at 60000.00, sell 0.1 on OKX at 60030.0: a 5 bps edge, books
    updated 10 ms ago, frame received 5 ms ago, venue event 7 ms old by the venue clock."""
    buy = kw.pop("buy", None) or Leg(BN, 6_000_000, 10_000_000, True, clock.now - 10 * MS)
    sell = kw.pop("sell", None) or Leg(OK, 600_300, 10_000_000, True, clock.now - 10 * MS)
    values: dict[str, Any] = {
        "pair_id": "btc",
        "buy": buy,
        "sell": sell,
        "edge_bps": Decimal("5"),
        "trigger_recv_ns": clock.now - 5 * MS,
        "exch_ts_ns": clock.wall() - 7 * MS - 3 * MS,
        "clock_offset_ns": 3 * MS,  # local wall runs 3 ms (+ floor latency) ahead
    }
    values.update(kw)
    return ArbIntent(**values)


def refused(g: RiskGates, it: ArbIntent, reason: Reason) -> None:
    before = g.counts[reason]
    assert g.check_arb(it) is reason
    assert g.counts[reason] == before + 1
    assert g.counters()[reason.name.lower()] == before + 1


def passes(g: RiskGates, it: ArbIntent) -> None:
    before = g.counts[Reason.OK]
    assert g.check_arb(it) is Reason.OK
    assert g.counts[Reason.OK] == before + 1


# --- the happy path and the counters ------------------------------------------------------------


def test_a_sound_arb_passes_and_is_counted() -> None:
    g, _, clock = gates()
    passes(g, intent(clock))
    assert not Reason.OK  # falsy: `if reason:` means refused
    counters = g.counters()
    assert counters["ok"] == 1
    assert sum(counters.values()) == 1
    assert set(counters) == {r.name.lower() for r in Reason}


def test_every_refusal_is_counted_by_reason() -> None:
    g, _, clock = gates()
    refused(g, intent(clock, pair_id="nope"), Reason.UNKNOWN_PAIR)
    refused(g, intent(clock, edge_bps=Decimal(1)), Reason.EDGE_TOO_SMALL)
    refused(g, intent(clock, edge_bps=Decimal(1)), Reason.EDGE_TOO_SMALL)
    assert g.counts[Reason.EDGE_TOO_SMALL] == 2
    assert g.counts[Reason.UNKNOWN_PAIR] == 1
    assert g.counts[Reason.OK] == 0


# --- kill switch --------------------------------------------------------------------------------


def hedge(inst: Instrument, side: Side, price: int, size: int, n: int = 1) -> Order:
    return Order(f"a1-H{n}", "a1", inst, side, price, size, purpose=Purpose.CHASE)


def test_kill_switch_levels() -> None:
    g, pf, clock = gates()
    pf.trade("okx", "BTC", atoms("0.2"))  # long 0.2 BTC unhedged
    sell_hedge = hedge(OK, Side.SELL, 600_000, 20_000_000)  # sells 0.2: reduces
    buy_hedge = hedge(OK, Side.BUY, 600_000, 10_000_000, 2)  # buys: increases

    assert g.level is KillLevel.NONE
    passes(g, intent(clock))

    assert g.kill(KillLevel.HALT_NEW, "alice", "maintenance") is KillLevel.HALT_NEW
    refused(g, intent(clock), Reason.KILL_SWITCH)
    assert g.check_hedge(buy_hedge) is Reason.OK  # HALT_NEW stops new arbs only

    g.kill(KillLevel.REDUCE_ONLY, "alice", "venue incident")
    refused(g, intent(clock), Reason.KILL_SWITCH)
    assert g.check_hedge(buy_hedge) is Reason.NOT_REDUCING
    assert g.check_hedge(sell_hedge) is Reason.OK
    too_much = hedge(OK, Side.SELL, 600_000, 30_000_000, 3)  # would flip to short 0.1
    assert g.check_hedge(too_much) is Reason.NOT_REDUCING

    g.kill(KillLevel.FLATTEN, "alice", "flatten now")
    refused(g, intent(clock), Reason.KILL_SWITCH)
    assert g.check_hedge(sell_hedge) is Reason.OK
    assert g.check_hedge(buy_hedge) is Reason.NOT_REDUCING
    assert g.counts[Reason.NOT_REDUCING] == 3

    # kill never lowers; the history holds who, why and when.
    assert g.kill(KillLevel.HALT_NEW, "bob", "too late") is KillLevel.FLATTEN
    assert [(e.previous, e.level, e.by, e.why) for e in g.history] == [
        (KillLevel.NONE, KillLevel.HALT_NEW, "alice", "maintenance"),
        (KillLevel.HALT_NEW, KillLevel.REDUCE_ONLY, "alice", "venue incident"),
        (KillLevel.REDUCE_ONLY, KillLevel.FLATTEN, "alice", "flatten now"),
    ]
    assert g.history[0].wall_ns == clock.wall() and g.history[0].mono_ns == clock.now


def test_resume_is_the_operators_only() -> None:
    g, _, clock = gates()
    g.kill(KillLevel.REDUCE_ONLY, "alice", "incident")
    with pytest.raises(ValueError, match="operator"):
        g.resume("risk:daily_loss")
    with pytest.raises(ValueError, match="who"):
        g.resume(" ")
    with pytest.raises(ValueError, match="does not lower"):
        g.resume("alice", level=KillLevel.FLATTEN)
    with pytest.raises(ValueError, match="above NONE"):
        g.kill(KillLevel.NONE, "alice", "use resume")
    assert g.resume("alice", "partly over", KillLevel.HALT_NEW) is KillLevel.HALT_NEW
    refused(g, intent(clock), Reason.KILL_SWITCH)
    assert g.resume("alice", "over") is KillLevel.NONE
    passes(g, intent(clock))
    assert g.state.last_change is not None and g.state.last_change.by == "alice"
    with pytest.raises(ValueError, match="does not lower"):
        g.resume("alice")  # already NONE


def test_automatic_kill_on_daily_loss() -> None:
    g, pf, clock = gates()
    marks = {"BTC": Decimal("60000")}
    pf.realized_today = -atoms("1000")  # exactly the limit: still fine
    assert g.refresh(marks) is KillLevel.NONE
    passes(g, intent(clock))
    pf.realized_today -= 1  # one atom beyond
    assert g.refresh(marks) is KillLevel.HALT_NEW
    event = g.history[-1]
    assert event.by == "risk:daily_loss" and "1000.000000000000000001" in event.why
    refused(g, intent(clock), Reason.KILL_SWITCH)
    # Nothing automatic lowers it, not even the loss going away...
    pf.realized_today = 0
    assert g.refresh(marks) is KillLevel.HALT_NEW
    # ...only the operator; and a limit still breached raises it again at once.
    pf.realized_today = -atoms("1500")
    g.resume("alice", "reviewed")
    assert g.level is KillLevel.NONE
    assert g.refresh(marks) is KillLevel.HALT_NEW


def test_automatic_kill_on_drawdown() -> None:
    g, _, _ = gates()
    marks = {"BTC": Decimal("60000")}
    assert g.refresh(marks) is KillLevel.NONE  # peak: 200000 + 4 x 60000 = 440000
    # 4 BTC x -625 = -2500: at the limit; a cent lower is beyond it.
    assert g.refresh({"BTC": Decimal("59375")}) is KillLevel.NONE
    assert g.refresh({"BTC": Decimal("59374.99")}) is KillLevel.HALT_NEW
    assert g.history[-1].by == "risk:drawdown"
    assert "equity" in g.history[-1].why


def test_automatic_kill_on_exposure_breach() -> None:
    g, pf, _ = gates()
    pf.trade("okx", "BTC", atoms("1.5"))  # exactly the limit
    assert g.refresh({}) is KillLevel.NONE
    pf.trade("okx", "BTC", 1)
    assert g.refresh({}) is KillLevel.REDUCE_ONLY
    assert g.history[-1].by == "risk:exposure"
    # The arb gate trips it too, without waiting for a refresh.
    g2, pf2, clock2 = gates(risk_limits(max_inventory={"BTC": "5"}))
    pf2.trade("binance", "BTC", -atoms("1.6"))
    refused(g2, intent(clock2), Reason.MAX_EXPOSURE)
    assert g2.level is KillLevel.REDUCE_ONLY
    refused(g2, intent(clock2), Reason.KILL_SWITCH)


# --- books and data age -------------------------------------------------------------------------


def test_both_books_must_be_live() -> None:
    g, _, clock = gates()
    it = intent(clock)
    it.sell.live = False
    refused(g, it, Reason.BOOK_NOT_LIVE)
    assert g.last_venue == "okx"
    it.sell.live = True
    it.buy.live = False
    refused(g, it, Reason.BOOK_NOT_LIVE)
    assert g.last_venue == "binance"


def test_book_staleness_per_venue() -> None:
    g, _, clock = gates()
    # Binance books may be 2 s old (default), OKX's 500 ms (configured).
    it = intent(clock)
    it.buy.updated_ns = clock.now - 2 * S
    it.sell.updated_ns = clock.now - 500 * MS
    passes(g, it)
    it.buy.updated_ns -= 1
    refused(g, it, Reason.BOOK_STALE)
    assert g.last_venue == "binance"
    it.buy.updated_ns += 1
    it.sell.updated_ns -= 1
    refused(g, it, Reason.BOOK_STALE)
    assert g.last_venue == "okx"


def test_data_age_of_the_triggering_frame() -> None:
    g, _, clock = gates()
    passes(g, intent(clock, trigger_recv_ns=clock.now - 100 * MS))  # the whole budget
    refused(g, intent(clock, trigger_recv_ns=clock.now - 100 * MS - 1), Reason.DATA_AGE)


def test_venue_event_time_is_judged_through_the_clock_offset() -> None:
    g, _, clock = gates()
    offset = 40 * MS  # our wall clock is 40 ms (plus the floor latency) ahead of the venue's
    # An event stamped 130 ms before our wall time is 90 ms old once the offset is removed.
    fresh = intent(clock, exch_ts_ns=clock.wall() - 130 * MS, clock_offset_ns=offset)
    passes(g, fresh)
    exact = intent(clock, exch_ts_ns=clock.wall() - 140 * MS, clock_offset_ns=offset)
    passes(g, exact)  # 100 ms: at the limit
    old = intent(clock, exch_ts_ns=clock.wall() - 140 * MS - 1, clock_offset_ns=offset)
    refused(g, old, Reason.VENUE_LAG)
    # Without the correction the fresh one would have looked 130 ms old.
    refused(
        g, intent(clock, exch_ts_ns=clock.wall() - 130 * MS, clock_offset_ns=0), Reason.VENUE_LAG
    )
    # A negative offset (venue clock ahead of ours) works the same way.
    ahead = intent(clock, exch_ts_ns=clock.wall() + 20 * MS - 60 * MS, clock_offset_ns=-20 * MS)
    passes(g, ahead)
    # An event time without an offset estimate cannot be judged: refused; no event time at
    # all (a venue that sends none) leaves only the receive-time check.
    refused(g, intent(clock, clock_offset_ns=None), Reason.NO_CLOCK_OFFSET)
    passes(g, intent(clock, exch_ts_ns=0, clock_offset_ns=None))


# --- edge ---------------------------------------------------------------------------------------


def test_min_edge() -> None:
    g, _, clock = gates()
    passes(g, intent(clock, edge_bps=Decimal("2")))
    refused(g, intent(clock, edge_bps=Decimal("1.9999")), Reason.EDGE_TOO_SMALL)


def test_max_edge_too_good_to_be_true() -> None:
    g, _, clock = gates()
    passes(g, intent(clock, edge_bps=Decimal("50")))
    refused(g, intent(clock, edge_bps=Decimal("50.0001")), Reason.EDGE_TOO_LARGE)


def test_legs_must_be_the_pairs_instruments() -> None:
    g, _, clock = gates()
    # Either direction of the pair is fine.
    reverse = intent(
        clock,
        buy=Leg(OK, 600_000, 10_000_000, True, clock.now),
        sell=Leg(BN, 6_003_000, 10_000_000, True, clock.now),
    )
    passes(g, reverse)
    wrong = intent(clock, sell=Leg(OK_ETH, 300_000, 1_000, True, clock.now))
    refused(g, wrong, Reason.WRONG_INSTRUMENT)
    # An equal instrument built elsewhere is recognised; one with other grids is not.
    copy = Instrument("okx", "BTC-USDT", "BTC", "USDT", "0.1", "0.00000001", min_size="0.00001")
    passes(g, intent(clock, sell=Leg(copy, 600_300, 10_000_000, True, clock.now)))
    other = Instrument("okx", "BTC-USDT", "BTC", "USDT", "0.01", "0.00000001")
    refused(
        g,
        intent(clock, sell=Leg(other, 6_003_000, 10_000_000, True, clock.now)),
        Reason.WRONG_INSTRUMENT,
    )


# --- order rules on both venues -----------------------------------------------------------------


def test_price_must_be_a_positive_count_of_ticks() -> None:
    g, _, clock = gates()
    refused(g, intent(clock, sell=Leg(OK, 0, 10_000_000, True, clock.now)), Reason.BAD_PRICE)
    assert g.last_venue == "okx"
    refused(g, intent(clock, buy=Leg(BN, 2**63, 10_000_000, True, clock.now)), Reason.BAD_PRICE)
    assert g.last_venue == "binance"
    refused(g, intent(clock, buy=Leg(BN, 6_000_000, 0, True, clock.now)), Reason.BAD_SIZE)


def test_size_must_be_on_the_lot() -> None:
    g, _, clock = gates()
    # Binance's size grid is 1e-8 but its lot 1e-5: 0.10000001 BTC is on the grid, off the lot.
    refused(g, intent(clock, buy=Leg(BN, 6_000_000, 10_000_001, True, clock.now)), Reason.OFF_LOT)
    passes(g, intent(clock, buy=Leg(BN, 6_000_000, 10_001_000, True, clock.now)))


def test_min_size_of_the_venue() -> None:
    g, _, clock = gates(risk_limits(pairs=(pair_limits(min_base="0", min_notional="0"),)))
    tiny_ok = Leg(OK, 600_300, 1_000, True, clock.now)  # 0.00001 BTC: OKX's minimum
    big_bn = Leg(BN, 5_000_000_000, 1_000, True, clock.now)  # 0.00001 at 50M: 500 USDT
    passes(g, intent(clock, buy=big_bn, sell=tiny_ok))
    refused(
        g,
        intent(clock, buy=big_bn, sell=Leg(OK, 600_300, 999, True, clock.now)),
        Reason.BELOW_MIN_SIZE,
    )
    refused(
        g,
        intent(
            clock,
            buy=Leg(OK, 600_000, 999, True, clock.now),
            sell=Leg(BN, 5_000_000_000, 1_000, True, clock.now),
        ),
        Reason.BELOW_MIN_SIZE,
    )
    assert g.last_venue == "okx"


def test_min_notional_of_the_venue() -> None:
    g, _, clock = gates(risk_limits(pairs=(pair_limits(min_base="0", min_notional="0"),)))
    # Binance: 0.0001 BTC at 50000.00 is exactly 5 USDT; at 49999.99 it is below.
    sell = Leg(OK, 600_300, 10_000, True, clock.now)
    passes(g, intent(clock, buy=Leg(BN, 5_000_000, 10_000, True, clock.now), sell=sell))
    refused(
        g,
        intent(clock, buy=Leg(BN, 4_999_999, 10_000, True, clock.now), sell=sell),
        Reason.BELOW_MIN_NOTIONAL,
    )
    assert g.last_venue == "binance"


# --- our per-leg limits -------------------------------------------------------------------------


def test_per_leg_size_limits() -> None:
    g, _, clock = gates(
        risk_limits(pairs=(pair_limits(min_notional="0"),), max_inventory={"BTC": "5"})
    )
    # max_base 1 BTC, min_base 0.0001 BTC per leg.
    passes(
        g,
        intent(
            clock,
            buy=Leg(BN, 6_000_000, 100_000_000, True, clock.now),
            sell=Leg(OK, 600_300, 100_000_000, True, clock.now),
        ),
    )
    refused(
        g, intent(clock, sell=Leg(OK, 600_300, 100_000_001, True, clock.now)), Reason.SIZE_TOO_LARGE
    )
    passes(
        g,
        intent(
            clock,
            buy=Leg(BN, 6_000_000, 10_000, True, clock.now),
            sell=Leg(OK, 600_300, 10_000, True, clock.now),
        ),
    )
    refused(g, intent(clock, sell=Leg(OK, 600_300, 9_999, True, clock.now)), Reason.SIZE_TOO_SMALL)


def test_per_leg_notional_limits() -> None:
    g, _, clock = gates(
        risk_limits(pairs=(pair_limits(max_base="10", min_base="0"),), max_inventory={"BTC": "5"})
    )
    # max_notional 70000, min_notional 10 USDT per leg.
    sell = Leg(OK, 700_000, 100_000_000, True, clock.now)  # 1 BTC at 70000.0: the maximum
    passes(g, intent(clock, buy=Leg(BN, 7_000_000, 100_000_000, True, clock.now), sell=sell))
    refused(
        g,
        intent(clock, buy=Leg(BN, 7_000_001, 100_000_000, True, clock.now), sell=sell),
        Reason.NOTIONAL_TOO_LARGE,
    )
    small = Leg(OK, 600_300, 100_000, True, clock.now)
    passes(g, intent(clock, buy=Leg(BN, 1_000_000, 100_000, True, clock.now), sell=small))  # 10.00
    refused(
        g,
        intent(clock, buy=Leg(BN, 999_999, 100_000, True, clock.now), sell=small),
        Reason.NOTIONAL_TOO_SMALL,
    )


# --- portfolio gates ----------------------------------------------------------------------------


def test_balance_covers_notional_and_fee_net_of_reservations() -> None:
    pf = MemoryPortfolio()
    pf.deposit("okx", "BTC", "1")
    # Buying 0.1 at 60000.00 on Binance costs 6000 USDT plus 10 bps: 6006.
    pf.deposit("binance", "USDT", "6006")
    g, _, clock = gates(pf=pf)
    passes(g, intent(clock))
    pf.hold("binance", "USDT", 1)  # an in-flight order holds one atom
    refused(g, intent(clock), Reason.INSUFFICIENT_BALANCE)
    assert g.last_venue == "binance"
    pf.hold("binance", "USDT", 0)
    pf.hold("okx", "BTC", atoms("0.9") + 1)  # leaves 0.1 BTC minus an atom to sell
    refused(g, intent(clock), Reason.INSUFFICIENT_BALANCE)
    assert g.last_venue == "okx"


def test_max_inventory() -> None:
    g, pf, clock = gates()
    # Legs of different sizes change inventory by their difference: +0.1 - 0.05.
    it = intent(clock, sell=Leg(OK, 600_300, 5_000_000, True, clock.now))
    pf.trade("binance", "BTC", atoms("0.45"))  # 0.45 + 0.05 = 0.5: at the limit
    passes(g, it)
    pf.trade("binance", "BTC", 1)
    refused(g, it, Reason.MAX_INVENTORY)


def test_max_net_exposure_even_if_a_leg_fails() -> None:
    g, pf, clock = gates(risk_limits(max_inventory={"BTC": "5"}))
    # Short 1.4: if only the sell leg (0.1) filled we would be short 1.5: at the limit.
    pf.trade("binance", "BTC", -atoms("1.4"))
    passes(g, intent(clock))
    pf.trade("binance", "BTC", -1)
    refused(g, intent(clock), Reason.MAX_EXPOSURE)
    assert g.level is KillLevel.NONE  # not a breach yet, only the arb is refused
    g2, pf2, clock2 = gates(risk_limits(max_inventory={"BTC": "5"}))
    pf2.trade("binance", "BTC", atoms("1.4") + 1)  # long side: the buy leg alone would breach
    refused(g2, intent(clock2), Reason.MAX_EXPOSURE)


def test_max_net_exposure_counts_orders_already_in_flight() -> None:
    """Another pair's legs (or an UNKNOWN order) may fill one-sided too: the worst case adds
    them. Flat, limit 1.5, this arb's legs 0.1: 1.4 of open buys leave exactly room."""
    g, pf, clock = gates(risk_limits(max_inventory={"BTC": "5"}))
    pf.set_in_flight("BTC", atoms("1.4"), 0)
    passes(g, intent(clock))
    pf.set_in_flight("BTC", atoms("1.4") + 1, 0)
    refused(g, intent(clock), Reason.MAX_EXPOSURE)
    pf.set_in_flight("BTC", 0, atoms("1.4") + 1)  # open sells: the short side
    refused(g, intent(clock), Reason.MAX_EXPOSURE)
    pf.set_in_flight("BTC", 0, atoms("1.4"))
    passes(g, intent(clock))


def test_max_open_orders_per_venue_and_total() -> None:
    g, pf, clock = gates(risk_limits(venues=(venue("binance", max_open_orders=3), venue("okx"))))
    pf.set_open_orders("binance", 2)
    passes(g, intent(clock))
    pf.set_open_orders("binance", 3)
    refused(g, intent(clock), Reason.MAX_OPEN_ORDERS)
    assert g.last_venue == "binance"
    pf.set_open_orders("binance", 2)
    pf.set_open_orders("okx", 2)  # total 4 + 2 = 6: the limit
    passes(g, intent(clock))
    pf.set_open_orders("kraken", 1)
    refused(g, intent(clock), Reason.MAX_OPEN_ORDERS_TOTAL)


def test_the_gates_hold_the_portfolio_ledger_cells() -> None:
    g, pf, _ = gates()
    led = pf.ledger
    assert g._ledger is led
    pair = g._pairs["btc"]
    assert pair.asset is led.asset("BTC")
    for rules, name in ((pair.a, "binance"), (pair.b, "okx")):
        assert rules.quote_account is led.account(name, "USDT")
        assert rules.base_account is led.account(name, "BTC")
        assert rules.venue.line is led.venue(name)


def test_a_portfolio_without_a_ledger_is_refused() -> None:
    pf = funded()
    pf.ledger = None  # type: ignore[assignment]
    with pytest.raises(TypeError, match=r"portfolio\.ledger: expected a Ledger"):
        RiskGates(risk_limits(), pf)


def test_the_check_follows_a_real_portfolio_built_empty() -> None:
    """The gates take their cells from a Portfolio before anything happened to it; every
    deposit, reservation, fill and release after that is what the compiled check sees."""
    clock = Clock()
    pf = Portfolio(clock=clock.wall)
    g = RiskGates(risk_limits(), pf, clock=clock, wall_clock=clock.wall)
    refused(g, intent(clock), Reason.INSUFFICIENT_BALANCE)  # nothing deposited yet
    assert g.last_venue == "binance"
    pf.deposit("binance", "USDT", atoms("6006"))  # 0.1 x 60000 + 10 bps
    pf.deposit("okx", "BTC", atoms("0.1"))
    passes(g, intent(clock))
    # An open sell of one size unit (0.00000001 BTC) holds that much of OKX's BTC.
    dust = Order("s1", "arb-0", OK, Side.SELL, 600_300, 1)
    pf.reserve(dust, Decimal(8))
    refused(g, intent(clock), Reason.INSUFFICIENT_BALANCE)
    assert g.last_venue == "okx"
    pf.on_done(dust, OrderStatus.CANCELED)
    passes(g, intent(clock))
    # Four orders open and this arb's two legs make the total of 6; a fifth is one too many.
    tiny = [Order(f"o{k}", "arb-1", OK, Side.BUY, 1, 1) for k in range(5)]
    for o in tiny[:4]:
        pf.reserve(o, Decimal(8))
    passes(g, intent(clock))
    pf.reserve(tiny[4], Decimal(8))
    refused(g, intent(clock), Reason.MAX_OPEN_ORDERS_TOTAL)
    for o in tiny:
        pf.on_done(o, OrderStatus.CANCELED)
    # 0.45 BTC bought and filled: this arb's +0.1 - 0.05 brings inventory to the 0.5 limit.
    pf.deposit("binance", "USDT", atoms("30000"))
    buy = Order("b1", "arb-2", BN, Side.BUY, 6_000_000, 45_000_000)
    pf.reserve(buy, Decimal(10))
    pf.apply_fill(buy, Fill("b1", 6_000_000, 45_000_000, 0, "USDT", 0, "t1"))
    pf.on_done(buy, OrderStatus.FILLED)
    half = Leg(OK, 600_300, 5_000_000, True, clock.now)
    passes(g, intent(clock, sell=half))
    pf.apply_fill(buy, Fill("b1", 6_000_000, 1, 0, "USDT", 0, "t2"))  # a late extra unit
    refused(g, intent(clock, sell=half), Reason.MAX_INVENTORY)


# --- circuit breaker and health -----------------------------------------------------------------


def test_circuit_breaker_opens_half_opens_and_closes() -> None:
    limits = risk_limits(
        venues=(venue("binance", breaker_failures=3, breaker_cooldown_ns=30 * S), venue("okx"))
    )
    g, _, clock = gates(limits)
    g.record_result("binance", "reject")
    g.record_result("binance", Outcome.TIMEOUT)
    g.record_result("binance", "ok")  # the streak resets
    g.record_result("binance", "reject")
    g.record_result("binance", "reject")
    assert g.breaker("binance") is BreakerState.CLOSED
    passes(g, intent(clock))
    g.record_result("binance", "timeout")  # 3 in a row
    assert g.breaker("binance") is BreakerState.OPEN
    refused(g, intent(clock), Reason.CIRCUIT_OPEN)
    assert g.last_venue == "binance"
    clock.advance(30 * S - 1)
    refused(g, intent(clock), Reason.CIRCUIT_OPEN)
    clock.advance(1)
    assert g.breaker("binance") is BreakerState.HALF_OPEN
    passes(g, intent(clock))  # the one trial
    refused(g, intent(clock), Reason.CIRCUIT_OPEN)  # no second one while it is out
    g.record_result("binance", "reject")  # the trial failed: open again
    assert g.breaker("binance") is BreakerState.OPEN
    refused(g, intent(clock), Reason.CIRCUIT_OPEN)
    clock.advance(30 * S)
    passes(g, intent(clock))
    g.record_result("binance", "ok")  # the trial succeeded
    assert g.breaker("binance") is BreakerState.CLOSED
    passes(g, intent(clock))
    assert g.breaker("okx") is BreakerState.CLOSED
    assert g.state.breakers == {"binance": BreakerState.CLOSED, "okx": BreakerState.CLOSED}


def test_an_unreported_trial_expires_after_a_cooldown() -> None:
    g, _, clock = gates()
    for _ in range(3):
        g.record_result("okx", "timeout")
    clock.advance(30 * S)
    passes(g, intent(clock))  # the trial arb, which (say) the engine then never sent
    clock.advance(30 * S - 1)
    refused(g, intent(clock), Reason.CIRCUIT_OPEN)
    clock.advance(1)
    passes(g, intent(clock))  # another trial rather than a venue wedged half-open


def test_a_late_success_does_not_cut_the_cooldown_short() -> None:
    g, _, _ = gates()
    for _ in range(3):
        g.record_result("okx", "reject")
    g.record_result("okx", "ok")  # an order from before the breaker opened
    assert g.breaker("okx") is BreakerState.OPEN


@pytest.mark.parametrize(
    ("kind", "threshold"),
    [("reject", "max_rejects"), ("timeout", "max_timeouts"), ("resync", "max_resyncs")],
)
def test_venue_health_in_a_sliding_window(kind: str, threshold: str) -> None:
    okx = venue("okx", breaker_failures=100, health_window_ns=60 * S, **{threshold: 2})
    g, _, clock = gates(risk_limits(venues=(venue("binance"), okx)))

    def event() -> None:
        if kind == "resync":
            g.record_resync("okx")
        else:
            g.record_result("okx", kind)

    event()
    clock.advance(10 * S)
    event()  # 2 in the window: the threshold, still healthy
    passes(g, intent(clock))
    clock.advance(20 * S)
    event()  # 3 in 60 s: unhealthy until the first one is 60 s old
    assert not g.healthy("okx")
    refused(g, intent(clock), Reason.VENUE_UNHEALTHY)
    assert g.last_venue == "okx"
    assert g.state.unhealthy == ("okx",)
    clock.advance(30 * S - 1)  # the first event is 60 s - 1 ns old
    refused(g, intent(clock), Reason.VENUE_UNHEALTHY)
    clock.advance(1)
    assert g.healthy("okx")
    passes(g, intent(clock))


# --- order-rate token buckets -------------------------------------------------------------------


def one_bucket_limits(
    burst: int = 10, refill: int = 10, seconds: str = "1", share: str = "0.2"
) -> RiskLimits:
    return risk_limits(
        venues=(
            venue(
                "binance", rate_limits=(RateLimit(burst, refill, seconds),), priority_share=share
            ),
            venue("okx", rate_limits=(RateLimit(100, 100, 1),), priority_share="0"),
        ),
        max_open_orders_total=1000,
    )


def test_priority_share_of_the_bucket_is_kept_for_hedges() -> None:
    g, _, clock = gates(one_bucket_limits(burst=10, share="0.2"))  # 2 tokens reserved
    for _ in range(8):
        passes(g, intent(clock))
    refused(g, intent(clock), Reason.RATE_LIMITED)  # an arb is refused, never made to wait
    assert g.try_take("binance") is False
    assert g.try_take("binance", priority=True) is True  # a cancel
    unwind = Order("a1-H1", "a1", BN, Side.SELL, 6_000_000, 10_000_000, purpose=Purpose.UNWIND)
    assert g.check_hedge(unwind) is Reason.OK  # the last reserved token
    assert g.check_hedge(unwind) is Reason.RATE_LIMITED
    assert g.last_venue == "binance"
    assert g.tokens("binance") == (Decimal(0),)


def test_two_venue_take_is_atomic() -> None:
    g, _, clock = gates(one_bucket_limits(burst=10, share="0"))
    # Drain OKX's 100 tokens except what 3 arbs need, through cancels.
    assert g.try_take("okx", 97)
    okx_before = g.tokens("okx")
    for _ in range(3):
        passes(g, intent(clock))
    assert g.tokens("binance") == (Decimal(7),)
    refused(g, intent(clock), Reason.RATE_LIMITED)  # OKX is empty...
    assert g.tokens("binance") == (Decimal(7),)  # ...and Binance was not charged
    assert okx_before == (Decimal(3),)
    assert g.try_take_arb("btc") is False


def test_buckets_refill_over_time() -> None:
    g, _, clock = gates(one_bucket_limits(burst=4, refill=2, seconds="1", share="0"))
    assert g.try_take("binance", 4)
    assert not g.try_take("binance")
    clock.advance(500 * MS - 1)  # 2 per s: one token takes 500 ms
    assert not g.try_take("binance")
    clock.advance(1)
    assert g.try_take("binance")
    clock.advance(60 * S)  # refills up to the burst, no further
    assert g.tokens("binance") == (Decimal(4),)
    assert not g.try_take("binance", 5)
    assert g.tokens("binance") == (Decimal(4),)


def test_a_refused_arb_takes_no_tokens() -> None:
    g, _, clock = gates(one_bucket_limits(burst=10, share="0"))
    refused(g, intent(clock, edge_bps=Decimal(1)), Reason.EDGE_TOO_SMALL)
    refused(g, intent(clock, sell=Leg(OK, 600_300, 9_999, True, clock.now)), Reason.SIZE_TOO_SMALL)
    assert g.tokens("binance") == (Decimal(10),)


def test_window_limit_never_exceeds_the_count_in_any_window() -> None:
    rl = RateLimit.window(50, 10)
    assert (rl.burst, rl.refill) == (25, 25)
    g, _, clock = gates(
        risk_limits(
            venues=(venue("binance", rate_limits=(rl,), priority_share="0"), venue("okx")),
        )
    )
    taken: list[int] = []
    for _ in range(40_000):  # greedy: one attempt every 10 ms for 400 s
        if g.try_take("binance"):
            taken.append(clock.now)
        clock.advance(10 * MS)
    assert len(taken) >= 25 + 25 * 39  # the long-run rate is half the documented one
    left = 0
    for right, t in enumerate(taken):
        while t - taken[left] >= 10 * S:
            left += 1
        assert right - left + 1 <= 50


def test_per_instrument_buckets() -> None:
    okx = venue("okx", rate_limits=(RateLimit(2, 1, 1, per_instrument=True),), priority_share="0")
    limits = risk_limits(
        venues=(venue("binance"), okx),
        pairs=(
            pair_limits(),
            PairLimits(
                "eth",
                OK_ETH,
                Instrument("binance", "ETHUSDT", "ETH", "USDT", "0.01", "0.0001"),
                "1",
                "50",
                "10",
                "100000",
            ),
        ),
        max_inventory={"BTC": "1", "ETH": "10"},
        max_net_exposure={"BTC": "2", "ETH": "20"},
    )
    g, _, clock = gates(limits)
    assert g.try_take("okx", 2, instrument=OK)
    assert not g.try_take("okx", instrument=OK)
    refused(g, intent(clock), Reason.RATE_LIMITED)
    assert g.try_take("okx", 2, instrument=OK_ETH)  # another instrument, its own bucket
    with pytest.raises(ValueError, match="not traded on"):
        g.try_take("binance", instrument=OK)


def test_documented_default_rate_limits() -> None:
    bn = DEFAULT_RATE_LIMITS["binance"]
    assert [(r.burst + r.refill, Decimal(r.seconds)) for r in bn] == [
        (50, Decimal(10)),
        (160_000, Decimal(86_400)),
    ]
    okx = DEFAULT_RATE_LIMITS["okx"]
    assert (okx[0].burst + okx[0].refill, okx[0].per_instrument) == (60, True)
    assert okx[1].burst + okx[1].refill == 1_000 and not okx[1].per_instrument
    assert DEFAULT_RATE_LIMITS["bybit"][0].burst + DEFAULT_RATE_LIMITS["bybit"][0].refill == 20
    assert (
        DEFAULT_RATE_LIMITS["coinbase"][0].burst + DEFAULT_RATE_LIMITS["coinbase"][0].refill == 30
    )
    kraken = DEFAULT_RATE_LIMITS["kraken"][0]  # counter threshold 60 decaying 1/s, per pair
    assert (
        kraken.burst,
        Decimal(kraken.refill) / Decimal(kraken.seconds),
        kraken.per_instrument,
    ) == (60, Decimal(1), True)
    inter = RateLimit.counter(125, "2.34")  # Intermediate tier, exact
    assert (inter.burst, inter.refill, inter.seconds) == (125, 117, 50)
    assert venue("kraken")._limits == DEFAULT_RATE_LIMITS["kraken"]
    with pytest.raises(ValueError, match="no documented default for ftx"):
        venue("ftx")


# --- hedges -------------------------------------------------------------------------------------


def test_check_hedge() -> None:
    g, pf, clock = gates()
    entry = Order("a1-A", "a1", BN, Side.BUY, 6_000_000, 10_000_000)
    assert g.check_hedge(entry) is Reason.NOT_HEDGE
    assert g.check_hedge(hedge(OK_ETH, Side.BUY, 1, 1)) is Reason.UNKNOWN_INSTRUMENT
    assert g.check_hedge(hedge(BN, Side.SELL, 6_000_000, 10_000_001)) is Reason.OFF_LOT
    assert (
        g.check_hedge(hedge(BN, Side.SELL, 6_000_000, atoms("3") // 10**10))
        is Reason.INSUFFICIENT_BALANCE
    )
    # Hedges go through an open breaker and an unhealthy venue: refusing them would leave
    # the naked position those exist to prevent.
    for _ in range(3):
        g.record_result("binance", "timeout")
    refused(g, intent(clock), Reason.CIRCUIT_OPEN)
    assert g.check_hedge(hedge(BN, Side.SELL, 6_000_000, 10_000_000)) is Reason.OK
    assert g.counts[Reason.OK] == 1 and g.counts[Reason.NOT_HEDGE] == 1
    assert pf.available("binance", "BTC") == 2 * ATOMS


# --- limits: construction and validation --------------------------------------------------------


FLOAT: Any = 1.5  # what a YAML loader hands over for "1.5" unquoted


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: pair_limits(max_base=1.0), "max_base"),
        (lambda: pair_limits(min_edge_bps=0.5), "min_edge_bps"),
        (lambda: pair_limits(fee_a_bps=7.5), "fee_a_bps"),
        (lambda: risk_limits(max_daily_loss=100.0), "max_daily_loss"),
        (lambda: risk_limits(max_inventory={"BTC": 0.5}), "max_inventory[BTC]"),
        (lambda: venue("okx", priority_share=0.2), "priority_share"),
        (lambda: venue("okx", max_book_age_ns=5e8), "max_book_age_ns"),
        (lambda: RateLimit(10, 10, FLOAT), "seconds"),
        (lambda: RateLimit.counter(60, FLOAT), "decay_per_s"),
        (lambda: risk_limits(max_data_age_ns=0.1), "max_data_age_ns"),
    ],
)
def test_floats_are_refused_naming_the_field(build: Any, field: str) -> None:
    with pytest.raises(TypeError, match=rf"\.{re.escape(field)}: "):
        build()


def test_floats_are_refused_in_the_intent() -> None:
    clock = Clock()
    with pytest.raises(TypeError, match="edge_bps"):
        intent(clock, edge_bps=5.0)
    with pytest.raises(TypeError, match=r"Leg\.price"):
        Leg(BN, 6_000_000.0, 10, True, 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"Leg\.size"):
        Leg(BN, 6_000_000, 0.1, True, 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="trigger_recv_ns"):
        intent(clock, trigger_recv_ns=1.5)
    with pytest.raises(TypeError, match="clock_offset_ns"):
        intent(clock, clock_offset_ns=0.0)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: pair_limits(min_base="2"),
            r"PairLimits\(btc\)\.max_base: must be > 0 and >= min_base",
        ),
        (lambda: pair_limits(max_edge_bps="2"), r"max_edge_bps: must be > min_edge_bps"),
        (lambda: pair_limits(min_edge_bps="-1"), r"min_edge_bps: must be >= 0"),
        (lambda: pair_limits(max_notional="abc"), r"max_notional: not a decimal"),
        (lambda: pair_limits(max_base="1e-19"), r"max_base: .*more than 18 decimals"),
        (lambda: pair_limits(b=OK_ETH), r"PairLimits\(btc\)\.b: base ETH"),
        (lambda: risk_limits(venues=(venue("binance"),)), r"RiskLimits\.venues: no limits for okx"),
        (lambda: risk_limits(max_inventory={}), r"max_inventory: no limit for BTC"),
        (lambda: risk_limits(max_net_exposure={"ETH": "1"}), r"max_net_exposure: no limit for BTC"),
        (lambda: risk_limits(pairs=(pair_limits(), pair_limits())), r"pairs: btc listed twice"),
        (lambda: risk_limits(exposure_kill=KillLevel.NONE), r"exposure_kill: must be a KillLevel"),
        (lambda: venue("okx", priority_share="1"), r"priority_share: must be in \[0, 1\)"),
        (
            lambda: venue("okx", rate_limits=(RateLimit(2, 1, 1),), priority_share="0.6"),
            r"VenueLimits\(okx\)\.priority_share: .* leaves nothing for arbs",
        ),
        (lambda: venue("okx", max_open_orders=0), r"max_open_orders: must be >= 1"),
        (lambda: RateLimit(10, 10, "0"), r"RateLimit\.seconds: must be > 0"),
        (lambda: RateLimit.window(1, 1), r"count: must be >= 2"),
    ],
)
def test_bad_limits_raise_one_line_naming_the_limit(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        build()
    assert "\n" not in str(info.value)


def test_one_instrument_in_two_pairs_shares_its_rules() -> None:
    kraken = Instrument("kraken", "BTC/USDT", "BTC", "USDT", "0.1", "0.00000001")
    limits = risk_limits(
        venues=(venue("binance"), venue("okx"), venue("kraken")),
        pairs=(pair_limits(), pair_limits(pair_id="btc2", b=kraken, fee_a_bps="12")),
    )
    g, pf, clock = gates(limits)
    pf.set_balance("binance", "USDT", atoms("6006"))  # enough at 10 bps, not at 12
    refused(g, intent(clock), Reason.INSUFFICIENT_BALANCE)
    clash = dataclasses.replace(
        pair_limits(pair_id="btc3"), b=Instrument("okx", "BTC-USDT", "BTC", "USDT", "1", "1")
    )
    with pytest.raises(ValueError, match="two different definitions of okx:BTC-USDT"):
        RiskGates(dataclasses.replace(limits, pairs=(*limits.pairs, clash)), pf)


def test_recent_counts_what_the_health_window_holds() -> None:
    g, _, clock = gates()
    g.record_result("okx", "reject")
    g.record_result("okx", "timeout")
    g.record_resync("okx")
    clock.advance(S)
    g.record_resync("okx")
    assert g.recent("okx") == {"rejects": 1, "timeouts": 1, "resyncs": 2}
    assert g.recent("binance") == {"rejects": 0, "timeouts": 0, "resyncs": 0}
    clock.advance(60 * S - 1)  # the first three leave the 60 s window, the last stays
    assert g.recent("okx") == {"rejects": 0, "timeouts": 0, "resyncs": 1}
