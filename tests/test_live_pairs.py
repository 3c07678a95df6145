"""End to end in live mode for every venue gateway: ``arbengine run`` (a real subprocess)
trading a pair of live venues, each a simulator with signed order entry run by this test
process on loopback, keys from environment variables.

Binance against OKX has its own longer test (tests/test_live_e2e.py: leftovers, drift,
two kinds of kill -9). Here each other gateway gets the same core run: Bybit against
Binance (USDT), Kraken against Coinbase (USD; their fees are 40 and 120 bps, so the
dislocations are wider), and Bybit spot against Binance USDⓈ-M futures (a futures account
that starts flat with USDT margin: its sells open shorts, its wallet moves by realized PnL
and fees, and the truth compared is its position and wallet). Per pair the daemon
reconciles at startup with both venues' balances, completes arbitrages both ways, survives
every order fault the second venue has (lost reply, reject, 429, 418, partial fill, late
fill) and a jump of its clock past what it accepts, with its inventory equal to the
accounts' truth after each, is killed with SIGKILL while it trades, and on restart resolves
what was open with the venues, reconciles to their balances and trades again; the journal
verifies.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from arbengine.journal import as_int, verify
from arbengine.venues.sim.faults import Fault
from tests.daemon_proc import DaemonProc, wait
from tests.live_e2e import (
    TRADE_S,
    arbs,
    check_truth,
    completed,
    dislocate,
    journaled,
    meet,
    meet_skew,
    trade_again,
    trade_wait,
)
from tests.live_sims import SimThread, fair_market
from tests.live_venues import VENUES, LiveVenue

# (first venue, second venue, dislocation in bps that clears both fees and the min edge)
PAIRS = [("bybit", "binance", 80), ("kraken", "coinbase", 260), ("bybit", "binance_usdm", 80)]
# The second venue's clock moved past what it accepts (Binance: recvWindow 5 s; Coinbase:
# the JWT's 120 s), and the start of the reason it refuses with.
SKEWS = {
    "binance": (10_000, "-1021"),
    "binance_usdm": (10_000, "-1021"),
    "coinbase": (200_000, ""),
}
ORDER_FAULTS = (
    Fault.ORDER_TIMEOUT,
    Fault.ORDER_REJECT,
    Fault.ORDER_429,
    Fault.ORDER_418,
    Fault.ORDER_PARTIAL,
    Fault.ORDER_LATE_FILL,
)


def config_text(a: LiveVenue, b: LiveVenue, sims: SimThread) -> str:
    quote = a.quote
    return f"""\
venues:
{a.yaml(sims.sims[a.name])}{b.yaml(sims.sims[b.name])}pairs:
  - id: btc
    a: "{a.name}:{a.symbol}"
    b: "{b.name}:{b.symbol}"
    min_edge_bps: "5"
    max_edge_bps: "600"
    max_size: "0.01"
    max_notional: "2000"
    leg_policy: unwind
    order_timeout_s: 1
    leg_deadline_s: 3
risk:
  reference: {quote}
  max_inventory: {{BTC: "0.5"}}
  max_net_exposure: {{BTC: "0.2"}}
  max_daily_loss: "1000"
  max_drawdown: "20000"
reconcile:
  leftovers: cancel
  interval_s: 1
engine:
  live_timeout_s: 30
  drain_s: 5
metrics:
  enabled: false
"""


@pytest.fixture(params=PAIRS, ids=[f"{a}-{b}" for a, b, _ in PAIRS])
def pair(request: pytest.FixtureRequest) -> Iterator[tuple[LiveVenue, LiveVenue, int, SimThread]]:
    first, second, bps = request.param
    a, b = VENUES[first], VENUES[second]
    fair = fair_market(11)
    thread = SimThread(
        {a.name: a.make_sim(fair, 1), b.name: b.make_sim(fair, 2)},
        {a.name: a.account, b.name: b.account},
    )
    try:
        yield a, b, bps, thread
    finally:
        thread.close()


def test_live_pair_trades_survives_faults_and_recovers_from_kill_9(
    tmp_path: Path, pair: tuple[LiveVenue, LiveVenue, int, SimThread]
) -> None:
    a, b, bps, sims = pair
    names = {a.name, b.name}
    path = tmp_path / "live.yaml"
    path.write_text(config_text(a, b, sims))
    env = {**a.account.env(), **b.account.env()}
    first = DaemonProc(tmp_path / "first", path, env=env)
    second: DaemonProc | None = None
    try:
        first.start()
        first.wait_ready()
        reconciled = {e["venue"]: e for e in journaled(first, "reconciled", 2)}
        assert set(reconciled) == names
        for (venue, asset), amount in sims.start_atoms().items():
            assert as_int(reconciled[venue]["balances"][asset]) == amount

        # Arbitrage on a dislocation, both ways.
        for venue in (b.name, a.name):
            done_before = len(completed(first.entries(), names))

            def more(before: int = done_before) -> bool:
                return len(completed(first.entries(), names)) > before

            dislocate(sims, venue, bps)
            trade_wait(first, more, f"an arb ({venue})")
            check_truth(first, sims, f"after an arb on {venue} dislocated")
            if venue == b.name and b.kind == "binance_usdm":
                # The first arb opened a futures position (its sell leg: a short), which
                # check_truth held to the venue's position and entry value.
                (held,) = first.status()["portfolio"]["positions"].values()
                assert Decimal(held["position"]) < 0, held

        # Each order fault the second venue has, on its next order; then its clock skewed.
        sim = sims.sims[b.name]
        faults = [f for f in ORDER_FAULTS if f in sim.faults.supported]
        assert len(faults) >= 5, faults  # Coinbase has no 418
        for fault in faults:
            meet(first, sims, sim, fault, bps)
            check_truth(first, sims, f"after {fault.value} on {b.name}")
        assert journaled(first, "rate_limited")[0]["venue"] == b.name
        skew_ms, code = SKEWS[b.name]
        reason = meet_skew(first, sims, b.name, skew_ms, bps)
        assert reason.startswith(code), reason
        check_truth(first, sims, f"after {b.name}'s clock moved {skew_ms} ms")
        trade_again(first, sims, b.name, names, bps, "an arb after the resync")

        # kill -9 while trading; the restart resolves what was open, reconciles, trades.
        n = arbs(first)
        dislocate(sims, a.name, bps)
        wait(lambda: arbs(first) > n, "an arb to kill -9 in", TRADE_S)
        first.send(signal.SIGKILL)
        assert first.wait_exit() == -signal.SIGKILL
        seq_before = len(first.entries())
        second = DaemonProc(tmp_path / "second", path, env=env, state=first.state)
        second.start()
        second.wait_ready()
        check_truth(second, sims, "after kill -9 while trading")
        journaled(second, "reconciled", 4)  # two from the first run, two now
        after = second.entries()[seq_before:]
        assert {e["venue"] for e in after if e["event"] == "reconciled"} == names
        assert [e for e in after if e["event"] == "balance_drift"] == []
        n = len(completed(second.entries(), names))
        dislocate(sims, b.name, bps)
        trade_wait(
            second, lambda: len(completed(second.entries(), names)) > n, "an arb after restart"
        )
        check_truth(second, sims, "after the restart")
        assert second.stop() == 0
        verify(second.journal)
    finally:
        first.close()
        if second is not None:
            second.close()
