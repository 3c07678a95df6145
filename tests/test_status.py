"""The status snapshot, read off the real engine of tests/engine_rig.py, and its renderings."""

from __future__ import annotations

import re
from decimal import Decimal

import orjson

from arbengine.orders import atoms, from_atoms
from arbengine.risk import KillLevel
from arbengine.status import LATENCY_WINDOW, Status, collect, latency, render, summary
from arbengine.venues._sync import BookSync
from tests.engine_rig import BINANCE, Make, Rig


def snap(rig: Rig, *books: BookSync) -> Status:
    return collect(rig.engine, books, wall_ns=rig.clock.wall())


def test_latency_percentiles_by_nearest_rank() -> None:
    assert latency([]) == {"samples": 0, "p50_ns": None, "p99_ns": None}
    assert latency([7]) == {"samples": 1, "p50_ns": 7, "p99_ns": 7}
    shuffled = [(i * 37) % 100 + 1 for i in range(100)]  # 1..100 in a scrambled order
    assert sorted(shuffled) == list(range(1, 101))
    assert latency(shuffled) == {"samples": 100, "p50_ns": 50, "p99_ns": 99}
    assert latency([1, 2, 3, 4]) == {"samples": 4, "p50_ns": 2, "p99_ns": 4}
    # Only the most recent window counts: old slow arbs drop out.
    old = [10**9] * 50
    assert latency(old + [5] * LATENCY_WINDOW)["p99_ns"] == 5
    assert latency(old + list(range(1, 11)), window=10) == {
        "samples": 10,
        "p50_ns": 5,
        "p99_ns": 10,
    }


async def test_a_quiet_market(make: Make) -> None:
    rig = make(pairs=("btc", "xq"))
    rig.clock.advance(1_500_000_000)
    rig.quiet("okx")  # okx's book is fresh, the others 1.5 s old
    st = snap(rig)
    assert orjson.loads(orjson.dumps(st)) == st  # plain JSON, as the socket sends it
    ages = {b["venue"]: b["age_ms"] for b in st["books"]}
    assert ages == {"binance": 1500, "okx": 0, "kraken": 1500, "coinbase": 1500}
    assert [p["pair_id"] for p in st["pairs"]] == ["btc", "xq"]
    xq = st["pairs"][1]
    assert xq["live"] is True and xq["b"] == "kraken:XBT/USD"
    # Cross-quote: the edge is in A's quote through the coinbase USDT-USD book; quiet books
    # lose about the fees and spreads either way.
    edges = (xq["edge_a_to_b_bps"], xq["edge_b_to_a_bps"])
    assert all(e is not None and Decimal(e) < -15 for e in edges), edges
    pf = st["portfolio"]
    assert (pf["realized_pnl"], pf["drawdown"], pf["exposure_value"]) == ("0", "0", "0")
    assert pf["inventory"] == {} and pf["exposure"] == {} and pf["unpriced"] == []
    assert Decimal(pf["equity"] or "") == from_atoms(rig.portfolio.equity(rig.engine.marks()))
    assert st["risk"]["breakers"] == dict.fromkeys(
        ["binance", "coinbase", "kraken", "okx"], "closed"
    )

    text = render(st)
    assert text.splitlines()[:6] == [
        "kill switch: off",
        "books (4/4 live):",
        "  binance   BTCUSDT   LIVE  age 1500 ms  29999.00 / 30001.00",
        "  okx       BTC-USDT  LIVE  age 0 ms     29999.9 / 30000.1",
        "  kraken    XBT/USD   LIVE  age 1500 ms  30029.9 / 30030.1",
        "  coinbase  USDT-USD  LIVE  age 1500 ms  1.0009 / 1.0011",
    ]
    assert "refusals by gate: none" in text
    assert "venues: all breakers closed, all healthy" in text
    assert summary(st) == (
        "books 4/4 live | opportunities 0 | trades 0 | pnl 0 USDT | tick-to-order p50 - p99 -"
    )


async def test_after_an_arb_and_a_kill(make: Make) -> None:
    rig = make()
    rig.rich("okx")
    await rig.settle()
    rig.engine.kill(KillLevel.HALT_NEW, "alice", "enough for today")
    rig.rich("okx", bid="30200")  # found again, refused
    st = snap(rig)
    (pair,) = st["pairs"]
    assert pair["opportunities"] == 2 and pair["last_refusal"] == "KILL_SWITCH"
    risk = st["risk"]
    assert (risk["kill_level"], risk["kill_by"], risk["kill_why"]) == (
        "HALT_NEW",
        "alice",
        "enough for today",
    )
    assert risk["kill_wall_ns"] == rig.clock.wall()
    assert risk["refusals"] == {"KILL_SWITCH": 1}
    pnl = rig.portfolio.realized_pnl(rig.engine.marks())
    assert pnl > 0 and st["portfolio"]["realized_pnl"] == str(from_atoms(pnl))
    assert st["portfolio"]["inventory"] == {
        "USDT": str(from_atoms(rig.portfolio.inventory("USDT")))
    }
    (sample,) = rig.engine.latencies_ns
    assert st["latency"] == {"samples": 1, "p50_ns": sample, "p99_ns": sample}

    text = render(st)
    assert re.search(
        r"^kill switch: HALT_NEW by alice: enough for today \(since \d{4}-\d\d-\d\dT[\d:]{8}Z\)$",
        text,
        re.M,
    ), text
    assert "  okx      BTC-USDT  LIVE  age 0 ms  30200.0 / 30210.0" in text
    assert re.search(r"^  btc .* opportunities 2  last refused: KILL_SWITCH$", text, re.M), text
    assert "refusals by gate: KILL_SWITCH 1" in text
    assert f"tick-to-order: p50 {sample // 1000} us, p99 {sample // 1000} us (last 1 arbs)" in text
    assert "executor counters: arbs 1, arbs_done 1" in text
    assert summary(st) == (
        f"books 2/2 live | opportunities 2 | trades 1 | pnl {from_atoms(pnl)} USDT | "
        f"tick-to-order p50 {sample // 1000} us p99 {sample // 1000} us | KILL HALT_NEW"
    )


async def test_books_down_and_feeds_books_outside_the_pairs(make: Make) -> None:
    rig = make()
    spare = BookSync(BINANCE, "binance_spot")  # a feed's book no pair trades, never synced
    rig.gap("okx")
    st = snap(rig, spare, rig.venues["binance"].sync)  # the pairs' books are listed once
    assert [(b["venue"], b["state"]) for b in st["books"]] == [
        ("binance", "LIVE"),
        ("okx", "RESYNCING"),
        ("binance", "DOWN"),
    ]
    okx, down = st["books"][1], st["books"][2]
    assert okx["gaps"] == 1 and okx["bid"] is None and okx["last_error"]
    assert okx["age_ms"] is None  # the resync emptied the book: no frame since
    assert down["age_ms"] is None and down["bid"] is None
    (pair,) = st["pairs"]
    assert pair["live"] is False and pair["edge_a_to_b_bps"] is None
    text = render(st)
    assert "books (1/3 live):" in text
    assert re.search(
        r"^  okx +BTC-USDT +RESYNCING +age - +- +resyncs 1, gaps 1, last error: prevSeqId ",
        text,
        re.M,
    ), text
    assert re.search(r"^  btc .*  - / - bps  ", text, re.M), text
    assert summary(st).startswith("books 1/3 live | ")


async def test_an_asset_without_a_mark_is_named_not_valued_at_zero(make: Make) -> None:
    rig = make(balances={("okx", "ETH"): "3"})  # held, but no book prices ETH
    st = snap(rig)
    pf = st["portfolio"]
    assert pf["unpriced"] == ["ETH"]
    assert pf["equity"] is None and pf["drawdown"] is None
    assert pf["realized_pnl"] == "0"  # nothing realized in ETH: still valued
    assert "equity ?, drawdown ?" in render(st)
    assert "no price yet for: ETH" in render(st)
    assert rig.portfolio.balance("okx", "ETH") == atoms("3")


async def test_collecting_changes_nothing_the_engine_counts(make: Make) -> None:
    rig = make()
    rig.rich("okx")
    await rig.settle()
    before = (
        dict(rig.engine.counters),
        dict(rig.executor.counters),
        list(rig.gates.counts),
        [p.evaluations for p in rig.engine.pairs],
        len(rig.entries()),
    )
    for _ in range(3):
        snap(rig)
    after = (
        dict(rig.engine.counters),
        dict(rig.executor.counters),
        list(rig.gates.counts),
        [p.evaluations for p in rig.engine.pairs],
        len(rig.entries()),
    )
    assert after == before
