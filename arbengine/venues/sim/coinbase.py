"""Simulated Coinbase Advanced Trade market data WebSocket (``level2``, ``heartbeats``) and the
REST product book.

The wire follows venues.md 2.1 (lower confidence than the other venues; where the docs are
silent the choice is stated here):

* WebSocket at ``/``. Requests: ``{"type":"subscribe"|"unsubscribe","product_ids":[..],
  "channel":"level2"|"heartbeats","jwt":".."}``, one channel per request. Every accepted
  request is answered with a ``subscriptions`` message listing all of the connection's
  subscriptions (``{"level2":["BTC-USD"],"heartbeats":["heartbeats"]}``). A refused one gets
  ``{"type":"error","message":..}`` and changes nothing: unknown product (one bad product
  refuses the whole request), channel or type, bad JSON, or a ``jwt`` that is not three
  dot-separated parts (the signature is not checked).
* Every message (not errors) has the envelope ``{"channel","client_id":"","timestamp",
  "sequence_num","events"}``. ``sequence_num`` belongs to the connection: it starts at 0 and
  grows by 1 per message on every channel (subscriptions replies and heartbeats included),
  so a lost message of any channel shows as a gap, and it keeps counting across
  resubscribes.
* ``level2``: after the ``subscriptions`` reply, one ``l2_data`` message per product with a
  ``snapshot`` event holding the whole book; then one ``update`` event per model tick in
  which that book changed. Each event is its own message. ``updates`` entries are
  ``{"side":"bid"|"offer","event_time":RFC 3339 ns,"price_level","new_quantity"}``, with
  absolute sizes in trimmed text and "0" to delete. Subscribing to a product that is already
  subscribed only replies, without a new snapshot: a client that wants one unsubscribes first.
* ``heartbeats``: every ``heartbeat_interval_s`` (1 s) while subscribed, with
  ``current_time`` (Go time text) and an integer ``heartbeat_counter`` per connection. It
  needs no products.
* A connection that has been sent nothing for ``idle_close_s`` (a draw from 60-90 s per
  connection, like the venue's quiet channels) is closed. Heartbeats prevent that.
* ``GET /api/v3/brokerage/product_book?product_id=&limit=``: ``{"pricebook":{"product_id",
  "bids":[{"price","size"}],"asks":[..],"time"},"last","mid_market","spread_bps",
  "spread_absolute"}``. No trades are modelled, so ``last`` is the best bid.
* The brokerage order API (signed with CDP JWTs) is ``coinbase_orders.py``, on the same
  app, backed by ``self.exchange``.

Faults (see faults.py): every message goes through the per-message faults (DROP, DUPLICATE,
REORDER, MALFORMED, TRUNCATED, DISCONNECT, SILENCE; heartbeats too, with no symbol), and
subscriptions replies through silence only. CROSSED_SNAPSHOT applies to WebSocket snapshots
and the REST book. REST_DELAY, REST_429 and REST_5XX apply to the REST book (and the order
API). There is no checksum (CORRUPT_CHECKSUM) and no venue-side sequence reset (SEQ_RESET):
sequence_num is per connection, so a reset is simply a new connection.

``true_book(symbol).update_id`` is the product's change count: Coinbase has no per-product
id. ``caught_up_sequence`` says which ``sequence_num`` a client's book must be at to equal
the true book now.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple

import orjson
from aiohttp import web

from arbengine.venues.sim._server import Conn, SimVenue
from arbengine.venues.sim.coinbase_orders import CoinbaseOrders
from arbengine.venues.sim.exchange import SimExchange, SimMarket
from arbengine.venues.sim.faults import Fault
from arbengine.venues.sim.model import (
    ASK,
    BID,
    Changes,
    FairMarket,
    ModelConfig,
    SimInstrument,
    crossed_levels,
)

__all__ = ["COINBASE_INSTRUMENTS", "CoinbaseSim", "SimRequest"]

# Product specs (quote_increment, base_increment) as /api/v3/brokerage/products gives them.
# Texts are trimmed ("61737.6", "0.25"). The fair price is keyed by asset: USD and USDT
# quotes share it ("BTC-USDT"), so a Coinbase book follows the same BTC price as the OKX
# and Binance ones, and a cross-venue spread comes from each venue's own offset on top.
COINBASE_INSTRUMENTS: dict[str, SimInstrument] = {
    "BTC-USD": SimInstrument(
        "BTC-USD", "0.01", "0.00000001", None, None, "61737.60", "0.25", "BTC-USDT"
    ),
    "ETH-USD": SimInstrument(
        "ETH-USD", "0.01", "0.00000001", None, None, "2650.00", "4", "ETH-USDT"
    ),
}
# Products' base_min_size and quote_min_size (2024).
COINBASE_ORDER_MINIMUMS: dict[str, tuple[str, str]] = {
    "BTC-USD": ("0.00000001", "1"),
    "ETH-USD": ("0.00000001", "1"),
}

LEVEL2 = "level2"
HEARTBEATS = "heartbeats"
_L2_CHANNEL = "l2_data"  # what level2 messages carry as their channel


def rfc3339(ns: int) -> str:
    """Wall-clock ns as RFC 3339 UTC with nanoseconds, like Coinbase's event_time."""
    seconds, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{frac:09d}Z"


def _go_time(ns: int, mono_s: float) -> str:
    # heartbeats' current_time is Go's time.Time.String(): "... +0000 UTC m=+<monotonic>".
    seconds, frac = divmod(ns, 1_000_000_000)
    day = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))
    return f"{day}.{frac:09d} +0000 UTC m=+{mono_s:.9f}"


class SimRequest(NamedTuple):
    """One client request as the simulator understood it (tests assert on these)."""

    type: str
    channel: str
    product_ids: tuple[str, ...]
    has_jwt: bool
    accepted: bool


@dataclass
class _Sent:
    seq: int  # sequence_num of the last l2_data message for the product
    version: int  # the product's change count when it was built


@dataclass
class _ConnState:
    idle_close_s: float | None
    last_message: float  # time.monotonic() when the last message was built
    seq: int = -1  # last sequence_num given out
    level2: set[str] = field(default_factory=set)
    heartbeats: bool = False
    heartbeat_counter: int = 0
    last_heartbeat: float = 0.0
    closing: bool = False
    sent: dict[str, _Sent] = field(default_factory=dict)


def _jwt_shaped(token: object) -> bool:
    if not isinstance(token, str):
        return False
    parts = token.split(".")
    return len(parts) == 3 and all(parts)


class CoinbaseSim(SimVenue):
    """A simulated Coinbase Advanced Trade venue on 127.0.0.1; see the module docstring."""

    venue = "coinbase"
    supported_faults = frozenset(Fault) - {
        Fault.CORRUPT_CHECKSUM,
        Fault.SEQ_RESET,
        Fault.REST_418,
        Fault.ORDER_418,  # Coinbase answers 429, never 418
    }

    def __init__(
        self,
        symbols: Sequence[str | SimInstrument] = ("BTC-USD",),
        *,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        interval_s: float = 0.1,
        fair: FairMarket | None = None,
        model: ModelConfig | None = None,
        replay: Mapping[str, Iterable[Iterable[tuple[str, str, str]]]] | None = None,
        heartbeat_interval_s: float = 1.0,
        idle_close_s: float | tuple[float, float] | None = (60.0, 90.0),
    ) -> None:
        instruments = [
            s if isinstance(s, SimInstrument) else COINBASE_INSTRUMENTS[s.upper()] for s in symbols
        ]
        super().__init__(
            instruments,
            seed=seed,
            host=host,
            port=port,
            interval_s=interval_s,
            fair=fair,
            model=model,
            replay=replay,
            ping_interval_s=None,  # Coinbase keeps connections alive with heartbeats
            pong_timeout_s=None,
        )
        if heartbeat_interval_s <= 0:
            raise ValueError("heartbeat_interval_s must be positive")
        self._idle_range: tuple[float, float] | None = None
        if idle_close_s is not None:
            low, high = (
                (idle_close_s, idle_close_s)
                if isinstance(idle_close_s, int | float)
                else idle_close_s
            )
            if not 0 < low <= high:
                raise ValueError(f"idle_close_s needs 0 < low <= high, got {idle_close_s!r}")
            self._idle_range = (float(low), float(high))
        self.heartbeat_interval_s = heartbeat_interval_s
        self._versions = dict.fromkeys(self.instruments, 0)
        self.requests: list[SimRequest] = []
        self.idle_closes = 0
        self._closers: set[asyncio.Task[None]] = set()
        # Order entry (coinbase_orders.py): taker fees of the lowest volume tier, in the quote.
        markets = {}
        for symbol, inst in self.instruments.items():
            base, _, quote = symbol.partition("-")
            min_size, min_quote = COINBASE_ORDER_MINIMUMS.get(symbol, ("0", "0"))
            markets[symbol] = SimMarket(inst, base, quote, min_size, min_quote)
        self.exchange = SimExchange(
            markets, lambda symbol: self.sources[symbol].book, faults=self.faults, fee_bps="120"
        )
        self.orders = CoinbaseOrders(self)

    @property
    def ws_url(self) -> str:
        """Like ``wss://advanced-trade-ws.coinbase.com``."""
        return "ws" + self.base_http.removeprefix("http")

    def _routes(self, app: web.Application) -> None:
        app.router.add_get("/", self._ws_handler)
        app.router.add_get("/api/v3/brokerage/product_book", self._rest_product_book)
        self.orders.routes(app)

    def _update_id(self, symbol: str) -> int:
        return self._versions[symbol]

    # -- what tests read ---------------------------------------------------------------------

    def _only_conn(self) -> _ConnState | None:
        if len(self.conns) != 1:
            return None
        (conn,) = self.conns
        return self._st(conn)

    def connection_sequence(self) -> int | None:
        """The last sequence_num given out on the only connection (None unless exactly one)."""
        st = self._only_conn()
        return None if st is None else st.seq

    def caught_up_sequence(self, symbol: str) -> int | None:
        """The sequence_num of the last ``symbol`` message on the only connection, if the
        true book has not changed since: a client whose book is LIVE at that sequence_num
        must hold exactly the true book. None when there is not exactly one connection,
        the product is not subscribed on it, or the book moved without a message to say so
        (unsubscribed meanwhile)."""
        st = self._only_conn()
        if st is None or symbol not in st.level2:
            return None
        sent = st.sent.get(symbol)
        if sent is None or sent.version != self._versions[symbol]:
            return None
        return sent.seq

    # -- messages ----------------------------------------------------------------------------

    @staticmethod
    def _st(conn: Conn) -> _ConnState:
        st: _ConnState = conn.state["coinbase"]
        return st

    def _envelope(self, st: _ConnState, channel: str, events: list[Any], ts: str) -> bytes:
        st.seq += 1
        st.last_message = time.monotonic()
        return orjson.dumps(
            {
                "channel": channel,
                "client_id": "",
                "timestamp": ts,
                "sequence_num": st.seq,
                "events": events,
            }
        )

    def _send_error(self, conn: Conn, message: str) -> None:
        # Errors are not envelope messages: no sequence_num, so they leave no gap.
        self._send_control(conn, orjson.dumps({"type": "error", "message": message}))

    def _send_subscriptions(self, conn: Conn) -> None:
        st = self._st(conn)
        subs: dict[str, list[str]] = {}
        if st.level2:
            subs[LEVEL2] = sorted(st.level2)
        if st.heartbeats:
            subs[HEARTBEATS] = [HEARTBEATS]
        payload = self._envelope(
            st, "subscriptions", [{"subscriptions": subs}], rfc3339(time.time_ns())
        )
        self._send_control(conn, payload)

    def _updates(
        self,
        bids: Iterable[tuple[int, int]],
        asks: Iterable[tuple[int, int]],
        inst: SimInstrument,
        ts: str,
    ) -> list[dict[str, str]]:
        px, sz = inst.price.format, inst.size.format
        out = [
            {"side": "bid", "event_time": ts, "price_level": px(p), "new_quantity": sz(q)}
            for p, q in bids
        ]
        out += [
            {"side": "offer", "event_time": ts, "price_level": px(p), "new_quantity": sz(q)}
            for p, q in asks
        ]
        return out

    def _send_l2(
        self, conn: Conn, symbol: str, kind: str, updates: list[dict[str, str]], ts: str
    ) -> None:
        st = self._st(conn)
        event = {"type": kind, "product_id": symbol, "updates": updates}
        payload = self._envelope(st, _L2_CHANNEL, [event], ts)
        st.sent[symbol] = _Sent(st.seq, self._versions[symbol])
        self._send_data(conn, payload, symbol, f"{symbol} {kind} sequence_num={st.seq}")

    def _send_snapshot(self, conn: Conn, symbol: str) -> None:
        book = self.sources[symbol].book
        bids, asks = book.levels(BID), book.levels(ASK)
        st = self._st(conn)
        if self.faults.take(Fault.CROSSED_SNAPSHOT, symbol, f"{symbol} sequence_num={st.seq + 1}"):
            bids, asks = crossed_levels(bids, asks)
        ts = rfc3339(time.time_ns())
        self._send_l2(
            conn, symbol, "snapshot", self._updates(bids, asks, self.instruments[symbol], ts), ts
        )

    def _publish(self, symbol: str, changes: Changes, now_ns: int) -> None:
        if not changes:
            return
        self._versions[symbol] += 1
        conns = [c for c in self.conns if symbol in self._st(c).level2]
        if not conns:
            return
        ts = rfc3339(time.time_ns())
        updates = self._updates(changes.bids, changes.asks, self.instruments[symbol], ts)
        for conn in conns:
            self._send_l2(conn, symbol, "update", updates, ts)

    def _housekeeping(self, now: float) -> None:
        for conn in list(self.conns):
            st = self._st(conn)
            if st.heartbeats and now - st.last_heartbeat >= self.heartbeat_interval_s:
                st.last_heartbeat = now
                st.heartbeat_counter += 1
                wall = time.time_ns()
                event = {
                    "current_time": _go_time(wall, now),
                    "heartbeat_counter": st.heartbeat_counter,
                }
                payload = self._envelope(st, HEARTBEATS, [event], rfc3339(wall))
                self._send_data(conn, payload, "", f"heartbeat sequence_num={st.seq}")
            idle = st.idle_close_s
            if idle is not None and not st.closing and now - st.last_message > idle:
                st.closing = True
                self.idle_closes += 1
                task = asyncio.get_running_loop().create_task(self._close_idle(conn))
                self._closers.add(task)
                task.add_done_callback(self._closers.discard)

    async def _close_idle(self, conn: Conn) -> None:
        try:
            await asyncio.wait_for(conn.ws.close(code=1000, message=b"idle connection"), 1.0)
        except (TimeoutError, ConnectionError, RuntimeError):
            self._abort(conn)

    # -- client frames -----------------------------------------------------------------------

    def _on_open(self, conn: Conn, request: web.Request) -> None:
        idle = None if self._idle_range is None else self.rng.uniform(*self._idle_range)
        conn.state["coinbase"] = _ConnState(idle_close_s=idle, last_message=time.monotonic())

    def _on_text(self, conn: Conn, text: str) -> None:
        try:
            request = orjson.loads(text)
        except orjson.JSONDecodeError:
            self._send_error(conn, "failure to parse request: malformed JSON")
            return
        if not isinstance(request, dict):
            self._send_error(conn, "failure to parse request: not a JSON object")
            return
        op, channel = request.get("type"), request.get("channel")
        products = request.get("product_ids", [])
        has_jwt = "jwt" in request
        ok_products = isinstance(products, list) and all(isinstance(p, str) for p in products)
        record = SimRequest(
            str(op),
            str(channel),
            tuple(products) if ok_products else (),
            has_jwt,
            accepted=False,
        )
        error = self._refusal(op, channel, products if ok_products else None, request)
        if error:
            self.requests.append(record)
            self._send_error(conn, error)
            return
        self.requests.append(record._replace(accepted=True))
        st = self._st(conn)
        if channel == HEARTBEATS:
            st.heartbeats = op == "subscribe"
            st.last_heartbeat = time.monotonic()
            self._send_subscriptions(conn)
            return
        if op == "unsubscribe":
            st.level2.difference_update(products)
            for product in products:
                st.sent.pop(product, None)
            self._send_subscriptions(conn)
            return
        new = [p for p in dict.fromkeys(products) if p not in st.level2]
        st.level2.update(new)
        self._send_subscriptions(conn)
        for product in new:
            self._send_snapshot(conn, product)

    def _refusal(
        self, op: object, channel: object, products: list[str] | None, request: dict[str, Any]
    ) -> str:
        """Why a request is refused ("" when it is accepted)."""
        if op not in ("subscribe", "unsubscribe"):
            return f"failure to parse request: unknown type {str(op)[:50]!r}"
        if channel not in (LEVEL2, HEARTBEATS):
            return f"failure to subscribe: unsupported channel {str(channel)[:50]!r}"
        if "jwt" in request and not _jwt_shaped(request["jwt"]):
            return "authentication failure: malformed JWT"
        if products is None:
            return "failure to subscribe: product_ids must be a list of strings"
        if channel == LEVEL2:
            if not products:
                return "failure to subscribe: level2 needs at least one product_id"
            unknown = [p for p in products if p not in self.instruments]
            if unknown:
                return f"failure to subscribe: unknown product_id {unknown[0][:50]}"
        return ""

    # -- REST --------------------------------------------------------------------------------

    def _rest_error(self, status: int, headers: Mapping[str, str]) -> web.Response:
        if status == 429:
            body = {"error": "RATE_LIMIT_EXCEEDED", "message": "Too many requests"}
        else:
            body = {"error": "INTERNAL", "message": "Internal server error"}
        return web.Response(
            status=status,
            body=orjson.dumps(body | {"error_details": body["message"]}),
            headers=dict(headers),
            content_type="application/json",
        )

    async def _rest_product_book(self, request: web.Request) -> web.StreamResponse:
        symbol = request.query.get("product_id", "")
        failed = await self._rest_faults(symbol or None)
        if failed is not None:
            return failed

        def reply(body: dict[str, Any], status: int = 200) -> web.Response:
            return web.Response(
                status=status, body=orjson.dumps(body), content_type="application/json"
            )

        def refuse(status: int, error: str, message: str) -> web.Response:
            body = {"error": error, "error_details": message, "message": message}
            return reply(body, status)

        if not symbol:
            return refuse(400, "INVALID_ARGUMENT", "product_id is required")
        if symbol not in self.instruments:
            return refuse(404, "NOT_FOUND", "ProductID is invalid")
        limit_text = request.query.get("limit")
        limit: int | None = None
        if limit_text is not None:
            if not limit_text.isascii() or not limit_text.isdigit() or int(limit_text) < 1:
                return refuse(400, "INVALID_ARGUMENT", f"invalid limit {limit_text[:20]!r}")
            limit = int(limit_text)
        book = self.sources[symbol].book
        bids, asks = book.levels(BID, limit), book.levels(ASK, limit)
        if self.faults.take(Fault.CROSSED_SNAPSHOT, symbol, f"{symbol} REST"):
            bids, asks = crossed_levels(bids, asks)
        inst = self.instruments[symbol]
        px, sz = inst.price.format, inst.size.format
        body: dict[str, Any] = {
            "pricebook": {
                "product_id": symbol,
                "bids": [{"price": px(p), "size": sz(q)} for p, q in bids],
                "asks": [{"price": px(p), "size": sz(q)} for p, q in asks],
                "time": rfc3339(time.time_ns()),
            }
        }
        if bids and asks:
            bid, ask = Decimal(px(bids[0][0])), Decimal(px(asks[0][0]))
            mid = (bid + ask) / 2
            body |= {
                "last": px(bids[0][0]),
                "mid_market": str(mid),
                "spread_bps": f"{(ask - bid) / mid * 10_000:.4f}",
                "spread_absolute": str(ask - bid),
            }
        return reply(body)

    async def stop(self) -> None:
        for task in list(self._closers):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await super().stop()
