"""The engine in-process, for gate tests: real books, gates, executor, paper legs and journal.

No sockets: each venue's ``BookSync`` is made LIVE and changed with the frames a feed would
hand it (``on_message``: a snapshot, then updates chained by that venue's sequence rule), and
``Engine.on_book`` is called after each one exactly as ``venues.feed.notify_book`` does (an
applied update or a snapshot, book LIVE). Everything downstream is the real thing:
``SpreadCalculator`` -> ``GateCheck`` -> ``RiskGates`` -> ``Executor`` -> ``PaperGateway`` ->
``Portfolio``, and every decision lands in a real ``Journal``.

Time is a ``FakeClock`` that only moves when a test says so. It is the monotonic clock of the
engine, the gates and the executor and stamps every frame's receive time, so staleness, data
age, breakers, health windows and rate buckets are tested without sleeping. Its wall clock
(the gates' ``wall_clock``, the portfolio's day) starts at the real epoch time and moves with
it. Venue event times ride on every frame: ``VENUE_OFFSET_NS`` behind the venue's wall clock
(the network floor), which each venue's ``ClockOffset`` has learnt from one sample.

Default market, no edge anywhere (fees 7.5 bps a side):

    binance BTCUSDT   29999.00 / 30001.00   (1 BTC each side)
    okx     BTC-USDT  29999.9  / 30000.1
    bybit   BTCUSDT   29999.50 / 30000.50

``rich(venue, bid, size)`` lifts one venue's best bid: buy on Binance at 30001.00, sell there.
At 30150 that is ~34.6 bps net of fees, one arb of ``size`` BTC.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from arbengine._core.book import Book
from arbengine._core.instrument import Instrument
from arbengine.engine import WARM_EVERY, Engine, GateCheck, Pair, PairConfig
from arbengine.execution import Arb, ExecutionPolicy, Executor
from arbengine.journal import Journal, read_entries, verify
from arbengine.orders import Order, atoms
from arbengine.portfolio import Portfolio
from arbengine.risk import PairLimits, RateLimit, Reason, RiskGates, RiskLimits, VenueLimits
from arbengine.venues._clock import ClockOffset
from arbengine.venues._depth import DEPTH_SNAPSHOT, DEPTH_UPDATE
from arbengine.venues._sync import OUT_APPLIED, OUT_RESYNC, OUT_SNAPSHOT, BookSync
from arbengine.venues.paper import PaperGateway

MS = 1_000_000
S = 1_000_000_000
FEE = Decimal("7.5")
VENUE_OFFSET_NS = 5 * MS  # local wall - venue clock + floor latency, as each ClockOffset knows

# Binance: 0.01 tick, 0.00001 lot on a finer size grid, 5 USDT min notional.
BINANCE = Instrument(
    "binance", "BTCUSDT", "BTC", "USDT", "0.01", "0.00001", min_notional="5", size_step="0.00000001"
)
# OKX: 0.1 tick, 0.00000001 lot, 0.00001 min size.
OKX = Instrument("okx", "BTC-USDT", "BTC", "USDT", "0.1", "0.00000001", min_size="0.00001")
# Bybit: 0.01 tick, 0.000001 lot, 1 USDT min notional.
BYBIT = Instrument("bybit", "BTCUSDT", "BTC", "USDT", "0.01", "0.000001", min_notional="1")

# Kraken quotes BTC in USD; Coinbase's USDT-USD book converts (1 USDT = 1.001 USD here).
KRAKEN = Instrument("kraken", "XBT/USD", "BTC", "USD", "0.1", "0.00000001")
COINBASE = Instrument("coinbase", "USDT-USD", "USDT", "USD", "0.0001", "0.01")

INSTRUMENTS = {
    "binance": BINANCE,
    "okx": OKX,
    "bybit": BYBIT,
    "kraken": KRAKEN,
    "coinbase": COINBASE,
}
RULES = {
    "binance": "binance_spot",
    "okx": "okx",
    "bybit": "bybit",
    "kraken": "okx",  # the rig only needs a sequence rule; OKX's chains prevSeqId
    "coinbase": "okx",
}
QUIET: dict[str, tuple[str, str]] = {  # best bid, best ask
    "binance": ("29999.00", "30001.00"),
    "okx": ("29999.9", "30000.1"),
    "bybit": ("29999.50", "30000.50"),
    "kraken": ("30029.9", "30030.1"),  # 30000 USDT at 1.001
    "coinbase": ("1.0009", "1.0011"),
}
PAIRS = {"btc": ("binance", "okx"), "btc2": ("binance", "bybit"), "xq": ("binance", "kraken")}
CONVERSIONS = {"xq": "coinbase"}  # pair -> the venue whose book converts its quotes
RICH_BID = "30150"  # ~34.6 bps net over Binance's ask

Levels = Mapping[str, str]  # price text -> size text


class FakeClock:
    """Monotonic ns that move only on ``advance``; ``wall`` is epoch ns moving with them."""

    def __init__(self) -> None:
        self.mono0 = self.now = time.monotonic_ns()
        self.wall0 = time.time_ns()

    def __call__(self) -> int:
        return self.now

    def wall_at(self, mono_ns: int) -> int:
        return self.wall0 + mono_ns - self.mono0

    def wall(self) -> int:
        return self.wall_at(self.now)

    def advance(self, ns: int) -> None:
        self.now += ns


class SpyGateway(PaperGateway):
    """The paper gateway, keeping every order handed to it (what 'reached the venue')."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[Order] = []
        self.warmed: list[Order] = []  # what the engine ran through ``warm``

    def submit(self, order: Order) -> int:
        self.sent.append(order)
        return super().submit(order)

    def warm(self, order: Order) -> bool:
        # A live gateway's warm-up renders the request and writes nothing (tests/test_wire).
        self.warmed.append(order)
        return True


@dataclass
class Venue:
    """One venue's book as its feed keeps it, and the levels it last published."""

    name: str
    instrument: Instrument
    sync: BookSync
    bids: dict[str, str] = field(default_factory=dict)
    asks: dict[str, str] = field(default_factory=dict)
    seq: int = 1000


def _grid(value: str | Decimal, step: str) -> str:
    return str(Decimal(value).quantize(Decimal(step)))


@dataclass
class Rig:
    clock: FakeClock
    venues: dict[str, Venue]
    offsets: dict[str, ClockOffset]
    portfolio: Portfolio
    gateways: dict[str, SpyGateway]
    journal: Journal
    limits: RiskLimits
    gates: RiskGates
    executor: Executor
    pairs: dict[str, Pair]
    engine: Engine

    # --- frames, as a feed hands them over ----------------------------------------------

    def _levels(self, venue: Venue, levels: Iterable[tuple[str, str]]) -> dict[str, str]:
        inst = venue.instrument
        return {_grid(p, inst.price.step): _grid(s, inst.size.step) for p, s in levels}

    def _frame(
        self,
        venue: Venue,
        kind: int,
        bids: Mapping[str, str],
        asks: Mapping[str, str],
        recv_ns: int | None,
        exch_lag_ns: int,
        ids: tuple[int | None, int | None, int | None],
    ) -> int:
        recv = self.clock() if recv_ns is None else recv_ns
        exch = self.clock.wall_at(recv) - VENUE_OFFSET_NS - exch_lag_ns
        out: int = venue.sync.on_message(
            kind,
            orjson.dumps([[p, s] for p, s in bids.items()]),
            orjson.dumps([[p, s] for p, s in asks.items()]),
            first_id=ids[0],
            last_id=ids[1],
            prev_id=ids[2],
            exch_ts_ns=exch,
            recv_ts_ns=recv,
        )
        # venues.feed.notify_book: the engine hears of a changed LIVE book, or a resync.
        if out in (OUT_APPLIED, OUT_SNAPSHOT) and venue.sync.live:
            self.engine.on_book(venue.sync, recv)
        elif out == OUT_RESYNC:
            self.engine.on_resync(venue.sync)
        return out

    def snapshot(self, name: str, *, recv_ns: int | None = None) -> int:
        """The venue's snapshot of its current levels (subscribe, resubscribe, REST)."""
        v = self.venues[name]
        v.seq += 1
        return self._frame(v, DEPTH_SNAPSHOT, v.bids, v.asks, recv_ns, 0, (None, v.seq, None))

    def quote(
        self,
        name: str,
        bids: Iterable[tuple[str, str]] | None = None,
        asks: Iterable[tuple[str, str]] | None = None,
        *,
        recv_ns: int | None = None,
        exch_lag_ns: int = 0,
    ) -> int:
        """One update frame that makes ``name``'s book show these levels (the same ones
        again if None: a frame that changes nothing on top still changes the book stamp).
        ``recv_ns``: when the frame was received (default now); ``exch_lag_ns``: how much
        older than usual its venue event time is."""
        v = self.venues[name]
        new_bids = self._levels(v, bids) if bids is not None else dict(v.bids)
        new_asks = self._levels(v, asks) if asks is not None else dict(v.asks)
        delta = []
        for old, new in ((v.bids, new_bids), (v.asks, new_asks)):
            side = {p: "0" for p in old if p not in new}
            side.update(new)
            delta.append(side)
        v.bids, v.asks = new_bids, new_asks
        prev, v.seq = v.seq, v.seq + 1
        rule = RULES[name]
        # Binance: U..u chained on the last u; OKX: prevSeqId = last seqId; Bybit: u = last + 1.
        ids: tuple[int | None, int | None, int | None] = (
            (v.seq, v.seq, None)
            if rule == "binance_spot"
            else (None, v.seq, prev)
            if rule == "okx"
            else (None, v.seq, None)
        )
        return self._frame(v, DEPTH_UPDATE, delta[0], delta[1], recv_ns, exch_lag_ns, ids)

    def gap(self, name: str) -> int:
        """An OKX update whose prevSeqId does not chain: the book resyncs (leaves LIVE)."""
        v = self.venues[name]
        assert RULES[name] == "okx"
        out = self._frame(v, DEPTH_UPDATE, {}, {}, None, 0, (None, v.seq + 6, v.seq + 5))
        assert out == OUT_RESYNC and not v.sync.live
        return out

    def quiet(self, name: str, **kw: Any) -> int:
        bid, ask = QUIET[name]
        return self.quote(name, [(bid, "1")], [(ask, "1")], **kw)

    def rich(self, name: str = "okx", bid: str = RICH_BID, size: str = "0.01", **kw: Any) -> int:
        """Lift ``name``'s best bid to ``bid`` for ``size`` BTC (its asks move above it)."""
        quiet_bid, _ = QUIET[name]
        ask = str(Decimal(bid) + 10)
        return self.quote(name, [(bid, size), (quiet_bid, "1")], [(ask, "1")], **kw)

    def tick(self, ns: int) -> None:
        """Time passes in a quiet market: the clock moves and every venue republishes its
        book (its levels unchanged), so no book is stale afterwards."""
        self.clock.advance(ns)
        for name in self.venues:
            self.quote(name)

    # --- what happened --------------------------------------------------------------------

    def entries(self) -> list[dict[str, Any]]:
        self.journal.flush()
        return list(read_entries(self.journal.directory))

    def refusals(self) -> list[dict[str, Any]]:
        return [e for e in self.entries() if e["event"] == "risk_refused"]

    def sent(self) -> list[Order]:
        return [o for gw in self.gateways.values() for o in gw.sent]

    def arbs(self, pair_id: str | None = None) -> list[Arb]:
        return [
            a for a in self.executor.arbs.values() if pair_id is None or a.opp.pair_id == pair_id
        ]

    async def settle(self) -> None:
        """Let every arb in flight finish."""
        await self.executor.drain()

    def verify_journal(self) -> None:
        self.journal.flush()
        result = verify(self.journal.directory)
        assert result.clean, result.describe()

    async def close(self) -> None:
        await self.executor.close()
        for gw in self.gateways.values():
            gw.close()
        self.journal.close()


Make = Callable[..., Rig]  # the ``make`` fixture (tests/conftest.py): build() kwargs -> Rig


def build(
    directory: Path,
    *,
    pairs: Iterable[str] = ("btc",),
    venue_limits: Mapping[str, Mapping[str, Any]] | None = None,
    pair_limits: Mapping[str, Any] | None = None,
    risk: Mapping[str, Any] | None = None,
    gateway: Mapping[str, Mapping[str, Any]] | None = None,
    balances: Mapping[tuple[str, str], str] | None = None,
    instruments: Mapping[str, Instrument] | None = None,
    policy: ExecutionPolicy | None = None,
    offsets: Iterable[str] | None = None,
    risk_pairs: Mapping[str, tuple[str, Instrument, Instrument]] | None = None,
    min_edge_bps: str = "5",
    max_size: str = "0.05",
    warm_every: int = WARM_EVERY,
) -> Rig:
    """A rig with LIVE quiet books. Overrides: ``venue_limits[venue]`` (VenueLimits kwargs),
    ``pair_limits`` (PairLimits kwargs, every pair), ``risk`` (RiskLimits kwargs),
    ``gateway[venue]`` (PaperGateway kwargs), ``balances`` ((venue, asset) -> amount),
    ``offsets`` (venues whose ClockOffset has its sample; default all), ``risk_pairs[pair]``
    (the id and instruments the risk limits give that pair, when they should not match)."""
    clock = FakeClock()
    insts = {**INSTRUMENTS, **(instruments or {})}
    pair_ids = list(pairs)
    names = sorted(
        {v for p in pair_ids for v in PAIRS[p]}
        | {CONVERSIONS[p] for p in pair_ids if p in CONVERSIONS}
    )
    traded = {v for p in pair_ids for v in PAIRS[p]}
    start = {
        (v, a): amount for v in traded for a, amount in (("BTC", "2"), (insts[v].quote, "200000"))
    }
    start.update(balances or {})
    portfolio = Portfolio({k: atoms(v) for k, v in start.items()}, clock=clock.wall)

    venues: dict[str, Venue] = {}
    for name in names:
        sync = BookSync(insts[name], RULES[name])
        sync.start()  # subscribed: waiting for the snapshot
        venues[name] = Venue(name, insts[name], sync)

    def book_of(name: str) -> Any:
        def books(symbol: str) -> Book | None:
            sync = venues[name].sync
            return sync.book if sync.live and symbol == sync.instrument.symbol else None

        return books

    gateways = {
        name: SpyGateway(
            name,
            book_of(name),
            portfolio,
            fee_bps=FEE,
            latency_s=0.001,
            seed=i,
            **(gateway or {}).get(name, {}),
        )
        for i, name in enumerate(names)
    }
    journal = Journal(directory / "journal", batch_ms=1)
    vl = venue_limits or {}
    venue_rows = []
    for name in names:
        v_kw: dict[str, Any] = {"rate_limits": (RateLimit(1000, 1000, 1),), **vl.get(name, {})}
        venue_rows.append(VenueLimits(name, **v_kw))
    pair_rows = []
    for pid in pair_ids:
        p_kw: dict[str, Any] = {
            "min_edge_bps": "5",
            "max_edge_bps": "500",
            "max_base": "0.05",
            "max_notional": "10000",
            "fee_a_bps": FEE,
            "fee_b_bps": FEE,
            **(pair_limits or {}),
        }
        ids = (risk_pairs or {}).get(pid, (pid, insts[PAIRS[pid][0]], insts[PAIRS[pid][1]]))
        pair_rows.append(PairLimits(*ids, **p_kw))
    r_kw: dict[str, Any] = {
        "max_inventory": {"BTC": "1"},
        "max_net_exposure": {"BTC": "1"},
        "max_daily_loss": "1000",
        "max_drawdown": "2000",
        **(risk or {}),
    }
    limits = RiskLimits(tuple(venue_rows), tuple(pair_rows), **r_kw)
    gates = RiskGates(limits, portfolio, clock=clock, wall_clock=clock.wall)
    executor = Executor(
        gateways,
        portfolio,
        journal,
        fee_bps=dict.fromkeys(names, FEE),
        books=lambda inst: venues[inst.venue].sync.book if venues[inst.venue].sync.live else None,
        risk=gates,
        clock=clock,
    )
    pol = policy or ExecutionPolicy(order_timeout_s=1.0, query_interval_s=0.02)
    pair_objs = {
        pid: Pair(
            PairConfig(
                pid,
                insts[PAIRS[pid][0]],
                insts[PAIRS[pid][1]],
                FEE,
                FEE,
                Decimal(min_edge_bps),
                max_size=max_size,
                policy=pol,
                conversion=insts[CONVERSIONS[pid]] if pid in CONVERSIONS else None,
            ),
            venues[PAIRS[pid][0]].sync,
            venues[PAIRS[pid][1]].sync,
            venues[CONVERSIONS[pid]].sync if pid in CONVERSIONS else None,
        )
        for pid in pair_ids
    }
    clocks = {name: ClockOffset() for name in names}
    for name in names if offsets is None else offsets:
        wall = time.time_ns()  # ClockOffset windows run on the real wall clock
        clocks[name].add(wall, wall - VENUE_OFFSET_NS)
    engine = Engine(
        pair_objs.values(),
        executor=executor,
        risk=GateCheck(gates, clocks),
        journal=journal,
        clock=clock,
        arb_prefix="t",
        warm_every=warm_every,
    )
    rig = Rig(
        clock,
        venues,
        clocks,
        portfolio,
        gateways,
        journal,
        limits,
        gates,
        executor,
        pair_objs,
        engine,
    )
    for name, v in venues.items():
        bid, ask = QUIET[name]
        v.bids, v.asks = rig._levels(v, [(bid, "1")]), rig._levels(v, [(ask, "1")])
        assert rig.snapshot(name) == OUT_SNAPSHOT and v.sync.live
    assert not engine.counters  # a quiet market: nothing found
    return rig


def refused(
    rig: Rig, reason: str, count: int, pair_id: str = "btc", sent: int = 0
) -> dict[str, Any]:
    """``count`` opportunities of ``pair_id`` refused for ``reason``, journaled once, and no
    order beyond the ``sent`` earlier ones handed to any gateway. Returns the journal entry."""
    assert len(rig.sent()) == sent, rig.sent()
    assert rig.engine.counters.get(f"risk:{reason}", 0) == count, rig.engine.counters
    assert rig.gates.counts[Reason[reason]] == count
    entries = [e for e in rig.refusals() if e["reason"] == reason]
    assert len(entries) == 1, entries
    assert entries[0]["pair_id"] == pair_id
    return entries[0]
