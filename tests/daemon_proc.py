"""``arbengine run`` as a real subprocess, for the daemon's end-to-end tests.

``DaemonProc`` starts ``python -m arbengine run -c FILE`` with its own state directory,
control socket and a notify socket it listens on as systemd would (a bound AF_UNIX datagram
socket, ``$NOTIFY_SOCKET``), keeps the daemon's stderr (JSON log lines) in a file, and talks
to it through the real ``arbengine ctl``. Every wait is bounded and says what it waited for.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from arbengine.config import demo_text
from arbengine.journal import read_entries

ROOT = Path(__file__).resolve().parent.parent
START_S = 60.0  # to READY: the simulators, feeds and books on 2 shared cores
WAIT_S = 45.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def demo_config(path: Path, *, metrics_port: int | None = None, extra: str = "") -> Path:
    """The embedded demo as a file (what a reload re-reads), with the metrics port given
    (0: metrics off)."""
    text = demo_text() + extra
    if metrics_port is not None:
        if metrics_port:
            text += f"\nmetrics:\n  port: {metrics_port}\n"
        else:
            text += "\nmetrics:\n  enabled: false\n"
    path.write_text(text)
    return path


def wait(cond: Callable[[], object], what: str, timeout: float = WAIT_S) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.02)


class NotifyListener:
    """The service manager's notify socket: collects each datagram's fields."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[dict[str, str]] = []
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.messages.append(fields)

    def has(self, key: str, value: str | None = None) -> bool:
        return any(key in m and (value is None or m[key] == value) for m in list(self.messages))

    def index(self, key: str, value: str) -> int:
        return next(i for i, m in enumerate(list(self.messages)) if m.get(key) == value)

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()


class DaemonProc:
    """One daemon process on ``config`` with everything of its own under ``home``."""

    def __init__(
        self,
        home: Path,
        config: Path | None,
        *,
        env: Mapping[str, str] | None = None,
        notify: bool = True,
        state: Path | None = None,
        defaults: bool = False,
        prefix: Sequence[str] = (),
    ) -> None:
        """``state``: the state directory (another run's, to restart on its journal).
        ``defaults``: no STATE_DIRECTORY or control socket given: the daemon's own defaults
        (``env`` then says where HOME and XDG_RUNTIME_DIR are). ``prefix``: a command the
        daemon runs under (setpriv, ...)."""
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.prefix = list(prefix)
        self.state = home / "state" if state is None else state
        self.socket = home / "control.sock"
        self.journal = self.state / "journal"
        self.stderr_path = home / "stderr.log"
        self.notify = NotifyListener(home / "notify.sock") if notify else None
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "RUNTIME_DIRECTORY")
        }
        self.env["PYTHONPATH"] = str(ROOT)
        if defaults:
            for key in ("STATE_DIRECTORY", "XDG_STATE_HOME", "ARBENGINE_CONTROL_SOCKET"):
                self.env.pop(key, None)
        else:
            self.env.update(
                STATE_DIRECTORY=str(self.state), ARBENGINE_CONTROL_SOCKET=str(self.socket)
            )
        if self.notify is not None:
            self.env["NOTIFY_SOCKET"] = str(self.notify.path)
        self.env.update(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self._err: IO[bytes] | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, args: Sequence[str] = (), **popen: Any) -> DaemonProc:
        cmd = [*self.prefix, sys.executable, "-m", "arbengine", "run"]
        if self.config is not None:
            cmd += ["-c", str(self.config)]
        self._err = open(self.stderr_path, "ab")  # noqa: SIM115  (closed in wait_exit)
        self.proc = subprocess.Popen(
            [*cmd, *args],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._err,
            **popen,
        )
        return self

    def wait_ready(self, timeout: float = START_S) -> None:
        wait(lambda: self.event("ready") or self._dead(), "READY", timeout)
        assert self.event("ready"), f"daemon exited {self.returncode}: {self.stderr()[-3000:]}"

    def _dead(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def send(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout: float = WAIT_S) -> int:
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            tail = self.stderr()[-3000:]
            raise AssertionError(f"daemon did not exit in {timeout} s: {tail}") from None
        if self._err is not None:
            self._err.close()
            self._err = None
        return code

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = WAIT_S) -> int:
        self.send(sig)
        return self.wait_exit(timeout)

    def close(self) -> None:
        """Whatever state it is in: gone (for fixtures' teardown)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self._err is not None:
            self._err.close()
            self._err = None
        if self.notify is not None:
            self.notify.close()

    # -- what it says ----------------------------------------------------------------------

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.stderr().splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
        return out

    def event(self, name: str) -> dict[str, Any] | None:
        return next((e for e in reversed(self.events()) if e.get("event") == name), None)

    def entries(self) -> list[dict[str, Any]]:
        return list(read_entries(self.journal))

    def ctl(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "arbengine", "ctl", "--socket", str(self.socket), *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def status(self) -> dict[str, Any]:
        done = self.ctl("status", "--json")
        assert done.returncode == 0, done.stderr
        data: dict[str, Any] = json.loads(done.stdout)
        return data


def filled_arbs(entries: Sequence[Mapping[str, Any]]) -> set[str]:
    """Arb ids whose both legs filled (an arb_done with no residual and fills on it)."""
    filled: dict[str, int] = {}
    for e in entries:
        if e["event"] == "fill" and e.get("arb_id"):
            filled[e["arb_id"]] = filled.get(e["arb_id"], 0) + 1
    return {a for a, n in filled.items() if n >= 2}


def stop_all(sig: signal.Signals, *procs: DaemonProc) -> None:
    for p in procs:
        if p.returncode is None:
            p.send(sig)
