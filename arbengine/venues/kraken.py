"""Kraken WebSocket v2 ``book`` feeds: snapshot + updates over one connection, CRC-32 checked.

Kraken sends no sequence numbers. What keeps a book honest is the checksum on every message
(snapshot and update): the unsigned CRC-32 of the top 10 levels a side, written with the
pair's wire precision (venues.md 3.2). The compiled ``BookSync`` (rule ``"kraken"``) applies
each message, truncates the book to the subscribed depth (Kraken sends no ``qty: 0`` for
levels pushed out of scope) and verifies the checksum; a lost, reordered or damaged message
shows up as a mismatch (or as a frame error), and the book leaves LIVE. The checksum covers
the top 10 levels only: at depth 25 and beyond, a lost change deeper than that is seen only
once it reaches the top 10 (Kraken's design). A loss whose levels the very next message
rewrites leaves a correct book, and nothing to see.

A book that leaves LIVE is resynced by unsubscribing and subscribing that symbol again on the
same connection: Kraken answers a subscription with a fresh snapshot, so neither the
connection nor the other books are touched. A frame that cannot be attributed to a book
(malformed, truncated) resyncs them all.

Wire precision (``price_decimals`` / ``qty_decimals``): Kraken's checksum writes every price
and quantity with the pair's fixed number of decimals (``"0.10000000"``, ``"45281.0"``), and
v2 sends them as JSON numbers, so the precision cannot be recovered from a level on the wire
(a JSON number says nothing about trailing zeros it could have had). It is reference data:
``price_precision`` / ``qty_precision`` of each pair in the v2 ``instrument`` channel, the
same as ``pair_decimals`` / ``lot_decimals`` of the REST ``AssetPairs`` endpoint. The feed
does not subscribe to ``instrument`` itself: like ticks and lots, the precisions come with
the instrument definitions, through ``precisions={"BTC/USD": (1, 8)}``. Without an entry a
pair uses its grids' decimals, which are Kraken's precisions whenever the tick is
``10**-price_precision`` and the lot ``10**-qty_precision`` (BTC/USD: tick 0.1, lot
0.00000001, so 1 and 8). More decimals than the grid is fine (a 0.5 tick written with 2,
"45281.50"); fewer cannot write the grid's values and is refused. The wire text itself is
never hashed, so trimmed numbers (``0.566`` for ``0.5660``) verify as well.

Keepalive: Kraken pushes ``{"channel":"heartbeat"}`` about once a second on a connection with
a subscription when nothing else is sent, which feeds the silence watchdog; the feed also
sends the application-level ``{"method":"ping"}`` every ``ping_interval_s`` (answered
``{"method":"pong",..}``), which keeps the watchdog fed before any subscription too. A
subscription that brings no snapshot within ``snapshot_timeout_s`` (refused, or its snapshot
lost) is tried again. A book that fails again before a snapshot is accepted is resubscribed
after ``resubscribe_hold_s``, doubling up to 5 s, instead of in a tight loop. Both checks
run on incoming frames (at most every 50 ms), which heartbeats and pongs guarantee.

``on_book(sync, recv_mono_ns)``, when set, is called after each frame that changed a LIVE
book (see ``venues.feed``).

Control replies are counted (``acks``, ``pongs``, ``heartbeats``) and every error reply
(``{"method":"subscribe","success":false,"error":"..",..}``) is recorded as one line in
``last_error`` and counted in ``errors``: nothing raises out of ``on_frame``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from arbengine._core.instrument import Instrument
from arbengine.venues._frames import FAMILY_KRAKEN_BOOK
from arbengine.venues._router import FeedRouter
from arbengine.venues._sync import OUT_IGNORED, OUT_RESYNC, OUT_SNAPSHOT, SYNCING, BookSync
from arbengine.venues.feed import VenueFeed, notify_book
from arbengine.venues.ws import Backoff, WsFeed

__all__ = ["DEPTHS", "PUBLIC_WS", "KrakenFeed"]

PUBLIC_WS = "wss://ws.kraken.com/v2"
DEPTHS = (10, 25, 100, 500, 1000)  # the book channel's subscription depths
MAX_DECIMALS = 18  # the checksum writer's limit (10**18 fits int64)
MAX_HOLD_S = 5.0  # the longest a failing book waits before it is resubscribed
CHECK_INTERVAL_NS = 50_000_000  # how often frames trigger the subscription checks
_CHANNEL = "book"
_HEARTBEAT = b'{"channel":"heartbeat"}'
_PING = b'{"method":"ping"}'
_ERROR_CHARS = 300  # last_error is one line, at most this long


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _ERROR_CHARS else line[: _ERROR_CHARS - 3] + "..."


class KrakenFeed(VenueFeed):
    """``book`` channel at ``depth`` for ``instruments`` over one public v2 connection.

    ``instruments`` use Kraken's v2 symbols (``"BTC/USD"``); ``precisions`` maps a symbol to
    its ``(price_precision, qty_precision)`` (see the module docstring; default: the grids'
    decimals).
    """

    def __init__(
        self,
        instruments: Sequence[Instrument],
        *,
        ws_url: str = PUBLIC_WS,
        depth: int = 10,
        precisions: Mapping[str, tuple[int, int]] | None = None,
        silence_timeout_s: float = 10.0,
        ping_interval_s: float | None = 20.0,
        snapshot_timeout_s: float = 10.0,
        resubscribe_hold_s: float = 0.1,
        backoff: Backoff | None = None,
    ) -> None:
        if not instruments:
            raise ValueError("a Kraken feed needs at least one instrument")
        if depth not in DEPTHS or isinstance(depth, bool):
            raise ValueError(f"Kraken book depth must be one of {DEPTHS}, got {depth!r}")
        if snapshot_timeout_s <= 0 or resubscribe_hold_s <= 0:
            raise ValueError("snapshot_timeout_s and resubscribe_hold_s must be positive")
        self.instruments = list(instruments)
        self.symbols = [inst.symbol for inst in self.instruments]
        precisions = dict(precisions or {})
        unknown = set(precisions) - set(self.symbols)
        if unknown:
            raise ValueError(f"precisions for symbols not in the feed: {sorted(unknown)}")
        self.depth = depth
        self.syncs = [
            BookSync(inst, "kraken", depth, *self._precision(inst, precisions.get(inst.symbol)))
            for inst in self.instruments
        ]
        self.router = FeedRouter(FAMILY_KRAKEN_BOOK, [s.encode() for s in self.symbols], self.syncs)
        self.ws = WsFeed(
            ws_url,
            self,
            name="kraken",
            silence_timeout_s=silence_timeout_s,
            ping_interval_s=ping_interval_s,
            ping_text=_PING,
            backoff=backoff,
        )
        self.snapshot_timeout_ns = int(snapshot_timeout_s * 1e9)
        self.resubscribe_hold_ns = int(resubscribe_hold_s * 1e9)
        n = len(self.syncs)
        self._subscribed_ns = [0] * n  # monotonic time of the last subscribe
        self._due_ns = [0] * n  # a held resubscribe goes out then (0: none held)
        self._failures = [0] * n  # resyncs since the last snapshot accepted
        self._next_check_ns = 0
        self._req_id = 0
        self.last_error = ""
        self.system_status = ""  # the status channel's "system" ("online", "maintenance"...)
        self.resubscribes = 0  # symbols resubscribed to resync their book
        self.snapshot_timeouts = 0  # subscriptions retried for want of a snapshot
        self.held_resubscribes = 0  # resubscribes delayed: the book kept failing
        self.acks = 0  # successful subscribe/unsubscribe replies
        self.errors = 0  # error replies from the venue
        self.pongs = 0
        self.heartbeats = 0
        self.internal_errors = 0  # exceptions caught in on_frame (a bug: should stay 0)

    @staticmethod
    def _precision(inst: Instrument, given: tuple[int, int] | None) -> tuple[int, int]:
        if given is None:
            return inst.price.decimals, inst.size.decimals
        price_decimals, qty_decimals = given
        for what, value, grid in (
            ("price_precision", price_decimals, inst.price),
            ("qty_precision", qty_decimals, inst.size),
        ):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{inst.symbol}: {what} must be an int, got {value!r}")
            if not grid.decimals <= value <= MAX_DECIMALS:
                raise ValueError(
                    f"{inst.symbol}: {what} {value} cannot write the grid step {grid.step} "
                    f"(needs {grid.decimals} to {MAX_DECIMALS} decimals)"
                )
        return price_decimals, qty_decimals

    # -- requests ------------------------------------------------------------------------

    def _request(self, method: str, indices: Iterable[int]) -> bytes:
        self._req_id += 1
        params: dict[str, Any] = {
            "channel": _CHANNEL,
            "symbol": [self.symbols[i] for i in indices],
            "depth": self.depth,
        }
        if method == "subscribe":
            params["snapshot"] = True
        return orjson.dumps({"method": method, "params": params, "req_id": self._req_id})

    def on_connected(self) -> list[bytes]:
        now = time.monotonic_ns()
        for i, sync in enumerate(self.syncs):
            sync.start()
            self._subscribed_ns[i] = now
            self._due_ns[i] = 0
            self._failures[i] = 0
        return [self._request("subscribe", range(len(self.syncs)))]

    def _resync(self, indices: Sequence[int], now_ns: int) -> None:
        """Books that left LIVE: resubscribe them, at once the first time; a book that fails
        again before any snapshot is accepted (a venue sending bad data, a wrong precision)
        waits resubscribe_hold_s, doubling up to MAX_HOLD_S, rather than resubscribing in a
        loop that Kraken's rate limits would end by cutting the connection."""
        now: list[int] = []
        for i in indices:
            self.syncs[i].start()  # waits for a snapshot; updates meanwhile are ignored
            self._failures[i] += 1
            if self._failures[i] == 1:
                now.append(i)
            else:
                hold = self.resubscribe_hold_ns << min(self._failures[i] - 2, 16)
                self._due_ns[i] = now_ns + min(hold, int(MAX_HOLD_S * 1e9))
                self.held_resubscribes += 1
        if now:
            self._resubscribe(now, now_ns)

    def _resubscribe(self, indices: Sequence[int], now_ns: int) -> None:
        # A fresh subscription makes Kraken send a fresh snapshot of these symbols only.
        # Updates still in flight from the old one are ignored: the book waits for it.
        self.resubscribes += len(indices)
        for i in indices:
            self.syncs[i].start()
            self._subscribed_ns[i] = now_ns
            self._due_ns[i] = 0
        self.ws.send(self._request("unsubscribe", indices))
        self.ws.send(self._request("subscribe", indices))

    # -- frames --------------------------------------------------------------------------

    def on_frame(self, payload: bytes, recv_mono_ns: int, recv_wall_ns: int) -> None:
        try:
            router = self.router
            not_book = router.not_book
            out = router.on_frame(payload, recv_mono_ns, recv_wall_ns)
            notify_book(self.on_book, router, out, recv_mono_ns, self.on_resync)
            if out == OUT_RESYNC:
                index = router.last_index
                self._resync(range(len(self.syncs)) if index < 0 else (index,), recv_mono_ns)
            elif out == OUT_SNAPSHOT:
                self._failures[router.last_index] = 0
            elif out == OUT_IGNORED and router.not_book != not_book:
                self._on_control(payload)
            if recv_mono_ns >= self._next_check_ns:
                # Frames come at least every second (heartbeats): no timer is needed.
                self._next_check_ns = recv_mono_ns + CHECK_INTERVAL_NS
                self._check_subscriptions(recv_mono_ns)
        except Exception as exc:  # never out of on_frame: the connection must go on
            self.internal_errors += 1
            self.last_error = _one_line(f"kraken: {type(exc).__name__}: {exc}")

    def _check_subscriptions(self, now_ns: int) -> None:
        """Send held resubscribes that are due, retry subscriptions without a snapshot.

        SYNCING books only: a book is DOWN until the connection subscribes (frames may
        arrive before ``on_connected``)."""
        due: list[int] = []
        late: list[int] = []
        for i in range(len(self.syncs)):
            if self.syncs[i].state != SYNCING:
                continue
            if self._due_ns[i]:
                if now_ns >= self._due_ns[i]:
                    due.append(i)
            elif now_ns - self._subscribed_ns[i] > self.snapshot_timeout_ns:
                late.append(i)
        if late:
            self.snapshot_timeouts += len(late)
        if due or late:
            self._resubscribe(due + late, now_ns)

    def _on_control(self, payload: bytes) -> None:
        """Everything that is not a book message: heartbeat, status, replies."""
        if payload == _HEARTBEAT:
            self.heartbeats += 1
            return
        try:
            msg = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return  # cannot happen: the router parsed it
        if not isinstance(msg, dict):
            return
        channel = msg.get("channel")
        if channel == "heartbeat":
            self.heartbeats += 1
        elif channel == "status":
            data = msg.get("data")
            if isinstance(data, list) and data and isinstance(data[0], dict):
                self.system_status = str(data[0].get("system", ""))
        elif msg.get("success") is False or "error" in msg:
            self.errors += 1
            method = msg.get("method", "request")
            symbol = msg.get("symbol")
            where = f" {symbol}" if symbol else ""
            req = f" (req_id {msg['req_id']})" if "req_id" in msg else ""
            self.last_error = _one_line(
                f"kraken {method}{where} failed: {msg.get('error', 'no error text')}{req}"
            )
        elif msg.get("method") == "pong":
            self.pongs += 1
        elif msg.get("method") in ("subscribe", "unsubscribe"):
            self.acks += 1

    # -- state -------------------------------------------------------------------------

    def counters(self) -> dict[str, int]:
        """Feed-level counters (the connection's are in ``ws.counters``, each book's in
        ``syncs[i].counters()``)."""
        return {
            "resubscribes": self.resubscribes,
            "snapshot_timeouts": self.snapshot_timeouts,
            "held_resubscribes": self.held_resubscribes,
            "acks": self.acks,
            "errors": self.errors,
            "pongs": self.pongs,
            "heartbeats": self.heartbeats,
            "internal_errors": self.internal_errors,
            "frames": self.router.frames,
            "frame_errors": self.router.frame_errors,
            "not_book": self.router.not_book,
            "unknown_symbols": self.router.unknown_symbols,
        }
