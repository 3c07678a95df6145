"""The systemd notify protocol, spoken directly: no libsystemd, no extra dependency.

A service of ``Type=notify`` tells the service manager about itself by sending datagrams of
newline-separated ``KEY=VALUE`` fields to the AF_UNIX socket named in ``$NOTIFY_SOCKET``: a
path, or an abstract name written with a leading ``@``. ``READY=1`` ends startup,
``STATUS=`` is the line ``systemctl status`` shows, ``WATCHDOG=1`` feeds the watchdog,
``STOPPING=1`` starts shutdown and ``RELOADING=1`` with ``MONOTONIC_USEC=`` starts a reload
(ended by ``READY=1``). The manager gives the watchdog period in ``$WATCHDOG_USEC``, meant
only for the process named in ``$WATCHDOG_PID`` when that is set.

``Watchdog`` sends ``WATCHDOG=1`` from the event loop itself, and only while the loop's lag
(``loop_health.LoopLag``) is under a threshold and the extra health checks pass: a stuck loop
or a dead writer thread stops the pings, and the manager restarts the service.

Without ``$NOTIFY_SOCKET`` (a terminal, a test) every call is a no-op that reports success.
A failed send is never fatal: it returns False and keeps the reason in ``last_error`` for the
caller to log once; sends never block (a full receive queue is a failure, not a stall of the
event loop).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence

from arbengine.loop_health import LoopLag

_ENV_KEYS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def _address(raw: str) -> str | None:
    """The socket address for ``$NOTIFY_SOCKET``, or None when it is not an AF_UNIX one."""
    if raw.startswith("/"):
        return raw
    if raw.startswith("@") and len(raw) > 1:
        return "\0" + raw[1:]
    return None


def _one_line(text: str) -> str:
    # A newline would end the field and start another one the manager would obey
    # ("STATUS=x\nREADY=1"), so text from elsewhere is folded onto one line.
    return " ".join(text.splitlines())


class Notifier:
    """Sends notify messages to one socket address (or nowhere, when ``address`` is None)."""

    def __init__(self, address: str | None, *, watchdog_usec: int | None = None) -> None:
        self._raw = address
        self._address = _address(address) if address is not None else None
        self._watchdog_usec = watchdog_usec if watchdog_usec and watchdog_usec > 0 else None
        self._sock: socket.socket | None = None
        self.last_error: str | None = None
        if address is not None and self._address is None:
            self.last_error = f"NOTIFY_SOCKET {address!r} is not an AF_UNIX address"

    @classmethod
    def from_env(
        cls, environ: MutableMapping[str, str] | None = None, *, unset: bool = False
    ) -> Notifier:
        """A notifier for what the service manager put in the environment.

        ``$WATCHDOG_USEC`` is taken only when ``$WATCHDOG_PID`` is unset or names this
        process (the manager's way of saying which process it watches); a malformed value
        means no watchdog. ``unset`` removes the three variables so that child processes do
        not believe they are the service.
        """
        env: MutableMapping[str, str] = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET") or None
        watchdog_usec = _watchdog_usec(env)
        if unset:
            for key in _ENV_KEYS:
                env.pop(key, None)
        return cls(address, watchdog_usec=watchdog_usec)

    @property
    def enabled(self) -> bool:
        """Whether a service manager is listening (False: every call is a no-op)."""
        return self._raw is not None

    @property
    def watchdog_usec(self) -> int | None:
        """The watchdog period the manager enforces, in microseconds, or None."""
        return self._watchdog_usec

    def notify(self, fields: Mapping[str, str]) -> bool:
        """Send ``fields`` as one datagram; True when sent (or when nobody listens)."""
        if self._raw is None:
            return True
        if self._address is None:
            return False  # last_error already says why
        message = "\n".join(f"{key}={_one_line(value)}" for key, value in fields.items())
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message.encode(), socket.MSG_DONTWAIT, self._address)
        except OSError as exc:
            self.last_error = f"notify socket {self._raw}: {exc.strerror or exc}"
            return False
        self.last_error = None
        return True

    def ready(self, status: str | None = None) -> bool:
        """Startup (or a reload) is complete."""
        return self.notify(_with_status({"READY": "1"}, status))

    def status(self, text: str) -> bool:
        """The one-line state ``systemctl status`` shows."""
        return self.notify({"STATUS": text})

    def watchdog(self) -> bool:
        """Tell the watchdog the service is alive."""
        return self.notify({"WATCHDOG": "1"})

    def stopping(self, status: str | None = None) -> bool:
        """Shutdown has begun."""
        return self.notify(_with_status({"STOPPING": "1"}, status))

    def reloading(self, status: str | None = None) -> bool:
        """A reload has begun; ``ready()`` ends it.

        MONOTONIC_USEC (CLOCK_MONOTONIC, what the manager compares against) lets the manager
        tell this reload from a stale message.
        """
        now_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        fields = {"RELOADING": "1", "MONOTONIC_USEC": str(now_usec)}
        return self.notify(_with_status(fields, status))

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for ``seconds`` more before the start/stop timeout (a slow drain, slow feeds)."""
        return self.notify({"EXTEND_TIMEOUT_USEC": str(max(0, round(seconds * 1_000_000)))})

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _with_status(fields: dict[str, str], status: str | None) -> dict[str, str]:
    if status is not None:
        fields["STATUS"] = status
    return fields


def _watchdog_usec(env: Mapping[str, str]) -> int | None:
    pid = env.get("WATCHDOG_PID")
    if pid is not None:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec if usec > 0 else None


HealthCheck = Callable[[], str | None]
"""A health check: None when healthy, else a short reason ("journal writer thread dead")."""


class Watchdog:
    """Pings the manager's watchdog every ``interval`` seconds while the service is healthy.

    The pings are sent by a callback on the event loop, so a blocked loop sends none. Before
    each ping the loop's current lag must be under ``max_lag`` seconds and every check in
    ``checks`` must return None; otherwise the ping is withheld. ``interval`` defaults to half
    the manager's ``$WATCHDOG_USEC`` (what sd_watchdog_enabled(3) advises). ``on_change`` is
    called with the reason pings stopped (a failed send included) and with None when they
    resume: once per change, so the caller can log it without flooding.
    """

    def __init__(
        self,
        notifier: Notifier,
        lag: LoopLag,
        *,
        max_lag: float = 1.0,
        checks: Sequence[HealthCheck] = (),
        interval: float | None = None,
        on_change: Callable[[str | None], None] | None = None,
    ) -> None:
        if interval is None and notifier.watchdog_usec is not None:
            interval = notifier.watchdog_usec / 2_000_000
        if interval is not None and not interval > 0:
            raise ValueError(f"Watchdog interval must be > 0 s, got {interval}")
        if not max_lag > 0:
            raise ValueError(f"Watchdog max_lag must be > 0 s, got {max_lag}")
        self.interval = interval
        self.max_lag = max_lag
        self._notifier = notifier
        self._lag = lag
        self._checks = tuple(checks)
        self._on_change = on_change
        self._handle: asyncio.Handle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.reason: str | None = None
        """Why the last ping was withheld or failed; None when it was sent."""
        self.pings = 0
        self.withheld = 0

    @property
    def enabled(self) -> bool:
        """Whether there is a watchdog to feed (a period, from the manager or given)."""
        return self.interval is not None and self._notifier.enabled

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> bool:
        """Start pinging (at once, then every interval); False when there is no watchdog.

        Starts the lag monitor too if it is not running: without fresh readings the
        watchdog would judge the loop by a stale one.
        """
        if not self.enabled or self._handle is not None:
            return self._handle is not None
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        if not self._lag.running:
            self._lag.start(self._loop)
        self._handle = self._loop.call_soon(self._run)
        return True

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def check(self) -> str | None:
        """Why the service is unhealthy now, or None."""
        if self._lag.current() >= self.max_lag:
            return f"event loop lag over {self.max_lag:g} s"
        for check in self._checks:
            try:
                reason = check()
            except Exception as exc:  # a broken check is itself a health failure
                name = getattr(check, "__name__", type(check).__name__)
                return f"health check {name} failed: {type(exc).__name__}: {exc}"
            if reason is not None:
                return reason
        return None

    def _run(self) -> None:
        assert self._loop is not None and self.interval is not None
        self._handle = self._loop.call_later(self.interval, self._run)
        reason = self.check()
        if reason is None:
            if self._notifier.watchdog():
                self.pings += 1
            else:
                reason = self._notifier.last_error or "watchdog ping not sent"
        else:
            self.withheld += 1
        if reason != self.reason:
            self.reason = reason
            if self._on_change is not None:
                self._on_change(reason)
