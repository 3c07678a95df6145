"""What both simulated venues share: the aiohttp app on 127.0.0.1, the model clock, the
WebSocket connections with their writer queues, server pings and the fault pipeline.

Each connection has one outbound queue drained by one writer task: the model tick only
enqueues (it never awaits a slow client), frames keep their order (pings included, so they
cannot interleave with data frames), and a client that stops reading is cut off once its
queue passes ``max_queue`` instead of growing memory without bound, as real venues do.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, Self

from aiohttp import WSMsgType, web

from arbengine.venues.sim.exchange import SimExchange
from arbengine.venues.sim.faults import Fault, FaultInjector
from arbengine.venues.sim.model import (
    BookModel,
    BookSnapshot,
    Changes,
    FairMarket,
    ModelConfig,
    ReplaySource,
    SimInstrument,
)

__all__ = ["Conn", "SimStats", "SimVenue"]

Source = BookModel | ReplaySource
Frame = tuple[WSMsgType, bytes]


@dataclass
class SimStats:
    """What the simulator did, for tests to assert on."""

    ticks: int = 0
    connections: int = 0  # WebSocket connections accepted, ever
    disconnects: int = 0  # connections the server cut (faults, pong timeout, slow reader)
    data_messages: int = 0  # data messages handed to the fault pipeline
    frames: int = 0  # frames written (data, replies, pings, pongs)
    suppressed: int = 0  # frames not sent because the connection was silenced
    pings: int = 0
    pongs: int = 0  # pongs received from clients
    pong_timeouts: int = 0
    rest_requests: int = 0
    rate_limit_cuts: int = 0  # connections cut for sending too many frames


class Conn:
    """One client WebSocket connection."""

    def __init__(self, conn_id: str, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.id = conn_id
        self.ws = ws
        self.request = request
        self.queue: asyncio.Queue[Frame | None] = asyncio.Queue()
        self.held: list[bytes] = []  # reordered messages waiting for the next one
        self.silent_until = 0.0  # time.monotonic() until which nothing is sent
        self.last_pong = time.monotonic()
        self.closed = False
        self.state: dict[str, Any] = {}  # the venue's per-connection data (subscriptions)


def _seconds_text(seconds: float) -> str:
    """Retry-After text: whole seconds as Binance sends them, else the shortest decimal."""
    return str(int(seconds)) if seconds == int(seconds) else f"{seconds:g}"


def _malformed(payload: bytes) -> bytes:
    # Same length, no longer JSON: the first key/value colon becomes '='.
    bad = payload.replace(b'":', b'"=', 1)
    return bad if bad != payload else b"<" + payload


class SimVenue:
    """Base of ``BinanceSim`` and ``OkxSim``: lifecycle, clock, connections and faults.

    Subclasses add routes (``_routes``), turn each tick's changes into messages
    (``_publish``), handle client text (``_on_text``) and say what the true book's update id
    is (``_update_id``).
    """

    venue: str = "sim"  # names seeds and tasks; subclasses refine it
    exchange: SimExchange  # the venue's accounts and matching engine (order entry)
    supported_faults: ClassVar[frozenset[Fault]] = frozenset(Fault)

    def __init__(
        self,
        instruments: Sequence[SimInstrument],
        *,
        seed: int,
        host: str,
        port: int,
        interval_s: float,
        fair: FairMarket | None,
        model: ModelConfig | None,
        replay: Mapping[str, Iterable[Iterable[tuple[str, str, str]]]] | None,
        ping_interval_s: float | None,
        pong_timeout_s: float | None,
        max_queue: int = 10_000,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        if not instruments:
            raise ValueError("a simulated venue needs at least one symbol")
        self.seed = seed
        self.host = host
        self.port = port
        self.interval_s = interval_s
        self.ping_interval_s = ping_interval_s
        self.pong_timeout_s = pong_timeout_s
        self.max_queue = max_queue
        self.fair = fair or FairMarket(seed)
        self.faults = FaultInjector(f"{seed}:{self.venue}:faults", supported=self.supported_faults)
        self.stats = SimStats()
        self.rng = random.Random(f"{seed}:{self.venue}")
        self.instruments = {i.symbol: i for i in instruments}
        if len(self.instruments) != len(instruments):
            raise ValueError("duplicate symbol")
        replay = dict(replay or {})
        unknown = set(replay) - set(self.instruments)
        if unknown:
            raise ValueError(f"replay for unknown symbols {sorted(unknown)}")
        self.sources: dict[str, Source] = {}
        for symbol, inst in self.instruments.items():
            if symbol in replay:
                self.sources[symbol] = ReplaySource(inst, replay[symbol])
            else:
                self.sources[symbol] = BookModel(
                    inst,
                    self.fair.fair(inst.asset, inst.start_price),
                    seed=f"{seed}:{self.venue}:{symbol}",
                    config=model,
                )
        self.conns: set[Conn] = set()
        self.paused = False
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._error: BaseException | None = None

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("already started")
        if self.stats.ticks == 0:
            self.tick()  # books exist before the first client arrives
        app = web.Application()
        self._routes(app)
        app.on_shutdown.append(self._close_all)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except BaseException:
            await runner.cleanup()  # e.g. the port is taken: leave nothing behind
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        self._ticker = asyncio.create_task(self._run(), name=f"{self.venue}-sim-ticker")

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError(f"{self.venue} simulator failed: {error!r}") from error

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_http(self) -> str:
        if self._runner is None:
            raise RuntimeError("the simulator is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def rest_url(self) -> str:
        return self.base_http

    # -- clock ------------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        try:
            while True:
                due += self.interval_s
                await asyncio.sleep(max(0.0, due - loop.time()))
                if loop.time() - due > 1.0:
                    due = loop.time()  # the loop was stalled: skip, do not burst to catch up
                if not self.paused:
                    self.tick()
                self._housekeeping(time.monotonic())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # surfaced by stop(): a model bug must fail the test
            self._error = exc

    def tick(self) -> None:
        """Advance every symbol one model step and publish the changes (also when paused:
        tests may drive the venue by hand)."""
        now_ns = time.monotonic_ns()
        self.stats.ticks += 1
        for symbol, source in self.sources.items():
            self._publish(symbol, source.step(now_ns), now_ns)

    def pause(self) -> None:
        """Freeze the books (no more changes); pings and heartbeats go on."""
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    # -- the truth --------------------------------------------------------------------------

    def true_book(self, symbol: str, limit: int | None = None) -> BookSnapshot:
        """The venue's true book now, as text, with the id of its last change."""
        return self.sources[symbol].book.snapshot(self._update_id(symbol), limit)

    def dislocate(
        self, bps: int | str | Decimal, seconds: float, symbol: str | None = None
    ) -> None:
        """Shift this venue's books (or one symbol's) by ``bps`` of the fair price for
        ``seconds``; the books walk there over the next tick, as a real venue's would."""
        now = time.monotonic_ns()
        for name, source in self.sources.items():
            if symbol is not None and name != symbol:
                continue
            if not isinstance(source, BookModel):
                raise ValueError(f"{name} is replayed: it cannot be dislocated")
            source.dislocate(bps, seconds, now)

    def disconnect_all(self) -> None:
        """Cut every client now (TCP close, no close frame)."""
        for conn in list(self.conns):
            self._abort(conn)

    # -- connections ------------------------------------------------------------------------

    def _new_conn_id(self) -> str:
        return f"{self.rng.getrandbits(32):08x}"

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=False, compress=False, timeout=1.0)
        await ws.prepare(request)
        conn = Conn(self._new_conn_id(), ws, request)
        self.conns.add(conn)
        self.stats.connections += 1
        writer = asyncio.create_task(self._writer(conn))
        pinger = asyncio.create_task(self._pinger(conn)) if self.ping_interval_s else None
        try:
            self._on_open(conn, request)
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.PING, WSMsgType.PONG) and not (
                    self._admit(conn)
                ):
                    self.stats.rate_limit_cuts += 1
                    self._abort(conn)
                    break
                if msg.type == WSMsgType.TEXT:
                    self._on_text(conn, msg.data)
                elif msg.type == WSMsgType.PING:
                    self._send_control(conn, msg.data, WSMsgType.PONG)
                elif msg.type == WSMsgType.PONG:
                    conn.last_pong = time.monotonic()
                    self.stats.pongs += 1
        finally:
            conn.closed = True
            self.conns.discard(conn)
            writer.cancel()
            if pinger is not None:
                pinger.cancel()
            await asyncio.gather(writer, *([pinger] if pinger else []), return_exceptions=True)
        return ws

    async def _writer(self, conn: Conn) -> None:
        try:
            while (item := await conn.queue.get()) is not None:
                opcode, payload = item
                if opcode == WSMsgType.PING:
                    await conn.ws.ping(payload)
                elif opcode == WSMsgType.PONG:
                    await conn.ws.pong(payload)
                else:
                    await conn.ws.send_frame(payload, opcode)
                self.stats.frames += 1
        except (ConnectionError, RuntimeError):
            self._abort(conn, by_server=False)  # the client went away mid-write

    async def _pinger(self, conn: Conn) -> None:
        assert self.ping_interval_s
        while not conn.closed:
            await asyncio.sleep(self.ping_interval_s)
            now = time.monotonic()
            if conn.silent_until > now:
                continue  # a silenced connection sends nothing, pings included
            if self.pong_timeout_s is not None and now - conn.last_pong > self.pong_timeout_s:
                self.stats.pong_timeouts += 1
                self._abort(conn)
                return
            # A ping is an opportunity for connection faults too, so that an idle (paused)
            # connection can be cut or silenced.
            if self.faults.take(Fault.DISCONNECT, None, "at ping"):
                self._abort(conn)
                return
            rule = self.faults.take(Fault.SILENCE, None, "at ping")
            if rule is not None:
                conn.silent_until = now + rule.seconds
                continue
            self._enqueue(conn, (WSMsgType.PING, str(time.time_ns() // 1_000_000).encode()))
            self.stats.pings += 1

    async def _close_all(self, _app: web.Application) -> None:
        """Shutdown: close every connection with a close frame (going away), then cut the
        ones that do not answer within a second."""

        async def close(conn: Conn) -> None:
            try:
                await asyncio.wait_for(conn.ws.close(code=1001, message=b"simulator shutdown"), 1.0)
            except (TimeoutError, ConnectionError, RuntimeError):
                self._abort(conn)

        await asyncio.gather(*(close(c) for c in list(self.conns)))

    def _abort(self, conn: Conn, *, by_server: bool = True) -> None:
        """Drop the TCP connection without a close frame: what a network cut looks like."""
        if conn.closed:
            return
        conn.closed = True
        self.conns.discard(conn)
        self.stats.disconnects += by_server
        conn.queue.put_nowait(None)
        transport = conn.request.transport
        if transport is not None:
            transport.abort()

    def _enqueue(self, conn: Conn, frame: Frame) -> None:
        if conn.closed:
            return
        conn.queue.put_nowait(frame)
        if conn.queue.qsize() > self.max_queue:
            self._abort(conn)  # a client that does not read is cut, as venues do

    def _send_control(self, conn: Conn, payload: bytes, opcode: WSMsgType = WSMsgType.TEXT) -> None:
        """A reply (subscribe result, pong): no message faults, but silence holds."""
        if conn.silent_until > time.monotonic():
            self.stats.suppressed += 1
            return
        self._enqueue(conn, (opcode, payload))

    def _send_data(self, conn: Conn, payload: bytes, symbol: str, detail: str) -> None:
        """A data message through the fault pipeline (see faults.py for the order)."""
        if conn.closed:
            return
        self.stats.data_messages += 1
        now = time.monotonic()
        if conn.silent_until > now:
            self.stats.suppressed += 1
            return
        take = self.faults.take
        if take(Fault.DISCONNECT, symbol, detail):
            self._abort(conn)
            return
        rule = take(Fault.SILENCE, symbol, detail)
        if rule is not None:
            conn.silent_until = now + rule.seconds
            self.stats.suppressed += 1
            return
        if take(Fault.DROP, symbol, detail):
            return
        copies = 1
        if take(Fault.MALFORMED, symbol, detail):
            payload = _malformed(payload)
        elif take(Fault.TRUNCATED, symbol, detail):
            payload = payload[: max(1, len(payload) // 2)]
        elif take(Fault.DUPLICATE, symbol, detail):
            copies = 2
        elif take(Fault.REORDER, symbol, detail):
            conn.held.append(payload)  # goes out right after the next message
            return
        for _ in range(copies):
            self._enqueue(conn, (WSMsgType.TEXT, payload))
        if conn.held:
            for held in conn.held:
                self._enqueue(conn, (WSMsgType.TEXT, held))
            conn.held.clear()

    # -- REST -------------------------------------------------------------------------------

    async def _rest_faults(self, symbol: str | None) -> web.Response | None:
        """Apply armed REST faults: a delay, then possibly an error reply instead."""
        self.stats.rest_requests += 1
        take = self.faults.take
        rule = take(Fault.REST_DELAY, symbol, "delay")
        if rule is not None:
            await asyncio.sleep(rule.seconds)
        for kind, status in ((Fault.REST_429, 429), (Fault.REST_418, 418)):
            rule = take(kind, symbol, str(status))
            if rule is not None:
                return self._rest_error(status, {"Retry-After": _seconds_text(rule.seconds)})
        rule = take(Fault.REST_5XX, symbol, "5xx")
        if rule is not None:
            return self._rest_error(rule.status, {})
        return None

    # -- venue hooks ------------------------------------------------------------------------

    def _routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def _publish(self, symbol: str, changes: Changes, now_ns: int) -> None:
        raise NotImplementedError

    def _update_id(self, symbol: str) -> int:
        raise NotImplementedError

    def _on_open(self, conn: Conn, request: web.Request) -> None:
        """A connection is up (before any client frame)."""

    def _admit(self, conn: Conn) -> bool:
        """Whether the venue accepts one more frame from this client (message limits)."""
        return True

    def _on_text(self, conn: Conn, text: str) -> None:
        """A text frame from the client."""

    def _housekeeping(self, now: float) -> None:
        """Every interval, paused or not (OKX's no-change heartbeat)."""

    def _rest_error(self, status: int, headers: Mapping[str, str]) -> web.Response:
        return web.Response(status=status, headers=dict(headers))
