"""Event-loop lag: how late the loop runs a callback that asked to run at a given time.

A loop that is blocked (a slow callback, a stray blocking call, a long GC pause) runs
everything late, so feeds and orders are late too. ``LoopLag`` schedules itself every
``interval`` seconds and records the lateness of each run; a stall in progress counts as well
(the pending run is already late), so a reader sees the lag grow while the loop is stuck.

Readings are plain floats written only by the loop thread, so other threads (the metrics
exporter runs off the loop) may read them at any time without locks.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable


class LoopLag:
    """Measures the lateness of a self-rescheduling callback on one event loop.

    ``window`` is the span of ``max()``; ``observe`` (e.g. a histogram's ``observe``) gets
    every sample, in seconds, on the loop thread. ``clock`` must be monotonic.
    """

    def __init__(
        self,
        interval: float = 0.1,
        window: float = 60.0,
        *,
        observe: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"LoopLag interval must be > 0 s, got {interval}")
        if not window >= interval:
            raise ValueError(f"LoopLag window ({window} s) must cover the interval ({interval} s)")
        self.interval = interval
        self.window = window
        self._observe = observe
        self._clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0  # when the pending run should happen (clock time); 0: none pending
        self._last = 0.0
        self._max = 0.0
        self.samples = 0
        # (time, lag) with lags strictly decreasing from the left: the window's maximum is
        # always the first entry, kept in O(1) amortised per sample.
        self._peaks: deque[tuple[float, float]] = deque()

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Begin measuring on ``loop`` (default: the running loop)."""
        if self._handle is not None:
            return
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self._schedule(self._clock())

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._due = 0.0

    @property
    def running(self) -> bool:
        return self._handle is not None

    @property
    def last(self) -> float:
        """Lateness of the most recent run, in seconds."""
        return self._last

    def overdue(self) -> float:
        """How late the pending run already is (0 when it is not yet due)."""
        due = self._due
        return max(0.0, self._clock() - due) if due else 0.0

    def current(self) -> float:
        """The lag now: the last run's lateness, or the stall in progress if that is more."""
        return max(self._last, self.overdue())

    def max(self) -> float:
        """The largest lag over the last ``window`` seconds, a stall in progress included."""
        return max(self._max, self.overdue())

    def _schedule(self, now: float) -> None:
        assert self._loop is not None
        self._due = now + self.interval
        self._handle = self._loop.call_later(self.interval, self._run)

    def _run(self) -> None:
        now = self._clock()
        # Loops may fire a timer a hair early (their clock granularity): that is no lag.
        lag = max(0.0, now - self._due)
        # Rescheduled first: a failing observer must not end the measurements.
        self._schedule(now)
        peaks = self._peaks
        while peaks and peaks[-1][1] <= lag:
            peaks.pop()
        peaks.append((now, lag))
        horizon = now - self.window
        while peaks[0][0] < horizon:
            peaks.popleft()
        self._last = lag
        self._max = peaks[0][1]
        self.samples += 1
        if self._observe is not None:
            self._observe(lag)
