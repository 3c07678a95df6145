"""LatencyHistogram: Prometheus bucket semantics, checked against prometheus_client itself."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from arbengine.metrics_histogram import (
    LATENCY_BOUNDS_NS,
    SLOW_BOUNDS_NS,
    IntHistogram,
    LatencyHistogram,
)


def test_a_value_on_a_bound_counts_in_that_bucket_and_above_it_in_the_next() -> None:
    h = IntHistogram([10, 20, 30])
    for v in (10, 11, 20, 30, 31, 0, -1):
        h.observe(v)
    snap = h.snapshot()
    # le=10: 10, 0, -1; le=20: +11, 20; le=30: +30; +Inf: +31
    assert snap.cumulative == (3, 5, 6)
    assert snap.count == 7 == h.count
    assert snap.sum == 10 + 11 + 20 + 30 + 31 + 0 - 1
    assert h.buckets == [3, 2, 1, 1]


def test_latency_histogram_counts_ns_and_scales_to_seconds() -> None:
    h = LatencyHistogram()
    assert h.bounds == LATENCY_BOUNDS_NS and h.scale == 10**9
    h.observe_ns(55_000)  # 55 us: the 75 us bucket
    h.observe_ns(100_000_000)  # exactly the 100 ms budget: its own bucket
    h.observe_ns(5 * 10**9)  # past every bound
    snap = h.snapshot()
    by_bound = dict(zip(snap.bounds, snap.cumulative, strict=True))
    assert by_bound[50_000] == 0 and by_bound[75_000] == 1
    assert by_bound[50_000_000] == 1 and by_bound[100_000_000] == 2
    assert by_bound[1_000_000_000] == 2 and snap.count == 3
    assert snap.sum == 55_000 + 100_000_000 + 5 * 10**9


@pytest.mark.parametrize(
    ("bounds", "scale", "error"),
    [
        ([], 1, "at least one bucket bound"),
        ([1, 1], 1, "increase strictly"),
        ([5, 3], 1, "increase strictly"),
        ([1.5, 3], 1, "bounds are ints, not float"),
        ([True, 3], 1, "bounds are ints, not bool"),
        ([1, 2], 0, "scale must be a positive int"),
    ],
)
def test_bad_bounds_are_refused(bounds: list[object], scale: int, error: str) -> None:
    with pytest.raises((ValueError, TypeError), match=error):
        IntHistogram(bounds, scale)  # type: ignore[arg-type]


def _client_buckets(values_ns: list[int], bounds_ns: tuple[int, ...]) -> list[float]:
    """prometheus_client's own Histogram, same bounds in seconds: cumulative counts."""
    registry = CollectorRegistry()
    h = Histogram("x_seconds", "x", buckets=[b / 1e9 for b in bounds_ns], registry=registry)
    for v in values_ns:
        h.observe(v / 1e9)
    samples = [s for m in registry.collect() for s in m.samples if s.name == "x_seconds_bucket"]
    return [s.value for s in samples]


@given(
    st.lists(st.integers(min_value=0, max_value=20 * 10**9), max_size=200),
    st.sampled_from([LATENCY_BOUNDS_NS, SLOW_BOUNDS_NS]),
)
def test_same_buckets_as_prometheus_client(values: list[int], bounds: tuple[int, ...]) -> None:
    h = LatencyHistogram(bounds)
    for v in values:
        h.observe_ns(v)
    snap = h.snapshot()
    assert [*snap.cumulative, snap.count] == _client_buckets(values, bounds)
    assert snap.sum == sum(values)


@given(st.lists(st.integers(min_value=-(10**6), max_value=10**12), max_size=300))
def test_buckets_match_a_count_by_comparison(values: list[int]) -> None:
    bounds = (0, 1_000, 50_000, 10**9)
    h = IntHistogram(bounds)
    for v in values:
        h.observe(v)
    assert h.snapshot().cumulative == tuple(sum(1 for v in values if v <= b) for b in bounds)


def test_a_snapshot_taken_while_another_thread_observes_is_consistent() -> None:
    """Cumulative counts never decrease along the buckets, +Inf is their total, and
    successive snapshots never go backwards, while the loop's thread keeps observing."""
    h = LatencyHistogram()
    stop = threading.Event()
    n_observed = 0

    def observer() -> None:
        nonlocal n_observed
        i = 0
        while not stop.is_set():
            h.observe_ns((i * 7919) % 2_000_000_000)
            i += 1
        n_observed = i

    t = threading.Thread(target=observer)
    t.start()
    try:
        previous = h.snapshot()
        for _ in range(2_000):
            snap = h.snapshot()
            assert all(a <= b for a, b in zip(snap.cumulative, snap.cumulative[1:], strict=False))
            assert snap.cumulative[-1] <= snap.count
            assert (
                all(a <= b for a, b in zip(previous.cumulative, snap.cumulative, strict=True))
                and previous.count <= snap.count
            )
            previous = snap
    finally:
        stop.set()
        t.join()
    final = h.snapshot()
    assert final.count == n_observed > 0
