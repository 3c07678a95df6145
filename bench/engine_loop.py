"""The engine over loopback: the parent (engine) side of the engine benchmark.

The engine process runs the real feeds (picows clients) on uvloop, pinned to CPU 0; the
generator (``bench.engine_gen``) is a spawned process pinned to CPU 1. The parent asks the
generator for phases over a pipe and, while a phase runs, samples every millisecond how
many frames each feed connection has handled (``WsFeed.counters.frames``). With the
generator's write log (frames sent so far on the connection, monotonic ns before each
write) that gives the lag: at a sample, the age of the oldest frame already written by the
generator but not yet handled by the feed (0 when the feed has caught up). A feed that
keeps up shows a lag of about one send quantum; one that does not shows a lag that grows
for as long as the phase lasts.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import os
import time
from array import array
from bisect import bisect_right
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from arbengine.busy_poll import BusyPoll
from arbengine.engine import WARM_EVERY
from arbengine.execution import Arb, ArbState
from arbengine.journal import read_entries
from arbengine.orders import OrderStatus
from bench.engine_gen import PhaseSpec, PhaseStats, child_main
from bench.engine_market import Market
from bench.engine_rig import Rig, build_rig

# The venues' code for an order on a symbol they do not list (Binance, OKX).
UNKNOWN_SYMBOL = frozenset({"-1121", "51001"})
ENGINE_CPU = 0
GENERATOR_CPU = 1


class Control:
    """The pipe to the generator, read from the event loop."""

    def __init__(self, pipe: Connection) -> None:
        self.pipe = pipe
        self.queue: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(pipe.fileno(), self._readable)
        os.set_blocking(pipe.fileno(), True)  # a reply is read whole once it starts

    def _readable(self) -> None:
        try:
            self.queue.put_nowait(self.pipe.recv())
        except (EOFError, OSError):
            self.loop.remove_reader(self.pipe.fileno())
            self.queue.put_nowait(("eof",))

    def send(self, *msg: Any) -> None:
        self.pipe.send(msg)

    async def recv(self, timeout_s: float) -> tuple[Any, ...]:
        msg = await asyncio.wait_for(self.queue.get(), timeout_s)
        if msg[0] in ("eof", "error"):
            raise RuntimeError(f"generator: {msg}")
        return msg

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.loop.remove_reader(self.pipe.fileno())
        self.pipe.close()


@dataclass
class ArbCheck:
    """What the arbs of a phase did. ``hard`` lists what cannot happen in a correct run (an
    arb where nothing was dislocated, an arb not settled after draining); the rest depends on
    timing: a feed more than ``quiet_s`` behind the generator handles a dislocation and its
    reversal in one go, and the legs then meet the restored book."""

    injections: int
    arbs: int
    matched: int  # injections that made their arb
    clean: int  # arbs whose two legs FILLED with no hedge
    hedged: int
    residual: int  # arbs left with unhedged exposure
    refused: dict[str, int]
    hard: list[str] = field(default_factory=list)
    clean_means: str = "both legs FILLED without a hedge"

    @property
    def perfect(self) -> bool:
        return (
            not self.hard
            and self.matched == self.injections == self.arbs == self.clean
            and not self.refused
        )

    def describe(self) -> str:
        return (
            f"{self.injections:,} injections -> {self.arbs:,} arbs ({self.matched:,} matched to "
            f"their injection); {self.clean_means}: {self.clean:,}; hedged "
            f"{self.hedged}, left with exposure {self.residual}; risk refusals "
            f"{self.refused or 'none'}" + (f"; FAILED: {'; '.join(self.hard)}" if self.hard else "")
        )


@dataclass
class PhaseResult:
    spec: PhaseSpec
    stats: PhaseStats
    lag_ns: list[int]  # per sample: the worst connection's lag
    backlog: list[int]  # per sample: frames written but not yet handled, all connections
    drain_ns: int  # generator's last write -> first sample with everything handled (1 ms)
    applied: int  # book updates the feeds applied in the phase (BookSync.applied)
    cpu_s: float  # engine process CPU time over the phase and its drain
    wall_s: float
    latencies_ns: list[int] = field(default_factory=list)
    engine_counters: dict[str, int] = field(default_factory=dict)
    executor_counters: dict[str, int] = field(default_factory=dict)
    arbs: list[str] = field(default_factory=list)  # arb ids of the phase, in order
    gc_pauses: list[tuple[int, int]] = field(default_factory=list)  # (generation, ns)
    load: CpuLoad | None = None

    def gc_summary(self) -> str:
        counts = [sum(1 for g, _ in self.gc_pauses if g == gen) for gen in range(3)]
        longest = max((ns for _, ns in self.gc_pauses), default=0)
        return (
            f"GC {counts[0]}/{counts[1]}/{counts[2]} collections (gen 0/1/2), longest "
            f"{longest / 1e6:.2f} ms"
        )

    @property
    def sent(self) -> int:
        return self.stats.background + len(self.stats.injections) + self.stats.restores

    @property
    def seconds(self) -> float:
        return (self.stats.t_end_ns - self.stats.t0_ns) / 1e9

    def lag_pct(self, q: float) -> float:
        return pct(self.lag_ns, q)


class GcWatch:
    """Every collection the cyclic GC runs while installed: (generation, ns)."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, int]] = []
        self._start = 0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter_ns()
        else:
            self.pauses.append((info["generation"], time.perf_counter_ns() - self._start))


def cpu_times() -> dict[int, tuple[int, int, int]]:
    """Per CPU, from /proc/stat, in clock ticks: (busy, irq + softirq, steal)."""
    out: dict[int, tuple[int, int, int]] = {}
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("cpu") and line[3].isdigit():
                    name, *fields = line.split()
                    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
                    out[int(name[3:])] = (
                        user + nice + system + irq + softirq,
                        irq + softirq,
                        steal,
                    )
    except OSError:
        pass
    return out


@dataclass
class CpuLoad:
    """Where the engine's CPU went over a phase, as fractions of the wall time."""

    engine: float  # the engine process (all its threads)
    irq: float  # interrupts and softirqs on the engine's CPU (loopback TCP runs there)
    others: float  # anything else that ran on the engine's CPU
    steal: float  # taken by the hypervisor
    pinned: bool

    @staticmethod
    def between(
        before: dict[int, tuple[int, int, int]],
        after: dict[int, tuple[int, int, int]],
        cpu: int | None,
        wall_s: float,
        process_s: float,
    ) -> CpuLoad:
        tick = os.sysconf("SC_CLK_TCK")
        cpus = [cpu] if cpu is not None else list(after)
        busy, irq, steal = (
            sum(after.get(c, (0, 0, 0))[i] - before.get(c, (0, 0, 0))[i] for c in cpus) / tick
            for i in range(3)
        )
        return CpuLoad(
            process_s / wall_s,
            irq / wall_s,
            max(0.0, busy - irq - process_s) / wall_s,
            steal / wall_s,
            cpu is not None,
        )

    def describe(self) -> str:
        where = "its CPU" if self.pinned else "all CPUs"
        return (
            f"engine process {100 * self.engine:.0f}%, irq/softirq {100 * self.irq:.0f}%, "
            f"other processes {100 * self.others:.0f}%, steal {100 * self.steal:.0f}% of {where}"
        )


def pct(values: list[int] | list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return float(s[min(len(s) - 1, int(q * len(s)))])


def _diff(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


class Loopback:
    """The generator process and the engine's rig, connected over 127.0.0.1."""

    def __init__(
        self,
        market: Market,
        journal_dir: Path,
        *,
        pin: bool,
        busy_poll: bool = False,
        live: bool = False,
        warm_every: int = WARM_EVERY,
    ) -> None:
        self.market = market
        self.warm_every = warm_every
        self.live = live  # legs to the real gateways (bytes written), not paper
        self.busy_poll = BusyPoll() if busy_poll else None
        self.journal_dir = journal_dir
        self.pin = pin and (os.cpu_count() or 1) >= 2
        self.proc: Any = None
        self.control: Control | None = None
        self.rig: Rig | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.tracked: dict[int, tuple[dict[int, int], dict[int, int]]] = {}
        self.book_bodies = [0] * len(market.books)
        self.connects = 0

    async def start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        cpu = GENERATOR_CPU if self.pin else None
        self.proc = ctx.Process(
            target=child_main,
            args=(child, self.market.config, cpu, self.live),
            daemon=True,
            name="bench-engine-generator",
        )
        self.proc.start()
        child.close()
        self.control = Control(parent)
        _, port, orders = await self.control.recv(120)
        base = f"127.0.0.1:{port}"
        self.rig = rig = build_rig(
            self.market,
            self.journal_dir,
            ws_base=f"ws://{base}",
            rest_base=f"http://{base}",
            okx_url=f"ws://{base}/ws/v5/public",
            orders=orders if self.live else None,
            warm_every=self.warm_every,
        )
        await rig.start_live()
        self.tasks = [asyncio.create_task(f.run()) for f in rig.feeds]
        end = time.monotonic() + 20
        while not all(s.live for s in rig.syncs):
            if time.monotonic() > end:
                bad = [s.instrument.name for s in rig.syncs if not s.live]
                raise SystemExit(f"loopback: books not LIVE after 20 s: {', '.join(bad)}")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        rig = self.rig
        if rig is not None:
            for feed in rig.feeds:
                await feed.stop()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            await rig.executor.close()
            await rig.stop_live()
            rig.close()
        if self.control is not None:
            with contextlib.suppress(Exception):
                self.control.send("stop")
            self.control.close()
        if self.proc is not None and self.proc.pid is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.proc.join, 10)
            if self.proc.is_alive():
                self.proc.terminate()
                self.proc.join(5)

    def frames_handled(self) -> list[int]:
        assert self.rig is not None
        return [f.ws.counters.frames for f in self.rig.feeds]

    async def phase(self, spec: PhaseSpec) -> PhaseResult:
        rig, control = self.rig, self.control
        assert rig is not None and control is not None
        engine, executor = rig.engine, rig.executor
        engine.latencies_ns.clear()
        counters0, exec0 = dict(engine.counters), dict(executor.counters)
        arbs0 = len(executor.arbs)
        applied0 = sum(s.applied for s in rig.syncs)
        # Flat arrays, not tuples: the sampler must not grow the heap the engine's GC scans.
        samples = array("q")  # t, then frames handled per connection, per sample
        feeds = rig.feeds
        sampling = True

        async def sample() -> None:
            while sampling:
                samples.append(time.monotonic_ns())
                samples.extend([f.ws.counters.frames for f in feeds])
                await asyncio.sleep(0.001)

        sampler = asyncio.create_task(sample())
        if self.busy_poll is not None:
            self.busy_poll.start()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        stat0 = cpu_times()
        gc_watch = GcWatch()
        gc.callbacks.append(gc_watch)
        control.send("phase", spec)
        (_, stats) = await control.recv(spec.duration_s + 60)
        venues = [f.ws.name.split("-")[0] for f in rig.feeds]
        sent = {c.venue: c.sent_total for c in stats.conns}
        want = [sent.get(v, 0) for v in venues]
        deadline = time.monotonic() + 120
        while any(h < w for h, w in zip(self.frames_handled(), want, strict=True)):
            if time.monotonic() > deadline:
                raise SystemExit("loopback: the feeds did not catch up within 120 s")
            await asyncio.sleep(0.0005)
        drained = time.monotonic_ns()
        if self.busy_poll is not None:
            await self.busy_poll.stop()
        sampling = False
        await sampler
        samples.append(drained)
        samples.extend(self.frames_handled())
        await executor.drain(30)
        gc.callbacks.remove(gc_watch)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        stat = cpu_times()
        core = ENGINE_CPU if self.pin else None
        load = CpuLoad.between(stat0, stat, core, wall, cpu)
        self.book_bodies = stats.book_bodies
        self.tracked.update(stats.tracked)
        lag, backlog = lags(stats, samples, venues)
        last_write = max(
            (array("q", c.log_t)[-1] for c in stats.conns if c.log_t), default=stats.t_end_ns
        )
        return PhaseResult(
            spec,
            stats,
            lag,
            backlog,
            caught_up(samples, want, drained) - last_write,
            sum(s.applied for s in rig.syncs) - applied0,
            cpu,
            wall,
            list(engine.latencies_ns),
            _diff(engine.counters, counters0),
            _diff(executor.counters, exec0),
            list(executor.arbs)[arbs0:],
            gc_watch.pauses,
            load,
        )

    # --- checks ----------------------------------------------------------------------------

    def check_books(self) -> list[str]:
        """Every book LIVE and equal to the generator's truth; [] when all is well."""
        rig = self.rig
        assert rig is not None
        problems = []
        for index, sync in enumerate(rig.syncs):
            truth = self.market.truth(index, self.book_bodies[index])
            if index in self.tracked:
                tracked = self.tracked[index]
                if tracked != truth:
                    problems.append(f"{sync.instrument.name}: generator's tracked book != truth")
            if not sync.live:
                problems.append(f"{sync.instrument.name}: {sync.state_name}")
            elif (dict(sync.book.bids()), dict(sync.book.asks())) != truth:
                problems.append(f"{sync.instrument.name}: differs from the generator's book")
        for feed in rig.feeds:
            if feed.ws.counters.connects != 1 or feed.ws.counters.handler_errors:
                problems.append(
                    f"{feed.ws.name}: {feed.ws.counters.connects} connects, "
                    f"{feed.ws.counters.handler_errors} handler errors ({feed.ws.last_error})"
                )
        return problems

    def check_arbs(self, result: PhaseResult) -> ArbCheck:
        rig = self.rig
        assert rig is not None
        arbs = [rig.executor.arbs[a] for a in result.arbs]
        matched = match_injections(self.market, result, arbs)
        hot = {self.market.books[2 * p].base for p in result.spec.hot_pairs}
        check = ArbCheck(
            injections=len(result.stats.injections),
            arbs=len(arbs),
            matched=len(matched),
            clean=sum(1 for a in arbs if self._clean(a)),
            hedged=sum(1 for a in arbs if a.hedges),
            residual=sum(1 for a in arbs if a.residual),
            refused={k: v for k, v in result.engine_counters.items() if k.startswith("risk:")},
        )
        if self.live:
            check.clean_means = "both legs refused by the venue as set up (unknown symbol)"
        for a in arbs:
            if a.opp.pair_id not in hot:
                check.hard.append(f"arb {a.arb_id} on {a.opp.pair_id}, never dislocated")
            if a.state != ArbState.DONE:
                check.hard.append(f"arb {a.arb_id} still {a.state}")
        check.hard = check.hard[:10]
        return check

    def _clean(self, arb: Arb) -> bool:
        """Paper: both legs filled. Live: both legs reached the venue and were refused with
        its unknown-symbol code (what the simulators are set up to answer)."""
        if arb.hedges:
            return False
        if not self.live:
            return [o.status for o in arb.legs] == [OrderStatus.FILLED] * 2
        return all(
            o.status is OrderStatus.REJECTED and o.reason.split(":")[0] in UNKNOWN_SYMBOL
            for o in arb.legs
        )

    def arb_entries(self, arb_ids: list[str]) -> list[dict[str, Any]]:
        rig = self.rig
        assert rig is not None
        rig.journal.flush()
        wanted = set(arb_ids)
        return [
            e
            for e in read_entries(rig.journal.directory)
            if e["event"] == "arb" and e["arb_id"] in wanted
        ]


def caught_up(samples: array[int], want: list[int], default: int) -> int:
    """Time of the first sample at which every connection had handled ``want`` frames."""
    width = 1 + len(want)
    for at in range(0, len(samples), width):
        if all(h >= w for h, w in zip(samples[at + 1 : at + width], want, strict=True)):
            return samples[at]
    return default


def lags(stats: PhaseStats, samples: array[int], venues: list[str]) -> tuple[list[int], list[int]]:
    """Per sample: the worst connection's age of the oldest unhandled frame, and the total
    number of frames written but not yet handled."""
    logs: list[tuple[array[int], array[int]] | None] = []
    for venue in venues:
        conn = next((c for c in stats.conns if c.venue == venue), None)
        if conn is None:
            logs.append(None)
            continue
        n, t = array("q"), array("q")
        n.frombytes(conn.log_n)
        t.frombytes(conn.log_t)
        logs.append((n, t))
    lag_out, backlog_out = [], []
    width = 1 + len(venues)
    for at in range(0, len(samples), width):
        when, handled = samples[at], samples[at + 1 : at + width]
        if when < stats.t0_ns:
            continue
        worst = total = 0
        for log, done in zip(logs, handled, strict=True):
            if log is None or not log[0]:
                continue
            n, t = log
            k = bisect_right(n, done)  # the write holding frame done + 1
            if k < len(n) and t[k] <= when:
                worst = max(worst, when - t[k])
            j = bisect_right(t, when) - 1
            if j >= 0:
                total += max(0, n[j] - done)
        lag_out.append(worst)
        backlog_out.append(total)
    return lag_out, backlog_out


def stage_breakdown(entries: list[dict[str, Any]]) -> dict[str, list[int]]:
    """ns per stage of every journaled arb (the engine's own stamps)."""
    stages: dict[str, list[int]] = {
        "frame received -> book applied": [],
        "book applied -> opportunity found": [],
        "opportunity found -> risk passed": [],
        "risk passed -> both legs handed off": [],
    }
    keys = list(stages)
    for e in entries:
        sent = max(int(x) for x in e["sent_ns"])
        stamps = [
            int(e["recv_ns"]),
            int(e["applied_ns"]),
            int(e["found_ns"]),
            int(e["risk_ns"]),
            sent,
        ]
        for key, a, b in zip(keys, stamps, stamps[1:], strict=False):
            stages[key].append(b - a)
    return stages


def match_injections(market: Market, result: PhaseResult, arbs: list[Arb]) -> dict[int, Arb]:
    """Injection index -> the arb it made: the first arb on that pair, in the injected
    direction, received after the injection was written and before the pair's next one."""
    by_pair: dict[str, list[Arb]] = {}
    for arb in sorted(arbs, key=lambda a: a.opp.recv_ns):
        by_pair.setdefault(arb.opp.pair_id, []).append(arb)
    per_pair: dict[str, list[tuple[int, int, int]]] = {}
    for i, (pair, t, direction) in enumerate(result.stats.injections):
        per_pair.setdefault(market.books[2 * pair].base, []).append((t, direction, i))
    out: dict[int, Arb] = {}
    for pair_id, injections in per_pair.items():
        candidates = by_pair.get(pair_id, [])
        for k, (t, direction, i) in enumerate(injections):
            until = injections[k + 1][0] if k + 1 < len(injections) else 1 << 62
            for arb in candidates:
                up = arb.opp.buy.venue == "binance"
                if t <= arb.opp.recv_ns < until and up == (direction > 0):
                    out[i] = arb
                    break
    return out


def wire_latencies(
    market: Market, result: PhaseResult, arbs: list[Arb]
) -> tuple[list[int], list[int]]:
    """(generator write -> frame received, generator write -> both legs handed off) of every
    injection that made its arb."""
    to_recv, to_sent = [], []
    for i, arb in match_injections(market, result, arbs).items():
        t = result.stats.injections[i][1]
        to_recv.append(arb.opp.recv_ns - t)
        to_sent.append(max(leg.sent_ns for leg in arb.legs) - t)
    return to_recv, to_sent


@contextlib.contextmanager
def pinned(cpu: int | None) -> Any:
    """Pin the calling thread (and the threads it starts) to ``cpu`` for the block."""
    if cpu is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
