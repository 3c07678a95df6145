"""The engine wired to two simulated venues over loopback, as a daemon wires it.

A BinanceSim and an OkxSim quote one shared fair price for BTC-USDT; the real feeds keep the
books; the engine, risk gates, executor, paper gateways and portfolio are the real ones, and
write to the journal the caller gives. Shared by the end-to-end tests (tests/test_engine.py)
and the kill -9 child process (tests/crash_child.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from arbengine._core.book import Book
from arbengine._core.instrument import Instrument
from arbengine.engine import Engine, GateCheck, Pair, PairConfig
from arbengine.execution import ExecutionPolicy, Executor
from arbengine.journal import Journal
from arbengine.orders import atoms
from arbengine.portfolio import Portfolio
from arbengine.risk import PairLimits, RiskGates, RiskLimits, VenueLimits
from arbengine.venues.binance import SPOT, BinanceFeed
from arbengine.venues.okx import OkxFeed
from arbengine.venues.paper import PaperGateway
from arbengine.venues.sim import BINANCE_SPOT, OKX_INSTRUMENTS, BinanceSim, FairMarket, OkxSim
from tests.waiting import fast_backoff, until

FEE = Decimal("7.5")
INTERVAL_S = 0.01
VENUES = ("binance", "okx")
_BTC_BINANCE = BINANCE_SPOT["BTCUSDT"]
_BTC_OKX = OKX_INSTRUMENTS["BTC-USDT"]
IB = Instrument("binance", "BTCUSDT", "BTC", "USDT", _BTC_BINANCE.tick, _BTC_BINANCE.lot)
IO = Instrument("okx", "BTC-USDT", "BTC", "USDT", _BTC_OKX.tick, _BTC_OKX.lot)
INSTRUMENTS = (IB, IO)
START = {(v, a): atoms(n) for v in VENUES for a, n in (("BTC", "2"), ("USDT", "200000"))}


def start_portfolio() -> Portfolio:
    return Portfolio(dict(START), reference="USDT")


@dataclass
class SimRig:
    binance: BinanceSim
    okx: OkxSim
    feeds: tuple[BinanceFeed, OkxFeed]
    portfolio: Portfolio
    gates: RiskGates
    executor: Executor
    engine: Engine
    journal: Journal
    gateways: dict[str, PaperGateway]
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        """Hook the engine to the feeds, connect them and wait until both books are LIVE."""
        for feed in self.feeds:
            feed.on_book = self.engine.on_book
            feed.on_resync = self.engine.on_resync
        self._tasks = [asyncio.create_task(f.run()) for f in self.feeds]
        await until(lambda: all(f.syncs[0].live for f in self.feeds))

    async def stop(self) -> None:
        """Feeds, executor tasks and paper venues down (the journal stays the caller's)."""
        tasks, self._tasks = self._tasks, []
        if tasks:
            for feed in self.feeds:
                await feed.stop()
            await asyncio.gather(*tasks)
        await self.executor.close()
        for gw in self.gateways.values():
            gw.close()


@asynccontextmanager
async def sim_rig(
    journal: Journal,
    portfolio: Portfolio,
    *,
    policy: ExecutionPolicy,
    latency_s: float,
    paper: Mapping[str, Mapping[str, Any]] | None = None,
) -> AsyncIterator[SimRig]:
    """Everything built, nothing connected yet: ``await rig.start()`` when ready (after
    ``engine.adopt`` or ``engine.checkpoint``, say). ``paper[venue]``: PaperGateway kwargs."""
    fair = FairMarket(seed=3)
    async with (
        BinanceSim([_BTC_BINANCE], seed=41, interval_s=INTERVAL_S, fair=fair) as bsim,
        OkxSim([_BTC_OKX], seed=42, interval_s=INTERVAL_S, fair=fair) as osim,
    ):
        bfeed = BinanceFeed(
            SPOT, [IB], ws_base=bsim.ws_url, rest_base=bsim.rest_url, backoff=fast_backoff()
        )
        ofeed = OkxFeed([IO], ws_url=osim.ws_url, backoff=fast_backoff())
        syncs = {"binance": bfeed.syncs[0], "okx": ofeed.syncs[0]}

        def book_of(venue: str) -> Callable[[str], Book | None]:
            return lambda _symbol: syncs[venue].book if syncs[venue].live else None

        gateways = {
            v: PaperGateway(
                v,
                book_of(v),
                portfolio,
                fee_bps=FEE,
                latency_s=latency_s,
                seed=i,
                **(paper or {}).get(v, {}),
            )
            for i, v in enumerate(VENUES)
        }
        limits = RiskLimits(
            venues=tuple(VenueLimits(v) for v in VENUES),
            pairs=(
                PairLimits(
                    "btc",
                    IB,
                    IO,
                    min_edge_bps="5",
                    max_edge_bps="500",
                    max_base="0.05",
                    max_notional="10000",
                    fee_a_bps=FEE,
                    fee_b_bps=FEE,
                ),
            ),
            max_inventory={"BTC": "1"},
            max_net_exposure={"BTC": "1"},
            max_daily_loss="1000",
            max_drawdown="2000",
        )
        gates = RiskGates(limits, portfolio)
        executor = Executor(
            gateways,
            portfolio,
            journal,
            fee_bps=dict.fromkeys(VENUES, FEE),
            books=lambda inst: book_of(inst.venue)(inst.symbol),
            risk=gates,
        )
        pair = Pair(
            PairConfig("btc", IB, IO, FEE, FEE, Decimal(5), max_size="0.05", policy=policy),
            syncs["binance"],
            syncs["okx"],
        )
        clocks = {"binance": bfeed.router.clock, "okx": ofeed.router.clock}
        engine = Engine([pair], executor=executor, risk=GateCheck(gates, clocks), journal=journal)
        rig = SimRig(
            bsim, osim, (bfeed, ofeed), portfolio, gates, executor, engine, journal, gateways
        )
        try:
            yield rig
        finally:
            await rig.stop()
