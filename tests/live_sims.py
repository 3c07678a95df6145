"""Simulated venues with order entry, run by the test process on an event loop of their own
(a thread), for a daemon subprocess to trade on over loopback.

``SimThread`` starts the simulators on one shared fair price, opens an account on each, and
lets the (synchronous) test reach into them on their loop: ``call(fn)`` runs ``fn()`` there
and returns its result, so fault injection, dislocations and reading the accounts never
race the simulators' own work.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from arbengine.venues.sim import FairMarket
from arbengine.venues.sim._server import SimVenue
from arbengine.venues.sim.exchange import SimAccount

T = TypeVar("T")

Sim = SimVenue


@dataclass(frozen=True)
class Account:
    """One venue's keys as the simulator knows them (and the daemon reads from its env)."""

    venue: str
    key: str
    secret: str
    passphrase: str | None
    start: Mapping[str, str]  # asset -> decimal text

    def env(self) -> dict[str, str]:
        prefix = self.venue.upper()
        out = {f"{prefix}_KEY": self.key, f"{prefix}_SECRET": self.secret}
        if self.passphrase is not None:
            out[f"{prefix}_PHRASE"] = self.passphrase
        return out


class SimThread:
    """``sims`` (name -> a not yet started simulator) on a loop in a daemon thread."""

    def __init__(self, sims: Mapping[str, Sim], accounts: Mapping[str, Account]) -> None:
        self.sims = dict(sims)
        self.accounts = dict(accounts)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.sim_accounts: dict[str, SimAccount] = {}
        self.run(self._start)

    async def _start(self) -> None:
        for name, sim in self.sims.items():
            await sim.start()
            acc = self.accounts[name]
            self.sim_accounts[name] = sim.exchange.add_account(
                acc.key, acc.secret, acc.passphrase, dict(acc.start)
            )

    def run(self, coro: Callable[[], Any], timeout: float = 30.0) -> Any:
        fut = asyncio.run_coroutine_threadsafe(coro(), self.loop)
        return fut.result(timeout)

    def call(self, fn: Callable[[], T], timeout: float = 10.0) -> T:
        fut: Future[T] = Future()

        def go() -> None:
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)

        self.loop.call_soon_threadsafe(go)
        return fut.result(timeout)

    def truth(self) -> dict[tuple[str, str], int]:
        """Every account's total per (venue, asset) in atoms: free + locked; on a futures
        venue its positions count as their base asset (what the engine books there)."""

        def read() -> dict[tuple[str, str], int]:
            out: dict[tuple[str, str], int] = {}
            for name, acc in self.sim_accounts.items():
                for asset in set(acc.free) | set(acc.locked):
                    out[(name, asset)] = acc.free.get(asset, 0) + acc.locked.get(asset, 0)
                exchange = self.sims[name].exchange
                for symbol, lots in acc.positions.items():
                    base = exchange.markets[symbol].base
                    out[(name, base)] = out.get((name, base), 0) + exchange.base_atoms(symbol, lots)
            return out

        return self.call(read)

    def positions(self) -> dict[str, tuple[int, int]]:
        """Every open futures position, ``"venue:symbol"`` -> (base atoms, entry value in
        quote atoms), signed."""

        def read() -> dict[str, tuple[int, int]]:
            out: dict[str, tuple[int, int]] = {}
            for name, acc in self.sim_accounts.items():
                exchange = self.sims[name].exchange
                for symbol, lots in acc.positions.items():
                    if lots:
                        base = exchange.base_atoms(symbol, lots)
                        out[f"{name}:{symbol}"] = (base, acc.basis.get(symbol, 0))
            return out

        return self.call(read)

    def start_atoms(self) -> dict[tuple[str, str], int]:
        from arbengine.orders import atoms

        return {
            (name, asset): atoms(text)
            for name, acc in self.accounts.items()
            for asset, text in acc.start.items()
        }

    def close(self) -> None:
        async def stop() -> None:
            for sim in self.sims.values():
                await sim.stop()

        try:
            self.run(stop)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
            self.loop.close()


def fair_market(seed: int = 7) -> FairMarket:
    return FairMarket(seed, step_ns=100_000_000, vol_ppm=20)
