"""The engine end to end over loopback: two simulated venues, real feeds, paper legs.

A BinanceSim and an OkxSim quote one shared fair price; the real feeds keep the books;
the engine runs the spread calculator on every LIVE book change; risk gates, the executor,
the paper gateways, the portfolio and the journal are the real ones. An injected
dislocation must produce an arb whose two legs fill, with the journal verifying after.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from arbengine.execution import ExecutionPolicy, LegPolicy
from arbengine.journal import Journal, read_entries, verify
from arbengine.orders import ATOMS, OrderStatus, Purpose, Side, TimeInForce
from arbengine.recovery import recover
from arbengine.risk import KillLevel
from arbengine.venues.sim import Fault
from tests.sim_engine import INSTRUMENTS, SimRig, sim_rig, start_portfolio
from tests.waiting import until

Rig = SimRig


@pytest.fixture
async def rig(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    params: dict[str, Any] = getattr(request, "param", {})
    journal = Journal(tmp_path / "journal", batch_ms=5)
    policy = ExecutionPolicy(
        leg_policy=params.get("leg_policy", LegPolicy.UNWIND),
        order_timeout_s=0.3,
        query_interval_s=0.05,
        leg_deadline_s=1.0,
    )
    try:
        async with sim_rig(
            journal, start_portfolio(), policy=policy, latency_s=0.002, paper=params
        ) as r:
            await r.start()
            yield r
    finally:
        journal.close()


def entries(rig: Rig) -> list[dict[str, Any]]:
    rig.journal.flush()
    return list(read_entries(rig.journal.directory))


async def test_quiet_markets_fire_nothing(rig: Rig) -> None:
    await asyncio.sleep(0.5)
    assert rig.engine.counters.get("opportunities", 0) == 0
    assert sum(p.evaluations for p in rig.engine.pairs) > 20


async def settle(rig: Rig, counter: str = "arbs") -> None:
    """Wait for the first arb, stop new ones (the dislocation lasts a while and would fire
    again), then let every arb in flight finish."""
    await until(lambda: rig.executor.counters.get(counter, 0) >= 1)
    rig.gates.kill(KillLevel.HALT_NEW, "test", "one arb is enough")
    await rig.executor.drain()


async def test_a_dislocation_fires_both_legs_and_they_fill(rig: Rig) -> None:
    # Binance's book holds still: a buy leg meeting a book that moved after the engine
    # saw it (the cross-connection race, likelier on a loaded machine) is a leg failure,
    # which has tests of its own; this one is about both legs filling.
    rig.binance.pause()
    rig.okx.dislocate(80, 0.5)  # OKX 80 bps rich: buy Binance, sell OKX
    await settle(rig)
    for arb in rig.executor.arbs.values():
        buy, sell = arb.legs
        assert (buy.venue, sell.venue) == ("binance", "okx")
        assert buy.status.done and sell.status.done and buy.filled > 0 and sell.filled > 0
        assert arb.residual == 0  # equal fills, or hedged to flat
        assert buy.sent_ns - arb.opp.recv_ns < 100_000_000
    assert rig.engine.latencies_ns and max(rig.engine.latencies_ns) < 100_000_000
    # Inventory flat in BTC; USDT up when no hedge was needed (the edge beat the fees).
    assert abs(rig.portfolio.inventory("BTC")) < ATOMS // 10**6
    if not any(a.hedges for a in rig.executor.arbs.values()):
        assert rig.portfolio.inventory("USDT") > 0
    log = entries(rig)
    events = [e["event"] for e in log]
    for needed in ("arb", "order", "fill", "done", "arb_done"):
        assert needed in events, needed
    # One arb id links both legs and their fills; every arb in the journal was sent.
    assert {e["arb_id"] for e in log if e["event"] in ("order", "fill")} == set(rig.executor.arbs)
    for arb_id in rig.executor.arbs:
        legs = {e["client_id"] for e in log if e["event"] == "order" and e["arb_id"] == arb_id}
        assert {f"{arb_id}-B", f"{arb_id}-S"} <= legs
    assert verify([*rig.journal.files()]).clean


async def test_risk_gate_blocks_and_is_journaled_once(rig: Rig) -> None:
    rig.gates.kill(KillLevel.HALT_NEW, "operator", "test")
    rig.okx.dislocate(80, 0.5)
    await until(lambda: rig.engine.counters.get("opportunities", 0) >= 5)
    assert rig.executor.counters.get("arbs", 0) == 0
    refused = [e for e in entries(rig) if e["event"] == "risk_refused"]
    assert len(refused) == 1 and refused[0]["reason"] == "KILL_SWITCH"


@pytest.mark.parametrize(
    "rig", [{"okx": {"reject_prob": 1.0}, "leg_policy": LegPolicy.UNWIND}], indirect=True
)
async def test_rejected_leg_is_unwound(rig: Rig) -> None:
    # Binance holds still so its leg fills and there is something to unwind (see the test
    # above: a buy meeting a book that moved after the engine saw it is refused too).
    rig.binance.pause()
    rig.okx.dislocate(80, 0.5)
    await settle(rig)
    arb = next(iter(rig.executor.arbs.values()))
    buy, sell = arb.legs
    assert sell.status == OrderStatus.REJECTED and buy.filled > 0
    assert arb.hedges and all(h.venue == "binance" for h in arb.hedges)
    assert arb.residual == 0
    assert abs(rig.portfolio.inventory("BTC")) < ATOMS // 10**6


@pytest.mark.parametrize("rig", [{"okx": {"timeout_prob": 1.0, "late_fill_s": 0.1}}], indirect=True)
async def test_timed_out_leg_is_resolved_by_query_never_assumed_rejected(rig: Rig) -> None:
    rig.okx.dislocate(80, 0.5)
    await settle(rig, "unknown")
    arb = next(iter(rig.executor.arbs.values()))
    sell = arb.legs[1]
    assert sell.status.done and sell.status != OrderStatus.UNKNOWN
    assert sell.filled > 0  # the fills the venue reported late, applied once
    assert abs(rig.portfolio.inventory("BTC")) < ATOMS // 10**6
    events = [e["event"] for e in entries(rig)]
    assert "unknown" in events


async def test_a_resync_counts_into_the_venues_health(rig: Rig) -> None:
    """A frame lost on OKX breaks its sequence: the book leaves LIVE, the feed tells the
    engine, and the gates count it into OKX's health; the book comes back LIVE."""
    okx = rig.feeds[1].syncs[0]
    rig.okx.faults.inject(Fault.DROP)
    await until(lambda: rig.engine.counters.get("resyncs", 0) >= 1)
    assert rig.gates.recent("okx")["resyncs"] >= 1
    assert rig.gates.recent("binance") == {"rejects": 0, "timeouts": 0, "resyncs": 0}
    await until(lambda: okx.live)


@pytest.mark.parametrize(
    "rig", [{"okx": {"reject_prob": 1.0}, "leg_policy": LegPolicy.CHASE}], indirect=True
)
async def test_flatten_closes_what_a_failed_leg_left_and_a_restart_agrees(rig: Rig) -> None:
    """The kill switch's FLATTEN level sells back what the portfolio holds: a chase that
    could not complete leaves BTC bought on Binance; FLATTEN sends IOC orders on the best
    LIVE book until only dust below a lot is left, settles them without a hedge, refuses
    new arbs meanwhile, and the journal replays to the same portfolio, exposure and
    counters."""
    rig.binance.pause()  # its leg must fill to leave something held (as above)
    rig.okx.dislocate(80, 0.5)
    await settle(rig)
    held = rig.portfolio.inventory("BTC")
    assert held > 0 and rig.executor.exposure["BTC"] == held
    rig.gateways["okx"].reject_prob = 0.0  # the venue answers again
    level = rig.engine.kill(KillLevel.FLATTEN, "operator", "close everything")
    assert level == KillLevel.FLATTEN
    lot_atoms = max(rig.executor.scale(inst).base(inst.lot) for inst in INSTRUMENTS)
    for _ in range(50):  # the daemon's watch retries every round while FLATTEN holds
        await rig.executor.drain()
        if abs(rig.portfolio.inventory("BTC")) < lot_atoms:
            break
        rig.engine.flatten()  # refused while the chase spent the rate tokens: try again
        await asyncio.sleep(0.1)
    await rig.executor.drain()
    flats = [a for a in rig.executor.arbs.values() if a.flatten]
    assert flats, [e["reason"] for e in entries(rig) if e["event"].startswith("flatten")] or (
        rig.portfolio.inventory("BTC"),
        rig.executor.open_arbs(),
    )
    for arb in flats:
        (order,) = arb.hedges
        assert not arb.legs and order.purpose == Purpose.FLATTEN and order.side == Side.SELL
        assert order.tif == TimeInForce.IOC and order.status.done
    assert abs(rig.portfolio.inventory("BTC")) < lot_atoms  # dust at most
    assert rig.executor.exposure["BTC"] == rig.portfolio.inventory("BTC")
    assert rig.executor.counters["flattens"] == rig.executor.counters["flattens_done"]
    assert rig.executor.counters["flattens"] == len(flats)
    # Nothing new fires while FLATTEN holds.
    arbs = rig.executor.counters["arbs"]
    rig.okx.dislocate(80, 0.3)
    await until(lambda: rig.engine.counters.get("risk:KILL_SWITCH", 0) >= 1)
    assert rig.executor.counters["arbs"] == arbs

    rig.journal.flush()
    assert verify(rig.journal.directory).clean
    rec = recover(rig.journal.directory, INSTRUMENTS, portfolio=start_portfolio)
    assert rec.portfolio.snapshot() == rig.portfolio.snapshot()
    assert {k: v for k, v in rec.exposure.items() if v} == {
        k: v for k, v in rig.executor.exposure.items() if v
    }
    for key in ("arbs", "arbs_done", "flattens", "flattens_done", "hedges"):
        assert rec.executor_counters.get(key, 0) == rig.executor.counters.get(key, 0), key
    assert rec.kill_level == KillLevel.FLATTEN and not rec.arbs
