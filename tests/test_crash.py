"""kill -9 mid-trade, then a restart: the state comes back exactly and the journal verifies.

The trading process is a real subprocess (tests/crash_child.py) with simulated venues on
loopback, real feeds and the whole engine; the test kills it with SIGKILL, as a crash or the
OOM killer would, and starts it again on the same journal.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from arbengine.journal import journal_files, read_entries, verify
from tests.fills import balances_from_fills
from tests.sim_engine import INSTRUMENTS, START

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_S = 60.0


def start(mode: str, journal: Path, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.crash_child", mode, str(journal), str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_for(path: Path, proc: subprocess.Popen[bytes]) -> None:
    end = time.monotonic() + DEADLINE_S
    while not path.exists():
        if proc.poll() is not None:
            _, err = proc.communicate()
            raise AssertionError(f"child exited {proc.returncode}: {err.decode()[-2000:]}")
        assert time.monotonic() < end, f"{path.name} never appeared"
        time.sleep(0.01)


def kill9(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL


def finish(proc: subprocess.Popen[bytes]) -> None:
    try:
        _, err = proc.communicate(timeout=DEADLINE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0, err.decode()[-3000:]


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_kill_9_mid_trade_and_restart_recover_exactly(tmp_path: Path) -> None:
    journal, out = tmp_path / "journal", tmp_path / "out"
    out.mkdir()
    child = start("freeze", journal, out)
    wait_for(out / "state.json", child)
    kill9(child)
    before = load(out / "state.json")
    assert before["orders"], "the kill must come with legs in flight"

    child = start("resume", journal, out)
    finish(child)
    assert load(out / "recovered.json") == before

    log = list(read_entries(journal))
    result = verify(journal_files(journal))
    assert result.clean, result.describe()
    # The legs the killed process had out were asked about, and their paper venue (which
    # died with it) never saw them: rejected by the venue's answer, not by assumption.
    for cid in before["orders"]:
        done = [e for e in log if e["event"] == "done" and e["client_id"] == cid]
        assert len(done) == 1 and done[0]["reason"] == "unknown to venue", cid
        unknown = [e for e in log if e["event"] == "unknown" and e["client_id"] == cid]
        assert unknown and unknown[-1]["recovered"]
    final = load(out / "final.json")
    assert final["arbs"] >= before["arbs"] + 2  # trading resumed, counters carried over
    arb_ids = [e["arb_id"] for e in log if e["event"] == "arb"]
    assert len(arb_ids) == len(set(arb_ids))
    # Balances: the recovered-then-continued portfolio equals an independent sum of fills.
    rows = {(v, a): int(n) for v, a, n in final["portfolio"]["balances"]}
    assert rows == {
        k: v for k, v in balances_from_fills(journal, START, INSTRUMENTS).items() if v or k in rows
    }


def test_kill_9_at_a_random_moment_then_restart(tmp_path: Path) -> None:
    """No cooperation from the victim: killed while trading, whatever it was doing. What was
    durable is recovered, a torn tail is cut, the journal verifies and balances equal the
    journaled fills."""
    journal, out = tmp_path / "journal", tmp_path / "out"
    out.mkdir()
    child = start("trade", journal, out)
    wait_for(out / "trading", child)
    time.sleep(1.2)
    kill9(child)

    child = start("resume", journal, out)
    finish(child)
    recovered = load(out / "recovered.json")
    assert recovered["arbs"] >= 1
    result = verify(journal_files(journal))
    assert result.clean, result.describe()
    final = load(out / "final.json")
    rows = {(v, a): int(n) for v, a, n in final["portfolio"]["balances"]}
    assert rows == {
        k: v for k, v in balances_from_fills(journal, START, INSTRUMENTS).items() if v or k in rows
    }
    assert not final["orders"]
