"""Book sync: each venue's snapshot/delta procedure and sequence rules, faults and recovery."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from arbengine._core import Instrument
from arbengine.venues._depth import (
    DEPTH_NONE,
    DEPTH_SNAPSHOT,
    DEPTH_UPDATE,
    LAYOUT_KRAKEN2,
)
from arbengine.venues._frames import FAMILY_BINANCE_DEPTH, FAMILY_BINANCE_SNAPSHOT
from arbengine.venues._router import FeedRouter
from arbengine.venues._sync import (
    OUT_APPLIED,
    OUT_BUFFERED,
    OUT_IGNORED,
    OUT_NEED_SNAPSHOT,
    OUT_RESYNC,
    OUT_SNAPSHOT,
    BookSync,
)
from arbengine.venues.recording import Kind, read_cryptofeed
from tests.kraken_v1 import DATA as KRAKEN_DATA
from tests.kraken_v1 import DEPTH as KRAKEN_DEPTH
from tests.kraken_v1 import PAIRS as KRAKEN_PAIRS
from tests.okx_books import DATA as OKX_DATA
from tests.okx_books import INSTRUMENTS as OKX_INSTRUMENTS
from tests.okx_books import replay as okx_replay
from tests.vectors import K2_ASKS, K2_BIDS, K2_CHECKSUM

DATA = Path(__file__).resolve().parent / "data" / "binance"
CF = Path(__file__).resolve().parent / "data" / "cryptofeed"
SNAP, UPD = DEPTH_SNAPSHOT, DEPTH_UPDATE


def levels(*pairs: tuple[str, str]) -> bytes:
    return orjson.dumps([list(p) for p in pairs])


def binance(market: str) -> tuple[Instrument, str]:
    if market == "spot":
        # Spot depth shows sizes finer than the 0.00001 order lot (old resting orders).
        inst = Instrument(
            "binance", "BTCUSDT", "BTC", "USDT", "0.01", "0.00001", size_step="0.000001"
        )
        return inst, "binance_spot"
    return Instrument("binance", "BTCUSDT", "BTC", "USDT", "0.10", "0.001"), "binance_futures"


def feed_recording(sync: BookSync, market: str, skip: int | None = None) -> dict[int, int]:
    """Feed the real recording (snapshot line included) and count outcomes."""
    outcomes: dict[int, int] = {}
    path = DATA / f"{market}_btcusdt_20240808_depth.gz"
    with gzip.open(path) as lines:
        for i, line in enumerate(lines):
            if i == skip:
                continue
            ts, _, payload = line.partition(b" ")
            d = orjson.loads(payload)
            if "lastUpdateId" in d:
                out = sync.on_message(
                    SNAP,
                    orjson.dumps(d["bids"]),
                    orjson.dumps(d["asks"]),
                    last_id=d["lastUpdateId"],
                    recv_ts_ns=int(ts),
                )
            else:
                e = d["data"]
                out = sync.on_message(
                    UPD,
                    orjson.dumps(e["b"]),
                    orjson.dumps(e["a"]),
                    first_id=e["U"],
                    last_id=e["u"],
                    prev_id=e.get("pu"),
                    exch_ts_ns=e["E"] * 1_000_000,
                    recv_ts_ns=int(ts),
                )
            outcomes[out] = outcomes.get(out, 0) + 1
    return outcomes


@pytest.mark.parametrize(
    ("market", "applied", "dropped", "best"),
    [
        ("spot", 3_449, 2, ("61685.99", "61686.00")),
        ("usdm", 6_547, 4, ("61659.7", "61659.8")),
    ],
)
def test_binance_recordings_sync_live_with_no_gap(
    market: str, applied: int, dropped: int, best: tuple[str, str]
) -> None:
    inst, rule = binance(market)
    sync = BookSync(inst, rule)
    sync.start()
    outcomes = feed_recording(sync, market)
    assert sync.live and sync.state_name == "LIVE"
    c = sync.counters()
    assert (c["applied"], c["ignored"], c["gaps"], c["crossed"], c["resyncs"]) == (
        applied,
        dropped,
        0,
        0,
        0,
    )
    assert outcomes[OUT_NEED_SNAPSHOT] == 1  # the first held delta asks for the snapshot
    assert outcomes[OUT_SNAPSHOT] == 1
    bid, ask = sync.book.best_bid(), sync.book.best_ask()
    assert bid is not None and ask is not None
    assert (inst.price.format(bid[0]), inst.price.format(ask[0])) == best


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_binance_lost_event_takes_the_book_out_of_live(market: str) -> None:
    inst, rule = binance(market)
    sync = BookSync(inst, rule)
    sync.start()
    outcomes = feed_recording(sync, market, skip=1_000)
    assert outcomes[OUT_RESYNC] == 1
    assert sync.counters()["gaps"] == 1
    assert sync.last_reason_name == "gap"
    assert not sync.live
    # Until a new snapshot arrives everything is held, and the book offers nothing.
    assert sync.book.best_bid() is None


def test_binance_stale_snapshot_is_refused_and_a_fresh_one_recovers() -> None:
    inst, rule = binance("spot")
    sync = BookSync(inst, rule)
    sync.start()
    a = levels(("100.00", "1"))
    b = levels(("101.00", "1"))
    assert sync.on_message(UPD, a, b, first_id=10, last_id=12) == OUT_NEED_SNAPSHOT
    assert sync.on_message(UPD, a, b, first_id=13, last_id=15) == OUT_BUFFERED
    # A snapshot older than the first held event cannot be bridged: fetch again.
    assert sync.on_message(SNAP, a, b, last_id=5) == OUT_NEED_SNAPSHOT
    assert sync.counters()["stale_snapshots"] == 1 and not sync.live
    assert (
        sync.on_message(SNAP, levels(("99.00", "2")), levels(("102.00", "2")), last_id=13)
        == OUT_SNAPSHOT
    )
    assert sync.live and sync.last_id == 15  # event 10..12 dropped, 13..15 bridged
    assert sync.book.best_bid() == (10_000, 1_000_000)


def test_binance_spot_first_event_must_bridge_the_snapshot() -> None:
    inst, rule = binance("spot")
    sync = BookSync(inst, rule)
    sync.start()
    a, b = levels(("100.00", "1")), levels(("101.00", "1"))
    sync.on_message(UPD, a, b, first_id=20, last_id=25)
    assert sync.on_message(SNAP, a, b, last_id=20) == OUT_SNAPSHOT
    # Snapshot 20 fits [20;25] (U <= 21 <= u), so the held event was applied.
    assert sync.live and sync.last_id == 25
    assert sync.on_message(UPD, a, b, first_id=27, last_id=28) == OUT_RESYNC  # 26 missing
    assert sync.counters()["gaps"] == 1


def test_binance_futures_chain_on_pu() -> None:
    inst, rule = binance("usdm")
    sync = BookSync(inst, rule)
    sync.start()
    a, b = levels(("100.0", "1")), levels(("101.0", "1"))
    sync.on_message(UPD, a, b, first_id=95, last_id=105, prev_id=90)
    assert sync.on_message(SNAP, a, b, last_id=100) == OUT_SNAPSHOT
    assert sync.last_id == 105
    assert sync.on_message(UPD, a, b, first_id=107, last_id=110, prev_id=105) == OUT_APPLIED
    assert sync.on_message(UPD, a, b, first_id=111, last_id=112, prev_id=109) == OUT_RESYNC


def okx() -> BookSync:
    inst = Instrument("okx", "BTC-USDT", "BTC", "USDT", "0.1", "0.00000001")
    sync = BookSync(inst, "okx")
    sync.start()
    return sync


def test_okx_sequence_rules_from_the_doc_example() -> None:
    sync = okx()
    bids, asks = levels(("3366.1", "7")), levels(("3366.8", "9"))
    empty = b"[]"
    assert sync.on_message(UPD, bids, asks, last_id=9, prev_id=8) == OUT_IGNORED  # no snap
    assert sync.on_message(SNAP, bids, asks, last_id=10, prev_id=-1) == OUT_SNAPSHOT
    assert sync.on_message(UPD, levels(("3366", "6")), empty, last_id=15, prev_id=10) == OUT_APPLIED
    assert sync.on_message(UPD, empty, empty, last_id=15, prev_id=15) == OUT_APPLIED  # no change
    assert (
        sync.on_message(UPD, empty, levels(("3368", "8")), last_id=3, prev_id=15) == OUT_APPLIED
    )  # reset after maintenance
    assert sync.on_message(UPD, empty, empty, last_id=5, prev_id=3) == OUT_APPLIED
    assert sync.live and sync.counters()["gaps"] == 0
    assert sync.on_message(UPD, empty, empty, last_id=9, prev_id=7) == OUT_RESYNC
    assert sync.counters()["gaps"] == 1 and not sync.live


def test_okx_checksum_verified_when_non_zero() -> None:
    # venues.md O1: "3366.1:7:3366.8:9:3366:6:3368:8" -> -1881014294
    bids = levels(("3366.1", "7"), ("3366", "6"))
    asks = levels(("3366.8", "9"), ("3368", "8"))
    sync = okx()
    assert sync.on_message(SNAP, bids, asks, last_id=1, checksum=-1881014294) == OUT_SNAPSHOT
    sync = okx()
    assert sync.on_message(SNAP, bids, asks, last_id=1, checksum=0) == OUT_SNAPSHOT  # 0: none
    assert (
        sync.on_message(UPD, levels(("3366", "5")), b"[]", last_id=2, prev_id=1, checksum=12345)
        == OUT_RESYNC
    )
    assert sync.counters()["checksum_failures"] == 1
    assert sync.last_reason_name == "checksum"


def test_bybit_u_chain_duplicates_and_u1_reset() -> None:
    inst = Instrument("bybit", "BTCUSDT", "BTC", "USDT", "0.10", "0.001")
    sync = BookSync(inst, "bybit")
    sync.start()
    b, a = levels(("100.0", "1")), levels(("100.5", "1"))
    assert sync.on_message(SNAP, b, a, last_id=500) == OUT_SNAPSHOT
    assert sync.on_message(UPD, levels(("99.9", "2")), b"[]", last_id=501) == OUT_APPLIED
    assert sync.on_message(UPD, b"[]", b"[]", last_id=501) == OUT_IGNORED  # level-1 resend
    # u == 1: the service restarted and this delta is a full snapshot.
    assert (
        sync.on_message(UPD, levels(("50.0", "1")), levels(("50.1", "1")), last_id=1)
        == OUT_SNAPSHOT
    )
    assert sync.book.bids() == [(500, 1_000)]
    assert sync.on_message(UPD, b"[]", b"[]", last_id=3) == OUT_RESYNC
    assert sync.counters()["gaps"] == 1


def kraken_book() -> tuple[bytes, bytes]:
    # venues.md K2: the doc's BTC/USD book.
    bids, asks = K2_BIDS, K2_ASKS

    def v2(side: list[tuple[str, str]]) -> bytes:
        # JSON numbers, as Kraken v2 sends them (written by hand to keep trailing zeros).
        return ("[" + ",".join(f'{{"price":{p},"qty":{q}}}' for p, q in side) + "]").encode()

    return v2(bids), v2(asks)


def kraken() -> BookSync:
    inst = Instrument("kraken", "BTC/USD", "BTC", "USD", "0.1", "0.00000001")
    sync = BookSync(inst, "kraken", max_depth=10)
    sync.start()
    return sync


def test_kraken_checksum_on_snapshot_and_updates() -> None:
    bids, asks = kraken_book()
    sync = kraken()
    out = sync.on_message(SNAP, bids, asks, layout=LAYOUT_KRAKEN2, checksum=K2_CHECKSUM)
    assert out == OUT_SNAPSHOT and sync.live
    # A wrong checksum on an update: the book leaves LIVE, the error names both values.
    out = sync.on_message(
        UPD, b'[{"price":45283.5,"qty":0.2}]', b"[]", layout=LAYOUT_KRAKEN2, checksum=1
    )
    assert out == OUT_RESYNC and sync.counters()["checksum_failures"] == 1
    assert "!= 1" in sync.last_error


def test_crossed_book_leaves_live_without_repair() -> None:
    sync = okx()
    assert (
        sync.on_message(SNAP, levels(("100.0", "1")), levels(("100.5", "1")), last_id=1)
        == OUT_SNAPSHOT
    )
    assert sync.on_message(UPD, levels(("101.0", "1")), b"[]", last_id=2, prev_id=1) == OUT_RESYNC
    assert sync.counters()["crossed"] == 1 and sync.last_reason_name == "crossed"


@pytest.mark.parametrize(
    "bad",
    [b'[["100.05","1"]]', b'[["abc","1"]]', b'[["-1","1"]]', b'[["100.0"]]', b"[[", b"{}"],
)
def test_bad_levels_resync_the_book_and_raise_nothing(bad: bytes) -> None:
    sync = okx()
    sync.on_message(SNAP, levels(("100.0", "1")), levels(("100.5", "1")), last_id=1)
    assert sync.on_message(UPD, bad, b"[]", last_id=2, prev_id=1) == OUT_RESYNC
    assert sync.counters()["parse_errors"] == 1
    assert sync.last_error  # one line naming what was wrong
    assert "\n" not in sync.last_error


def test_down_and_non_book_messages_are_ignored() -> None:
    sync = okx()
    assert sync.on_message(DEPTH_NONE, None) == OUT_IGNORED
    sync.down()
    assert sync.state_name == "DOWN"
    assert sync.on_message(SNAP, levels(("1.0", "1")), b"[]", last_id=1) == OUT_IGNORED
    with pytest.raises(ValueError, match="unknown sync rule"):
        BookSync(Instrument("x", "Y", "B", "Q", "1", "1"), "nasdaq")


def test_okx_recording_through_book_sync_verifies_every_checksum() -> None:
    # The 2022 OKX recording (tests/data/cryptofeed) has no seqId, so its books stay in sync
    # on checksums alone: all 290 must verify through BookSync's parse -> apply -> CRC path.
    syncs: dict[str, BookSync] = {}
    for name, spec in OKX_INSTRUMENTS.items():
        inst = Instrument(
            "okx", name, name.split("-")[0], name.split("-")[1], spec.tick.step, spec.lot.step
        )
        syncs[name] = BookSync(inst, "okx")
        syncs[name].start()
    checked = 0
    for rec in read_cryptofeed(OKX_DATA):
        if rec.kind is not Kind.INBOUND:
            continue
        msg = orjson.loads(rec.payload)
        arg = msg.get("arg", {})
        if "event" in msg or arg.get("channel") != "books":
            continue
        (data,) = msg["data"]
        kind = SNAP if msg["action"] == "snapshot" else UPD
        out = syncs[arg["instId"]].on_message(
            kind,
            orjson.dumps(data["bids"]),
            orjson.dumps(data["asks"]),
            checksum=data["checksum"],
            exch_ts_ns=int(data["ts"]) * 1_000_000,
            recv_ts_ns=rec.recv_ns,
        )
        assert out in (OUT_SNAPSHOT, OUT_APPLIED), syncs[arg["instId"]].last_error
        checked += 1
    assert checked == 290
    expected = okx_replay()
    for name, sync in syncs.items():
        assert sync.live
        assert sync.counters()["checksum_failures"] == 0
        assert sync.book.bids() == expected.books[name].bids()
        assert sync.book.asks() == expected.books[name].asks()


def test_kraken_v1_recording_through_book_sync_verifies_every_checksum() -> None:
    # Kraken v1 levels are [price, volume, timestamp(, "r")]: the pair layout with extra
    # fields. Each pair's checksum uses the precision of its wire text (5 to 9 decimals).
    syncs: dict[str, BookSync] = {}
    for name, pair in KRAKEN_PAIRS.items():
        base, quote = name.split("/")
        inst = Instrument("kraken", name, base, quote, pair.tick.step, pair.lot.step)
        syncs[name] = BookSync(
            inst,
            "kraken",
            max_depth=KRAKEN_DEPTH,
            price_decimals=pair.price_decimals,
            qty_decimals=pair.qty_decimals,
        )
        syncs[name].start()
    verified = 0
    for rec in read_cryptofeed(KRAKEN_DATA):
        if rec.kind is not Kind.INBOUND or not rec.payload.startswith(b"["):
            continue
        _channel, *parts, _channel_name, name = orjson.loads(rec.payload)
        sync = syncs[name]
        merged: dict[str, object] = {}
        for part in parts:
            merged.update(part)
        if "as" in merged or "bs" in merged:
            out = sync.on_message(
                SNAP,
                orjson.dumps(merged.get("bs", [])),
                orjson.dumps(merged.get("as", [])),
                recv_ts_ns=rec.recv_ns,
            )
            assert out == OUT_SNAPSHOT
            continue
        crc = merged.get("c")
        out = sync.on_message(
            UPD,
            orjson.dumps(merged.get("b", [])),
            orjson.dumps(merged.get("a", [])),
            checksum=None if crc is None else int(str(crc)),
            recv_ts_ns=rec.recv_ns,
        )
        assert out == OUT_APPLIED, sync.last_error
        verified += crc is not None
    assert verified == 4_269
    assert all(s.live and s.counters()["checksum_failures"] == 0 for s in syncs.values())


def test_cryptofeed_binance_recording_through_the_compiled_router() -> None:
    # Four spot symbols on one combined stream, REST snapshots fetched while it ran. The raw
    # frames go through the compiled parser and router, as on the live connection. NKNUSDT
    # is the documented edge case: its first event (u == lastUpdateId) must be dropped.
    symbols = ["NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"]
    syncs = [
        BookSync(
            Instrument(
                "binance",
                s,
                s[:-4] if s.endswith("USDT") else s[:-3],
                "USDT" if s.endswith("USDT") else s[-3:],
                "0.00000001",
                "0.00000001",
            ),
            "binance_spot",
        )
        for s in symbols
    ]
    for sync in syncs:
        sync.start()
    router = FeedRouter(
        FAMILY_BINANCE_DEPTH, [s.encode() for s in symbols], syncs, FAMILY_BINANCE_SNAPSHOT
    )
    records = [
        *read_cryptofeed(CF / "BINANCE.ws.1.0.gz"),
        *read_cryptofeed(CF / "BINANCE.http.0.0.gz"),
    ]
    snapshots = 0
    for rec in sorted(records, key=lambda r: r.recv_ns):
        if rec.kind is Kind.INBOUND:
            router.on_frame(rec.payload, rec.recv_ns, rec.recv_ns)
        elif rec.kind is Kind.HTTP:
            assert rec.url is not None
            symbol = rec.url.split("symbol=")[1].split("&")[0]
            out = router.on_snapshot(symbols.index(symbol), rec.payload, rec.recv_ns)
            assert out == OUT_SNAPSHOT
            snapshots += 1
    assert snapshots == 4
    assert router.frame_errors == 0 and router.unknown_symbols == 0
    for sync in syncs:
        c = sync.counters()
        assert sync.live, (sync.instrument.symbol, sync.last_error)
        assert (c["gaps"], c["crossed"], c["resyncs"]) == (0, 0, 0)
        assert c["applied"] > 0
    nkn = syncs[0]
    assert nkn.counters()["ignored"] >= 1  # U=499869750, u=499869752 dropped
