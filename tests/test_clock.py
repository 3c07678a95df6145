"""Clock offset estimate: the real recordings' local clock runs more than a second behind."""

from __future__ import annotations

import orjson
import pytest

from arbengine.venues._clock import ClockOffset
from arbengine.venues.recorder import read_any
from tests.test_recorder import DATA


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_recorded_local_clock_is_behind_the_venue(market: str) -> None:
    clock = ClockOffset(window_s=60)
    last = 0
    ages: list[int] = []
    for frame in read_any(DATA / "binance" / f"{market}_btcusdt_20240808_depth.gz"):
        event = orjson.loads(frame.payload).get("data")
        if event is None:
            continue
        exch = event["E"] * 1_000_000
        clock.add(frame.recv_wall_ns, exch)
        age = clock.data_age_ns(exch, frame.recv_wall_ns)
        assert age is not None
        ages.append(age)
        last = frame.recv_wall_ns
    offset = clock.offset_ns(last)
    assert offset is not None
    # The data README: local receive time is EARLIER than E by more than a second.
    assert -2_000_000_000 < offset < -1_000_000_000
    # Corrected ages are never negative and mostly small: the offset is not "latency".
    assert min(ages) >= 0
    assert sorted(ages)[len(ages) // 2] < 200_000_000


def test_window_forgets_old_minimums_and_validates() -> None:
    clock = ClockOffset(window_s=8)  # 1 s buckets
    assert clock.offset_ns(0) is None
    clock.add(1_000_000_000, 1_000_000_000 - 5)  # offset 5 ns at t = 1 s
    assert clock.offset_ns(1_500_000_000) == 5
    clock.add(20_000_000_000, 20_000_000_000 - 50)
    assert clock.offset_ns(20_000_000_000) == 50  # the t = 1 s minimum aged out
    clock.add(20_100_000_000, 0)  # no event time: ignored
    assert clock.samples == 2
    with pytest.raises(ValueError, match="window must be positive"):
        ClockOffset(window_s=0)
    with pytest.raises(TypeError, match="must be an int"):
        clock.add(1.5, 1)  # type: ignore[arg-type]
