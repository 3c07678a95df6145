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
from pathlib import Path
from typing import Any

import uvloop

from arbengine.execution import ArbState, ExecutionPolicy, Executor
from arbengine.journal import Journal
from arbengine.portfolio import Portfolio
from arbengine.recovery import Recovery, recover
from arbengine.risk import KillLevel, RiskGates
from tests.sim_engine import INSTRUMENTS, sim_rig, start_portfolio
from tests.waiting import until


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
    policy = ExecutionPolicy(order_timeout_s=0.5, query_interval_s=0.05, leg_deadline_s=1.0)
    async with sim_rig(journal, portfolio, policy=policy, latency_s=0.15) as rig:
        engine, executor, gates = rig.engine, rig.executor, rig.gates
        if rec is not None:
            engine.adopt(rec)
        else:
            engine.checkpoint()
        await rig.start()
        rig.okx.dislocate(80, 3600)
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
        await rig.stop()
        engine.checkpoint()
        dump(out / "final.json", state(executor, portfolio, gates))
    journal.close()


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])))
