"""Coinbase Advanced Trade ``level2`` feed: WebSocket snapshot + updates, one connection-wide
``sequence_num``.

Protocol choices, and why (venues.md 2.1; lower confidence than the other venues, see there):

* Only the connection carries a sequence. ``sequence_num`` counts every message the
  connection receives, on every channel, so a gap cannot be attributed to a book: the router
  takes every book of the connection out of LIVE and this adapter resubscribes them all. A
  problem that does belong to one book (a crossed snapshot, a bad level) resubscribes that
  product alone; the other books stay LIVE.
* Resync = ``unsubscribe`` then ``subscribe``. Coinbase sends the full book as a ``snapshot``
  event after a subscribe, so no REST snapshot and no bridging are needed. What the venue does
  with a subscribe for a product already subscribed is not documented; unsubscribing first
  makes it a new subscription, which gets a snapshot. The connection stays up and
  ``sequence_num`` simply keeps counting across the resubscribe.
* ``heartbeats`` is subscribed on every connection. Coinbase closes channels that stay quiet
  for 60-90 s, and a quiet book is normal. The heartbeats also advance ``sequence_num`` every
  second, so a message lost on a quiet connection shows as a gap within a second instead of
  at the book's next change, and they feed the silence watchdog, so no pings are needed.
* One channel per subscribe message, as the venue requires. All products go in one message,
  which keeps a resync of every book to two frames. Unauthenticated messages are limited to
  8 a second per IP, so frames are paced at ``max_sends_per_s`` (4: half, which leaves room
  for other connections from the same host); a resync storm waits instead of being cut.
* ``sequence_num`` restarts on every connection. The router's expectation is not carried
  over: each connection gets a fresh router (sharing the clock estimate), so a reconnect is
  not mistaken for a gap. Counters are summed over connections.
* The JWT is optional: level2 is public, and the docs only recommend authenticating. When a
  provider is given, every subscribe frame gets a fresh token because they expire after
  2 minutes. A token is never written to ``last_error`` or to any log.
* Venue errors (``{"type":"error","message":...}``) carry no ``sequence_num`` and belong to
  no book. They are recorded as a one-line ``last_error`` and counted, never raised: an
  exception would only be counted by the connection, and that would hide the venue's own
  words. (An exception from the engine's ``on_book`` hook is the engine's, and the
  connection counts it.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson

from arbengine._core.instrument import Instrument
from arbengine.venues._frames import FAMILY_COINBASE_L2
from arbengine.venues._router import FeedRouter
from arbengine.venues._sync import OUT_IGNORED, OUT_RESYNC, BookSync
from arbengine.venues.feed import VenueFeed, notify_book
from arbengine.venues.ws import Backoff, WsFeed

__all__ = ["PUBLIC_WS", "CoinbaseFeed"]

PUBLIC_WS = "wss://advanced-trade-ws.coinbase.com"
LEVEL2 = "level2"
HEARTBEATS = "heartbeats"
_MAX_ERROR_CHARS = 300


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _MAX_ERROR_CHARS else line[: _MAX_ERROR_CHARS - 3] + "..."


class CoinbaseFeed(VenueFeed):
    """``level2`` (plus ``heartbeats``) for ``instruments`` over one public connection."""

    def __init__(
        self,
        instruments: Sequence[Instrument],
        *,
        ws_url: str = PUBLIC_WS,
        silence_timeout_s: float = 5.0,
        backoff: Backoff | None = None,
        jwt_provider: Callable[[], str] | None = None,
        max_sends_per_s: float | None = 4.0,
    ) -> None:
        if not instruments:
            raise ValueError("a Coinbase feed needs at least one instrument")
        self.instruments = list(instruments)
        self.products = [inst.symbol for inst in self.instruments]
        self._symbols = [p.encode() for p in self.products]
        self._index = {p: i for i, p in enumerate(self.products)}
        self.syncs = [BookSync(inst, "coinbase") for inst in self.instruments]
        self.router = FeedRouter(FAMILY_COINBASE_L2, self._symbols, self.syncs)
        self.jwt_provider = jwt_provider
        self.ws = WsFeed(
            ws_url,
            self,
            name="coinbase",
            # Heartbeats arrive every second: more than a few seconds without any frame
            # means the connection is dead, whatever the books are doing.
            silence_timeout_s=silence_timeout_s,
            ping_interval_s=None,
            backoff=backoff,
            max_sends_per_s=max_sends_per_s,
        )
        self.resubscribes = 0  # resubscribe requests (each covers one or all products)
        self.resubscribed_books = 0  # products resubscribed, summed
        self.venue_errors = 0  # {"type":"error"} messages received
        self.last_error = ""
        self._retired: dict[str, int] = {"sequence_gaps": 0, "frame_errors": 0, "frames": 0}
        self._last_jwt = ""

    # -- frames we send ----------------------------------------------------------------------

    def _request(self, op: str, channel: str, products: Sequence[str]) -> bytes:
        body: dict[str, Any] = {"type": op, "product_ids": list(products), "channel": channel}
        if self.jwt_provider is not None:
            try:
                token = self.jwt_provider()
            except Exception as exc:  # level2 is public: go on without a token
                self.last_error = f"coinbase: JWT provider failed ({type(exc).__name__})"
            else:
                self._last_jwt = token
                body["jwt"] = token
        return orjson.dumps(body)

    def on_connected(self) -> list[bytes]:
        if self.router.frames:
            # sequence_num starts again on a new connection: a fresh router, same clock.
            for name in self._retired:
                self._retired[name] += getattr(self.router, name)
            self.router = FeedRouter(
                FAMILY_COINBASE_L2, self._symbols, self.syncs, clock=self.router.clock
            )
        for sync in self.syncs:
            sync.start()
        return [
            self._request("subscribe", LEVEL2, self.products),
            self._request("subscribe", HEARTBEATS, self.products),
        ]

    def _resubscribe(self, indexes: Iterable[int]) -> None:
        # The venue sends a fresh snapshot after a subscribe that follows an unsubscribe;
        # updates still in flight from the old subscription meet a SYNCING book and are
        # ignored until that snapshot arrives.
        products = []
        for i in indexes:
            self.syncs[i].start()
            products.append(self.products[i])
        self.resubscribes += 1
        self.resubscribed_books += len(products)
        self.ws.send(self._request("unsubscribe", LEVEL2, products))
        self.ws.send(self._request("subscribe", LEVEL2, products))

    def resync(self, product: str | None = None) -> None:
        """Resync one product's book (or all of them) now: an operator's or a monitor's
        decision, e.g. a book that looks stale against the other venues."""
        if product is None:
            self._resubscribe(range(len(self.syncs)))
            return
        index = self._index.get(product)
        if index is None:
            raise KeyError(f"{product!r} is not on this feed")
        self._resubscribe((index,))

    # -- frames we receive -------------------------------------------------------------------

    def on_frame(self, payload: bytes, recv_mono_ns: int, recv_wall_ns: int) -> None:
        router = self.router
        out = router.on_frame(payload, recv_mono_ns, recv_wall_ns)
        notify_book(self.on_book, router, out, recv_mono_ns, self.on_resync)
        if out == OUT_RESYNC:
            index = router.last_index
            # index < 0: a sequence_num gap or an unreadable frame, which may have hidden
            # any product's message.
            self._resubscribe(range(len(self.syncs)) if index < 0 else (index,))
        elif out == OUT_IGNORED and router.last_index < 0 and b'"error"' in payload:
            self._on_venue_error(payload)

    def _on_venue_error(self, payload: bytes) -> None:
        try:
            body = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if not isinstance(body, dict) or body.get("type") != "error":
            return
        self.venue_errors += 1
        parts = [str(body.get(key)) for key in ("message", "reason") if body.get(key)]
        text = _one_line("; ".join(parts) or "(no message)")
        if self._last_jwt:
            text = text.replace(self._last_jwt, "<jwt>")
        self.last_error = f"coinbase error: {text}"

    # -- state ---------------------------------------------------------------------------

    @property
    def sequence_gaps(self) -> int:
        """Connection-wide sequence_num gaps, over every connection so far."""
        return self._retired["sequence_gaps"] + self.router.sequence_gaps

    @property
    def frame_errors(self) -> int:
        """Frames that could not be read, over every connection so far."""
        return self._retired["frame_errors"] + self.router.frame_errors

    def counters(self) -> dict[str, int]:
        """What the metrics layer reads: feed-level counts plus the connection's."""
        ws = self.ws.counters
        return {
            "frames": self._retired["frames"] + self.router.frames,
            "sequence_gaps": self.sequence_gaps,
            "frame_errors": self.frame_errors,
            "resubscribes": self.resubscribes,
            "resubscribed_books": self.resubscribed_books,
            "venue_errors": self.venue_errors,
            "connects": ws.connects,
            "reconnects": ws.reconnects,
            "silent_closes": ws.silent_closes,
            "handler_errors": ws.handler_errors,
            "live_books": sum(s.live for s in self.syncs),
        }
