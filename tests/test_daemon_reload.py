"""The daemon in-process, on the demo's simulated venues: what a reload rebuilds (pairs
disabled and enabled, risk limits recompiled into new gates, the kill switch carried over)
and what an unexpected exception does (one JSON line, the kill switch to HALT_NEW, the
daemon running on)."""

from __future__ import annotations

import asyncio
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from arbengine.config import load
from arbengine.control import Action
from arbengine.daemon import Daemon
from arbengine.daemon_log import DaemonLog
from arbengine.risk import KillLevel, RiskGates
from arbengine.sdnotify import Notifier
from tests.daemon_proc import demo_config
from tests.waiting import until


def events(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


async def test_reloads_rebuild_pairs_and_gates_and_faults_halt(tmp_path: Path) -> None:
    path = demo_config(tmp_path / "demo.yaml", metrics_port=0)
    original = path.read_text()
    env = {
        "STATE_DIRECTORY": str(tmp_path / "state"),
        "ARBENGINE_CONTROL_SOCKET": str(tmp_path / "control.sock"),
    }
    out = io.StringIO()
    daemon = Daemon(
        load(path, environ=env), log=DaemonLog(out, tty=False), notifier=Notifier(None), environ=env
    )
    run = asyncio.create_task(daemon.run())
    try:
        await until(lambda: daemon.trading or run.done(), timeout=60)
        assert not run.done(), out.getvalue()
        engine = daemon.engine
        assert engine is not None and engine.gates is not None
        gates = engine.gates
        engine.kill(KillLevel.REDUCE_ONLY, "tester", "held across the reload")
        # A venue's 418 wait (short: the pair trades again below) outlives the reload.
        venue = gates.limits.venues[0].name
        blocked = gates.back_off(venue, 0.5, banned=True)

        # Disable the only pair: the engine runs none; limits recompile into new gates.
        path.write_text(
            original.replace(
                "    leg_policy: unwind\n", "    leg_policy: unwind\n    enabled: false\n"
            ).replace('max_daily_loss: "1000"', 'max_daily_loss: "900"')
        )
        result = await daemon.reload(Action("tester"))
        assert result["refused"] == []
        assert sorted(result["changed"]) == [
            "pairs[btc-usdt].enabled: true -> false",
            "risk.max_daily_loss: 1000 -> 900",
        ]
        assert engine.pairs == [] and engine.gates is not gates
        assert engine.gates.limits.max_daily_loss == Decimal(900)
        assert engine.gates.level == KillLevel.REDUCE_ONLY  # state carried, not reset
        assert engine.gates.blocked_until[venue] == blocked
        assert engine.gates.bans == {venue: 1}
        assert daemon.executor is not None and daemon.executor.risk is engine.gates

        # Enable it again: the pair is back, bound to the new gates, and trades.
        engine.resume("tester", "go on")
        path.write_text(original)
        result = await daemon.reload(Action("tester"))
        assert [p.config.pair_id for p in engine.pairs] == ["btc-usdt"]
        assert result["changed"][0] == "pairs[btc-usdt].enabled: false -> true"
        executor = daemon.executor
        arbs = executor.counters.get("arbs", 0)
        await until(lambda: executor.counters.get("arbs", 0) > arbs, timeout=60)

        # A threshold change rebuilds the pair; its counters carry over.
        (pair,) = engine.pairs
        await until(lambda: executor.open_arbs() == 0)
        counts = (pair.evaluations, pair.opportunities, list(pair.found))
        assert sum(pair.found) == pair.opportunities > 0
        path.write_text(original.replace('min_edge_bps: "5"', 'min_edge_bps: "6"'))
        result = await daemon.reload(Action("tester"))
        assert result["changed"] == ["pairs[btc-usdt].min_edge_bps: 5 -> 6"], result
        (rebuilt,) = engine.pairs
        assert rebuilt is not pair and rebuilt.config.min_edge_bps == Decimal(6)
        assert rebuilt.evaluations >= counts[0] and rebuilt.opportunities >= counts[1]
        assert all(now >= then for now, then in zip(rebuilt.found, counts[2], strict=True))
        assert sum(rebuilt.found) == rebuilt.opportunities

        # The order path's warm-up interval is live too (0: off).
        assert engine.warm_every == 8
        path.write_text(
            original.replace('min_edge_bps: "5"', 'min_edge_bps: "6"').replace(
                "  budget_ms: 100\n", "  budget_ms: 100\n  warm_every: 0\n"
            )
        )
        result = await daemon.reload(Action("tester"))
        assert result["changed"] == ["engine.warm_every: 8 -> 0"], result
        assert engine.warm_every == 0

        # Something escapes a callback: logged as one line, new arbs halted, still running.
        def boom() -> None:
            raise RuntimeError("boom\nsecond line")

        asyncio.get_running_loop().call_soon(boom)
        await until(lambda: any(e["event"] == "unexpected error" for e in events(out)))
        fault = next(e for e in events(out) if e["event"] == "unexpected error")
        assert fault["error"] == "RuntimeError: boom second line"
        assert fault["level"] == "error" and "RuntimeError" in fault["exception"]
        now = engine.gates
        assert isinstance(now, RiskGates)
        assert now.level == KillLevel.HALT_NEW and now.history[-1].by == "daemon"
        assert not run.done()
    finally:
        daemon.request_stop("test")
        code = await asyncio.wait_for(run, 60)
    assert code == 0
    names = [e["event"] for e in events(out)]
    assert names.count("reloaded") == 4 and names[-1] == "stopped"
