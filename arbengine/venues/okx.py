"""OKX v5 ``books`` feeds: WebSocket snapshot + updates, seqId chain, CRC32 when non-zero.

OKX sends the snapshot on the WebSocket after subscribing, so a book that leaves LIVE is
resynced by unsubscribing and subscribing that instrument again, without dropping the
connection or the other books.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from arbengine._core.instrument import Instrument
from arbengine.venues._frames import FAMILY_OKX_BOOKS
from arbengine.venues._router import FeedRouter
from arbengine.venues._sync import OUT_RESYNC, BookSync
from arbengine.venues.feed import VenueFeed, notify_book
from arbengine.venues.ws import Backoff, WsFeed

PUBLIC_WS = "wss://ws.okx.com:8443/ws/v5/public"


class OkxFeed(VenueFeed):
    """``books`` channel for ``instruments`` over one public connection."""

    def __init__(
        self,
        instruments: Sequence[Instrument],
        *,
        ws_url: str = PUBLIC_WS,
        channel: str = "books",
        silence_timeout_s: float = 30.0,
        ping_interval_s: float | None = 20.0,
        backoff: Backoff | None = None,
    ) -> None:
        if not instruments:
            raise ValueError("an OKX feed needs at least one instrument")
        self.instruments = list(instruments)
        self.channel = channel
        self.syncs = [BookSync(inst, "okx") for inst in self.instruments]
        self.router = FeedRouter(
            FAMILY_OKX_BOOKS, [inst.symbol.encode() for inst in self.instruments], self.syncs
        )
        self.ws = WsFeed(
            ws_url,
            self,
            name="okx",
            silence_timeout_s=silence_timeout_s,
            ping_interval_s=ping_interval_s,
            ping_text=b"ping",  # OKX wants the text "ping" within 30 s; answers "pong"
            backoff=backoff,
        )
        self.resubscribes = 0

    def _args(self, index: int) -> list[dict[str, str]]:
        return [{"channel": self.channel, "instId": self.instruments[index].symbol}]

    def on_connected(self) -> list[bytes]:
        for sync in self.syncs:
            sync.start()
        args = [a for i in range(len(self.instruments)) for a in self._args(i)]
        return [orjson.dumps({"op": "subscribe", "args": args})]

    def on_frame(self, payload: bytes, recv_mono_ns: int, recv_wall_ns: int) -> None:
        out = self.router.on_frame(payload, recv_mono_ns, recv_wall_ns)
        notify_book(self.on_book, self.router, out, recv_mono_ns, self.on_resync)
        if out == OUT_RESYNC:
            index = self.router.last_index
            for i in range(len(self.syncs)) if index < 0 else (index,):
                self._resubscribe(i)

    def _resubscribe(self, index: int) -> None:
        # A fresh subscription makes OKX send a fresh snapshot for this instrument only.
        self.resubscribes += 1
        self.syncs[index].start()
        self.ws.send(orjson.dumps({"op": "unsubscribe", "args": self._args(index)}))
        self.ws.send(orjson.dumps({"op": "subscribe", "args": self._args(index)}))
