"""Replay the recorded OKX v5 ``books`` channel and check every checksum.

Test helper for tests/test_checksum.py. It reads tests/data/cryptofeed/OKX.ws.1.0.gz (see
ORIGIN.md there), keeps one compiled ``Book`` per instrument and a ``TextBook`` of the strings
as received beside it, and after every ``books`` message (snapshots included) computes the
checksum both ways.

Push format (venues.md 4.1): ``{"arg": {"channel": "books", "instId": ...}, "action":
"snapshot"|"update", "data": [{"asks": [[px, sz, "0", orders], ...], "bids": [...], "ts": ...,
"checksum": n}]}``. Merge rule: size "0" deletes the level, another size replaces it, a new
price is inserted. This 2022 recording predates ``seqId``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from arbengine._core.book import ASK, BID, Book
from arbengine._core.fixed import Grid
from arbengine.venues.checksum import okx_book_checksum, okx_checksum_text
from arbengine.venues.recording import Kind, read_cryptofeed
from tests.reference.checksum import OKX_LEVELS, TextBook, okx_checksum, okx_text

DATA = Path(__file__).resolve().parent / "data" / "cryptofeed" / "OKX.ws.1.0.gz"


@dataclass(frozen=True)
class Instrument:
    name: str
    tick: Grid
    lot: Grid


# OKX instrument specs of 2022 (tickSz, lotSz): spot BTC-USDT 0.1 / 0.00000001 BTC; the
# coin-margined BTC future and UNI swap count sizes in whole contracts. test_checksum checks
# that every text of the recording is on these grids and that the grids are not finer than it.
def _instrument(name: str, tick: str, lot: str) -> Instrument:
    return Instrument(name, Grid(tick, name=f"okx {name} px"), Grid(lot, name=f"okx {name} sz"))


INSTRUMENTS: dict[str, Instrument] = {
    i.name: i
    for i in (
        _instrument("BTC-USDT", "0.1", "0.00000001"),
        _instrument("BTC-USD-220527", "0.1", "1"),
        _instrument("UNI-USD-SWAP", "0.001", "1"),
    )
}


@dataclass(frozen=True, slots=True)
class Check:
    """One ``books`` message's checksum: the venue's, ours, and the reference's."""

    index: int
    inst: str
    action: str
    venue: int
    compiled: int
    reference: int
    text_matches: bool  # our checksum text == the text built from the received strings


@dataclass
class Replay:
    checks: list[Check] = field(default_factory=list)
    books: dict[str, Book] = field(default_factory=dict)
    text_books: dict[str, TextBook] = field(default_factory=dict)
    # Every price and size text, per instrument: (prices, sizes).
    texts: dict[str, tuple[set[str], set[str]]] = field(default_factory=dict)
    # Texts that the trimmed format of their grid value does not reproduce.
    not_reproduced: list[str] = field(default_factory=list)


def _message(r: Replay, index: int, inst: Instrument, action: str, data: dict[str, Any]) -> None:
    book, text_book = r.books[inst.name], r.text_books[inst.name]
    if action == "snapshot":
        book.clear()
        text_book.clear()
    elif action != "update":
        raise ValueError(f"record {index}: unexpected action {action!r}")
    prices, sizes = r.texts[inst.name]
    for side, key in ((BID, "bids"), (ASK, "asks")):
        for level in data[key]:
            px, sz = level[0], level[1]
            prices.add(px)
            sizes.add(sz)
            ticks, lots = inst.tick.parse(px), inst.lot.parse(sz)
            # What the checksum writes must be the string OKX sent: check each one.
            for grid, units, text in ((inst.tick, ticks, px), (inst.lot, lots, sz)):
                if grid.format(units, trim=True) != text:
                    r.not_reproduced.append(text)
            book.set(side, ticks, lots)
            text_book.set(side, px, sz)
    book.finish()
    text_book.finish()
    bids, asks = text_book.top(BID, OKX_LEVELS), text_book.top(ASK, OKX_LEVELS)
    r.checks.append(
        Check(
            index=index,
            inst=inst.name,
            action=action,
            venue=int(data["checksum"]),
            compiled=okx_book_checksum(book, inst.tick, inst.lot),
            reference=okx_checksum(bids, asks),
            text_matches=okx_checksum_text(book, inst.tick, inst.lot) == okx_text(bids, asks),
        )
    )


@cache
def replay() -> Replay:
    """One replay of the whole recording per session: the tests only read the result."""
    r = Replay()
    for name in INSTRUMENTS:
        r.books[name] = Book(name=f"okx {name}")
        r.text_books[name] = TextBook()
        r.texts[name] = (set(), set())
    for index, rec in enumerate(read_cryptofeed(DATA)):
        if rec.kind is not Kind.INBOUND:
            continue
        msg = orjson.loads(rec.payload)
        arg = msg.get("arg", {})
        if "event" in msg or arg.get("channel") != "books":
            continue
        (data,) = msg["data"]
        _message(r, index, INSTRUMENTS[arg["instId"]], msg["action"], data)
    return r
