"""The compiled book's ladder window against the reference, where the window must move.

The book holds WINDOW (4096) consecutive price ticks per side in a ring, with deeper levels in
an overflow array. These streams walk and jump the market across many windows, up and down,
fill deep books that straddle the window edge, empty a side and refill it, and run at the ends
of the int64 price range, comparing the whole book with the reference after every message.
"""

from __future__ import annotations

import random
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbengine._core.book import ASK, BID, Book, replay_packed
from arbengine._core.errors import BookError
from tests.reference.book import INT64_MAX, Level, ReferenceBook

WINDOW = 4096


def full_state(book: Book | ReferenceBook) -> tuple[object, ...]:
    return (
        book.bids(),
        book.asks(),
        book.best_bid(),
        book.best_ask(),
        book.bid_depth,
        book.ask_depth,
        book.crossed,
    )


def run_walk(seed: int, start: int, messages: int, jump: int, max_depth: int) -> None:
    rng = random.Random(seed)
    book, ref = Book(max_depth=max_depth), ReferenceBook(max_depth=max_depth)
    mid = start
    for seq in range(messages):
        r = rng.random()
        if r < 0.05:
            mid += rng.choice((-1, 1)) * rng.randint(WINDOW // 2, jump)  # a jump
        else:
            mid += rng.randint(-40, 40)  # a walk
        mid = min(max(mid, 10), INT64_MAX - 10 * WINDOW)
        bids: list[Level] = []
        asks: list[Level] = []
        # Keep the feed uncrossed, as a venue would: clear what the mid moved through.
        bids += [(p, 0) for p, _ in book.bids() if p >= mid]
        asks += [(p, 0) for p, _ in book.asks() if p <= mid]
        for _ in range(rng.randint(1, 25)):
            # Mostly near the top, some deep enough to live in the overflow.
            depth = rng.randint(1, 30) if rng.random() < 0.8 else rng.randint(30, 3 * WINDOW)
            size = 0 if rng.random() < 0.15 else rng.randint(1, 1_000)
            if rng.random() < 0.5:
                bids.append((max(1, mid - depth), size))
            else:
                asks.append((mid + depth, size))
        if rng.random() < 0.01:
            # Empty one side entirely; the next messages refill it.
            if rng.random() < 0.5:
                bids += [(p, 0) for p, _ in book.bids()]
            else:
                asks += [(p, 0) for p, _ in book.asks()]
        assert book.apply(bids, asks, seq) == ref.apply(bids, asks, seq)
        assert full_state(book) == full_state(ref), f"diverged at message {seq}"


@pytest.mark.parametrize("max_depth", [0, 1, 10, 500])
@pytest.mark.parametrize(
    "start", [5 * WINDOW, 10**12, INT64_MAX - 50 * WINDOW], ids=["low", "mid", "high"]
)
def test_walks_and_jumps_across_windows(start: int, max_depth: int) -> None:
    run_walk(
        seed=start % 9973 + max_depth,
        start=start,
        messages=600,
        jump=20 * WINDOW,
        max_depth=max_depth,
    )


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    start=st.one_of(st.integers(10, 3 * WINDOW), st.integers(10, INT64_MAX - 100 * WINDOW)),
    jump=st.sampled_from([WINDOW // 2 + 1, WINDOW, 3 * WINDOW, 40 * WINDOW]),
    max_depth=st.sampled_from([0, 0, 2, 25]),
)
def test_random_walks_match_reference(seed: int, start: int, jump: int, max_depth: int) -> None:
    run_walk(seed, start, messages=120, jump=jump, max_depth=max_depth)


def test_deep_book_straddling_the_window_edge_iterates_in_order() -> None:
    book, ref = Book(), ReferenceBook()
    # 3 windows deep on both sides: most of it in the overflow, the top in the ladder.
    bids = [(1_000_000 - i, i % 7 + 1) for i in range(3 * WINDOW)]
    asks = [(1_000_001 + i, i % 5 + 1) for i in range(3 * WINDOW)]
    book.load_snapshot(bids, asks, 1)
    ref.load_snapshot(bids, asks, 1)
    assert full_state(book) == full_state(ref)
    # Delete the top levels one by one: the window must refill from the overflow.
    for i in range(2 * WINDOW):
        level: list[Level] = [(1_000_000 - i, 0)]
        book.apply(level, [], i)
        ref.apply(level, [], i)
        assert book.best_bid() == ref.best_bid()
    assert full_state(book) == full_state(ref)


def test_extreme_keys() -> None:
    # Asks near INT64_MAX have keys near INT64_MIN: the window base clamps there.
    book, ref = Book(), ReferenceBook()
    for bk in (book, ref):
        bk.apply([(1, 5), (2, 6)], [(INT64_MAX, 1), (INT64_MAX - 1, 2), (INT64_MAX - 9_999, 3)])
        bk.apply([(2, 0)], [(INT64_MAX - 1, 0)])
        bk.set(ASK, INT64_MAX - 5_000, 4)
        bk.set(BID, 7_000, 1)
        bk.finish(3)
    assert full_state(book) == full_state(ref)
    assert book.asks()[0] == (INT64_MAX - 9_999, 3)
    assert book.bids()[0] == (7_000, 1)


@pytest.mark.parametrize("good_levels", [1, 5, 63, 64, 200])
def test_bad_level_late_in_a_message_rolls_the_message_back(good_levels: int) -> None:
    # replay_packed applies each message through the cdef path in one call. A bad level
    # after good ones must leave the book exactly as the previous message left it, whether
    # the message is short enough for the undo log or validated up front.
    rng = random.Random(good_levels)
    base: list[int] = []
    for i in range(50):
        base += [BID, 1_000_000 - i, 10 + i, ASK, 1_000_001 + i, 20 + i]
    changes: list[int] = []
    for _ in range(good_levels):
        kind = rng.random()
        if kind < 0.2:  # delete the best or a level near it
            changes += [BID, 1_000_000 - rng.randint(0, 3), 0]
        elif kind < 0.3:  # a new best far above the window: the ladder slides
            changes += [ASK, 1_000_001 - 1, 5] if rng.random() < 0.5 else [BID, 1_000_000, 7]
            changes += [BID, 1_000_000 + 10 * WINDOW, 3, BID, 1_000_000 + 10 * WINDOW, 0]
        elif kind < 0.4:  # deep, in the overflow
            changes += [ASK, 1_000_001 + 3 * WINDOW + rng.randint(0, 99), rng.randint(0, 9)]
        else:  # update or insert near the top
            side = rng.choice((BID, ASK))
            price = (
                1_000_000 - rng.randint(0, 60) if side == BID else 1_000_001 + rng.randint(0, 60)
            )
            changes += [side, price, rng.randint(0, 50)]
    bad = [ASK, 0, 1]
    levels = array("q", base + changes + bad)
    ends = array("q", [len(base) // 3, len(levels) // 3])
    book = Book()
    first = Book()
    replay_packed(first, array("q", base), array("q", [len(base) // 3]))
    with pytest.raises(BookError, match="price must be a positive tick count"):
        replay_packed(book, levels, ends)
    assert full_state(book) == full_state(first)
    assert book.updates == 1
