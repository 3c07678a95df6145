"""End to end in live mode: ``arbengine run`` (a real subprocess) trading two live venues of
different kinds (Binance spot and OKX), each a simulator with signed order entry run by this
test process on loopback; the daemon's keys come from environment variables.

One run: the daemon reconciles with both venues at startup (a leftover order is cancelled),
completes arbitrages on injected dislocations, survives injected order faults (a lost reply,
a reject, a 429) with the engine's inventory equal to the simulator accounts' truth, is
killed with SIGKILL, and on restart reconciles with the venues again and trades again.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from arbengine.config import build, load
from arbengine.journal import as_int, verify
from arbengine.orders import ATOMS
from arbengine.venues.sim import BinanceSim, OkxSim
from arbengine.venues.sim.faults import Fault
from tests.daemon_proc import DaemonProc, wait
from tests.live_e2e import (
    TRADE_S,
    arbs,
    check_fills,
    check_truth,
    completed,
    dislocate,
    events,
    journaled,
    meet,
    settled,
    trade_wait,
)
from tests.live_sims import Account, SimThread, fair_market

BN, OK = "binance", "okx"
ACCOUNTS = {
    BN: Account(BN, "bnE2eKey0123456789", "BN-e2e-S3CRET", None, {"BTC": "1", "USDT": "100000"}),
    OK: Account(OK, "okx-e2e-key", "OKX-e2e-S3CRET", "okx-phrase", {"BTC": "1", "USDT": "100000"}),
}


def config_text(sims: SimThread, journal_dir: Path | None = None) -> str:
    bn, ok = sims.sims[BN], sims.sims[OK]
    assert isinstance(bn, BinanceSim) and isinstance(ok, OkxSim)
    return f"""\
venues:
  {BN}:
    kind: binance
    mode: live
    fee_bps: "10"
    order_timeout_ms: 800
    limits: {{breaker_failures: 10, breaker_cooldown_s: 1, max_rejects: 20, max_timeouts: 20}}
    endpoints: {{ws: "{bn.ws_url}", rest: "{bn.rest_url}", ws_orders: "{bn.ws_api_url}"}}
    credentials: {{api_key: {{env: BINANCE_KEY}}, api_secret: {{env: BINANCE_SECRET}}}}
    instruments:
      BTCUSDT: {{base: BTC, quote: USDT, tick: "0.01", lot: "0.00001", min_notional: "5"}}
  {OK}:
    kind: okx
    mode: live
    fee_bps: "10"
    order_timeout_ms: 800
    limits: {{breaker_failures: 10, breaker_cooldown_s: 1, max_rejects: 20, max_timeouts: 20}}
    endpoints: {{ws: "{ok.ws_url}", rest: "{ok.rest_url}", ws_orders: "{ok.private_ws_url}"}}
    credentials:
      api_key: {{env: OKX_KEY}}
      api_secret: {{env: OKX_SECRET}}
      passphrase: {{env: OKX_PHRASE}}
    instruments:
      BTC-USDT: {{base: BTC, quote: USDT, tick: "0.1", lot: "0.00000001", min_size: "0.00001"}}
pairs:
  - id: btc
    a: {BN}:BTCUSDT
    b: {OK}:BTC-USDT
    min_edge_bps: "5"
    max_edge_bps: "500"
    max_size: "0.01"
    max_notional: "2000"
    leg_policy: unwind
    order_timeout_s: 1
    leg_deadline_s: 3
risk:
  reference: USDT
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


@pytest.fixture
def sims() -> Iterator[SimThread]:
    fair = fair_market(7)
    thread = SimThread(
        {
            BN: BinanceSim(["BTCUSDT"], market="spot", seed=1, interval_s=0.1, fair=fair),
            OK: OkxSim(["BTC-USDT"], seed=2, interval_s=0.1, fair=fair),
        },
        ACCOUNTS,
    )
    try:
        yield thread
    finally:
        thread.close()


def env() -> dict[str, str]:
    out: dict[str, str] = {}
    for acc in ACCOUNTS.values():
        out.update(acc.env())
    return out


def test_live_daemon_trades_survives_faults_and_reconciles_after_kill_9(
    tmp_path: Path, sims: SimThread
) -> None:
    path = tmp_path / "live.yaml"
    path.write_text(config_text(sims))
    config = load(path)
    insts = build.instruments(config).values()
    # A previous run's order, still resting on OKX: startup cancels it.
    bid = sims.call(lambda: sims.sims[OK].true_book("BTC-USDT").bids[0][0])
    far = str((Decimal(bid) / 2).quantize(Decimal("0.1")))
    sims.call(
        lambda: sims.sims[OK].exchange.rest(
            ACCOUNTS[OK].key, "BTC-USDT", "BUY", far, "0.001", "leftover1"
        )
    )
    first = DaemonProc(tmp_path / "first", path, env=env())
    second: DaemonProc | None = None
    third: DaemonProc | None = None
    try:
        first.start()
        first.wait_ready()
        reconciled = {e["venue"]: e for e in journaled(first, "reconciled", 2)}
        assert set(reconciled) == {BN, OK}
        assert reconciled[OK]["leftovers_cancelled"] == ["leftover1"]
        left = sims.call(
            lambda: sims.sims[OK].exchange.get(ACCOUNTS[OK].key, client_id="leftover1")
        )
        assert left is not None and left.status == "CANCELED"
        for (venue, asset), amount in sims.start_atoms().items():
            assert as_int(reconciled[venue]["balances"][asset]) == amount

        # Arbitrage on a dislocation, both ways.
        dislocate(sims, OK, 80)
        trade_wait(first, lambda: len(completed(first.entries(), {BN, OK})) >= 1, "a filled arb")
        check_truth(first, sims, "after the first arbs")
        dislocate(sims, BN, 80)
        n = len(completed(first.entries(), {BN, OK}))
        trade_wait(
            first, lambda: len(completed(first.entries(), {BN, OK})) > n, "an arb the other way"
        )
        check_truth(first, sims, "after arbs both ways")

        # Each order fault, on the next order to OKX.
        okx = sims.sims[OK]
        for fault in (Fault.ORDER_TIMEOUT, Fault.ORDER_REJECT, Fault.ORDER_429):
            meet(first, sims, okx, fault)
            check_truth(first, sims, f"after {fault.value}")
        assert journaled(first, "rate_limited")[0]["venue"] == OK
        assert events(first, "balance_drift") == []  # the periodic checks agreed all along
        check_fills(first, sims, insts, "after the faults")

        # Money moved on OKX behind the engine's back: the periodic reconciliation holds
        # the venue (no new arbs there) until the balances agree again.
        acct = sims.sim_accounts[OK]
        sims.call(lambda: acct.free.__setitem__("USDT", acct.free["USDT"] - 5 * ATOMS))
        wait(lambda: OK in first.status()["risk"]["unhealthy"], "okx held on the drift", 10.0)
        # The journal's writer thread may still hold the entry the status already shows.
        wait(lambda: events(first, "balance_drift"), "the drift journaled", 10.0)
        drift = events(first, "balance_drift")[0]
        assert drift["venue"] == OK and "USDT" in drift["drift"]
        sims.call(lambda: acct.free.__setitem__("USDT", acct.free["USDT"] + 5 * ATOMS))
        wait(lambda: OK not in first.status()["risk"]["unhealthy"], "okx released", 10.0)
        wait(lambda: events(first, "balance_drift_cleared"), "the release journaled", 10.0)
        assert events(first, "balance_drift_cleared")[0]["venue"] == OK
        check_truth(first, sims, "after the drift was undone")

        # kill -9 (paused: the operator's halt survives a restart, so the venues' accounts
        # stay still until the test resumes), then a restart on the same journal: it
        # reconciles with the venues and trades again.
        assert first.ctl("pause", "-r", "e2e: before kill -9").returncode == 0
        wait(lambda: settled(first), "settled before kill -9", 20.0)
        first.send(signal.SIGKILL)
        assert first.wait_exit() == -signal.SIGKILL
        seq_before = len(first.entries())
        second = DaemonProc(tmp_path / "second", path, env=env(), state=first.state)
        second.start()
        second.wait_ready()
        journaled(second, "reconciled", 4)  # two from the first run, two now
        after = second.entries()[seq_before:]
        again = {e["venue"]: e for e in after if e["event"] == "reconciled"}
        assert set(again) == {BN, OK}
        truth = sims.truth()
        for venue in (BN, OK):
            for asset in ("BTC", "USDT"):
                assert as_int(again[venue]["balances"][asset]) == truth.get((venue, asset), 0)
        assert second.status()["risk"]["kill_level"] == "HALT_NEW"
        assert second.ctl("resume", "-r", "e2e: after the restart").returncode == 0
        n = len(completed(second.entries(), {BN, OK}))
        dislocate(sims, OK, 80)
        trade_wait(
            second,
            lambda: len(completed(second.entries(), {BN, OK})) > n,
            "an arb after the restart",
        )
        check_truth(second, sims, "after the restart")

        # kill -9 while trading (an arb's orders may be out): the next start resolves what
        # the journal left open with the venues before it reconciles, and agrees with them.
        n = arbs(second)
        dislocate(sims, BN, 80)
        wait(lambda: arbs(second) > n, "an arb to kill -9 in", TRADE_S)
        second.send(signal.SIGKILL)
        assert second.wait_exit() == -signal.SIGKILL
        seq_before = len(second.entries())
        third = DaemonProc(tmp_path / "third", path, env=env(), state=first.state)
        third.start()
        third.wait_ready()
        check_truth(third, sims, "after kill -9 while trading")
        assert third.stop() == 0
        assert [e for e in third.entries()[seq_before:] if e["event"] == "balance_drift"] == []
        verify(third.journal)
    finally:
        first.close()
        if second is not None:
            second.close()
        if third is not None:
            third.close()
