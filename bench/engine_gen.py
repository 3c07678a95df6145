"""The engine benchmark's load generator: a separate process serving both venues' protocols.

One picows server on 127.0.0.1 speaks what the engine's feeds expect:

* ``/stream?streams=c00usdt@depth@100ms/...``: a Binance combined stream of ``depthUpdate``
  events for the symbols named in the URL;
* ``/api/v3/depth?symbol=C00USDT&limit=..``: the Binance REST snapshot of the book as it is
  after the last event sent (plain HTTP 200 from the same server, ``Connection: close``);
* ``/ws/v5/public``: OKX v5 ``books``: subscribe is answered, then a snapshot per
  instrument, then updates; the text ``ping`` is answered ``pong``.

Nothing is sent until the parent asks for a phase (over a multiprocessing pipe): so the
REST snapshots the Binance feed fetches on connect are the start books, and the OKX
snapshots too. A phase sends background updates at ``rate`` frames a second in total,
spread evenly over every subscribed book in a shuffled round robin, for ``duration_s``. Every
``quantum_s`` the sender computes how many frames are due by the clock and writes them,
pre-framed, with one ``transport.write`` per connection (on its own core: the parent pins
this process to the other CPU; it sleeps between quanta of 1 ms or more and spins between
shorter ones). Frames are rendered from the market's prebuilt
templates: only the event time and the two sequence ids are filled in at send time.

Injections (``inject_rate`` a second, round robin over ``hot_pairs``): both books of a hot
pair go quiet (their background slots go to other books, so the rate holds) for ``quiet_s``,
so that frames of the pair already on their way on either connection are handled first;
then the OKX book is dislocated ``shift_ticks`` through the mid (alternately up: a bid above
Binance's asks, the OKX asks below it deleted; and down), stays so for ``hold_s``, one more
frame puts it back exactly as it was, and the pair stays quiet ``quiet_s`` more (so that no
Binance frame of the pair overtakes that OKX frame on the other connection). So every
injection should make exactly one arb, and both of its legs should fill against books that
have not moved, unless the engine is more than ``quiet_s`` behind.

With ``orders`` (the live-gateway mode), the same process also runs the Binance spot and
OKX simulators' order entry (``arbengine.venues.sim``: the Binance WebSocket API and the OKX
private WebSocket, signatures and logins verified as the venues do) for the engine's live
gateways. The simulators do not list the market's synthetic symbols, so they refuse every
order (Binance -1121, OKX 51001) after reading it whole: the engine's legs are real signed
frames written to a socket, and nothing is ever filled or left open. Their own books are
idle (a step an hour) and their order-rate limits are lifted.

Each write is logged as (frames sent on that connection so far, CLOCK_MONOTONIC ns before
the write): CLOCK_MONOTONIC is the same clock in both processes, which is what lets the parent
measure how far behind the feeds are.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import heapq
import itertools
import logging
import os
import random
import time
from array import array
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

import orjson
import picows
import uvloop

from bench.engine_market import (
    ID0,
    Level,
    Market,
    MarketConfig,
    apply_levels,
    binance_rest,
    okx_snapshot,
    okx_update,
    stream_name,
    ws_frame,
)

# The live gateways' account at both order simulators (a benchmark's, not a secret).
ORDER_KEY = "benchKey0123"
ORDER_SECRET = "bench-secret-0123456789"
ORDER_PASSPHRASE = "bench-pass"

ROUND_ROBIN_REPEAT = 64  # each book appears this many times in a connection's shuffled cycle
# What happens to a hot pair, in this order, after it has gone quiet.
DISLOCATE, RESTORE, RELEASE = 0, 1, 2


class OrderUrls(NamedTuple):
    """Where one venue's simulated order entry listens."""

    rest: str
    ws: str


@dataclass(frozen=True)
class PhaseSpec:
    rate: float  # background frames per second, all books together
    duration_s: float
    inject_rate: float = 0.0
    hot_pairs: tuple[int, ...] = ()
    quiet_s: float = 0.005  # a hot pair's books get no background frames this long before
    hold_s: float = 0.005  # ... and after its dislocation (then it is put back)
    quantum_s: float = 0.001


@dataclass
class ConnStats:
    venue: str
    sent_total: int  # every frame ever sent on the connection (control frames included)
    log_n: bytes  # array('q'): frames sent so far after each write in the phase
    log_t: bytes  # array('q'): monotonic ns just before that write


@dataclass
class PhaseStats:
    t0_ns: int
    t_end_ns: int
    offered: int  # background slots due in the phase
    background: int  # background frames sent
    injections: list[tuple[int, int, int]]  # (pair, monotonic ns of the write, +1 up / -1 down)
    restores: int
    skipped_injections: int  # the next hot pair was still held
    max_gap_ns: int  # longest pause between two sender iterations
    conns: list[ConnStats]
    book_bodies: list[int]  # update bodies sent per book, ever
    tracked: dict[int, tuple[dict[int, int], dict[int, int]]]  # hot OKX books, true state


@dataclass
class GenBook:
    index: int
    venue: str
    symbol: str
    mid: int
    frames: list[tuple[bytes, bytes, bytes, bytes, int]]  # (header+pre, mid, sep, post, n)
    offset: int  # Binance: U = last + 1; OKX: prevSeqId = last
    last: int
    sent: int = 0
    held: bool = False
    tracked: tuple[dict[int, int], dict[int, int]] | None = None
    direction: int = 1
    bodies: list[tuple[tuple[Level, ...], tuple[Level, ...]]] = field(default_factory=list)


class Conn:
    def __init__(self, venue: str, transport: picows.WSTransport, seed: int) -> None:
        self.venue = venue
        self.transport = transport
        self.raw = transport.underlying_transport
        self.books: list[int] = []
        self.order: list[int] = []
        self.at = 0
        self.sent = 0
        self.slots = 0
        self.log_n = array("q")
        self.log_t = array("q")
        self.rng = random.Random(seed)

    def set_books(self, books: list[int]) -> None:
        self.books = books
        order = books * ROUND_ROBIN_REPEAT
        self.rng.shuffle(order)
        self.order = order
        self.at = 0

    def write(self, data: bytes, frames: int, now: int) -> None:
        self.log_n.append(self.sent + frames)
        self.log_t.append(now)
        self.raw.write(data)
        self.sent += frames

    def send_text(self, payload: bytes) -> None:
        self.write(ws_frame(payload), 1, time.monotonic_ns())


class _Listener(picows.WSListener):
    def __init__(self, gen: Generator, venue: str, books: list[int]) -> None:
        super().__init__()
        self.gen = gen
        self.venue = venue
        self.books = books
        self.conn: Conn | None = None

    def on_ws_connected(self, transport: picows.WSTransport) -> None:
        self.conn = self.gen.connected(self.venue, transport, self.books)

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        kind = frame.msg_type
        if kind == picows.WSMsgType.PING:
            transport.send_pong(frame.get_payload_as_bytes())
        elif kind == picows.WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()
        elif kind == picows.WSMsgType.TEXT and self.conn is not None and self.venue == "okx":
            self.gen.okx_text(self.conn, frame.get_payload_as_bytes())

    def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
        if self.conn is not None:
            self.gen.disconnected(self.conn)


class Generator:
    def __init__(self, market: Market, pipe: Connection, *, orders: bool = False) -> None:
        self.market = market
        self.pipe = pipe
        self.orders = orders
        self.shift = market.config.shift_ticks
        self.inject_lots = market.config.inject_lots
        self.books: list[GenBook] = []
        for spec in market.books:
            frames = [(t.header + t.pre, t.mid, t.sep, t.post, t.n) for t in spec.templates]
            binance = spec.venue == "binance"
            self.books.append(
                GenBook(
                    spec.index,
                    spec.venue,
                    spec.symbol,
                    spec.mid,
                    frames,
                    1 if binance else 0,
                    ID0 - 1 if binance else ID0,
                    bodies=spec.bodies,
                )
            )
        self.by_symbol = {(b.venue, b.symbol): b.index for b in self.books}
        self.by_stream = {
            stream_name(b.symbol): b.index for b in self.books if b.venue == "binance"
        }
        self.conns: list[Conn] = []
        self.book_conn: dict[int, Conn] = {}
        self.done: asyncio.Future[None] | None = None
        self.busy = False

    # --- serving -----------------------------------------------------------------------------

    def factory(self, request: picows.WSUpgradeRequest) -> Any:
        url = urlsplit(request.path.decode())
        query = parse_qs(url.query)
        if url.path == "/stream":
            names = query.get("streams", [""])[0].split("/")
            return _Listener(self, "binance", [self.by_stream[n] for n in names if n])
        if url.path == "/ws/v5/public":
            return _Listener(self, "okx", [])
        if url.path == "/api/v3/depth":
            index = self.by_symbol.get(("binance", query.get("symbol", [""])[0]))
            if index is None:
                return None
            bids, asks = self.truth_now(index)
            body = binance_rest(bids, asks, self.books[index].last)
            response = picows.WSUpgradeResponse.create_ok_response(
                body, {"Content-Type": "application/json"}
            )
            return picows.WSUpgradeResponseWithListener(response, None)
        return None

    def truth_now(self, index: int) -> tuple[dict[int, int], dict[int, int]]:
        book = self.books[index]
        if book.tracked is not None:
            return dict(book.tracked[0]), dict(book.tracked[1])
        return self.market.truth(index, book.sent)

    def connected(self, venue: str, transport: picows.WSTransport, books: list[int]) -> Conn:
        conn = Conn(venue, transport, len(self.conns))
        conn.set_books(books)
        for b in books:
            self.book_conn[b] = conn
        self.conns.append(conn)
        return conn

    def disconnected(self, conn: Conn) -> None:
        if conn in self.conns:
            self.conns.remove(conn)

    def okx_text(self, conn: Conn, text: bytes) -> None:
        if text == b"ping":
            conn.send_text(b"pong")
            return
        request = orjson.loads(text)
        op = request.get("op")
        books = list(conn.books)
        for arg in request.get("args", []):
            index = self.by_symbol.get(("okx", arg.get("instId", "")))
            if index is None or op not in ("subscribe", "unsubscribe"):
                conn.send_text(orjson.dumps({"event": "error", "code": "60018", "msg": "bad"}))
                continue
            conn.send_text(orjson.dumps({"event": op, "arg": arg, "connId": "bench"}))
            if op == "subscribe":
                bids, asks = self.truth_now(index)
                ts = time.time_ns() // 1_000_000
                conn.send_text(
                    okx_snapshot(self.books[index].symbol, bids, asks, ts, self.books[index].last)
                )
                if index not in books:
                    books.append(index)
                self.book_conn[index] = conn
            elif index in books:
                books.remove(index)
        conn.set_books(books)

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        self.done = loop.create_future()
        server = await picows.ws_create_server(
            self.factory, "127.0.0.1", 0, enable_auto_pong=False, max_frame_size=1 << 20
        )
        port = server.sockets[0].getsockname()[1]
        loop.add_reader(self.pipe.fileno(), self.on_command)
        os.set_blocking(self.pipe.fileno(), True)  # add_reader made it non-blocking: big
        # replies must be written whole, and commands read whole
        async with contextlib.AsyncExitStack() as stack:
            urls = await self._order_sims(stack) if self.orders else {}
            self.pipe.send(("ready", port, urls))
            try:
                await self.done
            finally:
                self._close(server)

    async def _order_sims(self, stack: contextlib.AsyncExitStack) -> dict[str, OrderUrls]:
        from arbengine.venues.sim import BinanceSim, OkxSim

        idle = 3600.0  # the simulators' own books: they are not what the engine trades
        binance = await stack.enter_async_context(BinanceSim(market="spot", interval_s=idle))
        okx = await stack.enter_async_context(OkxSim(interval_s=idle))
        binance.orders.order_limit = binance.orders.weight_limit = 1 << 40
        binance.exchange.add_account(ORDER_KEY, ORDER_SECRET, None, {"USDT": "1000000"})
        okx.exchange.add_account(ORDER_KEY, ORDER_SECRET, ORDER_PASSPHRASE, {"USDT": "1000000"})
        return {
            "binance": OrderUrls(binance.rest_url, binance.ws_api_url),
            "okx": OrderUrls(okx.rest_url, okx.private_ws_url),
        }

    def _close(self, server: asyncio.AbstractServer) -> None:
        asyncio.get_running_loop().remove_reader(self.pipe.fileno())
        server.close()
        for conn in list(self.conns):
            conn.transport.disconnect()

    def on_command(self) -> None:
        try:
            cmd = self.pipe.recv()
        except EOFError:
            cmd = ("stop",)
        assert self.done is not None
        if cmd[0] == "stop":
            if not self.done.done():
                self.done.set_result(None)
        elif cmd[0] == "phase":
            task = asyncio.get_running_loop().create_task(self.phase(cmd[1]))
            task.add_done_callback(self._phase_done)

    def _phase_done(self, task: asyncio.Task[PhaseStats]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        self.pipe.send(("error", repr(exc)) if exc is not None else ("phase_done", task.result()))

    # --- a phase -----------------------------------------------------------------------------

    def _track(self, book: GenBook) -> None:
        if book.tracked is None:
            book.tracked = self.market.truth(book.index, book.sent)

    async def phase(self, spec: PhaseSpec) -> PhaseStats:
        conns = [c for c in self.conns if c.order]
        total_books = sum(len(c.books) for c in conns)
        hot = [p for p in spec.hot_pairs if 2 * p + 1 in self.book_conn]
        for p in hot:
            self._track(self.books[2 * p + 1])
        for c in conns:
            c.slots = 0
        marks = [len(c.log_n) for c in conns]
        books = self.books
        clock = time.monotonic_ns
        quantum = int(spec.quantum_s * 1e9)
        quiet = int(spec.quiet_s * 1e9)
        hold = int(spec.hold_s * 1e9)
        per_ns = [spec.rate * len(c.books) / total_books / 1e9 for c in conns]
        period = int(1e9 / spec.inject_rate) if spec.inject_rate > 0 and hot else 0
        injections: list[tuple[int, int, int]] = []
        # (due ns, tie-break, kind, pair, levels the dislocation removed)
        events: list[tuple[int, int, int, int, list[Level]]] = []
        order = itertools.count()  # heap tie-break
        counts = {"restores": 0}
        skipped = background = 0
        next_hot = 0
        t0 = prev = clock()
        end = t0 + int(spec.duration_s * 1e9)
        next_inject = t0 + period // 2 if period else end + 1
        max_gap = 0
        sleep = asyncio.sleep

        async def wait_until(t: int) -> None:
            # Sleep when the quantum allows it (uvloop's timers count whole ms), else spin:
            # a spinning generator keeps its CPU 100% busy, which pushes anything else on
            # the machine onto the engine's CPU.
            if quantum >= 1_000_000:
                left = t - clock()
                if left > 0:
                    await sleep(left / 1e9)  # may overshoot by up to 1 ms
                return
            while clock() < t:
                await sleep(0)

        def run_event(kind: int, pair: int, removed: list[Level], now: int) -> None:
            if kind == DISLOCATE:
                injections.append((pair, now, books[2 * pair + 1].direction))
                removed = self._inject(pair, now)
                heapq.heappush(events, (now + hold, next(order), RESTORE, pair, removed))
            elif kind == RESTORE:
                self._restore(pair, removed, now)
                counts["restores"] += 1
                # Quiet after too: the pair's next Binance frame must not overtake this
                # OKX frame (they travel on different connections).
                heapq.heappush(events, (now + quiet, next(order), RELEASE, pair, []))
            else:
                books[2 * pair].held = books[2 * pair + 1].held = False

        while True:
            now = clock()
            max_gap = max(max_gap, now - prev)
            prev = now
            if now >= end:
                break
            ts = b"%d" % (time.time_ns() // 1_000_000)
            elapsed = now - t0
            for c, rate in zip(conns, per_ns, strict=True):
                due = int(elapsed * rate) - c.slots
                if due > 0:
                    c.slots += due
                    background += self._background(c, due, ts, now)
            while events and events[0][0] <= now:
                _, _, kind, pair, removed = heapq.heappop(events)
                run_event(kind, pair, removed, now)
            if now >= next_inject:
                next_inject += period
                for k in range(len(hot)):
                    pair = hot[(next_hot + k) % len(hot)]
                    if not books[2 * pair].held:
                        next_hot = (next_hot + k + 1) % len(hot)
                        # Quiet first: frames of this pair already on their way (on either
                        # connection) must be handled before the dislocation arrives.
                        books[2 * pair].held = books[2 * pair + 1].held = True
                        heapq.heappush(events, (now + quiet, next(order), DISLOCATE, pair, []))
                        break
                else:
                    skipped += 1
            await wait_until(now + quantum)
        while events:  # finish what was started: every dislocation is put back
            due_ns, _, kind, pair, removed = heapq.heappop(events)
            await wait_until(due_ns)
            run_event(kind, pair, removed, clock())
        t_end = clock()
        return PhaseStats(
            t0,
            t_end,
            sum(c.slots for c in conns),
            background,
            injections,
            counts["restores"],
            skipped,
            max_gap,
            [
                ConnStats(c.venue, c.sent, c.log_n[m:].tobytes(), c.log_t[m:].tobytes())
                for c, m in zip(conns, marks, strict=True)
            ],
            [b.sent for b in books],
            {b.index: b.tracked for b in books if b.tracked is not None},
        )

    def _background(self, conn: Conn, due: int, ts: bytes, now: int) -> int:
        books = self.books
        order = conn.order
        size = len(order)
        at = conn.at
        parts: list[bytes] = []
        extend = parts.extend
        sent = 0
        for _ in range(due):
            book = books[order[at]]
            at += 1
            if at == size:
                at = 0
            while book.held:  # a quiet book's slot goes to the next one: the rate holds
                book = books[order[at]]
                at += 1
                if at == size:
                    at = 0
            frames = book.frames
            k = book.sent % len(frames)
            pre, mid, sep, post, n = frames[k]
            last = book.last
            book.last = last + n
            book.sent += 1
            extend((pre, ts, mid, b"%d" % (last + book.offset), sep, b"%d" % (last + n), post))
            if book.tracked is not None:
                body_bids, body_asks = book.bodies[k]
                apply_levels(book.tracked[0], body_bids)
                apply_levels(book.tracked[1], body_asks)
            sent += 1
        conn.at = at
        if sent:
            conn.write(b"".join(parts), sent, now)
        return sent

    def _okx_frame(self, book: GenBook, bids: list[Level], asks: list[Level], now: int) -> None:
        n = len(bids) + len(asks)
        prev = book.last
        book.last = prev + n
        assert book.tracked is not None
        apply_levels(book.tracked[0], bids)
        apply_levels(book.tracked[1], asks)
        payload = okx_update(book.symbol, bids, asks, time.time_ns() // 1_000_000, prev, prev + n)
        self.book_conn[book.index].write(ws_frame(payload), 1, now)

    def _inject(self, pair: int, now: int) -> list[Level]:
        """Dislocate the pair's OKX book; returns the levels it removed."""
        okx = self.books[2 * pair + 1]
        assert okx.tracked is not None
        bids, asks = okx.tracked
        if okx.direction > 0:  # OKX rich: a bid above Binance's asks
            price = okx.mid + self.shift
            removed = sorted((p, q) for p, q in asks.items() if p <= price)
            self._okx_frame(okx, [(price, self.inject_lots)], [(p, 0) for p, _ in removed], now)
        else:  # OKX cheap: an ask below Binance's bids
            price = okx.mid - self.shift
            removed = sorted(((p, q) for p, q in bids.items() if p >= price), reverse=True)
            self._okx_frame(okx, [(p, 0) for p, _ in removed], [(price, self.inject_lots)], now)
        return removed

    def _restore(self, pair: int, removed: list[Level], now: int) -> None:
        okx = self.books[2 * pair + 1]
        if okx.direction > 0:
            self._okx_frame(okx, [(okx.mid + self.shift, 0)], removed, now)
        else:
            self._okx_frame(okx, removed, [(okx.mid - self.shift, 0)], now)
        okx.direction = -okx.direction


def child_main(
    pipe: Connection, config: MarketConfig, cpu: int | None, orders: bool = False
) -> None:
    """Entry of the generator process (multiprocessing, spawn)."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    # picows warns on every pause/resume of a full write buffer (the feeds falling behind,
    # which the parent measures): not for the console.
    logging.getLogger("picows").setLevel(logging.ERROR)
    market = Market(config)
    gc.collect()
    gc.disable()  # the generator's own pauses would show up as engine lag
    uvloop.run(Generator(market, pipe, orders=orders).serve())
