"""BusyPoll keeps the loop from sleeping in epoll, and nothing else changes: timers and
I/O callbacks still run on time; stopped, the loop sleeps again. On uvloop and asyncio."""

from __future__ import annotations

import asyncio
import socket
import time

from arbengine.busy_poll import BusyPoll


async def _cpu_over(seconds: float) -> float:
    """CPU time this process spent while the loop waited ``seconds`` for a timer."""
    cpu0 = time.process_time()
    await asyncio.sleep(seconds)
    return time.process_time() - cpu0


async def test_an_idle_loop_spins_while_started_and_sleeps_after() -> None:
    poll = BusyPoll()
    idle = await _cpu_over(0.2)
    assert idle < 0.05  # asleep in epoll: next to no CPU
    poll.start()
    assert poll.running
    busy = await _cpu_over(0.2)
    assert busy > 0.12  # the loop never blocked: its core busy most of the time
    assert poll.spins > 1000
    await poll.stop()
    assert not poll.running
    spins = poll.spins
    after = await _cpu_over(0.2)
    assert after < 0.05 and poll.spins == spins


async def test_timers_and_sockets_still_run_on_time_while_spinning() -> None:
    poll = BusyPoll()
    poll.start()
    poll.start()  # idempotent: one spinner
    loop = asyncio.get_running_loop()
    fired = loop.create_future()
    t0 = time.monotonic()
    loop.call_later(0.05, fired.set_result, None)
    await fired
    assert 0.045 <= time.monotonic() - t0 < 0.5
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    try:
        got = loop.create_future()
        loop.add_reader(b.fileno(), lambda: got.set_result(b.recv(16)))
        a.send(b"frame")
        assert await asyncio.wait_for(got, 1) == b"frame"
        loop.remove_reader(b.fileno())
    finally:
        a.close()
        b.close()
    await poll.stop()
    await poll.stop()  # stopping twice is harmless
