"""Applying a reloaded config to the running engine (SIGHUP, ``arbengine ctl reload``).

``config.diff`` says what may change live: pair thresholds, sizes, fees and execution
policy, enabling and disabling pairs, venue and risk limits, the engine's budget. Those all
end up compiled into objects built once (``RiskGates`` compiles every limit at construction,
each ``Pair`` its spread calculator, each pair's ``ArbGate`` binds both), so a reload
rebuilds them rather than patching them:

* new ``RiskGates`` from the new limits, carrying over what is state rather than config:
  the kill switch (level and history, the same list the engine journals from) and the
  per-reason counters. Rate-limit buckets, breakers and health windows start afresh (their
  shape may be what changed); the venue's own limits still hold, as the paper venues and the
  venues' servers enforce them too.
* new ``Pair`` objects for the enabled pairs, carrying each surviving pair's counters, and
  the engine's pair index rebuilt by the engine's own constructor (a scratch ``Engine`` on
  the same executor and journal, whose bound pairs are then taken over).

The swap is one synchronous step on the event loop, done only when no arb is open
(``Daemon`` waits for that, with a deadline): no arb is ever checked by one set of gates and
settled against another, and none can start half-way through the swap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from arbengine import config_build as build
from arbengine._core.instrument import Instrument
from arbengine.config_schema import Config
from arbengine.engine import Engine, GateCheck, Pair
from arbengine.execution import Executor
from arbengine.portfolio import Portfolio
from arbengine.risk import RiskGates
from arbengine.venues._clock import ClockOffset
from arbengine.venues._sync import BookSync

__all__ = ["Wiring", "build_engine", "build_gates", "build_pairs", "rewire"]


@dataclass(slots=True)
class Wiring:
    """What the engine is built from that a reload does not change: the instruments, the
    books (one BookSync per configured instrument) and each venue's feed clock."""

    insts: Mapping[str, Instrument]
    syncs: Mapping[str, BookSync]
    clocks: Mapping[str, ClockOffset]


def build_gates(config: Config, wiring: Wiring, pf: Portfolio) -> RiskGates:
    return RiskGates(build.risk_limits(config, wiring.insts), pf)


def build_pairs(config: Config, wiring: Wiring) -> list[Pair]:
    pairs = []
    for spec in config.enabled_pairs:
        conv = None if spec.conversion is None else wiring.syncs[spec.conversion]
        pairs.append(
            Pair(
                build.pair_config(spec, config, wiring.insts),
                wiring.syncs[spec.a],
                wiring.syncs[spec.b],
                conv,
            )
        )
    return pairs


def build_engine(
    config: Config, wiring: Wiring, executor: Executor, gates: RiskGates, pairs: list[Pair]
) -> Engine:
    return Engine(
        pairs,
        executor=executor,
        risk=GateCheck(gates, wiring.clocks),
        journal=executor.journal,
        budget_ns=build.budget_ns(config),
        warm_every=config.engine.warm_every,
    )


def rewire(engine: Engine, config: Config, wiring: Wiring) -> RiskGates:
    """Rebuild ``engine``'s gates and pairs from ``config`` in place (no arb may be open);
    returns the new gates. Raises (leaving the engine as it was) if the new objects cannot
    be built."""
    executor = engine.executor
    if executor.open_arbs():
        raise RuntimeError("rewire with arbs open")
    old = engine.gates
    assert old is not None
    pf = executor.portfolio
    assert isinstance(pf, Portfolio)  # the daemon builds the executor on one
    gates = build_gates(config, wiring, pf)
    pairs = build_pairs(config, wiring)
    scratch = build_engine(config, wiring, executor, gates, pairs)  # binds each pair's gate
    # Nothing can fail from here on: state first, then the swap.
    gates._level = old._level
    gates.history = old.history  # the engine journals kill changes by index into this list
    gates.counts = old.counts
    gates.keep_rate_state(old)  # buckets used and 429/418 waits outlive a reload
    before = {p.config.pair_id: p for p in engine.pairs}
    for pair in pairs:
        prev = before.get(pair.config.pair_id)
        if prev is not None:
            pair.evaluations = prev.evaluations
            pair.opportunities = prev.opportunities
            pair.found = prev.found
            pair.last_verdict = prev.last_verdict
    engine.pairs = scratch.pairs
    engine._by_sync = scratch._by_sync
    engine.risk = scratch.risk
    engine.gates = gates
    engine.budget_ns = scratch.budget_ns
    engine.warm_every = scratch.warm_every
    executor.risk = gates
    return gates
