"""What the live end-to-end tests share: reading the daemon's journal and status against
the simulators' accounts, and driving trades and faults through dislocations."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from arbengine._core.instrument import Instrument
from arbengine.orders import from_atoms
from arbengine.venues.sim._server import SimVenue
from arbengine.venues.sim.faults import Fault
from tests.daemon_proc import DaemonProc, wait
from tests.fills import balances_from_fills
from tests.live_sims import SimThread

TRADE_S = 45.0


def inventory(
    truth: dict[tuple[str, str], int], start: dict[tuple[str, str], int]
) -> dict[str, int]:
    """Per asset: the accounts' total now less at the start (what trading changed)."""
    out: dict[str, int] = {}
    for key in set(truth) | set(start):
        out[key[1]] = out.get(key[1], 0) + truth.get(key, 0) - start.get(key, 0)
    return {a: n for a, n in out.items() if n}


def settled(d: DaemonProc) -> bool:
    st = d.status()
    return st["open_arbs"] == 0 and all(p["in_flight"] is None for p in st["pairs"])


@contextmanager
def at_rest(d: DaemonProc, why: str) -> Iterator[None]:
    """Paused (no new arbs) with nothing in flight for the block, so the daemon and the
    accounts can be read or changed without an arb moving them; then trading resumes."""
    assert d.ctl("pause", "-r", f"e2e: {why}").returncode == 0
    wait(lambda: settled(d), f"arbs settled ({why})", 20.0)
    yield
    assert d.ctl("resume", "-r", f"e2e: {why}: done").returncode == 0


def check_truth(d: DaemonProc, sims: SimThread, why: str) -> None:
    """The engine's inventory (status) is the accounts' truth, both read at rest."""
    with at_rest(d, f"check {why}"):
        _check_truth(d, sims, why)


def _check_truth(d: DaemonProc, sims: SimThread, why: str) -> None:
    truth = inventory(sims.truth(), sims.start_atoms())
    st = d.status()
    engine = {a: Decimal(n) for a, n in st["portfolio"]["inventory"].items()}
    want = {a: from_atoms(n) for a, n in truth.items()}
    assert engine == want, f"{why}: engine {engine} != accounts {want}"
    # Futures: each position and its entry value, as the venue's books have them.
    held = {
        name: (Decimal(p["position"]), Decimal(p["entry"]))
        for name, p in st["portfolio"]["positions"].items()
    }
    venue = {name: (from_atoms(n), from_atoms(e)) for name, (n, e) in sims.positions().items()}
    assert held == venue, f"{why}: engine positions {held} != venue {venue}"
    assert st["portfolio"]["unhedged"] == {}, why


def check_fills(d: DaemonProc, sims: SimThread, insts: Iterable[Instrument], why: str) -> None:
    """The journal's fills, replayed on the start balances, are the accounts' truth. Read
    at rest like ``check_truth``: with trading on, an arb can fill on one venue between
    reading the journal and reading the accounts. The journal's writer thread may still
    hold the last fills the status already shows, so the two are compared until they agree."""
    insts = list(insts)
    last: dict[str, dict[tuple[str, str], int]] = {}

    def agree() -> bool:
        fills = balances_from_fills(d.journal, sims.start_atoms(), insts)
        last["fills"] = {k: v for k, v in fills.items() if v}
        last["accounts"] = {k: v for k, v in sims.truth().items() if v}
        return last["fills"] == last["accounts"]

    with at_rest(d, f"fills {why}"):
        try:
            wait(agree, f"journal fills equal to the accounts ({why})", 10.0)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {last}") from None


def dislocate(sims: SimThread, venue: str, bps: int, seconds: float = 2.0) -> None:
    sims.call(lambda: sims.sims[venue].dislocate(bps, seconds))


def completed(entries: list[dict[str, Any]], pair: set[str]) -> set[str]:
    """Arbs whose two entry legs both filled, one on each venue of ``pair`` (not a leg and
    its unwind)."""
    purpose = {e["client_id"]: e.get("purpose") for e in entries if e["event"] == "order"}
    venues: dict[str, set[str]] = {}
    for e in entries:
        if e["event"] == "fill" and e.get("arb_id") and purpose.get(e["client_id"]) == "entry":
            venues.setdefault(e["arb_id"], set()).add(e["venue"])
    return {arb for arb, seen in venues.items() if seen == pair}


def events(d: DaemonProc, name: str) -> list[dict[str, Any]]:
    return [e for e in d.entries() if e["event"] == name]


def journaled(d: DaemonProc, name: str, n: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The journal's ``name`` entries once there are ``n``: the writer thread may still
    hold an entry whose effect the daemon's status already shows."""
    wait(lambda: len(events(d, name)) >= n, f"{n} {name} entries journaled", timeout)
    return events(d, name)


def trade_wait(d: DaemonProc, cond: Callable[[], bool], what: str) -> None:
    """``wait``, failing with the venues' last refusals (what stopped the trading)."""
    try:
        wait(cond, what, TRADE_S)
    except AssertionError as exc:
        reasons = [e["reason"] for e in events(d, "done") if e["status"] == "rejected"][-4:]
        st = d.status()
        why = {"risk": st["risk"], "pairs": st["pairs"]}
        raise AssertionError(f"{exc}; last rejects: {reasons}; status: {why}") from None


def arbs(d: DaemonProc) -> int:
    return len(events(d, "arb"))


def _next_arb(d: DaemonProc, sim: SimVenue, sims: SimThread, bps: int, what: str) -> None:
    """Dislocate ``sim`` by ``bps``, then the other way, in turn, until one more arb is
    journaled. One 2 s
    dislocation can pass by without one (a feed catching up, the pause of a truth check
    just lifted on a loaded machine), so it is made again, within TRADE_S in all."""
    before, end, i = arbs(d), time.monotonic() + TRADE_S, 0
    while True:
        step = bps if i % 2 == 0 else -bps
        sims.call(lambda b=step: sim.dislocate(b, 2.0))  # type: ignore[misc]
        i += 1
        try:
            wait(lambda: arbs(d) > before, what, min(5.0, max(0.1, end - time.monotonic())))
            return
        except AssertionError as exc:
            if time.monotonic() < end:
                continue
            st = d.status()
            stuck = {p["in_flight"] for p in st["pairs"]} - {None}
            story = [e for e in d.entries() if e.get("arb_id") in stuck] or d.entries()[-12:]
            raise AssertionError(f"{exc}: {st['pairs']} {st['risk']} {story[:20]}") from None


def meet(d: DaemonProc, sims: SimThread, sim: SimVenue, fault: Fault, bps: int = 80) -> None:
    """Arm ``fault`` once on ``sim`` and dislocate it until an arb's order meets it."""
    sims.call(lambda: sim.faults.inject(fault, count=1))
    for k in range(20):
        if sims.call(lambda: sim.faults.count(fault)):
            break
        _next_arb(d, sim, sims, bps if k % 2 == 0 else -bps, f"an arb meeting {fault.value}")
    assert sims.call(lambda: sim.faults.count(fault)) == 1, fault


def rejected_on(d: DaemonProc, venue: str) -> list[dict[str, Any]]:
    """The journal's rejected orders on ``venue`` (its "done" entries, matched to the
    orders' venues by client id)."""
    entries = d.entries()
    venues = {e["client_id"]: e.get("venue") for e in entries if e["event"] == "order"}
    return [
        e
        for e in entries
        if e["event"] == "done"
        and e["status"] == "rejected"
        and venues.get(e["client_id"]) == venue
    ]


def meet_skew(d: DaemonProc, sims: SimThread, venue: str, skew_ms: int, bps: int = 80) -> str:
    """Move ``venue``'s clock by ``skew_ms`` and dislocate it until an order there is
    refused for its timestamp (the gateway then resyncs); the refusal's reason."""
    sim = sims.sims[venue]
    before = len(rejected_on(d, venue))
    # At rest: an order placed just before the jump would meet it in its queries instead
    # (healed the same way, by a resync; tests/test_gateway_*.py cover that).
    with at_rest(d, "clock jump"):
        sims.call(lambda: setattr(sim.exchange, "skew_ms", skew_ms))
    for k in range(20):
        if len(rejected_on(d, venue)) > before:
            break
        step = bps if k % 2 == 0 else -bps
        _next_arb(d, sim, sims, step, f"an arb meeting a {skew_ms} ms skew")
    refused = rejected_on(d, venue)
    assert len(refused) > before, f"no order refused on {venue} with its clock {skew_ms} ms off"
    return str(refused[before]["reason"])


def trade_again(
    d: DaemonProc, sims: SimThread, venue: str, pair: set[str], bps: int, what: str
) -> None:
    """Dislocate ``venue`` (both ways in turn) until one more arb completes: after a run of
    refusals its breaker may be open for a while, and a single dislocation can pass by."""
    n = len(completed(d.entries(), pair))
    end = time.monotonic() + TRADE_S
    i = 0
    while len(completed(d.entries(), pair)) <= n:
        if time.monotonic() > end:
            trade_wait(d, lambda: len(completed(d.entries(), pair)) > n, what)
        step = bps if i % 2 == 0 else -bps
        sims.call(lambda b=step: sims.sims[venue].dislocate(b, 2.0))  # type: ignore[misc]
        i += 1
        until = time.monotonic() + 2.5
        while time.monotonic() < until and len(completed(d.entries(), pair)) <= n:
            time.sleep(0.05)
