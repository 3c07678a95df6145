"""Every PromQL expression of the Grafana dashboard and of the alert rules, run by a real
Prometheus (Debian's ``prometheus``) that scrapes a real exporter on loopback, backed by a
real engine trading against simulated venues over real WebSocket feeds (tests/sim_engine.py).

The market is made to trade both ways in turn, an OKX checksum is corrupted (a resync)
and Binance's connection is cut (a reconnect), so that every panel has something to show.
Then: each dashboard query (Grafana variables expanded as "All") must succeed and return at
least one finite value; each variable query must list values; every metric name any query
or rule mentions must exist in Prometheus (a typo would otherwise just show nothing); every
alert rule must evaluate without error; the kill switch must fire its alert in Prometheus,
and stopping the exporter must make the daemon-down alert pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from arbengine.execution import ExecutionPolicy
from arbengine.metrics import MetricsExporter, MetricSources
from arbengine.metrics_taps import OrderTap, TimedJournal
from arbengine.risk import KillLevel
from arbengine.venues.sim import Fault
from tests.prometheus_server import PrometheusServer
from tests.sim_engine import SimRig, sim_rig, start_portfolio
from tests.test_prometheus_rules import ALERTS
from tests.waiting import until

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
DASHBOARD = CONFIGS / "grafana" / "arbengine.json"
RULES = CONFIGS / "prometheus" / "alerts.yml"
INTERVAL = "500ms"
#: Grafana's variables as the dashboard's "All" sends them. $__rate_interval (which Grafana
#: sizes to the panel's time range) spans the whole test, so rates and quantiles see every
#: trade it made: the venues' real rate limits and health windows make trading bursty.
VARIABLES = {
    "$__rate_interval": "1m",
    "$instance": ".*",
    "$venue": ".*",
    "$pair": ".*",
}


def panels(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in node.get("panels", []):
        yield panel
        yield from panels(panel)


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title / refId, expression) of every target."""
    board = json.loads(DASHBOARD.read_text())
    return [
        (f"{p['title']} / {t['refId']}", t["expr"])
        for p in panels(board)
        for t in p.get("targets", [])
    ]


def variable_queries() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    return [
        (v["name"], v["definition"]) for v in board["templating"]["list"] if v["type"] == "query"
    ]


def expand(expr: str) -> str:
    # Longest names first: $__rate_interval before anything it starts with.
    for name in sorted(VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, VARIABLES[name])
    assert "$" not in expr, f"unexpanded variable in {expr}"
    return expr


def label_values(definition: str) -> str:
    """Grafana's label_values(selector, label) as the PromQL that lists the same values."""
    m = re.fullmatch(r"label_values\((.+), (\w+)\)", definition)
    assert m, definition
    return f"count by ({m[2]}) ({m[1]})"


def metric_names(expr: str) -> set[str]:
    names = set(re.findall(r"\b((?:arbengine|process)_[a-z0-9_]+)\b", expr))
    if re.search(r"\bup\{", expr):
        names.add("up")
    return names


def finite(rows: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(r["value"][1])) for r in rows)


async def alerts(prom: PrometheusServer, name: str) -> list[dict[str, Any]]:
    return [a for a in await asyncio.to_thread(prom.alerts) if a["labels"]["alertname"] == name]


async def rules(prom: PrometheusServer) -> list[dict[str, Any]]:
    groups = (await asyncio.to_thread(prom.api, "rules"))["groups"]
    return [r for g in groups for r in g["rules"]]


def diagnosis(rig: SimRig) -> str:
    refused = {k: n for k, n in rig.gates.counters().items() if n}
    return f"gates: {refused}; executor: {rig.executor.counters}; kill: {rig.gates.level.name}"


class LoopLag:
    """A stand-in for the daemon's loop-lag monitor: how late a 20 ms sleep wakes up."""

    def __init__(self) -> None:
        self.last = 0.0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(0.02)
            self.last = max(0.0, loop.time() - start - 0.02)

    def read(self) -> float:
        return self.last


@dataclass
class Running:
    rig: SimRig
    exporter: MetricsExporter
    prom: PrometheusServer


async def swing(rig: SimRig) -> None:
    """OKX rich, then cheap, in turn: arbs one way until a side's balance runs out, then
    the other way, so trades keep coming for as long as the test runs."""
    bps = 80
    while True:
        rig.okx.dislocate(bps, 1.5)
        await asyncio.sleep(1.0)
        bps = -bps


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    journal = TimedJournal(tmp_path / "journal", batch_ms=5)
    policy = ExecutionPolicy(order_timeout_s=0.5, query_interval_s=0.05, leg_deadline_s=1.0)
    lag = LoopLag()
    tasks: list[asyncio.Task[None]] = []
    prom: PrometheusServer | None = None
    try:
        async with sim_rig(journal, start_portfolio(), policy=policy, latency_s=0.002) as rig:
            tap = OrderTap(rig.executor).attach(rig.gateways.values())
            await rig.start()
            exporter = MetricsExporter(
                MetricSources(
                    rig.engine,
                    feeds=rig.feeds,
                    orders=tap,
                    journal=journal,
                    loop_lag=lag.read,
                    build={"mode": "paper"},
                ),
                port=0,
            )
            exporter.start()
            tasks = [asyncio.create_task(lag.run())]
            prom = PrometheusServer(
                [f"127.0.0.1:{exporter.port}"],
                tmp_path / "prom",
                interval=INTERVAL,
                rule_files=[RULES],
            )
            # Blocking calls go to a thread: the loop must keep serving the exporter.
            await asyncio.to_thread(prom.start)
            await prom.await_up()
            # Trading starts once Prometheus watches: every trade lands inside its windows.
            tasks.append(asyncio.create_task(swing(rig)))
            try:
                yield Running(rig, exporter, prom)
            finally:
                for task in tasks:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                exporter.stop()
    finally:
        if prom is not None:
            await asyncio.to_thread(prom.stop)
        journal.close()


async def test_every_dashboard_and_rule_query_runs_on_a_real_prometheus(
    running: Running,
) -> None:
    rig, prom = running.rig, running.prom
    # A resync and a reconnect, so the book and feed panels have events to show.
    rig.okx.faults.inject(Fault.CORRUPT_CHECKSUM)
    await until(lambda: rig.feeds[1].syncs[0].checksum_failures >= 1)
    rig.binance.disconnect_all()
    await until(lambda: rig.feeds[0].ws.counters.reconnects >= 1)
    await until(lambda: all(f.syncs[0].live for f in rig.feeds))
    # Trades, and what they did, in Prometheus.
    for expr in (
        "sum(arbengine_arbs_total) > 0",
        "sum(arbengine_order_acks_total) > 0",
        'arbengine_book_checksum_failures_total{venue="okx"} >= 1',
        'arbengine_book_resyncs_total{venue="okx"} >= 1',
        'arbengine_feed_reconnects_total{venue="binance"} >= 1',
        "sum(arbengine_fills_total) > 0",
        "arbengine_journal_fsync_seconds_count > 0",
    ):
        await prom.await_for(expr, timeout=30)
    await asyncio.sleep(1)  # a couple more scrapes: every series has samples to rate

    failures: list[str] = []
    referenced: set[str] = set()
    queries = dashboard_queries()
    assert len(queries) >= 60
    for where, expr in queries:
        referenced |= metric_names(expr)
        try:
            rows = await prom.aquery(expand(expr))
        except Exception as exc:
            failures.append(f"{where}: {exc}")
            continue
        if not finite(rows):
            failures.append(f"{where}: no finite value from {expand(expr)}: {rows}")
    for name, definition in variable_queries():
        referenced |= metric_names(definition)
        rows = await prom.aquery(expand(label_values(definition)))
        if not rows:
            failures.append(f"variable {name}: no values from {definition}")
    assert not failures, "\n".join([*failures, diagnosis(rig)])

    assert tuple(r["name"] for r in await rules(prom)) == ALERTS
    for rule in await rules(prom):
        assert rule["labels"]["severity"] in ("critical", "warning"), rule
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule
        referenced |= metric_names(rule["query"])
        await prom.aquery(rule["query"])  # raises PromQLError on a bad query
    # Every rule has been evaluated by Prometheus itself, without error.
    await prom.await_for("vector(1)")  # one more evaluation round trip
    evaluated = await rules(prom)
    assert all(r["health"] == "ok" and not r.get("lastError") for r in evaluated), evaluated

    missing = [n for n in sorted(referenced) if not await prom.aquery(f'count({{__name__="{n}"}})')]
    assert not missing, f"metrics referenced but not exported: {missing}"
    assert len(referenced) >= 50


async def test_alerts_fire_on_a_real_prometheus(running: Running) -> None:
    rig, prom = running.rig, running.prom
    await prom.await_for("arbengine_kill_level == 0")
    assert not await alerts(prom, "ArbengineKillSwitchEngaged")

    rig.gates.kill(KillLevel.REDUCE_ONLY, "alice", "e2e")
    rows = await prom.await_for('ALERTS{alertname="ArbengineKillSwitchEngaged"}')
    (alert,) = await alerts(prom, "ArbengineKillSwitchEngaged")
    assert alert["state"] == "firing" and rows[0]["metric"]["severity"] == "critical"
    assert alert["annotations"]["summary"].endswith("kill switch at level 2")

    started = time.monotonic()
    running.exporter.stop()  # the daemon is gone: scrapes fail, up == 0
    await prom.await_for('up{job="arbengine"} == 0')
    rows = await prom.await_for('ALERTS{alertname="ArbengineDown", alertstate="pending"}')
    assert rows and time.monotonic() - started < 30
