"""WebSocket feed connections: connect, subscribe, watch for silence, reconnect with backoff.

One ``WsFeed`` owns one venue connection. The venue-specific part is a ``FeedHandler``: what
to send after connecting, and what to do with each frame. The connection stamps every frame
with its local receive time (monotonic and wall clock, ns) before anything else, so latency
is measured from the wire. A connection silent past its heartbeat window is closed and
reopened; every reconnect calls ``on_connected`` again so handlers resubscribe and resync
their books.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import picows


class FeedHandler(Protocol):
    """The venue side of a connection."""

    def on_connected(self) -> list[bytes]:
        """The connection is up: return the frames to send (subscriptions, login)."""

    def on_frame(self, payload: bytes, recv_mono_ns: int, recv_wall_ns: int) -> None:
        """One text or binary frame, stamped on arrival."""

    def on_disconnected(self) -> None:
        """The connection is gone: books from it can no longer be trusted."""


@dataclass
class Backoff:
    """Capped exponential backoff with full jitter (delay uniform in [0, min(cap, base*2^n)]).

    Full jitter spreads reconnects of many clients after a venue-wide outage; the cap keeps
    a long outage from pushing the delay past what an operator would accept.
    """

    base_s: float = 0.5
    cap_s: float = 30.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.base_s <= self.cap_s:
            raise ValueError(f"backoff needs 0 < base ({self.base_s}) <= cap ({self.cap_s})")

    def next_delay(self) -> float:
        ceiling = min(self.cap_s, self.base_s * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return self.rng.uniform(0.0, ceiling)

    def reset(self) -> None:
        self.attempt = 0


@dataclass
class FeedCounters:
    """What the metrics layer reads; bumped here, formatted there."""

    connects: int = 0
    reconnects: int = 0
    failed_connects: int = 0
    silent_closes: int = 0
    frames: int = 0
    bytes: int = 0
    handler_errors: int = 0
    pings: int = 0  # application-level pings sent
    sent: int = 0  # frames sent through the rate limit (when there is one)
    send_waits: int = 0  # frames that had to wait for the rate limit


class _Listener(picows.WSListener):
    def __init__(self, feed: WsFeed) -> None:
        super().__init__()
        self._feed = feed

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        mono = time.monotonic_ns()
        wall = time.time_ns()
        msg_type = frame.msg_type
        if msg_type == picows.WSMsgType.TEXT or msg_type == picows.WSMsgType.BINARY:
            self._feed._on_frame(frame.get_payload_as_bytes(), mono, wall)
        elif msg_type == picows.WSMsgType.PING:
            # Answered here rather than by picows' auto-pong, which would hide it from us: a
            # venue that only pings (Binance every 20 s on a quiet stream) is still alive.
            self._feed._out(picows.WSMsgType.PONG, frame.get_payload_as_bytes())
            self._feed.last_frame_mono_ns = mono
        elif msg_type == picows.WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()
        else:  # PONG to our own ping
            self._feed.last_frame_mono_ns = mono

    def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
        self._feed._disconnected.set()


class WsFeed:
    """Keeps one WebSocket connection to a venue up, for as long as ``run`` runs."""

    def __init__(
        self,
        url: str,
        handler: FeedHandler,
        *,
        name: str = "",
        silence_timeout_s: float = 30.0,
        connect_timeout_s: float = 10.0,
        backoff: Backoff | None = None,
        ping_interval_s: float | None = None,
        ping_text: bytes | None = None,
        max_sends_per_s: float | None = None,
    ) -> None:
        if silence_timeout_s <= 0 or connect_timeout_s <= 0:
            raise ValueError("timeouts must be positive")
        if max_sends_per_s is not None and max_sends_per_s <= 0:
            raise ValueError(f"max_sends_per_s must be positive, got {max_sends_per_s}")
        self.url = url
        self.name = name or url
        self.handler = handler
        self.silence_timeout_s = silence_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.ping_interval_s = ping_interval_s
        # Venues that want an application-level ping (OKX "ping", Bybit {"op":"ping"},
        # Kraken {"method":"ping"}) get this text frame instead of a protocol PING.
        self.ping_text = ping_text
        # Binance cuts a connection that sends more than 5 frames a second, pongs included:
        # every outgoing frame goes through one bucket, and what exceeds it waits in order.
        self.max_sends_per_s = max_sends_per_s
        self._tokens = 1.0
        self._tokens_stamp = 0.0
        self._outbox: deque[tuple[picows.WSMsgType, bytes]] = deque()
        self._drain: asyncio.TimerHandle | None = None
        self.backoff = backoff or Backoff()
        self.counters = FeedCounters()
        self.connected = False
        self.last_frame_mono_ns = 0
        self.last_error = ""
        self._transport: picows.WSTransport | None = None
        self._disconnected = asyncio.Event()
        self._stopping = False

    def _on_frame(self, payload: bytes, mono: int, wall: int) -> None:
        self.last_frame_mono_ns = mono
        self.counters.frames += 1
        self.counters.bytes += len(payload)
        try:
            self.handler.on_frame(payload, mono, wall)
        except Exception as exc:  # a handler bug must not kill the connection
            self.counters.handler_errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"

    @property
    def direct_transport(self) -> picows.WSTransport | None:
        """The connected transport, for a caller that frames and writes its own text
        frames now (``_wire.OrderWire``); None while disconnected or when a send limiter
        is set: then frames go through ``send``."""
        if self.max_sends_per_s is not None or not self.connected:
            return None
        return self._transport

    def send(self, frame: bytes) -> None:
        """Send a text frame (e.g. a resubscribe): now, or as soon as the send rate allows.
        Dropped when disconnected: every reconnect subscribes afresh."""
        self._out(picows.WSMsgType.TEXT, frame)

    def _out(self, opcode: picows.WSMsgType, payload: bytes) -> None:
        transport = self._transport
        if transport is None or not self.connected:
            return
        rate = self.max_sends_per_s
        if rate is None:
            transport.send(opcode, payload)
            return
        if not self._outbox and self._take_token(rate):
            transport.send(opcode, payload)
            self.counters.sent += 1
            return
        if opcode == picows.WSMsgType.PONG:
            # RFC 6455 5.5.3: answering only the latest ping is enough, so a venue pinging
            # faster than we may send cannot grow the backlog.
            for i, (queued, _) in enumerate(self._outbox):
                if queued == picows.WSMsgType.PONG:
                    self._outbox[i] = (opcode, payload)
                    return
        self._outbox.append((opcode, payload))
        self.counters.send_waits += 1
        self._schedule_drain(rate)

    def _take_token(self, rate: float) -> bool:
        now = time.monotonic()
        # Capacity 1: a burst would be spread over a second by the venue's own counting,
        # so sending at most ``rate`` in any second means never bursting at all.
        self._tokens = min(1.0, self._tokens + (now - self._tokens_stamp) * rate)
        self._tokens_stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def _schedule_drain(self, rate: float) -> None:
        if self._drain is None:
            delay = max(0.0, (1.0 - self._tokens) / rate)
            self._drain = asyncio.get_running_loop().call_later(delay, self._drain_outbox)

    def _drain_outbox(self) -> None:
        self._drain = None
        rate = self.max_sends_per_s
        transport = self._transport
        if rate is None or transport is None or not self.connected:
            self._outbox.clear()
            return
        while self._outbox and self._take_token(rate):
            opcode, payload = self._outbox.popleft()
            transport.send(opcode, payload)
            self.counters.sent += 1
        if self._outbox:
            self._schedule_drain(rate)

    async def run(self) -> None:
        """Connect, serve, and reconnect until ``stop``."""
        first = True
        while not self._stopping:
            if not first:
                await asyncio.sleep(self.backoff.next_delay())
                if self._stopping:
                    break
            first = False
            if await self._serve_once():
                # A session that carried data proves the venue is reachable again.
                self.backoff.reset()

    async def _serve_once(self) -> bool:
        self._disconnected = asyncio.Event()
        try:
            transport, _ = await asyncio.wait_for(
                picows.ws_connect(lambda: _Listener(self), self.url, enable_auto_pong=False),
                self.connect_timeout_s,
            )
        except (TimeoutError, OSError, picows.WSError) as exc:
            self.counters.failed_connects += 1
            self.last_error = f"connect to {self.url} failed: {type(exc).__name__}: {exc}"
            return False
        self._transport = transport
        self.connected = True
        if self.counters.connects:
            self.counters.reconnects += 1
        self.counters.connects += 1
        frames_before = self.counters.frames
        self.last_frame_mono_ns = time.monotonic_ns()
        try:
            for frame in self.handler.on_connected():
                self._out(picows.WSMsgType.TEXT, frame)
            await self._watch(transport)
        finally:
            self.connected = False
            self._transport = None
            self._outbox.clear()
            if self._drain is not None:
                self._drain.cancel()
                self._drain = None
            transport.disconnect()
            with contextlib.suppress(Exception):
                self.handler.on_disconnected()
        return self.counters.frames > frames_before

    async def _watch(self, transport: picows.WSTransport) -> None:
        """Return when the connection drops, goes silent, or ``stop`` is called."""
        tick = min(1.0, self.silence_timeout_s / 4)
        next_ping = time.monotonic() + (self.ping_interval_s or 0)
        while not self._stopping:
            try:
                await asyncio.wait_for(self._disconnected.wait(), tick)
                return
            except TimeoutError:
                pass
            now_ns = time.monotonic_ns()
            if now_ns - self.last_frame_mono_ns > self.silence_timeout_s * 1e9:
                self.counters.silent_closes += 1
                self.last_error = f"{self.name}: silent for {self.silence_timeout_s:g} s"
                return
            if self.ping_interval_s and time.monotonic() >= next_ping:
                if self.ping_text is None:
                    self._out(picows.WSMsgType.PING, b"")
                else:
                    self._out(picows.WSMsgType.TEXT, self.ping_text)
                    self.counters.pings += 1
                next_ping = time.monotonic() + self.ping_interval_s

    async def stop(self) -> None:
        """Close the connection and end ``run``."""
        self._stopping = True
        if self._transport is not None:
            self._transport.send_close()
            self._transport.disconnect()
        self._disconnected.set()
