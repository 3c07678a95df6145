"""Venue feeds end to end over loopback: BinanceFeed / OkxFeed against the simulator.

Each test runs the real feed (picows WebSocket, aiohttp REST, compiled parser, BookSync)
against a simulated venue, injects one fault, and checks that the book comes back LIVE and
equal to the simulator's true book, that the counters show what happened, that no exception
escaped, and that no crossed or "future" book was ever offered as LIVE meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from arbengine._core.instrument import Instrument
from arbengine.venues.binance import SPOT, USDM, BinanceFeed, binance_feeds
from arbengine.venues.okx import OkxFeed
from arbengine.venues.sim import (
    BINANCE_SPOT,
    BINANCE_USDM,
    OKX_INSTRUMENTS,
    BinanceSim,
    Fault,
    OkxSim,
    SimInstrument,
)
from arbengine.venues.ws import WsFeed
from tests.waiting import fast_backoff, until

INTERVAL = 0.01  # the simulators' tick: 10 ms


def instrument(venue: str, sim: SimInstrument) -> Instrument:
    base, quote = sim.asset.split("-")
    return Instrument(venue, sim.symbol, base, quote, sim.tick, sim.lot)


class Watch:
    """Samples the feed while it runs: a LIVE book is never crossed nor ahead of the venue."""

    def __init__(self, feed: Any, sim: Any, symbol: str) -> None:
        self.feed, self.sim, self.symbol = feed, sim, symbol
        self.samples = 0
        self.violations: list[str] = []
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            sync = self.feed.syncs[0]
            if sync.live:
                self.samples += 1
                if sync.book.crossed:
                    self.violations.append(f"crossed LIVE book at {sync.last_id}")
                truth = self.sim.true_book(self.symbol)
                if sync.last_id > truth.update_id and not _okx_reset(self.sim):
                    self.violations.append(f"LIVE at {sync.last_id} > venue {truth.update_id}")
            await asyncio.sleep(0.002)

    async def stop(self) -> None:
        self._task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self._task


def _okx_reset(sim: Any) -> bool:
    # After a sequence reset OKX ids go backwards: "ahead" means nothing then.
    return bool(isinstance(sim, OkxSim) and sim.faults.count(Fault.SEQ_RESET))


async def converged(feed: Any, sim: Any, symbol: str, inst: Instrument) -> None:
    """Freeze the venue, wait for the feed to catch up, compare with the true book."""
    sim.pause()
    sync = feed.syncs[0]
    await until(lambda: sync.live and sync.last_id == sim.true_book(symbol).update_id)
    truth = sim.true_book(symbol)
    bids = [(inst.price.parse(p), inst.size.parse(q)) for p, q in truth.bids]
    asks = [(inst.price.parse(p), inst.size.parse(q)) for p, q in truth.asks]
    assert sync.book.bids() == bids
    assert sync.book.asks() == asks
    sim.resume()
    # Past the snapshot: a fault injected now hits the stream, not the snapshot's bridge
    # (a lost first event and a stream that started after the snapshot look alike).
    applied = sync.applied
    await until(lambda: sync.applied > applied)


BINANCE_FAULTS: list[tuple[Fault, dict[str, Any], Callable[[BinanceFeed], bool]]] = [
    (Fault.DROP, {}, lambda f: f.syncs[0].gaps >= 1),
    (Fault.DUPLICATE, {}, lambda f: f.syncs[0].ignored >= 1),
    (Fault.REORDER, {}, lambda f: f.syncs[0].gaps >= 1),
    (Fault.MALFORMED, {}, lambda f: f.router.frame_errors >= 1),
    (Fault.TRUNCATED, {}, lambda f: f.router.frame_errors >= 1),
    (Fault.DISCONNECT, {}, lambda f: f.ws.counters.reconnects >= 1),
    (Fault.SILENCE, {"seconds": 1.0}, lambda f: f.ws.counters.silent_closes >= 1),
    (Fault.CROSSED_SNAPSHOT, {}, lambda f: f.syncs[0].crossed_books >= 1),
    (Fault.REST_DELAY, {"seconds": 1.0}, lambda f: f.rest.counters.timeouts >= 1),
    (Fault.REST_429, {"seconds": 0.2}, lambda f: f.rest.counters.throttled >= 1),
    (Fault.REST_5XX, {}, lambda f: f.rest.counters.server_errors >= 1),
]
# Snapshot-side faults only show when a snapshot is fetched: a drop forces a resync.
NEEDS_RESYNC = {Fault.CROSSED_SNAPSHOT, Fault.REST_DELAY, Fault.REST_429, Fault.REST_5XX}


@pytest.mark.parametrize(
    ("fault", "kwargs", "shows"), BINANCE_FAULTS, ids=[f[0].value for f in BINANCE_FAULTS]
)
async def test_binance_spot_recovers_from_each_fault(
    fault: Fault, kwargs: dict[str, Any], shows: Callable[[BinanceFeed], bool]
) -> None:
    sim_inst = BINANCE_SPOT["BTCUSDT"]
    inst = instrument("binance", sim_inst)
    async with BinanceSim([sim_inst], seed=11, interval_s=INTERVAL) as sim:
        feed = BinanceFeed(
            SPOT,
            [inst],
            ws_base=sim.ws_url,
            rest_base=sim.rest_url,
            silence_timeout_s=0.5,
            backoff=fast_backoff(),
            rest_timeout_s=0.3,
        )
        task = asyncio.create_task(feed.run())
        watch = Watch(feed, sim, "BTCUSDT")
        await converged(feed, sim, "BTCUSDT", inst)
        sim.faults.inject(fault, **kwargs)
        if fault in NEEDS_RESYNC:
            sim.faults.inject(Fault.DROP)
        await until(lambda: shows(feed), timeout=10)
        await converged(feed, sim, "BTCUSDT", inst)
        assert sim.faults.count(fault) >= 1
        assert feed.ws.counters.handler_errors == 0, feed.ws.last_error
        assert not task.done()  # nothing escaped
        await watch.stop()
        assert watch.violations == [] and watch.samples > 0
        await feed.stop()
        await asyncio.wait_for(task, 5)


async def test_binance_usdm_syncs_on_pu_and_recovers_from_a_drop() -> None:
    sim_inst = BINANCE_USDM["BTCUSDT"]
    inst = instrument("binance", sim_inst)
    async with BinanceSim([sim_inst], market="usdm", seed=12, interval_s=INTERVAL) as sim:
        feed = BinanceFeed(
            USDM, [inst], ws_base=sim.ws_url, rest_base=sim.rest_url, backoff=fast_backoff()
        )
        task = asyncio.create_task(feed.run())
        await converged(feed, sim, "BTCUSDT", inst)
        sim.faults.inject(Fault.DROP)
        await until(lambda: feed.syncs[0].gaps >= 1)
        await converged(feed, sim, "BTCUSDT", inst)
        await feed.stop()
        await asyncio.wait_for(task, 5)


OKX_FAULTS: list[tuple[Fault, Callable[[OkxFeed], bool]]] = [
    (Fault.DROP, lambda f: f.syncs[0].gaps >= 1 and f.resubscribes >= 1),
    (Fault.DUPLICATE, lambda f: f.resubscribes >= 1),
    (Fault.CORRUPT_CHECKSUM, lambda f: f.syncs[0].checksum_failures >= 1),
    (Fault.SEQ_RESET, lambda f: f.syncs[0].applied > 0),
    (Fault.MALFORMED, lambda f: f.router.frame_errors >= 1),
    (Fault.DISCONNECT, lambda f: f.ws.counters.reconnects >= 1),
]


@pytest.mark.parametrize(("fault", "shows"), OKX_FAULTS, ids=[f[0].value for f in OKX_FAULTS])
async def test_okx_recovers_from_each_fault(fault: Fault, shows: Callable[[OkxFeed], bool]) -> None:
    sim_inst = OKX_INSTRUMENTS["BTC-USDT"]
    inst = instrument("okx", sim_inst)
    async with OkxSim([sim_inst], seed=21, interval_s=INTERVAL) as sim:
        feed = OkxFeed([inst], ws_url=sim.ws_url, backoff=fast_backoff(), ping_interval_s=None)
        task = asyncio.create_task(feed.run())
        watch = Watch(feed, sim, "BTC-USDT")
        await converged(feed, sim, "BTC-USDT", inst)
        sim.faults.inject(fault)
        await until(lambda: shows(feed) and sim.faults.count(fault) >= 1, timeout=10)
        await converged(feed, sim, "BTC-USDT", inst)
        assert feed.ws.counters.handler_errors == 0, feed.ws.last_error
        assert not task.done()
        await watch.stop()
        assert watch.violations == [] and watch.samples > 0
        await feed.stop()
        await asyncio.wait_for(task, 5)


async def test_okx_resync_of_one_book_leaves_the_other_live() -> None:
    btc, eth = OKX_INSTRUMENTS["BTC-USDT"], OKX_INSTRUMENTS["ETH-USDT"]
    async with OkxSim([btc, eth], seed=22, interval_s=INTERVAL) as sim:
        feed = OkxFeed(
            [instrument("okx", btc), instrument("okx", eth)],
            ws_url=sim.ws_url,
            backoff=fast_backoff(),
            ping_interval_s=None,
        )
        task = asyncio.create_task(feed.run())
        await until(lambda: all(s.live for s in feed.syncs))
        eth_sync = feed.syncs[1]
        eth_applied = eth_sync.applied
        sim.faults.inject(Fault.CORRUPT_CHECKSUM, symbol="BTC-USDT")
        await until(lambda: feed.syncs[0].checksum_failures >= 1)
        await until(lambda: feed.syncs[0].live)
        assert feed.ws.counters.connects == 1  # the connection was never dropped
        assert eth_sync.resyncs == 0 and eth_sync.applied > eth_applied
        await feed.stop()
        await asyncio.wait_for(task, 5)


# -- Binance connection limits ------------------------------------------------------------------


def test_binance_feeds_spread_instruments_over_connections_within_the_stream_limit() -> None:
    many = [
        Instrument("binance", f"C{i}USDT", f"C{i}", "USDT", "0.01", "0.001") for i in range(2500)
    ]
    feeds = binance_feeds(SPOT, many)
    assert [len(f.instruments) for f in feeds] == [200] * 12 + [100]
    assert len({id(f.rest.limiter) for f in feeds}) == 1  # weight is per IP: one bucket
    assert [i.symbol for f in feeds for i in f.instruments] == [i.symbol for i in many]
    assert len(binance_feeds(SPOT, many, streams_per_connection=1024)) == 3
    with pytest.raises(ValueError, match="1025 streams on one Binance connection"):
        BinanceFeed(SPOT, many[:1025])
    with pytest.raises(ValueError, match=r"streams_per_connection must be 1\.\.1024"):
        binance_feeds(SPOT, many, streams_per_connection=2000)
    with pytest.raises(ValueError, match="instrument listed twice: C1USDT"):
        binance_feeds(SPOT, [many[1], many[1]])


async def test_binance_sharded_feeds_all_go_live() -> None:
    sims = [BINANCE_SPOT["BTCUSDT"], BINANCE_SPOT["ETHUSDT"]]
    insts = [instrument("binance", s) for s in sims]
    async with BinanceSim(sims, seed=21, interval_s=INTERVAL) as sim:
        feeds = binance_feeds(
            SPOT,
            insts,
            streams_per_connection=1,
            ws_base=sim.ws_url,
            rest_base=sim.rest_url,
            backoff=fast_backoff(),
        )
        tasks = [asyncio.create_task(f.run()) for f in feeds]
        for feed, inst in zip(feeds, insts, strict=True):
            await converged(feed, sim, inst.symbol, inst)
        assert sim.stats.connections == 2
        for feed in feeds:
            await feed.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)


async def test_binance_feed_keeps_under_the_venue_message_rate() -> None:
    # The sim pings 10 times a second and cuts a client that sends over 5 frames in a
    # second: a bare client answering every ping is cut; the feed coalesces its pongs.
    sim_inst = BINANCE_SPOT["BTCUSDT"]
    inst = instrument("binance", sim_inst)
    async with BinanceSim([sim_inst], seed=22, interval_s=INTERVAL, ping_interval_s=0.1) as sim:
        bare = WsFeed(sim.stream_url("btcusdt@depth@100ms"), _Quiet(), backoff=fast_backoff())
        bare_task = asyncio.create_task(bare.run())
        await until(lambda: sim.stats.rate_limit_cuts >= 1)
        await bare.stop()
        await asyncio.wait_for(bare_task, 5)
        cuts = sim.stats.rate_limit_cuts
        feed = BinanceFeed(
            SPOT, [inst], ws_base=sim.ws_url, rest_base=sim.rest_url, backoff=fast_backoff()
        )
        task = asyncio.create_task(feed.run())
        await converged(feed, sim, "BTCUSDT", inst)
        await asyncio.sleep(2.0)  # 20 pings
        assert sim.stats.rate_limit_cuts == cuts
        assert (feed.ws.counters.connects, feed.ws.counters.reconnects) == (1, 0)
        assert sim.stats.pongs >= 6 and feed.ws.counters.send_waits >= 1
        assert feed.syncs[0].live
        await feed.stop()
        await asyncio.wait_for(task, 5)


class _Quiet:
    def on_connected(self) -> list[bytes]:
        return []

    def on_frame(self, payload: bytes, recv_mono_ns: int, recv_wall_ns: int) -> None:
        pass

    def on_disconnected(self) -> None:
        pass


# -- the engine's hook -------------------------------------------------------------------------


@pytest.mark.parametrize("venue", ["binance", "okx"])
async def test_feeds_call_on_book_for_each_live_change_only(venue: str) -> None:
    seen: list[tuple[str, int, bool, bool]] = []
    feed: Any
    if venue == "binance":
        sim_inst = BINANCE_SPOT["BTCUSDT"]
        sim_cm: Any = BinanceSim([sim_inst], seed=31, interval_s=INTERVAL)
    else:
        sim_inst = OKX_INSTRUMENTS["BTC-USDT"]
        sim_cm = OkxSim([sim_inst], seed=31, interval_s=INTERVAL)
    inst = instrument(venue, sim_inst)
    async with sim_cm as sim:
        if venue == "binance":
            feed = BinanceFeed(
                SPOT, [inst], ws_base=sim.ws_url, rest_base=sim.rest_url, backoff=fast_backoff()
            )
        else:
            feed = OkxFeed([inst], ws_url=sim.ws_url, backoff=fast_backoff())
        feed.on_book = lambda sync, recv_ns: seen.append(
            (sync.instrument.symbol, recv_ns, sync.live, sync.book.crossed)
        )
        task = asyncio.create_task(feed.run())
        await until(lambda: len(seen) >= 20)
        sim.faults.inject(Fault.DROP)  # a gap: no calls while the book is out of LIVE
        await until(lambda: feed.syncs[0].gaps >= 1)
        calls = len(seen)
        await until(lambda: feed.syncs[0].live and len(seen) > calls + 5)
        await feed.stop()
        await asyncio.wait_for(task, 5)
    assert {s[0] for s in seen} == {inst.symbol}
    assert all(live and not crossed for _, _, live, crossed in seen)
    stamps = [s[1] for s in seen]
    assert stamps == sorted(stamps)
    sync = feed.syncs[0]
    # One call per applied update or LIVE snapshot; none for buffered or ignored frames.
    assert sync.applied <= len(seen) <= sync.applied + sync.snapshots
