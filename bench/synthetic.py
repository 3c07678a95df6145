"""Seeded synthetic L2 stream in the packed format ``replay_packed`` takes.

The stream is produced by a small exchange model that holds the true book and only emits level
changes an exchange could publish: bids strictly below the best ask, asks strictly above the
best bid, deletes only of levels that exist, depth per side bounded. Every book under test
therefore sees a valid, never-crossed feed, and a crossed book after any message is a bug in
the book, not in the data.

Output, as ``array('q')`` buffers:

* ``levels``: (side, price, size) int64 triplets back to back; side 0 = bid, 1 = ask, price in
  ticks (> 0), size in lots (0 = delete).
* ``ends``: per message, the cumulative end index (in triplets) of its levels.
* ``tops``: the model's true top of book after each message (bid price, bid size, ask price,
  ask size), so any book can be checked message by message over any prefix.

Message 0 is a snapshot (``snapshot_depth`` levels per side). Every later message carries
``min_levels``..``max_levels`` level updates, drawn uniformly (1-20 by default: no distribution
chosen to flatter anyone). Each level update is, in order of precedence:

* a trim: a side deeper than ``max_depth`` loses its deepest level (an explicit delete, as a
  venue would send when a level falls out of its published depth);
* with probability ``delete_p``: a delete of an existing level, picked by rank from the top
  (rank 0 removes the best level, which widens the spread and moves the mid);
* with probability ``new_best_p``: a new best level inside the spread, at a price uniform
  over the ticks strictly inside it (only possible while the spread is at least two ticks;
  otherwise it falls through to an update);
* otherwise an update at a price offset from the best, which changes the size of an existing
  level or, when no level sits at that price, inserts one behind the best.

Offsets (in ticks for updates, in ranks for deletes) come from a mixture concentrated near the
top: mostly exponential with a mean of a few ticks, some with a mean of tens of ticks, and a
few uniform over the deep book.

The model is pure Python and takes tens of seconds for a million messages, so generated
streams are cached under ``bench/.cache/`` keyed by the parameters and ``GENERATOR_VERSION``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import random
import sys
import time
from array import array
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# Bump whenever the model changes in a way that changes its output: it is part of the cache key.
GENERATOR_VERSION = 1

CACHE_DIR = Path(__file__).resolve().parent / ".cache"

BID = 0
ASK = 1

# FNV-1a over int64 words, exactly as arbengine's replay_packed folds the top of book, so the
# model's own top-of-book trajectory checks any book over the whole stream with one compare.
FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
_MASK64 = (1 << 64) - 1

# Rank buckets (from the best, 0 = best) for the "concentrated near the top" statistic.
RANK_BUCKETS: tuple[tuple[int, int], ...] = ((0, 0), (1, 4), (5, 19), (20, 99), (100, 1 << 62))


def fold(h: int, word: int) -> int:
    """One FNV-1a step over an int64 word (two's complement), as replay_packed does it."""
    return ((h ^ (word & _MASK64)) * FNV_PRIME) & _MASK64


@dataclass(frozen=True)
class StreamParams:
    """Everything that determines the stream; hashed into the cache key."""

    seed: int = 20261121
    messages: int = 1_000_000
    min_levels: int = 1
    max_levels: int = 20
    # 50,000.00 at a 0.01 tick: a BTC-like instrument.
    start_price: int = 5_000_000
    snapshot_depth: int = 500
    max_depth: int = 1000
    # Deletes are skipped (turned into updates) on a side this thin, so neither side empties.
    min_depth: int = 50
    delete_p: float = 0.10
    new_best_p: float = 0.02
    # Offset mixture: near (exponential, mean in ticks/ranks), mid, remainder uniform deep.
    near_w: float = 0.80
    near_mean: float = 3.0
    mid_w: float = 0.15
    mid_mean: float = 30.0
    deep_span: int = 1000
    size_mean: float = 400.0
    # Messages replayed through the reference book by the self-check.
    check_prefix: int = 20_000

    def cache_key(self) -> str:
        blob = json.dumps(
            {"version": GENERATOR_VERSION, **dataclasses.asdict(self)}, sort_keys=True
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class StreamStats:
    """What the stream turned out to be (measured, not the parameters)."""

    messages: int = 0
    level_updates: int = 0
    snapshot_levels: int = 0
    deletes: int = 0
    trims: int = 0
    best_removed: int = 0
    new_best: int = 0
    inserts: int = 0
    size_changes: int = 0
    # Level updates per rank bucket (rank of the level touched, counted before the change).
    rank_hist: list[int] = field(default_factory=lambda: [0] * len(RANK_BUCKETS))
    min_levels_per_msg: int = 0
    max_levels_per_msg: int = 0
    min_depth_seen: int = 0
    max_depth_seen: int = 0
    spread_ticks_sum: int = 0
    min_mid2: int = 0  # 2 * mid, to stay in integers
    max_mid2: int = 0
    final_top: tuple[int, int, int, int] = (0, 0, 0, 0)
    top_hash: int = FNV_OFFSET
    gen_seconds: float = 0.0

    @property
    def incremental_updates(self) -> int:
        return self.level_updates - self.snapshot_levels

    def summary(self) -> list[str]:
        """Human-readable lines; percentages are of the incremental (non-snapshot) updates."""
        inc = max(self.incremental_updates, 1)
        inc_msgs = max(self.messages - 1, 1)
        ranks = ", ".join(
            f"{_bucket_name(lo, hi)}: {100.0 * n / inc:.1f}%"
            for (lo, hi), n in zip(RANK_BUCKETS, self.rank_hist, strict=True)
        )
        return [
            f"messages {self.messages:,} (1 snapshot of {self.snapshot_levels:,} levels + "
            f"{self.messages - 1:,} incremental), level updates {self.level_updates:,}",
            f"levels per incremental message: uniform {self.min_levels_per_msg}"
            f"-{self.max_levels_per_msg}, mean {self.incremental_updates / inc_msgs:.2f}",
            f"deletes {100.0 * self.deletes / inc:.1f}% (of which {self.trims:,} depth trims, "
            f"best-level removals "
            f"{100.0 * self.best_removed / inc:.2f}%), new best levels "
            f"{100.0 * self.new_best / inc:.2f}%, inserts behind the best "
            f"{100.0 * self.inserts / inc:.1f}%, size changes "
            f"{100.0 * self.size_changes / inc:.1f}%",
            f"rank touched: {ranks}",
            f"depth per side {self.min_depth_seen}-{self.max_depth_seen}, mean spread "
            f"{self.spread_ticks_sum / max(self.messages, 1):.2f} ticks, mid wandered "
            f"{self.min_mid2 / 2:,.1f}-{self.max_mid2 / 2:,.1f} ticks",
        ]


def _bucket_name(lo: int, hi: int) -> str:
    if lo == hi:
        return f"rank {lo}"
    if hi >= 1 << 61:
        return f"{lo}+"
    return f"{lo}-{hi}"


Top = tuple[int, int, int, int]
"""Top of book: best bid price, bid size, best ask price, ask size (ticks and lots)."""


@dataclass
class Stream:
    params: StreamParams
    levels: array[int]
    ends: array[int]
    # The model's true top of book after every message, 4 words each: any prefix of the
    # stream can be checked against it, not only the whole run.
    tops: array[int]
    stats: StreamStats

    @property
    def messages(self) -> int:
        return len(self.ends)

    @property
    def level_updates(self) -> int:
        return len(self.levels) // 3

    def top_at(self, messages: int) -> Top:
        """The true top of book after the first ``messages`` messages."""
        i = 4 * (messages - 1)
        t = self.tops
        return (t[i], t[i + 1], t[i + 2], t[i + 3])

    def top_hash(self, messages: int | None = None) -> int:
        """replay_packed's hash over the first ``messages`` messages, from the model."""
        n = len(self.ends) if messages is None else min(messages, len(self.ends))
        if n == len(self.ends):
            return self.stats.top_hash
        h = FNV_OFFSET
        for w in self.tops[: 4 * n]:
            h = fold(h, w)
        return h

    def prefix(self, messages: int) -> tuple[array[int], array[int]]:
        """The first ``messages`` messages as packed buffers (copies; cheap next to a replay)."""
        messages = min(messages, len(self.ends))
        end = self.ends[messages - 1] if messages else 0
        return self.levels[: 3 * end], self.ends[:messages]

    def split(
        self, messages: int | None = None
    ) -> list[tuple[list[tuple[int, int]], list[tuple[int, int]]]]:
        """Messages as Python (bids, asks) lists of (price, size), for Python-API books."""
        n = len(self.ends) if messages is None else min(messages, len(self.ends))
        lv = self.levels
        out: list[tuple[list[tuple[int, int]], list[tuple[int, int]]]] = []
        start = 0
        for m in range(n):
            end = self.ends[m]
            bids: list[tuple[int, int]] = []
            asks: list[tuple[int, int]] = []
            for i in range(3 * start, 3 * end, 3):
                (asks if lv[i] else bids).append((lv[i + 1], lv[i + 2]))
            out.append((bids, asks))
            start = end
        return out


class _Exchange:
    """The venue's true book. Per side an ascending list of keys (best at the end, so the
    busy top is the cheap end of the list) and a key -> size dict; key = price for bids and
    -price for asks, so "higher key = better level" on both sides and one code path serves
    both."""

    def __init__(self, p: StreamParams) -> None:
        self.p = p
        self.rng = random.Random(p.seed)
        self.keys: tuple[list[int], list[int]] = ([], [])
        self.sizes: tuple[dict[int, int], dict[int, int]] = ({}, {})
        self.levels: array[int] = array("q")
        self.ends: array[int] = array("q")
        self.tops: array[int] = array("q")
        self.stats = StreamStats()
        self.stats.min_depth_seen = 1 << 62

    # --- draws: only Random.random(), whose sequence is stable across Python versions ---

    def _exp(self, mean: float) -> int:
        # floor of an exponential = geometric with P(0) = 1 - exp(-1/mean).
        return int(-math.log(1.0 - self.rng.random()) * mean)

    def _offset(self) -> int:
        u = self.rng.random()
        p = self.p
        if u < p.near_w:
            return self._exp(p.near_mean)
        if u < p.near_w + p.mid_w:
            return self._exp(p.mid_mean)
        return int(self.rng.random() * p.deep_span)

    def _size(self) -> int:
        return 1 + self._exp(self.p.size_mean)

    # --- book changes: each one is emitted as one level update ---

    def _emit(self, side: int, key: int, size: int) -> None:
        price = key if side == BID else -key
        assert price > 0, "price left the positive range"
        self.levels.append(side)
        self.levels.append(price)
        self.levels.append(size)

    def _count_rank(self, rank: int) -> None:
        for b, (lo, hi) in enumerate(RANK_BUCKETS):
            if lo <= rank <= hi:
                self.stats.rank_hist[b] += 1
                return

    def _delete_at(self, side: int, idx: int) -> None:
        keys = self.keys[side]
        key = keys.pop(idx)
        del self.sizes[side][key]
        self._emit(side, key, 0)
        self.stats.deletes += 1

    def _set(self, side: int, key: int, size: int) -> None:
        keys = self.keys[side]
        sizes = self.sizes[side]
        if key not in sizes:
            keys.insert(bisect_left(keys, key), key)
        sizes[key] = size
        self._emit(side, key, size)

    def _best_key(self, side: int) -> int:
        return self.keys[side][-1]

    def _spread(self) -> int:
        # best ask - best bid, in ticks (ask keys are -price).
        return -self._best_key(ASK) - self._best_key(BID)

    # --- messages ---

    def snapshot(self) -> None:
        p = self.p
        bid = p.start_price - 1
        ask = p.start_price + 1
        for side, best in ((BID, bid), (ASK, -ask)):
            key = best
            for _ in range(p.snapshot_depth):
                self._set(side, key, self._size())
                # Mostly contiguous ticks near a real top of book, with some gaps.
                key -= 1 + self._exp(0.5)
        self.stats.snapshot_levels = 2 * p.snapshot_depth
        self._end_message()

    def incremental(self, debug: bool) -> None:
        p = self.p
        rnd = self.rng.random
        st = self.stats
        n = p.min_levels + int(rnd() * (p.max_levels - p.min_levels + 1))
        for _ in range(n):
            if debug:
                # The state after the previous level update: never crossed, even mid-message.
                assert self._spread() > 0, f"model crossed inside message {len(self.ends)}"
            if len(self.keys[BID]) > p.max_depth or len(self.keys[ASK]) > p.max_depth:
                deep = BID if len(self.keys[BID]) > p.max_depth else ASK
                self._count_rank(len(self.keys[deep]) - 1)
                self._delete_at(deep, 0)
                st.trims += 1
                continue
            side = BID if rnd() < 0.5 else ASK
            keys = self.keys[side]
            u = rnd()
            if u < p.delete_p and len(keys) > p.min_depth:
                rank = min(self._offset(), len(keys) - 1)
                self._count_rank(rank)
                if rank == 0:
                    st.best_removed += 1
                self._delete_at(side, len(keys) - 1 - rank)
                continue
            spread = self._spread()
            if p.delete_p <= u < p.delete_p + p.new_best_p and spread >= 2:
                improve = 1 + int(rnd() * (spread - 1))
                self._count_rank(0)
                st.new_best += 1
                self._set(side, self._best_key(side) + improve, self._size())
                continue
            key = self._best_key(side) - self._offset()
            idx = bisect_left(keys, key)
            self._count_rank(len(keys) - 1 - idx if idx < len(keys) else 0)
            if key in self.sizes[side]:
                st.size_changes += 1
            else:
                st.inserts += 1
            self._set(side, key, self._size())
        if debug:
            assert self._spread() > 0, f"model crossed after message {len(self.ends)}"
        st.min_levels_per_msg = min(st.min_levels_per_msg or n, n)
        st.max_levels_per_msg = max(st.max_levels_per_msg, n)
        self._end_message()

    def _end_message(self) -> None:
        st = self.stats
        self.ends.append(len(self.levels) // 3)
        bk, ak = self._best_key(BID), self._best_key(ASK)
        top = (bk, self.sizes[BID][bk], -ak, self.sizes[ASK][ak])
        h = st.top_hash
        for w in top:
            h = fold(h, w)
        st.top_hash = h
        self.tops.extend(top)
        st.final_top = top
        st.spread_ticks_sum += -ak - bk
        mid2 = bk - ak
        if len(self.ends) == 1:
            st.min_mid2 = st.max_mid2 = mid2
        st.min_mid2 = min(st.min_mid2, mid2)
        st.max_mid2 = max(st.max_mid2, mid2)
        for s in (BID, ASK):
            d = len(self.keys[s])
            st.min_depth_seen = min(st.min_depth_seen, d)
            st.max_depth_seen = max(st.max_depth_seen, d)


def generate(params: StreamParams, debug: bool = False) -> Stream:
    """Run the exchange model (no cache). ``debug`` asserts uncrossed after every update."""
    t0 = time.perf_counter()
    ex = _Exchange(params)
    if params.messages > 0:
        ex.snapshot()
    for _ in range(params.messages - 1):
        ex.incremental(debug)
    st = ex.stats
    st.messages = len(ex.ends)
    st.level_updates = len(ex.levels) // 3
    st.gen_seconds = time.perf_counter() - t0
    return Stream(params, ex.levels, ex.ends, ex.tops, st)


_BUFFERS = ("levels", "ends", "tops")


def _base(params: StreamParams) -> Path:
    return CACHE_DIR / f"l2-v{GENERATOR_VERSION}-{params.cache_key()}"


def _write_atomic(path: Path, data: bytes) -> None:
    # Write then rename, so a concurrent or interrupted run never sees a half-written file.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _stats_from_json(d: dict[str, object]) -> StreamStats:
    st = StreamStats(**d)  # type: ignore[arg-type]
    # JSON turned the tuple into a list.
    st.final_top = tuple(st.final_top)  # type: ignore[assignment]
    return st


def load_or_generate(
    params: StreamParams, *, use_cache: bool = True, debug: bool = False, log: bool = True
) -> tuple[Stream, bool]:
    """The stream for ``params`` from the cache, generating (and caching) it when missing.
    Returns ``(stream, from_cache)``. A freshly generated stream is self-checked first."""
    base = _base(params)
    meta_path = base.with_suffix(".json")
    paths = {name: base.with_suffix(f".{name}") for name in _BUFFERS}
    if use_cache and meta_path.exists() and all(p.exists() for p in paths.values()):
        meta = json.loads(meta_path.read_text())
        bufs: dict[str, array[int]] = {}
        for name, path in paths.items():
            bufs[name] = array("q")
            bufs[name].frombytes(path.read_bytes())
        stats = _stats_from_json(meta["stats"])
        n = stats.messages
        if (
            len(bufs["ends"]) == n
            and len(bufs["tops"]) == 4 * n
            and len(bufs["levels"]) == 3 * stats.level_updates
        ):
            return Stream(params, bufs["levels"], bufs["ends"], bufs["tops"], stats), True
    say = _logger(log)
    say(
        f"generating synthetic stream ({params.messages:,} messages, seed {params.seed}); "
        f"cached afterwards in {CACHE_DIR}"
    )
    stream = generate(params, debug=debug)
    say(f"generated in {stream.stats.gen_seconds:.1f} s; {self_check(stream)}")
    if use_cache:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        # Data first, metadata last: the metadata's presence marks a complete entry.
        for name, path in paths.items():
            _write_atomic(path, getattr(stream, name).tobytes())
        meta = {
            "generator_version": GENERATOR_VERSION,
            "params": dataclasses.asdict(params),
            "stats": dataclasses.asdict(stream.stats),
        }
        _write_atomic(meta_path, json.dumps(meta, indent=1).encode())
    return stream, False


def _logger(enabled: bool) -> Callable[[str], None]:
    def say(msg: str) -> None:
        if enabled:
            print(msg, file=sys.stderr, flush=True)

    return say


def check_uncrossed(stream: Stream) -> None:
    """Assert the model's top of book is uncrossed after every message (cheap: one pass over
    the recorded tops, so it runs on every generation, debug flag or not)."""
    t = stream.tops
    for m in range(stream.messages):
        i = 4 * m
        assert 0 < t[i] < t[i + 2], f"model book crossed or empty after message {m}: {t[i : i + 4]}"


def self_check(stream: Stream) -> str:
    """Uncrossed after every message, and the reference book agrees on a prefix when it is
    importable (tests/reference/book.py). Raises AssertionError on a failure."""
    check_uncrossed(stream)
    try:
        verdict = verify_with_reference(stream)
    except ImportError as exc:
        verdict = f"reference book check skipped ({exc})"
    return f"uncrossed after all {stream.messages:,} messages; {verdict}"


def verify_with_reference(stream: Stream, prefix: int | None = None) -> str:
    """Replay the first ``prefix`` messages (default ``params.check_prefix``) through the
    sortedcontainers reference book and check it matches the model's top of book after every
    message (one hash compare) and is never crossed. Raises AssertionError on a mismatch,
    ImportError when the reference is not there; returns a one-line verdict."""
    from bench._paths import ensure_repo_on_path

    ensure_repo_on_path()
    from tests.reference.book import ReferenceBook, replay_packed_reference

    n = min(stream.params.check_prefix if prefix is None else prefix, stream.messages)
    levels, ends = stream.prefix(n)
    got, crossed = replay_packed_reference(ReferenceBook(), levels, ends)
    want = stream.top_hash(n)
    assert crossed == 0, f"reference book crossed on {crossed} of {n} messages"
    assert got == want, f"reference top-of-book hash {got:#x} != model {want:#x} ({n} messages)"
    return f"reference book matches the model's top of book on the first {n:,} messages"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.synthetic", description=__doc__)
    ap.add_argument("--messages", type=int, default=StreamParams.messages)
    ap.add_argument("--seed", type=int, default=StreamParams.seed)
    ap.add_argument("--no-cache", action="store_true", help="regenerate, do not read or write")
    ap.add_argument("--debug", action="store_true", help="assert uncrossed after every update")
    ap.add_argument(
        "--verify", action="store_true", help="self-check a cached stream (fresh ones always are)"
    )
    args = ap.parse_args(argv)
    params = StreamParams(seed=args.seed, messages=args.messages)
    stream, cached = load_or_generate(params, use_cache=not args.no_cache, debug=args.debug)
    src = "cache" if cached else "generated"
    print(f"stream {params.cache_key()} ({src}; generation took {stream.stats.gen_seconds:.1f} s)")
    for line in stream.stats.summary():
        print("  " + line)
    if args.verify and cached:
        print("  " + self_check(stream))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
