"""Run every benchmark in bench/, one after another, in one process.

    python -m bench                      # all of them, default settings
    python -m bench book                 # only some, by name
    python -m bench book -- --messages 100000 --peer-messages 20000
                                         # arguments after -- go to each selected benchmark

A benchmark is a module with ``main(argv: list[str] | None) -> int`` that prints its figures.
Register a new one with one line in BENCHMARKS.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from collections.abc import Callable
from typing import cast

# name -> module. Order is run order.
BENCHMARKS: dict[str, str] = {
    "book": "bench.bench_book",
    "spread": "bench.bench_spread",
    "checksum": "bench.bench_checksum",
    "frames": "bench.bench_frames",
    "engine": "bench.bench_engine",
    "metrics": "bench.bench_metrics",
    "gateways": "bench.bench_gateways",
    "wire": "bench.bench_wire",
}


def run_one(name: str, argv: list[str]) -> int:
    """Import and run one benchmark; a failure is reported and does not stop the others."""
    print(f"\n######## bench {name} ({BENCHMARKS[name]}) ########\n", flush=True)
    t0 = time.perf_counter()
    try:
        # Imported lazily: a benchmark whose peers or compiled parts are missing must not
        # keep the others from running.
        module = importlib.import_module(BENCHMARKS[name])
        main = cast(Callable[[list[str] | None], int], module.main)
        rc = main(argv)
    except SystemExit as exc:  # argparse errors and explicit exits
        rc = exc.code if isinstance(exc.code, int) else 1
    except Exception:
        traceback.print_exc()
        rc = 1
    print(
        f"\n######## bench {name}: exit {rc}, {time.perf_counter() - t0:.1f} s ########", flush=True
    )
    return rc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", metavar="NAME", help=f"any of {', '.join(BENCHMARKS)}")
    ap.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    # Everything after "--" is for the benchmarks, so split it off before argparse sees it.
    args_in = list(argv) if argv is not None else sys.argv[1:]
    passthrough: list[str] = []
    if "--" in args_in:
        cut = args_in.index("--")
        args_in, passthrough = args_in[:cut], args_in[cut + 1 :]
    args = ap.parse_args(args_in)
    if args.list:
        for name, module in BENCHMARKS.items():
            print(f"{name}\t{module}")
        return 0
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        ap.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    results = {name: run_one(name, passthrough) for name in args.names or BENCHMARKS}
    failed = [name for name, rc in results.items() if rc]
    print(f"\nbenchmarks run: {', '.join(results)}; failed: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
