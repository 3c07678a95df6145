"""Binance spot and USDⓈ-M futures depth feeds: WebSocket diff depth + REST snapshots.

Binance's documented procedure: buffer the diff stream, fetch a REST snapshot, drop what it
already holds, bridge, then check continuity on every event. BookSync does the procedure;
this adapter owns the connection, fetches snapshots when a book asks for one (rate-limited
by request weight), and retries a failed or stale snapshot until the book is LIVE or the
connection drops.

Per-connection limits (venues.md 1.1): at most 1,024 streams and 5 incoming frames a second
(pongs count). Streams go in the connection URL, so the only frames we send are pongs, and
those pass a 4-a-second send limit anyway; ``binance_feeds`` spreads many instruments over
as many connections as the stream limit (and a sane URL length) requires.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from arbengine._core.instrument import Instrument
from arbengine.venues._frames import FAMILY_BINANCE_DEPTH, FAMILY_BINANCE_SNAPSHOT
from arbengine.venues._router import FeedRouter
from arbengine.venues._sync import OUT_NEED_SNAPSHOT, OUT_RESYNC, BookSync
from arbengine.venues.errors import FrameError
from arbengine.venues.feed import VenueFeed, notify_book
from arbengine.venues.rest import RestClient, RestError, TokenBucket
from arbengine.venues.ws import Backoff, WsFeed


@dataclass(frozen=True)
class Market:
    name: str
    ws_base: str
    rest_base: str
    depth_path: str
    rule: str
    stream_suffix: str
    weight_per_minute: int

    def snapshot_weight(self, limit: int) -> int:
        # Documented request weights of the depth endpoint by limit.
        if self.name == "spot":
            return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
        return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20


SPOT = Market(
    "spot",
    "wss://stream.binance.com:9443",
    "https://api.binance.com",
    "/api/v3/depth",
    "binance_spot",
    "@depth@100ms",
    6_000,
)
USDM = Market(
    "usdm",
    "wss://fstream.binance.com",
    "https://fapi.binance.com",
    "/fapi/v1/depth",
    "binance_futures",
    "@depth@100ms",
    2_400,
)


MAX_STREAMS = 1024  # per connection, documented
MAX_SENDS_PER_S = 4.0  # under the documented 5 incoming frames a second
STREAMS_PER_CONNECTION = 200  # keeps the stream URL near 4 KB


class BinanceFeed(VenueFeed):
    """Depth books for ``instruments`` on one Binance market over one connection."""

    def __init__(
        self,
        market: Market,
        instruments: Sequence[Instrument],
        *,
        ws_base: str | None = None,
        rest_base: str | None = None,
        snapshot_limit: int = 1000,
        silence_timeout_s: float = 30.0,
        backoff: Backoff | None = None,
        rest_timeout_s: float = 5.0,
        limiter: TokenBucket | None = None,
    ) -> None:
        if not instruments:
            raise ValueError("a Binance feed needs at least one instrument")
        if len(instruments) > MAX_STREAMS:
            raise ValueError(
                f"{len(instruments)} streams on one Binance connection; the limit is "
                f"{MAX_STREAMS} (use binance_feeds to spread them)"
            )
        self.market = market
        self.instruments = list(instruments)
        self.snapshot_limit = snapshot_limit
        self.syncs = [BookSync(inst, market.rule) for inst in self.instruments]
        self.router = FeedRouter(
            FAMILY_BINANCE_DEPTH,
            [inst.symbol.encode() for inst in self.instruments],
            self.syncs,
            FAMILY_BINANCE_SNAPSHOT,
        )
        per_minute = market.weight_per_minute
        self.rest = RestClient(
            rest_base or market.rest_base,
            # Weight is counted per IP: feeds of one market must share one bucket.
            limiter=limiter or TokenBucket(capacity=per_minute / 4, rate=per_minute / 60),
            timeout_s=rest_timeout_s,
        )
        streams = "/".join(f"{i.symbol.lower()}{market.stream_suffix}" for i in self.instruments)
        self.ws = WsFeed(
            f"{ws_base or market.ws_base}/stream?streams={streams}",
            self,
            name=f"binance-{market.name}",
            silence_timeout_s=silence_timeout_s,
            backoff=backoff,
            max_sends_per_s=MAX_SENDS_PER_S,
        )
        self.snapshot_errors = 0
        self.last_error = ""
        self._fetching: dict[int, asyncio.Task[None]] = {}

    # --- FeedHandler ------------------------------------------------------------------------

    def on_connected(self) -> list[bytes]:
        for index, sync in enumerate(self.syncs):
            sync.start()
            # Fetch at once rather than after the first buffered event: on a quiet market no
            # event may come for a while, and the book should still go LIVE. A snapshot that
            # arrives first is bridged by the first event; one that is stale is fetched again.
            self._fetch_snapshot(index)
        return []  # the streams are in the URL

    def on_frame(self, payload: bytes, recv_mono_ns: int, recv_wall_ns: int) -> None:
        out = self.router.on_frame(payload, recv_mono_ns, recv_wall_ns)
        notify_book(self.on_book, self.router, out, recv_mono_ns, self.on_resync)
        if out in (OUT_NEED_SNAPSHOT, OUT_RESYNC):
            # After a gap fetch at once: waiting for the next event would leave a book on a
            # quiet market out of LIVE for as long as the market stays quiet.
            index = self.router.last_index
            for i in range(len(self.syncs)) if index < 0 else (index,):
                self._fetch_snapshot(i)

    def on_disconnected(self) -> None:
        super().on_disconnected()
        for task in self._fetching.values():
            task.cancel()
        self._fetching.clear()

    # --- snapshots ----------------------------------------------------------------------------

    def _fetch_snapshot(self, index: int) -> None:
        task = self._fetching.get(index)
        if task is None or task.done():
            self._fetching[index] = asyncio.get_running_loop().create_task(self._snapshot(index))

    async def _snapshot(self, index: int) -> None:
        inst = self.instruments[index]
        params = {"symbol": inst.symbol, "limit": str(self.snapshot_limit)}
        weight = self.market.snapshot_weight(self.snapshot_limit)
        retry = Backoff(base_s=0.2, cap_s=5.0)
        while self.ws.connected:
            try:
                body = await self.rest.get(self.market.depth_path, params, weight=weight)
                out = self.router.on_snapshot(index, body, time.monotonic_ns())
            except (RestError, FrameError) as exc:
                self.snapshot_errors += 1
                self.last_error = f"{inst.name} snapshot: {exc}"
                out = OUT_NEED_SNAPSHOT
            if out != OUT_NEED_SNAPSHOT:
                return
            await asyncio.sleep(retry.next_delay())  # stale or failed: ask again

    # --- lifecycle ----------------------------------------------------------------------------

    async def stop(self) -> None:
        await super().stop()
        for task in self._fetching.values():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.rest.close()


def binance_feeds(
    market: Market,
    instruments: Sequence[Instrument],
    *,
    streams_per_connection: int = STREAMS_PER_CONNECTION,
    **kwargs: Any,
) -> list[BinanceFeed]:
    """One BinanceFeed per ``streams_per_connection`` instruments (at most 1,024).

    Each feed has its own connection and REST session; they share one request-weight
    bucket, since Binance counts weight per IP. ``kwargs`` go to every BinanceFeed.
    """
    if not 1 <= streams_per_connection <= MAX_STREAMS:
        raise ValueError(
            f"streams_per_connection must be 1..{MAX_STREAMS}, got {streams_per_connection}"
        )
    symbols = [inst.symbol for inst in instruments]
    duplicates = sorted({s for s in symbols if symbols.count(s) > 1})
    if duplicates:
        raise ValueError(f"instrument listed twice: {', '.join(duplicates)}")
    chunks = [
        instruments[i : i + streams_per_connection]
        for i in range(0, len(instruments), streams_per_connection)
    ]
    per_minute = market.weight_per_minute
    limiter = kwargs.pop("limiter", None) or TokenBucket(
        capacity=per_minute / 4, rate=per_minute / 60
    )
    return [BinanceFeed(market, chunk, limiter=limiter, **kwargs) for chunk in chunks]
