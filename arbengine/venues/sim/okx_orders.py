"""Simulated OKX v5 order entry: the signed REST trade/account routes and the private
WebSocket ``order`` op, on the ``OkxSim`` app, backed by its ``SimExchange``.

What the venue documents, and this reproduces (https://www.okx.com/docs-v5/en/):

* REST authentication ("REST Authentication > Making Requests"): ``OK-ACCESS-KEY``,
  ``OK-ACCESS-SIGN`` = Base64(HMAC-SHA256(secret, timestamp + METHOD + requestPath + body)),
  ``OK-ACCESS-TIMESTAMP`` (ISO 8601 UTC, ms), ``OK-ACCESS-PASSPHRASE``. Failures answer
  HTTP 401 with the "API Class" codes (#error-code-rest-api-public): 50103/50104/50106/50107
  (header missing), 50111 (unknown key), 50105 (wrong passphrase), 50112 (unparsable
  timestamp), 50113 (bad signature), 50102 ("Timestamp request expired": more than 30 s
  from the venue clock, which the simulator reads as ``exchange.now_ms()``, skew included).
* "Transaction Timeouts": an ``expTime`` header (REST) or field (WS) is the request's
  effective deadline in Unix ms; a place request arriving after it is not processed
  (answered 50037 "Order expired.").
* ``POST /api/v5/trade/order`` (#order-book-trading-trade-post-place-order): reply
  ``{"code","msg","data":[{"clOrdId","ordId","tag","ts","sCode","sMsg","subCode"}],
  "inTime","outTime"}``; a refused order is top-level ``code`` "1" with the reason in
  ``sCode`` (HTTP 200): 51008 insufficient balance, 51016 duplicated clOrdId, 51020 below
  the minimum amount, 51001 unknown instrument, 51000 parameter error.
* ``GET /api/v5/trade/order`` (state ``live`` ``partially_filled`` ``filled``
  ``canceled``; ``accFillSz``, ``avgPx``, ``fee`` negative when charged, ``feeCcy``);
  51603 "Order does not exist". ``GET /api/v5/trade/fills`` (per trade ``tradeId``,
  ``fillPx``, ``fillSz``, ``fee``, ``feeCcy``; newest first). ``POST
  /api/v5/trade/cancel-order`` (51400 when filled, canceled or unknown). ``GET
  /api/v5/trade/orders-pending``, ``GET /api/v5/account/balance`` (``details``: ``ccy``,
  ``availBal``, ``frozenBal``, ``cashBal``), ``GET /api/v5/public/time``.
* Rate limits: 50011 with HTTP 429 (the ORDER_418 fault answers 418, OKX has no ban
  status of its own) and ``Retry-After``.
* ``/ws/v5/private``: ``{"op":"login","args":[{apiKey,passphrase,timestamp,sign}]}`` with
  a Unix-seconds timestamp that expires 30 s after it and the sign over ``timestamp +
  "GET" + "/users/self/verify"``; ``{"event":"login","code":"0"}`` or ``{"event":"error",
  "code":"60009","msg":"Login failed."}`` (60006 for an expired timestamp). Then
  ``{"id","op":"order","args":[{...}]}`` answered ``{"id","op","code","msg","data":[...]}``
  exactly like the REST reply (#order-book-trading-trade-ws-place-order).

Fault fates (``exchange.fate``) per place request: ORDER_429/418 refuse it with
Retry-After; ORDER_TIMEOUT executes it and never answers (REST: the request is held until
the client gives up; WS: the connection is cut); the others act inside ``exchange.place``.

Deviation, on the strict side: OKX only requires clOrdId to be unique among *pending*
orders (a finished order's id may be reused); the simulator refuses any reuse (51016).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import re
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from arbengine.config_schema import CredentialRef
from arbengine.config_secrets import Secret
from arbengine.venues.signing import okx_signature
from arbengine.venues.sim.exchange import (
    Fate,
    RejectKind,
    SimAccount,
    SimExchange,
    SimOrder,
    SimReject,
    atoms_text,
)
from arbengine.venues.sim.faults import Fault

if TYPE_CHECKING:
    from arbengine.venues.sim._server import Conn
    from arbengine.venues.sim.okx import OkxSim

__all__ = ["OkxOrderApi"]

TIMESTAMP_WINDOW_MS = 30_000  # "The request will expire 30 seconds after the timestamp"
_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")
_ORD_TYPES = {"ioc": "IOC", "fok": "FOK", "limit": "GTC"}
_STATES = {
    "NEW": "live",
    "PARTIALLY_FILLED": "partially_filled",
    "FILLED": "filled",
    "CANCELED": "canceled",
    "EXPIRED": "canceled",  # an IOC/FOK remainder: OKX shows the order canceled
}
# SimReject kinds -> (sCode, sMsg) as the "Trade Class" table words them.
_REJECTS: dict[RejectKind, tuple[str, str]] = {
    RejectKind.UNKNOWN_SYMBOL: (
        "51001",
        "Instrument ID, Instrument ID code or Spread ID doesn't exist.",
    ),
    RejectKind.BAD_PRICE: ("51000", "Parameter px error"),
    RejectKind.BAD_SIZE: ("51000", "Parameter sz error"),
    RejectKind.MIN_SIZE: ("51020", "Your order should meet or exceed the minimum order amount."),
    RejectKind.MIN_NOTIONAL: (
        "51020",
        "Your order should meet or exceed the minimum order amount.",
    ),
    RejectKind.INSUFFICIENT_BALANCE: ("51008", "Order failed. Insufficient balance in account"),
    RejectKind.DUPLICATE_CLIENT_ID: ("51016", "Client order ID already exists."),
    RejectKind.NOT_FOUND: ("51603", "Order does not exist."),
    RejectKind.BAD_TIF: ("51000", "Parameter ordType error"),
    RejectKind.INJECTED: (
        "51009",
        "Order blocked. Please contact customer support for assistance.",
    ),
}
_CANCEL_FAILED = (
    "51400",
    "Order cancellation failed as the order has been filled, canceled or does not exist.",
)
_SECRET_REF = CredentialRef(source="env", name="OKX_SIM_ACCOUNT")


class _Refused(Exception):
    """A request-level refusal: HTTP status and top-level code/msg."""

    def __init__(self, status: int, code: str, msg: str) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg


def _parse_iso_ms(text: str) -> int:
    """``2020-12-08T09:08:57.715Z`` -> epoch ms (ValueError if not that form)."""
    if len(text) != 24 or not text.endswith("Z") or text[19] != ".":
        raise ValueError(text)
    whole = datetime.strptime(text[:19] + "+0000", "%Y-%m-%dT%H:%M:%S%z")
    return int(whole.timestamp()) * 1000 + int(text[20:23])


def _sign_ok(secret: str, timestamp: str, method: str, path: str, body: str, sign: str) -> bool:
    expected = okx_signature(Secret(secret, _SECRET_REF), timestamp, method, path, body)
    try:
        base64.b64decode(sign, validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(expected.encode(), sign.encode())


def _json(
    body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(body), headers=headers, content_type="application/json"
    )


def _decimal_text(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text if text != "-0" else "0"


class OkxOrderApi:
    """The order side of one ``OkxSim``."""

    def __init__(self, sim: OkxSim) -> None:
        self.sim = sim
        self.exchange: SimExchange = sim.exchange
        self.held = 0  # REST requests held without an answer (ORDER_TIMEOUT)
        self.expired = 0  # place requests refused for arriving after their expTime

    def routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/api/v5/public/time", self._time)
        r.add_post("/api/v5/trade/order", self._private(self._place, order=True))
        r.add_get("/api/v5/trade/order", self._private(self._get_order))
        r.add_get("/api/v5/trade/fills", self._private(self._fills))
        r.add_post("/api/v5/trade/cancel-order", self._private(self._cancel))
        r.add_get("/api/v5/trade/orders-pending", self._private(self._pending))
        r.add_get("/api/v5/account/balance", self._private(self._balance))

    # -- REST plumbing -------------------------------------------------------------------

    async def _time(self, request: web.Request) -> web.StreamResponse:
        failed = await self.sim._rest_faults(None)
        if failed is not None:
            return failed
        return _json({"code": "0", "msg": "", "data": [{"ts": str(self.exchange.now_ms())}]})

    def _authenticate(self, request: web.Request, body: str) -> SimAccount:
        h = request.headers
        for header, code in (
            ("OK-ACCESS-KEY", "50103"),
            ("OK-ACCESS-PASSPHRASE", "50104"),
            ("OK-ACCESS-SIGN", "50106"),
            ("OK-ACCESS-TIMESTAMP", "50107"),
        ):
            if not h.get(header):
                raise _Refused(401, code, f'Request header "{header}" cannot be empty.')
        account = self.exchange.account(h["OK-ACCESS-KEY"])
        if account is None:
            raise _Refused(401, "50111", "Invalid OK-ACCESS-KEY.")
        if account.passphrase is not None and not hmac.compare_digest(
            account.passphrase.encode(), h["OK-ACCESS-PASSPHRASE"].encode()
        ):
            raise _Refused(401, "50105", 'Request header "OK-ACCESS-PASSPHRASE" incorrect.')
        timestamp = h["OK-ACCESS-TIMESTAMP"]
        try:
            ts_ms = _parse_iso_ms(timestamp)
        except ValueError:
            raise _Refused(401, "50112", "Invalid OK-ACCESS-TIMESTAMP.") from None
        if abs(self.exchange.now_ms() - ts_ms) > TIMESTAMP_WINDOW_MS:
            raise _Refused(401, "50102", "Timestamp request expired.")
        # requestPath is the path with its query string, exactly as sent.
        if not _sign_ok(
            account.secret, timestamp, request.method, request.raw_path, body, h["OK-ACCESS-SIGN"]
        ):
            raise _Refused(401, "50113", "Invalid signature.")
        return account

    def _private(
        self,
        handler: Callable[[web.Request, SimAccount, dict[str, Any]], Awaitable[web.StreamResponse]],
        *,
        order: bool = False,
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def route(request: web.Request) -> web.StreamResponse:
            # The body is in before any injected delay: a delayed request is one the venue
            # has received and processes late (what expTime guards against).
            body = await request.text()
            failed = await self.sim._rest_faults(request.query.get("instId") or None)
            if failed is not None:
                return failed
            try:
                account = self._authenticate(request, body)
                params: dict[str, Any] = dict(request.query)
                if request.method == "POST":
                    if not body:
                        raise _Refused(400, "50000", "Body for POST request cannot be empty.")
                    try:
                        params = orjson.loads(body)
                    except orjson.JSONDecodeError:
                        raise _Refused(400, "50002", "JSON syntax error") from None
                    if not isinstance(params, dict):
                        raise _Refused(400, "50002", "JSON syntax error")
                if order:
                    self._check_exp(request.headers.get("expTime"))
                return await handler(request, account, params)
            except _Refused as exc:
                return _json({"code": exc.code, "msg": exc.msg, "data": []}, exc.status)

        return route

    def _check_exp(self, exp: str | None) -> None:
        if exp is None:
            return
        if not exp.isascii() or not exp.isdigit():
            raise _Refused(400, "51000", "Parameter expTime error")
        if self.exchange.now_ms() > int(exp):
            self.expired += 1
            raise _Refused(200, "50037", "Order expired.")

    async def _hold(self, request: web.Request) -> web.StreamResponse:
        """ORDER_TIMEOUT over REST: the order is done, the answer never comes; the request
        stays open until the client gives up (closes the connection)."""
        self.held += 1
        transport = request.transport
        while transport is not None and not transport.is_closing():
            await asyncio.sleep(0.01)
        return web.Response(status=504)  # written nowhere: the client has gone

    # -- orders ------------------------------------------------------------------------

    def _order_args(self, args: Any) -> tuple[str, str, str, str, str, str]:
        """(instId, side, px, sz, tif, clOrdId) of one place request (``_Refused`` 51000)."""
        if not isinstance(args, dict):
            raise _Refused(400, "50002", "JSON syntax error")
        for name in ("instId", "tdMode", "side", "ordType", "sz"):
            if not isinstance(args.get(name), str) or not args[name]:
                raise _Refused(400, "51000", f"Parameter {name} error")
        if args["side"] not in ("buy", "sell"):
            raise _Refused(400, "51000", "Parameter side error")
        tif = _ORD_TYPES.get(args["ordType"])
        if tif is None:
            raise _Refused(400, "51000", "Parameter ordType error")
        px = args.get("px")
        if not isinstance(px, str) or not px:
            raise _Refused(400, "51000", "Parameter px error")
        cl = args.get("clOrdId", "")
        if not isinstance(cl, str) or (cl and not _ID.match(cl)):
            raise _Refused(400, "51000", "Parameter clOrdId error")
        if args["tdMode"] != "cash":
            # Spot in the simulator's (spot mode) account: margin modes are not offered.
            raise _Refused(200, "51010", "Request unsupported under current account mode")
        return args["instId"], args["side"].upper(), px, args["sz"], tif, cl

    def _execute(self, key: str, args: Any, fate: Fate) -> dict[str, Any]:
        """Place one order; the ``data`` item of the reply (sCode "0" or the refusal)."""
        symbol, side, px, sz, tif, cl = self._order_args(args)
        ts = str(self.exchange.now_ms())
        try:
            order = self.exchange.place(key, symbol, side, px, sz, tif, cl, fate=fate)
        except SimReject as exc:
            code, msg = _REJECTS[exc.kind]
            return {
                "clOrdId": cl,
                "ordId": "",
                "tag": "",
                "ts": ts,
                "sCode": code,
                "sMsg": msg,
                "subCode": "",
            }
        return {
            "clOrdId": cl,
            "ordId": str(order.order_id),
            "tag": "",
            "ts": ts,
            "sCode": "0",
            "sMsg": "Order placed",
            "subCode": "",
        }

    @staticmethod
    def _envelope(item: dict[str, Any], in_us: int) -> dict[str, Any]:
        ok = item["sCode"] == "0"
        return {
            "code": "0" if ok else "1",
            "msg": "" if ok else "All operations failed",
            "data": [item],
            "inTime": str(in_us),
            "outTime": str(time.time_ns() // 1000),
        }

    async def _place(
        self, request: web.Request, account: SimAccount, params: dict[str, Any]
    ) -> web.StreamResponse:
        in_us = time.time_ns() // 1000
        symbol = params.get("instId") if isinstance(params.get("instId"), str) else None
        fate = self.exchange.fate(symbol)
        if fate.kind in (Fault.ORDER_429, Fault.ORDER_418):
            status = 429 if fate.kind is Fault.ORDER_429 else 418
            return _json(
                {"msg": "Too Many Requests", "code": "50011", "data": []},
                status,
                {"Retry-After": _seconds_text(fate.seconds)},
            )
        item = self._execute(account.key, params, fate)
        if fate.lost_reply:
            return await self._hold(request)
        return _json(self._envelope(item, in_us))

    def _find(self, account: SimAccount, params: dict[str, Any]) -> SimOrder | None:
        symbol = params.get("instId")
        if not symbol:
            raise _Refused(400, "50014", "Parameter instId can not be empty.")
        ord_id, cl = params.get("ordId") or "", params.get("clOrdId") or ""
        if not ord_id and not cl:
            raise _Refused(200, "51003", "Either client order ID or order ID is required.")
        if ord_id:
            if not str(ord_id).isdigit():
                return None
            order = self.exchange.get(account.key, order_id=int(ord_id))
        else:
            order = self.exchange.get(account.key, client_id=str(cl))
        return order if order is not None and order.symbol == symbol else None

    async def _get_order(
        self, request: web.Request, account: SimAccount, params: dict[str, Any]
    ) -> web.StreamResponse:
        order = self._find(account, params)
        if order is None:
            return _json({"code": "51603", "msg": "Order does not exist.", "data": []})
        return _json({"code": "0", "msg": "", "data": [self._order_view(order)]})

    async def _fills(
        self, request: web.Request, account: SimAccount, params: dict[str, Any]
    ) -> web.StreamResponse:
        symbol, ord_id = params.get("instId"), params.get("ordId")
        orders = [
            o
            for o in self.exchange.orders.values()
            if o.account == account.key
            and (not symbol or o.symbol == symbol)
            and (not ord_id or str(o.order_id) == ord_id)
        ]
        rows = [self._fill_view(o, i) for o in orders for i in range(len(o.fills))]
        rows.sort(key=lambda r: int(r["tradeId"]), reverse=True)  # newest first
        limit = params.get("limit", "100")
        n = int(limit) if limit.isdigit() and 1 <= int(limit) <= 100 else 100
        return _json({"code": "0", "msg": "", "data": rows[:n]})

    async def _cancel(
        self, request: web.Request, account: SimAccount, params: dict[str, Any]
    ) -> web.StreamResponse:
        order = self._find(account, params)
        ts = str(self.exchange.now_ms())
        cl, oid = str(params.get("clOrdId") or ""), str(params.get("ordId") or "")
        if order is None or not order.open:
            code, msg = _CANCEL_FAILED
            item = {"clOrdId": cl, "ordId": oid, "ts": ts, "sCode": code, "sMsg": msg}
            return _json({"code": "1", "msg": "All operations failed", "data": [item]})
        self.exchange.cancel(account.key, order_id=order.order_id)
        item = {
            "clOrdId": order.client_id,
            "ordId": str(order.order_id),
            "ts": ts,
            "sCode": "0",
            "sMsg": "",
        }
        return _json({"code": "0", "msg": "", "data": [item]})

    async def _pending(
        self, request: web.Request, account: SimAccount, params: dict[str, Any]
    ) -> web.StreamResponse:
        symbol = params.get("instId") or None
        orders = sorted(
            self.exchange.open_orders(account.key, symbol), key=lambda o: o.order_id, reverse=True
        )
        return _json({"code": "0", "msg": "", "data": [self._order_view(o) for o in orders]})

    async def _balance(
        self, request: web.Request, account: SimAccount, params: dict[str, Any]
    ) -> web.StreamResponse:
        wanted = {c for c in str(params.get("ccy", "")).split(",") if c}
        details = []
        for ccy in sorted(set(account.free) | set(account.locked)):
            if wanted and ccy not in wanted:
                continue
            free, locked = account.free.get(ccy, 0), account.locked.get(ccy, 0)
            details.append(
                {
                    "ccy": ccy,
                    "availBal": atoms_text(free),
                    "frozenBal": atoms_text(locked),
                    "cashBal": atoms_text(free + locked),
                    "eq": atoms_text(free + locked),
                    "availEq": "",
                    "uTime": str(self.exchange.now_ms()),
                }
            )
        data = {"totalEq": "", "uTime": str(self.exchange.now_ms()), "details": details}
        return _json({"code": "0", "msg": "", "data": [data]})

    # -- views -------------------------------------------------------------------------

    def _order_view(self, o: SimOrder) -> dict[str, Any]:
        inst = self.exchange.market(o.symbol).instrument
        px, sz = inst.price.format, inst.size.format
        last = o.fills[-1] if o.fills else None
        avg = ""
        if o.filled:
            avg = _decimal_text(Decimal(o.quote_units) * Decimal(inst.tick) / Decimal(o.filled))
        fee_asset = o.fills[-1].fee_asset if o.fills else ""
        return {
            "instType": "SPOT",
            "instId": o.symbol,
            "ccy": "",
            "ordId": str(o.order_id),
            "clOrdId": o.client_id,
            "tag": "",
            "px": px(o.price),
            "sz": sz(o.size),
            "ordType": {"IOC": "ioc", "FOK": "fok", "GTC": "limit"}[o.tif],
            "side": o.side.lower(),
            "posSide": "",
            "tdMode": "cash",
            "accFillSz": sz(o.filled),
            "fillPx": px(last.price) if last else "",
            "tradeId": str(last.trade_id) if last else "",
            "fillSz": sz(last.size) if last else "0",
            "fillTime": str(last.ts_ms) if last else "",
            "avgPx": avg,
            "state": _STATES[o.status],
            "lever": "",
            "fee": _fee_text(o.fee_total),
            "feeCcy": fee_asset,
            "rebate": "0",
            "rebateCcy": "",
            "category": "normal",
            "cancelSource": "14" if o.status == "EXPIRED" else "",
            "uTime": str(o.updated_ms),
            "cTime": str(o.created_ms),
        }

    def _fill_view(self, o: SimOrder, i: int) -> dict[str, Any]:
        inst = self.exchange.market(o.symbol).instrument
        f = o.fills[i]
        return {
            "instType": "SPOT",
            "instId": o.symbol,
            "tradeId": str(f.trade_id),
            "ordId": str(o.order_id),
            "clOrdId": o.client_id,
            "billId": str(f.trade_id * 10 + 7),
            "tag": "",
            "fillPx": inst.price.format(f.price),
            "fillSz": inst.size.format(f.size),
            "side": o.side.lower(),
            "posSide": "",
            "execType": "T",
            "feeCcy": f.fee_asset,
            "fee": _fee_text(f.fee),
            "ts": str(f.ts_ms),
            "fillTime": str(f.ts_ms),
        }

    # -- private WebSocket -------------------------------------------------------------

    def on_private_text(self, conn: Conn, text: str) -> None:
        send = self.sim._send_control
        if text == "ping":
            send(conn, b"pong")
            return
        try:
            request = orjson.loads(text)
        except orjson.JSONDecodeError:
            self._ws_error(conn, "60012", f"Invalid request: {text[:200]}")
            return
        if not isinstance(request, dict) or not isinstance(request.get("args"), list):
            self._ws_error(conn, "60012", f"Invalid request: {text[:200]}")
            return
        op = request.get("op")
        if op == "login":
            self._ws_login(conn, request["args"])
        elif op == "order":
            self._ws_order(conn, request)
        else:
            self._ws_error(conn, "60012", f"Invalid request: {text[:200]}")

    def _ws_error(self, conn: Conn, code: str, msg: str) -> None:
        body = {"event": "error", "code": code, "msg": msg, "connId": conn.id}
        self.sim._send_control(conn, orjson.dumps(body))

    def _ws_login(self, conn: Conn, args: list[Any]) -> None:
        arg = args[0] if len(args) == 1 and isinstance(args[0], dict) else {}
        key, phrase = arg.get("apiKey"), arg.get("passphrase")
        timestamp, sign = arg.get("timestamp"), arg.get("sign")
        if not all(isinstance(v, str) and v for v in (key, phrase, timestamp, sign)):
            self._ws_error(conn, "60009", "Login failed.")
            return
        assert isinstance(key, str) and isinstance(phrase, str)
        assert isinstance(timestamp, str) and isinstance(sign, str)
        account = self.exchange.account(key)
        if not timestamp.isascii() or not timestamp.isdigit():
            self._ws_error(conn, "60009", "Login failed.")
            return
        if abs(self.exchange.now_ms() - int(timestamp) * 1000) > TIMESTAMP_WINDOW_MS:
            self._ws_error(conn, "60006", "Timestamp request expired")
            return
        if (
            account is None
            or (
                account.passphrase is not None
                and not hmac.compare_digest(account.passphrase.encode(), phrase.encode())
            )
            or not _sign_ok(account.secret, timestamp, "GET", "/users/self/verify", "", sign)
        ):
            self._ws_error(conn, "60009", "Login failed.")
            return
        conn.state["account"] = account.key
        body = {"event": "login", "code": "0", "msg": "", "connId": conn.id}
        self.sim._send_control(conn, orjson.dumps(body))

    def _ws_order(self, conn: Conn, request: dict[str, Any]) -> None:
        in_us = time.time_ns() // 1000
        req_id = request.get("id")
        if not isinstance(req_id, str) or not _ID.match(req_id):
            self._ws_error(conn, "60012", "Invalid request: id")
            return
        key = conn.state.get("account")
        if key is None:
            self._ws_error(conn, "60011", "Please log in.")
            return

        def answer(body: dict[str, Any]) -> None:
            self.sim._send_control(conn, orjson.dumps({"id": req_id, "op": "order"} | body))

        args = request["args"]
        if len(args) != 1:
            answer({"code": "60013", "msg": "Invalid args", "data": []})
            return
        symbol = args[0].get("instId") if isinstance(args[0], dict) else None
        fate = self.exchange.fate(symbol if isinstance(symbol, str) else None)
        if fate.kind in (Fault.ORDER_429, Fault.ORDER_418):
            item = {"clOrdId": "", "ordId": "", "tag": "", "ts": str(self.exchange.now_ms())}
            item |= {"sCode": "50011", "sMsg": "Rate limit reached.", "subCode": ""}
            answer(self._envelope(item, in_us))
            return
        try:
            exp = request.get("expTime")
            self._check_exp(exp if exp is None else str(exp))
            item = self._execute(key, args[0], fate)
        except _Refused as exc:
            answer({"code": exc.code, "msg": exc.msg, "data": []})
            return
        if fate.lost_reply:
            self.sim._abort(conn)  # done, and the socket goes down before the answer
            return
        answer(self._envelope(item, in_us))


def _fee_text(fee_atoms: int) -> str:
    """OKX's sign: a fee charged is negative."""
    return atoms_text(-fee_atoms) if fee_atoms else "0"


def _seconds_text(seconds: float) -> str:
    return str(int(seconds)) if seconds == int(seconds) else f"{seconds:g}"
