"""Raw frame to top of book: ns per message, from the bytes a venue sent to a best bid/ask read.

Compiled: ``DepthPipeline.run`` (arbengine.venues._frames), one compiled loop doing, per frame,
the header parse, ``parse_levels`` into a reused LevelBuffer with the instrument's grids, one
``Book.apply_levels`` + ``end_message``, and the best bid and ask read. Each message is timed
on its own with CLOCK_MONOTONIC (the timer's own cost, printed as "timer floor", is included).
"header only" is the header parse alone, timed the same way.

Python: the common path of Python feed handlers: ``orjson.loads``, dict lookups, ``Decimal``
per price and size, a ``SortedDict`` per side (size 0 deletes), then the best read
(``peekitem``). Timed per message with ``perf_counter_ns`` (about 50 ns of that is the timer).

Data: real frames only. Binance spot and USDⓈ-M BTCUSDT diff depth (tests/data/binance: the
REST snapshot is loaded untimed, then every event after it, in order); "5-10 levels" is the
subset of spot events with 5 to 10 levels, the typical small update, measured inside the
same replay. OKX ``books`` for UNI-USD-SWAP (small updates) and BTC-USDT (larger ones) from
tests/data/cryptofeed (the snapshot untimed, then the updates). Both paths must agree on the
top of book after every message before anything is timed.

This prints figures. It is not a timed test and asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson
from sortedcontainers import SortedDict

from arbengine._core.fixed import Grid
from arbengine.venues._frames import DepthPipeline, time_headers
from bench._paths import ensure_repo_on_path

if TYPE_CHECKING:  # tests/ is importable only after ensure_repo_on_path()
    from tests.binance_depth import Market

TARGET_MEDIAN_NS = 2000.0

Top = tuple[tuple[int, int] | None, tuple[int, int] | None]
PyTop = tuple[tuple[Decimal, Decimal] | None, tuple[Decimal, Decimal] | None]


@dataclass(frozen=True)
class Dataset:
    label: str
    venue: str  # _frames venue name
    symbol: bytes
    tick: Grid
    lot: Grid
    snapshot: bytes  # loaded untimed before each pass
    rest: bool  # the snapshot is a REST body (Binance) rather than a WS frame (OKX)
    frames: list[bytes]  # timed, in order
    levels: list[int]  # levels per frame


@dataclass
class Stats:
    ns: list[int]

    def pct(self, q: float) -> float:
        s = sorted(self.ns)
        return float(s[min(len(s) - 1, int(q * len(s)))])

    @property
    def median(self) -> float:
        return float(statistics.median(self.ns))


@contextmanager
def no_gc() -> Iterator[None]:
    was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


# --- data --------------------------------------------------------------------------------------


def binance_dataset(market: Market) -> Dataset:
    from arbengine.venues.recording import read_hftbacktest
    from tests.binance_depth import INSTRUMENTS

    inst = INSTRUMENTS[market]

    lines = [r.payload for r in read_hftbacktest(inst.path)]
    (snapshot,) = [ln for ln in lines if ln.startswith(b'{"lastUpdateId"')]
    last = orjson.loads(snapshot)["lastUpdateId"]
    frames, levels = [], []
    for ln in lines:
        if ln is snapshot:
            continue
        data = orjson.loads(ln)["data"]
        # Binance's procedure drops what the snapshot already holds (spot u <= id, futures
        # u < id); the recordings have no gap after that, so the rest applies in order.
        if data["u"] > last or (market == "usdm" and data["u"] == last):
            frames.append(ln)
            levels.append(len(data["b"]) + len(data["a"]))
    label = f"binance {market} BTCUSDT"
    return Dataset(
        label, "binance", b"BTCUSDT", inst.tick, inst.book_lot, snapshot, True, frames, levels
    )


def okx_dataset(inst_id: str) -> Dataset:
    from arbengine.venues.recording import Kind, read_cryptofeed
    from tests.okx_books import DATA, INSTRUMENTS

    inst = INSTRUMENTS[inst_id]
    snapshot = b""
    frames, levels = [], []
    for rec in read_cryptofeed(DATA):
        if rec.kind is not Kind.INBOUND:
            continue
        msg = orjson.loads(rec.payload)
        arg = msg.get("arg", {})
        if "event" in msg or arg.get("channel") != "books" or arg.get("instId") != inst_id:
            continue
        if msg["action"] == "snapshot":
            snapshot = rec.payload
            continue
        (data,) = msg["data"]
        frames.append(rec.payload)
        levels.append(len(data["bids"]) + len(data["asks"]))
    return Dataset(
        f"okx books {inst_id}",
        "okx",
        inst_id.encode(),
        inst.tick,
        inst.lot,
        snapshot,
        False,
        frames,
        levels,
    )


# --- the two paths -----------------------------------------------------------------------------


def new_pipeline(ds: Dataset) -> DepthPipeline:
    pipe = DepthPipeline(ds.venue, ds.tick, ds.lot, symbol=ds.symbol)
    if ds.rest:
        pipe.on_rest(ds.snapshot)
    else:
        pipe.on_frame(ds.snapshot)
    return pipe


class PyBook:
    """The common Python feed-handler book: Decimal prices and sizes in two SortedDicts."""

    def __init__(self) -> None:
        self.bids: SortedDict = SortedDict()
        self.asks: SortedDict = SortedDict()

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()

    def levels(self, side: SortedDict, raw: list[list[str]]) -> None:
        for level in raw:
            price, size = Decimal(level[0]), Decimal(level[1])
            if size:
                side[price] = size
            else:
                side.pop(price, None)

    def top(self) -> PyTop:
        bid = self.bids.peekitem(-1) if self.bids else None
        ask = self.asks.peekitem(0) if self.asks else None
        return bid, ask


def py_binance(book: PyBook, frame: bytes) -> PyTop:
    msg = orjson.loads(frame)
    data: dict[str, Any] = msg.get("data", msg)
    if "lastUpdateId" in data:
        book.clear()
        book.levels(book.bids, data["bids"])
        book.levels(book.asks, data["asks"])
    elif data.get("e") == "depthUpdate":
        book.levels(book.bids, data["b"])
        book.levels(book.asks, data["a"])
    return book.top()


def py_okx(book: PyBook, frame: bytes) -> PyTop:
    msg = orjson.loads(frame)
    if msg.get("arg", {}).get("channel") == "books" and "data" in msg:
        data = msg["data"][0]
        if msg["action"] == "snapshot":
            book.clear()
        book.levels(book.bids, data["bids"])
        book.levels(book.asks, data["asks"])
    return book.top()


PY_PATHS: dict[str, Callable[[PyBook, bytes], PyTop]] = {"binance": py_binance, "okx": py_okx}


def new_py_book(ds: Dataset) -> PyBook:
    book = PyBook()
    PY_PATHS[ds.venue](book, ds.snapshot)
    return book


def check_agree(ds: Dataset) -> None:
    """Both paths give the same top of book after every message (else nothing is timed)."""
    pipe, book = new_pipeline(ds), new_py_book(ds)
    step = PY_PATHS[ds.venue]

    def as_units(level: tuple[Decimal, Decimal] | None) -> tuple[int, int] | None:
        if level is None:
            return None
        return ds.tick.parse(str(level[0])), ds.lot.parse(str(level[1]))

    for i, frame in enumerate(ds.frames):
        pipe.on_frame(frame)
        bid, ask = step(book, frame)
        got: Top = (pipe.book.best_bid(), pipe.book.best_ask())
        if got != (as_units(bid), as_units(ask)):
            raise SystemExit(f"{ds.label}: paths disagree after frame {i}: {got} vs {bid}, {ask}")


# --- timing ------------------------------------------------------------------------------------


def ns_buffer(n: int) -> memoryview:
    return memoryview(bytearray(8 * n)).cast("q")


def time_compiled(ds: Dataset, runs: int) -> tuple[Stats, float]:
    """Per-message ns over ``runs`` replays, and the untimed mean ns/msg (best replay)."""
    per_msg: list[int] = []
    means = []
    with no_gc():
        for _ in range(runs):
            pipe = new_pipeline(ds)
            ns = ns_buffer(len(ds.frames))
            pipe.run(ds.frames, ns)
            per_msg += ns.tolist()
            pipe = new_pipeline(ds)
            t0 = time.perf_counter_ns()
            pipe.run(ds.frames)
            means.append((time.perf_counter_ns() - t0) / len(ds.frames))
    return Stats(per_msg), min(means)


def time_headers_only(ds: Dataset, runs: int) -> Stats:
    per_msg: list[int] = []
    for _ in range(runs):
        ns = ns_buffer(len(ds.frames))
        time_headers(ds.venue, ds.frames, ns)
        per_msg += ns.tolist()
    return Stats(per_msg)


def timer_floor(runs: int = 5, n: int = 20_000) -> float:
    """Median ns that time_headers reports for a 2-byte non-book frame: timer + call floor."""
    frames = [b"{}"] * n
    ns = ns_buffer(n)
    floors = []
    for _ in range(runs):
        time_headers("binance", frames, ns)
        floors.append(statistics.median(ns.tolist()))
    return float(min(floors))


def time_python(ds: Dataset, runs: int) -> Stats:
    step = PY_PATHS[ds.venue]
    per_msg: list[int] = []
    clock = time.perf_counter_ns
    with no_gc():
        for _ in range(runs):
            book = new_py_book(ds)
            for frame in ds.frames:
                t0 = clock()
                step(book, frame)
                per_msg.append(clock() - t0)
    return Stats(per_msg)


def subset(stats: Stats, ds: Dataset, lo: int, hi: int) -> Stats:
    n = len(ds.frames)
    keep = [lo <= ds.levels[i % n] <= hi for i in range(len(stats.ns))]
    return Stats([t for t, k in zip(stats.ns, keep, strict=True) if k])


# --- main --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="raw frame -> top of book benchmark")
    parser.add_argument("--runs", type=int, default=20, help="compiled replays per dataset")
    parser.add_argument("--py-runs", type=int, default=3, help="Python replays per dataset")
    args = parser.parse_args(argv)
    ensure_repo_on_path()

    datasets = [
        binance_dataset("spot"),
        binance_dataset("usdm"),
        okx_dataset("UNI-USD-SWAP"),
        okx_dataset("BTC-USDT"),
    ]
    for ds in datasets:
        check_agree(ds)
    print("both paths agree on the top of book after every message of every dataset")
    print(f"{platform.python_implementation()} {platform.python_version()}, {platform.machine()}")
    floor = timer_floor()
    print(f"timer floor (2 clock reads + loop, on a 2-byte frame): {floor:.0f} ns\n")

    cols = (
        f"{'dataset':<26}{'msgs':>6}{'lvls':>5} |{'header':>7} |{'med':>7}{'p90':>7}{'p99':>7}"
        f"{'p99.9':>8}{'mean':>7} |{'med':>8}{'p90':>8}{'p99':>8} |{'x':>5}"
    )
    print(f"{'':<37} |{'':>7} |{'compiled pipeline, ns/msg':^36} |{'python, ns/msg':^24} |")
    print(cols)
    print("-" * len(cols))
    medians: dict[str, float] = {}

    def row(label: str, n: int, lvls: float, head: Stats, c: Stats, mean: str, py: Stats) -> None:
        medians[label] = c.median
        print(
            f"{label:<26}{n:>6}{lvls:>5.0f} |{head.median:>7.0f} |{c.median:>7.0f}"
            f"{c.pct(0.9):>7.0f}{c.pct(0.99):>7.0f}{c.pct(0.999):>8.0f}{mean:>7} |"
            f"{py.median:>8.0f}{py.pct(0.9):>8.0f}{py.pct(0.99):>8.0f} |"
            f"{py.median / c.median:>5.1f}"
        )

    for ds in datasets:
        compiled, mean = time_compiled(ds, args.runs)
        headers = time_headers_only(ds, args.runs)
        python = time_python(ds, args.py_runs)
        levels = statistics.median(ds.levels)
        row(ds.label, len(ds.frames), levels, headers, compiled, f"{mean:.0f}", python)
        if ds.venue == "binance" and b"depth@100ms" in ds.frames[0][:40]:
            small = [x for x in ds.levels if 5 <= x <= 10]
            row(
                "  of which 5-10 levels",
                len(small),
                statistics.median(small),
                subset(headers, ds, 5, 10),
                subset(compiled, ds, 5, 10),
                "",
                subset(python, ds, 5, 10),
            )
    met = [label.strip() for label, med in medians.items() if med <= TARGET_MEDIAN_NS]
    missed = [label.strip() for label, med in medians.items() if med > TARGET_MEDIAN_NS]
    print(f"\ntarget <= {TARGET_MEDIAN_NS:.0f} ns median per message (timer included)")
    print(f"  met:     {', '.join(met) or '-'}")
    print(f"  not met: {', '.join(missed) or '-'}")
    print(
        "header = header parse alone; mean = compiled replay without per-message timers;"
        " x = python median / compiled median"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
