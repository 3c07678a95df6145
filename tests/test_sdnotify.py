"""sd_notify over a real AF_UNIX datagram socket, as systemd listens for it.

The receiving end here is what PID 1 does for a Type=notify service: a SOCK_DGRAM socket at a
path or an abstract name, reading one message per datagram (with the sender's credentials,
which NotifyAccess=main checks against the main PID).
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from arbengine.loop_health import LoopLag
from arbengine.sdnotify import HealthCheck, Notifier, Watchdog
from tests.waiting import until

ROOT = Path(__file__).resolve().parents[1]


class Receiver:
    """The service manager's end: a bound datagram socket, read without blocking."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(address)
        self.sock.setblocking(False)

    def drain(self) -> list[str]:
        out: list[str] = []
        while True:
            try:
                out.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return out

    def recv(self, timeout: float = 5.0) -> tuple[str, int]:
        """One message and the sender's pid (from SCM_CREDENTIALS)."""
        self.sock.settimeout(timeout)
        try:
            data, ancdata, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        finally:
            self.sock.setblocking(False)
        pid = next(
            struct.unpack("iII", cdata)[0]
            for level, kind, cdata in ancdata
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS
        )
        return data.decode(), pid

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # AF_UNIX paths are limited to 107 bytes; pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="sdn") as name:
        yield Path(name)


@pytest.fixture
def path_receiver(short_dir: Path) -> Iterator[tuple[str, Receiver]]:
    path = str(short_dir / "notify")
    receiver = Receiver(path)
    yield path, receiver
    receiver.close()


@pytest.fixture
def abstract_receiver() -> Iterator[tuple[str, Receiver]]:
    name = f"arbengine-test-{os.getpid()}-{time.monotonic_ns()}"
    receiver = Receiver("\0" + name)
    yield "@" + name, receiver
    receiver.close()


@pytest.fixture(params=["path", "abstract"])
def receiver(
    request: pytest.FixtureRequest,
    path_receiver: tuple[str, Receiver],
    abstract_receiver: tuple[str, Receiver],
) -> tuple[str, Receiver]:
    return path_receiver if request.param == "path" else abstract_receiver


def test_every_message_arrives_exactly(receiver: tuple[str, Receiver]) -> None:
    address, rx = receiver
    notifier = Notifier.from_env({"NOTIFY_SOCKET": address})
    assert notifier.enabled
    assert notifier.ready()
    assert notifier.ready("trading 2 pairs")
    assert notifier.status("books live 4/4, 12 trades")
    assert notifier.watchdog()
    assert notifier.stopping("draining 1 leg")
    assert notifier.stopping()
    assert notifier.extend_timeout(12.5)
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert notifier.reloading("reloading config")
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.close()

    messages = rx.drain()
    assert messages[:7] == [
        "READY=1",
        "READY=1\nSTATUS=trading 2 pairs",
        "STATUS=books live 4/4, 12 trades",
        "WATCHDOG=1",
        "STOPPING=1\nSTATUS=draining 1 leg",
        "STOPPING=1",
        "EXTEND_TIMEOUT_USEC=12500000",
    ]
    reload_fields = dict(line.split("=", 1) for line in messages[7].split("\n"))
    assert reload_fields.keys() == {"RELOADING", "MONOTONIC_USEC", "STATUS"}
    assert reload_fields["RELOADING"] == "1"
    assert reload_fields["STATUS"] == "reloading config"
    assert before <= int(reload_fields["MONOTONIC_USEC"]) <= after
    assert len(messages) == 8


def test_text_cannot_inject_fields(path_receiver: tuple[str, Receiver]) -> None:
    address, rx = path_receiver
    notifier = Notifier(address)
    assert notifier.status("pair btc-usdt\nREADY=1\r\nWATCHDOG=trigger")
    assert rx.drain() == ["STATUS=pair btc-usdt READY=1 WATCHDOG=trigger"]


def test_without_notify_socket_every_call_is_a_quiet_no_op() -> None:
    notifier = Notifier.from_env({"WATCHDOG_USEC": "2000000"})
    assert not notifier.enabled
    assert notifier.watchdog_usec == 2_000_000
    assert notifier.ready("x") and notifier.status("y") and notifier.watchdog()
    assert notifier.stopping() and notifier.reloading() and notifier.extend_timeout(1)
    assert notifier.last_error is None
    # No manager, no watchdog to feed, whatever WATCHDOG_USEC says.
    assert not Watchdog(notifier, LoopLag()).enabled


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "10000000"}, 10_000_000),
        ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}, 10_000_000),
        ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "main"}, None),
        ({"WATCHDOG_USEC": "ten"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({}, None),
    ],
    ids=["usec", "our-pid", "other-pid", "bad-pid", "bad-usec", "zero", "negative", "unset"],
)
def test_watchdog_period_is_taken_only_when_it_is_ours(
    env: dict[str, str], expected: int | None
) -> None:
    environ = {"NOTIFY_SOCKET": "/run/systemd/notify", **env}
    notifier = Notifier.from_env(environ)
    assert notifier.watchdog_usec == expected
    watchdog = Watchdog(notifier, LoopLag())
    assert watchdog.enabled is (expected is not None)
    assert watchdog.interval == (None if expected is None else expected / 2_000_000)


def test_unset_removes_the_variables_for_children() -> None:
    environ = {
        "NOTIFY_SOCKET": "@x",
        "WATCHDOG_USEC": "4000000",
        "WATCHDOG_PID": str(os.getpid()),
        "PATH": "/usr/bin",
    }
    notifier = Notifier.from_env(environ, unset=True)
    assert environ == {"PATH": "/usr/bin"}
    assert notifier.enabled and notifier.watchdog_usec == 4_000_000


def test_failed_sends_return_false_with_a_reason_and_recover(short_dir: Path) -> None:
    path = str(short_dir / "notify")
    notifier = Notifier(path)
    assert not notifier.ready()
    assert notifier.last_error == f"notify socket {path}: No such file or directory"
    rx = Receiver(path)  # the manager comes (back)
    try:
        assert notifier.ready()
        assert notifier.last_error is None
        assert rx.drain() == ["READY=1"]
    finally:
        rx.close()

    odd = Notifier("vsock:2:9999")
    assert odd.enabled
    assert not odd.ready()
    assert odd.last_error == "NOTIFY_SOCKET 'vsock:2:9999' is not an AF_UNIX address"


def test_a_full_manager_queue_fails_the_send_instead_of_blocking(
    path_receiver: tuple[str, Receiver],
) -> None:
    address, rx = path_receiver
    notifier = Notifier(address)
    started = time.monotonic()
    sent = 0
    # Nobody reads: the receive queue fills (net.unix.max_dgram_qlen, the buffer size).
    while notifier.status("x" * 512):
        sent += 1
        assert sent < 100_000, "the queue never filled"
    assert time.monotonic() - started < 5.0
    assert sent > 0
    assert notifier.last_error == f"notify socket {address}: Resource temporarily unavailable"
    assert len(rx.drain()) == sent


def test_a_child_process_notifies_as_itself(path_receiver: tuple[str, Receiver]) -> None:
    """What the daemon does under systemd: from_env in the main process, READY from its pid
    (NotifyAccess=main accepts only that pid), and nothing inherited by its children."""
    address, rx = path_receiver
    code = (
        "import os\n"
        "from arbengine.sdnotify import Notifier\n"
        "n = Notifier.from_env(unset=True)\n"
        "assert n.ready('up'), n.last_error\n"
        "print(os.environ.get('NOTIFY_SOCKET'), n.watchdog_usec)\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "NOTIFY_SOCKET": address,
        "WATCHDOG_USEC": "3000000",
    }
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert out.decode().split() == ["None", "3000000"]
    message, pid = rx.recv()
    assert message == "READY=1\nSTATUS=up"
    assert pid == proc.pid


# -- the watchdog --------------------------------------------------------------------------

INTERVAL = 0.05  # WATCHDOG_USEC=100000: a ping every 50 ms
MAX_LAG = 0.25


def watched(
    address: str, changes: list[str | None], checks: Sequence[HealthCheck] = ()
) -> tuple[Watchdog, LoopLag]:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "100000"})
    lag = LoopLag(interval=0.01, window=5.0)
    watchdog = Watchdog(
        notifier,
        lag,
        max_lag=MAX_LAG,
        checks=checks,
        on_change=changes.append,
    )
    return watchdog, lag


async def test_a_healthy_loop_pings_at_half_the_period(
    path_receiver: tuple[str, Receiver],
) -> None:
    address, rx = path_receiver
    changes: list[str | None] = []
    watchdog, lag = watched(address, changes)
    assert watchdog.interval == INTERVAL
    assert watchdog.start()
    assert lag.running  # the watchdog starts the lag monitor it relies on
    started = time.monotonic()
    await asyncio.sleep(0.5)
    elapsed = time.monotonic() - started
    watchdog.stop()
    lag.stop()
    pings = rx.drain()
    assert set(pings) == {"WATCHDOG=1"}
    # One at start, then one per interval (a loaded machine may run a little behind).
    assert elapsed / INTERVAL * 0.5 <= len(pings) <= elapsed / INTERVAL + 2
    assert watchdog.pings == len(pings)
    assert watchdog.withheld == 0 and changes == [] and watchdog.reason is None


async def test_a_blocked_loop_stops_the_pings_until_it_recovers(
    path_receiver: tuple[str, Receiver],
) -> None:
    address, rx = path_receiver
    changes: list[str | None] = []
    watchdog, lag = watched(address, changes)
    watchdog.start()
    await until(lambda: watchdog.pings >= 3)
    rx.drain()

    time.sleep(0.6)  # a callback that blocks the loop
    assert rx.drain() == []  # nothing can ping while the loop is stuck
    assert lag.current() >= 0.55  # the stall is visible while it lasts

    await until(lambda: watchdog.withheld >= 1)
    assert changes[0] == "event loop lag over 0.25 s"
    assert lag.max() >= 0.55
    assert lag.samples > 0
    await until(lambda: changes[-1] is None, why=lambda: changes)  # pings resume
    await until(lambda: len(rx.drain()) > 0)
    assert changes == ["event loop lag over 0.25 s", None]
    watchdog.stop()
    lag.stop()


async def test_a_failing_health_check_stops_the_pings(
    path_receiver: tuple[str, Receiver],
) -> None:
    address, rx = path_receiver
    done = threading.Event()
    writer = threading.Thread(target=done.wait, name="journal-writer")
    writer.start()

    def journal_writer() -> str | None:
        return None if writer.is_alive() else "journal writer thread dead"

    changes: list[str | None] = []
    watchdog, lag = watched(address, changes, checks=(journal_writer,))
    watchdog.start()
    await until(lambda: watchdog.pings >= 2)
    done.set()
    writer.join()
    await until(lambda: watchdog.reason is not None)
    pings = watchdog.pings
    rx.drain()
    await asyncio.sleep(INTERVAL * 4)
    assert rx.drain() == []
    assert watchdog.pings == pings
    assert watchdog.withheld >= 3
    assert changes == ["journal writer thread dead"]
    watchdog.stop()
    lag.stop()


async def test_a_check_that_raises_counts_as_unhealthy(
    path_receiver: tuple[str, Receiver],
) -> None:
    address, rx = path_receiver

    def disk_space() -> str | None:
        raise OSError("statvfs failed")

    changes: list[str | None] = []
    watchdog, lag = watched(address, changes, checks=(disk_space,))
    watchdog.start()
    await until(lambda: watchdog.withheld >= 2)
    assert watchdog.pings == 0 and rx.drain() == []
    assert changes == ["health check disk_space failed: OSError: statvfs failed"]
    watchdog.stop()
    lag.stop()


async def test_send_failures_are_reported_once_and_pings_resume(short_dir: Path) -> None:
    path = str(short_dir / "notify")
    changes: list[str | None] = []
    watchdog, lag = watched(path, changes)
    watchdog.start()
    await until(lambda: watchdog.withheld == 0 and len(changes) == 1)
    await asyncio.sleep(INTERVAL * 3)  # more failed sends, no more reports
    assert changes == [f"notify socket {path}: No such file or directory"]
    assert watchdog.pings == 0
    rx = Receiver(path)
    try:
        await until(lambda: watchdog.pings >= 2)
        assert changes == [f"notify socket {path}: No such file or directory", None]
        assert set(rx.drain()) == {"WATCHDOG=1"}
    finally:
        rx.close()
        watchdog.stop()
        lag.stop()


async def test_without_a_watchdog_period_nothing_is_scheduled(
    path_receiver: tuple[str, Receiver],
) -> None:
    address, rx = path_receiver
    lag = LoopLag(interval=0.01)
    watchdog = Watchdog(Notifier(address), lag)
    assert not watchdog.enabled
    assert watchdog.start() is False
    await asyncio.sleep(0.05)
    assert not lag.running and rx.drain() == [] and watchdog.pings == 0


def test_bad_watchdog_settings_are_refused() -> None:
    notifier = Notifier("@x", watchdog_usec=1_000_000)
    with pytest.raises(ValueError, match="Watchdog interval must be > 0 s, got 0"):
        Watchdog(notifier, LoopLag(), interval=0)
    with pytest.raises(ValueError, match="Watchdog max_lag must be > 0 s, got -1"):
        Watchdog(notifier, LoopLag(), max_lag=-1)
