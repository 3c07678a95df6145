"""On a terminal, ``arbengine run`` shows plain lifecycle lines and a status line rewritten
in place (books live, opportunities, trades, PnL, tick-to-order p50/p99), not JSON."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.daemon_proc import ROOT, demo_config

STATUS = re.compile(
    r"\r\x1b\[Kbooks 2/2 live \| opportunities \d+ \| trades \d+ \| pnl -?[\d.]+ USDT \| "
    r"tick-to-order p50 \S+ p99 \S+"
)


def test_a_terminal_gets_a_status_line_rewritten_in_place(tmp_path: Path) -> None:
    config = demo_config(tmp_path / "demo.yaml", metrics_port=0)
    config.write_text(config.read_text().replace("interval_s: 1\n", "interval_s: 0.2\n"))
    master, slave = pty.openpty()
    env = {
        **{k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"},
        "STATE_DIRECTORY": str(tmp_path / "state"),
        "ARBENGINE_CONTROL_SOCKET": str(tmp_path / "control.sock"),
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "arbengine", "run", "-c", str(config)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=slave,
    )
    os.close(slave)
    out = b""
    try:
        end = time.monotonic() + 60
        while len(STATUS.findall(out.decode(errors="replace"))) < 3:
            assert time.monotonic() < end, out.decode(errors="replace")[-2000:]
            assert proc.poll() is None, out.decode(errors="replace")[-2000:]
            if select.select([master], [], [], 0.2)[0]:
                out += os.read(master, 65536)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(30) == 0
        while select.select([master], [], [], 0.2)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the other end closed
                break
            if not chunk:
                break
            out += chunk
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    text = out.decode(errors="replace")
    lines = text.replace("\r\x1b[K", "\n").splitlines()
    assert not any(line.startswith("{") for line in lines), "no JSON on a terminal"
    assert any(re.match(r"\d\d:\d\d:\d\d ready control_socket=", line) for line in lines), text
    assert any(re.match(r"\d\d:\d\d:\d\d stopped journal_seq=\d+", line) for line in lines), text
    assert text.rstrip(" ").endswith("\n")  # the prompt does not land on the status line
