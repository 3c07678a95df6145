"""The engine end to end over loopback: two simulated venues, real feeds, paper legs.

A BinanceSim and an OkxSim quote one shared fair price; the real feeds keep the books;
the engine runs the spread calculator on every LIVE book change; risk gates, the executor,
the paper gateways, the portfolio and the journal are the real ones. An injected
dislocation must produce an arb whose two legs fill, with the journal verifying after.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from arbengine._core.book import Book
from arbengine._core.instrument import Instrument
from arbengine.engine import Engine, GateCheck, Pair, PairConfig
from arbengine.execution import ExecutionPolicy, Executor, LegPolicy
from arbengine.journal import Journal, read_entries, verify
from arbengine.orders import ATOMS, OrderStatus, atoms
from arbengine.portfolio import Portfolio
from arbengine.risk import KillLevel, PairLimits, RiskGates, RiskLimits, VenueLimits
from arbengine.venues.binance import SPOT, BinanceFeed
from arbengine.venues.okx import OkxFeed
from arbengine.venues.paper import PaperGateway
from arbengine.venues.sim import (
    BINANCE_SPOT,
    OKX_INSTRUMENTS,
    BinanceSim,
    FairMarket,
    Fault,
    OkxSim,
)
from arbengine.venues.ws import Backoff
from tests.waiting import until

INTERVAL = 0.01
FEE = Decimal("7.5")


def instrument(venue: str, symbol: str, sim: Any) -> Instrument:
    base, quote = sim.asset.split("-")
    return Instrument(venue, symbol, base, quote, sim.tick, sim.lot)


@dataclass
class Rig:
    binance: BinanceSim
    okx: OkxSim
    feeds: tuple[BinanceFeed, OkxFeed]
    portfolio: Portfolio
    gates: RiskGates
    executor: Executor
    engine: Engine
    journal: Journal
    gateways: dict[str, PaperGateway]


@pytest.fixture
async def rig(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    params: dict[str, Any] = getattr(request, "param", {})
    fair = FairMarket(seed=3)
    ib = instrument("binance", "BTCUSDT", BINANCE_SPOT["BTCUSDT"])
    io = instrument("okx", "BTC-USDT", OKX_INSTRUMENTS["BTC-USDT"])
    backoff = Backoff(base_s=0.01, cap_s=0.05, rng=random.Random(2))
    async with (
        BinanceSim([BINANCE_SPOT["BTCUSDT"]], seed=41, interval_s=INTERVAL, fair=fair) as bsim,
        OkxSim([OKX_INSTRUMENTS["BTC-USDT"]], seed=42, interval_s=INTERVAL, fair=fair) as osim,
    ):
        bfeed = BinanceFeed(
            SPOT, [ib], ws_base=bsim.ws_url, rest_base=bsim.rest_url, backoff=backoff
        )
        ofeed = OkxFeed([io], ws_url=osim.ws_url, backoff=backoff)
        syncs = {"binance": bfeed.syncs[0], "okx": ofeed.syncs[0]}

        def book_of(venue: str) -> Callable[[str], Book | None]:
            return lambda _symbol: syncs[venue].book if syncs[venue].live else None

        start = {"BTC": atoms("2"), "USDT": atoms("200000")}
        portfolio = Portfolio(
            {(v, a): amount for v in ("binance", "okx") for a, amount in start.items()},
            reference="USDT",
        )
        gateways = {
            v: PaperGateway(
                v,
                book_of(v),
                portfolio,
                fee_bps=FEE,
                latency_s=0.002,
                seed=i,
                **params.get(v, {}),
            )
            for i, v in enumerate(("binance", "okx"))
        }
        journal = Journal(tmp_path / "journal", batch_ms=5)
        policy = ExecutionPolicy(
            leg_policy=params.get("leg_policy", LegPolicy.UNWIND),
            order_timeout_s=0.3,
            query_interval_s=0.05,
            leg_deadline_s=1.0,
        )
        limits = RiskLimits(
            venues=(VenueLimits("binance"), VenueLimits("okx")),
            pairs=(
                PairLimits(
                    "btc",
                    ib,
                    io,
                    min_edge_bps="5",
                    max_edge_bps="500",
                    max_base="0.05",
                    max_notional="10000",
                    fee_a_bps=FEE,
                    fee_b_bps=FEE,
                ),
            ),
            max_inventory={"BTC": "1"},
            max_net_exposure={"BTC": "1"},
            max_daily_loss="1000",
            max_drawdown="2000",
        )
        gates = RiskGates(limits, portfolio)
        executor = Executor(
            gateways,
            portfolio,
            journal,
            fee_bps={"binance": FEE, "okx": FEE},
            books=lambda inst: syncs[inst.venue].book if syncs[inst.venue].live else None,
            risk=gates,
        )
        pair = Pair(
            PairConfig("btc", ib, io, FEE, FEE, Decimal(5), max_size="0.05", policy=policy),
            syncs["binance"],
            syncs["okx"],
        )
        engine = Engine(
            [pair],
            executor=executor,
            risk=GateCheck(gates, {"binance": bfeed.router.clock, "okx": ofeed.router.clock}),
            journal=journal,
        )
        bfeed.on_book = ofeed.on_book = engine.on_book
        bfeed.on_resync = ofeed.on_resync = engine.on_resync
        tasks = [asyncio.create_task(f.run()) for f in (bfeed, ofeed)]
        await until(lambda: all(s.live for s in syncs.values()))
        try:
            yield Rig(
                bsim, osim, (bfeed, ofeed), portfolio, gates, executor, engine, journal, gateways
            )
        finally:
            for feed in (bfeed, ofeed):
                await feed.stop()
            await asyncio.gather(*tasks)
            await executor.close()
            for gw in gateways.values():
                gw.close()
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
