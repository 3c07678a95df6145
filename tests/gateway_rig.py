"""What the venue gateway tests share: a recording ``OrderEvents`` listener and a book walk
that says, independently of the simulator's matching code, what an IOC should get."""

from __future__ import annotations

from collections.abc import Iterable

from arbengine.orders import Fill, Order, OrderStatus
from tests.waiting import until


class Recorder:
    """An ``OrderEvents`` that keeps every call, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []  # (kind, client id)
        self.fills: dict[str, list[Fill]] = {}
        self.done: dict[str, tuple[OrderStatus, str]] = {}
        self.dones = 0

    def on_ack(self, order: Order, ts_ns: int) -> None:
        self.events.append(("ack", order.client_id))

    def on_fill(self, order: Order, fill: Fill) -> None:
        self.events.append(("fill", order.client_id))
        self.fills.setdefault(order.client_id, []).append(fill)

    def on_done(self, order: Order, status: OrderStatus, reason: str, ts_ns: int) -> None:
        self.events.append(("done", order.client_id))
        self.done[order.client_id] = (status, reason)
        self.dones += 1

    async def final(self, client_id: str, timeout: float = 4.0) -> tuple[OrderStatus, str]:
        await until(lambda: client_id in self.done, timeout, lambda: self.events)
        return self.done[client_id]

    def kinds(self, client_id: str) -> list[str]:
        return [kind for kind, cid in self.events if cid == client_id]


def walk(
    levels: Iterable[tuple[int, int]], limit: int, size: int, buy: bool
) -> list[tuple[int, int]]:
    """(price, size) taken from ``levels`` (best first) by an IOC up to ``limit``."""
    taken = []
    for price, avail in levels:
        if size <= 0 or (price > limit if buy else price < limit):
            break
        take = min(avail, size)
        taken.append((price, take))
        size -= take
    return taken


def fee_up(notional_atoms: int, bps: int) -> int:
    """The venue's fee on a notional: ``bps`` of it, rounded up to 10**-8."""
    raw = -((-notional_atoms * bps) // 10_000)
    step = 10**10
    return -((-raw) // step) * step
