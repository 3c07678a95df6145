"""Simulated Binance: diff-depth WebSocket streams and the REST depth snapshot, one server.

One ``BinanceSim`` is one market, like one Binance host: ``market="spot"`` serves what
stream.binance.com and api.binance.com serve, ``market="usdm"`` what fstream/fapi serve.
The wire follows venues.md 1.1-1.3:

* ``/ws/<symbol>@depth[@100ms]`` (raw payloads), ``/stream?streams=a/b`` (combined
  ``{"stream":..,"data":..}`` envelopes), and ``/ws`` + ``{"method":"SUBSCRIBE",...}`` frames
  answered ``{"result":null,"id":..}``. Also UNSUBSCRIBE and LIST_SUBSCRIPTIONS.
* ``depthUpdate`` events: ``E`` (ms), ``U``/``u`` spanning exactly the event's number of level
  changes, absolute sizes, deletes as size zero in the instrument's fixed decimals
  ("0.00000000"). Spot: ``U == previous u + 1``. USDⓈ-M: events also carry ``T`` and
  ``pu == previous u``, and ids jump by a few between events (unpublished internal updates,
  as in real fapi data), so only ``pu`` proves continuity there.
* ``@depth@100ms`` (and futures ``@0ms``) events come every model tick; slower speeds
  (spot ``@depth`` = 1000 ms, futures ``@depth`` = 250 ms, ``@500ms``) merge ``ceil(ms/100)``
  ticks into one event, keeping the first ``U`` and the last ``u``.
* ``GET /api/v3/depth`` (spot) / ``/fapi/v1/depth`` (usdm) ``?symbol=&limit=``: the true
  book's top ``limit`` levels and ``lastUpdateId`` = the ``u`` of the last change in it
  (futures add ``E`` and ``T``), with ``X-MBX-USED-WEIGHT-1M``. Also ``ping`` and ``time``.
* Order entry (``binance_orders.py``): the SIGNED order, query, cancel, open-orders,
  account/balance, positions and trades endpoints, and the WebSocket API's ``order.place``
  (spot at ``/ws-api/v3``, USDⓈ-M at ``/ws-fapi/v1``: ``ws_api_url``), backed by
  ``self.exchange`` (a ``SimExchange`` with the venue's order rules and fees). ``time``
  answers on the venue's clock, ``skew_ms`` included.
* The server pings every ``ping_interval_s`` (20 s) and drops a client that has not ponged
  for ``pong_timeout_s`` (60 s).
* Connection limits: a client sending more than ``max_client_msgs_per_s`` (5) frames in any
  second (pings, pongs and requests alike) is disconnected; a connection holds at most
  ``MAX_STREAMS`` (1024) streams, beyond which a SUBSCRIBE is refused.
"""

from __future__ import annotations

import math
import re
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from aiohttp import web

from arbengine.venues.sim._server import Conn, SimVenue
from arbengine.venues.sim.binance_orders import BinanceOrderApi
from arbengine.venues.sim.exchange import SimExchange, SimMarket
from arbengine.venues.sim.faults import Fault
from arbengine.venues.sim.model import (
    ASK,
    BID,
    BINANCE_SPOT,
    BINANCE_USDM,
    Changes,
    FairMarket,
    ModelConfig,
    SimInstrument,
    crossed_levels,
)

__all__ = ["BinanceSim"]

Market = Literal["spot", "usdm"]

_STREAM = re.compile(r"^([a-z0-9_]+)@depth(?:@([0-9]+)ms)?$")
# Update speeds each market accepts (ms; None = the plain "@depth" name).
_SPEEDS: dict[Market, dict[int | None, int]] = {
    "spot": {None: 1000, 100: 100, 1000: 1000},
    "usdm": {None: 250, 0: 0, 100: 100, 250: 250, 500: 500},
}
_BASE_MS = 100  # one model tick is the 100 ms cadence
_FUTURES_LIMITS = (5, 10, 20, 50, 100, 500, 1000)
# Order rules (exchangeInfo LOT_SIZE minQty and NOTIONAL / MIN_NOTIONAL filters):
# symbol -> (base, quote, min size, min notional).
_RULES: dict[Market, dict[str, tuple[str, str, str, str]]] = {
    "spot": {
        "BTCUSDT": ("BTC", "USDT", "0.00001", "5"),
        "ETHUSDT": ("ETH", "USDT", "0.0001", "5"),
    },
    "usdm": {
        "BTCUSDT": ("BTC", "USDT", "0.001", "100"),
        "ETHUSDT": ("ETH", "USDT", "0.001", "20"),
    },
}
MAX_STREAMS = 1024  # per connection


@dataclass
class _Event:
    tick: int
    pu: int  # u of the previous event
    first: int  # U
    last: int  # u
    changes: Changes
    event_ms: int  # E
    trade_ms: int  # T (futures)


@dataclass
class _SymbolState:
    last_u: int
    tick: int = 0
    history: deque[_Event] = field(default_factory=lambda: deque(maxlen=16))


def _error(code: int, msg: str) -> bytes:
    return orjson.dumps({"code": code, "msg": msg})


class BinanceSim(SimVenue):
    """A simulated Binance spot or USDⓈ-M market on 127.0.0.1; see the module docstring."""

    venue = "binance"
    supported_faults = frozenset(Fault) - {Fault.CORRUPT_CHECKSUM, Fault.SEQ_RESET}

    def __init__(
        self,
        symbols: Sequence[str | SimInstrument] = ("BTCUSDT",),
        *,
        market: Market = "spot",
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        interval_s: float = 0.1,
        fair: FairMarket | None = None,
        model: ModelConfig | None = None,
        replay: Mapping[str, Iterable[Iterable[tuple[str, str, str]]]] | None = None,
        ping_interval_s: float | None = 20.0,
        pong_timeout_s: float | None = 60.0,
        first_update_id: int | None = None,
        max_client_msgs_per_s: int = 5,
    ) -> None:
        if market not in _SPEEDS:
            raise ValueError(f"market must be 'spot' or 'usdm', not {market!r}")
        self.market: Market = market
        specs = BINANCE_SPOT if market == "spot" else BINANCE_USDM
        instruments = [s if isinstance(s, SimInstrument) else specs[s.upper()] for s in symbols]
        self.venue = f"binance-{market}"
        super().__init__(
            instruments,
            seed=seed,
            host=host,
            port=port,
            interval_s=interval_s,
            fair=fair,
            model=model,
            replay=replay,
            ping_interval_s=ping_interval_s,
            pong_timeout_s=pong_timeout_s,
        )
        start = first_update_id if first_update_id is not None else self.rng.randint(10**9, 10**10)
        self._state = {s: _SymbolState(last_u=start - 1) for s in self.instruments}
        self.depth_path = "/api/v3/depth" if market == "spot" else "/fapi/v1/depth"
        # ws-api.binance.com/ws-api/v3 (spot), ws-fapi.binance.com/ws-fapi/v1 (USDⓈ-M).
        self.ws_api_path = "/ws-api/v3" if market == "spot" else "/ws-fapi/v1"
        self._api = "/api/v3" if market == "spot" else "/fapi/v1"
        self._weight_minute = 0
        self._weight_used = 0
        self.max_client_msgs_per_s = max_client_msgs_per_s
        markets = {}
        for symbol, inst in self.instruments.items():
            # Unlisted symbols: the pair from the fair-price key ("BTC-USDT"), no minimums.
            base, _, quote = inst.asset.partition("-")
            rule = _RULES[market].get(symbol, (base, quote or "USDT", "0", "0"))
            markets[symbol] = SimMarket(inst, rule[0], rule[1], rule[2], rule[3])
        # Spot charges the taker fee (0.1%) in the asset received; USDⓈ-M 0.05% in USDT.
        self.exchange = SimExchange(
            markets,
            lambda symbol: self.sources[symbol].book,
            faults=self.faults,
            fee_bps="10" if market == "spot" else "5",
            fee_in="received" if market == "spot" else "quote",
            futures=market == "usdm",
        )
        self.orders = BinanceOrderApi(self, self.exchange)

    # -- URLs ------------------------------------------------------------------------------

    @property
    def ws_url(self) -> str:
        """The stream base, like ``wss://stream.binance.com:9443``."""
        return "ws" + self.base_http.removeprefix("http")

    @property
    def ws_api_url(self) -> str:
        """The market's WebSocket API endpoint, like ``wss://ws-api.binance.com:443/ws-api/v3``
        (spot) or ``wss://ws-fapi.binance.com/ws-fapi/v1`` (USDⓈ-M)."""
        return f"{self.ws_url}{self.ws_api_path}"

    def stream_url(self, *streams: str, combined: bool = False) -> str:
        """``/ws/<stream>`` for one raw stream, ``/stream?streams=a/b`` when combined."""
        if combined:
            return f"{self.ws_url}/stream?streams={'/'.join(streams)}"
        if len(streams) != 1:
            raise ValueError("a raw stream URL names exactly one stream; use combined=True")
        return f"{self.ws_url}/ws/{streams[0]}"

    # -- routes ----------------------------------------------------------------------------

    def _routes(self, app: web.Application) -> None:
        app.router.add_get("/ws", self._ws_handler)
        app.router.add_get("/ws/{streams:.+}", self._ws_handler)
        app.router.add_get("/stream", self._ws_handler)
        app.router.add_get(self.depth_path, self._depth)
        app.router.add_get(f"{self._api}/ping", self._ping)
        app.router.add_get(f"{self._api}/time", self._time)
        self.orders.routes(app)
        app.router.add_get(self.ws_api_path, self._ws_handler)

    def _update_id(self, symbol: str) -> int:
        return self._state[symbol].last_u

    # -- streams ---------------------------------------------------------------------------

    def _parse_stream(self, name: str) -> tuple[str, str, int] | None:
        """(stream name, SYMBOL, ticks per event) or None if not a depth stream name."""
        name = name.lower()
        match = _STREAM.match(name)
        if match is None:
            return None
        speed = int(match.group(2)) if match.group(2) is not None else None
        period_ms = _SPEEDS[self.market].get(speed)
        if period_ms is None:
            return None
        ticks = max(1, math.ceil(period_ms / _BASE_MS))
        return name, match.group(1).upper(), ticks

    def _on_open(self, conn: Conn, request: web.Request) -> None:
        conn.state["wsapi"] = request.path == self.ws_api_path
        combined = request.path == "/stream"
        names = (
            request.query.get("streams", "") if combined else request.match_info.get("streams", "")
        )
        streams: dict[str, tuple[str, int]] = {}
        for name in filter(None, names.split("/")):
            parsed = self._parse_stream(name)
            if parsed is not None:  # unknown names are ignored, as Binance does
                streams[parsed[0]] = (parsed[1], parsed[2])
        conn.state["combined"] = combined
        conn.state["streams"] = streams

    def _admit(self, conn: Conn) -> bool:
        if conn.state.get("wsapi"):
            return True  # the WebSocket API counts request weight, not frames
        recent: deque[float] = conn.state.setdefault("recent", deque())
        now = time.monotonic()
        while recent and now - recent[0] >= 1.0:
            recent.popleft()
        recent.append(now)
        return len(recent) <= self.max_client_msgs_per_s

    def _reply(self, conn: Conn, body: dict[str, Any]) -> None:
        self._send_control(conn, orjson.dumps(body))

    def _on_text(self, conn: Conn, text: str) -> None:
        if conn.state.get("wsapi"):
            reply = self.orders.ws_request(text)
            if reply is not None:  # None: an ORDER_TIMEOUT, executed and never answered
                self._send_control(conn, reply)
            return
        try:
            request = orjson.loads(text)
        except orjson.JSONDecodeError:
            self._reply(conn, {"error": {"code": 3, "msg": "Invalid JSON"}, "id": None})
            return
        if not isinstance(request, dict):
            self._reply(conn, {"error": {"code": 2, "msg": "Invalid request"}, "id": None})
            return
        rid = request.get("id")
        method = request.get("method")
        params = request.get("params", [])
        streams: dict[str, tuple[str, int]] = conn.state["streams"]
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                self._reply(conn, {"error": {"code": 2, "msg": "Invalid params"}, "id": rid})
                return
            parsed = [self._parse_stream(p) for p in params]
            if any(p is None for p in parsed):
                bad = [n for n, p in zip(params, parsed, strict=True) if p is None]
                msg = f"Invalid request: unknown stream {bad[0]}"
                self._reply(conn, {"error": {"code": 2, "msg": msg}, "id": rid})
                return
            if method == "SUBSCRIBE":
                total = len(set(streams) | {e[0] for e in parsed if e is not None})
                if total > MAX_STREAMS:
                    msg = f"Invalid request: more than {MAX_STREAMS} streams on one connection"
                    self._reply(conn, {"error": {"code": 2, "msg": msg}, "id": rid})
                    return
            for entry in parsed:
                assert entry is not None
                if method == "SUBSCRIBE":
                    streams[entry[0]] = (entry[1], entry[2])
                else:
                    streams.pop(entry[0], None)
            self._reply(conn, {"result": None, "id": rid})
        elif method == "LIST_SUBSCRIPTIONS":
            self._reply(conn, {"result": list(streams), "id": rid})
        else:
            self._reply(conn, {"error": {"code": 2, "msg": "Invalid request: method"}, "id": rid})

    def _publish(self, symbol: str, changes: Changes, now_ns: int) -> None:
        st = self._state[symbol]
        st.tick += 1
        if changes:
            skip = self.rng.randint(0, 3) if self.market == "usdm" else 0
            first = st.last_u + 1 + skip
            last = first + len(changes) - 1
            event_ms = time.time_ns() // 1_000_000
            trade_ms = event_ms - self.rng.randint(0, 2)
            st.history.append(_Event(st.tick, st.last_u, first, last, changes, event_ms, trade_ms))
            st.last_u = last
        built: dict[int, tuple[bytes, str] | None] = {}
        for conn in list(self.conns):
            streams: dict[str, tuple[str, int]] = conn.state.get("streams", {})
            for name, (sym, period) in streams.items():
                if sym != symbol:
                    continue
                if period not in built:
                    built[period] = self._event(symbol, st, period)
                event = built[period]
                if event is None:
                    continue
                raw, detail = event
                if conn.state["combined"]:
                    raw = b'{"stream":"' + name.encode() + b'","data":' + raw + b"}"
                self._send_data(conn, raw, symbol, detail)

    def _event(self, symbol: str, st: _SymbolState, period: int) -> tuple[bytes, str] | None:
        """The event a stream with ``period`` ticks emits now, if any."""
        if st.tick % period:
            return None
        events = [e for e in st.history if e.tick > st.tick - period]
        if not events:
            return None
        changes = (
            events[0].changes if len(events) == 1 else Changes.merge(e.changes for e in events)
        )
        bids, asks = changes.text(self.instruments[symbol])
        first, last = events[0], events[-1]
        body: dict[str, Any]
        if self.market == "spot":
            body = {"e": "depthUpdate", "E": last.event_ms, "s": symbol}
            body |= {"U": first.first, "u": last.last, "b": bids, "a": asks}
        else:
            body = {"e": "depthUpdate", "E": last.event_ms, "T": last.trade_ms, "s": symbol}
            body |= {"U": first.first, "u": last.last, "pu": first.pu, "b": bids, "a": asks}
        return orjson.dumps(body), f"{symbol} U={first.first} u={last.last}"

    # -- REST ------------------------------------------------------------------------------

    def _rest_error(self, status: int, headers: Mapping[str, str]) -> web.Response:
        if status == 429:
            body = _error(-1003, "Too many requests; current limit is 6000 request weight.")
        elif status == 418:
            body = _error(-1003, "Way too many requests; IP banned.")
        else:
            body = _error(-1001, "Internal error; unable to process your request.")
        return web.Response(
            status=status, body=body, headers=dict(headers), content_type="application/json"
        )

    def _weight(self, limit: int) -> int:
        if self.market == "spot":
            return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
        return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20

    def _json(self, body: Any, weight: int, status: int = 200) -> web.Response:
        minute = int(time.time() // 60)
        if minute != self._weight_minute:
            self._weight_minute, self._weight_used = minute, 0
        self._weight_used += weight
        return web.Response(
            status=status,
            body=orjson.dumps(body),
            content_type="application/json",
            headers={"X-MBX-USED-WEIGHT-1M": str(self._weight_used)},
        )

    async def _ping(self, request: web.Request) -> web.StreamResponse:
        return self._json({}, 1)

    async def _time(self, request: web.Request) -> web.StreamResponse:
        return self._json({"serverTime": self.exchange.now_ms()}, 1)

    async def _depth(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        symbol = query.get("symbol", "").upper()
        failed = await self._rest_faults(symbol or None)
        if failed is not None:
            return failed
        if not symbol:
            msg = "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
            return self._json({"code": -1102, "msg": msg}, 1, 400)
        if symbol not in self._state:
            return self._json({"code": -1121, "msg": "Invalid symbol."}, 1, 400)
        text = query.get("limit", "100" if self.market == "spot" else "500")
        if not text.isascii() or not text.isdigit():
            msg = "Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'."
            return self._json({"code": -1100, "msg": msg}, 1, 400)
        limit = int(text)
        if self.market == "usdm" and limit not in _FUTURES_LIMITS:
            return self._json(
                {"code": -1130, "msg": "Data sent for parameter 'limit' is not valid."}, 1, 400
            )
        limit = max(1, min(limit, 5000))
        book = self.sources[symbol].book
        update_id = self._state[symbol].last_u
        bids, asks = book.levels(BID, limit), book.levels(ASK, limit)
        if self.faults.take(Fault.CROSSED_SNAPSHOT, symbol, f"lastUpdateId={update_id}"):
            bids, asks = crossed_levels(bids, asks)
        inst = self.instruments[symbol]
        px, sz = inst.price.format, inst.size.format
        body: dict[str, Any] = {"lastUpdateId": update_id}
        if self.market == "usdm":
            now_ms = time.time_ns() // 1_000_000
            body |= {"E": now_ms, "T": now_ms - 1}
        body |= {
            "bids": [[px(p), sz(q)] for p, q in bids],
            "asks": [[px(p), sz(q)] for p, q in asks],
        }
        return self._json(body, self._weight(limit))
