"""Every risk gate blocking through the engine: book change -> ``Engine.on_book`` ->
SpreadCalculator -> ``GateCheck`` -> ``RiskGates`` -> refusal.

Each test drives real books (``tests.engine_rig``) into a state one gate refuses, and checks
that no order reached any gateway, that the refusal is counted as ``risk:<REASON>`` in the
engine (and by the gates) and journaled once as ``risk_refused`` with that reason and pair
however often it repeats, then clears the condition the way it clears in operation and sees
the pair fire, and that the journal verifies.

Reasons no arb can reach through the engine (the gates still hold them for other callers,
``tests/test_risk.py`` covers them at the unit level):

* BOOK_NOT_LIVE: the engine evaluates a pair only when both books are LIVE, and nothing
  between that test and the gates can change a book; shown here as "nothing sent, nothing
  asked of the gates" while a book resyncs.
* OFF_LOT, BELOW_MIN_SIZE: the calculator rounds the size down to a whole lot of both venues
  and drops anything below either minimum size, so the gates never see one.
* BAD_PRICE, BAD_SIZE: a book holds positive int64 prices and sizes only (a frame with a zero
  price or a negative size resyncs the book), and the calculator sizes from the book.
* An instrument that differs from the risk limits' one in its rules (a lot, a tick, ...) is
  refused as WRONG_INSTRUMENT before any order rule runs, so no config mismatch reaches
  OFF_LOT either.

BELOW_MIN_NOTIONAL is reachable: the calculator checks each leg's min notional on its VWAP
notional, the gates (like the venue) at the leg's limit price, which for a sell leg that
walks two bids is the lower one.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from decimal import Decimal
from typing import Any

import pytest

from arbengine._core.instrument import Instrument
from arbengine.execution import Arb, ExecutionPolicy
from arbengine.orders import OrderStatus, atoms
from arbengine.risk import BreakerState, KillLevel, RateLimit, Reason
from tests.engine_rig import BINANCE, MS, OKX, PAIRS, VENUE_OFFSET_NS, Make, Rig, S, refused
from tests.waiting import until

MARKS = {"BTC": Decimal(30000)}


def fired(rig: Rig, pair_id: str = "btc") -> Arb:
    """The pair's newest arb was sent: both legs handed to their gateways, journaled."""
    arb = rig.arbs(pair_id)[-1]
    buy, sell = arb.legs
    assert (buy.venue, sell.venue) == PAIRS[pair_id] or (sell.venue, buy.venue) == PAIRS[pair_id]
    for leg in (buy, sell):
        assert any(o is leg for o in rig.gateways[leg.venue].sent)
    logged = [e for e in rig.entries() if e["event"] == "arb" and e["arb_id"] == arb.arb_id]
    assert len(logged) == 1 and logged[0]["pair_id"] == pair_id
    return arb


async def fills(rig: Rig, arb: Arb) -> None:
    """The arb settles with both legs filled and nothing left over."""
    await rig.settle()
    assert [leg.status for leg in arb.legs] == [OrderStatus.FILLED] * 2
    assert arb.residual == 0 and not arb.hedges


async def fires(rig: Rig, pair_id: str = "btc") -> Arb:
    arb = fired(rig, pair_id)
    await fills(rig, arb)
    return arb


# --- kill switch ----------------------------------------------------------------------------


@pytest.mark.parametrize("level", [KillLevel.HALT_NEW, KillLevel.REDUCE_ONLY, KillLevel.FLATTEN])
async def test_kill_switch_blocks_until_an_operator_resumes(make: Make, level: KillLevel) -> None:
    rig = make()
    rig.gates.kill(level, "alice", "maintenance")
    rig.rich()
    rig.rich()  # the same dislocation again: counted, not journaled again
    entry = refused(rig, "KILL_SWITCH", 2)
    assert (entry["buy"], entry["sell"]) == (BINANCE.name, OKX.name)
    assert rig.portfolio.open_orders_total() == 0 and not rig.executor.arbs

    with pytest.raises(ValueError):
        rig.gates.resume("risk:daily_loss")  # only a person lowers it
    assert rig.gates.resume("alice", "done") is KillLevel.NONE
    rig.rich()
    await fires(rig)
    rig.verify_journal()


async def test_daily_loss_trips_the_kill_switch_on_refresh(make: Make) -> None:
    # Every OKX order is rejected: the Binance leg fills and is unwound at a loss (the
    # spread and two fees), which is realized PnL of the day.
    rig = make(gateway={"okx": {"reject_prob": 1.0}}, risk={"max_daily_loss": "0.1"})
    rig.rich()
    await rig.settle()
    (arb,) = rig.arbs()
    assert arb.legs[1].status is OrderStatus.REJECTED and arb.hedges and arb.residual == 0
    assert rig.portfolio.realized_pnl_today(MARKS) < -atoms("0.1")
    assert rig.gates.level is KillLevel.NONE  # nothing trips until refresh runs
    assert rig.engine.marks() == {"BTC": Decimal("30000")}  # Binance's mid, from its book
    assert rig.engine.refresh() is KillLevel.HALT_NEW
    assert rig.gates.history[-1].by == "risk:daily_loss"
    (kill,) = [e for e in rig.entries() if e["event"] == "kill_switch"]
    assert (kill["level"], kill["previous"], kill["by"]) == ("HALT_NEW", "NONE", "risk:daily_loss")

    rig.gateways["okx"].reject_prob = 0.0
    sent = len(rig.sent())  # two legs and the unwind
    rig.rich()
    rig.rich()
    refused(rig, "KILL_SWITCH", 2, sent=sent)
    assert rig.gates.refresh(MARKS) is KillLevel.HALT_NEW  # automatic triggers never lower it

    rig.gates.resume("alice", "loss reviewed")
    rig.rich()
    await fires(rig)
    rig.verify_journal()


async def test_watch_runs_the_automatic_triggers_and_journals_counters(make: Make) -> None:
    """What the daemon runs beside the hot path: refresh on a timer (marks from the books),
    counters into the journal for a restart."""
    rig = make(gateway={"okx": {"reject_prob": 1.0}}, risk={"max_daily_loss": "0.1"})
    rig.rich()
    await rig.settle()  # an unwound leg: a realized loss, as above
    watch = asyncio.create_task(rig.engine.watch(0.01, counters_every=1))
    try:
        await until(lambda: rig.gates.level is KillLevel.HALT_NEW)
        await until(lambda: any(e["event"] == "counters" for e in rig.entries()))
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
    counters = [e for e in rig.entries() if e["event"] == "counters"][-1]
    assert counters["engine"]["opportunities"] == 1 and counters["executor"]["arbs"] == 1
    assert [e["by"] for e in rig.entries() if e["event"] == "kill_switch"] == ["risk:daily_loss"]
    rig.verify_journal()


async def test_drawdown_trips_the_kill_switch_on_refresh(make: Make) -> None:
    rig = make()  # 4 BTC held over the two venues
    assert rig.gates.refresh(MARKS) is KillLevel.NONE  # the peak
    assert rig.gates.refresh({"BTC": Decimal(29000)}) is KillLevel.HALT_NEW  # 4000 USDT down
    assert rig.gates.history[-1].by == "risk:drawdown"
    rig.rich()
    rig.rich()
    refused(rig, "KILL_SWITCH", 2)
    assert rig.gates.refresh(MARKS) is KillLevel.HALT_NEW  # recovered marks: still halted

    rig.gates.resume("alice", "marks recovered")
    rig.rich()
    await fires(rig)
    rig.verify_journal()


# --- edge bounds ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "limits", "blocked_bid", "clear_bid"),
    [
        # The gates want 50 bps where the calculator finds anything from 5: ~35 is refused.
        ("EDGE_TOO_SMALL", {"min_edge_bps": "50"}, "30150", "30250"),
        # ~650 bps is too good to be true (a stale book or a wrong mapping).
        ("EDGE_TOO_LARGE", {"max_edge_bps": "500"}, "32000", "30150"),
    ],
)
async def test_edge_bounds(
    make: Make, reason: str, limits: dict[str, str], blocked_bid: str, clear_bid: str
) -> None:
    rig = make(pair_limits=limits)
    rig.rich(bid=blocked_bid)
    rig.rich(bid=blocked_bid)
    entry = refused(rig, reason, 2)
    edge = Decimal(entry["edge_bps"])
    assert edge < 50 if reason == "EDGE_TOO_SMALL" else edge > 500
    rig.rich(bid=clear_bid)
    await fires(rig)
    rig.verify_journal()


# --- books and data age -----------------------------------------------------------------------


async def test_a_book_not_live_is_never_put_to_the_gates(make: Make) -> None:
    """BOOK_NOT_LIVE cannot be reached through the engine: it skips a pair with a book out of
    LIVE before the calculator, so the gates are never asked."""
    rig = make()
    rig.gap("okx")  # OKX's book resyncs
    before = rig.engine.pairs[0].evaluations
    # Binance offers 29800.00: ~52 bps under OKX's (last known) bid.
    rig.quote("binance", [("29790", "1")], [("29800", "0.01")])
    rig.quote("binance")
    rig.quiet("okx")  # an update while resyncing: ignored, no call to the engine
    assert rig.engine.pairs[0].evaluations == before + 2
    assert "opportunities" not in rig.engine.counters
    assert sum(rig.gates.counts) == 0 and rig.gates.counts[Reason.BOOK_NOT_LIVE] == 0
    assert not rig.refusals() and not rig.sent()

    rig.snapshot("okx")  # LIVE again: the snapshot's change fires the waiting arb
    arb = await fires(rig)
    assert (arb.legs[0].venue, arb.legs[1].venue) == ("binance", "okx")
    rig.verify_journal()


async def test_book_stale(make: Make) -> None:
    rig = make(venue_limits={"binance": {"max_book_age_ns": 500 * MS}})
    rig.clock.advance(600 * MS)  # Binance has been silent for 600 ms
    rig.rich()  # OKX's fresh frame finds the edge against Binance's old book
    rig.rich()
    refused(rig, "BOOK_STALE", 2)
    assert rig.gates.last_venue == "binance"
    rig.quote("binance")  # Binance publishes again: same levels, fresh book
    await fires(rig)
    rig.verify_journal()


async def test_data_age(make: Make) -> None:
    # Tighter than the engine's 100 ms budget (which drops older frames before the gates).
    rig = make(risk={"max_data_age_ns": 50 * MS})
    rig.clock.advance(S)
    old = rig.clock() - 70 * MS  # frames received 70 ms ago (a backlog)
    rig.rich(recv_ns=old)
    rig.rich(recv_ns=old + MS)
    refused(rig, "DATA_AGE", 2)
    rig.rich()  # a frame received now
    await fires(rig)
    rig.verify_journal()


async def test_venue_lag(make: Make) -> None:
    rig = make()
    rig.rich(exch_lag_ns=150 * MS)  # received now, but stamped 150 ms late by OKX's clock
    rig.rich(exch_lag_ns=150 * MS)
    refused(rig, "VENUE_LAG", 2)
    assert rig.gates.counts[Reason.DATA_AGE] == 0
    rig.rich()
    await fires(rig)
    rig.verify_journal()


async def test_no_clock_offset(make: Make) -> None:
    rig = make(offsets=["binance"])  # OKX's estimator has no sample yet
    assert rig.offsets["okx"].offset_ns(time.time_ns()) is None
    rig.rich()
    rig.rich()
    refused(rig, "NO_CLOCK_OFFSET", 2)
    wall = time.time_ns()
    rig.offsets["okx"].add(wall, wall - VENUE_OFFSET_NS)  # the first timed frame's sample
    rig.rich()
    await fires(rig)
    rig.verify_journal()


# --- venue state --------------------------------------------------------------------------------


async def test_circuit_opens_after_consecutive_failures(make: Make) -> None:
    rig = make(
        venue_limits={"okx": {"breaker_failures": 2, "max_rejects": 10}},
        gateway={"okx": {"reject_prob": 1.0}},
    )
    for n in (1, 2):  # two arbs whose OKX leg is rejected (the Binance leg is unwound)
        rig.rich()
        await rig.settle()
        assert len(rig.arbs()) == n and rig.arbs()[-1].legs[1].status is OrderStatus.REJECTED
    assert rig.gates.breaker("okx") is BreakerState.OPEN
    sent = len(rig.sent())
    rig.rich()
    rig.rich()
    refused(rig, "CIRCUIT_OPEN", 2, sent=sent)
    assert rig.gates.last_venue == "okx"

    rig.gateways["okx"].reject_prob = 0.0  # the venue recovers
    rig.quiet("okx")
    rig.tick(30 * S)  # the cooldown passes
    assert rig.gates.breaker("okx") is BreakerState.HALF_OPEN
    rig.rich()  # the trial arb
    await fires(rig)
    assert rig.gates.breaker("okx") is BreakerState.CLOSED
    rig.verify_journal()


async def _unhealthy(rig: Rig, kind: str) -> None:
    """Make OKX unhealthy through what the venue does."""
    if kind == "resync":
        # Two gaps in OKX's book, each reported to the engine's resync hook (which counts
        # it into the venue's health); the book comes back on a new snapshot each time.
        for _ in range(2):
            rig.gap("okx")
            rig.snapshot("okx")
        assert rig.engine.counters["resyncs"] == 2
        return
    rig.rich()  # one arb, whose OKX leg is rejected or times out
    await rig.settle()
    (arb,) = rig.arbs()
    if kind == "reject":
        assert arb.legs[1].status is OrderStatus.REJECTED
        rig.gateways["okx"].reject_prob = 0.0
    else:  # it filled at the venue, the reports were lost, the query found it
        assert arb.legs[1].status is OrderStatus.FILLED and arb.residual == 0
        unknown = [e for e in rig.entries() if e["event"] == "unknown"]
        assert arb.legs[1].client_id in {e["client_id"] for e in unknown}
        rig.gateways["okx"].timeout_prob = 0.0
    rig.quiet("okx")


@pytest.mark.parametrize(
    ("kind", "limit", "gateway"),
    [
        ("reject", "max_rejects", {"reject_prob": 1.0}),
        ("timeout", "max_timeouts", {"timeout_prob": 1.0}),
        ("resync", "max_resyncs", {}),
    ],
)
async def test_venue_unhealthy(make: Make, kind: str, limit: str, gateway: dict[str, Any]) -> None:
    rig = make(
        venue_limits={"okx": {limit: 1 if kind == "resync" else 0, "breaker_failures": 10}},
        gateway={"okx": gateway},
        policy=ExecutionPolicy(order_timeout_s=0.05, query_interval_s=0.01)
        if kind == "timeout"
        else None,
    )
    await _unhealthy(rig, kind)
    assert not rig.gates.healthy("okx")
    sent = len(rig.sent())
    rig.rich()
    rig.rich()
    refused(rig, "VENUE_UNHEALTHY", 2, sent=sent)
    assert rig.gates.last_venue == "okx"

    rig.quiet("okx")
    rig.tick(60 * S)  # the health window passes without another incident
    assert rig.gates.healthy("okx")
    rig.rich()
    await fires(rig)
    rig.verify_journal()


# --- order rules --------------------------------------------------------------------------------


async def test_min_notional_is_judged_at_the_sell_limit(make: Make) -> None:
    # Binance (10 USDT min notional) bids 30400.00 for 0.0003 and 30100.00 for 0.00003 over
    # OKX's 30000.1 ask: selling the 0.00033 brings 10.02 USDT on average, but the sell
    # order's limit is the lower bid, and 30100.00 x 0.00033 = 9.93 USDT is below the venue's
    # minimum. The calculator judges it as the venue (and the gates' BELOW_MIN_NOTIONAL,
    # unit-tested in test_risk) would: no opportunity, nothing sent, nothing to refuse.
    binance = Instrument(
        "binance",
        "BTCUSDT",
        "BTC",
        "USDT",
        "0.01",
        "0.00001",
        min_notional="10",
        size_step="0.00000001",
    )
    rig = make(instruments={"binance": binance})
    bids = [("30400", "0.0003"), ("30100", "0.00003"), ("29999", "1")]
    rig.quote("binance", bids, [("30500", "1")])
    rig.quote("binance")
    statuses = {res.status_name for _, res, _, _ in rig.pairs["btc"].results}
    assert "BELOW_MIN_NOTIONAL" in statuses
    assert not rig.sent() and not rig.refusals() and "opportunities" not in rig.engine.counters

    rig.quote("binance", [("30400", "0.0004"), ("29999", "1")])  # one level: 12.16 USDT
    arb = await fires(rig)
    assert (arb.legs[0].venue, arb.legs[1].venue) == ("okx", "binance")
    rig.verify_journal()


@pytest.mark.parametrize(
    ("case", "bids"),
    [
        # Below Binance's 0.00001 lot: the calculator's size rounds down to nothing.
        ("below_lot", [("30150", "0.000009"), ("29999.9", "1")]),
        # A zero price or a negative size: the book refuses the frame and resyncs.
        ("zero_price", [("0", "1"), ("29999.9", "1")]),
        ("negative_size", [("30150", "-0.01"), ("29999.9", "1")]),
    ],
)
async def test_order_rules_the_calculator_and_books_enforce_never_reach_the_gates(
    make: Make, case: str, bids: list[tuple[str, str]]
) -> None:
    """OFF_LOT, BELOW_MIN_SIZE, BAD_PRICE and BAD_SIZE are unreachable through the engine:
    what would violate them never becomes an opportunity."""
    rig = make()
    rig.quote("okx", bids, [("30160", "1")])
    assert rig.venues["okx"].sync.live is (case == "below_lot")
    assert "opportunities" not in rig.engine.counters and sum(rig.gates.counts) == 0
    assert not rig.refusals() and not rig.sent()
    if not rig.venues["okx"].sync.live:
        rig.quiet("okx")  # OKX's next update is ignored while it resyncs...
        rig.snapshot("okx")  # ...and it comes back on a snapshot
    rig.rich()
    await fires(rig)
    rig.verify_journal()


@pytest.mark.parametrize(
    ("reason", "limits", "blocked", "clear"),
    [
        ("SIZE_TOO_SMALL", {"min_base": "0.005"}, "0.002", "0.01"),
        ("SIZE_TOO_LARGE", {"max_base": "0.02"}, "0.03", "0.02"),
        ("NOTIONAL_TOO_SMALL", {"min_notional": "200"}, "0.005", "0.01"),  # 150 vs 300 USDT
        ("NOTIONAL_TOO_LARGE", {"max_notional": "500"}, "0.02", "0.01"),  # 600 vs 300 USDT
    ],
)
async def test_per_leg_size_and_notional_limits(
    make: Make, reason: str, limits: dict[str, str], blocked: str, clear: str
) -> None:
    rig = make(pair_limits=limits)  # the calculator sizes up to 0.05 BTC
    rig.rich(size=blocked)
    rig.rich(size=blocked)
    refused(rig, reason, 2)
    rig.rich(size=clear)  # the dislocation's size changes
    arb = await fires(rig)
    assert BINANCE.size.format(arb.legs[0].filled, True) == clear
    rig.verify_journal()


# --- portfolio ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "overrides"),
    [
        ("MAX_OPEN_ORDERS", {"venue_limits": {"binance": {"max_open_orders": 1}}}),
        ("MAX_OPEN_ORDERS_TOTAL", {"risk": {"max_open_orders_total": 3}}),
    ],
)
async def test_open_order_limits(make: Make, reason: str, overrides: dict[str, Any]) -> None:
    rig = make(pairs=("btc", "btc2"), **overrides)  # Binance/OKX and Binance/Bybit
    rig.rich("okx")  # btc fires: one order on Binance, one on OKX, in flight
    first = fired(rig, "btc")
    assert rig.portfolio.open_orders_total() == 2
    rig.rich("bybit")  # btc2 finds its own edge while they are out
    rig.rich("bybit")
    refused(rig, reason, 2, pair_id="btc2", sent=2)
    assert not rig.gateways["bybit"].sent and not rig.arbs("btc2")

    await fills(rig, first)  # the legs are done: nothing open
    assert rig.portfolio.open_orders_total() == 0
    rig.rich("bybit")
    await fires(rig, "btc2")
    rig.verify_journal()


@pytest.mark.parametrize(
    ("venue", "asset", "balance"),
    [("binance", "USDT", "100"), ("okx", "BTC", "0.005")],  # the arb needs 300 USDT / 0.01 BTC
    ids=["buy_quote", "sell_base"],
)
async def test_insufficient_balance(make: Make, venue: str, asset: str, balance: str) -> None:
    rig = make(balances={(venue, asset): balance})
    rig.rich()
    rig.rich()
    refused(rig, "INSUFFICIENT_BALANCE", 2)
    assert rig.gates.last_venue == venue
    rig.portfolio.deposit(venue, asset, atoms("1000"))  # funds moved in
    rig.rich()
    await fires(rig)
    rig.verify_journal()


async def test_max_inventory(make: Make) -> None:
    rig = make(risk={"max_inventory": {"BTC": "0.000001"}})
    rig.rich()  # buy 0.01 on Binance, sell 0.01 on OKX at 30150.0
    first = fired(rig)
    # Before the sell arrives, OKX's bid shrinks to 0.009995: the sell fills that much, and
    # the 0.000005 BTC over-bought is below Binance's lot, so it cannot be unwound.
    rig.quote("okx", [("30150", "0.009995"), ("29999.9", "1")])
    await rig.settle()
    assert first.legs[1].filled < first.legs[1].size and first.residual == atoms("0.000005")
    assert rig.portfolio.inventory("BTC") == atoms("0.000005")

    rig.rich()
    rig.rich()
    refused(rig, "MAX_INVENTORY", 2, sent=2)
    # Nothing clears it but trading the inventory away (no arb changes it: both legs are
    # the same size): it holds through time and further updates, journaled once.
    rig.quiet("okx")
    rig.tick(60 * S)
    rig.rich()
    refused(rig, "MAX_INVENTORY", 3, sent=2)
    assert rig.gates.level is KillLevel.NONE
    rig.verify_journal()


async def test_max_exposure_if_a_leg_fails(make: Make) -> None:
    rig = make(risk={"max_net_exposure": {"BTC": "0.005"}})
    rig.rich(size="0.01")  # a failed leg would leave 0.01 BTC unhedged
    rig.rich(size="0.01")
    refused(rig, "MAX_EXPOSURE", 2)
    assert rig.gates.level is KillLevel.NONE  # a worst case only: no kill
    rig.rich(size="0.005")
    await fires(rig)
    rig.verify_journal()


async def test_max_exposure_counts_the_other_pairs_legs_in_flight(make: Make) -> None:
    """Two pairs on BTC, each arb 0.01, limit 0.015: while the first pair's legs are out,
    either of them may fail, so the second pair's arb would risk 0.02 and is refused."""
    rig = make(pairs=("btc", "btc2"), risk={"max_net_exposure": {"BTC": "0.015"}})
    rig.rich("okx")
    first = fired(rig, "btc")
    rig.rich("bybit")
    refused(rig, "MAX_EXPOSURE", 1, pair_id="btc2", sent=2)
    assert not rig.gateways["bybit"].sent
    await fills(rig, first)  # both legs filled: flat, nothing in flight
    rig.rich("bybit")
    await fires(rig, "btc2")
    rig.verify_journal()


# --- order rate -----------------------------------------------------------------------------------


async def test_rate_limited(make: Make) -> None:
    # OKX allows one order per 10 s (nothing reserved for hedges).
    rig = make(
        venue_limits={"okx": {"rate_limits": (RateLimit(1, 1, 10),), "priority_share": "0"}},
    )
    rig.rich()
    await fires(rig)
    rig.rich()
    rig.rich()
    refused(rig, "RATE_LIMITED", 2, sent=2)
    assert rig.gates.tokens("okx") == (Decimal(0),)
    rig.quiet("okx")
    rig.tick(10 * S)  # the bucket refills
    rig.rich()
    await fires(rig)
    assert len(rig.arbs()) == 2
    rig.verify_journal()


# --- the engine's own budget ------------------------------------------------------------------


async def test_an_arb_past_the_budget_is_not_sent(make: Make) -> None:
    # The gates allow data up to 500 ms old; the engine sends nothing 100 ms after its frame.
    rig = make(risk={"max_data_age_ns": 500 * MS})
    rig.clock.advance(S)
    rig.rich(recv_ns=rig.clock() - 150 * MS)
    # Dropped before the gates: no rate token (nor a half-open breaker's trial) spent on it.
    assert sum(rig.gates.counts) == 0
    assert rig.engine.counters["past_budget"] == 1
    assert not rig.sent() and not rig.executor.arbs and rig.portfolio.open_orders_total() == 0
    assert not rig.refusals()
    (dropped,) = [e for e in rig.entries() if e["event"] == "arb_dropped"]
    assert dropped["reason"] == "past_budget" and dropped["late_ns"] == 50 * MS
    assert dropped["pair_id"] == "btc"

    rig.rich()  # a fresh frame
    await fires(rig)
    rig.verify_journal()


# --- configuration that does not match ------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "risk_pair"),
    [
        # The risk limits know the pair under another id.
        ("pair btc: no risk limits for it", ("btc-usdt", BINANCE, OKX)),
        # They define OKX's BTC-USDT with another lot: the engine's instrument is not theirs.
        (
            "pair btc: its instruments binance:BTCUSDT and okx:BTC-USDT are not the ones its "
            "risk limits give",
            ("btc", BINANCE, Instrument("okx", "BTC-USDT", "BTC", "USDT", "0.1", "0.0001")),
        ),
    ],
)
async def test_a_pair_the_risk_limits_do_not_match_is_refused_at_startup(
    make: Make, message: str, risk_pair: tuple[str, Instrument, Instrument]
) -> None:
    """Each pair's gate is bound when the engine is built: a pair the risk limits do not
    describe exactly stops the engine from starting, naming the pair, rather than running
    and refusing every arb."""
    with pytest.raises(ValueError, match=re.escape(message)):
        make(risk_pairs={"btc": risk_pair})


async def test_the_executor_forgets_old_settled_arbs(make: Make) -> None:
    """A daemon runs for weeks: past a window of settled arbs the executor lets go of them
    (the journal keeps the record); open ones are never dropped."""
    rig = make()
    rig.executor.keep_settled = 2
    ids = []
    for _ in range(4):
        rig.rich()
        ids.append((await fires(rig)).arb_id)
        rig.quiet("okx")
    assert rig.executor.open_arbs() == 0
    assert list(rig.executor.arbs) == ids[-2:]
    assert {o.arb_id for o, _ in rig.executor.orders.values()} == set(ids[-2:])
    assert rig.executor.counters["arbs_done"] == 4
    assert [e["arb_id"] for e in rig.entries() if e["event"] == "arb_done"] == ids
