"""Recorder (rotated gzip, off-loop writer) and replay from any of the three formats."""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path

import pytest

from arbengine.venues.recorder import Frame, Recorder, read_any, read_recording, replay
from arbengine.venues.recording import RecordingError

DATA = Path(__file__).resolve().parent / "data"


class Collect:
    def __init__(self) -> None:
        self.frames: list[tuple[bytes, int, int]] = []

    def on_connected(self) -> list[bytes]:
        return []

    def on_frame(self, payload: bytes, recv_mono_ns: int, recv_wall_ns: int) -> None:
        self.frames.append((payload, recv_mono_ns, recv_wall_ns))

    def on_disconnected(self) -> None:
        pass


def test_round_trip_with_awkward_payloads(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, "binance")
    payloads = [b'{"a":1}', b"line\nbreaks\n", b"", b"\x00\xff binary", b" spaces "]
    for i, p in enumerate(payloads):
        rec.record("ws:binance", p, 1_700_000_000_000_000_000 + i, 1_000 + i)
    rec.record("rest:binance:/api/v3/depth?symbol=BTCUSDT", b'{"lastUpdateId":1}', 7, 8)
    rec.close()
    (path,) = rec.paths
    frames = list(read_recording(path))
    assert [f.payload for f in frames] == [*payloads, b'{"lastUpdateId":1}']
    assert frames[0] == Frame(1_700_000_000_000_000_000, 1_000, "ws:binance", b'{"a":1}')
    assert frames[-1].source == "rest:binance:/api/v3/depth?symbol=BTCUSDT"
    assert rec.counters.frames == 6 and rec.counters.dropped == 0


def test_rotation_by_size_keeps_every_frame_in_order(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, "okx", max_bytes=1_000)
    for i in range(500):
        rec.record("ws:okx", b'{"seq":%d}' % i, i, i)
    rec.close()
    assert len(rec.paths) > 5 and rec.counters.files == len(rec.paths)
    seqs = [f.recv_wall_ns for path in rec.paths for f in read_recording(path)]
    assert seqs == list(range(500))


def test_full_queue_drops_instead_of_blocking(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, "x", queue_size=1)
    for i in range(10_000):
        rec.record("ws:x", b"p", i, i)
    rec.close()
    assert rec.counters.frames + rec.counters.dropped == 10_000
    assert rec.counters.frames >= 1


def test_bad_arguments_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="plain file name"):
        Recorder(tmp_path, "a/b")
    rec = Recorder(tmp_path, "ok")
    with pytest.raises(ValueError, match="spaces"):
        rec.record("ws bad", b"", 0, 0)
    rec.close()
    bad = tmp_path / "bad.rec.gz"
    with gzip.open(bad, "wb") as f:
        f.write(b"1 2 ws:x 10 short\n")
    with pytest.raises(RecordingError, match=r"bad\.rec\.gz:1: record shorter than its length"):
        list(read_recording(bad))
    with gzip.open(bad, "wb") as f:
        f.write(b"1 two ws:x 1 a\n")
    with pytest.raises(RecordingError, match=r":1: malformed record header"):
        list(read_recording(bad))


def test_read_any_reads_the_shared_formats() -> None:
    hft = list(read_any(DATA / "binance" / "spot_btcusdt_20240808_depth.gz"))
    assert len(hft) == 3_452 and hft[0].source == "hftbacktest"
    assert hft[0].payload.startswith(b'{"stream":"btcusdt@depth@100ms"')
    okx = list(read_any(DATA / "cryptofeed" / "OKX.ws.1.0.gz"))
    assert okx[0].source.startswith("connect:wss://ws.okx.com")
    assert sum(f.payload.startswith(b'{"arg":{"channel":"books"') for f in okx) == 290


async def test_replay_fast_and_in_recorded_time(tmp_path: Path) -> None:
    frames = [Frame(i * 20_000_000, i, "ws:x", b"%d" % i) for i in range(6)]  # 100 ms span
    fast = Collect()
    assert await replay(frames, fast) == 6
    assert [p for p, _, _ in fast.frames] == [b"0", b"1", b"2", b"3", b"4", b"5"]
    timed = Collect()
    loop = asyncio.get_running_loop()
    start = loop.time()
    await replay(frames, timed, speed=2.0)  # 100 ms of recording at 2x: >= 50 ms
    assert loop.time() - start >= 0.045
    assert timed.frames == fast.frames  # same frames, same stamps
    with pytest.raises(ValueError, match="speed must be positive"):
        await replay(frames, timed, speed=0)
