"""Metrics on the hot path: ns per histogram observation, ours against prometheus_client's.

``LatencyHistogram.observe_ns`` (arbengine/metrics_histogram.py) is one bisect over the
bucket bounds and two int additions; prometheus_client's ``Histogram.observe`` takes a lock
and walks its buckets in Python. Both get the same values (latencies spread over the
default buckets) through a bound method in a plain ``for`` loop; the empty loop is printed
so it can be subtracted by eye. Also: ``ArbStats.observe`` (the one call per arb: four
stage latencies, tick-to-order, the pair's count and edge) and what one scrape costs the
exporter's thread (collect and render, in process, no HTTP) for the engine rig of the tests,
and how late the event loop runs a 1 ms timer, idle and while Prometheus-like scrapes come
over HTTP every 50 ms (the exporter's thread competes with the loop for the GIL).

This prints figures. It is not a timed test and asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry, Histogram

from arbengine.metrics import MetricsExporter, MetricSources
from arbengine.metrics_histogram import LATENCY_BOUNDS_NS, LatencyHistogram
from bench._paths import ensure_repo_on_path


def per_value(loop: Callable[[list[int]], None], values: list[int], runs: int) -> float:
    """Median ns per value over ``runs`` passes of ``loop`` over ``values``."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        loop(values)
        times.append((time.perf_counter_ns() - t0) / len(values))
    return statistics.median(times)


def latencies(n: int, seed: int) -> list[int]:
    """Tick-to-order-like ns: mostly 30-200 us, a tail to tens of ms."""
    rng = random.Random(seed)
    return [
        int(rng.lognormvariate(11.0, 0.6)) if rng.random() < 0.99 else rng.randrange(10**6, 10**8)
        for _ in range(n)
    ]


def bench_histograms(values: list[int], runs: int) -> None:
    ours = LatencyHistogram()
    observe_ns = ours.observe_ns
    theirs = Histogram(
        "bench_seconds",
        "bench",
        buckets=[b / 1e9 for b in LATENCY_BOUNDS_NS],
        registry=CollectorRegistry(),
    )
    observe = theirs.observe
    seconds = [v / 1e9 for v in values]

    def empty(vs: list[int]) -> None:
        for _ in vs:
            pass

    def ours_loop(vs: list[int]) -> None:
        for v in vs:
            observe_ns(v)

    def theirs_loop(_: list[int]) -> None:
        for s in seconds:
            observe(s)

    rows = [
        ("empty loop", per_value(empty, values, runs)),
        ("LatencyHistogram.observe_ns", per_value(ours_loop, values, runs)),
        ("prometheus_client Histogram.observe", per_value(theirs_loop, values, runs)),
    ]
    print(f"{'histogram observation':40} {'ns/op':>8}")
    for name, ns in rows:
        print(f"{name:40} {ns:8.1f}")
    assert ours.count == len(values) * runs


async def bench_arb_and_scrape(runs: int) -> None:
    ensure_repo_on_path()
    from arbengine.metrics_taps import ArbStats, OrderTap
    from tests.engine_rig import build

    with tempfile.TemporaryDirectory() as tmp:
        rig = build(Path(tmp), pairs=("btc", "btc2", "xq"))
        try:
            rig.rich()
            await rig.settle()
            (arb,) = rig.arbs()
            stats = ArbStats(rig.engine.pairs)
            opp, sent = arb.opp, max(leg.sent_ns for leg in arb.legs)
            n = 100_000
            per_arb = []
            for _ in range(runs):
                t0 = time.perf_counter_ns()
                for _ in range(n):
                    stats.observe(opp, sent)
                per_arb.append((time.perf_counter_ns() - t0) / n)
            print(f"\n{'ArbStats.observe (one arb)':40} {statistics.median(per_arb):8.1f} ns")

            tap = OrderTap(rig.executor).attach(rig.gateways.values())
            exporter = MetricsExporter(
                MetricSources(rig.engine, books=[v.sync for v in rig.venues.values()], orders=tap),
                port=0,
            )
            size = len(exporter.scrape())
            scrapes = []
            for _ in range(runs):
                t0 = time.perf_counter_ns()
                for _ in range(20):
                    exporter.scrape()
                scrapes.append((time.perf_counter_ns() - t0) / 20)
            print(
                f"{'one scrape, 3 pairs / 5 venues':40} {statistics.median(scrapes) / 1e6:8.2f} ms"
                f"  ({size} bytes)"
            )
            await loop_lag_while_scraping(exporter)
        finally:
            await rig.close()


async def timer_lateness(seconds: float) -> list[float]:
    """How late each 1 ms sleep wakes up, us, for ``seconds``."""
    lags = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.perf_counter()
        await asyncio.sleep(0.001)
        lags.append((time.perf_counter() - t0 - 0.001) * 1e6)
    return sorted(lags)


async def loop_lag_while_scraping(exporter: MetricsExporter) -> None:
    import threading
    import urllib.request

    exporter.start()
    stop = threading.Event()
    scrapes = 0

    def scrape() -> None:
        nonlocal scrapes
        while not stop.is_set():
            with urllib.request.urlopen(exporter.url) as resp:
                resp.read()
            scrapes += 1
            time.sleep(0.05)

    idle = await timer_lateness(1.0)
    thread = threading.Thread(target=scrape)
    thread.start()
    try:
        busy = await timer_lateness(3.0)
    finally:
        stop.set()
        thread.join()
        exporter.stop()
    print(f"\n{'1 ms timer lateness, us':40} {'p50':>8} {'p99':>8} {'max':>8}")
    for name, lags in (("idle", idle), (f"while scraped ({scrapes} scrapes)", busy)):
        p50, p99 = lags[len(lags) // 2], lags[int(len(lags) * 0.99)]
        print(f"{name:40} {p50:8.0f} {p99:8.0f} {lags[-1]:8.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="metrics benchmark")
    parser.add_argument("--values", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    bench_histograms(latencies(args.values, seed=1), args.runs)
    asyncio.run(bench_arb_and_scrape(args.runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
