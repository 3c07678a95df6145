"""Stopping with legs in flight, under the systemd unit's own sandbox.

The daemon runs under the seccomp rules of ``systemd/arbengine.service`` (as
tests/test_systemd_sandbox.py reproduces them) with busy polling on, and paper legs that
take 5 s: SIGTERM lands while an arb's legs are out, so the drain has something to wait
for; a second SIGTERM cuts it short and the daemon exits at once, still closing its
journal (which verifies; the open arb is left for the next start to recover).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from arbengine.journal import journal_files, verify
from tests.daemon_proc import DaemonProc, demo_config, wait
from tests.test_systemd_sandbox import sandboxed


def slow_legs_config(path: Path) -> Path:
    demo_config(path, metrics_port=0)
    text = path.read_text()
    text = text.replace("latency_ms: 5", "latency_ms: 5000")
    text = text.replace(
        "    leg_policy: unwind\n", "    leg_policy: unwind\n    order_timeout_s: 10\n"
    )
    text = text.replace(
        "  budget_ms: 100\n", "  budget_ms: 100\n  drain_s: 20\n  busy_poll: true\n"
    )
    assert text.count("latency_ms: 5000") == 2 and "busy_poll: true" in text
    path.write_text(text)
    return path


def test_a_second_sigterm_cuts_the_drain_short(tmp_path: Path) -> None:
    d = DaemonProc(tmp_path, slow_legs_config(tmp_path / "slow.yaml"), prefix=sandboxed([]))
    try:
        d.start()
        d.wait_ready()
        ready = d.event("ready")
        assert ready is not None and ready["busy_poll"] is True

        def in_flight() -> bool:
            entries = d.entries()
            done = {e["arb_id"] for e in entries if e["event"] == "arb_done"}
            return any(e["event"] == "arb" and e["arb_id"] not in done for e in entries)

        wait(in_flight, "an arb with its legs out", 60)
        d.send(signal.SIGTERM)
        wait(lambda: d.event("stopping"), "the stopping log line")
        stopping = d.event("stopping")
        assert stopping is not None and stopping["open_arbs"] >= 1
        notify = d.notify
        assert notify is not None
        wait(lambda: notify.has("STOPPING", "1"), "STOPPING=1")
        time.sleep(0.3)
        assert d.returncode is None  # draining: the legs take 5 s, the drain up to 20
        cut = time.monotonic()
        d.send(signal.SIGTERM)
        assert d.wait_exit(15) == 0
        assert time.monotonic() - cut < 10
        names = [e["event"] for e in d.events()]
        assert "second stop signal: cutting the drain short" in names
        assert "drain cut short" in names and names[-1] == "stopped"
        entries = d.entries()
        assert entries[-1]["event"] == "journal_close"
        checkpoint = [e for e in entries if e["event"] == "checkpoint"][-1]["state"]
        assert checkpoint["open_arbs"], "the open arb is checkpointed for the next start"
        assert verify(journal_files(d.journal)).clean
    finally:
        d.close()
