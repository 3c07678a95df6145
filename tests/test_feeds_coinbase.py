"""Coinbase Advanced Trade ``level2`` end to end over loopback: CoinbaseFeed against CoinbaseSim.

Each test runs the real feed (picows WebSocket, compiled parser, FeedRouter with its
connection-wide ``sequence_num`` check, BookSync) against the simulated venue. The fault
tests inject one fault and check four things: the book comes back LIVE and equal to the true
book, the counter that shows the fault was seen moved, no handler raised, and a sampler saw
no crossed or wrong book offered as LIVE meanwhile.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import aiohttp
import orjson
import pytest

from arbengine._core.instrument import Instrument
from arbengine.venues._sync import BookSync
from arbengine.venues.coinbase import CoinbaseFeed
from arbengine.venues.sim import Fault, SimInstrument
from arbengine.venues.sim.coinbase import COINBASE_INSTRUMENTS, CoinbaseSim
from tests.waiting import WAIT, fast_backoff, until

INTERVAL = 0.01  # the simulator's tick: 10 ms
HEARTBEAT = 0.1  # the simulator's heartbeat period here (1 s on the venue)
BTC, ETH = COINBASE_INSTRUMENTS["BTC-USD"], COINBASE_INSTRUMENTS["ETH-USD"]


def instrument(sim: SimInstrument) -> Instrument:
    base, quote = sim.symbol.split("-")
    return Instrument("coinbase", sim.symbol, base, quote, sim.tick, sim.lot)


def make_feed(sim: CoinbaseSim, *insts: SimInstrument, **kwargs: Any) -> CoinbaseFeed:
    kwargs.setdefault("backoff", fast_backoff())
    return CoinbaseFeed([instrument(i) for i in insts], ws_url=sim.ws_url, **kwargs)


def book_diff(sync: BookSync, sim: CoinbaseSim, depth: int | None = None) -> str:
    """ "" when the feed's book equals the true book (top ``depth`` levels), else why not."""
    inst = sync.instrument
    truth = sim.true_book(inst.symbol, depth)
    bids = [(inst.price.parse(p), inst.size.parse(q)) for p, q in truth.bids]
    asks = [(inst.price.parse(p), inst.size.parse(q)) for p, q in truth.asks]
    n = -1 if depth is None else depth
    if sync.book.bids(n) != bids:
        return f"{inst.symbol} bids differ at sequence_num {sync.last_id}"
    if sync.book.asks(n) != asks:
        return f"{inst.symbol} asks differ at sequence_num {sync.last_id}"
    return ""


class Watch:
    """Samples the feed while it runs. A LIVE book must never be crossed, never be ahead of
    what the connection was sent, and must equal the true book whenever it has caught up
    with the venue (its last message is the venue's last one for that product and the true
    book has not moved since)."""

    def __init__(self, feed: CoinbaseFeed, sim: CoinbaseSim, index: int = 0) -> None:
        self.feed, self.sim, self.index = feed, sim, index
        self.samples = 0
        self.compared = 0  # samples where the LIVE book was checked against the truth
        self.left_live = 0  # samples not LIVE after the first LIVE one
        self.violations: list[str] = []
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        seen_live = False
        while True:
            sync = self.feed.syncs[self.index]
            if sync.live:
                seen_live = True
                self.samples += 1
                self._check(sync)
            elif seen_live:
                self.left_live += 1
            await asyncio.sleep(0.002)

    def _check(self, sync: BookSync) -> None:
        if sync.book.crossed:
            self.violations.append(f"crossed LIVE book at {sync.last_id}")
        sent = self.sim.connection_sequence()
        if sent is not None and sync.last_id > sent:
            self.violations.append(f"LIVE at {sync.last_id} > sent {sent}")
        if sync.last_id == self.sim.caught_up_sequence(sync.instrument.symbol):
            self.compared += 1
            diff = book_diff(sync, self.sim, 20)
            if diff:
                self.violations.append(diff)

    async def stop(self) -> None:
        self._task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self._task


async def converged(feed: CoinbaseFeed, sim: CoinbaseSim, index: int = 0) -> None:
    """Freeze the venue, wait for the feed to catch up, compare with the true book."""
    sync = feed.syncs[index]
    symbol = sync.instrument.symbol
    sim.pause()
    await until(lambda: sync.live and sync.last_id == sim.caught_up_sequence(symbol))
    assert book_diff(sync, sim) == ""
    assert sync.book.bids() and sync.book.asks()
    sim.resume()
    # Past the snapshot: a fault injected now hits the update stream.
    applied = sync.applied
    await until(lambda: sync.applied > applied)


async def finish(feed: CoinbaseFeed, task: asyncio.Task[None]) -> None:
    assert feed.ws.counters.handler_errors == 0, feed.ws.last_error
    assert not task.done()  # nothing escaped
    await feed.stop()
    await asyncio.wait_for(task, 5)


async def test_syncs_both_products_and_equals_the_true_book() -> None:
    async with CoinbaseSim([BTC, ETH], seed=31, interval_s=INTERVAL) as sim:
        feed = make_feed(sim, BTC, ETH)
        task = asyncio.create_task(feed.run())
        watches = [Watch(feed, sim, 0), Watch(feed, sim, 1)]
        await converged(feed, sim, 0)
        await converged(feed, sim, 1)
        assert set(feed.live_books()) == {"BTC-USD", "ETH-USD"}
        # One channel per subscribe, every product in it, no token unless asked for. The
        # second frame waits for the send rate (unauthenticated messages are limited).
        await until(lambda: len(sim.requests) >= 2)
        assert [(r.type, r.channel, r.product_ids, r.has_jwt) for r in sim.requests] == [
            ("subscribe", "level2", ("BTC-USD", "ETH-USD"), False),
            ("subscribe", "heartbeats", ("BTC-USD", "ETH-USD"), False),
        ]
        counters = feed.counters()
        assert counters["sequence_gaps"] == counters["resubscribes"] == 0
        assert counters["live_books"] == 2 and counters["connects"] == 1
        # Both products' messages, the replies and the heartbeats share the one sequence_num:
        # the feed got every one of them, in order.
        sim.pause()
        await until(lambda: feed.router.last_sequence == sim.connection_sequence())
        assert feed.sequence_gaps == 0
        sim.resume()
        assert feed.syncs[0].snapshots == feed.syncs[1].snapshots == 1
        assert feed.router.clock.samples > 0  # the envelope timestamp feeds the clock
        for watch in watches:
            await watch.stop()
            assert watch.violations == [] and watch.compared > 0
        await finish(feed, task)


# (fault, inject kwargs, feed kwargs, the counter that shows the fault was seen)
FAULTS: list[tuple[Fault, dict[str, Any], dict[str, Any], Callable[[CoinbaseFeed], bool]]] = [
    (Fault.DROP, {}, {}, lambda f: f.router.sequence_gaps >= 1 and f.resubscribes >= 1),
    (Fault.DUPLICATE, {}, {}, lambda f: f.router.sequence_gaps >= 1 and f.resubscribes >= 1),
    (Fault.REORDER, {}, {}, lambda f: f.router.sequence_gaps >= 1 and f.resubscribes >= 1),
    (Fault.MALFORMED, {}, {}, lambda f: f.router.frame_errors >= 1 and f.resubscribes >= 1),
    (Fault.TRUNCATED, {}, {}, lambda f: f.router.frame_errors >= 1 and f.resubscribes >= 1),
    (Fault.DISCONNECT, {}, {}, lambda f: f.ws.counters.reconnects >= 1),
    (
        Fault.SILENCE,
        {"seconds": 1.0},
        {"silence_timeout_s": 0.5},
        lambda f: f.ws.counters.silent_closes >= 1 and f.ws.counters.reconnects >= 1,
    ),
    (Fault.CROSSED_SNAPSHOT, {}, {}, lambda f: f.syncs[0].crossed_books >= 1),
]


@pytest.mark.parametrize(
    ("fault", "inject", "feed_kwargs", "shows"), FAULTS, ids=[f[0].value for f in FAULTS]
)
async def test_recovers_from_each_fault(
    fault: Fault,
    inject: dict[str, Any],
    feed_kwargs: dict[str, Any],
    shows: Callable[[CoinbaseFeed], bool],
) -> None:
    async with CoinbaseSim(
        [BTC], seed=32, interval_s=INTERVAL, heartbeat_interval_s=HEARTBEAT
    ) as sim:
        feed = make_feed(sim, BTC, **feed_kwargs)
        task = asyncio.create_task(feed.run())
        watch = Watch(feed, sim)
        await converged(feed, sim)
        sim.faults.inject(fault, **inject)
        if fault == Fault.CROSSED_SNAPSHOT:
            # Snapshots only come after a subscribe: a lost message forces one.
            sim.faults.inject(Fault.DROP)
        await until(lambda: shows(feed) and sim.faults.count(fault) >= 1)
        await converged(feed, sim)
        if fault == Fault.DISCONNECT:
            # sequence_num restarts on the new connection: not a gap.
            assert feed.sequence_gaps == 0 and feed.resubscribes == 0
        await watch.stop()
        assert watch.violations == [] and watch.compared > 0
        await finish(feed, task)


async def test_crossed_snapshot_of_one_product_resyncs_only_that_one() -> None:
    async with CoinbaseSim(
        [BTC, ETH], seed=33, interval_s=INTERVAL, heartbeat_interval_s=HEARTBEAT
    ) as sim:
        feed = make_feed(sim, BTC, ETH)
        task = asyncio.create_task(feed.run())
        btc, eth = feed.syncs
        await until(lambda: btc.live and eth.live and len(sim.requests) == 2)
        watches = [Watch(feed, sim, 0), Watch(feed, sim, 1)]
        eth_applied = eth.applied
        before = len(sim.requests)
        sim.faults.inject(Fault.CROSSED_SNAPSHOT, symbol="BTC-USD")
        feed.resync("BTC-USD")  # an operator's resync: BTC gets a fresh (crossed) snapshot
        await until(lambda: btc.crossed_books >= 1)
        await converged(feed, sim, 0)
        await converged(feed, sim, 1)
        # BTC was resubscribed twice (the operator, then the crossed book), ETH never.
        assert [(r.type, r.product_ids) for r in sim.requests[before:]] == [
            ("unsubscribe", ("BTC-USD",)),
            ("subscribe", ("BTC-USD",)),
        ] * 2
        assert btc.last_reason_name == "crossed" and btc.snapshots == 2
        assert eth.resyncs == 0 and eth.snapshots == 1 and eth.applied > eth_applied
        assert feed.ws.counters.connects == 1 and feed.sequence_gaps == 0
        for watch in watches:
            await watch.stop()
            assert watch.violations == [] and watch.compared > 0
        assert watches[1].left_live == 0  # ETH stayed LIVE all along
        await finish(feed, task)


async def test_heartbeats_keep_a_quiet_connection_open_and_sequence_num_continuous() -> None:
    async with CoinbaseSim(
        [BTC], seed=34, interval_s=INTERVAL, heartbeat_interval_s=0.05, idle_close_s=0.5
    ) as sim:
        feed = make_feed(sim, BTC)
        task = asyncio.create_task(feed.run())
        sync = feed.syncs[0]
        await until(lambda: sync.live)
        sim.pause()  # a quiet book: only heartbeats from now on
        await until(lambda: sync.last_id == sim.caught_up_sequence("BTC-USD"))
        book_at, seq_at = sync.last_id, feed.router.last_sequence
        await asyncio.sleep(1.5)  # three idle-close windows
        assert sim.idle_closes == 0 and feed.ws.counters.connects == 1
        # Heartbeats moved sequence_num on, one by one: no gap, the book untouched and LIVE.
        assert feed.router.last_sequence >= seq_at + 10
        assert feed.router.sequence_gaps == 0
        assert sync.live and sync.last_id == book_at
        # The next update comes after all those heartbeats and chains on the last of them.
        last_heartbeat = feed.router.last_sequence
        applied = sync.applied
        sim.resume()
        await until(lambda: sync.last_id > last_heartbeat)
        assert sync.applied > applied and feed.router.sequence_gaps == 0
        await converged(feed, sim)
        assert feed.sequence_gaps == 0 and feed.resubscribes == 0
        await finish(feed, task)


async def test_a_quiet_connection_without_heartbeats_is_closed() -> None:
    async with (
        CoinbaseSim([BTC], seed=35, interval_s=INTERVAL, idle_close_s=0.3) as sim,
        aiohttp.ClientSession() as http,
        http.ws_connect(sim.ws_url) as ws,
    ):
        sim.pause()
        request = {"type": "subscribe", "product_ids": ["BTC-USD"], "channel": "level2"}
        await ws.send_str(orjson.dumps(request).decode())
        messages: list[dict[str, Any]] = []
        async with asyncio.timeout(WAIT):
            async for msg in ws:  # ends when the venue closes the connection
                if msg.type == aiohttp.WSMsgType.TEXT:
                    messages.append(orjson.loads(msg.data))
        assert [(m["channel"], m["sequence_num"]) for m in messages] == [
            ("subscriptions", 0),
            ("l2_data", 1),
        ]
        assert messages[0]["events"] == [{"subscriptions": {"level2": ["BTC-USD"]}}]
        event = messages[1]["events"][0]
        assert event["type"] == "snapshot" and event["product_id"] == "BTC-USD"
        assert {u["side"] for u in event["updates"]} == {"bid", "offer"}
        assert sim.idle_closes == 1 and ws.closed


async def test_subscription_error_is_recorded_and_the_connection_goes_on() -> None:
    doge = Instrument("coinbase", "DOGE-USD", "DOGE", "USD", "0.00001", "0.1")
    async with CoinbaseSim(
        [BTC], seed=36, interval_s=INTERVAL, heartbeat_interval_s=HEARTBEAT
    ) as sim:
        feed = CoinbaseFeed([instrument(BTC), doge], ws_url=sim.ws_url, backoff=fast_backoff())
        task = asyncio.create_task(feed.run())
        await until(lambda: feed.venue_errors >= 1 and len(sim.requests) == 2)
        assert feed.last_error.startswith("coinbase error: ") and "DOGE-USD" in feed.last_error
        assert "\n" not in feed.last_error
        # The level2 request was refused as a whole; heartbeats were not, and keep counting.
        assert [(r.channel, r.accepted) for r in sim.requests] == [
            ("level2", False),
            ("heartbeats", True),
        ]
        seq = feed.router.last_sequence
        await until(lambda: feed.router.last_sequence >= seq + 3)
        assert feed.live_books() == {} and feed.sequence_gaps == 0
        assert feed.ws.counters.connects == 1
        await finish(feed, task)


async def test_jwt_goes_fresh_into_every_subscribe() -> None:
    issued = itertools.count()
    async with CoinbaseSim([BTC], seed=37, interval_s=INTERVAL) as sim:
        feed = make_feed(sim, BTC, jwt_provider=lambda: f"header.claims.sig{next(issued)}")
        task = asyncio.create_task(feed.run())
        await converged(feed, sim)
        feed.resync()
        await converged(feed, sim)
        assert [(r.type, r.channel, r.has_jwt, r.accepted) for r in sim.requests] == [
            ("subscribe", "level2", True, True),
            ("subscribe", "heartbeats", True, True),
            ("unsubscribe", "level2", True, True),
            ("subscribe", "level2", True, True),
        ]
        assert next(issued) == 4  # one token per frame
        await finish(feed, task)


async def test_a_refused_or_failing_jwt_is_reported_without_the_token() -> None:
    secret = "not-a-jwt-but-secret"
    async with CoinbaseSim([BTC], seed=38, interval_s=INTERVAL) as sim:
        feed = make_feed(sim, BTC, jwt_provider=lambda: secret)
        task = asyncio.create_task(feed.run())
        await until(lambda: feed.venue_errors >= 2)
        assert "authentication failure" in feed.last_error
        assert secret not in feed.last_error and secret not in feed.ws.last_error
        assert feed.live_books() == {}
        await finish(feed, task)

    def failing() -> str:
        raise RuntimeError(f"cannot sign with {secret}")

    async with CoinbaseSim([BTC], seed=39, interval_s=INTERVAL) as sim:
        feed = make_feed(sim, BTC, jwt_provider=failing)
        task = asyncio.create_task(feed.run())
        # level2 is public: the feed subscribes without a token and says why.
        await converged(feed, sim)
        assert feed.last_error == "coinbase: JWT provider failed (RuntimeError)"
        assert not any(r.has_jwt for r in sim.requests)
        await finish(feed, task)


async def test_rest_product_book() -> None:
    url_path = "/api/v3/brokerage/product_book"
    async with (
        CoinbaseSim([BTC], seed=40, interval_s=INTERVAL) as sim,
        aiohttp.ClientSession(sim.rest_url) as http,
    ):
        sim.pause()
        async with http.get(url_path, params={"product_id": "BTC-USD", "limit": "5"}) as resp:
            assert resp.status == 200
            body = orjson.loads(await resp.read())
        truth = sim.true_book("BTC-USD", 5)
        book = body["pricebook"]
        assert book["product_id"] == "BTC-USD"
        assert [(lv["price"], lv["size"]) for lv in book["bids"]] == list(truth.bids)
        assert [(lv["price"], lv["size"]) for lv in book["asks"]] == list(truth.asks)
        assert truth.best_bid is not None and truth.best_ask is not None
        bid, ask = Decimal(truth.best_bid[0]), Decimal(truth.best_ask[0])
        assert Decimal(body["mid_market"]) == (bid + ask) / 2
        assert Decimal(body["spread_absolute"]) == ask - bid
        for params, status in [
            ({"product_id": "DOGE-USD"}, 404),
            ({}, 400),
            ({"product_id": "BTC-USD", "limit": "0"}, 400),
        ]:
            async with http.get(url_path, params=params) as resp:
                assert resp.status == status
                assert "error" in orjson.loads(await resp.read())
        sim.faults.inject(Fault.REST_429, seconds=1.0)
        async with http.get(url_path, params={"product_id": "BTC-USD"}) as resp:
            assert resp.status == 429 and resp.headers["Retry-After"] == "1"


async def test_on_book_is_called_for_each_live_change_only() -> None:
    seen: list[tuple[str, int, bool, bool]] = []
    async with CoinbaseSim(
        [BTC, ETH], seed=41, interval_s=INTERVAL, heartbeat_interval_s=HEARTBEAT
    ) as sim:
        feed = make_feed(sim, BTC, ETH)
        feed.on_book = lambda sync, recv_ns: seen.append(
            (sync.instrument.symbol, recv_ns, sync.live, sync.book.crossed)
        )
        task = asyncio.create_task(feed.run())
        await until(lambda: len(seen) >= 40)
        sim.faults.inject(Fault.DROP)  # a gap: both books leave LIVE, no calls meanwhile
        await until(lambda: feed.sequence_gaps >= 1)
        calls = len(seen)
        await until(lambda: all(s.live for s in feed.syncs) and len(seen) > calls + 10)
        await finish(feed, task)
    assert {s[0] for s in seen} == {"BTC-USD", "ETH-USD"}
    assert all(live and not crossed for _, _, live, crossed in seen)
    stamps = [s[1] for s in seen]
    assert stamps == sorted(stamps)
    # One call per applied update or LIVE snapshot; none for ignored or non-book frames.
    changes = sum(s.applied + s.snapshots for s in feed.syncs)
    assert sum(s.applied for s in feed.syncs) <= len(seen) <= changes
