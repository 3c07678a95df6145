"""The hand-off: ``Executor.execute`` gives both legs to their gateways before any of its
bookkeeping, and ``PaperGateway.submit`` is only the hand-off (the venue's work happens on
arrival). Also what happens when a ``submit`` raises (a caller bug): the legs that went out
are followed as usual, the others end REJECTED, and the journal still replays to the same
portfolio.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from arbengine._core.book import Book
from arbengine._core.instrument import Instrument
from arbengine.execution import ArbState, ExecutionPolicy, Executor, Opportunity
from arbengine.journal import Journal
from arbengine.orders import Order, OrderStatus, Side, atoms
from arbengine.portfolio import Portfolio
from arbengine.recovery import recover
from arbengine.venues.paper import PaperGateway

FEE = Decimal("10")
A = Instrument("binance", "BTCUSDT", "BTC", "USDT", tick="0.01", lot="0.001")
B = Instrument("okx", "BTC-USDT", "BTC", "USDT", tick="0.1", lot="0.0001")
INSTRUMENTS = (A, B)
FAR = 2**62  # a send-by time that never passes


def book(inst: Instrument) -> Book:
    b = Book(name=inst.name)
    b.apply(
        [(inst.price.parse("59990"), inst.size.parse("1"))],
        [(inst.price.parse("60000"), inst.size.parse("1"))],
        seq=1,
    )
    return b


BOOKS = {inst: book(inst) for inst in INSTRUMENTS}


def start_portfolio() -> Portfolio:
    return Portfolio(
        {(v, a): atoms(n) for v in ("binance", "okx") for a, n in (("BTC", "5"), ("USDT", "1e6"))}
    )


@dataclass
class Seen:
    """The engine's state at the moment a gateway was handed an order."""

    client_id: str
    open_orders: int
    journaled: list[str]
    registered: bool


class Watching(PaperGateway):
    """A paper gateway that notes, at each submit, what execution had done so far, and
    raises for the client ids in ``refuse`` (standing in for a caller bug)."""

    def __init__(self, inst: Instrument, portfolio: Portfolio, seed: int) -> None:
        super().__init__(inst.venue, lambda _symbol: BOOKS[inst], portfolio, fee_bps=FEE, seed=seed)
        self.seen: list[Seen] = []
        self.executor: Executor | None = None
        self.journaled: list[str] = []
        self.refuse: set[str] = set()

    def submit(self, order: Order) -> int:
        assert self.executor is not None
        if order.client_id in self.refuse:
            raise ValueError(f"{order.client_id}: refused by the test")
        self.seen.append(
            Seen(
                order.client_id,
                self._portfolio.open_orders_total(),
                list(self.journaled),
                order.client_id in self.executor.orders,
            )
        )
        return super().submit(order)


@dataclass
class Rig:
    directory: Path
    journal: Journal
    portfolio: Portfolio
    gateways: dict[str, Watching]
    executor: Executor
    journaled: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@pytest.fixture
async def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Rig]:
    portfolio = start_portfolio()
    journal = Journal(tmp_path, batch_ms=1)
    gateways = {inst.venue: Watching(inst, portfolio, i) for i, inst in enumerate(INSTRUMENTS)}
    executor = Executor(
        gateways,
        portfolio,
        journal,
        fee_bps={"binance": FEE, "okx": FEE},
        books=lambda inst: BOOKS[inst],
    )
    r = Rig(tmp_path, journal, portfolio, gateways, executor)
    write = journal.write

    def recording(event: str, **fields: Any) -> int:
        r.journaled.append((event, fields))
        for gateway in gateways.values():
            gateway.journaled.append(event)
        return write(event, **fields)

    monkeypatch.setattr(journal, "write", recording)
    for gateway in gateways.values():
        gateway.executor = executor
    yield r
    await settle(r)
    journal.close()


def opportunity(arb_id: str = "arb-1") -> Opportunity:
    return Opportunity(
        arb_id=arb_id,
        pair_id="btc",
        buy=A,
        sell=B,
        buy_price=A.price.parse("60000"),
        buy_size=A.size.parse("0.1"),
        sell_price=B.price.parse("59990"),
        sell_size=B.size.parse("0.1"),
        edge_num=5,
        edge_den=1,
        recv_ns=0,
        base_qty=1,
        size_decimals=1,  # 0.1
    )


async def settle(r: Rig) -> None:
    """Let every arb settle, then stop what is still scheduled (idempotent)."""
    if r.executor.open_arbs():
        await r.executor.drain(5)
    await r.executor.close()
    for gateway in r.gateways.values():
        gateway.close()


def replayed(r: Rig) -> Portfolio:
    r.journal.close()
    return recover(r.directory, INSTRUMENTS, portfolio=start_portfolio).portfolio


async def test_both_legs_are_handed_off_before_any_bookkeeping(rig: Rig) -> None:
    r = rig
    arb = r.executor.execute(opportunity(), ExecutionPolicy(), FAR)
    assert arb is not None
    seen = [s for g in r.gateways.values() for s in g.seen]
    # Each gateway got its leg before anything was reserved, registered or journaled.
    assert sorted(s.client_id for s in seen) == ["arb-1-B", "arb-1-S"]
    assert all(s.open_orders == 0 and s.journaled == [] and not s.registered for s in seen)
    # Then, before execute returned (so before the next arb's gates), all of it.
    assert (r.portfolio.open_orders("binance"), r.portfolio.open_orders("okx")) == (1, 1)
    assert r.portfolio.in_flight("BTC") == (atoms("0.1"), atoms("0.1"))
    # 0.1 x 60000 = 6000 + 10 bps: 6006 USDT held on the buy's venue; 0.1 BTC on the sell's.
    assert r.portfolio.reserved("binance", "USDT") == atoms("6006")
    assert r.portfolio.reserved("okx", "BTC") == atoms("0.1")
    assert [(e, f.get("client_id")) for e, f in r.journaled] == [
        ("arb", None),
        ("order", "arb-1-B"),
        ("order", "arb-1-S"),
    ]
    buy, sell = arb.legs
    assert r.journaled[0][1]["sent_ns"] == [buy.sent_ns, sell.sent_ns]
    assert 0 < buy.created_ns == sell.created_ns <= buy.sent_ns <= sell.sent_ns
    assert buy.status is sell.status is OrderStatus.SENT
    assert set(r.executor.orders) == {"arb-1-B", "arb-1-S"}
    await settle(r)
    assert arb.state is ArbState.DONE and arb.residual == 0
    assert r.portfolio.open_orders_total() == 0
    assert replayed(r).snapshot() == r.portfolio.snapshot()


def _sent_fields(order: Order) -> dict[str, Any]:
    fields = {name: getattr(order, name) for name in Order.__dataclass_fields__}
    for per_arb in ("client_id", "arb_id", "created_ns", "sent_ns"):
        del fields[per_arb]
    return fields


async def test_legs_prepared_ahead_go_out_exactly_as_legs_built_on_the_spot(rig: Rig) -> None:
    r = rig
    r.executor.prepare("arb-1")
    prepared = r.executor._prepared
    assert prepared is not None
    arb = r.executor.execute(opportunity("arb-1"), ExecutionPolicy(), FAR)
    assert arb is not None and arb.legs == [prepared[1], prepared[2]]  # the same objects
    assert r.executor._prepared is None  # used once
    r.executor.prepare("arb-9")  # not the next arb's id: built on the spot
    other = r.executor.execute(opportunity("arb-2"), ExecutionPolicy(), FAR)
    assert other is not None
    assert all(leg not in r.executor._prepared for leg in other.legs)  # type: ignore[operator]
    # Prepared or not, the legs went out the same: only the ids and times differ.
    for mine, theirs in zip(arb.legs, other.legs, strict=True):
        assert mine.client_id == "arb-1" + mine.client_id[-2:]
        assert _sent_fields(mine) == _sent_fields(theirs)
    assert [o.instrument for o in arb.legs] == [A, B]
    await settle(r)
    assert arb.state is other.state is ArbState.DONE
    assert replayed(r).snapshot() == r.portfolio.snapshot()


async def test_a_sell_submit_that_raises_leaves_the_buy_followed(rig: Rig) -> None:
    r = rig
    r.gateways["okx"].refuse.add("arb-1-S")
    with pytest.raises(ValueError, match="refused by the test"):
        r.executor.execute(opportunity(), ExecutionPolicy(), FAR)
    arb = r.executor.arbs["arb-1"]
    buy, sell = arb.legs
    assert buy.sent_ns and buy.status is OrderStatus.SENT  # out, and followed
    assert r.portfolio.reservation("arb-1-B") is not None
    assert sell.sent_ns == 0 and sell.status is OrderStatus.REJECTED
    assert sell.reason == "not sent: ValueError: arb-1-S: refused by the test"
    assert r.portfolio.reservation("arb-1-S") is None and r.portfolio.is_done("arb-1-S")
    events = [(e, f.get("client_id"), f.get("status")) for e, f in r.journaled]
    assert events == [
        ("arb", None, None),
        ("order", "arb-1-B", OrderStatus.SENT),
        ("order", "arb-1-S", OrderStatus.NEW),
        ("done", "arb-1-S", "rejected"),
    ]
    # The buy fills alone: a leg failure, unwound on its venue, and the arb settles.
    await settle(r)
    assert arb.state is ArbState.DONE
    assert arb.legs[0].status is OrderStatus.FILLED  # (not ``buy``: mypy narrowed it to SENT)
    assert [h.side for h in arb.hedges] == [Side.SELL]
    assert r.executor.counters["leg_failures"] == 1
    assert r.portfolio.open_orders_total() == 0
    assert replayed(r).snapshot() == r.portfolio.snapshot()


async def test_a_buy_submit_that_raises_sends_nothing(rig: Rig) -> None:
    r = rig
    r.gateways["binance"].refuse.add("arb-1-B")
    results: list[str] = []

    class Risk:
        def record_result(self, venue: str, result: str) -> None:
            results.append(f"{venue}:{result}")

        def check_hedge(self, order: Order) -> Any:
            raise AssertionError("no hedge expected")

    r.executor.risk = Risk()
    with pytest.raises(ValueError, match="refused by the test"):
        r.executor.execute(opportunity(), ExecutionPolicy(), FAR)
    # The sell alone would be all exposure: it is never tried.
    assert [s.client_id for s in r.gateways["okx"].seen] == []
    arb = r.executor.arbs["arb-1"]
    assert [o.status for o in arb.legs] == [OrderStatus.REJECTED, OrderStatus.REJECTED]
    assert arb.state is ArbState.DONE and arb.residual == 0
    assert r.executor.open_arbs() == 0
    assert r.portfolio.open_orders_total() == 0
    assert r.portfolio.reserved("binance", "USDT") == r.portfolio.reserved("okx", "BTC") == 0
    assert results == []  # legs that never reached a venue say nothing about it
    assert [e for e, _ in r.journaled] == ["arb", "order", "order", "done", "done", "arb_done"]
    await settle(r)
    assert replayed(r).snapshot() == r.portfolio.snapshot()


async def test_a_hedge_submit_that_raises_settles_the_arb_with_its_residual(rig: Rig) -> None:
    r = rig
    # The sell leg misses (limit above the bid), the buy fills: the unwind sells on binance.
    opp = opportunity()
    opp.sell_price = B.price.parse("61000")
    failed: list[BaseException] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, ctx: failed.append(ctx["exception"]))
    # The hedge's submit raises, inside the gateway callback that reported the last leg done.
    r.gateways["binance"].refuse.add("arb-1-H1")
    arb = r.executor.execute(opp, ExecutionPolicy(), FAR)
    assert arb is not None
    await settle(r)
    assert [type(e) for e in failed] == [ValueError]  # the caller bug surfaces
    assert arb.state is ArbState.DONE and arb.hedges == []
    assert arb.residual == atoms("0.1")  # long what the buy got: left as exposure
    assert r.executor.exposure == {"BTC": atoms("0.1")}
    assert [f["reason"] for e, f in r.journaled if e == "hedge_blocked"] == [
        "not sent: ValueError: arb-1-H1: refused by the test"
    ]
    assert replayed(r).snapshot() == r.portfolio.snapshot()


# --- the paper gateway's hand-off ------------------------------------------------------------


def test_submit_outside_a_running_loop_changes_nothing() -> None:
    p = start_portfolio()
    # A little injection, so each order takes its draw (seed 3's first is ~0.24: no reject).
    gw = PaperGateway("binance", lambda _s: BOOKS[A], p, fee_bps=FEE, seed=3, reject_prob=0.01)
    o = Order("o", "arb", A, Side.BUY, A.price.parse("60000"), A.size.parse("0.1"))
    with pytest.raises(RuntimeError):
        gw.submit(o)
    assert gw.pending == 0
    assert p.open_orders_total() == 0

    async def again() -> int:
        # Not recorded, not drawn: the same client id goes out, with seed 3's first draw.
        gw.submit(o)
        await asyncio.sleep(0.01)
        return gw.pending

    assert asyncio.run(again()) == 0
    assert gw._rng.getstate() == _drawn(3, 1)


def test_without_injection_an_order_takes_no_draw() -> None:
    gw = PaperGateway("binance", lambda _s: BOOKS[A], start_portfolio(), fee_bps=FEE, seed=3)
    o = Order("o", "arb", A, Side.BUY, A.price.parse("60000"), A.size.parse("0.1"))

    async def send() -> OrderStatus | None:
        gw.submit(o)
        await asyncio.sleep(0.01)
        found = await gw.query("o")
        return None if found is None else found.status

    assert asyncio.run(send()) is OrderStatus.FILLED
    assert gw._rng.getstate() == _drawn(3, 0)


def _drawn(seed: int, n: int) -> object:
    rng = random.Random(seed)
    for _ in range(n):
        rng.random()
    return rng.getstate()


async def test_the_venue_copy_is_made_on_arrival_from_the_order() -> None:
    p = start_portfolio()
    gw = PaperGateway("binance", lambda _s: BOOKS[A], p, fee_bps=FEE, latency_s=0.01)
    done: asyncio.Future[OrderStatus] = asyncio.get_running_loop().create_future()

    class Listener:
        def on_ack(self, order: Order, ts_ns: int) -> None:
            pass

        def on_fill(self, order: Order, fill: Any) -> None:
            pass

        def on_done(self, order: Order, status: OrderStatus, reason: str, ts_ns: int) -> None:
            done.set_result(status)

    gw.set_listener(Listener())
    o = Order("o", "arb", A, Side.BUY, A.price.parse("60000"), A.size.parse("0.1"))
    o.created_ns = 42
    sent_ns = gw.submit(o)
    assert gw.pending == 1
    assert p.open_orders_total() == 0  # the venue has not seen it yet
    assert await asyncio.wait_for(done, 2) is OrderStatus.FILLED
    seen = await gw.query("o")
    assert seen is not None and seen is not o
    assert (seen.client_id, seen.price, seen.size, seen.created_ns, seen.sent_ns) == (
        "o",
        o.price,
        o.size,
        42,
        sent_ns,
    )
    assert seen.filled == o.size and o.filled == 0  # the caller's order is the listener's
    assert p.open_orders_total() == 0 and p.is_done("o")
