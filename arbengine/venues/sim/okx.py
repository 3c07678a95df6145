"""Simulated OKX v5 public WebSocket ``books`` channel (and the REST books endpoint).

The wire follows venues.md 4.1-4.3:

* ``/ws/v5/public``: ``{"op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"}]}``
  is answered per arg with ``{"event":"subscribe","arg":..,"connId":..}`` (echoing ``id`` when
  the request had one), then a ``snapshot`` (``prevSeqId`` -1, up to 400 levels per side);
  then an ``update`` every 100 ms tick in which the book changed. Unknown channel or
  instrument: ``{"event":"error","code":"60018",..}``; bad JSON or op: code ``60012``.
* ``seqId`` is per instrument and shared by all connections; each update's ``prevSeqId`` is
  the previous message's ``seqId`` and ``seqId`` grows by the number of level changes. After
  ``idle_heartbeat_s`` (60 s) without a change, the no-change message is sent: empty
  ``bids``/``asks`` and ``prevSeqId == seqId``. The ``SEQ_RESET`` fault makes the next update
  go back to a small ``seqId`` (what OKX does after maintenance).
* Levels are ``[price, size, "0", numOrders]`` in OKX's trimmed text ("30244", "0.08"); a
  size of "0" deletes.
* ``checksum``: the OKX algorithm on the first 25 levels of the book as sent (bid and ask
  strings interleaved ``bid:size:ask:size``, one side continuing alone when the other runs
  out, zlib CRC32 as a signed int32); ``checksum=False`` sends 0 as OKX does since the 2026
  deprecation.
* The text frame ``ping`` is answered ``pong``. OKX sends no protocol pings.
* ``GET /api/v5/market/books?instId=&sz=``: ``{"code":"0","msg":"","data":[{asks,bids,ts}]}``.
* Spot order entry (``okx_orders.py``): the signed trade/account REST routes and the
  private WebSocket ``/ws/v5/private`` (login, ``order`` op), backed by ``self.exchange``
  (a ``SimExchange``: 10 bps taker fees in the asset received, as OKX charges spot).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from arbengine.venues.sim._server import Conn, SimVenue
from arbengine.venues.sim.exchange import SimExchange, SimMarket
from arbengine.venues.sim.faults import Fault
from arbengine.venues.sim.model import (
    ASK,
    BID,
    OKX_INSTRUMENTS,
    Changes,
    FairMarket,
    ModelConfig,
    SimInstrument,
    TrueBook,
    crossed_levels,
)
from arbengine.venues.sim.okx_orders import OkxOrderApi

__all__ = ["OkxSim", "okx_checksum"]

CHECKSUM_LEVELS = 25
MAX_LEVELS = 400  # the books channel's depth
_CHANNEL = "books"


def okx_checksum(bids: Sequence[Sequence[str]], asks: Sequence[Sequence[str]]) -> int:
    """OKX's book checksum from level strings exactly as sent (price, size first)."""
    parts: list[str] = []
    for i in range(CHECKSUM_LEVELS):
        if i < len(bids):
            parts += (bids[i][0], bids[i][1])
        if i < len(asks):
            parts += (asks[i][0], asks[i][1])
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc & 0x8000_0000 else crc


# Spot order rules per instrument (base, quote, minSz) as OKX's instruments list gives them.
_SPOT_RULES = {
    "BTC-USDT": ("BTC", "USDT", "0.00001"),
    "ETH-USDT": ("ETH", "USDT", "0.0001"),
}


def _corrupt(checksum: int) -> int:
    """A different valid int32 (the CORRUPT_CHECKSUM fault): flip the lowest bit."""
    return checksum ^ 1


@dataclass
class _SymbolState:
    seq: int
    last_push: float  # time.monotonic() of the last update or heartbeat


def _levels(inst: SimInstrument, levels: Iterable[tuple[int, int]]) -> list[list[str]]:
    px, sz = inst.price.format, inst.size.format
    # numOrders is not modelled: derived from the size so that it is stable per level state.
    return [[px(p), sz(q), "0", str(1 + q % 7) if q else "0"] for p, q in levels]


class OkxSim(SimVenue):
    """A simulated OKX public WebSocket on 127.0.0.1; see the module docstring."""

    venue = "okx"
    supported_faults = frozenset(Fault)

    def __init__(
        self,
        symbols: Sequence[str | SimInstrument] = ("BTC-USDT",),
        *,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        interval_s: float = 0.1,
        fair: FairMarket | None = None,
        model: ModelConfig | None = None,
        replay: Mapping[str, Iterable[Iterable[tuple[str, str, str]]]] | None = None,
        checksum: bool = True,
        idle_heartbeat_s: float = 60.0,
        first_seq_id: int | None = None,
    ) -> None:
        instruments = [
            s if isinstance(s, SimInstrument) else OKX_INSTRUMENTS[s.upper()] for s in symbols
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
            ping_interval_s=None,
            pong_timeout_s=None,
        )
        if idle_heartbeat_s <= 0:
            raise ValueError("idle_heartbeat_s must be positive")
        self.checksum_enabled = checksum
        self.idle_heartbeat_s = idle_heartbeat_s
        start = first_seq_id if first_seq_id is not None else self.rng.randint(10**8, 10**10)
        now = time.monotonic()
        self._state = {s: _SymbolState(start, now) for s in self.instruments}
        # Spot order entry (sim/okx_orders.py): OKX's spot taker rate, fees in the asset
        # received; swaps have no order entry here.
        markets = {
            s: SimMarket(i, *_SPOT_RULES[s])
            for s, i in self.instruments.items()
            if s in _SPOT_RULES
        }
        self.exchange = SimExchange(
            markets, lambda s: self.sources[s].book, faults=self.faults, fee_in="received"
        )
        self.orders = OkxOrderApi(self)

    @property
    def ws_url(self) -> str:
        """Like ``wss://ws.okx.com:8443/ws/v5/public``."""
        return "ws" + self.base_http.removeprefix("http") + "/ws/v5/public"

    def _routes(self, app: web.Application) -> None:
        app.router.add_get("/ws/v5/public", self._ws_handler)
        app.router.add_get("/ws/v5/private", self._ws_handler)
        app.router.add_get("/api/v5/market/books", self._rest_books)
        self.orders.routes(app)

    @property
    def private_ws_url(self) -> str:
        """Like ``wss://ws.okx.com:8443/ws/v5/private`` (login, order entry)."""
        return "ws" + self.base_http.removeprefix("http") + "/ws/v5/private"

    def _update_id(self, symbol: str) -> int:
        return self._state[symbol].seq

    def _checksum(self, bids: Sequence[Sequence[str]], asks: Sequence[Sequence[str]]) -> int:
        return okx_checksum(bids, asks) if self.checksum_enabled else 0

    def _book_checksum(self, book: TrueBook) -> int:
        if not self.checksum_enabled:
            return 0
        return okx_checksum(
            book.text_levels(BID, CHECKSUM_LEVELS), book.text_levels(ASK, CHECKSUM_LEVELS)
        )

    # -- client frames ---------------------------------------------------------------------

    def _on_open(self, conn: Conn, request: web.Request) -> None:
        conn.state["books"] = set()
        conn.state["private"] = request.path == "/ws/v5/private"

    def _send_error(self, conn: Conn, code: str, msg: str) -> None:
        body = {"event": "error", "code": code, "msg": msg, "connId": conn.id}
        self._send_control(conn, orjson.dumps(body))

    def _on_text(self, conn: Conn, text: str) -> None:
        if conn.state["private"]:
            self.orders.on_private_text(conn, text)
            return
        if text == "ping":
            self._send_control(conn, b"pong")
            return
        try:
            request = orjson.loads(text)
        except orjson.JSONDecodeError:
            self._send_error(conn, "60012", f"Invalid request: {text[:200]}")
            return
        if (
            not isinstance(request, dict)
            or request.get("op") not in ("subscribe", "unsubscribe")
            or not isinstance(request.get("args"), list)
        ):
            self._send_error(conn, "60012", f"Invalid request: {text[:200]}")
            return
        op: str = request["op"]
        books: set[str] = conn.state["books"]
        for arg in request["args"]:
            channel = arg.get("channel") if isinstance(arg, dict) else None
            inst = arg.get("instId") if isinstance(arg, dict) else None
            if channel != _CHANNEL or not isinstance(inst, str) or inst not in self._state:
                self._send_error(
                    conn,
                    "60018",
                    f"Wrong URL or channel:{channel},instId:{inst} doesn't exist. Please use "
                    "the correct URL, channel and parameters referring to API document.",
                )
                continue
            reply: dict[str, Any] = {"id": request["id"]} if "id" in request else {}
            reply |= {"event": op, "arg": {"channel": channel, "instId": inst}, "connId": conn.id}
            self._send_control(conn, orjson.dumps(reply))
            if op == "subscribe":
                books.add(inst)
                self._send_snapshot(conn, inst)
            else:
                books.discard(inst)

    # -- pushes ----------------------------------------------------------------------------

    def _message(
        self,
        symbol: str,
        action: str,
        bids: list[list[str]],
        asks: list[list[str]],
        prev: int,
        seq: int,
        checksum: int,
    ) -> dict[str, Any]:
        data = {
            "asks": asks,
            "bids": bids,
            "ts": str(time.time_ns() // 1_000_000),
            "checksum": checksum,
            "prevSeqId": prev,
            "seqId": seq,
        }
        return {"arg": {"channel": _CHANNEL, "instId": symbol}, "action": action, "data": [data]}

    def _push(self, conns: Iterable[Conn], symbol: str, message: dict[str, Any]) -> None:
        data = message["data"][0]
        detail = f"{symbol} {message['action']} seqId={data['seqId']}"
        payload = orjson.dumps(message)
        for conn in conns:
            if self.faults.take(Fault.CORRUPT_CHECKSUM, symbol, detail):
                bad = message | {"data": [data | {"checksum": _corrupt(data["checksum"])}]}
                self._send_data(conn, orjson.dumps(bad), symbol, detail)
            else:
                self._send_data(conn, payload, symbol, detail)

    def _subscribers(self, symbol: str) -> list[Conn]:
        return [c for c in self.conns if symbol in c.state.get("books", ())]

    def _send_snapshot(self, conn: Conn, symbol: str) -> None:
        st, book = self._state[symbol], self.sources[symbol].book
        bids, asks = book.levels(BID, MAX_LEVELS), book.levels(ASK, MAX_LEVELS)
        if self.faults.take(Fault.CROSSED_SNAPSHOT, symbol, f"{symbol} seqId={st.seq}"):
            bids, asks = crossed_levels(bids, asks)
        inst = self.instruments[symbol]
        bid_text, ask_text = _levels(inst, bids), _levels(inst, asks)
        # The checksum covers the levels as sent, so a crossed snapshot still "verifies":
        # only a crossed-book check catches it.
        checksum = self._checksum(bid_text, ask_text)
        message = self._message(symbol, "snapshot", bid_text, ask_text, -1, st.seq, checksum)
        self._push([conn], symbol, message)

    def _publish(self, symbol: str, changes: Changes, now_ns: int) -> None:
        if not changes:
            return
        st = self._state[symbol]
        prev = st.seq
        if self.faults.take(Fault.SEQ_RESET, symbol, f"{symbol} seqId {prev} reset"):
            st.seq = self.rng.randint(0, 9)
        else:
            st.seq = prev + len(changes)
        st.last_push = time.monotonic()
        conns = self._subscribers(symbol)
        if not conns:
            return
        inst = self.instruments[symbol]
        bids, asks = _levels(inst, changes.bids), _levels(inst, changes.asks)
        checksum = self._book_checksum(self.sources[symbol].book)
        self._push(
            conns, symbol, self._message(symbol, "update", bids, asks, prev, st.seq, checksum)
        )

    def _housekeeping(self, now: float) -> None:
        for symbol, st in self._state.items():
            if now - st.last_push < self.idle_heartbeat_s:
                continue
            st.last_push = now
            conns = self._subscribers(symbol)
            if conns:  # no change: empty sides, prevSeqId == seqId
                checksum = self._book_checksum(self.sources[symbol].book)
                self._push(
                    conns, symbol, self._message(symbol, "update", [], [], st.seq, st.seq, checksum)
                )

    # -- REST ------------------------------------------------------------------------------

    def _rest_error(self, status: int, headers: Mapping[str, str]) -> web.Response:
        body = (
            {"msg": "Too Many Requests", "code": "50011"}
            if status in (418, 429)
            else {
                "msg": "Service temporarily unavailable, please try again later.",
                "code": "50001",
            }
        )
        return web.Response(
            status=status,
            body=orjson.dumps(body),
            headers=dict(headers),
            content_type="application/json",
        )

    async def _rest_books(self, request: web.Request) -> web.StreamResponse:
        symbol = request.query.get("instId", "")
        failed = await self._rest_faults(symbol or None)
        if failed is not None:
            return failed

        def reply(body: dict[str, Any], status: int = 200) -> web.Response:
            return web.Response(
                status=status, body=orjson.dumps(body), content_type="application/json"
            )

        if not symbol:
            return reply(
                {"code": "50014", "msg": "Parameter instId can not be empty.", "data": []}, 400
            )
        if symbol not in self._state:
            return reply({"code": "51001", "msg": "Instrument ID does not exist.", "data": []}, 400)
        size = request.query.get("sz", "1")
        if not size.isascii() or not size.isdigit() or not 1 <= int(size) <= MAX_LEVELS:
            return reply({"code": "51000", "msg": "Parameter sz error", "data": []}, 400)
        book = self.sources[symbol].book
        bids, asks = book.levels(BID, int(size)), book.levels(ASK, int(size))
        if self.faults.take(Fault.CROSSED_SNAPSHOT, symbol, f"{symbol} REST"):
            bids, asks = crossed_levels(bids, asks)
        inst = self.instruments[symbol]
        data = {
            "asks": _levels(inst, asks),
            "bids": _levels(inst, bids),
            "ts": str(time.time_ns() // 1_000_000),
        }
        return reply({"code": "0", "msg": "", "data": [data]})
