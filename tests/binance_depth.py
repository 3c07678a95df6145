"""Sync an L2 book from recorded Binance diff-depth data, by Binance's documented procedure.

Test helper for tests/test_real_data.py. It reads the trimmed hftbacktest recordings in
tests/data/binance/ (see ORIGIN.md there), converts every price and size to integer ticks and
lots with the compiled ``Grid`` (which raises on any text off the instrument's grid), and
replays them into any book with the shared Python API (``tests.reference.book.L2Book``): the
compiled ``Book`` or the pure-Python ``ReferenceBook``.

Sync rules (venues.md 1.2 and 1.3):

* spot: drop events with ``u <= lastUpdateId``; the first applied event must satisfy
  ``U <= lastUpdateId + 1 <= u``; after that every event must have ``U == prev_u + 1``.
* USDⓈ-M futures: drop events with ``u < lastUpdateId``; the first applied event must satisfy
  ``U <= lastUpdateId <= u``; after that every event must have ``pu == prev_u``.

Events received before the snapshot are buffered and replayed once it arrives, as the doc
says. A continuity violation is a gap: a live engine would throw the book away and fetch a new
snapshot. A recording has no second snapshot, so after a gap the sync stops touching the book
(its content would be wrong) but keeps following the stream's own chain of ids, so that each
further break is reported once and every event is still accounted for.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import orjson

from arbengine._core.fixed import Grid
from tests.reference.book import L2Book, Level

DATA_DIR = Path(__file__).resolve().parent / "data" / "binance"

Market = Literal["spot", "usdm"]


@dataclass(frozen=True)
class Instrument:
    """One recorded instrument: where its fixture is and the grids its texts must be on."""

    market: Market
    path: Path
    tick: Grid  # price grid: the venue's tick size
    lot: Grid  # the venue's order quantity step (LOT_SIZE stepSize)
    book_lot: Grid  # grid of the sizes the book shows: the lot, or finer (see SPOT)
    stream: str


# Binance exchangeInfo for BTCUSDT in 2024: spot PRICE_FILTER tickSize 0.01, LOT_SIZE stepSize
# 0.00001; USDⓈ-M perpetual tickSize 0.10, stepSize 0.001.
#
# Spot book sizes are NOT all on the 0.00001 lot: three depth levels in this recording carry
# six-decimal sizes (asks 200000.00 x 25.426189, 80000.00 x 244.566304, 74000.00 x 93.756587),
# most likely old GTC orders resting since the pair had a finer step. So the spot book is
# parsed on 0.000001, and test_real_data pins those three levels down.
SPOT = Instrument(
    market="spot",
    path=DATA_DIR / "spot_btcusdt_20240808_depth.gz",
    tick=Grid("0.01", name="binance spot BTCUSDT price"),
    lot=Grid("0.00001", name="binance spot BTCUSDT size"),
    book_lot=Grid("0.000001", name="binance spot BTCUSDT book size"),
    stream="btcusdt@depth@100ms",
)
USDM = Instrument(
    market="usdm",
    path=DATA_DIR / "usdm_btcusdt_20240808_depth.gz",
    tick=Grid("0.10", name="binance usdm BTCUSDT price"),
    lot=Grid("0.001", name="binance usdm BTCUSDT size"),
    book_lot=Grid("0.001", name="binance usdm BTCUSDT book size"),
    stream="btcusdt@depth@0ms",
)
INSTRUMENTS: dict[Market, Instrument] = {"spot": SPOT, "usdm": USDM}


@dataclass(frozen=True, slots=True)
class DepthEvent:
    """One ``depthUpdate`` with prices and sizes already on the grid (size 0 deletes)."""

    recv_ns: int  # recorder's local receive time
    exch_ns: int  # event time E, in ns
    first_id: int  # U
    last_id: int  # u
    prev_id: int | None  # pu (futures only): u of the previous event on the venue's side
    bids: list[Level]
    asks: list[Level]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The REST depth snapshot (``GET /api/v3/depth`` or ``/fapi/v1/depth``)."""

    recv_ns: int
    exch_ns: int  # E on futures; spot snapshots carry no time, so 0
    last_update_id: int
    bids: list[Level]
    asks: list[Level]


@dataclass(frozen=True)
class Recording:
    """A parsed fixture: the depth events in receive order and where the snapshot fell."""

    instrument: Instrument
    snapshot: Snapshot
    events: tuple[DepthEvent, ...]
    # How many depth events were received before the snapshot line (they get buffered).
    events_before_snapshot: int

    def without_event(self, index: int) -> Recording:
        """A copy with depth event ``index`` removed, to simulate a lost message."""
        events = self.events[:index] + self.events[index + 1 :]
        before = self.events_before_snapshot - (index < self.events_before_snapshot)
        return Recording(self.instrument, self.snapshot, events, before)


@dataclass(frozen=True, slots=True)
class Gap:
    """A continuity violation at depth event ``index`` (0-based, in the order fed)."""

    index: int
    recv_ns: int
    first_id: int  # the offending event's U
    last_id: int  # and its u
    rule: str  # which check failed, e.g. "U == prev_u + 1"
    expected: int
    got: int


@dataclass(frozen=True)
class SyncResult:
    market: Market
    total_events: int
    buffered: int  # events received before the snapshot
    applied: int
    dropped: int  # older than the book: before the snapshot's id, or stale after sync
    skipped: int  # not applied because an earlier gap had invalidated the book
    gaps: tuple[Gap, ...]
    crossed_count: int  # applied events after which the book was crossed (bid >= ask)
    first_crossed: int | None  # index of the first such event
    snapshot_update_id: int
    snapshot_bid_levels: int
    snapshot_ask_levels: int
    first_applied: DepthEvent | None
    last_update_id: int | None  # u of the last applied event
    best_bid: str | None  # decimal text on the tick grid
    best_ask: str | None
    # Best bid and ask (price, size) after every applied event, for comparing implementations.
    top_trace: tuple[tuple[Level | None, Level | None], ...] = field(repr=False)


def _levels(raw: Sequence[Sequence[str]], inst: Instrument) -> list[Level]:
    # Grid.parse is exact and raises FixedPointError on text off the grid, so loading a
    # fixture is itself the check that the recording matches the instrument's tick and lot.
    return [(inst.tick.parse(p), inst.book_lot.parse(q)) for p, q in raw]


def _parse_line(line: bytes, inst: Instrument) -> DepthEvent | Snapshot:
    ts, _, raw = line.rstrip(b"\n").partition(b" ")
    recv_ns = int(ts)
    msg: dict[str, Any] = orjson.loads(raw)
    if "lastUpdateId" in msg:
        return Snapshot(
            recv_ns=recv_ns,
            exch_ns=int(msg.get("E", 0)) * 1_000_000,
            last_update_id=int(msg["lastUpdateId"]),
            bids=_levels(msg["bids"], inst),
            asks=_levels(msg["asks"], inst),
        )
    # The fixtures hold nothing else, so anything unexpected means a bad regeneration.
    if msg.get("stream") != inst.stream:
        raise ValueError(f"{inst.path.name}: unexpected line {line[:120]!r}")
    data: dict[str, Any] = msg["data"]
    if data["e"] != "depthUpdate" or data["s"] != "BTCUSDT":
        raise ValueError(f"{inst.path.name}: unexpected event {line[:120]!r}")
    pu = data.get("pu")
    return DepthEvent(
        recv_ns=recv_ns,
        exch_ns=int(data["E"]) * 1_000_000,
        first_id=int(data["U"]),
        last_id=int(data["u"]),
        prev_id=None if pu is None else int(pu),
        bids=_levels(data["b"], inst),
        asks=_levels(data["a"], inst),
    )


@cache
def load(market: Market) -> Recording:
    """Parse one fixture (cached: the events are immutable apart from their level lists,
    which the sync only reads)."""
    inst = INSTRUMENTS[market]
    snapshot: Snapshot | None = None
    events: list[DepthEvent] = []
    before = 0
    with gzip.open(inst.path, "rb") as f:
        for line in f:
            item = _parse_line(line, inst)
            if isinstance(item, Snapshot):
                if snapshot is not None:
                    raise ValueError(f"{inst.path.name}: more than one snapshot")
                snapshot = item
                before = len(events)
            else:
                events.append(item)
    if snapshot is None:
        raise ValueError(f"{inst.path.name}: no REST snapshot line")
    return Recording(inst, snapshot, tuple(events), before)


class DepthSync:
    """Incremental Binance local-book maintenance, fed messages in receive order."""

    def __init__(self, book: L2Book, instrument: Instrument) -> None:
        self.book = book
        self.inst = instrument
        self.futures = instrument.market == "usdm"
        self.snapshot: Snapshot | None = None
        self.buffer: list[tuple[int, DepthEvent]] = []
        self.index = 0  # index of the next depth event fed
        self.buffered = 0
        self.applied = 0
        self.dropped = 0
        self.skipped = 0
        self.gaps: list[Gap] = []
        self.crossed_count = 0
        self.first_crossed: int | None = None
        self.first_applied: DepthEvent | None = None
        self.top_trace: list[tuple[Level | None, Level | None]] = []
        # u of the last event in the chain we follow; None until the snapshot is bridged.
        self.prev_u: int | None = None
        self.in_sync = False

    def on_event(self, ev: DepthEvent) -> None:
        index = self.index
        self.index += 1
        if self.snapshot is None:
            # Step 2 of the procedure: buffer until the snapshot arrives.
            self.buffered += 1
            self.buffer.append((index, ev))
            return
        self._process(index, ev)

    def on_snapshot(self, snap: Snapshot) -> None:
        if self.snapshot is not None:
            raise ValueError("second snapshot: this helper syncs once")
        self.snapshot = snap
        crossed = self.book.load_snapshot(
            snap.bids,
            snap.asks,
            seq=snap.last_update_id,
            exch_ts_ns=snap.exch_ns,
            recv_ts_ns=snap.recv_ns,
        )
        if crossed:
            raise ValueError(f"{self.inst.market}: the REST snapshot itself is crossed")
        buffered, self.buffer = self.buffer, []
        for index, ev in buffered:
            self._process(index, ev)

    def _gap(self, index: int, ev: DepthEvent, rule: str, expected: int, got: int) -> None:
        self.gaps.append(Gap(index, ev.recv_ns, ev.first_id, ev.last_id, rule, expected, got))
        self.in_sync = False

    def _process(self, index: int, ev: DepthEvent) -> None:
        assert self.snapshot is not None
        last_id = self.snapshot.last_update_id
        if self.prev_u is None:
            # Not yet bridged to the snapshot: drop what the snapshot already contains...
            old = ev.last_id < last_id if self.futures else ev.last_id <= last_id
            if old:
                self.dropped += 1
                return
            # ...and the first event kept must straddle the snapshot's id.
            target = last_id if self.futures else last_id + 1
            self.prev_u = ev.last_id
            if not ev.first_id <= target <= ev.last_id:
                rule = "U <= lastUpdateId <= u" if self.futures else "U <= lastUpdateId+1 <= u"
                self._gap(index, ev, rule, target, ev.first_id)
                self.skipped += 1
                return
            self.in_sync = True
            self.first_applied = ev
            self._apply(index, ev)
            return
        if ev.last_id <= self.prev_u:
            # Already covered (a duplicate or a replay): the doc says ignore it.
            self.dropped += 1
            return
        if self.futures:
            # pu names the previous event's u directly, so ids the venue skipped inside its
            # own stream (futures ids are not contiguous) do not look like a gap.
            assert ev.prev_id is not None, "USDⓈ-M depth events carry pu"
            rule, expected, got = "pu == prev_u", self.prev_u, ev.prev_id
        else:
            rule, expected, got = "U == prev_u + 1", self.prev_u + 1, ev.first_id
        # Follow the stream's own chain even across a gap, so each break is reported once.
        self.prev_u = ev.last_id
        if got != expected:
            self._gap(index, ev, rule, expected, got)
        if self.in_sync:
            self._apply(index, ev)
        else:
            self.skipped += 1

    def _apply(self, index: int, ev: DepthEvent) -> None:
        # One call per event, both sides together: the crossed check runs only after the
        # whole message, as a real feed handler must do (mid-message states can cross).
        crossed = self.book.apply(
            ev.bids, ev.asks, seq=ev.last_id, exch_ts_ns=ev.exch_ns, recv_ts_ns=ev.recv_ns
        )
        self.applied += 1
        if crossed:
            self.crossed_count += 1
            if self.first_crossed is None:
                self.first_crossed = index
        self.top_trace.append((self.book.best_bid(), self.book.best_ask()))

    def result(self) -> SyncResult:
        if self.snapshot is None:
            raise ValueError("no snapshot was fed")
        bid, ask = self.book.best_bid(), self.book.best_ask()
        return SyncResult(
            market=self.inst.market,
            total_events=self.index,
            buffered=self.buffered,
            applied=self.applied,
            dropped=self.dropped,
            skipped=self.skipped,
            gaps=tuple(self.gaps),
            crossed_count=self.crossed_count,
            first_crossed=self.first_crossed,
            snapshot_update_id=self.snapshot.last_update_id,
            snapshot_bid_levels=len(self.snapshot.bids),
            snapshot_ask_levels=len(self.snapshot.asks),
            first_applied=self.first_applied,
            last_update_id=self.prev_u if self.in_sync else None,
            best_bid=None if bid is None else self.inst.tick.format(bid[0]),
            best_ask=None if ask is None else self.inst.tick.format(ask[0]),
            top_trace=tuple(self.top_trace),
        )


def feed(rec: Recording) -> Iterator[DepthEvent | Snapshot]:
    """The recording's messages in receive order."""
    yield from rec.events[: rec.events_before_snapshot]
    yield rec.snapshot
    yield from rec.events[rec.events_before_snapshot :]


def sync(rec: Recording, make_book: Callable[[], L2Book]) -> tuple[SyncResult, L2Book]:
    """Replay ``rec`` into a fresh book; returns the summary and the final book."""
    book = make_book()
    s = DepthSync(book, rec.instrument)
    for item in feed(rec):
        if isinstance(item, Snapshot):
            s.on_snapshot(item)
        else:
            s.on_event(item)
    return s.result(), book
