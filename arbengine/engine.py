"""Detection: every change of a LIVE book in a pair reruns the spread calculator both ways.

Feeds call ``Engine.on_book`` inline, right after the frame that changed the book, so the
whole path (frame -> book -> spread -> risk -> both legs handed off) runs in one go on the
event loop with nothing queued in between. The 100 ms budget runs from that frame's receive
stamp: an arb whose legs would go out past it is dropped and counted, never sent late.

Stage stamps (monotonic ns) ride on each Opportunity and are journaled with its orders:
frame received, book applied (the feed's callback), opportunity found, risk passed, each
leg handed to its gateway; acks and fills carry their own.

A pair fires at most one arb at a time: until both legs are final the books do not yet
show our own fills (and paper fills never move them), so the same dislocation would
otherwise fire again on every update.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext

from arbengine._core.gates import ArbGate
from arbengine._core.instrument import Instrument
from arbengine._core.spread import BUY_A_SELL_B, BUY_B_SELL_A, OK, SpreadCalculator, SpreadResult
from arbengine.execution import (
    Arb,
    ArbState,
    ExecutionPolicy,
    Executor,
    Opportunity,
    edge_decimal,
)
from arbengine.journal import Journal
from arbengine.portfolio import Portfolio
from arbengine.recovery import CHECKPOINT, COUNTERS, KILL_SWITCH, STATE_VERSION, Recovery
from arbengine.risk import KillLevel, Reason, RiskGates
from arbengine.venues._clock import ClockOffset
from arbengine.venues._sync import BookSync

BUDGET_NS = 100_000_000  # 100 ms from the triggering frame
# Book updates between two warm-ups of the order path (``Engine.warm_every``, the config's
# ``engine.warm_every``): a few hundred updates between arbs evict it from the caches, and
# in the engine benchmark the warm-ups took 5-24 us off the hand-off of both legs for ~5%
# of the core at 55,000 updates/s.
WARM_EVERY = 8
_DONE = ArbState.DONE  # a global: an enum member read through its class costs ~0.1 us


@dataclass(frozen=True, slots=True)
class PairConfig:
    """Venue A instrument <-> venue B instrument of the same base asset.

    Same quote, or different quotes with ``conversion``: an instrument trading one quote
    against the other (e.g. Binance BTCUSDT vs Kraken XBT/USD, converted through a USDT-USD
    book). Edges are then measured in A's quote, at the conversion book's bid or ask,
    whichever a real conversion would get."""

    pair_id: str
    a: Instrument
    b: Instrument
    fee_a_bps: Decimal
    fee_b_bps: Decimal
    min_edge_bps: Decimal
    max_size: str | None = None  # base units, decimal text
    policy: ExecutionPolicy = field(default_factory=ExecutionPolicy)
    conversion: Instrument | None = None

    def __post_init__(self) -> None:
        if self.a.base != self.b.base:
            raise ValueError(
                f"pair {self.pair_id}: base assets differ ({self.a.base} vs {self.b.base})"
            )
        conv = self.conversion
        if self.a.quote != self.b.quote:
            if conv is None:
                raise ValueError(
                    f"pair {self.pair_id}: quotes differ ({self.a.quote} vs {self.b.quote}) "
                    "and no conversion instrument is given"
                )
            if {conv.base, conv.quote} != {self.a.quote, self.b.quote}:
                raise ValueError(
                    f"pair {self.pair_id}: conversion {conv.name} trades {conv.base}/"
                    f"{conv.quote}, not {self.a.quote} against {self.b.quote}"
                )
        elif conv is not None:
            raise ValueError(
                f"pair {self.pair_id}: both sides are quoted in {self.a.quote}; "
                f"the conversion {conv.name} has nothing to convert"
            )
        if (self.a.venue, self.a.symbol) == (self.b.venue, self.b.symbol):
            raise ValueError(f"pair {self.pair_id}: both sides are {self.a.name}")


class GateCheck:
    """The risk gates as the engine uses them: ``bind`` makes each pair's compiled
    ``ArbGate`` (``_core/gates.pyx``), which checks an arb straight from the spread
    calculator's result and the pair's books, with no Python object built before the gates
    have passed it.

    ``clocks`` maps a venue to its feed's ClockOffset so the data-age gate can correct the
    venue's event time; a venue without one is judged on the receive stamp alone. ``wall``
    (epoch ns) is the clock those offsets are read at.
    """

    def __init__(
        self,
        gates: RiskGates,
        clocks: Mapping[str, ClockOffset] | None = None,
        *,
        wall: Callable[[], int] = time.time_ns,
    ) -> None:
        self.gates = gates
        self.clocks = dict(clocks or {})
        self.wall = wall

    def bind(self, pair: Pair) -> ArbGate:
        """``pair``'s compiled check. Raises ValueError if the gates have no limits for the
        pair or its instruments differ from theirs."""
        cfg = pair.config
        return ArbGate(
            self.gates,
            cfg.pair_id,
            cfg.a,
            cfg.b,
            pair.sync_a.book,
            pair.sync_b.book,
            None if self.wall is time.time_ns else self.wall,  # None: read by the kernel
        )

    def clock(self, venue: str) -> ClockOffset | None:
        return self.clocks.get(venue)


_REASON_NAMES = tuple(r.name for r in Reason)


class Pair:
    """A configured pair bound to its two books, with its calculator and scratch results."""

    __slots__ = (
        "calc",
        "config",
        "evaluations",
        "found",
        "gate",
        "in_flight",
        "last_verdict",
        "opportunities",
        "rate_top",
        "results",
        "sync_a",
        "sync_b",
        "sync_conv",
    )

    def __init__(
        self,
        config: PairConfig,
        sync_a: BookSync,
        sync_b: BookSync,
        sync_conv: BookSync | None = None,
    ) -> None:
        if (config.conversion is None) != (sync_conv is None):
            raise ValueError(
                f"pair {config.pair_id}: a conversion instrument needs its book, and only then"
            )
        self.config = config
        self.sync_a = sync_a
        self.sync_b = sync_b
        self.sync_conv = sync_conv
        self.rate_top: tuple[int, int] | None = None  # conversion top the rate was set from
        self.calc = SpreadCalculator(
            config.a,
            config.b,
            config.fee_a_bps,
            config.fee_b_bps,
            min_edge_bps=config.min_edge_bps,
            max_size=config.max_size,
            cross_quote=config.conversion is not None,
        )
        # Preallocated: calc_into fills them in place, no object per evaluation. With each
        # direction, the instruments it buys and sells.
        self.results = (
            (
                BUY_A_SELL_B,
                self.calc.calc(sync_a.book, sync_b.book, BUY_A_SELL_B),
                config.a,
                config.b,
            ),
            (
                BUY_B_SELL_A,
                self.calc.calc(sync_a.book, sync_b.book, BUY_B_SELL_A),
                config.b,
                config.a,
            ),
        )
        self.gate: ArbGate | None = None  # bound by the Engine (GateCheck.bind)
        self.in_flight: Arb | None = None  # this pair's open arb
        self.last_verdict: dict[int, str] = {}
        self.evaluations = 0
        self.opportunities = 0
        self.found = [0, 0]  # opportunities by direction (BUY_A_SELL_B, BUY_B_SELL_A)

    def update_rate(self) -> bool:
        """Keep the calculator's quote rate on the conversion book's top; False when there
        is no usable rate (book not LIVE or one-sided). Decimal work only when the top moves."""
        sync = self.sync_conv
        assert sync is not None
        bid = sync.book.best_bid() if sync.live else None
        ask = sync.book.best_ask() if sync.live else None
        if bid is None or ask is None:
            if self.rate_top is not None:
                self.calc.clear_quote_rate()
                self.rate_top = None
            return False
        top = (bid[0], ask[0])
        if top != self.rate_top:
            pay, get = quote_rate(self.config, bid[0], ask[0])
            self.calc.set_quote_rate(pay, get)
            self.rate_top = top
        return True


def quote_rate(config: PairConfig, bid_units: int, ask_units: int) -> tuple[Decimal, Decimal]:
    """(pay, get): A's quote paid per unit of B's quote we must obtain (to buy on B), and
    received per unit of B's quote we earn (selling on B), at the conversion book's touch.

    Conversion book X/Y at bid/ask (Y per X). If X is A's quote, one unit of B's quote costs
    1/bid of A's (we sell A's quote at the bid) and is worth 1/ask (we buy it back at the
    ask); if X is B's quote, it costs the ask and is worth the bid. Rounded against us."""
    conv = config.conversion
    assert conv is not None
    bid, ask = Decimal(conv.price.format(bid_units)), Decimal(conv.price.format(ask_units))
    with localcontext() as ctx:
        ctx.prec = 34
        if conv.base == config.a.quote:
            ctx.rounding = ROUND_CEILING
            pay = 1 / bid
            ctx.rounding = ROUND_FLOOR
            get = 1 / ask
        else:
            pay, get = ask, bid
    return pay, get


class Engine:
    """Runs detection on book changes and hands passing arbs to the executor."""

    def __init__(
        self,
        pairs: Iterable[Pair],
        *,
        executor: Executor,
        risk: GateCheck,
        journal: Journal,
        budget_ns: int = BUDGET_NS,
        clock: Callable[[], int] = time.monotonic_ns,
        arb_prefix: str = "",
        gates: RiskGates | None = None,
        warm_every: int = WARM_EVERY,
    ) -> None:
        if warm_every < 0:
            raise ValueError(f"warm_every must be >= 0 book updates, got {warm_every}")
        self.pairs = list(pairs)
        # The kill switch and the risk counters live in the gates; the engine journals their
        # changes (``kill``/``resume``/``refresh``) and checkpoints them.
        self.gates = gates if gates is not None else getattr(risk, "gates", None)
        self._kills_journaled = len(self.gates.history) if self.gates is not None else 0
        self.executor = executor
        self.risk = risk
        self.journal = journal
        self.budget_ns = budget_ns
        self.clock = clock
        # Per book: the pairs it is in and its venue's clock offset (for the data-age gate).
        self._by_sync: dict[int, tuple[list[Pair], ClockOffset | None]] = {}
        for pair in self.pairs:
            pair.gate = risk.bind(pair)
            # A conversion book's change moves the rate: it can open an edge too.
            for sync in (pair.sync_a, pair.sync_b, pair.sync_conv):
                if sync is not None:
                    entry = self._by_sync.get(id(sync))
                    if entry is None:
                        entry = self._by_sync[id(sync)] = ([], risk.clock(sync.instrument.venue))
                    entry[0].append(pair)
        self._ids = itertools.count(1)
        # Unique across restarts: client ids derive from arb ids and venues refuse repeats.
        self.arb_prefix = arb_prefix or f"{time.time_ns() // 1_000_000:x}"
        self._next_arb()
        self.counters: dict[str, int] = {}
        # Frame received -> both legs handed off, for the recent arbs (bounded: a daemon runs
        # for weeks).
        self.latencies_ns: deque[int] = deque(maxlen=100_000)
        self._marks: dict[str, Decimal] = {}
        # Every ``warm_every`` book updates (0: never) the updated pair's hand-off is run
        # through the gateways' ``warm``, one direction then the other (``Executor.warm``).
        self.warm_every = warm_every
        self._until_warm = warm_every
        self._warm_flip = False

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def _next_arb(self) -> None:
        # The next arb's id, and its legs built now rather than on its path.
        self._arb_id = f"{self.arb_prefix}-{next(self._ids)}"
        self.executor.prepare(self._arb_id)

    def on_book(self, sync: BookSync, recv_ns: int) -> None:
        """The feeds' hook: ``sync``'s LIVE book just changed on a frame received at
        ``recv_ns``."""
        entry = self._by_sync.get(id(sync))
        if entry is None:
            return
        applied_ns = self.clock()
        for pair in entry[0]:
            self._evaluate(pair, sync, entry[1], recv_ns, applied_ns)
        self._until_warm -= 1
        if self._until_warm <= 0 and self.warm_every:
            self._warm(entry[0][0])

    def _warm(self, pair: Pair) -> None:
        self._until_warm = self.warm_every
        a, b = pair.sync_a.instrument, pair.sync_b.instrument
        self._warm_flip = not self._warm_flip
        if self._warm_flip:
            self.executor.warm(a, b)
        else:
            self.executor.warm(b, a)

    def on_resync(self, sync: BookSync) -> None:
        """The feeds' other hook: ``sync``'s book just left LIVE on a bad frame. Counted
        into the venue's health (too many resyncs make it unhealthy: no new arbs there)."""
        self._count("resyncs")
        if self.gates is not None:
            self.gates.record_resync(sync.instrument.venue)

    def _evaluate(
        self,
        pair: Pair,
        trigger: BookSync,
        clock: ClockOffset | None,
        recv_ns: int,
        applied_ns: int,
    ) -> None:
        pair.evaluations += 1
        if pair.in_flight is not None:
            if pair.in_flight.state != _DONE:
                return
            pair.in_flight = None
        sync_a, sync_b = pair.sync_a, pair.sync_b
        if not (sync_a.live and sync_b.live):
            return
        if pair.sync_conv is not None and not pair.update_rate():
            return
        book_a, book_b = sync_a.book, sync_b.book
        calc = pair.calc
        for direction, res, buy, sell in pair.results:
            calc.calc_into(book_a, book_b, direction, res)
            if res.status != OK:
                continue
            self._act(pair, trigger, clock, direction, res, buy, sell, recv_ns, applied_ns)
            return  # one arb at a time per pair

    def _act(
        self,
        pair: Pair,
        trigger: BookSync,
        clock: ClockOffset | None,
        direction: int,
        res: SpreadResult,
        buy: Instrument,
        sell: Instrument,
        recv_ns: int,
        applied_ns: int,
    ) -> None:
        """The arb path: gates, both legs handed off, then everything that can wait.

        Until the legs are out nothing is built that the hand-off does not need: the
        compiled gate reads the spread result and the books itself, the executor builds
        the two orders from the result's ints, and the Opportunity, the counters, the next
        arb id and the latency sample all come after."""
        found_ns = self.clock()
        cfg = pair.config
        if found_ns > recv_ns + self.budget_ns:
            # Already too late to send: drop it before the gates take rate tokens (or a
            # half-open breaker's one trial) for an arb that will never go out.
            self._found(pair, direction)
            self._count("past_budget")
            self.journal.write(
                "arb_dropped",
                pair_id=cfg.pair_id,
                reason="past_budget",
                late_ns=found_ns - recv_ns - self.budget_ns,
            )
            return
        gate = pair.gate
        assert gate is not None  # bound in __init__
        code = gate.check(res, pair.sync_a.live, pair.sync_b.live, recv_ns, trigger.book, clock)
        if code:
            self._refused(pair, direction, res, buy, sell, _REASON_NAMES[code], recv_ns)
            return
        risk_ns = self.clock()
        arb_id = self._arb_id
        policy = cfg.policy
        legs = self.executor.send(
            arb_id,
            cfg.pair_id,
            buy,
            res.buy_limit,
            res.buy_size,
            sell,
            res.sell_limit,
            res.sell_size,
            policy.tif,
            recv_ns + self.budget_ns,
        )
        # The legs are out (or dropped): everything from here can wait for them.
        self._next_arb()
        self._found(pair, direction)
        pair.last_verdict[direction] = ""
        if legs is None:
            self._count("past_budget")
            return
        edge = res.edge_ratio
        # Positional: keywords cost more in the generated __init__.
        opp = Opportunity(
            arb_id,
            cfg.pair_id,
            buy,
            sell,
            res.buy_limit,
            res.buy_size,
            res.sell_limit,
            res.sell_size,
            edge[0],
            edge[1],
            recv_ns,
            applied_ns,
            found_ns,
            risk_ns,
            res.base_qty,
            res.size_decimals,
        )
        arb = self.executor.open(opp, policy, legs)
        pair.in_flight = arb
        buy_order, sell_order = legs[0], legs[1]
        self.latencies_ns.append(max(buy_order.sent_ns, sell_order.sent_ns) - recv_ns)

    def _found(self, pair: Pair, direction: int) -> None:
        pair.opportunities += 1
        pair.found[direction] += 1
        self._count("opportunities")

    def _refused(
        self,
        pair: Pair,
        direction: int,
        res: SpreadResult,
        buy: Instrument,
        sell: Instrument,
        verdict: str,
        recv_ns: int,
    ) -> None:
        self._found(pair, direction)
        self._count(f"risk:{verdict}")
        # Journal a refusal when it changes, not on every update it persists through: the
        # same blocked dislocation can be re-detected thousands of times a second.
        if pair.last_verdict.get(direction) != verdict:
            pair.last_verdict[direction] = verdict
            edge = res.edge_ratio
            self.journal.write(
                "risk_refused",
                pair_id=pair.config.pair_id,
                reason=verdict,
                buy=buy.name,
                sell=sell.name,
                edge_bps=str(edge_decimal(edge[0], edge[1])),
                recv_ns=recv_ns,
            )

    # -- the kill switch (operator and automatic), journaled ------------------------------

    def _require_gates(self) -> RiskGates:
        if self.gates is None:
            raise RuntimeError("this engine has no risk gates to switch")
        return self.gates

    def kill(self, level: KillLevel, by: str, why: str) -> KillLevel:
        level = self._require_gates().kill(level, by, why)
        self._journal_kills()
        if level == KillLevel.FLATTEN:
            self.flatten()
        return level

    def resume(self, by: str, why: str = "", level: KillLevel = KillLevel.NONE) -> KillLevel:
        level = self._require_gates().resume(by, why, level)
        self._journal_kills()
        return level

    def refresh(self, marks: Mapping[str, Decimal] | None = None) -> KillLevel:
        """The automatic kill triggers (loss, drawdown, exposure) against ``marks`` (by
        default ``self.marks()``, from the books); ``watch`` calls it on a timer."""
        level = self._require_gates().refresh(self.marks() if marks is None else marks)
        self._journal_kills()
        return level

    def marks(self) -> dict[str, Decimal]:
        """Each traded asset's price in the portfolio's reference currency: the mid of a
        LIVE book of the pairs, converted through the quote's own mark when the quote is not
        the reference. The last known mark stays when every book of an asset is down (a
        valuation that silently dropped an asset would hide a loss)."""
        reference = self._portfolio().reference
        mids: dict[tuple[str, str], Decimal] = {}  # (base, quote) -> mid, quote per base
        for pair in self.pairs:
            for sync in (pair.sync_a, pair.sync_b, pair.sync_conv):
                if sync is None or not sync.live:
                    continue
                inst = sync.instrument
                bid, ask = sync.book.best_bid(), sync.book.best_ask()
                if (inst.base, inst.quote) in mids or bid is None or ask is None:
                    continue
                fmt = inst.price.format
                mids[inst.base, inst.quote] = (Decimal(fmt(bid[0])) + Decimal(fmt(ask[0]))) / 2
        # Walk the books outward from the reference: BTC/USD needs USD, which a USDT-USD
        # conversion book prices (inverted, as the reference is its base).
        known: dict[str, Decimal] = {reference: Decimal(1)}
        for _ in range(len(mids)):
            grew = False
            for (base, quote), mid in mids.items():
                if quote in known and base not in known:
                    known[base] = mid * known[quote]
                    grew = True
                elif base in known and quote not in known and mid:
                    known[quote] = known[base] / mid
                    grew = True
            if not grew:
                break
        del known[reference]
        self._marks.update(known)
        return dict(self._marks)

    async def watch(self, interval_s: float = 1.0, counters_every: int = 10) -> None:
        """Off the hot path, forever: the automatic kill triggers every ``interval_s`` and
        the counters journaled every ``counters_every`` rounds (what a restart restores)."""
        rounds = 0
        while True:
            await asyncio.sleep(interval_s)
            try:
                self.refresh()
            except KeyError as exc:  # an asset held but never priced: say so, once a round
                self._count("marks_missing")
                self.journal.write("risk_refresh_failed", missing_mark=str(exc.args[0]))
            if self.gates is not None and self.gates.level == KillLevel.FLATTEN:
                self.flatten()  # again each round: an IOC may fill only in part
            rounds += 1
            if rounds % counters_every == 0:
                self.write_counters()

    def flatten(self) -> list[Arb]:
        """The kill switch's FLATTEN level at work: for every traded asset the portfolio
        holds (and no arb of it is still settling), one IOC order on the pairs' best LIVE
        book takes the holding towards zero (``Executor.flatten``). ``kill`` calls it at
        once and ``watch`` every round while the level stays, until only dust is left."""
        candidates: dict[str, list[tuple[Instrument, ExecutionPolicy]]] = {}
        seen: set[str] = set()
        for pair in self.pairs:
            cfg = pair.config
            for inst in (cfg.a, cfg.b):
                if inst.name not in seen:
                    seen.add(inst.name)
                    candidates.setdefault(inst.base, []).append((inst, cfg.policy))
        sent = []
        for options in candidates.values():
            arb = self.executor.flatten(self._arb_id, options)
            if arb is not None:
                self._next_arb()
                sent.append(arb)
        return sent

    def _journal_kills(self) -> None:
        gates = self._require_gates()
        for ev in gates.history[self._kills_journaled :]:
            self.journal.write(
                KILL_SWITCH,
                level=ev.level.name,
                previous=ev.previous.name,
                by=ev.by,
                why=ev.why,
                wall_ns=ev.wall_ns,
            )
        self._kills_journaled = len(gates.history)

    # -- checkpoints and recovery (see ``recovery``) ----------------------------------------

    def _portfolio(self) -> Portfolio:
        pf = self.executor.portfolio
        if not isinstance(pf, Portfolio):
            raise TypeError("checkpoints need the executor to keep a Portfolio")
        return pf

    def write_counters(self) -> int:
        """Journal the counters (cheap; a daemon does it every few seconds) so a restart
        restores the per-update ones exactly as of then."""
        return self.journal.write(
            COUNTERS,
            engine=dict(self.counters),
            executor=dict(self.executor.counters),
            risk=self._risk_counts(),
        )

    def _risk_counts(self) -> dict[str, int]:
        return {} if self.gates is None else self.gates.counters()

    def checkpoint(self) -> int:
        """Journal the whole state a restart starts from: written at startup, after a
        recovery, and whenever the daemon wants replays to stay short."""
        gates = self.gates
        level = gates.level if gates is not None else KillLevel.NONE
        last = gates.history[-1] if gates is not None and gates.history else None
        state = {
            "version": STATE_VERSION,
            "portfolio": self._portfolio().snapshot(),
            "open_arbs": self.executor.open_state(),
            "exposure": dict(self.executor.exposure),
            "kill": {
                "level": level.name,
                "by": last.by if last is not None and level else "",
                "why": last.why if last is not None and level else "",
            },
            "engine_counters": dict(self.counters),
            "executor_counters": dict(self.executor.counters),
            "risk_counters": self._risk_counts(),
        }
        return self.journal.write(CHECKPOINT, state=state)

    def adopt(self, rec: Recovery) -> None:
        """Resume from what ``recovery.recover`` rebuilt: the executor must already use
        ``rec.portfolio``. Open arbs are taken over (their orders resolved with the venues),
        unhedged exposure, counters and the kill-switch level are restored, and a fresh
        checkpoint marks where the next replay starts."""
        if self.executor.portfolio is not rec.portfolio:
            raise ValueError("adopt: the executor must be built on the recovered portfolio")
        while any(arb_id.startswith(f"{self.arb_prefix}-") for arb_id in rec.arb_ids):
            self.arb_prefix += "r"  # ids must never repeat: venues refuse a used client id
        self._next_arb()
        for key, n in rec.engine_counters.items():
            self.counters[key] = self.counters.get(key, 0) + n
        for key, n in rec.executor_counters.items():
            self.executor.counters[key] = self.executor.counters.get(key, 0) + n
        if self.gates is not None:
            for name, n in rec.risk_counters.items():
                self.gates.counts[Reason[name.upper()]] += n
        for asset, atoms in rec.exposure.items():
            self.executor.exposure[asset] = self.executor.exposure.get(asset, 0) + atoms
        by_id = {p.config.pair_id: p for p in self.pairs}
        for arb in rec.arbs.values():
            pair = by_id.get(arb.pair_id)
            policy = pair.config.policy if pair is not None else ExecutionPolicy()
            live = self.executor.adopt(arb, policy)
            if pair is not None and live.state != ArbState.DONE:
                pair.in_flight = live
        if rec.kill_level and self.gates is not None:
            self.kill(rec.kill_level, rec.kill_by or "recovery", f"restored: {rec.kill_why}")
        self.journal.write(
            "recovered",
            from_checkpoint=rec.checkpoint_seq,
            last_seq=rec.last_seq,
            replayed=rec.replayed,
            open_arbs=len(rec.arbs),
            open_orders=len(rec.open_orders()),
            exposure=dict(rec.exposure),
            kill_level=rec.kill_level.name,
        )
        self.checkpoint()
