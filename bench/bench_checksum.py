"""Book checksums: ns per Kraken checksum (10 + 10 levels) and per OKX checksum (25 + 25).

Compiled: ``arbengine.venues.checksum`` on a compiled ``Book``, called through its Python API,
so each figure includes one Python call (the empty loop is printed so it can be subtracted by
eye). Python: the common path, a ``SortedDict`` book with text formatting and ``zlib.crc32``
(tests/reference/checksum.py): Kraken from Decimal values written at the wire precision, as a
v2 client that parses JSON numbers with ``Decimal`` does; OKX from the strings as received,
the cheapest Python variant (no formatting at all). Both paths hold the same deep book (1000
levels a side for Kraken, 400 for OKX, as subscribed) and must agree before anything is timed.

This prints figures. It is not a timed test and asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import zlib
from collections.abc import Callable
from decimal import Decimal
from itertools import islice

from sortedcontainers import SortedDict

from arbengine._core.book import ASK, BID, Book
from arbengine._core.fixed import Grid
from arbengine.venues.checksum import (
    crc32,
    kraken_book_checksum,
    kraken_checksum_text,
    okx_book_checksum,
    okx_checksum_text,
)
from bench._paths import ensure_repo_on_path

# BTC/USD-like instrument: tick 0.1, sizes with 8 decimals; Kraken v2 writes the same
# precisions (price_precision 1, qty_precision 8).
TICK = Grid("0.1", name="bench price")
LOT = Grid("0.00000001", name="bench size")
PRICE_DECIMALS = 1
QTY_DECIMALS = 8


def time_calls(fn: Callable[[], object], calls: int, runs: int) -> float:
    """Median ns per call over ``runs`` runs of ``calls`` calls."""
    per_run = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        per_run.append((time.perf_counter_ns() - t0) / calls)
    return statistics.median(per_run)


def make_levels(depth: int, seed: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """``depth`` bids below and asks above 45,000.0, mostly one tick apart, with sizes from a
    lot to a few BTC (texts of 5 to 12 characters, as on a real BTC book)."""
    rng = random.Random(seed)
    mid = 450_000  # ticks of 0.1
    bids, asks = [], []
    price = mid
    for _ in range(depth):
        price -= rng.choice((1, 1, 1, 2, 5))
        bids.append((price, rng.randint(1, 500_000_000)))
    price = mid
    for _ in range(depth):
        price += rng.choice((1, 1, 1, 2, 5))
        asks.append((price, rng.randint(1, 500_000_000)))
    return bids, asks


def decimal_book(levels: list[tuple[int, int]]) -> SortedDict:
    return SortedDict(
        {Decimal(TICK.format(p)): Decimal(LOT.format(q, trim=True)) for p, q in levels}
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="book checksum benchmark")
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    ensure_repo_on_path()
    from tests.reference.checksum import (
        TextBook,
        kraken_checksum,
        kraken_wire_text,
        okx_checksum,
    )

    # --- Kraken: depth-1000 book, checksum over the top 10 a side ---
    bids, asks = make_levels(1000, seed=1)
    kbook = Book(max_depth=1000, name="bench kraken")
    kbook.apply(bids, asks)
    py_bids, py_asks = decimal_book(bids), decimal_book(asks)

    def kraken_python() -> int:
        ask_texts = [
            (kraken_wire_text(p, PRICE_DECIMALS), kraken_wire_text(py_asks[p], QTY_DECIMALS))
            for p in islice(py_asks, 10)
        ]
        bid_texts = [
            (kraken_wire_text(p, PRICE_DECIMALS), kraken_wire_text(py_bids[p], QTY_DECIMALS))
            for p in islice(reversed(py_bids), 10)
        ]
        return kraken_checksum(ask_texts, bid_texts)

    def kraken_compiled() -> int:
        return kraken_book_checksum(kbook, TICK, LOT, PRICE_DECIMALS, QTY_DECIMALS)

    assert kraken_compiled() == kraken_python(), "Kraken: compiled and Python disagree"

    # --- OKX: 400-level book, checksum over the first 25 a side ---
    bids, asks = make_levels(400, seed=2)
    obook = Book(name="bench okx")
    obook.apply(bids, asks)
    text_book = TextBook()
    for side, levels in ((BID, bids), (ASK, asks)):
        for p, q in levels:
            text_book.set(side, TICK.format(p, trim=True), LOT.format(q, trim=True))

    def okx_python() -> int:
        return okx_checksum(text_book.top(BID, 25), text_book.top(ASK, 25))

    def okx_compiled() -> int:
        return okx_book_checksum(obook, TICK, LOT)

    assert okx_compiled() == okx_python(), "OKX: compiled and Python disagree"

    kraken_text = kraken_checksum_text(kbook, TICK, LOT, PRICE_DECIMALS, QTY_DECIMALS).encode()
    okx_text = okx_checksum_text(obook, TICK, LOT).encode()

    calls, runs = args.calls, args.runs
    slow = max(1, calls // 20)
    print("== book checksums: ns per call (median of runs) ==")
    print(f"{'case':<34}{'compiled':>12}{'Python':>12}{'ratio':>8}")
    rows = [
        ("Kraken, 10+10 levels", kraken_compiled, kraken_python),
        ("OKX, 25+25 levels", okx_compiled, okx_python),
        (
            f"CRC-32 only, {len(kraken_text)} B (Kraken text)",
            lambda: crc32(kraken_text),
            lambda: zlib.crc32(kraken_text),
        ),
        (
            f"CRC-32 only, {len(okx_text)} B (OKX text)",
            lambda: crc32(okx_text),
            lambda: zlib.crc32(okx_text),
        ),
    ]
    for label, compiled, python in rows:
        fast = time_calls(compiled, calls, runs)
        # zlib is C too: same call count; the str-building paths get fewer calls.
        ref = time_calls(python, calls if label.startswith("CRC") else slow, runs)
        print(f"{label:<34}{fast:>10.0f}ns{ref:>10.0f}ns{ref / fast:>7.1f}x")
    empty = time_calls(lambda: None, calls, runs)
    print(f"{'(empty loop+lambda)':<34}{empty:>10.0f}ns")
    print("CRC-32 rows: zlib.crc32 in the Python column (C, slicing by more bytes at a time)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
