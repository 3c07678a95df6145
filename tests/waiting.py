"""Bounded waits for tests that drive real sockets: every wait ends, with a reason."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

from arbengine.venues.ws import Backoff

WAIT = 15.0  # generous: the test machine is small and shared


async def until(
    cond: Callable[[], bool], timeout: float = WAIT, why: Callable[[], object] = lambda: ""
) -> None:
    """Poll ``cond`` every 5 ms; AssertionError (with ``why()``) after ``timeout`` s."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"condition not reached in {timeout} s: {why()}")
        await asyncio.sleep(0.005)


def fast_backoff(seed: int = 5) -> Backoff:
    """Reconnect within tens of ms, deterministically."""
    return Backoff(base_s=0.01, cap_s=0.05, rng=random.Random(seed))
