"""Recovery from the journal: the state rebuilt from any durable prefix equals the state the
process had when that prefix was written.

A busy in-process session (real Executor, PaperGateways on real compiled books with reject,
timeout and late-fill injection, both leg-failure policies, checkpoints and kill-switch changes
along the way) is sampled at every consistent point (between event-loop callbacks). For each
sample the journal is cut right after the sample's last entry, as a crash would leave it, and
``recover`` must rebuild exactly that portfolio, those open orders, that exposure and that
kill-switch level. Then a fresh engine adopts a recovery taken mid-trade and settles it.
"""

from __future__ import annotations

import asyncio
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from arbengine._core.book import Book
from arbengine._core.instrument import Instrument
from arbengine.engine import Engine, GateCheck
from arbengine.execution import (
    ArbState,
    ExecutionPolicy,
    Executor,
    LegPolicy,
    Opportunity,
)
from arbengine.journal import Journal, journal_files, read_entries, verify
from arbengine.orders import OrderStatus, atoms
from arbengine.portfolio import Portfolio
from arbengine.recovery import Recovery, RecoveryError, recover
from arbengine.risk import KillLevel, PairLimits, RiskGates, RiskLimits, VenueLimits
from arbengine.venues.paper import PaperGateway
from tests.waiting import until

FEE = Decimal("10")
A = Instrument("binance", "BTCUSDT", "BTC", "USDT", tick="0.01", lot="0.001")
B = Instrument("okx", "BTC-USDT", "BTC", "USDT", tick="0.1", lot="0.0001")
INSTRUMENTS = (A, B)


def book(inst: Instrument, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> Book:
    b = Book(name=inst.name)
    b.apply(
        [(inst.price.parse(p), inst.size.parse(s)) for p, s in bids],
        [(inst.price.parse(p), inst.size.parse(s)) for p, s in asks],
        seq=1,
    )
    return b


BOOKS = {
    A: book(A, [("59990", "0.05"), ("59980", "1")], [("60000", "0.03"), ("60010", "1")]),
    B: book(B, [("60100", "0.04"), ("60090", "1")], [("60110", "0.05"), ("60120", "1")]),
}


def book_of(inst: Instrument) -> Callable[[str], Book]:
    return lambda _symbol: BOOKS[inst]


def start_portfolio() -> Portfolio:
    return Portfolio(
        {
            (v, a): atoms(n)
            for v in ("binance", "okx")
            for a, n in (("BTC", "5"), ("USDT", "500000"))
        }
    )


@dataclass
class Session:
    journal: Journal
    portfolio: Portfolio
    gateways: dict[str, PaperGateway]
    executor: Executor
    engine: Engine
    gates: RiskGates


def session(directory: Path, portfolio: Portfolio, **paper: dict[str, Any]) -> Session:
    journal = Journal(directory, batch_ms=1)
    gateways = {
        inst.venue: PaperGateway(
            inst.venue,
            book_of(inst),
            portfolio,
            fee_bps=FEE,
            latency_s=0.002,
            seed=i,
            **paper.get(inst.venue, {}),
        )
        for i, inst in enumerate(INSTRUMENTS)
    }
    limits = RiskLimits(
        venues=(VenueLimits("binance"), VenueLimits("okx")),
        pairs=(
            PairLimits(
                "btc",
                A,
                B,
                min_edge_bps="1",
                max_edge_bps="500",
                max_base="1",
                max_notional="100000",
            ),
        ),
        max_inventory={"BTC": "10"},
        max_net_exposure={"BTC": "10"},
        max_daily_loss="1000000",
        max_drawdown="1000000",
    )
    gates = RiskGates(limits, portfolio)
    executor = Executor(
        gateways,
        portfolio,
        journal,
        fee_bps={"binance": FEE, "okx": FEE},
        books=lambda inst: BOOKS[inst],
    )
    engine = Engine([], executor=executor, risk=GateCheck(gates), journal=journal)
    return Session(journal, portfolio, gateways, executor, engine, gates)


def opportunity(n: int, rng: random.Random) -> Opportunity:
    """Buy on A and sell on B (or back), sized past the top level now and then so legs fill
    partly, and at a limit that sometimes misses so IOC legs expire unfilled."""
    buy, sell = (A, B) if n % 2 == 0 else (B, A)
    size = rng.choice(["0.01", "0.02", "0.05", "0.2"])
    buy_px = BOOKS[buy].best_ask()
    sell_px = BOOKS[sell].best_bid()
    assert buy_px is not None and sell_px is not None
    miss = rng.random() < 0.15
    return Opportunity(
        arb_id=f"t-{n}",
        pair_id="btc",
        buy=buy,
        sell=sell,
        buy_price=buy_px[0] - (buy.price.parse("50") if miss else 0),
        buy_size=buy.size.parse(size),
        sell_price=sell_px[0],
        sell_size=sell.size.parse(size),
        edge_num=25,
        edge_den=2,
        recv_ns=0,
        base_qty=int(Decimal(size).scaleb(8)),
        size_decimals=8,
    )


def state_of(s: Session) -> dict[str, Any]:
    """What recovery must give back, in the shape ``recovered_state`` gives it."""
    orders = {}
    for arb in s.executor.arbs.values():
        if arb.state == ArbState.DONE:
            continue
        for o in arb.legs + arb.hedges:
            orders[o.client_id] = (o.status, o.filled, o.cost, o.fee, len(o.fills))
    return {
        "portfolio": s.portfolio.snapshot(),
        "orders": orders,
        "open_arbs": sorted(a.arb_id for a in s.executor.arbs.values() if a.state != "done"),
        "exposure": {k: v for k, v in s.executor.exposure.items() if v},
        "kill": s.gates.level,
        "arbs": s.executor.counters.get("arbs", 0),
        "arbs_done": s.executor.counters.get("arbs_done", 0),
    }


def recovered_state(rec: Recovery) -> dict[str, Any]:
    orders = {
        o.client_id: (o.status, o.filled, o.cost, o.fee, len(o.fills))
        for arb in rec.arbs.values()
        for o in arb.legs + arb.hedges
    }
    return {
        "portfolio": rec.portfolio.snapshot(),
        "orders": orders,
        "open_arbs": sorted(rec.arbs),
        "exposure": {k: v for k, v in rec.exposure.items() if v},
        "kill": rec.kill_level,
        "arbs": rec.executor_counters.get("arbs", 0),
        "arbs_done": rec.executor_counters.get("arbs_done", 0),
    }


def cut(src: Path, dst: Path, last_seq: int) -> None:
    """Copy the journal as a crash after entry ``last_seq`` became durable leaves it."""
    dst.mkdir()
    for path in journal_files(src):
        kept = []
        for line in path.read_bytes().splitlines(keepends=True):
            if orjson.loads(line)["seq"] > last_seq:
                break
            kept.append(line)
        if kept:
            (dst / path.name).write_bytes(b"".join(kept))


async def busy_session(s: Session, arbs: int, seed: int) -> list[tuple[int, dict[str, Any]]]:
    """Run ``arbs`` arbs with operator actions and checkpoints between them; sample the state
    at every consistent point where the journal grew."""
    samples: list[tuple[int, dict[str, Any]]] = []
    running = True

    async def sampler() -> None:
        seen = -1
        while running:
            if s.journal.last_seq != seen:
                seen = s.journal.last_seq
                samples.append((seen, state_of(s)))
            await asyncio.sleep(0)

    task = asyncio.create_task(sampler())
    rng = random.Random(seed)
    s.engine.checkpoint()
    for n in range(arbs):
        policy = ExecutionPolicy(
            leg_policy=LegPolicy.CHASE if n % 3 == 0 else LegPolicy.UNWIND,
            order_timeout_s=0.02,
            query_interval_s=0.01,
            leg_deadline_s=0.2,
        )
        assert s.executor.execute(opportunity(n, rng), policy, 2**62) is not None
        if n % 4 == 1:  # overlap arbs now and then
            await asyncio.sleep(rng.choice([0, 0.001, 0.004]))
        else:
            await until(lambda: s.executor.open_arbs() == 0)
        if n == arbs // 3:
            s.engine.kill(KillLevel.HALT_NEW, "operator", "lunch")
            s.engine.write_counters()
        if n == arbs // 2:
            s.engine.checkpoint()  # with arbs possibly open
        if n == 2 * arbs // 3:
            s.engine.resume("operator", "back")
            s.engine.kill(KillLevel.REDUCE_ONLY, "risk:drawdown", "test trip")
    await until(lambda: s.executor.open_arbs() == 0)
    s.journal.flush()
    running = False
    await task
    return samples


@pytest.fixture
def paper_faults() -> dict[str, dict[str, Any]]:
    return {
        "binance": {"timeout_prob": 0.15, "late_fill_s": 0.03},
        "okx": {"reject_prob": 0.2, "timeout_prob": 0.15, "late_fill_s": 0.01},
    }


async def test_any_durable_prefix_recovers_the_state_it_was_written_in(
    tmp_path: Path, paper_faults: dict[str, dict[str, Any]]
) -> None:
    s = session(tmp_path / "j", start_portfolio(), **paper_faults)
    samples = await busy_session(s, arbs=40, seed=5)
    log = list(read_entries(tmp_path / "j"))
    events = {e["event"] for e in log}
    # The session really went through what recovery has to replay.
    for needed in ("arb", "order", "fill", "done", "unknown", "leg_failure", "arb_done"):
        assert needed in events, needed
    assert sum(e["event"] == "checkpoint" for e in log) == 2
    assert any(e["event"] == "done" and e["status"] == "rejected" for e in log)
    assert any(e["event"] == "fill" and e["late"] for e in log)
    assert any(e["event"] == "order" and e["purpose"] != "entry" for e in log)
    mid_trade = [st for _, st in samples if st["orders"]]
    assert len(mid_trade) > 20
    s.journal.close()
    for gw in s.gateways.values():
        gw.close()
    await s.executor.close()

    checked = 0
    for i, (seq, want) in enumerate(samples):
        if seq < 3:  # before the first checkpoint: nothing to recover yet
            continue
        where = tmp_path / f"cut{i}"
        cut(tmp_path / "j", where, seq)
        rec = recover(where, INSTRUMENTS)
        assert rec.last_seq == seq
        assert recovered_state(rec) == want, f"after entry {seq}"
        checked += 1
        shutil.rmtree(where)
    assert checked > 100


async def test_an_adopted_recovery_resolves_open_orders_and_trading_resumes(
    tmp_path: Path,
) -> None:
    """Cut mid-trade (legs sent, not answered), then a new process: its paper venues never
    saw those orders, so the query says so and they end REJECTED, never assumed."""
    directory = tmp_path / "j"
    s = session(directory, start_portfolio())
    s.engine.checkpoint()
    rng = random.Random(1)
    policy = ExecutionPolicy(order_timeout_s=5, query_interval_s=0.01)
    for n in range(3):
        s.executor.execute(opportunity(n, rng), policy, 2**62)
        await until(lambda: s.executor.open_arbs() == 0)
    s.executor.execute(opportunity(3, rng), policy, 2**62)  # in flight when we "crash"
    s.journal.flush()
    before = s.portfolio.snapshot()
    # kill -9: nothing more reaches the journal, the gateways' pending orders die.
    for gw in s.gateways.values():
        gw.close()
    s.journal.close()
    await s.executor.close()

    rec = recover(directory, INSTRUMENTS)
    assert rec.portfolio.snapshot() == before
    assert sorted(rec.arbs) == ["t-3"]
    assert {o.client_id for o in rec.open_orders()} == {"t-3-B", "t-3-S"}
    # n = 3 buys on OKX and sells on Binance: both reservations come back.
    assert (
        rec.portfolio.reserved("okx", "USDT") > 0 and rec.portfolio.reserved("binance", "BTC") > 0
    )

    s2 = session(directory, rec.portfolio)
    s2.engine.adopt(rec)
    assert s2.engine.arb_prefix != ""  # fresh ids; t-3 stays the recovered arb's
    await until(lambda: s2.executor.open_arbs() == 0)
    arb = s2.executor.arbs["t-3"]
    assert all(o.status == OrderStatus.REJECTED for o in arb.legs)
    assert all(o.reason == "unknown to venue" for o in arb.legs)
    for venue in ("binance", "okx"):
        for asset in ("BTC", "USDT"):
            assert rec.portfolio.reserved(venue, asset) == 0
    assert s2.executor.counters["unknown"] == 2
    # Trading resumes on the recovered portfolio.
    s2.executor.execute(opportunity(4, rng), policy, 2**62)
    await until(lambda: s2.executor.open_arbs() == 0)
    s2.journal.flush()
    log = list(read_entries(directory))
    recovered = [e for e in log if e["event"] == "recovered"]
    assert len(recovered) == 1 and recovered[0]["open_orders"] == 2
    assert [e["event"] for e in log].count("checkpoint") == 2  # first start, after recovery
    assert verify(journal_files(directory)).clean
    for gw in s2.gateways.values():
        gw.close()
    s2.journal.close()
    await s2.executor.close()

    # And the journal as a whole recovers to the state the second session ended in.
    again = recover(directory, INSTRUMENTS)
    assert again.portfolio.snapshot() == rec.portfolio.snapshot()
    assert not again.arbs


async def test_kill_switch_survives_a_restart(tmp_path: Path) -> None:
    directory = tmp_path / "j"
    s = session(directory, start_portfolio())
    s.engine.checkpoint()
    s.engine.kill(KillLevel.FLATTEN, "risk:daily_loss", "lost too much")
    s.journal.close()
    rec = recover(directory, INSTRUMENTS)
    assert (rec.kill_level, rec.kill_by) == (KillLevel.FLATTEN, "risk:daily_loss")
    s2 = session(directory, rec.portfolio)
    s2.engine.adopt(rec)
    assert s2.gates.level == KillLevel.FLATTEN  # only an operator lowers it
    assert s2.engine.resume("operator", "checked") == KillLevel.NONE
    s2.journal.close()
    assert recover(directory, INSTRUMENTS).kill_level == KillLevel.NONE


def test_first_start_and_bad_journals(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RecoveryError, match="no checkpoint"):
        recover(empty, INSTRUMENTS)
    rec = recover(empty, INSTRUMENTS, portfolio=start_portfolio)
    assert rec.portfolio.balance("binance", "USDT") == atoms("500000") and not rec.arbs

    # An instrument that is no longer configured is named, not a traceback.
    j = Journal(tmp_path / "j")
    j.write("checkpoint", state=_state_with_order())
    j.close()
    with pytest.raises(
        RecoveryError, match=r"journal entry 2: binance:ETHUSDT is not a configured"
    ):
        recover(tmp_path / "j", INSTRUMENTS)

    # A fill for an order the journal never opened.
    j = Journal(tmp_path / "k")
    j.write("fill", client_id="x-B", price=1, size=1, fee=0, fee_asset="USDT", trade_id="1")
    j.close()
    with pytest.raises(RecoveryError, match="fill entry before any checkpoint"):
        recover(tmp_path / "k", INSTRUMENTS)
    with pytest.raises(RecoveryError, match="journal entry 2: fill entry has no field 'arb_id'"):
        recover(tmp_path / "k", INSTRUMENTS, portfolio=start_portfolio)


def _state_with_order() -> dict[str, Any]:
    return {
        "version": 1,
        "portfolio": start_portfolio().snapshot(),
        "open_arbs": [
            {
                "arb_id": "x",
                "pair_id": "eth",
                "buy": "binance:ETHUSDT",
                "sell": "okx:ETH-USDT",
                "edge_bps": "10",
                "hedging": False,
                "orders": [],
            }
        ],
        "exposure": {},
        "kill": {"level": "NONE", "by": "", "why": ""},
        "engine_counters": {},
        "executor_counters": {},
        "risk_counters": {},
    }
