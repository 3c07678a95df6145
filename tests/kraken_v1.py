"""Replay the recorded Kraken WebSocket v1 ``book-1000`` feed and check every checksum.

Test helper for tests/test_checksum.py. It reads tests/data/cryptofeed/KRAKEN.ws.50.0.gz (see
ORIGIN.md there) with ``arbengine.venues.recording``, keeps one compiled ``Book`` per pair in
ticks and lots and, beside it, a ``TextBook`` of the texts as received (the reference), and
after every update message computes the checksum both ways.

v1 frames (venues.md 3.3) are JSON arrays: ``[channelID, {"as": [...], "bs": [...]},
"book-1000", pair]`` for a snapshot, and ``[channelID, {"a": [...]}, {"b": [...], "c": crc},
"book-1000", pair]`` (or with one dict) for an update. A level is ``[price, volume, time]``,
plus ``"r"`` when the level is a republish. Updates apply in array order, and the book is
truncated to the subscribed depth (1000) after the whole message: Kraken sends no delete for
levels pushed out of scope. This parser is a test aid; the live feed will use v2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from arbengine._core.book import ASK, BID, Book
from arbengine._core.fixed import Grid
from arbengine.venues.checksum import kraken_book_checksum, kraken_checksum_text
from arbengine.venues.recording import Kind, read_cryptofeed
from tests.reference.checksum import TextBook, kraken_checksum, kraken_text

DATA = Path(__file__).resolve().parent / "data" / "cryptofeed" / "KRAKEN.ws.50.0.gz"
DEPTH = 1000


def _step(decimals: int) -> str:
    return "1" if decimals == 0 else "0." + "0" * (decimals - 1) + "1"


@dataclass(frozen=True)
class Pair:
    """One recorded pair: its book grids and the precision of its texts on the wire."""

    name: str
    tick: Grid  # 10**-pair_decimals, the pair's price tick (AssetPairs)
    lot: Grid  # 10**-lot_decimals (8 for every pair here)
    price_decimals: int  # decimals of the price texts the v1 feed sends
    qty_decimals: int


def _pair(name: str, pair_decimals: int, wire_price_decimals: int) -> Pair:
    return Pair(
        name=name,
        tick=Grid(_step(pair_decimals), name=f"kraken {name} price"),
        lot=Grid(_step(8), name=f"kraken {name} volume"),
        price_decimals=wire_price_decimals,
        qty_decimals=8,
    )


# pair_decimals and lot_decimals come from the AssetPairs response recorded with the feed
# (cryptofeed sample_data/KRAKEN.0, same session). The wire decimals are those of the texts in
# the recording: v1 pads prices past the tick, and not to one width (5 to 9 decimals), so a
# checksum must use the precision of the text, not the tick's. test_checksum pins both.
PAIRS: dict[str, Pair] = {
    p.name: p
    for p in (
        _pair("WAVES/EUR", 4, 6),
        _pair("XMR/USD", 2, 8),
        _pair("KSM/XBT", 6, 8),
        _pair("GRT/ETH", 7, 9),
        _pair("SC/EUR", 5, 6),
        _pair("ETH/CHF", 2, 5),
        _pair("OCEAN/XBT", 8, 9),
        _pair("OMG/USD", 6, 6),
        _pair("XBT/CHF", 1, 5),
        _pair("ADA/XBT", 8, 9),
    )
}


@dataclass(frozen=True, slots=True)
class Check:
    """One update message's checksum: the venue's, ours, and the reference's."""

    index: int  # position of the frame among the recording's records
    pair: str
    venue: int
    compiled: int
    reference: int
    text_matches: bool  # our checksum text == the reference text built from received texts


@dataclass
class Replay:
    snapshots: dict[str, int] = field(default_factory=dict)
    updates: dict[str, int] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    books: dict[str, Book] = field(default_factory=dict)
    text_books: dict[str, TextBook] = field(default_factory=dict)
    # Every price and volume text, per pair, to check the wire precision facts.
    price_texts: dict[str, set[str]] = field(default_factory=dict)
    volume_texts: dict[str, set[str]] = field(default_factory=dict)
    republished: int = 0  # levels flagged "r"
    # Deepest each side of each book got after a message (bids, asks): whether the
    # truncation to DEPTH ever had anything to do.
    max_depth: dict[str, tuple[int, int]] = field(default_factory=dict)


def _set(r: Replay, pair: Pair, side: int, level: list[str]) -> None:
    if not (len(level) == 3 or (len(level) == 4 and level[3] == "r")):
        raise ValueError(f"{pair.name}: unexpected level {level!r}")
    r.republished += len(level) == 4
    price, volume = level[0], level[1]
    r.price_texts[pair.name].add(price)
    r.volume_texts[pair.name].add(volume)
    # Grid.parse is exact and raises on text off the grid: the replay is also the check
    # that every price is on the pair's tick.
    r.books[pair.name].set(side, pair.tick.parse(price), pair.lot.parse(volume))
    r.text_books[pair.name].set(side, price, volume)


def _end_message(r: Replay, name: str) -> None:
    book = r.books[name]
    # Truncation to the subscribed depth happens here, after the whole message.
    book.finish()
    r.text_books[name].finish()
    bids, asks = r.max_depth.get(name, (0, 0))
    r.max_depth[name] = (max(bids, book.bid_depth), max(asks, book.ask_depth))


def _frame(r: Replay, index: int, msg: list[Any]) -> None:
    _channel_id, *parts, channel_name, name = msg
    if channel_name != f"book-{DEPTH}":
        raise ValueError(f"record {index}: unexpected channel {channel_name!r}")
    pair = PAIRS[name]
    book, text_book = r.books[name], r.text_books[name]
    if "as" in parts[0] or "bs" in parts[0]:
        if len(parts) != 1:
            raise ValueError(f"record {index}: snapshot with {len(parts)} parts")
        book.clear()
        text_book.clear()
        for side, key in ((ASK, "as"), (BID, "bs")):
            for level in parts[0].get(key, []):
                _set(r, pair, side, level)
        _end_message(r, name)
        r.snapshots[name] = r.snapshots.get(name, 0) + 1
        return
    crc: str | None = None
    for part in parts:
        for key, value in part.items():
            if key == "a":
                for level in value:
                    _set(r, pair, ASK, level)
            elif key == "b":
                for level in value:
                    _set(r, pair, BID, level)
            elif key == "c":
                crc = value
            else:
                raise ValueError(f"record {index}: unexpected key {key!r}")
    _end_message(r, name)
    r.updates[name] = r.updates.get(name, 0) + 1
    if crc is None:
        return
    ours = kraken_book_checksum(book, pair.tick, pair.lot, pair.price_decimals, pair.qty_decimals)
    asks, bids = text_book.top(ASK, 10), text_book.top(BID, 10)
    text = kraken_checksum_text(book, pair.tick, pair.lot, pair.price_decimals, pair.qty_decimals)
    r.checks.append(
        Check(
            index=index,
            pair=name,
            venue=int(crc),
            compiled=ours,
            reference=kraken_checksum(asks, bids),
            text_matches=text == kraken_text(asks, bids),
        )
    )


@cache
def replay() -> Replay:
    """One replay of the whole recording per session: the tests only read the result."""
    r = Replay()
    for name in PAIRS:
        r.books[name] = Book(max_depth=DEPTH, name=f"kraken {name}")
        r.text_books[name] = TextBook(max_depth=DEPTH)
        r.price_texts[name] = set()
        r.volume_texts[name] = set()
    for index, rec in enumerate(read_cryptofeed(DATA)):
        if rec.kind is not Kind.INBOUND:
            continue
        msg = orjson.loads(rec.payload)
        if isinstance(msg, list):  # events and heartbeats are objects
            _frame(r, index, msg)
    return r
