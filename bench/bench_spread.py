"""Spread calculator: ns per call at top of book only, and walking 10 levels per side.

The compiled calculator is called through its Python API (``calc``, which allocates a result,
and ``calc_into``, which reuses one), so every figure includes one Python method call; the
cost of an empty loop iteration is printed too so it can be subtracted by eye. The reference
is the brute-force Fraction calculator in tests/reference/spread.py. The cross-quote rows
run the same books with B quoted in USDC, converted at a USDC/USDT rate (no reference).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from arbengine._core import (  # noqa: E402
    BUY_A_SELL_B,
    Book,
    Instrument,
    SpreadCalculator,
    SpreadResult,
)
from tests.reference.spread import Leg, reference_spread  # noqa: E402

FEE_A = Decimal("10")
FEE_B = Decimal("7.5")
# Cross-quote rows: USDT per USDC when buying / selling USDC (rates as a USDC/USDT book).
RATE_PAY = Decimal("1.0002")
RATE_GET = Decimal("0.9999")


def make_pair(levels_walked: int, cross: bool = False) -> tuple[SpreadCalculator, Book, Book]:
    """Books where exactly ``levels_walked`` levels per side pass a 1 bp threshold.

    A's asks start at 100.00 and climb 0.01 per level; B's bids start at 101.00 and fall
    0.01 per level, so the marginal edge shrinks by ~2 bps per level. The threshold is set so
    the walk stops after ``levels_walked`` levels on each side, 20 levels deep books.
    """
    a = Instrument("binance", "BTCUSDT", "BTC", "USDT", "0.01", "0.00001")
    b = Instrument(
        "okx",
        "BTC-USDC" if cross else "BTC-USDT",
        "BTC",
        "USDC" if cross else "USDT",
        "0.1",
        "0.00000001",
    )
    book_a = Book(name="a")
    book_b = Book(name="b")
    book_a.apply(
        [(9_990 - i, 100_000) for i in range(20)], [(10_000 + i, 100_000) for i in range(20)]
    )
    # B's tick is 0.1: bids 101.0, 100.9, ...; 1 BTC each = 1e8 lots.
    book_b.apply(
        [(1_010 - i, 100_000_000) for i in range(20)], [(1_020 + i, 10) for i in range(20)]
    )
    # Level k (0-based) pairs ask 100.00+0.01k with bid 101.0-0.1k. Put the threshold just
    # below the edge of pair k = levels_walked - 1 so that pair passes and the next fails.
    k = levels_walked - 1
    pa = Decimal("100.00") + Decimal("0.01") * k
    pb = Decimal("101.0") - Decimal("0.1") * k
    if cross:
        pb *= RATE_GET  # selling on B: its USDC proceeds are worth RATE_GET USDT each
    kb = 1 + FEE_A / 10_000
    ks = 1 - FEE_B / 10_000
    edge_bps = (pb * ks - pa * kb) / (pa * kb) * 10_000
    threshold = (edge_bps * 100).to_integral_value(rounding="ROUND_FLOOR") / 100
    calc = SpreadCalculator(a, b, FEE_A, FEE_B, min_edge_bps=threshold, cross_quote=cross)
    if cross:
        calc.set_quote_rate(RATE_PAY, RATE_GET)
    r = calc.calc(book_a, book_b, BUY_A_SELL_B)
    assert r.ok and r.buy_levels == levels_walked and r.sell_levels == levels_walked, r
    return calc, book_a, book_b


def time_calls(fn: Callable[[], object], calls: int, runs: int) -> float:
    """Median ns per call over ``runs`` runs of ``calls`` calls."""
    per_run = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        per_run.append((time.perf_counter_ns() - t0) / calls)
    return statistics.median(per_run)


def bench_case(label: str, levels: int, calls: int, runs: int, cross: bool = False) -> None:
    calc, book_a, book_b = make_pair(levels, cross)
    out = SpreadResult()
    fast = time_calls(lambda: calc.calc(book_a, book_b, BUY_A_SELL_B), calls, runs)
    into = time_calls(lambda: calc.calc_into(book_a, book_b, BUY_A_SELL_B, out), calls, runs)
    if cross:
        print(f"{label:<22}{fast:>10.0f}ns{into:>12.0f}ns{'-':>14}")
        return
    legs = (Leg(calc.instrument_a, FEE_A), Leg(calc.instrument_b, FEE_B))
    asks, bids = book_a.asks(), book_b.bids()
    threshold = calc.min_edge_bps
    # The Fraction reference is ~10^4 times slower: fewer calls, same median method.
    ref = time_calls(
        lambda: reference_spread(asks, bids, legs[0], legs[1], threshold),
        max(1, calls // 200),
        max(3, runs // 2),
    )
    want = reference_spread(asks, bids, legs[0], legs[1], threshold)
    got = calc.calc(book_a, book_b, BUY_A_SELL_B)
    assert (want.buy_levels, want.sell_size) == (got.buy_levels, got.sell_size)
    print(f"{label:<22}{fast:>10.0f}ns{into:>12.0f}ns{ref:>12.0f}ns{ref / into:>8.0f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="spread calculator benchmark")
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)

    print("== spread calculator: ns per call (median of runs) ==")
    print(f"{'case':<22}{'calc()':>12}{'calc_into()':>14}{'reference':>14}{'ratio':>9}")
    for label, levels in (("top of book", 1), ("10 levels per side", 10)):
        bench_case(label, levels, args.calls, args.runs)
    for label, levels in (("top, cross-quote", 1), ("10 levels, cross-quote", 10)):
        bench_case(label, levels, args.calls, args.runs, cross=True)
    empty = time_calls(lambda: None, args.calls, args.runs)
    print(f"{'(empty loop+lambda)':<22}{empty:>10.0f}ns")
    print("target: <= 300 ns per calculation walking 10 levels")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
