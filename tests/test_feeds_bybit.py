"""BybitFeed end to end over loopback: the real feed against the simulated Bybit venue.

Each test runs the real feed (picows WebSocket, compiled parser, FeedRouter, BookSync)
against ``BybitSim``, injects a fault or a protocol situation, and checks that the book comes
back LIVE and equal to what the venue's topic published, that the counters show what
happened, that no exception escaped, and that no crossed or "future" book was ever LIVE.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import aiohttp
import pytest

from arbengine._core.instrument import Instrument
from arbengine.venues._frames import FAMILY_BYBIT_ORDERBOOK, FAMILY_BYBIT_SNAPSHOT
from arbengine.venues._router import FeedRouter
from arbengine.venues._sync import OUT_SNAPSHOT, BookSync
from arbengine.venues.bybit import BybitFeed, Category
from arbengine.venues.errors import FrameError
from arbengine.venues.sim import Fault, SimInstrument
from arbengine.venues.sim.bybit import BYBIT_INSTRUMENTS, BybitSim
from arbengine.venues.ws import Backoff
from tests.waiting import until

INTERVAL = 0.01  # the simulator's tick: 10 ms


def instrument(sim: SimInstrument) -> Instrument:
    base, quote = sim.asset.split("-")
    return Instrument("bybit", sim.symbol, base, quote, sim.tick, sim.lot)


def backoff() -> Backoff:
    return Backoff(base_s=0.01, cap_s=0.05, rng=random.Random(5))


def units(inst: Instrument, levels: tuple[tuple[str, str], ...]) -> list[tuple[int, int]]:
    return [(inst.price.parse(p), inst.size.parse(q)) for p, q in levels]


class Watch:
    """Samples one book while the feed runs: a LIVE book is never crossed nor ahead of the
    venue's topic; also counts samples out of LIVE once it had been LIVE."""

    def __init__(self, feed: BybitFeed, sim: BybitSim, index: int = 0) -> None:
        self.feed, self.sim, self.index = feed, sim, index
        self.samples = 0
        self.left_live = 0
        self.violations: list[str] = []
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        sync = self.feed.syncs[self.index]
        symbol, depth = sync.instrument.symbol, self.feed.depth
        was_live = False
        while True:
            if sync.live:
                was_live = True
                self.samples += 1
                if sync.book.crossed:
                    self.violations.append(f"crossed LIVE book at u={sync.last_id}")
                # After a service restart u starts again at 1: "ahead" means nothing then.
                if not self.sim.faults.count(Fault.SEQ_RESET):
                    venue_u = self.sim.topic_update_id(symbol, depth)
                    if sync.last_id > venue_u:
                        self.violations.append(f"LIVE at u={sync.last_id} > venue {venue_u}")
            elif was_live:
                self.left_live += 1
            await asyncio.sleep(0.002)

    async def stop(self) -> None:
        self._task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self._task


async def converged(feed: BybitFeed, sim: BybitSim, index: int = 0) -> None:
    """Freeze the venue, wait for the book to catch up with what its topic published,
    compare level by level, then let the venue move and the book follow again."""
    sync = feed.syncs[index]
    inst, symbol = sync.instrument, sync.instrument.symbol
    sim.pause()
    await until(lambda: sync.live and sync.last_id == sim.topic_update_id(symbol, feed.depth))
    truth = sim.topic_book(symbol, feed.depth)
    assert sync.book.bids() == units(inst, truth.bids)
    assert sync.book.asks() == units(inst, truth.asks)
    sim.resume()
    last = sync.last_id
    await until(lambda: sync.live and sync.last_id != last)


def feed_for(sim: BybitSim, *, depth: int = 50, **kwargs: Any) -> BybitFeed:
    insts = [instrument(i) for i in sim.instruments.values()]
    kwargs.setdefault("ping_interval_s", None)
    return BybitFeed(
        sim.category, insts, ws_url=sim.ws_url, depth=depth, backoff=backoff(), **kwargs
    )


async def finish(feed: BybitFeed, task: asyncio.Task[None], *, watchdog: bool = False) -> None:
    assert feed.ws.counters.handler_errors == 0, feed.ws.last_error
    if not watchdog:  # the feed reacted itself: its safety net was not needed
        assert feed.stuck_resubscribes == 0
    assert not task.done()  # nothing escaped
    await feed.stop()
    await asyncio.wait_for(task, 5)


# -- sync ----------------------------------------------------------------------------------


def test_feed_arguments() -> None:
    inst = instrument(BYBIT_INSTRUMENTS["spot"]["BTCUSDT"])
    feed = BybitFeed("spot", [inst])
    assert feed.ws.url == "wss://stream.bybit.com/v5/public/spot"
    assert feed.topics == ["orderbook.50.BTCUSDT"]
    with pytest.raises(ValueError, match="category"):
        BybitFeed("option", [inst])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="depth"):
        BybitFeed("linear", [inst], depth=25)
    with pytest.raises(ValueError, match="at least one"):
        BybitFeed("linear", [])
    # 21,000 characters of args per connection: about 1,000 topics of this length.
    many = [
        Instrument("bybit", f"X{i:04d}USDT", f"X{i:04d}", "USDT", "0.1", "1") for i in range(900)
    ]
    with pytest.raises(ValueError, match="21000"):
        BybitFeed("linear", many)
    assert len(BybitFeed("linear", many[:700]).topics) == 700


@pytest.mark.parametrize(
    ("category", "symbol", "depth"),
    [
        ("linear", "BTCUSDT", 50),
        ("spot", "BTCUSDT", 50),
        ("inverse", "BTCUSD", 200),
        ("spot", "ETHUSDT", 1000),
        ("linear", "ETHUSDT", 1),
    ],
)
async def test_feed_syncs_to_the_topic_book(category: Category, symbol: str, depth: int) -> None:
    sim_inst = BYBIT_INSTRUMENTS[category][symbol]
    async with BybitSim([sim_inst], category=category, seed=31, interval_s=INTERVAL) as sim:
        feed = feed_for(sim, depth=depth)
        task = asyncio.create_task(feed.run())
        watch = Watch(feed, sim)
        await converged(feed, sim)
        await converged(feed, sim)
        sync = feed.syncs[0]
        # The window holds: levels that left the top-depth arrived as "0" deletes.
        model_depth = sim_inst.depth
        assert len(sync.book.bids()) == len(sync.book.asks()) == min(depth, model_depth)
        assert set(feed.live_books()) == {symbol}
        if depth == 1:  # level 1 is snapshot-only
            assert sync.applied == 0 and sync.snapshots >= 2
        else:
            assert sync.snapshots == 1 and sync.applied >= 2 and sync.gaps == 0
        assert feed.resubscribes == 0 and feed.router.frame_errors == 0
        await watch.stop()
        assert watch.violations == [] and watch.samples > 0 and watch.left_live == 0
        await finish(feed, task)


# -- one fault at a time -------------------------------------------------------------------

Counters = dict[str, int]


def counters(feed: BybitFeed) -> Counters:
    sync = feed.syncs[0]
    return {
        "gaps": sync.gaps,
        "ignored": sync.ignored,
        "snapshots": sync.snapshots,
        "crossed": sync.crossed_books,
        "resubscribes": feed.resubscribes,
        "frame_errors": feed.router.frame_errors,
        "reconnects": feed.ws.counters.reconnects,
        "silent_closes": feed.ws.counters.silent_closes,
    }


def moved(before: Counters, after: Counters) -> set[str]:
    return {k for k in before if after[k] != before[k]}


# fault, inject kwargs, counters that must move, counters that must NOT move
FAULTS: list[tuple[Fault, dict[str, Any], set[str], set[str]]] = [
    (Fault.DROP, {}, {"gaps", "resubscribes"}, {"reconnects"}),
    (Fault.DUPLICATE, {}, {"ignored"}, {"gaps", "resubscribes", "reconnects"}),
    (Fault.REORDER, {}, {"gaps", "resubscribes"}, {"reconnects"}),
    (Fault.MALFORMED, {}, {"frame_errors", "resubscribes"}, {"reconnects"}),
    (Fault.TRUNCATED, {}, {"frame_errors", "resubscribes"}, {"reconnects"}),
    (Fault.DISCONNECT, {}, {"reconnects", "snapshots"}, {"gaps"}),
    (Fault.SILENCE, {"seconds": 1.0}, {"silent_closes", "reconnects"}, set()),
    # The u=1 restart snapshot overwrites the book: no gap, no resubscribe.
    (Fault.SEQ_RESET, {}, {"snapshots"}, {"gaps", "resubscribes", "reconnects"}),
    (Fault.CROSSED_SNAPSHOT, {}, {"crossed", "resubscribes"}, {"reconnects"}),
]
# A crossed snapshot only shows when a snapshot is sent: a dropped delta forces one.
NEEDS_RESUBSCRIBE = {Fault.CROSSED_SNAPSHOT}


@pytest.mark.parametrize(
    ("fault", "kwargs", "must_move", "must_stay"), FAULTS, ids=[f[0].value for f in FAULTS]
)
async def test_feed_recovers_from_each_fault(
    fault: Fault, kwargs: dict[str, Any], must_move: set[str], must_stay: set[str]
) -> None:
    sim_inst = BYBIT_INSTRUMENTS["linear"]["BTCUSDT"]
    async with BybitSim([sim_inst], category="linear", seed=32, interval_s=INTERVAL) as sim:
        feed = feed_for(sim, silence_timeout_s=0.5)
        task = asyncio.create_task(feed.run())
        watch = Watch(feed, sim)
        await converged(feed, sim)
        before = counters(feed)
        sim.faults.inject(fault, **kwargs)
        if fault in NEEDS_RESUBSCRIBE:
            sim.faults.inject(Fault.DROP)
        await until(lambda: must_move <= moved(before, counters(feed)))
        await converged(feed, sim)
        after = counters(feed)
        assert sim.faults.count(fault) >= 1
        assert not must_stay & moved(before, after), (before, after)
        if fault == Fault.SEQ_RESET:  # the chain restarted from u=1 and the feed followed it
            assert feed.syncs[0].last_id == sim.topic_update_id("BTCUSDT") < 1000
        await watch.stop()
        assert watch.violations == [] and watch.samples > 0
        await finish(feed, task)


async def test_restart_snapshot_overwrites_levels_the_book_had() -> None:
    sim_inst = BYBIT_INSTRUMENTS["linear"]["BTCUSDT"]
    async with BybitSim([sim_inst], category="linear", seed=41, interval_s=INTERVAL) as sim:
        feed = feed_for(sim)
        task = asyncio.create_task(feed.run())
        await converged(feed, sim)
        sync = feed.syncs[0]
        sim.pause()  # the test drives the venue tick by tick
        await until(lambda: sync.last_id == sim.topic_update_id("BTCUSDT"))
        overwritten = 0
        for restarts in range(1, 31):
            had = {("b", p) for p, _ in sync.book.bids()} | {("a", p) for p, _ in sync.book.asks()}
            snapshots = sync.snapshots
            sim.faults.inject(Fault.SEQ_RESET)
            while sim.faults.count(Fault.SEQ_RESET) < restarts:
                sim.tick()  # a tick without change is no restart opportunity
            await until(lambda: sync.snapshots == snapshots + 1)  # noqa: B023
            assert sync.live and sync.last_id == sim.topic_update_id("BTCUSDT") == 1
            truth = sim.topic_book("BTCUSDT")
            assert sync.book.bids() == units(sync.instrument, truth.bids)
            assert sync.book.asks() == units(sync.instrument, truth.asks)
            now = {("b", p) for p, _ in sync.book.bids()} | {("a", p) for p, _ in sync.book.asks()}
            # Levels only the restart snapshot removed (their delete was never sent): a feed
            # that merged the snapshot instead of overwriting would still hold them.
            overwritten += bool(had - now)
            if overwritten >= 3:
                break
        assert overwritten >= 3
        assert feed.resubscribes == 0 and sync.gaps == 0
        sim.resume()
        await converged(feed, sim)
        await finish(feed, task)


# -- several books on one connection ---------------------------------------------------------


async def test_resync_of_one_book_leaves_the_other_live() -> None:
    btc, eth = BYBIT_INSTRUMENTS["linear"]["BTCUSDT"], BYBIT_INSTRUMENTS["linear"]["ETHUSDT"]
    async with BybitSim([btc, eth], category="linear", seed=33, interval_s=INTERVAL) as sim:
        feed = feed_for(sim)
        task = asyncio.create_task(feed.run())
        await converged(feed, sim, 1)
        eth_watch = Watch(feed, sim, 1)
        btc_sync, eth_sync = feed.syncs
        eth_applied = eth_sync.applied
        sim.faults.inject(Fault.DROP, symbol="BTCUSDT")
        await until(lambda: btc_sync.gaps >= 1)
        await converged(feed, sim, 0)
        assert feed.ws.counters.connects == 1  # the connection was never dropped
        assert feed.resubscribes == 1
        assert sim.subscribe_requests == {"orderbook.50.BTCUSDT": 2, "orderbook.50.ETHUSDT": 1}
        assert eth_sync.resyncs == 0 and eth_sync.applied > eth_applied
        await eth_watch.stop()
        assert eth_watch.left_live == 0 and eth_watch.violations == []
        await converged(feed, sim, 1)
        await finish(feed, task)


async def test_spot_subscribes_in_requests_of_at_most_ten_topics() -> None:
    # Twelve small spot pairs (20 levels per side keeps the model cheap).
    names = [f"C{i:02d}" for i in range(12)]
    coins = [
        SimInstrument(f"{n}USDT", "0.01", "0.001", None, None, "100", "5", f"{n}-USDT", 20)
        for n in names
    ]
    async with BybitSim(coins, category="spot", seed=34, interval_s=INTERVAL) as sim:
        feed = feed_for(sim)
        task = asyncio.create_task(feed.run())
        await until(lambda: all(s.live for s in feed.syncs))
        assert sim.subscribe_ops == 2 and sim.max_args == 10
        assert feed.subscribe_failures == 0 and feed.refused == set()
        await converged(feed, sim, 11)
        await finish(feed, task)
        # What the chunking avoids: spot refuses an 11-topic request outright.
        async with aiohttp.ClientSession() as http, http.ws_connect(sim.ws_url) as ws:
            args = [f"orderbook.50.{c.symbol}" for c in coins[:11]]
            await ws.send_json({"op": "subscribe", "args": args, "req_id": "x"})
            reply = await asyncio.wait_for(ws.receive_json(), 5)
        assert reply["success"] is False and reply["ret_msg"] == "args size >10"


# -- pings, refusals, the watchdog -----------------------------------------------------------


@pytest.mark.parametrize("category", ["spot", "linear"])
async def test_pings_keep_the_connection_and_pongs_are_not_errors(category: Category) -> None:
    sim_inst = BYBIT_INSTRUMENTS[category]["BTCUSDT"]
    async with BybitSim(
        [sim_inst], category=category, seed=35, interval_s=INTERVAL, client_idle_timeout_s=1.0
    ) as sim:
        feed = feed_for(sim, ping_interval_s=0.1, silence_timeout_s=1.0)
        task = asyncio.create_task(feed.run())
        # Idle cuts come after 1 s without a client frame; this runs well past that.
        await until(lambda: sim.client_pings >= 8 and feed.pongs >= 8)
        assert feed.ws.counters.pings >= 8
        assert sim.idle_disconnects == 0 and feed.ws.counters.connects == 1
        assert feed.router.frame_errors == 0 and feed.router.not_book >= feed.pongs
        assert all(s.parse_errors == 0 for s in feed.syncs)
        assert feed.subscribe_failures == 0 and feed.last_error == ""
        await converged(feed, sim)
        await finish(feed, task)


async def test_without_pings_the_venue_cuts_the_idle_client_and_the_feed_resyncs() -> None:
    sim_inst = BYBIT_INSTRUMENTS["linear"]["BTCUSDT"]
    async with BybitSim(
        [sim_inst], category="linear", seed=36, interval_s=INTERVAL, client_idle_timeout_s=0.3
    ) as sim:
        feed = feed_for(sim, ping_interval_s=None)
        task = asyncio.create_task(feed.run())
        await until(lambda: sim.idle_disconnects >= 1 and feed.ws.counters.reconnects >= 1)
        await until(lambda: feed.syncs[0].live and feed.syncs[0].snapshots >= 2)
        assert sim.client_pings == 0
        await finish(feed, task)


async def test_a_refused_subscribe_is_recorded_and_not_retried() -> None:
    btc = BYBIT_INSTRUMENTS["linear"]["BTCUSDT"]
    async with BybitSim([btc], category="linear", seed=37, interval_s=INTERVAL) as sim:
        nope = Instrument("bybit", "NOPEUSDT", "NOPE", "USDT", "0.01", "0.01")
        feed = BybitFeed(
            "linear",
            [instrument(btc), nope],
            ws_url=sim.ws_url,
            backoff=backoff(),
            ping_interval_s=None,
            resync_timeout_s=0.2,
        )
        task = asyncio.create_task(feed.run())
        await until(lambda: feed.subscribe_failures >= 1)
        assert feed.refused == {"orderbook.50.NOPEUSDT"}
        assert "handler not found" in feed.last_error and "NOPEUSDT" in feed.last_error
        assert "\n" not in feed.last_error
        await converged(feed, sim, 0)  # the valid topic of the same request streams
        await asyncio.sleep(1.0)  # five watchdog timeouts
        assert sim.subscribe_requests["orderbook.50.NOPEUSDT"] == 1
        assert feed.subscribe_failures == 1 and feed.stuck_resubscribes == 0
        assert not feed.syncs[1].live and set(feed.live_books()) == {"BTCUSDT"}
        await finish(feed, task)


async def test_watchdog_resubscribes_a_book_whose_snapshot_never_came() -> None:
    sim_inst = BYBIT_INSTRUMENTS["linear"]["BTCUSDT"]
    async with BybitSim([sim_inst], category="linear", seed=38, interval_s=INTERVAL) as sim:
        feed = feed_for(sim, resync_timeout_s=0.3)
        task = asyncio.create_task(feed.run())
        await converged(feed, sim)
        sync = feed.syncs[0]
        sim.pause()  # nothing streams: only a resubscribe can bring a snapshot
        sim.faults.inject(Fault.DROP)  # ... and the first one is lost
        sync.resync("operator")
        await until(lambda: sync.live)
        assert sim.faults.count(Fault.DROP) == 1
        assert feed.stuck_resubscribes == 2 and feed.ws.counters.connects == 1
        await converged(feed, sim)
        await finish(feed, task, watchdog=True)


# -- level 1 and REST ----------------------------------------------------------------------


async def test_level1_repeats_its_snapshot_with_the_same_u() -> None:
    sim_inst = BYBIT_INSTRUMENTS["linear"]["BTCUSDT"]
    async with BybitSim(
        [sim_inst], category="linear", seed=39, interval_s=INTERVAL, level1_resend_s=0.2
    ) as sim:
        feed = feed_for(sim, depth=1)
        task = asyncio.create_task(feed.run())
        await converged(feed, sim)
        sync = feed.syncs[0]
        sim.pause()
        await until(lambda: sync.last_id == sim.topic_update_id("BTCUSDT", 1))
        u, snapshots = sync.last_id, sync.snapshots
        await until(lambda: sync.snapshots >= snapshots + 2)
        assert sync.live and sync.last_id == u and feed.resubscribes == 0
        sim.resume()
        await converged(feed, sim)
        await finish(feed, task)


async def test_rest_orderbook_is_the_1000_level_stream() -> None:
    sim_inst = BYBIT_INSTRUMENTS["linear"]["BTCUSDT"]
    inst = instrument(sim_inst)
    async with (
        BybitSim([sim_inst], category="linear", seed=40, interval_s=INTERVAL) as sim,
        aiohttp.ClientSession() as http,
    ):
        await asyncio.sleep(0.1)
        sim.pause()
        url = f"{sim.rest_url}/v5/market/orderbook"

        async def get(**query: str) -> tuple[bytes, dict[str, Any]]:
            async with http.get(url, params=query) as resp:
                assert resp.status == 200
                body = await resp.read()
                return body, await resp.json()

        body, reply = await get(category="linear", symbol="BTCUSDT", limit="1000")
        sync = BookSync(inst, "bybit")
        router = FeedRouter(
            FAMILY_BYBIT_ORDERBOOK, [b"BTCUSDT"], [sync], snapshot_family=FAMILY_BYBIT_SNAPSHOT
        )
        sync.start()
        assert router.on_snapshot(0, body, 0) == OUT_SNAPSHOT
        truth = sim.true_book("BTCUSDT")
        assert sync.last_id == truth.update_id == reply["result"]["u"]
        assert sync.book.bids() == units(inst, truth.bids)
        assert sync.book.asks() == units(inst, truth.asks)
        assert set(reply["result"]) == {"s", "b", "a", "ts", "u", "seq", "cts"}
        _, reply = await get(category="linear", symbol="BTCUSDT")
        assert len(reply["result"]["b"]) == len(reply["result"]["a"]) == 25  # the default
        for query, msg in [
            ({"category": "option", "symbol": "BTCUSDT"}, "Illegal category"),
            ({"category": "spot", "symbol": "BTCUSDT"}, "The requested symbol is invalid."),
            ({"category": "linear", "symbol": "NOPEUSDT"}, "The requested symbol is invalid."),
            ({"category": "linear", "symbol": "BTCUSDT", "limit": "0"}, "limit is invalid."),
        ]:
            body, reply = await get(**query)
            assert reply["retCode"] == 10001 and reply["retMsg"].endswith(msg)
            with pytest.raises(FrameError, match="10001"):
                router.on_snapshot(0, body, 0)
        sim.faults.inject(Fault.REST_429, seconds=1.0)
        async with http.get(url, params={"category": "linear", "symbol": "BTCUSDT"}) as resp:
            assert resp.status == 429 and resp.headers["Retry-After"] == "1"
            assert (await resp.json())["retCode"] == 10006
