"""Bybit v5 order gateway (spot; ``category="linear"`` speaks the same endpoints).

Requests, as Bybit's v5 docs give them (https://bybit-exchange.github.io/docs/v5/...):

* signing (``guide#create-a-request``): ``X-BAPI-API-KEY``, ``X-BAPI-TIMESTAMP``,
  ``X-BAPI-RECV-WINDOW``, ``X-BAPI-SIGN`` over ``timestamp + key + recv_window + payload``,
  the payload being the exact query string sent (GET) or the exact JSON body sent (POST);
  the venue accepts ``server_time - recv_window <= timestamp < server_time + 1000``;
* ``POST /v5/order/create`` (``order/create-order``): Limit, ``timeInForce`` IOC/FOK/GTC,
  ``orderLinkId`` = our client id. Its reply carries ``orderId`` only, never fills: the order
  is ACKED and followed with queries;
* ``GET /v5/order/realtime?category&orderLinkId`` (``order/open-order``): the order in any
  status (totals only), and ``openOnly=0`` for the open ones, paged by ``cursor``;
* ``GET /v5/execution/list?category&orderId`` (``order/execution``): the order's trades;
* ``POST /v5/order/cancel`` (``order/cancel-order``), ``GET /v5/account/wallet-balance?
  accountType=UNIFIED`` (``account/wallet-balance``), ``GET /v5/market/time``, and for
  linear ``GET /v5/position/list?settleCoin=USDT`` (``position/position``): ``side``,
  ``size`` and ``avgPrice`` (the average entry price) of each open position;
* WebSocket order entry on ``/v5/trade`` (``websocket/trade/guideline``): ``auth`` with
  ``[key, expires, hex HMAC("GET/realtime" + expires)]``, then ``order.create`` frames with
  ``reqId`` and a ``header`` carrying the timestamp and recv window; replies echo ``reqId``.
  Used for submits once the login is confirmed; REST otherwise, and to find out what became
  of an order whose WebSocket answer never came.

Order states (``enum#orderstatus``): New, PartiallyFilled, Untriggered, Triggered -> ACKED;
Filled -> FILLED; Cancelled (IOC/FOK remainder, or cancelled; derivatives keep the executed
qty), PartiallyFilledCanceled (spot), Deactivated -> CANCELED; Rejected -> REJECTED (or
CANCELED if it had traded).

retCodes (``error``): 10002 -> ``ClockSkew``; 10006 "Too many visits!", 10018, 10429,
20003, 170005, 170222 -> ``RateLimited`` for the time ``X-Bapi-Limit-Reset-Timestamp``
names (minus the reply's server time); HTTP 403 and 10009 are the IP ban (``banned``;
Bybit says a ban usually lasts 30 minutes when no Retry-After says otherwise); 10000,
10016, 10019, 170001, 170007, 170146 -> ``UnknownOutcome``; 110072 / 170141 (the client
order id was used) are the duplicate; anything else -> ``Rejected`` with the code.

Fees: ``execFee`` is positive when charged and negative for a rebate -- the sign convention
of ``VenueFill.fee`` -- in ``feeCurrency``: on spot, for a positive fee rate, a buy pays in
the base coin and a sell in the quote coin ("Spot Fee Currency Instruction"); contracts pay
in the settlement coin (the instrument's quote).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

import orjson

from arbengine._core.instrument import Instrument
from arbengine.gateways._wire import OrderTemplate, WsRequest
from arbengine.gateways.base import (
    Balance,
    ClockSkew,
    GatewayError,
    HttpReply,
    LiveGateway,
    Position,
    RateLimited,
    Rejected,
    UnknownOutcome,
    VenueCredentials,
    VenueFill,
    VenueOrder,
    grid_units,
    order_texts,
)
from arbengine.orders import Order, OrderStatus, Side, TimeInForce, atoms
from arbengine.venues import signing
from arbengine.venues.ws import Backoff

__all__ = ["BybitGateway"]

_STATUS: dict[str, OrderStatus] = {
    "New": OrderStatus.ACKED,
    "PartiallyFilled": OrderStatus.ACKED,
    "Untriggered": OrderStatus.ACKED,
    "Triggered": OrderStatus.ACKED,
    "Filled": OrderStatus.FILLED,
    "Cancelled": OrderStatus.CANCELED,
    "PartiallyFilledCanceled": OrderStatus.CANCELED,
    "Deactivated": OrderStatus.CANCELED,
    "Rejected": OrderStatus.REJECTED,
}
_RATE_LIMIT_CODES = frozenset({10006, 10018, 10429, 20003, 170005, 170222})
_BAN_CODES = frozenset({10009})
_UNKNOWN_CODES = frozenset({10000, 10016, 10019, 170001, 170007, 170146})
_DUPLICATE_CODES = frozenset({"110072", "170141"})
_GONE_CODES = frozenset({"110001", "110008", "110010", "170213", "170142", "170139"})
_BAN_DEFAULT_S = 1800.0  # rate-limit doc: "banned for a set period of time (usually 30 minutes)"
_WS_AUTH_LEAD_MS = 10_000  # how far ahead the WebSocket login's ``expires`` lies
_PING = b'{"op":"ping"}'


def _one_line(text: object, limit: int = 160) -> str:
    """A venue message fit for an exception: one line, bounded, and without the "origin
    string" Bybit echoes on a bad signature (it holds the key and the signed payload)."""
    line = " ".join(str(text).split())
    cut = line.find("origin_string")
    if cut >= 0:
        line = line[:cut].rstrip(" :[") or "error sign"
    return line[:limit]


def _text(item: Mapping[str, Any], name: str, what: str) -> str:
    value = item.get(name)
    if not isinstance(value, str):
        raise GatewayError(f"bybit {what}: field {name!r} missing or not text")
    return value


def _header(headers: Mapping[str, str], name: str) -> str:
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), "")


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = _header(headers, name)
    return int(value) if value.isascii() and value.isdigit() else None


def _seconds_header(headers: Mapping[str, str], name: str) -> float | None:
    try:
        value = float(_header(headers, name))
    except ValueError:
        return None
    return value if 0 < value < float("inf") else None


class BybitGateway(LiveGateway):
    """Bybit v5 signed order entry: REST, and the ``/v5/trade`` WebSocket when ``ws_url``
    is given. ``category`` is ``spot`` (the config kind ``bybit``) or ``linear``."""

    kind: ClassVar[str] = "bybit"

    def __init__(
        self,
        venue: str,
        instruments: Iterable[Instrument],
        credentials: VenueCredentials,
        *,
        category: str = "spot",
        ws_ping_s: float = 20.0,
        ws_backoff: Backoff | None = None,
        **kwargs: Any,  # LiveGateway's: rest_url, ws_url, recv_window_ms, ...
    ) -> None:
        super().__init__(venue, instruments, credentials, **kwargs)
        if category not in ("spot", "linear"):
            raise ValueError(f"bybit category must be spot or linear, not {category!r}")
        key = credentials.api_key.reveal()
        # The key travels in a header: checked here, once, rather than failing each request.
        if not key or not all("!" <= c <= "~" for c in key):
            raise ValueError("bybit API key must be non-empty printable ASCII without spaces")
        if not credentials.api_secret.reveal():
            raise ValueError("bybit API secret is empty")
        self.category = category
        self.ws_ping_s = ws_ping_s  # Bybit asks for {"op":"ping"} every 20 s
        self.ws_backoff = ws_backoff
        self.ws_login_error = ""  # the venue's last refusal of the order socket's login
        self.ws_malformed = 0  # order-socket frames that were not a reply we understand
        # reqIds must not repeat (20006): a per-gateway tag keeps them apart across runs.
        self._req_tag = os.urandom(4).hex()

    def _ws_options(self) -> dict[str, Any]:
        # Bybit's heartbeat is a text ping.
        options: dict[str, Any] = {"ping_interval_s": self.ws_ping_s, "ping_text": _PING}
        if self.ws_backoff is not None:
            options["backoff"] = self.ws_backoff
        return options

    # -- signed REST -------------------------------------------------------------------------

    def _signed_headers(self, payload: str) -> dict[str, str]:
        creds = self.credentials
        return signing.bybit_headers(
            creds.api_key.reveal(),
            creds.api_secret,
            self.timestamp_ms(),
            self.recv_window_ms,
            payload,
        )

    async def _call(
        self, method: str, path: str, params: Mapping[str, str], *, placing: bool = False
    ) -> dict[str, Any]:
        """One signed request; its ``result`` object, or the venue's error as an exception.

        ``placing``: a reply that cannot be read leaves the order's fate open
        (``UnknownOutcome``, retried by client id) rather than a plain ``GatewayError``."""
        if method == "GET":
            query, body = urlencode(params, quote_via=quote), ""
            headers = self._signed_headers(query)
        else:
            query, body = "", orjson.dumps(dict(params)).decode()
            headers = self._signed_headers(body)
            headers["Content-Type"] = "application/json"
        reply = await self._http(method, path, query=query, body=body, headers=headers)
        return self._result(path, reply, placing=placing)

    def _result(self, path: str, reply: HttpReply, *, placing: bool) -> dict[str, Any]:
        bad = UnknownOutcome if placing else GatewayError
        if reply.status == 403:
            wait = _seconds_header(reply.headers, "Retry-After") or _BAN_DEFAULT_S
            raise RateLimited("403", f"bybit {path}: HTTP 403 (IP rate limit ban)", wait, True)
        if reply.status != 200:
            # 400/401/404: the request was refused before anything was done.
            raise Rejected(str(reply.status), f"bybit {path}: HTTP {reply.status}")
        try:
            body = orjson.loads(reply.body)
        except orjson.JSONDecodeError:
            raise bad(f"bybit {path}: reply is not JSON ({len(reply.body)} bytes)") from None
        if not isinstance(body, dict) or not isinstance(body.get("retCode"), int):
            raise bad(f"bybit {path}: reply without an integer retCode")
        code: int = body["retCode"]
        if code != 0:
            server_ms = body.get("time")
            raise self._error(
                code,
                body.get("retMsg", ""),
                reply.headers,
                server_ms if isinstance(server_ms, int) else None,
                path,
            )
        result = body.get("result")
        if not isinstance(result, dict):
            raise bad(f"bybit {path}: reply without a result object")
        if placing:
            server_ms = body.get("time")
            self._usage(reply.headers, server_ms if isinstance(server_ms, int) else None)
        return result

    def _usage(self, headers: Mapping[str, str], server_ms: int | None) -> None:
        """X-Bapi-Limit-Status is what is left of the order limit until the reset
        timestamp: at zero, stop sending until then rather than meet a 10006."""
        left = _int_header(headers, "X-Bapi-Limit-Status")
        reset = _int_header(headers, "X-Bapi-Limit-Reset-Timestamp")
        if left is None or left > 0 or reset is None:
            return
        now = server_ms if server_ms is not None else self.timestamp_ms()
        self._usage_exhausted((reset - now) / 1000)

    def _error(
        self,
        code: int,
        message: object,
        headers: Mapping[str, str],
        server_ms: int | None,
        where: str,
    ) -> GatewayError:
        msg = f"bybit {where}: {_one_line(message)}"
        if code in _RATE_LIMIT_CODES or code in _BAN_CODES:
            banned = code in _BAN_CODES
            reset = _int_header(headers, "X-Bapi-Limit-Reset-Timestamp")
            now = server_ms if server_ms is not None else self.timestamp_ms()
            wait = (reset - now) / 1000 if reset is not None and reset > now else 0.0
            if wait <= 0:
                wait = _BAN_DEFAULT_S if banned else self.default_backoff_s
            return RateLimited(str(code), msg, wait, banned)
        if code == 10002:
            return ClockSkew(str(code), msg)
        if code in _UNKNOWN_CODES:
            return UnknownOutcome(f"{code}: {msg}")
        return Rejected(str(code), msg)

    def _is_duplicate(self, exc: Rejected) -> bool:
        return exc.code in _DUPLICATE_CODES

    # -- orders ------------------------------------------------------------------------------

    def _order_params(self, order: Order) -> dict[str, str]:
        size, price = order_texts(order)
        return self._order_fields(
            order.instrument, order.side, order.tif, size, price, order.client_id
        )

    def _order_fields(
        self, inst: Instrument, side: Side, tif: TimeInForce, qty: str, price: str, link_id: str
    ) -> dict[str, str]:
        """A new order's params (REST body and WS ``order.create`` args)."""
        return {
            "category": self.category,
            "symbol": inst.symbol,
            "side": "Buy" if side is Side.BUY else "Sell",
            "orderType": "Limit",
            "qty": qty,
            "price": price,
            "timeInForce": tif.value,
            "orderLinkId": link_id,
        }

    def _acked(self, order: Order, data: Mapping[str, Any], placing_what: str) -> VenueOrder:
        order_id = data.get("orderId")
        if not isinstance(order_id, str) or not order_id:
            raise UnknownOutcome(f"bybit {placing_what}: reply without an orderId")
        return VenueOrder.acked(order, order_id, "New")

    async def _rest_place(self, order: Order) -> VenueOrder:
        path = "/v5/order/create"
        result = await self._call("POST", path, self._order_params(order), placing=True)
        return self._acked(order, result, path)

    def _state(self, item: object, what: str) -> VenueOrder:
        """One ``/v5/order/realtime`` list item as the venue's view of the order."""
        if not isinstance(item, dict):
            raise GatewayError(f"bybit {what}: order item is not an object")
        symbol = _text(item, "symbol", what)
        inst = self.instruments.get(symbol)
        if inst is None:
            raise GatewayError(f"bybit {what}: order on unknown symbol {symbol!r}")
        word = _text(item, "orderStatus", what)
        status = _STATUS.get(word)
        if status is None:
            raise GatewayError(f"bybit {what}: unknown orderStatus {word!r}")
        side_text = _text(item, "side", what)
        if side_text not in ("Buy", "Sell"):
            raise GatewayError(f"bybit {what}: unknown side {side_text!r}")
        filled = grid_units(inst, _text(item, "cumExecQty", what), "size")
        if status is OrderStatus.REJECTED and filled:
            status = OrderStatus.CANCELED  # it traded: its fills stand
        reason = word
        if status is not OrderStatus.FILLED:
            extra = [
                v
                for v in (item.get("cancelType"), item.get("rejectReason"))
                if isinstance(v, str) and v not in ("", "UNKNOWN", "EC_NoError")
            ]
            reason = " ".join([word, *extra])
        return VenueOrder(
            client_id=_text(item, "orderLinkId", what),
            venue_order_id=_text(item, "orderId", what),
            symbol=symbol,
            side=Side.BUY if side_text == "Buy" else Side.SELL,
            price=grid_units(inst, _text(item, "price", what), "price"),
            size=grid_units(inst, _text(item, "qty", what), "size"),
            status=status,
            filled=filled,
            reason=reason if status.done else "",
            venue_status=word,
        )

    async def _rest_query(self, order: Order | str) -> VenueOrder | None:
        client_id = order if isinstance(order, str) else order.client_id
        path = "/v5/order/realtime"
        result = await self._call(
            "GET", path, {"category": self.category, "orderLinkId": client_id}
        )
        items = result.get("list")
        if not isinstance(items, list):
            raise GatewayError(f"bybit {path}: result without a list")
        for item in items:
            state = self._state(item, path)
            if state.client_id != client_id:
                continue
            if state.filled:
                # Totals only: the trades come from the execution list.
                state = replace(state, fills=tuple(await self._executions(state)))
            return state
        return None

    async def _executions(self, state: VenueOrder) -> list[VenueFill]:
        inst = self.instruments[state.symbol]
        path = "/v5/execution/list"
        params = {"category": self.category, "orderId": state.venue_order_id, "limit": "100"}
        rows: list[tuple[str, str, VenueFill]] = []
        seen: set[str] = set()
        for _ in range(100):  # 10,000 trades of one order: far past any IOC
            result = await self._call("GET", path, params)
            items = result.get("list")
            if not isinstance(items, list):
                raise GatewayError(f"bybit {path}: result without a list")
            for item in items:
                if not isinstance(item, dict):
                    raise GatewayError(f"bybit {path}: execution item is not an object")
                if item.get("execType", "Trade") != "Trade":
                    continue  # funding, settlement: not a trade of this order
                exec_id = _text(item, "execId", path)
                if exec_id in seen:
                    continue
                seen.add(exec_id)
                fee_text = _text(item, "execFee", path)
                asset = item.get("feeCurrency")
                if not isinstance(asset, str) or not asset:
                    asset = self._fee_asset(inst, state.side)
                try:
                    fee = atoms(fee_text or "0")
                except (ValueError, ArithmeticError):
                    raise GatewayError(
                        f"bybit {path}: execFee {fee_text!r} is not a decimal"
                    ) from None
                fill = VenueFill(
                    exec_id,
                    grid_units(inst, _text(item, "execPrice", path), "price"),
                    grid_units(inst, _text(item, "execQty", path), "size"),
                    fee,
                    asset,
                )
                rows.append((_text(item, "execTime", path).rjust(20, "0"), exec_id, fill))
            cursor = result.get("nextPageCursor")
            if not isinstance(cursor, str) or not cursor or not items:
                break
            params = {**params, "cursor": cursor}
        rows.sort(key=lambda r: (r[0], r[1]))  # oldest first: the order the trades happened
        return [fill for _, _, fill in rows]

    def _fee_asset(self, inst: Instrument, side: Side) -> str:
        if self.category != "spot":
            return inst.quote
        return inst.base if side is Side.BUY else inst.quote

    async def _rest_fills(self, order: Order, state: VenueOrder) -> list[VenueFill]:
        return await self._executions(state)

    async def _rest_cancel(self, client_id: str, symbol: str) -> VenueOrder | None:
        params = {"category": self.category, "symbol": symbol, "orderLinkId": client_id}
        try:
            await self._call("POST", "/v5/order/cancel", params)
        except Rejected as exc:
            if exc.code not in _GONE_CODES:
                raise
            # Unknown, or already finished: its state says which.
        return await self._rest_query(client_id)

    async def _rest_open_orders(self) -> list[VenueOrder]:
        path = "/v5/order/realtime"
        params = {"category": self.category, "openOnly": "0", "limit": "50"}
        if self.category == "linear":
            params["settleCoin"] = "USDT"  # linear needs a symbol, baseCoin or settleCoin
        out: list[VenueOrder] = []
        for _ in range(100):
            result = await self._call("GET", path, params)
            items = result.get("list")
            if not isinstance(items, list):
                raise GatewayError(f"bybit {path}: result without a list")
            for item in items:
                if isinstance(item, dict) and item.get("symbol") not in self.instruments:
                    continue  # another strategy's market: not ours to report
                out.append(self._state(item, path))
            cursor = result.get("nextPageCursor")
            if not isinstance(cursor, str) or not cursor or not items:
                break
            params = {**params, "cursor": cursor}
        return out

    async def _rest_balances(self) -> dict[str, Balance]:
        path = "/v5/account/wallet-balance"
        result = await self._call("GET", path, {"accountType": "UNIFIED"})
        accounts = result.get("list")
        if not isinstance(accounts, list):
            raise GatewayError(f"bybit {path}: result without a list")
        out: dict[str, Balance] = {}
        for account in accounts:
            coins = account.get("coin") if isinstance(account, dict) else None
            if not isinstance(coins, list):
                raise GatewayError(f"bybit {path}: account without a coin list")
            for coin in coins:
                if not isinstance(coin, dict):
                    raise GatewayError(f"bybit {path}: coin item is not an object")
                asset = _text(coin, "coin", path)
                wallet_text = _text(coin, "walletBalance", path)
                locked_text = coin.get("locked") or "0"
                try:
                    wallet = atoms(wallet_text or "0")
                    locked = atoms(locked_text) if isinstance(locked_text, str) else 0
                except (ValueError, ArithmeticError):
                    raise GatewayError(f"bybit {path}: {asset} balance is not a decimal") from None
                # walletBalance includes what open spot orders hold (``locked``).
                out[asset] = Balance(asset, wallet - locked, locked)
        return out

    async def _rest_positions(self) -> dict[str, Position]:
        if self.category == "spot":
            return {}
        path = "/v5/position/list"
        params = {"category": self.category, "settleCoin": "USDT", "limit": "200"}
        out: dict[str, Position] = {}
        for _ in range(100):
            result = await self._call("GET", path, params)
            items = result.get("list")
            if not isinstance(items, list):
                raise GatewayError(f"bybit {path}: result without a list")
            for item in items:
                if not isinstance(item, dict):
                    raise GatewayError(f"bybit {path}: position item is not an object")
                inst = self.instruments.get(_text(item, "symbol", path))
                if inst is None:
                    continue
                size = grid_units(inst, _text(item, "size", path) or "0", "size")
                side = _text(item, "side", path)
                if side not in ("Buy", "Sell", "", "None"):
                    raise GatewayError(f"bybit {path}: unknown position side {side!r}")
                if size:
                    entry = _text(item, "avgPrice", path)
                    signed = size if side == "Buy" else -size
                    out[inst.symbol] = Position.of(inst, signed, entry, f"bybit {path}: avgPrice")
            cursor = result.get("nextPageCursor")
            if not isinstance(cursor, str) or not cursor or not items:
                break
            params = {**params, "cursor": cursor}
        return out

    async def _rest_server_time_ms(self) -> int:
        path = "/v5/market/time"
        reply = await self._http("GET", path)
        result = self._result(path, reply, placing=False)
        nano = result.get("timeNano")
        if not isinstance(nano, str) or not nano.isdigit():
            raise GatewayError(f"bybit {path}: reply without timeNano")
        return int(nano) // 1_000_000

    # -- WebSocket order entry (/v5/trade) ---------------------------------------------------

    def _ws_connected_frames(self) -> list[bytes]:
        expires = self.timestamp_ms() + _WS_AUTH_LEAD_MS
        creds = self.credentials
        args = signing.bybit_ws_auth_args(creds.api_key.reveal(), creds.api_secret, expires)
        return [orjson.dumps({"op": "auth", "args": args})]

    def _ws_templates(self, inst: Instrument, side: Side, tif: TimeInForce) -> WsRequest:
        frame = {
            "reqId": f"{self._req_tag}-{{id}}",
            "header": {
                "X-BAPI-TIMESTAMP": "{ts}",
                "X-BAPI-RECV-WINDOW": str(self.recv_window_ms),
            },
            "op": "order.create",
            "args": [self._order_fields(inst, side, tif, "{sz}", "{px}", "{cid}")],
        }
        return WsRequest(OrderTemplate(orjson.dumps(frame).decode(), inst.price, inst.size))

    def _ws_message(self, payload: bytes) -> None:
        try:
            msg = orjson.loads(payload)
        except orjson.JSONDecodeError:
            self.ws_malformed += 1
            return
        if not isinstance(msg, dict):
            self.ws_malformed += 1
            return
        op, code = msg.get("op"), msg.get("retCode")
        if op == "auth":
            if code == 0:
                self.ws_login_error = ""
                self._ws_ready()
            else:
                self.ws_login_error = f"{code}: {_one_line(msg.get('retMsg', ''))}"
            return
        if op == "pong":
            return
        req = msg.get("reqId")
        prefix = f"{self._req_tag}-"
        if op != "order.create" or not isinstance(req, str) or not req.startswith(prefix):
            self.ws_malformed += 1  # nothing to match it with: the watch timer takes over
            return
        req_id = req[len(prefix) :]
        client_id = self._ws_pending.get(req_id)
        tracked = self._tracked.get(client_id) if client_id is not None else None
        if tracked is None:
            return
        header = msg.get("header")
        headers = {str(k): str(v) for k, v in header.items()} if isinstance(header, dict) else {}
        if not isinstance(code, int):
            self._ws_answer(req_id, UnknownOutcome("bybit order.create: reply without retCode"))
            return
        if code != 0:
            now = _int_header(headers, "Timenow")
            self._ws_answer(
                req_id, self._error(code, msg.get("retMsg", ""), headers, now, "ws order.create")
            )
            return
        self._usage(headers, _int_header(headers, "Timenow"))
        data = msg.get("data")
        try:
            state = self._acked(
                tracked.order, data if isinstance(data, dict) else {}, "ws order.create"
            )
        except UnknownOutcome as exc:
            self._ws_answer(req_id, exc)
            return
        self._ws_answer(req_id, state)
