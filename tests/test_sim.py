"""The local exchange simulator, through the real feed clients on 127.0.0.1.

Clients are ``WsFeed`` and ``RestClient`` (plus orjson): what the engine will use. The book
syncs below are independent pure-Python implementations of the venues' documented procedures
(venues.md 1.2, 1.3, 4.2, 4.3), written here from the docs and not shared with the simulator,
so a mistake on either side shows up as a disagreement with the simulator's true book.

Simulators run time-compressed (``interval_s`` of 10 ms instead of 100 ms) to keep the file
fast; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import zlib
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from arbengine._core.fixed import Grid
from arbengine.venues.rest import RestClient, RestError, TokenBucket
from arbengine.venues.sim import (
    BINANCE_SPOT,
    OKX_INSTRUMENTS,
    BinanceSim,
    BookModel,
    DecimalText,
    FairMarket,
    FairPrice,
    Fault,
    FaultInjector,
    ModelConfig,
    OkxSim,
    ReplaySource,
    TrueBook,
    okx_checksum,
)
from arbengine.venues.sim.model import BID
from arbengine.venues.ws import Backoff, WsFeed

FAST = 0.01  # model tick for the simulators in these tests (the real cadence is 0.1 s)

Json = dict[str, Any]


# -- client-side helpers ----------------------------------------------------------------------


class Collector:
    """A FeedHandler that sends ``subscribe`` on every connect and keeps every frame."""

    def __init__(self, *subscribe: bytes) -> None:
        self.subscribe = list(subscribe)
        self.frames: list[bytes] = []
        self.connects = 0
        self.disconnects = 0

    def on_connected(self) -> list[bytes]:
        self.connects += 1
        return list(self.subscribe)

    def on_frame(self, payload: bytes, recv_mono_ns: int, recv_wall_ns: int) -> None:
        self.frames.append(payload)

    def on_disconnected(self) -> None:
        self.disconnects += 1

    def messages(self) -> list[Json]:
        """Every frame that is a JSON object (pongs and bad frames left out)."""
        out = []
        for frame in self.frames:
            with contextlib.suppress(orjson.JSONDecodeError):
                msg = orjson.loads(frame)
                if isinstance(msg, dict):
                    out.append(msg)
        return out


@contextlib.asynccontextmanager
async def running(
    url: str,
    handler: Collector,
    *,
    silence_timeout_s: float = 30.0,
    ping_interval_s: float | None = None,
) -> AsyncIterator[WsFeed]:
    feed = WsFeed(
        url,
        handler,
        silence_timeout_s=silence_timeout_s,
        ping_interval_s=ping_interval_s,
        backoff=Backoff(base_s=0.01, cap_s=0.05, rng=random.Random(1)),
    )
    task = asyncio.create_task(feed.run())
    try:
        yield feed
    finally:
        await feed.stop()
        await asyncio.wait_for(task, 5)


def rest_client(url: str, *, timeout_s: float = 2.0, max_attempts: int = 4) -> RestClient:
    return RestClient(
        url,
        limiter=TokenBucket(capacity=1000, rate=10_000),
        timeout_s=timeout_s,
        max_attempts=max_attempts,
        backoff=Backoff(base_s=0.001, cap_s=0.01, rng=random.Random(3)),
    )


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.003)


def depth_events(collector: Collector) -> list[Json]:
    """Binance depth events, unwrapped from combined envelopes."""
    out = []
    for msg in collector.messages():
        data = msg.get("data", msg)
        if isinstance(data, dict) and data.get("e") == "depthUpdate":
            out.append(data)
    return out


class Gap(Exception):
    """The stream broke the venue's continuity rule: a live engine would resync."""


class BinanceBook:
    """Binance's documented local-book procedure, spot or USDⓈ-M, on text levels.

    Spot: drop ``u <= lastUpdateId``; the first applied event has ``U <= L+1 <= u``; then
    ``U == prev u + 1``. Futures: drop ``u < lastUpdateId``; the first applied event has
    ``U <= L <= u``; then ``pu == prev u``. Levels are keyed by their decimal value and keep
    the text received.
    """

    def __init__(self, futures: bool) -> None:
        self.futures = futures
        self.buffer: list[Json] = []
        self.sides: dict[str, dict[Decimal, tuple[str, str]]] = {"b": {}, "a": {}}
        self.update_id: int | None = None  # None until a snapshot is loaded
        self.first_done = False
        self.applied = 0
        self.dropped = 0  # buffered events older than the snapshot

    def on_event(self, event: Json) -> None:
        if self.update_id is None:
            self.buffer.append(event)
        else:
            self._apply(event)

    def on_snapshot(self, snap: Json) -> bool:
        """Load a snapshot; False if it is older than the first buffered event (step 4)."""
        last = snap["lastUpdateId"]
        if self.buffer and last < self.buffer[0]["U"]:
            return False
        for key, side in (("bids", "b"), ("asks", "a")):
            self.sides[side] = {Decimal(p): (p, q) for p, q in snap[key]}
        self.update_id = last
        buffered, self.buffer = self.buffer, []
        for event in buffered:
            self._apply(event)
        return True

    def _apply(self, event: Json) -> None:
        assert self.update_id is not None
        first, last = event["U"], event["u"]
        if not self.first_done:
            ref = self.update_id
            if (last < ref) if self.futures else (last <= ref):
                self.dropped += 1  # older than the snapshot
                return
            ok = first <= ref <= last if self.futures else first <= ref + 1 <= last
            if not ok:
                raise Gap(f"first event {first}..{last} does not cover snapshot {ref}")
            self.first_done = True
        elif self.futures and event["pu"] != self.update_id:
            raise Gap(f"pu {event['pu']} != previous u {self.update_id}")
        elif not self.futures and first != self.update_id + 1:
            raise Gap(f"U {first} != previous u {self.update_id} + 1")
        for side in ("b", "a"):
            levels = self.sides[side]
            for price, size in event[side]:
                if Decimal(size) == 0:
                    levels.pop(Decimal(price), None)
                else:
                    levels[Decimal(price)] = (price, size)
        self.update_id = last
        self.applied += 1

    def levels(self, side: str) -> tuple[tuple[str, str], ...]:
        levels = self.sides[side]
        return tuple(levels[p] for p in sorted(levels, reverse=side == "b"))


def okx_crc(bids: list[list[str]], asks: list[list[str]]) -> int:
    """OKX checksum written here from venues.md 4.3, independently of the simulator's."""
    fields: list[str] = []
    for i in range(25):
        if i < len(bids):
            fields += bids[i][:2]
        if i < len(asks):
            fields += asks[i][:2]
    value = zlib.crc32(":".join(fields).encode())
    return value - 2**32 if value >= 2**31 else value


class OkxBook:
    """OKX ``books`` merge with seqId chaining and checksum verification (venues.md 4.2/4.3)."""

    def __init__(self) -> None:
        self.sides: dict[str, dict[Decimal, list[str]]] = {"bids": {}, "asks": {}}
        self.seq: int | None = None
        self.messages = 0
        self.chain_breaks: list[tuple[int, int]] = []  # (expected prevSeqId, got)
        self.resets = 0
        self.heartbeats = 0
        self.checksum_mismatches = 0
        self.checksums: list[int] = []

    def on_message(self, msg: Json) -> None:
        if msg.get("arg", {}).get("channel") != "books" or "data" not in msg:
            return
        data = msg["data"][0]
        prev, seq = data["prevSeqId"], data["seqId"]
        if msg["action"] == "snapshot":
            assert prev == -1
            self.sides = {"bids": {}, "asks": {}}
        elif prev != self.seq:
            assert self.seq is not None
            self.chain_breaks.append((self.seq, prev))
        if seq < prev:
            self.resets += 1  # after maintenance: accept and continue
        if prev == seq and not data["bids"] and not data["asks"]:
            self.heartbeats += 1
        for side in ("bids", "asks"):
            levels = self.sides[side]
            for level in data[side]:
                if Decimal(level[1]) == 0:
                    levels.pop(Decimal(level[0]), None)
                else:
                    levels[Decimal(level[0])] = level
        self.seq = seq
        self.messages += 1
        self.checksums.append(data["checksum"])
        if data["checksum"] != 0:  # 0: not provided (post-2026 deprecation)
            mine = okx_crc(self.levels("bids"), self.levels("asks"))
            self.checksum_mismatches += mine != data["checksum"]

    def levels(self, side: str) -> list[list[str]]:
        levels = self.sides[side]
        return [levels[p] for p in sorted(levels, reverse=side == "bids")]

    def text(self, side: str) -> tuple[tuple[str, str], ...]:
        return tuple((lv[0], lv[1]) for lv in self.levels(side))


async def sync_binance(sim: BinanceSim, stream_url: str, events_wanted: int) -> BinanceBook:
    """Sync a book by the documented procedure, then freeze the venue and compare."""
    symbol = "BTCUSDT"
    collector = Collector()
    book = BinanceBook(futures=sim.market == "usdm")
    rest = rest_client(sim.rest_url)
    seen = 0

    def feed_events() -> None:
        nonlocal seen
        events = depth_events(collector)
        for event in events[seen:]:
            book.on_event(event)
        seen = len(events)

    def pump() -> BinanceBook:
        feed_events()
        return book

    async with running(stream_url, collector):
        await until(lambda: bool(depth_events(collector)))  # step 2: buffer, note the first U
        feed_events()
        limit = "1000"
        while True:  # steps 3-4: a snapshot not older than the first buffered event
            body = await rest.get(sim.depth_path, {"symbol": symbol, "limit": limit})
            if book.on_snapshot(orjson.loads(body)):
                break
        await until(lambda: pump().applied >= events_wanted)
        sim.pause()
        target = sim.true_book(symbol).update_id
        await until(lambda: pump().update_id == target)
    await rest.close()
    truth = sim.true_book(symbol)
    assert book.levels("b") == truth.bids
    assert book.levels("a") == truth.asks
    assert len(truth.bids) == len(truth.asks) == BINANCE_SPOT[symbol].depth
    assert not truth.crossed
    return book


# -- the model ---------------------------------------------------------------------------------


def test_decimal_text_formats_like_each_venue() -> None:
    spot = DecimalText("0.01", 8)
    assert spot.format(6173763) == "61737.63000000"
    assert spot.format(0) == "0.00000000"
    assert spot.parse("61737.63000000") == 6173763
    okx = DecimalText("0.1", None)
    assert [okx.format(u) for u in (302440, 302441, 0)] == ["30244", "30244.1", "0"]
    assert DecimalText("0.00000001", None).format(8_000_000) == "0.08"
    assert DecimalText("0.10", 2).format(618002) == "61800.20"  # USDⓈ-M tick 0.10
    for bad in ("0.005", "-1", "nan", "x"):
        with pytest.raises(ValueError):
            spot.parse(bad)
    with pytest.raises(ValueError, match="cannot show"):
        DecimalText("0.001", 2)


@given(
    units=st.integers(0, 10**15),
    trim=st.booleans(),
    step=st.sampled_from(["0.01", "0.1", "0.00001", "0.5", "1", "25", "0.00000001"]),
)
def test_decimal_text_agrees_with_the_core_grid(units: int, trim: bool, step: str) -> None:
    # The engine parses with Grid; the simulator must write what Grid reads back.
    text = DecimalText(step, None if trim else 8)
    written = text.format(units)
    assert Grid(step).parse(written) == units
    assert text.parse(written) == units
    if trim:
        assert written == Grid(step).format(units, trim=True)


def model(seed: int = 1, **config: Any) -> BookModel:
    inst = BINANCE_SPOT["BTCUSDT"]
    return BookModel(
        inst, FairPrice(inst.start_price, seed=seed), seed=seed, config=ModelConfig(**config)
    )


def test_model_books_stay_uncrossed_and_changes_are_the_net_diff() -> None:
    m = model(random_dislocation_prob=0.05, random_dislocation_bps=(50, 200))
    replica = TrueBook(m.instrument)  # rebuilt from the emitted changes only
    now = 10**12
    moved = 0
    for i in range(600):
        changes = m.step(now + i * 100_000_000)
        replica.apply(changes)
        assert not m.book.crossed
        assert all(q > 0 for q in m.book.bids.values()) and all(q > 0 for q in m.book.asks.values())
        assert len(m.book.bids) == len(m.book.asks) == m.instrument.depth
        assert [p for p, _ in changes.bids] == sorted((p for p, _ in changes.bids), reverse=True)
        moved += bool(changes)
    assert (replica.bids, replica.asks) == (m.book.bids, m.book.asks)
    assert moved == 600
    # Levels concentrate near the top: the first 10 levels sit within 20 ticks of it.
    top10 = m.book.levels(BID, 10)
    assert top10[0][0] - top10[-1][0] <= 20


def test_model_is_deterministic_per_seed() -> None:
    a, b, c = model(7), model(7), model(8)
    for i in range(50):
        t = 10**12 + i * 100_000_000
        assert a.step(t) == b.step(t)
        c.step(t)
    assert a.book.bids == b.book.bids and a.book.bids != c.book.bids


def test_dislocation_shifts_a_book_and_expires() -> None:
    m = model(mid_noise_ticks=0)
    t0 = 10**12
    m.step(t0)
    base = m.book.best(BID)
    assert base is not None
    m.dislocate(100, 1.0, t0)
    m.step(t0 + 1)
    shifted = m.book.best(BID)
    assert shifted is not None
    assert abs(Decimal(shifted - base) / base * 10_000 - 100) < 1  # 100 bps, within 1 bps
    m.step(t0 + 2_000_000_000)  # 2 s later: over
    back = m.book.best(BID)
    assert back is not None and abs(back - base) / base < Decimal("0.001")


def test_replay_drives_the_book_from_text_batches() -> None:
    inst = BINANCE_SPOT["BTCUSDT"]
    batches = [
        [("bid", "100.00", "1.5"), ("ask", "100.01", "2"), ("b", "99.99", "0.00001")],
        [("bid", "100.00", "0"), ("sell", "100.02", "3.25")],
        [("ask", "100.05", "0")],  # deleting an absent level changes nothing
    ]
    replay = ReplaySource(inst, batches)
    first = replay.step(0)
    assert first.text_changes(inst) == [
        ("bid", "100.00000000", "1.50000000"),
        ("bid", "99.99000000", "0.00001000"),
        ("ask", "100.01000000", "2.00000000"),
    ]
    assert replay.step(0).text_changes(inst) == [
        ("bid", "100.00000000", "0.00000000"),
        ("ask", "100.02000000", "3.25000000"),
    ]
    assert len(replay.step(0)) == 0 and len(replay.step(0)) == 0 and replay.exhausted
    snap = replay.book.snapshot(0)
    assert snap.bids == (("99.99000000", "0.00001000"),)
    assert [a[0] for a in snap.asks] == ["100.01000000", "100.02000000"]
    with pytest.raises(ValueError, match=r"off the 0\.01 grid"):
        ReplaySource(inst, [[("bid", "1.001", "1")]]).step(0)


def test_fault_injector_counts_probability_and_scope() -> None:
    faults = FaultInjector(seed=1, supported=[Fault.DROP, Fault.REST_5XX])
    with pytest.raises(ValueError, match="does not simulate"):
        faults.inject(Fault.CORRUPT_CHECKSUM)
    with pytest.raises(ValueError, match="5xx"):
        faults.inject(Fault.REST_5XX, status=404)
    faults.inject(Fault.DROP, symbol="ETHUSDT")
    assert faults.take(Fault.DROP, "BTCUSDT") is None  # another symbol
    assert faults.take(Fault.DROP, "ETHUSDT", "u=5") is not None
    assert faults.take(Fault.DROP, "ETHUSDT") is None  # one-shot: spent
    rule = faults.inject(Fault.DROP, count=None, probability=0.25)
    fired = sum(faults.take(Fault.DROP, "X") is not None for _ in range(2000))
    assert 400 < fired < 600 and rule.fired == fired
    faults.clear()
    assert faults.take(Fault.DROP, "X") is None
    assert faults.count(Fault.DROP) == fired + 1 and faults.details(Fault.DROP)[0] == "u=5"


def test_okx_checksum_matches_the_published_vector() -> None:
    # venues.md O1: "3366.1:7:3366.8:9:3366:6:3368:8" -> -1881014294.
    bids, asks = [["3366.1", "7"], ["3366", "6"]], [["3366.8", "9"], ["3368", "8"]]
    assert okx_checksum(bids, asks) == okx_crc(bids, asks) == -1881014294
    assert okx_checksum([], []) == 0


# -- Binance -----------------------------------------------------------------------------------


async def test_binance_spot_stream_and_snapshot_sync_to_the_true_book() -> None:
    async with BinanceSim(["BTCUSDT"], seed=3, interval_s=FAST) as sim:
        book = await sync_binance(sim, sim.stream_url("btcusdt@depth@100ms"), events_wanted=25)
    # The snapshot came after the first event: step 5 discarded at least that one.
    assert book.dropped >= 1 and book.applied >= 25


async def test_binance_usdm_combined_stream_sync_follows_pu() -> None:
    async with BinanceSim(["BTCUSDT"], market="usdm", seed=4, interval_s=FAST) as sim:
        url = sim.stream_url("btcusdt@depth@0ms", combined=True)
        book = await sync_binance(sim, url, events_wanted=25)
    assert book.applied >= 25


async def test_binance_wire_fields_and_id_arithmetic() -> None:
    async with (
        BinanceSim(["BTCUSDT"], seed=5, interval_s=FAST) as spot,
        BinanceSim(["BTCUSDT"], market="usdm", seed=5, interval_s=FAST) as usdm,
    ):
        a, b = Collector(), Collector()
        async with (
            running(spot.stream_url("btcusdt@depth@100ms", "btcusdt@depth", combined=True), a),
            running(usdm.stream_url("btcusdt@depth@100ms"), b),
        ):
            await until(lambda: len(depth_events(b)) >= 12 and len(a.messages()) >= 30)
            rest = rest_client(usdm.rest_url)
            snap = orjson.loads(
                await rest.get("/fapi/v1/depth", {"symbol": "BTCUSDT", "limit": "5"})
            )
            await rest.close()
    streams = {m["stream"] for m in a.messages()}
    assert streams == {"btcusdt@depth@100ms", "btcusdt@depth"}
    for name in streams:  # every stream on its own chain, slow or fast
        events = [m["data"] for m in a.messages() if m["stream"] == name]
        assert list(events[0]) == ["e", "E", "s", "U", "u", "b", "a"]
        for prev, cur in itertools.pairwise(events):
            assert cur["U"] == prev["u"] + 1
    fast = [m["data"] for m in a.messages() if m["stream"] == "btcusdt@depth@100ms"]
    for event in fast:
        assert event["u"] - event["U"] + 1 == len(event["b"]) + len(event["a"])
        for price, size in event["b"] + event["a"]:
            assert len(price.split(".")[1]) == 8 and len(size.split(".")[1]) == 8
        assert event["E"] > 1_600_000_000_000  # ms
    futures = depth_events(b)
    assert list(futures[0]) == ["e", "E", "T", "s", "U", "u", "pu", "b", "a"]
    for prev, cur in itertools.pairwise(futures):
        assert cur["pu"] == prev["u"]
    assert any(cur["U"] != prev["u"] + 1 for prev, cur in itertools.pairwise(futures))
    price, size = futures[-1]["b"][0] if futures[-1]["b"] else futures[-1]["a"][0]
    assert len(price.split(".")[1]) == 2 and len(size.split(".")[1]) == 3
    assert list(snap) == ["lastUpdateId", "E", "T", "bids", "asks"] and len(snap["bids"]) == 5


async def test_binance_subscribe_frames_and_rest_errors() -> None:
    async with BinanceSim(["BTCUSDT", "ETHUSDT"], seed=6, interval_s=FAST) as sim:
        handler = Collector(
            b'{"method":"SUBSCRIBE","params":["ethusdt@depth@100ms"],"id":1}',
            b'{"method":"LIST_SUBSCRIPTIONS","id":2}',
            b'{"method":"SUBSCRIBE","params":["ethusdt@trade"],"id":3}',
            b"{not json",
        )
        async with running(sim.ws_url + "/ws", handler):
            await until(lambda: len(depth_events(handler)) >= 3)
        replies = [m for m in handler.messages() if "id" in m]
        assert replies[:2] == [
            {"result": None, "id": 1},
            {"result": ["ethusdt@depth@100ms"], "id": 2},
        ]
        assert replies[2]["error"]["code"] == 2 and replies[3]["error"]["code"] == 3
        assert {e["s"] for e in depth_events(handler)} == {"ETHUSDT"}
        rest = rest_client(sim.rest_url)
        with pytest.raises(RestError, match=r"HTTP 400.*Invalid symbol"):
            await rest.get("/api/v3/depth", {"symbol": "NOPEUSDT"})
        async with (
            aiohttp.ClientSession() as session,
            session.get(sim.rest_url + "/api/v3/depth?symbol=ETHUSDT") as reply,
        ):
            body = await reply.json()
            assert len(body["bids"]) == 100  # default limit
            assert reply.headers["X-MBX-USED-WEIGHT-1M"] == "6"  # 1 (the error) + 5
        await rest.close()


async def test_binance_pings_keep_an_idle_connection_alive_and_pong_timeouts_cut() -> None:
    async with BinanceSim(
        ["BTCUSDT"],
        seed=7,
        interval_s=FAST,
        ping_interval_s=0.03,
        pong_timeout_s=0.15,
        max_client_msgs_per_s=1000,  # time-compressed pings: lift the 5 frames/s limit
    ) as sim:
        sim.pause()  # no data at all: only pings and pongs
        handler = Collector()
        # picows answers the server's pings itself (they never reach WsFeed), so WsFeed's
        # own pings are what keep an idle feed alive: the simulator must pong them.
        async with running(
            sim.stream_url("btcusdt@depth@100ms"),
            handler,
            silence_timeout_s=0.2,
            ping_interval_s=0.05,
        ) as feed:
            await asyncio.sleep(0.5)
            assert feed.counters.silent_closes == 0 and handler.connects == 1
        assert sim.stats.pings >= 5 and sim.stats.pongs >= 5  # server pings, client pongs
        # A client that never answers pings is dropped after pong_timeout_s.
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(sim.stream_url("btcusdt@depth@100ms"), autoping=False) as ws,
        ):
            async with asyncio.timeout(2):
                while (await ws.receive()).type not in (
                    aiohttp.WSMsgType.CLOSED,
                    aiohttp.WSMsgType.CLOSE,
                    aiohttp.WSMsgType.ERROR,
                ):
                    pass
        assert sim.stats.pong_timeouts == 1


# -- faults ------------------------------------------------------------------------------------


async def faulted_spot_stream(kind: Fault) -> tuple[BinanceSim, Collector]:
    """Events on a spot stream with one ``kind`` fault injected midway."""
    sim = BinanceSim(["BTCUSDT"], seed=8, interval_s=FAST)
    await sim.start()
    handler = Collector()
    try:
        async with running(sim.stream_url("btcusdt@depth@100ms"), handler):
            await until(lambda: len(handler.frames) >= 4)
            sim.faults.inject(kind)
            await sim.faults.wait(kind)
            count = len(handler.frames)
            await until(lambda: len(handler.frames) >= count + 4)
    finally:
        await sim.stop()
    return sim, handler


@pytest.mark.parametrize(
    "kind", [Fault.DROP, Fault.DUPLICATE, Fault.REORDER, Fault.MALFORMED, Fault.TRUNCATED]
)
async def test_binance_message_faults_are_observable(kind: Fault) -> None:
    sim, handler = await faulted_spot_stream(kind)
    assert sim.faults.count(kind) == 1 and sim.stats.connections == 1
    (detail,) = sim.faults.details(kind)  # "BTCUSDT U=.. u=.."
    hit_first, hit_last = (int(x.split("=")[1]) for x in detail.split()[1:])
    events = depth_events(handler)
    pairs = list(itertools.pairwise(events))
    breaks = [(p, c) for p, c in pairs if c["U"] != p["u"] + 1]
    if kind in (Fault.DROP, Fault.MALFORMED, Fault.TRUNCATED):  # the event is lost: a U gap
        assert [(p["u"] + 1, c["U"] - 1) for p, c in breaks] == [(hit_first, hit_last)]
    if kind == Fault.DUPLICATE:
        assert [(p["u"], c["u"]) for p, c in breaks] == [(hit_last, hit_last)]
        assert breaks[0][0] == breaks[0][1]
    if kind == Fault.REORDER:  # swapped with the next: ids go back once, none missing
        assert sum(c["U"] < p["U"] for p, c in pairs) == 1
        ids = sorted((e["U"], e["u"]) for e in events)
        assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(ids))
    bad = [f for f in handler.frames if not _is_json(f)]
    if kind in (Fault.MALFORMED, Fault.TRUNCATED):
        assert len(bad) == 1 and bad[0].startswith(b'{"e')
        if kind == Fault.TRUNCATED:
            assert not bad[0].endswith(b"}")
    else:
        assert bad == []


def _is_json(frame: bytes) -> bool:
    try:
        orjson.loads(frame)
    except orjson.JSONDecodeError:
        return False
    return True


async def test_disconnect_fault_makes_wsfeed_reconnect() -> None:
    async with BinanceSim(["BTCUSDT"], seed=9, interval_s=FAST) as sim:
        handler = Collector()
        async with running(sim.stream_url("btcusdt@depth@100ms"), handler) as feed:
            await until(lambda: len(handler.frames) >= 2)
            sim.faults.inject(Fault.DISCONNECT)
            await until(lambda: feed.counters.reconnects == 1 and len(handler.frames) >= 8)
        assert sim.faults.count(Fault.DISCONNECT) == 1
        assert (sim.stats.connections, sim.stats.disconnects, handler.disconnects) == (2, 1, 2)


async def test_silence_fault_trips_wsfeed_silence_timeout() -> None:
    async with BinanceSim(["BTCUSDT"], seed=10, interval_s=FAST, ping_interval_s=0.02) as sim:
        handler = Collector()
        async with running(
            sim.stream_url("btcusdt@depth@100ms"), handler, silence_timeout_s=0.2
        ) as feed:
            await until(lambda: len(handler.frames) >= 2)
            sim.faults.inject(Fault.SILENCE, seconds=5.0)  # data and pings both stop
            await until(lambda: feed.counters.silent_closes == 1 and handler.connects == 2)
            assert "silent" in feed.last_error
            await until(lambda: len(depth_events(handler)) >= 6)  # the new connection flows
        # The raw view (aiohttp, pings visible): while silenced, not even a ping arrives.
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(sim.stream_url("btcusdt@depth@100ms"), autoping=False) as ws,
        ):
            kinds = {(await ws.receive(timeout=1)).type for _ in range(12)}
            assert kinds == {aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.PING}
            sim.faults.inject(Fault.SILENCE, seconds=0.5)
            await sim.faults.wait(Fault.SILENCE, 2)
            with contextlib.suppress(TimeoutError):
                while True:  # what was queued before the silence began
                    await ws.receive(timeout=0.05)
            with pytest.raises(TimeoutError):
                await ws.receive(timeout=0.2)
            assert (await ws.receive(timeout=1)).type in kinds  # and then it talks again
        assert sim.faults.count(Fault.SILENCE) == 2 and sim.stats.suppressed > 0


async def test_slow_rest_times_out_then_the_retry_succeeds() -> None:
    async with BinanceSim(["BTCUSDT"], seed=11, interval_s=FAST) as sim:
        rest = rest_client(sim.rest_url, timeout_s=0.15)
        sim.faults.inject(Fault.REST_DELAY, seconds=0.4)
        body = orjson.loads(await rest.get("/api/v3/depth", {"symbol": "BTCUSDT"}))
        assert body["lastUpdateId"] > 0
        assert (rest.counters.timeouts, rest.counters.retries) == (1, 1)
        assert sim.faults.count(Fault.REST_DELAY) == 1
        await rest.close()


@pytest.mark.parametrize("kind", [Fault.REST_429, Fault.REST_418, Fault.REST_5XX])
async def test_rest_throttling_and_errors_are_obeyed(kind: Fault) -> None:
    async with OkxSim(["BTC-USDT"], seed=12, interval_s=FAST) as okx:
        rest = rest_client(okx.rest_url)
        okx.faults.inject(kind, seconds=0.25, status=502)
        loop = asyncio.get_running_loop()
        start = loop.time()
        body = orjson.loads(
            await rest.get("/api/v5/market/books", {"instId": "BTC-USDT", "sz": "5"})
        )
        elapsed = loop.time() - start
        assert body["code"] == "0" and len(body["data"][0]["bids"]) == 5
        if kind == Fault.REST_5XX:
            assert rest.counters.server_errors == 1
            assert okx.faults.details(kind) == ["5xx"]
        else:
            assert rest.counters.throttled == 1 and elapsed >= 0.24  # Retry-After obeyed
            assert rest.limiter.blocked_until > 0
        assert okx.faults.count(kind) == 1 and rest.counters.retries == 1
        await rest.close()


async def test_crossed_snapshot_on_binance_rest_and_okx_ws() -> None:
    async with (
        BinanceSim(["BTCUSDT"], seed=13, interval_s=FAST) as binance,
        OkxSim(["BTC-USDT"], seed=13, interval_s=FAST) as okx,
    ):
        rest = rest_client(binance.rest_url)
        binance.faults.inject(Fault.CROSSED_SNAPSHOT)
        snap = orjson.loads(await rest.get("/api/v3/depth", {"symbol": "BTCUSDT"}))
        assert Decimal(snap["bids"][0][0]) > Decimal(snap["asks"][0][0])
        snap = orjson.loads(await rest.get("/api/v3/depth", {"symbol": "BTCUSDT"}))
        assert Decimal(snap["bids"][0][0]) < Decimal(snap["asks"][0][0])  # one-shot
        await rest.close()
        okx.faults.inject(Fault.CROSSED_SNAPSHOT)
        handler = Collector(_okx_subscribe("BTC-USDT"))
        async with running(okx.ws_url, handler):
            await until(lambda: any(m.get("action") == "snapshot" for m in handler.messages()))
        snapshot = next(m for m in handler.messages() if m.get("action") == "snapshot")
        data = snapshot["data"][0]
        assert Decimal(data["bids"][0][0]) > Decimal(data["asks"][0][0])
        assert data["checksum"] == okx_crc(data["bids"], data["asks"])  # sums what was sent
        assert binance.faults.count(Fault.CROSSED_SNAPSHOT) == 1
        assert okx.faults.count(Fault.CROSSED_SNAPSHOT) == 1


# -- OKX ---------------------------------------------------------------------------------------


def _okx_subscribe(*inst_ids: str) -> bytes:
    args = [{"channel": "books", "instId": i} for i in inst_ids]
    return orjson.dumps({"id": "1512", "op": "subscribe", "args": args})


class OkxClient(Collector):
    """Collects frames and merges ``books`` pushes into an ``OkxBook`` as they arrive."""

    def __init__(self, *subscribe: bytes) -> None:
        super().__init__(*subscribe)
        self.book = OkxBook()

    def on_frame(self, payload: bytes, recv_mono_ns: int, recv_wall_ns: int) -> None:
        super().on_frame(payload, recv_mono_ns, recv_wall_ns)
        with contextlib.suppress(orjson.JSONDecodeError):
            msg = orjson.loads(payload)
            if isinstance(msg, dict):
                self.book.on_message(msg)


async def test_okx_books_chain_checksums_and_truth() -> None:
    async with OkxSim(["BTC-USDT", "ETH-USDT"], seed=14, interval_s=FAST) as sim:
        client = OkxClient(_okx_subscribe("BTC-USDT"), b"ping")
        book = client.book
        async with running(sim.ws_url, client) as feed:
            await until(lambda: book.messages >= 30)
            sim.pause()
            target = sim.true_book("BTC-USDT").update_id
            await until(lambda: book.seq == target)
        truth = sim.true_book("BTC-USDT")
    assert feed.counters.handler_errors == 0
    first = client.messages()[0]
    assert first == {
        "id": "1512",
        "event": "subscribe",
        "arg": {"channel": "books", "instId": "BTC-USDT"},
        "connId": first["connId"],
    }
    assert b"pong" in client.frames
    assert book.chain_breaks == [] and book.resets == 0 and book.checksum_mismatches == 0
    assert all(c != 0 for c in book.checksums)
    assert book.text("bids") == truth.bids and book.text("asks") == truth.asks
    assert not truth.crossed and len(truth.bids) == OKX_INSTRUMENTS["BTC-USDT"].depth
    texts = [t for level in truth.bids + truth.asks for t in level]
    assert all("." not in t or not t.endswith("0") for t in texts)  # trimmed, OKX style
    assert any("." not in t for t in texts)  # whole prices have no point at all


async def test_okx_no_change_heartbeat_and_deprecated_checksum() -> None:
    async with OkxSim(
        ["BTC-USDT"], seed=15, interval_s=FAST, checksum=False, idle_heartbeat_s=0.05
    ) as sim:
        client = OkxClient(_okx_subscribe("BTC-USDT"))
        book = client.book
        async with running(sim.ws_url, client):
            await until(lambda: book.messages >= 5)
            sim.pause()
            await until(lambda: book.heartbeats >= 2)
        seq = sim.true_book("BTC-USDT").update_id
    beat = [m["data"][0] for m in client.messages() if "data" in m][-1]
    assert (beat["prevSeqId"], beat["seqId"], beat["bids"], beat["asks"]) == (seq, seq, [], [])
    assert set(book.checksums) == {0}  # the field stays, always 0 (post-2026)
    assert book.chain_breaks == []


async def test_okx_protocol_errors_and_unsubscribe() -> None:
    async with OkxSim(["BTC-USDT"], seed=16, interval_s=FAST) as sim:
        client = OkxClient(
            _okx_subscribe("NOPE-USDT"),
            b'{"op":"subscribe","args":[{"channel":"trades","instId":"BTC-USDT"}]}',
            b"{nope",
            b'{"op":"unsubscribe","args":[{"channel":"books","instId":"BTC-USDT"}]}',
        )
        async with running(sim.ws_url, client):
            await until(lambda: len(client.messages()) >= 4)
            await asyncio.sleep(5 * FAST)
    codes = [m.get("code") for m in client.messages()]
    assert codes[:3] == ["60018", "60018", "60012"]
    assert "instId:NOPE-USDT doesn't exist" in client.messages()[0]["msg"]
    assert client.messages()[3]["event"] == "unsubscribe"
    assert client.book.messages == 0  # never subscribed: no pushes


@pytest.mark.parametrize("kind", [Fault.CORRUPT_CHECKSUM, Fault.SEQ_RESET, Fault.DROP])
async def test_okx_faults_show_in_checksums_and_seq_chain(kind: Fault) -> None:
    async with OkxSim(["BTC-USDT"], seed=17, interval_s=FAST) as sim:
        client = OkxClient(_okx_subscribe("BTC-USDT"))
        book = client.book
        async with running(sim.ws_url, client):
            await until(lambda: book.messages >= 3)
            sim.faults.inject(kind)
            await sim.faults.wait(kind)
            count = book.messages
            await until(lambda: book.messages >= count + 3)
    assert sim.faults.count(kind) == 1
    if kind == Fault.CORRUPT_CHECKSUM:  # the book is right, only the field lies
        assert book.checksum_mismatches == 1 and book.chain_breaks == [] and book.resets == 0
    elif kind == Fault.SEQ_RESET:  # seqId < prevSeqId once, chain intact, sums fine
        assert book.resets == 1 and book.chain_breaks == [] and book.checksum_mismatches == 0
    else:  # a lost update: prevSeqId does not match, and the merged book goes wrong
        assert len(book.chain_breaks) == 1 and book.checksum_mismatches >= 1


# -- cross-venue, replay, lifecycle --------------------------------------------------------------


async def test_dislocation_opens_a_cross_venue_spread() -> None:
    fair = FairMarket(seed=21)
    async with (
        BinanceSim(["BTCUSDT"], seed=21, interval_s=FAST, fair=fair) as a,
        OkxSim(["BTC-USDT"], seed=22, interval_s=FAST, fair=fair) as b,
    ):

        def edge_bps() -> Decimal:
            """B's best bid over A's best ask, in bps of A's ask."""
            bid, ask = b.true_book("BTC-USDT").best_bid, a.true_book("BTCUSDT").best_ask
            assert bid is not None and ask is not None
            return (Decimal(bid[0]) - Decimal(ask[0])) / Decimal(ask[0]) * 10_000

        await asyncio.sleep(5 * FAST)
        assert abs(edge_bps()) < 2  # one fair price: the books overlap
        b.dislocate(50, 0.5)
        await until(lambda: edge_bps() > 40)  # the next tick moves B
        assert 47 < edge_bps() < 53
        await until(lambda: abs(edge_bps()) < 2)  # over: back to one price


async def test_replayed_recording_reaches_clients_like_the_model() -> None:
    inst = BINANCE_SPOT["BTCUSDT"]
    original = BookModel(inst, FairPrice(inst.start_price, seed=5), seed=5)
    batches = [original.step(10**12 + i * 100_000_000).text_changes(inst) for i in range(100)]
    async with BinanceSim(
        ["BTCUSDT"], seed=23, interval_s=FAST, replay={"BTCUSDT": batches}
    ) as sim:
        await sync_binance(sim, sim.stream_url("btcusdt@depth@100ms"), events_wanted=15)
        sim.resume()
        source = sim.sources["BTCUSDT"]
        assert isinstance(source, ReplaySource)
        await until(lambda: source.exhausted)
        assert sim.true_book("BTCUSDT").bids == original.book.snapshot(0).bids
        assert sim.true_book("BTCUSDT").asks == original.book.snapshot(0).asks


async def test_nothing_is_left_running() -> None:
    before = asyncio.all_tasks()
    async with OkxSim(["BTC-USDT"], seed=24, interval_s=FAST) as sim:
        url = sim.ws_url
        client = OkxClient(_okx_subscribe("BTC-USDT"))
        async with running(url, client):
            await until(lambda: client.book.messages >= 2)
            # An open connection at shutdown gets a close frame and the server goes away.
        client2 = Collector(_okx_subscribe("BTC-USDT"))
        feed = WsFeed(url, client2, backoff=Backoff(base_s=0.01, cap_s=0.02))
        task = asyncio.create_task(feed.run())
        await until(lambda: len(client2.frames) >= 2)
    await until(lambda: client2.disconnects >= 1)
    await feed.stop()
    await asyncio.wait_for(task, 5)
    assert asyncio.all_tasks() - before == set()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", int(url.split(":")[2].split("/")[0]))


async def test_binance_connection_limits_streams_and_message_rate() -> None:
    async with BinanceSim(["BTCUSDT"], seed=8, interval_s=FAST) as sim:
        many = [f"c{i}usdt@depth@100ms" for i in range(1025)]
        handler = Collector(
            orjson.dumps({"method": "SUBSCRIBE", "params": many[:1000], "id": 1}),
            orjson.dumps({"method": "SUBSCRIBE", "params": many[1000:], "id": 2}),
        )
        async with running(sim.ws_url + "/ws", handler):
            await until(lambda: len([m for m in handler.messages() if "id" in m]) == 2)
        replies = [m for m in handler.messages() if "id" in m]
        assert replies[0] == {"result": None, "id": 1}
        assert "more than 1024 streams" in replies[1]["error"]["msg"]
        # Six frames inside a second: the sixth gets the connection cut.
        burst = [b'{"method":"LIST_SUBSCRIPTIONS","id":%d}' % i for i in range(6)]
        async with running(sim.ws_url + "/ws", Collector(*burst)):
            await until(lambda: sim.stats.rate_limit_cuts >= 1)
