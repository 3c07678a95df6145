"""LoopLag on real event loops (asyncio and uvloop, from conftest): lateness is measured,
a stall shows while it lasts (also to a reader on another thread), the window forgets."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from arbengine.loop_health import LoopLag
from tests.waiting import until


async def test_an_idle_loop_has_little_lag() -> None:
    samples: list[float] = []
    lag = LoopLag(interval=0.01, window=1.0, observe=samples.append)
    lag.start()
    assert lag.running
    await asyncio.sleep(0.3)
    lag.stop()
    # About one sample per interval; a shared test machine may run some late.
    assert 10 <= lag.samples <= 31
    assert len(samples) == lag.samples
    assert all(s >= 0.0 for s in samples)
    assert lag.last == samples[-1]
    assert lag.max() == max(samples)
    assert lag.max() < 0.2


async def test_a_blocked_loop_is_measured() -> None:
    samples: list[float] = []
    lag = LoopLag(interval=0.01, window=5.0, observe=samples.append)
    lag.start()
    await until(lambda: lag.samples >= 3)
    before = lag.samples

    time.sleep(0.3)  # what a blocking call in a callback does to the loop
    assert lag.overdue() >= 0.28
    assert lag.current() >= 0.28 and lag.max() >= 0.28  # seen before the next run
    assert lag.samples == before

    await until(lambda: lag.samples > before)
    assert 0.28 <= samples[before] < 0.3 + 0.2  # the late run recorded its lateness
    assert lag.max() >= 0.28
    await until(lambda: lag.last < 0.1)  # the loop is back to normal...
    assert lag.max() >= 0.28  # ...and the window still holds the stall
    lag.stop()


async def test_the_window_forgets_old_stalls() -> None:
    lag = LoopLag(interval=0.01, window=0.2)
    lag.start()
    await until(lambda: lag.samples >= 2)
    time.sleep(0.15)
    await until(lambda: lag.samples >= 4)
    stall = lag.max()
    assert stall >= 0.13
    await asyncio.sleep(0.4)  # longer than the window
    assert lag.max() < stall
    assert lag.max() >= lag.last  # the window still holds the recent samples
    lag.stop()


async def test_another_thread_sees_a_stall_while_it_lasts() -> None:
    """The metrics exporter serves from its own thread: it must not see a frozen reading."""
    lag = LoopLag(interval=0.01, window=5.0)
    lag.start()
    await until(lambda: lag.samples >= 3)
    readings: list[float] = []
    stop = threading.Event()

    def exporter() -> None:
        while not stop.is_set():
            readings.append(lag.current())
            time.sleep(0.01)

    reader = threading.Thread(target=exporter)
    reader.start()
    time.sleep(0.4)  # the loop is stuck; the reader keeps reading
    stuck_readings = list(readings)
    stop.set()
    reader.join()
    lag.stop()
    assert len(stuck_readings) >= 5
    assert max(stuck_readings) >= 0.3
    # The reading grows during the stall rather than staying at its last value.
    assert stuck_readings[-1] > stuck_readings[0]


async def test_a_failing_observer_does_not_end_the_measurements() -> None:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    calls = 0

    def observe(_lag: float) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("histogram gone")

    lag = LoopLag(interval=0.01, observe=observe)
    lag.start()
    await until(lambda: lag.samples >= 5)
    lag.stop()
    loop.set_exception_handler(None)
    assert calls >= 5
    assert [str(e["exception"]) for e in errors] == ["histogram gone"]


async def test_stop_ends_the_runs_and_start_is_idempotent() -> None:
    lag = LoopLag(interval=0.01)
    lag.start()
    lag.start()  # a second start must not double the runs
    await asyncio.sleep(0.2)
    assert lag.samples <= 21
    lag.stop()
    assert not lag.running
    samples = lag.samples
    await asyncio.sleep(0.05)
    assert lag.samples == samples
    assert lag.overdue() == 0.0  # nothing pending, nothing late


def test_start_outside_a_loop_needs_one() -> None:
    lag = LoopLag()
    loop = asyncio.new_event_loop()
    try:
        lag.start(loop)
        loop.run_until_complete(asyncio.sleep(0.25))
        assert lag.samples >= 1
    finally:
        lag.stop()
        loop.close()
    with pytest.raises(RuntimeError, match="no running event loop"):
        LoopLag().start()


@pytest.mark.parametrize(
    ("interval", "window", "message"),
    [
        (0, 60.0, "LoopLag interval must be > 0 s, got 0"),
        (-0.1, 60.0, "LoopLag interval must be > 0 s, got -0.1"),
        (1.0, 0.5, r"LoopLag window \(0.5 s\) must cover the interval \(1.0 s\)"),
    ],
)
def test_bad_settings_are_refused(interval: float, window: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LoopLag(interval, window)
