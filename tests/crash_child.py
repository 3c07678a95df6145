"""A trading process for the kill -9 tests (tests/test_crash.py), run as
``python -m tests.crash_child MODE JOURNAL_DIR OUT_DIR``.

It runs what a daemon runs: a BinanceSim and an OkxSim on loopback (they die with the process,
like a paper portfolio's venues), the real feeds, engine, risk gates, executor, paper gateways,
portfolio and journal, with OKX dislocated so arbs keep firing. Paper legs take 150 ms, so
there is nearly always an arb in flight.

MODE ``freeze``: a fresh start; once an arb has settled and the next one has its legs out, it
flushes the journal, writes ``OUT_DIR/state.json`` (exactly what is durable) and blocks the
event loop, waiting to be killed. MODE ``trade``: a fresh start that trades until killed.
MODE ``resume``: recovers from the journal, writes ``OUT_DIR/recovered.json`` before touching
anything, adopts it, trades until the recovered orders are resolved and two new arbs have
settled, then stops cleanly and writes ``OUT_DIR/final.json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import uvloop

from arbengine._core.instrument import Instrument
from arbengine.engine import Engine, GateCheck, Pair, PairConfig
from arbengine.execution import ArbState, ExecutionPolicy, Executor
from arbengine.journal import Journal
from arbengine.orders import atoms
from arbengine.portfolio import Portfolio
from arbengine.recovery import Recovery, recover
from arbengine.risk import KillLevel, PairLimits, RiskGates, RiskLimits, VenueLimits
from arbengine.venues.binance import SPOT, BinanceFeed
from arbengine.venues.okx import OkxFeed
from arbengine.venues.paper import PaperGateway
from arbengine.venues.sim import BINANCE_SPOT, OKX_INSTRUMENTS, BinanceSim, FairMarket, OkxSim
from tests.waiting import fast_backoff, until

FEE = Decimal("7.5")
BTC = BINANCE_SPOT["BTCUSDT"]
IB = Instrument("binance", "BTCUSDT", "BTC", "USDT", BTC.tick, BTC.lot)
_OKX = OKX_INSTRUMENTS["BTC-USDT"]
IO = Instrument("okx", "BTC-USDT", "BTC", "USDT", _OKX.tick, _OKX.lot)
INSTRUMENTS = (IB, IO)
START = {(v, a): atoms(n) for v in ("binance", "okx") for a, n in (("BTC", "2"), ("USDT", "2e5"))}


def start_portfolio() -> Portfolio:
    return Portfolio(dict(START), reference="USDT")


def state(executor: Executor, portfolio: Portfolio, gates: RiskGates) -> dict[str, Any]:
    """The state recovery must rebuild (json: its ints may pass 64 bits)."""
    orders = {
        o.client_id: [str(o.status), o.filled, o.cost, o.fee]
        for arb in executor.arbs.values()
        if arb.state != ArbState.DONE
        for o in arb.legs + arb.hedges
    }
    return {
        "portfolio": portfolio.snapshot(),
        "orders": orders,
        "exposure": {k: v for k, v in executor.exposure.items() if v},
        "kill": gates.level.name,
        "arbs": executor.counters.get("arbs", 0),
    }


def recovered_state(rec: Recovery) -> dict[str, Any]:
    return {
        "portfolio": rec.portfolio.snapshot(),
        "orders": {
            o.client_id: [str(o.status), o.filled, o.cost, o.fee]
            for arb in rec.arbs.values()
            for o in arb.legs + arb.hedges
        },
        "exposure": {k: v for k, v in rec.exposure.items() if v},
        "kill": rec.kill_level.name,
        "arbs": rec.executor_counters.get("arbs", 0),
    }


def dump(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, sort_keys=True))
    os.replace(tmp, path)


async def main(mode: str, journal_dir: Path, out: Path) -> None:
    journal = Journal(journal_dir, batch_ms=2)
    rec: Recovery | None = None
    if mode == "resume":
        rec = recover(journal_dir, INSTRUMENTS)
        dump(out / "recovered.json", recovered_state(rec))
        portfolio = rec.portfolio
    else:
        portfolio = start_portfolio()
    fair = FairMarket(seed=3)
    async with (
        BinanceSim([BTC], seed=41, interval_s=0.01, fair=fair) as bsim,
        OkxSim([_OKX], seed=42, interval_s=0.01, fair=fair) as osim,
    ):
        bfeed = BinanceFeed(
            SPOT, [IB], ws_base=bsim.ws_url, rest_base=bsim.rest_url, backoff=fast_backoff()
        )
        ofeed = OkxFeed([IO], ws_url=osim.ws_url, backoff=fast_backoff())
        syncs = {"binance": bfeed.syncs[0], "okx": ofeed.syncs[0]}
        gateways = {
            v: PaperGateway(
                v,
                lambda _s, v=v: syncs[v].book if syncs[v].live else None,  # type: ignore[misc]
                portfolio,
                fee_bps=FEE,
                latency_s=0.15,
                seed=i,
            )
            for i, v in enumerate(("binance", "okx"))
        }
        limits = RiskLimits(
            venues=(VenueLimits("binance"), VenueLimits("okx")),
            pairs=(
                PairLimits(
                    "btc",
                    IB,
                    IO,
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
        policy = ExecutionPolicy(order_timeout_s=0.5, query_interval_s=0.05, leg_deadline_s=1.0)
        pair = Pair(
            PairConfig("btc", IB, IO, FEE, FEE, Decimal(5), max_size="0.05", policy=policy),
            syncs["binance"],
            syncs["okx"],
        )
        clocks = {"binance": bfeed.router.clock, "okx": ofeed.router.clock}
        engine = Engine([pair], executor=executor, risk=GateCheck(gates, clocks), journal=journal)
        if rec is not None:
            engine.adopt(rec)
        else:
            engine.checkpoint()
        bfeed.on_book = ofeed.on_book = engine.on_book
        tasks = [asyncio.create_task(f.run()) for f in (bfeed, ofeed)]
        await until(lambda: all(s.live for s in syncs.values()))
        osim.dislocate(80, 3600)
        if mode == "freeze":
            await until(
                lambda: executor.counters.get("arbs_done", 0) >= 1 and executor.open_arbs() > 0
            )
            journal.flush()
            dump(out / "state.json", state(executor, portfolio, gates))
            time.sleep(3600)  # the loop stops here: nothing else happens until kill -9
        if mode == "trade":
            (out / "trading").touch()
            await asyncio.sleep(3600)
        recovered = set(rec.arbs) if rec is not None else set()
        new_arbs = executor.counters.get("arbs", 0) + 2
        await until(
            lambda: (
                all(executor.arbs[a].state == ArbState.DONE for a in recovered)
                and executor.counters.get("arbs", 0) >= new_arbs
            )
        )
        engine.kill(KillLevel.HALT_NEW, "test", "enough")
        await executor.drain()
        for feed in (bfeed, ofeed):
            await feed.stop()
        await asyncio.gather(*tasks)
        await executor.close()
        for gw in gateways.values():
            gw.close()
        engine.checkpoint()
        dump(out / "final.json", state(executor, portfolio, gates))
        journal.close()


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])))
