"""L2 book benchmark: ns per level update and per message, arbengine next to its peers.

Every implementation replays the same seeded synthetic stream (bench/synthetic.py) and reads
the best bid and ask after every message. Figures are the median of several runs of the whole
replay (or of a prefix for very slow peers, which the table says), divided by the level
updates and by the messages replayed. "x arbengine" divides by arbengine's compiled path on
the same messages, so a peer timed on a prefix is compared with arbengine on that prefix.

Correctness comes first: the compiled replay must reproduce the exchange model's top of book
after every message (one FNV hash over the whole stream), the sortedcontainers reference must
agree on a prefix, and every implementation is run once untimed with a hash of its own
best-bid/ask reads checked against the model before it is timed; every timed run's final top
of book is checked too.

This prints figures. It is not a timed test and asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Protocol

from bench._paths import ensure_repo_on_path
from bench.environment import cpu_info, git_state, version
from bench.synthetic import (
    FNV_OFFSET,
    Stream,
    StreamParams,
    Top,
    fold,
    load_or_generate,
)

_COMPILED = "arbengine replay_packed"

TARGET_NS_PER_LEVEL = 20.0
TARGET_NS_PER_MSG = 100.0

IMPLEMENTATIONS = ("compiled", "api", "reference", "order-book", "nautilus")

Level = tuple[int, int]
Msg = tuple[list[Level], list[Level]]
FloatMsg = tuple[list[tuple[float, int]], list[tuple[float, int]]]
Triplets = list[tuple[int, int, int]]

# Peers take prices as decimals: ticks are cents (0.01) and lots are 0.001, as for a BTC-USD
# instrument. Nautilus stores fixed-point raws with 16 decimals (high-precision build), so a
# tick is 10**14 raw units and a lot 10**13.
PRICE_DECIMALS = 2
SIZE_DECIMALS = 3


class PyBook(Protocol):
    """The part of arbengine's Python API the loop uses (ReferenceBook has it too)."""

    def apply(
        self,
        bids: Iterable[Level],
        asks: Iterable[Level],
        seq: int = -1,
        exch_ts_ns: int = 0,
        recv_ts_ns: int = 0,
    ) -> bool: ...
    def best_bid(self) -> Level | None: ...
    def best_ask(self) -> Level | None: ...


@dataclass
class Row:
    label: str
    messages: int
    levels: int
    samples_ns: list[int]
    note: str = ""
    # None: no ratio (a baseline row, or build cost that is not a book replay).
    baseline_ns_per_msg: float | None = None

    @property
    def median_ns(self) -> float:
        return float(statistics.median(self.samples_ns))

    @property
    def ns_per_level(self) -> float:
        return self.median_ns / self.levels

    @property
    def ns_per_msg(self) -> float:
        return self.median_ns / self.messages

    @property
    def best_ns_per_level(self) -> float:
        return min(self.samples_ns) / self.levels

    @property
    def spread_pct(self) -> float:
        """(slowest - fastest) / median: how noisy the runs were."""
        return 100.0 * (max(self.samples_ns) - min(self.samples_ns)) / self.median_ns

    @property
    def ratio(self) -> str:
        if self.baseline_ns_per_msg is None:
            return "-"
        return f"{self.ns_per_msg / self.baseline_ns_per_msg:.1f}x"


@dataclass
class Context:
    stream: Stream
    runs: int
    slow_runs: int
    peer_messages: int
    checks: list[str] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    # arbengine compiled ns/msg by messages replayed: the denominator of every ratio.
    compiled_ns_per_msg: dict[int, float] = field(default_factory=dict)
    _split: list[Msg] | None = None

    def levels_in(self, messages: int) -> int:
        return self.stream.ends[messages - 1]

    def split(self, messages: int) -> list[Msg]:
        """The stream as Python (bids, asks) lists, built once for all Python-API books."""
        if self._split is None or len(self._split) < messages:
            self._split = self.stream.split(max(messages, self.peer_messages))
        return self._split if len(self._split) == messages else self._split[:messages]

    def baseline(self, messages: int) -> float:
        """arbengine's compiled ns/msg on the first ``messages`` messages (timed on demand)."""
        if messages not in self.compiled_ns_per_msg:
            bench_compiled(self, messages)
        return self.compiled_ns_per_msg[messages]

    def check(self, line: str) -> None:
        self.checks.append(line)
        print(f"  check: {line}", flush=True)


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    # The Python-loop books allocate a tuple per read; with millions of pre-built message
    # objects alive, a cyclic-GC pass mid-run costs far more than the book. timeit disables
    # it too.
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def time_runs(run: Callable[[], Top], runs: int, expect: Top, label: str) -> list[int]:
    """Wall time of ``runs`` calls; each call's final top of book must equal ``expect``."""
    samples: list[int] = []
    with _no_gc():
        for _ in range(runs):
            t0 = time.perf_counter_ns()
            top = run()
            samples.append(time.perf_counter_ns() - t0)
            if top != expect:
                raise AssertionError(f"{label}: final top {top} != expected {expect}")
    return samples


def _checked(ctx: Context, label: str, messages: int, got_hash: int) -> None:
    want = ctx.stream.top_hash(messages)
    if got_hash != want:
        raise AssertionError(
            f"{label}: top-of-book hash over {messages:,} messages {got_hash:#x} != model's "
            f"{want:#x}"
        )
    ctx.check(f"{label}: best bid/ask after every one of {messages:,} messages match the model")


def _top(bid: Level | None, ask: Level | None) -> Top:
    b = bid or (0, 0)
    a = ask or (0, 0)
    return (b[0], b[1], a[0], a[1])


def _fold_top(h: int, top: Top) -> int:
    for w in top:
        h = fold(h, w)
    return h


# --- (a) arbengine compiled path ----------------------------------------------------------


def bench_compiled(ctx: Context, messages: int) -> None:
    from arbengine._core.book import Book, replay_packed

    stream = ctx.stream
    if messages == stream.messages:
        levels, ends = stream.levels, stream.ends
    else:
        levels, ends = stream.prefix(messages)
    want_hash = stream.top_hash(messages)

    def run() -> Top:
        book = Book()
        h, crossed = replay_packed(book, levels, ends)
        if h != want_hash or crossed:
            raise AssertionError(f"replay_packed: hash {h:#x} crossed {crossed}")
        return _top(book.best_bid(), book.best_ask())

    run()  # warm-up, and the same hash check as every timed run
    _checked(ctx, f"arbengine replay_packed ({messages:,} msgs)", messages, want_hash)
    samples = time_runs(run, ctx.runs, stream.top_at(messages), "replay_packed")
    ctx.compiled_ns_per_msg[messages] = statistics.median(samples) / messages
    prefix = "" if messages == stream.messages else f", first {messages:,} msgs"
    ctx.rows.append(
        Row(
            f"{_COMPILED} (C, whole message per call{prefix})",
            messages,
            ctx.levels_in(messages),
            samples,
            note="the cdef path feed parsers use; best bid/ask read in C after every message",
        )
    )


def check_reference_agrees(ctx: Context) -> None:
    """The brief's cross-check: replay_packed and replay_packed_reference, same hash."""
    from arbengine._core.book import Book, replay_packed

    ensure_repo_on_path()
    from tests.reference.book import ReferenceBook, replay_packed_reference

    n = min(ctx.stream.params.check_prefix, ctx.stream.messages)
    levels, ends = ctx.stream.prefix(n)
    got = replay_packed(Book(), levels, ends)
    ref = replay_packed_reference(ReferenceBook(), levels, ends)
    if got != ref or ref != (ctx.stream.top_hash(n), 0):
        raise AssertionError(f"replay_packed {got} vs reference {ref} on {n} messages")
    ctx.check(
        f"replay_packed == replay_packed_reference == model on the first {n:,} messages "
        f"(hash {ref[0]:#018x}, 0 crossed)"
    )


# --- (b) arbengine Python API and (c) the sortedcontainers reference -----------------------


def _api_loop(book: PyBook, msgs: Sequence[Msg]) -> Top:
    # Bound methods in locals: what any careful Python caller would do, and the same for
    # every Python-loop implementation here.
    apply = book.apply
    best_bid = book.best_bid
    best_ask = book.best_ask
    bid: Level | None = None
    ask: Level | None = None
    for bids, asks in msgs:
        apply(bids, asks)
        bid = best_bid()
        ask = best_ask()
    return _top(bid, ask)


def _api_hash(book: PyBook, msgs: Sequence[Msg]) -> int:
    h = FNV_OFFSET
    for bids, asks in msgs:
        book.apply(bids, asks)
        h = _fold_top(h, _top(book.best_bid(), book.best_ask()))
    return h


def _bench_py_book(
    ctx: Context, label: str, factory: Callable[[], PyBook], messages: int, runs: int, note: str
) -> None:
    msgs = ctx.split(messages)
    _checked(ctx, label, messages, _api_hash(factory(), msgs))
    samples = time_runs(
        lambda: _api_loop(factory(), msgs), runs, ctx.stream.top_at(messages), label
    )
    ctx.rows.append(
        Row(label, messages, ctx.levels_in(messages), samples, note, ctx.baseline(messages))
    )


def bench_api(ctx: Context) -> None:
    from arbengine._core.book import Book

    _bench_py_book(
        ctx,
        "arbengine Book.apply + best_bid/best_ask (Python loop)",
        Book,
        ctx.stream.messages,
        ctx.runs,
        "one apply(bids, asks) per message from pre-split Python lists",
    )


def bench_reference(ctx: Context) -> None:
    ensure_repo_on_path()
    from tests.reference.book import ReferenceBook

    _bench_py_book(
        ctx,
        "reference: sortedcontainers SortedDict (pure Python)",
        ReferenceBook,
        ctx.stream.messages,
        ctx.slow_runs,
        "tests/reference/book.py, same Python API (validates each message like Book.apply)",
    )


# --- (d) order-book (bmoscon) ----------------------------------------------------------------


def _to_float_msgs(msgs: Sequence[Msg]) -> list[FloatMsg]:
    # order-book keys must be float or Decimal; the conversion is pre-processing, not timed.
    # ticks / 100 is the correctly rounded float, and round(price * 100) gets the tick back.
    scale = 10**PRICE_DECIMALS
    return [([(p / scale, q) for p, q in b], [(p / scale, q) for p, q in a]) for b, a in msgs]


def _ob_loop(msgs: Sequence[FloatMsg], check: bool = False) -> tuple[Top, int]:
    import order_book

    ob: Any = order_book.OrderBook()
    bids: Any = ob.bids
    asks: Any = ob.asks
    scale = 10**PRICE_DECIMALS
    h = FNV_OFFSET
    bid: Any = None
    ask: Any = None
    for mb, ma in msgs:
        for p, q in mb:
            if q:
                bids[p] = q
            else:
                del bids[p]
        for p, q in ma:
            if q:
                asks[p] = q
            else:
                del asks[p]
        # index(0) is order-book's documented way to read the best level.
        bid = bids.index(0)
        ask = asks.index(0)
        if check:
            h = _fold_top(h, (round(bid[0] * scale), bid[1], round(ask[0] * scale), ask[1]))
    return (round(bid[0] * scale), bid[1], round(ask[0] * scale), ask[1]), h


def bench_order_book(ctx: Context) -> None:
    try:
        ver = metadata.version("order-book")
    except metadata.PackageNotFoundError:
        print("  skip: order-book not installed (pip install '.[bench]')")
        return
    n = ctx.peer_messages
    fmsgs = _to_float_msgs(ctx.split(n))
    label = f"order-book {ver} (bmoscon, C SortedDict)"
    _checked(ctx, label, n, _ob_loop(fmsgs, check=True)[1])
    samples = time_runs(
        lambda: _ob_loop(fmsgs)[0], ctx.slow_runs, ctx.stream.top_at(n), "order-book"
    )
    ctx.rows.append(
        Row(
            label,
            n,
            ctx.levels_in(n),
            samples,
            "ob.bids[p] = q / del per level, bids.index(0) / asks.index(0) per message",
            ctx.baseline(n),
        )
    )


# --- (e) nautilus-trader -----------------------------------------------------------------------


class _Nautilus:
    """nautilus-trader's OrderBook (L2_MBP) fed OrderBookDeltas, one batch per message."""

    def __init__(self) -> None:
        from nautilus_trader.model.book import OrderBook
        from nautilus_trader.model.data import BookOrder, OrderBookDelta, OrderBookDeltas
        from nautilus_trader.model.enums import BookAction, BookType, OrderSide, RecordFlag
        from nautilus_trader.model.identifiers import InstrumentId
        from nautilus_trader.model.objects import FIXED_PRECISION, Price, Quantity

        self.OrderBook: Any = OrderBook
        self.BookOrder: Any = BookOrder
        self.OrderBookDelta: Any = OrderBookDelta
        self.OrderBookDeltas: Any = OrderBookDeltas
        self.Price: Any = Price
        self.Quantity: Any = Quantity
        self.book_type: Any = BookType.L2_MBP
        self.update: Any = BookAction.UPDATE
        self.delete: Any = BookAction.DELETE
        self.sides: tuple[Any, Any] = (OrderSide.BUY, OrderSide.SELL)
        self.f_last: int = int(RecordFlag.F_LAST)
        self.iid: Any = InstrumentId.from_str("BTCUSDT-PERP.BINANCE")
        self.pscale: int = 10 ** (int(FIXED_PRECISION) - PRICE_DECIMALS)
        self.qscale: int = 10 ** (int(FIXED_PRECISION) - SIZE_DECIMALS)

    def build_raw(self, msgs: Sequence[Triplets]) -> list[Any]:
        """OrderBookDelta.from_raw per level (the cheapest constructor: no intermediate
        Price/Quantity/BookOrder objects), wrapped in one OrderBookDeltas per message."""
        from_raw = self.OrderBookDelta.from_raw
        deltas_cls = self.OrderBookDeltas
        iid, upd, dele, sides = self.iid, self.update, self.delete, self.sides
        ps, qs, pd, qd, last = self.pscale, self.qscale, PRICE_DECIMALS, SIZE_DECIMALS, self.f_last
        out: list[Any] = []
        for seq, msg in enumerate(msgs):
            n = len(msg) - 1
            out.append(
                deltas_cls(
                    iid,
                    [
                        # UPDATE upserts in an L2_MBP book, so a feed handler needs no book
                        # lookup to choose between ADD and UPDATE.
                        from_raw(
                            iid,
                            upd if q else dele,
                            sides[s],
                            p * ps,
                            pd,
                            q * qs,
                            qd,
                            0,
                            last if i == n else 0,
                            seq,
                            0,
                            0,
                        )
                        for i, (s, p, q) in enumerate(msg)
                    ],
                )
            )
        return out

    def build_objects(self, msgs: Sequence[Triplets]) -> list[Any]:
        """The documented constructor: OrderBookDelta(BookOrder(side, Price, Quantity))."""
        delta_cls, order_cls = self.OrderBookDelta, self.BookOrder
        price_raw, qty_raw = self.Price.from_raw, self.Quantity.from_raw
        deltas_cls = self.OrderBookDeltas
        iid, upd, dele, sides = self.iid, self.update, self.delete, self.sides
        ps, qs, pd, qd, last = self.pscale, self.qscale, PRICE_DECIMALS, SIZE_DECIMALS, self.f_last
        out: list[Any] = []
        for seq, msg in enumerate(msgs):
            n = len(msg) - 1
            out.append(
                deltas_cls(
                    iid,
                    [
                        delta_cls(
                            iid,
                            upd if q else dele,
                            order_cls(sides[s], price_raw(p * ps, pd), qty_raw(q * qs, qd), 0),
                            last if i == n else 0,
                            seq,
                            0,
                            0,
                        )
                        for i, (s, p, q) in enumerate(msg)
                    ],
                )
            )
        return out

    def top(self, book: Any) -> Top:
        return (
            book.best_bid_price().raw // self.pscale,
            book.best_bid_size().raw // self.qscale,
            book.best_ask_price().raw // self.pscale,
            book.best_ask_size().raw // self.qscale,
        )

    def apply_loop(self, deltas: Sequence[Any]) -> Top:
        book: Any = self.OrderBook(self.iid, self.book_type)
        apply = book.apply_deltas
        best_bid = book.best_bid_price
        best_ask = book.best_ask_price
        for d in deltas:
            apply(d)
            best_bid()
            best_ask()
        return self.top(book)

    def apply_hash(self, deltas: Sequence[Any]) -> int:
        book: Any = self.OrderBook(self.iid, self.book_type)
        h = FNV_OFFSET
        for d in deltas:
            book.apply_deltas(d)
            h = _fold_top(h, self.top(book))
        return h


def _triplets(stream: Stream, messages: int) -> list[Triplets]:
    lv = stream.levels
    out: list[Triplets] = []
    start = 0
    for m in range(messages):
        end = stream.ends[m]
        out.append([(lv[i], lv[i + 1], lv[i + 2]) for i in range(3 * start, 3 * end, 3)])
        start = end
    return out


def bench_nautilus(ctx: Context) -> None:
    try:
        ver = metadata.version("nautilus-trader")
        nt = _Nautilus()
    except (metadata.PackageNotFoundError, ImportError) as exc:
        print(f"  skip: nautilus-trader not available ({exc}); pip install '.[bench]'")
        return
    n = ctx.peer_messages
    trip = _triplets(ctx.stream, n)
    _bench_nautilus_apply(ctx, nt, ver, trip)
    # Build cost, timed apart: the deltas must exist before the book sees them. It is not a
    # book replay, so it has no ratio; a feed handler pays it on top of the apply row.
    build_rows = (
        ("nautilus-trader: build deltas, OrderBookDelta.from_raw", nt.build_raw),
        ("nautilus-trader: build deltas, OrderBookDelta(BookOrder(...))", nt.build_objects),
    )
    for label, build in build_rows:
        samples: list[int] = []
        with _no_gc():
            for _ in range(ctx.slow_runs):
                t0 = time.perf_counter_ns()
                built = build(trip)
                samples.append(time.perf_counter_ns() - t0)
                del built
        note = "per level: Python loop, constructors, one OrderBookDeltas per message"
        ctx.rows.append(Row(label, n, ctx.levels_in(n), samples, note))


def _bench_nautilus_apply(ctx: Context, nt: _Nautilus, ver: str, trip: list[Triplets]) -> None:
    n = len(trip)
    deltas = nt.build_raw(trip)
    _checked(ctx, f"nautilus-trader {ver} OrderBook", n, nt.apply_hash(deltas))
    # The documented constructor must describe the same book as from_raw.
    k = min(n, 1000)
    if nt.apply_loop(nt.build_objects(trip[:k])) != ctx.stream.top_at(k):
        raise AssertionError("nautilus OrderBookDelta(BookOrder(...)) disagrees with from_raw")
    samples = time_runs(lambda: nt.apply_loop(deltas), ctx.slow_runs, ctx.stream.top_at(n), "nt")
    ctx.rows.append(
        Row(
            f"nautilus-trader {ver} OrderBook L2_MBP: apply_deltas + best_*_price",
            n,
            ctx.levels_in(n),
            samples,
            "pre-built OrderBookDeltas, one per message; building them is the rows below",
            ctx.baseline(n),
        )
    )


# --- reporting -----------------------------------------------------------------------------------


def _book_module_mtime() -> float:
    from arbengine._core import book as book_mod

    return os.path.getmtime(book_mod.__file__ or "")


def print_machine() -> None:
    cpu = cpu_info()
    built = datetime.datetime.fromtimestamp(_book_module_mtime()).isoformat(timespec="seconds")
    print(f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(
        f"machine: {cpu.get('model name', '?')}, {os.cpu_count()} logical CPUs, "
        f"{cpu.get('cpu MHz', '?')} MHz, cache {cpu.get('cache size', '?')}; "
        f"{platform.system()} {platform.release()}"
    )
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"python {platform.python_version()} ({platform.python_implementation()}); "
        f"arbengine {version('arbengine')} @ {git_state()}, book module built {built}; "
        f"Cython {version('Cython')}, sortedcontainers {version('sortedcontainers')}, "
        f"order-book {version('order-book')}, nautilus-trader {version('nautilus-trader')}"
    )


def print_table(rows: Sequence[Row]) -> None:
    head = (
        "implementation",
        "msgs",
        "runs",
        "ns/level",
        "ns/msg",
        "x arbengine",
        "best ns/level",
        "run spread",
    )
    cells = [
        (
            r.label,
            f"{r.messages:,}",
            str(len(r.samples_ns)),
            f"{r.ns_per_level:,.1f}",
            f"{r.ns_per_msg:,.1f}",
            r.ratio,
            f"{r.best_ns_per_level:,.1f}",
            f"{r.spread_pct:.0f}%",
        )
        for r in rows
    ]
    widths = [max(len(c[i]) for c in [head, *cells]) for i in range(len(head))]

    def line(c: Sequence[str]) -> str:
        return "  ".join(
            c[i].ljust(widths[i]) if i == 0 else c[i].rjust(widths[i]) for i in range(len(c))
        )

    print(line(head))
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print(line(c))
    print()
    seen: set[str] = set()
    for r in rows:
        if r.note and r.note not in seen:
            seen.add(r.note)
            print(f"  {r.label}: {r.note}")


def print_targets(ctx: Context) -> None:
    full = ctx.stream.messages
    row = next((r for r in ctx.rows if r.label.startswith(_COMPILED) and r.messages == full), None)
    if row is None:
        return
    lvl_ok = row.ns_per_level <= TARGET_NS_PER_LEVEL
    msg_ok = row.ns_per_msg <= TARGET_NS_PER_MSG
    print(
        f"targets (arbengine compiled path): {row.ns_per_level:.1f} ns/level "
        f"(<= {TARGET_NS_PER_LEVEL:.0f}: {'met' if lvl_ok else 'MISSED'}), "
        f"{row.ns_per_msg:.1f} ns/msg incl. best bid/ask read "
        f"(<= {TARGET_NS_PER_MSG:.0f}: {'met' if msg_ok else 'MISSED'})"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.bench_book", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--messages", type=int, default=StreamParams.messages)
    ap.add_argument("--seed", type=int, default=StreamParams.seed)
    ap.add_argument("--runs", type=int, default=7, help="runs of the fast paths (median)")
    ap.add_argument("--slow-runs", type=int, default=3, help="runs of the slow paths")
    ap.add_argument(
        "--peer-messages",
        type=int,
        default=100_000,
        help="prefix replayed by order-book and nautilus-trader (0 = the whole stream)",
    )
    ap.add_argument(
        "--only", action="append", choices=IMPLEMENTATIONS, help="repeatable; default all"
    )
    ap.add_argument("--no-cache", action="store_true", help="regenerate the stream")
    args = ap.parse_args(argv)
    if args.messages < 2:
        ap.error("--messages must be at least 2")
    only = set(args.only or IMPLEMENTATIONS)

    print("== L2 book: replay a synthetic stream, best bid/ask read after every message ==")
    print_machine()
    # The compiled module is imported once; a rebuild on disk mid-run does not change what is
    # timed, but it does mean the figures belong to the older build. Say so.
    built_at_start = _book_module_mtime()
    params = StreamParams(seed=args.seed, messages=args.messages)
    t0 = time.perf_counter()
    stream, cached = load_or_generate(params, use_cache=not args.no_cache)
    how = (
        f"loaded from cache in {time.perf_counter() - t0:.1f} s" if cached else "freshly generated"
    )
    print(
        f"stream: seed {params.seed}, key {params.cache_key()}, {how} "
        f"(generation took {stream.stats.gen_seconds:.1f} s)"
    )
    for line in stream.stats.summary():
        print(f"  {line}")

    peer_n = (
        stream.messages if args.peer_messages <= 0 else min(args.peer_messages, stream.messages)
    )
    ctx = Context(stream, args.runs, args.slow_runs, peer_n)
    print("correctness (before timing):", flush=True)
    bench_compiled(ctx, stream.messages)
    if {"api", "reference"} & only or "compiled" in only:
        check_reference_agrees(ctx)
    steps: list[tuple[str, Callable[[Context], None]]] = [
        ("api", bench_api),
        ("reference", bench_reference),
        ("order-book", bench_order_book),
        ("nautilus", bench_nautilus),
    ]
    for key, step in steps:
        if key in only:
            step(ctx)
    # The compiled baseline always runs (every ratio needs it); list its rows first.
    rows = [r for r in ctx.rows if r.label.startswith(_COMPILED)]
    rows += [r for r in ctx.rows if r not in rows]
    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if _book_module_mtime() != built_at_start:
        print("WARNING: arbengine's book module was rebuilt on disk during the run; the figures")
        print("are for the build that was loaded at start (see 'book module built' above).")
    print()
    print_table(rows)
    print()
    print_targets(ctx)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
