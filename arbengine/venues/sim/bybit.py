"""Simulated Bybit v5 public orderbook WebSocket (one category) and REST orderbook.

One ``BybitSim`` is one category, as ``/v5/public/spot``, ``/linear`` and ``/inverse`` are
separate sockets at Bybit (and ``BTCUSDT`` names both a spot pair and a perpetual). The wire
follows venues.md section 5 and Bybit's v5 "Connect" page:

* ``/v5/public/{category}``: ``{"op":"subscribe","args":["orderbook.50.BTCUSDT"],"req_id":..}``
  is answered once per request, ``{"success":true,"ret_msg":"","conn_id":..,"req_id":..,
  "op":"subscribe"}`` (spot: ``"ret_msg":"subscribe"``, and ``req_id`` only when sent), then
  each new topic's snapshot. Refusals, worded as Bybit words them: ``error:handler not
  found,topic:..`` (unknown depth or symbol; the valid topics of the same request are still
  subscribed), ``error:already subscribed,topic:..``, ``args size >10`` (spot only),
  ``error:invalid op``, and ``Failed to decode incoming data:..`` for text that is not JSON
  (the socket stays open). ``unsubscribe`` is answered the same way.
* Topics ``orderbook.{1|50|200|1000}.{symbol}``. Each topic keeps the top-``depth`` window it
  last published and its own ``u``: a push is the difference between the window now and the
  one published, so a level leaving the window arrives with size "0", and ``u`` grows by
  exactly one per message. ``seq`` is the symbol's cross sequence (one per level change,
  shared by all depths). One model tick is the 20 ms cadence of depth 50 (``interval_s``);
  depth 1 pushes every tick too, 200 every 5th and 1000 every 10th tick (100 and 200 ms).
  Depth 1 sends snapshots only and repeats the last one, same ``u``, after
  ``level1_resend_s`` (3 s) without change. The 1000-level topic always runs: REST's ``u``
  is its ``u``, and ``true_book`` is what it last published.
* Text: spot trims ("75848.74", "0.00039"); linear and inverse print the step's decimals
  ("16493.50", "0.100"); a delete is "0" everywhere. Key order follows the doc's quirk: spot
  and level 1 put ``ts`` before ``type``. ``ts`` is the push time, ``cts`` the time of the
  topic's last model change (ms).
* ``{"op":"ping"}`` gets the category's pong: spot ``{"success":true,"ret_msg":"pong",
  "conn_id":..,"op":"ping"}``, linear/inverse the same with ``req_id``. Bybit sends no
  protocol pings. ``client_idle_timeout_s`` (off by default) cuts, without a close frame, a
  connection whose client sent no text frame for that long: Bybit drops idle clients, and a
  protocol ping is not what it documents as a heartbeat.
* Faults: the per-message ones of faults.py; ``SEQ_RESET`` is the service restart: at the
  symbol's next change every topic of it sends a snapshot with ``u`` = 1 in place of its
  delta (that tick's changes are only in the snapshot, so a client merging it would keep
  stale levels) and continues from ``u`` = 2; ``CROSSED_SNAPSHOT`` crosses the next
  subscribe snapshot or REST book. Bybit has no checksum: no ``CORRUPT_CHECKSUM``.
* ``GET /v5/market/orderbook?category=&symbol=&limit=``: ``{"retCode":0,"retMsg":"OK",
  "result":{"s","b","a","ts","u","seq","cts"},"retExtInfo":{},"time":..}``, ``limit`` 1..1000
  (default 1 for spot, 25 otherwise). Bad parameters answer HTTP 200 with ``retCode`` 10001.
* Order entry (signed REST and the ``/v5/trade`` WebSocket, ``trade_ws_url``) is
  ``bybit_orders.py``, on ``self.exchange`` (a ``SimExchange``): a test opens an account
  with ``sim.exchange.add_account(key, secret, balances={"USDT": "100000", "BTC": "2"})``.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import orjson
from aiohttp import web

from arbengine.venues.sim._server import Conn, SimVenue
from arbengine.venues.sim.bybit_orders import BybitOrderApi
from arbengine.venues.sim.exchange import SimExchange, SimMarket
from arbengine.venues.sim.faults import Fault
from arbengine.venues.sim.model import (
    ASK,
    BID,
    BookSnapshot,
    Changes,
    DecimalText,
    FairMarket,
    ModelConfig,
    SimInstrument,
    crossed_levels,
)

__all__ = ["BYBIT_INSTRUMENTS", "DEPTHS", "BybitSim"]

Category = Literal["spot", "linear", "inverse"]
Level = tuple[int, int]

BASE_MS: Final = 20  # one model tick: the cadence of orderbook.50
DEPTHS: Final[dict[int, int]] = {1: 10, 50: 20, 200: 100, 1000: 200}  # depth -> push ms
REST_DEPTH: Final = 1000  # REST's u is this stream's u (venues.md 5.1)
REST_MAX_LIMIT: Final = 1000
MAX_SPOT_ARGS: Final = 10


def _spot(symbol: str, tick: str, lot: str, start: str, typical: str, asset: str) -> SimInstrument:
    return SimInstrument(symbol, tick, lot, None, None, start, typical, asset)


def _contract(
    symbol: str, tick: str, lot: str, start: str, typical: str, asset: str
) -> SimInstrument:
    # Contracts print every decimal of their steps: "16493.50" for a 0.10 tick.
    decimals = DecimalText(tick, None).scale, DecimalText(lot, None).scale
    return SimInstrument(symbol, tick, lot, *decimals, start, typical, asset)


# instruments-info specs: spot tickSize/basePrecision, contracts tickSize/qtyStep. Inverse
# sizes are USD contracts.
BYBIT_INSTRUMENTS: dict[str, dict[str, SimInstrument]] = {
    "spot": {
        "BTCUSDT": _spot("BTCUSDT", "0.01", "0.000001", "61737.63", "0.25", "BTC-USDT"),
        "ETHUSDT": _spot("ETHUSDT", "0.01", "0.00001", "2650", "4", "ETH-USDT"),
    },
    "linear": {
        "BTCUSDT": _contract("BTCUSDT", "0.10", "0.001", "61737.60", "0.5", "BTC-USDT"),
        "ETHUSDT": _contract("ETHUSDT", "0.01", "0.01", "2650.00", "5", "ETH-USDT"),
    },
    "inverse": {
        "BTCUSD": _contract("BTCUSD", "0.10", "1", "61737.60", "20000", "BTC-USD"),
    },
}


# instruments-info lotSizeFilter: spot minOrderQty / minOrderAmt, contracts minOrderQty /
# minNotionalValue (quote); taker fees of the base tier (spot 0.1%, contracts 0.055%).
BYBIT_MARKETS: dict[str, dict[str, tuple[str, str]]] = {
    "spot": {"BTCUSDT": ("0.000001", "5"), "ETHUSDT": ("0.00001", "5")},
    "linear": {"BTCUSDT": ("0.001", "5"), "ETHUSDT": ("0.01", "5")},
    "inverse": {"BTCUSD": ("1", "0")},
}
BYBIT_TAKER_BPS: dict[str, str] = {"spot": "10", "linear": "5.5", "inverse": "5.5"}


@dataclass
class _Topic:
    """One ``orderbook.{depth}.{symbol}`` stream: the window it last published."""

    depth: int
    period: int  # ticks between pushes
    u: int
    seq: int
    cts_ms: int
    bids: dict[int, int]
    asks: dict[int, int]
    last_push: float  # time.monotonic()
    dirty: bool = False  # the book changed since the last push


@dataclass
class _SymbolState:
    seq: int
    cts_ms: int = 0
    tick: int = 0
    topics: dict[int, _Topic] = field(default_factory=dict)


def _diff(old: dict[int, int], new: dict[int, int], descending: bool) -> list[Level]:
    changed = [(p, q) for p, q in new.items() if old.get(p) != q]
    changed += [(p, 0) for p in old if p not in new]
    changed.sort(reverse=descending)
    return changed


def _text(inst: SimInstrument, levels: Iterable[Level]) -> list[list[str]]:
    px, sz = inst.price.format, inst.size.format
    return [[px(p), sz(q) if q else "0"] for p, q in levels]


class BybitSim(SimVenue):
    """A simulated Bybit public category on 127.0.0.1; see the module docstring."""

    venue = "bybit"
    supported_faults = frozenset(Fault) - {Fault.CORRUPT_CHECKSUM}

    def __init__(
        self,
        symbols: Sequence[str | SimInstrument] = ("BTCUSDT",),
        *,
        category: Category = "linear",
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        interval_s: float = BASE_MS / 1000,
        fair: FairMarket | None = None,
        model: ModelConfig | None = None,
        replay: Mapping[str, Iterable[Iterable[tuple[str, str, str]]]] | None = None,
        client_idle_timeout_s: float | None = None,
        level1_resend_s: float = 3.0,
    ) -> None:
        if category not in BYBIT_INSTRUMENTS:
            raise ValueError(f"category must be spot, linear or inverse, not {category!r}")
        if client_idle_timeout_s is not None and client_idle_timeout_s <= 0:
            raise ValueError("client_idle_timeout_s must be positive (or None)")
        if level1_resend_s <= 0:
            raise ValueError("level1_resend_s must be positive")
        self.category: Category = category
        specs = BYBIT_INSTRUMENTS[category]
        instruments = [s if isinstance(s, SimInstrument) else specs[s.upper()] for s in symbols]
        self.venue = f"bybit-{category}"
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
        self.client_idle_timeout_s = client_idle_timeout_s
        self.level1_resend_s = level1_resend_s
        self.client_pings = 0  # {"op":"ping"} received
        self.idle_disconnects = 0  # connections cut for client silence
        self.subscribe_ops = 0  # subscribe requests received
        self.subscribe_requests: Counter[str] = Counter()  # per topic asked
        self.max_args = 0  # the most args seen in one request
        self._state = {
            symbol: _SymbolState(seq=self.rng.randint(10**9, 10**11)) for symbol in self.instruments
        }
        for symbol in self.instruments:
            self._topic(symbol, REST_DEPTH)
        # Order entry (bybit_orders.py): spot fees in what the trade received (buy: base,
        # sell: quote), contracts in the settlement coin.
        self.fee_bps = BYBIT_TAKER_BPS[category]
        markets = {}
        for symbol, inst in self.instruments.items():
            base, quote = inst.asset.split("-")
            min_size, min_notional = BYBIT_MARKETS[category].get(symbol, ("0", "0"))
            markets[symbol] = SimMarket(inst, base, quote, min_size, min_notional)
        self.exchange = SimExchange(
            markets,
            lambda symbol: self.sources[symbol].book,
            faults=self.faults,
            fee_bps=self.fee_bps,
            fee_in="received" if category == "spot" else "quote",
            futures=category != "spot",
        )
        self.order_api = BybitOrderApi(self)

    @property
    def ws_url(self) -> str:
        """Like ``wss://stream.bybit.com/v5/public/linear``."""
        return "ws" + self.base_http.removeprefix("http") + f"/v5/public/{self.category}"

    def _routes(self, app: web.Application) -> None:
        app.router.add_get(f"/v5/public/{self.category}", self._ws_handler)
        app.router.add_get("/v5/market/orderbook", self._rest_orderbook)
        self.order_api.routes(app)

    @property
    def trade_ws_url(self) -> str:
        """Like ``wss://stream.bybit.com/v5/trade`` (order entry)."""
        return "ws" + self.base_http.removeprefix("http") + "/v5/trade"

    def _new_conn_id(self) -> str:
        bits = self.rng.getrandbits(128)
        if self.category == "spot":
            return str(uuid.UUID(int=bits))  # "0970e817-426e-429a-a679-ff7f55e0b16a"
        digits = "0123456789abcdefghijklmnopqrstuv"  # "cejreassvfrsfvb9v1a0-2m"
        text = "".join(digits[(bits >> (5 * i)) & 31] for i in range(22))
        return f"{text[:20]}-{text[20:]}"

    # -- topics and the truth ---------------------------------------------------------------

    def _window(self, symbol: str, depth: int) -> tuple[dict[int, int], dict[int, int]]:
        book = self.sources[symbol].book
        return dict(book.levels(BID, depth)), dict(book.levels(ASK, depth))

    def _topic(self, symbol: str, depth: int) -> _Topic:
        st = self._state[symbol]
        topic = st.topics.get(depth)
        if topic is None:
            bids, asks = self._window(symbol, depth)
            topic = _Topic(
                depth=depth,
                period=max(1, DEPTHS[depth] // BASE_MS),
                u=self.rng.randint(10**6, 10**9),
                seq=st.seq,
                cts_ms=st.cts_ms,
                bids=bids,
                asks=asks,
                last_push=time.monotonic(),
            )
            st.topics[depth] = topic
        return topic

    def topic_book(self, symbol: str, depth: int = 50, limit: int | None = None) -> BookSnapshot:
        """What ``orderbook.{depth}.{symbol}`` last published, with its ``u``; KeyError if
        nobody ever subscribed to it."""
        topic = self._state[symbol].topics[depth]
        inst = self.instruments[symbol]
        px, sz = inst.price.format, inst.size.format
        bids = sorted(topic.bids.items(), reverse=True)[:limit]
        asks = sorted(topic.asks.items())[:limit]
        return BookSnapshot(
            symbol,
            topic.u,
            tuple((px(p), sz(q)) for p, q in bids),
            tuple((px(p), sz(q)) for p, q in asks),
        )

    def topic_update_id(self, symbol: str, depth: int = 50) -> int:
        """The ``u`` of the last message of ``orderbook.{depth}.{symbol}`` (cheap)."""
        return self._state[symbol].topics[depth].u

    def true_book(self, symbol: str, limit: int | None = None) -> BookSnapshot:
        """The book as the REST endpoint serves it: the 1000-level stream's last window."""
        return self.topic_book(symbol, REST_DEPTH, limit)

    def _update_id(self, symbol: str) -> int:
        return self._state[symbol].topics[REST_DEPTH].u

    # -- client frames ----------------------------------------------------------------------

    def _on_open(self, conn: Conn, request: web.Request) -> None:
        conn.state["topics"] = set()
        conn.state["last_client"] = time.monotonic()

    def _reply(self, conn: Conn, op: str, success: bool, ret_msg: str, req_id: str | None) -> None:
        body: dict[str, Any] = {"success": success, "ret_msg": ret_msg, "conn_id": conn.id}
        if req_id is not None or self.category != "spot":
            body["req_id"] = req_id or ""
        body["op"] = op
        self._send_control(conn, orjson.dumps(body))

    def _parse_topic(self, arg: str) -> tuple[str, int] | None:
        parts = arg.split(".")
        if len(parts) != 3 or parts[0] != "orderbook" or parts[2] not in self.instruments:
            return None
        depth = next((d for d in DEPTHS if parts[1] == str(d)), None)
        return None if depth is None else (parts[2], depth)

    def _on_text(self, conn: Conn, text: str) -> None:
        conn.state["last_client"] = time.monotonic()
        try:
            request = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            self._reply(conn, "", False, f"Failed to decode incoming data:{exc}", None)
            return
        if not isinstance(request, dict):
            self._reply(conn, "", False, "error:invalid op", None)
            return
        req_id = request.get("req_id")
        req_id = req_id if isinstance(req_id, str) else None
        op = request.get("op")
        if op == "ping":
            self.client_pings += 1
            self._reply(conn, "ping", True, "pong", req_id)
            return
        if op not in ("subscribe", "unsubscribe"):
            self._reply(conn, op if isinstance(op, str) else "", False, "error:invalid op", req_id)
            return
        args = request.get("args")
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            self._reply(conn, op, False, "error:invalid args", req_id)  # the sim's wording
            return
        self.max_args = max(self.max_args, len(args))
        if self.category == "spot" and len(args) > MAX_SPOT_ARGS:
            self._reply(conn, op, False, f"args size >{MAX_SPOT_ARGS}", req_id)
            return
        if op == "subscribe":
            self.subscribe_ops += 1
        topics: set[tuple[str, int]] = conn.state["topics"]
        errors: list[str] = []
        fresh: list[tuple[str, int]] = []
        for arg in args:
            if op == "subscribe":
                self.subscribe_requests[arg] += 1
            key = self._parse_topic(arg)
            if key is None:
                errors.append(f"error:handler not found,topic:{arg}")
            elif op == "unsubscribe":
                topics.discard(key)
            elif key in topics:
                errors.append(f"error:already subscribed,topic:{arg}")
            else:
                topics.add(key)
                fresh.append(key)
        ok_text = op if self.category == "spot" else ""
        self._reply(conn, op, not errors, errors[0] if errors else ok_text, req_id)
        for symbol, depth in fresh:
            self._send_snapshot(conn, symbol, self._topic(symbol, depth))

    # -- pushes -----------------------------------------------------------------------------

    def _message(
        self, symbol: str, topic: _Topic, kind: str, bids: Iterable[Level], asks: Iterable[Level]
    ) -> bytes:
        inst = self.instruments[symbol]
        data = {
            "s": symbol,
            "b": _text(inst, bids),
            "a": _text(inst, asks),
            "u": topic.u,
            "seq": topic.seq,
        }
        name = f"orderbook.{topic.depth}.{symbol}"
        ts = time.time_ns() // 1_000_000
        if self.category == "spot" or topic.depth == 1:  # the doc's key order quirk
            message = {"topic": name, "ts": ts, "type": kind, "data": data, "cts": topic.cts_ms}
        else:
            message = {"topic": name, "type": kind, "ts": ts, "data": data, "cts": topic.cts_ms}
        return orjson.dumps(message)

    def _subscribers(self, symbol: str, depth: int) -> list[Conn]:
        key = (symbol, depth)
        return [c for c in self.conns if key in c.state.get("topics", ())]

    def _view(self, topic: _Topic) -> tuple[list[Level], list[Level]]:
        return sorted(topic.bids.items(), reverse=True), sorted(topic.asks.items())

    def _send_snapshot(self, conn: Conn, symbol: str, topic: _Topic) -> None:
        bids, asks = self._view(topic)
        detail = f"orderbook.{topic.depth}.{symbol} snapshot u={topic.u}"
        if self.faults.take(Fault.CROSSED_SNAPSHOT, symbol, detail):
            bids, asks = crossed_levels(bids, asks)
            bids, asks = bids[: topic.depth], asks[: topic.depth]
        self._send_data(conn, self._message(symbol, topic, "snapshot", bids, asks), symbol, detail)

    def _broadcast(self, symbol: str, topic: _Topic, kind: str, payload: bytes) -> None:
        detail = f"orderbook.{topic.depth}.{symbol} {kind} u={topic.u}"
        for conn in self._subscribers(symbol, topic.depth):
            self._send_data(conn, payload, symbol, detail)

    def _publish(self, symbol: str, changes: Changes, now_ns: int) -> None:
        st = self._state[symbol]
        st.tick += 1
        if changes:
            st.seq += len(changes)
            st.cts_ms = time.time_ns() // 1_000_000
            for topic in st.topics.values():
                topic.dirty = True
            if self.faults.take(Fault.SEQ_RESET, symbol, f"{symbol} service restart, u=1"):
                self._restart(symbol)
                return
        for topic in st.topics.values():
            if topic.dirty and (st.tick - 1) % topic.period == 0:
                self._push_change(symbol, topic)

    def _stamp(self, symbol: str, topic: _Topic) -> None:
        st = self._state[symbol]
        topic.seq, topic.cts_ms, topic.dirty = st.seq, st.cts_ms, False
        topic.last_push = time.monotonic()

    def _push_change(self, symbol: str, topic: _Topic) -> None:
        bids, asks = self._window(symbol, topic.depth)
        bid_changes = _diff(topic.bids, bids, descending=True)
        ask_changes = _diff(topic.asks, asks, descending=False)
        topic.dirty = False
        if not bid_changes and not ask_changes:
            return  # the changes were all outside this window
        topic.bids, topic.asks = bids, asks
        topic.u += 1
        self._stamp(symbol, topic)
        if topic.depth == 1:  # level 1 is snapshot-only
            payload = self._message(symbol, topic, "snapshot", *self._view(topic))
            self._broadcast(symbol, topic, "snapshot", payload)
        else:
            payload = self._message(symbol, topic, "delta", bid_changes, ask_changes)
            self._broadcast(symbol, topic, "delta", payload)

    def _restart(self, symbol: str) -> None:
        """The service restarted: every topic of ``symbol`` starts again from a u=1 snapshot."""
        for topic in self._state[symbol].topics.values():
            topic.bids, topic.asks = self._window(symbol, topic.depth)
            topic.u = 1
            self._stamp(symbol, topic)
            payload = self._message(symbol, topic, "snapshot", *self._view(topic))
            self._broadcast(symbol, topic, "snapshot", payload)

    def _housekeeping(self, now: float) -> None:
        timeout = self.client_idle_timeout_s
        if timeout is not None:
            for conn in list(self.conns):
                if now - conn.state.get("last_client", now) > timeout:
                    self.idle_disconnects += 1
                    self._abort(conn)
        for symbol, st in self._state.items():
            topic = st.topics.get(1)
            if topic is None or now - topic.last_push < self.level1_resend_s:
                continue
            topic.last_push = now  # no change for a while: the same snapshot, same u
            payload = self._message(symbol, topic, "snapshot", *self._view(topic))
            self._broadcast(symbol, topic, "snapshot", payload)

    # -- REST -------------------------------------------------------------------------------

    def _rest_error(self, status: int, headers: Mapping[str, str]) -> web.Response:
        throttled = status in (418, 429)
        code, msg = (10006, "Too many visits!") if throttled else (10016, "Server error.")
        return web.Response(
            status=status,
            body=orjson.dumps({"retCode": code, "retMsg": msg, "result": {}, "retExtInfo": {}}),
            headers=dict(headers),
            content_type="application/json",
        )

    async def _rest_orderbook(self, request: web.Request) -> web.StreamResponse:
        symbol = request.query.get("symbol", "")
        failed = await self._rest_faults(symbol or None)
        if failed is not None:
            return failed
        now_ms = time.time_ns() // 1_000_000

        def reply(code: int, msg: str, result: dict[str, Any]) -> web.Response:
            body = {"retCode": code, "retMsg": msg, "result": result, "retExtInfo": {}}
            body["time"] = now_ms
            return web.Response(body=orjson.dumps(body), content_type="application/json")

        category = request.query.get("category", "")
        if category not in BYBIT_INSTRUMENTS:
            return reply(10001, "Illegal category", {})
        if category != self.category or symbol not in self.instruments:
            return reply(10001, "The requested symbol is invalid.", {})
        limit_text = request.query.get("limit", "1" if category == "spot" else "25")
        if not limit_text.isascii() or not limit_text.isdigit():
            return reply(10001, "The number of limit is invalid.", {})
        limit = int(limit_text)
        if not 1 <= limit <= REST_MAX_LIMIT:
            return reply(10001, "The number of limit is invalid.", {})
        topic = self._state[symbol].topics[REST_DEPTH]
        bids, asks = self._view(topic)
        if self.faults.take(Fault.CROSSED_SNAPSHOT, symbol, f"{symbol} REST u={topic.u}"):
            bids, asks = crossed_levels(bids, asks)
        inst = self.instruments[symbol]
        result = {
            "s": symbol,
            "b": _text(inst, bids[:limit]),
            "a": _text(inst, asks[:limit]),
            "ts": now_ms,
            "u": topic.u,
            "seq": topic.seq,
            "cts": topic.cts_ms,
        }
        return reply(0, "OK", result)
