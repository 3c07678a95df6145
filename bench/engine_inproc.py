"""In-process throughput of the engine's book path, and the pure-Python reference pipeline.

No sockets: the frames a venue would send (the same prebuilt stream for both pipelines, 20
pairs by default, books picked uniformly at random) are handed one after another to

* compiled: the feeds' own handler, ``BinanceFeed.on_frame`` / ``OkxFeed.on_frame``, with
  the receive stamps a connection takes (``time.monotonic_ns()`` and ``time.time_ns()``) ->
  the compiled FeedRouter (header parse, level parse, sequence rule, book) -> the engine's
  ``on_book`` -> both directions of the pair's spread calculator, exactly as on the wire
  path but without picows and the socket read;
* reference: ``orjson.loads`` -> dict lookups -> ``Decimal`` per price and size -> one
  ``SortedDict`` per side (size 0 deletes) with the same sequence checks (Binance ``U`` =
  last ``u`` + 1, OKX ``prevSeqId`` = last ``seqId``) and a crossed-book check -> a
  pure-Python top-of-book spread check of the pair in both directions (Decimal, net of both
  taker fees, against the same 5 bps minimum edge).

Checks before anything is timed: on a prefix, after every frame, both pipelines hold the
same best bid and best ask on the book the frame changed and neither finds an opportunity
(the background stream never makes one); after each full timed run every book equals the
market's truth, every frame was applied and evaluated once, and no opportunity was found.
"""

from __future__ import annotations

import asyncio
import gc
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from sortedcontainers import SortedDict

from bench.engine_market import FEE_BPS, ID0, Market, binance_rest, ids_after, okx_snapshot, render
from bench.engine_rig import MIN_EDGE_BPS, Rig, build_rig


@dataclass
class Stream:
    frames: list[bytes]  # payloads, in order
    venues: list[int]  # 0 Binance, 1 OKX, per frame
    books: list[int]  # market book index, per frame
    bodies: list[int]  # update bodies per book after the whole stream
    levels: int  # level changes in the whole stream


def build_stream(market: Market, n: int, seed: int) -> Stream:
    rng = random.Random(seed)
    last = [ID0 - 1 if b.venue == "binance" else ID0 for b in market.books]
    pos = [0] * len(market.books)
    ts = time.time_ns() // 1_000_000
    frames, venues, books = [], [], []
    levels = 0
    for _ in range(n):
        b = rng.randrange(len(market.books))
        spec = market.books[b]
        t = spec.templates[pos[b] % len(spec.templates)]
        pos[b] += 1
        id1, id2, last[b] = ids_after(spec.venue, last[b], t.n)
        frames.append(render(t, ts, id1, id2))
        venues.append(0 if spec.venue == "binance" else 1)
        books.append(b)
        levels += t.n
    return Stream(frames, venues, books, pos, levels)


def prefix_bodies(market: Market, stream: Stream, n: int) -> list[int]:
    pos = [0] * len(market.books)
    for b in stream.books[:n]:
        pos[b] += 1
    return pos


# --- compiled ----------------------------------------------------------------------------------


def offline_rig(market: Market, directory: Path) -> Rig:
    """A rig whose books are LIVE on the start books, without any connection."""
    rig = build_rig(market, directory)
    now = time.monotonic_ns()
    for i, spec in enumerate(market.venue_books("binance")):
        rig.binance.syncs[i].start()
        rig.binance.router.on_snapshot(i, binance_rest(spec.bids, spec.asks, ID0 - 1), now)
    for i, spec in enumerate(market.venue_books("okx")):
        rig.okx.syncs[i].start()
        frame = okx_snapshot(spec.symbol, spec.bids, spec.asks, time.time_ns() // 1_000_000, ID0)
        rig.okx.on_frame(frame, now, time.time_ns())
    if not all(s.live for s in rig.syncs):
        raise SystemExit("in-process: the start snapshots did not make every book LIVE")
    return rig


def check_rig_books(market: Market, rig: Rig, bodies: list[int], what: str) -> None:
    for index, sync in enumerate(rig.syncs):
        bids, asks = market.truth(index, bodies[index])
        if not sync.live:
            raise SystemExit(f"{what}: {sync.instrument.name} is {sync.state_name}")
        if dict(sync.book.bids()) != bids or dict(sync.book.asks()) != asks:
            raise SystemExit(f"{what}: {sync.instrument.name} differs from the market's truth")


def run_compiled(market: Market, stream: Stream, directory: Path, n: int | None = None) -> float:
    """One timed pass over the stream (or its first ``n`` frames): ns per frame."""
    rig = offline_rig(market, directory)
    evaluated = sum(p.evaluations for p in rig.engine.pairs)  # the OKX snapshots
    handlers: list[Callable[[bytes, int, int], None]] = [rig.binance.on_frame, rig.okx.on_frame]
    calls = [(handlers[v], f) for v, f in zip(stream.venues, stream.frames, strict=True)][:n]
    mono, wall = time.monotonic_ns, time.time_ns
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter_ns()
        for handler, frame in calls:
            handler(frame, mono(), wall())
        elapsed = time.perf_counter_ns() - t0
    finally:
        gc.enable()
    try:
        count = len(calls)
        bodies = stream.bodies if n is None else prefix_bodies(market, stream, count)
        check_rig_books(market, rig, bodies, "in-process compiled run")
        applied = sum(s.applied for s in rig.syncs)
        evaluations = sum(p.evaluations for p in rig.engine.pairs) - evaluated
        if applied != count or evaluations != count:
            raise SystemExit(
                f"in-process: {count} frames, {applied} applied, {evaluations} evaluations"
            )
        if rig.engine.counters.get("opportunities", 0):
            raise SystemExit("in-process: the engine found an opportunity in background data")
    finally:
        rig.close()
    return elapsed / count


# --- the pure-Python reference --------------------------------------------------------------

KB = 1 + FEE_BPS / 10_000  # a buy costs the price plus the taker fee
KS = 1 - FEE_BPS / 10_000  # a sale yields the price minus the taker fee
BPS = Decimal(10_000)


class RefBook:
    __slots__ = ("asks", "bids", "last", "pair", "venue")

    def __init__(self, venue: str, pair: int) -> None:
        self.venue = venue
        self.pair = pair
        self.bids: Any = SortedDict()
        self.asks: Any = SortedDict()
        self.last = 0

    def load(self, bids: dict[int, int], asks: dict[int, int], last: int) -> None:
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            side.clear()
            for p, q in levels.items():
                side[Decimal(p) / 100] = Decimal(q) / 1000
        self.last = last


def _apply(side: Any, levels: list[list[str]]) -> None:
    for level in levels:
        price, size = Decimal(level[0]), Decimal(level[1])
        if size:
            side[price] = size
        else:
            side.pop(price, None)


class Reference:
    """orjson -> Decimal -> SortedDict books -> top-of-book spread check, pure Python."""

    def __init__(self, market: Market) -> None:
        self.by_symbol: dict[str, RefBook] = {}
        self.books: list[RefBook] = []
        self.pairs: list[tuple[RefBook, RefBook]] = []
        for spec in market.books:
            book = RefBook(spec.venue, spec.pair)
            book.load(spec.bids, spec.asks, ID0 - 1 if spec.venue == "binance" else ID0)
            self.by_symbol[spec.symbol] = book
            self.books.append(book)
        for pair in range(market.config.pairs):
            self.pairs.append((self.books[2 * pair], self.books[2 * pair + 1]))
        self.evaluations = 0
        self.opportunities = 0

    def on_frame(self, frame: bytes) -> RefBook:
        msg = orjson.loads(frame)
        data = msg.get("data")
        if isinstance(data, dict):  # Binance combined stream
            if data.get("e") != "depthUpdate":
                raise ValueError("not a depth update")
            book = self.by_symbol[data["s"]]
            if data["U"] != book.last + 1:
                raise ValueError(f"gap: U {data['U']} after {book.last}")
            _apply(book.bids, data["b"])
            _apply(book.asks, data["a"])
            book.last = data["u"]
        else:  # OKX books
            book = self.by_symbol[msg["arg"]["instId"]]
            update = data[0]
            if update["prevSeqId"] != book.last:
                raise ValueError(f"gap: prevSeqId {update['prevSeqId']} after {book.last}")
            _apply(book.bids, update["bids"])
            _apply(book.asks, update["asks"])
            book.last = update["seqId"]
        if book.bids and book.asks and book.bids.peekitem(-1)[0] >= book.asks.peekitem(0)[0]:
            raise ValueError("crossed book")
        self.check(*self.pairs[book.pair])
        return book

    def check(self, a: RefBook, b: RefBook) -> None:
        """Net edge at the top of book both ways; an opportunity if >= the minimum edge."""
        self.evaluations += 1
        for buy, sell in ((a, b), (b, a)):
            if not buy.asks or not sell.bids:
                continue
            cost = buy.asks.peekitem(0)[0] * KB
            edge = (sell.bids.peekitem(-1)[0] * KS - cost) / cost * BPS
            if edge >= MIN_EDGE_BPS:
                self.opportunities += 1


def run_reference(market: Market, stream: Stream, n: int) -> float:
    ref = Reference(market)
    frames = stream.frames[:n]
    on_frame = ref.on_frame
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter_ns()
        for frame in frames:
            on_frame(frame)
        elapsed = time.perf_counter_ns() - t0
    finally:
        gc.enable()
    bodies = prefix_bodies(market, stream, len(frames))
    for index, book in enumerate(ref.books):
        bids, asks = market.truth(index, bodies[index])
        got_b = {int(p * 100): int(q * 1000) for p, q in book.bids.items()}
        got_a = {int(p * 100): int(q * 1000) for p, q in book.asks.items()}
        if got_b != bids or got_a != asks:
            raise SystemExit(f"reference: book {index} differs from the market's truth")
    if ref.opportunities or ref.evaluations != len(frames):
        raise SystemExit("reference: unexpected opportunities or evaluations")
    return elapsed / len(frames)


def check_agree(market: Market, stream: Stream, n: int, directory: Path) -> None:
    """Frame by frame on the first ``n`` frames: same best bid/ask on the changed book."""
    rig = offline_rig(market, directory)
    ref = Reference(market)
    handlers: list[Callable[[bytes, int, int], None]] = [rig.binance.on_frame, rig.okx.on_frame]
    try:
        for i in range(min(n, len(stream.frames))):
            frame, b = stream.frames[i], stream.books[i]
            handlers[stream.venues[i]](frame, time.monotonic_ns(), time.time_ns())
            book = ref.on_frame(frame)
            if book is not ref.books[b]:
                raise SystemExit(f"check: frame {i} routed to the wrong reference book")
            top = rig.syncs[b].book
            bid = book.bids.peekitem(-1) if book.bids else None
            ask = book.asks.peekitem(0) if book.asks else None
            want = tuple(
                None if lv is None else (int(lv[0] * 100), int(lv[1] * 1000)) for lv in (bid, ask)
            )
            if (top.best_bid(), top.best_ask()) != want:
                raise SystemExit(f"check: frame {i}: compiled and reference tops differ")
        if rig.engine.counters.get("opportunities", 0) or ref.opportunities:
            raise SystemExit("check: an opportunity was found in background data")
    finally:
        rig.close()


@dataclass
class InprocResult:
    frames: int
    levels_per_frame: float
    compiled_ns: list[float]
    reference_frames: int
    reference_ns: list[float]
    checked: int

    @property
    def compiled_median(self) -> float:
        return statistics.median(self.compiled_ns)

    @property
    def reference_median(self) -> float:
        return statistics.median(self.reference_ns)


def run_inprocess(
    market: Market, frames: int, runs: int, py_frames: int, py_runs: int, check: int, seed: int
) -> InprocResult:
    stream = build_stream(market, frames, seed)
    py_frames = min(py_frames, frames)
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        root = Path(tmp)
        check_agree(market, stream, check, root / "check")
        compiled = [run_compiled(market, stream, root / f"run{i}") for i in range(runs)]
    reference = [run_reference(market, stream, py_frames) for _ in range(py_runs)]
    return InprocResult(
        frames,
        stream.levels / frames,
        compiled,
        py_frames,
        reference,
        min(check, frames),
    )


# --- the arb path, in-process ------------------------------------------------------------------


def _timed(obj: Any, name: str, into: list[int]) -> Any:
    """Replace ``obj.name`` (an attribute, so instance or module) with a timing wrapper;
    returns what was there."""
    inner = getattr(obj, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter_ns()
        try:
            return inner(*args, **kwargs)
        finally:
            into.append(time.perf_counter_ns() - t0)

    setattr(obj, name, wrapper)
    return inner


class _TimedGate:
    """An ArbGate's ``check`` with a timer around it."""

    def __init__(self, gate: Any, into: list[int]) -> None:
        self._check = gate.check
        self._into = into

    def check(self, *args: Any) -> int:
        t0 = time.perf_counter_ns()
        try:
            return int(self._check(*args))
        finally:
            self._into.append(time.perf_counter_ns() - t0)


async def profile_arbs(market: Market, n: int, pause_s: float) -> dict[str, list[int]]:
    """``n`` arbs in-process, one every ``pause_s``: an OKX dislocation frame straight into the
    feed handler, the legs settled, the book put back. Returns ns per call of the parts of
    the arb path (each wrapped in a timer, ~0.1 us each) and the engine's tick-to-order."""
    from bench.engine_market import okx_update

    parts: dict[str, list[int]] = {
        "ArbGate.check (risk gates, compiled)": [],
        "Executor.send (both legs handed off)": [],
        "  of which PaperGateway.submit (2 per arb)": [],
        "Executor.open (reserve, register, journal)": [],
        "  of which Portfolio.reserve (4 per arb)": [],
        "Journal.write (per entry, ~10 per arb)": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        rig = offline_rig(market, Path(tmp) / "journal")
        try:
            keys = list(parts)
            pair = rig.engine.pairs[0]
            gate = pair.gate
            assert gate is not None
            # A compiled object takes no attribute: the pair holds a timing proxy instead.
            pair.gate = _TimedGate(gate, parts[keys[0]])  # type: ignore[assignment]
            _timed(rig.executor, "send", parts[keys[1]])
            for gateway in rig.gateways.values():
                _timed(gateway, "submit", parts[keys[2]])
            _timed(rig.executor, "open", parts[keys[3]])
            _timed(rig.portfolio, "reserve", parts[keys[4]])
            _timed(rig.journal, "write", parts[keys[5]])
            spec = market.books[1]  # pair 0, OKX
            seq = ID0
            # One Binance update of the pair's other book per arb: the gates refuse a book
            # older than 2 s.
            other = market.books[0]
            last = ID0 - 1
            shift = market.config.shift_ticks
            price = spec.mid + shift
            removed = [(p, spec.asks[p]) for p in sorted(spec.asks) if p <= price]
            hot_check: list[int] = []
            for i in range(n):
                ts = time.time_ns() // 1_000_000
                t = other.templates[i % len(other.templates)]
                update = render(t, ts, last + 1, last + t.n)
                last += t.n
                rig.binance.on_frame(update, time.monotonic_ns(), time.time_ns())
                k = len(removed) + 1
                frame = okx_update(
                    spec.symbol, [(price, 1000)], [(p, 0) for p, _ in removed], ts, seq, seq + k
                )
                seq += k
                rig.okx.on_frame(frame, time.monotonic_ns(), time.time_ns())
                await rig.executor.drain(5)
                if i == n - 1:
                    # The same check again, back to back, on the result that fired (the
                    # pair has not re-evaluated since): what a tight-loop benchmark sees.
                    # The first passes take rate tokens; the rest stop at the rate gate,
                    # the last gate, so every one runs the whole path.
                    res = next(r for _, r, _, _ in pair.results if r.status_name == "OK")
                    clock = rig.engine.risk.clock(pair.sync_b.instrument.venue)
                    book, recv = pair.sync_b.book, time.monotonic_ns()
                    for _ in range(2_000):
                        t0 = time.perf_counter_ns()
                        gate.check(res, True, True, recv, book, clock)
                        hot_check.append(time.perf_counter_ns() - t0)
                frame = okx_update(spec.symbol, [(price, 0)], removed, ts, seq, seq + k)
                seq += k
                rig.okx.on_frame(frame, time.monotonic_ns(), time.time_ns())
                await asyncio.sleep(pause_s)
            if len(rig.executor.arbs) != n:
                raise SystemExit(
                    f"arb profile: {n} dislocations made {len(rig.executor.arbs)} arbs "
                    f"({rig.engine.counters})"
                )
            parts["tick-to-order (Engine.latencies_ns)"] = list(rig.engine.latencies_ns)
            parts["ArbGate.check, 2,000 times back to back"] = hot_check
        finally:
            rig.close()
    return parts
