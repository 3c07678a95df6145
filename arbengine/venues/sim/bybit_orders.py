"""Bybit v5 order entry on the simulated venue: the signed REST trade API and the
``/v5/trade`` WebSocket, backed by ``SimExchange``.

As the v5 docs describe them (one category per ``BybitSim``, like its public socket):

* Signing (https://bybit-exchange.github.io/docs/v5/guide#create-a-request): headers
  ``X-BAPI-API-KEY``, ``X-BAPI-TIMESTAMP``, ``X-BAPI-RECV-WINDOW`` (default 5000) and
  ``X-BAPI-SIGN`` = hex HMAC-SHA256 of ``timestamp + key + recv_window + payload`` (the raw
  query string of a GET, the exact JSON body of a POST), recomputed here with
  ``venues.signing``. The order of checks is key (10003 "API key is invalid."), then time
  (10002 unless ``server_time - recv_window <= timestamp < server_time + 1000``), then the
  signature (10004). Errors answer HTTP 200 with ``retCode``
  (https://bybit-exchange.github.io/docs/v5/error).
* ``POST /v5/order/create`` (https://bybit-exchange.github.io/docs/v5/order/create-order):
  ``{"category","symbol","side":"Buy|Sell","orderType":"Limit","qty","price",
  "timeInForce":"GTC|IOC|FOK","orderLinkId"}`` -> ``result {"orderId","orderLinkId"}``, no
  fills (the doc: "The ack of create order request indicates that the request is
  successfully accepted"). Market and PostOnly orders are not simulated (10001).
* ``GET /v5/order/realtime`` (.../order/open-order): by ``orderId``/``orderLinkId`` any
  status; else ``openOnly=0`` open orders, ``openOnly=1`` closed ones; ``limit`` 1..50,
  ``cursor``/``nextPageCursor``. Statuses ``New``, ``PartiallyFilled``, ``Filled``,
  ``Cancelled`` and, spot only, ``PartiallyFilledCanceled``; totals ``cumExecQty``,
  ``cumExecValue``, ``cumExecFee`` and ``cumFeeDetail``.
* ``GET /v5/execution/list`` (.../order/execution): one item per trade, newest first,
  ``execId``, ``execPrice``, ``execQty``, ``execFee``, ``feeCurrency``; ``limit`` 1..100.
* ``POST /v5/order/cancel`` (.../order/cancel-order): 110001 "Order does not exist" for an
  unknown or finished order.
* ``GET /v5/account/wallet-balance?accountType=UNIFIED`` (.../account/wallet-balance):
  per coin ``walletBalance`` (free + locked) and ``locked`` (held by open spot orders).
* ``GET /v5/market/time`` (.../market/time): ``timeSecond``, ``timeNano`` (public).
* ``GET /v5/position/list`` (.../position/position, contracts): ``symbol`` (always listed)
  or ``settleCoin`` (open positions only); ``side`` Buy/Sell/"", ``size``, ``avgPrice``
  (the average entry price, "0" when flat) and ``positionValue`` (the entry value).
* ``/v5/trade`` (https://bybit-exchange.github.io/docs/v5/websocket/trade/guideline):
  ``{"op":"auth","args":[key, expires, sign]}`` with sign = hex HMAC-SHA256 of
  ``"GET/realtime" + expires`` (10004 invalid sign, 20001 repeat auth, 10001 param error,
  which the sim also answers for an ``expires`` already past); then ``{"reqId","header":
  {"X-BAPI-TIMESTAMP","X-BAPI-RECV-WINDOW"},"op":"order.create"|"order.cancel","args":
  [{..}]}`` answered ``{"reqId","retCode","retMsg","op","data","header":{..},"connId"}``
  (20006 duplicate reqId, 10404 unknown op); ``{"op":"ping"}`` gets ``"op":"pong"``.

Spot fees are the taker rate, charged in what the trade received (the doc's "Spot Fee
Currency Instruction": buy -> base coin, sell -> quote coin, for a positive fee rate); a
fee is positive text when charged. Linear contracts charge USDT.

Fault fates (``exchange.fate``): ORDER_429 -> retCode 10006 "Too many visits!" (HTTP 200,
as Bybit's per-UID limit answers) with ``X-Bapi-Limit-Status: 0`` and
``X-Bapi-Limit-Reset-Timestamp`` = now + ``seconds``; ORDER_418 -> HTTP 403 (Bybit's IP
ban) with ``Retry-After: seconds`` (the docs give no header: a ban "usually" lasts 30
minutes; the sim says how long so tests can check it); over the WebSocket, 10006 and
10009 "IP has been banned." with the reset timestamp in the reply's header.
ORDER_TIMEOUT executes the order and drops the connection without an answer (REST and WS).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

import orjson
from aiohttp import WSMsgType, web

from arbengine.config_schema import CredentialRef
from arbengine.config_secrets import Secret
from arbengine.venues import signing
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
    from arbengine.venues.sim.bybit import BybitSim

__all__ = ["BybitOrderApi", "order_status"]

DEFAULT_RECV_WINDOW: Final = 5000
FUTURE_TOLERANCE_MS: Final = 1000  # "timestamp < server_time + 1000"
ORDER_LIMIT: Final = 20  # X-Bapi-Limit of order.create (spot, per second)
_LINK_ID = re.compile(r"[A-Za-z0-9_-]{1,36}")
_REF = CredentialRef("sim", "bybit")

# SimReject kinds -> (retCode, retMsg) per category (v5 error page: "Spot Trade" table for
# spot; the UTA/derivatives table for linear).
_SPOT_CODES: Final[dict[RejectKind, tuple[int, str]]] = {
    RejectKind.UNKNOWN_SYMBOL: (170121, "Invalid symbol."),
    RejectKind.BAD_PRICE: (170134, "Order price decimal too long."),
    RejectKind.BAD_SIZE: (170137, "Order volume decimal too long"),
    RejectKind.MIN_SIZE: (170136, "Order quantity lower than the minimum."),
    RejectKind.MIN_NOTIONAL: (170140, "Transaction amount lower than the minimum."),
    RejectKind.INSUFFICIENT_BALANCE: (170131, "Balance insufficient"),
    RejectKind.DUPLICATE_CLIENT_ID: (110072, "OrderLinkedID is duplicate"),
    RejectKind.NOT_FOUND: (110001, "Order does not exist"),
    RejectKind.BAD_TIF: (170115, "Invalid timeInForce."),
    RejectKind.INJECTED: (170210, "New order rejected."),
}
_LINEAR_CODES: Final[dict[RejectKind, tuple[int, str]]] = {
    RejectKind.UNKNOWN_SYMBOL: (10001, "params error: symbol invalid"),
    RejectKind.BAD_PRICE: (10001, "params error: price invalid"),
    RejectKind.BAD_SIZE: (10001, "params error: qty invalid"),
    RejectKind.MIN_SIZE: (10001, "The order quantity is below the minimum"),
    RejectKind.MIN_NOTIONAL: (110094, "Order does not meet minimum order value"),
    RejectKind.INSUFFICIENT_BALANCE: (110007, "Available balance is insufficient"),
    RejectKind.DUPLICATE_CLIENT_ID: (110072, "OrderLinkedID is duplicate"),
    RejectKind.NOT_FOUND: (110001, "Order does not exist"),
    RejectKind.BAD_TIF: (10001, "params error: timeInForce invalid"),
    RejectKind.INJECTED: (110032, "Order is illegal"),
}


def order_status(order: SimOrder, category: str) -> str:
    """The v5 ``orderStatus`` word of a simulated order."""
    if order.status == "NEW":
        return "New"
    if order.status == "PARTIALLY_FILLED":
        return "PartiallyFilled"
    if order.status == "FILLED":
        return "Filled"
    # IOC/FOK remainders and cancels: spot tells a partly filled one apart; derivatives
    # say Cancelled with an executed qty (enum "orderStatus").
    if order.filled and category == "spot":
        return "PartiallyFilledCanceled"
    return "Cancelled"


class _Answer:
    """What one order request came to: a retCode reply, or nothing at all (lost)."""

    __slots__ = ("at_ms", "code", "data", "headers", "lost", "msg", "status")

    def __init__(
        self,
        code: int,
        msg: str,
        data: dict[str, Any] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        status: int = 200,
        lost: bool = False,
        at_ms: int | None = None,
    ) -> None:
        # The venue time the answer was decided at: its reply's ``time``, so a reset
        # timestamp in its headers and that time are of one instant.
        self.at_ms = at_ms
        self.code = code
        self.msg = msg
        self.data = data if data is not None else {}
        self.headers = dict(headers or {})
        self.status = status
        self.lost = lost


def _secret(text: str) -> Secret:
    return Secret(text, _REF)


def _body_symbol(body: str) -> str | None:
    """The ``symbol`` of a JSON body, for symbol-bound faults (None if it has none)."""
    try:
        params = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    symbol = params.get("symbol") if isinstance(params, dict) else None
    return symbol if isinstance(symbol, str) else None


class BybitOrderApi:
    """The order side of one ``BybitSim`` (one category)."""

    def __init__(self, sim: BybitSim) -> None:
        self.sim = sim
        self.exchange: SimExchange = sim.exchange
        self.category = sim.category
        self.codes = _SPOT_CODES if self.category == "spot" else _LINEAR_CODES
        self.ws_conns: dict[web.WebSocketResponse, web.Request] = {}
        self.ws_logins = 0  # successful WebSocket auths
        self.ws_orders = 0  # order.create frames received
        self.rest_orders = 0  # POST /v5/order/create received
        self.order_limit = ORDER_LIMIT  # order.create per second (tests lower it)
        self._window_start = 0
        self._window_count = 0
        self._conn_ids = itertools.count(1)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v5/order/create", self._rest_create)
        app.router.add_post("/v5/order/cancel", self._rest_cancel)
        app.router.add_get("/v5/order/realtime", self._rest_realtime)
        app.router.add_get("/v5/execution/list", self._rest_executions)
        app.router.add_get("/v5/account/wallet-balance", self._rest_wallet)
        app.router.add_get("/v5/market/time", self._rest_time)
        app.router.add_get("/v5/position/list", self._rest_positions)
        app.router.add_get("/v5/trade", self._ws_trade)
        app.on_shutdown.append(self._close_ws)

    # -- replies ----------------------------------------------------------------------------

    def _order_window(self) -> tuple[int, int]:
        """(orders counted in the current one-second window, when it resets), venue ms.
        Bybit limits order.create per UID per second and reports what is left."""
        now = self.exchange.now_ms()
        start = now - now % 1000
        if start != self._window_start:
            self._window_start, self._window_count = start, 0
        return self._window_count, start + 1000

    def _limit_headers(
        self, remaining: int | None = None, reset_ms: int | None = None
    ) -> dict[str, str]:
        count, reset = self._order_window()
        left = max(0, self.order_limit - count) if remaining is None else remaining
        return {
            "X-Bapi-Limit": str(self.order_limit),
            "X-Bapi-Limit-Status": str(left),
            "X-Bapi-Limit-Reset-Timestamp": str(reset if reset_ms is None else reset_ms),
        }

    def _reply(
        self,
        code: int,
        msg: str,
        result: dict[str, Any] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        status: int = 200,
        at_ms: int | None = None,
    ) -> web.Response:
        body = {
            "retCode": code,
            "retMsg": msg,
            "result": result if result is not None else {},
            "retExtInfo": {},
            "time": self.exchange.now_ms() if at_ms is None else at_ms,
        }
        return web.Response(
            status=status,
            body=orjson.dumps(body),
            headers={**self._limit_headers(), **dict(headers or {})},
            content_type="application/json",
        )

    def _answer(self, request: web.Request, answer: _Answer) -> web.StreamResponse:
        if answer.lost:
            # Executed, and the reply is lost: cut the connection, as a network failure would.
            transport = request.transport
            if transport is not None:
                transport.abort()
            return web.Response(status=200)
        if answer.status == 403:
            return web.Response(status=403, text="403 Forbidden", headers=answer.headers)
        return self._reply(
            answer.code, answer.msg, answer.data, headers=answer.headers, at_ms=answer.at_ms
        )

    # -- authentication ---------------------------------------------------------------------

    def _check_time(self, ts_text: str, window_text: str) -> tuple[int, int] | _Answer:
        window_text = window_text or str(DEFAULT_RECV_WINDOW)
        if not (ts_text.isascii() and ts_text.isdigit()):
            return _Answer(10001, "params error: X-BAPI-TIMESTAMP invalid")
        if not (window_text.isascii() and window_text.isdigit()) or int(window_text) <= 0:
            return _Answer(10001, "params error: X-BAPI-RECV-WINDOW invalid")
        ts, window = int(ts_text), int(window_text)
        server = self.exchange.now_ms()
        if not server - window <= ts < server + FUTURE_TOLERANCE_MS:
            return _Answer(
                10002,
                "invalid request, please check your server timestamp or recv_window param. "
                f"req_timestamp[{ts}],server_timestamp[{server}],recv_window[{window}]",
            )
        return ts, window

    def _authenticate(self, request: web.Request, payload: str) -> SimAccount | _Answer:
        h = request.headers
        account = self.exchange.account(h.get("X-BAPI-API-KEY", ""))
        if account is None:
            return _Answer(10003, "API key is invalid.")
        checked = self._check_time(h.get("X-BAPI-TIMESTAMP", ""), h.get("X-BAPI-RECV-WINDOW", ""))
        if isinstance(checked, _Answer):
            return checked
        ts, window = checked
        expected = signing.bybit_signature(
            _secret(account.secret), ts, account.key, window, payload
        )
        if not hmac.compare_digest(expected.encode(), h.get("X-BAPI-SIGN", "").encode()):
            return _Answer(10004, "Error sign, please check your signature generation algorithm.")
        return account

    async def _signed(self, request: web.Request) -> tuple[SimAccount, str] | web.StreamResponse:
        """REST faults (for the symbol the request names), then the signature: the account
        and the signed payload text."""
        if request.method == "GET":
            payload = request.query_string
            symbol = request.query.get("symbol") or None
        else:
            payload = (await request.read()).decode("utf-8", errors="replace")
            symbol = _body_symbol(payload)
        failed = await self.sim._rest_faults(symbol)
        if failed is not None:
            return failed
        auth = self._authenticate(request, payload)
        if isinstance(auth, _Answer):
            return self._answer(request, auth)
        return auth, payload

    # -- orders (shared by REST and WebSocket) ----------------------------------------------

    def _reject(self, exc: SimReject) -> _Answer:
        code, msg = self.codes[exc.kind]
        return _Answer(code, msg)

    def _create(self, account: SimAccount, params: object) -> _Answer:
        if not isinstance(params, dict):
            return _Answer(10001, "params error: the request body is not a JSON object")
        if params.get("category") != self.category:
            return _Answer(10001, "params error: category invalid")
        symbol = params.get("symbol")
        if not isinstance(symbol, str) or symbol not in self.exchange.markets:
            return self._reject(SimReject(RejectKind.UNKNOWN_SYMBOL, "unknown symbol"))
        side = params.get("side")
        if side not in ("Buy", "Sell"):
            return _Answer(170117 if self.category == "spot" else 10001, "Invalid side.")
        if params.get("orderType") != "Limit":
            return _Answer(10001, "params error: the simulator takes Limit orders only")
        tif = params.get("timeInForce", "GTC")
        if tif not in ("GTC", "IOC", "FOK"):
            return self._reject(SimReject(RejectKind.BAD_TIF, "bad tif"))
        qty, price = params.get("qty"), params.get("price")
        if not isinstance(qty, str) or not isinstance(price, str):
            return _Answer(170130 if self.category == "spot" else 10001, "params error: qty/price")
        link = params.get("orderLinkId", "")
        if not isinstance(link, str) or (link and not _LINK_ID.fullmatch(link)):
            return _Answer(10001, "params error: orderLinkId invalid")
        count, reset = self._order_window()
        if count >= self.order_limit:
            now = self.exchange.now_ms()
            return _Answer(
                10006, "Too many visits!", headers=self._limit_headers(0, reset), at_ms=now
            )
        self._window_count += 1
        fate = self.exchange.fate(symbol)
        limited = self._rate_limited(fate)
        if limited is not None:
            return limited
        try:
            order = self.exchange.place(
                account.key, symbol, side.upper(), price, qty, tif, link, fate=fate
            )
        except SimReject as exc:
            return self._reject(exc)
        return _Answer(
            0,
            "OK",
            {"orderId": str(order.order_id), "orderLinkId": order.client_id},
            lost=fate.lost_reply,
        )

    def _rate_limited(self, fate: Fate) -> _Answer | None:
        now = self.exchange.now_ms()
        if fate.kind is Fault.ORDER_429:
            reset = now + round(fate.seconds * 1000)
            headers = self._limit_headers(0, reset)
            return _Answer(10006, "Too many visits!", headers=headers, at_ms=now)
        if fate.kind is Fault.ORDER_418:
            return _Answer(
                10009,
                "IP has been banned.",
                status=403,
                headers={"Retry-After": f"{fate.seconds:g}"},
                at_ms=now,
            )
        return None

    def _cancel(self, account: SimAccount, params: object) -> _Answer:
        if not isinstance(params, dict):
            return _Answer(10001, "params error: the request body is not a JSON object")
        if params.get("category") != self.category:
            return _Answer(10001, "params error: category invalid")
        order_id, link = params.get("orderId", ""), params.get("orderLinkId", "")
        if not isinstance(order_id, str) or not isinstance(link, str) or not (order_id or link):
            return _Answer(10001, "params error: orderId or orderLinkId is required")
        try:
            if order_id:
                if not order_id.isdigit():
                    raise SimReject(RejectKind.NOT_FOUND, "bad order id")
                order = self.exchange.cancel(account.key, order_id=int(order_id))
            else:
                order = self.exchange.cancel(account.key, client_id=link)
        except SimReject as exc:
            return self._reject(exc)
        return _Answer(0, "OK", {"orderId": str(order.order_id), "orderLinkId": order.client_id})

    # -- REST routes ------------------------------------------------------------------------

    async def _rest_create(self, request: web.Request) -> web.StreamResponse:
        self.rest_orders += 1
        signed = await self._signed(request)
        if isinstance(signed, web.StreamResponse):
            return signed
        account, body = signed
        try:
            params = orjson.loads(body)
        except orjson.JSONDecodeError:
            return self._reply(10001, "params error: the request body is not JSON")
        return self._answer(request, self._create(account, params))

    async def _rest_cancel(self, request: web.Request) -> web.StreamResponse:
        signed = await self._signed(request)
        if isinstance(signed, web.StreamResponse):
            return signed
        account, body = signed
        try:
            params = orjson.loads(body)
        except orjson.JSONDecodeError:
            return self._reply(10001, "params error: the request body is not JSON")
        return self._answer(request, self._cancel(account, params))

    def _page(
        self, query: Mapping[str, str], items: list[Any], max_limit: int, default: int
    ) -> tuple[list[Any], str] | web.Response:
        limit_text = query.get("limit", str(default))
        if (
            not (limit_text.isascii() and limit_text.isdigit())
            or not 1 <= int(limit_text) <= max_limit
        ):
            return self._reply(10001, "params error: limit invalid")
        cursor = query.get("cursor", "")
        start = int(cursor) if cursor.isascii() and cursor.isdigit() else 0
        end = start + int(limit_text)
        return items[start:end], (str(end) if end < len(items) else "")

    def _selected(self, key: str, query: Mapping[str, str]) -> list[SimOrder]:
        """The account's orders a realtime/execution query names, by the doc's priority
        orderId > orderLinkId > symbol (an orderId that is not a number names none)."""
        order_id, link, symbol = (query.get(k, "") for k in ("orderId", "orderLinkId", "symbol"))
        if order_id:
            if not order_id.isdigit():
                return []
            found = self.exchange.get(key, order_id=int(order_id))
            return [found] if found is not None else []
        if link:
            found = self.exchange.get(key, client_id=link)
            return [found] if found is not None else []
        return [
            o
            for o in self.exchange.orders.values()
            if o.account == key and (not symbol or o.symbol == symbol)
        ]

    async def _rest_realtime(self, request: web.Request) -> web.StreamResponse:
        signed = await self._signed(request)
        if isinstance(signed, web.StreamResponse):
            return signed
        account, _ = signed
        q = request.query
        if q.get("category") != self.category:
            return self._reply(10001, "params error: category invalid")
        orders = self._selected(account.key, q)
        if not (q.get("orderId") or q.get("orderLinkId")):
            open_only = q.get("openOnly", "0")
            if open_only not in ("0", "1"):
                return self._reply(10001, "params error: openOnly invalid")
            orders = [o for o in orders if o.open == (open_only == "0")]
        orders.sort(key=lambda o: (o.created_ms, o.order_id), reverse=True)
        page = self._page(q, orders, 50, 20)
        if isinstance(page, web.Response):
            return page
        items, cursor = page
        result = {
            "list": [self._order_item(o) for o in items],
            "nextPageCursor": cursor,
            "category": self.category,
        }
        return self._reply(0, "OK", result)

    async def _rest_executions(self, request: web.Request) -> web.StreamResponse:
        signed = await self._signed(request)
        if isinstance(signed, web.StreamResponse):
            return signed
        account, _ = signed
        q = request.query
        if q.get("category") != self.category:
            return self._reply(10001, "params error: category invalid")
        trades = [(o, f) for o in self._selected(account.key, q) for f in o.fills]
        trades.sort(key=lambda t: (t[1].ts_ms, t[1].trade_id), reverse=True)
        page = self._page(q, trades, 100, 50)
        if isinstance(page, web.Response):
            return page
        items, cursor = page
        result = {
            "nextPageCursor": cursor,
            "category": self.category,
            "list": [self._execution_item(o, f) for o, f in items],
        }
        return self._reply(0, "OK", result)

    async def _rest_wallet(self, request: web.Request) -> web.StreamResponse:
        signed = await self._signed(request)
        if isinstance(signed, web.StreamResponse):
            return signed
        account, _ = signed
        q = request.query
        if q.get("accountType") != "UNIFIED":
            return self._reply(10001, "accountType only support UNIFIED.")
        wanted = {c for c in q.get("coin", "").split(",") if c}
        coins = []
        for asset in sorted(set(account.free) | set(account.locked)):
            free, locked = account.free.get(asset, 0), account.locked.get(asset, 0)
            if (wanted and asset not in wanted) or (not wanted and not (free or locked)):
                continue
            total = atoms_text(free + locked)
            coins.append(
                {
                    "availableToBorrow": "",
                    "bonus": "0",
                    "accruedInterest": "0",
                    "availableToWithdraw": "",
                    "totalOrderIM": "0",
                    "equity": total,
                    "totalPositionMM": "0",
                    "usdValue": "",
                    "unrealisedPnl": "0",
                    "collateralSwitch": True,
                    "spotHedgingQty": "0",
                    "borrowAmount": "0",
                    "totalPositionIM": "0",
                    "walletBalance": total,
                    "cumRealisedPnl": "0",
                    "locked": atoms_text(locked),
                    "marginCollateral": True,
                    "coin": asset,
                }
            )
        # The USD totals need prices the simulator does not convert: left empty, as the doc
        # shows them for accounts where they do not apply.
        entry = {
            "totalEquity": "",
            "accountIMRate": "",
            "totalMarginBalance": "",
            "totalInitialMargin": "",
            "accountType": "UNIFIED",
            "totalAvailableBalance": "",
            "accountMMRate": "",
            "totalPerpUPL": "",
            "totalWalletBalance": "",
            "accountLTV": "",
            "totalMaintenanceMargin": "",
            "coin": coins,
        }
        return self._reply(0, "OK", {"list": [entry]})

    async def _rest_positions(self, request: web.Request) -> web.StreamResponse:
        signed = await self._signed(request)
        if isinstance(signed, web.StreamResponse):
            return signed
        account, _ = signed
        q = request.query
        if q.get("category") != self.category or self.category == "spot":
            return self._reply(10001, "params error: category invalid")
        symbol, settle = q.get("symbol", ""), q.get("settleCoin", "")
        if not (symbol or settle):
            return self._reply(10001, "params error: symbol or settleCoin is required")
        if symbol:
            # "If symbol passed, it returns data regardless of having position or not."
            names = [symbol] if symbol in self.exchange.markets else []
        else:
            names = [
                s
                for s, m in self.exchange.markets.items()
                if m.quote == settle and account.positions.get(s, 0)
            ]
        page = self._page(q, sorted(names), 200, 20)
        if isinstance(page, web.Response):
            return page
        items, cursor = page
        result = {
            "list": [self._position_item(account, s) for s in items],
            "nextPageCursor": cursor,
            "category": self.category,
        }
        return self._reply(0, "OK", result)

    def _position_item(self, account: SimAccount, symbol: str) -> dict[str, Any]:
        lots = account.positions.get(symbol, 0)
        size = self.exchange.markets[symbol].instrument.size.format(abs(lots))
        # The entry price comes from the position's basis (what it cost, 8 places); margin
        # and mark fields are not modelled and stay empty rather than made up.
        basis = account.basis.get(symbol, 0)
        avg = self.exchange.entry_price(account.key, symbol) if lots else "0"
        return {
            "positionIdx": 0,
            "riskId": 1,
            "riskLimitValue": "",
            "symbol": symbol,
            "side": "Buy" if lots > 0 else "Sell" if lots < 0 else "",
            "size": size,
            "avgPrice": avg,
            "positionValue": atoms_text(abs(basis)),
            "tradeMode": 0,
            "positionStatus": "Normal",
            "autoAddMargin": 0,
            "adlRankIndicator": 0,
            "leverage": "",
            "positionBalance": "",
            "markPrice": "",
            "liqPrice": "",
            "bustPrice": "",
            "positionMM": "",
            "positionIM": "",
            "tpslMode": "Full",
            "takeProfit": "",
            "stopLoss": "",
            "trailingStop": "",
            "unrealisedPnl": "",
            "curRealisedPnl": "",
            "cumRealisedPnl": "",
            "seq": -1,
            "isReduceOnly": False,
            "createdTime": "",
            "updatedTime": "",
        }

    async def _rest_time(self, request: web.Request) -> web.StreamResponse:
        failed = await self.sim._rest_faults(None)
        if failed is not None:
            return failed
        now = self.exchange.now_ms()
        result = {"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)}
        return self._reply(0, "OK", result)

    # -- reply items ------------------------------------------------------------------------

    def _fee_text(self, order: SimOrder) -> dict[str, str]:
        detail: dict[str, int] = {}
        for f in order.fills:
            detail[f.fee_asset] = detail.get(f.fee_asset, 0) + f.fee
        return {asset: atoms_text(fee) for asset, fee in detail.items()}

    def _order_item(self, order: SimOrder) -> dict[str, Any]:
        m = self.exchange.markets[order.symbol]
        px, sz = m.instrument.price.format, m.instrument.size.format
        value = sum(self.exchange.notional(order.symbol, f.price, f.size) for f in order.fills)
        leaves = order.size - order.filled if order.open else 0
        avg = ""
        if order.filled:
            avg_ticks = Decimal(order.quote_units) / Decimal(order.filled)
            avg = str((avg_ticks * Decimal(m.instrument.tick)).normalize())
        return {
            "orderId": str(order.order_id),
            "orderLinkId": order.client_id,
            "blockTradeId": "",
            "symbol": order.symbol,
            "price": px(order.price),
            "qty": sz(order.size),
            "side": "Buy" if order.side == "BUY" else "Sell",
            "isLeverage": "0",
            "positionIdx": 0,
            "orderStatus": order_status(order, self.category),
            "cancelType": "CancelByUser" if order.status == "CANCELED" else "UNKNOWN",
            "rejectReason": "EC_NoError",
            "avgPrice": avg,
            "leavesQty": sz(leaves),
            "leavesValue": atoms_text(self.exchange.notional(order.symbol, order.price, leaves)),
            "cumExecQty": sz(order.filled),
            "cumExecValue": atoms_text(value),
            "cumExecFee": atoms_text(order.fee_total),
            "timeInForce": order.tif,
            "orderType": "Limit",
            "stopOrderType": "",
            "orderIv": "",
            "triggerPrice": "0",
            "takeProfit": "",
            "stopLoss": "",
            "tpTriggerBy": "",
            "slTriggerBy": "",
            "triggerDirection": 0,
            "triggerBy": "",
            "lastPriceOnCreated": "",
            "basePrice": "",
            "reduceOnly": False,
            "closeOnTrigger": False,
            "smpType": "None",
            "smpGroup": 0,
            "smpOrderId": "",
            "tpslMode": "",
            "tpLimitPrice": "",
            "slLimitPrice": "",
            "placeType": "",
            "createdTime": str(order.created_ms),
            "updatedTime": str(order.updated_ms),
            "cumFeeDetail": self._fee_text(order),
        }

    def _execution_item(self, order: SimOrder, fill: Any) -> dict[str, Any]:
        m = self.exchange.markets[order.symbol]
        px, sz = m.instrument.price.format, m.instrument.size.format
        filled_then = sum(f.size for f in order.fills if f.trade_id <= fill.trade_id)
        return {
            "symbol": order.symbol,
            "orderType": "Limit",
            "underlyingPrice": "",
            "orderLinkId": order.client_id,
            "side": "Buy" if order.side == "BUY" else "Sell",
            "indexPrice": "",
            "orderId": str(order.order_id),
            "stopOrderType": "",
            "leavesQty": sz(order.size - filled_then),
            "execTime": str(fill.ts_ms),
            "feeCurrency": fill.fee_asset,
            "isMaker": False,
            "execFee": atoms_text(fill.fee),
            "feeRate": str(Decimal(self.sim.fee_bps) / 10_000),
            "execId": str(fill.trade_id),
            "tradeIv": "",
            "blockTradeId": "",
            "markPrice": px(fill.price),
            "execPrice": px(fill.price),
            "markIv": "",
            "orderQty": sz(order.size),
            "orderPrice": px(order.price),
            "execValue": atoms_text(self.exchange.notional(order.symbol, fill.price, fill.size)),
            "execType": "Trade",
            "execQty": sz(fill.size),
            "closedSize": "",
            "seq": fill.trade_id,
        }

    # -- /v5/trade WebSocket ----------------------------------------------------------------

    async def _ws_trade(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True, compress=False)
        await ws.prepare(request)
        self.ws_conns[ws] = request
        conn_id = f"sim{next(self._conn_ids):08d}-trade"
        state: dict[str, Any] = {"account": None, "req_ids": set()}
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                reply = self._ws_frame(state, conn_id, msg.data)
                if reply is None:
                    # ORDER_TIMEOUT: executed, never answered; the connection goes down.
                    if request.transport is not None:
                        request.transport.abort()
                    break
                await ws.send_str(reply.decode())
        except ConnectionError:
            pass  # the client went away mid-reply
        finally:
            self.ws_conns.pop(ws, None)
        return ws

    async def _close_ws(self, _app: web.Application) -> None:
        """Shutdown: close the order sockets too (going away), or the server waits on them."""
        for ws in list(self.ws_conns):
            with contextlib.suppress(ConnectionError, RuntimeError, TimeoutError):
                await asyncio.wait_for(ws.close(code=1001, message=b"simulator shutdown"), 1.0)

    def drop_ws(self) -> None:
        """Cut every order WebSocket now (TCP close, no close frame)."""
        for request in list(self.ws_conns.values()):
            if request.transport is not None:
                request.transport.abort()

    def _ws_frame(self, state: dict[str, Any], conn_id: str, text: str) -> bytes | None:
        try:
            frame = orjson.loads(text)
        except orjson.JSONDecodeError:
            return orjson.dumps(
                {"retCode": 10001, "retMsg": "Params Error: not JSON", "op": "", "connId": conn_id}
            )
        if not isinstance(frame, dict):
            frame = {}
        op = frame.get("op")
        req_id = frame.get("reqId")
        base: dict[str, Any] = {"reqId": req_id} if isinstance(req_id, str) else {}
        if op == "ping":
            now = str(self.exchange.now_ms())
            return orjson.dumps(
                {"retCode": 0, "retMsg": "OK", "op": "pong", "data": [now], "connId": conn_id}
            )
        if op == "auth":
            code, msg = self._ws_auth(state, frame.get("args"))
            return orjson.dumps(
                {**base, "retCode": code, "retMsg": msg, "op": "auth", "connId": conn_id}
            )
        if op not in ("order.create", "order.cancel", "order.amend"):
            return self._ws_reply(
                base, conn_id, str(op), _Answer(10404, f"op type is not found: {op}")
            )
        if isinstance(req_id, str):
            if req_id in state["req_ids"]:
                return self._ws_reply(base, conn_id, op, _Answer(20006, "reqId is duplicated"))
            state["req_ids"].add(req_id)
        account: SimAccount | None = state["account"]
        if account is None:
            return self._ws_reply(base, conn_id, op, _Answer(10007, "User authentication failed."))
        header = frame.get("header")
        header = header if isinstance(header, dict) else {}
        checked = self._check_time(
            str(header.get("X-BAPI-TIMESTAMP", "")), str(header.get("X-BAPI-RECV-WINDOW", ""))
        )
        if isinstance(checked, _Answer):
            return self._ws_reply(base, conn_id, op, checked)
        args = frame.get("args")
        params = args[0] if isinstance(args, list) and len(args) == 1 else None
        if op == "order.amend":
            answer = _Answer(10001, "params error: the simulator does not amend orders")
        elif op == "order.cancel":
            answer = self._cancel(account, params)
        else:
            self.ws_orders += 1
            answer = self._create(account, params)
        if answer.lost:
            return None
        return self._ws_reply(base, conn_id, op, answer)

    def _ws_auth(self, state: dict[str, Any], args: object) -> tuple[int, str]:
        if state["account"] is not None:
            return 20001, "Repeat auth"
        if not isinstance(args, list) or len(args) != 3:
            return 10001, "Params Error"
        key, expires, sign = args
        if not isinstance(key, str) or not isinstance(sign, str) or not isinstance(expires, int):
            return 10001, "Params Error"
        account = self.exchange.account(key)
        if account is None:
            return 10003, "Invalid apikey"
        if expires <= self.exchange.now_ms():
            return 10001, "Params Error: request expired"
        _, _, expected = signing.bybit_ws_auth_args(key, _secret(account.secret), expires)
        if not hmac.compare_digest(str(expected).encode(), sign.encode()):
            return 10004, "Invalid sign"
        state["account"] = account
        self.ws_logins += 1
        return 0, "OK"

    def _ws_reply(self, base: dict[str, Any], conn_id: str, op: str, answer: _Answer) -> bytes:
        now = self.exchange.now_ms() if answer.at_ms is None else answer.at_ms
        headers = self._limit_headers()
        if answer.status == 403:  # the IP ban, as the socket can say it
            seconds = float(answer.headers.get("Retry-After", "0"))
            headers = self._limit_headers(0, now + round(seconds * 1000))
        headers.update({k: v for k, v in answer.headers.items() if k.startswith("X-Bapi")})
        headers["Traceid"] = f"{self.exchange.requests:032x}"
        headers["Timenow"] = str(now)
        return orjson.dumps(
            {
                **base,
                "retCode": answer.code,
                "retMsg": answer.msg,
                "op": op,
                "data": answer.data,
                "header": headers,
                "connId": conn_id,
            }
        )
