"""Behaviour of the L2 book, checked on the compiled ``Book`` and on ``ReferenceBook``.

Tests taking ``book_cls`` run on both implementations; the compiled-only tests cover what the
reference has no notion of (array capacity, ``replay_packed``); the hypothesis test at the end
drives both with the same random streams and compares them after every step.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
import textwrap
from array import array
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from arbengine._core import book as compiled_book
from arbengine._core.book import Book, replay_packed
from arbengine._core.errors import BookError, CoreError
from tests.reference.book import (
    ASK,
    BID,
    INT64_MAX,
    INT64_MIN,
    BookFactory,
    L2Book,
    Level,
    ReferenceBook,
    replay_packed_reference,
)

# --- helpers ---------------------------------------------------------------------------


def state(book: L2Book) -> dict[str, object]:
    """Everything observable about a book through the Python API."""
    return {
        "best_bid": book.best_bid(),
        "best_ask": book.best_ask(),
        "bids": book.top(BID),
        "asks": book.top(ASK),
        "bid_depth": book.bid_depth,
        "ask_depth": book.ask_depth,
        "crossed": book.crossed,
        "seq": book.seq,
        "exch_ts_ns": book.exch_ts_ns,
        "recv_ts_ns": book.recv_ts_ns,
        "updates": book.updates,
    }


def assert_consistent(book: L2Book) -> None:
    """Internal consistency of one book: ordering, depth, best level, positive sizes."""
    bids, asks = book.top(BID), book.top(ASK)
    assert [p for p, _ in bids] == sorted({p for p, _ in bids}, reverse=True)
    assert [p for p, _ in asks] == sorted({p for p, _ in asks})
    assert all(size > 0 and price > 0 for price, size in bids + asks)
    assert book.bid_depth == len(bids)
    assert book.ask_depth == len(asks)
    assert book.best_bid() == (bids[0] if bids else None)
    assert book.best_ask() == (asks[0] if asks else None)
    assert book.bids() == bids
    assert book.asks() == asks


def seeded(book: L2Book) -> L2Book:
    """A small uncrossed book: bids 100/99/98, asks 101/102/103, seq 5."""
    book.apply(
        [(100, 10), (99, 20), (98, 30)],
        [(101, 11), (102, 21), (103, 31)],
        seq=5,
        exch_ts_ns=1_000,
        recv_ts_ns=2_000,
    )
    return book


# --- both implementations ----------------------------------------------------------------


def test_constants_match_reference() -> None:
    assert (compiled_book.BID, compiled_book.ASK) == (BID, ASK) == (0, 1)


def test_new_book_is_empty(book_cls: BookFactory) -> None:
    book = book_cls(max_depth=5, name="binance:BTCUSDT")
    assert book.name == "binance:BTCUSDT"
    assert book.max_depth == 5
    assert state(book) == {
        "best_bid": None,
        "best_ask": None,
        "bids": [],
        "asks": [],
        "bid_depth": 0,
        "ask_depth": 0,
        "crossed": False,
        "seq": -1,
        "exch_ts_ns": 0,
        "recv_ts_ns": 0,
        "updates": 0,
    }


def test_negative_max_depth_rejected(book_cls: BookFactory) -> None:
    with pytest.raises(BookError, match=re.escape("max_depth must be >= 0, got -1")):
        book_cls(max_depth=-1)


def test_set_update_delete_levels(book_cls: BookFactory) -> None:
    book = seeded(book_cls())
    book.apply([(100, 15)], [(102, 0)])  # update the best bid, delete an ask inside the book
    assert book.bids() == [(100, 15), (99, 20), (98, 30)]
    assert book.asks() == [(101, 11), (103, 31)]
    book.apply([(99, 0), (100, 0)], [(101, 0), (103, 0)])  # delete best levels too
    assert book.bids() == [(98, 30)]
    assert book.asks() == []
    book.apply([(97, 1)], [(104, 2)])  # insert into a thin side and an empty one
    assert book.bids() == [(98, 30), (97, 1)]
    assert book.asks() == [(104, 2)]
    assert_consistent(book)


def test_repeated_price_in_one_message_last_wins(book_cls: BookFactory) -> None:
    book = book_cls()
    book.apply([(100, 1), (100, 2), (100, 0), (100, 3)], [(105, 1), (105, 0)])
    assert book.bids() == [(100, 3)]
    assert book.asks() == []


def test_deleting_absent_level_is_a_noop(book_cls: BookFactory) -> None:
    book = seeded(book_cls())
    before = state(book)
    crossed = book.apply([(50, 0), (99_999, 0)], [(1, 0), (150, 0)], seq=6)
    assert crossed is False
    after = state(book)
    # Only the message stamp moves; no level appears, disappears or changes.
    assert after["seq"] == 6
    assert book.updates == 2
    for key in ("bids", "asks", "bid_depth", "ask_depth", "best_bid", "best_ask", "crossed"):
        assert after[key] == before[key], key
    empty = book_cls()
    empty.set(BID, 7, 0)
    empty.set(ASK, 7, 0)
    assert empty.finish() is False
    assert (empty.bids(), empty.asks()) == ([], [])


def test_best_bid_and_best_ask(book_cls: BookFactory) -> None:
    book = book_cls()
    assert book.best_bid() is None
    assert book.best_ask() is None
    book.apply([(100, 1)], [])
    assert book.best_bid() == (100, 1)
    assert book.best_ask() is None
    book.apply([(101, 2), (99, 3)], [(110, 4), (105, 5), (120, 6)])
    assert book.best_bid() == (101, 2)
    assert book.best_ask() == (105, 5)
    book.apply([(101, 0)], [(105, 0)])
    assert book.best_bid() == (100, 1)
    assert book.best_ask() == (110, 4)


def test_top_ordering_and_n(book_cls: BookFactory) -> None:
    book = book_cls()
    book.apply(
        [(95, 5), (100, 10), (97, 7), (99, 9), (96, 6)],
        [(110, 10), (104, 4), (107, 7), (101, 1)],
    )
    assert book.top(BID) == [(100, 10), (99, 9), (97, 7), (96, 6), (95, 5)]
    assert book.top(ASK) == [(101, 1), (104, 4), (107, 7), (110, 10)]
    assert book.top(BID, 2) == [(100, 10), (99, 9)]
    assert book.top(ASK, 3) == [(101, 1), (104, 4), (107, 7)]
    assert book.top(BID, 0) == []
    assert book.top(ASK, 100) == book.top(ASK)  # n past the depth gives everything
    assert book.top(BID, -1) == book.top(BID)
    assert book.top(BID, -7) == book.top(BID)  # any negative n means all
    assert book.bids(2) == book.top(BID, 2)
    assert book.asks(1) == [(101, 1)]
    assert book.bid_depth == 5
    assert book.ask_depth == 4
    assert_consistent(book)


@pytest.mark.parametrize(
    ("side", "error", "message"),
    [
        (2, BookError, "side must be BID (0) or ASK (1), got 2"),
        (-1, BookError, "side must be BID (0) or ASK (1), got -1"),
        # A float side must not be truncated into a valid one (1.5 -> ASK).
        (1.5, TypeError, None),
    ],
)
def test_top_rejects_bad_side(
    book_cls: BookFactory, side: Any, error: type[Exception], message: str | None
) -> None:
    book = seeded(book_cls())
    with pytest.raises(error, match=None if message is None else re.escape(message)):
        book.top(side)


def test_snapshot_replaces_book(book_cls: BookFactory) -> None:
    book = seeded(book_cls())
    updates = book.updates
    crossed = book.load_snapshot(
        [(200, 1), (199, 0), (198, 2)],  # size 0 in a snapshot is just "absent"
        [(201, 3)],
        seq=42,
        exch_ts_ns=7,
        recv_ts_ns=8,
    )
    assert crossed is False
    assert book.bids() == [(200, 1), (198, 2)]
    assert book.asks() == [(201, 3)]
    assert (book.seq, book.exch_ts_ns, book.recv_ts_ns) == (42, 7, 8)
    assert book.updates == updates + 1
    # An empty snapshot empties the book.
    assert book.load_snapshot([], [], seq=43) is False
    assert (book.bids(), book.asks(), book.seq) == ([], [], 43)
    assert book.updates == updates + 2


def test_snapshot_reports_crossed_and_truncates(book_cls: BookFactory) -> None:
    book = book_cls(max_depth=2)
    crossed = book.load_snapshot([(100, 1), (99, 1), (98, 1)], [(100, 2), (101, 2), (102, 2)])
    assert crossed is True
    assert book.crossed is True
    assert book.bids() == [(100, 1), (99, 1)]
    assert book.asks() == [(100, 2), (101, 2)]


BAD_LEVELS: list[Any] = [
    pytest.param((BID, 100.0, 1), TypeError, "price must be an int, got float 100.0", id="float"),
    pytest.param((BID, 100, 1.5), TypeError, "size must be an int, got float 1.5", id="float-size"),
    pytest.param((ASK, "101", 1), TypeError, "price must be an int, got str '101'", id="str"),
    pytest.param((BID, 0, 1), BookError, "price must be a positive tick count, got 0", id="zero"),
    pytest.param((ASK, -5, 1), BookError, "price must be a positive tick count, got -5", id="neg"),
    pytest.param(
        (BID, 100, -1), BookError, "size must be a non-negative lot count, got -1", id="neg-size"
    ),
    pytest.param(
        (ASK, 2**63, 1), OverflowError, "price 9223372036854775808 does not fit in int64", id="ovf"
    ),
    pytest.param(
        (BID, 100, 2**63), OverflowError, "size 9223372036854775808 does not fit", id="ovf2"
    ),
    pytest.param(
        (ASK, -(2**63) - 1, 1), OverflowError, "price -9223372036854775809 does not fit", id="ovf3"
    ),
]


@pytest.mark.parametrize(("level", "error", "message"), BAD_LEVELS)
def test_bad_message_is_rejected_whole(
    book_cls: BookFactory, level: tuple[int, Any, Any], error: type[Exception], message: str
) -> None:
    book = seeded(book_cls())
    before = state(book)
    side, price, size = level
    # Good changes on both sides around the bad level: none of them may land.
    bids: list[Any] = [(100, 0), (97, 5)]
    asks: list[Any] = [(101, 99), (104, 5)]
    (bids if side == BID else asks).append((price, size))
    (bids if side == BID else asks).append((96, 1) if side == BID else (105, 1))
    with pytest.raises(error, match=re.escape(message)):
        book.apply(bids, asks, seq=6)
    assert state(book) == before
    with pytest.raises(error, match=re.escape(message)):
        book.load_snapshot(bids, asks, seq=6)
    assert state(book) == before


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"seq": 1.0}, TypeError, "seq must be an int, got float 1.0"),
        ({"exch_ts_ns": 2**63}, OverflowError, "exch_ts_ns 9223372036854775808 does not fit"),
        ({"recv_ts_ns": "0"}, TypeError, "recv_ts_ns must be an int, got str '0'"),
    ],
)
def test_bad_stamp_rejects_message(
    book_cls: BookFactory, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    book = seeded(book_cls())
    before = state(book)
    with pytest.raises(error, match=re.escape(message)):
        book.apply([(100, 0), (97, 1)], [(104, 1)], **kwargs)
    assert state(book) == before
    with pytest.raises(error, match=re.escape(message)):
        book.load_snapshot([(100, 1)], [], **kwargs)
    assert state(book) == before
    with pytest.raises(error, match=re.escape(message)):
        book.finish(**kwargs)
    assert state(book) == before


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((2, 100, 1), BookError, "side must be BID (0) or ASK (1), got 2"),
        ((-1, 100, 1), BookError, "side must be BID (0) or ASK (1), got -1"),
        # Sides past a C int must not wrap around into BID or ASK.
        ((2**32, 100, 1), BookError, "side must be BID (0) or ASK (1), got 4294967296"),
        ((2**32 + 1, 100, 1), BookError, "side must be BID (0) or ASK (1), got 4294967297"),
        ((2**63, 100, 1), OverflowError, "side 9223372036854775808 does not fit in int64"),
        ((1.0, 100, 1), TypeError, "side must be an int, got float 1.0"),
        ((BID, 100.5, 1), TypeError, "price must be an int, got float 100.5"),
        ((BID, 0, 1), BookError, "price must be a positive tick count, got 0"),
        ((ASK, 100, -3), BookError, "size must be a non-negative lot count, got -3"),
        ((ASK, 2**63, 1), OverflowError, "price 9223372036854775808 does not fit in int64"),
    ],
)
def test_set_rejects_bad_level(
    book_cls: BookFactory, args: tuple[Any, Any, Any], error: type[Exception], message: str
) -> None:
    book = seeded(book_cls())
    before = state(book)
    with pytest.raises(error, match=re.escape(message)):
        book.set(*args)
    assert state(book) == before


def test_book_errors_are_core_errors() -> None:
    assert issubclass(BookError, CoreError)
    assert issubclass(BookError, ValueError)


def test_extreme_int64_values_accepted(book_cls: BookFactory) -> None:
    book = book_cls()
    crossed = book.apply(
        [(1, INT64_MAX), (INT64_MAX - 1, 1)],
        [(INT64_MAX, INT64_MAX)],
        seq=INT64_MAX,
        exch_ts_ns=INT64_MIN,
        recv_ts_ns=INT64_MAX,
    )
    assert crossed is False
    assert book.bids() == [(INT64_MAX - 1, 1), (1, INT64_MAX)]
    assert book.asks() == [(INT64_MAX, INT64_MAX)]
    assert (book.seq, book.exch_ts_ns, book.recv_ts_ns) == (INT64_MAX, INT64_MIN, INT64_MAX)
    book.apply([(INT64_MAX, 1)], [])  # bid == ask at the top of the int64 range
    assert book.crossed is True


def test_clear(book_cls: BookFactory) -> None:
    book = seeded(book_cls(max_depth=10))
    book.apply([(105, 1)], [])  # crossed
    assert book.crossed is True
    updates = book.updates
    book.clear()
    assert state(book) == {
        "best_bid": None,
        "best_ask": None,
        "bids": [],
        "asks": [],
        "bid_depth": 0,
        "ask_depth": 0,
        "crossed": False,
        "seq": -1,
        "exch_ts_ns": 0,
        "recv_ts_ns": 0,
        "updates": updates,  # the counter keeps counting across clears
    }
    assert book.max_depth == 10
    seeded(book)
    assert book.updates == updates + 1
    assert book.bids() == [(100, 10), (99, 20), (98, 30)]


def test_stamps_and_update_counter(book_cls: BookFactory) -> None:
    book = book_cls()
    book.apply([(100, 1)], [], seq=7, exch_ts_ns=1_700_000_000_000_000_000, recv_ts_ns=5)
    assert (book.seq, book.exch_ts_ns, book.recv_ts_ns, book.updates) == (
        7,
        1_700_000_000_000_000_000,
        5,
        1,
    )
    book.apply([], [])  # an empty message still counts and resets the stamps to defaults
    assert (book.seq, book.exch_ts_ns, book.recv_ts_ns, book.updates) == (-1, 0, 0, 2)
    book.set(ASK, 101, 1)
    book.set(BID, 100, 0)
    assert book.updates == 2  # set() alone is not a message
    assert book.seq == -1
    assert book.finish(seq=9, exch_ts_ns=10, recv_ts_ns=11) is False
    assert (book.seq, book.exch_ts_ns, book.recv_ts_ns, book.updates) == (9, 10, 11, 3)
    assert book.bids() == []
    assert book.asks() == [(101, 1)]
    book.load_snapshot([(1, 1)], [], seq=12)
    assert (book.seq, book.updates) == (12, 4)
    book.clear()
    book.finish()
    assert (book.seq, book.updates) == (-1, 5)


def test_crossed_is_reported_not_repaired(book_cls: BookFactory) -> None:
    book = book_cls()
    assert book.apply([(105, 1)], [(100, 2)]) is True
    assert book.crossed is True
    # Nothing is removed to "fix" it: both sides keep their levels.
    assert book.best_bid() == (105, 1)
    assert book.best_ask() == (100, 2)
    # A locked book (bid == ask) counts as crossed.
    assert book.apply([(105, 0), (100, 3)], []) is True
    assert book.best_bid() == (100, 3)
    assert book.apply([(100, 0), (99, 1)], []) is False
    assert book.crossed is False
    # A one-sided book is never crossed, however high the bid.
    book.apply([(1_000, 1)], [(100, 0)])
    assert book.ask_depth == 0
    assert book.crossed is False


def test_crossed_only_updates_when_message_ends(book_cls: BookFactory) -> None:
    book = seeded(book_cls())
    book.set(BID, 200, 1)
    assert book.crossed is False  # not re-evaluated per level
    assert book.best_bid() == (200, 1)
    assert book.finish(seq=6) is True
    assert book.crossed is True
    book.set(BID, 200, 0)
    assert book.crossed is True
    assert book.finish() is False


def test_max_depth_truncates_at_end_of_message(book_cls: BookFactory) -> None:
    book = book_cls(max_depth=2)
    book.apply([(100, 1), (99, 2)], [(105, 1), (106, 2)])
    # A new best arrives and the old best leaves, in one message. Truncating per level
    # would drop 99 (and 106) as soon as the third level appears, then delete 100 (and
    # 105), leaving one level per side. Truncation at the end of the message keeps two.
    book.apply([(101, 5), (100, 0)], [(104, 5), (105, 0)])
    assert book.bids() == [(101, 5), (99, 2)]
    assert book.asks() == [(104, 5), (106, 2)]
    assert_consistent(book)


def test_max_depth_drops_worst_levels(book_cls: BookFactory) -> None:
    book = book_cls(max_depth=3)
    book.apply(
        [(90, 1), (95, 1), (100, 1), (85, 1), (99, 1)],
        [(110, 1), (101, 1), (120, 1), (105, 1)],
    )
    assert book.bids() == [(100, 1), (99, 1), (95, 1)]
    assert book.asks() == [(101, 1), (105, 1), (110, 1)]
    # A truncated level is gone for good: deleting a better level does not bring it back.
    book.apply([(100, 0)], [(101, 0)])
    assert book.bids() == [(99, 1), (95, 1)]
    assert book.asks() == [(105, 1), (110, 1)]


def test_set_is_not_truncated_until_finish(book_cls: BookFactory) -> None:
    book = book_cls(max_depth=1)
    book.set(BID, 100, 1)
    book.set(BID, 101, 1)
    book.set(BID, 102, 1)
    assert book.bid_depth == 3
    book.set(BID, 102, 0)
    assert book.finish() is False
    assert book.bids() == [(101, 1)]


# --- compiled only -----------------------------------------------------------------------


def _sizes(price: int) -> int:
    return price % 997 + 1


@pytest.mark.parametrize(
    ("order", "n"), [("shallow", 100_000), ("deep", 100_000), ("random", 20_000)]
)
def test_capacity_growth_and_full_drain(order: str, n: int) -> None:
    book = Book()
    base = 1_000_000
    prices = list(range(base, base + n))
    if order == "random":
        random.Random(n).shuffle(prices)
        bid_prices = ask_prices = prices
    elif order == "shallow":  # every insert is a new best
        bid_prices, ask_prices = prices, prices[::-1]
    else:  # every insert is a new worst
        bid_prices, ask_prices = prices[::-1], prices
    ask_offset = n  # asks above every bid: the book stays uncrossed
    for bid, ask in zip(bid_prices, ask_prices, strict=True):
        book.set(BID, bid, _sizes(bid))
        book.set(ASK, ask + ask_offset, _sizes(ask))
    assert book.finish() is False
    assert (book.bid_depth, book.ask_depth) == (n, n)
    assert min(book.capacity) >= n
    assert book.bids() == [(p, _sizes(p)) for p in range(base + n - 1, base - 1, -1)]
    assert book.asks() == [(p + ask_offset, _sizes(p)) for p in range(base, base + n)]
    # Drain it in the same order (shallow: from the best, deep: from the worst).
    for bid, ask in zip(bid_prices[::-1], ask_prices[::-1], strict=True):
        book.set(BID, bid, 0)
        book.set(ASK, ask + ask_offset, 0)
    assert book.finish() is False
    assert (book.bid_depth, book.ask_depth) == (0, 0)
    assert (book.best_bid(), book.best_ask()) == (None, None)
    assert (book.bids(), book.asks()) == ([], [])
    # The drained book is still usable.
    book.apply([(5, 1), (7, 2), (6, 3)], [(9, 1), (8, 2)])
    assert book.bids() == [(7, 2), (6, 3), (5, 1)]
    assert book.asks() == [(8, 2), (9, 1)]
    assert_consistent(book)


def test_memory_bounded_with_max_depth() -> None:
    max_depth = 10
    book = Book(max_depth=max_depth)
    ref = ReferenceBook(max_depth=max_depth)
    start_capacity = book.capacity
    rng = random.Random(2024)
    mid = 1_000_000
    for seq in range(30_000):
        mid += rng.choice((-2, -1, 0, 1, 2, 3))  # drifts up: the array window must slide
        # Delete what moved to the wrong side of mid, as a venue would, then add levels.
        bids: list[Level] = [(p, 0) for p, _ in book.bids() if p >= mid]
        asks: list[Level] = [(p, 0) for p, _ in book.asks() if p <= mid]
        bids += [(mid - rng.randint(1, 20), rng.randint(0, 9)) for _ in range(rng.randint(0, 4))]
        asks += [(mid + rng.randint(1, 20), rng.randint(0, 9)) for _ in range(rng.randint(0, 4))]
        assert book.apply(bids, asks, seq) == ref.apply(bids, asks, seq)
        assert book.bid_depth <= max_depth
        assert book.ask_depth <= max_depth
    assert state(book) == state(ref)
    assert book.capacity == start_capacity, "a depth-bounded book must not keep growing"


def random_packed_stream(
    rng: random.Random, n_msgs: int, mid: int, spread: int
) -> tuple[array[int], array[int]]:
    """(side, price, size) triplets and message ends, clustered around ``mid``."""
    words: array[int] = array("q")
    ends: array[int] = array("q")
    count = 0
    for _ in range(n_msgs):
        for _ in range(rng.choice((0, 1, 1, 2, 3, 6))):
            side = rng.randint(0, 1)
            deep = rng.random() < 0.1
            offset = rng.randint(-3, 2_000 if deep else spread)  # -3: some crossing levels
            price = mid - offset if side == BID else mid + offset
            size = 0 if rng.random() < 0.35 else rng.choice((rng.randint(1, 9), 2**62))
            words.extend((side, price, size))
            count += 1
        ends.append(count)
    return words, ends


@pytest.mark.parametrize("max_depth", [0, 1, 3, 10])
@pytest.mark.parametrize("mid", [2_100, 2**62])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_replay_packed_matches_reference(max_depth: int, mid: int, seed: int) -> None:
    rng = random.Random(seed)
    words, ends = random_packed_stream(rng, 3_000, mid, spread=25)
    book, ref = Book(max_depth), ReferenceBook(max_depth)
    # Start from a non-empty book so the replay also touches snapshot levels.
    snapshot_bids = [(mid - i, i) for i in range(1, 30)]
    snapshot_asks = [(mid + i, i) for i in range(1, 30)]
    book.load_snapshot(snapshot_bids, snapshot_asks)
    ref.load_snapshot(snapshot_bids, snapshot_asks)
    result = replay_packed(book, words, ends)
    expected = replay_packed_reference(ref, words, ends)
    assert result == expected
    assert state(book) == state(ref)
    assert book.seq == len(ends) - 1
    assert expected[1] > 0, "the stream should exercise crossed books"
    # The hash is order sensitive: replaying one message fewer must change it.
    shorter = replay_packed_reference(ReferenceBook(max_depth), words, ends[:-1])
    assert shorter[0] != replay_packed_reference(ReferenceBook(max_depth), words, ends)[0]


def test_replay_packed_empty_inputs() -> None:
    offset = 0xCBF29CE484222325
    empty: array[int] = array("q")
    assert replay_packed(Book(), empty, empty) == (offset, 0)
    assert replay_packed_reference(ReferenceBook(), empty, empty) == (offset, 0)
    # Empty messages still count and still fold four zero words into the hash.
    ends = array("q", [0, 0])
    book, ref = Book(), ReferenceBook()
    assert replay_packed(book, empty, ends) == replay_packed_reference(ref, empty, ends)
    assert book.updates == ref.updates == 2
    assert book.seq == 1


def test_replay_packed_hash_definition() -> None:
    # One message with a bid only: fold bp, bs, then two zero words for the empty ask side.
    prime, mask = 0x100000001B3, 2**64 - 1
    h = 0xCBF29CE484222325
    for word in (100, 5, 0, 0):
        h = ((h ^ word) * prime) & mask
    levels = array("q", [BID, 100, 5])
    ends = array("q", [1])
    assert replay_packed(Book(), levels, ends) == (h, 0)
    assert replay_packed_reference(ReferenceBook(), levels, ends) == (h, 0)


def _both(words: array[int], ends: array[int]) -> tuple[Book, ReferenceBook, str, str]:
    """Run the same bad replay on both books; return them and the two error messages."""
    book, ref = Book(), ReferenceBook()
    with pytest.raises(BookError) as got:
        replay_packed(book, words, ends)
    with pytest.raises(BookError) as want:
        replay_packed_reference(ref, words, ends)
    return book, ref, str(got.value), str(want.value)


def test_replay_packed_rejects_end_past_levels() -> None:
    book, ref, got, want = _both(array("q", [BID, 100, 1]), array("q", [2]))
    assert got == want == "ends[0] = 2 points past the end of levels"
    assert state(book) == state(ref)
    assert book.updates == 0
    # A trailing partial triplet does not count as a level.
    book, ref, got, want = _both(array("q", [BID, 100, 1, ASK, 105]), array("q", [1, 2]))
    assert got == want == "ends[1] = 2 points past the end of levels"
    assert book.updates == 0


def test_replay_packed_rejects_decreasing_ends() -> None:
    words = array("q", [BID, 100, 1, ASK, 105, 1])
    book, ref, got, want = _both(words, array("q", [2, 1]))
    assert got == want == "ends must not decrease (message 1)"
    # Every end is checked before anything is applied: the book is untouched.
    assert state(book) == state(ref)
    assert book.updates == 0
    book, ref, got, want = _both(words, array("q", [-1]))
    assert got == want == "ends must not decrease (message 0)"
    assert book.updates == 0


def test_replay_packed_rejects_bad_level() -> None:
    words = array("q", [BID, 100, 1, ASK, 0, 1, ASK, 105, 1])
    book, ref, got, want = _both(words, array("q", [1, 3]))
    assert got == want == "price must be a positive tick count, got 0"
    assert state(book) == state(ref)  # message 0 applied, message 1 not at all
    assert book.bids() == [(100, 1)]
    assert book.asks() == []


def test_replay_packed_never_reads_past_levels() -> None:
    # `levels` is a 1-triplet view into a larger buffer of valid levels, so reading past its
    # end is observable (the book picks up levels it was never given) instead of a crash.
    backing = array("q")
    for i in range(100):
        backing.extend((BID, 1_000 + i, 1))
    levels = memoryview(backing)[:3]
    ends = array("q", [50, 1])  # only the LAST end is inside the buffer
    book = Book()
    with pytest.raises(BookError) as info:
        replay_packed(book, levels, ends)
    assert book.updates == 0 and book.bid_depth == 0, (
        f"replay_packed applied {book.bid_depth} levels from outside the 1-triplet buffer "
        f"before raising {info.value!r}"
    )
    assert str(info.value) == "ends[0] = 50 points past the end of levels"


def test_replay_packed_huge_end_is_rejected() -> None:
    # 3 * 6148914691236517206 wraps to 2 in int64 arithmetic; the bounds check must not be
    # fooled into reading ~2**62 triplets. In a child process: the failure mode is a crash.
    code = textwrap.dedent(
        """
        from array import array
        from arbengine._core.book import Book, replay_packed
        from arbengine._core.errors import BookError
        book = Book()
        try:
            replay_packed(book, array("q", [0, 100, 1]), array("q", [6148914691236517206]))
        except BookError as exc:
            print("BookError:", exc, "| updates:", book.updates)
        else:
            print("no error")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, f"child crashed (rc {proc.returncode}): {proc.stderr[-500:]}"
    assert proc.stdout.strip() == (
        "BookError: ends[0] = 6148914691236517206 points past the end of levels | updates: 0"
    )


# --- differential: compiled vs reference on random streams ---------------------------------


@dataclass(frozen=True)
class Message:
    snapshot: bool
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    seq: int
    exch_ts_ns: int
    recv_ts_ns: int


@dataclass(frozen=True)
class SetThenFinish:
    levels: tuple[tuple[int, int, int], ...]
    seq: int


@dataclass(frozen=True)
class Clear:
    pass


@dataclass(frozen=True)
class BadMessage:
    snapshot: bool
    bids: tuple[tuple[Any, Any], ...]
    asks: tuple[tuple[Any, Any], ...]


Op = Message | SetThenFinish | Clear | BadMessage

_BAD_LEVEL = st.sampled_from([(0, 1), (-7, 1), (5, -1), (2**63, 1), (1.5, 1), (5, 2.0)])


@st.composite
def book_streams(draw: st.DrawFn) -> tuple[int, list[Op]]:
    """A max_depth and a stream of operations around one mid price.

    Most prices sit within a few ticks of mid, where venues update; some are deep. Offsets
    may go a few ticks past mid so crossed and locked books happen. Mid is drawn near 1,
    near 2**62, near INT64_MAX and anywhere in between, so keys use the whole int64 range.
    """
    max_depth = draw(st.sampled_from([0, 1, 3, 10]))
    # mid +- 3 must stay a valid price; deep levels are clamped to [1, INT64_MAX], which
    # also piles updates onto the extreme prices.
    mid = draw(
        st.one_of(
            st.integers(4, 40),
            st.integers(2**62 - 3_000, 2**62 + 3_000),
            st.integers(4, INT64_MAX - 3),
            st.integers(INT64_MAX - 40, INT64_MAX - 3),
        )
    )
    offset = st.one_of(st.integers(-3, 12), st.integers(-3, 12), st.integers(0, 1_000))
    bid_price = offset.map(lambda o: max(1, mid - o))
    ask_price = offset.map(lambda o: min(INT64_MAX, mid + o))
    size = st.one_of(st.just(0), st.integers(1, 9), st.integers(1, 2**62))
    bid = st.tuples(bid_price, size)
    ask = st.tuples(ask_price, size)
    bids = st.lists(bid, max_size=8).map(tuple)
    asks = st.lists(ask, max_size=8).map(tuple)
    stamp = st.integers(INT64_MIN, INT64_MAX)

    snapshot = st.sampled_from([False, False, False, True])  # mostly incremental updates
    message = st.builds(Message, snapshot, bids, asks, stamp, stamp, stamp)
    side_level = st.one_of(
        st.tuples(st.just(BID), bid_price, size),
        st.tuples(st.just(ASK), ask_price, size),
    )
    set_finish = st.builds(SetThenFinish, st.lists(side_level, max_size=6).map(tuple), stamp)

    @st.composite
    def bad_message(inner: st.DrawFn) -> BadMessage:
        good_bids: list[Any] = list(inner(bids))
        good_asks: list[Any] = list(inner(asks))
        target = good_bids if inner(st.booleans()) else good_asks
        target.insert(inner(st.integers(0, len(target))), inner(_BAD_LEVEL))
        return BadMessage(inner(st.booleans()), tuple(good_bids), tuple(good_asks))

    op: st.SearchStrategy[Op] = st.one_of(
        message, message, message, set_finish, st.just(Clear()), bad_message()
    )
    return max_depth, draw(st.lists(op, max_size=25))


def run_op(book: L2Book, op: Op, after_set: list[dict[str, object]]) -> object:
    """Apply ``op``; returns the result, or (exception type, message) when it raised."""
    try:
        if isinstance(op, Message):
            call = book.load_snapshot if op.snapshot else book.apply
            return call(op.bids, op.asks, op.seq, op.exch_ts_ns, op.recv_ts_ns)
        if isinstance(op, SetThenFinish):
            for side, price, size in op.levels:
                book.set(side, price, size)
                after_set.append(state(book))  # mid-message state must agree too
            return book.finish(op.seq)
        if isinstance(op, Clear):
            book.clear()
            return None
        call = book.load_snapshot if op.snapshot else book.apply
        return call(op.bids, op.asks)
    except (CoreError, TypeError, OverflowError) as exc:
        return (type(exc), str(exc))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(book_streams())
@example((2, [Message(False, ((100, 1), (99, 2)), ((105, 1), (106, 2)), 0, 0, 0),
              Message(False, ((101, 5), (100, 0)), ((104, 5), (105, 0)), 1, 0, 0)]))  # fmt: skip
def test_differential_against_reference(stream: tuple[int, list[Op]]) -> None:
    max_depth, ops = stream
    book, ref = Book(max_depth), ReferenceBook(max_depth)
    for i, op in enumerate(ops):
        book_sets: list[dict[str, object]] = []
        ref_sets: list[dict[str, object]] = []
        before = state(ref)
        got = run_op(book, op, book_sets)
        want = run_op(ref, op, ref_sets)
        assert got == want, f"step {i}: {op}"
        assert book_sets == ref_sets, f"step {i}: {op}"
        assert state(book) == state(ref), f"step {i}: {op}"
        if isinstance(op, BadMessage):
            assert isinstance(want, tuple), f"step {i}: bad message accepted"
            assert state(ref) == before, f"step {i}: bad message half-applied"
        if max_depth:  # every op ends with a finished message (or changes nothing)
            assert book.bid_depth <= max_depth and book.ask_depth <= max_depth
        assert_consistent(book)
