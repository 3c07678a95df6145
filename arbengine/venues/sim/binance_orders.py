"""Simulated Binance order entry: the spot and USDⓈ-M SIGNED endpoints and both markets'
WebSocket API ``order.place``, on ``BinanceSim``'s app and backed by its ``SimExchange``.

As the venue documents it (spot: https://developers.binance.com/docs/binance-spot-api-docs/
rest-api, errors.md and web-socket-api.md; USDⓈ-M: https://developers.binance.com/docs/
derivatives/usds-margined-futures/trade/rest-api and .../error-code):

* ``X-MBX-APIKEY`` names the account (missing or malformed: -2014; unknown: -2015, HTTP 401).
* ``signature`` is HMAC-SHA256 hex (case-insensitive) of the query string followed by the
  form body, the ``signature`` parameter itself taken out (-1022 when it does not match).
  A parameter sent in both places is read from the query string.
* ``timestamp`` (mandatory) and ``recvWindow`` (default 5000, at most 60000): the request is
  processed only if ``timestamp < serverTime + 1000 and serverTime - timestamp <=
  recvWindow``, on the venue's clock (``exchange.now_ms()``, skew included); else -1021.
* USDⓈ-M accounts are one-way (``positionSide`` BOTH): ``/fapi/v2/balance`` ``balance`` is
  the wallet balance (moved by realized PnL and fees only), ``/fapi/v2/positionRisk``
  ``positionAmt`` (signed), ``entryPrice`` (the average entry price, 8 places, "0.0" when
  flat), ``markPrice`` (here the book's mid) and ``unRealizedProfit``; each ``userTrades``
  item carries its ``realizedPnl``.
* Errors are ``{"code", "msg"}`` with HTTP 400 (401 for key problems); 429/418 carry
  ``Retry-After`` in seconds; every reply carries ``X-MBX-USED-WEIGHT-1M`` and successful
  order replies ``X-MBX-ORDER-COUNT-10S`` (spot) / ``X-MBX-ORDER-COUNT-1M`` (futures).
* Spot order replies are ACK/RESULT/FULL (``newOrderRespType``, FULL by default for LIMIT);
  USDⓈ-M replies are the order's totals without trades (``userTrades`` has them).
* WebSocket API (spot ``/ws-api/v3``; USDⓈ-M ``/ws-fapi/v1``, https://developers.binance.com/
  docs/derivatives/usds-margined-futures/websocket-api-general-info and .../trade/
  websocket-api/New-Order): ``{"id","method":"order.place","params":{..,"apiKey",
  "timestamp","signature"}}``; the signature covers every param but ``signature``, sorted by
  name, not percent-encoded. Replies ``{"id","status","result"|"error","rateLimits"}``, the
  result the same body as the market's REST order reply (USDⓈ-M: totals, no trades), the
  key refused with status 401 / -2015. Spot's 429/418 errors carry ``data.serverTime`` and
  ``data.retryAfter`` (epoch ms); the futures pages show no ``data``, and the simulator
  sends the spot shape on both (a client must cope without it). ``rateLimits`` lists the
  limits this simulator counts: REQUEST_WEIGHT per minute (6000 spot, 2400 USDⓈ-M) and the
  market's ORDERS window (10 s / 100 spot, 1 min / 1200 USDⓈ-M); the venue's USDⓈ-M
  10 s / 300 ORDERS window is not modelled.

Order fault fates: ORDER_429/418 answer the status with ``Retry-After`` (nothing is done);
ORDER_TIMEOUT executes the order and then drops the connection without a reply (REST) or
never answers (WS); the others happen inside ``SimExchange.place``.

One difference from the venue, on purpose of ``SimExchange``: a client order id is refused
for as long as the account has any order with it, where Binance refuses it only while the
earlier order is open.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import orjson
from aiohttp import web

from arbengine.config_schema import CredentialRef
from arbengine.config_secrets import Secret
from arbengine.venues.signing import SigningError, binance_rest_signature, binance_ws_signature
from arbengine.venues.sim.exchange import (
    RejectKind,
    SimAccount,
    SimExchange,
    SimFill,
    SimOrder,
    SimReject,
    atoms_text,
)
from arbengine.venues.sim.faults import Fault

if TYPE_CHECKING:
    from arbengine.venues.sim.binance import BinanceSim

__all__ = ["BinanceOrderApi", "SimBinanceError"]

MAX_RECV_WINDOW_MS = 60_000
DEFAULT_RECV_WINDOW_MS = 5_000
_WEIGHTS = {"order": 1, "query": 4, "cancel": 1, "open": 6, "account": 20, "trades": 20}


class SimBinanceError(Exception):
    """A Binance error reply: HTTP status, code and message."""

    def __init__(self, status: int, code: int, msg: str, retry_after_s: float = 0.0) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg
        self.retry_after_s = retry_after_s


def _mandatory(name: str) -> SimBinanceError:
    msg = f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    return SimBinanceError(400, -1102, msg)


def _secret(account: SimAccount) -> Secret:
    return Secret(account.secret, CredentialRef(source="env", name="SIM_BINANCE_SECRET"))


def _retry_after_text(seconds: float) -> str:
    return str(int(seconds)) if seconds == int(seconds) else f"{seconds:g}"


class _LostReply(Exception):
    """ORDER_TIMEOUT: the order was executed; its reply must never reach the client."""


class BinanceOrderApi:
    """The order endpoints of one ``BinanceSim`` (spot or USDⓈ-M)."""

    def __init__(self, sim: BinanceSim, exchange: SimExchange) -> None:
        self.sim = sim
        self.exchange = exchange
        self.futures = sim.market == "usdm"
        self.api = "/fapi/v1" if self.futures else "/api/v3"
        # Binance counts new orders in fixed windows on its clock: 10 s on spot, 1 min on
        # USDⓈ-M; past the limit it answers 429 / -1015 until the window turns.
        self.order_limit = 1200 if self.futures else 100
        self.order_window_ms = 60_000 if self.futures else 10_000
        self.weight_limit = 2400 if self.futures else 6000  # request weight per minute
        self._window_start = 0
        self._window_count = 0

    def routes(self, app: web.Application) -> None:
        api = self.api
        app.router.add_post(f"{api}/order", self._place)
        app.router.add_get(f"{api}/order", self._query)
        app.router.add_delete(f"{api}/order", self._cancel)
        app.router.add_get(f"{api}/openOrders", self._open_orders)
        if self.futures:
            app.router.add_get("/fapi/v2/balance", self._futures_balance)
            app.router.add_get("/fapi/v2/positionRisk", self._position_risk)
            app.router.add_get("/fapi/v1/userTrades", self._trades)
        else:
            app.router.add_get("/api/v3/account", self._account)
            app.router.add_get("/api/v3/myTrades", self._trades)

    # -- request security --------------------------------------------------------------------

    async def _signed(self, request: web.Request) -> tuple[SimAccount, dict[str, str]]:
        """The account and parameters of a SIGNED request, verified as Binance does."""
        key = request.headers.get("X-MBX-APIKEY", "")
        if not key or not key.isascii() or not key.isalnum():
            raise SimBinanceError(401, -2014, "API-key format invalid.")
        account = self.exchange.account(key)
        if account is None:
            raise SimBinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        query = request.rel_url.raw_query_string
        body = (await request.read()).decode("latin-1") if request.can_read_body else ""
        params: dict[str, str] = {}
        for raw in (body, query):  # the query string wins over the body
            for name, value in parse_qsl(raw, keep_blank_values=True):
                params[name] = value
        sent_sig = params.pop("signature", "")
        if not sent_sig:
            raise _mandatory("signature")
        payload_query, payload_body = _without_signature(query), _without_signature(body)
        self._check_time(params)
        try:
            want = binance_rest_signature(_secret(account), payload_query, payload_body)
        except SigningError:  # not percent-encoded: cannot match what the venue computes
            want = ""
        if not want or not hmac.compare_digest(want, sent_sig.lower()):
            raise SimBinanceError(400, -1022, "Signature for this request is not valid.")
        self._check_window(params)
        return account, params

    def _check_time(self, params: Mapping[str, str]) -> None:
        ts = params.get("timestamp", "")
        if not ts.isdigit():
            raise _mandatory("timestamp")
        window = params.get("recvWindow", str(DEFAULT_RECV_WINDOW_MS))
        try:
            value = Decimal(window)
        except ArithmeticError:
            value = Decimal(-1)
        if not value.is_finite() or value <= 0 or value > MAX_RECV_WINDOW_MS:
            raise SimBinanceError(400, -1131, "recvWindow must be less than 60000")

    def _check_window(self, params: Mapping[str, str]) -> None:
        ts = int(params["timestamp"])
        window = Decimal(params.get("recvWindow", str(DEFAULT_RECV_WINDOW_MS)))
        server = self.exchange.now_ms()
        if ts >= server + 1000:
            msg = "Timestamp for this request was 1000ms ahead of the server's time."
            raise SimBinanceError(400, -1021, msg)
        if server - ts > window:
            raise SimBinanceError(
                400, -1021, "Timestamp for this request is outside of the recvWindow."
            )

    # -- responses ---------------------------------------------------------------------------

    def _reply(self, body: Any, weight: int, *, order: bool = False) -> web.Response:
        response = self.sim._json(body, weight)
        if order:
            self._order_window()
            name = "X-MBX-ORDER-COUNT-1M" if self.futures else "X-MBX-ORDER-COUNT-10S"
            response.headers[name] = str(self._window_count)
        return response

    def _fail(self, exc: SimBinanceError) -> web.Response:
        response = self.sim._json({"code": exc.code, "msg": exc.msg}, 1, exc.status)
        if exc.status in (418, 429):
            response.headers["Retry-After"] = _retry_after_text(exc.retry_after_s)
        return response

    async def _handle(
        self,
        request: web.Request,
        weight: int,
        work: Callable[[SimAccount, dict[str, str]], Any],
        *,
        order: bool = False,
    ) -> web.StreamResponse:
        symbol = request.query.get("symbol") or None
        failed = await self.sim._rest_faults(symbol)
        if failed is not None:
            return failed
        try:
            account, params = await self._signed(request)
            body = work(account, params)
        except SimBinanceError as exc:
            return self._fail(exc)
        except _LostReply:
            # Executed, and the reply is lost: the connection goes down unanswered.
            if request.transport is not None:
                request.transport.abort()
            raise web.HTTPServiceUnavailable() from None  # never reaches the client
        return self._reply(body, weight, order=order)

    # -- orders ------------------------------------------------------------------------------

    def place(self, account: SimAccount, params: Mapping[str, str]) -> dict[str, Any]:
        """Validate and place one order (shared by REST and the WS API)."""
        for name in ("symbol", "side", "type", "quantity"):
            if not params.get(name):
                raise _mandatory(name)
        symbol = params["symbol"]
        if symbol not in self.exchange.markets:
            raise SimBinanceError(400, -1121, "Invalid symbol.")
        side = params["side"]
        if side not in ("BUY", "SELL"):
            raise SimBinanceError(400, -1117, "Invalid side.")
        if params["type"] != "LIMIT":
            raise SimBinanceError(400, -1116, "Invalid orderType.")
        for name in ("price", "timeInForce"):
            if not params.get(name):
                raise _mandatory(name)
        tif = params["timeInForce"]
        if tif not in ("GTC", "IOC", "FOK"):
            raise SimBinanceError(400, -1115, "Invalid timeInForce.")
        resp_type = params.get("newOrderRespType", "FULL" if not self.futures else "ACK")
        if resp_type not in ("ACK", "RESULT", "FULL") or (self.futures and resp_type == "FULL"):
            raise SimBinanceError(
                400, -1130, "Data sent for parameter 'newOrderRespType' is not valid."
            )
        client_id = params.get("newClientOrderId") or f"sim{self.exchange.requests + 1:012d}"
        self._count_order()
        fate = self.exchange.fate(symbol)
        if fate.kind in (Fault.ORDER_429, Fault.ORDER_418):
            status = 418 if fate.kind is Fault.ORDER_418 else 429
            until = self.exchange.now_ms() + int(fate.seconds * 1000)
            if status == 418:
                msg = f"Way too much request weight used; IP banned until {until}."
            else:
                msg = "Too much request weight used; current limit is "
                msg += f"{self.weight_limit} request weight per 1 MINUTE."
            raise SimBinanceError(status, -1003, msg, fate.seconds)
        try:
            order = self.exchange.place(
                account.key,
                symbol,
                side,
                params["price"],
                params["quantity"],
                tif,
                client_id,
                fate=fate,
            )
        except SimReject as exc:
            raise self._reject(exc) from None
        if fate.lost_reply:
            raise _LostReply()
        if self.futures:
            return self._futures_order(order)
        return self._spot_order(order, resp_type)

    def _order_window(self) -> tuple[int, int]:
        """(start of the current order-count window, ms now), on the venue clock."""
        now = self.exchange.now_ms()
        start = now - now % self.order_window_ms
        if start != self._window_start:
            self._window_start, self._window_count = start, 0
        return start, now

    def _count_order(self) -> None:
        start, now = self._order_window()
        if self._window_count >= self.order_limit:
            unit = "1 MINUTE" if self.futures else "10 SECOND"
            wait_s = (start + self.order_window_ms - now) / 1000
            raise SimBinanceError(
                429,
                -1015,
                f"Too many new orders; current limit is {self.order_limit} orders per {unit}.",
                wait_s,
            )
        self._window_count += 1

    def _reject(self, exc: SimReject) -> SimBinanceError:
        kind = exc.kind
        if self.futures:
            table: dict[RejectKind, tuple[int, str]] = {
                RejectKind.UNKNOWN_SYMBOL: (-1121, "Invalid symbol."),
                RejectKind.BAD_PRICE: (-4014, "Price not increased by tick size."),
                RejectKind.BAD_SIZE: (
                    -1111,
                    "Precision is over the maximum defined for this asset.",
                ),
                RejectKind.MIN_SIZE: (-4004, "Quantity less than min quantity."),
                RejectKind.MIN_NOTIONAL: (
                    -4164,
                    "Order's notional must be no smaller than 100 (unless you choose reduce only).",
                ),
                RejectKind.INSUFFICIENT_BALANCE: (-2019, "Margin is insufficient."),
                RejectKind.DUPLICATE_CLIENT_ID: (-4116, "ClientOrderId is duplicated."),
                RejectKind.BAD_TIF: (-1115, "Invalid timeInForce."),
                RejectKind.INJECTED: (-2010, "NEW_ORDER_REJECTED"),
            }
        else:
            table = {
                RejectKind.UNKNOWN_SYMBOL: (-1121, "Invalid symbol."),
                RejectKind.BAD_PRICE: (-1013, "Filter failure: PRICE_FILTER"),
                RejectKind.BAD_SIZE: (-1013, "Filter failure: LOT_SIZE"),
                RejectKind.MIN_SIZE: (-1013, "Filter failure: LOT_SIZE"),
                RejectKind.MIN_NOTIONAL: (-1013, "Filter failure: NOTIONAL"),
                RejectKind.INSUFFICIENT_BALANCE: (
                    -2010,
                    "Account has insufficient balance for requested action.",
                ),
                RejectKind.DUPLICATE_CLIENT_ID: (-2010, "Duplicate order sent."),
                RejectKind.BAD_TIF: (-1115, "Invalid timeInForce."),
                RejectKind.INJECTED: (-2010, "This action is disabled on this account."),
            }
        code, msg = table.get(kind, (-2010, exc.message))
        return SimBinanceError(400, code, msg)

    def _find(self, account: SimAccount, params: Mapping[str, str]) -> SimOrder | None:
        if not params.get("symbol"):
            raise _mandatory("symbol")
        order_id, client_id = params.get("orderId", ""), params.get("origClientOrderId", "")
        if not order_id and not client_id:
            raise SimBinanceError(
                400,
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            )
        if order_id:
            if not order_id.isdigit():
                raise _mandatory("orderId")
            order = self.exchange.get(account.key, order_id=int(order_id))
        else:
            order = self.exchange.get(account.key, client_id=client_id)
        if order is None or order.symbol != params["symbol"]:
            return None
        return order

    async def _place(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, _WEIGHTS["order"], self.place, order=True)

    async def _query(self, request: web.Request) -> web.StreamResponse:
        def work(account: SimAccount, params: dict[str, str]) -> Any:
            order = self._find(account, params)
            if order is None:
                raise SimBinanceError(400, -2013, "Order does not exist.")
            return self._futures_order(order) if self.futures else self._spot_query(order)

        return await self._handle(request, _WEIGHTS["query"], work)

    async def _cancel(self, request: web.Request) -> web.StreamResponse:
        def work(account: SimAccount, params: dict[str, str]) -> Any:
            order = self._find(account, params)
            if order is None or not order.open:
                raise SimBinanceError(400, -2011, "Unknown order sent.")
            self.exchange.cancel(account.key, order_id=order.order_id)
            if self.futures:
                return self._futures_order(order)
            body = self._spot_result(order)
            body.pop("transactTime", None)
            body.pop("workingTime", None)
            cancel_id = params.get("newClientOrderId") or f"cancel{order.order_id}"
            return {
                "symbol": body.pop("symbol"),
                "origClientOrderId": order.client_id,
                **{k: body[k] for k in ("orderId", "orderListId")},
                "clientOrderId": cancel_id,
                "transactTime": self.exchange.now_ms(),
                **{
                    k: v
                    for k, v in body.items()
                    if k not in ("orderId", "orderListId", "clientOrderId")
                },
            }

        return await self._handle(request, _WEIGHTS["cancel"], work)

    async def _open_orders(self, request: web.Request) -> web.StreamResponse:
        def work(account: SimAccount, params: dict[str, str]) -> Any:
            symbol = params.get("symbol") or None
            if symbol is not None and symbol not in self.exchange.markets:
                raise SimBinanceError(400, -1121, "Invalid symbol.")
            orders = self.exchange.open_orders(account.key, symbol)
            if self.futures:
                return [self._futures_order(o) for o in orders]
            return [self._spot_query(o) for o in orders]

        return await self._handle(request, _WEIGHTS["open"], work)

    async def _trades(self, request: web.Request) -> web.StreamResponse:
        def work(account: SimAccount, params: dict[str, str]) -> Any:
            symbol = params.get("symbol", "")
            if not symbol:
                raise _mandatory("symbol")
            if symbol not in self.exchange.markets:
                raise SimBinanceError(400, -1121, "Invalid symbol.")
            wanted = params.get("orderId", "")
            out: list[dict[str, Any]] = []
            for order in self.exchange.orders.values():
                if order.account != account.key or order.symbol != symbol:
                    continue
                if wanted and str(order.order_id) != wanted:
                    continue
                out.extend(self._trade(order, f) for f in order.fills)
            out.sort(key=lambda t: t["id"])
            return out

        return await self._handle(request, _WEIGHTS["trades"], work)

    # -- account -----------------------------------------------------------------------------

    async def _account(self, request: web.Request) -> web.StreamResponse:
        def work(account: SimAccount, params: dict[str, str]) -> Any:
            omit_zero = params.get("omitZeroBalances", "false") == "true"
            balances = []
            for asset in sorted(set(account.free) | set(account.locked)):
                free, locked = account.free.get(asset, 0), account.locked.get(asset, 0)
                if omit_zero and free == 0 and locked == 0:
                    continue
                balances.append(
                    {"asset": asset, "free": atoms_text(free), "locked": atoms_text(locked)}
                )
            return {
                "makerCommission": 10,
                "takerCommission": 10,
                "buyerCommission": 0,
                "sellerCommission": 0,
                "canTrade": True,
                "canWithdraw": True,
                "canDeposit": True,
                "brokered": False,
                "requireSelfTradePrevention": False,
                "preventSor": False,
                "updateTime": self.exchange.now_ms(),
                "accountType": "SPOT",
                "balances": balances,
                "permissions": ["SPOT"],
                "uid": 354937868,
            }

        return await self._handle(request, _WEIGHTS["account"], work)

    async def _futures_balance(self, request: web.Request) -> web.StreamResponse:
        def work(account: SimAccount, params: dict[str, str]) -> Any:
            now = self.exchange.now_ms()
            out = []
            for asset in sorted(set(account.free) | set(account.locked)):
                free, locked = account.free.get(asset, 0), account.locked.get(asset, 0)
                # The wallet balance: realized PnL and fees, never the open positions' value.
                total = atoms_text(free + locked)
                unrealized = sum(
                    self.exchange.unrealized(account.key, name)
                    for name, m in self.exchange.markets.items()
                    if m.quote == asset and account.positions.get(name, 0)
                )
                out.append(
                    {
                        "accountAlias": "SgsR",
                        "asset": asset,
                        "balance": total,
                        "crossWalletBalance": total,
                        "crossUnPnl": atoms_text(unrealized),
                        "availableBalance": atoms_text(free),
                        "maxWithdrawAmount": atoms_text(free),
                        "marginAvailable": True,
                        "updateTime": now,
                    }
                )
            return out

        return await self._handle(request, 5, work)

    async def _position_risk(self, request: web.Request) -> web.StreamResponse:
        def work(account: SimAccount, params: dict[str, str]) -> Any:
            symbol = params.get("symbol") or None
            out = []
            for name, market in sorted(self.exchange.markets.items()):
                if symbol is not None and name != symbol:
                    continue
                lots = account.positions.get(name, 0)
                size = market.instrument.size.format(abs(lots))
                key = account.key
                # The mark is the book's mid (the simulator has no index price); the entry
                # price is the position's basis over its size, at 8 places as Binance shows.
                value = self.exchange.mark_value(key, name) if lots else None
                mark = "0.00000000"
                if value is not None:
                    base = self.exchange.base_atoms(name, lots)
                    mark = str((Decimal(value) / base).quantize(Decimal("0.00000001")))
                out.append(
                    {
                        "entryPrice": self.exchange.entry_price(key, name),
                        "breakEvenPrice": "0.0",
                        "marginType": "cross",
                        "isAutoAddMargin": "false",
                        "isolatedMargin": "0.00000000",
                        "leverage": "20",
                        "liquidationPrice": "0",
                        "markPrice": mark,
                        "maxNotionalValue": "25000000",
                        "positionAmt": f"-{size}" if lots < 0 else size,
                        "notional": atoms_text(value or 0),
                        "isolatedWallet": "0",
                        "symbol": name,
                        "unRealizedProfit": atoms_text(self.exchange.unrealized(key, name)),
                        "positionSide": "BOTH",
                        "updateTime": self.exchange.now_ms(),
                    }
                )
            return out

        return await self._handle(request, 5, work)

    # -- reply shapes ------------------------------------------------------------------------

    def _px(self, order: SimOrder, ticks: int) -> str:
        return self.exchange.markets[order.symbol].instrument.price.format(ticks)

    def _qty(self, order: SimOrder, lots: int) -> str:
        return self.exchange.markets[order.symbol].instrument.size.format(lots)

    def _quote(self, order: SimOrder) -> str:
        total = sum(self.exchange.notional(order.symbol, f.price, f.size) for f in order.fills)
        return atoms_text(total)

    def _spot_result(self, order: SimOrder) -> dict[str, Any]:
        return {
            "symbol": order.symbol,
            "orderId": order.order_id,
            "orderListId": -1,
            "clientOrderId": order.client_id,
            "transactTime": order.created_ms,
            "price": self._px(order, order.price),
            "origQty": self._qty(order, order.size),
            "executedQty": self._qty(order, order.filled),
            "origQuoteOrderQty": "0.00000000",
            "cummulativeQuoteQty": self._quote(order),
            "status": order.status,
            "timeInForce": order.tif,
            "type": "LIMIT",
            "side": order.side,
            "workingTime": order.created_ms,
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }

    def _spot_order(self, order: SimOrder, resp_type: str) -> dict[str, Any]:
        body = self._spot_result(order)
        if resp_type == "ACK":
            keys = ("symbol", "orderId", "orderListId", "clientOrderId", "transactTime")
            return {k: body[k] for k in keys}
        if resp_type == "FULL":
            body["fills"] = [
                {
                    "price": self._px(order, f.price),
                    "qty": self._qty(order, f.size),
                    "commission": atoms_text(f.fee),
                    "commissionAsset": f.fee_asset,
                    "tradeId": f.trade_id,
                }
                for f in order.fills
            ]
        return body

    def _spot_query(self, order: SimOrder) -> dict[str, Any]:
        body = self._spot_result(order)
        del body["transactTime"]
        body |= {
            "stopPrice": "0.00000000",
            "icebergQty": "0.00000000",
            "time": order.created_ms,
            "updateTime": order.updated_ms,
            "isWorking": True,
        }
        return body

    def _futures_order(self, order: SimOrder) -> dict[str, Any]:
        quote = sum(self.exchange.notional(order.symbol, f.price, f.size) for f in order.fills)
        inst = self.exchange.markets[order.symbol].instrument
        avg = "0.00"
        if order.filled:
            base = Decimal(self._qty(order, order.filled))
            places = Decimal(1).scaleb(-(inst.price.scale + 2))
            avg = str((Decimal(atoms_text(quote, 18)) / base).quantize(places))
        return {
            "orderId": order.order_id,
            "symbol": order.symbol,
            "status": order.status,
            "clientOrderId": order.client_id,
            "price": self._px(order, order.price),
            "avgPrice": avg,
            "origQty": self._qty(order, order.size),
            "executedQty": self._qty(order, order.filled),
            "cumQty": self._qty(order, order.filled),
            "cumQuote": atoms_text(quote),
            "timeInForce": order.tif,
            "type": "LIMIT",
            "reduceOnly": False,
            "closePosition": False,
            "side": order.side,
            "positionSide": "BOTH",
            "stopPrice": "0.00",
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
            "origType": "LIMIT",
            "priceMatch": "NONE",
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "goodTillDate": 0,
            "time": order.created_ms,
            "updateTime": order.updated_ms,
        }

    def _trade(self, order: SimOrder, f: SimFill) -> dict[str, Any]:
        buyer = order.side == "BUY"
        quote = atoms_text(self.exchange.notional(order.symbol, f.price, f.size))
        common = {
            "symbol": order.symbol,
            "id": f.trade_id,
            "orderId": order.order_id,
            "price": self._px(order, f.price),
            "qty": self._qty(order, f.size),
            "quoteQty": quote,
            "commission": atoms_text(f.fee),
            "commissionAsset": f.fee_asset,
            "time": f.ts_ms,
        }
        if self.futures:
            return common | {
                "realizedPnl": atoms_text(f.realized),
                "side": order.side,
                "positionSide": "BOTH",
                "buyer": buyer,
                "maker": False,
            }
        return common | {"orderListId": -1, "isBuyer": buyer, "isMaker": False, "isBestMatch": True}

    # -- WebSocket API -----------------------------------------------------------------------

    def ws_request(self, text: str) -> bytes | None:
        """The reply frame to one WebSocket API request (None: the reply is lost)."""
        try:
            request = orjson.loads(text)
        except orjson.JSONDecodeError:
            return self._ws_error(None, SimBinanceError(400, -1135, "Invalid JSON Request"))
        if not isinstance(request, dict):
            return self._ws_error(None, SimBinanceError(400, -1135, "Invalid JSON Request"))
        rid = request.get("id")
        method = request.get("method")
        params = request.get("params", {})
        if not isinstance(params, dict):
            return self._ws_error(rid, SimBinanceError(400, -1135, "Invalid JSON Request"))
        try:
            if method != "order.place":
                raise SimBinanceError(400, -1020, "This operation is not supported.")
            account, texts = self._ws_signed(params)
            result = self.place(account, texts)
        except SimBinanceError as exc:
            return self._ws_error(rid, exc)
        except _LostReply:
            return None
        body = {"id": rid, "status": 200, "result": result, "rateLimits": self._rate_limits()}
        return orjson.dumps(body)

    def _ws_signed(self, params: dict[str, Any]) -> tuple[SimAccount, dict[str, str]]:
        texts: dict[str, str] = {}
        for name, value in params.items():
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise SimBinanceError(
                    400, -1100, f"Illegal characters found in parameter '{name}'."
                )
            texts[name] = str(value)
        key = texts.get("apiKey", "")
        if not key:
            raise _mandatory("apiKey")
        account = self.exchange.account(key)
        if account is None:
            raise SimBinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        sent = texts.pop("signature", "")
        if not sent:
            raise _mandatory("signature")
        self._check_time(texts)
        try:
            want = binance_ws_signature(
                _secret(account), {k: v for k, v in params.items() if k != "signature"}
            )
        except SigningError:
            want = ""
        if not want or not hmac.compare_digest(want, sent.lower()):
            raise SimBinanceError(400, -1022, "Signature for this request is not valid.")
        self._check_window(texts)
        del texts["apiKey"]
        return account, texts

    def _ws_error(self, rid: object, exc: SimBinanceError) -> bytes:
        error: dict[str, Any] = {"code": exc.code, "msg": exc.msg}
        if exc.status in (418, 429):
            now = self.exchange.now_ms()
            error["data"] = {"serverTime": now, "retryAfter": now + int(exc.retry_after_s * 1000)}
        body = {"id": rid, "status": exc.status, "error": error, "rateLimits": self._rate_limits()}
        return orjson.dumps(body)

    def _rate_limits(self) -> list[dict[str, Any]]:
        self._order_window()
        interval, num = ("MINUTE", 1) if self.futures else ("SECOND", 10)  # order_window_ms
        return [
            {
                "rateLimitType": "ORDERS",
                "interval": interval,
                "intervalNum": num,
                "limit": self.order_limit,
                "count": self._window_count,
            },
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": self.weight_limit,
                "count": self.sim._weight_used,
            },
        ]


def _without_signature(raw: str) -> str:
    """``raw`` (query string or body, as sent) without its ``signature=`` parameter."""
    if "signature=" not in raw:
        return raw
    parts = [p for p in raw.split("&") if not p.startswith("signature=")]
    return "&".join(parts)
