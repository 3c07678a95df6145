"""The engine of the engine benchmark, wired as the daemon wires it (see tests/test_engine.py).

Real BinanceFeed (one connection, all Binance books) and OkxFeed (one connection, all OKX
books), one Pair per synthetic asset, the real Engine with GateCheck over RiskGates, the
Executor, one PaperGateway per venue, the Portfolio and a Journal in a directory.

Limits are loose on purpose and balances are big, so that nothing the benchmark cares about
is refused: the order-rate buckets allow a million orders a second, open orders and
inventory are effectively unbounded, and failed legs never open a breaker nor make a venue
unhealthy. Edge limits, staleness, data age and the venue-lag check keep their defaults
(min edge 5 bps, 100 ms data age). The paper gateways answer after ``paper_latency_s`` (0:
on the next loop iteration), so an arb is settled soon after it was sent and its pair may
fire again.

With ``orders`` (the live-gateway mode) the legs go instead to the real ``BinanceGateway``
and ``OkxGateway``, whose order WebSockets reach the simulators the generator runs
(``bench.engine_gen``): each leg's frame is built, signed and written to the socket inside
``submit``, so the engine's "handed off" stamp is the moment its bytes were written. The
simulators refuse every order (they do not list the synthetic symbols); the gateways'
own order-count pauses are lifted as the simulators' limits are.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import ClassVar

from arbengine._core.book import Book
from arbengine._core.instrument import Instrument
from arbengine.config_schema import CredentialRef
from arbengine.config_secrets import Secret
from arbengine.engine import WARM_EVERY, Engine, GateCheck, Pair, PairConfig
from arbengine.execution import ExecutionPolicy, Executor
from arbengine.gateways.base import LiveGateway, VenueCredentials
from arbengine.gateways.binance import BinanceGateway
from arbengine.gateways.okx import OkxGateway
from arbengine.journal import Journal
from arbengine.orders import Gateway, atoms
from arbengine.portfolio import Portfolio
from arbengine.risk import PairLimits, RateLimit, RiskGates, RiskLimits, VenueLimits
from arbengine.venues._sync import BookSync
from arbengine.venues.binance import SPOT, BinanceFeed
from arbengine.venues.okx import OkxFeed
from arbengine.venues.paper import PaperGateway
from arbengine.venues.ws import Backoff
from bench.engine_gen import ORDER_KEY, ORDER_PASSPHRASE, ORDER_SECRET, OrderUrls
from bench.engine_market import FEE_BPS, QUOTE, Market

MIN_EDGE_BPS = Decimal(5)
MAX_ARB_SIZE = "0.05"
BIG = "1000000000"


@dataclass
class Rig:
    binance: BinanceFeed
    okx: OkxFeed
    syncs: list[BookSync]  # by the market's book index
    portfolio: Portfolio
    gates: RiskGates
    executor: Executor
    engine: Engine
    journal: Journal
    gateways: dict[str, PaperGateway]  # empty in the live-gateway mode
    live: dict[str, LiveGateway] = field(default_factory=dict)

    @property
    def feeds(self) -> tuple[BinanceFeed, OkxFeed]:
        return self.binance, self.okx

    async def start_live(self, timeout_s: float = 10.0) -> None:
        """Clock sync and order WebSocket login of the live gateways (none: nothing)."""
        for gateway in self.live.values():
            await gateway.start()
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not all(g.ws_ready for g in self.live.values()):
            if asyncio.get_running_loop().time() > deadline:
                down = [v for v, g in self.live.items() if not g.ws_ready]
                raise RuntimeError(f"order WebSocket not ready in {timeout_s:g} s: {down}")
            await asyncio.sleep(0.01)

    async def stop_live(self) -> None:
        for gateway in self.live.values():
            await gateway.close()

    def close(self) -> None:
        for gateway in self.gateways.values():
            gateway.close()
        self.journal.close()


class _BenchBinance(BinanceGateway):
    # The simulator's order-count and weight limits are lifted; the gateway would otherwise
    # pause at Binance's real 100 orders per 10 s from the counts the replies carry.
    order_limit: ClassVar[int] = 1 << 40
    weight_limit: ClassVar[int] = 1 << 40


def live_gateways(
    orders: Mapping[str, OrderUrls], instruments: Mapping[str, list[Instrument]]
) -> dict[str, LiveGateway]:
    """The venues' real gateways, logged in to the generator's order simulators."""
    ref = CredentialRef(source="env", name="BENCH")
    creds = VenueCredentials(
        Secret(ORDER_KEY, ref), Secret(ORDER_SECRET, ref), Secret(ORDER_PASSPHRASE, ref)
    )
    b, o = orders["binance"], orders["okx"]
    return {
        "binance": _BenchBinance(
            "binance", instruments["binance"], creds, rest_url=b.rest, ws_url=b.ws
        ),
        "okx": OkxGateway("okx", instruments["okx"], creds, rest_url=o.rest, ws_url=o.ws),
    }


def build_rig(
    market: Market,
    journal_dir: Path,
    *,
    ws_base: str = "ws://127.0.0.1:9",
    rest_base: str = "http://127.0.0.1:9",
    okx_url: str = "ws://127.0.0.1:9/ws/v5/public",
    paper_latency_s: float = 0.0,
    orders: Mapping[str, OrderUrls] | None = None,
    warm_every: int = WARM_EVERY,
) -> Rig:
    """Everything but the connections, which ``feed.run()`` opens."""
    b_specs, o_specs = market.venue_books("binance"), market.venue_books("okx")
    b_inst = [s.instrument() for s in b_specs]
    o_inst = [s.instrument() for s in o_specs]
    backoff = Backoff(base_s=0.05, cap_s=0.5)
    binance = BinanceFeed(
        SPOT,
        b_inst,
        ws_base=ws_base,
        rest_base=rest_base,
        backoff=backoff,
        silence_timeout_s=30.0,
    )
    okx = OkxFeed(o_inst, ws_url=okx_url, backoff=backoff, silence_timeout_s=30.0)
    syncs: list[BookSync] = [None] * len(market.books)  # type: ignore[list-item]
    for spec, sync in zip(b_specs, binance.syncs, strict=True):
        syncs[spec.index] = sync
    for spec, sync in zip(o_specs, okx.syncs, strict=True):
        syncs[spec.index] = sync
    by_symbol = {
        venue: {s.instrument.symbol: s for s in feed.syncs}
        for venue, feed in (("binance", binance), ("okx", okx))
    }

    def live_book(venue: str, symbol: str) -> Book | None:
        sync = by_symbol[venue].get(symbol)
        return sync.book if sync is not None and sync.live else None

    bases = sorted({s.base for s in market.books})
    portfolio = Portfolio(
        {(venue, asset): atoms(BIG) for venue in ("binance", "okx") for asset in [*bases, QUOTE]},
        reference=QUOTE,
    )
    feeds = (("binance", binance), ("okx", okx))
    live = (
        live_gateways(orders, {v: [s.instrument for s in f.syncs] for v, f in feeds})
        if orders is not None
        else {}
    )
    gateways = (
        {}
        if live
        else {
            venue: PaperGateway(
                venue,
                lambda symbol, v=venue: live_book(v, symbol),  # type: ignore[misc]
                portfolio,
                fee_bps=FEE_BPS,
                latency_s=paper_latency_s,
                seed=i,
            )
            for i, venue in enumerate(("binance", "okx"))
        }
    )
    journal = Journal(journal_dir, batch_ms=5)
    fast = (RateLimit(1_000_000, 1_000_000, 1),)
    # A leg that finds nothing (the benchmark's own checks report it) must not open the
    # breaker or mark the venue unhealthy: that would block every later arb of the run.
    venue_limits = tuple(
        VenueLimits(
            v,
            rate_limits=fast,
            max_open_orders=100_000,
            breaker_failures=10**9,
            max_rejects=10**9,
            max_timeouts=10**9,
            max_resyncs=10**9,
        )
        for v in ("binance", "okx")
    )

    # The feeds' own Instrument objects everywhere: the gates match legs by identity first.
    def pair_instruments(pair: int) -> tuple[Instrument, Instrument]:
        a_spec, b_spec = market.pair_books(pair)
        return syncs[a_spec.index].instrument, syncs[b_spec.index].instrument

    pairs_limits = []
    for pair in range(market.config.pairs):
        a, b = pair_instruments(pair)
        pairs_limits.append(
            PairLimits(
                a.base,
                a,
                b,
                min_edge_bps=MIN_EDGE_BPS,
                max_edge_bps="1000",
                max_base="1000",
                max_notional=BIG,
                fee_a_bps=FEE_BPS,
                fee_b_bps=FEE_BPS,
            )
        )
    limits = RiskLimits(
        venues=venue_limits,
        pairs=tuple(pairs_limits),
        max_inventory={b: BIG for b in bases},
        max_net_exposure={b: BIG for b in bases},
        max_daily_loss=BIG,
        max_drawdown=BIG,
        max_open_orders_total=200_000,
    )
    gates = RiskGates(limits, portfolio)

    def hedge_book(inst: Instrument) -> Book | None:
        return live_book(inst.venue, inst.symbol)

    executor = Executor(
        dict[str, Gateway](live or gateways),
        portfolio,
        journal,
        fee_bps={"binance": FEE_BPS, "okx": FEE_BPS},
        books=hedge_book,
        risk=gates,
    )
    policy = ExecutionPolicy()
    pairs = []
    for pair in range(market.config.pairs):
        a_spec, b_spec = market.pair_books(pair)
        a, b = pair_instruments(pair)
        pairs.append(
            Pair(
                PairConfig(
                    a.base,
                    a,
                    b,
                    FEE_BPS,
                    FEE_BPS,
                    MIN_EDGE_BPS,
                    max_size=MAX_ARB_SIZE,
                    policy=policy,
                ),
                syncs[a_spec.index],
                syncs[b_spec.index],
            )
        )
    engine = Engine(
        pairs,
        executor=executor,
        risk=GateCheck(gates, {"binance": binance.router.clock, "okx": okx.router.clock}),
        journal=journal,
        warm_every=warm_every,
    )
    binance.on_book = okx.on_book = engine.on_book
    return Rig(binance, okx, syncs, portfolio, gates, executor, engine, journal, gateways, live)
