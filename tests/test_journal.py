"""The audit journal: chain, tamper detection, rotation, batching, durability, recovery.

Everything runs on real files in tmp_path with the real writer thread. The hash chain is
recomputed here with hashlib + orjson straight from the documented definition (not through
the module's own helpers), so the format is pinned by the test, not by the code under test.
"""

from __future__ import annotations

import asyncio
import calendar
import hashlib
import itertools
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from decimal import Decimal
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog

from arbengine._core.instrument import Instrument
from arbengine.journal import (
    GENESIS,
    MASK,
    Event,
    Journal,
    JournalCorrupt,
    JournalError,
    JournalLogger,
    as_int,
    fill_fields,
    is_secret_key,
    journal_files,
    order_fields,
    read_entries,
    verify,
)
from arbengine.orders import Fill, Order, OrderStatus, Purpose, Side, TimeInForce, atoms

ROOT = Path(__file__).resolve().parents[1]


def oracle_hash(entry: dict[str, Any]) -> str:
    """The documented definition: SHA-256 of orjson(OPT_SORT_KEYS) of the entry minus hash."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def all_entries(directory: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for p in journal_files(directory) for line in lines_of(p)]


def fill_journal(directory: Path, n: int, **kw: Any) -> list[Path]:
    with Journal(directory, **kw) as j:
        for i in range(n):
            j.arb(f"arb-{i // 2}").write(Event.FILL, leg=i % 2, price=1000 + i, size_text="0.01")
    return journal_files(directory)


class FsyncLog:
    """An fsync that records what it was called on and from which thread, then fsyncs."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[tuple[bool, int, str]] = []  # (is a directory, size, thread name)
        self.delay = delay

    def __call__(self, fd: int) -> None:
        st = os.fstat(fd)
        self.calls.append((stat.S_ISDIR(st.st_mode), st.st_size, threading.current_thread().name))
        if self.delay and not stat.S_ISDIR(st.st_mode):
            time.sleep(self.delay)
        os.fsync(fd)

    @property
    def files(self) -> list[int]:
        """File sizes at each fsync of a journal file (not of the directory)."""
        return [size for is_dir, size, _ in self.calls if not is_dir]


# --------------------------------------------------------------------------- the chain


def test_entries_are_a_hash_chain_from_genesis(tmp_path: Path) -> None:
    with Journal(tmp_path) as j:
        arb = j.arb("arb-7")
        arb.write(Event.OPPORTUNITY, buy="binance", sell="okx", edge_bps="3.2", size=5)
        arb.write(Event.RISK, verdict="accept", reason="ok")
        s1 = arb.bind(venue="binance").write(Event.ORDER, client_id="c1", side=Side.BUY)
        s2 = arb.bind(venue="okx").write(Event.ORDER, client_id="c2", side=Side.SELL)
        j.write(Event.OPERATOR, action="pause", by="ops")
    (path,) = journal_files(tmp_path)
    entries = [orjson.loads(line) for line in lines_of(path)]
    assert [e["seq"] for e in entries] == list(range(1, 8))
    assert entries[0]["event"] == "journal_open" and entries[-1]["event"] == "journal_close"
    assert entries[0]["prev"] == GENESIS == "0" * 64
    for before, entry in itertools.pairwise(entries):
        assert entry["prev"] == before["hash"]
    for entry, line in zip(entries, lines_of(path), strict=True):
        assert entry["hash"] == oracle_hash(entry)
        assert list(entry)[:3] == ["seq", "ts", "event"] and list(entry)[-2:] == ["prev", "hash"]
        assert line == orjson.dumps(entry) + b"\n"  # one compact line per entry
    # Both legs (and everything else about the arb) carry the same arb id.
    legs = [e for e in entries if e["event"] == "order"]
    assert [e["seq"] for e in legs] == [s1, s2] == [4, 5]
    assert {e["arb_id"] for e in legs} == {"arb-7"} and [e["side"] for e in legs] == [1, -1]
    assert entries[1]["arb_id"] == entries[2]["arb_id"] == "arb-7"
    assert "arb_id" not in entries[5]
    assert entries[1]["ts"].endswith("Z") and len(entries[1]["ts"]) == 27

    result = verify(tmp_path)
    assert result.ok and result.clean
    assert (result.entries, result.files, result.first_seq, result.last_seq) == (7, 1, 1, 7)
    assert result.last_hash == entries[-1]["hash"]
    assert result.describe() == (
        f"ok: 7 entries in 1 file, last seq 7, last hash {entries[-1]['hash']}"
    )


def test_the_journal_logger_is_a_structlog_chain(tmp_path: Path) -> None:
    with Journal(tmp_path) as j:
        log = j.bind(arb_id="a1", venue="okx")
        assert isinstance(log, JournalLogger) and isinstance(log, structlog.BoundLoggerBase)
        assert len(j.processors) == 5
        log.unbind("venue").write("ack", client_id="c1")
        log.new(arb_id="a2").write("ack", client_id="c2")
    acks = [e for e in all_entries(tmp_path) if e["event"] == "ack"]
    assert [(e["arb_id"], "venue" in e) for e in acks] == [("a1", False), ("a2", False)]


@pytest.fixture
def three_files(tmp_path: Path) -> list[Path]:
    """A journal of 3 files (rotated by size) with short lines, for the tamper tests."""
    d = tmp_path / "j"
    with Journal(d, max_bytes=700) as j:
        for i in range(5):
            j.write("e", n=i)
    files = journal_files(d)
    assert len(files) == 3, [len(lines_of(p)) for p in files]
    assert verify(files).clean
    return files


def positions(files: list[Path]) -> list[tuple[Path, int]]:
    """(file, 1-based line) of every entry, in chain order."""
    return [(p, n) for p in files for n in range(1, len(lines_of(p)) + 1)]


def test_altering_any_byte_of_any_entry_is_detected_at_that_entry(tmp_path: Path) -> None:
    # Small (4 entries over 2 files) so that every byte can be tried twice.
    with Journal(tmp_path, max_bytes=500) as j:
        j.write("e", n=1)
        j.write("e", n=2)
    files = journal_files(tmp_path)
    assert len(files) >= 2 and verify(files).clean
    checked = 0
    for path in files:
        fd = os.open(path, os.O_RDWR)  # one byte rewritten in place, then put back
        offset = 0
        for lineno, line in enumerate(lines_of(path), 1):
            for i in range(len(line) - 1):  # every byte but the newline
                for new in (line[i] ^ 0x01, ord(" ") if line[i] != ord(" ") else ord("_")):
                    os.pwrite(fd, bytes([new]), offset + i)
                    result = verify(files)
                    assert not result.ok, (path.name, lineno, i, chr(new))
                    assert result.problem is not None
                    assert (result.problem.path, result.problem.line) == (str(path), lineno)
                    checked += 1
                os.pwrite(fd, line[i : i + 1], offset + i)
            offset += len(line)
        os.close(fd)
    assert checked > 1_500
    assert verify(files).clean


def test_deleting_a_line_is_detected_at_the_entry_after_it(three_files: list[Path]) -> None:
    where = positions(three_files)
    for g, (path, lineno) in enumerate(where[:-1]):
        original = path.read_bytes()
        lines = lines_of(path)
        path.write_bytes(b"".join(lines[: lineno - 1] + lines[lineno:]))
        result = verify(three_files)
        assert not result.ok and result.problem is not None
        # The next entry moved up one line in the same file, or is line 1 of the next file.
        nxt_path = where[g + 1][0]
        expect = (path, lineno) if nxt_path == path else (nxt_path, 1)
        assert (result.problem.path, result.problem.line) == (str(expect[0]), expect[1])
        assert result.problem.seq == g + 2
        assert f"seq {g + 2} out of order, expected {g + 1}" in result.problem.what
        assert result.entries == g
        path.write_bytes(original)


def test_cutting_off_the_tail_needs_the_anchored_last_hash(three_files: list[Path]) -> None:
    # A chain alone cannot see entries removed from the end; the last hash, kept elsewhere
    # (verify prints it), can.
    anchor = verify(three_files).last_hash
    last = three_files[-1]
    last.write_bytes(b"".join(lines_of(last)[:-1]))
    result = verify(three_files)
    assert result.ok and result.last_hash != anchor


@pytest.mark.parametrize("a,b", [(0, 1), (2, 3), (1, 4), (3, 4), (0, 5)])
def test_swapping_two_lines_is_detected_at_the_first(
    three_files: list[Path], a: int, b: int
) -> None:
    where = positions(three_files)
    (pa, la), (pb, lb) = where[a], where[b]
    content = {p: lines_of(p) for p in three_files}
    content[pa][la - 1], content[pb][lb - 1] = content[pb][lb - 1], content[pa][la - 1]
    for p, lines in content.items():
        p.write_bytes(b"".join(lines))
    result = verify(three_files)
    assert result.problem is not None
    assert (result.problem.path, result.problem.line, result.problem.seq) == (str(pa), la, b + 1)
    assert result.entries == a


def test_an_edit_rehashed_before_a_rotation_is_caught_by_the_next_file(
    three_files: list[Path],
) -> None:
    first, second = three_files[0], three_files[1]
    lines = lines_of(first)
    entry = orjson.loads(lines[-1])
    entry["n"] = 999
    entry["hash"] = oracle_hash(entry)  # the edited entry is consistent in itself
    first.write_bytes(b"".join([*lines[:-1], orjson.dumps(entry) + b"\n"]))
    result = verify(three_files)
    assert result.problem is not None
    assert (result.problem.path, result.problem.line) == (str(second), 1)
    assert "does not link to the previous entry's hash" in result.problem.what
    assert f"{second}:1: seq {entry['seq'] + 1}: prev" in result.describe()


def test_reformatting_an_entry_is_detected(three_files: list[Path]) -> None:
    # Same JSON content, different bytes: the hash (over the content) still matches, the
    # canonical-rendering check does not.
    path = three_files[1]
    lines = lines_of(path)
    lines[0] = lines[0].replace(b'"seq":', b'"seq": ', 1)
    path.write_bytes(b"".join(lines))
    result = verify(three_files)
    assert result.problem is not None and result.problem.line == 1
    assert "canonical rendering" in result.problem.what


def test_files_out_of_order_or_missing_are_detected(three_files: list[Path]) -> None:
    a, b, c = three_files
    assert verify([a, c]).problem is not None
    swapped = verify([b, a, c])
    assert swapped.problem is not None and swapped.problem.path == str(b)
    assert "expected 1" in swapped.problem.what  # a journal begins at genesis
    # A suffix verifies when asked to anchor on its first entry.
    suffix = verify([b, c], partial=True)
    assert suffix.clean and suffix.first_seq == len(lines_of(a)) + 1
    assert "not from genesis" in suffix.describe()


# --------------------------------------------------------------------------- rotation


def test_rotation_by_size_keeps_the_chain_across_files(tmp_path: Path) -> None:
    files = fill_journal(tmp_path, 120, max_bytes=2_000)
    assert len(files) > 8
    assert [p.name for p in files] == sorted(p.name for p in files)
    last_hash, next_seq = GENESIS, 1
    for path in files:
        assert path.stat().st_size <= 2_000
        entries = [orjson.loads(line) for line in lines_of(path)]
        # The first entry of every file continues the previous file's chain.
        assert entries[0]["prev"] == last_hash and entries[0]["seq"] == next_seq
        assert path.name.endswith(f"-{next_seq:012d}.jsonl")
        last_hash, next_seq = entries[-1]["hash"], entries[-1]["seq"] + 1
    result = verify(files)
    assert result.clean and result.entries == 122 and result.files == len(files)
    assert result.last_hash == last_hash


def test_reopening_continues_the_chain_without_touching_old_files(tmp_path: Path) -> None:
    old = fill_journal(tmp_path, 30, max_bytes=1_500)
    before = {p: p.read_bytes() for p in old}
    last = orjson.loads(lines_of(old[-1])[-1])
    with Journal(tmp_path, max_bytes=1_500) as j:
        assert j.last_seq == last["seq"] + 1 and j.durable_seq >= last["seq"]  # + open entry
        j.write("after", n=1)
    assert {p: p.read_bytes() for p in old} == before  # never rewritten, never appended to
    files = journal_files(tmp_path)
    assert files[: len(old)] == old and len(files) == len(old) + 1
    reopened = orjson.loads(lines_of(files[-1])[0])
    assert reopened["event"] == "journal_open" and reopened["resumed_seq"] == last["seq"]
    assert reopened["prev"] == last["hash"] and reopened["seq"] == last["seq"] + 1
    assert verify(tmp_path).clean


def test_rotation_at_utc_midnight(tmp_path: Path) -> None:
    start = calendar.timegm((2024, 2, 29, 23, 59, 59)) * 10**9
    ticks = iter(range(start, start + 10**12, 100_000_000))  # 100 ms per entry

    with Journal(tmp_path, clock=lambda: next(ticks)) as j:
        for i in range(20):
            j.write("tick", n=i)
    files = journal_files(tmp_path)
    assert [p.name[:23] for p in files] == [
        "journal-20240229-235959",
        "journal-20240301-000000",
    ]
    days = [{orjson.loads(x)["ts"][:10] for x in lines_of(p)} for p in files]
    assert days == [{"2024-02-29"}, {"2024-03-01"}]
    assert verify(files).clean


# --------------------------------------------------------------------------- durability


def test_fsyncs_come_in_batches_from_the_writer_thread(tmp_path: Path) -> None:
    fsync = FsyncLog()
    # batch_ms far away: only a full batch (or a flush) makes the writer write.
    j = Journal(tmp_path, batch_entries=100, batch_ms=60_000, fsync=fsync)
    for i in range(1_000):
        j.write("e", n=i)
    j.flush()
    (path,) = journal_files(tmp_path)
    ends = list(itertools.accumulate(len(x) for x in lines_of(path)))
    # 1 open entry + 1000: ten full batches of 100, then the flushed remainder of one.
    assert fsync.files == [ends[n - 1] for n in (*range(100, 1_001, 100), 1_001)]
    assert sum(is_dir for is_dir, _, _ in fsync.calls) == 1  # the new file's directory entry
    # Only the writer thread touches the disk; the caller (this thread) never does.
    assert {name for _, _, name in fsync.calls} == {"arbengine-journal"}
    assert threading.current_thread().name != "arbengine-journal"
    j.close()
    assert len(fsync.files) == 12  # and the close entry


def test_a_partial_batch_is_written_after_batch_ms(tmp_path: Path) -> None:
    fsync = FsyncLog()
    t0 = time.monotonic()
    j = Journal(tmp_path, batch_entries=1_000_000, batch_ms=150, fsync=fsync)
    for i in range(3):
        j.write("e", n=i)
    deadline = time.monotonic() + 20
    while j.durable_seq < 4:
        assert time.monotonic() < deadline, "never written"
        time.sleep(0.01)
    elapsed = time.monotonic() - t0
    assert elapsed >= 0.15  # it waited for more entries first
    (path,) = journal_files(tmp_path)
    assert len(lines_of(path)) == 4 and len(fsync.files) >= 1
    j.close()


def test_flush_returns_once_everything_written_is_fsynced(tmp_path: Path) -> None:
    fsync = FsyncLog(delay=0.2)
    j = Journal(tmp_path, batch_entries=1_000, batch_ms=60_000, fsync=fsync)
    for i in range(5):
        j.write("e", n=i)
    time.sleep(0.05)
    assert j.durable_seq == 0 and j.backlog == 6 and journal_files(tmp_path) == []
    t0 = time.monotonic()
    j.flush()
    assert time.monotonic() - t0 >= 0.2  # it waited for the (slow) fsync
    assert j.durable_seq == j.last_seq == 6 and j.backlog == 0
    (path,) = journal_files(tmp_path)
    assert len(lines_of(path)) == 6 and len(fsync.files) == 1
    j.flush()  # nothing new: no batch, no fsync
    assert len(fsync.files) == 1
    j.close()


def test_flush_timeout(tmp_path: Path) -> None:
    gate = threading.Event()

    def stuck_fsync(fd: int) -> None:
        gate.wait(30)

    j = Journal(tmp_path, batch_ms=0, fsync=stuck_fsync)
    with pytest.raises(TimeoutError):
        j.flush(timeout=0.1)
    gate.set()
    j.flush(timeout=30)
    assert j.durable_seq == j.last_seq
    j.close()


async def test_aflush_waits_without_blocking_the_loop(tmp_path: Path) -> None:
    j = Journal(tmp_path, batch_entries=1_000, batch_ms=60_000, fsync=FsyncLog(delay=0.3))
    try:
        for i in range(10):
            j.arb("a").write("e", n=i)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        t0 = time.monotonic()
        await asyncio.gather(j.aflush(), j.aflush())
        waited = time.monotonic() - t0
        task.cancel()
        assert waited >= 0.3 and j.durable_seq == j.last_seq == 11
        assert ticks >= 5  # the loop kept running while the writer fsynced
        await j.aflush()  # nothing pending: returns at once

        # A cancelled aflush leaves the journal usable.
        j.write("e", n=99)
        waiter = asyncio.create_task(j.aflush())
        await asyncio.sleep(0)
        waiter.cancel()
        await j.aflush()
        assert j.durable_seq == j.last_seq == 12
    finally:
        j.close()


def test_concurrent_writers_keep_one_chain(tmp_path: Path) -> None:
    with Journal(tmp_path, batch_entries=64, batch_ms=1) as j:

        def worker(k: int) -> None:
            log = j.arb(f"t{k}")
            for i in range(300):
                log.write("e", n=i)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    result = verify(tmp_path)
    assert result.clean and result.entries == 1_202
    mine = [e["n"] for e in all_entries(tmp_path) if e.get("arb_id") == "t2"]
    assert mine == list(range(300))


def test_a_failing_disk_is_never_silent(tmp_path: Path) -> None:
    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    j = Journal(tmp_path, batch_ms=0, fsync=broken)
    with pytest.raises(JournalError, match="Input/output error"):
        j.flush(timeout=30)
    with pytest.raises(JournalError, match="writer failed"):
        j.write("e")

    async def later() -> None:
        await j.aflush()

    with pytest.raises(JournalError):
        asyncio.run(later())
    with pytest.raises(JournalError):
        j.close()


def test_one_journal_per_directory(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    with pytest.raises(JournalError, match="in use"):
        Journal(tmp_path)
    j.close()
    j.close()  # idempotent
    with pytest.raises(JournalError, match="closed"):
        j.write("e")
    Journal(tmp_path).close()
    assert verify(tmp_path).clean


# --------------------------------------------------------------------------- crashes


CHILD = """
import sys
from arbengine.journal import Journal

j = Journal(sys.argv[1], max_bytes=6_000, batch_entries=16, batch_ms=2)
i = 0
while True:
    i += 1
    seq = j.arb(f"arb-{i // 2}").write("fill", leg=i % 2, price=100 + i, size_text="0.001")
    if i % 40 == 0:
        j.flush()
        print(seq, flush=True)  # everything up to seq is on disk
"""


def test_kill_9_loses_nothing_that_was_flushed(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    d = tmp_path / "journal"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(d)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    reported: list[int] = []
    try:
        while len(reported) < 8:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            reported.append(int(line))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    reported += [int(x) for x in proc.stdout.read().split()]  # printed before it died
    proc.stdout.close()
    proc.stderr.close()
    flushed = max(reported)

    after_kill = verify(d)
    assert after_kill.ok, after_kill.describe()
    reader = read_entries(d)
    seqs = [e["seq"] for e in reader]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= flushed
    assert reader.result is not None and reader.result.last_seq == len(seqs)
    intact = len(seqs)

    # Make the crash land mid-write (a kill rarely splits a write(2) of a regular file).
    last = journal_files(d)[-1]
    torn = b'{"seq":%d,"ts":"2024-' % (intact + 1)
    if reader.torn is None:
        with last.open("ab") as f:
            f.write(torn)
    else:
        torn = last.read_bytes()[reader.torn.offset :] + torn
        with last.open("ab") as f:
            f.write(torn[reader.torn.length :])
    assert verify(d).torn is not None

    with Journal(d) as j:
        assert j.last_seq == intact + 2  # open entry + torn-tail entry
        j.write("after_restart")
    result = verify(d)
    assert result.clean, result.describe()
    entries = list(read_entries(d))
    assert [e["seq"] for e in entries] == list(range(1, intact + 5))
    opened, cut, after, closed = entries[intact:]
    assert opened["event"] == "journal_open" and opened["resumed_seq"] == intact
    assert cut["event"] == "journal_torn_tail" and cut["bytes"] == len(torn)
    assert (d / cut["side_file"]).read_bytes() == torn
    assert after["event"] == "after_restart" and closed["event"] == "journal_close"


def test_torn_tail_is_reported_apart_from_tampering_and_cut_off_on_open(
    tmp_path: Path,
) -> None:
    (path,) = fill_journal(tmp_path, 4)
    intact = path.read_bytes()
    with path.open("ab") as f:
        f.write(b'{"seq":7,"ts":"2024-01-0')
    result = verify(tmp_path)
    assert result.ok and not result.clean and result.entries == 6
    assert result.torn is not None
    assert (result.torn.line, result.torn.offset, result.torn.length) == (7, len(intact), 24)
    assert "torn tail at" in result.describe() and result.describe().startswith("ok: 6 entries")

    reader = read_entries(tmp_path)
    assert len(list(reader)) == 6 and reader.torn == result.torn

    with Journal(tmp_path) as j:
        j.write("next")
    assert path.read_bytes() == intact  # intact entries untouched, torn bytes cut off
    side = path.with_name(path.name + ".torn")
    assert side.read_bytes() == b'{"seq":7,"ts":"2024-01-0'
    entries = all_entries(tmp_path)
    cut = entries[7]
    assert cut["event"] == "journal_torn_tail"
    assert (cut["file"], cut["line"], cut["offset"], cut["bytes"], cut["side_file"]) == (
        path.name,
        7,
        len(intact),
        24,
        side.name,
    )
    assert verify(tmp_path).clean


def test_power_loss_zeros_count_as_a_torn_tail(tmp_path: Path) -> None:
    (path,) = fill_journal(tmp_path, 2)
    size = path.stat().st_size
    with path.open("ab") as f:
        f.write(b"\x00" * 300 + b"\n" + b"\x00" * 40)
    result = verify(tmp_path)
    assert result.ok and result.torn is not None and result.torn.length == 341
    Journal(tmp_path).close()
    assert path.stat().st_size == size and verify(tmp_path).clean


def test_a_torn_line_anywhere_but_the_end_is_a_problem(tmp_path: Path) -> None:
    files = fill_journal(tmp_path, 30, max_bytes=1_500)
    first = files[0]
    first.write_bytes(first.read_bytes()[:-10])  # cut inside its last line
    result = verify(files)
    assert result.problem is not None and result.torn is None
    assert result.problem.path == str(first) and "not the last" in result.problem.what


def test_a_crash_right_after_rotation(tmp_path: Path) -> None:
    files = fill_journal(tmp_path, 10)
    last = orjson.loads(lines_of(files[-1])[-1])
    # The new file was created (and may hold only the first bytes of its first line).
    (tmp_path / f"journal-20990101-000000-{last['seq'] + 1:012d}.jsonl").write_bytes(b'{"se')
    (tmp_path / f"journal-20990101-000001-{last['seq'] + 2:012d}.jsonl").write_bytes(b"")
    assert verify(tmp_path).torn is None and verify(tmp_path).problem is not None
    with Journal(tmp_path) as j:
        assert j.last_seq == last["seq"] + 2
    entries = all_entries(tmp_path)
    assert entries[-3]["removed_empty"] == [f"journal-20990101-000001-{last['seq'] + 2:012d}.jsonl"]
    assert entries[-2]["event"] == "journal_torn_tail" and entries[-2]["bytes"] == 4
    assert entries[-3]["prev"] == last["hash"]
    assert verify(tmp_path).clean


def test_a_damaged_journal_is_not_appended_to(tmp_path: Path) -> None:
    (path,) = fill_journal(tmp_path, 5)
    lines = lines_of(path)
    lines[2] = lines[2].replace(b'"price":1001', b'"price":1002')
    path.write_bytes(b"".join(lines))
    with pytest.raises(JournalCorrupt) as err:
        Journal(tmp_path)
    assert err.value.problem.line == 3 and "hash mismatch" in err.value.problem.what
    assert path.read_bytes() == b"".join(lines)
    # The failed open released the directory's lock: once repaired, it opens again.
    lines[2] = lines[2].replace(b'"price":1002', b'"price":1001')
    path.write_bytes(b"".join(lines))
    Journal(tmp_path).close()


def test_opening_checks_the_last_file_links_to_the_one_before(tmp_path: Path) -> None:
    files = fill_journal(tmp_path, 20, max_bytes=1_500)
    last = files[-1]
    lines = last.read_bytes().splitlines(keepends=True)
    entry = orjson.loads(lines[0])
    entry["prev"] = "f" * 64  # consistent in itself, but no longer linked
    entry["hash"] = oracle_hash(entry)
    last.write_bytes(b"".join([orjson.dumps(entry) + b"\n", *lines[1:]]))
    with pytest.raises(JournalCorrupt) as err:
        Journal(tmp_path)
    assert (err.value.problem.path, err.value.problem.line) == (str(last), 1)
    assert "does not link" in err.value.problem.what


def test_read_entries_stops_at_a_broken_entry(tmp_path: Path) -> None:
    files = fill_journal(tmp_path, 20, max_bytes=1_200)
    target = files[1]
    lines = lines_of(target)
    lines[1] = lines[1].replace(b'"leg":', b'"leg":1', 1)
    target.write_bytes(b"".join(lines))
    seen: list[int] = []
    with pytest.raises(JournalCorrupt) as err:
        seen.extend(e["seq"] for e in read_entries(tmp_path))
    assert err.value.problem.path == str(target) and err.value.problem.line == 2
    assert seen == list(range(1, len(lines_of(files[0])) + 2))  # all verified ones before it


# --------------------------------------------------------------------------- values


def test_secrets_are_masked_by_key_and_by_value(tmp_path: Path) -> None:
    key, secret = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A", "s3cr3t-Xy"
    fields: dict[str, Any] = {
        "api_key": key,
        "apiKey": key,
        "headers": {
            "X-MBX-APIKEY": key,
            "OK-ACCESS-SIGN": "c2lnbmF0dXJl",
            "OK-ACCESS-PASSPHRASE": "pp",
            "Authorization": "Bearer abc.def.ghi",
            "Content-Type": "application/json",
        },
        "params": [
            {"signature": "sig-abc123-x", "symbol": "BTCUSDT"},
            {"nested": {"jwt": "e.y.J"}},
        ],
        "PRIVATE_KEY": "-----BEGIN EC PRIVATE KEY-----",
        "secretKey": 5,
        "Token": None,
        "url": f"wss://example/ws?listenKey=abc&apikey={key}",
        "note": f"login with {secret} failed",
        "signal": "keep",
        "design": "keep",
        "key": "risk.max_notional",
    }
    untouched = repr(fields)
    with Journal(tmp_path) as j:
        j.register_secret(key)
        j.register_secret(secret)
        j.bind(session=f"sess-{secret}").write(Event.OPERATOR, **fields)
    assert repr(fields) == untouched  # the caller's objects are not modified
    raw = b"".join(p.read_bytes() for p in journal_files(tmp_path))
    for leaked in (key, secret, "c2lnbmF0dXJl", "abc.def.ghi", "sig-abc123-x", "e.y.J", "BEGIN EC"):
        assert leaked.encode() not in raw
    (entry,) = [e for e in all_entries(tmp_path) if e["event"] == "operator"]
    assert entry["api_key"] == entry["apiKey"] == entry["secretKey"] == entry["Token"] == MASK
    assert entry["headers"] == {
        "X-MBX-APIKEY": MASK,
        "OK-ACCESS-SIGN": MASK,
        "OK-ACCESS-PASSPHRASE": MASK,
        "Authorization": MASK,
        "Content-Type": "application/json",
    }
    assert entry["params"] == [{"signature": MASK, "symbol": "BTCUSDT"}, {"nested": {"jwt": MASK}}]
    assert entry["PRIVATE_KEY"] == MASK
    assert entry["url"] == f"wss://example/ws?listenKey=abc&apikey={MASK}"
    assert entry["note"] == f"login with {MASK} failed"
    assert entry["session"] == f"sess-{MASK}"
    assert (entry["signal"], entry["design"], entry["key"]) == ("keep", "keep", "risk.max_notional")
    assert verify(tmp_path).clean


@pytest.mark.parametrize(
    "name,secret",
    [
        ("api_secret", True),
        ("apiSecret", True),
        ("API-Sign", True),
        ("x-bapi-sign", True),
        ("listen_token", True),
        ("password", True),
        ("access_key", True),
        ("client_id", False),
        ("signal_strength", False),
        ("assignment", False),
        ("venue_order_id", False),
        ("keys_loaded", False),
    ],
)
def test_secret_key_names(name: str, secret: bool) -> None:
    assert is_secret_key(name) is secret


def test_floats_are_refused_naming_the_field(tmp_path: Path) -> None:
    with Journal(tmp_path) as j:
        with pytest.raises(TypeError, match="'price' is a float"):
            j.write(Event.ORDER, price=101.5)
        with pytest.raises(TypeError, match=r"'order\.legs\[1\]\.size' is a float"):
            j.write(Event.ORDER, order={"legs": [{"size": 1}, {"size": 0.5}]})
        with pytest.raises(TypeError, match="'blob': cannot write a bytes"):
            j.write(Event.ORDER, blob=b"raw")
        with pytest.raises(ValueError, match="reserved"):
            j.write(Event.ORDER, seq=5)
        with pytest.raises(ValueError, match="not a finite decimal"):
            j.write(Event.ORDER, px=Decimal("NaN"))
        # A refused entry uses up no seq: the chain has no gap.
        assert j.write(Event.ORDER, price=1015) == 2
    assert verify(tmp_path).clean


def test_values_are_exact(tmp_path: Path) -> None:
    class Color(StrEnum):
        RED = "red"

    class Level(IntEnum):
        HIGH = 3

    big = atoms("123456.000000000000000001")  # > 2**64: orjson can't write it as a number
    with Journal(tmp_path) as j:
        j.write(
            "values",
            color=Color.RED,
            level=Level.HIGH,
            side=Side.SELL,
            dec=Decimal("1E-8"),
            neg=Decimal("-2.50"),
            big=big,
            small=2**63,
            flag=True,
            nothing=None,
            nested=(1, [Color.RED]),
        )
    (entry,) = [e for e in all_entries(tmp_path) if e["event"] == "values"]
    assert entry["color"] == "red" and entry["level"] == 3 and entry["side"] == -1
    assert entry["dec"] == "0.00000001" and entry["neg"] == "-2.50"
    assert entry["big"] == "123456000000000000000001" and as_int(entry["big"]) == big
    assert entry["small"] == 2**63 and as_int(entry["small"]) == 2**63
    assert entry["flag"] is True and entry["nothing"] is None and entry["nested"] == [1, ["red"]]
    with pytest.raises(TypeError):
        as_int(1.0)


def test_orders_and_fills_as_journal_fields(tmp_path: Path) -> None:
    inst = Instrument("binance", "BTCUSDT", "BTC", "USDT", "0.01", "0.00001")
    order = Order("c-1", "arb-1", inst, Side.BUY, 6_500_012, 150, tif=TimeInForce.FOK)
    fill = Fill("c-1", 6_500_010, 100, fee=atoms("0.00000065"), fee_asset="BTC", ts_ns=7)
    order.fills.append(fill)
    order.filled, order.cost, order.fee = 100, 650_001_000, fill.fee
    order.status = OrderStatus.FILLED
    with Journal(tmp_path) as j:
        leg = j.arb(order.arb_id)
        leg.write(Event.ORDER, **order_fields(order))
        leg.write(Event.FILL, **fill_fields(fill, inst))
    order_e, fill_e = [e for e in all_entries(tmp_path) if e["event"] in ("order", "fill")]
    assert order_e["arb_id"] == fill_e["arb_id"] == "arb-1"
    assert (order_e["price"], order_e["price_text"]) == (6_500_012, "65000.12")
    assert (order_e["size"], order_e["size_text"]) == (150, "0.00150")
    assert (order_e["filled"], order_e["filled_text"]) == (100, "0.00100")
    assert order_e["cost_text"] == "65.0001000"  # 65000.10 x 0.00100
    assert order_e["side"] == 1 and order_e["tif"] == "FOK" and order_e["purpose"] == "entry"
    assert order_e["status"] == OrderStatus.FILLED and order_e["fills"] == 1
    assert order_e["fee"] == 650_000_000_000 and order_e["fee_text"] == "0.00000065"
    assert (fill_e["price_text"], fill_e["size_text"], fill_e["fee_text"]) == (
        "65000.10",
        "0.00100",
        "0.00000065",
    )
    assert fill_e["late"] is False and fill_e["ts_ns"] == 7
    assert order_e["purpose"] == Purpose.ENTRY


def test_every_line_is_plain_json_without_floats(tmp_path: Path) -> None:
    files = fill_journal(tmp_path, 40, max_bytes=3_000)

    def floats(value: Any) -> int:
        if isinstance(value, dict):
            return sum(floats(v) for v in value.values())
        if isinstance(value, list):
            return sum(floats(v) for v in value)
        return isinstance(value, float)

    assert sum(floats(orjson.loads(x)) for p in files for x in lines_of(p)) == 0
