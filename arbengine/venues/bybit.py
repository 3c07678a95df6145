"""Bybit v5 public ``orderbook.{depth}.{symbol}`` feeds: WebSocket snapshot + deltas, ``u`` chain.

Why it is built this way (venues.md section 5, Bybit's v5 "Connect" and "Orderbook" pages):

* Bybit sends the snapshot on the socket after every subscribe, so no REST bootstrap is
  needed (and the REST book could not bridge a 50-level stream anyway: its ``u`` belongs to
  the 1000-level stream). A book that leaves LIVE is resynced by unsubscribing and
  subscribing its topic again: the other books of the connection keep streaming, and no
  reconnect is spent on one book (Bybit limits connections to 500 per 5 minutes per domain).
* Continuity is ``u``, per topic and +1 per message (BookSync rule "bybit"). ``seq`` is the
  cross sequence shared by all depths of a symbol: it also moves for changes this depth never
  publishes, so it cannot reveal a lost message. ``u`` == 1 is a service-restart snapshot
  that overwrites the book; it is not a gap, so it must not trigger a resubscribe.
* Keepalive is the application ping ``{"op":"ping"}``: it is what Bybit documents (every
  20 s) and what keeps it from dropping a client that otherwise sends nothing. The pong is a
  JSON reply without ``topic``, which the compiled parser reports as "not a book".
* Subscribe requests carry at most 10 topics: spot refuses more ("args size >10"), linear
  and inverse have no count limit, and one rule for all categories keeps a refused request
  small. All topics of one connection must also fit Bybit's 21,000 characters of ``args``,
  checked when the feed is built rather than discovered as a refusal in production.
* A refused subscribe (``"success":false``) is a venue answer, not a connection fault: it is
  recorded in one line (``last_error``, ``subscribe_failures``), never raised out of
  ``on_frame``; the book stays out of LIVE and its topic is not asked again on this
  connection (an unknown topic stays unknown; a reconnect asks once more).
* Our pings are answered, so the connection never looks silent even when one topic has
  stopped delivering: a book whose snapshot never comes would stay out of LIVE forever. A
  watchdog resubscribes every book still out of LIVE ``resync_timeout_s`` after its last
  subscribe (also serving an operator's ``BookSync.resync``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Sequence
from typing import Any, Final, Literal

import orjson

from arbengine._core.instrument import Instrument
from arbengine.venues._frames import FAMILY_BYBIT_ORDERBOOK
from arbengine.venues._router import FeedRouter
from arbengine.venues._sync import OUT_IGNORED, OUT_RESYNC, BookSync
from arbengine.venues.feed import VenueFeed, notify_book
from arbengine.venues.ws import Backoff, WsFeed

__all__ = ["CATEGORIES", "DEPTHS", "PUBLIC_WS", "BybitFeed", "Category"]

Category = Literal["spot", "linear", "inverse"]
CATEGORIES: Final[tuple[Category, ...]] = ("spot", "linear", "inverse")
DEPTHS: Final[tuple[int, ...]] = (1, 50, 200, 1000)  # orderbook depths of these categories
PUBLIC_WS: Final = "wss://stream.bybit.com/v5/public/{category}"
MAX_ARGS_PER_REQUEST: Final = 10  # spot's limit, applied to every category
MAX_ARGS_CHARS: Final = 21_000  # all args of one public connection
PING: Final = b'{"op":"ping"}'
_MAX_PENDING: Final = 256  # unanswered requests remembered (a reconnect forgets them all)


def _one_line(text: str, limit: int = 300) -> str:
    return " ".join(text.split())[:limit]


class BybitFeed(VenueFeed):
    """``orderbook.{depth}`` for ``instruments`` of one ``category``, over one public connection."""

    def __init__(
        self,
        category: Category,
        instruments: Sequence[Instrument],
        *,
        ws_url: str | None = None,
        depth: int = 50,
        silence_timeout_s: float = 30.0,
        ping_interval_s: float | None = 20.0,
        backoff: Backoff | None = None,
        resync_timeout_s: float = 10.0,
    ) -> None:
        if category not in CATEGORIES:
            raise ValueError(f"category must be one of {', '.join(CATEGORIES)}, not {category!r}")
        if depth not in DEPTHS:
            raise ValueError(f"depth must be one of {DEPTHS}, not {depth}")
        if not instruments:
            raise ValueError("a Bybit feed needs at least one instrument")
        if resync_timeout_s <= 0:
            raise ValueError("resync_timeout_s must be positive")
        self.category: Category = category
        self.depth = depth
        self.instruments = list(instruments)
        self.topics = [f"orderbook.{depth}.{inst.symbol}" for inst in self.instruments]
        if len(orjson.dumps(self.topics)) > MAX_ARGS_CHARS:
            raise ValueError(
                f"{len(self.topics)} topics exceed Bybit's {MAX_ARGS_CHARS} characters of args "
                "per connection: split the instruments over several feeds"
            )
        self._index = {topic: i for i, topic in enumerate(self.topics)}
        self.syncs = [BookSync(inst, "bybit") for inst in self.instruments]
        self.router = FeedRouter(
            FAMILY_BYBIT_ORDERBOOK, [inst.symbol.encode() for inst in self.instruments], self.syncs
        )
        self.ws = WsFeed(
            ws_url or PUBLIC_WS.format(category=category),
            self,
            name=f"bybit-{category}",
            silence_timeout_s=silence_timeout_s,
            ping_interval_s=ping_interval_s,
            ping_text=PING,  # answered {"success":true,"ret_msg":"pong",...,"op":"ping"}
            backoff=backoff,
        )
        self.resync_timeout_s = resync_timeout_s
        self.resubscribes = 0  # books resubscribed (gap, crossed book, bad frame, watchdog)
        self.stuck_resubscribes = 0  # of which by the watchdog
        self.subscribe_failures = 0  # subscribe replies with "success": false
        self.pongs = 0
        self.last_error = ""
        self.refused: set[str] = set()  # topics Bybit refused on this connection
        self._pending: dict[str, list[str]] = {}  # req_id -> topics of an unanswered request
        self._next_req = 0
        self._subscribed_at = [0.0] * len(self.syncs)  # time.monotonic() of each subscribe

    # -- requests ---------------------------------------------------------------------------

    def _requests(self, op: str, topics: Sequence[str]) -> list[bytes]:
        frames: list[bytes] = []
        for start in range(0, len(topics), MAX_ARGS_PER_REQUEST):
            chunk = list(topics[start : start + MAX_ARGS_PER_REQUEST])
            self._next_req += 1
            req_id = f"{op}-{self._next_req}"
            self._pending[req_id] = chunk
            if len(self._pending) > _MAX_PENDING:
                del self._pending[next(iter(self._pending))]
            frames.append(orjson.dumps({"req_id": req_id, "op": op, "args": chunk}))
        return frames

    def on_connected(self) -> list[bytes]:
        self._pending.clear()
        self.refused.clear()
        now = time.monotonic()
        for i, sync in enumerate(self.syncs):
            sync.start()
            self._subscribed_at[i] = now
        return self._requests("subscribe", self.topics)

    def _resubscribe(self, indices: Iterable[int]) -> None:
        # Bybit answers a fresh subscription with a fresh snapshot of that topic only.
        picked = [i for i in indices if self.topics[i] not in self.refused]
        if not picked:
            return
        now = time.monotonic()
        for i in picked:
            self.syncs[i].start()
            self._subscribed_at[i] = now
        self.resubscribes += len(picked)
        topics = [self.topics[i] for i in picked]
        for frame in self._requests("unsubscribe", topics) + self._requests("subscribe", topics):
            self.ws.send(frame)

    # -- frames -----------------------------------------------------------------------------

    def on_frame(self, payload: bytes, recv_mono_ns: int, recv_wall_ns: int) -> None:
        out = self.router.on_frame(payload, recv_mono_ns, recv_wall_ns)
        notify_book(self.on_book, self.router, out, recv_mono_ns, self.on_resync)
        if out == OUT_RESYNC:
            index = self.router.last_index
            self._resubscribe(range(len(self.syncs)) if index < 0 else (index,))
        elif out == OUT_IGNORED and self.router.last_index < 0:
            self._on_reply(payload)  # not a book message: op replies, pongs

    def _on_reply(self, payload: bytes) -> None:
        try:
            reply: Any = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if not isinstance(reply, dict):
            return
        op = reply.get("op")
        if reply.get("ret_msg") == "pong" or op == "pong":
            self.pongs += 1
            return
        req_id = reply.get("req_id")
        topics = self._pending.pop(req_id, None) if isinstance(req_id, str) else None
        if reply.get("success") is not False:
            return
        message = str(reply.get("ret_msg", ""))
        self.last_error = _one_line(f"bybit {op} {topics or '?'} refused: {message}")
        if op != "subscribe":
            return
        self.subscribe_failures += 1
        if "already subscribed" in message:
            return  # the topic streams; the watchdog deals with a missing snapshot
        named = message.partition("topic:")[2].strip()
        if named in self._index:
            self.refused.add(named)
        elif topics:
            self.refused.update(topics)  # not attributable: the whole request failed

    # -- watchdog ---------------------------------------------------------------------------

    def check_stuck(self, now: float) -> int:
        """Resubscribe the books out of LIVE for ``resync_timeout_s`` since their last
        subscribe (``now`` is ``time.monotonic()``); how many were."""
        if not self.ws.connected:
            return 0
        stuck = [
            i
            for i, sync in enumerate(self.syncs)
            if not sync.live
            and self.topics[i] not in self.refused
            and now - self._subscribed_at[i] >= self.resync_timeout_s
        ]
        if stuck:
            self.stuck_resubscribes += len(stuck)
            self._resubscribe(stuck)
        return len(stuck)

    async def _watchdog(self) -> None:
        period = min(1.0, self.resync_timeout_s / 4)
        while True:
            await asyncio.sleep(period)
            try:
                self.check_stuck(time.monotonic())
            except Exception as exc:  # the watchdog must outlive a failed send
                self.last_error = _one_line(f"bybit watchdog: {type(exc).__name__}: {exc}")

    # -- lifecycle --------------------------------------------------------------------------

    async def run(self) -> None:
        watchdog = asyncio.create_task(self._watchdog(), name=f"bybit-{self.category}-watchdog")
        try:
            await self.ws.run()
        finally:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
