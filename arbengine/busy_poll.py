"""Busy polling: keep the event loop from sleeping in epoll between frames.

An idle event loop blocks in ``epoll_wait``; on a virtual machine the vCPU then halts, and
whatever the host runs meanwhile evicts the engine's caches, so the next frame's arb path
runs cold (measured in bench/README.md: tick-to-order p50 falls by about a quarter when the
loop never sleeps). A task that only yields keeps a callback always ready, so the loop
polls with a zero timeout and the core stays on the engine, at the price of that core at
100%. Off by default; for a host with a core to spare (``CPUAffinity=`` in the unit).
"""

from __future__ import annotations

import asyncio
import contextlib


class BusyPoll:
    """While started, the running loop never blocks waiting for I/O."""

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self.spins = 0  # loop iterations it kept from sleeping (read by metrics/tests)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.running:
            return
        self._task = asyncio.get_running_loop().create_task(self._spin(), name="busy-poll")

    async def _spin(self) -> None:
        while True:
            # A bare yield: the task is ready again at once, so the loop's next poll has a
            # zero timeout. Cheaper than any sleep, and every other callback still runs
            # first (call_soon order), so frames are never kept waiting behind it.
            await asyncio.sleep(0)
            self.spins += 1

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
