"""Venue book checksums (``arbengine.venues.checksum``) against published vectors, against the
venues' own checksums on real recordings, and against the pure-Python reference.

* K2 / O1 (venues.md 3.2 and 4.3): the vectors printed in the Kraken and OKX docs.
* Real data (tests/data/cryptofeed, ORIGIN.md there): every Kraken v1 update checksum
  (4,269) and every OKX ``books`` checksum (290, snapshots included) must match, computed from
  the compiled book in ticks and lots. The reference (tests/reference/checksum.py: texts as
  received, ``zlib.crc32``) must match them too, which validates the oracle that the property
  tests at the end use on random books.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from decimal import Decimal, localcontext
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from arbengine._core.book import ASK, BID, Book
from arbengine._core.errors import FixedPointError
from arbengine._core.fixed import Grid
from arbengine.venues.checksum import (
    crc32,
    kraken_book_checksum,
    kraken_checksum_text,
    okx_book_checksum,
    okx_checksum_text,
)
from tests import kraken_v1, okx_books
from tests.reference.book import INT64_MAX
from tests.reference.checksum import (
    TextBook,
    TextLevel,
    kraken_checksum,
    kraken_text,
    kraken_wire_text,
    okx_checksum,
    okx_text,
    okx_wire_text,
)
from tests.vectors import K2_ASKS, K2_BIDS, K2_CHECKSUM

# --- CRC-32 ---------------------------------------------------------------------------------


def test_crc32_check_values() -> None:
    assert crc32(b"") == 0
    assert crc32(b"123456789") == 0xCBF43926  # the CRC-32/ISO-HDLC check value
    assert crc32(b"a", 0xFFFFFFFF) == zlib.crc32(b"a", 0xFFFFFFFF)
    # Any contiguous buffer, like zlib.
    assert crc32(bytearray(b"hello")) == crc32(memoryview(b"hello")) == zlib.crc32(b"hello")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.integers(0, 2000), st.integers(0, 0xFFFFFFFF))
def test_crc32_matches_zlib_and_chains(data: bytes, cut: int, start: int) -> None:
    # Lengths around every multiple of 8 exercise the slicing-by-8 loop and the byte tail.
    assert crc32(data) == zlib.crc32(data)
    assert crc32(data, start) == zlib.crc32(data, start)
    head, tail = data[:cut], data[cut:]
    assert crc32(tail, crc32(head)) == zlib.crc32(data)


@pytest.mark.parametrize("value", [-1, 2**32, 1.0, None])
def test_crc32_rejects_a_bad_start_value(value: Any) -> None:
    with pytest.raises(ValueError, match="value must be an int in"):
        crc32(b"x", value)


def test_crc32_rejects_text() -> None:
    with pytest.raises(TypeError):
        crc32("abc")  # type: ignore[arg-type]


# --- Kraken: the doc's book (K2) ------------------------------------------------------------

K2_ASKS_TEXT = (
    "452852100000452864154571953452866154571109452896154560911452902158906604529181545534914529"
    "47445474945296135380000452975994554245299518772827"
)
K2_BIDS_TEXT = (
    "45283510000000452834154582015452821100000004528101000000045280315459258645279079900004527"
    "7633101034527753000000045277315460273745276615445238"
)
# BTC/USD on Kraken v2: price_precision 1, qty_precision 8.
K2_PRICE = Grid("0.1", name="kraken BTC/USD price")
K2_QTY = Grid("0.00000001", name="kraken BTC/USD qty")


def book_of(
    bids: list[TextLevel], asks: list[TextLevel], price: Grid, size: Grid, name: str = ""
) -> Book:
    book = Book(name=name)
    book.apply(
        [(price.parse(p), size.parse(q)) for p, q in bids],
        [(price.parse(p), size.parse(q)) for p, q in asks],
    )
    return book


def test_kraken_doc_vector() -> None:
    book = book_of(K2_BIDS, K2_ASKS, K2_PRICE, K2_QTY)
    assert kraken_checksum_text(book, K2_PRICE, K2_QTY, 1, 8) == K2_ASKS_TEXT + K2_BIDS_TEXT
    assert kraken_book_checksum(book, K2_PRICE, K2_QTY, 1, 8) == K2_CHECKSUM
    # The reference gets there from the doc's strings alone.
    assert kraken_text(K2_ASKS, K2_BIDS) == K2_ASKS_TEXT + K2_BIDS_TEXT
    assert kraken_checksum(K2_ASKS, K2_BIDS) == K2_CHECKSUM


def test_kraken_keeps_the_trailing_zero_decimal() -> None:
    # "45281.0" -> "452810": the value is written at the wire precision, not trimmed.
    book = book_of([("45281.0", "0.10000000")], [], K2_PRICE, K2_QTY)
    assert kraken_checksum_text(book, K2_PRICE, K2_QTY, 1, 8) == "45281010000000"


def test_kraken_tick_coarser_than_the_wire() -> None:
    # K3's first update (XMR/USD): tick 0.01, texts at 8 decimals, "354.15000000".
    tick, lot = Grid("0.01"), Grid("0.00000001")
    book = book_of([("354.15", "5")], [("0.07", "0.5")], tick, lot)
    assert kraken_checksum_text(book, tick, lot, 8, 8) == "7000000" + "50000000" + (
        "35415000000" + "500000000"
    )
    # A grid with a mantissa: 3 steps of 0.25 = 0.75, written at 4 decimals "0.7500".
    quarter = Grid("0.25")
    book = Book()
    book.apply([(3, 2)], [])
    assert kraken_checksum_text(book, quarter, quarter, 4, 2) == "7500" + "50"


def test_kraken_uses_the_top_10_levels_only() -> None:
    bids = [*K2_BIDS, ("45200.0", "9.00000000"), ("45100.0", "8.00000000")]
    asks = [*K2_ASKS, ("45300.0", "7.00000000")]
    book = book_of(bids, asks, K2_PRICE, K2_QTY)
    assert kraken_book_checksum(book, K2_PRICE, K2_QTY, 1, 8) == K2_CHECKSUM
    # Changing a level past the 10th changes nothing...
    book.apply([(K2_PRICE.parse("45200.0"), 1)], [])
    assert kraken_book_checksum(book, K2_PRICE, K2_QTY, 1, 8) == K2_CHECKSUM
    # ...but deleting one of the top 10 brings the 11th in: 45200.0 x 0.00000001.
    book.apply([(K2_PRICE.parse("45283.5"), 0)], [])
    text = kraken_checksum_text(book, K2_PRICE, K2_QTY, 1, 8)
    assert text.endswith("45276615445238" + "452000" + "1")
    assert kraken_book_checksum(book, K2_PRICE, K2_QTY, 1, 8) == zlib.crc32(text.encode())


# --- OKX: the doc's vector (O1) -------------------------------------------------------------

O1_TEXT = "3366.1:7:3366.8:9:3366:6:3368:8"
O1_CHECKSUM = -1881014294


def test_okx_doc_vector() -> None:
    tick, lot = Grid("0.1"), Grid("1")
    bids, asks = [("3366.1", "7"), ("3366", "6")], [("3366.8", "9"), ("3368", "8")]
    book = book_of(bids, asks, tick, lot)
    assert okx_checksum_text(book, tick, lot) == O1_TEXT
    assert okx_book_checksum(book, tick, lot) == O1_CHECKSUM
    assert okx_checksum(bids, asks) == O1_CHECKSUM
    assert O1_CHECKSUM + 2**32 == zlib.crc32(O1_TEXT.encode()) == 2413953002


def test_okx_interleaves_until_both_sides_run_out() -> None:
    tick, lot = Grid("0.01"), Grid("0.0001")
    bids = [("10.5", "1"), ("10.4", "0.25"), ("10.3", "3")]
    book = book_of(bids, [("11", "0.5")], tick, lot)
    assert okx_checksum_text(book, tick, lot) == "10.5:1:11:0.5:10.4:0.25:10.3:3"
    book = book_of([], [("11", "0.5"), ("11.01", "2")], tick, lot)
    assert okx_checksum_text(book, tick, lot) == "11:0.5:11.01:2"


def test_okx_uses_the_first_25_levels_only() -> None:
    tick, lot = Grid("1"), Grid("1")
    book = Book()
    book.apply([(1000 - i, 1) for i in range(30)], [(2000 + i, 1) for i in range(30)])
    text = okx_checksum_text(book, tick, lot)
    assert text.count(":") == 25 * 4 - 1
    assert text.endswith(":976:1:2024:1")
    before = okx_book_checksum(book, tick, lot)
    book.apply([(974, 5)], [(2026, 5)])  # 27th levels
    assert okx_book_checksum(book, tick, lot) == before


# --- empty books and corrupted levels -------------------------------------------------------


def test_empty_book_checksums_are_the_crc_of_nothing() -> None:
    book = Book()
    assert kraken_checksum_text(book, K2_PRICE, K2_QTY, 1, 8) == ""
    assert kraken_book_checksum(book, K2_PRICE, K2_QTY, 1, 8) == zlib.crc32(b"") == 0
    assert okx_checksum_text(book, K2_PRICE, K2_QTY) == ""
    assert okx_book_checksum(book, K2_PRICE, K2_QTY) == 0
    # 0 is also the checksum-error sentinel of the cdef API (except? 0): a real 0 must come
    # back as a value, not as an error.


@pytest.mark.parametrize("side", [BID, ASK])
@pytest.mark.parametrize("rank", [0, 4, 9])
def test_one_lot_off_changes_the_kraken_checksum(side: int, rank: int) -> None:
    book = book_of(K2_BIDS, K2_ASKS, K2_PRICE, K2_QTY)
    price, size = book.top(side, 10)[rank]
    book.set(side, price, size + 1)
    book.finish()
    assert kraken_book_checksum(book, K2_PRICE, K2_QTY, 1, 8) != K2_CHECKSUM
    book.set(side, price, size)
    book.finish()
    assert kraken_book_checksum(book, K2_PRICE, K2_QTY, 1, 8) == K2_CHECKSUM


@pytest.mark.parametrize("side", [BID, ASK])
def test_one_lot_off_changes_the_okx_checksum(side: int) -> None:
    tick, lot = Grid("0.1"), Grid("1")
    book = book_of([("3366.1", "7"), ("3366", "6")], [("3366.8", "9"), ("3368", "8")], tick, lot)
    price, size = book.top(side, 2)[1]
    book.set(side, price, size - 1)
    book.finish()
    assert okx_book_checksum(book, tick, lot) != O1_CHECKSUM
    book.set(side, price, size)
    book.finish()
    assert okx_book_checksum(book, tick, lot) == O1_CHECKSUM


def test_the_truncation_rule_matters_at_small_depth() -> None:
    """Kraken sends no delete for levels pushed out of the subscribed depth.

    The recording never fills a 1000-level book (see the real-data test), so this shows the
    rule on a depth-10 subscription. A new best ask pushes 109 out of scope silently; while out
    of scope, 109 is deleted on the venue (nothing is sent); then the best ask is deleted and
    the venue sends the level that now comes 10th, 200. A book that did not truncate still
    holds 109 in its top 10 and gets the checksum wrong.
    """
    tick = lot = Grid("1")
    snapshot = [(100 + i, 1) for i in range(10)]
    messages: list[tuple[list[tuple[int, int]], list[tuple[int, int]]]] = [
        ([(50, 1)], snapshot),
        ([], [(99, 1)]),
        ([], [(99, 0), (200, 1)]),
    ]
    truncated, untruncated = Book(max_depth=10), Book()
    venue = TextBook(max_depth=10)  # the venue's view of a depth-10 subscription
    for bids, asks in messages:
        for book in (truncated, untruncated):
            book.apply(bids, asks)
        for side, levels in ((BID, bids), (ASK, asks)):
            for p, q in levels:
                venue.set(side, str(p), str(q))
        venue.finish()
    expected = kraken_checksum(venue.top(ASK, 10), venue.top(BID, 10))
    assert [p for p, _ in truncated.asks()] == [*range(100, 109), 200]
    assert kraken_book_checksum(truncated, tick, lot, 0, 0) == expected
    assert kraken_book_checksum(untruncated, tick, lot, 0, 0) != expected


# --- argument checks and overflow -----------------------------------------------------------


@pytest.mark.parametrize(
    ("price_decimals", "qty_decimals", "error", "message"),
    [
        (0, 8, ValueError, r"price_decimals must be between the grid's 1 \(0.1\) and 18, got 0"),
        (1, 7, ValueError, r"qty_decimals must be between the grid's 8 \(0.00000001\) and 18"),
        (19, 8, ValueError, r"price_decimals .* got 19"),
        (1, 2**70, ValueError, r"qty_decimals .* got 1180591620717411303424"),
        (1.0, 8, TypeError, r"price_decimals must be an int, got float 1.0"),
        (1, True, TypeError, r"qty_decimals must be an int, got bool True"),
        (1, None, TypeError, r"qty_decimals must be an int, got NoneType"),
    ],
)
def test_kraken_rejects_bad_precisions(
    price_decimals: Any, qty_decimals: Any, error: type[Exception], message: str
) -> None:
    book = book_of(K2_BIDS, K2_ASKS, K2_PRICE, K2_QTY)
    with pytest.raises(error, match=message):
        kraken_book_checksum(book, K2_PRICE, K2_QTY, price_decimals, qty_decimals)
    with pytest.raises(error, match=message):
        kraken_checksum_text(book, K2_PRICE, K2_QTY, price_decimals, qty_decimals)


@pytest.mark.parametrize(
    "call",
    [
        lambda b, g: kraken_book_checksum(b, g, g, 8, 8),
        lambda b, g: kraken_checksum_text(b, g, g, 8, 8),
        lambda b, g: okx_book_checksum(b, g, g),
        lambda b, g: okx_checksum_text(b, g, g),
    ],
)
def test_none_is_refused(call: Callable[[Any, Any], object]) -> None:
    with pytest.raises(TypeError):
        call(None, K2_QTY)
    with pytest.raises(TypeError):
        call(Book(), None)


def test_kraken_overflow_at_the_wire_precision_is_an_error() -> None:
    # 10**9 ticks of 0.1 is 10**8: 10**16 at 8 decimals, but 10**26 (past int64) at 18.
    book = Book(name="kraken BTC/USD")
    book.apply([(10**9, 1)], [])
    text = b"1" + b"0" * 16 + b"1"
    assert kraken_book_checksum(book, K2_PRICE, K2_QTY, 8, 8) == zlib.crc32(text)
    msg = r"^kraken BTC/USD: 1000000000 units of 0.1 overflow int64 .* 18 decimals$"
    with pytest.raises(FixedPointError, match=msg):
        kraken_book_checksum(book, K2_PRICE, K2_QTY, 18, 8)
    # The step itself can be too big to scale: 10**10 at 18 - 0 decimals.
    big = Grid("10000000000")
    with pytest.raises(FixedPointError, match=r"grid step 10000000000 does not fit int64"):
        kraken_book_checksum(book, big, K2_QTY, 18, 8)


def test_okx_overflow_is_an_error() -> None:
    book = Book(name="okx X")
    book.apply([(INT64_MAX, 1)], [])
    with pytest.raises(FixedPointError, match=r"^okx X: 9223372036854775807 units of 0.25"):
        okx_book_checksum(book, Grid("0.25"), Grid("1"))


# --- real data: Kraken WebSocket v1 (K3) ----------------------------------------------------

KRAKEN_UPDATES_WITH_CHECKSUM = 4269


def test_kraken_v1_every_recorded_checksum_matches() -> None:
    r = kraken_v1.replay()
    assert len(r.checks) == KRAKEN_UPDATES_WITH_CHECKSUM
    assert r.snapshots == dict.fromkeys(kraken_v1.PAIRS, 1)
    # Every update message carries a checksum.
    assert sum(r.updates.values()) == KRAKEN_UPDATES_WITH_CHECKSUM
    mismatches = [c for c in r.checks if c.compiled != c.venue]
    assert mismatches == []
    # The reference (texts as received) agrees, and so does our text, character for character.
    assert [c for c in r.checks if c.reference != c.venue] == []
    assert all(c.text_matches for c in r.checks)
    assert {c.pair for c in r.checks} == set(kraken_v1.PAIRS)


def test_kraken_v1_first_update_is_the_documented_example() -> None:
    # venues.md K3: line 25, XMR/USD, checksum "2583817756", applied to the snapshot.
    first = kraken_v1.replay().checks[0]
    assert (first.index + 1, first.pair, first.venue) == (25, "XMR/USD", 2583817756)
    assert first.compiled == first.venue


def test_kraken_v1_wire_precision_per_pair() -> None:
    """v1 writes prices with a fixed number of decimals per pair, NOT the tick's and not one
    width for all (5 to 9 here); volumes always with 8. The checksum depends on it."""
    r = kraken_v1.replay()
    for name, pair in kraken_v1.PAIRS.items():
        price_decimals = {len(t.partition(".")[2]) for t in r.price_texts[name]}
        volume_decimals = {len(t.partition(".")[2]) for t in r.volume_texts[name]}
        assert price_decimals == {pair.price_decimals}, name
        assert volume_decimals == {pair.qty_decimals}, name
        # Every price is on the tick (the replay parsed it), and the tick is not finer than
        # the data: some price uses its last decimal.
        last = pair.tick.decimals
        assert any(
            t.partition(".")[2][last - 1 : last] not in ("", "0") for t in r.price_texts[name]
        )
        assert pair.price_decimals >= pair.tick.decimals
    wire = {name: p.price_decimals for name, p in kraken_v1.PAIRS.items()}
    assert sorted(set(wire.values())) == [5, 6, 8, 9]


def test_kraken_v1_recording_never_reaches_depth_1000() -> None:
    # So truncation to the subscribed depth, although applied, never removes a level in this
    # recording: the real data does not test that rule (the synthetic test above does).
    r = kraken_v1.replay()
    assert max(max(d) for d in r.max_depth.values()) == 853 < kraken_v1.DEPTH
    assert r.max_depth["SC/EUR"][0] == 853
    assert r.republished == 0  # and no level carries the "r" flag


def test_kraken_v1_corrupted_real_book_is_detected() -> None:
    r = kraken_v1.replay()
    last = {c.pair: c.venue for c in r.checks}
    for name, pair in kraken_v1.PAIRS.items():
        book = r.books[name]
        args = (pair.tick, pair.lot, pair.price_decimals, pair.qty_decimals)
        assert kraken_book_checksum(book, *args) == last[name]
        price, size = book.top(ASK, 10)[-1]
        copy = Book(name=name)
        copy.apply(book.bids(), [*book.asks()[:-1], (price, size)])
        assert kraken_book_checksum(copy, *args) == last[name]
        copy.apply([], [(price, size + 1)])
        assert kraken_book_checksum(copy, *args) != last[name]


# --- real data: OKX v5 books (O3) ----------------------------------------------------------

OKX_BOOK_MESSAGES = 290


def test_okx_every_recorded_checksum_matches() -> None:
    r = okx_books.replay()
    assert len(r.checks) == OKX_BOOK_MESSAGES
    assert [c.action for c in r.checks].count("snapshot") == 3
    assert {c.inst for c in r.checks} == set(okx_books.INSTRUMENTS)
    assert [c for c in r.checks if c.compiled != c.venue] == []
    assert [c for c in r.checks if c.reference != c.venue] == []
    assert all(c.text_matches for c in r.checks)


def test_okx_snapshot_checksum_is_the_documented_example() -> None:
    # venues.md O3: the BTC-USDT snapshot on line 31, checksum 47640993.
    (snap,) = [
        c for c in okx_books.replay().checks if c.action == "snapshot" and c.inst == "BTC-USDT"
    ]
    assert (snap.index + 1, snap.venue, snap.compiled) == (31, 47640993, 47640993)


def test_okx_trimmed_format_reproduces_every_string_received() -> None:
    r = okx_books.replay()
    assert r.not_reproduced == []
    for name, inst in okx_books.INSTRUMENTS.items():
        prices, sizes = r.texts[name]
        # The grids are not finer than the data: some text uses each grid's last decimal.
        for grid, texts in ((inst.tick, prices), (inst.lot, sizes)):
            assert max(len(t.partition(".")[2]) for t in texts) == grid.decimals, name
        # Trimmed, really: no text has a trailing fractional zero.
        assert not [t for t in prices | sizes if "." in t and t.endswith("0")]


def test_okx_corrupted_real_book_is_detected() -> None:
    r = okx_books.replay()
    last = {c.inst: c.venue for c in r.checks}
    for name, inst in okx_books.INSTRUMENTS.items():
        book = r.books[name]
        assert okx_book_checksum(book, inst.tick, inst.lot) == last[name]
        price, size = book.top(BID, 25)[-1]
        book.apply([(price, size + 1)], [])
        try:
            assert okx_book_checksum(book, inst.tick, inst.lot) != last[name]
        finally:
            book.apply([(price, size)], [])
        assert okx_book_checksum(book, inst.tick, inst.lot) == last[name]


# --- property tests against the reference ---------------------------------------------------


@st.composite
def grids(draw: st.DrawFn) -> Grid:
    mantissa = draw(st.sampled_from([1, 2, 5, 25, 3]))
    decimals = draw(st.integers(0, 9))
    with localcontext() as ctx:
        ctx.prec = 60
        return Grid(f"{Decimal(mantissa).scaleb(-decimals):f}")


def side_levels(max_units: int) -> st.SearchStrategy[dict[int, int]]:
    # Prices spread wide enough to leave the book's 4096-tick window (the overflow array).
    prices = st.one_of(st.integers(1, 5000), st.integers(1, max_units))
    return st.dictionaries(prices, st.integers(1, max_units), max_size=40)


def value(grid: Grid, units: int) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 80
        return Decimal(units * grid.mantissa).scaleb(-grid.decimals)


@settings(max_examples=400, deadline=None)
@given(
    grids(),
    grids(),
    side_levels(10**15),
    side_levels(10**15),
    st.integers(0, 18),
    st.integers(0, 18),
)
def test_kraken_matches_the_reference(
    price: Grid, size: Grid, bids: dict[int, int], asks: dict[int, int], pd: int, qd: int
) -> None:
    pd, qd = max(pd, price.decimals), max(qd, size.decimals)
    book = Book()
    book.apply(list(bids.items()), list(asks.items()))
    top_asks = sorted(asks.items())[:10]
    top_bids = sorted(bids.items(), reverse=True)[:10]
    # A grid step that does not fit int64 at the wire precision is refused up front, even on
    # an empty book: no level could ever be written.
    if any(value(g, 1).scaleb(d) > INT64_MAX for g, d in ((price, pd), (size, qd))):
        event("grid step overflows")
        with pytest.raises(FixedPointError, match="does not fit int64 at"):
            kraken_book_checksum(book, price, size, pd, qd)
        return
    # Each value at the wire precision must fit int64; else an error naming it.
    scaled = [
        value(g, u).scaleb(d)
        for p, q in top_asks + top_bids
        for g, u, d in ((price, p, pd), (size, q, qd))
    ]
    if any(s > INT64_MAX for s in scaled):
        event("a value overflows")
        with pytest.raises(FixedPointError, match="overflow int64 when written with"):
            kraken_book_checksum(book, price, size, pd, qd)
        return
    event("checksummed" if scaled else "empty book")
    with localcontext() as ctx:
        ctx.prec = 80
        ask_texts = [
            (kraken_wire_text(value(price, p), pd), kraken_wire_text(value(size, q), qd))
            for p, q in top_asks
        ]
        bid_texts = [
            (kraken_wire_text(value(price, p), pd), kraken_wire_text(value(size, q), qd))
            for p, q in top_bids
        ]
    assert kraken_checksum_text(book, price, size, pd, qd) == kraken_text(ask_texts, bid_texts)
    assert kraken_book_checksum(book, price, size, pd, qd) == kraken_checksum(ask_texts, bid_texts)


@settings(max_examples=400, deadline=None)
@given(grids(), grids(), side_levels(10**15), side_levels(10**15))
def test_okx_matches_the_reference(
    price: Grid, size: Grid, bids: dict[int, int], asks: dict[int, int]
) -> None:
    book = Book()
    book.apply(list(bids.items()), list(asks.items()))
    with localcontext() as ctx:
        ctx.prec = 80
        bid_texts = [
            (okx_wire_text(value(price, p)), okx_wire_text(value(size, q)))
            for p, q in sorted(bids.items(), reverse=True)[:25]
        ]
        ask_texts = [
            (okx_wire_text(value(price, p)), okx_wire_text(value(size, q)))
            for p, q in sorted(asks.items())[:25]
        ]
    assert okx_checksum_text(book, price, size) == okx_text(bid_texts, ask_texts)
    assert okx_book_checksum(book, price, size) == okx_checksum(bid_texts, ask_texts)
    assert re.fullmatch(r"[0-9.:]*", okx_checksum_text(book, price, size))
