"""Counters the engine's modules do not keep themselves, taken where the daemon wires them.

The exporter (``arbengine.metrics``) reads what the engine, gates, executor, portfolio,
feeds and journal already count. Three things the issue asks for are counted nowhere in
those modules, so they are tapped here without touching them:

* ``ArbStats``: per arb, the stage and tick-to-order latencies from the stamps every
  ``Opportunity`` and leg carry, and the arb's pair, direction and edge. ``observe`` is the
  one call per arb (the engine may make it right after the hand-off); until it does,
  ``harvest`` finds the arbs the executor opened since the last call (the exporter runs it
  on the event loop at every scrape).
* ``OrderTap``: sits between the gateways and the executor as their ``OrderEvents``
  listener and counts, per venue, acks (and their latency from the hand-off), fills and
  final states, then passes every event on unchanged.
* ``TimedJournal`` / ``JournalTimings``: the journal's inline ``write`` and its writer
  thread's fsyncs, timed (the fsync through the journal's own ``fsync`` hook).

All of it runs on the thread that already does the work (the event loop; the journal's
writer thread for fsyncs) and only bumps ints; the exporter reads from its own thread.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from arbengine.journal import FsyncFn, Journal
from arbengine.metrics_histogram import (
    LATENCY_BOUNDS_NS,
    SLOW_BOUNDS_NS,
    IntHistogram,
    LatencyHistogram,
)
from arbengine.orders import Fill, Order, OrderEvents, OrderStatus

if TYPE_CHECKING:
    from arbengine._core.instrument import Instrument
    from arbengine.engine import Pair
    from arbengine.execution import Arb, Opportunity
    from arbengine.orders import Gateway

#: The engine's stages, in order, each from the previous stamp: frame received -> book
#: applied (feed callback) -> opportunity found -> risk passed -> last leg handed off.
STAGES: Final = ("book", "detect", "risk", "handoff")
DIRECTIONS: Final = ("buy_a_sell_b", "buy_b_sell_a")
#: Final order states, the ``status`` label of the order outcome counter.
FINAL_STATUSES: Final = (OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED)

#: Net edge of traded arbs, in hundredths of a bp (the histogram's unit; exported in bps).
EDGE_BOUNDS_CBPS: Final[tuple[int, ...]] = (
    0,
    250,
    500,
    750,
    1_000,
    1_500,
    2_000,
    3_000,
    5_000,
    7_500,
    10_000,
    20_000,
    50_000,
)
_UNKNOWN = OrderStatus.UNKNOWN


class PairArbs:
    """One pair and direction: arbs sent and the distribution of their net edge."""

    __slots__ = ("arbs", "edge")

    def __init__(self) -> None:
        self.arbs = 0
        self.edge = IntHistogram(EDGE_BOUNDS_CBPS, scale=100)


class ArbStats:
    """Latency and edge statistics of the arbs sent, one ``observe`` per arb."""

    def __init__(
        self, pairs: Iterable[Pair] = (), bounds_ns: Iterable[int] = LATENCY_BOUNDS_NS
    ) -> None:
        bounds = tuple(bounds_ns)
        self.tick_to_order = LatencyHistogram(bounds)
        self.stages: dict[str, LatencyHistogram] = {s: LatencyHistogram(bounds) for s in STAGES}
        self._stage_list = tuple(self.stages[s] for s in STAGES)
        # (pair id, the instrument bought) -> that direction's stats. Filled on the loop;
        # read by copy from the exporter's thread.
        self.by_pair: dict[tuple[str, str], PairArbs] = {}
        self._keys: dict[tuple[str, Instrument], PairArbs] = {}
        self.unmatched = 0  # arbs of a pair not (or no longer) configured
        self._last: Arb | None = None
        self.add_pairs(pairs)

    def add_pairs(self, pairs: Iterable[Pair]) -> None:
        """Register pairs (again, after a reload: known ones keep their counts)."""
        for pair in pairs:
            cfg = pair.config
            for direction, bought in zip(DIRECTIONS, (cfg.a, cfg.b), strict=True):
                stats = self.by_pair.get((cfg.pair_id, direction))
                if stats is None:
                    stats = self.by_pair[cfg.pair_id, direction] = PairArbs()
                self._keys[cfg.pair_id, bought] = stats

    def observe(self, opp: Opportunity, sent_ns: int) -> None:
        """One arb whose last leg went out at ``sent_ns`` (monotonic ns)."""
        stats = self._keys.get((opp.pair_id, opp.buy))
        if stats is None:
            self.unmatched += 1
        else:
            stats.arbs += 1
            num, den = opp.edge_num, opp.edge_den
            stats.edge.observe(-((-num * 100) // den))  # rounded up: exact for ``le``
        recv = opp.recv_ns
        if recv <= 0 or sent_ns <= 0:
            return  # no stamps: an arb adopted from a previous process, or an unsent leg
        self.tick_to_order.observe(sent_ns - recv)
        book, detect, risk, handoff = self._stage_list
        book.observe(opp.applied_ns - recv)
        detect.observe(opp.found_ns - opp.applied_ns)
        risk.observe(opp.risk_ns - opp.found_ns)
        handoff.observe(sent_ns - opp.risk_ns)

    def harvest(self, arbs: dict[str, Arb]) -> int:
        """``observe`` every arb opened since the last call, from the executor's ``arbs``
        (insertion order is opening order; settled ones are forgotten oldest first, so the
        newest ones are always there). Call it on the event loop. Returns how many."""
        fresh: list[Arb] = []
        last = self._last
        for arb in reversed(arbs.values()):
            if arb is last:
                break
            fresh.append(arb)
        if not fresh:
            return 0
        self._last = fresh[0]
        for arb in reversed(fresh):
            if arb.opp.recv_ns <= 0:
                continue  # adopted from a previous process: counted by that one
            sent = [leg.sent_ns for leg in arb.legs]
            self.observe(arb.opp, 0 if 0 in sent else max(sent))
        return len(fresh)


class OrderTap:
    """The gateways' listener in front of the executor: counts per venue, then forwards.

    Wire it after building the executor (which makes itself the listener):
    ``OrderTap(executor).attach(gateways.values())``. Counts only what the executor
    accepts: a duplicate fill or a second final state of one order is not counted.
    Orders the executor resolves by querying the venue (after an UNKNOWN) never pass
    through a listener; ``executor.counters['unknown']`` counts those episodes.
    """

    def __init__(self, events: OrderEvents, ack_bounds_ns: Iterable[int] = SLOW_BOUNDS_NS) -> None:
        self.events = events
        self._bounds = tuple(ack_bounds_ns)
        self.acks: dict[str, int] = {}
        self.fills: dict[str, int] = {}
        self.done: dict[tuple[str, str], int] = {}  # (venue, final status) -> orders
        # Orders the venue answered about (ack or final state) after they went UNKNOWN.
        self.unknown_resolved: dict[str, int] = {}
        self.ack_latency: dict[str, LatencyHistogram] = {}

    def add_venue(self, venue: str) -> None:
        """Every series of ``venue`` at zero, so rates and alerts see it before it trades."""
        self.acks.setdefault(venue, 0)
        self.fills.setdefault(venue, 0)
        self.unknown_resolved.setdefault(venue, 0)
        for status in FINAL_STATUSES:
            self.done.setdefault((venue, status.value), 0)
        if venue not in self.ack_latency:
            self.ack_latency[venue] = LatencyHistogram(self._bounds)

    def attach(self, gateways: Iterable[Gateway]) -> OrderTap:
        for gateway in gateways:
            self.add_venue(gateway.venue)
            gateway.set_listener(self)
        return self

    def on_ack(self, order: Order, ts_ns: int) -> None:
        venue = order.instrument.venue
        if venue not in self.acks:
            self.add_venue(venue)
        self.acks[venue] += 1
        if order.sent_ns and ts_ns >= order.sent_ns:
            self.ack_latency[venue].observe(ts_ns - order.sent_ns)
        was = order.status
        self.events.on_ack(order, ts_ns)
        if was == _UNKNOWN and order.status != _UNKNOWN:  # the executor takes it as ACKED
            self.unknown_resolved[venue] += 1

    def on_fill(self, order: Order, fill: Fill) -> None:
        before = len(order.fills)
        self.events.on_fill(order, fill)
        if len(order.fills) > before:
            venue = order.instrument.venue
            if venue not in self.fills:
                self.add_venue(venue)
            self.fills[venue] += 1

    def on_done(self, order: Order, status: OrderStatus, reason: str, ts_ns: int) -> None:
        was = order.status
        self.events.on_done(order, status, reason, ts_ns)
        if was.done or not order.status.done:
            return  # a repeat, or not taken as final
        venue = order.instrument.venue
        key = (venue, order.status.value)
        if key not in self.done:
            self.add_venue(venue)
        self.done[key] = self.done.get(key, 0) + 1
        if was == _UNKNOWN:
            self.unknown_resolved[venue] += 1


class JournalTimings:
    """How long journal writes (inline, on the caller's thread) and fsyncs (on the writer
    thread) take. ``fsync`` wraps the function the journal would call."""

    def __init__(
        self,
        fsync: FsyncFn = os.fsync,
        *,
        clock: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        self.write = LatencyHistogram()
        self.fsync_latency = LatencyHistogram(SLOW_BOUNDS_NS)
        self._fsync = fsync
        self.clock = clock

    def fsync(self, fd: int, /) -> None:
        start = self.clock()
        try:
            self._fsync(fd)
        finally:
            self.fsync_latency.observe(self.clock() - start)


class TimedJournal(Journal):
    """A ``Journal`` whose ``write`` and fsyncs are timed into ``timings``, built like a
    Journal (a given ``fsync`` is the one timed; with ``timings``, that one's). Entries
    written through a bound logger (``bind``/``arb``) are not timed: they do not pass
    through ``write``."""

    def __init__(
        self,
        directory: str | os.PathLike[str] | Path,
        *,
        timings: JournalTimings | None = None,
        fsync: FsyncFn | None = None,
        **kwargs: Any,
    ) -> None:
        if timings is not None and fsync is not None:
            raise ValueError("give the fsync to time to JournalTimings, not to both")
        # Set before Journal.__init__: it writes its open entry through ``write``.
        self.timings = timings or JournalTimings(fsync or os.fsync)
        self._timed_clock = self.timings.clock
        super().__init__(directory, fsync=self.timings.fsync, **kwargs)

    def write(self, event: str, **fields: Any) -> int:
        clock = self._timed_clock
        start = clock()
        seq = super().write(event, **fields)
        self.timings.write.observe(clock() - start)
        return seq
