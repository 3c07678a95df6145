"""Simulated Kraken WebSocket v2 public endpoint (``/v2``): the ``book`` channel; and the
authenticated endpoint (``/v2-auth``, Kraken's ``wss://ws-auth.kraken.com/v2``): order entry
with ``add_order`` (``kraken_orders.py``: token from ``GetWebSocketsToken``), plus ``ping``.

The wire follows venues.md 3.1-3.2 and Kraken's v2 API reference:

* On connect, a ``status`` message: ``{"channel":"status","type":"update","data":[{"version":..,
  "system":"online","api_version":"v2","connection_id":..}]}``.
* ``{"method":"subscribe","params":{"channel":"book","symbol":[..],"depth":D,"snapshot":true},
  "req_id":N}`` is acknowledged once per symbol: ``{"method":"subscribe","result":{"channel":
  "book","depth":D,"snapshot":true,"symbol":S},"success":true,"time_in":..,"time_out":..,
  "req_id":N}`` (``req_id`` only when the request had one), then a ``snapshot`` of ``D`` levels
  a side. ``unsubscribe`` is acknowledged the same way. Failures are
  ``{"error":"..","method":..,"success":false,"symbol":S,"time_in":..,"time_out":..}``: an
  unknown pair ("Currency pair not supported BTC/XYZ"), a depth outside 10/25/100/500/1000,
  a channel other than ``book``, subscribing twice, unsubscribing what is not subscribed.
  Text that is not a JSON request object gets ``{"error":"Malformed request",..}``.
* ``{"method":"ping","req_id":N}`` is answered ``{"method":"pong","req_id":N,"time_in":..,
  "time_out":..}``. The server sends no protocol pings; instead a ``{"channel":"heartbeat"}``
  goes out about once a second on a connection with a subscription, when nothing else was
  sent in that second.
* ``book`` messages: ``{"channel":"book","type":"snapshot"|"update","data":[{"symbol":..,
  "bids":[{"price":45283.5,"qty":0.10000000},..],"asks":[..],"checksum":3310070434,
  "timestamp":"2023-10-06T17:35:55.440295Z"}]}``. Prices and quantities are JSON *numbers*
  written with the pair's fixed precision (``price_precision`` / ``qty_precision``, here the
  instrument's ``price_decimals`` / ``size_decimals``): never through a float. Some of
  Kraken's own examples show trimmed numbers (``"price":0.566``, ``"qty":18097.1547``):
  ``trim_numbers=True`` writes the shortest form instead, to show that a client does not
  depend on the wire text (the checksum is defined on the fixed-precision text either way).
* Each subscription sees the book truncated to its depth. An update carries the levels of that
  view that changed (new levels, new sizes) and ``qty: 0`` for levels *deleted* from the book;
  a level that merely falls out of the subscribed depth (pushed down by an insert) gets no
  ``qty: 0``, exactly as Kraken documents: the client must truncate to its depth after every
  message. A deletion inside the view brings the next level into scope, and that level is
  sent as an insert. A tick that leaves a subscription's view unchanged sends it nothing.
  (The model keeps ``instrument.depth`` levels, 100: a deeper subscription gets them all.)
* ``checksum``: Kraken's unsigned CRC-32 of the top 10 levels of the view (asks low to high,
  then bids high to low; each price and qty as sent, with the point removed and leading zeros
  stripped), computed here from the sim's own text (``kraken_checksum``), independently of
  the client's compiled implementation.

Kraken sends no sequence numbers: ``true_book(..).update_id`` counts the true book's changes,
only for tests. Faults: every per-message fault, ``CORRUPT_CHECKSUM`` (a different valid
checksum) and ``CROSSED_SNAPSHOT``; heartbeats are opportunities for ``DISCONNECT`` and
``SILENCE`` (as server pings are on the other venues), so an idle connection can be cut.
There is no ``SEQ_RESET`` (no sequence numbers); REST is only the private order API
(``kraken_orders.py``: snapshots come over the WebSocket), which takes ``REST_DELAY`` and
``REST_5XX``.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import web

from arbengine.venues.sim._server import Conn, SimVenue
from arbengine.venues.sim.exchange import SimExchange, SimMarket
from arbengine.venues.sim.faults import Fault
from arbengine.venues.sim.kraken_orders import KrakenOrders
from arbengine.venues.sim.model import (
    ASK,
    BID,
    Changes,
    DecimalText,
    FairMarket,
    ModelConfig,
    SimInstrument,
    crossed_levels,
)

__all__ = [
    "DEPTHS",
    "KRAKEN_INSTRUMENTS",
    "KrakenSim",
    "kraken_checksum",
    "kraken_checksum_text",
]

CHECKSUM_LEVELS = 10  # the checksum covers the top 10 levels whatever the depth
DEPTHS = (10, 25, 100, 500, 1000)
DEFAULT_DEPTH = 10
_CHANNEL = "book"
_HEARTBEAT = b'{"channel":"heartbeat"}'
_API_VERSION = "v2"
_SERVICE_VERSION = "2.0.10"

# The instrument channel / AssetPairs (2024): BTC/USD price_precision 1 (tick 0.1),
# qty_precision 8 (qty_increment 0.00000001); ETH/USD price_precision 2 (tick 0.01),
# qty_precision 8. Prices and quantities are written with exactly these decimals.
KRAKEN_INSTRUMENTS: dict[str, SimInstrument] = {
    "BTC/USD": SimInstrument("BTC/USD", "0.1", "0.00000001", 1, 8, "61737.6", "0.25", "BTC-USD"),
    "ETH/USD": SimInstrument("ETH/USD", "0.01", "0.00000001", 2, 8, "2650.00", "4", "ETH-USD"),
}

# AssetPairs ``ordermin`` (base) and ``costmin`` (quote) (2024).
KRAKEN_ORDER_MINIMUMS: dict[str, tuple[str, str]] = {
    "BTC/USD": ("0.00005", "0.5"),
    "ETH/USD": ("0.002", "0.5"),
}


def _digits(text: str) -> str:
    # "45285.2" -> "452852", "0.00100000" -> "100000", "45281.0" -> "452810".
    return text.replace(".", "").lstrip("0")


def kraken_checksum_text(
    bids: Sequence[Sequence[str]], asks: Sequence[Sequence[str]], levels: int = CHECKSUM_LEVELS
) -> str:
    """The text Kraken hashes: ``levels`` asks (best first), then as many bids, each price and
    qty written as sent with the point removed and leading zeros stripped."""
    return "".join(_digits(p) + _digits(q) for p, q, *_ in (*asks[:levels], *bids[:levels]))


def kraken_checksum(bids: Sequence[Sequence[str]], asks: Sequence[Sequence[str]]) -> int:
    """Kraken's book checksum: unsigned CRC-32 of ``kraken_checksum_text``. ``bids`` high to
    low and ``asks`` low to high, as ``(price, qty)`` text exactly as sent."""
    return zlib.crc32(kraken_checksum_text(bids, asks).encode())


def _corrupt(checksum: int) -> int:
    """A different valid unsigned 32-bit checksum (the CORRUPT_CHECKSUM fault)."""
    return checksum ^ 1


def _rfc3339_us(ns: int) -> str:
    """``2023-10-06T17:35:55.440295Z``: UTC, microseconds, as Kraken v2 writes times."""
    secs, rem = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{rem // 1000:06d}Z"


Levels = list[tuple[int, int]]


@dataclass
class _Subscription:
    """One symbol's book subscription on one connection: the view the client holds (as sent,
    so a crossed snapshot stays in it until the venue's own updates remove it)."""

    depth: int
    bids: dict[int, int] = field(default_factory=dict)
    asks: dict[int, int] = field(default_factory=dict)


def _view_diff(old: dict[int, int], new: Levels, book_side: dict[int, int]) -> Levels:
    """What an update carries for one side: levels of the new view that are new or resized,
    and ``qty 0`` for levels of the old view deleted from the book. Levels of the old view
    that are still in the book but out of scope are not sent: the client truncates them."""
    out = [(p, q) for p, q in new if old.get(p) != q]
    if len(old) > len(new) - len(out):  # some old levels are not in the new view
        in_view = {p for p, _ in new}
        out += [(p, 0) for p in old if p not in in_view and p not in book_side]
    return out


class KrakenSim(SimVenue):
    """A simulated Kraken WebSocket v2 on 127.0.0.1; see the module docstring."""

    venue = "kraken"
    # REST_DELAY and REST_5XX apply to the private REST order API (kraken_orders.py).
    supported_faults = frozenset(Fault) - {Fault.SEQ_RESET, Fault.REST_429, Fault.REST_418}

    def __init__(
        self,
        symbols: Sequence[str | SimInstrument] = ("BTC/USD",),
        *,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        interval_s: float = 0.1,
        fair: FairMarket | None = None,
        model: ModelConfig | None = None,
        replay: Mapping[str, Iterable[Iterable[tuple[str, str, str]]]] | None = None,
        heartbeat_s: float = 1.0,
        trim_numbers: bool = False,
    ) -> None:
        instruments = [
            s if isinstance(s, SimInstrument) else KRAKEN_INSTRUMENTS[s.upper()] for s in symbols
        ]
        for inst in instruments:
            if inst.price_decimals is None or inst.size_decimals is None:
                raise ValueError(f"{inst.symbol}: Kraken writes fixed decimals; give both")
        super().__init__(
            instruments,
            seed=seed,
            host=host,
            port=port,
            interval_s=interval_s,
            fair=fair,
            model=model,
            replay=replay,
            ping_interval_s=None,
            pong_timeout_s=None,
        )
        if heartbeat_s <= 0:
            raise ValueError("heartbeat_s must be positive")
        self.heartbeat_s = heartbeat_s
        self.trim_numbers = trim_numbers
        # The wire text of each symbol's prices and quantities: fixed precision, or trimmed.
        self._wire: dict[str, tuple[DecimalText, DecimalText]] = {
            s: (
                (DecimalText(i.tick, None), DecimalText(i.lot, None))
                if trim_numbers
                else (i.price, i.size)
            )
            for s, i in self.instruments.items()
        }
        self.heartbeats = 0
        self._changes = dict.fromkeys(self.instruments, 0)
        self._messages = dict.fromkeys(self.instruments, 0)
        # Order entry (kraken_orders.py): fees at the base tier's taker rate, in the quote.
        markets = {}
        for symbol, inst in self.instruments.items():
            base, _, quote = symbol.partition("/")
            min_size, min_cost = KRAKEN_ORDER_MINIMUMS.get(symbol, ("0", "0"))
            markets[symbol] = SimMarket(inst, base, quote, min_size, min_cost)
        self.exchange = SimExchange(
            markets, lambda symbol: self.sources[symbol].book, faults=self.faults, fee_bps="40"
        )
        self.orders = KrakenOrders(self)

    @property
    def ws_url(self) -> str:
        """Like ``wss://ws.kraken.com/v2``."""
        return "ws" + self.base_http.removeprefix("http") + "/v2"

    @property
    def ws_auth_url(self) -> str:
        """Like ``wss://ws-auth.kraken.com/v2``: order entry with a ``GetWebSocketsToken``
        token (kraken_orders.py); Kraken serves it on its own host, the sim on a path."""
        return "ws" + self.base_http.removeprefix("http") + "/v2-auth"

    def _routes(self, app: web.Application) -> None:
        app.router.add_get("/v2", self._ws_handler)
        app.router.add_get("/v2-auth", self._ws_handler)
        self.orders.routes(app)

    def _update_id(self, symbol: str) -> int:
        return self._changes[symbol]

    # -- client frames ---------------------------------------------------------------------

    def _on_open(self, conn: Conn, request: web.Request) -> None:
        conn.state["subs"] = {}
        conn.state["auth"] = request.path == "/v2-auth"
        conn.state["last_push"] = time.monotonic()
        status = {
            "channel": "status",
            "type": "update",
            "data": [
                {
                    "version": _SERVICE_VERSION,
                    "system": "online",
                    "api_version": _API_VERSION,
                    "connection_id": int(conn.id, 16),
                }
            ],
        }
        self._send_control(conn, orjson.dumps(status))

    def _reply(self, conn: Conn, body: dict[str, Any], time_in: str, req_id: Any) -> None:
        body["time_in"] = time_in
        body["time_out"] = _rfc3339_us(time.time_ns())
        if req_id is not None:
            body["req_id"] = req_id
        self._send_control(conn, orjson.dumps(body))

    def _send_error(
        self,
        conn: Conn,
        method: str | None,
        error: str,
        time_in: str,
        req_id: Any,
        symbol: str | None = None,
    ) -> None:
        body: dict[str, Any] = {"error": error}
        if method is not None:
            body["method"] = method
        body["success"] = False
        if symbol is not None:
            body["symbol"] = symbol
        self._reply(conn, body, time_in, req_id)

    def _on_text(self, conn: Conn, text: str) -> None:
        time_in = _rfc3339_us(time.time_ns())
        try:
            request = orjson.loads(text)
        except orjson.JSONDecodeError:
            request = None
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            self._send_error(conn, None, "Malformed request", time_in, None)
            return
        method: str = request["method"]
        req_id = request.get("req_id")
        if req_id is not None and (not isinstance(req_id, int) or isinstance(req_id, bool)):
            self._send_error(
                conn, method, "Malformed request: req_id must be an integer", time_in, None
            )
            return
        if method == "ping":
            self._reply(conn, {"method": "pong"}, time_in, req_id)
        elif method == "add_order" and conn.state["auth"]:
            # Again with exact decimals: order_qty and limit_price are JSON numbers.
            self.orders.on_ws_add_order(conn, json.loads(text, parse_float=Decimal), time_in)
        elif method in ("subscribe", "unsubscribe"):
            self._on_subscription(conn, method, request.get("params"), time_in, req_id)
        else:
            self._send_error(conn, method, f"Method not supported: {method[:50]}", time_in, req_id)

    def _on_subscription(
        self, conn: Conn, method: str, params: Any, time_in: str, req_id: Any
    ) -> None:
        if not isinstance(params, dict):
            self._send_error(conn, method, "Missing params", time_in, req_id)
            return
        channel = params.get("channel")
        if channel != _CHANNEL:
            self._send_error(
                conn, method, f"Channel not supported: {channel!s:.50}", time_in, req_id
            )
            return
        symbols = params.get("symbol")
        if (
            not isinstance(symbols, list)
            or not symbols
            or not all(isinstance(s, str) for s in symbols)
        ):
            self._send_error(
                conn, method, "Invalid symbol: a list of pairs is required", time_in, req_id
            )
            return
        depth = params.get("depth", DEFAULT_DEPTH)
        if depth not in DEPTHS or isinstance(depth, bool):
            self._send_error(conn, method, f"Invalid depth: {depth!s:.20}", time_in, req_id)
            return
        snapshot = params.get("snapshot", True)
        if not isinstance(snapshot, bool):
            self._send_error(conn, method, "Invalid snapshot: must be a boolean", time_in, req_id)
            return
        subs: dict[str, _Subscription] = conn.state["subs"]
        for symbol in symbols:
            if symbol not in self.instruments:
                self._send_error(
                    conn, method, f"Currency pair not supported {symbol}", time_in, req_id, symbol
                )
                continue
            result: dict[str, Any] = {"channel": _CHANNEL, "depth": depth}
            if method == "subscribe":
                if symbol in subs:
                    self._send_error(conn, method, "Already subscribed", time_in, req_id, symbol)
                    continue
                result |= {"snapshot": snapshot, "symbol": symbol}
                self._reply(
                    conn, {"method": method, "result": result, "success": True}, time_in, req_id
                )
                sub = _Subscription(depth)
                subs[symbol] = sub
                if snapshot:
                    self._send_snapshot(conn, symbol, sub)
                else:  # no snapshot: updates start from the current view
                    book = self.sources[symbol].book
                    sub.bids = dict(book.levels(BID, depth))
                    sub.asks = dict(book.levels(ASK, depth))
            else:
                if symbol not in subs:
                    self._send_error(
                        conn, method, "Subscription Not Found", time_in, req_id, symbol
                    )
                    continue
                result["depth"] = subs.pop(symbol).depth
                result["symbol"] = symbol
                self._reply(
                    conn, {"method": method, "result": result, "success": True}, time_in, req_id
                )

    # -- pushes ----------------------------------------------------------------------------

    def _levels_json(self, symbol: str, levels: Iterable[tuple[int, int]]) -> bytes:
        price, size = self._wire[symbol]
        px, sz = price.format, size.format
        body = b",".join(
            b'{"price":%s,"qty":%s}' % (px(p).encode(), sz(q).encode()) for p, q in levels
        )
        return b"[" + body + b"]"

    def _checksum(self, inst: SimInstrument, bids: Levels, asks: Levels) -> int:
        """The checksum of a view (best first), from the text the wire carries."""
        px, sz = inst.price.format, inst.size.format
        n = CHECKSUM_LEVELS
        return kraken_checksum(
            [(px(p), sz(q)) for p, q in bids[:n]], [(px(p), sz(q)) for p, q in asks[:n]]
        )

    def _push(
        self,
        conn: Conn,
        symbol: str,
        kind: str,
        bids: Levels,
        asks: Levels,
        checksum: int,
        timestamp: str,
    ) -> None:
        self._messages[symbol] += 1
        detail = f"{symbol} {kind} #{self._messages[symbol]}"
        if self.faults.take(Fault.CORRUPT_CHECKSUM, symbol, detail):
            checksum = _corrupt(checksum)
        data = {
            "symbol": symbol,
            "bids": orjson.Fragment(self._levels_json(symbol, bids)),
            "asks": orjson.Fragment(self._levels_json(symbol, asks)),
            "checksum": checksum,
            "timestamp": timestamp,
        }
        payload = orjson.dumps({"channel": _CHANNEL, "type": kind, "data": [data]})
        conn.state["last_push"] = time.monotonic()
        self._send_data(conn, payload, symbol, detail)

    def _send_snapshot(self, conn: Conn, symbol: str, sub: _Subscription) -> None:
        book, depth = self.sources[symbol].book, sub.depth
        bids, asks = book.levels(BID, depth), book.levels(ASK, depth)
        if self.faults.take(Fault.CROSSED_SNAPSHOT, symbol, f"{symbol} snapshot"):
            # Still `depth` levels a side: the crossing bid pushes the worst one out.
            bids, asks = crossed_levels(bids, asks)
            bids, asks = bids[:depth], asks[:depth]
        sub.bids, sub.asks = dict(bids), dict(asks)
        # The checksum covers the levels as sent, so a crossed snapshot still "verifies":
        # only a crossed-book check catches it.
        checksum = self._checksum(self.instruments[symbol], bids, asks)
        self._push(conn, symbol, "snapshot", bids, asks, checksum, _rfc3339_us(time.time_ns()))

    def _publish(self, symbol: str, changes: Changes, now_ns: int) -> None:
        if not changes:
            return
        self._changes[symbol] += 1
        subscribed = [
            (conn, conn.state["subs"][symbol])
            for conn in self.conns
            if symbol in conn.state.get("subs", ())
        ]
        if not subscribed:
            return
        book = self.sources[symbol].book
        inst = self.instruments[symbol]
        views: dict[int, tuple[Levels, Levels]] = {}
        checksum: int | None = None
        timestamp = _rfc3339_us(time.time_ns())
        for conn, sub in subscribed:
            view = views.get(sub.depth)
            if view is None:
                view = views[sub.depth] = (
                    book.levels(BID, sub.depth),
                    book.levels(ASK, sub.depth),
                )
            bids, asks = view
            bid_changes = _view_diff(sub.bids, bids, book.bids)
            ask_changes = _view_diff(sub.asks, asks, book.asks)
            sub.bids, sub.asks = dict(bids), dict(asks)
            if not bid_changes and not ask_changes:
                continue  # nothing changed within this subscription's depth
            if checksum is None:  # every depth is >= 10: the same top 10 for all views
                checksum = self._checksum(inst, bids, asks)
            bid_changes.sort(reverse=True)
            ask_changes.sort()
            self._push(conn, symbol, "update", bid_changes, ask_changes, checksum, timestamp)

    def _housekeeping(self, now: float) -> None:
        for conn in list(self.conns):
            if not conn.state.get("subs") or now - conn.state["last_push"] < self.heartbeat_s:
                continue
            conn.state["last_push"] = now
            # A heartbeat is this venue's chance for connection faults on an idle connection.
            if self.faults.take(Fault.DISCONNECT, None, "at heartbeat"):
                self._abort(conn)
                continue
            rule = self.faults.take(Fault.SILENCE, None, "at heartbeat")
            if rule is not None:
                conn.silent_until = now + rule.seconds
                continue
            self.heartbeats += 1
            self._send_control(conn, _HEARTBEAT)
