"""The L2 book against real recorded Binance data (spot and USDⓈ-M BTCUSDT, 2024-08-08).

About six minutes of diff-depth events per venue (tests/data/binance/ORIGIN.md), synced by
Binance's documented procedure (tests/binance_depth.py). The expected values are facts of the
recording, also checked independently in the shared data's README: 0 gaps, never crossed, final
best bid/ask spot 61685.99 / 61686.00 and USDⓈ-M 61659.7 / 61659.8.

Both the compiled Book and the pure-Python reference book must reproduce them, and the two must
agree level for level, with the reference as the oracle.
"""

from __future__ import annotations

from decimal import Decimal
from functools import cache

import pytest

from arbengine._core.book import Book
from arbengine._core.errors import FixedPointError
from tests.binance_depth import INSTRUMENTS, SPOT, Market, SyncResult, load, sync
from tests.reference.book import BookFactory, L2Book, ReferenceBook

MARKETS: tuple[Market, ...] = ("spot", "usdm")

# Facts of the recordings (counted by hand with a separate script, see the module docstring).
TOTAL_EVENTS: dict[Market, int] = {"spot": 3451, "usdm": 6551}
BUFFERED: dict[Market, int] = {"spot": 3, "usdm": 6}  # depth events before the snapshot line
DROPPED: dict[Market, int] = {"spot": 2, "usdm": 4}  # of those, older than the snapshot
FINAL_TOP: dict[Market, tuple[str, str]] = {
    "spot": ("61685.99", "61686.00"),
    "usdm": ("61659.7", "61659.8"),
}


@cache
def synced(market: Market, book_cls: BookFactory) -> tuple[SyncResult, L2Book]:
    """One replay per (market, implementation) per session: the tests only read the books."""
    return sync(load(market), book_cls)


@pytest.mark.parametrize("market", MARKETS)
def test_fixture_parses_on_the_instrument_grids(market: Market) -> None:
    # load() converts every price and size with Grid.parse, which raises on any text off the
    # grid, so getting here means the whole recording is on tick and book-lot grids.
    rec = load(market)
    inst = INSTRUMENTS[market]
    assert len(rec.events) == TOTAL_EVENTS[market]
    assert rec.events_before_snapshot == BUFFERED[market]
    assert (len(rec.snapshot.bids), len(rec.snapshot.asks)) == (1000, 1000)
    # The converse: the grids are not finer than the data, i.e. the last decimal of each grid
    # is used (a 0.001 tick would also parse everything, but would be the wrong instrument).
    prices = [p for ev in rec.events for p, _ in ev.bids + ev.asks]
    sizes = [q for ev in rec.events for _, q in ev.bids + ev.asks]
    assert any(p % 10 for p in prices), inst.tick
    assert any(q % 10 for q in sizes), inst.book_lot


def test_spot_book_sizes_are_finer_than_the_order_lot() -> None:
    """Real spot depth has sizes off the 0.00001 order lot (a parser on the lot would raise).

    Three far-from-touch asks carry six-decimal sizes: resting orders placed when BTCUSDT had a
    finer step, most likely. A feed handler must parse book sizes on a grid at least as fine
    as 0.000001, and keep 0.00001 for orders only.
    """
    rec = load("spot")
    per_lot = SPOT.book_lot.format(1)  # "0.000001"
    ratio = Decimal(SPOT.lot.step) / Decimal(per_lot)
    assert ratio == 10
    off_lot = sorted(
        (SPOT.tick.format(p), SPOT.book_lot.format(q))
        for ev in rec.events
        for p, q in ev.asks + ev.bids
        if q % int(ratio)
    )
    assert off_lot == [
        ("200000.00", "25.426189"),
        ("74000.00", "93.756587"),
        ("80000.00", "244.566304"),
    ]
    with pytest.raises(FixedPointError, match=r"off the 0\.00001 grid"):
        SPOT.lot.parse("25.42618900")  # the text as received


@pytest.mark.parametrize("market", MARKETS)
def test_sync_reproduces_the_recorded_book(market: Market, book_cls: BookFactory) -> None:
    # book_cls (tests/conftest.py): the compiled Book, then the reference. Both must
    # reproduce the recording's known facts; the reference passing too validates the oracle.
    r, book = synced(market, book_cls)
    assert r.gaps == ()
    assert r.crossed_count == 0, f"first crossed after event {r.first_crossed}"
    assert r.total_events == TOTAL_EVENTS[market]
    assert r.buffered == BUFFERED[market]
    assert r.dropped == DROPPED[market]
    assert r.skipped == 0
    # Every depth event is accounted for: applied, or dropped as already in the snapshot.
    assert r.applied + r.dropped == r.total_events
    assert (r.snapshot_bid_levels, r.snapshot_ask_levels) == (1000, 1000)

    # The event that bridged the snapshot satisfies the venue's rule, spelled out here again.
    first = r.first_applied
    assert first is not None
    lid = r.snapshot_update_id
    if market == "spot":
        assert first.first_id <= lid + 1 <= first.last_id
    else:
        assert first.first_id <= lid <= first.last_id

    expected_bid, expected_ask = FINAL_TOP[market]
    assert r.best_bid is not None
    assert r.best_ask is not None
    assert Decimal(r.best_bid) == Decimal(expected_bid)
    assert Decimal(r.best_ask) == Decimal(expected_ask)
    # Not crossed at the end either, read straight from the book.
    bid, ask = book.best_bid(), book.best_ask()
    assert bid is not None
    assert ask is not None
    assert bid[0] < ask[0]


@pytest.mark.parametrize("market", MARKETS)
def test_compiled_book_matches_the_reference(market: Market) -> None:
    ours, book = synced(market, Book)
    oracle, ref = synced(market, ReferenceBook)
    # Top of book after every single event, then the final book level by level.
    assert ours.top_trace == oracle.top_trace
    assert book.bids(20) == ref.bids(20)
    assert book.asks(20) == ref.asks(20)
    assert (book.bid_depth, book.ask_depth) == (ref.bid_depth, ref.ask_depth)
    assert book.bids() == ref.bids()
    assert book.asks() == ref.asks()


@pytest.mark.parametrize("market", MARKETS)
def test_book_is_stamped_with_the_last_event(market: Market, book_cls: BookFactory) -> None:
    r, book = synced(market, book_cls)
    last = load(market).events[-1]
    assert book.seq == last.last_id == r.last_update_id
    assert book.exch_ts_ns == last.exch_ns
    assert book.recv_ts_ns == last.recv_ns
    assert book.updates == r.applied + 1  # + the snapshot
    assert not book.crossed


@pytest.mark.parametrize("market", MARKETS)
def test_lost_event_mid_stream_is_detected_where_it_happened(market: Market) -> None:
    rec = load(market)
    k = len(rec.events) // 2
    assert k > rec.events_before_snapshot + 1  # well after the bridge
    lost, after = rec.events[k], rec.events[k + 1]
    r, _ = sync(rec.without_event(k), Book)

    assert len(r.gaps) == 1
    gap = r.gaps[0]
    # Reported at the first event after the hole (index k of the stream as fed).
    assert gap.index == k
    assert (gap.first_id, gap.last_id) == (after.first_id, after.last_id)
    assert gap.recv_ns == after.recv_ns
    if market == "spot":
        assert gap.rule == "U == prev_u + 1"
        assert (gap.expected, gap.got) == (lost.first_id, after.first_id)
    else:
        assert gap.rule == "pu == prev_u"
        assert (gap.expected, gap.got) == (lost.prev_id, after.prev_id)
    # Nothing is applied from the gap on (the book is invalid until a new snapshot), and the
    # stream's own chain is followed on, so the one hole is reported once.
    assert r.applied == k - DROPPED[market]
    assert r.skipped == len(rec.events) - 1 - k
    assert r.applied + r.dropped + r.skipped == r.total_events == len(rec.events) - 1
    assert r.last_update_id is None


@pytest.mark.parametrize("market", MARKETS)
def test_lost_bridging_event_is_detected_at_the_snapshot(market: Market) -> None:
    rec = load(market)
    ok, _ = synced(market, Book)
    assert ok.first_applied is not None
    k = rec.events.index(ok.first_applied)
    r, _ = sync(rec.without_event(k), Book)

    assert len(r.gaps) == 1
    gap = r.gaps[0]
    assert gap.index == k
    assert gap.first_id == rec.events[k + 1].first_id
    # The next event starts after the id the snapshot needs next: the bridge is missing.
    assert gap.got > gap.expected
    bridge = "U <= lastUpdateId+1 <= u" if market == "spot" else "U <= lastUpdateId <= u"
    assert gap.rule == bridge
    assert r.applied == 0
    assert r.first_applied is None
