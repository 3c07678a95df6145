"""The compiled per-pair arb check (``_core.gates.ArbGate``) the engine calls, held to the
unpacked ``RiskGates.check`` (itself held to the pure-Python reference by
tests/test_gates_oracle.py): the same verdict, counted the same, for both directions and
every kind of refusal the engine can meet, read straight from the spread result and the
pair's books."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from arbengine._core.gates import ArbGate
from arbengine._core.spread import BUY_A_SELL_B, BUY_B_SELL_A, OK, SpreadResult
from arbengine.risk import KillLevel, Reason
from tests.engine_rig import MS, Make, Rig

S = 1_000_000_000


def _dislocated(rig: Rig, direction: int) -> SpreadResult:
    """A book state with an edge in ``direction`` (A = Binance, B = OKX), its result
    computed by the pair's own calculator. The engine fires on it once; the kill switch
    then keeps it from firing again while the test checks."""
    if direction == BUY_A_SELL_B:
        rig.rich("okx")  # OKX bids above Binance's ask: buy Binance, sell OKX
    else:
        rig.rich("binance")
    pair = rig.pairs["btc"]
    res = pair.calc.calc(pair.sync_a.book, pair.sync_b.book, direction)
    assert res.status == OK and res.direction == direction
    return res


def _both(rig: Rig, res: SpreadResult, recv_ns: int) -> tuple[int, int]:
    """(ArbGate.check, RiskGates.check with the same fields unpacked)."""
    pair = rig.pairs["btc"]
    gate = pair.gate
    assert isinstance(gate, ArbGate)
    trigger = pair.sync_b
    clock = rig.offsets[trigger.instrument.venue]
    compiled = gate.check(res, pair.sync_a.live, pair.sync_b.live, recv_ns, trigger.book, clock)
    if res.direction == BUY_A_SELL_B:
        buy, sell = pair.sync_a, pair.sync_b
    else:
        buy, sell = pair.sync_b, pair.sync_a
    num, den = res.edge_ratio
    exch = trigger.book.exch_ts_ns
    unpacked = rig.gates.check(
        "btc",
        buy.instrument,
        sell.instrument,
        res.buy_limit,
        res.buy_size,
        res.sell_limit,
        res.sell_size,
        buy.live,
        buy.book.recv_ts_ns,
        sell.live,
        sell.book.recv_ts_ns,
        num,
        den,
        recv_ns,
        exch,
        clock.offset_ns(rig.clock.wall()) if exch else None,
    )
    return compiled, unpacked


def _kill(rig: Rig) -> None:
    rig.gates.kill(KillLevel.HALT_NEW, "operator", "test")


def _stale(rig: Rig) -> None:
    # Past every book's max age (2 s by default), with no frame since.
    rig.clock.advance(3 * S)


def _no_quote_on_a(rig: Rig) -> None:
    # Only a buy on A (Binance) spends it: refused one way, not the other.
    rig.portfolio.ledger.account("binance", "USDT").available = 0


def _no_base_on_b(rig: Rig) -> None:
    # Only a sell on B (OKX) spends it.
    rig.portfolio.ledger.account("okx", "BTC").available = 0


def _breaker_on_b(rig: Rig) -> None:
    rig.gates._venues["okx"].open_until = rig.clock() + 60 * S


def _tight_notional_on_a(rig: Rig) -> None:
    # A's minimum notional above the arb's: only A's leg is judged against it.
    rig.gates._pairs["btc"].a.min_notional = 10**30


def _vast_balance_on_a(rig: Rig) -> None:
    # Beyond int128 atoms: the check's C path cannot hold it, the Python-int path decides.
    rig.portfolio.ledger.account("binance", "USDT").available = 10**40


Scenario = Callable[[Rig], None]


@pytest.mark.parametrize(
    ("direction", "scenario", "reason"),
    [
        (BUY_A_SELL_B, _kill, Reason.KILL_SWITCH),
        (BUY_B_SELL_A, _kill, Reason.KILL_SWITCH),
        (BUY_A_SELL_B, _stale, Reason.BOOK_STALE),
        (BUY_B_SELL_A, _stale, Reason.BOOK_STALE),
        # One-sided states: the right leg's rules, venue and accounts must be read.
        (BUY_A_SELL_B, _no_quote_on_a, Reason.INSUFFICIENT_BALANCE),
        (BUY_B_SELL_A, _no_quote_on_a, Reason.OK),
        (BUY_A_SELL_B, _no_base_on_b, Reason.INSUFFICIENT_BALANCE),
        (BUY_B_SELL_A, _no_base_on_b, Reason.OK),
        (BUY_A_SELL_B, _breaker_on_b, Reason.CIRCUIT_OPEN),
        (BUY_B_SELL_A, _breaker_on_b, Reason.CIRCUIT_OPEN),
        (BUY_A_SELL_B, _tight_notional_on_a, Reason.BELOW_MIN_NOTIONAL),
        (BUY_B_SELL_A, _tight_notional_on_a, Reason.BELOW_MIN_NOTIONAL),
        (BUY_A_SELL_B, _vast_balance_on_a, Reason.OK),
    ],
)
@pytest.mark.parametrize("c_path", [True, False], ids=["c-path", "python-path"])
async def test_arbgate_decides_as_the_unpacked_check_does(
    make: Make, direction: int, scenario: Scenario, reason: Reason, c_path: bool
) -> None:
    rig = make()
    rig.gates.c_path = c_path
    res = _dislocated(rig, direction)
    await rig.settle()
    before = list(rig.gates.counts)
    slow_before = rig.gates.slow_checks
    scenario(rig)
    compiled, unpacked = _both(rig, res, rig.clock())
    assert compiled == unpacked == reason
    counts = list(rig.gates.counts)
    assert counts[reason] - before[reason] == 2  # each call counted once
    # Which path judged: the kill switch comes before both; only a value beyond int128
    # sends the C path's checks to the Python ints.
    slow = rig.gates.slow_checks - slow_before
    if reason is Reason.KILL_SWITCH:
        assert slow == 0
    elif not c_path or scenario is _vast_balance_on_a:
        assert slow == 2
    else:
        assert slow == 0
    assert sum(counts) - sum(before) == 2
    if reason in (Reason.INSUFFICIENT_BALANCE, Reason.CIRCUIT_OPEN):
        # The venue named is the one whose state refused it.
        assert rig.gates.last_venue == ("binance" if scenario is _no_quote_on_a else "okx")


@pytest.mark.parametrize("direction", [BUY_A_SELL_B, BUY_B_SELL_A])
async def test_arbgate_judges_the_data_age_of_the_trigger(make: Make, direction: int) -> None:
    rig = make(risk={"max_data_age_ns": 50 * MS})
    res = _dislocated(rig, direction)
    await rig.settle()
    assert _both(rig, res, rig.clock() - 60 * MS) == (Reason.DATA_AGE, Reason.DATA_AGE)


@pytest.mark.parametrize("direction", [BUY_A_SELL_B, BUY_B_SELL_A])
async def test_arbgate_passes_as_the_unpacked_check_does_and_takes_tokens(
    make: Make, direction: int
) -> None:
    rig = make()
    res = _dislocated(rig, direction)
    await rig.settle()
    buckets = [b for v in ("binance", "okx") for b in rig.gates._venues[v].buckets]
    levels = [b.refill(rig.clock()) for b in buckets]
    assert _both(rig, res, rig.clock()) == (0, 0)
    # Both calls passed and each took one order token on both venues.
    assert [lvl - b.level for lvl, b in zip(levels, buckets, strict=True)] == [
        2 * b.unit for b in buckets
    ]


async def test_arbgate_checks_only_ok_results_and_exact_times(make: Make) -> None:
    rig = make()
    pair = rig.pairs["btc"]
    gate = pair.gate
    assert gate is not None
    book = pair.sync_b.book
    quiet = pair.calc.calc(pair.sync_a.book, book, BUY_A_SELL_B)
    assert quiet.status != OK
    with pytest.raises(ValueError, match="only an OK spread result"):
        gate.check(quiet, True, True, rig.clock(), book, None)
    res = _dislocated(rig, BUY_A_SELL_B)
    with pytest.raises(TypeError, match="recv_ns must be an int"):
        gate.check(res, True, True, float(rig.clock()), book, None)  # type: ignore[arg-type]
    # Nothing was counted for the calls that raised.
    assert sum(rig.gates.counts) == 1  # the engine's own check of the dislocation


async def test_a_book_not_live_is_refused_on_either_side(make: Make) -> None:
    rig = make()
    res = _dislocated(rig, BUY_A_SELL_B)
    await rig.settle()
    pair = rig.pairs["btc"]
    gate = pair.gate
    assert gate is not None
    book = pair.sync_b.book
    assert gate.check(res, False, True, rig.clock(), book, None) == Reason.BOOK_NOT_LIVE
    assert rig.gates.last_venue == "binance"  # A buys in this direction
    assert gate.check(res, True, False, rig.clock(), book, None) == Reason.BOOK_NOT_LIVE
    assert rig.gates.last_venue == "okx"
