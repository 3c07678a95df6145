"""Histograms the hot path can afford: one bisect and two int additions per observation.

prometheus_client's own ``Histogram.observe`` takes a lock and walks the bucket list in
Python (``bench/bench_metrics.py`` puts the two side by side); the engine records one
tick-to-order latency and a few stage latencies per arb, so it keeps plain int buckets here
instead and the exporter (``arbengine.metrics``) turns them into a Prometheus histogram at
scrape time. Nothing here imports prometheus_client, so the engine pays nothing to import it.

Thread safety: one thread observes (the event loop, or the journal's writer thread for its
own histograms); any other thread may take a ``snapshot``. The bucket list is copied in one
C-level call, so the buckets, and the count derived from them, are always consistent with
each other; ``sum`` is read right after and may include at most the observations racing
with the copy.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate, pairwise
from typing import Final

_US: Final = 1_000
_MS: Final = 1_000_000

#: Default latency bounds, ns: fine around the engine's tens-of-microseconds path, then
#: coarse up to the 100 ms order budget and past it.
LATENCY_BOUNDS_NS: Final[tuple[int, ...]] = (
    5 * _US,
    10 * _US,
    20 * _US,
    30 * _US,
    50 * _US,
    75 * _US,
    100 * _US,
    150 * _US,
    200 * _US,
    300 * _US,
    500 * _US,
    750 * _US,
    1 * _MS,
    2 * _MS,
    5 * _MS,
    10 * _MS,
    20 * _MS,
    50 * _MS,
    100 * _MS,
    250 * _MS,
    1_000 * _MS,
)

#: Bounds for venue round trips (order acks) and disk (journal fsync), ns: these live in
#: milliseconds rather than microseconds.
SLOW_BOUNDS_NS: Final[tuple[int, ...]] = (
    50 * _US,
    100 * _US,
    250 * _US,
    500 * _US,
    1 * _MS,
    2 * _MS,
    5 * _MS,
    10 * _MS,
    25 * _MS,
    50 * _MS,
    100 * _MS,
    250 * _MS,
    500 * _MS,
    1_000 * _MS,
    2_500 * _MS,
    10_000 * _MS,
)


@dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    """A consistent copy: ``cumulative[i]`` observations were <= ``bounds[i]`` (in the
    histogram's unit); ``count`` is every observation (the +Inf bucket)."""

    bounds: tuple[int, ...]
    cumulative: tuple[int, ...]
    count: int
    sum: int


class IntHistogram:
    """Counts of int observations in fixed buckets: bucket ``i`` holds values ``v`` with
    ``bounds[i-1] < v <= bounds[i]`` (Prometheus' ``le``), the last one everything above.

    ``scale``: how many of the observed unit make one unit of the exported metric (1e9 for
    ns exported as seconds)."""

    __slots__ = ("bounds", "buckets", "scale", "sum")

    def __init__(self, bounds: Sequence[int], scale: int = 1) -> None:
        bounds = tuple(bounds)
        if not bounds:
            raise ValueError("a histogram needs at least one bucket bound")
        for b in bounds:
            if isinstance(b, bool) or not isinstance(b, int):
                raise TypeError(f"bucket bounds are ints, not {type(b).__name__}")
        if any(hi <= lo for lo, hi in pairwise(bounds)):
            raise ValueError(f"bucket bounds must increase strictly: {bounds}")
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise ValueError(f"scale must be a positive int, got {scale!r}")
        self.bounds = bounds
        self.buckets = [0] * (len(bounds) + 1)
        self.scale = scale
        self.sum = 0

    def observe(self, value: int) -> None:
        # bisect_left: the first bound >= value, i.e. the bucket whose ``le`` admits it.
        self.buckets[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def snapshot(self) -> HistogramSnapshot:
        counts = self.buckets.copy()  # one C call: no observation lands half-way through
        total = self.sum
        cumulative = tuple(accumulate(counts))
        return HistogramSnapshot(self.bounds, cumulative[:-1], cumulative[-1], total)

    @property
    def count(self) -> int:
        return sum(self.buckets)


class LatencyHistogram(IntHistogram):
    """Latencies in integer ns, exported as ``_seconds``: ``observe_ns(t1 - t0)``."""

    __slots__ = ()

    def __init__(self, bounds_ns: Sequence[int] = LATENCY_BOUNDS_NS) -> None:
        super().__init__(bounds_ns, scale=1_000_000_000)

    # The same function under the name that says the unit (no extra call per observation).
    observe_ns = IntHistogram.observe
