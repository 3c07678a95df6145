"""The paper gateway against real compiled books, on both event loops (see conftest).

Expected balances are worked out by hand in the comments and written as decimal text.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from arbengine._core.book import Book
from arbengine._core.instrument import Instrument
from arbengine.orders import (
    Fill,
    Gateway,
    Order,
    OrderStatus,
    Side,
    TimeInForce,
    atoms,
)
from arbengine.portfolio import Portfolio
from arbengine.venues.paper import (
    BOOK_NOT_LIVE,
    FOK_NOT_FILLABLE,
    INJECTED_REJECT,
    INSUFFICIENT_BALANCE,
    IOC_NOTHING,
    IOC_REMAINDER,
    PaperGateway,
    walk,
)

VENUE = "paper"
INST = Instrument(
    VENUE, "BTCUSDT", "BTC", "USDT", tick="0.01", lot="0.001", min_size="0.002", min_notional="10"
)
# Binance style: the book's size grid (0.00001) is finer than the order lot (0.001).
FINE = Instrument(VENUE, "ETHUSDT", "ETH", "USDT", tick="0.01", lot="0.001", size_step="0.00001")
BPS10 = Decimal(10)


def px(text: str, inst: Instrument = INST) -> int:
    return inst.price.parse(text)


def sz(text: str, inst: Instrument = INST) -> int:
    return inst.size.parse(text)


def book(
    asks: list[tuple[str, str]], bids: tuple[tuple[str, str], ...] = (), inst: Instrument = INST
) -> Book:
    b = Book(name=inst.name)
    b.apply(
        [(px(p, inst), sz(s, inst)) for p, s in bids],
        [(px(p, inst), sz(s, inst)) for p, s in asks],
        seq=1,
    )
    return b


ASKS = [("60000", "0.1"), ("60001", "0.2"), ("60002", "0.3"), ("60003", "5")]
BIDS = (("59999", "0.1"), ("59998", "0.1"), ("59997", "1"))


def order(
    side: Side,
    price: str,
    size: str,
    cid: str,
    tif: TimeInForce = TimeInForce.IOC,
    inst: Instrument = INST,
) -> Order:
    return Order(cid, "arb-1", inst, side, px(price, inst), sz(size, inst), tif)


@dataclass
class Event:
    kind: str  # "ack" | "fill" | "done"
    client_id: str
    ts_ns: int
    fill: Fill | None = None
    status: OrderStatus | None = None
    reason: str = ""
    usdt: int = 0  # the portfolio's USDT balance when the listener heard of it
    held: int = 0  # and the USDT it had reserved


@dataclass
class Recorder:
    """An OrderEvents listener that keeps everything, and futures for the done reports."""

    portfolio: Portfolio
    events: list[Event] = field(default_factory=list)
    _done: dict[str, asyncio.Future[Event]] = field(default_factory=dict)

    def _usdt(self) -> int:
        return self.portfolio.balance(VENUE, "USDT")

    def _future(self, cid: str) -> asyncio.Future[Event]:
        if cid not in self._done:
            self._done[cid] = asyncio.get_running_loop().create_future()
        return self._done[cid]

    def _held(self) -> int:
        return self.portfolio.reserved(VENUE, "USDT")

    def on_ack(self, order: Order, ts_ns: int) -> None:
        self.events.append(
            Event("ack", order.client_id, ts_ns, usdt=self._usdt(), held=self._held())
        )

    def on_fill(self, order: Order, fill: Fill) -> None:
        self.events.append(
            Event("fill", order.client_id, fill.ts_ns, fill, usdt=self._usdt(), held=self._held())
        )

    def on_done(self, order: Order, status: OrderStatus, reason: str, ts_ns: int) -> None:
        event = Event(
            "done", order.client_id, ts_ns, None, status, reason, self._usdt(), self._held()
        )
        self.events.append(event)
        self._future(order.client_id).set_result(event)

    async def done(self, cid: str, timeout: float = 2.0) -> Event:
        return await asyncio.wait_for(self._future(cid), timeout)

    def of(self, cid: str) -> list[Event]:
        return [e for e in self.events if e.client_id == cid]

    def fills(self, cid: str) -> list[Fill]:
        return [e.fill for e in self.events if e.client_id == cid and e.fill is not None]


async def until(cond: Callable[[], bool], timeout: float = 2.0) -> None:
    """Wait for ``cond`` (polling: no fixed sleep that a slow machine could outrun)."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.001)


async def arrived(gw: PaperGateway, cid: str) -> Order:
    """The venue's copy once the order has reached it (query takes no time at latency 0)."""
    deadline = time.monotonic() + 2.0
    while (seen := await gw.query(cid)) is None:
        assert time.monotonic() < deadline, "order never arrived"
        await asyncio.sleep(0.001)
    return seen


@dataclass
class Venue:
    gateway: PaperGateway
    portfolio: Portfolio
    events: Recorder
    books: dict[str, Book]


def venue(
    usdt: str = "100000",
    btc: str = "0",
    books: dict[str, Book] | None = None,
    **kwargs: float | int | None,
) -> Venue:
    p = Portfolio({(VENUE, "USDT"): atoms(usdt), (VENUE, "BTC"): atoms(btc)})
    live = books if books is not None else {"BTCUSDT": book(ASKS, BIDS)}
    gw = PaperGateway(VENUE, live.get, p, fee_bps=BPS10, **kwargs)  # type: ignore[arg-type]
    events = Recorder(p)
    gw.set_listener(events)
    return Venue(gw, p, events, live)


def test_is_a_gateway() -> None:
    gw: Gateway = venue().gateway  # checked by mypy
    assert gw.venue == VENUE


# --- matching ----------------------------------------------------------------------------------


async def test_ioc_buy_walks_three_levels_and_cancels_the_rest() -> None:
    v = venue()
    o = order(Side.BUY, "60002", "1", "o1")
    v.gateway.submit(o)
    assert v.events.events == []  # never called back from inside submit
    # submit only hands the order off: the venue holds nothing until it arrives.
    assert v.portfolio.reserved(VENUE, "USDT") == 0
    done = await v.events.done("o1")
    assert [e.kind for e in v.events.of("o1")] == ["ack", "fill", "fill", "fill", "done"]
    # On arrival: 1 x 60002 = 60002 + 10 bps (60.002) held, shrunk by each fill to what is
    # still unfilled at the limit (0.9, 0.7, 0.4 x 60002 + 10 bps), released when done.
    assert [e.held for e in v.events.of("o1")] == [
        atoms("60062.002"),
        atoms("54055.8018"),
        atoms("42043.4014"),
        atoms("24024.8008"),
        0,
    ]
    fills = v.events.fills("o1")
    # One fill per level at that level's price, up to the limit 60002; 60003 is not touched.
    assert [(f.price, f.size) for f in fills] == [
        (px("60000"), sz("0.1")),
        (px("60001"), sz("0.2")),
        (px("60002"), sz("0.3")),
    ]
    # Fees at 10 bps: 6000 -> 6, 12000.2 -> 12.0002, 18000.6 -> 18.0006.
    assert [f.fee for f in fills] == [atoms("6"), atoms("12.0002"), atoms("18.0006")]
    assert {f.fee_asset for f in fills} == {"USDT"}
    assert len({f.trade_id for f in fills}) == 3
    assert (done.status, done.reason) == (OrderStatus.CANCELED, IOC_REMAINDER)
    # 100000 - (6000 + 12000.2 + 18000.6) - (6 + 12.0002 + 18.0006)
    assert v.portfolio.balance(VENUE, "USDT") == atoms("63963.1992")
    assert v.portfolio.balance(VENUE, "BTC") == atoms("0.6")
    assert v.portfolio.fees_paid("USDT") == atoms("36.0008")
    # The listener heard of each fill with the portfolio already updated.
    assert [e.usdt for e in v.events.of("o1") if e.kind == "fill"] == [
        atoms("93994"),  # 100000 - 6000 - 6
        atoms("81981.7998"),  # - 12000.2 - 12.0002
        atoms("63963.1992"),  # - 18000.6 - 18.0006
    ]
    assert v.portfolio.reserved(VENUE, "USDT") == 0
    assert v.portfolio.open_orders(VENUE) == 0
    # The caller's order is the listener's to update; the venue's copy has everything.
    assert (o.status, o.filled, o.fills) == (OrderStatus.NEW, 0, [])
    seen = await v.gateway.query("o1")
    assert seen is not None
    assert (seen.status, seen.filled, seen.reason) == (OrderStatus.CANCELED, sz("0.6"), done.reason)
    assert seen.fills == fills
    assert seen.cost == sum(f.price * f.size for f in fills)
    assert seen.fee == atoms("36.0008")
    assert seen.venue_order_id


async def test_paper_fills_leave_the_real_book_alone() -> None:
    v = venue()
    before = (v.books["BTCUSDT"].asks(), v.books["BTCUSDT"].bids())
    for cid in ("a", "b"):
        v.gateway.submit(order(Side.BUY, "60000", "0.1", cid))
        await v.events.done(cid)
    assert (v.books["BTCUSDT"].asks(), v.books["BTCUSDT"].bids()) == before
    # Both took the same 0.1 at 60000: the book is the venue's, not ours.
    for cid in ("a", "b"):
        assert [(f.price, f.size, f.fee) for f in v.events.fills(cid)] == [
            (px("60000"), sz("0.1"), atoms("6"))
        ]


async def test_fok_fills_completely_or_not_at_all() -> None:
    v = venue()
    # 0.1 + 0.2 + 0.3 = 0.6 is all there is up to 60002: 0.7 cannot fill.
    v.gateway.submit(order(Side.BUY, "60002", "0.7", "fok1", TimeInForce.FOK))
    done = await v.events.done("fok1")
    assert (done.status, done.reason) == (OrderStatus.CANCELED, FOK_NOT_FILLABLE)
    assert [e.kind for e in v.events.of("fok1")] == ["ack", "done"]
    assert v.portfolio.balance(VENUE, "USDT") == atoms("100000")
    assert v.portfolio.reserved(VENUE, "USDT") == 0
    v.gateway.submit(order(Side.BUY, "60002", "0.6", "fok2", TimeInForce.FOK))
    done = await v.events.done("fok2")
    assert (done.status, done.reason) == (OrderStatus.FILLED, "")
    assert len(v.events.fills("fok2")) == 3
    assert v.portfolio.balance(VENUE, "BTC") == atoms("0.6")


async def test_sell_respects_its_limit_price() -> None:
    v = venue(btc="1")
    v.gateway.submit(order(Side.SELL, "59998", "0.5", "s1"))
    done = await v.events.done("s1")
    # Bids 59999 x 0.1 and 59998 x 0.1 are at or above the limit; 59997 is not.
    assert [(f.price, f.size) for f in v.events.fills("s1")] == [
        (px("59999"), sz("0.1")),
        (px("59998"), sz("0.1")),
    ]
    assert done.status is OrderStatus.CANCELED
    # + 5999.9 + 5999.8 proceeds, - 5.9999 - 5.9998 fees
    assert v.portfolio.balance(VENUE, "USDT") == atoms("111987.7003")
    assert v.portfolio.balance(VENUE, "BTC") == atoms("0.8")
    # A buy limited below the best ask takes nothing.
    v.gateway.submit(order(Side.BUY, "59999.99", "0.1", "b1"))
    done = await v.events.done("b1")
    assert (done.status, done.reason) == (OrderStatus.CANCELED, IOC_NOTHING)
    assert v.events.fills("b1") == []


def test_walk_reads_deep_books_in_chunks() -> None:
    deep = book([(str(60000 + i), "0.001") for i in range(40)])
    taken = walk(deep, Side.BUY, px("60029"), sz("1"))
    assert taken == [(px(str(60000 + i)), sz("0.001")) for i in range(30)]
    assert walk(deep, Side.BUY, px("70000"), sz("0.003")) == taken[:3]
    assert walk(deep, Side.SELL, px("1"), sz("1")) == []  # no bids


# --- refusals ----------------------------------------------------------------------------------


async def test_insufficient_balance_is_rejected_and_exact_balance_is_enough() -> None:
    # 0.1 x 60000 = 6000 + 6 fee: 6005.999999999999999999 USDT is one atom short.
    v = venue(usdt="6005.999999999999999999")
    v.gateway.submit(order(Side.BUY, "60000", "0.1", "short"))
    done = await v.events.done("short")
    assert (done.status, done.reason) == (OrderStatus.REJECTED, INSUFFICIENT_BALANCE)
    assert [e.kind for e in v.events.of("short")] == ["done"]  # a reject is not acked
    assert v.portfolio.reserved(VENUE, "USDT") == 0
    v.portfolio.deposit(VENUE, "USDT", 1)
    v.gateway.submit(order(Side.BUY, "60000", "0.1", "exact"))
    assert (await v.events.done("exact")).status is OrderStatus.FILLED
    assert v.portfolio.balance(VENUE, "USDT") == 0
    # A sell needs the base on this venue: 0.1 BTC held, 0.2 asked.
    v.gateway.submit(order(Side.SELL, "59998", "0.2", "sell"))
    done = await v.events.done("sell")
    assert (done.status, done.reason) == (OrderStatus.REJECTED, INSUFFICIENT_BALANCE)
    assert v.portfolio.balance(VENUE, "BTC") == atoms("0.1")


async def test_a_derivative_sells_short_and_needs_only_its_fee() -> None:
    perp = Instrument(VENUE, "BTCUSDT", "BTC", "USDT", tick="0.01", lot="0.001", derivative=True)
    # 0.1 @ 59999 on the bid: fee 10 bps of 5999.9 = 5.9999 USDT; one atom less is short.
    v = venue(usdt="5.999899999999999999", books={"BTCUSDT": book(ASKS, BIDS, perp)})
    v.gateway.submit(order(Side.SELL, "59999", "0.1", "short", inst=perp))
    done = await v.events.done("short")
    assert (done.status, done.reason) == (OrderStatus.REJECTED, INSUFFICIENT_BALANCE)
    v.portfolio.deposit(VENUE, "USDT", 1)
    v.gateway.submit(order(Side.SELL, "59999", "0.1", "sold", inst=perp))
    assert (await v.events.done("sold")).status is OrderStatus.FILLED
    # No BTC was held: the position is a 0.1 short; the wallet paid the fee and is empty.
    assert v.portfolio.balance(VENUE, "BTC") == -atoms("0.1")
    assert v.portfolio.balance(VENUE, "USDT") == 0
    # Closing it (0.1 @ 60000: a 0.1 loss, fee 6) needs the fee, not the 6000 notional.
    v.portfolio.deposit(VENUE, "USDT", atoms("6.1"))
    v.gateway.submit(order(Side.BUY, "60000", "0.1", "back", inst=perp))
    assert (await v.events.done("back")).status is OrderStatus.FILLED
    assert v.portfolio.balance(VENUE, "BTC") == 0
    assert v.portfolio.balance(VENUE, "USDT") == 0  # 6.1 - 0.1 - 6
    # With nothing left for a fee, nothing goes.
    v.gateway.submit(order(Side.BUY, "60000", "0.1", "broke", inst=perp))
    done = await v.events.done("broke")
    assert (done.status, done.reason) == (OrderStatus.REJECTED, INSUFFICIENT_BALANCE)


@pytest.mark.parametrize(
    ("inst", "price", "size", "reason"),
    [
        (
            FINE,
            px("3000", FINE),
            sz("0.0015", FINE),
            "size 0.0015 is not a multiple of the lot 0.001",
        ),
        (INST, Decimal("6000000.5"), sz("0.002"), "not a positive whole number of ticks"),
        (INST, px("60000"), 0, "not a positive whole number of size units"),
        (INST, px("60000"), sz("0.001"), "size 0.001 below min size 0.002"),
        # 0.002 x 4999.99 = 9.99998 < 10
        (INST, px("4999.99"), sz("0.002"), "notional 4999.99 x 0.002 below min notional 10"),
    ],
    ids=["off-lot", "off-tick", "zero-size", "min-size", "min-notional"],
)
async def test_orders_off_the_venue_rules_are_rejected(
    inst: Instrument, price: int, size: int, reason: str
) -> None:
    v = venue(books={"BTCUSDT": book(ASKS, BIDS), "ETHUSDT": book([], (), FINE)})
    v.gateway.submit(Order("bad", "arb", inst, Side.BUY, price, size))
    done = await v.events.done("bad")
    assert done.status is OrderStatus.REJECTED
    assert reason in done.reason
    assert v.portfolio.open_orders_total() == 0


async def test_min_notional_exactly_met_is_accepted() -> None:
    v = venue()
    v.gateway.submit(order(Side.BUY, "5000", "0.002", "o"))  # 0.002 x 5000 = 10
    done = await v.events.done("o")
    assert (done.status, done.reason) == (OrderStatus.CANCELED, IOC_NOTHING)  # book is at 60000


async def test_book_not_live_at_arrival_is_rejected() -> None:
    v = venue(latency_s=0.02)
    v.gateway.submit(order(Side.BUY, "60002", "0.1", "o"))
    del v.books["BTCUSDT"]  # the book leaves LIVE while the order is on its way
    done = await v.events.done("o")
    assert (done.status, done.reason) == (OrderStatus.REJECTED, BOOK_NOT_LIVE)
    assert v.portfolio.balance(VENUE, "USDT") == atoms("100000")
    assert v.portfolio.reserved(VENUE, "USDT") == 0


async def test_caller_bugs_raise_at_submit() -> None:
    v = venue(latency_s=1.0)
    other = Instrument("elsewhere", "BTCUSDT", "BTC", "USDT", tick="0.01", lot="0.001")
    with pytest.raises(ValueError, match="sent to paper"):
        v.gateway.submit(Order("x", "arb", other, Side.BUY, 1, 1))
    v.gateway.submit(order(Side.BUY, "60000", "0.01", "dup"))
    with pytest.raises(ValueError, match="already used"):
        v.gateway.submit(order(Side.BUY, "60000", "0.01", "dup"))
    assert v.gateway.pending == 1  # the duplicate scheduled nothing
    assert v.portfolio.open_orders_total() == 0  # nothing is held before arrival
    v.gateway.close()


def no_books(symbol: str) -> Book | None:
    return None


@pytest.mark.parametrize(
    ("reject", "timeout", "latency", "late"),
    [(0.7, 0.7, 0.0, None), (-0.1, 0.0, 0.0, None), (0.0, 0.0, -1.0, None), (0.0, 0.0, 0.0, -1.0)],
)
def test_bad_settings_are_refused(
    reject: float, timeout: float, latency: float, late: float | None
) -> None:
    with pytest.raises(ValueError):
        PaperGateway(
            VENUE,
            no_books,
            Portfolio(),
            fee_bps=BPS10,
            reject_prob=reject,
            timeout_prob=timeout,
            latency_s=latency,
            late_fill_s=late,
        )
    with pytest.raises(ValueError, match="fee_bps"):
        PaperGateway(VENUE, no_books, Portfolio(), fee_bps=Decimal(-1))


# --- time --------------------------------------------------------------------------------------


async def test_latency_is_respected_and_the_book_is_read_on_arrival() -> None:
    v = venue(latency_s=0.15)
    before = time.monotonic_ns()
    sent_ns = v.gateway.submit(order(Side.BUY, "60002", "0.2", "o"))
    assert before <= sent_ns <= time.monotonic_ns()
    await asyncio.sleep(0.02)
    assert v.events.events == []
    # The market moves while the order travels: it fills against the book as it is then.
    v.books["BTCUSDT"].apply([], [(px("60000"), 0), (px("60001"), 0), (px("59000"), sz("1"))])
    done = await v.events.done("o")
    # Not a nanosecond early, on either loop (uvloop's timers count whole milliseconds).
    assert all(e.ts_ns - sent_ns >= 150_000_000 for e in v.events.of("o"))
    assert done.ts_ns - sent_ns >= 150_000_000
    assert [(f.price, f.size) for f in v.events.fills("o")] == [(px("59000"), sz("0.2"))]


async def test_the_venue_remembers_only_recent_orders() -> None:
    v = venue(keep_orders=2)
    for cid in ("o1", "o2", "o3"):
        v.gateway.submit(order(Side.BUY, "60000", "0.01", cid))
        await v.events.done(cid)
    assert await v.gateway.query("o1") is None  # forgotten, like an old order on a venue
    for cid in ("o2", "o3"):
        seen = await v.gateway.query(cid)
        assert seen is not None and seen.status is OrderStatus.FILLED
    with pytest.raises(ValueError, match="keep_orders must be >= 1"):
        venue(keep_orders=0)


async def test_query_takes_a_latency_and_returns_a_copy() -> None:
    v = venue(latency_s=0.02)
    v.gateway.submit(order(Side.BUY, "60002", "0.2", "o"))
    assert v.gateway.pending == 1
    t0 = time.monotonic()
    assert await v.gateway.query("never-sent") is None  # unknown to the venue
    assert time.monotonic() - t0 >= 0.019
    await v.events.done("o")
    seen = await v.gateway.query("o")
    assert seen is not None and seen.status is OrderStatus.FILLED
    seen.fills.clear()
    seen.status = OrderStatus.REJECTED
    again = await v.gateway.query("o")
    assert again is not None and again.status is OrderStatus.FILLED and len(again.fills) == 2


async def test_close_cancels_orders_on_their_way() -> None:
    v = venue(latency_s=0.05)
    v.gateway.submit(order(Side.BUY, "60002", "0.2", "o"))
    v.gateway.close()
    assert v.gateway.pending == 0
    await asyncio.sleep(0.08)
    assert v.events.events == []


# --- fault injection ---------------------------------------------------------------------------


async def outcomes(seed: int) -> list[str]:
    v = venue(reject_prob=0.3, timeout_prob=0.2, seed=seed)
    for i in range(40):
        v.gateway.submit(order(Side.BUY, "60000", "0.002", f"o{i}"))
    await until(lambda: v.gateway.pending == 0)  # all arrived
    seen = []
    for i in range(40):
        done = [e for e in v.events.of(f"o{i}") if e.kind == "done"]
        seen.append(f"{done[0].status}:{done[0].reason}" if done else "timeout")
    return seen


async def test_injected_rejects_and_timeouts_are_deterministic_by_seed() -> None:
    first, again, other = await outcomes(7), await outcomes(7), await outcomes(8)
    assert first == again
    assert first != other
    assert {"timeout", f"rejected:{INJECTED_REJECT}", "filled:"} == set(first)
    # Roughly the configured rates (40 draws): 30% rejects, 20% timeouts.
    assert 5 <= first.count(f"rejected:{INJECTED_REJECT}") <= 20
    assert 2 <= first.count("timeout") <= 15


async def test_timeout_holds_the_reservation_and_a_late_fill_counts_once() -> None:
    v = venue(timeout_prob=1.0, late_fill_s=0.3)
    o = order(Side.BUY, "60001", "0.25", "lost")
    v.gateway.submit(o)
    seen = await arrived(v.gateway, "lost")
    # Arrived and filled at the venue, but every report was lost: the engine's view is
    # UNKNOWN, so the portfolio still holds the whole reservation and no fill.
    assert v.events.events == []
    # 0.25 x 60001 = 15000.25 at the limit + 15.00025 fee
    assert v.portfolio.reserved(VENUE, "USDT") == atoms("15015.25025")
    assert v.portfolio.balance(VENUE, "USDT") == atoms("100000")
    assert v.portfolio.open_orders(VENUE) == 1
    assert seen.status is OrderStatus.FILLED
    assert [(f.price, f.size) for f in seen.fills] == [
        (px("60000"), sz("0.1")),
        (px("60001"), sz("0.15")),
    ]
    # The engine learns the fills from the query and applies them ...
    for f in seen.fills:
        v.portfolio.on_fill(o, f)
    after_query = v.portfolio.snapshot()
    # 100000 - 6000 - 9000.15 - 6 - 9.00015
    assert v.portfolio.balance(VENUE, "USDT") == atoms("84984.84985")
    # ... then the late reports arrive: heard, marked late, but not applied again.
    await until(lambda: len(v.events.fills("lost")) == 2)
    late = v.events.fills("lost")
    assert [f.late for f in late] == [True, True]
    assert [f.trade_id for f in late] == [f.trade_id for f in seen.fills]
    assert v.portfolio.snapshot() == after_query
    assert [e.kind for e in v.events.of("lost")] == ["fill", "fill"]  # still no ack, no done
    assert v.portfolio.open_orders(VENUE) == 1  # held until the engine resolves it
    v.portfolio.on_done(o, seen.status)
    assert v.portfolio.open_orders(VENUE) == 0
    assert v.portfolio.reserved(VENUE, "USDT") == 0


async def test_late_fill_alone_updates_the_portfolio_once() -> None:
    v = venue(timeout_prob=1.0, late_fill_s=0.1)
    o = order(Side.BUY, "60000", "0.1", "lost")
    v.gateway.submit(o)
    arrived_ns = (await arrived(v.gateway, "lost")).done_ns
    assert v.portfolio.balance(VENUE, "USDT") == atoms("100000")
    await until(lambda: bool(v.events.fills("lost")))
    (f,) = v.events.fills("lost")
    assert f.ts_ns - arrived_ns >= 100_000_000 - 2_000_000  # late_fill_s after arrival
    assert f.late
    assert v.portfolio.balance(VENUE, "USDT") == atoms("93994")  # 100000 - 6000 - 6
    assert v.portfolio.balance(VENUE, "BTC") == atoms("0.1")
    assert v.portfolio.apply_fill(o, f) is None  # replaying the same report changes nothing
    assert v.portfolio.balance(VENUE, "USDT") == atoms("93994")
    # The reservation was shrunk by the fill and waits for the final state.
    assert v.portfolio.reserved(VENUE, "USDT") == 0
    assert v.portfolio.open_orders(VENUE) == 1


async def test_timeout_without_late_fill_reports_nothing() -> None:
    v = venue(timeout_prob=1.0)
    v.gateway.submit(order(Side.BUY, "60000", "0.1", "lost"))
    seen = await arrived(v.gateway, "lost")
    assert seen.status is OrderStatus.FILLED
    assert v.gateway.pending == 0  # nothing more will ever come
    await asyncio.sleep(0.02)
    assert v.events.events == []
    assert v.portfolio.balance(VENUE, "BTC") == 0
