"""The embedded demo, wired from its config alone, trades on paper within seconds.

Everything comes from ``load_demo()`` through the builders the daemon calls: the simulated
venues on loopback, the feeds pointed at them, instruments, risk limits, paper gateways,
portfolio, pairs and engine. Nothing is tuned here: if the demo's dislocations, fees or
limits stop producing trades, this fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path

from arbengine._core.book import Book
from arbengine.config import build, load_demo
from arbengine.engine import Engine, GateCheck, Pair
from arbengine.execution import ArbState, Executor
from arbengine.journal import read_entries, verify
from arbengine.risk import RiskGates
from tests.waiting import fast_backoff, until

TRADE_WITHIN_S = 30.0  # first dislocation is ~2.5 s away on average; 2 cores shared


async def test_the_demo_trades_from_its_config_alone(tmp_path: Path) -> None:
    config = load_demo(environ={"STATE_DIRECTORY": str(tmp_path)})
    insts = build.instruments(config)
    sims = build.simulators(config)
    assert set(sims) == {"binance", "okx"}
    async with AsyncExitStack() as stack:
        for sim in sims.values():
            await stack.enter_async_context(sim)
        feeds = {
            name: build.feed(config, name, insts, sims=sims, backoff=fast_backoff())
            for name in config.venues
        }
        syncs = {s.instrument.name: s for f in feeds.values() for s in f.syncs}
        assert config.journal.directory == str(tmp_path / "journal")
        journal = stack.enter_context(build.open_journal(config))
        pf = build.portfolio(config)
        gates = RiskGates(build.risk_limits(config, insts), pf)

        def books_of(venue: str) -> Callable[[str], Book | None]:
            def books(symbol: str) -> Book | None:
                sync = syncs[f"{venue}:{symbol}"]
                return sync.book if sync.live else None

            return books

        gateways = {
            name: build.paper_gateway(config, name, books_of(name), pf) for name in config.venues
        }
        executor = Executor(
            gateways,
            pf,
            journal,
            fee_bps=build.venue_fees(config),
            books=lambda inst: syncs[inst.name].book if syncs[inst.name].live else None,
            risk=gates,
        )
        pairs = [
            Pair(build.pair_config(p, config, insts), syncs[p.a], syncs[p.b])
            for p in config.enabled_pairs
        ]
        # Each feed's venue clock offset, for the gates' venue-lag check.
        clocks = {name: getattr(f, "router").clock for name, f in feeds.items()}  # noqa: B009
        engine = Engine(
            pairs,
            executor=executor,
            risk=GateCheck(gates, clocks),
            journal=journal,
            budget_ns=build.budget_ns(config),
        )
        for f in feeds.values():
            f.on_book = engine.on_book
            f.on_resync = engine.on_resync
        tasks = [asyncio.create_task(f.run()) for f in feeds.values()]
        try:
            await until(lambda: all(s.live for s in syncs.values()), timeout=15)

            def filled() -> bool:
                return any(
                    arb.state == ArbState.DONE and all(leg.filled for leg in arb.legs)
                    for arb in executor.arbs.values()
                )

            await until(
                filled,
                timeout=TRADE_WITHIN_S,
                why=lambda: (engine.counters, executor.counters, gates.counters()),
            )
        finally:
            for f in feeds.values():
                await f.stop()
            await asyncio.gather(*tasks)
            await executor.close()
            for gw in gateways.values():
                gw.close()
        journal.flush()
    result = verify([tmp_path / "journal"])
    assert result.ok
    events = [e["event"] for e in read_entries(tmp_path / "journal")]
    assert "fill" in events
