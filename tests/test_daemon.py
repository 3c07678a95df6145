"""``arbengine run`` end to end: a real daemon subprocess on the demo config.

One daemon serves the module's tests in order (starting one costs seconds on 2 shared
cores): it sends READY to a notify socket bound here, trades on paper, answers every ctl
command, reloads on SIGHUP, and stops cleanly on SIGTERM with a journal that verifies. The
simulated venues, feeds, control socket and notify socket are all real, on loopback.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from arbengine.journal import journal_files, verify
from tests.daemon_proc import ROOT, DaemonProc, demo_config, filled_arbs, free_port, wait
from tests.prometheus_server import PrometheusServer
from tests.test_prometheus_e2e import (
    RULES,
    dashboard_queries,
    expand,
    label_values,
    metric_names,
    variable_queries,
)

TRADE_S = 45.0  # the demo's first dislocation is seconds away; 2 shared cores


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProc]:
    home = tmp_path_factory.mktemp("daemon")
    d = DaemonProc(
        home,
        demo_config(home / "arbengine.yaml", metrics_port=free_port()),
        env={"WATCHDOG_USEC": "1000000"},  # as WatchdogSec=1s would: a ping every 0.5 s
    )
    d.start()
    try:
        d.wait_ready()
        yield d
    finally:
        d.close()


def test_ready_after_status_lines_then_trades(daemon: DaemonProc) -> None:
    notify = daemon.notify
    assert notify is not None
    wait(lambda: notify.has("READY", "1"), "READY=1 on the notify socket")
    ready = notify.index("READY", "1")
    before = [m["STATUS"] for m in notify.messages[:ready] if "STATUS" in m]
    assert any(s.startswith("waiting for LIVE books: ") for s in before), before
    assert notify.messages[ready].get("STATUS", "").startswith("trading: 2/2 books live")
    wait(lambda: notify.has("WATCHDOG", "1"), "WATCHDOG=1 pings")
    wait(
        lambda: any(m.get("STATUS", "").startswith("books 2/2 live | ") for m in notify.messages),
        "the status summary as STATUS=",
    )
    wait(lambda: filled_arbs(daemon.entries()), "an arb with both legs filled", TRADE_S)
    status = daemon.status()
    assert status["counters"]["executor"]["arbs"] >= 1
    assert [b["state"] for b in status["books"]] == ["LIVE", "LIVE"]
    names = [e["event"] for e in daemon.events()]
    for name in ("starting", "books live", "reconciled", "ready"):
        assert name in names
    # Lifecycle only: no line per order or fill.
    assert not {"order", "fill", "arb"} & set(names)


def test_a_real_prometheus_scrapes_it_and_runs_the_dashboard_and_rules(
    daemon: DaemonProc, tmp_path: Path
) -> None:
    metrics = daemon.event("metrics")
    assert metrics is not None
    target = metrics["url"].removeprefix("http://").removesuffix("/metrics")
    with PrometheusServer([target], tmp_path / "prom", rule_files=[RULES]) as prom:
        for expr in (
            'up{job="arbengine"} == 1',
            "sum(arbengine_arbs_total) > 0",
            "sum(arbengine_fills_total) > 0",
            "sum(arbengine_book_live) == 2",
            'arbengine_build_info{mode="paper"} == 1',
            "arbengine_journal_fsync_seconds_count > 0",
        ):
            prom.wait_for(expr, timeout=45)
        referenced: set[str] = set()
        failures: list[str] = []
        queries = dashboard_queries()
        assert len(queries) >= 60
        for where, expr in queries:
            referenced |= metric_names(expr)
            try:
                prom.query(expand(expr))
            except Exception as exc:
                failures.append(f"{where}: {exc}")
        for name, definition in variable_queries():
            referenced |= metric_names(definition)
            if not prom.query(expand(label_values(definition))):
                failures.append(f"variable {name}: no values from {definition}")
        prom.wait_for("vector(1)")  # rules evaluated at least once more
        groups = prom.api("rules")["groups"]
        for rule in (r for g in groups for r in g["rules"]):
            referenced |= metric_names(rule["query"])
            if rule["health"] != "ok" or rule.get("lastError"):
                failures.append(f"rule {rule['name']}: {rule.get('lastError')}")
        assert not failures, "\n".join(failures)
        missing = [n for n in sorted(referenced) if not prom.query(f'count({{__name__="{n}"}})')]
        assert not missing, f"metrics referenced but not exported by the daemon: {missing}"


def test_ctl_answers_every_command(daemon: DaemonProc) -> None:
    text = daemon.ctl("status")
    assert text.returncode == 0 and "btc-usdt" in text.stdout, text.stderr
    steps = [
        (("pause", "--reason", "test pause"), "kill switch HALT_NEW (was NONE)"),
        (("resume", "--reason", "test over"), "kill switch NONE (was HALT_NEW)"),
        (("kill", "--level", "reduce", "--reason", "t"), "kill switch REDUCE_ONLY (was NONE)"),
        (("resume", "--reason", "t"), "kill switch NONE (was REDUCE_ONLY)"),
        (("flatten", "--reason", "t"), "kill switch FLATTEN (was NONE)"),
        (("resume", "--reason", "t"), "kill switch NONE (was FLATTEN)"),
    ]
    for args, reply in steps:
        done = daemon.ctl(*args, "--by", "tester")
        assert (done.returncode, done.stdout.strip()) == (0, reply), done.stderr
    refused = daemon.ctl("resume", "--reason", "again", "--by", "tester")
    assert refused.returncode == 1
    assert refused.stderr.strip() == "error: nothing to resume: not paused or killed"
    kills = [e for e in daemon.entries() if e["event"] == "kill_switch"]
    assert [k["level"] for k in kills[-6:]] == [
        "HALT_NEW",
        "NONE",
        "REDUCE_ONLY",
        "NONE",
        "FLATTEN",
        "NONE",
    ]
    assert all(k["by"].startswith("tester (uid ") for k in kills[-6:])
    assert daemon.status()["risk"]["kill_level"] == "NONE"


def _pair(daemon: DaemonProc) -> dict[str, object]:
    pairs = daemon.status()["pairs"]
    assert len(pairs) == 1
    pair: dict[str, object] = pairs[0]
    return pair


def test_sighup_reloads_what_may_change_and_refuses_the_rest(daemon: DaemonProc) -> None:
    assert daemon.config is not None
    original = daemon.config.read_text()
    assert _pair(daemon)["min_edge_bps"] == "5"
    edited = original.replace('min_edge_bps: "5"', 'min_edge_bps: "6"').replace(
        'latency_ms: 5\n      balances: {BTC: "2"', 'latency_ms: 7\n      balances: {BTC: "2"', 1
    )
    assert edited.count('min_edge_bps: "6"') == 1 and "latency_ms: 7" in edited
    daemon.config.write_text(edited)
    reloads = len([e for e in daemon.events() if e["event"] == "reloaded"])
    daemon.send(signal.SIGHUP)
    wait(
        lambda: len([e for e in daemon.events() if e["event"] == "reloaded"]) > reloads,
        "the reload's log line",
    )
    ev = daemon.event("reloaded")
    assert ev is not None
    assert ev["by"] == "SIGHUP"
    assert ev["changed"] == ["pairs[btc-usdt].min_edge_bps: 5 -> 6"]
    assert ev["refused"] == ["venues.binance.paper.latency_ms: not reloadable, restart to change"]
    assert _pair(daemon)["min_edge_bps"] == "6"
    entry = [e for e in daemon.entries() if e["event"] == "config_reload"][-1]
    assert entry["by"] == "SIGHUP" and entry["ok"] is True
    assert entry["applied"] == {"pairs[btc-usdt].min_edge_bps": ["5", "6"]}
    assert entry["refused"] == ["venues.binance.paper.latency_ms"]
    notify = daemon.notify
    assert notify is not None
    assert notify.has("RELOADING", "1")

    # A broken file changes nothing: every problem reported, the running config kept.
    daemon.config.write_text(edited.replace('max_size: "0.01"', "max_size: 0.01"))
    done = daemon.ctl("reload", "--by", "tester")
    assert done.returncode == 1
    lines = done.stdout.strip().splitlines()
    assert lines and all(line.startswith(f"refused: {daemon.config}:") for line in lines), lines
    assert "pairs[0].max_size" in done.stdout
    assert _pair(daemon)["min_edge_bps"] == "6"

    # Back to the original: applied through ctl, as the operator.
    daemon.config.write_text(original)
    done = daemon.ctl("reload", "--by", "tester", "--reason", "undo")
    # The running config never took the latency change: only the edge differs from it.
    assert (done.returncode, done.stdout) == (0, "changed: pairs[btc-usdt].min_edge_bps: 6 -> 5\n")
    assert _pair(daemon)["min_edge_bps"] == "5"
    entry = [e for e in daemon.entries() if e["event"] == "config_reload"][-1]
    assert entry["by"].startswith("tester (uid ") and entry["reason"] == "undo"


def test_it_keeps_trading_after_the_reload(daemon: DaemonProc) -> None:
    before = len(filled_arbs(daemon.entries()))
    wait(lambda: len(filled_arbs(daemon.entries())) > before, "a new filled arb", TRADE_S)


def test_a_second_daemon_on_the_same_journal_or_socket_exits_1(
    daemon: DaemonProc, tmp_path: Path
) -> None:
    assert daemon.config is not None
    same_journal = DaemonProc(tmp_path / "a", daemon.config, state=daemon.state, notify=False)
    same_socket = DaemonProc(
        tmp_path / "b", daemon.config, env={"ARBENGINE_CONTROL_SOCKET": str(daemon.socket)}
    )
    try:
        for other, message in (
            (same_journal, f"journal {daemon.journal}: {daemon.journal} is in use by another"),
            (same_socket, f"control socket {daemon.socket}: a daemon is already listening"),
        ):
            other.start()
            assert other.wait_exit() == 1
            failed = other.event("startup failed")
            assert failed is not None and failed["error"].startswith(message), other.stderr()
            assert other.notify is None or not other.notify.has("READY")
        assert daemon.returncode is None and daemon.socket.exists()
        assert daemon.status()["risk"]["kill_level"] == "NONE"
    finally:
        same_journal.close()
        same_socket.close()


def test_sigterm_stops_cleanly_and_the_journal_verifies(daemon: DaemonProc) -> None:
    assert daemon.stop(signal.SIGTERM) == 0
    notify = daemon.notify
    assert notify is not None
    assert notify.has("STOPPING", "1")
    names = [e["event"] for e in daemon.events()]
    assert names[-1] == "stopped" and "stopping" in names
    entries = daemon.entries()
    assert entries[-1]["event"] == "journal_close"
    checkpoint = [e for e in entries if e["event"] == "checkpoint"][-1]
    assert checkpoint["state"]["open_arbs"] == []
    assert checkpoint["state"]["kill"]["level"] == "NONE"  # the stop's halt was lowered
    halts = [e for e in entries if e["event"] == "kill_switch" and e["by"] == "daemon"]
    assert [h["level"] for h in halts[-2:]] == ["HALT_NEW", "NONE"]
    assert verify(journal_files(daemon.journal)).clean
    cli = subprocess.run(
        [sys.executable, "-m", "arbengine", "journal", "verify", str(daemon.journal)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert cli.returncode == 0 and cli.stdout.startswith("ok: "), cli.stdout
    assert not daemon.socket.exists()


def test_a_bad_config_exits_1_with_one_line_per_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    demo_config(bad)
    bad.write_text(
        bad.read_text()
        .replace('max_size: "0.01"', "max_size: 0.01")
        .replace("kind: okx", "kind: okex")
    )
    d = DaemonProc(tmp_path, bad, notify=False)
    d.start()
    assert d.wait_exit() == 1
    lines = d.stderr().splitlines()
    assert len(lines) == 2, lines
    assert all(line.startswith(f"{bad}:") for line in lines)
    assert any("venues.okx.kind" in line for line in lines)
    assert any("pairs[0].max_size" in line for line in lines)
    assert not d.state.exists() and not d.socket.exists()  # nothing started


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "error: arbengine: unrecognized arguments: --bogus"),
        (["-c"], "error: arbengine run: argument -c/--config: expected one argument"),
    ],
)
def test_a_bad_command_line_exits_2(args: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "arbengine", "run", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stderr.strip()) == (2, message)


def test_a_missing_config_file_exits_1(tmp_path: Path) -> None:
    d = DaemonProc(tmp_path, tmp_path / "nope.yaml", notify=False)
    d.start()
    assert d.wait_exit() == 1
    (line,) = d.stderr().splitlines()
    assert str(tmp_path / "nope.yaml") in line
