"""kill -9 of a trading ``arbengine run``, then a restart on the same journal: it resumes
from exactly what the journal holds, the journal still verifies, and new arbs fire.

The daemon is a real subprocess on the demo config (simulated venues on loopback, which die
with it, as a paper venue's memory does); SIGKILL gives it no chance to tidy up.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from arbengine.config import build, load
from arbengine.journal import journal_files, verify
from arbengine.recovery import recover
from tests.daemon_proc import DaemonProc, demo_config, filled_arbs, wait
from tests.fills import balances_from_fills

TRADE_S = 60.0


def numbers(value: Any) -> Any:
    """A snapshot with every integer as an int (the journal writes big ones as text)."""
    if isinstance(value, dict):
        return {k: numbers(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [numbers(v) for v in value]
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return value


def test_kill_9_then_a_restart_resumes_from_the_journal(tmp_path: Path) -> None:
    config_path = demo_config(tmp_path / "arbengine.yaml", metrics_port=0)
    config = load(config_path)
    first = DaemonProc(tmp_path / "first", config_path)
    second: DaemonProc | None = None
    try:
        first.start()
        first.wait_ready()
        wait(lambda: len(filled_arbs(first.entries())) >= 2, "two filled arbs", TRADE_S)
        first.send(signal.SIGKILL)
        assert first.wait_exit() == -signal.SIGKILL
        before = {e["arb_id"] for e in first.entries() if e["event"] == "arb"}

        # What the journal holds, rebuilt here by the recovery code on its own.
        expected = recover(
            first.journal,
            build.instruments(config).values(),
            portfolio=lambda: build.portfolio(config),
        )
        assert expected.checkpoint_seq > 0

        second = DaemonProc(tmp_path / "second", config_path, state=first.state)
        second.start()
        second.wait_ready()
        recovered = second.event("recovered")
        assert recovered is not None and recovered["from_checkpoint"] == expected.checkpoint_seq
        entries = second.entries()
        at = next(i for i, e in enumerate(entries) if e["event"] == "recovered")
        assert entries[at]["last_seq"] == expected.last_seq
        # The checkpoint the restart wrote on adopting: the journal's state, exactly.
        resumed = next(e for e in entries[at:] if e["event"] == "checkpoint")["state"]
        assert numbers(resumed["portfolio"]) == numbers(expected.portfolio.snapshot())
        assert numbers(resumed["exposure"]) == numbers(dict(expected.exposure))
        wait(
            lambda: filled_arbs(second.entries()) - before,
            "a new arb filled after the restart",
            TRADE_S,
        )
        assert second.stop(signal.SIGTERM) == 0
        result = verify(journal_files(first.journal))
        assert result.clean, result.describe()
        entries = second.entries()
        # The legs the killed daemon had out were resolved with their (paper) venue.
        for arb_id in expected.arbs:
            done = [e for e in entries if e["event"] == "done" and e["arb_id"] == arb_id]
            assert done, arb_id
        arb_ids = [e["arb_id"] for e in entries if e["event"] == "arb"]
        assert len(arb_ids) == len(set(arb_ids))  # no id reused across the restart
        final = [e for e in entries if e["event"] == "checkpoint"][-1]["state"]["portfolio"]
        rows = {(v, a): int(n) for v, a, n in final["balances"]}
        implied = balances_from_fills(
            first.journal, build.starting_balances(config), build.instruments(config).values()
        )
        assert rows == {k: v for k, v in implied.items() if v or k in rows}
    finally:
        first.close()
        if second is not None:
            second.close()
