"""The taps: arb latency/edge statistics, per-venue order outcomes, journal timings.

Every test drives the real engine (tests/engine_rig.py: books, gates, executor, paper
gateways, portfolio, journal) and checks the taps against what those objects themselves
recorded: the arbs' stamps, the orders' final states, the journal's entries.
"""

from __future__ import annotations

import os
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from arbengine.execution import ExecutionPolicy
from arbengine.journal import read_entries, verify
from arbengine.metrics_taps import ArbStats, JournalTimings, OrderTap, TimedJournal
from arbengine.orders import OrderStatus
from tests.engine_rig import Make, Rig
from tests.waiting import until


def ceil_cbps(num: int, den: int) -> int:
    return -((-num * 100) // den)


def tapped(rig: Rig) -> OrderTap:
    return OrderTap(rig.executor).attach(rig.gateways.values())


# --- ArbStats ------------------------------------------------------------------------------


async def test_harvest_observes_each_arb_once_with_its_own_stamps(make: Make) -> None:
    rig = make()
    stats = ArbStats(rig.engine.pairs)
    assert stats.harvest(rig.executor.arbs) == 0
    rig.rich()  # OKX rich: buy on Binance (pair side a), sell on OKX
    await rig.settle()
    assert stats.harvest(rig.executor.arbs) == 1
    assert stats.harvest(rig.executor.arbs) == 0  # nothing new: nothing counted twice
    rig.rich()  # the dislocation is still there: a second arb
    await rig.settle()
    assert stats.harvest(rig.executor.arbs) == 1

    arbs = rig.arbs()
    assert len(arbs) == 2
    ab = stats.by_pair["btc", "buy_a_sell_b"]
    assert ab.arbs == 2 and stats.by_pair["btc", "buy_b_sell_a"].arbs == 0
    opps = [a.opp for a in arbs]
    sent = [max(leg.sent_ns for leg in a.legs) for a in arbs]
    pairs = list(zip(sent, opps, strict=True))
    assert stats.tick_to_order.count == 2
    assert stats.tick_to_order.sum == sum(s - o.recv_ns for s, o in pairs)
    assert stats.stages["book"].sum == sum(o.applied_ns - o.recv_ns for o in opps)
    assert stats.stages["detect"].sum == sum(o.found_ns - o.applied_ns for o in opps)
    assert stats.stages["risk"].sum == sum(o.risk_ns - o.found_ns for o in opps)
    assert stats.stages["handoff"].sum == sum(s - o.risk_ns for s, o in pairs)
    # The four stages add up to the whole, arb by arb.
    assert sum(h.sum for h in stats.stages.values()) == stats.tick_to_order.sum
    assert ab.edge.sum == sum(ceil_cbps(o.edge_num, o.edge_den) for o in opps)
    assert Decimal(ab.edge.sum) / 100 >= sum(o.edge_bps for o in opps)  # rounded up
    assert ab.edge.count == 2 and stats.unmatched == 0


async def test_harvest_after_old_arbs_were_forgotten_counts_only_new_ones(make: Make) -> None:
    rig = make()
    rig.executor.keep_settled = 1  # the executor forgets settled arbs quickly
    stats = ArbStats(rig.engine.pairs)
    rig.rich()
    await rig.settle()
    assert stats.harvest(rig.executor.arbs) == 1
    for _ in range(2):
        rig.rich()
        await rig.settle()
    # The first (last harvested) arb is gone from the executor: the walk stops at the end
    # instead, counting what is still there and new.
    assert len(rig.executor.arbs) == 1
    assert stats.harvest(rig.executor.arbs) == 1
    assert stats.by_pair["btc", "buy_a_sell_b"].arbs == 2


async def test_observe_counts_an_arb_of_an_unknown_pair_without_stage_stamps(make: Make) -> None:
    rig = make()
    rig.rich()
    await rig.settle()
    (arb,) = rig.arbs()
    stats = ArbStats()  # no pairs registered
    stats.observe(arb.opp, max(leg.sent_ns for leg in arb.legs))
    assert stats.unmatched == 1 and stats.tick_to_order.count == 1
    adopted = replace(arb.opp, recv_ns=0)  # an arb taken over from a previous process
    stats.add_pairs(rig.engine.pairs)
    stats.observe(adopted, 123)
    assert stats.by_pair["btc", "buy_a_sell_b"].arbs == 1
    assert stats.tick_to_order.count == 1  # no stamps to time it by


# --- OrderTap ------------------------------------------------------------------------------


async def test_tap_counts_what_the_executor_accepted_per_venue(make: Make) -> None:
    # OKX rejects everything: the Binance leg fills, is unwound by a Binance hedge.
    rig = make(gateway={"okx": {"reject_prob": 1.0}})
    tap = tapped(rig)
    assert tap.done == {
        (v, s): 0 for v in ("binance", "okx") for s in ("filled", "canceled", "rejected")
    }
    rig.rich()
    await rig.settle()
    (arb,) = rig.arbs()
    orders = [*arb.legs, *arb.hedges]
    assert [o.status for o in orders] == [OrderStatus.FILLED, OrderStatus.REJECTED] + [
        OrderStatus.FILLED
    ] * len(arb.hedges)
    assert arb.hedges  # the unwind really ran
    by_venue = {
        (v, s.value): sum(1 for o in orders if o.venue == v and o.status is s)
        for v in ("binance", "okx")
        for s in (OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED)
    }
    assert tap.done == by_venue
    assert tap.acks == {"binance": 1 + len(arb.hedges), "okx": 0}
    assert tap.fills == {
        v: sum(len(o.fills) for o in orders if o.venue == v) for v in ("binance", "okx")
    }
    assert tap.ack_latency["binance"].count == 1 + len(arb.hedges)
    assert tap.ack_latency["binance"].sum == sum(
        o.acked_ns - o.sent_ns for o in orders if o.venue == "binance"
    )
    assert tap.ack_latency["okx"].count == 0


async def test_tap_ignores_repeats_the_executor_ignores(make: Make) -> None:
    rig = make()
    tap = tapped(rig)
    rig.rich()
    await rig.settle()
    buy = rig.arbs()[0].legs[0]
    fills, done = dict(tap.fills), dict(tap.done)
    executor_counts = dict(rig.executor.counters)
    tap.on_fill(buy, buy.fills[0])  # the same trade reported again
    tap.on_done(buy, OrderStatus.FILLED, "again", buy.done_ns)  # a second final state
    assert tap.fills == fills and tap.done == done
    assert rig.executor.counters["duplicate_fills"] == executor_counts.get("duplicate_fills", 0) + 1


async def test_tap_counts_a_final_state_reported_after_the_order_went_unknown(
    make: Make,
) -> None:
    # Binance answers after 0.3 s; the executor gives up waiting after 0.1 s.
    rig = make(policy=ExecutionPolicy(order_timeout_s=0.1, query_interval_s=5.0))
    rig.gateways["binance"].latency_s = 0.3
    tap = tapped(rig)
    rig.rich()
    await until(lambda: rig.executor.counters.get("unknown", 0) == 1)
    await rig.settle()
    assert tap.unknown_resolved == {"binance": 1, "okx": 0}
    assert tap.done["binance", "filled"] == 1 and tap.acks["binance"] == 1


# --- TimedJournal ---------------------------------------------------------------------------


def test_timed_journal_times_every_write_and_every_fsync(tmp_path: Path) -> None:
    calls: list[int] = []

    def fsync(fd: int, /) -> None:
        calls.append(fd)
        os.fsync(fd)

    timings = JournalTimings(fsync)
    journal = TimedJournal(tmp_path / "j", timings=timings, batch_ms=1)
    for i in range(5):
        journal.write("note", n=i)
    journal.flush()
    assert timings.fsync_latency.count == len(calls) > 0
    journal.close()  # writes its close entry through ``write`` too
    entries = list(read_entries(tmp_path / "j"))
    assert [e["event"] for e in entries] == ["journal_open", *["note"] * 5, "journal_close"]
    assert timings.write.count == len(entries)
    assert timings.write.sum > 0 and timings.fsync_latency.count == len(calls)
    assert verify(tmp_path / "j").clean


def test_timed_journal_refuses_two_fsyncs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not to both"):
        TimedJournal(tmp_path / "j", timings=JournalTimings(), fsync=os.fsync)
