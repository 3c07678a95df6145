"""Portfolio: exact balances, reservations, inventory, PnL, valuation, snapshot and replay.

Every expected number is worked out by hand in the comment next to it and written with
``atoms("...")`` from decimal text, so the test does not reuse the portfolio's arithmetic.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any, Protocol

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arbengine._core.instrument import Instrument
from arbengine._core.ledger import Ledger
from arbengine.orders import (
    AtomScale,
    Fill,
    Order,
    OrderStatus,
    Side,
    TimeInForce,
    atoms,
)
from arbengine.portfolio import NS_PER_DAY, Portfolio

A = Instrument("binance", "BTCUSDT", "BTC", "USDT", tick="0.01", lot="0.001", min_notional="5")
B = Instrument("okx", "BTC-USDT", "BTC", "USDT", tick="0.1", lot="0.0001")
C = Instrument("coinbase", "BTC-USD", "BTC", "USD", tick="0.01", lot="0.00000001")
ETH = Instrument("binance", "ETHUSDT", "ETH", "USDT", tick="0.01", lot="0.0001")
SWAP = Instrument("okx", "BTC-USDT-SWAP", "BTC", "USDT", tick="0.1", lot="1", multiplier="0.01")
PERP = Instrument(
    "binance_usdm", "BTCUSDT", "BTC", "USDT", tick="0.1", lot="0.001", derivative=True
)

BPS10 = Decimal(10)
MARKS: dict[str, Decimal | int] = {"USDT": 1, "BTC": Decimal(60000)}


class Clock:
    """A settable UTC epoch-ns clock."""

    def __init__(self, ns: int = 1_704_153_599 * 10**9) -> None:  # 2024-01-01 23:59:59Z
        self.ns = ns

    def __call__(self) -> int:
        return self.ns


def order(
    inst: Instrument,
    side: Side,
    price: str,
    size: str,
    cid: str,
    tif: TimeInForce = TimeInForce.IOC,
) -> Order:
    return Order(
        client_id=cid,
        arb_id="arb-1",
        instrument=inst,
        side=side,
        price=inst.price.parse(price),
        size=inst.size.parse(size),
        tif=tif,
    )


def fill(o: Order, price: str, size: str, fee: str, trade_id: str, fee_asset: str = "") -> Fill:
    inst = o.instrument
    return Fill(
        client_id=o.client_id,
        price=inst.price.parse(price),
        size=inst.size.parse(size),
        fee=atoms(fee),
        fee_asset=fee_asset or inst.quote,
        ts_ns=0,
        trade_id=trade_id,
    )


def portfolio(clock: Clock | None = None, **balances: str) -> Portfolio:
    """``binance_USDT="100"`` style starting balances."""
    start = {}
    for key, amount in balances.items():
        venue, asset = key.rsplit("_", 1)
        start[(venue, asset)] = atoms(amount)
    return Portfolio(start, clock=clock or Clock())


# --- balances, fees, reservations --------------------------------------------------------------


def test_buy_in_two_fills_exact_balances_fees_and_reservation() -> None:
    p = portfolio(binance_USDT="100000")
    o = order(A, Side.BUY, "60000", "0.5", "o1")
    p.reserve(o, BPS10)
    # 0.5 x 60000 = 30000 notional at the limit + 10 bps of it = 30 fee: 30030 held.
    assert p.reserved("binance", "USDT") == atoms("30030")
    assert p.available("binance", "USDT") == atoms("69970")  # 100000 - 30030
    assert p.open_orders("binance") == p.open_orders_total() == 1

    # 0.2 @ 59990: notional 11998, fee 11.998 (10 bps).
    realized = p.apply_fill(o, fill(o, "59990", "0.2", "11.998", "t1"))
    assert realized == {"USDT": -atoms("11.998")}  # opening a position realizes only its fee
    assert p.balance("binance", "USDT") == atoms("87990.002")  # 100000 - 11998 - 11.998
    assert p.balance("binance", "BTC") == atoms("0.2")
    # The 0.3 still unfilled holds 0.3 x 60000 = 18000 + 18 fee = 18018.
    assert p.reserved("binance", "USDT") == atoms("18018")
    assert p.available("binance", "USDT") == atoms("69972.002")  # 87990.002 - 18018

    # 0.3 @ 60000: notional 18000, fee 18.
    p.apply_fill(o, fill(o, "60000", "0.3", "18", "t2"))
    assert p.balance("binance", "USDT") == atoms("69972.002")  # 87990.002 - 18018
    assert p.balance("binance", "BTC") == atoms("0.5")
    assert p.reserved("binance", "USDT") == 0  # nothing left to fill ...
    assert p.open_orders("binance") == 1  # ... but the order is open until done
    p.on_done(o, OrderStatus.FILLED)
    assert p.open_orders_total() == 0
    assert p.is_done("o1")

    assert p.fees_paid("USDT") == atoms("29.998")  # 11.998 + 18
    assert p.inventory("BTC") == p.net_exposure("BTC") == atoms("0.5")
    assert p.inventory("USDT") == -atoms("30027.998")  # 11998 + 18000 + 29.998
    assert p.position("BTC") == atoms("0.5")
    assert p.cost_basis("BTC") == {"USDT": atoms("29998")}  # 11998 + 18000; fees expensed
    assert p.realized("USDT") == -atoms("29.998")


def test_sell_reserves_base_and_contracts_use_the_multiplier() -> None:
    p = portfolio(binance_BTC="1", okx_BTC="1", okx_USDT="10000")
    sell = order(A, Side.SELL, "60000", "0.25", "s1")
    p.reserve(sell, BPS10)
    assert p.reserved("binance", "BTC") == atoms("0.25")
    assert p.reserved("binance", "USDT") == 0  # a sell's fee comes out of its proceeds
    assert p.available("binance", "BTC") == atoms("0.75")

    # 5 contracts x 0.01 BTC = 0.05 BTC held for a swap sell.
    p.reserve(order(SWAP, Side.SELL, "60000", "5", "s2"), BPS10)
    assert p.reserved("okx", "BTC") == atoms("0.05")
    # Buy 5 contracts @ 60000.0: notional 5 x 0.01 x 60000 = 3000. At 3.333333333333333333 bps
    # the fee is 3000 x 0.0003333333333333333333 = 0.9999999999999999999 USDT: one digit past
    # the atom, so it rounds up (against us) to exactly 1.
    odd_bps = Decimal("3.333333333333333333")
    assert AtomScale.of(SWAP).fee(SWAP.price.parse("60000"), 5, odd_bps) == atoms("1")
    p.reserve(order(SWAP, Side.BUY, "60000", "5", "b1"), odd_bps)
    assert p.reserved("okx", "USDT") == atoms("3001")
    assert p.open_orders("okx") == 2
    assert p.open_orders("binance") == 1
    assert p.open_orders_total() == 3
    assert p.in_flight("BTC") == (atoms("0.05"), atoms("0.3"))  # buys, sells still open


def test_a_derivative_holds_only_its_fee_and_books_as_its_venue() -> None:
    p = portfolio(binance_usdm_USDT="100")
    sell = order(PERP, Side.SELL, "60000", "0.5", "p1")
    p.reserve(sell, BPS10)
    # Either side holds the fee on the unfilled notional, in USDT: 0.5 x 60000 x 10 bps = 30.
    assert p.reserved("binance_usdm", "USDT") == atoms("30")
    assert p.reserved("binance_usdm", "BTC") == 0
    assert p.in_flight("BTC") == (0, atoms("0.5"))
    # 0.2 filled @ 60010 (fee 12.002): a short, shown as a negative base balance; the wallet
    # pays the fee only.
    p.apply_fill(sell, fill(sell, "60010", "0.2", "12.002", "t1"))
    assert p.balance("binance_usdm", "BTC") == -atoms("0.2")
    assert p.balance("binance_usdm", "USDT") == atoms("87.998")  # 100 - 12.002
    assert p.contract("binance_usdm", "BTCUSDT") == (-atoms("0.2"), -atoms("12002"))
    assert p.reserved("binance_usdm", "USDT") == atoms("18")  # 0.3 x 60000 x 10 bps
    p.on_done(sell, OrderStatus.CANCELED)
    assert p.reserved("binance_usdm", "USDT") == 0
    # Marked at 60000: 87.998 + (-0.2 x 60000) - (-12002) = 89.998.
    assert p.equity(MARKS) == atoms("89.998")
    assert p.inventory("USDT") == -atoms("12.002")
    # Bought back in two fills: 0.05 @ 59000 closes a quarter of the entry (3000.5) for
    # +50.5, then 0.25 @ 59500 closes the rest (0.15: +76.5) and opens a 0.1 long at 5950.
    buy = order(PERP, Side.BUY, "59500", "0.3", "p2")
    p.reserve(buy, BPS10)
    assert p.reserved("binance_usdm", "USDT") == atoms("17.85")  # 0.3 x 59500 x 10 bps
    p.apply_fill(buy, fill(buy, "59000", "0.05", "2.95", "t2"))
    assert p.contract("binance_usdm", "BTCUSDT") == (-atoms("0.15"), -atoms("9001.5"))
    assert p.balance("binance_usdm", "USDT") == atoms("135.548")  # 87.998 + 50.5 - 2.95
    p.apply_fill(buy, fill(buy, "59500", "0.25", "14.875", "t3"))
    p.on_done(buy, OrderStatus.FILLED)
    assert p.contract("binance_usdm", "BTCUSDT") == (atoms("0.1"), atoms("5950"))
    assert p.balance("binance_usdm", "BTC") == atoms("0.1")
    assert p.balance("binance_usdm", "USDT") == atoms("197.173")  # 135.548 + 76.5 - 14.875
    # Marked at 60000: 197.173 + 6000 - 5950 = 247.173.
    assert p.equity(MARKS) == atoms("247.173")
    restored = Portfolio.restore(json.loads(json.dumps(p.snapshot())), clock=Clock())
    assert restored.snapshot() == p.snapshot()
    assert restored.equity(MARKS) == atoms("247.173")
    # The venue's word at startup: a 0.3 long entered at 17,900 (inventory unchanged).
    p.set_contract(PERP, atoms("0.3"), atoms("17900"))
    assert p.balance("binance_usdm", "BTC") == atoms("0.3")
    assert p.inventory("BTC") == atoms("0.1")
    assert p.equity(MARKS) == atoms("197.173") + atoms("18000") - atoms("17900")
    with pytest.raises(ValueError, match="not a derivative"):
        p.set_contract(A, 0, 0)


def test_a_derivative_reservation_survives_a_snapshot() -> None:
    p = portfolio(binance_usdm_USDT="100")
    p.reserve(order(PERP, Side.SELL, "60000", "0.5", "p1"), BPS10)
    snap = p.snapshot()
    assert snap["reservations"][0]["derivative"] is True
    restored = Portfolio.restore(json.loads(json.dumps(snap)), clock=Clock())
    assert restored.snapshot() == snap
    assert restored.reserved("binance_usdm", "USDT") == atoms("30")
    assert restored.available("binance_usdm", "BTC") == 0


def test_reservation_held_while_unknown_released_on_final_state() -> None:
    p = portfolio(binance_USDT="1000")
    o = order(A, Side.BUY, "100", "2", "o1")
    p.reserve(o, BPS10)
    held = atoms("200.2")  # 2 x 100 + 10 bps
    assert p.reserved("binance", "USDT") == held
    # No answer in time: the order may still fill, so nothing is released.
    o.status = OrderStatus.UNKNOWN
    p.on_done(o)
    p.on_done(o, OrderStatus.ACKED)
    assert p.reserved("binance", "USDT") == held
    assert p.open_orders("binance") == 1
    # The venue later confirms: 0.5 filled, the rest canceled.
    p.apply_fill(o, fill(o, "100", "0.5", "0.05", "late-1"))
    assert p.reserved("binance", "USDT") == atoms("150.15")  # 1.5 x 100 + 10 bps
    p.on_done(o, OrderStatus.CANCELED)
    assert p.reserved("binance", "USDT") == 0
    assert p.available("binance", "USDT") == atoms("949.95")  # 1000 - 50 - 0.05
    released = p.snapshot()
    p.on_done(o, OrderStatus.CANCELED)  # released once
    assert p.snapshot() == released


def test_reserve_done_and_fill_are_idempotent() -> None:
    p = portfolio(binance_USDT="1000")
    o = order(A, Side.BUY, "100", "1", "o1")
    p.reserve(o, BPS10)
    p.reserve(o, BPS10)  # the gateway and execution may both reserve
    assert p.reserved("binance", "USDT") == atoms("100.1")
    assert p.open_orders_total() == 1
    f = fill(o, "100", "1", "0.1", "t1")
    assert p.apply_fill(o, f) == {"USDT": -atoms("0.1")}
    before = p.snapshot()
    assert p.apply_fill(o, f) is None  # same trade id: a late report of a known fill
    assert p.snapshot() == before
    p.on_done(o, OrderStatus.FILLED)
    p.reserve(o, BPS10)  # a replayed journal cannot resurrect a finished order
    assert p.open_orders_total() == 0
    assert p.reserved("binance", "USDT") == 0
    p.on_fill(o, f)  # the OrderEvents-shaped call: same dedup
    assert p.balance("binance", "BTC") == atoms("1")


def finish(p: Portfolio, cid: str, trade_id: str) -> Order:
    """A BUY of 1 @ 100 on A reserved, filled whole (``trade_id``) and released."""
    o = order(A, Side.BUY, "100", "1", cid)
    p.reserve(o, BPS10)
    p.apply_fill(o, fill(o, "100", "1", "0.1", trade_id))
    p.on_done(o, OrderStatus.FILLED)
    return o


def test_the_last_keep_done_finished_orders_are_remembered_older_ones_forgotten() -> None:
    p = Portfolio({("binance", "USDT"): atoms("10000")}, clock=Clock(), keep_done=3)
    orders = [finish(p, f"o{i}", f"t{i}") for i in range(5)]
    assert [p.is_done(o.client_id) for o in orders] == [False, False, True, True, True]
    snap = p.snapshot()
    assert snap["done"] == ["o2", "o3", "o4"]  # oldest first: the order they go in
    assert snap["applied"] == [["o2", "t2"], ["o3", "t3"], ["o4", "t4"]]
    # A repeat of a remembered fill is still recognised ...
    assert p.apply_fill(orders[4], fill(orders[4], "100", "1", "0.1", "t4")) is None
    # ... and one an open order took too, however many orders finish meanwhile.
    held = order(A, Side.BUY, "100", "2", "held")
    p.reserve(held, BPS10)
    half = fill(held, "100", "1", "0.1", "h1")
    p.apply_fill(held, half)
    for i in range(5, 10):
        finish(p, f"o{i}", f"t{i}")
    assert p.apply_fill(held, half) is None
    assert p.balance("binance", "BTC") == atoms("11")  # ten orders of 1 and one half of 2
    p.on_done(held, OrderStatus.CANCELED)
    assert p.snapshot()["done"] == ["o8", "o9", "held"]
    assert ["held", "h1"] in p.snapshot()["applied"]


def test_a_late_fill_with_no_reservation_is_forgotten_with_the_finished() -> None:
    p = Portfolio({("binance", "USDT"): atoms("10000")}, clock=Clock(), keep_done=2)
    late = order(A, Side.BUY, "100", "1", "late")  # settled long ago: nothing held for it
    f = fill(late, "100", "1", "0.1", "x1")
    assert p.apply_fill(late, f) == {"USDT": -atoms("0.1")}
    assert p.is_done("late") and p.apply_fill(late, f) is None  # still recognised
    finish(p, "a", "ta")
    finish(p, "b", "tb")
    assert not p.is_done("late") and p.snapshot()["applied"] == [["a", "ta"], ["b", "tb"]]


def test_restore_keeps_the_forgetting_order_and_takes_a_smaller_keep_done() -> None:
    p = Portfolio({("binance", "USDT"): atoms("10000")}, clock=Clock(), keep_done=4)
    for cid in ("z", "y", "x", "w"):  # finished against the alphabet: order is not sorting
        finish(p, cid, f"t-{cid}")
    snap = json.loads(json.dumps(p.snapshot()))
    assert snap["done"] == ["z", "y", "x", "w"]
    same = Portfolio.restore(snap, clock=Clock(), keep_done=4)
    assert same.snapshot() == p.snapshot()
    for q in (p, same):
        finish(q, "v", "t-v")
    assert same.snapshot() == p.snapshot() and same.snapshot()["done"] == ["y", "x", "w", "v"]
    smaller = Portfolio.restore(snap, clock=Clock(), keep_done=2)
    assert smaller.snapshot()["done"] == ["x", "w"]
    assert smaller.snapshot()["applied"] == [["w", "t-w"], ["x", "t-x"]]
    # A snapshot from before retention: ids sorted, and a late report's id only in
    # "applied"; that one is taken as the oldest.
    old = snap | {"done": ["w", "x", "y", "z"], "applied": [*snap["applied"], ["late", "l1"]]}
    assert Portfolio.restore(old, clock=Clock(), keep_done=4).snapshot()["done"] == [
        "w",
        "x",
        "y",
        "z",
    ]
    assert Portfolio.restore(old, clock=Clock(), keep_done=5).snapshot()["done"][0] == "late"


@pytest.mark.parametrize("bad", [0, -1, 2.5, "10"])
def test_keep_done_must_be_a_positive_int(bad: Any) -> None:
    with pytest.raises(ValueError, match="keep_done"):
        Portfolio(keep_done=bad)


def test_reservations_beyond_balance_show_negative_available() -> None:
    p = portfolio(binance_USDT="100")
    p.reserve(order(A, Side.BUY, "100", "0.9", "o1"), Decimal(0))
    p.reserve(order(A, Side.BUY, "100", "0.9", "o2"), Decimal(0))
    assert p.available("binance", "USDT") == -atoms("80")  # 100 - 90 - 90: gates must see it


def test_an_order_off_the_grid_is_held_in_whole_atoms_rounded_up() -> None:
    # The paper venue reserves an order on arrival and only then rejects one whose price is
    # not a whole number of ticks; meanwhile the ledger still takes whole atoms only.
    p = portfolio(binance_USDT="1000")
    price: Any = Decimal("10000.0000000000000000001")  # ticks of 0.01: 10^-22 tick too many
    o = Order("o1", "arb", A, Side.BUY, price, 1)
    p.reserve(o, Decimal(0))
    # 0.001 BTC x 100.000000000000000000001 = 0.1 USDT and 10^-9 atom: 0.1 USDT + 1 atom held.
    assert p.reserved("binance", "USDT") == atoms("0.1") + 1
    assert type(p.available("binance", "USDT")) is int
    assert p.open_orders_total() == p.ledger.open_total == 1
    p.on_done(o, OrderStatus.REJECTED)
    assert p.available("binance", "USDT") == atoms("1000")  # released to the atom
    assert p.open_orders_total() == p.ledger.open_total == 0


def test_deposit_moves_balance_not_inventory() -> None:
    p = portfolio(binance_USDT="100")
    p.deposit("binance", "USDT", atoms("50"))
    p.deposit("okx", "USDT", -atoms("20"))
    assert p.balance("binance", "USDT") == atoms("150")
    assert p.balance("okx", "USDT") == -atoms("20")
    assert p.inventory("USDT") == 0
    with pytest.raises(TypeError):
        p.deposit("okx", "USDT", 1.5)  # type: ignore[arg-type]


# --- PnL ---------------------------------------------------------------------------------------


def test_arb_round_trip_across_venues_realizes_edge_minus_fees() -> None:
    p = portfolio(binance_USDT="100000", okx_BTC="1")
    start = p.equity(MARKS)
    assert start == atoms("160000")  # 100000 USDT + 1 BTC x 60000
    buy = order(A, Side.BUY, "60000", "1", "buy")
    sell = order(B, Side.SELL, "60100", "1", "sell")
    # Buy 1 @ 60000 on binance, fee 60; sell 1 @ 60100 on okx, fee 60.1.
    assert p.apply_fill(buy, fill(buy, "60000", "1", "60", "t1")) == {"USDT": -atoms("60")}
    assert p.net_exposure("BTC") == atoms("1")  # one leg: 1 BTC unhedged
    assert p.exposure_value(MARKS) == atoms("60000")
    # Closing realizes 60100 - 60000 = 100, less its own fee 60.1.
    assert p.apply_fill(sell, fill(sell, "60100", "1", "60.1", "t2")) == {"USDT": atoms("39.9")}
    assert p.realized("USDT") == -atoms("20.1")  # 100 - 60 - 60.1
    assert p.realized_pnl(MARKS) == -atoms("20.1")
    assert p.balance("binance", "USDT") == atoms("39940")  # 100000 - 60000 - 60
    assert p.balance("okx", "USDT") == atoms("60039.9")  # 60100 - 60.1
    assert p.balance("binance", "BTC") == atoms("1")
    assert p.balance("okx", "BTC") == 0
    assert p.inventory("BTC") == p.net_exposure("BTC") == 0  # hedged: flat across venues
    assert p.exposure_value(MARKS) == 0
    assert p.inventory("USDT") == -atoms("20.1")  # = realized: the position is flat
    assert p.fees_paid("USDT") == atoms("120.1")
    assert p.equity(MARKS) == atoms("159979.9")  # 39940 + 60039.9 + 60000
    assert p.drawdown(MARKS) == atoms("20.1")
    assert p.peak_equity == atoms("160000")


def test_cross_quote_arb_realizes_in_both_quotes_valued_with_marks() -> None:
    p = Portfolio(
        {("binance", "USDT"): atoms("60000"), ("coinbase", "BTC"): atoms("1")}, reference="USD"
    )
    buy = order(A, Side.BUY, "60000", "1", "buy")
    sell = order(C, Side.SELL, "60050", "1", "sell")
    p.apply_fill(buy, fill(buy, "60000", "1", "0", "t1"))
    assert p.apply_fill(sell, fill(sell, "60050", "1", "0", "t2")) == {
        "USD": atoms("60050"),
        "USDT": -atoms("60000"),
    }
    marks = {"USDT": Decimal("0.9995"), "BTC": Decimal(60000)}  # USD is the reference: 1
    assert p.realized_pnl(marks) == atoms("80")  # 60050 - 60000 x 0.9995 = 60050 - 59970
    assert p.realized_pnl_today(marks) == atoms("80")
    with pytest.raises(KeyError, match="no mark for USDT"):
        p.realized_pnl({"BTC": Decimal(60000)})


def test_short_flip_and_partial_close_average_cost() -> None:
    p = portfolio(binance_ETH="10", binance_USDT="10000")
    s1 = order(ETH, Side.SELL, "100", "2", "s1")
    b1 = order(ETH, Side.BUY, "90", "3", "b1")
    s2 = order(ETH, Side.SELL, "95", "0.5", "s2")
    assert p.apply_fill(s1, fill(s1, "100", "2", "0", "t1")) == {}  # opens a short: -2 @ 100
    assert p.position("ETH") == -atoms("2")
    assert p.cost_basis("ETH") == {"USDT": -atoms("200")}  # proceeds received
    # Buy 3 @ 90 = 270: 2 of them close the short at 180 (short sold for 200: +20), the
    # third opens a long of 1 @ 90.
    assert p.apply_fill(b1, fill(b1, "90", "3", "0", "t2")) == {"USDT": atoms("20")}
    assert p.position("ETH") == atoms("1")
    assert p.cost_basis("ETH") == {"USDT": atoms("90")}
    # Sell 0.5 @ 95 = 47.5 against half the basis, 45: +2.5.
    assert p.apply_fill(s2, fill(s2, "95", "0.5", "0", "t3")) == {"USDT": atoms("2.5")}
    assert p.cost_basis("ETH") == {"USDT": atoms("45")}
    assert p.balance("binance", "ETH") == atoms("10.5")  # 10 - 2 + 3 - 0.5
    assert p.balance("binance", "USDT") == atoms("9977.5")  # 10000 + 200 - 270 + 47.5
    # Quote moved = realized - basis still open: -22.5 = 22.5 - 45.
    assert p.inventory("USDT") == -atoms("22.5")
    assert p.realized("USDT") == atoms("22.5")


def test_partial_closes_truncate_but_a_round_trip_is_exact() -> None:
    p = portfolio(binance_USDT="1000")
    for i, price in enumerate(["33.33", "33.33", "33.34"]):  # long 3 for exactly 100
        o = order(ETH, Side.BUY, price, "1", f"b{i}")
        p.apply_fill(o, fill(o, price, "1", "0", f"t{i}"))
    assert p.cost_basis("ETH") == {"USDT": atoms("100")}
    s1 = order(ETH, Side.SELL, "40", "1", "s1")
    s2 = order(ETH, Side.SELL, "40", "2", "s2")
    # A third of the basis is 33.333... truncated to the atom: 33.333333333333333333.
    assert p.apply_fill(s1, fill(s1, "40", "1", "0", "t3")) == {
        "USDT": atoms("6.666666666666666667")
    }
    assert p.cost_basis("ETH") == {"USDT": atoms("66.666666666666666667")}
    assert p.apply_fill(s2, fill(s2, "40", "2", "0", "t4")) == {
        "USDT": atoms("13.333333333333333333")
    }
    assert p.cost_basis("ETH") == {}
    assert p.realized("USDT") == atoms("20") == p.inventory("USDT")  # 120 - 100 exactly


def test_fee_in_base_is_expensed_and_counted_in_inventory() -> None:
    p = portfolio(binance_USDT="1000")
    o = order(A, Side.BUY, "100", "1", "o1")
    # Binance without BNB: a buy's fee is taken from the BTC received (0.001 BTC).
    assert p.apply_fill(o, fill(o, "100", "1", "0.001", "t1", fee_asset="BTC")) == {
        "BTC": -atoms("0.001")
    }
    assert p.balance("binance", "BTC") == atoms("0.999")
    assert p.inventory("BTC") == p.net_exposure("BTC") == atoms("0.999")
    assert p.position("BTC") == atoms("1")  # the traded position; the fee is a cost
    assert p.fees_paid("BTC") == atoms("0.001")
    assert p.realized_pnl({"BTC": Decimal(100)}) == -atoms("0.1")  # 0.001 BTC x 100


def test_realized_pnl_today_rolls_at_utc_midnight() -> None:
    clock = Clock()  # 23:59:59 UTC
    p = portfolio(clock, binance_USDT="1000", okx_BTC="1")
    b = order(A, Side.BUY, "100", "1", "b")
    s = order(B, Side.SELL, "101", "1", "s")
    p.apply_fill(b, fill(b, "100", "1", "0.1", "t1"))
    assert p.realized_pnl_today(MARKS) == -atoms("0.1")
    clock.ns += 2 * 10**9  # 00:00:01 the next day
    assert clock.ns // NS_PER_DAY == (clock.ns - 2 * 10**9) // NS_PER_DAY + 1
    assert p.realized_pnl_today(MARKS) == 0
    p.apply_fill(s, fill(s, "101", "1", "0.101", "t2"))
    assert p.realized_pnl_today(MARKS) == atoms("0.899")  # 101 - 100 - 0.101
    assert p.realized_pnl(MARKS) == atoms("0.799")  # both days: 0.899 - 0.1


# --- valuation ---------------------------------------------------------------------------------


def test_equity_peak_and_drawdown_follow_marks() -> None:
    p = portfolio(binance_USDT="100000", okx_BTC="1")
    assert p.peak_equity is None
    assert p.drawdown({"BTC": Decimal(60000)}) == 0  # the first valuation is the peak
    assert p.equity({"BTC": Decimal(59000)}) == atoms("159000")
    assert p.drawdown({"BTC": Decimal(59000)}) == atoms("1000")
    assert p.equity({"BTC": Decimal(61000)}) == atoms("161000")
    assert p.peak_equity == atoms("161000")
    assert p.drawdown({"BTC": Decimal("60999.5")}) == atoms("0.5")
    # Rounded down to the atom: 1 BTC at a mark with 19 decimals.
    assert p.equity({"BTC": Decimal("0.0000000000000000019")}) == atoms("100000.000000000000000001")
    with pytest.raises(KeyError, match="no mark for BTC"):
        p.equity({"USDT": 1})
    with pytest.raises(TypeError):
        p.equity({"BTC": 60000.0})  # type: ignore[dict-item]


def test_exposure_value_is_gross_and_rounds_up() -> None:
    p = portfolio(binance_USDT="1000", okx_ETH="1")
    b = order(A, Side.BUY, "100", "0.001", "b")
    e = order(ETH, Side.SELL, "3000", "0.5", "e")
    p.apply_fill(b, fill(b, "100", "0.001", "0", "t1"))  # +0.001 BTC
    p.deposit("binance", "ETH", atoms("0.5"))
    p.apply_fill(e, fill(e, "3000", "0.5", "0", "t2"))  # -0.5 ETH
    marks = {"BTC": Decimal("60000.0000000000000007"), "ETH": Decimal(3000)}
    # |0.001| x 60000.0000000000000007 = 60.0000000000000000007: up to 60.000000000000000001;
    # |-0.5| x 3000 = 1500.
    assert p.exposure_value(marks) == atoms("1560.000000000000000001")
    assert p.bases() == frozenset({"BTC", "ETH"})


# --- the risk gates' view ----------------------------------------------------------------------


class RiskPortfolio(Protocol):
    """Exactly what arbengine/risk.py is written against."""

    @property
    def ledger(self) -> Ledger: ...
    def available(self, venue: str, asset: str) -> int: ...
    def inventory(self, asset: str) -> int: ...
    def net_exposure(self, asset: str) -> int: ...
    def in_flight(self, asset: str) -> tuple[int, int]: ...
    def open_orders(self, venue: str) -> int: ...
    def open_orders_total(self) -> int: ...
    def realized_pnl_today(self, marks: Mapping[str, Decimal]) -> int: ...
    def drawdown(self, marks: Mapping[str, Decimal]) -> int: ...
    def equity(self, marks: Mapping[str, Decimal]) -> int: ...


class ExecutionPortfolio(Protocol):
    """What arbengine/execution.py calls: shaped like OrderEvents, returning nothing."""

    def reserve(self, order: Order, fee_bps: Decimal) -> None: ...
    def on_fill(self, order: Order, fill: Fill) -> None: ...
    def on_done(self, order: Order) -> None: ...


def test_satisfies_the_risk_and_execution_protocols() -> None:
    ops: ExecutionPortfolio = Portfolio()  # checked by mypy
    assert ops is not None
    view: RiskPortfolio = Portfolio()  # checked by mypy
    marks = {"USDT": Decimal(1)}
    assert (view.equity(marks), view.drawdown(marks), view.realized_pnl_today(marks)) == (0, 0, 0)
    assert (view.available("x", "USDT"), view.open_orders("x"), view.open_orders_total()) == (
        0,
        0,
        0,
    )
    assert (view.inventory("BTC"), view.net_exposure("BTC")) == (0, 0)


# --- snapshot, restore, replay -----------------------------------------------------------------

Op = Callable[[Portfolio], object]


def journal() -> list[Op]:
    """A session: an arb, a cross-quote arb, a partial IOC, an UNKNOWN order, a valuation."""
    buy = order(A, Side.BUY, "60000", "0.5", "buy")
    sell = order(B, Side.SELL, "60010", "0.5", "sell")
    xsell = order(C, Side.SELL, "60020", "0.1", "xsell")
    xbuy = order(A, Side.BUY, "60001", "0.1", "xbuy")
    swap = order(SWAP, Side.SELL, "60005", "7", "swap")
    lost = order(A, Side.BUY, "60000", "0.2", "lost")
    return [
        lambda p: p.equity(MARKS | {"USD": 1}),
        lambda p: p.reserve(buy, BPS10),
        lambda p: p.reserve(sell, BPS10),
        lambda p: p.on_fill(buy, fill(buy, "59999.99", "0.3", "17.999997", "b1")),
        lambda p: p.on_fill(sell, fill(sell, "60010", "0.5", "30.005", "s1")),
        lambda p: p.on_fill(buy, fill(buy, "60000", "0.2", "12", "b2")),
        lambda p: p.on_done(buy, OrderStatus.FILLED),
        lambda p: p.on_done(sell, OrderStatus.FILLED),
        lambda p: p.reserve(xsell, Decimal(6)),
        lambda p: p.on_fill(xsell, fill(xsell, "60020", "0.1", "3.6012", "x1")),
        lambda p: p.on_done(xsell, OrderStatus.FILLED),
        lambda p: p.reserve(xbuy, BPS10),
        lambda p: p.on_fill(xbuy, fill(xbuy, "60001", "0.05", "3.00005", "x2")),
        lambda p: p.on_done(xbuy, OrderStatus.CANCELED),
        lambda p: p.reserve(swap, Decimal(5)),
        lambda p: p.on_fill(swap, fill(swap, "60005", "3", "0.90008", "w1")),
        lambda p: p.reserve(lost, BPS10),
        lambda p: p.on_done(lost, OrderStatus.UNKNOWN),
        lambda p: p.drawdown(MARKS | {"USD": Decimal("1.0001")}),
    ]


def run(ops: list[Op], p: Portfolio) -> Portfolio:
    for op in ops:
        op(p)
    return p


def start() -> Portfolio:
    return portfolio(
        binance_USDT="100000", okx_BTC="2", okx_USDT="50000", coinbase_BTC="1", coinbase_USD="0"
    )


def only_ints_and_strings(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and only_ints_and_strings(v) for k, v in value.items())
    if isinstance(value, list):
        return all(only_ints_and_strings(v) for v in value)
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def test_snapshot_is_json_and_restore_reproduces_state() -> None:
    p = run(journal(), start())
    snap = p.snapshot()
    assert only_ints_and_strings(snap)
    assert snap["reservations"][0]["client_id"] == "lost"  # UNKNOWN still held
    assert [r["client_id"] for r in snap["reservations"]] == ["lost", "swap"]
    restored = Portfolio.restore(json.loads(json.dumps(snap)), clock=Clock())
    assert restored.snapshot() == snap
    for q in (p, restored):
        assert q.reserved("binance", "USDT") == atoms("12012")  # lost: 0.2 x 60000 + 10 bps
        assert q.reserved("okx", "BTC") == atoms("0.04")  # swap: 4 contracts x 0.01 left
    # Both carry on identically.
    lost = order(A, Side.BUY, "60000", "0.2", "lost")
    for q in (p, restored):
        q.apply_fill(lost, fill(lost, "60000", "0.2", "12", "l1"))
        q.on_done(lost, OrderStatus.FILLED)
    assert restored.snapshot() == p.snapshot()
    assert restored.equity(MARKS | {"USD": 1}) == p.equity(MARKS | {"USD": 1})
    with pytest.raises(ValueError, match="version"):
        Portfolio.restore(snap | {"version": 99})


def test_replay_reproduces_state_and_replay_over_a_restore_is_a_noop() -> None:
    original = run(journal(), start())
    replayed = run(journal(), start())  # same orders and fills into a fresh portfolio
    assert replayed.snapshot() == original.snapshot()
    # After a crash: restore the snapshot, then replay the whole journal on top: every fill
    # and every finished order is recognised, nothing counts twice.
    restored = Portfolio.restore(original.snapshot(), clock=Clock())
    run(journal(), restored)
    assert restored.snapshot() == original.snapshot()


# --- property: conservation ---------------------------------------------------------------------

INSTRUMENTS = (A, B, C)


@dataclass(frozen=True)
class Trade:
    venue: int  # index into INSTRUMENTS
    side: Side
    price: int  # price units
    size: int  # size units
    fee: int  # atoms
    fee_in_base: bool
    filled_part: int  # out of 4: how much of the reservation the fill uses


trades = st.builds(
    Trade,
    venue=st.integers(0, 2),
    side=st.sampled_from([Side.BUY, Side.SELL]),
    price=st.integers(1, 10**8),
    size=st.integers(1, 10**5),
    fee=st.integers(0, 10**19),
    fee_in_base=st.booleans(),
    filled_part=st.integers(1, 4),
)


def text_atoms(inst: Instrument, price: int, size: int) -> tuple[int, int]:
    """(base atoms, quote atoms of the notional) from the grids' decimal text, independently
    of AtomScale."""
    p, s = Decimal(inst.price.format(price)), Decimal(inst.size.format(size))
    return atoms(s), atoms(p * s)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(trades, min_size=1, max_size=30), st.integers(1, 10**8))
def test_fills_conserve_assets(seq: list[Trade], close_price: int) -> None:
    big = atoms("1000000000")
    initial = {(i.venue, a): big for i in INSTRUMENTS for a in (i.base, i.quote)}
    p = Portfolio(initial, reference="USDT", clock=Clock())
    expected: dict[str, int] = {}  # independent tally of trading deltas per asset
    fees: dict[str, int] = {}
    ops: list[Op] = []

    def apply(o: Order, f: Fill) -> None:
        p.apply_fill(o, f)
        ops.append(lambda q: q.apply_fill(o, f))
        base, notional = text_atoms(o.instrument, f.price, f.size)
        inst = o.instrument
        expected[inst.base] = expected.get(inst.base, 0) + o.side * base
        expected[inst.quote] = expected.get(inst.quote, 0) - o.side * notional
        expected[f.fee_asset] = expected.get(f.fee_asset, 0) - f.fee
        fees[f.fee_asset] = fees.get(f.fee_asset, 0) + f.fee

    for n, t in enumerate(seq):
        inst = INSTRUMENTS[t.venue]
        o = Order(f"o{n}", "arb", inst, t.side, t.price, t.size * 4)
        p.reserve(o, BPS10)
        ops.append(partial(Portfolio.reserve, order=o, fee_bps=BPS10))
        asset = inst.base if t.fee_in_base else inst.quote
        apply(o, Fill(o.client_id, t.price, t.size * t.filled_part, t.fee, asset, 0, f"t{n}"))
        p.on_done(o, OrderStatus.CANCELED)
        ops.append(partial(Portfolio.on_done, order=o, status=OrderStatus.CANCELED))

        for a in {x for i in INSTRUMENTS for x in (i.base, i.quote)}:
            held = sum(p.balance(i.venue, a) for i in INSTRUMENTS)
            assert held == sum(v for (_, x), v in initial.items() if x == a) + p.inventory(a)
            assert p.inventory(a) == expected.get(a, 0)
            assert p.fees_paid(a) == fees.get(a, 0)
        # Quote is only moved by trading: what it moved = realized PnL - basis still open.
        for q in ("USDT", "USD"):
            assert p.inventory(q) == p.realized(q) - p.cost_basis("BTC").get(q, 0)
        assert p.inventory("BTC") == p.position("BTC") - fees.get("BTC", 0)
        assert p.reserved(inst.venue, inst.quote) == p.reserved(inst.venue, inst.base) == 0
    assert p.open_orders_total() == 0

    # Flatten the position on coinbase (the finest lot, so any position is on its grid):
    # nothing is left open, so all quote moved is realized.
    position = p.position("BTC")
    if position:
        size, rest = divmod(abs(position), AtomScale.of(C).base_per_size)
        assert rest == 0
        side = Side.SELL if position > 0 else Side.BUY
        o = Order("flat", "arb", C, side, close_price, size)
        apply(o, Fill("flat", close_price, size, 0, "USD", 0, "flat"))
    assert p.position("BTC") == 0
    assert p.cost_basis("BTC") == {}
    for q in ("USDT", "USD"):
        assert p.inventory(q) == p.realized(q) == expected.get(q, 0)
    # Replaying the same calls into a fresh portfolio gives the same state.
    assert run(ops, Portfolio(initial, reference="USDT", clock=Clock())).snapshot() == p.snapshot()
    assert Portfolio.restore(p.snapshot(), clock=Clock()).snapshot() == p.snapshot()
    # With integer marks nothing rounds, and flat, equity moved by exactly the realized PnL
    # (fees in BTC included: they are realized as BTC).
    marks = {"USDT": 1, "USD": 2, "BTC": 7}
    start_equity = Portfolio(initial, reference="USDT").equity(marks)
    assert p.equity(marks) - start_equity == p.realized_pnl(marks)


PERP2 = Instrument(
    "binance_usdm", "BTCUSDT_260327", "BTC", "USDT", tick="0.1", lot="0.001", derivative=True
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from([PERP, PERP2]),
            st.sampled_from([Side.BUY, Side.SELL]),
            st.integers(1, 10**7),
            st.integers(1, 10**4),
            st.integers(0, 10**19),
        ),
        min_size=1,
        max_size=40,
    ),
    st.integers(1, 10**6),
)
def test_derivative_fills_keep_the_wallet_identity(
    seq: list[tuple[Instrument, Side, int, int, int]], mark: int
) -> None:
    # However the average cost rounds, the wallet (quote balance) is what the notionals and
    # fees moved plus the open contracts' entry values: the venue's wallet and the cash a
    # spot ledger would hold differ by exactly the entry.
    start = atoms("1000000000")
    p = Portfolio({("binance_usdm", "USDT"): start}, clock=Clock())
    flows, fees, positions = 0, 0, {PERP: 0, PERP2: 0}
    for n, (inst, side, price, size, fee) in enumerate(seq):
        o = Order(f"o{n}", "arb", inst, side, price, size)
        p.reserve(o, BPS10)
        p.apply_fill(o, Fill(o.client_id, price, size, fee, "USDT", 0, f"t{n}"))
        p.on_done(o, OrderStatus.FILLED)
        base, notional = text_atoms(inst, price, size)
        flows -= side * notional
        fees += fee
        positions[inst] += side * base
        entries = 0
        for i in (PERP, PERP2):
            position, entry = p.contract(i.venue, i.symbol)
            assert position == positions[i]
            assert entry == 0 if position == 0 else (entry > 0) == (position > 0)
            entries += entry
        wallet = p.balance("binance_usdm", "USDT")
        assert wallet == start + flows - fees + entries
        assert p.balance("binance_usdm", "BTC") == sum(positions.values())
        assert wallet == start + p.inventory("USDT")
        assert p.reserved("binance_usdm", "USDT") == 0
        # Valued with an integer mark nothing rounds: the wallet plus the positions at the
        # mark less their entry, i.e. what a spot ledger's cash and base would be worth.
        worth = start + flows - fees + sum(positions.values()) * mark
        assert p.equity({"BTC": mark}) == worth
    assert Portfolio.restore(p.snapshot(), clock=Clock()).snapshot() == p.snapshot()


# --- property: the O(1) counters agree with a recount --------------------------------------------

COUNTED = (A, B, C, ETH, SWAP)
# Equal rates written differently share one cached ratio; the odd one rounds every fee up.
RATES = (Decimal(0), BPS10, Decimal("10.0"), Decimal("7.5"), Decimal("3.333333333333333333"))
STATUSES = (
    OrderStatus.FILLED,
    OrderStatus.CANCELED,
    OrderStatus.REJECTED,
    OrderStatus.UNKNOWN,  # not final: keeps the reservation
    OrderStatus.ACKED,
)


@dataclass(frozen=True)
class Step:
    # reserve (new order) | again (reserve an existing one) | fill | done | restore | deposit
    kind: str
    n: int  # instrument (reserve, deposit) or which existing order (the others)
    side: Side  # deposit: BUY into the quote account, SELL into the base one
    price: int  # deposit: the atoms moved, signed
    size: int
    rate: int  # index into RATES
    status: OrderStatus
    replayed: bool  # fill: repeat the order's last trade id (a duplicate report)
    fee: int  # fill: atoms of fee (0: none) ...
    fee_asset: int  # ... in the quote (0), the base (1) or a third asset (2)


steps = st.builds(
    Step,
    kind=st.sampled_from(
        ["reserve", "reserve", "again", "fill", "fill", "done", "restore", "deposit"]
    ),
    n=st.integers(0, 1000),
    side=st.sampled_from([Side.BUY, Side.SELL]),
    price=st.integers(1, 10**8),
    size=st.integers(1, 10**4),
    rate=st.integers(0, len(RATES) - 1),
    status=st.sampled_from(STATUSES),
    replayed=st.booleans(),
    fee=st.sampled_from([0, 0, 1, 10**15]),
    fee_asset=st.integers(0, 2),
)


def recount(p: Portfolio) -> None:
    """Every O(1) answer, and every cell of the ledger the risk gates read, against a
    brute-force pass over the snapshot's reservations, balances and starting lines (never its
    inventory, which comes from the ledger), amounts worked out with AtomScale's own notional
    and fee. Cells nothing touched (looked up here, as the gates do) must read zero and add
    no row anywhere."""
    snap = p.snapshot()
    rows = snap["reservations"]
    led = p.ledger
    assert p.open_orders_total() == len(rows) == led.open_total
    venues = {i.venue for i in COUNTED} | {line.venue for line in led.venue_lines()}
    for venue in venues:
        n = sum(1 for r in rows if r["venue"] == venue)
        assert p.open_orders(venue) == led.venue(venue).open_orders == n
    balances = {(v, a): n for v, a, n in snap["balances"]}
    start = {(v, a): n for v, a, n in snap["start"]}
    assets = {a for i in COUNTED for a in (i.base, i.quote)} | {a for _, a in balances}
    assets |= {line.asset for line in led.asset_lines()}
    for asset in assets:
        left = [
            (r["side"], max(r["size"] - r["filled"], 0) * r["base_per_size"])
            for r in rows
            if r["base"] == asset
        ]
        buy = sum(n for side, n in left if side == Side.BUY)
        sell = sum(n for side, n in left if side == Side.SELL)
        line = led.asset(asset)
        assert p.in_flight(asset) == (line.open_buy, line.open_sell) == (buy, sell)
        # Every venue's holding of the asset less its starting line: what trading changed.
        traded = sum(n for (_, a), n in balances.items() if a == asset)
        traded -= sum(n for (_, a), n in start.items() if a == asset)
        assert p.inventory(asset) == p.net_exposure(asset) == line.inventory == traded
    held: dict[tuple[str, str], int] = {}
    for r in rows:
        scale = AtomScale(r["base_per_size"], r["quote_per_price_size"])
        remaining = max(r["size"] - r["filled"], 0)
        if r["side"] == Side.BUY:
            key = (r["venue"], r["quote"])
            amount = scale.notional(r["price"], remaining)
            amount += scale.fee(r["price"], remaining, Decimal(r["fee_bps"]))
        else:
            key = (r["venue"], r["base"])
            amount = scale.base(remaining)
        held[key] = held.get(key, 0) + amount
    keys = {(i.venue, a) for i in COUNTED for a in (i.base, i.quote)} | set(balances) | set(held)
    keys |= {acct.key for acct in led.accounts()}
    for venue, asset in keys:
        want = balances.get((venue, asset), 0) - held.get((venue, asset), 0)
        assert p.available(venue, asset) == led.account(venue, asset).available == want
        assert p.reserved(venue, asset) == held.get((venue, asset), 0)
    assert all(type(a.available) is int for a in led.accounts())
    # The lookups above created cells for keys nothing had touched: still no new row.
    assert p.snapshot() == snap
    assert p.balances() == balances


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(steps, max_size=60))
def test_open_order_and_in_flight_counters_match_a_recount(seq: list[Step]) -> None:
    p = Portfolio(clock=Clock())
    orders: list[Order] = []
    trades: dict[str, str] = {}  # client id -> last trade id
    for k, step in enumerate(seq):
        if step.kind == "reserve" or not orders:
            inst = COUNTED[step.n % len(COUNTED)]
            o = Order(f"o{len(orders)}", "arb", inst, step.side, step.price, step.size)
            orders.append(o)
            p.reserve(o, RATES[step.rate])
        elif step.kind == "again":  # idempotent, even at another rate or after done
            p.reserve(orders[step.n % len(orders)], RATES[step.rate])
        elif step.kind == "fill":
            o = orders[step.n % len(orders)]
            # Any size: past what is left (an over-fill), or on an order already done.
            trade = trades.get(o.client_id, "") if step.replayed else ""
            trade = trade or f"t{k}"
            trades[o.client_id] = trade
            inst = o.instrument
            fee_asset = (inst.quote, inst.base, "BNB")[step.fee_asset]
            p.on_fill(o, Fill(o.client_id, o.price, step.size, step.fee, fee_asset, 0, trade))
        elif step.kind == "done":
            p.on_done(orders[step.n % len(orders)], step.status)
        elif step.kind == "deposit":
            inst = COUNTED[step.n % len(COUNTED)]
            asset = inst.quote if step.side == Side.BUY else inst.base
            p.deposit(inst.venue, asset, step.price if step.size % 2 else -step.price)
        else:
            p = Portfolio.restore(json.loads(json.dumps(p.snapshot())), clock=Clock())
        recount(p)
    # A restored copy's ledger is filled from the snapshot alone.
    recount(Portfolio.restore(json.loads(json.dumps(p.snapshot())), clock=Clock()))


def test_a_cell_looked_up_first_is_the_one_every_change_updates() -> None:
    """The gates look their cells up once, at startup, before anything happened; those very
    objects must follow every deposit, reservation, fill and release, and looking them up
    must not add rows to the balances or the snapshot."""
    p = Portfolio(clock=Clock())
    led = p.ledger
    usdt = led.account("binance", "USDT")
    btc_account = led.account("binance", "BTC")
    btc = led.asset("BTC")
    binance = led.venue("binance")
    led.account("kraken", "XBT"), led.asset("XBT"), led.venue("kraken")  # never used
    assert p.balances() == {}
    assert p.snapshot() == Portfolio(clock=Clock()).snapshot()

    def run(q: Portfolio) -> None:
        q.deposit("binance", "USDT", atoms("10000"))
        o = order(A, Side.BUY, "50000", "0.1", "b1")
        q.reserve(o, BPS10)
        q.apply_fill(o, fill(o, "50000", "0.04", "2", "t1"))
        q.on_done(o, OrderStatus.CANCELED)

    p.deposit("binance", "USDT", atoms("10000"))
    assert led.account("binance", "USDT") is usdt
    assert usdt.available == atoms("10000")
    o = order(A, Side.BUY, "50000", "0.1", "b1")
    p.reserve(o, BPS10)
    assert usdt.available == atoms("4995")  # 10000 - (0.1 x 50000 + 10 bps)
    assert (binance.open_orders, led.open_total, btc.open_buy) == (1, 1, atoms("0.1"))
    # 0.04 filled for 2000 and a 2 USDT fee; the 0.06 left holds 3000 + 3.
    p.apply_fill(o, fill(o, "50000", "0.04", "2", "t1"))
    assert usdt.available == atoms("4995")  # 10000 - 2000 - 2 - 3003
    assert (btc.inventory, btc_account.available, btc.open_buy) == (
        atoms("0.04"),
        atoms("0.04"),
        atoms("0.06"),
    )
    assert led.asset("USDT").inventory == -atoms("2002")
    p.on_done(o, OrderStatus.CANCELED)
    assert usdt.available == atoms("7998")
    assert (binance.open_orders, led.open_total, btc.open_buy) == (0, 0, 0)
    assert btc.inventory == atoms("0.04")

    # The same history without the early lookups: the same rows, the same snapshot.
    q = Portfolio(clock=Clock())
    run(q)
    assert p.balances() == q.balances()
    assert p.snapshot() == q.snapshot()
    assert ("kraken", "XBT") not in p.balances()
    assert "XBT" not in p.snapshot()["inventory"]

    # A restored portfolio has a new ledger, filled to the same numbers.
    r = Portfolio.restore(p.snapshot(), clock=Clock())
    assert r.ledger is not led
    assert r.ledger.account("binance", "USDT").available == atoms("7998")
    assert r.ledger.asset("BTC").inventory == atoms("0.04")
