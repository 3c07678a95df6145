"""Record raw feed traffic to rotated gzip files, and replay any recording into handlers.

The recorder sits beside the hot path: ``record`` only puts a tuple on a bounded queue and a
writer thread compresses and writes, so recording never blocks the event loop (a full queue
drops the frame and counts it rather than stalling the feed). Each record is one line,
``<wall ns> <mono ns> <source> <length> <payload>``, length-prefixed so payloads may hold
anything; ``source`` names the stream ("ws:binance", "rest:binance:/api/v3/depth?...").

``read_any`` reads this format and the two recorded formats in shared data (hftbacktest and
cryptofeed, via ``recording``), so ``replay`` drives the same handlers from any of them.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from arbengine.venues.recording import Kind, RecordingError, read_cryptofeed, read_hftbacktest
from arbengine.venues.ws import FeedHandler

_SUFFIX = ".rec.gz"


@dataclass(frozen=True, slots=True)
class Frame:
    recv_wall_ns: int
    recv_mono_ns: int
    source: str
    payload: bytes


@dataclass
class RecorderCounters:
    frames: int = 0
    bytes: int = 0
    files: int = 0
    dropped: int = 0
    write_errors: int = 0


class Recorder:
    """Writes frames to ``directory/<prefix>-<UTC time>-<n>.rec.gz``, rotating by size/age."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        prefix: str,
        *,
        max_bytes: int = 256 * 1024 * 1024,
        max_age_s: float = 3600.0,
        queue_size: int = 100_000,
        compresslevel: int = 6,
    ) -> None:
        if max_bytes <= 0 or max_age_s <= 0:
            raise ValueError("max_bytes and max_age_s must be positive")
        if not prefix or any(c in prefix for c in "/ \\"):
            raise ValueError(f"recorder prefix {prefix!r} must be a plain file name part")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.compresslevel = compresslevel
        self.counters = RecorderCounters()
        self.last_error = ""
        self.paths: list[Path] = []
        self._queue: queue.Queue[tuple[int, int, str, bytes] | None] = queue.Queue(queue_size)
        self._thread = threading.Thread(target=self._run, name=f"recorder-{prefix}", daemon=True)
        self._thread.start()

    def record(self, source: str, payload: bytes, recv_wall_ns: int, recv_mono_ns: int) -> None:
        """Queue one frame; never blocks."""
        if " " in source or "\n" in source:
            raise ValueError(f"record source {source!r} must not contain spaces or newlines")
        try:
            self._queue.put_nowait((recv_wall_ns, recv_mono_ns, source, payload))
        except queue.Full:
            self.counters.dropped += 1

    def close(self) -> None:
        """Write everything queued, close the file, stop the thread."""
        self._queue.put(None)
        self._thread.join()

    def _open(self) -> tuple[gzip.GzipFile, float, int]:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        path = self.directory / f"{self.prefix}-{stamp}-{len(self.paths):04d}{_SUFFIX}"
        self.paths.append(path)
        self.counters.files += 1
        return gzip.open(path, "wb", compresslevel=self.compresslevel), time.monotonic(), 0

    def _run(self) -> None:
        out, opened, written = self._open()
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                wall, mono, source, payload = item
                line = b"%d %d %s %d " % (wall, mono, source.encode(), len(payload))
                try:
                    out.write(line)
                    out.write(payload)
                    out.write(b"\n")
                except OSError as exc:  # disk full: keep the feed, count the loss
                    self.counters.write_errors += 1
                    self.last_error = f"recorder {self.prefix}: {exc}"
                    continue
                self.counters.frames += 1
                written += len(line) + len(payload) + 1
                self.counters.bytes += len(payload)
                if written >= self.max_bytes or time.monotonic() - opened >= self.max_age_s:
                    out.close()
                    out, opened, written = self._open()
        finally:
            out.close()


def read_recording(path: str | os.PathLike[str]) -> Iterator[Frame]:
    """Frames of one file written by ``Recorder``; RecordingError names file and line."""
    name = os.fspath(path)
    with gzip.open(name, "rb") as f:
        data = f.read()
    pos = 0
    line_no = 0
    while pos < len(data):
        line_no += 1
        head_end = pos
        for _ in range(4):
            head_end = data.find(b" ", head_end) + 1
            if head_end == 0:
                raise RecordingError(name, line_no, "truncated record header")
        try:
            wall, mono, source, length = data[pos : head_end - 1].split(b" ")
            n = int(length)
            frame = Frame(int(wall), int(mono), source.decode(), data[head_end : head_end + n])
        except (ValueError, UnicodeDecodeError):
            raise RecordingError(name, line_no, "malformed record header") from None
        end = head_end + n
        if end >= len(data) + 1 or data[end : end + 1] != b"\n":
            raise RecordingError(name, line_no, f"record shorter than its length {n}")
        yield frame
        pos = end + 1


def read_any(path: str | os.PathLike[str]) -> Iterator[Frame]:
    """Frames from a Recorder file, an hftbacktest file or a cryptofeed file.

    Recorded-elsewhere formats have no monotonic clock: their receive time stands in for
    both stamps. cryptofeed's outbound frames (what the client sent) are skipped; its
    connect lines and HTTP bodies become frames with sources "connect:<url>" and
    "rest:<url>".
    """
    name = os.fspath(path)
    if name.endswith(_SUFFIX):
        yield from read_recording(name)
        return
    with open(name, "rb") as f:
        head = f.read(64)
    if head.startswith(b"\x1f\x8b"):
        with gzip.open(name, "rb") as g:
            head = g.read(64)
    if head[:1].isdigit() and (b" {" in head or b" [" in head):
        for rec in read_hftbacktest(name):
            yield Frame(rec.recv_ns, rec.recv_ns, "hftbacktest", rec.payload)
        return
    for cf in read_cryptofeed(name):
        if cf.kind is Kind.OUTBOUND:
            continue
        source = {Kind.CONNECT: f"connect:{cf.url}", Kind.HTTP: f"rest:{cf.url}"}.get(cf.kind, "ws")
        yield Frame(cf.recv_ns, cf.recv_ns, source.replace(" ", "%20"), cf.payload)


async def replay(
    frames: Iterable[Frame], handler: FeedHandler, *, speed: float | None = None
) -> int:
    """Feed ``frames`` to ``handler.on_frame`` with their recorded stamps. ``speed`` None
    replays as fast as possible; otherwise in recorded time scaled by ``speed`` (2.0 = twice
    as fast). Returns the number of frames replayed."""
    if speed is not None and speed <= 0:
        raise ValueError(f"replay speed must be positive, got {speed}")
    loop = asyncio.get_running_loop()
    start_wall = 0
    start_loop = 0.0
    count = 0
    for frame in frames:
        if speed is not None:
            if count == 0:
                start_wall, start_loop = frame.recv_wall_ns, loop.time()
            due = start_loop + (frame.recv_wall_ns - start_wall) / 1e9 / speed
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        elif count % 1024 == 1023:
            await asyncio.sleep(0)  # let the rest of the loop breathe on long files
        handler.on_frame(frame.payload, frame.recv_mono_ns, frame.recv_wall_ns)
        count += 1
    return count
