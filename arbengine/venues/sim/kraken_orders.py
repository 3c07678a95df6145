"""Simulated Kraken spot REST order entry on ``KrakenSim``'s aiohttp app, backed by
``SimExchange``.

The wire follows Kraken's spot REST reference (https://docs.kraken.com/api/docs/rest-api/add-order,
.../query-orders-info, .../get-open-orders, .../get-closed-orders, .../get-trades-info,
.../cancel-order, .../get-extended-balance, .../get-server-time) and its authentication guide
(https://docs.kraken.com/api/docs/guides/spot-rest-auth):

* Private calls are ``POST /0/private/<Method>`` with a form-encoded body holding ``nonce``;
  headers ``API-Key`` and ``API-Sign`` = base64(HMAC-SHA512(b64decode(secret), path +
  SHA256(nonce + body))), recomputed here with ``signing.kraken_api_sign``.
* Every reply is HTTP 200 ``{"error":[...],"result":{...}}``: an unknown key is
  ``EAPI:Invalid key``, a wrong signature ``EAPI:Invalid signature``. There is no timestamp
  window: replay protection is the nonce, which must grow strictly per API key (the nonce
  window is 0, Kraken's default), else ``EAPI:Invalid nonce``. ``exchange.skew_ms`` only
  moves ``/0/public/Time``.
* ``AddOrder``: ``ordertype=limit``, ``type=buy|sell``, ``volume``, ``price``, ``pair``
  (altname ``XBTUSD`` or wsname ``BTC/USD``), ``timeinforce=GTC|IOC|GTD`` (Kraken spot has
  no FOK: ``EGeneral:Invalid arguments:timeinforce``), ``cl_ord_id``. Reply
  ``{"descr":{"order":"buy 0.00100000 XBTUSD @ limit 61737.6"},"txid":["O..."]}`` -- no
  fills: they are read back with ``QueryOrders`` (``trades=true`` lists trade ids) and
  ``QueryTrades``.
* ``cl_ord_id`` is unique only among *open* orders of a client ("Kraken verifies cl_ord_id
  uniqueness across open orders for each client",
  https://docs.kraken.com/api/docs/guides/spot-clordid): reusing the id of a closed IOC
  creates a second order. A live duplicate is ``EOrder:Duplicate order`` (the exact text is
  not published; it is what client libraries match on). Its format is a long UUID, a short
  UUID (32 hex digits) or free text of at most 18 characters
  (``EGeneral:Invalid arguments:cl_ord_id`` otherwise).
* Order status ``pending`` (IOC not yet matched), ``open``, ``closed`` (filled),
  ``canceled`` (cancelled, or an IOC whose remainder was not filled, with ``vol_exec`` what
  did fill), ``expired``. ``cost`` and ``fee`` are in the quote currency, the fee positive
  (a charge); amounts are written exactly (8 decimals, more only if needed).
* ``OpenOrders`` / ``ClosedOrders`` take an optional ``cl_ord_id`` filter; ``CancelOrder``
  takes ``txid`` or ``cl_ord_id``; ``BalanceEx`` gives ``balance`` and ``hold_trade`` per
  Kraken asset code (``XXBT``, ``ZUSD``); ``Balance`` the totals.

WebSocket v2 order entry (``on_ws_add_order``, on ``KrakenSim.ws_auth_url``): ``add_order``
with a token issued by ``GetWebSocketsToken``; the same placement rules, error texts and
order fates as ``AddOrder`` (ORDER_TIMEOUT there executes the order and cuts the socket
before the reply).

Faults: the order fates of ``SimExchange.fate`` (ORDER_429 answers ``EOrder:Rate limit
exceeded``, the per-pair trading limit; ORDER_418 ``EGeneral:Temporary lockout``, Kraken's
ban; ORDER_TIMEOUT executes the order and drops the connection without a reply),
REST_DELAY and REST_5XX on every private call, and TRUNCATED (the first half of the reply
body) on every private reply.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import re
import secrets
import time
from collections.abc import Callable
from decimal import Decimal
from email.utils import formatdate
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import orjson
from aiohttp import web

from arbengine.config_schema import CredentialRef
from arbengine.config_secrets import Secret
from arbengine.venues.signing import SigningError, kraken_api_sign
from arbengine.venues.sim.exchange import (
    RejectKind,
    SimExchange,
    SimOrder,
    SimReject,
    atoms_text,
)
from arbengine.venues.sim.faults import Fault

if TYPE_CHECKING:
    from arbengine.venues.sim._server import Conn
    from arbengine.venues.sim.kraken import KrakenSim

__all__ = ["KRAKEN_ASSET_CODES", "KrakenOrders", "kraken_altname"]

# Kraken's own asset codes (Balance / BalanceEx keys) for the sim's plain names. Older
# assets carry an X (crypto) or Z (fiat) prefix; newer ones do not.
KRAKEN_ASSET_CODES = {
    "BTC": "XXBT",
    "ETH": "XETH",
    "USD": "ZUSD",
    "EUR": "ZEUR",
    "GBP": "ZGBP",
    "DOGE": "XXDG",
}
_ALT_BASE = {"BTC": "XBT", "DOGE": "XDG"}

_REJECT_CODES = {
    RejectKind.UNKNOWN_SYMBOL: "EQuery:Unknown asset pair",
    RejectKind.BAD_PRICE: "EGeneral:Invalid arguments:price",
    RejectKind.BAD_SIZE: "EGeneral:Invalid arguments:volume",
    RejectKind.MIN_SIZE: "EOrder:Order minimum not met",
    RejectKind.MIN_NOTIONAL: "EOrder:Cost minimum not met",
    RejectKind.INSUFFICIENT_BALANCE: "EOrder:Insufficient funds",
    RejectKind.DUPLICATE_CLIENT_ID: "EOrder:Duplicate order",
    RejectKind.NOT_FOUND: "EOrder:Unknown order",
    RejectKind.BAD_TIF: "EGeneral:Invalid arguments:timeinforce",
    RejectKind.INJECTED: "EOrder:Order rejected",
}

_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX32 = re.compile(r"[0-9a-fA-F]{32}")


def _cl_ord_id_ok(text: str) -> bool:
    """Kraken's three cl_ord_id formats: a long UUID (36 characters with hyphens), a short
    UUID (32 hex digits) or free text of at most 18 characters."""
    if _UUID.fullmatch(text) or _HEX32.fullmatch(text):
        return True
    return len(text) <= 18 and text.isascii() and text.isprintable()


def kraken_altname(symbol: str) -> str:
    """``BTC/USD`` -> ``XBTUSD`` (the REST pair altname)."""
    base, _, quote = symbol.partition("/")
    return _ALT_BASE.get(base, base) + quote


def _kraken_id(prefix: str, n: int) -> str:
    """Kraken-looking ids (``OQCLML-BW3P3-BUCMWZ``), unique per number."""
    x = (n * 0x9E3779B97F4A7C15) % 2**80  # odd multiplier: a bijection, so ids stay unique
    text = "".join(_B32[(x >> (5 * i)) & 31] for i in range(16))
    return f"{prefix}{text[:5]}-{text[5:10]}-{text[10:16]}"


def _secs(ms: int) -> orjson.Fragment:
    # Kraken writes times as JSON numbers with 4 decimals (1688665496.7808).
    return orjson.Fragment(f"{ms // 1000}.{ms % 1000:03d}0".encode())


class KrakenOrders:
    """The private REST endpoints of one ``KrakenSim``; see the module docstring."""

    def __init__(self, sim: KrakenSim) -> None:
        self.sim = sim
        self.exchange: SimExchange = sim.exchange
        self.nonces: dict[str, int] = {}  # last nonce accepted per API key
        self._txids: dict[int, str] = {}  # sim order id -> txid
        self._orders: dict[str, int] = {}  # txid -> sim order id
        self._trades: dict[str, tuple[int, int]] = {}  # trade txid -> (order id, fill index)
        self._by_cl: dict[tuple[str, str], list[int]] = {}  # (key, cl_ord_id) -> order ids
        self._pairs: dict[str, str] = {}
        for symbol in self.exchange.markets:
            self._pairs[symbol] = symbol
            self._pairs[kraken_altname(symbol)] = symbol
        # WebSocket tokens: token -> [API key, issued (monotonic s), used on a socket yet]
        self.tokens: dict[str, tuple[str, float, bool]] = {}
        self.token_ttl_s = 900.0  # "used within 15 minutes of creation"
        self.ws_orders = 0  # add_order requests seen on the auth socket
        self.drop_next_ws_order = False  # tests: cut the socket before the next add_order

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/0/public/Time", self._time)
        handlers: dict[str, Callable[[str, dict[str, str]], Any]] = {
            "AddOrder": self._add_order,
            "QueryOrders": self._query_orders,
            "OpenOrders": self._open_orders,
            "ClosedOrders": self._closed_orders,
            "QueryTrades": self._query_trades,
            "CancelOrder": self._cancel_order,
            "BalanceEx": self._balance_ex,
            "Balance": self._balance,
            "GetWebSocketsToken": self._ws_token,
        }
        for name, handler in handlers.items():
            app.router.add_post(f"/0/private/{name}", self._private(handler))

    # -- envelope, auth ------------------------------------------------------------------

    def _reply(self, result: Any = None, errors: list[str] | None = None) -> web.Response:
        body = orjson.dumps({"error": errors or [], "result": result if not errors else {}})
        if self.sim.faults.take(Fault.TRUNCATED, None, "private reply"):
            body = body[: max(1, len(body) // 2)]
        return web.Response(body=body, content_type="application/json")

    async def _time(self, request: web.Request) -> web.Response:
        now_ms = self.exchange.now_ms()
        return web.json_response(
            {
                "error": [],
                "result": {"unixtime": now_ms // 1000, "rfc1123": formatdate(now_ms / 1000.0)},
            }
        )

    def _private(
        self, handler: Callable[[str, dict[str, str]], Any]
    ) -> Callable[[web.Request], Any]:
        async def endpoint(request: web.Request) -> web.StreamResponse:
            failed = await self.sim._rest_faults(None)
            if failed is not None:
                return failed
            raw = await request.read()
            try:
                text = raw.decode()
                params = dict(parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text)))
            except (UnicodeDecodeError, ValueError):
                return self._reply(errors=["EGeneral:Invalid arguments"])
            account = self.exchange.account(request.headers.get("API-Key", ""))
            if account is None:
                return self._reply(errors=["EAPI:Invalid key"])
            nonce_text = params.get("nonce", "")
            if not nonce_text.isascii() or not nonce_text.isdigit():
                return self._reply(errors=["EAPI:Invalid nonce"])
            try:
                expected = kraken_api_sign(
                    Secret(account.secret, CredentialRef(source="env", name="SIM_KRAKEN")),
                    request.path,
                    nonce_text,
                    text,
                )
            except SigningError:
                return self._reply(errors=["EAPI:Invalid key"])
            if not hmac.compare_digest(expected, request.headers.get("API-Sign", "")):
                return self._reply(errors=["EAPI:Invalid signature"])
            nonce = int(nonce_text)
            if nonce <= self.nonces.get(account.key, 0):
                return self._reply(errors=["EAPI:Invalid nonce"])
            self.nonces[account.key] = nonce
            result = handler(account.key, params)
            if asyncio.iscoroutine(result):
                result = await result
            if isinstance(result, web.StreamResponse):
                return result
            if result is None:  # the reply is lost: drop the connection, answer nothing
                if request.transport is not None:
                    request.transport.abort()
                return web.Response(status=500)
            return self._reply(result)

        return endpoint

    # -- orders --------------------------------------------------------------------------

    def _txid(self, order: SimOrder) -> str:
        txid = self._txids.get(order.order_id)
        if txid is None:
            txid = _kraken_id("O", order.order_id)
            self._txids[order.order_id] = txid
            self._orders[txid] = order.order_id
        return txid

    def _trade_txid(self, order: SimOrder, index: int) -> str:
        txid = _kraken_id("T", order.fills[index].trade_id)
        self._trades.setdefault(txid, (order.order_id, index))
        return txid

    def _orders_of(self, key: str, cl_ord_id: str) -> list[SimOrder]:
        ids = list(self._by_cl.get((key, cl_ord_id), ()))
        rested = self.exchange.get(key, client_id=cl_ord_id)  # placed with exchange.rest
        if rested is not None and rested.order_id not in ids:
            ids.append(rested.order_id)
        return [self.exchange.orders[i] for i in sorted(ids)]

    def _cl_of(self, order: SimOrder) -> str:
        if order.client_id:
            return order.client_id
        for (_, cl), ids in self._by_cl.items():
            if order.order_id in ids:
                return cl
        return ""

    def _status(self, order: SimOrder) -> tuple[str, str | None]:
        if order.status in ("NEW", "PARTIALLY_FILLED"):
            return ("open" if order.tif == "GTC" else "pending"), None
        if order.status == "FILLED":
            return "closed", None
        if order.status == "CANCELED":
            return "canceled", "User requested"
        return "canceled", "Insufficient liquidity" if order.filled == 0 else "Partially filled"

    def _info(self, order: SimOrder, trades: bool) -> dict[str, Any]:
        market = self.exchange.markets[order.symbol]
        inst = market.instrument
        px, sz = inst.price.format, inst.size.format
        status, reason = self._status(order)
        side = order.side.lower()
        pair = kraken_altname(order.symbol)
        cost = self.exchange.notional(order.symbol, 1, 1) * order.quote_units
        avg = "0.00000"
        if order.filled:
            avg = str(
                (Decimal(order.quote_units) * Decimal(inst.tick) / order.filled).quantize(
                    Decimal(inst.tick)
                )
            )
        info: dict[str, Any] = {
            "refid": None,
            "userref": 0,
            "cl_ord_id": self._cl_of(order) or None,
            "status": status,
            "reason": reason,
            "opentm": _secs(order.created_ms),
            "starttm": 0,
            "expiretm": 0,
            "descr": {
                "pair": pair,
                "type": side,
                "ordertype": "limit",
                "price": px(order.price),
                "price2": "0",
                "leverage": "none",
                "order": f"{side} {sz(order.size)} {pair} @ limit {px(order.price)}",
                "close": "",
            },
            "vol": sz(order.size),
            "vol_exec": sz(order.filled),
            "cost": atoms_text(cost),
            "fee": atoms_text(order.fee_total),
            "price": avg,
            "stopprice": "0.00000",
            "limitprice": "0.00000",
            "misc": "",
            "oflags": "fciq",
            "timeinforce": order.tif,
        }
        if status not in ("open", "pending"):
            info["closetm"] = _secs(order.updated_ms)
        if trades and order.fills:
            info["trades"] = [self._trade_txid(order, i) for i in range(len(order.fills))]
        return info

    def _add_order(self, key: str, p: dict[str, str]) -> dict[str, Any] | web.Response | None:
        symbol = self._pairs.get(p.get("pair", ""))
        if symbol is None:
            return self._reply(errors=["EQuery:Unknown asset pair"])
        if p.get("ordertype") != "limit":
            return self._reply(errors=["EGeneral:Invalid arguments:ordertype"])
        side = {"buy": "BUY", "sell": "SELL"}.get(p.get("type", ""))
        if side is None:
            return self._reply(errors=["EGeneral:Invalid arguments:type"])
        tif = p.get("timeinforce", "GTC")
        if tif not in ("GTC", "IOC"):  # GTD is not simulated; FOK does not exist on spot
            return self._reply(errors=["EGeneral:Invalid arguments:timeinforce"])
        cl = p.get("cl_ord_id", "")
        placed = self._place(key, symbol, side, p.get("price", ""), p.get("volume", ""), tif, cl)
        if isinstance(placed, str):
            return self._reply(errors=[placed])
        order, lost = placed
        txid = self._txid(order)
        if lost:
            return None
        inst = self.exchange.markets[symbol].instrument
        pair = kraken_altname(symbol)
        text = f"{side.lower()} {inst.size.format(order.size)} {pair} @ limit "
        return {"descr": {"order": text + inst.price.format(order.price)}, "txid": [txid]}

    def _place(
        self, key: str, symbol: str, side: str, price: str, size: str, tif: str, cl: str
    ) -> tuple[SimOrder, bool] | str:
        """What REST AddOrder and WS add_order share: the cl_ord_id rules, the order fates
        and the engine. The order and whether its reply is lost, or Kraken's error text."""
        if cl and not _cl_ord_id_ok(cl):
            return "EGeneral:Invalid arguments:cl_ord_id"
        if cl and any(o.open for o in self._orders_of(key, cl)):
            return "EOrder:Duplicate order"
        fate = self.exchange.fate(symbol)
        if fate.kind is Fault.ORDER_429:
            return "EOrder:Rate limit exceeded"
        if fate.kind is Fault.ORDER_418:
            return "EGeneral:Temporary lockout"
        try:
            # The sim keeps the cl_ord_id index itself: SimExchange would refuse any reuse,
            # Kraken only a reuse among open orders.
            order = self.exchange.place(key, symbol, side, price, size, tif, "", fate=fate)
        except SimReject as exc:
            return _REJECT_CODES[exc.kind]
        if cl:
            self._by_cl.setdefault((key, cl), []).append(order.order_id)
        self._txid(order)
        return order, fate.lost_reply

    def _lookup(self, key: str, txid: str) -> SimOrder | None:
        order_id = self._orders.get(txid)
        if order_id is None:
            return None
        return self.exchange.get(key, order_id=order_id)

    def _query_orders(self, key: str, p: dict[str, str]) -> dict[str, Any] | web.Response:
        trades = p.get("trades", "false") == "true"
        cl = p.get("cl_ord_id", "")
        txids = [t.strip() for t in p.get("txid", "").split(",") if t.strip()]
        if not txids and not cl:
            return self._reply(errors=["EGeneral:Invalid arguments:txid"])
        found: list[SimOrder] = []
        for txid in txids:
            order = self._lookup(key, txid)
            if order is None:
                return self._reply(errors=["EOrder:Invalid order"])
            found.append(order)
        if cl:
            found = [o for o in (found or self._orders_of(key, cl)) if self._cl_of(o) == cl]
        return {self._txid(o): self._info(o, trades) for o in found}

    def _listed(self, key: str, p: dict[str, str], want_open: bool) -> dict[str, Any]:
        trades = p.get("trades", "false") == "true"
        cl = p.get("cl_ord_id", "")
        orders = [
            o
            for o in self.exchange.orders.values()
            if o.account == key and o.open == want_open and (not cl or self._cl_of(o) == cl)
        ]
        orders.sort(key=lambda o: o.order_id, reverse=True)  # most recent first
        return {self._txid(o): self._info(o, trades) for o in orders}

    def _open_orders(self, key: str, p: dict[str, str]) -> dict[str, Any]:
        return {"open": self._listed(key, p, True)}

    def _closed_orders(self, key: str, p: dict[str, str]) -> dict[str, Any]:
        closed = self._listed(key, p, False)
        return {"closed": dict(list(closed.items())[:50]), "count": len(closed)}

    def _query_trades(self, key: str, p: dict[str, str]) -> dict[str, Any] | web.Response:
        out: dict[str, Any] = {}
        for txid in (t.strip() for t in p.get("txid", "").split(",") if t.strip()):
            ref = self._trades.get(txid)
            order = self.exchange.orders.get(ref[0]) if ref is not None else None
            if ref is None or order is None or order.account != key:
                return self._reply(errors=["EOrder:Invalid order"])
            fill = order.fills[ref[1]]
            inst = self.exchange.markets[order.symbol].instrument
            out[txid] = {
                "ordertxid": self._txid(order),
                "postxid": "TKH2SE-M7IF5-CFI7LT",
                "pair": kraken_altname(order.symbol),
                "time": _secs(fill.ts_ms),
                "type": order.side.lower(),
                "ordertype": "limit",
                "price": inst.price.format(fill.price),
                "cost": atoms_text(self.exchange.notional(order.symbol, fill.price, fill.size)),
                "fee": atoms_text(fill.fee),
                "vol": inst.size.format(fill.size),
                "margin": "0.00000",
                "misc": "",
                "trade_id": fill.trade_id,
                "maker": False,
            }
        return out

    def _cancel_order(self, key: str, p: dict[str, str]) -> dict[str, Any] | web.Response:
        ref = p.get("cl_ord_id") or p.get("txid", "")
        order = self._lookup(key, ref)
        if order is None:
            live = [o for o in self._orders_of(key, ref) if o.open]
            order = live[0] if live else None
        if order is None or not order.open:
            return self._reply(errors=["EOrder:Unknown order"])
        try:
            self.exchange.cancel(key, order_id=order.order_id)
        except SimReject:
            return self._reply(errors=["EOrder:Unknown order"])
        return {"count": 1}

    # -- WebSocket v2 order entry (the auth endpoint) --------------------------------------

    def _ws_token(self, key: str, p: dict[str, str]) -> dict[str, Any]:
        """``GetWebSocketsToken`` (https://docs.kraken.com/api/docs/rest-api/get-websockets-token):
        ``{"token":..,"expires":900}``. The token is to be used within 15 minutes; once used
        on a connection it stays valid (https://docs.kraken.com/exchange/guides/websockets/authentication)."""
        token = base64.b64encode(secrets.token_bytes(32)).decode().rstrip("=")
        self.tokens[token] = (key, time.monotonic(), False)
        return {"token": token, "expires": int(self.token_ttl_s)}

    def _token_key(self, token: Any) -> str | None:
        entry = self.tokens.get(token) if isinstance(token, str) else None
        if entry is None:
            return None
        key, issued, used = entry
        if not used and time.monotonic() - issued > self.token_ttl_s:
            del self.tokens[token]
            return None
        self.tokens[token] = (key, issued, True)
        return key

    def on_ws_add_order(self, conn: Conn, request: dict[str, Any], time_in: str) -> None:
        """``add_order`` on ``wss://ws-auth.kraken.com/v2``
        (https://docs.kraken.com/api/docs/websocket-v2/add_order): ``params`` carry
        ``order_type``, ``side``, ``order_qty`` and ``limit_price`` (JSON numbers, read here
        as exact decimals), ``time_in_force`` (gtc/gtd/ioc), ``symbol`` (``BTC/USD``),
        ``cl_ord_id`` and the ``token``. The reply is ``{"method":"add_order","req_id":N,
        "result":{"order_id":..,"cl_ord_id":..},"success":true,"time_in":..,"time_out":..}``
        or ``success: false`` with ``error`` (the REST error texts; a token that is unknown
        or expired unused: ``EAPI:Invalid token``). No fills: they come on the
        ``executions`` channel or over REST."""
        sim, req_id = self.sim, request.get("req_id")
        if self.drop_next_ws_order:
            self.drop_next_ws_order = False
            sim._abort(conn)  # the frame is lost with the connection: nothing placed
            return
        self.ws_orders += 1

        def fail(error: str) -> None:
            sim._send_error(conn, "add_order", error, time_in, req_id)

        params = request.get("params")
        if not isinstance(params, dict):
            fail("EGeneral:Invalid arguments:params")
            return
        key = self._token_key(params.get("token"))
        if key is None or key not in self.exchange.accounts:
            fail("EAPI:Invalid token")
            return
        symbol = params.get("symbol")
        if not isinstance(symbol, str) or symbol not in self.exchange.markets:
            fail("EQuery:Unknown asset pair")
            return
        if params.get("order_type") != "limit":
            fail("EGeneral:Invalid arguments:order_type")
            return
        side = {"buy": "BUY", "sell": "SELL"}.get(str(params.get("side")))
        if side is None:
            fail("EGeneral:Invalid arguments:side")
            return
        tif = {"gtc": "GTC", "ioc": "IOC"}.get(str(params.get("time_in_force", "gtc")))
        if tif is None:  # gtd is not simulated; fok does not exist on spot
            fail("EGeneral:Invalid arguments:time_in_force")
            return
        qty, price = params.get("order_qty"), params.get("limit_price")
        if not isinstance(qty, Decimal | int) or isinstance(qty, bool):
            fail("EGeneral:Invalid arguments:order_qty")
            return
        if not isinstance(price, Decimal | int) or isinstance(price, bool):
            fail("EGeneral:Invalid arguments:limit_price")
            return
        cl = params.get("cl_ord_id", "")
        if not isinstance(cl, str):
            fail("EGeneral:Invalid arguments:cl_ord_id")
            return
        placed = self._place(key, symbol, side, f"{price:f}", f"{qty:f}", tif, cl)
        if isinstance(placed, str):
            fail(placed)
            return
        order, lost = placed
        if lost:
            sim._abort(conn)  # executed, and the socket goes down before the answer
            return
        result = {"order_id": self._txid(order)} | ({"cl_ord_id": cl} if cl else {})
        sim._reply(
            conn, {"method": "add_order", "result": result, "success": True}, time_in, req_id
        )

    def _assets(self, key: str) -> dict[str, tuple[int, int]]:
        account = self.exchange.accounts[key]
        assets = set(account.free) | set(account.locked)
        return {
            KRAKEN_ASSET_CODES.get(a, a): (account.free.get(a, 0), account.locked.get(a, 0))
            for a in sorted(assets)
        }

    def _balance_ex(self, key: str, p: dict[str, str]) -> dict[str, Any]:
        return {
            code: {"balance": atoms_text(free + held), "hold_trade": atoms_text(held)}
            for code, (free, held) in self._assets(key).items()
        }

    def _balance(self, key: str, p: dict[str, str]) -> dict[str, Any]:
        return {code: atoms_text(free + held) for code, (free, held) in self._assets(key).items()}
