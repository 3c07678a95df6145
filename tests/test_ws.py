"""WsFeed against a real picows WebSocket server on 127.0.0.1, under asyncio and uvloop."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import picows
import pytest

from arbengine.venues.ws import Backoff, WsFeed
from tests.waiting import fast_backoff, until


class Venue:
    """A tiny venue: remembers what clients sent, and lets the test push or cut."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.arrivals: list[float] = []  # loop time of each text frame
        self.clients: list[picows.WSTransport] = []
        self.connections = 0
        self.silent = False

    def listener(self, _request: picows.WSUpgradeRequest) -> picows.WSListener:
        venue = self

        class Server(picows.WSListener):
            def on_ws_connected(self, transport: picows.WSTransport) -> None:
                venue.connections += 1
                venue.clients.append(transport)

            def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
                if frame.msg_type == picows.WSMsgType.TEXT:
                    venue.received.append(frame.get_payload_as_bytes())
                    venue.arrivals.append(asyncio.get_running_loop().time())
                elif frame.msg_type == picows.WSMsgType.CLOSE:
                    transport.disconnect()

            def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
                if transport in venue.clients:
                    venue.clients.remove(transport)

        return Server()

    def push(self, payload: bytes) -> None:
        for client in self.clients:
            client.send(picows.WSMsgType.TEXT, payload)

    def cut(self) -> None:
        for client in list(self.clients):
            client.disconnect()


class Handler:
    def __init__(self) -> None:
        self.frames: list[tuple[bytes, int, int]] = []
        self.connected = 0
        self.disconnected = 0

    def on_connected(self) -> list[bytes]:
        self.connected += 1
        return [b'{"op":"subscribe","n":%d}' % self.connected]

    def on_frame(self, payload: bytes, recv_mono_ns: int, recv_wall_ns: int) -> None:
        if payload == b"boom":
            raise RuntimeError("handler bug")
        self.frames.append((payload, recv_mono_ns, recv_wall_ns))

    def on_disconnected(self) -> None:
        self.disconnected += 1


@pytest.fixture
async def venue() -> AsyncIterator[tuple[Venue, str]]:
    v = Venue()
    server = await picows.ws_create_server(v.listener, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield v, f"ws://127.0.0.1:{port}/ws"
    server.close()
    await server.wait_closed()


async def test_subscribes_receives_and_stamps_frames(venue: tuple[Venue, str]) -> None:
    v, url = venue
    handler = Handler()
    feed = WsFeed(url, handler, backoff=fast_backoff(1))
    task = asyncio.create_task(feed.run())
    await until(lambda: v.received == [b'{"op":"subscribe","n":1}'])
    v.push(b'{"a":1}')
    v.push(b'{"a":2}')
    await until(lambda: len(handler.frames) == 2)
    assert [f[0] for f in handler.frames] == [b'{"a":1}', b'{"a":2}']
    assert handler.frames[0][1] <= handler.frames[1][1]  # monotonic stamps in order
    assert handler.frames[0][2] > 1_600_000_000 * 10**9  # wall clock, ns
    assert (feed.counters.frames, feed.counters.bytes) == (2, 14)
    await feed.stop()
    await asyncio.wait_for(task, 5)
    assert handler.disconnected == 1


async def test_reconnects_and_resubscribes_after_a_cut(venue: tuple[Venue, str]) -> None:
    v, url = venue
    handler = Handler()
    feed = WsFeed(url, handler, backoff=fast_backoff(1))
    task = asyncio.create_task(feed.run())
    await until(lambda: v.connections == 1 and len(v.received) == 1)
    v.push(b"x")
    await until(lambda: len(handler.frames) == 1)
    v.cut()
    await until(lambda: v.connections == 2 and len(v.received) == 2)
    assert v.received[1] == b'{"op":"subscribe","n":2}'  # every connect resubscribes
    assert handler.disconnected >= 1
    assert feed.counters.reconnects == 1
    await feed.stop()
    await asyncio.wait_for(task, 5)


async def test_silent_connection_is_closed_and_reopened(venue: tuple[Venue, str]) -> None:
    v, url = venue
    handler = Handler()
    feed = WsFeed(url, handler, silence_timeout_s=0.2, backoff=fast_backoff(1))
    task = asyncio.create_task(feed.run())
    await until(lambda: v.connections >= 2, timeout=5)  # nothing sent: silence, reconnect
    assert feed.counters.silent_closes >= 1
    assert "silent" in feed.last_error
    await feed.stop()
    await asyncio.wait_for(task, 5)


async def test_unreachable_venue_backs_off_and_a_handler_bug_is_contained(
    venue: tuple[Venue, str],
) -> None:
    v, url = venue
    handler = Handler()
    dead = WsFeed("ws://127.0.0.1:1/ws", handler, backoff=fast_backoff(1))
    task = asyncio.create_task(dead.run())
    await until(lambda: dead.counters.failed_connects >= 3)
    assert "connect to ws://127.0.0.1:1/ws failed" in dead.last_error
    await dead.stop()
    await asyncio.wait_for(task, 5)

    feed = WsFeed(url, handler, backoff=fast_backoff(1))
    task = asyncio.create_task(feed.run())
    await until(lambda: v.connections == 1)
    v.push(b"boom")
    v.push(b"after")
    await until(lambda: any(f[0] == b"after" for f in handler.frames))
    assert feed.counters.handler_errors == 1 and "handler bug" in feed.last_error
    assert v.connections == 1  # the bug did not cost the connection
    await feed.stop()
    await asyncio.wait_for(task, 5)


def test_backoff_is_capped_exponential_with_full_jitter() -> None:
    b = Backoff(base_s=1.0, cap_s=8.0, rng=random.Random(7))
    delays = [b.next_delay() for _ in range(40)]
    ceilings = [min(8.0, 2.0**i) for i in range(40)]
    assert all(0.0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert max(delays[5:]) > 4.0  # reaches the cap region
    b.reset()
    assert b.next_delay() <= 1.0
    with pytest.raises(ValueError, match="backoff needs"):
        Backoff(base_s=2.0, cap_s=1.0)


async def test_venue_pings_alone_keep_the_connection_alive(venue: tuple[Venue, str]) -> None:
    # Binance pings a quiet stream every 20 s and expects a pong: those pings must count as
    # activity (picows' auto-pong would hide them and the feed would call the link silent).
    v, url = venue
    handler = Handler()
    feed = WsFeed(url, handler, silence_timeout_s=0.3, backoff=fast_backoff(1))
    task = asyncio.create_task(feed.run())
    await until(lambda: v.connections == 1)
    for _ in range(20):
        for client in v.clients:
            client.send_ping(b"hb")
        await asyncio.sleep(0.05)  # 1 s in all, three silence windows
    assert (feed.counters.silent_closes, v.connections) == (0, 1)
    await feed.stop()
    await asyncio.wait_for(task, 5)


async def test_application_ping_text_goes_out_on_the_interval(venue: tuple[Venue, str]) -> None:
    # OKX, Bybit and Kraken want their own text pings; protocol PINGs do not count there.
    v, url = venue
    handler = Handler()
    feed = WsFeed(url, handler, ping_interval_s=0.05, ping_text=b'{"op":"ping"}')
    task = asyncio.create_task(feed.run())
    await until(lambda: v.received.count(b'{"op":"ping"}') >= 3)
    assert v.received[0] == b'{"op":"subscribe","n":1}'
    assert feed.counters.pings >= 3
    await feed.stop()
    await asyncio.wait_for(task, 5)


async def test_send_rate_limit_spreads_frames_in_order(venue: tuple[Venue, str]) -> None:
    # Binance cuts a connection over 5 frames/s: a burst of resubscribes must wait its turn.
    v, url = venue
    handler = Handler()
    feed = WsFeed(url, handler, max_sends_per_s=20.0)
    task = asyncio.create_task(feed.run())
    await until(lambda: len(v.received) == 1)
    burst = [b"f%d" % i for i in range(10)]
    for frame in burst:
        feed.send(frame)
    assert feed.counters.send_waits >= 9  # the subscribe just took the only token
    await until(lambda: len(v.received) == 11)
    assert v.received[1:] == burst
    spans = [b - a for a, b in zip(v.arrivals, v.arrivals[5:], strict=False)]
    assert min(spans) >= 5 / 20 * 0.8  # never 6 frames inside a quarter second
    await feed.stop()
    await asyncio.wait_for(task, 5)


async def test_frames_waiting_for_the_rate_limit_die_with_the_connection(
    venue: tuple[Venue, str],
) -> None:
    v, url = venue
    handler = Handler()
    feed = WsFeed(url, handler, max_sends_per_s=2.0, backoff=fast_backoff(1))
    task = asyncio.create_task(feed.run())
    await until(lambda: v.connections == 1 and len(v.received) == 1)
    for i in range(5):
        feed.send(b"old%d" % i)
    v.cut()
    await until(lambda: v.connections == 2 and len(v.received) >= 2)
    await asyncio.sleep(1.5)  # long enough for stale frames to have leaked if kept
    assert not any(r.startswith(b"old") for r in v.received[1:])
    await feed.stop()
    await asyncio.wait_for(task, 5)
